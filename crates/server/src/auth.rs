//! Who is calling, and what they may do.
//!
//! Two kinds of credentials reach the API:
//!
//! - **Sessions**, for the dashboard: `POST /api/v1/auth/login` sets the
//!   HttpOnly, SameSite=Lax cookie [`SESSION_COOKIE`] holding a random
//!   secret. The store keeps only its SHA-256 (the session id), so a copy of
//!   the database signs nobody in. A session carries every scope its user's
//!   role allows. Because browsers send cookies on their own, every unsafe
//!   request (POST, PUT, PATCH, DELETE) made with a session must echo the
//!   session's CSRF token in [`CSRF_HEADER`], and when it has an `Origin`
//!   header, that origin must be the server's own or one of
//!   `server.public_origins`.
//! - **API tokens**, for programs: `Authorization: Bearer tc_<id>_<secret>`,
//!   shown once at creation and stored as the SHA-256 of the secret. A token
//!   is limited to the scopes chosen when it was made and, at every request,
//!   to what its user's role allows now. Browsers never send it on their own,
//!   so token requests need no CSRF token.
//!
//! Handlers take a [`Caller`] (an axum extractor) and ask it
//! [`Caller::require_scope`] or [`Caller::require_admin`]. Missing or invalid
//! credentials answer 401, valid ones without the right answer 403. Disabled
//! users, expired sessions and expired or revoked tokens are refused at every
//! request, not only at sign-in.
//!
//! Resolved credentials are kept in memory by [`CredentialCache`], so a
//! request costs no database round trip. Every change that could refuse or
//! narrow a cached credential (sign-out, ended sessions, password change,
//! revoked tokens, a user disabled or given another role) goes through this
//! server's handlers, which drop the affected entries before answering, so
//! it takes effect at once on this instance; expiry is checked at every
//! request. With several instances behind a proxy, a change made on another
//! instance reaches this one within [`CACHE_TTL`].
//!
//! Passwords are hashed with argon2id at the OWASP-recommended cost and
//! checked in constant time, off the async threads. Failed sign-ins are
//! throttled per user name and per client IP by [`LoginThrottle`].

use std::collections::{HashMap, VecDeque};

use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum_extra::extract::cookie::CookieJar;
use model::Timestamp;
use serde::Serialize;
use sha2::{Digest, Sha256};
use store::auth::{AuditEntry, NewUser, UserRow};
pub use store::auth::{Role, Scope, Scopes, TokenId, UserId};
use store::{Store, StoreError};

use crate::app::AppState;
use crate::config::Config;
use crate::error::ApiError;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "tc_session";
/// The header a cookie-authenticated write must carry the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// What every API token starts with, so leaked tokens are easy to scan for.
pub const TOKEN_PREFIX: &str = "tc_";
/// Shortest password accepted (NIST SP 800-63B asks for at least 8; we ask more).
pub const MIN_PASSWORD_LEN: usize = 12;
/// Longest password accepted, so nobody makes the server hash megabytes.
pub const MAX_PASSWORD_LEN: usize = 1024;
/// Longest user name.
pub const MAX_USERNAME_LEN: usize = 64;
/// The first admin's user name.
pub const FIRST_ADMIN: &str = "admin";

/// Random bytes in every session secret, CSRF token and token secret.
const SECRET_BYTES: usize = 32;
/// The throttling window for failed sign-ins.
const THROTTLE_WINDOW: Duration = Duration::from_secs(60);
/// Above this many tracked keys the throttle drops the ones with no recent
/// failure, so a stream of made-up user names cannot grow it without bound.
const THROTTLE_PRUNE_AT: usize = 10_000;
/// Longest user agent kept with a session.
const MAX_USER_AGENT_LEN: usize = 256;
/// How often a session's or token's "last used" time is written (see
/// `store::auth`): at most once a minute, not at every request.
const TOUCH_EVERY_NS: i64 = 60 * 1_000_000_000;

/// How long a cached credential is trusted before it is read again. Changes
/// made through this instance drop entries at once; this bounds how stale a
/// change made through another instance can be here.
pub const CACHE_TTL: Duration = Duration::from_secs(5);
/// Most credentials kept in memory (each a few hundred bytes).
const CACHE_CAPACITY: usize = 10_000;

/// Why authentication could not be carried out (not "wrong password": that
/// is an answer, not an error).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("the system random number generator failed: {0}")]
    Random(String),
    #[error("the password hashing task failed: {0}")]
    Task(String),
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        Self::internal(&e)
    }
}

// ---------------------------------------------------------------------------
// Passwords and secrets

/// argon2id with the first OWASP Password Storage Cheat Sheet setting:
/// 19 MiB of memory, 2 passes, 1 lane (the argon2 crate's defaults; a test
/// pins them). Verification reads the cost from the stored hash, so raising
/// it later keeps old hashes working.
fn hasher() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::DEFAULT)
}

/// Hashes a password into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`)
/// with a fresh random salt. CPU-heavy: call [`hash_password_async`] from
/// async code.
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    hasher().hash_password(password.as_bytes()).map(|h| h.to_string()).map_err(|e| AuthError::Hash(e.to_string()))
}

/// Whether `password` matches the PHC string. The final comparison is
/// constant-time; a malformed hash matches nothing.
#[must_use]
pub fn verify_password(password: &str, phc: &str) -> bool {
    hasher().verify_password(password.as_bytes(), phc).is_ok()
}

/// A hash of a random password, checked when a sign-in names no known user
/// so that the answer takes as long as for a real one.
static DUMMY_HASH: LazyLock<Option<String>> =
    LazyLock::new(|| random_hex(16).ok().and_then(|p| hash_password(&p).ok()));

/// Password hashes computed at once. Each takes 19 MiB and a core for tens
/// of milliseconds; without a bound, a burst of sign-ins would fill the
/// blocking pool (hundreds of threads) and the memory with them.
static HASHING: LazyLock<tokio::sync::Semaphore> = LazyLock::new(|| {
    tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, std::num::NonZero::get))
});

async fn hashing_permit() -> Result<tokio::sync::SemaphorePermit<'static>, AuthError> {
    HASHING.acquire().await.map_err(|e| AuthError::Task(e.to_string()))
}

/// [`hash_password`] on the blocking pool.
pub async fn hash_password_async(password: String) -> Result<String, AuthError> {
    let _permit = hashing_permit().await?;
    tokio::task::spawn_blocking(move || hash_password(&password)).await.map_err(|e| AuthError::Task(e.to_string()))?
}

/// [`verify_password`] on the blocking pool. With no hash (no such user) it
/// checks against a dummy hash and answers `false`, taking the same time.
pub async fn verify_password_async(password: String, phc: Option<String>) -> Result<bool, AuthError> {
    let _permit = hashing_permit().await?;
    tokio::task::spawn_blocking(move || match phc {
        Some(phc) => verify_password(&password, &phc),
        None => {
            if let Some(dummy) = DUMMY_HASH.as_deref() {
                let _ = verify_password(&password, dummy);
            }
            false
        }
    })
    .await
    .map_err(|e| AuthError::Task(e.to_string()))
}

/// `bytes` random bytes from the operating system, as lowercase hex.
pub fn random_hex(bytes: usize) -> Result<String, AuthError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| AuthError::Random(e.to_string()))?;
    Ok(to_hex(&buf))
}

/// `bytes` as lowercase hex.
#[must_use]
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// SHA-256 of `text`, as lowercase hex. Session ids and token hashes are
/// this of their secrets: the secrets are 256 random bits, so a fast hash is
/// enough (a slow one would only slow down every request).
#[must_use]
pub fn sha256_hex(text: &str) -> String {
    to_hex(&Sha256::digest(text.as_bytes()))
}

/// Compares two byte strings in time that depends only on their lengths.
#[must_use]
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Splits `tc_<id>_<secret>` into the id and the secret; `None` for anything
/// else.
#[must_use]
pub fn parse_token(text: &str) -> Option<(TokenId, &str)> {
    let rest = text.strip_prefix(TOKEN_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let id: TokenId = id.parse().ok().filter(|id| *id > 0)?;
    let well_formed = secret.len() == SECRET_BYTES * 2 && secret.bytes().all(|b| b.is_ascii_hexdigit());
    well_formed.then_some((id, secret))
}

/// The token string shown to its creator.
#[must_use]
pub fn format_token(id: TokenId, secret: &str) -> String {
    format!("{TOKEN_PREFIX}{id}_{secret}")
}

// ---------------------------------------------------------------------------
// Checks on user input

/// A user name: 1 to 64 ASCII letters, digits, `.`, `_` or `-`. ASCII only,
/// so "the same name ignoring case" means the same in SQLite and PostgreSQL
/// and no look-alike letters can impersonate another user.
pub fn check_username(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_USERNAME_LEN
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "username",
            format!("use 1 to {MAX_USERNAME_LEN} ASCII letters, digits, '.', '_' or '-'"),
        ))
    }
}

/// A new password: between [`MIN_PASSWORD_LEN`] and [`MAX_PASSWORD_LEN`] characters.
pub fn check_new_password(field: &str, password: &str) -> Result<(), ApiError> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_LEN {
        return Err(ApiError::invalid(field, format!("must be at least {MIN_PASSWORD_LEN} characters")));
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(ApiError::invalid(field, format!("must be at most {MAX_PASSWORD_LEN} bytes")));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The caller

/// How a request authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// A dashboard session; `id` is the session's id (the hash of its secret).
    Session { id: String, csrf_token: String, expires: Timestamp },
    /// An API token.
    Token { id: TokenId },
}

/// The authenticated user behind a request.
///
/// Extract it in a handler to require authentication, then check what the
/// handler needs:
///
/// ```ignore
/// async fn place_order(State(state): State<AppState>, caller: Caller, Json(body): Json<NewOrder>)
///     -> Result<Json<Placed>, ApiError> {
///     caller.require_scope(Scope::Trade)?;
///     // ... and only touch accounts `caller.user_id` owns (else 404)
/// }
/// ```
///
/// Extracting it checks the CSRF token and `Origin` of cookie-authenticated
/// writes. It is cached in the request's extensions, so extracting it twice
/// costs one lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: UserId,
    pub username: String,
    pub role: Role,
    /// What this request may do: the role's scopes for a session, the
    /// token's scopes within the role's for a token.
    pub scopes: Scopes,
    pub via: Via,
    /// The user still has a generated password.
    pub password_change_required: bool,
}

impl Caller {
    /// 403 unless the caller has `scope`.
    pub fn require_scope(&self, scope: Scope) -> Result<(), ApiError> {
        if self.scopes.contains(scope) {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                format!("this needs the '{scope}' scope; you have [{}]", self.scopes),
            ))
        }
    }

    /// 403 unless the caller is an admin acting with the admin scope (an
    /// admin's read-only token is not enough).
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.role != Role::Admin {
            return Err(ApiError::forbidden("only admins may do this"));
        }
        self.require_scope(Scope::Admin)
    }

    /// 403 unless the caller may manage their own credentials (sessions,
    /// tokens, password): with a session, or a token with the admin scope. A
    /// leaked bot token cannot mint more tokens or sign its owner out.
    pub fn require_credentials_access(&self) -> Result<(), ApiError> {
        match self.via {
            Via::Session { .. } => Ok(()),
            Via::Token { .. } if self.scopes.contains(Scope::Admin) => Ok(()),
            Via::Token { .. } => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                "managing sessions and tokens needs a signed-in session or a token with the 'admin' scope",
            )),
        }
    }

    #[must_use]
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin && self.scopes.contains(Scope::Admin)
    }

    /// The session id when the caller signed in with a session.
    #[must_use]
    pub fn session_id(&self) -> Option<&str> {
        match &self.via {
            Via::Session { id, .. } => Some(id),
            Via::Token { .. } => None,
        }
    }
}

// ---------------------------------------------------------------------------
// The credential cache

/// A resolved credential: the caller it stands for, and what must still be
/// checked at each use.
#[derive(Debug, Clone)]
struct Cached {
    caller: Caller,
    /// When the session or token expires (checked at every request).
    expires: Option<Timestamp>,
    /// The last "last used" time written to the database (see `TOUCH_EVERY_NS`).
    touched: Timestamp,
    /// When it was read from the database (for [`CACHE_TTL`]).
    loaded: Instant,
}

#[derive(Debug, Default)]
struct CacheInner {
    entries: HashMap<String, Cached>,
    /// Bumped by every invalidation. A lookup that started before an
    /// invalidation may have read the old row: it must not be cached.
    generation: u64,
}

/// Sessions and API tokens resolved to their [`Caller`], by the hash of
/// their secret (never the secret itself). Bounded by `CACHE_CAPACITY`;
/// only valid credentials are cached.
#[derive(Debug, Default)]
pub struct CredentialCache {
    inner: Mutex<CacheInner>,
}

impl CredentialCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// The entry for `key` if it is younger than [`CACHE_TTL`]. When its
    /// "last used" time is due for an update, marks it updated and says so,
    /// so that only one request writes it.
    fn get(&self, key: &str, now: Timestamp, at: Instant) -> Option<(Cached, bool)> {
        let mut inner = self.lock();
        let entry = inner.entries.get_mut(key)?;
        if at.saturating_duration_since(entry.loaded) >= CACHE_TTL {
            inner.entries.remove(key);
            return None;
        }
        let touch = now.as_nanos().saturating_sub(entry.touched.as_nanos()) >= TOUCH_EVERY_NS;
        if touch {
            entry.touched = now;
        }
        Some((entry.clone(), touch))
    }

    /// Caches `entry` unless something was invalidated since `generation`
    /// was read (the entry may then predate that change).
    fn insert(&self, key: String, entry: Cached, generation: u64) {
        let mut inner = self.lock();
        if inner.generation != generation {
            return;
        }
        if inner.entries.len() >= CACHE_CAPACITY && !inner.entries.contains_key(&key) {
            let at = entry.loaded;
            inner.entries.retain(|_, e| at.saturating_duration_since(e.loaded) < CACHE_TTL);
            if inner.entries.len() >= CACHE_CAPACITY {
                // Still full of live entries: start over rather than track
                // recency; each is one database read away.
                inner.entries.clear();
            }
        }
        inner.entries.insert(key, entry);
    }

    fn forget(&self, drop_it: impl Fn(&Caller) -> bool) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.entries.retain(|_, e| !drop_it(&e.caller));
    }

    /// Drops every credential of the user: call after the user's role,
    /// disabled flag or password changed.
    pub fn forget_user(&self, user: UserId) {
        self.forget(|c| c.user_id == user);
    }

    /// Drops a session: call after it was ended.
    pub fn forget_session(&self, id: &str) {
        self.forget(|c| matches!(&c.via, Via::Session { id: s, .. } if s == id));
    }

    /// Drops a token: call after it was revoked.
    pub fn forget_token(&self, id: TokenId) {
        self.forget(|c| c.via == Via::Token { id });
    }

    /// How many credentials are cached.
    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(caller) = parts.extensions.get::<Self>() {
            return Ok(caller.clone());
        }
        let caller = authenticate(parts, state).await?;
        parts.extensions.insert(caller.clone());
        Ok(caller)
    }
}

async fn authenticate(parts: &Parts, state: &AppState) -> Result<Caller, ApiError> {
    authenticate_headers(&parts.method, &parts.headers, state).await
}

/// Checks again the credentials a long-lived connection (a WebSocket) was
/// opened with: a revoked token, an ended session or a disabled user is
/// refused here as on a new request (the credential cache is dropped at
/// once on those changes, so this is usually a memory lookup).
pub async fn recheck(headers: &HeaderMap, state: &AppState) -> Result<Caller, ApiError> {
    authenticate_headers(&Method::GET, headers, state).await
}

async fn authenticate_headers(method: &Method, headers: &HeaderMap, state: &AppState) -> Result<Caller, ApiError> {
    let now = state.runtime.now();
    // A request that sends a token is judged by it alone, even if it also
    // carries a cookie: a program's mistake should not fall back silently.
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        return authenticate_token(state, value, now).await;
    }
    let jar = CookieJar::from_headers(headers);
    let Some(cookie) = jar.get(SESSION_COOKIE) else {
        return Err(ApiError::unauthorized());
    };
    let ended = || ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "the session has ended; sign in again");
    let id = sha256_hex(cookie.value());
    let key = format!("s{id}");
    let cache = &state.credentials;
    let store = &state.runtime.store;
    let (cached, touch) = match cache.get(&key, now, Instant::now()) {
        Some(hit) => hit,
        None => {
            let generation = cache.generation();
            let Some((session, user)) = store.session(&id).await.map_err(AuthError::from)? else {
                return Err(ended());
            };
            if session.expires <= now || user.disabled {
                return Err(ended());
            }
            let touch = now.as_nanos().saturating_sub(session.last_seen.as_nanos()) >= TOUCH_EVERY_NS;
            let caller = Caller {
                user_id: user.id,
                username: user.username,
                role: user.role,
                scopes: user.role.scopes(),
                via: Via::Session { id: session.id, csrf_token: session.csrf_token, expires: session.expires },
                password_change_required: user.password_change_required,
            };
            let touched = if touch { now } else { session.last_seen };
            let entry = Cached { caller, expires: Some(session.expires), touched, loaded: Instant::now() };
            cache.insert(key, entry.clone(), generation);
            (entry, touch)
        }
    };
    if cached.expires.is_some_and(|e| e <= now) {
        return Err(ended());
    }
    let Via::Session { id, csrf_token, .. } = &cached.caller.via else { return Err(ended()) };
    if is_unsafe(method) {
        check_csrf(headers, csrf_token, &state.config)?;
    }
    if touch && let Err(e) = store.touch_session(id, now).await {
        // Only bookkeeping: the request itself is fine.
        tracing::warn!(error = %e, "could not note the session's use");
    }
    Ok(cached.caller)
}

async fn authenticate_token(state: &AppState, value: &HeaderValue, now: Timestamp) -> Result<Caller, ApiError> {
    let invalid = || ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "invalid, expired or revoked API token");
    let text = value.to_str().map_err(|_| invalid())?;
    let (scheme, token) = text.trim().split_once(' ').ok_or_else(invalid)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "use `Authorization: Bearer tc_...`"));
    }
    let (id, secret) = parse_token(token.trim()).ok_or_else(invalid)?;
    let hash = sha256_hex(secret);
    let key = format!("t{hash}");
    let cache = &state.credentials;
    let store = &state.runtime.store;
    let (cached, touch) = match cache.get(&key, now, Instant::now()) {
        Some(hit) => hit,
        None => {
            let generation = cache.generation();
            let Some((row, user)) = store.token_by_hash(&hash).await.map_err(AuthError::from)? else {
                return Err(invalid());
            };
            let expired = row.expires.is_some_and(|e| e <= now);
            if row.id != id || row.revoked.is_some() || expired || user.disabled {
                return Err(invalid());
            }
            let touch = row.last_used.is_none_or(|t| now.as_nanos().saturating_sub(t.as_nanos()) >= TOUCH_EVERY_NS);
            let caller = Caller {
                user_id: user.id,
                username: user.username,
                role: user.role,
                // A demoted user's old tokens lose what the new role does not allow.
                scopes: row.scopes.intersection(user.role.scopes()),
                via: Via::Token { id: row.id },
                password_change_required: user.password_change_required,
            };
            let touched = if touch { now } else { row.last_used.unwrap_or(now) };
            let entry = Cached { caller, expires: row.expires, touched, loaded: Instant::now() };
            cache.insert(key, entry.clone(), generation);
            (entry, touch)
        }
    };
    // The id in the token must be the one its secret belongs to.
    if cached.caller.via != (Via::Token { id }) || cached.expires.is_some_and(|e| e <= now) {
        return Err(invalid());
    }
    if touch && let Err(e) = store.touch_token(id, now).await {
        tracing::warn!(error = %e, token = id, "could not note the token's use");
    }
    Ok(cached.caller)
}

fn is_unsafe(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE)
}

fn csrf_failed(detail: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "csrf_failed", detail)
}

/// The double check for a cookie-authenticated write: the session's CSRF
/// token in [`CSRF_HEADER`] (another site can make the browser send the
/// cookie but cannot read the token), and an allowed `Origin` when present.
fn check_csrf(headers: &HeaderMap, expected: &str, config: &Config) -> Result<(), ApiError> {
    check_origin(headers, config)?;
    let sent = headers.get(CSRF_HEADER).map(HeaderValue::as_bytes).unwrap_or_default();
    if sent.is_empty() {
        return Err(csrf_failed("send the CSRF token from sign-in in the X-CSRF-Token header"));
    }
    if !constant_time_eq(sent, expected.as_bytes()) {
        return Err(csrf_failed("the X-CSRF-Token header does not match this session"));
    }
    Ok(())
}

/// Refuses a request whose `Origin` header names another site. Same origin
/// means the scheme and the `Host` the browser sent; behind a proxy that
/// rewrites `Host`, list the public address in `server.public_origins`.
/// Requests without `Origin` (same-origin GETs, non-browser clients) pass.
pub fn check_origin(headers: &HeaderMap, config: &Config) -> Result<(), ApiError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let refused = || csrf_failed("requests from this origin are not allowed");
    let origin = origin.to_str().map_err(|_| refused())?.trim();
    if config.server.public_origins.iter().any(|o| o.eq_ignore_ascii_case(origin)) {
        return Ok(());
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).ok_or_else(refused)?;
    let same = ["http://", "https://"].iter().any(|scheme| {
        origin.len() == scheme.len() + host.len()
            && origin[..scheme.len()].eq_ignore_ascii_case(scheme)
            && origin[scheme.len()..].eq_ignore_ascii_case(host)
    });
    if same { Ok(()) } else { Err(refused()) }
}

// ---------------------------------------------------------------------------
// Request metadata

/// Where a request came from, for sessions and the audit log. Never fails:
/// the IP is absent when the server runs without connect info (tests using
/// `oneshot`), the user agent when the client sends none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientMeta {
    /// The client's address: the peer's, or behind a proxy listed in
    /// `server.trusted_proxies`, the one it forwarded (see `client_ip`).
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for ClientMeta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let ip = crate::client_ip::of(&parts.extensions).map(|ip| ip.to_string());
        let user_agent = parts.headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(|ua| {
            let mut end = ua.len().min(MAX_USER_AGENT_LEN);
            while !ua.is_char_boundary(end) {
                end -= 1;
            }
            ua[..end].to_string()
        });
        Ok(Self { ip, user_agent })
    }
}

// ---------------------------------------------------------------------------
// Session cookies

/// The `Set-Cookie` value that gives the browser a session. HttpOnly keeps
/// it from scripts; SameSite=Lax keeps other sites' forms and scripts from
/// sending it (top-level navigations still do, and they are GETs).
#[must_use]
pub fn session_cookie(secret: &str, max_age_seconds: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{SESSION_COOKIE}={secret}; Path=/; Max-Age={max_age_seconds}; HttpOnly; SameSite=Lax{secure}")
}

/// The `Set-Cookie` value that removes the session cookie.
#[must_use]
pub fn clear_session_cookie(secure: bool) -> String {
    session_cookie("", 0, secure)
}

// ---------------------------------------------------------------------------
// Login throttling

/// Failed sign-ins per key (a user name, a client IP) over the last minute,
/// in memory. Each instance of the server counts on its own, which bounds
/// guessing per instance; that is enough when the instances are few.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl LoginThrottle {
    /// `Err(seconds to wait)` when any key already has `limit` failures in
    /// the last minute.
    pub fn check(&self, keys: &[String], limit: u32, now: Instant) -> Result<(), u64> {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let mut wait = Duration::ZERO;
        for key in keys {
            let Some(times) = failures.get_mut(key) else { continue };
            forget_old(times, now);
            if times.len() >= limit
                && let Some(oldest) = times.front()
            {
                wait = wait.max(THROTTLE_WINDOW.saturating_sub(now.saturating_duration_since(*oldest)));
            }
        }
        if wait.is_zero() {
            Ok(())
        } else {
            // Round up: "retry after 0 seconds" would invite an immediate retry.
            Err(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
        }
    }

    /// Counts a failed attempt against every key.
    pub fn record_failure(&self, keys: &[String], now: Instant) {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        if failures.len() >= THROTTLE_PRUNE_AT {
            failures.retain(|_, times| {
                forget_old(times, now);
                !times.is_empty()
            });
        }
        for key in keys {
            let times = failures.entry(key.clone()).or_default();
            forget_old(times, now);
            times.push_back(now);
        }
    }

    /// Forgets a key's failures (a user name after a successful sign-in).
    pub fn clear(&self, key: &str) {
        self.failures.lock().unwrap_or_else(PoisonError::into_inner).remove(key);
    }
}

fn forget_old(times: &mut VecDeque<Instant>, now: Instant) {
    while times.front().is_some_and(|t| now.saturating_duration_since(*t) >= THROTTLE_WINDOW) {
        times.pop_front();
    }
}

// ---------------------------------------------------------------------------
// Views

/// A user as the API shows it (never the password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct UserView {
    #[schema(value_type = i64)]
    pub id: UserId,
    pub username: String,
    pub role: Role,
    pub disabled: bool,
    pub password_change_required: bool,
    pub created_at: Timestamp,
}

impl From<&UserRow> for UserView {
    fn from(u: &UserRow) -> Self {
        Self {
            id: u.id,
            username: u.username.clone(),
            role: u.role,
            disabled: u.disabled,
            password_change_required: u.password_change_required,
            created_at: u.created,
        }
    }
}

// ---------------------------------------------------------------------------
// First start

/// Creates the first admin when the database has no user at all.
///
/// The password is `auth.admin_password` when set; otherwise a random
/// one-time password is generated and returned, for `serve` to print once,
/// and the user is marked `password_change_required` (so is a configured
/// password shorter than [`MIN_PASSWORD_LEN`]). Returns `None` when users
/// already exist (including when another instance created the admin first)
/// or the configured password was used.
pub async fn ensure_admin(store: &Store, config: &Config) -> Result<Option<String>, AuthError> {
    if store.user_count().await? > 0 {
        return Ok(None);
    }
    let (password, generated) = match &config.auth.admin_password {
        Some(secret) => (secret.expose().clone(), false),
        None => (random_hex(16)?, true),
    };
    let change_required = generated || password.chars().count() < MIN_PASSWORD_LEN;
    let hash = hash_password_async(password.clone()).await?;
    let now = crate::accounts::wall_clock();
    let audit = AuditEntry::new(now, None, "user.create", None).detail(serde_json::json!({
        "username": FIRST_ADMIN,
        "role": Role::Admin,
        "reason": "first start",
        "generated_password": generated,
    }));
    let user = NewUser {
        username: FIRST_ADMIN,
        password_hash: &hash,
        role: Role::Admin,
        password_change_required: change_required,
        created: now,
    };
    let created = store.create_user(&user, &audit).await?;
    Ok(if created.is_some() && generated { Some(password) } else { None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_with_owasp_argon2id_and_verify() {
        let params = Params::DEFAULT;
        assert_eq!((params.m_cost(), params.t_cost(), params.p_cost()), (19 * 1024, 2, 1));
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("correct horse batterz", &hash));
        assert!(!verify_password("correct horse battery", "not a hash"));
        assert_ne!(hash_password("correct horse battery").unwrap(), hash, "salted");
    }

    #[test]
    fn secrets_are_random_hex() {
        let a = random_hex(SECRET_BYTES).unwrap();
        let b = random_hex(SECRET_BYTES).unwrap();
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert_eq!(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn tokens_parse_only_in_their_format() {
        let secret = "ab".repeat(32);
        let cases = [
            ("good", format_token(7, &secret), Some(7)),
            ("no prefix", format!("7_{secret}"), None),
            ("zero id", format!("tc_0_{secret}"), None),
            ("short secret", "tc_7_abcd".to_string(), None),
            ("not hex", format!("tc_7_{}", "zz".repeat(32)), None),
            ("no secret", "tc_7".to_string(), None),
        ];
        for (name, text, id) in cases {
            assert_eq!(parse_token(&text).map(|(id, _)| id), id, "{name}");
        }
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn usernames_and_passwords_are_checked() {
        for good in ["admin", "Alice.B", "bot_1-x"] {
            assert!(check_username(good).is_ok(), "{good}");
        }
        for bad in ["", "a b", "ädmin", "a/b", &"x".repeat(65)] {
            assert_eq!(check_username(bad).unwrap_err().field.as_deref(), Some("username"), "{bad}");
        }
        assert!(check_new_password("password", "short").is_err());
        assert!(check_new_password("password", "twelve chars").is_ok());
        assert!(check_new_password("password", &"x".repeat(MAX_PASSWORD_LEN + 1)).is_err());
    }

    #[test]
    fn throttle_counts_failures_per_key_within_a_minute() {
        let throttle = LoginThrottle::default();
        let start = Instant::now();
        let keys = ["user:a".to_string(), "ip:1".to_string()];
        for _ in 0..3 {
            assert_eq!(throttle.check(&keys, 3, start), Ok(()));
            throttle.record_failure(&keys, start);
        }
        assert_eq!(throttle.check(&keys, 3, start), Err(60));
        // Another user from the same IP is refused too; the same user from elsewhere as well.
        assert!(throttle.check(&["user:b".to_string(), "ip:1".to_string()], 3, start).is_err());
        assert!(throttle.check(&["user:a".to_string(), "ip:2".to_string()], 3, start).is_err());
        let later = start + Duration::from_millis(59_500);
        assert_eq!(throttle.check(&keys, 3, later), Err(1));
        assert_eq!(throttle.check(&keys, 3, start + THROTTLE_WINDOW), Ok(()));
        throttle.clear("user:a");
        assert!(throttle.check(&["user:a".to_string()], 3, start).is_ok());
    }

    #[test]
    fn origins_are_same_origin_or_listed() {
        let mut config = Config::default();
        config.server.public_origins = vec!["https://trade.example.com".to_string()];
        let headers = |origin: Option<&str>| {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
            if let Some(o) = origin {
                h.insert(header::ORIGIN, HeaderValue::from_str(o).unwrap());
            }
            h
        };
        let cases = [
            ("none", None, true),
            ("same http", Some("http://127.0.0.1:8080"), true),
            ("same https", Some("https://127.0.0.1:8080"), true),
            ("listed", Some("https://TRADE.example.com"), true),
            ("other port", Some("http://127.0.0.1:9090"), false),
            ("foreign", Some("https://evil.example"), false),
            ("null", Some("null"), false),
        ];
        for (name, origin, allowed) in cases {
            assert_eq!(check_origin(&headers(origin), &config).is_ok(), allowed, "{name}");
        }
    }

    #[test]
    fn scopes_are_required() {
        let caller = Caller {
            user_id: 1,
            username: "a".into(),
            role: Role::Admin,
            scopes: Scopes::NONE.with(Scope::Read),
            via: Via::Token { id: 1 },
            password_change_required: false,
        };
        assert!(caller.require_scope(Scope::Read).is_ok());
        let err = caller.require_scope(Scope::Trade).unwrap_err();
        assert_eq!((err.status, err.code), (StatusCode::FORBIDDEN, "insufficient_scope"));
        assert!(caller.require_admin().is_err(), "an admin's read token is not admin");
        assert!(caller.require_credentials_access().is_err());
        let session = Caller {
            via: Via::Session { id: "x".into(), csrf_token: "y".into(), expires: Timestamp::from_secs(1) },
            scopes: Role::Admin.scopes(),
            ..caller
        };
        assert!(session.require_admin().is_ok());
        assert!(session.require_credentials_access().is_ok());
    }
}
