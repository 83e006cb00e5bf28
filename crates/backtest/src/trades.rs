//! Round-trip trades reconstructed from fills.
//!
//! A trade runs from flat to flat: fills that add to a position extend it,
//! fills that reduce it accumulate its exit, and a fill that crosses zero is
//! split exactly (notional and fee pro-rated, the remainder to the new trade),
//! so the sum of trade P&L always equals the account's realized P&L net of fees.

use model::{Fill, Money, Price, Quantity, Side, Timestamp, notional};
use serde::Serialize;

/// One round trip.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Trade {
    /// `buy` for a long trade, `sell` for a short one.
    pub side: Side,
    /// Total quantity entered.
    pub quantity: Quantity,
    pub entry_time: Timestamp,
    /// `None` while the trade is open.
    pub exit_time: Option<Timestamp>,
    /// Average entry price.
    pub entry_price: Price,
    /// Average exit price; `None` while open.
    pub exit_price: Option<Price>,
    /// Net of all commissions. For an open trade: marked to the last close.
    pub pnl: Money,
    pub commission: Money,
}

#[derive(Debug, Clone)]
struct OpenTrade {
    side: Side,
    held: Quantity,
    entered: Quantity,
    entry_notional: Money,
    exited: Quantity,
    exit_notional: Money,
    fees: Money,
    entry_time: Timestamp,
}

/// Builds trades from a stream of fills on one instrument.
#[derive(Debug, Clone)]
pub struct TradeTracker {
    multiplier: Quantity,
    open: Option<OpenTrade>,
    closed: Vec<Trade>,
}

impl TradeTracker {
    #[must_use]
    pub fn new(multiplier: Quantity) -> Self {
        Self { multiplier, open: None, closed: Vec::new() }
    }

    pub fn on_fill(&mut self, fill: &Fill) {
        let total = notional(fill.price, fill.quantity, self.multiplier);
        let Some(open) = self.open.as_mut() else {
            self.open = Some(Self::start(fill.side, fill.quantity, total, fill.fee, fill.ts));
            return;
        };
        if open.side == fill.side {
            open.held = open.held + fill.quantity;
            open.entered = open.entered + fill.quantity;
            open.entry_notional += total;
            open.fees += fill.fee;
            return;
        }
        let closing = fill.quantity.min(open.held);
        let (closing_notional, closing_fee) = if closing == fill.quantity {
            (total, fill.fee)
        } else {
            let n = notional(fill.price, closing, self.multiplier).min(total);
            (n, fill.fee.mul_div(i128::from(closing.raw()), i128::from(fill.quantity.raw())))
        };
        open.held = open.held - closing;
        open.exited = open.exited + closing;
        open.exit_notional += closing_notional;
        open.fees += closing_fee;
        if open.held.is_zero() {
            let finished = self.open.take();
            if let Some(t) = finished {
                self.closed.push(self.finish(&t, fill.ts));
            }
            let rest = fill.quantity - closing;
            if rest.is_positive() {
                self.open =
                    Some(Self::start(fill.side, rest, total - closing_notional, fill.fee - closing_fee, fill.ts));
            }
        }
    }

    fn start(side: Side, quantity: Quantity, entry_notional: Money, fee: Money, ts: Timestamp) -> OpenTrade {
        OpenTrade {
            side,
            held: quantity,
            entered: quantity,
            entry_notional,
            exited: Quantity::ZERO,
            exit_notional: Money::ZERO,
            fees: fee,
            entry_time: ts,
        }
    }

    fn finish(&self, t: &OpenTrade, ts: Timestamp) -> Trade {
        let gross = match t.side {
            Side::Buy => t.exit_notional - t.entry_notional,
            Side::Sell => t.entry_notional - t.exit_notional,
        };
        Trade {
            side: t.side,
            quantity: t.entered,
            entry_time: t.entry_time,
            exit_time: Some(ts),
            entry_price: Price::from_ratio(t.entry_notional, t.entered, self.multiplier).unwrap_or_default(),
            exit_price: Price::from_ratio(t.exit_notional, t.exited, self.multiplier),
            pnl: gross - t.fees,
            commission: t.fees,
        }
    }

    /// Closed trades so far, plus the open one marked at `mark`.
    #[must_use]
    pub fn finish_all(mut self, mark: Price) -> Vec<Trade> {
        if let Some(t) = self.open.take() {
            let held_value = notional(mark, t.held, self.multiplier);
            let entry_price = Price::from_ratio(t.entry_notional, t.entered, self.multiplier).unwrap_or_default();
            // Value of what is still held plus what was already sold, against the cost.
            let gross = match t.side {
                Side::Buy => t.exit_notional + held_value - t.entry_notional,
                Side::Sell => t.entry_notional - t.exit_notional - held_value,
            };
            self.closed.push(Trade {
                side: t.side,
                quantity: t.entered,
                entry_time: t.entry_time,
                exit_time: None,
                entry_price,
                exit_price: None,
                pnl: gross - t.fees,
                commission: t.fees,
            });
        }
        self.closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::{InstrumentId, Liquidity, OrderId};

    fn fill(side: Side, qty: i64, price: &str, fee: &str, secs: i64) -> Fill {
        Fill {
            order_id: OrderId(1),
            trade_id: 1,
            instrument: InstrumentId(1),
            side,
            quantity: Quantity::from_int(qty),
            price: Price::parse(price).unwrap(),
            fee: Money::parse(fee).unwrap(),
            liquidity: Liquidity::Taker,
            ts: Timestamp::from_secs(secs),
        }
    }

    #[test]
    fn long_then_reversal_into_short() {
        let mut t = TradeTracker::new(Quantity::ONE);
        t.on_fill(&fill(Side::Buy, 10, "100", "1", 1));
        t.on_fill(&fill(Side::Sell, 4, "110", "0.4", 2));
        // Sells 6 to close and 4 to open a short; the fee splits 6:4.
        t.on_fill(&fill(Side::Sell, 10, "120", "1", 3));
        let trades = t.finish_all(Price::from_int(115));
        assert_eq!(trades.len(), 2);
        let long = &trades[0];
        assert_eq!(long.quantity, Quantity::from_int(10));
        assert_eq!(long.exit_price.unwrap().to_string(), "116");
        // 4*10 + 6*20 = 160 gross, fees 1 + 0.4 + 0.6.
        assert_eq!(long.pnl.to_string(), "158");
        assert_eq!(long.commission.to_string(), "2");
        let short = &trades[1];
        assert_eq!(short.side, Side::Sell);
        assert_eq!(short.exit_time, None);
        assert_eq!(short.quantity, Quantity::from_int(4));
        // Short 4 at 120 marked at 115: +20, less its 0.4 fee.
        assert_eq!(short.pnl.to_string(), "19.6");
    }
}
