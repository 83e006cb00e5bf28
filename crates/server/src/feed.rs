//! The paper market: a simulated live feed stepping several times a second,
//! publishing quotes to the account actors and subscribers, and closing
//! candles (1m, 5m, 1h, 1d) into the store.

use std::sync::Arc;
use std::time::Duration;

use sim::candles::{Candle, CandleAggregator, Interval};
use sim::market::{MarketSpec, MarketTick, SimulatedMarket};
use store::CandleRecord;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::runtime::Runtime;

/// Converts a closed candle for the store.
#[must_use]
pub fn record(c: &Candle) -> CandleRecord {
    CandleRecord {
        instrument: c.instrument,
        interval: c.interval.to_string(),
        start: c.start,
        open: c.open,
        high: c.high,
        low: c.low,
        close: c.close,
        volume: c.volume,
        trades: c.trades,
    }
}

/// Starts the simulated market. It stops when `stop` turns true.
pub fn spawn(
    runtime: Arc<Runtime>,
    specs: Vec<MarketSpec>,
    ticks_per_second: u32,
    seed: u64,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut market = SimulatedMarket::new(specs.clone(), seed, runtime.now());
        let mut aggregators: Vec<CandleAggregator> =
            specs.iter().map(|s| CandleAggregator::new(s.instrument.id, &Interval::ALL)).collect();
        let period = Duration::from_secs_f64(1.0 / f64::from(ticks_per_second.max(1)));
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut ticks = Vec::new();
        let mut closed = Vec::new();
        let mut last_equity_minute = runtime.now().as_nanos().div_euclid(model::time::NANOS_PER_MINUTE);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => break,
            }
            if *stop.borrow() {
                break;
            }
            let now = runtime.now();
            ticks.clear();
            market.step(now, &mut ticks);
            for t in &ticks {
                let Some(agg) = aggregators.iter_mut().find(|a| a.instrument() == t.instrument()) else { continue };
                match t {
                    MarketTick::Quote(q) => {
                        agg.on_mid(q.ts, q.mid(), &mut closed);
                        runtime.publish_quote(*q).await;
                    }
                    MarketTick::Trade(tr) => agg.on_trade(tr.ts, tr.price, tr.quantity, &mut closed),
                }
            }
            for agg in &mut aggregators {
                agg.flush(now, &mut closed);
            }
            // Once a minute, on the minute: every account's equity for its history.
            let minute = now.as_nanos().div_euclid(model::time::NANOS_PER_MINUTE);
            if minute > last_equity_minute {
                last_equity_minute = minute;
                // Off the feed's loop: quotes keep flowing while it runs.
                let (runtime, at) =
                    (Arc::clone(&runtime), model::Timestamp::from_nanos(minute * model::time::NANOS_PER_MINUTE));
                tokio::spawn(async move { runtime.snapshot_equity(at).await });
            }
            if !closed.is_empty() {
                let records: Vec<CandleRecord> = closed.iter().map(record).collect();
                match runtime.store.save_candles(&records).await {
                    // Announced once stored, so whatever a bot acted on is there when it restarts.
                    Ok(()) => closed.drain(..).for_each(|c| runtime.publish_candle(c)),
                    Err(e) => {
                        tracing::warn!(error = %e, "candles not saved");
                        closed.clear();
                    }
                }
            }
        }
    })
}
