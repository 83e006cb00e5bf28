//! The simulated venue: a limit order book with price-time priority, and
//! fill models for backtests and paper trading on bars and on quotes.
//!
//! Pure and synchronous like the engine: orders and market data in, fills
//! out. No clock of its own; every call takes the time as an argument.

pub mod bars;
pub mod book;
pub mod candles;
pub mod market;
pub mod quotes;
