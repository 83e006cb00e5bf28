-- Closed candles aggregated from the market feed, per instrument and interval.
CREATE TABLE candles (
    instrument_id BIGINT NOT NULL,
    interval TEXT NOT NULL,
    start_ns BIGINT NOT NULL,
    open TEXT NOT NULL,
    high TEXT NOT NULL,
    low TEXT NOT NULL,
    close TEXT NOT NULL,
    volume TEXT NOT NULL,
    trades BIGINT NOT NULL,
    PRIMARY KEY (instrument_id, interval, start_ns)
);
