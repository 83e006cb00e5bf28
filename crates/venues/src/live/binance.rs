//! [`LiveVenue`] over the Binance spot REST client.
//!
//! - **Orders**: MARKET, LIMIT (GTC/IOC/FOK), STOP_LOSS, STOP_LOSS_LIMIT
//!   (GTC/IOC/FOK) from the model's order type; DAY is refused locally
//!   (Binance spot has none), and so is a FOK market order (Binance market
//!   orders take no time in force). A post-only limit order is LIMIT_MAKER.
//! - **Fills**: trade ids are Binance trade ids. Commission is reported in
//!   the asset Binance charged it in (base, quote or BNB) as `fee_currency`;
//!   the caller converts to the quote currency. Fills in a placement answer
//!   traded on arrival, so they are `Taker`.
//! - **Client order ids of fills**: `myTrades` names only Binance's order id.
//!   This venue remembers the client id of every order it has seen (placed,
//!   queried, listed open, cancelled) and names fills by it; the order of
//!   a fill it has not seen is looked up once by Binance's order id, and
//!   its fills have `client_order_id: None` only if that id is not ours. A snapshot queries
//!   the given orders first, so their fills are always named.
//! - **Positions** on a spot account are the base-asset balances (free +
//!   locked) of the symbols asked about.
//! - **fills_since** walks 24 h windows from `since` (Binance caps a
//!   `startTime`/`endTime` query at 24 h) up to [`MAX_FILL_LOOKBACK_DAYS`],
//!   paging by `fromId` within a full window.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use model::Timestamp;
use model::{ClientOrderId, Currency, InstrumentId, Liquidity, Money, Order, OrderType, Quantity, TimeInForce};

use super::{
    CancelResult, LiveBalance, LiveError, LiveFill, LiveInstrument, LiveOrderState, LiveStatus, LiveVenue, PlaceResult,
    Settled, VenueFuture, client_id,
};
use crate::binance::types::millis;
use crate::binance::{
    BinanceClient, BinanceError, BinanceOrderStatus, CancelOutcome, ErrorCode, NewOrder, OrderReport, PlaceOutcome,
    Trade, TradeQuery,
};

/// How far back [`LiveVenue::fills_since`] may reach.
pub const MAX_FILL_LOOKBACK_DAYS: i64 = 30;
const DAY_MS: i64 = 86_400_000;
const TRADES_PAGE: u16 = 1000;
const MAX_PAGES_PER_WINDOW: u32 = 50;

/// A Binance spot account behind [`LiveVenue`].
pub struct BinanceVenue {
    client: Arc<BinanceClient>,
    /// symbol → (base, quote), from exchangeInfo.
    assets: Mutex<HashMap<String, (Currency, Currency)>>,
    /// Binance order id → our client order id, from every order seen.
    client_ids: Mutex<HashMap<u64, ClientOrderId>>,
    /// Orders looked up by id whose client id is not one of ours.
    looked_up: Mutex<std::collections::HashSet<u64>>,
}

impl std::fmt::Debug for BinanceVenue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BinanceVenue").field("base_url", &self.client.base_url()).finish_non_exhaustive()
    }
}

fn status(s: BinanceOrderStatus) -> LiveStatus {
    use BinanceOrderStatus as B;
    match s {
        B::New | B::PendingNew | B::PartiallyFilled | B::PendingCancel => LiveStatus::Open,
        B::Filled => LiveStatus::Filled,
        B::Canceled => LiveStatus::Cancelled,
        B::Rejected => LiveStatus::Rejected,
        B::Expired | B::ExpiredInMatch => LiveStatus::Expired,
        B::Unknown => {
            tracing::warn!("binance: unknown order status; treated as open");
            LiveStatus::Open
        }
    }
}

fn money_to_quantity(m: Money, what: &str) -> Result<Quantity, LiveError> {
    i64::try_from(m.raw())
        .map(Quantity::from_raw)
        .map_err(|_| LiveError::Unmapped(format!("{what} {m} is beyond the quantity range")))
}

fn currency(text: &str) -> Result<Currency, LiveError> {
    Currency::parse(text).map_err(|e| LiveError::Unmapped(format!("asset '{text}': {e}")))
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl BinanceVenue {
    #[must_use]
    pub fn new(client: Arc<BinanceClient>) -> Self {
        Self {
            client,
            assets: Mutex::new(HashMap::new()),
            client_ids: Mutex::new(HashMap::new()),
            looked_up: Mutex::new(std::collections::HashSet::new()),
        }
    }

    /// The wrapped client.
    #[must_use]
    pub fn client(&self) -> &BinanceClient {
        &self.client
    }

    fn remember(&self, report: &OrderReport) {
        if let Some(id) = client_id(report.order_client_id()) {
            self.client_ids.lock().unwrap_or_else(PoisonError::into_inner).insert(report.order_id, id);
        }
    }

    fn state(&self, report: &OrderReport) -> LiveOrderState {
        self.remember(report);
        LiveOrderState {
            client_order_id: client_id(report.order_client_id()),
            venue_order_id: report.order_id.to_string(),
            symbol: report.symbol.clone(),
            status: status(report.status),
            quantity: report.orig_qty,
            filled_quantity: report.executed_qty,
        }
    }

    fn new_order(order: &Order, symbol: &str) -> Result<NewOrder, LiveError> {
        if order.time_in_force == TimeInForce::Day {
            return Err(LiveError::Refused("Binance spot has no DAY time in force (GTC, IOC and FOK only)".into()));
        }
        if order.order_type == OrderType::Market && order.time_in_force == TimeInForce::Fok {
            return Err(LiveError::Refused("Binance market orders take no time in force; FOK is not possible".into()));
        }
        if order.reduce_only {
            return Err(LiveError::Refused("Binance spot has no reduce-only orders".into()));
        }
        Ok(NewOrder::from_model(
            symbol,
            order.client_order_id.clone(),
            order.side,
            order.order_type,
            order.time_in_force,
            order.remaining(),
            order.post_only,
        )?)
    }

    async fn query(&self, client_order_id: &ClientOrderId, symbol: &str) -> Result<LiveOrderState, LiveError> {
        match self.client.query_order(symbol, client_order_id).await {
            Ok(report) => Ok(self.state(&report)),
            Err(e) if e.code() == Some(ErrorCode::NoSuchOrder) => Ok(LiveOrderState::absent(client_order_id, symbol)),
            Err(e) => Err(e.into()),
        }
    }

    /// symbol → (base, quote), loading exchangeInfo for symbols not yet known.
    async fn assets_of(&self, symbols: &[String]) -> Result<HashMap<String, (Currency, Currency)>, LiveError> {
        let missing: Vec<&str> = {
            let known = self.assets.lock().unwrap_or_else(PoisonError::into_inner);
            symbols.iter().filter(|s| !known.contains_key(*s)).map(String::as_str).collect()
        };
        if !missing.is_empty() {
            let info = self.client.exchange_info(&missing).await?;
            let mut known = self.assets.lock().unwrap_or_else(PoisonError::into_inner);
            for rules in &info.symbols {
                known.insert(rules.symbol.clone(), (rules.base_asset, rules.quote_asset));
            }
        }
        let known = self.assets.lock().unwrap_or_else(PoisonError::into_inner);
        symbols
            .iter()
            .map(|s| {
                known
                    .get(s)
                    .map(|a| (s.clone(), *a))
                    .ok_or_else(|| LiveError::Unmapped(format!("Binance did not list symbol {s}")))
            })
            .collect()
    }

    fn fill(&self, t: &Trade) -> Result<LiveFill, LiveError> {
        let client_order_id = self.client_ids.lock().unwrap_or_else(PoisonError::into_inner).get(&t.order_id).cloned();
        Ok(LiveFill {
            client_order_id,
            venue_order_id: t.order_id.to_string(),
            symbol: t.symbol.clone(),
            trade_id: t.id,
            quantity: t.qty,
            price: t.price,
            fee: t.commission,
            fee_currency: currency(&t.commission_asset)?,
            liquidity: Some(t.liquidity()),
            time: Some(t.time),
        })
    }

    /// Looks up (once) the client order id of a trade's order this process
    /// has not seen, so fills from before a restart are named.
    async fn learn_client_id(&self, t: &Trade) -> Result<(), LiveError> {
        let known = |ids: &HashMap<u64, ClientOrderId>, looked: &std::collections::HashSet<u64>| {
            ids.contains_key(&t.order_id) || looked.contains(&t.order_id)
        };
        {
            let ids = self.client_ids.lock().unwrap_or_else(PoisonError::into_inner);
            let looked = self.looked_up.lock().unwrap_or_else(PoisonError::into_inner);
            if known(&ids, &looked) {
                return Ok(());
            }
        }
        let report = self.client.query_order_by_id(&t.symbol, t.order_id).await?;
        self.looked_up.lock().unwrap_or_else(PoisonError::into_inner).insert(t.order_id);
        if let Some(id) = client_id(&report.client_order_id) {
            self.client_ids.lock().unwrap_or_else(PoisonError::into_inner).insert(t.order_id, id);
        }
        Ok(())
    }

    /// The trades of `symbol` at or after `since_ms`, by 24 h windows.
    async fn trades_since(&self, symbol: &str, since_ms: i64) -> Result<Vec<Trade>, LiveError> {
        let now = now_ms().saturating_add(self.client.clock_offset_ms());
        if now.saturating_sub(since_ms) > MAX_FILL_LOOKBACK_DAYS * DAY_MS {
            return Err(LiveError::Refused(format!(
                "fills more than {MAX_FILL_LOOKBACK_DAYS} days back are not read from Binance"
            )));
        }
        let mut out: Vec<Trade> = Vec::new();
        let mut start = since_ms;
        loop {
            let end = start.saturating_add(DAY_MS - 1);
            let last_window = end >= now;
            let query = TradeQuery {
                start_time: Some(millis(start)),
                end_time: (!last_window).then(|| millis(end)),
                limit: Some(TRADES_PAGE),
                ..TradeQuery::default()
            };
            let mut page = self.client.my_trades(symbol, &query).await?;
            let mut pages = 1;
            while page.len() == usize::from(TRADES_PAGE) && pages < MAX_PAGES_PER_WINDOW {
                let Some(last) = page.iter().map(|t| t.id).max() else { break };
                out.append(&mut page);
                let more = TradeQuery { from_id: Some(last + 1), limit: Some(TRADES_PAGE), ..TradeQuery::default() };
                page = self.client.my_trades(symbol, &more).await?;
                pages += 1;
            }
            out.append(&mut page);
            if last_window {
                break;
            }
            start = end + 1;
        }
        let since = millis(since_ms);
        out.retain(|t| t.time >= since);
        out.sort_by_key(|t| t.id);
        out.dedup_by_key(|t| t.id);
        Ok(out)
    }
}

impl LiveVenue for BinanceVenue {
    fn name(&self) -> &'static str {
        "binance"
    }

    fn instruments<'a>(&'a self, wanted: &'a [(InstrumentId, String)]) -> VenueFuture<'a, Vec<LiveInstrument>> {
        Box::pin(async move {
            let symbols: Vec<&str> = wanted.iter().map(|(_, s)| s.as_str()).collect();
            let info = self.client.exchange_info(&symbols).await?;
            let mut out = Vec::with_capacity(wanted.len());
            for (id, symbol) in wanted {
                let Some(rules) = info.symbol(symbol) else {
                    let why = info.skipped.iter().find(|(s, _)| s == symbol).map_or("not listed", |(_, w)| w.as_str());
                    return Err(LiveError::Unmapped(format!("Binance symbol {symbol}: {why}")));
                };
                self.assets
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(symbol.clone(), (rules.base_asset, rules.quote_asset));
                out.push(LiveInstrument { instrument: rules.to_instrument(*id)?, venue_symbol: rules.symbol.clone() });
            }
            Ok(out)
        })
    }

    fn place<'a>(&'a self, order: &'a Order, venue_symbol: &'a str) -> VenueFuture<'a, PlaceResult> {
        Box::pin(async move {
            let new = Self::new_order(order, venue_symbol)?;
            match self.client.place_order(&new).await {
                Ok(PlaceOutcome::Placed(report)) => {
                    let state = self.state(&report);
                    let mut fills = Vec::with_capacity(report.fills.len());
                    for f in &report.fills {
                        fills.push(LiveFill {
                            client_order_id: Some(order.client_order_id.clone()),
                            venue_order_id: state.venue_order_id.clone(),
                            symbol: report.symbol.clone(),
                            trade_id: f.trade_id,
                            quantity: f.qty,
                            price: f.price,
                            fee: f.commission,
                            fee_currency: currency(&f.commission_asset)?,
                            liquidity: Some(Liquidity::Taker),
                            time: report.transact_time,
                        });
                    }
                    Ok(PlaceResult::Placed {
                        venue_order_id: state.venue_order_id,
                        status: state.status,
                        filled_quantity: state.filled_quantity,
                        fills,
                    })
                }
                Ok(PlaceOutcome::StatusUnknown(u)) => Ok(PlaceResult::StatusUnknown { cause: u.cause }),
                Err(BinanceError::Api { status, code, msg, .. }) if status < 500 && status != 429 && status != 418 => {
                    Ok(PlaceResult::Rejected { reason: msg, code: Some(code.code().to_string()) })
                }
                Err(e) => Err(e.into()),
            }
        })
    }

    fn cancel<'a>(
        &'a self,
        client_order_id: &'a ClientOrderId,
        venue_symbol: &'a str,
    ) -> VenueFuture<'a, CancelResult> {
        Box::pin(async move {
            match self.client.cancel_order(venue_symbol, client_order_id).await {
                Ok(CancelOutcome::Cancelled(report)) => {
                    // The cancel answer's clientOrderId is the cancel's own;
                    // the order's is origClientOrderId (order_client_id()).
                    Ok(CancelResult::Cancelled(self.state(&report)))
                }
                Ok(CancelOutcome::StatusUnknown(u)) => Ok(CancelResult::StatusUnknown { cause: u.cause }),
                // -2011 "Unknown order sent.": closed already, or never there.
                Err(e) if e.code() == Some(ErrorCode::CancelRejected) => {
                    Ok(CancelResult::AlreadyClosed(self.query(client_order_id, venue_symbol).await?))
                }
                Err(e) => Err(e.into()),
            }
        })
    }

    fn settle<'a>(&'a self, client_order_id: &'a ClientOrderId, venue_symbol: &'a str) -> VenueFuture<'a, Settled> {
        Box::pin(async move {
            let state = self.query(client_order_id, venue_symbol).await?;
            Ok(if state.status == LiveStatus::Absent { Settled::Absent } else { Settled::Found(state) })
        })
    }

    fn order_states<'a>(&'a self, orders: &'a [(ClientOrderId, String)]) -> VenueFuture<'a, Vec<LiveOrderState>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(orders.len());
            for (id, symbol) in orders {
                out.push(self.query(id, symbol).await?);
            }
            Ok(out)
        })
    }

    fn open_orders(&self) -> VenueFuture<'_, Vec<LiveOrderState>> {
        Box::pin(async move { Ok(self.client.open_orders(None).await?.iter().map(|r| self.state(r)).collect()) })
    }

    fn fills_since<'a>(&'a self, since: Timestamp, symbols: &'a [String]) -> VenueFuture<'a, Vec<LiveFill>> {
        Box::pin(async move {
            let since_ms = since.as_nanos().div_euclid(1_000_000);
            let mut out = Vec::new();
            for symbol in symbols {
                for t in self.trades_since(symbol, since_ms).await? {
                    self.learn_client_id(&t).await?;
                    out.push(self.fill(&t)?);
                }
            }
            Ok(out)
        })
    }

    fn positions<'a>(&'a self, symbols: &'a [String]) -> VenueFuture<'a, Vec<(String, Quantity)>> {
        Box::pin(async move {
            let assets = self.assets_of(symbols).await?;
            let account = self.client.account().await?;
            let mut out = Vec::with_capacity(symbols.len());
            for symbol in symbols {
                let Some((base, _)) = assets.get(symbol) else { continue };
                let held = account.balance(base.as_str()).map_or(Money::ZERO, |b| b.free + b.locked);
                out.push((symbol.clone(), money_to_quantity(held, &format!("{symbol} balance"))?));
            }
            Ok(out)
        })
    }

    fn balances(&self) -> VenueFuture<'_, Vec<LiveBalance>> {
        Box::pin(async move {
            let account = self.client.account().await?;
            Ok(account
                .balances
                .iter()
                .filter(|b| !(b.free + b.locked).is_zero())
                .map(|b| LiveBalance { currency: b.asset.clone(), total: b.free + b.locked, available: b.free })
                .collect())
        })
    }
}
