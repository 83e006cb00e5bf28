//! TastyTrade: the REST client (OAuth2 access tokens, accounts, balances,
//! positions, transactions with their fees, equity and equity option
//! instruments, orders with dry run, cancel and replace, the DXLink quote
//! token).
//!
//! Follows the TastyTrade developer documentation (developer.tastytrade.com):
//! every request carries `User-Agent: <product>/<version>` and
//! `Authorization: Bearer <access token>`; access tokens come from
//! `POST /oauth/token` with a refresh token and the client secret and last
//! 15 minutes; bodies are JSON with kebab-case keys, answers are wrapped in
//! `{"data": ..., "context": ...}`, errors in `{"error": {"code", "message",
//! "errors"}}`. Orders carry our client order id as `external-identifier`:
//! TastyTrade does not deduplicate submissions, so an unanswered placement is
//! settled by searching for it, never by sending it again.

pub mod account_stream;
pub mod auth;
pub mod dxlink;
pub mod error;
pub mod rest;
pub mod stream;
pub mod symbols;
pub mod types;

/// The venue name on instruments this adapter maps.
pub const VENUE: &str = "tastytrade";

pub use account_stream::{
    ACCOUNT_STREAMER_PRODUCTION_URL, ACCOUNT_STREAMER_SANDBOX_URL, AccountEvent, AccountFrame, AccountStream,
    AccountStreamConfig, AccountStreamHandle, parse_account_frame,
};
pub use auth::{AccessToken, DEFAULT_TOKEN_LIFETIME, OAuthCredentials, TokenManager};
pub use dxlink::{DxLinkConfig, DxLinkHandle, DxLinkStream, DxQuote, DxTrade, EventKind, MarketEvent, Subscription};
pub use error::{ErrorDetail, TastyError};
pub use rest::{
    CancelOutcome, DEFAULT_USER_AGENT, PRODUCTION_BASE_URL, PendingAction, PlaceOutcome, ReplaceOutcome,
    SANDBOX_BASE_URL, Settlement, TastyClient, TastyConfig, UnknownOutcome,
};
pub use stream::{
    AccessTokenSource, ClientAccessTokens, ConnectionEvent, DisconnectReason, Gap, QuoteTokenSource, ReconnectPolicy,
    StatsSnapshot, StreamError,
};
pub use symbols::{Date, OccError, OccSymbol, OptionKind};
pub use types::{
    Account, AccountAuthority, AccountBalance, Action, BuyingPowerEffect, Effected, EquityInfo, EquityOptionInfo,
    FeeCalculation, InstrumentType, LegFill, NewLeg, NewOrder, OrderLeg, OrderWarning, PlacedOrder, Position,
    PositionEffect, PriceEffect, QuoteToken, Replacement, TastyOrder, TastyOrderStatus, TastyOrderType,
    TastyTimeInForce, TickSchedule, TickTier, Transaction, TransactionQuery, action_for,
};
