//! Several instances on one PostgreSQL database.
//!
//! One instance, the leader, runs everything with state in memory: the
//! accounts (each an actor owning its engine), the bots, the paper market
//! and the background jobs. The others stand by: they answer health checks
//! themselves and forward every other request, WebSockets included, to the
//! leader ([`forward`]). Which instance leads is the `leader` lease in the
//! database ([`store::lease`]):
//!
//! - a standby tries to take it every second (or fifth of the lease), and
//!   succeeds only once the leader's lease has expired (by the database
//!   server's clock, so the instances' clocks need not agree);
//! - the leader renews it every fifth of the lease, and stops leading (the
//!   process exits, to be restarted as a standby) when two thirds of the
//!   lease have passed without a renewal, well before anyone may take it;
//! - a leader stopping cleanly releases the lease after flushing its
//!   journal, so a standby takes over at once.
//!
//! Two leaders never write at the same time, and a new one starts from
//! everything the old one acknowledged: the journal is the handover.

pub mod forward;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use model::Timestamp;
use store::Store;
use store::lease::Lease;
use tokio::sync::watch;

use crate::config::Config;

/// The lease the leader holds.
pub const LEADER: &str = "leader";

/// This process, as other instances see it: host, process id, and a random
/// part (a restarted process is another instance).
pub fn instance_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
        let host = host.trim();
        let host = if host.is_empty() { "tradecore" } else { host };
        let suffix = crate::auth::random_hex(3).unwrap_or_default();
        format!("{host}-{}-{suffix}", std::process::id())
    })
}

/// Where other instances reach this one: `cluster.advertise_url`, else
/// derived from the address the listener is bound to.
#[must_use]
pub fn advertise_url(config: &Config, bound: std::net::SocketAddr) -> String {
    if let Some(url) = &config.cluster.advertise_url {
        return url.clone();
    }
    if bound.ip().is_unspecified() {
        let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
        let host = host.trim();
        if !host.is_empty() {
            return format!("http://{host}:{}", bound.port());
        }
    }
    format!("http://{bound}")
}

/// The leader lease from this instance's side.
#[derive(Debug, Clone)]
pub struct Cluster {
    store: Store,
    holder: String,
    address: String,
    ttl: Duration,
    /// The leader's address as last read (`None`: nobody leads right now).
    leader: watch::Sender<Option<String>>,
}

/// Why the leader stopped leading.
#[derive(Debug, thiserror::Error)]
pub enum Lost {
    #[error("another instance ({0}) took the leader lease")]
    TakenOver(String),
    #[error("the leader lease could not be renewed for {0:.1} s (the database is unreachable: {1})")]
    Unreachable(f64, String),
}

impl Cluster {
    #[must_use]
    pub fn new(store: Store, config: &Config, address: String) -> Self {
        Self {
            store,
            holder: instance_id().to_string(),
            address,
            ttl: Duration::from_secs(u64::from(config.cluster.lease_seconds)),
            leader: watch::channel(None).0,
        }
    }

    #[must_use]
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The leader's address, kept current while this instance stands by.
    #[must_use]
    pub fn leader(&self) -> watch::Receiver<Option<String>> {
        self.leader.subscribe()
    }

    /// Everyone's clock: the database server's (SQLite's is this machine's).
    async fn now(&self) -> Result<Timestamp, store::StoreError> {
        Ok(self.store.database_now().await?.unwrap_or_else(crate::accounts::wall_clock))
    }

    fn tick(&self) -> Duration {
        self.ttl / 5
    }

    /// Stands by until this instance takes the leader lease, keeping
    /// [`Self::leader`] current meanwhile; `None` if `stop` turns true first.
    pub async fn campaign(&self, mut stop: watch::Receiver<bool>) -> Option<Lease> {
        let mut announced = None;
        loop {
            match self.try_lead().await {
                Ok(Some(lease)) => {
                    self.leader.send_replace(Some(self.address.clone()));
                    return Some(lease);
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "cluster: cannot read the leader lease"),
            }
            let current = self.leader.borrow().clone();
            if current != announced {
                match &current {
                    Some(address) => tracing::info!(leader = %address, "standing by; forwarding to the leader"),
                    None => tracing::warn!("standing by; no instance leads right now"),
                }
                announced = current;
            }
            // At least once a second: a released lease is taken at once.
            tokio::select! {
                () = tokio::time::sleep(self.tick().min(Duration::from_secs(1))) => {}
                _ = stop.wait_for(|s| *s) => return None,
            }
        }
    }

    /// One attempt: takes the lease if it is free, else notes who leads.
    async fn try_lead(&self) -> Result<Option<Lease>, store::StoreError> {
        let now = self.now().await?;
        match self.store.lease(LEADER).await? {
            Some(lease) if lease.is_live(now) && lease.holder != self.holder => {
                self.leader.send_replace(Some(lease.address));
                Ok(None)
            }
            _ => {
                let taken = self.store.acquire_lease(LEADER, &self.holder, &self.address, now, self.ttl).await?;
                if taken.is_none() {
                    // Someone else took it a moment ago: read who on the next round.
                    self.leader.send_replace(None);
                }
                Ok(taken)
            }
        }
    }

    /// Renews the lease until `stop` turns true (`Ok`) or leadership is lost.
    pub async fn hold(&self, lease: &Lease, mut stop: watch::Receiver<bool>) -> Result<(), Lost> {
        let mut renewed = Instant::now();
        // Well before a standby may take it (at the full lease).
        let give_up = self.ttl * 2 / 3;
        loop {
            tokio::select! {
                () = tokio::time::sleep(self.tick()) => {}
                _ = stop.wait_for(|s| *s) => return Ok(()),
            }
            let attempt = async {
                let now = self.now().await?;
                self.store.renew_lease(lease, now, self.ttl).await
            };
            match tokio::time::timeout(self.tick(), attempt).await {
                Ok(Ok(true)) => renewed = Instant::now(),
                Ok(Ok(false)) => {
                    let holder =
                        self.store.lease(LEADER).await.ok().flatten().map_or_else(|| "?".to_string(), |l| l.holder);
                    return Err(Lost::TakenOver(holder));
                }
                Ok(Err(e)) if renewed.elapsed() >= give_up => {
                    return Err(Lost::Unreachable(renewed.elapsed().as_secs_f64(), e.to_string()));
                }
                Err(_) if renewed.elapsed() >= give_up => {
                    return Err(Lost::Unreachable(renewed.elapsed().as_secs_f64(), "timed out".to_string()));
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "cluster: the leader lease was not renewed; trying again"),
                Err(_) => tracing::warn!("cluster: renewing the leader lease timed out; trying again"),
            }
        }
    }

    /// Gives the lease up after a clean stop, so a standby takes over at once.
    pub async fn release(&self, lease: &Lease) {
        let released = async { self.store.release_lease(lease, self.now().await?).await };
        match released.await {
            Ok(true) => tracing::info!("leader lease released"),
            Ok(false) => tracing::warn!("the leader lease had already passed to another instance"),
            Err(e) => tracing::warn!(error = %e, "the leader lease could not be released; it expires by itself"),
        }
    }
}
