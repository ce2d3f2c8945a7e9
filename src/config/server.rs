//! `[server]`: the client listener — runtime, connection limit, drain, TLS,
//! and whose X-Forwarded-* headers count.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::config::error::ConfigError;
use crate::config::value::{Kind, SectionKeys, positive};

/// One worker per core, tokio's own default.
pub(super) const DEFAULT_WORKERS: usize = 0;
/// A guard against a typo: each thread costs a stack, and no host the gate
/// runs on has this many cores.
const MAX_WORKERS: usize = 1024;
/// Far above one chat server's share of clients (each holds a websocket or
/// two); a flood beyond it is refused (503) before it exhausts descriptors.
pub(super) const DEFAULT_MAX_CONNECTIONS: u64 = 10_000;
/// tokio's Semaphore panics past 2^61 permits; no host holds 10M sockets anyway.
const MAX_CONNECTIONS: usize = 10_000_000;
/// SPEC §5: a drain deadline of 10 s, inside Kubernetes' default 30 s grace.
pub(super) const DEFAULT_SHUTDOWN_GRACE_SECS: u64 = 10;
/// After SIGTERM the gate reports not ready but keeps serving this long, so
/// a Kubernetes Service (endpoint removal takes a few seconds to reach every
/// node) or a load balancer polling `/readyz` stops sending first. 5 s +
/// the 10 s grace fit Kubernetes' default 30 s termination grace period.
pub(super) const DEFAULT_DRAIN_DELAY_MS: u64 = 5_000;
/// A delay longer than ten minutes is a typo, not a rollout plan.
const MAX_DRAIN_DELAY_MS: u64 = 600_000;
/// Slowloris bound: a real client sends its request head in one round trip;
/// ten seconds allows for the worst mobile network.
pub(super) const DEFAULT_HEADER_READ_TIMEOUT_MS: u64 = 10_000;

pub(super) const KEYS: SectionKeys = SectionKeys {
    section: "server",
    keys: &[
        ("workers", Kind::Int),
        ("max_connections", Kind::Int),
        ("shutdown_grace_secs", Kind::Int),
        ("drain_delay_ms", Kind::Int),
        ("header_read_timeout_ms", Kind::Int),
        ("tls_cert_file", Kind::Str),
        ("tls_key_file", Kind::Str),
        ("trusted_proxies", Kind::List),
    ],
};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    workers: Option<usize>,
    max_connections: Option<usize>,
    shutdown_grace_secs: Option<u64>,
    drain_delay_ms: Option<u64>,
    header_read_timeout_ms: Option<u64>,
    tls_cert_file: Option<String>,
    tls_key_file: Option<String>,
    trusted_proxies: Option<Vec<String>>,
}

#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Runtime worker threads; 0 = one per core.
    pub workers: usize,
    /// Open client connections beyond this are refused.
    pub max_connections: usize,
    /// How long SIGTERM waits for in-flight requests and streams.
    pub shutdown_grace: Duration,
    /// Between SIGTERM and closing the listener: not ready, still serving,
    /// every HTTP/1.1 answer with `Connection: close`.
    pub drain_delay: Duration,
    /// Slowloris bound: the whole request head must arrive within this.
    pub header_read_timeout: Duration,
    pub tls: Option<TlsFiles>,
    /// Peers whose X-Forwarded-* headers are trusted and extended.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

pub(super) fn validate(raw: RawServer) -> Result<ServerConfig, ConfigError> {
    let tls = match (raw.tls_cert_file, raw.tls_key_file) {
        (None, None) => None,
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert_file: cert.into(),
            key_file: key.into(),
        }),
        (Some(_), None) => {
            return Err(ConfigError::new(
                "server.tls_key_file",
                "required when server.tls_cert_file is set",
            ));
        }
        (None, Some(_)) => {
            return Err(ConfigError::new(
                "server.tls_cert_file",
                "required when server.tls_key_file is set",
            ));
        }
    };
    let mut trusted_proxies = Vec::new();
    for entry in raw.trusted_proxies.unwrap_or_default() {
        let net = entry
            .parse::<ipnet::IpNet>()
            .or_else(|_| entry.parse::<IpAddr>().map(ipnet::IpNet::from))
            .map_err(|_| {
                ConfigError::new(
                    "server.trusted_proxies",
                    format!("invalid IP or CIDR {entry:?}"),
                )
            })?;
        trusted_proxies.push(net);
    }
    let server = ServerConfig {
        workers: raw.workers.unwrap_or(DEFAULT_WORKERS),
        max_connections: positive(
            "server.max_connections",
            raw.max_connections.map(|v| v as u64),
            DEFAULT_MAX_CONNECTIONS,
        )? as usize,
        shutdown_grace: Duration::from_secs(
            raw.shutdown_grace_secs
                .unwrap_or(DEFAULT_SHUTDOWN_GRACE_SECS),
        ),
        drain_delay: Duration::from_millis(raw.drain_delay_ms.unwrap_or(DEFAULT_DRAIN_DELAY_MS)),
        header_read_timeout: Duration::from_millis(positive(
            "server.header_read_timeout_ms",
            raw.header_read_timeout_ms,
            DEFAULT_HEADER_READ_TIMEOUT_MS,
        )?),
        tls,
        trusted_proxies,
    };
    if server.drain_delay > Duration::from_millis(MAX_DRAIN_DELAY_MS) {
        return Err(ConfigError::new(
            "server.drain_delay_ms",
            format!("must be at most {MAX_DRAIN_DELAY_MS}"),
        ));
    }
    if server.max_connections > MAX_CONNECTIONS {
        return Err(ConfigError::new(
            "server.max_connections",
            format!("must be between 1 and {MAX_CONNECTIONS}"),
        ));
    }
    if server.workers > MAX_WORKERS {
        return Err(ConfigError::new(
            "server.workers",
            format!("must be at most {MAX_WORKERS}"),
        ));
    }
    Ok(server)
}
