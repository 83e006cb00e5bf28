//! Hand-computed backtests: every price, quantity and commission checked to
//! the last digit against arithmetic written out in the comments.

use backtest::{BacktestConfig, RunOutput, run};
use engine::Sizing;
use engine::strategies;
use model::{Bar, Money, Price, Quantity, Rate, Side, Timestamp};
use sim::bars::FillTiming;

fn p(s: &str) -> Price {
    Price::parse(s).unwrap()
}

fn m(s: &str) -> Money {
    Money::parse(s).unwrap()
}

/// Bars from (open, close); high and low hug them.
fn bars(rows: &[(&str, &str)]) -> Vec<Bar> {
    rows.iter()
        .enumerate()
        .map(|(i, (o, c))| {
            let (o, c) = (p(o), p(c));
            Bar {
                ts: Timestamp::from_secs(1_704_067_200 + 60 * i as i64),
                open: o,
                high: o.max(c),
                low: o.min(c),
                close: c,
                volume: Quantity::from_int(1),
            }
        })
        .collect()
}

/// Closes 10, 9, 8, 9, 10, 9, 8 with fast=1, slow=2: fast is the close and
/// slow the mean of the last two. Bar 3 crosses up (9 > 8.5 after 8 < 8.5) and
/// bar 5 crosses down (9 < 9.5 after 10 > 9.5).
fn series() -> Vec<Bar> {
    bars(&[("10", "10"), ("10", "9"), ("9", "8"), ("8", "9"), ("9.5", "10"), ("10", "9"), ("8.8", "8")])
}

fn sma_cross(long_only: bool, config: &BacktestConfig) -> RunOutput {
    let info = strategies::find("sma-cross").unwrap();
    let given = [("fast", "1"), ("slow", "2"), ("long-only", if long_only { "true" } else { "false" })]
        .map(|(k, v)| (k.to_string(), v.to_string()));
    let (mut strategy, _) = info.build(&given).unwrap();
    run(&series(), strategy.as_mut(), config, &mut |_| {}).unwrap()
}

fn config(timing: FillTiming) -> BacktestConfig {
    BacktestConfig {
        cash: m("1000"),
        commission: Rate::parse("0.01").unwrap(),
        sizing: Sizing::AllIn,
        timing,
        ..BacktestConfig::default()
    }
}

#[test]
fn next_open_long_only_round_trip() {
    let out = sma_cross(true, &config(FillTiming::NextOpen));
    assert_eq!(out.trades.len(), 1);
    let t = &out.trades[0];
    // Cross up at bar 3's close; fills at bar 4's open, 9.5. All-in: each unit
    // costs 9.5 * 1.01 = 9.595, and 1000 / 9.595 = 104.2 -> 104 units.
    assert_eq!(t.side, Side::Buy);
    assert_eq!(t.quantity, Quantity::from_int(104));
    assert_eq!(t.entry_price, p("9.5"));
    assert_eq!(t.entry_time, series()[4].ts);
    // Cross down at bar 5; sells at bar 6's open, 8.8.
    assert_eq!(t.exit_price, Some(p("8.8")));
    assert_eq!(t.exit_time, Some(series()[6].ts));
    // Commissions 988 * 0.01 + 915.2 * 0.01 = 9.88 + 9.152.
    assert_eq!(t.commission, m("19.032"));
    // (8.8 - 9.5) * 104 - 19.032.
    assert_eq!(t.pnl, m("-91.832"));
    assert_eq!(out.final_equity, m("908.168"));
    assert_eq!(out.commissions, m("19.032"));
    // In the market after bars 4 and 5.
    assert_eq!(out.bars_in_market, 2);
}

#[test]
fn close_timing_fills_at_the_signal_bar_close() {
    let out = sma_cross(true, &config(FillTiming::Close));
    let t = &out.trades[0];
    // At 9 * 1.01 = 9.09 a unit, 1000 buys 110 (999.90).
    assert_eq!(t.quantity, Quantity::from_int(110));
    assert_eq!((t.entry_price, t.exit_price), (p("9"), Some(p("9"))));
    assert_eq!(t.entry_time, series()[3].ts.plus_nanos(60_000_000_000));
    assert_eq!(t.pnl, m("-19.8"));
    assert_eq!(out.final_equity, m("980.2"));
}

#[test]
fn reversal_closes_first_then_sizes_the_short_with_the_cash_after() {
    let out = sma_cross(false, &config(FillTiming::NextOpen));
    assert_eq!(out.trades.len(), 2);
    // Cash after closing the long is 908.168. A short unit at 8.8 needs
    // 8.8 * 1.01 = 8.888 of collateral: 908.168 / 8.888 = 102.18 -> 102.
    let short = &out.trades[1];
    assert_eq!(short.side, Side::Sell);
    assert_eq!(short.quantity, Quantity::from_int(102));
    assert_eq!(short.entry_price, p("8.8"));
    assert_eq!(short.exit_time, None);
    // Open at the end, marked to the last close 8: (8.8 - 8) * 102 - 8.976 fee.
    assert_eq!(short.pnl, m("72.624"));
    assert_eq!(out.final_equity, m("908.168") + m("72.624"));
}

#[test]
fn close_at_end_and_slippage() {
    let mut c = config(FillTiming::NextOpen);
    c.close_at_end = true;
    c.slippage = Rate::from_bps(10);
    let out = sma_cross(false, &c);
    let short = &out.trades[1];
    // Entry sold at 8.8 less 10 bp = 8.7912; covered at 8 plus 10 bp = 8.008.
    assert_eq!(short.entry_price, p("8.7912"));
    assert_eq!(short.exit_price, Some(p("8.008")));
    assert!(short.exit_time.is_some());
    assert!(out.engine_flat());
}

#[test]
fn units_and_percent_sizing() {
    let mut c = config(FillTiming::NextOpen);
    c.sizing = Sizing::Units(Quantity::from_int(7));
    assert_eq!(sma_cross(true, &c).trades[0].quantity, Quantity::from_int(7));
    // 50 % of 1000 equity at 9.595 a unit: 500 / 9.595 = 52.1 -> 52.
    c.sizing = "percent=50".parse().unwrap();
    assert_eq!(sma_cross(true, &c).trades[0].quantity, Quantity::from_int(52));
}

#[test]
fn same_inputs_same_results() {
    let a = sma_cross(false, &config(FillTiming::NextOpen));
    let b = sma_cross(false, &config(FillTiming::NextOpen));
    assert_eq!(a.trades, b.trades);
    assert_eq!(a.equity, b.equity);
}

trait Flat {
    fn engine_flat(&self) -> bool;
}

impl Flat for RunOutput {
    /// After closing at the end, every trade is closed.
    fn engine_flat(&self) -> bool {
        self.trades.iter().all(|t| t.exit_time.is_some())
    }
}

/// Quotes one minute apart with mids 10, 9, 8, 9, 10, 9, 8 and a 0.2 spread:
/// each quote is its own one-minute bar, so the signals are those of the bar
/// test, and orders fill at the next quote's touch.
fn quotes(size: i64) -> Vec<model::Quote> {
    ["10", "9", "8", "9", "10", "9", "8"]
        .iter()
        .enumerate()
        .map(|(i, mid)| {
            let mid = p(mid);
            model::Quote {
                instrument: model::InstrumentId(1),
                ts: Timestamp::from_secs(1_704_067_200 + 60 * i as i64),
                bid: mid.checked_sub(p("0.1")).unwrap(),
                bid_size: Quantity::from_int(size),
                ask: mid.checked_add(p("0.1")).unwrap(),
                ask_size: Quantity::from_int(size),
            }
        })
        .collect()
}

fn sma_cross_on_quotes(size: i64, respect_size: bool) -> (RunOutput, Vec<Bar>) {
    let info = strategies::find("sma-cross").unwrap();
    let given = [("fast", "1"), ("slow", "2"), ("long-only", "true")].map(|(k, v)| (k.to_string(), v.to_string()));
    let (mut strategy, _) = info.build(&given).unwrap();
    backtest::run_quotes(
        &quotes(size),
        respect_size,
        60_000_000_000,
        strategy.as_mut(),
        &config(FillTiming::NextOpen),
        &mut |_| {},
    )
    .unwrap()
}

#[test]
fn quotes_fill_at_the_touch_of_the_next_quote() {
    let (out, bars) = sma_cross_on_quotes(1_000, true);
    assert_eq!(bars.len(), 7);
    assert_eq!(bars[3].close, p("9"), "bars are built from mid prices");
    let t = &out.trades[0];
    // Cross up at bar 3; buys at quote 4's ask, 10.1. A unit costs 10.1 * 1.01
    // = 10.201, so 1000 buys 98.
    assert_eq!(t.quantity, Quantity::from_int(98));
    assert_eq!(t.entry_price, p("10.1"));
    // Cross down at bar 5; sells at quote 6's bid, 7.9.
    assert_eq!(t.exit_price, Some(p("7.9")));
    // (7.9 - 10.1) * 98 - (9.898 + 7.742).
    assert_eq!(t.pnl, m("-233.24"));
    assert_eq!(out.final_equity, m("766.76"));
}

#[test]
fn displayed_size_caps_quote_fills() {
    // Only 40 on the ask: the rest of the 98 waits for later quotes.
    let (out, _) = sma_cross_on_quotes(40, true);
    assert!(out.fills >= 2, "the entry fills in parts: {} fills", out.fills);
    let pnl: Money = out.trades.iter().map(|t| t.pnl).sum();
    assert_eq!(pnl, out.final_equity - out.initial_cash);
    // Ignoring sizes, it fills whole as with deep quotes.
    let (whole, _) = sma_cross_on_quotes(40, false);
    assert_eq!(whole.final_equity, m("766.76"));
}
