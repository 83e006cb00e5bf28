//! Page loads of the dashboard in a real headless Chromium, cold: a fresh
//! browser (empty cache, new connection) for every load, signed in by
//! cookie, against a running `tradecore serve` (`BENCH_BASE`, admin
//! password `BENCH_PASSWORD`; `./scripts/bench dashboard` starts one).
//!
//! For each main page it prints the median and worst of `BENCH_LOADS`
//! loads (default 5): first contentful paint, largest contentful paint,
//! the load event (a stand-in for time to interactive: every module has
//! run by then), and the JavaScript the page fetched, as sent (gzip) and
//! as decoded. Targets (REQUIREMENTS.md): FCP < 1.5 s, LCP < 2.5 s,
//! TTI < 3 s; JavaScript < 300 KB.

#[path = "../tests/common/browser.rs"]
mod browser;

use std::time::Duration;

use browser::Browser;
use serde_json::{Value, json};

struct Sample {
    fcp: f64,
    lcp: f64,
    load: f64,
    js_sent: f64,
    js_decoded: f64,
    requests: f64,
}

const MEASURE: &str = r"
const done = arguments[arguments.length - 1];
const settle = () => {
  const nav = performance.getEntriesByType('navigation')[0];
  const fcp = performance.getEntriesByName('first-contentful-paint')[0];
  const scripts = performance.getEntriesByType('resource').filter((r) => /\.m?js$/.test(new URL(r.name).pathname));
  let lcp = null;
  new PerformanceObserver((list) => {
    const entries = list.getEntries();
    lcp = entries[entries.length - 1].startTime;
  }).observe({ type: 'largest-contentful-paint', buffered: true });
  setTimeout(() => done({
    fcp: fcp ? fcp.startTime : null,
    lcp,
    load: nav.loadEventEnd,
    js_sent: scripts.reduce((n, r) => n + r.transferSize, 0),
    js_decoded: scripts.reduce((n, r) => n + r.decodedBodySize, 0),
    requests: performance.getEntriesByType('resource').length + 1,
  }), 100);
};
if (document.readyState === 'complete') setTimeout(settle, 1500); else addEventListener('load', () => setTimeout(settle, 1500));
";

async fn sign_in(base: &str, password: &str) -> (reqwest::Client, String, String) {
    let http = reqwest::Client::new();
    let login = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"username": "admin", "password": password}))
        .send()
        .await
        .expect("the server answers");
    let cookie = login
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .and_then(|v| v.strip_prefix("tc_session="))
        .expect("a session cookie")
        .to_string();
    let body: Value = login.json().await.expect("a sign-in answer");
    (http, cookie, body["csrf_token"].as_str().unwrap_or_default().to_string())
}

/// An account with a position and an open order, so pages have content.
async fn seed(base: &str, http: &reqwest::Client, cookie: &str, csrf: &str) -> i64 {
    let call = |path: &str, body: Value| {
        http.post(format!("{base}{path}"))
            .header("cookie", format!("tc_session={cookie}"))
            .header("x-csrf-token", csrf)
            .json(&body)
            .send()
    };
    let account: Value = call("/api/v1/accounts", json!({"name": "bench"})).await.unwrap().json().await.unwrap();
    let id = account["id"].as_i64().expect("an account");
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (n, order) in [
        json!({"symbol": "BTC-USDT", "side": "buy", "type": "market", "quantity": "0.1"}),
        json!({"symbol": "ETH-USDT", "side": "buy", "type": "market", "quantity": "1"}),
        json!({"symbol": "SPY", "side": "buy", "type": "limit", "price": "1", "quantity": "1"}),
    ]
    .into_iter()
    .enumerate()
    {
        let mut order = order;
        order["client_order_id"] = json!(format!("bench-{id}-{n}"));
        let _ = call(&format!("/api/v1/accounts/{id}/orders"), order).await;
    }
    id
}

async fn load(base: &str, cookie: &str, path: &str) -> Sample {
    let browser = Browser::start("bench").await;
    // A same-origin page that loads nothing, to set the cookie on.
    browser.goto(&format!("{base}/healthz")).await;
    // The sign-in page is measured as a visitor sees it: without a session.
    if path != "/login" {
        browser.set_cookie("tc_session", cookie).await;
    }
    browser.goto(&format!("{base}{path}")).await;
    let m = browser.eval_async(MEASURE, json!([])).await;
    let n = |k: &str| m[k].as_f64().unwrap_or(f64::NAN);
    Sample {
        fcp: n("fcp"),
        lcp: n("lcp"),
        load: n("load"),
        js_sent: n("js_sent"),
        js_decoded: n("js_decoded"),
        requests: n("requests"),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn worst(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NAN, f64::max)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let Ok(base) = std::env::var("BENCH_BASE") else {
        eprintln!("set BENCH_BASE (and BENCH_PASSWORD) to a running tradecore serve; ./scripts/bench dashboard does");
        return;
    };
    let password = std::env::var("BENCH_PASSWORD").unwrap_or_default();
    let loads: usize = std::env::var("BENCH_LOADS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let (http, cookie, csrf) = sign_in(&base, &password).await;
    let account = seed(&base, &http, &cookie, &csrf).await;
    let pages = [
        "/login".to_string(),
        "/".into(),
        format!("/accounts/{account}"),
        "/markets".into(),
        "/markets/BTC-USDT".into(),
        "/orders".into(),
        "/bots".into(),
        "/backtests".into(),
        "/admin".into(),
    ];
    println!("cold loads: a fresh headless Chromium for each, {loads} per page; median / worst");
    println!(
        "{:<20} {:>15} {:>15} {:>15} {:>13} {:>13} {:>9}",
        "page", "FCP ms", "LCP ms", "load ms", "JS sent KB", "JS KB", "requests"
    );
    let mut all_fcp = Vec::new();
    let mut all_lcp = Vec::new();
    let mut max_js = (0.0f64, 0.0f64);
    for page in &pages {
        let mut samples = Vec::with_capacity(loads);
        for _ in 0..loads {
            samples.push(load(&base, &cookie, page).await);
        }
        let col = |f: fn(&Sample) -> f64| samples.iter().map(f).collect::<Vec<_>>();
        let (fcp, lcp, load_end) = (col(|s| s.fcp), col(|s| s.lcp), col(|s| s.load));
        let js_sent = median(col(|s| s.js_sent)) / 1024.0;
        let js = median(col(|s| s.js_decoded)) / 1024.0;
        max_js = (max_js.0.max(js_sent), max_js.1.max(js));
        println!(
            "{:<20} {:>7.0} / {:>5.0} {:>7.0} / {:>5.0} {:>7.0} / {:>5.0} {:>13.1} {:>13.1} {:>9.0}",
            page,
            median(fcp.clone()),
            worst(&fcp),
            median(lcp.clone()),
            worst(&lcp),
            median(load_end.clone()),
            worst(&load_end),
            js_sent,
            js,
            median(col(|s| s.requests)),
        );
        all_fcp.extend(fcp);
        all_lcp.extend(lcp);
    }
    println!(
        "all pages: FCP worst {:.0} ms (target < 1500), LCP worst {:.0} ms (target < 2500); \
         most JavaScript on one page: {:.1} KB sent, {:.1} KB decoded (target < 300 KB)",
        worst(&all_fcp),
        worst(&all_lcp),
        max_js.0,
        max_js.1
    );
}
