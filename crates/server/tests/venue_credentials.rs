//! Venue credentials over the real API and a real database: linked secrets
//! are stored only as ciphertext and never come back out; bad input names
//! its field and stores nothing; users see only their own; without the key
//! nothing can be linked; a server with another key says so.

mod common;

use common::{ADMIN_PASSWORD, User, trader};
use reqwest::StatusCode;
use serde_json::{Value, json};
use store::testing::TestDatabase;

const KEY: &str = "8f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8";
const OTHER_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const API_KEY: &str = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";
const API_SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";
const REFRESH_TOKEN: &str = "rt-4f0c2e9a1b7d-very-secret-refresh-token";
const CLIENT_SECRET: &str = "cs-9d8c7b6a5f4e-very-secret-client-secret";

/// Every text column of the credentials table and the audit log, as stored.
async fn stored_text(db: &TestDatabase) -> String {
    let store = db.store().await;
    let mut out = String::new();
    for user in 1..=3 {
        for row in store.venue_credentials(user).await.unwrap() {
            out.push_str(&format!("{} {} {} {} {}\n", row.venue, row.label, row.key_hint, row.key_id, row.sealed));
        }
    }
    let audit = store.audit_log(None, 1000).await.unwrap();
    out.push_str(&format!("{audit:?}"));
    store.close().await;
    out
}

async fn credentials_are_sealed_and_never_returned(backend: &str) {
    let db = TestDatabase::create(backend, "venue_creds").await;
    let server = common::start_with(&db, &[("TRADECORE_TRADING__CREDENTIALS_KEY", KEY)]).await;
    let admin = User::sign_in(&server.base, "admin", ADMIN_PASSWORD).await;

    let (status, binance) = admin
        .post(
            "/api/v1/venue-credentials",
            json!({"venue": "binance", "label": "main", "api_key": API_KEY, "api_secret": API_SECRET}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{binance}");
    assert_eq!(binance["environment"], "testnet", "testnet unless asked otherwise");
    assert_eq!(binance["key_hint"], "…Eh8A");
    assert_eq!(binance["readable"], true);
    let (status, tasty) = admin
        .post(
            "/api/v1/venue-credentials",
            json!({"venue": "tastytrade", "label": "ira", "client_id": "client-1234-abcd",
                   "client_secret": CLIENT_SECRET, "refresh_token": REFRESH_TOKEN}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{tasty}");
    assert_eq!(tasty["environment"], "sandbox");

    // Listed, but no answer ever holds a secret.
    let (status, list) = admin.get("/api/v1/venue-credentials").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 2);
    let answers = format!("{binance}{tasty}{list}");
    for secret in [API_SECRET, REFRESH_TOKEN, CLIENT_SECRET, API_KEY] {
        assert!(!answers.contains(secret), "a secret came back: {answers}");
    }
    // Nor is one stored in the clear, in the table or the audit log.
    let stored = stored_text(&db).await;
    for secret in [API_SECRET, REFRESH_TOKEN, CLIENT_SECRET, API_KEY] {
        assert!(!stored.contains(secret), "a secret is stored in the clear: {stored}");
    }
    assert!(stored.contains("venue_credential.link"), "linking is audited");

    // The same label twice is refused and stores nothing.
    let (status, problem) = admin
        .post(
            "/api/v1/venue-credentials",
            json!({"venue": "binance", "label": "main", "api_key": "abc123", "api_secret": "x"}),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str(), problem["field"].as_str()),
        (StatusCode::CONFLICT, Some("label_taken"), Some("label"))
    );

    // Bad input names the field and stores nothing.
    let bad: [(Value, &str); 8] = [
        (json!({"venue": "binance", "label": "x", "api_key": API_KEY}), "api_secret"),
        (json!({"venue": "binance", "label": "x", "api_secret": API_SECRET}), "api_key"),
        (json!({"venue": "binance", "label": "x", "api_key": "has spaces in it", "api_secret": "s"}), "api_key"),
        (json!({"venue": "binance", "label": "x", "api_key": API_KEY, "private_key": "not a pem"}), "private_key"),
        (
            json!({"venue": "binance", "label": "x", "environment": "sandbox", "api_key": API_KEY, "api_secret": "s"}),
            "environment",
        ),
        (json!({"venue": "binance", "label": " ", "api_key": API_KEY, "api_secret": "s"}), "label"),
        (json!({"venue": "tastytrade", "label": "x", "client_id": "c", "client_secret": "s"}), "refresh_token"),
        (
            json!({"venue": "tastytrade", "label": "x", "api_key": API_KEY, "client_id": "c", "client_secret": "s", "refresh_token": "r"}),
            "api_key",
        ),
    ];
    for (body, field) in bad {
        let (status, problem) = admin.post("/api/v1/venue-credentials", body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body} -> {problem}");
        assert_eq!(problem["field"], field, "{body} -> {problem}");
    }
    let (status, problem) = admin.post("/api/v1/venue-credentials", json!({"venue": "kraken", "label": "x"})).await;
    assert!(status.is_client_error(), "{problem}");
    let (_, list) = admin.get("/api/v1/venue-credentials").await;
    assert_eq!(list.as_array().unwrap().len(), 2, "nothing was stored by the refusals");

    // Another user sees none of them and cannot delete them. A trader's
    // API token (read, trade) cannot manage venue secrets; their session can.
    let tom = trader(&server, &admin, "tom").await;
    let (_, theirs) = tom.get("/api/v1/venue-credentials").await;
    assert_eq!(theirs, json!([]));
    let id = binance["id"].as_i64().unwrap();
    let (status, problem) = tom.delete(&format!("/api/v1/venue-credentials/{id}")).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::FORBIDDEN, Some("insufficient_scope")), "{problem}");
    let browser = reqwest::Client::builder().cookie_store(true).build().unwrap();
    let login = common::session(&browser, &server.base, "tom", "tom's long password").await;
    let csrf = login["csrf_token"].as_str().unwrap();
    let linked = browser
        .post(format!("{}/api/v1/venue-credentials", server.base))
        .header("X-CSRF-Token", csrf)
        .json(&json!({"venue": "binance", "label": "main", "api_key": API_KEY, "api_secret": API_SECRET}))
        .send()
        .await
        .unwrap();
    assert_eq!(linked.status(), StatusCode::CREATED, "the same label is free for another user");
    let gone = browser
        .delete(format!("{}/api/v1/venue-credentials/{id}", server.base))
        .header("X-CSRF-Token", csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::NOT_FOUND, "another user's credential is not found");
    let (_, theirs) = tom.get("/api/v1/venue-credentials").await;
    assert_eq!(theirs.as_array().unwrap().len(), 1, "{theirs}");
    let (status, _) = admin
        .post("/api/v1/users", json!({"username": "vera", "password": "viewer password 1", "role": "viewer"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let viewer = reqwest::Client::builder().cookie_store(true).build().unwrap();
    let login = common::session(&viewer, &server.base, "vera", "viewer password 1").await;
    let refused = viewer
        .post(format!("{}/api/v1/venue-credentials", server.base))
        .header("X-CSRF-Token", login["csrf_token"].as_str().unwrap())
        .json(&json!({"venue": "binance", "label": "v", "api_key": API_KEY, "api_secret": "s"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN, "a viewer cannot link");

    // Unlinked by its owner.
    let (status, _) = admin.delete(&format!("/api/v1/venue-credentials/{id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, list) = admin.get("/api/v1/venue-credentials").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    server.stop().await;

    // Started with another key: still listed, marked unreadable.
    let server = common::start_with(&db, &[("TRADECORE_TRADING__CREDENTIALS_KEY", OTHER_KEY)]).await;
    let admin = User::sign_in(&server.base, "admin", ADMIN_PASSWORD).await;
    let (_, list) = admin.get("/api/v1/venue-credentials").await;
    assert_eq!(list[0]["readable"], false, "{list}");
    server.stop().await;

    // Without a key, nothing can be linked, and the answer says what to do.
    let server = common::start(&db).await;
    let admin = User::sign_in(&server.base, "admin", ADMIN_PASSWORD).await;
    let (status, problem) = admin
        .post(
            "/api/v1/venue-credentials",
            json!({"venue": "binance", "label": "new", "api_key": API_KEY, "api_secret": "s"}),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::CONFLICT, Some("credentials_key_missing")),
        "{problem}"
    );
    assert!(problem["detail"].as_str().unwrap().contains("trading.credentials_key"), "{problem}");
    server.stop().await;
    db.remove().await;
}

both_backends!(credentials_are_sealed_and_never_returned);
