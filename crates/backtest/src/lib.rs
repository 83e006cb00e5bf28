//! Backtesting: the engine, a strategy and a simulated venue driven over
//! historical bars or quotes, single-threaded and deterministic; metrics,
//! reports and parameter sweeps across cores.

pub mod data;
pub mod html;
pub mod metrics;
pub mod report;
pub mod runner;
pub mod settings;
pub mod sweep;
pub mod trades;

use std::collections::BTreeMap;

use std::borrow::Cow;

use engine::Params;
use model::{Bar, Quote};

pub use metrics::Metrics;
pub use report::Report;
pub use runner::{BacktestConfig, BacktestError, EquitySeries, RunOutput, run, run_quotes};

/// What a backtest runs over.
#[derive(Debug, Clone, Copy)]
pub enum Market<'a> {
    Bars(&'a [Bar]),
    /// Quotes; the strategy also sees bars of `bar_interval_ns` built from them.
    Quotes {
        quotes: &'a [Quote],
        respect_size: bool,
        bar_interval_ns: i64,
    },
}

impl Market<'_> {
    /// Rows of data: bars or quotes.
    #[must_use]
    pub fn len(&self) -> usize {
        match self {
            Self::Bars(bars) => bars.len(),
            Self::Quotes { quotes, .. } => quotes.len(),
        }
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Runs a strategy over bars or quotes; returns the output and the bars the
/// strategy saw (built from the quotes, for a quote run).
pub fn run_market<'a>(
    market: Market<'a>,
    strategy: &mut dyn engine::Strategy,
    config: &BacktestConfig,
    progress: &mut dyn FnMut(usize),
) -> Result<(RunOutput, Cow<'a, [Bar]>), BacktestError> {
    match market {
        Market::Bars(bars) => Ok((run(bars, strategy, config, progress)?, Cow::Borrowed(bars))),
        Market::Quotes { quotes, respect_size, bar_interval_ns } => {
            let (output, bars) = run_quotes(quotes, respect_size, bar_interval_ns, strategy, config, progress)?;
            Ok((output, Cow::Owned(bars)))
        }
    }
}

/// How a report is labelled and sampled.
#[derive(Debug, Clone, Default)]
pub struct ReportOptions {
    /// The data file, shown in the report.
    pub data_file: Option<String>,
    /// Most equity-curve points kept (0 = every bar).
    pub max_curve_points: usize,
}

/// Runs a built strategy and assembles its report.
pub fn run_report(
    market: Market<'_>,
    strategy: (&str, &mut dyn engine::Strategy, &Params),
    config: &BacktestConfig,
    options: &ReportOptions,
    progress: &mut dyn FnMut(usize),
) -> Result<Report, BacktestError> {
    let (strategy_name, strategy, params) = strategy;
    let (output, bars) = run_market(market, strategy, config, progress)?;
    let metrics = metrics::compute(&output);
    let (equity_curve, every) = report::equity_curve(&output, &bars, options.max_curve_points);
    let first = bars.first().ok_or(BacktestError::NoBars)?;
    let last = bars.last().ok_or(BacktestError::NoBars)?;
    Ok(Report {
        strategy: strategy_name.to_string(),
        params: params.iter().map(|(k, v)| (k.to_string(), v)).collect(),
        symbol: config.symbol.clone(),
        data: report::DataSummary {
            file: options.data_file.clone(),
            bars: bars.len(),
            quotes: match market {
                Market::Quotes { quotes, .. } => Some(quotes.len()),
                Market::Bars(_) => None,
            },
            start: first.ts,
            end: last.ts,
            interval_seconds: output.interval_ns / model::time::NANOS_PER_SECOND,
        },
        settings: report::Settings::from_config(config),
        initial_cash: output.initial_cash,
        metrics,
        fills: output.fills,
        orders_denied: output.denied.iter().map(|(k, v)| ((*k).to_string(), *v)).collect::<BTreeMap<_, _>>(),
        unexecuted_signals_at_end: output.unexecuted_at_end,
        orders_skipped_zero_size: output.skipped_zero_size,
        trades: output.trades,
        equity_curve,
        equity_curve_every_n_bars: every,
    })
}
