//! The server started as `serve` starts it, spoken to over real HTTP, on
//! SQLite and on PostgreSQL.

use std::time::Duration;

use server::serve::{self, Started};
use store::testing::TestDatabase;

struct TestServer {
    base: String,
    started: Started,
    server: tokio::task::JoinHandle<()>,
    db: TestDatabase,
}

async fn start(backend: &str) -> TestServer {
    start_with(backend, &[]).await
}

async fn start_with(backend: &str, extra: &[(&str, &str)]) -> TestServer {
    let db = TestDatabase::create(backend, "serve").await;
    let env = vec![
        ("TRADECORE_DATABASE__URL".to_string(), db.url.clone()),
        ("TRADECORE_SERVER__LISTEN".to_string(), "127.0.0.1:0".to_string()),
        ("TRADECORE_PAPER__TICKS_PER_SECOND".to_string(), "20".to_string()),
        ("TRADECORE_PAPER__SEED".to_string(), "7".to_string()),
    ];
    let env: Vec<(String, String)> =
        env.into_iter().chain(extra.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string()))).collect();
    let config = server::config::load(None, &env).unwrap();
    let started = serve::start(config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = server::app::app(started.state.clone());
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router.into_make_service_with_connect_info::<std::net::SocketAddr>()).await;
    });
    TestServer { base, started, server, db }
}

impl TestServer {
    async fn stop(self) {
        self.server.abort();
        self.started.stop().await;
        self.db.remove().await;
    }
}

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name("sqlite").await; } )* }
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name("postgres").await; } )* }
    };
}

both_backends!(
    health_readiness_and_status,
    unknown_routes_are_problem_json,
    the_paper_market_runs,
    market_data_endpoints,
    websocket_streams_quotes,
    rate_limits_and_body_size,
);

async fn health_readiness_and_status(backend: &str) {
    let s = start(backend).await;
    let client = reqwest::Client::new();
    let health = client.get(format!("{}/healthz", s.base)).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready: serde_json::Value = client.get(format!("{}/readyz", s.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["database"], backend);
    let status: serde_json::Value =
        client.get(format!("{}/api/v1/status", s.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(status["instruments"].as_array().unwrap().len(), 5);
    s.stop().await;
}

async fn unknown_routes_are_problem_json(backend: &str) {
    let s = start(backend).await;
    let response = reqwest::get(format!("{}/api/v1/nothing-here", s.base)).await.unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "not_found");
    s.stop().await;
}

async fn the_paper_market_runs(backend: &str) {
    let s = start(backend).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let quotes = s.started.state.runtime.latest_quotes();
    assert_eq!(quotes.len(), 5, "every paper instrument is quoted");
    for q in &quotes {
        assert!(q.bid.is_positive() && q.bid < q.ask, "{q:?}");
    }
    s.stop().await;
}

async fn market_data_endpoints(backend: &str) {
    let s = start(backend).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let client = reqwest::Client::new();
    let instruments: serde_json::Value =
        client.get(format!("{}/api/v1/instruments", s.base)).send().await.unwrap().json().await.unwrap();
    let symbols: Vec<&str> = instruments.as_array().unwrap().iter().map(|i| i["symbol"].as_str().unwrap()).collect();
    assert_eq!(symbols, ["BTC-USDT", "ETH-USDT", "SOL-USDT", "AAPL", "SPY"]);
    assert_eq!(instruments[0]["tick_size"], "0.01", "exact decimals are strings");
    let quotes: serde_json::Value =
        client.get(format!("{}/api/v1/quotes", s.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(quotes.as_array().unwrap().len(), 5);
    assert!(quotes[0]["bid"].as_str().is_some());
    let ok = client
        .get(format!("{}/api/v1/instruments/btc-usdt/candles?interval=5m&limit=10", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert!(ok.json::<serde_json::Value>().await.unwrap().is_array());
    let cases = [
        ("unknown symbol", "/api/v1/instruments/DOGE/candles", 404, None),
        ("bad interval", "/api/v1/instruments/SPY/candles?interval=7m", 422, Some("interval")),
        ("zero limit", "/api/v1/instruments/SPY/candles?limit=0", 422, Some("limit")),
        ("limit not a number", "/api/v1/instruments/SPY/candles?limit=lots", 400, None),
        ("bad time", "/api/v1/instruments/SPY/candles?from=yesterday", 422, Some("from")),
        ("unknown parameter", "/api/v1/instruments/SPY/candles?colour=red", 400, Some("colour")),
    ];
    for (name, path, status, field) in cases {
        let response = client.get(format!("{}{path}", s.base)).send().await.unwrap();
        assert_eq!(response.status(), status, "{name}");
        assert_eq!(response.headers()["content-type"], "application/problem+json", "{name}");
        let body: serde_json::Value = response.json().await.unwrap();
        if let Some(field) = field {
            assert_eq!(body["field"], field, "{name}: {body}");
        }
    }
    s.stop().await;
}

async fn websocket_streams_quotes(backend: &str) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let s = start(backend).await;
    let url = format!("{}/api/v1/ws", s.base.replace("http://", "ws://"));
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let next_json = async |ws: &mut tokio_tungstenite::WebSocketStream<_>| -> serde_json::Value {
        loop {
            let message = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap().unwrap().unwrap();
            if let Message::Text(text) = message {
                return serde_json::from_str(text.as_str()).unwrap();
            }
        }
    };
    ws.send(Message::text(r#"{"op":"ping"}"#)).await.unwrap();
    assert_eq!(next_json(&mut ws).await["type"], "pong");
    ws.send(Message::text(r#"{"op":"subscribe","channels":["quotes:DOGE-USD"]}"#)).await.unwrap();
    let error = next_json(&mut ws).await;
    assert_eq!((error["type"].as_str(), error["code"].as_str()), (Some("error"), Some("unknown_channel")));
    ws.send(Message::text(r#"{"op":"subscribe","chanels":[]}"#)).await.unwrap();
    assert_eq!(next_json(&mut ws).await["code"], "bad_message");
    ws.send(Message::text(r#"{"op":"subscribe","channels":["quotes:BTC-USDT"]}"#)).await.unwrap();
    assert_eq!(next_json(&mut ws).await["type"], "subscribed");
    let mut last_seq = 0;
    for _ in 0..3 {
        let quote = next_json(&mut ws).await;
        assert_eq!(quote["type"], "quote");
        assert_eq!(quote["channel"], "quotes:BTC-USDT");
        assert_eq!(quote["data"]["instrument"], 1);
        let seq = quote["seq"].as_u64().unwrap();
        assert!(seq > last_seq, "sequence numbers increase");
        last_seq = seq;
    }
    ws.close(None).await.unwrap();
    s.stop().await;
}

async fn rate_limits_and_body_size(backend: &str) {
    let s = start_with(
        backend,
        &[("TRADECORE_RATE_LIMIT__PER_IP_PER_MINUTE", "5"), ("TRADECORE_SERVER__MAX_BODY_BYTES", "1024")],
    )
    .await;
    let client = reqwest::Client::new();
    for i in 0..5 {
        let r = client.get(format!("{}/api/v1/quotes", s.base)).send().await.unwrap();
        assert_eq!(r.status(), 200, "request {i} is within the allowance");
    }
    let limited = client.get(format!("{}/api/v1/quotes", s.base)).send().await.unwrap();
    assert_eq!(limited.status(), 429);
    assert!(limited.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(limited.headers()["content-type"], "application/problem+json");
    s.stop().await;

    let s = start_with(backend, &[("TRADECORE_SERVER__MAX_BODY_BYTES", "1024")]).await;
    let big = format!("{{\"username\":\"{}\",\"password\":\"x\"}}", "a".repeat(4096));
    let r = client
        .post(format!("{}/api/v1/auth/login", s.base))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    s.stop().await;
}
