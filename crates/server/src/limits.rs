//! Rate limits per client IP and per API token, answered with 429 and
//! `Retry-After`, and the request body size limit.
//!
//! Each key has a token bucket holding up to a minute's allowance and
//! refilling continuously, so short bursts pass and a steady overload is
//! held to the configured rate. Buckets that have refilled completely carry
//! no information and are pruned, which bounds memory by the number of
//! clients active in the last minute.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::error::ApiError;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Token buckets by key.
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
    checks: std::sync::atomic::AtomicU64,
}

impl RateLimiter {
    #[must_use]
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute: f64::from(per_minute.max(1)),
            buckets: Mutex::new(HashMap::new()),
            checks: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Takes one request from `key`'s bucket; `Err(seconds)` to wait when empty.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), u64> {
        let rate = self.per_minute / 60.0;
        let Ok(mut buckets) = self.buckets.lock() else { return Ok(()) };
        let n = self.checks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if n.is_multiple_of(4_096) {
            let capacity = self.per_minute;
            buckets.retain(|_, b| b.tokens + now.duration_since(b.updated).as_secs_f64() * rate < capacity);
        }
        let bucket = buckets.entry(key.to_string()).or_insert(Bucket { tokens: self.per_minute, updated: now });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(self.per_minute);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let wait = ((1.0 - bucket.tokens) / rate).ceil().max(1.0) as u64;
            Err(wait)
        }
    }
}

/// The limiters of a running server.
#[derive(Debug)]
pub struct Limits {
    pub per_ip: RateLimiter,
    pub per_token: RateLimiter,
}

impl Limits {
    #[must_use]
    pub fn new(per_ip_per_minute: u32, per_token_per_minute: u32) -> Self {
        Self { per_ip: RateLimiter::new(per_ip_per_minute), per_token: RateLimiter::new(per_token_per_minute) }
    }
}

/// The token id of a bearer token `tc_<id>_<secret>`, without the secret.
fn token_key(request: &Request) -> Option<String> {
    let header = request.headers().get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let token = header.strip_prefix("Bearer ")?;
    let mut parts = token.splitn(3, '_');
    match (parts.next(), parts.next()) {
        (Some("tc"), Some(id)) if !id.is_empty() && id.len() <= 32 => Some(format!("token:{id}")),
        _ => None,
    }
}

/// Middleware: one request from the client's IP bucket and, for token
/// requests, from the token's bucket.
pub async fn enforce(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let now = Instant::now();
    let ip: Option<IpAddr> = crate::client_ip::of(request.extensions());
    if let Some(ip) = ip
        && let Err(wait) = state.limits.per_ip.check(&ip.to_string(), now)
    {
        return ApiError::too_many_requests(wait).into_response();
    }
    if let Some(key) = token_key(&request)
        && let Err(wait) = state.limits.per_token.check(&key, now)
    {
        return ApiError::too_many_requests(wait).into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn buckets_allow_a_minute_then_refill() {
        let limiter = RateLimiter::new(60);
        let t0 = Instant::now();
        for i in 0..60 {
            assert!(limiter.check("a", t0).is_ok(), "request {i}");
        }
        assert_eq!(limiter.check("a", t0), Err(1));
        assert!(limiter.check("b", t0).is_ok(), "keys are independent");
        assert!(limiter.check("a", t0 + Duration::from_secs(1)).is_ok(), "one second refills one request");
        assert!(limiter.check("a", t0 + Duration::from_secs(1)).is_err());
    }
}
