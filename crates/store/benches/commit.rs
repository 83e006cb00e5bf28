//! Group-commit throughput of the store alone: `cargo bench -p store --bench commit`.
//!
//! 64 concurrent writers, each owning one account, each committing an order
//! placement (one event, one order row) and then its fill (two events, order,
//! fill, position and balance rows), acknowledged only once durable. Prints
//! durable orders per second and commit latency percentiles for SQLite (a
//! file, synchronous=FULL) and PostgreSQL (TRADECORE_TEST_POSTGRES_URL or the
//! local default).

use std::time::{Duration, Instant};

use model::account::Position;
use model::event::{Event, EventKind};
use model::{
    ClientOrderId, Currency, Fill, InstrumentId, Liquidity, Money, Order, OrderId, OrderStatus, OrderType, Price,
    Quantity, Side, TimeInForce, Timestamp,
};
use store::{Commit, GroupCommitter, Store, StoreOptions};

const WRITERS: usize = 64;
const ORDERS_PER_WRITER: u64 = 300;

fn order(id: u64, now: Timestamp) -> Order {
    Order {
        id: OrderId(id),
        client_order_id: ClientOrderId::sequence("bench", id),
        instrument: InstrumentId(1),
        side: Side::Buy,
        order_type: OrderType::Market,
        time_in_force: TimeInForce::Gtc,
        quantity: Quantity::from_int(1),
        filled_quantity: Quantity::ZERO,
        filled_notional: Money::ZERO,
        fees: Money::ZERO,
        reduce_only: false,
        post_only: false,
        status: OrderStatus::New,
        reject_reason: None,
        ts_created: now,
        ts_updated: now,
    }
}

async fn writer(committer: GroupCommitter, account: i64, latencies: &mut Vec<Duration>) {
    let usd = Currency::parse("USD").unwrap_or_else(|e| panic!("{e}"));
    for n in 0..ORDERS_PER_WRITER {
        let id = n + 1;
        let now = Timestamp::from_secs(1_700_000_000 + i64::try_from(n).unwrap_or(0));
        let placed = order(id, now);
        let place = Commit {
            account,
            first_seq: 3 * n + 1,
            events: vec![Event { ts: now, kind: EventKind::OrderSubmitted { order: Box::new(placed.clone()) } }],
            orders: vec![placed.clone()],
            ..Commit::default()
        };
        let started = Instant::now();
        committer.commit(place).await.unwrap_or_else(|e| panic!("{e}"));
        latencies.push(started.elapsed());
        let fill = Fill {
            order_id: OrderId(id),
            trade_id: id,
            instrument: InstrumentId(1),
            side: Side::Buy,
            quantity: Quantity::from_int(1),
            price: Price::from_int(100),
            fee: Money::parse("0.1").unwrap_or_default(),
            liquidity: Liquidity::Taker,
            ts: now,
        };
        let mut filled = placed;
        filled.status = OrderStatus::Filled;
        filled.filled_quantity = Quantity::from_int(1);
        let position = Position {
            instrument: InstrumentId(1),
            quantity: Quantity::from_int(i64::try_from(id).unwrap_or(0)),
            cost_basis: Money::from_int(100),
            realized_pnl: Money::ZERO,
            fees: Money::ZERO,
        };
        let fill_commit = Commit {
            account,
            first_seq: 3 * n + 2,
            events: vec![
                Event { ts: now, kind: EventKind::OrderAccepted { order_id: OrderId(id) } },
                Event { ts: now, kind: EventKind::OrderFilled { fill: fill.clone() } },
            ],
            orders: vec![filled],
            fills: vec![fill],
            positions: vec![position],
            balances: vec![(usd, Money::from_int(10_000))],
        };
        let started = Instant::now();
        committer.commit(fill_commit).await.unwrap_or_else(|e| panic!("{e}"));
        latencies.push(started.elapsed());
    }
}

async fn bench(name: &str, store: Store) {
    store.migrate().await.unwrap_or_else(|e| panic!("{e}"));
    let usd = Currency::parse("USD").unwrap_or_else(|e| panic!("{e}"));
    let mut accounts = Vec::new();
    for i in 0..WRITERS {
        accounts.push(
            store
                .create_account(&format!("bench {i}"), usd, Timestamp::default())
                .await
                .unwrap_or_else(|e| panic!("{e}")),
        );
    }
    let (committer, handle) = GroupCommitter::start(store.clone(), 512, 4096);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for account in accounts {
        let committer = committer.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(2 * ORDERS_PER_WRITER as usize);
            writer(committer, account, &mut latencies).await;
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap_or_else(|e| panic!("{e}")));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let stats = committer.stats();
    let batches = stats.batches.load(std::sync::atomic::Ordering::Relaxed);
    let commits = stats.commits.load(std::sync::atomic::Ordering::Relaxed);
    drop(committer);
    let _ = handle.await;
    latencies.sort_unstable();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)].as_secs_f64() * 1e3;
    let orders = WRITERS as u64 * ORDERS_PER_WRITER;
    println!(
        "{name}: {orders} orders (placement + fill = {commits} commits) by {WRITERS} writers in {elapsed:.2} s = {:.0} durable orders/s, {:.0} commits/s; {:.1} commits per transaction; commit latency p50 {:.2} ms, p99 {:.2} ms",
        orders as f64 / elapsed,
        commits as f64 / elapsed,
        commits as f64 / batches.max(1) as f64,
        pct(0.5),
        pct(0.99)
    );
    store.close().await;
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap_or_else(|e| panic!("{e}"));
    runtime.block_on(async {
        let dir = std::env::temp_dir().join(format!("tc_commit_bench_{}", std::process::id()));
        let url = format!("sqlite:{}", dir.join("bench.db").display());
        bench(
            "sqlite (synchronous=FULL)",
            Store::connect(&url, StoreOptions::default()).await.unwrap_or_else(|e| panic!("{e}")),
        )
        .await;
        let _ = std::fs::remove_dir_all(&dir);

        let admin_url = std::env::var("TRADECORE_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        match Store::connect(&admin_url, StoreOptions { max_connections: 1, ..StoreOptions::default() }).await {
            Ok(admin) => {
                let name = format!("tc_commit_bench_{}", std::process::id());
                admin.execute_admin(&format!("CREATE DATABASE {name}")).await.unwrap_or_else(|e| panic!("{e}"));
                let url = format!("{}/{name}", admin_url.rsplit_once('/').map_or(admin_url.as_str(), |(base, _)| base));
                bench(
                    "postgres",
                    Store::connect(&url, StoreOptions { max_connections: 4, ..StoreOptions::default() })
                        .await
                        .unwrap_or_else(|e| panic!("{e}")),
                )
                .await;
                let _ = admin.execute_admin(&format!("DROP DATABASE {name}")).await;
            }
            Err(e) => println!("postgres: skipped, cannot connect to {admin_url}: {e}"),
        }
    });
}
