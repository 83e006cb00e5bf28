//! One actor per trading account: the engine, the account's paper venue,
//! and its journal.
//!
//! The actor is the only owner of the account's engine, so commands,
//! venue reports and marks are processed one at a time in arrival order.
//! Each input's events are sent to the group committer in order and the
//! caller is answered only once they are durable; the actor does not wait
//! for the disk before taking the next input (commits of one account stay in
//! order because the committer's queue is FIFO). If a commit ever fails the
//! in-memory state may be ahead of the journal, so the actor stops and the
//! account is reloaded from the store.
//!
//! Reads of the account (positions, balances, open orders) are answered from
//! the actor's memory with [`AccountHandle::read`], but only once every event
//! they reflect is durable, so a reader never sees what a crash could undo.

use std::collections::{BTreeSet, HashMap};

use engine::{Command, Engine, EngineError, Input, OrderRequest, Output, Submission, VenueRequest};
use model::account::Position;
use model::event::{Event, EventKind};
use model::{Currency, ExecutionReport, InstrumentId, Money, Order, OrderId, Quote, Timestamp};
use sim::quotes::{QuoteFillConfig, QuoteVenue};
use store::{AccountId, Commit, GroupCommitter, Store, StoreError};
use tokio::sync::{mpsc, oneshot};

/// How many journaled events between snapshots of an account.
const SNAPSHOT_EVERY: u64 = 10_000;

/// Why an account could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("could not save: {0}")]
    Store(#[from] StoreError),
    #[error("the account is not running (it stopped after a storage failure and must be reloaded)")]
    Stopped,
    #[error("stored state of account {account} cannot be read: {detail}")]
    CorruptSnapshot { account: AccountId, detail: String },
    /// A live account that may not send orders now (not confirmed by its
    /// owner, live trading off, or its venue unreachable); nothing was done.
    #[error("{0}")]
    TradingNotAllowed(String),
}

/// Resolves when a queued commit is durable (at once when there was nothing to write).
struct Ack(Option<oneshot::Receiver<Result<(), StoreError>>>);

impl Ack {
    async fn wait(self) -> Result<(), AccountError> {
        match self.0 {
            None => Ok(()),
            Some(receiver) => match receiver.await {
                Ok(result) => result.map_err(AccountError::from),
                Err(_) => Err(AccountError::Stopped),
            },
        }
    }
}

/// A journaled event of an account, published once it is durable.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AccountUpdate {
    pub account: AccountId,
    pub seq: u64,
    pub event: Event,
    /// For an order event: the order as it was right after this event.
    pub order: Option<Order>,
    /// On the last event of a commit that changed positions or balances:
    /// the rows the commit wrote (as the read models hold them after it).
    pub holdings: Option<Holdings>,
}

/// Positions and balances a commit wrote.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Holdings {
    /// The positions of the instruments the commit touched.
    pub positions: Vec<Position>,
    /// Every balance, when the commit moved cash; empty otherwise.
    pub balances: Vec<(Currency, Money)>,
}

/// Where durable events are announced (WebSocket subscribers listen here).
pub type Updates = tokio::sync::broadcast::Sender<std::sync::Arc<AccountUpdate>>;

/// The order an event is about, if it is an order event.
#[must_use]
pub fn order_of(kind: &EventKind) -> Option<OrderId> {
    match kind {
        EventKind::OrderSubmitted { order } | EventKind::OrderDenied { order } => Some(order.id),
        EventKind::OrderAccepted { order_id }
        | EventKind::OrderRejected { order_id, .. }
        | EventKind::OrderCancelRequested { order_id }
        | EventKind::OrderCancelRejected { order_id }
        | EventKind::OrderCancelled { order_id }
        | EventKind::OrderExpired { order_id } => Some(*order_id),
        EventKind::OrderFilled { fill } => Some(fill.order_id),
        _ => None,
    }
}

/// Tells what an order looked like right after each of its events. The
/// engine keeps only each order's latest state, so this replays the events
/// on a scratch state with the engine's own fold (so the two cannot differ).
/// It keeps only open orders: closed ones get no more events.
#[derive(Debug, Clone)]
pub struct OrderFold {
    scratch: engine::AccountState,
}

impl OrderFold {
    /// A fold that knows these instruments (fills need their multipliers)
    /// and no orders yet. `base` only matters to cash, which is not read.
    #[must_use]
    pub fn new(base: Currency, instruments: impl IntoIterator<Item = model::Instrument>) -> Self {
        let mut scratch = engine::AccountState::new(base);
        scratch.books = instruments
            .into_iter()
            .map(|instrument| engine::InstrumentBook {
                position: model::account::Position::flat(instrument.id),
                instrument,
                mark: None,
            })
            .collect();
        Self { scratch }
    }

    /// Starts tracking an order from its state at this point of the journal.
    pub fn insert(&mut self, order: Order) {
        if order.status.is_open() {
            self.scratch.open_orders.insert(order.id);
            self.scratch.orders.insert(order.id, order);
        }
    }

    #[must_use]
    pub fn contains(&self, id: OrderId) -> bool {
        self.scratch.orders.contains_key(&id)
    }

    /// Applies the next event; for an order event, answers the order right
    /// after it, or `None` if the fold does not know the order (it was
    /// placed before the fold started and never inserted).
    pub fn apply(&mut self, event: &Event) -> Option<Order> {
        let id = order_of(&event.kind);
        if let EventKind::OrderFilled { fill } = &event.kind
            && self.scratch.book(fill.instrument).is_none()
        {
            // The engine's fold skips a fill on an unknown instrument, which
            // would leave a stale order here: forget it instead.
            self.scratch.orders.remove(&fill.order_id);
            self.scratch.open_orders.remove(&fill.order_id);
            return None;
        }
        self.scratch.apply(event);
        // Only order states matter here: keep the rest from growing.
        self.scratch.client_order_ids.clear();
        self.scratch.seen_trades.clear();
        self.scratch.asset_fees.clear();
        let id = id?;
        let order = self.scratch.orders.get(&id).cloned()?;
        if !order.status.is_open() {
            self.scratch.orders.remove(&id);
            self.scratch.open_orders.remove(&id);
        }
        Some(order)
    }
}

/// The highest seq known durable, and whether a commit failed (then the
/// in-memory state may never become durable: durable reads are refused).
type Durable = tokio::sync::watch::Sender<(u64, bool)>;

/// A commit on its way to the disk, and who to tell when it lands.
struct Publish {
    first_seq: u64,
    events: Vec<Event>,
    holdings: Option<Holdings>,
    durable: oneshot::Receiver<Result<(), StoreError>>,
    done: oneshot::Sender<Result<(), StoreError>>,
}

/// Waits for an account's commits in order; announces each one's events once
/// durable, then answers whoever waits for it. One task per account keeps the
/// announcements in journal order. It also follows the account's open orders
/// (`fold`) so each order event carries the order as that event left it,
/// without slowing the actor, and tells `durable` how far the journal is.
async fn publisher(
    account: AccountId,
    mut fold: OrderFold,
    mut rx: mpsc::UnboundedReceiver<Publish>,
    updates: Updates,
    durable: Durable,
) {
    while let Some(p) = rx.recv().await {
        let result = p.durable.await.unwrap_or(Err(StoreError::Closed));
        let last = p.first_seq + (p.events.len() as u64).saturating_sub(1);
        durable.send_modify(|d| if result.is_ok() { d.0 = d.0.max(last) } else { d.1 = true });
        if result.is_ok() {
            let last_index = p.events.len().saturating_sub(1);
            let mut holdings = p.holdings;
            for (i, event) in p.events.into_iter().enumerate() {
                let order = fold.apply(&event);
                crate::telemetry::order_event(&event.kind, order.as_ref());
                let holdings = if i == last_index { holdings.take() } else { None };
                let update = AccountUpdate { account, seq: p.first_seq + i as u64, event, order, holdings };
                // No subscribers is fine: nobody is listening.
                let _ = updates.send(std::sync::Arc::new(update));
            }
        }
        let _ = p.done.send(result);
    }
}

/// What a submission became, once durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    pub submission: Submission,
    pub order: Order,
}

enum Message {
    Submit {
        request: OrderRequest,
        reply: oneshot::Sender<Result<Placed, AccountError>>,
    },
    Command {
        command: Command,
        reply: oneshot::Sender<Result<(), AccountError>>,
    },
    Quote(Quote),
    State {
        reply: oneshot::Sender<engine::AccountState>,
    },
    Read {
        job: ReadJob,
        durable: bool,
    },
    Flush {
        reply: oneshot::Sender<Result<(), AccountError>>,
    },
    Reconcile {
        reply: oneshot::Sender<ReconcileView>,
    },
    /// Reports from a live venue (placement answers, reconciliation); the
    /// reply comes once their events are durable.
    Reports {
        reports: Vec<ExecutionReport>,
        reply: oneshot::Sender<Result<(), AccountError>>,
    },
}

/// Where an account's orders go.
pub enum Backend {
    /// The simulated market, filling against quotes.
    Paper(QuoteFillConfig),
    /// A live venue: requests are handed, once journaled, to the account's
    /// venue task (see [`crate::live`]), which feeds the answers back.
    Live(LiveRoute),
}

/// The actor's end of a live account's venue task.
#[derive(Clone)]
pub struct LiveRoute {
    pub jobs: mpsc::UnboundedSender<crate::live::VenueJob>,
    pub gate: std::sync::Arc<crate::live::LiveGate>,
}

/// What reconciliation compares, taken in the actor at one moment: the
/// order differences with the venue, and the engine's positions and cash
/// as of journal `seq` (for comparing with read models at the same seq).
#[derive(Debug, Clone)]
pub struct ReconcileView {
    pub seq: u64,
    pub orders: Vec<OrderDifference>,
    pub positions: Vec<model::account::Position>,
    pub balances: Vec<(model::Currency, model::Money)>,
}

/// An order the engine and its venue disagree about.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OrderDifference {
    /// Open in the engine, unknown to the venue.
    MissingAtVenue { order_id: OrderId },
    /// Working at the venue, not open in the engine.
    UnknownToEngine { order_id: OrderId },
    /// Both have it, with different quantities left.
    Remaining { order_id: OrderId, engine: model::Quantity, venue: model::Quantity },
}

/// Computes a reply from the state now; the returned closure delivers it
/// (at once, or once durable).
type ReadJob = Box<dyn FnOnce(&engine::AccountState) -> Box<dyn FnOnce() + Send> + Send>;

/// How long a durable read waits for the journal before giving up (the
/// committer normally takes milliseconds).
const DURABLE_READ_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// A handle to a running account actor.
#[derive(Debug, Clone)]
pub struct AccountHandle {
    pub id: AccountId,
    /// The user who owns the account. It never changes once the account
    /// exists (both are written in one transaction), so it is checked here
    /// instead of in the database.
    pub owner: Option<store::auth::UserId>,
    tx: mpsc::Sender<Message>,
    /// How far the journal is durable (see [`Durable`]).
    durable: tokio::sync::watch::Receiver<(u64, bool)>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Submit { .. } => "Submit",
            Self::Command { .. } => "Command",
            Self::Quote(_) => "Quote",
            Self::State { .. } => "State",
            Self::Read { .. } => "Read",
            Self::Flush { .. } => "Flush",
            Self::Reconcile { .. } => "Reconcile",
            Self::Reports { .. } => "Reports",
        })
    }
}

impl AccountHandle {
    /// Submits an order; answers once its events are committed.
    pub async fn submit(&self, request: OrderRequest) -> Result<Placed, AccountError> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(Message::Submit { request, reply }).await.map_err(|_| AccountError::Stopped)?;
        answer.await.map_err(|_| AccountError::Stopped)?
    }

    /// Runs a command (cancel, kill switch, limits, cash); answers once durable.
    pub async fn command(&self, command: Command) -> Result<(), AccountError> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(Message::Command { command, reply }).await.map_err(|_| AccountError::Stopped)?;
        answer.await.map_err(|_| AccountError::Stopped)?
    }

    /// Feeds a quote (marks, and fills for working paper orders). Drops it
    /// when the actor is busy: the next quote supersedes it.
    pub fn quote(&self, quote: Quote) {
        let _ = self.tx.try_send(Message::Quote(quote));
    }

    /// Compares the engine's open orders with the venue's working orders,
    /// and returns them with the engine's positions and cash.
    pub async fn reconcile_view(&self) -> Result<ReconcileView, AccountError> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(Message::Reconcile { reply }).await.map_err(|_| AccountError::Stopped)?;
        answer.await.map_err(|_| AccountError::Stopped)
    }

    /// Waits until the journal is durable up to `seq`; an error when a
    /// commit failed (the events may never land) or the account stopped.
    pub async fn durable_through(&self, seq: u64) -> Result<(), AccountError> {
        let mut watch = self.durable.clone();
        match watch.wait_for(|d| d.0 >= seq || d.1).await {
            Ok(d) if d.0 >= seq => Ok(()),
            _ => Err(AccountError::Stopped),
        }
    }

    /// Applies reports from the account's live venue; answers once durable.
    /// A report the engine refuses is logged and skipped.
    pub async fn apply_reports(&self, reports: Vec<ExecutionReport>) -> Result<(), AccountError> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(Message::Reports { reports, reply }).await.map_err(|_| AccountError::Stopped)?;
        answer.await.map_err(|_| AccountError::Stopped)?
    }

    /// Waits until everything the account has done so far is durable
    /// (including fills from quotes, which nobody else waits for).
    pub async fn flush(&self) -> Result<(), AccountError> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(Message::Flush { reply }).await.map_err(|_| AccountError::Stopped)?;
        answer.await.map_err(|_| AccountError::Stopped)?
    }

    /// Runs `f` on the account's state in the actor and answers once every
    /// event the state reflects is durable (immediately when nothing is
    /// pending), so what a reader sees survives a crash. Keep `f` small: the
    /// account waits for it.
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&engine::AccountState) -> T + Send + 'static,
    ) -> Result<T, AccountError> {
        self.run_read(f, true).await
    }

    /// Like [`Self::read`] but answers at once, with state that may not be
    /// durable yet (live figures: equity at the latest marks).
    pub async fn read_live<T: Send + 'static>(
        &self,
        f: impl FnOnce(&engine::AccountState) -> T + Send + 'static,
    ) -> Result<T, AccountError> {
        self.run_read(f, false).await
    }

    async fn run_read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&engine::AccountState) -> T + Send + 'static,
        durable: bool,
    ) -> Result<T, AccountError> {
        let (reply, answer) = oneshot::channel();
        let job: ReadJob = Box::new(move |state| {
            let value = f(state);
            Box::new(move || {
                let _ = reply.send(value);
            })
        });
        self.tx.send(Message::Read { job, durable }).await.map_err(|_| AccountError::Stopped)?;
        answer.await.map_err(|_| AccountError::Stopped)
    }

    /// A copy of the account's current state.
    pub async fn state(&self) -> Result<engine::AccountState, AccountError> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(Message::State { reply }).await.map_err(|_| AccountError::Stopped)?;
        answer.await.map_err(|_| AccountError::Stopped)
    }
}

/// Where the actor gets the time.
pub type Clock = fn() -> Timestamp;

/// The wall clock: the actor (not the engine) reads it and passes it in.
#[must_use]
pub fn wall_clock() -> Timestamp {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    Timestamp::from_nanos(nanos)
}

struct Actor {
    id: AccountId,
    engine: Engine,
    venues: HashMap<InstrumentId, QuoteVenue>,
    fill_config: QuoteFillConfig,
    /// `Some` for a live account: requests go there instead of `venues`.
    live: Option<LiveRoute>,
    last_seq: u64,
    snapshot_seq: u64,
    store: Store,
    committer: GroupCommitter,
    clock: Clock,
    out: Output,
    reports: Vec<ExecutionReport>,
    publish: mpsc::UnboundedSender<Publish>,
    /// What the publisher has seen land (see [`Durable`]).
    durable: tokio::sync::watch::Receiver<(u64, bool)>,
}

/// Loads an account from its snapshot and journal and starts its actor.
pub async fn start(
    id: AccountId,
    base_currency: Currency,
    store: Store,
    committer: GroupCommitter,
    backend: Backend,
    clock: Clock,
    updates: Updates,
) -> Result<AccountHandle, AccountError> {
    let (fill_config, live) = match backend {
        Backend::Paper(config) => (config, None),
        // Never used: a live account has no paper venue.
        Backend::Live(route) => (
            QuoteFillConfig {
                maker_fee: model::Rate::ZERO,
                taker_fee: model::Rate::ZERO,
                slippage: model::Rate::ZERO,
                multiplier: model::Quantity::ONE,
                respect_size: true,
            },
            Some(route),
        ),
    };
    let (mut engine, mut last_seq) = match store.snapshot(id).await? {
        Some((seq, body)) => {
            let state: engine::AccountState = serde_json::from_str(&body)
                .map_err(|e| AccountError::CorruptSnapshot { account: id, detail: e.to_string() })?;
            (Engine::from_state(state), seq)
        }
        None => (Engine::new(base_currency), 0),
    };
    let snapshot_seq = last_seq;
    loop {
        let page = store.events(id, last_seq, 10_000).await?;
        let Some((seq, _)) = page.last() else { break };
        let seq = *seq;
        for (_, event) in &page {
            engine.apply_journaled(event);
        }
        last_seq = seq;
    }
    let state = engine.state();
    let mut fold = OrderFold::new(state.base_currency, state.books.iter().map(|b| b.instrument.clone()));
    for order in state.open_orders.iter().filter_map(|o| state.orders.get(o)) {
        fold.insert(order.clone());
    }
    // Everything loaded is durable.
    let (durable_tx, durable) = tokio::sync::watch::channel((last_seq, false));
    let (publish, to_publish) = mpsc::unbounded_channel();
    tokio::spawn(publisher(id, fold, to_publish, updates, durable_tx));
    let mut actor = Actor {
        id,
        engine,
        venues: HashMap::new(),
        fill_config,
        live,
        last_seq,
        snapshot_seq,
        store,
        committer,
        clock,
        out: Output::default(),
        reports: Vec::new(),
        publish,
        durable: durable.clone(),
    };
    actor.restore_venues();
    let (tx, rx) = mpsc::channel(1024);
    tokio::spawn(actor.run(rx));
    Ok(AccountHandle { id, owner: None, tx, durable })
}

impl Actor {
    /// Puts working orders back into the paper venues after a restart (a
    /// live account's venue holds its own; reconciliation checks them).
    fn restore_venues(&mut self) {
        if self.live.is_some() {
            return;
        }
        let state = self.engine.state();
        let last_trade = state.seen_trades.iter().map(|(_, t)| *t).max().unwrap_or(0);
        let open: Vec<Order> = state.open_orders.iter().filter_map(|id| state.orders.get(id).cloned()).collect();
        for order in open {
            let venue = self.venue(order.instrument);
            venue.resume_trade_ids_after(last_trade);
            venue.restore(&order);
        }
    }

    /// Where the engine's open orders and the paper venues' working orders differ.
    fn order_differences(&self) -> Vec<OrderDifference> {
        if self.live.is_some() {
            // Compared with the venue itself by the live reconciliation.
            return Vec::new();
        }
        let state = self.engine.state();
        let working: HashMap<OrderId, model::Quantity> = self.venues.values().flat_map(QuoteVenue::working).collect();
        let mut out = Vec::new();
        for id in &state.open_orders {
            let Some(order) = state.orders.get(id) else { continue };
            match working.get(id) {
                None => out.push(OrderDifference::MissingAtVenue { order_id: *id }),
                Some(left) if *left != order.remaining() => {
                    out.push(OrderDifference::Remaining { order_id: *id, engine: order.remaining(), venue: *left });
                }
                Some(_) => {}
            }
        }
        for id in working.keys() {
            if !state.open_orders.contains(id) {
                out.push(OrderDifference::UnknownToEngine { order_id: *id });
            }
        }
        out.sort_by_key(|d| match d {
            OrderDifference::MissingAtVenue { order_id }
            | OrderDifference::UnknownToEngine { order_id }
            | OrderDifference::Remaining { order_id, .. } => *order_id,
        });
        out
    }

    fn venue(&mut self, instrument: InstrumentId) -> &mut QuoteVenue {
        let config = self.fill_config;
        self.venues.entry(instrument).or_insert_with(|| QuoteVenue::new(config))
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Message>) {
        while let Some(message) = rx.recv().await {
            let result = match message {
                Message::Submit { request, reply } => self.submit(&request, reply).await,
                Message::Command { command, reply } => self.command(&command, reply).await,
                Message::Quote(quote) => self.quote(&quote).await,
                Message::State { reply } => {
                    let _ = reply.send(self.engine.state().clone());
                    Ok(())
                }
                Message::Flush { reply } => self.flush(reply).await,
                Message::Reconcile { reply } => {
                    let state = self.engine.state();
                    let mut balances: Vec<(model::Currency, model::Money)> =
                        state.balances.iter().map(|(c, m)| (*c, *m)).collect();
                    balances.sort_by_key(|(c, _)| *c);
                    let _ = reply.send(ReconcileView {
                        seq: self.last_seq,
                        orders: self.order_differences(),
                        positions: state.books.iter().map(|b| b.position.clone()).collect(),
                        balances,
                    });
                    Ok(())
                }
                Message::Read { job, durable } => {
                    self.read(job, durable);
                    Ok(())
                }
                Message::Reports { reports, reply } => self.venue_reports(reports, reply).await,
            };
            if let Err(e) = result {
                tracing::error!(account = self.id, error = %e, "account stopped: its state may be ahead of the journal");
                break;
            }
        }
    }

    fn now(&self) -> Timestamp {
        // Never behind the engine's clock, even if the wall clock steps back.
        (self.clock)().max(self.engine.clock())
    }

    async fn submit(
        &mut self,
        request: &OrderRequest,
        reply: oneshot::Sender<Result<Placed, AccountError>>,
    ) -> Result<(), AccountError> {
        if let Some(live) = &self.live
            && let Err(why) = live.gate.check()
        {
            let _ = reply.send(Err(AccountError::TradingNotAllowed(why)));
            return Ok(());
        }
        let now = self.now();
        self.out.clear();
        let started = std::time::Instant::now();
        let submitted = self.engine.submit(request, now, &mut self.out);
        crate::telemetry::engine_command(started);
        let submission = match submitted {
            Ok(s) => s,
            Err(e) => {
                let _ = reply.send(Err(e.into()));
                return Ok(());
            }
        };
        let order_id = match submission {
            Submission::Sent(id) | Submission::Denied(id, _) | Submission::Duplicate(id) => id,
        };
        let order = self.engine.state().orders.get(&order_id).cloned();
        let ack = self.journal(now).await?;
        tokio::spawn(async move {
            let result = match (ack.wait().await, order) {
                (Ok(()), Some(order)) => Ok(Placed { submission, order }),
                (Ok(()), None) => Err(AccountError::Engine(EngineError::UnknownOrder(order_id))),
                (Err(e), _) => Err(e),
            };
            let _ = reply.send(result);
        });
        self.route(now).await
    }

    async fn command(
        &mut self,
        command: &Command,
        reply: oneshot::Sender<Result<(), AccountError>>,
    ) -> Result<(), AccountError> {
        let now = self.now();
        self.out.clear();
        let started = std::time::Instant::now();
        let processed = self.engine.process(&Input::Command(command.clone()), now, &mut self.out);
        crate::telemetry::engine_command(started);
        if let Err(e) = processed {
            let _ = reply.send(Err(e.into()));
            return Ok(());
        }
        let ack = self.journal(now).await?;
        tokio::spawn(async move {
            let _ = reply.send(ack.wait().await);
        });
        self.route(now).await
    }

    async fn quote(&mut self, quote: &Quote) -> Result<(), AccountError> {
        if self.engine.state().book(quote.instrument).is_none() {
            return Ok(());
        }
        let now = self.now().max(quote.ts);
        self.out.clear();
        self.engine.process(&Input::Mark { instrument: quote.instrument, price: quote.mid() }, now, &mut self.out)?;
        if self.live.is_some() {
            drop(self.journal(now).await?);
            return Ok(());
        }
        // Every traded instrument's venue keeps the latest quote, so a market
        // order placed later fills against it at once.
        let mut reports = std::mem::take(&mut self.reports);
        self.venue(quote.instrument).on_quote(quote, &mut reports);
        self.reports = reports;
        self.apply_reports(now)?;
        // Fills on a quote are not awaited by anyone: queued in order, durable shortly.
        drop(self.journal(now).await?);
        Ok(())
    }

    /// Answers a read now when nothing it reflects is pending (or it is a
    /// live read), else once the journal has caught up with `last_seq`.
    fn read(&self, job: ReadJob, durable: bool) {
        let deliver = job(self.engine.state());
        let seq = self.last_seq;
        let (done, failed) = *self.durable.borrow();
        if !durable || done >= seq {
            deliver();
            return;
        }
        if failed {
            // Dropping `deliver` drops the reply: the reader sees `Stopped`.
            return;
        }
        let mut watch = self.durable.clone();
        tokio::spawn(async move {
            let landed = tokio::time::timeout(DURABLE_READ_WAIT, watch.wait_for(|d| d.0 >= seq || d.1)).await;
            let landed = matches!(&landed, Ok(Ok(d)) if d.0 >= seq);
            if landed {
                deliver();
            }
        });
    }

    /// Queues an empty commit: the committer answers in queue order, so its
    /// acknowledgement means every earlier commit of this account is durable.
    async fn flush(&mut self, reply: oneshot::Sender<Result<(), AccountError>>) -> Result<(), AccountError> {
        let barrier = Commit { account: self.id, first_seq: self.last_seq + 1, ..Commit::default() };
        let ack = Ack(Some(self.committer.enqueue(barrier).await?));
        tokio::spawn(async move {
            let _ = reply.send(ack.wait().await);
        });
        Ok(())
    }

    /// Applies a live venue's reports and answers once they are durable.
    async fn venue_reports(
        &mut self,
        reports: Vec<ExecutionReport>,
        reply: oneshot::Sender<Result<(), AccountError>>,
    ) -> Result<(), AccountError> {
        let now = self.now();
        self.out.clear();
        self.reports = reports;
        self.apply_reports(now)?;
        let ack = self.journal(now).await?;
        tokio::spawn(async move {
            let _ = reply.send(ack.wait().await);
        });
        self.route(now).await
    }

    /// Sends the engine's venue requests to the paper venue and applies its
    /// answers, or hands them to the live venue task once journaled.
    async fn route(&mut self, now: Timestamp) -> Result<(), AccountError> {
        let requests = std::mem::take(&mut self.out.venue_requests);
        if let Some(live) = &self.live {
            if !requests.is_empty() {
                // Write-ahead: the task waits for `after_seq` to be durable
                // before anything reaches the venue.
                let job = crate::live::VenueJob::Requests { after_seq: self.last_seq, requests };
                live.jobs.send(job).map_err(|_| AccountError::Stopped)?;
            }
            return Ok(());
        }
        let mut reports = std::mem::take(&mut self.reports);
        for request in &requests {
            match request {
                VenueRequest::Place(order) => self.venue(order.instrument).place(order, &mut reports),
                VenueRequest::Cancel { order_id, instrument } => {
                    self.venue(*instrument).cancel(*order_id, &mut reports)
                }
            }
        }
        self.reports = reports;
        self.out.clear();
        self.apply_reports(now)?;
        drop(self.journal(now).await?);
        Ok(())
    }

    fn apply_reports(&mut self, now: Timestamp) -> Result<(), AccountError> {
        let reports = std::mem::take(&mut self.reports);
        for report in &reports {
            // A report the engine refuses (it would be a venue bug) is logged
            // and skipped: it changes nothing, by the engine's contract.
            if let Err(e) = self.engine.process(&Input::Execution(report.clone()), now, &mut self.out) {
                tracing::warn!(account = self.id, error = %e, ?report, "venue report refused");
            }
        }
        self.reports = reports;
        self.reports.clear();
        Ok(())
    }

    /// Queues the events in `self.out` for the journal with the rows they
    /// touched, in order; returns a future that resolves when they are durable.
    async fn journal(&mut self, now: Timestamp) -> Result<Ack, AccountError> {
        let events = std::mem::take(&mut self.out.events);
        if events.is_empty() {
            return Ok(Ack(None));
        }
        let commit = self.commit_for(events);
        let first_seq = commit.first_seq;
        let events = commit.events.clone();
        let holdings = (!commit.positions.is_empty() || !commit.balances.is_empty())
            .then(|| Holdings { positions: commit.positions.clone(), balances: commit.balances.clone() });
        self.last_seq += commit.events.len() as u64;
        let durable = self.committer.enqueue(commit).await?;
        let (done, receiver) = oneshot::channel();
        self.publish.send(Publish { first_seq, events, holdings, durable, done }).map_err(|_| AccountError::Stopped)?;
        if self.last_seq - self.snapshot_seq >= SNAPSHOT_EVERY {
            self.snapshot(now);
        }
        Ok(Ack(Some(receiver)))
    }

    fn commit_for(&self, events: Vec<Event>) -> Commit {
        let state = self.engine.state();
        let mut orders = BTreeSet::new();
        let mut instruments = BTreeSet::new();
        let mut fills = Vec::new();
        let mut balances = false;
        for event in &events {
            match &event.kind {
                EventKind::OrderSubmitted { order } | EventKind::OrderDenied { order } => {
                    orders.insert(order.id);
                }
                EventKind::OrderAccepted { order_id }
                | EventKind::OrderRejected { order_id, .. }
                | EventKind::OrderCancelRequested { order_id }
                | EventKind::OrderCancelRejected { order_id }
                | EventKind::OrderCancelled { order_id }
                | EventKind::OrderExpired { order_id } => {
                    orders.insert(*order_id);
                }
                EventKind::OrderFilled { fill } => {
                    orders.insert(fill.order_id);
                    instruments.insert(fill.instrument);
                    fills.push(fill.clone());
                    balances = true;
                }
                EventKind::CashAdjusted { .. } => balances = true,
                EventKind::InstrumentAdded { instrument } => {
                    instruments.insert(instrument.id);
                }
                EventKind::AssetFeeCharged { instrument, .. } => {
                    instruments.insert(*instrument);
                }
                _ => {}
            }
        }
        Commit {
            account: self.id,
            first_seq: self.last_seq + 1,
            orders: orders.iter().filter_map(|id: &OrderId| state.orders.get(id).cloned()).collect(),
            fills,
            positions: instruments.iter().filter_map(|i| state.book(*i).map(|b| b.position.clone())).collect(),
            balances: if balances { state.balances.iter().map(|(c, m)| (*c, *m)).collect() } else { Vec::new() },
            events,
        }
    }

    /// Saves a snapshot of the state as of `last_seq` in the background. It
    /// is written after the commits queued before it (the store applies them
    /// in order), and a failed snapshot only means a longer replay.
    fn snapshot(&mut self, now: Timestamp) {
        let Ok(body) = serde_json::to_string(self.engine.state()) else { return };
        let (store, id, seq) = (self.store.clone(), self.id, self.last_seq);
        self.snapshot_seq = seq;
        tokio::spawn(async move {
            // Wait until the journal has the events the snapshot covers.
            for _ in 0..100 {
                match store.last_seq(id).await {
                    Ok(stored) if stored >= seq => {
                        if let Err(e) = store.save_snapshot(id, seq, now, &body).await {
                            tracing::warn!(account = id, error = %e, "snapshot not saved");
                        }
                        return;
                    }
                    Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
                    Err(e) => {
                        tracing::warn!(account = id, error = %e, "snapshot not saved");
                        return;
                    }
                }
            }
        });
    }
}
