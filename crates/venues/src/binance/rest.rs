//! The Binance spot REST client.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::Method;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use model::{ClientOrderId, Timestamp};

use super::error::{BinanceError, ErrorCode};
use super::filters::{ExchangeInfo, RawExchangeInfo};
use super::rate_limit::{self, RateLimitStatus, RateLimiter, Refusal};
use super::signing::{Credentials, encode_query, percent_encode};
use super::types::{AccountInfo, NewOrder, OrderReport, Trade, TradeQuery, millis};

/// The spot test network, used unless [`BinanceConfig::production`] is set.
pub const TESTNET_BASE_URL: &str = "https://testnet.binance.vision";
/// The live spot API; only with [`BinanceConfig::production`].
pub const PRODUCTION_BASE_URL: &str = "https://api.binance.com";
/// Hosts that trade real money; a `base_url` pointing at one of them needs
/// `production: true`.
const PRODUCTION_HOSTS: [&str; 6] = [
    "api.binance.com",
    "api-gcp.binance.com",
    "api1.binance.com",
    "api2.binance.com",
    "api3.binance.com",
    "api4.binance.com",
];

/// Client settings. The default talks to the testnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinanceConfig {
    /// Trade on the live exchange. Off by default: the testnet is used.
    pub production: bool,
    /// Overrides the base URL (a fake server in tests, another API cluster).
    /// A production host is refused unless `production` is set.
    pub base_url: Option<String>,
    /// `recvWindow` sent with SIGNED requests (Binance: default 5 s, max 60 s).
    pub recv_window: Duration,
    /// Whole-request timeout. A placement or cancel that times out is
    /// reported as [`PlaceOutcome::StatusUnknown`] / [`CancelOutcome::StatusUnknown`].
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// After a 429, later requests wait for `Retry-After` up to this long;
    /// a longer back-off fails them with [`BinanceError::RateLimited`].
    pub max_rate_limit_wait: Duration,
    /// Fetch the server time before the first SIGNED request, so local clock
    /// skew does not cause -1021 rejections.
    pub sync_time_on_first_signed_request: bool,
}

impl Default for BinanceConfig {
    fn default() -> Self {
        Self {
            production: false,
            base_url: None,
            recv_window: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            max_rate_limit_wait: Duration::from_secs(10),
            sync_time_on_first_signed_request: true,
        }
    }
}

impl BinanceConfig {
    /// The base URL requests go to, after the production safety check.
    pub fn resolved_base_url(&self) -> Result<String, BinanceError> {
        let url = match (&self.base_url, self.production) {
            (Some(url), _) => url.trim().trim_end_matches('/').to_string(),
            (None, true) => PRODUCTION_BASE_URL.to_string(),
            (None, false) => TESTNET_BASE_URL.to_string(),
        };
        let parsed = reqwest::Url::parse(&url).map_err(|e| BinanceError::Config(format!("base URL '{url}': {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(BinanceError::Config(format!("base URL '{url}' must be http or https")));
        }
        let host = parsed.host_str().unwrap_or("").to_ascii_lowercase();
        if !self.production && PRODUCTION_HOSTS.contains(&host.as_str()) {
            return Err(BinanceError::Config(format!(
                "base URL '{url}' is the live exchange; set production = true to trade real money"
            )));
        }
        if self.recv_window.is_zero() || self.recv_window > Duration::from_secs(60) {
            return Err(BinanceError::Config(format!(
                "recv_window must be between 1 ms and 60 s, got {:?}",
                self.recv_window
            )));
        }
        Ok(url)
    }
}

/// The answer to a placement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaceOutcome {
    /// Binance accepted the order; the `FULL` response.
    Placed(OrderReport),
    /// No usable answer (timeout, 5xx, connection lost after sending): the
    /// order may or may not exist. Do not resubmit; call
    /// [`BinanceClient::settle`].
    StatusUnknown(UnknownOutcome),
}

/// The answer to a cancel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    Cancelled(OrderReport),
    /// The cancel may or may not have happened; call [`BinanceClient::settle`].
    StatusUnknown(UnknownOutcome),
}

/// Which state-changing request went unanswered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PendingAction {
    Place,
    Cancel,
}

/// A placement or cancel whose effect is not known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownOutcome {
    pub action: PendingAction,
    pub symbol: String,
    pub client_order_id: ClientOrderId,
    /// What went wrong, for logs.
    pub cause: String,
}

/// What querying an order of unknown status found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// The order exists; its current state.
    Found(Box<OrderReport>),
    /// Binance answered -2013 "Order does not exist.": the placement did not
    /// take effect (as of this query).
    Absent,
}

struct Endpoint {
    method: Method,
    path: &'static str,
    weight: u64,
    signed: bool,
    /// Counts against the ORDERS limits.
    order: bool,
}

impl Endpoint {
    const fn new(method: Method, path: &'static str, weight: u64, signed: bool, order: bool) -> Self {
        Self { method, path, weight, signed, order }
    }

    fn name(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

#[derive(Deserialize)]
struct ApiErrorBody {
    code: i64,
    msg: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ServerTime {
    server_time: i64,
}

fn local_now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// An async Binance spot REST client. Cheap to share behind an `Arc`; all
/// methods take `&self`.
pub struct BinanceClient {
    http: reqwest::Client,
    base_url: String,
    config: BinanceConfig,
    credentials: Option<Credentials>,
    /// Server time minus local time, in milliseconds.
    offset_ms: AtomicI64,
    synced: AtomicBool,
    limiter: RateLimiter,
}

impl std::fmt::Debug for BinanceClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BinanceClient")
            .field("base_url", &self.base_url)
            .field("production", &self.config.production)
            .field("credentials", &self.credentials)
            .field("offset_ms", &self.offset_ms.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl BinanceClient {
    /// A client for `config`; `credentials` are needed only for SIGNED endpoints.
    pub fn new(config: BinanceConfig, credentials: Option<Credentials>) -> Result<Self, BinanceError> {
        let base_url = config.resolved_base_url()?;
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("tradecore-venues/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| BinanceError::Config(format!("HTTP client: {e}")))?;
        if config.production {
            tracing::warn!(%base_url, "binance: client for the LIVE exchange");
        }
        Ok(Self {
            http,
            base_url,
            config,
            credentials,
            offset_ms: AtomicI64::new(0),
            synced: AtomicBool::new(false),
            limiter: RateLimiter::new(),
        })
    }

    #[must_use]
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    #[must_use]
    pub fn config(&self) -> &BinanceConfig {
        &self.config
    }

    /// Estimated server time minus local time, in milliseconds (0 before the first sync).
    #[must_use]
    pub fn clock_offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed)
    }

    /// The current time by the server's clock, estimated.
    fn server_now_ms(&self) -> i64 {
        local_now_ms().saturating_add(self.clock_offset_ms())
    }

    /// Usage against the rate limits, as last reported by Binance.
    #[must_use]
    pub fn rate_limit_status(&self) -> RateLimitStatus {
        self.limiter.status(self.server_now_ms())
    }

    /// `GET /api/v3/time`.
    pub async fn server_time(&self) -> Result<Timestamp, BinanceError> {
        let ep = Endpoint::new(Method::GET, "/api/v3/time", 1, false, false);
        let t: ServerTime = decode(&ep, &self.send_once(&ep, &[]).await?)?;
        Ok(millis(t.server_time))
    }

    /// Measures the server clock against the local one and keeps the offset
    /// for SIGNED timestamps. Returns the offset in milliseconds.
    pub async fn sync_time(&self) -> Result<i64, BinanceError> {
        let ep = Endpoint::new(Method::GET, "/api/v3/time", 1, false, false);
        let before = local_now_ms();
        let body = self.send_once(&ep, &[]).await?;
        let after = local_now_ms();
        let t: ServerTime = decode(&ep, &body)?;
        let offset = t.server_time - (before + after) / 2;
        self.offset_ms.store(offset, Ordering::Relaxed);
        self.synced.store(true, Ordering::Relaxed);
        tracing::debug!(offset_ms = offset, round_trip_ms = after - before, "binance: clock synced");
        Ok(offset)
    }

    /// `GET /api/v3/exchangeInfo`, for the given symbols or (empty slice) all.
    /// Also adopts the `rateLimits` it lists.
    pub async fn exchange_info(&self, symbols: &[&str]) -> Result<ExchangeInfo, BinanceError> {
        let ep = Endpoint::new(Method::GET, "/api/v3/exchangeInfo", 20, false, false);
        let params = match symbols {
            [] => vec![],
            [one] => vec![("symbol", (*one).to_string())],
            many => {
                let list = many.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(",");
                vec![("symbols", format!("[{list}]"))]
            }
        };
        let raw: RawExchangeInfo = decode(&ep, &self.execute(&ep, &params).await?)?;
        let info = raw.into_info();
        self.limiter.set_limits(info.rate_limits.clone());
        Ok(info)
    }

    /// `POST /api/v3/order` with `newOrderRespType=FULL`.
    ///
    /// A rejection is an error ([`BinanceError::Api`], e.g. -2010 or -1013).
    /// A timeout or 5xx is `Ok(PlaceOutcome::StatusUnknown)`: the order is
    /// never sent a second time by this method.
    pub async fn place_order(&self, order: &NewOrder) -> Result<PlaceOutcome, BinanceError> {
        let ep = Endpoint::new(Method::POST, "/api/v3/order", 1, true, true);
        let params = order.params()?;
        match self.execute(&ep, &params).await.and_then(|body| decode::<OrderReport>(&ep, &body)) {
            Ok(report) => Ok(PlaceOutcome::Placed(report)),
            Err(e) if e.is_execution_unknown() => {
                tracing::warn!(symbol = %order.symbol, client_order_id = %order.client_order_id, error = %e,
                    "binance: order placement status unknown; settle by query, do not resubmit");
                Ok(PlaceOutcome::StatusUnknown(UnknownOutcome {
                    action: PendingAction::Place,
                    symbol: order.symbol.clone(),
                    client_order_id: order.client_order_id.clone(),
                    cause: e.to_string(),
                }))
            }
            Err(e) => Err(e),
        }
    }

    /// `DELETE /api/v3/order` by `origClientOrderId`.
    pub async fn cancel_order(
        &self,
        symbol: &str,
        client_order_id: &ClientOrderId,
    ) -> Result<CancelOutcome, BinanceError> {
        let ep = Endpoint::new(Method::DELETE, "/api/v3/order", 1, true, false);
        let params = [("symbol", symbol.to_string()), ("origClientOrderId", client_order_id.to_string())];
        match self.execute(&ep, &params).await.and_then(|body| decode::<OrderReport>(&ep, &body)) {
            Ok(report) => Ok(CancelOutcome::Cancelled(report)),
            Err(e) if e.is_execution_unknown() => {
                tracing::warn!(%symbol, %client_order_id, error = %e, "binance: cancel status unknown; settle by query");
                Ok(CancelOutcome::StatusUnknown(UnknownOutcome {
                    action: PendingAction::Cancel,
                    symbol: symbol.to_string(),
                    client_order_id: client_order_id.clone(),
                    cause: e.to_string(),
                }))
            }
            Err(e) => Err(e),
        }
    }

    /// An order by Binance's order id (for naming the fills of an order this
    /// process has not seen, after a restart).
    pub async fn query_order_by_id(&self, symbol: &str, order_id: u64) -> Result<OrderReport, BinanceError> {
        let ep = Endpoint::new(Method::GET, "/api/v3/order", 4, true, false);
        let params = [("symbol", symbol.to_string()), ("orderId", order_id.to_string())];
        decode(&ep, &self.execute(&ep, &params).await?)
    }

    /// `GET /api/v3/order` by `origClientOrderId`. An unknown order is
    /// `Err(Api { code: NoSuchOrder, .. })`.
    pub async fn query_order(
        &self,
        symbol: &str,
        client_order_id: &ClientOrderId,
    ) -> Result<OrderReport, BinanceError> {
        let ep = Endpoint::new(Method::GET, "/api/v3/order", 4, true, false);
        let params = [("symbol", symbol.to_string()), ("origClientOrderId", client_order_id.to_string())];
        decode(&ep, &self.execute(&ep, &params).await?)
    }

    /// Settles a placement or cancel of unknown outcome by querying the
    /// order by its client order id. Binance may take a moment to make a
    /// just-placed order visible, so callers wait a little before settling.
    pub async fn settle(&self, unknown: &UnknownOutcome) -> Result<Settlement, BinanceError> {
        match self.query_order(&unknown.symbol, &unknown.client_order_id).await {
            Ok(report) => Ok(Settlement::Found(Box::new(report))),
            Err(e) if e.code() == Some(ErrorCode::NoSuchOrder) => Ok(Settlement::Absent),
            Err(e) => Err(e),
        }
    }

    /// `GET /api/v3/openOrders`, for one symbol or (None) all.
    pub async fn open_orders(&self, symbol: Option<&str>) -> Result<Vec<OrderReport>, BinanceError> {
        let weight = if symbol.is_some() { 6 } else { 80 };
        let ep = Endpoint::new(Method::GET, "/api/v3/openOrders", weight, true, false);
        let params: Vec<_> = symbol.map(|s| ("symbol", s.to_string())).into_iter().collect();
        decode(&ep, &self.execute(&ep, &params).await?)
    }

    /// `GET /api/v3/account`: balances and permissions.
    pub async fn account(&self) -> Result<AccountInfo, BinanceError> {
        let ep = Endpoint::new(Method::GET, "/api/v3/account", 20, true, false);
        decode(&ep, &self.execute(&ep, &[]).await?)
    }

    /// `GET /api/v3/myTrades` for a symbol.
    pub async fn my_trades(&self, symbol: &str, query: &TradeQuery) -> Result<Vec<Trade>, BinanceError> {
        let weight = if query.order_id.is_some() { 5 } else { 20 };
        let ep = Endpoint::new(Method::GET, "/api/v3/myTrades", weight, true, false);
        let mut params = vec![("symbol", symbol.to_string())];
        let ms = |t: Timestamp| (t.as_nanos() / 1_000_000).to_string();
        if let Some(id) = query.order_id {
            params.push(("orderId", id.to_string()));
        }
        if let Some(t) = query.start_time {
            params.push(("startTime", ms(t)));
        }
        if let Some(t) = query.end_time {
            params.push(("endTime", ms(t)));
        }
        if let Some(id) = query.from_id {
            params.push(("fromId", id.to_string()));
        }
        if let Some(l) = query.limit {
            params.push(("limit", l.to_string()));
        }
        decode(&ep, &self.execute(&ep, &params).await?)
    }

    /// Sends a request; for SIGNED ones, syncs the clock first if needed and,
    /// on -1021, resyncs and retries exactly once (Binance rejected the first
    /// attempt before acting on it, so the retry cannot duplicate anything).
    async fn execute(&self, ep: &Endpoint, params: &[(&'static str, String)]) -> Result<String, BinanceError> {
        if ep.signed && self.config.sync_time_on_first_signed_request && !self.synced.load(Ordering::Relaxed) {
            self.sync_time().await?;
        }
        match self.send_once(ep, params).await {
            Err(e) if ep.signed && e.code() == Some(ErrorCode::InvalidTimestamp) => {
                tracing::warn!(endpoint = %ep.name(), error = %e, "binance: timestamp rejected; resyncing clock and retrying once");
                self.sync_time().await?;
                self.send_once(ep, params).await
            }
            other => other,
        }
    }

    async fn wait_for_limits(&self, ep: &Endpoint) -> Result<(), BinanceError> {
        loop {
            match self.limiter.check(ep.weight, ep.order, self.server_now_ms()) {
                Ok(()) => return Ok(()),
                Err(Refusal::Banned(left)) => {
                    return Err(BinanceError::IpBanned { endpoint: ep.name(), retry_after: left });
                }
                Err(Refusal::Backoff(left)) if left <= self.config.max_rate_limit_wait => {
                    tracing::debug!(endpoint = %ep.name(), wait_ms = left.as_millis(), "binance: backing off after 429");
                    tokio::time::sleep(left).await;
                }
                Err(Refusal::Backoff(left)) => {
                    return Err(BinanceError::RateLimited { endpoint: ep.name(), retry_after: left });
                }
                Err(Refusal::Exhausted { kind, interval, used, limit, resets_in }) => {
                    return Err(BinanceError::LimitExhausted {
                        endpoint: ep.name(),
                        kind,
                        interval,
                        used,
                        limit,
                        resets_in,
                    });
                }
            }
        }
    }

    async fn send_once(&self, ep: &Endpoint, params: &[(&'static str, String)]) -> Result<String, BinanceError> {
        let name = ep.name();
        self.wait_for_limits(ep).await?;
        let mut url = format!("{}{}", self.base_url, ep.path);
        let mut request = if ep.signed {
            let creds = self.credentials.as_ref().ok_or_else(|| {
                BinanceError::Credentials(format!("{name} is a SIGNED endpoint and the client has no API key"))
            })?;
            let mut all = params.to_vec();
            all.push(("recvWindow", self.config.recv_window.as_millis().to_string()));
            all.push(("timestamp", self.server_now_ms().to_string()));
            let payload = encode_query(&all);
            let signature = creds.sign(&payload);
            url.push('?');
            url.push_str(&payload);
            url.push_str("&signature=");
            url.push_str(&percent_encode(&signature));
            self.http.request(ep.method.clone(), &url).header("X-MBX-APIKEY", creds.api_key())
        } else {
            if !params.is_empty() {
                url.push('?');
                url.push_str(&encode_query(params));
            }
            self.http.request(ep.method.clone(), &url)
        };
        if ep.method == Method::POST || ep.method == Method::DELETE {
            request = request.header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        }
        let response = request.send().await.map_err(|e| self.transport_error(&name, e))?;
        let status = response.status();
        let headers = response.headers().clone();
        self.limiter.observe(&headers, self.server_now_ms());
        let body = response.text().await.map_err(|e| self.transport_error(&name, e))?;
        tracing::debug!(endpoint = %name, status = status.as_u16(),
            used_weight_1m = headers.get("x-mbx-used-weight-1m").and_then(|v| v.to_str().ok()).unwrap_or(""),
            "binance: response");
        match status.as_u16() {
            429 => {
                let retry_after = rate_limit::retry_after(&headers).unwrap_or(rate_limit::DEFAULT_429_BACKOFF);
                self.limiter.on_429(retry_after);
                tracing::warn!(endpoint = %name, ?retry_after, "binance: HTTP 429, backing off");
                Err(BinanceError::RateLimited { endpoint: name, retry_after })
            }
            418 => {
                let retry_after = rate_limit::retry_after(&headers).unwrap_or(rate_limit::DEFAULT_418_BAN);
                self.limiter.on_418(retry_after);
                tracing::error!(endpoint = %name, ?retry_after, "binance: HTTP 418, IP banned; sending nothing until it ends");
                Err(BinanceError::IpBanned { endpoint: name, retry_after })
            }
            _ if status.is_success() => Ok(body),
            code => match serde_json::from_str::<ApiErrorBody>(&body) {
                Ok(err) => Err(BinanceError::Api {
                    endpoint: name,
                    status: code,
                    code: ErrorCode::from_code(err.code),
                    msg: err.msg,
                }),
                Err(_) => Err(BinanceError::Http { endpoint: name, status: code, body: snippet(&body) }),
            },
        }
    }

    fn transport_error(&self, endpoint: &str, e: reqwest::Error) -> BinanceError {
        let e = e.without_url();
        if e.is_connect() {
            BinanceError::Transport { endpoint: endpoint.to_string(), maybe_sent: false, source: e }
        } else if e.is_timeout() {
            BinanceError::Timeout { endpoint: endpoint.to_string(), after: self.config.request_timeout }
        } else {
            BinanceError::Transport { endpoint: endpoint.to_string(), maybe_sent: true, source: e }
        }
    }
}

fn decode<T: DeserializeOwned>(ep: &Endpoint, body: &str) -> Result<T, BinanceError> {
    serde_json::from_str(body)
        .map_err(|e| BinanceError::Decode { endpoint: ep.name(), detail: format!("{e}; body: {}", snippet(body)) })
}

fn snippet(body: &str) -> String {
    let mut s: String = body.chars().take(300).collect();
    if s.len() < body.len() {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn testnet_by_default_and_production_only_when_asked() {
        assert_eq!(BinanceConfig::default().resolved_base_url().unwrap(), TESTNET_BASE_URL);
        let live = BinanceConfig { production: true, ..BinanceConfig::default() };
        assert_eq!(live.resolved_base_url().unwrap(), PRODUCTION_BASE_URL);
        let sneaky = BinanceConfig { base_url: Some("https://api.binance.com/".into()), ..BinanceConfig::default() };
        assert!(matches!(sneaky.resolved_base_url(), Err(BinanceError::Config(m)) if m.contains("production")));
        let local = BinanceConfig { base_url: Some("http://127.0.0.1:9/".into()), ..BinanceConfig::default() };
        assert_eq!(local.resolved_base_url().unwrap(), "http://127.0.0.1:9");
        let bad_window = BinanceConfig { recv_window: Duration::from_secs(61), ..BinanceConfig::default() };
        assert!(bad_window.resolved_base_url().is_err());
    }
}
