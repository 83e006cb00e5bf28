//! `tradecore secrets` on the real binary: a new key is 32 random bytes; a
//! rotation re-encrypts every linked venue credential so a server on the
//! new key reads them; a wrong current key or a bad new key fails and
//! changes nothing.

mod common;

use common::{Server, TempDir};
use serde_json::{Value, json};

const PASSWORD: &str = "a long admin password for tests";

fn new_key() -> String {
    let out = common::tradecore().args(["secrets", "new-key"]).output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

async fn credentials(http: &reqwest::Client, base: &str) -> Value {
    http.get(format!("{base}/api/v1/venue-credentials")).send().await.unwrap().json().await.unwrap()
}

fn start(database: &str, key: &str) -> Server {
    Server::start(&[
        ("TRADECORE_DATABASE__URL", database),
        ("TRADECORE_AUTH__ADMIN_PASSWORD", PASSWORD),
        ("TRADECORE_TRADING__CREDENTIALS_KEY", key),
    ])
}

fn rotate(database: &str, key: &str, new_key_file: &std::path::Path) -> std::process::Output {
    common::tradecore()
        .args(["secrets", "rotate", "--new-key-file"])
        .arg(new_key_file)
        .env("TRADECORE_DATABASE__URL", database)
        .env("TRADECORE_TRADING__CREDENTIALS_KEY", key)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_re_encrypts_every_credential_or_none() {
    let dir = TempDir::new("secrets-rotate");
    let database = format!("sqlite:{}", dir.0.join("tradecore.db").display());
    let (old, new, wrong) = (new_key(), new_key(), new_key());
    assert_eq!(old.len(), 64);
    assert!(old.bytes().all(|b| b.is_ascii_hexdigit()) && old != new, "random hex keys");

    let server = start(&database, &old);
    let base = server.base.clone();
    let (http, csrf) = common::sign_in(&base, "admin", PASSWORD).await;
    for (label, body) in [
        (
            "spot",
            json!({"venue": "binance", "label": "spot", "api_key": "AbCdEf0123456789", "api_secret": "binance-secret"}),
        ),
        (
            "ira",
            json!({"venue": "tastytrade", "label": "ira", "client_id": "client-0001",
                   "client_secret": "tasty-client-secret", "refresh_token": "tasty-refresh-token"}),
        ),
    ] {
        let response = http
            .post(format!("{base}/api/v1/venue-credentials"))
            .header("X-CSRF-Token", &csrf)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{label}: {}", response.text().await.unwrap_or_default());
    }
    server.stop();

    // A bad new key, and a wrong current key: refused, nothing changes.
    let bad = dir.0.join("bad.key");
    std::fs::write(&bad, "not a key\n").unwrap();
    let out = rotate(&database, &old, &bad);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("must be 32 bytes"), "{out:?}");
    let new_file = dir.0.join("new.key");
    std::fs::write(&new_file, format!("{new}\n")).unwrap();
    let out = rotate(&database, &wrong, &new_file);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("sealed under another key"), "{stderr}");
    let server = start(&database, &old);
    let (http, _) = common::sign_in(&server.base, "admin", PASSWORD).await;
    let listed = credentials(&http, &server.base).await;
    assert!(listed.as_array().unwrap().iter().all(|c| c["readable"] == true), "still under the old key: {listed}");
    server.stop();

    // The rotation: every credential moves to the new key at once.
    let out = rotate(&database, &old, &new_file);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("re-encrypted 2 venue credential(s)"), "{stdout}");

    // The old key no longer reads them; the new one does.
    let server = start(&database, &old);
    let (http, _) = common::sign_in(&server.base, "admin", PASSWORD).await;
    let listed = credentials(&http, &server.base).await;
    assert!(listed.as_array().unwrap().iter().all(|c| c["readable"] == false), "{listed}");
    server.stop();
    let server = start(&database, &new);
    let (http, _) = common::sign_in(&server.base, "admin", PASSWORD).await;
    let listed = credentials(&http, &server.base).await;
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert!(listed.as_array().unwrap().iter().all(|c| c["readable"] == true), "{listed}");
    server.stop();

    // Rotating to the key already configured is refused with the way out.
    let out = rotate(&database, &new, &new_file);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("secrets new-key"), "{out:?}");
}
