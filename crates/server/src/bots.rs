//! Bots: a built-in strategy trading one instrument of one account on the
//! live feed's closed candles, with the same engine and strategy code as the
//! backtester.
//!
//! Each running bot is a task. On every closed candle of its instrument and
//! interval it shows the bar to the strategy (`on_bar`) with the account's
//! current state, sizes each intent at the latest quote exactly as the
//! backtester does ([`engine::sizing::resolve`]), and submits it to the
//! account actor, so every bot order passes the same risk checks and is
//! journaled like a manual one. Its orders carry client order ids
//! `bot{id}-{candle start in seconds}-{n}`: submitting them twice places them
//! once. As in a backtest, the strategy also sees its own orders' durable
//! fills and status changes; what it wants then gets ids from the journal
//! seq (`bot{id}-u{seq}-{n}`).
//!
//! State across restarts: a strategy's state is a function of the bars it
//! has seen, so every start replays the stored candles from the bot's anchor
//! (its first start minus `warmup_bars` candles) without acting on them; the
//! strategy ends up exactly where it was. The newest stored candle, if no
//! later one has closed yet, is acted on: if the bot already did so before a
//! restart, its client order ids make the orders duplicates, not new orders.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use engine::{Command, Intent, OrderRequest, Size, Sizing, Strategy, StrategyContext, Submission};
use model::{Bar, ClientOrderId, Instrument, Money, OrderType, Price, Quantity, Side, Timestamp};
use serde::Serialize;
use sim::candles::{Candle, Interval};
use store::auth::AuditEntry;
use store::bots::{BotChange, BotId, BotRow, BotStatus};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::accounts::{AccountError, AccountHandle};
use crate::runtime::{BotUpdate, Runtime};

/// The most stored candles a start replays (older ones are skipped).
pub const MAX_REPLAY: u32 = 100_000;
/// The most orders one candle may produce; more means a runaway strategy.
const MAX_ORDERS_PER_BAR: usize = 16;
/// How long an intent waits for a first quote of its instrument.
const QUOTE_WAIT: Duration = Duration::from_secs(3);

/// Why a bot cannot be created, started or stopped.
#[derive(Debug, thiserror::Error)]
pub enum BotError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("the bot's account is not running")]
    AccountNotRunning,
}

/// What a running bot has done since it started, for its status.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct BotActivity {
    /// False while stored candles are replayed.
    pub warmed_up: bool,
    /// Candles replayed at start.
    pub replayed_bars: u64,
    /// Live candles seen.
    pub bars: u64,
    pub last_bar: Option<Timestamp>,
    pub orders_placed: u64,
    pub orders_denied: u64,
    pub last_denial: Option<String>,
    /// Intents that came to less than one lot (or found no price).
    pub intents_skipped: u64,
    pub last_error: Option<String>,
}

type Activity = Arc<Mutex<BotActivity>>;

fn update_activity(activity: &Activity, change: impl FnOnce(&mut BotActivity)) {
    if let Ok(mut a) = activity.lock() {
        change(&mut a);
    }
}

struct Running {
    stop: watch::Sender<bool>,
    activity: Activity,
    task: JoinHandle<()>,
}

/// Every running bot of this server.
#[derive(Debug)]
pub struct Bots {
    runtime: Arc<Runtime>,
    running: tokio::sync::Mutex<HashMap<BotId, Running>>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running").field("finished", &self.task.is_finished()).finish_non_exhaustive()
    }
}

/// A bot's configuration, checked and built.
pub struct Prepared {
    pub strategy: Box<dyn Strategy>,
    pub sizing: Sizing,
    pub interval: Interval,
    pub instrument: Instrument,
}

/// Builds what a bot row describes, or says what is wrong with it.
pub fn prepare(runtime: &Runtime, bot: &BotRow) -> Result<Prepared, BotError> {
    let info = engine::strategies::find(&bot.strategy).map_err(BotError::Invalid)?;
    let given: Vec<(String, String)> = bot.params.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let (strategy, _) = info.build(&given).map_err(|e| BotError::Invalid(e.to_string()))?;
    let sizing: Sizing = bot.sizing.parse().map_err(BotError::Invalid)?;
    let interval: Interval = bot.interval.parse().map_err(|e| BotError::Invalid(format!("{e}")))?;
    let instrument = runtime
        .instrument(bot.instrument)
        .ok_or_else(|| BotError::Invalid(format!("instrument {} is not traded here", bot.instrument.0)))?;
    Ok(Prepared { strategy, sizing, interval, instrument })
}

impl Bots {
    #[must_use]
    pub fn new(runtime: Arc<Runtime>) -> Self {
        Self { runtime, running: tokio::sync::Mutex::new(HashMap::new()) }
    }

    /// Restarts every bot that was running when the server stopped. A bot
    /// that cannot start is marked failed with the reason.
    pub async fn resume(&self) -> Result<usize, BotError> {
        let bots = self.runtime.store.bots_with_status(BotStatus::Running).await?;
        let mut resumed = 0;
        for bot in bots {
            match self.launch(&bot).await {
                Ok(()) => resumed += 1,
                Err(e) => {
                    tracing::warn!(bot = bot.id, error = %e, "bot not resumed");
                    let error = e.to_string();
                    let change = BotChange::Fail { now: self.runtime.now(), error: &error };
                    self.runtime.store.change_bot(bot.id, &change, None).await?;
                }
            }
        }
        Ok(resumed)
    }

    /// Starts a bot (recording it as running) and returns it as stored.
    pub async fn start(&self, bot: &BotRow, audit: &AuditEntry<'_>) -> Result<BotRow, BotError> {
        let now = self.runtime.now();
        let prepared = prepare(&self.runtime, bot)?;
        let anchor = Timestamp::from_nanos(
            prepared.interval.start_of(now).as_nanos()
                - i64::from(bot.warmup_bars).saturating_mul(prepared.interval.as_nanos()),
        );
        let mut running = self.running.lock().await;
        if running.get(&bot.id).is_some_and(|r| !r.task.is_finished()) {
            return Err(BotError::Invalid("the bot is already running".into()));
        }
        let Some(stored) =
            self.runtime.store.change_bot(bot.id, &BotChange::Start { now, anchor }, Some(audit)).await?
        else {
            return Err(BotError::Invalid("the bot no longer exists".into()));
        };
        match self.spawn(&stored, prepared).await {
            Ok(r) => {
                running.insert(bot.id, r);
                Ok(stored)
            }
            Err(e) => {
                let error = e.to_string();
                self.runtime.store.change_bot(bot.id, &BotChange::Fail { now, error: &error }, None).await?;
                Err(e)
            }
        }
    }

    async fn launch(&self, bot: &BotRow) -> Result<(), BotError> {
        let prepared = prepare(&self.runtime, bot)?;
        let running = self.spawn(bot, prepared).await?;
        self.running.lock().await.insert(bot.id, running);
        Ok(())
    }

    async fn spawn(&self, bot: &BotRow, prepared: Prepared) -> Result<Running, BotError> {
        let account = self.runtime.account(bot.account_id).await.ok_or(BotError::AccountNotRunning)?;
        let (stop, stopped) = watch::channel(false);
        let activity = Activity::default();
        let runner = Runner {
            runtime: Arc::clone(&self.runtime),
            bot: bot.clone(),
            prefix: bot.order_prefix(),
            account,
            strategy: Mutex::new(prepared.strategy),
            sizing: prepared.sizing,
            interval: prepared.interval,
            instrument: prepared.instrument,
            activity: Arc::clone(&activity),
        };
        let (runtime, id, account_id, watched) =
            (Arc::clone(&self.runtime), bot.id, bot.account_id, Arc::clone(&activity));
        // The outer task outlives a panicking strategy and records why the bot stopped.
        let task = tokio::spawn(async move {
            let failure = match tokio::spawn(runner.run(stopped)).await {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e),
                Err(e) if e.is_panic() => Some("the strategy panicked".to_string()),
                Err(_) => None,
            };
            if let Some(error) = failure {
                tracing::warn!(bot = id, %error, "bot failed");
                update_activity(&watched, |a| a.last_error = Some(error.clone()));
                let change = BotChange::Fail { now: runtime.now(), error: &error };
                if let Err(e) = runtime.store.change_bot(id, &change, None).await {
                    tracing::error!(bot = id, error = %e, "bot failure not recorded");
                }
                runtime.publish_bot_update(BotUpdate {
                    bot: id,
                    account: account_id,
                    data: serde_json::json!({ "bot": id, "event": "failed", "error": error }),
                });
            }
        });
        Ok(Running { stop, activity, task })
    }

    /// Stops a bot and records it as stopped; with `cancel_orders`, its
    /// working orders are cancelled too. Returns it as stored.
    pub async fn stop(&self, bot: &BotRow, cancel_orders: bool, audit: &AuditEntry<'_>) -> Result<BotRow, BotError> {
        let running = self.running.lock().await.remove(&bot.id);
        if let Some(r) = running {
            halt(r).await;
        }
        if cancel_orders && let Some(account) = self.runtime.account(bot.account_id).await {
            cancel_bot_orders(&account, &bot.order_prefix(), None)
                .await
                .map_err(|e| BotError::Invalid(e.to_string()))?;
        }
        let now = self.runtime.now();
        let stored = self.runtime.store.change_bot(bot.id, &BotChange::Stop { now }, Some(audit)).await?;
        let stored = stored.ok_or_else(|| BotError::Invalid("the bot no longer exists".into()))?;
        self.runtime.publish_bot_update(BotUpdate {
            bot: bot.id,
            account: bot.account_id,
            data: serde_json::json!({ "bot": bot.id, "event": "stopped" }),
        });
        Ok(stored)
    }

    /// What a bot has done since it started, while it runs.
    pub async fn activity(&self, id: BotId) -> Option<BotActivity> {
        let running = self.running.lock().await;
        running.get(&id).and_then(|r| r.activity.lock().ok().map(|a| a.clone()))
    }

    /// How many bots run now.
    pub async fn running_count(&self) -> usize {
        self.running.lock().await.values().filter(|r| !r.task.is_finished()).count()
    }

    /// Stops every bot task for a server shutdown, leaving them recorded as
    /// running so they resume on the next start.
    pub async fn shutdown(&self) {
        let all: Vec<Running> = self.running.lock().await.drain().map(|(_, r)| r).collect();
        for r in all {
            halt(r).await;
        }
    }
}

/// Asks a bot task to stop and waits for it (a stuck one is aborted).
async fn halt(r: Running) {
    let _ = r.stop.send(true);
    let mut task = r.task;
    if tokio::time::timeout(Duration::from_secs(5), &mut task).await.is_err() {
        task.abort();
    }
}

/// Cancels the open orders whose client ids start with `prefix` (on one
/// instrument, if given).
async fn cancel_bot_orders(
    account: &AccountHandle,
    prefix: &str,
    instrument: Option<model::InstrumentId>,
) -> Result<usize, AccountError> {
    let state = account.state().await?;
    let open: Vec<model::OrderId> = state
        .open_orders
        .iter()
        .filter_map(|id| state.orders.get(id))
        .filter(|o| o.client_order_id.as_str().starts_with(prefix) && instrument.is_none_or(|i| o.instrument == i))
        .map(|o| o.id)
        .collect();
    for order_id in &open {
        match account.command(Command::CancelOrder { order_id: *order_id }).await {
            // Filled or cancelled meanwhile: nothing left to cancel.
            Ok(()) | Err(AccountError::Engine(engine::EngineError::OrderNotOpen { .. })) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(open.len())
}

fn bar_of(c: &Candle) -> Bar {
    Bar { ts: c.start, open: c.open, high: c.high, low: c.low, close: c.close, volume: c.volume }
}

/// One running bot.
struct Runner {
    runtime: Arc<Runtime>,
    bot: BotRow,
    prefix: String,
    account: AccountHandle,
    /// Locked only while a callback runs (never across an await): the lock
    /// makes the runner shareable between the awaits of its own task.
    strategy: Mutex<Box<dyn Strategy>>,
    sizing: Sizing,
    interval: Interval,
    instrument: Instrument,
    activity: Activity,
}

impl Runner {
    fn with_strategy<T>(&self, call: impl FnOnce(&mut dyn Strategy) -> T) -> Result<T, String> {
        let mut strategy = self.strategy.lock().map_err(|_| "the strategy panicked".to_string())?;
        Ok(call(strategy.as_mut()))
    }

    fn publish(&self, data: serde_json::Value) {
        self.runtime.publish_bot_update(BotUpdate { bot: self.bot.id, account: self.bot.account_id, data });
    }

    async fn run(mut self, mut stop: watch::Receiver<bool>) -> Result<(), String> {
        // Subscribed before reading the store, so no candle falls in between.
        let mut candles = self.runtime.subscribe_candles();
        let mut updates = self.runtime.subscribe_updates();
        let state = self.account.state().await.map_err(|e| e.to_string())?;
        let mut discarded = Vec::new();
        let now = self.runtime.now();
        self.with_strategy(|s| s.on_start(&mut StrategyContext::new(&state, self.instrument.id, now, &mut discarded)))?;
        let last = self.replay(&state, now).await?;
        let mut last_start = last.map(|c| c.start);
        if let Some(c) = last {
            if c.end().as_nanos() + self.interval.as_nanos() > now.as_nanos() {
                // The newest closed bucket: act on it (a duplicate if it was acted on before a restart).
                self.act_on(&c).await?;
            } else {
                self.with_strategy(|strategy| {
                    strategy.on_bar(
                        &bar_of(&c),
                        &mut StrategyContext::new(&state, self.instrument.id, c.end(), &mut discarded),
                    );
                })?;
                update_activity(&self.activity, |a| a.replayed_bars += 1);
            }
        }
        update_activity(&self.activity, |a| a.warmed_up = true);
        self.publish(serde_json::json!({ "bot": self.bot.id, "event": "started" }));
        loop {
            tokio::select! {
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        return Ok(());
                    }
                }
                received = candles.recv() => match received {
                    Ok(c) if c.instrument == self.instrument.id && c.interval == self.interval => {
                        if last_start.is_some_and(|s| c.start <= s) {
                            continue;
                        }
                        last_start = Some(c.start);
                        self.act_on(&c).await?;
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(bot = self.bot.id, missed = n, "bot fell behind the candle feed");
                    }
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                },
                received = updates.recv() => match received {
                    Ok(update) if update.account == self.bot.account_id => self.on_account_update(&update).await?,
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(bot = self.bot.id, missed = n, "bot missed order updates");
                    }
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                },
            }
        }
    }

    /// Shows the strategy the durable changes of its own orders (`on_fill`,
    /// `on_order_update`), as the backtester does, and executes what it
    /// wants then. Client ids of those orders come from the journal seq, so
    /// they are the same however often the update is seen.
    async fn on_account_update(&mut self, update: &crate::accounts::AccountUpdate) -> Result<(), String> {
        let Some(order) = &update.order else { return Ok(()) };
        if !order.client_order_id.as_str().starts_with(&self.prefix) {
            return Ok(());
        }
        let state = self.account.state().await.map_err(|e| e.to_string())?;
        let now = update.event.ts;
        let mut intents = Vec::new();
        self.with_strategy(|strategy| {
            let mut ctx = StrategyContext::new(&state, self.instrument.id, now, &mut intents);
            if let model::event::EventKind::OrderFilled { fill } = &update.event.kind {
                strategy.on_fill(fill, &mut ctx);
            }
            strategy.on_order_update(order, &mut ctx);
        })?;
        if intents.len() > MAX_ORDERS_PER_BAR {
            return Err(format!(
                "the strategy asked for {} orders on one update (at most {MAX_ORDERS_PER_BAR})",
                intents.len()
            ));
        }
        for (n, intent) in intents.into_iter().enumerate() {
            self.execute(intent, &format!("u{}-{n}", update.seq)).await?;
        }
        Ok(())
    }

    /// Shows the stored candles since the anchor to the strategy without
    /// acting on them, except the newest (returned), which the caller either
    /// acts on or shows the same way.
    async fn replay(&mut self, state: &engine::AccountState, now: Timestamp) -> Result<Option<Candle>, String> {
        let Some(anchor) = self.bot.anchor else { return Ok(None) };
        let records = self
            .runtime
            .store
            .candles(self.instrument.id, self.interval.as_str(), anchor, now, MAX_REPLAY)
            .await
            .map_err(|e| e.to_string())?;
        let candles: Vec<Candle> = records
            .iter()
            .map(|r| Candle {
                instrument: r.instrument,
                interval: self.interval,
                start: r.start,
                open: r.open,
                high: r.high,
                low: r.low,
                close: r.close,
                volume: r.volume,
                trades: r.trades,
            })
            .collect();
        let Some((newest, older)) = candles.split_last() else { return Ok(None) };
        let mut discarded = Vec::new();
        self.with_strategy(|strategy| {
            for c in older {
                let mut ctx = StrategyContext::new(state, self.instrument.id, c.end(), &mut discarded);
                strategy.on_bar(&bar_of(c), &mut ctx);
                discarded.clear();
            }
        })?;
        let replayed = older.len() as u64;
        update_activity(&self.activity, |a| a.replayed_bars = replayed);
        Ok(Some(*newest))
    }

    /// Shows a closed candle to the strategy and executes what it wants.
    async fn act_on(&mut self, candle: &Candle) -> Result<(), String> {
        let state = self.account.state().await.map_err(|e| e.to_string())?;
        let mut intents = Vec::new();
        self.with_strategy(|strategy| {
            let mut ctx = StrategyContext::new(&state, self.instrument.id, candle.end(), &mut intents);
            strategy.on_bar(&bar_of(candle), &mut ctx);
        })?;
        if intents.len() > MAX_ORDERS_PER_BAR {
            return Err(format!(
                "the strategy asked for {} orders on one candle (at most {MAX_ORDERS_PER_BAR})",
                intents.len()
            ));
        }
        let bar_secs = candle.start.as_nanos().div_euclid(1_000_000_000);
        for (n, intent) in intents.into_iter().enumerate() {
            self.execute(intent, &format!("{bar_secs}-{n}")).await?;
        }
        // Counted once acted on, so a reader seeing the count sees its orders.
        update_activity(&self.activity, |a| {
            a.bars += 1;
            a.last_bar = Some(candle.start);
        });
        Ok(())
    }

    /// The latest quote of the bot's instrument, waiting briefly for a first one.
    async fn quote(&self) -> Option<model::Quote> {
        let deadline = tokio::time::Instant::now() + QUOTE_WAIT;
        loop {
            if let Some(q) = self.runtime.latest_quote(self.instrument.id) {
                return Some(q);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn client_id(&self, suffix: &str) -> Result<ClientOrderId, String> {
        ClientOrderId::parse(&format!("{}{suffix}", self.prefix)).map_err(|e| format!("bot order id: {e}"))
    }

    fn skipped(&self, reason: &str) {
        update_activity(&self.activity, |a| a.intents_skipped += 1);
        self.publish(serde_json::json!({ "bot": self.bot.id, "event": "skipped", "reason": reason }));
    }

    async fn execute(&mut self, intent: Intent, auto_suffix: &str) -> Result<(), String> {
        match intent {
            Intent::Order { side, size, order_type, time_in_force, reduce_only, client_order_id } => {
                let price = match order_type {
                    OrderType::Market => match self.quote().await {
                        Some(q) => self.slipped(if side == Side::Buy { q.ask } else { q.bid }, side),
                        None => {
                            self.skipped("no_quote");
                            return Ok(());
                        }
                    },
                    OrderType::Limit { price } | OrderType::StopLimit { price, .. } => price,
                    OrderType::Stop { trigger_price } => self.slipped(trigger_price, side),
                };
                let state = self.account.state().await.map_err(|e| e.to_string())?;
                let fee_rate = self.runtime.fill_config().taker_fee;
                let quantity =
                    engine::sizing::resolve(&state, &self.instrument, side, size, self.sizing, price, fee_rate);
                if !quantity.is_positive() {
                    if size != Size::ClosePosition {
                        self.skipped("size_below_one_lot");
                    }
                    return Ok(());
                }
                let suffix = client_order_id.as_ref().map_or(auto_suffix, ClientOrderId::as_str);
                let client_order_id = match self.client_id(suffix) {
                    Ok(id) => id,
                    Err(e) => {
                        update_activity(&self.activity, |a| a.last_error = Some(e.clone()));
                        self.skipped("client_order_id_too_long");
                        return Ok(());
                    }
                };
                let request = OrderRequest {
                    client_order_id,
                    instrument: self.instrument.id,
                    side,
                    order_type,
                    time_in_force,
                    quantity,
                    reduce_only: reduce_only || size == Size::ClosePosition,
                    post_only: false,
                    reference_price: Some(price),
                };
                self.submit(&request).await
            }
            Intent::Cancel(client_order_id) => {
                let Ok(ours) = self.client_id(client_order_id.as_str()) else { return Ok(()) };
                let state = self.account.state().await.map_err(|e| e.to_string())?;
                if let Some(&order_id) = state.client_order_ids.get(&ours)
                    && state.open_orders.contains(&order_id)
                {
                    match self.account.command(Command::CancelOrder { order_id }).await {
                        Ok(()) | Err(AccountError::Engine(engine::EngineError::OrderNotOpen { .. })) => {}
                        Err(AccountError::Stopped) => return Err(AccountError::Stopped.to_string()),
                        Err(e) => update_activity(&self.activity, |a| a.last_error = Some(e.to_string())),
                    }
                }
                Ok(())
            }
            Intent::CancelAll => match cancel_bot_orders(&self.account, &self.prefix, Some(self.instrument.id)).await {
                Ok(_) => Ok(()),
                Err(AccountError::Stopped) => Err(AccountError::Stopped.to_string()),
                Err(e) => {
                    update_activity(&self.activity, |a| a.last_error = Some(e.to_string()));
                    Ok(())
                }
            },
        }
    }

    /// The price a market order is expected to fill at, after the paper venue's slippage.
    fn slipped(&self, price: Price, side: Side) -> Price {
        let slip = self.runtime.fill_config().slippage;
        if slip.is_zero() { price } else { price.adjusted_by(slip, side == Side::Buy) }
    }

    async fn submit(&mut self, request: &OrderRequest) -> Result<(), String> {
        match self.account.submit(request.clone()).await {
            Ok(placed) => match placed.submission {
                Submission::Sent(_) => {
                    update_activity(&self.activity, |a| a.orders_placed += 1);
                    self.publish(serde_json::json!({ "bot": self.bot.id, "event": "order", "order": placed.order }));
                }
                Submission::Denied(_, reason) => {
                    let code = reason.code();
                    update_activity(&self.activity, |a| {
                        a.orders_denied += 1;
                        a.last_denial = Some(code.to_string());
                    });
                    self.publish(serde_json::json!({
                        "bot": self.bot.id, "event": "denied", "reason": code, "order": placed.order
                    }));
                }
                // Placed before a restart: nothing new.
                Submission::Duplicate(_) => {}
            },
            Err(AccountError::Stopped) => return Err(AccountError::Stopped.to_string()),
            Err(e) => {
                update_activity(&self.activity, |a| a.last_error = Some(e.to_string()));
                self.publish(serde_json::json!({ "bot": self.bot.id, "event": "error", "error": e.to_string() }));
            }
        }
        Ok(())
    }
}

/// A bot's profit and loss, from its own fills only, folded exactly as the
/// account folds them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BotPnl {
    pub fills: usize,
    /// Signed quantity the bot's fills add up to.
    pub position: Quantity,
    pub average_price: Option<Price>,
    pub realized: Money,
    pub unrealized: Money,
    pub fees: Money,
    /// Realized plus unrealized, minus fees.
    pub net: Money,
    pub mark: Option<Price>,
}

/// Folds the bot's fills on `instrument` into its P&L at `mark`.
#[must_use]
pub fn pnl(instrument: &Instrument, fills: &[model::Fill], mark: Option<Price>) -> BotPnl {
    let mut position = model::account::Position::flat(instrument.id);
    let mut count = 0;
    for fill in fills.iter().filter(|f| f.instrument == instrument.id) {
        engine::state::apply_fill_to_position(&mut position, instrument, fill);
        count += 1;
    }
    let unrealized = match mark {
        Some(m) if !position.quantity.is_zero() => instrument.notional(m, position.quantity) - position.cost_basis,
        _ => Money::ZERO,
    };
    BotPnl {
        fills: count,
        position: position.quantity,
        average_price: position.average_price(instrument.multiplier),
        realized: position.realized_pnl,
        unrealized,
        fees: position.fees,
        net: position.realized_pnl + unrealized - position.fees,
        mark,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::{Fill, InstrumentId, Liquidity, OrderId, OrderStatus};

    /// Buys on its first bar, sells what a buy filled from `on_fill`, and
    /// records what it was shown.
    struct FlipOnFill {
        bought: bool,
        fills: Arc<Mutex<Vec<Fill>>>,
        updates: Arc<Mutex<Vec<(String, OrderStatus)>>>,
    }

    impl Strategy for FlipOnFill {
        fn on_bar(&mut self, _bar: &Bar, ctx: &mut StrategyContext<'_>) {
            if !self.bought {
                self.bought = true;
                ctx.market(Side::Buy, Size::Units(Quantity::from_int(2)));
            }
        }
        fn on_fill(&mut self, fill: &Fill, ctx: &mut StrategyContext<'_>) {
            self.fills.lock().unwrap().push(fill.clone());
            if fill.side == Side::Buy {
                ctx.close_position();
            }
        }
        fn on_order_update(&mut self, order: &model::Order, _ctx: &mut StrategyContext<'_>) {
            self.updates.lock().unwrap().push((order.client_order_id.as_str().to_string(), order.status));
        }
    }

    /// A bot's own fills and order changes reach its strategy, as in a
    /// backtest, and what it wants then is placed with ids from the journal.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_strategy_sees_its_own_fills_and_acts_on_them() {
        let db = store::testing::TestDatabase::create("sqlite", "bots_unit").await;
        let store = db.store().await;
        let instrument = Instrument::simple(1, "XYZ");
        let options = crate::runtime::RuntimeOptions {
            instruments: vec![instrument.clone()],
            fill: sim::quotes::QuoteFillConfig {
                maker_fee: model::Rate::ZERO,
                taker_fee: model::Rate::ZERO,
                slippage: model::Rate::ZERO,
                multiplier: Quantity::ONE,
                respect_size: false,
            },
            clock: crate::accounts::wall_clock,
            max_batch: 64,
            live: crate::live::LiveOptions::default(),
        };
        let runtime = Runtime::start(store.clone(), options).await.unwrap();
        let usd = model::Currency::parse("USD").unwrap();
        let account = runtime.open_paper_account("bot", usd, Money::from_int(10_000), None).await.unwrap();
        let quote = |bid: i64, ask: i64| model::Quote {
            instrument: instrument.id,
            ts: runtime.now(),
            bid: Price::from_int(bid),
            bid_size: Quantity::from_int(100),
            ask: Price::from_int(ask),
            ask_size: Quantity::from_int(100),
        };
        runtime.publish_quote(quote(99, 101)).await;

        let bot = BotRow {
            id: 7,
            user_id: 1,
            account_id: account.id,
            name: "flip".into(),
            strategy: "flip".into(),
            params: std::collections::BTreeMap::new(),
            instrument: instrument.id,
            interval: "1m".into(),
            sizing: "all-in".into(),
            warmup_bars: 0,
            status: BotStatus::Running,
            error: None,
            created: runtime.now(),
            anchor: None,
            started: None,
            stopped: None,
        };
        let (fills, updates) = (Arc::default(), Arc::default());
        let activity = Activity::default();
        let runner = Runner {
            runtime: Arc::clone(&runtime),
            prefix: bot.order_prefix(),
            bot,
            account: account.clone(),
            strategy: Mutex::new(Box::new(FlipOnFill {
                bought: false,
                fills: Arc::clone(&fills),
                updates: Arc::clone(&updates),
            })),
            sizing: Sizing::AllIn,
            interval: Interval::M1,
            instrument: instrument.clone(),
            activity: Arc::clone(&activity),
        };
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(runner.run(stopped));
        // Listening (subscribed to candles and updates) once warmed up.
        while !activity.lock().unwrap().warmed_up {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let start = Interval::M1.start_of(runtime.now());
        let price = Price::from_int(100);
        runtime.publish_candle(Candle {
            instrument: instrument.id,
            interval: Interval::M1,
            start,
            open: price,
            high: price,
            low: price,
            close: price,
            volume: Quantity::ZERO,
            trades: 0,
        });

        // The buy fills at 101; on that fill the strategy sells it back at 99.
        let mut state = account.state().await.unwrap();
        for _ in 0..200 {
            state = account.state().await.unwrap();
            if fills.lock().unwrap().len() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let seen: Vec<Side> = fills.lock().unwrap().iter().map(|f| f.side).collect();
        assert_eq!(seen, [Side::Buy, Side::Sell], "the strategy saw both of its fills");
        account.flush().await.unwrap();
        let state_now = account.state().await.unwrap();
        assert!(state_now.position(instrument.id).is_zero(), "sold back: {:?}", state.position(instrument.id));
        let clients: Vec<String> = state_now.orders.values().map(|o| o.client_order_id.as_str().to_string()).collect();
        assert_eq!(clients.len(), 2, "{clients:?}");
        assert_eq!(clients[0], format!("bot7-{}-0", start.as_nanos() / 1_000_000_000));
        assert!(clients[1].starts_with("bot7-u"), "the sell's id comes from the fill's journal seq: {clients:?}");
        let statuses = updates.lock().unwrap().clone();
        assert!(statuses.contains(&(clients[0].clone(), OrderStatus::Filled)), "{statuses:?}");
        assert!(statuses.contains(&(clients[1].clone(), OrderStatus::Filled)), "{statuses:?}");

        let _ = stop.send(true);
        task.await.unwrap().unwrap();
        runtime.shutdown().await;
        store.close().await;
        db.remove().await;
    }

    fn fill(side: Side, quantity: i64, price: i64, fee: &str) -> Fill {
        Fill {
            order_id: OrderId(1),
            trade_id: 1,
            instrument: InstrumentId(1),
            side,
            quantity: Quantity::from_int(quantity),
            price: Price::from_int(price),
            fee: Money::parse(fee).unwrap(),
            liquidity: Liquidity::Taker,
            ts: Timestamp::from_secs(0),
        }
    }

    #[test]
    fn pnl_folds_fills_at_average_cost() {
        let instrument = Instrument::simple(1, "TEST");
        let fills = [
            fill(Side::Buy, 2, 100, "0.2"),
            fill(Side::Buy, 2, 110, "0.22"),
            // Another instrument's fill is not this bot's business.
            Fill { instrument: InstrumentId(2), ..fill(Side::Buy, 50, 1, "9") },
            fill(Side::Sell, 3, 120, "0.36"),
        ];
        let pnl = pnl(&instrument, &fills, Some(Price::from_int(130)));
        // Sold 3 of 4 held at an average of 105: 3 * (120 - 105) = 45 realized;
        // 1 left at 105 marked at 130: 25 unrealized.
        assert_eq!(pnl.fills, 3);
        assert_eq!(pnl.position, Quantity::from_int(1));
        assert_eq!(pnl.average_price, Some(Price::from_int(105)));
        assert_eq!(pnl.realized, Money::from_int(45));
        assert_eq!(pnl.unrealized, Money::from_int(25));
        assert_eq!(pnl.fees, Money::parse("0.78").unwrap());
        assert_eq!(pnl.net, Money::parse("69.22").unwrap());
        let flat = super::pnl(&instrument, &[], None);
        assert_eq!((flat.position, flat.net, flat.average_price), (Quantity::ZERO, Money::ZERO, None));
    }
}
