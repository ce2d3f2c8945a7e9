//! Admin listener: `/healthz` (alive), `/readyz` (ready to enforce), `/metrics`.
//!
//! What they report lives in [`crate::metrics`] (counters and the readiness
//! latch); this module only serves it.

use std::convert::Infallible;
use std::sync::Arc;

use http::{Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use crate::metrics::{Metrics, Readiness};

use crate::body::{Body, full};

/// Serve the admin endpoints until `shutdown` fires.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    shutdown: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.cancelled() => return,
        };
        let Ok((stream, _)) = accepted else { continue };
        let metrics = metrics.clone();
        let readiness = readiness.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let response = answer(&req, &metrics, &readiness);
                async move { Ok::<_, Infallible>(response) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(5))
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn answer(req: &Request<Incoming>, metrics: &Metrics, readiness: &Readiness) -> Response<Body> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => {
            if readiness.is_ready() {
                text(StatusCode::OK, "ready\n")
            } else if readiness.draining() {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not ready: shutting down\n",
                )
            } else if !readiness.revocations_synced() {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not ready: revoked set not yet synced from Redis\n",
                )
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not ready: listener not bound\n",
                )
            }
        }
        "/metrics" => {
            let mut response = text(StatusCode::OK, metrics_text(metrics, readiness));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            response
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// The exposition, with `sessiongate_ready` brought up to date first.
fn metrics_text(metrics: &Metrics, readiness: &Readiness) -> String {
    metrics.ready.set(i64::from(readiness.is_ready()));
    metrics.encode()
}

fn text(status: StatusCode, body: impl Into<bytes::Bytes>) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_gauge_follows_the_latch() {
        let metrics = Metrics::new();
        let readiness = Readiness::default();
        assert!(metrics_text(&metrics, &readiness).contains("\nsessiongate_ready 0\n"));
        readiness.set_listener_bound();
        assert!(metrics_text(&metrics, &readiness).contains("\nsessiongate_ready 0\n"));
        readiness.set_revocations_synced();
        assert!(metrics_text(&metrics, &readiness).contains("\nsessiongate_ready 1\n"));
    }
}
