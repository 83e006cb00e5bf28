//! Unit cases for the matching rules, and property tests against a reference
//! book that re-sorts a plain `Vec` of orders on every step.

use super::*;
use model::Money;
use proptest::prelude::*;

const TS: Timestamp = Timestamp::from_nanos(1_000);

fn px(units: i64) -> Price {
    Price::from_int(units)
}

fn qty(units: i64) -> Quantity {
    Quantity::from_int(units)
}

fn fees() -> FeeSchedule {
    // 1 bp maker, 5 bp taker.
    FeeSchedule { maker: Rate::from_bps(1), taker: Rate::from_bps(5) }
}

fn book() -> OrderBook {
    OrderBook::new(InstrumentId(7), Quantity::ONE, fees())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Place(NewOrder),
    Cancel(u64),
    /// id, new price, new total quantity (raw)
    Amend(u64, Option<i64>, Option<i64>),
}

fn order(id: u64, side: Side, price: Option<i64>, q: i64, tif: TimeInForce, post_only: bool) -> Op {
    Op::Place(NewOrder { id: OrderId(id), side, price: price.map(px), quantity: qty(q), time_in_force: tif, post_only })
}

fn buy(id: u64, p: i64, q: i64) -> Op {
    order(id, Side::Buy, Some(p), q, TimeInForce::Gtc, false)
}

fn sell(id: u64, p: i64, q: i64) -> Op {
    order(id, Side::Sell, Some(p), q, TimeInForce::Gtc, false)
}

fn amend(id: u64, p: Option<i64>, q: Option<i64>) -> Op {
    Op::Amend(id, p.map(|p| px(p).raw()), q.map(|q| qty(q).raw()))
}

fn apply(book: &mut OrderBook, op: Op, out: &mut Vec<BookEvent>) -> Result<(), BookError> {
    match op {
        Op::Place(o) => book.place(o, TS, out),
        Op::Cancel(id) => book.cancel(OrderId(id), TS, out),
        Op::Amend(id, p, q) => book.amend(OrderId(id), p.map(Price::from_raw), q.map(Quantity::from_raw), TS, out),
    }
}

/// Events without timestamps and fees, in whole units, for readable tables.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Acc(u64),
    /// order, quantity, price, maker?
    Fill(u64, i64, i64, Liquidity),
    Canc(u64, i64),
    Rej(u64, RejectReason),
    /// order, price, quantity, priority kept
    Amd(u64, i64, i64, bool),
}

fn units(raw: i64) -> i64 {
    raw / model::num::FIXED_SCALE
}

fn brief(e: &BookEvent) -> Ev {
    match e {
        BookEvent::Accepted { id, .. } => Ev::Acc(id.0),
        BookEvent::Fill(f) => Ev::Fill(f.order_id.0, units(f.quantity.raw()), units(f.price.raw()), f.liquidity),
        BookEvent::Cancelled { id, remaining, .. } => Ev::Canc(id.0, units(remaining.raw())),
        BookEvent::Rejected { id, reason, .. } => Ev::Rej(id.0, *reason),
        BookEvent::Amended { id, price, quantity, priority_kept, .. } => {
            Ev::Amd(id.0, units(price.raw()), units(quantity.raw()), *priority_kept)
        }
    }
}

fn depth_units(book: &OrderBook, side: Side) -> Vec<(i64, i64)> {
    book.depth(side, usize::MAX).into_iter().map(|(p, q)| (units(p.raw()), units(q.raw()))).collect()
}

use Liquidity::{Maker as M, Taker as T};

struct Case {
    name: &'static str,
    setup: Vec<Op>,
    action: Op,
    events: Vec<Ev>,
    bids: Vec<(i64, i64)>,
    asks: Vec<(i64, i64)>,
    /// Resting orders on each side in priority order after the action.
    queue: Vec<u64>,
}

#[allow(clippy::too_many_lines)]
fn cases() -> Vec<Case> {
    use TimeInForce::{Fok, Gtc, Ioc};
    vec![
        Case {
            name: "better price fills first regardless of age",
            setup: vec![sell(1, 102, 5), sell(2, 101, 5)],
            action: buy(10, 102, 7),
            events: vec![
                Ev::Acc(10),
                Ev::Fill(10, 5, 101, T),
                Ev::Fill(2, 5, 101, M),
                Ev::Fill(10, 2, 102, T),
                Ev::Fill(1, 2, 102, M),
            ],
            bids: vec![],
            asks: vec![(102, 3)],
            queue: vec![1],
        },
        Case {
            name: "oldest order at a price fills first",
            setup: vec![buy(1, 100, 3), buy(2, 100, 3), buy(3, 100, 3)],
            action: sell(10, 100, 4),
            events: vec![
                Ev::Acc(10),
                Ev::Fill(10, 3, 100, T),
                Ev::Fill(1, 3, 100, M),
                Ev::Fill(10, 1, 100, T),
                Ev::Fill(2, 1, 100, M),
            ],
            bids: vec![(100, 5)],
            asks: vec![],
            queue: vec![2, 3],
        },
        Case {
            name: "taker remainder rests at its limit",
            setup: vec![sell(1, 101, 2)],
            action: buy(10, 103, 5),
            events: vec![Ev::Acc(10), Ev::Fill(10, 2, 101, T), Ev::Fill(1, 2, 101, M)],
            bids: vec![(103, 3)],
            asks: vec![],
            queue: vec![10],
        },
        Case {
            name: "limit does not trade through its price",
            setup: vec![sell(1, 101, 2), sell(2, 105, 2)],
            action: buy(10, 104, 5),
            events: vec![Ev::Acc(10), Ev::Fill(10, 2, 101, T), Ev::Fill(1, 2, 101, M)],
            bids: vec![(104, 3)],
            asks: vec![(105, 2)],
            queue: vec![10, 2],
        },
        Case {
            name: "market walks several levels and cancels the rest",
            setup: vec![sell(1, 101, 1), sell(2, 102, 2), sell(3, 103, 3), buy(4, 99, 1)],
            action: order(10, Side::Buy, None, 10, Gtc, false),
            events: vec![
                Ev::Acc(10),
                Ev::Fill(10, 1, 101, T),
                Ev::Fill(1, 1, 101, M),
                Ev::Fill(10, 2, 102, T),
                Ev::Fill(2, 2, 102, M),
                Ev::Fill(10, 3, 103, T),
                Ev::Fill(3, 3, 103, M),
                Ev::Canc(10, 4),
            ],
            bids: vec![(99, 1)],
            asks: vec![],
            queue: vec![4],
        },
        Case {
            name: "market sell into an empty side is cancelled",
            setup: vec![sell(1, 101, 1)],
            action: order(10, Side::Sell, None, 3, Ioc, false),
            events: vec![Ev::Acc(10), Ev::Canc(10, 3)],
            bids: vec![],
            asks: vec![(101, 1)],
            queue: vec![1],
        },
        Case {
            name: "IOC fills what it can and cancels the rest",
            setup: vec![buy(1, 100, 2), buy(2, 99, 2)],
            action: order(10, Side::Sell, Some(100), 5, Ioc, false),
            events: vec![Ev::Acc(10), Ev::Fill(10, 2, 100, T), Ev::Fill(1, 2, 100, M), Ev::Canc(10, 3)],
            bids: vec![(99, 2)],
            asks: vec![],
            queue: vec![2],
        },
        Case {
            name: "FOK without enough liquidity within its limit is rejected with no fills",
            setup: vec![sell(1, 101, 2), sell(2, 102, 2), sell(3, 104, 5)],
            action: order(10, Side::Buy, Some(103), 5, Fok, false),
            events: vec![Ev::Rej(10, RejectReason::FokUnfillable)],
            bids: vec![],
            asks: vec![(101, 2), (102, 2), (104, 5)],
            queue: vec![1, 2, 3],
        },
        Case {
            name: "FOK with exactly enough liquidity fills completely",
            setup: vec![sell(1, 101, 2), sell(2, 102, 3)],
            action: order(10, Side::Buy, Some(102), 5, Fok, false),
            events: vec![
                Ev::Acc(10),
                Ev::Fill(10, 2, 101, T),
                Ev::Fill(1, 2, 101, M),
                Ev::Fill(10, 3, 102, T),
                Ev::Fill(2, 3, 102, M),
            ],
            bids: vec![],
            asks: vec![],
            queue: vec![],
        },
        Case {
            name: "market FOK is rejected when the side is too thin",
            setup: vec![buy(1, 100, 2)],
            action: order(10, Side::Sell, None, 3, Fok, false),
            events: vec![Ev::Rej(10, RejectReason::FokUnfillable)],
            bids: vec![(100, 2)],
            asks: vec![],
            queue: vec![1],
        },
        Case {
            name: "post-only that would cross is rejected",
            setup: vec![sell(1, 101, 2)],
            action: order(10, Side::Buy, Some(101), 1, Gtc, true),
            events: vec![Ev::Rej(10, RejectReason::WouldTakeLiquidity)],
            bids: vec![],
            asks: vec![(101, 2)],
            queue: vec![1],
        },
        Case {
            name: "post-only that does not cross rests",
            setup: vec![sell(1, 101, 2)],
            action: order(10, Side::Buy, Some(100), 1, Gtc, true),
            events: vec![Ev::Acc(10)],
            bids: vec![(100, 1)],
            asks: vec![(101, 2)],
            queue: vec![10, 1],
        },
        Case {
            name: "quantity down keeps time priority",
            setup: vec![buy(1, 100, 5), buy(2, 100, 5)],
            action: amend(1, None, Some(2)),
            events: vec![Ev::Amd(1, 100, 2, true)],
            bids: vec![(100, 7)],
            asks: vec![],
            queue: vec![1, 2],
        },
        Case {
            name: "quantity up loses time priority",
            setup: vec![buy(1, 100, 5), buy(2, 100, 5)],
            action: amend(1, None, Some(6)),
            events: vec![Ev::Amd(1, 100, 6, false)],
            bids: vec![(100, 11)],
            asks: vec![],
            queue: vec![2, 1],
        },
        Case {
            name: "price change loses priority even with less quantity",
            setup: vec![buy(1, 100, 5), buy(2, 99, 5), buy(3, 100, 1)],
            action: amend(3, Some(99), Some(1)),
            events: vec![Ev::Amd(3, 99, 1, false)],
            bids: vec![(100, 5), (99, 6)],
            asks: vec![],
            queue: vec![1, 2, 3],
        },
        Case {
            name: "amend to a crossing price trades as taker and rests the rest",
            setup: vec![sell(1, 101, 2), sell(2, 102, 2), buy(3, 99, 5)],
            action: amend(3, Some(101), None),
            events: vec![Ev::Amd(3, 101, 5, false), Ev::Fill(3, 2, 101, T), Ev::Fill(1, 2, 101, M)],
            bids: vec![(101, 3)],
            asks: vec![(102, 2)],
            queue: vec![3, 2],
        },
        Case {
            name: "amend below the filled quantity cancels the remainder",
            setup: vec![buy(1, 100, 5), sell(2, 100, 3)],
            action: amend(1, None, Some(2)),
            events: vec![Ev::Canc(1, 2)],
            bids: vec![],
            asks: vec![],
            queue: vec![],
        },
        Case {
            name: "partially filled maker keeps its place and amends above its fills",
            setup: vec![buy(1, 100, 5), buy(2, 100, 5), sell(3, 100, 3)],
            action: amend(1, None, Some(4)),
            events: vec![Ev::Amd(1, 100, 4, true)],
            bids: vec![(100, 6)],
            asks: vec![],
            queue: vec![1, 2],
        },
        Case {
            name: "cancel removes the order and reports its unfilled quantity",
            setup: vec![sell(1, 101, 5), buy(2, 101, 2)],
            action: Op::Cancel(1),
            events: vec![Ev::Canc(1, 3)],
            bids: vec![],
            asks: vec![],
            queue: vec![],
        },
    ]
}

#[test]
fn matching_rules() {
    for case in cases() {
        let mut book = book();
        let mut out = Vec::new();
        for op in &case.setup {
            apply(&mut book, *op, &mut out).unwrap_or_else(|e| panic!("{}: setup {op:?}: {e}", case.name));
        }
        out.clear();
        apply(&mut book, case.action, &mut out).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let events: Vec<Ev> = out.iter().map(brief).collect();
        assert_eq!(events, case.events, "{}: events", case.name);
        assert_eq!(depth_units(&book, Side::Buy), case.bids, "{}: bids", case.name);
        assert_eq!(depth_units(&book, Side::Sell), case.asks, "{}: asks", case.name);
        let queue: Vec<u64> = book.orders(Side::Buy).chain(book.orders(Side::Sell)).map(|o| o.id.0).collect();
        assert_eq!(queue, case.queue, "{}: queue", case.name);
        check_invariants(&book).unwrap_or_else(|e| panic!("{}: {e}", case.name));
    }
}

#[test]
fn errors_leave_the_book_and_events_untouched() {
    use TimeInForce::Gtc;
    let cases: Vec<(&str, Op, BookError)> = vec![
        ("cancel unknown id", Op::Cancel(99), BookError::UnknownOrder(OrderId(99))),
        ("amend unknown id", amend(99, Some(100), None), BookError::UnknownOrder(OrderId(99))),
        ("duplicate resting id", buy(1, 98, 1), BookError::DuplicateOrderId(OrderId(1))),
        ("zero quantity", buy(5, 100, 0), BookError::InvalidQuantity(Quantity::ZERO)),
        ("negative quantity", buy(5, 100, -1), BookError::InvalidQuantity(qty(-1))),
        ("zero price", buy(5, 0, 1), BookError::InvalidPrice(Price::ZERO)),
        ("negative price", sell(5, -3, 1), BookError::InvalidPrice(px(-3))),
        ("post-only market", order(5, Side::Buy, None, 1, Gtc, true), BookError::PostOnlyMarket(OrderId(5))),
        ("amend to zero quantity", amend(1, None, Some(0)), BookError::InvalidQuantity(Quantity::ZERO)),
        ("amend to zero price", amend(1, Some(0), None), BookError::InvalidPrice(Price::ZERO)),
        (
            "post-only amended across the book",
            amend(3, Some(101), None),
            BookError::AmendWouldTakeLiquidity { id: OrderId(3), price: px(101) },
        ),
        (
            "notional out of range",
            Op::Place(NewOrder {
                id: OrderId(5),
                side: Side::Buy,
                price: Some(Price::from_raw(i64::MAX)),
                quantity: Quantity::from_raw(i64::MAX),
                time_in_force: Gtc,
                post_only: false,
            }),
            BookError::NotionalOutOfRange { price: Price::from_raw(i64::MAX), quantity: Quantity::from_raw(i64::MAX) },
        ),
    ];
    for (name, op, expected) in cases {
        let mut book = OrderBook::new(InstrumentId(1), qty(100), fees());
        let mut out = Vec::new();
        for setup in [buy(1, 100, 5), sell(2, 101, 5), order(3, Side::Buy, Some(99), 1, Gtc, true)] {
            apply(&mut book, setup, &mut out).unwrap();
        }
        out.clear();
        let before = (depth_units(&book, Side::Buy), depth_units(&book, Side::Sell), book.len());
        assert_eq!(apply(&mut book, op, &mut out), Err(expected), "{name}");
        assert!(out.is_empty(), "{name}: emitted {out:?}");
        assert_eq!((depth_units(&book, Side::Buy), depth_units(&book, Side::Sell), book.len()), before, "{name}");
    }
}

#[test]
fn fees_and_trade_ids() {
    let mut book = OrderBook::new(InstrumentId(3), qty(100), fees());
    let mut out = Vec::new();
    book.place(NewOrder { quantity: Quantity::parse("0.5").unwrap(), ..new_order(1, Side::Sell, 20) }, TS, &mut out)
        .unwrap();
    book.place(new_order(2, Side::Sell, 21), TS, &mut out).unwrap();
    out.clear();
    book.place(new_order(3, Side::Buy, 21), TS, &mut out).unwrap();
    let fills: Vec<&Fill> = out
        .iter()
        .filter_map(|e| match e {
            BookEvent::Fill(f) => Some(f),
            _ => None,
        })
        .collect();
    // 0.5 @ 20 x100 = 1000 notional; then 0.5 @ 21 x100 = 1050.
    let expected = [
        (3, 1, Liquidity::Taker, "0.5"),
        (1, 1, Liquidity::Maker, "0.1"),
        (3, 2, Liquidity::Taker, "0.525"),
        (2, 2, Liquidity::Maker, "0.105"),
    ];
    assert_eq!(fills.len(), expected.len());
    for (f, (order_id, trade_id, liquidity, fee)) in fills.iter().zip(expected) {
        assert_eq!(f.order_id, OrderId(order_id));
        assert_eq!(f.trade_id, trade_id);
        assert_eq!(f.liquidity, liquidity);
        assert_eq!(f.fee, Money::parse(fee).unwrap(), "fee of order {order_id} in trade {trade_id}");
        assert_eq!(f.instrument, InstrumentId(3));
        assert_eq!(f.ts, TS);
        let expected_side = if order_id == 3 { Side::Buy } else { Side::Sell };
        assert_eq!(f.side, expected_side);
    }
    assert_eq!(book.next_trade_id(), 3);
    assert_eq!(book.best_ask(), Some((px(21), Quantity::parse("0.5").unwrap())));
    assert_eq!(
        book.order(OrderId(2)).map(|o| (o.filled, o.remaining)),
        Some((Quantity::parse("0.5").unwrap(), Quantity::parse("0.5").unwrap()))
    );
}

fn new_order(id: u64, side: Side, price: i64) -> NewOrder {
    NewOrder {
        id: OrderId(id),
        side,
        price: Some(px(price)),
        quantity: Quantity::ONE,
        time_in_force: TimeInForce::Gtc,
        post_only: false,
    }
}

#[test]
fn slots_are_reused_and_levels_dropped() {
    let mut book = book();
    let mut out = Vec::new();
    for round in 0..3u64 {
        for i in 0..100 {
            book.place(new_order(round * 1000 + i, Side::Buy, 50 + (i % 10) as i64), TS, &mut out).unwrap();
        }
        for i in 0..100 {
            book.cancel(OrderId(round * 1000 + i), TS, &mut out).unwrap();
        }
        assert!(book.is_empty());
        assert_eq!(book.best_bid(), None);
    }
    assert_eq!(book.nodes.len(), 100, "freed slots are reused");
    assert!(book.bids.levels.is_empty());
}

/// Checks the book's internal structure; returns a description of the first violation.
fn check_invariants(book: &OrderBook) -> Result<(), String> {
    let mut seen = 0usize;
    for (ladder, side) in [(&book.bids, Side::Buy), (&book.asks, Side::Sell)] {
        for pair in ladder.levels.windows(2) {
            if pair[0].key >= pair[1].key {
                return Err(format!("{side} levels out of order at {}", pair[1].price));
            }
        }
        for level in &ladder.levels {
            let (mut slot, mut prev, mut count, mut total) = (level.head, NIL, 0u32, 0i128);
            while slot != NIL {
                let n = &book.nodes[slot as usize];
                if n.prev != prev || n.side != side || n.price != level.price || n.remaining() <= 0 {
                    return Err(format!("bad node {n:?} in level {}", level.price));
                }
                if book.index.get(&n.id) != Some(&slot) {
                    return Err(format!("order {} not indexed at its slot", n.id));
                }
                if !matches!(n.time_in_force, TimeInForce::Gtc | TimeInForce::Day) {
                    return Err(format!("order {} rests with {:?}", n.id, n.time_in_force));
                }
                count += 1;
                total += i128::from(n.remaining());
                prev = slot;
                slot = n.next;
            }
            if level.tail != prev || level.count != count || level.total != total || count == 0 {
                return Err(format!("level {} summary disagrees with its queue", level.price));
            }
            seen += count as usize;
        }
    }
    if seen != book.index.len() {
        return Err(format!("{} orders in levels, {} indexed", seen, book.index.len()));
    }
    if let (Some((bid, _)), Some((ask, _))) = (book.best_bid(), book.best_ask())
        && bid >= ask
    {
        return Err(format!("crossed book: bid {bid} >= ask {ask}"));
    }
    Ok(())
}

/// The obviously-correct book: a flat list of orders, the best match found by
/// scanning all of them, time priority by an explicit sequence number.
struct Reference {
    orders: Vec<RefOrder>,
    seq: u64,
    next_trade_id: u64,
    multiplier: Quantity,
    fees: FeeSchedule,
    instrument: InstrumentId,
}

#[derive(Debug, Clone, Copy)]
struct RefOrder {
    id: OrderId,
    side: Side,
    price: i64,
    quantity: i64,
    filled: i64,
    seq: u64,
    post_only: bool,
}

impl Reference {
    fn new(instrument: InstrumentId, multiplier: Quantity, fees: FeeSchedule) -> Self {
        Self { orders: Vec::new(), seq: 0, next_trade_id: 1, multiplier, fees, instrument }
    }

    fn crosses(side: Side, limit: Option<i64>, resting: i64) -> bool {
        match (side, limit) {
            (_, None) => true,
            (Side::Buy, Some(l)) => resting <= l,
            (Side::Sell, Some(l)) => resting >= l,
        }
    }

    /// Indices of the orders a taker may trade with, best first.
    fn matchable(&self, side: Side, limit: Option<i64>) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.orders.len())
            .filter(|&i| self.orders[i].side != side && Self::crosses(side, limit, self.orders[i].price))
            .collect();
        idx.sort_by_key(|&i| {
            let o = &self.orders[i];
            // Sellers: lowest price first; buyers: highest first; then oldest.
            let price_rank = if o.side == Side::Sell { i128::from(o.price) } else { -i128::from(o.price) };
            (price_rank, o.seq)
        });
        idx
    }

    fn take(
        &mut self,
        taker: OrderId,
        side: Side,
        limit: Option<i64>,
        mut remaining: i64,
        out: &mut Vec<BookEvent>,
    ) -> i64 {
        let start = remaining;
        while remaining > 0 {
            let Some(&i) = self.matchable(side, limit).first() else { break };
            let maker = &mut self.orders[i];
            let q = remaining.min(maker.quantity - maker.filled);
            maker.filled += q;
            remaining -= q;
            let (price, quantity) = (Price::from_raw(maker.price), Quantity::from_raw(q));
            let notional = model::notional(price, quantity, self.multiplier);
            let trade_id = self.next_trade_id;
            self.next_trade_id += 1;
            for (order_id, side, liquidity, rate) in [
                (taker, side, Liquidity::Taker, self.fees.taker),
                (maker.id, maker.side, Liquidity::Maker, self.fees.maker),
            ] {
                out.push(BookEvent::Fill(Fill {
                    order_id,
                    trade_id,
                    instrument: self.instrument,
                    side,
                    quantity,
                    price,
                    fee: notional.mul_rate(rate),
                    liquidity,
                    ts: TS,
                }));
            }
            if maker.filled == maker.quantity {
                self.orders.remove(i);
            }
        }
        start - remaining
    }

    fn check_notional(&self, price: i64, quantity: i64) -> Result<(), BookError> {
        // Mirrors the book's bound: |p * q * m| and |notional * rate| fit in i128.
        let max_rate = i128::from(self.fees.maker.raw()).abs().max(i128::from(self.fees.taker.raw()).abs());
        let pq = i128::from(price) * i128::from(quantity);
        let money = if self.multiplier == Quantity::ONE {
            Some(pq / 1_000_000_000)
        } else {
            pq.checked_mul(i128::from(self.multiplier.raw())).map(|x| x / 1_000_000_000_000_000_000)
        };
        money.and_then(|m| (m.abs() + 1).checked_mul(max_rate)).map(|_| ()).ok_or(BookError::NotionalOutOfRange {
            price: Price::from_raw(price),
            quantity: Quantity::from_raw(quantity),
        })
    }

    fn place(&mut self, o: NewOrder, out: &mut Vec<BookEvent>) -> Result<(), BookError> {
        if o.quantity.raw() <= 0 {
            return Err(BookError::InvalidQuantity(o.quantity));
        }
        match o.price {
            Some(p) if p.raw() <= 0 => return Err(BookError::InvalidPrice(p)),
            Some(p) => self.check_notional(p.raw(), o.quantity.raw())?,
            None if o.post_only => return Err(BookError::PostOnlyMarket(o.id)),
            None => {}
        }
        if self.orders.iter().any(|r| r.id == o.id) {
            return Err(BookError::DuplicateOrderId(o.id));
        }
        let limit = o.price.map(Price::raw);
        let matchable = self.matchable(o.side, limit);
        if o.post_only && !matchable.is_empty() {
            out.push(BookEvent::Rejected { id: o.id, reason: RejectReason::WouldTakeLiquidity, ts: TS });
            return Ok(());
        }
        let available: i128 =
            matchable.iter().map(|&i| i128::from(self.orders[i].quantity - self.orders[i].filled)).sum();
        if o.time_in_force == TimeInForce::Fok && available < i128::from(o.quantity.raw()) {
            out.push(BookEvent::Rejected { id: o.id, reason: RejectReason::FokUnfillable, ts: TS });
            return Ok(());
        }
        out.push(BookEvent::Accepted { id: o.id, ts: TS });
        let filled = self.take(o.id, o.side, limit, o.quantity.raw(), out);
        let remaining = o.quantity.raw() - filled;
        if remaining > 0 {
            match (limit, o.time_in_force) {
                (Some(price), TimeInForce::Gtc | TimeInForce::Day) => {
                    self.seq += 1;
                    self.orders.push(RefOrder {
                        id: o.id,
                        side: o.side,
                        price,
                        quantity: o.quantity.raw(),
                        filled,
                        seq: self.seq,
                        post_only: o.post_only,
                    });
                }
                _ => out.push(BookEvent::Cancelled { id: o.id, remaining: Quantity::from_raw(remaining), ts: TS }),
            }
        }
        Ok(())
    }

    fn cancel(&mut self, id: OrderId, out: &mut Vec<BookEvent>) -> Result<(), BookError> {
        let i = self.orders.iter().position(|r| r.id == id).ok_or(BookError::UnknownOrder(id))?;
        let o = self.orders.remove(i);
        out.push(BookEvent::Cancelled { id, remaining: Quantity::from_raw(o.quantity - o.filled), ts: TS });
        Ok(())
    }

    fn amend(
        &mut self,
        id: OrderId,
        price: Option<i64>,
        quantity: Option<i64>,
        out: &mut Vec<BookEvent>,
    ) -> Result<(), BookError> {
        let i = self.orders.iter().position(|r| r.id == id).ok_or(BookError::UnknownOrder(id))?;
        let old = self.orders[i];
        let price = price.unwrap_or(old.price);
        let quantity = quantity.unwrap_or(old.quantity);
        if quantity <= 0 {
            return Err(BookError::InvalidQuantity(Quantity::from_raw(quantity)));
        }
        if price <= 0 {
            return Err(BookError::InvalidPrice(Price::from_raw(price)));
        }
        self.check_notional(price, quantity)?;
        if quantity <= old.filled {
            return self.cancel(id, out);
        }
        let amended = |kept| BookEvent::Amended {
            id,
            price: Price::from_raw(price),
            quantity: Quantity::from_raw(quantity),
            priority_kept: kept,
            ts: TS,
        };
        if price == old.price && quantity <= old.quantity {
            self.orders[i].quantity = quantity;
            out.push(amended(true));
            return Ok(());
        }
        if old.post_only && !self.matchable(old.side, Some(price)).is_empty() {
            return Err(BookError::AmendWouldTakeLiquidity { id, price: Price::from_raw(price) });
        }
        let mut o = self.orders.remove(i);
        out.push(amended(false));
        o.filled += self.take(id, o.side, Some(price), quantity - o.filled, out);
        o.price = price;
        o.quantity = quantity;
        self.seq += 1;
        o.seq = self.seq;
        if o.filled < o.quantity {
            self.orders.push(o);
        }
        Ok(())
    }

    fn apply(&mut self, op: Op, out: &mut Vec<BookEvent>) -> Result<(), BookError> {
        match op {
            Op::Place(o) => self.place(o, out),
            Op::Cancel(id) => self.cancel(OrderId(id), out),
            Op::Amend(id, p, q) => self.amend(OrderId(id), p, q, out),
        }
    }

    fn depth(&self, side: Side) -> Vec<(Price, Quantity)> {
        let mut levels: Vec<(i64, i64)> = Vec::new();
        for o in self.matchable(side.opposite(), None) {
            let o = &self.orders[o];
            match levels.last_mut() {
                Some((p, q)) if *p == o.price => *q += o.quantity - o.filled,
                _ => levels.push((o.price, o.quantity - o.filled)),
            }
        }
        levels.into_iter().map(|(p, q)| (Price::from_raw(p), Quantity::from_raw(q))).collect()
    }
}

/// Random operations on a narrow price band so that orders cross often.
/// Ids are small so that cancels and amends hit live, dead and unknown orders.
fn op_strategy() -> impl Strategy<Value = Op> {
    let side = prop_oneof![Just(Side::Buy), Just(Side::Sell)];
    let tif = prop_oneof![
        6 => Just(TimeInForce::Gtc),
        1 => Just(TimeInForce::Day),
        2 => Just(TimeInForce::Ioc),
        2 => Just(TimeInForce::Fok),
    ];
    // Prices in cents from 0.95 to 1.05, sometimes invalid; quantities in
    // tenths, sometimes zero. 0.1 units so fees round in the last decimal.
    let price =
        prop_oneof![10 => (95i64..=105).prop_map(|c| Some(c * 10_000_000)), 2 => Just(None), 1 => Just(Some(0))];
    let amend_price = prop_oneof![10 => (95i64..=105).prop_map(|c| c * 10_000_000), 1 => Just(0)];
    let quantity = prop_oneof![20 => (1i64..=30).prop_map(|t| t * 100_000_000), 1 => Just(0)];
    let id = 1u64..40;
    prop_oneof![
        5 => (id.clone(), side, price, quantity.clone(), tif, proptest::bool::weighted(0.15)).prop_map(
            |(id, side, price, quantity, time_in_force, post_only)| Op::Place(NewOrder {
                id: OrderId(id),
                side,
                price: price.map(Price::from_raw),
                quantity: Quantity::from_raw(quantity),
                time_in_force,
                post_only,
            })
        ),
        1 => id.clone().prop_map(Op::Cancel),
        4 => (id, proptest::option::of(amend_price), proptest::option::of(quantity))
            .prop_map(|(id, p, q)| Op::Amend(id, p, q)),
    ]
}

fn fee_schedule() -> impl Strategy<Value = (Quantity, FeeSchedule)> {
    (prop_oneof![Just(Quantity::ONE), Just(qty(100))], -5i64..=10, 0i64..=25)
        .prop_map(|(m, maker, taker)| (m, FeeSchedule { maker: Rate::from_bps(maker), taker: Rate::from_bps(taker) }))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Every event, result and depth snapshot equals the reference book's.
    #[test]
    fn matches_reference_book(ops in proptest::collection::vec(op_strategy(), 1..250), (m, fees) in fee_schedule()) {
        let mut book = OrderBook::new(InstrumentId(1), m, fees);
        let mut reference = Reference::new(InstrumentId(1), m, fees);
        let (mut got, mut want) = (Vec::new(), Vec::new());
        for (step, op) in ops.into_iter().enumerate() {
            got.clear();
            want.clear();
            let got_result = apply(&mut book, op, &mut got);
            let want_result = reference.apply(op, &mut want);
            prop_assert_eq!(got_result, want_result, "step {} {:?}", step, op);
            prop_assert_eq!(&got, &want, "step {} {:?}", step, op);
            prop_assert_eq!(book.depth(Side::Buy, usize::MAX), reference.depth(Side::Buy), "bids after step {}", step);
            prop_assert_eq!(book.depth(Side::Sell, usize::MAX), reference.depth(Side::Sell), "asks after step {}", step);
            prop_assert_eq!(book.len(), reference.orders.len());
            for o in &reference.orders {
                let view = book.order(o.id);
                prop_assert_eq!(view.map(|v| (v.price.raw(), v.quantity.raw(), v.filled.raw())), Some((o.price, o.quantity, o.filled)));
            }
        }
    }

    /// The book is never crossed and its structure is consistent after every operation.
    #[test]
    fn never_crossed(ops in proptest::collection::vec(op_strategy(), 1..300)) {
        let mut book = book();
        let mut out = Vec::new();
        for (step, op) in ops.into_iter().enumerate() {
            let _ = apply(&mut book, op, &mut out);
            if let Err(e) = check_invariants(&book) {
                prop_assert!(false, "after step {} {:?}: {}", step, op, e);
            }
        }
    }

    /// Per order: filled + resting + cancelled == its (latest) quantity; a
    /// rejected order fills nothing; both sides of a trade carry the same quantity.
    #[test]
    fn quantity_is_conserved(ops in proptest::collection::vec(op_strategy(), 1..300)) {
        use std::collections::BTreeMap;
        #[derive(Default, Debug)]
        struct Tally { quantity: i64, filled: i64, cancelled: i64, rejected: bool }
        fn tally(live: &mut BTreeMap<u64, Tally>, id: OrderId) -> Result<&mut Tally, TestCaseError> {
            live.get_mut(&id.0).ok_or_else(|| TestCaseError::fail(format!("event for unknown order {id}")))
        }
        let mut book = book();
        let mut out = Vec::new();
        // Ids are reused once an order is done, so tallies are per (id, generation).
        let mut live: BTreeMap<u64, Tally> = BTreeMap::new();
        let mut done: Vec<(u64, Tally)> = Vec::new();
        let mut trades: BTreeMap<u64, Vec<i64>> = BTreeMap::new();
        for op in ops {
            out.clear();
            if apply(&mut book, op, &mut out).is_err() {
                continue;
            }
            for e in &out {
                match e {
                    BookEvent::Accepted { id, .. } | BookEvent::Rejected { id, .. } => {
                        let Op::Place(o) = op else { return Err(TestCaseError::fail("accept without place")) };
                        prop_assert_eq!(*id, o.id);
                        let rejected = matches!(e, BookEvent::Rejected { .. });
                        if let Some(old) = live.insert(id.0, Tally { quantity: o.quantity.raw(), rejected, ..Tally::default() }) {
                            done.push((id.0, old));
                        }
                    }
                    BookEvent::Fill(f) => {
                        trades.entry(f.trade_id).or_default().push(f.quantity.raw());
                        prop_assert!(f.quantity.is_positive());
                        tally(&mut live, f.order_id)?.filled += f.quantity.raw();
                    }
                    BookEvent::Cancelled { id, remaining, .. } => {
                        tally(&mut live, *id)?.cancelled += remaining.raw();
                    }
                    BookEvent::Amended { id, quantity, .. } => {
                        tally(&mut live, *id)?.quantity = quantity.raw();
                    }
                }
            }
            // Orders that left the book are final: move them out so a reused id starts fresh.
            let finished: Vec<u64> = live.keys().copied().filter(|id| book.order(OrderId(*id)).is_none()).collect();
            for id in finished {
                if let Some(t) = live.remove(&id) {
                    done.push((id, t));
                }
            }
        }
        let still_live = live.iter().map(|(id, t)| (*id, t, book.order(OrderId(*id)).map_or(0, |o| o.remaining.raw())));
        for (id, t, resting) in still_live.chain(done.iter().map(|(id, t)| (*id, t, 0))) {
            if t.rejected {
                prop_assert_eq!(t.filled + t.cancelled + resting, 0, "rejected order {} {:?}", id, t);
            } else {
                prop_assert_eq!(t.filled + resting + t.cancelled, t.quantity, "order {} {:?}", id, t);
            }
        }
        for (trade_id, sides) in trades {
            prop_assert!(sides.len() == 2 && sides[0] == sides[1], "trade {} sides {:?}", trade_id, sides);
        }
    }
}
