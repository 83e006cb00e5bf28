//! The OpenAPI 3.1 document of the HTTP API, served at
//! `GET /api/v1/openapi.json`, and the docs page (Swagger UI, built into the
//! binary, so it works offline) at `GET /api/v1/docs`.
//!
//! The document comes from the code. Each handler carries
//! `#[utoipa::path(...)]` (method, path, parameters, body, answers, security)
//! and is registered with `utoipa_axum::routes!` on an `OpenApiRouter`, which
//! adds the route to the router and its operation to the document in one
//! step (see [`crate::app::api`]). Request and response types derive
//! `ToSchema`; the `model` types come with schemas from `model`'s `openapi`
//! feature (numbers are decimal strings).
//!
//! [`finish`] then adds what every operation shares, derived from its shape:
//! the security schemes, and the problem+json answers the extractors and
//! middleware give (429 and 500 for all; 400/413/415/422 with a body; 400
//! with query parameters; 401/403 with credentials; 404 with path
//! parameters). Error answers a handler lists without a body get the
//! `Problem` schema as `application/problem+json`.

use axum::Extension;
use axum::body::Bytes;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;
use utoipa::openapi::path::{Operation, ParameterIn, PathItem};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, HeaderBuilder, Ref, RefOr};

use crate::error::ApiError;

/// Where the document is served.
pub const DOCUMENT_PATH: &str = "/api/v1/openapi.json";
/// Where the docs page is served (it redirects to `/api/v1/docs/`, whose
/// relative asset links then resolve).
pub const DOCS_PATH: &str = "/api/v1/docs";

/// Security scheme names used in `security(...)` of the handlers.
pub const SESSION: &str = "session";
pub const CSRF: &str = "csrf";
pub const TOKEN: &str = "token";

const PROBLEM_JSON: &str = "application/problem+json";

const DESCRIPTION: &str = "\
The HTTP API of tradecore: market data, paper accounts and orders, kill \
switches, backtests, sign-in, API tokens and administration. The dashboard \
uses the same endpoints.

**Numbers.** Prices, quantities and money are exact decimals sent and \
answered as JSON strings (`\"101.25\"`), never JSON numbers. Times are \
RFC 3339 strings in UTC (`2024-01-31T09:30:00.25Z`).

**Errors** are RFC 9457 problem documents (`application/problem+json`, \
schema `Problem`) with a stable `code` to key on and, for bad input, the \
`field` that is wrong. A refused request writes nothing.

**Authentication.** Programs send an API token, `Authorization: Bearer \
tc_<id>_<secret>` (scheme `token`), limited to the scopes chosen when it was \
made (`read`, `trade`, `admin`; listed on each operation). Browsers sign in \
with `POST /api/v1/auth/login`, which sets the `tc_session` cookie (scheme \
`session`); every write made with the cookie must also send the CSRF token \
from sign-in in `X-CSRF-Token` (scheme `csrf`). A session has every scope \
its user's role allows. Operations marked `admin` also need the admin role.

**WebSocket.** `GET /api/v1/ws` upgrades to a WebSocket for live quotes and \
account events; its protocol is described on that operation.";

#[derive(OpenApi)]
#[openapi(
    info(title = "tradecore API", description = DESCRIPTION, license(name = "AGPL-3.0-only", identifier = "AGPL-3.0-only")),
    paths(websocket, docs_page),
    components(schemas(crate::error::Problem)),
    tags(
        (name = "system", description = "Health, readiness and status."),
        (name = "market", description = "Instruments, latest quotes and candles of the paper market."),
        (name = "accounts", description = "Paper trading accounts of the caller: summary, positions, balances, equity."),
        (name = "orders", description = "Orders and fills. An order is answered once its events are durable."),
        (name = "risk", description = "Kill switches: `active`, `reducing` (only orders that reduce a position) or `halted`."),
        (name = "backtests", description = "Backtests run in the background with the CLI's backtester."),
        (name = "bots", description = "Built-in strategies trading an account on the paper market's closed candles."),
        (name = "auth", description = "Sign-in, sessions, password, sign-up."),
        (name = "tokens", description = "API tokens for programs."),
        (name = "venues", description = "Venue credentials (Binance, TastyTrade), stored encrypted; secrets go in once and never come back out."),
        (name = "users", description = "User administration and the audit log (admins)."),
        (name = "websocket", description = "Live data over a WebSocket."),
        (name = "docs", description = "This document and the docs page."),
    )
)]
struct ApiDoc;

/// The document's fixed part: info, tags, the `Problem` schema and the
/// routes that are not registered through `routes!` (the WebSocket and the
/// docs page). [`crate::app::api`] adds every REST route to it.
#[must_use]
pub fn base() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// Completes the document built by the router: security schemes and the
/// shared problem answers (see the module docs).
#[must_use]
pub fn finish(mut doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        SESSION,
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            crate::auth::SESSION_COOKIE,
            "The session cookie set by `POST /api/v1/auth/login` (HttpOnly, SameSite=Lax).",
        ))),
    );
    components.add_security_scheme(
        CSRF,
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            "X-CSRF-Token",
            "The `csrf_token` from sign-in (or `GET /api/v1/auth/me`); required on every write made with the \
             session cookie.",
        ))),
    );
    components.add_security_scheme(
        TOKEN,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("tc_<id>_<secret>")
                .description(Some(
                    "An API token from `POST /api/v1/tokens`. The scopes listed on an operation are those the \
                     token needs.",
                ))
                .build(),
        ),
    );
    for item in doc.paths.paths.values_mut() {
        for (method, operation) in operations(item) {
            add_problems(method, operation);
        }
    }
    doc
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = (&'static str, &mut Operation)> {
    [
        ("GET", item.get.as_mut()),
        ("PUT", item.put.as_mut()),
        ("POST", item.post.as_mut()),
        ("DELETE", item.delete.as_mut()),
        ("PATCH", item.patch.as_mut()),
    ]
    .into_iter()
    .filter_map(|(method, operation)| operation.map(|op| (method, op)))
}

/// One line per problem code an operation can answer with a status.
fn shared_problems(method: &str, operation: &Operation) -> Vec<(&'static str, &'static str)> {
    let mut problems = vec![
        ("429", "- `rate_limited`: too many requests from this IP or token; retry after `Retry-After` seconds."),
        ("500", "- `internal`: the server failed; the cause is logged, never shown."),
    ];
    let params = operation.parameters.iter().flatten();
    let located = |place: ParameterIn| {
        params.clone().any(
            |p| matches!(p, RefOr::T(p) if std::mem::discriminant(&p.parameter_in) == std::mem::discriminant(&place)),
        )
    };
    if operation.request_body.is_some() {
        problems.extend([
            ("400", "- `malformed_json`: the body is not JSON (`field` says where, when known)."),
            ("413", "- `body_too_large`: the body is larger than `server.max_body_bytes`."),
            ("415", "- `unsupported_media_type`: send `Content-Type: application/json`."),
            ("422", "- `validation_failed`: a field is missing, unknown, of the wrong type or out of range (`field` names it)."),
        ]);
    }
    if located(ParameterIn::Query) {
        problems.push(("400", "- `invalid_query`: a query parameter is unknown or malformed (`field` names it)."));
    }
    if located(ParameterIn::Path) {
        problems.push(("404", "- `not_found`: nothing exists at this path (also for a malformed id)."));
    }
    if needs_credentials(operation) {
        problems.push((
            "401",
            "- `unauthorized`: no credentials, or a session or token that is unknown, expired, revoked or whose \
             user is disabled.",
        ));
        problems.push(("403", "- `insufficient_scope`: the session or token lacks the scope this needs."));
        if method != "GET" {
            problems.push((
                "403",
                "- `csrf_failed`: a write with the session cookie but without its `X-CSRF-Token`, or from a \
                 foreign `Origin`.",
            ));
        }
    }
    problems
}

/// Whether every security alternative of the operation names a scheme (an
/// empty alternative `{}` means credentials are optional).
fn needs_credentials(operation: &Operation) -> bool {
    let Some(security) = &operation.security else { return false };
    !security.is_empty()
        && security.iter().all(|requirement| {
            serde_json::to_value(requirement).is_ok_and(|v| v.as_object().is_some_and(|o| !o.is_empty()))
        })
}

fn add_problems(method: &str, operation: &mut Operation) {
    for (status, line) in shared_problems(method, operation) {
        let code = line.split('`').nth(1).unwrap_or_default();
        match operation.responses.responses.get_mut(status) {
            Some(RefOr::T(response)) => {
                // The handler may already describe this code in its own words.
                if !response.description.contains(&format!("`{code}`")) {
                    response.description = format!("{}\n{line}", response.description);
                }
            }
            Some(RefOr::Ref(_)) => {}
            None => {
                let mut response = ResponseBuilder::new().description(line);
                if status == "429" {
                    response = response.header(
                        "Retry-After",
                        HeaderBuilder::new()
                            .schema(Some(<u64 as utoipa::PartialSchema>::schema()))
                            .description(Some("Seconds to wait."))
                            .build(),
                    );
                }
                operation.responses.responses.insert(status.to_string(), RefOr::T(response.build()));
            }
        }
    }
    for (status, response) in &mut operation.responses.responses {
        let is_error = status.starts_with('4') || status.starts_with('5');
        if let RefOr::T(response) = response
            && is_error
            && response.content.is_empty()
        {
            let content = ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build();
            response.content.insert(PROBLEM_JSON.to_string(), RefOr::T(content));
        }
    }
}

/// The document as served: JSON, serialized once when the app is built.
#[derive(Debug, Clone)]
pub struct Document(Result<Bytes, String>);

impl Document {
    #[must_use]
    pub fn new(doc: &utoipa::openapi::OpenApi) -> Self {
        Self(doc.to_json().map(Bytes::from).map_err(|e| e.to_string()))
    }
}

/// This document.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "docs",
    operation_id = "openapi_document",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API.", body = serde_json::Value)),
)]
pub async fn document(Extension(document): Extension<Document>) -> Response {
    match document.0 {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(e) => ApiError::internal(&format!("the OpenAPI document did not serialize: {e}")).into_response(),
    }
}

/// The docs page: Swagger UI over this document, served from the binary
/// (no CDN). It redirects to `/api/v1/docs/`, which answers the page.
#[utoipa::path(
    get,
    path = "/api/v1/docs",
    tag = "docs",
    operation_id = "docs_page",
    responses(
        (status = 303, description = "To `/api/v1/docs/`, the HTML page.", headers(("Location" = String))),
    ),
)]
#[allow(dead_code)] // documents the route `docs_routes` serves
fn docs_page() {}

/// The WebSocket for live data.
///
/// Upgrades to a WebSocket (send the usual `Connection: Upgrade`,
/// `Upgrade: websocket` handshake). Market data needs no credentials;
/// account streams need a session or a token with the `read` scope. With
/// the session cookie, the `Origin` must be the server's own.
///
/// Protocol, JSON text frames:
/// - client: `{"op":"subscribe","channels":["quotes:BTC-USDT","account:7"],"after_seq":{"7":120}}`,
///   `{"op":"unsubscribe","channels":[...]}`, `{"op":"ping"}`;
/// - server: `{"type":"subscribed","channels":[...]}`,
///   `{"type":"quote","channel":"quotes:BTC-USDT","seq":N,"data":{...}}`,
///   `{"type":"event","channel":"account:7","seq":121,"data":{...}}`,
///   `{"type":"pong"}`, `{"type":"error","code":...,"message":...}`.
///
/// `account:ID` streams every journaled event of one of the caller's
/// accounts in journal order, each with its `seq`; after a reconnect, pass
/// the last `seq` seen in `after_seq` to get what was missed. Quotes are
/// conflated for slow readers. The server pings every 15 s; docs/api.md has
/// the details.
#[utoipa::path(
    get,
    path = "/api/v1/ws",
    tag = "websocket",
    operation_id = "websocket",
    security((), ("token" = ["read"]), ("session" = [])),
    responses(
        (status = 101, description = "Switching Protocols: the WebSocket is open."),
        (status = 400, description = "Not a WebSocket handshake (a plain-text answer).", body = String, content_type = "text/plain"),
        (status = 403, description = "- `csrf_failed`: the session cookie was sent from a foreign `Origin`."),
    ),
)]
#[allow(dead_code)] // documents the route `api::ws::routes` serves
fn websocket() {}

/// The docs page's routes (Swagger UI, vendored into the binary).
pub fn docs_routes<S: Clone + Send + Sync + 'static>() -> axum::Router<S> {
    let config = utoipa_swagger_ui::Config::new([DOCUMENT_PATH]).try_it_out_enabled(true).with_credentials(true);
    utoipa_swagger_ui::SwaggerUi::new(DOCS_PATH).config(config).into()
}
