//! Background jobs on a real server over real SQLite and PostgreSQL: the
//! schedules of two instances sharing one database run each slot once, a
//! job orphaned by a dead instance is taken over, failures go to the
//! dead-letter list an admin retries over HTTP, and the built-in jobs do
//! their work (reconciliation, daily equity, candle roll-ups, retention).

mod common;

use std::time::Duration;

use common::{ADMIN_PASSWORD, User, open_account};
use model::time::NANOS_PER_DAY;
use model::{Money, Price, Quantity, Timestamp};
use reqwest::StatusCode;
use serde_json::{Value, json};
use store::Store;
use store::jobs::{JobRow, NewJob};
use store::testing::TestDatabase;

const KEY: &str = "5f1d2a0c9b8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a392817060504";

/// Every schedule off: a test runs the jobs it wants.
const NO_SCHEDULES: [(&str, &str); 6] = [
    ("TRADECORE_JOBS__RECONCILE", ""),
    ("TRADECORE_JOBS__EQUITY_DAILY", ""),
    ("TRADECORE_JOBS__CANDLE_ROLLUP", ""),
    ("TRADECORE_JOBS__RETENTION", ""),
    ("TRADECORE_JOBS__BACKUP", ""),
    ("TRADECORE_JOBS__BACKUP_VERIFY", ""),
];

fn now() -> Timestamp {
    server::accounts::wall_clock()
}

fn days_ago(days: i64) -> Timestamp {
    Timestamp::from_nanos(now().as_nanos() - days * NANOS_PER_DAY)
}

/// Waits until job `id` has finished; panics if it died or took too long.
async fn finished(store: &Store, id: i64) -> JobRow {
    for _ in 0..300 {
        let job = store.job(id).await.unwrap().unwrap();
        match job.status.as_str() {
            "done" => return job,
            "dead" => panic!("job {id} died: {job:?}"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("job {id} did not finish: {:?}", store.job(id).await.unwrap());
}

/// Waits until job `id` has status `status`.
async fn reaches(store: &Store, id: i64, status: &str) -> JobRow {
    for _ in 0..300 {
        let job = store.job(id).await.unwrap().unwrap();
        if job.status == status {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("job {id} never became {status}: {:?}", store.job(id).await.unwrap());
}

/// Enqueues a job the way a schedule does, for the slot `at`.
async fn enqueue_at(server: &common::Server, kind: &str, at: Timestamp) -> i64 {
    let store = &server.started.state.runtime.store;
    let payload = json!({ "slot": at }).to_string();
    let new = NewJob { kind, payload: &payload, run_at: now(), max_attempts: 3, slot: None };
    let id = store.enqueue_job(&new, now()).await.unwrap().unwrap();
    server.started.state.jobs.wake();
    id
}

/// Runs a job through the admin API and returns its finished row.
async fn run_now(server: &common::Server, admin: &User, kind: &str) -> JobRow {
    let (status, body) = admin.post("/api/v1/admin/jobs", json!({ "kind": kind })).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    finished(&server.started.state.runtime.store, body["id"].as_i64().unwrap()).await
}

fn result(job: &JobRow) -> Value {
    serde_json::from_str(job.result.as_deref().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_run_each_scheduled_slot_once_and_take_over_orphans() {
    let db = TestDatabase::create("postgres", "jobs_once").await;
    // A job an instance claimed and then died with: its lease ran out a minute ago.
    let store = db.store().await;
    let past = Timestamp::from_nanos(now().as_nanos() - 120_000_000_000);
    let orphan = NewJob { kind: "retention", payload: "{}", run_at: past, max_attempts: 5, slot: None };
    let orphan = store.enqueue_job(&orphan, past).await.unwrap().unwrap();
    let lease_ran_out = Timestamp::from_nanos(now().as_nanos() - 60_000_000_000);
    let claimed = store.claim_job("dead-instance#0", past, lease_ran_out).await.unwrap().unwrap();
    assert_eq!(claimed.id, orphan);
    store.close().await;

    let every_minute = [
        ("TRADECORE_JOBS__RECONCILE", "* * * * *"),
        ("TRADECORE_JOBS__EQUITY_DAILY", "* * * * *"),
        ("TRADECORE_JOBS__CANDLE_ROLLUP", "* * * * *"),
        ("TRADECORE_JOBS__RETENTION", "* * * * *"),
    ];
    let first = common::start_with(&db, &every_minute).await;
    let second = common::start_with(&db, &every_minute).await;
    let workers = [first.started.state.jobs.worker_id().to_string(), second.started.state.jobs.worker_id().to_string()];
    assert_ne!(workers[0], workers[1]);
    let store = first.started.state.runtime.store.clone();

    let taken_over = finished(&store, orphan).await;
    assert_eq!(taken_over.attempts, 2, "run again once its lease ran out");
    let ran_by = taken_over.locked_by.clone().unwrap();
    assert!(workers.iter().any(|w| ran_by.starts_with(w.as_str())), "{ran_by} is one of {workers:?}");

    // Both schedulers enqueue the current minute's slot of each schedule.
    let mut scheduled = Vec::new();
    for _ in 0..300 {
        scheduled = store.jobs(None, None, None, 500).await.unwrap();
        scheduled.retain(|j| j.schedule.is_some());
        if scheduled.len() >= 4 && scheduled.iter().all(|j| j.status == "done") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut slots: Vec<(String, Timestamp)> =
        scheduled.iter().map(|j| (j.schedule.clone().unwrap(), j.scheduled_for.unwrap())).collect();
    let distinct = {
        let mut s = slots.clone();
        s.sort();
        s.dedup();
        s.len()
    };
    slots.sort();
    assert_eq!(distinct, slots.len(), "one job per schedule and slot: {slots:?}");
    for kind in ["reconcile", "equity_daily", "candle_rollup", "retention"] {
        assert!(scheduled.iter().any(|j| j.kind == kind), "{kind} was scheduled: {scheduled:?}");
    }
    for job in &scheduled {
        assert_eq!((job.status.as_str(), job.attempts), ("done", 1), "each slot ran once: {job:?}");
        let ran_by = job.locked_by.as_deref().unwrap();
        assert!(workers.iter().any(|w| ran_by.starts_with(w.as_str())), "{ran_by}");
    }
    second.stop().await;
    first.stop().await;
    db.remove().await;
}

async fn failures_go_to_the_dead_letter_list_and_admins_retry_them(backend: &str) {
    let db = TestDatabase::create(backend, "jobs_dead").await;
    // The backup directory cannot be created while a file stands in its way.
    let dir = std::env::temp_dir().join(format!("tc-jobs-dead-{backend}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let blocker = dir.join("blocker");
    std::fs::write(&blocker, "not a directory").unwrap();
    let target = format!("file://{}/backups", blocker.display());
    let mut settings = NO_SCHEDULES.to_vec();
    settings.extend([
        ("TRADECORE_BACKUP__TARGET", target.as_str()),
        ("TRADECORE_BACKUP__KEY", KEY),
        ("TRADECORE_JOBS__MAX_ATTEMPTS", "1"),
    ]);
    let server = common::start_with(&db, &settings).await;
    let store = server.started.state.runtime.store.clone();
    let admin = User::sign_in(&server.base, "admin", ADMIN_PASSWORD).await;

    let (status, body) = admin.post("/api/v1/admin/jobs", json!({ "kind": "backup" })).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["id"].as_i64().unwrap();
    let dead = reaches(&store, id, "dead").await;
    assert!(dead.last_error.as_deref().unwrap().contains("Not a directory"), "{dead:?}");

    let (status, page) = admin.get("/api/v1/admin/jobs?status=dead").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["items"][0]["id"], id);
    assert_eq!(page["items"][0]["kind"], "backup");
    assert!(page["items"][0]["last_error"].as_str().unwrap().contains("Not a directory"));
    let (_, health) = admin.get("/api/v1/admin/health").await;
    assert_eq!(health["work"]["jobs_dead"], 1);

    let (status, listing) = admin.get("/api/v1/admin/backups").await;
    assert_eq!(status, StatusCode::OK);
    assert!(listing["error"].as_str().unwrap().contains("cannot list"), "{listing}");

    // Fixed, then retried by an admin: it runs again and succeeds.
    std::fs::remove_file(&blocker).unwrap();
    let (status, body) = admin.post(&format!("/api/v1/admin/jobs/{id}/retry"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Queued with fresh attempts; a woken worker may already have it.
    assert!(["queued", "running", "done"].contains(&body["status"].as_str().unwrap()), "{body}");
    assert!(body["attempts"].as_u64().unwrap() <= 1, "{body}");
    let done = finished(&store, id).await;
    let name = result(&done)["backup"].as_str().unwrap().to_string();
    // Alerts watch when the last backup succeeded: from the job table, so a
    // restart or another instance reports it too.
    server::jobs::sample_metrics(&server.started.state.runtime).await;
    let scraped = server::telemetry::prometheus().render();
    let finished = done.finished.unwrap().as_nanos() as f64 / 1e9;
    let line = scraped.lines().find(|l| l.starts_with("tradecore_backup_last_success_timestamp_seconds ")).unwrap();
    let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((value - finished).abs() < 1.0, "{line} vs {finished}");
    let (_, backups) = admin.get("/api/v1/admin/backups").await;
    assert_eq!((backups["configured"].as_bool(), backups["error"].as_str()), (Some(true), None), "{backups}");
    assert_eq!(backups["backups"][0]["name"], name.as_str());

    // Only dead jobs are retried; unknown ones are not found.
    let (status, body) = admin.post(&format!("/api/v1/admin/jobs/{id}/retry"), json!({})).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::CONFLICT, Some("job_not_dead")), "{body}");
    let (status, _) = admin.post("/api/v1/admin/jobs/999999/retry", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = admin.post("/api/v1/admin/jobs", json!({ "kind": "defrag" })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["field"], "kind", "{body}");
    let (status, _) = admin.get("/api/v1/admin/jobs?status=lost").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // Audited, and for admins only.
    let (_, audit) = admin.get("/api/v1/audit").await;
    let actions: Vec<&str> = audit["entries"].as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
    assert!(actions.contains(&"job.run") && actions.contains(&"job.retry"), "{actions:?}");
    let trader = common::trader(&server, &admin, "tina").await;
    for path in ["/api/v1/admin/jobs", "/api/v1/admin/schedules", "/api/v1/admin/backups"] {
        let (status, _) = trader.get(path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
    }
    let (status, _) = trader.post("/api/v1/admin/jobs", json!({ "kind": "retention" })).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    server.stop().await;
    db.remove().await;
    let _ = std::fs::remove_dir_all(&dir);
}

async fn reconciliation_finds_a_tampered_read_model_and_restricts_the_account(backend: &str) {
    let db = TestDatabase::create(backend, "jobs_reconcile").await;
    let server = common::start_with(&db, &NO_SCHEDULES).await;
    let admin = User::sign_in(&server.base, "admin", ADMIN_PASSWORD).await;
    let account = open_account(&admin).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let orders = format!("/api/v1/accounts/{account}/orders");
    let buy = json!({"client_order_id": "r1", "symbol": "SPY", "side": "buy", "type": "market", "quantity": "3"});
    let (status, body) = admin.post(&orders, buy).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let resting = json!({"client_order_id": "r2", "symbol": "SPY", "side": "buy", "type": "limit", "quantity": "1", "price": "1"});
    let (status, body) = admin.post(&orders, resting).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Everything agrees: nothing happens.
    let clean = result(&run_now(&server, &admin, "reconcile").await);
    assert_eq!(clean["accounts"], 1, "{clean}");
    assert_eq!(clean["close_only"], json!([]), "{clean}");

    // Someone edits the positions table behind the engine's back.
    let store = db.store().await;
    store.execute_admin(&format!("UPDATE positions SET quantity = '7' WHERE account_id = {account}")).await.unwrap();
    store.close().await;
    let found = result(&run_now(&server, &admin, "reconcile").await);
    assert_eq!(found["close_only"], json!([account]), "{found}");
    let differences = &found["differences"][0]["differences"];
    assert_eq!(differences[0]["kind"], "position", "{found}");
    assert_eq!(differences[0]["stored"], "7", "{found}");

    let (_, summary) = admin.get(&format!("/api/v1/accounts/{account}")).await;
    assert_eq!(summary["trading_state"], "reducing", "{summary}");
    let more = json!({"client_order_id": "r3", "symbol": "SPY", "side": "buy", "type": "market", "quantity": "1"});
    let (status, body) = admin.post(&orders, more).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "close-only refuses a buy: {body}");
    let (_, audit) = admin.get("/api/v1/audit").await;
    let entry = audit["entries"].as_array().unwrap().iter().find(|e| e["action"] == "reconcile.close_only").unwrap();
    assert_eq!(entry["target"], account.to_string());
    server.stop().await;
    db.remove().await;
}

async fn daily_equity_roll_ups_and_retention(backend: &str) {
    let db = TestDatabase::create(backend, "jobs_data").await;
    let mut settings = NO_SCHEDULES.to_vec();
    settings.extend([("TRADECORE_RETENTION__EQUITY_MINUTES_DAYS", "5"), ("TRADECORE_RETENTION__CANDLES_1M_DAYS", "5")]);
    let server = common::start_with(&db, &settings).await;
    let admin = User::sign_in(&server.base, "admin", ADMIN_PASSWORD).await;
    let account = open_account(&admin).await;
    let store = server.started.state.runtime.store.clone();
    let today = now().as_nanos().div_euclid(NANOS_PER_DAY);

    // Ten days ago: two equity points on the day before; the daily job
    // (its slot 00:10 the next day) keeps the last one.
    let day = today - 11;
    let at = |day: i64, secs: i64| Timestamp::from_nanos(day * NANOS_PER_DAY + secs * 1_000_000_000);
    store.save_equity(account, at(day, 36_000), Money::parse("99000").unwrap()).await.unwrap();
    store.save_equity(account, at(day, 86_340), Money::parse("101234.5").unwrap()).await.unwrap();
    let daily = finished(&store, enqueue_at(&server, "equity_daily", at(day + 1, 600)).await).await;
    assert_eq!(result(&daily)["recorded"], 1, "{:?}", daily.result);
    let kept = store.daily_equity(account, day, day).await.unwrap();
    assert_eq!((kept[0].0, kept[0].1), (day, Money::parse("101234.5").unwrap()));

    // Minutes of SPY two hours before today began: rolled up into closed buckets.
    let spy = server.started.state.runtime.instruments().iter().find(|i| i.symbol == "SPY").unwrap().id;
    let start = Timestamp::from_nanos(today * NANOS_PER_DAY - 2 * 3_600_000_000_000);
    let minutes: Vec<store::CandleRecord> = (0..10)
        .map(|m| store::CandleRecord {
            instrument: spy,
            interval: "1m".into(),
            start: start.plus_nanos(m * 60_000_000_000),
            open: Price::from_int(100 + m),
            high: Price::from_int(110 + m),
            low: Price::from_int(90 + m),
            close: Price::from_int(101 + m),
            volume: Quantity::parse("2.5").unwrap(),
            trades: 3,
        })
        .collect();
    store.save_candles(&minutes).await.unwrap();
    let rolled = finished(&store, enqueue_at(&server, "candle_rollup", now()).await).await;
    assert!(result(&rolled)["candles"].as_u64().unwrap() >= 4, "{:?}", rolled.result);
    let five = store.candles(spy, "5m", start, start.plus_nanos(600_000_000_000), 10).await.unwrap();
    assert_eq!(five.len(), 2);
    assert_eq!(
        (five[0].open, five[0].high, five[0].low, five[0].close),
        (Price::from_int(100), Price::from_int(114), Price::from_int(90), Price::from_int(105))
    );
    assert_eq!(five[1].volume, Quantity::parse("12.5").unwrap());
    let hour = store.candles(spy, "1h", start, start.plus_nanos(3_600_000_000_000), 10).await.unwrap();
    assert_eq!((hour.len(), hour[0].close, hour[0].trades), (1, Price::from_int(110), 30));
    let whole_day =
        store.candles(spy, "1d", Timestamp::from_nanos((today - 1) * NANOS_PER_DAY), start, 10).await.unwrap();
    assert_eq!(whole_day.len(), 1);

    // Old data of each kind, and some that stays.
    let old_minute = store::CandleRecord { instrument: spy, start: days_ago(8), ..minutes[0].clone() };
    store.save_candles(&[old_minute]).await.unwrap();
    let ancient = store::auth::AuditEntry::new(days_ago(800), None, "test.ancient", None);
    store.record_audit(&ancient).await.unwrap();
    // A job finished 40 days ago (written as such: a worker would claim a due one first).
    let long_ago = days_ago(40).as_nanos();
    store
        .execute_admin(&format!(
            "INSERT INTO jobs (kind, payload, status, attempts, max_attempts, run_at_ns, created_ns, updated_ns, finished_ns) \
             VALUES ('retention', '{{}}', 'done', 1, 1, {long_ago}, {long_ago}, {long_ago}, {long_ago})"
        ))
        .await
        .unwrap();
    let old_jobs = |jobs: Vec<JobRow>| jobs.iter().filter(|j| j.created.as_nanos() == long_ago).count();
    assert_eq!(old_jobs(store.jobs(Some("done"), None, None, 500).await.unwrap()), 1);

    let pruned = result(&run_now(&server, &admin, "retention").await);
    let deleted = &pruned["deleted"];
    assert_eq!(deleted["candles_1m"], 1, "{pruned}");
    assert_eq!(deleted["equity_minutes"], 2, "{pruned}");
    assert_eq!(deleted["audit"], 1, "{pruned}");
    assert_eq!(deleted["jobs"], 1, "{pruned}");
    assert_eq!(old_jobs(store.jobs(Some("done"), None, None, 500).await.unwrap()), 0);
    assert_eq!(store.candles(spy, "5m", start, start.plus_nanos(600_000_000_000), 10).await.unwrap().len(), 2);

    // The equity history falls back on the daily point where the minutes are gone.
    let from = Timestamp::from_nanos(day * NANOS_PER_DAY);
    let (status, points) = admin.get(&format!("/api/v1/accounts/{account}/equity?from={from}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(points[0]["equity"], "101234.5", "{points}");
    assert_eq!(points[0]["time"], json!(at(day, 86_340)));
    server.stop().await;
    db.remove().await;
}

both_backends!(
    failures_go_to_the_dead_letter_list_and_admins_retry_them,
    reconciliation_finds_a_tampered_read_model_and_restricts_the_account,
    daily_equity_roll_ups_and_retention,
);
