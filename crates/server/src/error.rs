//! API errors as RFC 9457 problem details (`application/problem+json`).
//!
//! Every error a handler returns becomes one [`ApiError`] with an HTTP status,
//! a stable machine-readable `code`, a sentence for people and, for
//! validation, the offending `field`. Server-side failures never leak their
//! details into the body: they are logged with the request and the client
//! gets a generic message.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// An error answered to an API client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable code clients key on (`validation_failed`, `not_found`, ...).
    pub code: &'static str,
    pub detail: String,
    /// The request field that is wrong, for validation errors.
    pub field: Option<String>,
    /// Seconds to wait before retrying (rate limits).
    pub retry_after: Option<u64>,
}

/// An RFC 9457 problem document (`application/problem+json`): every error
/// the API answers.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(example = json!({
    "type": "https://tradecore.dev/problems/validation-failed",
    "title": "Unprocessable Entity",
    "status": 422,
    "detail": "must be at least 12 characters",
    "code": "validation_failed",
    "field": "new_password"
}))]
pub(crate) struct Problem<'a> {
    /// A URI naming the kind of problem (derived from `code`).
    #[serde(rename = "type")]
    kind: String,
    /// The HTTP status's reason phrase.
    title: &'a str,
    /// The HTTP status code.
    status: u16,
    /// What went wrong, for people; may change between versions.
    detail: &'a str,
    /// Stable machine-readable code: key on this, not on `detail`.
    code: &'a str,
    /// The request field or query parameter that is wrong, when there is one
    /// (a path such as `scopes[0]` for nested values).
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ApiError {
    #[must_use]
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self { status, code, detail: detail.into(), field: None, retry_after: None }
    }

    /// A 422 for a field that is present but wrong.
    #[must_use]
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { field: Some(field.into()), ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", detail) }
    }

    /// A 400 for a request that cannot be read at all.
    #[must_use]
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", detail)
    }

    /// A 404. Also used for other users' resources, so ids cannot be probed.
    #[must_use]
    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("no such {what}"))
    }

    #[must_use]
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "sign in or send an API token")
    }

    #[must_use]
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    #[must_use]
    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, detail)
    }

    #[must_use]
    pub fn too_many_requests(retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "too many requests; retry later")
        }
    }

    /// A 503 while a dependency is down.
    #[must_use]
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail)
    }

    /// A 500 whose cause is logged here and not shown to the client.
    #[must_use]
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the server failed; the error was logged")
    }

    #[must_use]
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("error");
        let problem = Problem {
            kind: format!("https://tradecore.dev/problems/{}", self.code.replace('_', "-")),
            title,
            status: self.status.as_u16(),
            detail: &self.detail,
            code: self.code,
            field: self.field.as_deref(),
        };
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers
            .insert(axum::http::header::CONTENT_TYPE, axum::http::HeaderValue::from_static("application/problem+json"));
        if let Some(seconds) = self.retry_after
            && let Ok(value) = axum::http::HeaderValue::from_str(&seconds.to_string())
        {
            headers.insert(axum::http::header::RETRY_AFTER, value);
        }
        response
    }
}

/// The field a serde error is about, from its message (`unknown field `x``,
/// `missing field `x``, or `... at line 1 column 9` with a path prefix).
fn field_of(message: &str) -> Option<String> {
    for marker in ["unknown field `", "missing field `", "duplicate field `"] {
        if let Some(rest) = message.split(marker).nth(1) {
            return rest.split('`').next().map(str::to_string);
        }
    }
    None
}

/// `role` from `Failed to deserialize the JSON body into the target type:
/// role: unknown variant ...` (or `Failed to parse the request body as
/// JSON: role: expected value ...`): the path serde reports before its message.
fn path_of(detail: &str) -> Option<String> {
    let rest = ["into the target type: ", "request body as JSON: "]
        .iter()
        .find_map(|prefix| detail.split_once(prefix).map(|(_, rest)| rest))?;
    let (path, _) = rest.split_once(": ")?;
    (!path.is_empty() && path != "." && !path.contains(char::is_whitespace)).then(|| path.to_string())
}

/// JSON body extractor whose failures are problem+json 4xx answers naming
/// the field, instead of axum's plain-text rejections.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(&rejection)),
        }
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

fn json_rejection(rejection: &JsonRejection) -> ApiError {
    let text = rejection.body_text();
    match rejection {
        JsonRejection::JsonDataError(_) => {
            let error = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", text.clone());
            match field_of(&text).or_else(|| path_of(&text)) {
                Some(field) => error.with_field(field),
                None => error,
            }
        }
        JsonRejection::JsonSyntaxError(_) => {
            let field = path_of(&text);
            let error = ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", text);
            match field {
                Some(field) => error.with_field(field),
                None => error,
            }
        }
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send Content-Type: application/json",
        ),
        JsonRejection::BytesRejection(_) => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "the request body is too large or unreadable",
        ),
        _ => ApiError::bad_request(text),
    }
}

/// Query-string extractor with problem+json rejections.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(query_rejection(&rejection)),
        }
    }
}

fn query_rejection(rejection: &QueryRejection) -> ApiError {
    let text = rejection.body_text();
    let error = ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", text.clone());
    match field_of(&text) {
        Some(field) => error.with_field(field),
        None => error,
    }
}

/// Path extractor with problem+json rejections (a malformed id is a 404:
/// nothing can exist at that path).
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(path_rejection(&rejection)),
        }
    }
}

fn path_rejection(rejection: &PathRejection) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", rejection.body_text())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_found_in_serde_messages() {
        let cases = [
            (
                "unknown",
                "Failed to deserialize the JSON body into the target type: unknown field `sidee`, expected one of",
                Some("sidee"),
            ),
            ("missing", "missing field `quantity` at line 1 column 2", Some("quantity")),
            ("other", "invalid type: string \"x\", expected u64", None),
        ];
        for (name, message, expected) in cases {
            assert_eq!(field_of(message).as_deref(), expected, "{name}");
        }
    }

    #[test]
    fn paths_are_read_from_axum_messages() {
        let cases = [
            (
                "type",
                "Failed to deserialize the JSON body into the target type: disabled: invalid type: string \"x\", \
                 expected a boolean at line 1 column 17",
                Some("disabled"),
            ),
            (
                "nested",
                "Failed to deserialize the JSON body into the target type: scopes[0]: unknown variant `fly`",
                Some("scopes[0]"),
            ),
            (
                "syntax",
                "Failed to parse the request body as JSON: role: expected value at line 1 column 37",
                Some("role"),
            ),
            ("no path", "Failed to deserialize the JSON body into the target type: invalid type: null", None),
            ("eof", "Failed to parse the request body as JSON: EOF while parsing a value at line 1 column 12", None),
        ];
        for (name, message, expected) in cases {
            assert_eq!(path_of(message).as_deref(), expected, "{name}");
        }
    }

    #[tokio::test]
    async fn problems_are_problem_json_with_a_code() {
        let response = ApiError::invalid("quantity", "must be positive").into_response();
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(response.headers()["content-type"], "application/problem+json");
        let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["code"], "validation_failed");
        assert_eq!(json["field"], "quantity");
        assert_eq!(json["status"], 422);
        let limited = ApiError::too_many_requests(7).into_response();
        assert_eq!(limited.headers()["retry-after"], "7");
    }
}
