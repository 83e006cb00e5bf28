//! `tradecore backup create | list | verify | restore | prune`: the backups
//! of `server::backup` by hand, with progress bars.
//!
//! Every command reads the configuration as `serve` does (file, then
//! `TRADECORE_*` variables, then `--database-url`), so it finds the same
//! database, target and key as the server.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use comfy_table::{Cell, CellAlignment, Table, presets::UTF8_FULL_CONDENSED};
use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use server::backup::{Backups, Manifest, Step};
use server::config::Config;
use store::Store;

use crate::serve_cmd::{self, ConfigArgs};

/// Where the configuration comes from (as for `serve`, without `--listen`).
#[derive(Debug, Args)]
pub struct BackupConfigArgs {
    /// A TOML configuration file (see docs/configuration.md).
    #[arg(long, env = "TRADECORE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Database URL (sqlite:PATH or postgres://...); overrides database.url.
    #[arg(long)]
    pub database_url: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Back up the configured database now, while the server keeps running.
    Create(BackupConfigArgs),
    /// List the backups at the target, newest first.
    List(ListArgs),
    /// Check a backup: its signature and checksum, then restore it into a
    /// scratch database and replay every account's journal against it.
    Verify(VerifyArgs),
    /// Restore a backup into the configured database, which must be empty.
    /// Stop the server first.
    Restore(RestoreArgs),
    /// Delete the backups that retention (backup.keep_*_days) no longer keeps.
    Prune(PruneArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub config: BackupConfigArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub config: BackupConfigArgs,
    /// The backup (`tradecore-20261201T020000Z`); the latest when left out.
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub config: BackupConfigArgs,
    /// The backup to restore (`tradecore-20261201T020000Z`).
    #[arg(required_unless_present = "latest", conflicts_with = "latest")]
    pub name: Option<String>,
    /// Restore the newest backup.
    #[arg(long)]
    pub latest: bool,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    #[command(flatten)]
    pub config: BackupConfigArgs,
    /// Only say which backups would be deleted.
    #[arg(long)]
    pub dry_run: bool,
}

/// `3 backups`, `1 backup`.
fn plural(n: usize, word: &str) -> String {
    if n == 1 { format!("1 {word}") } else { format!("{n} {word}s") }
}

/// `2026-12-01 02:00:00`: to the second, for tables.
fn to_the_second(t: model::Timestamp) -> String {
    let (y, mo, d, h, mi, s, _) = t.to_parts();
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
}

/// A manifest's file name ends with this (`server::backup` writes it).
const MANIFEST_SUFFIX: &str = ".manifest.json";

pub fn run(command: &BackupCommand) -> Result<()> {
    match command {
        BackupCommand::Create(args) => create(args),
        BackupCommand::List(args) => list(args),
        BackupCommand::Verify(args) => verify(args),
        BackupCommand::Restore(args) => restore(args),
        BackupCommand::Prune(args) => prune(args),
    }
}

/// The configuration and the configured backups.
fn load(args: &BackupConfigArgs) -> Result<(Config, Backups)> {
    let config_args = ConfigArgs { config: args.config.clone(), database_url: args.database_url.clone(), listen: None };
    let (config, _) = serve_cmd::load(&config_args)?;
    let backups = server::backup::configured(&config).map_err(|e| anyhow!(e))?;
    Ok((config, backups))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")
}

/// Opens the configured database. `existing`: refuse to create a missing
/// SQLite file (a backup of nothing is a mistake, not a backup).
async fn open(config: &Config, existing: bool) -> Result<Store> {
    let url = config.database.redacted_url();
    if existing
        && let Some(path) = config.database.url.strip_prefix("sqlite:").map(|p| p.trim_start_matches("//"))
        && let Some(path) = path.split('?').next().filter(|p| !p.is_empty() && *p != ":memory:")
        && !std::path::Path::new(path).exists()
    {
        bail!("there is no database at {url}: check database.url (or --database-url)");
    }
    Store::connect(&config.database.url, config.database.store_options())
        .await
        .with_context(|| format!("cannot open the database {url}"))
}

/// Progress on stderr, hidden when stderr is not a terminal (logs, pipes, tests).
fn bar(len: Option<u64>) -> ProgressBar {
    let bar = match len {
        Some(len) => {
            let bar = ProgressBar::new(len);
            let style = ProgressStyle::with_template("{msg:<28} [{bar:30}] {pos}/{len} rows ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            bar.set_style(style);
            bar
        }
        None => {
            let bar = ProgressBar::new_spinner();
            let style = ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        }
    };
    if !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar
}

/// Turns `Step`s into bar updates: rows across tables add up.
struct Progress {
    bar: ProgressBar,
    table: String,
    /// Rows of the tables before the current one.
    done: u64,
    rows: u64,
}

impl Progress {
    fn new(bar: ProgressBar) -> Self {
        Self { bar, table: String::new(), done: 0, rows: 0 }
    }

    fn step(&mut self, step: Step) {
        match step {
            Step::Table { table, rows } => {
                if table != self.table {
                    self.done += self.rows;
                    self.table = table;
                    self.rows = 0;
                }
                self.rows = rows;
                let total = self.done + self.rows;
                self.bar.set_position(total);
                self.bar.set_message(format!("{}: {total} rows", self.table));
            }
            Step::Encrypting => self.bar.set_message("compressing and encrypting"),
            Step::Uploading { bytes } => self.bar.set_message(format!("storing {}", HumanBytes(bytes))),
            Step::ReadingBack => self.bar.set_message("reading back and checking what was stored"),
            Step::Downloading => self.bar.set_message("downloading"),
            Step::Decrypting => self.bar.set_message("checking and decrypting"),
            Step::Checking { accounts } => self.bar.set_message(format!("replaying account {accounts}")),
        }
    }
}

pub fn create(args: &BackupConfigArgs) -> Result<()> {
    let (config, backups) = load(args)?;
    let started = Instant::now();
    let manifest = runtime()?.block_on(async {
        let store = open(&config, true).await?;
        let mut progress = Progress::new(bar(None));
        let result = backups.create(&store, &mut |step| progress.step(step)).await;
        progress.bar.finish_and_clear();
        store.close().await;
        result.map_err(|e| anyhow!(e))
    })?;
    println!("created {}", manifest.name);
    println!(
        "  {} rows from {} ({}), {} stored ({} before compression), in {:.1}s",
        manifest.rows,
        config.database.redacted_url(),
        manifest.backend,
        HumanBytes(manifest.data.bytes),
        HumanBytes(manifest.data.plain_bytes),
        started.elapsed().as_secs_f64()
    );
    println!("  at {}", backups.target().describe());
    Ok(())
}

/// Every backup at the target with its manifest (or why it cannot be
/// read), newest first.
async fn entries(backups: &Backups) -> Result<Vec<(String, Result<Manifest, String>)>> {
    let names = backups.target().list().await.map_err(|e| anyhow!(e))?;
    let mut out = Vec::new();
    for name in names.iter().filter_map(|n| n.strip_suffix(MANIFEST_SUFFIX)) {
        out.push((name.to_string(), backups.manifest(name).await));
    }
    // Names carry a UTC stamp: newest first by name.
    out.sort_by(|a, b| b.0.cmp(&a.0));
    Ok(out)
}

pub fn list(args: &ListArgs) -> Result<()> {
    let (_, backups) = load(&args.config)?;
    let entries = runtime()?.block_on(entries(&backups))?;
    if args.json {
        let rows: Vec<serde_json::Value> = entries
            .iter()
            .map(|(name, manifest)| match manifest {
                Ok(m) => serde_json::json!({
                    "name": name,
                    "created": m.created,
                    "bytes": m.data.bytes,
                    "plain_bytes": m.data.plain_bytes,
                    "rows": m.rows,
                    "backend": m.backend,
                    "schema": m.schema,
                    "tradecore_version": m.tradecore_version,
                    "ok": true,
                }),
                Err(e) => serde_json::json!({ "name": name, "ok": false, "error": e }),
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if entries.is_empty() {
        println!("no backups at {}", backups.target().describe());
        return Ok(());
    }
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED);
    table.set_header(vec!["name", "created (UTC)", "size", "rows", "backend", "status"]);
    let right = |text: String| Cell::new(text).set_alignment(CellAlignment::Right);
    for (name, manifest) in &entries {
        match manifest {
            Ok(m) => table.add_row(vec![
                Cell::new(name),
                Cell::new(to_the_second(m.created)),
                right(HumanBytes(m.data.bytes).to_string()),
                right(m.rows.to_string()),
                Cell::new(&m.backend),
                Cell::new("ok"),
            ]),
            Err(e) => table.add_row(vec![
                Cell::new(name),
                Cell::new(""),
                Cell::new(""),
                Cell::new(""),
                Cell::new(""),
                Cell::new(e),
            ]),
        };
    }
    println!("{table}");
    println!("{} at {}", plural(entries.len(), "backup"), backups.target().describe());
    Ok(())
}

pub fn verify(args: &VerifyArgs) -> Result<()> {
    let (_, backups) = load(&args.config)?;
    let verified = runtime()?.block_on(async {
        let name = match &args.name {
            Some(name) => name.clone(),
            None => backups.latest().await.map_err(|e| anyhow!(e))?,
        };
        // The manifest first: its row count sizes the bar, and a bad one fails fast.
        let manifest = backups.manifest(&name).await.map_err(|e| anyhow!(e))?;
        let mut progress = Progress::new(bar(Some(manifest.rows)));
        progress.bar.set_message(format!("verifying {name}"));
        let result = backups.verify(&name, &mut |step| progress.step(step)).await;
        progress.bar.finish_and_clear();
        result.map_err(|e| anyhow!(e)).with_context(|| format!("backup {name} failed verification"))
    })?;
    println!("{} is good", verified.name);
    println!("  signature and checksum match; restored {} rows into a scratch database", verified.rows);
    println!(
        "  {} replayed from their journals to the same positions, cash and orders; {:.1}s",
        plural(verified.accounts, "account"),
        verified.seconds
    );
    Ok(())
}

pub fn restore(args: &RestoreArgs) -> Result<()> {
    let (config, backups) = load(&args.config)?;
    let url = config.database.redacted_url();
    eprintln!("restoring into {url}: the server must be stopped (nothing else may write to this database)");
    let manifest = runtime()?.block_on(async {
        // Clap lets only one of NAME and --latest through.
        let name = match &args.name {
            Some(name) => name.clone(),
            None => backups.latest().await.map_err(|e| anyhow!(e))?,
        };
        // Before touching the database: the backup must be readable with our key.
        let manifest = backups.manifest(&name).await.map_err(|e| anyhow!(e))?;
        let store = open(&config, false).await?;
        let result = restore_into(&backups, &store, &name, &url, manifest.rows).await;
        store.close().await;
        result
    })?;
    println!("restored {} into {url}", manifest.name);
    println!(
        "  {} rows, taken {} from {} (schema {}); start the server on it with `tradecore serve`",
        manifest.rows, manifest.created, manifest.backend, manifest.schema
    );
    Ok(())
}

async fn restore_into(backups: &Backups, store: &Store, name: &str, url: &str, rows: u64) -> Result<Manifest> {
    // A database with data is refused before anything is changed, even
    // the migrations. One without tables yet cannot be counted: it is empty.
    if let Ok(false) = store.is_empty().await {
        bail!("{url} is not empty: restore only goes into an empty database (point --database-url at a new one)");
    }
    store.migrate().await.with_context(|| format!("cannot migrate {url}"))?;
    if !store.is_empty().await.with_context(|| format!("cannot read {url}"))? {
        bail!("{url} is not empty: restore only goes into an empty database (point --database-url at a new one)");
    }
    let mut progress = Progress::new(bar(Some(rows)));
    progress.bar.set_message(format!("restoring {name}"));
    let result = backups.restore(name, store, &mut |step| progress.step(step)).await;
    progress.bar.finish_and_clear();
    result.map_err(|e| anyhow!(e))
}

pub fn prune(args: &PruneArgs) -> Result<()> {
    let (config, backups) = load(&args.config)?;
    let now = server::accounts::wall_clock();
    let (gone, left) = runtime()?.block_on(async {
        let gone = backups.prune(now, args.dry_run).await.map_err(|e| anyhow!(e))?;
        let left = backups.target().list().await.map_err(|e| anyhow!(e))?;
        let left = left.iter().filter(|n| n.ends_with(MANIFEST_SUFFIX)).count();
        Ok::<_, anyhow::Error>((gone, left))
    })?;
    let b = &config.backup;
    let policy = format!(
        "every backup for {} days, one a week for {} days, one a month for {} days, and the newest",
        b.keep_daily_days, b.keep_weekly_days, b.keep_monthly_days
    );
    let verb = if args.dry_run { "would delete" } else { "deleted" };
    for name in &gone {
        println!("{verb} {name}");
    }
    let kept = if args.dry_run { left.saturating_sub(gone.len()) } else { left };
    if gone.is_empty() {
        println!("nothing to prune: {} kept ({policy})", plural(kept, "backup"));
    } else {
        println!("{verb} {}, {kept} kept ({policy})", plural(gone.len(), "backup"));
    }
    Ok(())
}
