//! Backups for real: online backups of a trading server's SQLite and
//! PostgreSQL databases, restored into empty databases that a server then
//! runs on; damaged, altered and foreign backups refused; and the same
//! against a real S3-compatible server (moto, from PyPI, in server mode).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{ADMIN_PASSWORD, User, open_account};
use reqwest::StatusCode;
use serde_json::{Value, json};
use server::backup::{Backups, Target};
use server::config::{BackupConfig, Secret};
use store::testing::TestDatabase;

const KEY: &str = "0c1d2e3f405162738495a6b7c8d9eafb0c1d2e3f405162738495a6b7c8d9eafb";
const OTHER_KEY: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

fn scratch(label: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tc-backup-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn local(dir: &std::path::Path, key: &str) -> Backups {
    let config = BackupConfig {
        target: Some(format!("file://{}", dir.display())),
        key: Some(Secret::new(key.to_string())),
        ..BackupConfig::default()
    };
    Backups::from_config(&config).unwrap().unwrap()
}

/// Places an order and returns its client order id if it was acknowledged.
async fn place(user: &User, account: i64, n: u32) -> Option<String> {
    let id = format!("bk{n}");
    let order = if n.is_multiple_of(3) {
        json!({"client_order_id": id, "symbol": "SPY", "side": "buy", "type": "limit", "quantity": "1", "price": "2"})
    } else {
        let side = if n.is_multiple_of(2) { "sell" } else { "buy" };
        json!({"client_order_id": id, "symbol": "BTC-USDT", "side": side, "type": "market", "quantity": "0.01"})
    };
    let (status, _) = user.post(&format!("/api/v1/accounts/{account}/orders"), order).await;
    (status == StatusCode::CREATED).then_some(id)
}

/// Every order of the account (all pages): client order id and status.
async fn client_order_ids(user: &User, account: i64) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut path = format!("/api/v1/accounts/{account}/orders?limit=500");
    loop {
        let (status, page) = user.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        out.extend(
            page["items"].as_array().unwrap().iter().map(|o| {
                (o["client_order_id"].as_str().unwrap().to_string(), o["status"].as_str().unwrap().to_string())
            }),
        );
        match page["next_before"].as_i64() {
            Some(before) => path = format!("/api/v1/accounts/{account}/orders?limit=500&before={before}"),
            None => break,
        }
    }
    out.sort();
    out
}

async fn a_backup_taken_while_trading_restores_every_acknowledged_order(backend: &str) {
    let db = TestDatabase::create(backend, "backup_online").await;
    let dir = scratch(&format!("online-{backend}"));
    let server = common::start(&db).await;
    let admin = User::sign_in(&server.base, "admin", ADMIN_PASSWORD).await;
    let account = open_account(&admin).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut acknowledged = Vec::new();
    for n in 0..30 {
        acknowledged.extend(place(&admin, account, n).await);
    }
    assert!(acknowledged.len() >= 25, "{acknowledged:?}");

    // Keep trading while the backup is taken.
    let trading = {
        let admin = User::sign_in(&server.base, "admin", ADMIN_PASSWORD).await;
        tokio::spawn(async move {
            let mut n = 1000;
            loop {
                place(&admin, account, n).await;
                n += 1;
            }
        })
    };
    let backups = local(&dir, KEY);
    let mut tables = 0;
    let manifest = backups
        .create(&server.started.state.runtime.store, &mut |step| {
            if matches!(step, server::backup::Step::Table { .. }) {
                tables += 1;
            }
        })
        .await
        .unwrap();
    trading.abort();
    assert!(tables > 10, "progress was reported");
    assert_eq!(manifest.backend, backend);
    assert!(manifest.rows > 30 && manifest.data.bytes > 0, "{manifest:?}");
    server.stop().await;

    // The listing and a verification: the journal replays to the read models.
    let listed = backups.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].as_ref().unwrap().name, manifest.name);
    let verified = backups.verify(&manifest.name, &mut |_| {}).await.unwrap();
    assert_eq!((verified.rows, verified.accounts), (manifest.rows, 1));

    // Restored into an empty database, the server comes back with every
    // order acknowledged before the backup began.
    let fresh = TestDatabase::create(backend, "backup_restored").await;
    let target = fresh.store().await;
    let restored = backups.restore(&manifest.name, &target, &mut |_| {}).await.unwrap();
    assert_eq!(restored.name, manifest.name);
    target.close().await;
    let again = common::start(&fresh).await;
    let admin = User::sign_in(&again.base, "admin", ADMIN_PASSWORD).await;
    let orders = client_order_ids(&admin, account).await;
    for id in &acknowledged {
        assert!(orders.iter().any(|(o, _)| o == id), "{id} is back");
    }
    let (status, summary) = admin.get(&format!("/api/v1/accounts/{account}")).await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    // And it trades on from there (a buy: whether a sell is covered depends
    // on where the trading above was stopped).
    let buy = json!({"client_order_id": "bk-after", "symbol": "BTC-USDT", "side": "buy", "type": "market", "quantity": "0.01"});
    let (status, body) = admin.post(&format!("/api/v1/accounts/{account}/orders"), buy).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    again.stop().await;
    fresh.remove().await;
    db.remove().await;
    let _ = std::fs::remove_dir_all(&dir);
}

async fn damaged_altered_and_foreign_backups_are_refused(backend: &str) {
    let db = TestDatabase::create(backend, "backup_refused").await;
    let dir = scratch(&format!("refused-{backend}"));
    let server = common::start(&db).await;
    let admin = User::sign_in(&server.base, "admin", ADMIN_PASSWORD).await;
    let account = open_account(&admin).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    place(&admin, account, 1).await.unwrap();
    let backups = local(&dir, KEY);
    let manifest = backups.create(&server.started.state.runtime.store, &mut |_| {}).await.unwrap();

    // Another key reads nothing.
    let foreign = local(&dir, OTHER_KEY);
    let error = foreign.verify(&manifest.name, &mut |_| {}).await.unwrap_err();
    assert!(error.contains("another key"), "{error}");

    // Restoring into a database in use is refused, and changes nothing.
    let store = &server.started.state.runtime.store;
    let before = store.accounts().await.unwrap().len();
    let error = backups.restore(&manifest.name, store, &mut |_| {}).await.unwrap_err();
    assert!(error.contains("not empty"), "{error}");
    assert_eq!(store.accounts().await.unwrap().len(), before);
    server.stop().await;

    // A flipped byte in the data.
    let data = dir.join(&manifest.data.object);
    let mut bytes = std::fs::read(&data).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&data, &bytes).unwrap();
    let error = backups.verify(&manifest.name, &mut |_| {}).await.unwrap_err();
    assert!(error.contains("checksum"), "{error}");

    // A manifest edited to match: its signature gives it away.
    let manifest_path = dir.join(format!("{}.manifest.json", manifest.name));
    let mut edited: Value = serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    edited["data"]["sha256"] = json!(server::auth::to_hex(&<sha2::Sha256 as sha2::Digest>::digest(&bytes)));
    std::fs::write(&manifest_path, serde_json::to_vec(&edited).unwrap()).unwrap();
    let error = backups.verify(&manifest.name, &mut |_| {}).await.unwrap_err();
    assert!(error.contains("signature"), "{error}");
    let listed = backups.list().await.unwrap();
    assert!(listed[0].as_ref().is_err_and(|e| e.contains("signature")), "{listed:?}");
    db.remove().await;
    let _ = std::fs::remove_dir_all(&dir);
}

both_backends!(
    a_backup_taken_while_trading_restores_every_acknowledged_order,
    damaged_altered_and_foreign_backups_are_refused
);

/// moto's S3 server on a free port, stopped when dropped.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Moto answers the first few requests unsigned, then checks every
/// request's SigV4 signature against the IAM keys it has: enough to set up
/// a bucket and a user.
const UNSIGNED_SETUP_REQUESTS: usize = 4;

/// `moto_server` (`pip install "moto[server]"`; `scripts/test` installs it),
/// checking signatures after [`UNSIGNED_SETUP_REQUESTS`] when `signed`.
async fn moto(signed: bool) -> Moto {
    let program = std::env::var("TRADECORE_TEST_MOTO").unwrap_or_else(|_| "moto_server".to_string());
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut command = Command::new(&program);
    command.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
    if signed {
        command.env("INITIAL_NO_AUTH_ACTION_COUNT", UNSIGNED_SETUP_REQUESTS.to_string());
    }
    let child =
        command.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap_or_else(|e| {
            panic!("cannot start {program} (pip install \"moto[server]\"; scripts/test does): {e}")
        });
    let moto = Moto { child, endpoint: format!("http://127.0.0.1:{port}") };
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return moto;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("moto did not answer at {}", moto.endpoint);
}

fn xml_value(xml: &str, tag: &str) -> String {
    let start = xml.find(&format!("<{tag}>")).unwrap_or_else(|| panic!("no {tag} in {xml}")) + tag.len() + 2;
    let end = xml[start..].find(&format!("</{tag}>")).unwrap() + start;
    xml[start..end].to_string()
}

fn form_body(pairs: &[(&str, &str)]) -> String {
    let encode = |text: &str| {
        text.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect::<String>()
    };
    pairs.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect::<Vec<_>>().join("&")
}

/// Makes the bucket, and a user allowed everything; returns its keys.
async fn moto_bucket_and_user(moto: &Moto, bucket: &str) -> (String, String) {
    let http = reqwest::Client::new();
    let made = http.put(format!("{}/{bucket}", moto.endpoint)).send().await.unwrap();
    assert!(made.status().is_success(), "{}", made.status());
    // Unsigned, but routed to IAM by the scope of its credential.
    let iam = |form: &[(&str, &str)]| {
        http.post(format!("{}/", moto.endpoint))
            .header("authorization", "AWS4-HMAC-SHA256 Credential=SETUP/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form_body(&[form, &[("Version", "2010-05-08")]].concat()))
            .send()
    };
    let user = iam(&[("Action", "CreateUser"), ("UserName", "tradecore")]).await.unwrap();
    assert!(user.status().is_success(), "{}", user.text().await.unwrap());
    let keys = iam(&[("Action", "CreateAccessKey"), ("UserName", "tradecore")]).await.unwrap().text().await.unwrap();
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
    let allowed = iam(&[
        ("Action", "PutUserPolicy"),
        ("UserName", "tradecore"),
        ("PolicyName", "all"),
        ("PolicyDocument", policy),
    ])
    .await
    .unwrap();
    assert!(allowed.status().is_success(), "{}", allowed.text().await.unwrap());
    (xml_value(&keys, "AccessKeyId"), xml_value(&keys, "SecretAccessKey"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_to_a_real_s3_compatible_server() {
    let checked = moto(true).await;
    // Buckets are made by their owner, not by tradecore.
    let (access_key, secret_key) = moto_bucket_and_user(&checked, "tradecore-backups").await;
    // No prefix here: moto checks the signature of a query holding `%2F` (a
    // listing under `prod/db/`) against the decoded `/` and refuses it,
    // though AWS S3 (and botocore's own signer) encode it as we do. The
    // prefix is tried on an unchecked server below.
    let s3 = |secret: &str| BackupConfig {
        target: Some(format!("s3://tradecore-backups?endpoint={}&region=eu-central-1", checked.endpoint)),
        key: Some(Secret::new(KEY.to_string())),
        s3_access_key_id: Some(Secret::new(access_key.clone())),
        s3_secret_access_key: Some(Secret::new(secret.to_string())),
        ..BackupConfig::default()
    };
    // Moto checks signatures: a wrong secret is refused.
    let forged = Backups::from_config(&s3("not-the-secret")).unwrap().unwrap();
    let error = forged.list().await.unwrap_err();
    assert!(error.contains("403") && error.contains("SignatureDoesNotMatch"), "{error}");
    let config = s3(&secret_key);
    let backups = Backups::from_config(&config).unwrap().unwrap();
    assert!(matches!(backups.target(), Target::S3(_)));
    assert!(backups.list().await.unwrap().is_empty());

    let db = TestDatabase::create("sqlite", "backup_s3").await;
    let server = common::start(&db).await;
    let admin = User::sign_in(&server.base, "admin", ADMIN_PASSWORD).await;
    let account = open_account(&admin).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let acknowledged: Vec<String> = {
        let mut ids = Vec::new();
        for n in 0..10 {
            ids.extend(place(&admin, account, n).await);
        }
        ids
    };
    let manifest = backups.create(&server.started.state.runtime.store, &mut |_| {}).await.unwrap();
    server.stop().await;

    // Stored under the prefix, listed, verified.
    let objects = backups.target().list().await.unwrap();
    assert_eq!(objects, [format!("{}.dump.gz.enc", manifest.name), format!("{}.manifest.json", manifest.name)]);
    assert_eq!(backups.latest().await.unwrap(), manifest.name);
    let verified = backups.verify(&manifest.name, &mut |_| {}).await.unwrap();
    assert_eq!(verified.accounts, 1);

    // Restored into PostgreSQL from S3: a SQLite backup moves across.
    let fresh = TestDatabase::create("postgres", "backup_s3_restored").await;
    let target = fresh.store().await;
    backups.restore(&manifest.name, &target, &mut |_| {}).await.unwrap();
    target.close().await;
    let again = common::start(&fresh).await;
    let admin = User::sign_in(&again.base, "admin", ADMIN_PASSWORD).await;
    let orders = client_order_ids(&admin, account).await;
    for id in &acknowledged {
        assert!(orders.iter().any(|(o, _)| o == id), "{id} is back");
    }
    again.stop().await;
    fresh.remove().await;

    // Retention: copies dated a day, 40 days and 200 days ago (the first of
    // their week and month), and one 400 days ago.
    let data = backups.target().get(&format!("{}.dump.gz.enc", manifest.name)).await.unwrap();
    let manifest_bytes = backups.target().get(&format!("{}.manifest.json", manifest.name)).await.unwrap();
    let now = server::accounts::wall_clock();
    let dated = |days: i64| {
        let t = model::Timestamp::from_nanos(now.as_nanos() - days * model::time::NANOS_PER_DAY);
        let (y, m, d) = model::time::civil_from_days(t.as_nanos().div_euclid(model::time::NANOS_PER_DAY));
        format!("tradecore-{y:04}{m:02}{d:02}T020000Z")
    };
    for days in [1, 40, 200, 400] {
        backups.target().put(&format!("{}.dump.gz.enc", dated(days)), data.clone()).await.unwrap();
        backups.target().put(&format!("{}.manifest.json", dated(days)), manifest_bytes.clone()).await.unwrap();
    }
    let would = backups.prune(now, true).await.unwrap();
    assert!(would.contains(&dated(400)), "{would:?}");
    assert!(!would.contains(&dated(1)) && !would.contains(&manifest.name), "{would:?}");
    assert_eq!(backups.target().list().await.unwrap().len(), 10, "a dry run deletes nothing");
    let gone = backups.prune(now, false).await.unwrap();
    assert_eq!(gone, would);
    let left = backups.target().list().await.unwrap();
    assert!(!left.iter().any(|n| n.starts_with(&dated(400))), "{left:?}");
    assert!(left.contains(&format!("{}.manifest.json", dated(1))), "{left:?}");

    // Under a prefix, on a server that does not check signatures.
    let open = moto(false).await;
    assert!(
        reqwest::Client::new().put(format!("{}/shared", open.endpoint)).send().await.unwrap().status().is_success()
    );
    let prefixed =
        BackupConfig { target: Some(format!("s3://shared/prod/db?endpoint={}", open.endpoint)), ..s3(&secret_key) };
    let prefixed = Backups::from_config(&prefixed).unwrap().unwrap();
    let store = db.store().await;
    let manifest = prefixed.create(&store, &mut |_| {}).await.unwrap();
    store.close().await;
    assert_eq!(prefixed.latest().await.unwrap(), manifest.name);
    let raw = reqwest::get(format!("{}/shared?list-type=2", open.endpoint)).await.unwrap().text().await.unwrap();
    assert!(raw.contains(&format!("<Key>prod/db/{}.manifest.json</Key>", manifest.name)), "{raw}");
    prefixed.verify(&manifest.name, &mut |_| {}).await.unwrap();
    db.remove().await;
}
