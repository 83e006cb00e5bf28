//! The strategy interface shared by backtests and live bots.
//!
//! A strategy sees market data and its own fills, reads the account through a
//! [`StrategyContext`], and expresses what it wants as [`Intent`]s. It never
//! talks to a venue: the runner (backtester or live bot runtime) turns intents
//! into orders at the moment they execute, which is when sizing such as
//! "all-in" can be computed against the real fill price.

use model::{
    Bar, ClientOrderId, Fill, InstrumentId, Money, Order, OrderType, Quantity, Quote, Rate, Side, TimeInForce,
    Timestamp,
};
use serde::{Deserialize, Serialize};

use crate::state::AccountState;

/// How large an order should be, decided when it executes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum Size {
    /// Exactly this many units.
    Units(Quantity),
    /// Spend this much of the quote currency (fees included).
    Notional(Money),
    /// The runner's configured sizing (all-in, fixed units, percent of equity).
    Default,
    /// Whatever closes the current position.
    ClosePosition,
}

/// Something a strategy wants done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Intent {
    Order {
        side: Side,
        size: Size,
        order_type: OrderType,
        time_in_force: TimeInForce,
        reduce_only: bool,
        /// Set to manage the order later (cancel); generated otherwise.
        client_order_id: Option<ClientOrderId>,
    },
    Cancel(ClientOrderId),
    CancelAll,
}

/// What a strategy can see and do while handling a callback.
pub struct StrategyContext<'a> {
    state: &'a AccountState,
    instrument: InstrumentId,
    now: Timestamp,
    intents: &'a mut Vec<Intent>,
}

impl<'a> StrategyContext<'a> {
    pub fn new(
        state: &'a AccountState,
        instrument: InstrumentId,
        now: Timestamp,
        intents: &'a mut Vec<Intent>,
    ) -> Self {
        Self { state, instrument, now, intents }
    }

    #[must_use]
    pub fn now(&self) -> Timestamp {
        self.now
    }

    #[must_use]
    pub fn instrument(&self) -> InstrumentId {
        self.instrument
    }

    /// Signed position in the strategy's instrument (negative = short).
    #[must_use]
    pub fn position(&self) -> Quantity {
        self.state.position(self.instrument)
    }

    /// Cash in the instrument's quote currency.
    #[must_use]
    pub fn cash(&self) -> Money {
        let currency =
            self.state.book(self.instrument).map_or(self.state.base_currency, |b| b.instrument.quote_currency);
        self.state.cash(currency)
    }

    #[must_use]
    pub fn equity(&self) -> Money {
        self.state.equity()
    }

    /// Open orders on the strategy's instrument.
    pub fn open_orders(&self) -> impl Iterator<Item = &Order> {
        let instrument = self.instrument;
        self.state
            .open_orders
            .iter()
            .filter_map(|id| self.state.orders.get(id))
            .filter(move |o| o.instrument == instrument)
    }

    /// Intents added so far in this callback (not yet executed).
    #[must_use]
    pub fn pending_intents(&self) -> &[Intent] {
        self.intents
    }

    pub fn submit(&mut self, intent: Intent) {
        self.intents.push(intent);
    }

    /// A market order of the given size.
    pub fn market(&mut self, side: Side, size: Size) {
        self.submit(Intent::Order {
            side,
            size,
            order_type: OrderType::Market,
            time_in_force: TimeInForce::Gtc,
            reduce_only: false,
            client_order_id: None,
        });
    }

    /// Closes the whole position with a reduce-only market order (nothing if flat).
    pub fn close_position(&mut self) {
        if !self.position().is_zero() {
            let side = if self.position().is_positive() { Side::Sell } else { Side::Buy };
            self.submit(Intent::Order {
                side,
                size: Size::ClosePosition,
                order_type: OrderType::Market,
                time_in_force: TimeInForce::Gtc,
                reduce_only: true,
                client_order_id: None,
            });
        }
    }

    pub fn cancel(&mut self, client_order_id: ClientOrderId) {
        self.submit(Intent::Cancel(client_order_id));
    }

    pub fn cancel_all(&mut self) {
        self.submit(Intent::CancelAll);
    }
}

/// A trading strategy. All hooks but `on_bar` default to doing nothing.
pub trait Strategy: Send {
    /// Called once before the first data.
    fn on_start(&mut self, _ctx: &mut StrategyContext<'_>) {}
    /// Called when a bar closes.
    fn on_bar(&mut self, bar: &Bar, ctx: &mut StrategyContext<'_>);
    fn on_quote(&mut self, _quote: &Quote, _ctx: &mut StrategyContext<'_>) {}
    fn on_fill(&mut self, _fill: &Fill, _ctx: &mut StrategyContext<'_>) {}
    /// Called when one of the account's orders changes status.
    fn on_order_update(&mut self, _order: &Order, _ctx: &mut StrategyContext<'_>) {}
}

/// The runner's default order size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum Sizing {
    /// The largest whole number of lots that free cash covers at the fill price, fees included.
    AllIn,
    /// A fixed quantity.
    Units(Quantity),
    /// This fraction of equity (0.25 = 25 %), capped by free cash.
    PercentOfEquity(Rate),
}

impl std::str::FromStr for Sizing {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("invalid sizing '{s}'; expected all-in, units=N or percent=P (0 < P <= 100)");
        if s == "all-in" {
            return Ok(Self::AllIn);
        }
        let (key, value) = s.split_once('=').ok_or_else(bad)?;
        match key {
            "units" => {
                let q = Quantity::parse(value).map_err(|e| format!("{}: {e}", bad()))?;
                if q.is_positive() { Ok(Self::Units(q)) } else { Err(bad()) }
            }
            "percent" => {
                let p = Rate::parse(value).map_err(|e| format!("{}: {e}", bad()))?;
                if p.is_positive() && p <= Rate::from_int(100) {
                    // Percent to fraction: exact because Rate has 9 decimals.
                    Ok(Self::PercentOfEquity(Rate::from_raw(p.raw() / 100)))
                } else {
                    Err(bad())
                }
            }
            _ => Err(bad()),
        }
    }
}

impl std::fmt::Display for Sizing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::AllIn => write!(f, "all-in"),
            Self::Units(q) => write!(f, "units={q}"),
            Self::PercentOfEquity(r) => write!(f, "percent={}", Rate::from_raw(r.raw() * 100)),
        }
    }
}
