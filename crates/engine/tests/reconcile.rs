//! Reconciliation against what a venue reports: fills missed while
//! disconnected are applied exactly once; a submission that timed out is
//! found or confirmed absent; venue-side cancels are reflected; a restart
//! (replay) and a second reconciliation change nothing; what cannot be
//! explained is reported, never applied.

use engine::reconcile::{Difference, VenueFill, VenueOrder, VenueOrderStatus, VenueSnapshot, reconcile};
use engine::{Command, Engine, Event, ExecutionReport, Input, OrderRequest, Output, Submission};
use model::{
    ClientOrderId, Currency, Instrument, InstrumentId, Liquidity, Money, OrderId, OrderStatus, OrderType, Price,
    Quantity, RejectReason, Side, TimeInForce, Timestamp,
};
use proptest::prelude::*;

const X: InstrumentId = InstrumentId(1);

fn q(s: &str) -> Quantity {
    Quantity::parse(s).unwrap()
}

fn p(s: &str) -> Price {
    Price::parse(s).unwrap()
}

fn m(s: &str) -> Money {
    Money::parse(s).unwrap()
}

fn cid(s: &str) -> ClientOrderId {
    ClientOrderId::parse(s).unwrap()
}

/// An engine with one instrument, a million USD and a mark of 100, and the
/// events it journaled (for replays).
struct Account {
    engine: Engine,
    events: Vec<Event>,
    out: Output,
}

impl Account {
    fn new() -> Self {
        let mut a =
            Self { engine: Engine::new(Currency::parse("USD").unwrap()), events: Vec::new(), out: Output::default() };
        a.input(Input::Command(Command::AddInstrument { instrument: Instrument::simple(1, "XYZ") }));
        a.input(Input::Command(Command::AdjustCash {
            currency: Currency::parse("USD").unwrap(),
            amount: m("1000000"),
        }));
        a.input(Input::Mark { instrument: X, price: p("100") });
        a
    }

    fn now(&self) -> Timestamp {
        self.engine.clock().plus_nanos(1_000).max(Timestamp::from_secs(1_700_000_000))
    }

    fn input(&mut self, input: Input) {
        self.out.clear();
        let now = self.now();
        self.engine.process(&input, now, &mut self.out).unwrap();
        self.events.append(&mut self.out.events);
    }

    fn buy(&mut self, id: &str, qty: &str) -> OrderId {
        let request = OrderRequest {
            client_order_id: cid(id),
            instrument: X,
            side: Side::Buy,
            order_type: OrderType::Limit { price: p("100") },
            time_in_force: TimeInForce::Gtc,
            quantity: q(qty),
            reduce_only: false,
            post_only: false,
            reference_price: None,
        };
        self.out.clear();
        let now = self.now();
        let submitted = self.engine.submit(&request, now, &mut self.out).unwrap();
        self.events.append(&mut self.out.events);
        match submitted {
            Submission::Sent(id) => id,
            other => panic!("not sent: {other:?}"),
        }
    }

    fn report(&mut self, report: ExecutionReport) {
        self.input(Input::Execution(report));
    }

    fn apply(&mut self, reports: &[ExecutionReport]) {
        for r in reports {
            self.report(r.clone());
        }
    }

    fn order(&self, id: OrderId) -> &model::Order {
        &self.engine.state().orders[&id]
    }

    fn reconcile(&self, venue: &VenueSnapshot) -> engine::reconcile::Reconciliation {
        reconcile(self.engine.state(), venue, self.now())
    }
}

fn fill(order_id: OrderId, trade_id: u64, qty: &str) -> ExecutionReport {
    ExecutionReport::Filled {
        order_id,
        trade_id,
        quantity: q(qty),
        price: p("100"),
        fee: m("0.1"),
        liquidity: Liquidity::Maker,
    }
}

fn venue_fill(id: &str, trade_id: u64, qty: &str) -> VenueFill {
    VenueFill {
        client_order_id: cid(id),
        trade_id,
        quantity: q(qty),
        price: p("100"),
        fee: m("0.1"),
        liquidity: Liquidity::Maker,
        asset_fee: Quantity::ZERO,
    }
}

fn venue_order(id: &str, status: VenueOrderStatus, filled: &str) -> VenueOrder {
    VenueOrder { client_order_id: cid(id), status, filled_quantity: q(filled) }
}

#[test]
fn fills_missed_while_down_are_applied_exactly_once_and_survive_a_restart() {
    let mut a = Account::new();
    let id = a.buy("b1", "10");
    a.report(ExecutionReport::Accepted { order_id: id });
    a.report(fill(id, 1, "4"));
    // Disconnected: trade 2 happened meanwhile and completed the order.
    let venue = VenueSnapshot {
        orders: vec![venue_order("b1", VenueOrderStatus::Filled, "10")],
        fills: vec![venue_fill("b1", 1, "4"), venue_fill("b1", 2, "6")],
        positions: vec![(X, q("10"))],
        ..VenueSnapshot::default()
    };
    let found = a.reconcile(&venue);
    assert_eq!(found.differences, vec![]);
    assert_eq!(found.reports, vec![fill(id, 2, "6")], "only the missed fill");
    a.apply(&found.reports);
    assert_eq!(a.order(id).status, OrderStatus::Filled);
    assert_eq!(a.engine.state().position(X), q("10"));

    // Again, and after a restart from the journal: nothing more to do.
    assert!(a.reconcile(&venue).is_clean());
    let restarted = Engine::replay(Currency::parse("USD").unwrap(), &a.events);
    assert_eq!(restarted.state().position(X), q("10"), "a restart neither doubles nor drops it");
    assert!(reconcile(restarted.state(), &venue, a.now()).is_clean());
}

#[test]
fn a_commission_taken_in_the_traded_asset_shrinks_the_position_once() {
    let mut a = Account::new();
    let id = a.buy("b1", "10");
    a.report(ExecutionReport::Accepted { order_id: id });
    // The venue kept 0.01 of the 10 bought as its commission.
    let fill = VenueFill { asset_fee: q("0.01"), ..venue_fill("b1", 1, "10") };
    let venue = VenueSnapshot {
        orders: vec![venue_order("b1", VenueOrderStatus::Filled, "10")],
        fills: vec![fill],
        positions: vec![(X, q("9.99"))],
        ..VenueSnapshot::default()
    };
    let found = a.reconcile(&venue);
    assert_eq!(found.differences, vec![], "the venue's 9.99 is explained");
    assert_eq!(
        found.reports.last(),
        Some(&ExecutionReport::AssetFee { order_id: id, trade_id: 1, quantity: q("0.01") })
    );
    a.apply(&found.reports);
    assert_eq!(a.order(id).filled_quantity, q("10"), "the order filled in full");
    assert_eq!(a.engine.state().position(X), q("9.99"));
    // The cost of the commission stays in the cost basis: 1000 for 9.99.
    let book = a.engine.state().book(X).unwrap();
    assert_eq!(book.position.cost_basis, m("1000"));

    // Charged once: again, and after a restart, nothing to do.
    assert!(a.reconcile(&venue).is_clean());
    let restarted = Engine::replay(Currency::parse("USD").unwrap(), &a.events);
    assert_eq!(restarted.state().position(X), q("9.99"));
    assert!(reconcile(restarted.state(), &venue, a.now()).is_clean());
    // A fee for a fill the engine never saw is refused.
    let mut fresh = Account::new();
    let other = fresh.buy("b2", "1");
    let mut out = Output::default();
    let stray = ExecutionReport::AssetFee { order_id: other, trade_id: 9, quantity: q("0.01") };
    assert!(fresh.engine.process(&Input::Execution(stray), fresh.now(), &mut out).is_err());
}

#[test]
fn a_timed_out_submission_is_found_or_confirmed_absent_without_a_duplicate() {
    let mut a = Account::new();
    let found = a.buy("t1", "5");
    let lost = a.buy("t2", "5");
    let venue = VenueSnapshot {
        orders: vec![venue_order("t1", VenueOrderStatus::Open, "0"), venue_order("t2", VenueOrderStatus::Absent, "0")],
        ..VenueSnapshot::default()
    };
    let result = a.reconcile(&venue);
    assert_eq!(result.differences, vec![]);
    assert_eq!(
        result.reports,
        vec![
            ExecutionReport::Accepted { order_id: found },
            ExecutionReport::Rejected { order_id: lost, reason: RejectReason::VenueRejected },
        ]
    );
    a.apply(&result.reports);
    assert_eq!(a.order(found).status, OrderStatus::Accepted);
    assert_eq!(a.order(lost).status, OrderStatus::Rejected);
    assert_eq!(a.engine.state().open_orders.len(), 1, "no second order was made");
    let venue = VenueSnapshot { orders: vec![venue_order("t1", VenueOrderStatus::Open, "0")], ..venue };
    assert!(a.reconcile(&venue).is_clean());

    // Should the "absent" order reach the venue after all, it is not
    // silently ignored: closed here, working there.
    let late = VenueSnapshot {
        orders: vec![venue_order("t1", VenueOrderStatus::Open, "0"), venue_order("t2", VenueOrderStatus::Open, "0")],
        ..venue
    };
    assert_eq!(
        a.reconcile(&late).differences,
        vec![Difference::Status { order_id: lost, ours: OrderStatus::Rejected, venue: VenueOrderStatus::Open }]
    );
}

#[test]
fn a_venue_side_cancel_is_reflected() {
    let mut a = Account::new();
    let id = a.buy("c1", "10");
    a.report(ExecutionReport::Accepted { order_id: id });
    a.report(fill(id, 7, "3"));
    let venue = VenueSnapshot {
        orders: vec![venue_order("c1", VenueOrderStatus::Cancelled, "3")],
        fills: vec![venue_fill("c1", 7, "3")],
        positions: vec![(X, q("3"))],
        ..VenueSnapshot::default()
    };
    let result = a.reconcile(&venue);
    assert_eq!(
        (result.reports.clone(), result.differences),
        (vec![ExecutionReport::Cancelled { order_id: id }], vec![])
    );
    a.apply(&result.reports);
    assert_eq!(a.order(id).status, OrderStatus::Cancelled);
    assert!(a.engine.state().open_orders.is_empty());
}

#[test]
fn what_cannot_be_explained_is_reported_not_applied() {
    let mut a = Account::new();
    let gone = a.buy("g1", "2");
    a.report(ExecutionReport::Accepted { order_id: gone });
    let silent = a.buy("s1", "2");
    a.report(ExecutionReport::Accepted { order_id: silent });
    let short = a.buy("f1", "4");
    a.report(ExecutionReport::Accepted { order_id: short });
    let venue = VenueSnapshot {
        orders: vec![
            venue_order("g1", VenueOrderStatus::Absent, "0"),
            // Filled 4 at the venue, but only one fill of 1 reported.
            venue_order("f1", VenueOrderStatus::Filled, "4"),
            venue_order("zz9", VenueOrderStatus::Open, "0"),
        ],
        foreign_open_orders: vec!["BTCUSDT buy 1 @ 10 (placed on the venue)".into()],
        fills: vec![venue_fill("f1", 1, "1"), venue_fill("nope", 5, "1")],
        positions: vec![(X, q("7"))],
    };
    let result = a.reconcile(&venue);
    assert_eq!(result.reports, vec![fill(short, 1, "1")], "the fill it can explain is still applied");
    let d = &result.differences;
    assert!(d.contains(&Difference::MissingAtVenue { order_id: gone }), "{d:?}");
    assert!(d.contains(&Difference::NotReported { order_id: silent }), "{d:?}");
    assert!(d.contains(&Difference::FilledQuantity { order_id: short, ours: q("1"), venue: q("4") }), "{d:?}");
    assert!(d.contains(&Difference::UnknownFill { client_order_id: cid("nope"), trade_id: 5 }), "{d:?}");
    assert!(d.iter().filter(|x| matches!(x, Difference::ForeignOrder { .. })).count() == 2, "{d:?}");
    assert!(d.contains(&Difference::Position { instrument: X, ours: q("1"), venue: q("7") }), "{d:?}");
    // The engine itself is untouched by reconcile.
    assert_eq!(a.order(gone).status, OrderStatus::Accepted);
}

#[derive(Debug, Clone)]
struct Plan {
    /// Per order: its fills (lots of 1..5) and whether the venue cancelled the rest.
    orders: Vec<(Vec<u8>, bool)>,
    /// How many of each order's fills the engine saw before disconnecting.
    seen: Vec<usize>,
}

fn plan() -> impl Strategy<Value = Plan> {
    prop::collection::vec((prop::collection::vec(1u8..=5, 0..6), any::<bool>()), 1..6).prop_flat_map(|orders| {
        let seen: Vec<_> = orders.iter().map(|(fills, _)| 0..=fills.len()).collect();
        (Just(orders), seen).prop_map(|(orders, seen)| Plan { orders, seen })
    })
}

proptest! {
    #[test]
    fn reconciling_brings_the_engine_to_the_venue_and_then_is_clean(plan in plan()) {
        let mut a = Account::new();
        let mut venue = VenueSnapshot::default();
        let mut position = 0u32;
        let mut trade = 0u64;
        for (n, (fills, cancelled)) in plan.orders.iter().enumerate() {
            let name = format!("o{n}");
            let total: u32 = fills.iter().map(|&f| u32::from(f)).sum::<u32>() + u32::from(*cancelled);
            let total = total.max(1);
            let id = a.buy(&name, &total.to_string());
            a.report(ExecutionReport::Accepted { order_id: id });
            let mut filled = 0u32;
            for (k, &lot) in fills.iter().enumerate() {
                trade += 1;
                if k < plan.seen[n] {
                    a.report(fill(id, trade, &lot.to_string()));
                }
                venue.fills.push(venue_fill(&name, trade, &lot.to_string()));
                filled += u32::from(lot);
            }
            position += filled;
            let status = if filled == total {
                VenueOrderStatus::Filled
            } else if *cancelled {
                VenueOrderStatus::Cancelled
            } else {
                VenueOrderStatus::Open
            };
            venue.orders.push(venue_order(&name, status, &filled.to_string()));
        }
        venue.positions.push((X, q(&position.to_string())));

        let result = a.reconcile(&venue);
        prop_assert_eq!(&result.differences, &vec![]);
        a.apply(&result.reports);
        prop_assert_eq!(a.engine.state().position(X), q(&position.to_string()));
        for v in &venue.orders {
            let id = a.engine.state().client_order_ids[&v.client_order_id];
            prop_assert_eq!(a.order(id).filled_quantity, v.filled_quantity);
        }
        prop_assert!(a.reconcile(&venue).is_clean(), "a second pass finds nothing");
        let restarted = Engine::replay(Currency::parse("USD").unwrap(), &a.events);
        prop_assert!(reconcile(restarted.state(), &venue, a.now()).is_clean(), "nor after a restart");
    }
}
