//! The Binance REST client against a fake Binance spot server speaking real
//! HTTP (see `fake_binance`).

use venue_fakes::binance as fake_binance;

use std::time::{Duration, Instant};

use axum::http::Method;
use fake_binance::{FakeBinance, FakeKey, FaultAction};
use model::{
    AssetClass, ClientOrderId, InstrumentId, Money, OrderStatus, OrderType, Price, Quantity, Side, TimeInForce,
};
use venues::binance::{
    BinanceClient, BinanceConfig, BinanceError, BinanceOrderStatus, CancelOutcome, Credentials, ErrorCode, NewOrder,
    OrderReport, PendingAction, PlaceOutcome, Settlement, TradeQuery,
};

const HMAC_KEY: &str = "hmacApiKey0001";
const HMAC_SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";
const ED_KEY: &str = "edApiKey0002";
const ED_SEED: [u8; 32] = [42; 32];

fn ed_seed_hex() -> String {
    ED_SEED.iter().map(|b| format!("{b:02x}")).collect()
}

async fn fake() -> FakeBinance {
    let vk = ed25519_dalek::SigningKey::from_bytes(&ED_SEED).verifying_key();
    FakeBinance::start(vec![
        (HMAC_KEY.to_string(), FakeKey::Hmac(HMAC_SECRET.to_string())),
        (ED_KEY.to_string(), FakeKey::Ed25519(vk)),
    ])
    .await
}

fn config(fake: &FakeBinance) -> BinanceConfig {
    BinanceConfig {
        base_url: Some(fake.url.clone()),
        request_timeout: Duration::from_millis(400),
        connect_timeout: Duration::from_secs(1),
        max_rate_limit_wait: Duration::from_secs(2),
        ..BinanceConfig::default()
    }
}

fn hmac_client(fake: &FakeBinance) -> BinanceClient {
    BinanceClient::new(config(fake), Some(Credentials::hmac(HMAC_KEY, HMAC_SECRET).unwrap())).unwrap()
}

fn ed_client(fake: &FakeBinance) -> BinanceClient {
    BinanceClient::new(config(fake), Some(Credentials::ed25519_seed(ED_KEY, &ed_seed_hex()).unwrap())).unwrap()
}

fn p(s: &str) -> Price {
    Price::parse(s).unwrap()
}

fn q(s: &str) -> Quantity {
    Quantity::parse(s).unwrap()
}

fn coid(s: &str) -> ClientOrderId {
    ClientOrderId::parse(s).unwrap()
}

fn order(id: &str, side: Side, ot: OrderType, tif: TimeInForce, qty: &str, post_only: bool) -> NewOrder {
    NewOrder::from_model("BTCUSDT", coid(id), side, ot, tif, q(qty), post_only).unwrap()
}

async fn placed(client: &BinanceClient, o: &NewOrder) -> OrderReport {
    match client.place_order(o).await {
        Ok(PlaceOutcome::Placed(r)) => r,
        other => panic!("{}: expected a placed order, got {other:?}", o.client_order_id),
    }
}

fn api_code<T: std::fmt::Debug>(r: Result<T, BinanceError>) -> (ErrorCode, String) {
    match r {
        Err(BinanceError::Api { code, msg, .. }) => (code, msg),
        other => panic!("expected a Binance API error, got {other:?}"),
    }
}

#[tokio::test]
async fn hmac_and_ed25519_signatures_are_accepted() {
    let fake = fake().await;
    for (name, client) in [("hmac", hmac_client(&fake)), ("ed25519", ed_client(&fake))] {
        let account = client.account().await.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(account.account_type, "SPOT", "{name}");
        assert_eq!(account.balance("USDT").map(|b| b.free), Some(Money::parse("10000").unwrap()), "{name}");
        assert_eq!(account.commission_rates.map(|r| r.taker.to_string()), Some("0.001".to_string()));
    }
    // The client id's ':' is percent-encoded in the signed payload; both key kinds sign it right.
    let client = ed_client(&fake);
    let r = placed(
        &client,
        &order("ed:1", Side::Buy, OrderType::Limit { price: p("40000") }, TimeInForce::Gtc, "0.001", false),
    )
    .await;
    assert_eq!(r.client_order_id, "ed:1");
    let logged = fake.log().into_iter().find(|l| l.method == Method::POST).unwrap();
    for required in [
        "symbol",
        "side",
        "type",
        "quantity",
        "newClientOrderId",
        "newOrderRespType",
        "timestamp",
        "recvWindow",
        "signature",
    ] {
        assert!(logged.params.iter().any(|(k, _)| k == required), "{required} missing from {:?}", logged.params);
    }
    // The PEM form of the same key works as well.
    let pem_client = {
        use base64::Engine as _;
        let mut der =
            vec![0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
        der.extend_from_slice(&ED_SEED);
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(der)
        );
        BinanceClient::new(config(&fake), Some(Credentials::ed25519_pem(ED_KEY, &pem).unwrap())).unwrap()
    };
    assert!(pem_client.account().await.is_ok());
}

#[tokio::test]
async fn wrong_secret_and_unknown_key_are_rejected() {
    let fake = fake().await;
    let wrong =
        BinanceClient::new(config(&fake), Some(Credentials::hmac(HMAC_KEY, "not-the-secret").unwrap())).unwrap();
    let (code, msg) = api_code(wrong.account().await);
    assert_eq!(code, ErrorCode::InvalidSignature);
    assert_eq!(code.code(), -1022);
    assert!(msg.contains("Signature"), "{msg}");
    assert_eq!(fake.count(&Method::GET, "/api/v3/account"), 1, "a bad signature is not retried");

    let wrong_ed =
        BinanceClient::new(config(&fake), Some(Credentials::ed25519_seed(ED_KEY, &"11".repeat(32)).unwrap())).unwrap();
    assert_eq!(api_code(wrong_ed.account().await).0, ErrorCode::InvalidSignature);

    let unknown = BinanceClient::new(config(&fake), Some(Credentials::hmac("nobody", HMAC_SECRET).unwrap())).unwrap();
    assert_eq!(api_code(unknown.account().await).0, ErrorCode::RejectedApiKey);

    let anonymous = BinanceClient::new(config(&fake), None).unwrap();
    assert!(matches!(anonymous.account().await, Err(BinanceError::Credentials(_))));
    assert!(anonymous.server_time().await.is_ok(), "unsigned endpoints need no key");

    // Neither the client nor its errors show the secret.
    assert!(!format!("{wrong:?}").contains("not-the-secret"));
}

#[tokio::test]
async fn clock_skew_is_corrected_via_server_time() {
    let fake = fake().await;
    fake.state().skew_ms = 30_000; // the server's clock runs 30 s ahead of ours

    // Synced before the first signed request.
    let client = hmac_client(&fake);
    assert!(client.account().await.is_ok());
    assert!((client.clock_offset_ms() - 30_000).abs() < 1_000, "offset {}", client.clock_offset_ms());
    let paths: Vec<_> = fake.log().into_iter().map(|l| l.path).collect();
    assert_eq!(paths, ["/api/v3/time", "/api/v3/account"]);

    // Without the initial sync: -1021, resync, one retry, success.
    let lazy = BinanceClient::new(
        BinanceConfig { sync_time_on_first_signed_request: false, ..config(&fake) },
        Some(Credentials::hmac(HMAC_KEY, HMAC_SECRET).unwrap()),
    )
    .unwrap();
    let before = fake.count(&Method::GET, "/api/v3/account");
    assert!(lazy.account().await.is_ok());
    assert_eq!(fake.count(&Method::GET, "/api/v3/account") - before, 2);

    // The server's clock jumps again: the synced client recovers once more.
    fake.state().skew_ms = -20_000;
    assert!(client.account().await.is_ok());
    assert!((client.clock_offset_ms() + 20_000).abs() < 1_000);

    // If /time itself is wrong, the single retry fails and the error is returned.
    fake.state().skew_ms = 10_000;
    fake.state().time_lie_ms = -40_000;
    let before = fake.count(&Method::GET, "/api/v3/account");
    let (code, _) = api_code(client.account().await);
    assert_eq!(code, ErrorCode::InvalidTimestamp);
    assert_eq!(fake.count(&Method::GET, "/api/v3/account") - before, 2, "exactly one retry");
}

#[tokio::test]
async fn exchange_info_maps_to_instruments_and_venue_filters() {
    let fake = fake().await;
    let client = BinanceClient::new(config(&fake), None).unwrap();
    let info = client.exchange_info(&[]).await.unwrap();
    assert_eq!(info.symbols.len(), 2);
    assert!(info.skipped.is_empty());
    assert_eq!(info.rate_limits.len(), 4);
    assert_eq!(info.rate_limits[0].header_suffix(), "1M");
    assert_eq!(info.rate_limits[1].header_suffix(), "10S");

    let btc = info.symbol("BTCUSDT").unwrap();
    let inst = btc.to_instrument(InstrumentId(7)).unwrap();
    assert_eq!(inst.id, InstrumentId(7));
    assert_eq!(inst.venue, "binance");
    assert_eq!(inst.asset_class, AssetClass::CryptoSpot);
    assert_eq!((inst.base_currency.as_str(), inst.quote_currency.as_str()), ("BTC", "USDT"));
    assert_eq!(inst.tick_size, p("0.01"));
    assert_eq!(inst.lot_size, q("0.00001"));
    assert_eq!(inst.min_quantity, q("0.00001"));
    assert_eq!(inst.min_notional, Money::parse("5").unwrap());
    assert_eq!(inst.multiplier, Quantity::ONE);
    assert!(btc.is_trading() && btc.allows("LIMIT_MAKER") && btc.allows("STOP_LOSS_LIMIT"));
    // What the model has no field for stays on the venue side.
    let price = btc.price.unwrap();
    assert_eq!((price.min_price, price.max_price), (p("0.01"), p("1000000")));
    assert_eq!(btc.lot_size.unwrap().max_qty, q("9000"));
    let market = btc.market_lot_size.unwrap();
    assert_eq!((market.min_qty, market.max_qty, market.step_size), (Quantity::ZERO, q("120.5"), Quantity::ZERO));
    let notional = btc.notional.unwrap();
    assert_eq!(notional.source, "NOTIONAL");
    assert_eq!(notional.max_notional, Some(Money::parse("9000000").unwrap()));
    assert!(notional.apply_min_to_market && !notional.apply_max_to_market);
    assert_eq!(notional.avg_price_mins, 5);
    assert_eq!(btc.max_num_orders, Some(200));
    assert_eq!(btc.max_num_algo_orders, Some(5));
    assert_eq!(btc.iceberg_parts, Some(10));
    assert_eq!(btc.trailing_delta.unwrap().max_trailing_above_delta, 2000);
    assert_eq!(btc.percent_price_by_side.unwrap().bid_multiplier_down.to_string(), "0.2");
    assert_eq!(btc.other_filters.len(), 1, "unknown MAX_NUM_ORDER_AMENDS is kept raw");
    assert_eq!(btc.other_filters[0]["filterType"], "MAX_NUM_ORDER_AMENDS");

    // The older MIN_NOTIONAL filter, and a maxQty beyond the model's range.
    let eth = info.symbol("ETHBTC").unwrap();
    let eth_inst = eth.to_instrument(InstrumentId(8)).unwrap();
    assert_eq!(eth_inst.min_notional, Money::parse("0.0001").unwrap());
    assert_eq!(eth_inst.tick_size, p("0.00001"));
    assert_eq!(eth.notional.unwrap().source, "MIN_NOTIONAL");
    assert_eq!(eth.notional.unwrap().max_notional, None);
    assert_eq!(eth.lot_size.unwrap().max_qty, Quantity::from_raw(i64::MAX), "saturated");

    let one = client.exchange_info(&["ETHBTC"]).await.unwrap();
    assert_eq!(one.symbols.len(), 1);
    let two = client.exchange_info(&["ETHBTC", "BTCUSDT"]).await.unwrap();
    assert_eq!(two.symbols.len(), 2);
    assert_eq!(api_code(client.exchange_info(&["NOPE"]).await).0, ErrorCode::BadSymbol);
}

#[tokio::test]
async fn each_order_type_is_placed_queried_and_cancelled() {
    let fake = fake().await;
    let client = hmac_client(&fake);

    // MARKET: fills at once, with fills in the FULL response.
    let mkt = placed(&client, &order("mkt-1", Side::Buy, OrderType::Market, TimeInForce::Gtc, "0.01", false)).await;
    assert_eq!(mkt.status, BinanceOrderStatus::Filled);
    assert_eq!(mkt.status.to_model(), Some(OrderStatus::Filled));
    assert_eq!(mkt.order_type, "MARKET");
    assert_eq!(mkt.executed_qty, q("0.01"));
    assert_eq!(mkt.cumulative_quote_qty, Money::parse("500").unwrap());
    assert_eq!(mkt.fills.len(), 1);
    assert_eq!(mkt.fills[0].price, p("50000"));
    assert_eq!(mkt.average_price(), Some(p("50000")));
    let queried = client.query_order("BTCUSDT", &coid("mkt-1")).await.unwrap();
    assert_eq!((queried.order_id, queried.status), (mkt.order_id, BinanceOrderStatus::Filled));
    let (code, _) = api_code(client.cancel_order("BTCUSDT", &coid("mkt-1")).await);
    assert_eq!(code, ErrorCode::CancelRejected, "a filled order cannot be cancelled");

    // LIMIT GTC below the market: rests, shows in open orders, cancels.
    let lim = placed(
        &client,
        &order("lim-1", Side::Buy, OrderType::Limit { price: p("40000") }, TimeInForce::Gtc, "0.01", false),
    )
    .await;
    assert_eq!((lim.status, lim.time_in_force.as_str(), lim.price), (BinanceOrderStatus::New, "GTC", p("40000")));
    assert!(lim.fills.is_empty());
    let open = client.open_orders(Some("BTCUSDT")).await.unwrap();
    assert_eq!(open.iter().map(|o| o.client_order_id.as_str()).collect::<Vec<_>>(), ["lim-1"]);
    let usdt = client.account().await.unwrap().balance("USDT").cloned().unwrap();
    assert_eq!(usdt.locked, Money::parse("400").unwrap());
    let CancelOutcome::Cancelled(cancelled) = client.cancel_order("BTCUSDT", &coid("lim-1")).await.unwrap() else {
        panic!("cancel status unknown")
    };
    assert_eq!(cancelled.status, BinanceOrderStatus::Canceled);
    assert_eq!(cancelled.order_client_id(), "lim-1");
    assert_eq!(
        client.query_order("BTCUSDT", &coid("lim-1")).await.unwrap().status.to_model(),
        Some(OrderStatus::Cancelled)
    );
    assert!(client.open_orders(None).await.unwrap().is_empty());

    // LIMIT IOC that cannot fill expires; FOK that can fills.
    let ioc = placed(
        &client,
        &order("ioc-1", Side::Buy, OrderType::Limit { price: p("40000") }, TimeInForce::Ioc, "0.01", false),
    )
    .await;
    assert_eq!((ioc.status, ioc.time_in_force.as_str()), (BinanceOrderStatus::Expired, "IOC"));
    let fok = placed(
        &client,
        &order("fok-1", Side::Sell, OrderType::Limit { price: p("49000") }, TimeInForce::Fok, "0.01", false),
    )
    .await;
    assert_eq!((fok.status, fok.time_in_force.as_str()), (BinanceOrderStatus::Filled, "FOK"));

    // STOP_LOSS_LIMIT rests untriggered and cancels.
    let stop = order(
        "stop-1",
        Side::Sell,
        OrderType::StopLimit { trigger_price: p("45000"), price: p("44900") },
        TimeInForce::Gtc,
        "0.01",
        false,
    );
    let stop = placed(&client, &stop).await;
    assert_eq!((stop.order_type.as_str(), stop.status), ("STOP_LOSS_LIMIT", BinanceOrderStatus::New));
    assert_eq!(client.query_order("BTCUSDT", &coid("stop-1")).await.unwrap().stop_price, Some(p("45000")));
    assert!(matches!(client.cancel_order("BTCUSDT", &coid("stop-1")).await.unwrap(), CancelOutcome::Cancelled(_)));

    // LIMIT_MAKER rests when passive and is rejected when it would take.
    let maker = placed(
        &client,
        &order("mk-1", Side::Buy, OrderType::Limit { price: p("40000") }, TimeInForce::Gtc, "0.01", true),
    )
    .await;
    assert_eq!((maker.order_type.as_str(), maker.status), ("LIMIT_MAKER", BinanceOrderStatus::New));
    let taking = order("mk-2", Side::Buy, OrderType::Limit { price: p("51000") }, TimeInForce::Gtc, "0.01", true);
    let (code, msg) = api_code(client.place_order(&taking).await);
    assert_eq!(code, ErrorCode::NewOrderRejected);
    assert!(msg.contains("immediately match"), "{msg}");
    assert!(matches!(client.cancel_order("BTCUSDT", &coid("mk-1")).await.unwrap(), CancelOutcome::Cancelled(_)));

    // Trades of the filled orders, with exact decimals.
    let trades = client.my_trades("BTCUSDT", &TradeQuery::default()).await.unwrap();
    assert_eq!(trades.len(), 2);
    assert_eq!((trades[0].order_id, trades[0].side(), trades[0].qty), (mkt.order_id, Side::Buy, q("0.01")));
    assert_eq!(trades[0].commission, Money::parse("0.00001").unwrap());
    assert_eq!(trades[0].commission_asset, "BTC");
    assert_eq!(trades[1].side(), Side::Sell);
    let only = client
        .my_trades("BTCUSDT", &TradeQuery { order_id: Some(fok.order_id), ..TradeQuery::default() })
        .await
        .unwrap();
    assert_eq!(only.len(), 1);
    assert_eq!(only[0].quote_qty, Money::parse("500").unwrap());
    assert!(fake.orders().iter().all(|o| o.status != "NEW"));
}

#[tokio::test]
async fn rejections_carry_binance_codes() {
    let fake = fake().await;
    let client = hmac_client(&fake);
    let limit = |id: &str, price: &str, qty: &str| {
        order(id, Side::Buy, OrderType::Limit { price: p(price) }, TimeInForce::Gtc, qty, false)
    };
    let cases = [
        ("off tick", limit("r1", "40000.005", "0.01"), ErrorCode::InvalidMessage, "Filter failure: PRICE_FILTER"),
        ("below min qty", limit("r2", "40000", "0.000001"), ErrorCode::InvalidMessage, "Filter failure: LOT_SIZE"),
        ("off step", limit("r3", "40000", "0.000015"), ErrorCode::InvalidMessage, "Filter failure: LOT_SIZE"),
        ("tiny notional", limit("r4", "100", "0.01"), ErrorCode::InvalidMessage, "Filter failure: NOTIONAL"),
        ("no money", limit("r5", "40000", "1"), ErrorCode::NewOrderRejected, "insufficient balance"),
        (
            "market too big",
            order("r6", Side::Sell, OrderType::Market, TimeInForce::Gtc, "121", false),
            ErrorCode::InvalidMessage,
            "Filter failure: MARKET_LOT_SIZE",
        ),
    ];
    for (name, o, code, text) in cases {
        let (got, msg) = api_code(client.place_order(&o).await);
        assert_eq!(got, code, "{name}: {msg}");
        assert!(msg.contains(text), "{name}: {msg}");
    }
    let bad_symbol =
        NewOrder::from_model("NOPEUSDT", coid("r7"), Side::Buy, OrderType::Market, TimeInForce::Gtc, q("1"), false)
            .unwrap();
    assert_eq!(api_code(client.place_order(&bad_symbol).await).0, ErrorCode::BadSymbol);
    let (code, msg) = api_code(client.query_order("BTCUSDT", &coid("never")).await);
    assert_eq!((code, code.code()), (ErrorCode::NoSuchOrder, -2013));
    assert_eq!(msg, "Order does not exist.");
    assert_eq!(api_code(client.cancel_order("BTCUSDT", &coid("never")).await).0, ErrorCode::CancelRejected);
    assert!(fake.orders().is_empty());
}

#[tokio::test]
async fn a_429_backs_off_for_retry_after() {
    let fake = fake().await;
    let client = hmac_client(&fake);
    client.sync_time().await.unwrap();
    fake.fault(Method::GET, "/api/v3/account", FaultAction::Status { status: 429, retry_after: Some(1) }, 1);
    match client.account().await {
        Err(BinanceError::RateLimited { retry_after, .. }) => assert_eq!(retry_after, Duration::from_secs(1)),
        other => panic!("expected RateLimited, got {other:?}"),
    }
    assert!(client.rate_limit_status().backoff_remaining.is_some());
    // The next call waits out Retry-After instead of hammering the server.
    let started = Instant::now();
    assert!(client.account().await.is_ok());
    assert!(started.elapsed() >= Duration::from_millis(900), "waited only {:?}", started.elapsed());
    assert_eq!(fake.count(&Method::GET, "/api/v3/account"), 2);

    // A back-off longer than the configured maximum wait fails fast, unsent.
    fake.fault(Method::GET, "/api/v3/account", FaultAction::Status { status: 429, retry_after: Some(30) }, 1);
    assert!(matches!(client.account().await, Err(BinanceError::RateLimited { .. })));
    let started = Instant::now();
    assert!(matches!(client.server_time().await, Err(BinanceError::RateLimited { .. })));
    assert!(started.elapsed() < Duration::from_millis(200));
    assert_eq!(fake.count(&Method::GET, "/api/v3/account"), 3);
    assert_eq!(fake.count(&Method::GET, "/api/v3/time"), 1);
}

#[tokio::test]
async fn a_418_stops_all_requests_until_retry_after() {
    let fake = fake().await;
    let client = hmac_client(&fake);
    client.sync_time().await.unwrap();
    fake.fault(Method::GET, "/api/v3/openOrders", FaultAction::Status { status: 418, retry_after: Some(1) }, 1);
    assert!(matches!(client.open_orders(None).await, Err(BinanceError::IpBanned { .. })));
    let sent = fake.log().len();
    for _ in 0..3 {
        match client.account().await {
            Err(BinanceError::IpBanned { retry_after, .. }) => assert!(retry_after <= Duration::from_secs(1)),
            other => panic!("expected IpBanned, got {other:?}"),
        }
    }
    let o = order("ban-1", Side::Buy, OrderType::Market, TimeInForce::Gtc, "0.001", false);
    assert!(
        matches!(client.place_order(&o).await, Err(BinanceError::IpBanned { .. })),
        "never StatusUnknown: it was not sent"
    );
    assert_eq!(fake.log().len(), sent, "nothing reached the server during the ban");
    assert!(client.rate_limit_status().ban_remaining.is_some());
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert!(client.account().await.is_ok());
}

#[tokio::test]
async fn used_weight_headers_are_tracked_against_exchange_info_limits() {
    let fake = fake().await;
    fake.state().weight_limit = 100;
    let client = hmac_client(&fake);
    client.exchange_info(&[]).await.unwrap(); // adopts REQUEST_WEIGHT 100 / 1M
    client.server_time().await.unwrap();
    let status = client.rate_limit_status();
    let weight = status.usage.iter().find(|u| u.0 == "REQUEST_WEIGHT").unwrap();
    assert_eq!((weight.1.as_str(), weight.2, weight.3), ("1M", 21, Some(100)));

    fake.set_used_weight(90);
    client.sync_time().await.unwrap(); // GET /api/v3/time: the header now reports 91
    match client.account().await {
        Err(BinanceError::LimitExhausted { kind, used, limit, .. }) => {
            assert_eq!((kind.as_str(), used, limit), ("REQUEST_WEIGHT", 91, 100));
        }
        other => panic!("expected LimitExhausted, got {other:?}"),
    }
    assert_eq!(fake.count(&Method::GET, "/api/v3/account"), 0, "refused locally");
    // Order-count headers are tracked too.
    fake.set_used_weight(0);
    client.server_time().await.unwrap();
    placed(&client, &order("w-1", Side::Buy, OrderType::Market, TimeInForce::Gtc, "0.001", false)).await;
    assert!(client.rate_limit_status().usage.iter().any(|u| u.0 == "ORDERS" && u.1 == "10S" && u.2 == 1));
}

#[tokio::test]
async fn a_timed_out_placement_that_happened_is_found_without_a_second_post() {
    let fake = fake().await;
    let client = hmac_client(&fake);
    fake.fault(Method::POST, "/api/v3/order", FaultAction::StallAfter(Duration::from_secs(2)), 1);
    let o = order("slow-1", Side::Buy, OrderType::Limit { price: p("40000") }, TimeInForce::Gtc, "0.01", false);
    let PlaceOutcome::StatusUnknown(unknown) = client.place_order(&o).await.unwrap() else {
        panic!("expected StatusUnknown")
    };
    assert_eq!((unknown.action, unknown.client_order_id.as_str()), (PendingAction::Place, "slow-1"));
    assert!(unknown.cause.contains("no answer"), "{}", unknown.cause);
    match client.settle(&unknown).await.unwrap() {
        Settlement::Found(r) => assert_eq!((r.client_order_id.as_str(), r.status), ("slow-1", BinanceOrderStatus::New)),
        Settlement::Absent => panic!("the order was placed"),
    }
    assert_eq!(fake.count(&Method::POST, "/api/v3/order"), 1);
}

#[tokio::test]
async fn a_timed_out_placement_that_did_not_happen_is_confirmed_absent() {
    let fake = fake().await;
    let client = hmac_client(&fake);
    fake.fault(Method::POST, "/api/v3/order", FaultAction::StallBefore(Duration::from_secs(2)), 1);
    let o = order("lost-1", Side::Buy, OrderType::Market, TimeInForce::Gtc, "0.001", false);
    let PlaceOutcome::StatusUnknown(unknown) = client.place_order(&o).await.unwrap() else {
        panic!("expected StatusUnknown")
    };
    assert_eq!(client.settle(&unknown).await.unwrap(), Settlement::Absent);
    assert_eq!(fake.count(&Method::POST, "/api/v3/order"), 1);
    assert!(fake.orders().is_empty());
}

#[tokio::test]
async fn a_500_on_placement_or_cancel_is_status_unknown() {
    let fake = fake().await;
    let client = hmac_client(&fake);
    fake.fault(Method::POST, "/api/v3/order", FaultAction::Error500After, 1);
    let o = order("five-1", Side::Buy, OrderType::Market, TimeInForce::Gtc, "0.001", false);
    let PlaceOutcome::StatusUnknown(unknown) = client.place_order(&o).await.unwrap() else {
        panic!("expected StatusUnknown")
    };
    let Settlement::Found(found) = client.settle(&unknown).await.unwrap() else { panic!("placed despite the 500") };
    assert_eq!(found.status.to_model(), Some(OrderStatus::Filled));
    assert_eq!(fake.count(&Method::POST, "/api/v3/order"), 1);

    // A cancel that times out after taking effect settles to the cancelled order.
    placed(
        &client,
        &order("five-2", Side::Buy, OrderType::Limit { price: p("40000") }, TimeInForce::Gtc, "0.01", false),
    )
    .await;
    fake.fault(Method::DELETE, "/api/v3/order", FaultAction::StallAfter(Duration::from_secs(2)), 1);
    let CancelOutcome::StatusUnknown(unknown) = client.cancel_order("BTCUSDT", &coid("five-2")).await.unwrap() else {
        panic!("expected StatusUnknown")
    };
    assert_eq!(unknown.action, PendingAction::Cancel);
    let Settlement::Found(found) = client.settle(&unknown).await.unwrap() else { panic!("order exists") };
    assert_eq!(found.status, BinanceOrderStatus::Canceled);
    assert_eq!(fake.count(&Method::DELETE, "/api/v3/order"), 1);
}

#[tokio::test]
async fn a_connection_refused_is_not_status_unknown() {
    // Bind and drop a listener to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let client = BinanceClient::new(
        BinanceConfig {
            base_url: Some(format!("http://127.0.0.1:{port}")),
            sync_time_on_first_signed_request: false,
            ..BinanceConfig::default()
        },
        Some(Credentials::hmac(HMAC_KEY, HMAC_SECRET).unwrap()),
    )
    .unwrap();
    let o = order("nc-1", Side::Buy, OrderType::Market, TimeInForce::Gtc, "0.001", false);
    match client.place_order(&o).await {
        Err(e @ BinanceError::Transport { maybe_sent: false, .. }) => assert!(!e.is_execution_unknown()),
        other => panic!("expected a transport error, got {other:?}"),
    }
}
