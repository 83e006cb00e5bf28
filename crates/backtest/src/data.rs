//! Historical bars: reading and writing OHLCV CSV, and generating synthetic series.
//!
//! The reader is hand-written because it is on the critical path of every
//! backtest (a million rows should load in well under a second) and because
//! every refusal must name the line and the column: a bar file with one bad
//! row is refused whole, never half-loaded.

use std::io::Write;
use std::path::Path;

use model::{Bar, Price, Quantity, Timestamp};

/// Why a bar file was refused.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("{path}: the file is empty; expected a header line timestamp,open,high,low,close,volume")]
    Empty { path: String },
    #[error(
        "{path}: line 1: missing column(s) {missing}; the header must name timestamp, open, high, low, close and volume"
    )]
    MissingColumns { path: String, missing: String },
    #[error("{path}: line 1: column '{column}' appears twice")]
    DuplicateColumn { path: String, column: String },
    #[error("{path}: no data rows after the header")]
    NoRows { path: String },
    #[error("{path}: line {line}: {message}")]
    Row { path: String, line: usize, message: String },
    #[error("{path}: Parquet input is not supported yet; convert it to CSV (timestamp,open,high,low,close,volume)")]
    Parquet { path: String },
}

const COLUMNS: [&str; 6] = ["timestamp", "open", "high", "low", "close", "volume"];

/// Reads a CSV file of bars. See [`parse_csv`].
pub fn load_csv(path: &Path) -> Result<Vec<Bar>, DataError> {
    let name = path.display().to_string();
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("parquet")) {
        return Err(DataError::Parquet { path: name });
    }
    let bytes = std::fs::read(path).map_err(|source| DataError::Read { path: name.clone(), source })?;
    parse_csv(&bytes, &name)
}

/// Parses CSV bars with a header naming `timestamp,open,high,low,close,volume`
/// (any case, any order, extra columns ignored). Timestamps are ISO 8601 or
/// epoch seconds/milliseconds. Rows must be strictly increasing in time, with
/// positive prices, `low <= open, close <= high`, and a non-negative volume.
pub fn parse_csv(bytes: &[u8], path: &str) -> Result<Vec<Bar>, DataError> {
    let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    // Blank lines before the header are skipped.
    let skipped = text.iter().take_while(|b| b.is_ascii_whitespace()).count();
    let skipped = text[..skipped].iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let text = &text[skipped..];
    let leading_lines = bytes[..bytes.len() - text.len()].iter().filter(|&&b| b == b'\n').count();
    let Some(header) =
        text.split(|&b| b == b'\n').next().map(trim_cr).filter(|h| !h.iter().all(u8::is_ascii_whitespace))
    else {
        return Err(DataError::Empty { path: path.to_string() });
    };
    let header = String::from_utf8_lossy(header);
    let names: Vec<String> = header.split(',').map(|c| c.trim().trim_matches('"').to_ascii_lowercase()).collect();
    let mut index = [usize::MAX; 6];
    for (i, name) in names.iter().enumerate() {
        // Common aliases, so files from other tools load without editing.
        let canonical = match name.as_str() {
            "time" | "date" | "datetime" | "open_time" | "ts" => "timestamp",
            "o" => "open",
            "h" => "high",
            "l" => "low",
            "c" => "close",
            "v" | "vol" => "volume",
            other => other,
        };
        if let Some(k) = COLUMNS.iter().position(|c| *c == canonical) {
            if index[k] != usize::MAX {
                return Err(DataError::DuplicateColumn { path: path.to_string(), column: COLUMNS[k].to_string() });
            }
            index[k] = i;
        }
    }
    let missing: Vec<&str> = COLUMNS.iter().zip(index).filter(|(_, i)| *i == usize::MAX).map(|(c, _)| *c).collect();
    if !missing.is_empty() {
        return Err(DataError::MissingColumns { path: path.to_string(), missing: missing.join(", ") });
    }
    let width = names.len();
    // The body starts after the header line; find where, and its line number.
    let header_end = text.iter().position(|&b| b == b'\n').map_or(text.len(), |i| i + 1);
    let header_line = text[..header_end].iter().filter(|&&b| b == b'\n').count();
    let body = &text[header_end..];
    let first_line = leading_lines + header_line + 1;
    let chunks = split_chunks(body, first_line);
    let layout = Layout { index, width };
    let parsed: Vec<Result<Chunk, DataError>> = if chunks.len() == 1 {
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
    let mut bars: Vec<Bar> = Vec::new();
    for chunk in parsed {
        let chunk = chunk?;
        if let (Some(prev), Some(first)) = (bars.last(), chunk.bars.first())
            && let Some(message) = order_problem(prev.ts, first.ts)
        {
            return Err(DataError::Row { path: path.to_string(), line: chunk.first_row_line, message });
        }
        if bars.is_empty() {
            bars = chunk.bars;
        } else {
            bars.extend_from_slice(&chunk.bars);
        }
    }
    if bars.is_empty() {
        return Err(DataError::NoRows { path: path.to_string() });
    }
    Ok(bars)
}

/// Where the six columns are in a row.
struct Layout {
    index: [usize; 6],
    width: usize,
}

struct Chunk {
    bars: Vec<Bar>,
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

fn order_problem(prev: Timestamp, ts: Timestamp) -> Option<String> {
    if ts == prev {
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

fn parse_chunk(bytes: &[u8], first_line: usize, layout: &Layout, path: &str) -> Result<Chunk, DataError> {
    let mut bars = Vec::with_capacity(bytes.len() / 40);
    let mut fields: Vec<&[u8]> = Vec::with_capacity(layout.width);
    let mut first_row_line = first_line;
    for (n, raw_line) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = trim_cr(raw_line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let line_no = first_line + n;
        if bars.is_empty() {
            first_row_line = line_no;
        }
        fields.clear();
        fields.extend(line.split(|&b| b == b',').map(trim_field));
        let bar = parse_row(&fields, layout).map_err(|message| DataError::Row {
            path: path.to_string(),
            line: line_no,
            message,
        })?;
        if let Some(prev) = bars.last().map(|b: &Bar| b.ts)
            && let Some(message) = order_problem(prev, bar.ts)
        {
            return Err(DataError::Row { path: path.to_string(), line: line_no, message });
        }
        bars.push(bar);
    }
    Ok(Chunk { bars, first_row_line })
}

fn text_of(f: &[u8]) -> String {
    String::from_utf8_lossy(f).into_owned()
}

fn parse_row(fields: &[&[u8]], layout: &Layout) -> Result<Bar, String> {
    if fields.len() != layout.width {
        return Err(format!("expected {} fields like the header, found {}", layout.width, fields.len()));
    }
    let field = |k: usize| fields[layout.index[k]];
    let ts = match Timestamp::parse_ascii(field(0)) {
        Some(ts) => ts,
        None => Timestamp::parse(&text_of(field(0))).map_err(|e| format!("timestamp: {e}"))?,
    };
    let mut prices = [Price::ZERO; 4];
    for (k, slot) in prices.iter_mut().enumerate() {
        let f = field(k + 1);
        let price = match model::num::parse_fixed_ascii(f) {
            Some(raw) => Price::from_raw(raw),
            None => Price::parse(&text_of(f)).map_err(|e| format!("{}: {e}", COLUMNS[k + 1]))?,
        };
        if !price.is_positive() {
            return Err(format!("{} must be positive, got {}", COLUMNS[k + 1], text_of(f)));
        }
        *slot = price;
    }
    let [open, high, low, close] = prices;
    let volume = match model::num::parse_fixed_ascii(field(5)) {
        Some(raw) => Quantity::from_raw(raw),
        None => Quantity::parse(&text_of(field(5))).map_err(|e| format!("volume: {e}"))?,
    };
    if volume.is_negative() {
        return Err(format!("volume must not be negative, got {volume}"));
    }
    if high < low {
        return Err(format!("high {high} is below low {low}"));
    }
    if open > high || open < low || close > high || close < low {
        return Err(format!("open {open} and close {close} must lie between low {low} and high {high}"));
    }
    Ok(Bar { ts, open, high, low, close, volume })
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Writes bars as CSV with ISO 8601 UTC timestamps.
pub fn write_csv(path: &Path, bars: &[Bar]) -> Result<(), DataError> {
    let name = path.display().to_string();
    let write_err = |source| DataError::Write { path: name.clone(), source };
    // Write to a temporary file and rename, so a failure leaves no half file.
    let tmp = path.with_extension("csv.tmp");
    let file = std::fs::File::create(&tmp).map_err(write_err)?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    let result = (|| {
        writeln!(w, "timestamp,open,high,low,close,volume")?;
        for b in bars {
            writeln!(w, "{},{},{},{},{},{}", b.ts, b.open, b.high, b.low, b.close, b.volume)?;
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
