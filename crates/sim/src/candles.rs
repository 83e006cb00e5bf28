//! Candles (OHLCV per time bucket) aggregated from trades, and optionally
//! from quote mids, for the intervals 1m, 5m, 1h and 1d.
//!
//! Buckets are aligned to the Unix epoch, so they start on whole UTC minutes,
//! hours and days; every interval divides the next, so a bucket of a coarser
//! interval is exactly a run of whole buckets of a finer one.
//!
//! [`CandleAggregator`] keeps one open candle per interval for one instrument.
//! A candle is emitted once, when it completes: when an update falls in a later
//! bucket, or when [`CandleAggregator::flush`] sees that its bucket has ended.
//! Buckets without any update produce no candle (charts show a gap).
//!
//! Inside a candle, `open` is the price of the earliest update by timestamp and
//! `close` that of the latest (ties go to the later arrival), so updates that
//! arrive out of order within the open candle give the same candle as sorted
//! ones. Price comparisons and volume sums are exact integer operations.
//!
//! Late updates: an update is applied only if its timestamp is at or after the
//! aggregator's *floor*, the latest of the open candles' starts (or, for an
//! interval with no open candle, the end of its last emitted one). Because the
//! buckets nest, that floor is the start of the finest interval's open candle.
//! An earlier update would have to change a candle already emitted, or make
//! the intervals disagree, so it is dropped from every interval and counted
//! ([`CandleAggregator::late_trades`], [`CandleAggregator::late_mids`]).
//! Callers whose feed can lag should pass `flush` a `now` less a grace period.
//! One consequence: candles of one interval are emitted in strictly increasing
//! `start` order, and [`roll_up`] of the finer candles equals the coarser ones.

use std::fmt;
use std::str::FromStr;

use model::time::{NANOS_PER_DAY, NANOS_PER_HOUR, NANOS_PER_MINUTE};
use model::{Bar, InstrumentId, Price, Quantity, Timestamp};
use serde::{Deserialize, Serialize};

/// A candle length. Ordered from finest to coarsest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Interval {
    #[serde(rename = "1m")]
    M1,
    #[serde(rename = "5m")]
    M5,
    #[serde(rename = "1h")]
    H1,
    #[serde(rename = "1d")]
    D1,
}

/// An interval name that is not one of `1m`, `5m`, `1h`, `1d`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown interval '{0}'; expected one of 1m, 5m, 1h, 1d")]
pub struct ParseIntervalError(pub String);

impl Interval {
    /// Finest first.
    pub const ALL: [Self; 4] = [Self::M1, Self::M5, Self::H1, Self::D1];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::M1 => "1m",
            Self::M5 => "5m",
            Self::H1 => "1h",
            Self::D1 => "1d",
        }
    }

    /// The bucket length in nanoseconds.
    #[must_use]
    pub const fn as_nanos(self) -> i64 {
        match self {
            Self::M1 => NANOS_PER_MINUTE,
            Self::M5 => 5 * NANOS_PER_MINUTE,
            Self::H1 => NANOS_PER_HOUR,
            Self::D1 => NANOS_PER_DAY,
        }
    }

    /// The start of the UTC-aligned bucket holding `ts` (midnight UTC for
    /// `1d`). Saturates at the earliest timestamp.
    #[must_use]
    pub const fn start_of(self, ts: Timestamp) -> Timestamp {
        let ns = ts.as_nanos();
        Timestamp::from_nanos(ns.saturating_sub(ns.rem_euclid(self.as_nanos())))
    }

    /// Whether a bucket of `self` is a run of two or more whole buckets of `finer`.
    #[must_use]
    pub const fn is_coarser_than(self, finer: Self) -> bool {
        self.as_nanos() > finer.as_nanos() && self.as_nanos() % finer.as_nanos() == 0
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Interval {
    type Err = ParseIntervalError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        Self::ALL.into_iter().find(|i| i.as_str() == t).ok_or_else(|| ParseIntervalError(t.to_string()))
    }
}

/// One OHLCV candle. `start` is the bucket's open time; the candle covers
/// `[start, start + interval)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candle {
    pub instrument: InstrumentId,
    pub interval: Interval,
    pub start: Timestamp,
    pub open: Price,
    pub high: Price,
    pub low: Price,
    pub close: Price,
    /// Traded quantity; quote mids add none.
    pub volume: Quantity,
    /// Number of trades; quote mids add none.
    pub trades: u64,
}

impl Candle {
    /// The first instant after the bucket.
    #[must_use]
    pub const fn end(&self) -> Timestamp {
        self.start.plus_nanos(self.interval.as_nanos())
    }

    #[must_use]
    pub const fn contains(&self, ts: Timestamp) -> bool {
        ts.as_nanos() >= self.start.as_nanos() && ts.as_nanos() < self.end().as_nanos()
    }

    /// As a model bar (whose `ts` is also the open time), for strategies.
    #[must_use]
    pub const fn to_bar(&self) -> Bar {
        Bar { ts: self.start, open: self.open, high: self.high, low: self.low, close: self.close, volume: self.volume }
    }
}

/// Volumes saturate rather than wrap: `i64` holds 9.2 billion units, more
/// than any day of our instruments. Saturating addition of non-negative
/// values is associative, so roll-ups still agree with direct aggregation.
fn add_volume(a: Quantity, b: Quantity) -> Quantity {
    Quantity::from_raw(a.raw().saturating_add(b.raw()))
}

/// The candle being built for one interval, with the timestamps that decide
/// which update sets `open` and `close`.
#[derive(Debug, Clone)]
struct OpenCandle {
    candle: Candle,
    first_ts: Timestamp,
    last_ts: Timestamp,
}

#[derive(Debug, Clone)]
struct Slot {
    interval: Interval,
    open: Option<OpenCandle>,
    /// The end of the last candle emitted for this interval.
    closed_until: Option<Timestamp>,
}

impl Slot {
    fn floor(&self) -> Option<Timestamp> {
        self.open.as_ref().map(|o| o.candle.start).or(self.closed_until)
    }

    fn close(&mut self, out: &mut Vec<Candle>) {
        if let Some(o) = self.open.take() {
            self.closed_until = Some(o.candle.end());
            out.push(o.candle);
        }
    }
}

/// One price update: a trade, or a quote mid with no volume.
#[derive(Debug, Clone, Copy)]
struct Update {
    ts: Timestamp,
    price: Price,
    volume: Quantity,
    trades: u64,
}

/// Builds candles of several intervals for one instrument. See the module
/// docs for the late-update rule.
#[derive(Debug, Clone)]
pub struct CandleAggregator {
    instrument: InstrumentId,
    /// Finest first, no repeats.
    slots: Vec<Slot>,
    late_trades: u64,
    late_mids: u64,
    invalid_trades: u64,
}

impl CandleAggregator {
    /// An aggregator for `intervals` (repeats are ignored; order does not matter).
    #[must_use]
    pub fn new(instrument: InstrumentId, intervals: &[Interval]) -> Self {
        let mut intervals = intervals.to_vec();
        intervals.sort_unstable();
        intervals.dedup();
        let slots = intervals.into_iter().map(|interval| Slot { interval, open: None, closed_until: None }).collect();
        Self { instrument, slots, late_trades: 0, late_mids: 0, invalid_trades: 0 }
    }

    /// Applies a trade. Candles it completes are pushed to `out`, finest
    /// interval first. A trade with a non-positive quantity is ignored and
    /// counted in [`Self::invalid_trades`]; a late one (see the module docs) in
    /// [`Self::late_trades`].
    pub fn on_trade(&mut self, ts: Timestamp, price: Price, quantity: Quantity, out: &mut Vec<Candle>) {
        if !quantity.is_positive() {
            self.invalid_trades += 1;
            return;
        }
        if !self.apply(Update { ts, price, volume: quantity, trades: 1 }, out) {
            self.late_trades += 1;
        }
    }

    /// Applies a quote mid: it moves the prices like a trade but adds no
    /// volume and no trade count. Meant for instruments charted from quotes;
    /// feeding both trades and mids to one aggregator blends the two prices.
    pub fn on_mid(&mut self, ts: Timestamp, mid: Price, out: &mut Vec<Candle>) {
        if !self.apply(Update { ts, price: mid, volume: Quantity::ZERO, trades: 0 }, out) {
            self.late_mids += 1;
        }
    }

    /// Emits, finest first, every open candle whose bucket has ended by `now`
    /// (`end <= now`). Call it on a timer so a quiet market still closes its
    /// candles; it never creates candles for buckets without updates.
    pub fn flush(&mut self, now: Timestamp, out: &mut Vec<Candle>) {
        for slot in &mut self.slots {
            if slot.open.as_ref().is_some_and(|o| o.candle.end() <= now) {
                slot.close(out);
            }
        }
    }

    /// The open (incomplete) candle of `interval`, for live charts; `None`
    /// when nothing has arrived since the last one closed, or when the
    /// interval is not aggregated here.
    #[must_use]
    pub fn current(&self, interval: Interval) -> Option<&Candle> {
        self.slots.iter().find(|s| s.interval == interval)?.open.as_ref().map(|o| &o.candle)
    }

    /// The earliest timestamp an update may have and still be applied; `None`
    /// before the first update.
    #[must_use]
    pub fn floor(&self) -> Option<Timestamp> {
        self.slots.iter().filter_map(Slot::floor).max()
    }

    #[must_use]
    pub const fn instrument(&self) -> InstrumentId {
        self.instrument
    }

    /// The aggregated intervals, finest first.
    pub fn intervals(&self) -> impl Iterator<Item = Interval> + '_ {
        self.slots.iter().map(|s| s.interval)
    }

    /// Trades dropped because they were older than [`Self::floor`].
    #[must_use]
    pub const fn late_trades(&self) -> u64 {
        self.late_trades
    }

    /// Quote mids dropped because they were older than [`Self::floor`].
    #[must_use]
    pub const fn late_mids(&self) -> u64 {
        self.late_mids
    }

    /// Trades dropped for a quantity that was zero or negative.
    #[must_use]
    pub const fn invalid_trades(&self) -> u64 {
        self.invalid_trades
    }

    /// Applies `u` to every interval; `false` when it is late and was dropped.
    fn apply(&mut self, u: Update, out: &mut Vec<Candle>) -> bool {
        if self.floor().is_some_and(|floor| u.ts < floor) {
            return false;
        }
        for slot in &mut self.slots {
            match &mut slot.open {
                Some(o) if o.candle.contains(u.ts) => {
                    let c = &mut o.candle;
                    if u.ts < o.first_ts {
                        c.open = u.price;
                        o.first_ts = u.ts;
                    }
                    if u.ts >= o.last_ts {
                        c.close = u.price;
                        o.last_ts = u.ts;
                    }
                    c.high = c.high.max(u.price);
                    c.low = c.low.min(u.price);
                    c.volume = add_volume(c.volume, u.volume);
                    c.trades += u.trades;
                }
                // Not before the open candle (the floor saw to that), so in a later bucket.
                open => {
                    if open.is_some() {
                        slot.close(out);
                    }
                    slot.open = Some(OpenCandle {
                        candle: Candle {
                            instrument: self.instrument,
                            interval: slot.interval,
                            start: slot.interval.start_of(u.ts),
                            open: u.price,
                            high: u.price,
                            low: u.price,
                            close: u.price,
                            volume: u.volume,
                            trades: u.trades,
                        },
                        first_ts: u.ts,
                        last_ts: u.ts,
                    });
                }
            }
        }
        true
    }
}

/// Why a set of candles cannot be rolled up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RollUpError {
    #[error("cannot roll {from} candles up to {to}: the target must be a coarser interval")]
    NotCoarser { from: Interval, to: Interval },
    #[error("candle {index} is {found}, but the first is {expected}")]
    MixedIntervals { index: usize, expected: Interval, found: Interval },
    #[error("candle {index} is for instrument {found}, but the first is for {expected}")]
    MixedInstruments { index: usize, expected: InstrumentId, found: InstrumentId },
    #[error("candle {index} starts at {start}, not after the previous one at {previous}")]
    NotIncreasing { index: usize, start: Timestamp, previous: Timestamp },
    #[error("candle {index} starts at {start}, which is not on a {interval} boundary")]
    Misaligned { index: usize, start: Timestamp, interval: Interval },
}

/// Aggregates closed candles of one instrument and one finer interval, in
/// strictly increasing `start` order, into candles of `to`: open of the first,
/// close of the last, extreme high and low, summed volume and trades.
///
/// Every input candle counts, so the last output candle is complete only if
/// the input covers its whole bucket; the roll-up job should pass only
/// candles whose `to` bucket has ended. Empty input gives empty output.
pub fn roll_up(candles: &[Candle], to: Interval) -> Result<Vec<Candle>, RollUpError> {
    let Some(first) = candles.first() else {
        return Ok(Vec::new());
    };
    if !to.is_coarser_than(first.interval) {
        return Err(RollUpError::NotCoarser { from: first.interval, to });
    }
    let mut rolled: Vec<Candle> = Vec::new();
    let mut previous: Option<Timestamp> = None;
    for (index, c) in candles.iter().enumerate() {
        if c.interval != first.interval {
            return Err(RollUpError::MixedIntervals { index, expected: first.interval, found: c.interval });
        }
        if c.instrument != first.instrument {
            return Err(RollUpError::MixedInstruments { index, expected: first.instrument, found: c.instrument });
        }
        if c.interval.start_of(c.start) != c.start {
            return Err(RollUpError::Misaligned { index, start: c.start, interval: c.interval });
        }
        if let Some(previous) = previous.filter(|p| c.start <= *p) {
            return Err(RollUpError::NotIncreasing { index, start: c.start, previous });
        }
        previous = Some(c.start);
        let start = to.start_of(c.start);
        match rolled.last_mut() {
            Some(r) if r.start == start => {
                r.high = r.high.max(c.high);
                r.low = r.low.min(c.low);
                r.close = c.close;
                r.volume = add_volume(r.volume, c.volume);
                r.trades += c.trades;
            }
            _ => rolled.push(Candle { interval: to, start, ..*c }),
        }
    }
    Ok(rolled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ID: InstrumentId = InstrumentId(7);

    fn ts(text: &str) -> Timestamp {
        Timestamp::parse(text).unwrap()
    }

    fn p(text: &str) -> Price {
        Price::parse(text).unwrap()
    }

    fn q(text: &str) -> Quantity {
        Quantity::parse(text).unwrap()
    }

    /// `(start, open, high, low, close, volume, trades)` of a candle, as text.
    fn ohlcv(c: &Candle) -> (String, String, String, String, String, String, u64) {
        (
            c.start.to_string(),
            c.open.to_string(),
            c.high.to_string(),
            c.low.to_string(),
            c.close.to_string(),
            c.volume.to_string(),
            c.trades,
        )
    }

    fn expect(
        rows: &[(&str, &str, &str, &str, &str, &str, u64)],
    ) -> Vec<(String, String, String, String, String, String, u64)> {
        rows.iter().map(|r| (r.0.into(), r.1.into(), r.2.into(), r.3.into(), r.4.into(), r.5.into(), r.6)).collect()
    }

    #[test]
    fn interval_names_round_trip_and_errors_list_the_choices() {
        for i in Interval::ALL {
            assert_eq!(i.to_string().parse::<Interval>(), Ok(i), "{i}");
            assert_eq!(serde_json::to_string(&i).unwrap(), format!("\"{i}\""), "{i}");
            assert_eq!(serde_json::from_str::<Interval>(&format!("\"{i}\"")).unwrap(), i, "{i}");
        }
        for bad in ["1M", "15m", "", "day", "1 m"] {
            let msg = bad.parse::<Interval>().unwrap_err().to_string();
            for i in Interval::ALL {
                assert!(msg.contains(i.as_str()), "{bad:?}: {msg}");
            }
        }
        assert_eq!(" 5m ".parse::<Interval>(), Ok(Interval::M5));
        let nanos: Vec<i64> = Interval::ALL.iter().map(|i| i.as_nanos() / 1_000_000_000).collect();
        assert_eq!(nanos, [60, 300, 3_600, 86_400]);
    }

    #[test]
    fn buckets_align_to_utc() {
        let cases = [
            ("minute", Interval::M1, "2024-03-10T13:47:59.999Z", "2024-03-10T13:47:00Z"),
            ("five minutes", Interval::M5, "2024-03-10T13:47:12Z", "2024-03-10T13:45:00Z"),
            ("five minutes on the boundary", Interval::M5, "2024-03-10T13:45:00Z", "2024-03-10T13:45:00Z"),
            ("hour", Interval::H1, "2024-03-10T13:47:12Z", "2024-03-10T13:00:00Z"),
            ("day, last nanosecond", Interval::D1, "2024-03-09T23:59:59.999999999Z", "2024-03-09T00:00:00Z"),
            ("day, midnight", Interval::D1, "2024-03-10T00:00:00Z", "2024-03-10T00:00:00Z"),
            ("day, an offset input", Interval::D1, "2024-03-10T01:30:00+02:00", "2024-03-09T00:00:00Z"),
            ("day before 1970", Interval::D1, "1969-12-31T12:00:00Z", "1969-12-31T00:00:00Z"),
            ("minute before 1970", Interval::M1, "1969-12-31T23:59:30Z", "1969-12-31T23:59:00Z"),
        ];
        for (name, interval, at, start) in cases {
            assert_eq!(interval.start_of(ts(at)), ts(start), "{name}");
        }
        assert_eq!(Interval::M1.start_of(Timestamp::from_nanos(i64::MIN)), Timestamp::from_nanos(i64::MIN));
    }

    #[test]
    fn coarser_is_strict() {
        let cases = [
            ("1m to 5m", Interval::M5, Interval::M1, true),
            ("1m to 1d", Interval::D1, Interval::M1, true),
            ("5m to 1h", Interval::H1, Interval::M5, true),
            ("same", Interval::H1, Interval::H1, false),
            ("finer", Interval::M1, Interval::M5, false),
        ];
        for (name, to, from, expected) in cases {
            assert_eq!(to.is_coarser_than(from), expected, "{name}");
        }
    }

    /// The hand-written sequence across minute and five-minute boundaries.
    fn trade_sequence() -> Vec<(&'static str, &'static str, &'static str)> {
        vec![
            ("2024-01-02T10:00:05Z", "100.00", "1"),
            ("2024-01-02T10:00:30Z", "101.50", "0.5"),
            ("2024-01-02T10:00:59.999999999Z", "99.25", "2"),
            // New minute, same five minutes.
            ("2024-01-02T10:01:00Z", "99.50", "1.25"),
            // 10:02 and 10:03 are quiet.
            ("2024-01-02T10:04:10Z", "102.00", "3"),
            ("2024-01-02T10:04:20Z", "98.00", "0.1"),
            // New five minutes.
            ("2024-01-02T10:05:00Z", "98.10", "4"),
            ("2024-01-02T10:09:59Z", "97.00", "1"),
            // Skips a whole five-minute bucket.
            ("2024-01-02T10:15:01Z", "96.00", "2"),
        ]
    }

    #[test]
    fn hand_written_trades_give_exact_candles() {
        let mut agg = CandleAggregator::new(ID, &[Interval::M5, Interval::M1, Interval::M1]);
        assert_eq!(agg.intervals().collect::<Vec<_>>(), [Interval::M1, Interval::M5]);
        let mut out = Vec::new();
        for (at, price, quantity) in trade_sequence() {
            agg.on_trade(ts(at), p(price), q(quantity), &mut out);
        }
        let pick = |out: &[Candle], i| out.iter().filter(|c| c.interval == i).map(ohlcv).collect::<Vec<_>>();
        let m1 = expect(&[
            ("2024-01-02T10:00:00Z", "100", "101.5", "99.25", "99.25", "3.5", 3),
            ("2024-01-02T10:01:00Z", "99.5", "99.5", "99.5", "99.5", "1.25", 1),
            ("2024-01-02T10:04:00Z", "102", "102", "98", "98", "3.1", 2),
            ("2024-01-02T10:05:00Z", "98.1", "98.1", "98.1", "98.1", "4", 1),
            ("2024-01-02T10:09:00Z", "97", "97", "97", "97", "1", 1),
        ]);
        let m5 = expect(&[
            ("2024-01-02T10:00:00Z", "100", "102", "98", "98", "7.85", 6),
            ("2024-01-02T10:05:00Z", "98.1", "98.1", "97", "97", "5", 2),
        ]);
        assert_eq!(pick(&out, Interval::M1), m1, "1m");
        assert_eq!(pick(&out, Interval::M5), m5, "5m");
        // Completed candles come out finest first when one trade closes both.
        let at_1005: Vec<Interval> =
            out.iter().filter(|c| c.end() == ts("2024-01-02T10:05:00Z")).map(|c| c.interval).collect();
        assert_eq!(at_1005, [Interval::M1, Interval::M5]);
        // The last trade is still open in both intervals.
        let open = expect(&[("2024-01-02T10:15:00Z", "96", "96", "96", "96", "2", 1)]);
        assert_eq!(vec![ohlcv(agg.current(Interval::M1).unwrap())], open, "open 1m");
        assert_eq!(agg.current(Interval::M5).unwrap().start, ts("2024-01-02T10:15:00Z"), "open 5m");
        assert!(agg.current(Interval::H1).is_none(), "not aggregated");
        assert_eq!((agg.late_trades(), agg.invalid_trades()), (0, 0));
    }

    #[test]
    fn flush_closes_quiet_candles_once() {
        let mut agg = CandleAggregator::new(ID, &[Interval::M1, Interval::M5]);
        let mut out = Vec::new();
        agg.on_trade(ts("2024-01-02T10:00:30Z"), p("10"), q("1"), &mut out);
        let cases = [
            ("before the minute ends", "2024-01-02T10:00:59.999999999Z", vec![]),
            ("at the minute's end", "2024-01-02T10:01:00Z", vec![Interval::M1]),
            ("again: nothing left to close", "2024-01-02T10:03:00Z", vec![]),
            ("at the five minutes' end", "2024-01-02T10:05:00Z", vec![Interval::M5]),
            ("long after", "2024-01-03T00:00:00Z", vec![]),
        ];
        for (name, now, closed) in cases {
            out.clear();
            agg.flush(ts(now), &mut out);
            assert_eq!(out.iter().map(|c| c.interval).collect::<Vec<_>>(), closed, "{name}");
            assert!(out.iter().all(|c| c.start == ts("2024-01-02T10:00:00Z") && c.volume == q("1")), "{name}");
        }
        assert!(agg.current(Interval::M1).is_none() && agg.current(Interval::M5).is_none());
        // Trading resumes in a fresh bucket, with no empty candles for the gap.
        out.clear();
        agg.on_trade(ts("2024-01-02T11:00:00Z"), p("11"), q("2"), &mut out);
        assert!(out.is_empty());
        assert_eq!(agg.current(Interval::M5).unwrap().start, ts("2024-01-02T11:00:00Z"));
    }

    #[test]
    fn daily_candles_split_at_utc_midnight() {
        let mut agg = CandleAggregator::new(ID, &[Interval::D1]);
        let mut out = Vec::new();
        agg.on_trade(ts("2024-03-09T00:00:00Z"), p("1"), q("1"), &mut out);
        agg.on_trade(ts("2024-03-09T23:59:59.999999999Z"), p("2"), q("1"), &mut out);
        assert!(out.is_empty(), "same UTC day");
        // 01:00 in UTC+2 is 23:00 on the 9th in UTC: same candle, and earlier
        // than the last trade, so it sets the high but not the close.
        agg.on_trade(ts("2024-03-10T01:00:00+02:00"), p("3"), q("1"), &mut out);
        assert!(out.is_empty(), "offset input on the same UTC day");
        agg.on_trade(ts("2024-03-10T00:00:00Z"), p("4"), q("1"), &mut out);
        assert_eq!(out.len(), 1, "midnight opens a new day");
        assert_eq!(ohlcv(&out[0]), expect(&[("2024-03-09T00:00:00Z", "1", "3", "1", "2", "3", 3)])[0]);
        agg.flush(ts("2024-03-11T00:00:00Z"), &mut out);
        assert_eq!(out[1].start, ts("2024-03-10T00:00:00Z"));
        assert_eq!(out[1].end(), ts("2024-03-11T00:00:00Z"));
    }

    #[test]
    fn late_and_out_of_order_trades_follow_the_floor_rule() {
        // Open candles: 1m at 10:03, 5m at 10:00 (after trades at 10:01:30 and 10:03:30).
        // (name, trade time, expected late count after, expected 1m OHLC+volume)
        let cases = [
            ("inside the open minute but earlier: becomes the open", "10:03:10", 0, ("5", "20", "5", "20", "3")),
            ("at the open minute's start", "10:03:00", 0, ("5", "20", "5", "20", "3")),
            (
                "before the open minute, inside the open 5m: late everywhere",
                "10:02:59",
                1,
                ("20", "20", "20", "20", "1"),
            ),
            ("in a candle already emitted: late", "10:01:45", 1, ("20", "20", "20", "20", "1")),
            ("the previous day: late", "09:59:00", 1, ("20", "20", "20", "20", "1")),
            ("same time as the last trade: becomes the close", "10:03:30", 0, ("20", "20", "5", "5", "3")),
        ];
        for (name, at, late, (open, high, low, close, volume)) in cases {
            let mut agg = CandleAggregator::new(ID, &[Interval::M1, Interval::M5]);
            let mut out = Vec::new();
            agg.on_trade(ts("2024-01-02T10:01:30Z"), p("10"), q("1"), &mut out);
            agg.on_trade(ts("2024-01-02T10:03:30Z"), p("20"), q("1"), &mut out);
            assert_eq!(agg.floor(), Some(ts("2024-01-02T10:03:00Z")), "{name}");
            let at = if at.starts_with("09") { format!("2024-01-01T{at}Z") } else { format!("2024-01-02T{at}Z") };
            agg.on_trade(ts(&at), p("5"), q("2"), &mut out);
            assert_eq!(agg.late_trades(), late, "{name}");
            let m1 = agg.current(Interval::M1).unwrap();
            assert_eq!(
                (
                    m1.open.to_string(),
                    m1.high.to_string(),
                    m1.low.to_string(),
                    m1.close.to_string(),
                    m1.volume.to_string()
                ),
                (open.into(), high.into(), low.into(), close.into(), volume.into()),
                "{name}"
            );
            // The 5m candle took the trade exactly when the 1m one did.
            let m5 = agg.current(Interval::M5).unwrap();
            assert_eq!(m5.volume, if late == 0 { q("4") } else { q("2") }, "{name}");
            assert_eq!(out.len(), 1, "{name}: only the 10:01 minute was emitted");
        }
    }

    #[test]
    fn invalid_quantities_and_mids() {
        let mut agg = CandleAggregator::new(ID, &[Interval::M1]);
        let mut out = Vec::new();
        agg.on_trade(ts("2024-01-02T10:00:00Z"), p("10"), Quantity::ZERO, &mut out);
        agg.on_trade(ts("2024-01-02T10:00:00Z"), p("10"), q("-1"), &mut out);
        assert_eq!(agg.invalid_trades(), 2);
        assert!(agg.current(Interval::M1).is_none());
        agg.on_mid(ts("2024-01-02T10:00:10Z"), p("10.5"), &mut out);
        agg.on_trade(ts("2024-01-02T10:00:20Z"), p("11"), q("1"), &mut out);
        agg.on_mid(ts("2024-01-02T10:00:30Z"), p("9.5"), &mut out);
        let c = agg.current(Interval::M1).unwrap();
        assert_eq!((c.open, c.high, c.low, c.close), (p("10.5"), p("11"), p("9.5"), p("9.5")));
        assert_eq!((c.volume, c.trades), (q("1"), 1), "mids add no volume");
        agg.on_mid(ts("2024-01-02T09:59:59Z"), p("1"), &mut out);
        assert_eq!((agg.late_mids(), agg.late_trades()), (1, 0));
    }

    fn candle(interval: Interval, start: &str, ohlc: [&str; 4], volume: &str, trades: u64) -> Candle {
        Candle {
            instrument: ID,
            interval,
            start: ts(start),
            open: p(ohlc[0]),
            high: p(ohlc[1]),
            low: p(ohlc[2]),
            close: p(ohlc[3]),
            volume: q(volume),
            trades,
        }
    }

    /// (name, input, target, number of output candles or the error)
    type RollUpCase = (&'static str, Vec<Candle>, Interval, Result<usize, RollUpError>);

    #[test]
    fn roll_up_validates_its_input() {
        let a = candle(Interval::M1, "2024-01-02T10:00:00Z", ["1", "2", "1", "2"], "1", 1);
        let b = candle(Interval::M1, "2024-01-02T10:01:00Z", ["2", "3", "1", "1"], "1", 1);
        let mut other_instrument = b;
        other_instrument.instrument = InstrumentId(8);
        let mut other_interval = b;
        other_interval.interval = Interval::M5;
        let mut misaligned = b;
        misaligned.start = ts("2024-01-02T10:01:30Z");
        let cases: Vec<RollUpCase> = vec![
            ("empty", vec![], Interval::M1, Ok(0)),
            (
                "same interval",
                vec![a],
                Interval::M1,
                Err(RollUpError::NotCoarser { from: Interval::M1, to: Interval::M1 }),
            ),
            (
                "finer target",
                vec![other_interval],
                Interval::M1,
                Err(RollUpError::NotCoarser { from: Interval::M5, to: Interval::M1 }),
            ),
            (
                "mixed intervals",
                vec![a, other_interval],
                Interval::H1,
                Err(RollUpError::MixedIntervals { index: 1, expected: Interval::M1, found: Interval::M5 }),
            ),
            (
                "mixed instruments",
                vec![a, other_instrument],
                Interval::M5,
                Err(RollUpError::MixedInstruments { index: 1, expected: ID, found: InstrumentId(8) }),
            ),
            (
                "duplicate",
                vec![a, a],
                Interval::M5,
                Err(RollUpError::NotIncreasing { index: 1, start: a.start, previous: a.start }),
            ),
            (
                "unsorted",
                vec![b, a],
                Interval::M5,
                Err(RollUpError::NotIncreasing { index: 1, start: a.start, previous: b.start }),
            ),
            (
                "misaligned",
                vec![a, misaligned],
                Interval::M5,
                Err(RollUpError::Misaligned { index: 1, start: misaligned.start, interval: Interval::M1 }),
            ),
            ("good", vec![a, b], Interval::M5, Ok(1)),
        ];
        for (name, input, to, expected) in cases {
            assert_eq!(roll_up(&input, to).map(|v| v.len()), expected, "{name}");
        }
        let rolled = roll_up(&[a, b], Interval::M5).unwrap();
        assert_eq!(
            rolled,
            [candle(Interval::M5, "2024-01-02T10:00:00Z", ["1", "3", "1", "1"], "2", 2)],
            "good: open of the first, close of the last"
        );
    }

    /// A stream event for the property test.
    #[derive(Debug, Clone)]
    enum Event {
        /// Time moves by `dt_ms` (possibly backwards), then a trade or a mid.
        Trade {
            dt_ms: i64,
            price_ticks: i64,
            lots: i64,
        },
        Mid {
            dt_ms: i64,
            price_ticks: i64,
        },
        /// A flush at the current time plus `ahead_ms`.
        Flush {
            ahead_ms: i64,
        },
    }

    fn event() -> impl Strategy<Value = Event> {
        // Mostly forward steps of up to 20 minutes, some backwards up to 7 minutes.
        let dt = prop_oneof![8 => 0i64..1_200_000, 2 => -420_000i64..0];
        prop_oneof![
            6 => (dt.clone(), 1i64..100_000, 1i64..1_000)
                .prop_map(|(dt_ms, price_ticks, lots)| Event::Trade { dt_ms, price_ticks, lots }),
            1 => (dt, 1i64..100_000).prop_map(|(dt_ms, price_ticks)| Event::Mid { dt_ms, price_ticks }),
            1 => (-60_000i64..600_000).prop_map(|ahead_ms| Event::Flush { ahead_ms }),
        ]
    }

    /// Runs the stream through one aggregator of all intervals and returns
    /// every emitted candle (after a final flush) and the aggregator.
    fn aggregate(start_secs: i64, events: &[Event]) -> (Vec<Candle>, CandleAggregator) {
        let mut agg = CandleAggregator::new(ID, &Interval::ALL);
        let mut out = Vec::new();
        let mut now = Timestamp::from_secs(start_secs);
        let cent = 10_000_000;
        for e in events {
            match *e {
                Event::Trade { dt_ms, price_ticks, lots } => {
                    now = now.plus_nanos(dt_ms * 1_000_000);
                    agg.on_trade(now, Price::from_raw(price_ticks * cent), Quantity::from_raw(lots * 1_000), &mut out);
                }
                Event::Mid { dt_ms, price_ticks } => {
                    now = now.plus_nanos(dt_ms * 1_000_000);
                    agg.on_mid(now, Price::from_raw(price_ticks * cent), &mut out);
                }
                Event::Flush { ahead_ms } => agg.flush(now.plus_nanos(ahead_ms * 1_000_000), &mut out),
            }
        }
        agg.flush(Timestamp::from_nanos(i64::MAX), &mut out);
        (out, agg)
    }

    fn total_volume(candles: &[Candle]) -> Quantity {
        candles.iter().fold(Quantity::ZERO, |v, c| add_volume(v, c.volume))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Rolling up the 1m candles gives exactly the 5m, 1h and 1d candles the
        /// aggregator built directly from the same (partly out-of-order) stream.
        #[test]
        fn roll_up_equals_direct_aggregation(
            start_secs in 1_600_000_000i64..1_800_000_000,
            events in proptest::collection::vec(event(), 0..300),
        ) {
            let (out, agg) = aggregate(start_secs, &events);
            let of = |i: Interval| out.iter().filter(|c| c.interval == i).copied().collect::<Vec<_>>();
            let m1 = of(Interval::M1);
            prop_assert!(agg.current(Interval::M1).is_none(), "the final flush closes everything");
            for to in [Interval::M5, Interval::H1, Interval::D1] {
                prop_assert_eq!(roll_up(&m1, to).unwrap(), of(to), "1m -> {}", to);
            }
            prop_assert_eq!(roll_up(&of(Interval::M5), Interval::H1).unwrap(), of(Interval::H1), "5m -> 1h");
            for i in Interval::ALL {
                let candles = of(i);
                prop_assert!(candles.windows(2).all(|w| w[0].end() <= w[1].start), "{} not increasing", i);
                for c in &candles {
                    prop_assert!(c.low <= c.open.min(c.close) && c.high >= c.open.max(c.close), "{:?}", c);
                    prop_assert_eq!(i.start_of(c.start), c.start);
                }
                prop_assert_eq!(total_volume(&candles), total_volume(&m1), "{} volume", i);
                // Every trade is in exactly one candle of each interval, or late.
                let trades: u64 = candles.iter().map(|c| c.trades).sum();
                let sent = events.iter().filter(|e| matches!(e, Event::Trade { .. })).count() as u64;
                prop_assert_eq!(trades + agg.late_trades(), sent, "{} trades", i);
            }
        }

        /// Sorted trades are never late, and every one of them is counted once.
        #[test]
        fn sorted_trades_are_all_counted(
            start_secs in 1_600_000_000i64..1_800_000_000,
            steps in proptest::collection::vec((0i64..900_000, 1i64..1_000), 1..200),
        ) {
            let events: Vec<Event> =
                steps.iter().map(|&(dt_ms, lots)| Event::Trade { dt_ms, price_ticks: 100, lots }).collect();
            let (out, agg) = aggregate(start_secs, &events);
            prop_assert_eq!(agg.late_trades(), 0);
            let total: i64 = steps.iter().map(|&(_, lots)| lots * 1_000).sum();
            let m1: Vec<Candle> = out.iter().filter(|c| c.interval == Interval::M1).copied().collect();
            prop_assert_eq!(total_volume(&m1), Quantity::from_raw(total));
            let trades: u64 = out.iter().filter(|c| c.interval == Interval::D1).map(|c| c.trades).sum();
            prop_assert_eq!(trades, steps.len() as u64);
        }
    }
}
