//! What the live-account tests share: a server pointed at local venue
//! fakes, and polling helpers over the API.

use std::time::Duration;

use model::Money;
use reqwest::StatusCode;
use serde_json::{Value, json};
use store::testing::TestDatabase;

use super::{Server, User};

/// The key venue credentials are sealed with in these tests.
pub const CREDENTIALS_KEY: &str = "8f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8";

/// A server whose venues are at `venue_urls` (`TRADECORE_VENUES__*` pairs),
/// settling unknown outcomes quickly and reconciling only on start and
/// when asked.
pub async fn start(db: &TestDatabase, venue_urls: &[(&str, &str)]) -> Server {
    let mut settings = vec![
        ("TRADECORE_TRADING__CREDENTIALS_KEY", CREDENTIALS_KEY),
        ("TRADECORE_VENUES__SETTLE_DELAY_MS", "200"),
        ("TRADECORE_VENUES__RECONCILE_SECONDS", "0"),
    ];
    settings.extend_from_slice(venue_urls);
    super::start_with(db, &settings).await
}

/// Waits until the account's venue was reconciled at least once.
pub async fn reconciled(user: &User, account: i64) -> Value {
    for _ in 0..100 {
        let (status, venue) = user.get(&format!("/api/v1/accounts/{account}/venue")).await;
        assert_eq!(status, StatusCode::OK, "{venue}");
        if !venue["last_reconciled"].is_null() {
            return venue;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the account was never reconciled");
}

pub async fn order_status(user: &User, account: i64, order: i64) -> String {
    let (status, body) = user.get(&format!("/api/v1/accounts/{account}/orders/{order}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["status"].as_str().unwrap().to_string()
}

/// Polls until the order has `want` status; panics with what it had.
pub async fn wait_status(user: &User, account: i64, order: i64, want: &str) {
    let mut last = String::new();
    for _ in 0..200 {
        last = order_status(user, account, order).await;
        if last == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("order {order} stayed {last}, never {want}");
}

pub async fn fills(user: &User, account: i64) -> Vec<Value> {
    let (status, page) = user.get(&format!("/api/v1/accounts/{account}/fills?limit=100")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["items"].as_array().unwrap().clone()
}

/// The account's cash in `currency` (zero when it holds none).
pub async fn cash(user: &User, account: i64, currency: &str) -> Money {
    let (status, balances) = user.get(&format!("/api/v1/accounts/{account}/balances")).await;
    assert_eq!(status, StatusCode::OK, "{balances}");
    let row = balances.as_array().unwrap().iter().find(|b| b[0] == currency).cloned();
    row.map_or(Money::ZERO, |row| Money::parse(row[1].as_str().unwrap()).unwrap())
}

pub async fn submit(user: &User, account: i64, body: Value) -> (StatusCode, Value) {
    user.post(&format!("/api/v1/accounts/{account}/orders"), body).await
}

pub async fn reconcile(user: &User, account: i64) -> Value {
    let (status, summary) = user.post(&format!("/api/v1/accounts/{account}/reconcile"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    summary
}
