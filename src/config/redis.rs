//! `[redis]`: where sessions, users and the revoked set live.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::config::error::ConfigError;
use crate::config::value::{Kind, SectionKeys, positive};

/// Redis's own default port and database on this host (SPEC §7).
pub(super) const DEFAULT_URL: &str = "redis://127.0.0.1:6379/0";
/// SPEC §7: short, and keeps the gate's keys apart in a shared Redis.
pub(super) const DEFAULT_PREFIX: &str = "sg:";
/// Short enough that a hanging Redis answers the logout endpoint 503 well
/// before a client gives up, long enough for a busy Redis's slow commands.
pub(super) const DEFAULT_COMMAND_TIMEOUT_MS: u64 = 2000;
/// A connect near the gate takes milliseconds; waiting longer only delays
/// the 503 and the reconnect.
pub(super) const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 1000;
/// The URL forms the store can open (plain, TLS, Sentinel, Cluster, socket).
const SCHEMES: [&str; 8] = [
    "redis://",
    "rediss://",
    "redis+sentinel://",
    "rediss+sentinel://",
    "redis+cluster://",
    "rediss+cluster://",
    "unix://",
    "redis+unix://",
];

pub(super) const KEYS: SectionKeys = SectionKeys {
    section: "redis",
    keys: &[
        ("url", Kind::Str),
        ("prefix", Kind::Str),
        ("command_timeout_ms", Kind::Int),
        ("connect_timeout_ms", Kind::Int),
        ("tls_ca_file", Kind::Str),
        ("sentinel_username", Kind::Str),
        ("sentinel_password", Kind::Str),
    ],
};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRedis {
    url: Option<String>,
    prefix: Option<String>,
    command_timeout_ms: Option<u64>,
    connect_timeout_ms: Option<u64>,
    tls_ca_file: Option<String>,
    sentinel_username: Option<String>,
    sentinel_password: Option<String>,
}

#[derive(Clone)]
pub struct RedisConfig {
    pub url: String,
    pub prefix: String,
    /// Bound on every Redis command: a hanging Redis becomes a 503, not a hang.
    pub command_timeout: Duration,
    pub connect_timeout: Duration,
    /// CA bundle (PEM) for `rediss://` servers signed by a private CA.
    pub tls_ca_file: Option<PathBuf>,
    /// The Sentinels' own credentials (username, password), when they are
    /// protected apart from the data nodes (whose credentials are in `url`).
    pub sentinel_auth: Option<(Option<String>, String)>,
}

/// Hand-written: the URL and the Sentinel password are secrets.
impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &"<redacted>")
            .field("prefix", &self.prefix)
            .field("command_timeout", &self.command_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("tls_ca_file", &self.tls_ca_file)
            .field(
                "sentinel_auth",
                &self
                    .sentinel_auth
                    .as_ref()
                    .map(|(user, _)| (user, "<redacted>")),
            )
            .finish()
    }
}

pub(super) fn validate(raw: RawRedis) -> Result<RedisConfig, ConfigError> {
    let url = raw.url.unwrap_or_else(|| DEFAULT_URL.to_string());
    if !SCHEMES.iter().any(|p| url.starts_with(p)) {
        // Never echo the URL: it may hold a password.
        return Err(ConfigError::new(
            "redis.url",
            "unsupported scheme (use redis://, rediss://, redis+sentinel://, redis+cluster://)",
        ));
    }
    let redis = RedisConfig {
        url,
        prefix: raw.prefix.unwrap_or_else(|| DEFAULT_PREFIX.to_string()),
        command_timeout: Duration::from_millis(positive(
            "redis.command_timeout_ms",
            raw.command_timeout_ms,
            DEFAULT_COMMAND_TIMEOUT_MS,
        )?),
        connect_timeout: Duration::from_millis(positive(
            "redis.connect_timeout_ms",
            raw.connect_timeout_ms,
            DEFAULT_CONNECT_TIMEOUT_MS,
        )?),
        tls_ca_file: raw.tls_ca_file.map(PathBuf::from),
        sentinel_auth: match (raw.sentinel_username, raw.sentinel_password) {
            (user, Some(password)) => Some((user, password)),
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError::new(
                    "redis.sentinel_password",
                    "required when redis.sentinel_username is set",
                ));
            }
        },
    };
    // With a URL that is not a Sentinel one the store refuses to open (it
    // names the key): checked there, where the URL is parsed.
    if redis.prefix.is_empty() {
        return Err(ConfigError::new("redis.prefix", "must not be empty"));
    }
    Ok(redis)
}

#[cfg(test)]
mod tests {
    use crate::config::testing::env;
    use crate::config::{Config, Overrides};

    #[test]
    fn redis_url_is_never_echoed() {
        let err = Config::from_toml_str(
            "[redis]\nurl = \"http://user:hunter2@x\"",
            &env(&[]),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(!err.contains("hunter2"));
    }
}
