//! Binance spot: the REST client (signing, server-time sync, exchangeInfo →
//! instruments, orders, account, trades, rate limits).
//!
//! Follows the Binance Spot API documentation
//! (developers.binance.com/docs/binance-spot-api-docs): SIGNED requests carry
//! `X-MBX-APIKEY`, `recvWindow`, `timestamp` and a `signature` over the
//! percent-encoded query string; all parameters go in the query string.

pub mod error;
pub mod filters;
pub mod rate_limit;
pub mod rest;
pub mod signing;
pub mod types;

pub use error::{BinanceError, ErrorCode};
pub use filters::{ExchangeInfo, LotSizeFilter, NotionalFilter, PriceFilter, RateLimit, SymbolRules};
pub use rate_limit::RateLimitStatus;
pub use rest::{
    BinanceClient, BinanceConfig, CancelOutcome, PRODUCTION_BASE_URL, PendingAction, PlaceOutcome, Settlement,
    TESTNET_BASE_URL, UnknownOutcome,
};
pub use signing::{Credentials, CredentialsError, KeyKind};
pub use types::{
    AccountInfo, Balance, BinanceOrderStatus, NewOrder, OrderFill, OrderKind, OrderReport, Trade, TradeQuery,
};
