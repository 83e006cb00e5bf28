//! Live venue accounts: the owner's confirmation, what the venue reports,
//! and reconciliation on demand. Paper accounts answer 409 `not_live`;
//! other users' accounts 404, like everywhere else.

use axum::extract::State;
use serde::Deserialize;
use store::AccountId;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::trading::{AccountView, account_view, owned};
use crate::app::AppState;
use crate::auth::{Caller, ClientMeta, Scope};
use crate::error::{ApiError, Json, Path};
use crate::live::{LiveAccount, PassSummary, VenueStatus};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(confirm)).routes(routes!(venue_status)).routes(routes!(reconcile))
}

async fn live_of(state: &AppState, caller: &Caller, account: AccountId) -> Result<LiveAccount, ApiError> {
    owned(state, caller, account).await?;
    state
        .runtime
        .live_account(account)
        .await
        .ok_or_else(|| ApiError::conflict("not_live", "this is a paper account; it has no venue"))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Confirmation {
    /// Must be `true`: "I understand orders on this account go to the venue".
    confirm: bool,
}

/// Confirms live trading on one of the caller's live accounts: from now on
/// its orders go to the venue (production accounts also need the operator's
/// `trading.live_enabled`). Recorded in the audit log; confirming again
/// changes nothing.
#[utoipa::path(
    post,
    path = "/api/v1/accounts/{account}/live-confirmation",
    tag = "accounts",
    security(("token" = ["trade"]), ("session" = [], "csrf" = [])),
    params(("account" = i64, Path, description = "The account's id.")),
    request_body = Confirmation,
    responses(
        (status = 200, description = "The account, now confirmed.", body = AccountView),
        (status = 404, description = "- `not_found`: no such account of the caller's."),
        (status = 409, description = "- `not_live`: a paper account."),
        (status = 422, description = "- `validation_failed`: `confirm` is not true."),
    ),
)]
async fn confirm(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientMeta,
    Path(account): Path<AccountId>,
    Json(body): Json<Confirmation>,
) -> Result<Json<AccountView>, ApiError> {
    caller.require_scope(Scope::Trade)?;
    let live = live_of(&state, &caller, account).await?;
    if !body.confirm {
        return Err(ApiError::invalid("confirm", "send true to confirm live trading"));
    }
    let entry = crate::routes::audit(&state, Some(caller.user_id), "account.confirm_live", &client)
        .detail(serde_json::json!({ "venue": live.row.venue, "environment": live.row.environment }));
    if !state.runtime.confirm_live_account(account, caller.user_id, &entry).await.map_err(|e| ApiError::internal(&e))? {
        return Err(ApiError::not_found("account"));
    }
    let handle = owned(&state, &caller, account).await?;
    let currency = handle.read_live(|s| s.base_currency.to_string()).await.map_err(|e| ApiError::internal(&e))?;
    let name = state
        .runtime
        .store
        .owned_accounts(caller.user_id)
        .await
        .map_err(|e| ApiError::internal(&e))?
        .into_iter()
        .find(|r| r.id == account)
        .map(|r| r.name)
        .unwrap_or_default();
    Ok(Json(account_view(&state, account, name, currency).await))
}

/// What the account's venue reported at the last reconciliation: balances,
/// positions, differences found, the last error.
#[utoipa::path(
    get,
    path = "/api/v1/accounts/{account}/venue",
    tag = "accounts",
    security(("token" = ["read"]), ("session" = [])),
    params(("account" = i64, Path, description = "The account's id.")),
    responses(
        (status = 200, description = "The venue's view of the account.", body = VenueStatus),
        (status = 404, description = "- `not_found`: no such account of the caller's."),
        (status = 409, description = "- `not_live`: a paper account."),
    ),
)]
async fn venue_status(
    State(state): State<AppState>,
    caller: Caller,
    Path(account): Path<AccountId>,
) -> Result<Json<VenueStatus>, ApiError> {
    caller.require_scope(Scope::Read)?;
    Ok(Json(live_of(&state, &caller, account).await?.status()))
}

/// Reconciles the account with its venue now and answers what it did
/// (corrections applied, differences found: any difference makes the
/// account close-only).
#[utoipa::path(
    post,
    path = "/api/v1/accounts/{account}/reconcile",
    tag = "accounts",
    security(("token" = ["trade"]), ("session" = [], "csrf" = [])),
    params(("account" = i64, Path, description = "The account's id.")),
    responses(
        (status = 200, description = "What the reconciliation did.", body = PassSummary),
        (status = 404, description = "- `not_found`: no such account of the caller's."),
        (status = 409, description = "- `not_live`: a paper account."),
        (status = 503, description = "- `unavailable`: the venue could not be read; nothing changed."),
    ),
)]
async fn reconcile(
    State(state): State<AppState>,
    caller: Caller,
    Path(account): Path<AccountId>,
) -> Result<Json<PassSummary>, ApiError> {
    caller.require_scope(Scope::Trade)?;
    let live = live_of(&state, &caller, account).await?;
    live.reconcile("request").await.map(Json).map_err(|why| ApiError::unavailable(format!("{}: {why}", live.row.venue)))
}
