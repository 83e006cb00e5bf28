//! The one error type of the indicators module.

/// Why an indicator could not be built, or why an input was rejected by a `try_update*` method.
///
/// Every variant names the indicator (`"SMA"`, `"RSI"`, …) so a message read in a log says where it came from.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum IndicatorError {
    /// A period (window length) of zero: no indicator is defined over an empty window.
    #[error("{indicator}: {parameter} must be at least 1, got 0")]
    ZeroPeriod { indicator: &'static str, parameter: &'static str },

    /// The window buffer for this period could not be allocated.
    #[error("{indicator}: {parameter} = {period} is too large to allocate its window")]
    PeriodTooLarge { indicator: &'static str, parameter: &'static str, period: usize },

    /// MACD needs a fast EMA that is strictly faster than the slow one.
    #[error("MACD: fast period ({fast}) must be less than slow period ({slow})")]
    FastNotBelowSlow { fast: usize, slow: usize },

    /// A band-width multiplier (Bollinger `k`) that is NaN, infinite or negative.
    #[error("{indicator}: {parameter} must be finite and non-negative, got {value}")]
    InvalidMultiplier { indicator: &'static str, parameter: &'static str, value: f64 },

    /// A NaN or infinite input; the indicator's state was left unchanged.
    #[error("{indicator}: input {input} must be finite, got {value}")]
    NonFiniteInput { indicator: &'static str, input: &'static str, value: f64 },

    /// A bar whose prices contradict each other; the indicator's state was left unchanged.
    #[error("{indicator}: inconsistent bar (need low <= close <= high): high {high}, low {low}, close {close}")]
    InconsistentBar { indicator: &'static str, high: f64, low: f64, close: f64 },

    /// A negative traded volume; the indicator's state was left unchanged.
    #[error("{indicator}: volume must be non-negative, got {volume}")]
    NegativeVolume { indicator: &'static str, volume: f64 },
}

/// Rejects a zero period.
pub(crate) fn check_period(
    indicator: &'static str,
    parameter: &'static str,
    period: usize,
) -> Result<(), IndicatorError> {
    if period == 0 { Err(IndicatorError::ZeroPeriod { indicator, parameter }) } else { Ok(()) }
}

/// Rejects NaN and ±∞.
#[inline]
pub(crate) fn check_finite(indicator: &'static str, input: &'static str, value: f64) -> Result<(), IndicatorError> {
    if value.is_finite() { Ok(()) } else { Err(IndicatorError::NonFiniteInput { indicator, input, value }) }
}

/// Rejects non-finite prices and bars that break `low <= close <= high`.
#[inline]
pub(crate) fn check_bar(indicator: &'static str, high: f64, low: f64, close: f64) -> Result<(), IndicatorError> {
    check_finite(indicator, "high", high)?;
    check_finite(indicator, "low", low)?;
    check_finite(indicator, "close", close)?;
    if low <= close && close <= high {
        Ok(())
    } else {
        Err(IndicatorError::InconsistentBar { indicator, high, low, close })
    }
}
