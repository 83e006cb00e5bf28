//! The TastyTrade REST client.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::Method;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use model::{Instrument, InstrumentId, Timestamp};

use super::auth::{AccessToken, OAuthCredentials, TokenManager};
use super::error::{ErrorDetail, TastyError};
use super::symbols::OccSymbol;
use super::types::{
    AccountAuthority, AccountBalance, EquityInfo, EquityOptionInfo, NewOrder, Pagination, PlacedOrder, Position,
    QuoteToken, RawPosition, Replacement, TastyOrder, Transaction, TransactionQuery,
};

/// The sandbox ("cert") environment, used unless [`TastyConfig::production`] is set.
pub const SANDBOX_BASE_URL: &str = "https://api.cert.tastyworks.com";
/// The live API; only with [`TastyConfig::production`].
pub const PRODUCTION_BASE_URL: &str = "https://api.tastyworks.com";
/// Hosts that trade real money; a `base_url` pointing at one needs `production: true`.
const PRODUCTION_HOSTS: [&str; 2] = ["api.tastyworks.com", "api.tastytrade.com"];
/// The default `User-Agent` (TastyTrade requires `<product>/<version>`).
pub const DEFAULT_USER_AGENT: &str = concat!("tradecore/", env!("CARGO_PKG_VERSION"));

/// Client settings. The default talks to the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TastyConfig {
    /// Trade on the live API. Off by default: the sandbox is used.
    pub production: bool,
    /// Overrides the base URL (a fake server in tests). A production host is
    /// refused unless `production` is set.
    pub base_url: Option<String>,
    /// Sent on every request, the OAuth call included; `<product>/<version>`.
    pub user_agent: String,
    /// Whole-request timeout. A placement, cancel or replace that times out
    /// is reported as a status-unknown outcome.
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// Replace the access token this long before it expires (default 60 s
    /// of its 15 minutes).
    pub token_refresh_margin: Duration,
    /// Orders per page when searching orders to settle an unknown outcome.
    pub settle_page_size: u32,
    /// Pages searched at most when settling.
    pub settle_max_pages: u32,
}

impl Default for TastyConfig {
    fn default() -> Self {
        Self {
            production: false,
            base_url: None,
            user_agent: DEFAULT_USER_AGENT.to_string(),
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            token_refresh_margin: Duration::from_secs(60),
            settle_page_size: 100,
            settle_max_pages: 20,
        }
    }
}

impl TastyConfig {
    /// The base URL requests go to, after the production safety check.
    pub fn resolved_base_url(&self) -> Result<String, TastyError> {
        let url = match (&self.base_url, self.production) {
            (Some(url), _) => url.trim().trim_end_matches('/').to_string(),
            (None, true) => PRODUCTION_BASE_URL.to_string(),
            (None, false) => SANDBOX_BASE_URL.to_string(),
        };
        let parsed = reqwest::Url::parse(&url).map_err(|e| TastyError::Config(format!("base URL '{url}': {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(TastyError::Config(format!("base URL '{url}' must be http or https")));
        }
        let host = parsed.host_str().unwrap_or("").to_ascii_lowercase();
        if !self.production && PRODUCTION_HOSTS.contains(&host.as_str()) {
            return Err(TastyError::Config(format!(
                "base URL '{url}' is the live API; set production = true to trade real money"
            )));
        }
        check_user_agent(&self.user_agent)?;
        if self.settle_page_size == 0 || self.settle_max_pages == 0 {
            return Err(TastyError::Config("settle_page_size and settle_max_pages must be positive".into()));
        }
        Ok(url)
    }
}

/// TastyTrade rejects requests whose `User-Agent` is not `<product>/<version>`.
fn check_user_agent(ua: &str) -> Result<(), TastyError> {
    let ok = ua.split_once('/').is_some_and(|(product, version)| {
        !product.is_empty() && !version.is_empty() && ua.bytes().all(|b| b.is_ascii_graphic()) && !version.contains('/')
    });
    if ok {
        Ok(())
    } else {
        Err(TastyError::Config(format!("user agent '{ua}' must be <product>/<version>, e.g. tradecore/1.0")))
    }
}

/// The answer to a placement (or a replacement).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaceOutcome {
    /// TastyTrade accepted the order (its status may still be Received/Routed).
    Placed(Box<PlacedOrder>),
    /// No usable answer (timeout, 5xx, connection lost after sending): the
    /// order may or may not exist. Do not resubmit; call [`TastyClient::settle`].
    StatusUnknown(UnknownOutcome),
}

/// The answer to a replacement (`PUT`): the new order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplaceOutcome {
    Replaced(Box<TastyOrder>),
    /// The replacement may or may not exist; call [`TastyClient::settle`]
    /// (it searches for the replacement's external identifier).
    StatusUnknown(UnknownOutcome),
}

/// The answer to a cancel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The order as TastyTrade reported it (Cancelled, or Cancel Requested).
    Cancelled(Box<TastyOrder>),
    /// The cancel may or may not have happened; query the order by id
    /// ([`TastyClient::order`]).
    StatusUnknown { account_number: String, order_id: u64, cause: String },
}

/// Which state-changing request went unanswered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PendingAction {
    Place,
    Replace { replaced_order_id: u64 },
}

/// A placement or replacement whose effect is not known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownOutcome {
    pub action: PendingAction,
    pub account_number: String,
    /// The `external-identifier` the order was sent with (our client order id).
    pub external_identifier: String,
    /// What went wrong, for logs.
    pub cause: String,
}

/// What searching for an order of unknown outcome found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// The order exists; its current state.
    Found(Box<TastyOrder>),
    /// No order carries the external identifier (as of this search): the
    /// placement did not take effect.
    Absent,
}

struct Endpoint {
    method: Method,
    path: String,
}

impl Endpoint {
    fn new(method: Method, path: String) -> Self {
        Self { method, path }
    }

    fn name(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

#[derive(Deserialize)]
struct Envelope<T> {
    data: T,
    #[serde(default)]
    pagination: Option<Pagination>,
}

#[derive(Deserialize)]
struct Items<T> {
    items: Vec<T>,
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorBody,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ErrorBody {
    /// TastyTrade's envelope: `{"error": {"code", "message", "errors"}}`.
    Tasty {
        #[serde(default)]
        code: Option<String>,
        #[serde(default)]
        message: Option<String>,
        #[serde(default)]
        errors: Vec<ErrorDetail>,
    },
    /// Plain OAuth: `{"error": "invalid_grant", "error_description": ...}`.
    OAuth(String),
}

#[derive(Deserialize)]
struct OAuthDescription {
    #[serde(default)]
    error_description: Option<String>,
}

/// Reads a non-2xx body as TastyTrade's error envelope (or an OAuth error).
pub(crate) fn api_error(endpoint: String, status: u16, body: &str) -> TastyError {
    match serde_json::from_str::<ErrorEnvelope>(body) {
        Ok(ErrorEnvelope { error: ErrorBody::Tasty { code, message, errors } }) => TastyError::Api {
            endpoint,
            status,
            code: code.unwrap_or_else(|| format!("http_{status}")),
            message: message.unwrap_or_default(),
            errors,
        },
        Ok(ErrorEnvelope { error: ErrorBody::OAuth(code) }) => {
            let message = serde_json::from_str::<OAuthDescription>(body)
                .ok()
                .and_then(|d| d.error_description)
                .unwrap_or_default();
            TastyError::Api { endpoint, status, code, message, errors: vec![] }
        }
        Err(_) => TastyError::Http { endpoint, status, body: snippet(body) },
    }
}

pub(crate) fn transport_error(endpoint: &str, e: reqwest::Error, timeout: Duration) -> TastyError {
    let e = e.without_url();
    if e.is_connect() {
        TastyError::Transport { endpoint: endpoint.to_string(), maybe_sent: false, source: e }
    } else if e.is_timeout() {
        TastyError::Timeout { endpoint: endpoint.to_string(), after: timeout }
    } else {
        TastyError::Transport { endpoint: endpoint.to_string(), maybe_sent: true, source: e }
    }
}

fn snippet(body: &str) -> String {
    let mut s: String = body.chars().take(300).collect();
    if s.len() < body.len() {
        s.push('…');
    }
    s
}

/// Percent-encodes one path segment (OCC symbols contain spaces, some
/// tickers a `/`).
fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn decode<T: DeserializeOwned>(ep: &Endpoint, body: &str) -> Result<Envelope<T>, TastyError> {
    serde_json::from_str(body)
        .map_err(|e| TastyError::Decode { endpoint: ep.name(), detail: format!("{e}; body: {}", snippet(body)) })
}

/// Yesterday's UTC date: on or before today's date in US Eastern time,
/// which order searches by `start-date` use.
fn search_start_date() -> String {
    let now_ns =
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    let day = Timestamp::from_nanos(now_ns).day_number() - 1;
    let (y, m, d) = model::time::civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// An async TastyTrade REST client. Cheap to share behind an `Arc`; all
/// methods take `&self`.
pub struct TastyClient {
    http: reqwest::Client,
    base_url: String,
    config: TastyConfig,
    tokens: TokenManager,
}

impl std::fmt::Debug for TastyClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TastyClient")
            .field("base_url", &self.base_url)
            .field("production", &self.config.production)
            .field("user_agent", &self.config.user_agent)
            .field("tokens", &self.tokens)
            .finish_non_exhaustive()
    }
}

impl TastyClient {
    pub fn new(config: TastyConfig, credentials: OAuthCredentials) -> Result<Self, TastyError> {
        let base_url = config.resolved_base_url()?;
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout)
            .user_agent(config.user_agent.clone())
            .build()
            .map_err(|e| TastyError::Config(format!("HTTP client: {e}")))?;
        if config.production {
            tracing::warn!(%base_url, "tastytrade: client for the LIVE API");
        }
        let tokens = TokenManager::new(credentials, config.token_refresh_margin);
        Ok(Self { http, base_url, config, tokens })
    }

    #[must_use]
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    #[must_use]
    pub fn config(&self) -> &TastyConfig {
        &self.config
    }

    /// The access-token holder (for its refresh count and expiry).
    #[must_use]
    pub fn tokens(&self) -> &TokenManager {
        &self.tokens
    }

    // ----- accounts ---------------------------------------------------------

    /// `GET /customers/me/accounts`.
    pub async fn accounts(&self) -> Result<Vec<AccountAuthority>, TastyError> {
        let ep = Endpoint::new(Method::GET, "/customers/me/accounts".into());
        Ok(self.get::<Items<AccountAuthority>>(&ep).await?.data.items)
    }

    /// `GET /accounts/{account_number}/balances`.
    pub async fn balances(&self, account_number: &str) -> Result<AccountBalance, TastyError> {
        let ep = Endpoint::new(Method::GET, format!("/accounts/{}/balances", segment(account_number)));
        Ok(self.get::<AccountBalance>(&ep).await?.data)
    }

    /// `GET /accounts/{account_number}/positions`, quantities signed.
    pub async fn positions(&self, account_number: &str) -> Result<Vec<Position>, TastyError> {
        let ep = Endpoint::new(Method::GET, format!("/accounts/{}/positions", segment(account_number)));
        let raw = self.get::<Items<RawPosition>>(&ep).await?.data.items;
        raw.into_iter()
            .map(|p| Position::try_from(p).map_err(|detail| TastyError::Decode { endpoint: ep.name(), detail }))
            .collect()
    }

    /// One page of `GET /accounts/{a}/transactions` with `query`'s filters
    /// (`page-offset` = `page_offset`). Returns the page and whether more
    /// pages follow.
    pub async fn transactions_page(
        &self,
        account_number: &str,
        query: &TransactionQuery,
        page_offset: u32,
    ) -> Result<(Vec<Transaction>, bool), TastyError> {
        let per_page = query.per_page.unwrap_or(self.config.settle_page_size).max(1);
        let mut params = Vec::new();
        if let Some(t) = &query.transaction_type {
            params.push(format!("type={}", segment(t)));
        }
        if let Some(d) = query.start_date {
            params.push(format!("start-date={d}"));
        }
        if let Some(d) = query.end_date {
            params.push(format!("end-date={d}"));
        }
        if let Some(s) = &query.symbol {
            params.push(format!("symbol={}", segment(s)));
        }
        params.push(format!("sort={}", if query.ascending { "Asc" } else { "Desc" }));
        params.push(format!("per-page={per_page}"));
        params.push(format!("page-offset={page_offset}"));
        let ep = Endpoint::new(
            Method::GET,
            format!("/accounts/{}/transactions?{}", segment(account_number), params.join("&")),
        );
        let env = self.get::<Items<Transaction>>(&ep).await?;
        let more = env.pagination.and_then(|p| p.total_pages).is_some_and(|t| u64::from(page_offset) + 1 < t);
        Ok((env.data.items, more))
    }

    /// `GET /accounts/{a}/transactions` with `query`'s filters, every page
    /// (at most `settle_max_pages`; a warning is logged when more remain).
    pub async fn transactions(
        &self,
        account_number: &str,
        query: &TransactionQuery,
    ) -> Result<Vec<Transaction>, TastyError> {
        let mut out = Vec::new();
        for page in 0..self.config.settle_max_pages {
            let (items, more) = self.transactions_page(account_number, query, page).await?;
            out.extend(items);
            if !more {
                return Ok(out);
            }
        }
        tracing::warn!(account = %account_number, pages = self.config.settle_max_pages, read = out.len(),
            "tastytrade: more transactions than the pages read; the rest were left");
        Ok(out)
    }

    /// `GET /api-quote-tokens`: the DXLink token and URL for streaming quotes.
    pub async fn quote_token(&self) -> Result<QuoteToken, TastyError> {
        let ep = Endpoint::new(Method::GET, "/api-quote-tokens".into());
        Ok(self.get::<QuoteToken>(&ep).await?.data)
    }

    // ----- instruments ------------------------------------------------------

    /// `GET /instruments/equities/{symbol}`.
    pub async fn equity(&self, symbol: &str) -> Result<EquityInfo, TastyError> {
        let ep = Endpoint::new(Method::GET, format!("/instruments/equities/{}", segment(symbol.trim())));
        Ok(self.get::<EquityInfo>(&ep).await?.data)
    }

    /// `GET /instruments/equity-options/{symbol}` (OCC symbol).
    pub async fn equity_option(&self, symbol: &OccSymbol) -> Result<EquityOptionInfo, TastyError> {
        let ep = Endpoint::new(Method::GET, format!("/instruments/equity-options/{}", segment(&symbol.to_occ())));
        Ok(self.get::<EquityOptionInfo>(&ep).await?.data)
    }

    /// The shares of `symbol` as a `model::Instrument` with id `id`.
    pub async fn equity_instrument(&self, symbol: &str, id: InstrumentId) -> Result<Instrument, TastyError> {
        self.equity(symbol).await?.to_instrument(id)
    }

    /// The option contract as a `model::Instrument` with id `id`; its tick
    /// comes from the underlying's `option-tick-sizes` (a second request).
    pub async fn equity_option_instrument(
        &self,
        symbol: &OccSymbol,
        id: InstrumentId,
    ) -> Result<Instrument, TastyError> {
        let option = self.equity_option(symbol).await?;
        let underlying = self.equity(&option.underlying_symbol).await?;
        option.to_instrument(id, &underlying.option_tick_schedule())
    }

    // ----- orders -----------------------------------------------------------

    /// `POST /accounts/{a}/orders/dry-run`: the preflight checks, buying-power
    /// effect and fees, without routing the order. Warnings mean the order
    /// would be rejected if submitted.
    pub async fn dry_run(&self, account_number: &str, order: &NewOrder) -> Result<PlacedOrder, TastyError> {
        let ep = Endpoint::new(Method::POST, format!("/accounts/{}/orders/dry-run", segment(account_number)));
        let body = self.encode(&ep, order)?;
        let text = self.execute(&ep, Some(&body)).await?;
        Ok(decode::<PlacedOrder>(&ep, &text)?.data)
    }

    /// `POST /accounts/{a}/orders`.
    ///
    /// A rejection is an error ([`TastyError::Api`] with TastyTrade's code).
    /// A timeout, 5xx or unreadable answer is `Ok(PlaceOutcome::StatusUnknown)`:
    /// this method never sends an order twice (a 401 is retried once after a
    /// token refresh: TastyTrade refused it before acting).
    pub async fn place_order(&self, account_number: &str, order: &NewOrder) -> Result<PlaceOutcome, TastyError> {
        let ep = Endpoint::new(Method::POST, format!("/accounts/{}/orders", segment(account_number)));
        let body = self.encode(&ep, order)?;
        let result = match self.execute(&ep, Some(&body)).await {
            Ok(text) => decode::<PlacedOrder>(&ep, &text).map(|e| e.data),
            Err(e) => Err(e),
        };
        match result {
            Ok(placed) => Ok(PlaceOutcome::Placed(Box::new(placed))),
            Err(e) if e.is_execution_unknown() => {
                tracing::warn!(account = %account_number, external_identifier = %order.external_identifier, error = %e,
                    "tastytrade: order placement status unknown; settle by external identifier, do not resubmit");
                Ok(PlaceOutcome::StatusUnknown(UnknownOutcome {
                    action: PendingAction::Place,
                    account_number: account_number.to_string(),
                    external_identifier: order.external_identifier.clone(),
                    cause: e.to_string(),
                }))
            }
            Err(e) => Err(e),
        }
    }

    /// `PUT /accounts/{a}/orders/{id}`: replaces a live order with a new one
    /// (new id, the replacement's external identifier).
    pub async fn replace_order(
        &self,
        account_number: &str,
        order_id: u64,
        replacement: &Replacement,
    ) -> Result<ReplaceOutcome, TastyError> {
        let ep = Endpoint::new(Method::PUT, format!("/accounts/{}/orders/{order_id}", segment(account_number)));
        let body = self.encode(&ep, replacement)?;
        let result = match self.execute(&ep, Some(&body)).await {
            Ok(text) => decode::<TastyOrder>(&ep, &text).map(|e| e.data),
            Err(e) => Err(e),
        };
        match result {
            Ok(order) => Ok(ReplaceOutcome::Replaced(Box::new(order))),
            Err(e) if e.is_execution_unknown() => {
                tracing::warn!(account = %account_number, order_id, error = %e,
                    "tastytrade: replace status unknown; settle by external identifier, do not resubmit");
                Ok(ReplaceOutcome::StatusUnknown(UnknownOutcome {
                    action: PendingAction::Replace { replaced_order_id: order_id },
                    account_number: account_number.to_string(),
                    external_identifier: replacement.external_identifier.clone(),
                    cause: e.to_string(),
                }))
            }
            Err(e) => Err(e),
        }
    }

    /// `DELETE /accounts/{a}/orders/{id}`.
    pub async fn cancel_order(&self, account_number: &str, order_id: u64) -> Result<CancelOutcome, TastyError> {
        let ep = Endpoint::new(Method::DELETE, format!("/accounts/{}/orders/{order_id}", segment(account_number)));
        let result = match self.execute(&ep, None).await {
            Ok(text) => decode::<TastyOrder>(&ep, &text).map(|e| e.data),
            Err(e) => Err(e),
        };
        match result {
            Ok(order) => Ok(CancelOutcome::Cancelled(Box::new(order))),
            Err(e) if e.is_execution_unknown() => {
                tracing::warn!(account = %account_number, order_id, error = %e,
                    "tastytrade: cancel status unknown; query the order");
                Ok(CancelOutcome::StatusUnknown {
                    account_number: account_number.to_string(),
                    order_id,
                    cause: e.to_string(),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// `GET /accounts/{a}/orders/{id}`.
    pub async fn order(&self, account_number: &str, order_id: u64) -> Result<TastyOrder, TastyError> {
        let ep = Endpoint::new(Method::GET, format!("/accounts/{}/orders/{order_id}", segment(account_number)));
        Ok(self.get::<TastyOrder>(&ep).await?.data)
    }

    /// `GET /accounts/{a}/orders/live`: orders created or updated today
    /// (working, and also today's filled, cancelled and rejected ones).
    pub async fn live_orders(&self, account_number: &str) -> Result<Vec<TastyOrder>, TastyError> {
        let ep = Endpoint::new(Method::GET, format!("/accounts/{}/orders/live", segment(account_number)));
        Ok(self.get::<Items<TastyOrder>>(&ep).await?.data.items)
    }

    /// `GET /accounts/{a}/orders?start-date=..&per-page=..&page-offset=..`,
    /// newest first. Returns the page and whether more pages follow.
    pub async fn search_orders(
        &self,
        account_number: &str,
        start_date: &str,
        per_page: u32,
        page_offset: u32,
    ) -> Result<(Vec<TastyOrder>, bool), TastyError> {
        let ep = Endpoint::new(
            Method::GET,
            format!(
                "/accounts/{}/orders?start-date={}&sort=Desc&per-page={per_page}&page-offset={page_offset}",
                segment(account_number),
                segment(start_date)
            ),
        );
        let env = self.get::<Items<TastyOrder>>(&ep).await?;
        let more = env.pagination.and_then(|p| p.total_pages).is_some_and(|t| u64::from(page_offset) + 1 < t);
        Ok((env.data.items, more))
    }

    /// The orders carrying `external_identifier`: today's (`/orders/live`)
    /// first, then a search from yesterday (UTC) on, newest first.
    pub async fn find_by_external_identifier(
        &self,
        account_number: &str,
        external_identifier: &str,
    ) -> Result<Vec<TastyOrder>, TastyError> {
        let matches = |o: &TastyOrder| o.external_identifier.as_deref() == Some(external_identifier);
        let mut found: Vec<TastyOrder> =
            self.live_orders(account_number).await?.into_iter().filter(|o| matches(o)).collect();
        if found.is_empty() {
            let start = search_start_date();
            for page in 0..self.config.settle_max_pages {
                let (orders, more) =
                    self.search_orders(account_number, &start, self.config.settle_page_size, page).await?;
                found.extend(orders.into_iter().filter(|o| matches(o)));
                if !more {
                    break;
                }
            }
        }
        Ok(found)
    }

    /// Settles a placement or replacement of unknown outcome by searching
    /// the account's orders for its external identifier. TastyTrade may take
    /// a moment to show a just-placed order: wait a little before settling.
    pub async fn settle(&self, unknown: &UnknownOutcome) -> Result<Settlement, TastyError> {
        let mut found = self.find_by_external_identifier(&unknown.account_number, &unknown.external_identifier).await?;
        if found.len() > 1 {
            tracing::error!(account = %unknown.account_number, external_identifier = %unknown.external_identifier,
                count = found.len(), "tastytrade: several orders carry one external identifier");
        }
        // Newest (highest id) first.
        found.sort_by_key(|o| std::cmp::Reverse(o.id));
        Ok(found.into_iter().next().map_or(Settlement::Absent, |o| Settlement::Found(Box::new(o))))
    }

    // ----- plumbing ---------------------------------------------------------

    fn encode<T: serde::Serialize>(&self, ep: &Endpoint, body: &T) -> Result<String, TastyError> {
        serde_json::to_string(body)
            .map_err(|e| TastyError::InvalidOrder(format!("{}: cannot encode the body: {e}", ep.name())))
    }

    async fn get<T: DeserializeOwned>(&self, ep: &Endpoint) -> Result<Envelope<T>, TastyError> {
        let text = self.execute(ep, None).await?;
        decode(ep, &text)
    }

    async fn token(&self) -> Result<AccessToken, TastyError> {
        self.tokens.token(&self.http, &self.base_url, &self.config.user_agent, self.config.request_timeout).await
    }

    /// Sends with a current access token; on 401, drops the token, fetches a
    /// new one and sends once more (TastyTrade refused the first attempt
    /// before acting on it, so nothing can double).
    async fn execute(&self, ep: &Endpoint, body: Option<&str>) -> Result<String, TastyError> {
        let token = self.token().await?;
        match self.send_once(ep, body, &token).await {
            Err(TastyError::Api { status: 401, .. } | TastyError::Http { status: 401, .. }) => {
                tracing::info!(endpoint = %ep.name(), "tastytrade: access token refused; refreshing and retrying once");
                self.tokens.invalidate(&token).await;
                let token = self.token().await?;
                self.send_once(ep, body, &token).await
            }
            other => other,
        }
    }

    async fn send_once(&self, ep: &Endpoint, body: Option<&str>, token: &AccessToken) -> Result<String, TastyError> {
        let name = ep.name();
        let timeout = self.config.request_timeout;
        let mut request = self
            .http
            .request(ep.method.clone(), format!("{}{}", self.base_url, ep.path))
            .header(reqwest::header::USER_AGENT, &self.config.user_agent)
            .header(reqwest::header::ACCEPT, "application/json")
            .bearer_auth(token.expose());
        if let Some(body) = body {
            request = request.header(reqwest::header::CONTENT_TYPE, "application/json").body(body.to_string());
        }
        let response = request.send().await.map_err(|e| transport_error(&name, e, timeout))?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|e| transport_error(&name, e, timeout))?;
        tracing::debug!(endpoint = %name, status, "tastytrade: response");
        if (200..300).contains(&status) { Ok(text) } else { Err(api_error(name, status, &text)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandbox_by_default_and_production_only_when_asked() {
        assert_eq!(TastyConfig::default().resolved_base_url().unwrap(), SANDBOX_BASE_URL);
        let live = TastyConfig { production: true, ..TastyConfig::default() };
        assert_eq!(live.resolved_base_url().unwrap(), PRODUCTION_BASE_URL);
        let sneaky = TastyConfig { base_url: Some("https://api.tastyworks.com/".into()), ..TastyConfig::default() };
        assert!(matches!(sneaky.resolved_base_url(), Err(TastyError::Config(m)) if m.contains("production")));
        let local = TastyConfig { base_url: Some("http://127.0.0.1:9/".into()), ..TastyConfig::default() };
        assert_eq!(local.resolved_base_url().unwrap(), "http://127.0.0.1:9");
    }

    #[test]
    fn user_agent_must_be_product_slash_version() {
        assert!(check_user_agent(DEFAULT_USER_AGENT).is_ok());
        assert!(check_user_agent("my-app/1.0").is_ok());
        for bad in ["", "tradecore", "tradecore/", "/1.0", "trade core/1.0", "a/b/c"] {
            assert!(check_user_agent(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn error_envelopes() {
        let e = api_error(
            "POST /x".into(),
            422,
            r#"{"error": {"code": "preflight_check_failure", "message": "failed",
                "errors": [{"code": "insufficient_buying_power", "message": "not enough"}]}}"#,
        );
        assert_eq!(e.code(), Some("preflight_check_failure"));
        assert_eq!(e.details()[0].code.as_deref(), Some("insufficient_buying_power"));
        let e =
            api_error("POST /oauth/token".into(), 400, r#"{"error": "invalid_grant", "error_description": "nope"}"#);
        assert!(matches!(&e, TastyError::Api { code, message, .. } if code == "invalid_grant" && message == "nope"));
        let e = api_error("GET /x".into(), 502, "<html>bad gateway</html>");
        assert!(matches!(e, TastyError::Http { status: 502, .. }));
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(segment("AAPL  240119C00150000"), "AAPL%20%20240119C00150000");
        assert_eq!(segment("BRK/B"), "BRK%2FB");
        assert_eq!(segment("5WT00001"), "5WT00001");
    }

    #[test]
    fn search_start_date_is_an_iso_date() {
        let d = search_start_date();
        assert!(super::super::symbols::Date::parse_iso(&d).is_some(), "{d}");
    }
}
