//! What every venue stream shares: reconnect back-off, the connection
//! events a caller sees (with each venue's own disconnect reasons), and
//! the shutdown signal of a stream's task.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use model::Timestamp;
use tokio::sync::watch;

/// The window in which events may have been missed: between losing a
/// connection and subscribing again on a new one. For account streams the
/// caller must reconcile orders and balances over REST after a gap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap<R> {
    /// Local time the old connection was found lost.
    pub disconnected_at: Timestamp,
    /// Local time the new subscription was confirmed.
    pub resubscribed_at: Timestamp,
    /// Why the old connection ended.
    pub reason: R,
    /// Connection attempts it took.
    pub attempts: u32,
}

/// The state of a stream's connection, delivered in order with its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionEvent<R> {
    /// The first connection is open and subscribed.
    Connected { url: String },
    /// The connection was lost; events may be missed until `Resubscribed`.
    Disconnected { reason: R },
    /// A reconnect attempt failed; the next comes after `retry_in`.
    ReconnectFailed { attempt: u32, reason: R, retry_in: Duration },
    /// Connected and subscribed again, to the same set, after a disconnect. Events in the [`Gap`] may be lost: **reconcile**.
    Resubscribed { gap: Gap<R> },
    /// The stream ended for good (a refusal that retrying cannot fix, such
    /// as an invalid key, signature or token); the channel closes after this.
    Stopped { reason: R },
}

impl<R> ConnectionEvent<R> {
    /// Whether the caller must reconcile state from REST now (events may
    /// have been missed).
    #[must_use]
    pub fn requires_reconcile(&self) -> bool {
        matches!(self, Self::Resubscribed { .. })
    }
}

/// Reconnect back-off: `initial`, doubled per failed attempt, capped at
/// `max`; with `jitter`, each delay is drawn from `[delay/2, delay]` so many
/// clients do not reconnect in step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconnectPolicy {
    pub initial: Duration,
    pub max: Duration,
    pub jitter: bool,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        Self { initial: Duration::from_millis(500), max: Duration::from_secs(30), jitter: true }
    }
}

/// The delays of a [`ReconnectPolicy`].
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: ReconnectPolicy,
    attempt: u32,
    state: u64,
}

impl Backoff {
    #[must_use]
    pub fn new(policy: ReconnectPolicy) -> Self {
        let seed = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0x9e37_79b9, |d| d.subsec_nanos().into());
        Self::with_seed(policy, seed)
    }

    /// A back-off whose jitter is reproducible.
    #[must_use]
    pub fn with_seed(policy: ReconnectPolicy, seed: u64) -> Self {
        Self { policy, attempt: 0, state: seed | 1 }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(20)).unwrap_or(u32::MAX);
        let base = self.policy.initial.saturating_mul(factor).min(self.policy.max);
        self.attempt = self.attempt.saturating_add(1);
        if !self.policy.jitter {
            return base;
        }
        // xorshift64: spread, not secrecy.
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        let half = base / 2;
        let span = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        let extra = if span == 0 { 0 } else { self.state % (span + 1) };
        half + Duration::from_nanos(extra)
    }

    /// After a connection succeeded.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// Resolves when shutdown was requested or the handle was dropped.
pub(crate) async fn shutdown_requested(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy =
            ReconnectPolicy { initial: Duration::from_millis(100), max: Duration::from_millis(1000), jitter: false };
        let mut b = Backoff::new(policy);
        let delays: Vec<u128> = (0..7).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000, 1000]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
        for _ in 0..100 {
            b.next_delay();
        }
        assert_eq!(b.next_delay(), Duration::from_millis(1000));
    }

    #[test]
    fn jitter_stays_within_half_to_full_and_varies() {
        let policy = ReconnectPolicy { initial: Duration::from_secs(1), max: Duration::from_secs(8), jitter: true };
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..50 {
            let mut b = Backoff::with_seed(policy, seed);
            for expected_max in [1u64, 2, 4, 8, 8] {
                let d = b.next_delay();
                assert!(d >= Duration::from_millis(expected_max * 500), "{d:?}");
                assert!(d <= Duration::from_secs(expected_max), "{d:?}");
                seen.insert(d);
            }
        }
        assert!(seen.len() > 50);
    }
}
