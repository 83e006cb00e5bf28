//! Average True Range with Wilder's smoothing.

use super::IndicatorError;
use super::error::{check_bar, check_period};

/// Wilder's ATR over (high, low, close) bars.
///
/// True range is `max(high - low, |high - previous close|, |low - previous close|)`; the first
/// bar has no previous close, so its true range is `high - low`. The first ATR, on bar number
/// `period`, is the simple mean of the first `period` true ranges; after that
/// `atr = (atr * (period - 1) + tr) / period`.
#[derive(Debug, Clone)]
pub struct Atr {
    period: usize,
    previous_close: Option<f64>,
    /// While seeding: the sum of true ranges. After: the ATR.
    average: f64,
    bars_seen: usize,
    value: Option<f64>,
}

impl Atr {
    const NAME: &'static str = "ATR";

    pub fn new(period: usize) -> Result<Self, IndicatorError> {
        check_period(Self::NAME, "period", period)?;
        Ok(Self { period, previous_close: None, average: 0.0, bars_seen: 0, value: None })
    }

    /// Adds a bar; returns the ATR from bar `period` on.
    ///
    /// Trusts its input (see the module docs); [`Atr::try_update`] validates.
    ///
    /// # Panics
    /// In debug builds only, if a price is not finite.
    #[inline]
    pub fn update(&mut self, high: f64, low: f64, close: f64) -> Option<f64> {
        debug_assert!(
            high.is_finite() && low.is_finite() && close.is_finite(),
            "ATR: non-finite input high {high}, low {low}, close {close}"
        );
        let range = high - low;
        let true_range = match self.previous_close.replace(close) {
            None => range,
            Some(previous) => range.max((high - previous).abs()).max((low - previous).abs()),
        };
        let n = self.period as f64;
        if self.bars_seen < self.period {
            self.average += true_range;
            self.bars_seen += 1;
            if self.bars_seen < self.period {
                return None;
            }
            self.average /= n;
        } else {
            self.average = (self.average * (n - 1.0) + true_range) / n;
        }
        self.value = Some(self.average);
        self.value
    }

    /// Like [`Atr::update`], but rejects non-finite prices and bars that break
    /// `low <= close <= high`, leaving the state unchanged.
    pub fn try_update(&mut self, high: f64, low: f64, close: f64) -> Result<Option<f64>, IndicatorError> {
        check_bar(Self::NAME, high, low, close)?;
        Ok(self.update(high, low, close))
    }

    pub fn value(&self) -> Option<f64> {
        self.value
    }

    pub fn is_ready(&self) -> bool {
        self.value.is_some()
    }

    /// Bars needed before the first output: `period`.
    pub fn warmup_period(&self) -> usize {
        self.period
    }

    pub fn period(&self) -> usize {
        self.period
    }

    pub fn reset(&mut self) {
        self.previous_close = None;
        self.average = 0.0;
        self.bars_seen = 0;
        self.value = None;
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::indicators::reference::{self, Bar, Series, TOLERANCE, assert_series, bars, check_series};

    fn feed(atr: &mut Atr, bars: &[Bar]) -> Vec<Option<f64>> {
        bars.iter().map(|b| atr.update(b.high, b.low, b.close)).collect()
    }

    #[test]
    fn hand_computed_small_series() {
        let bar = |high, low, close| Bar { high, low, close };
        let bars =
            [bar(10.0, 8.0, 9.0), bar(11.0, 9.5, 10.5), bar(14.0, 12.0, 13.0), bar(12.0, 7.0, 8.0), bar(9.0, 8.5, 8.8)];
        // True ranges: bar 1 has no previous close: 10-8 = 2.
        // bar 2: max(1.5, |11-9|, |9.5-9|) = 2.  bar 3 (gap up): max(2, |14-10.5|, |12-10.5|) = 3.5.
        // bar 4: max(5, |12-13|, |7-13|) = 6.    bar 5: max(0.5, |9-8|, |8.5-8|) = 1.
        let cases: [(&str, usize, Series); 3] = [
            // First ATR = (2+2+3.5)/3 = 2.5; then (2.5*2+6)/3 = 11/3; then (11/3*2+1)/3 = 25/9.
            ("ATR(3)", 3, vec![None, None, Some(2.5), Some(11.0 / 3.0), Some(25.0 / 9.0)]),
            ("ATR(1) is the true range", 1, vec![Some(2.0), Some(2.0), Some(3.5), Some(6.0), Some(1.0)]),
            // (2+2+3.5+6+1)/5 = 2.9.
            ("ATR(5) is the mean of the first five true ranges", 5, vec![None, None, None, None, Some(2.9)]),
        ];
        for (name, period, want) in cases {
            assert_series(name, &feed(&mut Atr::new(period).unwrap(), &bars), &want, 1e-12);
        }
    }

    proptest! {
        #![proptest_config(reference::proptest_config(128))]

        #[test]
        fn matches_reference(bars in bars(300), period in 1usize..40) {
            let mut atr = Atr::new(period).unwrap();
            let got = feed(&mut atr, &bars);
            check_series(&format!("ATR({period})"), &got, &reference::atr(&bars, period), TOLERANCE)?;
            prop_assert_eq!(atr.value(), got.last().copied().flatten());
        }
    }
}
