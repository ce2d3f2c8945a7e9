//! `[revocation]`: how long the revoked set remembers a token.

use std::time::Duration;

use serde::Deserialize;

use crate::config::error::ConfigError;
use crate::config::value::{Kind, SectionKeys};

/// Rocket.Chat's default login token lifetime (`Accounts_LoginExpiration`,
/// 90 days): past it the upstream refuses the token by itself.
pub(super) const DEFAULT_TOKEN_LIFETIME_DAYS: u64 = 90;
/// 100 years: beyond it `days * 86400` and Redis expiry times stop making sense.
const MAX_TOKEN_LIFETIME_DAYS: u64 = 36_500;

pub(super) const KEYS: SectionKeys = SectionKeys {
    section: "revocation",
    keys: &[("token_lifetime_days", Kind::Int)],
};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRevocation {
    token_lifetime_days: Option<u64>,
}

#[derive(Clone, Debug)]
pub struct RevocationConfig {
    /// How long a revoked token stays refused (Rocket.Chat's token lifetime).
    pub token_lifetime: Duration,
}

pub(super) fn validate(raw: RawRevocation) -> Result<RevocationConfig, ConfigError> {
    let lifetime_days = raw
        .token_lifetime_days
        .unwrap_or(DEFAULT_TOKEN_LIFETIME_DAYS);
    if !(1..=MAX_TOKEN_LIFETIME_DAYS).contains(&lifetime_days) {
        return Err(ConfigError::new(
            "revocation.token_lifetime_days",
            format!("must be between 1 and {MAX_TOKEN_LIFETIME_DAYS}"),
        ));
    }
    Ok(RevocationConfig {
        token_lifetime: Duration::from_secs(lifetime_days * 86_400),
    })
}
