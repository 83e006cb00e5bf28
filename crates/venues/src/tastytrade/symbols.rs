//! OCC option symbols, as TastyTrade uses them for equity options:
//! `AAPL  240119C00150000` = root padded with spaces to 6 characters, expiry
//! `YYMMDD`, `C` or `P`, and the strike times 1000 in 8 digits.

use std::fmt;

use model::Price;
use model::num::FIXED_SCALE;

/// Call or put.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OptionKind {
    Call,
    Put,
}

impl OptionKind {
    #[must_use]
    pub const fn letter(self) -> char {
        match self {
            Self::Call => 'C',
            Self::Put => 'P',
        }
    }

    /// TastyTrade's `option-type` field: `C` or `P`.
    pub fn from_tasty(text: &str) -> Option<Self> {
        match text {
            "C" | "Call" | "CALL" => Some(Self::Call),
            "P" | "Put" | "PUT" => Some(Self::Put),
            _ => None,
        }
    }
}

/// A calendar date (an option's expiry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    pub year: u16,
    pub month: u8,
    pub day: u8,
}

impl Date {
    /// A valid Gregorian date, or `None`.
    #[must_use]
    pub fn new(year: u16, month: u8, day: u8) -> Option<Self> {
        let leap = (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400);
        let days = match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return None,
        };
        (day >= 1 && day <= days).then_some(Self { year, month, day })
    }

    /// Parses `YYYY-MM-DD`.
    #[must_use]
    pub fn parse_iso(text: &str) -> Option<Self> {
        let b = text.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let year = digits(&b[0..4])?;
        let month = digits(&b[5..7])?;
        let day = digits(&b[8..10])?;
        Self::new(u16::try_from(year).ok()?, u8::try_from(month).ok()?, u8::try_from(day).ok()?)
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    b.iter().try_fold(0u32, |acc, d| acc.checked_mul(10)?.checked_add(u32::from(d - b'0')))
}

/// Why a string is not an OCC option symbol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{symbol}' is not an OCC option symbol: {why}")]
pub struct OccError {
    pub symbol: String,
    pub why: &'static str,
}

/// A parsed OCC equity option symbol.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OccSymbol {
    /// The option root (1 to 6 characters), e.g. `AAPL` or `SPXW`.
    pub root: String,
    pub expiry: Date,
    pub kind: OptionKind,
    /// The strike price (a multiple of 0.001, below 100 000).
    pub strike: Price,
}

/// `strike * 1000` must fit the 8 digits of the symbol.
const MAX_STRIKE_THOUSANDTHS: i64 = 99_999_999;
/// Raw fixed-point units per 0.001.
const RAW_PER_THOUSANDTH: i64 = FIXED_SCALE / 1000;

impl OccSymbol {
    /// Builds a symbol, checking the root and that the strike is expressible.
    pub fn new(root: &str, expiry: Date, kind: OptionKind, strike: Price) -> Result<Self, OccError> {
        let err = |why| OccError { symbol: format!("{root} {expiry} {} {strike}", kind.letter()), why };
        check_root(root).map_err(err)?;
        if !(2000..=2099).contains(&expiry.year) {
            return Err(err("expiry year must be 2000 to 2099"));
        }
        strike_thousandths(strike).map_err(err)?;
        Ok(Self { root: root.to_string(), expiry, kind, strike })
    }

    /// Parses `AAPL  240119C00150000`. The padding between root and expiry
    /// may be any number of spaces (TastyTrade pads to 6; some sources use
    /// one space or none), so the last 15 characters are the expiry, type
    /// and strike and everything before them is the root.
    pub fn parse(text: &str) -> Result<Self, OccError> {
        let err = |why| OccError { symbol: text.to_string(), why };
        let t = text.trim();
        if !t.is_ascii() {
            return Err(err("must be ASCII"));
        }
        if t.len() < 16 {
            return Err(err("too short: expected root, YYMMDD, C or P and an 8-digit strike"));
        }
        let (root_part, tail) = t.split_at(t.len() - 15);
        let root = root_part.trim_end();
        check_root(root).map_err(err)?;
        let tail = tail.as_bytes();
        let yy = digits(&tail[0..2]).ok_or_else(|| err("expiry must be YYMMDD digits"))?;
        let mm = digits(&tail[2..4]).ok_or_else(|| err("expiry must be YYMMDD digits"))?;
        let dd = digits(&tail[4..6]).ok_or_else(|| err("expiry must be YYMMDD digits"))?;
        let expiry = Date::new(
            2000 + u16::try_from(yy).unwrap_or(0),
            u8::try_from(mm).unwrap_or(0),
            u8::try_from(dd).unwrap_or(0),
        )
        .ok_or_else(|| err("expiry is not a calendar date"))?;
        let kind = match tail[6] {
            b'C' => OptionKind::Call,
            b'P' => OptionKind::Put,
            _ => return Err(err("option type must be C or P")),
        };
        let thousandths = digits(&tail[7..15]).ok_or_else(|| err("strike must be 8 digits"))?;
        let strike = Price::from_raw(i64::from(thousandths) * RAW_PER_THOUSANDTH);
        if !strike.is_positive() {
            return Err(err("strike must be positive"));
        }
        Ok(Self { root: root.to_string(), expiry, kind, strike })
    }

    /// The OCC form with the root padded to 6 characters: `AAPL  240119C00150000`.
    #[must_use]
    pub fn to_occ(&self) -> String {
        // Validated at construction, so the strike fits; clamp defensively.
        let k = strike_thousandths(self.strike).unwrap_or(0);
        format!(
            "{:<6}{:02}{:02}{:02}{}{:08}",
            self.root,
            self.expiry.year % 100,
            self.expiry.month,
            self.expiry.day,
            self.kind.letter(),
            k
        )
    }
}

impl fmt::Display for OccSymbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_occ())
    }
}

impl std::str::FromStr for OccSymbol {
    type Err = OccError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

fn check_root(root: &str) -> Result<(), &'static str> {
    if root.is_empty() || root.len() > 6 {
        return Err("root must be 1 to 6 characters");
    }
    if !root.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) {
        return Err("root may only contain upper-case letters and digits");
    }
    Ok(())
}

fn strike_thousandths(strike: Price) -> Result<i64, &'static str> {
    if !strike.is_positive() {
        return Err("strike must be positive");
    }
    if strike.raw() % RAW_PER_THOUSANDTH != 0 {
        return Err("strike must be a multiple of 0.001");
    }
    let k = strike.raw() / RAW_PER_THOUSANDTH;
    if k > MAX_STRIKE_THOUSANDTHS {
        return Err("strike must be below 100000");
    }
    Ok(k)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Price {
        Price::parse(s).unwrap()
    }

    #[test]
    fn parses_the_padded_form() {
        let s = OccSymbol::parse("AAPL  240119C00150000").unwrap();
        assert_eq!(s.root, "AAPL");
        assert_eq!(s.expiry, Date::new(2024, 1, 19).unwrap());
        assert_eq!(s.kind, OptionKind::Call);
        assert_eq!(s.strike, p("150"));
        assert_eq!(s.to_occ(), "AAPL  240119C00150000");
    }

    #[test]
    fn fractional_strikes_and_puts() {
        let s = OccSymbol::parse("SPY   231215P00452500").unwrap();
        assert_eq!(s.kind, OptionKind::Put);
        assert_eq!(s.strike, p("452.5"));
        let s = OccSymbol::parse("F     250117C00012125").unwrap();
        assert_eq!(s.root, "F");
        assert_eq!(s.strike, p("12.125"));
        assert_eq!(s.to_occ(), "F     250117C00012125");
    }

    #[test]
    fn accepts_other_paddings_and_six_character_roots() {
        assert_eq!(OccSymbol::parse("QQQ 191115C00187000").unwrap().to_occ(), "QQQ   191115C00187000");
        assert_eq!(OccSymbol::parse("AAPL240119C00150000").unwrap().to_occ(), "AAPL  240119C00150000");
        let six = OccSymbol::parse("GOOGL1241220P00001000").unwrap();
        assert_eq!(six.root, "GOOGL1");
        assert_eq!(six.strike, p("1"));
        assert_eq!(six.to_occ(), "GOOGL1241220P00001000");
    }

    #[test]
    fn formats_from_parts() {
        let s = OccSymbol::new("SPXW", Date::new(2026, 3, 20).unwrap(), OptionKind::Put, p("5000")).unwrap();
        assert_eq!(s.to_string(), "SPXW  260320P05000000");
        assert_eq!(OccSymbol::parse(&s.to_string()).unwrap(), s);
    }

    #[test]
    fn rejects_malformed_symbols() {
        for bad in [
            "",
            "AAPL",
            "AAPL  241319C00150000",  // month 13
            "AAPL  240230C00150000",  // 30 February
            "AAPL  240119X00150000",  // not C/P
            "AAPL  240119C0015000A",  // strike digits
            "AAPL  240119C00000000",  // zero strike
            "TOOLONG240119C00150000", // 7-character root
            "aapl  240119C00150000",  // lower case
            "AA PL 240119C00150000",  // space inside the root
        ] {
            assert!(OccSymbol::parse(bad).is_err(), "{bad:?}");
        }
        let d = Date::new(2024, 1, 19).unwrap();
        assert!(OccSymbol::new("AAPL", d, OptionKind::Call, p("150.0001")).is_err());
        assert!(OccSymbol::new("AAPL", d, OptionKind::Call, p("100000")).is_err());
        assert!(OccSymbol::new("AAPL", d, OptionKind::Call, p("99999.999")).is_ok());
        assert!(OccSymbol::new("", d, OptionKind::Call, p("1")).is_err());
    }

    #[test]
    fn dates() {
        assert!(Date::new(2024, 2, 29).is_some());
        assert!(Date::new(2023, 2, 29).is_none());
        assert!(Date::new(2100, 2, 29).is_none());
        assert_eq!(Date::parse_iso("2024-01-19"), Date::new(2024, 1, 19));
        assert_eq!(Date::parse_iso("2024-1-19"), None);
        assert_eq!(Date::new(2024, 1, 9).unwrap().to_string(), "2024-01-09");
    }
}
