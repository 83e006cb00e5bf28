//! Time as UTC nanoseconds since the Unix epoch.
//!
//! The core never reads a clock: every timestamp arrives as input. Calendar
//! conversion uses Howard Hinnant's days-from-civil algorithms so no date
//! library is needed and parsing stays allocation-free on the CSV hot path.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub const NANOS_PER_SECOND: i64 = 1_000_000_000;
pub const NANOS_PER_MINUTE: i64 = 60 * NANOS_PER_SECOND;
pub const NANOS_PER_HOUR: i64 = 60 * NANOS_PER_MINUTE;
pub const NANOS_PER_DAY: i64 = 24 * NANOS_PER_HOUR;

/// A UTC instant in nanoseconds since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i64);

/// Why a timestamp could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{text}' is not a timestamp ({why}); use ISO 8601 like 2024-01-31T09:30:00Z or epoch seconds/milliseconds")]
pub struct ParseTimeError {
    pub text: String,
    pub why: &'static str,
}

impl Timestamp {
    #[must_use]
    pub const fn from_nanos(ns: i64) -> Self {
        Self(ns)
    }

    #[must_use]
    pub const fn from_secs(secs: i64) -> Self {
        Self(secs * NANOS_PER_SECOND)
    }

    #[must_use]
    pub const fn as_nanos(self) -> i64 {
        self.0
    }

    /// Whole UTC days since the epoch (negative before 1970).
    #[must_use]
    pub const fn day_number(self) -> i64 {
        self.0.div_euclid(NANOS_PER_DAY)
    }

    #[must_use]
    pub const fn plus_nanos(self, ns: i64) -> Self {
        Self(self.0.saturating_add(ns))
    }

    /// Parses ISO 8601 / RFC 3339 (`2024-01-31T09:30:00Z`, with optional
    /// fractional seconds, `+hh:mm` offset, space instead of `T`, or a bare
    /// date) or an integer epoch in seconds, milliseconds, microseconds or
    /// nanoseconds (told apart by magnitude).
    pub fn parse(text: &str) -> Result<Self, ParseTimeError> {
        let t = text.trim();
        let err = |why| ParseTimeError { text: t.to_string(), why };
        if t.is_empty() {
            return Err(err("empty"));
        }
        if t.bytes().all(|b| b.is_ascii_digit())
            || (t.starts_with('-') && t.len() > 1 && t[1..].bytes().all(|b| b.is_ascii_digit()))
        {
            let n: i64 = t.parse().map_err(|_| err("epoch number out of range"))?;
            return Ok(Self::from_epoch_guess(n));
        }
        parse_iso(t.as_bytes()).map(Self).map_err(err)
    }

    /// Fast path for bulk input: the same forms as [`Timestamp::parse`] from
    /// ASCII bytes, or `None` (callers then call `parse` for the error).
    #[must_use]
    #[inline]
    pub fn parse_ascii(b: &[u8]) -> Option<Self> {
        if !b.is_empty() && b.len() <= 19 && b.iter().all(u8::is_ascii_digit) {
            let n = b.iter().try_fold(0i64, |acc, d| acc.checked_mul(10)?.checked_add(i64::from(d - b'0')))?;
            return Some(Self::from_epoch_guess(n));
        }
        parse_iso(b).ok().map(Self)
    }

    /// Interprets an epoch integer by its size: below 10^11 seconds (until
    /// year 5138), below 10^14 milliseconds, below 10^17 microseconds, else
    /// nanoseconds.
    #[must_use]
    pub fn from_epoch_guess(n: i64) -> Self {
        let a = n.unsigned_abs();
        if a < 100_000_000_000 {
            Self(n * NANOS_PER_SECOND)
        } else if a < 100_000_000_000_000 {
            Self(n * 1_000_000)
        } else if a < 100_000_000_000_000_000 {
            Self(n * 1_000)
        } else {
            Self(n)
        }
    }

    /// `(year, month, day, hour, minute, second, nanos)` in UTC.
    #[must_use]
    pub fn to_parts(self) -> (i64, u32, u32, u32, u32, u32, u32) {
        let days = self.0.div_euclid(NANOS_PER_DAY);
        let rem = self.0.rem_euclid(NANOS_PER_DAY);
        let (y, m, d) = civil_from_days(days);
        let secs = rem / NANOS_PER_SECOND;
        let nanos = u32::try_from(rem % NANOS_PER_SECOND).unwrap_or(0);
        let secs = u32::try_from(secs).unwrap_or(0);
        (y, m, d, secs / 3600, secs / 60 % 60, secs % 60, nanos)
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC with `Z`; fractional seconds only when present.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, mo, d, h, mi, s, ns) = self.to_parts();
        write!(f, "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}")?;
        if ns != 0 {
            let mut frac = format!("{ns:09}");
            while frac.ends_with('0') {
                frac.pop();
            }
            write!(f, ".{frac}")?;
        }
        write!(f, "Z")
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({self})")
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Days since 1970-01-01 for a proleptic Gregorian date.
#[must_use]
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day number.
#[must_use]
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn digits(b: &[u8], at: usize, n: usize) -> Result<i64, &'static str> {
    let s = b.get(at..at + n).ok_or("too short")?;
    let mut v = 0i64;
    for &c in s {
        if !c.is_ascii_digit() {
            return Err("expected a digit");
        }
        v = v * 10 + i64::from(c - b'0');
    }
    Ok(v)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

fn parse_iso(b: &[u8]) -> Result<i64, &'static str> {
    let year = digits(b, 0, 4)?;
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return Err("expected YYYY-MM-DD");
    }
    let month = u32::try_from(digits(b, 5, 2)?).map_err(|_| "bad month")?;
    let day = u32::try_from(digits(b, 8, 2)?).map_err(|_| "bad day")?;
    if !(1..=12).contains(&month) {
        return Err("month must be 01-12");
    }
    if day == 0 || day > days_in_month(year, month) {
        return Err("day out of range for the month");
    }
    let mut ns = days_from_civil(year, month, day) * NANOS_PER_DAY;
    if b.len() == 10 {
        return Ok(ns);
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return Err("expected 'T' between date and time");
    }
    let hour = digits(b, 11, 2)?;
    if b.get(13) != Some(&b':') {
        return Err("expected hh:mm");
    }
    let minute = digits(b, 14, 2)?;
    let mut i = 16;
    let mut second = 0;
    if b.get(i) == Some(&b':') {
        second = digits(b, 17, 2)?;
        i = 19;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err("time of day out of range");
    }
    ns += hour * NANOS_PER_HOUR + minute * NANOS_PER_MINUTE + second * NANOS_PER_SECOND;
    if b.get(i) == Some(&b'.') || b.get(i) == Some(&b',') {
        i += 1;
        let mut frac = 0i64;
        let mut n = 0;
        while let Some(c) = b.get(i).filter(|c| c.is_ascii_digit()) {
            if n < 9 {
                frac = frac * 10 + i64::from(c - b'0');
                n += 1;
            }
            i += 1;
        }
        if n == 0 {
            return Err("expected digits after the decimal point");
        }
        ns += frac * 10i64.pow(9 - n);
    }
    match b.get(i) {
        None => Ok(ns),
        Some(b'Z' | b'z') if i + 1 == b.len() => Ok(ns),
        Some(&sign @ (b'+' | b'-')) => {
            let oh = digits(b, i + 1, 2)?;
            let om = match b.get(i + 3) {
                Some(b':') => digits(b, i + 4, 2)?,
                None => 0,
                _ => digits(b, i + 3, 2)?,
            };
            let consumed = match b.get(i + 3) {
                Some(b':') => i + 6,
                None => i + 3,
                _ => i + 5,
            };
            if consumed != b.len() || oh > 23 || om > 59 {
                return Err("bad UTC offset");
            }
            let offset = oh * NANOS_PER_HOUR + om * NANOS_PER_MINUTE;
            Ok(if sign == b'+' { ns - offset } else { ns + offset })
        }
        _ => Err("unexpected characters after the time"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_common_forms() {
        let base = Timestamp::from_secs(1_706_693_400); // 2024-01-31T09:30:00Z
        let cases = [
            ("rfc3339", "2024-01-31T09:30:00Z"),
            ("space", "2024-01-31 09:30:00"),
            ("no seconds", "2024-01-31T09:30Z"),
            ("offset", "2024-01-31T11:30:00+02:00"),
            ("negative offset", "2024-01-31T04:30:00-05:00"),
            ("compact offset", "2024-01-31T11:30:00+0200"),
            ("epoch seconds", "1706693400"),
            ("epoch millis", "1706693400000"),
        ];
        for (name, text) in cases {
            assert_eq!(Timestamp::parse(text).unwrap_or_else(|e| panic!("{name}: {e}")), base, "{name}");
        }
        assert_eq!(Timestamp::parse("2024-01-31").unwrap().to_string(), "2024-01-31T00:00:00Z");
        assert_eq!(Timestamp::parse("2024-01-31T09:30:00.250Z").unwrap().to_string(), "2024-01-31T09:30:00.25Z");
    }

    #[test]
    fn refuses_impossible_dates() {
        for text in
            ["2023-02-29", "2024-13-01", "2024-01-31T24:00:00Z", "yesterday", "2024-01-31T09:30:00Q", "2024/01/31"]
        {
            assert!(Timestamp::parse(text).is_err(), "{text}");
        }
        assert!(Timestamp::parse("2024-02-29").is_ok());
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(ns in -9_000_000_000_000_000_000i64..9_000_000_000_000_000_000) {
            let t = Timestamp::from_nanos(ns);
            prop_assert_eq!(Timestamp::parse(&t.to_string()).unwrap(), t);
        }

        #[test]
        fn civil_round_trip(days in -1_000_000i64..1_000_000) {
            let (y, m, d) = civil_from_days(days);
            prop_assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
