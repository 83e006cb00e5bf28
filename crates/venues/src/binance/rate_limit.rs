//! Client-side view of Binance's rate limits.
//!
//! Binance reports usage on every response in `X-MBX-USED-WEIGHT-<n><unit>`
//! (request weight per IP) and, on order endpoints, `X-MBX-ORDER-COUNT-<n><unit>`
//! (orders per account). The limits come from exchangeInfo's `rateLimits`
//! (until it is loaded, the documented production defaults apply). A request
//! that would exceed a known limit in the current window is refused locally.
//!
//! HTTP 429 means "back off": requests before `Retry-After` has passed wait
//! for it (up to a configured maximum) instead of being sent. HTTP 418 is an
//! IP ban: nothing is sent until `Retry-After` has passed, and every call
//! meanwhile fails at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;

use super::filters::RateLimit;

/// Used when a 429 carries no `Retry-After`.
pub const DEFAULT_429_BACKOFF: Duration = Duration::from_secs(5);
/// Used when a 418 carries no `Retry-After`.
pub const DEFAULT_418_BAN: Duration = Duration::from_secs(120);

/// Why a request must not be sent now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    Banned(Duration),
    Backoff(Duration),
    Exhausted { kind: String, interval: String, used: u64, limit: u64, resets_in: Duration },
}

#[derive(Debug, Clone, Copy)]
struct Usage {
    count: u64,
    window: i64,
}

#[derive(Debug)]
struct State {
    limits: Vec<RateLimit>,
    /// Keyed by (`REQUEST_WEIGHT` | `ORDERS`, header suffix such as `1M`).
    usage: HashMap<(String, String), Usage>,
    backoff_until: Option<Instant>,
    banned_until: Option<Instant>,
}

/// A snapshot for dashboards and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitStatus {
    /// `(kind, interval suffix, used in the current window, limit)`.
    pub usage: Vec<(String, String, u64, Option<u64>)>,
    pub backoff_remaining: Option<Duration>,
    pub ban_remaining: Option<Duration>,
}

#[derive(Debug)]
pub(crate) struct RateLimiter {
    state: Mutex<State>,
}

fn default_limits() -> Vec<RateLimit> {
    let l = |t: &str, i: &str, n: u32, limit: u64| RateLimit {
        rate_limit_type: t.into(),
        interval: i.into(),
        interval_num: n,
        limit,
    };
    vec![
        l("REQUEST_WEIGHT", "MINUTE", 1, 6000),
        l("ORDERS", "SECOND", 10, 100),
        l("ORDERS", "DAY", 1, 200_000),
        l("RAW_REQUESTS", "MINUTE", 5, 61_000),
    ]
}

fn suffix_window_ms(suffix: &str) -> Option<i64> {
    let (num, unit) = suffix.split_at(suffix.len().checked_sub(1)?);
    let n: i64 = num.parse().ok()?;
    let unit = match unit {
        "S" => 1_000,
        "M" => 60_000,
        "H" => 3_600_000,
        "D" => 86_400_000,
        _ => return None,
    };
    Some(n * unit)
}

impl RateLimiter {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::new(State {
                limits: default_limits(),
                usage: HashMap::new(),
                backoff_until: None,
                banned_until: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave it inconsistent: recover.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn set_limits(&self, limits: Vec<RateLimit>) {
        if !limits.is_empty() {
            self.lock().limits = limits;
        }
    }

    /// Whether a request of `weight` (and one order when `is_order`) may go
    /// now; `server_now_ms` places it in the limits' windows.
    pub(crate) fn check(&self, weight: u64, is_order: bool, server_now_ms: i64) -> Result<(), Refusal> {
        let now = Instant::now();
        let st = self.lock();
        if let Some(until) = st.banned_until.filter(|u| *u > now) {
            return Err(Refusal::Banned(until - now));
        }
        if let Some(until) = st.backoff_until.filter(|u| *u > now) {
            return Err(Refusal::Backoff(until - now));
        }
        for limit in &st.limits {
            let cost = match limit.rate_limit_type.as_str() {
                "REQUEST_WEIGHT" => weight,
                "ORDERS" if is_order => 1,
                _ => continue,
            };
            let Some(window_ms) = limit.window_ms().filter(|w| *w > 0) else { continue };
            let suffix = limit.header_suffix();
            let window = server_now_ms.div_euclid(window_ms);
            let used = st
                .usage
                .get(&(limit.rate_limit_type.clone(), suffix.clone()))
                .filter(|u| u.window == window)
                .map_or(0, |u| u.count);
            if used + cost > limit.limit {
                let resets_ms = (window + 1) * window_ms - server_now_ms;
                return Err(Refusal::Exhausted {
                    kind: limit.rate_limit_type.clone(),
                    interval: suffix,
                    used,
                    limit: limit.limit,
                    resets_in: Duration::from_millis(u64::try_from(resets_ms).unwrap_or(0)),
                });
            }
        }
        Ok(())
    }

    /// Records the usage headers of a response.
    pub(crate) fn observe(&self, headers: &HeaderMap, server_now_ms: i64) {
        let mut st = self.lock();
        for (name, value) in headers {
            let name = name.as_str().to_ascii_uppercase();
            let (kind, suffix) = if let Some(s) = name.strip_prefix("X-MBX-USED-WEIGHT-") {
                ("REQUEST_WEIGHT", s)
            } else if let Some(s) = name.strip_prefix("X-MBX-ORDER-COUNT-") {
                ("ORDERS", s)
            } else {
                continue;
            };
            let Some(count) = value.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok()) else { continue };
            let Some(window_ms) = suffix_window_ms(suffix).filter(|w| *w > 0) else { continue };
            let window = server_now_ms.div_euclid(window_ms);
            st.usage.insert((kind.to_string(), suffix.to_string()), Usage { count, window });
        }
    }

    pub(crate) fn on_429(&self, retry_after: Duration) {
        let until = Instant::now() + retry_after;
        let mut st = self.lock();
        st.backoff_until = Some(st.backoff_until.map_or(until, |u| u.max(until)));
    }

    pub(crate) fn on_418(&self, retry_after: Duration) {
        let until = Instant::now() + retry_after;
        let mut st = self.lock();
        st.banned_until = Some(st.banned_until.map_or(until, |u| u.max(until)));
    }

    pub(crate) fn status(&self, server_now_ms: i64) -> RateLimitStatus {
        let now = Instant::now();
        let st = self.lock();
        let mut usage: Vec<_> = st
            .usage
            .iter()
            .filter_map(|((kind, suffix), u)| {
                let window_ms = suffix_window_ms(suffix)?;
                let used = if u.window == server_now_ms.div_euclid(window_ms) { u.count } else { 0 };
                let limit = st
                    .limits
                    .iter()
                    .find(|l| &l.rate_limit_type == kind && &l.header_suffix() == suffix)
                    .map(|l| l.limit);
                Some((kind.clone(), suffix.clone(), used, limit))
            })
            .collect();
        usage.sort();
        RateLimitStatus {
            usage,
            backoff_remaining: st.backoff_until.filter(|u| *u > now).map(|u| u - now),
            ban_remaining: st.banned_until.filter(|u| *u > now).map(|u| u - now),
        }
    }
}

/// `Retry-After` in seconds, per the HTTP spec Binance follows.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(HeaderName::from_static(k), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn refuses_past_the_weight_limit_until_the_window_rolls() {
        let rl = RateLimiter::new();
        rl.set_limits(vec![RateLimit {
            rate_limit_type: "REQUEST_WEIGHT".into(),
            interval: "MINUTE".into(),
            interval_num: 1,
            limit: 100,
        }]);
        let t = 60_000 * 1000 + 10_000;
        rl.observe(&headers(&[("x-mbx-used-weight-1m", "95")]), t);
        assert!(rl.check(5, false, t).is_ok());
        match rl.check(6, false, t) {
            Err(Refusal::Exhausted { used: 95, limit: 100, resets_in, .. }) => {
                assert_eq!(resets_in, Duration::from_secs(50));
            }
            other => panic!("{other:?}"),
        }
        assert!(rl.check(6, false, t + 50_000).is_ok(), "next minute starts fresh");
    }

    #[test]
    fn order_counts_only_limit_orders() {
        let rl = RateLimiter::new();
        let t = 1_000_000;
        rl.observe(&headers(&[("x-mbx-order-count-10s", "100")]), t);
        assert!(rl.check(1, false, t).is_ok());
        assert!(matches!(rl.check(1, true, t), Err(Refusal::Exhausted { .. })));
    }

    #[test]
    fn ban_and_backoff() {
        let rl = RateLimiter::new();
        rl.on_429(Duration::from_secs(3));
        assert!(matches!(rl.check(1, false, 0), Err(Refusal::Backoff(_))));
        rl.on_418(Duration::from_secs(30));
        assert!(matches!(rl.check(1, false, 0), Err(Refusal::Banned(d)) if d > Duration::from_secs(29)));
        assert_eq!(retry_after(&headers(&[("retry-after", "7")])), Some(Duration::from_secs(7)));
    }
}
