//! HTTP routes beyond the health and status endpoints in [`crate::app`],
//! grouped by area. Each area's `routes()` returns a `Router<AppState>` that
//! [`crate::app::app`] merges.
//!
//! Conventions: handlers take `State` first and the body last; request
//! bodies deny unknown fields; errors are [`crate::error::ApiError`] problem details; every
//! write is recorded in the audit log in the same transaction as the write.

pub mod auth;
mod tokens;
mod users;
pub mod venue_credentials;

use store::auth::{AuditEntry, UserId};

use crate::app::AppState;
use crate::auth::ClientMeta;

/// An audit entry for an action by `user_id` (or an anonymous caller) from
/// `client`, stamped with the runtime's clock.
pub(crate) fn audit<'a>(
    state: &AppState,
    user_id: Option<UserId>,
    action: &'a str,
    client: &'a ClientMeta,
) -> AuditEntry<'a> {
    AuditEntry::new(state.runtime.now(), user_id, action, client.ip.as_deref())
}
