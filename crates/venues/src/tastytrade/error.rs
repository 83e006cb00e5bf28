//! The TastyTrade client's error type.
//!
//! TastyTrade answers errors with an envelope
//! `{"error": {"code": "...", "message": "...", "errors": [{...}]}}`; the
//! `code` is the stable, machine-readable part ("branch on the code, not the
//! message"), `errors` carries per-field or per-preflight-check details.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

/// One entry of the error envelope's `errors` list (a failed validation or
/// preflight check). Every field is optional: TastyTrade fills different ones
/// for different failures.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ErrorDetail {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

impl fmt::Display for ErrorDetail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<&str> =
            [&self.code, &self.domain, &self.reason, &self.message].into_iter().filter_map(|p| p.as_deref()).collect();
        f.write_str(&parts.join(": "))
    }
}

/// Everything that can go wrong talking to TastyTrade. Each variant names the
/// endpoint (`POST /accounts/5WT00001/orders`) it happened on; none carries
/// the client secret, the refresh token or an access token.
#[derive(Debug, thiserror::Error)]
pub enum TastyError {
    /// TastyTrade answered with its error envelope.
    #[error("{endpoint}: TastyTrade error {code} (HTTP {status}): {message}{}", details_suffix(.errors))]
    Api { endpoint: String, status: u16, code: String, message: String, errors: Vec<ErrorDetail> },
    /// A non-2xx answer without the error envelope.
    #[error("{endpoint}: HTTP {status} from TastyTrade: {body}")]
    Http { endpoint: String, status: u16, body: String },
    /// No answer within the request timeout.
    #[error("{endpoint}: no answer within {after:?}")]
    Timeout { endpoint: String, after: Duration },
    /// The connection failed. `maybe_sent` is false only when the request
    /// certainly never left (connection refused or not established).
    #[error("{endpoint}: transport error: {source}")]
    Transport {
        endpoint: String,
        maybe_sent: bool,
        #[source]
        source: reqwest::Error,
    },
    /// A 2xx answer that is not the documented shape.
    #[error("{endpoint}: unexpected response: {detail}")]
    Decode { endpoint: String, detail: String },
    /// An instrument that cannot be expressed as a `model::Instrument`, or a
    /// symbol that is not a valid OCC option symbol.
    #[error("symbol {symbol}: {detail}")]
    Mapping { symbol: String, detail: String },
    /// An order this adapter will not send (for example FOK time in force).
    #[error("invalid order: {0}")]
    InvalidOrder(String),
    #[error("configuration: {0}")]
    Config(String),
}

fn details_suffix(errors: &[ErrorDetail]) -> String {
    if errors.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
        format!(" [{}]", list.join("; "))
    }
}

impl TastyError {
    /// TastyTrade's error code, when it sent one.
    #[must_use]
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The per-check details of an [`TastyError::Api`] error (empty otherwise).
    #[must_use]
    pub fn details(&self) -> &[ErrorDetail] {
        match self {
            Self::Api { errors, .. } => errors,
            _ => &[],
        }
    }

    /// The HTTP status, when TastyTrade answered.
    #[must_use]
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } | Self::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether a request that changes state (place, cancel, replace) may or
    /// may not have taken effect: a timeout, a connection lost after sending,
    /// a 5xx, or an unreadable 2xx.
    #[must_use]
    pub fn is_execution_unknown(&self) -> bool {
        match self {
            Self::Timeout { .. } | Self::Decode { .. } => true,
            Self::Transport { maybe_sent, .. } => *maybe_sent,
            Self::Http { status, .. } | Self::Api { status, .. } => *status >= 500,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_error_display_names_endpoint_code_and_details() {
        let e = TastyError::Api {
            endpoint: "POST /accounts/5WT1/orders".into(),
            status: 422,
            code: "preflight_check_failure".into(),
            message: "One or more preflight checks failed".into(),
            errors: vec![ErrorDetail {
                code: Some("tick_size".into()),
                message: Some("bad tick".into()),
                ..ErrorDetail::default()
            }],
        };
        let text = e.to_string();
        assert!(text.contains("POST /accounts/5WT1/orders"), "{text}");
        assert!(text.contains("preflight_check_failure"), "{text}");
        assert!(text.contains("tick_size: bad tick"), "{text}");
        assert_eq!(e.code(), Some("preflight_check_failure"));
        assert!(!e.is_execution_unknown());
        let e500 = TastyError::Http { endpoint: "x".into(), status: 502, body: String::new() };
        assert!(e500.is_execution_unknown());
    }
}
