//! Matching throughput and per-operation latency of `sim::book::OrderBook`.
//!
//! A deterministic mix (fixed-seed splitmix64) of 3,000,000 operations over
//! about 1,000 resting orders: 9 % GTC limit places, 3 % IOC, 6 % cancels and
//! 82 % amends (quantity down, quantity up, price changes, some crossing).
//!
//! Nothing in such a mix holds the book at a size: cancels and places arrive
//! at fixed rates while fills remove orders at a rate set by the aggressive
//! flow. So the aggression (IOC size and how often places and re-prices cross)
//! is higher while more than [`TARGET_RESTING`] orders rest and lower below
//! it; the operation mix itself stays fixed.
//!
//! The mix depends on the book's state (which orders are still live), so it is
//! generated once against a book and recorded; the measured runs replay the
//! recording on fresh books, so they time the book alone, not the generator.
//! Run with `cargo bench -p sim --bench matching`.

use std::time::{Duration, Instant};

use model::{InstrumentId, OrderId, Price, Quantity, Rate, Side, TimeInForce, Timestamp};
use sim::book::{BookEvent, FeeSchedule, NewOrder, OrderBook};

const OPERATIONS: usize = 3_000_000;
const PREFILL: usize = 1_000;
const TARGET_RESTING: usize = 1_000;
const SEED: u64 = 0x7261_6465_636f_7265; // "tradecore"
/// Prices in a 0.01 tick around 100.
const TICK: i64 = 10_000_000;
const MID: i64 = 100 * UNIT;
const UNIT: i64 = 1_000_000_000;

/// splitmix64: tiny, fast, and good enough to drive a benchmark.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (Lemire's multiply-shift, bias negligible here).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

#[derive(Clone, Copy)]
enum Op {
    Place(NewOrder),
    Cancel(OrderId),
    Amend(OrderId, Option<Price>, Option<Quantity>),
}

/// Generates the mix, tracking which orders are live from the book's events.
struct Generator {
    rng: SplitMix64,
    next_id: u64,
    /// Candidate ids for cancels and amends; dead ones are dropped lazily.
    live: Vec<u64>,
    /// Per order id: total quantity and filled quantity (raw).
    quantity: Vec<i64>,
    filled: Vec<i64>,
    counts: [usize; 4],
}

impl Generator {
    fn new() -> Self {
        let capacity = OPERATIONS / 5;
        Self {
            rng: SplitMix64(SEED),
            next_id: 1,
            live: Vec::with_capacity(4 * PREFILL),
            quantity: vec![0; capacity],
            filled: vec![0; capacity],
            counts: [0; 4],
        }
    }

    fn is_live(&self, id: u64) -> bool {
        self.quantity[id as usize] > self.filled[id as usize]
    }

    fn side(&mut self) -> Side {
        if self.rng.chance(50) { Side::Buy } else { Side::Sell }
    }

    /// A resting price 1 to 40 ticks behind the mid on `side`'s own side.
    fn passive_price(&mut self, side: Side) -> i64 {
        let ticks = 1 + self.rng.below(40) as i64;
        MID - side.sign() * ticks * TICK
    }

    /// A price 0 to 3 ticks through the mid: crosses when the other side is near.
    fn aggressive_price(&mut self, side: Side) -> i64 {
        let ticks = self.rng.below(4) as i64;
        MID + side.sign() * ticks * TICK
    }

    fn place(&mut self, tif: TimeInForce, crossing_percent: u64, max_units: u64) -> Op {
        let side = self.side();
        let price =
            if self.rng.chance(crossing_percent) { self.aggressive_price(side) } else { self.passive_price(side) };
        let id = self.next_id;
        self.next_id += 1;
        let units = 1 + self.rng.below(max_units) as i64;
        self.quantity[id as usize] = units * UNIT;
        Op::Place(NewOrder {
            id: OrderId(id),
            side,
            price: Some(Price::from_raw(price)),
            quantity: Quantity::from_raw(units * UNIT),
            time_in_force: tif,
            post_only: false,
        })
    }

    /// A random live order id, or `None` when the book is empty.
    fn pick(&mut self) -> Option<u64> {
        while !self.live.is_empty() {
            let i = self.rng.below(self.live.len() as u64) as usize;
            let id = self.live[i];
            if self.is_live(id) {
                return Some(id);
            }
            self.live.swap_remove(i);
        }
        None
    }

    fn next_op(&mut self, book: &OrderBook) -> Op {
        let roll = self.rng.below(100);
        let kind = match roll {
            0..9 => 0,
            9..12 => 1,
            12..18 => 2,
            _ => 3,
        };
        self.counts[kind] += 1;
        let heavy = book.len() > TARGET_RESTING;
        let Some(id) = (if kind >= 2 { self.pick() } else { None }) else {
            return match (kind, heavy) {
                (1, true) => self.place(TimeInForce::Ioc, 100, 60),
                (1, false) => self.place(TimeInForce::Ioc, 100, 4),
                (_, true) => self.place(TimeInForce::Gtc, 10, 20),
                (_, false) => self.place(TimeInForce::Gtc, 2, 20),
            };
        };
        if kind == 2 {
            return Op::Cancel(OrderId(id));
        }
        let (quantity, filled) = (self.quantity[id as usize], self.filled[id as usize]);
        match self.rng.below(100) {
            // Quantity down, staying above what has filled: keeps priority.
            0..45 if quantity - filled > UNIT => Op::Amend(
                OrderId(id),
                None,
                Some(Quantity::from_raw(
                    quantity - UNIT * (1 + self.rng.below(2) as i64).min((quantity - filled) / UNIT - 1).max(1),
                )),
            ),
            // Quantity up: to the back of the queue.
            0..70 => {
                Op::Amend(OrderId(id), None, Some(Quantity::from_raw(quantity + UNIT * (1 + self.rng.below(3) as i64))))
            }
            // A new price, occasionally through the mid.
            _ => {
                let side = book.order(OrderId(id)).map_or(Side::Buy, |o| o.side);
                let crossing = if heavy { 6 } else { 1 };
                let price =
                    if self.rng.chance(crossing) { self.aggressive_price(side) } else { self.passive_price(side) };
                Op::Amend(OrderId(id), Some(Price::from_raw(price)), None)
            }
        }
    }

    fn observe(&mut self, op: Op, events: &[BookEvent]) {
        for e in events {
            match e {
                BookEvent::Fill(f) => self.filled[f.order_id.0 as usize] += f.quantity.raw(),
                BookEvent::Cancelled { id, .. } | BookEvent::Rejected { id, .. } => {
                    self.filled[id.0 as usize] = self.quantity[id.0 as usize];
                }
                BookEvent::Amended { id, quantity, .. } => self.quantity[id.0 as usize] = quantity.raw(),
                BookEvent::Accepted { .. } => {}
            }
        }
        if let Op::Place(o) = op
            && self.is_live(o.id.0)
        {
            self.live.push(o.id.0);
        }
    }
}

fn new_book() -> OrderBook {
    let fees = FeeSchedule { maker: Rate::from_bps(-1), taker: Rate::from_bps(4) };
    OrderBook::new(InstrumentId(1), Quantity::ONE, fees)
}

#[inline]
fn apply(book: &mut OrderBook, op: Op, ts: Timestamp, out: &mut Vec<BookEvent>) -> bool {
    let result = match op {
        Op::Place(o) => book.place(o, ts, out),
        Op::Cancel(id) => book.cancel(id, ts, out),
        Op::Amend(id, price, quantity) => book.amend(id, price, quantity, ts, out),
    };
    result.is_ok()
}

/// Generates the pre-fill and the mix by running them against a book.
fn record() -> (Vec<Op>, Vec<Op>, usize) {
    let mut generator = Generator::new();
    let mut book = new_book();
    let mut out = Vec::with_capacity(256);
    let mut prefill = Vec::with_capacity(PREFILL);
    for _ in 0..PREFILL {
        let op = generator.place(TimeInForce::Gtc, 0, 20);
        out.clear();
        apply(&mut book, op, Timestamp::from_nanos(0), &mut out);
        generator.observe(op, &out);
        prefill.push(op);
    }
    generator.counts = [0; 4];
    let mut ops = Vec::with_capacity(OPERATIONS);
    let mut size_sum = 0usize;
    for i in 0..OPERATIONS {
        let op = generator.next_op(&book);
        out.clear();
        apply(&mut book, op, Timestamp::from_nanos(i as i64), &mut out);
        generator.observe(op, &out);
        ops.push(op);
        size_sum += book.len();
    }
    let c = generator.counts;
    println!(
        "mix: {} GTC places, {} IOC, {} cancels, {} amends; mean resting orders {}, at the end {}",
        c[0],
        c[1],
        c[2],
        c[3],
        size_sum / OPERATIONS,
        book.len()
    );
    (prefill, ops, c.iter().sum())
}

fn prefilled(prefill: &[Op], out: &mut Vec<BookEvent>) -> OrderBook {
    let mut book = new_book();
    for &op in prefill {
        out.clear();
        apply(&mut book, op, Timestamp::from_nanos(0), out);
    }
    book
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".to_string());
    format!("{cores} cores (nproc), {model}")
}

fn main() {
    println!("machine: {}", machine());
    let (prefill, ops, _) = record();
    let mut out = Vec::with_capacity(256);

    // Throughput: the whole mix under one clock reading, best of three.
    let mut best = Duration::MAX;
    let mut trades = 0;
    for _ in 0..3 {
        let mut book = prefilled(&prefill, &mut out);
        let mut failed = 0usize;
        let start = Instant::now();
        for (i, &op) in ops.iter().enumerate() {
            out.clear();
            failed += usize::from(!apply(&mut book, op, Timestamp::from_nanos(i as i64), &mut out));
        }
        let elapsed = start.elapsed();
        assert_eq!(failed, 0, "the replay must follow the recording");
        best = best.min(elapsed);
        trades = book.next_trade_id() - 1;
    }
    let rate = ops.len() as f64 / best.as_secs_f64();

    // Latency: each operation timed on its own, into a preallocated vector.
    let mut latencies = vec![0u64; ops.len()];
    let mut book = prefilled(&prefill, &mut out);
    for (i, &op) in ops.iter().enumerate() {
        out.clear();
        let start = Instant::now();
        apply(&mut book, op, Timestamp::from_nanos(i as i64), &mut out);
        latencies[i] = start.elapsed().as_nanos() as u64;
    }
    assert_eq!(book.next_trade_id() - 1, trades, "replays are deterministic");
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];

    println!("operations: {}", ops.len());
    println!("trades: {trades} ({} fill events)", 2 * trades);
    println!("throughput: {:.2} million operations/s ({:.1} ns/op, best of 3)", rate / 1e6, 1e9 / rate);
    println!(
        "latency ns: p50 {}  p99 {}  p99.99 {}  max {}  (includes ~{} ns of Instant overhead)",
        at(0.50),
        at(0.99),
        at(0.9999),
        latencies[latencies.len() - 1],
        clock_overhead()
    );
}

/// The median cost of reading the clock twice, to read the latencies against.
fn clock_overhead() -> u64 {
    let mut samples: Vec<u64> = (0..10_001)
        .map(|_| {
            let start = Instant::now();
            start.elapsed().as_nanos() as u64
        })
        .collect();
    samples.sort_unstable();
    samples[samples.len() / 2]
}
