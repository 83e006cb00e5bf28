//! The durable job queue and the data the built-in jobs keep or prune.
//!
//! A job is a row: queued until its `run_at`, then claimed by one worker
//! with a lease it renews while it runs, then done, retried later, or dead.
//! Claiming is one atomic statement (`FOR UPDATE SKIP LOCKED` on PostgreSQL,
//! so workers of several instances never take the same job; SQLite has one
//! writer anyway). A job whose lease ran out, because its instance died, is
//! claimed again. Scheduled runs carry their schedule and slot, unique
//! together, so each slot is enqueued once however many instances compute it.

use model::{Currency, Money, Timestamp};
use serde::Serialize;
use sqlx::Row;

use crate::{Backend, EquitySnapshot, Store, StoreError, ns, parse_json, parse_text};

pub type JobId = i64;

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobRow {
    pub id: JobId,
    pub kind: String,
    /// JSON arguments.
    pub payload: String,
    /// `queued`, `running`, `done` or `dead`.
    pub status: String,
    /// Runs started, this one included while it runs.
    pub attempts: u32,
    pub max_attempts: u32,
    pub run_at: Timestamp,
    /// The worker running it, or that ran it last.
    pub locked_by: Option<String>,
    pub locked_until: Option<Timestamp>,
    pub last_error: Option<String>,
    /// JSON the finished run reported.
    pub result: Option<String>,
    pub schedule: Option<String>,
    pub scheduled_for: Option<Timestamp>,
    pub created: Timestamp,
    pub updated: Timestamp,
    pub finished: Option<Timestamp>,
}

/// A job to enqueue.
#[derive(Debug, Clone, Copy)]
pub struct NewJob<'a> {
    pub kind: &'a str,
    pub payload: &'a str,
    pub run_at: Timestamp,
    pub max_attempts: u32,
    /// `(schedule, slot)` for a scheduled run: at most one job per slot.
    pub slot: Option<(&'a str, Timestamp)>,
}

/// Jobs waiting, running or dead, per kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct JobCounts {
    pub kind: String,
    pub queued: u64,
    pub running: u64,
    pub dead: u64,
}

const COLUMNS: &str = "id, kind, payload, status, attempts, max_attempts, run_at_ns, locked_by, locked_until_ns, \
                       last_error, result, schedule, scheduled_for_ns, created_ns, updated_ns, finished_ns";

type Raw = (
    i64,
    String,
    String,
    String,
    i64,
    i64,
    i64,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    i64,
    i64,
    Option<i64>,
);

macro_rules! raw {
    ($r:expr) => {
        row_tuple!($r, 0; 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15)
    };
}

fn job(r: Raw) -> Result<JobRow, StoreError> {
    let count = |v: i64, what| u32::try_from(v).map_err(|_| StoreError::Corrupt { what, detail: v.to_string() });
    Ok(JobRow {
        id: r.0,
        kind: r.1,
        payload: r.2,
        status: r.3,
        attempts: count(r.4, "job attempts")?,
        max_attempts: count(r.5, "job max attempts")?,
        run_at: Timestamp::from_nanos(r.6),
        locked_by: r.7,
        locked_until: r.8.map(Timestamp::from_nanos),
        last_error: r.9,
        result: r.10,
        schedule: r.11,
        scheduled_for: r.12.map(Timestamp::from_nanos),
        created: Timestamp::from_nanos(r.13),
        updated: Timestamp::from_nanos(r.14),
        finished: r.15.map(Timestamp::from_nanos),
    })
}

impl Store {
    /// Enqueues a job; `None` when its schedule slot already has one.
    pub async fn enqueue_job(&self, new: &NewJob<'_>, now: Timestamp) -> Result<Option<JobId>, StoreError> {
        let sql = "INSERT INTO jobs (kind, payload, status, max_attempts, run_at_ns, schedule, scheduled_for_ns, \
                   created_ns, updated_ns) VALUES ($1, $2, 'queued', $3, $4, $5, $6, $7, $7) \
                   ON CONFLICT (schedule, scheduled_for_ns) WHERE schedule IS NOT NULL DO NOTHING RETURNING id";
        let (schedule, slot) = new.slot.map_or((None, None), |(s, t)| (Some(s), Some(ns(t))));
        let id: Option<i64> = on_pool!(self, |pool| {
            let row = sqlx::query(sql)
                .bind(new.kind)
                .bind(new.payload)
                .bind(i64::from(new.max_attempts))
                .bind(ns(new.run_at))
                .bind(schedule)
                .bind(slot)
                .bind(ns(now))
                .fetch_optional(pool)
                .await?;
            row.map(|r| r.try_get(0)).transpose()?
        });
        Ok(id)
    }

    /// Claims the next due job for `worker` until `lease_until`: a queued
    /// job whose time has come, or a running one whose lease ran out.
    pub async fn claim_job(
        &self,
        worker: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Option<JobRow>, StoreError> {
        let pick = "SELECT id FROM jobs WHERE (status = 'queued' AND run_at_ns <= $3) \
                    OR (status = 'running' AND locked_until_ns < $3) ORDER BY run_at_ns, id LIMIT 1";
        // Several instances' workers on PostgreSQL: skip rows another is claiming.
        let lock = match &self.backend {
            Backend::Sqlite(_) => "",
            Backend::Postgres(_) => " FOR UPDATE SKIP LOCKED",
        };
        let sql = format!(
            "UPDATE jobs SET status = 'running', locked_by = $1, locked_until_ns = $2, attempts = attempts + 1, \
             updated_ns = $3 WHERE id = ({pick}{lock}) RETURNING {COLUMNS}"
        );
        let raw: Option<Raw> = on_pool!(self, |pool| {
            let row = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(worker)
                .bind(ns(lease_until))
                .bind(ns(now))
                .fetch_optional(pool)
                .await?;
            row.map(|r| Ok::<_, sqlx::Error>(raw!(r))).transpose()?
        });
        raw.map(job).transpose()
    }

    /// Extends a running job's lease; `false` when `worker` no longer holds it.
    pub async fn renew_job(
        &self,
        id: JobId,
        worker: &str,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let sql = "UPDATE jobs SET locked_until_ns = $1, updated_ns = $2 WHERE id = $3 AND locked_by = $4 \
                   AND status = 'running'";
        let done = on_pool!(self, |pool| sqlx::query(sql)
            .bind(ns(until))
            .bind(ns(now))
            .bind(id)
            .bind(worker)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(done == 1)
    }

    /// Marks a job done with its result; `false` when `worker` lost it.
    pub async fn finish_job(&self, id: JobId, worker: &str, result: &str, now: Timestamp) -> Result<bool, StoreError> {
        // locked_by stays: which instance ran it, for admins.
        let sql = "UPDATE jobs SET status = 'done', result = $1, finished_ns = $2, updated_ns = $2, \
                   locked_until_ns = NULL WHERE id = $3 AND locked_by = $4 AND status = 'running'";
        let done = on_pool!(self, |pool| sqlx::query(sql)
            .bind(result)
            .bind(ns(now))
            .bind(id)
            .bind(worker)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(done == 1)
    }

    /// Records a failed run: queued again at `retry_at`, or dead when it has
    /// used its attempts. Returns the new status (`None` when `worker` lost it).
    pub async fn fail_job(
        &self,
        id: JobId,
        worker: &str,
        error: &str,
        retry_at: Timestamp,
        now: Timestamp,
    ) -> Result<Option<&'static str>, StoreError> {
        let sql = "UPDATE jobs SET status = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'queued' END, \
                   finished_ns = CASE WHEN attempts >= max_attempts THEN $2 ELSE NULL END, \
                   run_at_ns = $1, last_error = $3, updated_ns = $2, locked_until_ns = NULL \
                   WHERE id = $4 AND locked_by = $5 AND status = 'running' RETURNING status";
        let status: Option<String> = on_pool!(self, |pool| {
            let row = sqlx::query(sql)
                .bind(ns(retry_at))
                .bind(ns(now))
                .bind(error)
                .bind(id)
                .bind(worker)
                .fetch_optional(pool)
                .await?;
            row.map(|r| r.try_get(0)).transpose()?
        });
        Ok(status.map(|s| if s == "dead" { "dead" } else { "queued" }))
    }

    /// Puts a dead job back in the queue, due now, with its attempts reset.
    pub async fn retry_job(&self, id: JobId, now: Timestamp) -> Result<bool, StoreError> {
        let sql = "UPDATE jobs SET status = 'queued', attempts = 0, run_at_ns = $1, updated_ns = $1, \
                   finished_ns = NULL WHERE id = $2 AND status = 'dead'";
        let done = on_pool!(self, |pool| sqlx::query(sql).bind(ns(now)).bind(id).execute(pool).await?.rows_affected());
        Ok(done == 1)
    }

    pub async fn job(&self, id: JobId) -> Result<Option<JobRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM jobs WHERE id = $1");
        let raw: Option<Raw> = on_pool!(self, |pool| {
            let row = sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(id).fetch_optional(pool).await?;
            row.map(|r| Ok::<_, sqlx::Error>(raw!(r))).transpose()?
        });
        raw.map(job).transpose()
    }

    /// Jobs newest first, optionally of one status or kind, with ids below `before`.
    pub async fn jobs(
        &self,
        status: Option<&str>,
        kind: Option<&str>,
        before: Option<JobId>,
        limit: u32,
    ) -> Result<Vec<JobRow>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM jobs WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR kind = $2) \
             AND ($3 IS NULL OR id < $3) ORDER BY id DESC LIMIT $4"
        );
        let raws: Vec<Raw> = on_pool!(self, |pool| {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(status)
                .bind(kind)
                .bind(before)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?;
            rows.iter().map(|r| Ok(raw!(r))).collect::<Result<Vec<_>, sqlx::Error>>()?
        });
        raws.into_iter().map(job).collect()
    }

    /// The newest job of a schedule (its last slot enqueued).
    pub async fn last_scheduled_job(&self, schedule: &str) -> Result<Option<JobRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM jobs WHERE schedule = $1 ORDER BY scheduled_for_ns DESC LIMIT 1");
        let raw: Option<Raw> = on_pool!(self, |pool| {
            let row = sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(schedule).fetch_optional(pool).await?;
            row.map(|r| Ok::<_, sqlx::Error>(raw!(r))).transpose()?
        });
        raw.map(job).transpose()
    }

    /// Queued, running and dead jobs per kind.
    pub async fn job_counts(&self) -> Result<Vec<JobCounts>, StoreError> {
        let sql = "SELECT kind, status, COUNT(*) FROM jobs WHERE status IN ('queued', 'running', 'dead') \
                   GROUP BY kind, status ORDER BY kind";
        let rows: Vec<(String, String, i64)> = on_pool!(self, |pool| {
            let rows = sqlx::query(sql).fetch_all(pool).await?;
            rows.iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
                .collect::<Result<Vec<_>, sqlx::Error>>()?
        });
        let mut out: Vec<JobCounts> = Vec::new();
        for (kind, status, n) in rows {
            let n = u64::try_from(n).unwrap_or(0);
            let entry = match out.iter_mut().find(|c| c.kind == kind) {
                Some(entry) => entry,
                None => {
                    out.push(JobCounts { kind, ..JobCounts::default() });
                    out.last_mut().ok_or(StoreError::Closed)?
                }
            };
            match status.as_str() {
                "queued" => entry.queued = n,
                "running" => entry.running = n,
                _ => entry.dead = n,
            }
        }
        Ok(out)
    }

    // -- what the built-in jobs keep -----------------------------------------

    /// The account's last equity snapshot taken before `before`.
    pub async fn last_equity_before(
        &self,
        account: i64,
        before: Timestamp,
    ) -> Result<Option<EquitySnapshot>, StoreError> {
        let sql = "SELECT ts_ns, equity, by_currency FROM equity_snapshots WHERE account_id = $1 AND ts_ns < $2 \
                   ORDER BY ts_ns DESC LIMIT 1";
        let row: Option<(i64, String, Option<String>)> = on_pool!(self, |pool| {
            let row = sqlx::query(sql).bind(account).bind(ns(before)).fetch_optional(pool).await?;
            row.map(|r| Ok::<_, sqlx::Error>((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))).transpose()?
        });
        row.map(|(ts, equity, by_currency)| {
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
        .transpose()
    }

    /// Records an account's equity at the end of day number `day` (replacing
    /// what was recorded for it).
    pub async fn save_daily_equity(&self, day: i64, snapshot: &EquitySnapshot) -> Result<(), StoreError> {
        let sql = "INSERT INTO equity_daily (account_id, day, equity, by_currency) VALUES ($1, $2, $3, $4) \
                   ON CONFLICT (account_id, day) DO UPDATE SET equity = excluded.equity, by_currency = excluded.by_currency";
        let by_currency = crate::json(&snapshot.by_currency, "equity by currency")?;
        on_pool!(self, |pool| sqlx::query(sql)
            .bind(snapshot.account)
            .bind(day)
            .bind(snapshot.equity.to_string())
            .bind(by_currency)
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// End-of-day equity of an account for days `from..=to`, oldest first:
    /// `(day number, equity, by currency)`.
    pub async fn daily_equity(
        &self,
        account: i64,
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, Money, Vec<(Currency, Money)>)>, StoreError> {
        let sql = "SELECT day, equity, by_currency FROM equity_daily WHERE account_id = $1 AND day >= $2 AND day <= $3 \
                   ORDER BY day";
        let rows: Vec<(i64, String, Option<String>)> = on_pool!(self, |pool| {
            let rows = sqlx::query(sql).bind(account).bind(from).bind(to).fetch_all(pool).await?;
            rows.iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
                .collect::<Result<Vec<_>, sqlx::Error>>()?
        });
        rows.into_iter()
            .map(|(day, equity, by_currency)| {
                let by_currency = match by_currency {
                    Some(json) => parse_json(&json, "equity by currency")?,
                    None => Vec::new(),
                };
                Ok((day, parse_text(&equity, "equity")?, by_currency))
            })
            .collect()
    }

    // -- retention -------------------------------------------------------------

    /// Deletes rows older than `before` from one of the pruned kinds of data;
    /// returns how many went.
    pub async fn prune(&self, what: Prunable, before: Timestamp) -> Result<u64, StoreError> {
        let (sql, interval): (&str, Option<&str>) = match what {
            Prunable::Candles(interval) => {
                ("DELETE FROM candles WHERE interval = $2 AND start_ns < $1", Some(interval))
            }
            Prunable::EquitySnapshots => ("DELETE FROM equity_snapshots WHERE ts_ns < $1", None),
            Prunable::Audit => ("DELETE FROM audit_log WHERE ts_ns < $1", None),
            Prunable::ExpiredSessions => ("DELETE FROM sessions WHERE expires_ns < $1", None),
            Prunable::FinishedJobs => ("DELETE FROM jobs WHERE status IN ('done', 'dead') AND finished_ns < $1", None),
            Prunable::Backtests => ("DELETE FROM backtests WHERE status <> 'running' AND created_ns < $1", None),
        };
        let gone = on_pool!(self, |pool| {
            let mut q = sqlx::query(sql).bind(ns(before));
            if let Some(interval) = interval {
                q = q.bind(interval);
            }
            q.execute(pool).await?.rows_affected()
        });
        Ok(gone)
    }
}

/// Data that retention prunes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prunable {
    /// Candles of one interval (`1m`, `5m`, `1h`, `1d`).
    Candles(&'static str),
    /// The once-a-minute equity history (the daily one stays).
    EquitySnapshots,
    Audit,
    /// Sessions that expired before the cut-off.
    ExpiredSessions,
    /// Done and dead jobs.
    FinishedJobs,
    /// Finished backtests and their reports.
    Backtests,
}
