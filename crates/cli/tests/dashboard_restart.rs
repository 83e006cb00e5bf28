//! The dashboard across a server restart: a real `tradecore serve` process
//! is stopped (SIGTERM) and started again on the same port and database,
//! while a real headless Chromium keeps a page open. The page shows
//! "Reconnecting…" meanwhile, comes back live by itself without a reload,
//! and then follows new fills again.

#[path = "../../server/tests/common/browser.rs"]
mod browser;

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::time::Instant;

use browser::Browser;
use common::Server;
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery staple";

/// The server on `dir` (its database under `./data`), listening on `addr`.
fn start(dir: &Path, addr: &str) -> Server {
    Server::spawn(
        common::serve(addr)
            .current_dir(dir)
            .env_remove("TRADECORE_DATABASE__URL")
            .env("TRADECORE_AUTH__ADMIN_PASSWORD", PASSWORD)
            .env("TRADECORE_PAPER__TICKS_PER_SECOND", "20"),
    )
}

async fn post(http: &reqwest::Client, csrf: &str, url: String, body: Value) -> Value {
    let response = http.post(url).header("X-CSRF-Token", csrf).json(&body).send().await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_reconnects_by_itself_after_a_restart() {
    let dir = std::env::temp_dir().join(format!("tradecore-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let addr = {
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().to_string()
    };
    let base = format!("http://{addr}");
    let server = start(&dir, &addr);
    let (http, csrf) = common::sign_in(&base, "admin", PASSWORD).await;
    let account = post(&http, &csrf, format!("{base}/api/v1/accounts"), json!({"name": "main"})).await["id"].clone();

    let browser = Browser::start("the_dashboard_reconnects_by_itself_after_a_restart").await;
    browser.goto(&format!("{base}/login")).await;
    browser.fill("#username", "admin").await;
    browser.fill("#password", PASSWORD).await;
    browser.click("#login-form button[type=submit]").await;
    browser.find("body[data-page=overview]").await;
    browser.goto(&format!("{base}/accounts/{account}")).await;
    browser.wait_text("#conn-state", "Live").await;
    browser.wait_text("#fills-table", "No fills yet").await;
    browser.mark_page().await;

    server.stop();
    // Told at once (the server closes its sockets as it stops), shown plainly.
    browser.wait_js("the reconnecting banner", "!document.querySelector('#conn-banner').hidden").await;
    browser.wait_text("#conn-state", "Reconnecting").await;
    browser.wait_text("#conn-banner", "Reconnecting").await;

    let restarted = Instant::now();
    let _server = start(&dir, &addr);
    let ready = restarted.elapsed();
    browser.wait_text("#conn-state", "Live").await;
    let reconnected = restarted.elapsed();
    browser.wait_js("the banner to go", "document.querySelector('#conn-banner').hidden").await;
    assert!(browser.not_reloaded().await, "the page reloaded instead of reconnecting");
    eprintln!("server ready after {ready:?}; page live again after {reconnected:?} (from the restart)");

    // Live again for real: a new fill shows without a reload.
    let (http, csrf) = common::sign_in(&base, "admin", PASSWORD).await;
    let order = json!({"client_order_id": "after-restart", "symbol": "BTC-USDT", "side": "buy", "type": "market", "quantity": "0.01"});
    post(&http, &csrf, format!("{base}/api/v1/accounts/{account}/orders"), order).await;
    browser.wait_js("the fill", "document.querySelectorAll('#fills-table tbody tr[data-fill]').length === 1").await;
    browser.wait_js("the position", "document.querySelector('#positions-table tr[data-symbol=\"BTC-USDT\"]')").await;
    assert!(browser.not_reloaded().await);
    drop(browser);
    let _ = std::fs::remove_dir_all(&dir);
}
