//! A simulated live market for paper trading: a handful of instruments whose
//! mids follow independent geometric random walks, quoted and traded several
//! times a second.
//!
//! Pure and clock-free: [`SimulatedMarket::step`] takes the caller's `now` and
//! advances every walk by the elapsed time, so a timer task drives it live and
//! a test drives it with made-up timestamps.
//!
//! Invariants of every emitted tick:
//! - A quote has `0 < bid < ask`, both on the instrument's tick grid (the bid
//!   rounded down, the ask up), and positive sizes on its lot grid.
//! - A trade is at the bid (seller aggressor) or the ask (buyer aggressor) of
//!   the quote emitted just before it, for at most that side's size.
//!
//! Floats only shape the walk. The mid lives as an `f64` logarithm; a price is
//! made from it in exactly one place, by rounding to a whole number of ticks
//! and multiplying that integer by the exact tick size. Nothing downstream ever
//! sees a float, so fills, positions and candles stay exact.
//!
//! Determinism: the same specs, seed and sequence of `now`s give the same
//! ticks on a given build and platform (the walk uses `ln`, `exp`, `sin` and
//! `cos`, whose last bits may differ between platforms' maths libraries). Each
//! instrument draws from its own generator, seeded from the market seed and its
//! id, so adding an instrument does not change the others' paths.

use std::f64::consts::TAU;

use model::time::NANOS_PER_SECOND;
use model::{
    AssetClass, Currency, Instrument, InstrumentError, InstrumentId, Money, Price, Quantity, Quote, Side, Timestamp,
};
use serde::{Deserialize, Serialize};

/// The lowest mid, in ticks: the walk is held here so the bid stays positive
/// even with the widest allowed spread.
pub const MIN_MID_TICKS: i64 = 5;
/// The highest mid, in price units, so `ticks * tick_size` stays far inside `i64`.
pub const MAX_MID: f64 = 1e9;
/// The largest accepted `volatility_per_sqrt_second` (100 % in one second).
pub const MAX_VOLATILITY: f64 = 1.0;
/// The widest accepted spread: 100 % of the mid.
pub const MAX_SPREAD_BPS: u32 = 10_000;

/// Displayed quote sizes are drawn log-uniformly between these notionals (in
/// the quote currency), then rounded to lots.
const QUOTE_NOTIONAL: (f64, f64) = (2_000.0, 250_000.0);
/// Trade sizes likewise, capped at the displayed size of the side they hit.
const TRADE_NOTIONAL: (f64, f64) = (100.0, 20_000.0);

/// One simulated instrument and how its price moves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MarketSpec {
    pub instrument: Instrument,
    /// The mid at construction.
    pub start_price: Price,
    /// Standard deviation of the log mid over one second; it grows with the
    /// square root of time (0.0003 is about 170 % a year, 24/7).
    pub volatility_per_sqrt_second: f64,
    /// Full quoted spread around the mid, in basis points of the mid; the
    /// spread is never less than one tick.
    pub spread_bps: u32,
    /// Chance that a step also prints a trade for this instrument. It is per
    /// call to [`SimulatedMarket::step`], so the trade rate depends on how often
    /// the caller steps.
    pub trade_probability: f64,
}

/// Why a market could not be built from its specs.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MarketError {
    #[error("{symbol}: {source}")]
    Instrument {
        symbol: String,
        #[source]
        source: InstrumentError,
    },
    #[error(
        "{symbol}: start price {price} must be on the tick grid, at least {MIN_MID_TICKS} ticks and at most {MAX_MID}"
    )]
    StartPrice { symbol: String, price: Price },
    #[error("{symbol}: volatility_per_sqrt_second {value} must be finite and between 0 and {MAX_VOLATILITY}")]
    Volatility { symbol: String, value: f64 },
    #[error("{symbol}: spread_bps {bps} must be at most {MAX_SPREAD_BPS}")]
    Spread { symbol: String, bps: u32 },
    #[error("{symbol}: trade_probability {value} must be between 0 and 1")]
    TradeProbability { symbol: String, value: f64 },
    #[error("instrument {0} is listed twice")]
    DuplicateInstrument(InstrumentId),
}

impl MarketSpec {
    /// Checks the instrument filters and the walk parameters.
    pub fn validate(&self) -> Result<(), MarketError> {
        let symbol = || self.instrument.symbol.clone();
        self.instrument.validate().map_err(|source| MarketError::Instrument { symbol: symbol(), source })?;
        let tick = self.instrument.tick_size;
        let lowest = tick.raw().checked_mul(MIN_MID_TICKS).unwrap_or(i64::MAX);
        if !self.start_price.is_multiple_of(tick)
            || self.start_price.raw() < lowest
            || self.start_price.to_f64() > MAX_MID
        {
            return Err(MarketError::StartPrice { symbol: symbol(), price: self.start_price });
        }
        let vol = self.volatility_per_sqrt_second;
        if !vol.is_finite() || !(0.0..=MAX_VOLATILITY).contains(&vol) {
            return Err(MarketError::Volatility { symbol: symbol(), value: vol });
        }
        if self.spread_bps > MAX_SPREAD_BPS {
            return Err(MarketError::Spread { symbol: symbol(), bps: self.spread_bps });
        }
        let p = self.trade_probability;
        if !p.is_finite() || !(0.0..=1.0).contains(&p) {
            return Err(MarketError::TradeProbability { symbol: symbol(), value: p });
        }
        Ok(())
    }
}

/// A printed trade on the simulated market.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trade {
    pub instrument: InstrumentId,
    pub ts: Timestamp,
    pub price: Price,
    pub quantity: Quantity,
    /// The side that crossed the spread: a buyer lifts the ask, a seller hits the bid.
    pub aggressor: Side,
}

/// One output of [`SimulatedMarket::step`]. Serializes with a `type` tag
/// (`"quote"` or `"trade"`) beside the fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MarketTick {
    Quote(Quote),
    Trade(Trade),
}

impl MarketTick {
    #[must_use]
    pub const fn instrument(&self) -> InstrumentId {
        match self {
            Self::Quote(q) => q.instrument,
            Self::Trade(t) => t.instrument,
        }
    }

    #[must_use]
    pub const fn ts(&self) -> Timestamp {
        match self {
            Self::Quote(q) => q.ts,
            Self::Trade(t) => t.ts,
        }
    }
}

// Constant tick and lot sizes, as raw counts of 10^-9.
const CENT: i64 = 10_000_000;
const LOT_1E5: i64 = 10_000;
const LOT_1E4: i64 = 100_000;

/// BTC-USDT, ETH-USDT, SOL-USDT (crypto spot, quoted in USDT, minimum notional
/// 5 USDT) and AAPL, SPY (equities in whole shares, quoted in USD), with ids 1
/// to 5 on venue `paper`. Volatilities are livelier than the real markets so a
/// demo chart moves.
#[must_use]
pub fn default_instruments() -> Vec<MarketSpec> {
    let crypto = |id, symbol: &str, base: &str, lot_raw, start, vol, spread_bps| MarketSpec {
        instrument: Instrument {
            id: InstrumentId(id),
            symbol: symbol.to_string(),
            venue: "paper".to_string(),
            asset_class: AssetClass::CryptoSpot,
            base_currency: currency(base),
            quote_currency: currency("USDT"),
            tick_size: Price::from_raw(CENT),
            lot_size: Quantity::from_raw(lot_raw),
            min_quantity: Quantity::from_raw(lot_raw),
            min_notional: Money::from_int(5),
            multiplier: Quantity::ONE,
        },
        start_price: Price::from_int(start),
        volatility_per_sqrt_second: vol,
        spread_bps,
        trade_probability: 0.4,
    };
    let equity = |id, symbol: &str, start, vol, spread_bps| MarketSpec {
        instrument: Instrument {
            id: InstrumentId(id),
            symbol: symbol.to_string(),
            venue: "paper".to_string(),
            asset_class: AssetClass::Equity,
            base_currency: currency(symbol),
            quote_currency: currency("USD"),
            tick_size: Price::from_raw(CENT),
            lot_size: Quantity::ONE,
            min_quantity: Quantity::ONE,
            min_notional: Money::ZERO,
            multiplier: Quantity::ONE,
        },
        start_price: Price::from_int(start),
        volatility_per_sqrt_second: vol,
        spread_bps,
        trade_probability: 0.25,
    };
    vec![
        crypto(1, "BTC-USDT", "BTC", LOT_1E5, 60_000, 0.0002, 1),
        crypto(2, "ETH-USDT", "ETH", LOT_1E4, 3_000, 0.00025, 2),
        crypto(3, "SOL-USDT", "SOL", CENT, 150, 0.0003, 3),
        equity(4, "AAPL", 190, 0.0001, 2),
        equity(5, "SPY", 500, 0.00006, 1),
    ]
}

/// The default spec for a configured symbol, or `None` when there is none
/// (the caller reports it). Matching ignores case and the separators `-`, `/`
/// and `_`, so `BTC-USDT`, `btcusdt` and `BTC/USDT` are the same symbol.
#[must_use]
pub fn find_default(symbol: &str) -> Option<MarketSpec> {
    let wanted = normalize_symbol(symbol);
    if wanted.is_empty() {
        return None;
    }
    default_instruments().into_iter().find(|s| normalize_symbol(&s.instrument.symbol) == wanted)
}

fn normalize_symbol(symbol: &str) -> String {
    symbol.trim().chars().filter(|c| !matches!(c, '-' | '/' | '_')).map(|c| c.to_ascii_uppercase()).collect()
}

fn currency(code: &str) -> Currency {
    // Only called with the constant codes above, which a test parses.
    Currency::parse(code).unwrap_or_else(|e| unreachable!("constant currency code: {e}"))
}

/// splitmix64 (Steele, Lea and Flood): tiny, fast, and good enough to drive a
/// demo market; normals come from Box-Muller with the spare value cached.
#[derive(Debug, Clone)]
struct SplitMix64 {
    state: u64,
    spare_normal: Option<f64>,
}

impl SplitMix64 {
    const fn new(seed: u64) -> Self {
        Self { state: seed, spare_normal: None }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    #[allow(clippy::cast_precision_loss)]
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Standard normal.
    fn next_normal(&mut self) -> f64 {
        if let Some(z) = self.spare_normal.take() {
            return z;
        }
        // 1 - u is in (0, 1], so the logarithm is finite.
        let u1 = 1.0 - self.next_f64();
        let u2 = self.next_f64();
        let r = (-2.0 * u1.ln()).sqrt();
        let theta = TAU * u2;
        self.spare_normal = Some(r * theta.sin());
        r * theta.cos()
    }
}

/// The per-instrument state of the walk.
#[derive(Debug, Clone)]
struct Walk {
    rng: SplitMix64,
    log_mid: f64,
    min_log_mid: f64,
    max_log_mid: f64,
    last_quote: Option<Quote>,
}

/// The simulated market. See the module docs for its invariants.
#[derive(Debug, Clone)]
pub struct SimulatedMarket {
    specs: Vec<MarketSpec>,
    walks: Vec<Walk>,
    last_step: Timestamp,
}

impl SimulatedMarket {
    /// Builds a market whose walks start at each spec's `start_price` at `start`.
    ///
    /// # Panics
    /// When a spec is invalid or an instrument id repeats; use
    /// [`Self::new_checked`] for configured specs.
    #[must_use]
    pub fn new(specs: Vec<MarketSpec>, seed: u64, start: Timestamp) -> Self {
        match Self::new_checked(specs, seed, start) {
            Ok(market) => market,
            Err(e) => panic!("invalid market spec: {e}"),
        }
    }

    /// Builds a market, refusing invalid specs and repeated instrument ids.
    pub fn new_checked(specs: Vec<MarketSpec>, seed: u64, start: Timestamp) -> Result<Self, MarketError> {
        let mut walks = Vec::with_capacity(specs.len());
        for (i, spec) in specs.iter().enumerate() {
            spec.validate()?;
            let id = spec.instrument.id;
            if specs[..i].iter().any(|s| s.instrument.id == id) {
                return Err(MarketError::DuplicateInstrument(id));
            }
            // Mixing the id through one splitmix round gives unrelated streams
            // for neighbouring ids and seeds.
            let stream = SplitMix64::new(seed ^ u64::from(id.0).wrapping_mul(0xD1B5_4A32_D192_ED03)).next_u64();
            let tick = spec.instrument.tick_size.to_f64();
            #[allow(clippy::cast_precision_loss)]
            let min_mid = tick * MIN_MID_TICKS as f64;
            walks.push(Walk {
                rng: SplitMix64::new(stream),
                log_mid: spec.start_price.to_f64().ln(),
                min_log_mid: min_mid.ln(),
                max_log_mid: MAX_MID.ln(),
                last_quote: None,
            });
        }
        Ok(Self { specs, walks, last_step: start })
    }

    /// Advances every instrument to `now` and appends to `out` (which is not
    /// cleared) one quote per instrument, in spec order, each followed by a
    /// trade with the spec's `trade_probability`.
    ///
    /// Each log mid moves by `volatility * sqrt(elapsed seconds) * N(0, 1)`, a
    /// driftless walk in log space (the median stays put), held between
    /// [`MIN_MID_TICKS`] ticks and [`MAX_MID`]. A `now` at or before the previous
    /// step moves nothing and is stamped with the previous step's time, so
    /// ticks never go back in time.
    pub fn step(&mut self, now: Timestamp, out: &mut Vec<MarketTick>) {
        let now = now.max(self.last_step);
        let elapsed_ns = now.as_nanos().saturating_sub(self.last_step.as_nanos());
        self.last_step = now;
        #[allow(clippy::cast_precision_loss)]
        let sqrt_dt = (elapsed_ns as f64 / NANOS_PER_SECOND as f64).sqrt();
        for (spec, walk) in self.specs.iter().zip(&mut self.walks) {
            if elapsed_ns > 0 {
                let shock = spec.volatility_per_sqrt_second * sqrt_dt * walk.rng.next_normal();
                walk.log_mid = (walk.log_mid + shock).clamp(walk.min_log_mid, walk.max_log_mid);
            }
            let quote = make_quote(spec, walk, now);
            walk.last_quote = Some(quote);
            out.push(MarketTick::Quote(quote));
            if walk.rng.next_f64() < spec.trade_probability {
                out.push(MarketTick::Trade(make_trade(spec, &mut walk.rng, &quote)));
            }
        }
    }

    /// The quote of the last step for `id`; `None` before the first step or
    /// for an instrument not in this market.
    #[must_use]
    pub fn last_quote(&self, id: InstrumentId) -> Option<&Quote> {
        let i = self.specs.iter().position(|s| s.instrument.id == id)?;
        self.walks[i].last_quote.as_ref()
    }

    #[must_use]
    pub fn specs(&self) -> &[MarketSpec] {
        &self.specs
    }

    /// The time of the last step (or the start).
    #[must_use]
    pub const fn last_step(&self) -> Timestamp {
        self.last_step
    }
}

/// `value` rounded to whole ticks and made exact. The only float-to-price
/// conversion in this module.
#[allow(clippy::cast_possible_truncation)]
fn ticks_to_price(ticks: f64, tick: Price) -> Price {
    // `as` saturates; MAX_MID keeps the product far inside i64 anyway.
    let ticks = ticks as i64;
    Price::from_raw(ticks.saturating_mul(tick.raw()))
}

/// A tick count within float noise of a whole number is that number, so a
/// mid on the grid (such as the start price) is not pushed a tick outward by
/// `exp(ln(x)) != x` or by `0.01` having no exact binary form.
fn snap(ticks: f64) -> f64 {
    let whole = ticks.round();
    if (ticks - whole).abs() <= 1e-9 * whole.abs().max(1.0) { whole } else { ticks }
}

fn make_quote(spec: &MarketSpec, walk: &mut Walk, now: Timestamp) -> Quote {
    let tick = spec.instrument.tick_size;
    let tick_f = tick.to_f64();
    let mid = walk.log_mid.exp();
    let half_spread = mid * f64::from(spec.spread_bps) / 20_000.0;
    let bid_ticks = snap((mid - half_spread) / tick_f).floor().max(1.0);
    let ask_ticks = snap((mid + half_spread) / tick_f).ceil().max(bid_ticks + 1.0);
    let bid = ticks_to_price(bid_ticks, tick);
    let ask = ticks_to_price(ask_ticks, tick);
    let bid_size = random_size(spec, &mut walk.rng, mid, QUOTE_NOTIONAL, None);
    let ask_size = random_size(spec, &mut walk.rng, mid, QUOTE_NOTIONAL, None);
    Quote { instrument: spec.instrument.id, ts: now, bid, bid_size, ask, ask_size }
}

fn make_trade(spec: &MarketSpec, rng: &mut SplitMix64, quote: &Quote) -> Trade {
    let aggressor = if rng.next_f64() < 0.5 { Side::Buy } else { Side::Sell };
    let (price, shown) = match aggressor {
        Side::Buy => (quote.ask, quote.ask_size),
        Side::Sell => (quote.bid, quote.bid_size),
    };
    let quantity = random_size(spec, rng, price.to_f64(), TRADE_NOTIONAL, Some(shown));
    Trade { instrument: spec.instrument.id, ts: quote.ts, price, quantity, aggressor }
}

/// A positive whole number of lots worth roughly a notional drawn
/// log-uniformly from `notional`, at least the instrument's minimum quantity
/// and notional, and at most `cap` when given.
#[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
fn random_size(
    spec: &MarketSpec,
    rng: &mut SplitMix64,
    price: f64,
    notional: (f64, f64),
    cap: Option<Quantity>,
) -> Quantity {
    let lot = spec.instrument.lot_size.raw();
    let lot_value = price * spec.instrument.lot_size.to_f64();
    // Keep lots * lot far inside i64.
    let max_lots = (i64::MAX / 4 / lot) as f64;
    let min_by_quantity = (spec.instrument.min_quantity.raw() as f64 / lot as f64).ceil();
    let min_by_notional = (spec.instrument.min_notional.to_f64() / lot_value).ceil();
    let lo = min_by_quantity.max(min_by_notional).max(1.0).min(max_lots);
    let hi = (notional.1 / lot_value).floor().clamp(lo, max_lots);
    let lo_target = (notional.0 / lot_value).clamp(lo, hi);
    let log_lots = lo_target.ln() + rng.next_f64() * ((hi + 1.0).ln() - lo_target.ln());
    let mut lots = log_lots.exp().floor().clamp(lo, hi) as i64;
    if let Some(cap) = cap {
        // The displayed size is itself a positive number of lots.
        lots = lots.min(cap.raw() / lot).max(1);
    }
    Quantity::from_raw(lots * lot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::RoundingMode;

    const START: Timestamp = Timestamp::from_secs(1_700_000_000);

    fn spec(start: i64, vol: f64, spread_bps: u32, trade_probability: f64) -> MarketSpec {
        let mut s = find_default("BTC-USDT").unwrap();
        s.start_price = Price::from_int(start);
        s.volatility_per_sqrt_second = vol;
        s.spread_bps = spread_bps;
        s.trade_probability = trade_probability;
        s
    }

    fn run(market: &mut SimulatedMarket, steps: usize, step_ns: i64) -> Vec<MarketTick> {
        let mut out = Vec::new();
        let mut now = market.last_step();
        for _ in 0..steps {
            now = now.plus_nanos(step_ns);
            market.step(now, &mut out);
        }
        out
    }

    /// Checks the quote and trade invariants of one tick; returns a message on failure.
    fn check_tick(specs: &[MarketSpec], last: &mut [Option<Quote>], tick: &MarketTick) -> Result<(), String> {
        let i = specs.iter().position(|s| s.instrument.id == tick.instrument()).ok_or("unknown instrument")?;
        let inst = &specs[i].instrument;
        match tick {
            MarketTick::Quote(q) => {
                if !(q.bid.is_positive() && q.bid < q.ask) {
                    return Err(format!("not 0 < bid < ask: {q:?}"));
                }
                if !q.bid.is_multiple_of(inst.tick_size) || !q.ask.is_multiple_of(inst.tick_size) {
                    return Err(format!("off tick: {q:?}"));
                }
                for size in [q.bid_size, q.ask_size] {
                    if !size.is_positive() || !size.is_multiple_of(inst.lot_size) || size < inst.min_quantity {
                        return Err(format!("bad size {size} in {q:?}"));
                    }
                }
                last[i] = Some(*q);
            }
            MarketTick::Trade(t) => {
                let q = last[i].ok_or("trade before any quote")?;
                let (price, shown) = match t.aggressor {
                    Side::Buy => (q.ask, q.ask_size),
                    Side::Sell => (q.bid, q.bid_size),
                };
                if t.price != price || t.ts != q.ts {
                    return Err(format!("trade {t:?} not at the touch of {q:?}"));
                }
                if !t.quantity.is_positive() || !t.quantity.is_multiple_of(inst.lot_size) || t.quantity > shown {
                    return Err(format!("bad trade size in {t:?} for {q:?}"));
                }
            }
        }
        Ok(())
    }

    #[test]
    fn default_instruments_are_valid_and_resolvable() {
        let specs = default_instruments();
        let ids: Vec<u32> = specs.iter().map(|s| s.instrument.id.0).collect();
        assert_eq!(ids, [1, 2, 3, 4, 5]);
        for s in &specs {
            assert_eq!(s.validate(), Ok(()), "{}", s.instrument.symbol);
            assert_eq!(s.instrument.venue, "paper", "{}", s.instrument.symbol);
        }
        let btc = &specs[0].instrument;
        assert_eq!(btc.tick_size.to_string(), "0.01");
        assert_eq!(btc.lot_size.to_string(), "0.00001");
        assert_eq!(btc.min_notional, Money::from_int(5));
        assert_eq!(btc.quote_currency.as_str(), "USDT");
        assert_eq!(specs[3].instrument.asset_class, AssetClass::Equity);
        assert_eq!(specs[3].instrument.quote_currency.as_str(), "USD");

        let cases = [
            ("exact", "BTC-USDT", Some(1)),
            ("lower case, no dash", "btcusdt", Some(1)),
            ("slash", "ETH/USDT", Some(2)),
            ("underscore and spaces", " sol_usdt ", Some(3)),
            ("equity", "AAPL", Some(4)),
            ("equity lower", "spy", Some(5)),
            ("unknown", "DOGE-USDT", None),
            ("empty", "", None),
            ("only separators", "-/", None),
        ];
        for (name, symbol, id) in cases {
            assert_eq!(find_default(symbol).map(|s| s.instrument.id.0), id, "{name}");
        }
    }

    /// (name, spec, which error is expected)
    type SpecCase = (&'static str, MarketSpec, fn(&MarketError) -> bool);

    #[test]
    fn invalid_specs_are_refused() {
        let base = spec(100, 0.001, 5, 0.5);
        let mut off_tick = base.clone();
        off_tick.start_price = Price::parse("100.005").unwrap();
        let mut too_low = base.clone();
        too_low.start_price = Price::parse("0.04").unwrap();
        let mut zero_tick = base.clone();
        zero_tick.instrument.tick_size = Price::ZERO;
        let cases: Vec<SpecCase> = vec![
            ("off tick start", off_tick, |e| matches!(e, MarketError::StartPrice { .. })),
            ("start below floor", too_low, |e| matches!(e, MarketError::StartPrice { .. })),
            ("zero tick", zero_tick, |e| matches!(e, MarketError::Instrument { .. })),
            ("nan volatility", spec(100, f64::NAN, 5, 0.5), |e| matches!(e, MarketError::Volatility { .. })),
            ("negative volatility", spec(100, -0.1, 5, 0.5), |e| matches!(e, MarketError::Volatility { .. })),
            ("spread over 100%", spec(100, 0.001, 10_001, 0.5), |e| matches!(e, MarketError::Spread { .. })),
            ("probability above 1", spec(100, 0.001, 5, 1.5), |e| matches!(e, MarketError::TradeProbability { .. })),
        ];
        for (name, s, expected) in cases {
            let err = SimulatedMarket::new_checked(vec![s], 1, START).expect_err(name);
            assert!(expected(&err), "{name}: {err}");
        }
        let dup = SimulatedMarket::new_checked(vec![base.clone(), base], 1, START).expect_err("duplicate");
        assert_eq!(dup, MarketError::DuplicateInstrument(InstrumentId(1)));
    }

    #[test]
    #[should_panic(expected = "invalid market spec")]
    fn new_panics_on_invalid_spec() {
        let _ = SimulatedMarket::new(vec![spec(100, -1.0, 5, 0.5)], 1, START);
    }

    #[test]
    fn same_seed_same_ticks_other_seed_other_ticks() {
        // Irregular steps, including a repeated and a backwards `now`.
        let nows: Vec<Timestamp> = [100, 350, 350, 900, 800, 2_000, 2_050, 7_000]
            .iter()
            .cycle()
            .take(400)
            .enumerate()
            .map(|(i, ms)| START.plus_nanos((i as i64 / 8) * 10_000_000_000 + ms * 1_000_000))
            .collect();
        let ticks = |seed| {
            let mut m = SimulatedMarket::new(default_instruments(), seed, START);
            let mut out = Vec::new();
            for &now in &nows {
                m.step(now, &mut out);
            }
            out
        };
        let a = ticks(42);
        assert_eq!(a, ticks(42));
        assert_ne!(a, ticks(43));
        assert!(a.iter().any(|t| matches!(t, MarketTick::Trade(_))));
        // Timestamps never go backwards.
        assert!(a.windows(2).all(|w| w[0].ts() <= w[1].ts()));
    }

    #[test]
    fn an_instrument_path_does_not_depend_on_the_others() {
        let all = run(&mut SimulatedMarket::new(default_instruments(), 7, START), 200, 250_000_000);
        let alone = run(&mut SimulatedMarket::new(vec![default_instruments()[2].clone()], 7, START), 200, 250_000_000);
        let sol: Vec<_> = all.into_iter().filter(|t| t.instrument() == InstrumentId(3)).collect();
        assert_eq!(sol, alone);
    }

    #[test]
    fn quotes_and_trades_hold_their_invariants() {
        let cases = [
            ("defaults at 5 Hz", default_instruments(), 20_000, 200_000_000),
            ("zero spread, cheap", vec![spec(1, 0.01, 0, 1.0)], 20_000, 1_000_000_000),
            ("widest spread", vec![spec(1, 0.05, MAX_SPREAD_BPS, 1.0)], 20_000, 1_000_000_000),
        ];
        for (name, specs, steps, step_ns) in cases {
            let mut market = SimulatedMarket::new(specs.clone(), 11, START);
            let ticks = run(&mut market, steps, step_ns);
            let mut last = vec![None; specs.len()];
            let mut trades = 0;
            for tick in &ticks {
                check_tick(&specs, &mut last, tick).unwrap_or_else(|e| panic!("{name}: {e}"));
                trades += usize::from(matches!(tick, MarketTick::Trade(_)));
            }
            assert_eq!(ticks.len() - trades, steps * specs.len(), "{name}: one quote per instrument per step");
            for (s, q) in specs.iter().zip(&last) {
                assert_eq!(market.last_quote(s.instrument.id), q.as_ref(), "{name}");
            }
        }
    }

    #[test]
    fn prices_stay_positive_and_bounded_over_a_million_volatile_steps() {
        // 5 % per step: the walk hits both the floor and the ceiling.
        let specs = vec![spec(1, 0.05, 50, 0.5)];
        let mut market = SimulatedMarket::new(specs.clone(), 3, START);
        let mut last = vec![None];
        let (mut lowest, mut highest) = (Price::from_raw(i64::MAX), Price::ZERO);
        let mut out = Vec::with_capacity(4);
        let mut now = START;
        for _ in 0..1_000_000 {
            now = now.plus_nanos(NANOS_PER_SECOND);
            out.clear();
            market.step(now, &mut out);
            for tick in &out {
                check_tick(&specs, &mut last, tick).unwrap();
                if let MarketTick::Quote(q) = tick {
                    lowest = lowest.min(q.bid);
                    highest = highest.max(q.ask);
                }
            }
        }
        let tick = specs[0].instrument.tick_size;
        let floor = Price::from_raw(tick.raw() * (MIN_MID_TICKS - 1));
        assert!(lowest >= floor, "bid fell to {lowest}");
        assert!(lowest <= Price::from_raw(tick.raw() * MIN_MID_TICKS), "floor never reached: lowest {lowest}");
        assert!(highest.to_f64() <= MAX_MID * 1.01, "ask rose to {highest}");
        assert!(highest.to_f64() >= MAX_MID * 0.99, "ceiling never reached: highest {highest}");
    }

    /// Sample mean, standard deviation and excess kurtosis.
    #[allow(clippy::cast_precision_loss)]
    fn moments(xs: &[f64]) -> (f64, f64, f64) {
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let m2 = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
        let m4 = xs.iter().map(|x| (x - mean).powi(4)).sum::<f64>() / n;
        (mean, m2.sqrt(), m4 / (m2 * m2) - 3.0)
    }

    #[test]
    fn log_returns_have_the_spec_volatility_scaled_by_sqrt_time() {
        // (name, volatility, step lengths cycled in ms)
        let cases: [(&str, f64, &[i64]); 4] = [
            ("crypto, 1 s steps", 0.0003, &[1_000]),
            ("crypto, 200 ms steps", 0.0003, &[200]),
            ("equity, 5 s steps", 0.0001, &[5_000]),
            ("irregular 100 ms / 900 ms / 3 s", 0.0005, &[100, 900, 3_000]),
        ];
        const STEPS: usize = 60_000;
        for (seed, (name, vol, steps_ms)) in cases.into_iter().enumerate() {
            // A high price so tick rounding is noise far below the walk.
            let mut market = SimulatedMarket::new(vec![spec(60_000, vol, 1, 0.0)], seed as u64, START);
            let mut out = Vec::new();
            let mut now = START;
            market.step(now, &mut out);
            let mut prev = market.last_quote(InstrumentId(1)).unwrap().mid().to_f64();
            let mut z = Vec::with_capacity(STEPS);
            for i in 0..STEPS {
                let dt_ms = steps_ms[i % steps_ms.len()];
                now = now.plus_nanos(dt_ms * 1_000_000);
                market.step(now, &mut out);
                let mid = market.last_quote(InstrumentId(1)).unwrap().mid().to_f64();
                // Normalised to one second, so every case should show `vol`.
                #[allow(clippy::cast_precision_loss)]
                z.push((mid / prev).ln() / (dt_ms as f64 / 1_000.0).sqrt());
                prev = mid;
            }
            let (mean, std, kurtosis) = moments(&z);
            // The standard error of the std is vol / sqrt(2n) (0.3 %); allow 5 of them.
            assert!((std / vol - 1.0).abs() < 0.015, "{name}: std {std} vs spec {vol}");
            // Driftless in log space: the mean is within 5 standard errors of 0.
            #[allow(clippy::cast_precision_loss)]
            let se_mean = vol / (STEPS as f64).sqrt();
            assert!(mean.abs() < 5.0 * se_mean, "{name}: mean {mean} (se {se_mean})");
            // Normal shocks: excess kurtosis near 0 (its standard error is about 0.02).
            assert!(kurtosis.abs() < 0.15, "{name}: excess kurtosis {kurtosis}");
        }
    }

    #[test]
    fn trades_print_at_the_spec_rate_on_both_sides() {
        let cases = [("never", 0.0), ("a third", 0.3), ("always", 1.0)];
        const STEPS: usize = 50_000;
        for (name, p) in cases {
            let ticks = run(&mut SimulatedMarket::new(vec![spec(100, 0.001, 5, p)], 5, START), STEPS, 200_000_000);
            let buys = ticks.iter().filter(|t| matches!(t, MarketTick::Trade(t) if t.aggressor == Side::Buy)).count();
            let sells = ticks.iter().filter(|t| matches!(t, MarketTick::Trade(t) if t.aggressor == Side::Sell)).count();
            #[allow(clippy::cast_precision_loss)]
            let rate = (buys + sells) as f64 / STEPS as f64;
            assert!((rate - p).abs() < 0.01, "{name}: trade rate {rate} vs {p}");
            if p > 0.0 {
                #[allow(clippy::cast_precision_loss)]
                let buy_share = buys as f64 / (buys + sells) as f64;
                assert!((buy_share - 0.5).abs() < 0.02, "{name}: buy share {buy_share}");
            }
        }
    }

    #[test]
    fn quotes_round_the_walk_outward_onto_the_tick_grid() {
        // With a zero-volatility walk the mid stays at the start, so the quote
        // is exactly the rounded spread around it.
        let cases = [
            ("1 bp around 60000", 60_000, 1, "59997", "60003"),
            ("zero spread still one tick wide", 100, 0, "100", "100.01"),
            ("3 bp around 150", 150, 3, "149.97", "150.03"),
            ("7 bp around 190 rounds outward", 190, 7, "189.93", "190.07"),
        ];
        for (name, start, bps, bid, ask) in cases {
            let mut market = SimulatedMarket::new(vec![spec(start, 0.0, bps, 0.0)], 1, START);
            let mut out = Vec::new();
            market.step(START.plus_nanos(NANOS_PER_SECOND), &mut out);
            let q = market.last_quote(InstrumentId(1)).unwrap();
            assert_eq!((q.bid.to_string(), q.ask.to_string()), (bid.to_string(), ask.to_string()), "{name}");
            let tick = market.specs()[0].instrument.tick_size;
            assert_eq!(q.bid.round_to(tick, RoundingMode::Down), q.bid, "{name}");
        }
    }

    #[test]
    fn last_quote_before_the_first_step_and_for_unknown_ids() {
        let mut market = SimulatedMarket::new(default_instruments(), 1, START);
        assert!(market.last_quote(InstrumentId(1)).is_none());
        market.step(START, &mut Vec::new());
        assert_eq!(market.last_quote(InstrumentId(1)).unwrap().ts, START);
        assert!(market.last_quote(InstrumentId(99)).is_none());
    }

    #[test]
    fn ticks_serialize_with_a_type_tag_and_round_trip() {
        let mut market = SimulatedMarket::new(vec![spec(100, 0.001, 5, 1.0)], 1, START);
        let mut out = Vec::new();
        market.step(START, &mut out);
        assert_eq!(out.len(), 2);
        for tick in out {
            let json = serde_json::to_value(tick).unwrap();
            let tag = if matches!(tick, MarketTick::Quote(_)) { "quote" } else { "trade" };
            assert_eq!(json["type"], tag);
            assert!(json["ts"].is_string());
            assert_eq!(serde_json::from_value::<MarketTick>(json).unwrap(), tick);
        }
    }
}
