//! Historical bars: reading and writing OHLCV CSV, and generating synthetic series.
//!
//! The reader is hand-written because it is on the critical path of every
//! backtest (a million rows should load in well under a second) and because
//! every refusal must name the line and the column: a bar file with one bad
//! row is refused whole, never half-loaded.

use std::io::Write;
use std::path::Path;

use model::{Bar, Price, Quantity, Quote, Timestamp};

/// Why a bar file was refused.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error(
        "{path}: the file is empty; expected a header line timestamp,open,high,low,close,volume (bars) or timestamp,bid,ask[,bid_size,ask_size] (quotes)"
    )]
    Empty { path: String },
    #[error("{path}: line 1: missing column(s) {missing}; the header must name {expected}")]
    MissingColumns { path: String, missing: String, expected: String },
    #[error("{path}: line 1: column '{column}' appears twice")]
    DuplicateColumn { path: String, column: String },
    #[error("{path}: no data rows after the header")]
    NoRows { path: String },
    #[error("{path}: line {line}: {message}")]
    Row { path: String, line: usize, message: String },
    #[error("{path}: Parquet input is not supported yet; convert it to CSV (timestamp,open,high,low,close,volume)")]
    Parquet { path: String },
}

/// Market data read from a file: bars, or quotes (top of book).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarketData {
    Bars(Vec<Bar>),
    /// Quotes, and whether the file gave bid and ask sizes.
    Quotes {
        quotes: Vec<Quote>,
        sizes: bool,
    },
}

/// Reads a CSV file of bars or quotes, told apart by the header: `bid` and
/// `ask` columns make it quotes.
pub fn load_market_data(path: &Path) -> Result<MarketData, DataError> {
    let (bytes, name) = read(path)?;
    if header_names(&bytes).is_some_and(|names| names.iter().any(|n| n == "bid") && names.iter().any(|n| n == "ask")) {
        let quotes: Vec<QuoteRow> = parse_rows(&bytes, &name)?;
        let sizes = quotes.first().is_some_and(|q| q.sized);
        Ok(MarketData::Quotes { quotes: quotes.into_iter().map(|q| q.quote).collect(), sizes })
    } else {
        parse_rows(&bytes, &name).map(MarketData::Bars)
    }
}

/// Reads a CSV file of bars. See [`parse_csv`].
pub fn load_csv(path: &Path) -> Result<Vec<Bar>, DataError> {
    let (bytes, name) = read(path)?;
    parse_csv(&bytes, &name)
}

fn read(path: &Path) -> Result<(Vec<u8>, String), DataError> {
    let name = path.display().to_string();
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("parquet")) {
        return Err(DataError::Parquet { path: name });
    }
    let bytes = std::fs::read(path).map_err(|source| DataError::Read { path: name.clone(), source })?;
    Ok((bytes, name))
}

/// Parses CSV bars with a header naming `timestamp,open,high,low,close,volume`
/// (any case, any order, extra columns ignored). Timestamps are ISO 8601 or
/// epoch seconds/milliseconds. Rows must be strictly increasing in time, with
/// positive prices, `low <= open, close <= high`, and a non-negative volume.
pub fn parse_csv(bytes: &[u8], path: &str) -> Result<Vec<Bar>, DataError> {
    parse_rows(bytes, path)
}

/// Parses CSV quotes with a header naming `timestamp,bid,ask` and optionally
/// `bid_size,ask_size`. Rows must not go back in time (equal times are
/// fine), prices must be positive and the bid not above the ask.
pub fn parse_quotes_csv(bytes: &[u8], path: &str) -> Result<(Vec<Quote>, bool), DataError> {
    let rows: Vec<QuoteRow> = parse_rows(bytes, path)?;
    let sizes = rows.first().is_some_and(|q| q.sized);
    Ok((rows.into_iter().map(|q| q.quote).collect(), sizes))
}

/// One kind of CSV row.
trait Row: Send + Sized {
    /// Canonical column names; the timestamp first.
    const COLUMNS: &'static [&'static str];
    /// How many of the last columns may be missing (all together).
    const OPTIONAL: usize;
    /// Whether timestamps must strictly increase (bars) or only not decrease (quotes).
    const STRICT: bool;
    fn ts(&self) -> Timestamp;
    /// Parses a row's fields; `index[k]` is where column k is (`usize::MAX` if absent).
    fn parse(fields: &[&[u8]], index: &[usize]) -> Result<Self, String>;
}

fn canonical(name: &str) -> &str {
    // Common aliases, so files from other tools load without editing.
    match name {
        "time" | "date" | "datetime" | "open_time" | "ts" => "timestamp",
        "o" => "open",
        "h" => "high",
        "l" => "low",
        "c" => "close",
        "v" | "vol" => "volume",
        "bid_price" | "bidprice" | "best_bid" => "bid",
        "ask_price" | "askprice" | "best_ask" => "ask",
        "bid_qty" | "bidsize" | "bid_volume" => "bid_size",
        "ask_qty" | "asksize" | "ask_volume" => "ask_size",
        other => other,
    }
}

/// The header's column names, canonical and lower-case.
fn header_names(bytes: &[u8]) -> Option<Vec<String>> {
    let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let header = text.split(|&b| b == b'\n').map(trim_cr).find(|l| !l.iter().all(u8::is_ascii_whitespace))?;
    Some(
        String::from_utf8_lossy(header)
            .split(',')
            .map(|c| canonical(&c.trim().trim_matches('"').to_ascii_lowercase()).to_string())
            .collect(),
    )
}

fn parse_rows<R: Row>(bytes: &[u8], path: &str) -> Result<Vec<R>, DataError> {
    let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    // Blank lines before the header are skipped.
    let skipped = text.iter().take_while(|b| b.is_ascii_whitespace()).count();
    let skipped = text[..skipped].iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let text = &text[skipped..];
    let leading_lines = bytes[..bytes.len() - text.len()].iter().filter(|&&b| b == b'\n').count();
    let Some(names) = header_names(text) else {
        return Err(DataError::Empty { path: path.to_string() });
    };
    let mut index = vec![usize::MAX; R::COLUMNS.len()];
    for (i, name) in names.iter().enumerate() {
        if let Some(k) = R::COLUMNS.iter().position(|c| c == name) {
            if index[k] != usize::MAX {
                return Err(DataError::DuplicateColumn { path: path.to_string(), column: R::COLUMNS[k].to_string() });
            }
            index[k] = i;
        }
    }
    let required = R::COLUMNS.len() - R::OPTIONAL;
    let missing = |range: std::ops::Range<usize>| -> Vec<&str> {
        range.filter(|k| index[*k] == usize::MAX).map(|k| R::COLUMNS[k]).collect()
    };
    let missing_required = missing(0..required);
    let missing_optional = missing(required..R::COLUMNS.len());
    if !missing_required.is_empty() || (!missing_optional.is_empty() && missing_optional.len() < R::OPTIONAL) {
        let mut all = missing_required;
        all.extend(missing_optional);
        return Err(DataError::MissingColumns {
            path: path.to_string(),
            missing: all.join(", "),
            expected: R::COLUMNS.join(","),
        });
    }
    let width = names.len();
    // The body starts after the header line; find where, and its line number.
    let header_end = text.iter().position(|&b| b == b'\n').map_or(text.len(), |i| i + 1);
    let body = &text[header_end..];
    let first_line = leading_lines + 2;
    let chunks = split_chunks(body, first_line);
    let layout = Layout { index, width };
    let parsed: Vec<Result<Chunk<R>, DataError>> = if chunks.len() == 1 {
        chunks.iter().map(|(bytes, line)| parse_chunk(bytes, *line, &layout, path)).collect()
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = chunks
                .iter()
                .map(|(bytes, line)| {
                    let layout = &layout;
                    scope.spawn(move || parse_chunk(bytes, *line, layout, path))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))).collect()
        })
    };
    let mut rows: Vec<R> = Vec::new();
    for chunk in parsed {
        let chunk = chunk?;
        if let (Some(prev), Some(first)) = (rows.last(), chunk.rows.first())
            && let Some(message) = order_problem(prev.ts(), first.ts(), R::STRICT)
        {
            return Err(DataError::Row { path: path.to_string(), line: chunk.first_row_line, message });
        }
        if rows.is_empty() {
            rows = chunk.rows;
        } else {
            rows.extend(chunk.rows);
        }
    }
    if rows.is_empty() {
        return Err(DataError::NoRows { path: path.to_string() });
    }
    Ok(rows)
}

/// Where the columns are in a row.
struct Layout {
    index: Vec<usize>,
    width: usize,
}

struct Chunk<R> {
    rows: Vec<R>,
    /// Line number of the chunk's first data row, for errors across chunks.
    first_row_line: usize,
}

/// Bodies above this size are parsed on several threads.
const PARALLEL_BYTES: usize = 4 << 20;

/// Splits the body at line boundaries into one piece per core, each with the
/// line number it starts at.
fn split_chunks(body: &[u8], first_line: usize) -> Vec<(&[u8], usize)> {
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get).min(8);
    if body.len() < PARALLEL_BYTES || threads == 1 {
        return vec![(body, first_line)];
    }
    let mut chunks = Vec::with_capacity(threads);
    let mut start = 0;
    let mut line = first_line;
    for k in 1..=threads {
        let mut end = if k == threads { body.len() } else { (body.len() * k / threads).max(start) };
        while end < body.len() && body[end - 1] != b'\n' {
            end += 1;
        }
        if end > start {
            chunks.push((&body[start..end], line));
            line += body[start..end].iter().filter(|&&b| b == b'\n').count();
        }
        start = end;
    }
    chunks
}

fn order_problem(prev: Timestamp, ts: Timestamp, strict: bool) -> Option<String> {
    if ts == prev && strict {
        Some(format!("duplicate timestamp {ts}"))
    } else if ts < prev {
        Some(format!("timestamp {ts} is before the previous row's {prev}; rows must be sorted by time"))
    } else {
        None
    }
}

/// Trims spaces and quotes around a field.
fn trim_field(mut f: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = f {
        if first.is_ascii_whitespace() || *first == b'"' { f = rest } else { break }
    }
    while let [rest @ .., last] = f {
        if last.is_ascii_whitespace() || *last == b'"' { f = rest } else { break }
    }
    f
}

fn parse_chunk<R: Row>(bytes: &[u8], first_line: usize, layout: &Layout, path: &str) -> Result<Chunk<R>, DataError> {
    let mut rows: Vec<R> = Vec::with_capacity(bytes.len() / 40);
    let mut fields: Vec<&[u8]> = Vec::with_capacity(layout.width);
    let mut first_row_line = first_line;
    for (n, raw_line) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = trim_cr(raw_line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let line_no = first_line + n;
        if rows.is_empty() {
            first_row_line = line_no;
        }
        let row_err = |message| DataError::Row { path: path.to_string(), line: line_no, message };
        fields.clear();
        fields.extend(line.split(|&b| b == b',').map(trim_field));
        if fields.len() != layout.width {
            return Err(row_err(format!("expected {} fields like the header, found {}", layout.width, fields.len())));
        }
        let row = R::parse(&fields, &layout.index).map_err(row_err)?;
        if let Some(prev) = rows.last().map(R::ts)
            && let Some(message) = order_problem(prev, row.ts(), R::STRICT)
        {
            return Err(row_err(message));
        }
        rows.push(row);
    }
    Ok(Chunk { rows, first_row_line })
}

fn text_of(f: &[u8]) -> String {
    String::from_utf8_lossy(f).into_owned()
}

fn timestamp(f: &[u8]) -> Result<Timestamp, String> {
    match Timestamp::parse_ascii(f) {
        Some(ts) => Ok(ts),
        None => Timestamp::parse(&text_of(f)).map_err(|e| format!("timestamp: {e}")),
    }
}

fn positive_price(f: &[u8], column: &str) -> Result<Price, String> {
    let price = match model::num::parse_fixed_ascii(f) {
        Some(raw) => Price::from_raw(raw),
        None => Price::parse(&text_of(f)).map_err(|e| format!("{column}: {e}"))?,
    };
    if price.is_positive() { Ok(price) } else { Err(format!("{column} must be positive, got {}", text_of(f))) }
}

fn non_negative_quantity(f: &[u8], column: &str) -> Result<Quantity, String> {
    let q = match model::num::parse_fixed_ascii(f) {
        Some(raw) => Quantity::from_raw(raw),
        None => Quantity::parse(&text_of(f)).map_err(|e| format!("{column}: {e}"))?,
    };
    if q.is_negative() { Err(format!("{column} must not be negative, got {q}")) } else { Ok(q) }
}

impl Row for Bar {
    const COLUMNS: &'static [&'static str] = &["timestamp", "open", "high", "low", "close", "volume"];
    const OPTIONAL: usize = 0;
    const STRICT: bool = true;

    fn ts(&self) -> Timestamp {
        self.ts
    }

    fn parse(fields: &[&[u8]], index: &[usize]) -> Result<Self, String> {
        let field = |k: usize| fields[index[k]];
        let ts = timestamp(field(0))?;
        let open = positive_price(field(1), "open")?;
        let high = positive_price(field(2), "high")?;
        let low = positive_price(field(3), "low")?;
        let close = positive_price(field(4), "close")?;
        let volume = non_negative_quantity(field(5), "volume")?;
        if high < low {
            return Err(format!("high {high} is below low {low}"));
        }
        if open > high || open < low || close > high || close < low {
            return Err(format!("open {open} and close {close} must lie between low {low} and high {high}"));
        }
        Ok(Bar { ts, open, high, low, close, volume })
    }
}

/// A quote row, remembering whether sizes were given.
struct QuoteRow {
    quote: Quote,
    sized: bool,
}

impl Row for QuoteRow {
    const COLUMNS: &'static [&'static str] = &["timestamp", "bid", "ask", "bid_size", "ask_size"];
    const OPTIONAL: usize = 2;
    const STRICT: bool = false;

    fn ts(&self) -> Timestamp {
        self.quote.ts
    }

    fn parse(fields: &[&[u8]], index: &[usize]) -> Result<Self, String> {
        let field = |k: usize| fields[index[k]];
        let ts = timestamp(field(0))?;
        let bid = positive_price(field(1), "bid")?;
        let ask = positive_price(field(2), "ask")?;
        if ask < bid {
            return Err(format!("ask {ask} is below bid {bid}"));
        }
        let sized = index[3] != usize::MAX;
        let (bid_size, ask_size) = if sized {
            (non_negative_quantity(field(3), "bid_size")?, non_negative_quantity(field(4), "ask_size")?)
        } else {
            (Quantity::ZERO, Quantity::ZERO)
        };
        let quote = Quote { instrument: model::InstrumentId(1), ts, bid, bid_size, ask, ask_size };
        Ok(Self { quote, sized })
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Writes bars as CSV with ISO 8601 UTC timestamps.
pub fn write_csv(path: &Path, bars: &[Bar]) -> Result<(), DataError> {
    write_lines(path, "timestamp,open,high,low,close,volume", bars, |w, b| {
        writeln!(w, "{},{},{},{},{},{}", b.ts, b.open, b.high, b.low, b.close, b.volume)
    })
}

/// Writes a header and one line per row through a temporary file, renamed
/// into place at the end, so a failure leaves no half-written file.
fn write_lines<T>(
    path: &Path,
    header: &str,
    rows: &[T],
    line: impl Fn(&mut std::io::BufWriter<std::fs::File>, &T) -> std::io::Result<()>,
) -> Result<(), DataError> {
    let name = path.display().to_string();
    let write_err = |source| DataError::Write { path: name.clone(), source };
    let tmp = path.with_extension("csv.tmp");
    let file = std::fs::File::create(&tmp).map_err(write_err)?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    let result = (|| {
        writeln!(w, "{header}")?;
        for row in rows {
            line(&mut w, row)?;
        }
        w.flush()
    })();
    if let Err(e) = result.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(write_err(e));
    }
    Ok(())
}

/// Parameters of a synthetic series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SynthSpec {
    pub bars: usize,
    pub seed: u64,
    pub interval_ns: i64,
    pub start: Timestamp,
    pub start_price: Price,
    /// Standard deviation of one bar's log return (0.001 = 0.1 %).
    pub volatility: f64,
}

/// A reproducible random walk of OHLCV bars.
///
/// The generator (splitmix64 feeding a Box-Muller normal) is written here
/// rather than taken from a crate, so the same seed gives the same file on
/// every version and platform. Floats only shape the walk; every price is
/// rounded to cents and stored exactly.
#[must_use]
pub fn synth(spec: &SynthSpec) -> Vec<Bar> {
    let mut rng = SplitMix64(spec.seed);
    let mut bars = Vec::with_capacity(spec.bars);
    let mut price = spec.start_price.to_f64().max(0.01);
    let to_price = |x: f64| {
        #[allow(clippy::cast_possible_truncation)]
        let cents = (x * 100.0).round().max(1.0) as i64;
        Price::from_raw(cents * 10_000_000)
    };
    for i in 0..spec.bars {
        let open = price;
        // A slowly drifting regime makes trends for the demo strategies to find.
        let drift = 0.000_02 * ((i as f64) / 5_000.0).sin();
        let mut close = open;
        let mut high = open;
        let mut low = open;
        // Four sub-steps per bar give the bar a believable range.
        for _ in 0..4 {
            close *= (drift / 4.0 + spec.volatility / 2.0 * rng.normal()).exp();
            high = high.max(close);
            low = low.min(close);
        }
        let spread = 1.0 + spec.volatility * 0.3 * rng.next_f64();
        high *= spread;
        low /= spread;
        #[allow(clippy::cast_possible_truncation)]
        let volume = Quantity::from_raw(((1.0 + 9.0 * rng.next_f64()) * 100.0).round() as i64 * 10_000_000);
        let (o, h, l, c) = (to_price(open), to_price(high), to_price(low), to_price(close));
        bars.push(Bar {
            ts: spec.start.plus_nanos(spec.interval_ns.saturating_mul(i64::try_from(i).unwrap_or(i64::MAX))),
            open: o,
            high: h.max(o).max(c),
            low: l.min(o).min(c),
            close: c,
            volume,
        });
        price = close;
    }
    bars
}

/// A reproducible random walk of quotes, one per interval: the mid follows
/// the same kind of walk as [`synth`], the spread is about 2 bp (at least a
/// cent), and sizes are 1 to 50 units.
#[must_use]
pub fn synth_quotes(spec: &SynthSpec) -> Vec<Quote> {
    let mut rng = SplitMix64(spec.seed);
    let mut mid = spec.start_price.to_f64().max(1.0);
    let cents = |x: f64| {
        #[allow(clippy::cast_possible_truncation)]
        let c = (x * 100.0).round().max(1.0) as i64;
        c
    };
    let mut quotes = Vec::with_capacity(spec.bars);
    for i in 0..spec.bars {
        let drift = 0.000_02 * ((i as f64) / 5_000.0).sin();
        mid *= (drift + spec.volatility * rng.normal()).exp();
        let half_spread = cents(mid * 0.0001).max(1);
        let bid = (cents(mid) - half_spread).max(1);
        let ask = bid + 2 * half_spread;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let size = |r: f64| Quantity::from_int(1 + (r * 50.0) as i64 % 50);
        quotes.push(Quote {
            instrument: model::InstrumentId(1),
            ts: spec.start.plus_nanos(spec.interval_ns.saturating_mul(i64::try_from(i).unwrap_or(i64::MAX))),
            bid: Price::from_raw(bid * 10_000_000),
            bid_size: size(rng.next_f64()),
            ask: Price::from_raw(ask * 10_000_000),
            ask_size: size(rng.next_f64()),
        });
    }
    quotes
}

/// Writes quotes as CSV (`timestamp,bid,ask,bid_size,ask_size`).
pub fn write_quotes_csv(path: &Path, quotes: &[Quote]) -> Result<(), DataError> {
    write_lines(path, "timestamp,bid,ask,bid_size,ask_size", quotes, |w, q| {
        writeln!(w, "{},{},{},{},{}", q.ts, q.bid, q.ask, q.bid_size, q.ask_size)
    })
}

struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let u1 = self.next_f64().max(f64::MIN_POSITIVE);
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// Parses an interval such as `1m`, `5m`, `1h`, `1d`, `30s` into nanoseconds.
pub fn parse_interval(text: &str) -> Result<i64, String> {
    let bad = || format!("invalid interval '{text}'; expected a number and a unit: s, m, h or d (e.g. 1m, 4h, 1d)");
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = t.split_at(split);
    let n: i64 = n.parse().map_err(|_| bad())?;
    if n <= 0 {
        return Err(bad());
    }
    let unit_ns = match unit {
        "s" => model::time::NANOS_PER_SECOND,
        "m" => model::time::NANOS_PER_MINUTE,
        "h" => model::time::NANOS_PER_HOUR,
        "d" => model::time::NANOS_PER_DAY,
        _ => return Err(bad()),
    };
    n.checked_mul(unit_ns).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Bar>, String> {
        parse_csv(text.as_bytes(), "t.csv").map_err(|e| e.to_string())
    }

    #[test]
    fn reads_headers_in_any_case_and_order_and_timestamp_forms() {
        let bars = parse(
            "Volume,Timestamp,Open,High,Low,Close\r\n10,2024-01-01T00:00:00Z,1,2,0.5,1.5\r\n5,1704067260,1.5,1.6,1.4,1.4\n\n3,1704067320000,1.4,1.4,1.4,1.4\n",
        )
        .unwrap();
        assert_eq!(bars.len(), 3);
        assert_eq!(bars[1].ts.to_string(), "2024-01-01T00:01:00Z");
        assert_eq!(bars[2].ts.to_string(), "2024-01-01T00:02:00Z");
        assert_eq!(bars[0].volume, Quantity::from_int(10));
    }

    #[test]
    fn refusals_name_the_line_and_the_problem() {
        let header = "timestamp,open,high,low,close,volume\n";
        let cases = [
            (
                "missing column",
                "timestamp,open,high,low,close\n1,1,1,1,1\n".to_string(),
                "line 1: missing column(s) volume",
            ),
            ("non-numeric", format!("{header}1,1,1,1,1,1\n2,abc,1,1,1,1\n"), "line 3: open: 'abc' is not a decimal"),
            ("negative price", format!("{header}1,-1,1,1,1,1\n"), "line 2: open must be positive"),
            ("high below low", format!("{header}1,1,1,2,1,1\n"), "line 2: high 1 is below low 2"),
            ("open outside range", format!("{header}1,5,2,1,1,1\n"), "line 2: open 5 and close 1 must lie between"),
            (
                "unsorted",
                format!("{header}2,1,1,1,1,1\n1,1,1,1,1,1\n"),
                "line 3: timestamp 1970-01-01T00:00:01Z is before",
            ),
            ("duplicate", format!("{header}1,1,1,1,1,1\n1,1,1,1,1,1\n"), "line 3: duplicate timestamp"),
            ("field count", format!("{header}1,1,1,1,1\n"), "line 2: expected 6 fields"),
            ("bad timestamp", format!("{header}yesterday,1,1,1,1,1\n"), "line 2: timestamp: 'yesterday'"),
            ("negative volume", format!("{header}1,1,1,1,1,-3\n"), "line 2: volume must not be negative"),
            ("no rows", header.to_string(), "no data rows"),
            ("empty", String::new(), "the file is empty"),
            (
                "duplicate column",
                "timestamp,open,high,low,close,volume,close\n".to_string(),
                "column 'close' appears twice",
            ),
        ];
        for (name, text, expected) in cases {
            let err = parse(&text).unwrap_err();
            assert!(err.contains(expected), "{name}: got '{err}'");
        }
    }

    /// Large files are parsed in parallel chunks; errors still name the right
    /// line, including an ordering error across a chunk boundary.
    #[test]
    fn parallel_chunks_keep_line_numbers() {
        let spec = SynthSpec {
            bars: 150_000,
            seed: 3,
            interval_ns: model::time::NANOS_PER_MINUTE,
            start: Timestamp::parse("2024-01-01").unwrap(),
            start_price: Price::from_int(100),
            volatility: 0.001,
        };
        let bars = synth(&spec);
        let mut text = String::from("\ntimestamp,open,high,low,close,volume\n");
        for b in &bars {
            text.push_str(&format!("{},{},{},{},{},{}\n", b.ts, b.open, b.high, b.low, b.close, b.volume));
        }
        assert!(text.len() > PARALLEL_BYTES);
        assert_eq!(parse_csv(text.as_bytes(), "big.csv").unwrap(), bars);
        let lines: Vec<&str> = text.split('\n').collect();
        for target in [10usize, 100_000, 149_990] {
            let mut broken = lines.clone();
            broken[target - 1] = "2024-01-01T00:00:00Z,1,1,1,x,1";
            let err = parse_csv(broken.join("\n").as_bytes(), "big.csv").unwrap_err().to_string();
            assert!(err.contains(&format!("line {target}: close")), "line {target}: {err}");
        }
        // Swap two rows in the middle: the later one comes first, wherever the chunks split.
        for target in [75_000usize, 75_001, 75_002] {
            let mut swapped = lines.clone();
            swapped.swap(target - 1, target);
            let err = parse_csv(swapped.join("\n").as_bytes(), "big.csv").unwrap_err().to_string();
            assert!(err.contains(&format!("line {}: timestamp", target + 1)), "{target}: {err}");
        }
    }

    #[test]
    fn reads_quotes_with_and_without_sizes() {
        let (quotes, sized) = parse_quotes_csv(
            b"timestamp,bid,ask,bid_size,ask_size\n2024-01-01T00:00:00Z,99.5,100.5,3,4\n2024-01-01T00:00:00Z,99.6,100.4,1,2\n",
            "q.csv",
        )
        .unwrap();
        assert!(sized);
        assert_eq!(quotes.len(), 2, "equal timestamps are fine for quotes");
        assert_eq!(quotes[1].ask_size, Quantity::from_int(2));
        let (quotes, sized) = parse_quotes_csv(b"time,best_bid,best_ask\n1,1,2\n2,1.5,2\n", "q.csv").unwrap();
        assert!(!sized);
        assert_eq!(quotes[1].bid, Price::parse("1.5").unwrap());
        let cases = [
            ("crossed", "timestamp,bid,ask\n1,2,1\n", "line 2: ask 1 is below bid 2"),
            ("one size only", "timestamp,bid,ask,bid_size\n1,1,2,3\n", "missing column(s) ask_size"),
            ("unsorted", "timestamp,bid,ask\n2,1,2\n1,1,2\n", "line 3: timestamp"),
            ("no ask", "timestamp,bid\n1,1\n", "missing column(s) ask"),
        ];
        for (name, text, expected) in cases {
            let err = parse_quotes_csv(text.as_bytes(), "q.csv").unwrap_err().to_string();
            assert!(err.contains(expected), "{name}: {err}");
        }
    }

    #[test]
    fn synth_is_reproducible_and_valid() {
        let spec = SynthSpec {
            bars: 5_000,
            seed: 7,
            interval_ns: model::time::NANOS_PER_MINUTE,
            start: Timestamp::parse("2024-01-01").unwrap(),
            start_price: Price::from_int(100),
            volatility: 0.001,
        };
        let a = synth(&spec);
        assert_eq!(a, synth(&spec));
        assert_ne!(a, synth(&SynthSpec { seed: 8, ..spec }));
        for b in &a {
            assert!(b.low <= b.open && b.open <= b.high && b.low <= b.close && b.close <= b.high, "{b:?}");
            assert!(b.low.is_positive());
        }
        // Round trip through the CSV writer and reader.
        let dir = std::env::temp_dir().join(format!("tc-synth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bars.csv");
        write_csv(&path, &a).unwrap();
        assert_eq!(load_csv(&path).unwrap(), a);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("1m").unwrap(), 60_000_000_000);
        assert_eq!(parse_interval("4h").unwrap(), 4 * 3_600_000_000_000);
        for bad in ["", "m", "0m", "1w", "-1m", "1.5m"] {
            assert!(parse_interval(bad).is_err(), "{bad}");
        }
    }
}
