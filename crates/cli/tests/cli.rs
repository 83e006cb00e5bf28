//! The `tradecore` binary run as a real process on real files.

mod common;

use common::TempDir;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn tradecore() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tradecore"))
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("the tradecore binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn synth(dir: &TempDir, bars: usize, seed: u64) -> PathBuf {
    let file = dir.path("bars.csv");
    let out = run(tradecore()
        .args(["data", "synth", "--bars", &bars.to_string(), "--seed", &seed.to_string(), "--out"])
        .arg(&file));
    assert!(out.status.success(), "synth failed: {}", text(&out.stderr));
    file
}

fn backtest(data: &Path, extra: &[&str]) -> Output {
    run(tradecore().args(["backtest", "--strategy", "sma-cross", "--data"]).arg(data).args(extra))
}

#[test]
fn synth_is_reproducible() {
    let dir = TempDir::new("cli-synth");
    let a = std::fs::read(synth(&dir, 2_000, 9)).unwrap();
    let b = std::fs::read(synth(&dir, 2_000, 9)).unwrap();
    assert_eq!(a, b);
    let head = text(&a[..60]);
    assert!(head.starts_with("timestamp,open,high,low,close,volume\n2024-01-01T00:00:00Z,"), "{head}");
}

#[test]
fn backtest_writes_json_and_html_reports() {
    let dir = TempDir::new("cli-report");
    let data = synth(&dir, 20_000, 1);
    let out_dir = dir.path("out");
    let out = backtest(
        &data,
        &[
            "--param",
            "fast=10",
            "--param",
            "slow=40",
            "--commission",
            "0.002",
            "--close-at-end",
            "--out",
            out_dir.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("final equity") && stdout.contains("max drawdown"), "{stdout}");

    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("report.json")).unwrap()).unwrap();
    for key in [
        "final_equity",
        "total_return_pct",
        "cagr_pct",
        "max_drawdown_pct",
        "sharpe",
        "sortino",
        "win_rate_pct",
        "profit_factor",
        "exposure_pct",
        "trade_count",
        "commissions",
        "trades",
        "equity_curve",
    ] {
        assert!(report.get(key).is_some(), "report.json lacks {key}");
    }
    let trades = report["trades"].as_array().unwrap();
    assert!(!trades.is_empty());
    assert_eq!(report["trade_count"].as_u64().unwrap() as usize, trades.len());
    for key in ["side", "quantity", "entry_time", "exit_time", "entry_price", "exit_price", "pnl", "commission"] {
        assert!(trades[0].get(key).is_some(), "trade lacks {key}");
    }
    // --close-at-end: every trade is closed, with an ISO 8601 UTC exit time.
    assert!(trades.iter().all(|t| t["exit_time"].as_str().is_some_and(|s| s.ends_with('Z'))));
    // Trade P&L adds up to the change in equity, exactly.
    let sum: i128 = trades.iter().map(|t| model::Money::parse(t["pnl"].as_str().unwrap()).unwrap().raw()).sum();
    let final_equity = model::Money::parse(report["final_equity"].as_str().unwrap()).unwrap();
    assert_eq!(model::Money::from_raw(sum), final_equity - model::Money::from_int(10_000));

    let html = std::fs::read_to_string(out_dir.join("report.html")).unwrap();
    assert!(html.contains("<svg"), "the HTML report has charts");
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"), "the HTML report is self-contained");
}

#[test]
fn date_range_selects_bars() {
    let dir = TempDir::new("cli-range");
    let data = synth(&dir, 3_000, 5);
    let out_dir = dir.path("out");
    let out = backtest(
        &data,
        &[
            "--from",
            "2024-01-01T10:00:00Z",
            "--to",
            "2024-01-02",
            "--param",
            "long-only=true",
            "--out",
            out_dir.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["data"]["bars"], 14 * 60);
    assert_eq!(report["data"]["start"], "2024-01-01T10:00:00Z");
    assert_eq!(report["data"]["end"], "2024-01-01T23:59:00Z");
    assert!(report["buy_and_hold_return_pct"].is_number());
}

#[test]
fn backtests_run_on_quotes_too() {
    let dir = TempDir::new("cli-quotes");
    let data = dir.path("quotes.csv");
    let out =
        run(tradecore().args(["data", "synth", "--quotes", "--bars", "20000", "--interval", "5s", "--out"]).arg(&data));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out_dir = dir.path("out");
    let out = backtest(
        &data,
        &[
            "--param",
            "fast=5",
            "--param",
            "slow=20",
            "--bar-interval",
            "1m",
            "--commission",
            "0.0005",
            "--close-at-end",
            "--out",
            out_dir.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("20000 quotes loaded"), "{}", text(&out.stderr));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["data"]["quotes"], 20_000);
    // 20,000 quotes 5 s apart make 1,667 one-minute bars.
    assert_eq!(report["data"]["bars"], 1_667);
    let trades = report["trades"].as_array().unwrap();
    assert!(trades.len() > 2);
    let sum: i128 = trades.iter().map(|t| model::Money::parse(t["pnl"].as_str().unwrap()).unwrap().raw()).sum();
    let final_equity = model::Money::parse(report["final_equity"].as_str().unwrap()).unwrap();
    assert_eq!(model::Money::from_raw(sum), final_equity - model::Money::from_int(10_000));
    // Sweeps work on quotes as well.
    let out = backtest(&data, &["--sweep", "fast=5..10:5", "--sweep", "slow=20,30"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("ranked by sharpe"));
}

#[test]
fn same_run_same_report() {
    let dir = TempDir::new("cli-determinism");
    let data = synth(&dir, 5_000, 2);
    let reports: Vec<Vec<u8>> = ["a", "b"]
        .iter()
        .map(|name| {
            let out_dir = dir.path(name);
            let out = backtest(&data, &["--param", "long-only=true", "--out", out_dir.to_str().unwrap()]);
            assert!(out.status.success(), "{}", text(&out.stderr));
            std::fs::read(out_dir.join("report.json")).unwrap()
        })
        .collect();
    assert_eq!(reports[0], reports[1]);
}

#[test]
fn bad_input_names_the_problem_and_writes_nothing() {
    let dir = TempDir::new("cli-bad");
    let good = synth(&dir, 100, 3);
    let lines: Vec<String> = std::fs::read_to_string(&good).unwrap().lines().map(str::to_string).collect();
    let write = |name: &str, body: &[String]| {
        let path = dir.path(name);
        std::fs::write(&path, body.join("\n")).unwrap();
        path
    };
    let mut malformed = lines.clone();
    malformed[7] = "2024-01-01T00:06:00Z,100,abc,99,100,1".into();
    let mut negative = lines.clone();
    negative[4] = "2024-01-01T00:03:00Z,-1,1,1,1,1".into();
    let mut inverted = lines.clone();
    inverted[5] = "2024-01-01T00:04:00Z,100,99,101,100,1".into();
    let mut unsorted = lines.clone();
    unsorted.swap(10, 11);
    let mut duplicate = lines.clone();
    duplicate[12] = duplicate[11].clone();
    let mut missing = lines.clone();
    missing[0] = "timestamp,open,high,low,close".into();

    let cases: Vec<(&str, PathBuf, Vec<&str>, &str)> = vec![
        ("malformed row", write("m.csv", &malformed), vec![], "line 8: high: 'abc' is not a decimal"),
        ("negative price", write("n.csv", &negative), vec![], "line 5: open must be positive"),
        ("high below low", write("i.csv", &inverted), vec![], "line 6: high 99 is below low 101"),
        ("unsorted", write("u.csv", &unsorted), vec![], "line 12: timestamp"),
        ("duplicate", write("d.csv", &duplicate), vec![], "line 13: duplicate timestamp"),
        ("missing column", write("c.csv", &missing), vec![], "missing column(s) volume"),
        ("missing file", dir.path("nope.csv"), vec![], "cannot read"),
        ("unknown strategy", good.clone(), vec!["--strategy", "moon"], "unknown strategy 'moon'; available: sma-cross"),
        (
            "unknown parameter",
            good.clone(),
            vec!["--param", "speed=3"],
            "unknown parameter 'speed' for strategy sma-cross",
        ),
        (
            "fast >= slow",
            good.clone(),
            vec!["--param", "fast=50", "--param", "slow=20"],
            "fast (50) must be less than slow (20)",
        ),
        ("bad parameter value", good.clone(), vec!["--param", "fast=ten"], "fast=ten is invalid: expected an integer"),
        ("bad sizing", good.clone(), vec!["--sizing", "half"], "invalid sizing 'half'"),
        ("bad fill model", good.clone(), vec!["--fill", "vwap"], "unknown fill model 'vwap'"),
        ("negative cash", good.clone(), vec!["--cash", "-5"], "--cash must be positive"),
        ("bad sweep", good.clone(), vec!["--sweep", "fast=10..5:1"], "the end is before the start"),
        ("bad rank", good.clone(), vec!["--sweep", "fast=5..10:5", "--rank", "luck"], "cannot rank by 'luck'"),
        ("empty range", good.clone(), vec!["--from", "2030-01-01"], "no bars in the chosen range"),
        ("inverted range", good.clone(), vec!["--from", "2024-02-01", "--to", "2024-01-01"], "must be before --to"),
    ];
    for (name, data, extra, expected) in cases {
        let out_dir = dir.path(&format!("out-{}", name.replace(' ', "-")));
        let mut args: Vec<&str> = vec!["--out", out_dir.to_str().unwrap()];
        // A later --strategy overrides the default one given by `backtest`.
        let mut cmd = tradecore();
        cmd.arg("backtest").arg("--data").arg(&data);
        if !extra.contains(&"--strategy") {
            cmd.args(["--strategy", "sma-cross"]);
        }
        args.extend(extra.iter().copied());
        let out = run(cmd.args(&args));
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{name}: expected failure");
        assert!(stderr.contains(expected), "{name}: stderr was: {stderr}");
        let written = std::fs::read_dir(&out_dir).map(|d| d.count()).unwrap_or(0);
        assert_eq!(written, 0, "{name}: no report may be written");
    }
}

#[test]
fn sweep_ranks_every_combination_and_skips_invalid_ones() {
    let dir = TempDir::new("cli-sweep");
    let data = synth(&dir, 10_000, 4);
    let out_dir = dir.path("out");
    let out = backtest(
        &data,
        &[
            "--sweep",
            "fast=5..25:10",
            "--sweep",
            "slow=10..30:10",
            "--rank",
            "total_return_pct",
            "--out",
            out_dir.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("ranked by total_return_pct"), "{stdout}");
    assert!(stdout.contains("skipped 3 invalid combinations"), "{stdout}");
    let sweep: serde_json::Value = serde_json::from_slice(&std::fs::read(out_dir.join("sweep.json")).unwrap()).unwrap();
    let results = sweep["results"].as_array().unwrap();
    // fast 5, 15, 25 x slow 10, 20, 30 minus fast >= slow (15/10, 25/10, 25/20).
    assert_eq!(results.len(), 6);
    assert_eq!(sweep["skipped"].as_array().unwrap().len(), 3);
    let returns: Vec<f64> = results.iter().map(|r| r["total_return_pct"].as_f64().unwrap()).collect();
    assert!(returns.windows(2).all(|w| w[0] >= w[1]), "ranked best first: {returns:?}");
}

#[test]
fn strategies_are_listed_with_their_parameters() {
    let out = run(tradecore().arg("strategies"));
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    for name in ["sma-cross", "ema-cross", "rsi-reversion", "bollinger-breakout", "macd", "dca", "--param long-only="] {
        assert!(stdout.contains(name), "{name} missing from: {stdout}");
    }
}
