//! Bots: configuration and status. A bot's orders and fills are ordinary
//! account rows whose client order ids start with [`BotRow::order_prefix`].
//! Every change is written with its audit record in one transaction.

use std::collections::BTreeMap;

use model::{InstrumentId, Timestamp};
use serde::Serialize;
use sqlx::Row;

use crate::auth::{AuditEntry, UserId};
use crate::{AccountId, Backend, Store, StoreError, from_i64, parse_json, to_i64};

pub type BotId = i64;

/// Where a bot is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum BotStatus {
    Stopped,
    Running,
    /// Stopped by an error it could not get past (the row keeps the error).
    Failed,
}

impl BotStatus {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stopped => "stopped",
            Self::Running => "running",
            Self::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Result<Self, StoreError> {
        match text {
            "stopped" => Ok(Self::Stopped),
            "running" => Ok(Self::Running),
            "failed" => Ok(Self::Failed),
            other => Err(StoreError::Corrupt { what: "bot status", detail: format!("unknown status '{other}'") }),
        }
    }
}

/// A stored bot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BotRow {
    pub id: BotId,
    pub user_id: UserId,
    pub account_id: AccountId,
    pub name: String,
    pub strategy: String,
    /// Parameter values as given (the strategy checks them when it is built).
    pub params: BTreeMap<String, String>,
    pub instrument: InstrumentId,
    /// Candle interval it trades on (`1m`, `5m`, `1h`, `1d`).
    pub interval: String,
    /// Default order size, as `all-in`, `units=N` or `percent=P`.
    pub sizing: String,
    /// Candles before the first start the strategy sees to warm up.
    pub warmup_bars: u32,
    pub status: BotStatus,
    pub error: Option<String>,
    pub created: Timestamp,
    /// Where every start replays stored candles from (set at the first start).
    pub anchor: Option<Timestamp>,
    pub started: Option<Timestamp>,
    pub stopped: Option<Timestamp>,
}

impl BotRow {
    /// The client order id prefix of this bot's orders.
    #[must_use]
    pub fn order_prefix(&self) -> String {
        order_prefix(self.id)
    }
}

/// The client order id prefix of bot `id`'s orders.
#[must_use]
pub fn order_prefix(id: BotId) -> String {
    format!("bot{id}-")
}

/// A bot to create.
#[derive(Debug, Clone)]
pub struct NewBot<'a> {
    pub user_id: UserId,
    pub account_id: AccountId,
    pub name: &'a str,
    pub strategy: &'a str,
    pub params: &'a BTreeMap<String, String>,
    pub instrument: InstrumentId,
    pub interval: &'a str,
    pub sizing: &'a str,
    pub warmup_bars: u32,
    pub created: Timestamp,
}

const COLUMNS: &str = "id, user_id, account_id, name, strategy, params, instrument_id, interval, sizing, warmup_bars, \
                       status, error, created_ns, anchor_ns, started_ns, stopped_ns";

type Raw = (
    i64,
    i64,
    i64,
    String,
    String,
    String,
    i64,
    String,
    String,
    i64,
    String,
    Option<String>,
    i64,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

/// Reads a row of [`COLUMNS`] as a [`Raw`].
macro_rules! bot_tuple {
    ($r:expr) => {
        row_tuple!($r, 0; 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15)
    };
}

fn row(r: Raw) -> Result<BotRow, StoreError> {
    let instrument = u32::try_from(r.6)
        .map_err(|_| StoreError::Corrupt { what: "bot instrument", detail: format!("{} is out of range", r.6) })?;
    let warmup = u32::try_from(from_i64(r.9, "bot warm-up")?)
        .map_err(|_| StoreError::Corrupt { what: "bot warm-up", detail: format!("{} is out of range", r.9) })?;
    Ok(BotRow {
        id: r.0,
        user_id: r.1,
        account_id: r.2,
        name: r.3,
        strategy: r.4,
        params: parse_json(&r.5, "bot params")?,
        instrument: InstrumentId(instrument),
        interval: r.7,
        sizing: r.8,
        warmup_bars: warmup,
        status: BotStatus::parse(&r.10)?,
        error: r.11,
        created: Timestamp::from_nanos(r.12),
        anchor: r.13.map(Timestamp::from_nanos),
        started: r.14.map(Timestamp::from_nanos),
        stopped: r.15.map(Timestamp::from_nanos),
    })
}

/// A status change to write.
#[derive(Debug, Clone)]
pub enum BotChange<'a> {
    /// Running from `now`; the anchor is set if the bot never ran.
    Start {
        now: Timestamp,
        anchor: Timestamp,
    },
    Stop {
        now: Timestamp,
    },
    Fail {
        now: Timestamp,
        error: &'a str,
    },
}

impl Store {
    /// Creates a stopped bot and records `audit` (target set to the bot).
    pub async fn create_bot(&self, bot: &NewBot<'_>, audit: &AuditEntry<'_>) -> Result<BotRow, StoreError> {
        let sql = "INSERT INTO bots (user_id, account_id, name, strategy, params, instrument_id, interval, sizing, \
                   warmup_bars, status, created_ns) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'stopped', $10) \
                   RETURNING id";
        let params = serde_json::to_string(bot.params)
            .map_err(|e| StoreError::Corrupt { what: "bot params", detail: e.to_string() })?;
        let detail = crate::auth::detail_text(audit)?;
        let id: i64 = on_pool!(self, |pool| async {
            let mut tx = pool.begin().await?;
            let id: i64 = sqlx::query(sql)
                .bind(bot.user_id)
                .bind(bot.account_id)
                .bind(bot.name)
                .bind(bot.strategy)
                .bind(&params)
                .bind(i64::from(bot.instrument.0))
                .bind(bot.interval)
                .bind(bot.sizing)
                .bind(i64::from(bot.warmup_bars))
                .bind(bot.created.as_nanos())
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
            insert_audit!(tx, audit, format!("bot:{id}"), &detail);
            tx.commit().await?;
            Ok::<i64, sqlx::Error>(id)
        }
        .await)?;
        Ok(BotRow {
            id,
            user_id: bot.user_id,
            account_id: bot.account_id,
            name: bot.name.to_string(),
            strategy: bot.strategy.to_string(),
            params: bot.params.clone(),
            instrument: bot.instrument,
            interval: bot.interval.to_string(),
            sizing: bot.sizing.to_string(),
            warmup_bars: bot.warmup_bars,
            status: BotStatus::Stopped,
            error: None,
            created: bot.created,
            anchor: None,
            started: None,
            stopped: None,
        })
    }

    /// One bot, whoever owns it (the caller checks ownership).
    pub async fn bot(&self, id: BotId) -> Result<Option<BotRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM bots WHERE id = $1");
        let found: Option<Raw> = on_pool!(self, |pool| {
            match sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(id).fetch_optional(pool).await? {
                Some(r) => Some(bot_tuple!(r)),
                None => None,
            }
        });
        found.map(row).transpose()
    }

    /// The user's bots, oldest first.
    pub async fn bots_of(&self, user_id: UserId) -> Result<Vec<BotRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM bots WHERE user_id = $1 ORDER BY id");
        let raws: Vec<Raw> = on_pool!(self, |pool| {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(user_id).fetch_all(pool).await?;
            rows.iter().map(|r| Ok(bot_tuple!(r))).collect::<Result<Vec<_>, sqlx::Error>>()?
        });
        raws.into_iter().map(row).collect()
    }

    /// Every bot with this status (the running ones resume at start).
    pub async fn bots_with_status(&self, status: BotStatus) -> Result<Vec<BotRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM bots WHERE status = $1 ORDER BY id");
        let raws: Vec<Raw> = on_pool!(self, |pool| {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(status.as_str()).fetch_all(pool).await?;
            rows.iter().map(|r| Ok(bot_tuple!(r))).collect::<Result<Vec<_>, sqlx::Error>>()?
        });
        raws.into_iter().map(row).collect()
    }

    /// Writes a status change (with `audit`, when given) and returns the bot as it is now.
    pub async fn change_bot(
        &self,
        id: BotId,
        change: &BotChange<'_>,
        audit: Option<&AuditEntry<'_>>,
    ) -> Result<Option<BotRow>, StoreError> {
        let (sql, status, at, text, anchor) = match change {
            BotChange::Start { now, anchor } => (
                "UPDATE bots SET status = $1, started_ns = $2, error = $3, anchor_ns = COALESCE(anchor_ns, $4) \
                 WHERE id = $5",
                BotStatus::Running,
                *now,
                None,
                Some(*anchor),
            ),
            BotChange::Stop { now } => (
                "UPDATE bots SET status = $1, stopped_ns = $2, error = $3, anchor_ns = COALESCE(anchor_ns, $4) \
                 WHERE id = $5",
                BotStatus::Stopped,
                *now,
                None,
                None,
            ),
            BotChange::Fail { now, error } => (
                "UPDATE bots SET status = $1, stopped_ns = $2, error = $3, anchor_ns = COALESCE(anchor_ns, $4) \
                 WHERE id = $5",
                BotStatus::Failed,
                *now,
                Some(*error),
                None,
            ),
        };
        let detail = audit.map(crate::auth::detail_text).transpose()?;
        let changed: u64 = on_pool!(self, |pool| async {
            let mut tx = pool.begin().await?;
            let done = sqlx::query(sql)
                .bind(status.as_str())
                .bind(at.as_nanos())
                .bind(text)
                .bind(anchor.map(Timestamp::as_nanos))
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if let (Some(entry), Some(detail)) = (audit, &detail)
                && done > 0
            {
                insert_audit!(tx, entry, format!("bot:{id}"), detail);
            }
            tx.commit().await?;
            Ok::<u64, sqlx::Error>(done)
        }
        .await)?;
        if changed == 0 {
            return Ok(None);
        }
        self.bot(id).await
    }

    /// Deletes a bot that is not running (its orders stay in the account).
    /// `false` when it does not exist or is running.
    pub async fn delete_bot(&self, id: BotId, audit: &AuditEntry<'_>) -> Result<bool, StoreError> {
        let sql = "DELETE FROM bots WHERE id = $1 AND status <> 'running'";
        let detail = crate::auth::detail_text(audit)?;
        let deleted: bool = on_pool!(self, |pool| async {
            let mut tx = pool.begin().await?;
            let done = sqlx::query(sql).bind(id).execute(&mut *tx).await?.rows_affected();
            if done > 0 {
                insert_audit!(tx, audit, format!("bot:{id}"), &detail);
            }
            tx.commit().await?;
            Ok::<bool, sqlx::Error>(done > 0)
        }
        .await)?;
        Ok(deleted)
    }

    /// How many bots the user has.
    pub async fn bot_count(&self, user_id: UserId) -> Result<u64, StoreError> {
        let sql = "SELECT COUNT(*) FROM bots WHERE user_id = $1";
        let n: i64 = on_pool!(self, |pool| sqlx::query(sql).bind(user_id).fetch_one(pool).await?.try_get(0)?);
        from_i64(n, "bot count")
    }

    /// Every fill of the account's orders whose client order id starts with
    /// `prefix`, in journal order (what a bot's P&L is computed from).
    pub async fn fills_with_client_prefix(
        &self,
        account: AccountId,
        prefix: &str,
    ) -> Result<Vec<(u64, model::Fill)>, StoreError> {
        let sql = format!(
            "SELECT {} FROM fills JOIN orders ON orders.account_id = fills.account_id AND orders.order_id = fills.order_id \
                   WHERE fills.account_id = $1 AND substr(orders.client_order_id, 1, CAST($2 AS INTEGER)) = $3 \
                   ORDER BY fills.seq, fills.order_id, fills.trade_id",
            crate::FILL_COLUMNS
        );
        let len = to_i64(prefix.len() as u64, "prefix length")?;
        let rows: Vec<crate::FillTuple> = on_pool!(self, |pool| {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(account)
                .bind(len)
                .bind(prefix)
                .fetch_all(pool)
                .await?;
            rows.iter().map(|r| Ok(fill_tuple!(r))).collect::<Result<Vec<_>, sqlx::Error>>()?
        });
        rows.into_iter().map(crate::fill_from).collect()
    }
}
