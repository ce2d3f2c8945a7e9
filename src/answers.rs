//! Every answer the gate writes itself, byte for byte: the Rocket.Chat bodies of
//! the endpoints it answers (SPEC §1, §8) and the forwarding path's failures.
//!
//! The logout rows copy Rocket.Chat 5.x exactly (SPEC §1), including key order,
//! so a client cannot tell the gate from the server it protects. This is the
//! only module that knows those bodies (as linkerd2-proxy keeps every error →
//! response mapping in `errors/respond.rs`). Pure: no I/O.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use crate::body::{Body, full};

/// An answer of the logout endpoint (or of the hot path's token check).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiError {
    /// Row 1: no/unknown/foreign/revoked token.
    Unauthorized,
    /// Row 2: per-user rate limit or TOTP failure lockout.
    TooManyRequests { retry_after_secs: u64 },
    /// Row 3: the body failed validation; the message is the ajv-style text.
    InvalidParams(&'static str),
    /// Row 3: body over the limit.
    BodyTooLarge,
    /// Row 4: caller lacks `logout-device-management`.
    Forbidden,
    /// Step 5: caller has no TOTP secret enrolled (fail closed).
    TotpNotConfigured,
    /// Row 5a.
    TotpRequired,
    /// Row 5b.
    TotpInvalid,
    /// Row 6; also the device-management endpoints' unknown session.
    SessionNotFound,
    /// Device listing: `sort` is not a JSON object of `1`/`-1` values
    /// (Rocket.Chat's `parseJsonQuery`); carries the parameter as sent.
    InvalidSort(String),
    /// Device listing: a sort key Rocket.Chat does not allow.
    InvalidSortKeys,
    /// Redis unreachable or timing out: never reported as 401/403/404.
    StoreUnavailable,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::InvalidParams(_)
            | ApiError::TotpRequired
            | ApiError::TotpInvalid
            | ApiError::InvalidSort(_)
            | ApiError::InvalidSortKeys => StatusCode::BAD_REQUEST,
            ApiError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Forbidden | ApiError::TotpNotConfigured => StatusCode::FORBIDDEN,
            ApiError::SessionNotFound => StatusCode::NOT_FOUND,
            ApiError::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Label for metrics and the audit log.
    pub fn outcome(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "unauthorized",
            ApiError::TooManyRequests { .. } => "error-too-many-requests",
            ApiError::InvalidParams(_) => "invalid-params",
            ApiError::BodyTooLarge => "error-body-too-large",
            ApiError::Forbidden => "error-unauthorized",
            ApiError::TotpNotConfigured => "totp-not-configured",
            ApiError::TotpRequired => "totp-required",
            ApiError::TotpInvalid => "totp-invalid",
            ApiError::SessionNotFound => "session-not-found",
            ApiError::InvalidSort(_) => "error-invalid-sort",
            ApiError::InvalidSortKeys => "error-invalid-sort-keys",
            ApiError::StoreUnavailable => "error-store-unavailable",
        }
    }

    /// The exact JSON text.
    pub fn body(&self) -> String {
        match self {
            ApiError::Unauthorized => {
                r#"{"status":"error","message":"You must be logged in to do this."}"#.to_string()
            }
            ApiError::TooManyRequests { retry_after_secs } => format!(
                r#"{{"success":false,"error":"Error, too many requests. Please slow down. You must wait {retry_after_secs} seconds before trying this endpoint again. [error-too-many-requests]"}}"#
            ),
            ApiError::InvalidParams(message) => format!(
                r#"{{"success":false,"error":{},"errorType":"invalid-params"}}"#,
                json_string(message)
            ),
            ApiError::BodyTooLarge => r#"{"success":false,"error":"Request body too large [error-body-too-large]","errorType":"error-body-too-large"}"#.to_string(),
            ApiError::Forbidden => r#"{"success":false,"error":"User does not have the permissions required for this action [error-unauthorized]"}"#.to_string(),
            ApiError::TotpNotConfigured => r#"{"success":false,"error":"Two-factor authentication is not configured for this user [totp-not-configured]","errorType":"totp-not-configured"}"#.to_string(),
            ApiError::TotpRequired => r#"{"success":false,"error":"TOTP Required [totp-required]","errorType":"totp-required","details":{"method":"totp","codeGenerated":false,"availableMethods":["totp"]}}"#.to_string(),
            ApiError::TotpInvalid => r#"{"success":false,"error":"TOTP Invalid [totp-invalid]","errorType":"totp-invalid","details":{"method":"totp","codeGenerated":false}}"#.to_string(),
            ApiError::SessionNotFound => r#"{"success":false,"error":"Session not found"}"#.to_string(),
            // Rocket.Chat's `failure(e.message, e.error, stack, e)` of a Meteor.Error
            // with details: the sort text is echoed, JSON-escaped.
            ApiError::InvalidSort(sort) => format!(
                r#"{{"success":false,"error":{},"errorType":"error-invalid-sort","details":{{"helperMethod":"parseJsonQuery"}}}}"#,
                json_string(&format!(
                    "Invalid sort parameter provided: \"{sort}\" [error-invalid-sort]"
                ))
            ),
            ApiError::InvalidSortKeys => r#"{"success":false,"error":"error-invalid-sort-keys"}"#.to_string(),
            ApiError::StoreUnavailable => r#"{"success":false,"error":"Session store unavailable [error-store-unavailable]","errorType":"error-store-unavailable"}"#.to_string(),
        }
    }

    pub fn into_response(self) -> Response<Body> {
        let mut response = json_response(self.status(), self.body());
        if let ApiError::TooManyRequests { retry_after_secs } = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        response
    }
}

/// Row 7: `{"sessionId":"…","success":true}`.
pub fn logout_success(session_id: &str) -> Response<Body> {
    json_response(
        StatusCode::OK,
        format!(
            r#"{{"sessionId":{},"success":true}}"#,
            json_string(session_id)
        ),
    )
}

/// A JSON answer with the headers Rocket.Chat's API sends on these routes.
pub fn json_response(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

fn json_string(text: &str) -> String {
    serde_json::Value::String(text.to_string()).to_string()
}

/// Failures of the forwarding path, each with one JSON answer (SPEC §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// Both Content-Length and Transfer-Encoding, or conflicting lengths:
    /// refused and the connection closed so nothing after it is misparsed.
    #[error("ambiguous request framing")]
    AmbiguousFraming,
    #[error("malformed request")]
    BadRequest,
    #[error("upstream unavailable")]
    Upstream,
    #[error("upstream timed out")]
    UpstreamTimeout,
}

impl ProxyError {
    pub fn into_response(self) -> Response<Body> {
        let (status, body) = match self {
            ProxyError::AmbiguousFraming => (
                StatusCode::BAD_REQUEST,
                r#"{"success":false,"error":"Ambiguous request framing [error-bad-request]","errorType":"error-bad-request"}"#,
            ),
            ProxyError::BadRequest => (
                StatusCode::BAD_REQUEST,
                r#"{"success":false,"error":"Malformed request [error-bad-request]","errorType":"error-bad-request"}"#,
            ),
            ProxyError::Upstream => (
                StatusCode::BAD_GATEWAY,
                r#"{"success":false,"error":"Upstream unavailable [error-bad-gateway]","errorType":"error-bad-gateway"}"#,
            ),
            ProxyError::UpstreamTimeout => (
                StatusCode::GATEWAY_TIMEOUT,
                r#"{"success":false,"error":"Upstream timed out [error-gateway-timeout]","errorType":"error-gateway-timeout"}"#,
            ),
        };
        let mut response = json_response(status, body);
        if self == ProxyError::AmbiguousFraming {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// The raw answer to a connection over `server.max_connections`, written
/// before any request is read; the connection is closed after it.
pub const OVER_CONNECTION_LIMIT: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: 116\r\nconnection: close\r\nretry-after: 1\r\n\r\n{\"success\":false,\"error\":\"Too many open connections [error-connection-limit]\",\"errorType\":\"error-connection-limit\"}\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_byte_exact() {
        assert_eq!(
            ApiError::TooManyRequests {
                retry_after_secs: 42
            }
            .body(),
            r#"{"success":false,"error":"Error, too many requests. Please slow down. You must wait 42 seconds before trying this endpoint again. [error-too-many-requests]"}"#
        );
        assert_eq!(
            ApiError::InvalidParams("must have required property 'sessionId' [invalid-params]")
                .body(),
            r#"{"success":false,"error":"must have required property 'sessionId' [invalid-params]","errorType":"invalid-params"}"#
        );
        let ok = logout_success("a\"b");
        assert_eq!(ok.status(), StatusCode::OK);
        assert_eq!(
            ApiError::InvalidSort(r#"{"a"#.into()).body(),
            r#"{"success":false,"error":"Invalid sort parameter provided: \"{\"a\" [error-invalid-sort]","errorType":"error-invalid-sort","details":{"helperMethod":"parseJsonQuery"}}"#
        );
        assert_eq!(
            ApiError::InvalidSortKeys.body(),
            r#"{"success":false,"error":"error-invalid-sort-keys"}"#
        );
        assert_eq!(ApiError::InvalidSortKeys.status(), 400);
    }

    #[test]
    fn every_answer_is_uncacheable_json() {
        let r = ApiError::TooManyRequests {
            retry_after_secs: 7,
        }
        .into_response();
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()["retry-after"], "7");
        assert_eq!(r.headers()["content-type"], "application/json");
        assert_eq!(r.headers()["cache-control"], "no-store");
        assert_eq!(r.headers()["pragma"], "no-cache");
    }
}
