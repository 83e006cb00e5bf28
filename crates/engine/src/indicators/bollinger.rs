//! Bollinger Bands.

use serde::{Deserialize, Serialize};

use super::IndicatorError;
use super::error::{check_finite, check_period};
use super::window::{NeumaierSum, Ring};

/// One Bollinger reading.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BollingerOutput {
    /// `middle + k * std_dev`.
    pub upper: f64,
    /// The simple moving average of the window.
    pub middle: f64,
    /// `middle - k * std_dev`.
    pub lower: f64,
}

/// Bollinger Bands: the SMA of the last `period` inputs, ± `k` population standard deviations
/// (dividing by `period`, as Bollinger specifies, not `period - 1`).
///
/// **Numerics:** the textbook `E[x²] - E[x]²` cancels catastrophically for prices far from zero
/// (at 10 000 with a spread of 0.01 it keeps about four digits). Instead the running sums are of
/// `x - shift` and `(x - shift)²`, where `shift` is re-centred on the window mean every `period`
/// slides, when both sums are rebuilt from the window (O(period) once per `period` updates, so
/// amortized O(1)). Between rebuilds both sums are Neumaier-compensated. A tiny negative
/// variance from rounding is clamped to 0.
///
/// The accuracy of the width is relative to `(x - shift)²`, so it is only as good as `shift` is
/// close to the current prices: after an extreme outlier (a bad tick orders of magnitude off)
/// has left the window, the bands can be off until the next rebuild, at most `period` updates
/// later.
#[derive(Debug, Clone)]
pub struct BollingerBands {
    period: usize,
    k: f64,
    window: Ring,
    shift: f64,
    /// Σ (x - shift) over the window.
    sum: NeumaierSum,
    /// Σ (x - shift)² over the window.
    sum_squares: NeumaierSum,
    slides_since_resync: usize,
    value: Option<BollingerOutput>,
}

impl BollingerBands {
    const NAME: &'static str = "Bollinger";

    /// Requires `period > 0` and a finite, non-negative `k` (commonly 20 and 2.0).
    pub fn new(period: usize, k: f64) -> Result<Self, IndicatorError> {
        check_period(Self::NAME, "period", period)?;
        if !(k.is_finite() && k >= 0.0) {
            return Err(IndicatorError::InvalidMultiplier { indicator: Self::NAME, parameter: "k", value: k });
        }
        let window = Ring::new(Self::NAME, "period", period)?;
        Ok(Self {
            period,
            k,
            window,
            shift: 0.0,
            sum: NeumaierSum::default(),
            sum_squares: NeumaierSum::default(),
            slides_since_resync: 0,
            value: None,
        })
    }

    /// Adds `x`; returns the bands once `period` inputs have been seen.
    ///
    /// Trusts its input (see the module docs); [`BollingerBands::try_update`] validates.
    ///
    /// # Panics
    /// In debug builds only, if `x` is not finite.
    #[inline]
    pub fn update(&mut self, x: f64) -> Option<BollingerOutput> {
        debug_assert!(x.is_finite(), "Bollinger: non-finite input {x}");
        if self.window.is_empty() {
            // Any value near the data works until the first re-centring; the first one is nearest.
            self.shift = x;
        }
        let d = x - self.shift;
        self.sum.add(d);
        self.sum_squares.add(d * d);
        if let Some(old) = self.window.push(x) {
            let d_old = old - self.shift;
            self.sum.add(-d_old);
            self.sum_squares.add(-(d_old * d_old));
            self.slides_since_resync += 1;
            if self.slides_since_resync == self.period {
                self.resync();
            }
        }
        if !self.window.is_full() {
            return None;
        }
        let n = self.period as f64;
        let mean_offset = self.sum.value() / n;
        let variance = (self.sum_squares.value() / n - mean_offset * mean_offset).max(0.0);
        let middle = self.shift + mean_offset;
        let half_width = self.k * variance.sqrt();
        self.value = Some(BollingerOutput { upper: middle + half_width, middle, lower: middle - half_width });
        self.value
    }

    /// Re-centres `shift` on the window mean and rebuilds both sums from the window.
    fn resync(&mut self) {
        self.shift = NeumaierSum::of(self.window.iter()).value() / self.period as f64;
        let shift = self.shift;
        self.sum = NeumaierSum::of(self.window.iter().map(|v| v - shift));
        self.sum_squares = NeumaierSum::of(self.window.iter().map(|v| (v - shift) * (v - shift)));
        self.slides_since_resync = 0;
    }

    /// Like [`BollingerBands::update`], but rejects a non-finite `x` and leaves the state unchanged.
    pub fn try_update(&mut self, x: f64) -> Result<Option<BollingerOutput>, IndicatorError> {
        check_finite(Self::NAME, "x", x)?;
        Ok(self.update(x))
    }

    pub fn value(&self) -> Option<BollingerOutput> {
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

    /// The band multiplier.
    pub fn k(&self) -> f64 {
        self.k
    }

    pub fn reset(&mut self) {
        self.window.clear();
        self.shift = 0.0;
        self.sum = NeumaierSum::default();
        self.sum_squares = NeumaierSum::default();
        self.slides_since_resync = 0;
        self.value = None;
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::indicators::reference::{
        self, Field, TOLERANCE, assert_series, check_series, close_enough, field, lcg_series, prices,
    };

    const FIELDS: [(&str, Field<BollingerOutput>); 3] =
        [("upper", |o| o.upper), ("middle", |o| o.middle), ("lower", |o| o.lower)];

    fn feed(bands: &mut BollingerBands, xs: &[f64]) -> Vec<Option<BollingerOutput>> {
        xs.iter().map(|&x| bands.update(x)).collect()
    }

    #[test]
    fn hand_computed_small_series() {
        // 2,4,4,4,5,5,7,9: mean 5, squared deviations 9,1,1,1,0,0,4,16 sum to 32, population
        // variance 32/8 = 4, std-dev 2. With k = 2: 5 ± 4.
        let xs = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
        let got = feed(&mut BollingerBands::new(8, 2.0).unwrap(), &xs);
        let mut want = vec![None; 7];
        want.push(Some(BollingerOutput { upper: 9.0, middle: 5.0, lower: 1.0 }));
        for (name, f) in FIELDS {
            let label = format!("Bollinger(8, 2) {name} of 2,4,4,4,5,5,7,9");
            assert_series(&label, &field(&got, f), &field(&want, f), 1e-12);
        }

        // k = 0 collapses the bands onto the SMA; a constant window has zero width.
        let flat = feed(&mut BollingerBands::new(3, 0.0).unwrap(), &[1.0, 2.0, 6.0]);
        assert_eq!(flat[2], Some(BollingerOutput { upper: 3.0, middle: 3.0, lower: 3.0 }), "k = 0");
        let constant = feed(&mut BollingerBands::new(3, 2.0).unwrap(), &[4.25; 5]);
        assert_eq!(constant[4], Some(BollingerOutput { upper: 4.25, middle: 4.25, lower: 4.25 }), "constant window");
    }

    /// Prices near 1e8 moving by thousandths: `E[x²] - E[x]²` would be rounding noise here
    /// (E[x²] ≈ 1e16, whose ulp is 2, against a variance near 1e-6). The shifted sums must
    /// match a two-pass computation to a small fraction of the std-dev.
    #[test]
    fn no_cancellation_far_from_zero() {
        const PERIOD: usize = 20;
        let xs = lcg_series(10_000, 11, 1e8, 2e-3);
        let got = feed(&mut BollingerBands::new(PERIOD, 1.0).unwrap(), &xs);
        let want = reference::bollinger(&xs, PERIOD, 1.0);
        for (step, (got, want)) in got.iter().zip(&want).enumerate().skip(PERIOD - 1) {
            let (got, want) = (got.unwrap(), want.unwrap());
            let (got_width, want_width) = (got.upper - got.middle, want.upper - want.middle);
            assert!(
                (got_width - want_width).abs() <= 1e-4 * want_width,
                "input {}: std-dev {got_width:e}, two-pass {want_width:e}",
                step + 1
            );
        }
    }

    /// A bad first tick of 1e12 becomes the initial shift. Until re-centring, the sums of
    /// `(x - 1e12)²` for prices near 100 carry no information about their spread; the rebuild
    /// every `period` slides must restore accurate bands once the tick has left the window.
    #[test]
    fn recovers_from_an_outlier_by_re_centring() {
        const PERIOD: usize = 10;
        let mut xs = vec![1e12];
        xs.extend(lcg_series(100, 5, 100.0, 1.0));
        let got = feed(&mut BollingerBands::new(PERIOD, 2.0).unwrap(), &xs);
        let want = reference::bollinger(&xs, PERIOD, 2.0);
        // The outlier leaves with input PERIOD + 1; the next rebuild is at most PERIOD slides later.
        let recovered = 2 * PERIOD;
        for (name, f) in FIELDS {
            let want = field(&want[recovered..], f);
            let label =
                format!("Bollinger(10, 2) {name} after the outlier (input numbers count from input {})", recovered + 1);
            assert_series(&label, &field(&got[recovered..], f), &want, 1e-12);
        }
    }

    #[test]
    fn no_drift_over_a_million_updates() {
        const PERIOD: usize = 20;
        let xs = lcg_series(1_000_000, 3, 1e5, 50.0);
        let mut bands = BollingerBands::new(PERIOD, 2.0).unwrap();
        xs.iter().for_each(|&x| _ = bands.update(x));
        let got = bands.value().unwrap();
        let want = reference::bollinger(&xs[xs.len() - PERIOD..], PERIOD, 2.0)[PERIOD - 1].unwrap();
        for (name, got, want) in
            [("upper", got.upper, want.upper), ("middle", got.middle, want.middle), ("lower", got.lower, want.lower)]
        {
            assert!(close_enough(got, want, 1e-13), "{name}: got {got}, want {want}");
        }
    }

    proptest! {
        #![proptest_config(reference::proptest_config(128))]

        #[test]
        fn matches_reference(xs in prices(300), period in 1usize..40, k in 0.0f64..4.0) {
            let mut bands = BollingerBands::new(period, k).unwrap();
            let got = feed(&mut bands, &xs);
            let want = reference::bollinger(&xs, period, k);
            let label = format!("Bollinger({period}, {k})");
            for (name, f) in FIELDS {
                check_series(&format!("{label} {name}"), &field(&got, f), &field(&want, f), TOLERANCE)?;
            }
            prop_assert_eq!(bands.value(), got.last().copied().flatten());
        }
    }
}
