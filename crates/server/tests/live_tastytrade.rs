//! A live TastyTrade account through the real API, a real database and the
//! local fake of TastyTrade's REST API (`venue_fakes::tastytrade`, written
//! from TastyTrade's documented formats; it checks the OAuth grant, bearer
//! tokens and order JSON): linking a sandbox credential to an account
//! number, the owner's confirmation, trading shares and an equity option by
//! hand (orders carry our client order id as `external-identifier`; fills
//! come with a reconciliation, with the fees of their Trade transactions),
//! a venue-side cancel, fills that happen while
//! the server is down (applied exactly once), placements whose outcome is
//! unknown (found, or confirmed absent, never sent twice), and a difference
//! nothing explains (alert, close-only).

mod common;

use std::time::Duration;

use axum::http::Method;
use common::live::{self, fills, order_status, reconcile, reconciled, submit, wait_status};
use common::{ADMIN_PASSWORD, Server, User};
use model::{Money, Quantity};
use reqwest::StatusCode;
use serde_json::{Value, json};
use store::testing::TestDatabase;
use venue_fakes::tastytrade::{ACCOUNT, CLIENT_SECRET, FakeOrder, FakeTasty, FaultAction, REFRESH_TOKEN};
use venue_fakes::tastytrade_ws::{FakeAccountStreamer, FakeDxLink, TokenCheck};

/// The venue's streams: the account streamer (it checks our access tokens
/// with the REST fake) and DXLink (it takes the quote token the REST fake
/// issues).
struct Streams {
    account: FakeAccountStreamer,
    dxlink: FakeDxLink,
}

impl Streams {
    async fn start(rest: &FakeTasty) -> Self {
        let account = FakeAccountStreamer::start(TokenCheck::Rest(rest.url.clone())).await;
        let dxlink = FakeDxLink::start(Duration::from_secs(60), None).await;
        dxlink.allow_token("dxlink-secret-token");
        Self { account, dxlink }
    }
}

/// The fake does not check the client id (TastyTrade's grant needs the
/// secret and the refresh token); the server sends it all the same.
const CLIENT_ID: &str = "0f2b6c1e-7a9d-4c3b-9e51-2d8f4a6b7c90";
/// An equity option the fake lists (no position in it before linking).
const CALL: &str = "AAPL  240119C00150000";
/// An equity option the account is short 2 of before linking.
const PUT: &str = "SPY   231215P00452500";

/// The cash balance the fake starts with.
fn start_cash() -> Money {
    Money::parse("25000.125").unwrap()
}

/// The fake's fee schedule (its dry runs' and its Trade transactions'):
/// shares pay 0.0008 a share clearing; options 0.10 a contract clearing,
/// plus 1.00 a contract commission to open.
fn share_fee(shares: i64) -> Money {
    Money::from_int(shares).mul_div(8, 10_000)
}

fn option_open_fee(contracts: i64) -> Money {
    Money::from_int(contracts).mul_div(1, 10) + Money::from_int(contracts)
}

fn orders_path() -> String {
    format!("/accounts/{ACCOUNT}/orders")
}

async fn start(db: &TestDatabase, fake: &FakeTasty, streams: &Streams) -> Server {
    live::start(
        db,
        &[
            ("TRADECORE_VENUES__TASTYTRADE_API_URL", &fake.url),
            ("TRADECORE_VENUES__TASTYTRADE_STREAMER_URL", &streams.account.url),
            ("TRADECORE_VENUES__TASTYTRADE_DXLINK_URL", &streams.dxlink.url),
        ],
    )
    .await
}

/// The account's symbols, in the order they were named.
const SYMBOLS: [&str; 4] = ["AAPL", "SPY", CALL, PUT];

/// Tradecore's position in `symbol` (every instrument of the account is
/// listed, by id: the `index`th symbol's is `server::live::instrument_id`).
async fn position(user: &User, account: i64, symbol: &str) -> Quantity {
    let index = SYMBOLS.iter().position(|s| *s == symbol).unwrap();
    let instrument = server::live::instrument_id(account, index).unwrap().0;
    let (status, positions) = user.get(&format!("/api/v1/accounts/{account}/positions")).await;
    assert_eq!(status, StatusCode::OK, "{positions}");
    assert_eq!(positions.as_array().unwrap().len(), SYMBOLS.len(), "{positions}");
    let row = positions.as_array().unwrap().iter().find(|r| r["instrument"] == instrument).cloned();
    let row = row.unwrap_or_else(|| panic!("no {symbol} ({instrument}) in {positions}"));
    Quantity::parse(row["quantity"].as_str().unwrap()).unwrap()
}

/// The venue's position in `symbol` at the last reconciliation.
fn venue_position(venue: &Value, symbol: &str) -> Quantity {
    let row = venue["positions"].as_array().unwrap().iter().find(|r| r["symbol"] == symbol).cloned();
    let row = row.unwrap_or_else(|| panic!("no {symbol} in {venue}"));
    Quantity::parse(row["quantity"].as_str().unwrap()).unwrap()
}

fn q(text: &str) -> Quantity {
    Quantity::parse(text).unwrap()
}

fn money(text: &str) -> Money {
    Money::parse(text).unwrap()
}

/// Submits an order the server takes; its id.
async fn submitted(user: &User, account: i64, body: Value) -> i64 {
    let (status, order) = submit(user, account, body).await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    order["id"].as_i64().unwrap()
}

fn limit(id: &str, symbol: &str, side: &str, quantity: &str, price: &str) -> Value {
    json!({"client_order_id": id, "symbol": symbol, "side": side, "type": "limit",
           "quantity": quantity, "price": price})
}

/// The order the fake holds under this external identifier (exactly one).
fn at_venue(fake: &FakeTasty, external_identifier: &str) -> FakeOrder {
    assert_eq!(fake.orders_with_external_id(external_identifier), 1, "one order {external_identifier} at the venue");
    fake.order_with_external_id(external_identifier).unwrap()
}

async fn link_and_open(db: &TestDatabase, fake: &FakeTasty, streams: &Streams) -> (Server, User, i64) {
    let server = start(db, fake, streams).await;
    let admin = User::sign_in(&server.base, "admin", ADMIN_PASSWORD).await;
    let (status, credential) = admin
        .post(
            "/api/v1/venue-credentials",
            json!({"venue": "tastytrade", "label": "sandbox", "client_id": CLIENT_ID,
                   "client_secret": CLIENT_SECRET, "refresh_token": REFRESH_TOKEN}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{credential}");
    assert_eq!(credential["environment"], "sandbox", "{credential}");
    let credential = credential["id"].as_i64().unwrap();
    let symbols = json!(SYMBOLS);

    // A TastyTrade login may hold several accounts: without the account
    // number the account is refused on that field, and nothing is made.
    let (status, problem) = admin
        .post("/api/v1/accounts", json!({"name": "tasty", "venue_credential_id": credential, "symbols": symbols}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["field"], "venue_account", "{problem}");
    // An account number the login does not have: refused, nothing made.
    let (status, problem) = admin
        .post(
            "/api/v1/accounts",
            json!({"name": "tasty", "venue_credential_id": credential, "symbols": symbols, "venue_account": "5WT99999"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["field"], "venue_account", "{problem}");
    // A symbol the venue does not list: refused on that field, naming it.
    let (status, problem) = admin
        .post(
            "/api/v1/accounts",
            json!({"name": "tasty", "venue_credential_id": credential, "symbols": ["AAPL", "NOPE"], "venue_account": ACCOUNT}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("NOPE"), "{problem}");
    assert_eq!(problem["field"], "symbols", "{problem}");
    let (_, accounts) = admin.get("/api/v1/accounts").await;
    assert!(accounts.as_array().unwrap().is_empty(), "{accounts}");
    assert!(fake.state().orders.is_empty());

    let (status, account) = admin
        .post(
            "/api/v1/accounts",
            json!({"name": "tasty", "venue_credential_id": credential, "symbols": symbols, "venue_account": ACCOUNT}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{account}");
    assert_eq!(account["venue"], "tastytrade");
    assert_eq!(account["environment"], "sandbox");
    assert_eq!(account["base_currency"], "USD");
    assert_eq!(account["live"]["confirmed"], false);
    assert_eq!(account["live"]["trading"], false);
    assert_eq!(account["live"]["venue_account"], ACCOUNT);
    assert_eq!(account["live"]["symbols"], symbols, "{account}");
    let id = account["id"].as_i64().unwrap();
    let (_, accounts) = admin.get("/api/v1/accounts").await;
    let listed = accounts.as_array().unwrap();
    assert_eq!(listed.len(), 1, "{accounts}");
    assert_eq!(listed[0]["venue"], "tastytrade", "{accounts}");
    assert_eq!(listed[0]["environment"], "sandbox", "{accounts}");

    // The credential is in use: it cannot be unlinked under the account.
    let (status, problem) = admin.delete(&format!("/api/v1/venue-credentials/{credential}")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(problem["code"], "credential_in_use");
    (server, admin, id)
}

async fn trades_by_hand_and_reconciles(backend: &str) {
    let db = TestDatabase::create(backend, "live_tastytrade").await;
    let fake = FakeTasty::start(900).await;
    let streams = Streams::start(&fake).await;
    let (server, admin, account) = link_and_open(&db, &fake, &streams).await;
    let place = orders_path();

    // Balances and positions as the venue has them: the 10 SPY and the 2
    // short puts held before linking are the venue's, not positions
    // tradecore opened.
    let venue = reconciled(&admin, account).await;
    assert_eq!(venue["differences"], json!([]), "{venue}");
    assert_eq!(venue["last_error"], Value::Null, "{venue}");
    let balances = venue["balances"].as_array().unwrap();
    assert_eq!(balances.len(), 1, "{venue}");
    assert_eq!(balances[0]["currency"], "USD", "{venue}");
    assert_eq!(money(balances[0]["total"].as_str().unwrap()), start_cash(), "{venue}");
    assert_eq!(money(balances[0]["available"].as_str().unwrap()), money("50000.25"), "{venue}");
    assert_eq!(venue_position(&venue, "SPY"), q("10"));
    assert_eq!(venue_position(&venue, PUT), q("-2"));
    assert_eq!(venue_position(&venue, "AAPL"), Quantity::ZERO);
    assert_eq!(venue_position(&venue, CALL), Quantity::ZERO);
    for symbol in SYMBOLS {
        assert_eq!(position(&admin, account, symbol).await, Quantity::ZERO, "{symbol}");
    }
    assert_eq!(live::cash(&admin, account, "USD").await, start_cash());

    // Nothing is sent before the owner confirms.
    let (status, problem) = submit(&admin, account, limit("early-1", "AAPL", "buy", "10", "170.00")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(problem["code"], "trading_not_allowed");
    assert!(fake.state().orders.is_empty());
    assert_eq!(fake.count(&Method::POST, &place), 0);
    let (status, problem) =
        admin.post(&format!("/api/v1/accounts/{account}/live-confirmation"), json!({"confirm": false})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let (status, confirmed) =
        admin.post(&format!("/api/v1/accounts/{account}/live-confirmation"), json!({"confirm": true})).await;
    assert_eq!(status, StatusCode::OK, "{confirmed}");
    assert_eq!(confirmed["live"]["confirmed"], true, "{confirmed}");
    assert_eq!(confirmed["live"]["trading"], true, "{confirmed}");

    // A limit buy reaches TastyTrade with our client order id as its
    // external identifier, opening a position; the venue routes it.
    let buy = submitted(&admin, account, limit("buy-1", "AAPL", "buy", "10", "170.00")).await;
    wait_status(&admin, account, buy, "accepted").await;
    let sent = at_venue(&fake, "buy-1");
    assert_eq!(sent.order_type, "Limit");
    assert_eq!(sent.price_effect.as_deref(), Some("Debit"));
    assert_eq!(sent.legs.len(), 1);
    assert_eq!((sent.legs[0].symbol.as_str(), sent.legs[0].action.as_str()), ("AAPL", "Buy to Open"));
    assert_eq!(sent.legs[0].quantity, q("10"));
    // It goes live, then fills at the venue: the fill comes with the next
    // reconciliation, once, with the fee of its Trade transaction, and the
    // cash (less that fee, as at the venue) follows without an adjustment.
    fake.make_live(sent.id);
    let summary = reconcile(&admin, account).await;
    assert_eq!(summary["reports"], 0, "{summary}");
    assert_eq!(order_status(&admin, account, buy).await, "accepted");
    fake.fill_now(sent.id, "170.00");
    let summary = reconcile(&admin, account).await;
    assert_eq!(summary["differences"], json!([]), "{summary}");
    assert_eq!(summary["reports"], 1, "{summary}");
    assert_eq!(summary["cash_adjusted"], json!([]), "{summary}");
    assert_eq!(order_status(&admin, account, buy).await, "filled");
    assert_eq!(position(&admin, account, "AAPL").await, q("10"));
    let filled = fills(&admin, account).await;
    assert_eq!(filled.len(), 1, "{filled:?}");
    assert_eq!(money(filled[0]["price"].as_str().unwrap()), money("170"), "{filled:?}");
    assert_eq!(q(filled[0]["quantity"].as_str().unwrap()), q("10"), "{filled:?}");
    assert_eq!(money(filled[0]["fee"].as_str().unwrap()), share_fee(10), "0.008: {filled:?}");
    assert_eq!(share_fee(10), money("0.008"));
    let summary = reconcile(&admin, account).await;
    assert_eq!(summary["reports"], 0, "the fill applied once: {summary}");
    assert_eq!(summary["differences"], json!([]), "{summary}");
    assert_eq!(fills(&admin, account).await.len(), 1);
    let cash = start_cash() - money("1700") - share_fee(10);
    assert_eq!(live::cash(&admin, account, "USD").await, cash);
    assert_eq!(cash, money("23300.117"));
    let venue = reconciled(&admin, account).await;
    assert_eq!(venue_position(&venue, "AAPL"), q("10"));

    // An equity option, by its OCC symbol: one contract of 100 shares.
    let call = submitted(&admin, account, limit("call-1", CALL, "buy", "1", "26.50")).await;
    wait_status(&admin, account, call, "accepted").await;
    let sent = at_venue(&fake, "call-1");
    assert_eq!(sent.legs[0].instrument_type, "Equity Option");
    assert_eq!((sent.legs[0].symbol.as_str(), sent.legs[0].action.as_str()), (CALL, "Buy to Open"));
    fake.fill_now(sent.id, "26.50");
    let summary = reconcile(&admin, account).await;
    assert_eq!(summary["differences"], json!([]), "{summary}");
    assert_eq!(summary["reports"], 1, "{summary}");
    assert_eq!(summary["cash_adjusted"], json!([]), "the multiplier counted as the venue counts it: {summary}");
    assert_eq!(order_status(&admin, account, call).await, "filled");
    assert_eq!(position(&admin, account, CALL).await, q("1"));
    let filled = fills(&admin, account).await;
    let call_fill = filled.iter().find(|f| money(f["price"].as_str().unwrap()) == money("26.5")).unwrap();
    assert_eq!(money(call_fill["fee"].as_str().unwrap()), option_open_fee(1), "1.10: {filled:?}");
    assert_eq!(option_open_fee(1), money("1.1"));
    let cash = cash - money("2650") - option_open_fee(1);
    assert_eq!(live::cash(&admin, account, "USD").await, cash);
    assert_eq!(cash, money("20649.017"));

    // A resting order cancelled at the venue is reflected.
    let resting = submitted(&admin, account, limit("rest-1", "AAPL", "buy", "5", "160.00")).await;
    wait_status(&admin, account, resting, "accepted").await;
    fake.cancel_at_venue(at_venue(&fake, "rest-1").id);
    let summary = reconcile(&admin, account).await;
    assert_eq!(summary["reports"], 1, "{summary}");
    assert_eq!(summary["differences"], json!([]), "{summary}");
    assert_eq!(order_status(&admin, account, resting).await, "cancelled");

    // A cancel from here reaches the venue.
    let resting = submitted(&admin, account, limit("rest-2", "AAPL", "buy", "5", "161.00")).await;
    wait_status(&admin, account, resting, "accepted").await;
    let venue_id = at_venue(&fake, "rest-2").id;
    let (status, body) = admin.delete(&format!("/api/v1/accounts/{account}/orders/{resting}")).await;
    assert!(status.is_success(), "{body}");
    wait_status(&admin, account, resting, "cancelled").await;
    assert_eq!(fake.order(venue_id).status, "Cancelled");
    assert_eq!(fake.count(&Method::DELETE, &format!("{place}/{venue_id}")), 1);

    // A sell closes the shares; it rests, and fills while the server is
    // down. On start the fill is applied once, and restarting again
    // changes nothing.
    let sell = submitted(&admin, account, limit("sell-1", "AAPL", "sell", "10", "180.00")).await;
    wait_status(&admin, account, sell, "accepted").await;
    let sent = at_venue(&fake, "sell-1");
    assert_eq!((sent.legs[0].action.as_str(), sent.price_effect.as_deref()), ("Sell to Close", Some("Credit")));
    fake.make_live(sent.id);
    server.stop().await;
    fake.fill_now(sent.id, "180.00");
    let cash = cash + money("1800") - share_fee(10);
    assert_eq!(cash, money("22449.009"));
    for _ in 0..2 {
        let server = start(&db, &fake, &streams).await;
        let admin = User::sign_in(&server.base, "admin", ADMIN_PASSWORD).await;
        let venue = reconciled(&admin, account).await;
        assert_eq!(venue["differences"], json!([]), "{venue}");
        assert_eq!(venue["last_error"], Value::Null, "{venue}");
        assert_eq!(order_status(&admin, account, sell).await, "filled");
        assert_eq!(position(&admin, account, "AAPL").await, Quantity::ZERO);
        assert_eq!(venue_position(&venue, "AAPL"), Quantity::ZERO);
        let filled = fills(&admin, account).await;
        assert_eq!(filled.len(), 3, "the fill counted exactly once");
        let sell_fill = filled.iter().find(|f| money(f["price"].as_str().unwrap()) == money("180")).unwrap();
        assert_eq!(money(sell_fill["fee"].as_str().unwrap()), share_fee(10), "{filled:?}");
        assert_eq!(live::cash(&admin, account, "USD").await, cash);
        let summary = reconcile(&admin, account).await;
        assert_eq!(summary["reports"], 0, "{summary}");
        assert_eq!(summary["differences"], json!([]), "{summary}");
        server.stop().await;
    }

    let server = start(&db, &fake, &streams).await;
    let admin = User::sign_in(&server.base, "admin", ADMIN_PASSWORD).await;
    reconciled(&admin, account).await;

    // TastyTrade answers 500 after taking the order: the outcome is
    // unknown, the order is looked up by its external identifier (never
    // sent again) and found working.
    fake.fault(Method::POST, &place, FaultAction::Error500After, 1);
    let unknown = submitted(&admin, account, limit("unknown-1", "AAPL", "buy", "3", "170.00")).await;
    wait_status(&admin, account, unknown, "accepted").await;
    let sent = at_venue(&fake, "unknown-1");
    fake.fill_now(sent.id, "170.00");
    let summary = reconcile(&admin, account).await;
    assert_eq!(summary["reports"], 1, "{summary}");
    assert_eq!(summary["differences"], json!([]), "{summary}");
    assert_eq!(order_status(&admin, account, unknown).await, "filled");
    assert_eq!(position(&admin, account, "AAPL").await, q("3"));
    assert_eq!(fake.orders_with_external_id("unknown-1"), 1);

    // It stalls and fails without taking the order: looked up (not in
    // today's orders, so in the order history too), absent, rejected;
    // nothing reached the venue.
    let searches = fake.count(&Method::GET, &place);
    fake.fault(Method::POST, &place, FaultAction::StallBefore(Duration::from_millis(100)), 1);
    let unknown = submitted(&admin, account, limit("unknown-2", "AAPL", "buy", "3", "170.00")).await;
    wait_status(&admin, account, unknown, "rejected").await;
    assert!(fake.count(&Method::GET, &place) > searches, "the order history was searched");
    assert_eq!(fake.orders_with_external_id("unknown-2"), 0);
    assert_eq!(fake.count(&Method::POST, &place), 7, "seven orders, each sent once, none resent");
    assert_eq!(fake.state().orders.len(), 6, "the stalled one never taken");
    let summary = reconcile(&admin, account).await;
    assert_eq!(summary["differences"], json!([]), "{summary}");
    assert_eq!(summary["reports"], 0, "{summary}");

    // Live updates: the order fills at the venue and the account streamer
    // says so; the account follows without being asked to reconcile.
    let streamed = submitted(&admin, account, limit("stream-1", "AAPL", "buy", "2", "170.00")).await;
    wait_status(&admin, account, streamed, "accepted").await;
    let sent = at_venue(&fake, "stream-1");
    fake.make_live(sent.id);
    fake.fill_now(sent.id, "170.00");
    let notice = json!({"id": sent.id, "account-number": ACCOUNT, "time-in-force": "Day", "order-type": "Limit",
        "size": 2, "underlying-symbol": "AAPL", "price": "170.0", "price-effect": "Debit", "status": "Filled",
        "cancellable": false, "editable": false, "edited": false, "external-identifier": "stream-1",
        "legs": [{"instrument-type": "Equity", "symbol": "AAPL", "quantity": 2, "remaining-quantity": 0,
                  "action": "Buy to Open", "fills": []}]});
    let mut pushed = 0;
    for _ in 0..100 {
        pushed = streams.account.push("Order", &notice.to_string());
        if pushed > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(pushed, 1, "the server's account streamer connection is subscribed to the account");
    wait_status(&admin, account, streamed, "filled").await;
    assert_eq!(position(&admin, account, "AAPL").await, q("5"));

    // DXLink quotes mark the account's AAPL position.
    let mut marked = false;
    for _ in 0..100 {
        streams.dxlink.publish("Quote", "AAPL", &[("bidPrice", "171"), ("askPrice", "171.1")]);
        let (_, view) = admin.get(&format!("/api/v1/accounts/{account}")).await;
        let aapl = view["positions"].as_array().and_then(|p| p.iter().find(|p| p["symbol"] == "AAPL").cloned());
        if aapl.is_some_and(|p| p["mark"] == "171.05") {
            marked = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(marked, "no DXLink quote marked the position");

    // SPY shares arrive at the venue from elsewhere: nothing explains them,
    // so the account becomes close-only and says why.
    {
        let mut state = fake.state();
        let spy = state.positions.iter_mut().find(|p| p.symbol == "SPY").unwrap();
        spy.quantity = spy.quantity + q("5");
    }
    let summary = reconcile(&admin, account).await;
    let differences = summary["differences"].as_array().unwrap();
    assert_eq!(differences.len(), 1, "{summary}");
    assert!(differences[0].as_str().unwrap().contains("position in SPY"), "{summary}");
    let (_, view) = admin.get(&format!("/api/v1/accounts/{account}")).await;
    assert_eq!(view["trading_state"], "reducing", "{view}");
    let (status, problem) = submit(&admin, account, limit("more-1", "AAPL", "buy", "1", "170.00")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let venue = reconciled(&admin, account).await;
    assert_eq!(venue["differences"].as_array().unwrap().len(), 1, "{venue}");
    assert_eq!(venue_position(&venue, "SPY"), q("15"));
    assert_eq!(fake.count(&Method::POST, &place), 8, "nothing more sent");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tastytrade_account_trades_and_reconciles_on_sqlite() {
    trades_by_hand_and_reconciles("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tastytrade_account_trades_and_reconciles_on_postgres() {
    trades_by_hand_and_reconciles("postgres").await;
}
