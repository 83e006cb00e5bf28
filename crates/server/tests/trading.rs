//! Paper trading over real HTTP against a server started as `serve` starts
//! it, on SQLite and PostgreSQL: sign in, open an account, trade to a fill,
//! idempotency, scoping between users, bad input, and a restart.

use std::time::Duration;

mod common;

use common::{ADMIN_PASSWORD, Server, User, open_account, start};
use reqwest::StatusCode;
use serde_json::{Value, json};
use store::testing::TestDatabase;

async fn database(backend: &str) -> TestDatabase {
    TestDatabase::create(backend, "trading").await
}

both_backends!(
    trade_to_a_fill_and_survive_a_restart,
    other_users_accounts_are_invisible,
    bad_orders_are_refused_and_change_nothing,
    kill_switches_halt_and_close_only,
    account_events_stream_over_websocket_and_resume,
    scoped_channels_carry_only_the_callers_accounts,
    orders_and_fills_resume_without_gaps_or_repeats,
    backtests_run_in_the_background_and_report,
    reads_from_memory_match_the_read_models,
    a_revoked_token_ends_its_websocket,
    risk_limits_are_read_checked_and_enforced,
    the_trading_channel_follows_kill_switches,
    summary_has_pnl_and_free_cash_per_currency,
    strategies_and_fees_are_listed,
    admins_see_every_account_and_the_health,
);

/// The account's live equity, as the summary reports it.
async fn summary_equity(user: &User, account: i64) -> Value {
    user.get(&format!("/api/v1/accounts/{account}")).await.1["equity"].clone()
}

async fn put(user: &User, path: String, state: &str) -> (StatusCode, Value) {
    user.call(reqwest::Method::PUT, &path, Some(json!({ "state": state }))).await
}

async fn trade_to_a_fill_and_survive_a_restart(backend: &str) {
    let db = database(backend).await;
    let server = start(&db).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let admin = User::sign_in(&server.base, "admin", ADMIN_PASSWORD).await;
    let account = open_account(&admin).await;
    let orders = format!("/api/v1/accounts/{account}/orders");

    // A market buy fills against the paper market's ask.
    let order =
        json!({"client_order_id": "buy-1", "symbol": "AAPL", "side": "buy", "type": "market", "quantity": "10"});
    let (status, placed) = admin.post(&orders, order.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{placed}");
    let order_id = placed["id"].as_u64().unwrap();
    // Submitting the same client order id again returns the same order.
    let (status, again) = admin.post(&orders, order).await;
    assert_eq!((status, again["id"].as_u64()), (StatusCode::OK, Some(order_id)));

    let mut filled = Value::Null;
    for _ in 0..50 {
        let (_, o) = admin.get(&format!("{orders}/{order_id}")).await;
        if o["status"] == "filled" {
            filled = o;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(filled["status"], "filled", "the market order fills on the next quote");
    let (_, summary) = admin.get(&format!("/api/v1/accounts/{account}")).await;
    assert_eq!(summary["positions"][0]["symbol"], "AAPL");
    let currencies: Vec<&str> =
        summary["equity_by_currency"].as_array().unwrap().iter().map(|pair| pair[0].as_str().unwrap()).collect();
    assert_eq!(currencies, ["USD", "USDT"], "equity in each quote currency");
    assert_eq!(summary["positions"][0]["quantity"], "10");
    let (_, fills) = admin.get(&format!("/api/v1/accounts/{account}/fills")).await;
    assert_eq!(fills["items"].as_array().unwrap().len(), 1);
    // The equity history gets a point a minute; take one now instead of waiting.
    let runtime = &server.started.state.runtime;
    runtime.snapshot_equity(runtime.now()).await;
    let (status, history) = admin.get(&format!("/api/v1/accounts/{account}/equity")).await;
    assert_eq!(status, StatusCode::OK, "{history}");
    assert_eq!(history.as_array().unwrap().len(), 1);
    // Marks move between the snapshot and now: compare loosely, exactly parsed.
    let recorded = model::Money::parse(history[0]["equity"].as_str().unwrap()).unwrap();
    let live = model::Money::parse(summary_equity(&admin, account).await.as_str().unwrap()).unwrap();
    assert!((recorded - live).abs() < model::Money::from_int(50), "{recorded} vs {live}");
    let (status, _) = admin.get(&format!("/api/v1/accounts/{account}/equity?from=noon")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // A resting limit far from the market, then cancelled.
    let (status, resting) = admin
        .post(&orders, json!({"client_order_id": "rest-1", "symbol": "AAPL", "side": "buy", "type": "limit", "price": "1.00", "quantity": "1"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{resting}");
    let resting_id = resting["id"].as_u64().unwrap();
    let (_, open) = admin.get(&format!("{orders}?status=open")).await;
    assert_eq!(open["items"].as_array().unwrap().len(), 1);
    let (status, cancelled) = admin.call(reqwest::Method::DELETE, &format!("{orders}/{resting_id}"), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{cancelled}");

    // Restart on the same database: everything acknowledged is still there.
    server.stop().await;
    let server = start(&db).await;
    let admin = User::sign_in(&server.base, "admin", ADMIN_PASSWORD).await;
    let (_, after) = admin.get(&format!("{orders}/{order_id}")).await;
    assert_eq!(after["status"], "filled");
    let (_, after) = admin.get(&format!("{orders}/{resting_id}")).await;
    assert_eq!(after["status"], "cancelled");
    let (_, summary) = admin.get(&format!("/api/v1/accounts/{account}")).await;
    assert_eq!(summary["positions"][0]["quantity"], "10");
    server.stop().await;
    db.remove().await;
}

async fn other_users_accounts_are_invisible(backend: &str) {
    let db = database(backend).await;
    let server = start(&db).await;
    let admin = User::sign_in(&server.base, "admin", ADMIN_PASSWORD).await;
    let account = open_account(&admin).await;
    let (status, body) = admin
        .post("/api/v1/users", json!({"username": "bob", "password": "bob's long password", "role": "trader"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let bob = User::sign_in(&server.base, "bob", "bob's long password").await;
    let (_, mine) = bob.get("/api/v1/accounts").await;
    assert_eq!(mine.as_array().unwrap().len(), 0);
    for path in [
        format!("/api/v1/accounts/{account}"),
        format!("/api/v1/accounts/{account}/orders"),
        format!("/api/v1/accounts/{account}/fills"),
        format!("/api/v1/accounts/{account}/positions"),
        format!("/api/v1/accounts/{account}/equity"),
    ] {
        let (status, body) = bob.get(&path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
    }
    let (status, _) = bob
        .post(
            &format!("/api/v1/accounts/{account}/orders"),
            json!({"client_order_id": "x", "symbol": "SPY", "side": "buy", "type": "market", "quantity": "1"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Without credentials nothing is readable.
    let anonymous = reqwest::get(format!("{}/api/v1/accounts", server.base)).await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    server.stop().await;
    db.remove().await;
}

async fn bad_orders_are_refused_and_change_nothing(backend: &str) {
    let db = database(backend).await;
    let server = start(&db).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let admin = User::sign_in(&server.base, "admin", ADMIN_PASSWORD).await;
    let account = open_account(&admin).await;
    let orders = format!("/api/v1/accounts/{account}/orders");
    let base = json!({"client_order_id": "ok-1", "symbol": "SPY", "side": "buy", "type": "limit", "price": "10", "quantity": "1"});
    let with = |key: &str, value: Value| {
        let mut b = base.clone();
        b[key] = value;
        b
    };
    let mut without_price = base.clone();
    without_price.as_object_mut().unwrap().remove("price");
    let mut extra = base.clone();
    extra["colour"] = json!("red");
    let cases: Vec<(&str, Value, u16, &str, Option<&str>)> = vec![
        ("unknown field", extra, 422, "validation_failed", Some("colour")),
        ("wrong type", with("quantity", json!(1.5)), 422, "validation_failed", None),
        ("not a decimal", with("quantity", json!("lots")), 422, "validation_failed", None),
        ("zero quantity", with("quantity", json!("0")), 422, "validation_failed", Some("quantity")),
        ("unknown symbol", with("symbol", json!("DOGE")), 422, "validation_failed", Some("symbol")),
        ("unknown type", with("type", json!("iceberg")), 422, "validation_failed", Some("type")),
        ("limit without price", without_price, 422, "validation_failed", Some("price")),
        (
            "bad client id",
            with("client_order_id", json!("has spaces")),
            422,
            "validation_failed",
            Some("client_order_id"),
        ),
        ("off lot", with("quantity", json!("1.5")), 422, "lot_size", None),
        ("too expensive", with("quantity", json!("100000")), 422, "insufficient_cash", None),
        ("short in a cash account", with("side", json!("sell")), 422, "short_not_allowed", None),
    ];
    for (n, (name, mut body, status, code, field)) in cases.into_iter().enumerate() {
        // A refused order keeps its client order id, so each case needs its own.
        if body["client_order_id"] == "ok-1" {
            body["client_order_id"] = json!(format!("case-{n}"));
        }
        let (got, problem) = admin.post(&orders, body).await;
        assert_eq!(got.as_u16(), status, "{name}: {problem}");
        assert_eq!(problem["code"], code, "{name}: {problem}");
        if let Some(field) = field {
            assert_eq!(problem["field"], field, "{name}: {problem}");
        }
    }
    // Malformed JSON and a missing content type are 4xx too.
    let raw = admin
        .http
        .post(format!("{}{orders}", server.base))
        .bearer_auth(&admin.token)
        .body("{not json")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), StatusCode::BAD_REQUEST);
    let (status, _) = admin.get(&format!("{orders}?limit=0")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = admin.get(&format!("{orders}?status=sideways")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = admin.get(&format!("{orders}/999999")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Only the risk-refused orders were journaled (as rejected); nothing else was written.
    let (_, all) = admin.get(&orders).await;
    let statuses: Vec<&str> = all["items"].as_array().unwrap().iter().map(|o| o["status"].as_str().unwrap()).collect();
    assert!(statuses.iter().all(|s| *s == "rejected"), "{statuses:?}");
    let (_, summary) = admin.get(&format!("/api/v1/accounts/{account}")).await;
    assert_eq!(summary["open_orders"], 0);
    server.stop().await;
    db.remove().await;
}

async fn kill_switches_halt_and_close_only(backend: &str) {
    let db = database(backend).await;
    let server = start(&db).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let admin = User::sign_in(&server.base, "admin", ADMIN_PASSWORD).await;
    let (status, _) = admin
        .post("/api/v1/users", json!({"username": "carol", "password": "carol's long password", "role": "trader"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let carol = User::sign_in(&server.base, "carol", "carol's long password").await;
    let account = open_account(&carol).await;
    let orders = format!("/api/v1/accounts/{account}/orders");
    let order = |id: &str| json!({"client_order_id": id, "symbol": "SPY", "side": "buy", "type": "limit", "price": "10", "quantity": "1"});

    // Only admins flip the global switch.
    let (status, _) = put(&carol, "/api/v1/kill-switch".into(), "halted").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = put(&admin, "/api/v1/kill-switch".into(), "halted").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, global) = carol.get("/api/v1/kill-switch").await;
    assert_eq!(global["state"], "halted");
    let (status, refused) = carol.post(&orders, order("k1")).await;
    assert_eq!((status, refused["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("kill_switch_global")));
    // An account opened while halted is halted too.
    let second = open_account(&carol).await;
    let (_, refused) = carol.post(&format!("/api/v1/accounts/{second}/orders"), order("k2")).await;
    assert_eq!(refused["code"], "kill_switch_global");

    let (status, _) = put(&admin, "/api/v1/kill-switch".into(), "reducing").await;
    assert_eq!(status, StatusCode::OK);
    let (_, refused) = carol.post(&orders, order("k3")).await;
    assert_eq!(refused["code"], "close_only", "only reducing orders while close-only");

    let (status, _) = put(&admin, "/api/v1/kill-switch".into(), "active").await;
    assert_eq!(status, StatusCode::OK);
    let (status, placed) = carol.post(&orders, order("k4")).await;
    assert_eq!(status, StatusCode::CREATED, "{placed}");

    // The owner halts their own account; others cannot see it.
    let (status, _) = put(&carol, format!("/api/v1/accounts/{account}/kill-switch"), "halted").await;
    assert_eq!(status, StatusCode::OK);
    let (_, refused) = carol.post(&orders, order("k5")).await;
    assert_eq!(refused["code"], "kill_switch_account");
    let admin_account = open_account(&admin).await;
    let (status, _) = put(&carol, format!("/api/v1/accounts/{admin_account}/kill-switch"), "halted").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = put(&carol, format!("/api/v1/accounts/{account}/kill-switch"), "sideways").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    // Cancels still work while halted.
    let id = placed["id"].as_u64().unwrap();
    let (status, _) = carol.call(reqwest::Method::DELETE, &format!("{orders}/{id}"), None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    server.stop().await;
    db.remove().await;
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws_connect(base: &str, token: Option<&str>) -> Ws {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("{}/api/v1/ws", base.replace("http://", "ws://")).into_client_request().unwrap();
    if let Some(token) = token {
        request.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    tokio_tungstenite::connect_async(request).await.unwrap().0
}

async fn ws_next(ws: &mut Ws) -> Value {
    use futures_util::StreamExt;
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap().unwrap().unwrap();
        if let tokio_tungstenite::tungstenite::Message::Text(text) = message {
            let value: Value = serde_json::from_str(text.as_str()).unwrap();
            if value["type"] != "quote" {
                return value;
            }
        }
    }
}

async fn ws_send(ws: &mut Ws, value: Value) {
    use futures_util::SinkExt;
    ws.send(tokio_tungstenite::tungstenite::Message::text(value.to_string())).await.unwrap();
}

async fn account_events_stream_over_websocket_and_resume(backend: &str) {
    let db = database(backend).await;
    let server = start(&db).await;
    let admin = User::sign_in(&server.base, "admin", ADMIN_PASSWORD).await;
    let account = open_account(&admin).await;
    let orders = format!("/api/v1/accounts/{account}/orders");
    let channel = format!("account:{account}");
    let limit = |id: &str| json!({"client_order_id": id, "symbol": "SPY", "side": "buy", "type": "limit", "price": "10", "quantity": "1"});

    // Anonymous sockets get market data only.
    let mut anonymous = ws_connect(&server.base, None).await;
    ws_send(&mut anonymous, json!({"op": "subscribe", "channels": [channel]})).await;
    assert_eq!(ws_next(&mut anonymous).await["code"], "unauthorized");

    let mut ws = ws_connect(&server.base, Some(&admin.token)).await;
    ws_send(&mut ws, json!({"op": "subscribe", "channels": [channel]})).await;
    assert_eq!(ws_next(&mut ws).await["type"], "subscribed");
    let (status, _) = admin.post(&orders, limit("w1")).await;
    assert_eq!(status, StatusCode::CREATED);
    let submitted = ws_next(&mut ws).await;
    assert_eq!(submitted["type"], "event");
    assert_eq!(submitted["channel"], channel);
    assert_eq!(submitted["data"]["kind"], "order_submitted");
    let mut last = submitted["seq"].as_u64().unwrap();
    let accepted = ws_next(&mut ws).await;
    assert_eq!(accepted["data"]["kind"], "order_accepted");
    assert_eq!(accepted["seq"].as_u64().unwrap(), last + 1, "seqs follow the journal");
    last += 1;
    drop(ws);

    // Missed while disconnected: delivered first on resume, in order, once.
    admin.post(&orders, limit("w2")).await;
    admin.post(&orders, limit("w3")).await;
    let mut ws = ws_connect(&server.base, Some(&admin.token)).await;
    ws_send(&mut ws, json!({"op": "subscribe", "channels": [channel], "after_seq": { account.to_string(): last }}))
        .await;
    assert_eq!(ws_next(&mut ws).await["type"], "subscribed");
    let mut kinds = Vec::new();
    for _ in 0..4 {
        let event = ws_next(&mut ws).await;
        assert_eq!(event["seq"].as_u64().unwrap(), last + 1, "{event}");
        last += 1;
        kinds.push(event["data"]["kind"].as_str().unwrap().to_string());
    }
    assert_eq!(kinds, ["order_submitted", "order_accepted", "order_submitted", "order_accepted"]);

    // Another user's account is not a channel for them.
    admin
        .post("/api/v1/users", json!({"username": "dave", "password": "dave's long password", "role": "trader"}))
        .await;
    let dave = User::sign_in(&server.base, "dave", "dave's long password").await;
    let mut theirs = ws_connect(&server.base, Some(&dave.token)).await;
    ws_send(&mut theirs, json!({"op": "subscribe", "channels": [channel]})).await;
    assert_eq!(ws_next(&mut theirs).await["code"], "unknown_channel");
    server.stop().await;
    db.remove().await;
}

/// Messages until one matches, that one included.
async fn ws_until(ws: &mut Ws, mut last: impl FnMut(&Value) -> bool) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let message = ws_next(ws).await;
        let done = last(&message);
        seen.push(message);
        if done {
            return seen;
        }
    }
}

/// Quotes AAPL now, so a market order placed next has a price and fills at once.
async fn quote_aapl(server: &Server) {
    let runtime = &server.started.state.runtime;
    let instrument = runtime.instrument_by_symbol("AAPL").expect("a paper instrument").id;
    runtime
        .publish_quote(model::Quote {
            instrument,
            ts: runtime.now(),
            bid: model::Price::from_int(100),
            bid_size: model::Quantity::from_int(1_000),
            ask: model::Price::parse("100.10").unwrap(),
            ask_size: model::Quantity::from_int(1_000),
        })
        .await;
}

fn market(id: &str, quantity: &str) -> Value {
    json!({"client_order_id": id, "symbol": "AAPL", "side": "buy", "type": "market", "quantity": quantity})
}

/// A buy far below the market: it rests.
fn resting(id: &str) -> Value {
    json!({"client_order_id": id, "symbol": "AAPL", "side": "buy", "type": "limit", "price": "1.00", "quantity": "1"})
}

fn is_accepted(client_order_id: &str) -> impl Fn(&Value) -> bool {
    move |m: &Value| m["data"]["event"] == "order_accepted" && m["data"]["order"]["client_order_id"] == client_order_id
}

/// `(event, status)` of the order messages about one order.
fn order_story(messages: &[Value], client_order_id: &str) -> Vec<(String, String)> {
    messages
        .iter()
        .filter(|m| m["type"] == "order" && m["data"]["order"]["client_order_id"] == client_order_id)
        .map(|m| (m["data"]["event"].as_str().unwrap().into(), m["data"]["order"]["status"].as_str().unwrap().into()))
        .collect()
}

fn story(steps: &[(&str, &str)]) -> Vec<(String, String)> {
    steps.iter().map(|(e, s)| ((*e).to_string(), (*s).to_string())).collect()
}

async fn scoped_channels_carry_only_the_callers_accounts(backend: &str) {
    let db = database(backend).await;
    let server = start(&db).await;
    let runtime = &server.started.state.runtime;
    let admin = User::sign_in(&server.base, "admin", ADMIN_PASSWORD).await;
    let (status, _) = admin
        .post("/api/v1/users", json!({"username": "erin", "password": "erin's long password", "role": "trader"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let erin = User::sign_in(&server.base, "erin", "erin's long password").await;
    let mine = open_account(&admin).await;
    let hers = open_account(&erin).await;
    let mut admin_ws = ws_connect(&server.base, Some(&admin.token)).await;
    let mut erin_ws = ws_connect(&server.base, Some(&erin.token)).await;
    for (ws, account) in [(&mut admin_ws, mine), (&mut erin_ws, hers)] {
        ws_send(ws, json!({"op": "subscribe", "channels": ["orders", "fills", "positions", "balances", "bots"]})).await;
        assert_eq!(ws_next(ws).await["type"], "subscribed");
        // The current rows of each of the caller's accounts: one each here.
        for kind in ["positions", "balances"] {
            let rows = ws_next(ws).await;
            assert_eq!(
                (rows["type"].as_str(), rows["channel"].as_str(), rows["account"].as_i64(), rows["snapshot"].as_bool()),
                (Some(kind), Some(kind), Some(account), Some(true)),
                "{rows}"
            );
            assert!(rows["seq"].as_u64().is_some_and(|seq| seq > 0), "{rows}");
        }
    }
    // Nobody resumes someone else's account.
    ws_send(&mut erin_ws, json!({"op": "subscribe", "channels": ["orders"], "after_seq": {mine.to_string(): 0}})).await;
    assert_eq!(ws_next(&mut erin_ws).await["code"], "unknown_account");

    // A market buy: accepted and filled in one commit, each event with its own state.
    quote_aapl(&server).await;
    let (status, body) = admin.post(&format!("/api/v1/accounts/{mine}/orders"), market("buy-1", "2")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let seen = ws_until(&mut admin_ws, |m| m["type"] == "balances").await;
    assert!(seen.iter().all(|m| m["account"] == mine), "{seen:?}");
    assert_eq!(
        order_story(&seen, "buy-1"),
        story(&[("order_submitted", "new"), ("order_accepted", "accepted"), ("order_filled", "filled")])
    );
    let fill = seen.iter().find(|m| m["type"] == "fill").expect("a fill");
    assert_eq!((fill["channel"].as_str(), fill["data"]["quantity"].as_str()), (Some("fills"), Some("2")), "{fill}");
    let filled = seen.iter().find(|m| m["data"]["event"] == "order_filled").expect("filled");
    assert_eq!(fill["seq"], filled["seq"], "the fill's journal seq");
    let positions = seen.iter().find(|m| m["type"] == "positions").expect("positions");
    assert_eq!(positions["snapshot"], false);
    assert_eq!(positions["data"].as_array().map(Vec::len), Some(1), "only the instrument traded: {positions}");
    assert_eq!(positions["data"][0]["quantity"], "2");
    let balances = seen.last().expect("balances");
    assert_eq!((balances["snapshot"].as_bool(), balances["seq"].as_u64()), (Some(false), filled["seq"].as_u64()));
    let seqs: Vec<u64> = seen.iter().filter(|m| m["type"] == "order").map(|m| m["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "journal order: {seqs:?}");

    // An account opened after subscribing is followed too.
    let mine2 = open_account(&admin).await;
    let (status, _) = admin.post(&format!("/api/v1/accounts/{mine2}/orders"), resting("rest-2")).await;
    assert_eq!(status, StatusCode::CREATED);
    let seen = ws_until(&mut admin_ws, is_accepted("rest-2")).await;
    assert!(seen.iter().all(|m| m["account"] == mine2), "{seen:?}");
    assert!(seen.iter().any(|m| m["type"] == "positions"), "{seen:?}");
    assert!(seen.iter().any(|m| m["type"] == "balances"), "{seen:?}");
    assert_eq!(order_story(&seen, "rest-2"), story(&[("order_submitted", "new"), ("order_accepted", "accepted")]));

    // Bot updates go to the owner only. The admin's is published first, so
    // it would reach Erin before her own if it leaked.
    let bot = |bot, account, status: &str| server::runtime::BotUpdate { bot, account, data: json!({"status": status}) };
    runtime.publish_bot_update(bot(1, mine, "running"));
    runtime.publish_bot_update(bot(2, hers, "stopped"));
    let update = ws_until(&mut admin_ws, |m| m["type"] == "bot").await.pop().unwrap();
    assert_eq!((update["account"].as_i64(), update["bot"].as_i64()), (Some(mine), Some(1)), "{update}");
    assert_eq!(update["data"], json!({"status": "running"}));
    let seen = ws_until(&mut erin_ws, |m| m["type"] == "bot").await;
    assert!(seen.iter().all(|m| m["account"] == hers), "{seen:?}");
    assert_eq!(seen.last().unwrap()["bot"], 2);

    // Erin's own trading reaches her, and only hers: the admin's came earlier.
    let (status, _) = erin.post(&format!("/api/v1/accounts/{hers}/orders"), resting("hers-1")).await;
    assert_eq!(status, StatusCode::CREATED);
    let seen = ws_until(&mut erin_ws, is_accepted("hers-1")).await;
    assert!(seen.iter().all(|m| m["account"] == hers), "{seen:?}");
    // And none of it reaches the admin; nor bots, once unsubscribed.
    ws_send(&mut admin_ws, json!({"op": "unsubscribe", "channels": ["bots"]})).await;
    assert_eq!(ws_next(&mut admin_ws).await["type"], "unsubscribed");
    runtime.publish_bot_update(bot(1, mine, "paused"));
    let (status, _) = admin.post(&format!("/api/v1/accounts/{mine}/orders"), resting("marker")).await;
    assert_eq!(status, StatusCode::CREATED);
    let seen = ws_until(&mut admin_ws, is_accepted("marker")).await;
    assert!(seen.iter().all(|m| m["account"] == mine && m["type"] == "order"), "{seen:?}");
    server.stop().await;
    db.remove().await;
}

async fn orders_and_fills_resume_without_gaps_or_repeats(backend: &str) {
    let db = database(backend).await;
    let server = start(&db).await;
    let runtime = &server.started.state.runtime;
    let admin = User::sign_in(&server.base, "admin", ADMIN_PASSWORD).await;
    let account = open_account(&admin).await;
    let orders = format!("/api/v1/accounts/{account}/orders");
    let subscribe = |after: Option<u64>| match after {
        Some(seq) => {
            json!({"op": "subscribe", "channels": ["orders", "fills"], "after_seq": {account.to_string(): seq}})
        }
        None => json!({"op": "subscribe", "channels": ["orders", "fills"]}),
    };
    let mut ws = ws_connect(&server.base, Some(&admin.token)).await;
    ws_send(&mut ws, subscribe(None)).await;
    assert_eq!(ws_next(&mut ws).await["type"], "subscribed");
    let (status, placed) = admin.post(&orders, resting("rest")).await;
    assert_eq!(status, StatusCode::CREATED);
    let seen = ws_until(&mut ws, is_accepted("rest")).await;
    assert_eq!(order_story(&seen, "rest"), story(&[("order_submitted", "new"), ("order_accepted", "accepted")]));
    let last = seen.last().unwrap()["seq"].as_u64().unwrap();
    drop(ws);

    // While away: a market order fills, the resting one (placed before) is cancelled.
    quote_aapl(&server).await;
    let (status, _) = admin.post(&orders, market("away", "3")).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = admin.call(reqwest::Method::DELETE, &format!("{orders}/{}", placed["id"]), None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    runtime.account(account).await.expect("running").flush().await.expect("durable");
    let missed = runtime.store.events(account, last, 1_000).await.unwrap();
    let missed_orders: Vec<(u64, &str)> = missed
        .iter()
        .filter(|(_, e)| server::accounts::order_of(&e.kind).is_some())
        .map(|(seq, e)| (*seq, e.kind.name()))
        .collect();
    let missed_fills: Vec<u64> = missed
        .iter()
        .filter(|(_, e)| matches!(e.kind, model::event::EventKind::OrderFilled { .. }))
        .map(|(seq, _)| *seq)
        .collect();
    assert!(!missed_fills.is_empty());

    // Resumed: exactly what was missed, in journal order, orders then fills.
    let mut ws = ws_connect(&server.base, Some(&admin.token)).await;
    ws_send(&mut ws, subscribe(Some(last))).await;
    assert_eq!(ws_next(&mut ws).await["type"], "subscribed");
    let mut replayed = Vec::new();
    for (seq, kind) in &missed_orders {
        let message = ws_next(&mut ws).await;
        assert_eq!((message["type"].as_str(), message["seq"].as_u64()), (Some("order"), Some(*seq)), "{message}");
        assert_eq!((message["account"].as_i64(), message["data"]["event"].as_str()), (Some(account), Some(*kind)));
        replayed.push(message);
    }
    for seq in &missed_fills {
        let message = ws_next(&mut ws).await;
        assert_eq!((message["type"].as_str(), message["seq"].as_u64()), (Some("fill"), Some(*seq)), "{message}");
    }
    // Each event with the order as it left it, also for the order placed before the gap.
    assert_eq!(
        order_story(&replayed, "rest"),
        story(&[("order_cancel_requested", "pending_cancel"), ("order_cancelled", "cancelled")])
    );
    assert_eq!(
        order_story(&replayed, "away"),
        story(&[("order_submitted", "new"), ("order_accepted", "accepted"), ("order_filled", "filled")])
    );
    // Then live, carrying on from the journal's end: nothing again, nothing skipped.
    let end = missed.last().unwrap().0;
    let (status, _) = admin.post(&orders, resting("after")).await;
    assert_eq!(status, StatusCode::CREATED);
    let next = ws_next(&mut ws).await;
    assert_eq!(
        (next["data"]["event"].as_str(), next["seq"].as_u64()),
        (Some("order_submitted"), Some(end + 1)),
        "{next}"
    );
    server.stop().await;
    db.remove().await;
}

fn synthetic_csv(bars: usize) -> String {
    let spec = backtest::data::SynthSpec {
        bars,
        seed: 5,
        interval_ns: 60_000_000_000,
        start: model::Timestamp::parse("2024-01-01").unwrap(),
        start_price: model::Price::from_int(100),
        volatility: 0.002,
    };
    let mut csv = String::from("timestamp,open,high,low,close,volume\n");
    for b in backtest::data::synth(&spec) {
        csv.push_str(&format!("{},{},{},{},{},{}\n", b.ts, b.open, b.high, b.low, b.close, b.volume));
    }
    csv
}

async fn backtests_run_in_the_background_and_report(backend: &str) {
    let db = database(backend).await;
    let server = start(&db).await;
    let admin = User::sign_in(&server.base, "admin", ADMIN_PASSWORD).await;
    let csv = synthetic_csv(3_000);
    let request = json!({
        "strategy": "sma-cross",
        "params": {"fast": 10, "slow": 40, "long-only": true},
        "data": {"csv": csv},
        "settings": {"cash": "10000", "commission": "0.001", "close_at_end": true}
    });
    let (status, accepted) = admin.post("/api/v1/backtests", request).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let id = accepted["id"].as_i64().unwrap();
    let mut done = Value::Null;
    for _ in 0..100 {
        let (_, b) = admin.get(&format!("/api/v1/backtests/{id}")).await;
        if b["status"] != "running" {
            done = b;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(done["status"], "done", "{done}");
    let report = &done["report"];
    for key in ["final_equity", "sharpe", "max_drawdown_pct", "trades", "equity_curve"] {
        assert!(report.get(key).is_some(), "report lacks {key}");
    }
    assert_eq!(report["data"]["bars"], 3_000);
    let html = admin
        .http
        .get(format!("{}/api/v1/backtests/{id}/report.html", server.base))
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap();
    assert_eq!(html.status(), StatusCode::OK);
    assert!(html.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(html.text().await.unwrap().contains("<svg"));
    let (_, list) = admin.get("/api/v1/backtests").await;
    assert_eq!(list.as_array().unwrap().len(), 1);

    let mut broken = synthetic_csv(10);
    broken = broken.replacen("\n2024-01-01T00:03:00Z,", "\n2024-01-01T00:03:00Z,x", 1);
    let cases = [
        ("unknown strategy", json!({"strategy": "moon", "data": {"csv": "x"}}), "strategy"),
        (
            "impossible parameters",
            json!({"strategy": "sma-cross", "params": {"fast": 50, "slow": 20}, "data": {"csv": "x"}}),
            "params",
        ),
        (
            "bad setting",
            json!({"strategy": "dca", "data": {"csv": "x"}, "settings": {"sizing": "half"}}),
            "settings.sizing",
        ),
        ("bad csv", json!({"strategy": "dca", "data": {"csv": broken}}), "data.csv"),
        (
            "no candles yet",
            json!({"strategy": "dca", "data": {"candles": {"symbol": "SPY", "interval": "1d"}}}),
            "data.candles",
        ),
        ("unknown symbol", json!({"strategy": "dca", "data": {"candles": {"symbol": "DOGE"}}}), "data.candles.symbol"),
    ];
    for (name, body, field) in cases {
        let (status, problem) = admin.post("/api/v1/backtests", body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{name}: {problem}");
        assert_eq!(problem["field"], field, "{name}: {problem}");
    }
    let (_, problem) = admin.post("/api/v1/backtests", json!({"strategy": "dca", "data": {"csv": broken}})).await;
    assert!(problem["detail"].as_str().unwrap().contains("line 5"), "{problem}");
    let (_, list) = admin.get("/api/v1/backtests").await;
    assert_eq!(list.as_array().unwrap().len(), 1, "refused requests store nothing");

    admin
        .post("/api/v1/users", json!({"username": "erin", "password": "erin's long password", "role": "trader"}))
        .await;
    let erin = User::sign_in(&server.base, "erin", "erin's long password").await;
    let (status, _) = erin.get(&format!("/api/v1/backtests/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    server.stop().await;
    db.remove().await;
}

/// Positions, balances and open orders are answered from the account's
/// actor: they must be exactly what the database's read models say.
async fn reads_from_memory_match_the_read_models(backend: &str) {
    let db = database(backend).await;
    let server = start(&db).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let admin = User::sign_in(&server.base, "admin", ADMIN_PASSWORD).await;
    let account = open_account(&admin).await;
    let orders = format!("/api/v1/accounts/{account}/orders");
    let (status, body) = admin
        .post(
            &orders,
            json!({"client_order_id": "m-1", "symbol": "AAPL", "side": "buy", "type": "market", "quantity": "3"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    for (n, (symbol, price)) in
        [("SPY", "1.00"), ("AAPL", "2.00"), ("SPY", "3.00"), ("AAPL", "4.50"), ("SPY", "5")].iter().enumerate()
    {
        let order = json!({"client_order_id": format!("l-{n}"), "symbol": symbol, "side": "buy", "type": "limit", "price": price, "quantity": "1"});
        let (status, body) = admin.post(&orders, order).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (_, open) = admin.get(&format!("{orders}?status=open")).await;
    let first = open["items"][4]["id"].as_u64().unwrap();
    let (status, _) = admin.call(reqwest::Method::DELETE, &format!("{orders}/{first}"), None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    // Let the market order fill, and everything reach the database.
    let runtime = &server.started.state.runtime;
    for _ in 0..50 {
        if runtime.store.fills(account, None, 10).await.unwrap().len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    runtime.account(account).await.unwrap().flush().await.unwrap();
    let store = &runtime.store;

    let (status, positions) = admin.get(&format!("/api/v1/accounts/{account}/positions")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(positions, serde_json::to_value(store.positions(account).await.unwrap()).unwrap());
    assert!(positions.as_array().unwrap().iter().any(|p| p["quantity"] == "3"), "{positions}");
    let (status, balances) = admin.get(&format!("/api/v1/accounts/{account}/balances")).await;
    assert_eq!(status, StatusCode::OK);
    let stored: Vec<(String, model::Money)> =
        store.balances(account).await.unwrap().into_iter().map(|(c, m)| (c.to_string(), m)).collect();
    assert_eq!(balances, serde_json::to_value(stored).unwrap());

    let spy = runtime.instrument_by_symbol("SPY").unwrap().id;
    let (_, all_open) = admin.get(&format!("{orders}?status=open&limit=500")).await;
    let newest = all_open["items"][0]["id"].as_u64().unwrap();
    let before = format!("&before={newest}&limit=2");
    let queries = [
        ("", store::OrderQuery { open_only: true, limit: 100, ..Default::default() }),
        ("&limit=2", store::OrderQuery { open_only: true, limit: 2, ..Default::default() }),
        ("&symbol=SPY", store::OrderQuery { open_only: true, instrument: Some(spy), limit: 100, ..Default::default() }),
        (
            before.as_str(),
            store::OrderQuery { open_only: true, before: Some(model::OrderId(newest)), limit: 2, ..Default::default() },
        ),
    ];
    for (params, query) in queries {
        let (status, page) = admin.get(&format!("{orders}?status=open{params}")).await;
        assert_eq!(status, StatusCode::OK, "{params}: {page}");
        let expected = store.orders(account, &query).await.unwrap();
        assert!(!expected.is_empty(), "{params}");
        assert_eq!(page["items"], serde_json::to_value(&expected).unwrap(), "{params}");
        let full = expected.len() == query.limit as usize;
        assert_eq!(page["next_before"].as_u64(), if full { expected.last().map(|o| o.id.0) } else { None }, "{params}");
    }
    assert_eq!(all_open["items"].as_array().unwrap().len(), 4, "one of five limits was cancelled");
    server.stop().await;
    db.remove().await;
}

/// A socket opened with a token lives only as long as the token: once it is
/// revoked, the next message (or heartbeat) closes the socket with 1008.
async fn a_revoked_token_ends_its_websocket(backend: &str) {
    use futures_util::StreamExt;
    let db = database(backend).await;
    let server = start(&db).await;
    let admin = User::sign_in(&server.base, "admin", ADMIN_PASSWORD).await;
    open_account(&admin).await;
    let mut ws = ws_connect(&server.base, Some(&admin.token)).await;
    ws_send(&mut ws, json!({"op": "subscribe", "channels": ["orders"]})).await;
    assert_eq!(ws_next(&mut ws).await["type"], "subscribed");
    ws_send(&mut ws, json!({"op": "ping"})).await;
    assert_eq!(ws_next(&mut ws).await["type"], "pong", "a valid token keeps the socket");

    // Tokens look like tc_{id}_{secret}.
    let id = admin.token.split('_').nth(1).unwrap();
    let (status, body) = admin.delete(&format!("/api/v1/tokens/{id}")).await;
    assert!(status.is_success(), "{status} {body}");
    ws_send(&mut ws, json!({"op": "ping"})).await;
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap() {
            Some(Ok(tokio_tungstenite::tungstenite::Message::Close(frame))) => break frame,
            Some(Ok(tokio_tungstenite::tungstenite::Message::Text(text))) => {
                assert!(!text.contains("pong"), "a revoked token must not be answered: {text}");
            }
            Some(Ok(_)) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    let frame = closed.expect("a close frame with a reason");
    assert_eq!(u16::from(frame.code), 1008, "{frame:?}");
    server.stop().await;
    db.remove().await;
}

async fn risk_limits_are_read_checked_and_enforced(backend: &str) {
    let db = database(backend).await;
    let server = start(&db).await;
    let admin = User::sign_in(&server.base, "admin", ADMIN_PASSWORD).await;
    let carol = common::trader(&server, &admin, "carol").await;
    let account = open_account(&carol).await;
    let limits = format!("/api/v1/accounts/{account}/risk-limits");
    let (status, current) = carol.get(&limits).await;
    assert_eq!(status, StatusCode::OK, "{current}");
    assert_eq!(current["max_order_notional"], Value::Null);
    assert_eq!(current["max_leverage"], "1");

    // Each bad value is refused naming its field, and nothing changes.
    let good = json!({"max_order_notional": "500", "max_position": null, "daily_loss_limit": "1000",
                      "allow_short": false, "max_leverage": "1", "fee_rate_estimate": "0.001"});
    for (field, value) in [
        ("max_order_notional", json!("0")),
        ("max_position", json!("-1")),
        ("max_leverage", json!("11")),
        ("fee_rate_estimate", json!("0.5")),
    ] {
        let mut body = good.clone();
        body[field] = value;
        let (status, problem) = carol.call(reqwest::Method::PUT, &limits, Some(body)).await;
        assert_eq!((status, problem["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some(field)), "{problem}");
    }
    let (status, problem) = carol.call(reqwest::Method::PUT, &limits, Some(json!({"max_order_notional": "5"}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "a partial body is refused: {problem}");
    assert_eq!(carol.get(&limits).await.1, current, "refusals changed nothing");

    let (status, saved) = carol.call(reqwest::Method::PUT, &limits, Some(good.clone())).await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert_eq!(saved["max_order_notional"], "500");
    // Enforced: an order worth more than 500 is refused with the reason.
    quote_aapl(&server).await;
    let (status, refused) = carol.post(&format!("/api/v1/accounts/{account}/orders"), market("big", "10")).await;
    assert_eq!((status, refused["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("max_order_notional")));
    // Someone else's account is not found; a viewer cannot change limits.
    let admin_account = open_account(&admin).await;
    let (status, _) = carol.get(&format!("/api/v1/accounts/{admin_account}/risk-limits")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Journaled: the limits survive a restart.
    server.stop().await;
    let server = start(&db).await;
    let carol = User::sign_in(&server.base, "carol", "carol's long password").await;
    assert_eq!(carol.get(&limits).await.1, saved);
    let (_, audit) = admin_after_restart(&server).await.get("/api/v1/audit").await;
    assert!(audit["entries"].as_array().unwrap().iter().any(|e| e["action"] == "risk_limits.account"), "{audit}");
    server.stop().await;
    db.remove().await;
}

async fn admin_after_restart(server: &Server) -> User {
    User::sign_in(&server.base, "admin", ADMIN_PASSWORD).await
}

async fn the_trading_channel_follows_kill_switches(backend: &str) {
    let db = database(backend).await;
    let server = start(&db).await;
    let admin = User::sign_in(&server.base, "admin", ADMIN_PASSWORD).await;
    let carol = common::trader(&server, &admin, "carol").await;
    let account = open_account(&carol).await;
    let mut ws = ws_connect(&server.base, Some(&carol.token)).await;
    // Market-data-only sockets may not have it.
    let mut anonymous = ws_connect(&server.base, None).await;
    ws_send(&mut anonymous, json!({"op": "subscribe", "channels": ["trading"]})).await;
    assert_eq!(ws_next(&mut anonymous).await["code"], "unauthorized");

    ws_send(&mut ws, json!({"op": "subscribe", "channels": ["trading"]})).await;
    assert_eq!(ws_next(&mut ws).await["type"], "subscribed");
    let snapshot = ws_next(&mut ws).await;
    assert_eq!(snapshot["type"], "trading", "{snapshot}");
    assert_eq!(snapshot["data"], json!({"global": "active", "accounts": [{"account": account, "state": "active"}]}));

    let (status, _) = put(&admin, "/api/v1/kill-switch".into(), "halted").await;
    assert_eq!(status, StatusCode::OK);
    let halted = ws_until(&mut ws, |m| m["type"] == "trading").await.pop().unwrap();
    assert_eq!(halted["data"]["global"], "halted", "{halted}");

    let (status, _) = put(&carol, format!("/api/v1/accounts/{account}/kill-switch"), "reducing").await;
    assert_eq!(status, StatusCode::OK);
    let reducing =
        ws_until(&mut ws, |m| m["type"] == "trading" && m["data"]["accounts"][0]["state"] == "reducing").await;
    assert_eq!(reducing.last().unwrap()["data"]["global"], "halted");
    // Another user's account switch never shows.
    let admin_account = open_account(&admin).await;
    let (status, _) = put(&admin, format!("/api/v1/accounts/{admin_account}/kill-switch"), "halted").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = put(&admin, "/api/v1/kill-switch".into(), "active").await;
    assert_eq!(status, StatusCode::OK);
    let back = ws_until(&mut ws, |m| m["type"] == "trading" && m["data"]["global"] == "active").await;
    let last = back.last().unwrap();
    assert_eq!(last["data"]["accounts"], json!([{"account": account, "state": "reducing"}]), "{last}");
    server.stop().await;
    db.remove().await;
}

async fn summary_has_pnl_and_free_cash_per_currency(backend: &str) {
    let db = database(backend).await;
    let server = start(&db).await;
    let admin = User::sign_in(&server.base, "admin", ADMIN_PASSWORD).await;
    let account = open_account(&admin).await;
    quote_aapl(&server).await;
    let orders = format!("/api/v1/accounts/{account}/orders");
    let (status, bought) = admin.post(&orders, market("m1", "10")).await;
    assert_eq!(status, StatusCode::CREATED);
    let bought = bought["id"].as_u64().unwrap();
    // A resting buy holds cash back: 10 × 50 plus nothing for fees (no fee reserve by default).
    let resting = json!({"client_order_id": "r1", "symbol": "AAPL", "side": "buy", "type": "limit", "price": "50", "quantity": "10"});
    let (status, _) = admin.post(&orders, resting).await;
    assert_eq!(status, StatusCode::CREATED);
    let summary = loop {
        let (_, summary) = admin.get(&format!("/api/v1/accounts/{account}")).await;
        if summary["positions"].as_array().is_some_and(|p| !p.is_empty()) {
            break summary;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let usd = summary["pnl_by_currency"].as_array().unwrap().iter().find(|p| p["currency"] == "USD").unwrap().clone();
    let position = &summary["positions"][0];
    assert_eq!(summary["venue"], "paper");
    let (_, order) = admin.get(&format!("{orders}/{bought}")).await;
    assert_eq!(position["cost_basis"], order["filled_notional"], "the cost basis is what the fill cost: {summary}");
    let money = |v: &Value| model::Money::parse(v.as_str().unwrap()).unwrap();
    assert_eq!(money(&usd["total"]), money(&usd["realized"]) + money(&usd["unrealized"]) - money(&usd["fees"]));
    assert_eq!(money(&usd["fees"]), money(&position["fees"]));
    // The day started with the deposit; everything since is the day's P&L.
    assert_eq!(usd["day_start_equity"], "100000");
    let equity_usd =
        summary["equity_by_currency"].as_array().unwrap().iter().find(|p| p[0] == "USD").unwrap()[1].clone();
    assert_eq!(money(&usd["day"]), money(&equity_usd) - money(&usd["day_start_equity"]));
    let cash = |list: &Value| money(&list.as_array().unwrap().iter().find(|p| p[0] == "USD").unwrap()[1]);
    assert_eq!(cash(&summary["balances"]) - cash(&summary["free_cash"]), model::Money::from_int(500), "{summary}");
    server.stop().await;
    db.remove().await;
}

async fn strategies_and_fees_are_listed(backend: &str) {
    let db = database(backend).await;
    let server = start(&db).await;
    let anyone = reqwest::Client::new();
    let strategies: Value =
        anyone.get(format!("{}/api/v1/strategies", server.base)).send().await.unwrap().json().await.unwrap();
    let sma = strategies.as_array().unwrap().iter().find(|s| s["name"] == "sma-cross").unwrap();
    let fast = sma["params"].as_array().unwrap().iter().find(|p| p["name"] == "fast").unwrap();
    assert_eq!(
        (fast["type"].as_str(), fast["default"].as_str(), fast["min"].as_str()),
        (Some("int"), Some("10"), Some("1"))
    );
    let long_only = sma["params"].as_array().unwrap().iter().find(|p| p["name"] == "long-only").unwrap();
    assert_eq!((long_only["type"].as_str(), &long_only["min"]), (Some("bool"), &Value::Null));
    assert_eq!(strategies.as_array().unwrap().len(), engine::strategies::STRATEGIES.len());
    let instruments: Value =
        anyone.get(format!("{}/api/v1/instruments", server.base)).send().await.unwrap().json().await.unwrap();
    for instrument in instruments.as_array().unwrap() {
        assert_eq!(
            (instrument["maker_fee"].as_str(), instrument["taker_fee"].as_str()),
            (Some("0.001"), Some("0.001"))
        );
        assert!(instrument["tick_size"].is_string(), "{instrument}");
    }
    server.stop().await;
    db.remove().await;
}

async fn admins_see_every_account_and_the_health(backend: &str) {
    let db = database(backend).await;
    let server = start(&db).await;
    let admin = User::sign_in(&server.base, "admin", ADMIN_PASSWORD).await;
    let carol = common::trader(&server, &admin, "carol").await;
    let account = open_account(&carol).await;
    let (status, _) = put(&carol, format!("/api/v1/accounts/{account}/kill-switch"), "reducing").await;
    assert_eq!(status, StatusCode::OK);
    let (status, accounts) = admin.get("/api/v1/admin/accounts").await;
    assert_eq!(status, StatusCode::OK, "{accounts}");
    let row = accounts.as_array().unwrap().iter().find(|a| a["id"] == json!(account)).unwrap();
    assert_eq!(row["owner"]["username"], "carol", "{row}");
    assert_eq!((row["trading_state"].as_str(), row["venue"].as_str()), (Some("reducing"), Some("paper")));
    let (status, _) = carol.get("/api/v1/admin/accounts").await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    quote_aapl(&server).await;
    let (status, _) = carol.post(&format!("/api/v1/accounts/{account}/orders"), market("h1", "1")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "close-only refuses a buy");
    let (status, health) = admin.get("/api/v1/admin/health").await;
    assert_eq!(status, StatusCode::OK, "{health}");
    assert_eq!(health["database"]["backend"], backend);
    assert_eq!(
        (health["database"]["reachable"].as_bool(), health["database"]["migrations_pending"].as_u64()),
        (Some(true), Some(0))
    );
    assert!(health["journal"]["commits"].as_u64().unwrap() > 0, "{health}");
    assert_eq!(health["journal"]["failed_batches"], 0);
    let aapl = health["feed"].as_array().unwrap().iter().find(|f| f["symbol"] == "AAPL").unwrap();
    assert_eq!(aapl["status"], "live", "{aapl}");
    assert_eq!(health["work"]["accounts_running"], 1);
    assert_eq!(health["global_trading_state"], "active");
    server.stop().await;
    db.remove().await;
}
