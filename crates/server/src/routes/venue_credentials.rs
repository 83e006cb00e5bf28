//! Venue credentials: link (the secret goes in once and never comes back
//! out), list, unlink. Each user sees only their own; another user's id
//! answers 404. Secrets are sealed under `trading.credentials_key` before
//! they are stored (see [`crate::venue_credentials`]).

use axum::extract::State;
use axum::http::StatusCode;
use model::Timestamp;
use serde::{Deserialize, Serialize};
use store::auth::Scope;
use store::venue_credentials::{CredentialId, NewVenueCredential, VenueCredentialRow};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::audit;
use crate::app::AppState;
use crate::auth::{AuthError, Caller, ClientMeta};
use crate::config::Secret;
use crate::error::Json as BodyJson;
use crate::error::{ApiError, Json, Path};
use crate::venue_credentials::{CredentialsKey, Owner, Venue, VenueSecret, open, seal};

const MAX_LABEL_LEN: usize = 64;
/// Longer than any venue's key, secret, PEM key or token.
const MAX_SECRET_LEN: usize = 8192;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, create)).routes(routes!(unlink))
}

/// A venue credential to link. Binance takes `api_key` with either
/// `api_secret` (HMAC keys) or `private_key` (Ed25519, PKCS#8 PEM);
/// TastyTrade takes `client_id`, `client_secret` and `refresh_token`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct LinkCredential {
    venue: Venue,
    /// Your name for it, 1 to 64 characters, unique per venue.
    label: String,
    /// Binance: `testnet` (default) or `production`; TastyTrade: `sandbox`
    /// (default) or `production`.
    environment: Option<String>,
    #[schema(value_type = Option<String>)]
    api_key: Option<Secret<String>>,
    #[schema(value_type = Option<String>)]
    api_secret: Option<Secret<String>>,
    #[schema(value_type = Option<String>)]
    private_key: Option<Secret<String>>,
    #[schema(value_type = Option<String>)]
    client_id: Option<Secret<String>>,
    #[schema(value_type = Option<String>)]
    client_secret: Option<Secret<String>>,
    #[schema(value_type = Option<String>)]
    refresh_token: Option<Secret<String>>,
}

/// A linked credential as shown: never its secrets.
#[derive(Debug, Serialize, ToSchema)]
struct CredentialView {
    #[schema(value_type = i64)]
    id: CredentialId,
    venue: String,
    label: String,
    environment: String,
    /// The end of the API key or client id, for telling keys apart.
    key_hint: String,
    /// Whether the configured `trading.credentials_key` opens it (false after
    /// the key was changed without `tradecore secrets rotate`).
    readable: bool,
    created_at: Timestamp,
    updated_at: Timestamp,
}

fn view(row: VenueCredentialRow, key: Option<&CredentialsKey>) -> CredentialView {
    let readable = key.is_some_and(|k| open(k, &row).is_ok());
    CredentialView {
        id: row.id,
        venue: row.venue,
        label: row.label,
        environment: row.environment,
        key_hint: row.key_hint,
        readable,
        created_at: row.created,
        updated_at: row.updated,
    }
}

/// Venue secrets are managed from a signed-in session (the dashboard) or
/// with a token that has the `admin` scope, as API tokens are.
fn require_secrets_access(caller: &Caller) -> Result<(), ApiError> {
    caller.require_credentials_access().map_err(|_| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            "linking and unlinking venue credentials needs a signed-in session or a token with the 'admin' scope",
        )
    })
}

fn configured_key(state: &AppState) -> Result<Option<CredentialsKey>, ApiError> {
    state
        .config
        .trading
        .credentials_key
        .as_ref()
        .map(|k| CredentialsKey::parse(k.expose()))
        .transpose()
        .map_err(|e| ApiError::internal(&format!("trading.credentials_key: {e}")))
}

/// A required, non-empty secret field of at most [`MAX_SECRET_LEN`] bytes.
fn required(value: Option<&Secret<String>>, field: &'static str, what: &str) -> Result<String, ApiError> {
    let text = value.map(|v| v.expose().trim()).unwrap_or_default();
    if text.is_empty() {
        return Err(ApiError::invalid(field, format!("{what} is required")));
    }
    if text.len() > MAX_SECRET_LEN || text.chars().any(|c| c.is_control() && c != '\n' && c != '\r') {
        return Err(ApiError::invalid(
            field,
            format!("{what} is not a valid value (too long or with control characters)"),
        ));
    }
    Ok(text.to_string())
}

/// Refuses a field that the venue does not take, so a mistake is not stored silently.
fn absent(value: Option<&Secret<String>>, field: &'static str, venue: Venue) -> Result<(), ApiError> {
    if value.is_some() {
        return Err(ApiError::invalid(field, format!("{} credentials do not take {field}", venue.as_str())));
    }
    Ok(())
}

fn secret_of(body: &LinkCredential) -> Result<VenueSecret, ApiError> {
    match body.venue {
        Venue::Binance => {
            absent(body.client_id.as_ref(), "client_id", body.venue)?;
            absent(body.client_secret.as_ref(), "client_secret", body.venue)?;
            absent(body.refresh_token.as_ref(), "refresh_token", body.venue)?;
            let api_key = required(body.api_key.as_ref(), "api_key", "the API key")?;
            if !api_key.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(ApiError::invalid("api_key", "a Binance API key has only letters and digits"));
            }
            match (&body.api_secret, &body.private_key) {
                (Some(_), Some(_)) => Err(ApiError::invalid(
                    "private_key",
                    "give api_secret (an HMAC key) or private_key (an Ed25519 key), not both",
                )),
                (Some(secret), None) => Ok(VenueSecret::BinanceHmac {
                    api_key,
                    api_secret: required(Some(secret), "api_secret", "the secret")?,
                }),
                (None, Some(pem)) => {
                    let private_key = required(Some(pem), "private_key", "the private key")?;
                    if !(private_key.starts_with("-----BEGIN PRIVATE KEY-----")
                        && private_key.ends_with("-----END PRIVATE KEY-----"))
                    {
                        return Err(ApiError::invalid(
                            "private_key",
                            "an Ed25519 private key in PKCS#8 PEM (-----BEGIN PRIVATE KEY----- ...); the public key is what Binance holds",
                        ));
                    }
                    Ok(VenueSecret::BinanceEd25519 { api_key, private_key })
                }
                (None, None) => Err(ApiError::invalid(
                    "api_secret",
                    "give api_secret (an HMAC key) or private_key (an Ed25519 key)",
                )),
            }
        }
        Venue::Tastytrade => {
            absent(body.api_key.as_ref(), "api_key", body.venue)?;
            absent(body.api_secret.as_ref(), "api_secret", body.venue)?;
            absent(body.private_key.as_ref(), "private_key", body.venue)?;
            Ok(VenueSecret::Tastytrade {
                client_id: required(body.client_id.as_ref(), "client_id", "the OAuth client id")?,
                client_secret: required(body.client_secret.as_ref(), "client_secret", "the OAuth client secret")?,
                refresh_token: required(body.refresh_token.as_ref(), "refresh_token", "the refresh token")?,
            })
        }
    }
}

/// Links a venue credential. Its secrets are encrypted before they are
/// stored and are never returned, by this or any other operation.
#[utoipa::path(
    post,
    path = "/api/v1/venue-credentials",
    tag = "venues",
    operation_id = "link_venue_credential",
    security(("token" = ["admin"]), ("session" = [], "csrf" = [])),
    request_body = LinkCredential,
    responses(
        (status = 201, description = "Linked; the answer holds no secret.", body = CredentialView),
        (status = 403, description = "- `insufficient_scope`: a viewer, or neither a session nor a token with the `admin` scope."),
        (status = 409, description = "- `label_taken`: you already have a credential of that venue under that label.\n- `credentials_key_missing`: the operator has not set `trading.credentials_key`."),
        (status = 422, description = "- `validation_failed`: a bad `label`, `environment` or secret field (`field` names it)."),
    ),
)]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientMeta,
    BodyJson(body): BodyJson<LinkCredential>,
) -> Result<(StatusCode, Json<CredentialView>), ApiError> {
    require_secrets_access(&caller)?;
    caller.require_scope(Scope::Trade)?;
    let label = body.label.trim();
    if label.is_empty() || label.chars().count() > MAX_LABEL_LEN || label.chars().any(char::is_control) {
        return Err(ApiError::invalid("label", format!("give it a name of 1 to {MAX_LABEL_LEN} characters")));
    }
    let environments = body.venue.environments();
    let environment = body.environment.as_deref().map_or(environments[0], str::trim);
    if !environments.contains(&environment) {
        return Err(ApiError::invalid(
            "environment",
            format!("{} environments are {}", body.venue.as_str(), environments.join(" and ")),
        ));
    }
    let secret = secret_of(&body)?;
    let Some(key) = configured_key(&state)? else {
        return Err(ApiError::conflict(
            "credentials_key_missing",
            "venue credentials are stored encrypted, and the operator has not set trading.credentials_key \
             (tradecore secrets new-key makes one)",
        ));
    };
    let venue = body.venue.as_str();
    let owner = Owner { user_id: caller.user_id, venue, label, environment };
    let sealed = seal(&key, &owner, &secret).map_err(|e| ApiError::internal(&e))?;
    let key_hint = secret.key_hint();
    let new = NewVenueCredential {
        user_id: caller.user_id,
        venue,
        label,
        environment,
        key_hint: &key_hint,
        key_id: key.id(),
        sealed: &sealed,
        now: state.runtime.now(),
    };
    let entry = audit(&state, Some(caller.user_id), "venue_credential.link", &client).detail(
        serde_json::json!({ "venue": venue, "label": label, "environment": environment, "key_hint": key_hint }),
    );
    let Some(row) = state.runtime.store.create_venue_credential(&new, &entry).await.map_err(AuthError::from)? else {
        return Err(ApiError::conflict(
            "label_taken",
            format!("you already have a {venue} credential labelled '{label}'"),
        )
        .with_field("label"));
    };
    Ok((StatusCode::CREATED, Json(view(row, Some(&key)))))
}

/// The caller's venue credentials (never their secrets).
#[utoipa::path(
    get,
    path = "/api/v1/venue-credentials",
    tag = "venues",
    operation_id = "list_venue_credentials",
    security(("token" = ["read"]), ("session" = [])),
    responses((status = 200, description = "Linked credentials, oldest first.", body = Vec<CredentialView>)),
)]
async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Vec<CredentialView>>, ApiError> {
    caller.require_scope(Scope::Read)?;
    let key = configured_key(&state)?;
    let rows = state.runtime.store.venue_credentials(caller.user_id).await.map_err(AuthError::from)?;
    Ok(Json(rows.into_iter().map(|r| view(r, key.as_ref())).collect()))
}

/// Unlinks (deletes) one of the caller's venue credentials.
#[utoipa::path(
    delete,
    path = "/api/v1/venue-credentials/{id}",
    tag = "venues",
    operation_id = "unlink_venue_credential",
    security(("token" = ["admin"]), ("session" = [], "csrf" = [])),
    params(("id" = i64, Path, description = "The credential's id.")),
    responses(
        (status = 204, description = "Deleted, with its secrets."),
        (status = 403, description = "- `insufficient_scope`: neither a session nor a token with the `admin` scope."),
        (status = 404, description = "- `not_found`: no such credential of the caller's."),
        (status = 409, description = "- `credential_in_use`: live accounts trade through it."),
    ),
)]
async fn unlink(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientMeta,
    Path(id): Path<CredentialId>,
) -> Result<StatusCode, ApiError> {
    require_secrets_access(&caller)?;
    let users = state.runtime.store.accounts_using_credential(id).await.map_err(AuthError::from)?;
    if !users.is_empty() {
        let ids: Vec<String> = users.iter().map(ToString::to_string).collect();
        return Err(ApiError::conflict(
            "credential_in_use",
            format!("live accounts {} trade through this credential", ids.join(", ")),
        ));
    }
    let entry = audit(&state, Some(caller.user_id), "venue_credential.unlink", &client);
    if !state.runtime.store.delete_venue_credential(caller.user_id, id, &entry).await.map_err(AuthError::from)? {
        return Err(ApiError::not_found("venue credential"));
    }
    Ok(StatusCode::NO_CONTENT)
}
