//! `/metrics` for real: a started server, real traffic over HTTP and a
//! WebSocket, then a scrape of the metrics listener checked by Prometheus's
//! own `promtool check metrics` and for the series operators alert on.

mod common;

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{ADMIN_PASSWORD, User, open_account};
use futures_util::{SinkExt as _, StreamExt as _};
use reqwest::StatusCode;
use serde_json::json;
use store::testing::TestDatabase;

/// Prometheus's `promtool` (Debian's `prometheus` package; `scripts/test` installs it).
fn promtool() -> String {
    let path = std::env::var("TRADECORE_TEST_PROMTOOL").unwrap_or_else(|_| "/usr/bin/promtool".to_string());
    assert!(std::path::Path::new(&path).exists(), "{path} is missing: apt-get install prometheus (scripts/test does)");
    path
}

/// The value of the first sample whose line starts with `series`.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find(|l| l.starts_with(series)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_pass_promtool_and_count_what_happens() {
    let db = TestDatabase::create("sqlite", "metrics").await;
    let server = common::start(&db).await;
    let (_stop, stop) = tokio::sync::watch::channel(false);
    let addr = "127.0.0.1:0".parse().unwrap();
    let source = server::telemetry::metrics_source(Some(server.started.state.clone()));
    let metrics = server::telemetry::serve_metrics(addr, source, stop).await.unwrap();
    let admin = User::sign_in(&server.base, "admin", ADMIN_PASSWORD).await;
    let account = open_account(&admin).await;
    let orders = format!("/api/v1/accounts/{account}/orders");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, _) = admin
        .post(
            &orders,
            json!({"client_order_id": "m1", "symbol": "SPY", "side": "buy", "type": "market", "quantity": "1"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = admin
        .post(
            &orders,
            json!({"client_order_id": "m2", "symbol": "SPY", "side": "buy", "type": "market", "quantity": "100000"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "too big for the cash");
    let (status, _) = admin.get("/api/v1/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Request ids: ours echoed, a fresh one otherwise.
    let http = reqwest::Client::new();
    let ours = http.get(format!("{}/healthz", server.base)).header("x-request-id", "trace-me-42").send().await.unwrap();
    assert_eq!(ours.headers()["x-request-id"], "trace-me-42");
    let fresh =
        http.get(format!("{}/healthz", server.base)).header("x-request-id", "x".repeat(100)).send().await.unwrap();
    assert_eq!(fresh.headers()["x-request-id"].len(), 16);
    // A WebSocket reading quotes stays open during the scrape.
    let url = format!("{}/api/v1/ws", server.base.replace("http://", "ws://"));
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    ws.send(tokio_tungstenite::tungstenite::Message::text(r#"{"op":"subscribe","channels":["quotes:SPY"]}"#))
        .await
        .unwrap();
    for _ in 0..3 {
        let _ = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap();
    }

    // Fills are counted when they are durable; wait for the market order's.
    let mut text = String::new();
    for _ in 0..50 {
        text = http.get(format!("http://{metrics}/metrics")).send().await.unwrap().text().await.unwrap();
        let job_ran = text.contains(r#"tradecore_job_runs_total{task="reconcile",outcome="ok"}"#)
            || text.contains(r#"tradecore_job_runs_total{outcome="ok",task="reconcile"}"#);
        if value(&text, "tradecore_orders_filled_total").unwrap_or(0.0) >= 1.0 && job_ran {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut check = Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let route = r#"route="/api/v1/accounts/{account}/orders""#;
    let created = format!(r#"tradecore_http_requests_total{{method="POST",{route},status="201"}}"#);
    assert_eq!(value(&text, &created), Some(1.0), "labelled by the route's template:\n{text}");
    assert!(value(&text, r#"tradecore_http_requests_total{method="GET",route="unmatched",status="404"}"#).is_some());
    assert!(text.contains(r#"tradecore_http_request_duration_seconds_bucket{method="POST","#));
    assert!(value(&text, "tradecore_http_requests_in_flight").is_some());
    assert!(value(&text, "tradecore_ws_connections").unwrap() >= 1.0);
    assert!(value(&text, "tradecore_ws_messages_sent_total").unwrap() >= 3.0);
    assert!(value(&text, "tradecore_orders_submitted_total").unwrap() >= 2.0);
    assert!(value(&text, "tradecore_orders_accepted_total").unwrap() >= 1.0);
    assert_eq!(value(&text, r#"tradecore_orders_rejected_total{reason="insufficient_cash"}"#), Some(1.0));
    assert!(value(&text, "tradecore_orders_filled_total").unwrap() >= 1.0);
    assert!(value(&text, "tradecore_engine_command_duration_seconds_count").unwrap() >= 2.0);
    assert!(value(&text, "tradecore_journal_commit_duration_seconds_count").unwrap() >= 1.0);
    assert!(value(&text, "tradecore_journal_batch_size_count").unwrap() >= 1.0);
    assert!(value(&text, "tradecore_journal_queued_commits").is_some());
    assert!(value(&text, r#"tradecore_db_pool_connections{state="idle"}"#).is_some());
    assert!(value(&text, "tradecore_db_pool_acquire_duration_seconds_count").unwrap() >= 1.0);
    assert!(value(&text, r#"tradecore_feed_lag_seconds{instrument="SPY"}"#).unwrap() < 5.0);
    assert_eq!(value(&text, "tradecore_accounts_running"), Some(1.0));
    assert_eq!(value(&text, "tradecore_bots_running"), Some(0.0));
    assert!(value(&text, "process_resident_memory_bytes").unwrap() > 1e6);
    assert!(value(&text, "process_open_fds").unwrap() > 3.0);
    assert!(text.contains("# HELP tradecore_orders_rejected_total"), "described");
    // The scheduled jobs ran at start (their latest slots), labelled by task.
    assert!(value(&text, r#"tradecore_jobs_queued{task="backup"}"#).is_some(), "{text}");
    assert!(value(&text, "tradecore_jobs_dead").is_some());
    assert!(text.contains(r#"tradecore_job_duration_seconds_count{task="reconcile"}"#), "{text}");

    // Everything exported is in the catalogue the alert rules and the Grafana
    // dashboard are checked against, with the same type.
    let catalogue = include_str!("../../../deploy/monitoring/metrics.txt");
    let listed: Vec<(&str, &str)> = catalogue
        .lines()
        .map(|l| l.split('#').next().unwrap_or_default())
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            Some((words.next()?, words.next()?))
        })
        .collect();
    for family in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let (name, kind) = family.split_once(' ').unwrap();
        if name.starts_with("tradecore_") || name.starts_with("process_") {
            assert!(listed.contains(&(name, kind)), "{name} ({kind}) is missing from deploy/monitoring/metrics.txt");
        }
    }
    server.stop().await;
    db.remove().await;
}
