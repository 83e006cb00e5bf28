//! Tradable instruments and the venue rules that constrain their orders.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::num::{Money, Price, Quantity, RoundingMode, notional};

/// A compact handle for an instrument, assigned by whoever registers it (the
/// backtester, or the server's instrument table). Events and positions carry
/// it instead of a string so the hot path neither hashes nor allocates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct InstrumentId(pub u32);

impl fmt::Display for InstrumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Why a symbol, venue or currency code was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    #[error("{what} must be 1 to {max} characters, got {len}")]
    Length { what: &'static str, max: usize, len: usize },
    #[error("{what} '{text}' may only contain {allowed}")]
    Characters { what: &'static str, text: String, allowed: &'static str },
}

/// A currency or asset code such as `USD`, `USDT` or `BTC` (1 to 12 ASCII
/// upper-case letters or digits), stored inline so it is `Copy`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Currency {
    len: u8,
    bytes: [u8; 12],
}

impl Currency {
    pub fn parse(text: &str) -> Result<Self, CodeError> {
        let t = text.trim();
        if t.is_empty() || t.len() > 12 {
            return Err(CodeError::Length { what: "currency", max: 12, len: t.len() });
        }
        if !t.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) {
            return Err(CodeError::Characters {
                what: "currency",
                text: t.to_string(),
                allowed: "upper-case letters and digits",
            });
        }
        let mut bytes = [0u8; 12];
        bytes[..t.len()].copy_from_slice(t.as_bytes());
        Ok(Self { len: u8::try_from(t.len()).unwrap_or(12), bytes })
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever stored.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("?")
    }
}

impl std::str::FromStr for Currency {
    type Err = CodeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Currency({})", self.as_str())
    }
}

impl Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// What kind of thing an instrument is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AssetClass {
    CryptoSpot,
    Equity,
    EquityOption,
    Future,
}

impl AssetClass {
    pub const ALL: [Self; 4] = [Self::CryptoSpot, Self::Equity, Self::EquityOption, Self::Future];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::CryptoSpot => "crypto_spot",
            Self::Equity => "equity",
            Self::EquityOption => "equity_option",
            Self::Future => "future",
        }
    }
}

impl std::str::FromStr for AssetClass {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|c| c.as_str() == s).ok_or_else(|| {
            format!("unknown asset class '{s}'; expected one of crypto_spot, equity, equity_option, future")
        })
    }
}

/// Why an instrument definition is inconsistent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstrumentError {
    #[error("{field} must be positive, got {value}")]
    NotPositive { field: &'static str, value: String },
    #[error("{field} must not be negative, got {value}")]
    Negative { field: &'static str, value: String },
    #[error(transparent)]
    Code(#[from] CodeError),
}

/// A tradable instrument on a venue, with the filters the venue enforces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Instrument {
    pub id: InstrumentId,
    /// The venue's name for it, such as `BTCUSDT` or `AAPL`.
    pub symbol: String,
    /// `sim`, `binance`, `tastytrade`, ...
    pub venue: String,
    pub asset_class: AssetClass,
    pub base_currency: Currency,
    pub quote_currency: Currency,
    /// Prices must be multiples of this.
    pub tick_size: Price,
    /// Quantities must be multiples of this.
    pub lot_size: Quantity,
    pub min_quantity: Quantity,
    /// Smallest order notional in the quote currency; zero for none.
    pub min_notional: Money,
    /// Units of the underlying per contract (100 for US equity options, 1 otherwise).
    pub multiplier: Quantity,
}

impl Instrument {
    /// Checks that the filters make sense together.
    pub fn validate(&self) -> Result<(), InstrumentError> {
        if self.symbol.is_empty() || self.symbol.len() > 64 {
            return Err(CodeError::Length { what: "symbol", max: 64, len: self.symbol.len() }.into());
        }
        let positive = [
            ("tick_size", self.tick_size.raw(), self.tick_size.to_string()),
            ("lot_size", self.lot_size.raw(), self.lot_size.to_string()),
            ("multiplier", self.multiplier.raw(), self.multiplier.to_string()),
        ];
        for (field, raw, value) in positive {
            if raw <= 0 {
                return Err(InstrumentError::NotPositive { field, value });
            }
        }
        if self.min_quantity.is_negative() {
            return Err(InstrumentError::Negative { field: "min_quantity", value: self.min_quantity.to_string() });
        }
        if self.min_notional.is_negative() {
            return Err(InstrumentError::Negative { field: "min_notional", value: self.min_notional.to_string() });
        }
        Ok(())
    }

    /// Rounds a price onto the tick grid.
    #[must_use]
    pub fn round_price(&self, price: Price, mode: RoundingMode) -> Price {
        price.round_to(self.tick_size, mode)
    }

    /// Rounds a quantity down onto the lot grid (never sizes up an order).
    #[must_use]
    pub fn round_quantity_down(&self, quantity: Quantity) -> Quantity {
        quantity.round_to(self.lot_size, RoundingMode::Down)
    }

    /// Decimal places of the tick size, for display.
    #[must_use]
    pub fn price_decimals(&self) -> u8 {
        decimals_of(self.tick_size.raw())
    }

    /// Decimal places of the lot size, for display.
    #[must_use]
    pub fn quantity_decimals(&self) -> u8 {
        decimals_of(self.lot_size.raw())
    }

    /// `price * quantity * multiplier`.
    #[must_use]
    pub fn notional(&self, price: Price, quantity: Quantity) -> Money {
        notional(price, quantity, self.multiplier)
    }

    /// A test and demo instrument: whole units, a cent tick, USD quote.
    #[must_use]
    pub fn simple(id: u32, symbol: &str) -> Self {
        Self {
            id: InstrumentId(id),
            symbol: symbol.to_string(),
            venue: "sim".to_string(),
            asset_class: AssetClass::Equity,
            base_currency: Currency::parse("UNIT").unwrap_or_else(|_| unreachable_currency()),
            quote_currency: Currency::parse("USD").unwrap_or_else(|_| unreachable_currency()),
            tick_size: Price::from_raw(10_000_000),
            lot_size: Quantity::ONE,
            min_quantity: Quantity::ONE,
            min_notional: Money::ZERO,
            multiplier: Quantity::ONE,
        }
    }
}

#[cold]
fn unreachable_currency() -> Currency {
    // Constant codes above are valid; this exists only to avoid a panic path.
    Currency { len: 1, bytes: *b"X\0\0\0\0\0\0\0\0\0\0\0" }
}

fn decimals_of(raw: i64) -> u8 {
    let mut d = crate::num::FIXED_PRECISION;
    let mut r = raw;
    while d > 0 && r % 10 == 0 && r != 0 {
        r /= 10;
        d -= 1;
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currency_codes() {
        assert_eq!(Currency::parse("USDT").unwrap().as_str(), "USDT");
        assert!(Currency::parse("usd").is_err());
        assert!(Currency::parse("").is_err());
        assert!(Currency::parse("TOOLONGCURRENCY").is_err());
        assert_eq!(serde_json::to_string(&Currency::parse("BTC").unwrap()).unwrap(), "\"BTC\"");
    }

    #[test]
    fn rounding_and_decimals() {
        let mut i = Instrument::simple(1, "BTCUSDT");
        i.tick_size = Price::parse("0.01").unwrap();
        i.lot_size = Quantity::parse("0.00001").unwrap();
        assert_eq!(i.price_decimals(), 2);
        assert_eq!(i.quantity_decimals(), 5);
        assert_eq!(i.round_price(Price::parse("100.006").unwrap(), RoundingMode::Nearest).to_string(), "100.01");
        assert_eq!(i.round_quantity_down(Quantity::parse("0.123456").unwrap()).to_string(), "0.12345");
        assert!(i.validate().is_ok());
        i.tick_size = Price::ZERO;
        assert!(matches!(i.validate(), Err(InstrumentError::NotPositive { field: "tick_size", .. })));
    }
}
