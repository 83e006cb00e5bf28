//! The Binance user data stream (WebSocket API) and market streams against
//! fake Binance WebSocket servers speaking real WebSocket over loopback
//! (see `fake_binance_ws`).

use venue_fakes::binance_ws as fake_binance_ws;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use fake_binance_ws::{Controls as _, FakeKey, FakeMarketStreams, FakeWsApi, eventually};
use model::{Money, OrderStatus, Price, Quantity, Side};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use venues::binance::{
    BinanceError, BinanceOrderStatus, ConnectionEvent, Credentials, DisconnectReason, ErrorCode, ExecutionType,
    ExecutionUpdate, KlineInterval, MarketChannel, MarketEvent, MarketStream, MarketStreamConfig, ReconnectPolicy,
    StreamError, UserStream, UserStreamConfig, UserStreamEvent,
};

const HMAC_KEY: &str = "hmacApiKey0001";
const HMAC_SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";
const ED_KEY: &str = "edApiKey0002";
const ED_SEED: [u8; 32] = [42; 32];
const WAIT: Duration = Duration::from_secs(5);

fn fast_reconnect() -> ReconnectPolicy {
    ReconnectPolicy { initial: Duration::from_millis(20), max: Duration::from_millis(200), jitter: false }
}

async fn fake_api() -> FakeWsApi {
    let vk = ed25519_dalek::SigningKey::from_bytes(&ED_SEED).verifying_key();
    FakeWsApi::start(vec![
        (HMAC_KEY.to_string(), FakeKey::Hmac(HMAC_SECRET.to_string())),
        (ED_KEY.to_string(), FakeKey::Ed25519(vk)),
    ])
    .await
}

fn user_config(fake: &FakeWsApi) -> UserStreamConfig {
    UserStreamConfig {
        url: Some(fake.url.clone()),
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(3),
        ping_interval: Some(Duration::from_millis(500)),
        reconnect: fast_reconnect(),
        ..UserStreamConfig::default()
    }
}

fn hmac_creds() -> Arc<Credentials> {
    Arc::new(Credentials::hmac(HMAC_KEY, HMAC_SECRET).unwrap())
}

async fn next<T: std::fmt::Debug>(rx: &mut mpsc::Receiver<T>) -> T {
    tokio::time::timeout(WAIT, rx.recv()).await.expect("no event in time").expect("stream ended")
}

/// Skips events until one matches.
async fn until<T: std::fmt::Debug>(rx: &mut mpsc::Receiver<T>, mut pred: impl FnMut(&T) -> bool) -> T {
    loop {
        let e = next(rx).await;
        if pred(&e) {
            return e;
        }
    }
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

/// An `executionReport` in the documented shape.
#[allow(clippy::too_many_arguments)]
fn exec_report(
    order_id: u64,
    c: &str,
    orig: &str,
    x: &str,
    status: &str,
    last: (&str, &str),
    cum: (&str, &str),
    commission: (&str, Option<&str>),
    trade_id: i64,
) -> Value {
    json!({
        "e": "executionReport", "E": 1_700_000_000_123_i64, "s": "BTCUSDT", "c": c, "S": "BUY", "o": "LIMIT",
        "f": "GTC", "q": "1.00000000", "p": "25001.25000000", "P": "0.00000000", "F": "0.00000000", "g": -1,
        "C": orig, "x": x, "X": status, "r": if x == "REJECTED" { "INSUFFICIENT_BALANCES" } else { "NONE" },
        "i": order_id, "l": last.0, "z": cum.0, "L": last.1, "n": commission.0, "N": commission.1,
        "T": 1_700_000_000_120_i64, "t": trade_id, "I": 8_641_984, "w": status == "NEW" || status == "PARTIALLY_FILLED",
        "m": false, "M": false, "O": 1_700_000_000_000_i64, "Z": cum.1, "Y": "0.00000000", "Q": "0.00000000",
        "W": 1_700_000_000_001_i64, "V": "EXPIRE_MAKER"
    })
}

async fn next_execution(rx: &mut mpsc::Receiver<UserStreamEvent>) -> ExecutionUpdate {
    match next(rx).await {
        UserStreamEvent::Execution(x) => *x,
        other => panic!("expected an execution, got {other:?}"),
    }
}

#[tokio::test]
async fn user_stream_subscribes_signed_and_parses_order_lifecycle_and_balances() {
    let fake = fake_api().await;
    let (handle, mut rx) = UserStream::connect(user_config(&fake), hmac_creds()).await.unwrap();
    assert!(matches!(next(&mut rx).await, UserStreamEvent::Connection(ConnectionEvent::Connected { .. })));

    // What the fake saw: time sync, then one signed subscribe.
    let log = fake.log();
    assert_eq!(
        log.iter().map(|l| l.method.as_str()).collect::<Vec<_>>(),
        ["time", "userDataStream.subscribe.signature"]
    );
    let params = &log[1].params;
    assert_eq!(params["apiKey"], HMAC_KEY);
    assert_eq!(params["recvWindow"], 5000);
    assert!(params["timestamp"].is_i64());
    assert_eq!(params["signature"].as_str().unwrap().len(), 64);

    // NEW → partial fill → fill.
    fake.push_event(exec_report(101, "bot-1", "", "NEW", "NEW", ("0", "0"), ("0", "0"), ("0", None), -1));
    fake.push_event(exec_report(
        101,
        "bot-1",
        "",
        "TRADE",
        "PARTIALLY_FILLED",
        ("0.40000000", "25000.50000000"),
        ("0.40000000", "10000.20000000"),
        ("0.00001234", Some("BNB")),
        9001,
    ));
    fake.push_event(exec_report(
        101,
        "bot-1",
        "",
        "TRADE",
        "FILLED",
        ("0.60000000", "25001.25000000"),
        ("1.00000000", "25000.95000000"),
        ("0.00060000", Some("BTC")),
        9002,
    ));
    let new = next_execution(&mut rx).await;
    assert_eq!((new.order_id, new.execution_type, new.status), (101, ExecutionType::New, BinanceOrderStatus::New));
    assert_eq!(new.model_status(), Some(OrderStatus::Accepted));
    assert_eq!(new.order_client_id(), "bot-1");
    assert_eq!((new.side, new.price, new.quantity), (Side::Buy, p("25001.25"), q("1")));
    assert_eq!(new.trade_id, None);
    assert!(new.fill().is_none());

    let partial = next_execution(&mut rx).await;
    assert_eq!(partial.model_status(), Some(OrderStatus::PartiallyFilled));
    let fill = partial.fill().unwrap();
    assert_eq!((fill.trade_id, fill.price, fill.quantity), (Some(9001), p("25000.5"), q("0.4")));
    assert_eq!((fill.commission, fill.commission_asset.as_deref()), (m("0.00001234"), Some("BNB")));
    assert_eq!(partial.cumulative_quantity, q("0.4"));

    let filled = next_execution(&mut rx).await;
    assert_eq!(filled.model_status(), Some(OrderStatus::Filled));
    assert_eq!(filled.fill().unwrap().price, p("25001.25"));
    assert_eq!(filled.cumulative_quote_quantity, m("25000.95"));
    assert_eq!(filled.average_price(), Some(p("25000.95")));
    assert_eq!(filled.transaction_time.as_nanos(), 1_700_000_000_120_000_000);

    // Cancel: `c` is the cancel request's id, `C` the order's.
    fake.push_event(exec_report(
        102,
        "cancel-req-9",
        "bot-2",
        "CANCELED",
        "CANCELED",
        ("0", "0"),
        ("0", "0"),
        ("0", None),
        -1,
    ));
    let cancelled = next_execution(&mut rx).await;
    assert_eq!(cancelled.model_status(), Some(OrderStatus::Cancelled));
    assert_eq!(cancelled.client_order_id, "cancel-req-9");
    assert_eq!(cancelled.orig_client_order_id.as_deref(), Some("bot-2"));
    assert_eq!(cancelled.order_client_id(), "bot-2");

    fake.push_event(exec_report(103, "bot-3", "", "REJECTED", "REJECTED", ("0", "0"), ("0", "0"), ("0", None), -1));
    let rejected = next_execution(&mut rx).await;
    assert_eq!(
        (rejected.execution_type, rejected.model_status()),
        (ExecutionType::Rejected, Some(OrderStatus::Rejected))
    );
    assert_eq!(rejected.reject_reason, "INSUFFICIENT_BALANCES");

    fake.push_event(exec_report(
        104,
        "bot-4",
        "",
        "EXPIRED",
        "EXPIRED",
        ("0", "0"),
        ("0.1", "2500.1"),
        ("0", None),
        -1,
    ));
    let expired = next_execution(&mut rx).await;
    assert_eq!((expired.execution_type, expired.model_status()), (ExecutionType::Expired, Some(OrderStatus::Expired)));
    assert_eq!(expired.cumulative_quantity, q("0.1"));

    // Balances.
    fake.push_event(json!({"e": "outboundAccountPosition", "E": 1_564_034_571_105_i64, "u": 1_564_034_571_073_i64,
        "B": [{"a": "BTC", "f": "1.00000001", "l": "0.00000000"}, {"a": "USDT", "f": "74999.05000000", "l": "100.5"}]}));
    let UserStreamEvent::AccountPosition(pos) = next(&mut rx).await else { panic!("expected account position") };
    assert_eq!(pos.balances.len(), 2);
    assert_eq!((pos.balances[0].asset.as_str(), pos.balances[0].free), ("BTC", m("1.00000001")));
    assert_eq!(pos.balances[1].locked, m("100.5"));
    fake.push_event(json!({"e": "balanceUpdate", "E": 1_573_200_697_110_i64, "a": "BTC", "d": "-0.00000001",
        "T": 1_573_200_697_068_i64}));
    let UserStreamEvent::BalanceDelta(delta) = next(&mut rx).await else { panic!("expected balance delta") };
    assert_eq!((delta.asset.as_str(), delta.delta), ("BTC", m("-0.00000001")));

    assert_eq!(handle.stats().malformed, 0);
    handle.shutdown().await;
    assert!(eventually(WAIT, || fake.open_connections() == 0).await);
}

#[tokio::test]
async fn user_stream_with_an_ed25519_key() {
    let fake = fake_api().await;
    let seed: String = ED_SEED.iter().map(|b| format!("{b:02x}")).collect();
    let creds = Arc::new(Credentials::ed25519_seed(ED_KEY, &seed).unwrap());
    let (_handle, mut rx) = UserStream::connect(user_config(&fake), creds).await.unwrap();
    assert!(matches!(next(&mut rx).await, UserStreamEvent::Connection(ConnectionEvent::Connected { .. })));
    assert_eq!(fake.subscriptions()[0].params["apiKey"], ED_KEY);
    fake.push_event(exec_report(7, "ed-1", "", "NEW", "NEW", ("0", "0"), ("0", "0"), ("0", None), -1));
    assert_eq!(next_execution(&mut rx).await.order_id, 7);
}

#[tokio::test]
async fn bad_signature_and_unknown_key_are_refused_with_binance_codes() {
    let fake = fake_api().await;
    let wrong = Arc::new(Credentials::hmac(HMAC_KEY, "not-the-secret").unwrap());
    let err = UserStream::connect(user_config(&fake), wrong).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::InvalidSignature), "{err}");
    assert!(
        matches!(&err, StreamError::Binance(BinanceError::Api { status: 400, msg, .. }) if msg == "Signature for this request is not valid."),
        "{err:?}"
    );
    assert!(!err.to_string().contains("not-the-secret"));

    let unknown = Arc::new(Credentials::hmac("someoneElse", HMAC_SECRET).unwrap());
    let err = UserStream::connect(user_config(&fake), unknown).await.unwrap_err();
    assert!(matches!(
        &err,
        StreamError::Binance(BinanceError::Api { status: 401, code: ErrorCode::RejectedApiKey, .. })
    ));
    assert_eq!(fake.log().iter().filter_map(|l| l.error).collect::<Vec<_>>(), [-1022, -2015]);
    assert!(fake.subscriptions().is_empty());
}

#[tokio::test]
async fn timestamp_is_checked_and_time_sync_fixes_skew() {
    let fake = fake_api().await;
    fake.skew_clock(30_000);
    let no_sync = UserStreamConfig { sync_time: false, ..user_config(&fake) };
    let err = UserStream::connect(no_sync, hmac_creds()).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::InvalidTimestamp), "{err}");
    let (_handle, mut rx) = UserStream::connect(user_config(&fake), hmac_creds()).await.unwrap();
    assert!(matches!(next(&mut rx).await, UserStreamEvent::Connection(ConnectionEvent::Connected { .. })));
}

#[tokio::test]
async fn dropped_connection_reconnects_resubscribes_and_reports_the_gap() {
    let fake = fake_api().await;
    let (handle, mut rx) = UserStream::connect(user_config(&fake), hmac_creds()).await.unwrap();
    next(&mut rx).await;
    fake.push_event(exec_report(1, "a", "", "NEW", "NEW", ("0", "0"), ("0", "0"), ("0", None), -1));
    next_execution(&mut rx).await;

    fake.drop_connections();
    let UserStreamEvent::Connection(ConnectionEvent::Disconnected { reason }) = next(&mut rx).await else {
        panic!("expected Disconnected")
    };
    assert!(matches!(reason, DisconnectReason::Transport(_)), "{reason:?}");
    let UserStreamEvent::Connection(resub) = next(&mut rx).await else { panic!("expected Resubscribed") };
    assert!(resub.requires_reconcile(), "{resub:?}");
    let ConnectionEvent::Resubscribed { gap } = resub else { panic!() };
    assert_eq!(gap.reason, reason);
    assert!(gap.resubscribed_at >= gap.disconnected_at);
    assert_eq!(gap.attempts, 1);

    // A second, freshly signed subscription on a new connection.
    let subs = fake.subscriptions();
    assert_eq!(subs.len(), 2);
    assert_eq!(subs[1].connection, 2);
    assert_ne!(subs[0].params["signature"], subs[1].params["signature"]);
    fake.push_event(exec_report(2, "b", "", "NEW", "NEW", ("0", "0"), ("0", "0"), ("0", None), -1));
    assert_eq!(next_execution(&mut rx).await.order_id, 2);
    assert_eq!(handle.stats().reconnects, 1);
}

#[tokio::test]
async fn event_stream_terminated_leads_to_a_new_subscription() {
    let fake = fake_api().await;
    let (_handle, mut rx) = UserStream::connect(user_config(&fake), hmac_creds()).await.unwrap();
    next(&mut rx).await;
    fake.terminate_subscriptions();
    assert_eq!(
        next(&mut rx).await,
        UserStreamEvent::Connection(ConnectionEvent::Disconnected { reason: DisconnectReason::StreamTerminated })
    );
    let e = next(&mut rx).await;
    assert!(matches!(&e, UserStreamEvent::Connection(c) if c.requires_reconcile()), "{e:?}");
    assert_eq!(fake.subscriptions().len(), 2);
}

#[tokio::test]
async fn silent_user_stream_is_detected_and_replaced() {
    let fake = fake_api().await;
    let config = UserStreamConfig {
        idle_timeout: Duration::from_millis(600),
        ping_interval: Some(Duration::from_millis(100)),
        ..user_config(&fake)
    };
    let (_handle, mut rx) = UserStream::connect(config, hmac_creds()).await.unwrap();
    next(&mut rx).await;
    // Our pings keep a quiet but healthy connection alive.
    tokio::time::sleep(Duration::from_millis(700)).await;
    fake.go_silent();
    let e = next(&mut rx).await;
    assert!(
        matches!(
            &e,
            UserStreamEvent::Connection(ConnectionEvent::Disconnected { reason: DisconnectReason::Silent { .. } })
        ),
        "{e:?}"
    );
    let e = next(&mut rx).await;
    assert!(matches!(&e, UserStreamEvent::Connection(ConnectionEvent::Resubscribed { .. })), "{e:?}");
    assert_eq!(fake.connections(), 2);
}

#[tokio::test]
async fn malformed_user_frames_are_skipped_and_counted() {
    let fake = fake_api().await;
    let (handle, mut rx) = UserStream::connect(user_config(&fake), hmac_creds()).await.unwrap();
    next(&mut rx).await;
    fake.send_raw("not json at all");
    fake.send_raw(r#"{"subscriptionId":0,"event":{"e":"executionReport","E":1}}"#);
    fake.send_raw(r#"{"subscriptionId":0,"event":{"e":"balanceUpdate","E":1,"a":"BTC","d":12.5,"T":1}}"#);
    fake.push_event(exec_report(5, "ok", "", "NEW", "NEW", ("0", "0"), ("0", "0"), ("0", None), -1));
    assert_eq!(next_execution(&mut rx).await.order_id, 5);
    assert_eq!(handle.stats().malformed, 3);
}

#[tokio::test]
async fn user_stream_answers_server_pings() {
    let fake = fake_api().await;
    let (handle, mut rx) = UserStream::connect(user_config(&fake), hmac_creds()).await.unwrap();
    next(&mut rx).await;
    fake.ping(b"ws-api-ping");
    assert!(eventually(WAIT, || fake.pongs().contains(&(1, b"ws-api-ping".to_vec()))).await);
    assert!(handle.stats().pings_answered >= 1);
}

// ---------------------------------------------------------------- market

fn market_config(fake: &FakeMarketStreams) -> MarketStreamConfig {
    MarketStreamConfig {
        url: Some(fake.url.clone()),
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(3),
        ping_interval: Some(Duration::from_millis(500)),
        reconnect: fast_reconnect(),
        ..MarketStreamConfig::default()
    }
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| (*s).to_string()).collect()
}

#[tokio::test]
async fn market_streams_deliver_trades_book_tickers_and_klines() {
    let fake = FakeMarketStreams::start().await;
    let channels = MarketChannel::for_symbols(&["BTCUSDT", "ethusdt"], &[KlineInterval::M1]);
    let (handle, mut rx) = MarketStream::connect(market_config(&fake), channels).await.unwrap();
    assert!(matches!(next(&mut rx).await, MarketEvent::Connection(ConnectionEvent::Connected { .. })));
    let expected = names(&[
        "btcusdt@trade",
        "btcusdt@bookTicker",
        "btcusdt@kline_1m",
        "ethusdt@trade",
        "ethusdt@bookTicker",
        "ethusdt@kline_1m",
    ]);
    assert_eq!(fake.streams_of(1), expected);
    assert!(fake.path_of(1).starts_with("/stream?streams="));

    fake.publish("bnbusdt@trade", json!({"e": "trade"})); // not subscribed: never sent
    fake.publish(
        "btcusdt@trade",
        json!({"e": "trade", "E": 1_672_515_782_136_i64, "s": "BTCUSDT", "t": 12345,
        "p": "43000.01000000", "q": "0.00120000", "T": 1_672_515_782_134_i64, "m": false, "M": true}),
    );
    let MarketEvent::Trade(t) = next(&mut rx).await else { panic!("expected a trade") };
    assert_eq!((t.symbol.as_str(), t.trade_id, t.price, t.quantity), ("BTCUSDT", 12345, p("43000.01"), q("0.0012")));
    assert_eq!(t.aggressor_side(), Side::Buy);
    assert_eq!(t.trade_time.as_nanos(), 1_672_515_782_134_000_000);

    fake.publish(
        "ethusdt@bookTicker",
        json!({"u": 400_900_217, "s": "ETHUSDT", "b": "2250.35190000",
        "B": "31.21000000", "a": "2250.36520000", "A": "40.66000000"}),
    );
    let MarketEvent::BookTicker(b) = next(&mut rx).await else { panic!("expected a book ticker") };
    assert_eq!(
        (b.bid_price, b.bid_quantity, b.ask_price, b.ask_quantity),
        (p("2250.3519"), q("31.21"), p("2250.3652"), q("40.66"))
    );

    for closed in [false, true] {
        fake.publish("btcusdt@kline_1m", json!({"e": "kline", "E": 1_672_515_782_136_i64, "s": "BTCUSDT", "k": {
            "t": 1_672_515_720_000_i64, "T": 1_672_515_779_999_i64, "s": "BTCUSDT", "i": "1m", "f": 100, "L": 200,
            "o": "43000.00000000", "c": "43010.50000000", "h": "43020.99000000", "l": "42990.01000000",
            "v": "12000000000.5", "n": 101, "x": closed, "q": "516126000.12345678", "V": "6.1", "Q": "262264.05", "B": "0"}}));
        let MarketEvent::Kline(k) = next(&mut rx).await else { panic!("expected a kline") };
        assert_eq!(k.closed, closed);
        assert_eq!(
            (k.interval, k.open, k.high, k.low, k.close),
            (KlineInterval::M1, p("43000"), p("43020.99"), p("42990.01"), p("43010.5"))
        );
        assert_eq!((k.volume, k.quote_volume, k.trades), (m("12000000000.5"), m("516126000.12345678"), 101));
    }
    assert_eq!(handle.stats().malformed, 0);
    handle.shutdown().await;
    assert!(eventually(WAIT, || fake.open_connections() == 0).await);
}

#[tokio::test]
async fn market_stream_answers_pings_with_the_payload() {
    let fake = FakeMarketStreams::start().await;
    let (handle, mut rx) =
        MarketStream::connect(market_config(&fake), [MarketChannel::trades("BTCUSDT")]).await.unwrap();
    next(&mut rx).await;
    fake.ping(b"20s-heartbeat");
    assert!(eventually(WAIT, || fake.pongs().contains(&(1, b"20s-heartbeat".to_vec()))).await);
    assert!(handle.stats().pings_answered >= 1);
}

#[tokio::test]
async fn silent_market_connection_is_detected_and_replaced_with_the_same_streams() {
    let fake = FakeMarketStreams::start().await;
    let config = MarketStreamConfig {
        idle_timeout: Duration::from_millis(600),
        ping_interval: Some(Duration::from_millis(100)),
        ..market_config(&fake)
    };
    let channels = MarketChannel::for_symbols(&["BTCUSDT"], &[KlineInterval::H1]);
    let (_handle, mut rx) = MarketStream::connect(config, channels).await.unwrap();
    next(&mut rx).await;
    tokio::time::sleep(Duration::from_millis(700)).await; // healthy: pings answered
    assert_eq!(fake.connections(), 1);
    fake.go_silent();
    let e = next(&mut rx).await;
    assert!(
        matches!(
            &e,
            MarketEvent::Connection(ConnectionEvent::Disconnected { reason: DisconnectReason::Silent { .. } })
        ),
        "{e:?}"
    );
    assert!(matches!(next(&mut rx).await, MarketEvent::Connection(ConnectionEvent::Resubscribed { .. })));
    assert_eq!(fake.streams_of(2), fake.streams_of(1));
    assert_eq!(fake.streams_of(2), names(&["btcusdt@trade", "btcusdt@bookTicker", "btcusdt@kline_1h"]));
}

#[tokio::test]
async fn reconnect_resubscribes_the_same_set_including_live_changes() {
    let fake = FakeMarketStreams::start().await;
    let (handle, mut rx) =
        MarketStream::connect(market_config(&fake), [MarketChannel::trades("BTCUSDT")]).await.unwrap();
    next(&mut rx).await;
    handle
        .subscribe([MarketChannel::book_ticker("ETHUSDT"), MarketChannel::klines("BTCUSDT", KlineInterval::M5)])
        .await
        .unwrap();
    handle.unsubscribe([MarketChannel::trades("BTCUSDT")]).await.unwrap();
    let want = names(&["ethusdt@bookTicker", "btcusdt@kline_5m"]);
    assert!(eventually(WAIT, || fake.streams_of(1) == want).await, "{:?}", fake.streams_of(1));
    let methods: Vec<String> = fake.log().iter().map(|l| l.method.clone()).collect();
    assert_eq!(methods, ["SUBSCRIBE", "UNSUBSCRIBE"]);
    assert!(fake.log().iter().all(|l| l.error.is_none()));

    fake.drop_connections();
    let e = until(&mut rx, |e| matches!(e, MarketEvent::Connection(ConnectionEvent::Resubscribed { .. }))).await;
    let MarketEvent::Connection(ConnectionEvent::Resubscribed { gap }) = e else { panic!() };
    assert!(matches!(gap.reason, DisconnectReason::Transport(_)), "{gap:?}");
    assert_eq!(fake.streams_of(2), want);
    fake.publish("ethusdt@bookTicker", json!({"u": 1, "s": "ETHUSDT", "b": "1", "B": "2", "a": "3", "A": "4"}));
    assert!(matches!(next(&mut rx).await, MarketEvent::BookTicker(_)));
    assert_eq!(handle.stats().reconnects, 1);
}

#[tokio::test]
async fn many_streams_go_partly_in_the_url_and_partly_by_subscribe() {
    let fake = FakeMarketStreams::start().await;
    let symbols: Vec<String> = (0..75).map(|i| format!("SYM{i:03}USDT")).collect();
    let refs: Vec<&str> = symbols.iter().map(String::as_str).collect();
    let channels = MarketChannel::for_symbols(&refs, &[]);
    assert_eq!(channels.len(), 150);
    let (_handle, mut rx) = MarketStream::connect(market_config(&fake), channels).await.unwrap();
    next(&mut rx).await;
    assert_eq!(fake.streams_of(1).len(), 150);
    assert_eq!(fake.log().len(), 1); // one SUBSCRIBE for the 50 beyond the URL
    fake.drop_connections();
    until(&mut rx, |e| matches!(e, MarketEvent::Connection(ConnectionEvent::Resubscribed { .. }))).await;
    assert_eq!(fake.streams_of(2), fake.streams_of(1));
}

#[tokio::test]
async fn planned_rotation_before_the_connection_limit() {
    let fake = FakeMarketStreams::start().await;
    let config = MarketStreamConfig { max_connection_age: Duration::from_millis(300), ..market_config(&fake) };
    let (_handle, mut rx) = MarketStream::connect(config, [MarketChannel::trades("BTCUSDT")]).await.unwrap();
    next(&mut rx).await;
    let e = next(&mut rx).await;
    assert!(
        matches!(
            &e,
            MarketEvent::Connection(ConnectionEvent::Disconnected { reason: DisconnectReason::Rotation { .. } })
        ),
        "{e:?}"
    );
    assert!(matches!(next(&mut rx).await, MarketEvent::Connection(ConnectionEvent::Resubscribed { .. })));
    assert!(fake.connections() >= 2);
    assert_eq!(fake.streams_of(2), names(&["btcusdt@trade"]));
}

#[tokio::test]
async fn server_close_frame_is_reported_and_reconnected() {
    let fake = FakeMarketStreams::start().await;
    let (_handle, mut rx) =
        MarketStream::connect(market_config(&fake), [MarketChannel::trades("BTCUSDT")]).await.unwrap();
    next(&mut rx).await;
    fake.close_connections(1001, "going away");
    let e = next(&mut rx).await;
    assert_eq!(
        e,
        MarketEvent::Connection(ConnectionEvent::Disconnected {
            reason: DisconnectReason::ClosedByServer { code: 1001, reason: "going away".into() }
        })
    );
    assert!(matches!(next(&mut rx).await, MarketEvent::Connection(ConnectionEvent::Resubscribed { .. })));
}

#[tokio::test]
async fn malformed_market_frames_are_skipped_and_counted() {
    let fake = FakeMarketStreams::start().await;
    let (handle, mut rx) =
        MarketStream::connect(market_config(&fake), [MarketChannel::trades("BTCUSDT")]).await.unwrap();
    next(&mut rx).await;
    fake.send_raw("nope");
    fake.send_raw(r#"{"stream":"btcusdt@trade","data":{"e":"trade","p":"x"}}"#);
    fake.send_raw(
        r#"{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","t":1,"p":1.5,"q":"1","T":1,"m":true}}"#,
    );
    fake.publish(
        "btcusdt@trade",
        json!({"e": "trade", "E": 1, "s": "BTCUSDT", "t": 2, "p": "1.5", "q": "1", "T": 1, "m": true}),
    );
    let MarketEvent::Trade(t) = next(&mut rx).await else { panic!("expected a trade") };
    assert_eq!((t.trade_id, t.price), (2, p("1.5")));
    assert_eq!(handle.stats().malformed, 3);
}

#[tokio::test]
async fn unreachable_or_misconfigured_streams_fail_fast() {
    // Nothing listens on this port.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let config = MarketStreamConfig { url: Some(format!("ws://{addr}")), ..MarketStreamConfig::default() };
    let err = MarketStream::connect(config, [MarketChannel::trades("BTCUSDT")]).await.unwrap_err();
    assert!(matches!(err, StreamError::Connect { .. }), "{err:?}");

    // wss:// goes through rustls: a peer that is not TLS is a connect
    // error (no panic for want of a crypto provider).
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = tcp.accept().await {
            let _ = tokio::io::AsyncWriteExt::write_all(&mut s, b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        }
    });
    let config = MarketStreamConfig { url: Some(format!("wss://{addr}")), ..MarketStreamConfig::default() };
    let err = MarketStream::connect(config, [MarketChannel::trades("BTCUSDT")]).await.unwrap_err();
    assert!(matches!(&err, StreamError::Connect { .. }), "{err:?}");

    let live =
        MarketStreamConfig { url: Some("wss://stream.binance.com:9443".into()), ..MarketStreamConfig::default() };
    let err = MarketStream::connect(live, [MarketChannel::trades("BTCUSDT")]).await.unwrap_err();
    assert!(matches!(err, StreamError::Binance(BinanceError::Config(_))), "{err:?}");

    let bad = MarketStream::connect(MarketStreamConfig::default(), [MarketChannel::trades("BTC/USDT")]).await;
    assert!(matches!(bad, Err(StreamError::Binance(BinanceError::Config(_)))));
}
