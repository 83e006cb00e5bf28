//! Background jobs: a durable queue in the database, workers that claim
//! jobs with a lease, retries with exponential backoff, a dead-letter list,
//! and cron schedules from the configuration.
//!
//! - Durable: a job is a row (`store::jobs`), so nothing is lost on a
//!   restart; a job whose instance died while running it is claimed again
//!   when its lease runs out. Jobs are written to be safe to run twice.
//! - Scheduled exactly once: every instance's scheduler enqueues the latest
//!   due slot of each schedule, and the database keeps one job per
//!   (schedule, slot); workers of all instances share the queue, so each
//!   slot runs once, on whichever instance claims it.
//! - Retried: a failure is retried after 30 s, 1 min, 2 min... (at most
//!   an hour), up to `jobs.max_attempts` runs; then the job is dead, shown to
//!   admins, who can retry it.

pub mod builtin;
pub mod cron;

use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics::{counter, gauge, histogram};
use model::Timestamp;
use store::jobs::{JobId, JobRow, NewJob};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tracing::Instrument as _;

use crate::config::Config;
use crate::runtime::Runtime;
use cron::Cron;

/// How long a claimed job is ours without renewing.
const LEASE: Duration = Duration::from_secs(60);
/// How often a running job renews its lease.
const RENEW_EVERY: Duration = Duration::from_secs(20);
/// How often an idle worker looks for due jobs (enqueues here wake it at once).
const POLL: Duration = Duration::from_secs(2);
/// The scheduler looks at least this often.
const SCHEDULER_TICK: Duration = Duration::from_secs(15);
/// A slot missed while no instance ran is caught up if it is at most this old.
const CATCH_UP: Duration = Duration::from_secs(36 * 3600);
/// The first retry's delay; each next one doubles, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(30);
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// Every kind of job the workers know.
pub const KINDS: [&str; 6] = ["reconcile", "equity_daily", "candle_rollup", "retention", "backup", "backup_verify"];

/// A configured schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub job: &'static str,
    pub cron: Cron,
}

/// The job system of one server instance.
#[derive(Debug)]
pub struct Jobs {
    runtime: Arc<Runtime>,
    config: Arc<Config>,
    /// Who holds a lease: this instance (host, process, random).
    worker_id: String,
    schedules: Vec<Schedule>,
    wake: Notify,
}

impl Jobs {
    /// Schedules come from the configuration, already checked by it; the
    /// backup schedules apply only when a backup target is configured.
    #[must_use]
    pub fn new(runtime: Arc<Runtime>, config: Arc<Config>) -> Self {
        let backups = config.backup.target.is_some();
        let schedules = config
            .jobs
            .schedules()
            .into_iter()
            .filter(|(job, _)| backups || !job.starts_with("backup"))
            .filter_map(|(job, text)| {
                let text = text.trim();
                if text.is_empty() {
                    return None;
                }
                match Cron::parse(text) {
                    Ok(cron) => Some(Schedule { job, cron }),
                    Err(e) => {
                        tracing::error!(job, error = %e, "schedule ignored");
                        None
                    }
                }
            })
            .collect();
        // Unique per job system: tests run two "instances" in one process.
        let suffix = crate::auth::random_hex(3).unwrap_or_default();
        let worker_id = format!("{}-{suffix}", crate::cluster::instance_id());
        Self { runtime, config, worker_id, schedules, wake: Notify::new() }
    }

    #[must_use]
    pub fn schedules(&self) -> &[Schedule] {
        &self.schedules
    }

    #[must_use]
    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// Wakes idle workers (after something was put back in the queue).
    pub fn wake(&self) {
        self.wake.notify_waiters();
    }

    /// Enqueues a job due now (an admin's "run now", or code that needs one).
    pub async fn enqueue(&self, kind: &str, payload: &serde_json::Value) -> Result<JobId, store::StoreError> {
        let payload = payload.to_string();
        let now = self.runtime.now();
        let new =
            NewJob { kind, payload: &payload, run_at: now, max_attempts: self.config.jobs.max_attempts, slot: None };
        let id = self.runtime.store.enqueue_job(&new, now).await?.ok_or(store::StoreError::Closed)?;
        self.wake.notify_waiters();
        Ok(id)
    }

    /// Starts the scheduler and the workers; they stop when `stop` turns true
    /// (a running job is left to its lease, and another run picks it up).
    pub fn spawn(self: &Arc<Self>, stop: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
        let mut tasks = vec![tokio::spawn(Arc::clone(self).schedule(stop.clone()))];
        for n in 0..self.config.jobs.workers {
            tasks.push(tokio::spawn(Arc::clone(self).work(n, stop.clone())));
        }
        tasks
    }

    /// Enqueues the latest due slot of every schedule, then sleeps until the
    /// next slot (or [`SCHEDULER_TICK`]).
    async fn schedule(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            let now = self.runtime.now();
            for schedule in &self.schedules {
                self.enqueue_slot(schedule, now).await;
            }
            let next = self
                .schedules
                .iter()
                .filter_map(|s| s.cron.next_after(now))
                .min()
                .map_or(SCHEDULER_TICK, |t| nanos_until(now, t).min(SCHEDULER_TICK));
            tokio::select! {
                () = tokio::time::sleep(next) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    async fn enqueue_slot(&self, schedule: &Schedule, now: Timestamp) {
        let Some(slot) = schedule.cron.latest_at_or_before(now) else { return };
        if nanos_until(slot, now) > CATCH_UP {
            return;
        }
        let payload = serde_json::json!({ "slot": slot }).to_string();
        let new = NewJob {
            kind: schedule.job,
            payload: &payload,
            run_at: slot,
            max_attempts: self.config.jobs.max_attempts,
            slot: Some((schedule.job, slot)),
        };
        match self.runtime.store.enqueue_job(&new, now).await {
            Ok(Some(id)) => {
                tracing::debug!(job = schedule.job, id, %slot, "scheduled");
                self.wake.notify_waiters();
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(job = schedule.job, error = %e, "could not enqueue a scheduled run"),
        }
    }

    /// One worker: claims due jobs and runs them, one at a time.
    async fn work(self: Arc<Self>, n: u32, mut stop: watch::Receiver<bool>) {
        let worker = format!("{}#{n}", self.worker_id);
        loop {
            if *stop.borrow() {
                return;
            }
            let now = self.runtime.now();
            let lease_until = now.plus_nanos(i64::try_from(LEASE.as_nanos()).unwrap_or(i64::MAX));
            match self.runtime.store.claim_job(&worker, now, lease_until).await {
                Ok(Some(job)) => self.run(&worker, job).await,
                Ok(None) => {
                    tokio::select! {
                        () = tokio::time::sleep(POLL) => {}
                        () = self.wake.notified() => {}
                        _ = stop.wait_for(|s| *s) => return,
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "job queue unreachable; trying again shortly");
                    tokio::time::sleep(POLL).await;
                }
            }
        }
    }

    async fn run(&self, worker: &str, job: JobRow) {
        let span = tracing::info_span!("job", id = job.id, kind = %job.kind, attempt = job.attempts);
        self.run_in_span(worker, job).instrument(span).await;
    }

    async fn run_in_span(&self, worker: &str, job: JobRow) {
        // Claimed again after its lease ran out more often than it may run:
        // its runs keep killing their instance, so stop trying.
        if job.attempts > job.max_attempts {
            let error =
                format!("abandoned: the instance running it stopped during each of its {} runs", job.max_attempts);
            let now = self.runtime.now();
            if let Err(e) = self.runtime.store.fail_job(job.id, worker, &error, now, now).await {
                tracing::error!(error = %e, "an abandoned job could not be dead-lettered");
            }
            counter!("tradecore_job_runs_total", "task" => job.kind.clone(), "outcome" => "failed").increment(1);
            tracing::error!(%error, "job dead-lettered");
            return;
        }
        tracing::info!("job started");
        let started = Instant::now();
        let renew = {
            let (store, worker, id, runtime) =
                (self.runtime.store.clone(), worker.to_string(), job.id, Arc::clone(&self.runtime));
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(RENEW_EVERY).await;
                    let now = runtime.now();
                    let until = now.plus_nanos(i64::try_from(LEASE.as_nanos()).unwrap_or(i64::MAX));
                    match store.renew_job(id, &worker, until, now).await {
                        Ok(true) => {}
                        Ok(false) => break,
                        Err(e) => tracing::warn!(error = %e, "lease not renewed"),
                    }
                }
            })
        };
        let ctx = builtin::JobContext { runtime: Arc::clone(&self.runtime), config: Arc::clone(&self.config) };
        let outcome = builtin::run(&ctx, &job).await;
        renew.abort();
        let took = started.elapsed();
        histogram!("tradecore_job_duration_seconds", "task" => job.kind.clone()).record(took.as_secs_f64());
        let now = self.runtime.now();
        let store = &self.runtime.store;
        match outcome {
            Ok(result) => {
                counter!("tradecore_job_runs_total", "task" => job.kind.clone(), "outcome" => "ok").increment(1);
                match store.finish_job(job.id, worker, &result.to_string(), now).await {
                    Ok(true) => tracing::info!(ms = took.as_millis(), %result, "job done"),
                    Ok(false) => tracing::warn!("job done, but its lease had passed to another worker"),
                    Err(e) => tracing::error!(error = %e, "job done, but its result was not saved; it will run again"),
                }
            }
            Err(error) => {
                let retry_at = now.plus_nanos(i64::try_from(backoff(job.attempts).as_nanos()).unwrap_or(i64::MAX));
                match store.fail_job(job.id, worker, &error, retry_at, now).await {
                    Ok(Some("dead")) => {
                        counter!("tradecore_job_runs_total", "task" => job.kind.clone(), "outcome" => "failed")
                            .increment(1);
                        tracing::error!(%error, "job failed for the last time: it is in the dead-letter list");
                    }
                    Ok(_) => {
                        counter!("tradecore_job_runs_total", "task" => job.kind.clone(), "outcome" => "retry")
                            .increment(1);
                        tracing::warn!(%error, %retry_at, "job failed; it will be retried");
                    }
                    Err(e) => tracing::error!(error = %e, "job failed, and the failure was not saved"),
                }
            }
        }
    }
}

/// The delay before the retry that follows run number `attempts`.
#[must_use]
pub fn backoff(attempts: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(16);
    FIRST_BACKOFF.saturating_mul(1 << doublings).min(MAX_BACKOFF)
}

fn nanos_until(from: Timestamp, to: Timestamp) -> Duration {
    Duration::from_nanos(u64::try_from(to.as_nanos() - from.as_nanos()).unwrap_or(0))
}

/// Samples the queue for `/metrics`: jobs queued per kind, dead ones, and
/// the last successful backup and verification. Those come from the job
/// table, so they survive restarts and every instance reports the same.
#[allow(clippy::cast_precision_loss)] // counts and times for a dashboard
pub async fn sample_metrics(runtime: &Runtime) {
    let store = &runtime.store;
    for (kind, gauge_name) in [
        ("backup", "tradecore_backup_last_success_timestamp_seconds"),
        ("backup_verify", "tradecore_backup_verify_last_success_timestamp_seconds"),
    ] {
        match store.jobs(Some("done"), Some(kind), None, 1).await {
            Ok(rows) => {
                if let Some(job) = rows.first() {
                    let finished = job.finished.unwrap_or(job.updated);
                    gauge!(gauge_name).set(finished.as_nanos() as f64 / 1e9);
                    let bytes = job
                        .result
                        .as_deref()
                        .and_then(|r| serde_json::from_str::<serde_json::Value>(r).ok())
                        .and_then(|r| r.get("bytes").and_then(serde_json::Value::as_u64));
                    if let Some(bytes) = bytes {
                        gauge!("tradecore_backup_last_size_bytes").set(bytes as f64);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "metrics: the job table could not be read"),
        }
    }
    match runtime.store.job_counts().await {
        Ok(counts) => {
            for kind in KINDS {
                let queued = counts.iter().find(|c| c.kind == kind).map_or(0, |c| c.queued);
                gauge!("tradecore_jobs_queued", "task" => kind).set(queued as f64);
            }
            gauge!("tradecore_jobs_dead").set(counts.iter().map(|c| c.dead).sum::<u64>() as f64);
        }
        Err(e) => tracing::warn!(error = %e, "metrics: the job queue could not be read"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        let delays: Vec<u64> = (1..=9).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(delays, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
        assert_eq!(backoff(0).as_secs(), 30);
        assert_eq!(backoff(u32::MAX).as_secs(), 3600);
    }
}
