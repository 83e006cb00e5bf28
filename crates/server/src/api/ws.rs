//! The WebSocket API at `/api/v1/ws`: subscriptions to live market data.
//!
//! Protocol (JSON text frames):
//! - client: `{"op":"subscribe","channels":["quotes:BTC-USDT"]}`,
//!   `{"op":"unsubscribe","channels":[...]}`, `{"op":"ping"}`;
//! - server: `{"type":"subscribed","channels":[...]}`,
//!   `{"type":"quote","channel":"quotes:BTC-USDT","seq":N,"data":{...}}`,
//!   `{"type":"pong"}`, `{"type":"error","code":...,"message":...}`.
//!
//! Quotes are conflated: a client that reads slowly gets the latest quote
//! of each instrument, not a backlog, and one that stays behind for
//! [`MAX_LAG_STRIKES`] checks in a row is disconnected (close code 1008)
//! so it cannot slow anyone else. The server pings every
//! [`HEARTBEAT`]; a client silent for three heartbeats is dropped.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use model::{InstrumentId, Quote};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;

use crate::app::AppState;

/// How often the server pings.
pub const HEARTBEAT: Duration = Duration::from_secs(15);
/// Consecutive lagging checks before a slow client is dropped.
pub const MAX_LAG_STRIKES: u32 = 20;
/// The most channels one connection may hold.
const MAX_CHANNELS: usize = 256;

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/ws", get(upgrade))
}

async fn upgrade(State(state): State<AppState>, ws: WebSocketUpgrade) -> Response {
    ws.max_message_size(64 * 1024).on_upgrade(move |socket| connection(state, socket))
}

#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum ClientMessage {
    Subscribe { channels: Vec<String> },
    Unsubscribe { channels: Vec<String> },
    Ping,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ServerMessage<'a> {
    Subscribed { channels: Vec<String> },
    Unsubscribed { channels: Vec<String> },
    Quote { channel: &'a str, seq: u64, data: &'a Quote },
    Pong,
    Error { code: &'a str, message: String },
}

fn text(message: &ServerMessage<'_>) -> Message {
    Message::Text(Utf8Bytes::from(serde_json::to_string(message).unwrap_or_default()))
}

async fn connection(state: AppState, mut socket: WebSocket) {
    let runtime = &state.runtime;
    let mut quotes = runtime.subscribe_quotes();
    // Subscribed quote channels by instrument, with their channel names.
    let mut subscribed: BTreeMap<InstrumentId, String> = BTreeMap::new();
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
                        let reply = handle_client(&state, body.as_str(), &mut subscribed);
                        if socket.send(text(&reply)).await.is_err() {
                            break;
                        }
                    }
                    Message::Close(_) => break,
                    // Pings are answered by axum; pongs just prove liveness.
                    _ => {}
                }
            }
            received = quotes.recv() => {
                match received {
                    Ok(quote) => {
                        if subscribed.contains_key(&quote.instrument) {
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
                    if subscribed.contains_key(&quote.instrument) {
                        pending.insert(quote.instrument, quote);
                    }
                }
                let mut failed = false;
                for (instrument, quote) in std::mem::take(&mut pending) {
                    let Some(channel) = subscribed.get(&instrument) else { continue };
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

fn handle_client(
    state: &AppState,
    body: &str,
    subscribed: &mut BTreeMap<InstrumentId, String>,
) -> ServerMessage<'static> {
    let message: ClientMessage = match serde_json::from_str(body) {
        Ok(m) => m,
        Err(e) => {
            return ServerMessage::Error { code: "bad_message", message: format!("cannot read the message: {e}") };
        }
    };
    match message {
        ClientMessage::Ping => ServerMessage::Pong,
        ClientMessage::Subscribe { channels } => {
            let mut added = BTreeSet::new();
            for channel in channels {
                match resolve(state, &channel) {
                    Ok(instrument) => {
                        if subscribed.len() >= MAX_CHANNELS && !subscribed.contains_key(&instrument) {
                            return ServerMessage::Error {
                                code: "too_many_channels",
                                message: format!("at most {MAX_CHANNELS} channels per connection"),
                            };
                        }
                        subscribed.insert(instrument, channel.clone());
                        added.insert(channel);
                    }
                    Err(message) => return ServerMessage::Error { code: "unknown_channel", message },
                }
            }
            ServerMessage::Subscribed { channels: added.into_iter().collect() }
        }
        ClientMessage::Unsubscribe { channels } => {
            subscribed.retain(|_, c| !channels.contains(c));
            ServerMessage::Unsubscribed { channels }
        }
    }
}

/// `quotes:SYMBOL` to the instrument it names.
fn resolve(state: &AppState, channel: &str) -> Result<InstrumentId, String> {
    let Some(symbol) = channel.strip_prefix("quotes:") else {
        return Err(format!("unknown channel '{channel}'; available now: quotes:SYMBOL"));
    };
    state
        .runtime
        .instruments()
        .iter()
        .find(|i| i.symbol.eq_ignore_ascii_case(symbol))
        .map(|i| i.id)
        .ok_or_else(|| format!("unknown instrument '{symbol}' in channel '{channel}'"))
}
