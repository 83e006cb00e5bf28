//! Local fake venue servers for tests, written from the venues' documented
//! formats and sharing no code with the `venues` clients. Test support only:
//! never a dependency of anything shipped. See `README.md`.

pub mod binance;
pub mod binance_ws;
pub mod tastytrade;
pub mod tastytrade_ws;
