//! The WebSocket API at `/api/v1/ws`: named channels of market data and of
//! the caller's accounts.
//!
//! Protocol (JSON text frames; docs/api.md has examples of every message):
//! - client: `{"op":"subscribe","channels":["quotes:BTC-USDT","orders"],"after_seq":{"7":120}}`,
//!   `{"op":"unsubscribe","channels":[...]}`, `{"op":"ping"}`;
//! - server: `{"type":"subscribed","channels":[...]}`, `{"type":"unsubscribed",...}`,
//!   `{"type":"pong"}`, `{"type":"error","code":...,"message":...,"channel":...}`,
//!   and the channels' messages, each `{"type":...,"channel":...,"seq":N,"data":...}`
//!   (plus `"account"` on the account channels).
//!
//! A subscribe takes all its channels or, if one is refused, none. Errors
//! never close the connection; their codes are `bad_message`,
//! `unknown_channel`, `unauthorized`, `unknown_account` (an `after_seq` key
//! that is not the caller's), `too_many_channels`, `unavailable` (the store
//! failed) and `lagged` (bot updates dropped).
//!
//! Channels:
//! - `quotes:SYMBOL` (`type` `quote`) and `candles:SYMBOL:INTERVAL` (`candle`,
//!   closed candles once stored; intervals `1m`, `5m`, `1h`, `1d`): market
//!   data, no sign-in needed. `seq` counts this connection's market-data and
//!   bot messages.
//! - `orders` (`order`): every order event of the caller's accounts, with
//!   `data` `{"event":KIND,"order":ORDER}`, the order as that event left it.
//! - `fills` (`fill`): every fill of the caller's accounts.
//! - `positions` / `balances` (`positions` / `balances`): on subscribe the
//!   current rows of each account (`"snapshot":true`), then the rows each
//!   durable change wrote (`"snapshot":false`: the positions it touched; all
//!   balances).
//! - `bots` (`bot`): updates of the bots trading the caller's accounts.
//! - `trading` (`trading`): the kill switches that apply to the caller, the
//!   global one and each of their accounts' own, sent whole on subscribe and
//!   after every change.
//! - `account:ID` (`event`): the raw journal of one of the caller's accounts,
//!   every event as stored.
//!
//! The account channels cover every account the caller owns, including ones
//! opened after subscribing (ownership is asked once per account and
//! remembered); nothing of another user's account ever reaches the socket.
//! Without a signed-in caller with the read scope they answer `unauthorized`.
//!
//! `orders`, `fills`, `positions`, `balances` and `account:ID` carry the
//! account's journal `seq` and are sent only once durable, in journal order.
//! `orders`, `fills` and `account:ID` are resumable: a client that reconnects
//! passes, per account, the last `seq` it saw in `after_seq` (one map for
//! every resumable channel of the message), and first gets what it missed
//! from the journal, channel by channel, then live events, nothing lost or
//! repeated. A replayed order event carries the order as that event left it
//! too: the journal is read back to where each order began. These streams are
//! never conflated: a subscriber that falls behind the live broadcast is
//! caught up from the journal instead, and `positions`/`balances` are sent
//! again as snapshots.
//!
//! Market data is conflated: a client that reads slowly gets the latest quote
//! of each instrument and the latest candle of each channel, not a backlog.
//! One that stays behind (writes to it take over [`SLOW_WRITE`]
//! [`MAX_LAG_STRIKES`] times in a row, or one frame takes over
//! [`WRITE_TIMEOUT`]) is disconnected, with close code 1008 if it still
//! listens. Nobody else waits for it: each connection has its own task and
//! its own receivers of the broadcasts. The server pings every
//! [`HEARTBEAT`]; a client silent for three heartbeats is dropped.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use axum::routing::get;
use model::account::{Position, SwitchScope, TradingState};
use model::event::{Event, EventKind};
use model::{Currency, Fill, InstrumentId, Money, Order, OrderId};
use serde::{Deserialize, Serialize};
use sim::candles::{Candle, Interval};
use store::auth::UserId;
use store::{AccountId, Store, StoreError};
use tokio::sync::broadcast::error::RecvError;

use crate::accounts::{AccountUpdate, Holdings, OrderFold, order_of};
use crate::app::AppState;
use crate::auth::{Caller, Scope};
use crate::runtime::{BotUpdate, QuoteFrame};
use futures_util::FutureExt;
use futures_util::stream::{FuturesUnordered, StreamExt};

/// How often the server pings.
pub const HEARTBEAT: Duration = Duration::from_secs(15);
/// Consecutive slow writes of market data before a client is dropped.
pub const MAX_LAG_STRIKES: u32 = 20;
/// A write of market data that takes longer than this means the client is
/// behind (a strike).
pub const SLOW_WRITE: Duration = Duration::from_secs(1);
/// How long a client may take to accept one frame before it is dropped.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// The most channels one connection may hold.
const MAX_CHANNELS: usize = 256;
/// Journal rows read per query when catching up.
const PAGE: u32 = 1_000;

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/ws", get(upgrade))
}

async fn upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: Result<Caller, crate::error::ApiError>,
    ws: WebSocketUpgrade,
) -> Result<Response, crate::error::ApiError> {
    // Without (valid) credentials the socket still serves market data.
    let caller = caller.ok();
    // A browser's cookie rides along on any site's WebSocket: only our own
    // origins may open one with it.
    if caller.is_some() {
        crate::auth::check_origin(&headers, &state.config)?;
    }
    let user = caller.filter(|c| c.scopes.contains(Scope::Read)).map(|c| c.user_id);
    // Only what identifies the caller is kept, to check it again while the socket lives.
    let credentials = user.map(|_| {
        let mut kept = HeaderMap::new();
        for name in [header::AUTHORIZATION, header::COOKIE] {
            if let Some(value) = headers.get(&name) {
                kept.insert(name, value.clone());
            }
        }
        kept
    });
    // Client messages are small: a 4 KiB read buffer instead of the default
    // 128 KiB keeps 10,000 idle sockets in tens of megabytes, not gigabytes.
    Ok(ws
        .max_message_size(64 * 1024)
        .read_buffer_size(4 * 1024)
        .on_upgrade(move |socket| connection(state, user, credentials, socket)))
}

#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum ClientMessage {
    Subscribe {
        channels: Vec<String>,
        /// Per account id: the last journal seq already seen.
        #[serde(default)]
        after_seq: BTreeMap<String, u64>,
    },
    Unsubscribe {
        channels: Vec<String>,
    },
    Ping,
}

/// `data` of a `trading` message: the kill switches that apply to the caller.
#[derive(Debug, Serialize)]
struct TradingStates {
    global: TradingState,
    accounts: Vec<AccountTradingState>,
}

#[derive(Debug, Serialize)]
struct AccountTradingState {
    account: AccountId,
    state: TradingState,
}

/// `data` of an `order` message.
#[derive(Debug, Serialize)]
struct OrderChange<'a> {
    /// The event's kind, e.g. `order_filled`.
    event: &'static str,
    /// The order right after the event (`null` only if the server cannot
    /// tell, which the journal should never cause).
    order: Option<&'a Order>,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ServerMessage<'a> {
    Subscribed {
        channels: Vec<String>,
    },
    Unsubscribed {
        channels: Vec<String>,
    },
    Candle {
        channel: &'a str,
        seq: u64,
        data: &'a Candle,
    },
    Event {
        channel: String,
        seq: u64,
        data: &'a Event,
    },
    Order {
        channel: &'static str,
        account: AccountId,
        seq: u64,
        data: OrderChange<'a>,
    },
    Fill {
        channel: &'static str,
        account: AccountId,
        seq: u64,
        data: &'a Fill,
    },
    Positions {
        channel: &'static str,
        account: AccountId,
        seq: u64,
        snapshot: bool,
        data: &'a [Position],
    },
    Balances {
        channel: &'static str,
        account: AccountId,
        seq: u64,
        snapshot: bool,
        data: &'a [(Currency, Money)],
    },
    Bot {
        channel: &'static str,
        account: AccountId,
        bot: i64,
        seq: u64,
        data: &'a serde_json::Value,
    },
    Trading {
        channel: &'static str,
        seq: u64,
        data: TradingStates,
    },
    Pong,
    Error {
        code: &'static str,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        channel: Option<String>,
    },
}

fn text(message: &ServerMessage<'_>) -> Message {
    Message::Text(Utf8Bytes::from(serde_json::to_string(message).unwrap_or_default()))
}

/// The connection must end (the client is gone or too slow, or the store failed).
#[derive(Debug)]
struct Closed;

/// Sends one frame, giving up on a client that does not take it in time.
async fn send(socket: &mut WebSocket, message: &ServerMessage<'_>) -> Result<(), Closed> {
    match tokio::time::timeout(WRITE_TIMEOUT, socket.send(text(message))).await {
        Ok(Ok(())) => {
            crate::telemetry::ws_sent();
            Ok(())
        }
        _ => Err(Closed),
    }
}

/// [`send`] for a frame already written.
async fn send_text(socket: &mut WebSocket, text: String) -> Result<(), Closed> {
    match tokio::time::timeout(WRITE_TIMEOUT, socket.send(Message::Text(Utf8Bytes::from(text)))).await {
        Ok(Ok(())) => {
            crate::telemetry::ws_sent();
            Ok(())
        }
        _ => Err(Closed),
    }
}

/// Tells the client why it is being disconnected, if it still listens.
async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) {
    let frame = Message::Close(Some(CloseFrame { code, reason: Utf8Bytes::from_static(reason) }));
    let _ = tokio::time::timeout(Duration::from_secs(1), socket.send(frame)).await;
}

/// The account channels that cover all of the caller's accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Scoped {
    Orders,
    Fills,
    Positions,
    Balances,
    Bots,
    Trading,
}

impl Scoped {
    const ALL: [Self; 6] = [Self::Orders, Self::Fills, Self::Positions, Self::Balances, Self::Bots, Self::Trading];

    const fn name(self) -> &'static str {
        match self {
            Self::Orders => "orders",
            Self::Fills => "fills",
            Self::Positions => "positions",
            Self::Balances => "balances",
            Self::Bots => "bots",
            Self::Trading => "trading",
        }
    }
}

/// A channel name, understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Channel {
    Quotes(InstrumentId),
    Candles(InstrumentId, Interval),
    Account(AccountId),
    Scoped(Scoped),
}

/// The journal streams that can be caught up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Journal {
    /// `account:ID`: every event.
    Raw,
    Orders,
    Fills,
}

/// Per account: the journal seq a stream has been sent up to.
type Cursors = BTreeMap<AccountId, u64>;

/// What one connection is subscribed to.
#[derive(Debug, Default)]
struct Subscriptions {
    /// Quote channels by instrument, with their names.
    quotes: BTreeMap<InstrumentId, String>,
    /// Candle channels, with their names.
    candles: BTreeMap<(InstrumentId, Interval), String>,
    /// `account:ID` streams.
    accounts: Cursors,
    orders: Option<Cursors>,
    fills: Option<Cursors>,
    positions: Option<Cursors>,
    balances: Option<Cursors>,
    bots: bool,
    /// `trading`: the kill-switch states last sent, per account of the caller.
    trading: Option<BTreeMap<AccountId, TradingState>>,
}

impl Subscriptions {
    fn len(&self) -> usize {
        let scoped = Scoped::ALL.iter().filter(|s| self.has_scoped(**s)).count();
        self.quotes.len() + self.candles.len() + self.accounts.len() + scoped
    }

    fn has_scoped(&self, s: Scoped) -> bool {
        match s {
            Scoped::Orders => self.orders.is_some(),
            Scoped::Fills => self.fills.is_some(),
            Scoped::Positions => self.positions.is_some(),
            Scoped::Balances => self.balances.is_some(),
            Scoped::Bots => self.bots,
            Scoped::Trading => self.trading.is_some(),
        }
    }

    fn has(&self, channel: &Channel) -> bool {
        match channel {
            Channel::Quotes(i) => self.quotes.contains_key(i),
            Channel::Candles(i, interval) => self.candles.contains_key(&(*i, *interval)),
            Channel::Account(a) => self.accounts.contains_key(a),
            Channel::Scoped(s) => self.has_scoped(*s),
        }
    }

    /// Whether any channel follows all of the caller's accounts' journals.
    fn follows_journals(&self) -> bool {
        self.orders.is_some() || self.fills.is_some() || self.positions.is_some() || self.balances.is_some()
    }

    fn cursors(&mut self, journal: Journal) -> Option<&mut Cursors> {
        match journal {
            Journal::Raw => Some(&mut self.accounts),
            Journal::Orders => self.orders.as_mut(),
            Journal::Fills => self.fills.as_mut(),
        }
    }

    fn holdings(&mut self, positions: bool) -> Option<&mut Cursors> {
        if positions { self.positions.as_mut() } else { self.balances.as_mut() }
    }
}

/// A subscription refused, with its stable code.
struct Refusal {
    code: &'static str,
    message: String,
}

impl Refusal {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

struct Connection {
    state: AppState,
    /// The signed-in caller with the read scope, if any.
    user: Option<UserId>,
    /// The headers that signed them in, checked again on every client
    /// message and heartbeat: a revoked token or ended session ends the socket.
    credentials: Option<HeaderMap>,
    socket: WebSocket,
    subs: Subscriptions,
    /// Whether an account is the caller's, once asked.
    owners: BTreeMap<AccountId, bool>,
    /// Seq of this connection's market-data and bot messages.
    seq: u64,
    /// Conflation buffers: the newest unsent quote per instrument and candle
    /// per channel. They hold what the client has not taken yet, so a slow
    /// client gets the latest values rather than a backlog.
    pending_quotes: BTreeMap<InstrumentId, Arc<QuoteFrame>>,
    pending_candles: BTreeMap<(InstrumentId, Interval), Candle>,
    /// Market-data writes in a row that took longer than [`SLOW_WRITE`].
    lag_strikes: u32,
    /// One wait per followed instrument for its next quote.
    quote_waits: FuturesUnordered<QuoteWait>,
    /// The current subscription of each followed instrument: a wait of an
    /// older one (unsubscribed since) is dropped when it ends.
    quote_generation: BTreeMap<InstrumentId, u64>,
    generations: u64,
}

type QuoteReceiver = tokio::sync::watch::Receiver<Option<Arc<QuoteFrame>>>;

/// Resolves when the instrument's quote changes (`false`: the feed is gone).
type QuoteWait = futures_util::future::BoxFuture<'static, (InstrumentId, u64, QuoteReceiver, bool)>;

fn wait_for_quote(instrument: InstrumentId, generation: u64, mut receiver: QuoteReceiver) -> QuoteWait {
    Box::pin(async move {
        let alive = receiver.changed().await.is_ok();
        (instrument, generation, receiver, alive)
    })
}

async fn connection(state: AppState, user: Option<UserId>, credentials: Option<HeaderMap>, socket: WebSocket) {
    let _counted = crate::telemetry::WsConnection::open();
    let mut connection = Connection {
        state,
        user,
        credentials,
        socket,
        subs: Subscriptions::default(),
        owners: BTreeMap::new(),
        seq: 0,
        pending_quotes: BTreeMap::new(),
        pending_candles: BTreeMap::new(),
        lag_strikes: 0,
        quote_waits: FuturesUnordered::new(),
        quote_generation: BTreeMap::new(),
        generations: 0,
    };
    let _ = connection.run().await;
}

impl Connection {
    fn store(&self) -> &Store {
        &self.state.runtime.store
    }

    async fn run(&mut self) -> Result<(), Closed> {
        let runtime = Arc::clone(&self.state.runtime);
        // Subscribed before any channel is, so nothing durable after this
        // point can be missed.
        let mut candles = runtime.subscribe_candles();
        let mut updates = runtime.subscribe_updates();
        let mut bots = runtime.subscribe_bot_updates();
        let mut global = runtime.watch_global_state();
        let mut closing = self.state.closing.subscribe();
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        heartbeat.tick().await;
        let mut last_heard = Instant::now();
        loop {
            tokio::select! {
                incoming = self.socket.recv() => {
                    let Some(Ok(message)) = incoming else { return Err(Closed) };
                    last_heard = Instant::now();
                    self.still_signed_in().await?;
                    match message {
                        Message::Text(body) => self.on_text(body.as_str()).await?,
                        Message::Close(_) => return Err(Closed),
                        // Pings are answered by axum; pongs just prove liveness.
                        _ => {}
                    }
                }
                update = updates.recv() => match update {
                    Ok(update) => self.on_update(&update).await?,
                    // Missed live events: read them back from the journal.
                    Err(RecvError::Lagged(_)) => self.on_updates_lagged().await?,
                    Err(RecvError::Closed) => return Err(Closed),
                },
                Some(changed) = self.quote_waits.next(), if !self.quote_waits.is_empty() => {
                    // Each instrument's channel keeps only its newest quote,
                    // so a burst is one quote per instrument here.
                    self.on_quote_changed(changed);
                    while let Some(Some(changed)) = self.quote_waits.next().now_or_never() {
                        self.on_quote_changed(changed);
                    }
                    self.flush_market().await?;
                }
                received = candles.recv() => {
                    match received {
                        Ok(candle) => self.buffer_candle(candle),
                        Err(RecvError::Lagged(_)) => continue,
                        Err(RecvError::Closed) => return Err(Closed),
                    }
                    while let Ok(candle) = candles.try_recv() {
                        self.buffer_candle(candle);
                    }
                    self.flush_market().await?;
                }
                update = bots.recv() => match update {
                    Ok(update) => self.on_bot(&update).await?,
                    Err(RecvError::Lagged(missed)) => {
                        if self.subs.bots {
                            crate::telemetry::ws_dropped(missed);
                            let message = format!("{missed} bot updates were dropped because this connection fell behind");
                            self.error("lagged", message, Some("bots")).await?;
                        }
                    }
                    Err(RecvError::Closed) => return Err(Closed),
                },
                changed = closing.changed() => {
                    let stopping = changed.is_err() || *closing.borrow();
                    if stopping {
                        close(&mut self.socket, 1001, "server shutting down; reconnect").await;
                        return Err(Closed);
                    }
                }
                changed = global.changed() => {
                    if changed.is_err() {
                        return Err(Closed);
                    }
                    if self.subs.trading.is_some() {
                        self.send_trading().await?;
                    }
                }
                _ = heartbeat.tick() => {
                    self.still_signed_in().await?;
                    if last_heard.elapsed() > HEARTBEAT * 3 {
                        close(&mut self.socket, 1001, "no heartbeat").await;
                        return Err(Closed);
                    }
                    let ping = self.socket.send(Message::Ping(Vec::new().into()));
                    if !matches!(tokio::time::timeout(WRITE_TIMEOUT, ping).await, Ok(Ok(()))) {
                        return Err(Closed);
                    }
                }
            }
        }
    }

    /// Ends a signed-in socket whose credentials no longer hold (token
    /// revoked or expired, session ended, user disabled, read scope gone).
    async fn still_signed_in(&mut self) -> Result<(), Closed> {
        let (Some(user), Some(headers)) = (self.user, &self.credentials) else { return Ok(()) };
        match crate::auth::recheck(headers, &self.state).await {
            Ok(caller) if caller.user_id == user && caller.scopes.contains(Scope::Read) => Ok(()),
            // The database could not be asked: keep the socket, ask again later.
            Err(e) if e.status.is_server_error() => Ok(()),
            _ => {
                close(&mut self.socket, 1008, "credentials revoked or expired; sign in again").await;
                Err(Closed)
            }
        }
    }

    async fn error(&mut self, code: &'static str, message: String, channel: Option<&str>) -> Result<(), Closed> {
        let channel = channel.map(str::to_string);
        send(&mut self.socket, &ServerMessage::Error { code, message, channel }).await
    }

    /// The store failed mid-stream: the client should reconnect and resume.
    async fn store_failed(&mut self, e: &StoreError) -> Closed {
        tracing::warn!(error = %e, "websocket stream stopped: store error");
        close(&mut self.socket, 1011, "server error; reconnect and resume").await;
        Closed
    }

    // -- market data ---------------------------------------------------------

    /// Takes an instrument's new quote and waits for the next one, unless
    /// the instrument was unsubscribed (or subscribed again) meanwhile.
    fn on_quote_changed(
        &mut self,
        (instrument, generation, mut receiver, alive): (InstrumentId, u64, QuoteReceiver, bool),
    ) {
        if !alive || self.quote_generation.get(&instrument) != Some(&generation) {
            return;
        }
        let frame = receiver.borrow_and_update().clone();
        if let Some(frame) = frame
            && self.pending_quotes.insert(instrument, frame).is_some()
        {
            // The client had not taken the previous one: conflated away.
            crate::telemetry::ws_dropped(1);
        }
        self.quote_waits.push(wait_for_quote(instrument, generation, receiver));
    }

    /// Starts following an instrument's quotes (once per subscription).
    fn follow_quotes(&mut self, instrument: InstrumentId) {
        if self.quote_generation.contains_key(&instrument) {
            return;
        }
        let Some(receiver) = self.state.runtime.subscribe_quotes(instrument) else { return };
        self.generations += 1;
        self.quote_generation.insert(instrument, self.generations);
        self.quote_waits.push(wait_for_quote(instrument, self.generations, receiver));
    }

    fn buffer_candle(&mut self, candle: Candle) {
        let key = (candle.instrument, candle.interval);
        if self.subs.candles.contains_key(&key) && self.pending_candles.insert(key, candle).is_some() {
            crate::telemetry::ws_dropped(1);
        }
    }

    /// Sends the pending market data. A client that takes long to accept
    /// it, [`MAX_LAG_STRIKES`] times in a row, is behind for good: dropped.
    async fn flush_market(&mut self) -> Result<(), Closed> {
        let started = Instant::now();
        for (instrument, quote) in std::mem::take(&mut self.pending_quotes) {
            // Unsubscribed meanwhile: drop it.
            let Some(channel) = self.subs.quotes.get(&instrument) else { continue };
            self.seq += 1;
            // The quote's JSON is shared by every connection; only the envelope is ours.
            let channel = serde_json::to_string(channel).unwrap_or_default();
            let text = format!(r#"{{"type":"quote","channel":{channel},"seq":{},"data":{}}}"#, self.seq, quote.json);
            send_text(&mut self.socket, text).await?;
        }
        for (key, candle) in std::mem::take(&mut self.pending_candles) {
            let Some(channel) = self.subs.candles.get(&key) else { continue };
            self.seq += 1;
            send(&mut self.socket, &ServerMessage::Candle { channel, seq: self.seq, data: &candle }).await?;
        }
        if started.elapsed() < SLOW_WRITE {
            self.lag_strikes = 0;
            return Ok(());
        }
        self.lag_strikes += 1;
        if self.lag_strikes >= MAX_LAG_STRIKES {
            close(&mut self.socket, 1008, "too slow").await;
            return Err(Closed);
        }
        Ok(())
    }

    // -- the caller's accounts -----------------------------------------------

    /// Whether the account is the caller's. Asked once per account; a store
    /// failure is not remembered, so the next update asks again.
    async fn is_mine(&mut self, account: AccountId) -> bool {
        let Some(user) = self.user else { return false };
        if let Some(mine) = self.owners.get(&account) {
            return *mine;
        }
        match self.store().account_owner(account).await {
            Ok(owner) => {
                let mine = owner == Some(user);
                self.owners.insert(account, mine);
                mine
            }
            Err(e) => {
                tracing::warn!(account, error = %e, "websocket: account owner not known");
                false
            }
        }
    }

    /// Every account the caller owns now.
    async fn my_accounts(&mut self) -> Result<Vec<AccountId>, StoreError> {
        let Some(user) = self.user else { return Ok(Vec::new()) };
        let accounts: Vec<AccountId> = self.store().owned_accounts(user).await?.into_iter().map(|a| a.id).collect();
        for account in &accounts {
            self.owners.insert(*account, true);
        }
        Ok(accounts)
    }

    async fn on_update(&mut self, update: &AccountUpdate) -> Result<(), Closed> {
        let account = update.account;
        if let EventKind::TradingStateChanged { scope: SwitchScope::Account, state } = &update.event.kind
            && self.subs.trading.is_some()
            && self.is_mine(account).await
        {
            if let Some(states) = self.subs.trading.as_mut() {
                states.insert(account, *state);
            }
            self.send_trading().await?;
        }
        if let Some(&last) = self.subs.accounts.get(&account)
            && update.seq > last
        {
            let message =
                ServerMessage::Event { channel: format!("account:{account}"), seq: update.seq, data: &update.event };
            send(&mut self.socket, &message).await?;
            self.subs.accounts.insert(account, update.seq);
        }
        if !self.subs.follows_journals() || !self.is_mine(account).await {
            return Ok(());
        }
        for journal in [Journal::Orders, Journal::Fills] {
            let Some(cursors) = self.subs.cursors(journal) else { continue };
            // An account first seen now was opened after subscribing: it is
            // followed from its first event.
            let mut cursor = *cursors.entry(account).or_insert(0);
            if update.seq <= cursor {
                continue;
            }
            if update.seq > cursor + 1 {
                // Something was missed (or the account is new to us): the
                // journal has it, this update included.
                cursor = self.replay(journal, account, cursor).await?;
            }
            if update.seq > cursor {
                self.send_live(journal, update).await?;
                cursor = update.seq;
            }
            if let Some(cursors) = self.subs.cursors(journal) {
                cursors.insert(account, cursor);
            }
        }
        for positions in [true, false] {
            let Some(cursors) = self.subs.holdings(positions) else { continue };
            match cursors.get(&account).copied() {
                // New to us: its current rows already include this update.
                None => self.snapshot(account, positions).await?,
                Some(cursor) if update.seq > cursor => {
                    if let Some(holdings) = &update.holdings {
                        self.send_holdings(
                            account,
                            update.seq,
                            false,
                            positions,
                            &holdings.positions,
                            &holdings.balances,
                        )
                        .await?;
                    }
                    if let Some(cursors) = self.subs.holdings(positions) {
                        cursors.insert(account, update.seq);
                    }
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Sends a live update on `orders` or `fills`, if it is one of theirs.
    async fn send_live(&mut self, journal: Journal, update: &AccountUpdate) -> Result<(), Closed> {
        let (account, seq) = (update.account, update.seq);
        match journal {
            Journal::Orders if order_of(&update.event.kind).is_some() => {
                let data = OrderChange { event: update.event.kind.name(), order: update.order.as_ref() };
                send(&mut self.socket, &ServerMessage::Order { channel: "orders", account, seq, data }).await
            }
            Journal::Fills => match &update.event.kind {
                EventKind::OrderFilled { fill } => {
                    send(&mut self.socket, &ServerMessage::Fill { channel: "fills", account, seq, data: fill }).await
                }
                _ => Ok(()),
            },
            _ => Ok(()),
        }
    }

    async fn send_holdings(
        &mut self,
        account: AccountId,
        seq: u64,
        snapshot: bool,
        positions: bool,
        position_rows: &[Position],
        balance_rows: &[(Currency, Money)],
    ) -> Result<(), Closed> {
        let message = if positions {
            if position_rows.is_empty() && !snapshot {
                return Ok(());
            }
            ServerMessage::Positions { channel: "positions", account, seq, snapshot, data: position_rows }
        } else {
            if balance_rows.is_empty() && !snapshot {
                return Ok(());
            }
            ServerMessage::Balances { channel: "balances", account, seq, snapshot, data: balance_rows }
        };
        send(&mut self.socket, &message).await
    }

    /// Sends the account's current positions or balances and remembers the
    /// seq they are as of, so older live updates are not sent after them.
    async fn snapshot(&mut self, account: AccountId, positions: bool) -> Result<(), Closed> {
        let (seq, rows) = match read_holdings(self.store(), account, positions).await {
            Ok(rows) => rows,
            Err(e) => return Err(self.store_failed(&e).await),
        };
        self.send_holdings(account, seq, true, positions, &rows.positions, &rows.balances).await?;
        if let Some(cursors) = self.subs.holdings(positions) {
            cursors.insert(account, seq);
        }
        Ok(())
    }

    /// The update broadcast dropped events for us: catch every followed
    /// account up from the journal, including accounts opened meanwhile.
    async fn on_updates_lagged(&mut self) -> Result<(), Closed> {
        let raw: Vec<(AccountId, u64)> = self.subs.accounts.iter().map(|(a, s)| (*a, *s)).collect();
        for (account, after) in raw {
            let last = self.replay(Journal::Raw, account, after).await?;
            self.subs.accounts.insert(account, last);
        }
        if !self.subs.follows_journals() {
            return Ok(());
        }
        let accounts = match self.my_accounts().await {
            Ok(accounts) => accounts,
            Err(e) => return Err(self.store_failed(&e).await),
        };
        for journal in [Journal::Orders, Journal::Fills] {
            for &account in &accounts {
                let Some(cursors) = self.subs.cursors(journal) else { break };
                let after = *cursors.entry(account).or_insert(0);
                let last = self.replay(journal, account, after).await?;
                if let Some(cursors) = self.subs.cursors(journal) {
                    cursors.insert(account, last);
                }
            }
        }
        for positions in [true, false] {
            if self.subs.holdings(positions).is_some() {
                for &account in &accounts {
                    self.snapshot(account, positions).await?;
                }
            }
        }
        Ok(())
    }

    /// Sends a journal stream of the account from after `after` to the
    /// journal's end; answers the last seq read.
    async fn replay(&mut self, journal: Journal, account: AccountId, after: u64) -> Result<u64, Closed> {
        match self.replay_pages(journal, account, after).await {
            Ok(last) => Ok(last),
            Err(Some(e)) => Err(self.store_failed(&e).await),
            Err(None) => Err(Closed),
        }
    }

    /// [`Self::replay`]; `Err(None)` when the client is gone.
    async fn replay_pages(
        &mut self,
        journal: Journal,
        account: AccountId,
        start: u64,
    ) -> Result<u64, Option<StoreError>> {
        let store = self.store().clone();
        // The orders' states after each event: replayed from each order's
        // state at `start`, read back from the journal where it began.
        let mut fold = match journal {
            Journal::Orders => order_fold(self.state.runtime.instruments()),
            _ => None,
        };
        // Orders the fold has been given a starting point for.
        let mut tracked: BTreeSet<OrderId> = BTreeSet::new();
        let mut after = start;
        loop {
            let page = store.events(account, after, PAGE).await?;
            let Some(&(last, _)) = page.last() else { return Ok(after) };
            if let Some(fold) = &mut fold {
                let mut earlier = BTreeSet::new();
                for (_, event) in &page {
                    let Some(id) = order_of(&event.kind) else { continue };
                    let placed = matches!(event.kind, EventKind::OrderSubmitted { .. } | EventKind::OrderDenied { .. });
                    if tracked.insert(id) && !placed {
                        earlier.insert(id);
                    }
                }
                if !earlier.is_empty() {
                    seed(&store, account, start, earlier, fold).await?;
                }
            }
            for (seq, event) in &page {
                let seq = *seq;
                let message = match journal {
                    Journal::Raw => ServerMessage::Event { channel: format!("account:{account}"), seq, data: event },
                    Journal::Orders => {
                        let order = fold.as_mut().and_then(|f| f.apply(event));
                        if order_of(&event.kind).is_none() {
                            continue;
                        }
                        let data = OrderChange { event: event.kind.name(), order: order.as_ref() };
                        send(&mut self.socket, &ServerMessage::Order { channel: "orders", account, seq, data })
                            .await
                            .map_err(|Closed| None)?;
                        continue;
                    }
                    Journal::Fills => match &event.kind {
                        EventKind::OrderFilled { fill } => {
                            ServerMessage::Fill { channel: "fills", account, seq, data: fill }
                        }
                        _ => continue,
                    },
                };
                send(&mut self.socket, &message).await.map_err(|Closed| None)?;
            }
            after = last;
        }
    }

    /// Sends the kill-switch states as they stand (the whole picture: it is small).
    async fn send_trading(&mut self) -> Result<(), Closed> {
        let Some(states) = &self.subs.trading else { return Ok(()) };
        let accounts = states.iter().map(|(&account, &state)| AccountTradingState { account, state }).collect();
        let global = *self.state.runtime.watch_global_state().borrow();
        self.seq += 1;
        let data = TradingStates { global, accounts };
        send(&mut self.socket, &ServerMessage::Trading { channel: "trading", seq: self.seq, data }).await
    }

    async fn on_bot(&mut self, update: &BotUpdate) -> Result<(), Closed> {
        if !self.subs.bots || !self.is_mine(update.account).await {
            return Ok(());
        }
        self.seq += 1;
        let message = ServerMessage::Bot {
            channel: "bots",
            account: update.account,
            bot: update.bot,
            seq: self.seq,
            data: &update.data,
        };
        send(&mut self.socket, &message).await
    }

    // -- client messages -----------------------------------------------------

    async fn on_text(&mut self, body: &str) -> Result<(), Closed> {
        let message: ClientMessage = match serde_json::from_str(body) {
            Ok(m) => m,
            Err(e) => return self.error("bad_message", format!("cannot read the message: {e}"), None).await,
        };
        match message {
            ClientMessage::Ping => send(&mut self.socket, &ServerMessage::Pong).await,
            ClientMessage::Unsubscribe { channels } => {
                self.unsubscribe(&channels);
                send(&mut self.socket, &ServerMessage::Unsubscribed { channels }).await
            }
            ClientMessage::Subscribe { channels, after_seq } => self.subscribe(channels, &after_seq).await,
        }
    }

    fn unsubscribe(&mut self, channels: &[String]) {
        let named = |name: &str| channels.iter().any(|c| c == name);
        self.subs.quotes.retain(|_, c| !named(c));
        let followed = &self.subs.quotes;
        self.quote_generation.retain(|i, _| followed.contains_key(i));
        self.subs.candles.retain(|_, c| !named(c));
        self.subs.accounts.retain(|a, _| !named(&format!("account:{a}")));
        for scoped in Scoped::ALL {
            if named(scoped.name()) {
                match scoped {
                    Scoped::Orders => self.subs.orders = None,
                    Scoped::Fills => self.subs.fills = None,
                    Scoped::Positions => self.subs.positions = None,
                    Scoped::Balances => self.subs.balances = None,
                    Scoped::Bots => self.subs.bots = false,
                    Scoped::Trading => self.subs.trading = None,
                }
            }
        }
    }

    /// Understands a channel name, checking the caller may have it.
    async fn parse_channel(&mut self, name: &str) -> Result<Channel, Refusal> {
        let sign_in = || {
            Refusal::new(
                "unauthorized",
                format!("sign in (session cookie or bearer token with the read scope) to subscribe to '{name}'"),
            )
        };
        if let Some(id) = name.strip_prefix("account:") {
            if self.user.is_none() {
                return Err(sign_in());
            }
            let account = id.parse::<AccountId>().ok();
            return match account {
                Some(account) if self.is_mine(account).await => Ok(Channel::Account(account)),
                _ => Err(Refusal::new("unknown_channel", format!("no such account '{id}'"))),
            };
        }
        if let Some(scoped) = Scoped::ALL.into_iter().find(|s| s.name() == name) {
            return if self.user.is_some() { Ok(Channel::Scoped(scoped)) } else { Err(sign_in()) };
        }
        let runtime = &self.state.runtime;
        let instrument = |symbol: &str| {
            runtime.instrument_by_symbol(symbol).map(|i| i.id).ok_or_else(|| {
                Refusal::new("unknown_channel", format!("unknown instrument '{symbol}' in channel '{name}'"))
            })
        };
        if let Some(symbol) = name.strip_prefix("quotes:") {
            return Ok(Channel::Quotes(instrument(symbol)?));
        }
        if let Some(rest) = name.strip_prefix("candles:") {
            let Some((symbol, interval)) = rest.rsplit_once(':') else {
                return Err(Refusal::new("unknown_channel", format!("'{name}' is not candles:SYMBOL:INTERVAL")));
            };
            let instrument = instrument(symbol)?;
            let interval: Interval = interval.parse().map_err(|e: sim::candles::ParseIntervalError| {
                Refusal::new("unknown_channel", format!("{e} in channel '{name}'"))
            })?;
            return Ok(Channel::Candles(instrument, interval));
        }
        Err(Refusal::new(
            "unknown_channel",
            format!(
                "unknown channel '{name}'; channels are quotes:SYMBOL, candles:SYMBOL:INTERVAL, orders, fills, \
                 positions, balances, bots, trading and account:ID"
            ),
        ))
    }

    /// Subscribes to all the channels or, if any is refused, to none.
    async fn subscribe(&mut self, names: Vec<String>, after_seq: &BTreeMap<String, u64>) -> Result<(), Closed> {
        let mut channels: Vec<(String, Channel)> = Vec::with_capacity(names.len());
        for name in names {
            match self.parse_channel(&name).await {
                Ok(channel) => {
                    if !channels.iter().any(|(_, c)| *c == channel) {
                        channels.push((name, channel));
                    }
                }
                Err(refusal) => return self.error(refusal.code, refusal.message, Some(&name)).await,
            }
        }
        let mut after = BTreeMap::new();
        for (key, seq) in after_seq {
            let Ok(account) = key.parse::<AccountId>() else {
                return self.error("bad_message", format!("after_seq is keyed by account id, not '{key}'"), None).await;
            };
            after.insert(account, *seq);
        }
        let resumes = |s: &Scoped| matches!(s, Scoped::Orders | Scoped::Fills);
        if channels.iter().any(|(_, c)| matches!(c, Channel::Scoped(s) if resumes(s))) {
            for &account in after.keys() {
                if !self.is_mine(account).await {
                    return self
                        .error("unknown_account", format!("no such account '{account}' in after_seq"), None)
                        .await;
                }
            }
        }
        let adding = channels.iter().filter(|(_, c)| !self.subs.has(c)).count();
        if self.subs.len() + adding > MAX_CHANNELS {
            let message = format!("at most {MAX_CHANNELS} channels per connection");
            return self.error("too_many_channels", message, None).await;
        }
        // Where each new journal stream starts, read before answering so a
        // store failure is an error rather than a silent gap.
        let follows = channels.iter().any(|(_, c)| matches!(c, Channel::Scoped(s) if *s != Scoped::Bots));

        let accounts = if follows {
            match self.my_accounts().await {
                Ok(accounts) => accounts,
                Err(e) => return self.unavailable(&e).await,
            }
        } else {
            Vec::new()
        };
        let mut starts: BTreeMap<AccountId, u64> = BTreeMap::new();
        for (_, channel) in &channels {
            let fresh: Vec<AccountId> = match channel {
                Channel::Account(account) if !after.contains_key(account) => vec![*account],
                Channel::Scoped(s) if resumes(s) => {
                    accounts.iter().copied().filter(|a| !after.contains_key(a)).collect()
                }
                _ => continue,
            };
            for account in fresh {
                if starts.contains_key(&account) {
                    continue;
                }
                match self.store().last_seq(account).await {
                    Ok(last) => starts.insert(account, last),
                    Err(e) => return self.unavailable(&e).await,
                };
            }
        }
        let mut answered: Vec<String> = channels.iter().map(|(name, _)| name.clone()).collect();
        answered.sort();
        send(&mut self.socket, &ServerMessage::Subscribed { channels: answered }).await?;
        for (name, channel) in channels {
            match channel {
                Channel::Quotes(instrument) => {
                    self.subs.quotes.insert(instrument, name);
                    self.follow_quotes(instrument);
                }
                Channel::Candles(instrument, interval) => {
                    self.subs.candles.insert((instrument, interval), name);
                }
                Channel::Account(account) => {
                    let last = match after.get(&account) {
                        // Resume: what was missed first.
                        Some(&after) => self.replay(Journal::Raw, account, after).await?,
                        // Fresh: live from now on.
                        None => starts.get(&account).copied().unwrap_or(0),
                    };
                    self.subs.accounts.insert(account, last);
                }
                Channel::Scoped(scoped @ (Scoped::Orders | Scoped::Fills)) => {
                    let journal = if scoped == Scoped::Orders { Journal::Orders } else { Journal::Fills };
                    let mut cursors = match journal {
                        Journal::Orders => self.subs.orders.take(),
                        _ => self.subs.fills.take(),
                    }
                    .unwrap_or_default();
                    for &account in &accounts {
                        let cursor = match after.get(&account) {
                            Some(&after) => self.replay(journal, account, after).await?,
                            // Already followed: carry on from where it is.
                            None => match cursors.get(&account) {
                                Some(&cursor) => cursor,
                                None => starts.get(&account).copied().unwrap_or(0),
                            },
                        };
                        cursors.insert(account, cursor);
                    }
                    match journal {
                        Journal::Orders => self.subs.orders = Some(cursors),
                        _ => self.subs.fills = Some(cursors),
                    }
                }
                Channel::Scoped(scoped @ (Scoped::Positions | Scoped::Balances)) => {
                    let positions = scoped == Scoped::Positions;
                    if positions {
                        self.subs.positions = Some(Cursors::new());
                    } else {
                        self.subs.balances = Some(Cursors::new());
                    }
                    for &account in &accounts {
                        self.snapshot(account, positions).await?;
                    }
                }
                Channel::Scoped(Scoped::Bots) => self.subs.bots = true,
                Channel::Scoped(Scoped::Trading) => {
                    let mut states = BTreeMap::new();
                    for &account in &accounts {
                        if let Some(handle) = self.state.runtime.account(account).await
                            && let Ok(state) = handle.read_live(|s| s.account_state).await
                        {
                            states.insert(account, state);
                        }
                    }
                    self.subs.trading = Some(states);
                    self.send_trading().await?;
                }
            }
        }
        Ok(())
    }

    async fn unavailable(&mut self, e: &StoreError) -> Result<(), Closed> {
        tracing::warn!(error = %e, "websocket subscription refused: store error");
        self.error("unavailable", "the server cannot read accounts right now; try again".to_string(), None).await
    }
}

/// An empty fold over the paper instruments.
fn order_fold(instruments: &[model::Instrument]) -> Option<OrderFold> {
    // The fold reads no cash, so any currency serves as its base.
    let base = instruments.first().map(|i| i.quote_currency).or_else(|| Currency::parse("USD").ok())?;
    Some(OrderFold::new(base, instruments.iter().cloned()))
}

/// The account's current positions (or balances) and the journal seq they
/// are as of.
async fn read_holdings(store: &Store, account: AccountId, positions: bool) -> Result<(u64, Holdings), StoreError> {
    // The read models and the journal are written in one transaction: if the
    // last seq is the same before and after, the rows are exactly as of it.
    // Under a burst of commits the earlier seq is safe too: the updates after
    // it are sent again and leave the client with the same rows.
    let mut attempts = 0;
    loop {
        let before = store.last_seq(account).await?;
        let rows = if positions {
            Holdings { positions: store.positions(account).await?, balances: Vec::new() }
        } else {
            Holdings { positions: Vec::new(), balances: store.balances(account).await? }
        };
        attempts += 1;
        if store.last_seq(account).await? == before || attempts == 3 {
            return Ok((before, rows));
        }
    }
}

/// Gives the fold the state at `start` of orders placed at or before it, by
/// reading the journal back to where each began.
async fn seed(
    store: &Store,
    account: AccountId,
    start: u64,
    mut orders: BTreeSet<OrderId>,
    fold: &mut OrderFold,
) -> Result<(), StoreError> {
    let mut found = Vec::new();
    let mut before = start.saturating_add(1);
    while !orders.is_empty() {
        let page = store.events_before(account, before, PAGE).await?;
        let Some(&(oldest, _)) = page.last() else { break };
        for (_, event) in page {
            let Some(id) = order_of(&event.kind) else { continue };
            if orders.contains(&id) {
                if matches!(event.kind, EventKind::OrderSubmitted { .. } | EventKind::OrderDenied { .. }) {
                    orders.remove(&id);
                }
                found.push(event);
            }
        }
        before = oldest;
    }
    for event in found.iter().rev() {
        fold.apply(event);
    }
    Ok(())
}
