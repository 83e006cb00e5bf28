//! `tc-loadgen`: drives a running `tradecore serve` over loopback from its
//! own process, so the server's figures are not mixed with the client's
//! (they still share the machine's cores: say so when reporting).
//!
//! Modes:
//! - `api`: signs in as the admin, makes a read+trade token and one paper
//!   account per client, then (1) N clients submit orders back to back over
//!   keep-alive HTTP/1.1 connections (every 201 is a durable
//!   acknowledgement), and (2) reads (positions, open orders) at a target
//!   rate spread over M connections. Prints rates and latency percentiles.
//! - `ws`: opens N WebSocket clients subscribed to one instrument's quotes
//!   and measures delivery latency from each quote's own timestamp, and the
//!   server's resident memory (`--server-pid`).
//! - `seed`: journals at least N events (market orders that fill), for the
//!   restart benchmark.
//!
//! Every run is bounded in time and talks only to the URL it is given
//! (loopback in `scripts/bench`).

mod http;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, Subcommand, ValueEnum};
use http::Conn;

#[derive(Debug, Parser)]
#[command(name = "tc-loadgen", about = "Load generator for tradecore serve")]
struct Cli {
    /// The server's address (loopback).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,
    /// The admin's password (the server's auth.admin_password).
    #[arg(long, env = "TC_LOADGEN_PASSWORD", default_value = "")]
    password: String,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OrderKind {
    /// GTC limit buys far below the market: they rest (2 events each).
    Limit,
    /// Market orders, alternately buy and sell, that fill at once against
    /// the latest quote (3 events, an order, a fill, a position and balances each).
    Market,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Order submission, then reads.
    Api {
        /// Concurrent order-submitting clients (one account and connection each).
        #[arg(long, default_value_t = 64)]
        clients: usize,
        /// Seconds of order submission.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, value_enum, default_value_t = OrderKind::Limit)]
        order: OrderKind,
        /// Symbol to trade.
        #[arg(long, default_value = "SPY")]
        symbol: String,
        /// Target reads per second (0: skip reads).
        #[arg(long, default_value_t = 10_000)]
        read_rate: u64,
        /// Connections the reads are spread over.
        #[arg(long, default_value_t = 64)]
        read_connections: usize,
        /// Seconds of reads.
        #[arg(long, default_value_t = 10)]
        read_seconds: u64,
    },
    /// WebSocket fan-out of quotes.
    Ws {
        #[arg(long, default_value_t = 10_000)]
        clients: usize,
        /// Seconds of measurement once every client is subscribed.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        #[arg(long, default_value = "BTC-USDT")]
        symbol: String,
        /// The server's process id, to report its resident memory.
        #[arg(long)]
        server_pid: Option<u32>,
    },
    /// Journals at least `events` events with market orders.
    Seed {
        #[arg(long)]
        events: u64,
        #[arg(long, default_value_t = 64)]
        clients: usize,
        #[arg(long, default_value = "SPY")]
        symbol: String,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 900)]
        max_seconds: u64,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        match cli.mode {
            Mode::Api { clients, seconds, order, ref symbol, read_rate, read_connections, read_seconds } => {
                let session = Session::open(&cli.addr, &cli.password).await?;
                let accounts = session.accounts(clients).await?;
                orders(&session, &accounts, seconds, order, symbol).await?;
                if read_rate > 0 {
                    reads(&session, &accounts, read_rate, read_connections, read_seconds).await?;
                }
                Ok(())
            }
            Mode::Ws { clients, seconds, ref symbol, server_pid } => {
                ws(&cli.addr, clients, seconds, symbol, server_pid).await
            }
            Mode::Seed { events, clients, ref symbol, max_seconds } => {
                let session = Session::open(&cli.addr, &cli.password).await?;
                let accounts = session.accounts(clients).await?;
                seed(&session, &accounts, events, symbol, max_seconds).await
            }
        }
    })
}

// ---------------------------------------------------------------------------
// Setup

/// A signed-in admin with an API token.
struct Session {
    addr: String,
    /// `Authorization: Bearer ...`
    auth: String,
    /// Distinguishes this run's client order ids from an earlier run's.
    run: u128,
}

impl Session {
    async fn open(addr: &str, password: &str) -> Result<Self> {
        let mut conn = Conn::connect(addr).await.with_context(|| format!("cannot connect to {addr}"))?;
        let body = serde_json::json!({"username": "admin", "password": password}).to_string();
        let login = conn.request("POST", "/api/v1/auth/login", &[], Some(body.as_bytes())).await?;
        if login.status != 200 {
            bail!("sign-in failed ({}): {}", login.status, String::from_utf8_lossy(&login.body));
        }
        let csrf = login.json()?["csrf_token"].as_str().unwrap_or_default().to_string();
        let cookie = login
            .set_cookie
            .as_deref()
            .and_then(|c| c.split(';').next())
            .ok_or_else(|| anyhow!("sign-in set no cookie"))?
            .to_string();
        let body = serde_json::json!({"name": "loadgen", "scopes": ["read", "trade"]}).to_string();
        let headers = [format!("Cookie: {cookie}"), format!("X-CSRF-Token: {csrf}")];
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        let token = conn.request("POST", "/api/v1/tokens", &headers, Some(body.as_bytes())).await?;
        if token.status != 201 {
            bail!("token creation failed ({}): {}", token.status, String::from_utf8_lossy(&token.body));
        }
        let token = token.json()?["token"].as_str().unwrap_or_default().to_string();
        let run = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        Ok(Self { addr: addr.to_string(), auth: format!("Authorization: Bearer {token}"), run })
    }

    /// Opens `n` paper accounts with plenty of cash.
    async fn accounts(&self, n: usize) -> Result<Vec<i64>> {
        let mut conn = Conn::connect(&self.addr).await?;
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            let body = serde_json::json!({"name": format!("loadgen {i}"), "starting_cash": "1000000000"}).to_string();
            let answer = conn.request("POST", "/api/v1/accounts", &[&self.auth], Some(body.as_bytes())).await?;
            if answer.status != 201 {
                bail!("account creation failed ({}): {}", answer.status, String::from_utf8_lossy(&answer.body));
            }
            ids.push(answer.json()?["id"].as_i64().ok_or_else(|| anyhow!("no account id"))?);
        }
        Ok(ids)
    }
}

// ---------------------------------------------------------------------------
// Figures

/// Latencies in microseconds.
#[derive(Debug, Default)]
struct Latencies(Vec<u32>);

impl Latencies {
    fn push(&mut self, d: Duration) {
        self.0.push(u32::try_from(d.as_micros()).unwrap_or(u32::MAX));
    }

    fn merge(&mut self, other: Self) {
        self.0.extend(other.0);
    }

    /// Milliseconds at quantile `q` (nearest rank).
    fn ms(&self, q: f64) -> f64 {
        if self.0.is_empty() {
            return f64::NAN;
        }
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
        let rank = ((q * self.0.len() as f64).ceil() as usize).clamp(1, self.0.len());
        f64::from(self.0[rank - 1]) / 1e3
    }

    fn summary(&mut self) -> String {
        self.0.sort_unstable();
        format!(
            "p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
            self.ms(0.5),
            self.ms(0.99),
            self.ms(0.999),
            self.ms(1.0)
        )
    }
}

/// Answers other than the expected one, by status (0: connection error).
#[derive(Debug, Default)]
struct Failures(std::collections::BTreeMap<u16, u64>);

impl Failures {
    fn add(&mut self, status: u16) {
        *self.0.entry(status).or_default() += 1;
    }

    fn merge(&mut self, other: Self) {
        for (k, v) in other.0 {
            *self.0.entry(k).or_default() += v;
        }
    }

    fn describe(&self) -> String {
        if self.0.is_empty() {
            return "none".to_string();
        }
        self.0.iter().map(|(s, n)| format!("{n}x{s}")).collect::<Vec<_>>().join(", ")
    }
}

#[allow(clippy::cast_precision_loss)]
fn per_second(n: usize, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

// ---------------------------------------------------------------------------
// Orders

fn order_body(kind: OrderKind, symbol: &str, run: u128, client: usize, n: u64) -> String {
    match kind {
        OrderKind::Limit => format!(
            r#"{{"client_order_id":"r{run:x}-{client}-{n}","symbol":"{symbol}","side":"buy","type":"limit","price":"1.00","quantity":"1"}}"#
        ),
        OrderKind::Market => {
            // Alternating keeps the position between 0 and 1.
            let side = if n % 2 == 1 { "buy" } else { "sell" };
            format!(
                r#"{{"client_order_id":"r{run:x}-{client}-{n}","symbol":"{symbol}","side":"{side}","type":"market","quantity":"1"}}"#
            )
        }
    }
}

/// Closed loop: each client submits its next order as soon as the last is answered.
async fn orders(session: &Session, accounts: &[i64], seconds: u64, kind: OrderKind, symbol: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (client, &account) in accounts.iter().enumerate() {
        let (addr, auth, symbol, run) = (session.addr.clone(), session.auth.clone(), symbol.to_string(), session.run);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Latencies::default();
            let mut failures = Failures::default();
            let Ok(mut conn) = Conn::connect(&addr).await else {
                failures.add(0);
                return (latencies, failures);
            };
            let path = format!("/api/v1/accounts/{account}/orders");
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                let body = order_body(kind, &symbol, run, client, n);
                let t = Instant::now();
                match conn.request("POST", &path, &[&auth], Some(body.as_bytes())).await {
                    Ok(r) if r.status == 201 => latencies.push(t.elapsed()),
                    Ok(r) => failures.add(r.status),
                    Err(_) => {
                        failures.add(0);
                        match Conn::connect(&addr).await {
                            Ok(c) => conn = c,
                            Err(_) => break,
                        }
                    }
                }
            }
            (latencies, failures)
        }));
    }
    let mut latencies = Latencies::default();
    let mut failures = Failures::default();
    for task in tasks {
        let (l, f) = task.await?;
        latencies.merge(l);
        failures.merge(f);
    }
    let elapsed = started.elapsed();
    let n = latencies.0.len();
    println!(
        "orders ({kind:?}, {} clients): {n} acknowledged in {:.1} s = {:.0} orders/s; {}; other answers: {}",
        accounts.len(),
        elapsed.as_secs_f64(),
        per_second(n, elapsed),
        latencies.summary(),
        failures.describe()
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// Reads

/// Open loop: every connection sends on its own schedule so that together
/// they offer `rate` requests/s, alternating positions and open orders.
/// Latency is measured from the send; a server that cannot keep up shows as
/// an achieved rate below the target (sends are late, then cut at the deadline).
async fn reads(session: &Session, accounts: &[i64], rate: u64, connections: usize, seconds: u64) -> Result<()> {
    let connections = connections.max(1);
    let period = Duration::from_secs_f64(connections as f64 / rate as f64);
    let started = Instant::now() + Duration::from_millis(100);
    let deadline = started + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for c in 0..connections {
        let (addr, auth) = (session.addr.clone(), session.auth.clone());
        let account = accounts[c % accounts.len()];
        tasks.push(tokio::spawn(async move {
            let mut latencies = Latencies::default();
            let mut failures = Failures::default();
            let Ok(mut conn) = Conn::connect(&addr).await else {
                failures.add(0);
                return (latencies, failures, 0u64);
            };
            let paths = [
                format!("/api/v1/accounts/{account}/positions"),
                format!("/api/v1/accounts/{account}/orders?status=open&limit=50"),
            ];
            // Spread the connections' first sends over one period.
            #[allow(clippy::cast_possible_truncation)]
            let mut next = started + period.mul_f64(c as f64 / connections as f64);
            let mut late = 0u64;
            let mut i = 0usize;
            // Ends at the deadline even when behind schedule.
            while next < deadline && Instant::now() < deadline {
                let now = Instant::now();
                if next > now {
                    tokio::time::sleep_until(next.into()).await;
                } else if now - next > period {
                    late += 1;
                }
                next += period;
                let t = Instant::now();
                match conn.request("GET", &paths[i % 2], &[&auth], None).await {
                    Ok(r) if r.status == 200 => latencies.push(t.elapsed()),
                    Ok(r) => failures.add(r.status),
                    Err(_) => {
                        failures.add(0);
                        match Conn::connect(&addr).await {
                            Ok(c) => conn = c,
                            Err(_) => break,
                        }
                    }
                }
                i += 1;
            }
            (latencies, failures, late)
        }));
    }
    let mut latencies = Latencies::default();
    let mut failures = Failures::default();
    let mut late = 0;
    for task in tasks {
        let (l, f, n) = task.await?;
        latencies.merge(l);
        failures.merge(f);
        late += n;
    }
    let elapsed = started.elapsed();
    let n = latencies.0.len();
    println!(
        "reads (positions, open orders; target {rate}/s over {connections} connections): {n} in {:.1} s = {:.0} requests/s; {}; sends more than a period late: {late}; other answers: {}",
        elapsed.as_secs_f64(),
        per_second(n, elapsed),
        latencies.summary(),
        failures.describe()
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// Seeding the journal

async fn journal_events(conn: &mut Conn) -> Result<u64> {
    let status = conn.request("GET", "/api/v1/status", &[], None).await?;
    status.json()?["journal"]["events"].as_u64().ok_or_else(|| anyhow!("no journal.events in /api/v1/status"))
}

/// Market orders from every account until the server has journaled `target` events.
async fn seed(session: &Session, accounts: &[i64], target: u64, symbol: &str, max_seconds: u64) -> Result<()> {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (client, &account) in accounts.iter().enumerate() {
        let (addr, auth, symbol, run, stop) =
            (session.addr.clone(), session.auth.clone(), symbol.to_string(), session.run, Arc::clone(&stop));
        tasks.push(tokio::spawn(async move {
            let mut done = 0u64;
            let Ok(mut conn) = Conn::connect(&addr).await else { return done };
            let path = format!("/api/v1/accounts/{account}/orders");
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let body = order_body(OrderKind::Market, &symbol, run, client, n);
                match conn.request("POST", &path, &[&auth], Some(body.as_bytes())).await {
                    Ok(r) if r.status == 201 => done += 1,
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            done
        }));
    }
    let mut conn = Conn::connect(&session.addr).await?;
    let deadline = started + Duration::from_secs(max_seconds);
    let events = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let events = journal_events(&mut conn).await?;
        if events >= target || Instant::now() > deadline {
            break events;
        }
    };
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut orders = 0;
    for task in tasks {
        orders += task.await?;
    }
    let events = journal_events(&mut conn).await?.max(events);
    println!(
        "seed: {orders} market orders, {events} events journaled since the server started, in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    if events < target {
        bail!("only {events} of {target} events within {max_seconds} s");
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// WebSocket fan-out

/// The server's resident memory in MiB, from /proc.
fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 =
        status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib / 1024.0)
}

/// The quote's timestamp (`"ts":"..."` inside `data`) in nanoseconds.
fn quote_ts(text: &str) -> Option<i64> {
    let start = text.find("\"ts\":\"")? + 6;
    let end = start + text[start..].find('"')?;
    model::Timestamp::parse(&text[start..end]).ok().map(model::Timestamp::as_nanos)
}

fn wall_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

struct WsOutcome {
    latencies: Latencies,
    messages: u64,
    closed_early: bool,
}

async fn ws(addr: &str, clients: usize, seconds: u64, symbol: &str, server_pid: Option<u32>) -> Result<()> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let rss = |when: &str| {
        if let Some(mib) = server_pid.and_then(rss_mib) {
            println!("ws: server RSS {when}: {mib:.1} MiB");
        }
    };
    rss("before connecting");
    let url = format!("ws://{addr}/api/v1/ws");
    let subscribe = serde_json::json!({"op": "subscribe", "channels": [format!("quotes:{symbol}")]}).to_string();
    // Clients read from the start (so nothing piles up in their sockets)
    // and count only what arrives inside the window, the same for all.
    let window = Arc::new((std::sync::atomic::AtomicI64::new(i64::MAX), std::sync::atomic::AtomicI64::new(i64::MAX)));
    let connecting = Instant::now();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<bool>(clients.max(1));
    // Connects in waves, so the listener's backlog is never the limit.
    let limit = Arc::new(tokio::sync::Semaphore::new(256));
    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients {
        let (url, subscribe, window, ready, limit) =
            (url.clone(), subscribe.clone(), Arc::clone(&window), ready_tx.clone(), Arc::clone(&limit));
        tasks.push(tokio::spawn(async move {
            use std::sync::atomic::Ordering::Relaxed;
            let mut outcome = WsOutcome { latencies: Latencies::default(), messages: 0, closed_early: false };
            let permit = limit.acquire_owned().await;
            let connected = tokio_tungstenite::connect_async(url.as_str()).await;
            let Ok((mut socket, _)) = connected else {
                let _ = ready.send(false).await;
                outcome.closed_early = true;
                return outcome;
            };
            if socket.send(Message::text(subscribe)).await.is_err() {
                let _ = ready.send(false).await;
                outcome.closed_early = true;
                return outcome;
            }
            // The "subscribed" answer.
            let _ = socket.next().await;
            drop(permit);
            let _ = ready.send(true).await;
            loop {
                let next = tokio::time::timeout(Duration::from_millis(500), socket.next()).await;
                let now = wall_nanos();
                if now >= window.1.load(Relaxed) {
                    break;
                }
                match next {
                    Err(_) => {}
                    Ok(Some(Ok(Message::Text(text)))) => {
                        if now >= window.0.load(Relaxed)
                            && let Some(ts) = quote_ts(text.as_str())
                        {
                            let lag = now.saturating_sub(ts).max(0);
                            outcome.latencies.push(Duration::from_nanos(u64::try_from(lag).unwrap_or(0)));
                            outcome.messages += 1;
                        }
                    }
                    Ok(Some(Ok(_))) => {}
                    Ok(Some(Err(_)) | None) => {
                        outcome.closed_early = true;
                        break;
                    }
                }
            }
            let _ = socket.close(None).await;
            outcome
        }));
    }
    drop(ready_tx);
    let mut subscribed = 0usize;
    let mut refused = 0usize;
    while let Some(ok) = ready_rx.recv().await {
        if ok {
            subscribed += 1
        } else {
            refused += 1
        }
        if subscribed + refused == clients {
            break;
        }
    }
    println!(
        "ws: {subscribed} clients subscribed to quotes:{symbol} in {:.1} s ({refused} failed)",
        connecting.elapsed().as_secs_f64()
    );
    rss("with every client subscribed");
    let end = Instant::now() + Duration::from_secs(seconds);
    let start_ns = wall_nanos();
    window.1.store(
        start_ns + i64::try_from(Duration::from_secs(seconds).as_nanos()).unwrap_or(i64::MAX),
        std::sync::atomic::Ordering::Relaxed,
    );
    window.0.store(start_ns, std::sync::atomic::Ordering::Relaxed);
    let mut peak = 0.0f64;
    let sampler = async {
        while Instant::now() < end {
            if let Some(mib) = server_pid.and_then(rss_mib) {
                peak = peak.max(mib);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };
    sampler.await;
    let mut latencies = Latencies::default();
    let mut messages = 0u64;
    let mut dropped = 0usize;
    for task in tasks {
        let outcome = task.await?;
        messages += outcome.messages;
        dropped += usize::from(outcome.closed_early);
        latencies.merge(outcome.latencies);
    }
    #[allow(clippy::cast_precision_loss)]
    let rate = messages as f64 / seconds as f64;
    println!(
        "ws: {messages} quotes delivered in {seconds} s ({rate:.0}/s over {subscribed} clients); delivery latency from the quote's timestamp {}; clients closed or failed: {dropped}",
        latencies.summary()
    );
    if server_pid.is_some() {
        println!("ws: server RSS peak while delivering: {peak:.1} MiB");
    }
    Ok(())
}
