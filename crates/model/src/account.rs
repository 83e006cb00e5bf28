//! Account-level types: positions, risk limits and kill-switch states.

use serde::{Deserialize, Serialize};

use crate::instrument::InstrumentId;
use crate::num::{Money, Price, Quantity, Rate};

/// Whether an account (or everyone) may trade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TradingState {
    #[default]
    Active,
    /// Close-only: orders that reduce a position are allowed, nothing else.
    Reducing,
    /// No new orders at all; cancels still go through.
    Halted,
}

impl std::str::FromStr for TradingState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "active" => Ok(Self::Active),
            "reducing" => Ok(Self::Reducing),
            "halted" => Ok(Self::Halted),
            _ => Err(format!("unknown trading state '{s}'; expected active, reducing or halted")),
        }
    }
}

/// Which kill switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SwitchScope {
    Account,
    Global,
}

/// Per-account limits checked before an order reaches the venue. `None`
/// means no limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RiskLimits {
    pub max_order_notional: Option<Money>,
    /// Largest absolute position per instrument, in units.
    pub max_position: Option<Quantity>,
    /// Loss from the day's starting equity at which only reducing orders are allowed.
    pub daily_loss_limit: Option<Money>,
    pub allow_short: bool,
    /// Buying power as a multiple of free cash; 1 means a cash account.
    pub max_leverage: Quantity,
    /// Fee rate used to reserve cash for an order's fee before it fills.
    pub fee_rate_estimate: Rate,
}

impl Default for RiskLimits {
    fn default() -> Self {
        Self {
            max_order_notional: None,
            max_position: None,
            daily_loss_limit: None,
            allow_short: false,
            max_leverage: Quantity::ONE,
            fee_rate_estimate: Rate::ZERO,
        }
    }
}

/// A holding in one instrument. `quantity` is signed (negative = short);
/// `cost_basis` is the signed notional paid to open what is still held, so
/// the average entry price is `cost_basis / quantity`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Position {
    pub instrument: InstrumentId,
    pub quantity: Quantity,
    pub cost_basis: Money,
    /// Realized profit and loss before fees.
    pub realized_pnl: Money,
    pub fees: Money,
}

impl Position {
    /// No holding.
    #[must_use]
    pub fn flat(instrument: InstrumentId) -> Self {
        Self {
            instrument,
            quantity: Quantity::ZERO,
            cost_basis: Money::ZERO,
            realized_pnl: Money::ZERO,
            fees: Money::ZERO,
        }
    }

    /// Average entry price; `None` when flat.
    #[must_use]
    pub fn average_price(&self, multiplier: Quantity) -> Option<Price> {
        Price::from_ratio(self.cost_basis, self.quantity, multiplier)
    }
}
