//! The live runtime: the store and its group committer, one actor per
//! account, and the market data that feeds them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use engine::Command;
use model::{Currency, Instrument, Money, Quote, Timestamp};
use sim::candles::Candle;
use sim::quotes::QuoteFillConfig;
use store::{AccountId, GroupCommitter, Store, StoreError};
use tokio::sync::{RwLock, broadcast, watch};
use tokio::task::JoinHandle;

use crate::accounts::{self, AccountError, AccountHandle, Clock};

/// Group-commit writers on PostgreSQL (see `store::GroupCommitter`).
const POSTGRES_WRITERS: usize = 2;

/// How the runtime trades on paper.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Instruments every paper account can trade.
    pub instruments: Vec<Instrument>,
    pub fill: QuoteFillConfig,
    pub clock: Clock,
    /// Most commits in one transaction.
    pub max_batch: usize,
    /// Live venue accounts: the credentials key, endpoints, switches.
    pub live: crate::live::LiveOptions,
}

/// A published quote with its JSON, written once for every subscriber
/// (with thousands of WebSocket clients, formatting each quote's decimals
/// per client would cost more than everything else they do).
#[derive(Debug, Clone, PartialEq)]
pub struct QuoteFrame {
    pub quote: Quote,
    pub json: Box<str>,
}

/// A change to a bot (status, a decision, an order it placed), announced to
/// the `bots` WebSocket channel of the account's owner.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BotUpdate {
    pub bot: i64,
    pub account: AccountId,
    pub data: serde_json::Value,
}

/// Why the runtime could not start or do something.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error(
        "the database has migrations this server does not know or lacks some it needs: {0:?}; run `tradecore migrate`"
    )]
    Migrations(Vec<i64>),
}

/// Why a live account could not be opened (nothing was written).
#[derive(Debug, thiserror::Error)]
pub enum LiveOpenError {
    #[error("the server has no trading.credentials_key, so no linked credential can be read")]
    KeyMissing,
    #[error("the credential cannot be read: {0}")]
    Unreadable(String),
    /// The venue refused the credential or account, or could not be reached.
    #[error("{0}")]
    Venue(String),
    /// The venue does not list a symbol (or it cannot be traded here).
    #[error("{0}")]
    Symbols(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Account(#[from] AccountError),
}

/// A live account to open.
#[derive(Debug)]
pub struct NewLive<'a> {
    pub name: &'a str,
    pub owner: store::auth::UserId,
    pub credential: &'a store::venue_credentials::VenueCredentialRow,
    /// The venue's symbols to trade (`BTCUSDT`; `AAPL` or an OCC option symbol).
    pub symbols: &'a [String],
    /// The venue's account number (TastyTrade).
    pub venue_account: &'a str,
}

/// The running platform.
#[derive(Debug)]
pub struct Runtime {
    pub store: Store,
    committer: GroupCommitter,
    writer: std::sync::Mutex<Option<JoinHandle<()>>>,
    accounts: RwLock<HashMap<AccountId, AccountHandle>>,
    /// The live venue accounts among `accounts`.
    live: RwLock<HashMap<AccountId, crate::live::LiveAccount>>,
    options: RuntimeOptions,
    /// The latest quote of each instrument, for WebSocket subscribers: one
    /// channel per instrument, so a socket wakes only for what it follows,
    /// and latest-value-wins, which is the conflation slow clients get.
    quotes: HashMap<model::InstrumentId, watch::Sender<Option<Arc<QuoteFrame>>>>,
    candles: broadcast::Sender<Candle>,
    bot_updates: broadcast::Sender<Arc<BotUpdate>>,
    updates: accounts::Updates,
    latest: Arc<std::sync::RwLock<HashMap<model::InstrumentId, Quote>>>,
    /// The instruments of live accounts (each account has its own ids).
    live_instruments: std::sync::RwLock<HashMap<model::InstrumentId, Instrument>>,
    /// The global kill switch, applied to every account (and to new ones).
    global_state: RwLock<engine::TradingState>,
    /// The same, for WebSocket subscribers (the `trading` channel).
    global_watch: watch::Sender<engine::TradingState>,
    started: Instant,
}

impl Runtime {
    /// Starts on a migrated store: loads every account and starts its actor.
    pub async fn start(store: Store, options: RuntimeOptions) -> Result<Arc<Self>, RuntimeError> {
        let pending = store.pending_migrations().await?;
        if !pending.is_empty() {
            return Err(RuntimeError::Migrations(pending));
        }
        // PostgreSQL flushes concurrent commits together, so a few writers
        // overlap one batch's flush with the next batch's writes; SQLite
        // takes one writer at a time anyway.
        let writers = if store.backend() == "postgres" { POSTGRES_WRITERS } else { 1 };
        let (committer, writer) = GroupCommitter::start_with_writers(store.clone(), options.max_batch, 16_384, writers);
        let quotes = options.instruments.iter().map(|i| (i.id, watch::channel(None).0)).collect();
        let (candles, _) = broadcast::channel(1_024);
        let (bot_updates, _) = broadcast::channel(4_096);
        let (updates, _) = broadcast::channel(16_384);
        let runtime = Arc::new(Self {
            store: store.clone(),
            committer,
            writer: std::sync::Mutex::new(Some(writer)),
            accounts: RwLock::new(HashMap::new()),
            live: RwLock::new(HashMap::new()),
            options,
            quotes,
            candles,
            bot_updates,
            updates,
            latest: Arc::new(std::sync::RwLock::new(HashMap::new())),
            live_instruments: std::sync::RwLock::new(HashMap::new()),
            global_state: RwLock::new(engine::TradingState::Active),
            global_watch: watch::channel(engine::TradingState::Active).0,
            started: Instant::now(),
        });
        let owners: HashMap<AccountId, store::auth::UserId> = store.account_owners().await?.into_iter().collect();
        let live_rows: HashMap<AccountId, store::live_accounts::LiveAccountRow> =
            store.live_accounts().await?.into_iter().map(|r| (r.account_id, r)).collect();
        // Accounts load independently (snapshot, then the journal after it),
        // so as many load at once as there are cores; they are registered in
        // id order as before.
        let parallel = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        let permits = Arc::new(tokio::sync::Semaphore::new(parallel));
        let mut loading = Vec::new();
        for row in store.accounts().await? {
            let (runtime, permits, owner) = (Arc::clone(&runtime), Arc::clone(&permits), owners.get(&row.id).copied());
            let live = live_rows.get(&row.id).cloned();
            loading.push(tokio::spawn(async move {
                let _permit = permits.acquire_owned().await.map_err(|_| AccountError::Stopped)?;
                match live {
                    Some(live) => runtime.resume_live_account(live, row.base_currency).await,
                    None => runtime.spawn_account(row.id, row.base_currency, owner).await,
                }
            }));
        }
        for task in loading {
            // A task that panicked loaded nothing: the account is not running.
            let handle = task.await.map_err(|_| AccountError::Stopped)??;
            let id = handle.id;
            // Every account journals the global switch; any of them tells its state.
            let global = handle.read_live(|s| s.global_state).await?;
            *runtime.global_state.write().await = global;
            runtime.global_watch.send_replace(global);
            runtime.accounts.write().await.insert(id, handle);
        }
        Ok(runtime)
    }

    async fn spawn_account(
        &self,
        id: AccountId,
        currency: Currency,
        owner: Option<store::auth::UserId>,
    ) -> Result<AccountHandle, AccountError> {
        let mut handle = accounts::start(
            id,
            currency,
            self.store.clone(),
            self.committer.clone(),
            accounts::Backend::Paper(self.options.fill),
            self.options.clock,
            self.updates.clone(),
        )
        .await?;
        handle.owner = owner;
        Ok(handle)
    }

    /// Opens an account at a live venue through a linked credential: checks
    /// the credential and symbols with the venue first (nothing is written
    /// when that fails), then creates the account with the venue's
    /// instruments and cash. It trades only once its owner confirms.
    pub async fn open_live_account(
        &self,
        new: &NewLive<'_>,
        audit: &store::auth::AuditEntry<'_>,
    ) -> Result<AccountHandle, LiveOpenError> {
        let key = self.options.live.credentials_key.as_ref().ok_or(LiveOpenError::KeyMissing)?;
        let secret = crate::venue_credentials::open(key, new.credential)
            .map_err(|e| LiveOpenError::Unreadable(e.to_string()))?;
        let row = new.credential;
        let venue = crate::live::connect(&secret, &row.environment, new.venue_account, &self.options.live.venues)
            .map_err(LiveOpenError::Venue)?;
        let wanted: Vec<(model::InstrumentId, String)> = new
            .symbols
            .iter()
            .enumerate()
            .map(|(i, s)| (model::InstrumentId(u32::try_from(i).unwrap_or(u32::MAX)), s.clone()))
            .collect();
        // The credential and account first, so a bad one is not blamed on a symbol.
        let balances = venue.balances().await.map_err(|e| LiveOpenError::Venue(e.to_string()))?;
        let found = venue.instruments(&wanted).await.map_err(|e| LiveOpenError::Symbols(e.to_string()))?;
        let venue_symbols: Vec<String> = found.iter().map(|f| f.venue_symbol.clone()).collect();
        let positions = venue.positions(&venue_symbols).await.map_err(|e| LiveOpenError::Venue(e.to_string()))?;
        let base_currency = found
            .first()
            .map(|f| f.instrument.quote_currency)
            .ok_or_else(|| LiveOpenError::Symbols("no symbols: name at least one the account trades".to_string()))?;
        let symbols: Vec<(String, String)> =
            found.iter().map(|f| (f.instrument.symbol.clone(), f.venue_symbol.clone())).collect();
        let now = (self.options.clock)();
        let create = store::live_accounts::NewLiveAccount {
            name: new.name,
            base_currency,
            owner: new.owner,
            credential_id: row.id,
            venue: &row.venue,
            environment: &row.environment,
            venue_account: new.venue_account.trim(),
            symbols: &symbols,
            now,
        };
        let id = self.store.create_live_account(&create, audit).await?;
        let mut live_symbols = Vec::with_capacity(found.len());
        for (i, f) in found.into_iter().enumerate() {
            let mut instrument = f.instrument;
            instrument.id = crate::live::instrument_id(id, i).map_err(LiveOpenError::Venue)?;
            // What the venue held before tradecore: not ours to reconcile.
            if let Some((_, held)) = positions.iter().find(|(s, _)| *s == f.venue_symbol)
                && !held.is_zero()
            {
                self.store.add_position_adjustment(id, instrument.id, "link", *held).await?;
            }
            live_symbols.push(crate::live::LiveSymbol { instrument, venue_symbol: f.venue_symbol });
        }
        let live_row = self.store.live_account(id).await?.ok_or(LiveOpenError::Account(AccountError::Stopped))?;
        let feed = crate::live::FeedSource {
            secret,
            environment: row.environment.clone(),
            venue_account: new.venue_account.trim().to_string(),
            config: self.options.live.venues.clone(),
        };
        let (handle, task) = self.start_live(live_row, base_currency, Ok(venue), Some(feed)).await?;
        for symbol in &live_symbols {
            handle.command(Command::AddInstrument { instrument: symbol.instrument.clone() }).await?;
        }
        // The venue's cash in the quote currencies, so it can trade at once
        // (reconciliations keep it there).
        let currencies: std::collections::BTreeSet<Currency> =
            live_symbols.iter().map(|s| s.instrument.quote_currency).collect();
        for currency in currencies {
            let held = balances.iter().find(|b| b.currency == currency.as_str()).map_or(Money::ZERO, |b| b.total);
            if !held.is_zero() {
                handle.command(Command::AdjustCash { currency, amount: held }).await?;
            }
        }
        let global_guard = self.global_state.read().await;
        let global = *global_guard;
        if global != engine::TradingState::Active {
            handle.command(Command::SetTradingState { scope: engine::SwitchScope::Global, state: global }).await?;
        }
        self.accounts.write().await.insert(id, handle.clone());
        drop(global_guard);
        // The first reconciliation brings the venue's cash in.
        self.register_live_instruments(&live_symbols);
        task.start(live_symbols);
        Ok(handle)
    }

    fn register_live_instruments(&self, symbols: &[crate::live::LiveSymbol]) {
        if let Ok(mut known) = self.live_instruments.write() {
            for s in symbols {
                known.insert(s.instrument.id, s.instrument.clone());
            }
        }
    }

    /// An instrument by id: the paper market's or a live account's.
    #[must_use]
    pub fn instrument(&self, id: model::InstrumentId) -> Option<Instrument> {
        if let Some(i) = self.options.instruments.iter().find(|i| i.id == id) {
            return Some(i.clone());
        }
        self.live_instruments.read().ok().and_then(|known| known.get(&id).cloned())
    }

    /// Starts a live account found in the store.
    async fn resume_live_account(
        &self,
        row: store::live_accounts::LiveAccountRow,
        currency: Currency,
    ) -> Result<AccountHandle, AccountError> {
        let (venue, feed) = match self.live_venue(&row).await {
            Ok((venue, feed)) => (Ok(venue), Some(feed)),
            Err(why) => (Err(why), None),
        };
        let symbols = row.symbols.clone();
        let id = row.account_id;
        let (handle, task) = self.start_live(row, currency, venue, feed).await?;
        let books = handle.read_live(|s| s.books.iter().map(|b| b.instrument.clone()).collect::<Vec<_>>()).await?;
        let mut live_symbols = Vec::with_capacity(symbols.len());
        for (i, (_, venue_symbol)) in symbols.into_iter().enumerate() {
            let Ok(instrument_id) = crate::live::instrument_id(id, i) else { continue };
            if let Some(instrument) = books.iter().find(|b| b.id == instrument_id) {
                live_symbols.push(crate::live::LiveSymbol { instrument: instrument.clone(), venue_symbol });
            }
        }
        self.register_live_instruments(&live_symbols);
        task.start(live_symbols);
        Ok(handle)
    }

    /// The venue client of a stored live account, or why there is none.
    async fn live_venue(
        &self,
        row: &store::live_accounts::LiveAccountRow,
    ) -> Result<(Arc<dyn venues::live::LiveVenue>, crate::live::FeedSource), String> {
        let key = self.options.live.credentials_key.as_ref().ok_or("the server has no trading.credentials_key")?;
        let owner = row.owner.ok_or("the account has no owner")?;
        let credential = self
            .store
            .venue_credential(owner, row.credential_id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("its credential was removed")?;
        let secret = crate::venue_credentials::open(key, &credential).map_err(|e| e.to_string())?;
        let venue = crate::live::connect(&secret, &row.environment, &row.venue_account, &self.options.live.venues)?;
        let feed = crate::live::FeedSource {
            secret,
            environment: row.environment.clone(),
            venue_account: row.venue_account.clone(),
            config: self.options.live.venues.clone(),
        };
        Ok((venue, feed))
    }

    /// Starts a live account's actor; its venue task starts with
    /// [`PendingVenueTask::start`] once the instruments are known.
    async fn start_live(
        &self,
        row: store::live_accounts::LiveAccountRow,
        currency: Currency,
        venue: Result<Arc<dyn venues::live::LiveVenue>, String>,
        feed: Option<crate::live::FeedSource>,
    ) -> Result<(AccountHandle, PendingVenueTask), AccountError> {
        let id = row.account_id;
        let gate = Arc::new(crate::live::LiveGate::refusing(crate::live::refusal(
            &row,
            venue.as_ref().map(|_| ()).map_err(String::as_str),
            self.options.live.live_enabled,
        )));
        if let Err(why) = &venue {
            tracing::error!(account = id, error = %why, "live account cannot reach its venue; it will not trade");
        }
        let (jobs, job_queue) = tokio::sync::mpsc::unbounded_channel();
        let route = accounts::LiveRoute { jobs: jobs.clone(), gate: Arc::clone(&gate) };
        let mut handle = accounts::start(
            id,
            currency,
            self.store.clone(),
            self.committer.clone(),
            accounts::Backend::Live(route),
            self.options.clock,
            self.updates.clone(),
        )
        .await?;
        handle.owner = row.owner;
        let status = Arc::new(std::sync::Mutex::new(crate::live::VenueStatus::default()));
        let venue_ready = venue.as_ref().map(|_| ()).map_err(Clone::clone);
        let live = crate::live::LiveAccount { row, gate, status: Arc::clone(&status), jobs, venue_ready };
        self.live.write().await.insert(id, live);
        let reconcile_every = match self.options.live.venues.reconcile_seconds {
            0 => None,
            s => Some(std::time::Duration::from_secs(s)),
        };
        let task = crate::live::VenueTask {
            account: id,
            handle: handle.clone(),
            venue,
            symbols: Vec::new(),
            store: self.store.clone(),
            clock: self.options.clock,
            settle_delay: std::time::Duration::from_millis(self.options.live.venues.settle_delay_ms),
            reconcile_every,
            status,
            feed,
            market: crate::live::LiveMarket { latest: Arc::clone(&self.latest), candles: self.candles.clone() },
            aggregators: std::sync::Mutex::new(Vec::new()),
            sent: std::sync::Mutex::new(std::collections::HashSet::new()),
        };
        Ok((handle, PendingVenueTask { task, queue: job_queue }))
    }

    /// A live account, if `id` is one.
    pub async fn live_account(&self, id: AccountId) -> Option<crate::live::LiveAccount> {
        self.live.read().await.get(&id).cloned()
    }

    /// Records the owner's confirmation of live trading and lets the
    /// account send orders (unless live trading is off for production).
    /// `false` when it is not a live account of `owner`.
    pub async fn confirm_live_account(
        &self,
        id: AccountId,
        owner: store::auth::UserId,
        audit: &store::auth::AuditEntry<'_>,
    ) -> Result<bool, RuntimeError> {
        if !self.store.confirm_live_account(id, owner, (self.options.clock)(), audit).await? {
            return Ok(false);
        }
        let Some(row) = self.store.live_account(id).await? else { return Ok(false) };
        if let Some(live) = self.live.write().await.get_mut(&id) {
            let ready = live.venue_ready.as_ref().copied().map_err(String::as_str);
            live.gate.set(crate::live::refusal(&row, ready, self.options.live.live_enabled));
            live.row = row;
        }
        Ok(true)
    }

    /// Whether production live accounts may trade on this server.
    #[must_use]
    pub fn live_enabled(&self) -> bool {
        self.options.live.live_enabled
    }

    /// Whether linked credentials can be read here.
    #[must_use]
    pub fn has_credentials_key(&self) -> bool {
        self.options.live.credentials_key.is_some()
    }

    /// Creates a paper account with every paper instrument and `cash`,
    /// owned by `owner` (account and ownership written together).
    pub async fn open_paper_account(
        &self,
        name: &str,
        currency: Currency,
        cash: Money,
        owner: Option<store::auth::UserId>,
    ) -> Result<AccountHandle, RuntimeError> {
        let now = (self.options.clock)();
        let id = match owner {
            Some(user) => self.store.create_owned_account(name, currency, now, user).await?,
            None => self.store.create_account(name, currency, now).await?,
        };
        let handle = self.spawn_account(id, currency, owner).await?;
        for instrument in &self.options.instruments {
            handle.command(Command::AddInstrument { instrument: instrument.clone() }).await?;
        }
        let currencies: std::collections::BTreeSet<Currency> =
            self.options.instruments.iter().map(|i| i.quote_currency).chain(std::iter::once(currency)).collect();
        for c in currencies {
            handle.command(Command::AdjustCash { currency: c, amount: cash }).await?;
        }
        // Held until the account is registered, so a global switch flipped
        // meanwhile waits and then reaches this account too.
        let global_guard = self.global_state.read().await;
        let global = *global_guard;
        if global != engine::TradingState::Active {
            handle.command(Command::SetTradingState { scope: engine::SwitchScope::Global, state: global }).await?;
        }
        // Marks straight away, so a first market order has a price to be checked against.
        for quote in self.latest_quotes() {
            handle.quote(quote);
        }
        self.accounts.write().await.insert(id, handle.clone());
        drop(global_guard);
        Ok(handle)
    }

    /// The global kill switch.
    pub async fn global_state(&self) -> engine::TradingState {
        *self.global_state.read().await
    }

    /// Follows the global kill switch.
    pub fn watch_global_state(&self) -> watch::Receiver<engine::TradingState> {
        self.global_watch.subscribe()
    }

    /// Sets the global kill switch on every account, durably; returns how
    /// many accounts it reached. Accounts opened later start with it.
    pub async fn set_global_state(&self, state: engine::TradingState) -> Result<usize, RuntimeError> {
        // Held for the whole change so a concurrent account opening cannot miss it.
        let mut global = self.global_state.write().await;
        let handles: Vec<AccountHandle> = self.accounts.read().await.values().cloned().collect();
        for handle in &handles {
            handle.command(Command::SetTradingState { scope: engine::SwitchScope::Global, state }).await?;
        }
        *global = state;
        self.global_watch.send_replace(state);
        Ok(handles.len())
    }

    /// The name and own kill-switch state of each running account `user` owns.
    pub async fn account_states_of(&self, user: store::auth::UserId) -> Vec<(String, engine::TradingState)> {
        let rows = match self.store.owned_accounts(user).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, user, "could not list the user's accounts");
                return Vec::new();
            }
        };
        let mut states = Vec::with_capacity(rows.len());
        for row in rows {
            if let Some(handle) = self.account(row.id).await
                && let Ok(state) = handle.read_live(|s| s.account_state).await
            {
                states.push((row.name, state));
            }
        }
        states
    }

    /// Every account running here, by id.
    pub async fn account_handles(&self) -> Vec<AccountHandle> {
        let mut handles: Vec<AccountHandle> = self.accounts.read().await.values().cloned().collect();
        handles.sort_by_key(|h| h.id);
        handles
    }

    pub async fn account(&self, id: AccountId) -> Option<AccountHandle> {
        self.accounts.read().await.get(&id).cloned()
    }

    pub async fn account_count(&self) -> usize {
        self.accounts.read().await.len()
    }

    /// Publishes a quote: every account actor marks and fills against it,
    /// and subscribers (WebSocket clients) get it.
    pub async fn publish_quote(&self, quote: Quote) {
        if let Ok(mut latest) = self.latest.write() {
            latest.insert(quote.instrument, quote);
        }
        for handle in self.accounts.read().await.values() {
            handle.quote(quote);
        }
        if let Some(channel) = self.quotes.get(&quote.instrument)
            && channel.receiver_count() > 0
        {
            let json = serde_json::to_string(&quote).unwrap_or_default().into_boxed_str();
            channel.send_replace(Some(Arc::new(QuoteFrame { quote, json })));
        }
    }

    /// Records every account's equity at `at` (the equity history behind
    /// account charts). A failure is logged: the next round tries again.
    pub async fn snapshot_equity(&self, at: Timestamp) {
        let handles: Vec<AccountHandle> = self.accounts.read().await.values().cloned().collect();
        let mut rows = Vec::with_capacity(handles.len());
        for handle in handles {
            // Only the figure, not a copy of the whole state (every order ever placed).
            match handle.read_live(|s| (s.equity(), s.equity_by_currency())).await {
                Ok((equity, by_currency)) => {
                    rows.push(store::EquitySnapshot { account: handle.id, ts: at, equity, by_currency });
                }
                Err(e) => tracing::warn!(account = handle.id, error = %e, "equity not recorded"),
            }
        }
        if let Err(e) = self.store.save_equities(at, &rows).await {
            tracing::warn!(error = %e, accounts = rows.len(), "equity not recorded");
        }
    }

    /// The latest quote of one instrument.
    #[must_use]
    pub fn latest_quote(&self, instrument: model::InstrumentId) -> Option<Quote> {
        self.latest.read().ok().and_then(|l| l.get(&instrument).copied())
    }

    /// How paper orders fill (fees, slippage).
    #[must_use]
    pub fn fill_config(&self) -> QuoteFillConfig {
        self.options.fill
    }

    /// The latest quote of every instrument.
    #[must_use]
    pub fn latest_quotes(&self) -> Vec<Quote> {
        let mut quotes: Vec<Quote> = self.latest.read().map(|l| l.values().copied().collect()).unwrap_or_default();
        quotes.sort_by_key(|q| q.instrument);
        quotes
    }

    /// Announces a closed candle (already stored) to bots and subscribers.
    pub fn publish_candle(&self, candle: Candle) {
        let _ = self.candles.send(candle);
    }

    #[must_use]
    pub fn subscribe_candles(&self) -> broadcast::Receiver<Candle> {
        self.candles.subscribe()
    }

    pub fn publish_bot_update(&self, update: BotUpdate) {
        let _ = self.bot_updates.send(Arc::new(update));
    }

    #[must_use]
    pub fn subscribe_bot_updates(&self) -> broadcast::Receiver<Arc<BotUpdate>> {
        self.bot_updates.subscribe()
    }

    #[must_use]
    pub fn subscribe_quotes(
        &self,
        instrument: model::InstrumentId,
    ) -> Option<watch::Receiver<Option<Arc<QuoteFrame>>>> {
        self.quotes.get(&instrument).map(watch::Sender::subscribe)
    }

    /// Durable account events as they land, for every account.
    #[must_use]
    pub fn subscribe_updates(&self) -> broadcast::Receiver<std::sync::Arc<accounts::AccountUpdate>> {
        self.updates.subscribe()
    }

    #[must_use]
    pub fn instruments(&self) -> &[Instrument] {
        &self.options.instruments
    }

    /// A paper instrument by symbol, ignoring case.
    #[must_use]
    pub fn instrument_by_symbol(&self, symbol: &str) -> Option<&Instrument> {
        self.options.instruments.iter().find(|i| i.symbol.eq_ignore_ascii_case(symbol))
    }

    #[must_use]
    pub fn uptime_seconds(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    #[must_use]
    pub fn committer(&self) -> &GroupCommitter {
        &self.committer
    }

    /// The time now, from the runtime's clock.
    #[must_use]
    pub fn now(&self) -> Timestamp {
        (self.options.clock)()
    }

    /// Flushes every account's journal and stops the writer.
    pub async fn shutdown(&self) {
        for live in self.live.write().await.drain().map(|(_, l)| l) {
            live.stop();
        }
        let handles: Vec<AccountHandle> = self.accounts.write().await.drain().map(|(_, h)| h).collect();
        for handle in &handles {
            if let Err(e) = handle.flush().await {
                tracing::warn!(account = handle.id, error = %e, "flush at shutdown failed");
            }
        }
        drop(handles);
        // Every account's commits are durable now; the writer has nothing
        // left that anyone waits for.
        if let Some(writer) = self.writer.lock().ok().and_then(|mut w| w.take()) {
            writer.abort();
        }
    }
}

/// A live account's venue task, waiting for its symbols.
pub(crate) struct PendingVenueTask {
    task: crate::live::VenueTask,
    queue: tokio::sync::mpsc::UnboundedReceiver<crate::live::VenueJob>,
}

impl PendingVenueTask {
    fn start(mut self, symbols: Vec<crate::live::LiveSymbol>) {
        self.task.aggregators = std::sync::Mutex::new(
            symbols
                .iter()
                .map(|s| sim::candles::CandleAggregator::new(s.instrument.id, &sim::candles::Interval::ALL))
                .collect(),
        );
        self.task.symbols = symbols;
        tokio::spawn(self.task.run(self.queue));
    }
}
