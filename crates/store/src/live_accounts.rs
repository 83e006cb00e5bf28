//! Accounts that trade at a live venue: which credential and symbols they
//! use, whether their owner confirmed live trading, where reconciliation
//! resumes reading fills, and the known reasons the venue's position may
//! differ from the engine's (see `migrations/*/0010_live_accounts.sql`). The
//! server writes only `link` adjustments (what the venue held before the
//! account was linked): commissions taken in the traded asset are journaled
//! on the account itself (`EventKind::AssetFeeCharged`).

use model::{Currency, Quantity, Timestamp};
use sqlx::Row;

use crate::auth::{AuditEntry, UserId, detail_text};
use crate::venue_credentials::CredentialId;
use crate::{AccountId, Backend, Store, StoreError, ns, parse_json, parse_text};

/// A live account to create.
#[derive(Debug, Clone)]
pub struct NewLiveAccount<'a> {
    pub name: &'a str,
    pub base_currency: Currency,
    pub owner: UserId,
    pub credential_id: CredentialId,
    pub venue: &'a str,
    pub environment: &'a str,
    /// The venue's account number (TastyTrade); empty for Binance.
    pub venue_account: &'a str,
    /// `(symbol, venue symbol)`, in instrument order.
    pub symbols: &'a [(String, String)],
    pub now: Timestamp,
}

/// A live account as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveAccountRow {
    pub account_id: AccountId,
    pub owner: Option<UserId>,
    pub credential_id: CredentialId,
    pub venue: String,
    pub environment: String,
    pub venue_account: String,
    /// `(symbol, venue symbol)`, in instrument order.
    pub symbols: Vec<(String, String)>,
    /// When the owner confirmed live trading; `None`: nothing may be sent.
    pub confirmed: Option<Timestamp>,
    pub fills_since: Timestamp,
    pub created: Timestamp,
}

const COLUMNS: &str = "l.account_id, o.user_id, l.credential_id, l.venue, l.environment, l.venue_account, \
                       l.symbols, l.confirmed_ns, l.fills_since_ns, l.created_ns";

type Tuple = (i64, Option<i64>, i64, String, String, String, String, Option<i64>, i64, i64);

macro_rules! live_tuple {
    ($r:expr) => {
        (
            $r.try_get(0)?,
            $r.try_get(1)?,
            $r.try_get(2)?,
            $r.try_get(3)?,
            $r.try_get(4)?,
            $r.try_get(5)?,
            $r.try_get(6)?,
            $r.try_get(7)?,
            $r.try_get(8)?,
            $r.try_get(9)?,
        )
    };
}

fn from_tuple(t: Tuple) -> Result<LiveAccountRow, StoreError> {
    let (account_id, owner, credential_id, venue, environment, venue_account, symbols, confirmed, since, created) = t;
    Ok(LiveAccountRow {
        account_id,
        owner,
        credential_id,
        venue,
        environment,
        venue_account,
        symbols: parse_json(&symbols, "live account symbols")?,
        confirmed: confirmed.map(Timestamp::from_nanos),
        fills_since: Timestamp::from_nanos(since),
        created: Timestamp::from_nanos(created),
    })
}

impl Store {
    /// Creates an account owned by `new.owner` that trades through the
    /// credential, in one transaction with its ownership and `audit`.
    /// Reconciliation reads fills from `new.now` on.
    pub async fn create_live_account(
        &self,
        new: &NewLiveAccount<'_>,
        audit: &AuditEntry<'_>,
    ) -> Result<AccountId, StoreError> {
        let create = "INSERT INTO accounts (name, base_currency, created_ns) VALUES ($1, $2, $3) RETURNING id";
        let own = "INSERT INTO account_owners (account_id, user_id) VALUES ($1, $2)";
        let live = "INSERT INTO live_accounts \
                    (account_id, credential_id, venue, environment, venue_account, symbols, confirmed_ns, fills_since_ns, \
                    created_ns) VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, $7)";
        let symbols = crate::json(&new.symbols, "live account symbols")?;
        let detail = detail_text(audit)?;
        let id: i64 = on_pool!(self, |pool| async {
            let mut tx = pool.begin().await?;
            let id: i64 = sqlx::query(create)
                .bind(new.name)
                .bind(new.base_currency.as_str())
                .bind(ns(new.now))
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
            sqlx::query(own).bind(id).bind(new.owner).execute(&mut *tx).await?;
            sqlx::query(live)
                .bind(id)
                .bind(new.credential_id)
                .bind(new.venue)
                .bind(new.environment)
                .bind(new.venue_account)
                .bind(&symbols)
                .bind(ns(new.now))
                .execute(&mut *tx)
                .await?;
            insert_audit!(tx, audit, format!("account:{id}"), &detail);
            tx.commit().await?;
            Ok::<i64, sqlx::Error>(id)
        }
        .await)?;
        Ok(id)
    }

    /// Every live account, in id order.
    pub async fn live_accounts(&self) -> Result<Vec<LiveAccountRow>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM live_accounts l LEFT JOIN account_owners o ON o.account_id = l.account_id \
             ORDER BY l.account_id"
        );
        let rows: Vec<Tuple> = on_pool!(self, |pool| {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(pool).await?;
            rows.iter().map(|r| Ok(live_tuple!(r))).collect::<Result<Vec<_>, sqlx::Error>>()?
        });
        rows.into_iter().map(from_tuple).collect()
    }

    /// One live account; `None` for a paper account or no account.
    pub async fn live_account(&self, account: AccountId) -> Result<Option<LiveAccountRow>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM live_accounts l LEFT JOIN account_owners o ON o.account_id = l.account_id \
             WHERE l.account_id = $1"
        );
        let row: Option<Tuple> = on_pool!(self, |pool| {
            match sqlx::query(sqlx::AssertSqlSafe(sql)).bind(account).fetch_optional(pool).await? {
                Some(r) => Some(live_tuple!(r)),
                None => None,
            }
        });
        row.map(from_tuple).transpose()
    }

    /// The live accounts that trade through a credential.
    pub async fn accounts_using_credential(&self, credential: CredentialId) -> Result<Vec<AccountId>, StoreError> {
        let sql = "SELECT account_id FROM live_accounts WHERE credential_id = $1 ORDER BY account_id";
        let ids: Vec<i64> = on_pool!(self, |pool| {
            let rows = sqlx::query(sql).bind(credential).fetch_all(pool).await?;
            rows.iter().map(|r| r.try_get(0)).collect::<Result<Vec<i64>, sqlx::Error>>()?
        });
        Ok(ids)
    }

    /// Records the owner's confirmation of live trading, with `audit`.
    /// `false` when the account is not a live account of that owner (nothing
    /// is written); confirming twice keeps the first time.
    pub async fn confirm_live_account(
        &self,
        account: AccountId,
        owner: UserId,
        now: Timestamp,
        audit: &AuditEntry<'_>,
    ) -> Result<bool, StoreError> {
        let sql = "UPDATE live_accounts SET confirmed_ns = COALESCE(confirmed_ns, $1) WHERE account_id = $2 \
                   AND account_id IN (SELECT account_id FROM account_owners WHERE user_id = $3)";
        let detail = detail_text(audit)?;
        let found = on_pool!(self, |pool| async {
            let mut tx = pool.begin().await?;
            let updated = sqlx::query(sql).bind(ns(now)).bind(account).bind(owner).execute(&mut *tx).await?;
            if updated.rows_affected() == 0 {
                tx.rollback().await?;
                return Ok::<_, sqlx::Error>(false);
            }
            insert_audit!(tx, audit, format!("account:{account}"), &detail);
            tx.commit().await?;
            Ok(true)
        }
        .await)?;
        Ok(found)
    }

    /// Where the next reconciliation of `account` starts reading fills.
    pub async fn set_live_fills_since(&self, account: AccountId, since: Timestamp) -> Result<(), StoreError> {
        let sql = "UPDATE live_accounts SET fills_since_ns = $1 WHERE account_id = $2";
        on_pool!(self, |pool| {
            sqlx::query(sql).bind(ns(since)).bind(account).execute(pool).await?;
        });
        Ok(())
    }

    /// Records a known reason for a position difference, once per `source`
    /// (a second call with the same source changes nothing).
    pub async fn add_position_adjustment(
        &self,
        account: AccountId,
        instrument: model::InstrumentId,
        source: &str,
        quantity: Quantity,
    ) -> Result<(), StoreError> {
        let sql = "INSERT INTO live_position_adjustments (account_id, instrument_id, source, quantity) \
                   VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING";
        let q = quantity.to_string();
        on_pool!(self, |pool| {
            sqlx::query(sql).bind(account).bind(i64::from(instrument.0)).bind(source).bind(&q).execute(pool).await?;
        });
        Ok(())
    }

    /// The sum of the adjustments of each instrument of `account`.
    pub async fn position_adjustments(
        &self,
        account: AccountId,
    ) -> Result<Vec<(model::InstrumentId, Quantity)>, StoreError> {
        let sql = "SELECT instrument_id, quantity FROM live_position_adjustments WHERE account_id = $1 \
                   ORDER BY instrument_id, source";
        let rows: Vec<(i64, String)> = on_pool!(self, |pool| {
            let rows = sqlx::query(sql).bind(account).fetch_all(pool).await?;
            rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect::<Result<Vec<_>, sqlx::Error>>()?
        });
        let mut sums: Vec<(model::InstrumentId, Quantity)> = Vec::new();
        for (instrument, text) in rows {
            let id = u32::try_from(instrument).map_err(|_| StoreError::Corrupt {
                what: "position adjustment",
                detail: format!("instrument id {instrument} out of range"),
            })?;
            let q: Quantity = parse_text(&text, "position adjustment")?;
            match sums.last_mut() {
                Some((last, sum)) if last.0 == id => *sum = *sum + q,
                _ => sums.push((model::InstrumentId(id), q)),
            }
        }
        Ok(sums)
    }
}
