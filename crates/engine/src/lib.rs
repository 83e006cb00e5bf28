//! The deterministic trading core: order lifecycle, pre-trade risk, portfolio
//! and P&L, the strategy interface, indicators and the built-in strategies.
//!
//! [`Engine`] is a state machine per account: `(state, input, now) -> (state,
//! events, venue requests)`. State is the fold of its events, so replaying a
//! journal rebuilds it exactly. No I/O, no async, no clock: the backtester and
//! the live server drive the same code, differing only in the clock, the venue
//! and the feed.

pub mod engine;
pub mod indicators;
pub mod params;
pub mod reconcile;
pub mod risk;
pub mod sizing;
pub mod state;
pub mod strategies;
pub mod strategy;

pub use engine::{Command, Engine, EngineError, Input, OrderRequest, Output, Submission, VenueRequest};
pub use model::ExecutionReport;
pub use params::{ParamError, ParamKind, ParamSpec, ParamValue, Params};
pub use state::{AccountState, Event, EventKind, InstrumentBook, Position, RiskLimits, SwitchScope, TradingState};
pub use strategy::{Intent, Size, Sizing, Strategy, StrategyContext};
