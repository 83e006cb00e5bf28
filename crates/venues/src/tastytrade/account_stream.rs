//! The TastyTrade account streamer: a one-directional WebSocket that pushes
//! notifications when an account's orders, balances or positions change
//! (sandbox `wss://streamer.cert.tastyworks.com`, live
//! `wss://streamer.tastyworks.com` only with `production: true`).
//!
//! Every message we send carries the current OAuth access token as
//! `"auth-token": "Bearer <token>"` and a `request-id`:
//! `{"action": "connect", "value": [account numbers], ...}` subscribes the
//! accounts, `{"action": "heartbeat", ...}` keeps the session alive. The
//! server answers each with `{"status": "ok" | "error", "action", "request-id",
//! "web-socket-session-id", "message"?}` and pushes notifications
//! `{"type": "Order" | "AccountBalance" | "CurrentPosition" | ..., "data": {...}}`
//! whose `data` has the REST API's shapes: they become [`TastyOrder`],
//! [`AccountBalance`] and [`Position`] with exact decimals.
//!
//! Each heartbeat asks the token source for the token, so a token refreshed
//! by the [`TokenManager`](super::auth::TokenManager) is used from then on. A
//! refused token (`status: error` on `connect` or `heartbeat`) is dropped and
//! the stream reconnects with a fresh one. After any reconnect the stream
//! emits [`ConnectionEvent::Resubscribed`] with the [`Gap`]: **reconcile
//! orders, balances and positions over REST** (notifications in the gap are
//! lost; the streamer does not replay them).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::auth::AccessToken;
use super::error::TastyError;
use super::stream::{
    AccessTokenSource, Backoff, Conn, ConnectionEvent, DisconnectReason, Frame, Gap, ReconnectPolicy, StatsSnapshot,
    StreamError, StreamStats, now, resolve_url, shutdown_requested,
};
use super::types::{AccountBalance, Position, RawPosition, TastyOrder};

/// The sandbox ("cert") account streamer, used unless `production` is set.
pub const ACCOUNT_STREAMER_SANDBOX_URL: &str = "wss://streamer.cert.tastyworks.com";
/// The live account streamer; only with [`AccountStreamConfig::production`].
pub const ACCOUNT_STREAMER_PRODUCTION_URL: &str = "wss://streamer.tastyworks.com";
const PRODUCTION_HOSTS: [&str; 2] = ["streamer.tastyworks.com", "streamer.tastytrade.com"];

/// How long a connection must have lived for a reconnect to start at once.
const STABLE_AFTER: Duration = Duration::from_secs(30);

/// Account streamer settings. The default talks to the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountStreamConfig {
    /// Use the live streamer. Off by default: the sandbox is used.
    pub production: bool,
    /// Overrides the streamer URL (a fake server in tests). A live host is
    /// refused unless `production` is set.
    pub url: Option<String>,
    /// Heartbeat period (TastyTrade expects one every few seconds up to a
    /// minute; default 20 s).
    pub heartbeat_interval: Duration,
    /// How long to wait for the answer to `connect`.
    pub response_timeout: Duration,
    /// No frame at all (heartbeat answers included) for this long: the
    /// connection is dead, reconnect. Keep it well above the heartbeat.
    pub idle_timeout: Duration,
    pub connect_timeout: Duration,
    pub reconnect: ReconnectPolicy,
    /// Consecutive refusals of freshly fetched tokens after which the stream
    /// stops ([`ConnectionEvent::Stopped`]).
    pub max_refusals: u32,
    /// Events buffered for a slow consumer before the reader waits.
    pub channel_capacity: usize,
}

impl Default for AccountStreamConfig {
    fn default() -> Self {
        Self {
            production: false,
            url: None,
            heartbeat_interval: Duration::from_secs(20),
            response_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(75),
            connect_timeout: Duration::from_secs(10),
            reconnect: ReconnectPolicy::default(),
            max_refusals: 3,
            channel_capacity: 1024,
        }
    }
}

impl AccountStreamConfig {
    /// The streamer URL after the production safety check.
    pub fn resolved_url(&self) -> Result<String, StreamError> {
        if self.heartbeat_interval.is_zero() || self.idle_timeout <= self.heartbeat_interval {
            return Err(StreamError::Config("idle_timeout must be longer than a positive heartbeat_interval".into()));
        }
        if self.channel_capacity == 0 {
            return Err(StreamError::Config("channel_capacity must be positive".into()));
        }
        resolve_url(
            "account streamer",
            self.url.as_deref(),
            self.production,
            ACCOUNT_STREAMER_PRODUCTION_URL,
            ACCOUNT_STREAMER_SANDBOX_URL,
            &PRODUCTION_HOSTS,
        )
    }
}

/// What the account stream delivers, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountEvent {
    /// `Order`: an order's new state.
    Order(Box<TastyOrder>),
    /// `AccountBalance`: an account's balances.
    Balance(Box<AccountBalance>),
    /// `CurrentPosition`: a position (signed quantity; zero when closed).
    Position(Box<Position>),
    /// A notification this adapter does not map (`OrderChain`,
    /// `ExternalTransaction`, `QuoteAlert`, ...): its type and JSON text.
    Other {
        kind: String,
        data: String,
    },
    Connection(ConnectionEvent),
}

/// One frame from the account streamer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountFrame {
    Notification(AccountEvent),
    /// The answer to one of our messages.
    Response {
        action: String,
        ok: bool,
        request_id: Option<u64>,
        message: Option<String>,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Envelope<'a> {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default, borrow)]
    data: Option<&'a RawValue>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default, borrow)]
    request_id: Option<&'a RawValue>,
}

/// Parses one text frame. Decimals are read from the JSON text, never
/// through `f64`.
pub fn parse_account_frame(text: &str) -> Result<AccountFrame, String> {
    let env: Envelope<'_> = serde_json::from_str(text).map_err(|e| format!("not a streamer message: {e}"))?;
    if let Some(kind) = env.kind {
        let data = env.data.ok_or_else(|| format!("{kind} notification without data"))?.get();
        let typed = |e: serde_json::Error| format!("{kind} notification: {e}");
        let event = match kind.as_str() {
            "Order" => AccountEvent::Order(Box::new(serde_json::from_str(data).map_err(typed)?)),
            "AccountBalance" => AccountEvent::Balance(Box::new(serde_json::from_str(data).map_err(typed)?)),
            "CurrentPosition" => {
                let raw: RawPosition = serde_json::from_str(data).map_err(typed)?;
                AccountEvent::Position(Box::new(Position::try_from(raw)?))
            }
            _ => AccountEvent::Other { kind, data: data.to_string() },
        };
        return Ok(AccountFrame::Notification(event));
    }
    let Some(status) = env.status else {
        return Err("message with neither type nor status".into());
    };
    let request_id = env.request_id.and_then(|r| r.get().trim_matches('"').parse().ok());
    Ok(AccountFrame::Response {
        action: env.action.unwrap_or_default(),
        ok: status.eq_ignore_ascii_case("ok"),
        request_id,
        message: env.message,
    })
}

/// Starts account streams.
#[derive(Debug)]
pub struct AccountStream;

impl AccountStream {
    /// Connects, subscribes `accounts` and keeps the subscription alive in a
    /// background task. The first event is [`ConnectionEvent::Connected`].
    ///
    /// A token refused on the first connection is dropped and one fresh
    /// token tried; a second refusal is [`StreamError::Refused`].
    pub async fn connect<S: AccessTokenSource>(
        config: AccountStreamConfig,
        accounts: Vec<String>,
        tokens: Arc<S>,
    ) -> Result<(AccountStreamHandle, mpsc::Receiver<AccountEvent>), StreamError> {
        let url = config.resolved_url()?;
        let accounts: Vec<String> = accounts.iter().map(|a| a.trim().to_string()).filter(|a| !a.is_empty()).collect();
        if accounts.is_empty() {
            return Err(StreamError::Config("no account numbers to subscribe".into()));
        }
        if config.production {
            tracing::warn!(%url, "tastytrade: account streamer on the LIVE service");
        }
        let stats = Arc::new(StreamStats::default());
        let (tx, rx) = mpsc::channel(config.channel_capacity);
        let mut session = Session { config, url: url.clone(), accounts, tokens, stats: stats.clone(), tx, next_id: 1 };
        let (conn, token) = match session.setup().await {
            Err(SetupError::Refused { token, message }) => {
                tracing::info!(%message, "tastytrade: account streamer refused the token; trying a fresh one");
                session.tokens.invalidate(&token).await;
                session.setup().await
            }
            other => other,
        }
        .map_err(|e| e.into_stream_error(&url))?;
        tracing::info!(%url, accounts = session.accounts.len(), "tastytrade: account streamer subscribed");
        let _ = session.tx.send(AccountEvent::Connection(ConnectionEvent::Connected { url })).await;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let task = tokio::spawn(session.run(conn, token, shutdown_rx));
        Ok((AccountStreamHandle { shutdown: shutdown_tx, task, stats }, rx))
    }
}

/// Controls a running account stream. Dropping it stops the stream.
#[derive(Debug)]
pub struct AccountStreamHandle {
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
    stats: Arc<StreamStats>,
}

impl AccountStreamHandle {
    #[must_use]
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// Whether the background task has ended.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Closes the connection and waits for the task to end.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

enum SetupError {
    Token(TastyError),
    Connect(String),
    Refused { token: AccessToken, message: String },
    Lost(DisconnectReason),
    Timeout(Duration),
}

impl SetupError {
    fn reason(&self) -> DisconnectReason {
        match self {
            Self::Token(e) => DisconnectReason::TokenUnavailable(e.to_string()),
            Self::Connect(e) => DisconnectReason::ConnectFailed(e.clone()),
            Self::Refused { message, .. } => DisconnectReason::Unauthorized(message.clone()),
            Self::Lost(r) => r.clone(),
            Self::Timeout(after) => DisconnectReason::Protocol(format!("no answer to connect within {after:?}")),
        }
    }

    fn into_stream_error(self, url: &str) -> StreamError {
        match self {
            Self::Token(e) => StreamError::Token(e),
            Self::Connect(detail) => StreamError::Connect { url: url.to_string(), detail },
            Self::Refused { message, .. } => StreamError::Refused { url: url.to_string(), message },
            other => StreamError::Setup { url: url.to_string(), reason: other.reason() },
        }
    }
}

struct Session<S> {
    config: AccountStreamConfig,
    url: String,
    accounts: Vec<String>,
    tokens: Arc<S>,
    stats: Arc<StreamStats>,
    tx: mpsc::Sender<AccountEvent>,
    next_id: u64,
}

impl<S: AccessTokenSource> Session<S> {
    async fn token(&self) -> Result<AccessToken, TastyError> {
        self.stats.token_fetched();
        self.tokens.access_token().await
    }

    /// A message with the token and the next request id. Never logged.
    fn message(&mut self, action: &str, value: Option<serde_json::Value>, token: &AccessToken) -> (String, u64) {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = json!({
            "action": action,
            "auth-token": format!("Bearer {}", token.expose()),
            "request-id": id,
        });
        if let Some(value) = value {
            msg["value"] = value;
        }
        (msg.to_string(), id)
    }

    async fn emit(&self, event: AccountEvent) -> bool {
        self.tx.send(event).await.is_ok()
    }

    /// Opens a connection and subscribes the accounts.
    async fn setup(&mut self) -> Result<(Conn, AccessToken), SetupError> {
        let token = self.token().await.map_err(SetupError::Token)?;
        let mut conn =
            Conn::open(&self.url, self.config.connect_timeout, self.config.response_timeout, self.stats.clone())
                .await
                .map_err(SetupError::Connect)?;
        let (msg, id) = self.message("connect", Some(json!(self.accounts)), &token);
        conn.send_text(msg).await.map_err(SetupError::Lost)?;
        let after = self.config.response_timeout;
        let wait = async {
            loop {
                let Frame::Text(text) = conn.recv().await.map_err(SetupError::Lost)? else { continue };
                match parse_account_frame(&text) {
                    Ok(AccountFrame::Response { action, ok, request_id, message })
                        if action == "connect" && request_id.is_none_or(|r| r == id) =>
                    {
                        return if ok {
                            Ok(())
                        } else {
                            Err(SetupError::Refused {
                                token: token.clone(),
                                message: message.unwrap_or_else(|| "connect refused".into()),
                            })
                        };
                    }
                    Ok(AccountFrame::Notification(event)) => {
                        if !self.emit(event).await {
                            return Err(SetupError::Lost(DisconnectReason::Shutdown));
                        }
                    }
                    Ok(AccountFrame::Response { action, .. }) => {
                        tracing::debug!(%action, "tastytrade: streamer answer ignored during setup");
                    }
                    Err(e) => {
                        self.stats.malformed();
                        tracing::warn!(error = %e, "tastytrade: malformed account streamer frame skipped");
                    }
                }
            }
        };
        match tokio::time::timeout(after, wait).await {
            Err(_) => Err(SetupError::Timeout(after)),
            Ok(Err(e)) => Err(e),
            Ok(Ok(())) => Ok((conn, token)),
        }
    }

    /// Reads notifications and sends heartbeats until the connection ends.
    async fn pump(
        &mut self,
        conn: &mut Conn,
        token: &mut AccessToken,
        shutdown: &mut watch::Receiver<bool>,
    ) -> DisconnectReason {
        let interval = self.config.heartbeat_interval;
        let idle = self.config.idle_timeout;
        let mut next_heartbeat = Instant::now() + interval;
        let mut last_rx = Instant::now();
        loop {
            tokio::select! {
                biased;
                () = shutdown_requested(shutdown) => return DisconnectReason::Shutdown,
                () = self.tx.closed() => return DisconnectReason::Shutdown,
                r = conn.recv() => {
                    last_rx = Instant::now();
                    let text = match r {
                        Err(reason) => return reason,
                        Ok(Frame::Control) => continue,
                        Ok(Frame::Text(text)) => text,
                    };
                    match parse_account_frame(&text) {
                        Ok(AccountFrame::Notification(event)) => {
                            if !self.emit(event).await {
                                return DisconnectReason::Shutdown;
                            }
                        }
                        Ok(AccountFrame::Response { ok: true, .. }) => {}
                        Ok(AccountFrame::Response { ok: false, action, message, .. }) => {
                            let message = message.unwrap_or_else(|| format!("{action} refused"));
                            if matches!(action.as_str(), "connect" | "heartbeat") {
                                return DisconnectReason::Unauthorized(message);
                            }
                            tracing::warn!(%action, %message, "tastytrade: account streamer refused a request");
                        }
                        Err(e) => {
                            self.stats.malformed();
                            tracing::warn!(error = %e, "tastytrade: malformed account streamer frame skipped");
                        }
                    }
                }
                () = tokio::time::sleep_until(next_heartbeat.into()) => {
                    match self.token().await {
                        Ok(fresh) => *token = fresh,
                        Err(e) => tracing::warn!(error = %e, "tastytrade: no fresh access token; heartbeat with the last one"),
                    }
                    let (msg, _) = self.message("heartbeat", None, token);
                    if let Err(reason) = conn.send_text(msg).await {
                        return reason;
                    }
                    self.stats.keepalive_sent();
                    next_heartbeat = Instant::now() + interval;
                }
                () = tokio::time::sleep_until((last_rx + idle).into()) => {
                    return DisconnectReason::Silent { after: idle };
                }
            }
        }
    }

    async fn run(mut self, mut conn: Conn, mut token: AccessToken, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Backoff::new(self.config.reconnect);
        loop {
            let opened = Instant::now();
            let reason = self.pump(&mut conn, &mut token, &mut shutdown).await;
            conn.close().await;
            if reason == DisconnectReason::Shutdown {
                tracing::info!("tastytrade: account stream shut down");
                return;
            }
            tracing::warn!(%reason, "tastytrade: account streamer connection lost; reconnecting");
            let disconnected_at = now();
            if matches!(reason, DisconnectReason::Unauthorized(_)) {
                self.tokens.invalidate(&token).await;
            }
            if !self.emit(AccountEvent::Connection(ConnectionEvent::Disconnected { reason: reason.clone() })).await {
                return;
            }
            let mut delay = if opened.elapsed() >= STABLE_AFTER { Duration::ZERO } else { backoff.next_delay() };
            if opened.elapsed() >= STABLE_AFTER {
                backoff.reset();
            }
            let mut attempts = 0u32;
            let mut refusals = 0u32;
            loop {
                tokio::select! {
                    () = shutdown_requested(&mut shutdown) => return,
                    () = tokio::time::sleep(delay) => {}
                }
                attempts += 1;
                match self.setup().await {
                    Ok((c, t)) => {
                        conn = c;
                        token = t;
                        self.stats.reconnected();
                        let gap = Gap { disconnected_at, resubscribed_at: now(), reason: reason.clone(), attempts };
                        tracing::info!(attempts, "tastytrade: account streamer resubscribed; reconcile over REST");
                        if !self.emit(AccountEvent::Connection(ConnectionEvent::Resubscribed { gap })).await {
                            conn.close().await;
                            return;
                        }
                        break;
                    }
                    Err(e) => {
                        if let SetupError::Refused { token: stale, .. } = &e {
                            self.tokens.invalidate(stale).await;
                            refusals += 1;
                            if refusals >= self.config.max_refusals.max(1) {
                                tracing::error!(
                                    refusals,
                                    "tastytrade: account streamer keeps refusing fresh tokens; stopping"
                                );
                                let _ = self
                                    .emit(AccountEvent::Connection(ConnectionEvent::Stopped { reason: e.reason() }))
                                    .await;
                                return;
                            }
                        }
                        if matches!(&e, SetupError::Lost(DisconnectReason::Shutdown)) {
                            return;
                        }
                        delay = backoff.next_delay();
                        let failed =
                            ConnectionEvent::ReconnectFailed { attempt: attempts, reason: e.reason(), retry_in: delay };
                        if !self.emit(AccountEvent::Connection(failed)).await {
                            return;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::{Money, Quantity};

    #[test]
    fn sandbox_by_default() {
        assert_eq!(AccountStreamConfig::default().resolved_url().unwrap(), ACCOUNT_STREAMER_SANDBOX_URL);
        let live = AccountStreamConfig { production: true, ..AccountStreamConfig::default() };
        assert_eq!(live.resolved_url().unwrap(), ACCOUNT_STREAMER_PRODUCTION_URL);
        let sneaky =
            AccountStreamConfig { url: Some("wss://streamer.tastyworks.com".into()), ..AccountStreamConfig::default() };
        assert!(sneaky.resolved_url().is_err());
    }

    #[test]
    fn parses_notifications_exactly() {
        let frame = r#"{"type": "AccountBalance", "data": {"account-number": "5WT1", "cash-balance": "1000.123456789",
            "net-liquidating-value": 2000.5, "equity-buying-power": "3000", "derivative-buying-power": "1500"},
            "timestamp": 1688595114405}"#;
        let AccountFrame::Notification(AccountEvent::Balance(b)) = parse_account_frame(frame).unwrap() else {
            panic!("not a balance")
        };
        assert_eq!(b.cash_balance, Money::parse("1000.123456789").unwrap());
        assert_eq!(b.net_liquidating_value, Money::parse("2000.5").unwrap());

        let frame = r#"{"type": "CurrentPosition", "data": {"account-number": "5WT1", "symbol": "SPY",
            "instrument-type": "Equity", "quantity": "3", "quantity-direction": "Short"}}"#;
        let AccountFrame::Notification(AccountEvent::Position(p)) = parse_account_frame(frame).unwrap() else {
            panic!("not a position")
        };
        assert_eq!(p.quantity, -Quantity::parse("3").unwrap());

        let frame = r#"{"status": "error", "action": "connect", "web-socket-session-id": "x", "message": "bad", "request-id": 4}"#;
        assert_eq!(
            parse_account_frame(frame).unwrap(),
            AccountFrame::Response {
                action: "connect".into(),
                ok: false,
                request_id: Some(4),
                message: Some("bad".into())
            }
        );
        assert!(matches!(
            parse_account_frame(r#"{"type": "OrderChain", "data": {"id": 1}}"#).unwrap(),
            AccountFrame::Notification(AccountEvent::Other { kind, .. }) if kind == "OrderChain"
        ));
        assert!(parse_account_frame("[]").is_err());
        assert!(parse_account_frame(r#"{"type": "Order", "data": {"id": 1}}"#).is_err());
    }
}
