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
    let tls = match &cfg.server.tls {
        Some(files) => Some(TlsAcceptor::from(server::tls::server_config(files)?)),
        None => None,
    };
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
        },
        admin,
    })
}

/// Run the gate until `shutdown` fires, then drain and return.
pub async fn run(
    cfg: Config,
    bound: Bound,
    store: Store,
    key: Arc<SecretKey>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::new());
    let readiness = Arc::new(Readiness::default());
    let revoked = RevokedSet::new();
    let client = crate::upstream::build(&cfg.proxy, &cfg.upstream).context("upstream client")?;
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
        shutdown.clone(),
    ));

    let admin_task = tokio::spawn(admin::serve(
        bound.admin,
        metrics.clone(),
        readiness.clone(),
        shutdown.clone(),
    ));
    tracing::info!(
        listen = %cfg.listen,
        admin = %cfg.admin.listen,
        upstream = %format!("{}://{}", cfg.upstream.scheme, cfg.upstream.authority),
        tls = cfg.server.tls.is_some(),
        "sessiongate listening"
    );
    readiness.set_listener_bound();
    server::serve(bound.gate, gate, &cfg.server, shutdown.clone()).await;
    let _ = admin_task.await;
    sync_task.abort();
    tracing::info!("drained, exiting");
    Ok(())
}

/// SIGTERM or SIGINT cancels the token.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown signal received, draining");
        trigger.cancel();
    });
    token
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the process still dies on SIGTERM, undrained.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
