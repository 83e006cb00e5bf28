//! The same suite against a real SQLite file and a real PostgreSQL database.
//!
//! PostgreSQL comes from `TRADECORE_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`; `scripts/test` starts a
//! server when none answers). Each test gets a database of its own.

use std::sync::atomic::Ordering;

use model::account::Position;
use model::event::{Event, EventKind};
use model::{
    ClientOrderId, Currency, Fill, InstrumentId, Liquidity, Money, Order, OrderId, OrderStatus, OrderType, Price,
    Quantity, Side, TimeInForce, Timestamp,
};
use store::testing::TestDatabase;
use store::{Commit, EquitySnapshot, GroupCommitter, OrderQuery, Store, StoreError, StoreOptions};

/// A fresh store of the named backend.
struct TestDb {
    store: Store,
    db: TestDatabase,
}

impl TestDb {
    async fn new(backend: &str) -> Self {
        let db = TestDatabase::create(backend, "store").await;
        Self { store: db.store().await, db }
    }

    async fn drop_db(self) {
        self.store.close().await;
        self.db.remove().await;
    }
}

fn usd() -> Currency {
    Currency::parse("USD").unwrap()
}

fn t(secs: i64) -> Timestamp {
    Timestamp::from_secs(1_700_000_000 + secs)
}

fn order(id: u64, status: OrderStatus, instrument: u32) -> Order {
    Order {
        id: OrderId(id),
        client_order_id: ClientOrderId::parse(&format!("c-{id}")).unwrap(),
        instrument: InstrumentId(instrument),
        side: Side::Buy,
        order_type: OrderType::Limit { price: Price::parse("101.25").unwrap() },
        time_in_force: TimeInForce::Gtc,
        quantity: Quantity::parse("2.5").unwrap(),
        filled_quantity: Quantity::ZERO,
        filled_notional: Money::ZERO,
        fees: Money::ZERO,
        reduce_only: false,
        post_only: false,
        status,
        reject_reason: None,
        ts_created: t(1),
        ts_updated: t(1),
    }
}

fn fill(order_id: u64, trade_id: u64) -> Fill {
    Fill {
        order_id: OrderId(order_id),
        trade_id,
        instrument: InstrumentId(1),
        side: Side::Buy,
        quantity: Quantity::parse("1.5").unwrap(),
        price: Price::parse("101.25").unwrap(),
        fee: Money::parse("0.151875").unwrap(),
        liquidity: Liquidity::Maker,
        ts: t(2),
    }
}

/// A commit that places order `id`, and one that fills part of it.
fn place_and_fill(account: i64, id: u64, first_seq: u64) -> (Commit, Commit) {
    let placed = order(id, OrderStatus::New, 1);
    let place = Commit {
        account,
        first_seq,
        events: vec![Event { ts: t(1), kind: EventKind::OrderSubmitted { order: Box::new(placed.clone()) } }],
        orders: vec![placed.clone()],
        ..Commit::default()
    };
    let f = fill(id, id * 10);
    let mut filled = placed;
    filled.status = OrderStatus::PartiallyFilled;
    filled.filled_quantity = f.quantity;
    let position = Position {
        instrument: InstrumentId(1),
        quantity: f.quantity,
        cost_basis: Money::parse("151.875").unwrap(),
        realized_pnl: Money::ZERO,
        fees: f.fee,
    };
    let fill_commit = Commit {
        account,
        first_seq: first_seq + 1,
        events: vec![
            Event { ts: t(2), kind: EventKind::OrderAccepted { order_id: OrderId(id) } },
            Event { ts: t(2), kind: EventKind::OrderFilled { fill: f } },
        ],
        orders: vec![filled],
        fills: vec![fill(id, id * 10)],
        positions: vec![position],
        balances: vec![(usd(), Money::parse("9848.125").unwrap() - Money::parse("0.151875").unwrap())],
    };
    (place, fill_commit)
}

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let db = super::TestDb::new("sqlite").await;
                    super::$name(&db.store).await;
                    db.drop_db().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let db = super::TestDb::new("postgres").await;
                    super::$name(&db.store).await;
                    db.drop_db().await;
                }
            )*
        }
    };
}

both_backends!(
    migrations_are_current_and_idempotent,
    journal_and_read_models_round_trip,
    a_failed_commit_writes_nothing,
    orders_filter_and_paginate,
    group_commit_batches_concurrent_accounts,
    snapshots_and_equity_history,
    candles_are_kept_and_queried_by_range,
);

async fn migrations_are_current_and_idempotent(store: &Store) {
    assert!(store.pending_migrations().await.unwrap().is_empty());
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
}

async fn journal_and_read_models_round_trip(store: &Store) {
    let account = store.create_account("alice paper", usd(), t(0)).await.unwrap();
    let (place, fill_commit) = place_and_fill(account, 1, 1);
    store.write(std::slice::from_ref(&place)).await.unwrap();
    store.write(std::slice::from_ref(&fill_commit)).await.unwrap();

    let events = store.events(account, 0, 100).await.unwrap();
    let expected: Vec<(u64, Event)> =
        place.events.iter().chain(&fill_commit.events).cloned().enumerate().map(|(i, e)| (i as u64 + 1, e)).collect();
    assert_eq!(events, expected);
    assert_eq!(store.events(account, 2, 100).await.unwrap().len(), 1, "after_seq skips what was seen");
    let back: Vec<(u64, Event)> = expected[..2].iter().rev().cloned().collect();
    assert_eq!(store.events_before(account, 3, 100).await.unwrap(), back, "newest first, before the seq");
    assert_eq!(store.events_before(account, 3, 1).await.unwrap(), back[..1]);
    assert_eq!(store.last_seq(account).await.unwrap(), 3);

    let stored = store.order(account, OrderId(1)).await.unwrap().unwrap();
    assert_eq!(stored, fill_commit.orders[0]);
    assert_eq!(store.fills(account, None, 10).await.unwrap(), vec![(3, fill(1, 10))]);
    assert_eq!(store.positions(account).await.unwrap(), fill_commit.positions);
    assert_eq!(store.balances(account).await.unwrap(), fill_commit.balances);
    let accounts = store.accounts().await.unwrap();
    assert_eq!(accounts.len(), 1);
    assert_eq!((accounts[0].name.as_str(), accounts[0].base_currency), ("alice paper", usd()));
}

async fn a_failed_commit_writes_nothing(store: &Store) {
    let account = store.create_account("a", usd(), t(0)).await.unwrap();
    let (place, _) = place_and_fill(account, 1, 1);
    store.write(&[place]).await.unwrap();
    // Seq 1 again, with a new order: the duplicate event fails the whole transaction.
    let (again, _) = place_and_fill(account, 2, 1);
    let err = store.write(&[again]).await.unwrap_err();
    assert!(matches!(err, StoreError::SeqConflict { seq: 1, .. }), "{err}");
    assert!(store.order(account, OrderId(2)).await.unwrap().is_none(), "the order row was rolled back");
    assert_eq!(store.last_seq(account).await.unwrap(), 1);
}

async fn orders_filter_and_paginate(store: &Store) {
    let account = store.create_account("a", usd(), t(0)).await.unwrap();
    let other = store.create_account("b", usd(), t(0)).await.unwrap();
    let mut commits = Vec::new();
    for id in 1..=25u64 {
        let status = if id % 5 == 0 { OrderStatus::Filled } else { OrderStatus::Accepted };
        let o = order(id, status, if id % 2 == 0 { 1 } else { 2 });
        commits.push(Commit { account, first_seq: id, events: vec![], orders: vec![o], ..Commit::default() });
    }
    commits.push(Commit {
        account: other,
        first_seq: 1,
        orders: vec![order(1, OrderStatus::New, 1)],
        ..Commit::default()
    });
    store.write(&commits).await.unwrap();

    let page1 = store.orders(account, &OrderQuery { limit: 10, ..OrderQuery::default() }).await.unwrap();
    let ids: Vec<u64> = page1.iter().map(|o| o.id.0).collect();
    assert_eq!(ids, (16..=25).rev().collect::<Vec<_>>(), "newest first");
    let page2 = store
        .orders(account, &OrderQuery { limit: 10, before: Some(OrderId(16)), ..OrderQuery::default() })
        .await
        .unwrap();
    assert_eq!(page2.first().map(|o| o.id.0), Some(15));
    let open =
        store.orders(account, &OrderQuery { open_only: true, limit: 100, ..OrderQuery::default() }).await.unwrap();
    assert_eq!(open.len(), 20);
    let filled = store
        .orders(account, &OrderQuery { status: Some(OrderStatus::Filled), limit: 100, ..OrderQuery::default() })
        .await
        .unwrap();
    assert_eq!(filled.len(), 5);
    let on_one = store
        .orders(account, &OrderQuery { instrument: Some(InstrumentId(1)), limit: 100, ..OrderQuery::default() })
        .await
        .unwrap();
    assert_eq!(on_one.len(), 12);
    // Scoped: the other account sees only its own order.
    assert_eq!(store.orders(other, &OrderQuery { limit: 100, ..OrderQuery::default() }).await.unwrap().len(), 1);
}

async fn group_commit_batches_concurrent_accounts(store: &Store) {
    let mut accounts = Vec::new();
    for i in 0..8 {
        accounts.push(store.create_account(&format!("acct {i}"), usd(), t(0)).await.unwrap());
    }
    let (committer, writer) = GroupCommitter::start(store.clone(), 256, 1024);
    let mut tasks = Vec::new();
    for (k, &account) in accounts.iter().enumerate() {
        let committer = committer.clone();
        tasks.push(tokio::spawn(async move {
            // Each account has one owner, which commits in order.
            for n in 0..100u64 {
                let id = n + 1;
                let (place, fill_commit) = place_and_fill(account, id, 3 * n + 1);
                committer.commit(place).await.unwrap_or_else(|e| panic!("account {k} order {id}: {e}"));
                committer.commit(fill_commit).await.unwrap_or_else(|e| panic!("account {k} fill {id}: {e}"));
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let stats = committer.stats();
    let batches = stats.batches.load(Ordering::Relaxed);
    let commits = stats.commits.load(Ordering::Relaxed);
    assert_eq!(commits, 8 * 200);
    assert!(batches < commits, "concurrent commits share transactions: {batches} batches for {commits} commits");
    drop(committer);
    writer.await.unwrap();
    for &account in &accounts {
        let events = store.events(account, 0, 10_000).await.unwrap();
        assert_eq!(events.len(), 300);
        assert!(events.iter().enumerate().all(|(i, (seq, _))| *seq == i as u64 + 1), "seqs are contiguous");
        assert_eq!(store.fills(account, None, 1_000).await.unwrap().len(), 100);
    }
    // A conflicting commit fails alone; its batch neighbours still land.
    let (committer, writer) = GroupCommitter::start(store.clone(), 256, 1024);
    let (dup, _) = place_and_fill(accounts[0], 999, 1);
    let (fresh, _) = place_and_fill(accounts[1], 999, 301);
    let (a, b) = tokio::join!(committer.commit(dup), committer.commit(fresh));
    assert!(matches!(a, Err(StoreError::SeqConflict { .. })), "{a:?}");
    b.unwrap();
    drop(committer);
    writer.await.unwrap();
    assert!(store.order(accounts[1], OrderId(999)).await.unwrap().is_some());
    assert!(store.order(accounts[0], OrderId(999)).await.unwrap().is_none());
}

async fn snapshots_and_equity_history(store: &Store) {
    let account = store.create_account("a", usd(), t(0)).await.unwrap();
    assert!(store.snapshot(account).await.unwrap().is_none());
    store.save_snapshot(account, 10, t(5), "{\"v\":1}").await.unwrap();
    store.save_snapshot(account, 20, t(6), "{\"v\":2}").await.unwrap();
    assert_eq!(store.snapshot(account).await.unwrap(), Some((20, "{\"v\":2}".to_string())));
    for (i, e) in ["10000", "10100.5", "9990.25"].iter().enumerate() {
        store.save_equity(account, t(i as i64 * 86_400), Money::parse(e).unwrap()).await.unwrap();
    }
    let history = store.equity_history(account, t(0), t(2 * 86_400)).await.unwrap();
    let figures: Vec<(Timestamp, Money)> = history.iter().map(|p| (p.ts, p.equity)).collect();
    assert_eq!(figures, vec![(t(0), Money::parse("10000").unwrap()), (t(86_400), Money::parse("10100.5").unwrap())]);
    assert!(history.iter().all(|p| p.by_currency.is_empty()), "none recorded");
    // Many accounts in one round, replacing what a moment already had, with
    // the equity in each currency.
    let other = store.create_account("b", usd(), t(0)).await.unwrap();
    let usdt = Currency::parse("USDT").unwrap();
    let snapshot = |account, equity: &str, by_currency: Vec<(Currency, Money)>| EquitySnapshot {
        account,
        ts: t(86_400),
        equity: Money::parse(equity).unwrap(),
        by_currency,
    };
    let by_currency = vec![(usd(), Money::parse("9000").unwrap()), (usdt, Money::parse("1234.5").unwrap())];
    let round = [snapshot(account, "9000", by_currency.clone()), snapshot(other, "5", vec![])];
    store.save_equities(t(86_400), &round).await.unwrap();
    store.save_equities(t(86_400), &[]).await.unwrap();
    let history = store.equity_history(account, t(86_400), t(86_401)).await.unwrap();
    assert_eq!(history, vec![snapshot(account, "9000", by_currency)]);
    assert_eq!(store.equity_history(other, t(0), t(10 * 86_400)).await.unwrap().len(), 1);
}

#[tokio::test]
async fn sqlite_survives_reopening() {
    let dir = std::env::temp_dir().join(format!("tc_store_reopen_{}", std::process::id()));
    let url = format!("sqlite:{}", dir.join("nested/data.db").display());
    let store = Store::connect(&url, StoreOptions::default()).await.unwrap();
    store.migrate().await.unwrap();
    let account = store.create_account("a", usd(), t(0)).await.unwrap();
    let (place, fill_commit) = place_and_fill(account, 1, 1);
    store.write(&[place, fill_commit]).await.unwrap();
    store.close().await;
    let reopened = Store::connect(&url, StoreOptions::default()).await.unwrap();
    assert!(reopened.pending_migrations().await.unwrap().is_empty());
    assert_eq!(reopened.last_seq(account).await.unwrap(), 3);
    assert_eq!(reopened.positions(account).await.unwrap().len(), 1);
    reopened.close().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn bad_urls_are_refused_clearly() {
    for url in ["mysql://x", "sqlite:", "nonsense"] {
        let err = Store::connect(url, StoreOptions::default()).await.unwrap_err().to_string();
        assert!(err.contains("unsupported database URL"), "{url}: {err}");
    }
}

async fn candles_are_kept_and_queried_by_range(store: &Store) {
    let candle = |minute: i64, close: &str| store::CandleRecord {
        instrument: InstrumentId(3),
        interval: "1m".into(),
        start: t(minute * 60),
        open: Price::parse("10").unwrap(),
        high: Price::parse("12").unwrap(),
        low: Price::parse("9.5").unwrap(),
        close: Price::parse(close).unwrap(),
        volume: Quantity::parse("1.25").unwrap(),
        trades: 4,
    };
    let candles: Vec<_> = (0..10).map(|m| candle(m, "11")).collect();
    store.save_candles(&candles).await.unwrap();
    // Saving a bucket again replaces it.
    store.save_candles(&[candle(3, "11.5")]).await.unwrap();
    let all = store.candles(InstrumentId(3), "1m", t(0), t(600), 100).await.unwrap();
    assert_eq!(all.len(), 10);
    assert_eq!(all[3].close, Price::parse("11.5").unwrap());
    assert_eq!(all[0], candles[0]);
    // A limit keeps the newest, still oldest first.
    let last = store.candles(InstrumentId(3), "1m", t(0), t(600), 3).await.unwrap();
    assert_eq!(last.iter().map(|c| c.start).collect::<Vec<_>>(), vec![t(420), t(480), t(540)]);
    assert!(store.candles(InstrumentId(3), "5m", t(0), t(600), 100).await.unwrap().is_empty());
}
