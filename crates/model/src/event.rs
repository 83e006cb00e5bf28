//! The events that make up an account's journal.
//!
//! Every change to an account is one of these; replaying them in order
//! rebuilds the account (see the engine crate). They serialize as tagged JSON
//! (`{"ts": ..., "kind": "order_filled", ...}`) for the journal.

use serde::{Deserialize, Serialize};

use crate::account::{RiskLimits, SwitchScope, TradingState};
use crate::instrument::{Currency, Instrument, InstrumentId};
use crate::num::{Money, Quantity};
use crate::order::{Fill, Order, OrderId, RejectReason};
use crate::time::Timestamp;

/// A journaled fact about the account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    // Large payloads are boxed so the common small events (marks, fills)
    // stay small to copy on the per-bar path.
    InstrumentAdded {
        instrument: Box<Instrument>,
    },
    CashAdjusted {
        currency: Currency,
        amount: Money,
    },
    /// Passed risk checks and was sent to the venue.
    OrderSubmitted {
        order: Box<Order>,
    },
    /// Refused by a pre-trade check; it never reached the venue.
    OrderDenied {
        order: Box<Order>,
    },
    OrderAccepted {
        order_id: OrderId,
    },
    OrderRejected {
        order_id: OrderId,
        reason: RejectReason,
    },
    OrderFilled {
        fill: Fill,
    },
    OrderCancelRequested {
        order_id: OrderId,
    },
    OrderCancelRejected {
        order_id: OrderId,
    },
    OrderCancelled {
        order_id: OrderId,
    },
    OrderExpired {
        order_id: OrderId,
    },
    /// The venue kept part of a fill, in the traded asset, as commission:
    /// the position shrinks by `quantity`; its cost basis stays (the cost
    /// of the commission is in the higher cost per unit).
    AssetFeeCharged {
        order_id: OrderId,
        instrument: InstrumentId,
        trade_id: u64,
        quantity: Quantity,
    },
    TradingStateChanged {
        scope: SwitchScope,
        state: TradingState,
    },
    RiskLimitsChanged {
        limits: RiskLimits,
    },
    /// The first input of a new UTC day; the equity then is the daily-loss baseline.
    DayStarted {
        day: i64,
        equity: Money,
        /// Equity in every currency held (cash plus the positions quoted in
        /// it), the baseline of each currency's day P&L. `None` in journals
        /// written before it was recorded.
        #[serde(default)]
        by_currency: Option<Vec<(Currency, Money)>>,
    },
}

/// An event with the engine time it happened at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub ts: Timestamp,
    #[serde(flatten)]
    pub kind: EventKind,
}

impl EventKind {
    /// The event's kind as stored in the journal's `kind` column.
    #[must_use]
    pub const fn name(&self) -> &'static str {
        match self {
            Self::InstrumentAdded { .. } => "instrument_added",
            Self::CashAdjusted { .. } => "cash_adjusted",
            Self::OrderSubmitted { .. } => "order_submitted",
            Self::OrderDenied { .. } => "order_denied",
            Self::OrderAccepted { .. } => "order_accepted",
            Self::OrderRejected { .. } => "order_rejected",
            Self::OrderFilled { .. } => "order_filled",
            Self::OrderCancelRequested { .. } => "order_cancel_requested",
            Self::OrderCancelRejected { .. } => "order_cancel_rejected",
            Self::OrderCancelled { .. } => "order_cancelled",
            Self::OrderExpired { .. } => "order_expired",
            Self::AssetFeeCharged { .. } => "asset_fee_charged",
            Self::TradingStateChanged { .. } => "trading_state_changed",
            Self::RiskLimitsChanged { .. } => "risk_limits_changed",
            Self::DayStarted { .. } => "day_started",
        }
    }
}
