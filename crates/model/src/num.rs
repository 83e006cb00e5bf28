//! Exact decimal numbers for prices, quantities and money.
//!
//! Every value is a signed integer count of `10^-9` units ([`FIXED_PRECISION`]
//! decimals). Prices and quantities fit in `i64` (up to about 9.2 billion);
//! money, which accumulates products of the two, is `i128`. Values are parsed
//! from and printed as decimal strings, never through `f64`, and serialize as
//! strings so JSON readers cannot round them.
//!
//! Arithmetic that can overflow is checked. Multiplying a price by a quantity
//! yields 18 decimals, which are rounded half-to-even back to 9.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Decimal places carried by every fixed-point value.
pub const FIXED_PRECISION: u8 = 9;
/// `10^FIXED_PRECISION`: the raw value of `1`.
pub const FIXED_SCALE: i64 = 1_000_000_000;
const SCALE_I128: i128 = FIXED_SCALE as i128;

/// Why a decimal string could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseNumberError {
    #[error("empty number")]
    Empty,
    #[error("'{0}' is not a decimal number (expected digits with an optional sign and '.')")]
    Invalid(String),
    #[error("'{0}' has more than 9 decimal places")]
    TooPrecise(String),
    #[error("'{0}' is out of range")]
    OutOfRange(String),
    #[error("'{0}' must not be negative")]
    Negative(String),
}

/// Parses a plain decimal (`-12.345`, `+7`, `.5`) into a raw `i128` at scale `10^9`.
///
/// Exponents, thousands separators, `NaN` and infinities are refused. Extra
/// fractional digits are accepted only when they are zeros.
pub fn parse_fixed_i128(text: &str) -> Result<i128, ParseNumberError> {
    let bytes = text.as_bytes();
    if bytes.is_empty() {
        return Err(ParseNumberError::Empty);
    }
    let invalid = || ParseNumberError::Invalid(text.to_string());
    let (negative, digits) = match bytes[0] {
        b'-' => (true, &bytes[1..]),
        b'+' => (false, &bytes[1..]),
        _ => (false, bytes),
    };
    if digits.is_empty() {
        return Err(invalid());
    }
    let mut int_part: i128 = 0;
    let mut frac_part: i128 = 0;
    let mut frac_digits: u32 = 0;
    let mut seen_dot = false;
    let mut seen_digit = false;
    for &b in digits {
        match b {
            b'0'..=b'9' => {
                seen_digit = true;
                let d = i128::from(b - b'0');
                if seen_dot {
                    if frac_digits < u32::from(FIXED_PRECISION) {
                        frac_part = frac_part * 10 + d;
                        frac_digits += 1;
                    } else if d != 0 {
                        return Err(ParseNumberError::TooPrecise(text.to_string()));
                    }
                } else {
                    int_part = int_part
                        .checked_mul(10)
                        .and_then(|v| v.checked_add(d))
                        .filter(|v| *v < i128::MAX / SCALE_I128)
                        .ok_or_else(|| ParseNumberError::OutOfRange(text.to_string()))?;
                }
            }
            b'.' if !seen_dot => seen_dot = true,
            _ => return Err(invalid()),
        }
    }
    if !seen_digit {
        return Err(invalid());
    }
    let raw = int_part * SCALE_I128 + frac_part * 10i128.pow(u32::from(FIXED_PRECISION) - frac_digits);
    Ok(if negative { -raw } else { raw })
}

/// Fast path for bulk input (CSV): parses plain ASCII decimals of at most 18
/// integer digits into a raw `i64` without allocating or validating UTF-8.
/// Returns `None` for anything unusual; callers then use [`parse_fixed_i64`]
/// for the exact error message.
#[must_use]
#[inline]
pub fn parse_fixed_ascii(bytes: &[u8]) -> Option<i64> {
    let (negative, digits) = match bytes.first()? {
        b'-' => (true, &bytes[1..]),
        b'+' => (false, &bytes[1..]),
        _ => (false, bytes),
    };
    let mut int_part: i64 = 0;
    let mut i = 0;
    while i < digits.len() && digits[i].is_ascii_digit() {
        if i >= 18 {
            return None;
        }
        int_part = int_part * 10 + i64::from(digits[i] - b'0');
        i += 1;
    }
    let int_digits = i;
    let mut frac: i64 = 0;
    let mut frac_digits: u32 = 0;
    if i < digits.len() {
        if digits[i] != b'.' {
            return None;
        }
        i += 1;
        while i < digits.len() {
            let d = digits[i];
            if !d.is_ascii_digit() || frac_digits >= u32::from(FIXED_PRECISION) {
                return None;
            }
            frac = frac * 10 + i64::from(d - b'0');
            frac_digits += 1;
            i += 1;
        }
    }
    if int_digits + frac_digits as usize == 0 {
        return None;
    }
    let raw =
        int_part.checked_mul(FIXED_SCALE)?.checked_add(frac * 10i64.pow(u32::from(FIXED_PRECISION) - frac_digits))?;
    Some(if negative { -raw } else { raw })
}

/// Parses into a raw `i64` at scale `10^9`, refusing values outside `i64`.
pub fn parse_fixed_i64(text: &str) -> Result<i64, ParseNumberError> {
    let raw = parse_fixed_i128(text)?;
    i64::try_from(raw).map_err(|_| ParseNumberError::OutOfRange(text.to_string()))
}

/// Writes a raw fixed-point value as the shortest exact decimal.
fn write_fixed(f: &mut fmt::Formatter<'_>, raw: i128) -> fmt::Result {
    let sign = if raw < 0 { "-" } else { "" };
    let abs = raw.unsigned_abs();
    let scale = SCALE_I128.unsigned_abs();
    let int = abs / scale;
    let frac = abs % scale;
    if frac == 0 {
        return write!(f, "{sign}{int}");
    }
    let mut digits = format!("{frac:09}");
    while digits.ends_with('0') {
        digits.pop();
    }
    write!(f, "{sign}{int}.{digits}")
}

/// Formats a raw value with exactly `decimals` places (rounding half-to-even when cutting).
#[must_use]
pub fn format_fixed(raw: i128, decimals: u8) -> String {
    let decimals = decimals.min(FIXED_PRECISION);
    let cut = 10i128.pow(u32::from(FIXED_PRECISION - decimals));
    let rounded = div_round_half_even(raw, cut);
    let sign = if rounded < 0 { "-" } else { "" };
    let abs = rounded.unsigned_abs();
    let unit = 10u128.pow(u32::from(decimals));
    let int = abs / unit;
    if decimals == 0 {
        return format!("{sign}{int}");
    }
    let frac = abs % unit;
    format!("{sign}{int}.{frac:0width$}", width = usize::from(decimals))
}

/// `n / d` rounded half-to-even; `d` must be positive.
#[must_use]
pub fn div_round_half_even(n: i128, d: i128) -> i128 {
    debug_assert!(d > 0);
    let q = n.div_euclid(d);
    let r = n.rem_euclid(d);
    let twice = r * 2;
    if twice > d || (twice == d && q % 2 != 0) { q + 1 } else { q }
}

/// Which way to round a value onto an increment (a tick or a lot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoundingMode {
    /// Toward negative infinity.
    Down,
    /// Toward positive infinity.
    Up,
    /// To the nearest increment, ties to even.
    Nearest,
}

/// Rounds `raw` onto a multiple of `increment` (which must be positive).
#[must_use]
pub fn round_to_increment(raw: i64, increment: i64, mode: RoundingMode) -> i64 {
    debug_assert!(increment > 0);
    let (n, d) = (i128::from(raw), i128::from(increment));
    let units = match mode {
        RoundingMode::Down => n.div_euclid(d),
        RoundingMode::Up => -(-n).div_euclid(d),
        RoundingMode::Nearest => div_round_half_even(n, d),
    };
    // A multiple of a positive i64 increment that started inside i64 stays inside
    // it except at the very edge; saturate there rather than wrap.
    i64::try_from(units * d).unwrap_or(if units > 0 { i64::MAX } else { i64::MIN })
}

macro_rules! fixed_i64_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(i64);

        impl $name {
            /// Zero.
            pub const ZERO: Self = Self(0);
            /// One whole unit.
            pub const ONE: Self = Self(FIXED_SCALE);

            /// Wraps a raw count of `10^-9` units.
            #[must_use]
            pub const fn from_raw(raw: i64) -> Self {
                Self(raw)
            }

            /// A whole number of units.
            ///
            /// # Panics
            /// When `units * 10^9` overflows `i64`; use [`Self::new_checked`] for input.
            #[must_use]
            pub const fn from_int(units: i64) -> Self {
                match units.checked_mul(FIXED_SCALE) {
                    Some(raw) => Self(raw),
                    None => panic!("fixed-point value out of range"),
                }
            }

            /// A whole number of units, or `None` when out of range.
            #[must_use]
            pub const fn new_checked(units: i64) -> Option<Self> {
                match units.checked_mul(FIXED_SCALE) {
                    Some(raw) => Some(Self(raw)),
                    None => None,
                }
            }

            /// The raw count of `10^-9` units.
            #[must_use]
            pub const fn raw(self) -> i64 {
                self.0
            }

            /// Parses a decimal string.
            pub fn parse(text: &str) -> Result<Self, ParseNumberError> {
                parse_fixed_i64(text.trim()).map(Self)
            }

            #[must_use]
            pub const fn is_zero(self) -> bool {
                self.0 == 0
            }

            #[must_use]
            pub const fn is_positive(self) -> bool {
                self.0 > 0
            }

            #[must_use]
            pub const fn is_negative(self) -> bool {
                self.0 < 0
            }

            #[must_use]
            pub const fn abs(self) -> Self {
                Self(self.0.abs())
            }

            #[must_use]
            pub fn checked_add(self, other: Self) -> Option<Self> {
                self.0.checked_add(other.0).map(Self)
            }

            #[must_use]
            pub fn checked_sub(self, other: Self) -> Option<Self> {
                self.0.checked_sub(other.0).map(Self)
            }

            #[must_use]
            pub fn checked_neg(self) -> Option<Self> {
                self.0.checked_neg().map(Self)
            }

            /// Rounds onto a multiple of `increment` (a positive value).
            #[must_use]
            pub fn round_to(self, increment: Self, mode: RoundingMode) -> Self {
                Self(round_to_increment(self.0, increment.0, mode))
            }

            /// Whether this value is an exact multiple of `increment`.
            #[must_use]
            pub fn is_multiple_of(self, increment: Self) -> bool {
                increment.0 > 0 && self.0 % increment.0 == 0
            }

            /// Lossy view for indicator math and charts only; never for accounting.
            #[must_use]
            #[allow(clippy::cast_precision_loss)]
            pub fn to_f64(self) -> f64 {
                self.0 as f64 / FIXED_SCALE as f64
            }

            /// Prints with exactly `decimals` places.
            #[must_use]
            pub fn to_string_with(self, decimals: u8) -> String {
                format_fixed(i128::from(self.0), decimals)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_fixed(f, i128::from(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}(", stringify!($name))?;
                write_fixed(f, i128::from(self.0))?;
                write!(f, ")")
            }
        }

        impl FromStr for $name {
            type Err = ParseNumberError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

fixed_i64_type!(
    /// A price, exact to 9 decimals. May be negative (spreads, some futures).
    Price
);
fixed_i64_type!(
    /// A quantity of units or contracts, exact to 9 decimals. Signed, so that a
    /// position can hold a short; order quantities are checked to be positive.
    Quantity
);

/// An amount of money, exact to 9 decimals, in `i128` so that sums of
/// notionals cannot overflow in practice.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Money(i128);

impl Money {
    pub const ZERO: Self = Self(0);

    #[must_use]
    pub const fn from_raw(raw: i128) -> Self {
        Self(raw)
    }

    /// A whole number of currency units.
    #[must_use]
    pub const fn from_int(units: i64) -> Self {
        Self(units as i128 * SCALE_I128)
    }

    #[must_use]
    pub const fn raw(self) -> i128 {
        self.0
    }

    pub fn parse(text: &str) -> Result<Self, ParseNumberError> {
        parse_fixed_i128(text.trim()).map(Self)
    }

    #[must_use]
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    #[must_use]
    pub const fn is_negative(self) -> bool {
        self.0 < 0
    }

    #[must_use]
    pub const fn is_positive(self) -> bool {
        self.0 > 0
    }

    #[must_use]
    pub const fn abs(self) -> Self {
        Self(self.0.abs())
    }

    #[must_use]
    pub fn checked_add(self, other: Self) -> Option<Self> {
        self.0.checked_add(other.0).map(Self)
    }

    #[must_use]
    pub fn checked_sub(self, other: Self) -> Option<Self> {
        self.0.checked_sub(other.0).map(Self)
    }

    /// `self * rate`, where `rate` is a fixed-point fraction (0.002 = 0.2 %),
    /// rounded half-to-even. Used for commissions and slippage.
    #[must_use]
    pub fn mul_rate(self, rate: Rate) -> Self {
        Self(div_round_half_even(self.0 * i128::from(rate.raw()), SCALE_I128))
    }

    /// `self * numerator / denominator` rounded half-to-even (for pro-rating).
    ///
    /// # Panics
    /// When `denominator` is zero.
    #[must_use]
    pub fn mul_div(self, numerator: i128, denominator: i128) -> Self {
        assert!(denominator != 0, "mul_div by zero");
        let (n, d) = if denominator < 0 { (-numerator, -denominator) } else { (numerator, denominator) };
        Self(div_round_half_even(self.0 * n, d))
    }

    /// Lossy view for metrics and charts only.
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn to_f64(self) -> f64 {
        self.0 as f64 / SCALE_I128 as f64
    }

    #[must_use]
    pub fn to_string_with(self, decimals: u8) -> String {
        format_fixed(self.0, decimals)
    }
}

impl std::ops::Add for Money {
    type Output = Self;
    /// Money sums are i128 with 9 decimals: overflowing them needs more than
    /// 10^29 currency units, so plain addition is used on the hot path.
    fn add(self, rhs: Self) -> Self {
        Self(self.0 + rhs.0)
    }
}

impl std::ops::Sub for Money {
    type Output = Self;
    fn sub(self, rhs: Self) -> Self {
        Self(self.0 - rhs.0)
    }
}

impl std::ops::Neg for Money {
    type Output = Self;
    fn neg(self) -> Self {
        Self(-self.0)
    }
}

impl std::ops::AddAssign for Money {
    fn add_assign(&mut self, rhs: Self) {
        self.0 += rhs.0;
    }
}

impl std::ops::SubAssign for Money {
    fn sub_assign(&mut self, rhs: Self) {
        self.0 -= rhs.0;
    }
}

impl std::iter::Sum for Money {
    fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
        iter.fold(Self::ZERO, |a, b| a + b)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_fixed(f, self.0)
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Money(")?;
        write_fixed(f, self.0)?;
        write!(f, ")")
    }
}

impl FromStr for Money {
    type Err = ParseNumberError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

fixed_i64_type!(
    /// A dimensionless fraction (0.002 = 0.2 %), exact to 9 decimals: fee
    /// rates, slippage, sizing percentages.
    Rate
);

impl Rate {
    /// A rate from basis points (1 bp = 0.0001).
    #[must_use]
    pub const fn from_bps(bps: i64) -> Self {
        Self::from_raw(bps * (FIXED_SCALE / 10_000))
    }
}

/// Notional value `price * quantity * multiplier`, rounded half-to-even to 9 decimals.
#[must_use]
pub fn notional(price: Price, quantity: Quantity, multiplier: Quantity) -> Money {
    let pq = i128::from(price.raw()) * i128::from(quantity.raw());
    if multiplier.raw() == FIXED_SCALE {
        return Money(div_round_half_even(pq, SCALE_I128));
    }
    // Multiply first and divide once so a multiplier like 100 stays exact.
    Money(div_round_half_even(pq * i128::from(multiplier.raw()), SCALE_I128 * SCALE_I128))
}

impl Price {
    /// This price moved by `rate` in the given direction: `p * (1 + rate)` or
    /// `p * (1 - rate)`, rounded half-to-even to 9 decimals.
    #[must_use]
    pub fn adjusted_by(self, rate: Rate, up: bool) -> Self {
        let factor = if up { SCALE_I128 + i128::from(rate.raw()) } else { SCALE_I128 - i128::from(rate.raw()) };
        let raw = div_round_half_even(i128::from(self.raw()) * factor, SCALE_I128);
        Self::from_raw(i64::try_from(raw).unwrap_or(i64::MAX))
    }

    /// The exact price `money / quantity` (an average), rounded half-to-even.
    /// Returns `None` for a zero quantity or an out-of-range result.
    #[must_use]
    pub fn from_ratio(total: Money, quantity: Quantity, multiplier: Quantity) -> Option<Self> {
        let denom = i128::from(quantity.raw()) * i128::from(multiplier.raw());
        if denom == 0 {
            return None;
        }
        let (n, d) = if denom < 0 { (-total.raw(), -denom) } else { (total.raw(), denom) };
        let raw = div_round_half_even(n * SCALE_I128 * SCALE_I128, d);
        i64::try_from(raw).ok().map(Self::from_raw)
    }
}

impl std::ops::Add for Quantity {
    type Output = Self;
    /// Quantities are bounded by instrument limits far below `i64::MAX`; the
    /// engine checks order sizes before they reach arithmetic.
    fn add(self, rhs: Self) -> Self {
        Self(self.0 + rhs.0)
    }
}

impl std::ops::Sub for Quantity {
    type Output = Self;
    fn sub(self, rhs: Self) -> Self {
        Self(self.0 - rhs.0)
    }
}

impl std::ops::Neg for Quantity {
    type Output = Self;
    fn neg(self) -> Self {
        Self(-self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_prints_decimals() {
        let cases = [
            ("integer", "42", 42 * FIXED_SCALE, "42"),
            ("fraction", "0.001", 1_000_000, "0.001"),
            ("negative", "-12.5", -12_500_000_000, "-12.5"),
            ("leading dot", ".5", 500_000_000, "0.5"),
            ("plus sign", "+7", 7 * FIXED_SCALE, "7"),
            ("trailing zeros beyond precision", "1.0000000000", FIXED_SCALE, "1"),
            ("nine decimals", "0.000000001", 1, "0.000000001"),
        ];
        for (name, text, raw, printed) in cases {
            let p = Price::parse(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(p.raw(), raw, "{name}");
            assert_eq!(p.to_string(), printed, "{name}");
        }
    }

    #[test]
    fn ascii_fast_path() {
        assert_eq!(parse_fixed_ascii(b"100.25"), Some(100_250_000_000));
        assert_eq!(parse_fixed_ascii(b"-0.5"), Some(-500_000_000));
        assert_eq!(parse_fixed_ascii(b"7"), Some(7 * FIXED_SCALE));
        for bad in [&b""[..], b".", b"-", b"1e5", b"1.2.3", b"0.0000000001", b"abc", b" 1"] {
            assert_eq!(parse_fixed_ascii(bad), None, "{:?}", std::str::from_utf8(bad));
        }
    }

    #[test]
    fn refuses_what_is_not_an_exact_decimal() {
        for text in ["", "abc", "1e5", "1.2.3", "NaN", "inf", "-", ".", "1,000", "0.0000000001", "99999999999"] {
            assert!(Price::parse(text).is_err(), "{text:?} should not parse");
        }
    }

    #[test]
    fn rounds_to_increments() {
        let tick = Price::parse("0.05").unwrap();
        let p = Price::parse("10.07").unwrap();
        assert_eq!(p.round_to(tick, RoundingMode::Down).to_string(), "10.05");
        assert_eq!(p.round_to(tick, RoundingMode::Up).to_string(), "10.1");
        assert_eq!(p.round_to(tick, RoundingMode::Nearest).to_string(), "10.05");
        // Ties go to the even multiple.
        assert_eq!(Price::parse("10.075").unwrap().round_to(tick, RoundingMode::Nearest).to_string(), "10.1");
        assert_eq!(Price::parse("10.025").unwrap().round_to(tick, RoundingMode::Nearest).to_string(), "10");
        assert_eq!(Price::parse("-10.07").unwrap().round_to(tick, RoundingMode::Down).to_string(), "-10.1");
        assert!(Price::parse("10.05").unwrap().is_multiple_of(tick));
        assert!(!p.is_multiple_of(tick));
    }

    #[test]
    fn notional_and_rates_are_exact() {
        let px = Price::parse("27123.45").unwrap();
        let qty = Quantity::parse("0.00012345").unwrap();
        assert_eq!(notional(px, qty, Quantity::ONE).to_string(), "3.348389902");
        let option = notional(Price::parse("1.25").unwrap(), Quantity::from_int(3), Quantity::from_int(100));
        assert_eq!(option.to_string(), "375");
        let fee = Money::parse("1000").unwrap().mul_rate(Rate::parse("0.002").unwrap());
        assert_eq!(fee.to_string(), "2");
        assert_eq!(Price::parse("100").unwrap().adjusted_by(Rate::from_bps(5), true).to_string(), "100.05");
        assert_eq!(Price::parse("100").unwrap().adjusted_by(Rate::from_bps(5), false).to_string(), "99.95");
        assert_eq!(format_fixed(Money::parse("2.345").unwrap().raw(), 2), "2.34");
        assert_eq!(format_fixed(Money::parse("-2.355").unwrap().raw(), 2), "-2.36");
    }

    #[test]
    fn serializes_as_strings() {
        let p = Price::parse("101.25").unwrap();
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, "\"101.25\"");
        assert_eq!(serde_json::from_str::<Price>(&json).unwrap(), p);
        assert!(serde_json::from_str::<Price>("\"1e3\"").is_err());
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(raw in any::<i64>()) {
            let p = Price::from_raw(raw);
            prop_assert_eq!(Price::parse(&p.to_string()).unwrap(), p);
        }

        #[test]
        fn ascii_fast_path_agrees_with_the_full_parser(raw in any::<i64>(), decimals in 0u8..=9) {
            let text = format_fixed(i128::from(raw), decimals);
            if let Some(fast) = parse_fixed_ascii(text.as_bytes()) {
                prop_assert_eq!(Some(fast), parse_fixed_i64(&text).ok());
            }
        }

        #[test]
        fn money_round_trip(raw in -(1i128 << 100)..(1i128 << 100)) {
            let m = Money::from_raw(raw);
            prop_assert_eq!(Money::parse(&m.to_string()).unwrap(), m);
        }

        #[test]
        fn rounding_lands_on_increment_and_moves_less_than_one(raw in -1_000_000_000_000i64..1_000_000_000_000, inc in 1i64..10_000_000_000) {
            for mode in [RoundingMode::Down, RoundingMode::Up, RoundingMode::Nearest] {
                let r = round_to_increment(raw, inc, mode);
                prop_assert_eq!(r % inc, 0);
                prop_assert!((r - raw).abs() < inc);
                match mode {
                    RoundingMode::Down => prop_assert!(r <= raw),
                    RoundingMode::Up => prop_assert!(r >= raw),
                    RoundingMode::Nearest => prop_assert!((r - raw).abs() * 2 <= inc),
                }
            }
        }

        #[test]
        fn addition_is_associative(a in -1_000_000_000_000_000i64..1_000_000_000_000_000, b in -1_000_000_000_000_000i64..1_000_000_000_000_000, c in -1_000_000_000_000_000i64..1_000_000_000_000_000) {
            let (a, b, c) = (Quantity::from_raw(a), Quantity::from_raw(b), Quantity::from_raw(c));
            prop_assert_eq!((a + b) + c, a + (b + c));
        }
    }
}
