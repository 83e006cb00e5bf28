//! API throughput over loopback: `cargo bench -p server --bench api`.
//!
//! Starts the server as `serve` does (in this process, listening on
//! 127.0.0.1), signs in, opens one paper account per client, then:
//! - order submission: 64 clients each submit resting limit orders
//!   back-to-back for a few seconds; every answer is a durable
//!   acknowledgement (201). Prints orders/s and latency percentiles;
//! - reads: 64 clients read positions and open orders.
//!
//! Runs on SQLite (a file, synchronous=FULL) and, when one answers, on
//! PostgreSQL (TRADECORE_TEST_POSTGRES_URL or the local default). Rate
//! limits are raised for the run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const CLIENTS: usize = 64;
const PASSWORD: &str = "benchmark admin password";

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
    let i = ((sorted.len() as f64 * p) as usize).min(sorted.len() - 1);
    sorted[i].as_secs_f64() * 1e3
}

async fn run(name: &str, database_url: String, seconds: u64) {
    let env = vec![
        ("TRADECORE_DATABASE__URL".to_string(), database_url),
        ("TRADECORE_AUTH__ADMIN_PASSWORD".to_string(), PASSWORD.to_string()),
        ("TRADECORE_RATE_LIMIT__PER_IP_PER_MINUTE".to_string(), "100000000".to_string()),
        ("TRADECORE_RATE_LIMIT__PER_TOKEN_PER_MINUTE".to_string(), "100000000".to_string()),
        ("TRADECORE_DATABASE__MAX_CONNECTIONS".to_string(), "16".to_string()),
    ];
    let config = server::config::load(None, &env).unwrap_or_else(|e| panic!("{e}"));
    let started = server::serve::start(config).await.unwrap_or_else(|e| panic!("{e}"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
    let base = format!("http://{}", listener.local_addr().unwrap_or_else(|e| panic!("{e}")));
    let router = server::app::app(started.state.clone());
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router.into_make_service_with_connect_info::<std::net::SocketAddr>()).await;
    });

    let http = reqwest::Client::builder()
        .cookie_store(true)
        .pool_max_idle_per_host(CLIENTS * 2)
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let login: Value = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"username": "admin", "password": PASSWORD}))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let csrf = login["csrf_token"].as_str().unwrap_or_default().to_string();
    let token: Value = http
        .post(format!("{base}/api/v1/tokens"))
        .header("X-CSRF-Token", csrf)
        .json(&json!({"name": "bench", "scopes": ["read", "trade"]}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let token = Arc::new(token["token"].as_str().unwrap_or_default().to_string());
    let mut accounts = Vec::new();
    for i in 0..CLIENTS {
        let account: Value = http
            .post(format!("{base}/api/v1/accounts"))
            .bearer_auth(token.as_str())
            .json(&json!({"name": format!("bench {i}"), "starting_cash": "1000000000"}))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        accounts.push(account["id"].as_i64().unwrap_or_default());
    }

    // Order submission.
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started_at = Instant::now();
    let mut tasks = Vec::new();
    for (c, account) in accounts.iter().enumerate() {
        let (http, base, token, account) = (reqwest::Client::new(), base.clone(), Arc::clone(&token), *account);
        tasks.push(tokio::spawn(async move {
            let url = format!("{base}/api/v1/accounts/{account}/orders");
            let mut latencies = Vec::new();
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                let body = json!({"client_order_id": format!("b{c}-{n}"), "symbol": "SPY", "side": "buy", "type": "limit", "price": "1.00", "quantity": "1"});
                let t = Instant::now();
                let status = http.post(&url).bearer_auth(token.as_str()).json(&body).send().await.map(|r| r.status().as_u16());
                if matches!(status, Ok(201)) {
                    latencies.push(t.elapsed());
                }
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap_or_default());
    }
    let elapsed = started_at.elapsed().as_secs_f64();
    latencies.sort_unstable();
    #[allow(clippy::cast_precision_loss)]
    let rate = latencies.len() as f64 / elapsed;
    println!(
        "{name}: order submission, {CLIENTS} clients: {} durable orders in {elapsed:.1} s = {rate:.0} orders/s; latency p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        percentile(&latencies, 0.999)
    );

    // Reads.
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started_at = Instant::now();
    let mut tasks = Vec::new();
    for account in &accounts {
        let (http, base, token, account) = (reqwest::Client::new(), base.clone(), Arc::clone(&token), *account);
        tasks.push(tokio::spawn(async move {
            let urls = [
                format!("{base}/api/v1/accounts/{account}/positions"),
                format!("{base}/api/v1/accounts/{account}/orders?status=open&limit=50"),
            ];
            let mut latencies = Vec::new();
            let mut i = 0usize;
            while Instant::now() < deadline {
                let t = Instant::now();
                let ok =
                    http.get(&urls[i % 2]).bearer_auth(token.as_str()).send().await.map(|r| r.status().is_success());
                if matches!(ok, Ok(true)) {
                    latencies.push(t.elapsed());
                }
                i += 1;
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap_or_default());
    }
    let elapsed = started_at.elapsed().as_secs_f64();
    latencies.sort_unstable();
    #[allow(clippy::cast_precision_loss)]
    let rate = latencies.len() as f64 / elapsed;
    println!(
        "{name}: reads (positions, open orders), {CLIENTS} clients: {rate:.0} requests/s; latency p50 {:.2} ms, p99 {:.2} ms",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99)
    );
    server.abort();
    started.stop().await;
}

fn main() {
    let seconds: u64 = std::env::var("BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap_or_else(|e| panic!("{e}"));
    runtime.block_on(async {
        println!(
            "machine: {} cores; client and server share them",
            std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
        );
        let dir = std::env::temp_dir().join(format!("tc_api_bench_{}", std::process::id()));
        run("sqlite", format!("sqlite:{}", dir.join("bench.db").display()), seconds).await;
        let _ = std::fs::remove_dir_all(&dir);
        let admin_url = std::env::var("TRADECORE_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        match store::Store::connect(&admin_url, store::StoreOptions { max_connections: 1, ..Default::default() }).await
        {
            Ok(admin) => {
                let name = format!("tc_api_bench_{}", std::process::id());
                if admin.execute_admin(&format!("CREATE DATABASE {name}")).await.is_ok() {
                    let base = admin_url.rsplit_once('/').map_or(admin_url.as_str(), |(b, _)| b).to_string();
                    run("postgres", format!("{base}/{name}"), seconds).await;
                    let _ = admin.execute_admin(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
                }
            }
            Err(e) => println!("postgres: skipped ({e})"),
        }
    });
}
