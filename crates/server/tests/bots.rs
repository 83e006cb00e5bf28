//! Bots over real HTTP against a server started as `serve` starts it, on
//! SQLite and PostgreSQL: trading on closed candles through the account's
//! risk checks and journal, P&L from the bot's own fills, resuming after a
//! restart exactly where the strategy was, scoping and bad input.
//!
//! Candles are daily ones the test stores and announces itself, as the feed
//! does when a bucket closes, so the test decides when a bar closes (the
//! real feed closes a daily candle only at midnight UTC).

mod common;

use std::time::Duration;

use common::{ADMIN_PASSWORD, Server, User, open_account, start, trader};
use model::{Money, Price, Quantity};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sim::candles::{Candle, Interval};
use store::testing::TestDatabase;

both_backends!(a_bot_trades_on_closed_candles_and_reports_its_pnl, a_bot_resumes_after_a_restart_where_it_left_off);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bots_are_private_and_bad_input_changes_nothing() {
    let db = TestDatabase::create("sqlite", "bots").await;
    let server = start(&db).await;
    let admin = User::sign_in(&server.base, "admin", ADMIN_PASSWORD).await;
    let account = open_account(&admin).await;
    let bot = create_dca(&admin, account, false).await;
    let id = bot["id"].as_i64().unwrap();
    assert_eq!(bot["status"], "stopped");

    let bob = trader(&server, &admin, "bob").await;
    assert_eq!(bob.get("/api/v1/bots").await.1, json!([]));
    for path in [format!("/api/v1/bots/{id}"), format!("/api/v1/bots/{id}/orders")] {
        assert_eq!(bob.get(&path).await.0, StatusCode::NOT_FOUND, "{path}");
    }
    for action in ["start", "stop"] {
        assert_eq!(bob.post(&format!("/api/v1/bots/{id}/{action}"), json!({})).await.0, StatusCode::NOT_FOUND);
    }
    assert_eq!(bob.delete(&format!("/api/v1/bots/{id}")).await.0, StatusCode::NOT_FOUND);
    let (status, body) = bob.post("/api/v1/bots", dca_request(account, false)).await;
    assert_eq!((status, body["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("account_id")), "{body}");

    let valid = dca_request(account, false);
    let with = |field: &str, value: Value| {
        let mut body = valid.clone();
        body[field] = value;
        body
    };
    for (body, field) in [
        (with("strategy", json!("martingale")), "strategy"),
        (with("params", json!({"every": 0})), "params"),
        (with("params", json!({"colour": "red"})), "params"),
        (with("interval", json!("2m")), "interval"),
        (with("sizing", json!("lots")), "sizing"),
        (with("warmup_bars", json!(1_000_000)), "warmup_bars"),
        (with("symbol", json!("DOGE-USDT")), "symbol"),
        (with("name", json!("  ")), "name"),
    ] {
        let (status, problem) = admin.post("/api/v1/bots", body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {problem}");
        assert_eq!(problem["field"], field, "{problem}");
    }
    for body in [with("leverage", json!(3)), with("warmup_bars", json!("many")), json!({"name": "x"})] {
        let (status, problem) = admin.post("/api/v1/bots", body.clone()).await;
        assert!(status.is_client_error(), "{body}: {status} {problem}");
    }
    assert_eq!(admin.get("/api/v1/bots").await.1.as_array().unwrap().len(), 1, "nothing was created");

    // Bots own the `bot` client order id prefix.
    let (status, problem) = admin
        .post(
            &format!("/api/v1/accounts/{account}/orders"),
            json!({"client_order_id": "BOT1-1", "symbol": "AAPL", "side": "buy", "type": "market", "quantity": "1"}),
        )
        .await;
    assert_eq!((status, problem["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("client_order_id")));

    let (status, started) = admin.post(&format!("/api/v1/bots/{id}/start"), json!({})).await;
    assert_eq!((status, started["status"].as_str()), (StatusCode::OK, Some("running")), "{started}");
    assert_eq!(admin.post(&format!("/api/v1/bots/{id}/start"), json!({})).await.0, StatusCode::CONFLICT);
    assert_eq!(admin.delete(&format!("/api/v1/bots/{id}")).await.0, StatusCode::CONFLICT, "running bots stay");
    let (status, stopped) = admin.post(&format!("/api/v1/bots/{id}/stop"), json!({})).await;
    assert_eq!((status, stopped["status"].as_str()), (StatusCode::OK, Some("stopped")), "{stopped}");
    assert_eq!(admin.delete(&format!("/api/v1/bots/{id}")).await.0, StatusCode::NO_CONTENT);
    assert_eq!(admin.get(&format!("/api/v1/bots/{id}")).await.0, StatusCode::NOT_FOUND);

    let (_, audit) = admin.get("/api/v1/audit").await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .filter(|a| a.starts_with("bot."))
        .collect();
    assert_eq!(actions, ["bot.delete", "bot.stop", "bot.start", "bot.create"]);
    server.stop().await;
    db.remove().await;
}

/// A dca bot on AAPL daily candles buying 1,000 USD every second candle.
fn dca_request(account: i64, start: bool) -> Value {
    json!({
        "name": "dca", "account_id": account, "symbol": "AAPL", "strategy": "dca",
        "params": {"every": 2, "amount": "1000"}, "interval": "1d", "warmup_bars": 5, "start": start
    })
}

async fn create_dca(user: &User, account: i64, start: bool) -> Value {
    let (status, bot) = user.post("/api/v1/bots", dca_request(account, start)).await;
    assert_eq!(status, StatusCode::CREATED, "{bot}");
    bot
}

/// Stores and announces the daily AAPL candle that started `days_ago` days before today.
async fn close_candle(server: &Server, days_ago: i64, close: &str) {
    let runtime = &server.started.state.runtime;
    let instrument = runtime.instrument_by_symbol("AAPL").unwrap().id;
    let today = Interval::D1.start_of(runtime.now());
    let price = Price::parse(close).unwrap();
    let candle = Candle {
        instrument,
        interval: Interval::D1,
        start: today.plus_nanos(-days_ago * Interval::D1.as_nanos()),
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

/// Waits until the bot has seen `bars` live candles and its orders are no longer open.
async fn settled(user: &User, bot: i64, bars: u64) -> Value {
    let mut last = Value::Null;
    for _ in 0..200 {
        let (_, view) = user.get(&format!("/api/v1/bots/{bot}")).await;
        let (_, open) = user.get(&format!("/api/v1/bots/{bot}/orders?status=open")).await;
        if view["activity"]["bars"].as_u64() == Some(bars) && open["items"].as_array().is_some_and(Vec::is_empty) {
            return view;
        }
        last = view;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("bot {bot} did not settle after {bars} bars: {last}");
}

async fn warmed_up(user: &User, bot: i64) -> Value {
    for _ in 0..200 {
        let (_, view) = user.get(&format!("/api/v1/bots/{bot}")).await;
        if view["activity"]["warmed_up"] == true {
            return view;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("bot {bot} did not warm up");
}

fn money(v: &Value) -> Money {
    Money::parse(v.as_str().unwrap_or_else(|| panic!("not a decimal string: {v}"))).unwrap()
}

async fn bot_orders(user: &User, bot: i64) -> Vec<Value> {
    let (status, page) = user.get(&format!("/api/v1/bots/{bot}/orders")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["items"].as_array().unwrap().clone()
}

async fn a_bot_trades_on_closed_candles_and_reports_its_pnl(backend: &str) {
    let db = TestDatabase::create(backend, "bots").await;
    let server = start(&db).await;
    let admin = User::sign_in(&server.base, "admin", ADMIN_PASSWORD).await;
    let account = open_account(&admin).await;
    let bot = create_dca(&admin, account, true).await;
    let id = bot["id"].as_i64().unwrap();
    assert_eq!(bot["status"], "running", "{bot}");
    warmed_up(&admin, id).await;

    // dca buys on its first bar and every second one after: bars 0 and 2.
    for (days_ago, close) in [(4, "180"), (3, "181"), (2, "182")] {
        close_candle(&server, days_ago, close).await;
    }
    let view = settled(&admin, id, 3).await;
    let orders = bot_orders(&admin, id).await;
    assert_eq!(orders.len(), 2, "{view} {orders:?}");
    let today = Interval::D1.start_of(server.started.state.runtime.now()).as_nanos() / 1_000_000_000;
    let day = Interval::D1.as_nanos() / 1_000_000_000;
    let expected_ids = [format!("bot{id}-{}-0", today - 2 * day), format!("bot{id}-{}-0", today - 4 * day)];
    let ids: Vec<&str> = orders.iter().map(|o| o["client_order_id"].as_str().unwrap()).collect();
    assert_eq!(ids, expected_ids, "newest first, one per buying bar");
    assert!(orders.iter().all(|o| o["status"] == "filled" && o["side"] == "buy"), "{orders:?}");

    // The P&L folds the bot's fills exactly as the account does: here they
    // are the account's only fills, so the two agree to the last digit.
    let pnl = &view["pnl"];
    assert_eq!(pnl["fills"], 2, "{pnl}");
    let (_, positions) = admin.get(&format!("/api/v1/accounts/{account}/positions")).await;
    let instrument = server.started.state.runtime.instrument_by_symbol("AAPL").unwrap().id;
    let aapl = positions.as_array().unwrap().iter().find(|p| p["instrument"] == json!(instrument)).unwrap();
    assert_eq!(pnl["position"], aapl["quantity"], "{pnl} vs {aapl}");
    assert_eq!(pnl["realized"], aapl["realized_pnl"], "{pnl} vs {aapl}");
    assert_eq!(pnl["fees"], aapl["fees"], "{pnl} vs {aapl}");
    let (_, fills) = admin.get(&format!("/api/v1/accounts/{account}/fills")).await;
    let fees = fills["items"].as_array().unwrap().iter().map(|f| money(&f["fee"])).fold(Money::ZERO, |a, b| a + b);
    assert_eq!(money(&pnl["fees"]), fees);
    assert_eq!(money(&pnl["realized"]), Money::ZERO, "nothing sold");
    assert_eq!(money(&pnl["net"]), money(&pnl["realized"]) + money(&pnl["unrealized"]) - money(&pnl["fees"]));
    // Its fills, oldest first: the account's, with their journal seq.
    let (status, bot_fills) = admin.get(&format!("/api/v1/bots/{id}/fills")).await;
    assert_eq!(status, StatusCode::OK, "{bot_fills}");
    let bot_fills = bot_fills.as_array().unwrap();
    assert_eq!(bot_fills.len(), 2);
    assert!(bot_fills[0]["seq"].as_u64() < bot_fills[1]["seq"].as_u64(), "{bot_fills:?}");
    let account_fills: Vec<&Value> = fills["items"].as_array().unwrap().iter().rev().collect();
    assert_eq!(bot_fills.iter().collect::<Vec<_>>(), account_fills, "the same fills as the account's");
    let spent: Money = orders.iter().map(|o| money(&o["filled_notional"])).fold(Money::ZERO, |a, b| a + b);
    assert!(spent <= Money::from_int(2_000) && spent > Money::from_int(1_500), "two buys of at most 1,000: {spent}");

    // Stopping records it and leaves the position alone.
    let (status, stopped) = admin.post(&format!("/api/v1/bots/{id}/stop"), json!({})).await;
    assert_eq!((status, stopped["status"].as_str()), (StatusCode::OK, Some("stopped")), "{stopped}");
    close_candle(&server, 1, "183").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(bot_orders(&admin, id).await.len(), 2, "a stopped bot does not trade");
    server.stop().await;
    db.remove().await;
}

async fn a_bot_resumes_after_a_restart_where_it_left_off(backend: &str) {
    let db = TestDatabase::create(backend, "bots").await;
    let server = start(&db).await;
    let admin = User::sign_in(&server.base, "admin", ADMIN_PASSWORD).await;
    let account = open_account(&admin).await;
    let id = create_dca(&admin, account, true).await["id"].as_i64().unwrap();
    warmed_up(&admin, id).await;
    for (days_ago, close) in [(4, "180"), (3, "181"), (2, "182")] {
        close_candle(&server, days_ago, close).await;
    }
    settled(&admin, id, 3).await;
    assert_eq!(bot_orders(&admin, id).await.len(), 2);
    server.stop().await;

    // The bot was running when the server stopped: it resumes, replaying
    // the three stored candles, so dca's count goes on from 3, not from 0.
    let server = start(&db).await;
    let admin = User::sign_in(&server.base, "admin", ADMIN_PASSWORD).await;
    let view = warmed_up(&admin, id).await;
    assert_eq!(view["status"], "running", "{view}");
    assert_eq!(view["activity"]["replayed_bars"], 3, "{view}");
    close_candle(&server, 1, "183").await;
    settled(&admin, id, 1).await;
    assert_eq!(bot_orders(&admin, id).await.len(), 2, "bar 3 is not a buying bar");
    close_candle(&server, 0, "184").await;
    settled(&admin, id, 2).await;
    let orders = bot_orders(&admin, id).await;
    assert_eq!(orders.len(), 3, "bar 4 buys: {orders:?}");
    let mut ids: Vec<&str> = orders.iter().map(|o| o["client_order_id"].as_str().unwrap()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 3, "no order was placed twice");
    server.stop().await;
    db.remove().await;
}

/// A bot acts on the newest candle when it starts; acting on it again after
/// a restart (as after a crash between the candle and the order) places
/// nothing twice, because the client order ids are the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_does_not_repeat_the_newest_candles_orders() {
    let db = TestDatabase::create("sqlite", "bots").await;
    let server = start(&db).await;
    let admin = User::sign_in(&server.base, "admin", ADMIN_PASSWORD).await;
    let account = open_account(&admin).await;
    // Yesterday's candle is the latest closed daily bucket.
    close_candle(&server, 1, "180").await;
    let id = create_dca(&admin, account, true).await["id"].as_i64().unwrap();
    let view = settled(&admin, id, 1).await;
    assert_eq!(view["activity"]["replayed_bars"], 0, "{view}");
    assert_eq!(bot_orders(&admin, id).await.len(), 1, "the newest candle is acted on at start");
    server.stop().await;

    let server = start(&db).await;
    let admin = User::sign_in(&server.base, "admin", ADMIN_PASSWORD).await;
    settled(&admin, id, 1).await;
    assert_eq!(bot_orders(&admin, id).await.len(), 1, "the same candle's order is a duplicate, not a new order");
    let (_, fills) = admin.get(&format!("/api/v1/accounts/{account}/fills")).await;
    assert_eq!(fills["items"].as_array().unwrap().len(), 1);
    server.stop().await;
    db.remove().await;
}
