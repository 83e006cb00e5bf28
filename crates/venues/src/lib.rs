//! Live venue adapters.
//!
//! So far: the Binance spot REST client ([`binance`]). Every price, quantity
//! and balance crosses this crate as an exact `model` decimal, never `f64`.

pub mod binance;
pub mod tastytrade;
