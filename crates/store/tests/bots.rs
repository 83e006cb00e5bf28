//! Bot rows and the queries behind a bot's orders and P&L, against a real
//! SQLite file and a real PostgreSQL database.

use std::collections::BTreeMap;

use model::event::{Event, EventKind};
use model::{
    ClientOrderId, Currency, Fill, InstrumentId, Liquidity, Money, Order, OrderId, OrderStatus, OrderType, Price,
    Quantity, Side, TimeInForce, Timestamp,
};
use store::auth::{AuditEntry, NewUser, Role};
use store::bots::{BotChange, BotStatus, NewBot};
use store::testing::TestDatabase;
use store::{Commit, OrderQuery, Store};

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let db = TestDatabase::create("sqlite", "bots_store").await;
                    let store = db.store().await;
                    super::$name(&store).await;
                    store.close().await;
                    db.remove().await;
                }
            )*
            use super::TestDatabase;
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let db = TestDatabase::create("postgres", "bots_store").await;
                    let store = db.store().await;
                    super::$name(&store).await;
                    store.close().await;
                    db.remove().await;
                }
            )*
            use super::TestDatabase;
        }
    };
}

both_backends!(bots_keep_their_anchor_and_audit_every_change, a_bots_orders_and_fills_are_found_by_prefix);

fn t(secs: i64) -> Timestamp {
    Timestamp::from_secs(1_700_000_000 + secs)
}

fn audit(action: &str) -> AuditEntry<'_> {
    AuditEntry::new(t(0), None, action, Some("192.0.2.1"))
}

/// A user with an account.
async fn owner(store: &Store) -> (i64, i64) {
    let new = NewUser {
        username: "alice",
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g",
        role: Role::Trader,
        password_change_required: false,
        created: t(0),
    };
    let user = store.create_user(&new, &audit("user.create")).await.unwrap().unwrap();
    let account = store.create_owned_account("paper", Currency::parse("USD").unwrap(), t(0), user.id).await.unwrap();
    (user.id, account)
}

fn new_bot<'a>(user: i64, account: i64, params: &'a BTreeMap<String, String>) -> NewBot<'a> {
    NewBot {
        user_id: user,
        account_id: account,
        name: "trend",
        strategy: "sma-cross",
        params,
        instrument: InstrumentId(1),
        interval: "1m",
        sizing: "percent=10",
        warmup_bars: 50,
        created: t(1),
    }
}

async fn bots_keep_their_anchor_and_audit_every_change(store: &Store) {
    let (user, account) = owner(store).await;
    let params = BTreeMap::from([("fast".to_string(), "5".to_string()), ("slow".to_string(), "20".to_string())]);
    let bot = store.create_bot(&new_bot(user, account, &params), &audit("bot.create")).await.unwrap();
    assert_eq!(bot.status, BotStatus::Stopped);
    assert_eq!(store.bot(bot.id).await.unwrap().as_ref(), Some(&bot), "what create returns is what is stored");

    let started = store
        .change_bot(bot.id, &BotChange::Start { now: t(10), anchor: t(5) }, Some(&audit("bot.start")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((started.status, started.anchor, started.started), (BotStatus::Running, Some(t(5)), Some(t(10))));
    assert!(!store.delete_bot(bot.id, &audit("bot.delete")).await.unwrap(), "a running bot is not deleted");

    let failed = store
        .change_bot(bot.id, &BotChange::Fail { now: t(20), error: "account stopped" }, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((failed.status, failed.error.as_deref()), (BotStatus::Failed, Some("account stopped")));
    // A second start keeps the first anchor: the strategy replays the same history.
    let again = store.change_bot(bot.id, &BotChange::Start { now: t(30), anchor: t(25) }, None).await.unwrap().unwrap();
    assert_eq!((again.anchor, again.error.as_deref()), (Some(t(5)), None));
    assert_eq!(store.bots_with_status(BotStatus::Running).await.unwrap(), vec![again.clone()]);
    store.change_bot(bot.id, &BotChange::Stop { now: t(40) }, Some(&audit("bot.stop"))).await.unwrap();
    assert!(store.bots_with_status(BotStatus::Running).await.unwrap().is_empty());
    assert_eq!(store.bots_of(user).await.unwrap().len(), 1);
    assert_eq!(store.bot_count(user).await.unwrap(), 1);
    assert!(store.bots_of(user + 1).await.unwrap().is_empty());

    assert!(store.delete_bot(bot.id, &audit("bot.delete")).await.unwrap());
    assert_eq!(store.bot(bot.id).await.unwrap(), None);
    assert!(store.change_bot(bot.id, &BotChange::Stop { now: t(50) }, None).await.unwrap().is_none());
    let actions: Vec<String> = store
        .audit_log(None, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a.action.starts_with("bot."))
        .map(|a| a.action)
        .collect();
    assert_eq!(actions, ["bot.delete", "bot.stop", "bot.start", "bot.create"]);
}

fn order(id: u64, client: &str) -> Order {
    Order {
        id: OrderId(id),
        client_order_id: ClientOrderId::parse(client).unwrap(),
        instrument: InstrumentId(1),
        side: Side::Buy,
        order_type: OrderType::Market,
        time_in_force: TimeInForce::Gtc,
        quantity: Quantity::from_int(1),
        filled_quantity: Quantity::from_int(1),
        filled_notional: Money::from_int(100),
        fees: Money::ZERO,
        reduce_only: false,
        post_only: false,
        status: OrderStatus::Filled,
        reject_reason: None,
        ts_created: t(1),
        ts_updated: t(1),
    }
}

fn fill(order_id: u64) -> Fill {
    Fill {
        order_id: OrderId(order_id),
        trade_id: order_id,
        instrument: InstrumentId(1),
        side: Side::Buy,
        quantity: Quantity::from_int(1),
        price: Price::from_int(100),
        fee: Money::ZERO,
        liquidity: Liquidity::Taker,
        ts: t(2),
    }
}

async fn a_bots_orders_and_fills_are_found_by_prefix(store: &Store) {
    let (_, account) = owner(store).await;
    // bot1's orders, bot12's (whose prefix bot1- must not match) and a manual one.
    let clients = ["bot1-100-0", "bot12-100-0", "manual-1", "bot1-160-0"];
    for (i, client) in clients.iter().enumerate() {
        let id = i as u64 + 1;
        let commit = Commit {
            account,
            first_seq: id,
            events: vec![Event { ts: t(2), kind: EventKind::OrderFilled { fill: fill(id) } }],
            orders: vec![order(id, client)],
            fills: vec![fill(id)],
            ..Commit::default()
        };
        store.write(std::slice::from_ref(&commit)).await.unwrap();
    }
    let query = OrderQuery { client_prefix: Some("bot1-".into()), limit: 10, ..OrderQuery::default() };
    let ids: Vec<u64> = store.orders(account, &query).await.unwrap().iter().map(|o| o.id.0).collect();
    assert_eq!(ids, [4, 1], "newest first, only bot1's");
    let fills = store.fills_with_client_prefix(account, "bot1-").await.unwrap();
    assert_eq!(fills, vec![(1, fill(1)), (4, fill(4))], "journal order, only bot1's");
}
