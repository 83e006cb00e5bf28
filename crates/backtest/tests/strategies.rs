//! Every built-in strategy on generated data: it trades, it respects its own
//! rules (long-only never shorts, DCA never sells), and its trades account for
//! every cent of the change in equity.

use backtest::data::{SynthSpec, synth};
use backtest::{BacktestConfig, run};
use engine::strategies::STRATEGIES;
use model::{Money, Price, Quantity, Rate, Side, Timestamp};

fn bars() -> Vec<model::Bar> {
    synth(&SynthSpec {
        bars: 30_000,
        seed: 11,
        interval_ns: model::time::NANOS_PER_MINUTE,
        start: Timestamp::parse("2024-01-01").unwrap(),
        start_price: Price::from_int(100),
        volatility: 0.002,
    })
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect()
}

#[test]
fn every_strategy_trades_and_its_trades_add_up() {
    let bars = bars();
    let config = BacktestConfig {
        commission: Rate::parse("0.001").unwrap(),
        lot_size: Quantity::parse("0.001").unwrap(),
        close_at_end: true,
        ..BacktestConfig::default()
    };
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("sma-cross", vec![("fast", "20"), ("slow", "80")]),
        ("ema-cross", vec![("fast", "20"), ("slow", "80")]),
        ("rsi-reversion", vec![("long-only", "false")]),
        ("bollinger-breakout", vec![("long-only", "false")]),
        ("macd", vec![]),
        ("dca", vec![("every", "500"), ("amount", "200")]),
    ];
    assert_eq!(cases.len(), STRATEGIES.len(), "every built-in strategy has a case");
    for (name, given) in cases {
        let info = engine::strategies::find(name).unwrap();
        let (mut strategy, _) = info.build(&pairs(&given)).unwrap();
        let out = run(&bars, strategy.as_mut(), &config, &mut |_| {}).unwrap();
        assert!(out.trades.len() >= 2 || name == "dca", "{name}: only {} trades", out.trades.len());
        assert!(out.fills >= 2, "{name}: {} fills", out.fills);
        let pnl: Money = out.trades.iter().map(|t| t.pnl).sum();
        assert_eq!(pnl, out.final_equity - out.initial_cash, "{name}: trade P&L must equal the change in equity");
        let commissions: Money = out.trades.iter().map(|t| t.commission).sum();
        assert_eq!(commissions, out.commissions, "{name}");
        assert!(out.trades.iter().all(|t| t.exit_time.is_some()), "{name}: --close-at-end closes everything");
    }
}

#[test]
fn long_only_strategies_never_short_and_dca_never_sells() {
    let bars = bars();
    let config = BacktestConfig::default();
    for name in ["sma-cross", "ema-cross", "rsi-reversion", "bollinger-breakout", "macd"] {
        let info = engine::strategies::find(name).unwrap();
        let mut given = vec![("long-only", "true")];
        if name.ends_with("cross") {
            given.extend([("fast", "10"), ("slow", "40")]);
        }
        let (mut strategy, _) = info.build(&pairs(&given)).unwrap();
        let out = run(&bars, strategy.as_mut(), &config, &mut |_| {}).unwrap();
        assert!(!out.trades.is_empty(), "{name}");
        assert!(out.trades.iter().all(|t| t.side == Side::Buy), "{name}: a long-only strategy went short");
    }
    let info = engine::strategies::find("dca").unwrap();
    let (mut strategy, _) = info.build(&pairs(&[("every", "1000"), ("amount", "100")])).unwrap();
    // Whole units: at prices near 100, 100 of cash (fees included) often buys
    // nothing, and those purchases are skipped and counted.
    let whole = run(&bars, strategy.as_mut(), &config, &mut |_| {}).unwrap();
    assert_eq!(whole.fills + whole.skipped_zero_size, 30);
    assert!(whole.skipped_zero_size > 0);
    let (mut strategy, _) = info.build(&pairs(&[("every", "1000"), ("amount", "100")])).unwrap();
    let fractional = BacktestConfig { lot_size: Quantity::parse("0.001").unwrap(), ..BacktestConfig::default() };
    let out = run(&bars, strategy.as_mut(), &fractional, &mut |_| {}).unwrap();
    // One open trade that only ever bought: 30 purchases of 100 (fees included).
    assert_eq!(out.trades.len(), 1);
    assert_eq!(out.trades[0].exit_time, None);
    assert_eq!(out.fills, 30);
}
