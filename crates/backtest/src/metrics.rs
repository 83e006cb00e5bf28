//! Performance metrics of a run.
//!
//! Money figures stay exact; ratios are `f64`. Definitions:
//! - returns are simple per-bar returns of equity, the first against the starting cash;
//! - `sharpe` = mean / sample standard deviation of those returns, annualized by
//!   √(bars per year), with bars per year = 365.25 days / the bar interval (markets
//!   that trade around the clock; for session markets compare runs, not absolutes);
//!   risk-free rate 0;
//! - `sortino` = mean / downside deviation (√ of the mean of squared negative
//!   returns over all bars), annualized the same way; `null` with no losing bar;
//! - `max_drawdown_pct` = the largest fall from a running peak of equity, as a
//!   percentage of that peak (a positive number);
//! - `buy_and_hold_return_pct`: the instrument's own move from the first open
//!   to the last close, before costs: the bar a strategy has to clear;
//! - `cagr_pct` over the span from the first bar's open to the last bar's close;
//! - `win_rate_pct` and `profit_factor` count closed trades only; `null` when undefined;
//! - `exposure_pct` = share of bars that ended with a position open;
//! - `trade_count` = closed trades plus the open one, if any.

use model::Money;
use serde::Serialize;

use crate::runner::RunOutput;

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Metrics {
    pub final_equity: Money,
    pub total_return_pct: f64,
    /// Return of holding the instrument from the first open to the last close, before costs.
    pub buy_and_hold_return_pct: f64,
    pub cagr_pct: f64,
    pub max_drawdown_pct: f64,
    pub sharpe: f64,
    pub sortino: Option<f64>,
    pub win_rate_pct: Option<f64>,
    pub profit_factor: Option<f64>,
    pub exposure_pct: f64,
    pub trade_count: usize,
    pub commissions: Money,
}

/// Metric names that can rank a sweep, and whether higher is better.
pub const RANKABLE: &[(&str, bool)] = &[
    ("sharpe", true),
    ("sortino", true),
    ("total_return_pct", true),
    ("cagr_pct", true),
    ("final_equity", true),
    ("max_drawdown_pct", false),
    ("win_rate_pct", true),
    ("profit_factor", true),
    ("exposure_pct", true),
    ("trade_count", true),
];

impl Metrics {
    /// The value of a rankable metric by name.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<f64> {
        match name {
            "sharpe" => Some(self.sharpe),
            "sortino" => self.sortino,
            "total_return_pct" => Some(self.total_return_pct),
            "cagr_pct" => Some(self.cagr_pct),
            "final_equity" => Some(self.final_equity.to_f64()),
            "max_drawdown_pct" => Some(self.max_drawdown_pct),
            "win_rate_pct" => self.win_rate_pct,
            "profit_factor" => self.profit_factor,
            "exposure_pct" => Some(self.exposure_pct),
            #[allow(clippy::cast_precision_loss)]
            "trade_count" => Some(self.trade_count as f64),
            _ => None,
        }
    }
}

fn finite(x: f64) -> f64 {
    if x.is_finite() { x } else { 0.0 }
}

/// Computes the metrics of a run.
#[must_use]
#[allow(clippy::cast_precision_loss)]
pub fn compute(run: &RunOutput) -> Metrics {
    let initial = run.initial_cash.to_f64();
    let final_equity = run.final_equity.to_f64();
    let total_return = final_equity / initial - 1.0;

    let bars = run.equity.len();
    let span_ns = run.end.as_nanos() - run.start.as_nanos() + run.interval_ns;
    let years = span_ns as f64 / (365.25 * model::time::NANOS_PER_DAY as f64);
    let cagr = if final_equity <= 0.0 {
        -1.0
    } else if years > 0.0 {
        (final_equity / initial).powf(1.0 / years) - 1.0
    } else {
        0.0
    };

    // One pass: returns' mean and variance (Welford), downside, drawdown.
    let mut previous = initial;
    let mut peak = initial;
    let mut max_drawdown: f64 = 0.0;
    let (mut n, mut mean, mut m2, mut downside_sq) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    for e in run.equity.iter_f64() {
        let r = if previous == 0.0 { 0.0 } else { e / previous - 1.0 };
        previous = e;
        n += 1.0;
        let delta = r - mean;
        mean += delta / n;
        m2 += delta * (r - mean);
        if r < 0.0 {
            downside_sq += r * r;
        }
        if e > peak {
            peak = e;
        } else if peak > 0.0 {
            max_drawdown = max_drawdown.max((peak - e) / peak);
        }
    }
    let bars_per_year = 365.25 * model::time::NANOS_PER_DAY as f64 / run.interval_ns.max(1) as f64;
    let annualize = bars_per_year.sqrt();
    let std = if n > 1.0 { (m2 / (n - 1.0)).sqrt() } else { 0.0 };
    let sharpe = if std > 0.0 { mean / std * annualize } else { 0.0 };
    let downside = if n > 0.0 { (downside_sq / n).sqrt() } else { 0.0 };
    let sortino = if downside > 0.0 { Some(finite(mean / downside * annualize)) } else { None };

    let closed: Vec<_> = run.trades.iter().filter(|t| t.exit_time.is_some()).collect();
    let wins = closed.iter().filter(|t| t.pnl.is_positive()).count();
    let gross_profit: f64 = closed.iter().filter(|t| t.pnl.is_positive()).map(|t| t.pnl.to_f64()).sum();
    let gross_loss: f64 = closed.iter().filter(|t| t.pnl.is_negative()).map(|t| -t.pnl.to_f64()).sum();
    let win_rate = if closed.is_empty() { None } else { Some(wins as f64 / closed.len() as f64 * 100.0) };
    let profit_factor = if gross_loss > 0.0 { Some(gross_profit / gross_loss) } else { None };

    Metrics {
        final_equity: run.final_equity,
        total_return_pct: finite(total_return * 100.0),
        buy_and_hold_return_pct: finite((run.last_close.to_f64() / run.first_open.to_f64() - 1.0) * 100.0),
        cagr_pct: finite(cagr * 100.0),
        max_drawdown_pct: finite(max_drawdown * 100.0),
        sharpe: finite(sharpe),
        sortino,
        win_rate_pct: win_rate,
        profit_factor,
        exposure_pct: if bars == 0 { 0.0 } else { run.bars_in_market as f64 / bars as f64 * 100.0 },
        trade_count: run.trades.len(),
        commissions: run.commissions,
    }
}
