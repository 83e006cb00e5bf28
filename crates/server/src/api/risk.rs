//! Kill switches: the global one (admins) and each account's (its owner or
//! an admin). `halted` refuses every new order, `reducing` only orders that
//! reduce a position, `active` trades normally; cancels always go through.
//! Every change is journaled on the accounts and recorded in the audit log.

use axum::extract::State;
use engine::{Command, SwitchScope, TradingState};
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
    OpenApiRouter::new().routes(routes!(global, set_global)).routes(routes!(set_account))
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
