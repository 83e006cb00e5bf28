//! Orders, their lifecycle, fills and rejection reasons.
//!
//! An order's status changes only through [`OrderStatus::transition`], one
//! table of every legal `(status, event)` pair; anything else is an error, so a
//! venue report that makes no sense is surfaced instead of silently applied.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::instrument::InstrumentId;
use crate::num::{Money, Price, Quantity};
use crate::time::Timestamp;

/// Buy or sell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    #[must_use]
    pub const fn opposite(self) -> Self {
        match self {
            Self::Buy => Self::Sell,
            Self::Sell => Self::Buy,
        }
    }

    /// `+1` for buys, `-1` for sells: the sign of the position change.
    #[must_use]
    pub const fn sign(self) -> i64 {
        match self {
            Self::Buy => 1,
            Self::Sell => -1,
        }
    }

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Buy => "buy",
            Self::Sell => "sell",
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Side {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "buy" => Ok(Self::Buy),
            "sell" => Ok(Self::Sell),
            _ => Err(format!("unknown side '{s}'; expected buy or sell")),
        }
    }
}

/// The kind of order, with the prices that kind needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OrderType {
    /// Fill at the best available prices now.
    Market,
    /// Fill at `price` or better.
    Limit { price: Price },
    /// Becomes a market order once the market trades at or through `trigger_price`.
    Stop { trigger_price: Price },
    /// Becomes a limit order at `price` once `trigger_price` trades.
    StopLimit { trigger_price: Price, price: Price },
}

impl OrderType {
    /// The limit price, if the type has one.
    #[must_use]
    pub const fn limit_price(&self) -> Option<Price> {
        match self {
            Self::Limit { price } | Self::StopLimit { price, .. } => Some(*price),
            _ => None,
        }
    }

    #[must_use]
    pub const fn trigger_price(&self) -> Option<Price> {
        match self {
            Self::Stop { trigger_price } | Self::StopLimit { trigger_price, .. } => Some(*trigger_price),
            _ => None,
        }
    }

    #[must_use]
    pub const fn name(&self) -> &'static str {
        match self {
            Self::Market => "market",
            Self::Limit { .. } => "limit",
            Self::Stop { .. } => "stop",
            Self::StopLimit { .. } => "stop_limit",
        }
    }
}

/// How long an order stays working.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TimeInForce {
    /// Good till cancelled.
    #[default]
    Gtc,
    /// Immediate or cancel: fill what can be filled now, cancel the rest.
    Ioc,
    /// Fill or kill: fill all of it now or none of it.
    Fok,
    /// Expires at the end of the UTC trading day.
    Day,
}

impl std::str::FromStr for TimeInForce {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "GTC" => Ok(Self::Gtc),
            "IOC" => Ok(Self::Ioc),
            "FOK" => Ok(Self::Fok),
            "DAY" => Ok(Self::Day),
            _ => Err(format!("unknown time in force '{s}'; expected GTC, IOC, FOK or DAY")),
        }
    }
}

/// The engine's own id for an order, unique within an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct OrderId(pub u64);

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The caller's id for an order: submitting the same id twice places one order.
///
/// 1 to 36 characters of `A-Z a-z 0-9 . _ : -`, which every venue we target accepts.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClientOrderId(String);

impl ClientOrderId {
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() || text.len() > 36 {
            return Err(format!("client order id must be 1 to 36 characters, got {}", text.len()));
        }
        if !text.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-')) {
            return Err(format!("client order id '{text}' may only contain letters, digits and . _ : -"));
        }
        Ok(Self(text.to_string()))
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A generated id `prefix-n`. The prefix is cut to 15 characters and
    /// anything but letters and digits in it becomes `_`, so the result is
    /// always valid (at most 36 characters).
    #[must_use]
    pub fn sequence(prefix: &str, n: u64) -> Self {
        let prefix: String = prefix.chars().take(15).map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
        Self(format!("{prefix}-{n}"))
    }
}

impl TryFrom<String> for ClientOrderId {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<ClientOrderId> for String {
    fn from(value: ClientOrderId) -> Self {
        value.0
    }
}

impl fmt::Display for ClientOrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Passed risk checks and sent; the venue has not answered yet.
    New,
    /// The venue acknowledged it and it is working.
    Accepted,
    PartiallyFilled,
    /// A cancel was requested; the venue has not confirmed it.
    PendingCancel,
    Filled,
    Cancelled,
    Rejected,
    Expired,
}

impl OrderStatus {
    /// Whether the order can still trade or change.
    #[must_use]
    pub const fn is_open(self) -> bool {
        matches!(self, Self::New | Self::Accepted | Self::PartiallyFilled | Self::PendingCancel)
    }

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Accepted => "accepted",
            Self::PartiallyFilled => "partially_filled",
            Self::PendingCancel => "pending_cancel",
            Self::Filled => "filled",
            Self::Cancelled => "cancelled",
            Self::Rejected => "rejected",
            Self::Expired => "expired",
        }
    }

    /// The status after `event`, or an error if the pair is not legal.
    ///
    /// `complete` says whether a fill event leaves nothing left to fill; it is
    /// ignored for other events.
    pub fn transition(self, event: OrderEventKind, complete: bool) -> Result<Self, InvalidTransition> {
        use OrderEventKind as E;
        use OrderStatus as S;
        let fill_status = if complete { S::Filled } else { S::PartiallyFilled };
        let next = match (self, event) {
            (S::New, E::Accept) => S::Accepted,
            (S::New, E::Reject) => S::Rejected,
            // Venues may fill an order before its acknowledgement arrives
            // (a marketable order), so a fill is legal straight from New.
            (S::New | S::Accepted | S::PartiallyFilled, E::Fill) => fill_status,
            // A fill racing a cancel request: the cancel is still pending
            // unless the fill completed the order.
            (S::PendingCancel, E::Fill) => {
                if complete {
                    S::Filled
                } else {
                    S::PendingCancel
                }
            }
            (S::New | S::Accepted | S::PartiallyFilled, E::CancelRequest) => S::PendingCancel,
            // Venue-side cancels (IOC remainder, self-trade prevention,
            // operator action) arrive without a request of ours.
            (S::New | S::Accepted | S::PartiallyFilled | S::PendingCancel, E::Cancel) => S::Cancelled,
            (S::Accepted | S::PartiallyFilled | S::PendingCancel | S::New, E::Expire) => S::Expired,
            (S::PendingCancel, E::CancelReject { partially_filled }) => {
                if partially_filled {
                    S::PartiallyFilled
                } else {
                    S::Accepted
                }
            }
            _ => return Err(InvalidTransition { from: self, event }),
        };
        Ok(next)
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened to an order, as far as its status is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderEventKind {
    Accept,
    Reject,
    Fill,
    CancelRequest,
    Cancel,
    CancelReject { partially_filled: bool },
    Expire,
}

/// A `(status, event)` pair that the lifecycle does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("order in status {from} cannot take event {event:?}")]
pub struct InvalidTransition {
    pub from: OrderStatus,
    pub event: OrderEventKind,
}

/// Why an order was refused, before or at the venue. The string codes are
/// stable: clients and dashboards key on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    UnknownInstrument,
    InvalidQuantity,
    InvalidPrice,
    TickSize,
    LotSize,
    MinQuantity,
    MinNotional,
    InsufficientCash,
    ShortNotAllowed,
    MaxOrderNotional,
    MaxPosition,
    DailyLossLimit,
    ReduceOnly,
    CloseOnly,
    KillSwitchAccount,
    KillSwitchGlobal,
    NoReferencePrice,
    CurrencyMismatch,
    /// The venue refused it for a reason of its own.
    VenueRejected,
    /// A FOK order that could not fill completely.
    FokUnfillable,
    /// A post-only order that would have taken liquidity.
    WouldTakeLiquidity,
}

impl RejectReason {
    pub const ALL: [Self; 21] = [
        Self::UnknownInstrument,
        Self::InvalidQuantity,
        Self::InvalidPrice,
        Self::TickSize,
        Self::LotSize,
        Self::MinQuantity,
        Self::MinNotional,
        Self::InsufficientCash,
        Self::ShortNotAllowed,
        Self::MaxOrderNotional,
        Self::MaxPosition,
        Self::DailyLossLimit,
        Self::ReduceOnly,
        Self::CloseOnly,
        Self::KillSwitchAccount,
        Self::KillSwitchGlobal,
        Self::NoReferencePrice,
        Self::CurrencyMismatch,
        Self::VenueRejected,
        Self::FokUnfillable,
        Self::WouldTakeLiquidity,
    ];

    /// The stable machine-readable code.
    #[must_use]
    pub const fn code(self) -> &'static str {
        match self {
            Self::UnknownInstrument => "unknown_instrument",
            Self::InvalidQuantity => "invalid_quantity",
            Self::InvalidPrice => "invalid_price",
            Self::TickSize => "tick_size",
            Self::LotSize => "lot_size",
            Self::MinQuantity => "min_quantity",
            Self::MinNotional => "min_notional",
            Self::InsufficientCash => "insufficient_cash",
            Self::ShortNotAllowed => "short_not_allowed",
            Self::MaxOrderNotional => "max_order_notional",
            Self::MaxPosition => "max_position",
            Self::DailyLossLimit => "daily_loss_limit",
            Self::ReduceOnly => "reduce_only",
            Self::CloseOnly => "close_only",
            Self::KillSwitchAccount => "kill_switch_account",
            Self::KillSwitchGlobal => "kill_switch_global",
            Self::NoReferencePrice => "no_reference_price",
            Self::CurrencyMismatch => "currency_mismatch",
            Self::VenueRejected => "venue_rejected",
            Self::FokUnfillable => "fok_unfillable",
            Self::WouldTakeLiquidity => "would_take_liquidity",
        }
    }

    /// A sentence a person can act on.
    #[must_use]
    pub const fn message(self) -> &'static str {
        match self {
            Self::UnknownInstrument => "the instrument is not known on this account",
            Self::InvalidQuantity => "the quantity must be positive",
            Self::InvalidPrice => "the price must be positive and the order type must have the prices it needs",
            Self::TickSize => "the price is not a multiple of the instrument's tick size",
            Self::LotSize => "the quantity is not a multiple of the instrument's lot size",
            Self::MinQuantity => "the quantity is below the instrument's minimum",
            Self::MinNotional => "the order's value is below the instrument's minimum notional",
            Self::InsufficientCash => "not enough free cash for this order and its fees",
            Self::ShortNotAllowed => "this account may not sell short",
            Self::MaxOrderNotional => "the order's value is above the account's maximum order notional",
            Self::MaxPosition => "the order would take the position above the account's maximum",
            Self::DailyLossLimit => "the account hit its daily loss limit; only reducing orders are allowed today",
            Self::ReduceOnly => "a reduce-only order would increase or flip the position",
            Self::CloseOnly => "the account is close-only: only orders that reduce a position are allowed",
            Self::KillSwitchAccount => "trading is halted on this account",
            Self::KillSwitchGlobal => "trading is halted for everyone",
            Self::NoReferencePrice => "no market price is known yet to check a market order against",
            Self::CurrencyMismatch => "the account holds no cash in the instrument's quote currency",
            Self::VenueRejected => "the venue rejected the order",
            Self::FokUnfillable => "a fill-or-kill order could not be filled completely",
            Self::WouldTakeLiquidity => "a post-only order would have traded immediately",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Whether a fill added liquidity to the book or took it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Liquidity {
    Maker,
    Taker,
}

/// An execution against an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Fill {
    pub order_id: OrderId,
    /// The venue's id for this execution; fills are deduplicated by it.
    pub trade_id: u64,
    pub instrument: InstrumentId,
    pub side: Side,
    pub quantity: Quantity,
    pub price: Price,
    /// Fee charged, in the instrument's quote currency (negative for a rebate).
    pub fee: Money,
    pub liquidity: Liquidity,
    pub ts: Timestamp,
}

/// An order as the engine tracks it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Order {
    pub id: OrderId,
    pub client_order_id: ClientOrderId,
    pub instrument: InstrumentId,
    pub side: Side,
    #[serde(flatten)]
    pub order_type: OrderType,
    pub time_in_force: TimeInForce,
    pub quantity: Quantity,
    pub filled_quantity: Quantity,
    /// Sum of `price * quantity * multiplier` over fills, for the average price.
    pub filled_notional: Money,
    pub fees: Money,
    pub reduce_only: bool,
    /// A limit order that may only add liquidity: refused by the venue
    /// (`WouldTakeLiquidity`) if it would trade on arrival (Binance
    /// LIMIT_MAKER).
    #[serde(default)]
    pub post_only: bool,
    pub status: OrderStatus,
    pub reject_reason: Option<RejectReason>,
    pub ts_created: Timestamp,
    pub ts_updated: Timestamp,
}

impl Order {
    #[must_use]
    pub fn remaining(&self) -> Quantity {
        self.quantity - self.filled_quantity
    }

    /// Average fill price, exact to 9 decimals; `None` before the first fill.
    #[must_use]
    pub fn average_fill_price(&self, multiplier: Quantity) -> Option<Price> {
        Price::from_ratio(self.filled_notional, self.filled_quantity, multiplier)
    }
}

/// What the venue says happened to an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "report", rename_all = "snake_case")]
pub enum ExecutionReport {
    Accepted {
        order_id: OrderId,
    },
    Rejected {
        order_id: OrderId,
        reason: RejectReason,
    },
    Filled {
        order_id: OrderId,
        trade_id: u64,
        quantity: Quantity,
        price: Price,
        fee: Money,
        liquidity: Liquidity,
    },
    Cancelled {
        order_id: OrderId,
    },
    CancelRejected {
        order_id: OrderId,
    },
    Expired {
        order_id: OrderId,
    },
    /// The venue kept `quantity` of the instrument's base asset from trade
    /// `trade_id` as its commission (Binance charges spot buys in the base
    /// asset): the position is that much smaller than the filled quantity.
    /// Follows the fill it belongs to.
    AssetFee {
        order_id: OrderId,
        trade_id: u64,
        quantity: Quantity,
    },
}

/// One OHLCV bar. `ts` is the bar's open time; the bar is complete at
/// `ts + interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bar {
    pub ts: Timestamp,
    pub open: Price,
    pub high: Price,
    pub low: Price,
    pub close: Price,
    pub volume: Quantity,
}

/// Top of book.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Quote {
    pub instrument: InstrumentId,
    pub ts: Timestamp,
    pub bid: Price,
    pub bid_size: Quantity,
    pub ask: Price,
    pub ask_size: Quantity,
}

impl Quote {
    /// The midpoint, rounded half-to-even to 9 decimals.
    #[must_use]
    pub fn mid(&self) -> Price {
        let sum = i128::from(self.bid.raw()) + i128::from(self.ask.raw());
        Price::from_raw(i64::try_from(crate::num::div_round_half_even(sum, 2)).unwrap_or(self.bid.raw()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ALL_STATUSES: [OrderStatus; 8] = [
        OrderStatus::New,
        OrderStatus::Accepted,
        OrderStatus::PartiallyFilled,
        OrderStatus::PendingCancel,
        OrderStatus::Filled,
        OrderStatus::Cancelled,
        OrderStatus::Rejected,
        OrderStatus::Expired,
    ];

    fn event_strategy() -> impl Strategy<Value = (OrderEventKind, bool)> {
        prop_oneof![
            Just(OrderEventKind::Accept),
            Just(OrderEventKind::Reject),
            Just(OrderEventKind::Fill),
            Just(OrderEventKind::CancelRequest),
            Just(OrderEventKind::Cancel),
            any::<bool>().prop_map(|p| OrderEventKind::CancelReject { partially_filled: p }),
            Just(OrderEventKind::Expire),
        ]
        .prop_flat_map(|e| (Just(e), any::<bool>()))
    }

    #[test]
    fn happy_paths() {
        use OrderEventKind as E;
        let s = OrderStatus::New.transition(E::Accept, false).unwrap();
        let s = s.transition(E::Fill, false).unwrap();
        assert_eq!(s, OrderStatus::PartiallyFilled);
        let s = s.transition(E::CancelRequest, false).unwrap();
        assert_eq!(s, OrderStatus::PendingCancel);
        assert_eq!(
            s.transition(E::CancelReject { partially_filled: true }, false).unwrap(),
            OrderStatus::PartiallyFilled
        );
        assert_eq!(s.transition(E::Cancel, false).unwrap(), OrderStatus::Cancelled);
        assert_eq!(OrderStatus::New.transition(E::Reject, false).unwrap(), OrderStatus::Rejected);
    }

    #[test]
    fn illegal_transitions_are_errors() {
        use OrderEventKind as E;
        let cases = [
            ("accept twice", OrderStatus::Accepted, E::Accept),
            ("reject after accept", OrderStatus::Accepted, E::Reject),
            ("fill after cancel", OrderStatus::Cancelled, E::Fill),
            ("cancel a filled order", OrderStatus::Filled, E::Cancel),
            ("cancel reject without request", OrderStatus::Accepted, E::CancelReject { partially_filled: false }),
            ("expire a rejected order", OrderStatus::Rejected, E::Expire),
        ];
        for (name, from, event) in cases {
            assert!(from.transition(event, false).is_err(), "{name}");
        }
    }

    proptest! {
        /// Terminal states accept nothing; open states never go back to New;
        /// any sequence of events either follows the table or stops at an error.
        #[test]
        fn lifecycle_invariants(events in proptest::collection::vec(event_strategy(), 0..20)) {
            let mut status = OrderStatus::New;
            for (event, complete) in events {
                match status.transition(event, complete) {
                    Ok(next) => {
                        prop_assert!(status.is_open(), "terminal {status} moved to {next}");
                        prop_assert_ne!(next, OrderStatus::New);
                        if next == OrderStatus::Filled {
                            prop_assert!(event == OrderEventKind::Fill && complete);
                        }
                        status = next;
                    }
                    Err(e) => {
                        prop_assert_eq!(e.from, status);
                    }
                }
            }
        }
    }

    #[test]
    fn terminal_statuses_accept_no_event() {
        use OrderEventKind as E;
        for s in ALL_STATUSES.into_iter().filter(|s| !s.is_open()) {
            for e in [
                E::Accept,
                E::Reject,
                E::Fill,
                E::CancelRequest,
                E::Cancel,
                E::CancelReject { partially_filled: false },
                E::Expire,
            ] {
                assert!(s.transition(e, true).is_err(), "{s} + {e:?}");
            }
        }
    }

    #[test]
    fn reject_reason_codes_are_unique_and_serialize_as_codes() {
        let mut codes: Vec<_> = RejectReason::ALL.iter().map(|r| r.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), RejectReason::ALL.len());
        for r in RejectReason::ALL {
            assert_eq!(serde_json::to_string(&r).unwrap(), format!("\"{}\"", r.code()));
        }
    }

    #[test]
    fn generated_client_order_ids_are_valid() {
        for (prefix, n) in [("bt", 1), ("a very long prefix with spaces!", u64::MAX), ("", 0)] {
            let id = ClientOrderId::sequence(prefix, n);
            assert!(ClientOrderId::parse(id.as_str()).is_ok(), "{id}");
        }
    }

    #[test]
    fn client_order_ids() {
        assert!(ClientOrderId::parse("bot-7:entry_1").is_ok());
        assert!(ClientOrderId::parse("").is_err());
        assert!(ClientOrderId::parse("has space").is_err());
        assert!(ClientOrderId::parse(&"x".repeat(37)).is_err());
    }
}
