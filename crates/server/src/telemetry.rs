//! Telemetry: Prometheus metrics and per-request tracing with request ids.
//!
//! Metrics go through the `metrics` facade into one process-wide Prometheus
//! recorder, installed once ([`prometheus`]). `/metrics` is served on its own
//! listener (`metrics.listen`, localhost by default) so the public port, and
//! the proxy in front of it, never expose it. Counters and histograms are
//! recorded where things happen (this module's HTTP middleware, the account
//! actors, the journal writer, WebSockets, jobs and backups); gauges that
//! describe state (database pool, journal queue, feed lag, bots, process
//! resources) are sampled when Prometheus scrapes, so an idle server does
//! no work for them.
//!
//! Every request gets an id: the client's `X-Request-Id` when it sends a
//! sane one, else a fresh one. It is answered in `X-Request-Id` and carried
//! by every log line written while the request is handled (a `request`
//! span), so a user's report leads to the server's log. Each request is
//! logged at DEBUG (`TRADECORE_LOG__LEVEL=info,server::telemetry=debug`);
//! server errors at ERROR.

use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use model::event::EventKind;
use model::{Order, OrderStatus};
use tracing::Instrument as _;

use crate::app::AppState;

/// Latency buckets, in seconds: sub-millisecond engine work up to slow requests.
const LATENCY_BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Commits per journal batch.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0];
/// Background jobs take from milliseconds (a snapshot) to minutes (a backup).
const JOB_BUCKETS: &[f64] = &[0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0];

/// The header carrying request ids.
pub const REQUEST_ID: &str = "x-request-id";

/// The process-wide recorder's handle, installing the recorder at the first
/// call. When something else installed a recorder first (never in the
/// server), the handle renders only what reaches it: nothing.
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new();
        // Setting buckets only fails for an empty list, which these are not.
        let builder = builder
            .set_buckets_for_metric(Matcher::Suffix("_duration_seconds".into()), LATENCY_BUCKETS)
            .and_then(|b| b.set_buckets_for_metric(Matcher::Full("tradecore_journal_batch_size".into()), BATCH_BUCKETS))
            .and_then(|b| b.set_buckets_for_metric(Matcher::Full("tradecore_job_duration_seconds".into()), JOB_BUCKETS))
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder was installed first; /metrics will be empty");
        }
        describe();
        handle
    })
}

/// Help texts, shown as `# HELP` lines.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!("tradecore_http_requests_total", "HTTP requests answered, by method, route and status.");
    describe_histogram!("tradecore_http_request_duration_seconds", "Time to answer an HTTP request.");
    describe_gauge!("tradecore_http_requests_in_flight", "HTTP requests being answered now.");
    describe_gauge!("tradecore_ws_connections", "Open WebSocket connections.");
    describe_counter!("tradecore_ws_messages_sent_total", "WebSocket messages sent.");
    describe_counter!(
        "tradecore_ws_messages_dropped_total",
        "WebSocket messages not delivered: market data conflated for a slow reader, bot updates a lagging socket missed."
    );
    describe_counter!("tradecore_orders_submitted_total", "Orders submitted (placed or refused by a pre-trade check).");
    describe_counter!("tradecore_orders_accepted_total", "Orders the venue accepted.");
    describe_counter!("tradecore_orders_rejected_total", "Orders refused, by reason (risk checks and venues).");
    describe_counter!("tradecore_orders_filled_total", "Orders filled completely.");
    describe_histogram!(
        "tradecore_engine_command_duration_seconds",
        "Engine time to process a command (submit, cancel, ...)."
    );
    describe_histogram!("tradecore_journal_commit_duration_seconds", "Time to write one group-commit batch durably.");
    describe_histogram!("tradecore_journal_batch_size", "Commits written together in one batch.");
    describe_gauge!("tradecore_journal_queued_commits", "Commits waiting for the journal writer.");
    describe_gauge!("tradecore_db_pool_connections", "Database pool connections, by state (in_use, idle).");
    describe_histogram!(
        "tradecore_db_pool_acquire_duration_seconds",
        "Time to get a database connection, sampled at each scrape."
    );
    describe_gauge!("tradecore_feed_lag_seconds", "Age of each instrument's latest quote.");
    describe_gauge!("tradecore_bots_running", "Bots running on this server.");
    describe_gauge!("tradecore_accounts_running", "Trading accounts running on this server.");
    describe_gauge!("tradecore_jobs_queued", "Jobs waiting in the queue, by job.");
    describe_gauge!("tradecore_jobs_dead", "Jobs in the dead-letter list (failed every attempt).");
    describe_counter!("tradecore_job_runs_total", "Job runs, by job and outcome (ok, retry, failed).");
    describe_histogram!("tradecore_job_duration_seconds", "Time a job run took, by job.");
    describe_counter!("tradecore_reconcile_differences_total", "Differences reconciliation found, by kind.");
    describe_gauge!(
        "tradecore_cluster_leader",
        "1 on the instance that leads (runs accounts, bots, market and jobs), 0 on a standby."
    );
    describe_gauge!(
        "tradecore_backup_last_success_timestamp_seconds",
        "When the last scheduled or admin-run backup succeeded (from the job table)."
    );
    describe_gauge!("tradecore_backup_last_size_bytes", "Size of the last backup, as stored.");
    describe_gauge!("tradecore_backup_interval_seconds", "Time between scheduled backups.");
    describe_counter!("tradecore_backup_failures_total", "Scheduled backups that failed.");
    describe_gauge!(
        "tradecore_backup_verify_last_success_timestamp_seconds",
        "When a backup was last restored and checked."
    );
    describe_counter!("tradecore_backup_verify_failures_total", "Backup verifications that failed.");
}

/// Counts an order event once it is durable.
pub fn order_event(kind: &EventKind, order: Option<&Order>) {
    match kind {
        EventKind::OrderSubmitted { .. } => counter!("tradecore_orders_submitted_total").increment(1),
        EventKind::OrderDenied { order } => {
            counter!("tradecore_orders_submitted_total").increment(1);
            let reason = order.reject_reason.map_or("unknown", |r| r.code());
            counter!("tradecore_orders_rejected_total", "reason" => reason).increment(1);
        }
        EventKind::OrderAccepted { .. } => counter!("tradecore_orders_accepted_total").increment(1),
        EventKind::OrderRejected { reason, .. } => {
            counter!("tradecore_orders_rejected_total", "reason" => reason.code()).increment(1);
        }
        EventKind::OrderFilled { .. } if order.is_some_and(|o| o.status == OrderStatus::Filled) => {
            counter!("tradecore_orders_filled_total").increment(1);
        }
        _ => {}
    }
}

/// Records how long the engine took over a command.
pub fn engine_command(started: Instant) {
    histogram!("tradecore_engine_command_duration_seconds").record(started.elapsed().as_secs_f64());
}

/// A WebSocket connection, counted while it lives.
pub struct WsConnection;

impl WsConnection {
    #[must_use]
    pub fn open() -> Self {
        gauge!("tradecore_ws_connections").increment(1.0);
        Self
    }
}

impl Drop for WsConnection {
    fn drop(&mut self) {
        gauge!("tradecore_ws_connections").decrement(1.0);
    }
}

pub fn ws_sent() {
    counter!("tradecore_ws_messages_sent_total").increment(1);
}

pub fn ws_dropped(count: u64) {
    counter!("tradecore_ws_messages_dropped_total").increment(count);
}

// ---------------------------------------------------------------------------
// Requests

/// A request id the client sent, if it is one we can echo safely (1 to 64
/// visible ASCII characters), else a fresh one.
fn request_id(request: &Request) -> HeaderValue {
    let sent = request.headers().get(REQUEST_ID).filter(|v| {
        let b = v.as_bytes();
        !b.is_empty() && b.len() <= 64 && b.iter().all(|c| c.is_ascii_graphic())
    });
    if let Some(id) = sent {
        return id.clone();
    }
    let fresh = crate::auth::random_hex(8).unwrap_or_else(|_| format!("{:x}", Instant::now().elapsed().as_nanos()));
    HeaderValue::from_str(&fresh).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// Middleware on every route: the request id, the `request` span, and the
/// HTTP metrics, labelled by the route's template (`/api/v1/accounts/{account}`,
/// never the raw path, which would make a series per id).
pub async fn track(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str).to_string();
    let method = request.method().to_string();
    let id = request_id(&request);
    // Handlers, and a standby forwarding to the leader, see the same id.
    let mut request = request;
    request.headers_mut().insert(REQUEST_ID, id.clone());
    let span = tracing::info_span!(
        "request",
        id = id.to_str().unwrap_or_default(),
        method = method.as_str(),
        route = route.as_str()
    );
    let in_flight = gauge!("tradecore_http_requests_in_flight");
    in_flight.increment(1.0);
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    in_flight.decrement(1.0);
    let took = started.elapsed();
    let status = response.status();
    histogram!("tradecore_http_request_duration_seconds", "method" => method.clone(), "route" => route.clone())
        .record(took.as_secs_f64());
    counter!("tradecore_http_requests_total", "method" => method, "route" => route, "status" => status.as_str().to_string())
        .increment(1);
    span.in_scope(|| {
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), ms = took.as_secs_f64() * 1000.0, "request failed");
        } else {
            tracing::debug!(status = status.as_u16(), ms = took.as_secs_f64() * 1000.0, "request");
        }
    });
    response.headers_mut().insert(REQUEST_ID, id);
    response
}

// ---------------------------------------------------------------------------
// The scrape

/// What `/metrics` reads: the running server's state, or nothing yet (a
/// standby reports its process and HTTP metrics only).
pub type MetricsSource = Arc<std::sync::RwLock<Option<AppState>>>;

/// A [`MetricsSource`] reading `state`.
#[must_use]
pub fn metrics_source(state: Option<AppState>) -> MetricsSource {
    Arc::new(std::sync::RwLock::new(state))
}

/// The metrics listener's router: `GET /metrics` only.
pub fn router(source: MetricsSource) -> Router {
    Router::new().route("/metrics", get(scrape)).with_state(source)
}

async fn scrape(State(source): State<MetricsSource>) -> Response {
    let state = source.read().ok().and_then(|s| s.clone());
    gauge!("tradecore_cluster_leader").set(if state.is_some() { 1.0 } else { 0.0 });
    if let Some(state) = state {
        sample(&state).await;
    }
    let handle = prometheus();
    handle.run_upkeep();
    let mut text = handle.render();
    process_metrics(&mut text);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

/// Sets the gauges that describe the server as it is now.
#[allow(clippy::cast_precision_loss)] // counts and seconds for a dashboard
async fn sample(state: &AppState) {
    let rt = &state.runtime;
    let (open, idle) = rt.store.pool_state();
    gauge!("tradecore_db_pool_connections", "state" => "in_use").set(f64::from(open) - idle as f64);
    gauge!("tradecore_db_pool_connections", "state" => "idle").set(idle as f64);
    match rt.store.acquire_latency().await {
        Ok(took) => histogram!("tradecore_db_pool_acquire_duration_seconds").record(took.as_secs_f64()),
        Err(e) => tracing::warn!(error = %e, "metrics: no database connection to be had"),
    }
    gauge!("tradecore_journal_queued_commits").set(rt.committer().queued() as f64);
    let now = rt.now();
    let quotes = rt.latest_quotes();
    for instrument in rt.instruments() {
        if let Some(quote) = quotes.iter().find(|q| q.instrument == instrument.id) {
            let age = (now.as_nanos() - quote.ts.as_nanos()).max(0) as f64 / 1e9;
            gauge!("tradecore_feed_lag_seconds", "instrument" => instrument.symbol.clone()).set(age);
        }
    }
    gauge!("tradecore_bots_running").set(state.bots.running_count().await as f64);
    gauge!("tradecore_accounts_running").set(rt.account_count().await as f64);
    crate::jobs::sample_metrics(rt).await;
    if let Some(backup) = state.jobs.schedules().iter().find(|s| s.job == "backup")
        && let Some(period) = backup.cron.period_after(now)
    {
        gauge!("tradecore_backup_interval_seconds").set(period as f64);
    }
}

/// The standard `process_*` metrics, read from `/proc/self` (Linux). They
/// are written here rather than through the recorder because CPU time is a
/// fractional counter, which the facade's counters (integers) cannot hold.
fn process_metrics(out: &mut String) {
    // USER_HZ: the unit of CPU times in /proc, 100 on every mainstream Linux.
    const TICKS_PER_SECOND: f64 = 100.0;
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name (field 2) may contain spaces: count fields after its ')'.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
    let mut metric = |name: &str, kind: &str, help: &str, value: Option<f64>| {
        if let Some(value) = value {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        }
    };
    let cpu = field(14).zip(field(15)).map(|(user, system)| (user + system) / TICKS_PER_SECOND);
    metric("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.", cpu);
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kib| kib * 1024.0);
    metric("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", rss);
    #[allow(clippy::cast_precision_loss)]
    let fds = std::fs::read_dir("/proc/self/fd").ok().map(|d| d.count() as f64);
    metric("process_open_fds", "gauge", "Number of open file descriptors.", fds);
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let max_fds = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse::<f64>().ok());
    metric("process_max_fds", "gauge", "Maximum number of open file descriptors.", max_fds);
    let boot = std::fs::read_to_string("/proc/stat")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse::<f64>().ok());
    let start = boot.zip(field(22)).map(|(boot, ticks)| boot + ticks / TICKS_PER_SECOND);
    metric("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.", start);
}

/// Serves `/metrics` on `addr` until `stop` turns true. Returns the bound
/// address (port 0 picks one) once listening.
pub async fn serve_metrics(
    addr: std::net::SocketAddr,
    source: MetricsSource,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    prometheus();
    tokio::spawn(async move {
        let served = axum::serve(listener, router(source)).with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        });
        if let Err(e) = served.await {
            tracing::error!(error = %e, "the metrics listener stopped");
        }
    });
    Ok(local)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_metrics_are_read_from_proc() {
        let mut out = String::new();
        process_metrics(&mut out);
        for name in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_max_fds",
            "process_start_time_seconds",
        ] {
            assert!(out.contains(&format!("\n{name} ")), "{name} missing in:\n{out}");
        }
        let start: f64 =
            out.lines().find_map(|l| l.strip_prefix("process_start_time_seconds ")).unwrap().parse().unwrap();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
        assert!(start <= now + 1.0 && start > now - 86_400.0 * 365.0, "{start}");
    }
}
