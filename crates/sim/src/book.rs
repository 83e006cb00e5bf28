//! A limit order book for one instrument with price-time priority: the
//! simulated exchange's matching engine.
//!
//! The book owns every resting order of its instrument and the trade-id
//! sequence. Each operation ([`OrderBook::place`], [`OrderBook::cancel`],
//! [`OrderBook::amend`]) validates first and either returns a [`BookError`]
//! having changed nothing and emitted nothing, or applies completely and
//! appends its [`BookEvent`]s, in a deterministic order, to the caller's
//! vector (reused across calls, so steady-state operations do not allocate).
//!
//! Invariants, checked after every step by the property tests:
//! - the book is never crossed: best bid < best ask after every operation;
//! - every resting order has a positive remaining quantity, a positive price,
//!   and GTC or DAY time in force (market, IOC and FOK orders never rest);
//! - each level's total is the sum of its orders' remaining quantities, and its
//!   queue is in time priority (oldest first);
//! - fills execute at the resting (maker) order's price, best price first,
//!   then oldest first.
//!
//! Storage: orders live in a slab (`Vec<Node>` plus a free list) threaded into
//! per-level FIFO queues by `prev`/`next` indices, so cancel and amend unlink
//! in O(1) after an id lookup; levels are sorted vectors with the best price
//! last (see `ladder`).

mod id_hash;
mod ladder;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use model::{
    Fill, InstrumentId, Liquidity, OrderId, Price, Quantity, Rate, RejectReason, Side, TimeInForce, Timestamp,
};

use id_hash::BuildIdHasher;
use ladder::{Ladder, NIL, Node};

/// Maker and taker fee rates. A fee is `notional(price, quantity, multiplier) * rate`
/// in the quote currency, rounded half-to-even; a negative rate is a rebate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FeeSchedule {
    pub maker: Rate,
    pub taker: Rate,
}

/// An order arriving at the book.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewOrder {
    pub id: OrderId,
    pub side: Side,
    /// `None` for a market order: it walks the book and never rests.
    pub price: Option<Price>,
    /// Total quantity; must be positive.
    pub quantity: Quantity,
    /// GTC and DAY remainders rest (the book does not expire DAY orders: the
    /// caller cancels them at the session end). IOC remainders are cancelled;
    /// FOK fills completely or is rejected.
    pub time_in_force: TimeInForce,
    /// Reject instead of taking liquidity.
    pub post_only: bool,
}

/// A read-only view of a resting order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestingOrder {
    pub id: OrderId,
    pub side: Side,
    pub price: Price,
    /// Total order quantity, including what has filled.
    pub quantity: Quantity,
    pub filled: Quantity,
    pub remaining: Quantity,
    pub time_in_force: TimeInForce,
    pub post_only: bool,
}

/// What happened, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BookEvent {
    /// The order passed the book's checks; fills, then a rest or a
    /// `Cancelled` remainder, follow.
    Accepted { id: OrderId, ts: Timestamp },
    /// One side of a match. Each match emits the taker's fill then the
    /// maker's, sharing a `trade_id`.
    Fill(Fill),
    /// The order left the book without filling `remaining`: a cancel, an IOC
    /// or market remainder, or an amend to at or below the filled quantity.
    Cancelled { id: OrderId, remaining: Quantity, ts: Timestamp },
    /// Refused for a market reason (FOK unfillable, post-only would cross);
    /// nothing was filled and nothing rests.
    Rejected { id: OrderId, reason: RejectReason, ts: Timestamp },
    /// The order now has this price and total quantity. When the amend crosses
    /// the book, its fills follow as the taker.
    Amended { id: OrderId, price: Price, quantity: Quantity, priority_kept: bool, ts: Timestamp },
}

/// Why an operation was refused without touching the book.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BookError {
    #[error("order {0} is already resting in the book")]
    DuplicateOrderId(OrderId),
    #[error("order {0} is not resting in the book")]
    UnknownOrder(OrderId),
    #[error("order quantity must be positive, got {0}")]
    InvalidQuantity(Quantity),
    #[error("order price must be positive, got {0}")]
    InvalidPrice(Price),
    #[error("order {0} is a post-only market order, which can never rest")]
    PostOnlyMarket(OrderId),
    #[error("amending post-only order {id} to {price} would take liquidity")]
    AmendWouldTakeLiquidity { id: OrderId, price: Price },
    #[error("the notional or fee of {quantity} at {price} is out of range")]
    NotionalOutOfRange { price: Price, quantity: Quantity },
    #[error("the book holds the maximum number of resting orders")]
    Full,
}

/// Slots are `u32`; `NIL` is reserved.
const MAX_NODES: usize = NIL as usize;

/// The order book of one instrument.
#[derive(Debug, Clone)]
pub struct OrderBook {
    instrument: InstrumentId,
    multiplier: Quantity,
    fees: FeeSchedule,
    /// `max(|maker|, |taker|)` raw, for the notional range check.
    max_rate_raw: i128,
    nodes: Vec<Node>,
    free: Vec<u32>,
    index: HashMap<OrderId, u32, BuildIdHasher>,
    bids: Ladder,
    asks: Ladder,
    next_trade_id: u64,
}

/// Whether a taker on `side` with limit `limit` trades against a resting price.
#[inline]
fn crosses(side: Side, limit: i64, resting: i64) -> bool {
    match side {
        Side::Buy => resting <= limit,
        Side::Sell => resting >= limit,
    }
}

impl OrderBook {
    /// An empty book. `multiplier` (units per contract) scales notionals and
    /// fees; the instrument definition is expected to have validated it.
    #[must_use]
    pub fn new(instrument: InstrumentId, multiplier: Quantity, fees: FeeSchedule) -> Self {
        let max_rate_raw = i128::from(fees.maker.raw()).abs().max(i128::from(fees.taker.raw()).abs());
        Self {
            instrument,
            multiplier,
            fees,
            max_rate_raw,
            nodes: Vec::with_capacity(1024),
            free: Vec::with_capacity(1024),
            index: HashMap::with_capacity_and_hasher(1024, BuildIdHasher::default()),
            bids: Ladder::new(Side::Buy),
            asks: Ladder::new(Side::Sell),
            next_trade_id: 1,
        }
    }

    #[must_use]
    pub fn instrument(&self) -> InstrumentId {
        self.instrument
    }

    #[must_use]
    pub fn fees(&self) -> FeeSchedule {
        self.fees
    }

    /// The trade id the next match will use (ids start at 1 and increase by one per match).
    #[must_use]
    pub fn next_trade_id(&self) -> u64 {
        self.next_trade_id
    }

    /// Places an order: matches it against the opposite side, then rests,
    /// cancels or rejects what is left according to its type.
    ///
    /// Events: `Rejected` alone; or `Accepted`, then `Fill` pairs (taker,
    /// maker) in execution order, then `Cancelled` for a remainder that does
    /// not rest.
    ///
    /// `DuplicateOrderId` is checked against resting orders only: the book
    /// keeps no history, so reusing the id of a finished order is accepted.
    pub fn place(&mut self, order: NewOrder, ts: Timestamp, out: &mut Vec<BookEvent>) -> Result<(), BookError> {
        let NewOrder { id, side, price, quantity, time_in_force, post_only } = order;
        if !quantity.is_positive() {
            return Err(BookError::InvalidQuantity(quantity));
        }
        if let Some(p) = price {
            if !p.is_positive() {
                return Err(BookError::InvalidPrice(p));
            }
            self.check_notional(p, quantity)?;
        } else if post_only {
            return Err(BookError::PostOnlyMarket(id));
        }
        if self.index.contains_key(&id) {
            return Err(BookError::DuplicateOrderId(id));
        }
        let rests = price.is_some() && matches!(time_in_force, TimeInForce::Gtc | TimeInForce::Day);
        if rests && self.free.is_empty() && self.nodes.len() >= MAX_NODES {
            return Err(BookError::Full);
        }
        let limit = price.map(Price::raw);
        if post_only && limit.is_some_and(|l| self.best_opposite(side).is_some_and(|p| crosses(side, l, p))) {
            out.push(BookEvent::Rejected { id, reason: RejectReason::WouldTakeLiquidity, ts });
            return Ok(());
        }
        // FOK is checked before any fill so a failure leaves the book untouched.
        if time_in_force == TimeInForce::Fok && self.available(side, limit, quantity.raw()) < i128::from(quantity.raw())
        {
            out.push(BookEvent::Rejected { id, reason: RejectReason::FokUnfillable, ts });
            return Ok(());
        }
        out.push(BookEvent::Accepted { id, ts });
        let filled = self.take(id, side, limit, quantity.raw(), ts, out);
        let remaining = quantity.raw() - filled;
        if remaining == 0 {
            return Ok(());
        }
        match limit {
            Some(price) if rests => {
                let node = Node {
                    id,
                    price,
                    quantity: quantity.raw(),
                    filled,
                    prev: NIL,
                    next: NIL,
                    side,
                    time_in_force,
                    post_only,
                };
                let slot = self.alloc(node);
                self.index.insert(id, slot);
                self.link(slot);
            }
            _ => out.push(BookEvent::Cancelled { id, remaining: Quantity::from_raw(remaining), ts }),
        }
        Ok(())
    }

    /// Cancels a resting order. Emits `Cancelled` with its unfilled quantity.
    pub fn cancel(&mut self, id: OrderId, ts: Timestamp, out: &mut Vec<BookEvent>) -> Result<(), BookError> {
        let slot = *self.index.get(&id).ok_or(BookError::UnknownOrder(id))?;
        let remaining = self.remove(slot);
        out.push(BookEvent::Cancelled { id, remaining: Quantity::from_raw(remaining), ts });
        Ok(())
    }

    /// Changes a resting order's price and/or total quantity (`None` keeps
    /// the current value).
    ///
    /// - Quantity down (or unchanged) at the same price keeps time priority:
    ///   `Amended { priority_kept: true }`.
    /// - Quantity up or a new price loses it: the order goes to the back of its
    ///   (new) level, `Amended { priority_kept: false }`. A new price that
    ///   crosses the book trades first as the taker (its `Fill`s follow the
    ///   `Amended` event) and only the remainder rests.
    /// - A new total at or below the filled quantity cancels the remainder:
    ///   one `Cancelled` event, no `Amended`.
    ///
    /// A post-only order may not be amended to a crossing price
    /// ([`BookError::AmendWouldTakeLiquidity`]; the order is unchanged).
    pub fn amend(
        &mut self,
        id: OrderId,
        new_price: Option<Price>,
        new_quantity: Option<Quantity>,
        ts: Timestamp,
        out: &mut Vec<BookEvent>,
    ) -> Result<(), BookError> {
        let slot = *self.index.get(&id).ok_or(BookError::UnknownOrder(id))?;
        let node = self.nodes[slot as usize];
        let price = new_price.map_or(node.price, Price::raw);
        let quantity = new_quantity.map_or(node.quantity, Quantity::raw);
        if quantity <= 0 {
            return Err(BookError::InvalidQuantity(Quantity::from_raw(quantity)));
        }
        if price <= 0 {
            return Err(BookError::InvalidPrice(Price::from_raw(price)));
        }
        self.check_notional(Price::from_raw(price), Quantity::from_raw(quantity))?;
        if quantity <= node.filled {
            let remaining = self.remove(slot);
            out.push(BookEvent::Cancelled { id, remaining: Quantity::from_raw(remaining), ts });
            return Ok(());
        }
        if price == node.price && quantity <= node.quantity {
            // In place: the queue position is unchanged, only the size shrinks.
            self.nodes[slot as usize].quantity = quantity;
            self.ladder_mut(node.side).adjust_total(price, i128::from(quantity - node.quantity));
            out.push(BookEvent::Amended {
                id,
                price: Price::from_raw(price),
                quantity: Quantity::from_raw(quantity),
                priority_kept: true,
                ts,
            });
            return Ok(());
        }
        if node.post_only && self.best_opposite(node.side).is_some_and(|p| crosses(node.side, price, p)) {
            return Err(BookError::AmendWouldTakeLiquidity { id, price: Price::from_raw(price) });
        }
        self.unlink(slot);
        out.push(BookEvent::Amended {
            id,
            price: Price::from_raw(price),
            quantity: Quantity::from_raw(quantity),
            priority_kept: false,
            ts,
        });
        // A price change away from the touch cannot cross; skip the match call.
        let filled = if self.best_opposite(node.side).is_some_and(|p| crosses(node.side, price, p)) {
            self.take(id, node.side, Some(price), quantity - node.filled, ts, out)
        } else {
            0
        };
        let n = &mut self.nodes[slot as usize];
        n.price = price;
        n.quantity = quantity;
        n.filled += filled;
        if n.filled < n.quantity {
            self.link(slot);
        } else {
            self.index.remove(&id);
            self.free.push(slot);
        }
        Ok(())
    }

    /// Best bid price and the total quantity resting there.
    #[must_use]
    pub fn best_bid(&self) -> Option<(Price, Quantity)> {
        self.bids.best().map(|l| (Price::from_raw(l.price), saturate(l.total)))
    }

    /// Best ask price and the total quantity resting there.
    #[must_use]
    pub fn best_ask(&self) -> Option<(Price, Quantity)> {
        self.asks.best().map(|l| (Price::from_raw(l.price), saturate(l.total)))
    }

    /// Up to `levels` price levels of one side, best first, with their total
    /// remaining quantity (saturated at `Quantity`'s range).
    #[must_use]
    pub fn depth(&self, side: Side, levels: usize) -> Vec<(Price, Quantity)> {
        self.ladder(side)
            .iter_best_first()
            .take(levels)
            .map(|l| (Price::from_raw(l.price), saturate(l.total)))
            .collect()
    }

    /// The resting order with this id, if any.
    #[must_use]
    pub fn order(&self, id: OrderId) -> Option<RestingOrder> {
        self.index.get(&id).map(|&slot| view(&self.nodes[slot as usize]))
    }

    /// The resting orders of one side in priority order (best price first,
    /// then oldest first): for expiring DAY orders or snapshots.
    pub fn orders(&self, side: Side) -> impl Iterator<Item = RestingOrder> + '_ {
        let nodes = &self.nodes;
        self.ladder(side).iter_best_first().flat_map(move |level| {
            std::iter::successors((level.head != NIL).then_some(level.head), move |&slot| {
                let next = nodes[slot as usize].next;
                (next != NIL).then_some(next)
            })
            .map(move |slot| view(&nodes[slot as usize]))
        })
    }

    /// Number of resting orders.
    #[must_use]
    pub fn len(&self) -> usize {
        self.index.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    fn ladder(&self, side: Side) -> &Ladder {
        match side {
            Side::Buy => &self.bids,
            Side::Sell => &self.asks,
        }
    }

    fn ladder_mut(&mut self, side: Side) -> &mut Ladder {
        match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        }
    }

    /// Appends a slab node to the back of its level.
    fn link(&mut self, slot: u32) {
        let ladder = match self.nodes[slot as usize].side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        };
        ladder.push_back(&mut self.nodes, slot);
    }

    /// Takes a slab node out of its level (the node stays allocated).
    fn unlink(&mut self, slot: u32) {
        let ladder = match self.nodes[slot as usize].side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        };
        ladder.unlink(&mut self.nodes, slot);
    }

    /// The best price a taker on `side` would meet.
    #[inline]
    fn best_opposite(&self, side: Side) -> Option<i64> {
        self.ladder(side.opposite()).best().map(|l| l.price)
    }

    /// Quantity a taker on `side` could fill within `limit`, counted only
    /// until it reaches `wanted`.
    fn available(&self, side: Side, limit: Option<i64>, wanted: i64) -> i128 {
        let mut sum = 0i128;
        for level in self.ladder(side.opposite()).iter_best_first() {
            if sum >= i128::from(wanted) || limit.is_some_and(|l| !crosses(side, l, level.price)) {
                break;
            }
            sum += level.total;
        }
        sum
    }

    /// Refuses a price and quantity whose notional, or fee at either rate,
    /// would overflow `i128`. Every fill is at a resting order's price for at
    /// most its quantity, so checking each order as it rests bounds every fill.
    fn check_notional(&self, price: Price, quantity: Quantity) -> Result<(), BookError> {
        let pq = i128::from(price.raw()) * i128::from(quantity.raw()); // below 2^126
        let money = if self.multiplier == Quantity::ONE {
            Some(pq / i128::from(model::num::FIXED_SCALE))
        } else {
            pq.checked_mul(i128::from(self.multiplier.raw())).map(|x| x / (i128::from(model::num::FIXED_SCALE).pow(2)))
        };
        match money.and_then(|m| (m.abs() + 1).checked_mul(self.max_rate_raw)) {
            Some(_) => Ok(()),
            None => Err(BookError::NotionalOutOfRange { price, quantity }),
        }
    }

    fn alloc(&mut self, node: Node) -> u32 {
        if let Some(slot) = self.free.pop() {
            self.nodes[slot as usize] = node;
            slot
        } else {
            // `place` checked the slab has room, so this fits in u32.
            let slot = u32::try_from(self.nodes.len()).unwrap_or(NIL - 1);
            self.nodes.push(node);
            slot
        }
    }

    /// Takes a resting order out of the book; returns its unfilled quantity.
    fn remove(&mut self, slot: u32) -> i64 {
        let node = self.nodes[slot as usize];
        self.unlink(slot);
        self.index.remove(&node.id);
        self.free.push(slot);
        node.remaining()
    }

    /// Matches a taker against the opposite side, best level first and oldest
    /// order first, at the resting prices. Fully filled makers leave the book.
    /// Returns the quantity filled.
    fn take(
        &mut self,
        taker: OrderId,
        side: Side,
        limit: Option<i64>,
        quantity: i64,
        ts: Timestamp,
        out: &mut Vec<BookEvent>,
    ) -> i64 {
        // Split the borrows: the opposite ladder, the slab and the index change together.
        let Self { instrument, multiplier, fees, nodes, free, index, bids, asks, next_trade_id, .. } = self;
        let ladder = match side {
            Side::Buy => asks,
            Side::Sell => bids,
        };
        let mut remaining = quantity;
        while remaining > 0 {
            let Some(level) = ladder.best_mut() else { break };
            if limit.is_some_and(|l| !crosses(side, l, level.price)) {
                break;
            }
            let price = Price::from_raw(level.price);
            while remaining > 0 && level.head != NIL {
                let slot = level.head;
                let maker = &mut nodes[slot as usize];
                let q = maker.remaining().min(remaining);
                maker.filled += q;
                remaining -= q;
                level.total -= i128::from(q);
                let trade_id = *next_trade_id;
                *next_trade_id += 1;
                let qty = Quantity::from_raw(q);
                let notional = model::notional(price, qty, *multiplier);
                let fill = |order_id, side, liquidity, rate| {
                    BookEvent::Fill(Fill {
                        order_id,
                        trade_id,
                        instrument: *instrument,
                        side,
                        quantity: qty,
                        price,
                        fee: notional.mul_rate(rate),
                        liquidity,
                        ts,
                    })
                };
                out.push(fill(taker, side, Liquidity::Taker, fees.taker));
                out.push(fill(maker.id, maker.side, Liquidity::Maker, fees.maker));
                if maker.filled == maker.quantity {
                    let next = maker.next;
                    index.remove(&maker.id);
                    free.push(slot);
                    level.head = next;
                    level.count -= 1;
                    if next != NIL {
                        nodes[next as usize].prev = NIL;
                    }
                }
            }
            if level.head == NIL {
                ladder.pop_best();
            }
        }
        quantity - remaining
    }
}

fn view(node: &Node) -> RestingOrder {
    RestingOrder {
        id: node.id,
        side: node.side,
        price: Price::from_raw(node.price),
        quantity: Quantity::from_raw(node.quantity),
        filled: Quantity::from_raw(node.filled),
        remaining: Quantity::from_raw(node.remaining()),
        time_in_force: node.time_in_force,
        post_only: node.post_only,
    }
}

fn saturate(total: i128) -> Quantity {
    Quantity::from_raw(i64::try_from(total).unwrap_or(i64::MAX))
}
