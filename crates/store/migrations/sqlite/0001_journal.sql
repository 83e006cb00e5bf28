-- The journal and the read models projected from it, written in the same
-- transaction. Money, prices and quantities are exact decimal strings.

CREATE TABLE accounts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    base_currency TEXT NOT NULL,
    created_ns INTEGER NOT NULL
);

-- Append-only. seq counts each account's events from 1, assigned by the
-- account's owner; the primary key refuses a second writer for the same seq.
-- Rows are stored in arrival order (the rowid), so a batch of commits from
-- many accounts appends to the end of the table instead of touching one page
-- per account; the unique index finds an account's events.
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts (id),
    seq INTEGER NOT NULL,
    ts_ns INTEGER NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE UNIQUE INDEX events_by_account ON events (account_id, seq);

CREATE TABLE snapshots (
    account_id INTEGER PRIMARY KEY REFERENCES accounts (id),
    seq INTEGER NOT NULL,
    ts_ns INTEGER NOT NULL,
    body TEXT NOT NULL
);

-- Like events, orders and fills are kept in arrival order, with unique
-- indexes for lookups: recent rows of every account share pages.
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts (id),
    order_id INTEGER NOT NULL,
    client_order_id TEXT NOT NULL,
    instrument_id INTEGER NOT NULL,
    side TEXT NOT NULL,
    order_type TEXT NOT NULL,
    status TEXT NOT NULL,
    is_open INTEGER NOT NULL,
    quantity TEXT NOT NULL,
    filled_quantity TEXT NOT NULL,
    ts_created_ns INTEGER NOT NULL,
    ts_updated_ns INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE UNIQUE INDEX orders_by_id ON orders (account_id, order_id);
CREATE UNIQUE INDEX orders_by_client_id ON orders (account_id, client_order_id);
CREATE INDEX orders_open ON orders (account_id, is_open, order_id);

CREATE TABLE fills (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts (id),
    order_id INTEGER NOT NULL,
    trade_id INTEGER NOT NULL,
    instrument_id INTEGER NOT NULL,
    side TEXT NOT NULL,
    quantity TEXT NOT NULL,
    price TEXT NOT NULL,
    fee TEXT NOT NULL,
    liquidity TEXT NOT NULL,
    ts_ns INTEGER NOT NULL,
    seq INTEGER NOT NULL
);
CREATE UNIQUE INDEX fills_by_trade ON fills (account_id, order_id, trade_id);
CREATE INDEX fills_by_seq ON fills (account_id, seq);

CREATE TABLE positions (
    account_id INTEGER NOT NULL REFERENCES accounts (id),
    instrument_id INTEGER NOT NULL,
    quantity TEXT NOT NULL,
    cost_basis TEXT NOT NULL,
    realized_pnl TEXT NOT NULL,
    fees TEXT NOT NULL,
    ts_updated_ns INTEGER NOT NULL,
    PRIMARY KEY (account_id, instrument_id)
) WITHOUT ROWID;

CREATE TABLE balances (
    account_id INTEGER NOT NULL REFERENCES accounts (id),
    currency TEXT NOT NULL,
    amount TEXT NOT NULL,
    ts_updated_ns INTEGER NOT NULL,
    PRIMARY KEY (account_id, currency)
) WITHOUT ROWID;

CREATE TABLE equity_snapshots (
    account_id INTEGER NOT NULL REFERENCES accounts (id),
    ts_ns INTEGER NOT NULL,
    equity TEXT NOT NULL,
    PRIMARY KEY (account_id, ts_ns)
) WITHOUT ROWID;
