//! Account actors against real databases: orders are acknowledged only when
//! durable, quotes fill paper orders, and a restart rebuilds exactly the
//! state that was journaled.

use std::time::Duration;

use engine::{Command, OrderRequest, Submission};
use model::{
    ClientOrderId, Currency, Instrument, InstrumentId, Money, OrderStatus, OrderType, Price, Quantity, Quote, Rate,
    Side, TimeInForce, Timestamp,
};
use server::accounts::{self, AccountHandle};
use sim::quotes::QuoteFillConfig;
use store::testing::TestDatabase;
use store::{GroupCommitter, OrderQuery, Store};

async fn store(backend: &str) -> (Store, TestDatabase) {
    let db = TestDatabase::create(backend, "accounts").await;
    (db.store().await, db)
}

async fn remove(store: Store, db: TestDatabase) {
    store.close().await;
    db.remove().await;
}

fn usd() -> Currency {
    Currency::parse("USD").unwrap()
}

fn fill_config() -> QuoteFillConfig {
    QuoteFillConfig {
        maker_fee: Rate::parse("0.001").unwrap(),
        taker_fee: Rate::parse("0.002").unwrap(),
        slippage: Rate::ZERO,
        multiplier: Quantity::ONE,
        respect_size: false,
    }
}

fn quote(secs: i64, bid: &str, ask: &str) -> Quote {
    Quote {
        instrument: InstrumentId(1),
        ts: Timestamp::from_secs(1_700_000_000 + secs),
        bid: Price::parse(bid).unwrap(),
        bid_size: Quantity::from_int(100),
        ask: Price::parse(ask).unwrap(),
        ask_size: Quantity::from_int(100),
    }
}

fn request(id: &str, side: Side, qty: i64, order_type: OrderType) -> OrderRequest {
    OrderRequest {
        client_order_id: ClientOrderId::parse(id).unwrap(),
        instrument: InstrumentId(1),
        side,
        order_type,
        time_in_force: TimeInForce::Gtc,
        quantity: Quantity::from_int(qty),
        reduce_only: false,
        post_only: false,
        reference_price: None,
    }
}

async fn open(store: &Store, committer: &GroupCommitter, id: i64) -> AccountHandle {
    let (updates, _) = tokio::sync::broadcast::channel(1024);
    open_with(store, committer, id, updates).await
}

async fn open_with(store: &Store, committer: &GroupCommitter, id: i64, updates: accounts::Updates) -> AccountHandle {
    accounts::start(
        id,
        usd(),
        store.clone(),
        committer.clone(),
        accounts::Backend::Paper(fill_config()),
        accounts::wall_clock,
        updates,
    )
    .await
    .unwrap()
}

/// The account's state once everything it did is durable.
async fn settle(handle: &AccountHandle) -> engine::AccountState {
    handle.flush().await.unwrap();
    handle.state().await.unwrap()
}

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name("sqlite").await; } )* }
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name("postgres").await; } )* }
    };
}

both_backends!(
    orders_fill_on_quotes_and_survive_a_restart,
    concurrent_submissions_are_all_durable_and_in_order,
    updates_carry_each_orders_state_and_the_commits_holdings,
);

async fn orders_fill_on_quotes_and_survive_a_restart(backend: &str) {
    let (store, db) = store(backend).await;
    let account = store.create_account("paper", usd(), Timestamp::default()).await.unwrap();
    let (committer, writer) = GroupCommitter::start(store.clone(), 256, 1024);
    let handle = open(&store, &committer, account).await;
    handle.command(Command::AddInstrument { instrument: Instrument::simple(1, "XYZ") }).await.unwrap();
    handle.command(Command::AdjustCash { currency: usd(), amount: Money::from_int(10_000) }).await.unwrap();
    handle.quote(quote(0, "99.9", "100.1"));

    // A market buy fills at the ask of the current quote.
    let placed = handle.submit(request("m1", Side::Buy, 10, OrderType::Market)).await.unwrap();
    assert!(matches!(placed.submission, Submission::Sent(_)), "{:?}", placed.submission);
    // Acknowledged means durable: the order is in the read model already.
    assert!(store.order(account, placed.order.id).await.unwrap().is_some());
    // A resting limit sell above the market, and one far away that stays open.
    let limit =
        handle.submit(request("l1", Side::Sell, 4, OrderType::Limit { price: Price::from_int(101) })).await.unwrap();
    let resting =
        handle.submit(request("l2", Side::Sell, 1, OrderType::Limit { price: Price::from_int(150) })).await.unwrap();
    // Idempotent: the same client order id again changes nothing.
    let again =
        handle.submit(request("l1", Side::Sell, 4, OrderType::Limit { price: Price::from_int(101) })).await.unwrap();
    assert_eq!(again.submission, Submission::Duplicate(limit.order.id));

    handle.quote(quote(1, "101.2", "101.4"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = settle(&handle).await;
    assert_eq!(before.position(InstrumentId(1)), Quantity::from_int(6));
    assert_eq!(before.orders[&limit.order.id].status, OrderStatus::Filled);
    assert!(before.open_orders.contains(&resting.order.id));
    // Read models agree with the engine.
    let positions = store.positions(account).await.unwrap();
    assert_eq!(positions[0].quantity, Quantity::from_int(6));
    let balances = store.balances(account).await.unwrap();
    assert_eq!(balances, before.balances.iter().map(|(c, m)| (*c, *m)).collect::<Vec<_>>());

    // Restart: stop the actor and the writer, start again from the store.
    drop(handle);
    drop(committer);
    writer.await.unwrap();
    let (committer, writer) = GroupCommitter::start(store.clone(), 256, 1024);
    let handle = open(&store, &committer, account).await;
    let mut after = handle.state().await.unwrap();
    let mut expected = before.clone();
    expected.clear_marks();
    after.clear_marks();
    assert_eq!(after, expected, "a restart rebuilds exactly the journaled state");

    // The restored resting order still works, with fresh trade ids.
    handle.quote(quote(2, "150", "150.2"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let state = settle(&handle).await;
    assert_eq!(state.orders[&resting.order.id].status, OrderStatus::Filled);
    assert_eq!(state.position(InstrumentId(1)), Quantity::from_int(5));
    assert!(
        store
            .orders(account, &OrderQuery { open_only: true, limit: 10, ..OrderQuery::default() })
            .await
            .unwrap()
            .is_empty()
    );
    drop(handle);
    drop(committer);
    writer.await.unwrap();
    remove(store, db).await;
}

async fn concurrent_submissions_are_all_durable_and_in_order(backend: &str) {
    let (store, db) = store(backend).await;
    let account = store.create_account("busy", usd(), Timestamp::default()).await.unwrap();
    let (committer, writer) = GroupCommitter::start(store.clone(), 256, 1024);
    let handle = open(&store, &committer, account).await;
    handle.command(Command::AddInstrument { instrument: Instrument::simple(1, "XYZ") }).await.unwrap();
    handle.command(Command::AdjustCash { currency: usd(), amount: Money::from_int(1_000_000) }).await.unwrap();
    let mut tasks = Vec::new();
    for client in 0..16 {
        let handle = handle.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..25 {
                let req =
                    request(&format!("c{client}-{n}"), Side::Buy, 1, OrderType::Limit { price: Price::from_int(90) });
                let placed = handle.submit(req).await.unwrap();
                assert!(matches!(placed.submission, Submission::Sent(_)));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let all = store.orders(account, &OrderQuery { limit: 1_000, ..OrderQuery::default() }).await.unwrap();
    assert_eq!(all.len(), 400, "every acknowledged order is in the read model");
    let events = store.events(account, 0, 10_000).await.unwrap();
    assert!(events.iter().enumerate().all(|(i, (seq, _))| *seq == i as u64 + 1), "the journal has no gaps");
    drop(handle);
    drop(committer);
    writer.await.unwrap();
    remove(store, db).await;
}

/// What was published, checked against the journal: each order event carries
/// the order exactly as a fold of the journal up to that event has it (also
/// for events of one commit, and for orders placed before a restart), and the
/// last holdings published agree with the read models.
async fn updates_carry_each_orders_state_and_the_commits_holdings(backend: &str) {
    let (store, db) = store(backend).await;
    let account = store.create_account("published", usd(), Timestamp::default()).await.unwrap();
    let (committer, writer) = GroupCommitter::start(store.clone(), 256, 1024);
    let (updates, mut published) = tokio::sync::broadcast::channel(1024);
    let handle = open_with(&store, &committer, account, updates.clone()).await;
    handle.command(Command::AddInstrument { instrument: Instrument::simple(1, "XYZ") }).await.unwrap();
    handle.command(Command::AdjustCash { currency: usd(), amount: Money::from_int(10_000) }).await.unwrap();
    handle.quote(quote(0, "99.9", "100.1"));
    // Accepted and filled in one commit.
    handle.submit(request("m1", Side::Buy, 10, OrderType::Market)).await.unwrap();
    let resting =
        handle.submit(request("l1", Side::Sell, 4, OrderType::Limit { price: Price::from_int(150) })).await.unwrap();
    settle(&handle).await;
    drop(handle);
    drop(committer);
    writer.await.unwrap();
    // After a restart the publisher starts from the open orders it reloads.
    let (committer, writer) = GroupCommitter::start(store.clone(), 256, 1024);
    let handle = open_with(&store, &committer, account, updates).await;
    handle.quote(quote(1, "150", "150.2"));
    // The flush queues behind the quote, so its fill is durable and published after it.
    let state = settle(&handle).await;
    assert_eq!(state.orders[&resting.order.id].status, OrderStatus::Filled);

    let journal = store.events(account, 0, 10_000).await.unwrap();
    let mut reference = engine::AccountState::new(usd());
    let mut last_positions = None;
    let mut last_balances = None;
    let mut m1 = Vec::new();
    for (seq, event) in &journal {
        // Durable first, published just after: wait for it.
        let update = tokio::time::timeout(Duration::from_secs(5), published.recv()).await.unwrap().unwrap();
        assert_eq!((update.seq, &update.event), (*seq, event), "published in journal order, each once");
        reference.apply(event);
        let expected = accounts::order_of(&event.kind).map(|id| reference.orders[&id].clone());
        assert_eq!(update.order, expected, "the order right after event {seq}");
        if let Some(order) = update.order.as_ref().filter(|o| o.client_order_id.as_str() == "m1") {
            m1.push(order.status);
        }
        if let Some(holdings) = &update.holdings {
            if !holdings.positions.is_empty() {
                last_positions = Some(holdings.positions.clone());
            }
            if !holdings.balances.is_empty() {
                last_balances = Some(holdings.balances.clone());
            }
        }
    }
    assert!(published.try_recv().is_err(), "nothing but the journal was published");
    // The market order was accepted and filled in one commit, yet each event has its own state.
    assert_eq!(m1, [OrderStatus::New, OrderStatus::Accepted, OrderStatus::Filled]);
    assert_eq!(last_positions, Some(store.positions(account).await.unwrap()));
    assert_eq!(last_balances, Some(store.balances(account).await.unwrap()));
    drop(handle);
    drop(committer);
    writer.await.unwrap();
    remove(store, db).await;
}
