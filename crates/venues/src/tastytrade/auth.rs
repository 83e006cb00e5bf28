//! OAuth2 for TastyTrade: a refresh token and the client secret are exchanged
//! at `POST /oauth/token` (`grant_type=refresh_token`, JSON body) for an access
//! token valid 15 minutes, sent as `Authorization: Bearer <token>`.
//!
//! [`TokenManager`] keeps the current access token, refreshes it a margin
//! before it expires, and lets the client drop a token the server refused
//! (HTTP 401) so the next call fetches a fresh one. Refreshes are serialized:
//! concurrent callers wait for one refresh instead of each starting their own.

use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::error::TastyError;

/// The OAuth client secret and refresh token (and optionally the client id,
/// which TastyTrade checks when sent). `Debug` never shows the secrets.
#[derive(Clone)]
pub struct OAuthCredentials {
    client_secret: String,
    refresh_token: String,
    client_id: Option<String>,
}

impl OAuthCredentials {
    /// Both values are trimmed; empty ones are refused.
    pub fn new(client_secret: &str, refresh_token: &str) -> Result<Self, TastyError> {
        let (secret, refresh) = (client_secret.trim(), refresh_token.trim());
        if secret.is_empty() || refresh.is_empty() {
            return Err(TastyError::Config("client secret and refresh token must not be empty".into()));
        }
        Ok(Self { client_secret: secret.to_string(), refresh_token: refresh.to_string(), client_id: None })
    }

    /// Also send the client id (TastyTrade: optional; if sent it must match).
    #[must_use]
    pub fn with_client_id(mut self, client_id: &str) -> Self {
        let id = client_id.trim();
        self.client_id = (!id.is_empty()).then(|| id.to_string());
        self
    }

    #[must_use]
    pub fn client_id(&self) -> Option<&str> {
        self.client_id.as_deref()
    }
}

impl fmt::Debug for OAuthCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthCredentials")
            .field("client_secret", &"<redacted>")
            .field("refresh_token", &"<redacted>")
            .field("client_id", &self.client_id)
            .finish()
    }
}

/// A bearer access token. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(String);

impl AccessToken {
    /// The token text, for the `Authorization` header.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

#[derive(Serialize)]
struct TokenRequest<'a> {
    grant_type: &'static str,
    refresh_token: &'a str,
    client_secret: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<&'a str>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

struct Cached {
    token: AccessToken,
    /// When to fetch a new one (expiry minus the margin).
    refresh_at: Instant,
    expires_at: Instant,
}

/// Documented lifetime of an access token, used when the response has no
/// `expires_in`.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// Holds the credentials and the current access token.
pub struct TokenManager {
    credentials: OAuthCredentials,
    refresh_margin: Duration,
    current: tokio::sync::Mutex<Option<Cached>>,
    refreshes: std::sync::atomic::AtomicU64,
}

impl fmt::Debug for TokenManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenManager")
            .field("credentials", &self.credentials)
            .field("refresh_margin", &self.refresh_margin)
            .field("refreshes", &self.refresh_count())
            .finish_non_exhaustive()
    }
}

impl TokenManager {
    /// `refresh_margin`: how long before expiry a token is replaced. A margin
    /// as long as the token's whole lifetime is cut to half the lifetime, so
    /// a token is always used for a while.
    #[must_use]
    pub fn new(credentials: OAuthCredentials, refresh_margin: Duration) -> Self {
        Self {
            credentials,
            refresh_margin,
            current: tokio::sync::Mutex::new(None),
            refreshes: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// How many access tokens were obtained so far.
    #[must_use]
    pub fn refresh_count(&self) -> u64 {
        self.refreshes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A token that is not due for refresh, fetching a new one if needed.
    pub(crate) async fn token(
        &self,
        http: &reqwest::Client,
        base_url: &str,
        user_agent: &str,
        request_timeout: Duration,
    ) -> Result<AccessToken, TastyError> {
        let mut current = self.current.lock().await;
        if let Some(c) = current.as_ref()
            && Instant::now() < c.refresh_at
        {
            return Ok(c.token.clone());
        }
        let fresh = self.fetch(http, base_url, user_agent, request_timeout).await?;
        let token = fresh.token.clone();
        *current = Some(fresh);
        Ok(token)
    }

    /// Drops `stale` (refused by the server) unless it was already replaced.
    pub(crate) async fn invalidate(&self, stale: &AccessToken) {
        let mut current = self.current.lock().await;
        if current.as_ref().is_some_and(|c| &c.token == stale) {
            *current = None;
        }
    }

    /// When the current token expires, if there is one.
    pub async fn expires_at(&self) -> Option<Instant> {
        self.current.lock().await.as_ref().map(|c| c.expires_at)
    }

    async fn fetch(
        &self,
        http: &reqwest::Client,
        base_url: &str,
        user_agent: &str,
        request_timeout: Duration,
    ) -> Result<Cached, TastyError> {
        let endpoint = "POST /oauth/token".to_string();
        let body = TokenRequest {
            grant_type: "refresh_token",
            refresh_token: &self.credentials.refresh_token,
            client_secret: &self.credentials.client_secret,
            client_id: self.credentials.client_id.as_deref(),
        };
        let requested = Instant::now();
        let response = http
            .post(format!("{base_url}/oauth/token"))
            .header(reqwest::header::USER_AGENT, user_agent)
            .header(reqwest::header::ACCEPT, "application/json")
            .json(&body)
            .send()
            .await
            .map_err(|e| super::rest::transport_error(&endpoint, e, request_timeout))?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|e| super::rest::transport_error(&endpoint, e, request_timeout))?;
        if !(200..300).contains(&status) {
            return Err(super::rest::api_error(endpoint, status, &text));
        }
        let parsed: TokenResponse = serde_json::from_str(&text).map_err(|e| TastyError::Decode {
            endpoint: endpoint.clone(),
            // The body holds a token: never echo it.
            detail: format!("token response: {e}"),
        })?;
        if parsed.access_token.is_empty() {
            return Err(TastyError::Decode { endpoint, detail: "empty access_token".into() });
        }
        let lifetime = parsed.expires_in.map_or(DEFAULT_TOKEN_LIFETIME, Duration::from_secs);
        let margin = if self.refresh_margin >= lifetime { lifetime / 2 } else { self.refresh_margin };
        self.refreshes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::debug!(lifetime_s = lifetime.as_secs(), "tastytrade: new access token");
        Ok(Cached {
            token: AccessToken(parsed.access_token),
            refresh_at: requested + (lifetime - margin),
            expires_at: requested + lifetime,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_secrets() {
        let c = OAuthCredentials::new("very-secret", "refresh-me").unwrap().with_client_id("client-1");
        let text = format!("{c:?}");
        assert!(!text.contains("very-secret") && !text.contains("refresh-me"), "{text}");
        assert!(text.contains("client-1"));
        let tm = TokenManager::new(c, Duration::from_secs(60));
        let text = format!("{tm:?}");
        assert!(!text.contains("very-secret") && !text.contains("refresh-me"), "{text}");
        assert_eq!(format!("{:?}", AccessToken("tok".into())), "AccessToken(<redacted>)");
        assert!(OAuthCredentials::new(" ", "x").is_err());
    }

    #[test]
    fn token_request_is_the_documented_json() {
        let body =
            TokenRequest { grant_type: "refresh_token", refresh_token: "r", client_secret: "s", client_id: None };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::json!({"grant_type": "refresh_token", "refresh_token": "r", "client_secret": "s"})
        );
    }
}
