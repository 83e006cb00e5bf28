//! Backtests over the API: submitted with a strategy, parameters, settings
//! and data (an uploaded CSV, or stored candles of a paper instrument), run
//! in the background, and fetched as the same report the CLI writes.
//!
//! Everything that can be checked is checked before the run is accepted:
//! the strategy and its parameters, the settings, and the data (a CSV is
//! parsed in full, so a bad row is a 422 naming its line). A run that then
//! fails is stored as `failed` with its error.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use backtest::settings::SettingsInput;
use backtest::{Market, ReportOptions};
use model::{Bar, Timestamp};
use serde::{Deserialize, Serialize};
use sim::candles::Interval;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::auth::{Caller, Scope};
use crate::error::{ApiError, Json, Path};

/// Backtests that may run at once; more wait their turn.
const CONCURRENT_RUNS: usize = 2;

/// How far each backtest of this server has got, while it runs. Another
/// instance's runs are not here: their view has no progress.
#[derive(Debug, Default)]
pub struct BacktestRuns {
    runs: std::sync::Mutex<std::collections::HashMap<i64, Arc<RunProgress>>>,
}

#[derive(Debug)]
struct RunProgress {
    bars: usize,
    done: std::sync::atomic::AtomicUsize,
    started: std::sync::atomic::AtomicBool,
}

impl BacktestRuns {
    fn add(&self, id: i64, bars: usize) -> Arc<RunProgress> {
        let progress = Arc::new(RunProgress {
            bars,
            done: std::sync::atomic::AtomicUsize::new(0),
            started: std::sync::atomic::AtomicBool::new(false),
        });
        if let Ok(mut runs) = self.runs.lock() {
            runs.insert(id, Arc::clone(&progress));
        }
        progress
    }

    fn remove(&self, id: i64) {
        if let Ok(mut runs) = self.runs.lock() {
            runs.remove(&id);
        }
    }

    /// Backtests running and waiting for a slot.
    pub fn counts(&self) -> (usize, usize) {
        use std::sync::atomic::Ordering::Relaxed;
        let Ok(runs) = self.runs.lock() else { return (0, 0) };
        let running = runs.values().filter(|r| r.started.load(Relaxed)).count();
        (running, runs.len() - running)
    }

    fn get(&self, id: i64) -> Option<Progress> {
        use std::sync::atomic::Ordering::Relaxed;
        let runs = self.runs.lock().ok()?;
        let run = runs.get(&id)?;
        Some(Progress { bars: run.bars, done: run.done.load(Relaxed), queued: !run.started.load(Relaxed) })
    }
}

/// How far a running backtest has got.
#[derive(Debug, Serialize, ToSchema)]
struct Progress {
    /// Bars in the run.
    bars: usize,
    /// Bars processed so far.
    done: usize,
    /// Waiting for a free slot (at most two run at once).
    queued: bool,
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(submit, list)).routes(routes!(fetch)).routes(routes!(html))
}

/// A parameter value as JSON: strings, numbers and booleans are all accepted
/// and checked against the strategy's declared type.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum ParamInput {
    Text(String),
    #[schema(value_type = f64)]
    Number(serde_json::Number),
    Flag(bool),
}

impl ParamInput {
    pub(crate) fn as_text(&self) -> String {
        match self {
            Self::Text(s) => s.clone(),
            Self::Number(n) => n.to_string(),
            Self::Flag(b) => b.to_string(),
        }
    }
}

/// Candles the server stored from its feed.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CandleSource {
    /// A paper instrument's symbol.
    symbol: String,
    /// `1m` (default), `5m`, `1h` or `1d`.
    #[serde(default = "default_interval")]
    #[schema(default = "1m")]
    interval: String,
    /// From this time, inclusive (ISO 8601, or epoch s/ms/µs/ns).
    from: Option<String>,
    /// To this time (ISO 8601, or epoch s/ms/µs/ns).
    to: Option<String>,
}

fn default_interval() -> String {
    "1m".to_string()
}

/// The bars to test on: exactly one of `csv` or `candles`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum DataSource {
    /// CSV text with a header `timestamp,open,high,low,close,volume`.
    Csv(String),
    Candles(CandleSource),
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "strategy": "sma-cross",
    "params": {"fast": 10, "slow": 40, "long-only": true},
    "data": {"csv": "timestamp,open,high,low,close,volume\n2024-01-01T00:00:00Z,100,101,99,100.5,12\n"},
    "settings": {"cash": "10000", "commission": "0.001", "sizing": "all-in", "fill": "next-open"}
}))]
struct BacktestRequest {
    /// A built-in strategy's name (as `tradecore strategies` lists them).
    strategy: String,
    /// The strategy's parameters by name: strings, numbers or booleans.
    #[serde(default)]
    params: BTreeMap<String, ParamInput>,
    data: DataSource,
    #[serde(default)]
    settings: SettingsInput,
}

#[derive(Debug, Serialize, ToSchema)]
struct Accepted {
    id: i64,
    /// `running`.
    status: &'static str,
}

/// Submits a backtest; it runs in the background.
///
/// Everything is checked before the run is accepted: the strategy and its
/// parameters, the settings and the data (a CSV is parsed in full).
#[utoipa::path(
    post,
    path = "/api/v1/backtests",
    tag = "backtests",
    operation_id = "submit_backtest",
    security(("token" = ["trade"]), ("session" = [], "csrf" = [])),
    request_body = BacktestRequest,
    responses(
        (status = 202, description = "Accepted and running.", body = Accepted),
        (status = 422, description = "- `validation_failed`: a bad `strategy`, `params`, `settings.*` or `data.*` (a CSV row: `data.csv`, with the line in `detail`)."),
    ),
)]
async fn submit(
    State(state): State<AppState>,
    caller: Caller,
    Json(request): Json<BacktestRequest>,
) -> Result<Response, ApiError> {
    caller.require_scope(Scope::Trade)?;
    let info = engine::strategies::find(&request.strategy).map_err(|e| ApiError::invalid("strategy", e))?;
    let given: Vec<(String, String)> = request.params.iter().map(|(k, v)| (k.clone(), v.as_text())).collect();
    let (_, params) = info.build(&given).map_err(|e| ApiError::invalid("params", e.to_string()))?;
    let mut config =
        request.settings.parse().map_err(|e| ApiError::invalid(format!("settings.{}", e.field), e.message))?;
    let bars = load_bars(&state, &request.data, &mut config).await?;

    let body = serde_json::to_string(&request).map_err(|e| ApiError::internal(&e))?;
    let store = state.runtime.store.clone();
    let id =
        store.create_backtest(caller.user_id, &body, state.runtime.now()).await.map_err(|e| ApiError::internal(&e))?;
    let runtime = Arc::clone(&state.runtime);
    let runs = Arc::clone(&state.backtest_runs);
    let progress = runs.add(id, bars.len());
    tokio::spawn(async move {
        static SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(CONCURRENT_RUNS);
        let _slot = SLOTS.acquire().await;
        progress.started.store(true, std::sync::atomic::Ordering::Relaxed);
        let name = info.name;
        let outcome = tokio::task::spawn_blocking(move || {
            let mut strategy = info.build_with(&params).map_err(|e| e.to_string())?;
            let options = ReportOptions { data_file: None, max_curve_points: 5_000 };
            let report = backtest::run_report(
                Market::Bars(&bars),
                (name, strategy.as_mut(), &params),
                &config,
                &options,
                &mut |done| progress.done.store(done, std::sync::atomic::Ordering::Relaxed),
            )
            .map_err(|e| e.to_string())?;
            serde_json::to_string(&report).map_err(|e| e.to_string())
        })
        .await
        .unwrap_or_else(|e| Err(format!("the run stopped: {e}")));
        let finished = store.finish_backtest(id, outcome.as_deref().map_err(String::as_str), runtime.now()).await;
        if let Err(e) = finished {
            tracing::error!(backtest = id, error = %e, "backtest outcome not saved");
        }
        runs.remove(id);
    });
    Ok((StatusCode::ACCEPTED, Json(Accepted { id, status: "running" })).into_response())
}

/// The bars a request names, checked; sets the report's symbol.
async fn load_bars(
    state: &AppState,
    data: &DataSource,
    config: &mut backtest::BacktestConfig,
) -> Result<Vec<Bar>, ApiError> {
    match data {
        DataSource::Csv(text) => backtest::data::parse_csv(text.as_bytes(), "upload")
            .map_err(|e| ApiError::invalid("data.csv", e.to_string())),
        DataSource::Candles(source) => {
            let instrument = state.runtime.instrument_by_symbol(&source.symbol).ok_or_else(|| {
                ApiError::invalid("data.candles.symbol", format!("unknown symbol '{}'", source.symbol))
            })?;
            let interval: Interval = source.interval.parse().map_err(|e: sim::candles::ParseIntervalError| {
                ApiError::invalid("data.candles.interval", e.to_string())
            })?;
            let time = |field: &'static str, value: &Option<String>, default: i64| match value {
                Some(v) => Timestamp::parse(v).map_err(|e| ApiError::invalid(field, e.to_string())),
                None => Ok(Timestamp::from_nanos(default)),
            };
            let from = time("data.candles.from", &source.from, i64::MIN)?;
            let to = time("data.candles.to", &source.to, i64::MAX)?;
            let candles = state
                .runtime
                .store
                .candles(instrument.id, interval.as_str(), from, to, 1_000_000)
                .await
                .map_err(|e| ApiError::internal(&e))?;
            if candles.is_empty() {
                return Err(ApiError::invalid(
                    "data.candles",
                    format!("no {} candles of {} are stored in that range yet", interval, instrument.symbol),
                ));
            }
            config.symbol.clone_from(&instrument.symbol);
            Ok(candles
                .iter()
                .map(|c| Bar { ts: c.start, open: c.open, high: c.high, low: c.low, close: c.close, volume: c.volume })
                .collect())
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
struct BacktestView {
    id: i64,
    /// `running`, `done` or `failed`.
    status: String,
    /// The request as submitted.
    #[schema(value_type = BacktestRequest)]
    request: serde_json::Value,
    /// When done: the report, as the CLI writes it to `report.json`.
    #[serde(skip_serializing_if = "Option::is_none")]
    report: Option<serde_json::Value>,
    /// When failed: why.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    created: Timestamp,
    finished: Option<Timestamp>,
    /// While running on this server: how far it has got.
    #[serde(skip_serializing_if = "Option::is_none")]
    progress: Option<Progress>,
}

fn view(state: &AppState, row: store::backtests::BacktestRow) -> BacktestView {
    let progress = if row.status == "running" { state.backtest_runs.get(row.id) } else { None };
    BacktestView {
        progress,
        id: row.id,
        status: row.status,
        request: serde_json::from_str(&row.request).unwrap_or(serde_json::Value::Null),
        report: row.report.as_deref().and_then(|r| serde_json::from_str(r).ok()),
        error: row.error,
        created: row.created,
        finished: row.finished,
    }
}

/// The caller's backtests, newest first (at most 200).
#[utoipa::path(
    get,
    path = "/api/v1/backtests",
    tag = "backtests",
    operation_id = "list_backtests",
    security(("token" = ["read"]), ("session" = [])),
    responses((status = 200, description = "Backtests.", body = Vec<BacktestView>)),
)]
async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Vec<BacktestView>>, ApiError> {
    caller.require_scope(Scope::Read)?;
    let rows = state.runtime.store.backtests(caller.user_id, 200).await.map_err(|e| ApiError::internal(&e))?;
    Ok(Json(rows.into_iter().map(|r| view(&state, r)).collect()))
}

/// One backtest, with its report when done.
#[utoipa::path(
    get,
    path = "/api/v1/backtests/{id}",
    tag = "backtests",
    operation_id = "get_backtest",
    security(("token" = ["read"]), ("session" = [])),
    params(("id" = i64, Path, description = "The backtest's id.")),
    responses((status = 200, description = "The backtest.", body = BacktestView), (status = 404, description = "- `not_found`: no such backtest, or not the caller's.")),
)]
async fn fetch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<BacktestView>, ApiError> {
    caller.require_scope(Scope::Read)?;
    let row = state.runtime.store.backtest(caller.user_id, id).await.map_err(|e| ApiError::internal(&e))?;
    row.map(|r| Json(view(&state, r))).ok_or_else(|| ApiError::not_found("backtest"))
}

/// The self-contained HTML report of a finished backtest.
#[utoipa::path(
    get,
    path = "/api/v1/backtests/{id}/report.html",
    tag = "backtests",
    operation_id = "backtest_report",
    security(("token" = ["read"]), ("session" = [])),
    params(("id" = i64, Path, description = "The backtest's id.")),
    responses(
        (status = 200, description = "The report page.", body = String, content_type = "text/html"),
        (status = 404, description = "- `not_found`: no such backtest, or not the caller's."),
        (status = 409, description = "- `not_finished`: the backtest is still running or failed."),
    ),
)]
async fn html(State(state): State<AppState>, caller: Caller, Path(id): Path<i64>) -> Result<Response, ApiError> {
    caller.require_scope(Scope::Read)?;
    let row = state.runtime.store.backtest(caller.user_id, id).await.map_err(|e| ApiError::internal(&e))?;
    let row = row.ok_or_else(|| ApiError::not_found("backtest"))?;
    let Some(report) = row.report else {
        return Err(ApiError::conflict("not_finished", format!("the backtest is {}", row.status)));
    };
    let report: backtest::report::Report = serde_json::from_str(&report).map_err(|e| ApiError::internal(&e))?;
    let page = backtest::html::render(&report);
    Ok(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering::Relaxed;

    #[test]
    fn runs_report_progress_until_removed() {
        let runs = BacktestRuns::default();
        let first = runs.add(1, 1_000);
        let _second = runs.add(2, 50);
        assert_eq!(runs.counts(), (0, 2), "both wait for a slot");
        first.started.store(true, Relaxed);
        first.done.store(400, Relaxed);
        let progress = runs.get(1).unwrap();
        assert_eq!((progress.bars, progress.done, progress.queued), (1_000, 400, false));
        assert!(runs.get(2).unwrap().queued);
        assert_eq!(runs.counts(), (1, 1));
        runs.remove(1);
        assert!(runs.get(1).is_none(), "finished runs have no progress");
        assert_eq!(runs.counts(), (0, 1));
    }
}
