//! The server started as `serve` starts it, spoken to over real HTTP, on
//! SQLite and on PostgreSQL.

mod common;

use std::time::Duration;

use server::serve::Started;
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
    let (base, started, server) = common::listen(server::config::load(None, &env).unwrap()).await;
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
    // Bad names and channels that need a sign-in are refused; the connection stays open.
    for (channel, code) in [
        ("candles:BTC-USDT:2m", "unknown_channel"),
        ("candles:DOGE-USD:1m", "unknown_channel"),
        ("candles:BTC-USDT", "unknown_channel"),
        ("trades:BTC-USDT", "unknown_channel"),
        ("orders", "unauthorized"),
        ("fills", "unauthorized"),
        ("positions", "unauthorized"),
        ("balances", "unauthorized"),
        ("bots", "unauthorized"),
    ] {
        // With a good channel alongside: a refused subscribe subscribes to nothing.
        let subscribe = serde_json::json!({"op": "subscribe", "channels": ["quotes:SPY", channel]});
        ws.send(Message::text(subscribe.to_string())).await.unwrap();
        let error = next_json(&mut ws).await;
        assert_eq!((error["type"].as_str(), error["code"].as_str()), (Some("error"), Some(code)), "{channel}: {error}");
        assert_eq!(error["channel"], channel);
    }
    ws.send(Message::text(r#"{"op":"ping"}"#)).await.unwrap();
    assert_eq!(next_json(&mut ws).await["type"], "pong", "still open, and no SPY quotes came");

    // A closed candle, as the feed announces it once stored.
    ws.send(Message::text(r#"{"op":"subscribe","channels":["candles:btc-usdt:1m"]}"#)).await.unwrap();
    assert_eq!(next_json(&mut ws).await["channels"], serde_json::json!(["candles:btc-usdt:1m"]));
    let candle = sim::candles::Candle {
        instrument: model::InstrumentId(1),
        interval: sim::candles::Interval::M1,
        start: model::Timestamp::from_nanos(60_000_000_000),
        open: model::Price::from_int(100),
        high: model::Price::from_int(102),
        low: model::Price::from_int(99),
        close: model::Price::from_int(101),
        volume: model::Quantity::from_int(7),
        trades: 3,
    };
    s.started.state.runtime.publish_candle(candle);
    // Another interval of the instrument is not this channel.
    s.started.state.runtime.publish_candle(sim::candles::Candle { interval: sim::candles::Interval::M5, ..candle });
    loop {
        let message = next_json(&mut ws).await;
        assert_eq!(
            (message["type"].as_str(), message["channel"].as_str()),
            (Some("candle"), Some("candles:btc-usdt:1m"))
        );
        let got: sim::candles::Candle = serde_json::from_value(message["data"].clone()).unwrap();
        assert_eq!(got.interval, sim::candles::Interval::M1);
        // The feed may close a real candle meanwhile.
        if got.start == candle.start {
            assert_eq!(got, candle);
            break;
        }
    }
    ws.send(Message::text(r#"{"op":"unsubscribe","channels":["candles:btc-usdt:1m"]}"#)).await.unwrap();
    while next_json(&mut ws).await["type"] != "unsubscribed" {}
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
    // Following another instrument and dropping the first: only the second's quotes come.
    ws.send(Message::text(r#"{"op":"subscribe","channels":["quotes:spy"]}"#)).await.unwrap();
    ws.send(Message::text(r#"{"op":"unsubscribe","channels":["quotes:BTC-USDT"]}"#)).await.unwrap();
    while next_json(&mut ws).await["type"] != "unsubscribed" {}
    for _ in 0..5 {
        let quote = next_json(&mut ws).await;
        assert_eq!((quote["type"].as_str(), quote["channel"].as_str()), (Some("quote"), Some("quotes:spy")), "{quote}");
    }
    // And following the first again brings it back.
    ws.send(Message::text(r#"{"op":"subscribe","channels":["quotes:BTC-USDT"]}"#)).await.unwrap();
    let mut seen_btc = false;
    for _ in 0..50 {
        let message = next_json(&mut ws).await;
        if message["channel"] == "quotes:BTC-USDT" {
            seen_btc = true;
            break;
        }
    }
    assert!(seen_btc, "quotes of a followed-again instrument arrive");
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

/// A reader that stops reading is left behind with conflated market data
/// (or dropped) while another reader keeps getting every latest value at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_websocket_reader_does_not_hold_back_others() {
    use futures_util::{SinkExt, StreamExt};
    use sim::candles::{Candle, Interval};
    use tokio_tungstenite::tungstenite::Message;
    type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;
    // Rounds of one quote per instrument and one candle per channel (25
    // values, about 250 bytes each): enough to fill the slow socket's
    // buffers twice over, the largest send buffer the kernel allows included.
    let send_buffer_max = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|s| s.split_whitespace().nth(2)?.parse::<i64>().ok())
        .unwrap_or(4 << 20);
    let rounds = (2 * send_buffer_max / (25 * 250)).max(1_000);
    let s = start("sqlite").await;
    let runtime = &s.started.state.runtime;
    let url = format!("{}/api/v1/ws", s.base.replace("http://", "ws://"));
    let instruments: Vec<(model::InstrumentId, String)> =
        runtime.instruments().iter().map(|i| (i.id, i.symbol.clone())).collect();
    let mut channels: Vec<String> = instruments.iter().map(|(_, symbol)| format!("quotes:{symbol}")).collect();
    for (_, symbol) in &instruments {
        channels.extend(Interval::ALL.iter().map(|interval| format!("candles:{symbol}:{interval}")));
    }
    let subscribe = Message::text(serde_json::json!({"op": "subscribe", "channels": channels}).to_string());
    let next = async |ws: &mut Ws| -> Option<serde_json::Value> {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("a message in time") {
            Some(Ok(Message::Text(text))) => Some(serde_json::from_str(text.as_str()).unwrap()),
            Some(Ok(_)) => Some(serde_json::Value::Null),
            Some(Err(_)) | None => None,
        }
    };

    // The slow reader: a tiny receive buffer, and no reading once subscribed.
    let addr: std::net::SocketAddr = s.base.trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let (mut slow, _) =
        tokio_tungstenite::client_async(url.as_str(), tokio_tungstenite::MaybeTlsStream::Plain(stream)).await.unwrap();
    slow.send(subscribe.clone()).await.unwrap();
    let (mut fast, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    fast.send(subscribe).await.unwrap();
    for ws in [&mut slow, &mut fast] {
        while next(ws).await.expect("open")["type"] != "subscribed" {}
    }

    let quote = |instrument: model::InstrumentId, ts: i64, bid: i64| model::Quote {
        instrument,
        ts: model::Timestamp::from_nanos(ts),
        bid: model::Price::from_int(bid),
        bid_size: model::Quantity::from_int(1),
        ask: model::Price::from_int(bid + 1),
        ask_size: model::Quantity::from_int(1),
    };
    let last_symbol = &instruments.last().expect("paper instruments").1;
    let last_channel = format!("candles:{last_symbol}:1d");
    // Candles of a round start on its day; the last one sent of a round is this channel's.
    let day = |round: i64| model::Timestamp::from_nanos(round * model::time::NANOS_PER_DAY);
    let ends_round = |message: &serde_json::Value, round: i64| {
        message["channel"] == last_channel.as_str()
            && serde_json::from_value::<model::Timestamp>(message["data"]["start"].clone()).ok() == Some(day(round))
    };
    let mut published = 0;
    for round in 1..=rounds {
        for (id, _) in &instruments {
            // Stamped in the past: the feed's own quotes are newer.
            runtime.publish_quote(quote(*id, round, 100 + round)).await;
            for interval in Interval::ALL {
                let price = model::Price::from_int(100 + round);
                runtime.publish_candle(Candle {
                    instrument: *id,
                    interval,
                    start: day(round),
                    open: price,
                    high: price,
                    low: price,
                    close: price,
                    volume: model::Quantity::from_int(1),
                    trades: 1,
                });
            }
            published += 1 + Interval::ALL.len();
        }
        // The fast reader gets each round at once, whatever the slow one
        // does (it stops taking data after a few hundred rounds).
        while !ends_round(&next(&mut fast).await.expect("the fast reader stays connected"), round) {}
    }
    // The slow one got no backlog: the latest values after what its buffers
    // held, or it was dropped.
    let mut count = 0;
    while let Some(message) = next(&mut slow).await {
        count += usize::from(message["type"] == "quote" || message["type"] == "candle");
        if ends_round(&message, rounds) {
            break;
        }
    }
    assert!(count < published, "{count} values sent for {published} published");
    s.stop().await;
}
