//! A fake Binance spot REST server for the adapter's tests, written from the
//! documented formats (developers.binance.com/docs/binance-spot-api-docs):
//! it checks `X-MBX-APIKEY`, the HMAC-SHA256 (hex) or Ed25519 (base64)
//! signature over the query string without `signature`, the timestamp against
//! its own clock and `recvWindow`, mandatory and unknown parameters, the
//! symbol filters and balances; it keeps orders, trades and balances in
//! memory and reports `X-MBX-USED-WEIGHT-1M` / `X-MBX-ORDER-COUNT-*`.
//! Tests can skew its clock, make `/time` lie, and script faults (429/418
//! with `Retry-After`, 500, stalls) for specific requests.
//!
//! It shares no code with the client: signatures are verified here with the
//! crypto crates directly.

#![allow(dead_code, clippy::missing_panics_doc)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Response, StatusCode, Uri};
use base64::Engine as _;
use ed25519_dalek::Verifier as _;
use hmac::{KeyInit as _, Mac as _};
use model::{Money, Price, Quantity, notional};
use serde_json::{Value, json};

/// A key the fake accepts.
#[derive(Clone)]
pub enum FakeKey {
    Hmac(String),
    Ed25519(ed25519_dalek::VerifyingKey),
}

/// What to do to a matching request instead of (or besides) answering it.
#[derive(Clone, Debug)]
pub enum FaultAction {
    /// Answer this status (with `Retry-After` when given) without processing.
    Status { status: u16, retry_after: Option<u64> },
    /// Wait, then answer 503 without processing: the request had no effect.
    StallBefore(Duration),
    /// Process the request, then wait before answering: it took effect.
    StallAfter(Duration),
    /// Process the request, then answer 500 anyway.
    Error500After,
}

#[derive(Clone, Debug)]
struct Fault {
    method: Method,
    path: String,
    action: FaultAction,
    remaining: u32,
}

#[derive(Clone, Debug)]
pub struct Logged {
    pub method: Method,
    pub path: String,
    pub params: Vec<(String, String)>,
}

#[derive(Clone, Debug)]
pub struct SymbolDef {
    pub symbol: &'static str,
    pub base: &'static str,
    pub quote: &'static str,
    pub tick: &'static str,
    pub min_price: &'static str,
    pub max_price: &'static str,
    pub step: &'static str,
    pub min_qty: &'static str,
    pub max_qty: &'static str,
    pub market_max_qty: &'static str,
    pub min_notional: &'static str,
    pub max_notional: &'static str,
    /// Uses the older MIN_NOTIONAL filter instead of NOTIONAL.
    pub legacy_min_notional: bool,
    pub last_price: &'static str,
}

#[derive(Clone, Debug)]
pub struct FakeOrder {
    pub symbol: String,
    pub order_id: u64,
    pub client_order_id: String,
    pub side: String,
    pub order_type: String,
    pub time_in_force: String,
    pub price: Price,
    pub stop_price: Price,
    pub orig_qty: Quantity,
    pub executed_qty: Quantity,
    pub quote_qty: Money,
    pub status: String,
    pub time: i64,
    pub update_time: i64,
    locked: Money,
    locked_asset: String,
}

#[derive(Clone, Debug)]
struct FakeTrade {
    symbol: String,
    id: u64,
    order_id: u64,
    price: Price,
    qty: Quantity,
    quote_qty: Money,
    commission: Money,
    commission_asset: String,
    time: i64,
    is_buyer: bool,
}

pub struct FakeState {
    keys: Vec<(String, FakeKey)>,
    pub skew_ms: i64,
    pub time_lie_ms: i64,
    pub weight_limit: u64,
    weight: BTreeMap<i64, u64>,
    order_counts_10s: BTreeMap<i64, u64>,
    order_counts_1d: BTreeMap<i64, u64>,
    symbols: Vec<SymbolDef>,
    orders: Vec<FakeOrder>,
    trades: Vec<FakeTrade>,
    balances: BTreeMap<String, (Money, Money)>,
    faults: Vec<Fault>,
    log: Vec<Logged>,
    next_order_id: u64,
    next_trade_id: u64,
}

#[derive(Clone)]
pub struct FakeBinance {
    pub url: String,
    state: Arc<Mutex<FakeState>>,
}

fn local_ms() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

fn m(s: &str) -> Money {
    Money::parse(s).unwrap()
}

fn q_to_money(q: Quantity) -> Money {
    Money::from_raw(i128::from(q.raw()))
}

pub fn default_symbols() -> Vec<SymbolDef> {
    vec![
        SymbolDef {
            symbol: "BTCUSDT",
            base: "BTC",
            quote: "USDT",
            tick: "0.01000000",
            min_price: "0.01000000",
            max_price: "1000000.00000000",
            step: "0.00001000",
            min_qty: "0.00001000",
            max_qty: "9000.00000000",
            market_max_qty: "120.50000000",
            min_notional: "5.00000000",
            max_notional: "9000000.00000000",
            legacy_min_notional: false,
            last_price: "50000.00",
        },
        SymbolDef {
            symbol: "ETHBTC",
            base: "ETH",
            quote: "BTC",
            tick: "0.00001000",
            min_price: "0.00001000",
            max_price: "922327.00000000",
            step: "0.00010000",
            min_qty: "0.00010000",
            // Larger than the model's i64 quantities can hold: must saturate.
            max_qty: "100000000000.00000000",
            market_max_qty: "2000.00000000",
            min_notional: "0.00010000",
            max_notional: "0",
            legacy_min_notional: true,
            last_price: "0.05000",
        },
    ]
}

impl FakeBinance {
    pub async fn start(keys: Vec<(String, FakeKey)>) -> Self {
        let state = FakeState {
            keys,
            skew_ms: 0,
            time_lie_ms: 0,
            weight_limit: 6000,
            weight: BTreeMap::new(),
            order_counts_10s: BTreeMap::new(),
            order_counts_1d: BTreeMap::new(),
            symbols: default_symbols(),
            orders: Vec::new(),
            trades: Vec::new(),
            balances: [("BTC", "1"), ("USDT", "10000"), ("ETH", "10"), ("BNB", "0")]
                .into_iter()
                .map(|(a, v)| (a.to_string(), (m(v), Money::ZERO)))
                .collect(),
            faults: Vec::new(),
            log: Vec::new(),
            next_order_id: 1000,
            next_trade_id: 5000,
        };
        let state = Arc::new(Mutex::new(state));
        let app = Router::new().fallback(handle).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url: format!("http://{addr}"), state }
    }

    pub fn state(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap()
    }

    pub fn fault(&self, method: Method, path: &str, action: FaultAction, times: u32) {
        self.state().faults.push(Fault { method, path: path.to_string(), action, remaining: times });
    }

    /// How many requests reached the server for this method and path.
    pub fn count(&self, method: &Method, path: &str) -> usize {
        self.state().log.iter().filter(|l| l.method == method && l.path == path).count()
    }

    pub fn log(&self) -> Vec<Logged> {
        self.state().log.clone()
    }

    pub fn orders(&self) -> Vec<FakeOrder> {
        self.state().orders.clone()
    }

    /// Fills a resting order completely at its limit price, as a
    /// counterparty would (say, while the client was away); commission as
    /// on any fill (buys in the base asset). Answers the trade id.
    pub fn fill_resting(&self, client_order_id: &str) -> u64 {
        let mut st = self.state();
        let now = local_ms() + st.skew_ms;
        let i = st.orders.iter().position(|o| o.client_order_id == client_order_id).expect("no such order");
        assert!(matches!(st.orders[i].status.as_str(), "NEW" | "PARTIALLY_FILLED"), "order not resting");
        let o = st.orders[i].clone();
        let def = st.symbol(&o.symbol).unwrap();
        let qty = o.orig_qty - o.executed_qty;
        let quote = notional(o.price, qty, Quantity::ONE);
        let rate = model::Rate::parse("0.001").unwrap();
        let buy = o.side == "BUY";
        let (commission, commission_asset) =
            if buy { (q_to_money(qty).mul_rate(rate), def.base) } else { (quote.mul_rate(rate), def.quote) };
        if let Some(b) = st.balances.get_mut(&o.locked_asset) {
            b.1 -= o.locked;
        }
        if buy {
            st.add(def.quote, o.locked - quote);
            st.add(def.base, q_to_money(qty) - commission);
        } else {
            st.add(def.quote, quote - commission);
        }
        let trade_id = st.next_trade_id;
        st.next_trade_id += 1;
        st.trades.push(FakeTrade {
            symbol: o.symbol.clone(),
            id: trade_id,
            order_id: o.order_id,
            price: o.price,
            qty,
            quote_qty: quote,
            commission,
            commission_asset: commission_asset.to_string(),
            time: now,
            is_buyer: buy,
        });
        let order = &mut st.orders[i];
        order.executed_qty = o.orig_qty;
        order.quote_qty += quote;
        order.locked = Money::ZERO;
        order.status = "FILLED".to_string();
        order.update_time = now;
        trade_id
    }

    /// Cancels a resting order at the venue (an operator on the venue's
    /// site, or the venue itself), releasing what it locked.
    pub fn cancel_at_venue(&self, client_order_id: &str) {
        let mut st = self.state();
        let now = local_ms() + st.skew_ms;
        let i = st.orders.iter().position(|o| o.client_order_id == client_order_id).expect("no such order");
        let (asset, locked) = (st.orders[i].locked_asset.clone(), st.orders[i].locked);
        if let Some(b) = st.balances.get_mut(&asset) {
            b.0 += locked;
            b.1 -= locked;
        }
        let order = &mut st.orders[i];
        order.locked = Money::ZERO;
        order.status = "CANCELED".to_string();
        order.update_time = now;
    }

    /// Money arriving from elsewhere (a deposit, a transfer).
    pub fn deposit(&self, asset: &str, amount: Money) {
        self.state().add(asset, amount);
    }

    /// A balance (free, locked).
    pub fn balance(&self, asset: &str) -> (Money, Money) {
        self.state().balances.get(asset).copied().unwrap_or((Money::ZERO, Money::ZERO))
    }

    /// Pretend earlier traffic already used this much weight this minute.
    pub fn set_used_weight(&self, used: u64) {
        let mut st = self.state();
        let now = local_ms() + st.skew_ms;
        st.weight.insert(now.div_euclid(60_000), used);
    }
}

type Shared = Arc<Mutex<FakeState>>;

fn pct_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_params(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (pct_decode(k), pct_decode(v))
        })
        .collect()
}

struct Req {
    params: Vec<(String, String)>,
}

impl Req {
    fn get(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
    }
}

type Reply = (StatusCode, Value);

fn err(status: u16, code: i64, msg: &str) -> Reply {
    (StatusCode::from_u16(status).unwrap(), json!({"code": code, "msg": msg}))
}

fn mandatory(name: &str) -> Reply {
    err(400, -1102, &format!("Mandatory parameter '{name}' was not sent, was empty/null, or malformed."))
}

fn weight_of(method: &Method, path: &str, req: &Req) -> u64 {
    match (method.as_str(), path) {
        ("GET", "/api/v3/exchangeInfo") => 20,
        ("GET", "/api/v3/order") => 4,
        ("GET", "/api/v3/openOrders") => {
            if req.get("symbol").is_some() {
                6
            } else {
                80
            }
        }
        ("GET", "/api/v3/account") => 20,
        ("GET", "/api/v3/myTrades") => {
            if req.get("orderId").is_some() {
                5
            } else {
                20
            }
        }
        _ => 1,
    }
}

async fn handle(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> Response<Body> {
    let path = uri.path().to_string();
    let raw_query = uri.query().unwrap_or("").to_string();
    // Binance: totalParams is the query string concatenated with the body.
    let total = format!("{raw_query}{body}");
    let req = Req { params: parse_params(&total) };

    let fault = {
        let mut st = shared.lock().unwrap();
        st.log.push(Logged { method: method.clone(), path: path.clone(), params: req.params.clone() });
        let found = st.faults.iter_mut().find(|f| f.method == method && f.path == path && f.remaining > 0);
        found.map(|f| {
            f.remaining -= 1;
            f.action.clone()
        })
    };
    match &fault {
        Some(FaultAction::Status { status, retry_after }) => {
            let (code, msg) = match status {
                429 => (
                    -1003,
                    "Too much request weight used; current limit is 6000 request weight per 1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API.",
                ),
                418 => (
                    -1003,
                    "Way too much request weight used; IP banned until 1999999999999. Please use WebSocket Streams for live updates to avoid bans.",
                ),
                _ => (-1001, "Internal error; unable to process your request. Please try again."),
            };
            let mut r =
                respond(&shared, StatusCode::from_u16(*status).unwrap(), &json!({"code": code, "msg": msg}), false);
            if let Some(s) = retry_after {
                r.headers_mut().insert("Retry-After", s.to_string().parse().unwrap());
            }
            return r;
        }
        Some(FaultAction::StallBefore(d)) => {
            tokio::time::sleep(*d).await;
            return respond(
                &shared,
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"code": -1007, "msg": "Timeout waiting for response from backend server. Send status unknown; execution status unknown."}),
                false,
            );
        }
        _ => {}
    }

    let is_order = method == Method::POST && path == "/api/v3/order";
    let (status, value) = {
        let mut st = shared.lock().unwrap();
        // Request weight per IP per minute, by the server's clock.
        let now = local_ms() + st.skew_ms;
        let window = now.div_euclid(60_000);
        let w = weight_of(&method, &path, &req);
        let used = st.weight.entry(window).or_insert(0);
        *used += w;
        if *used > st.weight_limit {
            drop(st);
            let mut r = respond(
                &shared,
                StatusCode::TOO_MANY_REQUESTS,
                &json!({"code": -1003, "msg": "Too much request weight used; current limit is 6000 request weight per 1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API."}),
                false,
            );
            r.headers_mut().insert("Retry-After", "1".parse().unwrap());
            return r;
        }
        st.route(&method, &path, &headers, &raw_query, &body, &req, now)
    };
    match fault {
        Some(FaultAction::StallAfter(d)) => tokio::time::sleep(d).await,
        Some(FaultAction::Error500After) => {
            return respond(
                &shared,
                StatusCode::INTERNAL_SERVER_ERROR,
                &json!({"code": -1001, "msg": "Internal error; unable to process your request. Please try again."}),
                is_order,
            );
        }
        _ => {}
    }
    respond(&shared, status, &value, is_order && status.is_success())
}

fn respond(shared: &Shared, status: StatusCode, value: &Value, order_counted: bool) -> Response<Body> {
    let mut st = shared.lock().unwrap();
    let now = local_ms() + st.skew_ms;
    let used = st.weight.get(&now.div_euclid(60_000)).copied().unwrap_or(0);
    let mut builder = Response::builder()
        .status(status)
        .header("Content-Type", "application/json;charset=UTF-8")
        .header("X-MBX-USED-WEIGHT-1M", used.to_string());
    if order_counted {
        let c10 = st.order_counts_10s.entry(now.div_euclid(10_000)).or_insert(0);
        *c10 += 1;
        let c10 = *c10;
        let c1d = st.order_counts_1d.entry(now.div_euclid(86_400_000)).or_insert(0);
        *c1d += 1;
        let c1d = *c1d;
        builder =
            builder.header("X-MBX-ORDER-COUNT-10S", c10.to_string()).header("X-MBX-ORDER-COUNT-1D", c1d.to_string());
    }
    builder.body(Body::from(value.to_string())).unwrap()
}

const SIGNED: [(&str, &str); 6] = [
    ("POST", "/api/v3/order"),
    ("GET", "/api/v3/order"),
    ("DELETE", "/api/v3/order"),
    ("GET", "/api/v3/openOrders"),
    ("GET", "/api/v3/account"),
    ("GET", "/api/v3/myTrades"),
];

fn allowed_params(method: &Method, path: &str) -> &'static [&'static str] {
    match (method.as_str(), path) {
        ("GET", "/api/v3/time") => &[],
        ("GET", "/api/v3/exchangeInfo") => &["symbol", "symbols", "permissions", "showPermissionSets", "symbolStatus"],
        ("POST", "/api/v3/order") => &[
            "symbol",
            "side",
            "type",
            "timeInForce",
            "quantity",
            "quoteOrderQty",
            "price",
            "newClientOrderId",
            "stopPrice",
            "trailingDelta",
            "icebergQty",
            "newOrderRespType",
            "selfTradePreventionMode",
            "strategyId",
            "strategyType",
        ],
        ("GET", "/api/v3/order") => &["symbol", "orderId", "origClientOrderId"],
        ("DELETE", "/api/v3/order") => {
            &["symbol", "orderId", "origClientOrderId", "newClientOrderId", "cancelRestrictions"]
        }
        ("GET", "/api/v3/openOrders") => &["symbol"],
        ("GET", "/api/v3/account") => &["omitZeroBalances"],
        ("GET", "/api/v3/myTrades") => &["symbol", "orderId", "startTime", "endTime", "fromId", "limit"],
        _ => &[],
    }
}

impl FakeState {
    #[allow(clippy::too_many_arguments)]
    fn route(
        &mut self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        raw_query: &str,
        body: &str,
        req: &Req,
        now: i64,
    ) -> Reply {
        let known = matches!(
            (method.as_str(), path),
            (
                "GET",
                "/api/v3/time"
                    | "/api/v3/exchangeInfo"
                    | "/api/v3/order"
                    | "/api/v3/openOrders"
                    | "/api/v3/account"
                    | "/api/v3/myTrades"
            ) | ("POST" | "DELETE", "/api/v3/order")
        );
        if !known {
            return (StatusCode::NOT_FOUND, json!({"code": -1000, "msg": "Not found."}));
        }
        let signed = SIGNED.iter().any(|(m, p)| *m == method.as_str() && *p == path);
        if signed && let Err(e) = self.authenticate(headers, raw_query, body, req, now) {
            return e;
        }
        let mut allowed: Vec<&str> = allowed_params(method, path).to_vec();
        if signed {
            allowed.extend(["timestamp", "recvWindow", "signature"]);
        }
        if let Some((k, _)) = req.params.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
            let _ = k;
            return err(400, -1103, "An unknown parameter was sent.");
        }
        match (method.as_str(), path) {
            ("GET", "/api/v3/time") => (StatusCode::OK, json!({"serverTime": now + self.time_lie_ms})),
            ("GET", "/api/v3/exchangeInfo") => self.exchange_info(req, now),
            ("POST", "/api/v3/order") => self.new_order(req, now),
            ("GET", "/api/v3/order") => self.query_order(req),
            ("DELETE", "/api/v3/order") => self.cancel_order(req, now),
            ("GET", "/api/v3/openOrders") => {
                let symbol = req.get("symbol");
                if let Some(s) = symbol
                    && !self.symbols.iter().any(|d| d.symbol == s)
                {
                    return err(400, -1121, "Invalid symbol.");
                }
                let list: Vec<Value> = self
                    .orders
                    .iter()
                    .filter(|o| {
                        symbol.is_none_or(|s| o.symbol == s) && matches!(o.status.as_str(), "NEW" | "PARTIALLY_FILLED")
                    })
                    .map(order_json)
                    .collect();
                (StatusCode::OK, Value::Array(list))
            }
            ("GET", "/api/v3/account") => self.account(now),
            ("GET", "/api/v3/myTrades") => self.my_trades(req),
            _ => err(404, -1000, "Not found."),
        }
    }

    fn authenticate(&self, headers: &HeaderMap, raw_query: &str, body: &str, req: &Req, now: i64) -> Result<(), Reply> {
        let Some(api_key) = headers.get("X-MBX-APIKEY").and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty()) else {
            return Err(err(401, -2014, "API-key format invalid."));
        };
        let Some((_, key)) = self.keys.iter().find(|(k, _)| k == api_key) else {
            return Err(err(401, -2015, "Invalid API-key, IP, or permissions for action."));
        };
        let Some(ts) = req.get("timestamp") else { return Err(mandatory("timestamp")) };
        let Ok(ts) = ts.parse::<i64>() else { return Err(mandatory("timestamp")) };
        let recv_window = match req.get("recvWindow") {
            None => 5000,
            Some(v) => match v.parse::<i64>() {
                Ok(v) if v <= 60_000 => v,
                Ok(_) => return Err(err(400, -1131, "recvWindow must be less than 60000")),
                Err(_) => return Err(mandatory("recvWindow")),
            },
        };
        let Some(signature) = req.get("signature") else { return Err(mandatory("signature")) };
        // The payload is the totalParams string with the signature parameter removed.
        let total = format!("{raw_query}{body}");
        let payload = total.split('&').filter(|p| !p.starts_with("signature=")).collect::<Vec<_>>().join("&");
        let valid = match key {
            FakeKey::Hmac(secret) => {
                let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
                mac.update(payload.as_bytes());
                let expected: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
                expected.eq_ignore_ascii_case(signature)
            }
            FakeKey::Ed25519(vk) => base64::engine::general_purpose::STANDARD
                .decode(signature)
                .ok()
                .and_then(|b| ed25519_dalek::Signature::from_slice(&b).ok())
                .is_some_and(|sig| vk.verify(payload.as_bytes(), &sig).is_ok()),
        };
        if !valid {
            return Err(err(400, -1022, "Signature for this request is not valid."));
        }
        // Documented logic: process iff timestamp < serverTime + 1000 and serverTime - timestamp <= recvWindow.
        if ts >= now + 1000 {
            return Err(err(400, -1021, "Timestamp for this request was 1000ms ahead of the server's time."));
        }
        if now - ts > recv_window {
            return Err(err(400, -1021, "Timestamp for this request is outside of the recvWindow."));
        }
        Ok(())
    }

    fn exchange_info(&self, req: &Req, now: i64) -> Reply {
        let wanted: Option<Vec<String>> = if let Some(s) = req.get("symbol") {
            Some(vec![s.to_string()])
        } else if let Some(list) = req.get("symbols") {
            match serde_json::from_str::<Vec<String>>(list) {
                Ok(v) => Some(v),
                Err(_) => {
                    return err(
                        400,
                        -1100,
                        "Illegal characters found in parameter 'symbols'; legal range is '^\\[(\"[A-Z0-9-_.]{1,20}\"(,\"[A-Z0-9-_.]{1,20}\"){0,}){0,1}\\]$'.",
                    );
                }
            }
        } else {
            None
        };
        if let Some(w) = &wanted
            && w.iter().any(|s| !self.symbols.iter().any(|d| d.symbol == s))
        {
            return err(400, -1121, "Invalid symbol.");
        }
        let symbols: Vec<Value> = self
            .symbols
            .iter()
            .filter(|d| wanted.as_ref().is_none_or(|w| w.iter().any(|s| s == d.symbol)))
            .map(symbol_json)
            .collect();
        (
            StatusCode::OK,
            json!({
                "timezone": "UTC",
                "serverTime": now,
                "rateLimits": [
                    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": self.weight_limit},
                    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
                    {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
                    {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000}
                ],
                "exchangeFilters": [{"filterType": "EXCHANGE_MAX_NUM_ORDERS", "maxNumOrders": 1000}],
                "symbols": symbols,
                "sors": []
            }),
        )
    }

    fn symbol(&self, name: &str) -> Option<SymbolDef> {
        self.symbols.iter().find(|d| d.symbol == name).cloned()
    }

    fn new_order(&mut self, req: &Req, now: i64) -> Reply {
        let Some(symbol) = req.get("symbol") else { return mandatory("symbol") };
        let Some(def) = self.symbol(symbol) else { return err(400, -1121, "Invalid symbol.") };
        let Some(side) = req.get("side") else { return mandatory("side") };
        if side != "BUY" && side != "SELL" {
            return err(400, -1117, "Invalid side.");
        }
        let Some(order_type) = req.get("type") else { return mandatory("type") };
        let (needs_tif, needs_price, needs_stop) = match order_type {
            "MARKET" => (false, false, false),
            "LIMIT" => (true, true, false),
            "LIMIT_MAKER" => (false, true, false),
            "STOP_LOSS" => (false, false, true),
            "STOP_LOSS_LIMIT" => (true, true, true),
            _ => return err(400, -1116, "Invalid orderType."),
        };
        for (name, needed) in [("timeInForce", needs_tif), ("price", needs_price), ("stopPrice", needs_stop)] {
            match (needed, req.get(name)) {
                (true, None) => return mandatory(name),
                (false, Some(_)) => return err(400, -1106, &format!("Parameter '{name}' sent when not required.")),
                _ => {}
            }
        }
        let tif = req.get("timeInForce").unwrap_or("GTC").to_string();
        if !matches!(tif.as_str(), "GTC" | "IOC" | "FOK") {
            return err(400, -1115, "Invalid timeInForce.");
        }
        let Some(qty) = req.get("quantity").and_then(|q| Quantity::parse(q).ok()) else { return mandatory("quantity") };
        let price = match req.get("price").map(Price::parse) {
            None => Price::ZERO,
            Some(Ok(p)) => p,
            Some(Err(_)) => return mandatory("price"),
        };
        let stop_price = match req.get("stopPrice").map(Price::parse) {
            None => Price::ZERO,
            Some(Ok(p)) => p,
            Some(Err(_)) => return mandatory("stopPrice"),
        };
        if let Some(resp_type) = req.get("newOrderRespType")
            && resp_type != "FULL"
        {
            return err(400, -1100, "this fake only answers newOrderRespType=FULL");
        }
        let client_order_id =
            req.get("newClientOrderId").map_or_else(|| format!("fake{}", self.next_order_id), str::to_string);
        if self
            .orders
            .iter()
            .any(|o| o.client_order_id == client_order_id && matches!(o.status.as_str(), "NEW" | "PARTIALLY_FILLED"))
        {
            return err(400, -2010, "Duplicate order sent.");
        }

        // Filters.
        let tick = Price::parse(def.tick).unwrap();
        let min_price = Price::parse(def.min_price).unwrap();
        let max_price = Price::parse(def.max_price).unwrap();
        for p in [price, stop_price].into_iter().filter(|p| !p.is_zero()) {
            if p < min_price || p > max_price || !p.is_multiple_of(tick) {
                return err(400, -1013, "Filter failure: PRICE_FILTER");
            }
        }
        let step = Quantity::parse(def.step).unwrap();
        let min_qty = Quantity::parse(def.min_qty).unwrap();
        let max_qty = model::num::parse_fixed_i128(def.max_qty).unwrap();
        if qty < min_qty || i128::from(qty.raw()) > max_qty || !qty.is_multiple_of(step) {
            return err(400, -1013, "Filter failure: LOT_SIZE");
        }
        if order_type == "MARKET" && qty > Quantity::parse(def.market_max_qty).unwrap() {
            return err(400, -1013, "Filter failure: MARKET_LOT_SIZE");
        }
        let last = Price::parse(def.last_price).unwrap();
        let ref_price = if price.is_zero() { last } else { price };
        let value = notional(ref_price, qty, Quantity::ONE);
        if value < m(def.min_notional) {
            let name = if def.legacy_min_notional { "MIN_NOTIONAL" } else { "NOTIONAL" };
            return err(400, -1013, &format!("Filter failure: {name}"));
        }
        let max_notional = m(def.max_notional);
        if max_notional.is_positive() && order_type != "MARKET" && value > max_notional {
            return err(400, -1013, "Filter failure: NOTIONAL");
        }

        // Balance.
        let (need_asset, need) = if side == "BUY" { (def.quote, value) } else { (def.base, q_to_money(qty)) };
        let free = self.balances.get(need_asset).map_or(Money::ZERO, |b| b.0);
        if free < need {
            return err(400, -2010, "Account has insufficient balance for requested action.");
        }

        let marketable = match order_type {
            "MARKET" => true,
            "LIMIT" | "LIMIT_MAKER" => (side == "BUY" && price >= last) || (side == "SELL" && price <= last),
            _ => false, // stops rest untriggered: the fake's price never moves
        };
        if order_type == "LIMIT_MAKER" && marketable {
            return err(400, -2010, "Order would immediately match and take.");
        }
        let order_id = self.next_order_id;
        self.next_order_id += 1;
        let mut order = FakeOrder {
            symbol: def.symbol.to_string(),
            order_id,
            client_order_id,
            side: side.to_string(),
            order_type: order_type.to_string(),
            time_in_force: tif.clone(),
            price,
            stop_price,
            orig_qty: qty,
            executed_qty: Quantity::ZERO,
            quote_qty: Money::ZERO,
            status: "NEW".to_string(),
            time: now,
            update_time: now,
            locked: Money::ZERO,
            locked_asset: need_asset.to_string(),
        };
        let mut fills = Vec::new();
        if marketable {
            let quote = notional(last, qty, Quantity::ONE);
            let rate = model::Rate::parse("0.001").unwrap();
            let (commission, commission_asset) = if side == "BUY" {
                (q_to_money(qty).mul_rate(rate), def.base)
            } else {
                (quote.mul_rate(rate), def.quote)
            };
            let base_delta = q_to_money(qty);
            if side == "BUY" {
                self.add(def.quote, -quote);
                self.add(def.base, base_delta - commission);
            } else {
                self.add(def.base, -base_delta);
                self.add(def.quote, quote - commission);
            }
            let trade_id = self.next_trade_id;
            self.next_trade_id += 1;
            self.trades.push(FakeTrade {
                symbol: def.symbol.to_string(),
                id: trade_id,
                order_id,
                price: last,
                qty,
                quote_qty: quote,
                commission,
                commission_asset: commission_asset.to_string(),
                time: now,
                is_buyer: side == "BUY",
            });
            order.executed_qty = qty;
            order.quote_qty = quote;
            order.status = "FILLED".to_string();
            fills.push(json!({
                "price": last.to_string_with(8), "qty": qty.to_string_with(8),
                "commission": commission.to_string_with(8), "commissionAsset": commission_asset, "tradeId": trade_id
            }));
        } else if tif == "IOC" || tif == "FOK" {
            order.status = "EXPIRED".to_string();
        } else {
            order.locked = need;
            self.add(need_asset, -need);
            if let Some(b) = self.balances.get_mut(need_asset) {
                b.1 += need;
            }
        }
        let mut v = order_json(&order);
        let obj = v.as_object_mut().unwrap();
        obj.remove("time");
        obj.remove("updateTime");
        obj.remove("isWorking");
        obj.remove("stopPrice");
        obj.remove("icebergQty");
        obj.insert("transactTime".into(), json!(now));
        obj.insert("fills".into(), Value::Array(fills));
        self.orders.push(order);
        (StatusCode::OK, v)
    }

    fn add(&mut self, asset: &str, delta: Money) {
        let b = self.balances.entry(asset.to_string()).or_insert((Money::ZERO, Money::ZERO));
        b.0 += delta;
    }

    fn find(&self, req: &Req) -> Result<usize, Reply> {
        let Some(symbol) = req.get("symbol") else { return Err(mandatory("symbol")) };
        if self.symbol(symbol).is_none() {
            return Err(err(400, -1121, "Invalid symbol."));
        }
        let by_id = req.get("orderId").and_then(|v| v.parse::<u64>().ok());
        let by_client = req.get("origClientOrderId");
        if by_id.is_none() && by_client.is_none() {
            return Err(err(
                400,
                -1102,
                "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!",
            ));
        }
        self.orders
            .iter()
            .rposition(|o| {
                o.symbol == symbol
                    && by_id.is_none_or(|id| o.order_id == id)
                    && by_client.is_none_or(|c| o.client_order_id == c)
            })
            .ok_or_else(|| err(400, -2013, "Order does not exist."))
    }

    fn query_order(&self, req: &Req) -> Reply {
        match self.find(req) {
            Ok(i) => (StatusCode::OK, order_json(&self.orders[i])),
            Err(e) => e,
        }
    }

    fn cancel_order(&mut self, req: &Req, now: i64) -> Reply {
        let i = match self.find(req) {
            Ok(i) => i,
            Err((_, v)) if v["code"] == json!(-2013) => return err(400, -2011, "Unknown order sent."),
            Err(e) => return e,
        };
        if !matches!(self.orders[i].status.as_str(), "NEW" | "PARTIALLY_FILLED") {
            return err(400, -2011, "Unknown order sent.");
        }
        let (asset, locked) = (self.orders[i].locked_asset.clone(), self.orders[i].locked);
        if let Some(b) = self.balances.get_mut(&asset) {
            b.0 += locked;
            b.1 -= locked;
        }
        let o = &mut self.orders[i];
        o.locked = Money::ZERO;
        o.status = "CANCELED".to_string();
        o.update_time = now;
        let mut v = order_json(o);
        let obj = v.as_object_mut().unwrap();
        obj.insert("origClientOrderId".into(), json!(o.client_order_id));
        obj.insert("clientOrderId".into(), json!(format!("cancel{}", o.order_id)));
        obj.insert("transactTime".into(), json!(now));
        for k in ["time", "updateTime", "isWorking", "icebergQty"] {
            obj.remove(k);
        }
        (StatusCode::OK, v)
    }

    fn account(&self, now: i64) -> Reply {
        let balances: Vec<Value> = self
            .balances
            .iter()
            .map(|(a, (free, locked))| json!({"asset": a, "free": free.to_string_with(8), "locked": locked.to_string_with(8)}))
            .collect();
        (
            StatusCode::OK,
            json!({
                "makerCommission": 10, "takerCommission": 10, "buyerCommission": 0, "sellerCommission": 0,
                "commissionRates": {"maker": "0.00100000", "taker": "0.00100000", "buyer": "0.00000000", "seller": "0.00000000"},
                "canTrade": true, "canWithdraw": false, "canDeposit": false, "brokered": false,
                "requireSelfTradePrevention": false, "preventSor": false,
                "updateTime": now, "accountType": "SPOT", "balances": balances, "permissions": ["SPOT"], "uid": 354937868
            }),
        )
    }

    fn my_trades(&self, req: &Req) -> Reply {
        let Some(symbol) = req.get("symbol") else { return mandatory("symbol") };
        if self.symbol(symbol).is_none() {
            return err(400, -1121, "Invalid symbol.");
        }
        let order_id = req.get("orderId").and_then(|v| v.parse::<u64>().ok());
        let list: Vec<Value> = self
            .trades
            .iter()
            .filter(|t| t.symbol == symbol && order_id.is_none_or(|id| t.order_id == id))
            .map(|t| {
                json!({
                    "symbol": t.symbol, "id": t.id, "orderId": t.order_id, "orderListId": -1,
                    "price": t.price.to_string_with(8), "qty": t.qty.to_string_with(8), "quoteQty": t.quote_qty.to_string_with(8),
                    "commission": t.commission.to_string_with(8), "commissionAsset": t.commission_asset,
                    "time": t.time, "isBuyer": t.is_buyer, "isMaker": false, "isBestMatch": true
                })
            })
            .collect();
        (StatusCode::OK, Value::Array(list))
    }
}

fn order_json(o: &FakeOrder) -> Value {
    json!({
        "symbol": o.symbol, "orderId": o.order_id, "orderListId": -1, "clientOrderId": o.client_order_id,
        "price": o.price.to_string_with(8), "origQty": o.orig_qty.to_string_with(8),
        "executedQty": o.executed_qty.to_string_with(8), "cummulativeQuoteQty": o.quote_qty.to_string_with(8),
        "status": o.status, "timeInForce": o.time_in_force, "type": o.order_type, "side": o.side,
        "stopPrice": o.stop_price.to_string_with(8), "icebergQty": "0.00000000",
        "time": o.time, "updateTime": o.update_time, "isWorking": o.status == "NEW",
        "workingTime": o.time, "origQuoteOrderQty": "0.00000000", "selfTradePreventionMode": "EXPIRE_MAKER"
    })
}

fn symbol_json(d: &SymbolDef) -> Value {
    let notional = if d.legacy_min_notional {
        json!({"filterType": "MIN_NOTIONAL", "minNotional": d.min_notional, "applyToMarket": true, "avgPriceMins": 5})
    } else {
        json!({"filterType": "NOTIONAL", "minNotional": d.min_notional, "applyMinToMarket": true,
               "maxNotional": d.max_notional, "applyMaxToMarket": false, "avgPriceMins": 5})
    };
    json!({
        "symbol": d.symbol, "status": "TRADING", "baseAsset": d.base, "baseAssetPrecision": 8,
        "quoteAsset": d.quote, "quotePrecision": 8, "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8, "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": true, "ocoAllowed": true, "otoAllowed": true, "quoteOrderQtyMarketAllowed": true,
        "allowTrailingStop": true, "cancelReplaceAllowed": true, "amendAllowed": true,
        "isSpotTradingAllowed": true, "isMarginTradingAllowed": false,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": d.min_price, "maxPrice": d.max_price, "tickSize": d.tick},
            {"filterType": "LOT_SIZE", "minQty": d.min_qty, "maxQty": d.max_qty, "stepSize": d.step},
            {"filterType": "ICEBERG_PARTS", "limit": 10},
            {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00000000", "maxQty": d.market_max_qty, "stepSize": "0.00000000"},
            {"filterType": "TRAILING_DELTA", "minTrailingAboveDelta": 10, "maxTrailingAboveDelta": 2000,
             "minTrailingBelowDelta": 10, "maxTrailingBelowDelta": 2000},
            {"filterType": "PERCENT_PRICE_BY_SIDE", "bidMultiplierUp": "5", "bidMultiplierDown": "0.2",
             "askMultiplierUp": "5", "askMultiplierDown": "0.2", "avgPriceMins": 5},
            notional,
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
            {"filterType": "MAX_NUM_ORDER_AMENDS", "maxNumOrderAmends": 10}
        ],
        "permissions": [], "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"]
    })
}
