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
    OpenApiRouter::new().routes(routes!(accounts)).routes(routes!(health))
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
    venue: &'static str,
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
            venue: "paper",
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
    let work = WorkHealth {
        accounts_running: rt.account_count().await,
        bots_running: state.bots.running_count().await,
        backtests_running,
        backtests_queued,
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
