//! The built-in jobs. Each is safe to run twice (a job whose instance died
//! mid-run is run again): it recomputes and replaces, or deletes what is
//! past a cut-off, and never adds a second copy of anything.
//!
//! - `reconcile`: each running account's open orders against its venue's
//!   working orders, and its positions and cash against the stored read
//!   models. A difference is logged as an error, counted, and puts the
//!   account in close-only (journaled and audited) until someone looks.
//! - `equity_daily`: each account's equity at the end of the previous UTC
//!   day, from the last minute snapshot of that day.
//! - `candle_rollup`: 5m, 1h and 1d candles rebuilt from the stored 1m
//!   candles of the previous and current day (mending buckets the live
//!   aggregation only saw part of, around a restart).
//! - `retention`: deletes what `[retention]` no longer keeps.
//! - `backup`, `backup_verify`: see `crate::backup`.

use std::sync::Arc;
use std::time::Duration;

use engine::{Command, SwitchScope, TradingState};
use metrics::counter;
use model::time::NANOS_PER_DAY;
use model::{InstrumentId, Timestamp};
use serde_json::{Value, json};
use store::CandleRecord;
use store::auth::AuditEntry;
use store::jobs::{JobRow, Prunable};

use crate::accounts::AccountHandle;
use crate::config::Config;
use crate::runtime::Runtime;

/// What a job can reach.
#[derive(Debug, Clone)]
pub struct JobContext {
    pub runtime: Arc<Runtime>,
    pub config: Arc<Config>,
}

/// Runs one job; the `Ok` value is stored as its result.
pub async fn run(ctx: &JobContext, job: &JobRow) -> Result<Value, String> {
    let payload: Value = serde_json::from_str(&job.payload).unwrap_or(Value::Null);
    // A scheduled run works on its slot's time, even when it runs late.
    let at = payload
        .get("slot")
        .and_then(Value::as_str)
        .and_then(|s| Timestamp::parse(s).ok())
        .unwrap_or_else(|| ctx.runtime.now());
    match job.kind.as_str() {
        "reconcile" => reconcile(ctx).await,
        "equity_daily" => equity_daily(ctx, at).await,
        "candle_rollup" => candle_rollup(ctx, at).await,
        "retention" => retention(ctx).await,
        "backup" => backup(ctx).await,
        "backup_verify" => backup_verify(ctx).await,
        other => Err(format!("unknown job kind '{other}'; known: {}", super::KINDS.join(", "))),
    }
}

fn store_error(e: &store::StoreError) -> String {
    format!("database: {e}")
}

// ---------------------------------------------------------------------------
// reconcile

/// How often reconciliation tries to catch an account between two commits.
const RECONCILE_TRIES: usize = 10;

/// One account's differences with its venue and its read models; `None`
/// when the account kept trading too fast to compare at one moment.
async fn differences(ctx: &JobContext, handle: &AccountHandle) -> Result<Option<Vec<Value>>, String> {
    let store = &ctx.runtime.store;
    for _ in 0..RECONCILE_TRIES {
        let view = handle.reconcile_view().await.map_err(|e| e.to_string())?;
        // The read models must hold at least what the engine had then...
        handle.flush().await.map_err(|e| e.to_string())?;
        let before = store.last_seq(handle.id).await.map_err(|e| store_error(&e))?;
        let stored = store.positions(handle.id).await.map_err(|e| store_error(&e))?;
        let mut stored_cash = store.balances(handle.id).await.map_err(|e| store_error(&e))?;
        let after = store.last_seq(handle.id).await.map_err(|e| store_error(&e))?;
        // ...and nothing more: a fill since then would look like a difference.
        if before != view.seq || after != view.seq {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let mut found: Vec<Value> =
            view.orders.iter().map(|d| serde_json::to_value(d).unwrap_or(Value::Null)).collect();
        for position in &view.positions {
            let row = stored.iter().find(|p| p.instrument == position.instrument);
            let same = row.map_or(position.quantity.is_zero() && position.realized_pnl.is_zero(), |r| r == position);
            if !same {
                found.push(json!({
                    "kind": "position",
                    "instrument": position.instrument,
                    "engine": position.quantity,
                    "stored": row.map(|r| r.quantity),
                }));
            }
        }
        for row in &stored {
            let known = view.positions.iter().any(|p| p.instrument == row.instrument);
            if !known && !row.quantity.is_zero() {
                found.push(
                    json!({ "kind": "position", "instrument": row.instrument, "engine": null, "stored": row.quantity }),
                );
            }
        }
        stored_cash.sort_by_key(|(c, _)| *c);
        if stored_cash != view.balances {
            found.push(json!({ "kind": "cash", "engine": view.balances, "stored": stored_cash }));
        }
        return Ok(Some(found));
    }
    Ok(None)
}

async fn reconcile(ctx: &JobContext) -> Result<Value, String> {
    let handles = ctx.runtime.account_handles().await;
    let mut reports = Vec::new();
    let mut restricted = Vec::new();
    let mut busy = Vec::new();
    let mut venues = Vec::new();
    for handle in &handles {
        // A live account is also compared with its venue; that pass applies
        // what it can explain and restricts the account itself otherwise.
        if let Some(live) = ctx.runtime.live_account(handle.id).await {
            match live.reconcile("job").await {
                Ok(pass) => venues.push(json!({ "account": handle.id, "venue": live.row.venue, "pass": pass })),
                Err(e) => {
                    venues.push(json!({ "account": handle.id, "venue": live.row.venue, "error": e }));
                }
            }
        }
        let found = match differences(ctx, handle).await? {
            Some(found) if found.is_empty() => continue,
            Some(found) => found,
            None => {
                tracing::warn!(
                    account = handle.id,
                    "reconciliation skipped an account that kept trading; next run checks it"
                );
                busy.push(handle.id);
                continue;
            }
        };
        for difference in &found {
            let kind = difference.get("kind").and_then(Value::as_str).unwrap_or("unknown").to_string();
            counter!("tradecore_reconcile_differences_total", "kind" => kind).increment(1);
        }
        tracing::error!(
            account = handle.id,
            differences = %serde_json::Value::Array(found.clone()),
            "reconciliation found differences: the account is now close-only"
        );
        handle
            .command(Command::SetTradingState { scope: SwitchScope::Account, state: TradingState::Reducing })
            .await
            .map_err(|e| e.to_string())?;
        let audit = AuditEntry::new(ctx.runtime.now(), None, "reconcile.close_only", None)
            .target(handle.id.to_string())
            .detail(json!({ "differences": found }));
        ctx.runtime.store.record_audit(&audit).await.map_err(|e| store_error(&e))?;
        restricted.push(handle.id);
        reports.push(json!({ "account": handle.id, "differences": found }));
    }
    Ok(json!({
        "accounts": handles.len(),
        "differences": reports,
        "close_only": restricted,
        "skipped_busy": busy,
        "venues": venues,
    }))
}

// ---------------------------------------------------------------------------
// equity_daily

async fn equity_daily(ctx: &JobContext, at: Timestamp) -> Result<Value, String> {
    let today = at.as_nanos().div_euclid(NANOS_PER_DAY);
    let day = today - 1;
    let day_start = Timestamp::from_nanos(day * NANOS_PER_DAY);
    let day_end = Timestamp::from_nanos(today * NANOS_PER_DAY);
    let store = &ctx.runtime.store;
    let accounts = store.accounts().await.map_err(|e| store_error(&e))?;
    let mut recorded = 0;
    for account in &accounts {
        let Some(snapshot) = store.last_equity_before(account.id, day_end).await.map_err(|e| store_error(&e))? else {
            continue;
        };
        // Nothing recorded that day (the account did not exist, or the server was off).
        if snapshot.ts < day_start {
            continue;
        }
        store.save_daily_equity(day, &snapshot).await.map_err(|e| store_error(&e))?;
        recorded += 1;
    }
    let (y, m, d) = model::time::civil_from_days(day);
    Ok(json!({ "day": format!("{y:04}-{m:02}-{d:02}"), "accounts": accounts.len(), "recorded": recorded }))
}

// ---------------------------------------------------------------------------
// candle_rollup

/// Rolls 1m candles up into `interval` buckets that are closed by `until`.
fn roll_up(minutes: &[CandleRecord], interval: sim::candles::Interval, until: Timestamp) -> Vec<CandleRecord> {
    let mut out: Vec<CandleRecord> = Vec::new();
    for c in minutes {
        let start = interval.start_of(c.start);
        if start.as_nanos() + interval.as_nanos() > until.as_nanos() {
            continue;
        }
        match out.last_mut() {
            Some(bucket) if bucket.start == start => {
                bucket.high = bucket.high.max(c.high);
                bucket.low = bucket.low.min(c.low);
                bucket.close = c.close;
                bucket.volume = bucket.volume.checked_add(c.volume).unwrap_or(bucket.volume);
                bucket.trades += c.trades;
            }
            _ => out.push(CandleRecord { interval: interval.as_str().to_string(), start, ..c.clone() }),
        }
    }
    out
}

async fn candle_rollup(ctx: &JobContext, at: Timestamp) -> Result<Value, String> {
    use sim::candles::Interval;
    let from = Timestamp::from_nanos((at.as_nanos().div_euclid(NANOS_PER_DAY) - 1) * NANOS_PER_DAY);
    let store = &ctx.runtime.store;
    let mut written = 0usize;
    let instruments: Vec<(InstrumentId, String)> =
        ctx.runtime.instruments().iter().map(|i| (i.id, i.symbol.clone())).collect();
    for (id, _) in &instruments {
        // Two days of minutes at most: 2,880 rows.
        let minutes = store.candles(*id, "1m", from, at, 10_000).await.map_err(|e| store_error(&e))?;
        let mut rolled = Vec::new();
        for interval in [Interval::M5, Interval::H1, Interval::D1] {
            rolled.extend(roll_up(&minutes, interval, at));
        }
        store.save_candles(&rolled).await.map_err(|e| store_error(&e))?;
        written += rolled.len();
    }
    Ok(json!({ "instruments": instruments.len(), "candles": written, "from": from, "until": at }))
}

// ---------------------------------------------------------------------------
// retention

async fn retention(ctx: &JobContext) -> Result<Value, String> {
    let r = &ctx.config.retention;
    let now = ctx.runtime.now();
    let kinds = [
        ("candles_1m", Prunable::Candles("1m"), r.candles_1m_days),
        ("candles_5m", Prunable::Candles("5m"), r.candles_5m_days),
        ("candles_1h", Prunable::Candles("1h"), r.candles_1h_days),
        ("candles_1d", Prunable::Candles("1d"), r.candles_1d_days),
        ("equity_minutes", Prunable::EquitySnapshots, r.equity_minutes_days),
        ("audit", Prunable::Audit, r.audit_days),
        ("jobs", Prunable::FinishedJobs, r.jobs_days),
        ("sessions", Prunable::ExpiredSessions, r.sessions_days),
        ("backtests", Prunable::Backtests, r.backtests_days),
    ];
    let mut deleted = serde_json::Map::new();
    for (name, what, days) in kinds {
        if days == 0 {
            continue;
        }
        let before = Timestamp::from_nanos(now.as_nanos() - i64::from(days) * NANOS_PER_DAY);
        let n = ctx.runtime.store.prune(what, before).await.map_err(|e| store_error(&e))?;
        deleted.insert(name.to_string(), Value::from(n));
    }
    Ok(json!({ "deleted": deleted }))
}

// ---------------------------------------------------------------------------
// backups

async fn backup(ctx: &JobContext) -> Result<Value, String> {
    let backups = crate::backup::configured(&ctx.config)?;
    let outcome = async {
        let manifest = backups.create(&ctx.runtime.store, &mut |_| {}).await?;
        let pruned = backups.prune(ctx.runtime.now(), false).await?;
        Ok::<_, String>((manifest, pruned))
    }
    .await;
    match outcome {
        Ok((manifest, pruned)) => {
            // The last-success gauges come from the job table (sample_metrics).
            Ok(json!({
                "backup": manifest.name,
                "bytes": manifest.data.bytes,
                "rows": manifest.rows,
                "target": backups.target().describe(),
                "pruned": pruned,
            }))
        }
        Err(e) => {
            counter!("tradecore_backup_failures_total").increment(1);
            Err(e)
        }
    }
}

async fn backup_verify(ctx: &JobContext) -> Result<Value, String> {
    let backups = crate::backup::configured(&ctx.config)?;
    let name = backups.latest().await?;
    let verified = backups.verify(&name, &mut |_| {}).await.inspect_err(|_| {
        counter!("tradecore_backup_verify_failures_total").increment(1);
    })?;
    Ok(
        json!({ "backup": verified.name, "rows": verified.rows, "accounts": verified.accounts, "seconds": verified.seconds }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::{Price, Quantity};
    use sim::candles::Interval;

    fn minute(start_min: i64, open: i64, high: i64, low: i64, close: i64, volume: &str) -> CandleRecord {
        CandleRecord {
            instrument: InstrumentId(1),
            interval: "1m".into(),
            start: Timestamp::from_secs(1_800_000_000 / 3600 * 3600 + start_min * 60),
            open: Price::from_int(open),
            high: Price::from_int(high),
            low: Price::from_int(low),
            close: Price::from_int(close),
            volume: Quantity::parse(volume).unwrap(),
            trades: 2,
        }
    }

    #[test]
    fn minutes_roll_up_exactly_into_closed_buckets() {
        let minutes = [
            minute(0, 10, 12, 9, 11, "1.5"),
            minute(1, 11, 15, 10, 14, "2.25"),
            minute(4, 14, 14, 8, 9, "0.25"),
            minute(5, 9, 10, 9, 10, "1"),
            minute(7, 10, 11, 10, 11, "1"),
        ];
        let until = minutes[4].start.plus_nanos(60_000_000_000);
        let five = roll_up(&minutes, Interval::M5, until);
        assert_eq!(five.len(), 1, "the second 5m bucket (5..10) is not closed yet");
        let b = &five[0];
        assert_eq!(
            (b.open, b.high, b.low, b.close),
            (Price::from_int(10), Price::from_int(15), Price::from_int(8), Price::from_int(9))
        );
        assert_eq!((b.volume, b.trades, b.interval.as_str()), (Quantity::parse("4").unwrap(), 6, "5m"));
        let later = minutes[0].start.plus_nanos(3_600_000_000_000);
        let hour = roll_up(&minutes, Interval::H1, later);
        assert_eq!(
            (hour.len(), hour[0].close, hour[0].volume),
            (1, Price::from_int(11), Quantity::parse("6").unwrap())
        );
    }
}
