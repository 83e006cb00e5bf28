//! The backtest report: one structure, written as `report.json` and rendered
//! as a self-contained `report.html`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use engine::ParamValue;
use model::{Money, Timestamp};
use serde::Serialize;

use crate::metrics::Metrics;
use crate::runner::{BacktestConfig, RunOutput};
use crate::trades::Trade;

/// Where the bars came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct DataSummary {
    pub file: Option<String>,
    pub bars: usize,
    /// For a run on quotes: how many; the bars were built from them.
    pub quotes: Option<usize>,
    pub start: Timestamp,
    pub end: Timestamp,
    pub interval_seconds: i64,
}

/// The settings a run used, as a person would type them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Settings {
    pub cash: Money,
    pub commission: String,
    pub sizing: String,
    pub fill: String,
    pub slippage_bps: String,
    pub close_at_end: bool,
    pub lot_size: String,
}

impl Settings {
    #[must_use]
    pub fn from_config(c: &BacktestConfig) -> Self {
        Self {
            cash: c.cash,
            commission: c.commission.to_string(),
            sizing: c.sizing.to_string(),
            fill: c.timing.to_string(),
            slippage_bps: model::Rate::from_raw(c.slippage.raw() * 10_000).to_string(),
            close_at_end: c.close_at_end,
            lot_size: c.lot_size.to_string(),
        }
    }
}

/// One point of the equity curve.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct EquityPoint {
    pub time: Timestamp,
    pub equity: Money,
    /// Fall from the running peak, in percent (0 at a new high).
    pub drawdown_pct: f64,
}

/// Everything `report.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Report {
    pub strategy: String,
    pub params: BTreeMap<String, ParamValue>,
    pub symbol: String,
    pub data: DataSummary,
    pub settings: Settings,
    pub initial_cash: Money,
    #[serde(flatten)]
    pub metrics: Metrics,
    pub fills: usize,
    /// Orders refused by risk checks, by reason code (normally empty).
    pub orders_denied: BTreeMap<String, usize>,
    /// Signals at the last bar's close that had no next bar to execute at.
    pub unexecuted_signals_at_end: usize,
    /// Orders not placed because too little cash was free for one lot.
    pub orders_skipped_zero_size: usize,
    pub trades: Vec<Trade>,
    /// Equity after every `equity_curve_every_n_bars`-th bar, and after the last.
    pub equity_curve: Vec<EquityPoint>,
    pub equity_curve_every_n_bars: usize,
}

/// Builds the equity curve: every bar, or every n-th when there are more
/// than `max_points` (0 = no limit). Drawdown is computed on every bar, and
/// each sampled point carries the deepest drawdown since the previous one,
/// so sampling never hides the worst fall.
#[must_use]
pub fn equity_curve(run: &RunOutput, bars: &[model::Bar], max_points: usize) -> (Vec<EquityPoint>, usize) {
    let n = run.equity.len();
    let every = if max_points == 0 || n <= max_points { 1 } else { n.div_ceil(max_points) };
    let mut points = Vec::with_capacity(n / every + 2);
    let mut peak = run.initial_cash.to_f64();
    let mut deepest: f64 = 0.0;
    for (i, (e, bar)) in run.equity.iter_f64().zip(bars).enumerate() {
        peak = peak.max(e);
        let dd = if peak > 0.0 { (peak - e) / peak * 100.0 } else { 0.0 };
        deepest = deepest.max(dd);
        if (i + 1) % every == 0 || i + 1 == n {
            let equity = run.equity.money(i).unwrap_or_default();
            points.push(EquityPoint { time: bar.ts, equity, drawdown_pct: deepest });
            deepest = 0.0;
        }
    }
    (points, every)
}

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}: {source}")]
pub struct WriteError {
    pub path: String,
    pub source: std::io::Error,
}

/// Writes `contents` to `path` through a temporary file, so a failed write
/// never leaves a partial report behind.
pub fn write_atomically(
    path: &Path,
    contents: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), WriteError> {
    let err = |source| WriteError { path: path.display().to_string(), source };
    let tmp = path.with_extension("tmp");
    let result = (|| {
        let file = std::fs::File::create(&tmp)?;
        let mut w = std::io::BufWriter::new(file);
        contents(&mut w)?;
        w.flush()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(err(e));
    }
    Ok(())
}

impl Report {
    /// Writes the report as pretty JSON.
    pub fn write_json(&self, path: &Path) -> Result<(), WriteError> {
        write_atomically(path, |w| serde_json::to_writer_pretty(&mut *w, self).map_err(std::io::Error::other))
    }

    /// Writes the self-contained HTML report.
    pub fn write_html(&self, path: &Path) -> Result<(), WriteError> {
        let html = crate::html::render(self);
        write_atomically(path, |w| w.write_all(html.as_bytes()))
    }
}
