//! `[proxy]`: the upstream connection pool and what the forwarding path
//! holds back to inspect.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::config::error::ConfigError;
use crate::config::value::{Kind, SectionKeys, positive};

/// The upstream is near (same pod or host): a connect that takes longer is
/// failing, and the client is better served by a prompt 502.
pub(super) const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 5_000;
/// A minute to the response head: generous for the chat server's slowest API
/// calls, bounded so a hung upstream becomes a 504 instead of a hung client.
pub(super) const DEFAULT_RESPONSE_TIMEOUT_MS: u64 = 60_000;
/// SPEC §8: 4 s, below Node's 5 s keep-alive, so the gate closes an idle
/// pooled connection before the upstream does and never sends on a dead one.
pub(super) const DEFAULT_POOL_IDLE_TIMEOUT_MS: u64 = 4_000;
/// 1 MiB: far above any SockJS `xhr_send` batch or REST login body a client
/// sends, small enough to hold per request (same as `tunnel`'s default).
pub(super) const DEFAULT_MAX_INSPECT_BYTES: usize = 1024 * 1024;
/// An hour: Meteor pings every DDP socket every 17.5 s and SockJS sends a
/// heartbeat every 25 s, so a tunnel silent both ways this long has a dead
/// peer (a half-open TCP connection) and only holds memory. 0 turns it off.
pub(super) const DEFAULT_WEBSOCKET_IDLE_TIMEOUT_MS: u64 = 3_600_000;

pub(super) const KEYS: SectionKeys = SectionKeys {
    section: "proxy",
    keys: &[
        ("connect_timeout_ms", Kind::Int),
        ("response_timeout_ms", Kind::Int),
        ("pool_idle_timeout_ms", Kind::Int),
        ("ca_file", Kind::Str),
        ("max_inspect_bytes", Kind::Int),
        ("websocket_idle_timeout_ms", Kind::Int),
    ],
};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProxy {
    connect_timeout_ms: Option<u64>,
    response_timeout_ms: Option<u64>,
    pool_idle_timeout_ms: Option<u64>,
    ca_file: Option<String>,
    max_inspect_bytes: Option<usize>,
    websocket_idle_timeout_ms: Option<u64>,
}

#[derive(Clone, Debug)]
pub struct ProxyConfig {
    pub connect_timeout: Duration,
    /// Time to the upstream's response head; past it the client gets a 504.
    pub response_timeout: Duration,
    /// Pooled connections idle longer than this are closed (below Node's 5 s).
    pub pool_idle_timeout: Duration,
    /// Extra CA bundle (PEM) for an https upstream, added to the system roots.
    pub ca_file: Option<PathBuf>,
    /// Bound on the bodies and websocket messages the gate holds back to
    /// inspect (SockJS sends, REST login and `method.call` bodies).
    pub max_inspect_bytes: usize,
    /// A websocket tunnel with no traffic either way for this long is closed
    /// (1001); `None` when `proxy.websocket_idle_timeout_ms = 0`.
    pub websocket_idle_timeout: Option<Duration>,
}

pub(super) fn validate(raw: RawProxy) -> Result<ProxyConfig, ConfigError> {
    Ok(ProxyConfig {
        connect_timeout: Duration::from_millis(positive(
            "proxy.connect_timeout_ms",
            raw.connect_timeout_ms,
            DEFAULT_CONNECT_TIMEOUT_MS,
        )?),
        response_timeout: Duration::from_millis(positive(
            "proxy.response_timeout_ms",
            raw.response_timeout_ms,
            DEFAULT_RESPONSE_TIMEOUT_MS,
        )?),
        pool_idle_timeout: Duration::from_millis(positive(
            "proxy.pool_idle_timeout_ms",
            raw.pool_idle_timeout_ms,
            DEFAULT_POOL_IDLE_TIMEOUT_MS,
        )?),
        ca_file: raw.ca_file.map(PathBuf::from),
        max_inspect_bytes: raw.max_inspect_bytes.unwrap_or(DEFAULT_MAX_INSPECT_BYTES),
        websocket_idle_timeout: match raw
            .websocket_idle_timeout_ms
            .unwrap_or(DEFAULT_WEBSOCKET_IDLE_TIMEOUT_MS)
        {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        },
    })
}
