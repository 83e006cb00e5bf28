//! Administration: users and the audit log. Admins only (an admin's token
//! needs the `admin` scope).
//!
//! Users are never deleted, only disabled, so the audit log and account
//! ownership keep pointing at someone. The last enabled admin can be neither
//! demoted nor disabled (409 `last_admin`): nobody could undo it.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use store::auth::{AuditId, AuditRow, NewUser, Role, UserChange, UserId, UserUpdate};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::audit;
use crate::app::AppState;
use crate::auth::{self, AuthError, Caller, ClientMeta, UserView};
use crate::error::Json as BodyJson;
use crate::error::{ApiError, Json, Path, Query};

/// Audit records per page unless `limit` says otherwise.
const DEFAULT_AUDIT_PAGE: u32 = 100;
/// Most audit records per page.
const MAX_AUDIT_PAGE: u32 = 500;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, create)).routes(routes!(update)).routes(routes!(audit_log))
}

/// Every user (admins).
#[utoipa::path(
    get,
    path = "/api/v1/users",
    tag = "users",
    operation_id = "list_users",
    security(("token" = ["admin"]), ("session" = [])),
    responses((status = 200, description = "Users.", body = Vec<UserView>), (status = 403, description = "- `forbidden`: not an admin.")),
)]
async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Vec<UserView>>, ApiError> {
    caller.require_admin()?;
    let users = state.runtime.store.users().await.map_err(AuthError::from)?;
    Ok(Json(users.iter().map(UserView::from).collect()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateUser {
    /// 1 to 64 ASCII letters, digits, `.`, `_` or `-`.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    username: String,
    /// At least 12 characters; the user must change it at first sign-in.
    /// Leave it out to have a one-time password generated (an invitation).
    #[schema(min_length = 12)]
    password: Option<String>,
    role: Role,
}

/// The new user, with the generated one-time password when none was given.
#[derive(Debug, Serialize, ToSchema)]
struct CreatedUser {
    #[serde(flatten)]
    user: UserView,
    /// Shown only here: hand it to the user, who must replace it at first sign-in.
    #[serde(skip_serializing_if = "Option::is_none")]
    one_time_password: Option<String>,
}

/// Creates a user with a password the admin chose, or invites one with a
/// generated one-time password; either way the user must change it at
/// first sign-in (the admin knows it).
#[utoipa::path(
    post,
    path = "/api/v1/users",
    tag = "users",
    operation_id = "create_user",
    security(("token" = ["admin"]), ("session" = [], "csrf" = [])),
    request_body = CreateUser,
    responses(
        (status = 201, description = "The new user (with `one_time_password` when it was generated).", body = CreatedUser),
        (status = 403, description = "- `forbidden`: not an admin."),
        (status = 409, description = "- `username_taken`: that user name is taken."),
    ),
)]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientMeta,
    BodyJson(body): BodyJson<CreateUser>,
) -> Result<(StatusCode, Json<CreatedUser>), ApiError> {
    caller.require_admin()?;
    auth::check_username(&body.username)?;
    let (password, generated) = match body.password {
        Some(password) => {
            auth::check_new_password("password", &password)?;
            (password, false)
        }
        // 128 random bits as 32 hex digits: long enough, and easy to pass on.
        None => (auth::random_hex(16)?, true),
    };
    let hash = auth::hash_password_async(password.clone()).await?;
    let entry = audit(&state, Some(caller.user_id), "user.create", &client).detail(serde_json::json!({
        "username": body.username,
        "role": body.role,
        "generated_password": generated,
    }));
    let new = NewUser {
        username: &body.username,
        password_hash: &hash,
        role: body.role,
        password_change_required: true,
        created: state.runtime.now(),
    };
    match state.runtime.store.create_user(&new, &entry).await.map_err(AuthError::from)? {
        Some(user) => Ok((
            StatusCode::CREATED,
            Json(CreatedUser { user: UserView::from(&user), one_time_password: generated.then_some(password) }),
        )),
        None => Err(ApiError::conflict("username_taken", "that user name is taken").with_field("username")),
    }
}

/// Send at least one of the two.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UpdateUser {
    role: Option<Role>,
    disabled: Option<bool>,
}

/// Changes a user's role or disables them (admins). Users are never deleted.
#[utoipa::path(
    patch,
    path = "/api/v1/users/{id}",
    tag = "users",
    operation_id = "update_user",
    security(("token" = ["admin"]), ("session" = [], "csrf" = [])),
    params(("id" = i64, Path, description = "The user's id.")),
    request_body = UpdateUser,
    responses(
        (status = 200, description = "The user now.", body = UserView),
        (status = 400, description = "- `bad_request`: neither `role` nor `disabled` given."),
        (status = 403, description = "- `forbidden`: not an admin."),
        (status = 404, description = "- `not_found`: no such user."),
        (status = 409, description = "- `last_admin`: this is the last enabled admin; make another user admin first."),
    ),
)]
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

#[derive(Debug, Serialize, ToSchema)]
struct AuditPage {
    entries: Vec<AuditRow>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<i64>)]
    next_before: Option<AuditId>,
}

fn bad_parameter(name: &str, detail: &str) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", format!("{name}: {detail}")).with_field(name)
}

/// `GET /api/v1/audit?before=&limit=`: newest first. Parameters are read by
/// hand so that a bad one is named in the answer.
#[utoipa::path(
    get,
    path = "/api/v1/audit",
    tag = "users",
    summary = "The audit log, newest first (admins).",
    security(("token" = ["admin"]), ("session" = [])),
    params(
        ("before" = Option<i64>, Query, minimum = 1, description = "Only entries with a smaller id: `next_before` of the previous page."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Page size, 1 to 500 (default 100)."),
    ),
    responses((status = 200, description = "A page of entries.", body = AuditPage), (status = 403, description = "- `forbidden`: not an admin.")),
)]
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
