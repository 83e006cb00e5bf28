-- Backtests submitted over the API: the request, then the report or the error.
CREATE TABLE backtests (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id),
    status TEXT NOT NULL,
    request TEXT NOT NULL,
    report TEXT,
    error TEXT,
    created_ns BIGINT NOT NULL,
    finished_ns BIGINT
);
CREATE INDEX backtests_by_user ON backtests (user_id, id);
