//! Backups: a consistent online dump of the whole database (the store's
//! logical dump, taken in one read snapshot while the server keeps
//! writing), gzip-compressed, encrypted with AES-256-GCM under the
//! configured key, and stored with a signed, checksummed manifest in a local
//! directory or an S3-compatible bucket.
//!
//! A backup is two objects: `tradecore-STAMP.dump.gz.enc` and
//! `tradecore-STAMP.manifest.json`, the manifest written last, so a backup
//! exists only once complete. `verify` checks the manifest's signature and
//! the data's checksum, restores into a scratch database, and replays every
//! account's journal to see that it arrives at the stored read models.
//! `restore` loads a backup into an empty database. `prune` keeps every
//! backup for `keep_daily_days`, the first of each ISO week for
//! `keep_weekly_days`, the first of each month for `keep_monthly_days`, and
//! always the newest.

pub mod crypto;
pub mod target;

use std::collections::BTreeSet;
use std::io::{BufReader, Write};
use std::time::Instant;

use engine::Engine;
use model::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use store::dump::DumpSummary;
use store::{Store, StoreOptions};

use crate::config::{BackupConfig, Config};
pub use target::Target;

const FORMAT: &str = "tradecore-backup";
const FORMAT_VERSION: u32 = 1;
const MANIFEST_SUFFIX: &str = ".manifest.json";
const DATA_SUFFIX: &str = ".dump.gz.enc";

/// What a backup holds and how to check it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    /// `tradecore-20261201T020000Z`.
    pub name: String,
    pub created: Timestamp,
    pub tradecore_version: String,
    /// `sqlite` or `postgres`: where it was taken (it restores into either).
    pub backend: String,
    pub schema: i64,
    pub tables: Vec<(String, u64)>,
    pub rows: u64,
    pub data: DataObject,
    /// Which key encrypted it (a fingerprint, not the key).
    pub key_id: String,
    /// HMAC-SHA256 of the manifest without this field, under the key.
    #[serde(default)]
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataObject {
    pub object: String,
    /// Stored (encrypted) size and SHA-256.
    pub bytes: u64,
    pub sha256: String,
    /// Size of the dump before compression.
    pub plain_bytes: u64,
    pub compression: String,
    pub encryption: String,
}

/// Steps of a long run, for progress bars.
#[derive(Debug, Clone)]
pub enum Step {
    /// Rows dumped (or loaded) so far from a table.
    Table {
        table: String,
        rows: u64,
    },
    Encrypting,
    Uploading {
        bytes: u64,
    },
    /// Reading the stored data back to check its checksum.
    ReadingBack,
    Downloading,
    Decrypting,
    Checking {
        accounts: usize,
    },
}

/// Backups with their configuration: the target, the key and retention.
#[derive(Debug, Clone)]
pub struct Backups {
    target: Target,
    key: [u8; 32],
    retention: (u32, u32, u32),
}

impl Backups {
    /// `None` when no target is configured.
    pub fn from_config(config: &BackupConfig) -> Result<Option<Self>, String> {
        let Some(url) = &config.target else { return Ok(None) };
        let key = config.key.as_ref().ok_or("backup.key is required with backup.target")?;
        let key = crypto::parse_key(key.expose()).map_err(|e| format!("backup.key {e}"))?;
        let credentials = config
            .s3_access_key_id
            .as_ref()
            .zip(config.s3_secret_access_key.as_ref())
            .map(|(id, secret)| (id.expose().as_str(), secret.expose().as_str()));
        let target = Target::parse(url, credentials)?;
        Ok(Some(Self {
            target,
            key,
            retention: (config.keep_daily_days, config.keep_weekly_days, config.keep_monthly_days),
        }))
    }

    #[must_use]
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Takes a backup of `store`, while it keeps being written.
    pub async fn create(&self, store: &Store, progress: &mut (dyn FnMut(Step) + Send)) -> Result<Manifest, String> {
        let created = crate::accounts::wall_clock();
        let name = format!("tradecore-{}", stamp(created));
        // Names go to the second: a second backup in the same second must not replace the first.
        if self.target.list().await?.contains(&format!("{name}{MANIFEST_SUFFIX}")) {
            return Err(format!("a backup named {name} was just taken; try again in a second"));
        }
        let work = scratch_dir()?;
        let plain_path = work.path.join("dump.jsonl.gz");
        // Dump through gzip into a file: memory stays flat however large the database.
        let file =
            std::fs::File::create(&plain_path).map_err(|e| format!("cannot create {}: {e}", plain_path.display()))?;
        // The fast level: about three times quicker than the default for a
        // little more stored size; a backup of a busy database should not take long.
        let gz = flate2::write::GzEncoder::new(std::io::BufWriter::new(file), flate2::Compression::fast());
        // Counts what goes into gzip: the dump's own size.
        let mut counting = CountingWriter { inner: gz, count: 0 };
        let summary = store
            .dump(&mut counting, &mut |table, rows| progress(Step::Table { table: table.to_string(), rows }))
            .await
            .map_err(|e| format!("cannot dump the database: {e}"))?;
        let plain_bytes = counting.count;
        counting
            .inner
            .finish()
            .and_then(|mut file| file.flush())
            .map_err(|e| format!("cannot compress the dump: {e}"))?;
        progress(Step::Encrypting);
        let key = self.key;
        let sealed = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, String> {
            let input = std::fs::File::open(&plain_path).map_err(|e| e.to_string())?;
            let mut out = Vec::new();
            crypto::encrypt(&key, BufReader::new(input), &mut out)?;
            Ok(out)
        })
        .await
        .map_err(|e| e.to_string())??;
        let data = DataObject {
            object: format!("{name}{DATA_SUFFIX}"),
            bytes: sealed.len() as u64,
            sha256: crate::auth::to_hex(&Sha256::digest(&sealed)),
            plain_bytes,
            compression: "gzip".to_string(),
            encryption: "aes-256-gcm, 1 MiB chunks".to_string(),
        };
        let mut manifest = Manifest {
            format: FORMAT.to_string(),
            version: FORMAT_VERSION,
            name: name.clone(),
            created,
            tradecore_version: env!("CARGO_PKG_VERSION").to_string(),
            backend: summary.backend.clone(),
            schema: summary.schema,
            rows: summary.rows(),
            tables: summary.tables,
            data,
            key_id: crypto::key_id(&self.key),
            signature: String::new(),
        };
        manifest.signature = self.sign(&manifest)?;
        progress(Step::Uploading { bytes: manifest.data.bytes });
        self.target.put(&manifest.data.object, sealed).await?;
        // Read back and checksummed: a backup is only listed once the stored copy is known good.
        progress(Step::ReadingBack);
        let stored = self.target.get(&manifest.data.object).await?;
        if crate::auth::to_hex(&Sha256::digest(&stored)) != manifest.data.sha256 {
            return Err(format!(
                "{name}: the stored copy does not match what was written (checksum); the target is damaging data"
            ));
        }
        drop(stored);
        let body = serde_json::to_vec_pretty(&manifest).map_err(|e| e.to_string())?;
        // Last: the backup exists once its manifest does.
        self.target.put(&format!("{name}{MANIFEST_SUFFIX}"), body).await?;
        Ok(manifest)
    }

    fn sign(&self, manifest: &Manifest) -> Result<String, String> {
        let mut unsigned = manifest.clone();
        unsigned.signature = String::new();
        let bytes = serde_json::to_vec(&unsigned).map_err(|e| e.to_string())?;
        Ok(crypto::sign(&self.key, &bytes))
    }

    /// Every backup's manifest, oldest first. A manifest that cannot be read
    /// or is not signed by this key is listed as an error, not skipped.
    pub async fn list(&self) -> Result<Vec<Result<Manifest, String>>, String> {
        let names = self.target.list().await?;
        let mut out = Vec::new();
        for name in names.iter().filter(|n| n.ends_with(MANIFEST_SUFFIX)) {
            out.push(self.manifest(name.trim_end_matches(MANIFEST_SUFFIX)).await);
        }
        Ok(out)
    }

    /// A backup's manifest, its signature checked.
    pub async fn manifest(&self, name: &str) -> Result<Manifest, String> {
        let bytes = self.target.get(&format!("{name}{MANIFEST_SUFFIX}")).await?;
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| format!("{name}: the manifest cannot be read: {e}"))?;
        if manifest.format != FORMAT || manifest.version > FORMAT_VERSION {
            return Err(format!("{name}: not a backup this version reads ({} {})", manifest.format, manifest.version));
        }
        if manifest.key_id != crypto::key_id(&self.key) {
            return Err(format!(
                "{name}: made with another key (key id {}, ours {})",
                manifest.key_id,
                crypto::key_id(&self.key)
            ));
        }
        if manifest.signature != self.sign(&manifest)? {
            return Err(format!("{name}: the manifest's signature does not match: it was changed"));
        }
        Ok(manifest)
    }

    /// The newest backup's name.
    pub async fn latest(&self) -> Result<String, String> {
        let names = self.target.list().await?;
        names
            .iter()
            .filter_map(|n| n.strip_suffix(MANIFEST_SUFFIX))
            .max()
            .map(ToString::to_string)
            .ok_or_else(|| format!("there are no backups at {}", self.target.describe()))
    }

    /// A backup's compressed dump: downloaded, checksum-checked, decrypted
    /// (the caller decompresses it as it reads, so memory holds the
    /// compressed size, not the dump's).
    async fn fetch(&self, name: &str, progress: &mut (dyn FnMut(Step) + Send)) -> Result<(Manifest, Vec<u8>), String> {
        let manifest = self.manifest(name).await?;
        progress(Step::Downloading);
        let sealed = self.target.get(&manifest.data.object).await?;
        if sealed.len() as u64 != manifest.data.bytes {
            return Err(format!(
                "{name}: the data is {} bytes, the manifest says {}",
                sealed.len(),
                manifest.data.bytes
            ));
        }
        if crate::auth::to_hex(&Sha256::digest(&sealed)) != manifest.data.sha256 {
            return Err(format!("{name}: the data's checksum does not match the manifest: it is damaged"));
        }
        progress(Step::Decrypting);
        let key = self.key;
        let compressed = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, String> {
            let mut compressed = Vec::with_capacity(sealed.len());
            crypto::decrypt(&key, sealed.as_slice(), &mut compressed)?;
            Ok(compressed)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("{name}: {e}"))?;
        Ok((manifest, compressed))
    }

    /// Loads a backup into `store`, which must be migrated and empty.
    pub async fn restore(
        &self,
        name: &str,
        store: &Store,
        progress: &mut (dyn FnMut(Step) + Send),
    ) -> Result<Manifest, String> {
        let (manifest, compressed) = self.fetch(name, progress).await?;
        let dump = BufReader::with_capacity(1 << 16, flate2::read::GzDecoder::new(compressed.as_slice()));
        let summary = store
            .load(dump, &mut |table, rows| progress(Step::Table { table: table.to_string(), rows }))
            .await
            .map_err(|e| format!("cannot restore {name}: {e}"))?;
        check_counts(&manifest, &summary)?;
        Ok(manifest)
    }

    /// Restores a backup into a scratch SQLite database and checks it: the
    /// manifest, the checksum, every row count, and that each account's
    /// journal replays to its stored positions, cash and orders.
    pub async fn verify(&self, name: &str, progress: &mut (dyn FnMut(Step) + Send)) -> Result<Verified, String> {
        let started = Instant::now();
        let work = scratch_dir()?;
        let url = format!("sqlite:{}", work.path.join("verify.db").display());
        let scratch =
            Store::connect(&url, StoreOptions::default()).await.map_err(|e| format!("scratch database: {e}"))?;
        scratch.migrate().await.map_err(|e| format!("scratch database: {e}"))?;
        let result = async {
            let manifest = self.restore(name, &scratch, progress).await?;
            let accounts = replay_matches_read_models(&scratch, progress).await?;
            Ok(Verified {
                name: manifest.name.clone(),
                rows: manifest.rows,
                accounts,
                seconds: started.elapsed().as_secs_f64(),
                manifest,
            })
        }
        .await;
        scratch.close().await;
        result
    }

    /// Deletes the backups retention no longer keeps (with `dry_run`, only
    /// says which); returns their names.
    pub async fn prune(&self, now: Timestamp, dry_run: bool) -> Result<Vec<String>, String> {
        let names = self.target.list().await?;
        let backups: Vec<(String, Timestamp)> = names
            .iter()
            .filter_map(|n| n.strip_suffix(MANIFEST_SUFFIX))
            .filter_map(|n| parse_stamp(n.strip_prefix("tradecore-")?).map(|t| (n.to_string(), t)))
            .collect();
        let keep = retained(&backups, now, self.retention);
        let mut gone = Vec::new();
        for (name, _) in backups.iter().filter(|(n, _)| !keep.contains(n)) {
            if !dry_run {
                // Manifest first: a half-deleted backup is no longer listed as one.
                self.target.delete(&format!("{name}{MANIFEST_SUFFIX}")).await?;
                self.target.delete(&format!("{name}{DATA_SUFFIX}")).await?;
            }
            gone.push(name.clone());
        }
        Ok(gone)
    }
}

/// What `verify` found.
#[derive(Debug, Clone, Serialize)]
pub struct Verified {
    pub name: String,
    pub rows: u64,
    /// Accounts whose journal replayed to their read models.
    pub accounts: usize,
    pub seconds: f64,
    #[serde(skip)]
    pub manifest: Manifest,
}

fn check_counts(manifest: &Manifest, loaded: &DumpSummary) -> Result<(), String> {
    for (table, rows) in &manifest.tables {
        let got = loaded.tables.iter().find(|(t, _)| t == table).map_or(0, |(_, n)| *n);
        if got != *rows {
            return Err(format!("{}: {table} has {got} rows, the manifest says {rows}", manifest.name));
        }
    }
    Ok(())
}

/// Replays every account's journal (from its snapshot) and compares the
/// result with the stored positions, balances and orders; returns how many
/// accounts were checked.
pub async fn replay_matches_read_models(
    store: &Store,
    progress: &mut (dyn FnMut(Step) + Send),
) -> Result<usize, String> {
    let accounts = store.accounts().await.map_err(|e| e.to_string())?;
    for (n, account) in accounts.iter().enumerate() {
        let mut engine = match store.snapshot(account.id).await.map_err(|e| e.to_string())? {
            Some((_, body)) => {
                let state = serde_json::from_str(&body)
                    .map_err(|e| format!("account {}: snapshot unreadable: {e}", account.id))?;
                Engine::from_state(state)
            }
            None => Engine::new(account.base_currency),
        };
        let mut after = store.snapshot(account.id).await.map_err(|e| e.to_string())?.map_or(0, |(seq, _)| seq);
        loop {
            let page = store.events(account.id, after, 10_000).await.map_err(|e| e.to_string())?;
            let Some((last, _)) = page.last() else { break };
            after = *last;
            for (_, event) in &page {
                engine.apply_journaled(event);
            }
        }
        let state = engine.state();
        let id = account.id;
        let stored_positions = store.positions(id).await.map_err(|e| e.to_string())?;
        for book in &state.books {
            let stored = stored_positions.iter().find(|p| p.instrument == book.position.instrument);
            let replayed = &book.position;
            let matches = match stored {
                Some(p) => p == replayed,
                None => replayed.quantity.is_zero() && replayed.realized_pnl.is_zero() && replayed.fees.is_zero(),
            };
            if !matches {
                return Err(format!(
                    "account {id}: the journal replays to position {replayed:?}, the read model holds {stored:?}"
                ));
            }
        }
        let stored_balances = store.balances(id).await.map_err(|e| e.to_string())?;
        let replayed_balances: Vec<(model::Currency, model::Money)> =
            state.balances.iter().map(|(c, m)| (*c, *m)).collect();
        let mut sorted = stored_balances.clone();
        sorted.sort_by_key(|(c, _)| *c);
        if sorted != replayed_balances {
            return Err(format!(
                "account {id}: the journal replays to cash {replayed_balances:?}, the read model holds {sorted:?}"
            ));
        }
        let stored_orders = store
            .orders(id, &store::OrderQuery { limit: u32::MAX, ..store::OrderQuery::default() })
            .await
            .map_err(|e| e.to_string())?;
        if stored_orders.len() != state.orders.len() {
            return Err(format!(
                "account {id}: the journal has {} orders, the read model {}",
                state.orders.len(),
                stored_orders.len()
            ));
        }
        for stored in &stored_orders {
            if state.orders.get(&stored.id) != Some(stored) {
                return Err(format!(
                    "account {id}: order {} differs between the journal and the read model",
                    stored.id
                ));
            }
        }
        progress(Step::Checking { accounts: n + 1 });
    }
    Ok(accounts.len())
}

/// The backups to keep: all within the daily window, the first of each ISO
/// week within the weekly one, the first of each month within the monthly
/// one, and always the newest.
fn retained(
    backups: &[(String, Timestamp)],
    now: Timestamp,
    (daily, weekly, monthly): (u32, u32, u32),
) -> BTreeSet<String> {
    let day = |t: Timestamp| t.as_nanos().div_euclid(model::time::NANOS_PER_DAY);
    let age_days = |t: Timestamp| day(now) - day(t);
    let mut sorted: Vec<&(String, Timestamp)> = backups.iter().collect();
    sorted.sort_by_key(|(_, t)| *t);
    let mut keep = BTreeSet::new();
    let mut weeks = BTreeSet::new();
    let mut months = BTreeSet::new();
    for (name, t) in &sorted {
        let age = age_days(*t);
        let d = day(*t);
        // ISO weeks start on Monday; 1970-01-05 was one.
        let week = (d - 4).div_euclid(7);
        let (y, m, _) = model::time::civil_from_days(d);
        let first_of_week = weeks.insert(week);
        let first_of_month = months.insert((y, m));
        if age < i64::from(daily)
            || (age < i64::from(weekly) && first_of_week)
            || (age < i64::from(monthly) && first_of_month)
        {
            keep.insert(name.clone());
        }
    }
    if let Some((newest, _)) = sorted.last() {
        keep.insert(newest.clone());
    }
    keep
}

/// `20261201T020000Z`.
fn stamp(t: Timestamp) -> String {
    let secs = t.as_nanos().div_euclid(1_000_000_000);
    let (y, m, d) = model::time::civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z", s / 3600, s % 3600 / 60, s % 60)
}

fn parse_stamp(text: &str) -> Option<Timestamp> {
    let b = text.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| text.get(r)?.parse::<i64>().ok();
    let days = model::time::days_from_civil(n(0..4)?, u32::try_from(n(4..6)?).ok()?, u32::try_from(n(6..8)?).ok()?);
    Some(Timestamp::from_secs(days * 86_400 + n(9..11)? * 3600 + n(11..13)? * 60 + n(13..15)?))
}

struct CountingWriter<W: Write> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A temporary directory removed when dropped.
struct Scratch {
    path: std::path::PathBuf,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn scratch_dir() -> Result<Scratch, String> {
    let suffix = crate::auth::random_hex(6).map_err(|e| e.to_string())?;
    let path = std::env::temp_dir().join(format!("tradecore-backup-{}-{suffix}", std::process::id()));
    std::fs::create_dir_all(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    Ok(Scratch { path })
}

/// The configured backups, or an error naming what to set.
pub fn configured(config: &Config) -> Result<Backups, String> {
    Backups::from_config(&config.backup)?.ok_or_else(|| {
        "no backup target is configured: set backup.target (TRADECORE_BACKUP__TARGET) and backup.key (TRADECORE_BACKUP__KEY_FILE)".to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(y: i64, m: u32, d: u32) -> Timestamp {
        Timestamp::from_secs(model::time::days_from_civil(y, m, d) * 86_400 + 7200)
    }

    #[test]
    fn stamps_round_trip() {
        let at = Timestamp::from_secs(1_796_110_200);
        assert_eq!(parse_stamp(&stamp(at)), Some(at));
        assert_eq!(parse_stamp("2026-12-01"), None);
    }

    #[test]
    fn retention_keeps_days_then_weeks_then_months() {
        // A backup every day for 400 days up to 2026-12-01.
        let now = t(2026, 12, 1);
        let backups: Vec<(String, Timestamp)> = (0..400)
            .map(|ago| {
                let at = Timestamp::from_nanos(now.as_nanos() - ago * model::time::NANOS_PER_DAY);
                (stamp(at), at)
            })
            .collect();
        let keep = retained(&backups, now, (30, 90, 365));
        let kept: Vec<&(String, Timestamp)> = backups.iter().filter(|(n, _)| keep.contains(n)).collect();
        let age = |t: Timestamp| (now.as_nanos() - t.as_nanos()) / model::time::NANOS_PER_DAY;
        assert_eq!(kept.iter().filter(|(_, t)| age(*t) < 30).count(), 30, "every day of the last 30");
        let weekly = kept.iter().filter(|(_, t)| (30..90).contains(&age(*t))).count();
        assert!((8..=10).contains(&weekly), "about one a week between 30 and 90 days: {weekly}");
        let monthly = kept.iter().filter(|(_, t)| (90..365).contains(&age(*t))).count();
        assert!((8..=10).contains(&monthly), "about one a month up to a year: {monthly}");
        assert_eq!(kept.iter().filter(|(_, t)| age(*t) >= 365).count(), 0);
        // The newest survives even a zero retention.
        let only = retained(&backups[..3], now, (0, 0, 0));
        assert_eq!(only.len(), 1);
        assert!(only.contains(&backups[0].0));
    }
}
