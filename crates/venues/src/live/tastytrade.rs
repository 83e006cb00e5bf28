//! [`LiveVenue`] over the TastyTrade REST client, for one account.
//!
//! - **Instruments**: a symbol that parses as an OCC option symbol is an
//!   equity option (venue symbol in the padded OCC form), anything else an
//!   equity.
//! - **Orders**: market, limit, stop, stop-limit; Day, GTC, IOC (FOK is
//!   refused locally). TastyTrade's actions need "to open" or "to close":
//!   the venue reads the account's position in the symbol before placing.
//!   An order that reduces the position (and does not cross zero) closes; one
//!   that would cross zero is refused locally (send a closing and an opening
//!   order); a reduce-only order that would open is refused.
//! - **Cancel** goes by TastyTrade's order id, found by our client order id
//!   (the `external-identifier`) in today's orders, then in the order search.
//! - **Trade ids**: TastyTrade gives each leg fill a `fill-id` string, not a
//!   number. A `fill-id` that is a decimal number is used as is; otherwise
//!   the trade id is the 64-bit FNV-1a hash of the `fill-id` text
//!   ([`tasty_trade_id`]); without a `fill-id`, of `ext-exec-id`; without
//!   either, of `order:<order id>:leg:<leg index>:fill:<fill index>`. FNV-1a
//!   is a fixed algorithm (no per-process seed), so ids are stable across
//!   calls, processes and releases.
//! - **Fees**: TastyTrade reports fees per transaction (the transactions
//!   endpoint, not read by this adapter), not per fill: fills carry a zero
//!   fee in USD, and liquidity `None`.
//! - **Balances**: one USD balance: total = cash balance, available = equity
//!   buying power.

use std::sync::Arc;

use model::{AssetClass, ClientOrderId, Currency, InstrumentId, Money, Order, Quantity, Side, Timestamp};

use super::{
    CancelResult, LiveBalance, LiveError, LiveFill, LiveInstrument, LiveOrderState, LiveStatus, LiveVenue, PlaceResult,
    Settled, VenueFuture, client_id,
};
use crate::tastytrade::{
    CancelOutcome, LegFill, NewOrder, OccSymbol, PlaceOutcome, PositionEffect, TastyClient, TastyError, TastyOrder,
    TastyOrderStatus,
};

/// 64-bit FNV-1a of `bytes` (offset basis 0xcbf29ce484222325, prime 0x100000001b3).
#[must_use]
pub fn fnv1a_64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// The trade id for a TastyTrade `fill-id`: the number itself when it is
/// one, else its FNV-1a hash.
#[must_use]
pub fn tasty_trade_id(fill_id: &str) -> u64 {
    let t = fill_id.trim();
    if !t.is_empty()
        && t.bytes().all(|b| b.is_ascii_digit())
        && let Ok(n) = t.parse::<u64>()
    {
        return n;
    }
    fnv1a_64(t.as_bytes())
}

fn fill_trade_id(order_id: Option<u64>, leg: usize, index: usize, fill: &LegFill) -> u64 {
    match (fill.fill_id.as_deref(), fill.ext_exec_id.as_deref()) {
        (Some(id), _) if !id.trim().is_empty() => tasty_trade_id(id),
        (_, Some(id)) if !id.trim().is_empty() => tasty_trade_id(id),
        _ => fnv1a_64(format!("order:{}:leg:{leg}:fill:{index}", order_id.unwrap_or(0)).as_bytes()),
    }
}

/// The symbol as TastyTrade writes it: padded OCC for options, trimmed otherwise.
fn normalize(symbol: &str) -> String {
    OccSymbol::parse(symbol).map_or_else(|_| symbol.trim().to_string(), |o| o.to_occ())
}

fn status(o: &TastyOrder) -> LiveStatus {
    use TastyOrderStatus as T;
    match &o.status {
        T::Received | T::Routed | T::InFlight | T::Contingent | T::Live | T::CancelRequested | T::ReplaceRequested => {
            LiveStatus::Open
        }
        T::Filled => LiveStatus::Filled,
        T::Cancelled | T::Removed | T::PartiallyRemoved => LiveStatus::Cancelled,
        T::Rejected => LiveStatus::Rejected,
        T::Expired => LiveStatus::Expired,
        T::Other(s) => {
            tracing::warn!(status = %s, "tastytrade: unknown order status; treated as open");
            LiveStatus::Open
        }
    }
}

fn state(o: &TastyOrder) -> LiveOrderState {
    LiveOrderState {
        client_order_id: o.external_identifier.as_deref().and_then(client_id),
        venue_order_id: o.id.map(|id| id.to_string()).unwrap_or_default(),
        symbol: o.legs.first().map(|l| normalize(&l.symbol)).unwrap_or_default(),
        status: status(o),
        quantity: o.quantity(),
        filled_quantity: o.filled_quantity(),
    }
}

fn usd() -> Result<Currency, LiveError> {
    Currency::parse("USD").map_err(|e| LiveError::Unmapped(e.to_string()))
}

/// `YYYY-MM-DD` (UTC) of `t`.
fn date_of(t: Timestamp) -> String {
    let (y, m, d, ..) = t.to_parts();
    format!("{y:04}-{m:02}-{d:02}")
}

/// The newest order (highest id) of several carrying one external identifier.
fn newest(mut orders: Vec<TastyOrder>) -> Option<TastyOrder> {
    orders.sort_by_key(|o| std::cmp::Reverse(o.id));
    orders.into_iter().next()
}

/// A TastyTrade account behind [`LiveVenue`].
pub struct TastyVenue {
    client: Arc<TastyClient>,
    account: String,
}

impl std::fmt::Debug for TastyVenue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TastyVenue").field("account", &self.account).finish_non_exhaustive()
    }
}

impl TastyVenue {
    #[must_use]
    pub fn new(client: Arc<TastyClient>, account_number: &str) -> Self {
        Self { client, account: account_number.to_string() }
    }

    /// The wrapped client.
    #[must_use]
    pub fn client(&self) -> &TastyClient {
        &self.client
    }

    #[must_use]
    pub fn account_number(&self) -> &str {
        &self.account
    }

    fn fills_of(o: &TastyOrder, since: Option<Timestamp>, symbols: &[String]) -> Result<Vec<LiveFill>, LiveError> {
        let mut out = Vec::new();
        for (li, leg) in o.legs.iter().enumerate() {
            let symbol = normalize(&leg.symbol);
            if !symbols.is_empty() && !symbols.iter().any(|s| normalize(s) == symbol) {
                continue;
            }
            for (fi, f) in leg.fills.iter().enumerate() {
                if let (Some(since), Some(at)) = (since, f.filled_at)
                    && at < since
                {
                    continue;
                }
                out.push(LiveFill {
                    client_order_id: o.external_identifier.as_deref().and_then(client_id),
                    venue_order_id: o.id.map(|id| id.to_string()).unwrap_or_default(),
                    symbol: symbol.clone(),
                    trade_id: fill_trade_id(o.id, li, fi, f),
                    quantity: f.quantity,
                    price: f.fill_price,
                    fee: Money::ZERO,
                    fee_currency: usd()?,
                    liquidity: None,
                    time: f.filled_at,
                });
            }
        }
        Ok(out)
    }

    async fn find(&self, client_order_id: &ClientOrderId) -> Result<Option<TastyOrder>, LiveError> {
        Ok(newest(self.client.find_by_external_identifier(&self.account, client_order_id.as_str()).await?))
    }

    /// Open or close, from the account's position in `symbol`.
    async fn effect(&self, order: &Order, symbol: &str) -> Result<PositionEffect, LiveError> {
        let held = self
            .client
            .positions(&self.account)
            .await?
            .iter()
            .filter(|p| normalize(&p.symbol) == symbol)
            .fold(Quantity::ZERO, |acc, p| acc + p.quantity);
        let qty = order.remaining();
        let closing = match order.side {
            Side::Buy => held.is_negative(),
            Side::Sell => held.is_positive(),
        };
        if closing && qty > held.abs() {
            return Err(LiveError::Refused(format!(
                "{qty} of {symbol} would cross the position of {held} through zero; send a closing and an opening order"
            )));
        }
        if order.reduce_only && !closing {
            return Err(LiveError::Refused(format!(
                "reduce-only order on {symbol} would open a position (position {held})"
            )));
        }
        Ok(if closing { PositionEffect::Close } else { PositionEffect::Open })
    }
}

fn rejection(e: &TastyError) -> Option<PlaceResult> {
    match e {
        TastyError::Api { status, code, message, errors, .. } if (400..500).contains(status) && *status != 429 => {
            let mut reason = message.clone();
            for d in errors {
                reason.push_str("; ");
                reason.push_str(&d.to_string());
            }
            Some(PlaceResult::Rejected { reason, code: Some(code.clone()) })
        }
        _ => None,
    }
}

impl LiveVenue for TastyVenue {
    fn name(&self) -> &'static str {
        crate::tastytrade::VENUE
    }

    fn instruments<'a>(&'a self, wanted: &'a [(InstrumentId, String)]) -> VenueFuture<'a, Vec<LiveInstrument>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(wanted.len());
            for (id, symbol) in wanted {
                let (instrument, venue_symbol) = match OccSymbol::parse(symbol) {
                    Ok(occ) => (self.client.equity_option_instrument(&occ, *id).await?, occ.to_occ()),
                    Err(_) => (self.client.equity_instrument(symbol, *id).await?, symbol.trim().to_string()),
                };
                out.push(LiveInstrument { instrument, venue_symbol });
            }
            Ok(out)
        })
    }

    fn place<'a>(&'a self, order: &'a Order, venue_symbol: &'a str) -> VenueFuture<'a, PlaceResult> {
        Box::pin(async move {
            let (class, symbol) = match OccSymbol::parse(venue_symbol) {
                Ok(occ) => (AssetClass::EquityOption, occ.to_occ()),
                Err(_) => (AssetClass::Equity, venue_symbol.trim().to_string()),
            };
            // Refuse what the venue does not have before reading positions.
            NewOrder::single_leg(
                &order.client_order_id,
                class,
                &symbol,
                order.side,
                PositionEffect::Open,
                order.remaining(),
                &order.order_type,
                order.time_in_force,
            )?;
            let effect = self.effect(order, &symbol).await?;
            let new = NewOrder::single_leg(
                &order.client_order_id,
                class,
                &symbol,
                order.side,
                effect,
                order.remaining(),
                &order.order_type,
                order.time_in_force,
            )?;
            match self.client.place_order(&self.account, &new).await {
                Ok(PlaceOutcome::Placed(placed)) => {
                    let s = state(&placed.order);
                    Ok(PlaceResult::Placed {
                        venue_order_id: s.venue_order_id,
                        status: s.status,
                        filled_quantity: s.filled_quantity,
                        fills: Self::fills_of(&placed.order, None, &[])?,
                    })
                }
                Ok(PlaceOutcome::StatusUnknown(u)) => Ok(PlaceResult::StatusUnknown { cause: u.cause }),
                Err(e) => rejection(&e).ok_or_else(|| e.into()),
            }
        })
    }

    fn cancel<'a>(
        &'a self,
        client_order_id: &'a ClientOrderId,
        venue_symbol: &'a str,
    ) -> VenueFuture<'a, CancelResult> {
        Box::pin(async move {
            let Some(found) = self.find(client_order_id).await? else {
                return Ok(CancelResult::AlreadyClosed(LiveOrderState::absent(
                    client_order_id,
                    &normalize(venue_symbol),
                )));
            };
            if found.status.is_terminal() {
                return Ok(CancelResult::AlreadyClosed(state(&found)));
            }
            let Some(id) = found.id else {
                return Err(LiveError::Unmapped(format!("tastytrade order {client_order_id} has no id")));
            };
            match self.client.cancel_order(&self.account, id).await {
                Ok(CancelOutcome::Cancelled(o)) => Ok(CancelResult::Cancelled(state(&o))),
                Ok(CancelOutcome::StatusUnknown { cause, .. }) => Ok(CancelResult::StatusUnknown { cause }),
                // Closed between the lookup and the cancel.
                Err(e) if e.status() == Some(422) => {
                    Ok(CancelResult::AlreadyClosed(state(&self.client.order(&self.account, id).await?)))
                }
                Err(e) => Err(e.into()),
            }
        })
    }

    fn settle<'a>(&'a self, client_order_id: &'a ClientOrderId, _venue_symbol: &'a str) -> VenueFuture<'a, Settled> {
        Box::pin(async move {
            Ok(match self.find(client_order_id).await? {
                Some(o) => Settled::Found(state(&o)),
                None => Settled::Absent,
            })
        })
    }

    fn order_states<'a>(&'a self, orders: &'a [(ClientOrderId, String)]) -> VenueFuture<'a, Vec<LiveOrderState>> {
        Box::pin(async move {
            let live = if orders.is_empty() { Vec::new() } else { self.client.live_orders(&self.account).await? };
            let mut out = Vec::with_capacity(orders.len());
            for (id, symbol) in orders {
                let today: Vec<TastyOrder> =
                    live.iter().filter(|o| o.external_identifier.as_deref() == Some(id.as_str())).cloned().collect();
                let found = match newest(today) {
                    Some(o) => Some(o),
                    None => self.find(id).await?,
                };
                out.push(found.map_or_else(|| LiveOrderState::absent(id, &normalize(symbol)), |o| state(&o)));
            }
            Ok(out)
        })
    }

    fn open_orders(&self) -> VenueFuture<'_, Vec<LiveOrderState>> {
        Box::pin(async move {
            Ok(self
                .client
                .live_orders(&self.account)
                .await?
                .iter()
                .filter(|o| !o.status.is_terminal())
                .map(state)
                .collect())
        })
    }

    fn fills_since<'a>(&'a self, since: Timestamp, symbols: &'a [String]) -> VenueFuture<'a, Vec<LiveFill>> {
        Box::pin(async move {
            let mut orders = self.client.live_orders(&self.account).await?;
            let start = date_of(since);
            let config = self.client.config();
            for page in 0..config.settle_max_pages {
                let (found, more) =
                    self.client.search_orders(&self.account, &start, config.settle_page_size, page).await?;
                orders.extend(found);
                if !more {
                    break;
                }
            }
            orders.sort_by_key(|o| o.id);
            orders.dedup_by_key(|o| o.id);
            let mut out = Vec::new();
            for o in &orders {
                out.extend(Self::fills_of(o, Some(since), symbols)?);
            }
            out.sort_by_key(|f| f.trade_id);
            out.dedup_by_key(|f| f.trade_id);
            Ok(out)
        })
    }

    fn positions<'a>(&'a self, symbols: &'a [String]) -> VenueFuture<'a, Vec<(String, Quantity)>> {
        Box::pin(async move {
            let held = self.client.positions(&self.account).await?;
            Ok(symbols
                .iter()
                .map(|s| {
                    let n = normalize(s);
                    let q =
                        held.iter().filter(|p| normalize(&p.symbol) == n).fold(Quantity::ZERO, |a, p| a + p.quantity);
                    (s.clone(), q)
                })
                .collect())
        })
    }

    fn balances(&self) -> VenueFuture<'_, Vec<LiveBalance>> {
        Box::pin(async move {
            let b = self.client.balances(&self.account).await?;
            Ok(vec![LiveBalance {
                currency: b.currency.clone().unwrap_or_else(|| "USD".to_string()),
                total: b.cash_balance,
                available: b.equity_buying_power,
            }])
        })
    }
}
