//! Fill model for simulation on quotes (top of book).
//!
//! With only the best bid and ask known, orders trade against the touch:
//! - A marketable order (a market order, or a limit at or through the
//!   opposite quote) takes liquidity at the ask (buys) or bid (sells), slipped
//!   by the configured rate for market orders, as a taker.
//! - A resting limit fills at its own price, as a maker, once a later quote
//!   reaches it (the ask at or below a buy limit, the bid at or above a sell).
//! - A stop triggers when the quote on its side reaches the stop (the ask for
//!   buys, the bid for sells) and then trades as a market order; a stop-limit
//!   then trades as a limit.
//! - With `respect_size`, each quote fills at most its displayed size; the
//!   rest works on later quotes. IOC orders get the quote they arrive on (or the
//!   first one after), FOK orders fill whole on it or are cancelled.
//! - DAY orders expire at the first quote of a later UTC day.

use model::{
    ExecutionReport, Liquidity, Order, OrderId, OrderType, Price, Quantity, Quote, Rate, Side, TimeInForce, notional,
};

/// Costs of the quote venue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuoteFillConfig {
    pub maker_fee: Rate,
    pub taker_fee: Rate,
    /// Adverse move for market orders (0.0005 = 5 bp).
    pub slippage: Rate,
    pub multiplier: Quantity,
    /// Fill at most the displayed size per quote.
    pub respect_size: bool,
}

#[derive(Debug, Clone)]
struct Working {
    order_id: OrderId,
    side: Side,
    order_type: OrderType,
    time_in_force: TimeInForce,
    remaining: Quantity,
    placed_day: Option<i64>,
    /// Whether it has seen a quote since it was placed (IOC and FOK get one).
    quoted: bool,
    /// A stop that triggered now trades as a market or limit order.
    triggered: bool,
}

/// A simulated venue filling against a stream of quotes.
#[derive(Debug, Clone)]
pub struct QuoteVenue {
    config: QuoteFillConfig,
    quote: Option<Quote>,
    working: Vec<Working>,
    next_trade_id: u64,
}

impl QuoteVenue {
    #[must_use]
    pub fn new(config: QuoteFillConfig) -> Self {
        Self { config, quote: None, working: Vec::new(), next_trade_id: 1 }
    }

    /// The latest quote.
    #[must_use]
    pub fn quote(&self) -> Option<&Quote> {
        self.quote.as_ref()
    }

    #[must_use]
    pub fn working_count(&self) -> usize {
        self.working.len()
    }

    /// The orders working here, with what is left of each.
    pub fn working(&self) -> impl Iterator<Item = (OrderId, Quantity)> + '_ {
        self.working.iter().map(|w| (w.order_id, w.remaining))
    }

    /// Puts back an order that was working before a restart: no report is
    /// emitted (the engine already knows it is accepted), and it keeps
    /// working from the next quote as a resting order.
    pub fn restore(&mut self, order: &Order) {
        self.working.push(Working {
            order_id: order.id,
            side: order.side,
            order_type: order.order_type,
            time_in_force: order.time_in_force,
            remaining: order.remaining(),
            placed_day: Some(order.ts_created.day_number()),
            quoted: true,
            triggered: false,
        });
    }

    /// Continues trade ids after `last` (from fills seen before a restart),
    /// so a restored order's new fills never repeat an old id.
    pub fn resume_trade_ids_after(&mut self, last: u64) {
        self.next_trade_id = self.next_trade_id.max(last.saturating_add(1));
    }

    /// Accepts an order and trades what it can against the current quote.
    pub fn place(&mut self, order: &Order, out: &mut Vec<ExecutionReport>) {
        // A post-only order that would trade on arrival is refused, as a
        // venue refuses it; resting, it fills later as a maker.
        if let (true, OrderType::Limit { price }, Some(quote)) = (order.post_only, order.order_type, self.quote) {
            let takes = match order.side {
                Side::Buy => price >= quote.ask,
                Side::Sell => price <= quote.bid,
            };
            if takes {
                out.push(ExecutionReport::Rejected {
                    order_id: order.id,
                    reason: model::RejectReason::WouldTakeLiquidity,
                });
                return;
            }
        }
        out.push(ExecutionReport::Accepted { order_id: order.id });
        let mut w = Working {
            order_id: order.id,
            side: order.side,
            order_type: order.order_type,
            time_in_force: order.time_in_force,
            remaining: order.remaining(),
            placed_day: self.quote.map(|q| q.ts.day_number()),
            quoted: false,
            triggered: false,
        };
        if let Some(quote) = self.quote {
            if self.work(&mut w, &quote, true, out) {
                self.working.push(w);
            }
        } else {
            self.working.push(w);
        }
    }

    /// Accepts a market order and fills it whole at `price` (already slipped),
    /// whatever the displayed size: for closing out at the end of a backtest.
    pub fn fill_market_at(&mut self, order: &Order, price: Price, out: &mut Vec<ExecutionReport>) {
        out.push(ExecutionReport::Accepted { order_id: order.id });
        let fee = notional(price, order.remaining(), self.config.multiplier).mul_rate(self.config.taker_fee);
        out.push(ExecutionReport::Filled {
            order_id: order.id,
            trade_id: self.next_trade_id,
            quantity: order.remaining(),
            price,
            fee,
            liquidity: Liquidity::Taker,
        });
        self.next_trade_id += 1;
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

    /// A new top of book: works every order in the order they were placed.
    pub fn on_quote(&mut self, quote: &Quote, out: &mut Vec<ExecutionReport>) {
        self.quote = Some(*quote);
        let day = quote.ts.day_number();
        let mut working = std::mem::take(&mut self.working);
        let mut available = (quote.bid_size, quote.ask_size);
        working.retain_mut(|w| {
            if w.time_in_force == TimeInForce::Day && w.placed_day.is_some_and(|d| day > d) {
                out.push(ExecutionReport::Expired { order_id: w.order_id });
                return false;
            }
            w.placed_day.get_or_insert(day);
            self.work_with(w, quote, false, &mut available, out)
        });
        // Orders placed from callbacks during this quote were appended meanwhile.
        working.append(&mut self.working);
        self.working = working;
    }

    /// Works one order against a quote; returns whether it keeps working.
    fn work(&mut self, w: &mut Working, quote: &Quote, arriving: bool, out: &mut Vec<ExecutionReport>) -> bool {
        let mut available = (quote.bid_size, quote.ask_size);
        self.work_with(w, quote, arriving, &mut available, out)
    }

    fn work_with(
        &mut self,
        w: &mut Working,
        quote: &Quote,
        arriving: bool,
        available: &mut (Quantity, Quantity),
        out: &mut Vec<ExecutionReport>,
    ) -> bool {
        let buy = w.side == Side::Buy;
        let touch = if buy { quote.ask } else { quote.bid };
        // An order takes liquidity on the first quote it meets (or the one
        // that triggers it); after that it rests and is filled at its price.
        let mut taking = arriving || !w.quoted;
        // Stops wait for the quote on their side to reach them.
        if let Some(trigger) = w.order_type.trigger_price()
            && !w.triggered
        {
            let reached = if buy { touch >= trigger } else { touch <= trigger };
            if !reached {
                w.quoted = true;
                return true;
            }
            w.triggered = true;
            taking = true;
        }
        let limit = w.order_type.limit_price();
        let (price, liquidity) = match limit {
            None => (self.slipped(touch, w.side), Liquidity::Taker),
            // Marketable now: takes the touch, which is at or better than the limit.
            Some(limit) if (buy && touch <= limit) || (!buy && touch >= limit) => {
                if taking {
                    (touch, Liquidity::Taker)
                } else {
                    // Resting at its price when the market came to it.
                    (limit, Liquidity::Maker)
                }
            }
            Some(_) => {
                return self.unfilled(w, out);
            }
        };
        let size = if buy { &mut available.1 } else { &mut available.0 };
        let fill = if self.config.respect_size { w.remaining.min(*size) } else { w.remaining };
        if w.time_in_force == TimeInForce::Fok && fill < w.remaining {
            out.push(ExecutionReport::Cancelled { order_id: w.order_id });
            return false;
        }
        if fill.is_positive() {
            let fee_rate = if liquidity == Liquidity::Maker { self.config.maker_fee } else { self.config.taker_fee };
            let fee = notional(price, fill, self.config.multiplier).mul_rate(fee_rate);
            out.push(ExecutionReport::Filled {
                order_id: w.order_id,
                trade_id: self.next_trade_id,
                quantity: fill,
                price,
                fee,
                liquidity,
            });
            self.next_trade_id += 1;
            w.remaining = w.remaining - fill;
            if self.config.respect_size {
                *size = *size - fill;
            }
        }
        if w.remaining.is_zero() {
            return false;
        }
        self.unfilled(w, out)
    }

    /// What happens to the rest of an order after a quote: IOC and FOK end.
    fn unfilled(&mut self, w: &mut Working, out: &mut Vec<ExecutionReport>) -> bool {
        w.quoted = true;
        if matches!(w.time_in_force, TimeInForce::Ioc | TimeInForce::Fok) {
            out.push(ExecutionReport::Cancelled { order_id: w.order_id });
            return false;
        }
        true
    }

    /// The price a market order would get at `price`, after slippage.
    #[must_use]
    pub fn slipped(&self, price: Price, side: Side) -> Price {
        if self.config.slippage.is_zero() { price } else { price.adjusted_by(self.config.slippage, side == Side::Buy) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::{ClientOrderId, InstrumentId, Money, OrderStatus, Timestamp};

    fn p(s: &str) -> Price {
        Price::parse(s).unwrap()
    }

    fn quote(secs: i64, bid: &str, ask: &str, size: i64) -> Quote {
        Quote {
            instrument: InstrumentId(1),
            ts: Timestamp::from_secs(1_700_000_000 + secs),
            bid: p(bid),
            bid_size: Quantity::from_int(size),
            ask: p(ask),
            ask_size: Quantity::from_int(size),
        }
    }

    fn order(id: u64, side: Side, qty: i64, order_type: OrderType, tif: TimeInForce) -> Order {
        Order {
            id: OrderId(id),
            client_order_id: ClientOrderId::parse(&format!("q{id}")).unwrap(),
            instrument: InstrumentId(1),
            side,
            order_type,
            time_in_force: tif,
            quantity: Quantity::from_int(qty),
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

    fn venue(respect_size: bool) -> QuoteVenue {
        QuoteVenue::new(QuoteFillConfig {
            maker_fee: Rate::parse("0.001").unwrap(),
            taker_fee: Rate::parse("0.002").unwrap(),
            slippage: Rate::ZERO,
            multiplier: Quantity::ONE,
            respect_size,
        })
    }

    /// (order, quantity, price, liquidity) of each fill.
    fn fills(out: &[ExecutionReport]) -> Vec<(u64, String, String, Liquidity)> {
        out.iter()
            .filter_map(|r| match r {
                ExecutionReport::Filled { order_id, quantity, price, liquidity, .. } => {
                    Some((order_id.0, quantity.to_string(), price.to_string(), *liquidity))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn marketable_orders_take_the_touch() {
        let mut v = venue(false);
        let mut out = Vec::new();
        v.on_quote(&quote(0, "99", "101", 10), &mut out);
        v.place(&order(1, Side::Buy, 3, OrderType::Market, TimeInForce::Gtc), &mut out);
        v.place(&order(2, Side::Sell, 2, OrderType::Limit { price: p("98") }, TimeInForce::Gtc), &mut out);
        assert_eq!(
            fills(&out),
            vec![(1, "3".into(), "101".into(), Liquidity::Taker), (2, "2".into(), "99".into(), Liquidity::Taker)]
        );
        // Taker fee: 303 * 0.002.
        assert!(out.iter().any(|r| matches!(r, ExecutionReport::Filled { fee, .. } if fee.to_string() == "0.606")));
    }

    #[test]
    fn a_post_only_order_that_would_take_is_refused_and_one_that_rests_makes() {
        let mut v = venue(false);
        let mut out = Vec::new();
        v.on_quote(&quote(0, "99", "101", 10), &mut out);
        let post_only = |id, side, price: &str| Order {
            post_only: true,
            ..order(id, side, 1, OrderType::Limit { price: p(price) }, TimeInForce::Gtc)
        };
        v.place(&post_only(1, Side::Buy, "101"), &mut out);
        v.place(&post_only(2, Side::Sell, "99"), &mut out);
        assert_eq!(
            out,
            vec![
                ExecutionReport::Rejected { order_id: OrderId(1), reason: model::RejectReason::WouldTakeLiquidity },
                ExecutionReport::Rejected { order_id: OrderId(2), reason: model::RejectReason::WouldTakeLiquidity },
            ]
        );
        out.clear();
        v.place(&post_only(3, Side::Buy, "100"), &mut out);
        assert_eq!(out, vec![ExecutionReport::Accepted { order_id: OrderId(3) }]);
        v.on_quote(&quote(1, "98", "99.5", 10), &mut out);
        assert_eq!(fills(&out), vec![(3, "1".into(), "100".into(), Liquidity::Maker)]);
    }

    #[test]
    fn resting_limits_fill_at_their_price_as_makers() {
        let mut v = venue(false);
        let mut out = Vec::new();
        v.on_quote(&quote(0, "99", "101", 10), &mut out);
        v.place(&order(1, Side::Buy, 5, OrderType::Limit { price: p("100") }, TimeInForce::Gtc), &mut out);
        assert!(fills(&out).is_empty());
        v.on_quote(&quote(1, "98", "99.5", 10), &mut out);
        assert_eq!(fills(&out), vec![(1, "5".into(), "100".into(), Liquidity::Maker)]);
        assert_eq!(v.working_count(), 0);
    }

    #[test]
    fn displayed_size_limits_each_fill() {
        let mut v = venue(true);
        let mut out = Vec::new();
        v.on_quote(&quote(0, "99", "101", 4), &mut out);
        v.place(&order(1, Side::Buy, 10, OrderType::Market, TimeInForce::Gtc), &mut out);
        v.on_quote(&quote(1, "99", "102", 4), &mut out);
        v.on_quote(&quote(2, "99", "103", 4), &mut out);
        assert_eq!(
            fills(&out),
            vec![
                (1, "4".into(), "101".into(), Liquidity::Taker),
                (1, "4".into(), "102".into(), Liquidity::Taker),
                (1, "2".into(), "103".into(), Liquidity::Taker)
            ]
        );
        // Two orders share one quote's size.
        let mut v = venue(true);
        let mut out = Vec::new();
        v.on_quote(&quote(0, "99", "101", 10), &mut out);
        v.place(&order(1, Side::Buy, 6, OrderType::Limit { price: p("100") }, TimeInForce::Gtc), &mut out);
        v.place(&order(2, Side::Buy, 6, OrderType::Limit { price: p("100") }, TimeInForce::Gtc), &mut out);
        v.on_quote(&quote(1, "98", "100", 8), &mut out);
        assert_eq!(
            fills(&out),
            vec![(1, "6".into(), "100".into(), Liquidity::Maker), (2, "2".into(), "100".into(), Liquidity::Maker)]
        );
    }

    #[test]
    fn ioc_fok_stops_and_day_orders() {
        let mut v = venue(true);
        let mut out = Vec::new();
        v.on_quote(&quote(0, "99", "101", 3), &mut out);
        v.place(&order(1, Side::Buy, 5, OrderType::Limit { price: p("101") }, TimeInForce::Ioc), &mut out);
        v.place(&order(2, Side::Buy, 5, OrderType::Limit { price: p("101") }, TimeInForce::Fok), &mut out);
        assert_eq!(fills(&out), vec![(1, "3".into(), "101".into(), Liquidity::Taker)]);
        assert!(out.contains(&ExecutionReport::Cancelled { order_id: OrderId(1) }));
        assert!(out.contains(&ExecutionReport::Cancelled { order_id: OrderId(2) }));

        let mut out = Vec::new();
        v.place(&order(3, Side::Sell, 1, OrderType::Stop { trigger_price: p("98") }, TimeInForce::Gtc), &mut out);
        v.place(&order(4, Side::Buy, 1, OrderType::Limit { price: p("90") }, TimeInForce::Day), &mut out);
        v.on_quote(&quote(10, "98.5", "99", 3), &mut out);
        assert!(fills(&out).is_empty(), "the stop has not triggered");
        v.on_quote(&quote(20, "97.5", "98", 3), &mut out);
        assert_eq!(fills(&out), vec![(3, "1".into(), "97.5".into(), Liquidity::Taker)]);
        v.on_quote(&quote(86_400, "97", "98", 3), &mut out);
        assert!(out.contains(&ExecutionReport::Expired { order_id: OrderId(4) }));
        let mut out = Vec::new();
        v.cancel(OrderId(4), &mut out);
        assert_eq!(out, vec![ExecutionReport::CancelRejected { order_id: OrderId(4) }]);
    }

    #[test]
    fn orders_before_the_first_quote_wait_for_it() {
        let mut v = venue(false);
        let mut out = Vec::new();
        v.place(&order(1, Side::Buy, 1, OrderType::Market, TimeInForce::Gtc), &mut out);
        assert_eq!(out, vec![ExecutionReport::Accepted { order_id: OrderId(1) }]);
        v.on_quote(&quote(0, "99", "101", 10), &mut out);
        assert_eq!(fills(&out), vec![(1, "1".into(), "101".into(), Liquidity::Taker)]);
    }
}
