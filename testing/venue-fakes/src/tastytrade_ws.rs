//! Fake TastyTrade streaming servers for the stream tests, written from the
//! documented formats (developer.tastytrade.com streaming guides; dxFeed's
//! DXLink protocol):
//!
//! - [`FakeAccountStreamer`]: every message must carry `action`,
//!   `auth-token: "Bearer <token>"` and `request-id`. The token is checked
//!   against a fixed set or against the REST fake (a `GET` with it as bearer
//!   must succeed); a bad one is answered `{"status": "error", "action",
//!   "web-socket-session-id", "message": "not authorized", "request-id"}`.
//!   `connect` (with a list of account numbers) subscribes, `heartbeat` is
//!   counted; both are answered `{"status": "ok", ...}`. Notifications pushed
//!   by a test go only to connections subscribed to the `account-number` in
//!   their data. It can demand heartbeats (closing a connection quiet for too
//!   long) and drop every connection without a close frame.
//! - [`FakeDxLink`]: enforces the DXLink order — `SETUP` first, `AUTH` before
//!   `CHANNEL_REQUEST`, `FEED_SETUP` before `FEED_SUBSCRIPTION` — recording
//!   violations and answering them with `ERROR`; answers `SETUP` +
//!   `AUTH_STATE UNAUTHORIZED`, then `AUTH_STATE AUTHORIZED` or
//!   `UNAUTHORIZED` by token, `CHANNEL_OPENED`, `FEED_CONFIG` (COMPACT, the
//!   requested fields); keeps each connection's subscriptions (`add`,
//!   `remove`, `reset`) and streams COMPACT `FEED_DATA` only for subscribed
//!   symbols, in the field order the client asked for. It sends `KEEPALIVE`s
//!   (unless told to go quiet), closes connections that send nothing within
//!   their announced `keepaliveTimeout` (`ERROR TIMEOUT`), and can drop every
//!   connection.
//!
//! Shares no code with the client: JSON through `serde_json::Value`, data
//! values sent as literal JSON text.

#![allow(dead_code, clippy::missing_panics_doc)]

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug)]
enum Cmd {
    Send(String),
    Drop,
}

async fn listen<F, Fut>(handler: F) -> String
where
    F: Fn(WebSocketStream<TcpStream>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else { continue };
            tokio::spawn(handler(ws));
        }
    });
    format!("ws://{addr}")
}

// ===========================================================================
// Account streamer.

/// How the account streamer fake decides whether a token is valid.
#[derive(Clone, Debug)]
pub enum TokenCheck {
    Fixed(BTreeSet<String>),
    /// Valid when `GET {base}/customers/me/accounts` with it succeeds.
    Rest(String),
}

/// A message the account streamer fake received.
#[derive(Clone, Debug)]
pub struct Received {
    pub connection: u64,
    pub action: String,
    pub auth_token: String,
    pub request_id: Option<u64>,
    pub value: Option<Value>,
    pub token_ok: bool,
}

struct AccConn {
    tx: mpsc::UnboundedSender<Cmd>,
    accounts: BTreeSet<String>,
}

pub struct AccountState {
    check: TokenCheck,
    conns: HashMap<u64, AccConn>,
    next_conn: u64,
    pub log: Vec<Received>,
    pub heartbeats: u32,
    pub refusals: u32,
    pub connects: u32,
    /// Connections closed for sending no heartbeat in time.
    pub heartbeat_timeouts: u32,
    /// Close a connection that sends nothing for this long.
    pub heartbeat_deadline: Option<Duration>,
}

#[derive(Clone)]
pub struct FakeAccountStreamer {
    pub url: String,
    state: Arc<Mutex<AccountState>>,
}

impl FakeAccountStreamer {
    pub async fn start(check: TokenCheck) -> Self {
        let state = Arc::new(Mutex::new(AccountState {
            check,
            conns: HashMap::new(),
            next_conn: 1,
            log: Vec::new(),
            heartbeats: 0,
            refusals: 0,
            connects: 0,
            heartbeat_timeouts: 0,
            heartbeat_deadline: None,
        }));
        let shared = state.clone();
        let url = listen(move |ws| account_conn(shared.clone(), ws)).await;
        Self { url, state }
    }

    pub fn state(&self) -> MutexGuard<'_, AccountState> {
        self.state.lock().unwrap()
    }

    /// Pushes `{"type": kind, "data": data}` (data as literal JSON text) to
    /// connections subscribed to its `account-number`. Returns how many.
    pub fn push(&self, kind: &str, data: &str) -> usize {
        let account = serde_json::from_str::<Value>(data).unwrap()["account-number"].as_str().unwrap().to_string();
        let frame = format!(r#"{{"type": "{kind}", "data": {data}, "timestamp": 1688595114405}}"#);
        let st = self.state();
        let mut n = 0;
        for c in st.conns.values().filter(|c| c.accounts.contains(&account)) {
            if c.tx.send(Cmd::Send(frame.clone())).is_ok() {
                n += 1;
            }
        }
        n
    }

    /// Drops every connection without a close frame.
    pub fn drop_all(&self) {
        for c in self.state().conns.values() {
            let _ = c.tx.send(Cmd::Drop);
        }
    }

    pub fn subscribed_connections(&self) -> usize {
        self.state().conns.values().filter(|c| !c.accounts.is_empty()).count()
    }
}

async fn token_valid(check: &TokenCheck, token: &str) -> bool {
    match check {
        TokenCheck::Fixed(set) => set.contains(token),
        TokenCheck::Rest(base) => {
            let r = reqwest::Client::new()
                .get(format!("{base}/customers/me/accounts"))
                .header("User-Agent", "fake-streamer/1.0")
                .bearer_auth(token)
                .send()
                .await;
            r.is_ok_and(|r| r.status().is_success())
        }
    }
}

async fn account_conn(state: Arc<Mutex<AccountState>>, ws: WebSocketStream<TcpStream>) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (id, check, deadline) = {
        let mut st = state.lock().unwrap();
        let id = st.next_conn;
        st.next_conn += 1;
        st.conns.insert(id, AccConn { tx, accounts: BTreeSet::new() });
        (id, st.check.clone(), st.heartbeat_deadline)
    };
    let session = format!("fake-session-{id}");
    let (mut sink, mut stream) = ws.split();
    let mut last_rx = Instant::now();
    loop {
        let quiet = deadline.map_or(Duration::from_secs(3600), |d| d.saturating_sub(last_rx.elapsed()));
        tokio::select! {
            cmd = rx.recv() => match cmd {
                Some(Cmd::Send(text)) => { if sink.send(Message::text(text)).await.is_err() { break; } }
                Some(Cmd::Drop) | None => break,
            },
            () = tokio::time::sleep(quiet) => {
                state.lock().unwrap().heartbeat_timeouts += 1;
                let _ = sink.send(Message::Close(None)).await;
                break;
            }
            msg = stream.next() => {
                let Some(Ok(msg)) = msg else { break };
                last_rx = Instant::now();
                let Message::Text(text) = msg else { continue };
                let v: Value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
                let action = v["action"].as_str().unwrap_or_default().to_string();
                let request_id = v["request-id"].as_u64();
                let auth = v["auth-token"].as_str().unwrap_or_default().to_string();
                let bearer = auth.strip_prefix("Bearer ").map(str::to_string);
                let token_ok = match &bearer {
                    Some(t) => token_valid(&check, t).await,
                    None => false,
                };
                let reply = |status: &str, message: Option<&str>, value: Option<&Value>| {
                    let mut r = json!({"status": status, "action": action, "web-socket-session-id": session});
                    if let Some(id) = request_id { r["request-id"] = json!(id); }
                    if let Some(m) = message { r["message"] = json!(m); }
                    if let Some(v) = value { r["value"] = v.clone(); }
                    r.to_string()
                };
                let answer = {
                    let mut st = state.lock().unwrap();
                    st.log.push(Received { connection: id, action: action.clone(), auth_token: auth.clone(),
                        request_id, value: v.get("value").cloned(), token_ok });
                    if request_id.is_none() || action.is_empty() {
                        reply("error", Some("invalid message: action and request-id are required"), None)
                    } else if !token_ok {
                        st.refusals += 1;
                        reply("error", Some("not authorized"), None)
                    } else {
                        match action.as_str() {
                            "connect" => match v["value"].as_array() {
                                Some(list) if list.iter().all(Value::is_string) && !list.is_empty() => {
                                    st.connects += 1;
                                    if let Some(c) = st.conns.get_mut(&id) {
                                        c.accounts = list.iter().filter_map(|a| a.as_str().map(str::to_string)).collect();
                                    }
                                    reply("ok", None, Some(&v["value"]))
                                }
                                _ => reply("error", Some("value must be a list of account numbers"), None),
                            },
                            "heartbeat" => {
                                st.heartbeats += 1;
                                reply("ok", None, None)
                            }
                            _ => reply("error", Some("unknown action"), None),
                        }
                    }
                };
                if sink.send(Message::text(answer)).await.is_err() { break; }
            }
        }
    }
    state.lock().unwrap().conns.remove(&id);
}

// ===========================================================================
// DXLink.

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    New,
    SetUp,
    Authorized,
    ChannelOpen,
    FeedReady,
}

struct DxConn {
    tx: mpsc::UnboundedSender<Cmd>,
    channel: u64,
    subs: BTreeSet<(String, String)>,
    fields: HashMap<String, Vec<String>>,
    stage: Stage,
}

pub struct DxState {
    valid: BTreeSet<String>,
    conns: HashMap<u64, DxConn>,
    next_conn: u64,
    /// Order violations and other protocol errors seen.
    pub violations: Vec<String>,
    /// Message types per connection, in order.
    pub log: Vec<(u64, String)>,
    /// The client's SETUP and FEED_SETUP messages.
    pub setups: Vec<Value>,
    pub feed_setups: Vec<Value>,
    pub auth_ok: u32,
    pub auth_refused: u32,
    pub keepalives: u32,
    /// Connections closed because the client sent nothing in time.
    pub client_timeouts: u32,
    /// `keepaliveTimeout` announced to clients.
    pub server_timeout: Duration,
    /// Send KEEPALIVE every this long; `None`: quiet.
    pub keepalive_every: Option<Duration>,
}

#[derive(Clone)]
pub struct FakeDxLink {
    pub url: String,
    state: Arc<Mutex<DxState>>,
}

fn secs(d: Duration) -> Value {
    json!(d.as_secs_f64())
}

impl FakeDxLink {
    pub async fn start(server_timeout: Duration, keepalive_every: Option<Duration>) -> Self {
        let state = Arc::new(Mutex::new(DxState {
            valid: BTreeSet::new(),
            conns: HashMap::new(),
            next_conn: 1,
            violations: Vec::new(),
            log: Vec::new(),
            setups: Vec::new(),
            feed_setups: Vec::new(),
            auth_ok: 0,
            auth_refused: 0,
            keepalives: 0,
            client_timeouts: 0,
            server_timeout,
            keepalive_every,
        }));
        let shared = state.clone();
        let url = listen(move |ws| dx_conn(shared.clone(), ws)).await;
        Self { url, state }
    }

    pub fn state(&self) -> MutexGuard<'_, DxState> {
        self.state.lock().unwrap()
    }

    pub fn allow_token(&self, token: &str) {
        self.state().valid.insert(token.to_string());
    }

    /// Every token issued so far becomes invalid (as after 24 h).
    pub fn expire_tokens(&self) {
        self.state().valid.clear();
    }

    pub fn drop_all(&self) {
        for c in self.state().conns.values() {
            let _ = c.tx.send(Cmd::Drop);
        }
    }

    pub fn set_keepalive(&self, every: Option<Duration>) {
        self.state().keepalive_every = every;
    }

    /// Union of the live connections' subscriptions, as `(type, symbol)`.
    pub fn subscriptions(&self) -> BTreeSet<(String, String)> {
        self.state().conns.values().flat_map(|c| c.subs.iter().cloned()).collect()
    }

    /// Message types received on connection `id`.
    pub fn types_of(&self, id: u64) -> Vec<String> {
        self.state().log.iter().filter(|(c, _)| *c == id).map(|(_, t)| t.clone()).collect()
    }

    pub fn connection_ids(&self) -> BTreeSet<u64> {
        self.state().log.iter().map(|(c, _)| *c).collect()
    }

    /// Sends one event of `kind` for `symbol` (field → literal JSON text;
    /// missing fields are sent as "NaN") to connections subscribed to it.
    pub fn publish(&self, kind: &str, symbol: &str, values: &[(&str, &str)]) -> usize {
        let st = self.state();
        let mut n = 0;
        for c in st.conns.values() {
            if c.stage != Stage::FeedReady || !c.subs.contains(&(kind.to_string(), symbol.to_string())) {
                continue;
            }
            let Some(fields) = c.fields.get(kind) else { continue };
            let items: Vec<String> = fields
                .iter()
                .map(|f| match f.as_str() {
                    "eventType" => format!("\"{kind}\""),
                    "eventSymbol" => Value::String(symbol.to_string()).to_string(),
                    other => values
                        .iter()
                        .find(|(k, _)| *k == other)
                        .map_or("\"NaN\"".to_string(), |(_, v)| (*v).to_string()),
                })
                .collect();
            let frame = format!(
                r#"{{"type": "FEED_DATA", "channel": {}, "data": ["{kind}", [{}]]}}"#,
                c.channel,
                items.join(", ")
            );
            if c.tx.send(Cmd::Send(frame)).is_ok() {
                n += 1;
            }
        }
        n
    }
}

fn dx_error(channel: u64, error: &str, message: &str) -> String {
    json!({"type": "ERROR", "channel": channel, "error": error, "message": message}).to_string()
}

async fn dx_conn(state: Arc<Mutex<DxState>>, ws: WebSocketStream<TcpStream>) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let id = {
        let mut st = state.lock().unwrap();
        let id = st.next_conn;
        st.next_conn += 1;
        st.conns
            .insert(id, DxConn { tx, channel: 0, subs: BTreeSet::new(), fields: HashMap::new(), stage: Stage::New });
        id
    };
    let (mut sink, mut stream) = ws.split();
    let mut last_rx = Instant::now();
    let mut last_keepalive = Instant::now();
    let mut client_timeout: Option<Duration> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    'conn: loop {
        tokio::select! {
            cmd = rx.recv() => match cmd {
                Some(Cmd::Send(text)) => { if sink.send(Message::text(text)).await.is_err() { break; } }
                Some(Cmd::Drop) | None => break,
            },
            _ = tick.tick() => {
                if let Some(t) = client_timeout && last_rx.elapsed() >= t {
                    state.lock().unwrap().client_timeouts += 1;
                    let _ = sink.send(Message::text(dx_error(0, "TIMEOUT", "no keepalive received"))).await;
                    let _ = sink.send(Message::Close(None)).await;
                    break;
                }
                let every = state.lock().unwrap().keepalive_every;
                if let Some(every) = every && client_timeout.is_some() && last_keepalive.elapsed() >= every {
                    last_keepalive = Instant::now();
                    if sink.send(Message::text(r#"{"type": "KEEPALIVE", "channel": 0}"#)).await.is_err() { break; }
                }
            }
            msg = stream.next() => {
                let Some(Ok(msg)) = msg else { break };
                let Message::Text(text) = msg else { continue };
                last_rx = Instant::now();
                let v: Value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
                let kind = v["type"].as_str().unwrap_or_default().to_string();
                let channel = v["channel"].as_u64().unwrap_or(0);
                let mut replies: Vec<String> = Vec::new();
                let mut close = false;
                {
                    let mut st = state.lock().unwrap();
                    st.log.push((id, kind.clone()));
                    let stage = st.conns.get(&id).map_or(Stage::New, |c| c.stage);
                    let violation = |st: &mut DxState, what: String, replies: &mut Vec<String>, error: &str| {
                        st.violations.push(format!("connection {id}: {what}"));
                        replies.push(dx_error(channel, error, &what));
                    };
                    match kind.as_str() {
                        "SETUP" if stage == Stage::New => {
                            st.setups.push(v.clone());
                            match v["keepaliveTimeout"].as_f64() {
                                Some(t) if t > 0.0 && v["version"].is_string() && channel == 0 => {
                                    client_timeout = Some(Duration::from_secs_f64(t));
                                    let server_timeout = st.server_timeout;
                                    replies.push(json!({"type": "SETUP", "channel": 0, "version": "1.0-fake",
                                        "keepaliveTimeout": secs(server_timeout), "acceptKeepaliveTimeout": secs(server_timeout)}).to_string());
                                    replies.push(r#"{"type": "AUTH_STATE", "channel": 0, "state": "UNAUTHORIZED"}"#.to_string());
                                    if let Some(c) = st.conns.get_mut(&id) { c.stage = Stage::SetUp; }
                                }
                                _ => { violation(&mut st, "SETUP without version/keepaliveTimeout on channel 0".into(), &mut replies, "INVALID_MESSAGE"); close = true; }
                            }
                        }
                        _ if stage == Stage::New => { violation(&mut st, format!("{kind} before SETUP"), &mut replies, "BAD_ACTION"); close = true; }
                        "SETUP" => {}
                        "KEEPALIVE" => st.keepalives += 1,
                        "AUTH" => {
                            let token = v["token"].as_str().unwrap_or_default();
                            if st.valid.contains(token) {
                                st.auth_ok += 1;
                                if let Some(c) = st.conns.get_mut(&id) { c.stage = c.stage.max(Stage::Authorized); }
                                replies.push(r#"{"type": "AUTH_STATE", "channel": 0, "state": "AUTHORIZED"}"#.to_string());
                            } else {
                                st.auth_refused += 1;
                                replies.push(r#"{"type": "AUTH_STATE", "channel": 0, "state": "UNAUTHORIZED"}"#.to_string());
                            }
                        }
                        _ if stage < Stage::Authorized => { violation(&mut st, format!("{kind} before AUTH"), &mut replies, "UNAUTHORIZED"); }
                        "CHANNEL_REQUEST" => {
                            if channel == 0 || v["service"] != "FEED" || v["parameters"]["contract"] != "AUTO" {
                                violation(&mut st, format!("bad CHANNEL_REQUEST {v}"), &mut replies, "INVALID_MESSAGE");
                            } else {
                                if let Some(c) = st.conns.get_mut(&id) { c.channel = channel; c.stage = Stage::ChannelOpen; }
                                replies.push(json!({"type": "CHANNEL_OPENED", "channel": channel, "service": "FEED",
                                    "parameters": {"contract": "AUTO"}}).to_string());
                            }
                        }
                        _ if stage < Stage::ChannelOpen => { violation(&mut st, format!("{kind} before CHANNEL_OPENED"), &mut replies, "BAD_ACTION"); }
                        "FEED_SETUP" => {
                            st.feed_setups.push(v.clone());
                            let fields: Option<HashMap<String, Vec<String>>> = serde_json::from_value(v["acceptEventFields"].clone()).ok();
                            match fields {
                                Some(fields) if v["acceptDataFormat"] == "COMPACT" => {
                                    replies.push(json!({"type": "FEED_CONFIG", "channel": channel, "aggregationPeriod": 0.1,
                                        "dataFormat": "COMPACT", "eventFields": fields}).to_string());
                                    if let Some(c) = st.conns.get_mut(&id) { c.fields = fields; c.stage = Stage::FeedReady; }
                                }
                                _ => violation(&mut st, "FEED_SETUP without COMPACT format and event fields".into(), &mut replies, "INVALID_MESSAGE"),
                            }
                        }
                        _ if stage < Stage::FeedReady => { violation(&mut st, format!("{kind} before FEED_SETUP"), &mut replies, "BAD_ACTION"); }
                        "FEED_SUBSCRIPTION" => {
                            let pairs = |key: &str| -> Vec<(String, String)> {
                                v[key].as_array().map(|a| a.iter().filter_map(|s| Some((s["type"].as_str()?.to_string(), s["symbol"].as_str()?.to_string()))).collect()).unwrap_or_default()
                            };
                            let (add, remove) = (pairs("add"), pairs("remove"));
                            if let Some(c) = st.conns.get_mut(&id) {
                                if v["reset"] == true { c.subs.clear(); }
                                for r in remove { c.subs.remove(&r); }
                                c.subs.extend(add);
                            }
                        }
                        other => { violation(&mut st, format!("unknown message {other}"), &mut replies, "INVALID_MESSAGE"); }
                    }
                }
                for r in replies {
                    if sink.send(Message::text(r)).await.is_err() { break 'conn; }
                }
                if close {
                    let _ = sink.send(Message::Close(None)).await;
                    break;
                }
            }
        }
    }
    state.lock().unwrap().conns.remove(&id);
}
