//! Live venue accounts: an account whose orders go to Binance or TastyTrade
//! through a linked credential instead of the paper market.
//!
//! Each live account has one **venue task** beside its actor. The actor
//! journals a submission (or cancel) first and hands the engine's venue
//! requests here with the journal position they follow; the task waits
//! until that position is durable before anything leaves the process
//! (write-ahead: a crash can lose an answer, never the record that an order
//! may exist). Answers come back as execution reports through
//! [`AccountHandle::apply_reports`], journaled like any other input.
//!
//! One task per account does everything with the venue in order: places,
//! cancels, settles placements whose outcome is unknown (after
//! `venues.settle_delay_ms`, by client order id, never by sending again) and
//! reconciles ([`engine::reconcile`]) on start, on a timer, when asked (the
//! `reconcile` job) and after an unknown outcome. A reconciliation corrects
//! the account with journaled reports, moves cash to the venue's balances
//! with a journaled adjustment, and on any difference it cannot explain
//! raises an alert (log, metric, audit entry) and makes the account
//! close-only until a person looks.
//!
//! Positions are compared after subtracting what the venue held when the
//! account was linked (`store::live_accounts`). A commission the venue takes
//! in the traded asset (Binance spot buys) shrinks the position itself
//! (`ExecutionReport::AssetFee`), so it matches the venue's balance.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use engine::reconcile::{Difference, VenueFill, VenueOrder, VenueOrderStatus, VenueSnapshot};
use engine::{Command, VenueRequest};
use metrics::counter;
use model::account::{SwitchScope, TradingState};
use model::{
    ClientOrderId, Currency, ExecutionReport, Instrument, InstrumentId, Liquidity, Money, Order, OrderId, Quantity,
    RejectReason, Timestamp,
};
use serde::Serialize;
use sim::candles::{Candle, CandleAggregator};
use store::auth::AuditEntry;
use store::live_accounts::LiveAccountRow;
use store::{AccountId, Store};
use tokio::sync::{mpsc, oneshot};
use venues::live::feed::FeedEvent;
use venues::live::{
    BinanceVenue, CancelResult, LiveFill, LiveOrderState, LiveStatus, LiveVenue, PlaceResult, Settled, TastyVenue,
};

use crate::accounts::{AccountHandle, Clock};
use crate::config::VenuesConfig;
use crate::venue_credentials::{CredentialsKey, VenueSecret};

/// Fills are read from a little before the last reconciliation started, so
/// a fill stamped by a venue clock slightly behind ours is not missed
/// (repeats are skipped by trade id).
const FILLS_OVERLAP: i64 = 120 * 1_000_000_000;
/// Instrument ids of live accounts start here, apart from the paper market's.
const LIVE_INSTRUMENT_BASE: u32 = 1_000_000_000;
/// Symbols per live account at most (the id scheme leaves room for this many).
pub const MAX_SYMBOLS: usize = 100;
/// Lookups of an unknown outcome before leaving it to the next reconciliation.
const SETTLE_ATTEMPTS: u32 = 5;

/// What the server needs to run live accounts.
#[derive(Debug, Clone, Default)]
pub struct LiveOptions {
    pub credentials_key: Option<CredentialsKey>,
    pub venues: VenuesConfig,
    /// `trading.live_enabled`: production accounts may send orders.
    pub live_enabled: bool,
}

/// The instrument id of the `index`th symbol of a live account.
pub fn instrument_id(account: AccountId, index: usize) -> Result<InstrumentId, String> {
    let index = u32::try_from(index).ok().filter(|i| (*i as usize) < MAX_SYMBOLS).ok_or("too many symbols")?;
    u32::try_from(account)
        .ok()
        .and_then(|a| a.checked_mul(MAX_SYMBOLS as u32))
        .and_then(|a| a.checked_add(LIVE_INSTRUMENT_BASE))
        .and_then(|a| a.checked_add(index))
        .map(InstrumentId)
        .ok_or_else(|| format!("account {account} is beyond the live instrument id range"))
}

/// Whether a live account may send orders now: `Err` holds why not, in
/// words for the user.
#[derive(Debug, Default)]
pub struct LiveGate {
    refusal: RwLock<Option<String>>,
}

impl LiveGate {
    #[must_use]
    pub fn refusing(why: Option<String>) -> Self {
        Self { refusal: RwLock::new(why) }
    }

    pub fn check(&self) -> Result<(), String> {
        match &*self.refusal.read().unwrap_or_else(PoisonError::into_inner) {
            Some(why) => Err(why.clone()),
            None => Ok(()),
        }
    }

    pub fn set(&self, why: Option<String>) {
        *self.refusal.write().unwrap_or_else(PoisonError::into_inner) = why;
    }
}

/// Why a live account may not trade, from its row and the server's switches.
#[must_use]
pub fn refusal(row: &LiveAccountRow, venue_ready: Result<(), &str>, live_enabled: bool) -> Option<String> {
    if let Err(why) = venue_ready {
        return Some(format!("the {} account cannot be reached: {why}", row.venue));
    }
    if row.confirmed.is_none() {
        return Some(format!(
            "this account trades at {} ({}): confirm live trading on it first",
            row.venue, row.environment
        ));
    }
    if row.environment == "production" && !live_enabled {
        return Some(
            "live trading is off on this server: the operator must set trading.live_enabled for production accounts"
                .to_string(),
        );
    }
    None
}

/// Work for a venue task.
pub enum VenueJob {
    /// The engine's requests, to send once the journal is durable through `after_seq`.
    Requests { after_seq: u64, requests: Vec<VenueRequest> },
    /// Reconcile now.
    Reconcile { reason: &'static str, reply: Option<oneshot::Sender<Result<PassSummary, String>>> },
    /// Stop: close the streams and end the task (the server is stopping).
    /// Needed because the task and its account's actor keep each other's
    /// queues open.
    Stop,
}

/// A symbol a live account trades.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSymbol {
    pub instrument: Instrument,
    /// What the venue calls it in requests.
    pub venue_symbol: String,
}

/// A balance as the venue last reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BalanceView {
    pub currency: String,
    pub total: Money,
    pub available: Money,
}

/// A position as the venue last reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct VenuePosition {
    /// The venue's symbol.
    pub symbol: String,
    pub quantity: Quantity,
}

/// What the server knows about a live account's venue, for the API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct VenueStatus {
    /// When the last reconciliation finished.
    #[schema(value_type = Option<String>)]
    pub last_reconciled: Option<Timestamp>,
    /// The last venue error, if the last attempt failed.
    pub last_error: Option<String>,
    /// What the last reconciliation could not explain (the account was made
    /// close-only for it).
    pub differences: Vec<String>,
    /// The venue's balances at the last reconciliation.
    pub balances: Vec<BalanceView>,
    /// The venue's positions at the last reconciliation.
    pub positions: Vec<VenuePosition>,
    /// Reports the reconciliations fed to the account since the server started.
    pub corrections: u64,
}

/// What one reconciliation did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PassSummary {
    /// Execution reports fed to the account (acknowledgements, fills and
    /// cancels it had missed).
    pub reports: usize,
    /// What nothing explains (the account is close-only when any).
    pub differences: Vec<String>,
    /// Cash moved to the venue's balances, by currency.
    pub cash_adjusted: Vec<(String, Money)>,
}

/// A running live account, as the runtime keeps it.
#[derive(Debug, Clone)]
pub struct LiveAccount {
    pub row: LiveAccountRow,
    pub gate: Arc<LiveGate>,
    pub status: Arc<Mutex<VenueStatus>>,
    pub jobs: mpsc::UnboundedSender<VenueJob>,
    /// Whether the venue client could be built (credential readable).
    pub venue_ready: Result<(), String>,
}

impl LiveAccount {
    #[must_use]
    pub fn status(&self) -> VenueStatus {
        self.status.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Stops its venue task (and with it the streams) after what is queued.
    pub fn stop(&self) {
        let _ = self.jobs.send(VenueJob::Stop);
    }

    /// Reconciles now and answers what the pass did.
    pub async fn reconcile(&self, reason: &'static str) -> Result<PassSummary, String> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(VenueJob::Reconcile { reason, reply: Some(reply) })
            .map_err(|_| "the account's venue task stopped".to_string())?;
        answer.await.map_err(|_| "the account's venue task stopped".to_string())?
    }
}

/// Builds the venue client of a credential.
pub fn connect(
    secret: &VenueSecret,
    environment: &str,
    venue_account: &str,
    config: &VenuesConfig,
) -> Result<Arc<dyn LiveVenue>, String> {
    let production = environment == "production";
    match secret {
        VenueSecret::BinanceHmac { api_key, api_secret } => {
            let credentials = venues::binance::Credentials::hmac(api_key.clone(), api_secret.clone())
                .map_err(|e| format!("the Binance key: {e}"))?;
            binance(credentials, production, config)
        }
        VenueSecret::BinanceEd25519 { api_key, private_key } => {
            let credentials = venues::binance::Credentials::ed25519_pem(api_key.clone(), private_key)
                .map_err(|e| format!("the Binance key: {e}"))?;
            binance(credentials, production, config)
        }
        VenueSecret::Tastytrade { client_id, client_secret, refresh_token } => {
            if venue_account.trim().is_empty() {
                return Err("a TastyTrade account number is needed".to_string());
            }
            let client = tasty_client(client_id, client_secret, refresh_token, production, config)?;
            Ok(Arc::new(TastyVenue::new(Arc::new(client), venue_account.trim())))
        }
    }
}

fn binance(
    credentials: venues::binance::Credentials,
    production: bool,
    config: &VenuesConfig,
) -> Result<Arc<dyn LiveVenue>, String> {
    let client_config = venues::binance::BinanceConfig {
        production,
        base_url: config.binance_rest_url.clone(),
        ..venues::binance::BinanceConfig::default()
    };
    let client = venues::binance::BinanceClient::new(client_config, Some(credentials))
        .map_err(|e| format!("Binance client: {e}"))?;
    Ok(Arc::new(BinanceVenue::new(Arc::new(client))))
}

/// What opens an account's live updates (see [`venues::live::feed`]); kept
/// to reconnect when a feed stops.
#[derive(Clone)]
pub struct FeedSource {
    pub secret: VenueSecret,
    pub environment: String,
    pub venue_account: String,
    pub config: VenuesConfig,
}

impl std::fmt::Debug for FeedSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedSource").field("secret", &self.secret).field("environment", &self.environment).finish()
    }
}

type FeedParts = (venues::live::feed::Feed, mpsc::Receiver<FeedEvent>);

impl FeedSource {
    /// Opens the account's streams for `symbols` (venue symbols).
    async fn open(&self, symbols: &[String]) -> Result<FeedParts, String> {
        let production = self.environment == "production";
        let config = &self.config;
        match &self.secret {
            VenueSecret::BinanceHmac { api_key, api_secret } => {
                let credentials = venues::binance::Credentials::hmac(api_key.clone(), api_secret.clone())
                    .map_err(|e| format!("the Binance key: {e}"))?;
                binance_feed(credentials, production, config, symbols).await
            }
            VenueSecret::BinanceEd25519 { api_key, private_key } => {
                let credentials = venues::binance::Credentials::ed25519_pem(api_key.clone(), private_key)
                    .map_err(|e| format!("the Binance key: {e}"))?;
                binance_feed(credentials, production, config, symbols).await
            }
            VenueSecret::Tastytrade { client_id, client_secret, refresh_token } => {
                let client = tasty_client(client_id, client_secret, refresh_token, production, config)?;
                let streamer = venues::tastytrade::AccountStreamConfig {
                    production,
                    url: config.tastytrade_streamer_url.clone(),
                    ..venues::tastytrade::AccountStreamConfig::default()
                };
                let dxlink = venues::tastytrade::DxLinkConfig {
                    url: config.tastytrade_dxlink_url.clone(),
                    ..venues::tastytrade::DxLinkConfig::default()
                };
                venues::live::feed::tastytrade(Arc::new(client), &self.venue_account, streamer, dxlink, symbols).await
            }
        }
    }
}

async fn binance_feed(
    credentials: venues::binance::Credentials,
    production: bool,
    config: &VenuesConfig,
    symbols: &[String],
) -> Result<FeedParts, String> {
    let user = venues::binance::UserStreamConfig {
        production,
        url: config.binance_ws_api_url.clone(),
        ..venues::binance::UserStreamConfig::default()
    };
    let market = venues::binance::MarketStreamConfig {
        production,
        url: config.binance_stream_url.clone(),
        ..venues::binance::MarketStreamConfig::default()
    };
    venues::live::feed::binance(Arc::new(credentials), user, market, symbols).await
}

fn tasty_client(
    client_id: &str,
    client_secret: &str,
    refresh_token: &str,
    production: bool,
    config: &VenuesConfig,
) -> Result<venues::tastytrade::TastyClient, String> {
    let credentials = venues::tastytrade::OAuthCredentials::new(client_secret, refresh_token)
        .map_err(|e| format!("the TastyTrade credential: {e}"))?
        .with_client_id(client_id);
    let client_config = venues::tastytrade::TastyConfig {
        production,
        base_url: config.tastytrade_api_url.clone(),
        ..venues::tastytrade::TastyConfig::default()
    };
    venues::tastytrade::TastyClient::new(client_config, credentials).map_err(|e| format!("TastyTrade client: {e}"))
}

fn status_of(s: LiveStatus) -> VenueOrderStatus {
    match s {
        LiveStatus::Open => VenueOrderStatus::Open,
        LiveStatus::Filled => VenueOrderStatus::Filled,
        LiveStatus::Cancelled => VenueOrderStatus::Cancelled,
        LiveStatus::Rejected => VenueOrderStatus::Rejected,
        LiveStatus::Expired => VenueOrderStatus::Expired,
        LiveStatus::Absent => VenueOrderStatus::Absent,
    }
}

fn money_as_quantity(m: Money) -> Option<Quantity> {
    i64::try_from(m.raw()).ok().map(Quantity::from_raw)
}

/// A venue fill's fee in the instrument's quote currency, or, when the venue
/// charged it in the traded asset itself, what it took of that asset (the
/// position is smaller by it; no fee in the quote currency then, or the
/// commission would count twice).
fn fee_of(fill: &LiveFill, instrument: &Instrument) -> (Money, Option<Quantity>) {
    if fill.fee_currency == instrument.quote_currency {
        return (fill.fee, None);
    }
    if fill.fee_currency == instrument.base_currency
        && let Some(taken) = money_as_quantity(fill.fee)
    {
        return (Money::ZERO, Some(taken));
    }
    tracing::warn!(
        trade = fill.trade_id,
        fee = %fill.fee,
        currency = %fill.fee_currency,
        "a commission in a third currency is not converted: recorded as zero"
    );
    (Money::ZERO, None)
}

/// The per-account task that talks to the venue (see the module docs).
pub struct VenueTask {
    pub account: AccountId,
    pub handle: AccountHandle,
    pub venue: Result<Arc<dyn LiveVenue>, String>,
    pub symbols: Vec<LiveSymbol>,
    pub store: Store,
    pub clock: Clock,
    pub settle_delay: Duration,
    pub reconcile_every: Option<Duration>,
    pub status: Arc<Mutex<VenueStatus>>,
    /// Opens the live updates; `None` when the venue could not be set up.
    pub feed: Option<FeedSource>,
    pub market: LiveMarket,
    /// Candles of each symbol, built from the venue's quotes (what bots and
    /// charts read).
    pub aggregators: Mutex<Vec<CandleAggregator>>,
    /// Orders whose placement this task has attempted, or that were open
    /// when it started (they may have been sent before a restart). An open
    /// order not in here is still queued behind the job at hand: it is not
    /// at the venue because it was not sent yet, so reconciliation leaves
    /// it alone (otherwise it would look absent and be rejected, then be
    /// placed anyway).
    pub sent: Mutex<std::collections::HashSet<OrderId>>,
}

/// Where a live account's market data goes besides its own marks: the
/// latest quotes (bots size orders with them) and closed candles (bots
/// act on them; they are stored like the paper market's).
#[derive(Debug, Clone)]
pub struct LiveMarket {
    pub latest: Arc<RwLock<HashMap<InstrumentId, model::Quote>>>,
    pub candles: tokio::sync::broadcast::Sender<Candle>,
}

/// How long to wait for more account changes before reconciling a burst once.
const CHANGE_SETTLE: Duration = Duration::from_millis(50);
/// How often a stopped or unopened feed is tried again.
const FEED_RETRY: Duration = Duration::from_secs(30);

impl VenueTask {
    /// Runs until the account stops: a reconciliation first, then jobs in
    /// order, and a reconciliation on every timer tick.
    pub async fn run(self, mut jobs: mpsc::UnboundedReceiver<VenueJob>) {
        let mut feed_retry = tokio::time::interval(FEED_RETRY);
        feed_retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let every = self.reconcile_every.unwrap_or(Duration::from_secs(86_400 * 365));
        let mut candle_clock = tokio::time::interval(Duration::from_secs(1));
        candle_clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut timer = tokio::time::interval(every);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        timer.tick().await;
        // Streams first, so nothing that happens during the first
        // reconciliation goes unnoticed.
        feed_retry.tick().await;
        let mut feed = self.open_feed().await;
        match self.handle.read_live(|s| s.open_orders.iter().copied().collect::<Vec<_>>()).await {
            Ok(open) => self.sent.lock().unwrap_or_else(PoisonError::into_inner).extend(open),
            Err(e) => tracing::error!(account = self.account, error = %e, "open orders not read at start"),
        }
        self.pass_logged("start").await;
        loop {
            tokio::select! {
                job = jobs.recv() => match job {
                    None => break,
                    Some(VenueJob::Requests { after_seq, requests }) => {
                        if self.handle.durable_through(after_seq).await.is_err() {
                            tracing::error!(account = self.account, "journal not durable: nothing sent to the venue");
                            break;
                        }
                        for request in requests {
                            self.request(request).await;
                        }
                    }
                    Some(VenueJob::Reconcile { reason, reply }) => {
                        let result = self.pass(reason).await;
                        self.note_result(&result);
                        if let Some(reply) = reply {
                            let _ = reply.send(result);
                        }
                    }
                    Some(VenueJob::Stop) => break,
                },
                event = next_event(&mut feed) => match event {
                    Some(event) => self.on_feed(event, &mut feed).await,
                    None => {
                        tracing::warn!(account = self.account, "live updates ended; reconnecting later");
                        feed = None;
                    }
                },
                _ = timer.tick(), if self.reconcile_every.is_some() => self.pass_logged("timer").await,
                _ = candle_clock.tick() => self.flush_candles().await,
                _ = feed_retry.tick(), if feed.is_none() && self.feed.is_some() => {
                    feed = self.open_feed().await;
                    if feed.is_some() {
                        // Whatever happened while there was no feed.
                        self.pass_logged("feed opened").await;
                    }
                }
            }
        }
    }

    async fn open_feed(&self) -> Option<FeedParts> {
        let source = self.feed.as_ref()?;
        let symbols: Vec<String> = self.symbols.iter().map(|s| s.venue_symbol.clone()).collect();
        match source.open(&symbols).await {
            Ok(parts) => {
                tracing::info!(account = self.account, "live updates connected");
                Some(parts)
            }
            Err(e) => {
                tracing::warn!(account = self.account, error = %e, "live updates unavailable; reconciling on the timer");
                self.set_error(Some(format!("live updates unavailable: {e}")));
                None
            }
        }
    }

    async fn on_feed(&self, event: FeedEvent, feed: &mut Option<FeedParts>) {
        match event {
            FeedEvent::Quote { symbol, bid, bid_size, ask, ask_size } => {
                self.quote(&symbol, bid, bid_size, ask, ask_size).await;
            }
            FeedEvent::AccountChanged => {
                // A burst of changes (new, trade, balance) costs one pass.
                tokio::time::sleep(CHANGE_SETTLE).await;
                if let Some((_, events)) = feed.as_mut() {
                    while let Ok(more) = events.try_recv() {
                        if let FeedEvent::Quote { symbol, bid, bid_size, ask, ask_size } = more {
                            self.quote(&symbol, bid, bid_size, ask, ask_size).await;
                        }
                    }
                }
                self.pass_logged("stream").await;
            }
            FeedEvent::Reconnected => self.pass_logged("reconnect").await,
            FeedEvent::Stopped(why) => {
                tracing::error!(account = self.account, reason = %why, "live updates stopped");
                self.set_error(Some(format!("live updates stopped: {why}")));
                *feed = None;
            }
        }
    }

    async fn quote(&self, symbol: &str, bid: model::Price, bid_size: Quantity, ask: model::Price, ask_size: Quantity) {
        let Some(s) = self.symbols.iter().find(|s| s.venue_symbol == symbol) else { return };
        if bid > ask || !bid.is_positive() {
            return;
        }
        let quote = model::Quote { instrument: s.instrument.id, ts: self.now(), bid, bid_size, ask, ask_size };
        self.handle.quote(quote);
        if let Ok(mut latest) = self.market.latest.write() {
            latest.insert(quote.instrument, quote);
        }
        let mut closed = Vec::new();
        {
            let mut aggregators = self.aggregators.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(agg) = aggregators.iter_mut().find(|a| a.instrument() == quote.instrument) {
                agg.on_mid(quote.ts, quote.mid(), &mut closed);
            }
        }
        self.publish_candles(closed).await;
    }

    /// Closes the candles whose time is up, quotes or not.
    async fn flush_candles(&self) {
        let now = self.now();
        let mut closed = Vec::new();
        for agg in self.aggregators.lock().unwrap_or_else(PoisonError::into_inner).iter_mut() {
            agg.flush(now, &mut closed);
        }
        self.publish_candles(closed).await;
    }

    /// Stores closed candles, then announces them (as the paper market
    /// does, so what a bot acted on is there when it restarts).
    async fn publish_candles(&self, closed: Vec<Candle>) {
        if closed.is_empty() {
            return;
        }
        let records: Vec<store::CandleRecord> = closed.iter().map(crate::feed::record).collect();
        match self.store.save_candles(&records).await {
            Ok(()) => {
                for candle in closed {
                    let _ = self.market.candles.send(candle);
                }
            }
            Err(e) => tracing::warn!(account = self.account, error = %e, "candles not saved"),
        }
    }

    fn now(&self) -> Timestamp {
        (self.clock)()
    }

    fn venue(&self) -> Option<&Arc<dyn LiveVenue>> {
        self.venue.as_ref().ok()
    }

    fn symbol(&self, instrument: InstrumentId) -> Option<&LiveSymbol> {
        self.symbols.iter().find(|s| s.instrument.id == instrument)
    }

    fn set_error(&self, error: Option<String>) {
        self.status.lock().unwrap_or_else(PoisonError::into_inner).last_error = error;
    }

    fn note_result(&self, result: &Result<PassSummary, String>) {
        if let Err(e) = result {
            tracing::warn!(account = self.account, error = %e, "reconciliation failed; retried on the next tick");
            self.set_error(Some(e.clone()));
        }
    }

    async fn pass_logged(&self, reason: &'static str) {
        let result = self.pass(reason).await;
        self.note_result(&result);
    }

    async fn report(&self, reports: Vec<ExecutionReport>) {
        if reports.is_empty() {
            return;
        }
        if let Err(e) = self.handle.apply_reports(reports).await {
            tracing::error!(account = self.account, error = %e, "venue reports not applied");
        }
    }

    async fn request(&self, request: VenueRequest) {
        match request {
            VenueRequest::Place(order) => self.place(&order).await,
            VenueRequest::Cancel { order_id, instrument } => self.cancel(order_id, instrument).await,
        }
    }

    async fn place(&self, order: &Order) {
        let reject = |reason| vec![ExecutionReport::Rejected { order_id: order.id, reason }];
        let (Some(venue), Some(symbol)) = (self.venue(), self.symbol(order.instrument)) else {
            self.report(reject(RejectReason::UnknownInstrument)).await;
            return;
        };
        self.sent.lock().unwrap_or_else(PoisonError::into_inner).insert(order.id);
        match venue.place(order, &symbol.venue_symbol).await {
            Ok(PlaceResult::Placed { status, fills, .. }) => {
                let mut reports = Vec::new();
                if status != LiveStatus::Rejected {
                    reports.push(ExecutionReport::Accepted { order_id: order.id });
                }
                for fill in &fills {
                    reports.extend(Self::fill_reports(order.id, &symbol.instrument, fill));
                }
                match status {
                    LiveStatus::Cancelled => reports.push(ExecutionReport::Cancelled { order_id: order.id }),
                    LiveStatus::Expired => reports.push(ExecutionReport::Expired { order_id: order.id }),
                    LiveStatus::Rejected => reports.extend(reject(RejectReason::VenueRejected)),
                    LiveStatus::Open | LiveStatus::Filled | LiveStatus::Absent => {}
                }
                self.set_error(None);
                self.report(reports).await;
            }
            Ok(PlaceResult::Rejected { reason, code }) => {
                tracing::info!(account = self.account, order = %order.id, %reason, ?code, "the venue rejected an order");
                self.set_error(Some(format!("order {} rejected by the venue: {reason}", order.client_order_id)));
                // Binance's -2010 for a LIMIT_MAKER that would cross.
                let takes = order.post_only && reason.contains("immediately match");
                self.report(reject(if takes { RejectReason::WouldTakeLiquidity } else { RejectReason::VenueRejected }))
                    .await;
            }
            Ok(PlaceResult::StatusUnknown { cause }) => {
                tracing::warn!(account = self.account, order = %order.id, %cause, "placement outcome unknown; settling");
                self.settle(order, &symbol.venue_symbol).await;
            }
            Err(e) => {
                tracing::warn!(account = self.account, order = %order.id, error = %e, "order not sent");
                self.set_error(Some(format!("order {} not sent: {e}", order.client_order_id)));
                self.report(reject(RejectReason::VenueRejected)).await;
            }
        }
    }

    /// Looks up a placement of unknown outcome; never sends it again.
    async fn settle(&self, order: &Order, venue_symbol: &str) {
        let Some(venue) = self.venue() else { return };
        for attempt in 0..SETTLE_ATTEMPTS {
            tokio::time::sleep(self.settle_delay * (attempt + 1)).await;
            match venue.settle(&order.client_order_id, venue_symbol).await {
                Ok(Settled::Found(_)) => {
                    // It exists: the reconciliation brings its
                    // acknowledgement, fills and final state at once.
                    self.pass_logged("settled").await;
                    return;
                }
                Ok(Settled::Absent) => {
                    tracing::info!(account = self.account, order = %order.id, "unknown placement not at the venue: rejected");
                    let report = ExecutionReport::Rejected { order_id: order.id, reason: RejectReason::VenueRejected };
                    self.report(vec![report]).await;
                    return;
                }
                Err(e) => {
                    tracing::warn!(account = self.account, order = %order.id, error = %e, "settling failed; retrying");
                    self.set_error(Some(format!("order {} outcome unknown: {e}", order.client_order_id)));
                }
            }
        }
        tracing::warn!(account = self.account, order = %order.id, "still unknown; left to the next reconciliation");
    }

    async fn cancel(&self, order_id: OrderId, instrument: InstrumentId) {
        let cancel_rejected = vec![ExecutionReport::CancelRejected { order_id }];
        let client_id =
            self.handle.read_live(move |s| s.orders.get(&order_id).map(|o| o.client_order_id.clone())).await;
        let (Some(venue), Some(symbol), Ok(Some(client_id))) = (self.venue(), self.symbol(instrument), client_id)
        else {
            self.report(cancel_rejected).await;
            return;
        };
        let closed = |state: &LiveOrderState| match state.status {
            LiveStatus::Cancelled => Some(vec![ExecutionReport::Cancelled { order_id }]),
            LiveStatus::Expired => Some(vec![ExecutionReport::Expired { order_id }]),
            // Fills (and anything else) come with a reconciliation.
            LiveStatus::Filled | LiveStatus::Rejected | LiveStatus::Absent | LiveStatus::Open => None,
        };
        match venue.cancel(&client_id, &symbol.venue_symbol).await {
            Ok(CancelResult::Cancelled(state) | CancelResult::AlreadyClosed(state)) => {
                self.set_error(None);
                match closed(&state) {
                    Some(reports) if state.filled_quantity == self.filled(order_id).await => {
                        self.report(reports).await;
                    }
                    // A pending cancel (TastyTrade) is confirmed by the
                    // next reconciliation; fills first, through one now.
                    _ if state.status == LiveStatus::Open => {}
                    _ => self.pass_logged("cancel").await,
                }
            }
            Ok(CancelResult::StatusUnknown { cause }) => {
                tracing::warn!(account = self.account, order = %order_id, %cause, "cancel outcome unknown");
                tokio::time::sleep(self.settle_delay).await;
                self.pass_logged("cancel unknown").await;
            }
            Err(e) => {
                tracing::warn!(account = self.account, order = %order_id, error = %e, "cancel refused");
                self.set_error(Some(format!("cancel of {client_id} failed: {e}")));
                self.report(cancel_rejected).await;
            }
        }
    }

    async fn filled(&self, order_id: OrderId) -> Quantity {
        self.handle
            .read_live(move |s| s.orders.get(&order_id).map_or(Quantity::ZERO, |o| o.filled_quantity))
            .await
            .unwrap_or(Quantity::ZERO)
    }

    /// A fill as reports: the fill, then the part of the traded asset the
    /// venue kept as commission, if any (applied in the same commit).
    fn fill_reports(order_id: OrderId, instrument: &Instrument, fill: &LiveFill) -> Vec<ExecutionReport> {
        let (fee, taken) = fee_of(fill, instrument);
        let mut reports = vec![ExecutionReport::Filled {
            order_id,
            trade_id: fill.trade_id,
            quantity: fill.quantity,
            price: fill.price,
            fee,
            liquidity: fill.liquidity.unwrap_or(Liquidity::Taker),
        }];
        if let Some(quantity) = taken {
            reports.push(ExecutionReport::AssetFee { order_id, trade_id: fill.trade_id, quantity });
        }
        reports
    }

    /// One reconciliation (see the module docs).
    async fn pass(&self, reason: &'static str) -> Result<PassSummary, String> {
        let venue = self.venue.as_ref().map_err(Clone::clone)?;
        let started = self.now();
        let mut state = self.handle.state().await.map_err(|e| e.to_string())?;
        {
            // Orders still queued for placement are not the venue's business
            // yet; closed ones need no remembering (placements happen in this
            // task, so none is sent while a pass runs).
            let mut sent = self.sent.lock().unwrap_or_else(PoisonError::into_inner);
            sent.retain(|id| state.open_orders.contains(id));
            // An unanswered order sent moments ago (before a restart, say)
            // may still be on its way: give it the settle delay before
            // taking its absence for a refusal.
            let settling = i64::try_from(self.settle_delay.as_nanos()).unwrap_or(i64::MAX);
            let young = |id: &OrderId| {
                state.orders.get(id).is_some_and(|o| {
                    o.status == model::OrderStatus::New
                        && started.as_nanos().saturating_sub(o.ts_created.as_nanos()) < settling
                })
            };
            let judged: Vec<OrderId> =
                state.open_orders.iter().copied().filter(|id| sent.contains(id) && !young(id)).collect();
            state.open_orders = judged.into_iter().collect();
        }
        let row = self
            .store
            .live_account(self.account)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the live account is gone")?;
        let by_venue_symbol: HashMap<&str, &LiveSymbol> =
            self.symbols.iter().map(|s| (s.venue_symbol.as_str(), s)).collect();
        let ours: Vec<(ClientOrderId, String)> = state
            .open_orders
            .iter()
            .filter_map(|id| state.orders.get(id))
            .filter_map(|o| self.symbol(o.instrument).map(|s| (o.client_order_id.clone(), s.venue_symbol.clone())))
            .collect();
        let symbols: Vec<String> = self.symbols.iter().map(|s| s.venue_symbol.clone()).collect();
        let since = Timestamp::from_nanos(row.fills_since.as_nanos().saturating_sub(FILLS_OVERLAP));
        let snapshot = venue.snapshot(&ours, &symbols, since).await.map_err(|e| e.to_string())?;

        let mut venue_snapshot = VenueSnapshot::default();
        for order in &snapshot.orders {
            match &order.client_order_id {
                Some(id) => venue_snapshot.orders.push(VenueOrder {
                    client_order_id: id.clone(),
                    status: status_of(order.status),
                    filled_quantity: order.filled_quantity,
                }),
                None if order.status == LiveStatus::Open => venue_snapshot.foreign_open_orders.push(order.describe()),
                None => {}
            }
        }
        let mut foreign_fills = Vec::new();
        for fill in &snapshot.fills {
            let order = fill.client_order_id.as_ref().and_then(|c| state.client_order_ids.get(c).copied());
            let Some(symbol) = by_venue_symbol.get(fill.symbol.as_str()) else { continue };
            let (Some(client_order_id), Some(order_id)) = (fill.client_order_id.clone(), order) else {
                foreign_fills.push(format!(
                    "a fill ({} trade {}) of an order tradecore did not place ({})",
                    fill.symbol, fill.trade_id, fill.venue_order_id
                ));
                continue;
            };
            if state.seen_trades.contains(&(order_id, fill.trade_id)) {
                continue;
            }
            let (fee, taken) = fee_of(fill, &symbol.instrument);
            venue_snapshot.fills.push(VenueFill {
                client_order_id,
                trade_id: fill.trade_id,
                quantity: fill.quantity,
                price: fill.price,
                fee,
                liquidity: fill.liquidity.unwrap_or(Liquidity::Taker),
                asset_fee: taken.unwrap_or(Quantity::ZERO),
            });
        }
        let adjustments = self.store.position_adjustments(self.account).await.map_err(|e| e.to_string())?;
        for (venue_symbol, quantity) in &snapshot.positions {
            let Some(symbol) = by_venue_symbol.get(venue_symbol.as_str()) else { continue };
            let id = symbol.instrument.id;
            let known = adjustments.iter().find(|(i, _)| *i == id).map_or(Quantity::ZERO, |(_, q)| *q);
            venue_snapshot.positions.push((id, *quantity - known));
        }

        let now = self.now();
        let result = engine::reconcile::reconcile(&state, &venue_snapshot, now);
        let reports = result.reports.len();
        self.report(result.reports).await;
        let mut differences: Vec<String> = result.differences.iter().map(|d| self.describe(d)).collect();
        differences.extend(foreign_fills);
        let cash_adjusted = self.sync_cash(&snapshot.balances).await?;
        if !differences.is_empty() {
            self.restrict(reason, &differences, &result.differences).await?;
        }
        self.store.set_live_fills_since(self.account, started).await.map_err(|e| e.to_string())?;
        {
            let mut status = self.status.lock().unwrap_or_else(PoisonError::into_inner);
            status.last_reconciled = Some(now);
            status.last_error = None;
            status.differences.clone_from(&differences);
            status.balances = snapshot
                .balances
                .iter()
                .map(|b| BalanceView { currency: b.currency.clone(), total: b.total, available: b.available })
                .collect();
            status.positions = snapshot
                .positions
                .iter()
                .map(|(symbol, quantity)| VenuePosition { symbol: symbol.clone(), quantity: *quantity })
                .collect();
            status.corrections += reports as u64;
        }
        if reports > 0 {
            tracing::info!(account = self.account, reason, reports, "reconciliation corrected the account");
        }
        Ok(PassSummary { reports, differences, cash_adjusted })
    }

    fn describe(&self, difference: &Difference) -> String {
        let symbol = |id: InstrumentId| self.symbol(id).map_or_else(|| id.to_string(), |s| s.instrument.symbol.clone());
        match difference {
            Difference::ForeignOrder { description } => format!("an open order tradecore did not place: {description}"),
            Difference::UnknownFill { client_order_id, trade_id } => {
                format!("a fill (trade {trade_id}) of unknown order {client_order_id}")
            }
            Difference::MissingAtVenue { order_id } => format!("order {order_id} is open here but not at the venue"),
            Difference::NotReported { order_id } => format!("the venue said nothing about open order {order_id}"),
            Difference::FilledQuantity { order_id, ours, venue } => {
                format!("order {order_id}: {ours} filled here, {venue} at the venue")
            }
            Difference::Status { order_id, ours, venue } => {
                format!("order {order_id} is {ours} here but {venue:?} at the venue")
            }
            Difference::Refused { order_id, reason } => {
                format!("a correction of order {order_id} was refused: {reason}")
            }
            Difference::Position { instrument, ours, venue } => {
                format!("position in {}: {ours} here, {venue} at the venue", symbol(*instrument))
            }
        }
    }

    /// Moves the account's cash in each quote currency it trades to what
    /// the venue holds, with a journaled adjustment (deposits, withdrawals
    /// and fees in other assets happen at the venue).
    async fn sync_cash(&self, balances: &[venues::live::LiveBalance]) -> Result<Vec<(String, Money)>, String> {
        let currencies: std::collections::BTreeSet<Currency> =
            self.symbols.iter().map(|s| s.instrument.quote_currency).collect();
        let ours = self.handle.read_live(|s| s.balances.clone()).await.map_err(|e| e.to_string())?;
        let mut adjusted = Vec::new();
        for currency in currencies {
            let venue = balances.iter().find(|b| b.currency == currency.as_str()).map_or(Money::ZERO, |b| b.total);
            let here = ours.get(&currency).copied().unwrap_or(Money::ZERO);
            let amount = venue - here;
            if amount.is_zero() {
                continue;
            }
            self.handle.command(Command::AdjustCash { currency, amount }).await.map_err(|e| e.to_string())?;
            tracing::info!(account = self.account, %currency, %amount, "cash moved to the venue's balance");
            adjusted.push((currency.to_string(), amount));
        }
        Ok(adjusted)
    }

    /// Alerts and makes the account close-only.
    async fn restrict(&self, reason: &str, texts: &[String], differences: &[Difference]) -> Result<(), String> {
        for d in differences {
            counter!("tradecore_reconcile_differences_total", "kind" => kind_of(d)).increment(1);
        }
        tracing::error!(
            account = self.account,
            reason,
            differences = ?texts,
            "live reconciliation found differences it cannot explain: the account is now close-only"
        );
        let state = self.handle.read_live(|s| s.account_state).await.map_err(|e| e.to_string())?;
        if state == TradingState::Active {
            self.handle
                .command(Command::SetTradingState { scope: SwitchScope::Account, state: TradingState::Reducing })
                .await
                .map_err(|e| e.to_string())?;
        }
        let audit = AuditEntry::new(self.now(), None, "reconcile.close_only", None)
            .target(self.account.to_string())
            .detail(serde_json::json!({ "venue": true, "reason": reason, "differences": texts }));
        self.store.record_audit(&audit).await.map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// The next feed event, or never when there is no feed.
async fn next_event(feed: &mut Option<FeedParts>) -> Option<FeedEvent> {
    match feed {
        Some((_, events)) => events.recv().await,
        None => std::future::pending().await,
    }
}

fn kind_of(d: &Difference) -> &'static str {
    match d {
        Difference::ForeignOrder { .. } => "foreign_order",
        Difference::UnknownFill { .. } => "unknown_fill",
        Difference::MissingAtVenue { .. } => "missing_at_venue",
        Difference::NotReported { .. } => "not_reported",
        Difference::FilledQuantity { .. } => "filled_quantity",
        Difference::Status { .. } => "status",
        Difference::Refused { .. } => "refused",
        Difference::Position { .. } => "position",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn btcusdt() -> Instrument {
        let mut i = Instrument::simple(7, "BTCUSDT");
        i.base_currency = Currency::parse("BTC").unwrap();
        i.quote_currency = Currency::parse("USDT").unwrap();
        i
    }

    fn fill(fee: &str, currency: &str) -> LiveFill {
        LiveFill {
            client_order_id: None,
            venue_order_id: "1".into(),
            symbol: "BTCUSDT".into(),
            trade_id: 9,
            quantity: Quantity::parse("0.01").unwrap(),
            price: model::Price::parse("50000").unwrap(),
            fee: Money::parse(fee).unwrap(),
            fee_currency: Currency::parse(currency).unwrap(),
            liquidity: None,
            time: None,
        }
    }

    #[test]
    fn commissions_are_booked_in_the_quote_currency() {
        let i = btcusdt();
        assert_eq!(fee_of(&fill("0.6", "USDT"), &i), (Money::parse("0.6").unwrap(), None));
        // In the base asset: taken from the position, not from cash.
        assert_eq!(fee_of(&fill("0.00001", "BTC"), &i), (Money::ZERO, Some(Quantity::parse("0.00001").unwrap())));
        // A third asset (BNB) has no price here: booked as zero.
        assert_eq!(fee_of(&fill("0.002", "BNB"), &i), (Money::ZERO, None));
    }

    #[test]
    fn live_instrument_ids_are_apart_from_paper_ones_and_per_account() {
        assert_eq!(instrument_id(1, 0).unwrap(), InstrumentId(1_000_000_100));
        assert_eq!(instrument_id(1, 99).unwrap(), InstrumentId(1_000_000_199));
        assert_eq!(instrument_id(2, 0).unwrap(), InstrumentId(1_000_000_200));
        assert!(instrument_id(1, MAX_SYMBOLS).is_err());
        assert!(instrument_id(40_000_000, 0).is_err(), "beyond u32: refused, never wrapped");
    }

    #[test]
    fn a_live_account_trades_only_when_reachable_confirmed_and_allowed() {
        let row = |confirmed: bool, environment: &str| LiveAccountRow {
            account_id: 1,
            owner: Some(1),
            credential_id: 1,
            venue: "binance".into(),
            environment: environment.into(),
            venue_account: String::new(),
            symbols: vec![],
            confirmed: confirmed.then(|| Timestamp::from_nanos(1)),
            fills_since: Timestamp::from_nanos(0),
            created: Timestamp::from_nanos(0),
        };
        assert!(refusal(&row(true, "testnet"), Ok(()), false).is_none());
        assert!(refusal(&row(false, "testnet"), Ok(()), true).unwrap().contains("confirm live trading"));
        assert!(refusal(&row(true, "production"), Ok(()), false).unwrap().contains("trading.live_enabled"));
        assert!(refusal(&row(true, "production"), Ok(()), true).is_none());
        assert!(refusal(&row(true, "testnet"), Err("its credential was removed"), true).unwrap().contains("removed"));
    }
}
