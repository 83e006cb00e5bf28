//! The job queue on real SQLite and PostgreSQL: one job per schedule slot,
//! claims in due order, leases that expire and are taken over, retries then
//! the dead-letter list, concurrent workers never sharing a job, and the
//! data the built-in jobs keep and prune.

use std::collections::HashSet;

use model::{Currency, Money, Timestamp};
use store::jobs::{NewJob, Prunable};
use store::testing::TestDatabase;
use store::{EquitySnapshot, Store};

struct TestDb {
    store: Store,
    db: TestDatabase,
}

impl TestDb {
    async fn new(backend: &str) -> Self {
        let db = TestDatabase::create(backend, "jobs").await;
        Self { store: db.store().await, db }
    }

    async fn drop_db(self) {
        self.store.close().await;
        self.db.remove().await;
    }
}

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let db = super::TestDb::new("sqlite").await;
                    super::$name(&db.store).await;
                    db.drop_db().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
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
    a_slot_is_enqueued_once_and_jobs_are_claimed_when_due,
    an_expired_lease_is_taken_over_and_the_old_worker_cannot_finish,
    failures_retry_then_go_to_the_dead_letter_list,
    concurrent_workers_never_share_a_job,
    daily_equity_and_pruning,
);

fn t(secs: i64) -> Timestamp {
    Timestamp::from_secs(1_700_000_000 + secs)
}

fn job(kind: &str, at: i64) -> NewJob<'_> {
    NewJob { kind, payload: "{}", run_at: t(at), max_attempts: 3, slot: None }
}

async fn a_slot_is_enqueued_once_and_jobs_are_claimed_when_due(store: &Store) {
    let slot = NewJob { slot: Some(("backup", t(100))), ..job("backup", 100) };
    let first = store.enqueue_job(&slot, t(0)).await.unwrap();
    assert!(first.is_some());
    // Another instance computing the same slot adds nothing.
    assert_eq!(store.enqueue_job(&slot, t(1)).await.unwrap(), None);
    let next_slot = NewJob { slot: Some(("backup", t(200))), ..job("backup", 200) };
    assert!(store.enqueue_job(&next_slot, t(1)).await.unwrap().is_some());
    store.enqueue_job(&job("retention", 50), t(0)).await.unwrap();

    assert!(store.claim_job("w1", t(10), t(70)).await.unwrap().is_none(), "nothing due yet");
    let claimed = store.claim_job("w1", t(150), t(210)).await.unwrap().unwrap();
    assert_eq!((claimed.kind.as_str(), claimed.status.as_str(), claimed.attempts), ("retention", "running", 1));
    let second = store.claim_job("w2", t(150), t(210)).await.unwrap().unwrap();
    assert_eq!((second.kind.as_str(), second.id), ("backup", first.unwrap()));
    assert!(store.claim_job("w3", t(150), t(210)).await.unwrap().is_none(), "the 200 slot is not due");
    assert!(store.finish_job(claimed.id, "w1", r#"{"deleted":3}"#, t(151)).await.unwrap());
    let done = store.job(claimed.id).await.unwrap().unwrap();
    let ran_by = done.locked_by.as_deref();
    assert_eq!(
        (done.status.as_str(), done.result.as_deref(), ran_by, done.locked_until),
        ("done", Some(r#"{"deleted":3}"#), Some("w1"), None)
    );
    let last = store.last_scheduled_job("backup").await.unwrap().unwrap();
    assert_eq!(last.scheduled_for, Some(t(200)));
    let counts = store.job_counts().await.unwrap();
    let backup = counts.iter().find(|c| c.kind == "backup").unwrap();
    assert_eq!((backup.queued, backup.running, backup.dead), (1, 1, 0));
}

async fn an_expired_lease_is_taken_over_and_the_old_worker_cannot_finish(store: &Store) {
    let id = store.enqueue_job(&job("reconcile", 0), t(0)).await.unwrap().unwrap();
    let first = store.claim_job("dead-instance", t(1), t(61)).await.unwrap().unwrap();
    assert_eq!(first.id, id);
    assert!(store.claim_job("alive", t(30), t(90)).await.unwrap().is_none(), "the lease holds");
    assert!(store.renew_job(id, "dead-instance", t(91), t(31)).await.unwrap());
    assert!(store.claim_job("alive", t(90), t(150)).await.unwrap().is_none(), "renewed until 91");
    // The instance died: its lease runs out and another worker takes over.
    let taken = store.claim_job("alive", t(92), t(152)).await.unwrap().unwrap();
    assert_eq!((taken.id, taken.attempts, taken.locked_by.as_deref()), (id, 2, Some("alive")));
    assert!(!store.renew_job(id, "dead-instance", t(200), t(93)).await.unwrap());
    assert!(!store.finish_job(id, "dead-instance", "{}", t(93)).await.unwrap(), "it no longer holds the job");
    assert!(store.finish_job(id, "alive", "{}", t(94)).await.unwrap());
}

async fn failures_retry_then_go_to_the_dead_letter_list(store: &Store) {
    let id = store.enqueue_job(&job("backup", 0), t(0)).await.unwrap().unwrap();
    for attempt in 1..=3 {
        let claimed = store.claim_job("w", t(attempt * 100), t(attempt * 100 + 60)).await.unwrap().unwrap();
        assert_eq!(claimed.attempts, u32::try_from(attempt).unwrap());
        let status = store.fail_job(id, "w", "disk full", t(attempt * 100 + 50), t(attempt * 100 + 1)).await.unwrap();
        assert_eq!(status, Some(if attempt < 3 { "queued" } else { "dead" }), "attempt {attempt}");
        if attempt < 3 {
            // Backed off: not due before the retry time.
            assert!(store.claim_job("w", t(attempt * 100 + 49), t(attempt * 100 + 99)).await.unwrap().is_none());
        }
    }
    let dead = store.job(id).await.unwrap().unwrap();
    assert_eq!((dead.status.as_str(), dead.last_error.as_deref()), ("dead", Some("disk full")));
    assert!(store.claim_job("w", t(10_000), t(10_060)).await.unwrap().is_none(), "dead jobs are not claimed");
    assert_eq!(store.jobs(Some("dead"), None, None, 10).await.unwrap().len(), 1);
    assert!(store.retry_job(id, t(20_000)).await.unwrap());
    assert!(!store.retry_job(id, t(20_000)).await.unwrap(), "only dead jobs are retried");
    let again = store.claim_job("w", t(20_001), t(20_061)).await.unwrap().unwrap();
    assert_eq!((again.id, again.attempts), (id, 1));
}

async fn concurrent_workers_never_share_a_job(store: &Store) {
    for i in 0..40 {
        store.enqueue_job(&job("reconcile", i), t(0)).await.unwrap();
    }
    let mut workers = Vec::new();
    for w in 0..8 {
        let store = store.clone();
        workers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            while let Some(j) = store.claim_job(&format!("w{w}"), t(100), t(160)).await.unwrap() {
                mine.push(j.id);
            }
            mine
        }));
    }
    let mut seen = HashSet::new();
    for w in workers {
        for id in w.await.unwrap() {
            assert!(seen.insert(id), "job {id} was claimed twice");
        }
    }
    assert_eq!(seen.len(), 40);
}

async fn daily_equity_and_pruning(store: &Store) {
    let usd = Currency::parse("USD").unwrap();
    let account = store.create_account("a", usd, t(0)).await.unwrap();
    let snapshot = |ts: Timestamp, e: i64| EquitySnapshot {
        account,
        ts,
        equity: Money::from_int(e),
        by_currency: vec![(usd, Money::from_int(e))],
    };
    store.save_equities(t(0), &[snapshot(t(0), 100)]).await.unwrap();
    store.save_equities(t(60), &[snapshot(t(60), 105)]).await.unwrap();
    store.save_equities(t(120), &[snapshot(t(120), 110)]).await.unwrap();
    let last = store.last_equity_before(account, t(120)).await.unwrap().unwrap();
    assert_eq!((last.ts, last.equity), (t(60), Money::from_int(105)), "strictly before");
    store.save_daily_equity(19_675, &last).await.unwrap();
    store.save_daily_equity(19_675, &snapshot(t(60), 106)).await.unwrap();
    let days = store.daily_equity(account, 0, i64::MAX).await.unwrap();
    assert_eq!(days, vec![(19_675, Money::from_int(106), vec![(usd, Money::from_int(106))])], "the last write wins");

    assert_eq!(store.prune(Prunable::EquitySnapshots, t(61)).await.unwrap(), 2);
    assert_eq!(store.equity_history(account, t(0), t(1_000)).await.unwrap().len(), 1);
    assert_eq!(store.daily_equity(account, 0, i64::MAX).await.unwrap().len(), 1, "daily equity is kept");
    let old = store.enqueue_job(&job("retention", 0), t(0)).await.unwrap().unwrap();
    let claimed = store.claim_job("w", t(1), t(61)).await.unwrap().unwrap();
    assert_eq!(claimed.id, old);
    store.finish_job(old, "w", "{}", t(2)).await.unwrap();
    store.enqueue_job(&job("retention", 5), t(5)).await.unwrap();
    assert_eq!(store.prune(Prunable::FinishedJobs, t(3)).await.unwrap(), 1, "the queued one stays");
    assert!(store.job(old).await.unwrap().is_none());
    assert_eq!(store.prune(Prunable::Candles("1m"), t(3)).await.unwrap(), 0);
    assert_eq!(store.prune(Prunable::Audit, t(3)).await.unwrap(), 0);
}
