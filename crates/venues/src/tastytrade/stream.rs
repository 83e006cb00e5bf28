//! Plumbing shared by the TastyTrade streams ([`super::account_stream`],
//! [`super::dxlink`]): where tokens come from, URL checks (sandbox unless
//! `production`), one WebSocket connection, the connection-state events a
//! caller uses to know when to reconcile, and counters.
//!
//! Back-off is the Binance streams' [`ReconnectPolicy`] / [`Backoff`]
//! (generic); the rest of `binance::ws` speaks Binance's error codes, so the
//! TastyTrade side has its own small connection type and reasons.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use model::Timestamp;

use super::auth::AccessToken;
use super::error::TastyError;
use super::rest::TastyClient;
use super::types::QuoteToken;

pub(crate) use crate::stream::shutdown_requested;
pub use crate::stream::{Backoff, ReconnectPolicy};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

// ---------------------------------------------------------------------------
// Token sources.

/// Where the account streamer gets its OAuth access token (the same token
/// the REST API takes). [`ClientAccessTokens`] takes it from a
/// [`TastyClient`]'s [`TokenManager`](super::auth::TokenManager).
pub trait AccessTokenSource: Send + Sync + 'static {
    /// A currently valid access token (cached until due for refresh).
    fn access_token(&self) -> impl Future<Output = Result<AccessToken, TastyError>> + Send;
    /// The server refused `stale`: drop it so the next call fetches a new one.
    fn invalidate(&self, stale: &AccessToken) -> impl Future<Output = ()> + Send;
}

/// Where the DXLink stream gets its quote token (`GET /api-quote-tokens`).
/// Implemented by [`TastyClient`].
pub trait QuoteTokenSource: Send + Sync + 'static {
    fn quote_token(&self) -> impl Future<Output = Result<QuoteToken, TastyError>> + Send;
}

impl QuoteTokenSource for TastyClient {
    async fn quote_token(&self) -> Result<QuoteToken, TastyError> {
        TastyClient::quote_token(self).await
    }
}

/// The access tokens of a [`TastyClient`]: its token manager (shared with
/// the REST calls, so refreshes are serialized with them) over an HTTP
/// client of its own with the REST client's timeouts and user agent.
#[derive(Debug, Clone)]
pub struct ClientAccessTokens {
    client: Arc<TastyClient>,
    http: reqwest::Client,
}

impl ClientAccessTokens {
    pub fn new(client: Arc<TastyClient>) -> Result<Self, TastyError> {
        let config = client.config();
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout)
            .user_agent(config.user_agent.clone())
            .build()
            .map_err(|e| TastyError::Config(format!("HTTP client: {e}")))?;
        Ok(Self { client, http })
    }
}

impl AccessTokenSource for ClientAccessTokens {
    async fn access_token(&self) -> Result<AccessToken, TastyError> {
        let config = self.client.config();
        self.client.tokens().token(&self.http, self.client.base_url(), &config.user_agent, config.request_timeout).await
    }

    async fn invalidate(&self, stale: &AccessToken) {
        self.client.tokens().invalidate(stale).await;
    }
}

// ---------------------------------------------------------------------------
// Errors, reasons, events.

/// Why a stream could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("configuration: {0}")]
    Config(String),
    /// No token could be obtained (the REST call failed).
    #[error("token: {0}")]
    Token(#[source] TastyError),
    /// The WebSocket connection could not be opened.
    #[error("{url}: could not connect: {detail}")]
    Connect { url: String, detail: String },
    /// The server refused the token (also after one fresh token).
    #[error("{url}: refused: {message}")]
    Refused { url: String, message: String },
    /// The connection ended, timed out, or broke the protocol during setup.
    #[error("{url}: setup failed: {reason}")]
    Setup { url: String, reason: DisconnectReason },
    /// The stream's task has ended (after `Stopped`, or shut down).
    #[error("the stream has ended")]
    Ended,
}

/// Why a connection ended (or a new one could not be set up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The server sent a close frame.
    ClosedByServer { code: u16, reason: String },
    /// The connection failed or ended without a close frame.
    Transport(String),
    /// Nothing arrived within the timeout (heartbeat answers, DXLink
    /// keepalives or data).
    Silent { after: Duration },
    /// A new connection could not be opened.
    ConnectFailed(String),
    /// The server refused the token (account streamer `status: error`,
    /// DXLink `AUTH_STATE UNAUTHORIZED`).
    Unauthorized(String),
    /// The server broke the protocol, reported an error, or did not answer
    /// a handshake step in time.
    Protocol(String),
    /// No token could be obtained for the reconnect.
    TokenUnavailable(String),
    /// The caller shut the stream down, or dropped its receiver or handle.
    Shutdown,
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ClosedByServer { code, reason } => write!(f, "closed by the server ({code} {reason})"),
            Self::Transport(e) => write!(f, "transport error: {e}"),
            Self::Silent { after } => write!(f, "silent for {after:?}"),
            Self::ConnectFailed(e) => write!(f, "connect failed: {e}"),
            Self::Unauthorized(e) => write!(f, "token refused: {e}"),
            Self::Protocol(e) => write!(f, "protocol: {e}"),
            Self::TokenUnavailable(e) => write!(f, "no token: {e}"),
            Self::Shutdown => write!(f, "shut down"),
        }
    }
}

/// A stream's connection state, with TastyTrade's disconnect reasons.
/// After [`ConnectionEvent::Resubscribed`], reconcile orders, balances and
/// positions over REST (account stream), or treat quotes as stale until new
/// ones arrive (DXLink).
pub type ConnectionEvent = crate::stream::ConnectionEvent<DisconnectReason>;
/// The window in which events may have been missed.
pub type Gap = crate::stream::Gap<DisconnectReason>;

/// Counters of a running stream.
#[derive(Debug, Default)]
pub struct StreamStats {
    messages: AtomicU64,
    malformed: AtomicU64,
    reconnects: AtomicU64,
    keepalives_sent: AtomicU64,
    token_fetches: AtomicU64,
}

/// A copy of [`StreamStats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Text frames received.
    pub messages: u64,
    /// Frames (or fields) that could not be understood and were skipped.
    pub malformed: u64,
    /// Successful resubscriptions after a disconnect.
    pub reconnects: u64,
    /// Heartbeats (account stream) or KEEPALIVEs (DXLink) sent.
    pub keepalives_sent: u64,
    /// Tokens asked of the token source (cached answers included).
    pub token_fetches: u64,
}

impl StreamStats {
    #[must_use]
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            messages: self.messages.load(Ordering::Relaxed),
            malformed: self.malformed.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            keepalives_sent: self.keepalives_sent.load(Ordering::Relaxed),
            token_fetches: self.token_fetches.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn malformed(&self) {
        self.malformed.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn reconnected(&self) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn keepalive_sent(&self) {
        self.keepalives_sent.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn token_fetched(&self) {
        self.token_fetches.fetch_add(1, Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------------------
// Helpers.

/// Local wall-clock time.
pub(crate) fn now() -> Timestamp {
    let ns =
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    Timestamp::from_nanos(ns)
}

/// Resolves a stream URL: the override, else production or sandbox; a
/// production host without `production` is refused.
pub(crate) fn resolve_url(
    what: &str,
    override_url: Option<&str>,
    production: bool,
    production_url: &str,
    sandbox_url: &str,
    production_hosts: &[&str],
) -> Result<String, StreamError> {
    let url = match (override_url, production) {
        (Some(url), _) => url.trim().trim_end_matches('/').to_string(),
        (None, true) => production_url.to_string(),
        (None, false) => sandbox_url.to_string(),
    };
    check_ws_url(what, &url)?;
    let host = reqwest::Url::parse(&url).ok().and_then(|u| u.host_str().map(str::to_ascii_lowercase));
    if !production && host.is_some_and(|h| production_hosts.contains(&h.as_str())) {
        return Err(StreamError::Config(format!(
            "{what} URL '{url}' is the live service; set production = true to use it"
        )));
    }
    Ok(url)
}

/// A `ws://` or `wss://` URL.
pub(crate) fn check_ws_url(what: &str, url: &str) -> Result<(), StreamError> {
    let parsed = reqwest::Url::parse(url).map_err(|e| StreamError::Config(format!("{what} URL '{url}': {e}")))?;
    if matches!(parsed.scheme(), "ws" | "wss") {
        Ok(())
    } else {
        Err(StreamError::Config(format!("{what} URL '{url}' must be ws:// or wss://")))
    }
}

/// What [`Conn::recv`] got.
pub(crate) enum Frame {
    Text(String),
    /// A ping (answered), pong or other control frame: proof of life only.
    Control,
}

/// One open WebSocket.
pub(crate) struct Conn {
    socket: Socket,
    send_timeout: Duration,
    stats: Arc<StreamStats>,
}

impl Conn {
    pub(crate) async fn open(
        url: &str,
        connect_timeout: Duration,
        send_timeout: Duration,
        stats: Arc<StreamStats>,
    ) -> Result<Self, String> {
        match tokio::time::timeout(connect_timeout, tokio_tungstenite::connect_async(url)).await {
            Err(_) => Err(format!("no connection within {connect_timeout:?}")),
            Ok(Err(e)) => Err(e.to_string()),
            Ok(Ok((socket, _response))) => Ok(Self { socket, send_timeout, stats }),
        }
    }

    /// The next frame. Pings are answered (tungstenite queues the pong; it
    /// is flushed here). Cancel-safe apart from that flush, which the next
    /// send completes.
    pub(crate) async fn recv(&mut self) -> Result<Frame, DisconnectReason> {
        let Some(msg) = self.socket.next().await else {
            return Err(DisconnectReason::Transport("connection ended".into()));
        };
        match msg.map_err(|e| DisconnectReason::Transport(e.to_string()))? {
            Message::Text(text) => {
                self.stats.messages.fetch_add(1, Ordering::Relaxed);
                Ok(Frame::Text(text.as_str().to_string()))
            }
            Message::Binary(bytes) => {
                self.stats.malformed();
                tracing::warn!(len = bytes.len(), "tastytrade ws: unexpected binary frame skipped");
                Ok(Frame::Control)
            }
            Message::Ping(_) => {
                self.socket.flush().await.map_err(|e| DisconnectReason::Transport(e.to_string()))?;
                Ok(Frame::Control)
            }
            Message::Pong(_) | Message::Frame(_) => Ok(Frame::Control),
            Message::Close(frame) => {
                let (code, reason) =
                    frame.map_or((1005, String::new()), |f| (u16::from(f.code), f.reason.as_str().to_string()));
                Err(DisconnectReason::ClosedByServer { code, reason })
            }
        }
    }

    /// Sends a text frame. Callers never log frames that carry a token.
    pub(crate) async fn send_text(&mut self, text: String) -> Result<(), DisconnectReason> {
        let limit = self.send_timeout;
        match tokio::time::timeout(limit, self.socket.send(Message::text(text))).await {
            Err(_) => Err(DisconnectReason::Silent { after: limit }),
            Ok(Err(e)) => Err(DisconnectReason::Transport(e.to_string())),
            Ok(Ok(())) => Ok(()),
        }
    }

    /// Closes politely, without waiting long for the server.
    pub(crate) async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_millis(500), self.socket.close(None)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_default_to_sandbox_and_production_needs_the_switch() {
        let hosts = ["live.example"];
        let r = |o: Option<&str>, p: bool| {
            resolve_url("x", o, p, "wss://live.example", "wss://sandbox.example", &hosts).map_err(|e| e.to_string())
        };
        assert_eq!(r(None, false).unwrap(), "wss://sandbox.example");
        assert_eq!(r(None, true).unwrap(), "wss://live.example");
        assert!(r(Some("wss://live.example/"), false).unwrap_err().contains("production"));
        assert_eq!(r(Some("wss://live.example/"), true).unwrap(), "wss://live.example");
        assert_eq!(r(Some("ws://127.0.0.1:9/x"), false).unwrap(), "ws://127.0.0.1:9/x");
        assert!(r(Some("https://sandbox.example"), false).is_err());
    }

    #[test]
    fn only_resubscribed_requires_reconcile() {
        let gap =
            Gap { disconnected_at: now(), resubscribed_at: now(), reason: DisconnectReason::Shutdown, attempts: 1 };
        assert!(ConnectionEvent::Resubscribed { gap }.requires_reconcile());
        assert!(!ConnectionEvent::Connected { url: "x".into() }.requires_reconcile());
    }
}
