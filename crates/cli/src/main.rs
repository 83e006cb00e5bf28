//! `tradecore`: the command-line entry point.
//!
//! `main` parses arguments, runs the command and turns an error into one
//! message and an exit code; the work lives in the library crates.

mod backtest_cmd;
mod backup_cmd;
mod data_cmd;
mod doctor_cmd;
mod ops_cmd;
mod secrets_cmd;
mod serve_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// tradecore: a self-hosted automated trading platform.
#[derive(Debug, Parser)]
#[command(name = "tradecore", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Backtest a strategy on historical bars, or sweep its parameters.
    Backtest(Box<backtest_cmd::BacktestArgs>),
    /// Work with historical data files.
    #[command(subcommand)]
    Data(data_cmd::DataCommand),
    /// List the built-in strategies and their parameters.
    Strategies,
    /// Run the platform server (SQLite in ./data by default).
    Serve(serve_cmd::ConfigArgs),
    /// Apply database migrations.
    Migrate(serve_cmd::ConfigArgs),
    /// Show the effective configuration, secrets masked.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Generate a year of one-minute bars and backtest sma-cross (6 h / 2 day averages) on them.
    Demo(backtest_cmd::DemoArgs),
    /// Ask a running server whether it is ready (exit 0) or not (exit 1), for container health checks.
    Healthcheck(ops_cmd::HealthcheckArgs),
    /// Back up, list, verify, restore and prune backups of the database.
    #[command(subcommand)]
    Backup(backup_cmd::BackupCommand),
    /// Check a deployment: configuration, secrets, database, disk, clock, TLS
    /// files and backups; exit 1 if any check fails.
    Doctor(doctor_cmd::DoctorArgs),
    /// Make a new encryption key, or re-encrypt the stored venue credentials under one.
    #[command(subcommand)]
    Secrets(secrets_cmd::SecretsCommand),
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print the effective configuration as TOML.
    Show(serve_cmd::ConfigArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Backtest(args) => backtest_cmd::run(&args),
        Command::Data(cmd) => data_cmd::run(&cmd),
        Command::Strategies => {
            backtest_cmd::print_strategies();
            Ok(())
        }
        Command::Demo(args) => backtest_cmd::demo(&args),
        Command::Serve(args) => serve_cmd::serve(&args),
        Command::Migrate(args) => serve_cmd::migrate(&args),
        Command::Config(ConfigCommand::Show(args)) => serve_cmd::show(&args),
        Command::Healthcheck(args) => ops_cmd::healthcheck(&args),
        Command::Backup(cmd) => backup_cmd::run(&cmd),
        Command::Doctor(args) => doctor_cmd::run(&args),
        Command::Secrets(cmd) => secrets_cmd::run(&cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One message, with each layer of context on its own line.
            eprintln!("error: {error}");
            for cause in error.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}
