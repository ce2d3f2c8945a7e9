//! `[admin]`: the listener for `/healthz`, `/readyz` and `/metrics`.

use std::net::SocketAddr;

use serde::Deserialize;

use crate::config::error::ConfigError;
use crate::config::value::{Kind, SectionKeys, parse_addr};

/// Loopback only (SPEC §5): readiness and metrics are for the kubelet and
/// Prometheus on the same host or pod, never for clients.
pub(super) const DEFAULT_LISTEN: &str = "127.0.0.1:9901";

pub(super) const KEYS: SectionKeys = SectionKeys {
    section: "admin",
    keys: &[("listen", Kind::Str)],
};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    listen: Option<String>,
}

#[derive(Clone, Debug)]
pub struct AdminConfig {
    pub listen: SocketAddr,
}

/// `client_listen` is the validated top-level `listen`: the two cannot share
/// a socket.
pub(super) fn validate(
    raw: RawAdmin,
    client_listen: SocketAddr,
) -> Result<AdminConfig, ConfigError> {
    let admin = AdminConfig {
        listen: parse_addr(
            "admin.listen",
            raw.listen.as_deref().unwrap_or(DEFAULT_LISTEN),
        )?,
    };
    if admin.listen == client_listen {
        return Err(ConfigError::new("admin.listen", "must differ from listen"));
    }
    Ok(admin)
}
