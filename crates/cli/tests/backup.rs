//! `tradecore backup` on the real binary: a backup taken while the server
//! keeps trading restores into a new database with every order acknowledged
//! before it, and the same positions and cash; a non-empty database is
//! refused; a damaged backup fails verification.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Server, TempDir};
use serde_json::{Value, json};

const PASSWORD: &str = "a long admin password for tests";
const KEY: &str = "5f1c7e0a9b3d2c4e8f6a1b0d3c5e7f9a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e";

/// `cmd` on a database, with the backup target and key set.
fn on<'a>(database: &str, backups: &Path, cmd: &'a mut Command) -> &'a mut Command {
    cmd.env("TRADECORE_DATABASE__URL", database)
        .env("TRADECORE_BACKUP__TARGET", format!("file://{}", backups.display()))
        .env("TRADECORE_BACKUP__KEY", KEY)
        // No scheduled backups behind the test's back.
        .env("TRADECORE_JOBS__BACKUP", "")
        .env("TRADECORE_JOBS__BACKUP_VERIFY", "")
        .env("TRADECORE_ADMIN_PASSWORD", PASSWORD)
        .env("TRADECORE_METRICS__LISTEN", "127.0.0.1:0")
        .env("TRADECORE_PAPER__TICKS_PER_SECOND", "20")
}

fn run(database: &str, backups: &Path, args: &[&str]) -> Output {
    on(database, backups, &mut common::tradecore()).args(args).output().expect("tradecore runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The server on a database, on a free port.
fn start(database: &str, backups: &Path) -> (Server, String) {
    let server = Server::spawn(on(database, backups, &mut common::serve("127.0.0.1:0")));
    let base = server.base.clone();
    (server, base)
}

async fn get(http: &reqwest::Client, token: &str, url: String) -> Value {
    let response = http.get(&url).bearer_auth(token).send().await.unwrap();
    assert_eq!(response.status(), 200, "GET {url}");
    response.json().await.unwrap()
}

/// A market buy or a limit buy far below the market (it rests).
fn order(id: &str, market: bool) -> Value {
    if market {
        json!({"client_order_id": id, "symbol": "AAPL", "side": "buy", "type": "market", "quantity": "1"})
    } else {
        json!({"client_order_id": id, "symbol": "AAPL", "side": "buy", "type": "limit", "price": "1", "quantity": "2"})
    }
}

/// Positions and cash of an account as stored, sorted.
async fn holdings(http: &reqwest::Client, token: &str, base: &str, account: i64) -> (Value, Value) {
    let mut positions = get(http, token, format!("{base}/api/v1/accounts/{account}/positions")).await;
    if let Some(list) = positions.as_array_mut() {
        list.sort_by_key(|p| p["instrument"].to_string());
    }
    let mut balances = get(http, token, format!("{base}/api/v1/accounts/{account}/balances")).await;
    if let Some(list) = balances.as_array_mut() {
        list.sort_by_key(|b| b[0].to_string());
    }
    (positions, balances)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_while_trading_restores_everything_acknowledged() {
    let dir = TempDir::new("backup-e2e");
    let backups = dir.0.join("backups");
    let original = format!("sqlite:{}", dir.0.join("live/tradecore.db").display());
    let restored = format!("sqlite:{}", dir.0.join("restored/tradecore.db").display());

    let (server, base) = start(&original, &backups);
    let token = common::api_token(&base, "admin", PASSWORD, &["read", "trade"]).await;
    let http = reqwest::Client::new();
    let account: Value = http
        .post(format!("{base}/api/v1/accounts"))
        .bearer_auth(&token)
        .json(&json!({"name": "backed up", "starting_cash": "1000000"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let account = account["id"].as_i64().expect("an account");
    let orders = format!("{base}/api/v1/accounts/{account}/orders");

    // Market and resting limit orders; keep the acknowledged ones.
    let mut acknowledged = Vec::new();
    for n in 0..12 {
        let response = http
            .post(&orders)
            .bearer_auth(&token)
            .json(&order(&format!("before-{n}"), n % 3 == 0))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "order {n}");
        let placed: Value = response.json().await.unwrap();
        acknowledged.push(placed["id"].as_u64().expect("an order id"));
    }
    // Wait for the market orders to fill, so their status is final.
    let deadline = Instant::now() + Duration::from_secs(15);
    let statuses = loop {
        let mut statuses = Vec::new();
        for id in &acknowledged {
            let order = get(&http, &token, format!("{orders}/{id}")).await;
            statuses.push((*id, order["status"].as_str().unwrap_or_default().to_string()));
        }
        let settled = statuses.iter().all(|(_, s)| s == "filled" || s == "accepted");
        if settled || Instant::now() > deadline {
            break statuses;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(statuses.iter().filter(|(_, s)| s == "filled").count(), 4, "{statuses:?}");
    let (positions, balances) = holdings(&http, &token, &base, account).await;

    // Keep placing resting orders while the backup runs: they change no
    // position or cash, so the holdings above stay the reference.
    let stop = Arc::new(AtomicBool::new(false));
    let during = tokio::spawn({
        let (http, orders, token, stop) = (http.clone(), orders.clone(), token.clone(), Arc::clone(&stop));
        async move {
            let mut placed = 0;
            while !stop.load(Ordering::Relaxed) {
                let body = order(&format!("during-{placed}"), false);
                if let Ok(r) = http.post(&orders).bearer_auth(&token).json(&body).send().await
                    && r.status() == 201
                {
                    placed += 1;
                }
            }
            placed
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (db, dir_backups) = (original.clone(), backups.clone());
    let created = tokio::task::spawn_blocking(move || run(&db, &dir_backups, &["backup", "create"])).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.store(true, Ordering::Relaxed);
    let placed_during = during.await.unwrap();
    let stdout = text(&created.stdout);
    assert!(created.status.success(), "backup create: {}{}", stdout, text(&created.stderr));
    assert!(placed_during > 0, "orders kept coming during the backup");
    let name =
        stdout.lines().find_map(|l| l.strip_prefix("created ")).expect("create names the backup").trim().to_string();
    assert!(stdout.contains("rows") && stdout.contains(&format!("file://{}", backups.display())), "{stdout}");

    let listed = run(&original, &backups, &["backup", "list"]);
    let table = text(&listed.stdout);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    assert!(table.contains(&name) && table.contains("ok") && table.contains("sqlite"), "{table}");
    let listed = run(&original, &backups, &["backup", "list", "--json"]);
    let entries: Value = serde_json::from_slice(&listed.stdout).expect("list --json is JSON");
    assert_eq!(entries[0]["name"], name.as_str(), "{entries}");
    assert_eq!(entries[0]["ok"], true, "{entries}");

    let verified = run(&original, &backups, &["backup", "verify"]);
    let report = text(&verified.stdout);
    assert!(verified.status.success(), "verify: {report}{}", text(&verified.stderr));
    assert!(report.contains(&format!("{name} is good")) && report.contains("1 account replayed"), "{report}");

    server.stop();

    let into_new = run(&restored, &backups, &["backup", "restore", "--latest"]);
    assert!(into_new.status.success(), "restore: {}{}", text(&into_new.stdout), text(&into_new.stderr));
    assert!(text(&into_new.stderr).contains("the server must be stopped"), "{}", text(&into_new.stderr));
    assert!(text(&into_new.stdout).contains(&format!("restored {name}")), "{}", text(&into_new.stdout));

    let into_used = run(&original, &backups, &["backup", "restore", &name]);
    assert_eq!(into_used.status.code(), Some(1), "restore into a database with data is refused");
    let refusal = text(&into_used.stderr);
    assert!(refusal.contains("is not empty"), "{refusal}");
    let again = run(&restored, &backups, &["backup", "restore", "--latest"]);
    assert_eq!(again.status.code(), Some(1), "a second restore into the same database is refused");

    // The restored database serves every order acknowledged before the
    // backup with the same status, and the same positions and cash.
    let (server, base) = start(&restored, &backups);
    let orders = format!("{base}/api/v1/accounts/{account}/orders");
    for (id, status) in &statuses {
        let order = get(&http, &token, format!("{orders}/{id}")).await;
        assert_eq!(order["status"].as_str(), Some(status.as_str()), "order {id} after the restore: {order}");
    }
    assert_eq!(holdings(&http, &token, &base, account).await, (positions, balances), "positions and cash");
    server.stop();

    let pruned = run(&original, &backups, &["backup", "prune", "--dry-run"]);
    assert!(pruned.status.success(), "{}", text(&pruned.stderr));
    assert!(text(&pruned.stdout).contains("nothing to prune: 1 backup kept"), "{}", text(&pruned.stdout));

    // One flipped byte in the stored data: verification names the checksum.
    let data = backups.join(format!("{name}.dump.gz.enc"));
    let mut bytes = std::fs::read(&data).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&data, bytes).unwrap();
    let damaged = run(&original, &backups, &["backup", "verify", &name]);
    assert_eq!(damaged.status.code(), Some(1), "a damaged backup fails verification");
    let message = text(&damaged.stderr);
    assert!(message.contains("checksum") && message.contains(&name), "{message}");
}

#[test]
fn without_a_target_backup_commands_say_what_to_set() {
    let out = common::tradecore().args(["backup", "list"]).env_remove("TRADECORE_BACKUP__TARGET").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("backup.target") && !stderr.contains("panicked"), "{stderr}");
}
