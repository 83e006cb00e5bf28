//! A logical dump of the whole database, the same on SQLite and PostgreSQL:
//! what backups are made of.
//!
//! Every table is read inside one read-only transaction (a repeatable-read
//! snapshot on PostgreSQL; a read transaction under WAL on SQLite), so the
//! dump is consistent while the server keeps writing. The format is JSON
//! lines: a header, then per table a line naming its columns followed by
//! one array per row, then an end line with the row count, so a cut-short
//! dump is detected. Loading goes into an empty, migrated database in one
//! transaction (all or nothing), converting each value to the target
//! column's type, so a dump of one backend loads into the other.

use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::SqlSafeStr as _;
use sqlx::{Column, QueryBuilder, Row, TypeInfo, ValueRef};

use crate::{Backend, Store, StoreError};

/// Every table, parents before the tables that reference them. A table the
/// database has but this list lacks makes a dump fail, so a new table is
/// never silently left out of backups.
pub const TABLES: &[&str] = &[
    "users",
    "accounts",
    "account_owners",
    "events",
    "snapshots",
    "orders",
    "fills",
    "positions",
    "balances",
    "equity_snapshots",
    "equity_daily",
    "candles",
    "sessions",
    "api_tokens",
    "audit_log",
    "backtests",
    "bots",
    "jobs",
    "venue_credentials",
    "live_accounts",
    "live_position_adjustments",
];

/// Tables a dump leaves out: state of the running cluster, not data.
pub const NOT_DUMPED: &[&str] = &["leases"];

/// Columns only one backend has, which the other assigns itself.
const BACKEND_ONLY: &[(&str, &str)] = &[("events", "id"), ("orders", "id"), ("fills", "id")];

const FORMAT: &str = "tradecore-dump";
const FORMAT_VERSION: u32 = 1;
/// Rows per INSERT when loading (well under both backends' parameter limits).
const ROWS_PER_INSERT: usize = 200;

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    format: String,
    version: u32,
    /// The newest migration applied to the dumped database.
    schema: i64,
    /// `sqlite` or `postgres`.
    backend: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct TableStart {
    table: String,
    columns: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct End {
    end: bool,
    rows: u64,
}

/// What a dump held.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpSummary {
    pub schema: i64,
    pub backend: String,
    /// Rows per table, in dump order.
    pub tables: Vec<(String, u64)>,
}

impl DumpSummary {
    #[must_use]
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|(_, n)| n).sum()
    }
}

fn corrupt(detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt { what: "dump", detail: detail.into() }
}

fn io(e: &std::io::Error) -> StoreError {
    corrupt(format!("cannot write or read the dump: {e}"))
}

fn line(out: &mut impl Write, value: &impl Serialize) -> Result<(), StoreError> {
    serde_json::to_writer(&mut *out, value).map_err(|e| corrupt(e.to_string()))?;
    out.write_all(b"\n").map_err(|e| io(&e))
}

/// A column's value as JSON, from whatever type the backend reports.
fn value_of<R: Row>(row: &R, i: usize) -> Result<Value, sqlx::Error>
where
    usize: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i32: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> f64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let raw = row.try_get_raw(i)?;
    if raw.is_null() {
        return Ok(Value::Null);
    }
    let kind = raw.type_info().name().to_ascii_uppercase();
    drop(raw);
    Ok(match kind.as_str() {
        "INTEGER" | "INT8" | "BIGINT" => Value::from(row.try_get_unchecked::<i64, _>(i)?),
        "INT4" | "INT" | "INT2" => Value::from(row.try_get_unchecked::<i32, _>(i)?),
        "REAL" | "FLOAT8" | "FLOAT4" | "DOUBLE" => Value::from(row.try_get_unchecked::<f64, _>(i)?),
        "BOOL" | "BOOLEAN" => Value::from(row.try_get_unchecked::<bool, _>(i)?),
        _ => Value::from(row.try_get_unchecked::<String, _>(i)?),
    })
}

/// How a target column stores values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ColumnType {
    Integer,
    Boolean,
    Real,
    Text,
}

fn column_type(declared: &str) -> ColumnType {
    let d = declared.to_ascii_lowercase();
    if d.contains("bool") {
        ColumnType::Boolean
    } else if d.contains("int") {
        ColumnType::Integer
    } else if d.contains("real") || d.contains("double") || d.contains("float") {
        ColumnType::Real
    } else {
        ColumnType::Text
    }
}

impl Store {
    /// The newest migration applied.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        let sql = "SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success";
        let v: i64 = on_pool!(self, |pool| sqlx::query(sql).fetch_one(pool).await?.try_get(0)?);
        Ok(v)
    }

    /// The tables in the database (migrations' own bookkeeping aside).
    pub async fn table_names(&self) -> Result<Vec<String>, StoreError> {
        let names: Vec<String> = match &self.backend {
            Backend::Sqlite(pool) => {
                let sql = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
                           AND name <> '_sqlx_migrations' ORDER BY name";
                sqlx::query(sql).fetch_all(pool).await?.iter().map(|r| r.try_get(0)).collect::<Result<_, _>>()?
            }
            Backend::Postgres(pool) => {
                let sql = "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema() \
                           AND tablename <> '_sqlx_migrations' ORDER BY tablename";
                sqlx::query(sql).fetch_all(pool).await?.iter().map(|r| r.try_get(0)).collect::<Result<_, _>>()?
            }
        };
        Ok(names)
    }

    /// Whether every table is empty (a database a dump may be loaded into).
    pub async fn is_empty(&self) -> Result<bool, StoreError> {
        for table in TABLES {
            let sql = format!("SELECT COUNT(*) FROM {table}");
            let n: i64 = on_pool!(self, |pool| sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .fetch_one(pool)
                .await?
                .try_get(0)?);
            if n > 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Writes the whole database to `out`, consistently; `progress(table,
    /// rows so far)` is called as it goes.
    pub async fn dump(
        &self,
        out: &mut impl Write,
        progress: &mut (dyn FnMut(&str, u64) + Send),
    ) -> Result<DumpSummary, StoreError> {
        let present = self.table_names().await?;
        if let Some(unknown) =
            present.iter().find(|t| !TABLES.contains(&t.as_str()) && !NOT_DUMPED.contains(&t.as_str()))
        {
            return Err(corrupt(format!("table '{unknown}' is not in the dump's table list (store::dump::TABLES)")));
        }
        let schema = self.schema_version().await?;
        let backend = self.backend().to_string();
        line(out, &Header { format: FORMAT.to_string(), version: FORMAT_VERSION, schema, backend: backend.clone() })?;
        let mut summary = DumpSummary { schema, backend, tables: Vec::new() };
        let mut total = 0u64;
        macro_rules! dump_with {
            ($pool:expr, $snapshot:expr) => {{
                use futures_util::TryStreamExt as _;
                let mut tx = $pool.begin().await?;
                if let Some(snapshot) = $snapshot {
                    sqlx::query(snapshot).execute(&mut *tx).await?;
                }
                for table in TABLES.iter().filter(|t| present.iter().any(|p| p == *t)) {
                    let columns: Vec<String> = {
                        let sql = format!("SELECT * FROM {table}");
                        let info = sqlx::Executor::describe(&mut *tx, sqlx::AssertSqlSafe(sql).into_sql_str()).await?;
                        info.columns().iter().map(|c| c.name().to_string()).collect()
                    };
                    line(out, &TableStart { table: (*table).to_string(), columns: columns.clone() })?;
                    let sql = format!("SELECT * FROM {table}");
                    let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).fetch(&mut *tx);
                    let mut n = 0u64;
                    while let Some(row) = rows.try_next().await? {
                        let values =
                            (0..columns.len()).map(|i| value_of(&row, i)).collect::<Result<Vec<Value>, _>>()?;
                        line(out, &values)?;
                        n += 1;
                        if n % 10_000 == 0 {
                            progress(table, n);
                        }
                    }
                    drop(rows);
                    progress(table, n);
                    total += n;
                    summary.tables.push(((*table).to_string(), n));
                }
                tx.commit().await?;
            }};
        }
        match &self.backend {
            Backend::Sqlite(pool) => dump_with!(pool, None::<&str>),
            Backend::Postgres(pool) => {
                dump_with!(pool, Some("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))
            }
        }
        line(out, &End { end: true, rows: total })?;
        out.flush().map_err(|e| io(&e))?;
        Ok(summary)
    }

    /// The declared type of each column of `table` in this database.
    async fn column_types(&self, table: &str) -> Result<Vec<(String, ColumnType)>, StoreError> {
        let rows: Vec<(String, String)> = match &self.backend {
            Backend::Sqlite(pool) => {
                let sql = format!("SELECT name, type FROM pragma_table_info('{table}')");
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).fetch_all(pool).await?;
                rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect::<Result<_, sqlx::Error>>()?
            }
            Backend::Postgres(pool) => {
                let sql = "SELECT column_name::text, data_type::text FROM information_schema.columns \
                           WHERE table_schema = current_schema() AND table_name = $1";
                let rows = sqlx::query(sql).bind(table).fetch_all(pool).await?;
                rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect::<Result<_, sqlx::Error>>()?
            }
        };
        Ok(rows.into_iter().map(|(name, declared)| (name, column_type(&declared))).collect())
    }

    /// Loads a dump into this database, which must be migrated, at least as
    /// new as the dump's schema, and empty. One transaction: a dump that
    /// fails to load leaves nothing behind.
    pub async fn load(
        &self,
        input: impl BufRead,
        progress: &mut (dyn FnMut(&str, u64) + Send),
    ) -> Result<DumpSummary, StoreError> {
        let mut lines = input.lines();
        let mut next = || -> Result<Option<Value>, StoreError> {
            match lines.next() {
                None => Ok(None),
                Some(l) => {
                    let l = l.map_err(|e| io(&e))?;
                    serde_json::from_str(&l).map(Some).map_err(|e| corrupt(format!("a line is not JSON: {e}")))
                }
            }
        };
        let header: Header = serde_json::from_value(next()?.ok_or_else(|| corrupt("empty"))?)
            .map_err(|e| corrupt(format!("no header: {e}")))?;
        if header.format != FORMAT || header.version != FORMAT_VERSION {
            return Err(corrupt(format!(
                "format {} {} is not {FORMAT} {FORMAT_VERSION}",
                header.format, header.version
            )));
        }
        let ours = self.schema_version().await?;
        if header.schema > ours {
            return Err(corrupt(format!(
                "the dump's schema ({}) is newer than this tradecore's ({ours}): restore with a newer version",
                header.schema
            )));
        }
        if !self.is_empty().await? {
            return Err(corrupt("the target database is not empty; restore into an empty one"));
        }
        let mut summary = DumpSummary { schema: header.schema, backend: header.backend, tables: Vec::new() };
        // Each table's columns here, looked up before writing starts.
        let mut types = Vec::with_capacity(TABLES.len());
        for table in TABLES {
            types.push(((*table).to_string(), self.column_types(table).await?));
        }
        // Rows are read, checked and written in batches as they come, all in
        // one transaction: memory stays flat however large the dump, and a
        // dump that turns out bad halfway is rolled back whole.
        macro_rules! load_with {
            ($pool:expr, $db:ty, $postgres:expr) => {{
                let mut tx = $pool.begin().await?;
                let outcome: Result<(), StoreError> = async {
                    let mut current: Option<Loading> = None;
                    let mut counted = 0u64;
                    let mut end = None;
                    while let Some(v) = next()? {
                        if v.get("table").is_some() {
                            if let Some(done) = current.take() {
                                summary.tables.push(finish_table!(&mut *tx, $db, $postgres, done));
                            }
                            let start: TableStart = serde_json::from_value(v).map_err(|e| corrupt(e.to_string()))?;
                            current = Some(Loading::new(start, &types, $postgres)?);
                        } else if v.get("end").is_some() {
                            end = Some(serde_json::from_value::<End>(v).map_err(|e| corrupt(e.to_string()))?);
                            break;
                        } else {
                            let row: Vec<Value> = serde_json::from_value(v).map_err(|e| corrupt(e.to_string()))?;
                            let loading = current.as_mut().ok_or_else(|| corrupt("a row before any table"))?;
                            loading.push(row)?;
                            counted += 1;
                            if loading.batch.len() == ROWS_PER_INSERT {
                                insert_batch!(&mut *tx, $db, loading);
                                progress(&loading.table, loading.rows);
                            }
                        }
                    }
                    if let Some(done) = current.take() {
                        summary.tables.push(finish_table!(&mut *tx, $db, $postgres, done));
                    }
                    let end = end.ok_or_else(|| corrupt("the dump is cut short (no end line)"))?;
                    if end.rows != counted {
                        return Err(corrupt(format!("the dump says {} rows but holds {counted}", end.rows)));
                    }
                    Ok(())
                }
                .await;
                match outcome {
                    Ok(()) => tx.commit().await?,
                    Err(e) => {
                        let _ = tx.rollback().await;
                        return Err(e);
                    }
                }
            }};
        }
        // Writes the batch of rows read so far.
        macro_rules! insert_batch {
            ($tx:expr, $db:ty, $loading:expr) => {{
                let loading: &mut Loading = $loading;
                let names: Vec<&str> = loading.columns.iter().map(|(n, _)| n.as_str()).collect();
                let overriding = if loading.identity { " OVERRIDING SYSTEM VALUE" } else { "" };
                let mut q: QueryBuilder<$db> =
                    QueryBuilder::new(format!("INSERT INTO {} ({}){overriding} ", loading.table, names.join(", ")));
                let mut failure = None;
                let columns = &loading.columns;
                let table = &loading.table;
                q.push_values(&loading.batch, |mut b, row| {
                    for (value, (name, kind)) in row.iter().zip(columns) {
                        match bind_value(value, *kind) {
                            Ok(Bound::Int(v)) => {
                                b.push_bind(v);
                            }
                            Ok(Bound::Bool(v)) => {
                                b.push_bind(v);
                            }
                            Ok(Bound::Real(v)) => {
                                b.push_bind(v);
                            }
                            Ok(Bound::Text(v)) => {
                                b.push_bind(v);
                            }
                            Err(e) => {
                                failure.get_or_insert(format!("{table}.{name}: {e}"));
                                b.push_bind(None::<String>);
                            }
                        }
                    }
                });
                if let Some(e) = failure {
                    return Err(corrupt(e));
                }
                q.build().execute($tx).await?;
                loading.batch.clear();
            }};
        }
        // Writes a table's last rows and continues its id sequence.
        macro_rules! finish_table {
            ($tx:expr, $db:ty, $postgres:expr, $done:expr) => {{
                let mut done: Loading = $done;
                if !done.batch.is_empty() {
                    insert_batch!(&mut *$tx, $db, &mut done);
                }
                if done.identity {
                    let reset = format!(
                        "SELECT setval(pg_get_serial_sequence('{0}', 'id'), COALESCE((SELECT MAX(id) FROM {0}), 0) + 1, false)",
                        done.table
                    );
                    sqlx::query(sqlx::AssertSqlSafe(reset.as_str())).execute(&mut *$tx).await?;
                }
                progress(&done.table, done.rows);
                (done.table, done.rows)
            }};
        }
        match &self.backend {
            Backend::Sqlite(pool) => load_with!(pool, sqlx::Sqlite, false),
            Backend::Postgres(pool) => load_with!(pool, sqlx::Postgres, true),
        }
        Ok(summary)
    }
}

/// A table being loaded: where its dump columns go, and the rows not yet written.
struct Loading {
    table: String,
    /// The target's columns, in the order rows are bound.
    columns: Vec<(String, ColumnType)>,
    /// Which of the dump's values each target column takes.
    keep: Vec<usize>,
    dump_columns: usize,
    /// PostgreSQL identity ids: given explicitly, their sequence reset after.
    identity: bool,
    batch: Vec<Vec<Value>>,
    rows: u64,
}

impl Loading {
    fn new(
        start: TableStart,
        types: &[(String, Vec<(String, ColumnType)>)],
        postgres: bool,
    ) -> Result<Self, StoreError> {
        let Some((_, target)) = types.iter().find(|(t, _)| *t == start.table) else {
            return Err(corrupt(format!("unknown table '{}'", start.table)));
        };
        // A backend's own surrogate key (SQLite stores events, orders and
        // fills in arrival order under an `id` PostgreSQL lacks) is left for
        // the target to assign.
        let mut keep = Vec::with_capacity(start.columns.len());
        let mut columns = Vec::with_capacity(start.columns.len());
        for (i, c) in start.columns.iter().enumerate() {
            match target.iter().find(|(name, _)| name == c) {
                Some(column) => {
                    keep.push(i);
                    columns.push(column.clone());
                }
                None if BACKEND_ONLY.contains(&(start.table.as_str(), c.as_str())) => {}
                None => return Err(corrupt(format!("column {}.{c} of the dump is not in this database", start.table))),
            }
        }
        let identity = postgres && columns.iter().any(|(n, k)| n == "id" && *k == ColumnType::Integer);
        Ok(Self {
            table: start.table,
            columns,
            keep,
            dump_columns: start.columns.len(),
            identity,
            batch: Vec::with_capacity(ROWS_PER_INSERT),
            rows: 0,
        })
    }

    fn push(&mut self, row: Vec<Value>) -> Result<(), StoreError> {
        if row.len() != self.dump_columns {
            return Err(corrupt(format!(
                "a row of {} has {} values for {} columns",
                self.table,
                row.len(),
                self.dump_columns
            )));
        }
        let row = if self.keep.len() == row.len() { row } else { self.keep.iter().map(|&i| row[i].clone()).collect() };
        self.batch.push(row);
        self.rows += 1;
        Ok(())
    }
}

/// A value converted for its target column, typed even when null.
enum Bound {
    Int(Option<i64>),
    Bool(Option<bool>),
    Real(Option<f64>),
    Text(Option<String>),
}

fn bind_value(value: &Value, kind: ColumnType) -> Result<Bound, String> {
    Ok(match (kind, value) {
        (ColumnType::Integer, Value::Null) => Bound::Int(None),
        (ColumnType::Boolean, Value::Null) => Bound::Bool(None),
        (ColumnType::Real, Value::Null) => Bound::Real(None),
        (ColumnType::Text, Value::Null) => Bound::Text(None),
        (ColumnType::Integer, Value::Number(n)) => {
            Bound::Int(Some(n.as_i64().ok_or_else(|| format!("{n} is not an integer"))?))
        }
        (ColumnType::Integer, Value::Bool(b)) => Bound::Int(Some(i64::from(*b))),
        (ColumnType::Boolean, Value::Bool(b)) => Bound::Bool(Some(*b)),
        (ColumnType::Boolean, Value::Number(n)) => {
            Bound::Bool(Some(n.as_i64().ok_or_else(|| format!("{n} is not 0 or 1"))? != 0))
        }
        (ColumnType::Real, Value::Number(n)) => {
            Bound::Real(Some(n.as_f64().ok_or_else(|| format!("{n} is not a number"))?))
        }
        (ColumnType::Text, Value::String(s)) => Bound::Text(Some(s.clone())),
        (ColumnType::Text, Value::Number(n)) => Bound::Text(Some(n.to_string())),
        (kind, other) => return Err(format!("{other} does not fit a {kind:?} column")),
    })
}
