//! Who may do what: users, their sessions and API tokens, the audit log, and
//! which user owns which trading account.
//!
//! The store keeps credentials only as hashes: a session row's id is the
//! SHA-256 of the cookie's secret, a token row keeps the SHA-256 of the
//! token's secret, a user keeps an argon2id PHC string. Hashing and checking
//! are the server's job; the store never sees a secret.
//!
//! Every method that changes users, sessions or tokens takes the
//! [`AuditEntry`] describing the change and writes it in the same
//! transaction, so a change without its audit record (or the reverse) cannot
//! exist. Queries about one user's things take that user's id and match on
//! it, so a caller cannot reach another user's session or token by id.

use std::fmt;
use std::str::FromStr;

use model::Timestamp;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::{AccountId, AccountRow, Backend, Store, StoreError, from_i64, is_unique_violation, ns, parse_text};

/// A user's id in the store.
pub type UserId = i64;
/// An API token's id (the public part of the token).
pub type TokenId = i64;
/// An audit record's id; newer records have larger ids.
pub type AuditId = i64;

/// How long a session or token's "last seen" time may lag: touching the row
/// on every request would turn every read into a write.
const TOUCH_EVERY_NS: i64 = 60 * 1_000_000_000;

// ---------------------------------------------------------------------------
// Roles and scopes

/// What a user is allowed to do, at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including managing users and reading the audit log.
    Admin,
    /// Reads and trades their own accounts.
    Trader,
    /// Reads their own accounts.
    Viewer,
}

impl Role {
    pub const ALL: [Self; 3] = [Self::Admin, Self::Trader, Self::Viewer];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Trader => "trader",
            Self::Viewer => "viewer",
        }
    }

    /// The scopes a session of this role carries, and the most a token of a
    /// user with this role can have.
    #[must_use]
    pub const fn scopes(self) -> Scopes {
        match self {
            Self::Admin => Scopes::ALL,
            Self::Trader => Scopes(Scope::Read.bit() | Scope::Trade.bit()),
            Self::Viewer => Scopes(Scope::Read.bit()),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A word that is not a role or scope; its message lists the accepted ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} '{text}'; expected one of: {expected}")]
pub struct UnknownName {
    pub what: &'static str,
    pub text: String,
    pub expected: &'static str,
}

impl FromStr for Role {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| UnknownName {
            what: "role",
            text: s.to_string(),
            expected: "admin, trader, viewer",
        })
    }
}

/// One permission an API call can require.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Read accounts, orders, market data.
    Read,
    /// Place and cancel orders, run bots.
    Trade,
    /// Manage users, read the audit log.
    Admin,
}

impl Scope {
    pub const ALL: [Self; 3] = [Self::Read, Self::Trade, Self::Admin];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Trade => "trade",
            Self::Admin => "admin",
        }
    }

    const fn bit(self) -> u8 {
        match self {
            Self::Read => 1,
            Self::Trade => 2,
            Self::Admin => 4,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| UnknownName {
            what: "scope",
            text: s.to_string(),
            expected: "read, trade, admin",
        })
    }
}

/// A set of scopes. Stored as `read,trade`; serialized as `["read", "trade"]`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Scopes(u8);

impl Scopes {
    pub const NONE: Self = Self(0);
    pub const ALL: Self = Self(1 | 2 | 4);

    #[must_use]
    pub const fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    #[must_use]
    pub const fn with(self, scope: Scope) -> Self {
        Self(self.0 | scope.bit())
    }

    /// The scopes in both sets.
    #[must_use]
    pub const fn intersection(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    #[must_use]
    pub const fn is_subset_of(self, other: Self) -> bool {
        self.0 & !other.0 == 0
    }

    #[must_use]
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The scopes in a fixed order (read, trade, admin).
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        iter.into_iter().fold(Self::NONE, Self::with)
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, scope) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(scope.as_str())?;
        }
        Ok(())
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scopes({self})")
    }
}

impl FromStr for Scopes {
    type Err = UnknownName;

    /// `read,trade` (the empty string is the empty set).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split(',').map(str::trim).filter(|p| !p.is_empty()).map(Scope::from_str).collect()
    }
}

impl Serialize for Scopes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Scopes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Vec::<Scope>::deserialize(d)?.into_iter().collect())
    }
}

/// An array of distinct scopes, as serialized.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Scopes {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ArrayBuilder::new()
            .items(<Scope as utoipa::PartialSchema>::schema())
            .unique_items(true)
            .examples([serde_json::json!(["read", "trade"])])
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Scopes {}

// ---------------------------------------------------------------------------
// Rows

/// A user as stored. `Debug` leaves the password hash out.
#[derive(Clone, PartialEq, Eq)]
pub struct UserRow {
    pub id: UserId,
    pub username: String,
    /// argon2id PHC string (`$argon2id$v=19$...`).
    pub password_hash: String,
    pub role: Role,
    pub disabled: bool,
    /// The password was generated for the first start; the user should pick one.
    pub password_change_required: bool,
    pub created: Timestamp,
}

impl fmt::Debug for UserRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserRow")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("role", &self.role)
            .field("disabled", &self.disabled)
            .field("password_change_required", &self.password_change_required)
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

/// A user to create.
#[derive(Debug, Clone, Copy)]
pub struct NewUser<'a> {
    pub username: &'a str,
    pub password_hash: &'a str,
    pub role: Role,
    pub password_change_required: bool,
    pub created: Timestamp,
}

/// What an admin changes about a user; `None` leaves it as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UserChange {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
}

/// What [`Store::update_user`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserUpdate {
    Updated(UserRow),
    NotFound,
    /// Refused: no enabled admin would be left.
    LastAdmin,
}

/// A signed-in browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// SHA-256 (hex) of the cookie's secret.
    pub id: String,
    pub user_id: UserId,
    /// The value the browser must echo in `X-CSRF-Token` on writes.
    pub csrf_token: String,
    pub created: Timestamp,
    pub expires: Timestamp,
    pub last_seen: Timestamp,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

/// A session to create.
#[derive(Debug, Clone, Copy)]
pub struct NewSession<'a> {
    pub id: &'a str,
    pub user_id: UserId,
    pub csrf_token: &'a str,
    pub created: Timestamp,
    pub expires: Timestamp,
    pub user_agent: Option<&'a str>,
    pub ip: Option<&'a str>,
}

/// An API token as stored (its hash stays in the store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub id: TokenId,
    pub user_id: UserId,
    pub name: String,
    pub scopes: Scopes,
    pub created: Timestamp,
    pub expires: Option<Timestamp>,
    pub revoked: Option<Timestamp>,
    pub last_used: Option<Timestamp>,
}

/// A token to create.
#[derive(Debug, Clone, Copy)]
pub struct NewToken<'a> {
    pub user_id: UserId,
    pub name: &'a str,
    /// SHA-256 (hex) of the token's secret.
    pub token_hash: &'a str,
    pub scopes: Scopes,
    pub created: Timestamp,
    pub expires: Option<Timestamp>,
}

/// An audit record to write.
#[derive(Debug, Clone)]
pub struct AuditEntry<'a> {
    pub ts: Timestamp,
    /// Who acted (`None` for an anonymous caller, such as a failed sign-in).
    pub user_id: Option<UserId>,
    /// Dotted verb: `auth.login`, `token.create`, `user.update`.
    pub action: &'a str,
    /// What was acted on (`user:7`, `token:3`). Methods that create or
    /// change one user or token set it to that row themselves.
    pub target: Option<String>,
    /// A JSON object with the particulars. Never a secret.
    pub detail: serde_json::Value,
    pub ip: Option<&'a str>,
}

impl<'a> AuditEntry<'a> {
    /// An entry with no target and an empty detail object.
    #[must_use]
    pub fn new(ts: Timestamp, user_id: Option<UserId>, action: &'a str, ip: Option<&'a str>) -> Self {
        Self { ts, user_id, action, target: None, detail: serde_json::json!({}), ip }
    }

    #[must_use]
    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    #[must_use]
    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }
}

/// An audit record as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditRow {
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub id: AuditId,
    pub ts: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<i64>))]
    pub user_id: Option<UserId>,
    pub action: String,
    pub target: Option<String>,
    pub detail: serde_json::Value,
    pub ip: Option<String>,
}

// ---------------------------------------------------------------------------
// Reading rows

const USER_COLUMNS: &str = "users.id, users.username, users.password_hash, users.role, users.disabled, users.password_change_required, \
     users.created_ns";
const SESSION_COLUMNS: &str = "sessions.id, sessions.user_id, sessions.csrf_token, sessions.created_ns, \
     sessions.expires_ns, sessions.last_seen_ns, sessions.user_agent, sessions.ip";
const TOKEN_COLUMNS: &str = "api_tokens.id, api_tokens.user_id, api_tokens.name, api_tokens.scopes, \
     api_tokens.created_ns, api_tokens.expires_ns, api_tokens.revoked_ns, api_tokens.last_used_ns";
pub(crate) const AUDIT_INSERT: &str =
    "INSERT INTO audit_log (ts_ns, user_id, action, target, detail, ip) VALUES ($1, $2, $3, $4, $5, $6)";

type UserTuple = (i64, String, String, String, bool, bool, i64);
type SessionTuple = (String, i64, String, i64, i64, i64, Option<String>, Option<String>);
type TokenTuple = (i64, i64, String, String, i64, Option<i64>, Option<i64>, Option<i64>);

/// Reads the user columns starting at `$at` from a row, as a [`UserTuple`].
macro_rules! user_at {
    ($row:expr, $at:expr) => {
        row_tuple!($row, $at; 0 1 2 3 4 5 6)
    };
}

macro_rules! session_at {
    ($row:expr, $at:expr) => {
        row_tuple!($row, $at; 0 1 2 3 4 5 6 7)
    };
}

macro_rules! token_at {
    ($row:expr, $at:expr) => {
        row_tuple!($row, $at; 0 1 2 3 4 5 6 7)
    };
}

fn user_from(t: UserTuple) -> Result<UserRow, StoreError> {
    Ok(UserRow {
        id: t.0,
        username: t.1,
        password_hash: t.2,
        role: parse_text(&t.3, "user role")?,
        disabled: t.4,
        password_change_required: t.5,
        created: Timestamp::from_nanos(t.6),
    })
}

fn session_from(t: SessionTuple) -> SessionRow {
    SessionRow {
        id: t.0,
        user_id: t.1,
        csrf_token: t.2,
        created: Timestamp::from_nanos(t.3),
        expires: Timestamp::from_nanos(t.4),
        last_seen: Timestamp::from_nanos(t.5),
        user_agent: t.6,
        ip: t.7,
    }
}

fn token_from(t: TokenTuple) -> Result<TokenRow, StoreError> {
    Ok(TokenRow {
        id: t.0,
        user_id: t.1,
        name: t.2,
        scopes: parse_text(&t.3, "token scopes")?,
        created: Timestamp::from_nanos(t.4),
        expires: t.5.map(Timestamp::from_nanos),
        revoked: t.6.map(Timestamp::from_nanos),
        last_used: t.7.map(Timestamp::from_nanos),
    })
}

pub(crate) fn detail_text(entry: &AuditEntry<'_>) -> Result<String, StoreError> {
    serde_json::to_string(&entry.detail)
        .map_err(|e| StoreError::Corrupt { what: "audit detail", detail: e.to_string() })
}

impl Store {
    // -- users ---------------------------------------------------------------

    /// How many users exist (disabled ones included).
    pub async fn user_count(&self) -> Result<u64, StoreError> {
        let n: i64 =
            on_pool!(self, |pool| sqlx::query("SELECT COUNT(*) FROM users").fetch_one(pool).await?.try_get(0)?);
        from_i64(n, "user count")
    }

    /// Creates a user and records `audit` (its target set to the new user).
    /// `None` when the username is taken, ignoring case.
    pub async fn create_user(&self, user: &NewUser<'_>, audit: &AuditEntry<'_>) -> Result<Option<UserRow>, StoreError> {
        let sql = "INSERT INTO users (username, password_hash, role, disabled, password_change_required, created_ns) \
                   VALUES ($1, $2, $3, $4, $5, $6) RETURNING id";
        let detail = detail_text(audit)?;
        let result: Result<i64, sqlx::Error> = on_pool!(self, |pool| async {
            let mut tx = pool.begin().await?;
            let id: i64 = sqlx::query(sql)
                .bind(user.username)
                .bind(user.password_hash)
                .bind(user.role.as_str())
                .bind(false)
                .bind(user.password_change_required)
                .bind(ns(user.created))
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
            insert_audit!(tx, audit, format!("user:{id}"), &detail);
            tx.commit().await?;
            Ok(id)
        }
        .await);
        match result {
            Ok(id) => Ok(Some(UserRow {
                id,
                username: user.username.to_string(),
                password_hash: user.password_hash.to_string(),
                role: user.role,
                disabled: false,
                password_change_required: user.password_change_required,
                created: user.created,
            })),
            Err(e) if is_unique_violation(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn user(&self, id: UserId) -> Result<Option<UserRow>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        let row: Option<UserTuple> = on_pool!(self, |pool| {
            match sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await? {
                Some(r) => Some(user_at!(r, 0)),
                None => None,
            }
        });
        row.map(user_from).transpose()
    }

    /// The user with this name, ignoring ASCII case.
    pub async fn user_by_name(&self, username: &str) -> Result<Option<UserRow>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE lower(username) = lower($1)");
        let row: Option<UserTuple> = on_pool!(self, |pool| {
            match sqlx::query(sqlx::AssertSqlSafe(sql)).bind(username).fetch_optional(pool).await? {
                Some(r) => Some(user_at!(r, 0)),
                None => None,
            }
        });
        row.map(user_from).transpose()
    }

    /// Every user, oldest first.
    pub async fn users(&self) -> Result<Vec<UserRow>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY id");
        let rows: Vec<UserTuple> = on_pool!(self, |pool| {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(pool).await?;
            rows.iter().map(|r| Ok(user_at!(r, 0))).collect::<Result<Vec<_>, sqlx::Error>>()?
        });
        rows.into_iter().map(user_from).collect()
    }

    /// Changes a user's role or disabled flag and records `audit`. Disabling
    /// also ends the user's sessions. Refuses (and changes nothing) when it
    /// would leave no enabled admin.
    pub async fn update_user(
        &self,
        id: UserId,
        change: UserChange,
        audit: &AuditEntry<'_>,
    ) -> Result<UserUpdate, StoreError> {
        /// What happened inside the transaction.
        enum Outcome {
            Updated(UserTuple),
            NotFound,
            LastAdmin,
        }
        let before = "SELECT role, disabled FROM users WHERE id = $1";
        let update = format!(
            "UPDATE users SET role = COALESCE($2, role), disabled = COALESCE($3, disabled) WHERE id = $1 \
             RETURNING {USER_COLUMNS}"
        );
        let admins = "SELECT COUNT(*) FROM users WHERE role = $1 AND disabled = $2";
        let detail = detail_text(audit)?;
        let role = change.role.map(Role::as_str);
        let outcome = on_pool!(self, |pool| async {
            let mut tx = pool.begin().await?;
            let Some(row) = sqlx::query(before).bind(id).fetch_optional(&mut *tx).await? else {
                tx.rollback().await?;
                return Ok::<_, sqlx::Error>(Outcome::NotFound);
            };
            let (old_role, old_disabled): (String, bool) = (row.try_get(0)?, row.try_get(1)?);
            let row = sqlx::query(sqlx::AssertSqlSafe(update))
                .bind(id)
                .bind(role)
                .bind(change.disabled)
                .fetch_one(&mut *tx)
                .await?;
            let user: UserTuple = user_at!(row, 0);
            let was_admin = old_role == Role::Admin.as_str() && !old_disabled;
            let is_admin = user.3 == Role::Admin.as_str() && !user.4;
            if was_admin && !is_admin {
                let left: i64 =
                    sqlx::query(admins).bind(Role::Admin.as_str()).bind(false).fetch_one(&mut *tx).await?.try_get(0)?;
                if left == 0 {
                    // Rolled back now, not when the dropped transaction's
                    // connection is next used: on SQLite the update holds the
                    // write lock, and the next writer would find it busy.
                    tx.rollback().await?;
                    return Ok(Outcome::LastAdmin);
                }
            }
            if change.disabled == Some(true) {
                sqlx::query("DELETE FROM sessions WHERE user_id = $1").bind(id).execute(&mut *tx).await?;
            }
            insert_audit!(tx, audit, format!("user:{id}"), &detail);
            tx.commit().await?;
            Ok(Outcome::Updated(user))
        }
        .await)?;
        match outcome {
            Outcome::Updated(user) => Ok(UserUpdate::Updated(user_from(user)?)),
            Outcome::NotFound => Ok(UserUpdate::NotFound),
            Outcome::LastAdmin => Ok(UserUpdate::LastAdmin),
        }
    }

    /// Replaces a user's password hash, clears `password_change_required`,
    /// ends every session of the user but `keep_session`, and records `audit`.
    pub async fn set_password(
        &self,
        id: UserId,
        password_hash: &str,
        keep_session: Option<&str>,
        audit: &AuditEntry<'_>,
    ) -> Result<bool, StoreError> {
        let update = "UPDATE users SET password_hash = $2, password_change_required = $3 WHERE id = $1";
        let detail = detail_text(audit)?;
        let found = on_pool!(self, |pool| async {
            let mut tx = pool.begin().await?;
            let updated = sqlx::query(update).bind(id).bind(password_hash).bind(false).execute(&mut *tx).await?;
            if updated.rows_affected() == 0 {
                tx.rollback().await?;
                return Ok::<_, sqlx::Error>(false);
            }
            match keep_session {
                Some(keep) => {
                    sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND id <> $2")
                        .bind(id)
                        .bind(keep)
                        .execute(&mut *tx)
                        .await?
                }
                None => sqlx::query("DELETE FROM sessions WHERE user_id = $1").bind(id).execute(&mut *tx).await?,
            };
            insert_audit!(tx, audit, audit.target.as_deref(), &detail);
            tx.commit().await?;
            Ok(true)
        }
        .await)?;
        Ok(found)
    }

    // -- sessions ------------------------------------------------------------

    /// Stores a new session and records `audit`.
    pub async fn create_session(&self, session: &NewSession<'_>, audit: &AuditEntry<'_>) -> Result<(), StoreError> {
        let sql = "INSERT INTO sessions (id, user_id, csrf_token, created_ns, expires_ns, last_seen_ns, user_agent, ip) \
                   VALUES ($1, $2, $3, $4, $5, $4, $6, $7)";
        let detail = detail_text(audit)?;
        on_pool!(self, |pool| async {
            let mut tx = pool.begin().await?;
            sqlx::query(sql)
                .bind(session.id)
                .bind(session.user_id)
                .bind(session.csrf_token)
                .bind(ns(session.created))
                .bind(ns(session.expires))
                .bind(session.user_agent)
                .bind(session.ip)
                .execute(&mut *tx)
                .await?;
            insert_audit!(tx, audit, audit.target.as_deref(), &detail);
            tx.commit().await
        }
        .await)?;
        Ok(())
    }

    /// The session with this id and its user, expired or not (the caller
    /// decides with its clock).
    pub async fn session(&self, id: &str) -> Result<Option<(SessionRow, UserRow)>, StoreError> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS}, {USER_COLUMNS} FROM sessions JOIN users ON users.id = sessions.user_id \
             WHERE sessions.id = $1"
        );
        let row: Option<(SessionTuple, UserTuple)> = on_pool!(self, |pool| {
            match sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await? {
                Some(r) => Some((session_at!(r, 0), user_at!(r, 8))),
                None => None,
            }
        });
        row.map(|(s, u)| Ok((session_from(s), user_from(u)?))).transpose()
    }

    /// Notes that the session was used at `now` (at most once a minute).
    pub async fn touch_session(&self, id: &str, now: Timestamp) -> Result<(), StoreError> {
        let sql = "UPDATE sessions SET last_seen_ns = $2 WHERE id = $1 AND last_seen_ns < $3";
        let stale = ns(now).saturating_sub(TOUCH_EVERY_NS);
        on_pool!(self, |pool| sqlx::query(sql).bind(id).bind(ns(now)).bind(stale).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// The user's sessions that have not expired at `now`, most recently used first.
    pub async fn sessions(&self, user_id: UserId, now: Timestamp) -> Result<Vec<SessionRow>, StoreError> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = $1 AND expires_ns > $2 \
             ORDER BY last_seen_ns DESC, id"
        );
        let rows: Vec<SessionTuple> = on_pool!(self, |pool| {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(user_id).bind(ns(now)).fetch_all(pool).await?;
            rows.iter().map(|r| Ok(session_at!(r, 0))).collect::<Result<Vec<_>, sqlx::Error>>()?
        });
        Ok(rows.into_iter().map(session_from).collect())
    }

    /// Ends one of the user's sessions and records `audit`. `false` (and no
    /// record) when the user has no such session.
    pub async fn delete_session(&self, user_id: UserId, id: &str, audit: &AuditEntry<'_>) -> Result<bool, StoreError> {
        let sql = "DELETE FROM sessions WHERE id = $1 AND user_id = $2";
        let detail = detail_text(audit)?;
        let found = on_pool!(self, |pool| async {
            let mut tx = pool.begin().await?;
            let deleted = sqlx::query(sql).bind(id).bind(user_id).execute(&mut *tx).await?;
            if deleted.rows_affected() == 0 {
                tx.rollback().await?;
                return Ok::<_, sqlx::Error>(false);
            }
            insert_audit!(tx, audit, audit.target.as_deref(), &detail);
            tx.commit().await?;
            Ok(true)
        }
        .await)?;
        Ok(found)
    }

    /// Deletes sessions that expired before `now`; returns how many.
    pub async fn delete_expired_sessions(&self, now: Timestamp) -> Result<u64, StoreError> {
        let sql = "DELETE FROM sessions WHERE expires_ns <= $1";
        let done = on_pool!(self, |pool| sqlx::query(sql).bind(ns(now)).execute(pool).await?.rows_affected());
        Ok(done)
    }

    // -- API tokens ----------------------------------------------------------

    /// Stores a token and records `audit` (its target set to the new token).
    pub async fn create_token(&self, token: &NewToken<'_>, audit: &AuditEntry<'_>) -> Result<TokenRow, StoreError> {
        let sql = "INSERT INTO api_tokens (user_id, name, token_hash, scopes, created_ns, expires_ns) \
                   VALUES ($1, $2, $3, $4, $5, $6) RETURNING id";
        let detail = detail_text(audit)?;
        let scopes = token.scopes.to_string();
        let id: i64 = on_pool!(self, |pool| async {
            let mut tx = pool.begin().await?;
            let id: i64 = sqlx::query(sql)
                .bind(token.user_id)
                .bind(token.name)
                .bind(token.token_hash)
                .bind(&scopes)
                .bind(ns(token.created))
                .bind(token.expires.map(ns))
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
            insert_audit!(tx, audit, format!("token:{id}"), &detail);
            tx.commit().await?;
            Ok::<_, sqlx::Error>(id)
        }
        .await)?;
        Ok(TokenRow {
            id,
            user_id: token.user_id,
            name: token.name.to_string(),
            scopes: token.scopes,
            created: token.created,
            expires: token.expires,
            revoked: None,
            last_used: None,
        })
    }

    /// The token whose secret hashes to `token_hash`, with its user,
    /// whatever its state (the caller checks expiry and revocation).
    pub async fn token_by_hash(&self, token_hash: &str) -> Result<Option<(TokenRow, UserRow)>, StoreError> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS}, {USER_COLUMNS} FROM api_tokens JOIN users ON users.id = api_tokens.user_id \
             WHERE api_tokens.token_hash = $1"
        );
        let row: Option<(TokenTuple, UserTuple)> = on_pool!(self, |pool| {
            match sqlx::query(sqlx::AssertSqlSafe(sql)).bind(token_hash).fetch_optional(pool).await? {
                Some(r) => Some((token_at!(r, 0), user_at!(r, 8))),
                None => None,
            }
        });
        row.map(|(t, u)| Ok((token_from(t)?, user_from(u)?))).transpose()
    }

    /// The user's tokens, revoked and expired ones included, newest first.
    pub async fn tokens(&self, user_id: UserId) -> Result<Vec<TokenRow>, StoreError> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE user_id = $1 ORDER BY id DESC");
        let rows: Vec<TokenTuple> = on_pool!(self, |pool| {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(user_id).fetch_all(pool).await?;
            rows.iter().map(|r| Ok(token_at!(r, 0))).collect::<Result<Vec<_>, sqlx::Error>>()?
        });
        rows.into_iter().map(token_from).collect()
    }

    /// Revokes one of the user's tokens at `now` and records `audit`.
    /// Revoking twice keeps the first time. `false` (and no record) when the
    /// user has no such token.
    pub async fn revoke_token(
        &self,
        user_id: UserId,
        id: TokenId,
        now: Timestamp,
        audit: &AuditEntry<'_>,
    ) -> Result<bool, StoreError> {
        let sql = "UPDATE api_tokens SET revoked_ns = COALESCE(revoked_ns, $3) WHERE id = $1 AND user_id = $2";
        let detail = detail_text(audit)?;
        let found = on_pool!(self, |pool| async {
            let mut tx = pool.begin().await?;
            let updated = sqlx::query(sql).bind(id).bind(user_id).bind(ns(now)).execute(&mut *tx).await?;
            if updated.rows_affected() == 0 {
                tx.rollback().await?;
                return Ok::<_, sqlx::Error>(false);
            }
            insert_audit!(tx, audit, format!("token:{id}"), &detail);
            tx.commit().await?;
            Ok(true)
        }
        .await)?;
        Ok(found)
    }

    /// Notes that the token was used at `now` (at most once a minute).
    pub async fn touch_token(&self, id: TokenId, now: Timestamp) -> Result<(), StoreError> {
        let sql =
            "UPDATE api_tokens SET last_used_ns = $2 WHERE id = $1 AND (last_used_ns IS NULL OR last_used_ns < $3)";
        let stale = ns(now).saturating_sub(TOUCH_EVERY_NS);
        on_pool!(self, |pool| sqlx::query(sql).bind(id).bind(ns(now)).bind(stale).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    // -- audit log -----------------------------------------------------------

    /// Records something that changed nothing else (a refused sign-in, a sign-out).
    pub async fn record_audit(&self, entry: &AuditEntry<'_>) -> Result<AuditId, StoreError> {
        let sql = format!("{AUDIT_INSERT} RETURNING id");
        let detail = detail_text(entry)?;
        let id: i64 = on_pool!(self, |pool| sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(ns(entry.ts))
            .bind(entry.user_id)
            .bind(entry.action)
            .bind(entry.target.as_deref())
            .bind(&detail)
            .bind(entry.ip)
            .fetch_one(pool)
            .await?
            .try_get(0)?);
        Ok(id)
    }

    /// Audit records newest first, older than `before` (the last id of the
    /// previous page), at most `limit`.
    pub async fn audit_log(&self, before: Option<AuditId>, limit: u32) -> Result<Vec<AuditRow>, StoreError> {
        let sql = "SELECT id, ts_ns, user_id, action, target, detail, ip FROM audit_log WHERE id < $1 \
                   ORDER BY id DESC LIMIT $2";
        type AuditTuple = (i64, i64, Option<i64>, String, Option<String>, String, Option<String>);
        let rows: Vec<AuditTuple> = on_pool!(self, |pool| {
            let rows =
                sqlx::query(sql).bind(before.unwrap_or(i64::MAX)).bind(i64::from(limit.max(1))).fetch_all(pool).await?;
            rows.iter()
                .map(|r| {
                    Ok((
                        r.try_get(0)?,
                        r.try_get(1)?,
                        r.try_get(2)?,
                        r.try_get(3)?,
                        r.try_get(4)?,
                        r.try_get(5)?,
                        r.try_get(6)?,
                    ))
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()?
        });
        rows.into_iter()
            .map(|(id, ts, user_id, action, target, detail, ip)| {
                Ok(AuditRow {
                    id,
                    ts: Timestamp::from_nanos(ts),
                    user_id,
                    action,
                    target,
                    detail: crate::parse_json(&detail, "audit detail")?,
                    ip,
                })
            })
            .collect()
    }

    // -- account owners ------------------------------------------------------

    /// Makes `user_id` the owner of the account (replacing any owner). For
    /// tools and tests: a running server takes owners as they were when it
    /// loaded the account (the API never changes an owner).
    pub async fn set_account_owner(&self, account: AccountId, user_id: UserId) -> Result<(), StoreError> {
        let sql = "INSERT INTO account_owners (account_id, user_id) VALUES ($1, $2) \
                   ON CONFLICT (account_id) DO UPDATE SET user_id = excluded.user_id";
        on_pool!(self, |pool| sqlx::query(sql).bind(account).bind(user_id).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Creates a trading account owned by `user_id`: both rows in one
    /// transaction, so an account never exists without its owner.
    pub async fn create_owned_account(
        &self,
        name: &str,
        base_currency: model::Currency,
        now: Timestamp,
        user_id: UserId,
    ) -> Result<AccountId, StoreError> {
        let create = "INSERT INTO accounts (name, base_currency, created_ns) VALUES ($1, $2, $3) RETURNING id";
        let own = "INSERT INTO account_owners (account_id, user_id) VALUES ($1, $2)";
        let id: i64 = on_pool!(self, |pool| async {
            let mut tx = pool.begin().await?;
            let id: i64 = sqlx::query(create)
                .bind(name)
                .bind(base_currency.as_str())
                .bind(now.as_nanos())
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
            sqlx::query(own).bind(id).bind(user_id).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok::<i64, sqlx::Error>(id)
        }
        .await)?;
        Ok(id)
    }

    /// The account's owner, if it has one.
    pub async fn account_owner(&self, account: AccountId) -> Result<Option<UserId>, StoreError> {
        let sql = "SELECT user_id FROM account_owners WHERE account_id = $1";
        let owner: Option<i64> = on_pool!(self, |pool| {
            match sqlx::query(sql).bind(account).fetch_optional(pool).await? {
                Some(r) => Some(r.try_get(0)?),
                None => None,
            }
        });
        Ok(owner)
    }

    /// Every account's owner, for loading the accounts at start.
    pub async fn account_owners(&self) -> Result<Vec<(AccountId, UserId)>, StoreError> {
        let sql = "SELECT account_id, user_id FROM account_owners";
        let rows: Vec<(i64, i64)> = on_pool!(self, |pool| {
            let rows = sqlx::query(sql).fetch_all(pool).await?;
            rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect::<Result<Vec<_>, sqlx::Error>>()?
        });
        Ok(rows)
    }

    /// The accounts the user owns, oldest first.
    pub async fn owned_accounts(&self, user_id: UserId) -> Result<Vec<AccountRow>, StoreError> {
        let sql = "SELECT accounts.id, accounts.name, accounts.base_currency, accounts.created_ns FROM accounts \
                   JOIN account_owners ON account_owners.account_id = accounts.id \
                   WHERE account_owners.user_id = $1 ORDER BY accounts.id";
        let rows: Vec<(i64, String, String, i64)> = on_pool!(self, |pool| {
            let rows = sqlx::query(sql).bind(user_id).fetch_all(pool).await?;
            rows.iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
                .collect::<Result<Vec<_>, sqlx::Error>>()?
        });
        rows.into_iter()
            .map(|(id, name, currency, created)| {
                Ok(AccountRow {
                    id,
                    name,
                    base_currency: parse_text(&currency, "account currency")?,
                    created: Timestamp::from_nanos(created),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_as_text_and_json() {
        let cases = [
            ("empty", "", Scopes::NONE),
            ("read", "read", Scopes::NONE.with(Scope::Read)),
            ("two", "read,trade", Role::Trader.scopes()),
            ("all", "read,trade,admin", Scopes::ALL),
        ];
        for (name, text, scopes) in cases {
            assert_eq!(text.parse::<Scopes>(), Ok(scopes), "{name}");
            assert_eq!(scopes.to_string(), text, "{name}");
            let json = serde_json::to_string(&scopes).unwrap_or_default();
            assert_eq!(serde_json::from_str::<Scopes>(&json).ok(), Some(scopes), "{name}");
        }
        let err = "read,fly".parse::<Scopes>().unwrap_err();
        assert!(err.to_string().contains("read, trade, admin"), "{err}");
    }

    #[test]
    fn roles_bound_scopes() {
        assert!(Role::Viewer.scopes().contains(Scope::Read));
        assert!(!Role::Viewer.scopes().contains(Scope::Trade));
        assert!(Role::Trader.scopes().is_subset_of(Role::Admin.scopes()));
        assert!(!Role::Admin.scopes().is_subset_of(Role::Trader.scopes()));
        assert_eq!(Role::Trader.scopes().intersection(Role::Viewer.scopes()), Role::Viewer.scopes());
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("root".parse::<Role>().is_err());
    }
}
