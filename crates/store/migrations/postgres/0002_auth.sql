-- People, their sign-ins and API tokens, the audit trail, and which user owns
-- which trading account. Users are disabled, never deleted, so the audit log
-- and account ownership always point at a row.

-- Usernames are ASCII (the server checks), so lower() folds case the same
-- way here and in SQLite; the index makes them unique ignoring case.
CREATE TABLE users (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'trader', 'viewer')),
    disabled BOOLEAN NOT NULL DEFAULT FALSE,
    -- Set for a generated first-admin password: the dashboard asks for a new one.
    password_change_required BOOLEAN NOT NULL DEFAULT FALSE,
    created_ns BIGINT NOT NULL
);
CREATE UNIQUE INDEX users_by_username ON users (lower(username));

-- id is the SHA-256 (hex) of the cookie's secret: a copy of this table does
-- not let anyone sign in.
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id),
    csrf_token TEXT NOT NULL,
    created_ns BIGINT NOT NULL,
    expires_ns BIGINT NOT NULL,
    last_seen_ns BIGINT NOT NULL,
    user_agent TEXT,
    ip TEXT
);
CREATE INDEX sessions_by_user ON sessions (user_id);
CREATE INDEX sessions_by_expiry ON sessions (expires_ns);

-- Only the SHA-256 of a token's secret is kept; the token is shown once.
CREATE TABLE api_tokens (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id),
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    scopes TEXT NOT NULL,
    created_ns BIGINT NOT NULL,
    expires_ns BIGINT,
    revoked_ns BIGINT,
    last_used_ns BIGINT
);
CREATE INDEX api_tokens_by_user ON api_tokens (user_id);

-- Append-only. detail is a JSON object (TEXT, as in SQLite, so both
-- backends read it the same way).
CREATE TABLE audit_log (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ts_ns BIGINT NOT NULL,
    user_id BIGINT REFERENCES users (id),
    action TEXT NOT NULL,
    target TEXT,
    detail TEXT NOT NULL DEFAULT '{}',
    ip TEXT
);
CREATE INDEX audit_log_by_user ON audit_log (user_id, id);

CREATE TABLE account_owners (
    account_id BIGINT PRIMARY KEY REFERENCES accounts (id),
    user_id BIGINT NOT NULL REFERENCES users (id)
);
CREATE INDEX account_owners_by_user ON account_owners (user_id);
