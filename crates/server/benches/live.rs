//! A live account's order path over loopback: `cargo bench -p server --bench live`.
//!
//! Starts the local fakes of Binance (spot REST, the WebSocket API's user
//! data stream, market streams) and the server as `serve` does, on SQLite
//! (a file, synchronous=FULL), links a credential, opens and confirms a
//! live account, then places marketable limit orders one after another
//! (buy, then sell what the buy left; 9 a second, under Binance's 100 orders
//! per 10 s) and times, per order:
//! - **ack**: `POST .../orders` until its durable answer (201);
//! - **filled**: `POST` until the fill arrives on the WebSocket `fills`
//!   channel: the whole flow user → server → journal (write-ahead) →
//!   venue REST → answer → journal → WebSocket push;
//!
//! and the time of one reconciliation with the venue (`POST .../reconcile`)
//! with that many orders in the venue's history. The venue is a local fake:
//! the figures are tradecore's own overhead, without the network to a real
//! venue (tens of milliseconds more per request).

use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use venue_fakes::binance::{FakeBinance, FakeKey};
use venue_fakes::binance_ws::{FakeKey as WsKey, FakeMarketStreams, FakeWsApi};

const PASSWORD: &str = "benchmark admin password";
const KEY: &str = "8f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8";
const API_KEY: &str = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";
const API_SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
    let i = ((sorted.len() as f64 * p) as usize).min(sorted.len() - 1);
    sorted[i].as_secs_f64() * 1e3
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{name:<8} n={:<5} p50 {:>7.2} ms  p95 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms",
        samples.len(),
        percentile(&samples, 0.50),
        percentile(&samples, 0.95),
        percentile(&samples, 0.99),
        samples.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
    );
}

async fn call(http: &reqwest::Client, method: reqwest::Method, url: String, token: &str, body: Value) -> Value {
    let response =
        http.request(method, &url).bearer_auth(token).json(&body).send().await.unwrap_or_else(|e| panic!("{e}"));
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(status.is_success(), "{url}: {status} {answer}");
    answer
}

#[allow(clippy::too_many_lines)]
async fn run(orders: usize) {
    let rest = FakeBinance::start(vec![(API_KEY.to_string(), FakeKey::Hmac(API_SECRET.to_string()))]).await;
    let ws_api = FakeWsApi::start(vec![(API_KEY.to_string(), WsKey::Hmac(API_SECRET.to_string()))]).await;
    let market = FakeMarketStreams::start().await;
    let dir = std::env::temp_dir().join(format!("tradecore-bench-live-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let env = vec![
        ("TRADECORE_DATABASE__URL".to_string(), format!("sqlite://{}/bench.db", dir.display())),
        ("TRADECORE_AUTH__ADMIN_PASSWORD".to_string(), PASSWORD.to_string()),
        ("TRADECORE_RATE_LIMIT__PER_IP_PER_MINUTE".to_string(), "100000000".to_string()),
        ("TRADECORE_RATE_LIMIT__PER_TOKEN_PER_MINUTE".to_string(), "100000000".to_string()),
        ("TRADECORE_TRADING__CREDENTIALS_KEY".to_string(), KEY.to_string()),
        ("TRADECORE_VENUES__BINANCE_REST_URL".to_string(), rest.url.clone()),
        ("TRADECORE_VENUES__BINANCE_WS_API_URL".to_string(), ws_api.url.clone()),
        ("TRADECORE_VENUES__BINANCE_STREAM_URL".to_string(), market.url.clone()),
        ("TRADECORE_VENUES__RECONCILE_SECONDS".to_string(), "0".to_string()),
    ];
    let config = server::config::load(None, &env).unwrap_or_else(|e| panic!("{e}"));
    let started = server::serve::start(config).await.unwrap_or_else(|e| panic!("{e}"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let base = format!("http://{addr}");
    let router = server::app::app(started.state.clone());
    let serving = tokio::spawn(async move {
        let _ = axum::serve(listener, router.into_make_service_with_connect_info::<std::net::SocketAddr>()).await;
    });

    let http = reqwest::Client::builder().cookie_store(true).build().unwrap_or_else(|e| panic!("{e}"));
    let login: Value = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"username": "admin", "password": PASSWORD}))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let csrf = login["csrf_token"].as_str().unwrap_or_default().to_string();
    let token: Value = http
        .post(format!("{base}/api/v1/tokens"))
        .header("X-CSRF-Token", csrf)
        .json(&json!({"name": "bench", "scopes": ["read", "trade", "admin"]}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let token = token["token"].as_str().unwrap_or_default().to_string();
    let post = reqwest::Method::POST;
    let credential = call(
        &http,
        post.clone(),
        format!("{base}/api/v1/venue-credentials"),
        &token,
        json!({"venue": "binance", "label": "bench", "api_key": API_KEY, "api_secret": API_SECRET}),
    )
    .await;
    let account = call(
        &http,
        post.clone(),
        format!("{base}/api/v1/accounts"),
        &token,
        json!({"name": "live", "venue_credential_id": credential["id"], "symbols": ["BTCUSDT"]}),
    )
    .await;
    let account = account["id"].as_i64().unwrap_or_default();
    call(
        &http,
        post.clone(),
        format!("{base}/api/v1/accounts/{account}/live-confirmation"),
        &token,
        json!({"confirm": true}),
    )
    .await;

    let mut request = format!("ws://{addr}/api/v1/ws").into_client_request().unwrap_or_else(|e| panic!("{e}"));
    request.headers_mut().insert(
        "Authorization",
        format!("Bearer {token}").parse().unwrap_or_else(|e: axum::http::header::InvalidHeaderValue| panic!("{e}")),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap_or_else(|e| panic!("{e}"));
    ws.send(Message::text(r#"{"op":"subscribe","channels":["fills"]}"#)).await.unwrap_or_else(|e| panic!("{e}"));

    let mut acks = Vec::with_capacity(orders);
    let mut fills = Vec::with_capacity(orders);
    let url = format!("{base}/api/v1/accounts/{account}/orders");
    // Binance allows 100 orders per 10 s per account: start one every 110 ms.
    let mut pace = tokio::time::interval(Duration::from_millis(110));
    for n in 0..orders {
        pace.tick().await;
        // Buy 0.01 BTC, then sell the 0.00999 the commission left.
        let (side, quantity) = if n % 2 == 0 { ("buy", "0.01") } else { ("sell", "0.00999") };
        let price = if side == "buy" { "50000" } else { "49000" };
        let body = json!({"client_order_id": format!("bench-{n}"), "symbol": "BTCUSDT", "side": side,
                          "type": "limit", "price": price, "quantity": quantity});
        let t = Instant::now();
        let order = call(&http, post.clone(), url.clone(), &token, body).await;
        acks.push(t.elapsed());
        let id = order["id"].as_u64().unwrap_or_default();
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(10), ws.next())
                .await
                .unwrap_or_else(|_| panic!("no fill of order {id} within 10 s"));
            let Some(Ok(Message::Text(text))) = frame else { continue };
            let message: Value = serde_json::from_str(&text).unwrap_or_default();
            if message["type"] == "fill" && message["data"]["order_id"].as_u64() == Some(id) {
                fills.push(t.elapsed());
                break;
            }
        }
    }
    let mut passes = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        call(&http, post.clone(), format!("{base}/api/v1/accounts/{account}/reconcile"), &token, json!({})).await;
        passes.push(t.elapsed());
    }
    println!("== live account on a local fake Binance, SQLite (synchronous=FULL), orders one at a time");
    report("ack", acks);
    report("filled", fills);
    println!("   (reconcile with {orders} orders and their fills in the venue's history)");
    report("reconcile", passes);

    serving.abort();
    started.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    let orders = std::env::var("BENCH_LIVE_ORDERS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap_or_else(|e| panic!("{e}"));
    runtime.block_on(run(orders));
}
