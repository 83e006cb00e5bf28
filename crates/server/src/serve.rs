//! `tradecore serve` and `tradecore migrate`: start-up, the listener, and
//! graceful shutdown.
//!
//! Start order: logging, the database (migrations applied), the runtime
//! (every account reloaded from its snapshot and journal), the paper market,
//! then the listener. On SIGINT or SIGTERM: stop accepting, let in-flight
//! requests finish (up to `server.shutdown_grace_seconds`), stop the market,
//! flush every account's journal.

use std::sync::Arc;
use std::time::Duration;

use model::Rate;
use sim::market::{self, MarketSpec};
use sim::quotes::QuoteFillConfig;
use store::{Store, StoreError};
use tokio::sync::watch;

use crate::accounts;
use crate::app::{AppState, app};
use crate::config::{Config, LogFormat};
use crate::runtime::{Runtime, RuntimeError, RuntimeOptions};

/// The fee paper fills pay, maker and taker alike (a typical spot rate).
pub const PAPER_FEE: Rate = Rate::from_bps(10);

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot open the database {url}: {source}")]
    Database { url: String, source: StoreError },
    #[error("cannot apply migrations: {0}")]
    Migrate(StoreError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("paper.instruments: unknown instrument '{0}'; known: BTC-USDT, ETH-USDT, SOL-USDT, AAPL, SPY")]
    UnknownInstrument(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: std::net::SocketAddr, source: std::io::Error },
    #[error("the server stopped with an error: {0}")]
    Server(std::io::Error),
    #[error("cannot create the first admin: {0}")]
    Admin(crate::auth::AuthError),
    #[error("cannot resume bots: {0}")]
    Bots(crate::bots::BotError),
    #[error("{0}")]
    Cluster(String),
    #[error("stopped leading the cluster: {0}")]
    LostLeadership(crate::cluster::Lost),
}

/// Sets up logging once: human-readable or JSON, filtered by `log.level`
/// (overridden by `RUST_LOG` when set).
pub fn init_logging(config: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log.level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match config.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Human => builder.try_init(),
    };
}

async fn open_store(config: &Config) -> Result<Store, ServeError> {
    Store::connect(&config.database.url, config.database.store_options())
        .await
        .map_err(|source| ServeError::Database { url: config.database.redacted_url(), source })
}

/// `tradecore migrate`: applies pending migrations and reports them.
pub async fn migrate(config: &Config) -> Result<Vec<i64>, ServeError> {
    let store = open_store(config).await?;
    let pending = store.pending_migrations().await.map_err(ServeError::Migrate)?;
    store.migrate().await.map_err(ServeError::Migrate)?;
    store.close().await;
    Ok(pending)
}

/// The paper instruments named in the configuration.
pub fn paper_specs(config: &Config) -> Result<Vec<MarketSpec>, ServeError> {
    config
        .paper
        .instruments
        .iter()
        .map(|symbol| market::find_default(symbol).ok_or_else(|| ServeError::UnknownInstrument(symbol.clone())))
        .collect()
}

/// Everything `serve` starts, for tests that drive a real server.
#[derive(Debug)]
pub struct Started {
    pub state: AppState,
    /// The first admin's generated one-time password, on the very first start.
    pub admin_password: Option<String>,
    stop_market: watch::Sender<bool>,
    market: tokio::task::JoinHandle<()>,
    stop_jobs: watch::Sender<bool>,
    jobs: Vec<tokio::task::JoinHandle<()>>,
}

impl Started {
    /// Stops the market and flushes every account.
    pub async fn stop(self) {
        // Workers stop claiming; a job still running is left to its lease and
        // runs again on the next start (jobs are safe to run twice).
        let _ = self.stop_jobs.send(true);
        for task in self.jobs {
            task.abort();
        }
        // Bots first: they stay recorded as running and resume on the next start.
        self.state.bots.shutdown().await;
        let _ = self.stop_market.send(true);
        let _ = self.market.await;
        self.state.runtime.shutdown().await;
    }
}

/// Opens the database (migrating it), starts the runtime and the paper market.
pub async fn start(config: Config) -> Result<Started, ServeError> {
    // The recorder first: what happens while starting (migrations, the jobs
    // of missed slots) is counted too.
    crate::telemetry::prometheus();
    let store = open_store(&config).await?;
    store.migrate().await.map_err(ServeError::Migrate)?;
    let specs = paper_specs(&config)?;
    let options = RuntimeOptions {
        instruments: specs.iter().map(|s| s.instrument.clone()).collect(),
        fill: QuoteFillConfig {
            maker_fee: PAPER_FEE,
            taker_fee: PAPER_FEE,
            slippage: Rate::ZERO,
            multiplier: model::Quantity::ONE,
            respect_size: true,
        },
        clock: accounts::wall_clock,
        max_batch: 512,
        live: crate::live::LiveOptions {
            credentials_key: match &config.trading.credentials_key {
                Some(text) => Some(
                    crate::venue_credentials::CredentialsKey::parse(text.expose())
                        .map_err(|e| ServeError::Cluster(format!("trading.credentials_key: {e}")))?,
                ),
                None => None,
            },
            venues: config.venues.clone(),
            live_enabled: config.trading.live_enabled,
        },
    };
    let admin_password = crate::auth::ensure_admin(&store, &config).await.map_err(ServeError::Admin)?;
    // Runs cut short by a previous stop cannot finish now: say so.
    store.fail_unfinished_backtests(accounts::wall_clock()).await.map_err(ServeError::Migrate)?;
    let runtime = Runtime::start(store, options).await?;
    let seed = config.paper.seed.unwrap_or_else(|| {
        // Without a configured seed each start walks differently.
        u64::try_from(accounts::wall_clock().as_nanos()).unwrap_or(42)
    });
    let (stop_market, stop) = watch::channel(false);
    let market = crate::feed::spawn(Arc::clone(&runtime), specs, config.paper.ticks_per_second, seed, stop);
    let state = AppState::new(runtime, Arc::new(config));
    let resumed = state.bots.resume().await.map_err(ServeError::Bots)?;
    if resumed > 0 {
        tracing::info!(bots = resumed, "bots resumed");
    }
    let (stop_jobs, jobs_stop) = watch::channel(false);
    let jobs = state.jobs.spawn(jobs_stop);
    Ok(Started { state, admin_password, stop_market, market, stop_jobs, jobs })
}

/// `tradecore serve`: runs until SIGINT or SIGTERM.
///
/// On SQLite the one instance starts everything at once. On PostgreSQL it
/// first listens as a standby, forwarding to the leader, until it takes the
/// leader lease (at once, when nobody leads); see `crate::cluster`.
pub async fn serve(config: Config) -> Result<(), ServeError> {
    let addr = config.server.listen;
    let metrics_addr = config.metrics.listen;
    let grace = Duration::from_secs(config.server.shutdown_grace_seconds);
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| ServeError::Listen { addr, source })?;
    let local = listener.local_addr().map_err(|source| ServeError::Listen { addr, source })?;
    let (signal_tx, signal_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = signal_tx.send(true);
    });
    let metrics = crate::telemetry::metrics_source(None);
    let metrics_local = crate::telemetry::serve_metrics(metrics_addr, Arc::clone(&metrics), signal_rx.clone())
        .await
        .map_err(|source| ServeError::Listen { addr: metrics_addr, source })?;
    tracing::info!(local = %metrics_local, "metrics listening");
    println!("metrics on http://{metrics_local}/metrics");

    // What the listener serves: a standby's router until this instance leads.
    let routes: Arc<std::sync::RwLock<axum::Router>> = Arc::new(std::sync::RwLock::new(starting_app()));
    let dispatch = {
        let routes = Arc::clone(&routes);
        axum::Router::new().fallback(move |request: axum::extract::Request| {
            let router = routes.read().map(|r| r.clone()).unwrap_or_default();
            async move {
                use tower::ServiceExt as _;
                match router.oneshot(request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                }
            }
        })
    };
    let mut graceful = signal_rx.clone();
    let server = tokio::spawn(
        axum::serve(listener, dispatch.into_make_service_with_connect_info::<std::net::SocketAddr>())
            .with_graceful_shutdown(async move {
                let _ = graceful.wait_for(|stop| *stop).await;
            })
            .into_future(),
    );

    let cluster = if config.database.is_postgres() {
        // A small pool of its own: the lease, and a standby's readiness.
        let options = store::StoreOptions { max_connections: 2, ..config.database.store_options() };
        let store = Store::connect(&config.database.url, options)
            .await
            .map_err(|source| ServeError::Database { url: config.database.redacted_url(), source })?;
        store.migrate().await.map_err(ServeError::Migrate)?;
        let cluster =
            crate::cluster::Cluster::new(store.clone(), &config, crate::cluster::advertise_url(&config, local));
        let forwarder = crate::cluster::forward::Forwarder::new(
            store,
            cluster.leader(),
            cluster.address().to_string(),
            config.server.max_body_bytes,
        )
        .map_err(ServeError::Cluster)?;
        let trusted: Arc<[crate::client_ip::Network]> = config.server.trusted_proxy_networks().into();
        if let Ok(mut current) = routes.write() {
            *current = crate::cluster::forward::standby_app(Arc::new(forwarder), trusted);
        }
        // Scripts and tests wait for this line; the port is known from here on.
        println!("tradecore is listening on http://{local} (as {}, standing by until it leads)", cluster.address());
        tracing::info!(%local, address = cluster.address(), "listening; campaigning for the leader lease");
        let Some(lease) = cluster.campaign(signal_rx.clone()).await else {
            tracing::info!("stopped while standing by");
            let _ = server.await;
            return Ok(());
        };
        tracing::info!(epoch = lease.epoch, "leading: starting the accounts, bots, market and jobs");
        if let Ok(mut current) = routes.write() {
            *current = starting_app();
        }
        Some((cluster, lease))
    } else {
        None
    };

    let started = start(config).await?;
    if let Ok(mut current) = metrics.write() {
        *current = Some(started.state.clone());
    }
    if let Ok(mut current) = routes.write() {
        *current = app(started.state.clone());
    }
    tracing::info!(%local, database = started.state.runtime.store.backend(), "tradecore is listening");
    if let Some(password) = &started.admin_password {
        // Shown once: it is stored only as a hash.
        println!("first start: sign in as 'admin' with the one-time password {password}");
    }
    if cluster.is_some() {
        println!("tradecore leads the cluster");
    } else {
        // Last: scripts and tests wait for this line.
        println!("tradecore is listening on http://{local}");
    }
    let closing = Arc::clone(&started.state.closing);
    let mut closed = signal_rx.clone();
    tokio::spawn(async move {
        let _ = closed.wait_for(|stop| *stop).await;
        closing.send_replace(true);
    });

    // Runs until a stop signal; a leader also until it loses its lease.
    let held = async {
        match &cluster {
            Some((cluster, lease)) => cluster.hold(lease, signal_rx.clone()).await,
            None => {
                let mut stop = signal_rx.clone();
                let _ = stop.wait_for(|s| *s).await;
                Ok(())
            }
        }
    };
    if let Err(lost) = held.await {
        // Another instance may be writing already: stop at once, flush nothing.
        tracing::error!(error = %lost, "no longer the leader: exiting so that a restart comes back as a standby");
        return Err(ServeError::LostLeadership(lost));
    }
    let mut forced = signal_rx;
    let result = tokio::select! {
        result = server => match result {
            Ok(served) => served.map_err(ServeError::Server),
            Err(e) => Err(ServeError::Server(std::io::Error::other(e))),
        },
        () = async {
            let _ = forced.wait_for(|stop| *stop).await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!("in-flight requests did not finish within the grace period");
            Ok(())
        }
    };
    tracing::info!("stopping: flushing the journal");
    started.stop().await;
    if let Some((cluster, lease)) = &cluster {
        cluster.release(lease).await;
    }
    result
}

/// While starting: alive, not ready, and every request asked to come back.
fn starting_app() -> axum::Router {
    use axum::response::IntoResponse as _;
    axum::Router::new().route("/healthz", axum::routing::get(|| async { "ok" })).fallback(|| async {
        let mut error = crate::error::ApiError::unavailable("starting: loading the accounts");
        error.retry_after = Some(1);
        error.into_response()
    })
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
