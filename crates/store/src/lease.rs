//! Named leases: at most one holder at a time, until the lease expires.
//!
//! The cluster's leader holds the `leader` lease and renews it well before
//! it expires; an instance that cannot renew stops leading before its lease
//! runs out, and only then may another take it. Each taking raises the
//! lease's `epoch`, so a holder's renewals stop working the moment someone
//! else has taken it. Callers pass `now` from one clock for everyone (the
//! database server's, see [`Store::database_now`]), not their own.

use std::time::Duration;

use model::Timestamp;
use sqlx::Row;

use crate::{Backend, Store, StoreError, ns};

/// A lease as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub name: String,
    pub holder: String,
    /// Where other instances reach the holder.
    pub address: String,
    pub epoch: i64,
    pub acquired: Timestamp,
    pub expires: Timestamp,
}

impl Lease {
    #[must_use]
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.expires > now
    }
}

fn until(now: Timestamp, ttl: Duration) -> Timestamp {
    now.plus_nanos(i64::try_from(ttl.as_nanos()).unwrap_or(i64::MAX))
}

impl Store {
    /// Takes `name` for `holder` if nobody holds it or its lease has expired;
    /// `None` while someone else's lease is live. Taking it again while
    /// holding it starts a new epoch.
    pub async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        address: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        let sql = "INSERT INTO leases (name, holder, address, epoch, acquired_ns, expires_ns) \
                   VALUES ($1, $2, $3, 1, $4, $5) \
                   ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, address = excluded.address, \
                   epoch = leases.epoch + 1, acquired_ns = excluded.acquired_ns, expires_ns = excluded.expires_ns \
                   WHERE leases.expires_ns <= $4 OR leases.holder = $2 \
                   RETURNING epoch";
        let expires = until(now, ttl);
        let epoch: Option<i64> = on_pool!(self, |pool| {
            let row = sqlx::query(sql)
                .bind(name)
                .bind(holder)
                .bind(address)
                .bind(ns(now))
                .bind(ns(expires))
                .fetch_optional(pool)
                .await?;
            row.map(|r| r.try_get(0)).transpose()?
        });
        Ok(epoch.map(|epoch| Lease {
            name: name.to_string(),
            holder: holder.to_string(),
            address: address.to_string(),
            epoch,
            acquired: now,
            expires,
        }))
    }

    /// Extends a live lease this holder still holds in this epoch; `false`
    /// when it has expired or passed to another.
    pub async fn renew_lease(&self, lease: &Lease, now: Timestamp, ttl: Duration) -> Result<bool, StoreError> {
        let sql = "UPDATE leases SET expires_ns = $1 \
                   WHERE name = $2 AND holder = $3 AND epoch = $4 AND expires_ns > $5";
        let expires = ns(until(now, ttl));
        let done = on_pool!(self, |pool| sqlx::query(sql)
            .bind(expires)
            .bind(&lease.name)
            .bind(&lease.holder)
            .bind(lease.epoch)
            .bind(ns(now))
            .execute(pool)
            .await?
            .rows_affected());
        Ok(done == 1)
    }

    /// Gives a lease up at once (a clean stop), so another can take it
    /// without waiting for it to expire.
    pub async fn release_lease(&self, lease: &Lease, now: Timestamp) -> Result<bool, StoreError> {
        let sql = "UPDATE leases SET expires_ns = $1 WHERE name = $2 AND holder = $3 AND epoch = $4";
        let done = on_pool!(self, |pool| sqlx::query(sql)
            .bind(ns(now))
            .bind(&lease.name)
            .bind(&lease.holder)
            .bind(lease.epoch)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(done == 1)
    }

    /// The lease as stored, live or not.
    pub async fn lease(&self, name: &str) -> Result<Option<Lease>, StoreError> {
        let sql = "SELECT holder, address, epoch, acquired_ns, expires_ns FROM leases WHERE name = $1";
        let row: Option<(String, String, i64, i64, i64)> = on_pool!(self, |pool| {
            let row = sqlx::query(sql).bind(name).fetch_optional(pool).await?;
            row.map(|r| {
                Ok::<_, sqlx::Error>((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?, r.try_get(4)?))
            })
            .transpose()?
        });
        Ok(row.map(|(holder, address, epoch, acquired, expires)| Lease {
            name: name.to_string(),
            holder,
            address,
            epoch,
            acquired: Timestamp::from_nanos(acquired),
            expires: Timestamp::from_nanos(expires),
        }))
    }
}
