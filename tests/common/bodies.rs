//! Rocket.Chat's answers, byte for byte, as clients parse them (SPEC §7). The
//! tests hold their own copy rather than `sessiongate::answers`, so a changed
//! body in `src/` fails here instead of changing what the tests expect.

/// The fake upstream's own 401, told apart from the gate's.
#[allow(unused_imports)]
pub use super::upstream::UPSTREAM_UNAUTHORIZED;

/// Row 1: no or unknown credentials (Rocket.Chat's own 401, key order included).
pub const UNAUTHORIZED: &str =
    r#"{"status":"error","message":"You must be logged in to do this."}"#;
pub const FORBIDDEN: &str = r#"{"success":false,"error":"User does not have the permissions required for this action [error-unauthorized]"}"#;
pub const NOT_CONFIGURED: &str = r#"{"success":false,"error":"Two-factor authentication is not configured for this user [totp-not-configured]","errorType":"totp-not-configured"}"#;
pub const TOTP_REQUIRED: &str = r#"{"success":false,"error":"TOTP Required [totp-required]","errorType":"totp-required","details":{"method":"totp","codeGenerated":false,"availableMethods":["totp"]}}"#;
pub const TOTP_INVALID: &str = r#"{"success":false,"error":"TOTP Invalid [totp-invalid]","errorType":"totp-invalid","details":{"method":"totp","codeGenerated":false}}"#;
pub const NOT_FOUND: &str = r#"{"success":false,"error":"Session not found"}"#;
pub const STORE_DOWN: &str = r#"{"success":false,"error":"Session store unavailable [error-store-unavailable]","errorType":"error-store-unavailable"}"#;
pub const TOO_LARGE: &str = r#"{"success":false,"error":"Request body too large [error-body-too-large]","errorType":"error-body-too-large"}"#;
pub const AMBIGUOUS: &str = r#"{"success":false,"error":"Ambiguous request framing [error-bad-request]","errorType":"error-bad-request"}"#;
pub const BAD_GATEWAY: &str = r#"{"success":false,"error":"Upstream unavailable [error-bad-gateway]","errorType":"error-bad-gateway"}"#;
pub const GATEWAY_TIMEOUT: &str = r#"{"success":false,"error":"Upstream timed out [error-gateway-timeout]","errorType":"error-gateway-timeout"}"#;
pub const OVER_LIMIT: &str = r#"{"success":false,"error":"Too many open connections [error-connection-limit]","errorType":"error-connection-limit"}"#;

/// A 400 for a bad `sessionId` or body.
pub fn invalid(message: &str) -> String {
    format!(
        r#"{{"success":false,"error":"{message} [invalid-params]","errorType":"invalid-params"}}"#
    )
}

/// A successful logout of `session`.
pub fn ok_body(session: &str) -> String {
    format!(r#"{{"sessionId":"{session}","success":true}}"#)
}
