//! The request pipeline: classify → gate (answer | forward) → prepare the
//! upstream request → send → relay the answer → record.
//!
//! The hot path consults only the in-memory [`RevokedSet`]; it never waits on
//! Redis. Forwarded bodies stream through untouched in both directions.

pub mod client;
pub mod error;
pub mod headers;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::Metrics;
use crate::api::LogoutApi;
use crate::api::error::{ApiError, json_response};
use crate::auth::hash_token;
use crate::body::{Body, boxed, full};
use crate::config::{Config, Upstream};
use crate::revocation::RevokedSet;
use crate::route::{self, Route};
use crate::ws;

pub use error::ProxyError;

/// Facts about the client connection a request arrived on.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub tls: bool,
    /// The peer is a configured trusted proxy: its X-Forwarded-* are kept.
    pub trusted: bool,
    /// Request-smuggling verdicts from the raw byte watcher.
    pub framing: Arc<crate::server::framing::ConnFraming>,
}

/// Everything a request needs, shared by all connections.
pub struct Gate {
    upstream: Upstream,
    client: client::UpstreamClient,
    response_timeout: Duration,
    max_inspect_bytes: usize,
    revoked: RevokedSet,
    metrics: Arc<Metrics>,
    logout: LogoutApi,
    /// Upgraded websocket tunnels escape hyper's graceful shutdown: tracked here.
    tunnels: TaskTracker,
    tunnel_shutdown: CancellationToken,
}

/// Cookies that carry a Rocket.Chat web session.
const SESSION_COOKIES: [&str; 2] = ["rc_token", "rc_uid"];

impl Gate {
    pub fn new(
        cfg: &Config,
        revoked: RevokedSet,
        metrics: Arc<Metrics>,
        logout: LogoutApi,
    ) -> Result<Self, client::ClientError> {
        Ok(Self {
            upstream: cfg.upstream.clone(),
            client: client::build(&cfg.proxy, cfg.upstream.is_https())?,
            response_timeout: cfg.proxy.response_timeout,
            max_inspect_bytes: cfg.proxy.max_inspect_bytes,
            revoked,
            metrics,
            logout,
            tunnels: TaskTracker::new(),
            tunnel_shutdown: CancellationToken::new(),
        })
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Websocket tunnels still open.
    pub fn tunnels(&self) -> &TaskTracker {
        &self.tunnels
    }

    /// Ask every open tunnel to close (1001 going away).
    pub fn close_tunnels(&self) {
        self.tunnel_shutdown.cancel();
    }

    /// Answer one request. Never fails: every error becomes a response.
    pub async fn handle(&self, req: Request<Incoming>, conn: ConnInfo) -> Response<Body> {
        let start = Instant::now();
        let route = route::classify(req.method(), req.uri(), req.headers());
        // Counted for every request, in order: the byte watcher flags by index.
        let ambiguous = conn.framing.next_request_is_ambiguous();
        let framing = match headers::check_framing(req.headers()) {
            Ok(()) if ambiguous => Err(headers::Smuggling::ContentLengthAndTransferEncoding),
            other => other,
        };
        let response = match framing {
            Err(smuggling) => {
                tracing::info!(peer = %conn.peer, ?smuggling, "refused ambiguous request framing");
                ProxyError::AmbiguousFraming.into_response()
            }
            Ok(()) => self.dispatch(req, route, conn).await,
        };
        self.metrics.record_request(
            route.label(),
            response.status().as_u16(),
            start.elapsed().as_secs_f64(),
        );
        response
    }

    async fn dispatch(
        &self,
        req: Request<Incoming>,
        route: Route,
        conn: ConnInfo,
    ) -> Response<Body> {
        match route {
            Route::SessionsLogout => self.logout.handle(req, conn).await,
            Route::SockJsSend => self.forward_sockjs_send(req, conn).await,
            _ => self.forward(req, conn).await,
        }
    }

    /// Enforce revocation on the request's token and cookie. `Err` is the
    /// answer to send instead of forwarding.
    fn enforce(
        &self,
        req: &mut Request<Incoming>,
    ) -> Result<Option<crate::auth::TokenHash>, ApiError> {
        if self.revoked.is_empty() {
            return Ok(cookie_token(req.headers()));
        }
        let header_revoked = req
            .headers()
            .get_all("x-auth-token")
            .iter()
            .any(|v| self.revoked.contains(&hash_token_bytes(v.as_bytes())));
        if header_revoked {
            self.metrics
                .revoked_requests
                .get_or_create(&crate::admin::metrics::KindLabel { kind: "header" })
                .inc();
            return Err(ApiError::Unauthorized);
        }
        let cookie_revoked = headers::cookie_values(req.headers(), "rc_token")
            .iter()
            .any(|token| self.revoked.contains(&hash_token(token)));
        if cookie_revoked {
            // A browser keeps the cookie after a forced logout; forwarding it as
            // anonymous lets the web client reach its login page (SPEC §3).
            self.metrics
                .revoked_requests
                .get_or_create(&crate::admin::metrics::KindLabel { kind: "cookie" })
                .inc();
            headers::strip_cookies(req.headers_mut(), &SESSION_COOKIES);
            return Ok(None);
        }
        Ok(cookie_token(req.headers()))
    }

    async fn forward(&self, mut req: Request<Incoming>, conn: ConnInfo) -> Response<Body> {
        let cookie_token = match self.enforce(&mut req) {
            Ok(token) => token,
            Err(refusal) => return refusal.into_response(),
        };
        let websocket =
            req.version() == Version::HTTP_11 && headers::is_websocket_upgrade(req.headers());
        if websocket {
            return self.forward_websocket(req, conn, cookie_token).await;
        }
        let upstream_req = match self.prepare(req, &conn, false) {
            Ok(r) => r,
            Err(e) => return e.into_response(),
        };
        match self.send(upstream_req).await {
            Ok(response) => relay(response, false),
            Err(e) => e.into_response(),
        }
    }

    /// Turn the client's request head into the upstream's: absolute URI,
    /// hop-by-hop removed, X-Forwarded-*, Host kept (set from :authority for HTTP/2).
    fn prepare_head(
        &self,
        parts: &mut http::request::Parts,
        conn: &ConnInfo,
        websocket: bool,
    ) -> Result<(), ProxyError> {
        let host = parts.headers.get(header::HOST).cloned().or_else(|| {
            parts
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        });
        let path_and_query = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
        parts.uri = Uri::builder()
            .scheme(self.upstream.scheme.clone())
            .authority(self.upstream.authority.clone())
            .path_and_query(path_and_query)
            .build()
            .map_err(|_| ProxyError::BadRequest)?;
        headers::strip_hop_by_hop(&mut parts.headers, websocket);
        // HTTP2-Settings travels with an h2c upgrade offer, which is never honoured.
        parts.headers.remove("http2-settings");
        if websocket {
            // Compression would hide DDP frames from inspection; without the
            // offer both ends talk uncompressed (SPEC §8 trade-off).
            parts.headers.remove(header::SEC_WEBSOCKET_EXTENSIONS);
        }
        headers::set_forwarded(
            &mut parts.headers,
            conn.peer.ip(),
            conn.tls,
            host.as_ref(),
            conn.trusted,
        );
        if let Some(host) = host {
            parts.headers.insert(header::HOST, host);
        }
        parts.version = Version::HTTP_11;
        Ok(())
    }

    fn prepare(
        &self,
        req: Request<Incoming>,
        conn: &ConnInfo,
        websocket: bool,
    ) -> Result<Request<Body>, ProxyError> {
        let (mut parts, body) = req.into_parts();
        self.prepare_head(&mut parts, conn, websocket)?;
        Ok(Request::from_parts(parts, boxed(body)))
    }

    async fn send(&self, req: Request<Body>) -> Result<Response<Incoming>, ProxyError> {
        match tokio::time::timeout(self.response_timeout, self.client.request(req)).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => {
                let kind = if e.is_connect() { "connect" } else { "request" };
                self.metrics.upstream_error(kind);
                tracing::warn!(kind, error = %error_chain(&e), "upstream request failed");
                Err(ProxyError::Upstream)
            }
            Err(_) => {
                self.metrics.upstream_error("timeout");
                tracing::warn!(
                    timeout_ms = self.response_timeout.as_millis() as u64,
                    "upstream response timed out"
                );
                Err(ProxyError::UpstreamTimeout)
            }
        }
    }

    async fn forward_websocket(
        &self,
        mut req: Request<Incoming>,
        conn: ConnInfo,
        cookie_token: Option<crate::auth::TokenHash>,
    ) -> Response<Body> {
        let sockjs = req.uri().path().starts_with("/sockjs/");
        let client_upgrade = hyper::upgrade::on(&mut req);
        let upstream_req = match self.prepare(req, &conn, true) {
            Ok(r) => r,
            Err(e) => return e.into_response(),
        };
        let mut response = match self.send(upstream_req).await {
            Ok(r) => r,
            Err(e) => return e.into_response(),
        };
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            return relay(response, false);
        }
        let upstream_upgrade = hyper::upgrade::on(&mut response);
        let revoked = self.revoked.clone();
        let metrics = self.metrics.clone();
        let shutdown = self.tunnel_shutdown.clone();
        let max_inspect_bytes = self.max_inspect_bytes;
        self.tunnels.spawn(async move {
            let (client, upstream) = match tokio::try_join!(client_upgrade, upstream_upgrade) {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::debug!(error = %e, "websocket upgrade did not complete");
                    return;
                }
            };
            metrics.websockets_open.inc();
            let cfg = ws::pump::TunnelConfig {
                sockjs,
                cookie_token,
                max_inspect_bytes,
            };
            let end = ws::pump::tunnel(
                TokioIo::new(client),
                TokioIo::new(upstream),
                cfg,
                revoked,
                shutdown,
            )
            .await;
            metrics.websockets_open.dec();
            if matches!(end, ws::pump::TunnelEnd::Revoked) {
                metrics.websockets_closed_by_revocation.inc();
                tracing::info!(peer = %conn.peer, "websocket closed: its session was revoked");
            }
        });
        relay(response, true)
    }

    /// SockJS `xhr_send` carries DDP messages in an HTTP body: a revoked resume
    /// login hidden there is refused like one on a websocket (SPEC §8). The body
    /// is small by protocol; it is read up to the inspection bound.
    async fn forward_sockjs_send(
        &self,
        mut req: Request<Incoming>,
        conn: ConnInfo,
    ) -> Response<Body> {
        if let Err(refusal) = self.enforce(&mut req) {
            return refusal.into_response();
        }
        let (parts, body) = req.into_parts();
        let limited = http_body_util::Limited::new(body, self.max_inspect_bytes);
        let bytes: Bytes = match limited.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return ApiError::BodyTooLarge.into_response();
            }
            Err(_) => return ProxyError::BadRequest.into_response(),
        };
        let revoked_login = ws::ddp::resume_logins(&String::from_utf8_lossy(&bytes), true)
            .iter()
            .any(|login| self.revoked.contains(&hash_token(&login.token)));
        if revoked_login {
            self.metrics
                .revoked_requests
                .get_or_create(&crate::admin::metrics::KindLabel { kind: "sockjs" })
                .inc();
            return json_response(StatusCode::FORBIDDEN, ws::ddp::LOGGED_OUT_ERROR);
        }
        let mut parts = parts;
        if let Err(e) = self.prepare_head(&mut parts, &conn, false) {
            return e.into_response();
        }
        // The body is now whole: send it with a Content-Length.
        parts.headers.remove(header::TRANSFER_ENCODING);
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
        match self.send(Request::from_parts(parts, full(bytes))).await {
            Ok(response) => relay(response, false),
            Err(e) => e.into_response(),
        }
    }
}

/// The upstream's answer for the client: status, headers and body unchanged
/// except hop-by-hop fields (the upgrade handshake kept on a 101).
fn relay(response: Response<Incoming>, upgrade: bool) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers, upgrade);
    // The client's connection has its own version; hyper picks the framing.
    parts.version = Version::default();
    if upgrade {
        return Response::from_parts(parts, crate::body::empty());
    }
    Response::from_parts(parts, boxed(body))
}

fn cookie_token(headers: &http::HeaderMap) -> Option<crate::auth::TokenHash> {
    headers::cookie_values(headers, "rc_token")
        .first()
        .map(|token| hash_token(token))
}

fn hash_token_bytes(bytes: &[u8]) -> crate::auth::TokenHash {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).into()
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}
