//! The tradecore domain model: exact prices, quantities and money,
//! instruments, orders and their lifecycle, fills, bars and quotes.
//!
//! Pure data and rules: no I/O, no async, no clock. Every other crate builds on
//! these types, so they are small, `Copy` where they can be, and impossible to
//! construct in an invalid state through their parsing constructors.

pub mod account;
pub mod event;
pub mod instrument;
pub mod num;
#[cfg(feature = "openapi")]
pub mod openapi;
pub mod order;
pub mod time;

pub use instrument::{AssetClass, Currency, Instrument, InstrumentError, InstrumentId};
pub use num::{Money, ParseNumberError, Price, Quantity, Rate, RoundingMode, notional};
pub use order::{
    Bar, ClientOrderId, ExecutionReport, Fill, InvalidTransition, Liquidity, Order, OrderEventKind, OrderId,
    OrderStatus, OrderType, Quote, RejectReason, Side, TimeInForce,
};
pub use time::Timestamp;
