//! The account engine: `(state, input, now) -> (state, events, venue requests)`.
//!
//! [`Engine::process`] validates an input against the state, decides the
//! events, applies them through [`AccountState::apply`] and reports them with
//! the requests for the venue. It never reads a clock or does I/O, so the same
//! inputs always give the same outputs; a backtest and a live account differ
//! only in who feeds it.

use model::{
    ClientOrderId, Currency, ExecutionReport, Fill, Instrument, InstrumentId, Money, Order, OrderEventKind, OrderId,
    OrderStatus, OrderType, Price, Quantity, RejectReason, Side, TimeInForce, Timestamp,
};
use serde::{Deserialize, Serialize};

use crate::risk;
use crate::state::{AccountState, Event, EventKind, RiskLimits, SwitchScope, TradingState};

/// What a caller asks for when placing an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRequest {
    pub client_order_id: ClientOrderId,
    pub instrument: InstrumentId,
    pub side: Side,
    #[serde(flatten)]
    pub order_type: OrderType,
    #[serde(default)]
    pub time_in_force: TimeInForce,
    pub quantity: Quantity,
    #[serde(default)]
    pub reduce_only: bool,
    /// Only a limit order may be post-only: it must rest, never take.
    #[serde(default)]
    pub post_only: bool,
    /// The price a market order is expected to fill near, for the cash and
    /// notional checks; the instrument's mark is used when absent.
    #[serde(default)]
    pub reference_price: Option<Price>,
}

/// A request from a user, a bot or an operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    AddInstrument {
        instrument: Instrument,
    },
    /// Deposit (positive) or withdraw (negative) cash.
    AdjustCash {
        currency: Currency,
        amount: Money,
    },
    SubmitOrder {
        request: OrderRequest,
    },
    CancelOrder {
        order_id: OrderId,
    },
    CancelAll {
        instrument: Option<InstrumentId>,
    },
    SetTradingState {
        scope: SwitchScope,
        state: TradingState,
    },
    SetRiskLimits {
        limits: RiskLimits,
    },
}

/// Everything the engine reacts to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Input {
    Command(Command),
    Execution(ExecutionReport),
    /// A new mark (last trade, bar close or quote mid) for an instrument.
    Mark {
        instrument: InstrumentId,
        price: Price,
    },
}

/// What the engine asks the venue to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum VenueRequest {
    Place(Order),
    Cancel { order_id: OrderId, instrument: InstrumentId },
}

/// The result of processing inputs. Callers keep one and clear it between
/// inputs, so the hot path does not allocate.
#[derive(Debug, Default, Clone)]
pub struct Output {
    pub events: Vec<Event>,
    pub venue_requests: Vec<VenueRequest>,
}

impl Output {
    pub fn clear(&mut self) {
        self.events.clear();
        self.venue_requests.clear();
    }
}

/// An input the engine refuses outright: nothing is emitted and nothing changes.
/// Risk rejections are not errors: they are `OrderDenied` events, journaled
/// like everything else.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error("unknown order {0}")]
    UnknownOrder(OrderId),
    #[error("unknown instrument {0}")]
    UnknownInstrument(InstrumentId),
    #[error("instrument {0} is already on this account")]
    DuplicateInstrument(InstrumentId),
    #[error("invalid instrument: {0}")]
    InvalidInstrument(#[from] model::InstrumentError),
    #[error("client order id '{0}' was already used for a different order")]
    ClientOrderIdConflict(ClientOrderId),
    #[error("order {order_id} is {status}, not open")]
    OrderNotOpen { order_id: OrderId, status: OrderStatus },
    #[error("order {order_id}: {source}")]
    InvalidTransition { order_id: OrderId, source: model::InvalidTransition },
    #[error("fill of {quantity} on order {order_id} exceeds its remaining {remaining}")]
    Overfill { order_id: OrderId, quantity: Quantity, remaining: Quantity },
    #[error("fill quantity must be positive, got {0}")]
    InvalidFillQuantity(Quantity),
    #[error("trade {trade_id} on order {order_id} was already applied")]
    DuplicateFill { order_id: OrderId, trade_id: u64 },
    #[error("order {order_id}: no fill {trade_id} to charge an asset fee on, or it was charged already")]
    AssetFeeWithoutFill { order_id: OrderId, trade_id: u64 },
    #[error("time went backwards: {now} is before the last input at {last}")]
    TimeWentBackwards { now: Timestamp, last: Timestamp },
    #[error("invalid risk limits: {0}")]
    InvalidLimits(String),
}

/// The outcome of an order submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submission {
    /// Passed the checks and was sent to the venue.
    Sent(OrderId),
    /// Refused by a check; an `OrderDenied` event records it.
    Denied(OrderId, RejectReason),
    /// The client order id was seen before with the same request: nothing new happened.
    Duplicate(OrderId),
}

/// One trading account's engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Engine {
    state: AccountState,
    /// The latest input time; inputs may not go back before it.
    clock: Timestamp,
}

impl Engine {
    #[must_use]
    pub fn new(base_currency: Currency) -> Self {
        Self { state: AccountState::new(base_currency), clock: Timestamp::default() }
    }

    /// Rebuilds an engine by folding a journal of events.
    pub fn replay<'a>(base_currency: Currency, events: impl IntoIterator<Item = &'a Event>) -> Self {
        let mut state = AccountState::new(base_currency);
        for event in events {
            state.apply(event);
        }
        let clock = state.last_ts;
        Self { state, clock }
    }

    /// Resumes from a snapshot of the state; apply the events journaled
    /// after it with [`Engine::apply_journaled`].
    #[must_use]
    pub fn from_state(state: AccountState) -> Self {
        let clock = state.last_ts;
        Self { state, clock }
    }

    /// Applies an event read back from the journal (recovery).
    pub fn apply_journaled(&mut self, event: &Event) {
        self.state.apply(event);
        self.clock = self.clock.max(event.ts);
    }

    #[must_use]
    pub fn state(&self) -> &AccountState {
        &self.state
    }

    /// The time of the latest input.
    #[must_use]
    pub fn clock(&self) -> Timestamp {
        self.clock
    }

    /// Processes one input at engine time `now`, appending to `out`.
    pub fn process(&mut self, input: &Input, now: Timestamp, out: &mut Output) -> Result<(), EngineError> {
        self.advance_clock(now, out)?;
        match input {
            Input::Mark { instrument, price } => {
                if self.state.set_mark(*instrument, *price) {
                    Ok(())
                } else {
                    Err(EngineError::UnknownInstrument(*instrument))
                }
            }
            Input::Command(command) => self.command(command, now, out).map(|_| ()),
            Input::Execution(report) => self.execution(report, now, out),
        }
    }

    /// Submits an order and says what became of it.
    pub fn submit(
        &mut self,
        request: &OrderRequest,
        now: Timestamp,
        out: &mut Output,
    ) -> Result<Submission, EngineError> {
        self.advance_clock(now, out)?;
        self.submit_order(request, now, out)
    }

    /// Refuses time going backwards and starts a new trading day when the
    /// UTC date changes, recording the equity the daily loss limit is measured from.
    fn advance_clock(&mut self, now: Timestamp, out: &mut Output) -> Result<(), EngineError> {
        if now < self.clock {
            return Err(EngineError::TimeWentBackwards { now, last: self.clock });
        }
        self.clock = now;
        let day = now.day_number();
        if self.state.day != Some(day) {
            let equity = self.state.equity();
            let by_currency = Some(self.state.equity_by_currency());
            self.emit(out, now, EventKind::DayStarted { day, equity, by_currency });
        }
        Ok(())
    }

    fn emit(&mut self, out: &mut Output, ts: Timestamp, kind: EventKind) {
        let event = Event { ts, kind };
        self.state.apply(&event);
        out.events.push(event);
    }

    fn command(
        &mut self,
        command: &Command,
        now: Timestamp,
        out: &mut Output,
    ) -> Result<Option<Submission>, EngineError> {
        match command {
            Command::AddInstrument { instrument } => {
                instrument.validate()?;
                if self.state.book(instrument.id).is_some() {
                    return Err(EngineError::DuplicateInstrument(instrument.id));
                }
                self.emit(out, now, EventKind::InstrumentAdded { instrument: Box::new(instrument.clone()) });
            }
            Command::AdjustCash { currency, amount } => {
                self.emit(out, now, EventKind::CashAdjusted { currency: *currency, amount: *amount });
            }
            Command::SubmitOrder { request } => return self.submit_order(request, now, out).map(Some),
            Command::CancelOrder { order_id } => self.cancel(*order_id, now, out)?,
            Command::CancelAll { instrument } => {
                let ids: Vec<OrderId> = self
                    .state
                    .open_orders
                    .iter()
                    .filter(|id| {
                        self.state.orders.get(id).is_some_and(|o| {
                            o.status != OrderStatus::PendingCancel && instrument.is_none_or(|i| o.instrument == i)
                        })
                    })
                    .copied()
                    .collect();
                for id in ids {
                    self.cancel(id, now, out)?;
                }
            }
            Command::SetTradingState { scope, state } => {
                self.emit(out, now, EventKind::TradingStateChanged { scope: *scope, state: *state });
            }
            Command::SetRiskLimits { limits } => {
                if !limits.max_leverage.is_positive() {
                    return Err(EngineError::InvalidLimits("max_leverage must be positive".into()));
                }
                if limits.fee_rate_estimate.is_negative() {
                    return Err(EngineError::InvalidLimits("fee_rate_estimate must not be negative".into()));
                }
                self.emit(out, now, EventKind::RiskLimitsChanged { limits: limits.clone() });
            }
        }
        Ok(None)
    }

    fn cancel(&mut self, order_id: OrderId, now: Timestamp, out: &mut Output) -> Result<(), EngineError> {
        let order = self.state.orders.get(&order_id).ok_or(EngineError::UnknownOrder(order_id))?;
        if order.status == OrderStatus::PendingCancel {
            // Asking again changes nothing; the first request is in flight.
            return Ok(());
        }
        order
            .status
            .transition(OrderEventKind::CancelRequest, false)
            .map_err(|_| EngineError::OrderNotOpen { order_id, status: order.status })?;
        let instrument = order.instrument;
        self.emit(out, now, EventKind::OrderCancelRequested { order_id });
        out.venue_requests.push(VenueRequest::Cancel { order_id, instrument });
        Ok(())
    }

    fn submit_order(
        &mut self,
        request: &OrderRequest,
        now: Timestamp,
        out: &mut Output,
    ) -> Result<Submission, EngineError> {
        if let Some(&existing) = self.state.client_order_ids.get(&request.client_order_id) {
            let same = self.state.orders.get(&existing).is_some_and(|o| {
                o.instrument == request.instrument
                    && o.side == request.side
                    && o.order_type == request.order_type
                    && o.quantity == request.quantity
                    && o.time_in_force == request.time_in_force
                    && o.reduce_only == request.reduce_only
            });
            return if same {
                Ok(Submission::Duplicate(existing))
            } else {
                Err(EngineError::ClientOrderIdConflict(request.client_order_id.clone()))
            };
        }
        let id = OrderId(self.state.next_order_id);
        let mut order = Order {
            id,
            client_order_id: request.client_order_id.clone(),
            instrument: request.instrument,
            side: request.side,
            order_type: request.order_type,
            time_in_force: request.time_in_force,
            quantity: request.quantity,
            filled_quantity: Quantity::ZERO,
            filled_notional: Money::ZERO,
            fees: Money::ZERO,
            reduce_only: request.reduce_only,
            post_only: request.post_only,
            status: OrderStatus::New,
            reject_reason: None,
            ts_created: now,
            ts_updated: now,
        };
        if let Err(reason) = risk::check(&self.state, request) {
            order.status = OrderStatus::Rejected;
            order.reject_reason = Some(reason);
            self.emit(out, now, EventKind::OrderDenied { order: Box::new(order) });
            return Ok(Submission::Denied(id, reason));
        }
        self.emit(out, now, EventKind::OrderSubmitted { order: Box::new(order.clone()) });
        out.venue_requests.push(VenueRequest::Place(order));
        Ok(Submission::Sent(id))
    }

    fn execution(&mut self, report: &ExecutionReport, now: Timestamp, out: &mut Output) -> Result<(), EngineError> {
        let order_id = match report {
            ExecutionReport::Accepted { order_id }
            | ExecutionReport::Rejected { order_id, .. }
            | ExecutionReport::Filled { order_id, .. }
            | ExecutionReport::Cancelled { order_id }
            | ExecutionReport::CancelRejected { order_id }
            | ExecutionReport::Expired { order_id }
            | ExecutionReport::AssetFee { order_id, .. } => *order_id,
        };
        let order = self.state.orders.get(&order_id).ok_or(EngineError::UnknownOrder(order_id))?;
        let check = |event: OrderEventKind, complete: bool| {
            order
                .status
                .transition(event, complete)
                .map_err(|source| EngineError::InvalidTransition { order_id, source })
        };
        let kind = match report {
            ExecutionReport::Accepted { .. } => {
                check(OrderEventKind::Accept, false)?;
                EventKind::OrderAccepted { order_id }
            }
            ExecutionReport::Rejected { reason, .. } => {
                check(OrderEventKind::Reject, false)?;
                EventKind::OrderRejected { order_id, reason: *reason }
            }
            ExecutionReport::Cancelled { .. } => {
                check(OrderEventKind::Cancel, false)?;
                EventKind::OrderCancelled { order_id }
            }
            ExecutionReport::CancelRejected { .. } => {
                check(OrderEventKind::CancelReject { partially_filled: order.filled_quantity.is_positive() }, false)?;
                EventKind::OrderCancelRejected { order_id }
            }
            ExecutionReport::Expired { .. } => {
                check(OrderEventKind::Expire, false)?;
                EventKind::OrderExpired { order_id }
            }
            ExecutionReport::AssetFee { trade_id, quantity, .. } => {
                if !quantity.is_positive() {
                    return Err(EngineError::InvalidFillQuantity(*quantity));
                }
                let key = (order_id, *trade_id);
                if !self.state.seen_trades.contains(&key) || self.state.asset_fees.contains(&key) {
                    return Err(EngineError::AssetFeeWithoutFill { order_id, trade_id: *trade_id });
                }
                EventKind::AssetFeeCharged {
                    order_id,
                    instrument: order.instrument,
                    trade_id: *trade_id,
                    quantity: *quantity,
                }
            }
            ExecutionReport::Filled { trade_id, quantity, price, fee, liquidity, .. } => {
                if !quantity.is_positive() {
                    return Err(EngineError::InvalidFillQuantity(*quantity));
                }
                if self.state.seen_trades.contains(&(order_id, *trade_id)) {
                    return Err(EngineError::DuplicateFill { order_id, trade_id: *trade_id });
                }
                let remaining = order.remaining();
                if *quantity > remaining {
                    return Err(EngineError::Overfill { order_id, quantity: *quantity, remaining });
                }
                check(OrderEventKind::Fill, *quantity == remaining)?;
                EventKind::OrderFilled {
                    fill: Fill {
                        order_id,
                        trade_id: *trade_id,
                        instrument: order.instrument,
                        side: order.side,
                        quantity: *quantity,
                        price: *price,
                        fee: *fee,
                        liquidity: *liquidity,
                        ts: now,
                    },
                }
            }
        };
        self.emit(out, now, kind);
        Ok(())
    }
}
