//! `venues::live`: the same checks through `Arc<dyn LiveVenue>` against the
//! Binance fake and the TastyTrade fake (see `fake_binance`,
//! `fake_tastytrade`), plus what only one venue has.

use venue_fakes::binance as fake_binance;
use venue_fakes::tastytrade as fake_tastytrade;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::Method;
use fake_binance::{FakeBinance, FakeKey};
use fake_tastytrade::{ACCOUNT, CLIENT_SECRET, FakeTasty, REFRESH_TOKEN};
use model::{
    ClientOrderId, InstrumentId, Liquidity, Money, Order, OrderId, OrderStatus, OrderType, Price, Quantity, Side,
    TimeInForce, Timestamp,
};
use venues::binance::{BinanceClient, BinanceConfig, CancelOutcome, Credentials};
use venues::live::{
    BinanceVenue, CancelResult, LiveError, LiveStatus, LiveVenue, PlaceResult, Settled, TastyVenue, fnv1a_64,
    tasty_trade_id,
};
use venues::tastytrade::{OAuthCredentials, TastyClient, TastyConfig};

const HMAC_KEY: &str = "hmacApiKey0001";
const HMAC_SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";
const TASTY_ORDERS: &str = "/accounts/5WT00001/orders";
const BINANCE_ORDER: &str = "/api/v3/order";

fn p(s: &str) -> Price {
    Price::parse(s).unwrap()
}
fn q(s: &str) -> Quantity {
    Quantity::parse(s).unwrap()
}
fn coid(s: &str) -> ClientOrderId {
    ClientOrderId::parse(s).unwrap()
}

fn order(id: &str, side: Side, order_type: OrderType, tif: TimeInForce, qty: &str) -> Order {
    Order {
        id: OrderId(1),
        client_order_id: coid(id),
        instrument: InstrumentId(1),
        side,
        order_type,
        time_in_force: tif,
        quantity: q(qty),
        filled_quantity: Quantity::ZERO,
        filled_notional: Money::ZERO,
        fees: Money::ZERO,
        reduce_only: false,
        post_only: false,
        status: OrderStatus::New,
        reject_reason: None,
        ts_created: Timestamp::from_nanos(0),
        ts_updated: Timestamp::from_nanos(0),
    }
}

/// A fake venue, the venue behind the trait, and what differs per venue.
enum Fake {
    Binance(FakeBinance, Arc<BinanceClient>),
    Tasty(FakeTasty),
}

struct Harness {
    fake: Fake,
    venue: Arc<dyn LiveVenue>,
    symbol: String,
    /// A limit buy that rests.
    resting: OrderType,
    /// A limit buy that fills (on Binance at once; on TastyTrade when the fake fills it).
    filling: OrderType,
    qty: &'static str,
    tif: TimeInForce,
    /// The position in `symbol` before any test order.
    start_position: Quantity,
    /// The fee of a fill of `filling` × `qty`, and its currency.
    fill_fee: (&'static str, &'static str),
    /// Fills at or after this are read (the TastyTrade fake stamps every
    /// fill 2026-06-09T15:30Z).
    since: Timestamp,
    place_path: &'static str,
}

async fn binance() -> Harness {
    let fake = FakeBinance::start(vec![(HMAC_KEY.to_string(), FakeKey::Hmac(HMAC_SECRET.to_string()))]).await;
    let config = BinanceConfig {
        base_url: Some(fake.url.clone()),
        request_timeout: Duration::from_millis(400),
        connect_timeout: Duration::from_secs(1),
        max_rate_limit_wait: Duration::from_secs(2),
        ..BinanceConfig::default()
    };
    let client = Arc::new(BinanceClient::new(config, Some(Credentials::hmac(HMAC_KEY, HMAC_SECRET).unwrap())).unwrap());
    let now_ms = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap();
    Harness {
        venue: Arc::new(BinanceVenue::new(client.clone())),
        fake: Fake::Binance(fake, client),
        symbol: "BTCUSDT".into(),
        resting: OrderType::Limit { price: p("40000.00") },
        filling: OrderType::Limit { price: p("50000.00") },
        qty: "0.001",
        tif: TimeInForce::Gtc,
        start_position: q("1"),
        // Commission 0.1 % in the base asset on a buy.
        fill_fee: ("0.000001", "BTC"),
        since: Timestamp::from_nanos((now_ms - 60_000) * 1_000_000),
        place_path: BINANCE_ORDER,
    }
}

async fn tasty() -> Harness {
    let fake = FakeTasty::start(900).await;
    let config = TastyConfig {
        base_url: Some(fake.url.clone()),
        request_timeout: Duration::from_millis(400),
        connect_timeout: Duration::from_secs(1),
        settle_page_size: 2,
        ..TastyConfig::default()
    };
    let client =
        Arc::new(TastyClient::new(config, OAuthCredentials::new(CLIENT_SECRET, REFRESH_TOKEN).unwrap()).unwrap());
    Harness {
        venue: Arc::new(TastyVenue::new(client, ACCOUNT)),
        fake: Fake::Tasty(fake),
        symbol: "AAPL".into(),
        resting: OrderType::Limit { price: p("170.00") },
        filling: OrderType::Limit { price: p("175.00") },
        qty: "10",
        tif: TimeInForce::Day,
        start_position: Quantity::ZERO,
        // From the fill's Trade transaction: clearing 0.0008 a share.
        fill_fee: ("0.008", "USD"),
        since: Timestamp::parse("2026-06-09T00:00:00Z").unwrap(),
        place_path: TASTY_ORDERS,
    }
}

impl Harness {
    fn order(&self, id: &str, order_type: OrderType) -> Order {
        order(id, Side::Buy, order_type, self.tif, self.qty)
    }

    fn posts(&self) -> usize {
        match &self.fake {
            Fake::Binance(f, _) => f.count(&Method::POST, self.place_path),
            Fake::Tasty(f) => f.count(&Method::POST, self.place_path),
        }
    }

    fn stall(&self, after: bool) {
        match &self.fake {
            Fake::Binance(f, _) => {
                use fake_binance::FaultAction as F;
                let d = Duration::from_millis(1200);
                f.fault(Method::POST, self.place_path, if after { F::StallAfter(d) } else { F::StallBefore(d) }, 1);
            }
            Fake::Tasty(f) => {
                use fake_tastytrade::FaultAction as F;
                let d = Duration::from_millis(1200);
                f.fault(Method::POST, self.place_path, if after { F::StallAfter(d) } else { F::StallBefore(d) }, 1);
            }
        }
    }

    /// Someone else cancels the order at the venue (by hand on the website).
    async fn cancel_at_venue(&self, venue_order_id: &str, client_order_id: &str) {
        match &self.fake {
            Fake::Binance(_, client) => {
                let out = client.cancel_order(&self.symbol, &coid(client_order_id)).await.unwrap();
                assert!(matches!(out, CancelOutcome::Cancelled(_)), "{out:?}");
            }
            Fake::Tasty(f) => {
                let id: u64 = venue_order_id.parse().unwrap();
                f.state().orders.iter_mut().find(|o| o.id == id).unwrap().status = "Cancelled".into();
            }
        }
    }

    /// The venue fills the order (the Binance fake fills marketable orders on arrival).
    fn fill_at_venue(&self, venue_order_id: &str) {
        if let Fake::Tasty(f) = &self.fake {
            f.fill(venue_order_id.parse().unwrap(), "175.00");
        }
    }

    async fn place(&self, o: &Order) -> String {
        match self.venue.place(o, &self.symbol).await.unwrap() {
            PlaceResult::Placed { venue_order_id, .. } => venue_order_id,
            other => panic!("{}: expected a placement, got {other:?}", self.venue.name()),
        }
    }
}

async fn both() -> [Harness; 2] {
    [binance().await, tasty().await]
}

// ----- the same checks for both venues ------------------------------------------

#[tokio::test]
async fn instruments_load() {
    for h in both().await {
        let got = h.venue.instruments(&[(InstrumentId(7), h.symbol.clone())]).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].venue_symbol, h.symbol);
        assert_eq!(got[0].instrument.id, InstrumentId(7));
        assert_eq!(got[0].instrument.symbol, h.symbol);
        assert_eq!(got[0].instrument.venue, h.venue.name());
        assert!(got[0].instrument.tick_size.is_positive());
    }
}

#[tokio::test]
async fn limit_order_placed_found_and_cancelled() {
    for h in both().await {
        let name = h.venue.name();
        let o = h.order("live-1", h.resting);
        let placed = h.venue.place(&o, &h.symbol).await.unwrap();
        let PlaceResult::Placed { venue_order_id, status, filled_quantity, fills } = placed else {
            panic!("{name}: {placed:?}")
        };
        assert_eq!(status, LiveStatus::Open, "{name}");
        assert!(filled_quantity.is_zero() && fills.is_empty(), "{name}");

        let ours = [(coid("live-1"), h.symbol.clone()), (coid("never-sent"), h.symbol.clone())];
        let states = h.venue.order_states(&ours).await.unwrap();
        assert_eq!(states[0].client_order_id, Some(coid("live-1")), "{name}");
        assert_eq!(states[0].venue_order_id, venue_order_id, "{name}");
        assert_eq!(states[0].status, LiveStatus::Open, "{name}");
        assert_eq!(states[0].quantity, q(h.qty), "{name}");
        assert_eq!(states[1].status, LiveStatus::Absent, "{name}");
        let open = h.venue.open_orders().await.unwrap();
        assert!(open.iter().any(|s| s.venue_order_id == venue_order_id), "{name}: {open:?}");

        match h.venue.cancel(&coid("live-1"), &h.symbol).await.unwrap() {
            CancelResult::Cancelled(s) => assert_eq!(s.status, LiveStatus::Cancelled, "{name}"),
            other => panic!("{name}: {other:?}"),
        }
        let states = h.venue.order_states(&ours[..1]).await.unwrap();
        assert_eq!(states[0].status, LiveStatus::Cancelled, "{name}");
        // A second cancel finds nothing to cancel.
        match h.venue.cancel(&coid("live-1"), &h.symbol).await.unwrap() {
            CancelResult::AlreadyClosed(s) => assert_eq!(s.status, LiveStatus::Cancelled, "{name}"),
            other => panic!("{name}: {other:?}"),
        }
        match h.venue.cancel(&coid("never-sent"), &h.symbol).await.unwrap() {
            CancelResult::AlreadyClosed(s) => assert_eq!(s.status, LiveStatus::Absent, "{name}"),
            other => panic!("{name}: {other:?}"),
        }
        assert!(h.venue.open_orders().await.unwrap().is_empty(), "{name}");
    }
}

#[tokio::test]
async fn timed_out_placement_settled_without_a_second_post() {
    for h in both().await {
        let name = h.venue.name();
        // Processed, then the answer is late: the order exists.
        h.stall(true);
        let o = h.order("stall-after", h.resting);
        let out = h.venue.place(&o, &h.symbol).await.unwrap();
        assert!(matches!(out, PlaceResult::StatusUnknown { .. }), "{name}: {out:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        match h.venue.settle(&coid("stall-after"), &h.symbol).await.unwrap() {
            Settled::Found(s) => {
                assert_eq!(s.client_order_id, Some(coid("stall-after")), "{name}");
                assert_eq!(s.status, LiveStatus::Open, "{name}");
            }
            Settled::Absent => panic!("{name}: the order was processed"),
        }
        assert_eq!(h.posts(), 1, "{name}: settled by query, not by a second POST");

        // Not processed: no order.
        h.stall(false);
        let o = h.order("stall-before", h.resting);
        let out = h.venue.place(&o, &h.symbol).await.unwrap();
        assert!(matches!(out, PlaceResult::StatusUnknown { .. }), "{name}: {out:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(h.venue.settle(&coid("stall-before"), &h.symbol).await.unwrap(), Settled::Absent, "{name}");
        assert_eq!(h.posts(), 2, "{name}");
    }
}

#[tokio::test]
async fn snapshot_after_fills_lists_fills_with_stable_trade_ids_and_positions() {
    for h in both().await {
        let name = h.venue.name();
        let o = h.order("fill-1", h.filling);
        let venue_order_id = h.place(&o).await;
        h.fill_at_venue(&venue_order_id);
        let resting = h.order("rest-1", h.resting);
        h.place(&resting).await;

        let ours = [(coid("fill-1"), h.symbol.clone()), (coid("rest-1"), h.symbol.clone())];
        let symbols = [h.symbol.clone()];
        let snap = h.venue.snapshot(&ours, &symbols, h.since).await.unwrap();
        assert_eq!(snap.orders.len(), 2, "{name}: {:?}", snap.orders);
        assert_eq!(snap.orders[0].status, LiveStatus::Filled, "{name}");
        assert_eq!(snap.orders[0].filled_quantity, q(h.qty), "{name}");
        assert_eq!(snap.orders[1].status, LiveStatus::Open, "{name}");

        assert_eq!(snap.fills.len(), 1, "{name}: {:?}", snap.fills);
        let fill = &snap.fills[0];
        assert_eq!(fill.client_order_id, Some(coid("fill-1")), "{name}");
        assert_eq!(fill.venue_order_id, venue_order_id, "{name}");
        assert_eq!(fill.quantity, q(h.qty), "{name}");
        assert!(fill.price.is_positive(), "{name}");
        assert_eq!(fill.fee, Money::parse(h.fill_fee.0).unwrap(), "{name}: the fill carries its fee");
        assert_eq!(fill.fee_currency.as_str(), h.fill_fee.1, "{name}");

        let again = h.venue.snapshot(&ours, &symbols, h.since).await.unwrap();
        assert_eq!(again.fills, snap.fills, "{name}: trade ids are stable");
        let by_fills = h.venue.fills_since(h.since, &symbols).await.unwrap();
        assert_eq!(by_fills.iter().map(|f| f.trade_id).collect::<Vec<_>>(), vec![fill.trade_id], "{name}");

        let (sym, pos) = &snap.positions[0];
        assert_eq!(sym, &h.symbol, "{name}");
        assert!(*pos > h.start_position, "{name}: position {pos} after a buy from {}", h.start_position);
        assert!(!snap.balances.is_empty(), "{name}");
    }
}

#[tokio::test]
async fn venue_side_cancel_shows_as_cancelled() {
    for h in both().await {
        let name = h.venue.name();
        let o = h.order("by-hand", h.resting);
        let venue_order_id = h.place(&o).await;
        h.cancel_at_venue(&venue_order_id, "by-hand").await;
        let states = h.venue.order_states(&[(coid("by-hand"), h.symbol.clone())]).await.unwrap();
        assert_eq!(states[0].status, LiveStatus::Cancelled, "{name}");
        assert_eq!(states[0].venue_order_id, venue_order_id, "{name}");
        assert!(h.venue.open_orders().await.unwrap().is_empty(), "{name}");
    }
}

// ----- per venue ----------------------------------------------------------------------

#[tokio::test]
async fn binance_fill_details_positions_and_local_refusals() {
    let h = binance().await;
    let o = h.order("b-fill", h.filling);
    let PlaceResult::Placed { status, fills, .. } = h.venue.place(&o, &h.symbol).await.unwrap() else { panic!() };
    assert_eq!(status, LiveStatus::Filled);
    assert_eq!(fills.len(), 1);
    // A buy pays its commission in the base asset: reported as such.
    assert_eq!(fills[0].fee_currency.as_str(), "BTC");
    assert_eq!(fills[0].fee, Money::parse("0.000001").unwrap());
    assert_eq!(fills[0].liquidity, Some(Liquidity::Taker));
    assert_eq!(fills[0].price, p("50000.00"));

    let later = h.venue.fills_since(h.since, std::slice::from_ref(&h.symbol)).await.unwrap();
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].trade_id, fills[0].trade_id, "the placement's trade id is myTrades' id");
    assert_eq!(later[0].client_order_id, Some(coid("b-fill")));

    // Spot position = base balance: 1 + 0.001 - 0.000001 commission.
    let pos = h.venue.positions(&[h.symbol.clone(), "ETHBTC".into()]).await.unwrap();
    assert_eq!(pos, vec![("BTCUSDT".into(), q("1.000999")), ("ETHBTC".into(), q("10"))]);

    let posts = h.posts();
    let day = order("b-day", Side::Buy, h.resting, TimeInForce::Day, "0.001");
    assert!(matches!(h.venue.place(&day, &h.symbol).await, Err(LiveError::Refused(_))));
    let fok_market = order("b-fok", Side::Buy, OrderType::Market, TimeInForce::Fok, "0.001");
    assert!(matches!(h.venue.place(&fok_market, &h.symbol).await, Err(LiveError::Refused(_))));
    assert_eq!(h.posts(), posts, "nothing sent");

    // Refused by Binance: a rejection with its code, not an error.
    let off_tick = order("b-tick", Side::Buy, OrderType::Limit { price: p("40000.005") }, TimeInForce::Gtc, "0.001");
    match h.venue.place(&off_tick, &h.symbol).await.unwrap() {
        PlaceResult::Rejected { code, reason } => {
            assert_eq!(code.as_deref(), Some("-1013"));
            assert!(reason.contains("PRICE_FILTER"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn tasty_trade_ids_are_stable_hashes_of_fill_ids() {
    // FNV-1a 64 reference values.
    assert_eq!(fnv1a_64(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a_64(b"a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(fnv1a_64(b"foobar"), 0x8594_4171_f739_67e8);
    assert_eq!(tasty_trade_id("123456"), 123_456, "numeric fill ids are used as they are");
    assert_eq!(tasty_trade_id("f1"), fnv1a_64(b"f1"));

    let h = tasty().await;
    let o = h.order("t-fill", h.filling);
    let id = h.place(&o).await;
    h.fill_at_venue(&id);
    let fills = h.venue.fills_since(h.since, &[]).await.unwrap();
    assert_eq!(fills.len(), 1);
    // The fake's first fill is "fill-id": "f1".
    assert_eq!(fills[0].trade_id, tasty_trade_id("f1"));
    // Its Trade transaction's fees: 10 shares x 0.0008 clearing.
    assert_eq!(fills[0].fee, Money::parse("0.008").unwrap());
    assert_eq!(fills[0].fee_currency.as_str(), "USD");
    assert_eq!(fills[0].liquidity, None);
    // A fresh venue (another process) derives the same id.
    let Fake::Tasty(fake) = &h.fake else { unreachable!() };
    let config = TastyConfig { base_url: Some(fake.url.clone()), ..TastyConfig::default() };
    let other = TastyVenue::new(
        Arc::new(TastyClient::new(config, OAuthCredentials::new(CLIENT_SECRET, REFRESH_TOKEN).unwrap()).unwrap()),
        ACCOUNT,
    );
    assert_eq!(other.fills_since(h.since, &[]).await.unwrap(), fills);
}

#[tokio::test]
async fn tasty_fills_carry_the_fees_of_their_transactions() {
    let h = tasty().await;
    let Fake::Tasty(fake) = &h.fake else { unreachable!() };
    let money = |s: &str| Money::parse(s).unwrap();
    let fee_of = |fills: &[venues::live::LiveFill], venue_order_id: &str| {
        let f: Vec<_> = fills.iter().filter(|f| f.venue_order_id == venue_order_id).collect();
        assert_eq!(f.len(), 1, "{fills:?}");
        (f[0].trade_id, f[0].fee)
    };

    // An option to open: 3 contracts, 0.10 clearing and 1.00 commission each,
    // matched by the execution id.
    let call = order("t-call", Side::Buy, OrderType::Limit { price: p("26.50") }, TimeInForce::Day, "3");
    let call_id = match h.venue.place(&call, "AAPL  240119C00150000").await.unwrap() {
        PlaceResult::Placed { venue_order_id, fills, .. } => {
            assert!(fills.is_empty());
            venue_order_id
        }
        other => panic!("{other:?}"),
    };
    fake.fill(call_id.parse().unwrap(), "26.50");
    let fills = h.venue.fills_since(h.since, &[]).await.unwrap();
    assert_eq!(fee_of(&fills, &call_id).1, money("3.3"));
    assert!(fills.iter().all(|f| f.fee_currency.as_str() == "USD"));

    // Without execution ids: by quantity, price and time.
    for t in &mut fake.state().transactions {
        t.ext_exec_id = None;
    }
    let again = h.venue.fills_since(h.since, &[]).await.unwrap();
    assert_eq!(again, fills, "the same fees, the same trade ids");

    // TastyTrade has not posted the transaction yet: the fill is reported
    // with a zero fee; once posted, the same fill (same trade id) has it.
    fake.state().hold_transactions = true;
    let shares = h.order("t-late", h.filling);
    let shares_id = h.place(&shares).await;
    h.fill_at_venue(&shares_id);
    let early = h.venue.fills_since(h.since, std::slice::from_ref(&h.symbol)).await.unwrap();
    let (trade_id, fee) = fee_of(&early, &shares_id);
    assert_eq!(fee, Money::ZERO, "no transaction yet");
    fake.post_held_transactions();
    let late = h.venue.fills_since(h.since, std::slice::from_ref(&h.symbol)).await.unwrap();
    assert_eq!(fee_of(&late, &shares_id), (trade_id, money("0.008")));

    // Two executions booked as one transaction: its fees shared by quantity.
    {
        let mut st = fake.state();
        let id: u64 = shares_id.parse().unwrap();
        let leg = &mut st.orders.iter_mut().find(|o| o.id == id).unwrap().legs[0];
        let first = leg.fills[0].clone();
        leg.fills = vec![
            fake_tastytrade::FakeFill { id: 901, quantity: q("4"), ..first.clone() },
            fake_tastytrade::FakeFill { id: 902, quantity: q("6"), ..first },
        ];
    }
    let split = h.venue.fills_since(h.since, std::slice::from_ref(&h.symbol)).await.unwrap();
    let mut shares_fees: Vec<_> =
        split.iter().filter(|f| f.venue_order_id == shares_id).map(|f| (f.quantity, f.fee)).collect();
    shares_fees.sort();
    assert_eq!(shares_fees, vec![(q("4"), money("0.0032")), (q("6"), money("0.0048"))]);

    // Fills before `since` are not read, nor are transactions asked for
    // when there is no fill.
    let path = format!("/accounts/{ACCOUNT}/transactions");
    let asked = fake.count(&Method::GET, &path);
    let after = Timestamp::parse("2026-06-10T00:00:00Z").unwrap();
    assert!(h.venue.fills_since(after, &[]).await.unwrap().is_empty());
    assert_eq!(fake.count(&Method::GET, &path), asked);
}

#[tokio::test]
async fn tasty_open_close_from_positions_and_local_refusals() {
    let h = tasty().await;
    let posts = h.posts();
    let fok = order("t-fok", Side::Buy, h.resting, TimeInForce::Fok, "1");
    assert!(matches!(h.venue.place(&fok, "AAPL").await, Err(LiveError::Refused(_))));
    // Long 10 SPY: selling 11 would cross zero.
    let cross = order("t-cross", Side::Sell, OrderType::Limit { price: p("450.00") }, TimeInForce::Day, "11");
    assert!(matches!(h.venue.place(&cross, "SPY").await, Err(LiveError::Refused(_))));
    // Reduce-only buy with no short position would open.
    let mut reduce = order("t-reduce", Side::Buy, h.resting, TimeInForce::Day, "1");
    reduce.reduce_only = true;
    assert!(matches!(h.venue.place(&reduce, "AAPL").await, Err(LiveError::Refused(_))));
    assert_eq!(h.posts(), posts, "nothing sent");

    // Selling 5 of the 10 SPY closes; buying back 1 of the 2 short puts closes.
    let close = order("t-close", Side::Sell, OrderType::Limit { price: p("450.00") }, TimeInForce::Day, "5");
    assert!(matches!(h.venue.place(&close, "SPY").await.unwrap(), PlaceResult::Placed { .. }));
    let Fake::Tasty(fake) = &h.fake else { unreachable!() };
    let action = |ext: &str| {
        fake.state().orders.iter().find(|o| o.external_identifier.as_deref() == Some(ext)).unwrap().legs[0]
            .action
            .clone()
    };
    assert_eq!(action("t-close"), "Sell to Close");
    let put = order("t-put", Side::Buy, OrderType::Limit { price: p("4.10") }, TimeInForce::Day, "1");
    // Unpadded OCC input is normalized.
    match h.venue.place(&put, "SPY 231215P00452500").await.unwrap() {
        PlaceResult::Placed { .. } => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(action("t-put"), "Buy to Close");
    let pos = h.venue.positions(&["SPY   231215P00452500".into(), "AAPL".into()]).await.unwrap();
    assert_eq!(pos, vec![("SPY   231215P00452500".into(), q("-2")), ("AAPL".into(), Quantity::ZERO)]);
}
