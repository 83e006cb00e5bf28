//! DXLink: dxFeed's WebSocket protocol, which TastyTrade uses for market
//! data. The quote token and the URL come from `GET /api-quote-tokens`
//! ([`QuoteTokenSource`], implemented by the REST client); tokens last 24 h.
//!
//! Handshake, in this order (channel 0 is the connection, channel 1 our feed):
//!
//! 1. `SETUP` (`version`, `keepaliveTimeout`, `acceptKeepaliveTimeout`) → the
//!    server's `SETUP` (its `keepaliveTimeout` is how long we wait for a frame
//!    before calling the connection dead) and `AUTH_STATE UNAUTHORIZED`;
//! 2. `AUTH` with the token → `AUTH_STATE AUTHORIZED` (`UNAUTHORIZED` again:
//!    refused);
//! 3. `CHANNEL_REQUEST` (service `FEED`, `contract: AUTO`) → `CHANNEL_OPENED`;
//! 4. `FEED_SETUP` (`acceptAggregationPeriod`, `acceptDataFormat: COMPACT`,
//!    `acceptEventFields` for Quote and Trade) → `FEED_CONFIG`;
//! 5. `FEED_SUBSCRIPTION` (`reset`, `add`), later `add`/`remove`;
//! 6. `FEED_DATA` in COMPACT form: `["Quote", [v1, v2, ...]]`, the values of
//!    consecutive events flattened in the order of `FEED_CONFIG`'s fields.
//!
//! `KEEPALIVE` goes both ways: we send one every `keepalive_interval`; no
//! frame from the server within its `keepaliveTimeout` means reconnect.
//! Numbers are read from their JSON text (never through `f64`); `"NaN"`,
//! infinities, `null` and absent fields are `None`. On reconnect the stream
//! authenticates again — with a fresh quote token if the last one was
//! refused or is older than `token_max_age` — resubscribes the same set and
//! emits [`ConnectionEvent::Resubscribed`] (quotes in the gap are missed).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use model::{Price, Quantity};

use super::error::TastyError;
use super::stream::{
    Backoff, Conn, ConnectionEvent, DisconnectReason, Frame, Gap, QuoteTokenSource, ReconnectPolicy, StatsSnapshot,
    StreamError, StreamStats, check_ws_url, now, shutdown_requested,
};
use super::types::QuoteToken;

/// The feed channel we open.
const FEED_CHANNEL: u64 = 1;
/// Fields we ask for, in this order.
pub const QUOTE_FIELDS: [&str; 6] = ["eventType", "eventSymbol", "bidPrice", "askPrice", "bidSize", "askSize"];
pub const TRADE_FIELDS: [&str; 5] = ["eventType", "eventSymbol", "price", "dayVolume", "size"];
/// How long a connection must have lived for a reconnect to start at once.
const STABLE_AFTER: Duration = Duration::from_secs(30);

/// The event types this client subscribes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventKind {
    Quote,
    Trade,
}

impl EventKind {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Quote => "Quote",
            Self::Trade => "Trade",
        }
    }
}

/// One subscription: an event type for a streamer symbol (`AAPL`, or an
/// option's streamer symbol such as `.AAPL240119C150`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Subscription {
    pub kind: EventKind,
    pub symbol: String,
}

impl Subscription {
    #[must_use]
    pub fn quote(symbol: &str) -> Self {
        Self { kind: EventKind::Quote, symbol: symbol.trim().to_string() }
    }

    #[must_use]
    pub fn trade(symbol: &str) -> Self {
        Self { kind: EventKind::Trade, symbol: symbol.trim().to_string() }
    }

    fn to_json(&self) -> Value {
        json!({"type": self.kind.as_str(), "symbol": self.symbol})
    }
}

/// A `Quote` event. `None` where DXLink sent `NaN`, null, or nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DxQuote {
    pub symbol: String,
    pub bid_price: Option<Price>,
    pub ask_price: Option<Price>,
    pub bid_size: Option<Quantity>,
    pub ask_size: Option<Quantity>,
}

/// A `Trade` event (the last trade). `None` where DXLink sent `NaN`, null,
/// or nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DxTrade {
    pub symbol: String,
    pub price: Option<Price>,
    pub size: Option<Quantity>,
    pub day_volume: Option<Quantity>,
}

/// What the DXLink stream delivers, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarketEvent {
    Quote(DxQuote),
    Trade(DxTrade),
    Connection(ConnectionEvent),
}

/// DXLink settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DxLinkConfig {
    /// Overrides the `dxlink-url` of the quote token (a fake server in
    /// tests). DXLink is read-only market data; whether it is the sandbox's
    /// (delayed) feed or the live one follows from the REST client's
    /// environment, which issued the token.
    pub url: Option<String>,
    /// Sent in `SETUP` as `version`.
    pub version: String,
    pub connect_timeout: Duration,
    /// How long each handshake step may take.
    pub handshake_timeout: Duration,
    /// Send `KEEPALIVE` when nothing was sent for this long.
    pub keepalive_interval: Duration,
    /// Our `keepaliveTimeout`: the server may drop us after this long
    /// without a message. Must exceed `keepalive_interval`.
    pub keepalive_timeout: Duration,
    /// `acceptKeepaliveTimeout`: how long we are prepared to wait for the
    /// server; used for silence detection when its `SETUP` names none.
    pub accept_keepalive_timeout: Duration,
    /// `acceptAggregationPeriod`.
    pub aggregation_period: Duration,
    /// Quote tokens are valid 24 h; a reconnect fetches a fresh one when the
    /// current one is older than this.
    pub token_max_age: Duration,
    pub reconnect: ReconnectPolicy,
    /// Consecutive refusals of freshly fetched tokens after which the stream
    /// stops ([`ConnectionEvent::Stopped`]).
    pub max_refusals: u32,
    pub channel_capacity: usize,
}

impl Default for DxLinkConfig {
    fn default() -> Self {
        Self {
            url: None,
            version: concat!("0.1-tradecore/", env!("CARGO_PKG_VERSION")).to_string(),
            connect_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(60),
            accept_keepalive_timeout: Duration::from_secs(60),
            aggregation_period: Duration::from_millis(100),
            token_max_age: Duration::from_secs(23 * 3600),
            reconnect: ReconnectPolicy::default(),
            max_refusals: 3,
            channel_capacity: 4096,
        }
    }
}

impl DxLinkConfig {
    fn check(&self) -> Result<(), StreamError> {
        if self.keepalive_interval.is_zero() || self.keepalive_timeout <= self.keepalive_interval {
            return Err(StreamError::Config("keepalive_timeout must exceed a positive keepalive_interval".into()));
        }
        if self.accept_keepalive_timeout.is_zero() || self.handshake_timeout.is_zero() || self.channel_capacity == 0 {
            return Err(StreamError::Config("timeouts and channel_capacity must be positive".into()));
        }
        if let Some(url) = &self.url {
            check_ws_url("DXLink", url)?;
        }
        Ok(())
    }
}

/// A duration as DXLink's seconds (whole when possible).
fn seconds(d: Duration) -> Value {
    if d.subsec_nanos() == 0 { json!(d.as_secs()) } else { json!(d.as_secs_f64()) }
}

// ---------------------------------------------------------------------------
// Parsing.

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DxMessage<'a> {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    channel: u64,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    keepalive_timeout: Option<serde_json::Number>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    data_format: Option<String>,
    #[serde(default)]
    event_fields: Option<HashMap<String, Vec<String>>>,
    #[serde(default, borrow)]
    data: Option<&'a RawValue>,
}

/// A JSON number's text with an exponent written out (`1.5E7` →
/// `15000000`); `None` if it is not a plain number.
fn expand_exponent(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let Some((mantissa, exp)) = lower.split_once('e') else { return Some(text.to_string()) };
    let exp: i64 = exp.strip_prefix('+').unwrap_or(exp).parse().ok()?;
    if exp.abs() > 40 {
        return None;
    }
    let (neg, m) = mantissa.strip_prefix('-').map_or((false, mantissa), |m| (true, m));
    let (int, frac) = m.split_once('.').unwrap_or((m, ""));
    if !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) || int.len() + frac.len() == 0 {
        return None;
    }
    let mut digits = format!("{int}{frac}");
    let mut point = i64::try_from(int.len()).ok()? + exp;
    if point <= 0 {
        digits = format!("{}{digits}", "0".repeat(usize::try_from(-point).ok()? + 1));
        point = 1;
    }
    let point = usize::try_from(point).ok()?;
    if digits.len() < point {
        digits.push_str(&"0".repeat(point - digits.len()));
    }
    let (a, b) = digits.split_at(point);
    let sign = if neg { "-" } else { "" };
    Some(if b.is_empty() { format!("{sign}{a}") } else { format!("{sign}{a}.{b}") })
}

/// A field's decimal text: `None` for NaN, infinities, null or empty.
fn number_text(raw: &RawValue) -> Result<Option<String>, String> {
    let text = raw.get().trim();
    if text == "null" {
        return Ok(None);
    }
    if text.starts_with('"') {
        let inner: String = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let inner = inner.trim();
        if inner.is_empty() || matches!(inner, "NaN" | "Infinity" | "-Infinity" | "+Infinity") {
            return Ok(None);
        }
        return expand_exponent(inner).map(Some).ok_or_else(|| format!("'{inner}' is not a number"));
    }
    if text.starts_with(['-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9']) {
        return expand_exponent(text).map(Some).ok_or_else(|| format!("'{text}' is not a number"));
    }
    Err(format!("expected a number, got {text}"))
}

fn symbol_text(raw: &RawValue) -> Result<String, String> {
    serde_json::from_str::<String>(raw.get()).map_err(|_| format!("eventSymbol {} is not a string", raw.get()))
}

/// Parses the `data` of a COMPACT `FEED_DATA` with the field order of each
/// event type. Fields that cannot be read as exact decimals become `None`
/// and are counted in the second value.
pub(crate) fn parse_compact(
    data: &RawValue,
    fields: &HashMap<String, Vec<String>>,
) -> Result<(Vec<MarketEvent>, u64), String> {
    let parts: Vec<&RawValue> = serde_json::from_str(data.get()).map_err(|e| format!("FEED_DATA data: {e}"))?;
    if parts.first().is_some_and(|p| p.get().trim_start().starts_with('{')) {
        return Err("FEED_DATA in FULL format; COMPACT was negotiated".into());
    }
    if !parts.len().is_multiple_of(2) {
        return Err("COMPACT data must be [type, values] pairs".into());
    }
    let mut events = Vec::new();
    let mut bad = 0u64;
    for pair in parts.chunks_exact(2) {
        let kind: String = serde_json::from_str(pair[0].get()).map_err(|_| "event type is not a string".to_string())?;
        let values: Vec<&RawValue> = serde_json::from_str(pair[1].get()).map_err(|e| format!("{kind} values: {e}"))?;
        let names = fields.get(&kind).ok_or_else(|| format!("no fields configured for {kind}"))?;
        if names.is_empty() || !values.len().is_multiple_of(names.len()) {
            return Err(format!("{kind}: {} values do not split into events of {} fields", values.len(), names.len()));
        }
        for chunk in values.chunks_exact(names.len()) {
            let get = |name: &str| names.iter().position(|n| n == name).map(|i| chunk[i]);
            let symbol =
                get("eventSymbol").ok_or_else(|| format!("{kind} without eventSymbol")).and_then(symbol_text)?;
            let mut price = |name: &str| -> Option<Price> {
                let text = match get(name).map(number_text).transpose() {
                    Ok(t) => t.flatten()?,
                    Err(_) => {
                        bad += 1;
                        return None;
                    }
                };
                Price::parse(&text).map_err(|_| bad += 1).ok()
            };
            match kind.as_str() {
                "Quote" => {
                    let bid_price = price("bidPrice");
                    let ask_price = price("askPrice");
                    let (bid_size, ask_size) = (qty(get("bidSize"), &mut bad), qty(get("askSize"), &mut bad));
                    events.push(MarketEvent::Quote(DxQuote { symbol, bid_price, ask_price, bid_size, ask_size }));
                }
                "Trade" => {
                    let price = price("price");
                    let (size, day_volume) = (qty(get("size"), &mut bad), qty(get("dayVolume"), &mut bad));
                    events.push(MarketEvent::Trade(DxTrade { symbol, price, size, day_volume }));
                }
                other => tracing::debug!(kind = other, "dxlink: event type not mapped; skipped"),
            }
        }
    }
    Ok((events, bad))
}

fn qty(raw: Option<&RawValue>, bad: &mut u64) -> Option<Quantity> {
    let text = match raw.map(number_text).transpose() {
        Ok(t) => t.flatten()?,
        Err(_) => {
            *bad += 1;
            return None;
        }
    };
    Quantity::parse(&text).map_err(|_| *bad += 1).ok()
}

// ---------------------------------------------------------------------------
// The stream.

enum Command {
    Add(Vec<Subscription>),
    Remove(Vec<Subscription>),
}

/// Starts DXLink market-data streams.
#[derive(Debug)]
pub struct DxLinkStream;

impl DxLinkStream {
    /// Fetches a quote token, connects, runs the handshake, subscribes
    /// `subscriptions` and streams in a background task. The first event is
    /// [`ConnectionEvent::Connected`].
    ///
    /// A token refused on the first connection is replaced by one fresh
    /// token; a second refusal is [`StreamError::Refused`].
    pub async fn connect<Q: QuoteTokenSource>(
        config: DxLinkConfig,
        tokens: Arc<Q>,
        subscriptions: Vec<Subscription>,
    ) -> Result<(DxLinkHandle, mpsc::Receiver<MarketEvent>), StreamError> {
        config.check()?;
        let stats = Arc::new(StreamStats::default());
        let (tx, rx) = mpsc::channel(config.channel_capacity);
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let mut session = Session {
            config,
            tokens,
            stats: stats.clone(),
            tx,
            cmd_rx,
            subscriptions: subscriptions.into_iter().filter(|s| !s.symbol.is_empty()).collect(),
            cached: None,
            url: String::new(),
            fields: HashMap::new(),
            server_timeout: None,
        };
        let conn = match session.setup(false).await {
            Err(SetupError::Refused(message)) => {
                tracing::info!(%message, "dxlink: quote token refused; trying a fresh one");
                session.setup(true).await
            }
            other => other,
        }
        .map_err(|e| e.into_stream_error(&session.url))?;
        let url = session.url.clone();
        tracing::info!(%url, subscriptions = session.subscriptions.len(), "dxlink: feed open");
        let _ = session.tx.send(MarketEvent::Connection(ConnectionEvent::Connected { url })).await;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let task = tokio::spawn(session.run(conn, shutdown_rx));
        Ok((DxLinkHandle { shutdown: shutdown_tx, commands: cmd_tx, task, stats }, rx))
    }
}

/// Controls a running DXLink stream. Dropping it stops the stream.
#[derive(Debug)]
pub struct DxLinkHandle {
    shutdown: watch::Sender<bool>,
    commands: mpsc::UnboundedSender<Command>,
    task: JoinHandle<()>,
    stats: Arc<StreamStats>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Add(s) => f.debug_tuple("Add").field(s).finish(),
            Self::Remove(s) => f.debug_tuple("Remove").field(s).finish(),
        }
    }
}

impl DxLinkHandle {
    /// Adds subscriptions (kept across reconnects). Errors only when the
    /// stream has ended.
    pub fn subscribe(&self, subscriptions: Vec<Subscription>) -> Result<(), StreamError> {
        self.commands.send(Command::Add(subscriptions)).map_err(|_| StreamError::Ended)
    }

    /// Removes subscriptions; the server stops sending their events.
    pub fn unsubscribe(&self, subscriptions: Vec<Subscription>) -> Result<(), StreamError> {
        self.commands.send(Command::Remove(subscriptions)).map_err(|_| StreamError::Ended)
    }

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
    Config(StreamError),
    Connect(String),
    Refused(String),
    Lost(DisconnectReason),
    Protocol(String),
}

impl SetupError {
    fn reason(&self) -> DisconnectReason {
        match self {
            Self::Token(e) => DisconnectReason::TokenUnavailable(e.to_string()),
            Self::Config(e) => DisconnectReason::Protocol(e.to_string()),
            Self::Connect(e) => DisconnectReason::ConnectFailed(e.clone()),
            Self::Refused(m) => DisconnectReason::Unauthorized(m.clone()),
            Self::Lost(r) => r.clone(),
            Self::Protocol(m) => DisconnectReason::Protocol(m.clone()),
        }
    }

    fn into_stream_error(self, url: &str) -> StreamError {
        match self {
            Self::Token(e) => StreamError::Token(e),
            Self::Config(e) => e,
            Self::Connect(detail) => StreamError::Connect { url: url.to_string(), detail },
            Self::Refused(message) => StreamError::Refused { url: url.to_string(), message },
            other => StreamError::Setup { url: url.to_string(), reason: other.reason() },
        }
    }
}

struct Cached {
    token: QuoteToken,
    fetched: Instant,
}

struct Session<Q> {
    config: DxLinkConfig,
    tokens: Arc<Q>,
    stats: Arc<StreamStats>,
    tx: mpsc::Sender<MarketEvent>,
    cmd_rx: mpsc::UnboundedReceiver<Command>,
    subscriptions: BTreeSet<Subscription>,
    cached: Option<Cached>,
    url: String,
    /// Field order per event type, as the server's `FEED_CONFIG` says.
    fields: HashMap<String, Vec<String>>,
    /// The server's `keepaliveTimeout`.
    server_timeout: Option<Duration>,
}

/// A handshake step's wait outcome.
enum Wait<T> {
    Done(T),
    Next,
}

impl<Q: QuoteTokenSource> Session<Q> {
    async fn quote_token(&mut self, fresh: bool) -> Result<QuoteToken, TastyError> {
        if !fresh
            && let Some(c) = &self.cached
            && c.fetched.elapsed() < self.config.token_max_age
        {
            return Ok(c.token.clone());
        }
        self.stats.token_fetched();
        let token = self.tokens.quote_token().await?;
        self.cached = Some(Cached { token: token.clone(), fetched: Instant::now() });
        Ok(token)
    }

    fn requested_fields() -> Value {
        json!({"Quote": QUOTE_FIELDS, "Trade": TRADE_FIELDS})
    }

    /// Reads until `f` says done, within the handshake timeout.
    async fn expect_message<T>(
        &self,
        conn: &mut Conn,
        step: &str,
        mut f: impl FnMut(&DxMessage<'_>) -> Result<Wait<T>, SetupError>,
    ) -> Result<T, SetupError> {
        let after = self.config.handshake_timeout;
        let wait = async {
            loop {
                let Frame::Text(text) = conn.recv().await.map_err(SetupError::Lost)? else { continue };
                let msg: DxMessage<'_> = match serde_json::from_str(&text) {
                    Ok(m) => m,
                    Err(e) => {
                        self.stats.malformed();
                        tracing::warn!(error = %e, "dxlink: malformed frame skipped");
                        continue;
                    }
                };
                if msg.kind == "ERROR" {
                    let error = msg.error.clone().unwrap_or_default();
                    let message = msg.message.clone().unwrap_or_default();
                    return Err(if error == "UNAUTHORIZED" {
                        SetupError::Refused(format!("{error}: {message}"))
                    } else {
                        SetupError::Protocol(format!("{step}: server error {error}: {message}"))
                    });
                }
                if let Wait::Done(v) = f(&msg)? {
                    return Ok(v);
                }
            }
        };
        tokio::time::timeout(after, wait)
            .await
            .map_err(|_| SetupError::Protocol(format!("no answer to {step} within {after:?}")))?
    }

    /// Connects and runs the handshake up to the subscription.
    async fn setup(&mut self, fresh_token: bool) -> Result<Conn, SetupError> {
        let token = self.quote_token(fresh_token).await.map_err(SetupError::Token)?;
        self.url = self.config.url.clone().unwrap_or_else(|| token.dxlink_url.trim().to_string());
        check_ws_url("DXLink", &self.url).map_err(SetupError::Config)?;
        let mut conn =
            Conn::open(&self.url, self.config.connect_timeout, self.config.handshake_timeout, self.stats.clone())
                .await
                .map_err(SetupError::Connect)?;
        let setup = json!({
            "type": "SETUP", "channel": 0, "version": self.config.version,
            "keepaliveTimeout": seconds(self.config.keepalive_timeout),
            "acceptKeepaliveTimeout": seconds(self.config.accept_keepalive_timeout),
        });
        conn.send_text(setup.to_string()).await.map_err(SetupError::Lost)?;

        // The server's SETUP and its first AUTH_STATE, in either order.
        let mut server_setup = None;
        let mut first_state: Option<String> = None;
        let state = self
            .expect_message(&mut conn, "SETUP", |m| {
                match (m.kind.as_str(), m.channel) {
                    ("SETUP", 0) => {
                        server_setup = Some(
                            m.keepalive_timeout
                                .as_ref()
                                .and_then(serde_json::Number::as_f64)
                                .filter(|s| s.is_finite() && *s > 0.0)
                                .map(Duration::from_secs_f64),
                        );
                    }
                    ("AUTH_STATE", 0) => first_state = m.state.clone(),
                    _ => {}
                }
                Ok(match (&server_setup, &first_state) {
                    (Some(_), Some(s)) => Wait::Done(s.clone()),
                    _ => Wait::Next,
                })
            })
            .await?;
        self.server_timeout = server_setup.flatten();

        if state != "AUTHORIZED" {
            // The token is never logged.
            let auth = json!({"type": "AUTH", "channel": 0, "token": token.token});
            conn.send_text(auth.to_string()).await.map_err(SetupError::Lost)?;
            self.expect_message(&mut conn, "AUTH", |m| match (m.kind.as_str(), m.state.as_deref()) {
                ("AUTH_STATE", Some("AUTHORIZED")) => Ok(Wait::Done(())),
                ("AUTH_STATE", _) => Err(SetupError::Refused("AUTH_STATE UNAUTHORIZED".into())),
                _ => Ok(Wait::Next),
            })
            .await?;
        }

        let request = json!({
            "type": "CHANNEL_REQUEST", "channel": FEED_CHANNEL, "service": "FEED",
            "parameters": {"contract": "AUTO"},
        });
        conn.send_text(request.to_string()).await.map_err(SetupError::Lost)?;
        self.expect_message(&mut conn, "CHANNEL_REQUEST", |m| match (m.kind.as_str(), m.channel) {
            ("CHANNEL_OPENED", FEED_CHANNEL) => Ok(Wait::Done(())),
            ("CHANNEL_CLOSED", FEED_CHANNEL) => Err(SetupError::Protocol("feed channel closed by the server".into())),
            _ => Ok(Wait::Next),
        })
        .await?;

        let feed_setup = json!({
            "type": "FEED_SETUP", "channel": FEED_CHANNEL,
            "acceptAggregationPeriod": seconds(self.config.aggregation_period),
            "acceptDataFormat": "COMPACT",
            "acceptEventFields": Self::requested_fields(),
        });
        conn.send_text(feed_setup.to_string()).await.map_err(SetupError::Lost)?;
        let fields = self
            .expect_message(&mut conn, "FEED_SETUP", |m| {
                if m.kind != "FEED_CONFIG" || m.channel != FEED_CHANNEL {
                    return Ok(Wait::Next);
                }
                if m.data_format.as_deref().is_some_and(|f| f != "COMPACT") {
                    return Err(SetupError::Protocol(format!("server chose data format {:?}", m.data_format)));
                }
                Ok(Wait::Done(m.event_fields.clone().unwrap_or_default()))
            })
            .await?;
        self.fields = HashMap::from([
            ("Quote".to_string(), QUOTE_FIELDS.iter().map(ToString::to_string).collect()),
            ("Trade".to_string(), TRADE_FIELDS.iter().map(ToString::to_string).collect()),
        ]);
        self.fields.extend(fields);

        let add: Vec<Value> = self.subscriptions.iter().map(Subscription::to_json).collect();
        let sub = json!({"type": "FEED_SUBSCRIPTION", "channel": FEED_CHANNEL, "reset": true, "add": add});
        conn.send_text(sub.to_string()).await.map_err(SetupError::Lost)?;
        Ok(conn)
    }

    async fn emit(&self, event: MarketEvent) -> bool {
        self.tx.send(event).await.is_ok()
    }

    /// Applies a subscription change; sends it when connected.
    async fn command(&mut self, cmd: Command, conn: &mut Conn) -> Result<(), DisconnectReason> {
        let (key, list) = match cmd {
            Command::Add(list) => {
                let new: Vec<Subscription> =
                    list.into_iter().filter(|s| !s.symbol.is_empty() && self.subscriptions.insert(s.clone())).collect();
                ("add", new)
            }
            Command::Remove(list) => {
                let gone: Vec<Subscription> = list.into_iter().filter(|s| self.subscriptions.remove(s)).collect();
                ("remove", gone)
            }
        };
        if list.is_empty() {
            return Ok(());
        }
        let items: Vec<Value> = list.iter().map(Subscription::to_json).collect();
        let msg = json!({"type": "FEED_SUBSCRIPTION", "channel": FEED_CHANNEL, key: items});
        conn.send_text(msg.to_string()).await
    }

    /// Handles one server frame; `Some(reason)` ends the connection.
    async fn handle(&mut self, text: &str) -> Option<DisconnectReason> {
        let msg: DxMessage<'_> = match serde_json::from_str(text) {
            Ok(m) => m,
            Err(e) => {
                self.stats.malformed();
                tracing::warn!(error = %e, "dxlink: malformed frame skipped");
                return None;
            }
        };
        match (msg.kind.as_str(), msg.channel) {
            ("FEED_DATA", FEED_CHANNEL) => {
                let Some(data) = msg.data else {
                    self.stats.malformed();
                    return None;
                };
                match parse_compact(data, &self.fields) {
                    Ok((events, bad)) => {
                        for _ in 0..bad {
                            self.stats.malformed();
                        }
                        if bad > 0 {
                            tracing::warn!(bad, "dxlink: fields not readable as exact decimals left empty");
                        }
                        for event in events {
                            if !self.emit(event).await {
                                return Some(DisconnectReason::Shutdown);
                            }
                        }
                    }
                    Err(e) => {
                        self.stats.malformed();
                        tracing::warn!(error = %e, "dxlink: FEED_DATA skipped");
                    }
                }
            }
            ("FEED_CONFIG", FEED_CHANNEL) => {
                if let Some(fields) = msg.event_fields {
                    self.fields.extend(fields);
                }
            }
            ("KEEPALIVE" | "SETUP", _) | ("AUTH_STATE", _) if msg.state.as_deref() != Some("UNAUTHORIZED") => {}
            ("AUTH_STATE", _) => return Some(DisconnectReason::Unauthorized("AUTH_STATE UNAUTHORIZED".into())),
            ("CHANNEL_CLOSED", FEED_CHANNEL) => {
                return Some(DisconnectReason::Protocol("feed channel closed by the server".into()));
            }
            ("ERROR", channel) => {
                let error = msg.error.unwrap_or_default();
                let message = msg.message.unwrap_or_default();
                if error == "UNAUTHORIZED" {
                    return Some(DisconnectReason::Unauthorized(message));
                }
                if channel == 0 {
                    return Some(DisconnectReason::Protocol(format!("server error {error}: {message}")));
                }
                tracing::warn!(channel, %error, %message, "dxlink: channel error");
            }
            (other, channel) => tracing::debug!(kind = other, channel, "dxlink: message ignored"),
        }
        None
    }

    /// Streams until the connection ends.
    async fn pump(&mut self, conn: &mut Conn, shutdown: &mut watch::Receiver<bool>) -> DisconnectReason {
        let silence = self.server_timeout.unwrap_or(self.config.accept_keepalive_timeout);
        let interval = self.config.keepalive_interval;
        let mut last_rx = Instant::now();
        let mut last_tx = Instant::now();
        loop {
            tokio::select! {
                biased;
                () = shutdown_requested(shutdown) => return DisconnectReason::Shutdown,
                () = self.tx.closed() => return DisconnectReason::Shutdown,
                cmd = self.cmd_rx.recv() => {
                    let Some(cmd) = cmd else { return DisconnectReason::Shutdown };
                    if let Err(reason) = self.command(cmd, conn).await {
                        return reason;
                    }
                    last_tx = Instant::now();
                }
                r = conn.recv() => {
                    last_rx = Instant::now();
                    match r {
                        Err(reason) => return reason,
                        Ok(Frame::Control) => {}
                        Ok(Frame::Text(text)) => {
                            if let Some(reason) = self.handle(&text).await {
                                return reason;
                            }
                        }
                    }
                }
                () = tokio::time::sleep_until((last_tx + interval).into()) => {
                    let keepalive = json!({"type": "KEEPALIVE", "channel": 0});
                    if let Err(reason) = conn.send_text(keepalive.to_string()).await {
                        return reason;
                    }
                    self.stats.keepalive_sent();
                    last_tx = Instant::now();
                }
                () = tokio::time::sleep_until((last_rx + silence).into()) => {
                    let error = json!({"type": "ERROR", "channel": 0, "error": "TIMEOUT",
                        "message": format!("no message received for {silence:?}")});
                    let _ = conn.send_text(error.to_string()).await;
                    return DisconnectReason::Silent { after: silence };
                }
            }
        }
    }

    async fn run(mut self, mut conn: Conn, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Backoff::new(self.config.reconnect);
        loop {
            let opened = Instant::now();
            let reason = self.pump(&mut conn, &mut shutdown).await;
            conn.close().await;
            if reason == DisconnectReason::Shutdown {
                tracing::info!("dxlink: stream shut down");
                return;
            }
            tracing::warn!(%reason, "dxlink: connection lost; reconnecting");
            let disconnected_at = now();
            let mut fresh = matches!(reason, DisconnectReason::Unauthorized(_));
            if !self.emit(MarketEvent::Connection(ConnectionEvent::Disconnected { reason: reason.clone() })).await {
                return;
            }
            let stable = opened.elapsed() >= STABLE_AFTER;
            if stable {
                backoff.reset();
            }
            let mut delay = if stable { Duration::ZERO } else { backoff.next_delay() };
            let mut attempts = 0u32;
            let mut refusals = 0u32;
            loop {
                tokio::select! {
                    () = shutdown_requested(&mut shutdown) => return,
                    () = tokio::time::sleep(delay) => {}
                }
                attempts += 1;
                match self.setup(fresh).await {
                    Ok(c) => {
                        conn = c;
                        self.stats.reconnected();
                        let gap = Gap { disconnected_at, resubscribed_at: now(), reason: reason.clone(), attempts };
                        tracing::info!(attempts, "dxlink: resubscribed");
                        if !self.emit(MarketEvent::Connection(ConnectionEvent::Resubscribed { gap })).await {
                            conn.close().await;
                            return;
                        }
                        break;
                    }
                    Err(e) => {
                        fresh = matches!(e, SetupError::Refused(_));
                        if fresh {
                            refusals += 1;
                            if refusals >= self.config.max_refusals.max(1) {
                                tracing::error!(refusals, "dxlink: fresh quote tokens keep being refused; stopping");
                                let stopped = ConnectionEvent::Stopped { reason: e.reason() };
                                let _ = self.emit(MarketEvent::Connection(stopped)).await;
                                return;
                            }
                        }
                        delay = backoff.next_delay();
                        let failed =
                            ConnectionEvent::ReconnectFailed { attempt: attempts, reason: e.reason(), retry_in: delay };
                        if !self.emit(MarketEvent::Connection(failed)).await {
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

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_string()).unwrap()
    }

    fn fields() -> HashMap<String, Vec<String>> {
        HashMap::from([
            ("Quote".to_string(), QUOTE_FIELDS.iter().map(ToString::to_string).collect()),
            ("Trade".to_string(), TRADE_FIELDS.iter().map(ToString::to_string).collect()),
        ])
    }

    #[test]
    fn exponents_are_written_out() {
        assert_eq!(expand_exponent("1.5E7").unwrap(), "15000000");
        assert_eq!(expand_exponent("1.25e-3").unwrap(), "0.00125");
        assert_eq!(expand_exponent("-2E+2").unwrap(), "-200");
        assert_eq!(expand_exponent("150.25").unwrap(), "150.25");
        assert!(expand_exponent("1e999").is_none());
        assert!(expand_exponent("xe2").is_none());
    }

    #[test]
    fn compact_quotes_and_trades_with_nan() {
        let data = raw(
            r#"["Quote", ["Quote", "AAPL", 150.25, "NaN", 100, 2.5E2, "Quote", ".AAPL240119C150", 26.4, 26.6, null, 10]]"#,
        );
        let (events, bad) = parse_compact(&data, &fields()).unwrap();
        assert_eq!(bad, 0);
        assert_eq!(
            events[0],
            MarketEvent::Quote(DxQuote {
                symbol: "AAPL".into(),
                bid_price: Some(Price::parse("150.25").unwrap()),
                ask_price: None,
                bid_size: Some(Quantity::parse("100").unwrap()),
                ask_size: Some(Quantity::parse("250").unwrap()),
            })
        );
        assert!(matches!(&events[1], MarketEvent::Quote(q) if q.bid_size.is_none() && q.symbol.starts_with('.')));

        let data = raw(r#"["Trade", ["Trade", "SPY", 450.1, 5.2345678E7, "NaN"]]"#);
        let (events, _) = parse_compact(&data, &fields()).unwrap();
        assert_eq!(
            events,
            [MarketEvent::Trade(DxTrade {
                symbol: "SPY".into(),
                price: Some(Price::parse("450.1").unwrap()),
                size: None,
                day_volume: Some(Quantity::parse("52345678").unwrap()),
            })]
        );
    }

    #[test]
    fn bad_compact_data_is_refused_or_counted() {
        assert!(parse_compact(&raw(r#"[{"eventType": "Quote"}]"#), &fields()).is_err());
        assert!(parse_compact(&raw(r#"["Quote", ["Quote", "AAPL", 1]]"#), &fields()).is_err());
        assert!(parse_compact(&raw(r#"["Greeks", ["Greeks"]]"#), &fields()).is_err());
        let (events, bad) =
            parse_compact(&raw(r#"["Quote", ["Quote", "AAPL", 1.0000000001, true, 1, 1]]"#), &fields()).unwrap();
        assert_eq!(bad, 2);
        assert!(matches!(&events[0], MarketEvent::Quote(q) if q.bid_price.is_none() && q.ask_price.is_none()));
    }
}
