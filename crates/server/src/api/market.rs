//! Market data: instruments, latest quotes and candles.

use axum::extract::State;
use model::{Instrument, Quote, Timestamp};
use serde::{Deserialize, Serialize};
use sim::candles::Interval;
use store::CandleRecord;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::error::{ApiError, Json, Path, Query};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(instruments)).routes(routes!(quotes)).routes(routes!(candles))
}

/// An instrument with the fees its venue charges.
#[derive(Debug, Serialize, ToSchema)]
struct InstrumentView {
    #[serde(flatten)]
    instrument: Instrument,
    /// Fee on resting orders that fill later, a fraction of the notional.
    maker_fee: model::Rate,
    /// Fee on orders that fill at once.
    taker_fee: model::Rate,
}

/// The instruments of the paper market.
#[utoipa::path(
    get,
    path = "/api/v1/instruments",
    tag = "market",
    responses((status = 200, description = "Every instrument.", body = Vec<InstrumentView>)),
)]
async fn instruments(State(state): State<AppState>) -> Json<Vec<InstrumentView>> {
    let fees = state.runtime.fill_config();
    Json(
        state
            .runtime
            .instruments()
            .iter()
            .map(|i| InstrumentView { instrument: i.clone(), maker_fee: fees.maker_fee, taker_fee: fees.taker_fee })
            .collect(),
    )
}

/// A quote with its instrument's symbol, for clients that key on symbols.
#[derive(Debug, Serialize, ToSchema)]
pub struct SymbolQuote {
    pub symbol: String,
    #[serde(flatten)]
    pub quote: Quote,
}

/// The latest quote of each instrument.
#[utoipa::path(
    get,
    path = "/api/v1/quotes",
    tag = "market",
    responses((status = 200, description = "Latest quotes.", body = Vec<SymbolQuote>)),
)]
async fn quotes(State(state): State<AppState>) -> Json<Vec<SymbolQuote>> {
    let rt = &state.runtime;
    Json(
        rt.latest_quotes()
            .into_iter()
            .filter_map(|quote| {
                rt.instruments()
                    .iter()
                    .find(|i| i.id == quote.instrument)
                    .map(|i| SymbolQuote { symbol: i.symbol.clone(), quote })
            })
            .collect(),
    )
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct CandleQuery {
    /// `1m` (default), `5m`, `1h` or `1d`.
    interval: Option<String>,
    /// Candles starting at or after this time (ISO 8601, or epoch s/ms/µs/ns).
    from: Option<String>,
    /// Candles starting before this time (ISO 8601, or epoch s/ms/µs/ns).
    to: Option<String>,
    /// The most candles, 1 to 5000 (default 500); the newest ones.
    #[param(minimum = 1, maximum = 5000)]
    limit: Option<u32>,
}

const MAX_CANDLES: u32 = 5_000;

/// Closed candles of an instrument, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/instruments/{symbol}/candles",
    tag = "market",
    params(("symbol" = String, Path, description = "The instrument's symbol.", example = "BTC-USDT"), CandleQuery),
    responses(
        (status = 200, description = "Candles.", body = Vec<CandleRecord>),
        (status = 404, description = "- `not_found`: no such instrument."),
        (status = 422, description = "- `validation_failed`: a bad `interval`, `from`, `to` or `limit` (`field` names it)."),
    ),
)]
async fn candles(
    State(state): State<AppState>,
    Path(symbol): Path<String>,
    Query(query): Query<CandleQuery>,
) -> Result<Json<Vec<CandleRecord>>, ApiError> {
    let instrument = state.runtime.instrument_by_symbol(&symbol).ok_or_else(|| ApiError::not_found("instrument"))?.id;
    let interval: Interval = query
        .interval
        .as_deref()
        .unwrap_or("1m")
        .parse()
        .map_err(|e: sim::candles::ParseIntervalError| ApiError::invalid("interval", e.to_string()))?;
    let time = |field: &str, value: &Option<String>, default: Timestamp| -> Result<Timestamp, ApiError> {
        match value {
            Some(v) => Timestamp::parse(v).map_err(|e| ApiError::invalid(field, e.to_string())),
            None => Ok(default),
        }
    };
    let to = time("to", &query.to, Timestamp::from_nanos(i64::MAX))?;
    let from = time("from", &query.from, Timestamp::from_nanos(i64::MIN))?;
    if from >= to {
        return Err(ApiError::invalid("from", "from must be before to"));
    }
    let limit = query.limit.unwrap_or(500);
    if limit == 0 || limit > MAX_CANDLES {
        return Err(ApiError::invalid("limit", format!("limit must be from 1 to {MAX_CANDLES}")));
    }
    let candles = state
        .runtime
        .store
        .candles(instrument, interval.as_str(), from, to, limit)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    Ok(Json(candles))
}
