//! `tradecore doctor` on the real binary: a sound deployment passes (with at
//! most warnings), a weak one fails naming each problem.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::TempDir;
use serde_json::Value;

fn tradecore(dir: &TempDir) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tradecore"));
    cmd.current_dir(&dir.0).env_remove("TRADECORE_CONFIG");
    cmd
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A file only its owner may read, as secrets should be.
fn secret_file(path: &Path, contents: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, contents).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Each check of `doctor --json` as (name, status).
fn checks(out: &Output) -> Vec<(String, String)> {
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)));
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| (c["name"].as_str().unwrap().to_string(), c["status"].as_str().unwrap().to_string()))
        .collect()
}

/// Whether doctor must fail the disk-space check for `dir` on this machine
/// (under 1 GiB or 5 % free, its rule), measured here with `df` as well: the
/// tests run on machines whose disks they do not control.
fn host_disk_fails(dir: &Path) -> bool {
    let out = Command::new("df").arg("-Pk").arg(dir).output().unwrap();
    let shown = text(&out.stdout);
    let fields: Vec<&str> = shown.lines().nth(1).unwrap().split_whitespace().collect();
    let cap = fields.iter().rposition(|f| f.ends_with('%')).unwrap();
    let total: u64 = fields[cap - 3].parse().unwrap();
    let available: u64 = fields[cap - 1].parse().unwrap();
    available < 1024 * 1024 || available * 100 < total * 5
}

fn status_of<'a>(checks: &'a [(String, String)], name: &str) -> &'a str {
    checks.iter().find(|(n, _)| n == name).map_or("missing", |(_, s)| s.as_str())
}

#[test]
fn a_sound_deployment_passes() {
    let dir = TempDir::new("doctor-good");
    let database = format!("sqlite:{}", dir.path("data/tradecore.db").display());
    let migrated = tradecore(&dir).args(["migrate", "--database-url", &database]).output().unwrap();
    assert!(migrated.status.success(), "{}", text(&migrated.stderr));
    secret_file(&dir.path("admin-password"), "a long admin password for tests");
    secret_file(&dir.path("backup-key"), "5f1c7e0a9b3d2c4e8f6a1b0d3c5e7f9a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e\n");
    secret_file(&dir.path("credentials-key"), "c3a91f0e7d2b58a4e6f1093b7d5c2e8a4f6b1d9c3e7a5f2b8d0c4e6a9f1b3d57\n");
    // A certificate valid for a year, when openssl is there to make one.
    let (cert, key) = (dir.path("tls.crt"), dir.path("tls.key"));
    let openssl = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"])
        .args(["-subj", "/CN=trade.example.com", "-days", "365"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output();
    let tls = matches!(openssl, Ok(out) if out.status.success());
    if tls {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    } else {
        eprintln!("no openssl: the TLS checks are left out");
    }
    let doctor = |json: bool| {
        let mut cmd = tradecore(&dir);
        cmd.args(["doctor", "--database-url", &database])
            .env("TRADECORE_AUTH__ADMIN_PASSWORD_FILE", dir.path("admin-password"))
            .env("TRADECORE_BACKUP__KEY_FILE", dir.path("backup-key"))
            .env("TRADECORE_TRADING__CREDENTIALS_KEY_FILE", dir.path("credentials-key"))
            .env("TRADECORE_BACKUP__TARGET", format!("file://{}", dir.path("backups").display()));
        if tls {
            cmd.arg("--tls-cert").arg(&cert).arg("--tls-key").arg(&key);
        }
        if json {
            cmd.arg("--json");
        }
        cmd.output().unwrap()
    };

    let disk_fails = host_disk_fails(&dir.0);
    let out = doctor(false);
    let shown = text(&out.stdout);
    assert_eq!(out.status.success(), !disk_fails, "{shown}{}", text(&out.stderr));
    let lines: Vec<&str> = shown.lines().collect();
    let (summary, items) = lines.split_last().expect("output");
    assert!(summary.ends_with(if disk_fails { "1 failed" } else { "0 failed" }), "{shown}");
    for line in items {
        let fine = line.starts_with("PASS  ") || line.starts_with("WARN  ");
        if line.contains("  disk space ") {
            assert_eq!(fine, !disk_fails, "'{line}'");
        } else {
            assert!(fine, "'{line}' in\n{shown}");
        }
    }

    let out = doctor(true);
    assert_eq!(out.status.success(), !disk_fails, "{}", text(&out.stderr));
    let checks = checks(&out);
    for name in [
        "configuration",
        "admin password",
        "backup key",
        "venue credentials key",
        "secret sources",
        "database",
        "data directory",
        "backup target",
    ] {
        assert_eq!(status_of(&checks, name), "PASS", "{name}: {checks:?}");
    }
    for name in ["credentials", "server", "disk space", "clock", "latest backup"] {
        assert_ne!(status_of(&checks, name), "missing", "{name}: {checks:?}");
    }
    if tls {
        assert_eq!(status_of(&checks, "tls certificate"), "PASS", "{checks:?}");
        assert_eq!(status_of(&checks, "tls key"), "PASS", "{checks:?}");
    }
}

#[test]
fn a_weak_deployment_fails_naming_each_problem() {
    let dir = TempDir::new("doctor-bad");
    // A database file nothing has migrated.
    std::fs::write(dir.path("tradecore.db"), b"").unwrap();
    let database = format!("sqlite:{}", dir.path("tradecore.db").display());
    let missing_key = dir.path("nowhere/tls.key");
    let doctor = |json: bool| {
        let mut cmd = tradecore(&dir);
        cmd.args(["doctor", "--database-url", &database, "--tls-key"])
            .arg(&missing_key)
            .env("TRADECORE_ADMIN_PASSWORD", "password1234")
            // The backup key again: one leaked backup would unlock the venue secrets.
            .env("TRADECORE_BACKUP__KEY", "5f1c7e0a9b3d2c4e8f6a1b0d3c5e7f9a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e")
            .env(
                "TRADECORE_TRADING__CREDENTIALS_KEY",
                "5f1c7e0a9b3d2c4e8f6a1b0d3c5e7f9a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e",
            );
        if json {
            cmd.arg("--json");
        }
        cmd.output().unwrap()
    };

    // In the order of the report; disk space only on a machine short of it.
    let expected: Vec<&str> = if host_disk_fails(&dir.0) {
        vec!["admin password", "venue credentials key", "database", "disk space", "tls key"]
    } else {
        vec!["admin password", "venue credentials key", "database", "tls key"]
    };
    let out = doctor(false);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let shown = text(&out.stdout);
    for (name, why) in [
        ("admin password", "common"),
        ("venue credentials key", "is the backup key"),
        ("database", "tradecore migrate"),
        ("tls key", "cannot read"),
    ] {
        let line = shown
            .lines()
            .find(|l| l.starts_with(&format!("FAIL  {name} ")))
            .unwrap_or_else(|| panic!("no FAIL for {name}:\n{shown}"));
        assert!(line.contains(why), "{line}");
    }
    assert!(shown.contains("WARN  secret sources") && shown.contains("TRADECORE_ADMIN_PASSWORD_FILE"), "{shown}");
    let stderr = text(&out.stderr);
    let summary = format!("{} of", expected.len());
    assert!(stderr.contains(&summary) && stderr.contains(&expected.join(", ")), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let out = doctor(true);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], false);
    let checks = checks(&out);
    let failed: Vec<&str> = checks.iter().filter(|(_, s)| s == "FAIL").map(|(n, _)| n.as_str()).collect();
    // The first run migrated nothing: the database still lacks its migrations.
    assert_eq!(failed, expected, "{checks:?}");
}

#[test]
fn a_configuration_that_does_not_load_is_the_only_check() {
    let dir = TempDir::new("doctor-config");
    let out = tradecore(&dir).args(["doctor"]).env("TRADECORE_SERVER__LISTN", "0.0.0.0:1").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let shown = text(&out.stdout);
    assert!(shown.starts_with("FAIL  configuration") && shown.contains("TRADECORE_SERVER__LISTN"), "{shown}");
    assert_eq!(shown.lines().count(), 2, "the check and the summary: {shown}");
}
