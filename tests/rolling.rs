//! A rolling restart loses no request: two real gates behind a round-robin
//! front that, like a Kubernetes Service or a load balancer, only sends to a
//! backend whose `/readyz` answers 200. Requests flow at a fixed rate while
//! one gate gets SIGTERM, drains, exits and starts again, then the other.
//!
//! The gate's part of the bargain (SPEC §5, issue 17): on SIGTERM `/readyz`
//! turns 503 at once while the listener keeps serving for
//! `server.drain_delay_ms`, each HTTP/1.1 answer closing its connection, so the
//! front has stopped sending long before the listener closes. The front does
//! not retry a failed request: every failure counts.

use crate::common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio_util::sync::CancellationToken;

/// How often the front asks each backend whether it is ready.
const READINESS_POLL: Duration = Duration::from_millis(50);
/// Requests per second through the front.
const RATE: u64 = 200;

struct Backend {
    addr: SocketAddr,
    admin: SocketAddr,
    ready: AtomicBool,
}

/// A round-robin HTTP/1.1 front over the ready backends, with pooled
/// keep-alive connections to them and no retries.
struct Front {
    addr: SocketAddr,
    stop: CancellationToken,
}

impl Front {
    async fn start(backends: Arc<Vec<Backend>>) -> Front {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        // Readiness, as a Service's endpoints controller sees it.
        let poller_backends = backends.clone();
        let poller_stop = stop.clone();
        tokio::spawn(async move {
            while !poller_stop.is_cancelled() {
                for backend in poller_backends.iter() {
                    let ready = matches!(
                        tokio::time::timeout(
                            Duration::from_millis(200),
                            admin_get(backend.admin, "/readyz")
                        )
                        .await,
                        Ok(Ok((200, _)))
                    );
                    backend.ready.store(ready, Ordering::SeqCst);
                }
                tokio::time::sleep(READINESS_POLL).await;
            }
        });
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
            .retry_canceled_requests(false)
            .build(connector);
        let next = Arc::new(AtomicUsize::new(0));
        let accept_stop = stop.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    accepted = listener.accept() => match accepted { Ok(pair) => pair, Err(_) => continue },
                    () = accept_stop.cancelled() => return,
                };
                let backends = backends.clone();
                let client = client.clone();
                let next = next.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let backends = backends.clone();
                        let client = client.clone();
                        let next = next.clone();
                        async move { Ok::<_, Infallible>(forward(req, &backends, &client, &next).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Front { addr, stop }
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn forward(
    req: Request<Incoming>,
    backends: &[Backend],
    client: &Client<HttpConnector, Full<Bytes>>,
    next: &AtomicUsize,
) -> Response<Full<Bytes>> {
    let ready: Vec<&Backend> = backends
        .iter()
        .filter(|b| b.ready.load(Ordering::SeqCst))
        .collect();
    let Some(backend) = ready.get(next.fetch_add(1, Ordering::Relaxed) % ready.len().max(1)) else {
        return status(StatusCode::SERVICE_UNAVAILABLE, "no ready backend");
    };
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".to_string());
    let upstream_req = Request::builder()
        .method(req.method())
        .uri(format!("http://{}{path}", backend.addr))
        .body(Full::new(Bytes::new()))
        .unwrap();
    match client.request(upstream_req).await {
        Ok(resp) => {
            let code = resp.status();
            match resp.into_body().collect().await {
                Ok(body) => {
                    let mut out = Response::new(Full::new(body.to_bytes()));
                    *out.status_mut() = code;
                    out
                }
                Err(e) => status(StatusCode::BAD_GATEWAY, &format!("body: {e}")),
            }
        }
        Err(e) => status(StatusCode::BAD_GATEWAY, &format!("request: {e:?}")),
    }
}

fn status(code: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut out = Response::new(Full::new(Bytes::from(text.to_string())));
    *out.status_mut() = code;
    out
}

#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    ok: AtomicU64,
    failed: AtomicU64,
    first_failure: std::sync::Mutex<Option<String>>,
}

/// Requests at `RATE` per second through the front, on keep-alive
/// connections, until `stop`.
fn load(
    front: SocketAddr,
    tally: Arc<Tally>,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let client: Client<HttpConnector, Empty<Bytes>> =
            Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
        let mut in_flight = tokio::task::JoinSet::new();
        while !stop.is_cancelled() {
            tick.tick().await;
            let client = client.clone();
            let tally = tally.clone();
            let n = tally.sent.fetch_add(1, Ordering::SeqCst);
            in_flight.spawn(async move {
                let req = Request::get(format!("http://{front}/api/v1/roll/{n}"))
                    .body(Empty::new())
                    .unwrap();
                let outcome = match client.request(req).await {
                    Ok(resp) if resp.status() == StatusCode::OK => resp
                        .into_body()
                        .collect()
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string()),
                    Ok(resp) => {
                        let code = resp.status();
                        let body = resp
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        Err(format!("{code} {}", String::from_utf8_lossy(&body)))
                    }
                    Err(e) => Err(format!("{e:?}")),
                };
                match outcome {
                    Ok(()) => tally.ok.fetch_add(1, Ordering::SeqCst),
                    Err(e) => {
                        tally.first_failure.lock().unwrap().get_or_insert(e);
                        tally.failed.fetch_add(1, Ordering::SeqCst)
                    }
                };
            });
        }
        while in_flight.join_next().await.is_some() {}
    })
}

/// SIGTERM one gate, wait for it to exit 0, start it again, wait until the
/// front sends to it again.
async fn roll(gate: &mut Gate, backend: &Backend) {
    gate.signal("TERM");
    assert!(
        eventually(Duration::from_secs(2), async || !backend
            .ready
            .load(Ordering::SeqCst))
        .await,
        "the front saw the gate go not-ready"
    );
    assert_eq!(
        gate.wait_exit(Duration::from_secs(15)).await,
        Some(0),
        "drained and exited 0"
    );
    gate.restart().await; // on the same ports; waits for /readyz
    assert!(
        eventually(Duration::from_secs(5), async || backend
            .ready
            .load(Ordering::SeqCst))
        .await,
        "the front sends to the restarted gate"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rolling_restart_of_two_gates_fails_no_request() {
    let redis = RedisServer::start();
    let upstream = FakeUpstream::start().await;
    let options = || {
        GateOptions::new(&upstream.url(), &redis.url())
            .toml("[server]\ndrain_delay_ms = 1500\nshutdown_grace_secs = 5")
            .binary()
    };
    let mut a = Gate::start(options()).await;
    let mut b = Gate::start(options()).await;
    let backends = Arc::new(vec![
        Backend {
            addr: a.addr,
            admin: a.admin,
            ready: AtomicBool::new(false),
        },
        Backend {
            addr: b.addr,
            admin: b.admin,
            ready: AtomicBool::new(false),
        },
    ]);
    let front = Front::start(backends.clone()).await;
    assert!(
        eventually(Duration::from_secs(5), async || backends
            .iter()
            .all(|b| b.ready.load(Ordering::SeqCst)))
        .await
    );

    let tally = Arc::new(Tally::default());
    let stop = CancellationToken::new();
    let loader = load(front.addr, tally.clone(), stop.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    // One round in CI; `SESSIONGATE_ROLLING_ROUNDS=20` for a longer run.
    let rounds: u32 = std::env::var("SESSIONGATE_ROLLING_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    for _ in 0..rounds {
        roll(&mut a, &backends[0]).await;
        roll(&mut b, &backends[1]).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.cancel();
    loader.await.unwrap();

    let (sent, ok, failed) = (
        tally.sent.load(Ordering::SeqCst),
        tally.ok.load(Ordering::SeqCst),
        tally.failed.load(Ordering::SeqCst),
    );
    eprintln!(
        "rolling restart of 2 gates ({rounds} round(s)) at {RATE} req/s: {failed} failed of {sent} requests"
    );
    assert_eq!(
        failed,
        0,
        "first failure: {:?}",
        tally.first_failure.lock().unwrap()
    );
    assert_eq!(ok, sent);
    assert!(sent > RATE * 3, "the load ran through both restarts");
    // Both gates carried traffic.
    assert!(upstream.seen_path("/api/v1/roll/").len() as u64 >= ok);
}
