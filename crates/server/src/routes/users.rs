//! Administration: users and the audit log. Admins only (an admin's token
//! needs the `admin` scope).
//!
//! Users are never deleted, only disabled, so the audit log and account
//! ownership keep pointing at someone. The last enabled admin can be neither
//! demoted nor disabled (409 `last_admin`): nobody could undo it.

use std::collections::HashMap;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use store::auth::{AuditId, AuditRow, NewUser, Role, UserChange, UserId, UserUpdate};

use super::audit;
use crate::app::AppState;
use crate::auth::{self, AuthError, Caller, ClientMeta, UserView};
use crate::error::Json as BodyJson;
use crate::error::{ApiError, Json, Path, Query};

/// Audit records per page unless `limit` says otherwise.
const DEFAULT_AUDIT_PAGE: u32 = 100;
/// Most audit records per page.
const MAX_AUDIT_PAGE: u32 = 500;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/users", get(list).post(create))
        .route("/api/v1/users/{id}", axum::routing::patch(update))
        .route("/api/v1/audit", get(audit_log))
}

async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Vec<UserView>>, ApiError> {
    caller.require_admin()?;
    let users = state.runtime.store.users().await.map_err(AuthError::from)?;
    Ok(Json(users.iter().map(UserView::from).collect()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateUser {
    username: String,
    password: String,
    role: Role,
}

/// Creates a user with a password the admin chose; the user is asked to
/// change it (the admin knows it).
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientMeta,
    BodyJson(body): BodyJson<CreateUser>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    caller.require_admin()?;
    auth::check_username(&body.username)?;
    auth::check_new_password("password", &body.password)?;
    let hash = auth::hash_password_async(body.password).await?;
    let entry = audit(&state, Some(caller.user_id), "user.create", &client)
        .detail(serde_json::json!({ "username": body.username, "role": body.role }));
    let new = NewUser {
        username: &body.username,
        password_hash: &hash,
        role: body.role,
        password_change_required: true,
        created: state.runtime.now(),
    };
    match state.runtime.store.create_user(&new, &entry).await.map_err(AuthError::from)? {
        Some(user) => Ok((StatusCode::CREATED, Json(UserView::from(&user)))),
        None => Err(ApiError::conflict("username_taken", "that user name is taken").with_field("username")),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateUser {
    role: Option<Role>,
    disabled: Option<bool>,
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientMeta,
    Path(id): Path<UserId>,
    BodyJson(body): BodyJson<UpdateUser>,
) -> Result<Json<UserView>, ApiError> {
    caller.require_admin()?;
    if body.role.is_none() && body.disabled.is_none() {
        return Err(ApiError::bad_request("send at least one of: role, disabled"));
    }
    let entry = audit(&state, Some(caller.user_id), "user.update", &client)
        .detail(serde_json::json!({ "role": body.role, "disabled": body.disabled }));
    let change = UserChange { role: body.role, disabled: body.disabled };
    let updated = state.runtime.store.update_user(id, change, &entry).await;
    // A disabled user is refused, a demoted one narrowed, from this answer on.
    state.credentials.forget_user(id);
    match updated.map_err(AuthError::from)? {
        UserUpdate::Updated(user) => Ok(Json(UserView::from(&user))),
        UserUpdate::NotFound => Err(ApiError::not_found("user")),
        UserUpdate::LastAdmin => {
            Err(ApiError::conflict("last_admin", "this is the last enabled admin; make another user admin first"))
        }
    }
}

#[derive(Debug, Serialize)]
struct AuditPage {
    entries: Vec<AuditRow>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_before: Option<AuditId>,
}

fn bad_parameter(name: &str, detail: &str) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", format!("{name}: {detail}")).with_field(name)
}

/// `GET /api/v1/audit?before=&limit=`: newest first. Parameters are read by
/// hand so that a bad one is named in the answer.
async fn audit_log(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<AuditPage>, ApiError> {
    caller.require_admin()?;
    let mut names: Vec<&String> = params.keys().collect();
    names.sort();
    if let Some(unknown) = names.into_iter().find(|k| !matches!(k.as_str(), "before" | "limit")) {
        return Err(bad_parameter(unknown, "unknown parameter; use before and limit"));
    }
    let before = match params.get("before") {
        None => None,
        Some(text) => match text.parse::<AuditId>() {
            Ok(id) if id > 0 => Some(id),
            _ => return Err(bad_parameter("before", "must be an audit entry id (a positive integer)")),
        },
    };
    let limit = match params.get("limit") {
        None => DEFAULT_AUDIT_PAGE,
        Some(text) => match text.parse::<u32>() {
            Ok(n @ 1..=MAX_AUDIT_PAGE) => n,
            _ => return Err(bad_parameter("limit", &format!("must be an integer from 1 to {MAX_AUDIT_PAGE}"))),
        },
    };
    let entries = state.runtime.store.audit_log(before, limit).await.map_err(AuthError::from)?;
    let full = u32::try_from(entries.len()).is_ok_and(|n| n == limit);
    let next_before = if full { entries.last().map(|e| e.id) } else { None };
    Ok(Json(AuditPage { entries, next_before }))
}
