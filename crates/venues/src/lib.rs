//! Live venue adapters.
//!
//! Binance spot ([`binance`]) and TastyTrade ([`tastytrade`]): REST clients
//! and streams, each tested against a local fake of the venue. Every price,
//! quantity and balance crosses this crate as an exact `model` decimal,
//! never `f64`.

pub mod binance;
pub mod live;
pub mod stream;
pub mod tastytrade;
