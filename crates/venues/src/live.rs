//! One venue interface over the live adapters: [`LiveVenue`], implemented by
//! [`BinanceVenue`] (Binance spot) and [`TastyVenue`] (TastyTrade).
//!
//! The trait is object safe (methods return boxed futures), so a server can
//! hold `Arc<dyn LiveVenue>`. Everything that crosses it is an exact `model`
//! decimal. Its types carry what the engine's reconciliation input
//! (`engine::reconcile::VenueSnapshot`) needs without this crate depending
//! on the engine:
//!
//! | here | engine |
//! |---|---|
//! | [`LiveStatus`] | `VenueOrderStatus` (same variants) |
//! | [`LiveOrderState`] with `client_order_id: Some(..)` | `VenueOrder` |
//! | [`LiveOrderState`] the engine does not know | `foreign_open_orders` (use [`LiveOrderState::describe`]) |
//! | [`LiveFill`] with `client_order_id: Some(..)` | `VenueFill` (convert `fee` from `fee_currency`; pick a default for `liquidity: None`) |
//! | [`LiveSnapshot::positions`] (venue symbol) | `positions` (instrument id by symbol) |
//!
//! Unknown outcomes are never resubmitted: a placement that timed out is
//! [`PlaceResult::StatusUnknown`]; settle it with [`LiveVenue::settle`]
//! (by client order id) after a short wait.

use std::future::Future;
use std::pin::Pin;

use model::{ClientOrderId, Currency, Instrument, InstrumentId, Liquidity, Money, Order, Price, Quantity, Timestamp};

use crate::binance::BinanceError;
use crate::tastytrade::TastyError;

mod binance;
pub mod feed;
mod tastytrade;

pub use binance::BinanceVenue;
pub use tastytrade::{TastyVenue, fnv1a_64, tasty_trade_id};

/// The future every [`LiveVenue`] method returns.
pub type VenueFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, LiveError>> + Send + 'a>>;

/// What can go wrong behind [`LiveVenue`].
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// Refused locally: nothing was sent (an order type or time in force the
    /// venue does not have, an order that cannot be expressed, ...).
    #[error("refused locally, nothing sent: {0}")]
    Refused(String),
    #[error(transparent)]
    Binance(BinanceError),
    #[error(transparent)]
    Tasty(TastyError),
    /// The venue answered something this interface cannot express.
    #[error("venue answer not mapped: {0}")]
    Unmapped(String),
}

impl From<BinanceError> for LiveError {
    fn from(e: BinanceError) -> Self {
        match e {
            BinanceError::InvalidOrder(why) => Self::Refused(why),
            other => Self::Binance(other),
        }
    }
}

impl From<TastyError> for LiveError {
    fn from(e: TastyError) -> Self {
        match e {
            TastyError::InvalidOrder(why) => Self::Refused(why),
            other => Self::Tasty(other),
        }
    }
}

/// An order's state at the venue, in the engine's reconciliation terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LiveStatus {
    /// Working: submitted, acknowledged, partially filled, or with a cancel
    /// or replace pending. A venue status this adapter does not know is
    /// reported as `Open` (the conservative reading) and logged.
    Open,
    Filled,
    Cancelled,
    Rejected,
    Expired,
    /// The venue has no such order.
    Absent,
}

impl LiveStatus {
    /// Whether no more fills can come.
    #[must_use]
    pub const fn is_closed(self) -> bool {
        !matches!(self, Self::Open)
    }
}

/// An instrument and the venue's symbol for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveInstrument {
    pub instrument: Instrument,
    /// What to pass as `venue_symbol` (padded OCC form for options).
    pub venue_symbol: String,
}

/// One order as the venue reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveOrderState {
    /// Our client order id; `None` when the venue's id for the order is not
    /// a valid [`ClientOrderId`] (an order placed by hand or another program).
    pub client_order_id: Option<ClientOrderId>,
    /// The venue's order id (empty when `Absent`).
    pub venue_order_id: String,
    pub symbol: String,
    pub status: LiveStatus,
    /// The order's total quantity (zero when `Absent`).
    pub quantity: Quantity,
    /// What has filled (zero when `Absent`).
    pub filled_quantity: Quantity,
}

impl LiveOrderState {
    /// The state of an order the venue does not have.
    #[must_use]
    pub fn absent(client_order_id: &ClientOrderId, symbol: &str) -> Self {
        Self {
            client_order_id: Some(client_order_id.clone()),
            venue_order_id: String::new(),
            symbol: symbol.to_string(),
            status: LiveStatus::Absent,
            quantity: Quantity::ZERO,
            filled_quantity: Quantity::ZERO,
        }
    }

    /// A one-line description, for an alert about an order that is not ours.
    #[must_use]
    pub fn describe(&self) -> String {
        format!(
            "{} order {} ({}) {:?}, {} of {} filled",
            self.symbol,
            self.venue_order_id,
            self.client_order_id.as_ref().map_or("no client id", ClientOrderId::as_str),
            self.status,
            self.filled_quantity,
            self.quantity
        )
    }
}

/// One execution as the venue reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveFill {
    /// Our client order id; `None` when the venue did not tie the fill to an
    /// order this interface could name (see the implementations).
    pub client_order_id: Option<ClientOrderId>,
    pub venue_order_id: String,
    pub symbol: String,
    /// Stable across calls and processes: what makes a fill count once.
    pub trade_id: u64,
    pub quantity: Quantity,
    pub price: Price,
    /// The fee charged, in `fee_currency` (positive = paid). It may be
    /// another currency than the instrument's quote currency (Binance
    /// charges commission in the base asset, the quote asset or BNB): the
    /// caller converts before handing it to the engine.
    pub fee: Money,
    pub fee_currency: Currency,
    /// `None` when the venue does not say (TastyTrade).
    pub liquidity: Option<Liquidity>,
    /// When the venue says it happened.
    pub time: Option<Timestamp>,
}

/// A balance of one currency or asset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveBalance {
    pub currency: String,
    /// Everything held, including what open orders lock.
    pub total: Money,
    /// What can be used now.
    pub available: Money,
}

/// The answer to [`LiveVenue::place`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaceResult {
    /// The venue took the order.
    Placed { venue_order_id: String, status: LiveStatus, filled_quantity: Quantity, fills: Vec<LiveFill> },
    /// The venue refused the order; it does not exist.
    Rejected { reason: String, code: Option<String> },
    /// No usable answer: the order may or may not exist. Never resubmit;
    /// call [`LiveVenue::settle`] after a short wait.
    StatusUnknown { cause: String },
}

/// The answer to [`LiveVenue::cancel`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelResult {
    /// The venue took the cancel. The state may still be `Open` while a
    /// cancel is pending (TastyTrade's "Cancel Requested").
    Cancelled(LiveOrderState),
    /// Nothing to cancel: the order is already closed (filled, cancelled,
    /// ...) or absent; its state says which.
    AlreadyClosed(LiveOrderState),
    /// The cancel may or may not have happened; query with
    /// [`LiveVenue::order_states`].
    StatusUnknown { cause: String },
}

/// The answer to [`LiveVenue::settle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// The order exists (the placement took effect); its state.
    Found(LiveOrderState),
    /// No such order (as of this query): the placement did not take effect.
    Absent,
}

/// What the venue reported, for the engine's reconciliation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveSnapshot {
    /// Every order asked about (ours the engine holds open), then every
    /// other order the venue holds open (ours or not: the caller tells them
    /// apart by client order id).
    pub orders: Vec<LiveOrderState>,
    /// Fills since the given time on the given symbols (some older ones may
    /// be repeated; `trade_id` deduplicates).
    pub fills: Vec<LiveFill>,
    /// Signed positions by venue symbol, for the symbols asked about.
    pub positions: Vec<(String, Quantity)>,
    pub balances: Vec<LiveBalance>,
}

/// One live venue account.
pub trait LiveVenue: Send + Sync {
    /// `binance`, `tastytrade`: the `venue` of the instruments it maps.
    fn name(&self) -> &'static str;

    /// The instruments for `(id, venue symbol)` pairs, with the caller's ids.
    fn instruments<'a>(&'a self, wanted: &'a [(InstrumentId, String)]) -> VenueFuture<'a, Vec<LiveInstrument>>;

    /// Places `order` (its remaining quantity) on `venue_symbol`, with the
    /// order's client order id as the venue's client id. An order type or
    /// time in force the venue does not have is `Err(LiveError::Refused)`
    /// and nothing is sent.
    fn place<'a>(&'a self, order: &'a Order, venue_symbol: &'a str) -> VenueFuture<'a, PlaceResult>;

    /// Cancels by client order id.
    fn cancel<'a>(&'a self, client_order_id: &'a ClientOrderId, venue_symbol: &'a str)
    -> VenueFuture<'a, CancelResult>;

    /// Settles a placement of unknown outcome: looks the order up by client
    /// order id. Never sends the order again.
    fn settle<'a>(&'a self, client_order_id: &'a ClientOrderId, venue_symbol: &'a str) -> VenueFuture<'a, Settled>;

    /// The state of each `(client order id, venue symbol)`, in order; an
    /// order the venue does not have is `Absent`.
    fn order_states<'a>(&'a self, orders: &'a [(ClientOrderId, String)]) -> VenueFuture<'a, Vec<LiveOrderState>>;

    /// Every order open at the venue on this account, ours or not.
    fn open_orders(&self) -> VenueFuture<'_, Vec<LiveOrderState>>;

    /// Fills at or after `since` on `symbols`.
    fn fills_since<'a>(&'a self, since: Timestamp, symbols: &'a [String]) -> VenueFuture<'a, Vec<LiveFill>>;

    /// Signed positions of `symbols` (each listed, zero when flat).
    fn positions<'a>(&'a self, symbols: &'a [String]) -> VenueFuture<'a, Vec<(String, Quantity)>>;

    /// The account's non-zero balances.
    fn balances(&self) -> VenueFuture<'_, Vec<LiveBalance>>;

    /// Everything reconciliation needs, read in this order: the states of
    /// `ours` (orders the engine holds open), the venue's open orders, the
    /// fills since `since` on `symbols` and on the symbols of `ours`, the
    /// positions of those symbols, the balances.
    fn snapshot<'a>(
        &'a self,
        ours: &'a [(ClientOrderId, String)],
        symbols: &'a [String],
        since: Timestamp,
    ) -> VenueFuture<'a, LiveSnapshot> {
        Box::pin(async move {
            let mut all_symbols: Vec<String> = symbols.to_vec();
            for (_, s) in ours {
                if !all_symbols.contains(s) {
                    all_symbols.push(s.clone());
                }
            }
            let mut orders = self.order_states(ours).await?;
            for open in self.open_orders().await? {
                let known = orders.iter().any(|o| {
                    o.venue_order_id == open.venue_order_id
                        || (open.client_order_id.is_some() && o.client_order_id == open.client_order_id)
                });
                if !known {
                    orders.push(open);
                }
            }
            let fills = self.fills_since(since, &all_symbols).await?;
            let positions = self.positions(&all_symbols).await?;
            let balances = self.balances().await?;
            Ok(LiveSnapshot { orders, fills, positions, balances })
        })
    }
}

/// A venue's client order id text as ours, when it is a valid one.
fn client_id(text: &str) -> Option<ClientOrderId> {
    ClientOrderId::parse(text).ok()
}
