//! Failures of the forwarding path, each with one JSON answer (SPEC §8).

use http::{HeaderValue, Response, StatusCode, header};

use crate::api::error::json_response;
use crate::body::Body;

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
