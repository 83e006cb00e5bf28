//! Venue credentials as stored: who they belong to, for which venue, and
//! their secret part **sealed** (encrypted by the server before it gets
//! here). The store never sees a plaintext secret; it keeps, lists and
//! replaces sealed blobs, and re-seals them all at once for a key rotation.

use model::Timestamp;
use sqlx::Row;

use crate::auth::{AuditEntry, UserId, detail_text};
use crate::{Backend, Store, StoreError, ns};

/// A stored credential's id.
pub type CredentialId = i64;

/// A credential to store.
#[derive(Debug, Clone, Copy)]
pub struct NewVenueCredential<'a> {
    pub user_id: UserId,
    /// `binance`, `tastytrade`.
    pub venue: &'a str,
    /// The user's name for it, unique per user and venue.
    pub label: &'a str,
    /// `testnet`, `sandbox`, `production`.
    pub environment: &'a str,
    /// The last characters of the public API key or client id.
    pub key_hint: &'a str,
    /// The fingerprint of the key that sealed it.
    pub key_id: &'a str,
    pub sealed: &'a str,
    pub now: Timestamp,
}

/// A credential as stored. `sealed` is ciphertext; `Debug` shows its length only.
#[derive(Clone, PartialEq, Eq)]
pub struct VenueCredentialRow {
    pub id: CredentialId,
    pub user_id: UserId,
    pub venue: String,
    pub label: String,
    pub environment: String,
    pub key_hint: String,
    pub key_id: String,
    pub sealed: String,
    pub created: Timestamp,
    pub updated: Timestamp,
}

impl std::fmt::Debug for VenueCredentialRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VenueCredentialRow")
            .field("id", &self.id)
            .field("user_id", &self.user_id)
            .field("venue", &self.venue)
            .field("label", &self.label)
            .field("environment", &self.environment)
            .field("key_id", &self.key_id)
            .field("sealed_len", &self.sealed.len())
            .finish_non_exhaustive()
    }
}

/// A credential re-sealed under another key.
#[derive(Debug, Clone)]
pub struct Resealed {
    pub id: CredentialId,
    /// The fingerprint it was sealed under, checked at the write: a row
    /// changed since it was read makes the whole rotation fail.
    pub old_key_id: String,
    pub key_id: String,
    pub sealed: String,
}

const COLUMNS: &str = "id, user_id, venue, label, environment, key_hint, key_id, sealed, created_ns, updated_ns";

type Tuple = (i64, i64, String, String, String, String, String, String, i64, i64);

fn from_tuple(t: Tuple) -> VenueCredentialRow {
    VenueCredentialRow {
        id: t.0,
        user_id: t.1,
        venue: t.2,
        label: t.3,
        environment: t.4,
        key_hint: t.5,
        key_id: t.6,
        sealed: t.7,
        created: Timestamp::from_nanos(t.8),
        updated: Timestamp::from_nanos(t.9),
    }
}

macro_rules! credential_tuple {
    ($r:expr) => {
        row_tuple!($r, 0; 0 1 2 3 4 5 6 7 8 9)
    };
}

impl Store {
    /// Stores a credential and records `audit`. `None` when the user already
    /// has one for that venue under that label (nothing is written).
    pub async fn create_venue_credential(
        &self,
        new: &NewVenueCredential<'_>,
        audit: &AuditEntry<'_>,
    ) -> Result<Option<VenueCredentialRow>, StoreError> {
        let exists = "SELECT COUNT(*) FROM venue_credentials WHERE user_id = $1 AND venue = $2 AND label = $3";
        let insert = "INSERT INTO venue_credentials \
                      (user_id, venue, label, environment, key_hint, key_id, sealed, created_ns, updated_ns) \
                      VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING id";
        let detail = detail_text(audit)?;
        let id: Option<i64> = on_pool!(self, |pool| async {
            let mut tx = pool.begin().await?;
            let taken: i64 = sqlx::query(exists)
                .bind(new.user_id)
                .bind(new.venue)
                .bind(new.label)
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
            if taken > 0 {
                tx.rollback().await?;
                return Ok::<_, sqlx::Error>(None);
            }
            let id: i64 = sqlx::query(insert)
                .bind(new.user_id)
                .bind(new.venue)
                .bind(new.label)
                .bind(new.environment)
                .bind(new.key_hint)
                .bind(new.key_id)
                .bind(new.sealed)
                .bind(ns(new.now))
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
            insert_audit!(tx, audit, format!("venue_credential:{id}"), &detail);
            tx.commit().await?;
            Ok(Some(id))
        }
        .await)?;
        Ok(id.map(|id| VenueCredentialRow {
            id,
            user_id: new.user_id,
            venue: new.venue.to_string(),
            label: new.label.to_string(),
            environment: new.environment.to_string(),
            key_hint: new.key_hint.to_string(),
            key_id: new.key_id.to_string(),
            sealed: new.sealed.to_string(),
            created: new.now,
            updated: new.now,
        }))
    }

    /// The user's credentials, oldest first.
    pub async fn venue_credentials(&self, user_id: UserId) -> Result<Vec<VenueCredentialRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM venue_credentials WHERE user_id = $1 ORDER BY id");
        let rows: Vec<Tuple> = on_pool!(self, |pool| {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(user_id).fetch_all(pool).await?;
            rows.iter().map(|r| Ok(credential_tuple!(r))).collect::<Result<Vec<_>, sqlx::Error>>()?
        });
        Ok(rows.into_iter().map(from_tuple).collect())
    }

    /// One of the user's credentials.
    pub async fn venue_credential(
        &self,
        user_id: UserId,
        id: CredentialId,
    ) -> Result<Option<VenueCredentialRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM venue_credentials WHERE id = $1 AND user_id = $2");
        let row: Option<Tuple> = on_pool!(self, |pool| {
            match sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).bind(user_id).fetch_optional(pool).await? {
                Some(r) => Some(credential_tuple!(r)),
                None => None,
            }
        });
        Ok(row.map(from_tuple))
    }

    /// Every user's credentials (for a key rotation), in id order.
    pub async fn all_venue_credentials(&self) -> Result<Vec<VenueCredentialRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM venue_credentials ORDER BY id");
        let rows: Vec<Tuple> = on_pool!(self, |pool| {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(pool).await?;
            rows.iter().map(|r| Ok(credential_tuple!(r))).collect::<Result<Vec<_>, sqlx::Error>>()?
        });
        Ok(rows.into_iter().map(from_tuple).collect())
    }

    /// Deletes one of the user's credentials and records `audit`. `false`
    /// (and no record) when the user has no such credential.
    pub async fn delete_venue_credential(
        &self,
        user_id: UserId,
        id: CredentialId,
        audit: &AuditEntry<'_>,
    ) -> Result<bool, StoreError> {
        let sql = "DELETE FROM venue_credentials WHERE id = $1 AND user_id = $2";
        let detail = detail_text(audit)?;
        let found = on_pool!(self, |pool| async {
            let mut tx = pool.begin().await?;
            let deleted = sqlx::query(sql).bind(id).bind(user_id).execute(&mut *tx).await?;
            if deleted.rows_affected() == 0 {
                tx.rollback().await?;
                return Ok::<_, sqlx::Error>(false);
            }
            insert_audit!(tx, audit, format!("venue_credential:{id}"), &detail);
            tx.commit().await?;
            Ok(true)
        }
        .await)?;
        Ok(found)
    }

    /// Replaces the sealed secrets of a key rotation, all or none, and
    /// records `audit`. Fails (changing nothing) when any row is gone or
    /// no longer sealed under the key it was read with, or when a
    /// credential was added meanwhile that `resealed` does not cover.
    pub async fn reseal_venue_credentials(
        &self,
        resealed: &[Resealed],
        now: Timestamp,
        audit: &AuditEntry<'_>,
    ) -> Result<(), StoreError> {
        let update =
            "UPDATE venue_credentials SET key_id = $1, sealed = $2, updated_ns = $3 WHERE id = $4 AND key_id = $5";
        let count = "SELECT COUNT(*) FROM venue_credentials";
        let detail = detail_text(audit)?;
        let changed = on_pool!(self, |pool| async {
            let mut tx = pool.begin().await?;
            for r in resealed {
                let done = sqlx::query(update)
                    .bind(&r.key_id)
                    .bind(&r.sealed)
                    .bind(ns(now))
                    .bind(r.id)
                    .bind(&r.old_key_id)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() != 1 {
                    tx.rollback().await?;
                    return Ok::<_, sqlx::Error>(Err(r.id));
                }
            }
            let total: i64 = sqlx::query(count).fetch_one(&mut *tx).await?.try_get(0)?;
            if usize::try_from(total).ok() != Some(resealed.len()) {
                tx.rollback().await?;
                return Ok(Err(0));
            }
            insert_audit!(tx, audit, "venue_credentials", &detail);
            tx.commit().await?;
            Ok(Ok(()))
        }
        .await)?;
        changed.map_err(|id| {
            StoreError::Conflict(if id == 0 {
                "a venue credential was added during the rotation; run it again".to_string()
            } else {
                format!("venue credential {id} changed during the rotation; run it again")
            })
        })
    }
}
