//! Reconciliation: what the engine must be told so that its account agrees
//! with what the venue reports, and what no report can explain.
//!
//! The caller (the live runtime) asks the venue for the state of every order
//! the engine holds open, every order the venue holds open, the fills since
//! the last reconciliation and the positions, and passes them here as a
//! [`VenueSnapshot`]. [`reconcile`] answers with execution reports to feed
//! the engine through [`Input::Execution`] (so every correction is journaled
//! like any venue report, never applied silently) and the [`Difference`]s
//! left after them, on which the caller raises an alert and makes the account
//! close-only. Pure: no I/O, no clock but the `now` it is given. Reports are
//! idempotent: a fill already applied (by its trade id) is never reported
//! again, so reconciling twice, or after the stream delivered the same fill,
//! applies everything exactly once.

use model::{ClientOrderId, ExecutionReport, InstrumentId, Liquidity, Money, OrderId, OrderStatus, Price, Quantity};
use model::{RejectReason, Timestamp};

use crate::engine::{Engine, Input, Output};
use crate::state::AccountState;

/// What the venue says about one of our orders (matched by client order id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VenueOrderStatus {
    /// Working (acknowledged, possibly partially filled).
    Open,
    Filled,
    Cancelled,
    Rejected,
    Expired,
    /// The venue has no such order: a submission that never arrived.
    Absent,
}

/// One of our orders as the venue reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VenueOrder {
    pub client_order_id: ClientOrderId,
    pub status: VenueOrderStatus,
    /// What the venue says has filled (zero when `Absent`).
    pub filled_quantity: Quantity,
}

/// A fill of one of our orders as the venue reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VenueFill {
    pub client_order_id: ClientOrderId,
    /// The venue's trade id: what makes a fill count once.
    pub trade_id: u64,
    pub quantity: Quantity,
    pub price: Price,
    /// In the account's currency for the instrument (the caller converts).
    pub fee: Money,
    pub liquidity: Liquidity,
    /// What the venue kept of the traded asset as commission (zero unless
    /// it charges in the base asset); reported after the fill.
    pub asset_fee: Quantity,
}

/// What the venue reported, all read after the engine's state was taken.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VenueSnapshot {
    /// Every order the engine holds open, and every order the venue holds
    /// open that carries one of our client order ids.
    pub orders: Vec<VenueOrder>,
    /// Open orders at the venue that are not ours (placed by hand on the
    /// venue, or by another program), described for the alert.
    pub foreign_open_orders: Vec<String>,
    /// Fills since the last reconciliation (older ones may be repeated:
    /// those already applied are skipped).
    pub fills: Vec<VenueFill>,
    /// Signed positions of the account's instruments at the venue; an
    /// instrument not listed is flat there.
    pub positions: Vec<(InstrumentId, Quantity)>,
}

/// Something the reports cannot explain. Any one puts the account close-only
/// until a person looks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// An open order at the venue that the engine does not know.
    ForeignOrder { description: String },
    /// A fill of an order the engine does not know.
    UnknownFill { client_order_id: ClientOrderId, trade_id: u64 },
    /// An order the engine holds open (and the venue had acknowledged)
    /// that the venue does not have.
    MissingAtVenue { order_id: OrderId },
    /// The venue gave no state for an order the engine holds open.
    NotReported { order_id: OrderId },
    /// The venue's filled quantity differs from the fills the engine has,
    /// after the reported fills were applied: fills are missing.
    FilledQuantity { order_id: OrderId, ours: Quantity, venue: Quantity },
    /// The venue's status cannot follow the engine's (a rejection of an
    /// order the venue had accepted).
    Status { order_id: OrderId, ours: OrderStatus, venue: VenueOrderStatus },
    /// The engine refused a report built from the venue's data.
    Refused { order_id: OrderId, reason: String },
    /// Positions disagree after every report was applied.
    Position { instrument: InstrumentId, ours: Quantity, venue: Quantity },
}

/// What [`reconcile`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciliation {
    /// To feed the engine, in order.
    pub reports: Vec<ExecutionReport>,
    pub differences: Vec<Difference>,
}

impl Reconciliation {
    /// Nothing to correct and nothing unexplained.
    #[must_use]
    pub fn is_clean(&self) -> bool {
        self.reports.is_empty() && self.differences.is_empty()
    }
}

/// Compares the engine's `state` with what the venue reported. The reports
/// are tried on a copy of the state at `now`, so positions are compared as
/// they will be once the reports are applied.
#[must_use]
pub fn reconcile(state: &AccountState, venue: &VenueSnapshot, now: Timestamp) -> Reconciliation {
    let mut trial = Engine::from_state(state.clone());
    let mut out = Output::default();
    let mut result = Reconciliation::default();
    let now = now.max(state.last_ts);
    // Tries a report on the copy; kept if the engine takes it.
    let apply = |trial: &mut Engine, out: &mut Output, report: ExecutionReport, result: &mut Reconciliation| {
        let order_id = order_of(&report);
        out.clear();
        match trial.process(&Input::Execution(report.clone()), now, out) {
            Ok(()) => result.reports.push(report),
            Err(e) => result.differences.push(Difference::Refused { order_id, reason: e.to_string() }),
        }
    };
    let ours = |id: &ClientOrderId| state.client_order_ids.get(id).copied();

    // Acknowledgements first: an order the venue holds that we still think
    // unanswered (its acknowledgement was lost).
    for order in &venue.orders {
        if let Some(id) = ours(&order.client_order_id)
            && state.orders.get(&id).is_some_and(|o| o.status == OrderStatus::New)
            && order.status == VenueOrderStatus::Open
        {
            apply(&mut trial, &mut out, ExecutionReport::Accepted { order_id: id }, &mut result);
        }
    }

    // Fills not yet applied, in the venue's trade order per order.
    let mut fills: Vec<&VenueFill> = venue.fills.iter().collect();
    fills.sort_by_key(|f| (f.client_order_id.as_str().to_string(), f.trade_id));
    fills.dedup_by_key(|f| (f.client_order_id.as_str().to_string(), f.trade_id));
    for fill in fills {
        let Some(order_id) = ours(&fill.client_order_id) else {
            result.differences.push(Difference::UnknownFill {
                client_order_id: fill.client_order_id.clone(),
                trade_id: fill.trade_id,
            });
            continue;
        };
        if state.seen_trades.contains(&(order_id, fill.trade_id)) {
            continue;
        }
        let report = ExecutionReport::Filled {
            order_id,
            trade_id: fill.trade_id,
            quantity: fill.quantity,
            price: fill.price,
            fee: fill.fee,
            liquidity: fill.liquidity,
        };
        apply(&mut trial, &mut out, report, &mut result);
        if fill.asset_fee.is_positive() {
            let fee = ExecutionReport::AssetFee { order_id, trade_id: fill.trade_id, quantity: fill.asset_fee };
            apply(&mut trial, &mut out, fee, &mut result);
        }
    }

    // Final states, against the engine's orders after those fills.
    for order in &venue.orders {
        let Some(order_id) = ours(&order.client_order_id) else {
            if order.status == VenueOrderStatus::Open {
                result.differences.push(Difference::ForeignOrder {
                    description: format!("an open order with client order id {}", order.client_order_id.as_str()),
                });
            }
            continue;
        };
        let Some(current) = trial.state().orders.get(&order_id).cloned() else { continue };
        if order.status != VenueOrderStatus::Absent && current.filled_quantity != order.filled_quantity {
            result.differences.push(Difference::FilledQuantity {
                order_id,
                ours: current.filled_quantity,
                venue: order.filled_quantity,
            });
            continue;
        }
        if !current.status.is_open() {
            // Closed here but working there: an order the engine gave up on
            // (say, rejected as absent) reached the venue after all.
            if order.status == VenueOrderStatus::Open {
                result.differences.push(Difference::Status { order_id, ours: current.status, venue: order.status });
            }
            continue;
        }
        let report = match order.status {
            VenueOrderStatus::Open | VenueOrderStatus::Filled => None,
            VenueOrderStatus::Cancelled => Some(ExecutionReport::Cancelled { order_id }),
            VenueOrderStatus::Expired => Some(ExecutionReport::Expired { order_id }),
            VenueOrderStatus::Rejected | VenueOrderStatus::Absent if current.status == OrderStatus::New => {
                Some(ExecutionReport::Rejected { order_id, reason: RejectReason::VenueRejected })
            }
            VenueOrderStatus::Absent => {
                result.differences.push(Difference::MissingAtVenue { order_id });
                None
            }
            VenueOrderStatus::Rejected => {
                result.differences.push(Difference::Status { order_id, ours: current.status, venue: order.status });
                None
            }
        };
        if let Some(report) = report {
            apply(&mut trial, &mut out, report, &mut result);
        }
    }

    // Orders we hold open that the venue said nothing about.
    for &order_id in &state.open_orders {
        let Some(order) = state.orders.get(&order_id) else { continue };
        if !venue.orders.iter().any(|v| v.client_order_id == order.client_order_id) {
            result.differences.push(Difference::NotReported { order_id });
        }
    }

    result.differences.extend(
        venue
            .foreign_open_orders
            .iter()
            .map(|description| Difference::ForeignOrder { description: description.clone() }),
    );

    // Positions, once every report is in.
    let mut instruments: Vec<InstrumentId> = trial.state().books.iter().map(|b| b.instrument.id).collect();
    instruments.extend(venue.positions.iter().map(|(id, _)| *id));
    instruments.sort_unstable();
    instruments.dedup();
    for instrument in instruments {
        let ours = trial.state().position(instrument);
        let theirs = venue.positions.iter().find(|(id, _)| *id == instrument).map_or(Quantity::ZERO, |(_, q)| *q);
        if ours != theirs {
            result.differences.push(Difference::Position { instrument, ours, venue: theirs });
        }
    }
    result
}

fn order_of(report: &ExecutionReport) -> OrderId {
    match report {
        ExecutionReport::Accepted { order_id }
        | ExecutionReport::Rejected { order_id, .. }
        | ExecutionReport::Filled { order_id, .. }
        | ExecutionReport::Cancelled { order_id }
        | ExecutionReport::CancelRejected { order_id }
        | ExecutionReport::Expired { order_id }
        | ExecutionReport::AssetFee { order_id, .. } => *order_id,
    }
}
