//! Wiring: store, revoked set and its sync, metrics, listeners, drain. The only
//! place that knows how the parts fit together.

use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::admin::{self, Metrics, Readiness};
use crate::api::{DevicesApi, LogoutApi};
use crate::capture::Capturer;
use crate::config::{Config, ConfigError};
use crate::proxy::{Gate, Handlers};
use crate::revocation::{self, RevokedSet};
use crate::server;
use crate::store::Store;
use crate::totp::crypto::SecretKey;
use crate::verify::{CallerAuth, UpstreamVerifier};

/// Listeners bound before anything else runs, so a busy port fails fast with
/// the key that named it.
pub struct Bound {
    pub gate: server::Listener,
    pub admin: TcpListener,
}

impl Bound {
    pub fn gate_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.gate.listener.local_addr()
    }
    pub fn admin_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.admin.local_addr()
    }
}

pub async fn bind(cfg: &Config) -> Result<Bound, ConfigError> {
    crate::tls::install_crypto_provider();
    let cert = cfg
        .server
        .tls
        .as_ref()
        .map(server::tls::ListenerCert::load)
        .transpose()?;
    let tls = cert
        .clone()
        .map(|cert| TlsAcceptor::from(server::tls::server_config(cert)));
    let gate = TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| ConfigError::new("listen", format!("cannot bind {}: {e}", cfg.listen)))?;
    let admin = TcpListener::bind(cfg.admin.listen).await.map_err(|e| {
        ConfigError::new(
            "admin.listen",
            format!("cannot bind {}: {e}", cfg.admin.listen),
        )
    })?;
    Ok(Bound {
        gate: server::Listener {
            listener: gate,
            tls,
            cert,
        },
        admin,
    })
}

/// Run the gate until `shutdown` begins, then drain and return: report not
/// ready and keep serving for `server.drain_delay` (every HTTP/1.1 answer
/// with `Connection: close`), then close the listener, let in-flight requests
/// finish within `server.shutdown_grace` and close websockets with 1001.
pub async fn run(
    cfg: Config,
    bound: Bound,
    store: Store,
    key: Arc<SecretKey>,
    shutdown: impl Into<Shutdown>,
) -> anyhow::Result<()> {
    let shutdown = shutdown.into();
    // Everything stops on `stop`; it fires after the drain delay.
    let stop = CancellationToken::new();
    let metrics = Arc::new(Metrics::new());
    let readiness = Arc::new(Readiness::default());
    let revoked = RevokedSet::new();
    let client = crate::upstream::build(&cfg.proxy, &cfg.upstream).context("upstream client")?;
    let watched = watched_files(&cfg, &bound, &client, &store);
    let capturer = Capturer::new(&cfg, store.clone(), revoked.clone(), metrics.clone());
    let verifier = cfg
        .logout
        .verify_unknown_tokens
        .then(|| UpstreamVerifier::new(&cfg, client.clone(), metrics.clone()));
    let caller = CallerAuth::new(store.clone(), revoked.clone(), verifier, capturer.clone());
    let logout = LogoutApi::new(
        &cfg,
        store.clone(),
        key.clone(),
        revoked.clone(),
        metrics.clone(),
        caller.clone(),
    );
    let devices = cfg.devices.answer.then(|| {
        DevicesApi::new(
            &cfg,
            store.clone(),
            key,
            revoked.clone(),
            caller,
            metrics.clone(),
        )
    });
    let handlers = Handlers {
        logout,
        devices,
        capturer,
    };
    let gate = Arc::new(Gate::new(
        &cfg,
        client,
        revoked.clone(),
        metrics.clone(),
        handlers,
    ));
    // The revoked set must be loaded before /readyz says yes.
    let sync_task = tokio::spawn(revocation::sync::run(
        store,
        revoked,
        metrics.clone(),
        readiness.clone(),
        stop.clone(),
    ));

    let admin_task = tokio::spawn(admin::serve(
        bound.admin,
        metrics.clone(),
        readiness.clone(),
        stop.clone(),
    ));
    tokio::spawn(crate::reload::watch(watched, metrics.clone(), stop.clone()));
    tokio::spawn(drain_sequence(
        shutdown,
        readiness.clone(),
        gate.clone(),
        cfg.server.drain_delay,
        stop.clone(),
    ));
    tracing::info!(
        listen = %cfg.listen,
        admin = %cfg.admin.listen,
        upstream = %format!("{}://{}", cfg.upstream.scheme, cfg.upstream.authority),
        tls = cfg.server.tls.is_some(),
        "sessiongate listening"
    );
    readiness.set_listener_bound();
    server::serve(bound.gate, gate, &cfg.server, stop).await;
    let _ = admin_task.await;
    sync_task.abort();
    tracing::info!("drained, exiting");
    Ok(())
}

/// The files re-read while running (`crate::reload`): the listener's
/// certificate and key, `proxy.ca_file` for an https upstream, and
/// `redis.tls_ca_file`.
fn watched_files(
    cfg: &Config,
    bound: &Bound,
    client: &crate::upstream::UpstreamClient,
    store: &Store,
) -> Vec<crate::reload::Watched> {
    let mut watched = Vec::new();
    if let Some(cert) = &bound.gate.cert {
        let cert = cert.clone();
        watched.push(crate::reload::Watched {
            name: "listener",
            files: cert.files().iter().map(|p| p.to_path_buf()).collect(),
            reload: Box::new(move || cert.reload().map_err(|e| e.to_string())),
        });
    }
    if let Some(ca) = cfg
        .proxy
        .ca_file
        .clone()
        .filter(|_| cfg.upstream.is_https())
    {
        let (client, proxy, upstream) = (client.clone(), cfg.proxy.clone(), cfg.upstream.clone());
        watched.push(crate::reload::Watched {
            name: "upstream_ca",
            files: vec![ca],
            reload: Box::new(move || {
                client
                    .reload_tls(&proxy, &upstream)
                    .map_err(|e| e.to_string())
            }),
        });
    }
    if let Some(ca) = cfg.redis.tls_ca_file.clone() {
        let store = store.clone();
        watched.push(crate::reload::Watched {
            name: "redis_ca",
            files: vec![ca],
            reload: Box::new(move || store.reload_tls_ca().map_err(|e| e.to_string())),
        });
    }
    watched
}

/// How the gate is asked to stop: `begin` starts the graceful sequence (not
/// ready, keep serving for `server.drain_delay`, then drain); `now` skips the
/// delay. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Shutdown {
    begin: CancellationToken,
    now: CancellationToken,
}

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    /// Begin a graceful shutdown (what SIGTERM does).
    pub fn begin(&self) {
        self.begin.cancel();
    }

    /// Shut down without the drain delay (what SIGINT or a second SIGTERM
    /// does); in-flight requests still get `server.shutdown_grace`.
    pub fn now(&self) {
        self.begin.cancel();
        self.now.cancel();
    }

    /// SIGTERM begins a graceful shutdown, a second SIGTERM or a SIGINT
    /// (Ctrl-C at a terminal) skips the drain delay.
    pub fn on_signals() -> Self {
        let shutdown = Self::new();
        let trigger = shutdown.clone();
        tokio::spawn(async move {
            let mut signals = Signals::install();
            let mut terminated = false;
            loop {
                match signals.next().await {
                    Signal::Terminate if !terminated => {
                        terminated = true;
                        tracing::info!("SIGTERM: draining (not ready, still serving)");
                        trigger.begin();
                    }
                    Signal::Terminate | Signal::Interrupt => {
                        tracing::info!("shutdown signal received, draining now");
                        trigger.now();
                        return;
                    }
                }
            }
        });
        shutdown
    }
}

/// A token alone begins a graceful shutdown when cancelled.
impl From<CancellationToken> for Shutdown {
    fn from(begin: CancellationToken) -> Self {
        Self {
            begin,
            now: CancellationToken::new(),
        }
    }
}

/// SIGTERM or SIGINT: a graceful shutdown begins (kept for callers that hold
/// a token; see [`Shutdown::on_signals`]).
pub fn shutdown_on_signals() -> Shutdown {
    Shutdown::on_signals()
}

/// From `shutdown` beginning to `stop`: not ready at once (a Kubernetes
/// Service or a load balancer polling `/readyz` stops sending), HTTP/1.1
/// answers close their connections (clients reconnect elsewhere), and the
/// listener keeps serving for `delay` unless told to stop now.
async fn drain_sequence(
    shutdown: Shutdown,
    readiness: Arc<Readiness>,
    gate: Arc<Gate>,
    delay: std::time::Duration,
    stop: CancellationToken,
) {
    shutdown.begin.cancelled().await;
    readiness.set_draining();
    gate.set_draining();
    if !delay.is_zero() {
        tracing::info!(
            delay_ms = delay.as_millis() as u64,
            "not ready; serving until the listener closes"
        );
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.now.cancelled() => {}
        }
    }
    stop.cancel();
}

enum Signal {
    Terminate,
    Interrupt,
}

/// SIGTERM and SIGINT, installed once so none is missed between two waits.
struct Signals {
    #[cfg(unix)]
    streams: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    #[cfg(unix)]
    fn install() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        let streams = signal(SignalKind::terminate())
            .and_then(|term| Ok((term, signal(SignalKind::interrupt())?)))
            .ok();
        Self { streams }
    }

    #[cfg(not(unix))]
    fn install() -> Self {
        Self {}
    }

    #[cfg(unix)]
    async fn next(&mut self) -> Signal {
        let Some((term, int)) = &mut self.streams else {
            // Without handlers the process still dies on SIGTERM, undrained.
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => Signal::Terminate,
            _ = int.recv() => Signal::Interrupt,
        }
    }

    #[cfg(not(unix))]
    async fn next(&mut self) -> Signal {
        match tokio::signal::ctrl_c().await {
            Ok(()) => Signal::Interrupt,
            Err(_) => std::future::pending().await,
        }
    }
}
