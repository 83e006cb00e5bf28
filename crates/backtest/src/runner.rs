//! The backtest loop: the engine, a strategy and a simulated venue over a
//! series of bars or quotes.
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
//!
//! On quotes ([`run_quotes`]) orders fill against each quote, and the
//! strategy sees the quotes and the bars built from them.

use std::collections::BTreeMap;

use engine::{
    Engine, EngineError, EventKind, Input, Intent, OrderRequest, Output, RiskLimits, Size, Sizing, Strategy,
    StrategyContext, Submission, VenueRequest, sizing,
};
use model::{
    Bar, ClientOrderId, Currency, ExecutionReport, Instrument, Money, OrderType, Price, Quantity, Quote, Rate, Side,
    Timestamp,
};
use serde::Serialize;
use sim::bars::{BarFillConfig, BarVenue, FillTiming, Phase};
use sim::quotes::{QuoteFillConfig, QuoteVenue};

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

/// The simulated venue of a run: bars or quotes.
#[derive(Debug)]
enum SimVenue {
    Bars(BarVenue),
    Quotes(QuoteVenue),
}

impl SimVenue {
    fn slipped(&self, price: Price, side: Side) -> Price {
        match self {
            Self::Bars(v) => v.slipped(price, side),
            Self::Quotes(v) => v.slipped(price, side),
        }
    }

    fn cancel(&mut self, order_id: model::OrderId, out: &mut Vec<ExecutionReport>) {
        match self {
            Self::Bars(v) => v.cancel(order_id, out),
            Self::Quotes(v) => v.cancel(order_id, out),
        }
    }

    fn fill_market_at(&mut self, order: &model::Order, price: Price, out: &mut Vec<ExecutionReport>) {
        match self {
            Self::Bars(v) => v.fill_market_at(order, price, out),
            Self::Quotes(v) => v.fill_market_at(order, price, out),
        }
    }
}

/// Where in the data an intent executes.
#[derive(Debug, Clone, Copy)]
enum At<'b> {
    /// A bar's open, before it trades.
    Open(&'b Bar),
    /// A bar's close, after the strategy saw it.
    Close(&'b Bar),
    /// A quote.
    Quote(&'b Quote),
}

impl At<'_> {
    /// The price a market order gets here, before slippage.
    fn market_price(self, side: Side) -> Price {
        match self {
            Self::Open(bar) => bar.open,
            Self::Close(bar) => bar.close,
            Self::Quote(q) => {
                if side == Side::Buy {
                    q.ask
                } else {
                    q.bid
                }
            }
        }
    }
}

struct Run<'a> {
    engine: Engine,
    venue: SimVenue,
    strategy: &'a mut dyn Strategy,
    instrument: Instrument,
    config: &'a BacktestConfig,
    quote_currency: Currency,
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

fn check_config(config: &BacktestConfig) -> Result<(), BacktestError> {
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
    Ok(())
}

/// The instrument a backtest trades: the configured symbol and lot, any price step.
fn instrument(config: &BacktestConfig) -> Instrument {
    let mut instrument = Instrument::simple(1, &config.symbol);
    // Data files carry whatever precision they carry: accept any price step.
    instrument.tick_size = Price::from_raw(1);
    instrument.lot_size = config.lot_size;
    instrument.min_quantity = config.lot_size;
    instrument
}

/// Runs `strategy` over `bars`. `progress` is called now and then with the
/// number of bars done.
pub fn run(
    bars: &[Bar],
    strategy: &mut dyn Strategy,
    config: &BacktestConfig,
    progress: &mut dyn FnMut(usize),
) -> Result<RunOutput, BacktestError> {
    let (first, last) = match (bars.first(), bars.last()) {
        (Some(f), Some(l)) => (*f, *l),
        _ => return Err(BacktestError::NoBars),
    };
    check_config(config)?;
    let instrument = instrument(config);
    let venue = SimVenue::Bars(BarVenue::new(BarFillConfig {
        timing: config.timing,
        slippage: config.slippage,
        commission: config.commission,
        multiplier: instrument.multiplier,
    }));
    let interval_ns = estimate_interval(bars);
    let mut run = Run::new(strategy, config, instrument, venue, first.ts)?;
    let mut equity = EquitySeries::with_capacity(bars.len());
    let mut bars_in_market = 0usize;
    let id = run.instrument.id;
    // Cash and position change only on fills; cache them for the per-bar equity.
    let mut cash = run.engine.state().cash(run.quote_currency);
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
        let mut changed = false;
        if let SimVenue::Bars(venue) = &mut run.venue {
            venue.begin_bar();
        }
        if !run.next_intents.is_empty() {
            std::mem::swap(&mut run.intents, &mut run.next_intents);
            run.execute_intents(At::Open(bar), bar.ts)?;
            changed = true;
        }
        if let SimVenue::Bars(venue) = &mut run.venue
            && venue.working_count() > 0
        {
            venue.on_bar(bar, &mut run.reports);
            if !run.reports.is_empty() {
                run.apply_reports(bar.ts)?;
                changed = true;
            }
        }
        run.mark(bar.close, close_ts)?;
        {
            let mut ctx = StrategyContext::new(run.engine.state(), id, close_ts, &mut run.intents);
            run.strategy.on_bar(bar, &mut ctx);
        }
        if !run.intents.is_empty() {
            run.execute_intents(At::Close(bar), close_ts)?;
            changed = true;
        }
        if changed {
            cash = run.engine.state().cash(run.quote_currency);
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
    let end_ts = last.ts.plus_nanos(interval_ns);
    let close_price = run.venue.slipped(last.close, run.closing_side());
    run.finish(equity, bars_in_market, (first, last), close_price, end_ts, interval_ns)
}

/// Runs `strategy` over quotes. Orders fill against the quotes (see
/// [`sim::quotes`]); the strategy sees every quote, and bars of
/// `bar_interval_ns` built from the quotes' mid prices as they complete.
/// Intents from a bar execute at the next quote. Returns the built bars too.
pub fn run_quotes(
    quotes: &[Quote],
    respect_size: bool,
    bar_interval_ns: i64,
    strategy: &mut dyn Strategy,
    config: &BacktestConfig,
    progress: &mut dyn FnMut(usize),
) -> Result<(RunOutput, Vec<Bar>), BacktestError> {
    let first_quote = quotes.first().ok_or(BacktestError::NoBars)?;
    check_config(config)?;
    if bar_interval_ns <= 0 {
        return Err(BacktestError::Config(format!("the bar interval must be positive, got {bar_interval_ns} ns")));
    }
    let instrument = instrument(config);
    let venue = SimVenue::Quotes(QuoteVenue::new(QuoteFillConfig {
        maker_fee: config.commission,
        taker_fee: config.commission,
        slippage: config.slippage,
        multiplier: instrument.multiplier,
        respect_size,
    }));
    let mut run = Run::new(strategy, config, instrument, venue, first_quote.ts)?;
    let id = run.instrument.id;
    let mut bars: Vec<Bar> = Vec::new();
    let mut equity = EquitySeries::default();
    let mut bars_in_market = 0usize;
    let mut building: Option<Bar> = None;
    let bucket = |ts: Timestamp| Timestamp::from_nanos(ts.as_nanos() - ts.as_nanos().rem_euclid(bar_interval_ns));
    for (i, quote) in quotes.iter().enumerate() {
        if i & 0xFFFF == 0 {
            progress(i);
        }
        let quote = Quote { instrument: id, ..*quote };
        let start = bucket(quote.ts);
        if let Some(bar) = building.filter(|b| b.ts != start) {
            // The quote opens a new bar: the previous one is complete.
            let close_ts = bar.ts.plus_nanos(bar_interval_ns).min(quote.ts);
            run.close_bar(&bar, close_ts, &mut equity, &mut bars_in_market)?;
            bars.push(bar);
            building = None;
        }
        run.orders_this_bar = 0;
        if let SimVenue::Quotes(venue) = &mut run.venue {
            venue.on_quote(&quote, &mut run.reports);
        }
        if !run.reports.is_empty() {
            run.apply_reports(quote.ts)?;
        }
        if !run.next_intents.is_empty() {
            std::mem::swap(&mut run.intents, &mut run.next_intents);
            run.execute_intents(At::Quote(&quote), quote.ts)?;
        }
        let mid = quote.mid();
        run.mark(mid, quote.ts)?;
        {
            let mut ctx = StrategyContext::new(run.engine.state(), id, quote.ts, &mut run.intents);
            run.strategy.on_quote(&quote, &mut ctx);
        }
        if !run.intents.is_empty() {
            run.execute_intents(At::Quote(&quote), quote.ts)?;
        }
        building = Some(match building {
            Some(b) => {
                Bar { high: b.high.max(mid), low: b.low.min(mid), close: mid, volume: b.volume + Quantity::ONE, ..b }
            }
            None => Bar { ts: start, open: mid, high: mid, low: mid, close: mid, volume: Quantity::ONE },
        });
    }
    progress(quotes.len());
    let last_quote = quotes[quotes.len() - 1];
    if let Some(bar) = building {
        let close_ts = bar.ts.plus_nanos(bar_interval_ns);
        run.close_bar(&bar, close_ts, &mut equity, &mut bars_in_market)?;
        bars.push(bar);
    }
    let (first, last) = match (bars.first(), bars.last()) {
        (Some(f), Some(l)) => (*f, *l),
        _ => return Err(BacktestError::NoBars),
    };
    let side = run.closing_side();
    let touch = if side == Side::Buy { last_quote.ask } else { last_quote.bid };
    let close_price = run.venue.slipped(touch, side);
    let end_ts = last.ts.plus_nanos(bar_interval_ns).max(last_quote.ts);
    let output = run.finish(equity, bars_in_market, (first, last), close_price, end_ts, bar_interval_ns)?;
    Ok((output, bars))
}

impl<'a> Run<'a> {
    fn new(
        strategy: &'a mut dyn Strategy,
        config: &'a BacktestConfig,
        instrument: Instrument,
        venue: SimVenue,
        start: Timestamp,
    ) -> Result<Self, BacktestError> {
        let quote_currency = instrument.quote_currency;
        let mut run = Run {
            engine: Engine::new(quote_currency),
            venue,
            strategy,
            instrument: instrument.clone(),
            config,
            quote_currency,
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
            engine::Command::AdjustCash { currency: quote_currency, amount: config.cash },
            engine::Command::SetRiskLimits { limits },
        ] {
            run.engine
                .process(&Input::Command(command), start, &mut run.out)
                .map_err(|source| BacktestError::Engine { at: start, source })?;
        }
        run.out.clear();
        let mut ctx = StrategyContext::new(run.engine.state(), run.instrument.id, start, &mut run.intents);
        run.strategy.on_start(&mut ctx);
        // Intents at start wait for the first bar's open (or the first quote).
        run.next_intents.append(&mut run.intents);
        Ok(run)
    }

    fn mark(&mut self, price: Price, now: Timestamp) -> Result<(), BacktestError> {
        self.engine
            .process(&Input::Mark { instrument: self.instrument.id, price }, now, &mut self.out)
            .map_err(|source| BacktestError::Engine { at: now, source })?;
        self.out.clear();
        Ok(())
    }

    /// A bar built from quotes is complete: mark, show it to the strategy,
    /// record equity. Its intents wait for the next quote.
    fn close_bar(
        &mut self,
        bar: &Bar,
        close_ts: Timestamp,
        equity: &mut EquitySeries,
        bars_in_market: &mut usize,
    ) -> Result<(), BacktestError> {
        self.mark(bar.close, close_ts)?;
        let mut ctx = StrategyContext::new(self.engine.state(), self.instrument.id, close_ts, &mut self.intents);
        self.strategy.on_bar(bar, &mut ctx);
        self.next_intents.append(&mut self.intents);
        equity.push_scaled(self.engine.state().equity().raw() * SCALE);
        if !self.engine.state().position(self.instrument.id).is_zero() {
            *bars_in_market += 1;
        }
        Ok(())
    }

    /// The side that would close the position.
    fn closing_side(&self) -> Side {
        if self.engine.state().position(self.instrument.id).is_positive() { Side::Sell } else { Side::Buy }
    }

    /// Closes out (with `--close-at-end`) and assembles the output.
    fn finish(
        mut self,
        mut equity: EquitySeries,
        bars_in_market: usize,
        (first, last): (Bar, Bar),
        close_price: Price,
        end_ts: Timestamp,
        interval_ns: i64,
    ) -> Result<RunOutput, BacktestError> {
        let id = self.instrument.id;
        let unexecuted_at_end = self.next_intents.iter().filter(|i| matches!(i, Intent::Order { .. })).count();
        if self.config.close_at_end && !self.engine.state().position(id).is_zero() {
            self.close_at(close_price, end_ts)?;
            equity.set_last(self.engine.state().equity());
        }
        Ok(RunOutput {
            initial_cash: self.config.cash,
            final_equity: self.engine.state().equity(),
            commissions: self.commissions,
            equity,
            start: first.ts,
            end: last.ts,
            first_open: first.open,
            last_close: last.close,
            bars_in_market,
            trades: self.tracker.finish_all(last.close),
            fills: self.fill_count,
            denied: self.denied,
            unexecuted_at_end,
            skipped_zero_size: self.skipped_zero_size,
            interval_ns,
        })
    }

    /// Executes queued intents in order; market intents at a bar's close
    /// under next-open timing are deferred to the next bar.
    fn execute_intents(&mut self, at: At<'_>, now: Timestamp) -> Result<(), BacktestError> {
        let mut queue = std::mem::take(&mut self.intents);
        let mut i = 0;
        while i < queue.len() {
            let intent = queue[i].clone();
            i += 1;
            let defer = matches!(at, At::Close(_))
                && self.config.timing == FillTiming::NextOpen
                && matches!(intent, Intent::Order { order_type: OrderType::Market, .. });
            if defer {
                self.next_intents.push(intent);
            } else {
                self.execute(intent, at, now)?;
            }
            // Callbacks (fills, order updates) may have added intents.
            queue.append(&mut self.intents);
        }
        queue.clear();
        self.intents = queue;
        Ok(())
    }

    fn execute(&mut self, intent: Intent, at: At<'_>, now: Timestamp) -> Result<(), BacktestError> {
        let engine_err = |source| BacktestError::Engine { at: now, source };
        match intent {
            Intent::Order { side, size, order_type, time_in_force, reduce_only, client_order_id } => {
                self.orders_this_bar += 1;
                if self.orders_this_bar > MAX_ORDERS_PER_BAR {
                    return Err(BacktestError::RunawayStrategy(MAX_ORDERS_PER_BAR));
                }
                let price = match order_type {
                    OrderType::Market => self.venue.slipped(at.market_price(side), side),
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
                    post_only: false,
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
        self.route(at, now)
    }

    fn auto_client_id(&mut self) -> ClientOrderId {
        let n = self.next_client_id;
        self.next_client_id += 1;
        ClientOrderId::sequence("bt", n)
    }

    /// Sends the engine's venue requests to the venue and feeds the answers back.
    fn route(&mut self, at: At<'_>, now: Timestamp) -> Result<(), BacktestError> {
        self.notify(now);
        let requests = std::mem::take(&mut self.out.venue_requests);
        for request in &requests {
            match (request, &mut self.venue, at) {
                (VenueRequest::Place(order), SimVenue::Bars(v), At::Open(bar)) => {
                    v.place(order, bar, Phase::Open, &mut self.reports);
                }
                (VenueRequest::Place(order), SimVenue::Bars(v), At::Close(bar)) => {
                    v.place(order, bar, Phase::Close, &mut self.reports);
                }
                (VenueRequest::Place(order), SimVenue::Quotes(v), _) => v.place(order, &mut self.reports),
                (VenueRequest::Place(_), SimVenue::Bars(_), At::Quote(_)) => {
                    return Err(BacktestError::Config("a bar backtest cannot place orders at a quote".into()));
                }
                (VenueRequest::Cancel { order_id, .. }, venue, _) => venue.cancel(*order_id, &mut self.reports),
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

    /// Closes the position at `price` (for `--close-at-end`).
    fn close_at(&mut self, price: Price, now: Timestamp) -> Result<(), BacktestError> {
        let held = self.engine.state().position(self.instrument.id);
        let request = OrderRequest {
            client_order_id: self.auto_client_id(),
            instrument: self.instrument.id,
            side: self.closing_side(),
            order_type: OrderType::Market,
            time_in_force: model::TimeInForce::Gtc,
            quantity: held.abs(),
            reduce_only: true,
            post_only: false,
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
