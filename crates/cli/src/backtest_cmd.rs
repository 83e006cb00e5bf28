//! `tradecore backtest`, `tradecore strategies` and `tradecore demo`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use backtest::data::MarketData;
use backtest::report::Report;
use backtest::sweep::{self, Axis, SweepOutput};
use backtest::{BacktestConfig, Market, data};
use clap::Args;
use comfy_table::{Cell, CellAlignment, Table, presets::UTF8_FULL_CONDENSED};
use engine::Params;
use engine::strategies::{self, StrategyInfo};
use indicatif::{ProgressBar, ProgressStyle};
use model::Timestamp;

#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
pub struct BacktestArgs {
    /// CSV of bars (header timestamp,open,high,low,close,volume) or quotes
    /// (header timestamp,bid,ask and optionally bid_size,ask_size).
    #[arg(long)]
    pub data: PathBuf,
    /// Strategy name (see `tradecore strategies`).
    #[arg(long)]
    pub strategy: String,
    /// A strategy parameter as name=value; repeat for several.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// Use only bars at or after this time (ISO 8601 or epoch seconds).
    #[arg(long)]
    pub from: Option<String>,
    /// Use only bars before this time.
    #[arg(long)]
    pub to: Option<String>,
    /// For quote data: the interval of the bars the strategy sees, built from the quotes.
    #[arg(long, default_value = "1m")]
    pub bar_interval: String,
    /// For quote data with sizes: fill whole orders regardless of the displayed size.
    #[arg(long)]
    pub ignore_quote_size: bool,
    /// Symbol shown in the report.
    #[arg(long, default_value = "SYNTH")]
    pub symbol: String,
    /// Starting cash.
    #[arg(long, default_value = "10000")]
    pub cash: String,
    /// Commission as a fraction of each fill's notional (0.002 = 0.2 %).
    #[arg(long, default_value = "0")]
    pub commission: String,
    /// Order size: all-in, units=N or percent=P (of equity).
    #[arg(long, default_value = "all-in")]
    pub sizing: String,
    /// When market orders fill: next-open (next bar's open) or close (this bar's close).
    #[arg(long, default_value = "next-open")]
    pub fill: String,
    /// Slippage on market and stop fills, in basis points.
    #[arg(long, default_value = "0")]
    pub slippage_bps: String,
    /// Close any open position at the last bar's close.
    #[arg(long)]
    pub close_at_end: bool,
    /// Quantity step (1 = whole units; 0.001 for fractional).
    #[arg(long, default_value = "1")]
    pub lot_size: String,
    /// Directory for report.json and report.html (or sweep.json).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Most equity-curve points in the report (0 = every bar).
    #[arg(long, default_value_t = 5_000)]
    pub equity_points: usize,
    /// Sweep a parameter: name=START..END:STEP or name=a,b,c; repeat for a grid.
    #[arg(long = "sweep", value_name = "NAME=RANGE")]
    pub sweeps: Vec<String>,
    /// Metric that ranks sweep results.
    #[arg(long, default_value = "sharpe")]
    pub rank: String,
    /// Sweep rows to print.
    #[arg(long, default_value_t = 20)]
    pub top: usize,
    /// Threads for a sweep (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to write the demo data and report.
    #[arg(long, default_value = "out/demo")]
    pub out: PathBuf,
    /// Bars to generate.
    #[arg(long, default_value_t = 525_600)]
    pub bars: usize,
}

/// Parses the trading settings, each refusal naming its flag.
fn config(args: &BacktestArgs) -> Result<BacktestConfig> {
    let input = backtest::settings::SettingsInput {
        symbol: Some(args.symbol.clone()),
        cash: Some(args.cash.clone()),
        commission: Some(args.commission.clone()),
        sizing: Some(args.sizing.clone()),
        fill: Some(args.fill.clone()),
        slippage_bps: Some(args.slippage_bps.clone()),
        close_at_end: Some(args.close_at_end),
        lot_size: Some(args.lot_size.clone()),
    };
    // Flags are named like the settings, with dashes.
    input.parse().map_err(|e| anyhow::anyhow!("--{} {}", e.field.replace('_', "-"), e.message))
}

fn parse_params(info: &StrategyInfo, given: &[String]) -> Result<(Vec<(String, String)>, Params)> {
    let pairs = given.iter().map(|p| Params::split_pair(p)).collect::<Result<Vec<_>, _>>()?;
    let params = Params::parse(info.name, info.params, &pairs)?;
    Ok((pairs, params))
}

fn progress_bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    let style = ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} ({per_sec}, {eta} left)")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(what.to_string());
    bar
}

/// Bars at which a single run is long enough to deserve a progress bar.
const PROGRESS_THRESHOLD: usize = 200_000;

pub fn run(args: &BacktestArgs) -> Result<()> {
    // Everything that can be checked without the data is checked first.
    let info = strategies::find(&args.strategy).map_err(anyhow::Error::msg)?;
    let config = config(args)?;
    let (pairs, params) = parse_params(info, &args.params)?;
    let axes = args.sweeps.iter().map(|s| Axis::parse(s)).collect::<Result<Vec<_>, _>>().map_err(anyhow::Error::msg)?;
    if axes.is_empty() {
        // Builds once to surface cross-parameter errors (fast >= slow) before loading.
        info.build_with(&params)?;
    } else {
        sweep::check_rank(&args.rank).map_err(anyhow::Error::msg)?;
    }
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out).with_context(|| format!("cannot create output directory {}", out.display()))?;
    }

    let parse_time = |flag: &str, value: &Option<String>| -> Result<Option<Timestamp>> {
        value.as_deref().map(|v| Timestamp::parse(v).with_context(|| format!("{flag} {v}"))).transpose()
    };
    let (from, to) = (parse_time("--from", &args.from)?, parse_time("--to", &args.to)?);
    if let (Some(f), Some(t)) = (from, to)
        && f >= t
    {
        bail!("--from {f} must be before --to {t}");
    }

    let bar_interval_ns =
        data::parse_interval(&args.bar_interval).map_err(anyhow::Error::msg).context("--bar-interval")?;

    let loaded = Instant::now();
    let mut data = data::load_market_data(&args.data)?;
    let load_time = loaded.elapsed();
    let in_range = |ts: Timestamp| from.is_none_or(|f| ts >= f) && to.is_none_or(|t| ts < t);
    let (rows, what) = match &mut data {
        MarketData::Bars(bars) => {
            let (first, last) = (bars[0].ts, bars[bars.len() - 1].ts);
            bars.retain(|b| in_range(b.ts));
            if bars.is_empty() {
                bail!("no bars in the chosen range; {} covers {first} to {last}", args.data.display());
            }
            (bars.len(), "bars")
        }
        MarketData::Quotes { quotes, .. } => {
            let (first, last) = (quotes[0].ts, quotes[quotes.len() - 1].ts);
            quotes.retain(|q| in_range(q.ts));
            if quotes.is_empty() {
                bail!("no quotes in the chosen range; {} covers {first} to {last}", args.data.display());
            }
            (quotes.len(), "quotes")
        }
    };
    let market = match &data {
        MarketData::Bars(bars) => Market::Bars(bars),
        MarketData::Quotes { quotes, sizes } => {
            Market::Quotes { quotes, respect_size: *sizes && !args.ignore_quote_size, bar_interval_ns }
        }
    };

    if !axes.is_empty() {
        return run_sweep(args, info, &pairs, &axes, &config, market);
    }

    let mut strategy = info.build_with(&params)?;
    let bar = (rows >= PROGRESS_THRESHOLD).then(|| progress_bar(rows as u64, "backtest"));
    let started = Instant::now();
    let options = backtest::ReportOptions {
        data_file: Some(args.data.display().to_string()),
        max_curve_points: args.equity_points,
    };
    let report =
        backtest::run_report(market, (info.name, strategy.as_mut(), &params), &config, &options, &mut |done| {
            if let Some(b) = &bar {
                b.set_position(done as u64);
            }
        })?;
    let run_time = started.elapsed();
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    print_summary(&report);
    eprintln!(
        "{rows} {what} loaded in {:.3} s, backtested in {:.3} s{}",
        load_time.as_secs_f64(),
        run_time.as_secs_f64(),
        peak_memory().map(|mb| format!(", peak memory {mb} MB")).unwrap_or_default()
    );
    if let Some(out) = &args.out {
        write_report(&report, out)?;
    }
    Ok(())
}

/// The process's peak resident memory in MiB, where the OS tells it (Linux).
fn peak_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

fn write_report(report: &Report, out: &Path) -> Result<()> {
    let json = out.join("report.json");
    let html = out.join("report.html");
    report.write_json(&json)?;
    report.write_html(&html)?;
    println!("report: {} and {}", json.display(), html.display());
    Ok(())
}

fn run_sweep(
    args: &BacktestArgs,
    info: &StrategyInfo,
    fixed: &[(String, String)],
    axes: &[Axis],
    config: &BacktestConfig,
    market: Market<'_>,
) -> Result<()> {
    let combos: usize = axes.iter().map(|a| a.values.len()).product();
    let threads =
        args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get));
    let bar = progress_bar(combos as u64, "sweep");
    let started = Instant::now();
    let spec = sweep::Sweep { info, fixed, axes, rank_by: &args.rank };
    let output = sweep::run_sweep(market, &spec, config, threads, &|| bar.inc(1)).map_err(anyhow::Error::msg)?;
    bar.finish_and_clear();
    print_sweep(&output, axes, args.top);
    eprintln!(
        "{} combinations ({} run, {} skipped) over {} rows of data on {threads} threads in {:.2} s",
        output.combinations,
        output.results.len(),
        output.skipped.len(),
        market.len(),
        started.elapsed().as_secs_f64()
    );
    if let Some(out) = &args.out {
        let path = out.join("sweep.json");
        backtest::report::write_atomically(&path, |w| {
            serde_json::to_writer_pretty(&mut *w, &output).map_err(std::io::Error::other)
        })?;
        println!("sweep results: {}", path.display());
    }
    Ok(())
}

fn fmt_opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "-".to_string(), |x| format!("{x:.decimals$}"))
}

fn right(text: String) -> Cell {
    Cell::new(text).set_alignment(CellAlignment::Right)
}

fn print_summary(r: &Report) {
    let m = &r.metrics;
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED);
    table.set_header(vec![Cell::new(format!("{} {} on {}", r.strategy, params_text(r), r.symbol)), Cell::new("")]);
    let rows: Vec<(&str, String)> = vec![
        ("period", format!("{} .. {} ({} bars)", r.data.start, r.data.end, r.data.bars)),
        ("initial cash", r.initial_cash.to_string_with(2)),
        ("final equity", m.final_equity.to_string_with(2)),
        ("total return", format!("{:.2} %", m.total_return_pct)),
        ("buy and hold", format!("{:.2} %", m.buy_and_hold_return_pct)),
        ("CAGR", format!("{:.2} %", m.cagr_pct)),
        ("max drawdown", format!("{:.2} %", m.max_drawdown_pct)),
        ("Sharpe", format!("{:.3}", m.sharpe)),
        ("Sortino", fmt_opt(m.sortino, 3)),
        ("win rate", fmt_opt(m.win_rate_pct, 1).replace('-', "- ") + " %"),
        ("profit factor", fmt_opt(m.profit_factor, 3)),
        ("exposure", format!("{:.1} %", m.exposure_pct)),
        ("trades", m.trade_count.to_string()),
        ("commissions", m.commissions.to_string_with(2)),
    ];
    for (k, v) in rows {
        table.add_row(vec![Cell::new(k), right(v)]);
    }
    println!("{table}");
    if !r.orders_denied.is_empty() {
        let denied: Vec<String> = r.orders_denied.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        println!("orders refused by risk checks: {}", denied.join(", "));
    }
    if r.orders_skipped_zero_size > 0 {
        println!(
            "{} orders not placed: free cash did not cover one lot (try a smaller --lot-size)",
            r.orders_skipped_zero_size
        );
    }
}

fn params_text(r: &Report) -> String {
    r.params.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
}

fn print_sweep(output: &SweepOutput, axes: &[Axis], top: usize) {
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED);
    let mut header: Vec<Cell> = vec![Cell::new("#")];
    header.extend(axes.iter().map(|a| Cell::new(&a.name)));
    for h in ["sharpe", "return %", "max dd %", "trades", "win %", "final equity"] {
        header.push(Cell::new(h));
    }
    table.set_header(header);
    for (i, r) in output.results.iter().take(top).enumerate() {
        let mut row = vec![right((i + 1).to_string())];
        row.extend(axes.iter().map(|a| right(r.params.get(&a.name).cloned().unwrap_or_default())));
        let m = &r.metrics;
        row.extend([
            right(format!("{:.3}", m.sharpe)),
            right(format!("{:.2}", m.total_return_pct)),
            right(format!("{:.2}", m.max_drawdown_pct)),
            right(m.trade_count.to_string()),
            right(fmt_opt(m.win_rate_pct, 1)),
            right(m.final_equity.to_string_with(2)),
        ]);
        table.add_row(row);
    }
    println!("ranked by {}", output.rank_by);
    println!("{table}");
    if !output.skipped.is_empty() {
        let first = &output.skipped[0];
        println!("skipped {} invalid combinations (e.g. {:?}: {})", output.skipped.len(), first.params, first.reason);
    }
}

pub fn print_strategies() {
    for info in strategies::STRATEGIES {
        println!("{}\n  {}", info.name, info.summary);
        for p in info.params {
            println!("  --param {}=<{}> (default {}): {}", p.name, p.accepts(), p.default, p.help);
        }
        println!();
    }
}

/// Generates demo data (once) and backtests sma-cross on it.
pub fn demo(args: &DemoArgs) -> Result<()> {
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let data_path = args.out.join(format!("synth-{}.csv", args.bars));
    if !data_path.exists() {
        let spec = crate::data_cmd::spec(&crate::data_cmd::SynthArgs {
            bars: args.bars,
            seed: 42,
            interval: "1m".into(),
            start: "2024-01-01T00:00:00Z".into(),
            price: "100".into(),
            volatility: 0.001,
            out: data_path.clone(),
            quotes: false,
        })?;
        data::write_csv(&data_path, &data::synth(&spec))?;
        println!("generated {} one-minute bars in {}", args.bars, data_path.display());
    }
    let backtest = BacktestArgs {
        data: data_path,
        strategy: "sma-cross".into(),
        from: None,
        to: None,
        bar_interval: "1m".into(),
        ignore_quote_size: false,
        params: vec!["fast=360".into(), "slow=2880".into(), "long-only=true".into()],
        symbol: "SYNTH".into(),
        cash: "10000".into(),
        commission: "0.001".into(),
        sizing: "all-in".into(),
        fill: "next-open".into(),
        slippage_bps: "1".into(),
        close_at_end: true,
        lot_size: "0.001".into(),
        out: Some(args.out.clone()),
        equity_points: 5_000,
        sweeps: Vec::new(),
        rank: "sharpe".into(),
        top: 20,
        threads: None,
    };
    run(&backtest)
}
