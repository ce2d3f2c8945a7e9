//! What every section shares: how it declares its keys to the environment
//! overlay, and the value checks more than one section makes.

use std::net::SocketAddr;
use std::time::Duration;

use crate::config::error::ConfigError;

/// The TOML type an environment value is read as (`SESSIONGATE_<SECTION>_<KEY>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// Taken as written.
    Str,
    /// Decimal, surrounding whitespace ignored.
    Int,
    /// `true`/`1`/`yes` or `false`/`0`/`no`.
    Bool,
    /// Comma-separated; empty items dropped.
    List,
}

/// A section's keys as the environment may set them. Each section file
/// declares its own next to its raw struct; a test checks the two agree.
pub(super) struct SectionKeys {
    /// The table name (`redis`); empty for the keys at the top of the file.
    pub section: &'static str,
    /// `(key, kind)` in the order the overlay applies them (and so the order
    /// in which two bad environment values are reported).
    pub keys: &'static [(&'static str, Kind)],
}

impl SectionKeys {
    /// `url` in `[redis]` → `redis.url`; top-level keys stay bare.
    pub fn dotted(&self, key: &str) -> String {
        if self.section.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.section)
        }
    }
}

pub(super) fn parse_addr(key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.parse().map_err(|_| {
        ConfigError::new(
            key,
            format!("invalid socket address {value:?} (expected IP:PORT, e.g. 0.0.0.0:8080)"),
        )
    })
}

pub(super) fn ms(value: Option<u64>, default: u64) -> Duration {
    Duration::from_millis(value.unwrap_or(default))
}

/// The value or its default, refused when zero (a zero timeout or limit
/// would refuse everything).
pub(super) fn positive(key: &str, value: Option<u64>, default: u64) -> Result<u64, ConfigError> {
    match value.unwrap_or(default) {
        0 => Err(ConfigError::new(key, "must be greater than 0")),
        v => Ok(v),
    }
}
