//! The TastyTrade account streamer and DXLink clients against fake servers
//! speaking real WebSocket over loopback (see `fake_tastytrade_ws`); access
//! tokens come from the REST fake (`fake_tastytrade`).

use venue_fakes::tastytrade as fake_tastytrade;
use venue_fakes::tastytrade_ws as fake_tastytrade_ws;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use fake_tastytrade::{ACCOUNT, CLIENT_SECRET, FakeTasty, REFRESH_TOKEN};
use fake_tastytrade_ws::{FakeAccountStreamer, FakeDxLink, TokenCheck};
use futures_util::{SinkExt as _, StreamExt as _};
use model::{Money, Price, Quantity};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use venues::tastytrade::{
    AccountEvent, AccountStream, AccountStreamConfig, ClientAccessTokens, ConnectionEvent, DisconnectReason,
    DxLinkConfig, DxLinkStream, DxQuote, DxTrade, MarketEvent, OAuthCredentials, QuoteToken, QuoteTokenSource,
    ReconnectPolicy, StreamError, Subscription, TastyClient, TastyConfig, TastyError, TastyOrderStatus,
};

const WAIT: Duration = Duration::from_secs(5);
const OPTION_STREAMER_SYMBOL: &str = ".AAPL240119C150";

fn p(s: &str) -> Price {
    Price::parse(s).unwrap()
}
fn q(s: &str) -> Quantity {
    Quantity::parse(s).unwrap()
}

fn fast_reconnect() -> ReconnectPolicy {
    ReconnectPolicy { initial: Duration::from_millis(20), max: Duration::from_millis(200), jitter: false }
}

async fn next<T: std::fmt::Debug>(rx: &mut mpsc::Receiver<T>) -> T {
    tokio::time::timeout(WAIT, rx.recv()).await.expect("no event in time").expect("stream ended")
}

/// Waits until `f` holds, polling.
async fn eventually(what: &str, f: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---------------------------------------------------------------------------
// Account streamer.

fn rest_client(rest: &FakeTasty) -> Arc<TastyClient> {
    let config = TastyConfig {
        base_url: Some(rest.url.clone()),
        request_timeout: Duration::from_secs(2),
        ..TastyConfig::default()
    };
    Arc::new(TastyClient::new(config, OAuthCredentials::new(CLIENT_SECRET, REFRESH_TOKEN).unwrap()).unwrap())
}

fn account_config(fake: &FakeAccountStreamer) -> AccountStreamConfig {
    AccountStreamConfig {
        url: Some(fake.url.clone()),
        heartbeat_interval: Duration::from_millis(100),
        idle_timeout: Duration::from_millis(1500),
        response_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
        reconnect: fast_reconnect(),
        ..AccountStreamConfig::default()
    }
}

async fn account_setup() -> (FakeTasty, FakeAccountStreamer, Arc<ClientAccessTokens>) {
    let rest = FakeTasty::start(900).await;
    let streamer = FakeAccountStreamer::start(TokenCheck::Rest(rest.url.clone())).await;
    let tokens = Arc::new(ClientAccessTokens::new(rest_client(&rest)).unwrap());
    (rest, streamer, tokens)
}

const ORDER: &str = r#"{"id": 1234, "account-number": "5WT00001", "time-in-force": "Day", "order-type": "Limit",
    "size": 100, "underlying-symbol": "AAPL", "price": "150.123456789", "price-effect": "Debit", "status": "Live",
    "cancellable": true, "editable": true, "edited": false, "external-identifier": "cid-1",
    "legs": [{"instrument-type": "Equity", "symbol": "AAPL", "quantity": 100, "remaining-quantity": 40,
    "action": "Buy to Open", "fills": [{"fill-id": "f1", "quantity": "60", "fill-price": "150.1",
    "filled-at": "2023-07-05T19:07:32.444+00:00"}]}]}"#;
const BALANCE: &str = r#"{"account-number": "5WT00001", "cash-balance": "25000.123456789",
    "net-liquidating-value": 30000.5, "equity-buying-power": "50000.25", "derivative-buying-power": "25000.125",
    "currency": "USD"}"#;
const POSITION: &str = r#"{"account-number": "5WT00001", "symbol": "SPY   231215P00452500",
    "instrument-type": "Equity Option", "underlying-symbol": "SPY", "quantity": 2, "quantity-direction": "Short",
    "average-open-price": "3.85", "multiplier": 100}"#;

#[tokio::test]
async fn account_notifications_are_parsed_into_typed_updates() {
    let (_rest, fake, tokens) = account_setup().await;
    let (handle, mut rx) = AccountStream::connect(account_config(&fake), vec![ACCOUNT.into()], tokens).await.unwrap();
    assert!(matches!(next(&mut rx).await, AccountEvent::Connection(ConnectionEvent::Connected { .. })));
    {
        let st = fake.state();
        let connect = st.log.iter().find(|r| r.action == "connect").unwrap();
        assert!(connect.token_ok && connect.auth_token.starts_with("Bearer "));
        assert_eq!(connect.value, Some(serde_json::json!([ACCOUNT])));
        assert!(connect.request_id.is_some());
    }
    assert_eq!(fake.push("Order", ORDER), 1);
    assert_eq!(fake.push("AccountBalance", BALANCE), 1);
    assert_eq!(fake.push("CurrentPosition", POSITION), 1);
    assert_eq!(fake.push("OrderChain", r#"{"account-number": "5WT00001", "id": 9}"#), 1);
    assert_eq!(fake.push("AccountBalance", &BALANCE.replace(ACCOUNT, "5WT99999")), 0, "not subscribed");

    let AccountEvent::Order(order) = next(&mut rx).await else { panic!("expected an order") };
    assert_eq!(order.id, Some(1234));
    assert_eq!(order.status, TastyOrderStatus::Live);
    assert_eq!(order.price, Some(p("150.123456789")));
    assert_eq!(order.external_identifier.as_deref(), Some("cid-1"));
    assert_eq!(order.filled_quantity(), q("60"));
    let AccountEvent::Balance(balance) = next(&mut rx).await else { panic!("expected a balance") };
    assert_eq!(balance.cash_balance, Money::parse("25000.123456789").unwrap());
    assert_eq!(balance.net_liquidating_value, Money::parse("30000.5").unwrap());
    let AccountEvent::Position(position) = next(&mut rx).await else { panic!("expected a position") };
    assert_eq!(position.quantity, q("-2"));
    assert_eq!(position.average_open_price, Some(p("3.85")));
    assert_eq!(position.multiplier, q("100"));
    assert!(matches!(next(&mut rx).await, AccountEvent::Other { kind, .. } if kind == "OrderChain"));
    assert_eq!(handle.stats().malformed, 0);
    handle.shutdown().await;
}

#[tokio::test]
async fn account_streamer_refuses_a_bad_token_after_one_fresh_try() {
    let rest = FakeTasty::start(900).await;
    // Tokens from the REST fake mean nothing to this streamer.
    let fake = FakeAccountStreamer::start(TokenCheck::Fixed(BTreeSet::from(["someone-else".to_string()]))).await;
    let tokens = Arc::new(ClientAccessTokens::new(rest_client(&rest)).unwrap());
    let err = AccountStream::connect(account_config(&fake), vec![ACCOUNT.into()], tokens).await.unwrap_err();
    assert!(matches!(&err, StreamError::Refused { message, .. } if message == "not authorized"), "{err}");
    assert_eq!(fake.state().refusals, 2);
    assert_eq!(rest.state().grants, 2, "the refused token was replaced by a fresh one");
    assert_eq!(fake.subscribed_connections(), 0);
}

#[tokio::test]
async fn account_heartbeats_are_sent_with_the_token() {
    let (_rest, fake, tokens) = account_setup().await;
    fake.state().heartbeat_deadline = Some(Duration::from_millis(400));
    let (handle, mut rx) = AccountStream::connect(account_config(&fake), vec![ACCOUNT.into()], tokens).await.unwrap();
    assert!(matches!(next(&mut rx).await, AccountEvent::Connection(ConnectionEvent::Connected { .. })));
    eventually("5 heartbeats", || fake.state().heartbeats >= 5).await;
    {
        let st = fake.state();
        assert_eq!(st.heartbeat_timeouts, 0, "a heartbeat was late");
        assert!(st.log.iter().filter(|r| r.action == "heartbeat").all(|r| r.token_ok && r.request_id.is_some()));
        let ids: Vec<u64> = st.log.iter().filter_map(|r| r.request_id).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "request ids increase: {ids:?}");
    }
    assert!(handle.stats().keepalives_sent >= 5);
    assert!(rx.try_recv().is_err(), "no reconnect happened");
    handle.shutdown().await;
}

#[tokio::test]
async fn account_stream_reconnects_resubscribes_and_reports_the_gap() {
    let (_rest, fake, tokens) = account_setup().await;
    let (handle, mut rx) = AccountStream::connect(account_config(&fake), vec![ACCOUNT.into()], tokens).await.unwrap();
    assert!(matches!(next(&mut rx).await, AccountEvent::Connection(ConnectionEvent::Connected { .. })));
    fake.drop_all();
    let AccountEvent::Connection(ConnectionEvent::Disconnected { reason }) = next(&mut rx).await else {
        panic!("expected Disconnected")
    };
    assert!(matches!(reason, DisconnectReason::Transport(_) | DisconnectReason::ClosedByServer { .. }), "{reason}");
    let AccountEvent::Connection(event) = next(&mut rx).await else { panic!("expected a connection event") };
    assert!(event.requires_reconcile(), "{event:?}");
    let ConnectionEvent::Resubscribed { gap } = event else { unreachable!() };
    assert_eq!(gap.attempts, 1);
    assert!(gap.resubscribed_at >= gap.disconnected_at);
    assert_eq!(fake.state().connects, 2);
    eventually("resubscribed", || fake.subscribed_connections() == 1).await;
    fake.push("AccountBalance", BALANCE);
    assert!(matches!(next(&mut rx).await, AccountEvent::Balance(_)));
    assert_eq!(handle.stats().reconnects, 1);
    handle.shutdown().await;
}

#[tokio::test]
async fn account_stream_reconnects_with_a_fresh_token_when_the_old_one_is_refused() {
    let (rest, fake, tokens) = account_setup().await;
    let (handle, mut rx) = AccountStream::connect(account_config(&fake), vec![ACCOUNT.into()], tokens).await.unwrap();
    assert!(matches!(next(&mut rx).await, AccountEvent::Connection(ConnectionEvent::Connected { .. })));
    assert_eq!(rest.state().grants, 1);
    // The server revokes the token: the next heartbeat is refused.
    rest.expire_tokens();
    let AccountEvent::Connection(ConnectionEvent::Disconnected { reason }) = next(&mut rx).await else {
        panic!("expected Disconnected")
    };
    assert_eq!(reason, DisconnectReason::Unauthorized("not authorized".into()));
    let AccountEvent::Connection(ConnectionEvent::Resubscribed { gap }) = next(&mut rx).await else {
        panic!("expected Resubscribed")
    };
    assert_eq!(gap.reason, reason);
    assert_eq!(rest.state().grants, 2, "a fresh access token was fetched");
    let connects: Vec<bool> = fake.state().log.iter().filter(|r| r.action == "connect").map(|r| r.token_ok).collect();
    assert_eq!(connects, [true, true]);
    handle.shutdown().await;
}

// ---------------------------------------------------------------------------
// DXLink.

/// Issues `qt-1`, `qt-2`, ... and registers them with the fake (unless told
/// to issue tokens the fake does not know).
struct TestQuoteTokens {
    fake: FakeDxLink,
    issued: AtomicU32,
    valid: AtomicBool,
}

impl TestQuoteTokens {
    fn new(fake: &FakeDxLink) -> Arc<Self> {
        Arc::new(Self { fake: fake.clone(), issued: AtomicU32::new(0), valid: AtomicBool::new(true) })
    }
    fn issued(&self) -> u32 {
        self.issued.load(Ordering::SeqCst)
    }
}

impl QuoteTokenSource for TestQuoteTokens {
    async fn quote_token(&self) -> Result<QuoteToken, TastyError> {
        let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
        let token = format!("qt-{n}");
        if self.valid.load(Ordering::SeqCst) {
            self.fake.allow_token(&token);
        }
        Ok(QuoteToken { token, dxlink_url: self.fake.url.clone(), level: Some("api".into()) })
    }
}

fn dx_config() -> DxLinkConfig {
    DxLinkConfig {
        handshake_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
        keepalive_interval: Duration::from_millis(100),
        keepalive_timeout: Duration::from_millis(500),
        accept_keepalive_timeout: Duration::from_millis(500),
        reconnect: fast_reconnect(),
        ..DxLinkConfig::default()
    }
}

async fn dx_fake() -> FakeDxLink {
    FakeDxLink::start(Duration::from_millis(600), Some(Duration::from_millis(150))).await
}

fn subs() -> Vec<Subscription> {
    vec![Subscription::quote("AAPL"), Subscription::quote(OPTION_STREAMER_SYMBOL), Subscription::trade("SPY")]
}

async fn next_market(rx: &mut mpsc::Receiver<MarketEvent>) -> MarketEvent {
    next(rx).await
}

#[tokio::test]
async fn dxlink_handshake_in_order_then_quotes_and_trades_with_nan() {
    let fake = dx_fake().await;
    let tokens = TestQuoteTokens::new(&fake);
    let (handle, mut rx) = DxLinkStream::connect(dx_config(), tokens.clone(), subs()).await.unwrap();
    assert!(matches!(next_market(&mut rx).await, MarketEvent::Connection(ConnectionEvent::Connected { .. })));
    eventually("subscriptions", || fake.subscriptions().len() == 3).await;
    assert_eq!(fake.types_of(1)[..5], ["SETUP", "AUTH", "CHANNEL_REQUEST", "FEED_SETUP", "FEED_SUBSCRIPTION"]);
    {
        let st = fake.state();
        assert!(st.violations.is_empty(), "{:?}", st.violations);
        assert_eq!(st.setups[0]["keepaliveTimeout"], 0.5);
        assert_eq!(st.setups[0]["acceptKeepaliveTimeout"], 0.5);
        assert_eq!(st.feed_setups[0]["acceptDataFormat"], "COMPACT");
        assert_eq!(
            st.feed_setups[0]["acceptEventFields"]["Quote"],
            serde_json::json!(["eventType", "eventSymbol", "bidPrice", "askPrice", "bidSize", "askSize"])
        );
        assert_eq!(
            st.feed_setups[0]["acceptEventFields"]["Trade"],
            serde_json::json!(["eventType", "eventSymbol", "price", "dayVolume", "size"])
        );
    }
    assert_eq!(fake.publish("Quote", "MSFT", &[("bidPrice", "1")]), 0, "not subscribed: not sent");
    fake.publish(
        "Quote",
        "AAPL",
        &[("bidPrice", "150.25"), ("askPrice", "\"NaN\""), ("bidSize", "100"), ("askSize", "2.5E2")],
    );
    fake.publish(
        "Quote",
        OPTION_STREAMER_SYMBOL,
        &[("bidPrice", "26.4"), ("askPrice", "26.65"), ("bidSize", "\"NaN\"")],
    );
    fake.publish("Trade", "SPY", &[("price", "450.123456789"), ("dayVolume", "5.2345678E7"), ("size", "300")]);
    assert_eq!(
        next_market(&mut rx).await,
        MarketEvent::Quote(DxQuote {
            symbol: "AAPL".into(),
            bid_price: Some(p("150.25")),
            ask_price: None,
            bid_size: Some(q("100")),
            ask_size: Some(q("250")),
        })
    );
    let MarketEvent::Quote(option) = next_market(&mut rx).await else { panic!("expected the option quote") };
    assert_eq!(option.symbol, OPTION_STREAMER_SYMBOL);
    assert_eq!((option.bid_price, option.ask_price), (Some(p("26.4")), Some(p("26.65"))));
    assert_eq!((option.bid_size, option.ask_size), (None, None));
    assert_eq!(
        next_market(&mut rx).await,
        MarketEvent::Trade(DxTrade {
            symbol: "SPY".into(),
            price: Some(p("450.123456789")),
            size: Some(q("300")),
            day_volume: Some(q("52345678")),
        })
    );
    assert_eq!(handle.stats().malformed, 0);
    assert_eq!(tokens.issued(), 1);
    handle.shutdown().await;
}

#[tokio::test]
async fn dxlink_fake_enforces_message_order_and_client_keepalive() {
    let fake = dx_fake().await;
    let (mut ws, _) = tokio_tungstenite::connect_async(fake.url.as_str()).await.unwrap();
    ws.send(Message::text(r#"{"type": "AUTH", "channel": 0, "token": "x"}"#)).await.unwrap();
    let reply = ws.next().await.unwrap().unwrap();
    assert!(reply.to_text().unwrap().contains("\"ERROR\""), "{reply:?}");
    assert_eq!(fake.state().violations.len(), 1);

    // A client that sets up and then goes quiet is timed out.
    let (mut ws, _) = tokio_tungstenite::connect_async(fake.url.as_str()).await.unwrap();
    let setup = r#"{"type": "SETUP", "channel": 0, "version": "0.1-test", "keepaliveTimeout": 0.2, "acceptKeepaliveTimeout": 1}"#;
    ws.send(Message::text(setup)).await.unwrap();
    let mut saw_timeout = false;
    while let Some(Ok(msg)) = ws.next().await {
        if msg.to_text().is_ok_and(|t| t.contains("TIMEOUT")) {
            saw_timeout = true;
        }
    }
    assert!(saw_timeout);
    assert_eq!(fake.state().client_timeouts, 1);
}

#[tokio::test]
async fn dxlink_refuses_a_bad_token_after_one_fresh_try() {
    let fake = dx_fake().await;
    let tokens = TestQuoteTokens::new(&fake);
    tokens.valid.store(false, Ordering::SeqCst);
    let err = DxLinkStream::connect(dx_config(), tokens.clone(), subs()).await.unwrap_err();
    assert!(matches!(err, StreamError::Refused { .. }), "{err}");
    assert_eq!(tokens.issued(), 2);
    let st = fake.state();
    assert_eq!(st.auth_refused, 2);
    assert!(st.violations.is_empty(), "{:?}", st.violations);
    assert!(!st.log.iter().any(|(_, t)| t == "CHANNEL_REQUEST"));
}

#[tokio::test]
async fn dxlink_sends_keepalives_and_detects_a_silent_server() {
    let fake = dx_fake().await;
    let tokens = TestQuoteTokens::new(&fake);
    let (handle, mut rx) = DxLinkStream::connect(dx_config(), tokens, subs()).await.unwrap();
    assert!(matches!(next_market(&mut rx).await, MarketEvent::Connection(ConnectionEvent::Connected { .. })));
    tokio::time::sleep(Duration::from_millis(700)).await;
    {
        let st = fake.state();
        assert!(st.keepalives >= 4, "keepalives: {}", st.keepalives);
        assert_eq!(st.client_timeouts, 0);
    }
    assert!(rx.try_recv().is_err(), "server keepalives kept the connection up");
    assert!(handle.stats().keepalives_sent >= 4);

    // The server goes quiet: after its announced 0.6 s the client reconnects.
    fake.set_keepalive(None);
    let MarketEvent::Connection(ConnectionEvent::Disconnected { reason }) = next_market(&mut rx).await else {
        panic!("expected Disconnected")
    };
    assert!(
        matches!(reason, DisconnectReason::Silent { after } if after.abs_diff(Duration::from_millis(600)) < Duration::from_millis(5)),
        "{reason}"
    );
    fake.set_keepalive(Some(Duration::from_millis(150)));
    let MarketEvent::Connection(event) = next_market(&mut rx).await else { panic!("expected Resubscribed") };
    assert!(event.requires_reconcile(), "{event:?}");
    handle.shutdown().await;
}

#[tokio::test]
async fn dxlink_unsubscribe_stops_data() {
    let fake = dx_fake().await;
    let tokens = TestQuoteTokens::new(&fake);
    let (handle, mut rx) = DxLinkStream::connect(dx_config(), tokens, vec![Subscription::quote("AAPL")]).await.unwrap();
    assert!(matches!(next_market(&mut rx).await, MarketEvent::Connection(ConnectionEvent::Connected { .. })));
    handle.subscribe(vec![Subscription::trade("SPY"), Subscription::quote("AAPL")]).unwrap();
    eventually("SPY trade subscribed", || fake.subscriptions().len() == 2).await;
    handle.unsubscribe(vec![Subscription::quote("AAPL")]).unwrap();
    eventually("AAPL removed", || fake.subscriptions() == BTreeSet::from([("Trade".to_string(), "SPY".to_string())]))
        .await;
    assert_eq!(fake.publish("Quote", "AAPL", &[("bidPrice", "1")]), 0);
    fake.publish("Trade", "SPY", &[("price", "450")]);
    let MarketEvent::Trade(trade) = next_market(&mut rx).await else { panic!("only SPY trades remain") };
    assert_eq!(trade.price, Some(p("450")));
    assert!(fake.state().violations.is_empty());
    handle.shutdown().await;
}

#[tokio::test]
async fn dxlink_reconnects_with_a_fresh_token_and_resubscribes_the_same_set() {
    let fake = dx_fake().await;
    let tokens = TestQuoteTokens::new(&fake);
    let (handle, mut rx) = DxLinkStream::connect(dx_config(), tokens.clone(), subs()).await.unwrap();
    assert!(matches!(next_market(&mut rx).await, MarketEvent::Connection(ConnectionEvent::Connected { .. })));
    handle.subscribe(vec![Subscription::trade("QQQ")]).unwrap();
    eventually("4 subscriptions", || fake.subscriptions().len() == 4).await;
    let before = fake.subscriptions();

    // The token lapses (24 h) and the connection drops: the cached token is
    // refused on reconnect, a fresh one works.
    fake.expire_tokens();
    fake.drop_all();
    assert!(matches!(next_market(&mut rx).await, MarketEvent::Connection(ConnectionEvent::Disconnected { .. })));
    let MarketEvent::Connection(ConnectionEvent::ReconnectFailed { reason, .. }) = next_market(&mut rx).await else {
        panic!("expected the stale token to be refused")
    };
    assert!(matches!(reason, DisconnectReason::Unauthorized(_)), "{reason}");
    let MarketEvent::Connection(ConnectionEvent::Resubscribed { gap }) = next_market(&mut rx).await else {
        panic!("expected Resubscribed")
    };
    assert_eq!(gap.attempts, 2);
    assert_eq!(tokens.issued(), 2);
    eventually("resubscribed", || fake.subscriptions() == before).await;
    {
        let st = fake.state();
        assert!(st.violations.is_empty(), "{:?}", st.violations);
        assert_eq!((st.auth_ok, st.auth_refused), (2, 1));
    }
    fake.publish("Trade", "QQQ", &[("price", "380.5")]);
    assert!(matches!(next_market(&mut rx).await, MarketEvent::Trade(t) if t.symbol == "QQQ"));
    assert_eq!(handle.stats().reconnects, 1);
    handle.shutdown().await;
}

#[tokio::test]
async fn dxlink_takes_its_token_from_the_rest_client() {
    let rest = FakeTasty::start(900).await;
    let fake = dx_fake().await;
    fake.allow_token("dxlink-secret-token");
    let client = rest_client(&rest);
    let config = DxLinkConfig { url: Some(fake.url.clone()), ..dx_config() };
    let (handle, mut rx) = DxLinkStream::connect(config, client, vec![Subscription::quote("SPY")]).await.unwrap();
    assert!(
        matches!(next_market(&mut rx).await, MarketEvent::Connection(ConnectionEvent::Connected { url }) if url == fake.url)
    );
    assert_eq!(fake.state().auth_ok, 1);
    assert_eq!(rest.count(&axum::http::Method::GET, "/api-quote-tokens"), 1);
    handle.shutdown().await;
}
