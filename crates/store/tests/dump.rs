//! The logical dump on real SQLite and PostgreSQL: every table is in it, it
//! loads into an empty database of either backend with every row and type
//! intact, ids keep counting after a load, and a damaged dump or a non-empty
//! target is refused with nothing written.

use model::event::{Event, EventKind};
use model::{
    ClientOrderId, Currency, InstrumentId, Money, Order, OrderId, OrderStatus, OrderType, Price, Quantity, Side,
    TimeInForce, Timestamp,
};
use store::auth::{AuditEntry, NewUser, Role};
use store::dump::{NOT_DUMPED, TABLES};
use store::jobs::NewJob;
use store::testing::TestDatabase;
use store::{CandleRecord, Commit, EquitySnapshot, OrderQuery, Store};

fn t(secs: i64) -> Timestamp {
    Timestamp::from_secs(1_700_000_000 + secs)
}

fn usd() -> Currency {
    Currency::parse("USD").unwrap()
}

/// A little of everything: users, an account with an order and cash, candles, equity, a job, a backtest.
async fn seed(store: &Store) -> i64 {
    let user = NewUser {
        username: "alice",
        password_hash: "$argon2id$x",
        role: Role::Admin,
        password_change_required: true,
        created: t(0),
    };
    let alice = store.create_user(&user, &AuditEntry::new(t(0), None, "user.create", None)).await.unwrap().unwrap();
    let account = store.create_owned_account("main", usd(), t(0), alice.id).await.unwrap();
    let order = Order {
        id: OrderId(1),
        client_order_id: ClientOrderId::parse("c-1").unwrap(),
        instrument: InstrumentId(1),
        side: Side::Buy,
        order_type: OrderType::Limit { price: Price::parse("101.25").unwrap() },
        time_in_force: TimeInForce::Gtc,
        quantity: Quantity::parse("2.5").unwrap(),
        filled_quantity: Quantity::ZERO,
        filled_notional: Money::ZERO,
        fees: Money::ZERO,
        reduce_only: false,
        post_only: false,
        status: OrderStatus::New,
        reject_reason: None,
        ts_created: t(1),
        ts_updated: t(1),
    };
    let commit = Commit {
        account,
        first_seq: 1,
        events: vec![
            Event { ts: t(1), kind: EventKind::CashAdjusted { currency: usd(), amount: Money::from_int(1_000) } },
            Event { ts: t(1), kind: EventKind::OrderSubmitted { order: Box::new(order.clone()) } },
        ],
        orders: vec![order],
        balances: vec![(usd(), Money::from_int(1_000))],
        ..Commit::default()
    };
    store.write(&[commit]).await.unwrap();
    let candle = CandleRecord {
        instrument: InstrumentId(1),
        interval: "1m".into(),
        start: t(60),
        open: Price::from_int(1),
        high: Price::from_int(2),
        low: Price::parse("0.5").unwrap(),
        close: Price::parse("1.5").unwrap(),
        volume: Quantity::parse("10.25").unwrap(),
        trades: 3,
    };
    store.save_candles(&[candle]).await.unwrap();
    let snapshot = EquitySnapshot {
        account,
        ts: t(120),
        equity: Money::from_int(1_000),
        by_currency: vec![(usd(), Money::from_int(1_000))],
    };
    store.save_equities(t(120), &[snapshot]).await.unwrap();
    let job =
        NewJob { kind: "backup", payload: "{\"a\":1}", run_at: t(5), max_attempts: 3, slot: Some(("backup", t(5))) };
    store.enqueue_job(&job, t(0)).await.unwrap();
    store.create_backtest(alice.id, "{\"strategy\":\"sma-cross\"}", t(9)).await.unwrap();
    account
}

async fn dump(store: &Store) -> Vec<u8> {
    let mut out = Vec::new();
    store.dump(&mut out, &mut |_, _| {}).await.unwrap();
    out
}

async fn check_loaded(store: &Store, account: i64) {
    let orders = store.orders(account, &OrderQuery::default()).await.unwrap();
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0].quantity, Quantity::parse("2.5").unwrap());
    assert_eq!(store.balances(account).await.unwrap(), vec![(usd(), Money::from_int(1_000))]);
    assert_eq!(store.events(account, 0, 100).await.unwrap().len(), 2);
    let user = store.user_by_name("alice").await.unwrap().unwrap();
    assert!(user.password_change_required, "booleans survive the crossing");
    assert_eq!(
        store.candles(InstrumentId(1), "1m", t(0), t(1_000), 10).await.unwrap()[0].volume,
        Quantity::parse("10.25").unwrap()
    );
    assert_eq!(
        store.equity_history(account, t(0), t(1_000)).await.unwrap()[0].by_currency,
        vec![(usd(), Money::from_int(1_000))]
    );
    let jobs = store.jobs(None, None, None, 10).await.unwrap();
    assert_eq!((jobs[0].payload.as_str(), jobs[0].scheduled_for), ("{\"a\":1}", Some(t(5))));
    // Ids continue after the loaded ones.
    let next = store.create_account("second", usd(), t(10)).await.unwrap();
    assert_eq!(next, account + 1);
    let bob = NewUser {
        username: "bob",
        password_hash: "x",
        role: Role::Viewer,
        password_change_required: false,
        created: t(11),
    };
    let bob = store.create_user(&bob, &AuditEntry::new(t(11), None, "user.create", None)).await.unwrap().unwrap();
    assert_eq!(bob.id, user.id + 1);
}

#[tokio::test]
async fn dumps_load_into_either_backend() {
    for (from, to) in [("sqlite", "postgres"), ("postgres", "sqlite"), ("sqlite", "sqlite"), ("postgres", "postgres")] {
        let source = TestDatabase::create(from, "dump_src").await;
        let store = source.store().await;
        let mut tables = store.table_names().await.unwrap();
        tables.sort();
        // Every table is dumped, but the running cluster's own state.
        let mut listed: Vec<String> = TABLES.iter().chain(NOT_DUMPED).map(ToString::to_string).collect();
        listed.sort();
        assert_eq!(tables, listed, "every table is dumped");
        let account = seed(&store).await;
        let bytes = dump(&store).await;
        let target = TestDatabase::create(to, "dump_dst").await;
        let restored = target.store().await;
        let summary = restored.load(bytes.as_slice(), &mut |_, _| {}).await.unwrap();
        assert_eq!(summary.backend, from);
        assert!(summary.rows() >= 10, "{summary:?}");
        check_loaded(&restored, account).await;
        // A second load into the now full database is refused.
        let err = restored.load(bytes.as_slice(), &mut |_, _| {}).await.unwrap_err().to_string();
        assert!(err.contains("not empty"), "{err}");
        store.close().await;
        restored.close().await;
        source.remove().await;
        target.remove().await;
    }
}

#[tokio::test]
async fn a_damaged_dump_loads_nothing() {
    let source = TestDatabase::create("sqlite", "dump_bad").await;
    let store = source.store().await;
    seed(&store).await;
    let bytes = dump(&store).await;
    let text = String::from_utf8(bytes).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let cut = lines[..lines.len() - 1].join("\n");
    let mut wrong_count = lines.clone();
    let last = wrong_count.len() - 1;
    let bumped = wrong_count[last].replace("\"rows\":", "\"rows\":1");
    wrong_count[last] = &bumped;
    let schema = format!("\"schema\":{}", store.schema_version().await.unwrap());
    assert!(text.contains(&schema), "{schema}");
    let newer = text.replacen(&schema, "\"schema\":9999", 1);
    let cases = [
        ("cut short", cut, "cut short"),
        ("row count", wrong_count.join("\n"), "rows but holds"),
        ("newer schema", newer, "newer than this tradecore"),
        ("not JSON", "{\"format\":".to_string(), "not JSON"),
    ];
    for (name, body, fragment) in cases {
        let target = TestDatabase::create("sqlite", "dump_bad_dst").await;
        let restored = target.store().await;
        let err = restored.load(body.as_bytes(), &mut |_, _| {}).await.unwrap_err().to_string();
        assert!(err.contains(fragment), "{name}: {err}");
        assert!(restored.is_empty().await.unwrap(), "{name}: nothing written");
        restored.close().await;
        target.remove().await;
    }
    store.close().await;
    source.remove().await;
}
