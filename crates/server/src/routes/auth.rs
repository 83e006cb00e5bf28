//! Signing in and out, the caller's own sessions and password, and sign-up.
//! [`routes`] also merges the token and user-administration routes, so the
//! app merges one router for everything about identity.
//!
//! Sign-in answers the same 401 whether the user name is unknown, the
//! password wrong or the user disabled, after the same amount of hashing
//! work, so the answer does not tell which names exist. Failures count
//! against the user name and the client IP; past
//! `auth.login_attempts_per_minute` either one gets 429 with `Retry-After`.

use std::sync::Arc;
use std::time::Instant;

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use model::Timestamp;
use serde::{Deserialize, Serialize};
use store::auth::{NewSession, NewUser, Role, Scopes, SessionRow};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::audit;
use crate::app::AppState;
use crate::auth::{
    self, AuthError, Caller, ClientMeta, LoginThrottle, MAX_PASSWORD_LEN, MAX_USERNAME_LEN, UserView, Via,
};
use crate::error::Json as BodyJson;
use crate::error::{ApiError, Json, Path};

/// Every identity route: auth, tokens, users and the audit log.
pub fn routes() -> OpenApiRouter<AppState> {
    // One throttle per router: each app (each test server) counts on its own.
    let throttle = Arc::new(LoginThrottle::default());
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(me))
        .routes(routes!(change_password))
        .routes(routes!(list_sessions))
        .routes(routes!(end_session))
        .routes(routes!(signup))
        .layer(Extension(throttle))
        .merge(super::tokens::routes())
        .merge(super::users::routes())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    username: String,
    password: String,
}

#[derive(Debug, Serialize, ToSchema)]
struct LoginResponse {
    user: UserView,
    /// Echo it in `X-CSRF-Token` on every write made with the session cookie.
    csrf_token: String,
    expires_at: Timestamp,
}

fn bad_credentials() -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "invalid_credentials", "wrong user name or password")
}

/// Throttle keys: the user name (folded, as names are unique ignoring case)
/// and the client IP when known.
fn throttle_keys(username: &str, client: &ClientMeta) -> Vec<String> {
    let mut keys = vec![format!("user:{}", username.to_ascii_lowercase())];
    if let Some(ip) = &client.ip {
        keys.push(format!("ip:{ip}"));
    }
    keys
}

/// Signs in: sets the session cookie and answers the CSRF token.
///
/// The same 401 whether the user name is unknown, the password wrong or the
/// user disabled. Failures count per user name and client IP; past
/// `auth.login_attempts_per_minute` the answer is 429.
#[utoipa::path(
    post,
    path = "/api/v1/auth/login",
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in.", body = LoginResponse,
            headers(("Set-Cookie" = String, description = "`tc_session=...; HttpOnly; SameSite=Lax`"))),
        (status = 401, description = "- `invalid_credentials`: wrong user name or password."),
        (status = 403, description = "- `csrf_failed`: sent from a foreign `Origin`."),
        (status = 429, description = "- `rate_limited`: too many failed sign-ins for this user name or IP; retry after `Retry-After` seconds.",
            headers(("Retry-After" = u64, description = "Seconds to wait."))),
    ),
)]
async fn login(
    State(state): State<AppState>,
    Extension(throttle): Extension<Arc<LoginThrottle>>,
    client: ClientMeta,
    headers: HeaderMap,
    BodyJson(body): BodyJson<LoginRequest>,
) -> Result<Response, ApiError> {
    // Signing a victim's browser into the attacker's account is a CSRF
    // attack too; a foreign page's form post carries its Origin.
    auth::check_origin(&headers, &state.config)?;
    if body.username.len() > MAX_USERNAME_LEN {
        return Err(ApiError::invalid("username", format!("must be at most {MAX_USERNAME_LEN} characters")));
    }
    if body.password.len() > MAX_PASSWORD_LEN {
        return Err(ApiError::invalid("password", format!("must be at most {MAX_PASSWORD_LEN} bytes")));
    }
    let keys = throttle_keys(&body.username, &client);
    let limit = state.config.auth.login_attempts_per_minute;
    throttle.check(&keys, limit, Instant::now()).map_err(ApiError::too_many_requests)?;

    let store = &state.runtime.store;
    let user = store.user_by_name(&body.username).await.map_err(AuthError::from)?;
    let matches = auth::verify_password_async(body.password, user.as_ref().map(|u| u.password_hash.clone())).await?;
    let user = match user {
        Some(user) if matches && !user.disabled => user,
        user => {
            throttle.record_failure(&keys, Instant::now());
            let reason = match &user {
                None => "unknown_user",
                Some(u) if u.disabled && matches => "disabled",
                Some(_) => "wrong_password",
            };
            let entry = audit(&state, user.as_ref().map(|u| u.id), "auth.login_failed", &client)
                .detail(serde_json::json!({ "username": body.username, "reason": reason }));
            store.record_audit(&entry).await.map_err(AuthError::from)?;
            return Err(bad_credentials());
        }
    };
    throttle.clear(&keys[0]);

    let secret = auth::random_hex(32)?;
    let csrf_token = auth::random_hex(32)?;
    let session_id = auth::sha256_hex(&secret);
    let now = state.runtime.now();
    let ttl = state.config.auth.session_ttl();
    let expires = now.plus_nanos(i64::try_from(ttl.as_nanos()).unwrap_or(i64::MAX));
    let session = NewSession {
        id: &session_id,
        user_id: user.id,
        csrf_token: &csrf_token,
        created: now,
        expires,
        user_agent: client.user_agent.as_deref(),
        ip: client.ip.as_deref(),
    };
    let entry = audit(&state, Some(user.id), "auth.login", &client)
        .target(format!("user:{}", user.id))
        .detail(serde_json::json!({ "session": short_id(&session_id) }));
    store.create_session(&session, &entry).await.map_err(AuthError::from)?;

    let cookie = auth::session_cookie(&secret, ttl.as_secs(), state.config.server.secure_cookies);
    let body = LoginResponse { user: UserView::from(&user), csrf_token, expires_at: expires };
    Ok(([(header::SET_COOKIE, cookie)], Json(body)).into_response())
}

/// The start of a session id: enough to tell sessions apart in the audit
/// log, not enough to matter if the log leaks (the id is a hash anyway).
fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// Signs out: ends the session and clears its cookie.
#[utoipa::path(
    post,
    path = "/api/v1/auth/logout",
    tag = "auth",
    security(("session" = [], "csrf" = [])),
    responses(
        (status = 204, description = "Signed out.", headers(("Set-Cookie" = String, description = "Clears `tc_session`."))),
        (status = 400, description = "- `bad_request`: called with a token, not a session (revoke tokens with `DELETE /api/v1/tokens/{id}`)."),
    ),
)]
async fn logout(State(state): State<AppState>, caller: Caller, client: ClientMeta) -> Result<Response, ApiError> {
    let Some(session_id) = caller.session_id() else {
        return Err(ApiError::bad_request(
            "signing out ends a session; revoke a token with DELETE /api/v1/tokens/{id}",
        ));
    };
    let entry = audit(&state, Some(caller.user_id), "auth.logout", &client)
        .target(format!("user:{}", caller.user_id))
        .detail(serde_json::json!({ "session": short_id(session_id) }));
    let deleted = state.runtime.store.delete_session(caller.user_id, session_id, &entry).await;
    // After the write, before the answer: the session is refused from now on.
    state.credentials.forget_session(session_id);
    deleted.map_err(AuthError::from)?;
    let cookie = auth::clear_session_cookie(state.config.server.secure_cookies);
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response())
}

#[derive(Debug, Serialize, ToSchema)]
struct Me {
    user: UserView,
    scopes: Scopes,
    /// `session` or `token`.
    auth: &'static str,
    /// For a session: the CSRF token, so a reloaded dashboard can find it again.
    #[serde(skip_serializing_if = "Option::is_none")]
    csrf_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_expires_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_id: Option<i64>,
}

/// The caller: user, scopes and how they authenticated.
#[utoipa::path(
    get,
    path = "/api/v1/auth/me",
    tag = "auth",
    security(("token" = []), ("session" = [])),
    responses((status = 200, description = "The caller.", body = Me)),
)]
async fn me(State(state): State<AppState>, caller: Caller) -> Result<Json<Me>, ApiError> {
    let user = state.runtime.store.user(caller.user_id).await.map_err(AuthError::from)?;
    // The user existed a moment ago, when the caller was authenticated.
    let user = user.ok_or_else(ApiError::unauthorized)?;
    let (auth, csrf_token, session_expires_at, token_id) = match caller.via {
        Via::Session { csrf_token, expires, .. } => ("session", Some(csrf_token), Some(expires), None),
        Via::Token { id } => ("token", None, None, Some(id)),
    };
    Ok(Json(Me { user: UserView::from(&user), scopes: caller.scopes, auth, csrf_token, session_expires_at, token_id }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    current_password: String,
    new_password: String,
}

/// Changes the caller's password and ends their other sessions.
#[utoipa::path(
    post,
    path = "/api/v1/auth/password",
    tag = "auth",
    security(("token" = ["admin"]), ("session" = [], "csrf" = [])),
    request_body = PasswordChange,
    responses(
        (status = 204, description = "Changed."),
        (status = 403, description = "- `insufficient_scope`: a token without the `admin` scope."),
        (status = 422, description = "- `validation_failed`: `current_password` is wrong, or `new_password` is too short (12 characters at least), too long or unchanged."),
        (status = 429, description = "- `rate_limited`: too many wrong current passwords; retry after `Retry-After` seconds."),
    ),
)]
async fn change_password(
    State(state): State<AppState>,
    Extension(throttle): Extension<Arc<LoginThrottle>>,
    caller: Caller,
    client: ClientMeta,
    BodyJson(body): BodyJson<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    caller.require_credentials_access()?;
    auth::check_new_password("new_password", &body.new_password)?;
    if body.new_password == body.current_password {
        return Err(ApiError::invalid("new_password", "must differ from the current password"));
    }
    if body.current_password.len() > MAX_PASSWORD_LEN {
        return Err(ApiError::invalid("current_password", "is wrong"));
    }
    // Someone at an unattended, signed-in browser must not get unlimited
    // guesses at the password either.
    let keys = vec![format!("user:{}", caller.username.to_ascii_lowercase())];
    let limit = state.config.auth.login_attempts_per_minute;
    throttle.check(&keys, limit, Instant::now()).map_err(ApiError::too_many_requests)?;
    let store = &state.runtime.store;
    let user = store.user(caller.user_id).await.map_err(AuthError::from)?.ok_or_else(ApiError::unauthorized)?;
    if !auth::verify_password_async(body.current_password, Some(user.password_hash)).await? {
        throttle.record_failure(&keys, Instant::now());
        return Err(ApiError::invalid("current_password", "is wrong"));
    }
    let hash = auth::hash_password_async(body.new_password).await?;
    let entry =
        audit(&state, Some(caller.user_id), "auth.password_change", &client).target(format!("user:{}", caller.user_id));
    let kept = caller.session_id();
    let changed = store.set_password(caller.user_id, &hash, kept, &entry).await;
    // The other sessions ended, and the cached callers carry the old
    // "password change required" flag.
    state.credentials.forget_user(caller.user_id);
    if !changed.map_err(AuthError::from)? {
        return Err(ApiError::unauthorized());
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
struct SessionView {
    /// The session's id (the SHA-256 of its secret; not the cookie).
    id: String,
    /// The session this request was made with.
    current: bool,
    created_at: Timestamp,
    expires_at: Timestamp,
    last_seen_at: Timestamp,
    user_agent: Option<String>,
    ip: Option<String>,
}

impl SessionView {
    fn new(s: SessionRow, current: Option<&str>) -> Self {
        Self {
            current: current == Some(s.id.as_str()),
            id: s.id,
            created_at: s.created,
            expires_at: s.expires,
            last_seen_at: s.last_seen,
            user_agent: s.user_agent,
            ip: s.ip,
        }
    }
}

/// The caller's live sessions.
#[utoipa::path(
    get,
    path = "/api/v1/auth/sessions",
    tag = "auth",
    security(("token" = ["read"]), ("session" = [])),
    responses((status = 200, description = "Sessions.", body = Vec<SessionView>)),
)]
async fn list_sessions(State(state): State<AppState>, caller: Caller) -> Result<Json<Vec<SessionView>>, ApiError> {
    caller.require_scope(auth::Scope::Read)?;
    let now = state.runtime.now();
    let sessions = state.runtime.store.sessions(caller.user_id, now).await.map_err(AuthError::from)?;
    Ok(Json(sessions.into_iter().map(|s| SessionView::new(s, caller.session_id())).collect()))
}

/// Ends one of the caller's sessions (clears the cookie when it is this one).
#[utoipa::path(
    delete,
    path = "/api/v1/auth/sessions/{id}",
    tag = "auth",
    security(("token" = ["admin"]), ("session" = [], "csrf" = [])),
    params(("id" = String, Path, description = "The session's id, as listed.")),
    responses(
        (status = 204, description = "Ended."),
        (status = 404, description = "- `not_found`: no such session of the caller's."),
    ),
)]
async fn end_session(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientMeta,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require_credentials_access()?;
    let entry = audit(&state, Some(caller.user_id), "auth.session_revoke", &client)
        .target(format!("user:{}", caller.user_id))
        .detail(serde_json::json!({ "session": short_id(&id) }));
    // Scoped by user: another user's session id is "not found".
    let deleted = state.runtime.store.delete_session(caller.user_id, &id, &entry).await;
    state.credentials.forget_session(&id);
    if !deleted.map_err(AuthError::from)? {
        return Err(ApiError::not_found("session"));
    }
    if caller.session_id() == Some(id.as_str()) {
        let cookie = auth::clear_session_cookie(state.config.server.secure_cookies);
        return Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response());
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SignupRequest {
    /// 1 to 64 ASCII letters, digits, `.`, `_` or `-`.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    username: String,
    /// At least 12 characters.
    #[schema(min_length = 12)]
    password: String,
}

/// Open sign-up: creates a trader (who starts with no accounts). Off unless
/// `auth.open_signup`; attempts count against the client IP like failed
/// sign-ins, so one client cannot create users in bulk.
#[utoipa::path(
    post,
    path = "/api/v1/auth/signup",
    tag = "auth",
    request_body = SignupRequest,
    responses(
        (status = 201, description = "The new user (a trader).", body = UserView),
        (status = 403, description = "- `signup_disabled`: `auth.open_signup` is off.\n- `csrf_failed`: sent from a foreign `Origin`."),
        (status = 409, description = "- `username_taken`: that user name is taken."),
        (status = 429, description = "- `rate_limited`: too many sign-ups from this IP; retry after `Retry-After` seconds."),
    ),
)]
async fn signup(
    State(state): State<AppState>,
    Extension(throttle): Extension<Arc<LoginThrottle>>,
    client: ClientMeta,
    headers: HeaderMap,
    BodyJson(body): BodyJson<SignupRequest>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    if !state.config.auth.open_signup {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "signup_disabled",
            "sign-up is closed; ask an admin for an account",
        ));
    }
    auth::check_origin(&headers, &state.config)?;
    auth::check_username(&body.username)?;
    auth::check_new_password("password", &body.password)?;
    let keys: Vec<String> = client.ip.iter().map(|ip| format!("signup:{ip}")).collect();
    let limit = state.config.auth.login_attempts_per_minute;
    throttle.check(&keys, limit, Instant::now()).map_err(ApiError::too_many_requests)?;
    throttle.record_failure(&keys, Instant::now());

    let hash = auth::hash_password_async(body.password).await?;
    let role = Role::Trader;
    let entry = audit(&state, None, "user.signup", &client)
        .detail(serde_json::json!({ "username": body.username, "role": role }));
    let new = NewUser {
        username: &body.username,
        password_hash: &hash,
        role,
        password_change_required: false,
        created: state.runtime.now(),
    };
    match state.runtime.store.create_user(&new, &entry).await.map_err(AuthError::from)? {
        Some(user) => Ok((StatusCode::CREATED, Json(UserView::from(&user)))),
        None => Err(ApiError::conflict("username_taken", "that user name is taken").with_field("username")),
    }
}
