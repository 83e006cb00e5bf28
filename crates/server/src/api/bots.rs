//! Bots over the API: create one from a built-in strategy with parameters on
//! one of the caller's accounts and a paper instrument, start and stop it,
//! read its status, its orders and its P&L.
//!
//! Bots are the caller's own: someone else's bot answers 404. Reads need the
//! `read` scope, changes the `trade` scope; every change is audited.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use model::{Order, Timestamp};
use serde::{Deserialize, Serialize};
use sim::candles::Interval;
use store::AccountId;
use store::auth::AuditEntry;
use store::bots::{BotId, BotRow, BotStatus, NewBot};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::backtests::ParamInput;
use crate::api::trading::{FillView, OrderListQuery, Page, order_page, owned};
use crate::app::AppState;
use crate::auth::{Caller, ClientMeta, Scope};
use crate::bots::{BotActivity, BotError, BotPnl};
use crate::error::{ApiError, Json, Path, Query};

/// The most bots one user may have.
pub const MAX_BOTS_PER_USER: u64 = 100;
/// The most warm-up candles a bot may ask for.
pub const MAX_WARMUP_BARS: u32 = 10_000;
const DEFAULT_WARMUP_BARS: u32 = 100;
const DEFAULT_SIZING: &str = "percent=10";
/// The most fills `GET /bots/{id}/fills` answers (the newest).
const MAX_BOT_FILLS: usize = 5_000;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(fetch, delete))
        .routes(routes!(start))
        .routes(routes!(stop))
        .routes(routes!(orders))
        .routes(routes!(fills))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewBotRequest {
    name: String,
    account_id: AccountId,
    symbol: String,
    strategy: String,
    #[serde(default)]
    params: BTreeMap<String, ParamInput>,
    /// Candle interval: 1m (default), 5m, 1h or 1d.
    interval: Option<String>,
    /// Default order size: `all-in`, `units=N` or `percent=P` (default `percent=10`).
    sizing: Option<String>,
    /// Candles before the first start the strategy warms up on (default 100).
    warmup_bars: Option<u32>,
    /// Start it at once.
    #[serde(default)]
    start: bool,
}

#[derive(Debug, Serialize, ToSchema)]
struct BotView {
    id: BotId,
    name: String,
    account_id: AccountId,
    symbol: String,
    strategy: String,
    params: BTreeMap<String, String>,
    interval: String,
    sizing: String,
    warmup_bars: u32,
    status: BotStatus,
    error: Option<String>,
    created: Timestamp,
    started: Option<Timestamp>,
    stopped: Option<Timestamp>,
    /// What it has done since it started (while it runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    activity: Option<BotActivity>,
    /// From its own fills (on a single bot's page).
    #[serde(skip_serializing_if = "Option::is_none")]
    pnl: Option<BotPnl>,
}

fn view(state: &AppState, row: BotRow, activity: Option<BotActivity>, pnl: Option<BotPnl>) -> BotView {
    let symbol = state
        .runtime
        .instruments()
        .iter()
        .find(|i| i.id == row.instrument)
        .map_or_else(|| row.instrument.0.to_string(), |i| i.symbol.clone());
    BotView {
        id: row.id,
        name: row.name,
        account_id: row.account_id,
        symbol,
        strategy: row.strategy,
        params: row.params,
        interval: row.interval,
        sizing: row.sizing,
        warmup_bars: row.warmup_bars,
        status: row.status,
        error: row.error,
        created: row.created,
        started: row.started,
        stopped: row.stopped,
        activity,
        pnl,
    }
}

fn store_error(e: &store::StoreError) -> ApiError {
    ApiError::internal(e)
}

fn bot_error(e: BotError) -> ApiError {
    match e {
        BotError::Invalid(message) => ApiError::conflict("bot_not_startable", message),
        BotError::AccountNotRunning => ApiError::unavailable("the bot's account is not running; try again shortly"),
        BotError::Store(e) => store_error(&e),
    }
}

/// Every fill of the bot's orders, in journal order, with its seq.
async fn bot_fills(state: &AppState, row: &BotRow) -> Result<Vec<(u64, model::Fill)>, ApiError> {
    state.runtime.store.fills_with_client_prefix(row.account_id, &row.order_prefix()).await.map_err(|e| store_error(&e))
}

/// The caller's bot, or 404.
async fn owned_bot(state: &AppState, caller: &Caller, id: BotId) -> Result<BotRow, ApiError> {
    match state.runtime.store.bot(id).await.map_err(|e| store_error(&e))? {
        Some(bot) if bot.user_id == caller.user_id => Ok(bot),
        _ => Err(ApiError::not_found("bot")),
    }
}

/// Create a bot.
#[utoipa::path(
    post,
    path = "/api/v1/bots",
    tag = "bots",
    security(("token" = ["trade"]), ("session" = [], "csrf" = [])),
    request_body = NewBotRequest,
    responses(
        (status = 201, description = "The new bot (running when `start` was true).", body = BotView),
        (status = 409, description = "- `too_many_bots`: the user has 100 bots.\n- `bot_not_startable`: created, but it could not start."),
        (status = 422, description = "- `validation_failed`: a bad `name`, `account_id` (not the caller's), `symbol`, `strategy`, `params`, `interval`, `sizing` or `warmup_bars`."),
    ),
)]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientMeta,
    Json(body): Json<NewBotRequest>,
) -> Result<Response, ApiError> {
    caller.require_scope(Scope::Trade)?;
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 64 {
        return Err(ApiError::invalid("name", "the name must be 1 to 64 characters"));
    }
    // Someone else's account reads exactly like one that does not exist.
    owned(&state, &caller, body.account_id)
        .await
        .map_err(|_| ApiError::invalid("account_id", format!("you have no account {}", body.account_id)))?;
    // The account's own symbols for a live account, the paper market's otherwise.
    let instrument_id = super::trading::instrument_id(&state, body.account_id, &body.symbol).await?;
    let instrument = state
        .runtime
        .instrument(instrument_id)
        .ok_or_else(|| ApiError::invalid("symbol", format!("unknown symbol '{}'", body.symbol)))?;
    let info = engine::strategies::find(&body.strategy).map_err(|e| ApiError::invalid("strategy", e))?;
    let params: BTreeMap<String, String> = body.params.iter().map(|(k, v)| (k.clone(), v.as_text())).collect();
    let given: Vec<(String, String)> = params.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    info.build(&given).map_err(|e| ApiError::invalid("params", e.to_string()))?;
    let interval: Interval = body
        .interval
        .as_deref()
        .unwrap_or("1m")
        .parse()
        .map_err(|e: sim::candles::ParseIntervalError| ApiError::invalid("interval", e.to_string()))?;
    let sizing_text = body.sizing.as_deref().unwrap_or(DEFAULT_SIZING);
    let sizing: engine::Sizing = sizing_text.parse().map_err(|e: String| ApiError::invalid("sizing", e))?;
    let warmup_bars = body.warmup_bars.unwrap_or(DEFAULT_WARMUP_BARS);
    if warmup_bars > MAX_WARMUP_BARS {
        return Err(ApiError::invalid("warmup_bars", format!("warmup_bars must be at most {MAX_WARMUP_BARS}")));
    }
    let count = state.runtime.store.bot_count(caller.user_id).await.map_err(|e| store_error(&e))?;
    if count >= MAX_BOTS_PER_USER {
        return Err(ApiError::conflict("too_many_bots", format!("a user may have at most {MAX_BOTS_PER_USER} bots")));
    }
    let sizing_text = sizing.to_string();
    let new = NewBot {
        user_id: caller.user_id,
        account_id: body.account_id,
        name,
        strategy: info.name,
        params: &params,
        instrument: instrument.id,
        interval: interval.as_str(),
        sizing: &sizing_text,
        warmup_bars,
        created: state.runtime.now(),
    };
    let audit = AuditEntry::new(state.runtime.now(), Some(caller.user_id), "bot.create", client.ip.as_deref())
        .detail(serde_json::json!({ "account": body.account_id, "strategy": info.name, "symbol": instrument.symbol }));
    let mut row = state.runtime.store.create_bot(&new, &audit).await.map_err(|e| store_error(&e))?;
    if body.start {
        let audit = AuditEntry::new(state.runtime.now(), Some(caller.user_id), "bot.start", client.ip.as_deref());
        row = state.bots.start(&row, &audit).await.map_err(bot_error)?;
    }
    let activity = state.bots.activity(row.id).await;
    Ok((StatusCode::CREATED, Json(view(&state, row, activity, None))).into_response())
}

/// List your bots.
#[utoipa::path(
    get,
    path = "/api/v1/bots",
    tag = "bots",
    security(("token" = ["read"]), ("session" = [])),
    responses((status = 200, description = "The caller's bots, oldest first.", body = Vec<BotView>)),
)]
async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Vec<BotView>>, ApiError> {
    caller.require_scope(Scope::Read)?;
    let rows = state.runtime.store.bots_of(caller.user_id).await.map_err(|e| store_error(&e))?;
    let mut views = Vec::with_capacity(rows.len());
    for row in rows {
        let activity = state.bots.activity(row.id).await;
        views.push(view(&state, row, activity, None));
    }
    Ok(Json(views))
}

/// Get a bot with its activity and P&L.
#[utoipa::path(
    get,
    path = "/api/v1/bots/{bot}",
    tag = "bots",
    operation_id = "get_bot",
    security(("token" = ["read"]), ("session" = [])),
    params(("bot" = i64, Path, description = "The bot's id.")),
    responses((status = 200, description = "The bot with its activity (while running) and P&L.", body = BotView), (status = 404, description = "- `not_found`: no such bot, or not the caller's.")),
)]
async fn fetch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<BotId>,
) -> Result<Json<BotView>, ApiError> {
    caller.require_scope(Scope::Read)?;
    let row = owned_bot(&state, &caller, id).await?;
    let fills = bot_fills(&state, &row).await?;
    let pnl = state.runtime.instrument(row.instrument).map(|instrument| {
        let fills: Vec<model::Fill> = fills.into_iter().map(|(_, f)| f).collect();
        let mark = state.runtime.latest_quote(instrument.id).map(|q| q.mid());
        crate::bots::pnl(&instrument, &fills, mark)
    });
    let activity = state.bots.activity(row.id).await;
    Ok(Json(view(&state, row, activity, pnl)))
}

/// Start a bot.
#[utoipa::path(
    post,
    path = "/api/v1/bots/{bot}/start",
    tag = "bots",
    operation_id = "start_bot",
    security(("token" = ["trade"]), ("session" = [], "csrf" = [])),
    params(("bot" = i64, Path, description = "The bot's id.")),
    responses(
        (status = 200, description = "The bot, running.", body = BotView),
        (status = 404, description = "- `not_found`: no such bot, or not the caller's."),
        (status = 409, description = "- `bot_not_startable`: already running, or its strategy, instrument or account cannot run."),
        (status = 503, description = "- `unavailable`: its account is not running yet; retry shortly."),
    ),
)]
async fn start(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientMeta,
    Path(id): Path<BotId>,
) -> Result<Json<BotView>, ApiError> {
    caller.require_scope(Scope::Trade)?;
    let row = owned_bot(&state, &caller, id).await?;
    let audit = AuditEntry::new(state.runtime.now(), Some(caller.user_id), "bot.start", client.ip.as_deref());
    let row = state.bots.start(&row, &audit).await.map_err(bot_error)?;
    let activity = state.bots.activity(row.id).await;
    Ok(Json(view(&state, row, activity, None)))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct StopQuery {
    /// Cancel the bot's working orders too (default true).
    cancel_orders: Option<bool>,
}

/// Stop a bot.
#[utoipa::path(
    post,
    path = "/api/v1/bots/{bot}/stop",
    tag = "bots",
    operation_id = "stop_bot",
    security(("token" = ["trade"]), ("session" = [], "csrf" = [])),
    params(("bot" = i64, Path, description = "The bot's id."), StopQuery),
    responses((status = 200, description = "The bot, stopped.", body = BotView), (status = 404, description = "- `not_found`: no such bot, or not the caller's.")),
)]
async fn stop(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientMeta,
    Path(id): Path<BotId>,
    Query(q): Query<StopQuery>,
) -> Result<Json<BotView>, ApiError> {
    caller.require_scope(Scope::Trade)?;
    let row = owned_bot(&state, &caller, id).await?;
    let cancel_orders = q.cancel_orders.unwrap_or(true);
    let audit = AuditEntry::new(state.runtime.now(), Some(caller.user_id), "bot.stop", client.ip.as_deref())
        .detail(serde_json::json!({ "cancel_orders": cancel_orders }));
    let row = state.bots.stop(&row, cancel_orders, &audit).await.map_err(bot_error)?;
    Ok(Json(view(&state, row, None, None)))
}

/// Delete a stopped bot.
#[utoipa::path(
    delete,
    path = "/api/v1/bots/{bot}",
    tag = "bots",
    operation_id = "delete_bot",
    security(("token" = ["trade"]), ("session" = [], "csrf" = [])),
    params(("bot" = i64, Path, description = "The bot's id.")),
    responses(
        (status = 204, description = "Deleted; its orders and fills stay in the account."),
        (status = 404, description = "- `not_found`: no such bot, or not the caller's."),
        (status = 409, description = "- `bot_running`: stop it first."),
    ),
)]
async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientMeta,
    Path(id): Path<BotId>,
) -> Result<StatusCode, ApiError> {
    caller.require_scope(Scope::Trade)?;
    let row = owned_bot(&state, &caller, id).await?;
    if row.status == BotStatus::Running {
        return Err(ApiError::conflict("bot_running", "stop the bot before deleting it"));
    }
    let audit = AuditEntry::new(state.runtime.now(), Some(caller.user_id), "bot.delete", client.ip.as_deref());
    if state.runtime.store.delete_bot(id, &audit).await.map_err(|e| store_error(&e))? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::conflict("bot_running", "stop the bot before deleting it"))
    }
}

/// List a bot's orders.
#[utoipa::path(
    get,
    path = "/api/v1/bots/{bot}/orders",
    tag = "bots",
    operation_id = "list_bot_orders",
    security(("token" = ["read"]), ("session" = [])),
    params(("bot" = i64, Path, description = "The bot's id."), OrderListQuery),
    responses(
        (status = 200, description = "A page of the bot's orders, newest first.", body = Page<Order>),
        (status = 404, description = "- `not_found`: no such bot, or not the caller's."),
        (status = 422, description = "- `validation_failed`: a bad `status`, `symbol` or `limit`."),
    ),
)]
async fn orders(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<BotId>,
    Query(q): Query<OrderListQuery>,
) -> Result<Json<Page<Order>>, ApiError> {
    caller.require_scope(Scope::Read)?;
    let row = owned_bot(&state, &caller, id).await?;
    let handle = state
        .runtime
        .account(row.account_id)
        .await
        .ok_or_else(|| ApiError::unavailable("the bot's account is not running; try again shortly"))?;
    order_page(&state, &handle, &q, Some(row.order_prefix())).await
}

/// List a bot's fills (at most the newest 5,000).
#[utoipa::path(
    get,
    path = "/api/v1/bots/{bot}/fills",
    tag = "bots",
    operation_id = "list_bot_fills",
    security(("token" = ["read"]), ("session" = [])),
    params(("bot" = i64, Path, description = "The bot's id.")),
    responses(
        (status = 200, description = "The bot's fills, oldest first, each with its journal `seq`.", body = Vec<FillView>),
        (status = 404, description = "- `not_found`: no such bot, or not the caller's."),
    ),
)]
async fn fills(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<BotId>,
) -> Result<Json<Vec<FillView>>, ApiError> {
    caller.require_scope(Scope::Read)?;
    let row = owned_bot(&state, &caller, id).await?;
    let fills = bot_fills(&state, &row).await?;
    let skip = fills.len().saturating_sub(MAX_BOT_FILLS);
    Ok(Json(fills.into_iter().skip(skip).map(|(seq, fill)| FillView { seq, fill }).collect()))
}
