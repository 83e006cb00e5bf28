//! Moving Average Convergence/Divergence.

use serde::{Deserialize, Serialize};

use super::IndicatorError;
use super::error::{check_finite, check_period};
use super::moving_average::Ema;

/// One MACD reading.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MacdOutput {
    /// EMA(fast) − EMA(slow) of the input.
    pub macd: f64,
    /// EMA(signal) of the MACD line.
    pub signal: f64,
    /// `macd - signal`.
    pub histogram: f64,
}

/// MACD: the difference of a fast and a slow [`Ema`] of the input, its own EMA (the signal
/// line) and the difference of the two (the histogram).
///
/// All three EMAs are SMA-seeded (see [`Ema`]) and start from the first input they can see: the
/// fast and slow EMAs from input 1, the signal EMA from the first MACD value (input `slow`).
/// The first full output therefore comes on input `slow + signal - 1` (34 for 12/26/9, the
/// same as TA-Lib's lookback of 33). [`Macd::macd_line`] exposes the MACD line alone from
/// input `slow` on.
#[derive(Debug, Clone)]
pub struct Macd {
    fast: Ema,
    slow: Ema,
    signal: Ema,
    macd_line: Option<f64>,
    value: Option<MacdOutput>,
}

impl Macd {
    const NAME: &'static str = "MACD";
    /// Appel's classic parameters, used by [`Macd::default`].
    pub const DEFAULT_FAST: usize = 12;
    pub const DEFAULT_SLOW: usize = 26;
    pub const DEFAULT_SIGNAL: usize = 9;

    /// Requires `0 < fast < slow` and `signal > 0`.
    pub fn new(fast: usize, slow: usize, signal: usize) -> Result<Self, IndicatorError> {
        check_period(Self::NAME, "fast period", fast)?;
        check_period(Self::NAME, "slow period", slow)?;
        check_period(Self::NAME, "signal period", signal)?;
        if fast >= slow {
            return Err(IndicatorError::FastNotBelowSlow { fast, slow });
        }
        Ok(Self {
            fast: Ema::new(fast)?,
            slow: Ema::new(slow)?,
            signal: Ema::new(signal)?,
            macd_line: None,
            value: None,
        })
    }

    /// Adds `x`; returns MACD, signal and histogram from input `slow + signal - 1` on.
    ///
    /// Trusts its input (see the module docs); [`Macd::try_update`] validates.
    ///
    /// # Panics
    /// In debug builds only, if `x` is not finite.
    #[inline]
    pub fn update(&mut self, x: f64) -> Option<MacdOutput> {
        let fast = self.fast.update(x);
        // The slow EMA is ready no earlier than the fast one, so it decides when the line starts.
        let (Some(fast), Some(slow)) = (fast, self.slow.update(x)) else {
            return None;
        };
        let macd = fast - slow;
        self.macd_line = Some(macd);
        let signal = self.signal.update(macd)?;
        self.value = Some(MacdOutput { macd, signal, histogram: macd - signal });
        self.value
    }

    /// Like [`Macd::update`], but rejects a non-finite `x` and leaves the state unchanged.
    pub fn try_update(&mut self, x: f64) -> Result<Option<MacdOutput>, IndicatorError> {
        check_finite(Self::NAME, "x", x)?;
        Ok(self.update(x))
    }

    pub fn value(&self) -> Option<MacdOutput> {
        self.value
    }

    /// The MACD line alone, available from input `slow` on (before the signal line is ready).
    pub fn macd_line(&self) -> Option<f64> {
        self.macd_line
    }

    pub fn is_ready(&self) -> bool {
        self.value.is_some()
    }

    /// Inputs needed before the first output: `slow + signal - 1`.
    pub fn warmup_period(&self) -> usize {
        self.slow.period().saturating_add(self.signal.period() - 1)
    }

    /// The (fast, slow, signal) periods.
    pub fn periods(&self) -> (usize, usize, usize) {
        (self.fast.period(), self.slow.period(), self.signal.period())
    }

    pub fn reset(&mut self) {
        self.fast.reset();
        self.slow.reset();
        self.signal.reset();
        self.macd_line = None;
        self.value = None;
    }
}

impl Default for Macd {
    /// MACD(12, 26, 9).
    fn default() -> Self {
        Self::new(Self::DEFAULT_FAST, Self::DEFAULT_SLOW, Self::DEFAULT_SIGNAL).expect("12/26/9 are valid MACD periods")
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::indicators::reference::{self, Field, Series, TOLERANCE, assert_series, check_series, field, prices};

    const FIELDS: [(&str, Field<MacdOutput>); 3] =
        [("line", |o| o.macd), ("signal", |o| o.signal), ("histogram", |o| o.histogram)];

    fn feed(macd: &mut Macd, xs: &[f64]) -> Vec<Option<MacdOutput>> {
        xs.iter().map(|&x| macd.update(x)).collect()
    }

    /// MACD(2, 3, 2) of 2, 4, 8, 4, 10, by hand in fractions.
    ///
    /// Fast EMA(2), alpha 2/3: seed (2+4)/2 = 3; 3 + 2/3(8-3) = 19/3; 19/3 + 2/3(4-19/3) = 43/9;
    /// 43/9 + 2/3(10-43/9) = 223/27.
    /// Slow EMA(3), alpha 1/2: seed (2+4+8)/3 = 14/3; 14/3 + 1/2(4-14/3) = 13/3; 13/3 + 1/2(10-13/3) = 43/6.
    /// MACD line from input 3: 19/3-14/3 = 5/3; 43/9-13/3 = 4/9; 223/27-43/6 = 59/54.
    /// Signal EMA(2) of the line, alpha 2/3: seed (5/3+4/9)/2 = 19/18 at input 4;
    /// 19/18 + 2/3(59/54-19/18) = 175/162 at input 5.
    /// Histogram: 4/9-19/18 = -11/18; 59/54-175/162 = 1/81.
    #[test]
    fn hand_computed_small_series() {
        let mut macd = Macd::new(2, 3, 2).unwrap();
        let got = feed(&mut macd, &[2.0, 4.0, 8.0, 4.0, 10.0]);
        let cases: [(&str, Field<MacdOutput>, Series); 3] = [
            ("MACD(2,3,2) line", |o| o.macd, vec![None, None, None, Some(4.0 / 9.0), Some(59.0 / 54.0)]),
            ("MACD(2,3,2) signal", |o| o.signal, vec![None, None, None, Some(19.0 / 18.0), Some(175.0 / 162.0)]),
            ("MACD(2,3,2) histogram", |o| o.histogram, vec![None, None, None, Some(-11.0 / 18.0), Some(1.0 / 81.0)]),
        ];
        for (name, f, want) in cases {
            assert_series(name, &field(&got, f), &want, 1e-12);
        }
        // The line alone is there from input `slow` = 3, before the signal.
        let mut early = Macd::new(2, 3, 2).unwrap();
        let line: Vec<Option<f64>> = [2.0, 4.0, 8.0].iter().map(|&x| (early.update(x), early.macd_line()).1).collect();
        assert_series("MACD(2,3,2) line before the signal", &line, &[None, None, Some(5.0 / 3.0)], 1e-12);
        assert!(!early.is_ready());
    }

    #[test]
    fn default_is_12_26_9_and_warms_up_in_34() {
        let macd = Macd::default();
        assert_eq!(macd.periods(), (12, 26, 9));
        assert_eq!(macd.warmup_period(), 34);
    }

    proptest! {
        #![proptest_config(reference::proptest_config(96))]

        #[test]
        fn matches_reference(xs in prices(300), fast in 1usize..15, extra in 1usize..20, signal in 1usize..15) {
            let slow = fast + extra;
            let mut macd = Macd::new(fast, slow, signal).unwrap();
            let got = feed(&mut macd, &xs);
            let want = reference::macd(&xs, fast, slow, signal);
            let label = format!("MACD({fast},{slow},{signal})");
            for (name, f) in FIELDS {
                check_series(&format!("{label} {name}"), &field(&got, f), &field(&want, f), TOLERANCE)?;
            }
            prop_assert_eq!(macd.value(), got.last().copied().flatten());
        }
    }
}
