//! Account state and the events that change it.
//!
//! State is the fold of events: [`AccountState::apply`] is the only code that
//! mutates it, and it trusts its input because [`crate::Engine::process`]
//! validates every command and venue report before emitting an event. Replaying
//! a journal of events through `apply` rebuilds exactly the same state.

use std::collections::{BTreeMap, HashMap, HashSet};

pub use model::account::{Position, RiskLimits, SwitchScope, TradingState};
pub use model::event::{Event, EventKind};
use model::{
    ClientOrderId, Currency, Fill, Instrument, InstrumentId, Money, Order, OrderEventKind, OrderId, Price, Quantity,
    Timestamp,
};
use serde::{Deserialize, Serialize};

/// Everything the engine knows about one instrument on this account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstrumentBook {
    pub instrument: Instrument,
    pub position: Position,
    /// The latest market price. Market data, not account history: it is set
    /// by [`AccountState::set_mark`] and not journaled, because a feed sends
    /// far more prices than a journal should hold and a restarted engine gets
    /// fresh ones from the feed. Decisions taken on a mark (a denial, the
    /// daily baseline) are journaled as events.
    #[serde(skip)]
    pub mark: Option<Price>,
}

impl InstrumentBook {
    /// Signed market value at the mark (zero without a mark).
    #[must_use]
    pub fn market_value(&self) -> Money {
        match self.mark {
            Some(mark) => self.instrument.notional(mark, self.position.quantity),
            None => self.position.cost_basis,
        }
    }

    #[must_use]
    pub fn unrealized_pnl(&self) -> Money {
        self.market_value() - self.position.cost_basis
    }
}

/// The whole state of one trading account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountState {
    pub base_currency: Currency,
    /// Instruments in the order they were added. Accounts trade a handful, so
    /// a linear scan beats hashing on the per-bar path.
    pub books: Vec<InstrumentBook>,
    pub balances: BTreeMap<Currency, Money>,
    /// Every order ever placed, by id (ordered, so iteration is deterministic).
    pub orders: BTreeMap<OrderId, Order>,
    pub open_orders: std::collections::BTreeSet<OrderId>,
    pub client_order_ids: HashMap<ClientOrderId, OrderId>,
    /// Venue trade ids already applied, so a re-sent fill is caught.
    pub seen_trades: HashSet<(OrderId, u64)>,
    /// Fills whose commission the venue took in the traded asset (see
    /// `EventKind::AssetFeeCharged`), so it is charged once.
    #[serde(default)]
    pub asset_fees: HashSet<(OrderId, u64)>,
    pub next_order_id: u64,
    pub limits: RiskLimits,
    pub account_state: TradingState,
    pub global_state: TradingState,
    pub day: Option<i64>,
    pub day_start_equity: Money,
    /// The day's starting equity per currency (see `EventKind::DayStarted`),
    /// moved by deposits and withdrawals like `day_start_equity`; a currency
    /// not listed was not held when the day started. `None` until a day
    /// starts with it recorded (journals written before it was).
    #[serde(default)]
    pub day_start_by_currency: Option<BTreeMap<Currency, Money>>,
    pub last_ts: Timestamp,
}

impl AccountState {
    #[must_use]
    pub fn new(base_currency: Currency) -> Self {
        Self {
            base_currency,
            books: Vec::new(),
            balances: BTreeMap::new(),
            orders: BTreeMap::new(),
            open_orders: std::collections::BTreeSet::new(),
            client_order_ids: HashMap::new(),
            seen_trades: HashSet::new(),
            asset_fees: HashSet::new(),
            next_order_id: 1,
            limits: RiskLimits::default(),
            account_state: TradingState::Active,
            global_state: TradingState::Active,
            day: None,
            day_start_equity: Money::ZERO,
            day_start_by_currency: None,
            last_ts: Timestamp::default(),
        }
    }

    #[must_use]
    pub fn book(&self, id: InstrumentId) -> Option<&InstrumentBook> {
        self.books.iter().find(|b| b.instrument.id == id)
    }

    fn book_mut(&mut self, id: InstrumentId) -> Option<&mut InstrumentBook> {
        self.books.iter_mut().find(|b| b.instrument.id == id)
    }

    #[must_use]
    pub fn position(&self, id: InstrumentId) -> Quantity {
        self.book(id).map_or(Quantity::ZERO, |b| b.position.quantity)
    }

    #[must_use]
    pub fn cash(&self, currency: Currency) -> Money {
        self.balances.get(&currency).copied().unwrap_or_default()
    }

    /// Cash in `currency` plus the marked value of positions quoted in it.
    #[must_use]
    pub fn equity_in(&self, currency: Currency) -> Money {
        let positions: Money = self
            .books
            .iter()
            .filter(|b| b.instrument.quote_currency == currency)
            .map(InstrumentBook::market_value)
            .sum();
        self.cash(currency) + positions
    }

    /// Equity in every currency the account holds cash in.
    #[must_use]
    pub fn equity_by_currency(&self) -> Vec<(Currency, Money)> {
        self.balances.keys().map(|c| (*c, self.equity_in(*c))).collect()
    }

    /// Cash plus the marked value of positions quoted in the base currency.
    /// Positions quoted in other currencies are not converted (no FX rates in
    /// the core yet) and count at zero.
    #[must_use]
    pub fn equity(&self) -> Money {
        self.equity_in(self.base_currency)
    }

    /// Today's P&L in `currency`: equity now less the day's starting
    /// equity, deposits and withdrawals excluded. `None` before a day has
    /// started with per-currency equity recorded.
    #[must_use]
    pub fn day_pnl_in(&self, currency: Currency) -> Option<Money> {
        let starts = self.day_start_by_currency.as_ref()?;
        Some(self.equity_in(currency) - starts.get(&currency).copied().unwrap_or_default())
    }

    /// Cash in `currency` not committed to open buy orders or held as
    /// collateral for short positions.
    #[must_use]
    pub fn free_cash(&self, currency: Currency) -> Money {
        let mut free = self.cash(currency);
        for book in self.books.iter().filter(|b| b.instrument.quote_currency == currency) {
            if book.position.quantity.is_negative() {
                // Short-sale proceeds sit in cash but back the short.
                free -= book.market_value().abs();
            }
        }
        for id in &self.open_orders {
            let Some(order) = self.orders.get(id) else { continue };
            let Some(book) = self.book(order.instrument) else { continue };
            if book.instrument.quote_currency != currency {
                continue;
            }
            if let Some(price) = order.order_type.limit_price().or(order.order_type.trigger_price()).or(book.mark) {
                let reserved = book.instrument.notional(price, order.remaining());
                let increases = match order.side {
                    model::Side::Buy => !book.position.quantity.is_negative(),
                    model::Side::Sell => !book.position.quantity.is_positive(),
                };
                if increases {
                    free -= reserved + reserved.mul_rate(self.limits.fee_rate_estimate);
                }
            }
        }
        free
    }

    /// Net quantity of open orders on one instrument (buys positive).
    #[must_use]
    pub fn open_order_quantity(&self, instrument: InstrumentId, side: model::Side) -> Quantity {
        self.open_orders
            .iter()
            .filter_map(|id| self.orders.get(id))
            .filter(|o| o.instrument == instrument && o.side == side)
            .fold(Quantity::ZERO, |acc, o| acc + o.remaining())
    }

    /// The strictest of the account and global kill switches.
    #[must_use]
    pub fn effective_trading_state(&self) -> (TradingState, SwitchScope) {
        let rank = |s: TradingState| match s {
            TradingState::Active => 0,
            TradingState::Reducing => 1,
            TradingState::Halted => 2,
        };
        if rank(self.global_state) >= rank(self.account_state) && self.global_state != TradingState::Active {
            (self.global_state, SwitchScope::Global)
        } else {
            (self.account_state, SwitchScope::Account)
        }
    }

    /// Records a market price. Returns `false` for an unknown instrument.
    pub fn set_mark(&mut self, instrument: InstrumentId, price: Price) -> bool {
        match self.book_mut(instrument) {
            Some(book) => {
                book.mark = Some(price);
                true
            }
            None => false,
        }
    }

    /// Forgets every mark: what a replayed journal looks like before the feed speaks.
    pub fn clear_marks(&mut self) {
        for book in &mut self.books {
            book.mark = None;
        }
    }

    /// Applies one event. Only validated events reach here; an event that
    /// does not fit the state (unknown order, say) is skipped, which can only
    /// happen with a corrupted journal and is caught by replay tests.
    pub fn apply(&mut self, event: &Event) {
        let ts = event.ts;
        self.last_ts = ts;
        match &event.kind {
            EventKind::InstrumentAdded { instrument } => {
                if self.book(instrument.id).is_none() {
                    self.books.push(InstrumentBook {
                        instrument: (**instrument).clone(),
                        position: Position::flat(instrument.id),
                        mark: None,
                    });
                }
            }
            EventKind::AssetFeeCharged { order_id, instrument, trade_id, quantity } => {
                if let Some(book) = self.books.iter_mut().find(|b| b.instrument.id == *instrument) {
                    book.position.quantity = book.position.quantity - *quantity;
                    if book.position.quantity.is_zero() {
                        book.position.cost_basis = Money::ZERO;
                    }
                }
                self.asset_fees.insert((*order_id, *trade_id));
            }
            EventKind::CashAdjusted { currency, amount } => {
                *self.balances.entry(*currency).or_default() += *amount;
                // Deposits and withdrawals are not profit or loss.
                if *currency == self.base_currency {
                    self.day_start_equity += *amount;
                }
                if let Some(starts) = &mut self.day_start_by_currency {
                    *starts.entry(*currency).or_default() += *amount;
                }
            }
            EventKind::OrderSubmitted { order } => {
                self.next_order_id = self.next_order_id.max(order.id.0 + 1);
                self.client_order_ids.insert(order.client_order_id.clone(), order.id);
                self.open_orders.insert(order.id);
                self.orders.insert(order.id, (**order).clone());
            }
            EventKind::OrderDenied { order } => {
                self.next_order_id = self.next_order_id.max(order.id.0 + 1);
                self.client_order_ids.insert(order.client_order_id.clone(), order.id);
                self.orders.insert(order.id, (**order).clone());
            }
            EventKind::OrderAccepted { order_id } => self.transition(*order_id, OrderEventKind::Accept, ts),
            EventKind::OrderRejected { order_id, reason } => {
                self.transition(*order_id, OrderEventKind::Reject, ts);
                if let Some(order) = self.orders.get_mut(order_id) {
                    order.reject_reason = Some(*reason);
                }
            }
            EventKind::OrderCancelRequested { order_id } => {
                self.transition(*order_id, OrderEventKind::CancelRequest, ts)
            }
            EventKind::OrderCancelRejected { order_id } => {
                let partially_filled = self.orders.get(order_id).is_some_and(|o| o.filled_quantity.is_positive());
                self.transition(*order_id, OrderEventKind::CancelReject { partially_filled }, ts);
            }
            EventKind::OrderCancelled { order_id } => self.transition(*order_id, OrderEventKind::Cancel, ts),
            EventKind::OrderExpired { order_id } => self.transition(*order_id, OrderEventKind::Expire, ts),
            EventKind::OrderFilled { fill } => self.apply_fill(fill, ts),
            EventKind::TradingStateChanged { scope, state } => match scope {
                SwitchScope::Account => self.account_state = *state,
                SwitchScope::Global => self.global_state = *state,
            },
            EventKind::RiskLimitsChanged { limits } => self.limits = limits.clone(),
            EventKind::DayStarted { day, equity, by_currency } => {
                self.day = Some(*day);
                self.day_start_equity = *equity;
                self.day_start_by_currency = by_currency.as_ref().map(|list| list.iter().copied().collect());
            }
        }
    }

    fn transition(&mut self, order_id: OrderId, event: OrderEventKind, ts: Timestamp) {
        let Some(order) = self.orders.get_mut(&order_id) else { return };
        if let Ok(next) = order.status.transition(event, false) {
            order.status = next;
            order.ts_updated = ts;
            if !next.is_open() {
                self.open_orders.remove(&order_id);
            }
        }
    }

    fn apply_fill(&mut self, fill: &Fill, ts: Timestamp) {
        let Some(book) = self.books.iter_mut().find(|b| b.instrument.id == fill.instrument) else { return };
        let total = book.instrument.notional(fill.price, fill.quantity);
        let quote = book.instrument.quote_currency;
        apply_to_position(&mut book.position, &book.instrument, fill, total);
        let cash = self.balances.entry(quote).or_default();
        match fill.side {
            model::Side::Buy => *cash -= total + fill.fee,
            model::Side::Sell => *cash += total - fill.fee,
        }
        self.seen_trades.insert((fill.order_id, fill.trade_id));
        if let Some(order) = self.orders.get_mut(&fill.order_id) {
            order.filled_quantity = order.filled_quantity + fill.quantity;
            order.filled_notional += total;
            order.fees += fill.fee;
            let complete = order.filled_quantity >= order.quantity;
            if let Ok(next) = order.status.transition(OrderEventKind::Fill, complete) {
                order.status = next;
            }
            order.ts_updated = ts;
            if !order.status.is_open() {
                self.open_orders.remove(&fill.order_id);
            }
        }
    }
}

/// Moves `position` by `fill` exactly as the account does (for P&L of a
/// subset of fills, such as one bot's).
pub fn apply_fill_to_position(position: &mut Position, instrument: &Instrument, fill: &Fill) {
    let total = instrument.notional(fill.price, fill.quantity);
    apply_to_position(position, instrument, fill, total);
}

/// Moves a position by a fill: adds to it, reduces it (realizing P&L against
/// the pro-rated cost basis), or closes and reverses it. `total` is the fill's
/// notional; it is split exactly between the closing and opening parts so
/// that cash, cost basis and realized P&L always add up.
fn apply_to_position(position: &mut Position, instrument: &Instrument, fill: &Fill, total: Money) {
    position.fees += fill.fee;
    let signed = if fill.side == model::Side::Buy { fill.quantity } else { -fill.quantity };
    let held = position.quantity;
    let same_direction = held.is_zero() || (held.is_positive() == signed.is_positive());
    if same_direction {
        position.quantity = held + signed;
        position.cost_basis += if signed.is_positive() { total } else { -total };
        return;
    }
    let closing = if fill.quantity.raw() <= held.raw().abs() { fill.quantity } else { held.abs() };
    let closing_notional =
        if closing == fill.quantity { total } else { instrument.notional(fill.price, closing).min(total) };
    let cost_portion = position.cost_basis.mul_div(i128::from(closing.raw()), i128::from(held.raw().abs()));
    // Long: proceeds minus cost. Short: cost (negative basis) minus buy-back.
    let proceeds = if held.is_positive() { closing_notional } else { -closing_notional };
    position.realized_pnl += proceeds - cost_portion;
    position.cost_basis -= cost_portion;
    position.quantity = held + signed;
    let opening_notional = total - closing_notional;
    if !position.quantity.is_zero() && position.quantity.is_positive() == signed.is_positive() {
        // Reversed through zero: what is held now was opened by this fill.
        position.cost_basis = if signed.is_positive() { opening_notional } else { -opening_notional };
    } else if position.quantity.is_zero() {
        position.cost_basis = Money::ZERO;
    }
}
