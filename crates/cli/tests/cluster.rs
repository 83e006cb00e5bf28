//! Several `tradecore serve` processes on one real PostgreSQL database: one
//! leads, the other stands by and forwards everything (sign-in with cookies
//! and CSRF, orders, a WebSocket) to it; a leader stopped cleanly hands over
//! at once, a leader killed hands over when its lease runs out, and every
//! acknowledged order is there after each change.

mod common;

use std::time::{Duration, Instant};

use common::Server;
use futures_util::{SinkExt as _, StreamExt as _};
use reqwest::StatusCode;
use serde_json::{Value, json};
use store::testing::TestDatabase;

const PASSWORD: &str = "cluster admin password";
const LEASE_SECONDS: &str = "3";

fn instance(database: &str) -> Server {
    Server::start(&[
        ("TRADECORE_DATABASE__URL", database),
        ("TRADECORE_AUTH__ADMIN_PASSWORD", PASSWORD),
        ("TRADECORE_CLUSTER__LEASE_SECONDS", LEASE_SECONDS),
        // The instances reach each other on loopback: believe each other's X-Forwarded-For.
        ("TRADECORE_SERVER__TRUSTED_PROXIES", "127.0.0.1"),
        ("TRADECORE_PAPER__TICKS_PER_SECOND", "20"),
    ])
}

/// Waits until `server` says it has `role` (`leader` or `standby`); how long it took.
async fn role(http: &reqwest::Client, server: &Server, role: &str) -> (Value, Duration) {
    let started = Instant::now();
    let mut last = Value::Null;
    while started.elapsed() < Duration::from_secs(30) {
        if let Ok(answer) = http.get(format!("{}/readyz", server.base)).send().await
            && let Ok(body) = answer.json::<Value>().await
        {
            if body["role"] == role && body["ready"] == true {
                return (body, started.elapsed());
            }
            last = body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{} never became {role}: {last}", server.base);
}

async fn order(http: &reqwest::Client, base: &str, token: &str, account: i64, id: &str) -> StatusCode {
    http.post(format!("{base}/api/v1/accounts/{account}/orders"))
        .bearer_auth(token)
        .json(&json!({"client_order_id": id, "symbol": "SPY", "side": "buy", "type": "limit", "quantity": "1", "price": "1"}))
        .send()
        .await
        .unwrap()
        .status()
}

async fn client_ids(http: &reqwest::Client, base: &str, token: &str, account: i64) -> Vec<String> {
    let page: Value = http
        .get(format!("{base}/api/v1/accounts/{account}/orders?limit=500"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["items"].as_array().unwrap().iter().map(|o| o["client_order_id"].as_str().unwrap().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_forwards_and_takes_over_with_every_acknowledged_order() {
    let db = TestDatabase::create("postgres", "cluster").await;
    let http = reqwest::Client::new();
    let a = instance(&db.url);
    let (_, _) = role(&http, &a, "leader").await;
    let b = instance(&db.url);
    let (standby, _) = role(&http, &b, "standby").await;
    assert_eq!(standby["leader"], a.base.as_str(), "{standby}");
    assert!(a.printed("tradecore leads the cluster") && !b.printed("tradecore leads the cluster"));

    // Everything through the standby: a session (cookies, CSRF, origin), a
    // token, an account, orders.
    let token = common::api_token(&b.base, "admin", PASSWORD, &["read", "trade", "admin"]).await;
    let account: Value = http
        .post(format!("{}/api/v1/accounts", b.base))
        .bearer_auth(&token)
        .json(&json!({"name": "clustered", "starting_cash": "100000"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let account = account["id"].as_i64().unwrap();
    let mut acknowledged = Vec::new();
    for n in 0..5 {
        let id = format!("via-standby-{n}");
        assert_eq!(order(&http, &b.base, &token, account, &id).await, StatusCode::CREATED);
        acknowledged.push(id);
    }
    assert_eq!(client_ids(&http, &a.base, &token, account).await.len(), 5, "the leader holds them");

    // A WebSocket through the standby sees the leader's order events.
    let ws_url = format!("{}/api/v1/ws", b.base.replace("http://", "ws://"));
    let mut request = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(ws_url).unwrap();
    request.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    ws.send(tokio_tungstenite::tungstenite::Message::text(r#"{"op":"subscribe","channels":["orders"]}"#))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(order(&http, &b.base, &token, account, "seen-on-ws").await, StatusCode::CREATED);
    acknowledged.push("seen-on-ws".to_string());
    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(message)) = ws.next().await {
            if message.to_text().is_ok_and(|t| t.contains("seen-on-ws")) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(seen, Ok(true), "the order event came through the standby's WebSocket");
    // A bad token is refused by the leader, and the refusal reaches the client.
    let bad = http.get(format!("{}/api/v1/accounts", b.base)).bearer_auth("tc_nope_nope").send().await.unwrap();
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);

    // A clean stop hands over at once: b leads, with everything.
    a.stop();
    let (_, took) = role(&http, &b, "leader").await;
    println!("clean handover: b led {took:?} after a stopped");
    assert!(b.printed("tradecore leads the cluster"));
    let ids = client_ids(&http, &b.base, &token, account).await;
    for id in &acknowledged {
        assert!(ids.contains(id), "{id} after the handover: {ids:?}");
    }
    assert_eq!(order(&http, &b.base, &token, account, "after-handover").await, StatusCode::CREATED);
    acknowledged.push("after-handover".to_string());

    // a comes back as a standby; then b crashes: a takes over once b's lease lapses.
    let a = instance(&db.url);
    let (standby, _) = role(&http, &a, "standby").await;
    assert_eq!(standby["leader"], b.base.as_str());
    assert_eq!(order(&http, &a.base, &token, account, "before-crash").await, StatusCode::CREATED);
    acknowledged.push("before-crash".to_string());
    let mut b = b;
    b.kill();
    let (_, took) = role(&http, &a, "leader").await;
    println!("failover after a crash: a led {took:?} after b was killed (lease {LEASE_SECONDS} s)");
    assert!(took >= Duration::from_secs(1), "not before the lease lapsed: {took:?}");
    let ids = client_ids(&http, &a.base, &token, account).await;
    for id in &acknowledged {
        assert!(ids.contains(id), "{id} after the failover: {ids:?}");
    }
    assert_eq!(order(&http, &a.base, &token, account, "after-failover").await, StatusCode::CREATED);

    // Should another instance ever hold the lease (a leader paused past its
    // lease, say), the old one stops at its next renewal rather than write
    // beside it.
    let store = db.store().await;
    store.execute_admin("UPDATE leases SET holder = 'intruder', epoch = epoch + 1").await.unwrap();
    store.close().await;
    let mut a = a;
    let exited = a.exits_within(Duration::from_secs(10)).expect("a stops leading");
    assert!(!exited.success(), "{exited:?}");
    drop((a, b));
    db.remove().await;
}
