//! What administrators need besides users and the audit log: every account
//! with its owner and kill switch (to halt one), and the system's health
//! (database, journal, feed, background work), as the dashboard's admin
//! page shows them. Admins only.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use axum::extract::State;
use engine::TradingState;
use model::Timestamp;
use serde::Serialize;
use store::AccountId;
use store::auth::UserId;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, Json};

/// A quote older than this means the feed is stale.
const STALE_QUOTE_SECONDS: f64 = 10.0;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(accounts))
        .routes(routes!(health))
        .routes(routes!(list_jobs, run_job))
        .routes(routes!(retry_job))
        .routes(routes!(schedules))
        .routes(routes!(backups))
}

#[derive(Debug, Serialize, ToSchema)]
struct Owner {
    #[schema(value_type = i64)]
    id: UserId,
    username: String,
}

#[derive(Debug, Serialize, ToSchema)]
struct AdminAccount {
    #[schema(value_type = i64)]
    id: AccountId,
    name: String,
    base_currency: String,
    /// `paper`, `binance` or `tastytrade`.
    venue: String,
    /// `null` for accounts created without an owner (tools, tests).
    owner: Option<Owner>,
    /// Its own kill switch; `null` when it is not running on this server.
    trading_state: Option<TradingState>,
    created: Timestamp,
}

/// Every account with its owner and kill switch (admins).
#[utoipa::path(
    get,
    path = "/api/v1/admin/accounts",
    tag = "risk",
    operation_id = "admin_list_accounts",
    security(("token" = ["admin"]), ("session" = [])),
    responses(
        (status = 200, description = "Every account, oldest first.", body = Vec<AdminAccount>),
        (status = 403, description = "- `forbidden`: not an admin."),
    ),
)]
async fn accounts(State(state): State<AppState>, caller: Caller) -> Result<Json<Vec<AdminAccount>>, ApiError> {
    caller.require_admin()?;
    let store = &state.runtime.store;
    let rows = store.accounts().await.map_err(|e| ApiError::internal(&e))?;
    let owners: HashMap<AccountId, UserId> =
        store.account_owners().await.map_err(|e| ApiError::internal(&e))?.into_iter().collect();
    let names: HashMap<UserId, String> =
        store.users().await.map_err(|e| ApiError::internal(&e))?.into_iter().map(|u| (u.id, u.username)).collect();
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let trading_state = match state.runtime.account(row.id).await {
            Some(handle) => handle.read_live(|s| s.account_state).await.ok(),
            None => None,
        };
        let owner = owners.get(&row.id).map(|&id| Owner { id, username: names.get(&id).cloned().unwrap_or_default() });
        out.push(AdminAccount {
            id: row.id,
            name: row.name,
            base_currency: row.base_currency.to_string(),
            venue: state.runtime.live_account(row.id).await.map_or_else(|| "paper".to_string(), |l| l.row.venue),
            owner,
            trading_state,
            created: row.created,
        });
    }
    Ok(Json(out))
}

#[derive(Debug, Serialize, ToSchema)]
struct Health {
    version: &'static str,
    uptime_seconds: u64,
    global_trading_state: TradingState,
    database: DatabaseHealth,
    journal: JournalHealth,
    feed: Vec<FeedHealth>,
    work: WorkHealth,
}

#[derive(Debug, Serialize, ToSchema)]
struct DatabaseHealth {
    /// `sqlite` or `postgres`.
    backend: &'static str,
    reachable: bool,
    /// Round trip of `SELECT 1`, in milliseconds.
    ping_ms: Option<f64>,
    migrations_pending: Option<usize>,
    /// Why it is not reachable.
    error: Option<String>,
}

/// The group committer: how far behind durable writes are.
#[derive(Debug, Serialize, ToSchema)]
struct JournalHealth {
    /// Commits waiting to be written now (the journal's lag, in commits).
    queued_commits: usize,
    /// How long the latest batch took to write.
    last_batch_ms: f64,
    /// Average write time per batch since start.
    average_batch_ms: f64,
    batches: u64,
    commits: u64,
    events: u64,
    failed_batches: u64,
}

#[derive(Debug, Serialize, ToSchema)]
struct FeedHealth {
    symbol: String,
    last_quote: Option<Timestamp>,
    /// Seconds since the last quote.
    age_seconds: Option<f64>,
    /// `live`, `stale` (no quote for 10 s) or `none` (no quote yet).
    status: &'static str,
}

/// Background work of this server.
#[derive(Debug, Serialize, ToSchema)]
struct WorkHealth {
    accounts_running: usize,
    bots_running: usize,
    backtests_running: usize,
    backtests_queued: usize,
    /// Background jobs due or waiting to be retried.
    jobs_queued: u64,
    jobs_running: u64,
    /// Jobs that failed every attempt (see `GET /admin/jobs?status=dead`).
    jobs_dead: u64,
}

/// The system's health (admins): database, journal, feed and background work.
#[utoipa::path(
    get,
    path = "/api/v1/admin/health",
    tag = "system",
    operation_id = "admin_health",
    security(("token" = ["admin"]), ("session" = [])),
    responses(
        (status = 200, description = "Health; a database that cannot be reached is reported, not an error.", body = Health),
        (status = 403, description = "- `forbidden`: not an admin."),
    ),
)]
async fn health(State(state): State<AppState>, caller: Caller) -> Result<Json<Health>, ApiError> {
    caller.require_admin()?;
    let rt = &state.runtime;
    let started = Instant::now();
    let database = match rt.store.ping().await {
        Ok(()) => {
            let ping_ms = started.elapsed().as_secs_f64() * 1000.0;
            let pending = rt.store.pending_migrations().await.ok().map(|p| p.len());
            DatabaseHealth {
                backend: rt.store.backend(),
                reachable: true,
                ping_ms: Some(ping_ms),
                migrations_pending: pending,
                error: None,
            }
        }
        Err(e) => DatabaseHealth {
            backend: rt.store.backend(),
            reachable: false,
            ping_ms: None,
            migrations_pending: None,
            error: Some(e.to_string()),
        },
    };
    let committer = rt.committer();
    let stats = committer.stats();
    let batches = stats.batches.load(Relaxed);
    #[allow(clippy::cast_precision_loss)] // milliseconds for people
    let average_batch_ms =
        if batches == 0 { 0.0 } else { stats.write_micros.load(Relaxed) as f64 / batches as f64 / 1000.0 };
    #[allow(clippy::cast_precision_loss)]
    let last_batch_ms = stats.last_write_micros.load(Relaxed) as f64 / 1000.0;
    let journal = JournalHealth {
        queued_commits: committer.queued(),
        last_batch_ms,
        average_batch_ms,
        batches,
        commits: stats.commits.load(Relaxed),
        events: stats.events.load(Relaxed),
        failed_batches: stats.failed_batches.load(Relaxed),
    };
    let now = rt.now();
    let quotes = rt.latest_quotes();
    let feed = rt
        .instruments()
        .iter()
        .map(|i| {
            let last = quotes.iter().find(|q| q.instrument == i.id).map(|q| q.ts);
            #[allow(clippy::cast_precision_loss)]
            let age = last.map(|ts| (now.as_nanos() - ts.as_nanos()).max(0) as f64 / 1e9);
            let status = match age {
                None => "none",
                Some(a) if a > STALE_QUOTE_SECONDS => "stale",
                Some(_) => "live",
            };
            FeedHealth { symbol: i.symbol.clone(), last_quote: last, age_seconds: age, status }
        })
        .collect();
    let (backtests_running, backtests_queued) = state.backtest_runs.counts();
    let jobs = rt.store.job_counts().await.unwrap_or_default();
    let work = WorkHealth {
        accounts_running: rt.account_count().await,
        bots_running: state.bots.running_count().await,
        backtests_running,
        backtests_queued,
        jobs_queued: jobs.iter().map(|c| c.queued).sum(),
        jobs_running: jobs.iter().map(|c| c.running).sum(),
        jobs_dead: jobs.iter().map(|c| c.dead).sum(),
    };
    Ok(Json(Health {
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: rt.uptime_seconds(),
        global_trading_state: rt.global_state().await,
        database,
        journal,
        feed,
        work,
    }))
}

// ---------------------------------------------------------------------------
// Jobs

/// A background job as admins see it.
#[derive(Debug, Serialize, ToSchema)]
struct JobView {
    id: i64,
    /// `reconcile`, `equity_daily`, `candle_rollup`, `retention`, `backup` or `backup_verify`.
    kind: String,
    /// `queued`, `running`, `done` or `dead`.
    status: String,
    attempts: u32,
    max_attempts: u32,
    /// Not before this time (a retry's backoff, or a scheduled slot).
    run_at: Timestamp,
    /// The worker running it, or that ran it last (instance and worker number).
    locked_by: Option<String>,
    last_error: Option<String>,
    /// What a finished run reported.
    #[schema(value_type = Object)]
    result: Option<serde_json::Value>,
    schedule: Option<String>,
    scheduled_for: Option<Timestamp>,
    created: Timestamp,
    finished: Option<Timestamp>,
}

fn job_view(row: store::jobs::JobRow) -> JobView {
    JobView {
        id: row.id,
        kind: row.kind,
        status: row.status,
        attempts: row.attempts,
        max_attempts: row.max_attempts,
        run_at: row.run_at,
        locked_by: row.locked_by,
        last_error: row.last_error,
        result: row.result.and_then(|r| serde_json::from_str(&r).ok()),
        schedule: row.schedule,
        scheduled_for: row.scheduled_for,
        created: row.created,
        finished: row.finished,
    }
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct JobQuery {
    /// `queued`, `running`, `done` or `dead`.
    status: Option<String>,
    /// One kind of job.
    kind: Option<String>,
    /// Only jobs with a smaller id: `next_before` of the previous page.
    before: Option<i64>,
    /// 1 to 500 (default 100).
    limit: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
struct JobPage {
    items: Vec<JobView>,
    next_before: Option<i64>,
}

/// Background jobs, newest first (admins).
#[utoipa::path(
    get,
    path = "/api/v1/admin/jobs",
    tag = "system",
    operation_id = "admin_list_jobs",
    security(("token" = ["admin"]), ("session" = [])),
    params(JobQuery),
    responses(
        (status = 200, description = "A page of jobs.", body = JobPage),
        (status = 403, description = "- `forbidden`: not an admin."),
        (status = 422, description = "- `validation_failed`: a bad `status`, `kind` or `limit`."),
    ),
)]
async fn list_jobs(
    State(state): State<AppState>,
    caller: Caller,
    crate::error::Query(q): crate::error::Query<JobQuery>,
) -> Result<Json<JobPage>, ApiError> {
    caller.require_admin()?;
    if let Some(status) = &q.status
        && !["queued", "running", "done", "dead"].contains(&status.as_str())
    {
        return Err(ApiError::invalid("status", "status is queued, running, done or dead"));
    }
    if let Some(kind) = &q.kind
        && !crate::jobs::KINDS.contains(&kind.as_str())
    {
        return Err(ApiError::invalid("kind", format!("kind is one of {}", crate::jobs::KINDS.join(", "))));
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid("limit", "limit must be from 1 to 500"));
    }
    let rows = state
        .runtime
        .store
        .jobs(q.status.as_deref(), q.kind.as_deref(), q.before, limit)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let next_before = if rows.len() == limit as usize { rows.last().map(|r| r.id) } else { None };
    Ok(Json(JobPage { items: rows.into_iter().map(job_view).collect(), next_before }))
}

#[derive(Debug, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RunJob {
    /// The kind of job to run now.
    kind: String,
}

#[derive(Debug, Serialize, ToSchema)]
struct Enqueued {
    id: i64,
}

/// Runs a job now (admins): enqueued, due at once. Audited.
#[utoipa::path(
    post,
    path = "/api/v1/admin/jobs",
    tag = "system",
    operation_id = "admin_run_job",
    security(("token" = ["admin"]), ("session" = [], "csrf" = [])),
    request_body = RunJob,
    responses(
        (status = 202, description = "Enqueued.", body = Enqueued),
        (status = 403, description = "- `forbidden`: not an admin."),
        (status = 422, description = "- `validation_failed`: an unknown `kind`, or a backup job without a backup target."),
    ),
)]
async fn run_job(
    State(state): State<AppState>,
    caller: Caller,
    client: crate::auth::ClientMeta,
    Json(body): Json<RunJob>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse as _;
    caller.require_admin()?;
    if !crate::jobs::KINDS.contains(&body.kind.as_str()) {
        return Err(ApiError::invalid("kind", format!("kind is one of {}", crate::jobs::KINDS.join(", "))));
    }
    if body.kind.starts_with("backup") && state.config.backup.target.is_none() {
        return Err(ApiError::invalid("kind", "no backup target is configured (backup.target)"));
    }
    let id = state.jobs.enqueue(&body.kind, &serde_json::json!({})).await.map_err(|e| ApiError::internal(&e))?;
    let entry =
        store::auth::AuditEntry::new(state.runtime.now(), Some(caller.user_id), "job.run", client.ip.as_deref())
            .target(format!("job:{id}"))
            .detail(serde_json::json!({ "kind": body.kind }));
    state.runtime.store.record_audit(&entry).await.map_err(|e| ApiError::internal(&e))?;
    Ok((axum::http::StatusCode::ACCEPTED, Json(Enqueued { id })).into_response())
}

/// Puts a dead job back in the queue with fresh attempts (admins). Audited.
#[utoipa::path(
    post,
    path = "/api/v1/admin/jobs/{id}/retry",
    tag = "system",
    operation_id = "admin_retry_job",
    security(("token" = ["admin"]), ("session" = [], "csrf" = [])),
    params(("id" = i64, Path, description = "The job's id.")),
    responses(
        (status = 200, description = "The job, queued.", body = JobView),
        (status = 403, description = "- `forbidden`: not an admin."),
        (status = 404, description = "- `not_found`: no such job."),
        (status = 409, description = "- `job_not_dead`: only jobs in the dead-letter list are retried."),
    ),
)]
async fn retry_job(
    State(state): State<AppState>,
    caller: Caller,
    client: crate::auth::ClientMeta,
    crate::error::Path(id): crate::error::Path<i64>,
) -> Result<Json<JobView>, ApiError> {
    caller.require_admin()?;
    let store = &state.runtime.store;
    let now = state.runtime.now();
    if !store.retry_job(id, now).await.map_err(|e| ApiError::internal(&e))? {
        return match store.job(id).await.map_err(|e| ApiError::internal(&e))? {
            None => Err(ApiError::not_found("job")),
            Some(job) => Err(ApiError::conflict(
                "job_not_dead",
                format!("job {id} is {}; only dead jobs are retried", job.status),
            )),
        };
    }
    let entry = store::auth::AuditEntry::new(now, Some(caller.user_id), "job.retry", client.ip.as_deref())
        .target(format!("job:{id}"));
    store.record_audit(&entry).await.map_err(|e| ApiError::internal(&e))?;
    state.jobs.wake();
    let job = store.job(id).await.map_err(|e| ApiError::internal(&e))?.ok_or_else(|| ApiError::not_found("job"))?;
    Ok(Json(job_view(job)))
}

#[derive(Debug, Serialize, ToSchema)]
struct ScheduleView {
    job: &'static str,
    /// The cron expression (UTC).
    schedule: String,
    next_run: Option<Timestamp>,
    /// The job of its latest slot.
    last: Option<JobView>,
}

/// The configured schedules with their next and last runs (admins).
#[utoipa::path(
    get,
    path = "/api/v1/admin/schedules",
    tag = "system",
    operation_id = "admin_schedules",
    security(("token" = ["admin"]), ("session" = [])),
    responses((status = 200, description = "Schedules.", body = Vec<ScheduleView>), (status = 403, description = "- `forbidden`: not an admin.")),
)]
async fn schedules(State(state): State<AppState>, caller: Caller) -> Result<Json<Vec<ScheduleView>>, ApiError> {
    caller.require_admin()?;
    let now = state.runtime.now();
    let mut out = Vec::new();
    for s in state.jobs.schedules() {
        let last = state.runtime.store.last_scheduled_job(s.job).await.map_err(|e| ApiError::internal(&e))?;
        out.push(ScheduleView {
            job: s.job,
            schedule: s.cron.to_string(),
            next_run: s.cron.next_after(now),
            last: last.map(job_view),
        });
    }
    Ok(Json(out))
}

#[derive(Debug, Serialize, ToSchema)]
struct BackupView {
    name: String,
    created: Option<Timestamp>,
    /// Stored size.
    bytes: Option<u64>,
    rows: Option<u64>,
    /// Where it was taken: `sqlite` or `postgres`.
    backend: Option<String>,
    /// Why its manifest cannot be trusted (unreadable, another key, altered).
    error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
struct BackupList {
    configured: bool,
    /// Where backups go (no credentials).
    target: Option<String>,
    /// Why the target could not be listed (unreachable, refused, misconfigured).
    error: Option<String>,
    backups: Vec<BackupView>,
}

/// The backups at the configured target, newest first (admins).
#[utoipa::path(
    get,
    path = "/api/v1/admin/backups",
    tag = "system",
    operation_id = "admin_backups",
    security(("token" = ["admin"]), ("session" = [])),
    responses(
        (status = 200, description = "Backups (`configured: false` without a backup target; `error` when the target cannot be listed).", body = BackupList),
        (status = 403, description = "- `forbidden`: not an admin."),
    ),
)]
async fn backups(State(state): State<AppState>, caller: Caller) -> Result<Json<BackupList>, ApiError> {
    caller.require_admin()?;
    let backups = match crate::backup::Backups::from_config(&state.config.backup) {
        Ok(Some(backups)) => backups,
        Ok(None) => return Ok(Json(BackupList { configured: false, target: None, error: None, backups: Vec::new() })),
        Err(e) => return Ok(Json(BackupList { configured: true, target: None, error: Some(e), backups: Vec::new() })),
    };
    let target = Some(backups.target().describe());
    let listed = match backups.list().await {
        Ok(listed) => listed,
        Err(e) => return Ok(Json(BackupList { configured: true, target, error: Some(e), backups: Vec::new() })),
    };
    let mut views: Vec<BackupView> = listed
        .into_iter()
        .map(|m| match m {
            Ok(m) => BackupView {
                name: m.name,
                created: Some(m.created),
                bytes: Some(m.data.bytes),
                rows: Some(m.rows),
                backend: Some(m.backend),
                error: None,
            },
            Err(e) => BackupView {
                name: e.split(':').next().unwrap_or_default().to_string(),
                created: None,
                bytes: None,
                rows: None,
                backend: None,
                error: Some(e),
            },
        })
        .collect();
    views.reverse();
    Ok(Json(BackupList { configured: true, target, error: None, backups: views }))
}
