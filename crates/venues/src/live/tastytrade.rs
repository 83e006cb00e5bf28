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
//! - **Fees**: order fills carry none; TastyTrade reports them on the
//!   account's `Trade` transactions (`GET /accounts/{a}/transactions`,
//!   commission, clearing, regulatory, proprietary index option and other
//!   fees, each with its `Debit`/`Credit` effect). [`LiveVenue::fills_since`]
//!   (and so `snapshot`) reads the trades from the day before `since` on and
//!   gives each fill, in USD (positive = paid, a rebate negative), the fees
//!   of its transaction(s) by this rule (`attach_fees`), among the
//!   transactions of the same order (`order-id`) and symbol:
//!   1. the transaction with the fill's `ext-exec-id`, when both carry one;
//!   2. else a transaction of the same quantity and price, the one executed
//!      nearest the fill's `filled-at` (each transaction serves one fill);
//!   3. else, when the order's transactions left add up to exactly the
//!      quantity of its fills left (TastyTrade booked several executions as
//!      one transaction, or one as several), their fees shared by quantity
//!      (the last fill takes the rounding remainder, so the shares add up).
//!
//!   A fill still without a transaction keeps a zero fee (logged at debug):
//!   TastyTrade may post the transaction a little after the fill, and a fill
//!   is applied once, so its fee then reaches the account only through the
//!   cash adjustment of a later reconciliation. The same holds for fills in
//!   a placement's answer (`place`), which are not matched (their
//!   transactions are not posted yet). Liquidity is `None`.
//! - **Balances**: one USD balance: total = cash balance, available = equity
//!   buying power.

use std::collections::BTreeMap;
use std::sync::Arc;

use model::{AssetClass, ClientOrderId, Currency, InstrumentId, Money, Order, Quantity, Side, Timestamp};

use super::{
    CancelResult, LiveBalance, LiveError, LiveFill, LiveInstrument, LiveOrderState, LiveStatus, LiveVenue, PlaceResult,
    Settled, VenueFuture, client_id,
};
use crate::tastytrade::{
    CancelOutcome, Date, LegFill, NewOrder, OccSymbol, PlaceOutcome, PositionEffect, TastyClient, TastyError,
    TastyOrder, TastyOrderStatus, Transaction, TransactionQuery,
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

const NANOS_PER_DAY: i64 = 86_400 * 1_000_000_000;

/// The UTC day before `t`'s, as a date and as the instant it starts: on or
/// before `t`'s date in US Eastern time, which TastyTrade's transaction
/// dates use.
fn day_before(t: Timestamp) -> (Date, Timestamp) {
    let day = t.day_number() - 1;
    let (y, m, d) = model::time::civil_from_days(day);
    let date = u16::try_from(y)
        .ok()
        .and_then(|y| Date::new(y, u8::try_from(m).unwrap_or(1), u8::try_from(d).unwrap_or(1)))
        .unwrap_or(Date { year: 1970, month: 1, day: 1 });
    (date, Timestamp::from_nanos(day.saturating_mul(NANOS_PER_DAY)))
}

/// A fill with what its fees are matched by.
#[derive(Debug, Clone)]
struct Keyed {
    fill: LiveFill,
    order_id: Option<u64>,
    ext_exec_id: Option<String>,
}

/// Nanoseconds between two times; unknown is farthest.
fn gap(a: Option<Timestamp>, b: Option<Timestamp>) -> u64 {
    match (a, b) {
        (Some(a), Some(b)) => a.as_nanos().abs_diff(b.as_nanos()),
        _ => u64::MAX,
    }
}

/// Gives each fill the fees (in USD, positive = paid) of its `Trade`
/// transaction(s), by the rule in the module docs: within one order and
/// symbol, the same `ext-exec-id`; else the same quantity and price,
/// executed nearest the fill; else, when the transactions left cover
/// exactly the quantity of the fills left, their fees shared by quantity.
/// Fills left without a transaction keep their fee (zero) and are logged at
/// debug. Reversals (`reverses-id`) and other transaction types are ignored.
fn attach_fees(fills: &mut [Keyed], transactions: &[Transaction]) {
    // (order id, symbol) → (fill indices, transaction indices).
    let mut groups: BTreeMap<(u64, String), (Vec<usize>, Vec<usize>)> = BTreeMap::new();
    for (i, k) in fills.iter().enumerate() {
        match k.order_id {
            Some(id) => groups.entry((id, k.fill.symbol.clone())).or_default().0.push(i),
            None => tracing::debug!(trade_id = k.fill.trade_id, "tastytrade: fill without an order id; no fees"),
        }
    }
    for (j, t) in transactions.iter().enumerate() {
        if !t.is_trade() || t.reverses_id.is_some() {
            continue;
        }
        let (Some(id), Some(symbol)) = (t.order_id, t.symbol.as_deref()) else { continue };
        if let Some(group) = groups.get_mut(&(id, normalize(symbol))) {
            group.1.push(j);
        }
    }
    for ((order_id, symbol), (mut fills_left, mut txs_left)) in groups {
        fills_left.sort_by_key(|&i| (fills[i].fill.time, fills[i].fill.trade_id));
        txs_left.sort_by_key(|&j| transactions[j].id);
        // 1. The same execution id.
        fills_left.retain(|&i| {
            let Some(exec) = fills[i].ext_exec_id.as_deref().map(str::trim).filter(|e| !e.is_empty()) else {
                return true;
            };
            let found =
                txs_left.iter().position(|&j| transactions[j].ext_exec_id.as_deref().map(str::trim) == Some(exec));
            match found {
                Some(at) => {
                    fills[i].fill.fee = transactions[txs_left.remove(at)].fee_cost();
                    false
                }
                None => true,
            }
        });
        // 2. The same quantity and price, executed nearest the fill.
        fills_left.retain(|&i| {
            let f = &fills[i].fill;
            let nearest = txs_left
                .iter()
                .enumerate()
                .filter(|&(_, &j)| {
                    transactions[j].quantity == Some(f.quantity) && transactions[j].price == Some(f.price)
                })
                .min_by_key(|&(_, &j)| gap(f.time, transactions[j].executed_at))
                .map(|(at, _)| at);
            match nearest {
                Some(at) => {
                    fills[i].fill.fee = transactions[txs_left.remove(at)].fee_cost();
                    false
                }
                None => true,
            }
        });
        if fills_left.is_empty() {
            continue;
        }
        // 3. Shared by quantity, when the transactions left cover the fills left exactly.
        let fill_qty = fills_left.iter().fold(Quantity::ZERO, |a, &i| a + fills[i].fill.quantity);
        let tx_qty = txs_left.iter().try_fold(Quantity::ZERO, |a, &j| transactions[j].quantity.map(|q| a + q.abs()));
        if !txs_left.is_empty() && fill_qty.is_positive() && tx_qty == Some(fill_qty) {
            let total: Money = txs_left.iter().map(|&j| transactions[j].fee_cost()).sum();
            let mut given = Money::ZERO;
            for (n, &i) in fills_left.iter().enumerate() {
                let share = if n + 1 == fills_left.len() {
                    total - given
                } else {
                    total.mul_div(i128::from(fills[i].fill.quantity.raw()), i128::from(fill_qty.raw()))
                };
                given += share;
                fills[i].fill.fee = share;
            }
            continue;
        }
        for &i in &fills_left {
            tracing::debug!(order_id, %symbol, trade_id = fills[i].fill.trade_id,
                "tastytrade: no transaction for this fill yet; its fee stays zero");
        }
    }
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

    /// The order's fills (zero fees) with what their fees are matched by.
    fn fills_of(o: &TastyOrder) -> Result<Vec<Keyed>, LiveError> {
        let mut out = Vec::new();
        for (li, leg) in o.legs.iter().enumerate() {
            let symbol = normalize(&leg.symbol);
            for (fi, f) in leg.fills.iter().enumerate() {
                out.push(Keyed {
                    fill: LiveFill {
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
                    },
                    order_id: o.id,
                    ext_exec_id: f.ext_exec_id.clone(),
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
            if order.post_only {
                return Err(LiveError::Refused("TastyTrade has no post-only orders".into()));
            }
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
                        fills: Self::fills_of(&placed.order)?.into_iter().map(|k| k.fill).collect(),
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
            let wanted_symbol = |symbol: &str| symbols.is_empty() || symbols.iter().any(|s| normalize(s) == symbol);
            let mut fills = Vec::new();
            for o in &orders {
                fills.extend(Self::fills_of(o)?.into_iter().filter(|k| wanted_symbol(&k.fill.symbol)));
            }
            fills.sort_by_key(|k| k.fill.trade_id);
            fills.dedup_by_key(|k| k.fill.trade_id);
            let after = |k: &Keyed, t: Timestamp| k.fill.time.is_none_or(|at| at >= t);
            if !fills.iter().any(|k| after(k, since)) {
                return Ok(Vec::new());
            }
            // Fees: the trades from the day before `since` on. Fills from
            // then on are matched (so an earlier fill of the same order
            // takes its own transaction); those since `since` are returned.
            let (start_date, start) = day_before(since);
            fills.retain(|k| after(k, start));
            let transactions =
                self.client.transactions(&self.account, &TransactionQuery::trades_since(start_date)).await?;
            attach_fees(&mut fills, &transactions);
            Ok(fills.into_iter().filter(|k| after(k, since)).map(|k| k.fill).collect())
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

#[cfg(test)]
mod tests {
    use super::*;
    use model::Price;

    fn m(s: &str) -> Money {
        Money::parse(s).unwrap()
    }
    fn t(s: &str) -> Timestamp {
        Timestamp::parse(s).unwrap()
    }

    /// A fill of `order` (`qty` at `price`, at `time`).
    fn fill(trade_id: u64, order: u64, symbol: &str, qty: &str, price: &str, time: &str, exec: Option<&str>) -> Keyed {
        Keyed {
            fill: LiveFill {
                client_order_id: None,
                venue_order_id: order.to_string(),
                symbol: symbol.into(),
                trade_id,
                quantity: Quantity::parse(qty).unwrap(),
                price: Price::parse(price).unwrap(),
                fee: Money::ZERO,
                fee_currency: usd().unwrap(),
                liquidity: None,
                time: Some(t(time)),
            },
            order_id: Some(order),
            ext_exec_id: exec.map(str::to_string),
        }
    }

    /// A Trade transaction with a clearing fee (negative: a rebate).
    fn trade(id: u64, order: u64, symbol: &str, qty: &str, price: &str, time: &str, fee: &str) -> Transaction {
        let fee = m(fee);
        let effect = if fee.is_negative() { "Credit" } else { "Debit" };
        serde_json::from_value(serde_json::json!({
            "id": id, "transaction-type": "Trade", "order-id": order, "symbol": symbol, "quantity": qty,
            "price": price, "executed-at": time, "clearing-fees": fee.abs().to_string(),
            "clearing-fees-effect": effect
        }))
        .unwrap()
    }

    fn fees(fills: &[Keyed]) -> Vec<Money> {
        fills.iter().map(|k| k.fill.fee).collect()
    }

    #[test]
    fn by_execution_id_first() {
        // Same quantity and price: only the execution ids tell them apart.
        let mut fills = [
            fill(1, 7, "AAPL", "5", "170", "2026-06-09T15:30:00Z", Some("x1")),
            fill(2, 7, "AAPL", "5", "170", "2026-06-09T15:30:01Z", Some("x2")),
        ];
        let mut a = trade(11, 7, "AAPL", "5", "170", "2026-06-09T15:30:01Z", "0.004");
        a.ext_exec_id = Some("x2".into());
        let mut b = trade(12, 7, "AAPL", "5", "170", "2026-06-09T15:30:00Z", "0.005");
        b.ext_exec_id = Some("x1".into());
        attach_fees(&mut fills, &[a, b]);
        assert_eq!(fees(&fills), vec![m("0.005"), m("0.004")]);
    }

    #[test]
    fn else_by_quantity_and_price_nearest_in_time() {
        let mut fills = [
            fill(1, 7, "AAPL", "5", "170", "2026-06-09T15:30:00Z", None),
            fill(2, 7, "AAPL", "5", "170", "2026-06-09T15:31:00Z", None),
            fill(3, 7, "AAPL", "2", "170.5", "2026-06-09T15:32:00Z", None),
        ];
        let txs = [
            trade(13, 7, "AAPL", "2", "170.5", "2026-06-09T15:32:00.400Z", "0.0016"),
            trade(12, 7, "AAPL", "5", "170", "2026-06-09T15:31:00.250Z", "0.02"),
            trade(11, 7, "AAPL", "5", "170", "2026-06-09T15:30:00.250Z", "0.01"),
            // Another order, another symbol, not a trade, a reversal: ignored.
            trade(14, 8, "AAPL", "5", "170", "2026-06-09T15:30:00Z", "9"),
            trade(15, 7, "SPY", "5", "170", "2026-06-09T15:30:00Z", "9"),
        ];
        attach_fees(&mut fills, &txs);
        assert_eq!(fees(&fills), vec![m("0.01"), m("0.02"), m("0.0016")]);

        let mut reversal = trade(16, 9, "AAPL", "1", "1", "2026-06-09T15:30:00Z", "1");
        reversal.reverses_id = Some(3);
        let mut movement = trade(17, 9, "AAPL", "1", "1", "2026-06-09T15:30:00Z", "1");
        movement.transaction_type = "Money Movement".into();
        let mut lone = [fill(4, 9, "AAPL", "1", "1", "2026-06-09T15:30:00Z", None)];
        attach_fees(&mut lone, &[reversal, movement]);
        assert_eq!(fees(&lone), vec![Money::ZERO], "nothing to match: zero, left for later");
    }

    #[test]
    fn else_shared_by_quantity_when_the_transactions_cover_the_fills() {
        // Two executions booked as one transaction: shared 1:2, the last
        // fill takes the remainder so the shares add up.
        let mut fills = [
            fill(1, 7, "AAPL", "1", "170", "2026-06-09T15:30:00Z", None),
            fill(2, 7, "AAPL", "2", "170.1", "2026-06-09T15:30:01Z", None),
        ];
        let txs = [trade(11, 7, "AAPL", "3", "170.0667", "2026-06-09T15:30:01Z", "0.000000010")];
        attach_fees(&mut fills, &txs);
        assert_eq!(fees(&fills), vec![m("0.000000003"), m("0.000000007")]);
        assert_eq!(fees(&fills).into_iter().sum::<Money>(), m("0.00000001"));

        // A rebate is shared the same way (negative = received).
        let mut fills = [
            fill(1, 7, "AAPL", "1", "170", "2026-06-09T15:30:00Z", None),
            fill(2, 7, "AAPL", "1", "170.1", "2026-06-09T15:30:01Z", None),
        ];
        attach_fees(&mut fills, &[trade(11, 7, "AAPL", "2", "170.05", "2026-06-09T15:30:01Z", "-0.04")]);
        assert_eq!(fees(&fills), vec![m("-0.02"), m("-0.02")]);

        // Only part of the order's trades posted: no guessing which fill.
        let mut fills = [
            fill(1, 7, "AAPL", "1", "170", "2026-06-09T15:30:00Z", None),
            fill(2, 7, "AAPL", "2", "170.1", "2026-06-09T15:30:01Z", None),
        ];
        attach_fees(&mut fills, &[trade(11, 7, "AAPL", "2", "170.05", "2026-06-09T15:30:01Z", "0.5")]);
        assert_eq!(fees(&fills), vec![Money::ZERO, Money::ZERO]);
    }

    #[test]
    fn the_day_before_in_utc() {
        let (date, start) = day_before(t("2026-03-01T04:00:00Z"));
        assert_eq!(date.to_string(), "2026-02-28");
        assert_eq!(start, t("2026-02-28T00:00:00Z"));
    }
}
