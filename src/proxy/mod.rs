//! The request pipeline: classify → gate (answer | forward) → prepare the
//! upstream request → send → relay the answer → record.
//!
//! The hot path consults only the in-memory [`RevokedSet`]; it never waits on
//! Redis. Forwarded bodies stream through untouched in both directions. Two
//! forwarded routes are watched on the way back: a successful login answer
//! is captured before it is relayed ([`crate::capture`]), and a successful
//! `POST /api/v1/logout` logs that session out here too.

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

use crate::answers::{ApiError, ProxyError};
use crate::api::{DevicesApi, LogoutApi};
use crate::auth::hash_token;
use crate::body::{Body, boxed, full};
use crate::capture::{Capturer, ClientFacts};
use crate::config::Config;
use crate::conn::ConnInfo;
use crate::headers::{self, query};
use crate::metrics::Metrics;
use crate::revocation::RevokedSet;
use crate::route::{self, Route};
use crate::upstream::{UpstreamBody, UpstreamClient};
use crate::{tunnel, ws};

/// Everything a request needs, shared by all connections.
pub struct Gate {
    client: UpstreamClient,
    /// Host sent upstream when the client sent none (HTTP/1.0).
    upstream_host: HeaderValue,
    response_timeout: Duration,
    max_inspect_bytes: usize,
    websocket_idle_timeout: Option<Duration>,
    revoked: RevokedSet,
    metrics: Arc<Metrics>,
    logout: LogoutApi,
    /// `None` when `devices.answer` is off: those routes are forwarded.
    devices: Option<DevicesApi>,
    capturer: Capturer,
    /// Upgraded websocket tunnels escape hyper's graceful shutdown: tracked here.
    tunnels: TaskTracker,
    tunnel_shutdown: CancellationToken,
    /// Set once shutdown begins ([`Gate::set_draining`]).
    draining: std::sync::atomic::AtomicBool,
}

/// Cookies that carry a Rocket.Chat web session.
const SESSION_COOKIES: [&str; 2] = ["rc_token", "rc_uid"];

/// The parts of the gate that answer or watch requests themselves.
pub struct Handlers {
    pub logout: LogoutApi,
    /// `None` forwards the device-management routes (`devices.answer = false`).
    pub devices: Option<DevicesApi>,
    pub capturer: Capturer,
}

impl Gate {
    /// `client` is the pooled upstream client (shared with the token verifier).
    pub fn new(
        cfg: &Config,
        client: UpstreamClient,
        revoked: RevokedSet,
        metrics: Arc<Metrics>,
        handlers: Handlers,
    ) -> Self {
        Self {
            client,
            // A validated upstream authority is always a valid header value.
            upstream_host: HeaderValue::from_str(cfg.upstream.authority.as_str())
                .unwrap_or_else(|_| HeaderValue::from_static("localhost")),
            response_timeout: cfg.proxy.response_timeout,
            max_inspect_bytes: cfg.proxy.max_inspect_bytes,
            websocket_idle_timeout: cfg.proxy.websocket_idle_timeout,
            revoked,
            metrics,
            logout: handlers.logout,
            devices: handlers.devices,
            capturer: handlers.capturer,
            tunnels: TaskTracker::new(),
            tunnel_shutdown: CancellationToken::new(),
            draining: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Websocket tunnels still open.
    pub fn tunnels(&self) -> &TaskTracker {
        &self.tunnels
    }

    /// The gate is shutting down: from now on every HTTP/1.1 answer closes
    /// its connection, so clients reconnect (to another replica) instead of
    /// reusing a connection the listener is about to drop.
    pub fn set_draining(&self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Ask every open tunnel to close (1001 going away).
    pub fn close_tunnels(&self) {
        self.tunnel_shutdown.cancel();
    }

    /// Answer one request. Never fails: every error becomes a response.
    pub async fn handle(&self, req: Request<Incoming>, conn: ConnInfo) -> Response<Body> {
        let start = Instant::now();
        let http1 = req.version() <= Version::HTTP_11;
        let route = route::classify(req.method(), req.uri(), req.headers());
        // Counted for every request, in order: the byte watcher flags by index.
        let ambiguous = conn.framing.next_request_is_ambiguous();
        let framing = match headers::check_framing(req.headers()) {
            Ok(()) if ambiguous => Err(headers::Smuggling::ContentLengthAndTransferEncoding),
            other => other,
        };
        // Lines logged while answering name the route. Plain forwarding, the
        // hot path, gets its span only at debug level: an enabled span costs
        // an allocation per request.
        let span = if route == Route::Other {
            tracing::debug_span!("request", route = route.label())
        } else {
            tracing::info_span!("request", route = route.label())
        };
        let mut response = match framing {
            Err(smuggling) => {
                let _entered = span.enter();
                tracing::info!(?smuggling, "refused ambiguous request framing");
                ProxyError::AmbiguousFraming.into_response()
            }
            Ok(()) => tracing::Instrument::instrument(self.dispatch(req, route, conn), span).await,
        };
        self.metrics.record_request(
            route.label(),
            response.status().as_u16(),
            start.elapsed().as_secs_f64(),
        );
        let upgraded = response.status() == StatusCode::SWITCHING_PROTOCOLS;
        if http1 && !upgraded && self.draining.load(std::sync::atomic::Ordering::Relaxed) {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }

    async fn dispatch(
        &self,
        req: Request<Incoming>,
        route: Route,
        conn: ConnInfo,
    ) -> Response<Body> {
        // Only plain forwarding runs inline: the other handlers are boxed so
        // the future hyper moves around for every request stays small.
        match route {
            Route::SessionsLogout => Box::pin(self.logout.handle(req, conn)).await,
            Route::SockJsSend => Box::pin(self.forward_inspected(req, conn, "sockjs")).await,
            Route::MethodCall => Box::pin(self.forward_inspected(req, conn, "rest")).await,
            Route::Login => Box::pin(self.forward_login(req, conn)).await,
            Route::UserLogout => Box::pin(self.forward_user_logout(req, conn)).await,
            Route::DeviceApi(endpoint) => match &self.devices {
                Some(devices) if DevicesApi::answers(endpoint, req.method()) => {
                    Box::pin(devices.handle(endpoint, req, conn)).await
                }
                _ => self.forward(req, conn).await,
            },
            _ => self.forward(req, conn).await,
        }
    }

    /// `POST /api/v1/login`: forwarded; a successful answer is captured as a
    /// session before it is relayed (SPEC §2). The upstream is asked for an
    /// unencoded answer (no `Accept-Encoding`) so the gate can read it: a few
    /// hundred bytes of JSON, once per login.
    async fn forward_login(&self, mut req: Request<Incoming>, conn: ConnInfo) -> Response<Body> {
        let client = ClientFacts::of_request(&req, &conn);
        self.enforce(&mut req, &conn);
        req.headers_mut().remove(header::ACCEPT_ENCODING);
        // A REST login may resume a token (`{"resume": token}`): a revoked
        // one goes upstream as a decoy, so the server refuses it itself.
        let upstream_req = match self.prepare_inspected(req, &conn, "rest").await {
            Ok(prepared) => prepared,
            Err(refusal) => return refusal,
        };
        let response = match self.send(upstream_req).await {
            Ok(response) => response,
            Err(e) => return e.into_response(),
        };
        let response = self
            .capturer
            .inspect_login(response, &client, self.response_timeout)
            .await;
        relay_body(response)
    }

    /// `/api/v1/logout` (POST, GET or HEAD): forwarded; when the upstream's
    /// answer says it logged the caller out, the token is dead there, so the
    /// gate marks the session logged out and refuses the token at once.
    async fn forward_user_logout(
        &self,
        mut req: Request<Incoming>,
        conn: ConnInfo,
    ) -> Response<Body> {
        let credentials = header_str(req.headers(), "x-user-id")
            .zip(header_str(req.headers(), "x-auth-token"))
            .map(|(user, token)| (user.to_string(), zeroize::Zeroizing::new(token.to_string())));
        self.enforce(&mut req, &conn);
        // The answer is read to see whether the server logged the caller out.
        req.headers_mut().remove(header::ACCEPT_ENCODING);
        let upstream_req = self.prepare(req, &conn, false);
        let response = match self.send(upstream_req).await {
            Ok(response) => response,
            Err(e) => return e.into_response(),
        };
        let credentials = credentials
            .as_ref()
            .map(|(user, token)| (user.as_str(), token.as_str()));
        let response = self
            .capturer
            .inspect_user_logout(response, credentials, self.response_timeout)
            .await;
        relay_body(response)
    }

    /// Enforce revocation on every place the request carries a login token
    /// (SPEC §3, §11, §12): a revoked `X-Auth-Token` goes with its
    /// `X-User-Id`, a revoked `rc_token` cookie with `rc_uid`, a revoked
    /// `rc_token` query parameter with `rc_uid`. What is left is forwarded,
    /// so the server answers an anonymous request in its own words (its own
    /// 401 on authenticated endpoints, public ones keep working) and the
    /// revoked token never reaches it.
    fn enforce(&self, req: &mut Request<Incoming>, conn: &ConnInfo) {
        if self.revoked.is_empty() {
            return;
        }
        self.enforce_query(req);
        // Read before the check: an entry added meanwhile bumps it, so the
        // next request on this connection checks afresh.
        let generation = self.revoked.generation();
        if conn.clean.is_clean(generation, req.headers()) {
            return;
        }
        let header_revoked = req.headers().get_all("x-auth-token").iter().any(|v| {
            self.revoked
                .contains(&crate::auth::hash_token_bytes(v.as_bytes()))
        });
        if header_revoked {
            self.count_revoked("header");
            let headers = req.headers_mut();
            headers.remove("x-auth-token");
            headers.remove("x-user-id");
        }
        let cookie_revoked = headers::cookie_values(req.headers(), "rc_token")
            .iter()
            .any(|token| self.revoked.contains(&hash_token(token)));
        if cookie_revoked {
            // A browser keeps the cookie after a forced logout; forwarding it as
            // anonymous lets the web client reach its login page (SPEC §3).
            self.count_revoked("cookie");
            headers::strip_cookies(req.headers_mut(), &SESSION_COOKIES);
        }
        if !header_revoked && !cookie_revoked {
            conn.clean.remember(generation, req.headers());
        }
    }

    /// Remove a revoked `rc_token` query parameter (and `rc_uid`), as
    /// Rocket.Chat's file, avatar and export routes read them before cookies.
    fn enforce_query(&self, req: &mut Request<Incoming>) {
        let Some(query) = req.uri().query().filter(|q| query::may_carry_token(q)) else {
            return;
        };
        let revoked = &self.revoked;
        let Some(kept) =
            query::strip_revoked_tokens(query, |token| revoked.contains(&hash_token(token)))
        else {
            return;
        };
        self.count_revoked("query");
        let path = req.uri().path();
        let target = if kept.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{kept}")
        };
        let mut parts = req.uri().clone().into_parts();
        // Removing whole parameters from a valid query leaves a valid one;
        // should it not, the whole query goes rather than the token.
        parts.path_and_query = Some(
            http::uri::PathAndQuery::try_from(target)
                .or_else(|_| http::uri::PathAndQuery::try_from(path))
                .unwrap_or_else(|_| http::uri::PathAndQuery::from_static("/")),
        );
        if let Ok(uri) = Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }

    fn count_revoked(&self, kind: &'static str) {
        self.metrics
            .revoked_requests
            .get_or_create(&crate::metrics::KindLabel { kind })
            .inc();
    }

    async fn forward(&self, mut req: Request<Incoming>, conn: ConnInfo) -> Response<Body> {
        self.enforce(&mut req, &conn);
        let websocket =
            req.version() == Version::HTTP_11 && headers::is_websocket_upgrade(req.headers());
        if websocket {
            // After enforcement: a revoked cookie is gone, a live one is watched.
            let cookie_token = cookie_token(req.headers());
            return Box::pin(self.forward_websocket(req, conn, cookie_token)).await;
        }
        let upstream_req = self.prepare(req, &conn, false);
        match self.send(upstream_req).await {
            Ok(response) => relay(response, false),
            Err(e) => e.into_response(),
        }
    }

    /// Turn the client's request head into the upstream's: absolute URI,
    /// hop-by-hop removed, X-Forwarded-*, Host kept (set from :authority for HTTP/2).
    fn prepare_head(&self, parts: &mut http::request::Parts, conn: &ConnInfo, websocket: bool) {
        let host = parts.headers.get(header::HOST).cloned().or_else(|| {
            parts
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        });
        // Every connection goes to the one upstream: origin-form is all it
        // needs (an absolute-form or HTTP/2 request is rewritten).
        if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
            let path_and_query = parts
                .uri
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
            parts.uri = Uri::from(path_and_query);
        }
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
            &conn.peer_header,
            conn.tls,
            host.as_ref(),
            conn.trusted,
        );
        // HTTP/1.1 requires a Host upstream: the client's, else the upstream's.
        parts.headers.insert(
            header::HOST,
            host.unwrap_or_else(|| self.upstream_host.clone()),
        );
        parts.version = Version::HTTP_11;
    }

    fn prepare(&self, req: Request<Incoming>, conn: &ConnInfo, websocket: bool) -> Request<Body> {
        let (mut parts, body) = req.into_parts();
        self.prepare_head(&mut parts, conn, websocket);
        Request::from_parts(parts, boxed(body))
    }

    async fn send(&self, req: Request<Body>) -> Result<Response<UpstreamBody>, ProxyError> {
        let replay = replay_copy(&req);
        let attempt = async {
            match self.client.request(req).await {
                Err(e) if e.is_stale_connection() => match replay {
                    // The upstream closed a pooled connection under this
                    // request before answering: nothing was processed, and
                    // an idempotent request without a body is safe to send
                    // once more (SPEC §8).
                    Some(again) => {
                        tracing::debug!("pooled upstream connection was closed; retrying once");
                        self.client.request(again).await
                    }
                    None => Err(e),
                },
                other => other,
            }
        };
        match tokio::time::timeout(self.response_timeout, attempt).await {
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
        let on_login = Some(
            self.capturer
                .ddp_hook(crate::capture::ClientFacts::of_request(&req, &conn)),
        );
        let client_upgrade = hyper::upgrade::on(&mut req);
        let upstream_req = self.prepare(req, &conn, true);
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
        let idle_timeout = self.websocket_idle_timeout;
        let counter = self.metrics.clone();
        let on_revoked_login: tunnel::RevokedLoginHook = Arc::new(move || {
            counter
                .revoked_requests
                .get_or_create(&crate::metrics::KindLabel { kind: "ddp" })
                .inc();
        });
        let tunnel_span = tracing::Span::current();
        self.tunnels.spawn(tracing::Instrument::instrument(
            async move {
                let (client, upstream) = match tokio::try_join!(client_upgrade, upstream_upgrade) {
                    Ok(pair) => pair,
                    Err(e) => {
                        tracing::debug!(error = %e, "websocket upgrade did not complete");
                        return;
                    }
                };
                metrics.websockets_open.inc();
                let cfg = tunnel::TunnelConfig {
                    cookie_token,
                    max_inspect_bytes,
                    idle_timeout,
                    on_login,
                    on_revoked_login: Some(on_revoked_login),
                };
                let end = tunnel::tunnel(
                    TokioIo::new(client),
                    TokioIo::new(upstream),
                    cfg,
                    revoked,
                    shutdown,
                )
                .await;
                metrics.websockets_open.dec();
                if matches!(end, tunnel::TunnelEnd::Revoked) {
                    metrics.websockets_closed_by_revocation.inc();
                    tracing::info!("websocket closed: its session was revoked");
                }
            },
            tunnel_span,
        ));
        relay(response, true)
    }

    /// Requests whose body carries DDP messages: SockJS `xhr_send` /
    /// `jsonp_send` (`kind` "sockjs") and Rocket.Chat's REST `method.call`
    /// (`kind` "rest"). A resume login with a revoked token in there is
    /// forwarded with a decoy token (SPEC §11), so the server answers as
    /// always (SockJS: 204, then its own error and `updated` on the session's
    /// poll). Refusing a SockJS send instead would make sockjs-client drop the
    /// session and Meteor resend the same login forever.
    async fn forward_inspected(
        &self,
        mut req: Request<Incoming>,
        conn: ConnInfo,
        kind: &'static str,
    ) -> Response<Body> {
        self.enforce(&mut req, &conn);
        match self.prepare_inspected(req, &conn, kind).await {
            Ok(upstream_req) => match self.send(upstream_req).await {
                Ok(response) => relay(response, false),
                Err(e) => e.into_response(),
            },
            Err(refusal) => refusal,
        }
    }

    /// Read a small request body whole (up to the inspection bound), replace
    /// any revoked resume token in it by a decoy, and prepare the upstream
    /// request with the body as it now stands. The body is inspected as
    /// JSON/SockJS text, and also as a form when the client says it is one.
    async fn prepare_inspected(
        &self,
        req: Request<Incoming>,
        conn: &ConnInfo,
        kind: &'static str,
    ) -> Result<Request<Body>, Response<Body>> {
        let (mut parts, body) = req.into_parts();
        let limited = http_body_util::Limited::new(body, self.max_inspect_bytes);
        let bytes: Bytes = match limited.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return Err(ApiError::BodyTooLarge.into_response());
            }
            Err(_) => return Err(ProxyError::BadRequest.into_response()),
        };
        let revoked = &self.revoked;
        let is_revoked = |token: &str| revoked.contains(&hash_token(token));
        let form = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                v.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        let inspected = if form {
            query::rewrite_form_logins(
                &String::from_utf8_lossy(&bytes),
                is_revoked,
                crate::auth::decoy_token,
            )
        } else {
            ws::ddp::inspect_client_message(&bytes, is_revoked, crate::auth::decoy_token)
        };
        let bytes = match inspected.rewritten {
            Some(rewritten) => {
                self.count_revoked(kind);
                tracing::info!(
                    kind,
                    replaced = inspected.replaced,
                    "resume login with a revoked token forwarded with a decoy token"
                );
                Bytes::from(rewritten)
            }
            None => bytes,
        };
        self.prepare_head(&mut parts, conn, false);
        // The body is now whole: send it with a Content-Length.
        parts.headers.remove(header::TRANSFER_ENCODING);
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
        Ok(Request::from_parts(parts, full(bytes)))
    }
}

/// The upstream's answer for the client: status, headers and body unchanged
/// except hop-by-hop fields (the upgrade handshake kept on a 101).
fn relay(response: Response<UpstreamBody>, upgrade: bool) -> Response<Body> {
    if upgrade {
        let (mut parts, _) = response.into_parts();
        headers::strip_hop_by_hop(&mut parts.headers, true);
        parts.version = Version::default();
        return Response::from_parts(parts, crate::body::empty());
    }
    relay_body(response.map(boxed))
}

/// [`relay`] for an answer whose body the gate already wrapped.
fn relay_body(response: Response<Body>) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers, false);
    // The client's connection has its own version; hyper picks the framing.
    parts.version = Version::default();
    Response::from_parts(parts, body)
}

/// A non-empty header value as text.
fn header_str<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// A copy of a bodiless idempotent request, for one retry.
fn replay_copy(req: &Request<Body>) -> Option<Request<Body>> {
    use http_body::Body as _;
    let idempotent = matches!(
        *req.method(),
        http::Method::GET
            | http::Method::HEAD
            | http::Method::OPTIONS
            | http::Method::DELETE
            | http::Method::PUT
    );
    if !idempotent || !req.body().is_end_stream() || headers::is_websocket_upgrade(req.headers()) {
        return None;
    }
    let mut copy = Request::new(crate::body::empty());
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    Some(copy)
}

fn cookie_token(headers: &http::HeaderMap) -> Option<crate::auth::TokenHash> {
    headers::cookie_values(headers, "rc_token")
        .first()
        .map(|token| hash_token(token))
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
