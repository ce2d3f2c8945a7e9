//! The client listener: accept loop, connection limit, TLS, HTTP/1.1 + HTTP/2
//! (prior knowledge and ALPN) on hyper-util's auto builder, graceful drain.

pub mod framing;
pub mod tls;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::config::ServerConfig;
use crate::conn::ConnInfo;
use crate::proxy::Gate;

/// Bound on a client's TLS handshake (slowloris at the TLS layer).
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Listener {
    pub listener: TcpListener,
    pub tls: Option<TlsAcceptor>,
    /// The certificate behind `tls`, reloadable while running.
    pub cert: Option<std::sync::Arc<tls::ListenerCert>>,
}

/// Accept connections until `shutdown`, then drain: in-flight requests and
/// streams get up to `cfg.shutdown_grace` to finish. Returns when drained.
pub async fn serve(
    listener: Listener,
    gate: Arc<Gate>,
    cfg: &ServerConfig,
    shutdown: CancellationToken,
) {
    let limit = Arc::new(Semaphore::new(cfg.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(cfg.header_read_timeout)
        .keep_alive(true)
        .max_headers(200);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256)
        .max_header_list_size(64 * 1024)
        .keep_alive_interval(Some(Duration::from_secs(30)));
    let builder = Arc::new(builder);

    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            gate.metrics().refused_connections.inc();
            tokio::spawn(refuse(stream));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let trusted = cfg
            .trusted_proxies
            .iter()
            .any(|net| net.contains(&peer.ip()));
        let conn = ConnInfo::new(peer, listener.tls.is_some(), trusted);
        let framing = conn.framing.clone();
        let gate = gate.clone();
        let builder = builder.clone();
        let tls = listener.tls.clone();
        let watcher = graceful.watcher();
        // Every line logged while serving this connection (its requests and
        // websocket tunnel included) names the peer and whether it is TLS.
        let span = tracing::info_span!("conn", peer = %conn.peer, tls = conn.tls);
        let connection_task = async move {
            let _permit = permit;
            gate.metrics().open_connections.inc();
            let service = {
                let gate = gate.clone();
                let conn = conn.clone();
                service_fn(move |req| {
                    let gate = gate.clone();
                    let conn = conn.clone();
                    async move { Ok::<_, Infallible>(gate.handle(req, conn).await) }
                })
            };
            let result = match tls {
                None => {
                    let connection = builder.serve_connection_with_upgrades(
                        TokioIo::new(framing::FramingGuard::new(stream, framing)),
                        service,
                    );
                    watcher.watch(connection.into_owned()).await
                }
                Some(acceptor) => {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                    {
                        Ok(Ok(tls_stream)) => {
                            // The smuggling guard reads the decrypted bytes, as on plain TCP.
                            let guarded = framing::FramingGuard::new(tls_stream, framing);
                            let connection = builder
                                .serve_connection_with_upgrades(TokioIo::new(guarded), service);
                            watcher.watch(connection.into_owned()).await
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, "TLS handshake failed");
                            Ok(())
                        }
                        Err(_) => Ok(()),
                    }
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            gate.metrics().open_connections.dec();
        };
        tokio::spawn(tracing::Instrument::instrument(connection_task, span));
    }
    drop(listener);

    // Websockets live for hours: they get a 1001 "going away" at once and the
    // client reconnects to another replica; requests get the grace period.
    gate.close_tunnels();
    gate.tunnels().close();
    let grace = cfg.shutdown_grace;
    let drained = tokio::time::timeout(grace, async {
        graceful.shutdown().await;
        gate.tunnels().wait().await;
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            grace_secs = grace.as_secs(),
            "drain deadline passed; closing what is left"
        );
    }
}

async fn refuse(mut stream: TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream
            .write_all(crate::answers::OVER_CONNECTION_LIMIT)
            .await;
        let _ = stream.shutdown().await;
    })
    .await;
}
