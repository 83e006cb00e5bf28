//! What the integration tests share: a real server on a real port over a
//! real SQLite or PostgreSQL database, and signed-in HTTP clients.
#![allow(dead_code)]

pub mod browser;
pub mod live;

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use server::serve::{self, Started};
use store::testing::TestDatabase;

pub const ADMIN_PASSWORD: &str = "correct horse battery staple";

/// Runs the named tests (`async fn name(backend: &str)`) on SQLite and on PostgreSQL.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name("sqlite").await; } )* }
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name("postgres").await; } )* }
    };
}

pub struct Server {
    pub base: String,
    pub started: Started,
    task: tokio::task::JoinHandle<()>,
}

/// Starts a server the way `tradecore serve` does, on `db`, listening on a free port.
pub async fn start(db: &TestDatabase) -> Server {
    start_with(db, &[]).await
}

/// Like [`start`], with more settings as `TRADECORE_*` variables.
pub async fn start_with(db: &TestDatabase, settings: &[(&str, &str)]) -> Server {
    let mut env = vec![
        ("TRADECORE_DATABASE__URL".to_string(), db.url.clone()),
        ("TRADECORE_AUTH__ADMIN_PASSWORD".to_string(), ADMIN_PASSWORD.to_string()),
        ("TRADECORE_PAPER__TICKS_PER_SECOND".to_string(), "20".to_string()),
        ("TRADECORE_PAPER__SEED".to_string(), "3".to_string()),
    ];
    env.extend(settings.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())));
    let (base, started, task) = listen(server::config::load(None, &env).unwrap()).await;
    Server { base, started, task }
}

/// Starts a server as `serve` does with `config` and serves it on a free
/// port: its base URL, what started, and the task serving HTTP.
pub async fn listen(config: server::config::Config) -> (String, Started, tokio::task::JoinHandle<()>) {
    let started = serve::start(config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = server::app::app(started.state.clone());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router.into_make_service_with_connect_info::<std::net::SocketAddr>()).await;
    });
    (base, started, task)
}

impl Server {
    /// Stops as a SIGTERM does: flushes every account, leaves bots to resume.
    pub async fn stop(self) {
        self.task.abort();
        self.started.stop().await;
    }
}

/// A signed-in client using a bearer token with every scope the user's
/// role allows.
pub struct User {
    pub http: Client,
    pub base: String,
    pub token: String,
}

/// Signs `http` (a client that keeps cookies) in with a session; returns
/// the sign-in answer (the user and the session's CSRF token).
pub async fn session(http: &Client, base: &str, username: &str, password: &str) -> Value {
    let login = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK, "login as {username}: {}", login.text().await.unwrap_or_default());
    login.json::<Value>().await.unwrap()
}

impl User {
    pub async fn sign_in(base: &str, username: &str, password: &str) -> Self {
        let http = Client::builder().cookie_store(true).build().unwrap();
        let login = session(&http, base, username, password).await;
        let csrf = login["csrf_token"].as_str().unwrap().to_string();
        // Every scope the user's role allows.
        let scopes = match login["user"]["role"].as_str() {
            Some("admin") => json!(["read", "trade", "admin"]),
            Some("viewer") => json!(["read"]),
            _ => json!(["read", "trade"]),
        };
        let token = http
            .post(format!("{base}/api/v1/tokens"))
            .header("X-CSRF-Token", &csrf)
            .json(&json!({"name": "tests", "scopes": scopes}))
            .send()
            .await
            .unwrap();
        assert_eq!(token.status(), StatusCode::CREATED, "token: {}", token.text().await.unwrap_or_default());
        let token = token.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_string();
        Self { http: Client::new(), base: base.to_string(), token }
    }

    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::DELETE, path, None).await
    }
}

/// Opens a paper account with 100,000 of each currency; returns its id.
pub async fn open_account(user: &User) -> i64 {
    let (status, body) = user.post("/api/v1/accounts", json!({"name": "paper", "starting_cash": "100000"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_i64().unwrap()
}

/// Creates a trader through the admin and signs them in.
pub async fn trader(server: &Server, admin: &User, name: &str) -> User {
    let password = format!("{name}'s long password");
    let (status, body) =
        admin.post("/api/v1/users", json!({"username": name, "password": password, "role": "trader"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    User::sign_in(&server.base, name, &password).await
}
