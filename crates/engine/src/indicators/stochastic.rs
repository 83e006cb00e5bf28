//! The stochastic oscillator (%K and %D).

use serde::{Deserialize, Serialize};

use super::IndicatorError;
use super::error::{check_bar, check_period};
use super::extrema::{Highest, Lowest};
use super::moving_average::Sma;

/// One stochastic reading, both lines in `[0, 100]` for consistent bars.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StochasticOutput {
    /// %K: where the close sits in the high–low range of the last `k_period` bars.
    pub k: f64,
    /// %D: the simple moving average of the last `d_period` %K values.
    pub d: f64,
}

/// The (fast) stochastic oscillator over (high, low, close) bars.
///
/// `%K = 100 * (close - lowest low) / (highest high - lowest low)` over the last `k_period`
/// bars, and `%D = SMA(d_period)` of %K. No extra %K smoothing is applied; for the "slow"
/// stochastic feed this %D into another SMA.
///
/// **Convention:** when the range is 0 (every high and low in the window equal), %K is 50: the
/// close is then both the lowest and the highest price, and the midpoint is the neutral reading.
///
/// %K is available from bar `k_period` on ([`Stochastic::k`]); the full output from bar
/// `k_period + d_period - 1`.
#[derive(Debug, Clone)]
pub struct Stochastic {
    highest: Highest,
    lowest: Lowest,
    d: Sma,
    k: Option<f64>,
    value: Option<StochasticOutput>,
}

impl Stochastic {
    const NAME: &'static str = "Stochastic";

    /// Requires both periods to be at least 1 (commonly 14 and 3).
    pub fn new(k_period: usize, d_period: usize) -> Result<Self, IndicatorError> {
        check_period(Self::NAME, "%K period", k_period)?;
        check_period(Self::NAME, "%D period", d_period)?;
        let too_large =
            |period| IndicatorError::PeriodTooLarge { indicator: Self::NAME, parameter: "%K period", period };
        Ok(Self {
            highest: Highest::new(k_period).map_err(|_| too_large(k_period))?,
            lowest: Lowest::new(k_period).map_err(|_| too_large(k_period))?,
            d: Sma::new(d_period).map_err(|_| IndicatorError::PeriodTooLarge {
                indicator: Self::NAME,
                parameter: "%D period",
                period: d_period,
            })?,
            k: None,
            value: None,
        })
    }

    /// Adds a bar; returns %K and %D from bar `k_period + d_period - 1` on.
    ///
    /// Trusts its input (see the module docs); [`Stochastic::try_update`] validates.
    ///
    /// # Panics
    /// In debug builds only, if a price is not finite.
    #[inline]
    pub fn update(&mut self, high: f64, low: f64, close: f64) -> Option<StochasticOutput> {
        debug_assert!(close.is_finite(), "Stochastic: non-finite close {close}");
        let highest = self.highest.update(high);
        let (Some(highest), Some(lowest)) = (highest, self.lowest.update(low)) else {
            return None;
        };
        let range = highest - lowest;
        // Divide first: (close - lowest) <= range, so the quotient rounds to at most 1 and %K
        // cannot exceed 100 by an ulp, as `100 * (close - lowest) / range` can.
        let k = if range > 0.0 { 100.0 * ((close - lowest) / range) } else { 50.0 };
        self.k = Some(k);
        let d = self.d.update(k)?;
        self.value = Some(StochasticOutput { k, d });
        self.value
    }

    /// Like [`Stochastic::update`], but rejects non-finite prices and bars that break
    /// `low <= close <= high`, leaving the state unchanged.
    pub fn try_update(&mut self, high: f64, low: f64, close: f64) -> Result<Option<StochasticOutput>, IndicatorError> {
        check_bar(Self::NAME, high, low, close)?;
        Ok(self.update(high, low, close))
    }

    pub fn value(&self) -> Option<StochasticOutput> {
        self.value
    }

    /// The latest %K alone, available from bar `k_period` on (before %D is ready).
    pub fn k(&self) -> Option<f64> {
        self.k
    }

    pub fn is_ready(&self) -> bool {
        self.value.is_some()
    }

    /// Bars needed before the first output: `k_period + d_period - 1`.
    pub fn warmup_period(&self) -> usize {
        self.highest.period().saturating_add(self.d.period() - 1)
    }

    /// The (%K, %D) periods.
    pub fn periods(&self) -> (usize, usize) {
        (self.highest.period(), self.d.period())
    }

    pub fn reset(&mut self) {
        self.highest.reset();
        self.lowest.reset();
        self.d.reset();
        self.k = None;
        self.value = None;
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::indicators::reference::{self, Bar, Field, Series, TOLERANCE, assert_series, bars, check_series, field};

    const FIELDS: [(&str, Field<StochasticOutput>); 2] = [("%K", |o| o.k), ("%D", |o| o.d)];

    fn feed(stochastic: &mut Stochastic, bars: &[Bar]) -> Vec<Option<StochasticOutput>> {
        bars.iter().map(|b| stochastic.update(b.high, b.low, b.close)).collect()
    }

    #[test]
    fn hand_computed_small_series() {
        let bar = |high, low, close| Bar { high, low, close };
        let bars = [
            bar(10.0, 8.0, 9.0),
            bar(12.0, 9.0, 11.0),
            bar(11.0, 6.0, 7.0),
            bar(13.0, 10.0, 13.0),
            bar(12.0, 11.0, 11.5),
        ];
        // %K(3): bar 3 window highs 10,12,11 / lows 8,9,6: 100*(7-6)/(12-6) = 100/6.
        // bar 4: highs 12,11,13 lows 9,6,10: 100*(13-6)/(13-6) = 100.
        // bar 5: highs 11,13,12 lows 6,10,11: 100*(11.5-6)/(13-6) = 550/7.
        // %D(2): (100/6+100)/2 = 350/6 at bar 4; (100+550/7)/2 = 625/7 at bar 5.
        let got = feed(&mut Stochastic::new(3, 2).unwrap(), &bars);
        let cases: [(&str, Field<StochasticOutput>, Series); 2] = [
            ("Stochastic(3, 2) %K", |o| o.k, vec![None, None, None, Some(100.0), Some(550.0 / 7.0)]),
            ("Stochastic(3, 2) %D", |o| o.d, vec![None, None, None, Some(350.0 / 6.0), Some(625.0 / 7.0)]),
        ];
        for (name, f, want) in cases {
            assert_series(name, &field(&got, f), &want, 1e-12);
        }

        // %K alone is available from bar k_period = 3, before %D.
        let mut early = Stochastic::new(3, 2).unwrap();
        let k: Vec<Option<f64>> =
            bars[..3].iter().map(|b| (early.update(b.high, b.low, b.close), early.k()).1).collect();
        assert_series("Stochastic(3, 2) %K before %D", &k, &[None, None, Some(100.0 / 6.0)], 1e-12);
    }

    #[test]
    fn zero_range_reads_fifty() {
        let flat = [Bar { high: 5.0, low: 5.0, close: 5.0 }; 4];
        let got = feed(&mut Stochastic::new(2, 2).unwrap(), &flat);
        assert_eq!(got[3], Some(StochasticOutput { k: 50.0, d: 50.0 }), "flat bars: range 0 means %K = 50");
    }

    proptest! {
        #![proptest_config(reference::proptest_config(96))]

        #[test]
        fn matches_reference(bars in bars(300), k_period in 1usize..30, d_period in 1usize..10) {
            let mut stochastic = Stochastic::new(k_period, d_period).unwrap();
            let got = feed(&mut stochastic, &bars);
            let want = reference::stochastic(&bars, k_period, d_period);
            let label = format!("Stochastic({k_period}, {d_period})");
            for (name, f) in FIELDS {
                check_series(&format!("{label} {name}"), &field(&got, f), &field(&want, f), TOLERANCE)?;
            }
            prop_assert!(got.iter().flatten().all(|o| (0.0..=100.0).contains(&o.k)), "{label} %K left [0, 100]");
            prop_assert_eq!(stochastic.value(), got.last().copied().flatten());
        }
    }
}
