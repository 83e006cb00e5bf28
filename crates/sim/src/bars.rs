//! Fill models for backtests on OHLCV bars.
//!
//! A bar says where the market traded, not in which order, so the models are
//! conservative and fixed:
//! - Market orders fill at the open of the bar they are placed in (the runner
//!   places next-open orders at that open), or under [`FillTiming::Close`] at
//!   the close of the bar whose close produced them.
//! - Other orders work from the bar after the one they were placed in. A limit
//!   fills when the bar trades through it: at the limit, or at the open if the
//!   bar opened beyond it. A stop triggers when the bar's high (buy) or low
//!   (sell) reaches it and fills at the stop, or at the open if the bar gapped
//!   past it. A stop-limit triggers the same way; it fills at once only if the
//!   trigger price is within its limit, and otherwise rests as a limit from the
//!   next bar (we cannot know whether the bar came back to the limit after the
//!   trigger).
//! - IOC and FOK orders get one bar; volume is not modelled, so fills are whole.
//! - DAY orders expire at the first bar of a later UTC day.
//! - Slippage moves market and stop fills against the taker by a fixed rate;
//!   limit fills are never slipped (they are at the limit or better).
//! - Commission is a fraction of each fill's notional.

use model::{
    Bar, ExecutionReport, Liquidity, Money, Order, OrderId, OrderType, Price, Quantity, Rate, Side, TimeInForce,
    notional,
};

/// When market orders decided at a bar's close fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FillTiming {
    /// At the next bar's open: the decision could not have traded at a price
    /// it only learned at the close.
    #[default]
    NextOpen,
    /// At the same bar's close (optimistic, but common in other tools).
    Close,
}

impl std::str::FromStr for FillTiming {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "next-open" => Ok(Self::NextOpen),
            "close" => Ok(Self::Close),
            _ => Err(format!("unknown fill model '{s}'; expected next-open or close")),
        }
    }
}

impl std::fmt::Display for FillTiming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::NextOpen => "next-open",
            Self::Close => "close",
        })
    }
}

/// Costs and timing of the bar venue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarFillConfig {
    pub timing: FillTiming,
    /// Adverse price move for market and stop fills (0.0005 = 5 bp).
    pub slippage: Rate,
    /// Fee as a fraction of notional, on every fill.
    pub commission: Rate,
    /// Contract multiplier of the instrument.
    pub multiplier: Quantity,
}

/// Where in a bar an order is placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// At the open, before the bar trades.
    Open,
    /// At the close, after the strategy saw the whole bar.
    Close,
}

#[derive(Debug, Clone)]
struct Working {
    order_id: OrderId,
    side: Side,
    order_type: OrderType,
    time_in_force: TimeInForce,
    remaining: Quantity,
    /// Index of the first bar it may trade in.
    eligible_from: u64,
    placed_day: i64,
}

/// A simulated venue that fills orders against bars.
#[derive(Debug, Clone)]
pub struct BarVenue {
    config: BarFillConfig,
    working: Vec<Working>,
    bar_index: u64,
    next_trade_id: u64,
}

impl BarVenue {
    #[must_use]
    pub fn new(config: BarFillConfig) -> Self {
        Self { config, working: Vec::new(), bar_index: 0, next_trade_id: 1 }
    }

    #[must_use]
    pub fn config(&self) -> &BarFillConfig {
        &self.config
    }

    /// Orders still working.
    #[must_use]
    pub fn working_count(&self) -> usize {
        self.working.len()
    }

    /// The price a market order would get at `price`, after slippage.
    #[must_use]
    pub fn slipped(&self, price: Price, side: Side) -> Price {
        if self.config.slippage.is_zero() { price } else { price.adjusted_by(self.config.slippage, side == Side::Buy) }
    }

    /// Accepts an order during `bar`. Market orders may fill at once (see the
    /// module docs); the rest start working on the next bar.
    pub fn place(&mut self, order: &Order, bar: &Bar, phase: Phase, out: &mut Vec<ExecutionReport>) {
        out.push(ExecutionReport::Accepted { order_id: order.id });
        if order.order_type == OrderType::Market {
            let price = match (phase, self.config.timing) {
                (Phase::Open, _) => Some(bar.open),
                (Phase::Close, FillTiming::Close) => Some(bar.close),
                (Phase::Close, FillTiming::NextOpen) => None,
            };
            if let Some(price) = price {
                let price = self.slipped(price, order.side);
                self.fill(order.id, order.remaining(), price, Liquidity::Taker, out);
                return;
            }
        }
        // Placed before the bar trades, an order works in this bar already.
        let eligible_from = if phase == Phase::Open { self.bar_index } else { self.bar_index + 1 };
        self.working.push(Working {
            order_id: order.id,
            side: order.side,
            order_type: order.order_type,
            time_in_force: order.time_in_force,
            remaining: order.remaining(),
            eligible_from,
            placed_day: bar.ts.day_number(),
        });
    }

    /// Accepts a market order and fills it whole at `price` (already slipped):
    /// for closing out at the end of a backtest, when no next bar exists.
    pub fn fill_market_at(&mut self, order: &Order, price: Price, out: &mut Vec<ExecutionReport>) {
        out.push(ExecutionReport::Accepted { order_id: order.id });
        self.fill(order.id, order.remaining(), price, Liquidity::Taker, out);
    }

    /// Cancels a working order.
    pub fn cancel(&mut self, order_id: OrderId, out: &mut Vec<ExecutionReport>) {
        if let Some(i) = self.working.iter().position(|w| w.order_id == order_id) {
            self.working.remove(i);
            out.push(ExecutionReport::Cancelled { order_id });
        } else {
            out.push(ExecutionReport::CancelRejected { order_id });
        }
    }

    /// Starts a new bar: tells the venue its index so orders placed in it are
    /// told apart from orders placed before it. Call before `on_bar`.
    pub fn begin_bar(&mut self) {
        self.bar_index += 1;
    }

    /// Works every eligible order against `bar`, in the order they were placed.
    pub fn on_bar(&mut self, bar: &Bar, out: &mut Vec<ExecutionReport>) {
        if self.working.is_empty() {
            return;
        }
        let day = bar.ts.day_number();
        let mut i = 0;
        while i < self.working.len() {
            let w = self.working[i].clone();
            if w.eligible_from > self.bar_index {
                i += 1;
                continue;
            }
            if w.time_in_force == TimeInForce::Day && day > w.placed_day {
                self.working.remove(i);
                out.push(ExecutionReport::Expired { order_id: w.order_id });
                continue;
            }
            match self.evaluate(&w, bar) {
                Evaluation::Fill(price, liquidity) => {
                    self.working.remove(i);
                    self.fill(w.order_id, w.remaining, price, liquidity, out);
                }
                Evaluation::BecomeLimit(price) => {
                    // Triggered beyond its limit: rests as a plain limit from the next bar.
                    let slot = &mut self.working[i];
                    slot.order_type = OrderType::Limit { price };
                    slot.eligible_from = self.bar_index + 1;
                    i += 1;
                }
                Evaluation::Wait => {
                    if matches!(w.time_in_force, TimeInForce::Ioc | TimeInForce::Fok) {
                        self.working.remove(i);
                        out.push(ExecutionReport::Cancelled { order_id: w.order_id });
                    } else {
                        i += 1;
                    }
                }
            }
        }
    }

    fn evaluate(&self, w: &Working, bar: &Bar) -> Evaluation {
        let buy = w.side == Side::Buy;
        match w.order_type {
            OrderType::Market => Evaluation::Fill(self.slipped(bar.open, w.side), Liquidity::Taker),
            OrderType::Limit { price } => {
                if buy && bar.low <= price {
                    Evaluation::Fill(bar.open.min(price), Liquidity::Maker)
                } else if !buy && bar.high >= price {
                    Evaluation::Fill(bar.open.max(price), Liquidity::Maker)
                } else {
                    Evaluation::Wait
                }
            }
            OrderType::Stop { trigger_price } => match triggered_at(buy, trigger_price, bar) {
                Some(at) => Evaluation::Fill(self.slipped(at, w.side), Liquidity::Taker),
                None => Evaluation::Wait,
            },
            OrderType::StopLimit { trigger_price, price } => match triggered_at(buy, trigger_price, bar) {
                Some(at) if (buy && at <= price) || (!buy && at >= price) => Evaluation::Fill(at, Liquidity::Taker),
                Some(_) => Evaluation::BecomeLimit(price),
                None => Evaluation::Wait,
            },
        }
    }

    fn fill(
        &mut self,
        order_id: OrderId,
        quantity: Quantity,
        price: Price,
        liquidity: Liquidity,
        out: &mut Vec<ExecutionReport>,
    ) {
        let fee: Money = notional(price, quantity, self.config.multiplier).mul_rate(self.config.commission);
        let trade_id = self.next_trade_id;
        self.next_trade_id += 1;
        out.push(ExecutionReport::Filled { order_id, trade_id, quantity, price, fee, liquidity });
    }
}

enum Evaluation {
    Fill(Price, Liquidity),
    BecomeLimit(Price),
    Wait,
}

/// Where a stop triggered in this bar, if it did: the stop price, or the open
/// when the bar opened beyond it.
fn triggered_at(buy: bool, trigger: Price, bar: &Bar) -> Option<Price> {
    if buy && bar.high >= trigger {
        Some(bar.open.max(trigger))
    } else if !buy && bar.low <= trigger {
        Some(bar.open.min(trigger))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::{ClientOrderId, InstrumentId, OrderStatus, Timestamp};

    fn bar(i: i64, o: &str, h: &str, l: &str, c: &str) -> Bar {
        Bar {
            ts: Timestamp::from_secs(1_700_000_000 + i * 60),
            open: Price::parse(o).unwrap(),
            high: Price::parse(h).unwrap(),
            low: Price::parse(l).unwrap(),
            close: Price::parse(c).unwrap(),
            volume: Quantity::from_int(1),
        }
    }

    fn order(id: u64, side: Side, order_type: OrderType, tif: TimeInForce) -> Order {
        Order {
            id: OrderId(id),
            client_order_id: ClientOrderId::parse(&format!("o{id}")).unwrap(),
            instrument: InstrumentId(1),
            side,
            order_type,
            time_in_force: tif,
            quantity: Quantity::from_int(2),
            filled_quantity: Quantity::ZERO,
            filled_notional: Money::ZERO,
            fees: Money::ZERO,
            reduce_only: false,
            post_only: false,
            status: OrderStatus::New,
            reject_reason: None,
            ts_created: Timestamp::default(),
            ts_updated: Timestamp::default(),
        }
    }

    fn venue(timing: FillTiming, slippage_bps: i64) -> BarVenue {
        BarVenue::new(BarFillConfig {
            timing,
            slippage: Rate::from_bps(slippage_bps),
            commission: Rate::parse("0.001").unwrap(),
            multiplier: Quantity::ONE,
        })
    }

    fn fills(out: &[ExecutionReport]) -> Vec<(u64, String)> {
        out.iter()
            .filter_map(|r| match r {
                ExecutionReport::Filled { order_id, price, .. } => Some((order_id.0, price.to_string())),
                _ => None,
            })
            .collect()
    }

    fn p(s: &str) -> Price {
        Price::parse(s).unwrap()
    }

    /// Places `o` at the close of bar 0, then runs bar 1; returns the fills.
    fn run(v: &mut BarVenue, o: &Order, next: &Bar) -> Vec<(u64, String)> {
        let mut out = Vec::new();
        let first = bar(0, "100", "101", "99", "100");
        v.begin_bar();
        v.on_bar(&first, &mut out);
        v.place(o, &first, Phase::Close, &mut out);
        v.begin_bar();
        v.on_bar(next, &mut out);
        fills(&out)
    }

    #[test]
    fn limit_and_stop_rules() {
        let gap_down = bar(1, "95", "96", "94", "95");
        let through = bar(1, "100", "100.5", "97", "99");
        let gap_up = bar(1, "105", "106", "104", "105");
        type Case = (&'static str, Order, Bar, Vec<(u64, String)>);
        let cases: Vec<Case> = vec![
            (
                "buy limit traded through",
                order(1, Side::Buy, OrderType::Limit { price: p("98") }, TimeInForce::Gtc),
                through,
                vec![(1, "98".into())],
            ),
            (
                "buy limit gapped through fills at open",
                order(1, Side::Buy, OrderType::Limit { price: p("98") }, TimeInForce::Gtc),
                gap_down,
                vec![(1, "95".into())],
            ),
            (
                "buy limit not reached",
                order(1, Side::Buy, OrderType::Limit { price: p("93") }, TimeInForce::Gtc),
                gap_down,
                vec![],
            ),
            (
                "sell limit gapped through",
                order(1, Side::Sell, OrderType::Limit { price: p("102") }, TimeInForce::Gtc),
                gap_up,
                vec![(1, "105".into())],
            ),
            (
                "sell stop triggered in range",
                order(1, Side::Sell, OrderType::Stop { trigger_price: p("98") }, TimeInForce::Gtc),
                through,
                vec![(1, "98".into())],
            ),
            (
                "sell stop gapped fills at open",
                order(1, Side::Sell, OrderType::Stop { trigger_price: p("98") }, TimeInForce::Gtc),
                gap_down,
                vec![(1, "95".into())],
            ),
            (
                "buy stop gapped",
                order(1, Side::Buy, OrderType::Stop { trigger_price: p("102") }, TimeInForce::Gtc),
                gap_up,
                vec![(1, "105".into())],
            ),
            (
                "buy stop not reached",
                order(1, Side::Buy, OrderType::Stop { trigger_price: p("102") }, TimeInForce::Gtc),
                through,
                vec![],
            ),
            (
                "stop-limit within limit",
                order(
                    1,
                    Side::Buy,
                    OrderType::StopLimit { trigger_price: p("100.2"), price: p("101") },
                    TimeInForce::Gtc,
                ),
                through,
                vec![(1, "100.2".into())],
            ),
            (
                "stop-limit gapped past limit rests",
                order(
                    1,
                    Side::Buy,
                    OrderType::StopLimit { trigger_price: p("102"), price: p("103") },
                    TimeInForce::Gtc,
                ),
                gap_up,
                vec![],
            ),
        ];
        for (name, o, next, expected) in cases {
            let mut v = venue(FillTiming::NextOpen, 0);
            assert_eq!(run(&mut v, &o, &next), expected, "{name}");
        }
    }

    #[test]
    fn market_timing_and_slippage() {
        let b0 = bar(0, "100", "101", "99", "100.5");
        let b1 = bar(1, "102", "103", "101", "102");
        let mut out = Vec::new();
        // Next-open: placed at bar 0's close, fills at bar 1's open.
        let mut v = venue(FillTiming::NextOpen, 10);
        v.begin_bar();
        v.place(&order(1, Side::Buy, OrderType::Market, TimeInForce::Gtc), &b0, Phase::Close, &mut out);
        assert!(fills(&out).is_empty());
        v.begin_bar();
        v.on_bar(&b1, &mut out);
        assert_eq!(fills(&out), vec![(1, "102.102".to_string())]);
        // Close: fills at the same bar's close.
        let mut out = Vec::new();
        let mut v = venue(FillTiming::Close, 0);
        v.begin_bar();
        v.place(&order(2, Side::Sell, OrderType::Market, TimeInForce::Gtc), &b0, Phase::Close, &mut out);
        assert_eq!(fills(&out), vec![(2, "100.5".to_string())]);
        match out.last() {
            Some(ExecutionReport::Filled { fee, .. }) => assert_eq!(fee.to_string(), "0.201"),
            other => panic!("expected a fill, got {other:?}"),
        }
    }

    #[test]
    fn ioc_gets_one_bar_and_day_orders_expire() {
        let mut v = venue(FillTiming::NextOpen, 0);
        let mut out = Vec::new();
        let b0 = bar(0, "100", "101", "99", "100");
        v.begin_bar();
        v.place(
            &order(1, Side::Buy, OrderType::Limit { price: p("90") }, TimeInForce::Ioc),
            &b0,
            Phase::Close,
            &mut out,
        );
        v.place(
            &order(2, Side::Buy, OrderType::Limit { price: p("90") }, TimeInForce::Day),
            &b0,
            Phase::Close,
            &mut out,
        );
        v.begin_bar();
        v.on_bar(&bar(1, "100", "101", "99", "100"), &mut out);
        assert!(out.contains(&ExecutionReport::Cancelled { order_id: OrderId(1) }));
        assert_eq!(v.working_count(), 1);
        v.begin_bar();
        v.on_bar(&bar(24 * 60, "100", "101", "99", "100"), &mut out);
        assert!(out.contains(&ExecutionReport::Expired { order_id: OrderId(2) }));
        assert_eq!(v.working_count(), 0);
        let mut out = Vec::new();
        v.cancel(OrderId(2), &mut out);
        assert_eq!(out, vec![ExecutionReport::CancelRejected { order_id: OrderId(2) }]);
    }

    #[test]
    fn orders_do_not_fill_in_the_bar_they_were_placed_at_the_close_of() {
        let mut v = venue(FillTiming::NextOpen, 0);
        let mut out = Vec::new();
        let b0 = bar(0, "100", "101", "90", "100");
        v.begin_bar();
        v.place(
            &order(1, Side::Buy, OrderType::Limit { price: p("95") }, TimeInForce::Gtc),
            &b0,
            Phase::Close,
            &mut out,
        );
        v.on_bar(&b0, &mut out);
        assert!(fills(&out).is_empty());
    }
}
