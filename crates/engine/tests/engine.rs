//! Engine behaviour through its public interface: accounting, risk checks,
//! kill switches, idempotency, lifecycle errors and replay determinism.

use engine::{
    Command, Engine, EngineError, EventKind, ExecutionReport, Input, OrderRequest, Output, RiskLimits, Submission,
    SwitchScope, TradingState,
};
use model::{
    ClientOrderId, Currency, Instrument, InstrumentId, Liquidity, Money, OrderId, OrderStatus, OrderType, Price,
    Quantity, RejectReason, Side, TimeInForce, Timestamp,
};
use proptest::prelude::*;

const X: InstrumentId = InstrumentId(1);

fn usd() -> Currency {
    Currency::parse("USD").unwrap()
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

fn t(secs: i64) -> Timestamp {
    Timestamp::from_secs(1_700_000_000 + secs)
}

/// An engine with one instrument, 10,000 USD and a mark of 100.
fn setup(limits: RiskLimits) -> (Engine, Output) {
    let mut e = Engine::new(usd());
    let mut out = Output::default();
    let mut instrument = Instrument::simple(1, "XYZ");
    instrument.min_notional = m("10");
    for cmd in [
        Command::AddInstrument { instrument },
        Command::AdjustCash { currency: usd(), amount: m("10000") },
        Command::SetRiskLimits { limits },
    ] {
        e.process(&Input::Command(cmd), t(0), &mut out).unwrap();
    }
    e.process(&Input::Mark { instrument: X, price: p("100") }, t(0), &mut out).unwrap();
    (e, out)
}

fn request(id: &str, side: Side, qty: &str, order_type: OrderType) -> OrderRequest {
    OrderRequest {
        client_order_id: ClientOrderId::parse(id).unwrap(),
        instrument: X,
        side,
        order_type,
        time_in_force: TimeInForce::Gtc,
        quantity: q(qty),
        reduce_only: false,
        post_only: false,
        reference_price: None,
    }
}

/// A moment just after the engine's last input, so steps stay in order.
fn next(e: &Engine) -> Timestamp {
    e.clock().plus_nanos(1_000)
}

fn submit(e: &mut Engine, out: &mut Output, req: OrderRequest) -> Submission {
    let now = next(e);
    e.submit(&req, now, out).unwrap()
}

fn fill(e: &mut Engine, out: &mut Output, order_id: OrderId, trade_id: u64, qty: &str, price: &str, fee: &str) {
    let report = ExecutionReport::Filled {
        order_id,
        trade_id,
        quantity: q(qty),
        price: p(price),
        fee: m(fee),
        liquidity: Liquidity::Taker,
    };
    let now = next(e);
    e.process(&Input::Execution(report), now, out).unwrap();
}

fn sent(s: Submission) -> OrderId {
    match s {
        Submission::Sent(id) => id,
        other => panic!("expected the order to be sent, got {other:?}"),
    }
}

#[test]
fn long_round_trip_accounts_exactly() {
    let (mut e, mut out) = setup(RiskLimits::default());
    let buy = sent(submit(&mut e, &mut out, request("b1", Side::Buy, "10", OrderType::Market)));
    fill(&mut e, &mut out, buy, 1, "10", "100", "2");
    let s = e.state();
    assert_eq!(s.cash(usd()), m("8998"));
    assert_eq!(s.position(X), q("10"));
    assert_eq!(s.orders[&buy].status, OrderStatus::Filled);

    let sell = sent(submit(&mut e, &mut out, request("s1", Side::Sell, "4", OrderType::Market)));
    fill(&mut e, &mut out, sell, 2, "4", "110", "0.88");
    let book = e.state().book(X).unwrap();
    assert_eq!(book.position.quantity, q("6"));
    assert_eq!(book.position.realized_pnl, m("40"));
    assert_eq!(book.position.cost_basis, m("600"));
    assert_eq!(book.position.average_price(Quantity::ONE), Some(p("100")));
    assert_eq!(e.state().cash(usd()), m("9437.12"));
    let now = next(&e);
    e.process(&Input::Mark { instrument: X, price: p("105") }, now, &mut out).unwrap();
    assert_eq!(e.state().equity(), m("10067.12"));
    assert_eq!(e.state().book(X).unwrap().unrealized_pnl(), m("30"));
}

#[test]
fn reversal_splits_the_fill_between_close_and_open() {
    let (mut e, mut out) = setup(RiskLimits { allow_short: true, ..RiskLimits::default() });
    let buy = sent(submit(&mut e, &mut out, request("b1", Side::Buy, "3", OrderType::Market)));
    fill(&mut e, &mut out, buy, 1, "3", "100", "0");
    let sell = sent(submit(&mut e, &mut out, request("s1", Side::Sell, "5", OrderType::Market)));
    fill(&mut e, &mut out, sell, 2, "5", "90", "0");
    let pos = &e.state().book(X).unwrap().position;
    assert_eq!(pos.quantity, q("-2"));
    assert_eq!(pos.realized_pnl, m("-30"));
    assert_eq!(pos.cost_basis, m("-180"));
    // Buying back the short below its entry realizes a gain.
    let cover = sent(submit(&mut e, &mut out, request("c1", Side::Buy, "2", OrderType::Market)));
    fill(&mut e, &mut out, cover, 3, "2", "80", "0");
    let pos = &e.state().book(X).unwrap().position;
    assert!(pos.quantity.is_zero());
    assert_eq!(pos.realized_pnl, m("-10"));
    assert_eq!(pos.cost_basis, Money::ZERO);
    assert_eq!(e.state().cash(usd()), m("9990"));
}

#[test]
fn risk_checks_reject_with_stable_reasons() {
    let limits =
        RiskLimits { max_order_notional: Some(m("5000")), max_position: Some(q("40")), ..RiskLimits::default() };
    let cases: Vec<(&str, OrderRequest, RejectReason)> = vec![
        ("zero quantity", request("a", Side::Buy, "0", OrderType::Market), RejectReason::InvalidQuantity),
        ("off tick", request("b", Side::Buy, "1", OrderType::Limit { price: p("100.005") }), RejectReason::TickSize),
        ("off lot", request("c", Side::Buy, "1.5", OrderType::Market), RejectReason::LotSize),
        (
            "below min notional",
            request("d", Side::Buy, "1", OrderType::Limit { price: p("5") }),
            RejectReason::MinNotional,
        ),
        ("short in a cash account", request("e", Side::Sell, "1", OrderType::Market), RejectReason::ShortNotAllowed),
        ("max order notional", request("f", Side::Buy, "60", OrderType::Market), RejectReason::MaxOrderNotional),
        ("max position", request("g", Side::Buy, "45", OrderType::Limit { price: p("10") }), RejectReason::MaxPosition),
        (
            "negative price",
            request("h", Side::Buy, "1", OrderType::Limit { price: p("-1") }),
            RejectReason::InvalidPrice,
        ),
        (
            "unknown instrument",
            OrderRequest { instrument: InstrumentId(9), ..request("i", Side::Buy, "1", OrderType::Market) },
            RejectReason::UnknownInstrument,
        ),
    ];
    for (name, req, reason) in cases {
        let (mut e, mut out) = setup(limits.clone());
        let before = e.state().clone();
        match submit(&mut e, &mut out, req) {
            Submission::Denied(_, got) => assert_eq!(got, reason, "{name}"),
            other => panic!("{name}: expected a denial, got {other:?}"),
        }
        // A denial records the refused order and changes nothing else.
        assert_eq!(e.state().cash(usd()), before.cash(usd()), "{name}");
        assert!(e.state().open_orders.is_empty(), "{name}");
        assert!(out.venue_requests.is_empty(), "{name}");
    }
}

#[test]
fn insufficient_cash_counts_working_orders_and_fees() {
    let (mut e, mut out) =
        setup(RiskLimits { fee_rate_estimate: model::Rate::parse("0.01").unwrap(), ..RiskLimits::default() });
    // 60 * 100 * 1.01 = 6060 fits in 10,000.
    sent(submit(&mut e, &mut out, request("a", Side::Buy, "60", OrderType::Limit { price: p("100") })));
    // A second 40 would need 4040 more; only 3940 is free.
    let second = submit(&mut e, &mut out, request("b", Side::Buy, "40", OrderType::Limit { price: p("100") }));
    assert!(matches!(second, Submission::Denied(_, RejectReason::InsufficientCash)), "{second:?}");
    let third = submit(&mut e, &mut out, request("c", Side::Buy, "39", OrderType::Limit { price: p("100") }));
    assert!(matches!(third, Submission::Sent(_)), "{third:?}");
}

#[test]
fn kill_switches_halt_and_close_only() {
    let (mut e, mut out) = setup(RiskLimits::default());
    let buy = sent(submit(&mut e, &mut out, request("b1", Side::Buy, "10", OrderType::Market)));
    fill(&mut e, &mut out, buy, 1, "10", "100", "0");
    let resting = sent(submit(&mut e, &mut out, request("r1", Side::Buy, "1", OrderType::Limit { price: p("90") })));

    let set = |e: &mut Engine, out: &mut Output, scope, state| {
        let now = next(e);
        e.process(&Input::Command(Command::SetTradingState { scope, state }), now, out).unwrap();
    };
    set(&mut e, &mut out, SwitchScope::Account, TradingState::Reducing);
    let more = submit(&mut e, &mut out, request("b2", Side::Buy, "1", OrderType::Market));
    assert!(matches!(more, Submission::Denied(_, RejectReason::CloseOnly)), "{more:?}");
    let close = submit(&mut e, &mut out, request("s1", Side::Sell, "5", OrderType::Market));
    assert!(matches!(close, Submission::Sent(_)), "reducing orders pass close-only: {close:?}");

    set(&mut e, &mut out, SwitchScope::Global, TradingState::Halted);
    let halted = submit(&mut e, &mut out, request("s2", Side::Sell, "1", OrderType::Market));
    assert!(matches!(halted, Submission::Denied(_, RejectReason::KillSwitchGlobal)), "{halted:?}");
    // Cancels still work while halted.
    let now = next(&e);
    e.process(&Input::Command(Command::CancelOrder { order_id: resting }), now, &mut out).unwrap();
    assert_eq!(e.state().orders[&resting].status, OrderStatus::PendingCancel);

    set(&mut e, &mut out, SwitchScope::Global, TradingState::Active);
    set(&mut e, &mut out, SwitchScope::Account, TradingState::Halted);
    let halted = submit(&mut e, &mut out, request("s3", Side::Sell, "1", OrderType::Market));
    assert!(matches!(halted, Submission::Denied(_, RejectReason::KillSwitchAccount)), "{halted:?}");
}

#[test]
fn daily_loss_limit_blocks_new_exposure_until_the_next_day() {
    let (mut e, mut out) = setup(RiskLimits { daily_loss_limit: Some(m("500")), ..RiskLimits::default() });
    let buy = sent(submit(&mut e, &mut out, request("b1", Side::Buy, "50", OrderType::Market)));
    fill(&mut e, &mut out, buy, 1, "50", "100", "0");
    e.process(&Input::Mark { instrument: X, price: p("89") }, t(10), &mut out).unwrap();
    let more = submit(&mut e, &mut out, request("b2", Side::Buy, "1", OrderType::Market));
    assert!(matches!(more, Submission::Denied(_, RejectReason::DailyLossLimit)), "{more:?}");
    let reduce = submit(&mut e, &mut out, request("s1", Side::Sell, "1", OrderType::Market));
    assert!(matches!(reduce, Submission::Sent(_)), "{reduce:?}");
    // A new UTC day resets the baseline to the equity then.
    let next_day = Timestamp::from_nanos(t(0).as_nanos() + model::time::NANOS_PER_DAY);
    out.clear();
    e.process(&Input::Mark { instrument: X, price: p("89") }, next_day, &mut out).unwrap();
    assert!(matches!(out.events[0].kind, EventKind::DayStarted { .. }));
    let again = e.submit(&request("b3", Side::Buy, "1", OrderType::Market), next_day, &mut out).unwrap();
    assert!(matches!(again, Submission::Sent(_)), "{again:?}");
}

#[test]
fn day_pnl_is_kept_per_currency_without_deposits() {
    let (mut e, mut out) = setup(RiskLimits::default());
    // The day began when the first command arrived, before the deposit: the
    // deposit moved the baseline, so it is not profit.
    assert_eq!(e.state().day_pnl_in(usd()), Some(Money::ZERO));
    let buy = sent(submit(&mut e, &mut out, request("b1", Side::Buy, "10", OrderType::Market)));
    fill(&mut e, &mut out, buy, 1, "10", "100", "1");
    e.process(&Input::Mark { instrument: X, price: p("103") }, t(20), &mut out).unwrap();
    // +30 on the position, -1 of fee.
    assert_eq!(e.state().day_pnl_in(usd()), Some(m("29")));
    e.process(&Input::Command(Command::AdjustCash { currency: usd(), amount: m("500") }), t(30), &mut out).unwrap();
    assert_eq!(e.state().day_pnl_in(usd()), Some(m("29")), "a deposit is not profit");
    let eur = Currency::parse("EUR").unwrap();
    e.process(&Input::Command(Command::AdjustCash { currency: eur, amount: m("70") }), t(31), &mut out).unwrap();
    assert_eq!(e.state().day_pnl_in(eur), Some(Money::ZERO), "a currency first held mid-day starts at its deposit");
    // The next UTC day starts from the equity at the last mark (103), in
    // every currency; the new day's first mark (101) is already the day's.
    let next_day = Timestamp::from_nanos(t(0).as_nanos() + model::time::NANOS_PER_DAY);
    out.clear();
    e.process(&Input::Mark { instrument: X, price: p("101") }, next_day, &mut out).unwrap();
    assert_eq!(e.state().day_pnl_in(usd()), Some(m("-20")));
    let started = out.events.iter().find(|ev| matches!(ev.kind, EventKind::DayStarted { .. })).unwrap().clone();
    let EventKind::DayStarted { by_currency, .. } = &started.kind else { unreachable!() };
    // 9,499 cash (10,000 + 500 - 1,000 paid - 1 fee) + 1,030 of position.
    assert_eq!(by_currency.as_deref(), Some(&[(eur, m("70")), (usd(), m("10529"))][..]));
    // The baseline comes from the journaled event, so a replay has it too.
    let mut replayed = engine::AccountState::new(usd());
    replayed.apply(&started);
    assert_eq!(replayed.day_start_by_currency, e.state().day_start_by_currency);
}

#[test]
fn reduce_only_refuses_to_flip() {
    let (mut e, mut out) = setup(RiskLimits { allow_short: true, ..RiskLimits::default() });
    let buy = sent(submit(&mut e, &mut out, request("b1", Side::Buy, "2", OrderType::Market)));
    fill(&mut e, &mut out, buy, 1, "2", "100", "0");
    let mut req = request("s1", Side::Sell, "3", OrderType::Market);
    req.reduce_only = true;
    assert!(matches!(submit(&mut e, &mut out, req), Submission::Denied(_, RejectReason::ReduceOnly)));
}

#[test]
fn client_order_ids_make_submission_idempotent() {
    let (mut e, mut out) = setup(RiskLimits::default());
    let first = sent(submit(&mut e, &mut out, request("same", Side::Buy, "1", OrderType::Market)));
    out.clear();
    let again = submit(&mut e, &mut out, request("same", Side::Buy, "1", OrderType::Market));
    assert_eq!(again, Submission::Duplicate(first));
    assert!(out.events.is_empty() && out.venue_requests.is_empty());
    let now = next(&e);
    let conflict = e.submit(&request("same", Side::Buy, "2", OrderType::Market), now, &mut out);
    assert!(matches!(conflict, Err(EngineError::ClientOrderIdConflict(_))));
}

#[test]
fn nonsense_venue_reports_are_errors_and_change_nothing() {
    let (mut e, mut out) = setup(RiskLimits::default());
    let id = sent(submit(&mut e, &mut out, request("b1", Side::Buy, "2", OrderType::Market)));
    fill(&mut e, &mut out, id, 1, "1", "100", "0");
    let before = e.state().clone();
    let cases = [
        (
            "duplicate trade",
            ExecutionReport::Filled {
                order_id: id,
                trade_id: 1,
                quantity: q("1"),
                price: p("100"),
                fee: Money::ZERO,
                liquidity: Liquidity::Taker,
            },
        ),
        (
            "overfill",
            ExecutionReport::Filled {
                order_id: id,
                trade_id: 2,
                quantity: q("2"),
                price: p("100"),
                fee: Money::ZERO,
                liquidity: Liquidity::Taker,
            },
        ),
        ("unknown order", ExecutionReport::Accepted { order_id: OrderId(999) }),
        ("reject after fill", ExecutionReport::Rejected { order_id: id, reason: RejectReason::VenueRejected }),
        ("cancel reject without request", ExecutionReport::CancelRejected { order_id: id }),
    ];
    for (name, report) in cases {
        out.clear();
        let now = next(&e);
        assert!(e.process(&Input::Execution(report), now, &mut out).is_err(), "{name}");
        assert!(out.events.is_empty(), "{name}");
        assert_eq!(e.state(), &before, "{name}");
    }
    assert!(matches!(
        e.process(&Input::Mark { instrument: X, price: p("1") }, t(-5), &mut out),
        Err(EngineError::TimeWentBackwards { .. })
    ));
}

/// One step of a random session.
#[derive(Debug, Clone)]
enum Step {
    Submit { side: Side, qty: i64, limit: Option<i64> },
    Fill { pick: usize, fraction_pct: i64, price: i64, fee_cents: i64 },
    Accept { pick: usize },
    Cancel { pick: usize },
    Confirm { pick: usize },
    Mark { price: i64 },
    Switch { state: u8 },
    NextDay,
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    prop_oneof![
        (any::<bool>(), 1i64..20, proptest::option::of(80i64..120)).prop_map(|(b, qty, limit)| Step::Submit {
            side: if b { Side::Buy } else { Side::Sell },
            qty,
            limit
        }),
        (any::<usize>(), 1i64..=100, 80i64..120, 0i64..300)
            .prop_map(|(pick, fraction_pct, price, fee_cents)| Step::Fill { pick, fraction_pct, price, fee_cents }),
        any::<usize>().prop_map(|pick| Step::Accept { pick }),
        any::<usize>().prop_map(|pick| Step::Cancel { pick }),
        any::<usize>().prop_map(|pick| Step::Confirm { pick }),
        (80i64..120).prop_map(|price| Step::Mark { price }),
        (0u8..3).prop_map(|state| Step::Switch { state }),
        Just(Step::NextDay),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Replaying the events of any session rebuilds exactly the same state,
    /// and at every step equity = deposits + realized + unrealized - fees.
    #[test]
    fn replay_rebuilds_state_and_books_balance(steps in proptest::collection::vec(step(), 1..80)) {
        let (mut e, mut out) = setup(RiskLimits {
            allow_short: true,
            daily_loss_limit: Some(m("300")),
            fee_rate_estimate: model::Rate::parse("0.001").unwrap(),
            ..RiskLimits::default()
        });
        let mut journal = out.events.clone();
        let mut now = t(1);
        let mut next_trade = 1u64;
        for (n, s) in steps.into_iter().enumerate() {
            out.clear();
            now = now.plus_nanos(1_000_000_000);
            let open: Vec<OrderId> = e.state().open_orders.iter().copied().collect();
            let pick = |i: usize| if open.is_empty() { None } else { Some(open[i % open.len()]) };
            let result = match s {
                Step::Submit { side, qty, limit } => {
                    let order_type = limit.map_or(OrderType::Market, |l| OrderType::Limit { price: Price::from_int(l) });
                    let mut req = request(&format!("c{n}"), side, &qty.to_string(), order_type);
                    req.time_in_force = TimeInForce::Gtc;
                    e.submit(&req, now, &mut out).map(|_| ())
                }
                Step::Fill { pick: i, fraction_pct, price, fee_cents } => match pick(i) {
                    Some(id) => {
                        let remaining = e.state().orders[&id].remaining();
                        let qty = (remaining.raw() / 1_000_000_000 * fraction_pct / 100).max(1);
                        next_trade += 1;
                        e.process(&Input::Execution(ExecutionReport::Filled {
                            order_id: id,
                            trade_id: next_trade,
                            quantity: Quantity::from_int(qty),
                            price: Price::from_int(price),
                            fee: Money::from_raw(i128::from(fee_cents) * 10_000_000),
                            liquidity: Liquidity::Maker,
                        }), now, &mut out)
                    }
                    None => Ok(()),
                },
                Step::Accept { pick: i } => match pick(i) {
                    Some(id) => e.process(&Input::Execution(ExecutionReport::Accepted { order_id: id }), now, &mut out),
                    None => Ok(()),
                },
                Step::Cancel { pick: i } => match pick(i) {
                    Some(id) => e.process(&Input::Command(Command::CancelOrder { order_id: id }), now, &mut out),
                    None => Ok(()),
                },
                Step::Confirm { pick: i } => match pick(i) {
                    Some(id) => e.process(&Input::Execution(ExecutionReport::Cancelled { order_id: id }), now, &mut out),
                    None => Ok(()),
                },
                Step::Mark { price } => e.process(&Input::Mark { instrument: X, price: Price::from_int(price) }, now, &mut out),
                Step::Switch { state } => {
                    let state = [TradingState::Active, TradingState::Reducing, TradingState::Halted][usize::from(state)];
                    e.process(&Input::Command(Command::SetTradingState { scope: SwitchScope::Account, state }), now, &mut out)
                }
                Step::NextDay => {
                    now = now.plus_nanos(model::time::NANOS_PER_DAY);
                    e.process(&Input::Mark { instrument: X, price: Price::from_int(100) }, now, &mut out)
                }
            };
            if result.is_err() {
                // A refused input must leave no events behind.
                prop_assert!(out.events.is_empty());
            }
            journal.extend(out.events.iter().cloned());

            let s = e.state();
            let book = s.book(X).unwrap();
            let pos = &book.position;
            prop_assert_eq!(s.equity(), m("10000") + pos.realized_pnl + book.unrealized_pnl() - pos.fees);
            for order in s.orders.values() {
                prop_assert!(order.filled_quantity <= order.quantity);
                prop_assert_eq!(s.open_orders.contains(&order.id), order.status.is_open());
            }
        }
        let replayed = Engine::replay(usd(), &journal);
        // Marks are market data, not journaled: compare everything else.
        let mut live = e.state().clone();
        live.clear_marks();
        prop_assert_eq!(replayed.state(), &live);
        // The journal survives serialization unchanged.
        let json = serde_json::to_string(&journal).unwrap();
        let back: Vec<engine::Event> = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(&back, &journal);
    }
}
