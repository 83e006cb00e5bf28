//! The simulated venue: a limit order book with price-time priority for
//! quote-driven simulation, and bar fill models for backtests.
//!
//! Pure and synchronous like the engine: orders and market data in, fills
//! out. No clock of its own; every call takes the time as an argument.

pub mod bars;
pub mod book;
