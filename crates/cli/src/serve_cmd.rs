//! `tradecore serve`, `tradecore migrate` and `tradecore config show`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use server::config::{self, Config};

/// Where the configuration comes from, shared by the server commands.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// A TOML configuration file (see docs/configuration.md).
    #[arg(long, env = "TRADECORE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Database URL (sqlite:PATH or postgres://...); overrides database.url.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Address to listen on; overrides server.listen.
    #[arg(long)]
    pub listen: Option<String>,
}

/// Loads the configuration: defaults, the file, `TRADECORE_*` variables,
/// then these flags (which win, as flags do).
pub fn load(args: &ConfigArgs) -> Result<(Config, config::Sources)> {
    let mut overrides = Vec::new();
    if let Some(url) = &args.database_url {
        overrides.push(config::Override::new("database.url", "--database-url", url.as_str()));
    }
    if let Some(listen) = &args.listen {
        overrides.push(config::Override::new("server.listen", "--listen", listen.as_str()));
    }
    config::load_with_overrides(args.config.as_deref(), &config::process_env()?, &overrides)
        .context("invalid configuration")
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")
}

pub fn serve(args: &ConfigArgs) -> Result<()> {
    let (config, _) = load(args)?;
    server::serve::init_logging(&config);
    runtime()?.block_on(server::serve::serve(config))?;
    Ok(())
}

pub fn migrate(args: &ConfigArgs) -> Result<()> {
    let (config, _) = load(args)?;
    let applied = runtime()?.block_on(server::serve::migrate(&config))?;
    let url = config.database.redacted_url();
    if applied.is_empty() {
        println!("the database at {url} is up to date");
    } else {
        println!("applied migrations {applied:?} to {url}");
    }
    Ok(())
}

pub fn show(args: &ConfigArgs) -> Result<()> {
    let (config, sources) = load(args)?;
    print!("{}", config.to_masked_toml_with_sources(&sources));
    Ok(())
}
