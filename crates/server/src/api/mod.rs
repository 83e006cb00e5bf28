//! REST endpoints for market data and trading (authentication lives in
//! `crate::routes`).

pub mod admin;
pub mod backtests;
pub mod bots;
pub mod live;
pub mod market;
pub mod risk;
pub mod strategies;
pub mod trading;
pub mod ws;
