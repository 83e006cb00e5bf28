//! API tokens for programs: create (the token is shown once), list (never
//! the secret), revoke. Each user sees and revokes only their own tokens;
//! another user's token id answers 404.

use axum::extract::State;
use axum::http::StatusCode;
use model::Timestamp;
use model::time::NANOS_PER_DAY;
use serde::{Deserialize, Serialize};
use store::auth::{NewToken, Scope, Scopes, TokenId, TokenRow};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::audit;
use crate::app::AppState;
use crate::auth::{self, AuthError, Caller, ClientMeta, Via};
use crate::error::Json as BodyJson;
use crate::error::{ApiError, Json, Path};

/// Longest token name.
const MAX_NAME_LEN: usize = 100;
/// Longest lifetime a token can be given (ten years); omit it for no expiry.
const MAX_EXPIRY_DAYS: u32 = 3650;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, create)).routes(routes!(revoke))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateToken {
    /// 1 to 100 characters.
    name: String,
    /// At least one; at most the creator's own.
    scopes: Vec<Scope>,
    /// 1 to 3650; leave out for a token that does not expire.
    #[schema(minimum = 1, maximum = 3650)]
    expires_in_days: Option<u32>,
}

/// A token as listed.
#[derive(Debug, Serialize, ToSchema)]
struct TokenView {
    #[schema(value_type = i64)]
    id: TokenId,
    name: String,
    scopes: Scopes,
    created_at: Timestamp,
    expires_at: Option<Timestamp>,
    revoked_at: Option<Timestamp>,
    last_used_at: Option<Timestamp>,
}

impl From<TokenRow> for TokenView {
    fn from(t: TokenRow) -> Self {
        Self {
            id: t.id,
            name: t.name,
            scopes: t.scopes,
            created_at: t.created,
            expires_at: t.expires,
            revoked_at: t.revoked,
            last_used_at: t.last_used,
        }
    }
}

/// A new token, with the only copy of its secret.
#[derive(Debug, Serialize, ToSchema)]
struct CreatedToken {
    #[serde(flatten)]
    info: TokenView,
    /// `tc_<id>_<secret>`: send as `Authorization: Bearer <token>`. Shown once.
    token: String,
}

/// Creates an API token; its secret is shown once, here.
#[utoipa::path(
    post,
    path = "/api/v1/tokens",
    tag = "tokens",
    operation_id = "create_token",
    security(("token" = ["admin"]), ("session" = [], "csrf" = [])),
    request_body = CreateToken,
    responses(
        (status = 201, description = "The token, with its secret in `token`.", body = CreatedToken),
        (status = 403, description = "- `insufficient_scope`: more scopes than the creator has (`field` is `scopes`), or a token without the `admin` scope."),
        (status = 422, description = "- `validation_failed`: a bad `name`, `scopes` or `expires_in_days`."),
    ),
)]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientMeta,
    BodyJson(body): BodyJson<CreateToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    caller.require_credentials_access()?;
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_LEN {
        return Err(ApiError::invalid("name", format!("give the token a name of 1 to {MAX_NAME_LEN} characters")));
    }
    let scopes: Scopes = body.scopes.iter().copied().collect();
    if scopes.is_empty() {
        return Err(ApiError::invalid("scopes", "choose at least one of: read, trade, admin"));
    }
    if !scopes.is_subset_of(caller.scopes) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            format!("a token cannot have more than its creator: you have [{}], asked for [{scopes}]", caller.scopes),
        )
        .with_field("scopes"));
    }
    let now = state.runtime.now();
    let expires = match body.expires_in_days {
        None => None,
        Some(days @ 1..=MAX_EXPIRY_DAYS) => Some(now.plus_nanos(i64::from(days) * NANOS_PER_DAY)),
        Some(_) => {
            return Err(ApiError::invalid(
                "expires_in_days",
                format!("must be 1 to {MAX_EXPIRY_DAYS}, or left out for a token that does not expire"),
            ));
        }
    };
    let secret = auth::random_hex(32)?;
    let token_hash = auth::sha256_hex(&secret);
    let new = NewToken { user_id: caller.user_id, name, token_hash: &token_hash, scopes, created: now, expires };
    let entry = audit(&state, Some(caller.user_id), "token.create", &client)
        .detail(serde_json::json!({ "name": name, "scopes": scopes, "expires_at": expires }));
    let row = state.runtime.store.create_token(&new, &entry).await.map_err(AuthError::from)?;
    let token = auth::format_token(row.id, &secret);
    Ok((StatusCode::CREATED, Json(CreatedToken { info: TokenView::from(row), token })))
}

/// The caller's tokens (never their secrets).
#[utoipa::path(
    get,
    path = "/api/v1/tokens",
    tag = "tokens",
    operation_id = "list_tokens",
    security(("token" = ["read"]), ("session" = [])),
    responses((status = 200, description = "Tokens, revoked and expired ones included.", body = Vec<TokenView>)),
)]
async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Vec<TokenView>>, ApiError> {
    caller.require_scope(Scope::Read)?;
    let tokens = state.runtime.store.tokens(caller.user_id).await.map_err(AuthError::from)?;
    Ok(Json(tokens.into_iter().map(TokenView::from).collect()))
}

/// Revokes one of the caller's tokens (a token may always revoke itself).
#[utoipa::path(
    delete,
    path = "/api/v1/tokens/{id}",
    tag = "tokens",
    operation_id = "revoke_token",
    security(("token" = []), ("session" = [], "csrf" = [])),
    params(("id" = i64, Path, description = "The token's id.")),
    responses(
        (status = 204, description = "Revoked."),
        (status = 403, description = "- `insufficient_scope`: another token, without the `admin` scope."),
        (status = 404, description = "- `not_found`: no such token of the caller's."),
    ),
)]
async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientMeta,
    Path(id): Path<TokenId>,
) -> Result<StatusCode, ApiError> {
    // A token may always revoke itself (a program shutting down for good).
    if caller.via != (Via::Token { id }) {
        caller.require_credentials_access()?;
    }
    let now = state.runtime.now();
    let entry = audit(&state, Some(caller.user_id), "token.revoke", &client);
    let revoked = state.runtime.store.revoke_token(caller.user_id, id, now, &entry).await;
    // After the write, before the answer: the token is refused from now on.
    state.credentials.forget_token(id);
    if !revoked.map_err(AuthError::from)? {
        return Err(ApiError::not_found("token"));
    }
    Ok(StatusCode::NO_CONTENT)
}
