//! A standby's router: health checks answered here, everything else,
//! WebSockets included, forwarded to the leader as it was received.
//!
//! Forwarding keeps the request's method, path, query, body and headers
//! (`Host`, `Origin`, cookies and the bearer token included, so the leader's
//! CSRF, origin and credential checks see what the client sent), minus the
//! hop-by-hop ones; it appends the peer's address to `X-Forwarded-For` (list
//! the instances' network in `server.trusted_proxies` for the leader to
//! believe it) and marks the request with `X-Tradecore-Forwarded-By`. A
//! request already forwarded once is never forwarded again: during a change
//! of leader it gets a 503 with `Retry-After`, as does everything while no
//! instance leads.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::{SinkExt as _, StreamExt as _};
use serde::Serialize;
use store::Store;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite;

use crate::client_ip::{Network, TrustedProxies};
use crate::error::{ApiError, Json};

/// Marks a forwarded request (with the forwarding instance's id).
pub const FORWARDED_BY: &str = "x-tradecore-forwarded-by";

/// Headers that belong to one connection, never passed on (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// What a standby forwards with.
#[derive(Debug)]
pub struct Forwarder {
    http: reqwest::Client,
    leader: watch::Receiver<Option<String>>,
    store: Store,
    /// This instance's own address: never forwarded to.
    own: String,
    max_body_bytes: usize,
}

impl Forwarder {
    pub fn new(
        store: Store,
        leader: watch::Receiver<Option<String>>,
        own: String,
        max_body_bytes: usize,
    ) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            // The leader answers for itself: its redirects and cookies go back to the client.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(300))
            .build()
            .map_err(|e| format!("cannot start the forwarding client: {e}"))?;
        Ok(Self { http, leader, store, own, max_body_bytes })
    }

    /// The leader to forward to; not this instance (a lease it held before a
    /// restart, until it expires).
    fn leader(&self) -> Option<String> {
        self.leader.borrow().clone().filter(|leader| *leader != self.own)
    }
}

/// The standby's router.
pub fn standby_app(forwarder: Arc<Forwarder>, trusted: Arc<[Network]>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { (StatusCode::OK, "ok") }))
        .route("/readyz", get(readyz))
        .route("/api/v1/ws", get(websocket))
        .fallback(forward)
        .layer(axum::middleware::from_fn_with_state(TrustedProxies(trusted), crate::client_ip::identify))
        .layer(axum::middleware::from_fn(crate::telemetry::track))
        .with_state(forwarder)
}

fn no_leader(detail: &str) -> Response {
    let mut error = ApiError::unavailable(detail.to_string());
    error.retry_after = Some(2);
    error.into_response()
}

#[derive(Debug, Serialize)]
struct StandbyReadiness {
    ready: bool,
    role: &'static str,
    leader: String,
    database: &'static str,
}

/// Ready to take traffic when the database answers and a leader is known.
async fn readyz(State(f): State<Arc<Forwarder>>) -> Response {
    if let Err(e) = f.store.ping().await {
        return ApiError::unavailable(format!("database: {e}")).into_response();
    }
    match f.leader() {
        Some(leader) => {
            Json(StandbyReadiness { ready: true, role: "standby", leader, database: f.store.backend() }).into_response()
        }
        None => no_leader("standing by, and no instance leads right now"),
    }
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(&name.as_str())
}

/// The headers to pass on: the client's, minus hop-by-hop ones, with the
/// peer appended to `X-Forwarded-For` and this instance's mark.
fn onward_headers(from: &HeaderMap, peer: Option<SocketAddr>) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(from.len() + 2);
    for (name, value) in from {
        if !is_hop_by_hop(name) && name != header::CONTENT_LENGTH && name.as_str() != "x-forwarded-for" {
            headers.append(name.clone(), value.clone());
        }
    }
    let earlier: Vec<&str> = from.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).collect();
    let mut chain = earlier.join(", ");
    if let Some(peer) = peer {
        if !chain.is_empty() {
            chain.push_str(", ");
        }
        chain.push_str(&peer.ip().to_string());
    }
    if let Ok(value) = HeaderValue::from_str(&chain)
        && !chain.is_empty()
    {
        headers.insert("x-forwarded-for", value);
    }
    if let Ok(value) = HeaderValue::from_str(super::instance_id()) {
        headers.insert(FORWARDED_BY, value);
    }
    headers
}

/// Everything but health checks and WebSockets: sent to the leader, its
/// answer sent back.
async fn forward(State(f): State<Arc<Forwarder>>, request: Request) -> Response {
    if request.headers().contains_key(FORWARDED_BY) {
        return no_leader("the request reached a standby twice: the cluster is changing leader");
    }
    let Some(leader) = f.leader() else {
        return no_leader("standing by, and no instance leads right now");
    };
    let (parts, body) = request.into_parts();
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let Ok(body) = axum::body::to_bytes(body, f.max_body_bytes).await else {
        return ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the request body is too large")
            .into_response();
    };
    let sent = f
        .http
        .request(parts.method.clone(), format!("{leader}{path}"))
        .headers(onward_headers(&parts.headers, peer))
        .body(body)
        .send()
        .await;
    let answer = match sent {
        Ok(answer) => answer,
        Err(e) => {
            tracing::warn!(%leader, error = %e, "cannot reach the leader");
            return no_leader("the leader cannot be reached right now");
        }
    };
    let status = answer.status();
    let mut headers = HeaderMap::with_capacity(answer.headers().len());
    for (name, value) in answer.headers() {
        if !is_hop_by_hop(name) && name != header::CONTENT_LENGTH {
            headers.append(name.clone(), value.clone());
        }
    }
    match answer.bytes().await {
        Ok(bytes) => {
            let mut response = Response::new(Body::from(bytes));
            *response.status_mut() = status;
            *response.headers_mut() = headers;
            response
        }
        Err(e) => {
            tracing::warn!(%leader, error = %e, "the leader's answer broke off");
            ApiError::new(StatusCode::BAD_GATEWAY, "bad_gateway", "the leader's answer broke off; try again")
                .into_response()
        }
    }
}

/// A WebSocket: opened to the leader first (so its refusal, a 401 or 403,
/// reaches the client as such), then both directions piped until either
/// side closes.
async fn websocket(
    State(f): State<Arc<Forwarder>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ws: WebSocketUpgrade,
    request: Request,
) -> Response {
    if request.headers().contains_key(FORWARDED_BY) {
        return no_leader("the request reached a standby twice: the cluster is changing leader");
    }
    let Some(leader) = f.leader() else {
        return no_leader("standing by, and no instance leads right now");
    };
    let path = request.uri().path_and_query().map_or("/api/v1/ws", |p| p.as_str());
    let url = format!("{}{path}", leader.replacen("http", "ws", 1));
    let mut upstream_request = match tungstenite::client::IntoClientRequest::into_client_request(url.as_str()) {
        Ok(r) => r,
        Err(e) => return ApiError::internal(&format!("leader address {leader}: {e}")).into_response(),
    };
    for (name, value) in onward_headers(request.headers(), Some(peer)) {
        let Some(name) = name else { continue };
        // The handshake's own headers are the client library's.
        if name.as_str().starts_with("sec-websocket-") && name.as_str() != "sec-websocket-protocol" {
            continue;
        }
        upstream_request.headers_mut().insert(name, value);
    }
    match tokio_tungstenite::connect_async(upstream_request).await {
        Ok((upstream, _)) => ws.on_upgrade(move |client| pipe(client, upstream)),
        Err(tungstenite::Error::Http(refused)) => {
            let status = refused.status();
            let body = refused.into_body().unwrap_or_default();
            let mut response = Response::new(Body::from(body));
            *response.status_mut() = status;
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
            response
        }
        Err(e) => {
            tracing::warn!(%leader, error = %e, "cannot open a WebSocket to the leader");
            no_leader("the leader cannot be reached right now")
        }
    }
}

type Upstream = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn pipe(client: WebSocket, upstream: Upstream) {
    let (mut to_client, mut from_client) = client.split();
    let (mut to_leader, mut from_leader) = upstream.split();
    let outbound = async {
        while let Some(Ok(message)) = from_client.next().await {
            let closing = matches!(message, Message::Close(_));
            if to_leader.send(to_tungstenite(message)).await.is_err() || closing {
                break;
            }
        }
        let _ = to_leader.close().await;
    };
    let inbound = async {
        while let Some(Ok(message)) = from_leader.next().await {
            let Some(message) = from_tungstenite(message) else { continue };
            let closing = matches!(message, Message::Close(_));
            if to_client.send(message).await.is_err() || closing {
                break;
            }
        }
        let _ = to_client.close().await;
    };
    // Either side ending ends both.
    tokio::select! {
        () = outbound => {}
        () = inbound => {}
    }
}

fn to_tungstenite(message: Message) -> tungstenite::Message {
    match message {
        Message::Text(text) => tungstenite::Message::text(text.as_str()),
        Message::Binary(bytes) => tungstenite::Message::binary(bytes),
        Message::Ping(bytes) => tungstenite::Message::Ping(bytes),
        Message::Pong(bytes) => tungstenite::Message::Pong(bytes),
        Message::Close(frame) => tungstenite::Message::Close(
            frame.map(|f| tungstenite::protocol::CloseFrame { code: f.code.into(), reason: f.reason.as_str().into() }),
        ),
    }
}

fn from_tungstenite(message: tungstenite::Message) -> Option<Message> {
    Some(match message {
        tungstenite::Message::Text(text) => Message::text(text.as_str()),
        tungstenite::Message::Binary(bytes) => Message::binary(bytes),
        tungstenite::Message::Ping(bytes) => Message::Ping(bytes),
        tungstenite::Message::Pong(bytes) => Message::Pong(bytes),
        tungstenite::Message::Close(frame) => {
            Message::Close(frame.map(|f| CloseFrame { code: f.code.into(), reason: f.reason.as_str().into() }))
        }
        tungstenite::Message::Frame(_) => return None,
    })
}
