//! Test support: naive reference implementations written straight from each indicator's
//! definition, plus input generators and comparison helpers.
//!
//! Every reference function recomputes its output at every step from the whole relevant input
//! (the window, or the full history for recursive smoothers) with no state carried between steps,
//! O(n·period) or worse. They share no code with the streaming implementations, and where a
//! formula has two textbook forms they use the other one (`alpha * x + (1 - alpha) * ema`,
//! `100 - 100 / (1 + RS)`, two-pass variance), so agreement is evidence, not tautology.

use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, TestCaseError};

// The output structs are plain data; sharing them keeps the comparisons short without sharing
// any of the computation.
use super::{BollingerOutput, MacdOutput, StochasticOutput};

/// A bar as the references see it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bar {
    pub(crate) high: f64,
    pub(crate) low: f64,
    pub(crate) close: f64,
}

/// An output series: `None` while warming up.
pub(crate) type Series = Vec<Option<f64>>;

/// Picks one field of a multi-valued output, for table-driven tests.
pub(crate) type Field<T> = fn(&T) -> f64;

/// One field of every output in a series.
pub(crate) fn field<T>(outputs: &[Option<T>], f: Field<T>) -> Series {
    outputs.iter().map(|o| o.as_ref().map(f)).collect()
}

fn mean(window: &[f64]) -> f64 {
    window.iter().sum::<f64>() / window.len() as f64
}

/// The window of `period` values ending at index `t`, if there are that many.
fn window<T>(xs: &[T], t: usize, period: usize) -> Option<&[T]> {
    (t + 1 >= period).then(|| &xs[t + 1 - period..=t])
}

pub(crate) fn sma(xs: &[f64], period: usize) -> Vec<Option<f64>> {
    (0..xs.len()).map(|t| window(xs, t, period).map(mean)).collect()
}

/// EMA at every step, recomputed from the start: seed with the mean of the first `period`
/// values, then `alpha * x + (1 - alpha) * ema`.
pub(crate) fn ema(xs: &[f64], period: usize) -> Vec<Option<f64>> {
    let alpha = 2.0 / (period as f64 + 1.0);
    (0..xs.len())
        .map(|t| {
            if t + 1 < period {
                return None;
            }
            let mut value = mean(&xs[..period]);
            for &x in &xs[period..=t] {
                value = alpha * x + (1.0 - alpha) * value;
            }
            Some(value)
        })
        .collect()
}

pub(crate) fn wma(xs: &[f64], period: usize) -> Vec<Option<f64>> {
    let denominator = (period * (period + 1)) as f64 / 2.0;
    (0..xs.len())
        .map(|t| {
            window(xs, t, period)
                .map(|w| w.iter().enumerate().map(|(i, x)| (i + 1) as f64 * x).sum::<f64>() / denominator)
        })
        .collect()
}

/// Wilder smoothing of `values` at every index from `period - 1` on, recomputed from the start.
fn wilder(values: &[f64], period: usize) -> Vec<Option<f64>> {
    let n = period as f64;
    (0..values.len())
        .map(|t| {
            if t + 1 < period {
                return None;
            }
            let mut average = mean(&values[..period]);
            for &v in &values[period..=t] {
                average = (average * (n - 1.0) + v) / n;
            }
            Some(average)
        })
        .collect()
}

pub(crate) fn rsi(closes: &[f64], period: usize) -> Vec<Option<f64>> {
    let changes: Vec<f64> = closes.windows(2).map(|w| w[1] - w[0]).collect();
    let gains: Vec<f64> = changes.iter().map(|c| c.max(0.0)).collect();
    let losses: Vec<f64> = changes.iter().map(|c| (-c).max(0.0)).collect();
    let (avg_gains, avg_losses) = (wilder(&gains, period), wilder(&losses, period));
    // Output t corresponds to change t - 1: the first close has no change.
    (0..closes.len())
        .map(|t| {
            let change = t.checked_sub(1)?;
            let (gain, loss) = (avg_gains[change]?, avg_losses[change]?);
            Some(if loss == 0.0 { 100.0 } else { 100.0 - 100.0 / (1.0 + gain / loss) })
        })
        .collect()
}

pub(crate) fn macd(xs: &[f64], fast: usize, slow: usize, signal: usize) -> Vec<Option<MacdOutput>> {
    let (fast, slow) = (ema(xs, fast), ema(xs, slow));
    let line: Vec<Option<f64>> = fast.iter().zip(&slow).map(|(f, s)| Some((*f)? - (*s)?)).collect();
    // The signal EMA sees only the defined part of the line.
    let start = line.iter().position(Option::is_some).unwrap_or(line.len());
    let defined: Vec<f64> = line[start..].iter().map(|v| v.expect("the line stays defined")).collect();
    let signal = ema(&defined, signal);
    (0..xs.len())
        .map(|t| {
            let macd = line[t]?;
            let signal = signal[t - start]?;
            Some(MacdOutput { macd, signal, histogram: macd - signal })
        })
        .collect()
}

pub(crate) fn bollinger(xs: &[f64], period: usize, k: f64) -> Vec<Option<BollingerOutput>> {
    (0..xs.len())
        .map(|t| {
            let w = window(xs, t, period)?;
            let middle = mean(w);
            let variance = w.iter().map(|x| (x - middle) * (x - middle)).sum::<f64>() / period as f64;
            let std_dev = variance.sqrt();
            Some(BollingerOutput { upper: middle + k * std_dev, middle, lower: middle - k * std_dev })
        })
        .collect()
}

pub(crate) fn atr(bars: &[Bar], period: usize) -> Vec<Option<f64>> {
    let true_ranges: Vec<f64> = (0..bars.len())
        .map(|t| {
            let bar = bars[t];
            let candidates = if t == 0 {
                vec![bar.high - bar.low]
            } else {
                let previous = bars[t - 1].close;
                vec![bar.high - bar.low, (bar.high - previous).abs(), (bar.low - previous).abs()]
            };
            candidates.into_iter().fold(f64::NEG_INFINITY, f64::max)
        })
        .collect();
    wilder(&true_ranges, period)
}

pub(crate) fn stochastic(bars: &[Bar], k_period: usize, d_period: usize) -> Vec<Option<StochasticOutput>> {
    let k_at = |t: usize| -> Option<f64> {
        let w = window(bars, t, k_period)?;
        let highest = w.iter().map(|b| b.high).fold(f64::NEG_INFINITY, f64::max);
        let lowest = w.iter().map(|b| b.low).fold(f64::INFINITY, f64::min);
        Some(if highest == lowest { 50.0 } else { 100.0 * (bars[t].close - lowest) / (highest - lowest) })
    };
    (0..bars.len())
        .map(|t| {
            let ks: Option<Vec<f64>> = (t + 1).checked_sub(d_period).map(|first| (first..=t).map(k_at).collect())?;
            let ks = ks?;
            Some(StochasticOutput { k: ks[ks.len() - 1], d: mean(&ks) })
        })
        .collect()
}

pub(crate) fn vwap(prices: &[f64], volumes: &[f64]) -> Vec<Option<f64>> {
    (0..prices.len())
        .map(|t| {
            let volume: f64 = volumes[..=t].iter().sum();
            let price_volume: f64 = prices[..=t].iter().zip(&volumes[..=t]).map(|(p, v)| p * v).sum();
            (volume > 0.0).then(|| price_volume / volume)
        })
        .collect()
}

pub(crate) fn highest(xs: &[f64], period: usize) -> Vec<Option<f64>> {
    (0..xs.len()).map(|t| Some(window(xs, t, period)?.iter().copied().fold(f64::NEG_INFINITY, f64::max))).collect()
}

pub(crate) fn lowest(xs: &[f64], period: usize) -> Vec<Option<f64>> {
    (0..xs.len()).map(|t| Some(window(xs, t, period)?.iter().copied().fold(f64::INFINITY, f64::min))).collect()
}

/// Proptest settings for this module: `cases` cases unless `PROPTEST_CASES` is set (for a longer
/// soak run), and failing inputs saved next to the test's source file
/// (`<file>.proptest-regressions`) rather than in a crate-level directory.
pub(crate) fn proptest_config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(cases);
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::default()
    }
}

// ---- comparison ----

/// Relative tolerance for streaming-vs-reference comparisons: both sides round differently,
/// but over a few hundred inputs of magnitude ≤ 1e4 the gap is around 1e-13 relative.
pub(crate) const TOLERANCE: f64 = 1e-9;

/// `|got - want| <= tolerance * max(1, |want|)`.
pub(crate) fn close_enough(got: f64, want: f64, tolerance: f64) -> bool {
    (got - want).abs() <= tolerance * want.abs().max(1.0)
}

/// Checks two output series agree step by step: both `None` (warming up) or both `Some` and
/// close. The label names the case in the failure message.
pub(crate) fn check_series(
    label: &str,
    got: &[Option<f64>],
    want: &[Option<f64>],
    tolerance: f64,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.len(), want.len(), "{}: series lengths differ", label);
    for (step, (g, w)) in got.iter().zip(want).enumerate() {
        match (g, w) {
            (None, None) => {}
            (Some(g), Some(w)) => {
                prop_assert!(close_enough(*g, *w, tolerance), "{label}: input {}: got {g}, want {w}", step + 1)
            }
            _ => prop_assert!(false, "{label}: input {}: got {g:?}, want {w:?} (warmup differs)", step + 1),
        }
    }
    Ok(())
}

/// [`check_series`] for plain `#[test]`s.
#[track_caller]
pub(crate) fn assert_series(label: &str, got: &[Option<f64>], want: &[Option<f64>], tolerance: f64) {
    if let Err(failure) = check_series(label, got, want, tolerance) {
        panic!("{failure}");
    }
}

// ---- inputs ----

/// A random walk of prices with 4 decimals (so equal prices, hence ties and flat windows, occur),
/// starting in [1, 1000], with ±2% steps and a one-in-four chance of no move.
pub(crate) fn prices(max_len: usize) -> impl Strategy<Value = Vec<f64>> {
    let step = prop_oneof![3 => -0.02f64..0.02, 1 => Just(0.0)];
    (1.0f64..1000.0, prop::collection::vec(step, 0..max_len)).prop_map(|(start, steps)| {
        let mut price = start;
        steps
            .into_iter()
            .map(|s| {
                price *= 1.0 + s;
                (price * 1e4).round() / 1e4
            })
            .collect()
    })
}

/// Bars around a random-walk close: high and low each up to 1% away from the close, sometimes
/// exactly at it (a zero-range bar).
pub(crate) fn bars(max_len: usize) -> impl Strategy<Value = Vec<Bar>> {
    prices(max_len).prop_flat_map(|closes| {
        let n = closes.len();
        let spread = || prop_oneof![3 => 0.0f64..0.01, 1 => Just(0.0)];
        (Just(closes), prop::collection::vec((spread(), spread()), n)).prop_map(|(closes, spreads)| {
            closes
                .into_iter()
                .zip(spreads)
                .map(|(close, (up, down))| Bar { high: close * (1.0 + up), low: close * (1.0 - down), close })
                .collect()
        })
    })
}

/// Volumes, zero one time in five.
pub(crate) fn volumes(len: usize) -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(prop_oneof![1 => Just(0.0), 4 => 0.0f64..1e6], len)
}

/// A deterministic pseudo-random series for the long (non-proptest) runs: `len` values in
/// `[base - spread, base + spread]`, from a 64-bit LCG so the tests need no RNG crate.
pub(crate) fn lcg_series(len: usize, seed: u64, base: f64, spread: f64) -> Vec<f64> {
    let mut state = seed;
    (0..len)
        .map(|_| {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let unit = (state >> 11) as f64 / (1u64 << 53) as f64;
            base + spread * (2.0 * unit - 1.0)
        })
        .collect()
}
