//! The HTTP application: shared state and the router.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, Json};
use crate::runtime::Runtime;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pub runtime: Arc<Runtime>,
    pub config: Arc<crate::config::Config>,
    pub limits: Arc<crate::limits::Limits>,
    pub bots: Arc<crate::bots::Bots>,
    /// Sessions and tokens already resolved (see `auth`).
    pub credentials: Arc<crate::auth::CredentialCache>,
    /// Backtests running on this server, with their progress.
    pub backtest_runs: Arc<crate::api::backtests::BacktestRuns>,
    /// Background jobs: the queue's workers and schedules.
    pub jobs: Arc<crate::jobs::Jobs>,
    /// Set when the server is stopping: WebSockets close (1001) so clients
    /// reconnect elsewhere at once instead of holding the shutdown up.
    pub closing: Arc<tokio::sync::watch::Sender<bool>>,
    /// `server.trusted_proxies`, parsed (see `client_ip`).
    pub trusted_proxies: Arc<[crate::client_ip::Network]>,
}

impl AppState {
    #[must_use]
    pub fn new(runtime: Arc<Runtime>, config: Arc<crate::config::Config>) -> Self {
        let limits =
            crate::limits::Limits::new(config.rate_limit.per_ip_per_minute, config.rate_limit.per_token_per_minute);
        let bots = Arc::new(crate::bots::Bots::new(Arc::clone(&runtime)));
        let jobs = Arc::new(crate::jobs::Jobs::new(Arc::clone(&runtime), Arc::clone(&config)));
        let trusted_proxies = config.server.trusted_proxy_networks().into();
        Self {
            runtime,
            config,
            limits: Arc::new(limits),
            bots,
            credentials: Arc::default(),
            backtest_runs: Arc::default(),
            jobs,
            closing: Arc::new(tokio::sync::watch::channel(false).0),
            trusted_proxies,
        }
    }
}

/// The REST routes with their documentation: one `routes!` entry per path
/// registers its handlers on the router and their `#[utoipa::path]`
/// operations in the OpenAPI document at once (see [`crate::openapi`]). A
/// new area adds `.merge(area::routes())` here, its `routes()` returning an
/// `OpenApiRouter`. Routes added any other way are caught by
/// `tests/openapi.rs`.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(crate::openapi::base())
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(status))
        .routes(routes!(crate::openapi::document))
        .merge(crate::api::market::routes())
        .merge(crate::api::trading::routes())
        .merge(crate::api::live::routes())
        .merge(crate::api::risk::routes())
        .merge(crate::api::backtests::routes())
        .merge(crate::api::bots::routes())
        .merge(crate::api::strategies::routes())
        .merge(crate::api::admin::routes())
        .merge(crate::routes::auth::routes())
        .merge(crate::routes::venue_credentials::routes())
}

/// The OpenAPI document, as `GET /api/v1/openapi.json` serves it.
#[must_use]
pub fn openapi() -> utoipa::openapi::OpenApi {
    crate::openapi::finish(api().into_openapi())
}

/// The whole router. Tests call it with `oneshot` or serve it on port 0.
pub fn app(state: AppState) -> Router {
    let (api, doc) = api().split_for_parts();
    let document = crate::openapi::Document::new(&crate::openapi::finish(doc));
    Router::new()
        .merge(api)
        // Documented in `crate::openapi` (not REST, or not served by a handler of ours).
        .merge(crate::api::ws::routes())
        .merge(crate::openapi::docs_routes())
        .merge(crate::dashboard::routes())
        .fallback(not_found)
        .layer(axum::Extension(document))
        // Oversized bodies are refused before a handler reads them (413).
        .layer(axum::extract::DefaultBodyLimit::max(state.config.server.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::limits::enforce))
        // Before the limiter: behind a trusted proxy, limits count clients, not the proxy.
        .layer(axum::middleware::from_fn_with_state(
            crate::client_ip::TrustedProxies(Arc::clone(&state.trusted_proxies)),
            crate::client_ip::identify,
        ))
        // Added after the limiter: a page's cached files are not requests worth counting.
        .merge(crate::dashboard::asset_routes())
        // Outermost: every answer is counted and carries a request id, 429s and 413s included.
        .layer(axum::middleware::from_fn(crate::telemetry::track))
        .with_state(state)
}

/// Unknown paths: a page for browsers, problem+json for everything else
/// (and always under `/api/`).
async fn not_found(uri: axum::http::Uri, headers: axum::http::HeaderMap) -> axum::response::Response {
    let wants_html = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if wants_html && !uri.path().starts_with("/api/") {
        return crate::dashboard::not_found_page("auto");
    }
    ApiError::not_found("route").into_response()
}

/// Liveness: the process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "system",
    responses((status = 200, description = "`ok`", body = String, content_type = "text/plain", example = "ok")),
)]
async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, "ok")
}

#[derive(Debug, Serialize, ToSchema)]
struct Readiness {
    ready: bool,
    /// `sqlite` or `postgres`.
    database: &'static str,
    migrations_pending: usize,
    /// Where events travel between this server's parts: `in-process`.
    bus: &'static str,
    /// `single` (SQLite: the only instance) or `leader` (PostgreSQL: the
    /// instance that runs the accounts; standbys answer `standby`).
    role: &'static str,
    /// Instruments whose feed is live (a quote in the last 30 s).
    feed_live: usize,
}

/// A feed with no quote for this long makes the server not ready.
const FEED_STALE_SECONDS: i64 = 30;

/// Readiness: the database answers, its migrations are current, and the
/// market feed is live.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "system",
    responses(
        (status = 200, description = "Ready to serve.", body = Readiness),
        (status = 503, description = "- `unavailable`: the database is unreachable, migrations are pending, or an instrument has had no quote for 30 s."),
    ),
)]
async fn readyz(State(state): State<AppState>) -> Result<Json<Readiness>, ApiError> {
    let rt = &state.runtime;
    let store = &rt.store;
    store.ping().await.map_err(|e| ApiError::unavailable(format!("database: {e}")))?;
    let pending = store.pending_migrations().await.map_err(|e| ApiError::unavailable(format!("database: {e}")))?;
    if !pending.is_empty() {
        return Err(ApiError::unavailable(format!("{} migrations pending; run `tradecore migrate`", pending.len())));
    }
    let stale = stale_instruments(rt.instruments(), &rt.latest_quotes(), rt.now());
    if !stale.is_empty() {
        return Err(ApiError::unavailable(format!(
            "feed: no quote for {FEED_STALE_SECONDS} s from {}",
            stale.join(", ")
        )));
    }
    Ok(Json(Readiness {
        ready: true,
        database: store.backend(),
        migrations_pending: 0,
        bus: "in-process",
        role: if store.backend() == "postgres" { "leader" } else { "single" },
        feed_live: rt.instruments().len(),
    }))
}

/// The instruments without a quote in the last [`FEED_STALE_SECONDS`].
fn stale_instruments<'a>(
    instruments: &'a [model::Instrument],
    quotes: &[model::Quote],
    now: model::Timestamp,
) -> Vec<&'a str> {
    instruments
        .iter()
        .filter(|i| {
            let last = quotes.iter().find(|q| q.instrument == i.id).map(|q| q.ts.as_nanos());
            last.is_none_or(|ts| now.as_nanos() - ts > FEED_STALE_SECONDS * 1_000_000_000)
        })
        .map(|i| i.symbol.as_str())
        .collect()
}

#[derive(Debug, Serialize, ToSchema)]
struct Status {
    version: &'static str,
    database: &'static str,
    uptime_seconds: u64,
    accounts: usize,
    instruments: Vec<String>,
    journal: JournalStatus,
}

/// Group-commit counters of the journal since start.
#[derive(Debug, Serialize, ToSchema)]
struct JournalStatus {
    batches: u64,
    commits: u64,
    events: u64,
    failed_batches: u64,
}

/// The server's version, database, uptime, accounts and instruments.
#[utoipa::path(
    get,
    path = "/api/v1/status",
    tag = "system",
    responses((status = 200, description = "Status.", body = Status)),
)]
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

#[cfg(test)]
mod tests {
    use super::*;
    use model::{Instrument, Price, Quantity, Quote, Timestamp};

    #[test]
    fn a_feed_is_stale_after_thirty_seconds_without_a_quote() {
        let instruments = [Instrument::simple(1, "AAA"), Instrument::simple(2, "BBB"), Instrument::simple(3, "CCC")];
        let quote = |id: u32, secs: i64| Quote {
            instrument: model::InstrumentId(id),
            ts: Timestamp::from_secs(secs),
            bid: Price::from_int(1),
            bid_size: Quantity::ONE,
            ask: Price::from_int(2),
            ask_size: Quantity::ONE,
        };
        let now = Timestamp::from_secs(1_000);
        let quotes = [quote(1, 990), quote(2, 960)];
        assert_eq!(stale_instruments(&instruments, &quotes, now), ["BBB", "CCC"], "40 s old, and never quoted");
        assert_eq!(stale_instruments(&instruments[..1], &quotes, now), Vec::<&str>::new());
    }
}
