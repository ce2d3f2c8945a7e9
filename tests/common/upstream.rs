//! An in-process stand-in for the chat server, on a real socket.
//!
//! Routes:
//! - `/status/<code>`: that status, repeated `set-cookie` headers, fixed body
//! - `/slow/<ms>`: answers after a delay
//! - `/stream/<n>`: n chunks 10 ms apart, then a trailer `x-trailer: done`
//! - `/upload`: consumes the body as it streams; answers `<bytes> <sha256>`
//! - `/api/v1/login` (and the same at `/api/v1/login2`, a path the gate does not
//!   capture): a Rocket.Chat login answer for the user/token set by the test
//!   (optionally a fresh token per login, padded, streamed without a length)
//! - `/api/v1/me`: `{"_id","username","roles",…}` for tokens registered with
//!   `set_me`, else Rocket.Chat's 401
//! - `POST /api/v1/logout`: Rocket.Chat's success answer
//! - `GET /api/info`: public, answers anyone
//! - `GET /api/v1/subscriptions.get`: authenticated: 200 for any
//!   `X-User-Id` + `X-Auth-Token` (the legacy server still holds every token
//!   the gate revoked), else the server's own 401 (a body unlike the gate's,
//!   so a test can tell who answered)
//! - any websocket upgrade: a Meteor-like DDP server (`meteor.rs`), SockJS
//!   framing on `/sockjs/<server>/<session>/websocket`; text that is not DDP
//!   is echoed; received text messages are recorded
//! - `/sockjs/info`, `/sockjs/<server>/<session>/xhr` and `…/xhr_send`: SockJS
//!   xhr polling onto the same DDP server
//! - anything else: echoes the request body; `x-echo-method`/`x-echo-uri` headers
//!
//! Every request is recorded (method, raw target, version, headers, body).
#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::meteor::{self, Meteor};

type Body = BoxBody<Bytes, Infallible>;

#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub uri: String,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub trailers: Option<HeaderMap>,
}

#[derive(Default)]
struct State {
    seen: Vec<Seen>,
    ws_messages: Vec<String>,
    login_user: Option<(String, String)>,
    login: LoginOptions,
    logins_served: u64,
    /// (user id, token) → (username, roles) for `/api/v1/me`.
    me: HashMap<(String, String), (String, Vec<String>)>,
    meteor: Meteor,
    /// (user id, token) → display name `/api/v1/me` answers with, when set.
    me_names: HashMap<(String, String), String>,
}

/// How `/api/v1/login` answers.
#[derive(Clone, Debug, Default)]
pub struct LoginOptions {
    /// Append `-<n>` to the token, n counting logins from 1.
    pub fresh_tokens: bool,
    /// Extra bytes of padding inside `data.me` (to pass the capture bound).
    pub padding: usize,
    /// Stream the answer in 8 KiB chunks without a Content-Length.
    pub chunked: bool,
    /// `data.me.username` (default `u`).
    pub username: Option<String>,
    /// `data.me.name` (the display name; absent by default).
    pub name: Option<String>,
}

/// The running fake upstream; stops when dropped.
pub struct FakeUpstream {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    /// Connections accepted so far, and those still open.
    connections: Arc<(AtomicUsize, AtomicUsize)>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeUpstream {
    pub async fn start() -> FakeUpstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let connections = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
        let counters = connections.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = shared.clone();
                let counters = counters.clone();
                counters.0.fetch_add(1, Ordering::SeqCst);
                counters.1.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(handle(req, state).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .await;
                    counters.1.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        FakeUpstream {
            addr,
            state,
            connections,
            task,
        }
    }

    /// TCP connections accepted since start.
    pub fn connections_accepted(&self) -> usize {
        self.connections.0.load(Ordering::SeqCst)
    }

    /// TCP connections still open.
    pub fn connections_open(&self) -> usize {
        self.connections.1.load(Ordering::SeqCst)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// Requests whose target path contains `needle`.
    pub fn seen_path(&self, needle: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.uri.contains(needle))
            .collect()
    }

    /// Text messages the websocket echo server received.
    pub fn ws_messages(&self) -> Vec<String> {
        self.state.lock().unwrap().ws_messages.clone()
    }

    /// `/api/v1/login` answers with this user id and token.
    pub fn set_login(&self, user_id: &str, token: &str) {
        self.state.lock().unwrap().login_user = Some((user_id.to_string(), token.to_string()));
    }

    pub fn set_login_options(&self, options: LoginOptions) {
        self.state.lock().unwrap().login = options;
    }

    /// The exact body the next login would answer with (the counter is not advanced).
    pub fn next_login_body(&self) -> String {
        let state = self.state.lock().unwrap();
        login_body(&state, state.logins_served + 1).unwrap_or_default()
    }

    /// The DDP server holds this login token: a resume login with it succeeds.
    pub fn hold_ddp_token(&self, user_id: &str, token: &str) {
        self.state.lock().unwrap().meteor.hold_token(user_id, token);
    }

    /// Every DDP message the DDP server received (unwrapped from SockJS).
    pub fn ddp_received(&self) -> Vec<String> {
        self.state.lock().unwrap().meteor.received.clone()
    }

    /// Does any request, websocket message or DDP message the upstream
    /// received contain `needle`?
    pub fn ever_saw(&self, needle: &str) -> bool {
        let state = self.state.lock().unwrap();
        let needle_bytes = needle.as_bytes();
        let in_bytes = |b: &[u8]| b.windows(needle_bytes.len()).any(|w| w == needle_bytes);
        state.seen.iter().any(|s| {
            s.uri.contains(needle)
                || in_bytes(&s.body)
                || s.headers.values().any(|v| in_bytes(v.as_bytes()))
        }) || state.ws_messages.iter().any(|m| m.contains(needle))
            || state.meteor.received.iter().any(|m| m.contains(needle))
    }

    /// `/api/v1/me` also answers this display name (`name`) for the pair.
    pub fn set_me_name(&self, user_id: &str, token: &str, name: &str) {
        self.state
            .lock()
            .unwrap()
            .me_names
            .insert((user_id.to_string(), token.to_string()), name.to_string());
    }

    /// `/api/v1/me` vouches for this user id + token.
    pub fn set_me(&self, user_id: &str, token: &str, username: &str, roles: &[&str]) {
        self.state.lock().unwrap().me.insert(
            (user_id.to_string(), token.to_string()),
            (
                username.to_string(),
                roles.iter().map(|r| r.to_string()).collect(),
            ),
        );
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

async fn handle(mut req: Request<Incoming>, state: Arc<Mutex<State>>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let is_ws = req
        .headers()
        .get("upgrade")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    if is_ws {
        record(&state, &req, Bytes::new(), None);
        let sockjs = meteor::sockjs_session(&path).is_some_and(|(_, t)| t == "websocket");
        return websocket(&mut req, state, sockjs);
    }
    if path == "/upload" {
        record(&state, &req, Bytes::new(), None);
        let mut body = req.into_body();
        let mut hasher = Sha256::new();
        let mut total = 0u64;
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { break };
            if let Some(data) = frame.data_ref() {
                total += data.len() as u64;
                hasher.update(data);
            }
        }
        return Response::new(full(format!("{total} {}", hex::encode(hasher.finalize()))));
    }
    let (parts, body) = req.into_parts();
    let collected = body.collect().await.ok();
    let trailers = collected.as_ref().and_then(|c| c.trailers().cloned());
    let body = collected.map(|c| c.to_bytes()).unwrap_or_default();
    let req = Request::from_parts(parts, ());
    record(&state, &req, body.clone(), trailers.clone());

    if path == "/sockjs/info" {
        return json(
            200,
            r#"{"websocket":true,"origins":["*:*"],"cookie_needed":false,"entropy":42}"#.into(),
        );
    }
    if let Some((session, transport)) = meteor::sockjs_session(&path) {
        let session = session.to_owned();
        match transport {
            "xhr" => return sockjs_poll(&state, &session).await,
            "xhr_send" => {
                let text = String::from_utf8_lossy(&body).into_owned();
                let status = state.lock().unwrap().meteor.send(&session, &text);
                return Response::builder()
                    .status(status)
                    .header("content-type", "text/plain; charset=UTF-8")
                    .body(full(Bytes::new()))
                    .unwrap();
            }
            _ => {}
        }
    }
    if path == "/api/info" {
        return json(200, r#"{"version":"7.5.0","success":true}"#.into());
    }
    if path == "/api/v1/subscriptions.get" {
        let header = |name: &str| header_text(&req, name);
        // Like a legacy server that never heard of the gate's revocations,
        // it accepts any credentials it is sent.
        let held = !header("x-user-id").is_empty() && !header("x-auth-token").is_empty();
        return if held {
            json(200, r#"{"update":[],"remove":[],"success":true}"#.into())
        } else {
            json(401, UPSTREAM_UNAUTHORIZED.into())
        };
    }
    if let Some(code) = path.strip_prefix("/status/") {
        let status = code
            .parse::<u16>()
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok());
        return Response::builder()
            .status(status.unwrap_or(StatusCode::BAD_REQUEST))
            .header("x-upstream", "yes")
            .header("set-cookie", "a=1; Path=/")
            .header("set-cookie", "b=2; Path=/")
            .header("content-type", "text/plain")
            .body(full(format!("status {code}")))
            .unwrap();
    }
    if let Some(ms) = path.strip_prefix("/slow/") {
        let ms = ms.parse().unwrap_or(100);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        return Response::new(full("slow done"));
    }
    if let Some(n) = path.strip_prefix("/stream/") {
        let n: usize = n.parse().unwrap_or(3);
        let stream = futures_util::stream::unfold(0usize, move |i| async move {
            if i < n {
                tokio::time::sleep(Duration::from_millis(10)).await;
                Some((
                    Ok::<_, Infallible>(Frame::data(Bytes::from(format!("chunk {i}\n")))),
                    i + 1,
                ))
            } else if i == n {
                let mut trailers = HeaderMap::new();
                trailers.insert("x-trailer", "done".parse().unwrap());
                Some((Ok(Frame::trailers(trailers)), i + 1))
            } else {
                None
            }
        });
        return Response::builder()
            .header("trailer", "x-trailer")
            .body(BodyExt::boxed(StreamBody::new(stream)))
            .unwrap();
    }
    if path == "/api/v1/login" || path == "/api/v1/login2" {
        let (body, chunked) = {
            let mut state = state.lock().unwrap();
            state.logins_served += 1;
            (login_body(&state, state.logins_served), state.login.chunked)
        };
        return match body {
            Some(body) if chunked => chunked_json(body),
            Some(body) => json(200, body),
            None => json(
                401,
                r#"{"status":"error","error":"Unauthorized","message":"Unauthorized"}"#.to_string(),
            ),
        };
    }
    if path == "/api/v1/me" {
        let header = |name: &str| header_text(&req, name);
        let key = (header("x-user-id"), header("x-auth-token"));
        let (known, name) = {
            let state = state.lock().unwrap();
            (
                state.me.get(&key).cloned(),
                state.me_names.get(&key).cloned(),
            )
        };
        return match known {
            Some((username, roles)) => {
                let mut me = serde_json::json!({
                    "_id": key.0,
                    "username": username,
                    "roles": roles,
                    "success": true,
                });
                if let Some(name) = name {
                    me["name"] = serde_json::Value::String(name);
                }
                json(200, me.to_string())
            }
            None => json(
                401,
                r#"{"status":"error","message":"You must be logged in to do this."}"#.to_string(),
            ),
        };
    }
    if path == "/api/v1/logout" && req.method() == http::Method::POST {
        return json(
            200,
            r#"{"status":"success","data":{"message":"You've been logged out!"}}"#.to_string(),
        );
    }
    if let Some(t) = trailers {
        // Echo trailers back so a test can see them survive both ways.
        let mut response = Response::new(full(body));
        response
            .headers_mut()
            .insert("x-echo-trailers", t.len().into());
        return response;
    }
    let mut response = Response::new(full(body));
    let h = response.headers_mut();
    h.insert("x-echo-method", req.method().as_str().parse().unwrap());
    h.insert(
        "x-echo-uri",
        target.parse().unwrap_or_else(|_| "bad".parse().unwrap()),
    );
    response
}

/// The login answer for the `n`th login, or `None` when no login is set.
fn login_body(state: &State, n: u64) -> Option<String> {
    let (user, token) = state.login_user.clone()?;
    let token = if state.login.fresh_tokens {
        format!("{token}-{n}")
    } else {
        token
    };
    let pad = match state.login.padding {
        0 => String::new(),
        n => format!(r#","pad":"{}""#, "p".repeat(n)),
    };
    let username = state.login.username.as_deref().unwrap_or("u");
    let name = match &state.login.name {
        Some(name) => format!(r#","name":{}"#, serde_json::Value::String(name.clone())),
        None => String::new(),
    };
    Some(format!(
        r#"{{"status":"success","data":{{"userId":"{user}","authToken":"{token}","me":{{"_id":"{user}","username":"{username}"{name}{pad}}}}}}}"#
    ))
}

/// A 200 JSON answer streamed in 8 KiB chunks, no Content-Length.
fn chunked_json(body: String) -> Response<Body> {
    let bytes = Bytes::from(body);
    let chunks: Vec<Result<Frame<Bytes>, Infallible>> = (0..bytes.len())
        .step_by(8192)
        .map(|i| Ok(Frame::data(bytes.slice(i..(i + 8192).min(bytes.len())))))
        .collect();
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(BodyExt::boxed(StreamBody::new(futures_util::stream::iter(
            chunks,
        ))))
        .unwrap()
}

/// A request header as text ("" when missing or not text).
fn header_text<B>(req: &Request<B>, name: &str) -> String {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

fn json(status: u16, body: String) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(full(body))
        .unwrap()
}

fn record<B>(
    state: &Arc<Mutex<State>>,
    req: &Request<B>,
    body: Bytes,
    trailers: Option<HeaderMap>,
) {
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    state.lock().unwrap().seen.push(Seen {
        method: req.method().to_string(),
        uri: target,
        version: req.version(),
        headers: req.headers().clone(),
        body,
        trailers,
    });
}

/// The upstream's own 401: not the gate's row-1 body, so a test can tell
/// who answered.
pub const UPSTREAM_UNAUTHORIZED: &str =
    r#"{"success":false,"error":"You must be logged in to do this.","origin":"upstream"}"#;

/// SockJS xhr polling: open the session, or wait up to 2 s for answers.
async fn sockjs_poll(state: &Arc<Mutex<State>>, session: &str) -> Response<Body> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    let body = loop {
        if let Some(body) = state.lock().unwrap().meteor.poll(session) {
            break body;
        }
        if tokio::time::Instant::now() >= deadline {
            break "h\n".to_owned();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    Response::builder()
        .header("content-type", "application/javascript; charset=UTF-8")
        .body(full(body))
        .unwrap()
}

fn websocket(
    req: &mut Request<Incoming>,
    state: Arc<Mutex<State>>,
    sockjs: bool,
) -> Response<Body> {
    let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
        return json(400, "{}".into());
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Server,
            None,
        )
        .await;
        if sockjs && ws.send(Message::Text("o".into())).await.is_err() {
            return;
        }
        while let Some(Ok(msg)) = ws.next().await {
            match msg {
                Message::Text(text) => {
                    let answers = {
                        let mut state = state.lock().unwrap();
                        state.ws_messages.push(text.to_string());
                        if sockjs {
                            match state.meteor.answer_sockjs(&text) {
                                Some(frame) => frame.into_iter().collect(),
                                None => vec![text.to_string()],
                            }
                        } else {
                            state
                                .meteor
                                .answer(&text)
                                .unwrap_or_else(|| vec![text.to_string()])
                        }
                    };
                    for answer in answers {
                        if ws.send(Message::Text(answer.into())).await.is_err() {
                            return;
                        }
                    }
                }
                Message::Binary(data) if ws.send(Message::Binary(data.clone())).await.is_err() => {
                    break;
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("upgrade", "websocket")
        .header("connection", "Upgrade")
        .header("sec-websocket-accept", accept)
        .body(full(Bytes::new()))
        .unwrap()
}
