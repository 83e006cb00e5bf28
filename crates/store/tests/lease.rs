//! Leases on real SQLite and PostgreSQL: one holder at a time, renewals only
//! by the holder of the current epoch, expiry and take-over, release, and
//! many candidates racing for one expired lease with exactly one winner.

use std::time::Duration;

use model::Timestamp;
use store::Store;
use store::testing::TestDatabase;

const TTL: Duration = Duration::from_secs(15);

fn t(secs: i64) -> Timestamp {
    Timestamp::from_secs(1_700_000_000 + secs)
}

async fn one_holder_renews_until_it_stops_then_another_takes_over(store: &Store) {
    assert!(store.lease("leader").await.unwrap().is_none());
    let a = store.acquire_lease("leader", "a", "http://10.0.0.1:8080", t(0), TTL).await.unwrap().unwrap();
    assert_eq!((a.epoch, a.expires), (1, t(15)));
    assert!(store.acquire_lease("leader", "b", "http://10.0.0.2:8080", t(5), TTL).await.unwrap().is_none(), "live");
    assert!(store.renew_lease(&a, t(10), TTL).await.unwrap());
    assert!(
        store.acquire_lease("leader", "b", "http://10.0.0.2:8080", t(20), TTL).await.unwrap().is_none(),
        "renewed to 25"
    );
    let stored = store.lease("leader").await.unwrap().unwrap();
    assert_eq!((stored.holder.as_str(), stored.address.as_str(), stored.expires), ("a", "http://10.0.0.1:8080", t(25)));
    assert!(stored.is_live(t(24)) && !stored.is_live(t(25)));

    // a stops renewing: at expiry b takes it in a new epoch, and a's renewals fail.
    let b = store.acquire_lease("leader", "b", "http://10.0.0.2:8080", t(25), TTL).await.unwrap().unwrap();
    assert_eq!(b.epoch, 2);
    assert!(!store.renew_lease(&a, t(26), TTL).await.unwrap(), "a lost it");
    assert!(store.renew_lease(&b, t(26), TTL).await.unwrap());
    // An expired lease is not renewed, even by its holder: it must take it anew.
    assert!(!store.renew_lease(&b, t(60), TTL).await.unwrap());

    // A clean stop hands over at once.
    let b = store.acquire_lease("leader", "b", "http://10.0.0.2:8080", t(60), TTL).await.unwrap().unwrap();
    assert_eq!(b.epoch, 3);
    assert!(store.release_lease(&b, t(61)).await.unwrap());
    assert!(!store.release_lease(&a, t(61)).await.unwrap(), "not a's to release");
    let a = store.acquire_lease("leader", "a", "http://10.0.0.1:8080", t(61), TTL).await.unwrap().unwrap();
    assert_eq!((a.epoch, a.holder.as_str()), (4, "a"));
    // Other names are independent.
    assert!(store.acquire_lease("other", "b", "x", t(61), TTL).await.unwrap().is_some());
}

async fn racing_candidates_elect_exactly_one(store: &Store) {
    let old = store.acquire_lease("leader", "old", "x", t(0), TTL).await.unwrap().unwrap();
    assert_eq!(old.epoch, 1);
    let mut racers = Vec::new();
    for n in 0..16 {
        let store = store.clone();
        racers.push(tokio::spawn(async move {
            store.acquire_lease("leader", &format!("c{n}"), "x", t(30), TTL).await.unwrap()
        }));
    }
    let mut winners = Vec::new();
    for racer in racers {
        winners.extend(racer.await.unwrap());
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(store.lease("leader").await.unwrap().unwrap().holder, winners[0].holder);
}

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let db = super::TestDatabase::create("sqlite", "lease").await;
                let store = db.store().await;
                super::$name(&store).await;
                store.close().await;
                db.remove().await;
            }
        )* }
        mod postgres { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let db = super::TestDatabase::create("postgres", "lease").await;
                let store = db.store().await;
                super::$name(&store).await;
                store.close().await;
                db.remove().await;
            }
        )* }
    };
}

both_backends!(one_holder_renews_until_it_stops_then_another_takes_over, racing_candidates_elect_exactly_one);
