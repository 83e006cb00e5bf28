//! Pre-trade risk checks.
//!
//! Checks run in a fixed order and the first failure decides the reason, so a
//! given order against a given state is always refused for the same reason.
//! Orders that only reduce a position pass the exposure checks (kill switch in
//! close-only mode, daily loss limit, cash, max position): getting out of risk
//! is never blocked by the limits meant to stop getting into it.

use model::{OrderType, Price, Quantity, RejectReason, Side};

use crate::engine::OrderRequest;
use crate::state::{AccountState, SwitchScope, TradingState};

/// `Ok` when the order may go to the venue, otherwise the first reason it may not.
pub fn check(state: &AccountState, req: &OrderRequest) -> Result<(), RejectReason> {
    let book = state.book(req.instrument).ok_or(RejectReason::UnknownInstrument)?;
    let instrument = &book.instrument;

    // Shape of the order itself.
    if !req.quantity.is_positive() {
        return Err(RejectReason::InvalidQuantity);
    }
    for price in [req.order_type.limit_price(), req.order_type.trigger_price()].into_iter().flatten() {
        if !price.is_positive() {
            return Err(RejectReason::InvalidPrice);
        }
        if !price.is_multiple_of(instrument.tick_size) {
            return Err(RejectReason::TickSize);
        }
    }
    if !req.quantity.is_multiple_of(instrument.lot_size) {
        return Err(RejectReason::LotSize);
    }
    if req.quantity < instrument.min_quantity {
        return Err(RejectReason::MinQuantity);
    }
    let price = reference_price(req, book.mark).ok_or(RejectReason::NoReferencePrice)?;
    let order_notional = instrument.notional(price, req.quantity);
    if order_notional < instrument.min_notional {
        return Err(RejectReason::MinNotional);
    }

    // Kill switches: halted refuses everything.
    let (trading, scope) = state.effective_trading_state();
    if trading == TradingState::Halted {
        return Err(match scope {
            SwitchScope::Global => RejectReason::KillSwitchGlobal,
            SwitchScope::Account => RejectReason::KillSwitchAccount,
        });
    }

    // Does it only reduce? Count other working orders on the same side, so
    // two reducing orders cannot together flip the position.
    let held = book.position.quantity;
    let pending_same_side = state.open_order_quantity(req.instrument, req.side);
    let reducible = match req.side {
        Side::Buy if held.is_negative() => held.abs() - pending_same_side,
        Side::Sell if held.is_positive() => held - pending_same_side,
        _ => Quantity::ZERO,
    };
    let reducing = req.quantity <= reducible;
    if req.reduce_only && !reducing {
        return Err(RejectReason::ReduceOnly);
    }
    if reducing {
        return Ok(());
    }
    if trading == TradingState::Reducing {
        return Err(RejectReason::CloseOnly);
    }
    if let Some(limit) = state.limits.daily_loss_limit
        && state.day_start_equity - state.equity() >= limit
    {
        return Err(RejectReason::DailyLossLimit);
    }
    if let Some(max) = state.limits.max_order_notional
        && order_notional > max
    {
        return Err(RejectReason::MaxOrderNotional);
    }

    // Where the position would end up if this and every working order on the
    // same side filled.
    let signed = |q: Quantity| if req.side == Side::Buy { q } else { -q };
    let projected = held + signed(pending_same_side) + signed(req.quantity);
    if projected.is_negative() && !state.limits.allow_short {
        return Err(RejectReason::ShortNotAllowed);
    }
    if let Some(max) = state.limits.max_position
        && projected.abs() > max
    {
        return Err(RejectReason::MaxPosition);
    }

    // Cash: only the part that opens or adds exposure needs backing.
    let opening = req.quantity - reducible.max(Quantity::ZERO);
    let opening_notional = instrument.notional(price, opening);
    let required = opening_notional + opening_notional.mul_rate(state.limits.fee_rate_estimate);
    if !state.balances.contains_key(&instrument.quote_currency) {
        return Err(RejectReason::CurrencyMismatch);
    }
    let free = state.free_cash(instrument.quote_currency);
    let buying_power = free.mul_rate(model::Rate::from_raw(state.limits.max_leverage.raw()));
    if required > buying_power {
        return Err(RejectReason::InsufficientCash);
    }
    Ok(())
}

/// The price the order's value is judged at: its limit, its trigger, or for
/// a market order the caller's reference price or the mark.
fn reference_price(req: &OrderRequest, mark: Option<Price>) -> Option<Price> {
    match req.order_type {
        OrderType::Market => req.reference_price.or(mark),
        OrderType::Limit { price } | OrderType::StopLimit { price, .. } => Some(price),
        OrderType::Stop { trigger_price } => Some(trigger_price),
    }
}
