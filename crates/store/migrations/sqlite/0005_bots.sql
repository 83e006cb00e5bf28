-- Bots: a built-in strategy trading one instrument of one account on closed
-- candles. Their orders are ordinary account orders whose client order ids
-- start with `bot{id}-`; this table holds the configuration and the status.
CREATE TABLE bots (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users (id),
    account_id INTEGER NOT NULL REFERENCES accounts (id),
    name TEXT NOT NULL,
    strategy TEXT NOT NULL,
    -- JSON object of parameter name to value text, as given.
    params TEXT NOT NULL,
    instrument_id INTEGER NOT NULL,
    interval TEXT NOT NULL,
    sizing TEXT NOT NULL,
    warmup_bars INTEGER NOT NULL,
    -- stopped | running | failed
    status TEXT NOT NULL,
    error TEXT,
    created_ns INTEGER NOT NULL,
    -- Set at the first start: every start replays stored candles from here,
    -- so the strategy's state is the same as if it had never stopped.
    anchor_ns INTEGER,
    started_ns INTEGER,
    stopped_ns INTEGER
);
CREATE INDEX bots_by_user ON bots (user_id, id);
CREATE INDEX bots_by_status ON bots (status);
