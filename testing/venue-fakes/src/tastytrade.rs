//! A fake TastyTrade REST server for the adapter's tests, written from the
//! documented formats (developer.tastytrade.com): `POST /oauth/token` checks
//! the refresh-token grant (client secret, refresh token) and issues access
//! tokens with a short, configurable lifetime; every request needs a
//! `User-Agent: <product>/<version>` and every API request a live bearer
//! token (401 otherwise). It keeps one account's balances, positions and
//! orders in memory, validates order JSON (required fields, order types,
//! time in force, actions and price effects, tick sizes, whole quantities,
//! buying power), answers dry runs with fees and buying-power effect, and
//! supports cancel, replace, live orders and order search by date with
//! pagination. Tests drive Live/Filled transitions and can script faults
//! (stall or 500, before or after the request takes effect). Each fill
//! posts one `Trade` transaction (`GET /accounts/{n}/transactions`, filtered
//! and paginated) carrying the fees of the dry run's schedule, which the
//! fill also takes from the cash balance; tests can hold transactions back
//! (posted late, as TastyTrade may) or edit them.
//!
//! It shares no code with the client: JSON is read through `serde_json::Value`
//! and decimals through the model's parsers only.

#![allow(dead_code, clippy::missing_panics_doc)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, Response, StatusCode, Uri};
use model::{Money, Price, Quantity, Timestamp, notional};
use serde_json::{Value, json};

pub const ACCOUNT: &str = "5WT00001";
pub const CLIENT_SECRET: &str = "fake-client-secret";
pub const REFRESH_TOKEN: &str = "fake-refresh-token";

/// What to do to a matching request.
#[derive(Clone, Debug)]
pub enum FaultAction {
    /// Wait, then answer 503 without processing: the request had no effect.
    StallBefore(Duration),
    /// Process the request, then wait before answering: it took effect.
    StallAfter(Duration),
    /// Answer 500 without processing.
    Error500Before,
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
pub struct Tier {
    value: &'static str,
    threshold: Option<&'static str>,
}

#[derive(Clone, Debug)]
struct Equity {
    ticks: Vec<Tier>,
    option_ticks: Vec<Tier>,
    mark: &'static str,
}

#[derive(Clone, Debug)]
struct OptionDef {
    underlying: &'static str,
    strike: &'static str,
    expiry: &'static str,
    kind: &'static str,
    mark: &'static str,
}

#[derive(Clone, Debug)]
pub struct FakeFill {
    pub id: u64,
    pub quantity: Quantity,
    pub price: Price,
    /// Its `filled-at`; `None` is the fixed 2026-06-09T15:30:00Z that
    /// [`FakeTasty::fill`] stamps (see [`FakeTasty::fill_now`]).
    pub at: Option<Timestamp>,
}

/// A `Trade` transaction: one per leg fill. Fees are signed as costs:
/// positive is paid (sent with effect `Debit`), negative a rebate
/// (`Credit`), zero sent as `"0.0"` with effect `None`.
#[derive(Clone, Debug)]
pub struct FakeTransaction {
    pub id: u64,
    pub order_id: u64,
    pub symbol: String,
    pub instrument_type: String,
    pub underlying: String,
    pub action: String,
    pub quantity: Quantity,
    pub price: Price,
    pub multiplier: i64,
    pub executed_at: Timestamp,
    /// The fill's `ext-exec-id`; `None` leaves the field out.
    pub ext_exec_id: Option<String>,
    pub commission: Money,
    pub clearing_fees: Money,
    pub regulatory_fees: Money,
    pub proprietary_index_option_fees: Money,
}

impl FakeTransaction {
    /// The sum of the fees (positive = paid).
    #[must_use]
    pub fn fees(&self) -> Money {
        self.commission + self.clearing_fees + self.regulatory_fees + self.proprietary_index_option_fees
    }
}

#[derive(Clone, Debug)]
pub struct FakeLeg {
    pub instrument_type: String,
    pub symbol: String,
    pub quantity: Quantity,
    pub remaining: Quantity,
    pub action: String,
    pub fills: Vec<FakeFill>,
}

#[derive(Clone, Debug)]
pub struct FakeOrder {
    pub id: u64,
    pub status: String,
    pub order_type: String,
    pub time_in_force: String,
    pub price: Option<Price>,
    pub price_effect: Option<String>,
    pub stop_trigger: Option<Price>,
    pub external_identifier: Option<String>,
    pub legs: Vec<FakeLeg>,
    pub replaces: Option<u64>,
    pub replacing: Option<u64>,
    /// Created on an earlier day: not listed by `/orders/live`.
    pub old: bool,
}

#[derive(Clone, Debug)]
pub struct FakePosition {
    pub symbol: String,
    pub instrument_type: String,
    pub underlying: String,
    pub quantity: Quantity,
    pub average_open: Price,
    pub multiplier: i64,
}

#[derive(Clone, Debug)]
pub struct Logged {
    pub method: Method,
    pub path: String,
    pub status: u16,
    pub user_agent: Option<String>,
}

pub struct FakeState {
    pub token_ttl_secs: u64,
    tokens: BTreeMap<String, Instant>,
    next_token: u64,
    pub grants: u32,
    pub unauthorized: u32,
    pub log: Vec<Logged>,
    pub cash: Money,
    pub buying_power: Money,
    pub positions: Vec<FakePosition>,
    equities: BTreeMap<&'static str, Equity>,
    options: BTreeMap<&'static str, OptionDef>,
    pub orders: Vec<FakeOrder>,
    next_order_id: u64,
    next_fill_id: u64,
    faults: Vec<Fault>,
    /// The account's posted transactions.
    pub transactions: Vec<FakeTransaction>,
    /// While set, fills keep their transactions in `held_transactions`
    /// (see [`FakeTasty::post_held_transactions`]).
    pub hold_transactions: bool,
    pub held_transactions: Vec<FakeTransaction>,
    next_transaction_id: u64,
}

pub struct FakeTasty {
    pub url: String,
    state: Arc<Mutex<FakeState>>,
}

fn p(s: &str) -> Price {
    Price::parse(s).unwrap()
}
fn q(s: &str) -> Quantity {
    Quantity::parse(s).unwrap()
}
fn m(s: &str) -> Money {
    Money::parse(s).unwrap()
}

impl FakeTasty {
    pub async fn start(token_ttl_secs: u64) -> Self {
        let equities = BTreeMap::from([
            (
                "AAPL",
                Equity {
                    ticks: vec![
                        Tier { value: "0.0001", threshold: Some("1.0") },
                        Tier { value: "0.01", threshold: None },
                    ],
                    option_ticks: vec![
                        Tier { value: "0.01", threshold: Some("3.0") },
                        Tier { value: "0.05", threshold: None },
                    ],
                    mark: "175.00",
                },
            ),
            (
                "SPY",
                Equity {
                    ticks: vec![
                        Tier { value: "0.0001", threshold: Some("1.0") },
                        Tier { value: "0.01", threshold: None },
                    ],
                    option_ticks: vec![Tier { value: "0.01", threshold: None }],
                    mark: "450.00",
                },
            ),
        ]);
        let options = BTreeMap::from([
            (
                "AAPL  240119C00150000",
                OptionDef { underlying: "AAPL", strike: "150.0", expiry: "2024-01-19", kind: "C", mark: "26.50" },
            ),
            (
                "SPY   231215P00452500",
                OptionDef { underlying: "SPY", strike: "452.5", expiry: "2023-12-15", kind: "P", mark: "4.10" },
            ),
        ]);
        let state = FakeState {
            token_ttl_secs,
            tokens: BTreeMap::new(),
            next_token: 1,
            grants: 0,
            unauthorized: 0,
            log: Vec::new(),
            cash: m("25000.125"),
            buying_power: m("50000.25"),
            positions: vec![
                FakePosition {
                    symbol: "SPY".into(),
                    instrument_type: "Equity".into(),
                    underlying: "SPY".into(),
                    quantity: q("10"),
                    average_open: p("440.1234"),
                    multiplier: 1,
                },
                FakePosition {
                    symbol: "SPY   231215P00452500".into(),
                    instrument_type: "Equity Option".into(),
                    underlying: "SPY".into(),
                    quantity: q("-2"),
                    average_open: p("3.85"),
                    multiplier: 100,
                },
            ],
            equities,
            options,
            orders: Vec::new(),
            next_order_id: 100_000,
            next_fill_id: 1,
            faults: Vec::new(),
            transactions: Vec::new(),
            hold_transactions: false,
            held_transactions: Vec::new(),
            next_transaction_id: 7_000_000,
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

    /// Applies `action` to the next `times` requests with this method and path.
    pub fn fault(&self, method: Method, path: &str, action: FaultAction, times: u32) {
        self.state().faults.push(Fault { method, path: path.to_string(), action, remaining: times });
    }

    /// Every issued access token expires now.
    pub fn expire_tokens(&self) {
        let now = Instant::now();
        for exp in self.state().tokens.values_mut() {
            *exp = now;
        }
    }

    /// Requests that reached the server for this method and path (no query).
    pub fn count(&self, method: &Method, path: &str) -> usize {
        self.state().log.iter().filter(|l| l.method == *method && l.path == path).count()
    }

    pub fn order(&self, id: u64) -> FakeOrder {
        self.state().orders.iter().find(|o| o.id == id).cloned().unwrap()
    }

    pub fn orders_with_external_id(&self, ext: &str) -> usize {
        self.state().orders.iter().filter(|o| o.external_identifier.as_deref() == Some(ext)).count()
    }

    pub fn make_live(&self, id: u64) {
        let mut st = self.state();
        let o = st.orders.iter_mut().find(|o| o.id == id).unwrap();
        o.status = "Live".into();
    }

    /// Marks an order as created on an earlier day (absent from `/orders/live`).
    pub fn age(&self, id: u64) {
        let mut st = self.state();
        st.orders.iter_mut().find(|o| o.id == id).unwrap().old = true;
    }

    /// Fills the whole order at `price`, updating positions and cash (the
    /// notional and the fees of the dry run's schedule) and posting one
    /// `Trade` transaction per leg fill with those fees (held back while
    /// `hold_transactions` is set). The fill is stamped
    /// 2026-06-09T15:30:00Z (see [`FakeTasty::fill_now`]).
    pub fn fill(&self, id: u64, price: &str) {
        self.fill_stamped(id, price, None);
    }

    /// Like [`FakeTasty::fill`], stamped with the wall clock as TastyTrade
    /// stamps a real fill (for clients that read fills since a time).
    pub fn fill_now(&self, id: u64, price: &str) {
        self.fill_stamped(id, price, Some(wall_clock()));
    }

    /// Posts the transactions held back while `hold_transactions` was set
    /// (and stops holding).
    pub fn post_held_transactions(&self) {
        let mut st = self.state();
        st.hold_transactions = false;
        let held = std::mem::take(&mut st.held_transactions);
        st.transactions.extend(held);
    }

    /// The posted transactions.
    pub fn transactions(&self) -> Vec<FakeTransaction> {
        self.state().transactions.clone()
    }

    /// Cancels a working order at the venue, as its owner would in
    /// TastyTrade's own platform (no API request). Panics when the order is
    /// not working.
    pub fn cancel_at_venue(&self, id: u64) {
        let mut st = self.state();
        let o = st.orders.iter_mut().find(|o| o.id == id).unwrap();
        assert!(working(&o.status), "order {id} is {}, not working", o.status);
        o.status = "Cancelled".into();
    }

    /// The newest order carrying this `external-identifier`.
    pub fn order_with_external_id(&self, ext: &str) -> Option<FakeOrder> {
        self.state()
            .orders
            .iter()
            .filter(|o| o.external_identifier.as_deref() == Some(ext))
            .max_by_key(|o| o.id)
            .cloned()
    }

    fn fill_stamped(&self, id: u64, price: &str, at: Option<Timestamp>) {
        let price = p(price);
        let mut st = self.state();
        let mut fill_id = st.next_fill_id;
        let idx = st.orders.iter().position(|o| o.id == id).unwrap();
        let legs = st.orders[idx].legs.clone();
        let mut new_legs = Vec::new();
        for mut leg in legs {
            let qty = leg.remaining;
            leg.fills.push(FakeFill { id: fill_id, quantity: qty, price, at });
            leg.remaining = Quantity::ZERO;
            let mult = if leg.instrument_type == "Equity Option" { 100 } else { 1 };
            let value = notional(price, qty, Quantity::from_int(mult));
            let buy = leg.action.starts_with("Buy");
            let (clearing, commission) = leg_fees(&leg.instrument_type, &leg.action, qty);
            let fees = clearing + commission;
            if buy {
                st.cash -= value;
                st.buying_power -= value;
            } else {
                st.cash += value;
                st.buying_power += value;
            }
            st.cash -= fees;
            st.buying_power -= fees;
            let transaction = FakeTransaction {
                id: st.next_transaction_id,
                order_id: id,
                symbol: leg.symbol.clone(),
                instrument_type: leg.instrument_type.clone(),
                underlying: underlying_of(&st, &leg.symbol),
                action: leg.action.clone(),
                quantity: qty,
                price,
                multiplier: mult,
                executed_at: at.unwrap_or_else(fixed_fill_time),
                ext_exec_id: Some(format!("x{fill_id}")),
                commission,
                clearing_fees: clearing,
                regulatory_fees: Money::ZERO,
                proprietary_index_option_fees: Money::ZERO,
            };
            st.next_transaction_id += 1;
            if st.hold_transactions {
                st.held_transactions.push(transaction);
            } else {
                st.transactions.push(transaction);
            }
            fill_id += 1;
            let signed = if buy { qty } else { -qty };
            let underlying = underlying_of(&st, &leg.symbol);
            match st.positions.iter_mut().find(|p| p.symbol == leg.symbol) {
                Some(pos) => pos.quantity = pos.quantity + signed,
                None => st.positions.push(FakePosition {
                    symbol: leg.symbol.clone(),
                    instrument_type: leg.instrument_type.clone(),
                    underlying,
                    quantity: signed,
                    average_open: price,
                    multiplier: mult,
                }),
            }
            new_legs.push(leg);
        }
        st.next_fill_id = fill_id;
        let o = &mut st.orders[idx];
        o.legs = new_legs;
        o.status = "Filled".into();
    }
}

fn working(status: &str) -> bool {
    matches!(status, "Received" | "Routed" | "In Flight" | "Live" | "Contingent")
}

/// The `filled-at` of [`FakeTasty::fill`]: 2026-06-09T15:30:00Z.
fn fixed_fill_time() -> Timestamp {
    Timestamp::parse("2026-06-09T15:30:00Z").unwrap()
}

/// Now, from the system clock.
fn wall_clock() -> Timestamp {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    Timestamp::from_nanos(i64::try_from(since.as_nanos()).unwrap())
}

/// A time as TastyTrade writes it: `2026-06-09T15:30:00.000+00:00`.
fn tasty_time(t: Timestamp) -> String {
    let (y, mo, d, h, mi, s, ns) = t.to_parts();
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:03}+00:00", ns / 1_000_000)
}

fn underlying_of(st: &FakeState, symbol: &str) -> String {
    st.options.get(symbol).map_or_else(|| symbol.to_string(), |o| o.underlying.to_string())
}

// ---------------------------------------------------------------------------
// HTTP plumbing.

fn reply(status: u16, body: &Value) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap())
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn error(status: u16, code: &str, message: &str) -> Response<Body> {
    reply(status, &json!({"error": {"code": code, "message": message}}))
}

fn error_with(status: u16, code: &str, message: &str, errors: &[(String, String)]) -> Response<Body> {
    let list: Vec<Value> = errors.iter().map(|(c, msg)| json!({"code": c, "message": msg})).collect();
    reply(status, &json!({"error": {"code": code, "message": message, "errors": list}}))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Some(v) = std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_params(uri: &Uri) -> BTreeMap<String, String> {
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn valid_user_agent(headers: &HeaderMap) -> Option<String> {
    let ua = headers.get("user-agent")?.to_str().ok()?.to_string();
    let (product, version) = ua.split_once('/')?;
    (!product.is_empty() && !version.is_empty() && !ua.contains(' ')).then_some(ua)
}

async fn handle(
    State(state): State<Arc<Mutex<FakeState>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let ua = valid_user_agent(&headers);
    // Logged on arrival (status filled in when answered), so a request whose
    // answer is still stalled is already counted.
    let index = {
        let mut st = state.lock().unwrap();
        st.log.push(Logged { method: method.clone(), path: uri.path().to_string(), status: 0, user_agent: ua.clone() });
        st.log.len() - 1
    };
    let response = route(&state, &method, &uri, &headers, &body, ua.is_some()).await;
    let status = response.status().as_u16();
    if let Some(entry) = state.lock().unwrap().log.get_mut(index) {
        entry.status = status;
    }
    response
}

async fn route(
    state: &Arc<Mutex<FakeState>>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
    has_user_agent: bool,
) -> Response<Body> {
    if !has_user_agent {
        return error(401, "unauthorized", "A User-Agent header of the form <product>/<version> is required");
    }
    let path = uri.path();
    if path == "/oauth/token" {
        return if method == Method::POST { oauth(state, body) } else { error(405, "method_not_allowed", "use POST") };
    }
    // Bearer token.
    {
        let mut st = state.lock().unwrap();
        let token = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_string);
        let valid = token.as_ref().and_then(|t| st.tokens.get(t)).is_some_and(|exp| Instant::now() < *exp);
        if !valid {
            st.unauthorized += 1;
            return error(401, "token_invalid", "This access token is missing, invalid or expired");
        }
    }
    // Scripted faults.
    let fault = {
        let mut st = state.lock().unwrap();
        let found = st.faults.iter_mut().find(|f| f.method == *method && f.path == path && f.remaining > 0);
        found.map(|f| {
            f.remaining -= 1;
            f.action.clone()
        })
    };
    match fault {
        Some(FaultAction::StallBefore(d)) => {
            tokio::time::sleep(d).await;
            return error(503, "service_unavailable", "stalled");
        }
        Some(FaultAction::Error500Before) => return error(500, "internal_error", "Internal server error"),
        _ => {}
    }
    let response = {
        let mut st = state.lock().unwrap();
        api(&mut st, method, uri, body)
    };
    match fault {
        Some(FaultAction::StallAfter(d)) => {
            tokio::time::sleep(d).await;
            response
        }
        Some(FaultAction::Error500After) => error(500, "internal_error", "Internal server error"),
        _ => response,
    }
}

fn oauth(state: &Arc<Mutex<FakeState>>, body: &Bytes) -> Response<Body> {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return error(400, "invalid_request", "body must be JSON");
    };
    if v["grant_type"] != "refresh_token" {
        return error(400, "unsupported_grant_type", "grant_type must be refresh_token");
    }
    if v["refresh_token"] != REFRESH_TOKEN || v["client_secret"] != CLIENT_SECRET {
        return error(401, "invalid_grant", "Invalid refresh token or client secret");
    }
    let mut st = state.lock().unwrap();
    let token = format!("access-{}-{}", st.next_token, Instant::now().elapsed().as_nanos());
    st.next_token += 1;
    st.grants += 1;
    let ttl = st.token_ttl_secs;
    st.tokens.insert(token.clone(), Instant::now() + Duration::from_secs(ttl));
    reply(200, &json!({"access_token": token, "token_type": "Bearer", "expires_in": ttl}))
}

fn api(st: &mut FakeState, method: &Method, uri: &Uri, body: &Bytes) -> Response<Body> {
    let segs: Vec<String> = uri.path().trim_start_matches('/').split('/').map(percent_decode).collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let ctx = uri.path().to_string();
    match (method.clone(), segs.as_slice()) {
        (Method::GET, ["customers", "me", "accounts"]) => reply(
            200,
            &json!({"data": {"items": [{"account": {
                "account-number": ACCOUNT, "nickname": "Individual", "account-type-name": "Individual",
                "margin-or-cash": "Margin", "is-closed": false, "is-futures-approved": false,
                "suitable-options-level": "No Restrictions", "opened-at": "2023-05-01T14:00:00.000+00:00",
                "is-firm-error": false, "is-firm-proprietary": false, "day-trader-status": false
            }, "authority-level": "owner"}]}, "context": ctx}),
        ),
        (_, ["accounts", a, ..]) if *a != ACCOUNT => error(404, "record_not_found", "Account not found"),
        (Method::GET, ["accounts", _, "balances"]) => reply(
            200,
            &json!({"data": {
                "account-number": ACCOUNT, "currency": "USD",
                "cash-balance": st.cash.to_string(), "net-liquidating-value": (st.cash + m("4401.234")).to_string(),
                "equity-buying-power": st.buying_power.to_string(),
                "derivative-buying-power": st.buying_power.mul_div(1, 2).to_string(),
                "day-trading-buying-power": "0.0", "cash-available-to-withdraw": st.cash.to_string(),
                "maintenance-requirement": "1320.37", "long-equity-value": "4401.234", "short-equity-value": "0.0",
                "long-derivative-value": "0.0", "short-derivative-value": "820.0",
                "pending-cash": "0.0", "pending-cash-effect": "None", "updated-at": "2026-06-09T15:04:05.123+00:00"
            }, "context": ctx}),
        ),
        (Method::GET, ["accounts", _, "positions"]) => {
            let items: Vec<Value> = st
                .positions
                .iter()
                .filter(|p| !p.quantity.is_zero())
                .map(|p| {
                    let mut v = json!({
                        "account-number": ACCOUNT, "symbol": p.symbol, "instrument-type": p.instrument_type,
                        "underlying-symbol": p.underlying, "quantity": p.quantity.abs().to_string(),
                        "quantity-direction": if p.quantity.is_negative() { "Short" } else { "Long" },
                        "close-price": p.average_open.to_string(), "average-open-price": p.average_open.to_string(),
                        "multiplier": p.multiplier, "cost-effect": if p.quantity.is_negative() { "Credit" } else { "Debit" },
                        "is-suppressed": false, "is-frozen": false, "restricted-quantity": "0.0",
                        "created-at": "2026-06-01T17:56:51.872+00:00", "updated-at": "2026-06-09T21:49:54.095+00:00"
                    });
                    if p.instrument_type == "Equity Option" {
                        v["expires-at"] = json!("2023-12-15T21:15:00.000+00:00");
                    }
                    v
                })
                .collect();
            reply(200, &json!({"data": {"items": items}, "context": ctx}))
        }
        (Method::GET, ["accounts", _, "orders", "live"]) => {
            let items: Vec<Value> = st.orders.iter().filter(|o| !o.old).map(order_json).collect();
            reply(200, &json!({"data": {"items": items}, "context": ctx}))
        }
        (Method::GET, ["accounts", _, "orders"]) => search_orders(st, uri, &ctx),
        (Method::GET, ["accounts", _, "transactions"]) => search_transactions(st, uri, &ctx),
        (Method::GET, ["accounts", _, "orders", id]) => match find_order(st, id) {
            Some(o) => reply(200, &json!({"data": order_json(o), "context": ctx})),
            None => error(404, "record_not_found", "Order not found"),
        },
        (Method::POST, ["accounts", _, "orders", "dry-run"]) => submit(st, body, true, &ctx),
        (Method::POST, ["accounts", _, "orders"]) => submit(st, body, false, &ctx),
        (Method::DELETE, ["accounts", _, "orders", id]) => cancel(st, id, &ctx),
        (Method::PUT, ["accounts", _, "orders", id]) => replace(st, id, body, &ctx),
        (Method::GET, ["instruments", "equities", sym]) => match st.equities.get(sym) {
            Some(e) => reply(200, &json!({"data": equity_json(sym, e), "context": ctx})),
            None => error(404, "record_not_found", "Equity not found"),
        },
        (Method::GET, ["instruments", "equity-options", sym]) => match st.options.get(sym) {
            Some(o) => reply(
                200,
                &json!({"data": {
                    "symbol": sym, "instrument-type": "Equity Option", "active": true,
                    "strike-price": o.strike, "root-symbol": o.underlying, "underlying-symbol": o.underlying,
                    "expiration-date": o.expiry, "exercise-style": "American", "shares-per-contract": 100,
                    "option-type": o.kind, "option-chain-type": "Standard", "expiration-type": "Regular",
                    "settlement-type": "PM", "stops-trading-at": format!("{}T21:00:00.000+00:00", o.expiry),
                    "market-time-instrument-collection": "Equity Option",
                    "days-to-expiration": 30, "expires-at": format!("{}T21:00:00.000+00:00", o.expiry),
                    "is-closing-only": false, "streamer-symbol": format!(".{}", sym.replace(' ', ""))
                }, "context": ctx}),
            ),
            None => error(404, "record_not_found", "Equity option not found"),
        },
        (Method::GET, ["api-quote-tokens"]) => reply(
            200,
            &json!({"data": {"token": "dxlink-secret-token", "dxlink-url": "wss://tasty-openapi-ws.dxfeed.com/realtime", "level": "api"}, "context": ctx}),
        ),
        _ => error(404, "not_found", "No such endpoint"),
    }
}

fn tiers_json(tiers: &[Tier]) -> Vec<Value> {
    tiers
        .iter()
        .map(|t| match t.threshold {
            Some(th) => json!({"value": t.value, "threshold": th}),
            None => json!({"value": t.value}),
        })
        .collect()
}

fn equity_json(sym: &str, e: &Equity) -> Value {
    json!({
        "id": 726, "symbol": sym, "instrument-type": "Equity", "cusip": "037833100",
        "short-description": format!("{sym} INC"), "is-index": false, "listed-market": "XNAS",
        "description": format!("{sym} INC"), "lendability": "Easy To Borrow", "borrow-rate": "0.0",
        "market-time-instrument-collection": "Equity", "is-closing-only": false,
        "is-options-closing-only": false, "active": true, "is-fractional-quantity-eligible": false,
        "is-illiquid": false, "is-etf": sym == "SPY", "streamer-symbol": sym,
        "tick-sizes": tiers_json(&e.ticks), "option-tick-sizes": tiers_json(&e.option_ticks)
    })
}

fn find_order<'a>(st: &'a FakeState, id: &str) -> Option<&'a FakeOrder> {
    let id: u64 = id.parse().ok()?;
    st.orders.iter().find(|o| o.id == id)
}

fn qty_json(qty: Quantity) -> Value {
    // Whole quantities as JSON numbers (as in the documented examples), others as strings.
    if qty.is_multiple_of(Quantity::ONE) { json!(qty.raw() / 1_000_000_000) } else { json!(qty.to_string()) }
}

fn order_json(o: &FakeOrder) -> Value {
    let legs: Vec<Value> = o
        .legs
        .iter()
        .map(|l| {
            let fills: Vec<Value> = l
                .fills
                .iter()
                .map(|f| {
                    json!({"fill-id": format!("f{}", f.id), "ext-exec-id": format!("x{}", f.id),
                        "quantity": f.quantity.to_string(), "fill-price": f.price.to_string(),
                        "filled-at": tasty_time(f.at.unwrap_or_else(fixed_fill_time)),
                        "destination-venue": "FAKE"})
                })
                .collect();
            json!({"instrument-type": l.instrument_type, "symbol": l.symbol, "quantity": qty_json(l.quantity),
                "remaining-quantity": qty_json(l.remaining), "action": l.action, "fills": fills})
        })
        .collect();
    let working = matches!(o.status.as_str(), "Received" | "Routed" | "In Flight" | "Live" | "Contingent");
    let mut v = json!({
        "id": o.id, "account-number": ACCOUNT, "time-in-force": o.time_in_force, "order-type": o.order_type,
        "size": qty_json(o.legs.iter().fold(Quantity::ZERO, |a, l| a + l.quantity)),
        "underlying-symbol": o.legs.first().map(|l| l.symbol.split(' ').next().unwrap_or("").to_string()),
        "status": o.status, "cancellable": working, "editable": working, "edited": o.replaces.is_some(),
        "received-at": "2026-06-09T15:00:00.000+00:00", "updated-at": "2026-06-09T15:00:01.000+00:00",
        "legs": legs
    });
    if let Some(pr) = o.price {
        v["price"] = json!(pr.to_string());
    }
    if let Some(pe) = &o.price_effect {
        v["price-effect"] = json!(pe);
    }
    if let Some(st) = o.stop_trigger {
        v["stop-trigger"] = json!(st.to_string());
    }
    if let Some(e) = &o.external_identifier {
        v["external-identifier"] = json!(e);
    }
    if let Some(r) = o.replaces {
        v["replaces-order-id"] = json!(r);
    }
    if let Some(r) = o.replacing {
        v["replacing-order-id"] = json!(r.to_string());
    }
    if o.status == "Cancelled" {
        v["cancelled-at"] = json!("2026-06-09T15:10:00.000+00:00");
        v["terminal-at"] = json!("2026-06-09T15:10:00.000+00:00");
    }
    v
}

fn search_orders(st: &FakeState, uri: &Uri, ctx: &str) -> Response<Body> {
    let params = query_params(uri);
    let Some(start) = params.get("start-date") else {
        return error_with(
            400,
            "validation_error",
            "Request validation failed",
            &[("start-date".into(), "is required".into())],
        );
    };
    if start.len() != 10 {
        return error(400, "validation_error", "start-date must be YYYY-MM-DD");
    }
    let per_page: usize = params.get("per-page").and_then(|v| v.parse().ok()).unwrap_or(10).clamp(1, 250);
    let page: usize = params.get("page-offset").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut all: Vec<&FakeOrder> = st.orders.iter().collect();
    if params.get("sort").map(String::as_str) != Some("Asc") {
        all.sort_by_key(|o| std::cmp::Reverse(o.id));
    }
    let total = all.len();
    let pages = total.div_ceil(per_page).max(1);
    let items: Vec<Value> = all.into_iter().skip(page * per_page).take(per_page).map(order_json).collect();
    reply(
        200,
        &json!({"data": {"items": items}, "context": ctx, "pagination": {
            "per-page": per_page, "page-offset": page, "item-offset": page * per_page,
            "total-items": total, "total-pages": pages, "current-item-count": items.len()
        }}),
    )
}

/// A fee as TastyTrade writes it: the amount and its effect.
fn fee_json(fee: Money) -> (String, &'static str) {
    let effect = if fee.is_positive() {
        "Debit"
    } else if fee.is_negative() {
        "Credit"
    } else {
        "None"
    };
    let amount = if fee.is_zero() { "0.0".to_string() } else { fee.abs().to_string() };
    (amount, effect)
}

fn transaction_date(t: &FakeTransaction) -> String {
    tasty_time(t.executed_at)[..10].to_string()
}

fn transaction_json(t: &FakeTransaction) -> Value {
    let value = notional(t.price, t.quantity, Quantity::from_int(t.multiplier));
    let buy = t.action.starts_with("Buy");
    // Signed as cash moves: a buy pays the value, fees are always paid.
    let net = if buy { -value } else { value } - t.fees();
    let net_effect = if net.is_positive() {
        "Credit"
    } else if net.is_negative() {
        "Debit"
    } else {
        "None"
    };
    let verb = if buy { "Bought" } else { "Sold" };
    let mut v = json!({
        "id": t.id, "account-number": ACCOUNT, "symbol": t.symbol, "instrument-type": t.instrument_type,
        "underlying-symbol": t.underlying, "transaction-type": "Trade", "transaction-sub-type": t.action,
        "description": format!("{verb} {} {} @ {}", t.quantity, t.symbol, t.price),
        "action": t.action, "quantity": t.quantity.to_string(), "price": t.price.to_string(),
        "executed-at": tasty_time(t.executed_at), "transaction-date": transaction_date(t),
        "value": value.to_string(), "value-effect": if buy { "Debit" } else { "Credit" },
        "net-value": net.abs().to_string(), "net-value-effect": net_effect,
        "is-estimated-fee": true, "ext-exchange-order-number": format!("{}", 9_000_000 + t.id),
        "exchange": "Q", "order-id": t.order_id, "leg-count": 1, "destination-venue": "FAKE"
    });
    for (name, fee) in [
        ("commission", t.commission),
        ("clearing-fees", t.clearing_fees),
        ("regulatory-fees", t.regulatory_fees),
        ("proprietary-index-option-fees", t.proprietary_index_option_fees),
    ] {
        let (amount, effect) = fee_json(fee);
        v[name] = json!(amount);
        v[format!("{name}-effect")] = json!(effect);
    }
    if let Some(e) = &t.ext_exec_id {
        v["ext-exec-id"] = json!(e);
        v["exec-id"] = json!(format!("E-{e}"));
    }
    v
}

/// `GET /accounts/{n}/transactions`: filters `type`, `start-date`,
/// `end-date` (on `transaction-date`, inclusive), `symbol`; `sort` (`Desc`
/// by default); `per-page` (default 250) and `page-offset`.
fn search_transactions(st: &FakeState, uri: &Uri, ctx: &str) -> Response<Body> {
    let params = query_params(uri);
    for name in ["start-date", "end-date"] {
        if let Some(d) = params.get(name)
            && (d.len() != 10 || Timestamp::parse(d).is_err())
        {
            return error_with(
                400,
                "validation_error",
                "Request validation failed",
                &[(name.into(), "must be YYYY-MM-DD".into())],
            );
        }
    }
    let sort = params.get("sort").map_or("Desc", String::as_str);
    if sort != "Asc" && sort != "Desc" {
        return error_with(
            400,
            "validation_error",
            "Request validation failed",
            &[("sort".into(), "must be Asc or Desc".into())],
        );
    }
    let per_page: usize = params.get("per-page").and_then(|v| v.parse().ok()).unwrap_or(250).clamp(1, 2000);
    let page: usize = params.get("page-offset").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut all: Vec<&FakeTransaction> = st
        .transactions
        .iter()
        // Every transaction of the fake is a trade.
        .filter(|_| params.get("type").is_none_or(|ty| ty == "Trade"))
        .filter(|t| params.get("start-date").is_none_or(|d| transaction_date(t) >= *d))
        .filter(|t| params.get("end-date").is_none_or(|d| transaction_date(t) <= *d))
        .filter(|t| params.get("symbol").is_none_or(|s| *s == t.symbol))
        .collect();
    all.sort_by_key(|t| (t.executed_at, t.id));
    if sort == "Desc" {
        all.reverse();
    }
    let total = all.len();
    let pages = total.div_ceil(per_page).max(1);
    let items: Vec<Value> = all.into_iter().skip(page * per_page).take(per_page).map(transaction_json).collect();
    reply(
        200,
        &json!({"data": {"items": items}, "context": ctx, "pagination": {
            "per-page": per_page, "page-offset": page, "item-offset": page * per_page,
            "total-items": total, "total-pages": pages, "current-item-count": items.len()
        }}),
    )
}

// ---------------------------------------------------------------------------
// Order validation.

/// A decimal from a JSON string or a JSON integer.
fn decimal(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

struct Parsed {
    order_type: String,
    tif: String,
    price: Option<Price>,
    price_effect: Option<String>,
    stop_trigger: Option<Price>,
    external_identifier: Option<String>,
}

const ORDER_TYPES: [&str; 4] = ["Market", "Limit", "Stop", "Stop Limit"];
const TIFS: [&str; 6] = ["Day", "GTC", "IOC", "GTD", "Ext", "GTC Ext"];
const ACTIONS: [&str; 4] = ["Buy to Open", "Buy to Close", "Sell to Open", "Sell to Close"];

/// The order-level fields (shared by new orders and replacements).
fn parse_order_fields(v: &Value, errors: &mut Vec<(String, String)>) -> Parsed {
    let mut field = |name: &str| -> Option<String> {
        match &v[name] {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            _ => {
                errors.push((name.into(), "must be a string".into()));
                None
            }
        }
    };
    let order_type = field("order-type");
    let tif = field("time-in-force");
    let price_effect = field("price-effect");
    let external_identifier = field("external-identifier");
    let mut price_of = |name: &str| -> Option<Price> {
        if v[name].is_null() {
            return None;
        }
        match decimal(&v[name]).and_then(|t| Price::parse(&t).ok()) {
            Some(p) if p.is_positive() => Some(p),
            _ => {
                errors.push((name.into(), "must be a positive decimal".into()));
                None
            }
        }
    };
    let price = price_of("price");
    let stop_trigger = price_of("stop-trigger");
    match order_type.as_deref() {
        None => errors.push(("order-type".into(), "is required".into())),
        Some(t) if !ORDER_TYPES.contains(&t) => errors.push(("order-type".into(), format!("'{t}' is not supported"))),
        Some(t) => {
            let needs_price = t == "Limit" || t == "Stop Limit";
            let needs_stop = t == "Stop" || t == "Stop Limit";
            if needs_price && price.is_none() {
                errors.push(("price".into(), format!("is required for {t} orders")));
            }
            if !needs_price && !v["price"].is_null() {
                errors.push(("price".into(), format!("is not allowed for {t} orders")));
            }
            if needs_stop && stop_trigger.is_none() {
                errors.push(("stop-trigger".into(), format!("is required for {t} orders")));
            }
            if !needs_stop && !v["stop-trigger"].is_null() {
                errors.push(("stop-trigger".into(), format!("is not allowed for {t} orders")));
            }
            if needs_price && !matches!(price_effect.as_deref(), Some("Debit" | "Credit")) {
                errors.push(("price-effect".into(), "must be Debit or Credit with a price".into()));
            }
        }
    }
    match tif.as_deref() {
        None => errors.push(("time-in-force".into(), "is required".into())),
        Some(t) if !TIFS.contains(&t) => errors.push(("time-in-force".into(), format!("'{t}' is not supported"))),
        _ => {}
    }
    Parsed {
        order_type: order_type.unwrap_or_default(),
        tif: tif.unwrap_or_default(),
        price,
        price_effect,
        stop_trigger,
        external_identifier,
    }
}

fn parse_legs(
    st: &FakeState,
    v: &Value,
    price_effect: Option<&str>,
    errors: &mut Vec<(String, String)>,
) -> Vec<FakeLeg> {
    let Some(legs) = v["legs"].as_array() else {
        errors.push(("legs".into(), "is required".into()));
        return vec![];
    };
    if legs.is_empty() {
        errors.push(("legs".into(), "must not be empty".into()));
    }
    let mut out = Vec::new();
    for (i, leg) in legs.iter().enumerate() {
        let name = |f: &str| format!("legs[{i}].{f}");
        let it = leg["instrument-type"].as_str().unwrap_or("");
        let symbol = leg["symbol"].as_str().unwrap_or("");
        let action = leg["action"].as_str().unwrap_or("");
        if it != "Equity" && it != "Equity Option" {
            errors.push((name("instrument-type"), format!("'{it}' must be Equity or Equity Option")));
            continue;
        }
        if it == "Equity" && legs.len() != 1 {
            errors.push(("legs".into(), "equity orders are limited to a single leg".into()));
        }
        let known = if it == "Equity" { st.equities.contains_key(symbol) } else { st.options.contains_key(symbol) };
        if !known {
            errors.push((name("symbol"), format!("unknown {it} symbol '{symbol}'")));
        }
        if !ACTIONS.contains(&action) {
            errors.push((name("action"), format!("'{action}' is not a valid action")));
        } else if let Some(pe) = price_effect {
            let want = if action.starts_with("Buy") { "Debit" } else { "Credit" };
            if pe != want {
                errors.push(("price-effect".into(), format!("{action} requires {want}")));
            }
        }
        let qty = decimal(&leg["quantity"]).and_then(|t| Quantity::parse(&t).ok());
        match qty {
            Some(q) if q.is_positive() && q.is_multiple_of(Quantity::ONE) => out.push(FakeLeg {
                instrument_type: it.into(),
                symbol: symbol.into(),
                quantity: q,
                remaining: q,
                action: action.into(),
                fills: vec![],
            }),
            Some(q) if q.is_positive() => {
                errors.push((name("quantity"), format!("{q} is not a whole number of shares or contracts")));
            }
            _ => errors.push((name("quantity"), "must be a positive number".into())),
        }
    }
    out
}

fn tick_for(tiers: &[Tier], price: Price) -> Price {
    for t in tiers {
        match t.threshold {
            Some(th) if price < p(th) => return p(t.value),
            Some(_) => {}
            None => return p(t.value),
        }
    }
    p("0.01")
}

/// The fee schedule (dry runs and fills): `(clearing, commission)` for
/// `qty` of a leg. Shares: clearing 0.0008 per share, no commission.
/// Options: clearing 0.10 per contract, and to open a commission of 1.00
/// per contract, at most 10.00 a leg.
fn leg_fees(instrument_type: &str, action: &str, qty: Quantity) -> (Money, Money) {
    let units = Money::parse(&qty.abs().to_string()).unwrap();
    if instrument_type == "Equity" {
        (units.mul_div(8, 10_000), Money::ZERO)
    } else {
        let commission = if !action.ends_with("Open") {
            Money::ZERO
        } else if units > m("10") {
            m("10")
        } else {
            units
        };
        (units.mul_div(1, 10), commission)
    }
}

/// Preflight checks: tick size and buying power. Returns (failures, fees, notional, effect).
fn preflight(st: &FakeState, parsed: &Parsed, legs: &[FakeLeg]) -> (Vec<(String, String)>, Money, Money) {
    let mut failures = Vec::new();
    let mut fees = Money::ZERO;
    let mut value = Money::ZERO;
    for leg in legs {
        let (tiers, mark, mult) = if leg.instrument_type == "Equity" {
            let e = &st.equities[leg.symbol.as_str()];
            (e.ticks.clone(), e.mark, 1)
        } else {
            let o = &st.options[leg.symbol.as_str()];
            (st.equities[o.underlying].option_ticks.clone(), o.mark, 100)
        };
        for (what, px) in [("price", parsed.price), ("stop-trigger", parsed.stop_trigger)] {
            if let Some(px) = px {
                let tick = tick_for(&tiers, px);
                if !px.is_multiple_of(tick) {
                    failures.push((
                        "invalid_price_increment".into(),
                        format!("{what} {px} is not a multiple of the tick size {tick}"),
                    ));
                }
            }
        }
        let px = parsed.price.unwrap_or_else(|| parsed.stop_trigger.unwrap_or_else(|| p(mark)));
        value += notional(px, leg.quantity, Quantity::from_int(mult));
        let (clearing, commission) = leg_fees(&leg.instrument_type, &leg.action, leg.quantity);
        fees += clearing + commission;
    }
    let buying = legs.iter().any(|l| l.action.starts_with("Buy"));
    if buying && value + fees > st.buying_power {
        failures.push((
            "insufficient_buying_power".into(),
            format!("order requires {} of buying power; {} available", value + fees, st.buying_power),
        ));
    }
    (failures, fees, value)
}

fn effects_json(st: &FakeState, legs: &[FakeLeg], value: Money, buying: bool) -> (Value, Value) {
    let (clearing, commission) = legs.iter().fold((Money::ZERO, Money::ZERO), |(c, k), l| {
        let (lc, lk) = leg_fees(&l.instrument_type, &l.action, l.quantity);
        (c + lc, k + lk)
    });
    let fees = clearing + commission;
    let change = if buying { value + fees } else { value - fees };
    let new_bp = if buying { st.buying_power - change } else { st.buying_power + change };
    let effect = if buying { "Debit" } else { "Credit" };
    let bpe = json!({
        "change-in-margin-requirement": value.to_string(), "change-in-margin-requirement-effect": "Debit",
        "change-in-buying-power": change.to_string(), "change-in-buying-power-effect": effect,
        "current-buying-power": st.buying_power.to_string(), "current-buying-power-effect": "Credit",
        "new-buying-power": new_bp.to_string(), "new-buying-power-effect": "Credit",
        "isolated-order-margin-requirement": value.to_string(), "isolated-order-margin-requirement-effect": "Debit",
        "is-spread": false, "impact": change.to_string(), "effect": effect
    });
    let (clearing, clearing_effect) = fee_json(clearing);
    let (commission, commission_effect) = fee_json(commission);
    let fee = json!({
        "regulatory-fees": "0.0", "regulatory-fees-effect": "None",
        "clearing-fees": clearing, "clearing-fees-effect": clearing_effect,
        "commission": commission, "commission-effect": commission_effect,
        "proprietary-index-option-fees": "0.0", "proprietary-index-option-fees-effect": "None",
        "total-fees": fees.to_string(), "total-fees-effect": "Debit"
    });
    (bpe, fee)
}

fn submit(st: &mut FakeState, body: &Bytes, dry_run: bool, ctx: &str) -> Response<Body> {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return error(400, "invalid_json", "The request body is not valid JSON");
    };
    let mut errors = Vec::new();
    let parsed = parse_order_fields(&v, &mut errors);
    let legs = parse_legs(st, &v, parsed.price_effect.as_deref(), &mut errors);
    if !errors.is_empty() {
        return error_with(400, "validation_error", "Request validation failed", &errors);
    }
    let (failures, _, value) = preflight(st, &parsed, &legs);
    if !failures.is_empty() && !dry_run {
        return error_with(422, "preflight_check_failure", "One or more preflight checks failed", &failures);
    }
    let buying = legs.iter().any(|l| l.action.starts_with("Buy"));
    let (bpe, fee) = effects_json(st, &legs, value, buying);
    let mut order = FakeOrder {
        id: 0,
        status: "Received".into(),
        order_type: parsed.order_type,
        time_in_force: parsed.tif,
        price: parsed.price,
        price_effect: parsed.price_effect,
        stop_trigger: parsed.stop_trigger,
        external_identifier: parsed.external_identifier,
        legs,
        replaces: None,
        replacing: None,
        old: false,
    };
    let warnings: Vec<Value> = failures.iter().map(|(c, msg)| json!({"code": c, "message": msg})).collect();
    if dry_run {
        let mut oj = order_json(&order);
        if let Some(obj) = oj.as_object_mut() {
            obj.remove("id");
        }
        return reply(
            201,
            &json!({"data": {"order": oj, "warnings": warnings, "buying-power-effect": bpe, "fee-calculation": fee}, "context": ctx}),
        );
    }
    order.id = st.next_order_id;
    st.next_order_id += 1;
    order.status = "Routed".into();
    let oj = order_json(&order);
    st.orders.push(order);
    reply(
        201,
        &json!({"data": {"order": oj, "warnings": [], "buying-power-effect": bpe, "fee-calculation": fee}, "context": ctx}),
    )
}

fn cancel(st: &mut FakeState, id: &str, ctx: &str) -> Response<Body> {
    let Some(id) = id.parse::<u64>().ok() else { return error(404, "record_not_found", "Order not found") };
    let Some(o) = st.orders.iter_mut().find(|o| o.id == id) else {
        return error(404, "record_not_found", "Order not found");
    };
    if !matches!(o.status.as_str(), "Received" | "Routed" | "In Flight" | "Live" | "Contingent") {
        return error(422, "order_not_cancellable", &format!("Order in status {} cannot be cancelled", o.status));
    }
    o.status = "Cancelled".into();
    reply(200, &json!({"data": order_json(o), "context": ctx}))
}

fn replace(st: &mut FakeState, id: &str, body: &Bytes, ctx: &str) -> Response<Body> {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return error(400, "invalid_json", "The request body is not valid JSON");
    };
    let Some(id) = id.parse::<u64>().ok() else { return error(404, "record_not_found", "Order not found") };
    let Some(idx) = st.orders.iter().position(|o| o.id == id) else {
        return error(404, "record_not_found", "Order not found");
    };
    let old = st.orders[idx].clone();
    if !matches!(old.status.as_str(), "Received" | "Routed" | "Live") {
        return error(422, "order_not_editable", &format!("Order in status {} cannot be replaced", old.status));
    }
    let mut errors = Vec::new();
    let parsed = parse_order_fields(&v, &mut errors);
    if let Some(pe) = parsed.price_effect.as_deref() {
        let want = if old.legs[0].action.starts_with("Buy") { "Debit" } else { "Credit" };
        if pe != want {
            errors.push(("price-effect".into(), format!("{} requires {want}", old.legs[0].action)));
        }
    }
    if !errors.is_empty() {
        return error_with(400, "validation_error", "Request validation failed", &errors);
    }
    let legs: Vec<FakeLeg> =
        old.legs.iter().map(|l| FakeLeg { remaining: l.quantity, fills: vec![], ..l.clone() }).collect();
    let (failures, _, _) = preflight(st, &parsed, &legs);
    if !failures.is_empty() {
        return error_with(422, "preflight_check_failure", "One or more preflight checks failed", &failures);
    }
    let new_id = st.next_order_id;
    st.next_order_id += 1;
    let new = FakeOrder {
        id: new_id,
        status: "Routed".into(),
        order_type: parsed.order_type,
        time_in_force: parsed.tif,
        price: parsed.price,
        price_effect: parsed.price_effect,
        stop_trigger: parsed.stop_trigger,
        external_identifier: parsed.external_identifier,
        legs,
        replaces: Some(id),
        replacing: None,
        old: false,
    };
    st.orders[idx].status = "Cancelled".into();
    st.orders[idx].replacing = Some(new_id);
    let oj = order_json(&new);
    st.orders.push(new);
    reply(200, &json!({"data": oj, "context": ctx}))
}
