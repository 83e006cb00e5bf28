//! `tradecore doctor`: a pre-deployment checklist.
//!
//! Each check gives one [`Check`]: PASS, WARN or FAIL with a short reason.
//! The checks only read: they never migrate or create a database, and
//! write nothing but probe files they remove again (to see that a directory
//! is writable). Opening an existing SQLite file does put it in WAL mode, as
//! the server would. A configuration that does not load is the one
//! FAIL that stops the rest, since every other check reads it.
//!
//! What is checked: the configuration; the first admin's password and the
//! backup key (strong enough); where secrets come from (a `_FILE` or a file
//! only its owner reads, rather than the plain environment or the command
//! line); redis and PostgreSQL credentials; cookies against the public
//! origins; the database (reachable, migrated) and for SQLite its directory
//! (writable); free disk space; the clock; TLS files given on the command
//! line; the backup target and the age of the latest backup.

use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use model::Timestamp;
use serde::Serialize;
use store::{Store, StoreOptions};

use crate::backup::{Backups, Target, crypto};
use crate::config::{Config, Source, Sources};
use crate::venue_credentials::CredentialsKey;

/// How a check came out; ordered from good to bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Pass,
    Warn,
    Fail,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Pass => "PASS",
            Self::Warn => "WARN",
            Self::Fail => "FAIL",
        })
    }
}

/// One line of the checklist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// `database`, `tls certificate`, …: stable, for scripts.
    pub name: String,
    pub status: Status,
    pub reason: String,
}

impl Check {
    fn new(name: &str, status: Status, reason: impl Into<String>) -> Self {
        Self { name: name.to_string(), status, reason: reason.into() }
    }

    fn pass(name: &str, reason: impl Into<String>) -> Self {
        Self::new(name, Status::Pass, reason)
    }

    fn warn(name: &str, reason: impl Into<String>) -> Self {
        Self::new(name, Status::Warn, reason)
    }

    fn fail(name: &str, reason: impl Into<String>) -> Self {
        Self::new(name, Status::Fail, reason)
    }
}

/// What to check besides the configuration.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// PEM certificate files (chains allowed), as the TLS proxy uses them.
    pub tls_certs: Vec<PathBuf>,
    /// PEM private key files.
    pub tls_keys: Vec<PathBuf>,
}

/// Every check, in the order they are shown.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    /// The worst status of any check (PASS when there are none).
    #[must_use]
    pub fn worst(&self) -> Status {
        self.checks.iter().map(|c| c.status).max().unwrap_or(Status::Pass)
    }

    /// The checks that failed.
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.status == Status::Fail)
    }

    /// How many checks came out with `status`.
    #[must_use]
    pub fn count(&self, status: Status) -> usize {
        self.checks.iter().filter(|c| c.status == status).count()
    }
}

/// FAIL below either, WARN below either of the next pair.
const DISK_FAIL_BYTES: u64 = 1 << 30;
const DISK_FAIL_PERCENT: f64 = 5.0;
const DISK_WARN_BYTES: u64 = 5 << 30;
const DISK_WARN_PERCENT: f64 = 15.0;
/// A certificate expiring sooner than this is a WARN.
const CERT_WARN_DAYS: i64 = 14;
/// Backups run daily: older than a day and a bit means one was missed.
const BACKUP_MAX_AGE_HOURS: i64 = 26;
/// How long a helper program (`df`, `timedatectl`) may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// How long opening the database or listing the backup target may take.
const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs every check. `loaded` is the result of loading the configuration
/// (as `serve` would, flags included); when it failed, that is the only check.
pub async fn run(loaded: Result<(Config, Sources), String>, options: &Options) -> Report {
    let (config, sources) = match loaded {
        Ok(loaded) => loaded,
        Err(message) => return Report { checks: vec![Check::fail("configuration", message)] },
    };
    let now = crate::accounts::wall_clock();
    let mut checks = vec![check_configuration(&sources)];

    // The database first: the admin password's check needs its users.
    let (database, db) = check_database(&config).await;
    let users = match &db {
        Some(db) if db.migrated => db.store.user_count().await.ok(),
        _ => None,
    };
    checks.push(check_admin_password(&config, users));
    checks.push(check_backup_key(&config));
    checks.push(check_credentials_key(&config));
    checks.push(check_secret_sources(&config, &sources));
    checks.push(check_credentials(&config));
    checks.push(check_server(&config));
    checks.push(database);
    checks.push(check_data_directory(&config));
    checks.extend(check_disk_space(&config).await);
    checks.push(check_clock(&config, db.as_ref(), now).await);
    for path in &options.tls_certs {
        checks.push(check_tls_certificate(path, now));
    }
    for path in &options.tls_keys {
        checks.push(check_tls_key(path));
    }
    if options.tls_certs.is_empty() && options.tls_keys.is_empty() {
        checks.push(Check::pass("tls", "not checked: pass --tls-cert and --tls-key with the files the TLS proxy uses"));
    }
    checks.extend(check_backups(&config, now).await);
    if let Some(db) = db {
        db.store.close().await;
    }
    Report { checks }
}

// ---------------------------------------------------------------------------
// Configuration and secrets

fn check_configuration(sources: &Sources) -> Check {
    let mut from: Vec<String> = Vec::new();
    let mut keys = 0;
    for (_, source) in sources.overridden() {
        let what = match source {
            Source::Default => continue,
            Source::File(path) => format!("the file {}", path.display()),
            Source::Env { .. } | Source::EnvFile { .. } => "the environment".to_string(),
            Source::Flag { .. } => "flags".to_string(),
        };
        keys += 1;
        if !from.contains(&what) {
            from.push(what);
        }
    }
    if from.is_empty() {
        Check::pass("configuration", "valid: the built-in defaults (nothing overridden)")
    } else {
        let from = match from.split_last() {
            Some((last, [])) => last.clone(),
            Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
            None => String::new(),
        };
        Check::pass("configuration", format!("valid: {keys} keys set by {from}"))
    }
}

/// Passwords people pick (space-separated); a configured admin password
/// whose letters are one of these, once or repeated, is refused.
const COMMON_PASSWORDS: &str = "\
    password passw0rd admin administrator root toor tradecore trader trading changeme changeit \
    letmein welcome qwerty qwertz azerty asdf zxcvbn abc abcdef iloveyou secret master monkey dragon \
    football baseball sunshine princess shadow superman trustno default guest test testing example \
    login money bitcoin crypto";

/// Why a password is too weak to configure, or `None`.
#[must_use]
pub fn weak_password(password: &str) -> Option<String> {
    let chars = password.chars().count();
    if chars < crate::auth::MIN_PASSWORD_LEN {
        return Some(format!("is {chars} characters; use at least {}", crate::auth::MIN_PASSWORD_LEN));
    }
    let mut distinct: Vec<char> = password.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 5 {
        return Some(format!("uses only {} different characters", distinct.len()));
    }
    // The letters alone, so that "Password123!" and "adminadmin2024" are caught.
    let letters: String = password.chars().filter(char::is_ascii_alphabetic).collect::<String>().to_ascii_lowercase();
    let digits_only = password.chars().all(|c| c.is_ascii_digit() || c.is_ascii_punctuation());
    let sequence = is_sequence(password);
    let common = !letters.is_empty()
        && COMMON_PASSWORDS.split_whitespace().any(|word| {
            letters.len().is_multiple_of(word.len())
                && letters.as_bytes().chunks(word.len()).all(|c| c == word.as_bytes())
        });
    if common || digits_only || sequence {
        return Some("is a common or guessable password (a common word, digits, or a keyboard sequence)".to_string());
    }
    None
}

/// `abcdefghijkl`, `123456789012`, `qwertyuiop…`: each character follows
/// the one before on the alphabet, the digits or a keyboard row.
fn is_sequence(password: &str) -> bool {
    const RUNS: &[&str] = &[
        "abcdefghijklmnopqrstuvwxyz",
        "01234567890",
        "qwertyuiop",
        "asdfghjkl",
        "zxcvbnm",
        "qwertzuiop",
        "azertyuiop",
    ];
    let lower = password.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    bytes.windows(2).all(|pair| {
        let reversed = [pair[1], pair[0]];
        RUNS.iter().any(|run| run.as_bytes().windows(2).any(|w| w == pair || w == reversed))
    })
}

fn check_admin_password(config: &Config, users: Option<u64>) -> Check {
    const NAME: &str = "admin password";
    match (&config.auth.admin_password, users) {
        (Some(password), users) => {
            if let Some(why) = weak_password(password.expose()) {
                return Check::fail(NAME, format!("auth.admin_password {why}"));
            }
            match users {
                Some(n) if n > 0 => Check::pass(
                    NAME,
                    format!("set and strong; unused now that {} (only the first start reads it)", users_exist(n)),
                ),
                _ => Check::pass(NAME, "set and strong; the first start creates `admin` with it"),
            }
        }
        (None, Some(n)) if n > 0 => Check::pass(NAME, format!("not set, and not needed: {}", users_exist(n))),
        (None, _) => Check::warn(
            NAME,
            "not set: the first start prints a one-time password for `admin` to its output (to be changed at \
             first sign-in); set auth.admin_password (TRADECORE_AUTH__ADMIN_PASSWORD_FILE) to choose it",
        ),
    }
}

fn users_exist(n: u64) -> String {
    if n == 1 { "1 user exists".to_string() } else { format!("{n} users exist") }
}

/// Why a key's bytes do not look random, or `None`.
#[must_use]
pub fn weak_key(key: &[u8; 32]) -> Option<String> {
    let mut distinct = key.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    // 32 random bytes have about 30 different values; fewer than 16 happens
    // by chance with probability far below 1e-9.
    if distinct.len() < 16 {
        return Some(format!(
            "is not random (only {} different byte values): make one with `openssl rand -hex 32`",
            distinct.len()
        ));
    }
    let ascending = key.windows(2).filter(|w| w[1] == w[0].wrapping_add(1)).count();
    if ascending > 24 {
        return Some("is a counting sequence, not random: make one with `openssl rand -hex 32`".to_string());
    }
    None
}

fn check_backup_key(config: &Config) -> Check {
    const NAME: &str = "backup key";
    let target = config.backup.target.is_some();
    let Some(key) = &config.backup.key else {
        return if target {
            Check::fail(NAME, "backup.target is set but backup.key is not: backups are always encrypted")
        } else {
            Check::pass(NAME, "not needed: no backup target is set")
        };
    };
    let key = match crypto::parse_key(key.expose()) {
        Ok(key) => key,
        Err(e) => return Check::fail(NAME, format!("backup.key {e}")),
    };
    if let Some(why) = weak_key(&key) {
        return Check::fail(NAME, format!("backup.key {why}"));
    }
    let id = crypto::key_id(&key);
    if target {
        Check::pass(NAME, format!("32 random-looking bytes (key id {id}); keep a copy away from the backups"))
    } else {
        Check::pass(NAME, format!("set (key id {id}), though no backup target is"))
    }
}

fn check_credentials_key(config: &Config) -> Check {
    const NAME: &str = "venue credentials key";
    let Some(text) = &config.trading.credentials_key else {
        return Check::pass(NAME, "not set: venue accounts cannot be linked until trading.credentials_key is");
    };
    let (key, id) = match (crypto::parse_key(text.expose()), CredentialsKey::parse(text.expose())) {
        (Ok(key), Ok(parsed)) => (key, parsed.id().to_string()),
        (Err(e), _) | (_, Err(e)) => return Check::fail(NAME, format!("trading.credentials_key {e}")),
    };
    if let Some(why) = weak_key(&key) {
        return Check::fail(NAME, format!("trading.credentials_key {why}"));
    }
    if config.backup.key.as_ref().is_some_and(|b| crypto::parse_key(b.expose()).ok() == Some(key)) {
        return Check::fail(
            NAME,
            "trading.credentials_key is the backup key: a backup and its key would then unlock every venue secret",
        );
    }
    Check::pass(NAME, format!("32 random-looking bytes (key id {id}); change it with tradecore secrets rotate"))
}

/// The secrets that are set, by key name. The database URL counts only
/// when it holds a password.
fn secrets_set(config: &Config) -> Vec<&'static str> {
    let mut out = Vec::new();
    if config.auth.admin_password.is_some() {
        out.push("auth.admin_password");
    }
    if config.backup.key.is_some() {
        out.push("backup.key");
    }
    if config.trading.credentials_key.is_some() {
        out.push("trading.credentials_key");
    }
    if config.backup.s3_access_key_id.is_some() {
        out.push("backup.s3_access_key_id");
    }
    if config.backup.s3_secret_access_key.is_some() {
        out.push("backup.s3_secret_access_key");
    }
    if config.redis.url.as_ref().is_some_and(|u| url_credentials(u.expose()).password) {
        out.push("redis.url");
    }
    if config.database.is_postgres() && url_credentials(&config.database.url).password {
        out.push("database.url");
    }
    out
}

/// The permission bits of a file, when it can be read.
fn mode_of(path: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::metadata(path).ok().map(|m| m.permissions().mode() & 0o7777)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

fn check_secret_sources(config: &Config, sources: &Sources) -> Check {
    const NAME: &str = "secret sources";
    let secrets = secrets_set(config);
    if secrets.is_empty() {
        return Check::pass(NAME, "no secrets are configured");
    }
    let mut problems = Vec::new();
    for key in &secrets {
        match sources.get(key) {
            Source::Env { var } => problems.push(format!("{key} is in the environment ({var}): use {var}_FILE")),
            Source::Flag { flag } => {
                problems.push(format!("{key} is given with {flag}: command lines are visible to every user"));
            }
            Source::EnvFile { var, path } => {
                if let Some(mode) = mode_of(path).filter(|m| m & 0o077 != 0) {
                    problems.push(format!("{} (named by {var}) has mode {mode:04o}: make it 0600", path.display()));
                }
            }
            Source::File(path) => {
                if let Some(mode) = mode_of(path).filter(|m| m & 0o077 != 0) {
                    problems.push(format!(
                        "{key} is in {}, which has mode {mode:04o}: make it 0600 or move the secret to a _FILE",
                        path.display()
                    ));
                }
            }
            Source::Default => {}
        }
    }
    if problems.is_empty() {
        Check::pass(NAME, format!("{} from files only their owner reads", secrets.join(", ")))
    } else {
        Check::warn(NAME, problems.join("; "))
    }
}

/// What a URL's user part holds.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Credentials {
    user: bool,
    password: bool,
    /// The host, lowercase, without port or brackets (empty for a socket).
    host: String,
}

fn url_credentials(url: &str) -> Credentials {
    let rest = url.split_once("://").map_or("", |(_, rest)| rest);
    // The last `@` before the path: a password may itself hold `@`.
    let (userinfo, after) = match rest.rfind('@') {
        Some(at) if !rest[..at].contains('/') || rest[..at].contains(':') => (Some(&rest[..at]), &rest[at + 1..]),
        _ => (None, rest),
    };
    let authority = after.split(['/', '?']).next().unwrap_or("");
    let host = if let Some(bracketed) = authority.strip_prefix('[') {
        bracketed.split(']').next().unwrap_or("")
    } else {
        authority.split(':').next().unwrap_or("")
    };
    let query_password = url.split_once('?').is_some_and(|(_, q)| q.split('&').any(|kv| kv.starts_with("password=")));
    let (user, password) = match userinfo {
        Some(info) => match info.split_once(':') {
            Some((user, password)) => (!user.is_empty(), !password.is_empty()),
            None => (!info.is_empty(), false),
        },
        None => (false, false),
    };
    Credentials { user, password: password || query_password, host: host.to_ascii_lowercase() }
}

fn is_local_host(host: &str) -> bool {
    host.is_empty() || host == "localhost" || host == "::1" || host.starts_with("127.")
}

fn check_credentials(config: &Config) -> Check {
    const NAME: &str = "credentials";
    let mut notes = Vec::new();
    let mut warn = false;
    match &config.redis.url {
        Some(url) => {
            let url = url.expose();
            let c = url_credentials(url);
            let socket = url.starts_with("unix://") || url.starts_with("redis+unix://");
            if c.password {
                notes.push("redis: password set".to_string());
            } else if socket || is_local_host(&c.host) {
                notes.push("redis: no password, on this host".to_string());
            } else {
                warn = true;
                notes.push(format!(
                    "redis.url has no password and {} is not this host: anyone who reaches it can read and write the bus",
                    c.host
                ));
            }
        }
        None => notes.push("no redis (the in-process bus)".to_string()),
    }
    if config.database.is_postgres() {
        let c = url_credentials(&config.database.url);
        notes.push(match (c.user, c.password) {
            (_, true) => "PostgreSQL: password set".to_string(),
            (true, false) => {
                "PostgreSQL: a user without a password in the URL (.pgpass, peer or certificate authentication)"
                    .to_string()
            }
            (false, false) => "PostgreSQL: no user in the URL (PGUSER or the system user)".to_string(),
        });
    } else {
        notes.push("SQLite: no credentials".to_string());
    }
    let reason = notes.join("; ");
    if warn { Check::warn(NAME, reason) } else { Check::pass(NAME, reason) }
}

fn check_server(config: &Config) -> Check {
    const NAME: &str = "server";
    let server = &config.server;
    let https: Vec<&String> = server.public_origins.iter().filter(|o| o.starts_with("https://")).collect();
    if !https.is_empty() && !server.secure_cookies {
        return Check::warn(
            NAME,
            format!(
                "server.public_origins has {} but server.secure_cookies is false: session cookies would also go over plain HTTP",
                https.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            ),
        );
    }
    let exposure = if server.listen.ip().is_loopback() {
        "this host only (a proxy in front reaches it)"
    } else {
        "every interface (fine behind a proxy or a firewall)"
    };
    let origins = if server.public_origins.is_empty() {
        "same-origin only".to_string()
    } else {
        format!("origins {}", server.public_origins.join(", "))
    };
    let cookies = if server.secure_cookies { "Secure cookies" } else { "cookies without Secure" };
    Check::pass(NAME, format!("listens on {}, {exposure}; {origins}; {cookies}", server.listen))
}

// ---------------------------------------------------------------------------
// The database, its directory, disk space and the clock

/// An open database, for the checks after the first.
struct Db {
    store: Store,
    migrated: bool,
}

/// The SQLite file a `sqlite:` URL names (as `Store::connect` reads it).
fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let path = rest.trim_start_matches("//");
    let path = path.split('?').next().unwrap_or(path);
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

async fn check_database(config: &Config) -> (Check, Option<Db>) {
    const NAME: &str = "database";
    let url = config.database.redacted_url();
    if let Some(path) = sqlite_path(&config.database.url)
        && !path.exists()
    {
        // Opening it would create it: a checklist does not.
        return (
            Check::fail(
                NAME,
                format!(
                    "{} does not exist: run `tradecore migrate` (or start the server once) to create it",
                    path.display()
                ),
            ),
            None,
        );
    }
    let options = StoreOptions { max_connections: 2, ..config.database.store_options() };
    let store = match tokio::time::timeout(IO_TIMEOUT, Store::connect(&config.database.url, options)).await {
        Ok(Ok(store)) => store,
        Ok(Err(e)) => return (Check::fail(NAME, format!("cannot open {url}: {e}")), None),
        Err(_) => {
            return (Check::fail(NAME, format!("cannot open {url}: no answer in {}s", IO_TIMEOUT.as_secs())), None);
        }
    };
    if let Err(e) = store.ping().await {
        store.close().await;
        return (Check::fail(NAME, format!("{url} does not answer: {e}")), None);
    }
    let check = match store.pending_migrations().await {
        Ok(pending) if pending.is_empty() => {
            let schema = store.schema_version().await.map_or_else(|_| "?".to_string(), |v| v.to_string());
            Check::pass(NAME, format!("{} at {url} answers; schema {schema}, up to date", store.backend()))
        }
        Ok(pending) => Check::fail(
            NAME,
            format!(
                "{url} lacks {} migrations ({}): run `tradecore migrate`",
                pending.len(),
                pending.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            ),
        ),
        Err(e) => Check::fail(NAME, format!("cannot read the migrations of {url}: {e}")),
    };
    let migrated = check.status == Status::Pass;
    (check, Some(Db { store, migrated }))
}

/// Creates and removes a probe file in `dir`: the only sure way to know a
/// directory is writable (permissions, read-only mounts, ACLs, quotas).
fn probe_writable(dir: &Path) -> Result<(), String> {
    let probe = dir.join(format!(".tradecore-doctor-{}", std::process::id()));
    let result = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .and_then(|mut file| std::io::Write::write_all(&mut file, b"probe"));
    let _ = std::fs::remove_file(&probe);
    result.map_err(|e| format!("cannot write in {}: {e}", dir.display()))
}

/// The nearest directory of `path` that exists (`path` itself if it does).
fn existing_ancestor(path: &Path) -> PathBuf {
    let mut at = path;
    loop {
        if at.exists() {
            return at.to_path_buf();
        }
        match at.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => at = parent,
            _ => return PathBuf::from("."),
        }
    }
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn check_data_directory(config: &Config) -> Check {
    const NAME: &str = "data directory";
    let Some(path) = sqlite_path(&config.database.url) else {
        return Check::pass(NAME, "not used: PostgreSQL (or an in-memory database) keeps the data");
    };
    let dir = parent_dir(&path);
    if !dir.is_dir() {
        let ancestor = existing_ancestor(&dir);
        return match probe_writable(&ancestor) {
            Ok(()) => Check::warn(
                NAME,
                format!("{} does not exist yet; it can be created in {}", dir.display(), ancestor.display()),
            ),
            Err(e) => Check::fail(NAME, format!("{} does not exist and {e}", dir.display())),
        };
    }
    if let Err(e) = probe_writable(&dir) {
        return Check::fail(NAME, e);
    }
    if path.exists()
        && let Err(e) = std::fs::OpenOptions::new().write(true).open(&path)
    {
        return Check::fail(NAME, format!("{} is not writable: {e}", path.display()));
    }
    Check::pass(NAME, format!("{} is writable (by this user)", dir.display()))
}

/// What `df` says about the filesystem holding a path.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DiskSpace {
    total_bytes: u64,
    available_bytes: u64,
    mount: String,
}

/// Reads the output of `df -Pk PATH` (POSIX format, 1024-byte blocks).
fn parse_df(output: &str) -> Option<DiskSpace> {
    let line = output.lines().nth(1)?;
    let fields: Vec<&str> = line.split_whitespace().collect();
    // From the capacity column (`74%`), so a filesystem name with spaces still parses.
    let cap = fields.iter().rposition(|f| f.ends_with('%') && f[..f.len() - 1].chars().all(|c| c.is_ascii_digit()))?;
    let number = |i: usize| fields.get(i)?.parse::<u64>().ok();
    let total = number(cap.checked_sub(3)?)?;
    let available = number(cap - 1)?;
    let mount = fields[cap + 1..].join(" ");
    Some(DiskSpace { total_bytes: total * 1024, available_bytes: available * 1024, mount })
}

fn free_percent(space: &DiskSpace) -> f64 {
    if space.total_bytes == 0 { 100.0 } else { space.available_bytes as f64 * 100.0 / space.total_bytes as f64 }
}

fn disk_status(space: &DiskSpace) -> Status {
    let percent = free_percent(space);
    if space.available_bytes < DISK_FAIL_BYTES || percent < DISK_FAIL_PERCENT {
        Status::Fail
    } else if space.available_bytes < DISK_WARN_BYTES || percent < DISK_WARN_PERCENT {
        Status::Warn
    } else {
        Status::Pass
    }
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / f64::from(1u32 << 30))
}

async fn check_disk_space(config: &Config) -> Vec<Check> {
    const NAME: &str = "disk space";
    // (what, where) for each place tradecore writes much.
    let mut places: Vec<(&str, PathBuf)> = Vec::new();
    match sqlite_path(&config.database.url) {
        Some(path) => places.push(("the database", parent_dir(&path))),
        None => places.push(("backup staging", std::env::temp_dir())),
    }
    if let Some(Ok(Target::Local(dir))) = config.backup.target.as_deref().map(|t| Target::parse(t, None)) {
        places.push(("backups", dir));
    }
    // One line per filesystem, naming what it holds.
    let mut filesystems: Vec<(DiskSpace, Vec<String>)> = Vec::new();
    let mut unmeasured = Vec::new();
    for (what, path) in places {
        let at = existing_ancestor(&path);
        let arg = at.to_string_lossy().into_owned();
        let output = tokio::task::spawn_blocking(move || run_command("df", &["-Pk", &arg]))
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
        let place = format!("{what} at {}", path.display());
        match output.as_deref().map(parse_df) {
            Ok(Some(space)) => match filesystems.iter_mut().find(|(known, _)| known.mount == space.mount) {
                Some((_, holds)) => holds.push(place),
                None => filesystems.push((space, vec![place])),
            },
            Ok(None) => {
                unmeasured.push(Check::warn(NAME, format!("cannot read what `df` says about {}", at.display())))
            }
            Err(e) => unmeasured.push(Check::warn(NAME, format!("cannot measure free space at {}: {e}", at.display()))),
        }
    }
    let mut checks = Vec::new();
    for (space, holds) in filesystems {
        let status = disk_status(&space);
        let mut reason = format!(
            "{} free of {} ({:.0} %) on {} ({})",
            gib(space.available_bytes),
            gib(space.total_bytes),
            free_percent(&space),
            space.mount,
            holds.join(", ")
        );
        if status != Status::Pass {
            reason.push_str("; wants 5 GiB and 15 % free, 1 GiB and 5 % at the least");
        }
        checks.push(Check::new(NAME, status, reason));
    }
    checks.extend(unmeasured);
    checks
}

/// The newest timestamp the database holds: of the audit log and of each
/// account's last event (the first 1,000 accounts: enough to catch a clock
/// set back).
async fn newest_recorded(store: &Store) -> Option<Timestamp> {
    let mut newest = store.audit_log(None, 1).await.ok()?.first().map(|row| row.ts);
    let accounts = store.accounts().await.ok()?;
    for account in accounts.iter().take(1000) {
        let last = store.events_before(account.id, i64::MAX.unsigned_abs(), 1).await.ok()?;
        if let Some((_, event)) = last.first() {
            newest = newest.max(Some(event.ts));
        }
    }
    newest
}

/// `timedatectl`'s word on NTP, when it can give one: `Some(true)` when synchronized.
fn ntp_synchronized() -> Result<bool, String> {
    let out = run_command("timedatectl", &["show", "--property=NTPSynchronized", "--value"])?;
    match out.trim() {
        "yes" => Ok(true),
        "no" => Ok(false),
        other => Err(format!("timedatectl said '{other}'")),
    }
}

async fn check_clock(config: &Config, db: Option<&Db>, now: Timestamp) -> Check {
    const NAME: &str = "clock";
    let mut status = Status::Pass;
    let mut notes = Vec::new();
    let newest = match db {
        Some(db) if db.migrated => newest_recorded(&db.store).await,
        _ => None,
    };
    match newest {
        Some(newest) => {
            let behind = (newest.as_nanos() - now.as_nanos()) as f64 / 1e9;
            if behind > 60.0 {
                status = Status::Fail;
                notes.push(format!(
                    "the system clock ({now}) is {behind:.0} s behind the newest time in the database ({newest}): was it set back?"
                ));
            } else if behind > 2.0 {
                status = Status::Warn;
                notes.push(format!(
                    "the system clock is {behind:.1} s behind the newest time in the database ({newest})"
                ));
            } else {
                notes.push(format!("after the newest time in the database ({newest})"));
            }
        }
        None => notes.push("no reference clock (nothing recorded in the database yet)".to_string()),
    }
    if let Some(db) = db
        && let Ok(Some(theirs)) = db.store.database_now().await
    {
        // Measured after ours: a round trip makes theirs look a little ahead.
        let ours = crate::accounts::wall_clock();
        let skew = (ours.as_nanos() - theirs.as_nanos()) as f64 / 1e9;
        if skew.abs() > 60.0 {
            status = Status::Fail;
        } else if skew.abs() > 2.0 {
            status = status.max(Status::Warn);
        }
        notes.push(format!(
            "{:.2} s {} the PostgreSQL server's clock",
            skew.abs(),
            if skew >= 0.0 { "ahead of" } else { "behind" }
        ));
    } else if config.database.is_postgres() {
        notes.push("the PostgreSQL server's clock could not be read".to_string());
    }
    match tokio::task::spawn_blocking(ntp_synchronized).await.unwrap_or_else(|e| Err(e.to_string())) {
        Ok(true) => notes.push("NTP synchronized".to_string()),
        Ok(false) => {
            status = status.max(Status::Warn);
            notes.push("NTP is not synchronized (timedatectl): enable systemd-timesyncd or chrony".to_string());
        }
        // The first sentence: "timedatectl: System has not been booted with systemd …".
        Err(e) => notes.push(format!("NTP not checked ({})", e.split(['.', '\n']).next().unwrap_or("").trim())),
    }
    Check::new(NAME, status, notes.join("; "))
}

/// Runs a helper program and returns its standard output; an error says
/// whether it is missing, failed (with its first line of stderr) or hung.
fn run_command(program: &str, args: &[&str]) -> Result<String, String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound { format!("no {program}") } else { format!("{program}: {e}") }
        })?;
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < COMMAND_TIMEOUT => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{program} did not answer in {}s", COMMAND_TIMEOUT.as_secs()));
            }
            Err(e) => return Err(format!("{program}: {e}")),
        }
    };
    // Outputs are a few lines: they fit in the pipe, so reading after the exit is safe.
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut stdout);
    }
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut stderr);
    }
    if status.success() {
        Ok(stdout)
    } else {
        Err(format!("{program}: {}", stderr.lines().next().unwrap_or("failed").trim()))
    }
}

// ---------------------------------------------------------------------------
// TLS files

/// One `-----BEGIN LABEL-----` block.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PemBlock {
    label: String,
    /// Has `Proc-Type: 4,ENCRYPTED` (the old OpenSSL key encryption).
    encrypted_header: bool,
    der: Vec<u8>,
}

fn pem_blocks(text: &str) -> Result<Vec<PemBlock>, String> {
    let mut blocks = Vec::new();
    let mut current: Option<(String, bool, String)> = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(label) = line.strip_prefix("-----BEGIN ").and_then(|l| l.strip_suffix("-----")) {
            if current.is_some() {
                return Err(format!("line {}: BEGIN inside another block", n + 1));
            }
            current = Some((label.to_string(), false, String::new()));
        } else if let Some(label) = line.strip_prefix("-----END ").and_then(|l| l.strip_suffix("-----")) {
            let Some((begun, encrypted_header, body)) = current.take() else {
                return Err(format!("line {}: END without BEGIN", n + 1));
            };
            if begun != label {
                return Err(format!("line {}: BEGIN {begun} ends with END {label}", n + 1));
            }
            let der = base64_decode(&body).ok_or_else(|| format!("the {label} block is not valid base64"))?;
            blocks.push(PemBlock { label: begun, encrypted_header, der });
        } else if let Some((_, encrypted, body)) = current.as_mut() {
            if line.contains(':') {
                // An RFC 1421 header line.
                *encrypted |= line.starts_with("Proc-Type:") && line.contains("ENCRYPTED");
            } else {
                body.push_str(line);
            }
        }
    }
    if let Some((label, _, _)) = current {
        return Err(format!("the {label} block has no END line"));
    }
    Ok(blocks)
}

/// A PEM block's base64 body, line breaks and all.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(compact).ok()
}

/// The next DER element: (tag, contents, the rest).
fn der_next(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        // Indefinite lengths are not DER; more than 4 length bytes is not a certificate.
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// An X.509 `Time`: UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`).
fn der_time(tag: u8, content: &[u8]) -> Option<Timestamp> {
    let text = std::str::from_utf8(content).ok()?;
    let digits = text.strip_suffix('Z')?;
    let (year, rest) = match (tag, digits.len()) {
        (0x17, 12) => {
            let yy: i64 = digits.get(..2)?.parse().ok()?;
            // RFC 5280: 50..99 are 19xx, 00..49 are 20xx.
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &digits[2..])
        }
        (0x18, 14) => (digits.get(..4)?.parse().ok()?, &digits[4..]),
        _ => return None,
    };
    if !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |r: std::ops::Range<usize>| rest.get(r)?.parse::<u32>().ok();
    let (month, day, hour, minute, second) = (n(0..2)?, n(2..4)?, n(4..6)?, n(6..8)?, n(8..10)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let days = model::time::days_from_civil(year, month, day);
    Some(Timestamp::from_secs(days * 86_400 + i64::from(hour * 3600 + minute * 60 + second)))
}

/// A certificate's `(notBefore, notAfter)`.
fn certificate_validity(der: &[u8]) -> Option<(Timestamp, Timestamp)> {
    let (0x30, certificate, _) = der_next(der)? else { return None };
    let (0x30, tbs, _) = der_next(certificate)? else { return None };
    let mut rest = tbs;
    let (tag, _, after) = der_next(rest)?;
    // The version, `[0] EXPLICIT`, is absent in v1 certificates.
    if tag == 0xa0 {
        rest = after;
    }
    let (0x02, _, rest) = der_next(rest)? else { return None }; // serialNumber
    let (0x30, _, rest) = der_next(rest)? else { return None }; // signature
    let (0x30, _, rest) = der_next(rest)? else { return None }; // issuer
    let (0x30, validity, _) = der_next(rest)? else { return None };
    let (tag, not_before, rest) = der_next(validity)?;
    let not_before = der_time(tag, not_before)?;
    let (tag, not_after, _) = der_next(rest)?;
    Some((not_before, der_time(tag, not_after)?))
}

fn date(t: Timestamp) -> String {
    let (y, m, d, ..) = t.to_parts();
    format!("{y:04}-{m:02}-{d:02}")
}

/// Judges a certificate chain's validity periods at `now`.
fn judge_validity(validities: &[(Timestamp, Timestamp)], now: Timestamp) -> (Status, String) {
    let Some((index, &(_, not_after))) = validities.iter().enumerate().min_by_key(|(_, (_, after))| *after) else {
        return (Status::Fail, "no certificate".to_string());
    };
    let which =
        if index == 0 { "the certificate".to_string() } else { format!("certificate {} of the chain", index + 1) };
    if let Some((i, (not_before, _))) = validities.iter().enumerate().find(|(_, (before, _))| *before > now) {
        return (Status::Fail, format!("certificate {} is not valid before {}", i + 1, date(*not_before)));
    }
    let days_left = (not_after.as_nanos() - now.as_nanos()).div_euclid(model::time::NANOS_PER_DAY);
    if not_after <= now {
        (Status::Fail, format!("{which} expired on {}", date(not_after)))
    } else if days_left < CERT_WARN_DAYS {
        (Status::Warn, format!("{which} expires on {}, in {days_left} days: renew it", date(not_after)))
    } else {
        let count = validities.len();
        (Status::Pass, format!("{count} certificate(s), valid until {} ({days_left} days)", date(not_after)))
    }
}

fn check_tls_certificate(path: &Path, now: Timestamp) -> Check {
    const NAME: &str = "tls certificate";
    let shown = path.display();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => return Check::fail(NAME, format!("cannot read {shown}: {e}")),
    };
    let blocks = match pem_blocks(&text) {
        Ok(blocks) => blocks,
        Err(e) => return Check::fail(NAME, format!("{shown} is not PEM: {e}")),
    };
    let certificates: Vec<&PemBlock> = blocks.iter().filter(|b| b.label == "CERTIFICATE").collect();
    if certificates.is_empty() {
        return Check::fail(NAME, format!("{shown} holds no PEM certificate"));
    }
    let mut validities = Vec::new();
    for (i, cert) in certificates.iter().enumerate() {
        match certificate_validity(&cert.der) {
            Some(v) => validities.push(v),
            None => return Check::fail(NAME, format!("{shown}: certificate {} is not an X.509 certificate", i + 1)),
        }
    }
    let (status, reason) = judge_validity(&validities, now);
    Check::new(NAME, status, format!("{shown}: {reason}"))
}

fn check_tls_key(path: &Path) -> Check {
    const NAME: &str = "tls key";
    let shown = path.display();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => return Check::fail(NAME, format!("cannot read {shown}: {e}")),
    };
    let blocks = match pem_blocks(&text) {
        Ok(blocks) => blocks,
        Err(e) => return Check::fail(NAME, format!("{shown} is not PEM: {e}")),
    };
    let Some(key) = blocks.iter().find(|b| b.label.ends_with("PRIVATE KEY")) else {
        return Check::fail(NAME, format!("{shown} holds no PEM private key"));
    };
    if key.der.is_empty() || der_next(&key.der).is_none_or(|(tag, _, _)| tag != 0x30) {
        return Check::fail(NAME, format!("{shown}: the {} block is not a DER structure", key.label));
    }
    if key.label == "ENCRYPTED PRIVATE KEY" || key.encrypted_header {
        return Check::warn(
            NAME,
            format!("{shown} is encrypted: the proxy needs its passphrase (nginx: ssl_password_file)"),
        );
    }
    if let Some(mode) = mode_of(path).filter(|m| m & 0o004 != 0) {
        return Check::warn(NAME, format!("{shown} is readable by every user (mode {mode:04o}): make it 0600 or 0640"));
    }
    Check::pass(NAME, format!("{shown}: a PEM {} (not checked against the certificate)", key.label.to_lowercase()))
}

// ---------------------------------------------------------------------------
// Backups

async fn check_backups(config: &Config, now: Timestamp) -> Vec<Check> {
    const TARGET: &str = "backup target";
    const LATEST: &str = "latest backup";
    let backups = match Backups::from_config(&config.backup) {
        Ok(Some(backups)) => backups,
        Ok(None) => {
            return vec![Check::warn(
                TARGET,
                "not set: no backups are taken (set backup.target and backup.key, see docs/configuration.md)",
            )];
        }
        Err(e) => return vec![Check::fail(TARGET, e)],
    };
    let target = backups.target();
    let described = target.describe();
    if let Target::Local(dir) = target {
        let at = existing_ancestor(dir);
        if let Err(e) = probe_writable(&at) {
            return vec![Check::fail(TARGET, format!("{described}: {e}"))];
        }
    }
    let names = match tokio::time::timeout(IO_TIMEOUT, target.list()).await {
        Ok(Ok(names)) => names,
        Ok(Err(e)) => return vec![Check::fail(TARGET, format!("cannot list {described}: {e}"))],
        Err(_) => return vec![Check::fail(TARGET, format!("{described} did not answer in {}s", IO_TIMEOUT.as_secs()))],
    };
    let manifests: Vec<&str> = names.iter().filter_map(|n| n.strip_suffix(".manifest.json")).collect();
    let mut checks = vec![Check::pass(TARGET, format!("{described} answers; {} backups", manifests.len()))];
    let Some(latest) = manifests.iter().max() else {
        checks.push(Check::warn(LATEST, "there are none yet: run `tradecore backup create`"));
        return checks;
    };
    checks.push(match tokio::time::timeout(IO_TIMEOUT, backups.manifest(latest)).await {
        Ok(Ok(manifest)) => {
            let minutes = (now.as_nanos() - manifest.created.as_nanos()) / 60_000_000_000;
            let age = match minutes {
                ..60 => format!("{} min", minutes.max(0)),
                60..2880 => format!("{} h", minutes / 60),
                _ => format!("{} days", minutes / 1440),
            };
            if minutes >= BACKUP_MAX_AGE_HOURS * 60 {
                Check::warn(
                    LATEST,
                    format!("{latest} is {age} old (more than {BACKUP_MAX_AGE_HOURS} h): is the backup job running?"),
                )
            } else {
                Check::pass(LATEST, format!("{latest}, {age} old, {} rows", manifest.rows))
            }
        }
        Ok(Err(e)) => Check::warn(LATEST, e),
        Err(_) => Check::warn(LATEST, format!("{latest}: the manifest did not arrive in {}s", IO_TIMEOUT.as_secs())),
    });
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_passwords_are_named() {
        let cases = [
            ("short", "hunter2", true),
            ("common word with digits", "Password1234", true),
            ("repeated common word", "adminadminadmin", true),
            ("digits", "123456789012", true),
            ("reversed run", "mlkjihgfedcba", true),
            ("alphabet run", "abcdefghijklm", true),
            ("few characters", "aaaaaaaaaaab", true),
            ("passphrase", "a long admin password for tests", false),
            ("random", "x8#Lq2!vR9mZ", false),
        ];
        for (name, password, weak) in cases {
            assert_eq!(weak_password(password).is_some(), weak, "{name}: {:?}", weak_password(password));
        }
    }

    #[test]
    fn keys_that_are_not_random_are_refused() {
        assert!(weak_key(&[0; 32]).is_some(), "zeros");
        assert!(weak_key(&[0xab; 32]).is_some(), "one byte repeated");
        let pattern: [u8; 32] = std::array::from_fn(|i| [1, 2, 3, 4][i % 4]);
        assert!(weak_key(&pattern).is_some(), "a short pattern");
        let counting: [u8; 32] = std::array::from_fn(|i| u8::try_from(i).unwrap_or(0));
        assert!(weak_key(&counting).is_some(), "counting");
        let random = crypto::parse_key("5f1c7e0a9b3d2c4e8f6a1b0d3c5e7f9a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e").unwrap();
        assert_eq!(weak_key(&random), None);
    }

    #[test]
    fn url_credentials_are_read() {
        let c = |url| url_credentials(url);
        assert_eq!(c("redis://cache:6379"), Credentials { user: false, password: false, host: "cache".into() });
        assert_eq!(c("redis://:pw@cache/0"), Credentials { user: false, password: true, host: "cache".into() });
        assert_eq!(c("postgres://app@db/x"), Credentials { user: true, password: false, host: "db".into() });
        assert_eq!(c("postgres://app:p@w@DB:5432/x"), Credentials { user: true, password: true, host: "db".into() });
        assert!(c("postgresql://db/x?user=a&password=pw").password);
        assert_eq!(c("redis://[::1]:6379").host, "::1");
        assert!(is_local_host(&c("redis://127.0.0.1").host));
    }

    #[test]
    fn df_output_is_read() {
        let out = "Filesystem     1024-blocks     Used Available Capacity Mounted on\n\
                   /dev/vda         264212084 70396760  24889128      74% /\n";
        let space = parse_df(out).unwrap();
        assert_eq!(
            space,
            DiskSpace { total_bytes: 264_212_084 * 1024, available_bytes: 24_889_128 * 1024, mount: "/".into() }
        );
        assert_eq!(disk_status(&space), Status::Warn, "9 % free");
        let spaced = "Filesystem 1024-blocks Used Available Capacity Mounted on\nmy disk 100 50 50 50% /mnt/my disk\n";
        assert_eq!(parse_df(spaced).map(|s| s.mount), Some("/mnt/my disk".to_string()));
        assert_eq!(parse_df("garbage"), None);
        let gib = 1u64 << 30;
        let at = |free: u64, total: u64| {
            disk_status(&DiskSpace { total_bytes: total, available_bytes: free, mount: "/".into() })
        };
        assert_eq!(at(gib / 2, 10 * gib), Status::Fail, "under 1 GiB");
        assert_eq!(at(40 * gib, 1000 * gib), Status::Fail, "under 5 %");
        assert_eq!(at(4 * gib, 10 * gib), Status::Warn, "under 5 GiB");
        assert_eq!(at(100 * gib, 1000 * gib), Status::Warn, "under 15 %");
        assert_eq!(at(200 * gib, 1000 * gib), Status::Pass);
    }

    /// `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes
    /// -subj /CN=doctor -days 3650` (notBefore 2026-12-01T11:40:01Z).
    const CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBdjCCAR2gAwIBAgIUVK6HTuJdx5Yn5hyiayjhHp43s7owCgYIKoZIzj0EAwIw
ETEPMA0GA1UEAwwGZG9jdG9yMB4XDTI2MTIwMTExNDAwMVoXDTM2MTEyODExNDAw
MVowETEPMA0GA1UEAwwGZG9jdG9yMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE
uF25eCXCoDBRUkXxx7UFuoIXPdi7vMf078byYkr7u8rKEjBKeuUXIsDL8yjXALEZ
estFBmlqJUtueDNa2/QGsaNTMFEwHQYDVR0OBBYEFGSqbryPlnIrWdQuL93aoebD
VKrgMB8GA1UdIwQYMBaAFGSqbryPlnIrWdQuL93aoebDVKrgMA8GA1UdEwEB/wQF
MAMBAf8wCgYIKoZIzj0EAwIDRwAwRAIgZ7Rm3A6Po3vEx8HAHHdHEMwxjNO9lBxg
11uRPwqIpscCIBNmRVPd2R8SEzUFWwF33RAydXXS1ZXvpqDiNfVNYN8A
-----END CERTIFICATE-----
";

    #[test]
    fn certificate_validity_is_read_and_judged() {
        let blocks = pem_blocks(CERT).unwrap();
        assert_eq!(blocks.len(), 1);
        let (not_before, not_after) = certificate_validity(&blocks[0].der).expect("parses");
        assert_eq!(not_before.to_string(), "2026-12-01T11:40:01Z");
        assert_eq!(not_after.to_string(), "2036-11-28T11:40:01Z");
        let day = model::time::NANOS_PER_DAY;
        let at = |t: Timestamp, days: i64| Timestamp::from_nanos(t.as_nanos() + days * day);
        let one = [(not_before, not_after)];
        assert_eq!(judge_validity(&one, at(not_before, 10)).0, Status::Pass);
        assert_eq!(judge_validity(&one, at(not_after, -10)).0, Status::Warn);
        assert_eq!(judge_validity(&one, at(not_after, 1)).0, Status::Fail);
        assert_eq!(judge_validity(&one, at(not_before, -1)).0, Status::Fail);
        // The chain's earliest expiry counts, and is named.
        let chain = [(not_before, not_after), (not_before, at(not_before, 20))];
        let (status, reason) = judge_validity(&chain, at(not_before, 10));
        assert_eq!(status, Status::Warn);
        assert!(reason.contains("certificate 2 of the chain"), "{reason}");
        // Two-digit years: 49 is 2049, 50 is 1950.
        assert_eq!(der_time(0x17, b"491231235959Z").map(|t| t.to_string()), Some("2049-12-31T23:59:59Z".to_string()));
        assert_eq!(der_time(0x17, b"500101000000Z").map(|t| t.to_string()), Some("1950-01-01T00:00:00Z".to_string()));
        assert_eq!(der_time(0x18, b"20261301000000Z"), None, "month 13");
        assert!(certificate_validity(b"\x30\x03\x02\x01\x01").is_none());
    }

    #[test]
    fn pem_structure_errors_are_named() {
        assert!(pem_blocks("-----BEGIN CERTIFICATE-----\nAAAA\n").unwrap_err().contains("no END"));
        assert!(pem_blocks("-----BEGIN A-----\nAAAA\n-----END B-----\n").unwrap_err().contains("END B"));
        assert!(pem_blocks("-----BEGIN A-----\n!!!!\n-----END A-----\n").unwrap_err().contains("base64"));
        let encrypted = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nMAA=\n-----END RSA PRIVATE KEY-----\n";
        let blocks = pem_blocks(encrypted).unwrap();
        assert!(blocks[0].encrypted_header);
        assert_eq!(blocks[0].der, [0x30, 0x00]);
    }
}
