//! Turning a [`Size`] into a quantity at the moment an order executes.
//!
//! Sizing is exact: a float gives a first guess, and integer arithmetic then
//! steps it to the largest lot count whose cost including fees fits the budget.

use model::{Instrument, Money, Price, Quantity, Rate, RoundingMode, Side};

use crate::state::AccountState;
use crate::strategy::{Size, Sizing};

/// Cost of buying (or collateral for shorting) `quantity` at `price`, fees included.
fn cost(instrument: &Instrument, price: Price, quantity: Quantity, fee_rate: Rate) -> Money {
    let n = instrument.notional(price, quantity);
    n + n.mul_rate(fee_rate)
}

/// The largest multiple of the lot size whose cost at `price` plus fees fits in `budget`.
#[must_use]
pub fn max_affordable(instrument: &Instrument, price: Price, fee_rate: Rate, budget: Money) -> Quantity {
    let lot = instrument.lot_size;
    if !budget.is_positive() || !price.is_positive() || !lot.is_positive() {
        return Quantity::ZERO;
    }
    let per_lot = cost(instrument, price, lot, fee_rate);
    if !per_lot.is_positive() {
        return Quantity::ZERO;
    }
    // First guess in floating point, then walk to the exact answer: the guess
    // is within a lot or two, so the loops run a couple of times at most.
    #[allow(clippy::cast_possible_truncation)]
    let guess = (budget.to_f64() / per_lot.to_f64()).floor().clamp(0.0, 1e15) as i64;
    let mut lots = guess;
    let quantity = |lots: i64| Quantity::from_raw(lots.saturating_mul(lot.raw()));
    while lots > 0 && cost(instrument, price, quantity(lots), fee_rate) > budget {
        lots -= 1;
    }
    while cost(instrument, price, quantity(lots + 1), fee_rate) <= budget {
        lots += 1;
    }
    quantity(lots)
}

/// The quantity for an intent executing now at `price`. Zero means "place nothing".
#[must_use]
pub fn resolve(
    state: &AccountState,
    instrument: &Instrument,
    side: Side,
    size: Size,
    default: Sizing,
    price: Price,
    fee_rate: Rate,
) -> Quantity {
    let held = state.position(instrument.id);
    let free = state.free_cash(instrument.quote_currency);
    let leverage = Rate::from_raw(state.limits.max_leverage.raw());
    let buying_power = free.mul_rate(leverage);
    let quantity = match size {
        Size::Units(q) => q,
        Size::Notional(amount) => max_affordable(instrument, price, fee_rate, amount),
        Size::ClosePosition => match side {
            Side::Sell if held.is_positive() => held,
            Side::Buy if held.is_negative() => held.abs(),
            _ => Quantity::ZERO,
        },
        Size::Default => match default {
            Sizing::Units(q) => q,
            Sizing::AllIn => max_affordable(instrument, price, fee_rate, buying_power),
            Sizing::PercentOfEquity(fraction) => {
                let target = state.equity().mul_rate(fraction);
                max_affordable(instrument, price, fee_rate, target.min(buying_power))
            }
        },
    };
    quantity.round_to(instrument.lot_size, RoundingMode::Down).max(Quantity::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The answer is affordable and one more lot is not.
        #[test]
        fn max_affordable_is_tight(budget in 0i64..10_000_000, price_cents in 1i64..10_000_000, fee_bps in 0i64..100, lot_exp in 0u32..4) {
            let mut instrument = Instrument::simple(1, "X");
            instrument.lot_size = Quantity::from_raw(model::num::FIXED_SCALE / 10i64.pow(lot_exp));
            let price = Price::from_raw(price_cents * 10_000_000);
            let fee = Rate::from_bps(fee_bps);
            let budget = Money::from_int(budget);
            let q = max_affordable(&instrument, price, fee, budget);
            prop_assert!(cost(&instrument, price, q, fee) <= budget);
            prop_assert!(cost(&instrument, price, q + instrument.lot_size, fee) > budget);
            prop_assert!(q.is_multiple_of(instrument.lot_size) || q.is_zero());
        }
    }

    #[test]
    fn all_in_example() {
        let instrument = Instrument::simple(1, "X");
        // 10,000 at 100 with 0.2 % fees: 99 units cost 9,919.80; 100 would cost 10,020.
        let q =
            max_affordable(&instrument, Price::from_int(100), Rate::parse("0.002").unwrap(), Money::from_int(10_000));
        assert_eq!(q, Quantity::from_int(99));
    }
}
