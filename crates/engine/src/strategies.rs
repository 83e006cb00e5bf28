//! The built-in strategies and their registry.
//!
//! Every strategy decides when a bar closes and sizes its entries with the
//! runner's configured sizing ([`Size::Default`]), so the same strategy can be
//! run all-in, with fixed units or with a percentage of equity.
//!
//! Position changes follow one convention: "go long" closes any short first,
//! then buys if not already long; "go short" is the mirror; in long-only mode a
//! bearish signal only closes the long. The runner executes the close before
//! the new entry, so the entry is sized with the cash after the close.

use model::{Bar, Money, Side};

use std::cmp::Ordering;

use crate::indicators::{BollingerBands, Ema, IndicatorError, Macd, Rsi};
use crate::params::{ParamError, ParamKind, ParamSpec, ParamValue, Params};
use crate::strategy::{Size, Strategy, StrategyContext};

/// A strategy the platform can build by name.
pub struct StrategyInfo {
    pub name: &'static str,
    pub summary: &'static str,
    pub params: &'static [ParamSpec],
    build: fn(&Params) -> Result<Box<dyn Strategy>, ParamError>,
}

impl StrategyInfo {
    /// Parses `name=value` pairs and builds the strategy.
    pub fn build(&self, given: &[(String, String)]) -> Result<(Box<dyn Strategy>, Params), ParamError> {
        let params = Params::parse(self.name, self.params, given)?;
        let strategy = (self.build)(&params)?;
        Ok((strategy, params))
    }

    /// Builds from already parsed parameters.
    pub fn build_with(&self, params: &Params) -> Result<Box<dyn Strategy>, ParamError> {
        (self.build)(params)
    }
}

impl std::fmt::Debug for StrategyInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StrategyInfo").field("name", &self.name).finish_non_exhaustive()
    }
}

/// Every built-in strategy.
pub static STRATEGIES: &[StrategyInfo] = &[
    StrategyInfo {
        name: "sma-cross",
        summary: "Trend following on a fast and a slow simple moving average crossing.",
        params: CROSS_PARAMS,
        build: |p| Ok(Box::new(SmaCross::from_params(p)?)),
    },
    StrategyInfo {
        name: "ema-cross",
        summary: "Trend following on a fast and a slow exponential moving average crossing.",
        params: CROSS_PARAMS,
        build: |p| Ok(Box::new(EmaCross::from_params(p)?)),
    },
    StrategyInfo {
        name: "rsi-reversion",
        summary: "Mean reversion: buy when RSI is oversold, exit (or short) when it is overbought.",
        params: RSI_PARAMS,
        build: |p| Ok(Box::new(RsiReversion::from_params(p)?)),
    },
    StrategyInfo {
        name: "bollinger-breakout",
        summary: "Breakout: go long on a close above the upper band, exit at the middle band.",
        params: BOLLINGER_PARAMS,
        build: |p| Ok(Box::new(BollingerBreakout::from_params(p)?)),
    },
    StrategyInfo {
        name: "macd",
        summary: "Trend following on the MACD line crossing its signal line.",
        params: MACD_PARAMS,
        build: |p| Ok(Box::new(MacdCross::from_params(p)?)),
    },
    StrategyInfo {
        name: "dca",
        summary: "Dollar-cost averaging: buy a fixed amount every N bars, never sell.",
        params: DCA_PARAMS,
        build: |p| Ok(Box::new(Dca::from_params(p)?)),
    },
];

/// Looks a strategy up by name; the error lists the names that exist.
pub fn find(name: &str) -> Result<&'static StrategyInfo, String> {
    STRATEGIES.iter().find(|s| s.name == name).ok_or_else(|| {
        let names: Vec<_> = STRATEGIES.iter().map(|s| s.name).collect();
        format!("unknown strategy '{name}'; available: {}", names.join(", "))
    })
}

const fn int(name: &'static str, default: i64, min: i64, max: i64, help: &'static str) -> ParamSpec {
    ParamSpec { name, kind: ParamKind::Int { min, max }, default: ParamValue::Int(default), help }
}

const fn float(name: &'static str, default: f64, min: f64, max: f64, help: &'static str) -> ParamSpec {
    ParamSpec { name, kind: ParamKind::Float { min, max }, default: ParamValue::Float(default), help }
}

const fn flag(name: &'static str, default: bool, help: &'static str) -> ParamSpec {
    ParamSpec { name, kind: ParamKind::Bool, default: ParamValue::Bool(default), help }
}

const MAX_PERIOD: i64 = 1_000_000;

const CROSS_PARAMS: &[ParamSpec] = &[
    int("fast", 10, 1, MAX_PERIOD, "bars in the fast average"),
    int("slow", 30, 2, MAX_PERIOD, "bars in the slow average; must be greater than fast"),
    flag("long-only", false, "only go long; a cross down closes the long instead of going short"),
];

const RSI_PARAMS: &[ParamSpec] = &[
    int("period", 14, 2, MAX_PERIOD, "RSI lookback in bars (Wilder smoothing)"),
    float("oversold", 30.0, 0.0, 100.0, "RSI below this is a buy signal"),
    float("overbought", 70.0, 0.0, 100.0, "RSI above this is an exit (or short) signal; must exceed oversold"),
    flag("long-only", true, "only go long; overbought closes the long instead of going short"),
];

const BOLLINGER_PARAMS: &[ParamSpec] = &[
    int("period", 20, 2, MAX_PERIOD, "bars in the moving average and deviation"),
    float("k", 2.0, 0.1, 10.0, "band width in standard deviations"),
    flag("long-only", true, "only trade upside breakouts; otherwise a close below the lower band goes short"),
];

const MACD_PARAMS: &[ParamSpec] = &[
    int("fast", 12, 1, MAX_PERIOD, "fast EMA period"),
    int("slow", 26, 2, MAX_PERIOD, "slow EMA period; must be greater than fast"),
    int("signal", 9, 1, MAX_PERIOD, "signal line EMA period"),
    flag("long-only", false, "only go long; a bearish cross closes the long instead of going short"),
];

const DCA_PARAMS: &[ParamSpec] = &[
    int("every", 1440, 1, MAX_PERIOD, "bars between purchases (1440 one-minute bars = daily)"),
    ParamSpec {
        name: "amount",
        kind: ParamKind::Money { min: Money::from_raw(1), max: Money::from_int(1_000_000_000) },
        default: ParamValue::Money(Money::from_int(100)),
        help: "quote currency spent per purchase, fees included",
    },
];

fn indicator(e: IndicatorError) -> ParamError {
    ParamError::Constraint(e.to_string())
}

/// Goes long: closes a short, then buys with the default size unless already long.
fn go_long(ctx: &mut StrategyContext<'_>) {
    let held = ctx.position();
    if held.is_negative() {
        ctx.close_position();
    }
    if !held.is_positive() {
        ctx.market(Side::Buy, Size::Default);
    }
}

/// Goes short, or in long-only mode just closes the long.
fn go_short(ctx: &mut StrategyContext<'_>, long_only: bool) {
    let held = ctx.position();
    if held.is_positive() {
        ctx.close_position();
    }
    if !long_only && !held.is_negative() {
        ctx.market(Side::Sell, Size::Default);
    }
}

/// Which way two series crossed on this bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cross {
    Up,
    Down,
}

/// Detects strict crossings: up at t means `a[t-1] < b[t-1]` and `a[t] > b[t]`.
#[derive(Debug, Clone, Default)]
pub struct Crossover {
    previous: Option<Ordering>,
}

impl Crossover {
    /// Takes how `a` compares with `b` on this bar.
    #[inline]
    pub fn update_ordering(&mut self, now: Ordering) -> Option<Cross> {
        let cross = match (self.previous, now) {
            (Some(Ordering::Less), Ordering::Greater) => Some(Cross::Up),
            (Some(Ordering::Greater), Ordering::Less) => Some(Cross::Down),
            _ => None,
        };
        self.previous = Some(now);
        cross
    }

    #[inline]
    pub fn update(&mut self, a: f64, b: f64) -> Option<Cross> {
        self.update_ordering(a.partial_cmp(&b).unwrap_or(Ordering::Equal))
    }
}

fn on_cross(ctx: &mut StrategyContext<'_>, cross: Option<Cross>, long_only: bool) {
    match cross {
        Some(Cross::Up) => go_long(ctx),
        Some(Cross::Down) => go_short(ctx, long_only),
        None => {}
    }
}

fn cross_periods(p: &Params) -> Result<(usize, usize, bool), ParamError> {
    let (fast, slow) = (p.usize("fast")?, p.usize("slow")?);
    if fast >= slow {
        return Err(ParamError::Constraint(format!("fast ({fast}) must be less than slow ({slow})")));
    }
    Ok((fast, slow, p.bool("long-only")?))
}

/// A simple moving average of raw fixed-point prices with an exact integer
/// sum: no drift over millions of bars, and averages compare exactly.
#[derive(Debug, Clone)]
pub struct ExactSma {
    window: Vec<i64>,
    next: usize,
    filled: usize,
    sum: i128,
}

impl ExactSma {
    pub fn new(period: usize) -> Result<Self, ParamError> {
        if period == 0 {
            return Err(ParamError::Constraint("a moving average needs a period of at least 1".into()));
        }
        Ok(Self { window: vec![0; period], next: 0, filled: 0, sum: 0 })
    }

    /// Adds a price; the window's sum once it is full.
    #[inline]
    pub fn update(&mut self, raw: i64) -> Option<i128> {
        let slot = &mut self.window[self.next];
        self.sum += i128::from(raw) - i128::from(*slot);
        *slot = raw;
        self.next += 1;
        if self.next == self.window.len() {
            self.next = 0;
        }
        if self.filled < self.window.len() {
            self.filled += 1;
            if self.filled < self.window.len() {
                return None;
            }
        }
        Some(self.sum)
    }
}

/// `sma-cross`: decides on exact averages, so a cross never hinges on rounding.
pub struct SmaCross {
    fast: ExactSma,
    slow: ExactSma,
    fast_n: i128,
    slow_n: i128,
    cross: Crossover,
    long_only: bool,
}

impl SmaCross {
    pub fn from_params(p: &Params) -> Result<Self, ParamError> {
        let (fast, slow, long_only) = cross_periods(p)?;
        Ok(Self {
            fast: ExactSma::new(fast)?,
            slow: ExactSma::new(slow)?,
            fast_n: fast as i128,
            slow_n: slow as i128,
            cross: Crossover::default(),
            long_only,
        })
    }
}

impl Strategy for SmaCross {
    #[inline]
    fn on_bar(&mut self, bar: &Bar, ctx: &mut StrategyContext<'_>) {
        let raw = bar.close.raw();
        let (fast, slow) = (self.fast.update(raw), self.slow.update(raw));
        let (Some(fast_sum), Some(slow_sum)) = (fast, slow) else { return };
        // fast_sum / fast_n vs slow_sum / slow_n, cross-multiplied to stay exact.
        let ordering = (fast_sum * self.slow_n).cmp(&(slow_sum * self.fast_n));
        let cross = self.cross.update_ordering(ordering);
        if cross.is_some() {
            on_cross(ctx, cross, self.long_only);
        }
    }
}

/// `ema-cross`.
pub struct EmaCross {
    fast: Ema,
    slow: Ema,
    cross: Crossover,
    long_only: bool,
}

impl EmaCross {
    pub fn from_params(p: &Params) -> Result<Self, ParamError> {
        let (fast, slow, long_only) = cross_periods(p)?;
        Ok(Self {
            fast: Ema::new(fast).map_err(indicator)?,
            slow: Ema::new(slow).map_err(indicator)?,
            cross: Crossover::default(),
            long_only,
        })
    }
}

impl Strategy for EmaCross {
    fn on_bar(&mut self, bar: &Bar, ctx: &mut StrategyContext<'_>) {
        let close = bar.close.to_f64();
        let (fast, slow) = (self.fast.update(close), self.slow.update(close));
        let (Some(fast), Some(slow)) = (fast, slow) else { return };
        let cross = self.cross.update(fast, slow);
        on_cross(ctx, cross, self.long_only);
    }
}

/// `rsi-reversion`.
pub struct RsiReversion {
    rsi: Rsi,
    oversold: f64,
    overbought: f64,
    long_only: bool,
}

impl RsiReversion {
    pub fn from_params(p: &Params) -> Result<Self, ParamError> {
        let (oversold, overbought) = (p.float("oversold")?, p.float("overbought")?);
        if oversold >= overbought {
            return Err(ParamError::Constraint(format!(
                "oversold ({oversold}) must be less than overbought ({overbought})"
            )));
        }
        Ok(Self {
            rsi: Rsi::new(p.usize("period")?).map_err(indicator)?,
            oversold,
            overbought,
            long_only: p.bool("long-only")?,
        })
    }
}

impl Strategy for RsiReversion {
    fn on_bar(&mut self, bar: &Bar, ctx: &mut StrategyContext<'_>) {
        let Some(rsi) = self.rsi.update(bar.close.to_f64()) else { return };
        let held = ctx.position();
        if rsi < self.oversold && !held.is_positive() {
            go_long(ctx);
        } else if rsi > self.overbought && (held.is_positive() || (!self.long_only && held.is_zero())) {
            go_short(ctx, self.long_only);
        }
    }
}

/// `bollinger-breakout`.
pub struct BollingerBreakout {
    bands: BollingerBands,
    long_only: bool,
}

impl BollingerBreakout {
    pub fn from_params(p: &Params) -> Result<Self, ParamError> {
        Ok(Self {
            bands: BollingerBands::new(p.usize("period")?, p.float("k")?).map_err(indicator)?,
            long_only: p.bool("long-only")?,
        })
    }
}

impl Strategy for BollingerBreakout {
    fn on_bar(&mut self, bar: &Bar, ctx: &mut StrategyContext<'_>) {
        let close = bar.close.to_f64();
        let Some(b) = self.bands.update(close) else { return };
        let held = ctx.position();
        if close > b.upper && !held.is_positive() {
            go_long(ctx);
        } else if close < b.lower && !self.long_only && !held.is_negative() {
            go_short(ctx, false);
        } else if (held.is_positive() && close < b.middle) || (held.is_negative() && close > b.middle) {
            ctx.close_position();
        }
    }
}

/// `macd`.
pub struct MacdCross {
    macd: Macd,
    cross: Crossover,
    long_only: bool,
}

impl MacdCross {
    pub fn from_params(p: &Params) -> Result<Self, ParamError> {
        Ok(Self {
            macd: Macd::new(p.usize("fast")?, p.usize("slow")?, p.usize("signal")?).map_err(indicator)?,
            cross: Crossover::default(),
            long_only: p.bool("long-only")?,
        })
    }
}

impl Strategy for MacdCross {
    fn on_bar(&mut self, bar: &Bar, ctx: &mut StrategyContext<'_>) {
        let Some(m) = self.macd.update(bar.close.to_f64()) else { return };
        let cross = self.cross.update(m.macd, m.signal);
        on_cross(ctx, cross, self.long_only);
    }
}

/// `dca`.
pub struct Dca {
    every: u64,
    amount: Money,
    bars_seen: u64,
}

impl Dca {
    pub fn from_params(p: &Params) -> Result<Self, ParamError> {
        let every =
            u64::try_from(p.int("every")?).map_err(|_| ParamError::Constraint("every must be positive".into()))?;
        Ok(Self { every, amount: p.money("amount")?, bars_seen: 0 })
    }
}

impl Strategy for Dca {
    fn on_bar(&mut self, _bar: &Bar, ctx: &mut StrategyContext<'_>) {
        // Buys on the first bar, then every `every` bars.
        if self.bars_seen.is_multiple_of(self.every) {
            ctx.market(Side::Buy, Size::Notional(self.amount));
        }
        self.bars_seen += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect()
    }

    #[test]
    fn every_strategy_builds_with_defaults() {
        for info in STRATEGIES {
            assert!(info.build(&[]).is_ok(), "{}", info.name);
        }
    }

    #[test]
    fn impossible_parameters_are_refused_with_the_reason() {
        let cases = [
            ("sma-cross", vec![("fast", "30"), ("slow", "30")], "fast (30) must be less than slow (30)"),
            ("ema-cross", vec![("fast", "50"), ("slow", "20")], "must be less than slow"),
            ("rsi-reversion", vec![("oversold", "80")], "oversold (80) must be less than overbought (70)"),
            ("macd", vec![("fast", "30")], "fast period (30) must be less than slow period (26)"),
            ("sma-cross", vec![("fast", "0")], "fast=0 is invalid"),
            ("dca", vec![("amount", "-5")], "amount=-5 is invalid"),
        ];
        for (name, given, expected) in cases {
            let err = find(name).unwrap().build(&pairs(&given)).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains(expected), "{name} {given:?}: got '{err}'");
        }
        assert!(find("nope").unwrap_err().contains("available: sma-cross"));
    }

    #[test]
    fn exact_sma_matches_the_definition() {
        let mut sma = ExactSma::new(3).unwrap();
        let outputs: Vec<_> = [1, 2, 3, 4, 10].iter().map(|x| sma.update(*x)).collect();
        assert_eq!(outputs, [None, None, Some(6), Some(9), Some(17)]);
        assert!(ExactSma::new(0).is_err());
    }

    #[test]
    fn crossover_is_strict() {
        let mut c = Crossover::default();
        assert_eq!(c.update(1.0, 2.0), None);
        assert_eq!(c.update(2.0, 2.0), None, "touching is not crossing");
        assert_eq!(c.update(3.0, 2.0), None, "previous bar was equal, not below");
        assert_eq!(c.update(1.0, 2.0), Some(Cross::Down));
        assert_eq!(c.update(3.0, 2.0), Some(Cross::Up));
    }
}
