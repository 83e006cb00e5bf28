//! `tradecore data ...`

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use backtest::data::{self, SynthSpec};
use clap::{Args, Subcommand};
use model::{Price, Timestamp};

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Generate a reproducible random-walk OHLCV series as CSV.
    Synth(SynthArgs),
}

#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Number of bars.
    #[arg(long, default_value_t = 100_000)]
    pub bars: usize,
    /// Random seed: the same seed always gives the same file.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Bar interval: a number and s, m, h or d.
    #[arg(long, default_value = "1m")]
    pub interval: String,
    /// Time of the first bar (ISO 8601 or epoch seconds).
    #[arg(long, default_value = "2024-01-01T00:00:00Z")]
    pub start: String,
    /// Opening price of the first bar.
    #[arg(long, default_value = "100")]
    pub price: String,
    /// Standard deviation of one bar's log return.
    #[arg(long, default_value_t = 0.001)]
    pub volatility: f64,
    /// Where to write the CSV.
    #[arg(long)]
    pub out: PathBuf,
    /// Write quotes (timestamp,bid,ask,bid_size,ask_size), one per interval, instead of bars.
    #[arg(long)]
    pub quotes: bool,
}

pub fn run(cmd: &DataCommand) -> Result<()> {
    match cmd {
        DataCommand::Synth(args) => synth(args),
    }
}

/// Builds the synthetic-series spec from arguments, checking each.
pub fn spec(args: &SynthArgs) -> Result<SynthSpec> {
    if args.bars == 0 {
        bail!("--bars must be at least 1");
    }
    if !(args.volatility.is_finite() && args.volatility > 0.0 && args.volatility < 0.5) {
        bail!("--volatility must be a number between 0 and 0.5, got {}", args.volatility);
    }
    let start_price = Price::parse(&args.price).with_context(|| format!("--price {}", args.price))?;
    if !start_price.is_positive() {
        bail!("--price must be positive, got {start_price}");
    }
    Ok(SynthSpec {
        bars: args.bars,
        seed: args.seed,
        interval_ns: data::parse_interval(&args.interval).map_err(anyhow::Error::msg)?,
        start: Timestamp::parse(&args.start).with_context(|| format!("--start {}", args.start))?,
        start_price,
        volatility: args.volatility,
    })
}

fn synth(args: &SynthArgs) -> Result<()> {
    let spec = spec(args)?;
    if args.quotes {
        let quotes = data::synth_quotes(&spec);
        data::write_quotes_csv(&args.out, &quotes)?;
        let (first, last) = (quotes[0].ts, quotes[quotes.len() - 1].ts);
        println!("wrote {} quotes from {first} to {last} to {}", quotes.len(), args.out.display());
        return Ok(());
    }
    let bars = data::synth(&spec);
    data::write_csv(&args.out, &bars)?;
    let (first, last) = (bars[0].ts, bars[bars.len() - 1].ts);
    println!("wrote {} bars from {first} to {last} to {}", bars.len(), args.out.display());
    Ok(())
}
