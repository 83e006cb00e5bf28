//! Durable state: the event journal and the read models projected from it,
//! on SQLite (embedded, the default) or PostgreSQL, behind one interface.
//!
//! Every change to an account arrives as a [`Commit`]: its new events plus
//! the orders, fills, positions and balances those events changed. A commit's
//! rows are written in one transaction, so the journal and the read models
//! never disagree; [`GroupCommitter`] puts many concurrent commits in one
//! transaction so that durability costs one sync per batch, not per order.
//!
//! Events are numbered per account from 1 by the account's owner; the
//! primary key refuses a number twice, so two writers for one account (a
//! bug, or two instances) fail loudly instead of interleaving.
//!
//! Both backends run the same SQL (portable `INSERT ... ON CONFLICT`, `$n`
//! placeholders) through [`on_pool!`], which instantiates the same code for
//! each pool type; only the migrations differ.

/// Runs the same code on whichever pool the store has: `$pool` is a
/// `&SqlitePool` in one arm and a `&PgPool` in the other.
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.backend {
            Backend::Sqlite($pool) => $body,
            Backend::Postgres($pool) => $body,
        }
    };
}

/// Reads the listed columns, counted from `$at`, of a row into a tuple
/// (the tuple's type comes from the binding it is assigned to).
macro_rules! row_tuple {
    ($r:expr, $at:expr; $($i:literal)+) => {
        ( $( $r.try_get($at + $i)?, )+ )
    };
}

/// Writes an audit record (`crate::auth::AUDIT_INSERT`) inside the open
/// transaction `$tx`, so a change and its record land together.
macro_rules! insert_audit {
    ($tx:expr, $entry:expr, $target:expr, $detail:expr) => {
        sqlx::query(crate::auth::AUDIT_INSERT)
            .bind($entry.ts.as_nanos())
            .bind($entry.user_id)
            .bind($entry.action)
            .bind($target)
            .bind($detail)
            .bind($entry.ip)
            .execute(&mut *$tx)
            .await?
    };
}

/// Reads a row of [`FILL_COLUMNS`] as a [`FillTuple`].
macro_rules! fill_tuple {
    ($r:expr) => {
        row_tuple!($r, 0; 0 1 2 3 4 5 6 7 8 9)
    };
}

pub mod auth;
pub mod backtests;
pub mod bots;
mod commit;
pub mod dump;
pub mod jobs;
pub mod lease;
pub mod live_accounts;
mod market;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
pub mod venue_credentials;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use model::account::Position;
use model::event::Event;
use model::{Currency, Fill, InstrumentId, Money, Order, OrderId, OrderStatus, Quantity, Timestamp};
use serde::{Deserialize, Serialize};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Row};

pub use commit::{CommitStats, GroupCommitter};
pub use market::CandleRecord;

/// An account's id in the store.
pub type AccountId = i64;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL '{0}': use sqlite:PATH (or sqlite://PATH) or postgres://USER@HOST/DB")]
    UnsupportedUrl(String),
    #[error("cannot create the data directory {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored {what} cannot be read: {detail}")]
    Corrupt { what: &'static str, detail: String },
    #[error("event {seq} of account {account} (or a row it writes) already exists: another writer owns this account")]
    SeqConflict { account: AccountId, seq: u64 },
    #[error("the store's writer has stopped")]
    Closed,
    /// Rows changed under an operation that needed them unchanged.
    #[error("{0}")]
    Conflict(String),
}

/// Options for opening a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// Connections in the pool.
    pub max_connections: u32,
    /// SQLite only: sync to disk at every commit (`synchronous=FULL`), so an
    /// acknowledged commit survives a power cut, not just a crash. With
    /// `false` (`NORMAL`), a crash of the process still loses nothing.
    pub sqlite_full_sync: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self { max_connections: 8, sqlite_full_sync: true }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// One account's change: its new events (numbered from `first_seq`) and the
/// read-model rows they changed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Commit {
    pub account: AccountId,
    /// The seq of `events[0]`; the rest follow one by one.
    pub first_seq: u64,
    pub events: Vec<Event>,
    /// Orders as they are after the events (inserted or replaced).
    pub orders: Vec<Order>,
    pub fills: Vec<Fill>,
    pub positions: Vec<Position>,
    pub balances: Vec<(Currency, Money)>,
}

/// An account as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRow {
    pub id: AccountId,
    pub name: String,
    pub base_currency: Currency,
    pub created: Timestamp,
}

/// Which orders to list. Results are newest first; `before` is the cursor
/// (the last order id of the previous page).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OrderQuery {
    pub open_only: bool,
    pub status: Option<OrderStatus>,
    pub instrument: Option<InstrumentId>,
    pub before: Option<OrderId>,
    /// Only orders whose client order id starts with this (a bot's orders).
    pub client_prefix: Option<String>,
    pub limit: u32,
}

/// The most rows one multi-row statement carries; keeps every statement
/// under SQLite's and PostgreSQL's bind-parameter limits.
pub(crate) const ROWS_PER_STATEMENT: usize = 1_000;

pub(crate) fn ns(ts: Timestamp) -> i64 {
    ts.as_nanos()
}

pub(crate) fn to_i64(v: u64, what: &'static str) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Corrupt { what, detail: format!("{v} does not fit a database integer") })
}

pub(crate) fn from_i64(v: i64, what: &'static str) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt { what, detail: format!("negative value {v}") })
}

pub(crate) fn json<T: Serialize>(value: &T, what: &'static str) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt { what, detail: e.to_string() })
}

pub(crate) fn parse_json<T: for<'de> Deserialize<'de>>(text: &str, what: &'static str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt { what, detail: e.to_string() })
}

pub(crate) fn parse_text<T: FromStr>(text: &str, what: &'static str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    text.parse().map_err(|e: T::Err| StoreError::Corrupt { what, detail: format!("'{text}': {e}") })
}

/// An account's equity at one moment: in its base currency, and in each
/// currency it holds (cash plus the positions quoted in it, unconverted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EquitySnapshot {
    pub account: AccountId,
    pub ts: Timestamp,
    pub equity: Money,
    /// Empty for snapshots taken before it was recorded.
    pub by_currency: Vec<(Currency, Money)>,
}

/// Was this error a primary-key or unique violation?
/// A fill as selected by [`FILL_COLUMNS`].
pub(crate) type FillTuple = (i64, i64, i64, i64, String, String, String, String, String, i64);

/// The columns of a [`FillTuple`], in order.
pub(crate) const FILL_COLUMNS: &str = "fills.seq, fills.order_id, fills.trade_id, fills.instrument_id, fills.side, \
     fills.quantity, fills.price, fills.fee, fills.liquidity, fills.ts_ns";

pub(crate) fn fill_from(
    (seq, order, trade, instrument, side, qty, price, fee, liquidity, ts): FillTuple,
) -> Result<(u64, Fill), StoreError> {
    let fill = Fill {
        order_id: OrderId(from_i64(order, "order id")?),
        trade_id: from_i64(trade, "trade id")?,
        instrument: InstrumentId(
            u32::try_from(instrument)
                .map_err(|_| StoreError::Corrupt { what: "instrument id", detail: instrument.to_string() })?,
        ),
        side: parse_text(&side, "side")?,
        quantity: parse_text(&qty, "quantity")?,
        price: parse_text(&price, "price")?,
        fee: parse_text(&fee, "fee")?,
        liquidity: parse_json(&format!("\"{liquidity}\""), "liquidity")?,
        ts: Timestamp::from_nanos(ts),
    };
    Ok((from_i64(seq, "seq")?, fill))
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// Copies the WAL back into the database file every second, on a pool
/// connection other than the writer's, so the writer does not pay for it.
/// Stops when the pool closes.
fn checkpoint_in_background(pool: SqlitePool) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if pool.is_closed() {
                break;
            }
            // PASSIVE never blocks writers; a failure is retried next tick.
            let _ = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&pool).await;
        }
    });
}

/// The durable store.
#[derive(Debug, Clone)]
pub struct Store {
    backend: Backend,
}

impl Store {
    /// Opens `sqlite:PATH` (creating the file and its directory) or
    /// `postgres://...`. Does not migrate: call [`Store::migrate`].
    pub async fn connect(url: &str, options: StoreOptions) -> Result<Self, StoreError> {
        let backend = if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.trim_start_matches("//");
            let path = path.split('?').next().unwrap_or(path);
            if path.is_empty() {
                return Err(StoreError::UnsupportedUrl(url.to_string()));
            }
            if path != ":memory:"
                && let Some(dir) = Path::new(path).parent().filter(|d| !d.as_os_str().is_empty())
            {
                std::fs::create_dir_all(dir)
                    .map_err(|source| StoreError::DataDir { path: dir.display().to_string(), source })?;
            }
            let connect = SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(if options.sqlite_full_sync { SqliteSynchronous::Full } else { SqliteSynchronous::Normal })
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
                // A larger page cache and memory-mapped reads keep the
                // writer out of read syscalls as the journal grows.
                .pragma("cache_size", "-65536")
                .pragma("mmap_size", "268435456")
                .pragma("temp_store", "memory")
                // Checkpoints run from a background task on another
                // connection (see `checkpoint_in_background`); this is the
                // writer's fallback if that falls behind.
                .pragma("wal_autocheckpoint", "20000");
            let pool =
                SqlitePoolOptions::new().max_connections(options.max_connections.max(1)).connect_with(connect).await?;
            checkpoint_in_background(pool.clone());
            Backend::Sqlite(pool)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = PgPoolOptions::new()
                .max_connections(options.max_connections.max(1))
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await?;
            Backend::Postgres(pool)
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_string()));
        };
        Ok(Self { backend })
    }

    /// `sqlite` or `postgres`.
    #[must_use]
    pub fn backend(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    fn migrator(&self) -> &'static Migrator {
        match self.backend {
            Backend::Sqlite(_) => &SQLITE_MIGRATIONS,
            Backend::Postgres(_) => &POSTGRES_MIGRATIONS,
        }
    }

    /// Applies every migration not applied yet. Safe to run again.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(pool) => SQLITE_MIGRATIONS.run(pool).await?,
            Backend::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await?,
        }
        Ok(())
    }

    /// Versions of the migrations this build has that the database lacks.
    pub async fn pending_migrations(&self) -> Result<Vec<i64>, StoreError> {
        let applied: Vec<i64> = on_pool!(self, |pool| {
            match sqlx::query("SELECT version FROM _sqlx_migrations WHERE success").fetch_all(pool).await {
                Ok(rows) => rows.iter().map(|r| r.try_get::<i64, _>(0)).collect::<Result<Vec<_>, _>>()?,
                // No bookkeeping table yet: nothing applied.
                Err(_) => Vec::new(),
            }
        });
        Ok(self.migrator().iter().map(|m| m.version).filter(|v| !applied.contains(v)).collect())
    }

    /// Checks the database answers.
    /// Connections in the pool: (open, idle).
    #[must_use]
    pub fn pool_state(&self) -> (u32, usize) {
        on_pool!(self, |pool| (pool.size(), pool.num_idle()))
    }

    /// How long taking a connection from the pool takes now (it is given
    /// back at once): how long queries wait for one.
    pub async fn acquire_latency(&self) -> Result<Duration, StoreError> {
        let started = std::time::Instant::now();
        on_pool!(self, |pool| drop(pool.acquire().await?));
        Ok(started.elapsed())
    }

    /// The database server's clock, for comparing with ours: PostgreSQL's;
    /// `None` for SQLite, which runs on this machine's clock.
    pub async fn database_now(&self) -> Result<Option<Timestamp>, StoreError> {
        match &self.backend {
            Backend::Sqlite(_) => Ok(None),
            Backend::Postgres(pool) => {
                let sql = "SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::BIGINT";
                let micros: i64 = sqlx::query(sql).fetch_one(pool).await?.try_get(0)?;
                Ok(Some(Timestamp::from_nanos(micros.saturating_mul(1000))))
            }
        }
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        on_pool!(self, |pool| sqlx::query("SELECT 1").execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Runs one statement without parameters, for administration (creating
    /// a database in tests and tools). Never pass it user input.
    pub async fn execute_admin(&self, sql: &str) -> Result<(), StoreError> {
        on_pool!(self, |pool| sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string())).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Closes the pool, waiting for connections to finish.
    pub async fn close(&self) {
        on_pool!(self, |pool| pool.close().await);
    }

    pub async fn create_account(
        &self,
        name: &str,
        base_currency: Currency,
        now: Timestamp,
    ) -> Result<AccountId, StoreError> {
        let sql = "INSERT INTO accounts (name, base_currency, created_ns) VALUES ($1, $2, $3) RETURNING id";
        let id: i64 = on_pool!(self, |pool| {
            sqlx::query(sql).bind(name).bind(base_currency.as_str()).bind(ns(now)).fetch_one(pool).await?.try_get(0)?
        });
        Ok(id)
    }

    pub async fn accounts(&self) -> Result<Vec<AccountRow>, StoreError> {
        let sql = "SELECT id, name, base_currency, created_ns FROM accounts ORDER BY id";
        let rows: Vec<(i64, String, String, i64)> = on_pool!(self, |pool| {
            let rows = sqlx::query(sql).fetch_all(pool).await?;
            rows.iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
                .collect::<Result<Vec<_>, sqlx::Error>>()?
        });
        rows.into_iter()
            .map(|(id, name, currency, created)| {
                Ok(AccountRow {
                    id,
                    name,
                    base_currency: parse_text(&currency, "account currency")?,
                    created: Timestamp::from_nanos(created),
                })
            })
            .collect()
    }

    /// Writes commits in one transaction: all of them or none.
    pub async fn write(&self, commits: &[Commit]) -> Result<(), StoreError> {
        let rows = Rows::build(commits)?;
        // The writes run in an inner block so a unique violation can be told
        // apart below instead of leaving through `?`.
        let result: Result<(), sqlx::Error> = on_pool!(self, |pool| async {
            let mut tx = pool.begin().await?;
            for chunk in rows.events.chunks(ROWS_PER_STATEMENT) {
                let mut q = QueryBuilder::new("INSERT INTO events (account_id, seq, ts_ns, kind, payload) ");
                q.push_values(chunk, |mut b, e| {
                    b.push_bind(e.0).push_bind(e.1).push_bind(e.2).push_bind(e.3).push_bind(&e.4);
                });
                q.build().execute(&mut *tx).await?;
            }
            for chunk in rows.orders.chunks(ROWS_PER_STATEMENT) {
                let mut q = QueryBuilder::new(
                    "INSERT INTO orders (account_id, order_id, client_order_id, instrument_id, side, order_type, \
                     status, is_open, quantity, filled_quantity, ts_created_ns, ts_updated_ns, body) ",
                );
                q.push_values(chunk, |mut b, o| {
                    b.push_bind(o.account)
                        .push_bind(o.order_id)
                        .push_bind(&o.client_order_id)
                        .push_bind(o.instrument)
                        .push_bind(o.side)
                        .push_bind(o.order_type)
                        .push_bind(o.status)
                        .push_bind(o.is_open)
                        .push_bind(&o.quantity)
                        .push_bind(&o.filled_quantity)
                        .push_bind(o.created)
                        .push_bind(o.updated)
                        .push_bind(&o.body);
                });
                q.push(
                    " ON CONFLICT (account_id, order_id) DO UPDATE SET status = excluded.status, \
                     is_open = excluded.is_open, filled_quantity = excluded.filled_quantity, \
                     ts_updated_ns = excluded.ts_updated_ns, body = excluded.body",
                );
                q.build().execute(&mut *tx).await?;
            }
            for chunk in rows.fills.chunks(ROWS_PER_STATEMENT) {
                let mut q = QueryBuilder::new(
                    "INSERT INTO fills (account_id, order_id, trade_id, instrument_id, side, quantity, price, fee, \
                     liquidity, ts_ns, seq) ",
                );
                q.push_values(chunk, |mut b, f| {
                    b.push_bind(f.account)
                        .push_bind(f.order_id)
                        .push_bind(f.trade_id)
                        .push_bind(f.instrument)
                        .push_bind(f.side)
                        .push_bind(&f.quantity)
                        .push_bind(&f.price)
                        .push_bind(&f.fee)
                        .push_bind(f.liquidity)
                        .push_bind(f.ts)
                        .push_bind(f.seq);
                });
                q.build().execute(&mut *tx).await?;
            }
            for chunk in rows.positions.chunks(ROWS_PER_STATEMENT) {
                let mut q = QueryBuilder::new(
                    "INSERT INTO positions (account_id, instrument_id, quantity, cost_basis, realized_pnl, fees, \
                     ts_updated_ns) ",
                );
                q.push_values(chunk, |mut b, p| {
                    b.push_bind(p.0)
                        .push_bind(p.1)
                        .push_bind(&p.2)
                        .push_bind(&p.3)
                        .push_bind(&p.4)
                        .push_bind(&p.5)
                        .push_bind(p.6);
                });
                q.push(
                    " ON CONFLICT (account_id, instrument_id) DO UPDATE SET quantity = excluded.quantity, \
                     cost_basis = excluded.cost_basis, realized_pnl = excluded.realized_pnl, fees = excluded.fees, \
                     ts_updated_ns = excluded.ts_updated_ns",
                );
                q.build().execute(&mut *tx).await?;
            }
            for chunk in rows.balances.chunks(ROWS_PER_STATEMENT) {
                let mut q = QueryBuilder::new("INSERT INTO balances (account_id, currency, amount, ts_updated_ns) ");
                q.push_values(chunk, |mut b, c| {
                    b.push_bind(c.0).push_bind(&c.1).push_bind(&c.2).push_bind(c.3);
                });
                q.push(
                    " ON CONFLICT (account_id, currency) DO UPDATE SET amount = excluded.amount, \
                     ts_updated_ns = excluded.ts_updated_ns",
                );
                q.build().execute(&mut *tx).await?;
            }
            tx.commit().await
        }
        .await);
        match result {
            Ok(()) => Ok(()),
            Err(e) if is_unique_violation(&e) => {
                let (account, seq) = commits.first().map_or((0, 0), |c| (c.account, c.first_seq));
                Err(StoreError::SeqConflict { account, seq })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The account's events after `after_seq`, in order, at most `limit`.
    pub async fn events(
        &self,
        account: AccountId,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<(u64, Event)>, StoreError> {
        let sql = "SELECT seq, payload FROM events WHERE account_id = $1 AND seq > $2 ORDER BY seq LIMIT $3";
        let after = to_i64(after_seq, "seq")?;
        let rows: Vec<(i64, String)> = on_pool!(self, |pool| {
            let rows = sqlx::query(sql).bind(account).bind(after).bind(i64::from(limit)).fetch_all(pool).await?;
            rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect::<Result<Vec<_>, sqlx::Error>>()?
        });
        rows.into_iter().map(|(seq, payload)| Ok((from_i64(seq, "seq")?, parse_json(&payload, "event")?))).collect()
    }

    /// The account's events before `before_seq`, newest first, at most
    /// `limit`: for reading back to where something started.
    pub async fn events_before(
        &self,
        account: AccountId,
        before_seq: u64,
        limit: u32,
    ) -> Result<Vec<(u64, Event)>, StoreError> {
        let sql = "SELECT seq, payload FROM events WHERE account_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3";
        let before = to_i64(before_seq, "seq")?;
        let rows: Vec<(i64, String)> = on_pool!(self, |pool| {
            let rows = sqlx::query(sql).bind(account).bind(before).bind(i64::from(limit)).fetch_all(pool).await?;
            rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect::<Result<Vec<_>, sqlx::Error>>()?
        });
        rows.into_iter().map(|(seq, payload)| Ok((from_i64(seq, "seq")?, parse_json(&payload, "event")?))).collect()
    }

    /// The highest journaled seq of the account (0 when it has none).
    pub async fn last_seq(&self, account: AccountId) -> Result<u64, StoreError> {
        let sql = "SELECT COALESCE(MAX(seq), 0) FROM events WHERE account_id = $1";
        let seq: i64 = on_pool!(self, |pool| sqlx::query(sql).bind(account).fetch_one(pool).await?.try_get(0)?);
        from_i64(seq, "seq")
    }

    /// Replaces the account's snapshot: its state (opaque to the store) as of `seq`.
    pub async fn save_snapshot(
        &self,
        account: AccountId,
        seq: u64,
        ts: Timestamp,
        body: &str,
    ) -> Result<(), StoreError> {
        let sql = "INSERT INTO snapshots (account_id, seq, ts_ns, body) VALUES ($1, $2, $3, $4) \
                   ON CONFLICT (account_id) DO UPDATE SET seq = excluded.seq, ts_ns = excluded.ts_ns, body = excluded.body";
        let seq = to_i64(seq, "seq")?;
        on_pool!(self, |pool| sqlx::query(sql)
            .bind(account)
            .bind(seq)
            .bind(ns(ts))
            .bind(body)
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// The account's latest snapshot: `(seq, body)`.
    pub async fn snapshot(&self, account: AccountId) -> Result<Option<(u64, String)>, StoreError> {
        let sql = "SELECT seq, body FROM snapshots WHERE account_id = $1";
        let row: Option<(i64, String)> = on_pool!(self, |pool| {
            match sqlx::query(sql).bind(account).fetch_optional(pool).await? {
                Some(r) => Some((r.try_get(0)?, r.try_get(1)?)),
                None => None,
            }
        });
        row.map(|(seq, body)| Ok((from_i64(seq, "seq")?, body))).transpose()
    }

    /// Orders of an account, newest first.
    pub async fn orders(&self, account: AccountId, query: &OrderQuery) -> Result<Vec<Order>, StoreError> {
        let before = query.before.map(|o| to_i64(o.0, "order id")).transpose()?;
        let bodies: Vec<String> = on_pool!(self, |pool| {
            let mut q = QueryBuilder::new("SELECT body FROM orders WHERE account_id = ");
            q.push_bind(account);
            if query.open_only {
                q.push(" AND is_open = ").push_bind(true);
            }
            if let Some(status) = query.status {
                q.push(" AND status = ").push_bind(status.as_str());
            }
            if let Some(instrument) = query.instrument {
                q.push(" AND instrument_id = ").push_bind(i64::from(instrument.0));
            }
            if let Some(before) = before {
                q.push(" AND order_id < ").push_bind(before);
            }
            if let Some(prefix) = &query.client_prefix {
                let len = i64::try_from(prefix.len()).unwrap_or(i64::MAX);
                q.push(" AND substr(client_order_id, 1, CAST(").push_bind(len).push(" AS INTEGER)) = ");
                q.push_bind(prefix.clone());
            }
            q.push(" ORDER BY order_id DESC LIMIT ").push_bind(i64::from(query.limit.max(1)));
            let rows = q.build().fetch_all(pool).await?;
            rows.iter().map(|r| r.try_get(0)).collect::<Result<Vec<_>, sqlx::Error>>()?
        });
        bodies.iter().map(|b| parse_json(b, "order")).collect()
    }

    pub async fn order(&self, account: AccountId, id: OrderId) -> Result<Option<Order>, StoreError> {
        let sql = "SELECT body FROM orders WHERE account_id = $1 AND order_id = $2";
        let id = to_i64(id.0, "order id")?;
        let body: Option<String> = on_pool!(self, |pool| {
            match sqlx::query(sql).bind(account).bind(id).fetch_optional(pool).await? {
                Some(r) => Some(r.try_get(0)?),
                None => None,
            }
        });
        body.map(|b| parse_json(&b, "order")).transpose()
    }

    /// Fills of an account, newest first; `before_seq` is the cursor.
    pub async fn fills(
        &self,
        account: AccountId,
        before_seq: Option<u64>,
        limit: u32,
    ) -> Result<Vec<(u64, Fill)>, StoreError> {
        let sql = "SELECT seq, order_id, trade_id, instrument_id, side, quantity, price, fee, liquidity, ts_ns \
                   FROM fills WHERE account_id = $1 AND seq < $2 ORDER BY seq DESC, order_id DESC, trade_id DESC LIMIT $3";
        let before = before_seq.map_or(Ok(i64::MAX), |s| to_i64(s, "seq"))?;
        let rows: Vec<FillTuple> = on_pool!(self, |pool| {
            let rows =
                sqlx::query(sql).bind(account).bind(before).bind(i64::from(limit.max(1))).fetch_all(pool).await?;
            rows.iter().map(|r| Ok(fill_tuple!(r))).collect::<Result<Vec<_>, sqlx::Error>>()?
        });
        rows.into_iter().map(fill_from).collect()
    }

    /// Positions of an account, flat ones included (they carry realized P&L).
    pub async fn positions(&self, account: AccountId) -> Result<Vec<Position>, StoreError> {
        let sql = "SELECT instrument_id, quantity, cost_basis, realized_pnl, fees FROM positions \
                   WHERE account_id = $1 ORDER BY instrument_id";
        let rows: Vec<(i64, String, String, String, String)> = on_pool!(self, |pool| {
            let rows = sqlx::query(sql).bind(account).fetch_all(pool).await?;
            rows.iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?, r.try_get(4)?)))
                .collect::<Result<Vec<_>, sqlx::Error>>()?
        });
        rows.into_iter()
            .map(|(instrument, qty, cost, realized, fees)| {
                Ok(Position {
                    instrument: InstrumentId(
                        u32::try_from(instrument).map_err(|_| StoreError::Corrupt {
                            what: "instrument id",
                            detail: instrument.to_string(),
                        })?,
                    ),
                    quantity: parse_text::<Quantity>(&qty, "position quantity")?,
                    cost_basis: parse_text(&cost, "cost basis")?,
                    realized_pnl: parse_text(&realized, "realized P&L")?,
                    fees: parse_text(&fees, "fees")?,
                })
            })
            .collect()
    }

    pub async fn balances(&self, account: AccountId) -> Result<Vec<(Currency, Money)>, StoreError> {
        let sql = "SELECT currency, amount FROM balances WHERE account_id = $1 ORDER BY currency";
        let rows: Vec<(String, String)> = on_pool!(self, |pool| {
            let rows = sqlx::query(sql).bind(account).fetch_all(pool).await?;
            rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect::<Result<Vec<_>, sqlx::Error>>()?
        });
        rows.into_iter().map(|(c, a)| Ok((parse_text(&c, "currency")?, parse_text(&a, "balance")?))).collect()
    }

    /// Records the account's equity at a moment (for equity history).
    pub async fn save_equity(&self, account: AccountId, ts: Timestamp, equity: Money) -> Result<(), StoreError> {
        let sql = "INSERT INTO equity_snapshots (account_id, ts_ns, equity) VALUES ($1, $2, $3) \
                   ON CONFLICT (account_id, ts_ns) DO UPDATE SET equity = excluded.equity";
        let equity = equity.to_string();
        on_pool!(self, |pool| sqlx::query(sql)
            .bind(account)
            .bind(ns(ts))
            .bind(&equity)
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Records many accounts' equity at once, in one transaction (one sync
    /// for the whole round instead of one per account).
    pub async fn save_equities(&self, ts: Timestamp, rows: &[EquitySnapshot]) -> Result<(), StoreError> {
        let mut encoded: Vec<(AccountId, String, String)> = Vec::with_capacity(rows.len());
        for row in rows {
            let by_currency = json(&row.by_currency, "equity by currency")?;
            encoded.push((row.account, row.equity.to_string(), by_currency));
        }
        on_pool!(self, |pool| async {
            let mut tx = pool.begin().await?;
            for chunk in encoded.chunks(ROWS_PER_STATEMENT) {
                let mut q = QueryBuilder::new("INSERT INTO equity_snapshots (account_id, ts_ns, equity, by_currency) ");
                q.push_values(chunk, |mut b, (account, equity, by_currency)| {
                    b.push_bind(*account).push_bind(ns(ts)).push_bind(equity).push_bind(by_currency);
                });
                q.push(
                    " ON CONFLICT (account_id, ts_ns) DO UPDATE SET equity = excluded.equity, \
                     by_currency = excluded.by_currency",
                );
                q.build().execute(&mut *tx).await?;
            }
            tx.commit().await
        }
        .await)?;
        Ok(())
    }

    /// Equity history between two moments, oldest first.
    pub async fn equity_history(
        &self,
        account: AccountId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<EquitySnapshot>, StoreError> {
        let sql = "SELECT ts_ns, equity, by_currency FROM equity_snapshots \
                   WHERE account_id = $1 AND ts_ns >= $2 AND ts_ns < $3 ORDER BY ts_ns";
        let rows: Vec<(i64, String, Option<String>)> = on_pool!(self, |pool| {
            let rows = sqlx::query(sql).bind(account).bind(ns(from)).bind(ns(to)).fetch_all(pool).await?;
            rows.iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
                .collect::<Result<Vec<_>, sqlx::Error>>()?
        });
        rows.into_iter()
            .map(|(ts, equity, by_currency)| {
                Ok(EquitySnapshot {
                    account,
                    ts: Timestamp::from_nanos(ts),
                    equity: parse_text(&equity, "equity")?,
                    by_currency: match by_currency {
                        Some(json) => parse_json(&json, "equity by currency")?,
                        None => Vec::new(),
                    },
                })
            })
            .collect()
    }
}

/// The rows of a batch of commits, ready to bind. Rows that several commits
/// in one batch touch (an order updated twice) keep their last version, since
/// one statement may not update a row twice.
#[derive(Default)]
struct Rows {
    events: Vec<(i64, i64, i64, &'static str, String)>,
    orders: Vec<OrderRow>,
    fills: Vec<FillRow>,
    positions: Vec<(i64, i64, String, String, String, String, i64)>,
    balances: Vec<(i64, String, String, i64)>,
}

struct OrderRow {
    account: i64,
    order_id: i64,
    client_order_id: String,
    instrument: i64,
    side: &'static str,
    order_type: &'static str,
    status: &'static str,
    is_open: bool,
    quantity: String,
    filled_quantity: String,
    created: i64,
    updated: i64,
    body: String,
}

struct FillRow {
    account: i64,
    order_id: i64,
    trade_id: i64,
    instrument: i64,
    side: &'static str,
    quantity: String,
    price: String,
    fee: String,
    liquidity: &'static str,
    ts: i64,
    seq: i64,
}

impl Rows {
    fn build(commits: &[Commit]) -> Result<Self, StoreError> {
        use std::collections::HashMap;
        let mut rows = Self::default();
        let mut order_at: HashMap<(i64, i64), usize> = HashMap::new();
        let mut position_at: HashMap<(i64, i64), usize> = HashMap::new();
        let mut balance_at: HashMap<(i64, String), usize> = HashMap::new();
        for c in commits {
            let first = to_i64(c.first_seq, "seq")?;
            let last_ts = c.events.last().map_or(0, |e| ns(e.ts));
            for (i, event) in c.events.iter().enumerate() {
                let seq = first + i64::try_from(i).unwrap_or(i64::MAX);
                rows.events.push((c.account, seq, ns(event.ts), event.kind.name(), json(event, "event")?));
                if let model::event::EventKind::OrderFilled { fill } = &event.kind {
                    rows.fills.push(FillRow {
                        account: c.account,
                        order_id: to_i64(fill.order_id.0, "order id")?,
                        trade_id: to_i64(fill.trade_id, "trade id")?,
                        instrument: i64::from(fill.instrument.0),
                        side: fill.side.as_str(),
                        quantity: fill.quantity.to_string(),
                        price: fill.price.to_string(),
                        fee: fill.fee.to_string(),
                        liquidity: match fill.liquidity {
                            model::Liquidity::Maker => "maker",
                            model::Liquidity::Taker => "taker",
                        },
                        ts: ns(fill.ts),
                        seq,
                    });
                }
            }
            for o in &c.orders {
                let row = OrderRow {
                    account: c.account,
                    order_id: to_i64(o.id.0, "order id")?,
                    client_order_id: o.client_order_id.to_string(),
                    instrument: i64::from(o.instrument.0),
                    side: o.side.as_str(),
                    order_type: o.order_type.name(),
                    status: o.status.as_str(),
                    is_open: o.status.is_open(),
                    quantity: o.quantity.to_string(),
                    filled_quantity: o.filled_quantity.to_string(),
                    created: ns(o.ts_created),
                    updated: ns(o.ts_updated),
                    body: json(o, "order")?,
                };
                match order_at.get(&(row.account, row.order_id)) {
                    Some(&i) => rows.orders[i] = row,
                    None => {
                        order_at.insert((row.account, row.order_id), rows.orders.len());
                        rows.orders.push(row);
                    }
                }
            }
            for p in &c.positions {
                let row = (
                    c.account,
                    i64::from(p.instrument.0),
                    p.quantity.to_string(),
                    p.cost_basis.to_string(),
                    p.realized_pnl.to_string(),
                    p.fees.to_string(),
                    last_ts,
                );
                match position_at.get(&(row.0, row.1)) {
                    Some(&i) => rows.positions[i] = row,
                    None => {
                        position_at.insert((row.0, row.1), rows.positions.len());
                        rows.positions.push(row);
                    }
                }
            }
            for (currency, amount) in &c.balances {
                let row = (c.account, currency.to_string(), amount.to_string(), last_ts);
                match balance_at.get(&(row.0, row.1.clone())) {
                    Some(&i) => rows.balances[i] = row,
                    None => {
                        balance_at.insert((row.0, row.1.clone()), rows.balances.len());
                        rows.balances.push(row);
                    }
                }
            }
        }
        Ok(rows)
    }
}
