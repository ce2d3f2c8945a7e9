//! The two keys at the top of the file: `listen` (where clients connect) and
//! `upstream` (the chat server). They have no table of their own, so the raw
//! values are fields of the file's top-level struct.

use std::net::SocketAddr;

use crate::config::error::ConfigError;
use crate::config::value::{Kind, SectionKeys, parse_addr};

/// Every interface, port 8080 (SPEC §7): a sidecar takes the clients' traffic
/// from outside its pod, on the usual unprivileged HTTP port.
pub(super) const DEFAULT_LISTEN: &str = "0.0.0.0:8080";
/// Rocket.Chat's own default port, on the same host or pod (SPEC §7).
pub(super) const DEFAULT_UPSTREAM: &str = "http://127.0.0.1:3000";

pub(super) const KEYS: SectionKeys = SectionKeys {
    section: "",
    keys: &[("listen", Kind::Str), ("upstream", Kind::Str)],
};

#[derive(Clone, Debug)]
pub struct Upstream {
    /// `http` or `https`.
    pub scheme: http::uri::Scheme,
    /// host[:port] as written in the config.
    pub authority: http::uri::Authority,
}

impl Upstream {
    pub fn is_https(&self) -> bool {
        self.scheme == http::uri::Scheme::HTTPS
    }
}

pub(super) fn validate_listen(raw: Option<String>) -> Result<SocketAddr, ConfigError> {
    parse_addr("listen", raw.as_deref().unwrap_or(DEFAULT_LISTEN))
}

pub(super) fn validate_upstream(raw: Option<String>) -> Result<Upstream, ConfigError> {
    let value = raw.as_deref().unwrap_or(DEFAULT_UPSTREAM);
    let bad = |why: &str| ConfigError::new("upstream", format!("{why}: {value:?}"));
    let uri: http::Uri = value.parse().map_err(|_| bad("invalid URL"))?;
    let scheme = uri.scheme().cloned().ok_or_else(|| bad("missing scheme"))?;
    if scheme != http::uri::Scheme::HTTP && scheme != http::uri::Scheme::HTTPS {
        return Err(bad("scheme must be http or https"));
    }
    let authority = uri
        .authority()
        .cloned()
        .ok_or_else(|| bad("missing host"))?;
    if authority.as_str().contains('@') {
        return Err(bad("credentials in the upstream URL are not supported"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(bad(
            "must not have a path or query (the gate forwards paths unchanged)",
        ));
    }
    Ok(Upstream { scheme, authority })
}
