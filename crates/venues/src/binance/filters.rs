//! `GET /api/v3/exchangeInfo`: symbols, their filters and the rate limits.
//!
//! Each symbol maps to a [`model::Instrument`] (tick size from
//! `PRICE_FILTER`, lot size and minimum quantity from `LOT_SIZE`, minimum
//! notional from `NOTIONAL` or the older `MIN_NOTIONAL`). What the model's
//! instrument cannot express stays in [`SymbolRules`]: price bounds, maximum
//! quantity, the separate `MARKET_LOT_SIZE`, maximum notional and whether the
//! notional bounds apply to market orders, percent-price bands, order-count
//! caps, iceberg parts, max position and trailing-delta bounds. Filters this
//! adapter does not know are kept as raw JSON in `other_filters`.

use serde::Deserialize;
use serde_json::Value;

use model::num::parse_fixed_i128;
use model::{AssetClass, Currency, Instrument, InstrumentId, Money, Price, Quantity, Rate, Timestamp};

use super::error::BinanceError;

/// One entry of exchangeInfo's `rateLimits`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimit {
    /// `REQUEST_WEIGHT`, `ORDERS` or `RAW_REQUESTS`.
    pub rate_limit_type: String,
    /// `SECOND`, `MINUTE`, `HOUR` or `DAY`.
    pub interval: String,
    pub interval_num: u32,
    pub limit: u64,
}

impl RateLimit {
    /// The suffix Binance uses in usage headers: `1M`, `10S`, `1D`.
    #[must_use]
    pub fn header_suffix(&self) -> String {
        let letter = self.interval.chars().next().unwrap_or('?').to_ascii_uppercase();
        format!("{}{letter}", self.interval_num)
    }

    /// The window length in milliseconds, if the interval is known.
    #[must_use]
    pub fn window_ms(&self) -> Option<i64> {
        let unit = match self.interval.as_str() {
            "SECOND" => 1_000,
            "MINUTE" => 60_000,
            "HOUR" => 3_600_000,
            "DAY" => 86_400_000,
            _ => return None,
        };
        Some(unit * i64::from(self.interval_num))
    }
}

/// `PRICE_FILTER`. A zero value disables that part of the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriceFilter {
    pub min_price: Price,
    /// Zero for none; saturated at the largest `Price` when Binance's value is bigger.
    pub max_price: Price,
    pub tick_size: Price,
}

/// `LOT_SIZE` and `MARKET_LOT_SIZE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LotSizeFilter {
    pub min_qty: Quantity,
    /// Saturated at the largest `Quantity` when Binance's value is bigger.
    pub max_qty: Quantity,
    pub step_size: Quantity,
}

/// `NOTIONAL`, or the older `MIN_NOTIONAL` (which has no maximum).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotionalFilter {
    pub min_notional: Money,
    pub apply_min_to_market: bool,
    pub max_notional: Option<Money>,
    pub apply_max_to_market: bool,
    /// Minutes of the average price used for market orders; 0 = last price.
    pub avg_price_mins: u32,
    /// Which filter this came from: `NOTIONAL` or `MIN_NOTIONAL`.
    pub source: &'static str,
}

/// `PERCENT_PRICE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PercentPriceFilter {
    pub multiplier_up: Rate,
    pub multiplier_down: Rate,
    pub avg_price_mins: u32,
}

/// `PERCENT_PRICE_BY_SIDE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PercentPriceBySideFilter {
    pub bid_multiplier_up: Rate,
    pub bid_multiplier_down: Rate,
    pub ask_multiplier_up: Rate,
    pub ask_multiplier_down: Rate,
    pub avg_price_mins: u32,
}

/// `TRAILING_DELTA` (basis points).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrailingDeltaFilter {
    pub min_trailing_above_delta: u64,
    pub max_trailing_above_delta: u64,
    pub min_trailing_below_delta: u64,
    pub max_trailing_below_delta: u64,
}

/// A symbol's rules as Binance states them, including everything the model's
/// [`Instrument`] has no field for.
#[derive(Debug, Clone, PartialEq)]
pub struct SymbolRules {
    pub symbol: String,
    /// `TRADING`, `BREAK`, `HALT`, ...
    pub status: String,
    pub base_asset: Currency,
    pub quote_asset: Currency,
    pub base_asset_precision: u32,
    pub quote_asset_precision: u32,
    pub order_types: Vec<String>,
    pub iceberg_allowed: bool,
    pub oco_allowed: bool,
    pub quote_order_qty_market_allowed: bool,
    pub is_spot_trading_allowed: bool,
    pub price: Option<PriceFilter>,
    pub lot_size: Option<LotSizeFilter>,
    pub market_lot_size: Option<LotSizeFilter>,
    pub notional: Option<NotionalFilter>,
    pub percent_price: Option<PercentPriceFilter>,
    pub percent_price_by_side: Option<PercentPriceBySideFilter>,
    pub iceberg_parts: Option<u64>,
    pub max_num_orders: Option<u64>,
    pub max_num_algo_orders: Option<u64>,
    pub max_num_iceberg_orders: Option<u64>,
    pub max_position: Option<Quantity>,
    pub trailing_delta: Option<TrailingDeltaFilter>,
    /// Filters this adapter does not interpret, as Binance sent them.
    pub other_filters: Vec<Value>,
}

impl SymbolRules {
    /// Whether Binance accepts new orders for the symbol now.
    #[must_use]
    pub fn is_trading(&self) -> bool {
        self.status == "TRADING" && self.is_spot_trading_allowed
    }

    /// Whether Binance lists `order_type` (`LIMIT_MAKER`, `STOP_LOSS_LIMIT`, ...) for the symbol.
    #[must_use]
    pub fn allows(&self, order_type: &str) -> bool {
        self.order_types.iter().any(|t| t == order_type)
    }

    /// The model instrument for this symbol, with the caller's id.
    ///
    /// A zero `tickSize` or `stepSize` ("rule disabled") becomes the
    /// smallest step the asset precision allows, since the model requires a
    /// positive grid.
    pub fn to_instrument(&self, id: InstrumentId) -> Result<Instrument, BinanceError> {
        let err = |detail: String| BinanceError::Mapping { symbol: self.symbol.clone(), detail };
        let price = self.price.ok_or_else(|| err("no PRICE_FILTER".into()))?;
        let lot = self.lot_size.ok_or_else(|| err("no LOT_SIZE filter".into()))?;
        let tick_size = if price.tick_size.is_positive() {
            price.tick_size
        } else {
            Price::from_raw(precision_step(self.quote_asset_precision))
        };
        let lot_size = if lot.step_size.is_positive() {
            lot.step_size
        } else {
            Quantity::from_raw(precision_step(self.base_asset_precision))
        };
        let instrument = Instrument {
            id,
            symbol: self.symbol.clone(),
            venue: "binance".to_string(),
            asset_class: AssetClass::CryptoSpot,
            base_currency: self.base_asset,
            quote_currency: self.quote_asset,
            tick_size,
            lot_size,
            min_quantity: lot.min_qty,
            min_notional: self.notional.map_or(Money::ZERO, |n| n.min_notional),
            multiplier: Quantity::ONE,
        };
        instrument.validate().map_err(|e| err(e.to_string()))?;
        Ok(instrument)
    }
}

/// `10^-precision` as a raw fixed-point value (at least one raw unit).
fn precision_step(precision: u32) -> i64 {
    let decimals = precision.min(u32::from(model::num::FIXED_PRECISION));
    10i64.pow(u32::from(model::num::FIXED_PRECISION) - decimals)
}

/// The parsed answer of exchangeInfo.
#[derive(Debug, Clone)]
pub struct ExchangeInfo {
    pub timezone: String,
    pub server_time: Timestamp,
    pub rate_limits: Vec<RateLimit>,
    /// Exchange-wide filters (`EXCHANGE_MAX_NUM_ORDERS`, ...) as sent.
    pub exchange_filters: Vec<Value>,
    pub symbols: Vec<SymbolRules>,
    /// Symbols that could not be read, with the reason (also logged).
    pub skipped: Vec<(String, String)>,
}

impl ExchangeInfo {
    #[must_use]
    pub fn symbol(&self, symbol: &str) -> Option<&SymbolRules> {
        self.symbols.iter().find(|s| s.symbol == symbol)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawExchangeInfo {
    #[serde(default)]
    timezone: String,
    server_time: i64,
    #[serde(default)]
    rate_limits: Vec<RateLimit>,
    #[serde(default)]
    exchange_filters: Vec<Value>,
    #[serde(default)]
    symbols: Vec<RawSymbol>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSymbol {
    symbol: String,
    status: String,
    base_asset: String,
    #[serde(default)]
    base_asset_precision: u32,
    quote_asset: String,
    #[serde(default)]
    quote_asset_precision: u32,
    #[serde(default)]
    order_types: Vec<String>,
    #[serde(default)]
    iceberg_allowed: bool,
    #[serde(default)]
    oco_allowed: bool,
    #[serde(default)]
    quote_order_qty_market_allowed: bool,
    #[serde(default = "yes")]
    is_spot_trading_allowed: bool,
    #[serde(default)]
    filters: Vec<Value>,
}

fn yes() -> bool {
    true
}

impl RawExchangeInfo {
    pub(crate) fn into_info(self) -> ExchangeInfo {
        let mut symbols = Vec::with_capacity(self.symbols.len());
        let mut skipped = Vec::new();
        for raw in self.symbols {
            let name = raw.symbol.clone();
            match raw.into_rules() {
                Ok(rules) => symbols.push(rules),
                Err(reason) => {
                    tracing::warn!(symbol = %name, %reason, "binance: skipping symbol from exchangeInfo");
                    skipped.push((name, reason));
                }
            }
        }
        ExchangeInfo {
            timezone: self.timezone,
            server_time: super::types::millis(self.server_time),
            rate_limits: self.rate_limits,
            exchange_filters: self.exchange_filters,
            symbols,
            skipped,
        }
    }
}

impl RawSymbol {
    fn into_rules(self) -> Result<SymbolRules, String> {
        let base_asset = Currency::parse(&self.base_asset).map_err(|e| format!("baseAsset: {e}"))?;
        let quote_asset = Currency::parse(&self.quote_asset).map_err(|e| format!("quoteAsset: {e}"))?;
        let mut rules = SymbolRules {
            symbol: self.symbol,
            status: self.status,
            base_asset,
            quote_asset,
            base_asset_precision: self.base_asset_precision,
            quote_asset_precision: self.quote_asset_precision,
            order_types: self.order_types,
            iceberg_allowed: self.iceberg_allowed,
            oco_allowed: self.oco_allowed,
            quote_order_qty_market_allowed: self.quote_order_qty_market_allowed,
            is_spot_trading_allowed: self.is_spot_trading_allowed,
            price: None,
            lot_size: None,
            market_lot_size: None,
            notional: None,
            percent_price: None,
            percent_price_by_side: None,
            iceberg_parts: None,
            max_num_orders: None,
            max_num_algo_orders: None,
            max_num_iceberg_orders: None,
            max_position: None,
            trailing_delta: None,
            other_filters: Vec::new(),
        };
        for filter in self.filters {
            let kind = filter.get("filterType").and_then(Value::as_str).unwrap_or("").to_string();
            let f = Fields { kind: &kind, value: &filter };
            match kind.as_str() {
                "PRICE_FILTER" => {
                    rules.price = Some(PriceFilter {
                        min_price: f.price("minPrice")?,
                        max_price: f.price_max("maxPrice")?,
                        tick_size: f.price("tickSize")?,
                    });
                }
                "LOT_SIZE" | "MARKET_LOT_SIZE" => {
                    let lot = LotSizeFilter {
                        min_qty: f.qty("minQty")?,
                        max_qty: f.qty_max("maxQty")?,
                        step_size: f.qty("stepSize")?,
                    };
                    if kind == "LOT_SIZE" {
                        rules.lot_size = Some(lot);
                    } else {
                        rules.market_lot_size = Some(lot);
                    }
                }
                "NOTIONAL" => {
                    rules.notional = Some(NotionalFilter {
                        min_notional: f.money("minNotional")?,
                        apply_min_to_market: f.flag("applyMinToMarket"),
                        max_notional: Some(f.money("maxNotional")?),
                        apply_max_to_market: f.flag("applyMaxToMarket"),
                        avg_price_mins: f.int("avgPriceMins").unwrap_or(0),
                        source: "NOTIONAL",
                    });
                }
                // NOTIONAL supersedes MIN_NOTIONAL when a symbol has both.
                "MIN_NOTIONAL" if rules.notional.is_none_or(|n| n.source != "NOTIONAL") => {
                    rules.notional = Some(NotionalFilter {
                        min_notional: f.money("minNotional")?,
                        apply_min_to_market: f.flag("applyToMarket"),
                        max_notional: None,
                        apply_max_to_market: false,
                        avg_price_mins: f.int("avgPriceMins").unwrap_or(0),
                        source: "MIN_NOTIONAL",
                    });
                }
                "MIN_NOTIONAL" => {}
                "PERCENT_PRICE" => {
                    rules.percent_price = Some(PercentPriceFilter {
                        multiplier_up: f.rate("multiplierUp")?,
                        multiplier_down: f.rate("multiplierDown")?,
                        avg_price_mins: f.int("avgPriceMins").unwrap_or(0),
                    });
                }
                "PERCENT_PRICE_BY_SIDE" => {
                    rules.percent_price_by_side = Some(PercentPriceBySideFilter {
                        bid_multiplier_up: f.rate("bidMultiplierUp")?,
                        bid_multiplier_down: f.rate("bidMultiplierDown")?,
                        ask_multiplier_up: f.rate("askMultiplierUp")?,
                        ask_multiplier_down: f.rate("askMultiplierDown")?,
                        avg_price_mins: f.int("avgPriceMins").unwrap_or(0),
                    });
                }
                "ICEBERG_PARTS" => rules.iceberg_parts = Some(f.count("limit")?),
                "MAX_NUM_ORDERS" => rules.max_num_orders = Some(f.count("maxNumOrders")?),
                "MAX_NUM_ALGO_ORDERS" => rules.max_num_algo_orders = Some(f.count("maxNumAlgoOrders")?),
                "MAX_NUM_ICEBERG_ORDERS" => rules.max_num_iceberg_orders = Some(f.count("maxNumIcebergOrders")?),
                "MAX_POSITION" => rules.max_position = Some(f.qty_max("maxPosition")?),
                "TRAILING_DELTA" => {
                    rules.trailing_delta = Some(TrailingDeltaFilter {
                        min_trailing_above_delta: f.count("minTrailingAboveDelta")?,
                        max_trailing_above_delta: f.count("maxTrailingAboveDelta")?,
                        min_trailing_below_delta: f.count("minTrailingBelowDelta")?,
                        max_trailing_below_delta: f.count("maxTrailingBelowDelta")?,
                    });
                }
                _ => rules.other_filters.push(filter.clone()),
            }
        }
        Ok(rules)
    }
}

/// Field access on one filter object, with errors naming filter and field.
struct Fields<'a> {
    kind: &'a str,
    value: &'a Value,
}

impl Fields<'_> {
    fn text(&self, name: &str) -> Result<&str, String> {
        self.value
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{} filter: field {name} missing or not a decimal string", self.kind))
    }

    fn bad(&self, name: &str, e: &dyn std::fmt::Display) -> String {
        format!("{} filter: {name}: {e}", self.kind)
    }

    fn price(&self, name: &str) -> Result<Price, String> {
        Price::parse(self.text(name)?).map_err(|e| self.bad(name, &e))
    }

    fn qty(&self, name: &str) -> Result<Quantity, String> {
        Quantity::parse(self.text(name)?).map_err(|e| self.bad(name, &e))
    }

    fn money(&self, name: &str) -> Result<Money, String> {
        Money::parse(self.text(name)?).map_err(|e| self.bad(name, &e))
    }

    fn rate(&self, name: &str) -> Result<Rate, String> {
        Rate::parse(self.text(name)?).map_err(|e| self.bad(name, &e))
    }

    /// Upper bounds may exceed the model's i64 range; they saturate.
    fn max_raw(&self, name: &str) -> Result<i64, String> {
        let raw = parse_fixed_i128(self.text(name)?.trim()).map_err(|e| self.bad(name, &e))?;
        Ok(i64::try_from(raw).unwrap_or(if raw > 0 { i64::MAX } else { 0 }))
    }

    fn price_max(&self, name: &str) -> Result<Price, String> {
        self.max_raw(name).map(Price::from_raw)
    }

    fn qty_max(&self, name: &str) -> Result<Quantity, String> {
        self.max_raw(name).map(Quantity::from_raw)
    }

    fn flag(&self, name: &str) -> bool {
        self.value.get(name).and_then(Value::as_bool).unwrap_or(false)
    }

    fn count(&self, name: &str) -> Result<u64, String> {
        self.value
            .get(name)
            .and_then(Value::as_u64)
            .ok_or_else(|| format!("{} filter: field {name} missing or not a whole number", self.kind))
    }

    fn int(&self, name: &str) -> Option<u32> {
        self.value.get(name).and_then(Value::as_u64).and_then(|v| u32::try_from(v).ok())
    }
}
