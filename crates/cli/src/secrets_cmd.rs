//! `tradecore secrets new-key | rotate`: the key venue credentials are
//! encrypted with (`trading.credentials_key`).

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use server::venue_credentials::{self, CredentialsKey};
use store::Store;

use crate::backup_cmd::BackupConfigArgs;
use crate::serve_cmd::{self, ConfigArgs};

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Print a new random key (64 hex digits) for trading.credentials_key or backup.key.
    NewKey,
    /// Re-encrypt every stored venue credential under a new key, all or
    /// nothing. The current key is the configured trading.credentials_key;
    /// afterwards, configure the new key and restart the server.
    Rotate(RotateArgs),
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    #[command(flatten)]
    pub config: BackupConfigArgs,
    /// A file holding the new key (64 hex digits or base64 of 32 bytes).
    #[arg(long, value_name = "FILE")]
    pub new_key_file: PathBuf,
}

pub fn run(command: &SecretsCommand) -> Result<()> {
    match command {
        SecretsCommand::NewKey => {
            let mut key = [0u8; 32];
            getrandom::fill(&mut key).map_err(|e| anyhow!("no randomness: {e}"))?;
            println!("{}", key.iter().map(|b| format!("{b:02x}")).collect::<String>());
            Ok(())
        }
        SecretsCommand::Rotate(args) => rotate(args),
    }
}

fn rotate(args: &RotateArgs) -> Result<()> {
    let config_args =
        ConfigArgs { config: args.config.config.clone(), database_url: args.config.database_url.clone(), listen: None };
    let (config, _) = serve_cmd::load(&config_args)?;
    let current = config
        .trading
        .credentials_key
        .as_ref()
        .context("trading.credentials_key is not set: there is no current key to rotate from")?;
    let old = CredentialsKey::parse(current.expose()).map_err(|e| anyhow!("trading.credentials_key {e}"))?;
    let text = std::fs::read_to_string(&args.new_key_file)
        .with_context(|| format!("cannot read the new key from {}", args.new_key_file.display()))?;
    let new =
        CredentialsKey::parse(&text).map_err(|e| anyhow!("the new key in {} {e}", args.new_key_file.display()))?;
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let url = config.database.redacted_url();
        let store = Store::connect(&config.database.url, config.database.store_options())
            .await
            .with_context(|| format!("cannot open the database {url}"))?;
        if !store.pending_migrations().await.map(|p| p.is_empty()).unwrap_or(false) {
            bail!("the database at {url} is not migrated: run tradecore migrate first");
        }
        let now = model::Timestamp::from_nanos(
            i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos())
                .unwrap_or(i64::MAX),
        );
        let done = venue_credentials::rotate(&store, &old, &new, now).await.map_err(|e| anyhow!(e))?;
        store.close().await;
        println!(
            "re-encrypted {} venue credential(s) from key {} to key {}{}",
            done.resealed,
            old.id(),
            new.id(),
            if done.already > 0 { format!(" ({} already under the new key)", done.already) } else { String::new() }
        );
        println!("now set trading.credentials_key to the new key and restart tradecore");
        Ok(())
    })
}
