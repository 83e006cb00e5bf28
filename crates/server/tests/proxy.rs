//! Behind a reverse proxy (nginx, an ingress): with `server.trusted_proxies`
//! the client named by `X-Forwarded-For` is who the rate limit, the sign-in
//! throttle and the audit log see; without it, or from anyone else, the
//! header changes nothing. Over real HTTP on a real port.

mod common;

use reqwest::StatusCode;
use serde_json::json;
use store::testing::TestDatabase;

async fn login_from(base: &str, forwarded_for: &str, username: &str, password: &str) -> StatusCode {
    reqwest::Client::new()
        .post(format!("{base}/api/v1/auth/login"))
        .header("x-forwarded-for", forwarded_for)
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap()
        .status()
}

async fn failed_login_ips(server: &common::Server) -> Vec<String> {
    let audit = server.started.state.runtime.store.audit_log(None, 100).await.unwrap();
    audit.into_iter().filter(|a| a.action == "auth.login_failed").filter_map(|a| a.ip).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxy_names_the_client() {
    let db = TestDatabase::create("sqlite", "proxy_trusted").await;
    let server = common::start_with(
        &db,
        &[
            ("TRADECORE_SERVER__TRUSTED_PROXIES", "127.0.0.1, 10.0.0.0/8"),
            ("TRADECORE_AUTH__LOGIN_ATTEMPTS_PER_MINUTE", "3"),
        ],
    )
    .await;
    // A forged left part is passed over: the right-most untrusted address counts.
    assert_eq!(
        login_from(&server.base, "6.6.6.6, 198.51.100.7, 10.0.0.9", "admin", "wrong").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(failed_login_ips(&server).await, ["198.51.100.7"]);
    // Each client has its own sign-in throttle: one guessing (at other
    // users' passwords) is locked out, not everyone behind the proxy.
    for name in ["mallory", "trudy"] {
        assert_eq!(login_from(&server.base, "198.51.100.7", name, "wrong").await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(login_from(&server.base, "198.51.100.7", "eve", "wrong").await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(login_from(&server.base, "203.0.113.50", "admin", common::ADMIN_PASSWORD).await, StatusCode::OK);
    server.stop().await;
    db.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_trust_the_header_changes_nothing() {
    let db = TestDatabase::create("sqlite", "proxy_untrusted").await;
    let server = common::start_with(&db, &[("TRADECORE_RATE_LIMIT__PER_IP_PER_MINUTE", "4")]).await;
    assert_eq!(login_from(&server.base, "198.51.100.7", "admin", "wrong").await, StatusCode::UNAUTHORIZED);
    assert_eq!(failed_login_ips(&server).await, ["127.0.0.1"]);
    // Changing the header does not buy a fresh rate-limit bucket.
    let http = reqwest::Client::new();
    let mut statuses = Vec::new();
    for n in 0..4 {
        let answer = http
            .get(format!("{}/api/v1/instruments", server.base))
            .header("x-forwarded-for", format!("192.0.2.{n}"))
            .send()
            .await
            .unwrap();
        statuses.push(answer.status());
    }
    assert!(statuses.contains(&StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
    server.stop().await;
    db.remove().await;
}
