//! `POST /api/v1/sessions/logout`: every row of the contract, byte-exact,
//! against a real redis-server, set up through the real CLI. The fake
//! upstream must never see a logout request.

use crate::common;

use std::time::Duration;

use common::*;

const ADMIN: &str = "admin1";
const ADMIN_TOKEN: &str = "admin-token-1";
const USER: &str = "user1";
const USER_TOKEN: &str = "user-token-1";
const VICTIM_SESSION: &str = "victimSession0001";
const VICTIM_TOKEN: &str = "victim-token-1";

/// A gate on a private Redis, with an admin (TOTP), a plain user and a victim session.
async fn world_with(extra: &str) -> World {
    with_users(World::start(extra).await)
}

/// The admin, the plain user and the victim session, set up with the CLI.
fn with_users(w: World) -> World {
    let gate = &w.gate;
    cli_ok(
        gate,
        &[
            "user",
            "put",
            ADMIN,
            "--username",
            "root",
            "--roles",
            "admin,user",
        ],
    );
    cli_ok(gate, &["totp", "import", ADMIN, "--secret", SECRET_B32]);
    cli_ok(
        gate,
        &[
            "session",
            "add",
            "--user",
            ADMIN,
            &format!("--token={ADMIN_TOKEN}"),
            "--id",
            "adminSession00001",
        ],
    );
    cli_ok(
        gate,
        &["user", "put", USER, "--username", "bob", "--roles", "user"],
    );
    cli_ok(gate, &["totp", "import", USER, "--secret", SECRET_B32]);
    cli_ok(
        gate,
        &[
            "session",
            "add",
            "--user",
            USER,
            &format!("--token={USER_TOKEN}"),
        ],
    );
    cli_ok(
        gate,
        &[
            "user",
            "put",
            "victim",
            "--username",
            "alice",
            "--roles",
            "user",
        ],
    );
    let id = cli_ok(
        gate,
        &[
            "session",
            "add",
            "--user",
            "victim",
            &format!("--token={VICTIM_TOKEN}"),
            "--id",
            VICTIM_SESSION,
        ],
    );
    assert_eq!(id.trim(), VICTIM_SESSION);
    w
}

async fn world() -> World {
    world_with("").await
}

struct Call<'a> {
    path: &'a str,
    method: &'a str,
    user: Option<&'a str>,
    token: Option<&'a str>,
    code: Option<String>,
    content_type: Option<&'a str>,
    body: String,
    extra: Vec<(&'a str, &'a str)>,
}

impl<'a> Call<'a> {
    fn new(user: &'a str, token: &'a str, session: &str) -> Self {
        Call {
            path: "/api/v1/sessions/logout",
            method: "POST",
            user: Some(user),
            token: Some(token),
            code: None,
            content_type: Some("application/json"),
            body: format!(r#"{{"sessionId":"{session}"}}"#),
            extra: Vec::new(),
        }
    }
    fn admin(session: &str) -> Self {
        Call::new(ADMIN, ADMIN_TOKEN, session)
    }
    fn code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }
    fn header(mut self, name: &'a str, value: &'a str) -> Self {
        self.extra.push((name, value));
        self
    }
    fn body(mut self, content_type: Option<&'a str>, body: &str) -> Self {
        self.content_type = content_type;
        self.body = body.to_string();
        self
    }
    async fn send(self, gate: &Gate) -> (u16, String, http::HeaderMap) {
        let mut b = request(self.method, gate.addr, self.path);
        if let Some(u) = self.user {
            b = b.header("X-User-Id", u);
        }
        if let Some(t) = self.token {
            b = b.header("X-Auth-Token", t);
        }
        if let Some(c) = &self.code {
            b = b.header("x-2fa-code", c.as_str());
        }
        if let Some(ct) = self.content_type {
            b = b.header("content-type", ct);
        }
        for (k, v) in &self.extra {
            b = b.header(*k, *v);
        }
        let resp = send(gate.addr, with_body(b, self.body))
            .await
            .expect("gate answers");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        (
            status,
            String::from_utf8_lossy(resp.body()).to_string(),
            headers,
        )
    }
}

/// The victim's session was not revoked.
fn assert_victim_still_active(gate: &Gate) {
    let out = cli_ok(gate, &["session", "show", VICTIM_SESSION]);
    assert!(out.contains(r#""active":true"#), "{out}");
}

fn assert_api_headers(headers: &http::HeaderMap) {
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["pragma"], "no-cache");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_row_of_the_contract_answers_exactly() {
    // More calls than the default 10/min: the limit has its own test. Every
    // row of the contract needs a fresh second factor: nothing is remembered
    // (the remember window has its own tests).
    let w = world_with("rate_limit_per_minute = 100\n[totp]\nremember_seconds = 0").await;
    let g = &w.gate;

    // Row 1: missing headers, unknown token, token of another user.
    for call in [
        Call {
            user: None,
            ..Call::admin(VICTIM_SESSION)
        },
        Call {
            token: None,
            ..Call::admin(VICTIM_SESSION)
        },
        Call::new(ADMIN, "no-such-token", VICTIM_SESSION),
        Call::new(USER, ADMIN_TOKEN, VICTIM_SESSION),
    ] {
        let (status, body, headers) = call.send(g).await;
        assert_eq!((status, body.as_str()), (401, UNAUTHORIZED));
        assert_api_headers(&headers);
    }

    // Row 3: body validation, in ajv's order.
    let cases: [(Option<&str>, &str, String); 9] = [
        (
            Some("application/json"),
            "{}",
            invalid("must have required property 'sessionId'"),
        ),
        (
            Some("application/json"),
            r#"{"sessionId":42}"#,
            invalid("must be string"),
        ),
        (
            Some("application/json"),
            r#"{"sessionId":"x","extra":1}"#,
            invalid("must NOT have additional properties"),
        ),
        (
            Some("application/json"),
            r#"{"sessionId":"#,
            invalid("Invalid request body"),
        ),
        (
            Some("text/plain"),
            r#"{"sessionId":"x"}"#,
            invalid("Invalid request body"),
        ),
        (
            Some("application/json"),
            "",
            invalid("must have required property 'sessionId'"),
        ),
        (
            Some("application/json"),
            r#"{"sessionId":null}"#,
            invalid("must be string"),
        ),
        (
            Some("application/json"),
            r#"{"payload":"{\"sessionId\":7}"}"#,
            invalid("must be string"),
        ),
        (
            Some("application/x-www-form-urlencoded"),
            "sessionId=a&x=b",
            invalid("must NOT have additional properties"),
        ),
    ];
    for (ct, body, expected) in cases {
        let (status, got, headers) = Call::admin("x").body(ct, body).send(g).await;
        assert_eq!(
            (status, got.as_str()),
            (400, expected.as_str()),
            "body {body:?}"
        );
        assert_api_headers(&headers);
    }

    // Row 4: a user without the permission.
    let (status, body, _) = Call::new(USER, USER_TOKEN, VICTIM_SESSION)
        .code(code_now())
        .send(g)
        .await;
    assert_eq!((status, body.as_str()), (403, FORBIDDEN));

    // Row 5a: no code, and an empty one.
    let (status, body, _) = Call::admin(VICTIM_SESSION).send(g).await;
    assert_eq!((status, body.as_str()), (400, TOTP_REQUIRED));
    let (status, body, _) = Call::admin(VICTIM_SESSION).code("").send(g).await;
    assert_eq!((status, body.as_str()), (400, TOTP_REQUIRED));

    // Row 5b: a wrong code.
    let wrong = if code_now() == "000000" {
        "111111"
    } else {
        "000000"
    };
    let (status, body, _) = Call::admin(VICTIM_SESSION).code(wrong).send(g).await;
    assert_eq!((status, body.as_str()), (400, TOTP_INVALID));

    // Row 6: a good code but no such session (the code is used up).
    let code = code_now();
    let (status, body, _) = Call::admin("noSuchSession0001")
        .code(code.clone())
        .send(g)
        .await;
    assert_eq!((status, body.as_str()), (404, NOT_FOUND));

    // Row 7: success with a backup code (the TOTP code of this step is spent).
    let codes = cli_ok(g, &["totp", "backup-codes", ADMIN]);
    let backup = codes.lines().next().unwrap().to_string();
    let (status, body, headers) = Call::admin(VICTIM_SESSION).code(backup).send(g).await;
    assert_eq!(
        (status, body.as_str()),
        (200, ok_body(VICTIM_SESSION).as_str())
    );
    assert_api_headers(&headers);

    // Row 6 again: the session is no longer active.
    let backup2 = codes.lines().nth(1).unwrap().to_string();
    let (status, body, _) = Call::admin(VICTIM_SESSION).code(backup2).send(g).await;
    assert_eq!((status, body.as_str()), (404, NOT_FOUND));

    // The revoked token is refused on the forwarding path.
    let resp = send(
        g.addr,
        with_body(
            request("GET", g.addr, "/api/v1/me")
                .header("X-User-Id", "victim")
                .header("X-Auth-Token", VICTIM_TOKEN),
            "",
        ),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.body(), UNAUTHORIZED);

    assert!(
        w.upstream.seen_path("/sessions/logout").is_empty(),
        "upstream saw a logout request"
    );
    // The only /api/v1/me requests the upstream may see are the gate's own
    // lookups of unknown caller tokens (SPEC §2 (b)), never the victim's.
    assert!(
        !w.upstream.seen_path("/api/v1/me").iter().any(|seen| seen
            .headers
            .get("x-auth-token")
            .is_some_and(|t| t == VICTIM_TOKEN)),
        "revoked token was forwarded"
    );
    let metrics = g.metrics().await;
    assert!(
        metrics.contains(r#"sessiongate_logout_outcomes_total{outcome="totp-invalid"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"sessiongate_logout_outcomes_total{outcome="success"} 1"#));
}

#[tokio::test(flavor = "multi_thread")]
async fn user_without_totp_is_refused_fail_closed() {
    let w = world().await;
    cli_ok(&w.gate, &["user", "put", "admin2", "--roles", "admin"]);
    cli_ok(
        &w.gate,
        &["session", "add", "--user", "admin2", "--token=admin2-token"],
    );
    let (status, body, _) = Call::new("admin2", "admin2-token", VICTIM_SESSION)
        .code("123456")
        .send(&w.gate)
        .await;
    assert_eq!((status, body.as_str()), (403, NOT_CONFIGURED));
    // Also without a code: the policy answers before 5a.
    let (status, body, _) = Call::new("admin2", "admin2-token", VICTIM_SESSION)
        .send(&w.gate)
        .await;
    assert_eq!((status, body.as_str()), (403, NOT_CONFIGURED));
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limit_answers_429_with_retry_after() {
    let w = world_with("rate_limit_per_minute = 3").await;
    for _ in 0..3 {
        let (status, _, _) = Call::admin(VICTIM_SESSION).send(&w.gate).await;
        assert_eq!(status, 400);
    }
    let (status, body, headers) = Call::admin(VICTIM_SESSION).send(&w.gate).await;
    assert_eq!(status, 429);
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "retry-after {retry}");
    assert_eq!(
        body,
        format!(
            r#"{{"success":false,"error":"Error, too many requests. Please slow down. You must wait {retry} seconds before trying this endpoint again. [error-too-many-requests]"}}"#
        )
    );
    assert_api_headers(&headers);
    // Check 1 comes first: a bad token is still 401, not 429.
    let (status, _, _) = Call::new(ADMIN, "bad", VICTIM_SESSION).send(&w.gate).await;
    assert_eq!(status, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn sixth_attempt_after_five_totp_failures_is_429_even_with_a_correct_code() {
    let w = world().await;
    let wrong = if code_now() == "000000" {
        "111111"
    } else {
        "000000"
    };
    for _ in 0..5 {
        let (status, body, _) = Call::admin(VICTIM_SESSION).code(wrong).send(&w.gate).await;
        assert_eq!((status, body.as_str()), (400, TOTP_INVALID));
    }
    let (status, body, headers) = Call::admin(VICTIM_SESSION)
        .code(code_now())
        .send(&w.gate)
        .await;
    assert_eq!(status, 429, "{body}");
    assert!(headers.contains_key("retry-after"));
    assert!(body.contains("[error-too-many-requests]"));
    assert_victim_still_active(&w.gate);
}

#[tokio::test(flavor = "multi_thread")]
async fn accepted_code_is_refused_on_another_replica_and_backup_codes_are_single_use() {
    // Replays from the same client would be inside its remember window (where
    // codes are ignored): this test is about the codes themselves.
    let w = world_with("[totp]\nremember_seconds = 0").await;
    let opts = w.gate.opts.clone();
    let other = Gate::start(opts).await;
    cli_ok(
        &w.gate,
        &[
            "session",
            "add",
            "--user",
            "victim",
            "--token=second-victim",
            "--id",
            "victimSession0002",
        ],
    );
    let code = code_now();
    let (status, body, _) = Call::admin(VICTIM_SESSION)
        .code(code.clone())
        .send(&w.gate)
        .await;
    assert_eq!(
        (status, body.as_str()),
        (200, ok_body(VICTIM_SESSION).as_str())
    );
    let (status, body, _) = Call::admin("victimSession0002")
        .code(code)
        .send(&other)
        .await;
    assert_eq!(
        (status, body.as_str()),
        (400, TOTP_INVALID),
        "replay on replica B"
    );

    let codes = cli_ok(&w.gate, &["totp", "backup-codes", ADMIN]);
    let codes: Vec<&str> = codes.lines().collect();
    assert_eq!(codes.len(), 10);
    assert!(codes.iter().all(|c| {
        c.len() == 8
            && c.chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit())
    }));
    // Upper case with a hyphen is the same code.
    let dressed = format!("{}-{}", &codes[0][..4].to_uppercase(), &codes[0][4..]);
    let (status, _, _) = Call::admin("victimSession0002")
        .code(dressed)
        .send(&other)
        .await;
    assert_eq!(status, 200);
    cli_ok(
        &w.gate,
        &[
            "session",
            "add",
            "--user",
            "victim",
            "--token=third-victim",
            "--id",
            "victimSession0003",
        ],
    );
    let (status, body, _) = Call::admin("victimSession0003")
        .code(codes[0])
        .send(&w.gate)
        .await;
    assert_eq!(
        (status, body.as_str()),
        (400, TOTP_INVALID),
        "backup code reused"
    );
    assert!(w.upstream.seen_path("logout").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn every_bypass_variant_is_answered_by_the_gate() {
    let w = world().await;
    let variants = [
        "/api/v1/sessions/logou%74",
        "/api/v1/sessions/logout/",
        "/api/v1/sessions/logout//",
        "/api/v1/sessions/logout%20",
        "/api/v1/sessions/logout%09/",
        "/api/v1/sessions/logout?x=1",
        "/api/v1/sessions%2Flogout",
        "/api/v1/sessions/./logout",
        "/api/v1/sessions/x/../logout",
        "/api/v1/sessions/logout;a=b",
        "/api/v1//sessions/logout",
        "/%61pi/v1/sessions/logout",
        "/api/v1/sessions/logou%2574",
        // SPEC §12: what Rocket.Chat's real routers also route there.
        "//api/v1/sessions/logout",
        "///api/v1/sessions/logout?x=1",
        "/%20api/v1/sessions/logout",
        "/%E3%80%80/%20api/v1/sessions/logout",
        "/API/v1/sessions/logout",
        "/api/V1/SESSIONS/Logout/",
        "/api\\v1\\sessions\\logout",
    ];
    for path in variants {
        let (status, body, _) = Call {
            path,
            ..Call::new(ADMIN, "wrong", VICTIM_SESSION)
        }
        .send(&w.gate)
        .await;
        assert_eq!((status, body.as_str()), (401, UNAUTHORIZED), "{path}");
    }
    // Method overrides make any method the endpoint.
    for (name, value) in [
        ("X-HTTP-Method-Override", "POST"),
        ("x-http-method", "post"),
        ("X-Method-Override", "Post"),
    ] {
        let mut call = Call::new(ADMIN, "wrong", VICTIM_SESSION);
        call.method = "GET";
        call.extra = vec![(name, value)];
        let (status, _, _) = call.send(&w.gate).await;
        assert_eq!(status, 401, "{name}");
    }
    let mut call = Call::new(ADMIN, "wrong", VICTIM_SESSION);
    call.method = "PUT";
    call.path = "/api/v1/sessions/logout?_method=POST";
    assert_eq!(call.send(&w.gate).await.0, 401);

    // Absolute-form request target over a raw socket.
    let answer = raw_exchange(
        w.gate.addr,
        b"POST http://chat.example/api/v1/sessions/logout HTTP/1.1\r\nHost: chat.example\r\nContent-Length: 2\r\n\r\n{}",
        Duration::from_millis(500),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(answer.ends_with(UNAUTHORIZED), "{answer}");
    assert!(
        w.upstream.seen_path("logou").is_empty(),
        "{:?}",
        w.upstream.seen()
    );
    assert!(w.upstream.seen_path("sessions").is_empty());

    // A look-alike no router folds to the path is forwarded unchanged.
    let (status, _, _) = Call {
        path: "/api/v1/sessions/logou%EF%BD%94",
        ..Call::admin(VICTIM_SESSION)
    }
    .send(&w.gate)
    .await;
    assert_eq!(status, 200, "forwarded to the echo upstream");
    assert_eq!(
        w.upstream.seen().last().map(|s| s.uri.clone()).as_deref(),
        Some("/api/v1/sessions/logou%EF%BD%94")
    );
    let mut get = Call::admin(VICTIM_SESSION);
    get.method = "GET";
    assert_eq!(get.send(&w.gate).await.0, 200);
    assert_eq!(w.upstream.seen().last().unwrap().method, "GET");
}

#[tokio::test(flavor = "multi_thread")]
async fn http2_logout_is_intercepted_too() {
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    let w = world().await;
    let stream = tokio::net::TcpStream::connect(w.gate.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = http::Request::post(format!("http://{}/api/v1/sessions/logou%74", w.gate.addr))
        .header("x-user-id", ADMIN)
        .header("x-auth-token", ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(format!(
            r#"{{"sessionId":"{VICTIM_SESSION}"}}"#
        ))))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 400);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, TOTP_REQUIRED);
    assert!(w.upstream.seen_path("logou").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_body_answers_413_and_keep_alive_survives_small_answers() {
    let w = world().await;
    let big = format!(r#"{{"sessionId":"{}"}}"#, "x".repeat(70 * 1024));
    let (status, body, headers) = Call::admin(VICTIM_SESSION)
        .body(Some("application/json"), &big)
        .send(&w.gate)
        .await;
    assert_eq!((status, body.as_str()), (413, TOO_LARGE));
    assert_eq!(headers["connection"], "close");

    // Pipelined: a 401 answer, then a forwarded request, on one connection.
    let two = b"POST /api/v1/sessions/logout HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{\"sessionId\":1}GET /after HTTP/1.1\r\nHost: x\r\n\r\n";
    let answer = raw_exchange(w.gate.addr, two, Duration::from_millis(800)).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(
        answer.contains("HTTP/1.1 200"),
        "second request answered: {answer}"
    );
    assert_eq!(w.upstream.seen_path("/after").len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_down_answers_503_never_401_and_forwarding_goes_on() {
    let mut w = world_with("").await;
    w.redis.kill();
    let started = std::time::Instant::now();
    let (status, body, headers) = Call::admin(VICTIM_SESSION)
        .code(code_now())
        .send(&w.gate)
        .await;
    assert_eq!((status, body.as_str()), (503, STORE_DOWN));
    assert_api_headers(&headers);
    assert!(started.elapsed() < Duration::from_secs(5));
    // Even an unknown token gets 503: the gate cannot tell, so it does not guess.
    let (status, _, _) = Call::new(ADMIN, "unknown", VICTIM_SESSION)
        .send(&w.gate)
        .await;
    assert_eq!(status, 503);
    let resp = send(
        w.gate.addr,
        with_body(request("GET", w.gate.addr, "/still/forwarded"), ""),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(w.upstream.seen_path("logout").is_empty());

    // A hanging Redis (SIGSTOP) is bounded by the command timeout too.
    w.redis.restart();
    w.redis.pause();
    let started = std::time::Instant::now();
    let (status, body, _) = Call::admin(VICTIM_SESSION)
        .code(code_now())
        .send(&w.gate)
        .await;
    assert_eq!((status, body.as_str()), (503, STORE_DOWN));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    w.redis.resume();
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_log_records_attempts_without_tokens_or_codes() {
    // The binary's own log output.
    let w = with_users(World::binary("").await);
    let code = code_now();
    let (status, _, _) = Call::admin(VICTIM_SESSION)
        .code(code.clone())
        .send(&w.gate)
        .await;
    assert_eq!(status, 200);
    let log = audit_log(&w.gate).await;
    assert!(log.contains(VICTIM_SESSION), "{log}");
    assert!(log.contains("success"));
    for secret in [
        ADMIN_TOKEN,
        VICTIM_TOKEN,
        SECRET_B32,
        code.as_str(),
        TEST_TOTP_KEY,
    ] {
        assert!(!log.contains(secret), "log leaks {secret}: {log}");
    }
}

/// The gate's log once it holds a `sessions.logout` audit line.
async fn audit_log(gate: &Gate) -> String {
    assert!(
        eventually(Duration::from_secs(2), async || gate
            .log()
            .contains("sessions.logout"))
        .await
    );
    gate.log()
}

/// Every audit line names the client the way the rest of the gate does
/// (behind a trusted proxy: the last X-Forwarded-For entry), and lines logged
/// while serving a request carry the connection's and the request's span
/// fields (peer, tls, route) without each line adding them by hand.
#[tokio::test(flavor = "multi_thread")]
async fn audit_line_names_the_forwarded_client_and_the_spans_name_peer_and_route() {
    // The binary's own log output.
    let w = with_users(World::binary(BEHIND_PROXY).await);
    let (status, _, _) = Call::admin(VICTIM_SESSION)
        .header("x-forwarded-for", "198.51.100.1, 203.0.113.9")
        .send(&w.gate)
        .await;
    assert_eq!(status, 400, "no code: totp-required");
    let log = audit_log(&w.gate).await;
    let line = log
        .lines()
        .find(|l| l.contains("sessions.logout"))
        .expect("an audit line");
    assert!(line.contains("client_ip=203.0.113.9"), "{line}");
    assert!(line.contains("conn{peer=127.0.0.1:"), "{line}");
    assert!(line.contains("tls=false"), "{line}");
    assert!(
        line.contains("request{route=\"sessions_logout\"}"),
        "{line}"
    );
}

// ---------------------------------------------------------------------------
// The remembered second factor (SPEC §11, `totp.remember_seconds`).

/// The gate trusts the loopback peer as a proxy, so each call names its
/// client address in X-Forwarded-For (the gate takes the last entry).
const BEHIND_PROXY: &str = "rate_limit_per_minute = 0\n[server]\ntrusted_proxies = [\"127.0.0.1\"]";

/// A victim session `id` with its own token.
fn add_victim(gate: &Gate, id: &str) {
    cli_ok(
        gate,
        &[
            "session",
            "add",
            "--user",
            "victim",
            &format!("--token=token-of-{id}"),
            "--id",
            id,
        ],
    );
}

/// The admin's call as one client: an address and a browser.
fn admin_from<'a>(ip: &'a str, agent: &'a str, session: &str) -> Call<'a> {
    Call::admin(session)
        .header("x-forwarded-for", ip)
        .header("user-agent", agent)
}

fn wrong_code() -> &'static str {
    if code_now() == "000000" {
        "111111"
    } else {
        "000000"
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_verified_code_is_remembered_for_the_same_token_address_and_agent() {
    let w = world_with(BEHIND_PROXY).await;
    let g = &w.gate;
    for id in [
        "victimSession0002",
        "victimSession0003",
        "victimSession0004",
    ] {
        add_victim(g, id);
    }
    let here = ("203.0.113.10", FIREFOX);
    let codes = cli_ok(g, &["totp", "backup-codes", ADMIN]);
    let backup: Vec<&str> = codes.lines().collect();

    // The first call needs a code; it opens the window.
    let (status, body, _) = admin_from(here.0, here.1, VICTIM_SESSION).send(g).await;
    assert_eq!((status, body.as_str()), (400, TOTP_REQUIRED));
    let (status, body, _) = admin_from(here.0, here.1, VICTIM_SESSION)
        .code(code_now())
        .send(g)
        .await;
    assert_eq!(
        (status, body.as_str()),
        (200, ok_body(VICTIM_SESSION).as_str())
    );

    // Same token, address and agent: no code needed.
    let (status, body, headers) = admin_from(here.0, here.1, "victimSession0002")
        .send(g)
        .await;
    assert_eq!(
        (status, body.as_str()),
        (200, ok_body("victimSession0002").as_str())
    );
    assert_api_headers(&headers);
    // A code sent inside the window is ignored: a wrong one is not refused,
    // a backup code is not used up (another client can still spend it).
    let (status, body, _) = admin_from(here.0, here.1, "victimSession0003")
        .code(wrong_code())
        .send(g)
        .await;
    assert_eq!(
        (status, body.as_str()),
        (200, ok_body("victimSession0003").as_str())
    );
    let (status, body, _) = admin_from(here.0, here.1, "noSuchSession0001")
        .code(backup[0])
        .send(g)
        .await;
    assert_eq!((status, body.as_str()), (404, NOT_FOUND));
    let shown = cli_ok(g, &["user", "show", ADMIN]);
    assert!(shown.contains(r#""backupCodesLeft":10"#), "{shown}");

    // Another address or another agent: a code is required again.
    for (ip, agent) in [("203.0.113.11", FIREFOX), (here.0, CHROME)] {
        let (status, body, _) = admin_from(ip, agent, "victimSession0004").send(g).await;
        assert_eq!(
            (status, body.as_str()),
            (400, TOTP_REQUIRED),
            "{ip} {agent}"
        );
    }
    // ... and the backup code the remembered client sent is still good there.
    let (status, body, _) = admin_from("203.0.113.11", FIREFOX, "victimSession0004")
        .code(backup[0])
        .send(g)
        .await;
    assert_eq!(
        (status, body.as_str()),
        (200, ok_body("victimSession0004").as_str())
    );
    // That verified code moved the token's window to the new client (one per
    // token, as in Rocket.Chat): the first client needs a code again.
    let (status, body, _) = admin_from("203.0.113.11", FIREFOX, "noSuchSession0001")
        .send(g)
        .await;
    assert_eq!((status, body.as_str()), (404, NOT_FOUND));
    let (status, body, _) = admin_from(here.0, here.1, "noSuchSession0001")
        .send(g)
        .await;
    assert_eq!((status, body.as_str()), (400, TOTP_REQUIRED));

    // Another token of the same user, from the remembered client: a code again.
    cli_ok(
        g,
        &[
            "session",
            "add",
            "--user",
            ADMIN,
            "--token=admin-token-2",
            "--id",
            "adminSession00002",
        ],
    );
    let (status, body, _) = Call::new(ADMIN, "admin-token-2", "noSuchSession0001")
        .header("x-forwarded-for", here.0)
        .header("user-agent", here.1)
        .send(g)
        .await;
    assert_eq!((status, body.as_str()), (400, TOTP_REQUIRED));

    // Four calls went through a window, four logouts succeeded.
    let metrics = g.metrics().await;
    assert_eq!(remembered(&metrics, "sessions_logout"), 4);
    assert_eq!(remembered(&metrics, "sessions_list_all"), 0);
    assert!(
        metrics.contains(r#"sessiongate_logout_outcomes_total{outcome="success"} 4"#),
        "{metrics}"
    );
    assert!(w.upstream.seen_path("logout").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn every_replica_honours_the_window_and_permission_and_rate_limit_still_apply() {
    let w = world_with("rate_limit_per_minute = 4").await;
    let other = Gate::start(w.gate.opts.clone()).await;
    add_victim(&w.gate, "victimSession0002");
    // Replica A verifies the code; replica B lets the same client through.
    let (status, _, _) = Call::admin(VICTIM_SESSION)
        .header("user-agent", FIREFOX)
        .code(code_now())
        .send(&w.gate)
        .await;
    assert_eq!(status, 200);
    let (status, body, _) = Call::admin("victimSession0002")
        .header("user-agent", FIREFOX)
        .send(&other)
        .await;
    assert_eq!(
        (status, body.as_str()),
        (200, ok_body("victimSession0002").as_str())
    );
    assert_eq!(remembered(&other.metrics().await, "sessions_logout"), 1);

    // The permission is still checked inside the window: a user who lost the
    // role is refused before any second factor.
    cli_ok(&w.gate, &["user", "put", ADMIN, "--roles", "user"]);
    let (status, body, _) = Call::admin("noSuchSession0001")
        .header("user-agent", FIREFOX)
        .send(&w.gate)
        .await;
    assert_eq!((status, body.as_str()), (403, FORBIDDEN));
    cli_ok(&w.gate, &["user", "put", ADMIN, "--roles", "admin,user"]);

    // The per-user rate limit (4/min here) counts remembered calls too.
    let (status, body, _) = Call::admin("noSuchSession0001")
        .header("user-agent", FIREFOX)
        .send(&w.gate)
        .await;
    assert_eq!((status, body.as_str()), (404, NOT_FOUND), "4th call");
    let (status, body, headers) = Call::admin("noSuchSession0001")
        .header("user-agent", FIREFOX)
        .send(&other)
        .await;
    assert_eq!(status, 429, "{body}");
    assert!(headers.contains_key("retry-after"));
    assert!(body.ends_with("[error-too-many-requests]\"}"), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn totp_lockout_answers_429_inside_the_window() {
    let w = world_with("rate_limit_per_minute = 0").await;
    let (status, _, _) = Call::admin("noSuchSession0001")
        .header("user-agent", FIREFOX)
        .code(code_now())
        .send(&w.gate)
        .await;
    assert_eq!(status, 404);
    // Codes sent inside the window are ignored, so its own client cannot
    // fail: another client of the user (other agent) fails five times.
    for _ in 0..5 {
        let (status, body, _) = Call::admin(VICTIM_SESSION)
            .header("user-agent", CHROME)
            .code(wrong_code())
            .send(&w.gate)
            .await;
        assert_eq!((status, body.as_str()), (400, TOTP_INVALID));
    }
    let (status, body, headers) = Call::admin(VICTIM_SESSION)
        .header("user-agent", FIREFOX)
        .send(&w.gate)
        .await;
    assert_eq!(status, 429, "{body}");
    assert!(headers.contains_key("retry-after"));
    assert_victim_still_active(&w.gate);
}

#[tokio::test(flavor = "multi_thread")]
async fn remember_seconds_zero_asks_for_a_code_on_every_call() {
    let w = world_with("[totp]\nremember_seconds = 0").await;
    let (status, _, _) = Call::admin("noSuchSession0001")
        .code(code_now())
        .send(&w.gate)
        .await;
    assert_eq!(status, 404);
    let (status, body, _) = Call::admin(VICTIM_SESSION).send(&w.gate).await;
    assert_eq!((status, body.as_str()), (400, TOTP_REQUIRED));
    let metrics = w.gate.metrics().await;
    assert_eq!(remembered(&metrics, "sessions_logout"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_window_ends_after_remember_seconds_even_while_used() {
    let w = world_with("rate_limit_per_minute = 0\n[totp]\nremember_seconds = 2").await;
    let opened = std::time::Instant::now();
    let (status, _, _) = Call::admin("noSuchSession0001")
        .code(code_now())
        .send(&w.gate)
        .await;
    assert_eq!(status, 404);
    // Used every 100 ms until it ends: use never extends it.
    let deadline = opened + Duration::from_secs(8);
    let mut uses = 0;
    let ended = loop {
        let (status, body, _) = Call::admin("noSuchSession0001").send(&w.gate).await;
        match (status, body.as_str()) {
            (404, NOT_FOUND) => uses += 1,
            (400, TOTP_REQUIRED) => break opened.elapsed(),
            other => panic!("unexpected {other:?}"),
        }
        assert!(std::time::Instant::now() < deadline, "window never ended");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(uses > 0);
    assert!(
        ended >= Duration::from_millis(1800) && ended < Duration::from_secs(4),
        "a 2 s window ended after {ended:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_revocation_of_the_callers_token_ends_its_window() {
    let w = world_with("rate_limit_per_minute = 0").await;
    let g = &w.gate;
    let codes = cli_ok(g, &["totp", "backup-codes", ADMIN]);
    let backup: Vec<&str> = codes.lines().collect();
    let window_of = |token: &str| {
        format!(
            "sg:totp:remember:{}",
            sessiongate::auth::encode_hash(&sessiongate::auth::hash_token(token))
        )
    };
    // Four admin sessions, each with a window opened by a backup code.
    let sessions = [
        "adminSessionA0001",
        "adminSessionB0001",
        "adminSessionC0001",
        "adminSessionD0001",
    ];
    for (i, id) in sessions.iter().enumerate() {
        let token = format!("admin-token-{id}");
        cli_ok(
            g,
            &[
                "session",
                "add",
                "--user",
                ADMIN,
                &format!("--token={token}"),
                "--id",
                id,
            ],
        );
        let (status, _, _) = Call::new(ADMIN, &token, "noSuchSession0001")
            .code(backup[i])
            .send(g)
            .await;
        assert_eq!(status, 404);
        let (status, _, _) = Call::new(ADMIN, &token, "noSuchSession0001").send(g).await;
        assert_eq!(status, 404, "remembered");
        assert_eq!(w.redis.cmd(&["EXISTS", &window_of(&token)]).int(), Some(1));
    }
    let token = |i: usize| format!("admin-token-{}", sessions[i]);
    // A: the logout endpoint, on the caller's own session (no code: remembered).
    let (status, body, _) = Call::new(ADMIN, &token(0), sessions[0]).send(g).await;
    assert_eq!(
        (status, body.as_str()),
        (200, ok_body(sessions[0]).as_str())
    );
    // B: logout.me.
    let resp = send(
        g.addr,
        with_body(
            request("POST", g.addr, "/api/v1/sessions/logout.me")
                .header("X-User-Id", ADMIN)
                .header("X-Auth-Token", token(1))
                .header("content-type", "application/json"),
            format!(r#"{{"sessionId":"{}"}}"#, sessions[1]),
        ),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    // C: the CLI.
    cli_ok(g, &["session", "revoke", sessions[2]]);
    // D: the user's own logout, accepted by the upstream.
    let resp = send(
        g.addr,
        with_body(
            request("POST", g.addr, "/api/v1/logout")
                .header("X-User-Id", ADMIN)
                .header("X-Auth-Token", token(3)),
            "",
        ),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    for (i, id) in sessions.iter().enumerate() {
        assert_eq!(
            w.redis.cmd(&["EXISTS", &window_of(&token(i))]).int(),
            Some(0),
            "window of {id} survived its revocation"
        );
    }
    // The remaining admin token still needs its own code.
    let (status, body, _) = Call::admin("noSuchSession0001").send(g).await;
    assert_eq!((status, body.as_str()), (400, TOTP_REQUIRED));
}
