//! The WebSocket API at `/api/v1/ws`: subscriptions to live market data.
//!
//! Protocol (JSON text frames):
//! - client: `{"op":"subscribe","channels":["quotes:BTC-USDT","account:7"],"after_seq":{"7":120}}`,
//!   `{"op":"unsubscribe","channels":[...]}`, `{"op":"ping"}`;
//! - server: `{"type":"subscribed","channels":[...]}`,
//!   `{"type":"quote","channel":"quotes:BTC-USDT","seq":N,"data":{...}}`,
//!   `{"type":"event","channel":"account:7","seq":121,"data":{...}}`,
//!   `{"type":"pong"}`, `{"type":"error","code":...,"message":...}`.
//!
//! Market data needs no sign-in. `account:ID` streams every journaled event
//! (orders, fills, cash, kill switches) of one of the caller's accounts, in
//! journal order, each with its journal `seq`, and only once durable. A client
//! that reconnects passes the last `seq` it saw in `after_seq` and gets what
//! it missed from the journal first, so nothing is lost or repeated. Account
//! streams are never conflated: a subscriber that falls behind the live feed
//! is caught up from the journal instead.
//!
//! Quotes are conflated: a client that reads slowly gets the latest quote
//! of each instrument, not a backlog, and one that stays behind for
//! [`MAX_LAG_STRIKES`] checks in a row is disconnected (close code 1008)
//! so it cannot slow anyone else. The server pings every
//! [`HEARTBEAT`]; a client silent for three heartbeats is dropped.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use model::{InstrumentId, Quote};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;

use crate::accounts::AccountUpdate;
use crate::app::AppState;
use crate::auth::{Caller, Scope};

/// How often the server pings.
pub const HEARTBEAT: Duration = Duration::from_secs(15);
/// Consecutive lagging checks before a slow client is dropped.
pub const MAX_LAG_STRIKES: u32 = 20;
/// The most channels one connection may hold.
const MAX_CHANNELS: usize = 256;

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
    Ok(ws.max_message_size(64 * 1024).on_upgrade(move |socket| connection(state, user, socket)))
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

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ServerMessage<'a> {
    Subscribed { channels: Vec<String> },
    Unsubscribed { channels: Vec<String> },
    Quote { channel: &'a str, seq: u64, data: &'a Quote },
    Event { channel: String, seq: u64, data: &'a model::event::Event },
    Pong,
    Error { code: &'a str, message: String },
}

fn text(message: &ServerMessage<'_>) -> Message {
    Message::Text(Utf8Bytes::from(serde_json::to_string(message).unwrap_or_default()))
}

/// What one connection is subscribed to.
#[derive(Debug, Default)]
struct Subscriptions {
    /// Quote channels by instrument, with their names.
    quotes: BTreeMap<InstrumentId, String>,
    /// Account streams: the last seq sent for each.
    accounts: BTreeMap<i64, u64>,
}

/// Sends the account's journaled events after `after` (catching up), and
/// returns the last seq sent.
async fn catch_up(state: &AppState, socket: &mut WebSocket, account: i64, mut after: u64) -> Result<u64, ()> {
    loop {
        let page = state.runtime.store.events(account, after, 1_000).await.map_err(|_| ())?;
        let Some(&(last, _)) = page.last() else { return Ok(after) };
        for (seq, event) in &page {
            let message = ServerMessage::Event { channel: format!("account:{account}"), seq: *seq, data: event };
            socket.send(text(&message)).await.map_err(|_| ())?;
        }
        after = last;
    }
}

async fn connection(state: AppState, user: Option<i64>, mut socket: WebSocket) {
    let runtime = Arc::clone(&state.runtime);
    let mut quotes = runtime.subscribe_quotes();
    let mut updates = runtime.subscribe_updates();
    let mut subs = Subscriptions::default();
    // Conflation buffer: the newest unsent quote per instrument.
    let mut pending: BTreeMap<InstrumentId, Quote> = BTreeMap::new();
    let mut seq: u64 = 0;
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.tick().await;
    let mut last_heard = Instant::now();
    let mut lag_strikes = 0u32;
    loop {
        tokio::select! {
            incoming = socket.recv() => {
                let Some(Ok(message)) = incoming else { break };
                last_heard = Instant::now();
                match message {
                    Message::Text(body) => {
                        let (reply, catch_ups) = handle_client(&state, user, body.as_str(), &mut subs).await;
                        if socket.send(text(&reply)).await.is_err() {
                            break;
                        }
                        let mut failed = false;
                        for (account, after) in catch_ups {
                            match catch_up(&state, &mut socket, account, after).await {
                                Ok(last) => {
                                    subs.accounts.insert(account, last);
                                }
                                Err(()) => {
                                    failed = true;
                                    break;
                                }
                            }
                        }
                        if failed {
                            break;
                        }
                    }
                    Message::Close(_) => break,
                    // Pings are answered by axum; pongs just prove liveness.
                    _ => {}
                }
            }
            update = updates.recv() => {
                match update {
                    Ok(update) => {
                        if send_update(&mut socket, &mut subs, &update).await.is_err() {
                            break;
                        }
                    }
                    Err(RecvError::Lagged(_)) => {
                        // Missed live events: read them back from the journal.
                        let mut failed = false;
                        let accounts: Vec<(i64, u64)> = subs.accounts.iter().map(|(a, s)| (*a, *s)).collect();
                        for (account, after) in accounts {
                            match catch_up(&state, &mut socket, account, after).await {
                                Ok(last) => {
                                    subs.accounts.insert(account, last);
                                }
                                Err(()) => {
                                    failed = true;
                                    break;
                                }
                            }
                        }
                        if failed {
                            break;
                        }
                    }
                    Err(RecvError::Closed) => break,
                }
            }
            received = quotes.recv() => {
                match received {
                    Ok(quote) => {
                        if subs.quotes.contains_key(&quote.instrument) {
                            pending.insert(quote.instrument, quote);
                        }
                    }
                    Err(RecvError::Lagged(_)) => {
                        // The broadcast dropped older quotes for us: the
                        // pending map still holds the newest we saw.
                        lag_strikes += 1;
                        if lag_strikes > MAX_LAG_STRIKES {
                            let _ = socket
                                .send(Message::Close(Some(CloseFrame { code: 1008, reason: Utf8Bytes::from_static("too slow") })))
                                .await;
                            break;
                        }
                        continue;
                    }
                    Err(RecvError::Closed) => break,
                }
                // Drain whatever else is queued before writing, so a burst
                // turns into one quote per instrument.
                while let Ok(quote) = quotes.try_recv() {
                    if subs.quotes.contains_key(&quote.instrument) {
                        pending.insert(quote.instrument, quote);
                    }
                }
                let mut failed = false;
                for (instrument, quote) in std::mem::take(&mut pending) {
                    let Some(channel) = subs.quotes.get(&instrument) else { continue };
                    seq += 1;
                    if socket.send(text(&ServerMessage::Quote { channel, seq, data: &quote })).await.is_err() {
                        failed = true;
                        break;
                    }
                }
                if failed {
                    break;
                }
                lag_strikes = 0;
            }
            _ = heartbeat.tick() => {
                if last_heard.elapsed() > HEARTBEAT * 3 {
                    let _ = socket
                        .send(Message::Close(Some(CloseFrame { code: 1001, reason: Utf8Bytes::from_static("no heartbeat") })))
                        .await;
                    break;
                }
                if socket.send(Message::Ping(Vec::new().into())).await.is_err() {
                    break;
                }
            }
        }
    }
}

/// Sends a live account event if subscribed and not already sent by a catch-up.
async fn send_update(socket: &mut WebSocket, subs: &mut Subscriptions, update: &AccountUpdate) -> Result<(), ()> {
    let Some(last) = subs.accounts.get_mut(&update.account) else { return Ok(()) };
    if update.seq <= *last {
        return Ok(());
    }
    let message =
        ServerMessage::Event { channel: format!("account:{}", update.account), seq: update.seq, data: &update.event };
    socket.send(text(&message)).await.map_err(|_| ())?;
    *last = update.seq;
    Ok(())
}

/// Answers a client message; returns the reply and the account streams to
/// catch up (account, after seq).
async fn handle_client(
    state: &AppState,
    user: Option<i64>,
    body: &str,
    subs: &mut Subscriptions,
) -> (ServerMessage<'static>, Vec<(i64, u64)>) {
    let message: ClientMessage = match serde_json::from_str(body) {
        Ok(m) => m,
        Err(e) => {
            return (
                ServerMessage::Error { code: "bad_message", message: format!("cannot read the message: {e}") },
                vec![],
            );
        }
    };
    match message {
        ClientMessage::Ping => (ServerMessage::Pong, vec![]),
        ClientMessage::Subscribe { channels, after_seq } => {
            let mut added = BTreeSet::new();
            let mut catch_ups = Vec::new();
            for channel in channels {
                if subs.quotes.len() + subs.accounts.len() >= MAX_CHANNELS {
                    let message = format!("at most {MAX_CHANNELS} channels per connection");
                    return (ServerMessage::Error { code: "too_many_channels", message }, vec![]);
                }
                if let Some(id) = channel.strip_prefix("account:") {
                    let Some(user) = user else {
                        let message = "sign in (session cookie or bearer token) to subscribe to accounts".to_string();
                        return (ServerMessage::Error { code: "unauthorized", message }, vec![]);
                    };
                    let account = id.parse::<i64>().ok();
                    let owned = match account {
                        Some(a) => {
                            matches!(state.runtime.store.account_owner(a).await, Ok(Some(owner)) if owner == user)
                        }
                        None => false,
                    };
                    let (Some(account), true) = (account, owned) else {
                        let message = format!("no such account '{id}'");
                        return (ServerMessage::Error { code: "unknown_channel", message }, vec![]);
                    };
                    match after_seq.get(id) {
                        // Resume: send what was missed first.
                        Some(after) => catch_ups.push((account, *after)),
                        // Fresh: live from now on.
                        None => {
                            let last = state.runtime.store.last_seq(account).await.unwrap_or(0);
                            subs.accounts.insert(account, last);
                        }
                    }
                    added.insert(channel);
                    continue;
                }
                match resolve(state, &channel) {
                    Ok(instrument) => {
                        subs.quotes.insert(instrument, channel.clone());
                        added.insert(channel);
                    }
                    Err(message) => return (ServerMessage::Error { code: "unknown_channel", message }, vec![]),
                }
            }
            (ServerMessage::Subscribed { channels: added.into_iter().collect() }, catch_ups)
        }
        ClientMessage::Unsubscribe { channels } => {
            subs.quotes.retain(|_, c| !channels.contains(c));
            subs.accounts.retain(|a, _| !channels.contains(&format!("account:{a}")));
            (ServerMessage::Unsubscribed { channels }, vec![])
        }
    }
}

/// `quotes:SYMBOL` to the instrument it names.
fn resolve(state: &AppState, channel: &str) -> Result<InstrumentId, String> {
    let Some(symbol) = channel.strip_prefix("quotes:") else {
        return Err(format!("unknown channel '{channel}'; channels are quotes:SYMBOL and account:ID"));
    };
    state
        .runtime
        .instrument_by_symbol(symbol)
        .map(|i| i.id)
        .ok_or_else(|| format!("unknown instrument '{symbol}' in channel '{channel}'"))
}
