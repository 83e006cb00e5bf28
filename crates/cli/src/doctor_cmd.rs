//! `tradecore doctor`: prints the pre-deployment checklist of
//! `server::doctor`, one line per check, and fails when any check does.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use server::doctor::{Options, Report, Status};

use crate::serve_cmd::{self, ConfigArgs};

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The configuration to check, given as to `serve`.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// A PEM certificate (chain) the TLS proxy serves: readable, not expired,
    /// not expiring within 14 days. Repeatable.
    #[arg(long = "tls-cert", value_name = "PATH")]
    pub tls_certs: Vec<PathBuf>,
    /// A PEM private key the TLS proxy uses: readable, unencrypted, not
    /// readable by everyone. Repeatable.
    #[arg(long = "tls-key", value_name = "PATH")]
    pub tls_keys: Vec<PathBuf>,
    /// Print the checks as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &DoctorArgs) -> Result<()> {
    // The error's whole chain: "invalid configuration: <why>".
    let loaded = serve_cmd::load(&args.config).map_err(|e| format!("{e:#}"));
    let options = Options { tls_certs: args.tls_certs.clone(), tls_keys: args.tls_keys.clone() };
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")?;
    let report = runtime.block_on(server::doctor::run(loaded, &options));
    if args.json {
        let body = serde_json::json!({ "ok": report.worst() != Status::Fail, "checks": report.checks });
        println!("{}", serde_json::to_string_pretty(&body)?);
    } else {
        print_report(&report);
    }
    let failed: Vec<&str> = report.failures().map(|c| c.name.as_str()).collect();
    if !failed.is_empty() {
        bail!("{} of {} checks failed: {}", failed.len(), report.checks.len(), failed.join(", "));
    }
    Ok(())
}

fn print_report(report: &Report) {
    let width = report.checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
    for check in &report.checks {
        println!("{}  {:<width$}  {}", check.status, check.name, check.reason);
    }
    println!(
        "{} passed, {} warnings, {} failed",
        report.count(Status::Pass),
        report.count(Status::Warn),
        report.count(Status::Fail)
    );
}
