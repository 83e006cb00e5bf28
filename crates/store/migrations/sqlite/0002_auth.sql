-- People, their sign-ins and API tokens, the audit trail, and which user owns
-- which trading account. Users are disabled, never deleted, so the audit log
-- and account ownership always point at a row.

-- Usernames are ASCII (the server checks), so lower() folds case the same
-- way here and in PostgreSQL; the index makes them unique ignoring case.
CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'trader', 'viewer')),
    disabled INTEGER NOT NULL DEFAULT 0,
    -- Set for a generated first-admin password: the dashboard asks for a new one.
    password_change_required INTEGER NOT NULL DEFAULT 0,
    created_ns INTEGER NOT NULL
);
CREATE UNIQUE INDEX users_by_username ON users (lower(username));

-- id is the SHA-256 (hex) of the cookie's secret: a copy of this table does
-- not let anyone sign in.
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (id),
    csrf_token TEXT NOT NULL,
    created_ns INTEGER NOT NULL,
    expires_ns INTEGER NOT NULL,
    last_seen_ns INTEGER NOT NULL,
    user_agent TEXT,
    ip TEXT
) WITHOUT ROWID;
CREATE INDEX sessions_by_user ON sessions (user_id);
CREATE INDEX sessions_by_expiry ON sessions (expires_ns);

-- Only the SHA-256 of a token's secret is kept; the token is shown once.
CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users (id),
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    scopes TEXT NOT NULL,
    created_ns INTEGER NOT NULL,
    expires_ns INTEGER,
    revoked_ns INTEGER,
    last_used_ns INTEGER
);
CREATE INDEX api_tokens_by_user ON api_tokens (user_id);

-- Append-only. detail is a JSON object.
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts_ns INTEGER NOT NULL,
    user_id INTEGER REFERENCES users (id),
    action TEXT NOT NULL,
    target TEXT,
    detail TEXT NOT NULL DEFAULT '{}',
    ip TEXT
);
CREATE INDEX audit_log_by_user ON audit_log (user_id, id);

CREATE TABLE account_owners (
    account_id INTEGER PRIMARY KEY REFERENCES accounts (id),
    user_id INTEGER NOT NULL REFERENCES users (id)
);
CREATE INDEX account_owners_by_user ON account_owners (user_id);
