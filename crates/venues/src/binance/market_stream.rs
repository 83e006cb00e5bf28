//! Binance spot public market streams (`wss://stream.binance.com:9443`;
//! testnet `wss://stream.testnet.binance.vision`): trades
//! (`<symbol>@trade`), best bid/ask (`<symbol>@bookTicker`) and klines
//! (`<symbol>@kline_<interval>`) for a set of symbols, over one combined
//! connection (`/stream?streams=a/b/c`, events wrapped as
//! `{"stream", "data"}`). Streams are added and removed live with
//! `SUBSCRIBE` / `UNSUBSCRIBE` (`{"method", "params", "id"}` answered by
//! `{"result": null, "id"}` or `{"code", "msg", "id"}`).
//!
//! The connection answers the server's pings, sends its own so a quiet
//! market does not look dead, reconnects when nothing arrives within the
//! idle timeout, rotates before Binance's 24-hour limit, and after any
//! reconnect subscribes to exactly the same set of streams again (emitting
//! [`ConnectionEvent::Resubscribed`]; updates in the gap are lost, so a
//! caller that keeps state from them should refresh it).

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use model::{Money, Price, Quantity, Side, Timestamp};

use super::error::BinanceError;
use super::types::millis;
use super::ws::{
    Backoff, Conn, ConnectionEvent, DisconnectReason, Gap, Keepalive, ReconnectPolicy, StatsSnapshot, StreamError,
    StreamStats, now, resolve_url, shutdown_requested,
};

/// Market streams of the spot test network (the default).
pub const MARKET_STREAM_TESTNET_URL: &str = "wss://stream.testnet.binance.vision";
/// Live market streams; only with [`MarketStreamConfig::production`].
pub const MARKET_STREAM_PRODUCTION_URL: &str = "wss://stream.binance.com:9443";
const PRODUCTION_HOSTS: [&str; 2] = ["stream.binance.com", "data-stream.binance.vision"];
/// Binance: a single connection can listen to at most 1024 streams.
pub const MAX_STREAMS_PER_CONNECTION: usize = 1024;
/// Streams named in the connection URL; more are added with `SUBSCRIBE`.
const STREAMS_IN_URL: usize = 100;
/// Streams per `SUBSCRIBE` message.
const STREAMS_PER_REQUEST: usize = 100;
/// Binance allows 5 incoming messages per second (pings and pongs count).
const MIN_CONTROL_INTERVAL: Duration = Duration::from_millis(250);

/// Kline intervals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KlineInterval {
    S1,
    M1,
    M3,
    M5,
    M15,
    M30,
    H1,
    H2,
    H4,
    H6,
    H8,
    H12,
    D1,
    D3,
    W1,
    Mo1,
}

const INTERVALS: [(KlineInterval, &str); 16] = [
    (KlineInterval::S1, "1s"),
    (KlineInterval::M1, "1m"),
    (KlineInterval::M3, "3m"),
    (KlineInterval::M5, "5m"),
    (KlineInterval::M15, "15m"),
    (KlineInterval::M30, "30m"),
    (KlineInterval::H1, "1h"),
    (KlineInterval::H2, "2h"),
    (KlineInterval::H4, "4h"),
    (KlineInterval::H6, "6h"),
    (KlineInterval::H8, "8h"),
    (KlineInterval::H12, "12h"),
    (KlineInterval::D1, "1d"),
    (KlineInterval::D3, "3d"),
    (KlineInterval::W1, "1w"),
    (KlineInterval::Mo1, "1M"),
];

impl KlineInterval {
    /// Binance's name (`1m`, `1M` is a month).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        INTERVALS.iter().find(|(i, _)| *i == self).map_or("1m", |(_, s)| s)
    }

    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        INTERVALS.iter().find(|(_, s)| *s == text).map(|(i, _)| *i)
    }
}

impl fmt::Display for KlineInterval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One market stream of one symbol. Symbols are kept upper case (as in
/// REST); stream names are lower case, as Binance requires.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MarketChannel {
    Trades { symbol: String },
    BookTicker { symbol: String },
    Klines { symbol: String, interval: KlineInterval },
}

impl MarketChannel {
    #[must_use]
    pub fn trades(symbol: &str) -> Self {
        Self::Trades { symbol: symbol.trim().to_ascii_uppercase() }
    }

    #[must_use]
    pub fn book_ticker(symbol: &str) -> Self {
        Self::BookTicker { symbol: symbol.trim().to_ascii_uppercase() }
    }

    #[must_use]
    pub fn klines(symbol: &str, interval: KlineInterval) -> Self {
        Self::Klines { symbol: symbol.trim().to_ascii_uppercase(), interval }
    }

    /// Trades, book ticker and the given kline intervals for each symbol.
    #[must_use]
    pub fn for_symbols(symbols: &[&str], intervals: &[KlineInterval]) -> BTreeSet<Self> {
        let mut set = BTreeSet::new();
        for s in symbols {
            set.insert(Self::trades(s));
            set.insert(Self::book_ticker(s));
            for i in intervals {
                set.insert(Self::klines(s, *i));
            }
        }
        set
    }

    #[must_use]
    pub fn symbol(&self) -> &str {
        match self {
            Self::Trades { symbol } | Self::BookTicker { symbol } | Self::Klines { symbol, .. } => symbol,
        }
    }

    /// The Binance stream name, e.g. `btcusdt@kline_1m`.
    #[must_use]
    pub fn stream_name(&self) -> String {
        let s = self.symbol().to_ascii_lowercase();
        match self {
            Self::Trades { .. } => format!("{s}@trade"),
            Self::BookTicker { .. } => format!("{s}@bookTicker"),
            Self::Klines { interval, .. } => format!("{s}@kline_{interval}"),
        }
    }

    /// The channel of a stream name.
    #[must_use]
    pub fn from_stream_name(name: &str) -> Option<Self> {
        let (symbol, kind) = name.split_once('@')?;
        let channel = match kind {
            "trade" => Self::trades(symbol),
            "bookTicker" => Self::book_ticker(symbol),
            _ => Self::klines(symbol, KlineInterval::parse(kind.strip_prefix("kline_")?)?),
        };
        channel.is_valid().then_some(channel)
    }

    fn is_valid(&self) -> bool {
        let s = self.symbol();
        !s.is_empty() && s.len() <= 32 && s.bytes().all(|b| b.is_ascii_alphanumeric())
    }
}

/// Market stream settings. The default talks to the testnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketStreamConfig {
    /// Use the live exchange's streams. Off by default: the testnet is used.
    pub production: bool,
    /// Overrides the base URL (a fake server in tests); `/stream?streams=`
    /// is appended. A production host is refused unless `production` is set.
    pub url: Option<String>,
    pub connect_timeout: Duration,
    /// How long to wait for the answer to a `SUBSCRIBE` on a new connection.
    pub request_timeout: Duration,
    /// No frame at all (data, ping, pong) for this long: reconnect.
    pub idle_timeout: Duration,
    /// Our own ping interval (the pong keeps a quiet market alive).
    pub ping_interval: Option<Duration>,
    /// Reconnect before Binance's 24-hour connection limit.
    pub max_connection_age: Duration,
    pub reconnect: ReconnectPolicy,
    /// Events buffered for a slow consumer before the reader waits.
    pub channel_capacity: usize,
}

impl Default for MarketStreamConfig {
    fn default() -> Self {
        Self {
            production: false,
            url: None,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            ping_interval: Some(Duration::from_secs(20)),
            max_connection_age: Duration::from_secs(23 * 3600 + 30 * 60),
            reconnect: ReconnectPolicy::default(),
            channel_capacity: 4096,
        }
    }
}

impl MarketStreamConfig {
    /// The base URL, after the production safety check.
    pub fn resolved_url(&self) -> Result<String, BinanceError> {
        if self.idle_timeout.is_zero() || self.channel_capacity == 0 {
            return Err(BinanceError::Config("idle_timeout and channel_capacity must be positive".into()));
        }
        resolve_url(
            "market stream",
            self.url.as_deref(),
            self.production,
            MARKET_STREAM_PRODUCTION_URL,
            MARKET_STREAM_TESTNET_URL,
            &PRODUCTION_HOSTS,
        )
    }
}

/// A trade (`<symbol>@trade`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TradeUpdate {
    #[serde(rename = "E", deserialize_with = "de_ms")]
    pub event_time: Timestamp,
    #[serde(rename = "s")]
    pub symbol: String,
    #[serde(rename = "t")]
    pub trade_id: u64,
    #[serde(rename = "p")]
    pub price: Price,
    #[serde(rename = "q")]
    pub quantity: Quantity,
    #[serde(rename = "T", deserialize_with = "de_ms")]
    pub trade_time: Timestamp,
    #[serde(rename = "m")]
    pub buyer_is_maker: bool,
}

impl TradeUpdate {
    /// The side of the taker (the aggressor).
    #[must_use]
    pub fn aggressor_side(&self) -> Side {
        if self.buyer_is_maker { Side::Sell } else { Side::Buy }
    }
}

/// Best bid and ask (`<symbol>@bookTicker`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BookTickerUpdate {
    #[serde(rename = "u")]
    pub update_id: u64,
    #[serde(rename = "s")]
    pub symbol: String,
    #[serde(rename = "b")]
    pub bid_price: Price,
    #[serde(rename = "B")]
    pub bid_quantity: Quantity,
    #[serde(rename = "a")]
    pub ask_price: Price,
    #[serde(rename = "A")]
    pub ask_quantity: Quantity,
}

/// A kline update (`<symbol>@kline_<interval>`); `closed` marks the final
/// update of a bar. Volumes are [`Money`] (wide decimals): a busy bar's base
/// volume can exceed the `Quantity` range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KlineUpdate {
    pub event_time: Timestamp,
    pub symbol: String,
    pub interval: KlineInterval,
    pub open_time: Timestamp,
    pub close_time: Timestamp,
    pub open: Price,
    pub high: Price,
    pub low: Price,
    pub close: Price,
    pub volume: Money,
    pub quote_volume: Money,
    pub taker_buy_volume: Money,
    pub taker_buy_quote_volume: Money,
    pub trades: u64,
    pub first_trade_id: i64,
    pub last_trade_id: i64,
    pub closed: bool,
}

#[derive(Deserialize)]
struct RawKlineEvent {
    #[serde(rename = "E", deserialize_with = "de_ms")]
    event_time: Timestamp,
    #[serde(rename = "s")]
    symbol: String,
    k: RawKline,
}

#[derive(Deserialize)]
struct RawKline {
    #[serde(deserialize_with = "de_ms")]
    t: Timestamp,
    #[serde(rename = "T", deserialize_with = "de_ms")]
    close_time: Timestamp,
    i: String,
    f: i64,
    #[serde(rename = "L")]
    last_trade_id: i64,
    o: Price,
    c: Price,
    h: Price,
    l: Price,
    v: Money,
    n: u64,
    x: bool,
    q: Money,
    #[serde(rename = "V")]
    taker_buy_volume: Money,
    #[serde(rename = "Q")]
    taker_buy_quote_volume: Money,
}

fn de_ms<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
    i64::deserialize(d).map(millis)
}

/// What the market stream delivers, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarketEvent {
    Connection(ConnectionEvent),
    Trade(TradeUpdate),
    BookTicker(BookTickerUpdate),
    Kline(Box<KlineUpdate>),
    /// Binance refused a live `SUBSCRIBE`/`UNSUBSCRIBE`; a refused
    /// subscription is dropped from the set.
    RequestFailed {
        method: &'static str,
        streams: Vec<String>,
        code: i64,
        msg: String,
    },
}

/// What one text frame of a combined market stream means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarketFrame {
    Event(MarketEvent),
    /// `{"result": .., "id": n}` or `{"code", "msg", "id": n}`.
    Response {
        id: Option<u64>,
        error: Option<(i64, String)>,
    },
    /// A stream this adapter does not map.
    Ignored(String),
}

/// Parses one text frame of a combined stream. An `Err` is a malformed
/// frame (the reason, without the frame's content).
pub fn parse_market_frame(text: &str) -> Result<MarketFrame, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    if let (Some(stream), Some(data)) = (value.get("stream").and_then(Value::as_str), value.get("data")) {
        let Some(channel) = MarketChannel::from_stream_name(stream) else {
            return Ok(MarketFrame::Ignored(stream.to_string()));
        };
        let bad = |e: serde_json::Error| format!("{stream}: {e}");
        let event = match channel {
            MarketChannel::Trades { .. } => MarketEvent::Trade(TradeUpdate::deserialize(data).map_err(bad)?),
            MarketChannel::BookTicker { .. } => {
                MarketEvent::BookTicker(BookTickerUpdate::deserialize(data).map_err(bad)?)
            }
            MarketChannel::Klines { .. } => {
                let raw = RawKlineEvent::deserialize(data).map_err(bad)?;
                let interval = KlineInterval::parse(&raw.k.i).ok_or_else(|| format!("{stream}: unknown interval"))?;
                MarketEvent::Kline(Box::new(KlineUpdate {
                    event_time: raw.event_time,
                    symbol: raw.symbol,
                    interval,
                    open_time: raw.k.t,
                    close_time: raw.k.close_time,
                    open: raw.k.o,
                    high: raw.k.h,
                    low: raw.k.l,
                    close: raw.k.c,
                    volume: raw.k.v,
                    quote_volume: raw.k.q,
                    taker_buy_volume: raw.k.taker_buy_volume,
                    taker_buy_quote_volume: raw.k.taker_buy_quote_volume,
                    trades: raw.k.n,
                    first_trade_id: raw.k.f,
                    last_trade_id: raw.k.last_trade_id,
                    closed: raw.k.x,
                }))
            }
        };
        return Ok(MarketFrame::Event(event));
    }
    let id = value.get("id").and_then(Value::as_u64);
    if let Some(code) = value.get("code").and_then(Value::as_i64) {
        let msg = value.get("msg").and_then(Value::as_str).unwrap_or("").to_string();
        return Ok(MarketFrame::Response { id, error: Some((code, msg)) });
    }
    if value.get("result").is_some() && value.get("id").is_some() {
        return Ok(MarketFrame::Response { id, error: None });
    }
    Err("neither a stream event nor a response".into())
}

enum Command {
    Subscribe(Vec<MarketChannel>),
    Unsubscribe(Vec<MarketChannel>),
}

/// Starts market streams.
#[derive(Debug)]
pub struct MarketStream;

impl MarketStream {
    /// Connects to the given streams and keeps them flowing in a background
    /// task. The first event is [`ConnectionEvent::Connected`].
    pub async fn connect(
        config: MarketStreamConfig,
        channels: impl IntoIterator<Item = MarketChannel>,
    ) -> Result<(MarketStreamHandle, mpsc::Receiver<MarketEvent>), StreamError> {
        let base = config.resolved_url()?;
        let desired: BTreeSet<MarketChannel> = channels.into_iter().collect();
        check_channels(&desired, 0)?;
        if desired.is_empty() {
            return Err(BinanceError::Config("no market streams to subscribe to".into()).into());
        }
        let stats = Arc::new(StreamStats::default());
        let (tx, rx) = mpsc::channel(config.channel_capacity);
        let mut session = MarketSession {
            config,
            base,
            desired,
            stats: stats.clone(),
            tx,
            next_id: 1,
            pending: HashMap::new(),
            last_control: None,
        };
        let conn = session.setup().await.map_err(|e| e.into_stream_error(&session.base))?;
        let url = session.base.clone();
        tracing::info!(%url, streams = session.desired.len(), "binance: market streams connected");
        let _ = session.tx.send(MarketEvent::Connection(ConnectionEvent::Connected { url })).await;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let (cmd_tx, cmd_rx) = mpsc::channel(64);
        let task = tokio::spawn(session.run(conn, cmd_rx, shutdown_rx));
        Ok((MarketStreamHandle { shutdown: shutdown_tx, commands: cmd_tx, task, stats }, rx))
    }
}

fn check_channels(channels: &BTreeSet<MarketChannel>, already: usize) -> Result<(), BinanceError> {
    if let Some(bad) = channels.iter().find(|c| !c.is_valid()) {
        return Err(BinanceError::Config(format!("'{}' is not a Binance symbol", bad.symbol())));
    }
    if channels.len() + already > MAX_STREAMS_PER_CONNECTION {
        return Err(BinanceError::Config(format!(
            "at most {MAX_STREAMS_PER_CONNECTION} streams per connection, asked for {}",
            channels.len() + already
        )));
    }
    Ok(())
}

/// Controls a running market stream. Dropping it stops the stream.
#[derive(Debug)]
pub struct MarketStreamHandle {
    shutdown: watch::Sender<bool>,
    commands: mpsc::Sender<Command>,
    task: JoinHandle<()>,
    stats: Arc<StreamStats>,
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Subscribe(c) => write!(f, "Subscribe({})", c.len()),
            Self::Unsubscribe(c) => write!(f, "Unsubscribe({})", c.len()),
        }
    }
}

impl MarketStreamHandle {
    #[must_use]
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Adds streams (sent as `SUBSCRIBE` now, and part of every reconnect).
    pub async fn subscribe(&self, channels: impl IntoIterator<Item = MarketChannel>) -> Result<(), StreamError> {
        let channels: BTreeSet<MarketChannel> = channels.into_iter().collect();
        check_channels(&channels, 0)?;
        self.command(Command::Subscribe(channels.into_iter().collect())).await
    }

    /// Removes streams (sent as `UNSUBSCRIBE`).
    pub async fn unsubscribe(&self, channels: impl IntoIterator<Item = MarketChannel>) -> Result<(), StreamError> {
        self.command(Command::Unsubscribe(channels.into_iter().collect())).await
    }

    async fn command(&self, cmd: Command) -> Result<(), StreamError> {
        self.commands
            .send(cmd)
            .await
            .map_err(|_| StreamError::Binance(BinanceError::Config("the market stream has stopped".into())))
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
    Rejected { code: i64, msg: String },
    Timeout(Duration),
}

impl SetupError {
    fn reason(&self) -> DisconnectReason {
        match self {
            Self::Connect(e) => DisconnectReason::ConnectFailed(e.clone()),
            Self::Lost(r) => r.clone(),
            Self::Rejected { code, msg } => DisconnectReason::Rejected { code: None, msg: format!("{code}: {msg}") },
            Self::Timeout(after) => DisconnectReason::Transport(format!("no answer to SUBSCRIBE within {after:?}")),
        }
    }

    fn into_stream_error(self, url: &str) -> StreamError {
        match self {
            Self::Connect(detail) => StreamError::Connect { url: url.to_string(), detail },
            Self::Timeout(after) => {
                StreamError::Binance(BinanceError::Timeout { endpoint: "WS SUBSCRIBE".into(), after })
            }
            other => StreamError::Lost { url: url.to_string(), reason: other.reason() },
        }
    }
}

const STABLE_AFTER: Duration = Duration::from_secs(30);

struct MarketSession {
    config: MarketStreamConfig,
    base: String,
    /// The streams every connection subscribes to.
    desired: BTreeSet<MarketChannel>,
    stats: Arc<StreamStats>,
    tx: mpsc::Sender<MarketEvent>,
    next_id: u64,
    /// Live requests awaiting an answer: id → (method, streams).
    pending: HashMap<u64, (&'static str, Vec<MarketChannel>)>,
    last_control: Option<Instant>,
}

enum Step {
    Continue,
    Emit(MarketEvent),
}

impl MarketSession {
    fn stream_names(channels: &[MarketChannel]) -> Vec<String> {
        channels.iter().map(MarketChannel::stream_name).collect()
    }

    /// Opens a connection with the desired streams in the URL (the first
    /// [`STREAMS_IN_URL`]) and `SUBSCRIBE`s the rest, waiting for each answer.
    async fn setup(&mut self) -> Result<Conn, SetupError> {
        let all: Vec<MarketChannel> = self.desired.iter().cloned().collect();
        let (in_url, rest) = all.split_at(all.len().min(STREAMS_IN_URL));
        let url = format!("{}/stream?streams={}", self.base, Self::stream_names(in_url).join("/"));
        let keepalive = Keepalive { idle_timeout: self.config.idle_timeout, ping_interval: self.config.ping_interval };
        let mut conn = Conn::open(&url, self.config.connect_timeout, keepalive, self.stats.clone())
            .await
            .map_err(SetupError::Connect)?;
        self.pending.clear();
        self.last_control = None;
        for chunk in rest.chunks(STREAMS_PER_REQUEST) {
            let id = self.send_request(&mut conn, "SUBSCRIBE", chunk).await.map_err(SetupError::Lost)?;
            self.pending.remove(&id);
            let after = self.config.request_timeout;
            let wait = async {
                loop {
                    let text = conn.recv().await.map_err(SetupError::Lost)?;
                    match parse_market_frame(&text) {
                        Ok(MarketFrame::Response { id: Some(got), error }) if got == id => {
                            return match error {
                                Some((code, msg)) => Err(SetupError::Rejected { code, msg }),
                                None => Ok(()),
                            };
                        }
                        Ok(MarketFrame::Event(event)) => {
                            // Data for the streams already subscribed.
                            if self.tx.send(event).await.is_err() {
                                return Err(SetupError::Lost(DisconnectReason::Shutdown));
                            }
                        }
                        Ok(_) => {}
                        Err(e) => {
                            self.stats.malformed();
                            tracing::warn!(error = %e, "binance: malformed market frame skipped");
                        }
                    }
                }
            };
            tokio::time::timeout(after, wait).await.map_err(|_| SetupError::Timeout(after))??;
        }
        Ok(conn)
    }

    /// Sends `SUBSCRIBE`/`UNSUBSCRIBE`, paced under Binance's message limit.
    async fn send_request(
        &mut self,
        conn: &mut Conn,
        method: &'static str,
        channels: &[MarketChannel],
    ) -> Result<u64, DisconnectReason> {
        if let Some(last) = self.last_control {
            tokio::time::sleep_until((last + MIN_CONTROL_INTERVAL).into()).await;
        }
        let id = self.next_id;
        self.next_id += 1;
        let msg = json!({ "method": method, "params": Self::stream_names(channels), "id": id });
        conn.send_text(msg.to_string()).await?;
        self.last_control = Some(Instant::now());
        self.pending.insert(id, (method, channels.to_vec()));
        Ok(id)
    }

    fn step(&mut self, text: &str) -> Step {
        match parse_market_frame(text) {
            Ok(MarketFrame::Event(event)) => Step::Emit(event),
            Ok(MarketFrame::Response { id, error }) => {
                let request = id.and_then(|id| self.pending.remove(&id));
                match (error, request) {
                    (None, _) => Step::Continue,
                    (Some((code, msg)), Some((method, channels))) => {
                        tracing::warn!(method, code, %msg, "binance: market stream request refused");
                        if method == "SUBSCRIBE" {
                            for c in &channels {
                                self.desired.remove(c);
                            }
                        }
                        Step::Emit(MarketEvent::RequestFailed {
                            method,
                            streams: Self::stream_names(&channels),
                            code,
                            msg,
                        })
                    }
                    (Some((code, msg)), None) => {
                        tracing::warn!(code, %msg, "binance: market stream error");
                        Step::Continue
                    }
                }
            }
            Ok(MarketFrame::Ignored(stream)) => {
                tracing::debug!(%stream, "binance: market stream not mapped; skipped");
                Step::Continue
            }
            Err(e) => {
                self.stats.malformed();
                tracing::warn!(error = %e, "binance: malformed market frame skipped");
                Step::Continue
            }
        }
    }

    async fn apply(&mut self, conn: &mut Conn, cmd: Command) -> Result<(), DisconnectReason> {
        match cmd {
            Command::Subscribe(channels) => {
                let new: Vec<MarketChannel> = channels.into_iter().filter(|c| !self.desired.contains(c)).collect();
                if self.desired.len() + new.len() > MAX_STREAMS_PER_CONNECTION {
                    let _ = self
                        .tx
                        .send(MarketEvent::RequestFailed {
                            method: "SUBSCRIBE",
                            streams: Self::stream_names(&new),
                            code: -1,
                            msg: format!("at most {MAX_STREAMS_PER_CONNECTION} streams per connection"),
                        })
                        .await;
                    return Ok(());
                }
                self.desired.extend(new.iter().cloned());
                for chunk in new.chunks(STREAMS_PER_REQUEST) {
                    self.send_request(conn, "SUBSCRIBE", chunk).await?;
                }
            }
            Command::Unsubscribe(channels) => {
                let gone: Vec<MarketChannel> = channels.into_iter().filter(|c| self.desired.remove(c)).collect();
                for chunk in gone.chunks(STREAMS_PER_REQUEST) {
                    self.send_request(conn, "UNSUBSCRIBE", chunk).await?;
                }
            }
        }
        Ok(())
    }

    async fn pump(
        &mut self,
        conn: &mut Conn,
        commands: &mut mpsc::Receiver<Command>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> DisconnectReason {
        let rotate_at = conn.opened_at() + self.config.max_connection_age;
        loop {
            let text = tokio::select! {
                r = conn.recv() => match r {
                    Ok(text) => text,
                    Err(reason) => return reason,
                },
                cmd = commands.recv() => {
                    let Some(cmd) = cmd else { return DisconnectReason::Shutdown };
                    if let Err(reason) = self.apply(conn, cmd).await {
                        return reason;
                    }
                    continue;
                }
                () = tokio::time::sleep_until(rotate_at.into()) => return DisconnectReason::Rotation { age: conn.age() },
                () = shutdown_requested(shutdown) => return DisconnectReason::Shutdown,
                () = self.tx.closed() => return DisconnectReason::Shutdown,
            };
            match self.step(&text) {
                Step::Continue => {}
                Step::Emit(event) => {
                    if self.tx.send(event).await.is_err() {
                        return DisconnectReason::Shutdown;
                    }
                }
            }
        }
    }

    async fn emit(&self, event: ConnectionEvent) -> bool {
        self.tx.send(MarketEvent::Connection(event)).await.is_ok()
    }

    async fn run(mut self, mut conn: Conn, mut commands: mpsc::Receiver<Command>, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Backoff::new(self.config.reconnect);
        loop {
            let reason = self.pump(&mut conn, &mut commands, &mut shutdown).await;
            let lived = conn.age();
            conn.close().await;
            if reason == DisconnectReason::Shutdown {
                tracing::info!(url = %self.base, "binance: market streams shut down");
                return;
            }
            if lived >= STABLE_AFTER {
                backoff.reset();
            }
            tracing::warn!(url = %self.base, %reason, "binance: market streams disconnected; reconnecting");
            let disconnected_at = now();
            if !self.emit(ConnectionEvent::Disconnected { reason: reason.clone() }).await {
                return;
            }
            let planned = matches!(reason, DisconnectReason::Rotation { .. });
            let mut delay = if planned { Duration::ZERO } else { backoff.next_delay() };
            let mut attempts = 0u32;
            conn = loop {
                if !delay.is_zero() {
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = shutdown_requested(&mut shutdown) => return,
                    }
                }
                // Commands that arrived while disconnected only change the set.
                while let Ok(cmd) = commands.try_recv() {
                    match cmd {
                        Command::Subscribe(c) => {
                            if self.desired.len() + c.len() <= MAX_STREAMS_PER_CONNECTION {
                                self.desired.extend(c);
                            }
                        }
                        Command::Unsubscribe(c) => c.iter().for_each(|c| {
                            self.desired.remove(c);
                        }),
                    }
                }
                attempts += 1;
                let result = if self.desired.is_empty() {
                    Err(SetupError::Rejected { code: 0, msg: "no streams left to subscribe to".into() })
                } else {
                    tokio::select! {
                        r = self.setup() => r,
                        () = shutdown_requested(&mut shutdown) => return,
                    }
                };
                match result {
                    Ok(c) => break c,
                    Err(SetupError::Lost(DisconnectReason::Shutdown)) => return,
                    Err(e) => {
                        delay = backoff.next_delay();
                        let reason = e.reason();
                        tracing::warn!(url = %self.base, attempt = attempts, %reason, retry_in_ms = delay.as_millis(),
                            "binance: market stream reconnect failed");
                        if !self
                            .emit(ConnectionEvent::ReconnectFailed { attempt: attempts, reason, retry_in: delay })
                            .await
                        {
                            return;
                        }
                    }
                }
            };
            self.stats.reconnected();
            let gap = Gap { disconnected_at, resubscribed_at: now(), reason, attempts };
            tracing::info!(url = %self.base, streams = self.desired.len(), "binance: market streams resubscribed");
            if !self.emit(ConnectionEvent::Resubscribed { gap }).await {
                conn.close().await;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_round_trip() {
        for c in MarketChannel::for_symbols(&["btcUSDT", "ETHBTC"], &[KlineInterval::M1, KlineInterval::Mo1]) {
            assert_eq!(MarketChannel::from_stream_name(&c.stream_name()), Some(c.clone()), "{c:?}");
        }
        assert_eq!(MarketChannel::klines("BTCUSDT", KlineInterval::Mo1).stream_name(), "btcusdt@kline_1M");
        assert_eq!(MarketChannel::book_ticker("bnbusdt").stream_name(), "bnbusdt@bookTicker");
        assert_eq!(MarketChannel::from_stream_name("btcusdt@depth"), None);
        assert_eq!(MarketChannel::from_stream_name("btc-usdt@trade"), None);
        assert_eq!(MarketChannel::from_stream_name("btcusdt@kline_7m"), None);
    }

    #[test]
    fn parses_the_documented_payloads() {
        let trade = r#"{"stream":"bnbbtc@trade","data":{"e":"trade","E":1672515782136,"s":"BNBBTC","t":12345,
            "p":"0.001","q":"100","b":88,"a":50,"T":1672515782136,"m":true,"M":true}}"#;
        let MarketFrame::Event(MarketEvent::Trade(t)) = parse_market_frame(trade).unwrap() else { panic!() };
        assert_eq!(t.price, Price::parse("0.001").unwrap());
        assert_eq!(t.quantity, Quantity::parse("100").unwrap());
        assert_eq!(t.aggressor_side(), Side::Sell);
        let book = r#"{"stream":"bnbusdt@bookTicker","data":{"u":400900217,"s":"BNBUSDT","b":"25.35190000",
            "B":"31.21000000","a":"25.36520000","A":"40.66000000"}}"#;
        let MarketFrame::Event(MarketEvent::BookTicker(b)) = parse_market_frame(book).unwrap() else { panic!() };
        assert_eq!(b.ask_price.to_string(), "25.3652");
        let kline = r#"{"stream":"bnbbtc@kline_1m","data":{"e":"kline","E":1672515782136,"s":"BNBBTC","k":{
            "t":1672515780000,"T":1672515839999,"s":"BNBBTC","i":"1m","f":100,"L":200,"o":"0.0010","c":"0.0020",
            "h":"0.0025","l":"0.0015","v":"1000","n":100,"x":false,"q":"1.0000","V":"500","Q":"0.500","B":"123456"}}}"#;
        let MarketFrame::Event(MarketEvent::Kline(k)) = parse_market_frame(kline).unwrap() else { panic!() };
        assert_eq!(k.interval, KlineInterval::M1);
        assert_eq!(k.high, Price::parse("0.0025").unwrap());
        assert!(!k.closed);
        assert_eq!(
            parse_market_frame(r#"{"result":null,"id":1}"#).unwrap(),
            MarketFrame::Response { id: Some(1), error: None }
        );
        assert_eq!(
            parse_market_frame(r#"{"code":2,"msg":"Invalid request","id":4}"#).unwrap(),
            MarketFrame::Response { id: Some(4), error: Some((2, "Invalid request".into())) }
        );
    }

    #[test]
    fn malformed_frames_are_errors_not_panics() {
        for bad in [
            "",
            "{",
            "{}",
            r#"{"stream":"btcusdt@trade","data":{}}"#,
            r#"{"stream":"btcusdt@trade","data":{"E":1,"s":"X","t":1,"p":"1.5e3","q":"1","T":1,"m":true}}"#,
            r#"{"stream":"btcusdt@trade","data":{"E":1,"s":"X","t":-5,"p":"1","q":"1","T":1,"m":true}}"#,
            r#"{"stream":"btcusdt@kline_1m","data":{"E":1,"s":"X","k":{"i":"9m"}}}"#,
        ] {
            assert!(parse_market_frame(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn testnet_by_default() {
        assert_eq!(MarketStreamConfig::default().resolved_url().unwrap(), MARKET_STREAM_TESTNET_URL);
        let live = MarketStreamConfig { production: true, ..MarketStreamConfig::default() };
        assert_eq!(live.resolved_url().unwrap(), MARKET_STREAM_PRODUCTION_URL);
        let sneaky =
            MarketStreamConfig { url: Some("wss://stream.binance.com:9443".into()), ..MarketStreamConfig::default() };
        assert!(sneaky.resolved_url().is_err());
    }
}
