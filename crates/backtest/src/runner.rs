//! The backtest loop: the engine, a strategy and the bar venue over a series.
//!
//! Single-threaded and deterministic: the same bars, strategy and settings
//! always give the same fills, to the last digit. Per bar:
//! 1. market intents decided at the previous close execute at this open
//!    (next-open timing), sized at the open price;
//! 2. working limit and stop orders are matched against the bar's range;
//! 3. the engine marks the position to the close;
//! 4. the strategy sees the closed bar and states its intents; market intents
//!    execute now at the close (close timing) or wait for the next open;
//! 5. equity is recorded.

use std::collections::BTreeMap;

use engine::{
    Engine, EngineError, EventKind, Input, Intent, OrderRequest, Output, RiskLimits, Size, Sizing, Strategy,
    StrategyContext, Submission, VenueRequest, sizing,
};
use model::{
    Bar, ClientOrderId, Currency, ExecutionReport, Instrument, Money, OrderType, Price, Quantity, Rate, Side, Timestamp,
};
use serde::Serialize;
use sim::bars::{BarFillConfig, BarVenue, FillTiming, Phase};

use crate::trades::{Trade, TradeTracker};

/// How a backtest trades.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BacktestConfig {
    pub symbol: String,
    pub cash: Money,
    /// Fraction of each fill's notional charged as commission.
    pub commission: Rate,
    pub sizing: Sizing,
    pub timing: FillTiming,
    /// Adverse move on market and stop fills, as a fraction (5 bp = 0.0005).
    pub slippage: Rate,
    pub close_at_end: bool,
    /// Smallest tradable quantity step (1 = whole units).
    pub lot_size: Quantity,
}

impl Default for BacktestConfig {
    fn default() -> Self {
        Self {
            symbol: "SYNTH".to_string(),
            cash: Money::from_int(10_000),
            commission: Rate::ZERO,
            sizing: Sizing::AllIn,
            timing: FillTiming::NextOpen,
            slippage: Rate::ZERO,
            close_at_end: false,
            lot_size: Quantity::ONE,
        }
    }
}

/// Why a backtest could not run.
#[derive(Debug, thiserror::Error)]
pub enum BacktestError {
    #[error("no bars to run on")]
    NoBars,
    #[error("invalid setting: {0}")]
    Config(String),
    #[error("the strategy produced more than {0} orders in one bar; it is probably stuck in a loop")]
    RunawayStrategy(usize),
    #[error("engine refused an input at {at}: {source}")]
    Engine { at: Timestamp, source: EngineError },
}

/// Everything a run produced, before metrics.
#[derive(Debug, Clone)]
pub struct RunOutput {
    pub initial_cash: Money,
    pub final_equity: Money,
    pub commissions: Money,
    /// Equity after each bar.
    pub equity: EquitySeries,
    /// Open time of the first bar and of the last.
    pub start: Timestamp,
    pub end: Timestamp,
    /// The first bar's open and the last bar's close, for buy-and-hold.
    pub first_open: Price,
    pub last_close: Price,
    /// Bars that ended with a position open.
    pub bars_in_market: usize,
    pub trades: Vec<Trade>,
    pub fills: usize,
    /// Orders refused by the engine's checks, by reason code.
    pub denied: BTreeMap<&'static str, usize>,
    /// Signals decided at the last bar's close with no later bar to execute at.
    pub unexecuted_at_end: usize,
    /// Orders not placed because their size came to zero (too little cash for one lot).
    pub skipped_zero_size: usize,
    pub interval_ns: i64,
}

const MAX_ORDERS_PER_BAR: usize = 10_000;

const SCALE: i128 = model::num::FIXED_SCALE as i128;

/// Equity after each bar, exact. Values are kept with 18 decimals (cash times
/// 10^9 plus price times quantity) so the per-bar loop multiplies and never
/// divides; [`EquitySeries::money`] rounds to 9 decimals exactly as the
/// engine does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EquitySeries {
    scaled: Vec<i128>,
}

impl EquitySeries {
    fn with_capacity(n: usize) -> Self {
        Self { scaled: Vec::with_capacity(n) }
    }

    #[inline]
    fn push_scaled(&mut self, value: i128) {
        self.scaled.push(value);
    }

    fn set_last(&mut self, value: Money) {
        if let Some(last) = self.scaled.last_mut() {
            *last = value.raw() * SCALE;
        }
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.scaled.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.scaled.is_empty()
    }

    /// Exact equity after bar `i`.
    #[must_use]
    pub fn money(&self, i: usize) -> Option<Money> {
        self.scaled.get(i).map(|v| Money::from_raw(model::num::div_round_half_even(*v, SCALE)))
    }

    /// Equity as floating point, for metrics and charts.
    #[allow(clippy::cast_precision_loss)]
    pub fn iter_f64(&self) -> impl Iterator<Item = f64> + '_ {
        self.scaled.iter().map(|v| *v as f64 * 1e-18)
    }
}

/// The smallest positive spacing of the first bars: the series' interval.
#[must_use]
pub fn estimate_interval(bars: &[Bar]) -> i64 {
    bars.windows(2)
        .take(1_000)
        .map(|w| w[1].ts.as_nanos() - w[0].ts.as_nanos())
        .filter(|d| *d > 0)
        .min()
        .unwrap_or(model::time::NANOS_PER_MINUTE)
}

struct Run<'a> {
    engine: Engine,
    venue: BarVenue,
    strategy: &'a mut dyn Strategy,
    instrument: Instrument,
    config: &'a BacktestConfig,
    out: Output,
    reports: Vec<ExecutionReport>,
    intents: Vec<Intent>,
    next_intents: Vec<Intent>,
    tracker: TradeTracker,
    fill_count: usize,
    commissions: Money,
    denied: BTreeMap<&'static str, usize>,
    skipped_zero_size: usize,
    next_client_id: u64,
    orders_this_bar: usize,
}

/// Runs `strategy` over `bars`. `progress` is called now and then with the
/// number of bars done.
pub fn run(
    bars: &[Bar],
    strategy: &mut dyn Strategy,
    config: &BacktestConfig,
    progress: &mut dyn FnMut(usize),
) -> Result<RunOutput, BacktestError> {
    if bars.is_empty() {
        return Err(BacktestError::NoBars);
    }
    if !config.cash.is_positive() {
        return Err(BacktestError::Config(format!("cash must be positive, got {}", config.cash)));
    }
    if config.commission.is_negative() || config.commission >= Rate::ONE {
        return Err(BacktestError::Config(format!("commission must be in [0, 1), got {}", config.commission)));
    }
    if config.slippage.is_negative() || config.slippage >= Rate::ONE {
        return Err(BacktestError::Config(format!("slippage must be in [0, 1), got {}", config.slippage)));
    }
    if !config.lot_size.is_positive() {
        return Err(BacktestError::Config(format!("lot size must be positive, got {}", config.lot_size)));
    }
    let quote = Currency::parse("USD").map_err(|e| BacktestError::Config(e.to_string()))?;
    let mut instrument = Instrument::simple(1, &config.symbol);
    instrument.symbol.clone_from(&config.symbol);
    // Bar files carry whatever precision they carry: accept any price step.
    instrument.tick_size = Price::from_raw(1);
    instrument.lot_size = config.lot_size;
    instrument.min_quantity = config.lot_size;
    let interval_ns = estimate_interval(bars);
    let start = bars[0].ts;

    let mut run = Run {
        engine: Engine::new(quote),
        venue: BarVenue::new(BarFillConfig {
            timing: config.timing,
            slippage: config.slippage,
            commission: config.commission,
            multiplier: instrument.multiplier,
        }),
        strategy,
        instrument: instrument.clone(),
        config,
        out: Output::default(),
        reports: Vec::new(),
        intents: Vec::new(),
        next_intents: Vec::new(),
        tracker: TradeTracker::new(instrument.multiplier),
        fill_count: 0,
        commissions: Money::ZERO,
        denied: BTreeMap::new(),
        skipped_zero_size: 0,
        next_client_id: 1,
        orders_this_bar: 0,
    };
    let limits = RiskLimits { allow_short: true, fee_rate_estimate: config.commission, ..RiskLimits::default() };
    for command in [
        engine::Command::AddInstrument { instrument },
        engine::Command::AdjustCash { currency: quote, amount: config.cash },
        engine::Command::SetRiskLimits { limits },
    ] {
        run.engine
            .process(&Input::Command(command), start, &mut run.out)
            .map_err(|source| BacktestError::Engine { at: start, source })?;
    }
    run.out.clear();
    run.on_start(start);

    let mut equity = EquitySeries::with_capacity(bars.len());
    let mut bars_in_market = 0usize;
    let id = run.instrument.id;
    // Cash and position change only on fills; cache them for the per-bar equity.
    let mut cash = run.engine.state().cash(quote);
    let mut held = Quantity::ZERO;
    let fast_equity = run.instrument.multiplier == Quantity::ONE;
    for (i, bar) in bars.iter().enumerate() {
        if i & 0xFFFF == 0 {
            progress(i);
        }
        run.orders_this_bar = 0;
        let close_ts = match bars.get(i + 1) {
            Some(next) => bar.ts.plus_nanos(interval_ns).min(next.ts),
            None => bar.ts.plus_nanos(interval_ns),
        };
        run.venue.begin_bar();
        let mut changed = false;
        if !run.next_intents.is_empty() {
            std::mem::swap(&mut run.intents, &mut run.next_intents);
            run.execute_intents(bar, Phase::Open, bar.ts)?;
            changed = true;
        }
        if run.venue.working_count() > 0 {
            run.venue.on_bar(bar, &mut run.reports);
            if !run.reports.is_empty() {
                run.apply_reports(bar.ts)?;
                changed = true;
            }
        }
        run.engine
            .process(&Input::Mark { instrument: id, price: bar.close }, close_ts, &mut run.out)
            .map_err(|source| BacktestError::Engine { at: close_ts, source })?;
        run.out.clear();
        {
            let mut ctx = StrategyContext::new(run.engine.state(), id, close_ts, &mut run.intents);
            run.strategy.on_bar(bar, &mut ctx);
        }
        if !run.intents.is_empty() {
            run.execute_intents(bar, Phase::Close, close_ts)?;
            changed = true;
        }
        if changed {
            cash = run.engine.state().cash(quote);
            held = run.engine.state().position(id);
        }
        let scaled = if fast_equity {
            cash.raw() * SCALE + i128::from(bar.close.raw()) * i128::from(held.raw())
        } else {
            run.engine.state().equity().raw() * SCALE
        };
        equity.push_scaled(scaled);
        if !held.is_zero() {
            bars_in_market += 1;
        }
    }
    progress(bars.len());

    let last = bars[bars.len() - 1];
    let last_close_ts = last.ts.plus_nanos(interval_ns);
    let unexecuted_at_end = run.next_intents.iter().filter(|i| matches!(i, Intent::Order { .. })).count();
    if config.close_at_end && !run.engine.state().position(id).is_zero() {
        run.close_at(&last, last_close_ts)?;
        equity.set_last(run.engine.state().equity());
    }
    let final_equity = run.engine.state().equity();
    let trades = run.tracker.finish_all(last.close);
    Ok(RunOutput {
        initial_cash: config.cash,
        final_equity,
        commissions: run.commissions,
        equity,
        start,
        end: last.ts,
        first_open: bars[0].open,
        last_close: last.close,
        bars_in_market,
        trades,
        fills: run.fill_count,
        denied: run.denied,
        unexecuted_at_end,
        skipped_zero_size: run.skipped_zero_size,
        interval_ns,
    })
}

impl Run<'_> {
    fn on_start(&mut self, now: Timestamp) {
        let mut ctx = StrategyContext::new(self.engine.state(), self.instrument.id, now, &mut self.intents);
        self.strategy.on_start(&mut ctx);
        // Intents at start wait for the first bar's open.
        self.next_intents.append(&mut self.intents);
    }

    /// Executes queued intents in order; market intents in the close phase
    /// under next-open timing are deferred to the next bar.
    fn execute_intents(&mut self, bar: &Bar, phase: Phase, now: Timestamp) -> Result<(), BacktestError> {
        let mut queue = std::mem::take(&mut self.intents);
        let mut i = 0;
        while i < queue.len() {
            let intent = queue[i].clone();
            i += 1;
            let defer = phase == Phase::Close
                && self.config.timing == FillTiming::NextOpen
                && matches!(intent, Intent::Order { order_type: OrderType::Market, .. });
            if defer {
                self.next_intents.push(intent);
            } else {
                self.execute(intent, bar, phase, now)?;
            }
            // Callbacks (fills, order updates) may have added intents.
            queue.append(&mut self.intents);
        }
        queue.clear();
        self.intents = queue;
        Ok(())
    }

    fn execute(&mut self, intent: Intent, bar: &Bar, phase: Phase, now: Timestamp) -> Result<(), BacktestError> {
        let engine_err = |source| BacktestError::Engine { at: now, source };
        match intent {
            Intent::Order { side, size, order_type, time_in_force, reduce_only, client_order_id } => {
                self.orders_this_bar += 1;
                if self.orders_this_bar > MAX_ORDERS_PER_BAR {
                    return Err(BacktestError::RunawayStrategy(MAX_ORDERS_PER_BAR));
                }
                let market_price = if phase == Phase::Open { bar.open } else { bar.close };
                let price = match order_type {
                    OrderType::Market => self.venue.slipped(market_price, side),
                    OrderType::Limit { price } | OrderType::StopLimit { price, .. } => price,
                    OrderType::Stop { trigger_price } => self.venue.slipped(trigger_price, side),
                };
                let quantity = sizing::resolve(
                    self.engine.state(),
                    &self.instrument,
                    side,
                    size,
                    self.config.sizing,
                    price,
                    self.config.commission,
                );
                if !quantity.is_positive() {
                    // Closing a flat position is not a skip; an entry too small for one lot is.
                    if size != Size::ClosePosition {
                        self.skipped_zero_size += 1;
                    }
                    return Ok(());
                }
                let client_order_id = match client_order_id {
                    Some(id) => id,
                    None => self.auto_client_id(),
                };
                let request = OrderRequest {
                    client_order_id,
                    instrument: self.instrument.id,
                    side,
                    order_type,
                    time_in_force,
                    quantity,
                    reduce_only: reduce_only || size == Size::ClosePosition,
                    reference_price: Some(price),
                };
                match self.engine.submit(&request, now, &mut self.out).map_err(engine_err)? {
                    Submission::Denied(_, reason) => *self.denied.entry(reason.code()).or_default() += 1,
                    Submission::Sent(_) | Submission::Duplicate(_) => {}
                }
            }
            Intent::Cancel(client_order_id) => {
                if let Some(&order_id) = self.engine.state().client_order_ids.get(&client_order_id)
                    && self.engine.state().open_orders.contains(&order_id)
                {
                    self.engine
                        .process(&Input::Command(engine::Command::CancelOrder { order_id }), now, &mut self.out)
                        .map_err(engine_err)?;
                }
            }
            Intent::CancelAll => {
                self.engine
                    .process(
                        &Input::Command(engine::Command::CancelAll { instrument: Some(self.instrument.id) }),
                        now,
                        &mut self.out,
                    )
                    .map_err(engine_err)?;
            }
        }
        self.route(bar, phase, now)
    }

    fn auto_client_id(&mut self) -> ClientOrderId {
        let n = self.next_client_id;
        self.next_client_id += 1;
        // Digits and a prefix: always a valid id.
        ClientOrderId::parse(&format!("bt-{n}")).unwrap_or_else(|_| unreachable!("bt-<n> is a valid client order id"))
    }

    /// Sends the engine's venue requests to the venue and feeds the answers back.
    fn route(&mut self, bar: &Bar, phase: Phase, now: Timestamp) -> Result<(), BacktestError> {
        self.notify(now);
        let requests = std::mem::take(&mut self.out.venue_requests);
        for request in &requests {
            match request {
                VenueRequest::Place(order) => self.venue.place(order, bar, phase, &mut self.reports),
                VenueRequest::Cancel { order_id, .. } => self.venue.cancel(*order_id, &mut self.reports),
            }
        }
        self.out.venue_requests = requests;
        self.out.clear();
        if self.reports.is_empty() { Ok(()) } else { self.apply_reports(now) }
    }

    fn apply_reports(&mut self, now: Timestamp) -> Result<(), BacktestError> {
        let reports = std::mem::take(&mut self.reports);
        for report in &reports {
            self.engine
                .process(&Input::Execution(report.clone()), now, &mut self.out)
                .map_err(|source| BacktestError::Engine { at: now, source })?;
        }
        self.reports = reports;
        self.reports.clear();
        self.notify(now);
        self.out.clear();
        Ok(())
    }

    /// Tells the trade tracker and the strategy about fills and order changes
    /// in the engine's latest events.
    fn notify(&mut self, now: Timestamp) {
        if self.out.events.is_empty() {
            return;
        }
        let events = std::mem::take(&mut self.out.events);
        for event in &events {
            let order_id = match &event.kind {
                EventKind::OrderFilled { fill } => {
                    self.tracker.on_fill(fill);
                    self.fill_count += 1;
                    self.commissions += fill.fee;
                    let mut ctx = StrategyContext::new(self.engine.state(), self.instrument.id, now, &mut self.intents);
                    self.strategy.on_fill(fill, &mut ctx);
                    Some(fill.order_id)
                }
                EventKind::OrderAccepted { order_id }
                | EventKind::OrderRejected { order_id, .. }
                | EventKind::OrderCancelled { order_id }
                | EventKind::OrderExpired { order_id } => Some(*order_id),
                EventKind::OrderSubmitted { order } | EventKind::OrderDenied { order } => Some(order.id),
                _ => None,
            };
            if let Some(order) = order_id.and_then(|id| self.engine.state().orders.get(&id)) {
                let mut ctx = StrategyContext::new(self.engine.state(), self.instrument.id, now, &mut self.intents);
                self.strategy.on_order_update(order, &mut ctx);
            }
        }
        self.out.events = events;
        self.out.events.clear();
    }

    /// Closes the position at the last close (for `--close-at-end`).
    fn close_at(&mut self, bar: &Bar, now: Timestamp) -> Result<(), BacktestError> {
        let held = self.engine.state().position(self.instrument.id);
        let side = if held.is_positive() { Side::Sell } else { Side::Buy };
        let price = self.venue.slipped(bar.close, side);
        let request = OrderRequest {
            client_order_id: self.auto_client_id(),
            instrument: self.instrument.id,
            side,
            order_type: OrderType::Market,
            time_in_force: model::TimeInForce::Gtc,
            quantity: held.abs(),
            reduce_only: true,
            reference_price: Some(price),
        };
        self.engine.submit(&request, now, &mut self.out).map_err(|source| BacktestError::Engine { at: now, source })?;
        self.notify(now);
        let requests = std::mem::take(&mut self.out.venue_requests);
        for request in &requests {
            if let VenueRequest::Place(order) = request {
                self.venue.fill_market_at(order, price, &mut self.reports);
            }
        }
        self.out.clear();
        self.apply_reports(now)
    }
}
