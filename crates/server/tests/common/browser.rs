//! A real headless Chromium for the dashboard tests, driven over the W3C
//! WebDriver protocol by Debian's `chromedriver` (a plain JSON-over-HTTP
//! protocol, so a small client on reqwest is all it takes).
//!
//! Each [`Browser`] is its own chromedriver and Chromium with a fresh
//! profile, in a process group of its own, killed (with every Chromium
//! helper process) when the browser is dropped, even when a test fails.
//! Waits poll the page; a wait that times out saves a screenshot and the
//! page's text under `target/e2e-failures/` and fails with what it waited for.

#![allow(dead_code)] // each test binary uses a different part of it

use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// W3C's key for element references in JSON.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How long a wait waits.
pub const WAIT: Duration = Duration::from_secs(15);

/// Where Chromium and chromedriver are (Debian's packages), overridable.
fn chromium() -> String {
    std::env::var("TRADECORE_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_string())
}

fn chromedriver() -> String {
    std::env::var("TRADECORE_TEST_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".to_string())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn target_dir() -> PathBuf {
    // tests run with the package as the working directory
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target")
}

pub struct Browser {
    http: reqwest::Client,
    driver: Child,
    webdriver: String,
    session: String,
    profile: PathBuf,
    /// Test name, for failure artifacts.
    name: String,
}

/// A found element.
#[derive(Debug, Clone)]
pub struct Element(String);

impl Browser {
    /// Starts chromedriver and a headless Chromium with a fresh profile at
    /// a desktop size (or `width` × `height`).
    pub async fn start(name: &str) -> Self {
        Self::start_sized(name, 1366, 900).await
    }

    pub async fn start_sized(name: &str, width: u32, height: u32) -> Self {
        let port = free_port();
        let profile = std::env::temp_dir().join(format!("tc-e2e-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).unwrap();
        let log = std::fs::File::create(profile.join("chromedriver.log")).unwrap();
        let driver = Command::new(chromedriver())
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(log)
            // Its own process group: dropping the browser kills Chromium too.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e} (apt-get install chromium-driver)", chromedriver()));
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
        let webdriver = format!("http://127.0.0.1:{port}");
        let mut browser = Self { http, driver, webdriver, session: String::new(), profile, name: name.to_string() };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(r) = browser.http.get(format!("{}/status", browser.webdriver)).send().await
                && r.json::<Value>().await.is_ok_and(|v| v["value"]["ready"] == true)
            {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let args = vec![
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            "--lang=en-US".into(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", browser.profile.join("chrome").display()),
        ];
        let capabilities = json!({
            "capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": chromium(), "args": args},
                "goog:loggingPrefs": {"browser": "ALL"},
                "timeouts": {"script": 30_000, "pageLoad": 30_000, "implicit": 0},
            }}
        });
        let answer = browser.raw("POST", "/session", Some(capabilities)).await;
        browser.session =
            answer["sessionId"].as_str().unwrap_or_else(|| panic!("no WebDriver session: {answer}")).to_string();
        browser
    }

    async fn raw(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.webdriver);
        let request = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body.unwrap_or_else(|| json!({}))),
        };
        let response = request.send().await.unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        let value: Value = response.json().await.unwrap_or(Value::Null);
        value["value"].clone()
    }

    /// A WebDriver command in this session; panics with WebDriver's message on error.
    async fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let value = self.raw(method, &format!("/session/{}{path}", self.session), body).await;
        if let Some(error) = value.get("error").and_then(Value::as_str) {
            panic!("WebDriver {method} {path}: {error}: {}", value["message"]);
        }
        value
    }

    async fn try_cmd(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let value = self.raw(method, &format!("/session/{}{path}", self.session), body).await;
        match value.get("error").and_then(Value::as_str) {
            Some(error) => Err(format!("{error}: {}", value["message"])),
            None => Ok(value),
        }
    }

    pub async fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url }))).await;
    }

    pub async fn url(&self) -> String {
        self.cmd("GET", "/url", None).await.as_str().unwrap_or_default().to_string()
    }

    /// Runs `script` (a function body; `arguments` are `args`) and returns its value.
    pub async fn eval(&self, script: &str, args: Value) -> Value {
        self.cmd("POST", "/execute/sync", Some(json!({ "script": script, "args": args }))).await
    }

    /// Runs an async function body: it gets `done` as its last argument.
    pub async fn eval_async(&self, script: &str, args: Value) -> Value {
        self.cmd("POST", "/execute/async", Some(json!({ "script": script, "args": args }))).await
    }

    /// The first element matching `css` that is displayed, waiting for it.
    pub async fn find(&self, css: &str) -> Element {
        let script =
            "return [...document.querySelectorAll(arguments[0])].find((e) => e.getClientRects().length > 0) ?? null;";
        let deadline = Instant::now() + WAIT;
        loop {
            let found = self.eval(script, json!([css])).await;
            if let Some(id) = found[ELEMENT].as_str() {
                return Element(id.to_string());
            }
            if Instant::now() > deadline {
                self.fail(&format!("timed out waiting for '{css}' to be visible")).await;
            }
            tokio::time::sleep(Duration::from_millis(60)).await;
        }
    }

    pub async fn click(&self, css: &str) {
        let element = self.find(css).await;
        // Waits until it is enabled: forms disable their button while busy.
        self.wait_for(&format!("'{css}' to be enabled"), || async {
            self.eval("return !document.querySelector(arguments[0])?.disabled;", json!([css])).await == true
        })
        .await;
        if let Err(e) = self.try_cmd("POST", &format!("/element/{}/click", element.0), None).await {
            // Covered for a moment (an animation, a toast): scroll and retry once.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let element = self.find(css).await;
            if let Err(again) = self.try_cmd("POST", &format!("/element/{}/click", element.0), None).await {
                self.fail(&format!("cannot click '{css}': {e}; then {again}")).await;
            }
        }
    }

    /// Clears a field and types `text` into it, as a user would.
    pub async fn fill(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        self.cmd("POST", &format!("/element/{}/clear", element.0), None).await;
        self.cmd("POST", &format!("/element/{}/value", element.0), Some(json!({ "text": text }))).await;
    }

    /// Chooses a file in an `<input type=file>`, as a user picking it would.
    pub async fn upload(&self, css: &str, path: &Path) {
        let element = self.find_any(css).await;
        let text = path.to_str().unwrap_or_default();
        self.cmd("POST", &format!("/element/{}/value", element.0), Some(json!({ "text": text }))).await;
    }

    /// The first element matching `css`, displayed or not (file inputs are
    /// often styled away), waiting for it to exist.
    pub async fn find_any(&self, css: &str) -> Element {
        let script = "return document.querySelector(arguments[0]);";
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(id) = self.eval(script, json!([css])).await[ELEMENT].as_str() {
                return Element(id.to_string());
            }
            if Instant::now() > deadline {
                self.fail(&format!("timed out waiting for '{css}' to exist")).await;
            }
            tokio::time::sleep(Duration::from_millis(60)).await;
        }
    }

    /// Clicks the confirm button of the open dialog, after checking its title.
    pub async fn confirm(&self, title_contains: &str) {
        self.wait_text("dialog[open] h2", title_contains).await;
        self.click("dialog[open] .dialog-actions button[type=submit]").await;
        self.wait_js("the dialog to close", "!document.querySelector('dialog[open]')").await;
    }

    /// Marks the page, so a later [`Self::not_reloaded`] can tell it was never reloaded.
    pub async fn mark_page(&self) {
        self.eval("window.__e2eMark = 'unchanged';", json!([])).await;
    }

    /// Whether the page marked by [`Self::mark_page`] is still the same page.
    pub async fn not_reloaded(&self) -> bool {
        self.eval("return window.__e2eMark === 'unchanged';", json!([])).await == true
    }

    /// Picks the option whose value is `value` in a `<select>`.
    pub async fn select(&self, css: &str, value: &str) {
        self.find(css).await;
        let ok = self
            .eval(
                "const s = document.querySelector(arguments[0]); if (![...s.options].some((o) => o.value === arguments[1])) return false; \
                 s.value = arguments[1]; s.dispatchEvent(new Event('input', {bubbles: true})); s.dispatchEvent(new Event('change', {bubbles: true})); return true;",
                json!([css, value]),
            )
            .await;
        if ok != true {
            self.fail(&format!("'{css}' has no option '{value}'")).await;
        }
    }

    /// Presses one key where the focus is (a WebDriver key code, e.g.
    /// "\u{E004}" for Tab, "\u{E007}" for Enter).
    pub async fn press(&self, key: &str) {
        let actions = json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
            {"type": "keyDown", "value": key}, {"type": "keyUp", "value": key}
        ]}]});
        self.cmd("POST", "/actions", Some(actions)).await;
    }

    /// The visible text of the first element matching `css` ("" if none).
    pub async fn text(&self, css: &str) -> String {
        self.eval("return document.querySelector(arguments[0])?.innerText ?? '';", json!([css]))
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Waits until `css` exists and its text contains `needle`.
    pub async fn wait_text(&self, css: &str, needle: &str) {
        self.wait_for(&format!("'{css}' to contain '{needle}'"), || async { self.text(css).await.contains(needle) })
            .await;
    }

    /// Waits until the JavaScript expression is truthy.
    pub async fn wait_js(&self, what: &str, expression: &str) {
        let script = format!("try {{ return !!({expression}); }} catch (e) {{ return false; }}");
        self.wait_for(what, || async { self.eval(&script, json!([])).await == true }).await;
    }

    /// Polls `check` until it holds, or fails the test after [`WAIT`].
    pub async fn wait_for<F, Fut>(&self, what: &str, check: F)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + WAIT;
        loop {
            if check().await {
                return;
            }
            if Instant::now() > deadline {
                self.fail(&format!("timed out waiting for {what}")).await;
            }
            tokio::time::sleep(Duration::from_millis(60)).await;
        }
    }

    /// Saves a screenshot and the page text for the failure, then panics.
    pub async fn fail(&self, message: &str) -> ! {
        let dir = target_dir().join("e2e-failures");
        let _ = std::fs::create_dir_all(&dir);
        let stem = dir.join(self.name.replace("::", "-"));
        self.screenshot(&stem.with_extension("png")).await;
        let text = self.eval("return document.body?.innerText ?? '';", json!([])).await;
        let logs =
            self.raw("POST", &format!("/session/{}/se/log", self.session), Some(json!({"type": "browser"}))).await;
        let _ = std::fs::write(
            stem.with_extension("txt"),
            format!("{message}\nurl: {}\n\n{}\n\nconsole:\n{logs:#}", self.url().await, text.as_str().unwrap_or("")),
        );
        panic!("{message} (screenshot and page text in {})", stem.display());
    }

    /// Sets a cookie for the current page's site (HttpOnly, as the server's).
    pub async fn set_cookie(&self, name: &str, value: &str) {
        let cookie = json!({"cookie": {"name": name, "value": value, "path": "/", "httpOnly": true}});
        self.cmd("POST", "/cookie", Some(cookie)).await;
    }

    /// Saves a PNG of the viewport.
    pub async fn screenshot(&self, path: &Path) {
        use base64::Engine as _;
        let data = self.cmd("GET", "/screenshot", None).await;
        let decode = |text: &str| base64::engine::general_purpose::STANDARD.decode(text).ok();
        if let Some(png) = data.as_str().and_then(decode) {
            if let Some(parent) = path.parent() {
                let _ = std::fs::create_dir_all(parent);
            }
            let _ = std::fs::write(path, png);
        }
    }

    /// Resizes the window (for phone-width checks).
    pub async fn resize(&self, width: u32, height: u32) {
        self.cmd("POST", "/window/rect", Some(json!({"width": width, "height": height}))).await;
    }

    /// Errors the page logged to the console since the last call: script
    /// errors, failed asset loads, CSP violations. A 4xx answer of the API is
    /// not one: refusals are part of the flows under test.
    pub async fn console_errors(&self) -> Vec<String> {
        let logs =
            self.raw("POST", &format!("/session/{}/se/log", self.session), Some(json!({"type": "browser"}))).await;
        logs.as_array()
            .map(|entries| {
                entries
                    .iter()
                    .filter(|e| e["level"] == "SEVERE")
                    .filter_map(|e| e["message"].as_str().map(str::to_string))
                    .filter(|m| !(m.contains("/api/v1/") && m.contains("the server responded with a status of 4")))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Kill the whole group: chromedriver and every Chromium process.
        // Spelled `-s KILL -- -PGID`: procps-ng 4.0.2 misreads `kill -KILL
        // -PGID` (it signalled group 2, or with a leading 1 every process).
        let pgid = self.driver.id();
        if pgid > 1 {
            let _ = Command::new("kill").args(["-s", "KILL", "--", &format!("-{pgid}")]).status();
        }
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
