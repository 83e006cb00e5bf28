//! Backtest settings as people type them (CLI flags, API fields), parsed and
//! checked in one place so every front end refuses the same values with the
//! same messages.

use engine::Sizing;
use model::{Money, Quantity, Rate};
use serde::Deserialize;
use sim::bars::FillTiming;

use crate::runner::BacktestConfig;

/// Settings as text; `None` takes the default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SettingsInput {
    /// The symbol the report names (default `SYNTH`; candle data sets it).
    pub symbol: Option<String>,
    /// Starting cash, a decimal (default `10000`).
    pub cash: Option<String>,
    /// Commission as a fraction of each fill's notional (`0.001` = 0.1 %; default 0).
    pub commission: Option<String>,
    /// `all-in` (default), `units=N` or `percent=P`.
    pub sizing: Option<String>,
    /// When orders fill: `next-open` (default) or `close`.
    pub fill: Option<String>,
    /// Adverse slippage on market and stop fills, in basis points (default 0).
    pub slippage_bps: Option<String>,
    /// Close the position at the last bar (default false).
    pub close_at_end: Option<bool>,
    /// Smallest tradable quantity step, a decimal (default `1`).
    pub lot_size: Option<String>,
}

/// A refused setting: which one, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SettingError {
    pub field: &'static str,
    pub message: String,
}

fn err(field: &'static str, message: impl Into<String>) -> SettingError {
    SettingError { field, message: message.into() }
}

impl SettingsInput {
    /// The checked configuration.
    pub fn parse(&self) -> Result<BacktestConfig, SettingError> {
        let defaults = BacktestConfig::default();
        let symbol = self.symbol.clone().unwrap_or(defaults.symbol);
        if symbol.trim().is_empty() || symbol.len() > 64 {
            return Err(err("symbol", "must be 1 to 64 characters"));
        }
        let cash = match &self.cash {
            Some(text) => Money::parse(text).map_err(|e| err("cash", e.to_string()))?,
            None => defaults.cash,
        };
        if !cash.is_positive() {
            return Err(err("cash", format!("must be positive, got {cash}")));
        }
        let commission = match &self.commission {
            Some(text) => Rate::parse(text).map_err(|e| err("commission", e.to_string()))?,
            None => defaults.commission,
        };
        if commission.is_negative() || commission >= Rate::ONE {
            return Err(err(
                "commission",
                format!("must be a fraction from 0 to below 1 (0.002 = 0.2 %), got {commission}"),
            ));
        }
        let slippage_bps = match &self.slippage_bps {
            Some(text) => Rate::parse(text).map_err(|e| err("slippage_bps", e.to_string()))?,
            None => Rate::ZERO,
        };
        if slippage_bps.is_negative() || slippage_bps >= Rate::from_int(10_000) {
            return Err(err("slippage_bps", format!("must be from 0 to below 10000, got {slippage_bps}")));
        }
        let lot_size = match &self.lot_size {
            Some(text) => Quantity::parse(text).map_err(|e| err("lot_size", e.to_string()))?,
            None => defaults.lot_size,
        };
        if !lot_size.is_positive() {
            return Err(err("lot_size", format!("must be positive, got {lot_size}")));
        }
        let sizing = match &self.sizing {
            Some(text) => text.parse::<Sizing>().map_err(|e| err("sizing", e))?,
            None => defaults.sizing,
        };
        let timing = match &self.fill {
            Some(text) => text.parse::<FillTiming>().map_err(|e| err("fill", e))?,
            None => defaults.timing,
        };
        Ok(BacktestConfig {
            symbol,
            cash,
            commission,
            sizing,
            timing,
            // Basis points to a fraction: exact, since Rate has 9 decimals.
            slippage: Rate::from_raw(slippage_bps.raw() / 10_000),
            close_at_end: self.close_at_end.unwrap_or(false),
            lot_size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_refusals() {
        assert_eq!(SettingsInput::default().parse().unwrap(), BacktestConfig::default());
        let s = |f: fn(&mut SettingsInput)| {
            let mut input = SettingsInput::default();
            f(&mut input);
            input.parse()
        };
        let ok = s(|i| i.slippage_bps = Some("5".into())).unwrap();
        assert_eq!(ok.slippage, Rate::from_bps(5));
        type Case = (&'static str, fn(&mut SettingsInput), &'static str);
        let cases: [Case; 6] = [
            ("negative cash", |i| i.cash = Some("-1".into()), "cash"),
            ("commission of 1", |i| i.commission = Some("1".into()), "commission"),
            ("bad sizing", |i| i.sizing = Some("half".into()), "sizing"),
            ("bad fill", |i| i.fill = Some("vwap".into()), "fill"),
            ("zero lot", |i| i.lot_size = Some("0".into()), "lot_size"),
            ("huge slippage", |i| i.slippage_bps = Some("10000".into()), "slippage_bps"),
        ];
        for (name, f, field) in cases {
            assert_eq!(s(f).unwrap_err().field, field, "{name}");
        }
    }
}
