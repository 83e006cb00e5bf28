//! Binance spot: the REST client (signing, server-time sync, exchangeInfo →
//! instruments, orders, account, trades, rate limits).
//!
//! Follows the Binance Spot API documentation
//! (developers.binance.com/docs/binance-spot-api-docs): SIGNED requests carry
//! `X-MBX-APIKEY`, `recvWindow`, `timestamp` and a `signature` over the
//! percent-encoded query string; all parameters go in the query string.

pub mod error;
pub mod filters;
pub mod market_stream;
pub mod rate_limit;
pub mod rest;
pub mod signing;
pub mod types;
pub mod user_stream;
pub mod ws;

pub use error::{BinanceError, ErrorCode};
pub use filters::{ExchangeInfo, LotSizeFilter, NotionalFilter, PriceFilter, RateLimit, SymbolRules};
pub use market_stream::{
    BookTickerUpdate, KlineInterval, KlineUpdate, MARKET_STREAM_PRODUCTION_URL, MARKET_STREAM_TESTNET_URL,
    MarketChannel, MarketEvent, MarketStream, MarketStreamConfig, MarketStreamHandle, TradeUpdate,
};
pub use rate_limit::RateLimitStatus;
pub use rest::{
    BinanceClient, BinanceConfig, CancelOutcome, PRODUCTION_BASE_URL, PendingAction, PlaceOutcome, Settlement,
    TESTNET_BASE_URL, UnknownOutcome,
};
pub use signing::{Credentials, CredentialsError, KeyKind};
pub use types::{
    AccountInfo, Balance, BinanceOrderStatus, NewOrder, OrderFill, OrderKind, OrderReport, Trade, TradeQuery,
};
pub use user_stream::{
    AccountPosition, BalanceDelta, ExecutionFill, ExecutionType, ExecutionUpdate, ListStatus,
    USER_STREAM_PRODUCTION_URL, USER_STREAM_TESTNET_URL, UserStream, UserStreamConfig, UserStreamEvent,
    UserStreamHandle,
};
pub use ws::{ConnectionEvent, DisconnectReason, Gap, ReconnectPolicy, StatsSnapshot, StreamError};
