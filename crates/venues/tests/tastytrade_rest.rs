//! The TastyTrade REST client against a fake TastyTrade server speaking real
//! HTTP over loopback (see `fake_tastytrade`).

use venue_fakes::tastytrade as fake_tastytrade;

use std::time::Duration;

use axum::http::Method;
use fake_tastytrade::{ACCOUNT, CLIENT_SECRET, FakeTasty, FaultAction, REFRESH_TOKEN};
use model::{
    AssetClass, ClientOrderId, InstrumentId, Money, OrderStatus, OrderType, Price, Quantity, Side, TimeInForce,
};
use venues::tastytrade::{
    Action, CancelOutcome, Date, InstrumentType, NewOrder, OAuthCredentials, OccSymbol, PendingAction, PlaceOutcome,
    PositionEffect, PriceEffect, ReplaceOutcome, Replacement, Settlement, TastyClient, TastyConfig, TastyError,
    TastyOrder, TastyOrderStatus, TastyOrderType, TransactionQuery,
};

const ORDERS: &str = "/accounts/5WT00001/orders";
const OPTION: &str = "AAPL  240119C00150000";

fn p(s: &str) -> Price {
    Price::parse(s).unwrap()
}
fn q(s: &str) -> Quantity {
    Quantity::parse(s).unwrap()
}
fn money(s: &str) -> Money {
    Money::parse(s).unwrap()
}
fn cid(s: &str) -> ClientOrderId {
    ClientOrderId::parse(s).unwrap()
}

fn config(fake: &FakeTasty) -> TastyConfig {
    TastyConfig {
        base_url: Some(fake.url.clone()),
        request_timeout: Duration::from_millis(400),
        connect_timeout: Duration::from_secs(1),
        settle_page_size: 2,
        ..TastyConfig::default()
    }
}

fn client_with(config: TastyConfig) -> TastyClient {
    TastyClient::new(config, OAuthCredentials::new(CLIENT_SECRET, REFRESH_TOKEN).unwrap()).unwrap()
}

fn client(fake: &FakeTasty) -> TastyClient {
    client_with(config(fake))
}

fn equity_order(id: &str, side: Side, effect: PositionEffect, qty: &str, ty: OrderType, tif: TimeInForce) -> NewOrder {
    NewOrder::single_leg(&cid(id), AssetClass::Equity, "AAPL", side, effect, q(qty), &ty, tif).unwrap()
}

fn option_order(id: &str, side: Side, effect: PositionEffect, qty: &str, ty: OrderType) -> NewOrder {
    NewOrder::single_leg(&cid(id), AssetClass::EquityOption, OPTION, side, effect, q(qty), &ty, TimeInForce::Day)
        .unwrap()
}

async fn place(client: &TastyClient, order: &NewOrder) -> TastyOrder {
    match client.place_order(ACCOUNT, order).await.unwrap() {
        PlaceOutcome::Placed(placed) => placed.order,
        other => panic!("expected a placement, got {other:?}"),
    }
}

// ----- auth ------------------------------------------------------------------

#[tokio::test]
async fn access_token_obtained_once_and_sent_with_user_agent() {
    let fake = FakeTasty::start(900).await;
    let c = client(&fake);
    let accounts = c.accounts().await.unwrap();
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0].account.account_number, ACCOUNT);
    assert_eq!(accounts[0].account.margin_or_cash.as_deref(), Some("Margin"));
    assert_eq!(accounts[0].authority_level.as_deref(), Some("owner"));
    c.balances(ACCOUNT).await.unwrap();
    let st = fake.state();
    assert_eq!(st.grants, 1, "one token for both calls");
    assert_eq!(st.unauthorized, 0);
    assert!(st.log.iter().all(|l| l.user_agent.as_deref() == Some(venues::tastytrade::DEFAULT_USER_AGENT)));
    drop(st);
    assert_eq!(c.tokens().refresh_count(), 1);
    assert!(!format!("{c:?}").contains(CLIENT_SECRET) && !format!("{c:?}").contains(REFRESH_TOKEN));
}

#[tokio::test]
async fn token_refreshed_before_it_expires() {
    // Tokens live 2 s; the client replaces them 1.5 s early.
    let fake = FakeTasty::start(2).await;
    let c = client_with(TastyConfig { token_refresh_margin: Duration::from_millis(1500), ..config(&fake) });
    c.accounts().await.unwrap();
    tokio::time::sleep(Duration::from_millis(650)).await;
    c.accounts().await.unwrap();
    let st = fake.state();
    assert_eq!(st.grants, 2, "a second token was fetched before the first expired");
    assert_eq!(st.unauthorized, 0, "no request went out with an expired token");
}

#[tokio::test]
async fn token_refreshed_and_request_retried_once_after_401() {
    let fake = FakeTasty::start(900).await;
    let c = client(&fake);
    c.accounts().await.unwrap();
    fake.expire_tokens();
    // Also for a placement: the 401 was refused before acting, so the retry
    // cannot double the order.
    let order = equity_order("auth-1", Side::Buy, PositionEffect::Open, "1", OrderType::Market, TimeInForce::Day);
    let placed = place(&c, &order).await;
    assert_eq!(placed.external_identifier.as_deref(), Some("auth-1"));
    let st = fake.state();
    assert_eq!(st.unauthorized, 1);
    assert_eq!(st.grants, 2);
    assert_eq!(st.orders.len(), 1);
}

#[tokio::test]
async fn bad_credentials_and_missing_user_agent_are_rejected() {
    let fake = FakeTasty::start(900).await;
    let wrong = TastyClient::new(config(&fake), OAuthCredentials::new("wrong-secret", REFRESH_TOKEN).unwrap()).unwrap();
    let err = wrong.accounts().await.unwrap_err();
    assert!(
        matches!(&err, TastyError::Api { endpoint, status: 401, code, .. } if endpoint == "POST /oauth/token" && code == "invalid_grant"),
        "{err}"
    );
    assert!(!err.to_string().contains("wrong-secret"));
    // The fake refuses a request without User-Agent, as TastyTrade does.
    let raw = reqwest::Client::builder().build().unwrap();
    let resp = raw.get(format!("{}/customers/me/accounts", fake.url)).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    // A malformed user agent is refused locally.
    let bad = TastyConfig { user_agent: "tradecore".into(), ..config(&fake) };
    assert!(matches!(
        TastyClient::new(bad, OAuthCredentials::new(CLIENT_SECRET, REFRESH_TOKEN).unwrap()),
        Err(TastyError::Config(_))
    ));
}

// ----- account data --------------------------------------------------------------

#[tokio::test]
async fn balances_and_positions_are_exact() {
    let fake = FakeTasty::start(900).await;
    let c = client(&fake);
    let b = c.balances(ACCOUNT).await.unwrap();
    assert_eq!(b.account_number, ACCOUNT);
    assert_eq!(b.cash_balance, money("25000.125"));
    assert_eq!(b.net_liquidating_value, money("29401.359"));
    assert_eq!(b.equity_buying_power, money("50000.25"));
    assert_eq!(b.derivative_buying_power, money("25000.125"));
    assert_eq!(b.maintenance_requirement, Some(money("1320.37")));
    assert_eq!(b.pending_cash_effect, Some(PriceEffect::None));
    assert!(b.updated_at.is_some());

    let positions = c.positions(ACCOUNT).await.unwrap();
    assert_eq!(positions.len(), 2);
    let spy = positions.iter().find(|p| p.symbol == "SPY").unwrap();
    assert_eq!(spy.quantity, q("10"));
    assert_eq!(spy.average_open_price, Some(p("440.1234")));
    assert_eq!(spy.multiplier, Quantity::ONE);
    assert_eq!(spy.instrument_type, InstrumentType::Equity);
    let put = positions.iter().find(|p| p.instrument_type == InstrumentType::EquityOption).unwrap();
    assert_eq!(put.quantity, q("-2"), "short positions are negative");
    assert_eq!(put.multiplier, q("100"));
    assert!(put.expires_at.is_some());
    assert_eq!(OccSymbol::parse(&put.symbol).unwrap().strike, p("452.5"));
}

// ----- instruments ---------------------------------------------------------------

#[tokio::test]
async fn equity_and_option_instruments_are_mapped() {
    let fake = FakeTasty::start(900).await;
    let c = client(&fake);
    let aapl = c.equity_instrument("AAPL", InstrumentId(7)).await.unwrap();
    assert_eq!(aapl.id, InstrumentId(7));
    assert_eq!(aapl.venue, "tastytrade");
    assert_eq!(aapl.asset_class, AssetClass::Equity);
    assert_eq!(aapl.tick_size, p("0.01"));
    assert_eq!(aapl.multiplier, Quantity::ONE);
    assert_eq!(aapl.quote_currency.as_str(), "USD");
    let info = c.equity("AAPL").await.unwrap();
    assert_eq!(info.tick_schedule().tick_for(p("0.5")), Some(p("0.0001")));

    let occ = OccSymbol::parse("AAPL240119C00150000").unwrap();
    let opt = c.equity_option_instrument(&occ, InstrumentId(8)).await.unwrap();
    assert_eq!(opt.symbol, OPTION);
    assert_eq!(opt.asset_class, AssetClass::EquityOption);
    assert_eq!(opt.multiplier, q("100"));
    assert_eq!(opt.tick_size, p("0.05"), "coarsest option tick of the underlying");
    assert_eq!(opt.base_currency.as_str(), "AAPL");
    assert_eq!(opt.notional(p("2.5"), q("3")), money("750"));
    // The option request went out with the padded symbol, percent-encoded.
    assert_eq!(fake.count(&Method::GET, "/instruments/equity-options/AAPL%20%20240119C00150000"), 1);

    let missing = c.equity("NOPE").await.unwrap_err();
    assert!(
        matches!(&missing, TastyError::Api { status: 404, code, endpoint, .. } if code == "record_not_found" && endpoint == "GET /instruments/equities/NOPE"),
        "{missing}"
    );
    let token = c.quote_token().await.unwrap();
    assert_eq!(token.dxlink_url, "wss://tasty-openapi-ws.dxfeed.com/realtime");
    assert!(!format!("{token:?}").contains("dxlink-secret-token"));
}

// ----- orders --------------------------------------------------------------------

#[tokio::test]
async fn each_order_type_dry_runs_places_and_cancels() {
    let fake = FakeTasty::start(900).await;
    let c = client(&fake);
    let cases = [
        ("mkt-1", OrderType::Market, TastyOrderType::Market),
        ("lmt-1", OrderType::Limit { price: p("170.25") }, TastyOrderType::Limit),
        ("stp-1", OrderType::Stop { trigger_price: p("180") }, TastyOrderType::Stop),
        ("stl-1", OrderType::StopLimit { trigger_price: p("180"), price: p("181.5") }, TastyOrderType::StopLimit),
    ];
    for (id, ty, tasty_ty) in cases {
        let order = equity_order(id, Side::Buy, PositionEffect::Open, "10", ty, TimeInForce::Gtc);
        let dry = c.dry_run(ACCOUNT, &order).await.unwrap();
        assert!(dry.warnings.is_empty(), "{id}: {:?}", dry.warnings);
        assert_eq!(dry.order.id, None);
        let fees = dry.fee_calculation.clone().unwrap();
        assert_eq!(fees.total_fees.amount, money("0.008"), "{id}: clearing 0.0008/share");
        assert_eq!(fees.total_cost(), money("0.008"));
        let bpe = dry.buying_power_effect.clone().unwrap();
        assert_eq!(bpe.change_in_buying_power.clone().unwrap().effect, PriceEffect::Debit);
        assert!(bpe.change_in_buying_power.unwrap().signed().is_negative());

        let placed = place(&c, &order).await;
        let order_id = placed.id.unwrap();
        assert_eq!(placed.order_type, tasty_ty);
        assert_eq!(placed.status, TastyOrderStatus::Routed);
        assert_eq!(placed.model_status(), Some(OrderStatus::New));
        assert_eq!(placed.external_identifier.as_deref(), Some(id));
        assert_eq!(placed.legs[0].action, Action::BuyToOpen);
        assert_eq!(placed.legs[0].quantity, q("10"));
        match c.cancel_order(ACCOUNT, order_id).await.unwrap() {
            CancelOutcome::Cancelled(o) => {
                assert_eq!(o.status, TastyOrderStatus::Cancelled);
                assert_eq!(o.model_status(), Some(OrderStatus::Cancelled));
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(fake.state().orders.len(), 4);
    assert_eq!(fake.count(&Method::POST, &format!("{ORDERS}/dry-run")), 4);

    // An option: whole contracts, $1/contract to open plus $0.10 clearing.
    let order = option_order("opt-1", Side::Buy, PositionEffect::Open, "2", OrderType::Limit { price: p("2.45") });
    let dry = c.dry_run(ACCOUNT, &order).await.unwrap();
    assert_eq!(dry.fee_calculation.unwrap().total_fees.amount, money("2.2"));
    assert_eq!(dry.buying_power_effect.unwrap().isolated_order_margin_requirement.unwrap().amount, money("490"));
    let placed = place(&c, &order).await;
    assert_eq!(placed.legs[0].symbol, OPTION);
    assert_eq!(placed.legs[0].instrument_type, InstrumentType::EquityOption);
}

#[tokio::test]
async fn orders_from_the_engine_model() {
    let fake = FakeTasty::start(900).await;
    let c = client(&fake);
    let instrument = c.equity_instrument("AAPL", InstrumentId(3)).await.unwrap();
    let order = model::Order {
        id: model::OrderId(1),
        client_order_id: cid("bot-7:exit_1"),
        instrument: InstrumentId(3),
        side: Side::Sell,
        order_type: OrderType::Limit { price: p("190.1") },
        time_in_force: TimeInForce::Day,
        quantity: q("5"),
        filled_quantity: Quantity::ZERO,
        filled_notional: Money::ZERO,
        fees: Money::ZERO,
        reduce_only: true,
        post_only: false,
        status: OrderStatus::New,
        reject_reason: None,
        ts_created: model::Timestamp::from_secs(0),
        ts_updated: model::Timestamp::from_secs(0),
    };
    assert!(matches!(
        NewOrder::from_order(&order, &instrument, PositionEffect::Open),
        Err(TastyError::InvalidOrder(_))
    ));
    let new = NewOrder::from_order(&order, &instrument, PositionEffect::Close).unwrap();
    let placed = place(&c, &new).await;
    assert_eq!(placed.legs[0].action, Action::SellToClose);
    assert_eq!(placed.price_effect, Some(PriceEffect::Credit));
    assert_eq!(placed.time_in_force.as_str(), "Day");
    assert_eq!(placed.external_identifier.as_deref(), Some("bot-7:exit_1"));
    let ioc = NewOrder::from_order(
        &model::Order { time_in_force: TimeInForce::Ioc, ..order.clone() },
        &instrument,
        PositionEffect::Close,
    )
    .unwrap();
    assert_eq!(ioc.time_in_force.as_str(), "IOC");
    let fok = NewOrder::from_order(
        &model::Order { time_in_force: TimeInForce::Fok, ..order },
        &instrument,
        PositionEffect::Close,
    );
    assert!(matches!(fok, Err(TastyError::InvalidOrder(m)) if m.contains("fill-or-kill")));
}

#[tokio::test]
async fn live_and_filled_transitions_and_positions() {
    let fake = FakeTasty::start(900).await;
    let c = client(&fake);
    let order = option_order("fill-1", Side::Buy, PositionEffect::Open, "3", OrderType::Limit { price: p("2.5") });
    let id = place(&c, &order).await.id.unwrap();
    fake.make_live(id);
    let live = c.order(ACCOUNT, id).await.unwrap();
    assert_eq!(live.status, TastyOrderStatus::Live);
    assert_eq!(live.model_status(), Some(OrderStatus::Accepted));
    assert!(live.cancellable && live.editable);
    fake.fill(id, "2.45");
    let filled = c.order(ACCOUNT, id).await.unwrap();
    assert_eq!(filled.status, TastyOrderStatus::Filled);
    assert_eq!(filled.model_status(), Some(OrderStatus::Filled));
    assert_eq!(filled.filled_quantity(), q("3"));
    assert_eq!(filled.legs[0].fills[0].fill_price, p("2.45"));
    assert_eq!(filled.legs[0].remaining_quantity, Some(Quantity::ZERO));
    let live_list = c.live_orders(ACCOUNT).await.unwrap();
    assert!(live_list.iter().any(|o| o.id == Some(id) && o.status == TastyOrderStatus::Filled));
    let positions = c.positions(ACCOUNT).await.unwrap();
    let pos = positions.iter().find(|p| p.symbol == OPTION).unwrap();
    assert_eq!(pos.quantity, q("3"));
    // 25000.125 - 3 x 2.45 x 100, less the fees: 3 x 0.10 clearing + 3 x 1.00 commission to open.
    assert_eq!(c.balances(ACCOUNT).await.unwrap().cash_balance, money("24261.825"));
    // A filled order can no longer be cancelled; the error names the endpoint and code.
    let err = c.cancel_order(ACCOUNT, id).await.unwrap_err();
    assert!(
        matches!(&err, TastyError::Api { status: 422, code, endpoint, .. }
            if code == "order_not_cancellable" && endpoint == &format!("DELETE {ORDERS}/{id}")),
        "{err}"
    );
}

#[tokio::test]
async fn transactions_are_typed_paged_and_carry_signed_fees() {
    let fake = FakeTasty::start(900).await;
    // settle_page_size 2: three trades come in two pages.
    let c = client(&fake);
    let shares = equity_order("tx-1", Side::Buy, PositionEffect::Open, "10", OrderType::Market, TimeInForce::Day);
    let shares_id = place(&c, &shares).await.id.unwrap();
    fake.fill(shares_id, "175.00");
    let open = option_order("tx-2", Side::Buy, PositionEffect::Open, "3", OrderType::Limit { price: p("2.45") });
    let open_id = place(&c, &open).await.id.unwrap();
    fake.fill(open_id, "2.45");
    let close = option_order("tx-3", Side::Sell, PositionEffect::Close, "1", OrderType::Limit { price: p("2.5") });
    let close_id = place(&c, &close).await.id.unwrap();
    fake.fill(close_id, "2.50");

    let start = Date::parse_iso("2026-06-08").unwrap();
    let all = c.transactions(ACCOUNT, &TransactionQuery::trades_since(start)).await.unwrap();
    let path = format!("/accounts/{ACCOUNT}/transactions");
    assert_eq!(fake.count(&Method::GET, &path), 2, "two pages of two");
    assert!(fake.state().log.iter().filter(|l| l.path == path).all(|l| l.status == 200 && l.user_agent.is_some()));
    assert_eq!(all.len(), 3);
    // Newest first: the same fill time, so by id.
    assert_eq!(all.iter().map(|t| t.order_id.unwrap()).collect::<Vec<_>>(), vec![close_id, open_id, shares_id]);
    let at = model::Timestamp::parse("2026-06-09T15:30:00Z").unwrap();
    for t in &all {
        assert!(t.is_trade(), "{t:?}");
        assert_eq!(t.account_number.as_deref(), Some(ACCOUNT));
        assert_eq!(t.executed_at, Some(at));
        assert_eq!(t.transaction_date.as_deref(), Some("2026-06-09"));
        assert!(t.is_estimated_fee);
        assert!(t.ext_exec_id.is_some());
    }
    let [sold, bought, aapl] = [&all[0], &all[1], &all[2]];

    // Shares: 0.0008/share clearing, no commission; the value is a debit.
    assert_eq!(aapl.symbol.as_deref(), Some("AAPL"));
    assert_eq!(aapl.instrument_type, Some(InstrumentType::Equity));
    assert_eq!(aapl.action, Some(Action::BuyToOpen));
    assert_eq!((aapl.quantity, aapl.price), (Some(q("10")), Some(p("175"))));
    assert_eq!(aapl.value.as_ref().unwrap().signed(), money("-1750"));
    assert_eq!(aapl.clearing_fees.as_ref().unwrap().effect, PriceEffect::Debit);
    assert_eq!(aapl.commission.as_ref().unwrap().amount, Money::ZERO);
    assert_eq!(aapl.fee_cost(), money("0.008"));
    assert_eq!(aapl.net_value.as_ref().unwrap().signed(), money("-1750.008"));

    // Options to open: 0.10 clearing and 1.00 commission a contract; to
    // close, clearing only. A sale's value is a credit, less the fees.
    assert_eq!(bought.symbol.as_deref(), Some(OPTION));
    assert_eq!(bought.underlying_symbol.as_deref(), Some("AAPL"));
    assert_eq!(bought.instrument_type, Some(InstrumentType::EquityOption));
    assert_eq!(bought.value.as_ref().unwrap().signed(), money("-735"));
    assert_eq!(bought.commission.as_ref().unwrap().signed(), money("-3"));
    assert_eq!(bought.fee_cost(), money("3.3"));
    assert_eq!(sold.action, Some(Action::SellToClose));
    assert_eq!(sold.transaction_sub_type.as_deref(), Some("Sell to Close"));
    assert_eq!(sold.fee_cost(), money("0.1"));
    assert_eq!(sold.net_value.as_ref().unwrap().signed(), money("249.9"));
    // The fees left the cash balance with the values.
    let cash = c.balances(ACCOUNT).await.unwrap().cash_balance;
    assert_eq!(cash, money("25000.125") - money("1750") - money("735") + money("250") - money("3.408"));

    // Oldest first, one page, filters.
    let asc = TransactionQuery { ascending: true, per_page: Some(10), ..TransactionQuery::trades_since(start) };
    let (page, more) = c.transactions_page(ACCOUNT, &asc, 0).await.unwrap();
    assert!(!more);
    assert_eq!(page.iter().map(|t| t.id).collect::<Vec<_>>(), all.iter().rev().map(|t| t.id).collect::<Vec<_>>());
    let option_only = TransactionQuery { symbol: Some(OPTION.into()), ..TransactionQuery::trades_since(start) };
    assert_eq!(c.transactions(ACCOUNT, &option_only).await.unwrap().len(), 2);
    let later = TransactionQuery::trades_since(Date::parse_iso("2026-06-10").unwrap());
    assert!(c.transactions(ACCOUNT, &later).await.unwrap().is_empty());
    let until = TransactionQuery { end_date: Date::parse_iso("2026-06-08"), ..TransactionQuery::default() };
    assert!(c.transactions(ACCOUNT, &until).await.unwrap().is_empty());
    let money_moves =
        TransactionQuery { transaction_type: Some("Money Movement".into()), ..TransactionQuery::default() };
    assert!(c.transactions(ACCOUNT, &money_moves).await.unwrap().is_empty());

    // Effects apply: a regulatory rebate (Credit) lowers the cost.
    fake.state().transactions.iter_mut().find(|t| t.order_id == shares_id).unwrap().regulatory_fees = money("-0.05");
    let all = c.transactions(ACCOUNT, &TransactionQuery::trades_since(start)).await.unwrap();
    let aapl = all.iter().find(|t| t.order_id == Some(shares_id)).unwrap();
    assert_eq!(aapl.regulatory_fees.as_ref().unwrap().effect, PriceEffect::Credit);
    assert_eq!(aapl.fee_cost(), money("-0.042"), "0.008 paid, 0.05 rebated");

    // The endpoint wants a bearer token, like the others.
    let raw = reqwest::Client::builder().user_agent("probe/1.0").build().unwrap();
    let resp = raw.get(format!("{}{path}", fake.url)).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    // Another account's transactions are not found.
    let err = c.transactions("5WT99999", &TransactionQuery::default()).await.unwrap_err();
    assert_eq!(err.status(), Some(404), "{err}");
}

#[tokio::test]
async fn replace_changes_price_and_type_under_a_new_id() {
    let fake = FakeTasty::start(900).await;
    let c = client(&fake);
    let order = equity_order(
        "rep-1",
        Side::Buy,
        PositionEffect::Open,
        "4",
        OrderType::Limit { price: p("170") },
        TimeInForce::Day,
    );
    let old_id = place(&c, &order).await.id.unwrap();
    fake.make_live(old_id);
    let replacement = Replacement::new(
        &cid("rep-1b"),
        Side::Buy,
        &OrderType::StopLimit { trigger_price: p("171"), price: p("171.5") },
        TimeInForce::Gtc,
    )
    .unwrap();
    let new = match c.replace_order(ACCOUNT, old_id, &replacement).await.unwrap() {
        ReplaceOutcome::Replaced(o) => o,
        other => panic!("{other:?}"),
    };
    assert_ne!(new.id, Some(old_id));
    assert_eq!(new.replaces_order_id, Some(old_id));
    assert_eq!(new.order_type, TastyOrderType::StopLimit);
    assert_eq!(new.price, Some(p("171.5")));
    assert_eq!(new.stop_trigger, Some(p("171")));
    assert_eq!(new.external_identifier.as_deref(), Some("rep-1b"));
    assert_eq!(new.quantity(), q("4"));
    let old = c.order(ACCOUNT, old_id).await.unwrap();
    assert_eq!(old.status, TastyOrderStatus::Cancelled);
    assert_eq!(old.replacing_order_id, new.id);
    // Each order type can be a replacement too: market, limit, stop.
    let mut current = new.id.unwrap();
    for (n, ty) in
        [OrderType::Market, OrderType::Limit { price: p("169.99") }, OrderType::Stop { trigger_price: p("160") }]
            .into_iter()
            .enumerate()
    {
        let r = Replacement::new(&cid(&format!("rep-1-{n}")), Side::Buy, &ty, TimeInForce::Day).unwrap();
        match c.replace_order(ACCOUNT, current, &r).await.unwrap() {
            ReplaceOutcome::Replaced(o) => current = o.id.unwrap(),
            other => panic!("{other:?}"),
        }
    }
    // Off-tick replacement price: the documented preflight error.
    let bad = Replacement::new(&cid("rep-bad"), Side::Buy, &OrderType::Limit { price: p("170.005") }, TimeInForce::Day)
        .unwrap();
    let err = c.replace_order(ACCOUNT, current, &bad).await.unwrap_err();
    assert_eq!(err.code(), Some("preflight_check_failure"));
    assert_eq!(err.details()[0].code.as_deref(), Some("invalid_price_increment"));
}

#[tokio::test]
async fn rejections_carry_the_documented_error() {
    let fake = FakeTasty::start(900).await;
    let c = client(&fake);
    // Off the tick grid: 422 preflight_check_failure with the failed check.
    let off_tick = equity_order(
        "rej-1",
        Side::Buy,
        PositionEffect::Open,
        "1",
        OrderType::Limit { price: p("170.005") },
        TimeInForce::Day,
    );
    let err = c.place_order(ACCOUNT, &off_tick).await.unwrap_err();
    match &err {
        TastyError::Api { endpoint, status, code, errors, .. } => {
            assert_eq!(endpoint, &format!("POST {ORDERS}"));
            assert_eq!(*status, 422);
            assert_eq!(code, "preflight_check_failure");
            assert_eq!(errors[0].code.as_deref(), Some("invalid_price_increment"));
            assert!(errors[0].message.as_deref().unwrap_or("").contains("0.01"));
        }
        other => panic!("{other}"),
    }
    assert!(!err.is_execution_unknown());
    // Below $1 the finer tick applies.
    let cheap = equity_order(
        "rej-1b",
        Side::Buy,
        PositionEffect::Open,
        "1",
        OrderType::Limit { price: p("0.5005") },
        TimeInForce::Day,
    );
    place(&c, &cheap).await;
    // Option tick: 0.05 above $3.
    let opt = option_order("rej-2", Side::Buy, PositionEffect::Open, "1", OrderType::Limit { price: p("26.52") });
    assert_eq!(
        c.place_order(ACCOUNT, &opt).await.unwrap_err().details()[0].code.as_deref(),
        Some("invalid_price_increment")
    );
    // Not enough buying power: rejected on submit, a warning on dry run.
    let big = equity_order(
        "rej-3",
        Side::Buy,
        PositionEffect::Open,
        "1000",
        OrderType::Limit { price: p("175") },
        TimeInForce::Day,
    );
    let err = c.place_order(ACCOUNT, &big).await.unwrap_err();
    assert_eq!(err.details()[0].code.as_deref(), Some("insufficient_buying_power"));
    let dry = c.dry_run(ACCOUNT, &big).await.unwrap();
    assert_eq!(dry.warnings[0].code.as_deref(), Some("insufficient_buying_power"));
    // Malformed JSON order (a limit without price, built by hand): 400 validation_error.
    let mut no_price = off_tick.clone();
    no_price.price = None;
    no_price.external_identifier = "rej-4".into();
    let err = c.place_order(ACCOUNT, &no_price).await.unwrap_err();
    assert!(matches!(&err, TastyError::Api { status: 400, code, .. } if code == "validation_error"), "{err}");
    assert!(err.details().iter().any(|d| d.code.as_deref() == Some("price")));
    // Wrong price effect for the action.
    let mut wrong_effect = off_tick.clone();
    wrong_effect.price = Some(p("170"));
    wrong_effect.price_effect = Some(PriceEffect::Credit);
    assert_eq!(c.place_order(ACCOUNT, &wrong_effect).await.unwrap_err().code(), Some("validation_error"));
    // Fractional shares are refused by the fake (not fractional-eligible).
    let fractional = equity_order("rej-5", Side::Buy, PositionEffect::Open, "1.5", OrderType::Market, TimeInForce::Day);
    assert_eq!(c.place_order(ACCOUNT, &fractional).await.unwrap_err().code(), Some("validation_error"));
    // Only the cheap order exists.
    assert_eq!(fake.state().orders.len(), 1);
}

// ----- unknown outcomes -----------------------------------------------------------

#[tokio::test]
async fn timed_out_placement_that_took_effect_is_found_by_external_identifier() {
    let fake = FakeTasty::start(900).await;
    let c = client(&fake);
    fake.fault(Method::POST, ORDERS, FaultAction::StallAfter(Duration::from_millis(1200)), 1);
    let order = equity_order(
        "unk-1",
        Side::Buy,
        PositionEffect::Open,
        "2",
        OrderType::Limit { price: p("170") },
        TimeInForce::Day,
    );
    let unknown = match c.place_order(ACCOUNT, &order).await.unwrap() {
        PlaceOutcome::StatusUnknown(u) => u,
        other => panic!("{other:?}"),
    };
    assert_eq!(unknown.action, PendingAction::Place);
    assert_eq!(unknown.external_identifier, "unk-1");
    assert!(unknown.cause.contains("POST /accounts/5WT00001/orders"), "{}", unknown.cause);
    match c.settle(&unknown).await.unwrap() {
        Settlement::Found(o) => {
            assert_eq!(o.external_identifier.as_deref(), Some("unk-1"));
            assert_eq!(o.status, TastyOrderStatus::Routed);
        }
        Settlement::Absent => panic!("the order exists"),
    }
    assert_eq!(fake.count(&Method::POST, ORDERS), 1, "never resubmitted");
    assert_eq!(fake.orders_with_external_id("unk-1"), 1);
}

#[tokio::test]
async fn timed_out_placement_without_effect_is_confirmed_absent() {
    let fake = FakeTasty::start(900).await;
    let c = client(&fake);
    // An older order in the account, so the search has something to page through.
    for n in 0..5 {
        let o = equity_order(
            &format!("old-{n}"),
            Side::Buy,
            PositionEffect::Open,
            "1",
            OrderType::Market,
            TimeInForce::Day,
        );
        let id = place(&c, &o).await.id.unwrap();
        fake.age(id);
    }
    fake.fault(Method::POST, ORDERS, FaultAction::StallBefore(Duration::from_millis(800)), 1);
    let order = equity_order("unk-2", Side::Buy, PositionEffect::Open, "1", OrderType::Market, TimeInForce::Day);
    let PlaceOutcome::StatusUnknown(unknown) = c.place_order(ACCOUNT, &order).await.unwrap() else {
        panic!("expected an unknown outcome")
    };
    assert_eq!(c.settle(&unknown).await.unwrap(), Settlement::Absent);
    assert_eq!(fake.orders_with_external_id("unk-2"), 0);
    // Five older orders at two per page: three pages searched.
    assert_eq!(fake.count(&Method::GET, ORDERS), 3);
}

#[tokio::test]
async fn server_errors_on_placement_are_settled_too() {
    let fake = FakeTasty::start(900).await;
    let c = client(&fake);
    // 500 after the order was taken: found.
    fake.fault(Method::POST, ORDERS, FaultAction::Error500After, 1);
    let order = equity_order("err-1", Side::Buy, PositionEffect::Open, "1", OrderType::Market, TimeInForce::Day);
    let PlaceOutcome::StatusUnknown(unknown) = c.place_order(ACCOUNT, &order).await.unwrap() else { panic!() };
    assert!(matches!(c.settle(&unknown).await.unwrap(), Settlement::Found(_)));
    // 500 before: absent.
    fake.fault(Method::POST, ORDERS, FaultAction::Error500Before, 1);
    let order = equity_order("err-2", Side::Buy, PositionEffect::Open, "1", OrderType::Market, TimeInForce::Day);
    let PlaceOutcome::StatusUnknown(unknown) = c.place_order(ACCOUNT, &order).await.unwrap() else { panic!() };
    assert_eq!(c.settle(&unknown).await.unwrap(), Settlement::Absent);
    // An order found through the search (not today's list).
    let aged = equity_order("err-3", Side::Buy, PositionEffect::Open, "1", OrderType::Market, TimeInForce::Day);
    fake.fault(Method::POST, ORDERS, FaultAction::StallAfter(Duration::from_millis(900)), 1);
    let PlaceOutcome::StatusUnknown(unknown) = c.place_order(ACCOUNT, &aged).await.unwrap() else { panic!() };
    let id = fake.state().orders.iter().find(|o| o.external_identifier.as_deref() == Some("err-3")).unwrap().id;
    fake.age(id);
    match c.settle(&unknown).await.unwrap() {
        Settlement::Found(o) => assert_eq!(o.id, Some(id)),
        Settlement::Absent => panic!("expected to find it by search"),
    }
    assert_eq!(fake.count(&Method::POST, ORDERS), 3);
    assert_eq!(fake.state().orders.len(), 2);
}

#[tokio::test]
async fn timed_out_cancel_and_replace_are_reported_unknown() {
    let fake = FakeTasty::start(900).await;
    let c = client(&fake);
    let order = equity_order(
        "cr-1",
        Side::Buy,
        PositionEffect::Open,
        "1",
        OrderType::Limit { price: p("150") },
        TimeInForce::Day,
    );
    let id = place(&c, &order).await.id.unwrap();
    let path = format!("{ORDERS}/{id}");
    fake.fault(Method::PUT, &path, FaultAction::StallAfter(Duration::from_millis(900)), 1);
    let r =
        Replacement::new(&cid("cr-1b"), Side::Buy, &OrderType::Limit { price: p("151") }, TimeInForce::Day).unwrap();
    let ReplaceOutcome::StatusUnknown(unknown) = c.replace_order(ACCOUNT, id, &r).await.unwrap() else { panic!() };
    assert_eq!(unknown.action, PendingAction::Replace { replaced_order_id: id });
    let Settlement::Found(new) = c.settle(&unknown).await.unwrap() else { panic!("replacement exists") };
    assert_eq!(new.replaces_order_id, Some(id));
    let new_id = new.id.unwrap();
    let new_path = format!("{ORDERS}/{new_id}");
    fake.fault(Method::DELETE, &new_path, FaultAction::Error500After, 1);
    match c.cancel_order(ACCOUNT, new_id).await.unwrap() {
        CancelOutcome::StatusUnknown { order_id, .. } => {
            assert_eq!(order_id, new_id);
            assert_eq!(c.order(ACCOUNT, order_id).await.unwrap().status, TastyOrderStatus::Cancelled);
        }
        other => panic!("{other:?}"),
    }
}
