-- Bots: a built-in strategy trading one instrument of one account on closed
-- candles. Their orders are ordinary account orders whose client order ids
-- start with `bot{id}-`; this table holds the configuration and the status.
CREATE TABLE bots (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id),
    account_id BIGINT NOT NULL REFERENCES accounts (id),
    name TEXT NOT NULL,
    strategy TEXT NOT NULL,
    -- JSON object of parameter name to value text, as given.
    params TEXT NOT NULL,
    instrument_id BIGINT NOT NULL,
    interval TEXT NOT NULL,
    sizing TEXT NOT NULL,
    warmup_bars BIGINT NOT NULL,
    -- stopped | running | failed
    status TEXT NOT NULL,
    error TEXT,
    created_ns BIGINT NOT NULL,
    -- Set at the first start: every start replays stored candles from here,
    -- so the strategy's state is the same as if it had never stopped.
    anchor_ns BIGINT,
    started_ns BIGINT,
    stopped_ns BIGINT
);
CREATE INDEX bots_by_user ON bots (user_id, id);
CREATE INDEX bots_by_status ON bots (status);
