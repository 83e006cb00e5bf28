-- Backtests submitted over the API: the request, then the report or the error.
CREATE TABLE backtests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users (id),
    status TEXT NOT NULL,
    request TEXT NOT NULL,
    report TEXT,
    error TEXT,
    created_ns INTEGER NOT NULL,
    finished_ns INTEGER
);
CREATE INDEX backtests_by_user ON backtests (user_id, id);
