//! Backtesting: the engine, a strategy and the simulated bar venue driven over
//! historical bars, single-threaded and deterministic; metrics, reports and
//! parameter sweeps across cores.

pub mod data;
pub mod html;
pub mod metrics;
pub mod report;
pub mod runner;
pub mod sweep;
pub mod trades;

use std::collections::BTreeMap;

use engine::Params;
use model::Bar;

pub use metrics::Metrics;
pub use report::Report;
pub use runner::{BacktestConfig, BacktestError, EquitySeries, RunOutput, run};

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
    bars: &[Bar],
    strategy: (&str, &mut dyn engine::Strategy, &Params),
    config: &BacktestConfig,
    options: &ReportOptions,
    progress: &mut dyn FnMut(usize),
) -> Result<Report, BacktestError> {
    let (strategy_name, strategy, params) = strategy;
    let output = run(bars, strategy, config, progress)?;
    let metrics = metrics::compute(&output);
    let (equity_curve, every) = report::equity_curve(&output, bars, options.max_curve_points);
    let first = bars.first().ok_or(BacktestError::NoBars)?;
    let last = bars.last().ok_or(BacktestError::NoBars)?;
    Ok(Report {
        strategy: strategy_name.to_string(),
        params: params.iter().map(|(k, v)| (k.to_string(), v)).collect(),
        symbol: config.symbol.clone(),
        data: report::DataSummary {
            file: options.data_file.clone(),
            bars: bars.len(),
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
