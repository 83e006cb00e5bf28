//! Rolling highest and lowest values.

use super::IndicatorError;
use super::error::{check_finite, check_period};
use super::window::MaxWindow;

/// The highest of the last `period` inputs (amortized O(1), by a monotonic deque).
#[derive(Debug, Clone)]
pub struct Highest {
    period: usize,
    max: MaxWindow,
}

impl Highest {
    const NAME: &'static str = "Highest";

    pub fn new(period: usize) -> Result<Self, IndicatorError> {
        check_period(Self::NAME, "period", period)?;
        Ok(Self { period, max: MaxWindow::new(Self::NAME, "period", period)? })
    }

    /// Adds `x`; returns the maximum of the last `period` inputs once `period` have been seen.
    ///
    /// Trusts its input (see the module docs); [`Highest::try_update`] validates.
    ///
    /// # Panics
    /// In debug builds only, if `x` is not finite.
    #[inline]
    pub fn update(&mut self, x: f64) -> Option<f64> {
        debug_assert!(x.is_finite(), "Highest: non-finite input {x}");
        self.max.push(x)
    }

    /// Like [`Highest::update`], but rejects a non-finite `x` and leaves the state unchanged.
    pub fn try_update(&mut self, x: f64) -> Result<Option<f64>, IndicatorError> {
        check_finite(Self::NAME, "x", x)?;
        Ok(self.update(x))
    }

    pub fn value(&self) -> Option<f64> {
        self.max.value()
    }

    pub fn is_ready(&self) -> bool {
        self.max.value().is_some()
    }

    /// Inputs needed before the first output: `period`.
    pub fn warmup_period(&self) -> usize {
        self.period
    }

    pub fn period(&self) -> usize {
        self.period
    }

    pub fn reset(&mut self) {
        self.max.clear();
    }
}

/// The lowest of the last `period` inputs (amortized O(1), by a monotonic deque).
///
/// Implemented as the rolling maximum of the negated inputs: negation is exact in floating
/// point, so this returns an input bit for bit and needs no second deque implementation.
#[derive(Debug, Clone)]
pub struct Lowest {
    period: usize,
    max_of_negated: MaxWindow,
}

impl Lowest {
    const NAME: &'static str = "Lowest";

    pub fn new(period: usize) -> Result<Self, IndicatorError> {
        check_period(Self::NAME, "period", period)?;
        Ok(Self { period, max_of_negated: MaxWindow::new(Self::NAME, "period", period)? })
    }

    /// Adds `x`; returns the minimum of the last `period` inputs once `period` have been seen.
    ///
    /// Trusts its input (see the module docs); [`Lowest::try_update`] validates.
    ///
    /// # Panics
    /// In debug builds only, if `x` is not finite.
    #[inline]
    pub fn update(&mut self, x: f64) -> Option<f64> {
        debug_assert!(x.is_finite(), "Lowest: non-finite input {x}");
        self.max_of_negated.push(-x).map(|m| -m)
    }

    /// Like [`Lowest::update`], but rejects a non-finite `x` and leaves the state unchanged.
    pub fn try_update(&mut self, x: f64) -> Result<Option<f64>, IndicatorError> {
        check_finite(Self::NAME, "x", x)?;
        Ok(self.update(x))
    }

    pub fn value(&self) -> Option<f64> {
        self.max_of_negated.value().map(|m| -m)
    }

    pub fn is_ready(&self) -> bool {
        self.max_of_negated.value().is_some()
    }

    /// Inputs needed before the first output: `period`.
    pub fn warmup_period(&self) -> usize {
        self.period
    }

    pub fn period(&self) -> usize {
        self.period
    }

    pub fn reset(&mut self) {
        self.max_of_negated.clear();
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::indicators::reference::{self, Series, assert_series, check_series, prices};

    #[test]
    fn hand_computed_small_series() {
        let xs = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0, 5.0, 3.0];
        let mut highest = Highest::new(3).unwrap();
        let mut lowest = Lowest::new(3).unwrap();
        let cases: [(&str, Series, [Option<f64>; 10]); 2] = [
            (
                "Highest(3) of pi's digits",
                xs.iter().map(|&x| highest.update(x)).collect(),
                [None, None, Some(4.0), Some(4.0), Some(5.0), Some(9.0), Some(9.0), Some(9.0), Some(6.0), Some(6.0)],
            ),
            (
                "Lowest(3) of pi's digits",
                xs.iter().map(|&x| lowest.update(x)).collect(),
                [None, None, Some(1.0), Some(1.0), Some(1.0), Some(1.0), Some(2.0), Some(2.0), Some(2.0), Some(3.0)],
            ),
        ];
        for (name, got, want) in cases {
            // Extrema return an input unchanged, so exact equality is the right test.
            assert_series(name, &got, &want, 0.0);
        }
    }

    /// Values drawn from {0, 1, 2, 3}: many ties, and maxima that expire while an equal value
    /// remains in the window.
    fn ties() -> impl Strategy<Value = Vec<f64>> {
        prop::collection::vec((0u8..4).prop_map(f64::from), 0..300)
    }

    proptest! {
        #![proptest_config(reference::proptest_config(128))]

        #[test]
        fn match_reference(xs in prop_oneof![prices(300), ties()], period in 1usize..40) {
            let mut highest = Highest::new(period).unwrap();
            let mut lowest = Lowest::new(period).unwrap();
            let got_high: Vec<Option<f64>> = xs.iter().map(|&x| highest.update(x)).collect();
            let got_low: Vec<Option<f64>> = xs.iter().map(|&x| lowest.update(x)).collect();
            check_series(&format!("Highest({period})"), &got_high, &reference::highest(&xs, period), 0.0)?;
            check_series(&format!("Lowest({period})"), &got_low, &reference::lowest(&xs, period), 0.0)?;
            prop_assert_eq!(highest.value(), got_high.last().copied().flatten());
            prop_assert_eq!(lowest.value(), got_low.last().copied().flatten());
        }
    }
}
