//! `POST /api/v1/sessions/logout`: every row of the contract, byte-exact,
//! against a real redis-server, set up through the real CLI. The fake
//! upstream must never see a logout request.

mod common;

use std::time::Duration;

use common::*;
use sessiongate::totp;

const SECRET_B32: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
const ADMIN: &str = "admin1";
const ADMIN_TOKEN: &str = "admin-token-1";
const USER: &str = "user1";
const USER_TOKEN: &str = "user-token-1";
const VICTIM_SESSION: &str = "victimSession0001";
const VICTIM_TOKEN: &str = "victim-token-1";

const UNAUTHORIZED: &str = r#"{"status":"error","message":"You must be logged in to do this."}"#;
const FORBIDDEN: &str = r#"{"success":false,"error":"User does not have the permissions required for this action [error-unauthorized]"}"#;
const TOTP_REQUIRED: &str = r#"{"success":false,"error":"TOTP Required [totp-required]","errorType":"totp-required","details":{"method":"totp","codeGenerated":false,"availableMethods":["totp"]}}"#;
const TOTP_INVALID: &str = r#"{"success":false,"error":"TOTP Invalid [totp-invalid]","errorType":"totp-invalid","details":{"method":"totp","codeGenerated":false}}"#;
const NOT_FOUND: &str = r#"{"success":false,"error":"Session not found"}"#;
const NOT_CONFIGURED: &str = r#"{"success":false,"error":"Two-factor authentication is not configured for this user [totp-not-configured]","errorType":"totp-not-configured"}"#;
const STORE_DOWN: &str = r#"{"success":false,"error":"Session store unavailable [error-store-unavailable]","errorType":"error-store-unavailable"}"#;
const TOO_LARGE: &str = r#"{"success":false,"error":"Request body too large [error-body-too-large]","errorType":"error-body-too-large"}"#;

fn invalid(message: &str) -> String {
    format!(
        r#"{{"success":false,"error":"{message} [invalid-params]","errorType":"invalid-params"}}"#
    )
}

fn ok_body(session: &str) -> String {
    format!(r#"{{"sessionId":"{session}","success":true}}"#)
}

fn code_now() -> String {
    let secret = totp::decode_base32_secret(SECRET_B32).unwrap();
    totp::code_at(&secret, sessiongate::clock::unix_secs())
}

/// A gate on a private Redis, with an admin (TOTP), a plain user and a victim session.
struct World {
    redis: RedisServer,
    upstream: FakeUpstream,
    gate: Gate,
}

async fn world_with(extra: &str) -> World {
    let redis = RedisServer::start();
    let upstream = FakeUpstream::start().await;
    let opts = GateOptions::new(&upstream.url(), &redis.url())
        .toml(&format!("[logout]\ndeny_delay_ms = 0\n{extra}"));
    let gate = Gate::start(opts).await;
    cli_ok(
        &gate,
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
    cli_ok(&gate, &["totp", "import", ADMIN, "--secret", SECRET_B32]);
    cli_ok(
        &gate,
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
        &gate,
        &["user", "put", USER, "--username", "bob", "--roles", "user"],
    );
    cli_ok(&gate, &["totp", "import", USER, "--secret", SECRET_B32]);
    cli_ok(
        &gate,
        &[
            "session",
            "add",
            "--user",
            USER,
            &format!("--token={USER_TOKEN}"),
        ],
    );
    cli_ok(
        &gate,
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
        &gate,
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
    World {
        redis,
        upstream,
        gate,
    }
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

fn assert_api_headers(headers: &http::HeaderMap) {
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["pragma"], "no-cache");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_row_of_the_contract_answers_exactly() {
    // More calls than the default 10/min: the limit has its own test.
    let w = world_with("rate_limit_per_minute = 100").await;
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
    // The session was not revoked.
    let out = cli_ok(&w.gate, &["session", "show", VICTIM_SESSION]);
    assert!(out.contains(r#""active":true"#), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn accepted_code_is_refused_on_another_replica_and_backup_codes_are_single_use() {
    let w = world().await;
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
    assert!(eventually(Duration::from_secs(5), || true).await);
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
    let w = world().await;
    let code = code_now();
    let (status, _, _) = Call::admin(VICTIM_SESSION)
        .code(code.clone())
        .send(&w.gate)
        .await;
    assert_eq!(status, 200);
    assert!(
        eventually(Duration::from_secs(2), || w
            .gate
            .log()
            .contains("sessions.logout"))
        .await
    );
    let log = w.gate.log();
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
