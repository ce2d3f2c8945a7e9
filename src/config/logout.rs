//! `[logout]`: how the endpoints the gate answers treat their callers.

use std::time::Duration;

use serde::Deserialize;

use crate::config::error::ConfigError;
use crate::config::value::{Kind, SectionKeys, ms, positive};

/// SPEC §7: up to a second of random delay on 401/403 blunts timing attacks
/// without making a mistyped code painful.
pub(super) const DEFAULT_DENY_DELAY_MS: u64 = 1000;
/// A longer delay only holds connections (and a client) open: ten seconds
/// already dwarfs any timing difference worth hiding.
const MAX_DENY_DELAY_MS: u64 = 10_000;
/// SPEC §7: per user; a person logging devices out never needs more.
pub(super) const DEFAULT_RATE_LIMIT_PER_MINUTE: u32 = 10;
/// A logout body is `{"sessionId":"…"}`, tens of bytes; 64 KiB leaves room for
/// the `{"payload":"…"}` form while bounding what one request can hold.
pub(super) const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;
/// No logout body comes near it; the bound keeps a typo from letting one
/// request buffer gigabytes.
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// SPEC §8: the 6th attempt within 5 minutes after 5 failures gets the 429.
pub(super) const DEFAULT_TOTP_MAX_FAILURES: u32 = 5;
/// SPEC §8: the 5-minute lockout window.
pub(super) const DEFAULT_TOTP_LOCKOUT_SECS: u64 = 300;
/// A gate dropped in front of a running server must learn the sessions that
/// logged in before it arrived, without anyone importing them.
pub(super) const DEFAULT_VERIFY_UNKNOWN_TOKENS: bool = true;
/// Roles come from the CLI alone, so the upstream cannot grant the gate's
/// permissions.
pub(super) const DEFAULT_ROLES_FROM_UPSTREAM: bool = false;

pub(super) const KEYS: SectionKeys = SectionKeys {
    section: "logout",
    keys: &[
        ("deny_delay_ms", Kind::Int),
        ("rate_limit_per_minute", Kind::Int),
        ("max_body_bytes", Kind::Int),
        ("totp_max_failures", Kind::Int),
        ("totp_lockout_secs", Kind::Int),
        ("verify_unknown_tokens", Kind::Bool),
        ("roles_from_upstream", Kind::Bool),
    ],
};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLogout {
    deny_delay_ms: Option<u64>,
    rate_limit_per_minute: Option<u32>,
    max_body_bytes: Option<usize>,
    totp_max_failures: Option<u32>,
    totp_lockout_secs: Option<u64>,
    verify_unknown_tokens: Option<bool>,
    roles_from_upstream: Option<bool>,
}

#[derive(Clone, Debug)]
pub struct LogoutConfig {
    /// Max random delay added to 401/403 answers (timing-attack blunting).
    pub deny_delay: Duration,
    /// Logout requests per user per minute; 0 disables rate limiting.
    pub rate_limit_per_minute: u32,
    pub max_body_bytes: usize,
    /// Failed TOTP checks per user before the lockout 429.
    pub totp_max_failures: u32,
    pub totp_lockout: Duration,
    /// Verify a caller's unknown token with the upstream's `GET /api/v1/me`
    /// (endpoints the gate answers only, never the forwarding path). On by
    /// default: a gate dropped in front of a running server must learn the
    /// sessions that logged in before it arrived.
    pub verify_unknown_tokens: bool,
    /// Take the caller's roles from the `/api/v1/me` answer (only when
    /// verifying). Off by default: roles then come from the CLI alone, so the
    /// upstream cannot grant the gate's permissions.
    pub roles_from_upstream: bool,
}

pub(super) fn validate(raw: RawLogout) -> Result<LogoutConfig, ConfigError> {
    let logout = LogoutConfig {
        deny_delay: ms(raw.deny_delay_ms, DEFAULT_DENY_DELAY_MS),
        rate_limit_per_minute: raw
            .rate_limit_per_minute
            .unwrap_or(DEFAULT_RATE_LIMIT_PER_MINUTE),
        max_body_bytes: raw.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES),
        totp_max_failures: raw.totp_max_failures.unwrap_or(DEFAULT_TOTP_MAX_FAILURES),
        totp_lockout: Duration::from_secs(positive(
            "logout.totp_lockout_secs",
            raw.totp_lockout_secs,
            DEFAULT_TOTP_LOCKOUT_SECS,
        )?),
        verify_unknown_tokens: raw
            .verify_unknown_tokens
            .unwrap_or(DEFAULT_VERIFY_UNKNOWN_TOKENS),
        roles_from_upstream: raw
            .roles_from_upstream
            .unwrap_or(DEFAULT_ROLES_FROM_UPSTREAM),
    };
    if logout.deny_delay > Duration::from_millis(MAX_DENY_DELAY_MS) {
        return Err(ConfigError::new(
            "logout.deny_delay_ms",
            format!("must be at most {MAX_DENY_DELAY_MS}"),
        ));
    }
    if logout.max_body_bytes == 0 || logout.max_body_bytes > MAX_BODY_BYTES {
        return Err(ConfigError::new(
            "logout.max_body_bytes",
            format!("must be between 1 and {MAX_BODY_BYTES}"),
        ));
    }
    if logout.totp_max_failures == 0 {
        return Err(ConfigError::new(
            "logout.totp_max_failures",
            "must be greater than 0",
        ));
    }
    Ok(logout)
}
