//! Backtests submitted over the API: the request, then the report (both
//! JSON, opaque to the store) or the error.

use model::Timestamp;
use serde::Serialize;
use sqlx::Row;

use crate::auth::UserId;
use crate::{Backend, Store, StoreError};

/// A stored backtest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BacktestRow {
    pub id: i64,
    pub user_id: UserId,
    /// `running`, `done` or `failed`.
    pub status: String,
    pub request: String,
    pub report: Option<String>,
    pub error: Option<String>,
    pub created: Timestamp,
    pub finished: Option<Timestamp>,
}

type Raw = (i64, i64, String, String, Option<String>, Option<String>, i64, Option<i64>);

fn row(r: Raw) -> BacktestRow {
    BacktestRow {
        id: r.0,
        user_id: r.1,
        status: r.2,
        request: r.3,
        report: r.4,
        error: r.5,
        created: Timestamp::from_nanos(r.6),
        finished: r.7.map(Timestamp::from_nanos),
    }
}

impl Store {
    /// Records a submitted backtest as running; returns its id.
    pub async fn create_backtest(&self, user_id: UserId, request: &str, now: Timestamp) -> Result<i64, StoreError> {
        let sql =
            "INSERT INTO backtests (user_id, status, request, created_ns) VALUES ($1, 'running', $2, $3) RETURNING id";
        let id: i64 = on_pool!(self, |pool| {
            sqlx::query(sql).bind(user_id).bind(request).bind(now.as_nanos()).fetch_one(pool).await?.try_get(0)?
        });
        Ok(id)
    }

    /// Stores the outcome: the report (`Ok`) or the error (`Err`).
    pub async fn finish_backtest(
        &self,
        id: i64,
        outcome: Result<&str, &str>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let sql = "UPDATE backtests SET status = $1, report = $2, error = $3, finished_ns = $4 WHERE id = $5";
        let (status, report, error) = match outcome {
            Ok(report) => ("done", Some(report), None),
            Err(error) => ("failed", None, Some(error)),
        };
        on_pool!(self, |pool| sqlx::query(sql)
            .bind(status)
            .bind(report)
            .bind(error)
            .bind(now.as_nanos())
            .bind(id)
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Backtests left running by a previous process: they are failed on start.
    pub async fn fail_unfinished_backtests(&self, now: Timestamp) -> Result<(), StoreError> {
        let sql = "UPDATE backtests SET status = 'failed', error = 'the server stopped while it ran; submit it again', \
                   finished_ns = $1 WHERE status = 'running'";
        on_pool!(self, |pool| sqlx::query(sql).bind(now.as_nanos()).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// One of the user's backtests.
    pub async fn backtest(&self, user_id: UserId, id: i64) -> Result<Option<BacktestRow>, StoreError> {
        let sql = "SELECT id, user_id, status, request, report, error, created_ns, finished_ns FROM backtests \
                   WHERE id = $1 AND user_id = $2";
        let raw: Option<Raw> = on_pool!(self, |pool| {
            match sqlx::query(sql).bind(id).bind(user_id).fetch_optional(pool).await? {
                Some(r) => Some((
                    r.try_get(0)?,
                    r.try_get(1)?,
                    r.try_get(2)?,
                    r.try_get(3)?,
                    r.try_get(4)?,
                    r.try_get(5)?,
                    r.try_get(6)?,
                    r.try_get(7)?,
                )),
                None => None,
            }
        });
        Ok(raw.map(row))
    }

    /// The user's backtests, newest first, without their reports.
    pub async fn backtests(&self, user_id: UserId, limit: u32) -> Result<Vec<BacktestRow>, StoreError> {
        let sql = "SELECT id, user_id, status, request, CAST(NULL AS TEXT), error, created_ns, finished_ns FROM backtests \
                   WHERE user_id = $1 ORDER BY id DESC LIMIT $2";
        let raws: Vec<Raw> = on_pool!(self, |pool| {
            let rows = sqlx::query(sql).bind(user_id).bind(i64::from(limit.max(1))).fetch_all(pool).await?;
            rows.iter()
                .map(|r| {
                    Ok((
                        r.try_get(0)?,
                        r.try_get(1)?,
                        r.try_get(2)?,
                        r.try_get(3)?,
                        r.try_get(4)?,
                        r.try_get(5)?,
                        r.try_get(6)?,
                        r.try_get(7)?,
                    ))
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()?
        });
        Ok(raws.into_iter().map(row).collect())
    }
}
