//! The upstream connection pool: HTTP/1.1 to the one configured upstream,
//! plain or rustls.
//!
//! Rocket.Chat (Node) speaks HTTP/1.1 and websockets need it, so the pool
//! holds HTTP/1.1 connections only and skips what a general-purpose client
//! pays on every request (pool keys, absolute-URI rewriting, a spawned task
//! per answer). A connection goes back to the idle stack only when its answer
//! has been read to the end and it is ready for the next request, so a
//! connection taken from the stack is free and a request never waits on one;
//! the most recently used one is taken first (warm, least likely to have hit
//! the upstream's keep-alive timer). Idle connections close after
//! `proxy.pool_idle_timeout` (default 4 s, below Node's 5 s keep-alive).

use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use tower_service::Service;

use crate::body::Body;
use crate::config::{ProxyConfig, Upstream};
use crate::swap::Swap;

/// Idle connections kept at most; more are closed when they come back.
const MAX_IDLE: usize = 1024;

/// How long a finished answer's connection may take to become ready for the
/// next request before it is closed instead of pooled.
const READY_GRACE: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("proxy.ca_file: {0}")]
    CaFile(String),
    #[error("no usable root certificates for an https upstream")]
    NoRoots,
}

/// Why a request got no answer from the upstream.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No connection could be made (refused, unreachable, TLS, timeout).
    #[error("connect: {0}")]
    Connect(crate::body::BoxError),
    /// The request was sent but the connection failed before an answer.
    /// `reused`: it was a pooled connection, so the upstream may have closed
    /// it idle just as the request arrived (nothing was processed).
    #[error("request: {source}")]
    Request {
        #[source]
        source: hyper::Error,
        reused: bool,
    },
}

impl SendError {
    pub fn is_connect(&self) -> bool {
        matches!(self, SendError::Connect(_))
    }

    /// Lost on a pooled connection the upstream closed before answering.
    pub fn is_stale_connection(&self) -> bool {
        match self {
            SendError::Request { source, reused } => {
                *reused
                    && (source.is_incomplete_message()
                        || source.is_canceled()
                        || source.is_closed())
            }
            SendError::Connect(_) => false,
        }
    }
}

/// Cheap to clone: every clone shares the idle stack.
#[derive(Clone)]
pub struct UpstreamClient {
    inner: Arc<Inner>,
}

struct Inner {
    /// Replaced when `proxy.ca_file` changes ([`UpstreamClient::reload_tls`]);
    /// read (a clone of two `Arc`s) once per new connection only.
    connector: Swap<HttpsConnector<HttpConnector>>,
    /// `scheme://authority` of the upstream: what the connector dials.
    target: Uri,
    idle: Mutex<Vec<Idle>>,
    idle_timeout: Duration,
}

struct Idle {
    sender: SendRequest<Body>,
    since: Instant,
}

/// Build the pool. Requests must carry an origin-form URI (path and query):
/// every connection goes to `upstream`.
pub fn build(cfg: &ProxyConfig, upstream: &Upstream) -> Result<UpstreamClient, ClientError> {
    let connector = connector(cfg, upstream)?;
    let target = Uri::builder()
        .scheme(upstream.scheme.clone())
        .authority(upstream.authority.clone())
        .path_and_query("/")
        .build()
        .unwrap_or_default();
    let inner = Arc::new(Inner {
        connector: Swap::new(connector),
        target,
        idle: Mutex::new(Vec::new()),
        idle_timeout: cfg.pool_idle_timeout,
    });
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(close_expired(Arc::downgrade(&inner)));
    }
    Ok(UpstreamClient { inner })
}

impl UpstreamClient {
    /// Read `proxy.ca_file` again: new connections verify the upstream with
    /// the new roots; pooled and open ones are unaffected. On error the
    /// previous roots stay.
    pub fn reload_tls(&self, cfg: &ProxyConfig, upstream: &Upstream) -> Result<(), ClientError> {
        self.inner.connector.set(connector(cfg, upstream)?);
        Ok(())
    }

    /// Send one request and return the answer head; its body streams from
    /// the connection, which returns to the pool once the body is read.
    pub async fn request(
        &self,
        mut req: Request<Body>,
    ) -> Result<Response<UpstreamBody>, SendError> {
        loop {
            let (mut sender, reused) = match self.checkout() {
                Some(sender) => (sender, true),
                // Boxed: dialling (DNS, TLS) is rare and its future is large.
                None => (Box::pin(self.connect()).await?, false),
            };
            match sender.try_send_request(req).await {
                Ok(response) => return Ok(self.lease(sender, response)),
                Err(mut e) => match e.take_message() {
                    // Never written: the pooled connection closed under it.
                    // Another one (or a fresh one) gets the same request.
                    Some(unsent) if reused => req = unsent,
                    _ => {
                        return Err(SendError::Request {
                            source: e.into_error(),
                            reused,
                        });
                    }
                },
            }
        }
    }

    /// A ready idle connection, most recently used first. Never waits: one
    /// that is not ready now (closed by the upstream meanwhile) is dropped.
    fn checkout(&self) -> Option<SendRequest<Body>> {
        let mut idle = self.lock_idle();
        while let Some(candidate) = idle.pop() {
            if candidate.since.elapsed() >= self.inner.idle_timeout {
                // The newest is too old: so is every other one.
                idle.clear();
                return None;
            }
            if candidate.sender.is_ready() {
                return Some(candidate.sender);
            }
        }
        None
    }

    async fn connect(&self) -> Result<SendRequest<Body>, SendError> {
        let mut connector = self.inner.connector.get();
        let io = connector
            .call(self.inner.target.clone())
            .await
            .map_err(SendError::Connect)?;
        let (sender, connection) = http1::Builder::new()
            .handshake(io)
            .await
            .map_err(|e| SendError::Connect(e.into()))?;
        tokio::spawn(async move {
            if let Err(e) = connection.with_upgrades().await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }

    fn lease(
        &self,
        sender: SendRequest<Body>,
        response: Response<Incoming>,
    ) -> Response<UpstreamBody> {
        // After a 101 the connection belongs to the upgraded tunnel.
        let reusable = response.status() != StatusCode::SWITCHING_PROTOCOLS;
        response.map(|body| UpstreamBody {
            body,
            lease: reusable.then(|| Lease {
                sender,
                pool: Arc::downgrade(&self.inner),
            }),
        })
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        lock(&self.inner.idle)
    }
}

fn lock(idle: &Mutex<Vec<Idle>>) -> std::sync::MutexGuard<'_, Vec<Idle>> {
    // Pushing and popping cannot leave the stack inconsistent.
    idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Close idle connections past the idle timeout, so a quiet gate does not
/// hold upstream sockets open.
async fn close_expired(pool: Weak<Inner>) {
    let period = match pool.upgrade() {
        Some(inner) => inner.idle_timeout.max(Duration::from_millis(100)),
        None => return,
    };
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = pool.upgrade() else { return };
        let mut idle = lock(&inner.idle);
        // Oldest first: keep the suffix still within the timeout.
        let keep_from = idle
            .iter()
            .position(|i| i.since.elapsed() < inner.idle_timeout)
            .unwrap_or(idle.len());
        idle.drain(..keep_from);
        idle.retain(|i| !i.sender.is_closed());
    }
}

struct Lease {
    sender: SendRequest<Body>,
    pool: Weak<Inner>,
}

/// An upstream answer's body. When it is dropped after its end, the
/// connection goes back to the pool; dropped earlier (client gone, body
/// abandoned), the connection closes.
pub struct UpstreamBody {
    body: Incoming,
    lease: Option<Lease>,
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        use http_body::Body as _;
        let Some(lease) = self.lease.take() else {
            return;
        };
        if !self.body.is_end_stream() {
            return;
        }
        if lease.sender.is_ready() {
            lease.put_back();
            return;
        }
        // Only a connection ready for the next request goes back, so no
        // request ever waits on one. Not ready yet: its connection task is a
        // step behind (running on another worker), or the upstream answered
        // before reading the whole request body, which is still being sent.
        // Wait briefly off the request path; still busy after that, it closes.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let mut lease = lease;
            if let Ok(Ok(())) = tokio::time::timeout(READY_GRACE, lease.sender.ready()).await {
                lease.put_back();
            }
        });
    }
}

impl Lease {
    fn put_back(self) {
        if let Some(pool) = self.pool.upgrade() {
            let mut idle = lock(&pool.idle);
            if idle.len() < MAX_IDLE {
                idle.push(Idle {
                    sender: self.sender,
                    since: Instant::now(),
                });
            }
        }
    }
}

impl http_body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The connector for `upstream`: TCP (nodelay, keepalive, connect timeout),
/// then rustls for an https upstream with the system roots and `proxy.ca_file`.
fn connector(
    cfg: &ProxyConfig,
    upstream: &Upstream,
) -> Result<HttpsConnector<HttpConnector>, ClientError> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(cfg.connect_timeout));
    http.set_keepalive(Some(Duration::from_secs(30)));
    let tls = tls_config(cfg, upstream.is_https())?;
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http))
}

fn tls_config(cfg: &ProxyConfig, https: bool) -> Result<rustls::ClientConfig, ClientError> {
    let mut roots = rustls::RootCertStore::empty();
    if https {
        let native = rustls_native_certs::load_native_certs();
        for cert in native.certs {
            let _ = roots.add(cert);
        }
    }
    if let Some(path) = &cfg.ca_file {
        use rustls_pki_types::{CertificateDer, pem::PemObject};
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| ClientError::CaFile(format!("cannot read {}: {e}", path.display())))?;
        for cert in certs {
            let cert = cert.map_err(|e| ClientError::CaFile(format!("{}: {e}", path.display())))?;
            roots
                .add(cert)
                .map_err(|e| ClientError::CaFile(format!("{}: {e}", path.display())))?;
        }
    }
    if https && roots.is_empty() {
        return Err(ClientError::NoRoots);
    }
    Ok(rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth())
}
