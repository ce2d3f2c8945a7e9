//! Revocation is enforced by every replica, on every request, and survives
//! Redis faults and gate restarts.

use crate::common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn add_session(gate: &Gate, user: &str, token: &str) -> String {
    cli_ok(
        gate,
        &[
            "session",
            "add",
            "--user",
            user,
            &format!("--token={token}"),
        ],
    )
    .trim()
    .to_string()
}

/// An authenticated endpoint: 200 while the token is live; once it is
/// revoked the gate forwards the request without it, and the server answers
/// with its own 401 (SPEC §11).
async fn get_with_token(gate: &Gate, token: &str) -> (u16, String) {
    let req = with_body(
        request("GET", gate.addr, "/api/v1/subscriptions.get")
            .header("X-User-Id", "u1")
            .header("X-Auth-Token", token),
        "",
    );
    let resp = send(gate.addr, req).await.expect("gate answers");
    (
        resp.status().as_u16(),
        String::from_utf8_lossy(resp.body()).to_string(),
    )
}

async fn get_with_cookie(gate: &Gate, cookie: &str) -> u16 {
    let req = with_body(
        request("GET", gate.addr, "/home").header("cookie", cookie),
        "",
    );
    send(gate.addr, req)
        .await
        .expect("gate answers")
        .status()
        .as_u16()
}

/// Did any request the upstream received carry `token` in a header?
fn upstream_saw_token(upstream: &FakeUpstream, token: &str) -> bool {
    upstream.seen().iter().any(|s| {
        s.headers
            .values()
            .any(|v| String::from_utf8_lossy(v.as_bytes()).contains(token))
    })
}

/// Poll until the token is refused; returns how long it took.
async fn refused_within(gate: &Gate, token: &str, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if get_with_token(gate, token).await.0 == 401 {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread")]
async fn logout_on_one_replica_is_enforced_by_the_other_within_milliseconds() {
    let redis = RedisServer::start();
    let upstream = FakeUpstream::start().await;
    let a = Gate::start(GateOptions::new(&upstream.url(), &redis.url())).await;
    let b = Gate::start(GateOptions::new(&upstream.url(), &redis.url())).await;
    let mut delays = Vec::new();
    for i in 0..20 {
        let token = format!("replica-token-{i}");
        let id = add_session(&a, "u1", &token);
        assert_eq!(get_with_token(&b, &token).await.0, 200);
        cli_ok(&a, &["session", "revoke", &id]);
        let delay = refused_within(&b, &token, Duration::from_secs(5))
            .await
            .expect("B refuses the revoked token");
        delays.push(delay);
        // A learns it the same way, from Redis (the CLI is a process of its
        // own): not necessarily before B.
        refused_within(&a, &token, Duration::from_secs(5))
            .await
            .expect("A refuses the revoked token");
        assert_eq!(
            get_with_token(&a, &token).await,
            (401, UPSTREAM_UNAUTHORIZED.to_string())
        );
    }
    delays.sort();
    eprintln!(
        "propagation A→B via Redis (incl. CLI process exit and one HTTP poll): p50 {:?}, max {:?}",
        delays[delays.len() / 2],
        delays[delays.len() - 1]
    );
    // Once refused, revoked tokens never reach the upstream again: the
    // requests go on, anonymous.
    let before = upstream.seen().len();
    for i in 0..20 {
        let token = format!("replica-token-{i}");
        assert_eq!(get_with_token(&a, &token).await.0, 401);
        assert_eq!(get_with_token(&b, &token).await.0, 401);
    }
    let after: Vec<_> = upstream.seen().into_iter().skip(before).collect();
    assert_eq!(after.len(), 40);
    assert!(
        after.iter().all(
            |s| !s.headers.contains_key("x-auth-token") && !s.headers.contains_key("x-user-id")
        )
    );
    let metrics = b.metrics().await;
    assert!(
        metrics.contains("sessiongate_revoked_tokens 20"),
        "{metrics}"
    );
    assert!(metrics.contains("sessiongate_redis_up 1"));
}

/// A keep-alive connection that keeps sending a live token is checked quickly
/// (the connection remembers the clean verdict), yet the request after that
/// token's revocation, on the same connection, goes upstream without it.
#[tokio::test(flavor = "multi_thread")]
async fn a_token_revoked_mid_connection_is_refused_on_that_connection() {
    use http_body_util::BodyExt;
    let redis = RedisServer::start();
    let upstream = FakeUpstream::start().await;
    let gate = Gate::start(GateOptions::new(&upstream.url(), &redis.url())).await;
    // Something else is revoked already, so the set is not empty.
    let other = add_session(&gate, "u1", "other-token");
    cli_ok(&gate, &["session", "revoke", &other]);
    assert!(
        refused_within(&gate, "other-token", Duration::from_secs(5))
            .await
            .is_some()
    );
    let id = add_session(&gate, "u1", "kept-alive-token");

    let stream = tokio::net::TcpStream::connect(gate.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut get = async || {
        let req = with_body(
            request("GET", gate.addr, "/api/v1/subscriptions.get")
                .header("X-User-Id", "u1")
                .header("X-Auth-Token", "kept-alive-token"),
            "",
        );
        // The client's own connection task must be ready for the next request.
        sender.ready().await.expect("same connection still open");
        let resp = sender.send_request(req).await.expect("same connection");
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).to_string())
    };
    let before = upstream.seen_path("/api/v1/subscriptions.get").len();
    for _ in 0..3 {
        assert_eq!(get().await.0, 200);
    }
    let forwarded = upstream.seen_path("/api/v1/subscriptions.get").len();
    assert_eq!(forwarded, before + 3);
    cli_ok(&gate, &["session", "revoke", &id]);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, body) = get().await;
        if status == 401 {
            assert_eq!(body, UPSTREAM_UNAUTHORIZED);
            break;
        }
        assert_eq!(status, 200);
        assert!(Instant::now() < deadline, "still forwarded after 2 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(get().await.0, 401);
    let last = upstream.seen_path("/api/v1/subscriptions.get");
    let last = last.last().unwrap();
    assert!(!last.headers.contains_key("x-auth-token"));
    assert!(!last.headers.contains_key("x-user-id"));
}

/// SPEC §11: a revoked `X-Auth-Token` is forwarded anonymously, so public
/// endpoints keep working and authenticated ones get the server's own 401,
/// whatever its version says; the token never reaches the server.
#[tokio::test(flavor = "multi_thread")]
async fn revoked_header_token_is_forwarded_anonymously_and_answered_by_the_server() {
    let redis = RedisServer::start();
    let upstream = FakeUpstream::start().await;
    let gate = Gate::start(GateOptions::new(&upstream.url(), &redis.url())).await;
    let id = add_session(&gate, "u1", "header-dead-token");
    add_session(&gate, "u2", "header-live-token");
    cli_ok(&gate, &["session", "revoke", &id]);
    // Before it knows, the probe below would carry the token to the server.
    gate.wait_revoked_tokens(1).await;
    assert!(
        refused_within(&gate, "header-dead-token", Duration::from_secs(5))
            .await
            .is_some()
    );

    // A public endpoint answers the now-anonymous request as usual.
    let req = with_body(
        request("GET", gate.addr, "/api/info")
            .header("X-User-Id", "u1")
            .header("X-Auth-Token", "header-dead-token")
            .header("X-Other", "kept"),
        "",
    );
    let resp = send(gate.addr, req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(&resp.body()[..], br#"{"version":"7.5.0","success":true}"#);
    let seen = upstream.seen_path("/api/info");
    assert_eq!(seen.len(), 1);
    assert!(!seen[0].headers.contains_key("x-auth-token"));
    assert!(!seen[0].headers.contains_key("x-user-id"));
    assert_eq!(seen[0].headers["x-other"], "kept");

    // An authenticated one: the server's own 401, not the gate's.
    assert_eq!(
        get_with_token(&gate, "header-dead-token").await,
        (401, UPSTREAM_UNAUTHORIZED.to_string())
    );
    // A live token on the same gate is untouched.
    assert_eq!(get_with_token(&gate, "header-live-token").await.0, 200);
    assert!(!upstream_saw_token(&upstream, "header-dead-token"));
    let metrics = gate.metrics().await;
    assert!(
        metrics.contains(r#"sessiongate_revoked_token_requests_total{kind="header"}"#),
        "{metrics}"
    );
}

/// SPEC §12: Rocket.Chat's file, avatar and export routes read
/// `?rc_uid=…&rc_token=…` before cookies: a revoked one is removed with its
/// `rc_uid`, every other parameter stays byte for byte.
#[tokio::test(flavor = "multi_thread")]
async fn revoked_query_token_is_removed_and_the_rest_of_the_query_kept() {
    let redis = RedisServer::start();
    let upstream = FakeUpstream::start().await;
    let gate = Gate::start(GateOptions::new(&upstream.url(), &redis.url())).await;
    let id = add_session(&gate, "u1", "query-dead-token");
    add_session(&gate, "u1", "query-live-token");
    cli_ok(&gate, &["session", "revoke", &id]);
    // Before it knows, the probe below would carry the token to the server.
    gate.wait_revoked_tokens(1).await;
    assert!(
        refused_within(&gate, "query-dead-token", Duration::from_secs(5))
            .await
            .is_some()
    );
    for (target, forwarded) in [
        (
            "/file-upload/abc/photo.png?rc_uid=u1&rc_token=query-dead-token&download=%41+b",
            "/file-upload/abc/photo.png?download=%41+b",
        ),
        (
            "/avatar/bob?rc_token=query-dead-token&rc_uid=u1",
            "/avatar/bob",
        ),
        (
            "/file-upload/x/y?size=2&rc%5Ftoken=query%2Ddead%2Dtoken&RC_UID=u1&z",
            "/file-upload/x/y?size=2&z",
        ),
        (
            "/file-upload/abc/photo.png?rc_uid=u1&rc_token=query-live-token",
            "/file-upload/abc/photo.png?rc_uid=u1&rc_token=query-live-token",
        ),
    ] {
        let resp = send(gate.addr, with_body(request("GET", gate.addr, target), ""))
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{target}");
        let seen = upstream.seen();
        assert_eq!(seen.last().unwrap().uri, forwarded, "{target}");
    }
    assert!(!upstream.ever_saw("query-dead-token"));
    assert!(!upstream.ever_saw("query%2Ddead"));
    let metrics = gate.metrics().await;
    assert!(
        metrics.contains(r#"sessiongate_revoked_token_requests_total{kind="query"} 3"#),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn revoked_cookie_is_stripped_and_the_request_forwarded_anonymously() {
    let redis = RedisServer::start();
    let upstream = FakeUpstream::start().await;
    let gate = Gate::start(GateOptions::new(&upstream.url(), &redis.url())).await;
    let id = add_session(&gate, "u1", "cookie-token");
    cli_ok(&gate, &["session", "revoke", &id]);
    assert!(
        refused_within(&gate, "cookie-token", Duration::from_secs(5))
            .await
            .is_some()
    );
    let status = get_with_cookie(
        &gate,
        "theme=dark; rc_token=cookie-token; rc_uid=u1; lang=en",
    )
    .await;
    assert_eq!(status, 200);
    let seen = upstream.seen_path("/home");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].headers["cookie"], "theme=dark; lang=en");
    // A live cookie passes untouched.
    add_session(&gate, "u1", "live-cookie");
    get_with_cookie(&gate, "rc_token=live-cookie; rc_uid=u1").await;
    assert_eq!(
        upstream.seen_path("/home")[1].headers["cookie"],
        "rc_token=live-cookie; rc_uid=u1"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_outage_keeps_traffic_flowing_and_resync_catches_up() {
    let mut redis = RedisServer::start_persistent();
    let upstream = FakeUpstream::start().await;
    let a = Gate::start(GateOptions::new(&upstream.url(), &redis.url())).await;
    let revoked_id = add_session(&a, "u1", "revoked-before");
    add_session(&a, "u1", "live");
    let during_id = add_session(&a, "u1", "revoked-during-outage");
    cli_ok(&a, &["session", "revoke", &revoked_id]);
    assert!(
        refused_within(&a, "revoked-before", Duration::from_secs(5))
            .await
            .is_some()
    );

    redis.kill();
    // Forwarded traffic keeps flowing, and the last known set is enforced.
    for _ in 0..20 {
        assert_eq!(get_with_token(&a, "live").await.0, 200);
        assert_eq!(get_with_token(&a, "revoked-before").await.0, 401);
    }
    // The logout endpoint answers 503, never 401, never a forward.
    let req = with_body(
        request("POST", a.addr, "/api/v1/sessions/logout")
            .header("X-User-Id", "u1")
            .header("X-Auth-Token", "live")
            .header("content-type", "application/json"),
        r#"{"sessionId":"x"}"#,
    );
    let resp = send(a.addr, req).await.unwrap();
    assert_eq!(resp.status(), 503);
    // Readiness does not flap on a Redis blip.
    assert_eq!(admin_get(a.admin, "/readyz").await.unwrap().0, 200);

    // Redis returns; a revocation made by another party right away is enforced
    // here after the resync, whether or not its publish reached this gate.
    redis.restart();
    let b = Gate::start(GateOptions::new(&upstream.url(), &redis.url())).await;
    cli_ok(&b, &["session", "revoke", &during_id]);
    let took = refused_within(&a, "revoked-during-outage", Duration::from_secs(5)).await;
    assert!(
        took.is_some(),
        "revocation made after the outage not enforced: {}",
        a.log()
    );
    assert_eq!(get_with_token(&a, "revoked-before").await.0, 401);
    assert_eq!(get_with_token(&a, "live").await.0, 200);
    let metrics = a.metrics().await;
    assert!(
        metrics.contains("sessiongate_redis_reconnects_total 1"),
        "{metrics}"
    );
    assert!(upstream.seen_path("logout").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn revocation_made_while_a_gate_was_cut_off_is_enforced_after_resync() {
    let mut redis = RedisServer::start_persistent();
    let upstream = FakeUpstream::start().await;
    let a = Gate::start(GateOptions::new(&upstream.url(), &redis.url())).await;
    let id = add_session(&a, "u1", "missed-publish");
    // Bring Redis back with a password the gate does not know: its feed stays
    // down while the revocation is published, so only a resync can teach it.
    redis.restart_with(&["--requirepass", "letmein"]);
    let url = redis.url().replace("redis://", "redis://:letmein@");
    let out = std::process::Command::new(bin())
        .args(["session", "revoke", &id, "--config"])
        .arg(a.config_path())
        .env("SESSIONGATE_REDIS_URL", &url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        get_with_token(&a, "missed-publish").await.0,
        200,
        "not known yet"
    );
    redis.cmd_auth("letmein", &["CONFIG", "SET", "requirepass", ""]);
    let took = refused_within(&a, "missed-publish", Duration::from_secs(5)).await;
    assert!(
        took.is_some(),
        "resync did not pick up the missed revocation"
    );
    eprintln!("resync after Redis returned took {:?}", took.unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_gate_still_refuses_revoked_tokens_before_it_is_ready() {
    let redis = RedisServer::start();
    let upstream = FakeUpstream::start().await;
    let mut gate = Gate::start(GateOptions::new(&upstream.url(), &redis.url())).await;
    let id = add_session(&gate, "u1", "revoked-then-restart");
    cli_ok(&gate, &["session", "revoke", &id]);
    gate.restart().await; // waits for /readyz
    assert_eq!(
        get_with_token(&gate, "revoked-then-restart").await,
        (401, UPSTREAM_UNAUTHORIZED.to_string())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn readiness_waits_for_the_first_full_sync() {
    let mut redis = RedisServer::start();
    let redis_url = redis.url();
    redis.kill();
    let upstream = FakeUpstream::start().await;
    let mut opts = GateOptions::new(&upstream.url(), &redis_url);
    opts.wait_ready = false;
    let gate = Gate::start(opts).await;
    let (status, body) = admin_get(gate.admin, "/readyz").await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("not yet synced"));
    assert_eq!(admin_get(gate.admin, "/healthz").await.unwrap().0, 200);
    redis.restart();
    assert!(
        eventually(Duration::from_secs(5), async || {
            admin_get(gate.admin, "/readyz").await.unwrap().0 == 200
        })
        .await,
        "not ready after Redis came up: {}",
        gate.log()
    );
}

fn ws_request(gate: &Gate, path: &str, cookie: Option<&str>) -> http::Request<()> {
    let mut req = format!("ws://{}{}", gate.addr, path)
        .into_client_request()
        .unwrap();
    if let Some(cookie) = cookie {
        req.headers_mut().insert("cookie", cookie.parse().unwrap());
    }
    req
}

async fn next_text(
    ws: &mut (impl StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin),
) -> Option<Message> {
    tokio::time::timeout(Duration::from_secs(2), ws.next())
        .await
        .ok()
        .flatten()
        .and_then(Result::ok)
}

#[tokio::test(flavor = "multi_thread")]
async fn websockets_of_a_revoked_session_close_with_1008_and_others_stay_open() {
    let redis = RedisServer::start();
    let upstream = FakeUpstream::start().await;
    let gate = Gate::start(GateOptions::new(&upstream.url(), &redis.url())).await;
    let by_cookie_id = add_session(&gate, "u1", "ws-cookie-token");
    let by_resume_id = add_session(&gate, "u2", "ws-resume-token");
    add_session(&gate, "u3", "ws-unrelated-token");
    upstream.hold_ddp_token("u2", "ws-resume-token");

    let (mut by_cookie, _) = tokio_tungstenite::connect_async(ws_request(
        &gate,
        "/websocket",
        Some("rc_token=ws-cookie-token; rc_uid=u1"),
    ))
    .await
    .unwrap();
    let (mut by_resume, _) =
        tokio_tungstenite::connect_async(ws_request(&gate, "/websocket", None))
            .await
            .unwrap();
    let login =
        r#"{"msg":"method","method":"login","id":"1","params":[{"resume":"ws-resume-token"}]}"#;
    by_resume.send(Message::Text(login.into())).await.unwrap();
    assert_eq!(
        next_text(&mut by_resume).await,
        Some(Message::Text(
            r#"{"msg":"result","id":"1","result":{"id":"u2","token":"ws-resume-token","tokenExpires":{"$date":4102444800000},"type":"resume"}}"#.into()
        )),
        "the server's own answer"
    );
    assert_eq!(
        next_text(&mut by_resume).await,
        Some(Message::Text(r#"{"msg":"updated","methods":["1"]}"#.into()))
    );
    let (mut unrelated, _) = tokio_tungstenite::connect_async(ws_request(
        &gate,
        "/sockjs/123/abcdefgh/websocket",
        Some("rc_token=ws-unrelated-token"),
    ))
    .await
    .unwrap();
    assert_eq!(
        next_text(&mut unrelated).await,
        Some(Message::Text("o".into()))
    );

    let start = Instant::now();
    cli_ok(&gate, &["session", "revoke", &by_cookie_id]);
    cli_ok(&gate, &["session", "revoke", &by_resume_id]);
    for ws in [&mut by_cookie, &mut by_resume] {
        let msg = next_text(ws).await;
        match msg {
            Some(Message::Close(Some(frame))) => assert_eq!(u16::from(frame.code), 1008),
            other => panic!("expected close 1008, got {other:?}"),
        }
    }
    let elapsed = start.elapsed();
    assert!(
        elapsed < Duration::from_secs(1) + Duration::from_millis(500),
        "closed after {elapsed:?}"
    );
    eprintln!("websockets closed {elapsed:?} after the revoke commands started (two CLI runs)");

    unrelated
        .send(Message::Text("still here".into()))
        .await
        .unwrap();
    assert_eq!(
        next_text(&mut unrelated).await,
        Some(Message::Text("still here".into()))
    );
    // The tunnel ends after the close handshake; the counter follows.
    let mut counted = false;
    for _ in 0..100 {
        let metrics = gate.metrics().await;
        if metrics.contains("sessiongate_websockets_closed_by_revocation_total 2") {
            counted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(counted, "{}", gate.metrics().await);
}

/// SPEC §11: a resume login with a revoked token reaches the server with a
/// decoy token of the same length, so the server answers it in its own
/// words, `result` then `updated`, on every transport (plain websocket,
/// SockJS websocket, SockJS xhr polling); the socket stays open and a later
/// login on it works; the revoked token never reaches the server.
#[tokio::test(flavor = "multi_thread")]
async fn revoked_resume_login_is_answered_by_the_server_and_completes() {
    let redis = RedisServer::start();
    let upstream = FakeUpstream::start().await;
    let gate = Gate::start(GateOptions::new(&upstream.url(), &redis.url())).await;
    let id = add_session(&gate, "u1", "dead-resume-token");
    add_session(&gate, "u1", "fresh-resume-token");
    // The legacy server still holds both tokens: only the gate knows better.
    upstream.hold_ddp_token("u1", "dead-resume-token");
    upstream.hold_ddp_token("u1", "fresh-resume-token");
    cli_ok(&gate, &["session", "revoke", &id]);
    // Before it knows, the probe below would carry the token to the server.
    gate.wait_revoked_tokens(1).await;
    assert!(
        refused_within(&gate, "dead-resume-token", Duration::from_secs(5))
            .await
            .is_some()
    );
    let login = |call: &str, token: &str| {
        format!(
            r#"{{"msg":"method","method":"login","id":"{call}","params":[{{"resume":"{token}"}}]}}"#
        )
    };
    let refused = |call: &str| {
        format!(
            r#"{{"msg":"result","id":"{call}","error":{}}}"#,
            common::meteor::LOGGED_OUT_ERROR
        )
    };
    let granted = |call: &str| {
        format!(
            r#"{{"msg":"result","id":"{call}","result":{{"id":"u1","token":"fresh-resume-token","tokenExpires":{{"$date":4102444800000}},"type":"resume"}}}}"#
        )
    };
    let updated = |call: &str| format!(r#"{{"msg":"updated","methods":["{call}"]}}"#);

    // Plain DDP, on `/websocket` and on sockjs-node's raw `/sockjs/websocket`.
    for path in ["/websocket", "/sockjs/websocket", "/SOCKJS/websocket/"] {
        let (mut ws, _) = tokio_tungstenite::connect_async(ws_request(&gate, path, None))
            .await
            .unwrap();
        ws.send(Message::Text(login("7", "dead-resume-token").into()))
            .await
            .unwrap();
        assert_eq!(
            next_text(&mut ws).await,
            Some(Message::Text(refused("7").into())),
            "{path}"
        );
        assert_eq!(
            next_text(&mut ws).await,
            Some(Message::Text(updated("7").into())),
            "{path}"
        );
        // The socket stays open for a fresh login, which the server grants.
        ws.send(Message::Text(login("8", "fresh-resume-token").into()))
            .await
            .unwrap();
        assert_eq!(
            next_text(&mut ws).await,
            Some(Message::Text(granted("8").into())),
            "{path}"
        );
        assert_eq!(
            next_text(&mut ws).await,
            Some(Message::Text(updated("8").into())),
            "{path}"
        );
    }

    // SockJS-framed websocket.
    let (mut sj, _) =
        tokio_tungstenite::connect_async(ws_request(&gate, "/sockjs/123/abcdefgh/websocket", None))
            .await
            .unwrap();
    assert_eq!(next_text(&mut sj).await, Some(Message::Text("o".into())));
    let framed = serde_json::to_string(&vec![login("7", "dead-resume-token")]).unwrap();
    sj.send(Message::Text(framed.into())).await.unwrap();
    let want = format!(
        "a{}",
        serde_json::to_string(&vec![refused("7"), updated("7")]).unwrap()
    );
    assert_eq!(next_text(&mut sj).await, Some(Message::Text(want.into())));
    let framed = serde_json::to_string(&vec![login("8", "fresh-resume-token")]).unwrap();
    sj.send(Message::Text(framed.into())).await.unwrap();
    let want = format!(
        "a{}",
        serde_json::to_string(&vec![granted("8"), updated("8")]).unwrap()
    );
    assert_eq!(next_text(&mut sj).await, Some(Message::Text(want.into())));

    // SockJS over xhr polling: the send is accepted (204) as always, and the
    // server's answer arrives on the session's poll.
    let poll = async || {
        let req = with_body(request("POST", gate.addr, "/sockjs/123/xhrsess/xhr"), "");
        let resp = send(gate.addr, req).await.unwrap();
        assert_eq!(resp.status(), 200);
        String::from_utf8_lossy(resp.body()).to_string()
    };
    assert_eq!(poll().await, "o\n");
    let req = with_body(
        request("POST", gate.addr, "/sockjs/123/xhrsess/xhr_send")
            .header("content-type", "text/plain"),
        serde_json::to_string(&vec![login("9", "dead-resume-token")]).unwrap(),
    );
    let resp = send(gate.addr, req).await.unwrap();
    assert_eq!(resp.status(), 204);
    let want = format!(
        "a{}\n",
        serde_json::to_string(&vec![refused("9"), updated("9")]).unwrap()
    );
    assert_eq!(poll().await, want);
    assert_eq!(upstream.seen_path("xhr_send").len(), 1);

    // The revoked token never reached the server; decoys of its length did.
    assert!(!upstream.ever_saw("dead-resume-token"));
    let decoy_logins = upstream
        .ddp_received()
        .iter()
        .filter(|m| m.contains(r#""resume":""#) && !m.contains("fresh-resume-token"))
        .count();
    assert_eq!(decoy_logins, 5);
    let metrics = gate.metrics().await;
    assert!(
        metrics.contains(r#"sessiongate_revoked_token_requests_total{kind="ddp"} 4"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"sessiongate_revoked_token_requests_total{kind="sockjs"} 1"#),
        "{metrics}"
    );
}

/// Rocket.Chat's REST login also resumes a token (`{"resume": token}`, also
/// form-encoded), and so does its DDP over REST (`method.callAnon/login`): a
/// revoked one goes upstream as a decoy, so the server refuses it itself and
/// never sees the revoked token.
#[tokio::test(flavor = "multi_thread")]
async fn rest_login_resuming_a_revoked_token_reaches_the_server_as_a_decoy() {
    let redis = RedisServer::start();
    let upstream = FakeUpstream::start().await;
    let gate = Gate::start(GateOptions::new(&upstream.url(), &redis.url())).await;
    let id = add_session(&gate, "u1", "rest-dead-token");
    cli_ok(&gate, &["session", "revoke", &id]);
    // Before it knows, the probe below would carry the token to the server.
    gate.wait_revoked_tokens(1).await;
    assert!(
        refused_within(&gate, "rest-dead-token", Duration::from_secs(5))
            .await
            .is_some()
    );
    for (content_type, body) in [
        ("application/json", r#"{"resume":"rest-dead-token"}"#),
        (
            "application/x-www-form-urlencoded",
            "resume=rest-dead-token",
        ),
        (
            "application/json",
            r#"{"totp":{"login":{"resume":"rest-dead-token"},"code":"123456"}}"#,
        ),
    ] {
        let before = upstream.seen_path("/api/v1/login").len();
        let req = with_body(
            request("POST", gate.addr, "/api/v1/login").header("content-type", content_type),
            body,
        );
        send(gate.addr, req).await.expect("gate answers");
        let seen = upstream.seen_path("/api/v1/login");
        assert_eq!(seen.len(), before + 1, "{body}");
        let forwarded = String::from_utf8_lossy(&seen[before].body).to_string();
        assert_eq!(forwarded.len(), body.len(), "{forwarded}");
        assert!(!forwarded.contains("rest-dead-token"), "{forwarded}");
        assert_eq!(
            seen[before].headers["content-length"],
            body.len().to_string().as_str()
        );
    }
    // Rocket.Chat's DDP over REST carries the login as a JSON string.
    let message =
        r#"{"msg":"method","method":"login","params":[{"resume":"rest-dead-token"}],"id":"4"}"#;
    let body = serde_json::json!({ "message": message }).to_string();
    let req = with_body(
        request("POST", gate.addr, "/api/v1/method.callAnon/login")
            .header("content-type", "application/json"),
        body.clone(),
    );
    send(gate.addr, req).await.expect("gate answers");
    let seen = upstream.seen_path("/api/v1/method.callAnon/login");
    assert_eq!(seen.len(), 1);
    let forwarded: serde_json::Value = serde_json::from_slice(&seen[0].body).unwrap();
    let inner = forwarded["message"].as_str().unwrap();
    assert_eq!(inner.len(), message.len(), "{inner}");
    assert!(!inner.contains("rest-dead-token"), "{inner}");
    assert!(inner.starts_with(r#"{"msg":"method","method":"login","params":[{"resume":""#));

    // A live or absent resume token is forwarded untouched.
    let body = r#"{"user":"bob","password":"pw"}"#;
    let req = with_body(
        request("POST", gate.addr, "/api/v1/login").header("content-type", "application/json"),
        body,
    );
    send(gate.addr, req).await.expect("gate answers");
    assert_eq!(
        upstream.seen_path("/api/v1/login").last().unwrap().body,
        body.as_bytes()
    );
    assert!(!upstream.ever_saw("rest-dead-token"));
}
