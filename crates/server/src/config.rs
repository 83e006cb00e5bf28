//! Configuration of `tradecore serve`.
//!
//! One [`Config`] is built in layers, each overriding the one before:
//!
//! 1. built-in defaults, which alone give a working single-host setup (SQLite in
//!    `./data`, the in-process bus, paper trading, listening on localhost);
//! 2. an optional TOML file (`--config PATH`, else [`CONFIG_PATH_ENV`]);
//! 3. environment variables `TRADECORE_<SECTION>__<KEY>`, and for secrets
//!    `TRADECORE_<SECTION>__<KEY>_FILE` naming a file that holds the value.
//!
//! The layers are merged as TOML tables and deserialized once at the end, so a
//! value goes through the same serde types whichever layer set it. Every key is
//! listed once in `KEYS`, which drives environment variable names, typo
//! suggestions and the masked output; a test checks that list against the
//! structs, the example file and the user documentation.
//!
//! Invariants: unknown keys are errors in every layer (a misspelt key that
//! silently keeps its default is how a server ends up listening publicly or
//! trading live by surprise); every error names the key and where its value came
//! from; a [`Secret`] never prints its value, and neither does any error or the
//! masked output.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use model::Money;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Prefix of every environment variable this module reads.
pub const ENV_PREFIX: &str = "TRADECORE_";
/// Environment variable naming the configuration file when no path is passed
/// to [`load`] (the binary's `--config` flag wins over it).
pub const CONFIG_PATH_ENV: &str = "TRADECORE_CONFIG";
/// Environment variables starting with this are left to tests and never
/// reported as unknown keys.
pub const TEST_ENV_PREFIX: &str = "TRADECORE_TEST_";
/// Suffix turning `TRADECORE_<SECTION>__<KEY>` into "read the value from this file".
const FILE_SUFFIX: &str = "_FILE";
/// What a secret looks like wherever it is printed.
const REDACTED: &str = "[redacted]";

/// Short names kept for convenience: each sets the same key as its canonical
/// `TRADECORE_<SECTION>__<KEY>` name (and, for secrets, also takes `_FILE`).
const ALIASES: &[(&str, &str, &str)] = &[
    // The name container users expect for "the first admin's password".
    ("TRADECORE_ADMIN_PASSWORD", "auth", "admin_password"),
    // Like RUST_LOG: the quickest way to turn on debug logs for one run.
    ("TRADECORE_LOG", "log", "level"),
];

// ---------------------------------------------------------------------------
// Secret

/// A value that must not be printed: a password, a URL holding credentials.
///
/// `Debug`, `Display` and `Serialize` all give `"[redacted]"`, so a secret can
/// sit in a struct that is logged or shown without leaking. Reading it takes an
/// explicit [`Secret::expose`]. It deserializes from the plain value.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    #[must_use]
    pub const fn new(value: T) -> Self {
        Self(value)
    }

    /// The wrapped value. Call it where the value is used, not earlier, so that
    /// copies of it stay rare.
    #[must_use]
    pub const fn expose(&self) -> &T {
        &self.0
    }

    #[must_use]
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// Serializes as `"[redacted]"`: serialization is for showing a configuration,
/// and a serialized secret must never reach a page, a log or a file.
impl<T> Serialize for Secret<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Secret<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(Self)
    }
}

// ---------------------------------------------------------------------------
// The configuration

/// Everything `tradecore serve` can be configured with. `Config::default()` is
/// a working single-host setup; see `docs/configuration.md` for every key.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub redis: RedisConfig,
    pub auth: AuthConfig,
    pub rate_limit: RateLimitConfig,
    pub paper: PaperConfig,
    pub log: LogConfig,
    pub metrics: MetricsConfig,
    pub cluster: ClusterConfig,
    pub jobs: JobsConfig,
    pub retention: RetentionConfig,
    pub backup: BackupConfig,
    pub trading: TradingConfig,
    pub venues: VenuesConfig,
}

/// `[server]`: the HTTP listener and what browsers may do with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address and port to listen on. Localhost by default: exposing the
    /// server is a decision, usually made by putting a TLS proxy in front.
    pub listen: SocketAddr,
    /// Browser origins (`https://trade.example.com`) allowed besides the
    /// server's own, for the CSRF and WebSocket `Origin` checks. Empty means
    /// same-origin only.
    pub public_origins: Vec<String>,
    /// Mark session cookies `Secure`. Turn on when browsers reach the server
    /// over HTTPS (behind a TLS proxy); browsers drop such cookies over plain HTTP.
    pub secure_cookies: bool,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// On SIGTERM, how long in-flight requests and WebSockets get to finish.
    pub shutdown_grace_seconds: u64,
    /// Reverse proxies (addresses or networks) whose `X-Forwarded-For` names
    /// the client, for rate limits, the sign-in throttle and the audit log.
    pub trusted_proxies: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_origins: Vec::new(),
            secure_cookies: false,
            max_body_bytes: 1024 * 1024,
            shutdown_grace_seconds: 10,
            trusted_proxies: Vec::new(),
        }
    }
}

impl ServerConfig {
    #[must_use]
    pub const fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_seconds)
    }

    /// `trusted_proxies`, parsed (validation has refused bad entries).
    #[must_use]
    pub fn trusted_proxy_networks(&self) -> Vec<crate::client_ip::Network> {
        self.trusted_proxies.iter().filter_map(|n| crate::client_ip::Network::parse(n).ok()).collect()
    }
}

/// `[database]`: where the journal and read models live.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite:PATH` (embedded, the default) or `postgres://USER:PASSWORD@HOST/DB`.
    /// Not a [`Secret`] because it is usually harmless, but it may hold a
    /// password: it is redacted in `Debug` and the masked output, and it may be
    /// read from a file (`TRADECORE_DATABASE__URL_FILE`).
    pub url: String,
    /// Connections in the pool.
    pub max_connections: u32,
    /// SQLite only: sync to disk at every commit, so an acknowledged order
    /// survives a power cut, not just a crash of the process.
    pub sqlite_full_sync: bool,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self { url: "sqlite:data/tradecore.db".to_string(), max_connections: 8, sqlite_full_sync: true }
    }
}

impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .field("sqlite_full_sync", &self.sqlite_full_sync)
            .finish()
    }
}

impl DatabaseConfig {
    /// Whether the URL names PostgreSQL (else it is SQLite; [`load`] has
    /// already refused anything else).
    #[must_use]
    pub fn is_postgres(&self) -> bool {
        self.url.starts_with("postgres://") || self.url.starts_with("postgresql://")
    }

    /// The URL with any password replaced by `[redacted]`, for messages and logs.
    #[must_use]
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }

    /// The pool options for `store::Store` (the URL is passed separately).
    #[must_use]
    pub const fn store_options(&self) -> store::StoreOptions {
        store::StoreOptions { max_connections: self.max_connections, sqlite_full_sync: self.sqlite_full_sync }
    }
}

/// `[redis]`: the event bus between instances.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[:PASSWORD@]HOST[:PORT][/DB]` (or `rediss://` for TLS). Unset
    /// means the in-process bus, which is right for exactly one instance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<Secret<String>>,
}

/// `[auth]`: accounts, sessions and login throttling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Whether anyone who can reach the server may create a user. Off by
    /// default: a trading server is not a public sign-up page.
    pub open_signup: bool,
    /// Password of the first admin, used only when no user exists yet. Unset:
    /// a one-time password is generated and printed at first start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_password: Option<Secret<String>>,
    /// How long a dashboard session lasts without signing in again.
    pub session_ttl_hours: u32,
    /// Failed sign-ins allowed per minute before further attempts are refused.
    pub login_attempts_per_minute: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self { open_signup: false, admin_password: None, session_ttl_hours: 168, login_attempts_per_minute: 10 }
    }
}

impl AuthConfig {
    #[must_use]
    pub const fn session_ttl(&self) -> Duration {
        Duration::from_secs(self.session_ttl_hours as u64 * 3600)
    }
}

/// `[rate_limit]`: requests allowed per minute before a 429.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Per client IP (1,000 per minute is the requirement).
    pub per_ip_per_minute: u32,
    /// Per API token, for programs that trade through the API.
    pub per_token_per_minute: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self { per_ip_per_minute: 1000, per_token_per_minute: 6000 }
    }
}

/// `[paper]`: the simulated market that paper accounts trade against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PaperConfig {
    /// Cash a new paper account starts with, exact (a string such as
    /// `"2500.50"`, or a whole number).
    #[serde(deserialize_with = "money_from_text_or_integer")]
    pub starting_cash: Money,
    /// Symbols the simulated market quotes.
    pub instruments: Vec<String>,
    /// Simulated quote updates per second per instrument.
    pub ticks_per_second: u32,
    /// Seed of the simulated prices; unset means a new random walk each start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

impl Default for PaperConfig {
    fn default() -> Self {
        Self {
            starting_cash: Money::from_int(100_000),
            instruments: ["BTC-USDT", "ETH-USDT", "SOL-USDT", "AAPL", "SPY"].map(String::from).to_vec(),
            ticks_per_second: 5,
            seed: None,
        }
    }
}

impl PaperConfig {
    /// Time between two simulated ticks (`ticks_per_second` is at least 1
    /// after [`load`]; 0 is treated as 1 here rather than dividing by zero).
    #[must_use]
    pub fn tick_interval(&self) -> Duration {
        Duration::from_secs(1) / self.ticks_per_second.max(1)
    }
}

/// `[log]`: what is logged and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `human` for a terminal, `json` for a log collector.
    pub format: LogFormat,
    /// A `tracing` env-filter directive: `info`, `debug`, `info,server=debug`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { format: LogFormat::Human, level: "info".to_string() }
    }
}

/// `[metrics]`: where Prometheus scrapes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address of the listener serving `GET /metrics` (Prometheus text
    /// format), apart from the public port so a proxy never exposes it.
    /// Localhost by default.
    pub listen: SocketAddr,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self { listen: SocketAddr::from(([127, 0, 0, 1], 9464)) }
    }
}

/// `[cluster]`: several instances on one PostgreSQL database. One, the
/// leader, runs the accounts, bots, market and jobs; the others stand by,
/// forwarding what they receive to it, and one of them takes over when its
/// lease lapses. Ignored on SQLite (one instance).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// The URL other instances reach this one at (`http://10.0.0.7:8080`).
    /// Unset: `http://` and the listen address, or this host's name when
    /// listening on every address.
    pub advertise_url: Option<String>,
    /// How long the leader's lease lasts unrenewed: a standby takes over
    /// this long after the leader stopped answering.
    pub lease_seconds: u32,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self { advertise_url: None, lease_seconds: 15 }
    }
}

/// `[jobs]`: the background workers and when each built-in job runs.
/// Schedules are five-field cron expressions in UTC (`*/5 * * * *`,
/// `0 2 * * *`, `@daily`); an empty one switches the job off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobsConfig {
    /// Jobs this instance runs at once.
    pub workers: u32,
    /// Runs a failing job gets before it goes to the dead-letter list.
    pub max_attempts: u32,
    /// Compare each account's orders, positions and cash with its venue.
    pub reconcile: String,
    /// Record each account's equity at the end of the UTC day.
    pub equity_daily: String,
    /// Rebuild 5m, 1h and 1d candles from the stored 1m candles.
    pub candle_rollup: String,
    /// Delete data older than `[retention]` allows.
    pub retention: String,
    /// Back the database up to `backup.target` (only when it is set).
    pub backup: String,
    /// Restore the latest backup into a scratch database and check it.
    pub backup_verify: String,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            workers: 2,
            max_attempts: 5,
            reconcile: "*/5 * * * *".to_string(),
            // After midnight's last minute snapshot has been written.
            equity_daily: "10 0 * * *".to_string(),
            candle_rollup: "3 * * * *".to_string(),
            retention: "30 3 * * *".to_string(),
            backup: "0 2 * * *".to_string(),
            backup_verify: "0 4 * * 0".to_string(),
        }
    }
}

impl JobsConfig {
    /// Each job's schedule, by job name (empty: off).
    #[must_use]
    pub fn schedules(&self) -> [(&'static str, &str); 6] {
        [
            ("reconcile", &self.reconcile),
            ("equity_daily", &self.equity_daily),
            ("candle_rollup", &self.candle_rollup),
            ("retention", &self.retention),
            ("backup", &self.backup),
            ("backup_verify", &self.backup_verify),
        ]
    }
}

/// `[retention]`: how many days of each kind of data to keep; 0 keeps it forever.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    pub candles_1m_days: u32,
    pub candles_5m_days: u32,
    pub candles_1h_days: u32,
    pub candles_1d_days: u32,
    /// The minute-by-minute equity history (the end-of-day one is kept).
    pub equity_minutes_days: u32,
    pub audit_days: u32,
    /// Finished and dead jobs.
    pub jobs_days: u32,
    /// Sessions that have expired.
    pub sessions_days: u32,
    /// Finished backtests and their reports.
    pub backtests_days: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            candles_1m_days: 30,
            candles_5m_days: 365,
            candles_1h_days: 0,
            candles_1d_days: 0,
            equity_minutes_days: 90,
            audit_days: 730,
            jobs_days: 30,
            sessions_days: 7,
            backtests_days: 0,
        }
    }
}

/// `[backup]`: where backups go and how they are protected and kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackupConfig {
    /// `file:///var/lib/tradecore/backups`, or an S3-compatible bucket:
    /// `s3://BUCKET/PREFIX?endpoint=https://s3.example.com&region=us-east-1`
    /// (AWS S3, Backblaze B2, Wasabi, MinIO). Unset: no backups are taken.
    pub target: Option<String>,
    /// The encryption key: 32 random bytes as 64 hex digits or base64
    /// (`openssl rand -hex 32`). Required with a target. A secret.
    pub key: Option<Secret<String>>,
    /// S3 credentials. Secrets.
    pub s3_access_key_id: Option<Secret<String>>,
    pub s3_secret_access_key: Option<Secret<String>>,
    /// Keep every backup this many days...
    pub keep_daily_days: u32,
    /// ...then one a week (the first of its ISO week) this many days...
    pub keep_weekly_days: u32,
    /// ...then one a month (the first of its month) this many days.
    pub keep_monthly_days: u32,
}

impl Default for BackupConfig {
    fn default() -> Self {
        Self {
            target: None,
            key: None,
            s3_access_key_id: None,
            s3_secret_access_key: None,
            keep_daily_days: 30,
            keep_weekly_days: 90,
            keep_monthly_days: 365,
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

/// `[trading]`: switches that decide whether real money can move.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TradingConfig {
    /// Allow orders on live (non-testnet) venue accounts. Off by default, so
    /// that only paper accounts and testnets trade until someone decides otherwise.
    pub live_enabled: bool,
    /// The key venue credentials (API keys, secrets, refresh tokens) are
    /// encrypted with at rest: 32 random bytes as 64 hex digits or base64
    /// (`tradecore secrets new-key`). Needed to link a venue account; change
    /// it with `tradecore secrets rotate`. A secret.
    pub credentials_key: Option<Secret<String>>,
}

/// `[venues]`: where the live venue adapters connect. Unset URLs mean each
/// venue's documented endpoint for the credential's environment (Binance
/// spot testnet or production, TastyTrade sandbox or production); setting
/// one points every account of that venue elsewhere (a proxy, or a local
/// fake in tests).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VenuesConfig {
    /// Binance spot REST base URL (`https://testnet.binance.vision`).
    pub binance_rest_url: Option<String>,
    /// Binance WebSocket API URL, for the user data stream
    /// (`wss://ws-api.testnet.binance.vision/ws-api/v3`).
    pub binance_ws_api_url: Option<String>,
    /// Binance market streams base URL (`wss://stream.testnet.binance.vision`).
    pub binance_stream_url: Option<String>,
    /// TastyTrade REST base URL (`https://api.cert.tastyworks.com`).
    pub tastytrade_api_url: Option<String>,
    /// TastyTrade account streamer URL (`wss://streamer.cert.tastyworks.com`).
    pub tastytrade_streamer_url: Option<String>,
    /// DXLink URL; unset: the one TastyTrade's quote token names.
    pub tastytrade_dxlink_url: Option<String>,
    /// After a placement whose outcome is unknown (timeout, 5xx), how long
    /// to wait before looking the order up. Longer than Binance's
    /// `recvWindow` (5 s), so an order not found then can no longer arrive.
    pub settle_delay_ms: u64,
    /// How often each live account is reconciled with its venue besides on
    /// start and on reconnect (seconds; 0 turns the timer off and leaves
    /// only the `jobs.reconcile` schedule).
    pub reconcile_seconds: u64,
}

impl Default for VenuesConfig {
    fn default() -> Self {
        Self {
            binance_rest_url: None,
            binance_ws_api_url: None,
            binance_stream_url: None,
            tastytrade_api_url: None,
            tastytrade_streamer_url: None,
            tastytrade_dxlink_url: None,
            settle_delay_ms: 6_000,
            reconcile_seconds: 60,
        }
    }
}

/// Reads `"2500.50"` or `100000` into exact [`Money`]. A TOML float is refused:
/// it has already been rounded to binary, which is what `Money` exists to avoid.
fn money_from_text_or_integer<'de, D: Deserializer<'de>>(d: D) -> Result<Money, D::Error> {
    struct MoneyVisitor;

    impl Visitor<'_> for MoneyVisitor {
        type Value = Money;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an amount such as \"2500.50\" or 100000")
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Money, E> {
            Money::parse(text).map_err(E::custom)
        }

        fn visit_i64<E: de::Error>(self, units: i64) -> Result<Money, E> {
            Ok(Money::from_int(units))
        }

        fn visit_u64<E: de::Error>(self, units: u64) -> Result<Money, E> {
            i64::try_from(units).map(Money::from_int).map_err(|_| E::custom(format!("{units} is out of range")))
        }

        fn visit_f64<E: de::Error>(self, value: f64) -> Result<Money, E> {
            Err(E::custom(format!(
                "{value} is a floating-point number; write amounts with decimals as a string, \
                 such as \"{value}\", so that they stay exact"
            )))
        }
    }

    d.deserialize_any(MoneyVisitor)
}

// ---------------------------------------------------------------------------
// The list of keys

/// How an environment variable's text becomes a TOML value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Taken verbatim: addresses, URLs, passwords, amounts, names. A password
    /// `12345` stays the string "12345".
    Text,
    /// Parsed as a TOML integer when it is one; otherwise kept as text so that
    /// the type error names the key.
    Integer,
    /// `true` or `false`, in any case.
    Bool,
    /// A TOML array (`["a", "b"]`) or a comma-separated list (`a,b`).
    List,
}

/// One configuration key.
#[derive(Debug, Clone, Copy)]
struct KeySpec {
    section: &'static str,
    key: &'static str,
    kind: Kind,
    /// Never shown; errors about its value do not quote the value.
    secret: bool,
    /// May be unset (`Option`); an empty environment value unsets it.
    optional: bool,
    /// Accepts `TRADECORE_<SECTION>__<KEY>_FILE`.
    from_file: bool,
}

impl KeySpec {
    const fn new(section: &'static str, key: &'static str, kind: Kind) -> Self {
        Self { section, key, kind, secret: false, optional: false, from_file: false }
    }

    const fn optional(self) -> Self {
        Self { optional: true, ..self }
    }

    const fn readable_from_file(self) -> Self {
        Self { from_file: true, ..self }
    }

    const fn secret(self) -> Self {
        Self { secret: true, from_file: true, ..self }
    }

    /// `server.listen`: how errors, sources and the docs name the key.
    fn name(&self) -> String {
        format!("{}.{}", self.section, self.key)
    }

    /// `TRADECORE_SERVER__LISTEN`.
    fn env_name(&self) -> String {
        format!("{ENV_PREFIX}{}__{}", self.section.to_ascii_uppercase(), self.key.to_ascii_uppercase())
    }
}

/// Every key, in the order the masked output and the docs show them. A test
/// checks this list against the structs above.
const KEYS: &[KeySpec] = &[
    KeySpec::new("server", "listen", Kind::Text),
    KeySpec::new("server", "public_origins", Kind::List),
    KeySpec::new("server", "trusted_proxies", Kind::List),
    KeySpec::new("server", "secure_cookies", Kind::Bool),
    KeySpec::new("server", "max_body_bytes", Kind::Integer),
    KeySpec::new("server", "shutdown_grace_seconds", Kind::Integer),
    // A PostgreSQL URL often carries a password, so it may come from a file.
    KeySpec::new("database", "url", Kind::Text).readable_from_file(),
    KeySpec::new("database", "max_connections", Kind::Integer),
    KeySpec::new("database", "sqlite_full_sync", Kind::Bool),
    KeySpec::new("redis", "url", Kind::Text).secret().optional(),
    KeySpec::new("auth", "open_signup", Kind::Bool),
    KeySpec::new("auth", "admin_password", Kind::Text).secret().optional(),
    KeySpec::new("auth", "session_ttl_hours", Kind::Integer),
    KeySpec::new("auth", "login_attempts_per_minute", Kind::Integer),
    KeySpec::new("rate_limit", "per_ip_per_minute", Kind::Integer),
    KeySpec::new("rate_limit", "per_token_per_minute", Kind::Integer),
    KeySpec::new("paper", "starting_cash", Kind::Text),
    KeySpec::new("paper", "instruments", Kind::List),
    KeySpec::new("paper", "ticks_per_second", Kind::Integer),
    KeySpec::new("paper", "seed", Kind::Integer).optional(),
    KeySpec::new("log", "format", Kind::Text),
    KeySpec::new("log", "level", Kind::Text),
    KeySpec::new("metrics", "listen", Kind::Text),
    KeySpec::new("cluster", "advertise_url", Kind::Text).optional(),
    KeySpec::new("cluster", "lease_seconds", Kind::Integer),
    KeySpec::new("jobs", "workers", Kind::Integer),
    KeySpec::new("jobs", "max_attempts", Kind::Integer),
    KeySpec::new("jobs", "reconcile", Kind::Text),
    KeySpec::new("jobs", "equity_daily", Kind::Text),
    KeySpec::new("jobs", "candle_rollup", Kind::Text),
    KeySpec::new("jobs", "retention", Kind::Text),
    KeySpec::new("jobs", "backup", Kind::Text),
    KeySpec::new("jobs", "backup_verify", Kind::Text),
    KeySpec::new("retention", "candles_1m_days", Kind::Integer),
    KeySpec::new("retention", "candles_5m_days", Kind::Integer),
    KeySpec::new("retention", "candles_1h_days", Kind::Integer),
    KeySpec::new("retention", "candles_1d_days", Kind::Integer),
    KeySpec::new("retention", "equity_minutes_days", Kind::Integer),
    KeySpec::new("retention", "audit_days", Kind::Integer),
    KeySpec::new("retention", "jobs_days", Kind::Integer),
    KeySpec::new("retention", "sessions_days", Kind::Integer),
    KeySpec::new("retention", "backtests_days", Kind::Integer),
    KeySpec::new("backup", "target", Kind::Text).optional(),
    KeySpec::new("backup", "key", Kind::Text).secret().optional(),
    KeySpec::new("backup", "s3_access_key_id", Kind::Text).secret().optional(),
    KeySpec::new("backup", "s3_secret_access_key", Kind::Text).secret().optional(),
    KeySpec::new("backup", "keep_daily_days", Kind::Integer),
    KeySpec::new("backup", "keep_weekly_days", Kind::Integer),
    KeySpec::new("backup", "keep_monthly_days", Kind::Integer),
    KeySpec::new("trading", "live_enabled", Kind::Bool),
    KeySpec::new("trading", "credentials_key", Kind::Text).secret().optional(),
    KeySpec::new("venues", "binance_rest_url", Kind::Text).optional(),
    KeySpec::new("venues", "binance_ws_api_url", Kind::Text).optional(),
    KeySpec::new("venues", "binance_stream_url", Kind::Text).optional(),
    KeySpec::new("venues", "tastytrade_api_url", Kind::Text).optional(),
    KeySpec::new("venues", "tastytrade_streamer_url", Kind::Text).optional(),
    KeySpec::new("venues", "tastytrade_dxlink_url", Kind::Text).optional(),
    KeySpec::new("venues", "settle_delay_ms", Kind::Integer),
    KeySpec::new("venues", "reconcile_seconds", Kind::Integer),
];

/// The schedule keys, for naming the one that is wrong.
const JOB_KEYS: [&str; 6] = [
    "jobs.reconcile",
    "jobs.equity_daily",
    "jobs.candle_rollup",
    "jobs.retention",
    "jobs.backup",
    "jobs.backup_verify",
];

fn find_key(section: &str, key: &str) -> Option<&'static KeySpec> {
    KEYS.iter().find(|k| k.section == section && k.key == key)
}

fn sections() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for spec in KEYS {
        if !out.contains(&spec.section) {
            out.push(spec.section);
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Sources and errors

/// Where a key's effective value came from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Source {
    #[default]
    Default,
    /// The configuration file.
    File(PathBuf),
    /// An environment variable holding the value.
    Env { var: String },
    /// A file named by a `…_FILE` environment variable.
    EnvFile { var: String, path: PathBuf },
    /// A command-line flag (see [`Override`]).
    Flag { flag: String },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("the default"),
            Self::File(path) => write!(f, "{}", path.display()),
            Self::Env { var } => f.write_str(var),
            Self::EnvFile { var, path } => write!(f, "{var} ({})", path.display()),
            Self::Flag { flag } => f.write_str(flag),
        }
    }
}

/// Which layer set each key: what `tradecore config show` annotates.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sources(BTreeMap<String, Source>);

impl Sources {
    /// The source of `key` (`"server.listen"`); [`Source::Default`] for keys
    /// nothing overrode.
    #[must_use]
    pub fn get(&self, key: &str) -> &Source {
        static DEFAULT: Source = Source::Default;
        self.0.get(key).unwrap_or(&DEFAULT)
    }

    /// The keys set by the file or the environment, in key order.
    pub fn overridden(&self) -> impl Iterator<Item = (&str, &Source)> {
        self.0.iter().map(|(key, source)| (key.as_str(), source))
    }

    fn set(&mut self, spec: &KeySpec, source: Source) {
        self.0.insert(spec.name(), source);
    }
}

/// A value given on the command line (`tradecore serve --listen 0.0.0.0:9000`):
/// the last layer, winning over the file and the environment.
///
/// Flags are a layer of their own rather than extra environment variables so
/// that `--database-url` does not collide with `TRADECORE_DATABASE__URL_FILE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// The key it sets: `server.listen`.
    pub key: String,
    /// How the user wrote it, for messages: `--listen`.
    pub flag: String,
    /// The text, read like an environment variable's.
    pub value: String,
}

impl Override {
    #[must_use]
    pub fn new(key: &str, flag: &str, value: impl Into<String>) -> Self {
        Self { key: key.to_string(), flag: flag.to_string(), value: value.into() }
    }
}

/// One thing wrong with a key's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `section.key`.
    pub key: String,
    /// Where the value came from, so the user knows what to edit.
    pub origin: Source,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Source::Default => write!(f, "{}: {}", self.key, self.message),
            origin => write!(f, "{} (from {origin}): {}", self.key, self.message),
        }
    }
}

/// Why the configuration could not be loaded. Every message names the key,
/// variable or file to fix, and none quotes a secret.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {}: {source}", path.display())]
    ReadFile { path: PathBuf, source: std::io::Error },
    #[error("{}:{line}:{column}: TOML syntax error: {message}", path.display())]
    Syntax { path: PathBuf, line: usize, column: usize, message: String },
    #[error("{}: `{section}` must be a table: write `[{section}]` and its keys below it", path.display())]
    NotATable { path: PathBuf, section: String },
    #[error("{}: `[{section}]` is not a configuration section{}", path.display(), did_you_mean(.suggestion))]
    UnknownSection { path: PathBuf, section: String, suggestion: Option<String> },
    #[error("{}: `{key}` is not a configuration key{}", path.display(), did_you_mean(.suggestion))]
    UnknownFileKey { path: PathBuf, key: String, suggestion: Option<String> },
    #[error("{var} is not a configuration key{}", env_hint(.suggestion))]
    UnknownEnv { var: String, suggestion: Option<String> },
    #[error("{var}: `{key}` cannot be read from a file (only secrets can); set {plain} instead")]
    FileNotAllowed { var: String, key: String, plain: String },
    #[error("{} set `{key}`; set only one of them", list_vars(.vars))]
    Conflict { key: String, vars: Vec<String> },
    #[error("cannot read {} (named by {var}): {source}", path.display())]
    SecretFile { var: String, path: PathBuf, source: std::io::Error },
    #[error("{} (named by {var}) is empty", path.display())]
    EmptySecretFile { var: String, path: PathBuf },
    #[error("{flag} sets `{key}`, which is not a configuration key")]
    UnknownOverride { flag: String, key: String },
    #[error("{var} is not valid UTF-8")]
    NotUnicode { var: String },
    #[error("invalid configuration:{}", list_problems(.0))]
    Invalid(Vec<Problem>),
    #[error("internal error while building the configuration: {0}")]
    Internal(String),
}

fn did_you_mean(suggestion: &Option<String>) -> String {
    suggestion.as_ref().map(|s| format!("; did you mean {s}?")).unwrap_or_default()
}

fn env_hint(suggestion: &Option<String>) -> String {
    match suggestion {
        Some(_) => did_you_mean(suggestion),
        None => format!("; variables starting with {ENV_PREFIX} must name one (see docs/configuration.md)"),
    }
}

fn list_vars(vars: &[String]) -> String {
    match vars {
        [a, b] => format!("{a} and {b} both"),
        [rest @ .., last] => format!("{} and {last} all", rest.join(", ")),
        [] => String::new(),
    }
}

fn list_problems(problems: &[Problem]) -> String {
    match problems {
        [one] => format!(" {one}"),
        many => many.iter().map(|p| format!("\n  - {p}")).collect(),
    }
}

// ---------------------------------------------------------------------------
// Loading

/// Loads the configuration: defaults, then the file at `path` (or the one named
/// by `TRADECORE_CONFIG` in `env`), then the `TRADECORE_*` variables in `env`.
///
/// `env` is passed in rather than read so that tests never touch the process
/// environment; [`load_from_process`] reads the real one.
pub fn load(path: Option<&Path>, env: &[(String, String)]) -> Result<Config, ConfigError> {
    load_with_sources(path, env).map(|(config, _)| config)
}

/// [`load`] with the process environment.
pub fn load_from_process(path: Option<&Path>) -> Result<Config, ConfigError> {
    load(path, &process_env()?)
}

/// The process's `TRADECORE_*` variables, for [`load`] and [`load_with_sources`].
pub fn process_env() -> Result<Vec<(String, String)>, ConfigError> {
    let mut out = Vec::new();
    for (name, value) in std::env::vars_os() {
        // A name that is not UTF-8 cannot be one of ours.
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with(ENV_PREFIX) {
            continue;
        }
        let value = value.into_string().map_err(|_| ConfigError::NotUnicode { var: name.to_string() })?;
        out.push((name.to_string(), value));
    }
    Ok(out)
}

/// [`load`], also returning which layer set each key (for `config show`).
pub fn load_with_sources(path: Option<&Path>, env: &[(String, String)]) -> Result<(Config, Sources), ConfigError> {
    load_with_overrides(path, env, &[])
}

/// [`load_with_sources`] with command-line flags applied last.
pub fn load_with_overrides(
    path: Option<&Path>,
    env: &[(String, String)],
    overrides: &[Override],
) -> Result<(Config, Sources), ConfigError> {
    // Sorted, so that errors come out in the same order on every run; a name
    // given twice keeps its last value, as a shell would.
    let env: BTreeMap<&str, &str> =
        env.iter().filter(|(name, _)| name.starts_with(ENV_PREFIX)).map(|(n, v)| (n.as_str(), v.as_str())).collect();

    let mut table = toml::Table::try_from(Config::default()).map_err(|e| ConfigError::Internal(e.to_string()))?;
    let mut sources = Sources::default();

    let env_path = env.get(CONFIG_PATH_ENV).filter(|p| !p.is_empty()).map(PathBuf::from);
    if let Some(path) = path.map(Path::to_path_buf).or(env_path) {
        merge_file(&mut table, &mut sources, &path)?;
    }
    merge_env(&mut table, &mut sources, &env)?;
    for flag in overrides {
        let spec = flag
            .key
            .split_once('.')
            .and_then(|(section, key)| find_key(section, key))
            .ok_or_else(|| ConfigError::UnknownOverride { flag: flag.flag.clone(), key: flag.key.clone() })?;
        let source = Source::Flag { flag: flag.flag.clone() };
        let value = env_value(spec, flag.value.clone(), &source)?;
        set_value(&mut table, spec, value);
        sources.set(spec, source);
    }
    check_types(&table, &sources)?;

    // Every value has passed `check_types`, so this only fails on a bug here.
    let config: Config = table.try_into().map_err(|e| ConfigError::Internal(e.message().to_string()))?;
    config.check(&sources)?;
    Ok((config, sources))
}

/// Sets (or with `None` removes) one key in the merged table.
fn set_value(table: &mut toml::Table, spec: &KeySpec, value: Option<toml::Value>) {
    if let Some(toml::Value::Table(section)) = table.get_mut(spec.section) {
        match value {
            Some(value) => section.insert(spec.key.to_string(), value),
            None => section.remove(spec.key),
        };
        return;
    }
    let mut section = toml::Table::new();
    if let Some(value) = value {
        section.insert(spec.key.to_string(), value);
    }
    table.insert(spec.section.to_string(), toml::Value::Table(section));
}

fn merge_file(table: &mut toml::Table, sources: &mut Sources, path: &Path) -> Result<(), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile { path: path.into(), source })?;
    let file: toml::Table = toml::from_str(&text).map_err(|e| {
        let (line, column) = line_column(&text, e.span().map_or(0, |s| s.start));
        ConfigError::Syntax { path: path.into(), line, column, message: e.message().trim().to_string() }
    })?;
    for (section, value) in file {
        let known = sections().contains(&section.as_str());
        let keys = match value {
            toml::Value::Table(keys) if known => keys,
            toml::Value::Table(_) => {
                let suggestion = closest(&section, sections().iter().map(|s| (s.to_string(), format!("`[{s}]`"))));
                return Err(ConfigError::UnknownSection { path: path.into(), section, suggestion });
            }
            _ if known => return Err(ConfigError::NotATable { path: path.into(), section }),
            // `listen = …` above every `[section]` header.
            _ => {
                let suggestion = suggest_file_key("", &section);
                return Err(ConfigError::UnknownFileKey { path: path.into(), key: section, suggestion });
            }
        };
        for (key, value) in keys {
            let Some(spec) = find_key(&section, &key) else {
                return Err(ConfigError::UnknownFileKey {
                    path: path.into(),
                    suggestion: suggest_file_key(&section, &key),
                    key: format!("{section}.{key}"),
                });
            };
            set_value(table, spec, Some(value));
            sources.set(spec, Source::File(path.into()));
        }
    }
    Ok(())
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// What an environment variable sets.
enum EnvTarget {
    /// Not configuration (the file path, test settings).
    Ignored,
    Key {
        spec: &'static KeySpec,
        from_file: bool,
    },
}

fn classify(var: &str) -> Result<EnvTarget, ConfigError> {
    if var == CONFIG_PATH_ENV || var.starts_with(TEST_ENV_PREFIX) {
        return Ok(EnvTarget::Ignored);
    }
    let (base, from_file) = match var.strip_suffix(FILE_SUFFIX) {
        Some(base) => (base, true),
        None => (var, false),
    };
    // The plain name first, so that a key whose name ended in `_file` would
    // still be found as itself.
    let spec = env_key(var).map(|spec| (spec, false)).or_else(|| env_key(base).map(|spec| (spec, from_file)));
    match spec {
        Some((spec, true)) if !spec.from_file => {
            Err(ConfigError::FileNotAllowed { var: var.to_string(), key: spec.name(), plain: base.to_string() })
        }
        Some((spec, from_file)) => Ok(EnvTarget::Key { spec, from_file }),
        None => Err(ConfigError::UnknownEnv { var: var.to_string(), suggestion: suggest_env(var) }),
    }
}

/// The key a variable name (without `_FILE`) sets, by its canonical name or an alias.
fn env_key(var: &str) -> Option<&'static KeySpec> {
    if let Some((_, section, key)) = ALIASES.iter().find(|(alias, _, _)| *alias == var) {
        return find_key(section, key);
    }
    let (section, key) = var.strip_prefix(ENV_PREFIX)?.split_once("__")?;
    KEYS.iter().find(|k| k.section.eq_ignore_ascii_case(section) && k.key.eq_ignore_ascii_case(key))
}

fn merge_env(table: &mut toml::Table, sources: &mut Sources, env: &BTreeMap<&str, &str>) -> Result<(), ConfigError> {
    // Grouped by key first, so that two variables setting one key are caught
    // whichever order they come in.
    let mut by_key: BTreeMap<String, (&'static KeySpec, Vec<EnvSetting<'_>>)> = BTreeMap::new();
    for (&var, &value) in env {
        if let EnvTarget::Key { spec, from_file } = classify(var)? {
            by_key.entry(spec.name()).or_insert_with(|| (spec, Vec::new())).1.push(EnvSetting {
                var,
                from_file,
                value,
            });
        }
    }
    for (key, (spec, settings)) in by_key {
        let [EnvSetting { var, from_file, value: raw }] = settings.as_slice() else {
            return Err(ConfigError::Conflict { key, vars: settings.iter().map(|s| s.var.to_string()).collect() });
        };
        let (text, source) = if *from_file {
            let path = PathBuf::from(raw);
            (read_secret_file(var, &path)?, Source::EnvFile { var: var.to_string(), path })
        } else {
            (raw.to_string(), Source::Env { var: var.to_string() })
        };
        let value = env_value(spec, text, &source)?;
        set_value(table, spec, value);
        sources.set(spec, source);
    }
    Ok(())
}

/// One variable setting a key.
struct EnvSetting<'a> {
    var: &'a str,
    from_file: bool,
    value: &'a str,
}

/// Reads a `…_FILE` secret. The trailing newline that editors and `echo` add
/// is not part of the secret.
fn read_secret_file(var: &str, path: &Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::SecretFile {
        var: var.to_string(),
        path: path.into(),
        source,
    })?;
    let text = text.trim_end_matches(['\n', '\r']);
    if text.is_empty() {
        // Most likely a secret that was not mounted; starting without it
        // would silently fall back to a default.
        return Err(ConfigError::EmptySecretFile { var: var.to_string(), path: path.into() });
    }
    Ok(text.to_string())
}

/// Turns an environment value into the TOML value for `spec`; `None` unsets an
/// optional key (so `TRADECORE_REDIS__URL=` in a compose file means "no Redis").
fn env_value(spec: &KeySpec, text: String, source: &Source) -> Result<Option<toml::Value>, ConfigError> {
    if spec.optional && text.is_empty() {
        return Ok(None);
    }
    let value = match spec.kind {
        Kind::Text => toml::Value::String(text),
        // Anything that does not parse stays a string, and `check_types`
        // reports it against the key ("expected u32").
        Kind::Integer => match text.trim().parse::<toml::Value>() {
            Ok(value) if !value.is_str() => value,
            _ => toml::Value::String(text),
        },
        Kind::Bool => match text.trim().to_ascii_lowercase().as_str() {
            "true" => toml::Value::Boolean(true),
            "false" => toml::Value::Boolean(false),
            _ => toml::Value::String(text),
        },
        Kind::List => parse_list(&text).map_err(|message| {
            ConfigError::Invalid(vec![Problem { key: spec.name(), origin: source.clone(), message }])
        })?,
    };
    Ok(Some(value))
}

/// `["a", "b"]` as TOML, or `a,b` for the common case of plain names.
fn parse_list(text: &str) -> Result<toml::Value, String> {
    let trimmed = text.trim();
    if trimmed.starts_with('[') {
        return match trimmed.parse::<toml::Value>() {
            Ok(value @ toml::Value::Array(_)) => Ok(value),
            Ok(_) => Err("expected a list".to_string()),
            Err(e) => Err(format!("not a TOML array ({})", e.message().trim())),
        };
    }
    let items = trimmed.split(',').map(str::trim).filter(|s| !s.is_empty());
    Ok(toml::Value::Array(items.map(|s| toml::Value::String(s.to_string())).collect()))
}

/// Deserializes each overridden key on its own, so that a type error names its
/// key (and every wrong key is reported, not just the first).
fn check_types(table: &toml::Table, sources: &Sources) -> Result<(), ConfigError> {
    let mut problems = Vec::new();
    for (key, origin) in sources.overridden() {
        let Some((section, field)) = key.split_once('.') else { continue };
        let Some(spec) = find_key(section, field) else { continue };
        let Some(value) = table.get(section).and_then(|s| s.get(field)) else { continue };
        // Every field has a default, so a section holding this one key alone
        // deserializes exactly when the value has the right type.
        let mut probe_section = toml::Table::new();
        probe_section.insert(field.to_string(), value.clone());
        let mut probe = toml::Table::new();
        probe.insert(section.to_string(), toml::Value::Table(probe_section));
        if let Err(e) = probe.try_into::<Config>() {
            // serde quotes the offending value; for a secret that is the secret.
            let message = if spec.secret { "expected a string".to_string() } else { e.message().trim().to_string() };
            problems.push(Problem { key: key.to_string(), origin: origin.clone(), message });
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(ConfigError::Invalid(problems)) }
}

// ---------------------------------------------------------------------------
// Validation

impl Config {
    /// Checks the rules serde cannot express (ranges, URL schemes, duplicates).
    /// [`load`] runs it; call it on a `Config` built in code.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check(&Sources::default())
    }

    fn check(&self, sources: &Sources) -> Result<(), ConfigError> {
        let mut problems = self.problems();
        // In the order of the docs, whatever order the checks run in.
        problems.sort_by_key(|(key, _)| KEYS.iter().position(|k| k.name() == *key));
        let problems: Vec<Problem> = problems
            .into_iter()
            .map(|(key, message)| Problem { key: key.to_string(), origin: sources.get(key).clone(), message })
            .collect();
        if problems.is_empty() { Ok(()) } else { Err(ConfigError::Invalid(problems)) }
    }

    /// Every rule broken, as (key, message). Messages never quote secrets.
    fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let mut at_least_one = |key: &'static str, value: u64| {
            if value < 1 {
                out.push((key, "must be at least 1".to_string()));
            }
        };
        at_least_one("server.max_body_bytes", self.server.max_body_bytes as u64);
        at_least_one("database.max_connections", u64::from(self.database.max_connections));
        at_least_one("auth.session_ttl_hours", u64::from(self.auth.session_ttl_hours));
        at_least_one("auth.login_attempts_per_minute", u64::from(self.auth.login_attempts_per_minute));
        at_least_one("rate_limit.per_ip_per_minute", u64::from(self.rate_limit.per_ip_per_minute));
        at_least_one("rate_limit.per_token_per_minute", u64::from(self.rate_limit.per_token_per_minute));
        at_least_one("jobs.max_attempts", u64::from(self.jobs.max_attempts));

        if self.cluster.lease_seconds < 3 {
            out.push(("cluster.lease_seconds", "must be at least 3".to_string()));
        }
        if let Some(url) = &self.cluster.advertise_url
            && let Err(why) = check_origin(url)
        {
            out.push(("cluster.advertise_url", format!("'{url}' {why}")));
        }
        for network in &self.server.trusted_proxies {
            if let Err(why) = crate::client_ip::Network::parse(network) {
                out.push(("server.trusted_proxies", format!("'{network}' {why}")));
            }
        }
        for origin in &self.server.public_origins {
            if let Err(why) = check_origin(origin) {
                out.push(("server.public_origins", format!("'{origin}' {why}")));
            }
        }

        let url = &self.database.url;
        if !(url.starts_with("sqlite:") || self.database.is_postgres()) {
            // Quote only the scheme: the rest may hold a password.
            let scheme = url.split_once(':').map_or("(none)", |(scheme, _)| scheme);
            out.push((
                "database.url",
                format!("must start with sqlite: or postgres:// (or postgresql://), got scheme '{scheme}'"),
            ));
        }

        if let Some(url) = &self.redis.url {
            let url = url.expose();
            if !["redis://", "rediss://", "redis+unix://", "unix://"].iter().any(|s| url.starts_with(s)) {
                out.push(("redis.url", "must start with redis://, rediss:// or unix:// (value not shown)".to_string()));
            }
        }

        if self.auth.admin_password.as_ref().is_some_and(|p| p.expose().is_empty()) {
            out.push(("auth.admin_password", "must not be empty; leave it unset to get a one-time password".into()));
        }

        if !self.paper.starting_cash.is_positive() {
            out.push(("paper.starting_cash", format!("must be more than 0, got {}", self.paper.starting_cash)));
        }
        if self.paper.instruments.is_empty() {
            out.push(("paper.instruments", "must name at least one instrument".to_string()));
        }
        let mut seen = HashSet::new();
        for symbol in &self.paper.instruments {
            if symbol.is_empty() || symbol.len() > 64 || symbol.chars().any(char::is_whitespace) {
                out.push(("paper.instruments", format!("'{symbol}' must be 1 to 64 characters without spaces")));
            } else if !seen.insert(symbol.as_str()) {
                out.push(("paper.instruments", format!("'{symbol}' is listed twice")));
            }
        }
        for (name, schedule) in self.jobs.schedules() {
            if !schedule.trim().is_empty()
                && let Err(e) = crate::jobs::cron::Cron::parse(schedule)
            {
                out.push((
                    JOB_KEYS.iter().find(|k| k.strip_prefix("jobs.") == Some(name)).copied().unwrap_or("jobs"),
                    e,
                ));
            }
        }
        if let Some(target) = &self.backup.target {
            let s3 = target.starts_with("s3://");
            if !(target.starts_with("file://") || s3) {
                out.push(("backup.target", "must start with file:// or s3://".to_string()));
            }
            if self.backup.key.is_none() {
                out.push(("backup.key", "is required with backup.target: backups are always encrypted".to_string()));
            }
            if s3 && (self.backup.s3_access_key_id.is_none() || self.backup.s3_secret_access_key.is_none()) {
                out.push((
                    "backup.s3_access_key_id",
                    "an s3:// target needs backup.s3_access_key_id and backup.s3_secret_access_key".to_string(),
                ));
            }
        }
        if let Some(key) = &self.backup.key
            && let Err(e) = crate::backup::crypto::parse_key(key.expose())
        {
            out.push(("backup.key", e));
        }
        if let Some(key) = &self.trading.credentials_key
            && let Err(e) = crate::venue_credentials::CredentialsKey::parse(key.expose())
        {
            out.push(("trading.credentials_key", e));
        }
        if self.jobs.workers > 64 {
            out.push(("jobs.workers", format!("must be at most 64, got {}", self.jobs.workers)));
        }

        if !(1..=1000).contains(&self.paper.ticks_per_second) {
            out.push(("paper.ticks_per_second", format!("must be 1 to 1000, got {}", self.paper.ticks_per_second)));
        }

        if self.log.level.trim().is_empty() {
            out.push(("log.level", "must not be empty (try \"info\")".to_string()));
        } else if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            out.push((
                "log.level",
                format!("'{}' is not a log filter ({e}); try \"info\" or \"debug\"", self.log.level),
            ));
        }
        out
    }
}

/// A browser `Origin` is `scheme://host[:port]` exactly; anything more (a
/// path, a trailing slash) would never match what a browser sends.
fn check_origin(origin: &str) -> Result<(), &'static str> {
    let rest = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://"));
    match rest {
        None => Err("must start with https:// or http://"),
        Some("") => Err("has no host"),
        Some(rest) if rest.contains(['/', '?', '#']) => {
            Err("must be only scheme://host[:port], without a path or trailing slash")
        }
        Some(rest) if rest.contains(char::is_whitespace) || rest.contains('@') => Err("is not an origin"),
        Some(_) => Ok(()),
    }
}

// ---------------------------------------------------------------------------
// Showing the configuration

impl Config {
    /// The effective configuration as TOML, secrets shown as `"[redacted]"`
    /// (and a database password inside the URL too), unset optional keys as
    /// comments. For `tradecore config show`; not meant to be loaded back.
    #[must_use]
    pub fn to_masked_toml(&self) -> String {
        self.render(None)
    }

    /// [`Config::to_masked_toml`], with a comment after each key that the file
    /// or the environment set, naming it.
    #[must_use]
    pub fn to_masked_toml_with_sources(&self, sources: &Sources) -> String {
        self.render(Some(sources))
    }

    fn render(&self, sources: Option<&Sources>) -> String {
        // `Secret` serializes as "[redacted]", so the table holds no secret.
        let table = match toml::Table::try_from(self) {
            Ok(table) => table,
            // Only a seed above i64::MAX (not expressible in TOML) gets here.
            Err(e) => return format!("# cannot show the configuration: {e}\n"),
        };
        let mut out = String::new();
        for (i, section) in sections().into_iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            out.push_str(&format!("[{section}]\n"));
            for spec in KEYS.iter().filter(|k| k.section == section) {
                match table.get(section).and_then(|s| s.get(spec.key)) {
                    Some(toml::Value::String(url)) if spec.from_file && !spec.secret => {
                        let shown = toml::Value::String(redact_url(url));
                        out.push_str(&format!("{} = {shown}", spec.key));
                    }
                    Some(value) => out.push_str(&format!("{} = {value}", spec.key)),
                    None => out.push_str(&format!("# {} is not set", spec.key)),
                }
                if let Some(source) = sources.map(|s| s.get(&spec.name()))
                    && *source != Source::Default
                {
                    out.push_str(&format!("  # from {source}"));
                }
                out.push('\n');
            }
        }
        out
    }
}

/// `postgres://user:pw@host/db?password=x` → `postgres://user:[redacted]@host/db?password=[redacted]`.
fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else { return url.to_string() };
    let (head, rest) = url.split_at(scheme_end);
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let mut out = head.to_string();
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            match userinfo.split_once(':') {
                Some((user, _password)) => out.push_str(&format!("{user}:{REDACTED}")),
                None => out.push_str(userinfo),
            }
            out.push('@');
            out.push_str(host);
        }
        None => out.push_str(authority),
    }
    match tail.split_once('?') {
        Some((path, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|param| match param.split_once('=') {
                    Some((name, _)) if name.to_ascii_lowercase().contains("password") => format!("{name}={REDACTED}"),
                    _ => param.to_string(),
                })
                .collect();
            out.push_str(path);
            out.push('?');
            out.push_str(&params.join("&"));
        }
        None => out.push_str(tail),
    }
    out
}

// ---------------------------------------------------------------------------
// Suggestions

/// Levenshtein distance, in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = Vec::with_capacity(b.len() + 1);
        current.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != *cb);
            let delete = previous[j + 1] + 1;
            let insert = current[j] + 1;
            current.push(substitute.min(delete).min(insert));
        }
        previous = current;
    }
    previous.last().copied().unwrap_or(0)
}

/// The candidate (compared by its first string, suggested as its second)
/// closest to `input`, if it is close enough to be a typo of it.
fn closest(input: &str, candidates: impl IntoIterator<Item = (String, String)>) -> Option<String> {
    let input = input.to_ascii_uppercase();
    let limit = (input.chars().count() / 4).clamp(2, 4);
    candidates
        .into_iter()
        .map(|(compare, suggest)| (edit_distance(&input, &compare.to_ascii_uppercase()), suggest))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, suggest)| suggest)
}

/// `foo.listen` → `server.listen` when the key exists in exactly one other
/// section; else the nearest key of the same section.
fn suggest_file_key(section: &str, key: &str) -> Option<String> {
    let elsewhere: Vec<&KeySpec> = KEYS.iter().filter(|k| k.key == key).collect();
    if let [first, ..] = elsewhere.as_slice() {
        let sections: Vec<String> = elsewhere.iter().map(|k| format!("[{}]", k.section)).collect();
        return Some(format!("`{}` in {}", first.key, sections.join(" or ")));
    }
    let same_section = KEYS.iter().filter(|k| k.section == section);
    closest(key, same_section.map(|k| (k.key.to_string(), format!("`{}`", k.name()))))
}

/// Every variable name we accept, to suggest from.
fn env_names() -> Vec<String> {
    let mut names = Vec::new();
    for spec in KEYS {
        names.push(spec.env_name());
        if spec.from_file {
            names.push(format!("{}{FILE_SUFFIX}", spec.env_name()));
        }
    }
    for (alias, section, key) in ALIASES {
        names.push((*alias).to_string());
        if find_key(section, key).is_some_and(|k| k.from_file) {
            names.push(format!("{alias}{FILE_SUFFIX}"));
        }
    }
    names
}

fn suggest_env(var: &str) -> Option<String> {
    let rest = var.strip_prefix(ENV_PREFIX).unwrap_or(var);
    // `TRADECORE_LISTEN`: the key without its section.
    if !rest.contains("__") {
        let matches: Vec<String> =
            KEYS.iter().filter(|k| k.key.eq_ignore_ascii_case(rest)).map(KeySpec::env_name).collect();
        if !matches.is_empty() {
            return Some(matches.join(" or "));
        }
    }
    // `TRADECORE_SERVER_LISTEN`: one underscore where two belong.
    let squash = |s: &str| s.replace('_', "").to_ascii_uppercase();
    if let Some(name) = env_names().into_iter().find(|name| squash(name) == squash(var)) {
        return Some(name);
    }
    closest(
        rest,
        env_names().into_iter().map(|name| (name.strip_prefix(ENV_PREFIX).unwrap_or(&name).to_string(), name.clone())),
    )
}

// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A file under the temp dir with a name no other test (or test run) uses,
    /// removed when dropped.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(tag: &str, contents: &str) -> Self {
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!("tradecore-config-test-{}-{n}-{tag}", std::process::id()));
            std::fs::write(&path, contents).expect("write temp file");
            Self(path)
        }

        fn path(&self) -> &Path {
            &self.0
        }

        fn display(&self) -> String {
            self.0.display().to_string()
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// (name, file contents, environment, fragments the error must contain)
    type ErrorCase<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a [&'a str]);

    fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
        vars.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect()
    }

    fn load_toml(toml: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let file = TempFile::new("cfg.toml", toml);
        load(Some(file.path()), &env(vars))
    }

    fn load_err(toml: &str, vars: &[(&str, &str)]) -> String {
        match load_toml(toml, vars) {
            Ok(config) => panic!("expected an error, got {config:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn defaults_load_with_no_file_and_no_env() {
        let config = load(None, &[]).expect("defaults load");
        assert_eq!(config, Config::default());
        assert_eq!(config.server.listen, "127.0.0.1:8080".parse::<SocketAddr>().unwrap());
        assert!(config.server.public_origins.is_empty());
        assert!(!config.server.secure_cookies);
        assert_eq!(config.server.max_body_bytes, 1 << 20);
        assert_eq!(config.server.shutdown_grace(), Duration::from_secs(10));
        assert_eq!(config.database.url, "sqlite:data/tradecore.db");
        assert!(!config.database.is_postgres());
        assert_eq!(config.database.store_options(), store::StoreOptions::default());
        assert_eq!(config.redis.url, None);
        assert!(!config.auth.open_signup);
        assert_eq!(config.auth.admin_password, None);
        assert_eq!(config.auth.session_ttl(), Duration::from_secs(168 * 3600));
        assert_eq!(config.auth.login_attempts_per_minute, 10);
        assert_eq!(config.rate_limit.per_ip_per_minute, 1000);
        assert_eq!(config.rate_limit.per_token_per_minute, 6000);
        assert_eq!(config.paper.starting_cash, Money::from_int(100_000));
        assert_eq!(config.paper.instruments, ["BTC-USDT", "ETH-USDT", "SOL-USDT", "AAPL", "SPY"]);
        assert_eq!(config.paper.tick_interval(), Duration::from_millis(200));
        assert_eq!(config.paper.seed, None);
        assert_eq!(config.log.format, LogFormat::Human);
        assert_eq!(config.log.level, "info");
        assert!(!config.trading.live_enabled);
        config.validate().expect("defaults are valid");
    }

    #[test]
    fn empty_file_gives_the_defaults() {
        assert_eq!(load_toml("", &[]).expect("empty file loads"), Config::default());
    }

    #[test]
    fn non_config_variables_are_ignored() {
        let vars = [("PATH", "/usr/bin"), ("RUST_LOG", "debug"), ("TRADECORE_TEST_POSTGRES_URL", "postgres://x")];
        assert_eq!(load(None, &env(&vars)).expect("loads"), Config::default());
    }

    #[test]
    fn file_overrides_defaults() {
        let config = load_toml(
            r#"
            [server]
            listen = "0.0.0.0:9000"
            public_origins = ["https://trade.example.com"]
            [database]
            url = "postgres://tradecore@db/tradecore"
            max_connections = 20
            [paper]
            starting_cash = "2500.50"
            instruments = ["BTC-USDT"]
            seed = 42
            [log]
            format = "json"
            [trading]
            live_enabled = true
            "#,
            &[],
        )
        .expect("file loads");
        assert_eq!(config.server.listen, "0.0.0.0:9000".parse::<SocketAddr>().unwrap());
        assert_eq!(config.server.public_origins, ["https://trade.example.com"]);
        assert_eq!(config.database.url, "postgres://tradecore@db/tradecore");
        assert!(config.database.is_postgres());
        assert_eq!(config.database.max_connections, 20);
        assert_eq!(config.paper.starting_cash, Money::parse("2500.5").unwrap());
        assert_eq!(config.paper.instruments, ["BTC-USDT"]);
        assert_eq!(config.paper.seed, Some(42));
        assert_eq!(config.log.format, LogFormat::Json);
        assert!(config.trading.live_enabled);
        // Untouched keys keep their defaults.
        assert_eq!(config.auth, AuthConfig::default());
        assert_eq!(config.paper.ticks_per_second, 5);
    }

    #[test]
    fn env_overrides_file() {
        let toml = "[server]\nlisten = \"0.0.0.0:9000\"\n[auth]\nopen_signup = false\n";
        let (config, sources) = load_with_sources(
            Some(TempFile::new("cfg.toml", toml).path()),
            &env(&[("TRADECORE_SERVER__LISTEN", "127.0.0.1:7000"), ("TRADECORE_AUTH__OPEN_SIGNUP", "true")]),
        )
        .expect("loads");
        assert_eq!(config.server.listen, "127.0.0.1:7000".parse::<SocketAddr>().unwrap());
        assert!(config.auth.open_signup);
        assert_eq!(sources.get("server.listen"), &Source::Env { var: "TRADECORE_SERVER__LISTEN".into() });
        assert_eq!(sources.get("database.url"), &Source::Default);
    }

    #[test]
    fn env_values_are_read_by_the_type_of_their_key() {
        // (name, variable, value, check)
        type Check = fn(&Config) -> bool;
        let cases: &[(&str, &str, &str, Check)] = &[
            ("integer", "TRADECORE_DATABASE__MAX_CONNECTIONS", "20", |c| c.database.max_connections == 20),
            ("bool", "TRADECORE_AUTH__OPEN_SIGNUP", "true", |c| c.auth.open_signup),
            ("bool in capitals", "TRADECORE_SERVER__SECURE_COOKIES", "TRUE", |c| c.server.secure_cookies),
            ("toml array", "TRADECORE_PAPER__INSTRUMENTS", r#"["BTC-USDT"]"#, |c| c.paper.instruments == ["BTC-USDT"]),
            ("comma list", "TRADECORE_PAPER__INSTRUMENTS", "AAPL, SPY", |c| c.paper.instruments == ["AAPL", "SPY"]),
            ("empty list", "TRADECORE_SERVER__PUBLIC_ORIGINS", "", |c| c.server.public_origins.is_empty()),
            ("money with decimals", "TRADECORE_PAPER__STARTING_CASH", "2500.50", |c| {
                c.paper.starting_cash == Money::parse("2500.5").unwrap()
            }),
            ("optional integer", "TRADECORE_PAPER__SEED", "7", |c| c.paper.seed == Some(7)),
            ("numeric password stays text", "TRADECORE_AUTH__ADMIN_PASSWORD", "12345678", |c| {
                c.auth.admin_password.as_ref().map(|p| p.expose().as_str()) == Some("12345678")
            }),
            ("empty optional is unset", "TRADECORE_REDIS__URL", "", |c| c.redis.url.is_none()),
            ("enum", "TRADECORE_LOG__FORMAT", "json", |c| c.log.format == LogFormat::Json),
            ("log alias", "TRADECORE_LOG", "debug", |c| c.log.level == "debug"),
            ("ipv6 listen", "TRADECORE_SERVER__LISTEN", "[::]:8080", |c| c.server.listen.is_ipv6()),
        ];
        for (name, var, value, check) in cases {
            let config = load(None, &env(&[(var, value)])).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(check(&config), "{name}: {var}={value} gave {config:?}");
        }
    }

    #[test]
    fn secrets_are_read_from_files() {
        let password = TempFile::new("admin", "s3cret-pass\n");
        let redis = TempFile::new("redis", "redis://:pw@cache:6379/0\r\n");
        let database = TempFile::new("db", "postgres://app:dbpw@db/tradecore\n");
        let (config, sources) = load_with_sources(
            None,
            &env(&[
                ("TRADECORE_AUTH__ADMIN_PASSWORD_FILE", &password.display()),
                ("TRADECORE_REDIS__URL_FILE", &redis.display()),
                ("TRADECORE_DATABASE__URL_FILE", &database.display()),
            ]),
        )
        .expect("loads");
        assert_eq!(config.auth.admin_password.as_ref().map(|p| p.expose().as_str()), Some("s3cret-pass"));
        assert_eq!(config.redis.url.as_ref().map(|u| u.expose().as_str()), Some("redis://:pw@cache:6379/0"));
        assert_eq!(config.database.url, "postgres://app:dbpw@db/tradecore");
        assert_eq!(
            sources.get("auth.admin_password"),
            &Source::EnvFile { var: "TRADECORE_AUTH__ADMIN_PASSWORD_FILE".into(), path: password.path().into() }
        );
    }

    #[test]
    fn secret_file_errors_name_the_variable_and_file() {
        let empty = TempFile::new("empty", "\n");
        let missing = std::env::temp_dir().join(format!("tradecore-config-test-{}-missing", std::process::id()));
        let missing = missing.display().to_string();
        let cases = [
            ("unreadable file", "TRADECORE_AUTH__ADMIN_PASSWORD_FILE", missing.clone(), missing.clone()),
            ("empty file", "TRADECORE_REDIS__URL_FILE", empty.display(), empty.display()),
        ];
        for (name, var, value, expected_path) in cases {
            let err = load(None, &env(&[(var, &value)])).expect_err(name).to_string();
            assert!(err.contains(var) && err.contains(&expected_path), "{name}: {err}");
        }
    }

    #[test]
    fn key_and_key_file_together_are_an_error() {
        let password = TempFile::new("admin", "from-file");
        let cases = [
            ("plain and file", "TRADECORE_AUTH__ADMIN_PASSWORD", "TRADECORE_AUTH__ADMIN_PASSWORD_FILE"),
            ("alias and canonical", "TRADECORE_ADMIN_PASSWORD", "TRADECORE_AUTH__ADMIN_PASSWORD"),
            ("alias file and canonical", "TRADECORE_ADMIN_PASSWORD_FILE", "TRADECORE_AUTH__ADMIN_PASSWORD"),
        ];
        for (name, a, b) in cases {
            let value = |var: &str| if var.ends_with("_FILE") { password.display() } else { "from-env".into() };
            let err = load(None, &env(&[(a, &value(a)), (b, &value(b))])).expect_err(name).to_string();
            assert!(err.contains(&format!("{a} and {b} both set `auth.admin_password`")), "{name}: {err}");
            assert!(!err.contains("from-env") && !err.contains("from-file"), "{name} leaks the secret: {err}");
        }
    }

    #[test]
    fn file_suffix_is_refused_for_keys_that_are_not_secrets() {
        let err = load(None, &env(&[("TRADECORE_SERVER__LISTEN_FILE", "/tmp/x")])).expect_err("refused").to_string();
        assert!(err.contains("TRADECORE_SERVER__LISTEN_FILE") && err.contains("TRADECORE_SERVER__LISTEN "), "{err}");
    }

    #[test]
    fn flags_win_over_everything() {
        let url_file = TempFile::new("db", "postgres://app:pw@db/x\n");
        let (config, sources) = load_with_overrides(
            Some(TempFile::new("cfg.toml", "[server]\nlisten = \"0.0.0.0:1\"\n").path()),
            &env(&[("TRADECORE_SERVER__LISTEN", "0.0.0.0:2"), ("TRADECORE_DATABASE__URL_FILE", &url_file.display())]),
            &[
                Override::new("server.listen", "--listen", "0.0.0.0:3"),
                Override::new("database.url", "--database-url", "sqlite:x.db"),
            ],
        )
        .expect("loads");
        assert_eq!(config.server.listen, "0.0.0.0:3".parse::<SocketAddr>().unwrap());
        assert_eq!(config.database.url, "sqlite:x.db");
        assert_eq!(sources.get("database.url"), &Source::Flag { flag: "--database-url".into() });

        let err = load_with_overrides(None, &[], &[Override::new("server.listen", "--listen", "nope")])
            .expect_err("bad flag value")
            .to_string();
        assert!(err.contains("server.listen (from --listen)"), "bad flag value: {err}");
        let err = load_with_overrides(None, &[], &[Override::new("server.lisen", "--listen", "0.0.0.0:1")])
            .expect_err("unknown key")
            .to_string();
        assert!(err.contains("--listen") && err.contains("server.lisen"), "unknown key: {err}");
    }

    #[test]
    fn admin_password_alias_works() {
        let config = load(None, &env(&[("TRADECORE_ADMIN_PASSWORD", "correct horse")])).expect("loads");
        assert_eq!(config.auth.admin_password.as_ref().map(|p| p.expose().as_str()), Some("correct horse"));
        let file = TempFile::new("alias", "battery staple\n");
        let config = load(None, &env(&[("TRADECORE_ADMIN_PASSWORD_FILE", &file.display())])).expect("loads");
        assert_eq!(config.auth.admin_password.as_ref().map(|p| p.expose().as_str()), Some("battery staple"));
    }

    #[test]
    fn config_path_can_come_from_the_environment() {
        let file = TempFile::new("cfg.toml", "[paper]\nticks_per_second = 9\n");
        let config = load(None, &env(&[(CONFIG_PATH_ENV, &file.display())])).expect("loads");
        assert_eq!(config.paper.ticks_per_second, 9);
        // An explicit path wins over the variable.
        let other = TempFile::new("other.toml", "[paper]\nticks_per_second = 3\n");
        let config = load(Some(other.path()), &env(&[(CONFIG_PATH_ENV, &file.display())])).expect("loads");
        assert_eq!(config.paper.ticks_per_second, 3);
    }

    #[test]
    fn file_errors_name_the_file_and_the_place() {
        let missing = std::env::temp_dir().join(format!("tradecore-config-test-{}-nofile.toml", std::process::id()));
        let err = load(Some(&missing), &[]).expect_err("missing file").to_string();
        assert!(err.contains(&missing.display().to_string()), "missing file: {err}");

        let err = load_err("[server]\nlisten = \"0.0.0.0:1\"\nmax_body_bytes = = 3\n", &[]);
        assert!(err.contains(":3:") && err.contains("syntax"), "syntax error: {err}");
    }

    #[test]
    fn unknown_keys_are_errors_naming_them() {
        let cases: &[ErrorCase] = &[
            ("unknown section", "[servr]\nlisten = \"0.0.0.0:1\"\n", &[], &["`[servr]`", "did you mean `[server]`?"]),
            ("unknown key", "[server]\nlistn = \"0.0.0.0:1\"\n", &[], &["`server.listn`", "`server.listen`"]),
            ("key in the wrong section", "[database]\nlisten = \"x\"\n", &[], &["`database.listen`", "[server]"]),
            (
                "key outside a section",
                "listen = \"0.0.0.0:1\"\n",
                &[],
                &["`listen` is not a configuration key; did you mean `listen` in [server] or [metrics]?"],
            ),
            ("section that is not a table", "server = 5\n", &[], &["`server` must be a table"]),
            (
                "env typo",
                "",
                &[("TRADECORE_SERVER__LISTN", "0.0.0.0:1")],
                &["TRADECORE_SERVER__LISTN is not a configuration key; did you mean TRADECORE_SERVER__LISTEN?"],
            ),
            (
                "env single underscore",
                "",
                &[("TRADECORE_DATABASE_URL", "sqlite:x")],
                &["TRADECORE_DATABASE_URL", "did you mean TRADECORE_DATABASE__URL?"],
            ),
            (
                "env without section",
                "",
                &[("TRADECORE_OPEN_SIGNUP", "true")],
                &["did you mean TRADECORE_AUTH__OPEN_SIGNUP?"],
            ),
            (
                "env far from anything",
                "",
                &[("TRADECORE_XYZZY", "1")],
                &["TRADECORE_XYZZY is not a configuration key; variables starting with TRADECORE_"],
            ),
        ];
        for (name, toml, vars, fragments) in cases {
            let err = load_err(toml, vars);
            for fragment in *fragments {
                assert!(err.contains(fragment), "{name}: '{err}' lacks '{fragment}'");
            }
        }
    }

    #[test]
    fn type_errors_name_the_key_and_where_it_was_set() {
        let cases: &[ErrorCase] = &[
            (
                "env listen",
                "",
                &[("TRADECORE_SERVER__LISTEN", "notanaddress")],
                &["server.listen (from TRADECORE_SERVER__LISTEN)", "socket address"],
            ),
            (
                "file max_connections",
                "[database]\nmax_connections = \"x\"\n",
                &[],
                &["database.max_connections (from ", "u32"],
            ),
            ("env integer", "", &[("TRADECORE_PAPER__TICKS_PER_SECOND", "fast")], &["paper.ticks_per_second"]),
            ("env bool", "", &[("TRADECORE_TRADING__LIVE_ENABLED", "yes")], &["trading.live_enabled", "bool"]),
            ("negative seed", "[paper]\nseed = -1\n", &[], &["paper.seed"]),
            ("float money", "[paper]\nstarting_cash = 100.5\n", &[], &["paper.starting_cash", "\"100.5\""]),
            ("bad money text", "[paper]\nstarting_cash = \"1e5\"\n", &[], &["paper.starting_cash", "1e5"]),
            ("log format", "[log]\nformat = \"xml\"\n", &[], &["log.format", "human", "json"]),
            ("broken env array", "", &[("TRADECORE_PAPER__INSTRUMENTS", "[\"a\",")], &["paper.instruments", "array"]),
        ];
        for (name, toml, vars, fragments) in cases {
            let err = load_err(toml, vars);
            for fragment in *fragments {
                assert!(err.contains(fragment), "{name}: '{err}' lacks '{fragment}'");
            }
        }
    }

    #[test]
    fn every_type_error_is_reported_at_once() {
        let err = load_err("[database]\nmax_connections = \"x\"\n[paper]\nticks_per_second = true\n", &[]);
        assert!(err.contains("database.max_connections") && err.contains("paper.ticks_per_second"), "{err}");
    }

    #[test]
    fn validation_errors_name_the_key() {
        // (name, file, expected fragments)
        let cases: &[(&str, &str, &[&str])] = &[
            ("database scheme", "[database]\nurl = \"mysql://u:pw@h/db\"\n", &["database.url", "'mysql'"]),
            ("zero connections", "[database]\nmax_connections = 0\n", &["database.max_connections", "at least 1"]),
            ("zero cash", "[paper]\nstarting_cash = 0\n", &["paper.starting_cash", "more than 0"]),
            ("negative cash", "[paper]\nstarting_cash = \"-5\"\n", &["paper.starting_cash"]),
            ("no ticks", "[paper]\nticks_per_second = 0\n", &["paper.ticks_per_second", "1 to 1000"]),
            ("too many ticks", "[paper]\nticks_per_second = 1001\n", &["paper.ticks_per_second"]),
            ("no instruments", "[paper]\ninstruments = []\n", &["paper.instruments", "at least one"]),
            ("duplicate instrument", "[paper]\ninstruments = [\"AAPL\", \"AAPL\"]\n", &["'AAPL' is listed twice"]),
            ("blank instrument", "[paper]\ninstruments = [\"\"]\n", &["paper.instruments"]),
            ("zero ip limit", "[rate_limit]\nper_ip_per_minute = 0\n", &["rate_limit.per_ip_per_minute"]),
            ("zero token limit", "[rate_limit]\nper_token_per_minute = 0\n", &["rate_limit.per_token_per_minute"]),
            ("empty log level", "[log]\nlevel = \" \"\n", &["log.level", "must not be empty"]),
            ("bad log level", "[log]\nlevel = \"server=loud\"\n", &["log.level", "server=loud"]),
            ("origin with slash", "[server]\npublic_origins = [\"https://a.example/\"]\n", &["server.public_origins"]),
            ("origin without scheme", "[server]\npublic_origins = [\"a.example\"]\n", &["https://"]),
            ("proxy by name", "[server]\ntrusted_proxies = [\"nginx\"]\n", &["server.trusted_proxies", "not an IP"]),
            ("proxy prefix", "[server]\ntrusted_proxies = [\"10.0.0.0/40\"]\n", &["0 to 32"]),
            ("redis scheme", "[redis]\nurl = \"http://cache\"\n", &["redis.url", "redis://"]),
            ("empty admin password", "[auth]\nadmin_password = \"\"\n", &["auth.admin_password"]),
            ("zero session", "[auth]\nsession_ttl_hours = 0\n", &["auth.session_ttl_hours"]),
        ];
        for (name, toml, fragments) in cases {
            let err = load_err(toml, &[]);
            assert!(err.contains("invalid configuration"), "{name}: {err}");
            for fragment in *fragments {
                assert!(err.contains(fragment), "{name}: '{err}' lacks '{fragment}'");
            }
        }
    }

    #[test]
    fn validation_reports_every_problem() {
        let err = load_err("[database]\nmax_connections = 0\n[paper]\ninstruments = []\n", &[]);
        assert!(err.contains("database.max_connections") && err.contains("paper.instruments"), "{err}");
    }

    #[test]
    fn secrets_never_show() {
        let secrets = ["hunter2-admin", "redis-pw-42", "pg-pw-17", "query-pw-9"];
        let file = TempFile::new(
            "cfg.toml",
            "[database]\nurl = \"postgres://app:pg-pw-17@db/tradecore?sslmode=require&password=query-pw-9\"\n",
        );
        let (config, sources) = load_with_sources(
            Some(file.path()),
            &env(&[
                ("TRADECORE_ADMIN_PASSWORD", "hunter2-admin"),
                ("TRADECORE_REDIS__URL", "redis://:redis-pw-42@cache"),
            ]),
        )
        .expect("loads");
        let shown = [
            ("masked toml", config.to_masked_toml()),
            ("masked toml with sources", config.to_masked_toml_with_sources(&sources)),
            ("debug", format!("{config:?}")),
            ("secret display", config.auth.admin_password.as_ref().map(ToString::to_string).unwrap_or_default()),
        ];
        for (name, text) in &shown {
            for secret in secrets {
                assert!(!text.contains(secret), "{name} shows {secret}: {text}");
            }
            assert!(text.contains(REDACTED), "{name}: {text}");
        }
        let masked = config.to_masked_toml();
        assert!(
            masked.contains("postgres://app:[redacted]@db/tradecore?sslmode=require&password=[redacted]"),
            "{masked}"
        );
        assert!(masked.parse::<toml::Table>().is_ok(), "masked output is TOML: {masked}");

        // Errors about a secret's value do not quote it either.
        let errors = [
            ("integer password", load_err("[auth]\nadmin_password = 987654321\n", &[])),
            ("bad redis scheme", load_err("", &[("TRADECORE_REDIS__URL", "http://:redis-pw-42@x")])),
            ("bad database scheme", load_err("[database]\nurl = \"mysql://u:pg-pw-17@h\"\n", &[])),
        ];
        for (name, err) in errors {
            for secret in ["987654321", "redis-pw-42", "pg-pw-17"] {
                assert!(!err.contains(secret), "{name} error shows {secret}: {err}");
            }
        }
    }

    #[test]
    fn masked_output_shows_unset_keys_and_sources() {
        let file = TempFile::new("cfg.toml", "[paper]\nseed = 3\n");
        let (config, sources) =
            load_with_sources(Some(file.path()), &env(&[("TRADECORE_SERVER__LISTEN", "0.0.0.0:9000")])).expect("loads");
        let shown = config.to_masked_toml_with_sources(&sources);
        assert!(shown.contains("listen = \"0.0.0.0:9000\"  # from TRADECORE_SERVER__LISTEN"), "{shown}");
        assert!(shown.contains(&format!("seed = 3  # from {}", file.display())), "{shown}");
        assert!(shown.contains("# admin_password is not set"), "{shown}");
        let overridden: Vec<&str> = sources.overridden().map(|(key, _)| key).collect();
        assert_eq!(overridden, ["paper.seed", "server.listen"]);
    }

    #[test]
    fn masked_output_of_a_config_without_secrets_loads_back_the_same() {
        let config = load(None, &env(&[("TRADECORE_PAPER__SEED", "11"), ("TRADECORE_LOG__FORMAT", "json")])).unwrap();
        let again = load_toml(&config.to_masked_toml(), &[]).expect("masked output loads");
        assert_eq!(again, config);
    }

    #[test]
    fn key_list_matches_the_structs() {
        let mut full = Config::default();
        full.redis.url = Some(Secret::new("redis://x".into()));
        full.auth.admin_password = Some(Secret::new("x".into()));
        full.paper.seed = Some(1);
        full.backup.target = Some("file:///b".into());
        full.backup.key = Some(Secret::new("k".into()));
        full.backup.s3_access_key_id = Some(Secret::new("a".into()));
        full.backup.s3_secret_access_key = Some(Secret::new("s".into()));
        full.cluster.advertise_url = Some("http://10.0.0.7:8080".into());
        full.trading.credentials_key = Some(Secret::new("k".into()));
        full.venues.binance_rest_url = Some("http://127.0.0.1:1".into());
        full.venues.tastytrade_api_url = Some("http://127.0.0.1:2".into());
        full.venues.binance_ws_api_url = Some("ws://127.0.0.1:3".into());
        full.venues.binance_stream_url = Some("ws://127.0.0.1:4".into());
        full.venues.tastytrade_streamer_url = Some("ws://127.0.0.1:5".into());
        full.venues.tastytrade_dxlink_url = Some("ws://127.0.0.1:6".into());
        let table = toml::Table::try_from(&full).unwrap();
        let mut from_structs: Vec<String> = table
            .iter()
            .flat_map(|(section, keys)| {
                keys.as_table().unwrap().keys().map(move |key| format!("{section}.{key}")).collect::<Vec<_>>()
            })
            .collect();
        from_structs.sort();
        let mut listed: Vec<String> = KEYS.iter().map(KeySpec::name).collect();
        listed.sort();
        assert_eq!(listed, from_structs);
        for spec in KEYS {
            let optional = table[spec.section].get(spec.key).is_some()
                && toml::Table::try_from(Config::default()).unwrap()[spec.section].get(spec.key).is_none();
            assert_eq!(spec.optional, optional, "{}: optional flag", spec.name());
        }
    }

    #[test]
    fn docs_and_example_mention_every_key() {
        let docs = include_str!("../../../docs/configuration.md");
        let example = include_str!("../../../deploy/tradecore.example.toml");
        for spec in KEYS {
            assert!(docs.contains(&spec.env_name()), "docs/configuration.md lacks {}", spec.env_name());
            assert!(docs.contains(&format!("`{}`", spec.name())), "docs/configuration.md lacks `{}`", spec.name());
            let line = format!("# {} = ", spec.key);
            assert!(example.contains(&line), "tradecore.example.toml lacks '{line}'");
        }
        for (alias, _, _) in ALIASES {
            assert!(docs.contains(alias), "docs/configuration.md lacks {alias}");
        }
        // Every key is commented out, so the example loads as the defaults.
        assert_eq!(load_toml(example, &[]).expect("example loads"), Config::default());
        // And uncommented, it is a valid configuration.
        let uncommented: String = example
            .lines()
            .map(|l| {
                l.strip_prefix("# ")
                    .filter(|l| l.split_once(" = ").is_some_and(|(key, _)| KEYS.iter().any(|s| s.key == key)))
                    .unwrap_or(l)
            })
            .fold(String::new(), |mut acc, l| {
                acc.push_str(l);
                acc.push('\n');
                acc
            });
        load_toml(&uncommented, &[]).unwrap_or_else(|e| panic!("uncommented example: {e}\n{uncommented}"));
    }

    #[test]
    fn money_accepts_text_and_whole_numbers() {
        let cases =
            [("text", "\"2500.50\"", "2500.5"), ("integer", "250000", "250000"), ("text integer", "\"7\"", "7")];
        for (name, value, expected) in cases {
            let config = load_toml(&format!("[paper]\nstarting_cash = {value}\n"), &[])
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(config.paper.starting_cash, Money::parse(expected).unwrap(), "{name}");
        }
    }

    #[test]
    fn url_redaction() {
        let cases = [
            ("sqlite", "sqlite:data/tradecore.db", "sqlite:data/tradecore.db"),
            ("no password", "postgres://app@db/x", "postgres://app@db/x"),
            ("password", "postgres://app:pw@db:5432/x", "postgres://app:[redacted]@db:5432/x"),
            ("at sign in password", "postgres://app:p@w@db/x", "postgres://app:[redacted]@db/x"),
            ("query", "postgresql://db/x?user=a&password=pw", "postgresql://db/x?user=a&password=[redacted]"),
        ];
        let database = DatabaseConfig { url: "postgres://u:pw@h/db".into(), ..DatabaseConfig::default() };
        assert_eq!(database.redacted_url(), "postgres://u:[redacted]@h/db");
        for (name, url, expected) in cases {
            assert_eq!(redact_url(url), expected, "{name}");
        }
    }

    #[test]
    fn suggestions() {
        let cases = [
            ("one letter off", "TRADECORE_SERVER__LISTN", Some("TRADECORE_SERVER__LISTEN")),
            ("section typo", "TRADECORE_DATABSE__URL", Some("TRADECORE_DATABASE__URL")),
            ("file suffix typo", "TRADECORE_REDIS__URL_FLE", Some("TRADECORE_REDIS__URL_FILE")),
            ("nothing close", "TRADECORE_COMPLETELY_DIFFERENT", None),
        ];
        for (name, var, expected) in cases {
            assert_eq!(suggest_env(var).as_deref(), expected, "{name}");
        }
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
