//! Differential test against Rocket.Chat's real routers (SPEC §12).
//!
//! `tests/routers/run.js` rebuilds each Rocket.Chat era's routing stack from the
//! npm packages it pins (connect-route on Meteor's WebApp, express `Router()`
//! nesting, hono behind express, sockjs with Meteor's `/websocket` rewrite),
//! generates request spellings and prints, for each, which handler every model
//! reaches. Then, for every spelling some model routes to a handler the gate
//! classifies:
//! - `POST /api/v1/sessions/logout`: the real binary must answer it itself, over
//!   raw HTTP/1.x bytes and again over HTTP/2 (`:path`), with the anonymous 401 of
//!   SPEC §1 row 1 (or a 400 from its HTTP parser), and the upstream must see none;
//! - every other handler (login capture, the user's own logout, the device
//!   endpoints, websockets, SockJS sends): `route::classify` on the request as
//!   hyper reads it must give the same route.
//!
//! Knobs: `SESSIONGATE_ROUTERS_SPELLINGS` (default 50,000), `SESSIONGATE_ROUTERS_SEED`
//! (default 1), `SESSIONGATE_ROUTERS_JOBS` (worker threads for the models). Without
//! `node` the test prints why and passes, unless `SESSIONGATE_REQUIRE_NODE` is set
//! (CI sets it). Counts are printed; see them with `-- --nocapture`.

use crate::common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use http_body_util::{BodyExt, Full};
use serde::Deserialize;
use sessiongate::route::{self, DeviceEndpoint, Route};

use common::*;

const DEFAULT_SPELLINGS: u64 = 50_000;
/// Connections sending the routed logout spellings to the gate at once.
const SENDERS: usize = 4;

/// The examples (`spellings.js` `fixedSpellings`) and the model families
/// that must route each to the logout handler: if a model stops routing one,
/// the models (not the gate) changed, and the test would prove nothing.
const KNOWN_ROUTED: [(&str, &[&str]); 9] = [
    (
        "POST /api/v1/sessions/logout HTTP/1.1",
        &["rc5-6", "rc7.0-7.3", "rc7.4-7.5", "rc7.6+"],
    ),
    (
        "POST //api/v1/sessions/logout HTTP/1.1",
        &["rc5-6", "rc7.0-7.3"],
    ),
    (
        "POST ///api/v1/sessions/logout HTTP/1.1",
        &["rc5-6", "rc7.0-7.3"],
    ),
    (
        "POST /%20api/v1/sessions/logout HTTP/1.1",
        &["rc5-6", "rc7.0-7.3"],
    ),
    (
        "POST /%20/%20api/v1/sessions/logout HTTP/1.1",
        &["rc5-6", "rc7.0-7.3"],
    ),
    (
        "POST /%E3%80%80api/v1/sessions/logout HTTP/1.1",
        &["rc5-6", "rc7.0-7.3"],
    ),
    ("POST /API/v1/sessions/logout HTTP/1.1", &["rc7.4-7.5"]),
    ("POST /api/V1/SESSIONS/LOGOUT/ HTTP/1.1", &["rc7.4-7.5"]),
    ("POST /api/v1/x/../sessions/logout HTTP/1.1", &["rc7.6+"]),
];

/// One line of `run.js` output.
#[derive(Deserialize)]
struct Line {
    i: Option<u64>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    raw: String,
    #[serde(default)]
    routes: BTreeMap<String, String>,
    summary: Option<serde_json::Value>,
}

/// The gate's route for a handler name of `models.js`.
fn route_of(handler: &str) -> Option<Route> {
    Some(match handler {
        "sessions_logout" => Route::SessionsLogout,
        "login" => Route::Login,
        "user_logout" => Route::UserLogout,
        "device_api:list" => Route::DeviceApi(DeviceEndpoint::List),
        "device_api:info" => Route::DeviceApi(DeviceEndpoint::Info),
        "device_api:logout.me" => Route::DeviceApi(DeviceEndpoint::LogoutMe),
        "device_api:list.all" => Route::DeviceApi(DeviceEndpoint::ListAll),
        "device_api:info.admin" => Route::DeviceApi(DeviceEndpoint::InfoAdmin),
        "websocket_raw" => Route::Websocket { sockjs: false },
        "websocket_sockjs" => Route::Websocket { sockjs: true },
        "sockjs_send" => Route::SockJsSend,
        _ => return None,
    })
}

/// The gate's preference between routes (`route.rs` `Route::precedence`): where
/// models disagree, the gate must take the most specific handler.
fn rank(route: Route) -> u8 {
    match route {
        Route::SessionsLogout => 8,
        Route::UserLogout => 7,
        Route::Login => 6,
        Route::MethodCall => 5,
        Route::DeviceApi(_) => 4,
        Route::SockJsSend => 3,
        Route::Websocket { sockjs: true } => 2,
        Route::Websocket { sockjs: false } => 1,
        Route::Other => 0,
    }
}

/// A request as hyper reads it: method, URI, headers, HTTP version 1.0?
struct Parsed {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    http10: bool,
}

/// Parse one request head the way hyper does (httparse, then `Uri`); `None`
/// when hyper would refuse it with a 400.
fn parse_head(raw: &[u8]) -> Option<Parsed> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(_) = req.parse(raw).ok()? else {
        return None;
    };
    let method = Method::from_bytes(req.method?.as_bytes()).ok()?;
    let uri = Uri::try_from(req.path?).ok()?;
    let mut map = HeaderMap::new();
    for h in req.headers.iter() {
        map.append(
            HeaderName::from_bytes(h.name.as_bytes()).ok()?,
            HeaderValue::from_bytes(h.value).ok()?,
        );
    }
    Some(Parsed {
        method,
        uri,
        headers: map,
        http10: req.version == Some(0),
    })
}

/// Why the test cannot run here, if it cannot.
fn prepare_node(dir: &Path) -> Result<(), String> {
    let version = Command::new("node")
        .arg("--version")
        .output()
        .map_err(|e| format!("`node` not found ({e})"))?;
    if !version.status.success() {
        return Err("`node --version` failed".into());
    }
    if dir.join("node_modules/.package-lock.json").exists() {
        return Ok(());
    }
    // The models need their pinned packages (package-lock.json).
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(dir)
        .status()
        .map_err(|e| format!("`npm` not found ({e}); run `npm ci` in tests/routers"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`npm ci` in {} failed: {status}", dir.display()))
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(value) => value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {value:?}")),
        Err(_) => default,
    }
}

/// Counts for the report, and what went wrong.
#[derive(Default)]
struct Tally {
    generated: u64,
    routed_any: u64,
    routed_logout: u64,
    logout_parseable: u64,
    other_routed: BTreeMap<&'static str, u64>,
    models_disagree: u64,
    unparseable_other: u64,
    /// Spellings no model routes to the logout handler that the gate intercepts,
    /// by mutation class (spellings with a single mutation name their class
    /// exactly; the others count once per mutation they carry).
    over_intercepted: u64,
    over_single: BTreeMap<String, u64>,
    over_by_tag: BTreeMap<String, u64>,
    known_seen: std::collections::BTreeSet<usize>,
    failures: Vec<String>,
}

impl Tally {
    fn fail(&mut self, message: String) {
        if self.failures.len() < 40 {
            self.failures.push(message);
        }
    }
}

/// Outcome of sending one spelling to the gate over HTTP/1.x.
enum Answer {
    Intercepted,
    RefusedByParser,
    Other(String),
}

/// One keep-alive connection to the gate that sends whole requests and reads
/// whole answers (Content-Length framed, or up to the close).
struct Sender {
    addr: SocketAddr,
    stream: Option<TcpStream>,
}

impl Sender {
    fn send(&mut self, raw: &[u8], http10: bool) -> Answer {
        let stream = match self.stream.take() {
            Some(stream) => stream,
            None => {
                let stream = TcpStream::connect(self.addr).expect("connect to the gate");
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .expect("read timeout");
                stream
            }
        };
        let mut stream = stream;
        if let Err(e) = stream.write_all(raw) {
            return Answer::Other(format!("write failed: {e}"));
        }
        match read_answer(&mut stream) {
            Ok((status, body, keep_alive)) => {
                if keep_alive && !http10 {
                    self.stream = Some(stream);
                }
                match status {
                    401 if body == UNAUTHORIZED.as_bytes() => Answer::Intercepted,
                    400 if body.is_empty() => Answer::RefusedByParser,
                    _ => Answer::Other(format!(
                        "status {status}, body {:?}",
                        String::from_utf8_lossy(&body)
                    )),
                }
            }
            Err(e) => Answer::Other(e),
        }
    }
}

/// Read one HTTP/1.x answer: (status, body, connection stays open).
fn read_answer(stream: &mut TcpStream) -> Result<(u16, Vec<u8>, bool), String> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Err(format!("closed before an answer ({} bytes)", buf.len())),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("read failed: {e}")),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut length = None;
    let mut close = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse::<usize>().ok();
        } else if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close") {
            close = true;
        }
    }
    let mut body = buf[head_end..].to_vec();
    match length {
        Some(length) => {
            while body.len() < length {
                match stream.read(&mut chunk) {
                    Ok(0) => return Err("closed inside the body".into()),
                    Ok(n) => body.extend_from_slice(&chunk[..n]),
                    Err(e) => return Err(format!("read failed: {e}")),
                }
            }
            body.truncate(length);
            Ok((status, body, !close))
        }
        None => {
            let _ = stream.read_to_end(&mut body);
            Ok((status, body, false))
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_spelling_the_real_routers_route_is_classified_and_logout_is_answered_by_the_gate() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/routers");
    if let Err(why) = prepare_node(&dir) {
        let required = std::env::var("SESSIONGATE_REQUIRE_NODE").is_ok_and(|v| !v.is_empty());
        assert!(
            !required,
            "SESSIONGATE_REQUIRE_NODE is set but the router models cannot run: {why}"
        );
        println!(
            "SKIPPED routers differential test: {why}. Install Node.js >= 18 and npm \
             (Debian: apt-get install -y nodejs npm), or set SESSIONGATE_REQUIRE_NODE=1 to fail instead."
        );
        return;
    }
    let count = env_number("SESSIONGATE_ROUTERS_SPELLINGS", DEFAULT_SPELLINGS);
    let seed = env_number("SESSIONGATE_ROUTERS_SEED", 1);
    let jobs = std::env::var("SESSIONGATE_ROUTERS_JOBS").ok();

    let redis = RedisServer::start();
    let upstream = FakeUpstream::start().await;
    let gate = Gate::start(
        GateOptions::new(&upstream.url(), &redis.url())
            .toml("[logout]\ndeny_delay_ms = 0")
            .binary(),
    )
    .await;
    let started = Instant::now();

    let mut node = Command::new("node");
    node.arg(dir.join("run.js"))
        .args(["--count", &count.to_string(), "--seed", &seed.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(jobs) = &jobs {
        node.args(["--jobs", jobs]);
    }
    let mut child = node.spawn().expect("start node");
    let stdout = child.stdout.take().expect("node stdout");
    let mut stderr = child.stderr.take().expect("node stderr");
    let stderr_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });

    // Routed logout spellings go to SENDERS blocking connections as they arrive.
    let (to_senders, queue) = mpsc::channel::<(u64, Vec<u8>, bool)>();
    let queue = Arc::new(Mutex::new(queue));
    let (results_tx, results) = mpsc::channel::<(u64, Answer)>();
    let senders: Vec<_> = (0..SENDERS)
        .map(|_| {
            let queue = queue.clone();
            let results_tx = results_tx.clone();
            let addr = gate.addr;
            std::thread::spawn(move || {
                let mut sender = Sender { addr, stream: None };
                loop {
                    let next = queue.lock().expect("queue").recv();
                    let Ok((i, raw, http10)) = next else { break };
                    let answer = sender.send(&raw, http10);
                    if results_tx.send((i, answer)).is_err() {
                        break;
                    }
                }
            })
        })
        .collect();
    drop(results_tx);

    let reader = std::thread::spawn(move || {
        let mut tally = Tally::default();
        let mut summary = None;
        let mut logout_spellings: Vec<(u64, Vec<u8>)> = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let text = line.expect("read node output");
            let line: Line = match serde_json::from_str(&text) {
                Ok(line) => line,
                Err(e) => {
                    let head: String = text.chars().take(300).collect();
                    tally.fail(format!("unreadable line from run.js ({e}): {head:?}"));
                    continue;
                }
            };
            if let Some(s) = line.summary {
                summary = Some(s);
                continue;
            }
            let i = line.i.expect("spelling number");
            tally.generated += 1;
            // The request bytes: code points 0-255.
            let raw: Vec<u8> = line
                .raw
                .chars()
                .map(|c| {
                    u8::try_from(u32::from(c)).expect("run.js writes bytes as code points 0-255")
                })
                .collect();
            let parsed = parse_head(&raw);
            let gate_route = parsed
                .as_ref()
                .map(|p| route::classify(&p.method, &p.uri, &p.headers));
            let request_line = line.raw.lines().next().unwrap_or("").to_string();
            if let Some((k, (_, families))) = KNOWN_ROUTED
                .iter()
                .enumerate()
                .find(|(_, (l, _))| *l == request_line)
            {
                tally.known_seen.insert(k);
                let mut routing: Vec<&str> = line
                    .routes
                    .iter()
                    .filter(|(_, h)| h.as_str() == "sessions_logout")
                    .filter_map(|(model, _)| model.split(':').next())
                    .collect();
                routing.dedup();
                if routing != *families {
                    tally.fail(format!(
                        "models changed: {request_line:?} is routed to logout by {routing:?}, expected {families:?}"
                    ));
                }
            }
            let routed: Vec<Route> = line.routes.values().filter_map(|h| route_of(h)).collect();
            assert_eq!(
                routed.len(),
                line.routes.len(),
                "unknown handler name in {:?}",
                line.routes
            );
            let expected = routed.iter().copied().max_by_key(|r| rank(*r));
            if routed.windows(2).any(|w| w[0] != w[1]) {
                tally.models_disagree += 1;
            }
            if !routed.is_empty() {
                tally.routed_any += 1;
            }
            match expected {
                Some(Route::SessionsLogout) => {
                    tally.routed_logout += 1;
                    if let Some(route) = gate_route {
                        tally.logout_parseable += 1;
                        if route != Route::SessionsLogout {
                            tally.fail(format!(
                                "#{i} {request_line:?}: routed to the logout handler by {:?}, classify says {route:?}",
                                line.routes.keys().collect::<Vec<_>>()
                            ));
                        }
                    }
                    let http10 = parsed.as_ref().is_some_and(|p| p.http10);
                    logout_spellings.push((i, raw.clone()));
                    to_senders.send((i, raw, http10)).expect("senders alive");
                }
                Some(route) => {
                    *tally.other_routed.entry(route.label()).or_default() += 1;
                    match gate_route {
                        None => tally.unparseable_other += 1,
                        Some(got) if got == route => {}
                        Some(got) => tally.fail(format!(
                            "#{i} {request_line:?}: routed to {route:?} by {:?}, classify says {got:?}",
                            line.routes
                        )),
                    }
                }
                None => {
                    if gate_route == Some(Route::SessionsLogout) {
                        tally.over_intercepted += 1;
                        let tags: Vec<&String> =
                            line.tags.iter().filter(|t| *t != "fixed").collect();
                        if let [only] = tags[..] {
                            *tally.over_single.entry(only.clone()).or_default() += 1;
                        }
                        for tag in tags {
                            *tally.over_by_tag.entry(tag.clone()).or_default() += 1;
                        }
                    }
                }
            }
        }
        drop(to_senders);
        (tally, summary, logout_spellings)
    });

    let (mut tally, summary, logout_spellings) =
        tokio::task::spawn_blocking(move || reader.join().expect("reader thread"))
            .await
            .expect("join reader");
    let status = child.wait().expect("node exit");
    let node_stderr = stderr_reader.join().unwrap_or_default();
    assert!(status.success(), "run.js failed ({status}): {node_stderr}");
    let summary = summary.unwrap_or_else(|| panic!("run.js printed no summary: {node_stderr}"));

    let mut intercepted = 0u64;
    let mut refused = 0u64;
    let mut answered = 0u64;
    for (i, answer) in results.iter() {
        answered += 1;
        match answer {
            Answer::Intercepted => intercepted += 1,
            Answer::RefusedByParser => refused += 1,
            Answer::Other(what) => tally.fail(format!("#{i}: gate answered {what}")),
        }
    }
    for sender in senders {
        sender.join().expect("sender thread");
    }
    assert_eq!(
        answered, tally.routed_logout,
        "every routed logout spelling was answered"
    );

    let h2 = send_over_http2(gate.addr, &logout_spellings).await;
    for failure in &h2.failures {
        tally.fail(failure.clone());
    }

    let seen = upstream.seen();
    let forwarded = seen.len();
    for s in seen.iter().take(10) {
        tally.fail(format!(
            "the upstream saw {} {} — nothing should reach it",
            s.method, s.uri
        ));
    }

    println!(
        "routers differential: seed {seed}, {} spellings generated, node {}, models {:.1} s \
         ({} model answers waited for until the patience ran out)",
        tally.generated,
        summary["node"],
        summary["ms"].as_f64().unwrap_or(0.0) / 1000.0,
        summary["slow"]
    );
    if let Some(models) = summary["routed_by_model"].as_object() {
        for (model, handlers) in models {
            println!("  routed by {model}: {handlers}");
        }
    }
    println!(
        "routed by any model to a handler the gate classifies: {}",
        tally.routed_any
    );
    println!(
        "routed to POST /api/v1/sessions/logout by at least one model: {}; over HTTP/1.x the gate \
         intercepted (401) {intercepted}, refused in its HTTP parser (400) {refused}, forwarded {forwarded}",
        tally.routed_logout
    );
    println!(
        "the same over HTTP/2 (:path): intercepted {}, not representable as an h2 request {}",
        h2.intercepted, h2.skipped
    );
    println!(
        "other handlers, checked with route::classify: {:?}; not parseable by hyper: {}; \
         spellings the models route to different handlers: {}",
        tally.other_routed, tally.unparseable_other, tally.models_disagree
    );
    println!(
        "intercepted as the logout endpoint although no model routes it there: {}; \
         single-mutation classes:",
        tally.over_intercepted
    );
    let mut classes: Vec<_> = tally.over_single.iter().collect();
    classes.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (class, n) in classes {
        println!("  {n:>6}  {class}");
    }
    let mut tags: Vec<_> = tally.over_by_tag.iter().collect();
    tags.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let tags: Vec<String> = tags
        .iter()
        .take(20)
        .map(|(t, n)| format!("{t} {n}"))
        .collect();
    println!("  by mutation, in any combination: {}", tags.join(", "));
    println!("took {:.1} s", started.elapsed().as_secs_f64());

    assert!(
        tally.failures.is_empty(),
        "{} problem(s):\n{}",
        tally.failures.len(),
        tally.failures.join("\n")
    );
    assert_eq!(forwarded, 0);
    assert_eq!(
        summary["slow"].as_u64(),
        Some(0),
        "some model neither answered nor closed a spelling: its route is unknown"
    );
    assert_eq!(intercepted + refused, tally.routed_logout);
    assert!(
        tally.generated >= count,
        "run.js generated {} of {count}",
        tally.generated
    );
    assert!(
        tally.routed_logout > 0,
        "no spelling reached the logout handler: the models are broken"
    );
    if count >= 100 {
        assert_eq!(
            tally.known_seen.len(),
            KNOWN_ROUTED.len(),
            "every known example was generated"
        );
    }
}

#[derive(Default)]
struct Http2Tally {
    intercepted: u64,
    skipped: u64,
    failures: Vec<String>,
}

/// Send every routed logout spelling again as an HTTP/2 request whose `:path`
/// is the spelling's request target (absolute-form targets keep their own
/// scheme and authority). Targets `http::Uri` cannot hold are counted, not sent.
async fn send_over_http2(addr: SocketAddr, spellings: &[(u64, Vec<u8>)]) -> Http2Tally {
    let mut tally = Http2Tally::default();
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect h2");
    let (sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("h2 handshake");
    tokio::spawn(conn);
    let mut requests = Vec::new();
    for (i, raw) in spellings {
        let Some(parsed) = parse_head(raw) else {
            tally.skipped += 1;
            continue;
        };
        let target = parsed.uri.to_string();
        let uri = if parsed.uri.scheme().is_some() {
            Some(parsed.uri)
        } else {
            format!("http://chat.example{target}").parse::<Uri>().ok()
        };
        let Some(uri) = uri else {
            tally.skipped += 1;
            continue;
        };
        let mut builder = http::Request::builder()
            .method(parsed.method)
            .uri(uri)
            .header("content-type", "application/json");
        for (name, value) in parsed.headers.iter() {
            if name.as_str().contains("override") || name == "x-http-method" {
                builder = builder.header(name, value);
            }
        }
        let Ok(request) = builder.body(Full::new(Bytes::from_static(b"{}"))) else {
            tally.skipped += 1;
            continue;
        };
        requests.push((*i, target, request));
    }
    // 64 streams in flight at a time on the one connection.
    for batch in requests.chunks_mut(64) {
        let mut in_flight = Vec::new();
        for (i, target, request) in batch.iter_mut() {
            let request = std::mem::replace(request, http::Request::new(Full::new(Bytes::new())));
            let mut sender = sender.clone();
            let (i, target) = (*i, target.clone());
            in_flight.push(tokio::spawn(async move {
                let outcome = async {
                    sender.ready().await.map_err(|e| e.to_string())?;
                    let response = sender
                        .send_request(request)
                        .await
                        .map_err(|e| e.to_string())?;
                    let status = response.status().as_u16();
                    let body = response
                        .into_body()
                        .collect()
                        .await
                        .map_err(|e| e.to_string())?
                        .to_bytes();
                    Ok::<_, String>((status, body))
                }
                .await;
                (i, target, outcome)
            }));
        }
        for task in in_flight {
            let (i, target, outcome) = task.await.expect("h2 task");
            match outcome {
                Ok((401, body)) if body == UNAUTHORIZED.as_bytes() => tally.intercepted += 1,
                Ok((status, body)) => tally.failures.push(format!(
                    "#{i} h2 {target}: status {status}, body {:?}",
                    String::from_utf8_lossy(&body)
                )),
                Err(e) => tally.failures.push(format!("#{i} h2 {target}: {e}")),
            }
        }
    }
    tally
}
