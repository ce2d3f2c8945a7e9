//! Transparency: everything that is not intercepted reaches the chat server
//! exactly as the client sent it, and the answer comes back unchanged.

use crate::common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::Message;

/// Forwarding never touches Redis; any URL will do for these tests.
const NO_REDIS: &str = "redis://127.0.0.1:1/0";

async fn gate_for(upstream: &FakeUpstream) -> Gate {
    let mut opts = GateOptions::new(&upstream.url(), NO_REDIS);
    opts.wait_ready = false;
    Gate::start(opts).await
}

#[tokio::test]
async fn methods_bodies_queries_and_repeated_headers_reach_the_upstream_unchanged() {
    let upstream = FakeUpstream::start().await;
    let gate = gate_for(&upstream).await;
    for method in ["GET", "POST", "PUT", "DELETE", "PATCH"] {
        let body = format!("{method} body \u{00e9}\r\n\0binary");
        let path = format!("/api/v1/things/{method}?a=1&b=%20x&a=2");
        let req = with_body(
            request(method, gate.addr, &path)
                .header("x-multi", "one")
                .header("x-multi", "two")
                .header("content-type", "application/octet-stream")
                .header("X-Auth-Token", "live-token"),
            body.clone(),
        );
        let resp = send(gate.addr, req).await.unwrap();
        assert_eq!(resp.status(), 200, "{method}");
        assert_eq!(resp.body(), body.as_bytes(), "{method} echo body");
        assert_eq!(resp.headers()["x-echo-method"], method);
        assert_eq!(resp.headers()["x-echo-uri"], path.as_str());

        let seen = upstream.seen_path(&format!("/things/{method}"));
        assert_eq!(seen.len(), 1, "{method} forwarded once");
        let seen = &seen[0];
        assert_eq!(seen.method, method);
        assert_eq!(seen.uri, path);
        assert_eq!(seen.body, Bytes::from(body.clone()));
        let multi: Vec<_> = seen.headers.get_all("x-multi").iter().collect();
        assert_eq!(multi, ["one", "two"]);
        assert_eq!(seen.headers["host"], gate.addr.to_string().as_str());
        assert_eq!(seen.headers["x-auth-token"], "live-token");
        assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
        assert_eq!(seen.headers["x-forwarded-proto"], "http");
        assert_eq!(
            seen.headers["x-forwarded-host"],
            gate.addr.to_string().as_str()
        );
    }
}

#[tokio::test]
async fn upstream_status_headers_and_body_come_back_unchanged() {
    let upstream = FakeUpstream::start().await;
    let gate = gate_for(&upstream).await;
    for code in [200u16, 201, 204, 301, 404, 418, 500, 503] {
        let resp = send(
            gate.addr,
            with_body(request("GET", gate.addr, &format!("/status/{code}")), ""),
        )
        .await
        .unwrap();
        assert_eq!(resp.status().as_u16(), code);
        assert_eq!(resp.headers()["x-upstream"], "yes");
        let cookies: Vec<_> = resp.headers().get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1; Path=/", "b=2; Path=/"]);
        if code != 204 && code != 304 {
            assert_eq!(resp.body(), format!("status {code}").as_bytes());
        }
    }
}

#[tokio::test]
async fn hop_by_hop_headers_are_removed_and_forged_forwarding_replaced() {
    let upstream = FakeUpstream::start().await;
    let gate = gate_for(&upstream).await;
    let req = with_body(
        request("GET", gate.addr, "/hop")
            .header("connection", "keep-alive, x-drop-me")
            .header("x-drop-me", "secret")
            .header("keep-alive", "timeout=5")
            .header("proxy-authorization", "Basic eA==")
            .header("upgrade", "h2c")
            .header("http2-settings", "AAMAAABkAAQAAP__")
            .header("x-forwarded-for", "6.6.6.6")
            .header("x-forwarded-proto", "https")
            .header("x-keep", "kept"),
        "",
    );
    let resp = send(gate.addr, req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let seen = &upstream.seen_path("/hop")[0];
    for gone in [
        "x-drop-me",
        "keep-alive",
        "proxy-authorization",
        "upgrade",
        "http2-settings",
    ] {
        assert!(
            !seen.headers.contains_key(gone),
            "{gone} must not be forwarded"
        );
    }
    assert_eq!(seen.headers["x-keep"], "kept");
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
}

#[tokio::test]
async fn trusted_proxy_forwarding_chain_is_extended() {
    let upstream = FakeUpstream::start().await;
    let mut opts = GateOptions::new(&upstream.url(), NO_REDIS)
        .toml("[server]\ntrusted_proxies = [\"127.0.0.0/8\"]");
    opts.wait_ready = false;
    let gate = Gate::start(opts).await;
    let req = with_body(
        request("GET", gate.addr, "/xff")
            .header("x-forwarded-for", "203.0.113.7")
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "chat.example.org"),
        "",
    );
    send(gate.addr, req).await.unwrap();
    let seen = &upstream.seen_path("/xff")[0];
    assert_eq!(seen.headers["x-forwarded-for"], "203.0.113.7, 127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-proto"], "https");
    assert_eq!(seen.headers["x-forwarded-host"], "chat.example.org");
}

#[tokio::test]
async fn smuggling_attempts_are_refused_and_never_forwarded() {
    let upstream = FakeUpstream::start().await;
    let gate = gate_for(&upstream).await;
    let cases: [&[u8]; 3] = [
        b"POST /smuggle1 HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /smuggle2 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        b"POST /smuggle3 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    ];
    for bytes in cases {
        let (answer, closed) = raw_exchange_closed(gate.addr, bytes, Duration::from_secs(2)).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert!(closed, "connection must be closed after a framing error");
    }
    assert!(upstream.seen_path("smuggle").is_empty());
    assert!(upstream.seen_path("/smuggled").is_empty());
}

#[tokio::test]
async fn dead_upstream_answers_502_json() {
    // Port 1: nothing listens there, and unlike a released free port no
    // parallel test can grab it.
    let mut opts = GateOptions::new("http://127.0.0.1:1", NO_REDIS);
    opts.wait_ready = false;
    let gate = Gate::start(opts).await;
    let resp = send(
        gate.addr,
        with_body(request("GET", gate.addr, "/anything"), ""),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 502);
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(resp.body(), BAD_GATEWAY);
    assert!(
        gate.metrics()
            .await
            .contains("sessiongate_upstream_errors_total{kind=\"connect\"} 1")
    );
}

#[tokio::test]
async fn slow_upstream_answers_504_json() {
    let upstream = FakeUpstream::start().await;
    let mut opts =
        GateOptions::new(&upstream.url(), NO_REDIS).toml("[proxy]\nresponse_timeout_ms = 200");
    opts.wait_ready = false;
    let gate = Gate::start(opts).await;
    let resp = send(
        gate.addr,
        with_body(request("GET", gate.addr, "/slow/2000"), ""),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 504);
    assert_eq!(resp.body(), GATEWAY_TIMEOUT);
}

#[tokio::test]
async fn streamed_response_keeps_its_trailers() {
    let upstream = FakeUpstream::start().await;
    let gate = gate_for(&upstream).await;
    let stream = tokio::net::TcpStream::connect(gate.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = request("GET", gate.addr, "/stream/5")
        .header("te", "trailers")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let collected = resp.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned();
    assert_eq!(
        collected.to_bytes(),
        "chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\n"
    );
    assert_eq!(trailers.expect("trailers relayed")["x-trailer"], "done");
}

#[tokio::test]
async fn request_trailers_reach_the_upstream() {
    let upstream = FakeUpstream::start().await;
    let gate = gate_for(&upstream).await;
    let stream = tokio::net::TcpStream::connect(gate.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let frames = futures_util::stream::iter(vec![
        Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from("part"))),
        Ok(Frame::trailers({
            let mut t = http::HeaderMap::new();
            t.insert("x-checksum", "abc".parse().unwrap());
            t
        })),
    ]);
    let req = request("POST", gate.addr, "/with-trailers")
        .header("trailer", "x-checksum")
        .body(StreamBody::new(frames))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let seen = &upstream.seen_path("/with-trailers")[0];
    assert_eq!(seen.body, "part");
    assert_eq!(
        seen.trailers.as_ref().expect("trailers forwarded")["x-checksum"],
        "abc"
    );
}

#[tokio::test]
async fn hundred_megabyte_upload_streams_with_flat_memory() {
    let upstream = FakeUpstream::start().await;
    // The gate's own process, whose memory is measured.
    let mut opts = GateOptions::new(&upstream.url(), NO_REDIS).binary();
    opts.wait_ready = false;
    let gate = Gate::start(opts).await;
    const CHUNK: usize = 256 * 1024;
    const CHUNKS: usize = 400; // 100 MiB
    let chunk = Bytes::from(vec![0x5au8; CHUNK]);
    let frames = futures_util::stream::iter(
        (0..CHUNKS).map(move |_| Ok::<_, std::convert::Infallible>(Frame::data(chunk.clone()))),
    );
    let stream = tokio::net::TcpStream::connect(gate.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let pid = gate.pid();
    let sampler = tokio::spawn(async move {
        let mut peak = 0;
        for _ in 0..2000 {
            peak = peak.max(procfs::rss_kib(pid));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        peak
    });
    let req = request("POST", gate.addr, "/upload")
        .body(StreamBody::new(frames))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&body).to_string();
    let expected_len = (CHUNK * CHUNKS).to_string();
    assert!(text.starts_with(&format!("{expected_len} ")), "{text}");
    let peak_during = procfs::rss_kib(pid);
    sampler.abort();
    assert!(
        peak_during < 50 * 1024,
        "gate RSS {peak_during} KiB after a 100 MiB upload"
    );
}

#[tokio::test]
async fn websocket_echoes_through_the_gate() {
    let upstream = FakeUpstream::start().await;
    let gate = gate_for(&upstream).await;
    let (mut ws, resp) = tokio_tungstenite::connect_async(format!("ws://{}/websocket", gate.addr))
        .await
        .expect("websocket handshake through the gate");
    assert_eq!(resp.status(), 101);
    for i in 0..5 {
        ws.send(Message::Text(format!("hello {i}").into()))
            .await
            .unwrap();
        let echoed = tokio::time::timeout(Duration::from_secs(2), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(echoed, Message::Text(format!("hello {i}").into()));
    }
    ws.send(Message::Binary(vec![1u8, 2, 3].into()))
        .await
        .unwrap();
    let echoed = tokio::time::timeout(Duration::from_secs(2), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(echoed, Message::Binary(vec![1u8, 2, 3].into()));
    let seen = &upstream.seen_path("/websocket")[0];
    assert!(!seen.headers.contains_key("sec-websocket-extensions"));
}

#[tokio::test]
async fn http2_client_reaches_an_http1_upstream() {
    let upstream = FakeUpstream::start().await;
    let gate = gate_for(&upstream).await;
    let stream = tokio::net::TcpStream::connect(gate.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = http::Request::builder()
        .method("POST")
        .uri("http://chat.example:8443/h2/path?q=1")
        .header("cookie", "a=1")
        .header("cookie", "b=2")
        .body(Full::new(Bytes::from("h2 body")))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), http::Version::HTTP_2);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "h2 body");
    let seen = &upstream.seen_path("/h2/path")[0];
    assert_eq!(seen.version, http::Version::HTTP_11);
    assert_eq!(seen.uri, "/h2/path?q=1");
    assert_eq!(seen.headers["host"], "chat.example:8443");
    assert_eq!(seen.headers["x-forwarded-host"], "chat.example:8443");
}

#[tokio::test]
async fn tls_listener_serves_http1_and_h2_with_a_self_signed_certificate() {
    let upstream = FakeUpstream::start().await;
    let cert = SelfSigned::localhost();
    let mut opts = GateOptions::new(&upstream.url(), NO_REDIS).toml(&cert.server_toml());
    opts.wait_ready = false;
    let gate = Gate::start(opts).await;

    for (alpn, want) in [
        (&b"h2"[..], http::Version::HTTP_2),
        (&b"http/1.1"[..], http::Version::HTTP_11),
    ] {
        let tls = tls_connect(gate.addr, &[cert.der()], &[alpn]).await;
        let req = http::Request::builder()
            .uri("https://localhost/tls")
            .header("host", "localhost")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = if want == http::Version::HTTP_2 {
            let (mut s, c) = hyper::client::conn::http2::handshake(
                hyper_util::rt::TokioExecutor::new(),
                TokioIo::new(tls),
            )
            .await
            .unwrap();
            tokio::spawn(c);
            let mut req = req;
            req.headers_mut().remove("host");
            s.send_request(req).await.unwrap()
        } else {
            let (mut s, c) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .unwrap();
            tokio::spawn(c);
            let mut req = req;
            *req.uri_mut() = "/tls".parse().unwrap();
            s.send_request(req).await.unwrap()
        };
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.version(), want);
    }
    let seen = upstream.seen_path("/tls");
    assert_eq!(seen.len(), 2);
    assert!(
        seen.iter()
            .all(|s| s.headers["x-forwarded-proto"] == "https")
    );
}

/// SIGTERM: `/readyz` turns 503 at once while the listener keeps serving
/// for `server.drain_delay_ms` (every HTTP/1.1 answer closing its
/// connection), then the listener closes, the in-flight request finishes,
/// and the process exits 0.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_reports_not_ready_serves_through_the_drain_delay_then_exits_zero() {
    let upstream = FakeUpstream::start().await;
    let mut opts = GateOptions::new(&upstream.url(), NO_REDIS)
        .toml("[server]\ndrain_delay_ms = 1000")
        .binary();
    opts.wait_ready = false;
    let mut gate = Gate::start(opts).await;
    let addr = gate.addr;
    let in_flight =
        tokio::spawn(
            async move { send(addr, with_body(request("GET", addr, "/slow/1500"), "")).await },
        );
    assert!(
        eventually(Duration::from_secs(2), async || !upstream
            .seen_path("/slow/1500")
            .is_empty())
        .await
    );
    let signalled = std::time::Instant::now();
    gate.signal("TERM");
    let mut draining = false;
    while !draining && signalled.elapsed() < Duration::from_secs(1) {
        draining = admin_get(gate.admin, "/readyz").await
            == Ok((503, "not ready: shutting down\n".to_string()));
    }
    assert!(draining, "readiness drops at once on SIGTERM");
    // Still serving during the delay; each answer closes its connection.
    let fresh = send(addr, with_body(request("GET", addr, "/during-drain"), ""))
        .await
        .expect("served during the drain delay");
    assert_eq!(fresh.status(), 200);
    assert_eq!(fresh.headers()["connection"], "close");
    let resp = in_flight
        .await
        .unwrap()
        .expect("in-flight request completes");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.body(), "slow done");
    assert_eq!(gate.wait_exit(Duration::from_secs(5)).await, Some(0));
    assert!(
        signalled.elapsed() >= Duration::from_secs(1),
        "the delay was honoured"
    );
    // The listener is closed after the drain.
    assert!(std::net::TcpStream::connect(addr).is_err());
}

/// SIGINT (Ctrl-C) skips the drain delay.
#[tokio::test(flavor = "multi_thread")]
async fn sigint_skips_the_drain_delay() {
    let upstream = FakeUpstream::start().await;
    let mut opts = GateOptions::new(&upstream.url(), NO_REDIS)
        .toml("[server]\ndrain_delay_ms = 60000")
        .binary();
    opts.wait_ready = false;
    let mut gate = Gate::start(opts).await;
    gate.signal("INT");
    assert_eq!(gate.wait_exit(Duration::from_secs(5)).await, Some(0));
}

#[tokio::test]
async fn h2c_upgrade_is_not_honoured() {
    let upstream = FakeUpstream::start().await;
    let gate = gate_for(&upstream).await;
    let answer = raw_exchange(
        gate.addr,
        b"GET /h2c HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
        Duration::from_millis(500),
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "{answer} {:?} {}",
        upstream.seen(),
        gate.log()
    );
    let seen = &upstream.seen_path("/h2c")[0];
    assert!(!seen.headers.contains_key("upgrade"));
    assert!(!seen.headers.contains_key("http2-settings"));
}

/// An upstream that answers the first request on each connection with
/// keep-alive, then closes the connection when the second request arrives,
/// without answering: the race a pooled connection loses when Node's
/// keep-alive timer fires just as the gate reuses it.
async fn closing_upstream() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = answered.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                break;
            };
            let count = count.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut seen = Vec::new();
                // First request: read its head, answer, keep the connection.
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    let Ok(n) = stream.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                }
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
                // Second request: close without answering.
                let _ = stream.read(&mut buf).await;
            });
        }
    });
    (addr, answered)
}

#[tokio::test]
async fn a_pooled_connection_closed_by_the_upstream_never_surfaces_as_502() {
    let (addr, answered) = closing_upstream().await;
    let mut opts = GateOptions::new(&format!("http://{addr}"), NO_REDIS);
    opts.wait_ready = false;
    let gate = Gate::start(opts).await;
    for i in 0..5 {
        let resp = send(
            gate.addr,
            with_body(request("GET", gate.addr, "/pooled"), ""),
        )
        .await
        .unwrap();
        assert_eq!(resp.status(), 200, "request {i}");
        assert_eq!(resp.body(), "ok");
    }
    assert_eq!(answered.load(std::sync::atomic::Ordering::SeqCst), 5);
}

/// The upstream pool: sequential requests share one connection; a connection
/// whose answer the client abandoned mid-body is closed, never handed to the
/// next request; idle connections close after `proxy.pool_idle_timeout_ms`.
#[tokio::test]
async fn upstream_connections_are_reused_abandoned_ones_closed_idle_ones_expire() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let upstream = FakeUpstream::start().await;
    let mut opts =
        GateOptions::new(&upstream.url(), NO_REDIS).toml("[proxy]\npool_idle_timeout_ms = 400");
    opts.wait_ready = false;
    let gate = Gate::start(opts).await;

    for i in 0..10 {
        let path = format!("/reuse/{i}");
        let resp = send(gate.addr, with_body(request("GET", gate.addr, &path), ""))
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "request {i}");
        assert_eq!(upstream.seen_path(&path).len(), 1);
    }
    assert_eq!(upstream.connections_accepted(), 1, "one pooled connection");

    // A streamed answer (10 chunks, 10 ms apart) the client walks away from.
    let mut client = tokio::net::TcpStream::connect(gate.addr).await.unwrap();
    client
        .write_all(format!("GET /stream/10 HTTP/1.1\r\nhost: {}\r\n\r\n", gate.addr).as_bytes())
        .await
        .unwrap();
    let mut first = [0u8; 64];
    let n = client.read(&mut first).await.unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    drop(client);
    // The rest of the stream would take ~100 ms; the gate closes that
    // upstream connection instead of returning it half read.
    assert!(
        eventually(Duration::from_secs(2), async || upstream.connections_open()
            == 0)
        .await,
        "the abandoned upstream connection stayed open"
    );
    let resp = send(
        gate.addr,
        with_body(request("GET", gate.addr, "/after"), ""),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(upstream.seen_path("/after").len(), 1);
    assert_eq!(upstream.connections_accepted(), 2, "a fresh connection");

    // Idle past pool_idle_timeout_ms (400 ms; checked every 400 ms): closed.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(upstream.connections_open(), 0, "idle connection closed");
    let resp = send(
        gate.addr,
        with_body(request("GET", gate.addr, "/later"), ""),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(upstream.connections_accepted(), 3);
}

/// An HTTP/1.0 request without Host still reaches the upstream with one (the
/// upstream's own authority), and without an X-Forwarded-Host.
#[tokio::test]
async fn a_request_without_host_gets_the_upstream_authority_as_host() {
    let upstream = FakeUpstream::start().await;
    let gate = gate_for(&upstream).await;
    let answer = raw_exchange(
        gate.addr,
        b"GET /no-host HTTP/1.0\r\n\r\n",
        Duration::from_millis(500),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
    let seen = &upstream.seen_path("/no-host")[0];
    assert_eq!(seen.headers["host"], upstream.addr.to_string());
    assert!(!seen.headers.contains_key("x-forwarded-host"));
}

/// An https:// upstream signed by a private CA (`proxy.ca_file`): requests go
/// over TLS with the right SNI, and the TLS connection is pooled like a plain one.
#[tokio::test]
async fn an_https_upstream_with_a_private_ca_is_reached_over_pooled_tls() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, cert.cert.pem()).unwrap();
    let key = rustls_pki_types::PrivateKeyDer::try_from(cert.key_pair.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let sni = tls.get_ref().1.server_name().map(str::to_owned);
                let service =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let sni = sni.clone();
                        async move {
                            let host = req.headers()["host"].to_str().unwrap_or("").to_owned();
                            let path = req.uri().path().to_owned();
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let text = format!(
                                "tls path={path} host={host} sni={} body={}",
                                sni.unwrap_or_default(),
                                String::from_utf8_lossy(&body)
                            );
                            Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                                Bytes::from(text),
                            )))
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    let mut opts = GateOptions::new(&format!("https://localhost:{port}"), NO_REDIS)
        .toml(&format!("[proxy]\nca_file = \"{}\"", ca_path.display()));
    opts.wait_ready = false;
    let gate = Gate::start(opts).await;
    for i in 0..3 {
        let resp = send(
            gate.addr,
            with_body(
                request("POST", gate.addr, &format!("/secure/{i}")),
                format!("n={i}"),
            ),
        )
        .await
        .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.body(),
            &format!(
                "tls path=/secure/{i} host={} sni=localhost body=n={i}",
                gate.addr
            )
        );
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "one pooled TLS connection"
    );
}

/// An upstream that answers before reading the request body (a 413 while the
/// client is still uploading) must not make the next request wait behind
/// that upload: its connection is not handed to anyone else.
#[tokio::test]
async fn a_connection_still_sending_an_upload_is_never_reused() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let mut head = Vec::new();
                loop {
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let early = head.starts_with(b"POST /early");
                    head.clear();
                    let answer: &[u8] = if early {
                        b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 2\r\n\r\nno"
                    } else {
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
                    };
                    if stream.write_all(answer).await.is_err() {
                        return;
                    }
                    if early {
                        // Keep draining the upload, never reading a next request.
                        while let Ok(n) = stream.read(&mut buf).await {
                            if n == 0 {
                                return;
                            }
                        }
                        return;
                    }
                }
            });
        }
    });
    let mut opts = GateOptions::new(&format!("http://{addr}"), NO_REDIS)
        .toml("[proxy]\nresponse_timeout_ms = 3000");
    opts.wait_ready = false;
    let gate = Gate::start(opts).await;
    // Warm one pooled connection.
    let resp = send(gate.addr, with_body(request("GET", gate.addr, "/warm"), ""))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // A slow upload: the head and 10 of 1,000,000 bytes, then nothing.
    let mut uploader = tokio::net::TcpStream::connect(gate.addr).await.unwrap();
    uploader
        .write_all(
            format!(
                "POST /early HTTP/1.1\r\nhost: {}\r\ncontent-length: 1000000\r\n\r\n0123456789",
                gate.addr
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut answer = [0u8; 128];
    let n = tokio::time::timeout(Duration::from_secs(2), uploader.read(&mut answer))
        .await
        .expect("the early answer is relayed")
        .unwrap();
    assert!(String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 413"));

    // Meanwhile another client is served at once, not after the upload.
    let started = std::time::Instant::now();
    let resp = send(gate.addr, with_body(request("GET", gate.addr, "/next"), ""))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{:?}", resp.body());
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "waited {:?} behind the upload",
        started.elapsed()
    );
    drop(uploader);
}
