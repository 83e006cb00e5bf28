//! Fake Binance spot WebSocket servers for the stream tests, written from the
//! documented formats (developers.binance.com/docs/binance-spot-api-docs):
//!
//! - [`FakeWsApi`]: the WebSocket API (`/ws-api/v3`). Requests are
//!   `{"id","method","params"}`; answers `{"id","status","result"}` or
//!   `{"id","status","error":{"code","msg"}}`. It implements `time` and
//!   `userDataStream.subscribe.signature`, checking like Binance: mandatory
//!   and unknown parameters, `recvWindow` ≤ 60 s, the API key (-2015, status
//!   401), the timestamp against its own (skewable) clock and `recvWindow`
//!   (-1021), and the HMAC-SHA256 (hex) or Ed25519 (base64) signature over
//!   the other parameters sorted by name (-1022). Events pushed by a test go
//!   to every subscribed connection as `{"subscriptionId","event"}`.
//! - [`FakeMarketStreams`]: `/stream?streams=a/b` combined streams with
//!   `SUBSCRIBE`/`UNSUBSCRIBE`/`LIST_SUBSCRIPTIONS`, documented error
//!   objects, events wrapped as `{"stream","data"}` and sent only to
//!   connections subscribed to that stream.
//!
//! Both can ping clients and record the pongs, drop every connection without
//! a close frame, go silent (stop reading and writing), or send raw frames.
//! They share no code with the client: signatures are verified here with the
//! crypto crates directly.

#![allow(dead_code, clippy::missing_panics_doc)]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use ed25519_dalek::Verifier as _;
use futures_util::{SinkExt as _, StreamExt as _};
use hmac::{KeyInit as _, Mac as _};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;

/// A key the fake accepts.
#[derive(Clone)]
pub enum FakeKey {
    Hmac(String),
    Ed25519(ed25519_dalek::VerifyingKey),
}

/// A request the WebSocket API fake received, and the code it answered.
#[derive(Clone, Debug)]
pub struct Logged {
    pub connection: u64,
    pub method: String,
    pub params: Value,
    /// `None` for success, else the Binance error code sent back.
    pub error: Option<i64>,
}

#[derive(Clone, Debug)]
enum Cmd {
    /// WebSocket API: an event for every subscribed connection.
    Event(Value),
    /// Market: `data` for connections subscribed to `stream`.
    Publish {
        stream: String,
        data: Value,
    },
    /// WebSocket API: `eventStreamTerminated` for every subscription.
    Terminate,
    Raw(String),
    Ping(Vec<u8>),
    /// Drop the TCP connection without a close frame.
    Drop,
    /// Stop reading and writing (but keep the connection open).
    Silent,
    /// Send a close frame.
    Close(u16, String),
}

#[derive(Default)]
struct State {
    keys: Vec<(String, FakeKey)>,
    skew_ms: i64,
    connections: u64,
    open: u64,
    log: Vec<Logged>,
    pongs: Vec<(u64, Vec<u8>)>,
    /// Market: the streams of each connection (index = connection - 1).
    streams: Vec<BTreeSet<String>>,
    /// Market: the URL path and query of each connection.
    paths: Vec<String>,
}

pub struct Shared {
    state: Mutex<State>,
    cmds: broadcast::Sender<Cmd>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[derive(Clone, Copy)]
enum Proto {
    WsApi,
    Market,
}

fn now_ms() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

async fn start(proto: Proto, keys: Vec<(String, FakeKey)>) -> (String, Arc<Shared>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (cmds, _) = broadcast::channel(1024);
    let shared = Arc::new(Shared { state: Mutex::new(State { keys, ..State::default() }), cmds });
    let s = shared.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(connection(tcp, s.clone(), proto));
        }
    });
    (format!("ws://{addr}"), shared)
}

/// Per-connection state of the protocol.
struct Conn {
    id: u64,
    /// WebSocket API: active subscription id.
    subscription: Option<u64>,
    next_subscription: u64,
    /// Market: subscribed streams.
    streams: BTreeSet<String>,
}

async fn connection(tcp: TcpStream, shared: Arc<Shared>, proto: Proto) {
    let path = Arc::new(Mutex::new(String::new()));
    let seen = path.clone();
    // The callback's signature is tungstenite's (`ErrorResponse` is large).
    #[allow(clippy::result_large_err)]
    let accept = move |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        let uri = req.uri().to_string();
        *seen.lock().unwrap() = uri.clone();
        let ok = match proto {
            Proto::WsApi => uri == "/ws-api/v3",
            Proto::Market => market_url_streams(&uri).is_some(),
        };
        if ok {
            Ok(resp)
        } else {
            let mut r = ErrorResponse::new(Some(format!("bad path {uri}")));
            *r.status_mut() = StatusCode::BAD_REQUEST;
            Err(r)
        }
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, accept).await else {
        return;
    };
    let uri = path.lock().unwrap().clone();
    let mut rx = shared.cmds.subscribe();
    let mut conn = {
        let mut st = shared.state();
        st.connections += 1;
        st.open += 1;
        let streams = market_url_streams(&uri).unwrap_or_default();
        st.streams.push(streams.clone());
        st.paths.push(uri);
        Conn { id: st.connections, subscription: None, next_subscription: 0, streams }
    };
    let mut silent = false;
    loop {
        tokio::select! {
            msg = ws.next(), if !silent => {
                match msg {
                    Some(Ok(Message::Text(text))) => {
                        let replies = match proto {
                            Proto::WsApi => ws_api_request(&shared, &mut conn, text.as_str()),
                            Proto::Market => market_request(&shared, &mut conn, text.as_str()),
                        };
                        for r in replies {
                            if ws.send(Message::text(r)).await.is_err() {
                                break;
                            }
                        }
                    }
                    Some(Ok(Message::Pong(p))) => shared.state().pongs.push((conn.id, p.to_vec())),
                    Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                    Some(Ok(_)) => {}
                }
            }
            cmd = rx.recv() => {
                let Ok(cmd) = cmd else { break };
                let out = match cmd {
                    Cmd::Drop => break,
                    Cmd::Silent => {
                        silent = true;
                        continue;
                    }
                    _ if silent => continue,
                    Cmd::Close(code, reason) => {
                        let frame = tokio_tungstenite::tungstenite::protocol::CloseFrame {
                            code: code.into(),
                            reason: reason.into(),
                        };
                        let _ = ws.send(Message::Close(Some(frame))).await;
                        break;
                    }
                    Cmd::Ping(p) => Some(Message::Ping(p.into())),
                    Cmd::Raw(s) => Some(Message::text(s)),
                    Cmd::Event(event) => conn
                        .subscription
                        .map(|id| Message::text(json!({"subscriptionId": id, "event": event}).to_string())),
                    Cmd::Terminate => conn.subscription.take().map(|id| {
                        let event = json!({"e": "eventStreamTerminated", "E": now_ms()});
                        Message::text(json!({"subscriptionId": id, "event": event}).to_string())
                    }),
                    Cmd::Publish { stream, data } => conn
                        .streams
                        .contains(&stream)
                        .then(|| Message::text(json!({"stream": stream, "data": data}).to_string())),
                };
                if let Some(m) = out
                    && ws.send(m).await.is_err()
                {
                    break;
                }
            }
        }
    }
    shared.state().open -= 1;
    // Dropping `ws` closes the TCP connection without a close frame.
}

fn market_url_streams(uri: &str) -> Option<BTreeSet<String>> {
    let query = uri.strip_prefix("/stream?streams=")?;
    let streams: BTreeSet<String> = query.split('/').map(str::to_string).collect();
    streams.iter().all(|s| valid_stream(s)).then_some(streams)
}

fn valid_stream(name: &str) -> bool {
    let Some((symbol, kind)) = name.split_once('@') else { return false };
    let symbol_ok = !symbol.is_empty() && symbol.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let kind_ok = matches!(kind, "trade" | "bookTicker" | "aggTrade")
        || kind.strip_prefix("kline_").is_some_and(|i| {
            ["1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1M"]
                .contains(&i)
        });
    symbol_ok && kind_ok
}

fn api_error(id: &Value, status: u16, code: i64, msg: &str) -> String {
    json!({"id": id, "status": status, "error": {"code": code, "msg": msg}}).to_string()
}

fn rate_limits() -> Value {
    json!([{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000, "count": 2}])
}

fn ws_api_request(shared: &Shared, conn: &mut Conn, text: &str) -> Vec<String> {
    let Ok(req) = serde_json::from_str::<Value>(text) else {
        return vec![api_error(&Value::Null, 400, -1000, "Malformed request.")];
    };
    let id = req.get("id").cloned().unwrap_or(Value::Null);
    let method = req.get("method").and_then(Value::as_str).unwrap_or("").to_string();
    let params = req.get("params").cloned().unwrap_or(json!({}));
    let (reply, error) = match method.as_str() {
        "time" => {
            let server = now_ms() + shared.state().skew_ms;
            (
                json!({"id": id, "status": 200, "result": {"serverTime": server}, "rateLimits": rate_limits()})
                    .to_string(),
                None,
            )
        }
        "userDataStream.subscribe.signature" => match check_signed(shared, &params) {
            Err((status, code, msg)) => (api_error(&id, status, code, msg), Some(code)),
            Ok(()) if conn.subscription.is_some() => {
                (api_error(&id, 400, -2035, "User Data Stream subscription already active."), Some(-2035))
            }
            Ok(()) => {
                let sub = conn.next_subscription;
                conn.next_subscription += 1;
                conn.subscription = Some(sub);
                (
                    json!({"id": id, "status": 200, "result": {"subscriptionId": sub}, "rateLimits": rate_limits()})
                        .to_string(),
                    None,
                )
            }
        },
        _ => (api_error(&id, 400, -1020, "This operation is not supported."), Some(-1020)),
    };
    shared.state().log.push(Logged { connection: conn.id, method, params, error });
    vec![reply]
}

/// Checks a SIGNED WebSocket API request like Binance, in Binance's order.
fn check_signed(shared: &Shared, params: &Value) -> Result<(), (u16, i64, &'static str)> {
    let Some(obj) = params.as_object() else {
        return Err((400, -1102, "Mandatory parameter 'apiKey' was not sent, was empty/null, or malformed."));
    };
    if obj.keys().any(|k| !matches!(k.as_str(), "apiKey" | "timestamp" | "recvWindow" | "signature")) {
        return Err((400, -1103, "An unknown parameter was sent."));
    }
    let text = |k: &str| match obj.get(k) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let api_key = text("apiKey").ok_or((
        400,
        -1102,
        "Mandatory parameter 'apiKey' was not sent, was empty/null, or malformed.",
    ))?;
    let timestamp = text("timestamp").and_then(|t| t.parse::<i64>().ok()).ok_or((
        400,
        -1102,
        "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.",
    ))?;
    let signature = text("signature").ok_or((
        400,
        -1102,
        "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.",
    ))?;
    let recv_window = match text("recvWindow") {
        None => 5000,
        Some(r) => r.parse::<i64>().map_err(|_| (400, -1102, "Mandatory parameter 'recvWindow' was malformed."))?,
    };
    if recv_window > 60_000 {
        return Err((400, -1131, "recvWindow must be less than 60000"));
    }
    let (key, server_now) = {
        let st = shared.state();
        (st.keys.iter().find(|(k, _)| *k == api_key).map(|(_, v)| v.clone()), now_ms() + st.skew_ms)
    };
    let key = key.ok_or((401, -2015, "Invalid API-key, IP, or permissions for action."))?;
    if timestamp >= server_now + 1000 {
        return Err((400, -1021, "Timestamp for this request was 1000ms ahead of the server's time."));
    }
    if server_now - timestamp > recv_window {
        return Err((400, -1021, "Timestamp for this request is outside of the recvWindow."));
    }
    let mut pairs: Vec<(String, String)> =
        obj.keys().filter(|k| *k != "signature").filter_map(|k| text(k).map(|v| (k.clone(), v))).collect();
    pairs.sort();
    let payload = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
    let valid = match key {
        FakeKey::Hmac(secret) => {
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
            mac.update(payload.as_bytes());
            let expected: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
            expected.eq_ignore_ascii_case(&signature)
        }
        FakeKey::Ed25519(vk) => base64::engine::general_purpose::STANDARD
            .decode(&signature)
            .ok()
            .and_then(|b| ed25519_dalek::Signature::from_slice(&b).ok())
            .is_some_and(|sig| vk.verify(payload.as_bytes(), &sig).is_ok()),
    };
    if valid { Ok(()) } else { Err((400, -1022, "Signature for this request is not valid.")) }
}

fn market_request(shared: &Shared, conn: &mut Conn, text: &str) -> Vec<String> {
    let Ok(req) = serde_json::from_str::<Value>(text) else {
        return vec![json!({"code": 3, "msg": "Invalid JSON: expected value at line 1 column 1"}).to_string()];
    };
    let Some(id) = req.get("id").filter(|v| v.is_u64() || v.is_string() || v.is_null()).cloned() else {
        return vec![json!({"code": 2, "msg": "Invalid request: request ID must be an unsigned integer"}).to_string()];
    };
    let method = req.get("method").and_then(Value::as_str).unwrap_or("");
    let params: Vec<String> = req
        .get("params")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    let reply = match method {
        "SUBSCRIBE" | "UNSUBSCRIBE" => {
            if let Some(bad) = params.iter().find(|s| !valid_stream(s)) {
                json!({"code": 2, "msg": format!("Invalid request: invalid stream name {bad}"), "id": id})
            } else {
                for s in params {
                    if method == "SUBSCRIBE" {
                        conn.streams.insert(s);
                    } else {
                        conn.streams.remove(&s);
                    }
                }
                let mut st = shared.state();
                let idx = usize::try_from(conn.id - 1).unwrap();
                st.streams[idx] = conn.streams.clone();
                json!({"result": null, "id": id})
            }
        }
        "LIST_SUBSCRIPTIONS" => json!({"result": conn.streams.iter().collect::<Vec<_>>(), "id": id}),
        other => {
            json!({"code": 2, "msg": format!("Invalid request: unknown variant {other}, expected one of `SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY`"), "id": id})
        }
    };
    shared.state().log.push(Logged {
        connection: conn.id,
        method: method.to_string(),
        params: req.get("params").cloned().unwrap_or(Value::Null),
        error: reply.get("code").and_then(Value::as_i64),
    });
    vec![reply.to_string()]
}

/// Behaviour common to both fakes.
pub trait Controls {
    #[doc(hidden)]
    fn shared(&self) -> &Arc<Shared>;

    /// Connections accepted so far.
    fn connections(&self) -> u64 {
        self.shared().state().connections
    }
    /// Connections open now.
    fn open_connections(&self) -> u64 {
        self.shared().state().open
    }
    fn log(&self) -> Vec<Logged> {
        self.shared().state().log.clone()
    }
    fn pongs(&self) -> Vec<(u64, Vec<u8>)> {
        self.shared().state().pongs.clone()
    }
    fn ping(&self, payload: &[u8]) {
        let _ = self.shared().cmds.send(Cmd::Ping(payload.to_vec()));
    }
    fn send_raw(&self, text: &str) {
        let _ = self.shared().cmds.send(Cmd::Raw(text.to_string()));
    }
    /// Drops every open connection without a close frame.
    fn drop_connections(&self) {
        let _ = self.shared().cmds.send(Cmd::Drop);
    }
    /// Open connections stop reading and writing.
    fn go_silent(&self) {
        let _ = self.shared().cmds.send(Cmd::Silent);
    }
    fn close_connections(&self, code: u16, reason: &str) {
        let _ = self.shared().cmds.send(Cmd::Close(code, reason.to_string()));
    }
}

/// The fake WebSocket API; `url` ends in `/ws-api/v3`.
pub struct FakeWsApi {
    pub url: String,
    shared: Arc<Shared>,
}

impl Controls for FakeWsApi {
    fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}

impl FakeWsApi {
    pub async fn start(keys: Vec<(String, FakeKey)>) -> Self {
        let (base, shared) = start(Proto::WsApi, keys).await;
        Self { url: format!("{base}/ws-api/v3"), shared }
    }

    /// Moves the server's clock by `ms`.
    pub fn skew_clock(&self, ms: i64) {
        self.shared.state().skew_ms = ms;
    }

    /// Sends `event` to every subscribed connection.
    pub fn push_event(&self, event: Value) {
        let _ = self.shared.cmds.send(Cmd::Event(event));
    }

    /// Ends every subscription with `eventStreamTerminated`.
    pub fn terminate_subscriptions(&self) {
        let _ = self.shared.cmds.send(Cmd::Terminate);
    }

    /// Successful subscriptions so far.
    pub fn subscriptions(&self) -> Vec<Logged> {
        self.log()
            .into_iter()
            .filter(|l| l.method == "userDataStream.subscribe.signature" && l.error.is_none())
            .collect()
    }
}

/// The fake market stream server; `url` is the base (`ws://host:port`).
pub struct FakeMarketStreams {
    pub url: String,
    shared: Arc<Shared>,
}

impl Controls for FakeMarketStreams {
    fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}

impl FakeMarketStreams {
    pub async fn start() -> Self {
        let (url, shared) = start(Proto::Market, Vec::new()).await;
        Self { url, shared }
    }

    /// Sends `data` on `stream` to the connections subscribed to it.
    pub fn publish(&self, stream: &str, data: Value) {
        let _ = self.shared.cmds.send(Cmd::Publish { stream: stream.to_string(), data });
    }

    /// The streams connection `n` (1-based) is subscribed to now.
    pub fn streams_of(&self, n: u64) -> BTreeSet<String> {
        let idx = usize::try_from(n - 1).unwrap();
        self.shared.state().streams.get(idx).cloned().unwrap_or_default()
    }

    /// The URL path and query of connection `n` (1-based).
    pub fn path_of(&self, n: u64) -> String {
        let idx = usize::try_from(n - 1).unwrap();
        self.shared.state().paths.get(idx).cloned().unwrap_or_default()
    }
}

/// Polls `cond` until it holds or `within` passes.
pub async fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
