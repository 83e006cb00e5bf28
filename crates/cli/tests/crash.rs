//! `kill -9` in the middle of trading: after a restart every acknowledged
//! order, fill and balance is there exactly as before, on the real binary
//! over real HTTP.

mod common;

use std::time::Duration;

use common::Server;
use serde_json::{Value, json};

const PASSWORD: &str = "a long admin password for tests";

/// The server on `dir` (its database under `./data`), on a free port.
fn spawn(dir: &std::path::Path) -> Server {
    Server::spawn(
        common::serve("127.0.0.1:0")
            .current_dir(dir)
            .env("TRADECORE_ADMIN_PASSWORD", PASSWORD)
            .env("TRADECORE_PAPER__TICKS_PER_SECOND", "20"),
    )
}

async fn get_json(http: &reqwest::Client, token: &str, url: String) -> Value {
    http.get(url).bearer_auth(token).send().await.unwrap().json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_nothing_acknowledged() {
    let dir = std::env::temp_dir().join(format!("tradecore-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut server = spawn(&dir);
    let base = server.base.clone();
    let token = common::api_token(&base, "admin", PASSWORD, &["read", "trade", "admin"]).await;
    let http = reqwest::Client::new();
    let account: Value = http
        .post(format!("{base}/api/v1/accounts"))
        .bearer_auth(&token)
        .json(&json!({"name": "crash test", "starting_cash": "1000000"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let account = account["id"].as_i64().unwrap();
    let orders = format!("{base}/api/v1/accounts/{account}/orders");

    // Place orders from several clients at once; keep the acknowledged ones.
    let mut tasks = Vec::new();
    for client in 0..8 {
        let (http, orders, token) = (http.clone(), orders.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for n in 0..15 {
                let side_market = n % 3 == 0;
                let body = if side_market {
                    json!({"client_order_id": format!("c{client}-{n}"), "symbol": "AAPL", "side": "buy", "type": "market", "quantity": "1"})
                } else {
                    json!({"client_order_id": format!("c{client}-{n}"), "symbol": "AAPL", "side": "buy", "type": "limit", "price": "1", "quantity": "1"})
                };
                if let Ok(r) = http.post(&orders).bearer_auth(&token).json(&body).send().await
                    && r.status() == 201
                    && let Ok(order) = r.json::<Value>().await
                {
                    acked.push(order["id"].as_u64().unwrap());
                }
            }
            acked
        }));
    }
    // Kill it while the clients are still going.
    tokio::time::sleep(Duration::from_millis(150)).await;
    server.kill();
    let mut acknowledged = Vec::new();
    for t in tasks {
        acknowledged.extend(t.await.unwrap());
    }
    assert!(!acknowledged.is_empty(), "some orders were acknowledged before the kill");

    let mut server = spawn(&dir);
    let base = server.base.clone();
    let orders = format!("{base}/api/v1/accounts/{account}/orders");
    for id in &acknowledged {
        let r = http.get(format!("{orders}/{id}")).bearer_auth(&token).send().await.unwrap();
        assert_eq!(r.status(), 200, "acknowledged order {id} survived the kill");
    }
    // The engine's state after replay matches the read models.
    let summary = get_json(&http, &token, format!("{base}/api/v1/accounts/{account}")).await;
    let positions = get_json(&http, &token, format!("{base}/api/v1/accounts/{account}/positions")).await;
    for live in summary["positions"].as_array().unwrap() {
        let stored = positions.as_array().unwrap().iter().find(|p| p["instrument"] == live["instrument"]).unwrap();
        assert_eq!(live["quantity"], stored["quantity"], "engine {summary} vs read model {positions}");
        assert_eq!(live["fees"], stored["fees"], "engine {summary} vs read model {positions}");
    }
    let balances = get_json(&http, &token, format!("{base}/api/v1/accounts/{account}/balances")).await;
    for pair in balances.as_array().unwrap() {
        let currency = pair[0].as_str().unwrap();
        let engine = summary["balances"].as_array().unwrap().iter().find(|b| b[0] == currency).unwrap();
        assert_eq!(engine[1], pair[1], "{currency} balance");
    }
    server.kill();
    let _ = std::fs::remove_dir_all(&dir);
}
