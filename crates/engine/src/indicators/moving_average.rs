//! Moving averages: simple (SMA), exponential (EMA) and linearly weighted (WMA).

use super::IndicatorError;
use super::error::{check_finite, check_period};
use super::window::{NeumaierSum, Ring};

/// Simple moving average: the arithmetic mean of the last `period` inputs.
///
/// O(1) per update: a compensated running sum adds the new value and subtracts the one leaving
/// the window, and is rebuilt from the window every `period` slides (see the module docs).
#[derive(Debug, Clone)]
pub struct Sma {
    period: usize,
    window: Ring,
    sum: NeumaierSum,
    slides_since_resync: usize,
    value: Option<f64>,
}

impl Sma {
    const NAME: &'static str = "SMA";

    pub fn new(period: usize) -> Result<Self, IndicatorError> {
        check_period(Self::NAME, "period", period)?;
        let window = Ring::new(Self::NAME, "period", period)?;
        Ok(Self { period, window, sum: NeumaierSum::default(), slides_since_resync: 0, value: None })
    }

    /// Adds `x`; returns the mean of the last `period` inputs once `period` have been seen.
    ///
    /// Trusts its input (see the module docs); [`Sma::try_update`] validates.
    ///
    /// # Panics
    /// In debug builds only, if `x` is not finite.
    #[inline]
    pub fn update(&mut self, x: f64) -> Option<f64> {
        debug_assert!(x.is_finite(), "SMA: non-finite input {x}");
        self.sum.add(x);
        if let Some(old) = self.window.push(x) {
            self.sum.add(-old);
            self.slides_since_resync += 1;
            if self.slides_since_resync == self.period {
                self.sum = NeumaierSum::of(self.window.iter());
                self.slides_since_resync = 0;
            }
        }
        if self.window.is_full() {
            self.value = Some(self.sum.value() / self.period as f64);
        }
        self.value
    }

    /// Like [`Sma::update`], but rejects a non-finite `x` and leaves the state unchanged.
    pub fn try_update(&mut self, x: f64) -> Result<Option<f64>, IndicatorError> {
        check_finite(Self::NAME, "x", x)?;
        Ok(self.update(x))
    }

    /// The latest output, without consuming input.
    pub fn value(&self) -> Option<f64> {
        self.value
    }

    pub fn is_ready(&self) -> bool {
        self.value.is_some()
    }

    /// Inputs needed before the first output: `period`.
    pub fn warmup_period(&self) -> usize {
        self.period
    }

    pub fn period(&self) -> usize {
        self.period
    }

    /// Forgets all input; keeps the allocated window.
    pub fn reset(&mut self) {
        self.window.clear();
        self.sum = NeumaierSum::default();
        self.slides_since_resync = 0;
        self.value = None;
    }
}

/// Exponential moving average with `alpha = 2 / (period + 1)`.
///
/// **Seeding:** the first output, on input number `period`, is the simple mean of the first
/// `period` inputs; from then on `ema = ema + alpha * (x - ema)`, which is the textbook
/// `alpha * x + (1 - alpha) * ema` with one rounding fewer. This matches StockCharts and TA-Lib's
/// default, and differs from "seed with the first input" variants only during the first few
/// multiples of `period` (the seed's weight decays as `(1 - alpha)^t`).
///
/// The recursion needs no window and no compensation: an error made at one step is multiplied
/// by `1 - alpha < 1` at every later step, so rounding does not accumulate.
#[derive(Debug, Clone)]
pub struct Ema {
    period: usize,
    alpha: f64,
    /// Sum and count of the inputs seen while seeding.
    seed_sum: f64,
    seed_count: usize,
    value: Option<f64>,
}

impl Ema {
    const NAME: &'static str = "EMA";

    pub fn new(period: usize) -> Result<Self, IndicatorError> {
        check_period(Self::NAME, "period", period)?;
        // period + 1 computed in f64: cannot overflow even for usize::MAX.
        let alpha = 2.0 / (period as f64 + 1.0);
        Ok(Self { period, alpha, seed_sum: 0.0, seed_count: 0, value: None })
    }

    /// Adds `x`; returns the EMA once `period` inputs have been seen (see the seeding note).
    ///
    /// Trusts its input (see the module docs); [`Ema::try_update`] validates.
    ///
    /// # Panics
    /// In debug builds only, if `x` is not finite.
    #[inline]
    pub fn update(&mut self, x: f64) -> Option<f64> {
        debug_assert!(x.is_finite(), "EMA: non-finite input {x}");
        match self.value {
            Some(previous) => self.value = Some(previous + self.alpha * (x - previous)),
            None => {
                // `period` values in, one rounding each: too few to need compensation.
                self.seed_sum += x;
                self.seed_count += 1;
                if self.seed_count == self.period {
                    self.value = Some(self.seed_sum / self.period as f64);
                }
            }
        }
        self.value
    }

    /// Like [`Ema::update`], but rejects a non-finite `x` and leaves the state unchanged.
    pub fn try_update(&mut self, x: f64) -> Result<Option<f64>, IndicatorError> {
        check_finite(Self::NAME, "x", x)?;
        Ok(self.update(x))
    }

    pub fn value(&self) -> Option<f64> {
        self.value
    }

    pub fn is_ready(&self) -> bool {
        self.value.is_some()
    }

    /// Inputs needed before the first output: `period` (the seed is their simple mean).
    pub fn warmup_period(&self) -> usize {
        self.period
    }

    pub fn period(&self) -> usize {
        self.period
    }

    /// The smoothing factor `2 / (period + 1)`.
    pub fn alpha(&self) -> f64 {
        self.alpha
    }

    pub fn reset(&mut self) {
        self.seed_sum = 0.0;
        self.seed_count = 0;
        self.value = None;
    }
}

/// Linearly weighted moving average: weights `1, 2, …, period` from the oldest to the newest
/// input, divided by `period * (period + 1) / 2`.
///
/// O(1) per update from two running sums, the plain sum `S` and the weighted sum `N`. When the
/// window slides, every remaining value's weight drops by one and the new value enters at weight
/// `period`, so `N' = N - S + period * x` (with `S` taken before the slide), then
/// `S' = S - oldest + x`. Both sums are compensated (the weighted one including the rounding
/// error of each `weight * x` product) and rebuilt every `period` slides.
#[derive(Debug, Clone)]
pub struct Wma {
    period: usize,
    /// `period * (period + 1) / 2`, computed in f64 so it cannot overflow.
    weight_total: f64,
    window: Ring,
    sum: NeumaierSum,
    weighted_sum: NeumaierSum,
    slides_since_resync: usize,
    value: Option<f64>,
}

impl Wma {
    const NAME: &'static str = "WMA";

    pub fn new(period: usize) -> Result<Self, IndicatorError> {
        check_period(Self::NAME, "period", period)?;
        let window = Ring::new(Self::NAME, "period", period)?;
        let n = period as f64;
        Ok(Self {
            period,
            weight_total: n * (n + 1.0) / 2.0,
            window,
            sum: NeumaierSum::default(),
            weighted_sum: NeumaierSum::default(),
            slides_since_resync: 0,
            value: None,
        })
    }

    /// Adds `x`; returns the weighted mean of the last `period` inputs once `period` have been seen.
    ///
    /// Trusts its input (see the module docs); [`Wma::try_update`] validates.
    ///
    /// # Panics
    /// In debug builds only, if `x` is not finite.
    #[inline]
    pub fn update(&mut self, x: f64) -> Option<f64> {
        debug_assert!(x.is_finite(), "WMA: non-finite input {x}");
        match self.window.push(x) {
            None => {
                // Filling: the value just pushed is the newest so far, at weight = current length.
                self.weighted_sum.add_product(self.window.len() as f64, x);
                self.sum.add(x);
            }
            Some(old) => {
                self.weighted_sum.add_product(self.period as f64, x);
                self.weighted_sum.subtract(&self.sum);
                self.sum.add(x);
                self.sum.add(-old);
                self.slides_since_resync += 1;
                if self.slides_since_resync == self.period {
                    self.resync();
                }
            }
        }
        if self.window.is_full() {
            self.value = Some(self.weighted_sum.value() / self.weight_total);
        }
        self.value
    }

    fn resync(&mut self) {
        self.sum = NeumaierSum::of(self.window.iter());
        self.weighted_sum = NeumaierSum::default();
        let mut weight = 0.0;
        for v in self.window.iter() {
            weight += 1.0; // exact: integers up to 2^53 are
            self.weighted_sum.add_product(weight, v);
        }
        self.slides_since_resync = 0;
    }

    /// Like [`Wma::update`], but rejects a non-finite `x` and leaves the state unchanged.
    pub fn try_update(&mut self, x: f64) -> Result<Option<f64>, IndicatorError> {
        check_finite(Self::NAME, "x", x)?;
        Ok(self.update(x))
    }

    pub fn value(&self) -> Option<f64> {
        self.value
    }

    pub fn is_ready(&self) -> bool {
        self.value.is_some()
    }

    /// Inputs needed before the first output: `period`.
    pub fn warmup_period(&self) -> usize {
        self.period
    }

    pub fn period(&self) -> usize {
        self.period
    }

    pub fn reset(&mut self) {
        self.window.clear();
        self.sum = NeumaierSum::default();
        self.weighted_sum = NeumaierSum::default();
        self.slides_since_resync = 0;
        self.value = None;
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::indicators::reference::{
        self, Series, TOLERANCE, assert_series, check_series, close_enough, lcg_series, prices,
    };

    fn feed(mut update: impl FnMut(f64) -> Option<f64>, xs: &[f64]) -> Vec<Option<f64>> {
        xs.iter().map(|&x| update(x)).collect()
    }

    #[test]
    fn hand_computed_small_series() {
        let mut sma3 = Sma::new(3).unwrap();
        let mut ema3 = Ema::new(3).unwrap();
        let mut wma3 = Wma::new(3).unwrap();
        let mut sma1 = Sma::new(1).unwrap();
        let mut ema1 = Ema::new(1).unwrap();
        let mut wma1 = Wma::new(1).unwrap();
        let cases: [(&str, Series, Series); 6] = [
            (
                "SMA(3) of 1..=5: means of (1,2,3), (2,3,4), (3,4,5)",
                feed(|x| sma3.update(x), &[1.0, 2.0, 3.0, 4.0, 5.0]),
                vec![None, None, Some(2.0), Some(3.0), Some(4.0)],
            ),
            (
                // alpha = 2/(3+1) = 0.5. Seed (2+4+6)/3 = 4; then 4+0.5(8-4) = 6; 6+0.5(10-6) = 8;
                // 8+0.5(4-8) = 6.
                "EMA(3) of 2,4,6,8,10,4: SMA seed then alpha 0.5",
                feed(|x| ema3.update(x), &[2.0, 4.0, 6.0, 8.0, 10.0, 4.0]),
                vec![None, None, Some(4.0), Some(6.0), Some(8.0), Some(6.0)],
            ),
            (
                // Weights 1,2,3 over 6: (1+2*2+3*3)/6 = 14/6; (2+2*3+3*4)/6 = 20/6;
                // (3+2*4+3*10)/6 = 41/6.
                "WMA(3) of 1,2,3,4,10",
                feed(|x| wma3.update(x), &[1.0, 2.0, 3.0, 4.0, 10.0]),
                vec![None, None, Some(14.0 / 6.0), Some(20.0 / 6.0), Some(41.0 / 6.0)],
            ),
            (
                "SMA(1) is the identity",
                feed(|x| sma1.update(x), &[5.0, -1.0, 7.5]),
                vec![Some(5.0), Some(-1.0), Some(7.5)],
            ),
            (
                "EMA(1) has alpha 1 and is the identity",
                feed(|x| ema1.update(x), &[5.0, -1.0, 7.5]),
                vec![Some(5.0), Some(-1.0), Some(7.5)],
            ),
            (
                "WMA(1) is the identity",
                feed(|x| wma1.update(x), &[5.0, -1.0, 7.5]),
                vec![Some(5.0), Some(-1.0), Some(7.5)],
            ),
        ];
        for (name, got, want) in cases {
            assert_series(name, &got, &want, 1e-12);
        }
    }

    /// A spike of ~1e15 passes through the window; once only small values remain, the averages
    /// must be exact again, at every step and not only after the next periodic rebuild. A plain
    /// running sum fails this by whole units (the small values are below the sum's ulp while the
    /// spike is in).
    #[test]
    fn a_spike_leaving_the_window_leaves_no_error_behind() {
        const PERIOD: usize = 10;
        let mut xs: Vec<f64> = (0..13).map(|i| 1e15 * (1.0 + f64::from(i) / 7.0)).collect();
        xs.extend((0..40).map(|i| 1.0 + f64::from(i) / 10.0));
        let spike_gone = 13 + PERIOD - 1; // first index whose window is all small values

        let mut sma = Sma::new(PERIOD).unwrap();
        let mut wma = Wma::new(PERIOD).unwrap();
        let cases = [
            ("SMA(10)", feed(|x| sma.update(x), &xs), reference::sma(&xs, PERIOD)),
            ("WMA(10)", feed(|x| wma.update(x), &xs), reference::wma(&xs, PERIOD)),
        ];
        for (name, got, want) in cases {
            let label = format!("{name} after the spike (input numbers count from input {})", spike_gone + 1);
            assert_series(&label, &got[spike_gone..], &want[spike_gone..], 1e-12);
        }
    }

    /// A million inputs near 1e5: the final window's averages must match a fresh computation
    /// over that window, i.e. nothing accumulated over the run.
    #[test]
    fn no_drift_over_a_million_updates() {
        const PERIOD: usize = 20;
        let xs = lcg_series(1_000_000, 7, 1e5, 50.0);
        let (mut sma, mut wma, mut ema) =
            (Sma::new(PERIOD).unwrap(), Wma::new(PERIOD).unwrap(), Ema::new(PERIOD).unwrap());
        for &x in &xs {
            sma.update(x);
            wma.update(x);
            ema.update(x);
        }
        let tail = &xs[xs.len() - PERIOD..];
        let want_sma = reference::sma(tail, PERIOD)[PERIOD - 1].unwrap();
        let want_wma = reference::wma(tail, PERIOD)[PERIOD - 1].unwrap();
        let alpha = 2.0 / (PERIOD as f64 + 1.0);
        let want_ema = xs[PERIOD..]
            .iter()
            .fold(xs[..PERIOD].iter().sum::<f64>() / PERIOD as f64, |e, &x| alpha * x + (1.0 - alpha) * e);
        for (name, got, want) in
            [("SMA", sma.value(), want_sma), ("WMA", wma.value(), want_wma), ("EMA", ema.value(), want_ema)]
        {
            let got = got.unwrap_or_else(|| panic!("{name}: not ready"));
            assert!(close_enough(got, want, 1e-13), "{name}: got {got}, want {want}, diff {}", got - want);
        }
    }

    #[test]
    fn ema_alpha_is_two_over_period_plus_one() {
        for (period, alpha) in [(1, 1.0), (3, 0.5), (9, 0.2), (19, 0.1)] {
            assert_eq!(Ema::new(period).unwrap().alpha(), alpha, "EMA({period})");
        }
    }

    proptest! {
        #![proptest_config(reference::proptest_config(128))]

        #[test]
        fn sma_matches_reference(xs in prices(300), period in 1usize..40) {
            let mut sma = Sma::new(period).unwrap();
            let got = feed(|x| sma.update(x), &xs);
            check_series(&format!("SMA({period})"), &got, &reference::sma(&xs, period), TOLERANCE)?;
            prop_assert_eq!(sma.value(), got.last().copied().flatten());
        }

        #[test]
        fn ema_matches_reference(xs in prices(300), period in 1usize..40) {
            let mut ema = Ema::new(period).unwrap();
            let got = feed(|x| ema.update(x), &xs);
            check_series(&format!("EMA({period})"), &got, &reference::ema(&xs, period), TOLERANCE)?;
            prop_assert_eq!(ema.value(), got.last().copied().flatten());
        }

        #[test]
        fn wma_matches_reference(xs in prices(300), period in 1usize..40) {
            let mut wma = Wma::new(period).unwrap();
            let got = feed(|x| wma.update(x), &xs);
            check_series(&format!("WMA({period})"), &got, &reference::wma(&xs, period), TOLERANCE)?;
            prop_assert_eq!(wma.value(), got.last().copied().flatten());
        }
    }
}
