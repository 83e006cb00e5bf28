//! Streaming technical indicators, updated once per input (bar, close or trade) in O(1).
//!
//! Strategies call `update` on every bar, so every indicator here does constant work per input
//! (amortized constant for [`Highest`]/[`Lowest`], whose monotonic deque may pop several
//! entries at once, and for the windowed sums' periodic rebuild described below) and never
//! allocates after construction: windows are ring buffers reserved by `new` and kept by `reset`.
//!
//! # Conventions
//!
//! - **Units.** Inputs and outputs are `f64`. Indicators know nothing of `model` types; callers
//!   convert prices once at the edge. Bar inputs are positional `(high, low, close)`.
//! - **Shape.** Every indicator has `new(params) -> Result<Self, IndicatorError>` (a zero period,
//!   MACD `fast >= slow`, a non-finite or negative Bollinger `k` are errors; [`Vwap`] has no
//!   parameters and a plain `new()`), `update(input) -> Option<Output>`, `value()`, `is_ready()`,
//!   `reset()` and `warmup_period()`.
//! - **Warmup.** `update` returns `None` until enough input was seen; `warmup_period()` is the
//!   number of inputs up to and including the one that produces the first `Some`:
//!
//!   | indicator | first output on input number |
//!   |---|---|
//!   | [`Sma`], [`Ema`], [`Wma`], [`BollingerBands`], [`Atr`], [`Highest`], [`Lowest`] | `period` |
//!   | [`Rsi`] | `period + 1` (it needs `period` changes) |
//!   | [`Macd`] | `slow + signal - 1` (34 for 12/26/9) |
//!   | [`Stochastic`] | `k_period + d_period - 1` |
//!   | [`Vwap`] | the first input with positive volume |
//!
//!   Once ready, an indicator stays ready until `reset`.
//! - **Seeding.** [`Ema`] (and so [`Macd`]'s three EMAs) starts from the simple mean of its first
//!   `period` inputs; [`Rsi`] and [`Atr`] start Wilder's smoothing from the simple mean of the
//!   first `period` gains/losses or true ranges. None of them is seeded with a single input.
//! - **Reset.** `reset()` returns an indicator to its freshly constructed state (parameters and
//!   buffers kept), e.g. at a session start for [`Vwap`] or after a data gap.
//! - **Non-finite input.** `update` is the hot path and trusts its input: it checks finiteness
//!   only with `debug_assert!`, so a NaN or infinity panics in debug builds and, in release
//!   builds, can corrupt the outputs until `reset`. Where input may be dirty, use the `try_update*`
//!   methods: they reject NaN/∞ (and, for bars, `low <= close <= high` violations, and negative
//!   volume) with an [`IndicatorError`] and leave the state untouched.
//!
//! # Numerical accuracy
//!
//! - **Windowed sums** ([`Sma`], [`Wma`], [`BollingerBands`], the %D of [`Stochastic`]) add the
//!   entering value and subtract the leaving one. Plain f64 running sums drift over millions of
//!   updates and, worse, lose small values entirely while a large one is in the window, leaving
//!   an error behind when it leaves. So the sums are compensated (Neumaier-style: the exact
//!   rounding error of each addition, and for [`Wma`] of each `weight * x` product, is kept in a
//!   second accumulator), which makes the error independent of the magnitudes that passed
//!   through; *and* they are rebuilt from the ring buffer every `period` slides, which bounds the
//!   second-order error that compensation lets through by one window's worth of updates instead
//!   of the whole history. The rebuild costs O(period) once per `period` updates: amortized O(1).
//! - **Variance** ([`BollingerBands`]) is computed from sums of `x - shift`, re-centring `shift`
//!   on the window mean at each rebuild, to avoid the cancellation of `E[x²] - E[x]²`. Its
//!   accuracy therefore depends on `shift` being near current prices: after an extreme outlier
//!   has left the window the bands can be off until the next rebuild (at most `period` updates).
//! - **Recursive smoothers** ([`Ema`], Wilder's averages in [`Rsi`] and [`Atr`]) need nothing:
//!   an error made at one step is multiplied by a factor below 1 at every later step.
//! - **Cumulative sums** ([`Vwap`]) have no window to rebuild from and are Neumaier-compensated.

mod atr;
mod bollinger;
mod error;
mod extrema;
mod macd;
mod moving_average;
mod rsi;
mod stochastic;
mod vwap;
mod window;

#[cfg(test)]
mod reference;

pub use atr::Atr;
pub use bollinger::{BollingerBands, BollingerOutput};
pub use error::IndicatorError;
pub use extrema::{Highest, Lowest};
pub use macd::{Macd, MacdOutput};
pub use moving_average::{Ema, Sma, Wma};
pub use rsi::Rsi;
pub use stochastic::{Stochastic, StochasticOutput};
pub use vwap::Vwap;

/// Properties every indicator shares (warmup, readiness, reset, constructor and input
/// validation), checked over one table of all of them. Each indicator's own file tests its
/// values against the references in `reference.rs`.
#[cfg(test)]
mod tests {
    use super::reference::{Bar, lcg_series};
    use super::*;

    /// A uniform view of every indicator for table-driven tests: one bar (and a volume) in, the
    /// output packed into an array (unused slots 0).
    trait Probe {
        fn feed(&mut self, bar: Bar, volume: f64) -> Option<[f64; 3]>;
        fn try_feed(&mut self, bar: Bar, volume: f64) -> Result<Option<[f64; 3]>, IndicatorError>;
        fn value(&self) -> Option<[f64; 3]>;
        fn is_ready(&self) -> bool;
        fn warmup_period(&self) -> usize;
        fn reset(&mut self);
    }

    type AnyIndicator = Box<dyn Probe>;

    macro_rules! probe {
        ($ty:ty, |$s:ident, $bar:ident, $volume:ident| $update:ident($($arg:expr),*), |$o:ident| $pack:expr) => {
            impl Probe for $ty {
                fn feed(&mut self, $bar: Bar, $volume: f64) -> Option<[f64; 3]> {
                    let $s = self;
                    $s.$update($($arg),*).map(|$o| $pack)
                }
                fn try_feed(&mut self, $bar: Bar, $volume: f64) -> Result<Option<[f64; 3]>, IndicatorError> {
                    let $s = self;
                    probe!(@try $update, $s, $($arg),*).map(|output| output.map(|$o| $pack))
                }
                fn value(&self) -> Option<[f64; 3]> {
                    <$ty>::value(self).map(|$o| $pack)
                }
                fn is_ready(&self) -> bool {
                    <$ty>::is_ready(self)
                }
                fn warmup_period(&self) -> usize {
                    <$ty>::warmup_period(self)
                }
                fn reset(&mut self) {
                    <$ty>::reset(self)
                }
            }
        };
        (@try update, $s:ident, $($arg:expr),*) => { $s.try_update($($arg),*) };
        (@try update_bar, $s:ident, $($arg:expr),*) => { $s.try_update_bar($($arg),*) };
    }

    probe!(Sma, |s, bar, _volume| update(bar.close), |o| [o, 0.0, 0.0]);
    probe!(Ema, |s, bar, _volume| update(bar.close), |o| [o, 0.0, 0.0]);
    probe!(Wma, |s, bar, _volume| update(bar.close), |o| [o, 0.0, 0.0]);
    probe!(Rsi, |s, bar, _volume| update(bar.close), |o| [o, 0.0, 0.0]);
    probe!(Macd, |s, bar, _volume| update(bar.close), |o| [o.macd, o.signal, o.histogram]);
    probe!(BollingerBands, |s, bar, _volume| update(bar.close), |o| [o.upper, o.middle, o.lower]);
    probe!(Atr, |s, bar, _volume| update(bar.high, bar.low, bar.close), |o| [o, 0.0, 0.0]);
    probe!(Stochastic, |s, bar, _volume| update(bar.high, bar.low, bar.close), |o| [o.k, o.d, 0.0]);
    probe!(Vwap, |s, bar, volume| update_bar(bar.high, bar.low, bar.close, volume), |o| [o, 0.0, 0.0]);
    probe!(Highest, |s, bar, _volume| update(bar.close), |o| [o, 0.0, 0.0]);
    probe!(Lowest, |s, bar, _volume| update(bar.close), |o| [o, 0.0, 0.0]);

    /// Every indicator, named, with the input number of its first output.
    fn all() -> Vec<(&'static str, usize, AnyIndicator)> {
        vec![
            ("SMA(5)", 5, Box::new(Sma::new(5).unwrap())),
            ("SMA(1)", 1, Box::new(Sma::new(1).unwrap())),
            ("EMA(5)", 5, Box::new(Ema::new(5).unwrap())),
            ("WMA(5)", 5, Box::new(Wma::new(5).unwrap())),
            ("RSI(5)", 6, Box::new(Rsi::new(5).unwrap())),
            ("RSI(1)", 2, Box::new(Rsi::new(1).unwrap())),
            ("MACD(3,6,4)", 9, Box::new(Macd::new(3, 6, 4).unwrap())),
            ("MACD(12,26,9)", 34, Box::new(Macd::default())),
            ("MACD(1,2,1)", 2, Box::new(Macd::new(1, 2, 1).unwrap())),
            ("Bollinger(5, 2)", 5, Box::new(BollingerBands::new(5, 2.0).unwrap())),
            ("ATR(5)", 5, Box::new(Atr::new(5).unwrap())),
            ("Stochastic(5, 3)", 7, Box::new(Stochastic::new(5, 3).unwrap())),
            ("Stochastic(1, 1)", 1, Box::new(Stochastic::new(1, 1).unwrap())),
            ("VWAP", 1, Box::new(Vwap::new())),
            ("Highest(5)", 5, Box::new(Highest::new(5).unwrap())),
            ("Lowest(5)", 5, Box::new(Lowest::new(5).unwrap())),
        ]
    }

    /// Consistent bars around a pseudo-random close near 100, and positive volumes.
    fn bars(len: usize, seed: u64) -> Vec<(Bar, f64)> {
        let closes = lcg_series(len, seed, 100.0, 5.0);
        let spreads = lcg_series(len, seed + 1, 0.5, 0.5);
        let volumes = lcg_series(len, seed + 2, 1000.0, 900.0);
        (0..len)
            .map(|i| {
                (Bar { high: closes[i] + spreads[i], low: closes[i] - spreads[i] / 2.0, close: closes[i] }, volumes[i])
            })
            .collect()
    }

    #[test]
    fn warmup_period_is_the_input_number_of_the_first_output() {
        for (name, expected, mut indicator) in all() {
            assert_eq!(indicator.warmup_period(), expected, "{name}: warmup_period()");
            for (i, (bar, volume)) in bars(60, 1).into_iter().enumerate() {
                let input_number = i + 1;
                let output = indicator.feed(bar, volume);
                assert_eq!(
                    output.is_some(),
                    input_number >= expected,
                    "{name}: output at input {input_number}: {output:?}"
                );
                assert_eq!(indicator.is_ready(), output.is_some(), "{name}: is_ready() at input {input_number}");
                assert_eq!(indicator.value(), output, "{name}: value() at input {input_number}");
            }
        }
    }

    #[test]
    fn reset_restores_the_fresh_state() {
        let fresh_outputs: Vec<Vec<Option<[f64; 3]>>> = all()
            .into_iter()
            .map(|(_, _, mut indicator)| {
                bars(50, 2).into_iter().map(|(bar, volume)| indicator.feed(bar, volume)).collect()
            })
            .collect();
        for ((name, _, mut indicator), fresh) in all().into_iter().zip(fresh_outputs) {
            bars(70, 3).into_iter().for_each(|(bar, volume)| _ = indicator.feed(bar, volume));
            assert!(indicator.is_ready(), "{name}: premise: ready before reset");
            indicator.reset();
            assert!(!indicator.is_ready(), "{name}: is_ready() after reset");
            assert_eq!(indicator.value(), None, "{name}: value() after reset");
            let after_reset: Vec<Option<[f64; 3]>> =
                bars(50, 2).into_iter().map(|(bar, volume)| indicator.feed(bar, volume)).collect();
            // Same arithmetic on the same inputs: bit-for-bit equal, no tolerance.
            assert_eq!(after_reset, fresh, "{name}: outputs after reset differ from a fresh instance");
        }
    }

    #[test]
    fn constructors_reject_invalid_parameters() {
        let cases: [(&str, Result<(), IndicatorError>, &str); 20] = [
            ("SMA period 0", Sma::new(0).map(drop), "SMA: period must be at least 1, got 0"),
            ("EMA period 0", Ema::new(0).map(drop), "EMA: period must be at least 1, got 0"),
            ("WMA period 0", Wma::new(0).map(drop), "WMA: period must be at least 1, got 0"),
            ("RSI period 0", Rsi::new(0).map(drop), "RSI: period must be at least 1, got 0"),
            ("ATR period 0", Atr::new(0).map(drop), "ATR: period must be at least 1, got 0"),
            ("Highest period 0", Highest::new(0).map(drop), "Highest: period must be at least 1, got 0"),
            ("Lowest period 0", Lowest::new(0).map(drop), "Lowest: period must be at least 1, got 0"),
            (
                "Bollinger period 0",
                BollingerBands::new(0, 2.0).map(drop),
                "Bollinger: period must be at least 1, got 0",
            ),
            (
                "Bollinger k NaN",
                BollingerBands::new(20, f64::NAN).map(drop),
                "Bollinger: k must be finite and non-negative, got NaN",
            ),
            (
                "Bollinger k infinite",
                BollingerBands::new(20, f64::INFINITY).map(drop),
                "Bollinger: k must be finite and non-negative, got inf",
            ),
            (
                "Bollinger k negative",
                BollingerBands::new(20, -1.0).map(drop),
                "Bollinger: k must be finite and non-negative, got -1",
            ),
            ("MACD fast 0", Macd::new(0, 26, 9).map(drop), "MACD: fast period must be at least 1, got 0"),
            ("MACD signal 0", Macd::new(12, 26, 0).map(drop), "MACD: signal period must be at least 1, got 0"),
            (
                "MACD fast == slow",
                Macd::new(26, 26, 9).map(drop),
                "MACD: fast period (26) must be less than slow period (26)",
            ),
            (
                "MACD fast > slow",
                Macd::new(26, 12, 9).map(drop),
                "MACD: fast period (26) must be less than slow period (12)",
            ),
            ("Stochastic %K 0", Stochastic::new(0, 3).map(drop), "Stochastic: %K period must be at least 1, got 0"),
            ("Stochastic %D 0", Stochastic::new(14, 0).map(drop), "Stochastic: %D period must be at least 1, got 0"),
            (
                "SMA period usize::MAX",
                Sma::new(usize::MAX).map(drop),
                "SMA: period = 18446744073709551615 is too large to allocate its window",
            ),
            (
                "Stochastic %D usize::MAX",
                Stochastic::new(14, usize::MAX).map(drop),
                "Stochastic: %D period = 18446744073709551615 is too large to allocate its window",
            ),
            (
                "Lowest period usize::MAX",
                Lowest::new(usize::MAX).map(drop),
                "Lowest: period = 18446744073709551615 is too large to allocate its window",
            ),
        ];
        for (name, result, message) in cases {
            match result {
                Ok(()) => panic!("{name}: accepted, want error {message:?}"),
                Err(err) => assert_eq!(err.to_string(), message, "{name}"),
            }
        }
    }

    #[test]
    fn try_update_rejects_bad_input_and_leaves_the_state_unchanged() {
        let good = Bar { high: 101.0, low: 99.0, close: 100.0 };
        let with_close = |close| Bar { close, ..good };
        let cases: [(&str, AnyIndicator, Bar, f64, &str); 17] = [
            (
                "SMA NaN",
                Box::new(Sma::new(3).unwrap()),
                with_close(f64::NAN),
                1.0,
                "SMA: input x must be finite, got NaN",
            ),
            (
                "EMA +inf",
                Box::new(Ema::new(3).unwrap()),
                with_close(f64::INFINITY),
                1.0,
                "EMA: input x must be finite, got inf",
            ),
            (
                "WMA -inf",
                Box::new(Wma::new(3).unwrap()),
                with_close(f64::NEG_INFINITY),
                1.0,
                "WMA: input x must be finite, got -inf",
            ),
            (
                "RSI NaN",
                Box::new(Rsi::new(3).unwrap()),
                with_close(f64::NAN),
                1.0,
                "RSI: input close must be finite, got NaN",
            ),
            (
                "MACD NaN",
                Box::new(Macd::new(2, 3, 2).unwrap()),
                with_close(f64::NAN),
                1.0,
                "MACD: input x must be finite, got NaN",
            ),
            (
                "Bollinger NaN",
                Box::new(BollingerBands::new(3, 2.0).unwrap()),
                with_close(f64::NAN),
                1.0,
                "Bollinger: input x must be finite, got NaN",
            ),
            (
                "Highest NaN",
                Box::new(Highest::new(3).unwrap()),
                with_close(f64::NAN),
                1.0,
                "Highest: input x must be finite, got NaN",
            ),
            (
                "Lowest NaN",
                Box::new(Lowest::new(3).unwrap()),
                with_close(f64::NAN),
                1.0,
                "Lowest: input x must be finite, got NaN",
            ),
            (
                "ATR high NaN",
                Box::new(Atr::new(3).unwrap()),
                Bar { high: f64::NAN, ..good },
                1.0,
                "ATR: input high must be finite, got NaN",
            ),
            (
                "ATR low above high",
                Box::new(Atr::new(3).unwrap()),
                Bar { high: 9.0, low: 10.0, close: 9.5 },
                1.0,
                "ATR: inconsistent bar (need low <= close <= high): high 9, low 10, close 9.5",
            ),
            (
                "ATR close above high",
                Box::new(Atr::new(3).unwrap()),
                Bar { high: 10.0, low: 9.0, close: 10.5 },
                1.0,
                "ATR: inconsistent bar (need low <= close <= high): high 10, low 9, close 10.5",
            ),
            (
                "Stochastic close below low",
                Box::new(Stochastic::new(3, 2).unwrap()),
                Bar { high: 10.0, low: 9.0, close: 8.5 },
                1.0,
                "Stochastic: inconsistent bar (need low <= close <= high): high 10, low 9, close 8.5",
            ),
            (
                "Stochastic low NaN",
                Box::new(Stochastic::new(3, 2).unwrap()),
                Bar { low: f64::NAN, ..good },
                1.0,
                "Stochastic: input low must be finite, got NaN",
            ),
            (
                "VWAP close NaN",
                Box::new(Vwap::new()),
                with_close(f64::NAN),
                1.0,
                "VWAP: input close must be finite, got NaN",
            ),
            ("VWAP volume negative", Box::new(Vwap::new()), good, -1.0, "VWAP: volume must be non-negative, got -1"),
            ("VWAP volume NaN", Box::new(Vwap::new()), good, f64::NAN, "VWAP: input volume must be finite, got NaN"),
            (
                "VWAP inconsistent bar",
                Box::new(Vwap::new()),
                Bar { high: 1.0, low: 2.0, close: 1.5 },
                1.0,
                "VWAP: inconsistent bar (need low <= close <= high): high 1, low 2, close 1.5",
            ),
        ];
        let history = bars(10, 4);
        for (name, mut indicator, bad_bar, bad_volume, message) in cases {
            for &(bar, volume) in &history {
                indicator.try_feed(bar, volume).unwrap_or_else(|err| panic!("{name}: good input rejected: {err}"));
            }
            let before = indicator.value();
            assert!(before.is_some(), "{name}: premise: ready before the bad input");
            match indicator.try_feed(bad_bar, bad_volume) {
                Ok(output) => panic!("{name}: accepted, returned {output:?}; want {message:?}"),
                Err(err) => assert_eq!(err.to_string(), message, "{name}"),
            }
            assert_eq!(indicator.value(), before, "{name}: value() changed by a rejected input");
            // The next good input must give what it gives to a twin that never saw the bad one.
            let mut twin = all_by_name(name);
            for &(bar, volume) in &history {
                twin.feed(bar, volume);
            }
            assert_eq!(indicator.feed(good, 1.0), twin.feed(good, 1.0), "{name}: state changed by a rejected input");
        }
    }

    /// A fresh indicator configured like the `try_update` case called `name`.
    fn all_by_name(name: &str) -> AnyIndicator {
        match name.split(' ').next() {
            Some("SMA") => Box::new(Sma::new(3).unwrap()),
            Some("EMA") => Box::new(Ema::new(3).unwrap()),
            Some("WMA") => Box::new(Wma::new(3).unwrap()),
            Some("RSI") => Box::new(Rsi::new(3).unwrap()),
            Some("MACD") => Box::new(Macd::new(2, 3, 2).unwrap()),
            Some("Bollinger") => Box::new(BollingerBands::new(3, 2.0).unwrap()),
            Some("Highest") => Box::new(Highest::new(3).unwrap()),
            Some("Lowest") => Box::new(Lowest::new(3).unwrap()),
            Some("ATR") => Box::new(Atr::new(3).unwrap()),
            Some("Stochastic") => Box::new(Stochastic::new(3, 2).unwrap()),
            Some("VWAP") => Box::new(Vwap::new()),
            _ => panic!("no twin for case {name}"),
        }
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "SMA: non-finite input NaN")]
    fn update_asserts_finite_input_in_debug_builds() {
        Sma::new(3).unwrap().update(f64::NAN);
    }

    #[test]
    fn indicator_error_is_cheap_to_pass_around() {
        // Copy + 'static + Send + Sync: strategies can store and forward it freely.
        fn assert_traits<T: Copy + Send + Sync + std::error::Error + 'static>() {}
        assert_traits::<IndicatorError>();
    }
}
