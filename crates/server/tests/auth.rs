//! Authentication over real HTTP: a server on 127.0.0.1:0 serving `app(state)`,
//! spoken to with reqwest (cookie store on), on SQLite and on PostgreSQL,
//! each test with a fresh database (PostgreSQL ones dropped at the end).
//!
//! PostgreSQL comes from `TRADECORE_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`).

use std::net::SocketAddr;
use std::sync::Arc;

use model::{Quantity, Rate};
use reqwest::header::HeaderMap;
use reqwest::{Client, Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};
use server::app::{AppState, app};
use server::config::{Config, Secret};
use server::runtime::{Runtime, RuntimeOptions};
use sim::quotes::QuoteFillConfig;
use store::Store;
use store::auth::{AuditEntry, NewToken, Role, Scope, Scopes};
use store::testing::TestDatabase;

const ADMIN_PASSWORD: &str = "admin password for tests";

/// A running server with its own database.
struct TestApp {
    base: String,
    store: Store,
    state: AppState,
    server: tokio::task::JoinHandle<()>,
    db: TestDatabase,
}

fn test_config() -> Config {
    let mut config = server::config::load(None, &[]).expect("the defaults load");
    config.auth.admin_password = Some(Secret::new(ADMIN_PASSWORD.to_string()));
    config
}

async fn spawn_app(backend: &str, config: Config) -> TestApp {
    let db = TestDatabase::create(backend, "auth").await;
    let store = db.store().await;
    assert_eq!(
        server::auth::ensure_admin(&store, &config).await.unwrap(),
        None,
        "configured password: nothing to print"
    );
    let options = RuntimeOptions {
        instruments: Vec::new(),
        fill: QuoteFillConfig {
            maker_fee: Rate::ZERO,
            taker_fee: Rate::ZERO,
            slippage: Rate::ZERO,
            multiplier: Quantity::ONE,
            respect_size: true,
        },
        clock: server::accounts::wall_clock,
        max_batch: 64,
        live: server::live::LiveOptions::default(),
    };
    let runtime = Runtime::start(store.clone(), options).await.unwrap();
    let state = AppState::new(runtime, Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = app(state.clone());
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>()).await;
    });
    TestApp { base, store, state, server, db }
}

impl TestApp {
    async fn stop(self) {
        self.server.abort();
        let _ = self.server.await;
        self.state.runtime.shutdown().await;
        drop(self.state);
        self.store.close().await;
        self.db.remove().await;
    }

    /// A browser-like client: keeps cookies, remembers the CSRF token.
    fn browser(&self) -> Session {
        let http = Client::builder().cookie_store(true).user_agent("tradecore-tests").build().unwrap();
        Session { http, base: self.base.clone(), csrf: None, bearer: None }
    }

    /// A program: sends a bearer token, keeps no cookies.
    fn program(&self, token: &str) -> Session {
        Session { http: Client::new(), base: self.base.clone(), csrf: None, bearer: Some(token.to_string()) }
    }

    async fn signed_in(&self, username: &str, password: &str) -> Session {
        let mut session = self.browser();
        let (status, body) = session.login(username, password).await;
        assert_eq!(status, StatusCode::OK, "{username} signs in: {body}");
        session
    }

    async fn audit_actions(&self) -> Vec<String> {
        self.store.audit_log(None, 500).await.unwrap().into_iter().map(|a| a.action).collect()
    }
}

struct Session {
    http: Client,
    base: String,
    csrf: Option<String>,
    bearer: Option<String>,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Session {
    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(csrf) = &self.csrf {
            request = request.header("X-CSRF-Token", csrf);
        }
        if let Some(token) = &self.bearer {
            request = request.bearer_auth(token);
        }
        request
    }

    async fn send(request: RequestBuilder) -> Answer {
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        Answer { status, headers, body }
    }

    async fn get(&self, path: &str) -> Answer {
        Self::send(self.request(Method::GET, path)).await
    }

    async fn write(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let request = self.request(method, path);
        Self::send(match body {
            Some(body) => request.json(&body),
            None => request,
        })
        .await
    }

    async fn post(&self, path: &str, body: Value) -> Answer {
        self.write(Method::POST, path, Some(body)).await
    }

    async fn login(&mut self, username: &str, password: &str) -> (StatusCode, Value) {
        let answer = self.post("/api/v1/auth/login", json!({ "username": username, "password": password })).await;
        if answer.status == StatusCode::OK {
            self.csrf = answer.body["csrf_token"].as_str().map(str::to_string);
        }
        (answer.status, answer.body)
    }

    /// Creates a token and returns it (the secret string) with its id.
    async fn token(&self, scopes: &[&str]) -> (String, i64) {
        let answer = self.post("/api/v1/tokens", json!({ "name": "test", "scopes": scopes })).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        (answer.body["token"].as_str().unwrap().to_string(), answer.body["id"].as_i64().unwrap())
    }

    async fn create_user(&self, username: &str, password: &str, role: &str) -> i64 {
        let answer =
            self.post("/api/v1/users", json!({ "username": username, "password": password, "role": role })).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        answer.body["id"].as_i64().unwrap()
    }
}

/// Checks a problem+json answer's status and code; returns its body.
fn problem(answer: &Answer, status: StatusCode, code: &str) -> Value {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert_eq!(answer.headers["content-type"], "application/problem+json", "{}", answer.body);
    assert_eq!(answer.body["code"], code, "{}", answer.body);
    assert_eq!(answer.body["status"], status.as_u16());
    answer.body.clone()
}

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name("sqlite").await; } )*
        }
        mod postgres {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name("postgres").await; } )*
        }
    };
}

both_backends!(
    login_me_and_logout_with_cookies,
    csrf_is_required_for_cookie_writes,
    tokens_work_until_revoked_or_expired,
    scopes_are_bounded_by_token_and_role,
    admins_manage_users_and_others_cannot,
    disabled_users_are_refused_everywhere,
    failed_logins_are_throttled,
    malformed_input_is_refused_and_writes_nothing,
    audit_records_writes_and_pages,
    signup_only_when_open,
    password_change_signs_out_other_sessions,
    sessions_are_listed_and_ended_per_user,
    first_start_generates_a_one_time_admin_password,
    cached_credentials_are_dropped_at_once,
);

async fn login_me_and_logout_with_cookies(backend: &str) {
    let app = spawn_app(backend, test_config()).await;
    let mut browser = app.browser();
    problem(&browser.get("/api/v1/auth/me").await, StatusCode::UNAUTHORIZED, "unauthorized");

    // Unknown user and wrong password answer alike.
    let (status, unknown) = browser.login("nobody", ADMIN_PASSWORD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, wrong) = browser.login("admin", "not the password at all").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown, wrong);
    assert_eq!(wrong["code"], "invalid_credentials");

    // User names are case-insensitive.
    let answer = browser.post("/api/v1/auth/login", json!({ "username": "ADMIN", "password": ADMIN_PASSWORD })).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let cookie = answer.headers["set-cookie"].to_str().unwrap().to_string();
    for attribute in ["tc_session=", "HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=604800"] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    assert!(!cookie.contains("Secure"), "secure_cookies is off by default: {cookie}");
    assert_eq!(answer.body["user"]["username"], "admin");
    assert_eq!(answer.body["user"]["role"], "admin");
    assert!(answer.body["user"].get("password_hash").is_none());
    let csrf = answer.body["csrf_token"].as_str().unwrap().to_string();
    assert_eq!(csrf.len(), 64);
    browser.csrf = Some(csrf.clone());

    let me = browser.get("/api/v1/auth/me").await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    assert_eq!(me.body["auth"], "session");
    assert_eq!(me.body["scopes"], json!(["read", "trade", "admin"]));
    assert_eq!(me.body["csrf_token"], csrf.as_str());
    assert_eq!(me.body["user"]["username"], "admin");

    // The stored session id is the hash of the cookie's secret, not the secret.
    let secret = cookie.trim_start_matches("tc_session=").split(';').next().unwrap();
    let (session, _) = app.store.session(&server::auth::sha256_hex(secret)).await.unwrap().unwrap();
    assert!(app.store.session(secret).await.unwrap().is_none());
    assert_eq!(session.user_agent.as_deref(), Some("tradecore-tests"));
    assert_eq!(session.ip.as_deref(), Some("127.0.0.1"));

    let answer = browser.write(Method::POST, "/api/v1/auth/logout", None).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", answer.body);
    assert!(answer.headers["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    problem(&browser.get("/api/v1/auth/me").await, StatusCode::UNAUTHORIZED, "unauthorized");
    // The old cookie is dead even if a client keeps sending it.
    let replay = Client::new()
        .get(format!("{}/api/v1/auth/me", app.base))
        .header("Cookie", format!("tc_session={secret}"))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);

    let actions = app.audit_actions().await;
    for action in ["auth.login_failed", "auth.login", "auth.logout"] {
        assert!(actions.iter().any(|a| a == action), "{action} in {actions:?}");
    }
    app.stop().await;
}

async fn csrf_is_required_for_cookie_writes(backend: &str) {
    let mut config = test_config();
    config.server.public_origins = vec!["https://trade.example.com".to_string()];
    let app = spawn_app(backend, config).await;
    let mut browser = app.signed_in("admin", ADMIN_PASSWORD).await;
    let csrf = browser.csrf.take().unwrap();
    let token_body = json!({ "name": "csrf", "scopes": ["read"] });

    // Reads need no token.
    assert_eq!(browser.get("/api/v1/tokens").await.status, StatusCode::OK);
    // Writes without it, or with another, are refused and write nothing.
    problem(&browser.post("/api/v1/tokens", token_body.clone()).await, StatusCode::FORBIDDEN, "csrf_failed");
    browser.csrf = Some("0".repeat(64));
    problem(&browser.post("/api/v1/tokens", token_body.clone()).await, StatusCode::FORBIDDEN, "csrf_failed");
    browser.csrf = Some(csrf.clone());
    let foreign = browser.request(Method::POST, "/api/v1/tokens").header("Origin", "https://evil.example");
    problem(&Session::send(foreign.json(&token_body)).await, StatusCode::FORBIDDEN, "csrf_failed");
    let users = app.store.users().await.unwrap();
    assert!(app.store.tokens(users[0].id).await.unwrap().is_empty(), "refused writes wrote nothing");

    // The right token from the server's own origin, or a listed one, is fine.
    let same = browser.request(Method::POST, "/api/v1/tokens").header("Origin", app.base.as_str());
    assert_eq!(Session::send(same.json(&token_body)).await.status, StatusCode::CREATED);
    let listed = browser.request(Method::POST, "/api/v1/tokens").header("Origin", "https://trade.example.com");
    assert_eq!(Session::send(listed.json(&token_body)).await.status, StatusCode::CREATED);
    let (token, _) = browser.token(&["read", "trade", "admin"]).await;

    // Bearer requests are exempt: no CSRF header, even with a foreign Origin.
    let program = app.program(&token);
    let answer = Session::send(
        program.request(Method::POST, "/api/v1/tokens").header("Origin", "https://evil.example").json(&token_body),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);

    // Signing in from a foreign page is refused too (login CSRF).
    let foreign_login = app
        .browser()
        .request(Method::POST, "/api/v1/auth/login")
        .header("Origin", "https://evil.example")
        .json(&json!({ "username": "admin", "password": ADMIN_PASSWORD }));
    problem(&Session::send(foreign_login).await, StatusCode::FORBIDDEN, "csrf_failed");
    app.stop().await;
}

async fn tokens_work_until_revoked_or_expired(backend: &str) {
    let app = spawn_app(backend, test_config()).await;
    let browser = app.signed_in("admin", ADMIN_PASSWORD).await;
    let created =
        browser.post("/api/v1/tokens", json!({ "name": "bot", "scopes": ["read"], "expires_in_days": 30 })).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let token = created.body["token"].as_str().unwrap().to_string();
    let id = created.body["id"].as_i64().unwrap();
    assert!(token.starts_with(&format!("tc_{id}_")), "{token}");
    assert_eq!(created.body["scopes"], json!(["read"]));
    assert!(created.body["expires_at"].is_string());

    // Listing never shows the secret.
    let listed = browser.get("/api/v1/tokens").await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.body[0]["id"], id);
    assert!(listed.body[0].get("token").is_none());
    assert!(!listed.body.to_string().contains(token.rsplit('_').next().unwrap()));

    let program = app.program(&token);
    let me = program.get("/api/v1/auth/me").await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    assert_eq!((me.body["auth"].as_str(), me.body["token_id"].as_i64()), (Some("token"), Some(id)));
    assert!(me.body.get("csrf_token").is_none());
    assert!(
        app.store.token_by_hash(&server::auth::sha256_hex(token.rsplit('_').next().unwrap())).await.unwrap().is_some()
    );

    // Malformed or wrong tokens are 401.
    let (_, secret) = token.rsplit_once('_').unwrap();
    let wrong_id = format!("tc_{}_{secret}", id + 1);
    for bad in ["nonsense", "tc_1_abc", wrong_id.as_str(), &format!("tc_{id}_{}", "0".repeat(64))] {
        problem(&app.program(bad).get("/api/v1/auth/me").await, StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let basic = Client::new().get(format!("{}/api/v1/auth/me", app.base)).header("Authorization", "Basic YTpi");
    problem(&Session::send(basic).await, StatusCode::UNAUTHORIZED, "unauthorized");

    // Revoked: refused at once. Another user's id, or an unknown one, is 404.
    assert_eq!(
        browser.write(Method::DELETE, &format!("/api/v1/tokens/{id}"), None).await.status,
        StatusCode::NO_CONTENT
    );
    problem(&program.get("/api/v1/auth/me").await, StatusCode::UNAUTHORIZED, "unauthorized");
    let listed = browser.get("/api/v1/tokens").await;
    assert!(listed.body[0]["revoked_at"].is_string());
    problem(&browser.write(Method::DELETE, "/api/v1/tokens/99999", None).await, StatusCode::NOT_FOUND, "not_found");
    problem(&browser.write(Method::DELETE, "/api/v1/tokens/abc", None).await, StatusCode::NOT_FOUND, "not_found");

    // A read-only token may revoke itself, and nothing else.
    let (own, own_id) = browser.token(&["read"]).await;
    let (other, other_id) = browser.token(&["read"]).await;
    let own_program = app.program(&own);
    problem(
        &own_program.write(Method::DELETE, &format!("/api/v1/tokens/{other_id}"), None).await,
        StatusCode::FORBIDDEN,
        "insufficient_scope",
    );
    assert_eq!(
        own_program.write(Method::DELETE, &format!("/api/v1/tokens/{own_id}"), None).await.status,
        StatusCode::NO_CONTENT
    );
    problem(&own_program.get("/api/v1/auth/me").await, StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(app.program(&other).get("/api/v1/auth/me").await.status, StatusCode::OK);

    // Expired: refused.
    let admin = app.store.user_by_name("admin").await.unwrap().unwrap();
    let secret = "ab".repeat(32);
    let hash = server::auth::sha256_hex(&secret);
    let past = model::Timestamp::from_secs(1_600_000_000);
    let new = NewToken {
        user_id: admin.id,
        name: "old",
        token_hash: &hash,
        scopes: Scopes::ALL,
        created: past,
        expires: Some(past.plus_nanos(1)),
    };
    let row = app.store.create_token(&new, &AuditEntry::new(past, Some(admin.id), "token.create", None)).await.unwrap();
    let expired = server::auth::format_token(row.id, &secret);
    problem(&app.program(&expired).get("/api/v1/auth/me").await, StatusCode::UNAUTHORIZED, "unauthorized");
    app.stop().await;
}

async fn scopes_are_bounded_by_token_and_role(backend: &str) {
    let app = spawn_app(backend, test_config()).await;
    let admin = app.signed_in("admin", ADMIN_PASSWORD).await;
    admin.create_user("vera", "viewer password 1", "viewer").await;
    let tom_id = admin.create_user("tom", "trader password 1", "trader").await;

    // An admin's read-only token is not an admin, and cannot mint tokens.
    let (read_token, _) = admin.token(&["read"]).await;
    let reader = app.program(&read_token);
    assert_eq!(reader.get("/api/v1/auth/me").await.body["scopes"], json!(["read"]));
    problem(&reader.get("/api/v1/users").await, StatusCode::FORBIDDEN, "insufficient_scope");
    problem(&reader.get("/api/v1/audit").await, StatusCode::FORBIDDEN, "insufficient_scope");
    problem(
        &reader.post("/api/v1/tokens", json!({ "name": "more", "scopes": ["read"] })).await,
        StatusCode::FORBIDDEN,
        "insufficient_scope",
    );

    // A viewer session has read only: no trade-scoped token.
    let vera = app.signed_in("vera", "viewer password 1").await;
    let me = vera.get("/api/v1/auth/me").await;
    assert_eq!(me.body["scopes"], json!(["read"]));
    assert_eq!(me.body["user"]["password_change_required"], true, "an admin chose the password");
    let refused = problem(
        &vera.post("/api/v1/tokens", json!({ "name": "t", "scopes": ["trade"] })).await,
        StatusCode::FORBIDDEN,
        "insufficient_scope",
    );
    assert_eq!(refused["field"], "scopes");
    vera.token(&["read"]).await;

    // A trader gets read and trade, never admin.
    let tom = app.signed_in("tom", "trader password 1").await;
    problem(
        &tom.post("/api/v1/tokens", json!({ "name": "t", "scopes": ["admin"] })).await,
        StatusCode::FORBIDDEN,
        "insufficient_scope",
    );
    let (trade_token, _) = tom.token(&["read", "trade"]).await;
    let bot = app.program(&trade_token);
    assert_eq!(bot.get("/api/v1/auth/me").await.body["scopes"], json!(["read", "trade"]));

    // A trade-scoped route: opening an account takes `trade`, which a read token lacks.
    let (tom_reader, _) = tom.token(&["read"]).await;
    let open = json!({ "name": "paper" });
    let refused = app.program(&tom_reader).post("/api/v1/accounts", open.clone()).await;
    problem(&refused, StatusCode::FORBIDDEN, "insufficient_scope");
    let opened = bot.post("/api/v1/accounts", open).await;
    assert_eq!(opened.status, StatusCode::CREATED, "{}", opened.body);

    // Demoting tom shrinks his existing token and session at once.
    let answer =
        admin.write(Method::PATCH, &format!("/api/v1/users/{tom_id}"), Some(json!({ "role": "viewer" }))).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(bot.get("/api/v1/auth/me").await.body["scopes"], json!(["read"]));
    assert_eq!(tom.get("/api/v1/auth/me").await.body["scopes"], json!(["read"]));
    app.stop().await;
}

async fn admins_manage_users_and_others_cannot(backend: &str) {
    let app = spawn_app(backend, test_config()).await;
    let admin = app.signed_in("admin", ADMIN_PASSWORD).await;
    let tina_id = admin.create_user("Tina", "trader password 1", "trader").await;

    let listed = admin.get("/api/v1/users").await;
    assert_eq!(listed.status, StatusCode::OK);
    let names: Vec<&str> = listed.body.as_array().unwrap().iter().filter_map(|u| u["username"].as_str()).collect();
    assert_eq!(names, ["admin", "Tina"]);
    assert!(!listed.body.to_string().contains("argon2"), "no hashes: {}", listed.body);

    let taken = problem(
        &admin
            .post("/api/v1/users", json!({ "username": "tina", "password": "another password", "role": "viewer" }))
            .await,
        StatusCode::CONFLICT,
        "username_taken",
    );
    assert_eq!(taken["field"], "username");
    let bad =
        admin.post("/api/v1/users", json!({ "username": "no spaces", "password": "long enough pw", "role": "viewer" }));
    assert_eq!(problem(&bad.await, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")["field"], "username");
    let short = admin.post("/api/v1/users", json!({ "username": "sam", "password": "short", "role": "viewer" }));
    assert_eq!(problem(&short.await, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")["field"], "password");

    // An invitation: no password given, a one-time one generated and shown once.
    let invited = admin.post("/api/v1/users", json!({ "username": "ivan", "role": "viewer" })).await;
    assert_eq!(invited.status, StatusCode::CREATED, "{}", invited.body);
    let one_time = invited.body["one_time_password"].as_str().unwrap().to_string();
    assert_eq!((one_time.len(), invited.body["password_change_required"].as_bool()), (32, Some(true)));
    let ivan = app.signed_in("ivan", &one_time).await;
    assert_eq!(ivan.get("/api/v1/auth/me").await.body["user"]["role"], "viewer");
    let listed = admin.get("/api/v1/users").await;
    assert!(!listed.body.to_string().contains(&one_time), "never shown again");
    let chosen =
        admin.post("/api/v1/users", json!({ "username": "jo", "password": "jo's long password", "role": "viewer" }));
    assert!(chosen.await.body.get("one_time_password").is_none(), "only generated passwords are returned");

    // Non-admins get 403 on everything here.
    let tina = app.signed_in("tina", "trader password 1").await;
    problem(&tina.get("/api/v1/users").await, StatusCode::FORBIDDEN, "forbidden");
    problem(&tina.get("/api/v1/audit").await, StatusCode::FORBIDDEN, "forbidden");
    problem(&tina.get("/api/v1/admin/accounts").await, StatusCode::FORBIDDEN, "forbidden");
    problem(&tina.get("/api/v1/admin/health").await, StatusCode::FORBIDDEN, "forbidden");
    let create = tina.post("/api/v1/users", json!({ "username": "x", "password": "long enough pw", "role": "admin" }));
    problem(&create.await, StatusCode::FORBIDDEN, "forbidden");
    let promote =
        tina.write(Method::PATCH, &format!("/api/v1/users/{tina_id}"), Some(json!({ "role": "admin" }))).await;
    problem(&promote, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(app.store.user(tina_id).await.unwrap().unwrap().role, Role::Trader);

    // Unknown users are 404; the last admin cannot be demoted or disabled.
    let unknown = admin.write(Method::PATCH, "/api/v1/users/99999", Some(json!({ "disabled": true })));
    problem(&unknown.await, StatusCode::NOT_FOUND, "not_found");
    let admin_id = app.store.user_by_name("admin").await.unwrap().unwrap().id;
    for change in [json!({ "disabled": true }), json!({ "role": "trader" })] {
        let answer = admin.write(Method::PATCH, &format!("/api/v1/users/{admin_id}"), Some(change)).await;
        problem(&answer, StatusCode::CONFLICT, "last_admin");
    }
    let empty = admin.write(Method::PATCH, &format!("/api/v1/users/{tina_id}"), Some(json!({}))).await;
    problem(&empty, StatusCode::BAD_REQUEST, "bad_request");

    let answer =
        admin.write(Method::PATCH, &format!("/api/v1/users/{tina_id}"), Some(json!({ "role": "admin" }))).await;
    assert_eq!((answer.status, answer.body["role"].as_str()), (StatusCode::OK, Some("admin")));
    assert_eq!(tina.get("/api/v1/users").await.status, StatusCode::OK, "promoted at once");
    app.stop().await;
}

async fn disabled_users_are_refused_everywhere(backend: &str) {
    let app = spawn_app(backend, test_config()).await;
    let admin = app.signed_in("admin", ADMIN_PASSWORD).await;
    let dan_id = admin.create_user("dan", "trader password 1", "trader").await;
    let dan = app.signed_in("dan", "trader password 1").await;
    let (token, _) = dan.token(&["read"]).await;
    let bot = app.program(&token);
    assert_eq!(bot.get("/api/v1/auth/me").await.status, StatusCode::OK);

    let path = format!("/api/v1/users/{dan_id}");
    let answer = admin.write(Method::PATCH, &path, Some(json!({ "disabled": true }))).await;
    assert_eq!((answer.status, &answer.body["disabled"]), (StatusCode::OK, &json!(true)));
    problem(&dan.get("/api/v1/auth/me").await, StatusCode::UNAUTHORIZED, "unauthorized");
    problem(&bot.get("/api/v1/auth/me").await, StatusCode::UNAUTHORIZED, "unauthorized");
    // The right password does not help, and the answer is the usual one.
    let (status, body) = app.browser().login("dan", "trader password 1").await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_credentials")));

    // Enabled again: the token works again, and dan can sign in.
    admin.write(Method::PATCH, &path, Some(json!({ "disabled": false }))).await;
    assert_eq!(bot.get("/api/v1/auth/me").await.status, StatusCode::OK);
    app.signed_in("dan", "trader password 1").await;
    app.stop().await;
}

async fn failed_logins_are_throttled(backend: &str) {
    let mut config = test_config();
    config.auth.login_attempts_per_minute = 3;
    let app = spawn_app(backend, config).await;
    let mut browser = app.browser();
    for _ in 0..3 {
        assert_eq!(browser.login("admin", "wrong password!").await.0, StatusCode::UNAUTHORIZED);
    }
    // Now even the right password waits.
    let answer = browser.post("/api/v1/auth/login", json!({ "username": "admin", "password": ADMIN_PASSWORD })).await;
    problem(&answer, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let retry: u64 = answer.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    // The same client IP is throttled for other names, and for names that do not exist.
    assert_eq!(browser.login("someone", "whatever it is").await.0, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(browser.login("Admin", ADMIN_PASSWORD).await.0, StatusCode::TOO_MANY_REQUESTS);
    let failed = app.audit_actions().await.iter().filter(|a| *a == "auth.login_failed").count();
    assert_eq!(failed, 3, "throttled attempts are not even checked");
    app.stop().await;
}

async fn malformed_input_is_refused_and_writes_nothing(backend: &str) {
    let app = spawn_app(backend, test_config()).await;
    let admin = app.signed_in("admin", ADMIN_PASSWORD).await;
    let audit_before = app.audit_actions().await.len();
    let users_before = app.store.user_count().await.unwrap();

    let raw =
        admin.request(Method::POST, "/api/v1/users").header("Content-Type", "application/json").body("{\"username\":");
    problem(&Session::send(raw).await, StatusCode::BAD_REQUEST, "malformed_json");
    let no_type = admin.request(Method::POST, "/api/v1/users").body("{}");
    problem(&Session::send(no_type).await, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");

    let cases = [
        (
            "unknown field",
            "/api/v1/users",
            json!({ "username": "x", "password": "long enough pw", "role": "viewer", "admin": true }),
            "admin",
        ),
        ("missing field", "/api/v1/users", json!({ "username": "x", "password": "long enough pw" }), "role"),
        ("wrong type", "/api/v1/users", json!({ "username": "x", "password": "long enough pw", "role": 5 }), "role"),
        (
            "unknown role",
            "/api/v1/users",
            json!({ "username": "x", "password": "long enough pw", "role": "root" }),
            "role",
        ),
        ("unknown scope", "/api/v1/tokens", json!({ "name": "t", "scopes": ["fly"] }), "scopes[0]"),
        ("scopes not a list", "/api/v1/tokens", json!({ "name": "t", "scopes": "read" }), "scopes"),
        ("no scopes", "/api/v1/tokens", json!({ "name": "t", "scopes": [] }), "scopes"),
        ("blank name", "/api/v1/tokens", json!({ "name": "  ", "scopes": ["read"] }), "name"),
        (
            "zero days",
            "/api/v1/tokens",
            json!({ "name": "t", "scopes": ["read"], "expires_in_days": 0 }),
            "expires_in_days",
        ),
        (
            "negative days",
            "/api/v1/tokens",
            json!({ "name": "t", "scopes": ["read"], "expires_in_days": -1 }),
            "expires_in_days",
        ),
        (
            "login extra",
            "/api/v1/auth/login",
            json!({ "username": "admin", "password": ADMIN_PASSWORD, "otp": 1 }),
            "otp",
        ),
        ("login type", "/api/v1/auth/login", json!({ "username": 7, "password": ADMIN_PASSWORD }), "username"),
    ];
    for (name, path, body, field) in cases {
        let answer = admin.post(path, body).await;
        assert!(answer.status.is_client_error(), "{name}: {}", answer.status);
        assert_eq!(answer.headers["content-type"], "application/problem+json", "{name}");
        assert_eq!(answer.body["field"], field, "{name}: {}", answer.body);
    }
    let users = app.store.users().await.unwrap();
    let patch =
        admin.write(Method::PATCH, &format!("/api/v1/users/{}", users[0].id), Some(json!({ "disabled": "yes" }))).await;
    assert_eq!(problem(&patch, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")["field"], "disabled");

    let queries = [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=abc", "limit"),
        ("before=x", "before"),
        ("before=-3", "before"),
        ("colour=red", "colour"),
    ];
    for (query, field) in queries {
        let answer = admin.get(&format!("/api/v1/audit?{query}")).await;
        assert_eq!(problem(&answer, StatusCode::BAD_REQUEST, "invalid_query")["field"], field, "{query}");
    }

    assert_eq!(app.store.user_count().await.unwrap(), users_before, "no user was created");
    assert!(app.store.tokens(users[0].id).await.unwrap().is_empty(), "no token was created");
    assert_eq!(app.audit_actions().await.len(), audit_before, "nothing was recorded");
    app.stop().await;
}

async fn audit_records_writes_and_pages(backend: &str) {
    let app = spawn_app(backend, test_config()).await;
    let admin = app.signed_in("admin", ADMIN_PASSWORD).await;
    let (token, token_id) = admin.token(&["read"]).await;
    let user_id = admin.create_user("olga", "viewer password 1", "viewer").await;

    let first = admin.get("/api/v1/audit?limit=2").await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let entries = first.body["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["action"], "user.create");
    assert_eq!(entries[0]["target"], format!("user:{user_id}"));
    assert_eq!(entries[0]["detail"]["username"], "olga");
    assert_eq!(entries[0]["ip"], "127.0.0.1");
    assert_eq!(entries[1]["action"], "token.create");
    assert_eq!(entries[1]["target"], format!("token:{token_id}"));
    let next = first.body["next_before"].as_i64().unwrap();
    assert_eq!(Some(next), entries[1]["id"].as_i64());

    let rest = admin.get(&format!("/api/v1/audit?before={next}&limit=500")).await;
    let actions: Vec<&str> =
        rest.body["entries"].as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
    // The login, then the first admin's creation at first start.
    assert_eq!(actions, ["auth.login", "user.create"]);
    assert!(rest.body.get("next_before").is_none());

    // No secret of any kind reaches the log.
    let all = app.store.audit_log(None, 500).await.unwrap();
    let text = serde_json::to_string(&all).unwrap();
    for secret in [token.as_str(), token.rsplit('_').next().unwrap(), ADMIN_PASSWORD, "viewer password 1"] {
        assert!(!text.contains(secret), "{secret} leaked into {text}");
    }
    app.stop().await;
}

async fn signup_only_when_open(backend: &str) {
    let closed = spawn_app(backend, test_config()).await;
    let answer =
        closed.browser().post("/api/v1/auth/signup", json!({ "username": "eve", "password": "a long password" })).await;
    problem(&answer, StatusCode::FORBIDDEN, "signup_disabled");
    assert_eq!(closed.store.user_count().await.unwrap(), 1);
    closed.stop().await;

    let mut config = test_config();
    config.auth.open_signup = true;
    let open = spawn_app(backend, config).await;
    let browser = open.browser();
    let answer = browser.post("/api/v1/auth/signup", json!({ "username": "eve", "password": "a long password" })).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    assert_eq!(
        (answer.body["role"].as_str(), answer.body["password_change_required"].as_bool()),
        (Some("trader"), Some(false))
    );
    let again = browser.post("/api/v1/auth/signup", json!({ "username": "EVE", "password": "a long password" })).await;
    problem(&again, StatusCode::CONFLICT, "username_taken");
    let weak = browser.post("/api/v1/auth/signup", json!({ "username": "fred", "password": "short" })).await;
    assert_eq!(problem(&weak, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")["field"], "password");
    let eve = open.signed_in("eve", "a long password").await;
    assert_eq!(eve.get("/api/v1/auth/me").await.body["scopes"], json!(["read", "trade"]));
    assert!(open.audit_actions().await.iter().any(|a| a == "user.signup"));
    open.stop().await;
}

async fn password_change_signs_out_other_sessions(backend: &str) {
    let app = spawn_app(backend, test_config()).await;
    let admin = app.signed_in("admin", ADMIN_PASSWORD).await;
    admin.create_user("paul", "first password 1", "trader").await;
    let laptop = app.signed_in("paul", "first password 1").await;
    let phone = app.signed_in("paul", "first password 1").await;
    let (token, _) = phone.token(&["read"]).await;

    let change = |current: &str, new: &str| json!({ "current_password": current, "new_password": new });
    let wrong = phone.post("/api/v1/auth/password", change("not my password", "second password 2")).await;
    assert_eq!(problem(&wrong, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")["field"], "current_password");
    let short = phone.post("/api/v1/auth/password", change("first password 1", "short")).await;
    assert_eq!(problem(&short, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")["field"], "new_password");
    let same = phone.post("/api/v1/auth/password", change("first password 1", "first password 1")).await;
    assert_eq!(problem(&same, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")["field"], "new_password");

    let answer = phone.post("/api/v1/auth/password", change("first password 1", "second password 2")).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", answer.body);
    assert_eq!(phone.get("/api/v1/auth/me").await.status, StatusCode::OK, "this session stays");
    problem(&laptop.get("/api/v1/auth/me").await, StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(app.program(&token).get("/api/v1/auth/me").await.status, StatusCode::OK, "tokens stay");
    assert_eq!(app.browser().login("paul", "first password 1").await.0, StatusCode::UNAUTHORIZED);
    let fresh = app.signed_in("paul", "second password 2").await;
    assert_eq!(fresh.get("/api/v1/auth/me").await.body["user"]["password_change_required"], false);
    assert!(app.audit_actions().await.iter().any(|a| a == "auth.password_change"));
    app.stop().await;
}

async fn sessions_are_listed_and_ended_per_user(backend: &str) {
    let app = spawn_app(backend, test_config()).await;
    let admin = app.signed_in("admin", ADMIN_PASSWORD).await;
    admin.create_user("quinn", "trader password 1", "trader").await;
    let first = app.signed_in("quinn", "trader password 1").await;
    let second = app.signed_in("quinn", "trader password 1").await;

    let listed = second.get("/api/v1/auth/sessions").await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let sessions = listed.body.as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    let other = sessions.iter().find(|s| s["current"] == false).unwrap()["id"].as_str().unwrap().to_string();
    let current = sessions.iter().find(|s| s["current"] == true).unwrap()["id"].as_str().unwrap().to_string();

    // Another user's session id is "not found", and stays.
    let admins = admin.get("/api/v1/auth/sessions").await;
    assert_eq!(admins.body.as_array().unwrap().len(), 1);
    problem(
        &admin.write(Method::DELETE, &format!("/api/v1/auth/sessions/{other}"), None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_eq!(first.get("/api/v1/auth/me").await.status, StatusCode::OK);

    let answer = second.write(Method::DELETE, &format!("/api/v1/auth/sessions/{other}"), None).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    problem(&first.get("/api/v1/auth/me").await, StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(second.get("/api/v1/auth/me").await.status, StatusCode::OK);

    let answer = second.write(Method::DELETE, &format!("/api/v1/auth/sessions/{current}"), None).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    assert!(answer.headers["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    problem(&second.get("/api/v1/auth/me").await, StatusCode::UNAUTHORIZED, "unauthorized");
    assert!(app.audit_actions().await.iter().any(|a| a == "auth.session_revoke"));
    app.stop().await;
}

async fn first_start_generates_a_one_time_admin_password(backend: &str) {
    let db = TestDatabase::create(backend, "auth").await;
    let store = db.store().await;
    let config = server::config::load(None, &[]).unwrap();
    assert!(config.auth.admin_password.is_none());
    let password = server::auth::ensure_admin(&store, &config).await.unwrap().expect("a generated password");
    assert!(password.len() >= server::auth::MIN_PASSWORD_LEN);
    let admin = store.user_by_name("admin").await.unwrap().unwrap();
    assert_eq!((admin.role, admin.password_change_required), (Role::Admin, true));
    assert!(server::auth::verify_password(&password, &admin.password_hash));
    assert!(admin.role.scopes().contains(Scope::Admin));
    // Only once: later starts leave the users alone.
    assert_eq!(server::auth::ensure_admin(&store, &config).await.unwrap(), None);
    assert_eq!(store.user_count().await.unwrap(), 1);
    store.close().await;
    db.remove().await;
}

/// Signs in without a cookie store; returns the session cookie (`tc_session=...`)
/// and the CSRF token, so a test can replay the cookie after the session ends.
async fn raw_login(app: &TestApp, username: &str, password: &str) -> (String, String) {
    let response = Client::new()
        .post(format!("{}/api/v1/auth/login", app.base))
        .json(&json!({ "username": username, "password": password }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = response.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let body: Value = response.json().await.unwrap();
    (cookie, body["csrf_token"].as_str().unwrap().to_string())
}

async fn with_cookie(app: &TestApp, method: Method, path: &str, cookie: &str, csrf: &str) -> Answer {
    let request = Client::new()
        .request(method, format!("{}{path}", app.base))
        .header("Cookie", cookie)
        .header("X-CSRF-Token", csrf);
    Session::send(request).await
}

/// Credentials are served from memory after their first use; every change
/// made through the API must still refuse or narrow them on the very next
/// request.
async fn cached_credentials_are_dropped_at_once(backend: &str) {
    let app = spawn_app(backend, test_config()).await;
    let admin = app.signed_in("admin", ADMIN_PASSWORD).await;
    let eve_id = admin.create_user("eve", "trader password 1", "trader").await;
    let eve = app.signed_in("eve", "trader password 1").await;
    let (token, token_id) = eve.token(&["read", "trade"]).await;
    let bot = app.program(&token);
    // Used twice each: the second use is answered from the cache.
    for _ in 0..2 {
        assert_eq!(eve.get("/api/v1/auth/me").await.status, StatusCode::OK);
        assert_eq!(bot.get("/api/v1/accounts").await.status, StatusCode::OK);
    }
    assert!(app.state.credentials.len() >= 3, "admin, eve and the bot are cached");

    // A role change narrows a cached token at once.
    let opened = bot.post("/api/v1/accounts", json!({ "name": "before" })).await;
    assert_eq!(opened.status, StatusCode::CREATED, "{}", opened.body);
    let path = format!("/api/v1/users/{eve_id}");
    assert_eq!(admin.write(Method::PATCH, &path, Some(json!({ "role": "viewer" }))).await.status, StatusCode::OK);
    problem(
        &bot.post("/api/v1/accounts", json!({ "name": "after" })).await,
        StatusCode::FORBIDDEN,
        "insufficient_scope",
    );
    assert_eq!(eve.get("/api/v1/auth/me").await.body["user"]["role"], "viewer");
    assert_eq!(admin.write(Method::PATCH, &path, Some(json!({ "role": "trader" }))).await.status, StatusCode::OK);
    assert_eq!(bot.post("/api/v1/accounts", json!({ "name": "again" })).await.status, StatusCode::CREATED);

    // A revoked token is refused at once, on every route.
    let answer = eve.write(Method::DELETE, &format!("/api/v1/tokens/{token_id}"), None).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    problem(&bot.get("/api/v1/auth/me").await, StatusCode::UNAUTHORIZED, "unauthorized");
    problem(&bot.get("/api/v1/accounts").await, StatusCode::UNAUTHORIZED, "unauthorized");

    // A signed-out session is refused at once even if its cookie is replayed.
    let (cookie, csrf) = raw_login(&app, "eve", "trader password 1").await;
    for _ in 0..2 {
        assert_eq!(with_cookie(&app, Method::GET, "/api/v1/auth/me", &cookie, &csrf).await.status, StatusCode::OK);
    }
    let out = with_cookie(&app, Method::POST, "/api/v1/auth/logout", &cookie, &csrf).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT, "{}", out.body);
    problem(
        &with_cookie(&app, Method::GET, "/api/v1/auth/me", &cookie, &csrf).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );

    // A disabled user's cached session and token are refused at once.
    let (token, _) = eve.token(&["read"]).await;
    let bot = app.program(&token);
    for _ in 0..2 {
        assert_eq!(eve.get("/api/v1/accounts").await.status, StatusCode::OK);
        assert_eq!(bot.get("/api/v1/accounts").await.status, StatusCode::OK);
    }
    assert_eq!(admin.write(Method::PATCH, &path, Some(json!({ "disabled": true }))).await.status, StatusCode::OK);
    problem(&eve.get("/api/v1/accounts").await, StatusCode::UNAUTHORIZED, "unauthorized");
    problem(&bot.get("/api/v1/accounts").await, StatusCode::UNAUTHORIZED, "unauthorized");
    // Enabled again, the token works again (the session was ended by disabling).
    assert_eq!(admin.write(Method::PATCH, &path, Some(json!({ "disabled": false }))).await.status, StatusCode::OK);
    assert_eq!(bot.get("/api/v1/accounts").await.status, StatusCode::OK);
    problem(&eve.get("/api/v1/accounts").await, StatusCode::UNAUTHORIZED, "unauthorized");
    app.stop().await;
}
