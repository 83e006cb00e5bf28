//! Kill switches: the global one (admins) and each account's (its owner or
//! an admin). `halted` refuses every new order, `reducing` only orders that
//! reduce a position, `active` trades normally; cancels always go through.
//! Every change is journaled on the accounts and recorded in the audit log.

use axum::extract::State;
use engine::{Command, RiskLimits, SwitchScope, TradingState};
use model::{Money, Quantity, Rate};
use serde::{Deserialize, Serialize};
use store::AccountId;
use store::auth::AuditEntry;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::auth::{Caller, ClientMeta, Scope};
use crate::error::{ApiError, Json, Path};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(global, set_global))
        .routes(routes!(set_account))
        .routes(routes!(risk_limits, set_risk_limits))
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Switch {
    state: TradingState,
}

#[derive(Debug, Serialize, ToSchema)]
struct GlobalSwitch {
    state: TradingState,
    /// Accounts the change was applied to.
    accounts: usize,
}

/// The global kill switch.
#[utoipa::path(
    get,
    path = "/api/v1/kill-switch",
    tag = "risk",
    operation_id = "get_global_kill_switch",
    security(("token" = ["read"]), ("session" = [])),
    responses((status = 200, description = "Its state.", body = Switch)),
)]
async fn global(State(state): State<AppState>, caller: Caller) -> Result<Json<Switch>, ApiError> {
    caller.require_scope(Scope::Read)?;
    Ok(Json(Switch { state: state.runtime.global_state().await }))
}

/// Sets the global kill switch (admins).
#[utoipa::path(
    put,
    path = "/api/v1/kill-switch",
    tag = "risk",
    operation_id = "set_global_kill_switch",
    security(("token" = ["admin"]), ("session" = [], "csrf" = [])),
    request_body = Switch,
    responses(
        (status = 200, description = "The new state.", body = GlobalSwitch),
        (status = 403, description = "- `forbidden`: not an admin."),
    ),
)]
async fn set_global(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientMeta,
    Json(body): Json<Switch>,
) -> Result<Json<GlobalSwitch>, ApiError> {
    caller.require_admin()?;
    let accounts = state.runtime.set_global_state(body.state).await.map_err(|e| ApiError::internal(&e))?;
    let entry = AuditEntry::new(state.runtime.now(), Some(caller.user_id), "kill_switch.global", client.ip.as_deref())
        .detail(serde_json::json!({ "state": body.state, "accounts": accounts }));
    state.runtime.store.record_audit(&entry).await.map_err(|e| ApiError::internal(&e))?;
    tracing::warn!(state = ?body.state, by = %caller.username, "global kill switch changed");
    Ok(Json(GlobalSwitch { state: body.state, accounts }))
}

/// Sets an account's kill switch (its owner with the `trade` scope, or an admin).
#[utoipa::path(
    put,
    path = "/api/v1/accounts/{account}/kill-switch",
    tag = "risk",
    operation_id = "set_account_kill_switch",
    security(("token" = ["trade"]), ("token" = ["admin"]), ("session" = [], "csrf" = [])),
    params(("account" = i64, Path, description = "The account's id.")),
    request_body = Switch,
    responses(
        (status = 200, description = "The new state.", body = Switch),
        (status = 404, description = "- `not_found`: no such account, or not the caller's."),
    ),
)]
async fn set_account(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientMeta,
    Path(account): Path<AccountId>,
    Json(body): Json<Switch>,
) -> Result<Json<Switch>, ApiError> {
    let owner = state.runtime.store.account_owner(account).await.map_err(|e| ApiError::internal(&e))?;
    // Owners may switch their own account; admins any account.
    if caller.is_admin() {
        if owner.is_none() && state.runtime.account(account).await.is_none() {
            return Err(ApiError::not_found("account"));
        }
    } else {
        caller.require_scope(Scope::Trade)?;
        if owner != Some(caller.user_id) {
            return Err(ApiError::not_found("account"));
        }
    }
    let handle = state.runtime.account(account).await.ok_or_else(|| ApiError::not_found("account"))?;
    handle
        .command(Command::SetTradingState { scope: SwitchScope::Account, state: body.state })
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let entry = AuditEntry::new(state.runtime.now(), Some(caller.user_id), "kill_switch.account", client.ip.as_deref())
        .target(account.to_string())
        .detail(serde_json::json!({ "state": body.state }));
    state.runtime.store.record_audit(&entry).await.map_err(|e| ApiError::internal(&e))?;
    Ok(Json(Switch { state: body.state }))
}

/// New risk limits for an account: every field, as `GET` answers them.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RiskLimitsInput {
    /// Largest value of one order (quantity × price); `null` for none.
    max_order_notional: Option<Money>,
    /// Largest absolute position per instrument, in units; `null` for none.
    max_position: Option<Quantity>,
    /// Loss since the start of the UTC day (base currency) at which only
    /// reducing orders are accepted; `null` for none.
    daily_loss_limit: Option<Money>,
    /// Whether the account may sell what it does not hold.
    allow_short: bool,
    /// Buying power as a multiple of free cash, 1 to 10 (1 is a cash account).
    max_leverage: Quantity,
    /// Fee rate reserved from cash when an order is placed, 0 to 0.1.
    fee_rate_estimate: Rate,
}

impl RiskLimitsInput {
    fn check(self) -> Result<RiskLimits, ApiError> {
        let positive = |field: &str, ok: bool| {
            if ok {
                Ok(())
            } else {
                Err(ApiError::invalid(field, format!("{field} must be more than 0 (or null for no limit)")))
            }
        };
        positive("max_order_notional", self.max_order_notional.is_none_or(Money::is_positive))?;
        positive("max_position", self.max_position.is_none_or(Quantity::is_positive))?;
        positive("daily_loss_limit", self.daily_loss_limit.is_none_or(Money::is_positive))?;
        if self.max_leverage < Quantity::ONE || self.max_leverage > Quantity::from_int(10) {
            return Err(ApiError::invalid("max_leverage", "max_leverage must be from 1 to 10"));
        }
        let max_fee = Rate::parse("0.1").map_err(|e| ApiError::internal(&e))?;
        if self.fee_rate_estimate.is_negative() || self.fee_rate_estimate > max_fee {
            return Err(ApiError::invalid("fee_rate_estimate", "fee_rate_estimate must be from 0 to 0.1"));
        }
        Ok(RiskLimits {
            max_order_notional: self.max_order_notional,
            max_position: self.max_position,
            daily_loss_limit: self.daily_loss_limit,
            allow_short: self.allow_short,
            max_leverage: self.max_leverage,
            fee_rate_estimate: self.fee_rate_estimate,
        })
    }
}

/// An account's pre-trade risk limits.
#[utoipa::path(
    get,
    path = "/api/v1/accounts/{account}/risk-limits",
    tag = "risk",
    operation_id = "get_risk_limits",
    security(("token" = ["read"]), ("session" = [])),
    params(("account" = i64, Path, description = "The account's id.")),
    responses(
        (status = 200, description = "The limits (`null`: no limit).", body = RiskLimits),
        (status = 404, description = "- `not_found`: no such account, or not the caller's."),
        (status = 503, description = "- `unavailable`: the account is not running yet; retry shortly."),
    ),
)]
async fn risk_limits(
    State(state): State<AppState>,
    caller: Caller,
    Path(account): Path<AccountId>,
) -> Result<Json<RiskLimits>, ApiError> {
    caller.require_scope(Scope::Read)?;
    let handle = crate::api::trading::owned(&state, &caller, account).await?;
    let limits = handle.read(|s| s.limits.clone()).await.map_err(|e| ApiError::internal(&e))?;
    Ok(Json(limits))
}

/// Replaces an account's risk limits (its owner with the `trade` scope).
/// Journaled on the account and recorded in the audit log.
#[utoipa::path(
    put,
    path = "/api/v1/accounts/{account}/risk-limits",
    tag = "risk",
    operation_id = "set_risk_limits",
    security(("token" = ["trade"]), ("session" = [], "csrf" = [])),
    params(("account" = i64, Path, description = "The account's id.")),
    request_body = RiskLimitsInput,
    responses(
        (status = 200, description = "The new limits.", body = RiskLimits),
        (status = 404, description = "- `not_found`: no such account, or not the caller's."),
        (status = 422, description = "- `validation_failed`: a limit out of range (`field` names it)."),
    ),
)]
async fn set_risk_limits(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientMeta,
    Path(account): Path<AccountId>,
    Json(body): Json<RiskLimitsInput>,
) -> Result<Json<RiskLimits>, ApiError> {
    caller.require_scope(Scope::Trade)?;
    let handle = crate::api::trading::owned(&state, &caller, account).await?;
    let limits = body.check()?;
    handle.command(Command::SetRiskLimits { limits: limits.clone() }).await.map_err(|e| ApiError::internal(&e))?;
    let entry = AuditEntry::new(state.runtime.now(), Some(caller.user_id), "risk_limits.account", client.ip.as_deref())
        .target(account.to_string())
        .detail(serde_json::to_value(&limits).unwrap_or_default());
    state.runtime.store.record_audit(&entry).await.map_err(|e| ApiError::internal(&e))?;
    Ok(Json(limits))
}
