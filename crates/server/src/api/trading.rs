//! Trading accounts and orders.
//!
//! Every route is scoped to the caller's own accounts: an account that
//! exists but belongs to someone else answers 404, exactly like one that
//! does not exist, so ids cannot be probed. Reads need the `read` scope,
//! writes the `trade` scope.
//!
//! An order is answered only once its events are durable. A submission the
//! risk checks refuse is journaled too, and answered 422 with the stable
//! reason as the problem's `code` (for example `insufficient_cash`).
//!
//! Positions, balances and open orders are read from the account's actor
//! (in memory, answered once durable: see `AccountHandle::read`); the order
//! history, fills and equity history from the database's read models.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use engine::{Command, OrderRequest, Submission};
use model::time::NANOS_PER_DAY;
use model::{
    ClientOrderId, InstrumentId, Money, Order, OrderId, OrderStatus, OrderType, Price, Quantity, Side, TimeInForce,
};
use serde::{Deserialize, Serialize};
use store::{AccountId, OrderQuery};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::accounts::{AccountError, AccountHandle};
use crate::app::AppState;
use crate::auth::{Caller, Scope};
use crate::error::{ApiError, Json, Path, Query};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_account, list_accounts))
        .routes(routes!(account_summary))
        .routes(routes!(positions))
        .routes(routes!(account_instruments))
        .routes(routes!(balances))
        .routes(routes!(equity_history))
        .routes(routes!(submit, list_orders, cancel_all))
        .routes(routes!(get_order, cancel))
        .routes(routes!(fills))
}

fn store_error(e: &store::StoreError) -> ApiError {
    ApiError::internal(e)
}

/// The caller's account, or 404.
pub(crate) async fn owned(state: &AppState, caller: &Caller, account: AccountId) -> Result<AccountHandle, ApiError> {
    // A running account carries its owner (which never changes): no query.
    if let Some(handle) = state.runtime.account(account).await {
        return if handle.owner == Some(caller.user_id) { Ok(handle) } else { Err(ApiError::not_found("account")) };
    }
    // Not running here: "not yours or no such account" stays a 404, only
    // the owner learns that it is not running.
    let owner = state.runtime.store.account_owner(account).await.map_err(|e| store_error(&e))?;
    if owner != Some(caller.user_id) {
        return Err(ApiError::not_found("account"));
    }
    Err(ApiError::unavailable("the account is not running; try again shortly"))
}

/// The instrument a `symbol` field names on `account` (a live account's own
/// symbols, or the paper market's), or a 422 on that field.
pub(crate) async fn instrument_id(
    state: &AppState,
    account: AccountId,
    symbol: &str,
) -> Result<InstrumentId, ApiError> {
    if let Some(live) = state.runtime.live_account(account).await {
        let index = live.row.symbols.iter().position(|(s, v)| s == symbol || v == symbol);
        return index.and_then(|i| crate::live::instrument_id(account, i).ok()).ok_or_else(|| {
            let known: Vec<&str> = live.row.symbols.iter().map(|(s, _)| s.as_str()).collect();
            ApiError::invalid("symbol", format!("this account trades {}; not '{symbol}'", known.join(", ")))
        });
    }
    state
        .runtime
        .instrument_by_symbol(symbol)
        .map(|i| i.id)
        .ok_or_else(|| ApiError::invalid("symbol", format!("unknown symbol '{symbol}'")))
}

fn account_error(e: AccountError) -> ApiError {
    match e {
        AccountError::Engine(engine::EngineError::ClientOrderIdConflict(id)) => ApiError::conflict(
            "client_order_id_conflict",
            format!("client order id '{id}' was already used for a different order"),
        )
        .with_field("client_order_id"),
        AccountError::Engine(engine::EngineError::UnknownOrder(_)) => ApiError::not_found("order"),
        AccountError::Engine(engine::EngineError::OrderNotOpen { order_id, status }) => {
            ApiError::conflict("order_not_open", format!("order {order_id} is {status}"))
        }
        AccountError::Engine(e) => ApiError::bad_request(e.to_string()),
        AccountError::Stopped => ApiError::unavailable("the account is restarting; try again shortly"),
        AccountError::TradingNotAllowed(why) => ApiError::conflict("trading_not_allowed", why),
        other => ApiError::internal(&other),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewAccount {
    /// 1 to 64 characters.
    name: String,
    /// Paper accounts: starting cash in each currency the paper instruments
    /// are quoted in.
    starting_cash: Option<Money>,
    /// Live accounts: the linked venue credential to trade through (see
    /// `/api/v1/venue-credentials`). Without it the account is paper.
    venue_credential_id: Option<i64>,
    /// Live accounts: the venue's symbols to trade (`BTCUSDT`; `AAPL` or an
    /// OCC option symbol), 1 to 100.
    symbols: Option<Vec<String>>,
    /// Live TastyTrade accounts: the account number to trade in.
    venue_account: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AccountView {
    #[schema(value_type = i64)]
    id: AccountId,
    name: String,
    base_currency: String,
    /// Where its orders go: `paper` (the simulated market), `binance` or `tastytrade`.
    #[schema(example = "paper")]
    venue: String,
    /// A live account's venue environment (`testnet`, `sandbox`, `production`).
    #[serde(skip_serializing_if = "Option::is_none")]
    environment: Option<String>,
    /// A live account's state; absent for paper accounts.
    #[serde(skip_serializing_if = "Option::is_none")]
    live: Option<LiveView>,
}

/// Whether a live account may trade.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LiveView {
    /// The owner confirmed live trading on it.
    confirmed: bool,
    /// It may send orders now.
    trading: bool,
    /// Why not, when it may not.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// The venue symbols it trades.
    symbols: Vec<String>,
    /// The venue's account number (TastyTrade).
    #[serde(skip_serializing_if = "String::is_empty")]
    venue_account: String,
}

const PAPER_VENUE: &str = "paper";

/// How an account is shown, live or paper.
pub(crate) async fn account_view(state: &AppState, id: AccountId, name: String, currency: String) -> AccountView {
    match state.runtime.live_account(id).await {
        Some(live) => {
            let reason = live.gate.check().err();
            AccountView {
                id,
                name,
                base_currency: currency,
                venue: live.row.venue.clone(),
                environment: Some(live.row.environment.clone()),
                live: Some(LiveView {
                    confirmed: live.row.confirmed.is_some(),
                    trading: reason.is_none(),
                    reason,
                    symbols: live.row.symbols.iter().map(|(_, v)| v.clone()).collect(),
                    venue_account: live.row.venue_account.clone(),
                }),
            }
        }
        None => AccountView {
            id,
            name,
            base_currency: currency,
            venue: PAPER_VENUE.to_string(),
            environment: None,
            live: None,
        },
    }
}

/// Opens an account for the caller: on paper by default, or at a live
/// venue through a linked credential.
///
/// A live account is checked with the venue first (the credential works,
/// the symbols exist); it starts with the venue's cash and sends no order
/// until its owner confirms live trading on it
/// (`POST /api/v1/accounts/{account}/live-confirmation`).
#[utoipa::path(
    post,
    path = "/api/v1/accounts",
    tag = "accounts",
    security(("token" = ["trade"]), ("session" = [], "csrf" = [])),
    request_body = NewAccount,
    responses(
        (status = 201, description = "The new account.", body = AccountView),
        (status = 404, description = "- `not_found`: no such venue credential of the caller's."),
        (status = 409, description = "- `credentials_key_missing`: the server cannot read linked credentials."),
        (status = 422, description = "- `validation_failed`: a bad `name`, `starting_cash` (positive, at most 10^12), `symbols` or `venue_account`, or the venue refused the credential or a symbol (`field` says which)."),
    ),
)]
async fn create_account(
    State(state): State<AppState>,
    caller: Caller,
    client: crate::auth::ClientMeta,
    Json(body): Json<NewAccount>,
) -> Result<Response, ApiError> {
    caller.require_scope(Scope::Trade)?;
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 64 {
        return Err(ApiError::invalid("name", "the name must be 1 to 64 characters"));
    }
    if let Some(credential) = body.venue_credential_id {
        return create_live_account(&state, &caller, &client, name, credential, &body).await;
    }
    for (field, given) in [("symbols", body.symbols.is_some()), ("venue_account", body.venue_account.is_some())] {
        if given {
            return Err(ApiError::invalid(field, format!("{field} is for live accounts (give venue_credential_id)")));
        }
    }
    let cash = body.starting_cash.unwrap_or(state.config.paper.starting_cash);
    if !cash.is_positive() || cash > Money::from_int(1_000_000_000_000) {
        return Err(ApiError::invalid("starting_cash", "starting cash must be positive and at most 10^12"));
    }
    let currency = model::Currency::parse("USD").map_err(|e| ApiError::internal(&e))?;
    let handle = state
        .runtime
        .open_paper_account(name, currency, cash, Some(caller.user_id))
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let view = account_view(&state, handle.id, name.to_string(), currency.to_string()).await;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

async fn create_live_account(
    state: &AppState,
    caller: &Caller,
    client: &crate::auth::ClientMeta,
    name: &str,
    credential: i64,
    body: &NewAccount,
) -> Result<Response, ApiError> {
    use crate::runtime::LiveOpenError;
    if body.starting_cash.is_some() {
        return Err(ApiError::invalid("starting_cash", "a live account starts with the venue's cash"));
    }
    let symbols: Vec<String> = body.symbols.iter().flatten().map(|s| s.trim().to_string()).collect();
    if symbols.is_empty() || symbols.len() > crate::live::MAX_SYMBOLS {
        return Err(ApiError::invalid("symbols", "name 1 to 100 venue symbols the account trades"));
    }
    if let Some(bad) = symbols.iter().find(|s| s.is_empty() || s.len() > 64) {
        return Err(ApiError::invalid("symbols", format!("'{bad}' is not a venue symbol")));
    }
    let mut unique = symbols.clone();
    unique.sort();
    unique.dedup();
    if unique.len() != symbols.len() {
        return Err(ApiError::invalid("symbols", "each symbol once"));
    }
    let row = state
        .runtime
        .store
        .venue_credential(caller.user_id, credential)
        .await
        .map_err(|e| store_error(&e))?
        .ok_or_else(|| ApiError::not_found("venue credential"))?;
    let venue_account = body.venue_account.as_deref().unwrap_or("").trim();
    match row.venue.as_str() {
        "tastytrade" if venue_account.is_empty() => {
            return Err(ApiError::invalid("venue_account", "a TastyTrade account needs its account number"));
        }
        "binance" if !venue_account.is_empty() => {
            return Err(ApiError::invalid("venue_account", "a Binance credential is one account: leave it out"));
        }
        _ => {}
    }
    if venue_account.len() > 32 || !venue_account.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(ApiError::invalid("venue_account", "an account number is letters and digits"));
    }
    let entry = crate::routes::audit(state, Some(caller.user_id), "account.create_live", client).detail(
        serde_json::json!({ "credential": credential, "venue": row.venue, "environment": row.environment, "symbols": symbols }),
    );
    let new =
        crate::runtime::NewLive { name, owner: caller.user_id, credential: &row, symbols: &symbols, venue_account };
    let handle = match state.runtime.open_live_account(&new, &entry).await {
        Ok(handle) => handle,
        Err(LiveOpenError::KeyMissing) => {
            return Err(ApiError::conflict(
                "credentials_key_missing",
                "the operator has not set trading.credentials_key, so linked credentials cannot be read",
            ));
        }
        Err(LiveOpenError::Unreadable(why)) => return Err(ApiError::invalid("venue_credential_id", why)),
        Err(LiveOpenError::Symbols(why)) => return Err(ApiError::invalid("symbols", format!("{}: {why}", row.venue))),
        Err(LiveOpenError::Venue(why)) => {
            // TastyTrade logins hold several accounts: the number is the likelier culprit.
            let field = if row.venue == "tastytrade" { "venue_account" } else { "venue_credential_id" };
            return Err(ApiError::invalid(field, format!("{}: {why}", row.venue)));
        }
        Err(e) => return Err(ApiError::internal(&e)),
    };
    let currency = handle.read_live(|s| s.base_currency.to_string()).await.map_err(account_error)?;
    let view = account_view(state, handle.id, name.to_string(), currency).await;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// The caller's accounts.
#[utoipa::path(
    get,
    path = "/api/v1/accounts",
    tag = "accounts",
    security(("token" = ["read"]), ("session" = [])),
    responses((status = 200, description = "The caller's accounts.", body = Vec<AccountView>)),
)]
async fn list_accounts(State(state): State<AppState>, caller: Caller) -> Result<Json<Vec<AccountView>>, ApiError> {
    caller.require_scope(Scope::Read)?;
    let rows = state.runtime.store.owned_accounts(caller.user_id).await.map_err(|e| store_error(&e))?;
    let mut views = Vec::with_capacity(rows.len());
    for r in rows {
        views.push(account_view(&state, r.id, r.name, r.base_currency.to_string()).await);
    }
    Ok(Json(views))
}

#[derive(Debug, Serialize, ToSchema)]
struct PositionView {
    symbol: String,
    instrument: InstrumentId,
    quantity: Quantity,
    /// The signed notional paid for what is held.
    cost_basis: Money,
    average_price: Option<Price>,
    mark: Option<Price>,
    market_value: Money,
    unrealized_pnl: Money,
    realized_pnl: Money,
    fees: Money,
}

#[derive(Debug, Serialize, ToSchema)]
struct Summary {
    #[schema(value_type = i64)]
    id: AccountId,
    /// Equity in the account's base currency (positions quoted in it included).
    equity: Money,
    /// Equity per currency: cash in it plus the positions quoted in it (no
    /// conversion between currencies).
    equity_by_currency: Vec<(String, Money)>,
    balances: Vec<(String, Money)>,
    positions: Vec<PositionView>,
    open_orders: usize,
    trading_state: engine::TradingState,
    global_trading_state: engine::TradingState,
    /// Cash per currency not committed to open buy orders (fees included)
    /// or held against short positions.
    free_cash: Vec<(String, Money)>,
    /// Profit and loss per currency the account holds or trades in.
    pnl_by_currency: Vec<CurrencyPnl>,
    /// `paper`, `binance` or `tastytrade`.
    venue: String,
}

/// P&L in one currency, from the positions quoted in it.
#[derive(Debug, Serialize, ToSchema)]
struct CurrencyPnl {
    currency: String,
    /// Realized P&L of those positions, before fees.
    realized: Money,
    /// At the latest marks.
    unrealized: Money,
    fees: Money,
    /// realized + unrealized − fees.
    total: Money,
    /// Equity now less equity at the start of the UTC day, deposits and
    /// withdrawals excluded; absent until a day has started with it recorded.
    day: Option<Money>,
    /// The equity the day started with (plus the day's deposits).
    day_start_equity: Option<Money>,
}

/// Live figures from the account's engine: equity and positions at the latest marks.
#[utoipa::path(
    get,
    path = "/api/v1/accounts/{account}",
    tag = "accounts",
    operation_id = "get_account",
    security(("token" = ["read"]), ("session" = [])),
    params(("account" = i64, Path, description = "The account's id.")),
    responses((status = 200, description = "The summary.", body = Summary), (status = 404, description = "- `not_found`: no such account, or not the caller's."), (status = 503, description = "- `unavailable`: the account is not running yet; retry shortly.")),
)]
async fn account_summary(
    State(state): State<AppState>,
    caller: Caller,
    Path(account): Path<AccountId>,
) -> Result<Json<Summary>, ApiError> {
    caller.require_scope(Scope::Read)?;
    let handle = owned(&state, &caller, account).await?;
    let mut summary = handle.read_live(move |s| summary_of(account, s)).await.map_err(account_error)?;
    if let Some(live) = state.runtime.live_account(account).await {
        summary.venue = live.row.venue;
    }
    Ok(Json(summary))
}

/// The summary, computed in the actor (no copy of the whole state).
fn summary_of(account: AccountId, s: &engine::AccountState) -> Summary {
    Summary {
        id: account,
        equity: s.equity(),
        equity_by_currency: s.equity_by_currency().into_iter().map(|(c, m)| (c.to_string(), m)).collect(),
        balances: s.balances.iter().map(|(c, m)| (c.to_string(), *m)).collect(),
        positions: s
            .books
            .iter()
            .filter(|b| !b.position.quantity.is_zero() || !b.position.realized_pnl.is_zero())
            .map(|b| PositionView {
                symbol: b.instrument.symbol.clone(),
                instrument: b.instrument.id,
                quantity: b.position.quantity,
                cost_basis: b.position.cost_basis,
                average_price: b.position.average_price(b.instrument.multiplier),
                mark: b.mark,
                market_value: b.market_value(),
                unrealized_pnl: b.unrealized_pnl(),
                realized_pnl: b.position.realized_pnl,
                fees: b.position.fees,
            })
            .collect(),
        open_orders: s.open_orders.len(),
        trading_state: s.account_state,
        global_trading_state: s.global_state,
        free_cash: s.balances.keys().map(|c| (c.to_string(), s.free_cash(*c))).collect(),
        pnl_by_currency: pnl_by_currency(s),
        venue: PAPER_VENUE.to_string(),
    }
}

fn pnl_by_currency(s: &engine::AccountState) -> Vec<CurrencyPnl> {
    let mut currencies: std::collections::BTreeSet<model::Currency> = s.balances.keys().copied().collect();
    currencies.extend(s.books.iter().map(|b| b.instrument.quote_currency));
    currencies
        .into_iter()
        .map(|currency| {
            let books = s.books.iter().filter(|b| b.instrument.quote_currency == currency);
            let (mut realized, mut unrealized, mut fees) = (Money::ZERO, Money::ZERO, Money::ZERO);
            for book in books {
                realized += book.position.realized_pnl;
                unrealized += book.unrealized_pnl();
                fees += book.position.fees;
            }
            let day_start_equity =
                s.day_start_by_currency.as_ref().map(|starts| starts.get(&currency).copied().unwrap_or_default());
            CurrencyPnl {
                currency: currency.to_string(),
                realized,
                unrealized,
                fees,
                total: realized + unrealized - fees,
                day: s.day_pnl_in(currency),
                day_start_equity,
            }
        })
        .collect()
}

/// What the account can trade, with each instrument's id (positions and
/// orders name instruments by id) and filters: the paper market's
/// instruments, or a live account's own symbols as its venue lists them.
#[utoipa::path(
    get,
    path = "/api/v1/accounts/{account}/instruments",
    tag = "accounts",
    security(("token" = ["read"]), ("session" = [])),
    params(("account" = i64, Path, description = "The account's id.")),
    responses((status = 200, description = "Instruments, in the order they were added.", body = Vec<model::Instrument>), (status = 404, description = "- `not_found`: no such account, or not the caller's."), (status = 503, description = "- `unavailable`: the account is not running yet; retry shortly.")),
)]
async fn account_instruments(
    State(state): State<AppState>,
    caller: Caller,
    Path(account): Path<AccountId>,
) -> Result<Json<Vec<model::Instrument>>, ApiError> {
    caller.require_scope(Scope::Read)?;
    let handle = owned(&state, &caller, account).await?;
    let instruments =
        handle.read_live(|s| s.books.iter().map(|b| b.instrument.clone()).collect()).await.map_err(account_error)?;
    Ok(Json(instruments))
}

/// The account's positions as stored.
#[utoipa::path(
    get,
    path = "/api/v1/accounts/{account}/positions",
    tag = "accounts",
    operation_id = "list_positions",
    security(("token" = ["read"]), ("session" = [])),
    params(("account" = i64, Path, description = "The account's id.")),
    responses((status = 200, description = "Positions.", body = Vec<model::account::Position>), (status = 404, description = "- `not_found`: no such account, or not the caller's."), (status = 503, description = "- `unavailable`: the account is not running yet; retry shortly.")),
)]
async fn positions(
    State(state): State<AppState>,
    caller: Caller,
    Path(account): Path<AccountId>,
) -> Result<Json<Vec<model::account::Position>>, ApiError> {
    caller.require_scope(Scope::Read)?;
    let handle = owned(&state, &caller, account).await?;
    // As the read model has them: one row per instrument, flat ones included, by id.
    let mut rows =
        handle.read(|s| s.books.iter().map(|b| b.position.clone()).collect::<Vec<_>>()).await.map_err(account_error)?;
    rows.sort_by_key(|p| p.instrument);
    Ok(Json(rows))
}

/// The account's cash per currency, as `[currency, amount]` pairs.
#[utoipa::path(
    get,
    path = "/api/v1/accounts/{account}/balances",
    tag = "accounts",
    operation_id = "list_balances",
    security(("token" = ["read"]), ("session" = [])),
    params(("account" = i64, Path, description = "The account's id.")),
    responses((status = 200, description = "Balances.", body = Vec<(String, Money)>), (status = 404, description = "- `not_found`: no such account, or not the caller's."), (status = 503, description = "- `unavailable`: the account is not running yet; retry shortly.")),
)]
async fn balances(
    State(state): State<AppState>,
    caller: Caller,
    Path(account): Path<AccountId>,
) -> Result<Json<Vec<(String, Money)>>, ApiError> {
    caller.require_scope(Scope::Read)?;
    let handle = owned(&state, &caller, account).await?;
    let mut rows: Vec<(String, Money)> =
        handle.read(|s| s.balances.iter().map(|(c, m)| (c.to_string(), *m)).collect()).await.map_err(account_error)?;
    // The read model orders by the currency's text.
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Json(rows))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct RangeQuery {
    /// From this time, inclusive (ISO 8601, or epoch s/ms/µs/ns).
    from: Option<String>,
    /// To this time (ISO 8601, or epoch s/ms/µs/ns).
    to: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
struct EquityPoint {
    time: model::Timestamp,
    /// In the account's base currency.
    equity: Money,
    /// `[currency, equity]` for every currency held: cash plus the
    /// positions quoted in it, not converted (empty in points recorded
    /// before it was).
    by_currency: Vec<(String, Money)>,
}

/// Equity recorded once a minute, oldest first; before the minute history
/// kept (`retention.equity_minutes_days`), one point a day at 23:59 UTC.
#[utoipa::path(
    get,
    path = "/api/v1/accounts/{account}/equity",
    tag = "accounts",
    security(("token" = ["read"]), ("session" = [])),
    params(("account" = i64, Path, description = "The account's id."), RangeQuery),
    responses(
        (status = 200, description = "Equity points.", body = Vec<EquityPoint>),
        (status = 404, description = "- `not_found`: no such account, or not the caller's."),
        (status = 503, description = "- `unavailable`: the account is not running yet; retry shortly."),
        (status = 422, description = "- `validation_failed`: a bad `from` or `to`."),
    ),
)]
async fn equity_history(
    State(state): State<AppState>,
    caller: Caller,
    Path(account): Path<AccountId>,
    Query(q): Query<RangeQuery>,
) -> Result<Json<Vec<EquityPoint>>, ApiError> {
    caller.require_scope(Scope::Read)?;
    owned(&state, &caller, account).await?;
    let time = |field: &str, value: &Option<String>, default: i64| match value {
        Some(v) => model::Timestamp::parse(v).map_err(|e| ApiError::invalid(field, e.to_string())),
        None => Ok(model::Timestamp::from_nanos(default)),
    };
    let from = time("from", &q.from, i64::MIN)?;
    let to = time("to", &q.to, i64::MAX)?;
    let store = &state.runtime.store;
    let rows = store.equity_history(account, from, to).await.map_err(|e| store_error(&e))?;
    // Before the minute history (pruned by retention), one point a day: the
    // end-of-day equity the equity_daily job keeps.
    let day = |t: model::Timestamp| t.as_nanos().div_euclid(NANOS_PER_DAY);
    let first_minute = rows.first().map_or(to, |p| p.ts);
    let mut points: Vec<EquityPoint> = Vec::new();
    if day(first_minute) > day(from) {
        let days = store.daily_equity(account, day(from), day(first_minute) - 1).await.map_err(|e| store_error(&e))?;
        for (d, equity, by_currency) in days {
            let time = model::Timestamp::from_nanos((d + 1) * NANOS_PER_DAY - 60_000_000_000);
            if time >= from && time < to && time < first_minute {
                let by_currency = by_currency.into_iter().map(|(c, m)| (c.to_string(), m)).collect();
                points.push(EquityPoint { time, equity, by_currency });
            }
        }
    }
    points.extend(rows.into_iter().map(|p| EquityPoint {
        time: p.ts,
        equity: p.equity,
        by_currency: p.by_currency.into_iter().map(|(c, m)| (c.to_string(), m)).collect(),
    }));
    Ok(Json(points))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewOrder {
    /// The caller's id for the order (1 to 36 of letters, digits, `.`, `_`,
    /// `:`, `-`): submitting the same id again answers the same order.
    #[schema(value_type = ClientOrderId)]
    client_order_id: String,
    /// The instrument's symbol.
    #[schema(example = "BTC-USDT")]
    symbol: String,
    side: Side,
    /// `market`, `limit` (needs `price`), `stop` (needs `trigger_price`) or
    /// `stop_limit` (needs both).
    #[serde(rename = "type")]
    #[schema(pattern = "^(market|limit|stop|stop_limit)$", example = "limit")]
    order_type: String,
    /// Positive.
    quantity: Quantity,
    price: Option<Price>,
    trigger_price: Option<Price>,
    /// Default `GTC`.
    #[serde(default)]
    time_in_force: TimeInForce,
    /// Only reduce a position, never open or grow one.
    #[serde(default)]
    reduce_only: bool,
    /// A limit order that must rest: refused (`would_take_liquidity`) if it
    /// would trade on arrival. GTC only. Binance places it as LIMIT_MAKER;
    /// TastyTrade has none and refuses it.
    #[serde(default)]
    post_only: bool,
}

impl NewOrder {
    fn into_request(self, instrument: InstrumentId) -> Result<OrderRequest, ApiError> {
        let client_order_id =
            ClientOrderId::parse(&self.client_order_id).map_err(|e| ApiError::invalid("client_order_id", e))?;
        // Bots own this prefix: a manual order with it would count as a bot's.
        if self.client_order_id.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("bot")) {
            return Err(ApiError::invalid(
                "client_order_id",
                "client order ids starting with 'bot' are reserved for bots",
            ));
        }
        let need = |field: &str, v: Option<Price>| {
            v.ok_or_else(|| ApiError::invalid(field, format!("a {} order needs {field}", self.order_type)))
        };
        let order_type = match self.order_type.as_str() {
            "market" => OrderType::Market,
            "limit" => OrderType::Limit { price: need("price", self.price)? },
            "stop" => OrderType::Stop { trigger_price: need("trigger_price", self.trigger_price)? },
            "stop_limit" => OrderType::StopLimit {
                trigger_price: need("trigger_price", self.trigger_price)?,
                price: need("price", self.price)?,
            },
            other => {
                return Err(ApiError::invalid(
                    "type",
                    format!("unknown order type '{other}'; expected market, limit, stop or stop_limit"),
                ));
            }
        };
        if matches!(order_type, OrderType::Market | OrderType::Stop { .. }) && self.price.is_some() {
            return Err(ApiError::invalid("price", format!("a {} order takes no price", self.order_type)));
        }
        if !self.quantity.is_positive() {
            return Err(ApiError::invalid("quantity", "the quantity must be positive"));
        }
        if self.post_only && (!matches!(order_type, OrderType::Limit { .. }) || self.time_in_force != TimeInForce::Gtc)
        {
            return Err(ApiError::invalid("post_only", "only a GTC limit order can be post-only"));
        }
        Ok(OrderRequest {
            client_order_id,
            instrument,
            side: self.side,
            order_type,
            time_in_force: self.time_in_force,
            quantity: self.quantity,
            reduce_only: self.reduce_only,
            post_only: self.post_only,
            reference_price: None,
        })
    }
}

/// Submits an order; answered once its events are durable.
///
/// A new order answers 201, a resubmission of a known `client_order_id`
/// with the same content 200 with the existing order. An order the risk
/// checks refuse is journaled and answered 422 with the reason as `code`.
#[utoipa::path(
    post,
    path = "/api/v1/accounts/{account}/orders",
    tag = "orders",
    operation_id = "submit_order",
    security(("token" = ["trade"]), ("session" = [], "csrf" = [])),
    params(("account" = i64, Path, description = "The account's id.")),
    request_body = NewOrder,
    responses(
        (status = 201, description = "The new order.", body = Order),
        (status = 200, description = "The order this `client_order_id` already placed.", body = Order),
        (status = 404, description = "- `not_found`: no such account, or not the caller's."),
        (status = 409, description = "- `client_order_id_conflict`: the id was used for a different order."),
        (status = 422, description = "- `validation_failed`: a bad field (`field` names it).\n- a risk refusal: `code` is the reason (`insufficient_cash`, `tick_size`, `kill_switch_account`, ... see `RejectReason`)."),
        (status = 503, description = "- `unavailable`: the account is not running yet; retry shortly."),
    ),
)]
async fn submit(
    State(state): State<AppState>,
    caller: Caller,
    Path(account): Path<AccountId>,
    Json(body): Json<NewOrder>,
) -> Result<Response, ApiError> {
    caller.require_scope(Scope::Trade)?;
    let handle = owned(&state, &caller, account).await?;
    let instrument = instrument_id(&state, account, &body.symbol).await?;
    let request = body.into_request(instrument)?;
    let placed = handle.submit(request).await.map_err(account_error)?;
    match placed.submission {
        Submission::Sent(_) => Ok((StatusCode::CREATED, Json(placed.order)).into_response()),
        Submission::Duplicate(_) => Ok((StatusCode::OK, Json(placed.order)).into_response()),
        Submission::Denied(id, reason) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            reason.code(),
            format!("order {id} was refused: {}", reason.message()),
        )),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct OrderListQuery {
    /// `open` (working orders) or one status (`filled`, `cancelled`, ...).
    status: Option<String>,
    /// Only this instrument's orders.
    symbol: Option<String>,
    /// Only orders with a smaller id: `next_before` of the previous page.
    before: Option<u64>,
    /// Page size, 1 to 500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

/// A page, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Page<T> {
    items: Vec<T>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    next_before: Option<u64>,
}

const MAX_PAGE: u32 = 500;

fn page_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit {
        None => Ok(100),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::invalid("limit", format!("limit must be from 1 to {MAX_PAGE}"))),
    }
}

/// The account's orders, newest first, a page at a time.
#[utoipa::path(
    get,
    path = "/api/v1/accounts/{account}/orders",
    tag = "orders",
    security(("token" = ["read"]), ("session" = [])),
    params(("account" = i64, Path, description = "The account's id."), OrderListQuery),
    responses(
        (status = 200, description = "A page of orders.", body = Page<Order>),
        (status = 404, description = "- `not_found`: no such account, or not the caller's."),
        (status = 503, description = "- `unavailable`: the account is not running yet; retry shortly."),
        (status = 422, description = "- `validation_failed`: a bad `status`, `symbol` or `limit`."),
    ),
)]
async fn list_orders(
    State(state): State<AppState>,
    caller: Caller,
    Path(account): Path<AccountId>,
    Query(q): Query<OrderListQuery>,
) -> Result<Json<Page<Order>>, ApiError> {
    caller.require_scope(Scope::Read)?;
    let handle = owned(&state, &caller, account).await?;
    order_page(&state, &handle, &q, None).await
}

/// A page of an account's orders (only those whose client order id starts
/// with `client_prefix`, when given).
pub(crate) async fn order_page(
    state: &AppState,
    handle: &AccountHandle,
    q: &OrderListQuery,
    client_prefix: Option<String>,
) -> Result<Json<Page<Order>>, ApiError> {
    let account = handle.id;
    let limit = page_limit(q.limit)?;
    let (open_only, status) = match q.status.as_deref() {
        None => (false, None),
        Some("open") => (true, None),
        Some(s) => (false, Some(parse_status(s)?)),
    };
    let instrument = match &q.symbol {
        None => None,
        Some(symbol) => Some(instrument_id(state, account, symbol).await?),
    };
    let query = OrderQuery { open_only, status, instrument, before: q.before.map(OrderId), client_prefix, limit };
    let items = if open_only {
        // Open orders are few and all in the actor's memory.
        handle.read(move |s| open_orders(s, &query)).await.map_err(account_error)?
    } else {
        state.runtime.store.orders(account, &query).await.map_err(|e| store_error(&e))?
    };
    let next_before = if items.len() == limit as usize { items.last().map(|o| o.id.0) } else { None };
    Ok(Json(Page { items, next_before }))
}

/// What the read model answers for `status=open`: open orders (any open
/// status), newest (highest id) first, after the `before` cursor, filtered by
/// instrument, at most `limit`.
fn open_orders(s: &engine::AccountState, q: &OrderQuery) -> Vec<Order> {
    let below = q.before.map_or(OrderId(u64::MAX), |b| b);
    s.open_orders
        .range(..below)
        .rev()
        .filter_map(|id| s.orders.get(id))
        .filter(|o| o.status.is_open() && q.instrument.is_none_or(|i| o.instrument == i))
        .filter(|o| q.client_prefix.as_deref().is_none_or(|p| o.client_order_id.as_str().starts_with(p)))
        .take(q.limit.max(1) as usize)
        .cloned()
        .collect()
}

fn parse_status(s: &str) -> Result<OrderStatus, ApiError> {
    const ALL: [OrderStatus; 8] = [
        OrderStatus::New,
        OrderStatus::Accepted,
        OrderStatus::PartiallyFilled,
        OrderStatus::PendingCancel,
        OrderStatus::Filled,
        OrderStatus::Cancelled,
        OrderStatus::Rejected,
        OrderStatus::Expired,
    ];
    ALL.into_iter().find(|st| st.as_str() == s).ok_or_else(|| {
        ApiError::invalid(
            "status",
            format!(
                "unknown status '{s}'; expected open, {}",
                ALL.iter().map(|st| st.as_str()).collect::<Vec<_>>().join(", ")
            ),
        )
    })
}

/// One order.
#[utoipa::path(
    get,
    path = "/api/v1/accounts/{account}/orders/{order}",
    tag = "orders",
    security(("token" = ["read"]), ("session" = [])),
    params(("account" = i64, Path, description = "The account's id."), ("order" = u64, Path, description = "The order's id.")),
    responses(
        (status = 200, description = "The order.", body = Order),
        (status = 404, description = "- `not_found`: no such account or order, or not the caller's."),
        (status = 503, description = "- `unavailable`: the account is not running yet; retry shortly."),
    ),
)]
async fn get_order(
    State(state): State<AppState>,
    caller: Caller,
    Path((account, order)): Path<(AccountId, u64)>,
) -> Result<Json<Order>, ApiError> {
    caller.require_scope(Scope::Read)?;
    owned(&state, &caller, account).await?;
    let order = state.runtime.store.order(account, OrderId(order)).await.map_err(|e| store_error(&e))?;
    order.map(Json).ok_or_else(|| ApiError::not_found("order"))
}

/// Requests the cancellation of an order; answers it as it is then.
#[utoipa::path(
    delete,
    path = "/api/v1/accounts/{account}/orders/{order}",
    tag = "orders",
    operation_id = "cancel_order",
    security(("token" = ["trade"]), ("session" = [], "csrf" = [])),
    params(("account" = i64, Path, description = "The account's id."), ("order" = u64, Path, description = "The order's id.")),
    responses(
        (status = 202, description = "Cancellation requested; the order now.", body = Order),
        (status = 404, description = "- `not_found`: no such account or order, or not the caller's."),
        (status = 409, description = "- `order_not_open`: the order is already done."),
        (status = 503, description = "- `unavailable`: the account is not running yet; retry shortly."),
    ),
)]
async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path((account, order)): Path<(AccountId, u64)>,
) -> Result<Response, ApiError> {
    caller.require_scope(Scope::Trade)?;
    let handle = owned(&state, &caller, account).await?;
    handle.command(Command::CancelOrder { order_id: OrderId(order) }).await.map_err(account_error)?;
    let current = handle.read_live(move |s| s.orders.get(&OrderId(order)).cloned()).await.map_err(account_error)?;
    match current {
        Some(order) => Ok((StatusCode::ACCEPTED, Json(order)).into_response()),
        None => Err(ApiError::not_found("order")),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct CancelAllQuery {
    /// Only this instrument's orders.
    symbol: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
struct Cancelled {
    /// Open orders a cancellation was requested for.
    cancel_requested: usize,
}

/// Requests the cancellation of every open order (of one instrument).
#[utoipa::path(
    delete,
    path = "/api/v1/accounts/{account}/orders",
    tag = "orders",
    operation_id = "cancel_all_orders",
    security(("token" = ["trade"]), ("session" = [], "csrf" = [])),
    params(("account" = i64, Path, description = "The account's id."), CancelAllQuery),
    responses(
        (status = 200, description = "How many were asked to cancel.", body = Cancelled),
        (status = 404, description = "- `not_found`: no such account, or not the caller's."),
        (status = 503, description = "- `unavailable`: the account is not running yet; retry shortly."),
        (status = 422, description = "- `validation_failed`: unknown `symbol`."),
    ),
)]
async fn cancel_all(
    State(state): State<AppState>,
    caller: Caller,
    Path(account): Path<AccountId>,
    Query(q): Query<CancelAllQuery>,
) -> Result<Json<Cancelled>, ApiError> {
    caller.require_scope(Scope::Trade)?;
    let handle = owned(&state, &caller, account).await?;
    let instrument = match &q.symbol {
        None => None,
        Some(symbol) => Some(instrument_id(&state, account, symbol).await?),
    };
    let before = handle.read_live(|s| s.open_orders.len()).await.map_err(account_error)?;
    handle.command(Command::CancelAll { instrument }).await.map_err(account_error)?;
    let still_open = handle
        .read_live(|s| {
            s.open_orders
                .iter()
                .filter_map(|id| s.orders.get(id))
                .filter(|o| o.status != OrderStatus::PendingCancel)
                .count()
        })
        .await
        .map_err(account_error)?;
    Ok(Json(Cancelled { cancel_requested: before.saturating_sub(still_open) }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct FillQuery {
    /// Only fills with a smaller `seq`: `next_before` of the previous page.
    before: Option<u64>,
    /// Page size, 1 to 500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct FillView {
    /// The fill's position in the account's journal.
    pub(crate) seq: u64,
    #[serde(flatten)]
    pub(crate) fill: model::Fill,
}

/// The account's fills, newest first, a page at a time.
#[utoipa::path(
    get,
    path = "/api/v1/accounts/{account}/fills",
    tag = "orders",
    operation_id = "list_fills",
    security(("token" = ["read"]), ("session" = [])),
    params(("account" = i64, Path, description = "The account's id."), FillQuery),
    responses(
        (status = 200, description = "A page of fills.", body = Page<FillView>),
        (status = 404, description = "- `not_found`: no such account, or not the caller's."),
        (status = 503, description = "- `unavailable`: the account is not running yet; retry shortly."),
        (status = 422, description = "- `validation_failed`: a bad `limit`."),
    ),
)]
async fn fills(
    State(state): State<AppState>,
    caller: Caller,
    Path(account): Path<AccountId>,
    Query(q): Query<FillQuery>,
) -> Result<Json<Page<FillView>>, ApiError> {
    caller.require_scope(Scope::Read)?;
    owned(&state, &caller, account).await?;
    let limit = page_limit(q.limit)?;
    let rows = state.runtime.store.fills(account, q.before, limit).await.map_err(|e| store_error(&e))?;
    let next_before = if rows.len() == limit as usize { rows.last().map(|(seq, _)| *seq) } else { None };
    Ok(Json(Page { items: rows.into_iter().map(|(seq, fill)| FillView { seq, fill }).collect(), next_before }))
}
