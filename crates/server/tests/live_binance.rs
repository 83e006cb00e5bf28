//! A live Binance account through the real API, a real database and the
//! local fake of Binance's spot REST API (`venue_fakes::binance`, written
//! from Binance's documented formats; it checks signatures, timestamps and
//! parameters): linking, the owner's confirmation, trading by hand,
//! commissions taken in the base asset, a venue-side cancel, fills that
//! happen while the server is down (applied exactly once), placements whose
//! outcome is unknown (found, or confirmed absent, never sent twice), and
//! a difference nothing explains (alert, close-only).

mod common;

use std::time::Duration;

use axum::http::Method;
use common::live::{self, cash, fills, order_status, reconcile, reconciled, submit, wait_status};
use common::{ADMIN_PASSWORD, Server, User};
use model::{Money, Price, Quantity};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sim::candles::{Candle, Interval};
use store::testing::TestDatabase;
use venue_fakes::binance::{FakeBinance, FakeKey, FaultAction};
use venue_fakes::binance_ws::{FakeKey as WsKey, FakeMarketStreams, FakeWsApi};

/// The venue: REST, the WebSocket API (user data) and the market streams.
struct Binance {
    rest: FakeBinance,
    ws: FakeWsApi,
    market: FakeMarketStreams,
}

impl Binance {
    async fn start() -> Self {
        Self {
            rest: FakeBinance::start(vec![(API_KEY.to_string(), FakeKey::Hmac(API_SECRET.to_string()))]).await,
            ws: FakeWsApi::start(vec![(API_KEY.to_string(), WsKey::Hmac(API_SECRET.to_string()))]).await,
            market: FakeMarketStreams::start().await,
        }
    }

    /// Tells the user data stream an order changed (what Binance pushes).
    fn push_execution(&self, client_order_id: &str, status: &str) {
        self.ws.push_event(json!({
            "e": "executionReport", "E": 1_700_000_000_123_i64, "s": "BTCUSDT", "c": client_order_id, "S": "SELL",
            "o": "LIMIT", "f": "GTC", "q": "0.01000000", "p": "60000.00000000", "P": "0.00000000",
            "F": "0.00000000", "g": -1, "C": "", "x": "TRADE", "X": status, "r": "NONE", "i": 1, "l": "0.01000000",
            "z": "0.01000000", "L": "60000.00000000", "n": "0.6", "N": "USDT", "T": 1_700_000_000_120_i64,
            "t": 1, "I": 1, "w": false, "m": true, "M": true, "O": 1_700_000_000_000_i64, "Z": "600.00000000",
            "Y": "600.00000000", "Q": "0.00000000", "W": 1_700_000_000_001_i64, "V": "EXPIRE_MAKER"
        }));
    }

    fn book_ticker(&self, bid: &str, ask: &str) {
        self.market.publish(
            "btcusdt@bookTicker",
            json!({"u": 400_900_217, "s": "BTCUSDT", "b": bid, "B": "31.21", "a": ask, "A": "40.66"}),
        );
    }
}

const API_KEY: &str = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";
const API_SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";

async fn start(db: &TestDatabase, venue: &Binance) -> Server {
    live::start(
        db,
        &[
            ("TRADECORE_VENUES__BINANCE_REST_URL", &venue.rest.url),
            ("TRADECORE_VENUES__BINANCE_WS_API_URL", &venue.ws.url),
            ("TRADECORE_VENUES__BINANCE_STREAM_URL", &venue.market.url),
        ],
    )
    .await
}

async fn position(user: &User, account: i64) -> String {
    let (status, positions) = user.get(&format!("/api/v1/accounts/{account}/positions")).await;
    assert_eq!(status, StatusCode::OK, "{positions}");
    // The account trades one instrument.
    let rows = positions.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{positions}");
    rows[0]["quantity"].as_str().unwrap().to_string()
}

fn limit(id: &str, side: &str, quantity: &str, price: &str) -> Value {
    json!({"client_order_id": id, "symbol": "BTCUSDT", "side": side, "type": "limit",
           "quantity": quantity, "price": price})
}

/// Stores and announces yesterday's daily candle of the account's BTCUSDT
/// (what the candle builder does when a day ends), so a bot acts now.
async fn close_daily_candle(server: &Server, account: i64, close: &str) {
    let runtime = &server.started.state.runtime;
    let instrument = server::live::instrument_id(account, 0).unwrap();
    let today = Interval::D1.start_of(runtime.now());
    let price = Price::parse(close).unwrap();
    let candle = Candle {
        instrument,
        interval: Interval::D1,
        start: today.plus_nanos(-Interval::D1.as_nanos()),
        open: price,
        high: price,
        low: price,
        close: price,
        volume: Quantity::ZERO,
        trades: 0,
    };
    runtime.store.save_candles(&[server::feed::record(&candle)]).await.unwrap();
    runtime.publish_candle(candle);
}

async fn link_and_open(db: &TestDatabase, venue: &Binance) -> (Server, User, i64) {
    let server = start(db, venue).await;
    let admin = User::sign_in(&server.base, "admin", ADMIN_PASSWORD).await;
    let (status, credential) = admin
        .post(
            "/api/v1/venue-credentials",
            json!({"venue": "binance", "label": "main", "api_key": API_KEY, "api_secret": API_SECRET}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{credential}");
    let credential = credential["id"].as_i64().unwrap();

    // A symbol the venue does not list: refused on that field, nothing made.
    let (status, problem) = admin
        .post("/api/v1/accounts", json!({"name": "spot", "venue_credential_id": credential, "symbols": ["NOPEUSDT"]}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["field"], "symbols", "{problem}");
    let (_, accounts) = admin.get("/api/v1/accounts").await;
    assert!(accounts.as_array().unwrap().is_empty(), "{accounts}");

    let (status, account) = admin
        .post("/api/v1/accounts", json!({"name": "spot", "venue_credential_id": credential, "symbols": ["BTCUSDT"]}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{account}");
    assert_eq!(account["venue"], "binance");
    assert_eq!(account["environment"], "testnet");
    assert_eq!(account["base_currency"], "USDT");
    assert_eq!(account["live"]["confirmed"], false);
    assert_eq!(account["live"]["trading"], false);
    let id = account["id"].as_i64().unwrap();

    // The credential is in use: it cannot be unlinked under the account.
    let (status, problem) = admin.delete(&format!("/api/v1/venue-credentials/{credential}")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(problem["code"], "credential_in_use");
    (server, admin, id)
}

async fn trades_by_hand_and_reconciles(backend: &str) {
    let db = TestDatabase::create(backend, "live_binance").await;
    let binance = Binance::start().await;
    let fake = &binance.rest;
    let (server, admin, account) = link_and_open(&db, &binance).await;

    // Balances and positions as the venue has them: the 1 BTC held before
    // linking is the venue's, not a position tradecore opened.
    let venue = reconciled(&admin, account).await;
    assert_eq!(venue["differences"], json!([]), "{venue}");
    let held: Vec<&str> =
        venue["balances"].as_array().unwrap().iter().map(|b| b["currency"].as_str().unwrap()).collect();
    assert!(held.contains(&"BTC") && held.contains(&"USDT"), "{venue}");
    assert_eq!(cash(&admin, account, "USDT").await, Money::from_int(10_000));
    assert_eq!(position(&admin, account).await, "0");
    let (status, instruments) = admin.get(&format!("/api/v1/accounts/{account}/instruments")).await;
    assert_eq!(status, StatusCode::OK, "{instruments}");
    assert_eq!(instruments[0]["symbol"], "BTCUSDT", "{instruments}");
    assert_eq!(instruments[0]["venue"], "binance", "{instruments}");
    assert_eq!(instruments[0]["tick_size"], "0.01", "from exchangeInfo's PRICE_FILTER: {instruments}");

    // Nothing is sent before the owner confirms.
    let (status, problem) = submit(&admin, account, limit("early-1", "buy", "0.01", "50000")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(problem["code"], "trading_not_allowed");
    assert!(fake.orders().is_empty());
    let (status, problem) =
        admin.post(&format!("/api/v1/accounts/{account}/live-confirmation"), json!({"confirm": false})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let (status, confirmed) =
        admin.post(&format!("/api/v1/accounts/{account}/live-confirmation"), json!({"confirm": true})).await;
    assert_eq!(status, StatusCode::OK, "{confirmed}");
    assert_eq!(confirmed["live"]["trading"], true, "{confirmed}");

    // A marketable buy fills at once; Binance keeps 0.1% of the BTC as its
    // commission, so 0.00999 arrive: that is the position.
    let (status, order) = submit(&admin, account, limit("buy-1", "buy", "0.01", "50000")).await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    wait_status(&admin, account, order["id"].as_i64().unwrap(), "filled").await;
    assert_eq!(position(&admin, account).await, "0.00999");
    let sent = fake.orders();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].client_order_id, "buy-1", "our client order id is Binance's newClientOrderId");
    let filled = fills(&admin, account).await;
    assert_eq!(filled.len(), 1);
    assert_eq!(filled[0]["fee"], "0", "the commission was BTC, not USDT: {filled:?}");
    // The venue holds 1.00999 BTC: the link's 1 and the 0.00999 bought.
    // Nothing unexplained, nothing to correct.
    let summary = reconcile(&admin, account).await;
    assert_eq!(summary["differences"], json!([]), "{summary}");
    assert_eq!(summary["reports"], 0, "{summary}");
    assert_eq!(summary["cash_adjusted"], json!([]), "cash already matches: {summary}");
    assert_eq!(cash(&admin, account, "USDT").await, Money::from_int(9_500));

    // The kill switches apply as on paper: nothing reaches the venue.
    let sent_before = fake.orders().len();
    let (status, body) = admin
        .call(Method::PUT, &format!("/api/v1/accounts/{account}/kill-switch"), Some(json!({"state": "halted"})))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, problem) = submit(&admin, account, limit("halted-1", "buy", "0.01", "50000")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["code"], "kill_switch_account", "{problem}");
    let (status, body) = admin.call(Method::PUT, "/api/v1/kill-switch", Some(json!({"state": "halted"}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = admin
        .call(Method::PUT, &format!("/api/v1/accounts/{account}/kill-switch"), Some(json!({"state": "active"})))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, problem) = submit(&admin, account, limit("halted-2", "buy", "0.01", "50000")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["code"], "kill_switch_global", "{problem}");
    let (status, body) = admin.call(Method::PUT, "/api/v1/kill-switch", Some(json!({"state": "active"}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(fake.orders().len(), sent_before, "refused orders never reach the venue");

    // Post-only: only for GTC limit orders; one that would take is refused
    // by Binance (LIMIT_MAKER), one that rests is placed as LIMIT_MAKER.
    let (status, problem) = submit(
        &admin,
        account,
        json!({"client_order_id": "maker-0", "symbol": "BTCUSDT", "side": "buy", "type": "market",
               "quantity": "0.01", "post_only": true}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["field"], "post_only", "{problem}");
    let post_only = |id: &str, price: &str| {
        let mut body = limit(id, "buy", "0.01", price);
        body["post_only"] = json!(true);
        body
    };
    let (status, taker) = submit(&admin, account, post_only("maker-1", "50000")).await;
    assert_eq!(status, StatusCode::CREATED, "{taker}");
    wait_status(&admin, account, taker["id"].as_i64().unwrap(), "rejected").await;
    let (_, taker) = admin.get(&format!("/api/v1/accounts/{account}/orders/{}", taker["id"])).await;
    assert_eq!(taker["reject_reason"], "would_take_liquidity", "{taker}");
    let (status, maker) = submit(&admin, account, post_only("maker-2", "45000")).await;
    assert_eq!(status, StatusCode::CREATED, "{maker}");
    let maker = maker["id"].as_i64().unwrap();
    wait_status(&admin, account, maker, "accepted").await;
    let at_venue = fake.orders().into_iter().find(|o| o.client_order_id == "maker-2").unwrap();
    assert_eq!(at_venue.order_type, "LIMIT_MAKER");
    let (status, body) = admin.delete(&format!("/api/v1/accounts/{account}/orders/{maker}")).await;
    assert!(status.is_success(), "{body}");
    wait_status(&admin, account, maker, "cancelled").await;

    // A resting order cancelled at the venue is reflected.
    let (status, resting) = submit(&admin, account, limit("rest-1", "buy", "0.01", "40000")).await;
    assert_eq!(status, StatusCode::CREATED, "{resting}");
    let resting = resting["id"].as_i64().unwrap();
    wait_status(&admin, account, resting, "accepted").await;
    fake.cancel_at_venue("rest-1");
    let summary = reconcile(&admin, account).await;
    assert_eq!(summary["reports"], 1, "{summary}");
    assert_eq!(order_status(&admin, account, resting).await, "cancelled");

    // A reconciliation queued before an order's placement must not judge
    // that order: it is not at the venue yet because it was not sent yet.
    // The venue task is held by a slow placement; meanwhile a reconciliation
    // is asked for, then another order is submitted.
    fake.fault(Method::POST, "/api/v3/order", FaultAction::StallAfter(Duration::from_millis(800)), 1);
    let (status, slow) = submit(&admin, account, limit("slow-1", "buy", "0.01", "30000")).await;
    assert_eq!(status, StatusCode::CREATED, "{slow}");
    let asked = {
        let (http, base, token) = (admin.http.clone(), admin.base.clone(), admin.token.clone());
        tokio::spawn(async move {
            http.post(format!("{base}/api/v1/accounts/{account}/reconcile"))
                .bearer_auth(token)
                .json(&json!({}))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, queued) = submit(&admin, account, limit("queued-1", "buy", "0.01", "31000")).await;
    assert_eq!(status, StatusCode::CREATED, "{queued}");
    let summary = asked.await.unwrap();
    assert_eq!(summary["differences"], json!([]), "{summary}");
    wait_status(&admin, account, queued["id"].as_i64().unwrap(), "accepted").await;
    wait_status(&admin, account, slow["id"].as_i64().unwrap(), "accepted").await;
    for (id, order) in [("slow-1", &slow), ("queued-1", &queued)] {
        assert!(fake.orders().iter().any(|o| o.client_order_id == id && o.status == "NEW"), "{id} rests at the venue");
        let (status, body) = admin.delete(&format!("/api/v1/accounts/{account}/orders/{}", order["id"])).await;
        assert!(status.is_success(), "{body}");
        wait_status(&admin, account, order["id"].as_i64().unwrap(), "cancelled").await;
    }

    // The scheduled reconcile job reconciles live accounts with their venues too.
    let (status, resting) = submit(&admin, account, limit("rest-job", "buy", "0.01", "39000")).await;
    assert_eq!(status, StatusCode::CREATED, "{resting}");
    let resting = resting["id"].as_i64().unwrap();
    wait_status(&admin, account, resting, "accepted").await;
    fake.cancel_at_venue("rest-job");
    let (status, job) = admin.post("/api/v1/admin/jobs", json!({"kind": "reconcile"})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    wait_status(&admin, account, resting, "cancelled").await;

    // A cancel from here reaches the venue.
    let (status, resting) = submit(&admin, account, limit("rest-2", "buy", "0.01", "41000")).await;
    assert_eq!(status, StatusCode::CREATED, "{resting}");
    let resting = resting["id"].as_i64().unwrap();
    wait_status(&admin, account, resting, "accepted").await;
    let (status, body) = admin.delete(&format!("/api/v1/accounts/{account}/orders/{resting}")).await;
    assert!(status.is_success(), "{body}");
    wait_status(&admin, account, resting, "cancelled").await;
    assert_eq!(fake.orders().iter().find(|o| o.client_order_id == "rest-2").unwrap().status, "CANCELED");

    // A sell rests; it fills while the server is down. On start the fill
    // is applied once, and restarting again changes nothing.
    let (status, sell) = submit(&admin, account, limit("sell-1", "sell", "0.00999", "60000")).await;
    assert_eq!(status, StatusCode::CREATED, "{sell}");
    let sell = sell["id"].as_i64().unwrap();
    wait_status(&admin, account, sell, "accepted").await;
    server.stop().await;
    fake.fill_resting("sell-1");
    for _ in 0..2 {
        let server = start(&db, &binance).await;
        let admin = User::sign_in(&server.base, "admin", ADMIN_PASSWORD).await;
        let venue = reconciled(&admin, account).await;
        assert_eq!(venue["differences"], json!([]), "{venue}");
        assert_eq!(order_status(&admin, account, sell).await, "filled");
        assert_eq!(position(&admin, account).await, "0");
        assert_eq!(fills(&admin, account).await.len(), 2, "the fill counted exactly once");
        server.stop().await;
    }

    let server = start(&db, &binance).await;
    let admin = User::sign_in(&server.base, "admin", ADMIN_PASSWORD).await;
    reconciled(&admin, account).await;

    // The venue answers 500 after taking the order: the outcome is unknown,
    // the order is looked up (never sent again) and found filled.
    fake.fault(Method::POST, "/api/v3/order", FaultAction::Error500After, 1);
    let (status, order) = submit(&admin, account, limit("unknown-1", "buy", "0.01", "50000")).await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    wait_status(&admin, account, order["id"].as_i64().unwrap(), "filled").await;
    assert_eq!(fake.orders().iter().filter(|o| o.client_order_id == "unknown-1").count(), 1);
    assert_eq!(position(&admin, account).await, "0.00999");

    // It stalls and fails without taking the order: looked up, absent,
    // rejected; nothing reached the book.
    fake.fault(Method::POST, "/api/v3/order", FaultAction::StallBefore(Duration::from_millis(100)), 1);
    let (status, order) = submit(&admin, account, limit("unknown-2", "buy", "0.01", "50000")).await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    wait_status(&admin, account, order["id"].as_i64().unwrap(), "rejected").await;
    assert_eq!(fake.orders().iter().filter(|o| o.client_order_id == "unknown-2").count(), 0);
    assert_eq!(fake.count(&Method::POST, "/api/v3/order"), 11, "eleven orders, each sent once, none resent");
    assert!(!binance.ws.subscriptions().is_empty(), "the user data stream was subscribed");
    let summary = reconcile(&admin, account).await;
    assert_eq!(summary["differences"], json!([]), "{summary}");

    // Live updates: a resting sell fills at the venue and Binance pushes
    // the execution; the account follows without being asked to reconcile.
    let (status, sell) = submit(&admin, account, limit("sell-2", "sell", "0.00999", "60000")).await;
    assert_eq!(status, StatusCode::CREATED, "{sell}");
    let sell = sell["id"].as_i64().unwrap();
    wait_status(&admin, account, sell, "accepted").await;
    fake.fill_resting("sell-2");
    binance.push_execution("sell-2", "FILLED");
    wait_status(&admin, account, sell, "filled").await;
    assert_eq!(position(&admin, account).await, "0");

    // Book tickers mark the account, which gives market orders a reference
    // price (without one the risk checks refuse them).
    binance.book_ticker("49990.00", "50010.00");
    let mut marked = false;
    for _ in 0..100 {
        let (_, view) = admin.get(&format!("/api/v1/accounts/{account}")).await;
        if view.to_string().contains("50000") {
            marked = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(marked, "the book ticker never marked the account");
    let (status, order) = submit(
        &admin,
        account,
        json!({"client_order_id": "mkt-1", "symbol": "BTCUSDT", "side": "buy", "type": "market", "quantity": "0.01"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    wait_status(&admin, account, order["id"].as_i64().unwrap(), "filled").await;
    assert_eq!(position(&admin, account).await, "0.00999");

    // A bot on the live account: a daily DCA buying 100 USDT on every
    // closed candle. Its order goes to the venue like a hand-placed one.
    let (status, bot) = admin
        .post(
            "/api/v1/bots",
            json!({"name": "dca", "account_id": account, "symbol": "BTCUSDT", "strategy": "dca",
                   "params": {"every": 1, "amount": "100"}, "interval": "1d", "warmup_bars": 0, "start": true}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{bot}");
    close_daily_candle(&server, account, "50000").await;
    let mut bought = false;
    for _ in 0..200 {
        if fake.orders().iter().any(|o| o.client_order_id.starts_with("bot") && o.status == "FILLED") {
            bought = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(bought, "the bot's order never reached the venue: {:?}", fake.orders());
    let bot_id = bot["id"].as_i64().unwrap();
    let (status, body) = admin.post(&format!("/api/v1/bots/{bot_id}/stop"), json!({})).await;
    assert!(status.is_success(), "{body}");
    let summary = reconcile(&admin, account).await;
    assert_eq!(summary["differences"], json!([]), "{summary}");

    // BTC arrives at the venue from elsewhere: nothing explains it, so the
    // account becomes close-only and says why.
    fake.deposit("BTC", Money::parse("0.5").unwrap());
    let summary = reconcile(&admin, account).await;
    let differences = summary["differences"].as_array().unwrap();
    assert_eq!(differences.len(), 1, "{summary}");
    assert!(differences[0].as_str().unwrap().contains("position in BTCUSDT"), "{summary}");
    let (_, view) = admin.get(&format!("/api/v1/accounts/{account}")).await;
    assert_eq!(view["trading_state"], "reducing", "{view}");
    let (status, problem) = submit(&admin, account, limit("more-1", "buy", "0.01", "50000")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let venue = reconciled(&admin, account).await;
    assert_eq!(venue["differences"].as_array().unwrap().len(), 1, "{venue}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binance_account_trades_and_reconciles_on_sqlite() {
    trades_by_hand_and_reconciles("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binance_account_trades_and_reconciles_on_postgres() {
    trades_by_hand_and_reconciles("postgres").await;
}
