//! WebSocket plumbing shared by the Binance streams ([`super::user_stream`],
//! [`super::market_stream`]): URL checks (testnet unless `production`),
//! connecting, keep-alive pings, answering the server's pings, detecting a
//! silent connection, capped back-off, and the connection-state events a
//! caller uses to know when to reconcile.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use model::Timestamp;

use super::error::{BinanceError, ErrorCode};
use super::types::millis;

pub(crate) use crate::stream::shutdown_requested;
pub use crate::stream::{Backoff, ReconnectPolicy};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Why a stream could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// Bad configuration ([`BinanceError::Config`]), a refused subscription
    /// ([`BinanceError::Api`] with Binance's code, e.g. -1022), or no answer
    /// in time ([`BinanceError::Timeout`]).
    #[error(transparent)]
    Binance(#[from] BinanceError),
    /// The WebSocket connection could not be opened.
    #[error("{url}: could not connect: {detail}")]
    Connect { url: String, detail: String },
    /// The connection ended while the stream was being set up.
    #[error("{url}: connection lost during setup: {reason}")]
    Lost { url: String, reason: DisconnectReason },
}

impl StreamError {
    /// The Binance error code, when Binance refused the request with one.
    #[must_use]
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Binance(e) => e.code(),
            _ => None,
        }
    }
}

/// Why a connection ended (or a new one could not be set up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The server sent a close frame.
    ClosedByServer { code: u16, reason: String },
    /// The connection failed or ended without a close frame.
    Transport(String),
    /// Nothing arrived (no data, ping or pong) within the idle timeout.
    Silent { after: Duration },
    /// Planned reconnect before Binance's 24-hour connection limit.
    Rotation { age: Duration },
    /// Binance ended the user data subscription (`eventStreamTerminated`).
    StreamTerminated,
    /// The server announced it is shutting down (`serverShutdown`).
    ServerShutdown,
    /// A new connection could not be opened.
    ConnectFailed(String),
    /// Binance refused the (re)subscription.
    Rejected { code: Option<ErrorCode>, msg: String },
    /// The caller shut the stream down, or dropped its receiver or handle.
    Shutdown,
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ClosedByServer { code, reason } => write!(f, "closed by the server ({code} {reason})"),
            Self::Transport(e) => write!(f, "transport error: {e}"),
            Self::Silent { after } => write!(f, "silent for {after:?}"),
            Self::Rotation { age } => write!(f, "planned reconnect after {age:?}"),
            Self::StreamTerminated => write!(f, "user data stream terminated by Binance"),
            Self::ServerShutdown => write!(f, "server shutting down"),
            Self::ConnectFailed(e) => write!(f, "connect failed: {e}"),
            Self::Rejected { code: Some(code), msg } => write!(f, "refused by Binance ({code}): {msg}"),
            Self::Rejected { code: None, msg } => write!(f, "refused by Binance: {msg}"),
            Self::Shutdown => write!(f, "shut down"),
        }
    }
}

/// A stream's connection state, with Binance's disconnect reasons. After
/// [`ConnectionEvent::Resubscribed`] on the user data stream, reconcile
/// orders and balances over REST.
pub type ConnectionEvent = crate::stream::ConnectionEvent<DisconnectReason>;
/// The window in which events may have been missed.
pub type Gap = crate::stream::Gap<DisconnectReason>;

/// Counters of a running stream.
#[derive(Debug, Default)]
pub struct StreamStats {
    messages: AtomicU64,
    malformed: AtomicU64,
    reconnects: AtomicU64,
    pings_answered: AtomicU64,
}

/// A copy of [`StreamStats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Text frames received.
    pub messages: u64,
    /// Frames that could not be understood and were skipped.
    pub malformed: u64,
    /// Successful resubscriptions after a disconnect.
    pub reconnects: u64,
    /// Server pings answered with a pong.
    pub pings_answered: u64,
}

impl StreamStats {
    #[must_use]
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            messages: self.messages.load(Ordering::Relaxed),
            malformed: self.malformed.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            pings_answered: self.pings_answered.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn malformed(&self) {
        self.malformed.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn reconnected(&self) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
    }
}

/// Keep-alive settings of one connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Keepalive {
    /// No frame at all within this long: the connection is dead.
    pub idle_timeout: Duration,
    /// Send our own ping this often (the pong proves the link is alive
    /// when the market is quiet); `None` sends none.
    pub ping_interval: Option<Duration>,
}

/// Local wall-clock time.
pub(crate) fn now() -> Timestamp {
    let ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(0));
    millis(ms)
}

pub(crate) fn local_now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Resolves a stream URL: the override, else production or testnet; a
/// production host without `production` is refused.
pub(crate) fn resolve_url(
    what: &str,
    override_url: Option<&str>,
    production: bool,
    production_url: &str,
    testnet_url: &str,
    production_hosts: &[&str],
) -> Result<String, BinanceError> {
    let url = match (override_url, production) {
        (Some(url), _) => url.trim().trim_end_matches('/').to_string(),
        (None, true) => production_url.to_string(),
        (None, false) => testnet_url.to_string(),
    };
    let parsed = reqwest::Url::parse(&url).map_err(|e| BinanceError::Config(format!("{what} URL '{url}': {e}")))?;
    if !matches!(parsed.scheme(), "ws" | "wss") {
        return Err(BinanceError::Config(format!("{what} URL '{url}' must be ws:// or wss://")));
    }
    let host = parsed.host_str().unwrap_or("").to_ascii_lowercase();
    if !production && production_hosts.contains(&host.as_str()) {
        return Err(BinanceError::Config(format!(
            "{what} URL '{url}' is the live exchange; set production = true to use it"
        )));
    }
    Ok(url)
}

/// One open WebSocket with keep-alive and silence detection.
pub(crate) struct Conn {
    socket: Socket,
    opened: Instant,
    last_rx: Instant,
    next_ping: Option<Instant>,
    keepalive: Keepalive,
    stats: Arc<StreamStats>,
}

impl Conn {
    pub(crate) async fn open(
        url: &str,
        connect_timeout: Duration,
        keepalive: Keepalive,
        stats: Arc<StreamStats>,
    ) -> Result<Self, String> {
        let (socket, _response) =
            match tokio::time::timeout(connect_timeout, tokio_tungstenite::connect_async(url)).await {
                Err(_) => return Err(format!("no connection within {connect_timeout:?}")),
                Ok(Err(e)) => return Err(e.to_string()),
                Ok(Ok(pair)) => pair,
            };
        let now = Instant::now();
        Ok(Self {
            socket,
            opened: now,
            last_rx: now,
            next_ping: keepalive.ping_interval.map(|i| now + i),
            keepalive,
            stats,
        })
    }

    pub(crate) fn age(&self) -> Duration {
        self.opened.elapsed()
    }

    pub(crate) fn opened_at(&self) -> Instant {
        self.opened
    }

    /// The next text frame. Pings are answered (tungstenite queues the pong
    /// with the ping's payload; it is flushed here at once), our own pings
    /// are sent when due, and a connection silent for the idle timeout is
    /// reported as [`DisconnectReason::Silent`]. Cancel-safe.
    pub(crate) async fn recv(&mut self) -> Result<String, DisconnectReason> {
        loop {
            let idle_deadline = self.last_rx + self.keepalive.idle_timeout;
            let wake = self.next_ping.map_or(idle_deadline, |p| p.min(idle_deadline));
            tokio::select! {
                msg = self.socket.next() => {
                    let Some(msg) = msg else {
                        return Err(DisconnectReason::Transport("connection ended".into()));
                    };
                    let msg = msg.map_err(|e| DisconnectReason::Transport(e.to_string()))?;
                    self.last_rx = Instant::now();
                    match msg {
                        Message::Text(text) => {
                            self.stats.messages.fetch_add(1, Ordering::Relaxed);
                            return Ok(text.as_str().to_string());
                        }
                        Message::Binary(bytes) => {
                            self.stats.malformed();
                            tracing::warn!(len = bytes.len(), "binance ws: unexpected binary frame skipped");
                        }
                        Message::Ping(_) => {
                            self.socket.flush().await.map_err(|e| DisconnectReason::Transport(e.to_string()))?;
                            self.stats.pings_answered.fetch_add(1, Ordering::Relaxed);
                        }
                        Message::Pong(_) | Message::Frame(_) => {}
                        Message::Close(frame) => {
                            let (code, reason) =
                                frame.map_or((1005, String::new()), |f| (u16::from(f.code), f.reason.as_str().to_string()));
                            return Err(DisconnectReason::ClosedByServer { code, reason });
                        }
                    }
                }
                () = tokio::time::sleep_until(wake.into()) => {
                    let now = Instant::now();
                    if now >= idle_deadline {
                        return Err(DisconnectReason::Silent { after: self.keepalive.idle_timeout });
                    }
                    if let (Some(at), Some(interval)) = (self.next_ping, self.keepalive.ping_interval)
                        && now >= at
                    {
                        self.next_ping = Some(now + interval);
                        self.send(Message::Ping(Vec::new().into())).await?;
                    }
                }
            }
        }
    }

    pub(crate) async fn send_text(&mut self, text: String) -> Result<(), DisconnectReason> {
        self.send(Message::text(text)).await
    }

    async fn send(&mut self, msg: Message) -> Result<(), DisconnectReason> {
        let limit = self.keepalive.idle_timeout;
        match tokio::time::timeout(limit, self.socket.send(msg)).await {
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
    fn urls_default_to_testnet_and_production_needs_the_switch() {
        let hosts = ["live.example"];
        let r =
            |o: Option<&str>, p: bool| resolve_url("x", o, p, "wss://live.example/a", "wss://test.example/a", &hosts);
        assert_eq!(r(None, false).unwrap(), "wss://test.example/a");
        assert_eq!(r(None, true).unwrap(), "wss://live.example/a");
        assert!(
            matches!(r(Some("wss://live.example/b"), false), Err(BinanceError::Config(m)) if m.contains("production"))
        );
        assert_eq!(r(Some("wss://live.example/b/"), true).unwrap(), "wss://live.example/b");
        assert_eq!(r(Some("ws://127.0.0.1:9/x"), false).unwrap(), "ws://127.0.0.1:9/x");
        assert!(r(Some("https://test.example"), false).is_err());
    }
}
