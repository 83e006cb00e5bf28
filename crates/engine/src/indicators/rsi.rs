//! Relative Strength Index with Wilder's smoothing.

use super::IndicatorError;
use super::error::{check_finite, check_period};

/// Wilder's RSI over closing prices.
///
/// Each input after the first yields a change `close - previous close`, split into a gain
/// (`max(change, 0)`) and a loss (`max(-change, 0)`). The first average gain/loss is the simple
/// mean of the first `period` gains/losses, so the first output comes on input `period + 1`;
/// after that `avg = (avg * (period - 1) + x) / period` (Wilder's smoothing, an EMA with
/// `alpha = 1 / period`). `RSI = 100 * avg_gain / (avg_gain + avg_loss)`, which is
/// `100 - 100 / (1 + RS)` rearranged to avoid dividing by a zero loss.
///
/// **Convention:** when the average loss is 0 the RSI is 100, including on a perfectly flat
/// series where the average gain is 0 too.
#[derive(Debug, Clone)]
pub struct Rsi {
    period: usize,
    previous_close: Option<f64>,
    /// While seeding: the sums of gains and losses. After: Wilder's averages.
    gain: f64,
    loss: f64,
    changes_seen: usize,
    value: Option<f64>,
}

impl Rsi {
    const NAME: &'static str = "RSI";

    pub fn new(period: usize) -> Result<Self, IndicatorError> {
        check_period(Self::NAME, "period", period)?;
        Ok(Self { period, previous_close: None, gain: 0.0, loss: 0.0, changes_seen: 0, value: None })
    }

    /// Adds a close; returns the RSI in `[0, 100]` from input `period + 1` on.
    ///
    /// Trusts its input (see the module docs); [`Rsi::try_update`] validates.
    ///
    /// # Panics
    /// In debug builds only, if `close` is not finite.
    #[inline]
    pub fn update(&mut self, close: f64) -> Option<f64> {
        debug_assert!(close.is_finite(), "RSI: non-finite input {close}");
        // The first close only sets the reference for the first change.
        let previous = self.previous_close.replace(close)?;
        let change = close - previous;
        let (gain, loss) = if change > 0.0 { (change, 0.0) } else { (0.0, -change) };
        let n = self.period as f64;
        if self.changes_seen < self.period {
            // At most `period` terms: plain summation is accurate enough.
            self.gain += gain;
            self.loss += loss;
            self.changes_seen += 1;
            if self.changes_seen < self.period {
                return None;
            }
            self.gain /= n;
            self.loss /= n;
        } else {
            // Wilder's recursion forgets old rounding errors geometrically; no drift to manage.
            self.gain = (self.gain * (n - 1.0) + gain) / n;
            self.loss = (self.loss * (n - 1.0) + loss) / n;
        }
        let rsi = if self.loss == 0.0 { 100.0 } else { 100.0 * self.gain / (self.gain + self.loss) };
        self.value = Some(rsi);
        self.value
    }

    /// Like [`Rsi::update`], but rejects a non-finite `close` and leaves the state unchanged.
    pub fn try_update(&mut self, close: f64) -> Result<Option<f64>, IndicatorError> {
        check_finite(Self::NAME, "close", close)?;
        Ok(self.update(close))
    }

    pub fn value(&self) -> Option<f64> {
        self.value
    }

    pub fn is_ready(&self) -> bool {
        self.value.is_some()
    }

    /// Inputs needed before the first output: `period + 1` (`period` changes need one more close).
    pub fn warmup_period(&self) -> usize {
        self.period.saturating_add(1)
    }

    pub fn period(&self) -> usize {
        self.period
    }

    pub fn reset(&mut self) {
        self.previous_close = None;
        self.gain = 0.0;
        self.loss = 0.0;
        self.changes_seen = 0;
        self.value = None;
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::indicators::reference::{self, Series, TOLERANCE, assert_series, check_series, prices};

    fn feed(rsi: &mut Rsi, closes: &[f64]) -> Vec<Option<f64>> {
        closes.iter().map(|&c| rsi.update(c)).collect()
    }

    /// The 14-period worked example from StockCharts' "Relative Strength Index" ChartSchool
    /// article (its cs-rsi spreadsheet): 33 closes, RSI published to two decimals from the 15th.
    #[test]
    fn stockcharts_fourteen_period_example() {
        let closes = [
            44.3389, 44.0902, 44.1497, 43.6124, 44.3278, 44.8264, 45.0955, 45.4245, 45.8433, 46.0826, 45.8931, 46.0328,
            45.6140, 46.2820, 46.2820, 46.0028, 46.0328, 46.4116, 46.2222, 45.6439, 46.2122, 46.2521, 45.7137, 46.4515,
            45.7835, 45.3548, 44.0288, 44.1783, 44.2181, 44.5672, 43.4205, 42.6628, 43.1314,
        ];
        let published = [
            70.53, 66.32, 66.55, 69.41, 66.36, 57.97, 62.93, 63.26, 56.06, 62.38, 54.71, 50.42, 39.99, 41.46, 41.87,
            45.46, 37.30, 33.08, 37.77,
        ];
        let got = feed(&mut Rsi::new(14).unwrap(), &closes);
        assert!(got[..14].iter().all(Option::is_none), "RSI(14) must be silent for the first 14 closes: {got:?}");
        for (i, (got, want)) in got[14..].iter().zip(published).enumerate() {
            let got = got.unwrap_or_else(|| panic!("RSI(14) close {}: no value", i + 15));
            // Published values are rounded to 2 decimals.
            assert!((got - want).abs() <= 0.005, "RSI(14) close {}: got {got:.4}, published {want}", i + 15);
        }
    }

    #[test]
    fn hand_computed_small_series() {
        let cases: [(&str, usize, &[f64], Series); 4] = [
            (
                // Changes +1, -1: avg gain 0.5, avg loss 0.5 -> 50. Then +2: gain (0.5*1+2)/2 = 1.25,
                // loss (0.5*1+0)/2 = 0.25 -> 100*1.25/1.5. Then -3: gain 0.625, loss 1.625 -> 100*0.625/2.25.
                "RSI(2) of 10, 11, 10, 12, 9",
                2,
                &[10.0, 11.0, 10.0, 12.0, 9.0],
                vec![None, None, Some(50.0), Some(100.0 * 1.25 / 1.5), Some(100.0 * 0.625 / 2.25)],
            ),
            (
                "RSI(3) rising only: average loss 0 -> 100",
                3,
                &[1.0, 2.0, 3.0, 4.0, 5.0],
                vec![None, None, None, Some(100.0), Some(100.0)],
            ),
            (
                "RSI(2) falling only: average gain 0 -> 0",
                2,
                &[5.0, 4.0, 3.0, 2.0],
                vec![None, None, Some(0.0), Some(0.0)],
            ),
            (
                "RSI(2) flat: both averages 0 -> 100 by convention",
                2,
                &[7.0, 7.0, 7.0, 7.0],
                vec![None, None, Some(100.0), Some(100.0)],
            ),
        ];
        for (name, period, closes, want) in cases {
            assert_series(name, &feed(&mut Rsi::new(period).unwrap(), closes), &want, 1e-12);
        }
    }

    proptest! {
        #![proptest_config(reference::proptest_config(128))]

        #[test]
        fn matches_reference(closes in prices(300), period in 1usize..40) {
            let mut rsi = Rsi::new(period).unwrap();
            let got = feed(&mut rsi, &closes);
            check_series(&format!("RSI({period})"), &got, &reference::rsi(&closes, period), TOLERANCE)?;
            let in_range = got.iter().flatten().all(|v| (0.0..=100.0).contains(v));
            prop_assert!(in_range, "RSI({period}) left [0, 100]: {got:?}");
            prop_assert_eq!(rsi.value(), got.last().copied().flatten());
        }
    }
}
