-- Accounts that trade at a live venue (Binance, TastyTrade) through a linked
-- credential (`venue_account`: the venue's account number where a login
-- holds several, as at TastyTrade; empty for Binance). The account itself (its journal, orders, positions) is an
-- ordinary account; this row says where its orders go. `symbols` is a JSON
-- array of [symbol, venue symbol] pairs; instrument ids are derived from the
-- account id and the position in that list. `confirmed_ns` is when the
-- owner confirmed live trading (NULL: not yet, so nothing is sent).
-- `fills_since_ns` is where the next reconciliation starts reading fills.
CREATE TABLE live_accounts (
    account_id BIGINT PRIMARY KEY REFERENCES accounts (id),
    credential_id BIGINT NOT NULL REFERENCES venue_credentials (id),
    venue TEXT NOT NULL,
    environment TEXT NOT NULL,
    venue_account TEXT NOT NULL,
    symbols TEXT NOT NULL,
    confirmed_ns BIGINT,
    fills_since_ns BIGINT NOT NULL,
    created_ns BIGINT NOT NULL
);

CREATE INDEX live_accounts_credential ON live_accounts (credential_id);

-- How far the venue's position may sit from the engine's for a known reason:
-- `link` is what the venue held when the account was linked (not traded by
-- tradecore); `fee:<trade id>` is a commission the venue took in the traded
-- asset itself (Binance charges buys in the base asset). Reconciliation
-- compares venue position minus the sum of these with the engine's.
-- Written before the fill is applied, once per source.
CREATE TABLE live_position_adjustments (
    account_id BIGINT NOT NULL REFERENCES accounts (id),
    instrument_id BIGINT NOT NULL,
    source TEXT NOT NULL,
    quantity TEXT NOT NULL,
    PRIMARY KEY (account_id, instrument_id, source)
);
