//! The Binance spot user data stream over the WebSocket API
//! (`wss://ws-api.binance.com:443/ws-api/v3`; testnet
//! `wss://ws-api.testnet.binance.vision/ws-api/v3`).
//!
//! Requests are JSON text frames `{"id", "method", "params"}`; answers are
//! `{"id", "status", "result" | "error": {"code", "msg"}}`. The stream
//! subscribes with `userDataStream.subscribe.signature` (`apiKey`,
//! `recvWindow`, `timestamp`, `signature` over the other parameters sorted by
//! name: HMAC-SHA256 hex or Ed25519 base64, as [`Credentials::sign`] makes),
//! which works with HMAC and Ed25519 keys alike and needs no `session.logon`.
//! Events then arrive as `{"subscriptionId": n, "event": {"e": ...}}`:
//! `executionReport`, `outboundAccountPosition`, `balanceUpdate`,
//! `listStatus`, and `eventStreamTerminated` when the subscription ends.
//! The REST `listenKey` flow (being retired by Binance) is not used.
//!
//! After any reconnect the stream emits
//! [`ConnectionEvent::Resubscribed`] with the [`Gap`] in which events may have
//! been missed: the caller must then reconcile orders and balances over REST.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use model::{Money, OrderStatus, Price, Quantity, Side, Timestamp};

use super::error::{BinanceError, ErrorCode};
use super::signing::{Credentials, encode_query};
use super::types::{Balance, BinanceOrderStatus, BinanceSide, millis};
use super::ws::{
    Backoff, Conn, ConnectionEvent, DisconnectReason, Gap, Keepalive, ReconnectPolicy, StatsSnapshot, StreamError,
    StreamStats, local_now_ms, now, resolve_url, shutdown_requested,
};

/// The WebSocket API of the spot test network (the default).
pub const USER_STREAM_TESTNET_URL: &str = "wss://ws-api.testnet.binance.vision/ws-api/v3";
/// The live WebSocket API; only with [`UserStreamConfig::production`].
pub const USER_STREAM_PRODUCTION_URL: &str = "wss://ws-api.binance.com:443/ws-api/v3";
const PRODUCTION_HOSTS: [&str; 1] = ["ws-api.binance.com"];

/// The subscribe method used.
const SUBSCRIBE_METHOD: &str = "userDataStream.subscribe.signature";

/// User data stream settings. The default talks to the testnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserStreamConfig {
    /// Use the live exchange. Off by default: the testnet is used.
    pub production: bool,
    /// Overrides the WebSocket API URL (a fake server in tests). A
    /// production host is refused unless `production` is set.
    pub url: Option<String>,
    /// `recvWindow` of the signed subscribe request (max 60 s).
    pub recv_window: Duration,
    /// Ask the server's time (`time` method) on each connection before
    /// subscribing, so local clock skew does not cause -1021.
    pub sync_time: bool,
    pub connect_timeout: Duration,
    /// How long to wait for the answer to `time` and the subscription.
    pub request_timeout: Duration,
    /// A connection with no frame at all for this long is dead: reconnect.
    pub idle_timeout: Duration,
    /// Our own ping interval; the server's pong keeps a quiet account's
    /// connection from looking silent. `None` relies on the server's pings.
    pub ping_interval: Option<Duration>,
    /// Reconnect before Binance's 24-hour connection limit.
    pub max_connection_age: Duration,
    pub reconnect: ReconnectPolicy,
    /// Events buffered for a slow consumer before the reader waits.
    pub channel_capacity: usize,
}

impl Default for UserStreamConfig {
    fn default() -> Self {
        Self {
            production: false,
            url: None,
            recv_window: Duration::from_secs(5),
            sync_time: true,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            ping_interval: Some(Duration::from_secs(20)),
            max_connection_age: Duration::from_secs(23 * 3600 + 30 * 60),
            reconnect: ReconnectPolicy::default(),
            channel_capacity: 1024,
        }
    }
}

impl UserStreamConfig {
    /// The URL connected to, after the production safety check.
    pub fn resolved_url(&self) -> Result<String, BinanceError> {
        if self.recv_window.is_zero() || self.recv_window > Duration::from_secs(60) {
            return Err(BinanceError::Config(format!(
                "recv_window must be between 1 ms and 60 s, got {:?}",
                self.recv_window
            )));
        }
        if self.idle_timeout.is_zero() || self.channel_capacity == 0 {
            return Err(BinanceError::Config("idle_timeout and channel_capacity must be positive".into()));
        }
        resolve_url(
            "user stream",
            self.url.as_deref(),
            self.production,
            USER_STREAM_PRODUCTION_URL,
            USER_STREAM_TESTNET_URL,
            &PRODUCTION_HOSTS,
        )
    }
}

/// What the user data stream delivers, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserStreamEvent {
    Connection(ConnectionEvent),
    /// `executionReport`: an order changed.
    Execution(Box<ExecutionUpdate>),
    /// `outboundAccountPosition`: the new free/locked balances of the assets
    /// an event changed.
    AccountPosition(AccountPosition),
    /// `balanceUpdate`: a deposit, withdrawal or transfer.
    BalanceDelta(BalanceDelta),
    /// `listStatus`: an order list (OCO, OTO, ...) changed.
    ListStatus(ListStatus),
}

/// Binance's execution type (`x`): what happened to the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionType {
    New,
    Canceled,
    Replaced,
    Rejected,
    Trade,
    Expired,
    TradePrevention,
    Amendment,
    #[serde(other)]
    Unknown,
}

/// An `executionReport`. Decimals are exact; times are the exchange's.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ExecutionUpdate {
    #[serde(rename = "E", deserialize_with = "de_ms")]
    pub event_time: Timestamp,
    #[serde(rename = "s")]
    pub symbol: String,
    /// The client order id of the request behind this event: the order's
    /// own id, or for a cancel the cancel request's id (the order's id is
    /// then in [`Self::orig_client_order_id`]). See [`Self::order_client_id`].
    #[serde(rename = "c")]
    pub client_order_id: String,
    #[serde(rename = "S", deserialize_with = "de_side")]
    pub side: Side,
    /// `LIMIT`, `MARKET`, `STOP_LOSS_LIMIT`, ...
    #[serde(rename = "o")]
    pub order_type: String,
    #[serde(rename = "f")]
    pub time_in_force: String,
    #[serde(rename = "q")]
    pub quantity: Quantity,
    #[serde(rename = "p")]
    pub price: Price,
    #[serde(rename = "P")]
    pub stop_price: Price,
    #[serde(rename = "g")]
    pub order_list_id: i64,
    /// `C`: the id of the order being cancelled (empty in Binance JSON
    /// otherwise, `None` here).
    #[serde(rename = "C", default, deserialize_with = "de_nonempty")]
    pub orig_client_order_id: Option<String>,
    #[serde(rename = "x")]
    pub execution_type: ExecutionType,
    #[serde(rename = "X")]
    pub status: BinanceOrderStatus,
    /// `NONE`, or why the order was rejected.
    #[serde(rename = "r")]
    pub reject_reason: String,
    #[serde(rename = "i")]
    pub order_id: u64,
    #[serde(rename = "l")]
    pub last_quantity: Quantity,
    #[serde(rename = "z")]
    pub cumulative_quantity: Quantity,
    #[serde(rename = "L")]
    pub last_price: Price,
    #[serde(rename = "n")]
    pub commission: Money,
    #[serde(rename = "N", default)]
    pub commission_asset: Option<String>,
    #[serde(rename = "T", deserialize_with = "de_ms")]
    pub transaction_time: Timestamp,
    /// `None` when Binance sends -1 (no trade).
    #[serde(rename = "t", deserialize_with = "de_trade_id")]
    pub trade_id: Option<u64>,
    #[serde(rename = "w")]
    pub is_working: bool,
    #[serde(rename = "m")]
    pub is_maker: bool,
    #[serde(rename = "O", deserialize_with = "de_ms")]
    pub order_creation_time: Timestamp,
    #[serde(rename = "Z")]
    pub cumulative_quote_quantity: Money,
    #[serde(rename = "Y", default)]
    pub last_quote_quantity: Money,
    #[serde(rename = "Q", default)]
    pub quote_order_quantity: Money,
    #[serde(rename = "W", default, deserialize_with = "de_opt_ms")]
    pub working_time: Option<Timestamp>,
    #[serde(rename = "V", default)]
    pub self_trade_prevention_mode: Option<String>,
}

/// The trade part of an `executionReport` with execution type `TRADE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionFill {
    pub trade_id: Option<u64>,
    pub price: Price,
    pub quantity: Quantity,
    pub quote_quantity: Money,
    /// In `commission_asset` (base, quote or BNB).
    pub commission: Money,
    pub commission_asset: Option<String>,
    pub is_maker: bool,
    pub time: Timestamp,
}

impl ExecutionUpdate {
    /// The client order id of the order this event is about (`C` on a
    /// cancel, else `c`): our `ClientOrderId`.
    #[must_use]
    pub fn order_client_id(&self) -> &str {
        self.orig_client_order_id.as_deref().unwrap_or(&self.client_order_id)
    }

    /// The model's order status, or `None` for a status this adapter does not know.
    #[must_use]
    pub fn model_status(&self) -> Option<OrderStatus> {
        self.status.to_model()
    }

    /// The fill, when this event is a trade.
    #[must_use]
    pub fn fill(&self) -> Option<ExecutionFill> {
        (self.execution_type == ExecutionType::Trade).then(|| ExecutionFill {
            trade_id: self.trade_id,
            price: self.last_price,
            quantity: self.last_quantity,
            quote_quantity: self.last_quote_quantity,
            commission: self.commission,
            commission_asset: self.commission_asset.clone(),
            is_maker: self.is_maker,
            time: self.transaction_time,
        })
    }

    /// The average fill price so far (`Z / z`), exact to 9 decimals.
    #[must_use]
    pub fn average_price(&self) -> Option<Price> {
        Price::from_ratio(self.cumulative_quote_quantity, self.cumulative_quantity, Quantity::ONE)
    }
}

/// `outboundAccountPosition`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountPosition {
    pub event_time: Timestamp,
    pub last_update_time: Timestamp,
    pub balances: Vec<Balance>,
}

/// `balanceUpdate`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BalanceDelta {
    #[serde(rename = "E", deserialize_with = "de_ms")]
    pub event_time: Timestamp,
    #[serde(rename = "a")]
    pub asset: String,
    #[serde(rename = "d")]
    pub delta: Money,
    #[serde(rename = "T", deserialize_with = "de_ms")]
    pub clear_time: Timestamp,
}

/// One order of a `listStatus`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ListOrder {
    #[serde(rename = "s")]
    pub symbol: String,
    #[serde(rename = "i")]
    pub order_id: u64,
    #[serde(rename = "c")]
    pub client_order_id: String,
}

/// `listStatus`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ListStatus {
    #[serde(rename = "E", deserialize_with = "de_ms")]
    pub event_time: Timestamp,
    #[serde(rename = "s")]
    pub symbol: String,
    #[serde(rename = "g")]
    pub order_list_id: i64,
    #[serde(rename = "c")]
    pub contingency_type: String,
    #[serde(rename = "l")]
    pub list_status_type: String,
    #[serde(rename = "L")]
    pub list_order_status: String,
    #[serde(rename = "r")]
    pub list_reject_reason: String,
    #[serde(rename = "C")]
    pub list_client_order_id: String,
    #[serde(rename = "T", deserialize_with = "de_ms")]
    pub transaction_time: Timestamp,
    #[serde(rename = "O", default)]
    pub orders: Vec<ListOrder>,
}

#[derive(Deserialize)]
struct RawAccountPosition {
    #[serde(rename = "E", deserialize_with = "de_ms")]
    event_time: Timestamp,
    #[serde(rename = "u", deserialize_with = "de_ms")]
    last_update_time: Timestamp,
    #[serde(rename = "B")]
    balances: Vec<RawBalance>,
}

#[derive(Deserialize)]
struct RawBalance {
    a: String,
    f: Money,
    l: Money,
}

fn de_ms<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
    i64::deserialize(d).map(millis)
}

fn de_opt_ms<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
    Option::<i64>::deserialize(d).map(|v| v.map(millis))
}

fn de_side<'de, D: Deserializer<'de>>(d: D) -> Result<Side, D::Error> {
    BinanceSide::deserialize(d).map(Side::from)
}

fn de_nonempty<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<String>::deserialize(d).map(|v| v.filter(|s| !s.is_empty()))
}

fn de_trade_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    i64::deserialize(d).map(|v| u64::try_from(v).ok())
}

/// What one text frame of the WebSocket API means to the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserFrame {
    /// A typed event for `subscription_id` (when the frame names one).
    Event { subscription_id: Option<u64>, event: UserStreamEvent },
    /// `eventStreamTerminated` for `subscription_id`.
    Terminated { subscription_id: Option<u64> },
    /// `serverShutdown`: reconnect.
    ServerShutdown,
    /// The answer to request `id`.
    Response { id: Option<Value>, status: u16, result: Value, error: Option<(ErrorCode, String)> },
    /// An event type this adapter does not map (logged and skipped).
    Ignored(String),
}

/// Parses one text frame from the WebSocket API. An `Err` is a malformed
/// frame (the reason, without the frame's content).
pub fn parse_user_frame(text: &str) -> Result<UserFrame, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    if let Some(event) = value.get("event") {
        let subscription_id = value.get("subscriptionId").and_then(Value::as_u64);
        return parse_event(event, subscription_id);
    }
    if value.get("e").is_some() {
        // An event without the wrapper.
        return parse_event(&value, None);
    }
    if let Some(status) = value.get("status").and_then(Value::as_u64) {
        let error = value.get("error").map(|e| {
            let code = e.get("code").and_then(Value::as_i64).unwrap_or(0);
            let msg = e.get("msg").and_then(Value::as_str).unwrap_or("").to_string();
            (ErrorCode::from_code(code), msg)
        });
        return Ok(UserFrame::Response {
            id: value.get("id").cloned(),
            status: u16::try_from(status).unwrap_or(u16::MAX),
            result: value.get("result").cloned().unwrap_or(Value::Null),
            error,
        });
    }
    Err("neither an event nor a response".into())
}

fn parse_event(event: &Value, subscription_id: Option<u64>) -> Result<UserFrame, String> {
    let kind = event.get("e").and_then(Value::as_str).ok_or("event without a type")?;
    let typed = |e: serde_json::Error| format!("{kind}: {e}");
    let event = match kind {
        "executionReport" => UserStreamEvent::Execution(Box::new(ExecutionUpdate::deserialize(event).map_err(typed)?)),
        "outboundAccountPosition" => {
            let raw = RawAccountPosition::deserialize(event).map_err(typed)?;
            UserStreamEvent::AccountPosition(AccountPosition {
                event_time: raw.event_time,
                last_update_time: raw.last_update_time,
                balances: raw.balances.into_iter().map(|b| Balance { asset: b.a, free: b.f, locked: b.l }).collect(),
            })
        }
        "balanceUpdate" => UserStreamEvent::BalanceDelta(BalanceDelta::deserialize(event).map_err(typed)?),
        "listStatus" => UserStreamEvent::ListStatus(ListStatus::deserialize(event).map_err(typed)?),
        "eventStreamTerminated" => return Ok(UserFrame::Terminated { subscription_id }),
        "serverShutdown" => return Ok(UserFrame::ServerShutdown),
        other => return Ok(UserFrame::Ignored(other.to_string())),
    };
    Ok(UserFrame::Event { subscription_id, event })
}

/// Starts user data streams.
#[derive(Debug)]
pub struct UserStream;

impl UserStream {
    /// Connects, subscribes, and keeps the subscription alive in a
    /// background task. The first event is [`ConnectionEvent::Connected`].
    ///
    /// A refused first subscription is an error (for example
    /// [`ErrorCode::InvalidSignature`] or [`ErrorCode::RejectedApiKey`]);
    /// later reconnects retry with back-off, except for refusals retrying
    /// cannot fix, which end the stream with [`ConnectionEvent::Stopped`].
    pub async fn connect(
        config: UserStreamConfig,
        credentials: Arc<Credentials>,
    ) -> Result<(UserStreamHandle, mpsc::Receiver<UserStreamEvent>), StreamError> {
        let url = config.resolved_url()?;
        if config.production {
            tracing::warn!(%url, "binance: user data stream on the LIVE exchange");
        }
        let stats = Arc::new(StreamStats::default());
        let (tx, rx) = mpsc::channel(config.channel_capacity);
        let mut session =
            Session { config, url: url.clone(), credentials, stats: stats.clone(), tx, offset_ms: 0, next_id: 1 };
        let (conn, subscription_id) = session.setup().await.map_err(|e| e.into_stream_error(&url))?;
        tracing::info!(%url, subscription_id, "binance: user data stream subscribed");
        let _ = session.tx.send(UserStreamEvent::Connection(ConnectionEvent::Connected { url })).await;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let task = tokio::spawn(session.run(conn, subscription_id, shutdown_rx));
        Ok((UserStreamHandle { shutdown: shutdown_tx, task, stats }, rx))
    }
}

/// Controls a running user data stream. Dropping it stops the stream.
#[derive(Debug)]
pub struct UserStreamHandle {
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
    stats: Arc<StreamStats>,
}

impl UserStreamHandle {
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
    Connect(String),
    Lost(DisconnectReason),
    Rejected { method: &'static str, status: u16, code: ErrorCode, msg: String },
    Timeout { method: &'static str, after: Duration },
    Unexpected(String),
}

impl SetupError {
    fn reason(&self) -> DisconnectReason {
        match self {
            Self::Connect(e) => DisconnectReason::ConnectFailed(e.clone()),
            Self::Lost(r) => r.clone(),
            Self::Rejected { code, msg, .. } => DisconnectReason::Rejected { code: Some(*code), msg: msg.clone() },
            Self::Timeout { method, after } => {
                DisconnectReason::Transport(format!("no answer to {method} within {after:?}"))
            }
            Self::Unexpected(e) => DisconnectReason::Transport(e.clone()),
        }
    }

    /// Refusals that retrying with the same key cannot fix.
    fn is_fatal(&self) -> bool {
        matches!(
            self,
            Self::Rejected {
                code: ErrorCode::InvalidSignature
                    | ErrorCode::RejectedApiKey
                    | ErrorCode::BadApiKeyFormat
                    | ErrorCode::Unauthorized,
                ..
            }
        )
    }

    fn into_stream_error(self, url: &str) -> StreamError {
        match self {
            Self::Connect(detail) => StreamError::Connect { url: url.to_string(), detail },
            Self::Lost(reason) => StreamError::Lost { url: url.to_string(), reason },
            Self::Rejected { method, status, code, msg } => {
                StreamError::Binance(BinanceError::Api { endpoint: format!("WS {method}"), status, code, msg })
            }
            Self::Timeout { method, after } => {
                StreamError::Binance(BinanceError::Timeout { endpoint: format!("WS {method}"), after })
            }
            Self::Unexpected(detail) => {
                StreamError::Binance(BinanceError::Decode { endpoint: format!("WS {SUBSCRIBE_METHOD}"), detail })
            }
        }
    }
}

/// How long a connection must have lived for the back-off to start over.
const STABLE_AFTER: Duration = Duration::from_secs(30);

struct Session {
    config: UserStreamConfig,
    url: String,
    credentials: Arc<Credentials>,
    stats: Arc<StreamStats>,
    tx: mpsc::Sender<UserStreamEvent>,
    /// Server time minus local time, from the `time` method.
    offset_ms: i64,
    next_id: u64,
}

enum Step {
    Continue,
    Emit(UserStreamEvent),
    Disconnect(DisconnectReason),
}

impl Session {
    fn keepalive(&self) -> Keepalive {
        Keepalive { idle_timeout: self.config.idle_timeout, ping_interval: self.config.ping_interval }
    }

    /// Opens a connection, syncs the clock, subscribes; returns the
    /// connection and the subscription id.
    async fn setup(&mut self) -> Result<(Conn, u64), SetupError> {
        let mut conn = Conn::open(&self.url, self.config.connect_timeout, self.keepalive(), self.stats.clone())
            .await
            .map_err(SetupError::Connect)?;
        if self.config.sync_time {
            let before = local_now_ms();
            let result = self.request(&mut conn, "time", None).await?;
            let after = local_now_ms();
            let server = result
                .get("serverTime")
                .and_then(Value::as_i64)
                .ok_or_else(|| SetupError::Unexpected("`time` answer without serverTime".into()))?;
            self.offset_ms = server - (before + after) / 2;
            tracing::debug!(offset_ms = self.offset_ms, "binance: user stream clock synced");
        }
        let params = self.subscribe_params();
        let result = self.request(&mut conn, SUBSCRIBE_METHOD, Some(params)).await?;
        let subscription_id = result
            .get("subscriptionId")
            .and_then(Value::as_u64)
            .ok_or_else(|| SetupError::Unexpected("subscribe answer without subscriptionId".into()))?;
        Ok((conn, subscription_id))
    }

    /// `apiKey`, `recvWindow`, `timestamp` and the signature over them,
    /// sorted by name as the WebSocket API requires.
    fn subscribe_params(&self) -> Value {
        let timestamp = local_now_ms().saturating_add(self.offset_ms);
        let recv_window = u64::try_from(self.config.recv_window.as_millis()).unwrap_or(60_000);
        let mut signed = [
            ("apiKey", self.credentials.api_key().to_string()),
            ("recvWindow", recv_window.to_string()),
            ("timestamp", timestamp.to_string()),
        ];
        signed.sort_by_key(|(k, _)| *k);
        let signature = self.credentials.sign(&encode_query(&signed));
        json!({
            "apiKey": self.credentials.api_key(),
            "recvWindow": recv_window,
            "timestamp": timestamp,
            "signature": signature,
        })
    }

    /// Sends one request and waits for its answer. Never logs the request
    /// (it carries the API key and signature).
    async fn request(
        &mut self,
        conn: &mut Conn,
        method: &'static str,
        params: Option<Value>,
    ) -> Result<Value, SetupError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut request = json!({ "id": id, "method": method });
        if let Some(params) = params {
            request["params"] = params;
        }
        conn.send_text(request.to_string()).await.map_err(SetupError::Lost)?;
        let after = self.config.request_timeout;
        let wait = async {
            loop {
                let text = conn.recv().await.map_err(SetupError::Lost)?;
                match parse_user_frame(&text) {
                    Ok(UserFrame::Response { id: Some(got), status, result, error }) if got == json!(id) => {
                        return match error {
                            Some((code, msg)) => Err(SetupError::Rejected { method, status, code, msg }),
                            None if status >= 400 => Err(SetupError::Rejected {
                                method,
                                status,
                                code: ErrorCode::Other(0),
                                msg: format!("HTTP-like status {status}"),
                            }),
                            None => Ok(result),
                        };
                    }
                    Ok(UserFrame::ServerShutdown) => return Err(SetupError::Lost(DisconnectReason::ServerShutdown)),
                    Ok(other) => tracing::debug!(?other, "binance: user stream frame ignored during setup"),
                    Err(e) => {
                        self.stats.malformed();
                        tracing::warn!(error = %e, "binance: malformed user stream frame skipped");
                    }
                }
            }
        };
        tokio::time::timeout(after, wait).await.map_err(|_| SetupError::Timeout { method, after })?
    }

    fn step(&self, text: &str, subscription_id: u64) -> Step {
        match parse_user_frame(text) {
            Ok(UserFrame::Event { subscription_id: Some(got), .. }) if got != subscription_id => {
                tracing::debug!(got, ours = subscription_id, "binance: event of another subscription ignored");
                Step::Continue
            }
            Ok(UserFrame::Event { event, .. }) => Step::Emit(event),
            Ok(UserFrame::Terminated { subscription_id: Some(got) }) if got != subscription_id => Step::Continue,
            Ok(UserFrame::Terminated { .. }) => Step::Disconnect(DisconnectReason::StreamTerminated),
            Ok(UserFrame::ServerShutdown) => Step::Disconnect(DisconnectReason::ServerShutdown),
            Ok(UserFrame::Response { status, error, .. }) => {
                tracing::debug!(status, ?error, "binance: unexpected WebSocket API answer ignored");
                Step::Continue
            }
            Ok(UserFrame::Ignored(kind)) => {
                tracing::debug!(%kind, "binance: user stream event type not mapped; skipped");
                Step::Continue
            }
            Err(e) => {
                self.stats.malformed();
                tracing::warn!(error = %e, "binance: malformed user stream frame skipped");
                Step::Continue
            }
        }
    }

    async fn emit(&self, event: UserStreamEvent) -> bool {
        self.tx.send(event).await.is_ok()
    }

    /// Reads events until the connection ends or must be replaced.
    async fn pump(
        &self,
        conn: &mut Conn,
        subscription_id: u64,
        shutdown: &mut watch::Receiver<bool>,
    ) -> DisconnectReason {
        let rotate_at = conn.opened_at() + self.config.max_connection_age;
        loop {
            let text = tokio::select! {
                r = conn.recv() => match r {
                    Ok(text) => text,
                    Err(reason) => return reason,
                },
                () = tokio::time::sleep_until(rotate_at.into()) => return DisconnectReason::Rotation { age: conn.age() },
                () = shutdown_requested(shutdown) => return DisconnectReason::Shutdown,
                () = self.tx.closed() => return DisconnectReason::Shutdown,
            };
            match self.step(&text, subscription_id) {
                Step::Continue => {}
                Step::Emit(event) => {
                    if !self.emit(event).await {
                        return DisconnectReason::Shutdown;
                    }
                }
                Step::Disconnect(reason) => return reason,
            }
        }
    }

    async fn run(mut self, mut conn: Conn, mut subscription_id: u64, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Backoff::new(self.config.reconnect);
        loop {
            let reason = self.pump(&mut conn, subscription_id, &mut shutdown).await;
            let lived = conn.age();
            conn.close().await;
            if reason == DisconnectReason::Shutdown {
                tracing::info!(url = %self.url, "binance: user data stream shut down");
                return;
            }
            if lived >= STABLE_AFTER {
                backoff.reset();
            }
            tracing::warn!(url = %self.url, %reason, "binance: user data stream disconnected; reconnecting");
            let disconnected_at = now();
            if !self.emit(UserStreamEvent::Connection(ConnectionEvent::Disconnected { reason: reason.clone() })).await {
                return;
            }
            let planned = matches!(
                reason,
                DisconnectReason::Rotation { .. }
                    | DisconnectReason::ServerShutdown
                    | DisconnectReason::StreamTerminated
            );
            let mut delay = if planned { Duration::ZERO } else { backoff.next_delay() };
            let mut attempts = 0u32;
            let (new_conn, new_id) = loop {
                if !delay.is_zero() {
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = shutdown_requested(&mut shutdown) => return,
                    }
                }
                attempts += 1;
                let result = tokio::select! {
                    r = self.setup() => r,
                    () = shutdown_requested(&mut shutdown) => return,
                };
                match result {
                    Ok(pair) => break pair,
                    Err(e) if e.is_fatal() => {
                        let reason = e.reason();
                        tracing::error!(url = %self.url, %reason, "binance: user data stream refused; stopping");
                        let _ = self.emit(UserStreamEvent::Connection(ConnectionEvent::Stopped { reason })).await;
                        return;
                    }
                    Err(e) => {
                        delay = backoff.next_delay();
                        let reason = e.reason();
                        tracing::warn!(url = %self.url, attempt = attempts, %reason, retry_in_ms = delay.as_millis(),
                            "binance: user data stream reconnect failed");
                        let event = ConnectionEvent::ReconnectFailed { attempt: attempts, reason, retry_in: delay };
                        if !self.emit(UserStreamEvent::Connection(event)).await {
                            return;
                        }
                    }
                }
            };
            conn = new_conn;
            subscription_id = new_id;
            self.stats.reconnected();
            let gap = Gap { disconnected_at, resubscribed_at: now(), reason, attempts };
            tracing::info!(url = %self.url, subscription_id, "binance: user data stream resubscribed; reconcile via REST");
            if !self.emit(UserStreamEvent::Connection(ConnectionEvent::Resubscribed { gap })).await {
                conn.close().await;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented `executionReport` example, in the WebSocket API wrapper.
    const DOC_EXECUTION_REPORT: &str = r#"{"subscriptionId":0,"event":{"e":"executionReport","E":1499405658658,
        "s":"ETHBTC","c":"mUvoqJxFIILMdfAW5iGSOW","S":"BUY","o":"LIMIT","f":"GTC","q":"1.00000000",
        "p":"0.10264410","P":"0.00000000","F":"0.00000000","g":-1,"C":"","x":"NEW","X":"NEW","r":"NONE",
        "i":4293153,"l":"0.00000000","z":"0.00000000","L":"0.00000000","n":"0","N":null,"T":1499405658657,
        "t":-1,"v":3,"I":8641984,"w":true,"m":false,"M":false,"O":1499405658657,"Z":"0.00000000",
        "Y":"0.00000000","Q":"0.00000000","W":1499405658657,"V":"NONE"}}"#;

    #[test]
    fn parses_the_documented_execution_report() {
        let UserFrame::Event { subscription_id, event: UserStreamEvent::Execution(x) } =
            parse_user_frame(DOC_EXECUTION_REPORT).unwrap()
        else {
            panic!("not an execution");
        };
        assert_eq!(subscription_id, Some(0));
        assert_eq!(x.symbol, "ETHBTC");
        assert_eq!(x.side, Side::Buy);
        assert_eq!(x.price, Price::parse("0.1026441").unwrap());
        assert_eq!(x.execution_type, ExecutionType::New);
        assert_eq!(x.model_status(), Some(OrderStatus::Accepted));
        assert_eq!(x.orig_client_order_id, None);
        assert_eq!(x.order_client_id(), "mUvoqJxFIILMdfAW5iGSOW");
        assert_eq!(x.trade_id, None);
        assert_eq!(x.commission_asset, None);
        assert_eq!(x.working_time, Some(millis(1_499_405_658_657)));
        assert!(x.fill().is_none());
    }

    #[test]
    fn parses_account_balance_list_and_terminal_events() {
        let pos = r#"{"subscriptionId":0,"event":{"e":"outboundAccountPosition","E":1564034571105,"u":1564034571073,
            "B":[{"a":"ETH","f":"10000.000000","l":"0.000000"}]}}"#;
        let UserFrame::Event { event: UserStreamEvent::AccountPosition(p), .. } = parse_user_frame(pos).unwrap() else {
            panic!()
        };
        assert_eq!(p.balances[0].free, Money::parse("10000").unwrap());
        let bal = r#"{"subscriptionId":0,"event":{"e":"balanceUpdate","E":1573200697110,"a":"BTC","d":"100.00000000","T":1573200697068}}"#;
        let UserFrame::Event { event: UserStreamEvent::BalanceDelta(b), .. } = parse_user_frame(bal).unwrap() else {
            panic!()
        };
        assert_eq!(b.delta, Money::parse("100").unwrap());
        let list = r#"{"subscriptionId":0,"event":{"e":"listStatus","E":1564035303637,"s":"ETHBTC","g":2,"c":"OCO",
            "l":"EXEC_STARTED","L":"EXECUTING","r":"NONE","C":"F4QN4G8DlFATFlIUQ0cjdD","T":1564035303625,
            "O":[{"s":"ETHBTC","i":17,"c":"AJYsMjErWJesZvqlJCTUgL"},{"s":"ETHBTC","i":18,"c":"bfYPSQdLoqAJeNrOr9adzq"}]}}"#;
        let UserFrame::Event { event: UserStreamEvent::ListStatus(l), .. } = parse_user_frame(list).unwrap() else {
            panic!()
        };
        assert_eq!(l.orders.len(), 2);
        let term = r#"{"subscriptionId":0,"event":{"e":"eventStreamTerminated","E":1728973001334}}"#;
        assert_eq!(parse_user_frame(term).unwrap(), UserFrame::Terminated { subscription_id: Some(0) });
        assert_eq!(parse_user_frame(r#"{"event":{"e":"serverShutdown","E":1}}"#).unwrap(), UserFrame::ServerShutdown);
        assert!(matches!(
            parse_user_frame(r#"{"subscriptionId":0,"event":{"e":"externalLockUpdate","E":1}}"#).unwrap(),
            UserFrame::Ignored(_)
        ));
    }

    #[test]
    fn malformed_frames_are_errors_not_panics() {
        for bad in [
            "",
            "not json",
            "[]",
            "{}",
            r#"{"event":{}}"#,
            r#"{"event":{"e":"executionReport"}}"#,
            r#"{"event":{"e":"balanceUpdate","E":1,"a":"BTC","d":"1e5","T":1}}"#,
            r#"{"event":{"e":"outboundAccountPosition","E":1,"u":1,"B":[{"a":"X","f":1.5,"l":"0"}]}}"#,
        ] {
            assert!(parse_user_frame(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn responses_carry_the_error_code() {
        let r = parse_user_frame(
            r#"{"id":3,"status":400,"error":{"code":-1022,"msg":"Signature for this request is not valid."}}"#,
        )
        .unwrap();
        let UserFrame::Response { id, status, error, .. } = r else { panic!() };
        assert_eq!(id, Some(json!(3)));
        assert_eq!(status, 400);
        assert_eq!(error.unwrap().0, ErrorCode::InvalidSignature);
    }

    #[test]
    fn testnet_by_default() {
        assert_eq!(UserStreamConfig::default().resolved_url().unwrap(), USER_STREAM_TESTNET_URL);
        let live = UserStreamConfig { production: true, ..UserStreamConfig::default() };
        assert_eq!(live.resolved_url().unwrap(), USER_STREAM_PRODUCTION_URL);
        let sneaky =
            UserStreamConfig { url: Some("wss://ws-api.binance.com/ws-api/v3".into()), ..UserStreamConfig::default() };
        assert!(sneaky.resolved_url().is_err());
    }

    #[test]
    fn signature_covers_the_sorted_parameters() {
        let creds = Arc::new(Credentials::hmac("key1", "secret1").unwrap());
        let (tx, _rx) = mpsc::channel(1);
        let s = Session {
            config: UserStreamConfig::default(),
            url: String::new(),
            credentials: creds.clone(),
            stats: Arc::default(),
            tx,
            offset_ms: 0,
            next_id: 1,
        };
        let p = s.subscribe_params();
        let payload = format!("apiKey=key1&recvWindow=5000&timestamp={}", p["timestamp"]);
        assert_eq!(p["signature"], json!(creds.sign(&payload)));
    }
}
