//! Market data the server keeps: closed candles per instrument and interval.

use model::{InstrumentId, Price, Quantity, Timestamp};
use serde::{Deserialize, Serialize};
use sqlx::{QueryBuilder, Row};

use crate::{Backend, ROWS_PER_STATEMENT, Store, StoreError, from_i64, parse_text, to_i64};

/// One stored candle. `interval` is its name (`1m`, `5m`, `1h`, `1d`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CandleRecord {
    pub instrument: InstrumentId,
    pub interval: String,
    pub start: Timestamp,
    pub open: Price,
    pub high: Price,
    pub low: Price,
    pub close: Price,
    pub volume: Quantity,
    pub trades: u64,
}

impl Store {
    /// Saves closed candles (replacing any stored for the same bucket).
    pub async fn save_candles(&self, candles: &[CandleRecord]) -> Result<(), StoreError> {
        if candles.is_empty() {
            return Ok(());
        }
        type Row<'a> = (i64, &'a str, i64, String, String, String, String, String, i64);
        let rows: Vec<Row<'_>> = candles
            .iter()
            .map(|c| {
                Ok((
                    i64::from(c.instrument.0),
                    c.interval.as_str(),
                    c.start.as_nanos(),
                    c.open.to_string(),
                    c.high.to_string(),
                    c.low.to_string(),
                    c.close.to_string(),
                    c.volume.to_string(),
                    to_i64(c.trades, "trade count")?,
                ))
            })
            .collect::<Result<_, StoreError>>()?;
        on_pool!(self, |pool| async {
            let mut tx = pool.begin().await?;
            for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                let mut q = QueryBuilder::new(
                    "INSERT INTO candles (instrument_id, interval, start_ns, open, high, low, close, volume, trades) ",
                );
                q.push_values(chunk, |mut b, r| {
                    b.push_bind(r.0)
                        .push_bind(r.1)
                        .push_bind(r.2)
                        .push_bind(&r.3)
                        .push_bind(&r.4)
                        .push_bind(&r.5)
                        .push_bind(&r.6)
                        .push_bind(&r.7)
                        .push_bind(r.8);
                });
                q.push(
                    " ON CONFLICT (instrument_id, interval, start_ns) DO UPDATE SET open = excluded.open, \
                     high = excluded.high, low = excluded.low, close = excluded.close, volume = excluded.volume, \
                     trades = excluded.trades",
                );
                q.build().execute(&mut *tx).await?;
            }
            tx.commit().await
        }
        .await)?;
        Ok(())
    }

    /// Candles of one instrument and interval with `from <= start < to`, oldest first, at most `limit`
    /// (the newest ones when there are more).
    pub async fn candles(
        &self,
        instrument: InstrumentId,
        interval: &str,
        from: Timestamp,
        to: Timestamp,
        limit: u32,
    ) -> Result<Vec<CandleRecord>, StoreError> {
        let sql = "SELECT start_ns, open, high, low, close, volume, trades FROM candles \
                   WHERE instrument_id = $1 AND interval = $2 AND start_ns >= $3 AND start_ns < $4 \
                   ORDER BY start_ns DESC LIMIT $5";
        type CandleRow = (i64, String, String, String, String, String, i64);
        let rows: Vec<CandleRow> = on_pool!(self, |pool| {
            let rows = sqlx::query(sql)
                .bind(i64::from(instrument.0))
                .bind(interval)
                .bind(from.as_nanos())
                .bind(to.as_nanos())
                .bind(i64::from(limit.max(1)))
                .fetch_all(pool)
                .await?;
            rows.iter()
                .map(|r| {
                    Ok((
                        r.try_get(0)?,
                        r.try_get(1)?,
                        r.try_get(2)?,
                        r.try_get(3)?,
                        r.try_get(4)?,
                        r.try_get(5)?,
                        r.try_get(6)?,
                    ))
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()?
        });
        let mut out = rows
            .into_iter()
            .map(|(start, o, h, l, c, v, n)| {
                Ok(CandleRecord {
                    instrument,
                    interval: interval.to_string(),
                    start: Timestamp::from_nanos(start),
                    open: parse_text(&o, "candle open")?,
                    high: parse_text(&h, "candle high")?,
                    low: parse_text(&l, "candle low")?,
                    close: parse_text(&c, "candle close")?,
                    volume: parse_text(&v, "candle volume")?,
                    trades: from_i64(n, "trade count")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        out.reverse();
        Ok(out)
    }
}
