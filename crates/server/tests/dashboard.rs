//! The dashboard end to end: a real server on a real port, a real headless
//! Chromium (Debian's `chromium` and `chromium-driver`) clicking and typing
//! through the pages as a person would, and every check made on what the
//! page shows (and, where it matters, what the API then holds).
//!
//! Set `TRADECORE_SCREENSHOTS=DIR` to keep screenshots of the main pages
//! (`./scripts/screenshots` refreshes `docs/screenshots/` with them).

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::browser::Browser;
use common::{ADMIN_PASSWORD, Server, User, open_account};
use reqwest::StatusCode;
use serde_json::{Value, json};
use store::testing::TestDatabase;

/// A started server with a signed-in admin client for set-up through the API.
struct Setup {
    db: TestDatabase,
    server: Server,
    admin: User,
}

impl Setup {
    async fn new(label: &str) -> Self {
        Self::with(label, &[]).await
    }

    /// With more settings as `TRADECORE_*` variables.
    async fn with(label: &str, settings: &[(&str, &str)]) -> Self {
        let db = TestDatabase::create("sqlite", label).await;
        let server = common::start_with(&db, settings).await;
        let admin = User::sign_in(&server.base, "admin", ADMIN_PASSWORD).await;
        Self { db, server, admin }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base)
    }

    /// A trader who has chosen their password (so pages do not ask for a
    /// new one first), with a paper account: (API client, account id).
    async fn trader(&self, name: &str) -> (User, i64) {
        let first = format!("{name}'s first password");
        let (status, body) =
            self.admin.post("/api/v1/users", json!({"username": name, "password": first, "role": "trader"})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let http = reqwest::Client::builder().cookie_store(true).build().unwrap();
        let login = common::session(&http, &self.server.base, name, &first).await;
        let changed = http
            .post(self.url("/api/v1/auth/password"))
            .header("X-CSRF-Token", login["csrf_token"].as_str().unwrap())
            .json(&json!({"current_password": first, "new_password": password_of(name)}))
            .send()
            .await
            .unwrap();
        assert_eq!(changed.status(), StatusCode::NO_CONTENT);
        let user = User::sign_in(&self.server.base, name, &password_of(name)).await;
        let account = open_account(&user).await;
        (user, account)
    }

    async fn finish(self) {
        self.server.stop().await;
        self.db.remove().await;
    }
}

fn password_of(name: &str) -> String {
    format!("{name}'s long password")
}

/// Signs in through the sign-in page and waits for the first page.
async fn sign_in(browser: &Browser, setup: &Setup, username: &str, password: &str) {
    browser.goto(&setup.url("/login")).await;
    browser.fill("#username", username).await;
    browser.fill("#password", password).await;
    browser.click("#login-form button[type=submit]").await;
    browser.wait_js("sign-in to finish", "document.body.dataset.page && document.body.dataset.page !== 'login'").await;
}

/// Fails the test if the page logged a script error, a failed asset or a CSP violation.
async fn assert_clean(browser: &Browser, page: &str) {
    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "{page} logged errors: {errors:?}");
}

/// Saves a screenshot under `TRADECORE_SCREENSHOTS` when it is set.
async fn keep_screenshot(browser: &Browser, name: &str) {
    if let Ok(dir) = std::env::var("TRADECORE_SCREENSHOTS") {
        browser.screenshot(&PathBuf::from(dir).join(format!("{name}.png"))).await;
    }
}

async fn api_order(user: &User, account: i64, body: Value) -> Value {
    let (status, order) = user.post(&format!("/api/v1/accounts/{account}/orders"), body).await;
    assert!(status.is_success(), "{status} {order}");
    order
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_open_an_account_and_sign_out() {
    let setup = Setup::new("e2e-signin").await;
    let browser = Browser::start("sign_in_open_an_account_and_sign_out").await;

    // Not signed in: sent to the sign-in page, which remembers where to go.
    browser.goto(&setup.url("/orders")).await;
    browser.find("#login-form").await;
    assert!(browser.url().await.contains("/login?next=/orders"), "{}", browser.url().await);
    // A wrong password is refused in plain words.
    browser.fill("#username", "admin").await;
    browser.fill("#password", "not the password").await;
    browser.click("#login-form button[type=submit]").await;
    browser.wait_text("#login-error", "Wrong user name or password").await;
    browser.fill("#password", ADMIN_PASSWORD).await;
    browser.click("#login-form button[type=submit]").await;
    browser.find("body[data-page=orders]").await;

    browser.goto(&setup.url("/")).await;
    browser.wait_text("#conn-state", "Live").await;
    // No accounts yet: the empty state says what to do.
    browser.wait_text("#account-cards", "Open a paper account").await;
    browser.click("#open-account").await;
    // A name is required: the form says so at the field.
    browser.click("#open-account-dialog button[type=submit]").await;
    browser.wait_text("#open-account-dialog .error", "Give the account a name").await;
    browser.fill("#account-name", "main").await;
    browser.click("#open-account-dialog button[type=submit]").await;
    browser.find("body[data-page=account]").await;
    browser.wait_text("h1", "main").await;
    browser.wait_text("#kpis", "100,000.00").await;
    assert_clean(&browser, "account").await;

    browser.click(".user-menu summary").await;
    browser.click("#sign-out").await;
    browser.find("#login-form").await;
    // Signed out for real: pages send us back to sign in.
    browser.goto(&setup.url("/")).await;
    browser.find("#login-form").await;
    let (_, accounts) = setup.admin.get("/api/v1/accounts").await;
    assert_eq!(accounts.as_array().map(Vec::len), Some(1), "{accounts}");
    assert_clean(&browser, "sign-in").await;
    drop(browser);
    setup.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_market_order_fills_and_the_pages_update_live() {
    let setup = Setup::new("e2e-market").await;
    let (trader, account) = setup.trader("tina").await;
    let browser = Browser::start("a_market_order_fills_and_the_pages_update_live").await;
    sign_in(&browser, &setup, "tina", &password_of("tina")).await;

    browser.goto(&setup.url(&format!("/markets/BTC-USDT?account={account}"))).await;
    browser.wait_text("#conn-state", "Live").await;
    // A quote has arrived and the ticket can price the order.
    browser.wait_js("a quote", "document.querySelector('#q-ask').textContent.match(/\\d/)").await;
    browser.mark_page().await;
    let free_before = browser.text("#ticket-summary").await;
    // Too small for the lot size: said at the field, nothing sent.
    browser.fill("#order-quantity", "0.000001").await;
    browser.click("#ticket-submit").await;
    browser.wait_text("#ticket-form .error", "Use steps of 0.00001").await;
    browser.fill("#order-quantity", "0.01").await;
    browser.click("#ticket-submit").await;
    browser.confirm("Buy 0.01000 BTC-USDT at market").await;
    browser.wait_text("#ticket-result", "placed").await;
    // The fill, the position and the cash arrive without a reload.
    browser
        .wait_js(
            "the fill in the table",
            "document.querySelectorAll('#instrument-fills tbody tr[data-fill]').length === 1",
        )
        .await;
    browser.wait_text("#ticket-summary", "0.01000 →").await;
    browser.wait_for("free cash to drop", || async { browser.text("#ticket-summary").await != free_before }).await;
    assert!(browser.not_reloaded().await, "the page was reloaded");
    keep_screenshot(&browser, "instrument").await;

    // The account page follows a fill made elsewhere (here: through the API).
    browser.goto(&setup.url(&format!("/accounts/{account}"))).await;
    browser.wait_js("the position", "document.querySelector('#positions-table tr[data-symbol=\"BTC-USDT\"]')").await;
    browser.wait_text("#conn-state", "Live").await;
    browser.mark_page().await;
    let cash_before = browser.text("#kpis section[data-currency=USDT] .kpi:nth-child(2) dd").await;
    api_order(
        &trader,
        account,
        json!({"client_order_id": "api-1", "symbol": "ETH-USDT", "side": "buy", "type": "market", "quantity": "0.1"}),
    )
    .await;
    browser
        .wait_js("the ETH position", "document.querySelector('#positions-table tr[data-symbol=\"ETH-USDT\"]')")
        .await;
    browser.wait_js("two fills", "document.querySelectorAll('#fills-table tbody tr[data-fill]').length === 2").await;
    browser
        .wait_for("the USDT cash to change", || async {
            browser.text("#kpis section[data-currency=USDT] .kpi:nth-child(2) dd").await != cash_before
        })
        .await;
    assert!(browser.not_reloaded().await, "the page was reloaded");
    keep_screenshot(&browser, "account").await;
    browser.goto(&setup.url("/")).await;
    browser.wait_text("#account-cards", "2 open positions").await;
    keep_screenshot(&browser, "overview").await;
    assert_clean(&browser, "trading pages").await;
    drop(browser);
    setup.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_order_is_cancelled() {
    let setup = Setup::new("e2e-cancel").await;
    let (trader, account) = setup.trader("carl").await;
    let browser = Browser::start("a_limit_order_is_cancelled").await;
    sign_in(&browser, &setup, "carl", &password_of("carl")).await;
    browser.goto(&setup.url(&format!("/markets/SPY?account={account}"))).await;
    browser.wait_js("a quote", "document.querySelector('#q-bid').textContent.match(/\\d/)").await;
    browser.select("#order-type", "limit").await;
    browser.fill("#order-quantity", "2").await;
    // A price off the tick is refused before sending.
    browser.fill("#order-price", "10.001").await;
    browser.click("#ticket-submit").await;
    browser.wait_text("#ticket-form .error", "steps of 0.01").await;
    browser.fill("#order-price", "10").await;
    browser.click("#ticket-submit").await;
    browser.confirm("Buy 2 SPY limit 10.00").await;
    browser
        .wait_js("the open order", "document.querySelectorAll('#instrument-orders tbody tr[data-order]').length === 1")
        .await;
    browser.wait_text("#instrument-orders", "accepted").await;

    browser.goto(&setup.url(&format!("/orders?account={account}"))).await;
    browser
        .wait_js("the open order", "document.querySelectorAll('#open-table tbody tr[data-order]').length === 1")
        .await;
    keep_screenshot(&browser, "orders").await;
    browser.click("#open-table button[data-cancel]").await;
    browser.confirm("Cancel this order?").await;
    browser.wait_text("#open-table", "No open orders").await;
    browser.click("#tab-history").await;
    browser.wait_text("#history-table", "cancelled").await;
    // Filtering the history: only filled orders, none.
    browser.select("#filter-status", "filled").await;
    browser.wait_text("#history-table", "No orders match").await;
    let (_, orders) = trader.get(&format!("/api/v1/accounts/{account}/orders")).await;
    assert_eq!(orders["items"][0]["status"], "cancelled", "{orders}");
    assert_clean(&browser, "orders").await;
    drop(browser);
    setup.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_is_created_started_and_stopped() {
    let setup = Setup::new("e2e-bot").await;
    let (trader, _account) = setup.trader("bea").await;
    let browser = Browser::start("a_bot_is_created_started_and_stopped").await;
    sign_in(&browser, &setup, "bea", &password_of("bea")).await;
    browser.goto(&setup.url("/bots")).await;
    browser.wait_text("#bots-table", "No bots yet").await;
    browser.click("#new-bot").await;
    browser.fill("#bot-name", "trend").await;
    browser.select("#bot-symbol", "ETH-USDT").await;
    browser.select("#bot-strategy", "sma-cross").await;
    // The form is built from the strategy's parameters, with their bounds.
    browser.fill("#param-fast", "0").await;
    browser.click("#bot-form button[type=submit]").await;
    browser.wait_text("#bot-form .error", "fast must be from 1 to").await;
    browser.fill("#param-fast", "2").await;
    browser.fill("#param-slow", "5").await;
    browser.fill("#bot-warmup", "0").await;
    browser.click("#bot-form button[type=submit]").await;
    browser.find("body[data-page=bot]").await;
    browser.wait_text("#bot-status", "running").await;
    browser.wait_text("#bot-config", "fast=2").await;
    browser.wait_text("#bot-config", "slow=5").await;
    keep_screenshot(&browser, "bot").await;
    browser.click("#bot-stop").await;
    browser.confirm("Stop trend?").await;
    browser.wait_text("#bot-status", "stopped").await;
    let (_, bots) = trader.get("/api/v1/bots").await;
    assert_eq!((bots[0]["name"].as_str(), bots[0]["status"].as_str()), (Some("trend"), Some("stopped")), "{bots}");
    // And started again from the list.
    browser.goto(&setup.url("/bots")).await;
    browser.click("#bots-table button[data-start]").await;
    browser.wait_text("#bots-table .status", "running").await;
    keep_screenshot(&browser, "bots").await;
    let (_, bots) = trader.get("/api/v1/bots").await;
    assert_eq!(bots[0]["status"], "running", "{bots}");
    assert_clean(&browser, "bots").await;
    drop(browser);
    setup.finish().await;
}

/// Bars drifting up and down, so crossing strategies trade.
fn wave_csv(bars: usize) -> String {
    let mut csv = String::from("timestamp,open,high,low,close,volume\n");
    for i in 0..bars {
        let step = i as f64;
        let price = 100.0 + 10.0 * (step / 12.0).sin() + step * 0.01;
        let ts = 1_700_000_000 + i as i64 * 60;
        csv.push_str(&format!("{ts},{price:.2},{:.2},{:.2},{:.2},10\n", price + 0.5, price - 0.5, price + 0.1));
    }
    csv
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backtest_runs_and_its_report_and_a_comparison_open() {
    let setup = Setup::new("e2e-backtest").await;
    let (trader, _account) = setup.trader("bo").await;
    let dir = std::env::temp_dir().join(format!("tc-e2e-bt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("waves.csv");
    std::fs::write(&csv, wave_csv(2_000)).unwrap();
    let browser = Browser::start("a_backtest_runs_and_its_report_and_a_comparison_open").await;
    sign_in(&browser, &setup, "bo", &password_of("bo")).await;
    browser.goto(&setup.url("/backtests")).await;
    browser.wait_text("#runs-table", "No backtests yet").await;
    browser.select("#bt-strategy", "sma-cross").await;
    browser.fill("#param-fast", "5").await;
    browser.fill("#param-slow", "20").await;
    browser.click("label[for=src-csv]").await;
    browser.upload("#bt-csv", &csv).await;
    browser.fill("#bt-lot", "0.01").await;
    browser.click("#backtest-form button[type=submit]").await;
    browser.find("body[data-page=backtest]").await;
    browser.wait_text("#bt-status", "done").await;
    browser.wait_text("#bt-metrics", "Sharpe").await;
    browser.wait_js("the equity chart", "document.querySelector('#bt-equity canvas')").await;
    browser.wait_js("the drawdown chart", "document.querySelector('#bt-drawdown canvas')").await;
    browser.wait_js("trades", "document.querySelectorAll('#bt-trades tbody tr').length > 1").await;
    keep_screenshot(&browser, "backtest").await;
    let first = browser.url().await.rsplit('/').next().unwrap().to_string();

    // A second run with other parameters, then both side by side.
    let (status, second) = trader
        .post(
            "/api/v1/backtests",
            json!({"strategy": "sma-cross", "params": {"fast": 10, "slow": 40}, "data": {"csv": wave_csv(2_000)},
                   "settings": {"lot_size": "0.01"}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{second}");
    let second = second["id"].as_i64().unwrap();
    browser.goto(&setup.url("/backtests")).await;
    browser.wait_js("both runs done", "document.querySelectorAll('#runs-table .badge-ok').length === 2").await;
    browser.click(&format!("#runs-table tr[data-run=\"{first}\"] input")).await;
    browser.click(&format!("#runs-table tr[data-run=\"{second}\"] input")).await;
    browser.click("#compare-selected").await;
    browser.find("body[data-page=compare]").await;
    browser.wait_text("#cmp-table", "fast=5").await;
    browser.wait_text("#cmp-table", "fast=10, slow=40").await;
    browser.wait_js("both curves", "document.querySelector('#cmp-equity canvas')").await;
    keep_screenshot(&browser, "compare").await;
    // A bad CSV is refused naming its line, and no run is added.
    std::fs::write(&csv, "timestamp,open,high,low,close,volume\n2024-01-01T00:00:00Z,1,2,0.5,1.5,10\nnot,a,bar\n")
        .unwrap();
    browser.goto(&setup.url("/backtests")).await;
    browser.click("label[for=src-csv]").await;
    browser.upload("#bt-csv", &csv).await;
    browser.click("#backtest-form button[type=submit]").await;
    browser.wait_text("#backtest-form .error", "line 3").await;
    let (_, runs) = trader.get("/api/v1/backtests").await;
    assert_eq!(runs.as_array().map(Vec::len), Some(2), "{runs}");
    assert_clean(&browser, "backtests").await;
    drop(browser);
    let _ = std::fs::remove_dir_all(&dir);
    setup.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_halt_shows_everywhere_and_refuses_orders() {
    let setup = Setup::new("e2e-halt").await;
    let (trader, account) = setup.trader("hal").await;
    let trader_browser = Browser::start("an_admin_halt_shows_everywhere__trader").await;
    sign_in(&trader_browser, &setup, "hal", &password_of("hal")).await;
    trader_browser.goto(&setup.url(&format!("/markets/AAPL?account={account}"))).await;
    trader_browser.wait_text("#conn-state", "Live").await;
    trader_browser.wait_js("no banner", "document.querySelector('#halt-banner').hidden").await;
    trader_browser.mark_page().await;

    let admin_browser = Browser::start("an_admin_halt_shows_everywhere__admin").await;
    sign_in(&admin_browser, &setup, "admin", ADMIN_PASSWORD).await;
    admin_browser.goto(&setup.url("/admin#switches")).await;
    admin_browser.wait_text("#admin-accounts", "hal").await;
    admin_browser.click("button[data-global=halted]").await;
    admin_browser.confirm("Halt all trading?").await;
    admin_browser.wait_text("#global-state", "halted").await;
    admin_browser.wait_js("the admin's own banner", "!document.querySelector('#halt-banner').hidden").await;
    keep_screenshot(&admin_browser, "admin-switches").await;

    // The trader's page shows it at once, without a reload, and will not send.
    trader_browser.wait_text("#halt-banner", "Trading is halted for every account").await;
    assert!(trader_browser.not_reloaded().await);
    trader_browser.fill("#order-quantity", "1").await;
    trader_browser.wait_text("#ticket-state", "halted").await;
    let disabled = trader_browser.eval("return document.querySelector('#ticket-submit').disabled;", json!([])).await;
    assert_eq!(disabled, true, "the ticket must not send while halted");
    keep_screenshot(&trader_browser, "halted").await;
    // Every page carries the banner from its first paint.
    trader_browser.goto(&setup.url("/orders")).await;
    trader_browser.wait_text("#halt-banner", "halted").await;
    let visible = trader_browser.eval("return !document.querySelector('#halt-banner').hidden;", json!([])).await;
    assert_eq!(visible, true);
    // The server refuses too, whatever the page does.
    let (status, refused) = trader
        .post(
            &format!("/api/v1/accounts/{account}/orders"),
            json!({"client_order_id": "h1", "symbol": "AAPL", "side": "buy", "type": "market", "quantity": "1"}),
        )
        .await;
    assert_eq!((status, refused["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("kill_switch_global")));

    // The admin lifts it; the banner goes away live.
    admin_browser.click("button[data-global=active]").await;
    admin_browser.confirm("Resume trading?").await;
    trader_browser.wait_js("the banner to go", "document.querySelector('#halt-banner').hidden").await;
    // An account's own switch shows for its owner.
    admin_browser.select(&format!("#admin-accounts tr[data-account=\"{account}\"] select"), "reducing").await;
    admin_browser.confirm("close-only").await;
    trader_browser.wait_text("#halt-banner", "close-only").await;
    assert_clean(&trader_browser, "trader pages").await;
    assert_clean(&admin_browser, "admin page").await;
    drop((trader_browser, admin_browser));
    setup.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invited_viewer_sets_a_password_and_cannot_place_orders() {
    let setup = Setup::new("e2e-viewer").await;
    let admin_browser = Browser::start("an_invited_viewer__admin").await;
    sign_in(&admin_browser, &setup, "admin", ADMIN_PASSWORD).await;
    admin_browser.goto(&setup.url("/admin#users")).await;
    admin_browser.fill("#invite-name", "vera").await;
    admin_browser.select("#invite-role", "viewer").await;
    admin_browser.click("#invite-form button[type=submit]").await;
    admin_browser.find("#invite-password").await;
    let one_time = admin_browser.text("#invite-password").await;
    assert_eq!(one_time.len(), 32, "{one_time}");
    admin_browser.wait_text("#users-table", "vera").await;
    keep_screenshot(&admin_browser, "admin-users").await;
    // Roles and disabling, from the list (each asks first).
    let (_, sam) = setup
        .admin
        .post("/api/v1/users", json!({"username": "sam", "password": "sam's long password", "role": "viewer"}))
        .await;
    // (A fresh load: the page is already at this address, so only its hash would change.)
    admin_browser.goto(&setup.url("/")).await;
    admin_browser.goto(&setup.url("/admin#users")).await;
    admin_browser.select("#users-table tr[data-user=sam] select", "trader").await;
    admin_browser.confirm("Change this user?").await;
    admin_browser.click("#users-table tr[data-user=sam] button[data-toggle-user]").await;
    admin_browser.confirm("Change this user?").await;
    admin_browser.wait_text("#users-table tr[data-user=sam]", "disabled").await;
    let (_, users) = setup.admin.get("/api/v1/users").await;
    let row = users.as_array().unwrap().iter().find(|u| u["id"] == sam["id"]).unwrap().clone();
    assert_eq!((row["role"].as_str(), row["disabled"].as_bool()), (Some("trader"), Some(true)), "{row}");
    // The audit log shows it.
    admin_browser.click("#tab-audit").await;
    admin_browser.wait_text("#audit-table", "user.create").await;
    admin_browser.click("#tab-health").await;
    admin_browser.wait_text("#health", "reachable").await;
    admin_browser.wait_text("#feed-table", "live").await;
    keep_screenshot(&admin_browser, "admin-health").await;

    let viewer = Browser::start("an_invited_viewer__viewer").await;
    sign_in(&viewer, &setup, "vera", &one_time).await;
    // The one-time password must be replaced before anything else.
    viewer.find("#must-change").await;
    viewer.goto(&setup.url("/markets")).await;
    viewer.find("#must-change").await;
    viewer.fill("#current-password", &one_time).await;
    viewer.fill("#new-password", "vera's own long password").await;
    viewer.fill("#repeat-password", "vera's own long password").await;
    viewer.click("#password-form button[type=submit]").await;
    viewer.find("body[data-page=overview]").await;
    // Trading controls are there but switched off, with the reason.
    viewer.wait_text("#account-cards", "can view but not trade").await;
    let disabled = viewer.eval("return document.querySelector('#open-account').disabled;", json!([])).await;
    assert_eq!(disabled, true);
    viewer.goto(&setup.url("/markets/AAPL")).await;
    viewer.wait_text("#ticket-state", "can view but not trade").await;
    let disabled = viewer.eval("return document.querySelector('#ticket-submit').disabled;", json!([])).await;
    assert_eq!(disabled, true);
    // The admin nav entry is not there for a viewer, and the page refuses.
    assert!(!viewer.text("#site-nav").await.contains("Admin"));
    viewer.goto(&setup.url("/admin")).await;
    viewer.wait_text("h1", "Admins only").await;
    // Whatever the page does, the server refuses a viewer's order.
    let vera = User::sign_in(&setup.server.base, "vera", "vera's own long password").await;
    let account = open_account(&setup.admin).await;
    let (status, _) = vera
        .post(
            &format!("/api/v1/accounts/{account}/orders"),
            json!({"client_order_id": "v1", "symbol": "AAPL", "side": "buy", "type": "market", "quantity": "1"}),
        )
        .await;
    assert!(status == StatusCode::FORBIDDEN || status == StatusCode::NOT_FOUND, "{status}");
    drop((viewer, admin_browser));
    setup.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_runs_a_job_and_retries_a_dead_letter() {
    // The backup directory cannot be made while a file is in its way.
    let dir = std::env::temp_dir().join(format!("tc-e2e-jobs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let blocker = dir.join("blocker");
    std::fs::write(&blocker, "in the way").unwrap();
    let target = format!("file://{}/backups", blocker.display());
    let key = "8a".repeat(32);
    let setup = Setup::with(
        "e2e_jobs",
        &[
            ("TRADECORE_BACKUP__TARGET", &target),
            ("TRADECORE_BACKUP__KEY", &key),
            ("TRADECORE_JOBS__MAX_ATTEMPTS", "1"),
            ("TRADECORE_JOBS__BACKUP", ""),
            ("TRADECORE_JOBS__BACKUP_VERIFY", ""),
        ],
    )
    .await;
    let browser = Browser::start("an_admin_runs_a_job").await;
    sign_in(&browser, &setup, "admin", ADMIN_PASSWORD).await;
    browser.goto(&setup.url("/admin#jobs")).await;
    browser.wait_text("#schedules-table", "Reconcile with venues").await;
    browser.wait_text("#backup-target", "Not a directory").await;

    // Run now: the backup fails, and with one attempt it is a dead letter.
    browser.click("#schedules-table button[data-run=reconcile]").await;
    browser.wait_text("#toasts", "queued as job").await;
    let (_, page) = setup.admin.get("/api/v1/admin/jobs?kind=reconcile").await;
    assert!(!page["items"].as_array().unwrap().is_empty(), "{page}");
    let (status, body) = setup.admin.post("/api/v1/admin/jobs", json!({"kind": "backup"})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["id"].as_i64().unwrap();
    browser.select("#job-status", "dead").await;
    browser.wait_text(&format!("#jobs-table tr[data-job=\"{id}\"]"), "Not a directory").await;
    keep_screenshot(&browser, "admin-jobs").await;

    // Fixed, and retried from the page: it runs, and the backup is listed.
    std::fs::remove_file(&blocker).unwrap();
    browser.click(&format!("#jobs-table button[data-retry=\"{id}\"]")).await;
    browser.wait_text("#toasts", "queued again").await;
    browser.select("#job-status", "").await;
    browser.wait_text(&format!("#jobs-table tr[data-job=\"{id}\"]"), "done").await;
    browser.wait_text("#backups-table", "tradecore-").await;
    browser.wait_text("#backups-table", "signed").await;
    browser.wait_text("#backup-target", "Target: file://").await;
    let (_, job) = setup.admin.get("/api/v1/admin/jobs?kind=backup&status=done").await;
    assert_eq!(job["items"][0]["id"], id);
    assert_clean(&browser, "admin jobs").await;
    drop(browser);
    setup.finish().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_is_clean_labelled_themed_and_fits_a_phone() {
    let setup = Setup::new("e2e-pages").await;
    let account = open_account(&setup.admin).await;
    api_order(&setup.admin, account, json!({"client_order_id": "p1", "symbol": "SPY", "side": "buy", "type": "limit", "price": "10", "quantity": "1"})).await;
    let (_, bot) = setup
        .admin
        .post(
            "/api/v1/bots",
            json!({"name": "b", "account_id": account, "symbol": "SPY", "strategy": "dca", "start": false}),
        )
        .await;
    let (_, run) =
        setup.admin.post("/api/v1/backtests", json!({"strategy": "sma-cross", "data": {"csv": wave_csv(300)}})).await;
    let pages = [
        "/".to_string(),
        format!("/accounts/{account}"),
        "/markets".into(),
        "/markets/SPY".into(),
        "/orders".into(),
        "/bots".into(),
        format!("/bots/{}", bot["id"]),
        "/backtests".into(),
        format!("/backtests/{}", run["id"]),
        "/backtests/compare".into(),
        "/settings".into(),
        "/admin".into(),
    ];
    let browser = Browser::start("every_page_is_clean_labelled_themed_and_fits_a_phone").await;
    sign_in(&browser, &setup, "admin", ADMIN_PASSWORD).await;
    // Every control has a name a screen reader can read, and headings exist.
    let unlabelled = "return [...document.querySelectorAll('input, select, textarea, button')] \
        .filter((e) => e.getClientRects().length && e.type !== 'hidden') \
        .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.getAttribute('aria-labelledby') \
                       && !(e.tagName === 'BUTTON' && e.textContent.trim())) \
        .map((e) => e.outerHTML.slice(0, 120));";
    for page in &pages {
        browser.goto(&setup.url(page)).await;
        browser.wait_text("#conn-state", "Live").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let missing = browser.eval(unlabelled, json!([])).await;
        assert_eq!(missing, json!([]), "{page}: controls without a label");
        let h1 = browser.eval("return document.querySelectorAll('h1').length;", json!([])).await;
        assert_eq!(h1, 1, "{page}: one h1");
        assert_clean(&browser, page).await;
    }
    keep_screenshot(&browser, "admin").await;
    // Unknown pages get a page, API paths a problem.
    browser.goto(&setup.url("/no/such/page")).await;
    browser.wait_text("h1", "Page not found").await;

    // Text keeps a contrast of at least 4.5:1 (WCAG AA) on its backgrounds, in both themes.
    let contrast = r"
        const probe = document.createElement('span');
        document.body.append(probe);
        const rgb = (name) => { probe.style.color = `var(${name})`; return getComputedStyle(probe).color.match(/[\d.]+/g).map(Number); };
        const lum = (c) => { const [r, g, b] = c.map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; }); return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
        const ratio = (a, b) => { const [x, y] = [lum(rgb(a)), lum(rgb(b))].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
        const pairs = [['--text', '--bg'], ['--text', '--surface'], ['--muted', '--surface'], ['--muted', '--surface-2'], ['--muted', '--bg'],
          ['--accent', '--surface'], ['--gain', '--surface'], ['--loss', '--surface'], ['--gain', '--surface-2'], ['--loss', '--surface-2'],
          ['--danger-text', '--danger-bg'], ['--warn-text', '--warn-bg'], ['--accent-text', '--accent'], ['--on-signal', '--gain'], ['--on-signal', '--loss']];
        const failing = [];
        const before = document.documentElement.dataset.theme;
        for (const theme of ['light', 'dark']) {
          document.documentElement.dataset.theme = theme;
          for (const [fg, bg] of pairs) { const r = ratio(fg, bg); if (r < 4.5) failing.push(`${theme}: ${fg} on ${bg} = ${r.toFixed(2)}`); }
        }
        document.documentElement.dataset.theme = before;
        probe.remove();
        return failing;";
    assert_eq!(browser.eval(contrast, json!([])).await, json!([]), "colours below 4.5:1");

    // Dark theme: switched in the header, kept for the next page from its first paint.
    browser.goto(&setup.url(&format!("/accounts/{account}"))).await;
    browser.click("#theme-toggle").await;
    let theme = browser.eval("return document.documentElement.dataset.theme;", json!([])).await;
    browser.goto(&setup.url("/markets/SPY")).await;
    let again = browser.eval("return document.documentElement.dataset.theme;", json!([])).await;
    assert_eq!(theme, again, "the theme survives a page change");
    let background = browser.eval("return getComputedStyle(document.body).backgroundColor;", json!([])).await;
    let expected = if theme == "dark" { "rgb(15, 18, 22)" } else { "rgb(246, 247, 249)" };
    assert_eq!(background, expected, "{theme}");
    browser.wait_js("the chart", "document.querySelector('#price-chart canvas')").await;
    keep_screenshot(&browser, "instrument-dark").await;

    // A phone: nothing wider than the screen, the menu behind a button.
    browser.resize(390, 844).await;
    for page in ["/", "/markets/SPY", "/orders", "/admin"] {
        browser.goto(&setup.url(page)).await;
        browser.wait_text("#conn-state", "Live").await;
        let overflow = browser
            .eval("return document.documentElement.scrollWidth - document.documentElement.clientWidth;", json!([]))
            .await;
        assert_eq!(overflow, 0, "{page} scrolls sideways on a phone");
    }
    let nav_hidden =
        browser.eval("return getComputedStyle(document.querySelector('#site-nav')).display;", json!([])).await;
    assert_eq!(nav_hidden, "none");
    browser.click("#nav-toggle").await;
    browser.find("#site-nav a[href='/orders']").await;
    keep_screenshot(&browser, "phone").await;

    // Keyboard: the skip link is the first stop and lands on the content.
    browser.resize(1366, 900).await;
    browser.goto(&setup.url("/")).await;
    browser.press("\u{E004}").await;
    let focused = browser.eval("return document.activeElement.className;", json!([])).await;
    assert_eq!(focused, "skip-link");
    drop(browser);
    setup.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_manage_tokens_and_other_sessions() {
    let setup = Setup::new("e2e-settings").await;
    let (_trader, _account) = setup.trader("sam").await;
    // Another session of the same user, elsewhere.
    let elsewhere = reqwest::Client::builder().cookie_store(true).build().unwrap();
    common::session(&elsewhere, &setup.server.base, "sam", &password_of("sam")).await;
    let browser = Browser::start("settings_manage_tokens_and_other_sessions").await;
    sign_in(&browser, &setup, "sam", &password_of("sam")).await;
    browser.goto(&setup.url("/settings")).await;
    browser
        .wait_js(
            "the other sessions",
            "document.querySelectorAll('#sessions-table tbody tr[data-session]').length >= 2",
        )
        .await;

    // A token: named, scoped, shown once with a copy button, then listed
    // (newest first, above the one the test set-up made).
    browser.wait_text("#tokens-table", "tests").await;
    let admin_scope =
        browser.eval("return document.querySelector('input[value=admin]').closest('label').hidden;", json!([])).await;
    assert_eq!(admin_scope, true, "a trader cannot ask for the admin scope");
    browser.click("#token-form button[type=submit]").await;
    browser.wait_text("#token-form .error", "Name the token").await;
    browser.fill("#token-name", "rebalancer").await;
    browser.click("#token-form button[type=submit]").await;
    browser.find("#token-value").await;
    let token = browser.text("#token-value").await;
    assert!(token.starts_with("tc_"), "{token}");
    browser.click("#copy-token").await;
    browser.wait_text("#copy-token", "Copied").await;
    browser.wait_text("#tokens-table", "rebalancer").await;
    // The token works, until it is revoked from the page.
    let api = reqwest::Client::new();
    let me = api.get(setup.url("/api/v1/auth/me")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    keep_screenshot(&browser, "settings").await;
    browser.click("#tokens-table tbody tr:first-child button").await;
    browser.confirm("Revoke “rebalancer”?").await;
    browser.wait_text("#tokens-table tbody tr:first-child", "revoked").await;
    let me = api.get(setup.url("/api/v1/auth/me")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);

    // Signing the other sessions out ends them, and only them.
    browser.click("#end-others").await;
    browser.confirm("Sign out everywhere else?").await;
    browser
        .wait_js("one session left", "document.querySelectorAll('#sessions-table tbody tr[data-session]').length === 1")
        .await;
    let other = elsewhere.get(setup.url("/api/v1/auth/me")).send().await.unwrap();
    assert_eq!(other.status(), StatusCode::UNAUTHORIZED, "the other session is over");
    browser.goto(&setup.url("/")).await;
    browser.find("body[data-page=overview]").await;
    assert_clean(&browser, "settings").await;
    drop(browser);
    setup.finish().await;
}

/// A `trading.credentials_key` for the venue-account tests (64 hex digits).
const CREDENTIALS_KEY: &str = "8f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8";
const BINANCE_API_KEY: &str = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";
const BINANCE_SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";
const TASTY_CLIENT_SECRET: &str = "cs-9d8c7b6a5f4e-very-secret-client-secret";
const TASTY_REFRESH_TOKEN: &str = "rt-4f0c2e9a1b7d-very-secret-refresh-token";

/// Whether `text` is anywhere in the page: its HTML or a field's value.
async fn page_holds(browser: &Browser, text: &str) -> bool {
    let script = "return document.documentElement.outerHTML.includes(arguments[0]) \
        || [...document.querySelectorAll('input, textarea')].some((e) => e.value.includes(arguments[0]));";
    browser.eval(script, json!([text])).await == true
}

/// Whether the first element matching `css` is displayed.
async fn shown(browser: &Browser, css: &str) -> bool {
    browser.eval("return (document.querySelector(arguments[0])?.getClientRects().length ?? 0) > 0;", json!([css])).await
        == true
}

async fn disabled(browser: &Browser, css: &str) -> bool {
    browser.eval("return document.querySelector(arguments[0]).disabled;", json!([css])).await == true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_link_and_unlink_venue_accounts() {
    let setup = Setup::with("e2e-venues", &[("TRADECORE_TRADING__CREDENTIALS_KEY", CREDENTIALS_KEY)]).await;
    let (trader, _account) = setup.trader("val").await;
    let browser = Browser::start("settings_link_and_unlink_venue_accounts").await;
    sign_in(&browser, &setup, "val", &password_of("val")).await;
    browser.goto(&setup.url("/settings")).await;
    browser.wait_text("#venues-table", "No venue accounts linked yet").await;

    // Binance testnet with an HMAC key, the defaults: listed with its hint,
    // and its secrets gone from the page.
    let secret_type = browser.eval("return document.querySelector('#venue-api-secret').type;", json!([])).await;
    assert_eq!(secret_type, "password");
    browser.fill("#venue-label", "main").await;
    browser.fill("#venue-api-key", BINANCE_API_KEY).await;
    browser.fill("#venue-api-secret", BINANCE_SECRET).await;
    assert!(!shown(&browser, "#venue-production").await, "no production warning on testnet");
    browser.click("#venue-submit").await;
    browser.wait_text("#venues-table tbody tr[data-credential]", "…Eh8A").await;
    let row = browser.text("#venues-table tbody tr[data-credential]").await;
    for expected in ["Binance", "main", "testnet", "readable"] {
        assert!(row.contains(expected), "{expected} in {row}");
    }
    for secret in [BINANCE_SECRET, BINANCE_API_KEY] {
        assert!(!page_holds(&browser, secret).await, "a secret stayed in the page");
    }
    let (_, listed) = trader.get("/api/v1/venue-credentials").await;
    assert_eq!((listed[0]["label"].as_str(), listed[0]["environment"].as_str()), (Some("main"), Some("testnet")));

    // The same label again: the server's refusal is shown at the label.
    browser.fill("#venue-label", "main").await;
    browser.fill("#venue-api-key", "abc123").await;
    browser.fill("#venue-api-secret", "x").await;
    browser.click("#venue-submit").await;
    browser.wait_text("#venue-form .error[data-for=label]", "already have a binance credential labelled").await;

    // TastyTrade production: a warning, and no sending until it is acknowledged.
    browser.select("#venue-venue", "tastytrade").await;
    browser.find("#venue-client-id").await;
    assert!(!shown(&browser, "#venue-production").await);
    browser.select("#venue-environment", "production").await;
    browser.wait_text("#venue-production", "real money").await;
    assert!(disabled(&browser, "#venue-submit").await, "production needs the box ticked first");
    browser.fill("#venue-label", "ira").await;
    browser.fill("#venue-client-id", "client-1234-abcd").await;
    browser.fill("#venue-client-secret", TASTY_CLIENT_SECRET).await;
    browser.click("#venue-production-ok").await;
    assert!(!disabled(&browser, "#venue-submit").await, "ticked: the button works");
    // No refresh token: said at its field, nothing stored.
    browser.click("#venue-submit").await;
    browser.wait_text("#venue-form .error[data-for=refresh_token]", "The refresh token is required").await;
    let focused = browser.eval("return document.activeElement.id;", json!([])).await;
    assert_eq!(focused, "venue-refresh-token");
    let (_, listed) = trader.get("/api/v1/venue-credentials").await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    browser.fill("#venue-refresh-token", TASTY_REFRESH_TOKEN).await;
    browser.click("#venue-submit").await;
    browser.wait_text("#venues-table tr.row-live .badge-live", "LIVE").await;
    browser.wait_text("#venues-table tr.row-live", "ira").await;
    for secret in [TASTY_CLIENT_SECRET, TASTY_REFRESH_TOKEN, "client-1234-abcd"] {
        assert!(!page_holds(&browser, secret).await, "a secret stayed in the page");
    }
    // The form is back to its safe defaults.
    assert_eq!(browser.eval("return document.querySelector('#venue-environment').value;", json!([])).await, "testnet");
    assert!(!shown(&browser, "#venue-production").await);
    browser.eval("document.querySelector('#venues-title').scrollIntoView();", json!([])).await;
    keep_screenshot(&browser, "settings-venues").await;

    // Unlinking asks first; cancelling keeps it.
    let unlink_main = "#venues-table tbody tr:first-child button";
    browser.click(unlink_main).await;
    browser.wait_text("dialog[open] h2", "Unlink “main”?").await;
    browser.click("dialog[open] .dialog-actions button[type=button]").await;
    browser.wait_js("the dialog to close", "!document.querySelector('dialog[open]')").await;
    browser.click(unlink_main).await;
    browser.confirm("Unlink “main”?").await;
    browser
        .wait_js(
            "one credential left",
            "document.querySelectorAll('#venues-table tbody tr[data-credential]').length === 1",
        )
        .await;
    let (_, listed) = trader.get("/api/v1/venue-credentials").await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["label"], "ira");

    // At a phone's width the section fits.
    browser.resize(390, 844).await;
    let overflow = browser
        .eval("return document.documentElement.scrollWidth - document.documentElement.clientWidth;", json!([]))
        .await;
    assert_eq!(overflow, 0, "settings scrolls sideways on a phone");
    browser.resize(1366, 900).await;
    assert_clean(&browser, "settings: venue accounts").await;

    // A viewer sees the list, not the form.
    let first = "vic's first password";
    let (status, body) =
        setup.admin.post("/api/v1/users", json!({"username": "vic", "password": first, "role": "viewer"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let http = reqwest::Client::builder().cookie_store(true).build().unwrap();
    let login = common::session(&http, &setup.server.base, "vic", first).await;
    let changed = http
        .post(setup.url("/api/v1/auth/password"))
        .header("X-CSRF-Token", login["csrf_token"].as_str().unwrap())
        .json(&json!({"current_password": first, "new_password": password_of("vic")}))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), StatusCode::NO_CONTENT);
    browser.click(".user-menu summary").await;
    browser.click("#sign-out").await;
    browser.find("#login-form").await;
    sign_in(&browser, &setup, "vic", &password_of("vic")).await;
    browser.goto(&setup.url("/settings")).await;
    browser.wait_text("#venues-table", "No venue accounts linked.").await;
    browser.wait_text("#venues-view-only", "can view but not trade").await;
    let form_shown =
        browser.eval("return document.querySelector('#venue-form').getClientRects().length > 0;", json!([])).await;
    assert_eq!(form_shown, false, "a viewer has no form to link with");
    assert_clean(&browser, "settings as a viewer").await;
    drop(browser);
    setup.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_say_when_the_server_has_no_credentials_key() {
    let setup = Setup::new("e2e-venues-nokey").await;
    let browser = Browser::start("settings_say_when_the_server_has_no_credentials_key").await;
    sign_in(&browser, &setup, "admin", ADMIN_PASSWORD).await;
    browser.goto(&setup.url("/settings")).await;
    browser.wait_text("#venues-table", "No venue accounts linked yet").await;
    // Said at once, before anyone types a secret in vain.
    browser.wait_text("#venues-key-missing", "trading.credentials_key").await;
    browser.wait_text("#venues-key-missing", "docs/venues.md").await;
    assert!(disabled(&browser, "#venue-submit").await, "nothing can be linked until the key is set");
    let (_, listed) = setup.admin.get("/api/v1/venue-credentials").await;
    assert_eq!(listed, json!([]));
    assert_clean(&browser, "settings without a credentials key").await;
    drop(browser);
    setup.finish().await;
}

/// The value of the open-live dialog's credential option whose text holds `text`.
async fn credential_value(browser: &Browser, text: &str) -> String {
    let script = "return [...document.querySelector('#live-credential').options].find((o) => o.text.includes(arguments[0]))?.value ?? '';";
    browser.eval(script, json!([text])).await.as_str().unwrap_or_default().to_string()
}

/// The options of a `<select>`, as their values.
async fn options(browser: &Browser, css: &str) -> Value {
    browser.eval("return [...document.querySelector(arguments[0]).options].map((o) => o.value);", json!([css])).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_binance_account_is_opened_confirmed_traded_and_reconciled() {
    use venue_fakes::binance::{FakeBinance, FakeKey};
    // The local fake of Binance's spot REST API: 10,000 USDT and 1 BTC,
    // BTCUSDT last traded at 50,000. Without the WebSocket URLs the account
    // has no live updates from the venue; reconciliations run on start and
    // when asked.
    let binance =
        FakeBinance::start(vec![(BINANCE_API_KEY.to_string(), FakeKey::Hmac(BINANCE_SECRET.to_string()))]).await;
    let setup = Setup::with(
        "e2e-live",
        &[
            ("TRADECORE_TRADING__CREDENTIALS_KEY", CREDENTIALS_KEY),
            ("TRADECORE_VENUES__BINANCE_REST_URL", &binance.url),
            ("TRADECORE_VENUES__RECONCILE_SECONDS", "0"),
        ],
    )
    .await;
    let (trader, _paper) = setup.trader("lou").await;
    let browser = Browser::start("a_live_binance_account_is_opened_confirmed_traded_and_reconciled").await;
    sign_in(&browser, &setup, "lou", &password_of("lou")).await;

    // No venue keys linked yet: the overview points to Settings instead.
    browser.goto(&setup.url("/")).await;
    browser.wait_text("#live-hint", "Settings").await;
    assert!(!shown(&browser, "#open-live-account").await, "no live accounts without linked keys");

    // Keys linked in Settings (testnet and HMAC are the form's defaults).
    browser.click("#live-hint a").await;
    browser.find("body[data-page=settings]").await;
    browser.fill("#venue-label", "spot keys").await;
    browser.fill("#venue-api-key", BINANCE_API_KEY).await;
    browser.fill("#venue-api-secret", BINANCE_SECRET).await;
    browser.click("#venue-submit").await;
    browser.wait_text("#venues-table tbody tr[data-credential]", "spot keys").await;
    // And TastyTrade production keys, for the dialog's other fields.
    browser.select("#venue-venue", "tastytrade").await;
    browser.select("#venue-environment", "production").await;
    browser.fill("#venue-label", "ira").await;
    browser.fill("#venue-client-id", "client-1234-abcd").await;
    browser.fill("#venue-client-secret", TASTY_CLIENT_SECRET).await;
    browser.fill("#venue-refresh-token", TASTY_REFRESH_TOKEN).await;
    browser.click("#venue-production-ok").await;
    browser.click("#venue-submit").await;
    browser.wait_text("#venues-table tr.row-live", "ira").await;
    let (_, linked) = trader.get("/api/v1/venue-credentials").await;
    let tasty = linked.as_array().unwrap().iter().find(|c| c["venue"] == "tastytrade").unwrap()["id"].to_string();

    // Opening one from the overview: the credential by label, venue and
    // environment; Binance needs no account number.
    browser.goto(&setup.url("/")).await;
    browser.wait_text("#conn-state", "Live").await;
    assert!(!shown(&browser, "#live-hint").await);
    browser.click("#open-live-account").await;
    browser.wait_text("#live-credential", "spot keys — Binance testnet").await;
    browser.wait_text("#live-credential", "ira — TastyTrade production").await;
    browser.click("#open-live-submit").await;
    browser.wait_text("#open-live-dialog .error[data-for=name]", "Give the account a name").await;
    browser.fill("#live-name", "spot").await;
    // TastyTrade needs the account number, and production says it is real money.
    browser.select("#live-credential", &tasty).await;
    browser.wait_text("#live-production", "real money").await;
    browser.fill("#live-symbols", "AAPL").await;
    browser.click("#open-live-submit").await;
    browser.wait_text("#open-live-dialog .error[data-for=venue_account]", "account number").await;
    let (_, listed) = trader.get("/api/v1/accounts").await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "nothing sent without the number: {listed}");
    let binance_id = credential_value(&browser, "Binance").await;
    browser.select("#live-credential", &binance_id).await;
    assert!(!shown(&browser, "#live-venue-account-field").await, "Binance has no account number");
    assert!(!shown(&browser, "#live-production").await, "no production warning on testnet");
    // A symbol Binance does not list: the venue's refusal, at the symbols field; nothing opened.
    browser.fill("#live-symbols", "BTCUSDT, NOPEUSDT").await;
    browser.click("#open-live-submit").await;
    browser.find("#open-live-dialog .error[data-for=symbols]").await;
    let refusal = browser.text("#open-live-dialog .error[data-for=symbols]").await;
    assert!(refusal.to_lowercase().contains("symbol"), "{refusal}");
    let (_, listed) = trader.get("/api/v1/accounts").await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "only the paper account: {listed}");
    // Space separated this time, sent with Enter from the field.
    browser.fill("#live-symbols", "BTCUSDT").await;
    browser.press("\u{E007}").await;
    browser.find("body[data-page=account]").await;
    let account = browser.eval("return Number(document.querySelector('#main').dataset.account);", json!([])).await;
    let account = account.as_i64().unwrap();

    // Where its orders would go, and that nothing is sent until confirmed.
    browser.wait_text("h1", "spot").await;
    browser.wait_text("h1", "Binance · testnet").await;
    browser.wait_text("#account-sub", "trades at Binance testnet").await;
    browser.wait_text("#live-notice", "Not confirmed").await;
    browser.wait_text("#live-notice", "Binance testnet").await;
    // The ticket offers the account's own symbol, and refuses to send, saying why.
    assert_eq!(options(&browser, "#order-symbol").await, json!(["BTCUSDT"]));
    browser.wait_text("#ticket-state", "confirm live trading on it first").await;
    assert!(disabled(&browser, "#ticket-submit").await, "an unconfirmed account's ticket must not send");
    // The server refuses too, with the reason the page shows.
    let (status, problem) = trader
        .post(
            &format!("/api/v1/accounts/{account}/orders"),
            json!({"client_order_id": "early", "symbol": "BTCUSDT", "side": "buy", "type": "limit", "quantity": "0.01", "price": "50000"}),
        )
        .await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::CONFLICT, Some("trading_not_allowed")), "{problem}");
    assert!(browser.text("#ticket-state").await.contains(problem["detail"].as_str().unwrap()), "{problem}");
    // What the venue holds, from the first reconciliation.
    browser.wait_text("#venue-meta", "Last reconciled").await;
    browser.wait_text("#venue-balances tr[data-currency=USDT]", "10,000").await;
    browser.wait_text("#venue-balances tr[data-currency=BTC]", "1").await;
    browser.wait_text("#kpis section[data-currency=USDT]", "10,000.00").await;
    assert!(binance.orders().is_empty(), "nothing reached the venue");

    // The overview card says it too; confirming there needs the box ticked (by keyboard here).
    browser.goto(&setup.url("/")).await;
    let card = format!("#account-cards article[data-account=\"{account}\"]");
    browser.wait_text(&card, "Not confirmed").await;
    browser.wait_text(&card, "Binance · testnet").await;
    keep_screenshot(&browser, "overview-live").await;
    browser.click(&format!("{card} button[data-confirm-live]")).await;
    browser.wait_text("dialog[open]", "go to Binance testnet").await;
    assert!(disabled(&browser, "dialog[open] button[type=submit]").await, "not before the box is ticked");
    let focused = browser.eval("return document.activeElement.id;", json!([])).await;
    assert_eq!(focused, "confirm-ack");
    browser.press("\u{E00D}").await;
    browser.confirm("Confirm live trading on “spot”?").await;
    browser.wait_js("the notice to go", &format!("!document.querySelector('{card} .live-notice')")).await;
    let (_, listed) = trader.get("/api/v1/accounts").await;
    let live = listed.as_array().unwrap().iter().find(|a| a["id"] == account).unwrap()["live"].clone();
    assert_eq!((live["confirmed"].as_bool(), live["trading"].as_bool()), (Some(true), Some(true)), "{live}");

    // A limit buy through the ticket, at the fake's last price: it fills at once.
    browser.goto(&setup.url(&format!("/accounts/{account}"))).await;
    browser.wait_text("#conn-state", "Live").await;
    browser.wait_text("#ticket-state", "orders go to Binance testnet").await;
    assert!(!shown(&browser, "#live-notice").await, "confirmed: no notice");
    browser.mark_page().await;
    browser.select("#order-type", "limit").await;
    browser.fill("#order-quantity", "0.01").await;
    browser.fill("#order-price", "50000").await;
    browser.wait_text("#ticket-summary", "500.00").await;
    browser.click("#ticket-submit").await;
    browser.wait_text("dialog[open] .live-warning", "Binance testnet").await;
    browser.fill("#confirm-typed", "spot").await;
    browser.confirm("Buy 0.01 BTCUSDT limit 50,000?").await;
    browser.wait_text("#ticket-result", "placed").await;
    browser.wait_js("the fill", "document.querySelectorAll('#fills-table tbody tr[data-fill]').length === 1").await;
    browser.wait_text("#fills-table", "BTCUSDT").await;
    // 0.01 bought; Binance keeps its commission in BTC, so the position is 0.00999.
    let bought =
        "document.querySelector('#positions-table tr[data-symbol=BTCUSDT] td:nth-child(2)')?.textContent === '0.00999'";
    browser.wait_js("the BTCUSDT position", bought).await;
    browser
        .wait_js(
            "the ticket's position",
            "/Position now → after0\\.00999 →/.test(document.querySelector('#ticket-summary').textContent)",
        )
        .await;
    assert!(browser.not_reloaded().await, "the page was reloaded");
    let sent = binance.orders();
    assert_eq!(sent.len(), 1);
    assert_eq!((sent[0].side.as_str(), sent[0].status.as_str()), ("BUY", "FILLED"));

    // Reconcile now: it says what it did, and the venue's figures follow
    // (the commission was taken in BTC).
    browser.eval("document.querySelector('#venue-panel').scrollIntoView();", json!([])).await;
    browser.click("#reconcile-now").await;
    browser.wait_text("#reconcile-result", "Reconciled.").await;
    browser.wait_text("#reconcile-result", "No differences.").await;
    browser.wait_text("#venue-balances tr[data-currency=USDT]", "9,500").await;
    browser.wait_text("#venue-balances tr[data-currency=BTC]", "1.00999").await;
    browser.wait_text("#venue-positions tr[data-symbol=BTCUSDT]", "1.00999").await;
    browser.wait_text("#kpis section[data-currency=USDT]", "9,500.00").await;
    keep_screenshot(&browser, "account-live").await;

    // Labelled controls, one heading, and it fits a phone.
    let unlabelled = "return [...document.querySelectorAll('input, select, textarea, button')] \
        .filter((e) => e.getClientRects().length && e.type !== 'hidden') \
        .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.getAttribute('aria-labelledby') \
                       && !(e.tagName === 'BUTTON' && e.textContent.trim())) \
        .map((e) => e.outerHTML.slice(0, 120));";
    assert_eq!(browser.eval(unlabelled, json!([])).await, json!([]), "controls without a label");
    assert_eq!(browser.eval("return document.querySelectorAll('h1').length;", json!([])).await, 1);
    browser.resize(390, 844).await;
    for page in [format!("/accounts/{account}"), "/".to_string()] {
        browser.goto(&setup.url(&page)).await;
        browser.wait_text("#conn-state", "Live").await;
        let overflow = browser
            .eval("return document.documentElement.scrollWidth - document.documentElement.clientWidth;", json!([]))
            .await;
        assert_eq!(overflow, 0, "{page} scrolls sideways on a phone");
    }
    browser.resize(1366, 900).await;

    // BTC arrives at the venue from elsewhere: nothing explains it, so the
    // account becomes close-only, and the panel says so.
    binance.deposit("BTC", model::Money::parse("0.5").unwrap());
    browser.goto(&setup.url(&format!("/accounts/{account}"))).await;
    browser.wait_text("#venue-meta", "Last reconciled").await;
    browser.click("#reconcile-now").await;
    browser.wait_text("#reconcile-result", "close-only").await;
    browser.wait_text("#venue-differences", "position in BTCUSDT").await;
    browser.wait_text("#halt-banner", "close-only").await;

    // Elsewhere: the paper instrument pages send to the account's own
    // ticket, and the orders page names its venue symbols.
    browser.goto(&setup.url(&format!("/markets/BTC-USDT?account={account}"))).await;
    browser.wait_text("#ticket-state", "is a live Binance account").await;
    assert!(disabled(&browser, "#ticket-submit").await, "a paper instrument cannot be sent to the venue");
    browser.goto(&setup.url(&format!("/orders?account={account}"))).await;
    browser.click("#tab-history").await;
    browser.wait_text("#history-table", "BTCUSDT").await;
    browser.wait_text("#history-table", "filled").await;
    assert_eq!(options(&browser, "#filter-symbol").await, json!(["", "BTCUSDT"]));
    assert_clean(&browser, "live account pages").await;
    drop(browser);
    setup.finish().await;
}
