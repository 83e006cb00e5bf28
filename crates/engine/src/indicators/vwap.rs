//! Volume-weighted average price since the last session reset.

use super::IndicatorError;
use super::error::{check_bar, check_finite};
use super::window::NeumaierSum;

/// Cumulative VWAP: `Σ price·volume / Σ volume` over every input since construction or the last
/// [`Vwap::reset`]. Call `reset` at each session start; nothing resets it implicitly.
///
/// There is no window, so both sums are Neumaier-compensated (see the module docs) to stay
/// accurate over a long session. Zero-volume inputs change nothing; the output is `None` until
/// the cumulative volume is positive.
#[derive(Debug, Clone, Default)]
pub struct Vwap {
    price_volume: NeumaierSum,
    volume: NeumaierSum,
    value: Option<f64>,
}

impl Vwap {
    const NAME: &'static str = "VWAP";

    /// VWAP has no parameters, so construction cannot fail.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a trade or bar at `price` with `volume`; returns the VWAP once any volume was seen.
    ///
    /// Trusts its input (see the module docs); [`Vwap::try_update`] validates.
    ///
    /// # Panics
    /// In debug builds only, if `price` or `volume` is not finite.
    #[inline]
    pub fn update(&mut self, price: f64, volume: f64) -> Option<f64> {
        debug_assert!(price.is_finite() && volume.is_finite(), "VWAP: non-finite input price {price}, volume {volume}");
        self.price_volume.add(price * volume);
        self.volume.add(volume);
        let volume = self.volume.value();
        if volume > 0.0 {
            self.value = Some(self.price_volume.value() / volume);
        }
        self.value
    }

    /// Adds a bar at its typical price `(high + low + close) / 3`.
    ///
    /// # Panics
    /// In debug builds only, if an input is not finite.
    #[inline]
    pub fn update_bar(&mut self, high: f64, low: f64, close: f64, volume: f64) -> Option<f64> {
        self.update((high + low + close) / 3.0, volume)
    }

    /// Like [`Vwap::update`], but rejects a non-finite price or volume and a negative volume,
    /// leaving the state unchanged.
    pub fn try_update(&mut self, price: f64, volume: f64) -> Result<Option<f64>, IndicatorError> {
        check_finite(Self::NAME, "price", price)?;
        check_volume(volume)?;
        Ok(self.update(price, volume))
    }

    /// Like [`Vwap::update_bar`], but rejects non-finite or inconsistent bars and bad volumes,
    /// leaving the state unchanged.
    pub fn try_update_bar(
        &mut self,
        high: f64,
        low: f64,
        close: f64,
        volume: f64,
    ) -> Result<Option<f64>, IndicatorError> {
        check_bar(Self::NAME, high, low, close)?;
        check_volume(volume)?;
        Ok(self.update_bar(high, low, close, volume))
    }

    pub fn value(&self) -> Option<f64> {
        self.value
    }

    pub fn is_ready(&self) -> bool {
        self.value.is_some()
    }

    /// Inputs needed before the first output: 1 (the first with positive volume).
    pub fn warmup_period(&self) -> usize {
        1
    }

    /// The cumulative volume since the last reset.
    pub fn cumulative_volume(&self) -> f64 {
        self.volume.value()
    }

    /// Starts a new session.
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

fn check_volume(volume: f64) -> Result<(), IndicatorError> {
    check_finite(Vwap::NAME, "volume", volume)?;
    if volume < 0.0 { Err(IndicatorError::NegativeVolume { indicator: Vwap::NAME, volume }) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::indicators::reference::{self, TOLERANCE, assert_series, check_series, prices, volumes};

    #[test]
    fn hand_computed_small_series() {
        let mut vwap = Vwap::new();
        // Zero volume first: nothing traded, no VWAP. Then 100 @ 10 -> 10.
        // Then 300 @ 11 -> (1000 + 3300) / 400 = 10.75. Then 0 @ 50 changes nothing.
        let got: Vec<Option<f64>> =
            [(9.0, 0.0), (10.0, 100.0), (11.0, 300.0), (50.0, 0.0)].iter().map(|&(p, v)| vwap.update(p, v)).collect();
        assert_series("VWAP by trade", &got, &[None, Some(10.0), Some(10.75), Some(10.75)], 1e-12);
        assert_eq!(vwap.cumulative_volume(), 400.0);

        // Typical prices (12+9+9)/3 = 10 and (13+10+10)/3 = 11, volumes 1 and 3: (10 + 33) / 4 = 10.75.
        let mut by_bar = Vwap::new();
        let got = [by_bar.update_bar(12.0, 9.0, 9.0, 1.0), by_bar.update_bar(13.0, 10.0, 10.0, 3.0)];
        assert_series("VWAP by bar (typical price)", &got, &[Some(10.0), Some(10.75)], 1e-12);
    }

    #[test]
    fn reset_starts_a_new_session() {
        let mut vwap = Vwap::new();
        vwap.update(100.0, 5.0);
        vwap.reset();
        assert_eq!(vwap.value(), None, "no VWAP before the new session trades");
        assert_eq!(vwap.cumulative_volume(), 0.0);
        assert_eq!(vwap.update(20.0, 1.0), Some(20.0), "the old session's trades are forgotten");
    }

    #[test]
    fn try_update_validates_price_and_volume() {
        let cases: [(&str, f64, f64, &str); 3] = [
            ("price NaN", f64::NAN, 1.0, "VWAP: input price must be finite, got NaN"),
            ("volume +inf", 10.0, f64::INFINITY, "VWAP: input volume must be finite, got inf"),
            ("volume negative", 10.0, -0.5, "VWAP: volume must be non-negative, got -0.5"),
        ];
        for (name, price, volume, message) in cases {
            let mut vwap = Vwap::new();
            vwap.update(10.0, 2.0);
            match vwap.try_update(price, volume) {
                Ok(output) => panic!("{name}: accepted, returned {output:?}"),
                Err(err) => assert_eq!(err.to_string(), message, "{name}"),
            }
            assert_eq!((vwap.value(), vwap.cumulative_volume()), (Some(10.0), 2.0), "{name}: state changed");
        }
        assert_eq!(Vwap::new().try_update(10.0, 0.0), Ok(None), "zero volume is valid, and yields no VWAP yet");
    }

    /// Prices and volumes of equal length.
    fn trades() -> impl Strategy<Value = (Vec<f64>, Vec<f64>)> {
        prices(300).prop_flat_map(|p| {
            let n = p.len();
            (Just(p), volumes(n))
        })
    }

    proptest! {
        #![proptest_config(reference::proptest_config(128))]

        #[test]
        fn matches_reference((prices, volumes) in trades()) {
            let mut vwap = Vwap::new();
            let got: Vec<Option<f64>> = prices.iter().zip(&volumes).map(|(&p, &v)| vwap.update(p, v)).collect();
            check_series("VWAP", &got, &reference::vwap(&prices, &volumes), TOLERANCE)?;
            prop_assert_eq!(vwap.value(), got.last().copied().flatten());
        }
    }
}
