//! Binance error codes and the client's error type.
//!
//! Binance answers errors with `{"code": -1121, "msg": "Invalid symbol."}`;
//! the code is the stable part ("codes are universal, but messages can vary").

use std::fmt;
use std::time::Duration;

use super::signing::CredentialsError;

/// A Binance spot error code. Codes the adapter acts on, or that callers
/// commonly need to tell apart, have names; the rest keep their number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// -1000 UNKNOWN
    Unknown,
    /// -1001 DISCONNECTED: internal error, try again.
    Disconnected,
    /// -1002 UNAUTHORIZED
    Unauthorized,
    /// -1003 TOO_MANY_REQUESTS
    TooManyRequests,
    /// -1006 UNEXPECTED_RESP: execution status unknown.
    UnexpectedResponse,
    /// -1007 TIMEOUT: backend timeout, execution status unknown.
    Timeout,
    /// -1008 SERVER_BUSY
    ServerBusy,
    /// -1013 INVALID_MESSAGE, including filter failures (`Filter failure: LOT_SIZE`).
    InvalidMessage,
    /// -1014 UNKNOWN_ORDER_COMPOSITION
    UnknownOrderComposition,
    /// -1015 TOO_MANY_ORDERS
    TooManyOrders,
    /// -1016 SERVICE_SHUTTING_DOWN
    ServiceShuttingDown,
    /// -1020 UNSUPPORTED_OPERATION
    UnsupportedOperation,
    /// -1021 INVALID_TIMESTAMP: outside recvWindow, or more than 1 s ahead of the server.
    InvalidTimestamp,
    /// -1022 INVALID_SIGNATURE
    InvalidSignature,
    /// -1100 ILLEGAL_CHARS
    IllegalChars,
    /// -1101 TOO_MANY_PARAMETERS
    TooManyParameters,
    /// -1102 MANDATORY_PARAM_EMPTY_OR_MALFORMED
    MandatoryParamEmptyOrMalformed,
    /// -1103 UNKNOWN_PARAM
    UnknownParam,
    /// -1106 PARAM_NOT_REQUIRED
    ParamNotRequired,
    /// -1111 BAD_PRECISION
    BadPrecision,
    /// -1115 INVALID_TIF
    InvalidTif,
    /// -1116 INVALID_ORDER_TYPE
    InvalidOrderType,
    /// -1117 INVALID_SIDE
    InvalidSide,
    /// -1121 BAD_SYMBOL
    BadSymbol,
    /// -1131 BAD_RECV_WINDOW
    BadRecvWindow,
    /// -2010 NEW_ORDER_REJECTED
    NewOrderRejected,
    /// -2011 CANCEL_REJECTED
    CancelRejected,
    /// -2013 NO_SUCH_ORDER: "Order does not exist."
    NoSuchOrder,
    /// -2014 BAD_API_KEY_FMT
    BadApiKeyFormat,
    /// -2015 REJECTED_MBX_KEY: invalid API key, IP, or permissions.
    RejectedApiKey,
    /// Any other code.
    Other(i64),
}

const NAMED: [(i64, ErrorCode); 30] = [
    (-1000, ErrorCode::Unknown),
    (-1001, ErrorCode::Disconnected),
    (-1002, ErrorCode::Unauthorized),
    (-1003, ErrorCode::TooManyRequests),
    (-1006, ErrorCode::UnexpectedResponse),
    (-1007, ErrorCode::Timeout),
    (-1008, ErrorCode::ServerBusy),
    (-1013, ErrorCode::InvalidMessage),
    (-1014, ErrorCode::UnknownOrderComposition),
    (-1015, ErrorCode::TooManyOrders),
    (-1016, ErrorCode::ServiceShuttingDown),
    (-1020, ErrorCode::UnsupportedOperation),
    (-1021, ErrorCode::InvalidTimestamp),
    (-1022, ErrorCode::InvalidSignature),
    (-1100, ErrorCode::IllegalChars),
    (-1101, ErrorCode::TooManyParameters),
    (-1102, ErrorCode::MandatoryParamEmptyOrMalformed),
    (-1103, ErrorCode::UnknownParam),
    (-1106, ErrorCode::ParamNotRequired),
    (-1111, ErrorCode::BadPrecision),
    (-1115, ErrorCode::InvalidTif),
    (-1116, ErrorCode::InvalidOrderType),
    (-1117, ErrorCode::InvalidSide),
    (-1121, ErrorCode::BadSymbol),
    (-1131, ErrorCode::BadRecvWindow),
    (-2010, ErrorCode::NewOrderRejected),
    (-2011, ErrorCode::CancelRejected),
    (-2013, ErrorCode::NoSuchOrder),
    (-2014, ErrorCode::BadApiKeyFormat),
    (-2015, ErrorCode::RejectedApiKey),
];

impl ErrorCode {
    #[must_use]
    pub fn from_code(code: i64) -> Self {
        NAMED.iter().find(|(c, _)| *c == code).map_or(Self::Other(code), |(_, e)| *e)
    }

    /// The numeric Binance code.
    #[must_use]
    pub fn code(self) -> i64 {
        match self {
            Self::Other(c) => c,
            named => NAMED.iter().find(|(_, e)| *e == named).map_or(0, |(c, _)| *c),
        }
    }

    /// Codes Binance documents as "execution status unknown".
    #[must_use]
    pub fn is_execution_unknown(self) -> bool {
        matches!(self, Self::UnexpectedResponse | Self::Timeout)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code())
    }
}

/// Everything that can go wrong talking to Binance. Each variant names the
/// endpoint (`POST /api/v3/order`) it happened on; none carries key material
/// or signed query strings.
#[derive(Debug, thiserror::Error)]
pub enum BinanceError {
    /// Binance answered with its error JSON.
    #[error("{endpoint}: Binance error {code} (HTTP {status}): {msg}")]
    Api { endpoint: String, status: u16, code: ErrorCode, msg: String },
    /// HTTP 429: too many requests. Later requests wait until `retry_after`
    /// has passed (up to the configured maximum wait).
    #[error("{endpoint}: rate limited by Binance (HTTP 429); retry after {retry_after:?}")]
    RateLimited { endpoint: String, retry_after: Duration },
    /// HTTP 418: the IP is banned. Nothing is sent until the ban ends; this
    /// error is returned locally meanwhile.
    #[error("{endpoint}: IP banned by Binance (HTTP 418); nothing is sent for another {retry_after:?}")]
    IpBanned { endpoint: String, retry_after: Duration },
    /// Refused locally: the request would exceed a limit from exchangeInfo,
    /// judged by the usage headers of earlier responses.
    #[error("{endpoint}: not sent: {kind} {used}/{limit} per {interval} used; window resets in {resets_in:?}")]
    LimitExhausted { endpoint: String, kind: String, interval: String, used: u64, limit: u64, resets_in: Duration },
    /// A non-2xx answer without Binance's error JSON.
    #[error("{endpoint}: HTTP {status} from Binance: {body}")]
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
    /// An exchangeInfo symbol that cannot be expressed as an instrument.
    #[error("symbol {symbol}: {detail}")]
    Mapping { symbol: String, detail: String },
    /// An order this adapter will not send (for example DAY time in force).
    #[error("invalid order: {0}")]
    InvalidOrder(String),
    /// A signed endpoint was called without credentials, or they were unusable.
    #[error("credentials: {0}")]
    Credentials(String),
    #[error("configuration: {0}")]
    Config(String),
}

impl From<CredentialsError> for BinanceError {
    fn from(e: CredentialsError) -> Self {
        Self::Credentials(e.to_string())
    }
}

impl BinanceError {
    /// The Binance error code, when Binance sent one.
    #[must_use]
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether a request that changes state (place, cancel) may or may not
    /// have taken effect: a timeout, a connection lost after sending, a 5xx,
    /// Binance's "execution status unknown" codes, or an unreadable 2xx.
    #[must_use]
    pub fn is_execution_unknown(&self) -> bool {
        match self {
            Self::Timeout { .. } | Self::Decode { .. } => true,
            Self::Transport { maybe_sent, .. } => *maybe_sent,
            Self::Http { status, .. } => *status >= 500,
            Self::Api { status, code, .. } => *status >= 500 || code.is_execution_unknown(),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for (code, named) in NAMED {
            assert_eq!(ErrorCode::from_code(code), named);
            assert_eq!(named.code(), code);
        }
        assert_eq!(ErrorCode::from_code(-9999), ErrorCode::Other(-9999));
        assert_eq!(ErrorCode::Other(-9999).code(), -9999);
    }
}
