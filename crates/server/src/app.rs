//! The HTTP application: shared state and the router.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Serialize;

use crate::error::{ApiError, Json};
use crate::runtime::Runtime;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pub runtime: Arc<Runtime>,
    pub config: Arc<crate::config::Config>,
    pub limits: Arc<crate::limits::Limits>,
    /// Sessions and tokens already resolved (see `auth`).
    pub credentials: Arc<crate::auth::CredentialCache>,
}

impl AppState {
    #[must_use]
    pub fn new(runtime: Arc<Runtime>, config: Arc<crate::config::Config>) -> Self {
        let limits =
            crate::limits::Limits::new(config.rate_limit.per_ip_per_minute, config.rate_limit.per_token_per_minute);
        Self { runtime, config, limits: Arc::new(limits), credentials: Arc::default() }
    }
}

/// The whole router. Tests call it with `oneshot` or serve it on port 0.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/v1/status", get(status))
        .merge(crate::api::market::routes())
        .merge(crate::api::ws::routes())
        .merge(crate::api::trading::routes())
        .merge(crate::api::risk::routes())
        .merge(crate::api::backtests::routes())
        .merge(crate::routes::auth::routes())
        .fallback(not_found)
        // Oversized bodies are refused before a handler reads them (413).
        .layer(axum::extract::DefaultBodyLimit::max(state.config.server.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::limits::enforce))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("route")
}

/// Liveness: the process answers.
async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, "ok")
}

#[derive(Debug, Serialize)]
struct Readiness {
    ready: bool,
    database: &'static str,
    migrations_pending: usize,
}

/// Readiness: the database answers and its migrations are current.
async fn readyz(State(state): State<AppState>) -> Result<Json<Readiness>, ApiError> {
    let store = &state.runtime.store;
    store.ping().await.map_err(|e| ApiError::unavailable(format!("database: {e}")))?;
    let pending = store.pending_migrations().await.map_err(|e| ApiError::unavailable(format!("database: {e}")))?;
    if !pending.is_empty() {
        return Err(ApiError::unavailable(format!("{} migrations pending; run `tradecore migrate`", pending.len())));
    }
    Ok(Json(Readiness { ready: true, database: store.backend(), migrations_pending: 0 }))
}

#[derive(Debug, Serialize)]
struct Status {
    version: &'static str,
    database: &'static str,
    uptime_seconds: u64,
    accounts: usize,
    instruments: Vec<String>,
    journal: JournalStatus,
}

#[derive(Debug, Serialize)]
struct JournalStatus {
    batches: u64,
    commits: u64,
    events: u64,
    failed_batches: u64,
}

async fn status(State(state): State<AppState>) -> Json<Status> {
    use std::sync::atomic::Ordering::Relaxed;
    let rt = &state.runtime;
    let stats = rt.committer().stats();
    Json(Status {
        version: env!("CARGO_PKG_VERSION"),
        database: rt.store.backend(),
        uptime_seconds: rt.uptime_seconds(),
        accounts: rt.account_count().await,
        instruments: rt.instruments().iter().map(|i| i.symbol.clone()).collect(),
        journal: JournalStatus {
            batches: stats.batches.load(Relaxed),
            commits: stats.commits.load(Relaxed),
            events: stats.events.load(Relaxed),
            failed_batches: stats.failed_batches.load(Relaxed),
        },
    })
}
