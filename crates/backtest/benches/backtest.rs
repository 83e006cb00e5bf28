//! Backtest throughput: `cargo bench -p backtest --bench backtest`.
//!
//! Prints figures rather than asserting them: bars per second of the engine
//! loop alone (bars already in memory), and the wall time of a 100-combination
//! sweep over the same bars on every core.

use std::time::Instant;

use backtest::data::{SynthSpec, synth};
use backtest::sweep::{Axis, Sweep, run_sweep};
use backtest::{BacktestConfig, Market, run};
use engine::strategies;
use model::{Money, Price, Rate, Timestamp};

fn main() {
    let bars_n: usize = std::env::var("BENCH_BARS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let bars = synth(&SynthSpec {
        bars: bars_n,
        seed: 1,
        interval_ns: model::time::NANOS_PER_MINUTE,
        start: Timestamp::from_secs(1_704_067_200),
        start_price: Price::from_int(100),
        volatility: 0.001,
    });
    let config = BacktestConfig {
        commission: Rate::parse("0.001").unwrap_or(Rate::ZERO),
        cash: Money::from_int(10_000),
        ..BacktestConfig::default()
    };
    let info = strategies::find("sma-cross").unwrap_or_else(|e| panic!("{e}"));
    let given = vec![
        ("fast".to_string(), "10".to_string()),
        ("slow".to_string(), "30".to_string()),
        ("long-only".to_string(), "true".to_string()),
    ];

    println!(
        "machine: {} cores, {}",
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        cpu_model()
    );
    let mut best = f64::INFINITY;
    let mut trades = 0;
    for _ in 0..5 {
        let (mut strategy, _) = info.build(&given).unwrap_or_else(|e| panic!("{e}"));
        let started = Instant::now();
        let out = run(&bars, strategy.as_mut(), &config, &mut |_| {}).unwrap_or_else(|e| panic!("{e}"));
        best = best.min(started.elapsed().as_secs_f64());
        trades = out.trades.len();
    }
    println!(
        "engine: sma-cross long-only 10/30 over {bars_n} bars in memory: best of 5 {:.1} ms = {:.1} million bars/s ({trades} trades)",
        best * 1e3,
        bars_n as f64 / best / 1e6
    );

    let axes = [
        Axis::parse("fast=5..50:5").unwrap_or_else(|e| panic!("{e}")),
        Axis::parse("slow=60..240:20").unwrap_or_else(|e| panic!("{e}")),
    ];
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let started = Instant::now();
    let sweep = Sweep { info, fixed: &[], axes: &axes, rank_by: "sharpe" };
    let out = run_sweep(Market::Bars(&bars), &sweep, &config, threads, &|| {}).unwrap_or_else(|e| panic!("{e}"));
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "sweep: {} combinations ({} run) over {bars_n} bars on {threads} threads in {:.2} s = {:.1} million bars/s",
        out.combinations,
        out.results.len(),
        elapsed,
        (out.results.len() * bars_n) as f64 / elapsed / 1e6
    );
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".to_string())
}
