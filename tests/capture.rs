//! Sessions learned from passing traffic (SPEC §2): login capture, user
//! logout, unknown tokens verified with the upstream, and the
//! device-management endpoints the gate answers from what it learned. Real
//! redis-server, an in-process gate, fake upstream; no session is ever
//! imported with the CLI here.

use crate::common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::upstream::LoginOptions;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;

const MOBILE: &str = "RC Mobile; ios 17.1; v4.46.0 (12345)";
const FIREFOX_DEVICE: &str = r#"{"type":"browser","name":"Firefox","longVersion":"121.0","os":{"name":"Linux","version":""},"version":"121.0"}"#;
const CHROME_DEVICE: &str = r#"{"type":"browser","name":"Chrome","longVersion":"120.0.6099.71","os":{"name":"Windows","version":""},"version":"120.0.6099"}"#;
const MOBILE_DEVICE: &str = r#"{"type":"mobile-app","name":"Rocket.Chat","longVersion":"4.46.0","os":{"name":"ios","version":"17.1"},"version":"4.46.0"}"#;

/// Sessions as the CLI reports them (newest first).
fn sessions(gate: &Gate, user: &str) -> Vec<Value> {
    let out = cli_ok(gate, &["session", "list", "--user", user, "--json"]);
    serde_json::from_str::<Value>(&out)
        .expect("session list --json")
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Roles and a TOTP secret for `user` (user settings, not a session import);
/// returns fresh backup codes, one per second-factor call.
fn make_admin(gate: &Gate, user: &str, username: &str) -> Vec<String> {
    cli_ok(
        gate,
        &[
            "user",
            "put",
            user,
            "--username",
            username,
            "--roles",
            "admin,user",
        ],
    );
    cli_ok(gate, &["totp", "import", user, "--secret", SECRET_B32]);
    cli_ok(gate, &["totp", "backup-codes", user])
        .lines()
        .map(str::to_string)
        .collect()
}

/// No rate limit; `logout` lines go under `[logout]`; `sections` are whole
/// extra sections.
async fn world_with(logout: &str, sections: &str, env: &[(&str, &str)]) -> World {
    World::start_with_env(
        &format!("rate_limit_per_minute = 0\n{logout}\n{sections}"),
        env,
    )
    .await
}

async fn world() -> World {
    world_with("", "", &[]).await
}

/// `POST path` with a login body and this User-Agent: (status, body bytes).
async fn login(gate: &Gate, path: &str, user_agent: &str) -> (u16, Bytes) {
    let req = with_body(
        request("POST", gate.addr, path)
            .header("content-type", "application/json")
            .header("user-agent", user_agent)
            .header("accept-encoding", "gzip, deflate, br")
            .header("x-forwarded-for", "6.6.6.6"),
        r#"{"user":"someone","password":"secret"}"#,
    );
    let resp = send(gate.addr, req).await.expect("gate answers");
    (resp.status().as_u16(), resp.body().clone())
}

/// One API call with the caller's credentials: (status, body text).
async fn call(
    gate: &Gate,
    method: &str,
    path: &str,
    creds: Option<(&str, &str)>,
    code: Option<&str>,
    body: &str,
) -> (u16, String) {
    let mut b = request(method, gate.addr, path)
        .header("content-type", "application/json")
        .header("user-agent", "sessiongate-tests/1.0");
    if let Some((user, token)) = creds {
        b = b.header("X-User-Id", user).header("X-Auth-Token", token);
    }
    if let Some(code) = code {
        b = b.header("x-2fa-code", code);
    }
    let resp = send(gate.addr, with_body(b, body.to_string()))
        .await
        .expect("gate answers");
    (
        resp.status().as_u16(),
        String::from_utf8_lossy(resp.body()).to_string(),
    )
}

fn logout_body(session: &str) -> String {
    format!(r#"{{"sessionId":"{session}"}}"#)
}

fn text(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn login_through_the_gate_can_be_logged_out_by_an_admin_without_any_import() {
    let w = world().await;
    w.upstream.set_login("victim", "victim-token");
    let expected = w.upstream.next_login_body();
    let (status, body) = login(&w.gate, "/api/v1/login", FIREFOX).await;
    assert_eq!(status, 200);
    assert_eq!(body, Bytes::from(expected), "answer relayed unchanged");
    // The upstream was asked for an answer it would not compress.
    let seen = &w.upstream.seen_path("/api/v1/login")[0];
    assert!(!seen.headers.contains_key("accept-encoding"));

    let captured = sessions(&w.gate, "victim");
    assert_eq!(captured.len(), 1);
    let victim = &captured[0];
    // The peer's address: X-Forwarded-For from an untrusted client is ignored.
    assert_eq!(victim["ip"], "127.0.0.1");
    assert_eq!(victim["userAgent"], FIREFOX);
    assert_eq!(victim["device"]["type"], "browser");
    assert_eq!(victim["device"]["name"], "Firefox");
    assert_eq!(victim["device"]["version"], "121.0");
    assert_eq!(victim["active"], true);
    let victim_session = text(victim, "sessionId");
    assert_eq!(victim_session.len(), 17);

    // The victim's token works until the admin acts.
    let (status, _) = call(
        &w.gate,
        "GET",
        "/api/v1/subscriptions.get",
        Some(("victim", "victim-token")),
        None,
        "",
    )
    .await;
    assert_eq!(status, 200);

    // The admin's session is captured the same way; roles and TOTP are user settings.
    w.upstream.set_login("admin1", "admin-token");
    let (status, _) = login(&w.gate, "/api/v1/login", CHROME).await;
    assert_eq!(status, 200);
    make_admin(&w.gate, "admin1", "u");
    let (status, body) = call(
        &w.gate,
        "POST",
        "/api/v1/sessions/logout",
        Some(("admin1", "admin-token")),
        Some(&code_now()),
        &logout_body(&victim_session),
    )
    .await;
    assert_eq!((status, body), (200, ok_body(&victim_session)));

    let (status, body) = call(
        &w.gate,
        "GET",
        "/api/v1/subscriptions.get",
        Some(("victim", "victim-token")),
        None,
        "",
    )
    .await;
    // Forwarded without the revoked token: the server's own 401 (SPEC §11).
    assert_eq!((status, body.as_str()), (401, UPSTREAM_UNAUTHORIZED));
    assert_eq!(sessions(&w.gate, "victim")[0]["logoutBy"], "admin1");
    assert!(
        w.gate
            .metrics()
            .await
            .contains(r#"sessiongate_sessions_captured_total{kind="login"} 2"#),
        "{}",
        w.gate.metrics().await
    );
    assert!(
        w.upstream.seen_path("/api/v1/me").is_empty(),
        "no lookup needed"
    );
}

/// Only Rocket.Chat's own success answer logs the session out: a 200 that
/// is not it (here the fake upstream's echo of a GET it does not route)
/// leaves the session and its token alone.
#[tokio::test]
async fn user_logout_answered_without_rocket_chats_success_body_logs_nothing_out() {
    let w = world().await;
    w.upstream.set_login("u1", "tok-1");
    assert_eq!(login(&w.gate, "/api/v1/login", MOBILE).await.0, 200);
    let (status, _) = call(
        &w.gate,
        "GET",
        "/api/v1/logout",
        Some(("u1", "tok-1")),
        None,
        "",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(sessions(&w.gate, "u1")[0]["active"], true);
    let (status, _) = call(
        &w.gate,
        "GET",
        "/api/v1/subscriptions.get",
        Some(("u1", "tok-1")),
        None,
        "",
    )
    .await;
    assert_eq!(status, 200, "the token still works");
}

#[tokio::test]
async fn user_logout_accepted_upstream_logs_the_session_out_here() {
    let w = world().await;
    w.upstream.set_login("u1", "tok-1");
    assert_eq!(login(&w.gate, "/api/v1/login", MOBILE).await.0, 200);
    let (status, body) = call(
        &w.gate,
        "POST",
        "/api/v1/logout",
        Some(("u1", "tok-1")),
        None,
        "",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        r#"{"status":"success","data":{"message":"You've been logged out!"}}"#
    );
    let s = &sessions(&w.gate, "u1")[0];
    assert_eq!(s["active"], false);
    assert_eq!(s["logoutBy"], "u1");
    let (status, body) = call(
        &w.gate,
        "GET",
        "/api/v1/subscriptions.get",
        Some(("u1", "tok-1")),
        None,
        "",
    )
    .await;
    assert_eq!((status, body.as_str()), (401, UPSTREAM_UNAUTHORIZED));
}

#[tokio::test]
async fn login_answers_over_the_bound_are_relayed_byte_identical_and_not_captured() {
    let w = world().await;
    w.upstream.set_login("big", "big-token");
    for chunked in [true, false] {
        w.upstream.set_login_options(LoginOptions {
            padding: 100 * 1024,
            chunked,
            ..LoginOptions::default()
        });
        let expected = w.upstream.next_login_body();
        assert!(expected.len() > 64 * 1024);
        let (status, body) = login(&w.gate, "/api/v1/login", FIREFOX).await;
        assert_eq!(status, 200);
        assert_eq!(body.len(), expected.len(), "chunked={chunked}");
        assert!(body == expected.as_bytes(), "chunked={chunked}");
    }
    assert!(sessions(&w.gate, "big").is_empty());

    // Just under the bound and streamed in chunks: read whole, captured, relayed exactly.
    w.upstream.set_login("near", "near-token");
    w.upstream.set_login_options(LoginOptions {
        padding: 60 * 1024,
        chunked: true,
        ..LoginOptions::default()
    });
    let expected = w.upstream.next_login_body();
    let (status, body) = login(&w.gate, "/api/v1/login", FIREFOX).await;
    assert_eq!(status, 200);
    assert!(body == expected.as_bytes());
    assert_eq!(sessions(&w.gate, "near").len(), 1);
}

#[tokio::test]
async fn failed_login_is_relayed_and_not_captured() {
    let w = world().await;
    // No login configured: the upstream answers Rocket.Chat's 401.
    let (status, body) = login(&w.gate, "/api/v1/login", FIREFOX).await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        r#"{"status":"error","error":"Unauthorized","message":"Unauthorized"}"#
    );
    let out = cli_ok(&w.gate, &["session", "list", "--json"]);
    assert_eq!(out.trim(), "[]");
}

#[tokio::test]
async fn login_is_relayed_when_redis_is_down() {
    let mut w = world_with(
        "",
        "",
        &[
            ("SESSIONGATE_REDIS_COMMAND_TIMEOUT_MS", "300"),
            ("SESSIONGATE_REDIS_CONNECT_TIMEOUT_MS", "200"),
        ],
    )
    .await;
    w.upstream.set_login("u1", "tok-down");
    w.redis.kill();
    let expected = w.upstream.next_login_body();
    let started = Instant::now();
    let (status, body) = login(&w.gate, "/api/v1/login", FIREFOX).await;
    let took = started.elapsed();
    assert_eq!(status, 200);
    assert_eq!(body, Bytes::from(expected));
    assert!(took < Duration::from_millis(1500), "login took {took:?}");
    let metrics = w.gate.metrics().await;
    assert!(
        metrics.contains(r#"sessiongate_session_capture_failures_total{kind="login"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn unknown_admin_token_is_verified_with_the_upstream_once() {
    let w = world().await;
    w.upstream.set_login("victim", "victim-token");
    assert_eq!(login(&w.gate, "/api/v1/login", FIREFOX).await.0, 200);
    let victim_session = text(&sessions(&w.gate, "victim")[0], "sessionId");
    // The admin logged in before the gate existed: no session here.
    make_admin(&w.gate, "admin1", "root");
    w.upstream
        .set_me("admin1", "old-admin-token", "root", &["admin"]);
    w.upstream
        .set_me_name("admin1", "old-admin-token", "Root Admin");

    let (status, body) = call(
        &w.gate,
        "POST",
        "/api/v1/sessions/logout",
        Some(("admin1", "old-admin-token")),
        Some(&code_now()),
        &logout_body(&victim_session),
    )
    .await;
    assert_eq!((status, body), (200, ok_body(&victim_session)));
    let me = w.upstream.seen_path("/api/v1/me");
    assert_eq!(me.len(), 1);
    assert_eq!(me[0].headers["x-user-id"], "admin1");
    assert_eq!(me[0].headers["x-auth-token"], "old-admin-token");
    let learned = sessions(&w.gate, "admin1");
    assert_eq!(learned.len(), 1);
    assert_eq!(learned[0]["ip"], "127.0.0.1");
    assert_eq!(learned[0]["userAgent"], "sessiongate-tests/1.0");
    assert_eq!(learned[0]["host"], w.gate.addr.to_string());
    // The display name from /api/v1/me lands on the user record.
    let shown: Value =
        serde_json::from_str(&cli_ok(&w.gate, &["user", "show", "admin1"])).expect("user show");
    assert_eq!(shown["name"], "Root Admin");

    // A token the upstream refuses: 401, asked once, then refused from the cache.
    for _ in 0..3 {
        let (status, body) = call(
            &w.gate,
            "POST",
            "/api/v1/sessions/logout",
            Some(("admin1", "forged-token")),
            None,
            &logout_body(&victim_session),
        )
        .await;
        assert_eq!((status, body.as_str()), (401, UNAUTHORIZED));
    }
    assert_eq!(w.upstream.seen_path("/api/v1/me").len(), 2);
    let metrics = w.gate.metrics().await;
    assert!(
        metrics.contains(r#"sessiongate_upstream_token_verifications_total{outcome="cached"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"sessiongate_sessions_captured_total{kind="verified"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn roles_come_from_the_upstream_only_when_configured() {
    for (roles_from_upstream, expected) in [(false, FORBIDDEN), (true, NOT_CONFIGURED)] {
        let w = world_with(
            &format!("roles_from_upstream = {roles_from_upstream}"),
            "",
            &[],
        )
        .await;
        w.upstream.set_me("boss", "boss-token", "boss", &["admin"]);
        let (status, body) = call(
            &w.gate,
            "POST",
            "/api/v1/sessions/logout",
            Some(("boss", "boss-token")),
            None,
            &logout_body("anything"),
        )
        .await;
        // With upstream roles the permission passes and the TOTP step refuses.
        assert_eq!((status, body.as_str()), (403, expected));
    }
}

#[tokio::test]
async fn verification_off_never_asks_the_upstream() {
    let w = world_with("verify_unknown_tokens = false", "", &[]).await;
    w.upstream.set_me("boss", "boss-token", "boss", &["admin"]);
    let (status, body) = call(
        &w.gate,
        "POST",
        "/api/v1/sessions/logout",
        Some(("boss", "boss-token")),
        None,
        &logout_body("anything"),
    )
    .await;
    assert_eq!((status, body.as_str()), (401, UNAUTHORIZED));
    assert!(w.upstream.seen_path("/api/v1/me").is_empty());
}

/// One `list`/`info` item as Rocket.Chat's aggregation writes it; `host` is
/// the Host header the login came with (every login here: the gate's address).
fn item(s: &Value, device: &str, host: &str) -> String {
    format!(
        r#"{{"_id":"{id}","sessionId":"{id}","userId":"{user}","device":{device},"host":"{host}","ip":"127.0.0.1","loginAt":"{at}"}}"#,
        id = text(s, "sessionId"),
        user = text(s, "userId"),
        at = text(s, "loginAt"),
    )
}

/// A `list.all`/`info.admin` item: the same plus `_user` (`username`, then
/// `name` when the user has one: the order of Rocket.Chat's user documents).
fn populated(s: &Value, device: &str, host: &str, user: &str) -> String {
    let base = item(s, device, host);
    format!(r#"{},"_user":{user}}}"#, &base[..base.len() - 1])
}

fn page(items: &[String], total: usize, count: i64, offset: i64) -> String {
    format!(
        r#"{{"sessions":[{}],"total":{total},"count":{count},"offset":{offset},"success":true}}"#,
        items.join(",")
    )
}

fn with_success(item: &str) -> String {
    format!(r#"{},"success":true}}"#, &item[..item.len() - 1])
}

fn enc(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[tokio::test]
async fn device_endpoints_answer_with_rocket_chat_shapes() {
    // Each admin call here shows its own second factor being checked; the
    // remembered second factor has its own test below.
    let w = world_with("", "[totp]\nremember_seconds = 0", &[]).await;
    let host = w.gate.addr.to_string();
    let item = |s: &Value, device: &str| item(s, device, &host);
    let populated = |s: &Value, device: &str, user: &str| populated(s, device, &host, user);
    let fresh = |username: &str, name: Option<&str>| LoginOptions {
        fresh_tokens: true,
        username: Some(username.to_string()),
        name: name.map(str::to_string),
        ..LoginOptions::default()
    };
    // victim: three devices (tokens vt-1..3); bob: one (bt-4); admin: one (at-5).
    w.upstream.set_login("victim", "vt");
    w.upstream
        .set_login_options(fresh("alice", Some("Alice Liddell")));
    for ua in [FIREFOX, CHROME, MOBILE] {
        assert_eq!(login(&w.gate, "/api/v1/login", ua).await.0, 200);
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    w.upstream.set_login("bob", "bt");
    w.upstream.set_login_options(fresh("bob", None));
    assert_eq!(login(&w.gate, "/api/v1/login", FIREFOX).await.0, 200);
    tokio::time::sleep(Duration::from_millis(3)).await;
    let codes = make_admin(&w.gate, "admin1", "root");
    w.upstream.set_login("admin1", "at");
    w.upstream
        .set_login_options(fresh("root", Some("Root \"Admin\" Ü")));
    assert_eq!(login(&w.gate, "/api/v1/login", CHROME).await.0, 200);

    let victim = sessions(&w.gate, "victim");
    let (mobile, chrome, firefox) = (&victim[0], &victim[1], &victim[2]);
    assert_eq!(mobile["userAgent"], MOBILE);
    let bob = &sessions(&w.gate, "bob")[0];
    let admin = &sessions(&w.gate, "admin1")[0];
    let me = Some(("victim", "vt-3"));
    let get = |path: String, creds: Option<(&'static str, &'static str)>, code: Option<String>| {
        let gate = &w.gate;
        async move { call(gate, "GET", &path, creds, code.as_deref(), "").await }
    };

    // list: own active sessions, newest first, Rocket.Chat's pagination fields.
    let all_three = [
        item(mobile, MOBILE_DEVICE),
        item(chrome, CHROME_DEVICE),
        item(firefox, FIREFOX_DEVICE),
    ];
    assert_eq!(
        get("/api/v1/sessions/list".into(), me, None).await,
        (200, page(&all_three, 3, 50, 0))
    );
    assert_eq!(
        get("/api/v1/sessions/list?count=2&offset=1".into(), me, None).await,
        (200, page(&all_three[1..], 3, 2, 1))
    );
    assert_eq!(
        get("/api/v1/sessions/list?filter=FIREFOX".into(), me, None).await,
        (200, page(&all_three[2..], 1, 50, 0))
    );
    let by_name = enc(r#"{"device.name":1}"#);
    assert_eq!(
        get(format!("/api/v1/sessions/list?sort={by_name}"), me, None).await,
        (
            200,
            page(
                &[
                    all_three[1].clone(),
                    all_three[2].clone(),
                    all_three[0].clone()
                ],
                3,
                50,
                0
            )
        )
    );
    // As in Rocket.Chat, the sort orders the page already cut newest-first.
    assert_eq!(
        get(
            format!("/api/v1/sessions/list?count=2&sort={by_name}"),
            me,
            None
        )
        .await,
        (
            200,
            page(&[all_three[1].clone(), all_three[0].clone()], 3, 2, 0)
        )
    );

    // info: one own session; someone else's is not found.
    let firefox_id = text(firefox, "sessionId");
    assert_eq!(
        get(
            format!("/api/v1/sessions/info?sessionId={firefox_id}"),
            me,
            None
        )
        .await,
        (200, with_success(&item(firefox, FIREFOX_DEVICE)))
    );
    let bob_id = text(bob, "sessionId");
    assert_eq!(
        get(
            format!("/api/v1/sessions/info?sessionId={bob_id}"),
            me,
            None
        )
        .await,
        (404, NOT_FOUND.to_string())
    );

    // Validation, auth.
    let invalid = |m: &str| {
        format!(
            r#"{{"success":false,"error":"{m} [invalid-params]","errorType":"invalid-params"}}"#
        )
    };
    assert_eq!(
        get("/api/v1/sessions/info".into(), me, None).await,
        (400, invalid("must have required property 'sessionId'"))
    );
    assert_eq!(
        get("/api/v1/sessions/list?query=x".into(), me, None).await,
        (400, invalid("must NOT have additional properties"))
    );
    assert_eq!(
        get("/api/v1/sessions/list?count=ten".into(), me, None).await,
        (400, invalid("must be number"))
    );
    assert_eq!(
        get("/api/v1/sessions/list?sort=nope".into(), me, None).await,
        (
            400,
            r#"{"success":false,"error":"Invalid sort parameter provided: \"nope\" [error-invalid-sort]","errorType":"error-invalid-sort","details":{"helperMethod":"parseJsonQuery"}}"#.to_string()
        )
    );
    assert_eq!(
        get(
            format!("/api/v1/sessions/list?sort={}", enc(r#"{"ip":1}"#)),
            me,
            None
        )
        .await,
        (
            400,
            r#"{"success":false,"error":"error-invalid-sort-keys"}"#.to_string()
        )
    );
    assert_eq!(
        get("/api/v1/sessions/list".into(), None, None).await,
        (401, UNAUTHORIZED.to_string())
    );

    // logout.me: own session only, no second factor; the token dies at once.
    let (status, body) = call(
        &w.gate,
        "POST",
        "/api/v1/sessions/logout.me",
        me,
        None,
        &logout_body(&firefox_id),
    )
    .await;
    assert_eq!((status, body), (200, ok_body(&firefox_id)));
    assert_eq!(
        get(
            "/api/v1/subscriptions.get".into(),
            Some(("victim", "vt-1")),
            None
        )
        .await,
        (401, UPSTREAM_UNAUTHORIZED.to_string())
    );
    assert_eq!(
        get("/api/v1/sessions/list".into(), me, None).await,
        (200, page(&all_three[..2], 2, 50, 0))
    );
    let (status, body) = call(
        &w.gate,
        "POST",
        "/api/v1/sessions/logout.me",
        me,
        None,
        &logout_body(&bob_id),
    )
    .await;
    assert_eq!((status, body.as_str()), (404, NOT_FOUND));
    // info still shows the logged-out session, with its logout fields.
    let (status, body) = get(
        format!("/api/v1/sessions/info?sessionId={firefox_id}"),
        me,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let info: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(info["logoutBy"], "victim");
    assert!(info["logoutAt"].as_str().unwrap().ends_with('Z'));

    // list.all / info.admin: permission, then a second factor.
    assert_eq!(
        get("/api/v1/sessions/list.all".into(), me, Some(code_now())).await,
        (403, FORBIDDEN.to_string())
    );
    let admin_creds = Some(("admin1", "at-5"));
    assert_eq!(
        get("/api/v1/sessions/list.all".into(), admin_creds, None).await,
        (400, TOTP_REQUIRED.to_string())
    );
    let alice = r#"{"username":"alice","name":"Alice Liddell"}"#;
    let everyone = [
        populated(
            admin,
            CHROME_DEVICE,
            r#"{"username":"root","name":"Root \"Admin\" Ü"}"#,
        ),
        populated(bob, FIREFOX_DEVICE, r#"{"username":"bob"}"#),
        populated(mobile, MOBILE_DEVICE, alice),
        populated(chrome, CHROME_DEVICE, alice),
    ];
    assert_eq!(
        get(
            "/api/v1/sessions/list.all".into(),
            admin_creds,
            Some(codes[0].clone())
        )
        .await,
        (200, page(&everyone, 4, 50, 0))
    );
    assert_eq!(
        get(
            "/api/v1/sessions/list.all?filter=ALICE".into(),
            admin_creds,
            Some(codes[1].clone())
        )
        .await,
        (200, page(&everyone[2..], 2, 50, 0))
    );
    // The filter matches display names too; `_user.name` sorts (missing first).
    assert_eq!(
        get(
            "/api/v1/sessions/list.all?filter=liddell".into(),
            admin_creds,
            Some(codes[4].clone())
        )
        .await,
        (200, page(&everyone[2..], 2, 50, 0))
    );
    assert_eq!(
        get(
            format!(
                "/api/v1/sessions/list.all?sort={}",
                enc(r#"{"_user.name":1,"loginAt":1}"#)
            ),
            admin_creds,
            Some(codes[5].clone())
        )
        .await,
        (
            200,
            page(
                &[
                    everyone[1].clone(),
                    everyone[3].clone(),
                    everyone[2].clone(),
                    everyone[0].clone()
                ],
                4,
                50,
                0
            )
        )
    );
    assert_eq!(
        get(
            format!("/api/v1/sessions/info.admin?sessionId={bob_id}"),
            admin_creds,
            Some(codes[2].clone())
        )
        .await,
        (200, with_success(&everyone[1]))
    );
    assert_eq!(
        get(
            format!("/api/v1/sessions/info.admin?sessionId={firefox_id}"),
            admin_creds,
            Some(codes[3].clone())
        )
        .await,
        (404, NOT_FOUND.to_string())
    );
    // A second factor is single-use here too.
    assert_eq!(
        get(
            "/api/v1/sessions/list.all".into(),
            admin_creds,
            Some(codes[0].clone())
        )
        .await,
        (400, TOTP_INVALID.to_string())
    );
    // Nothing of this family reached the upstream.
    assert!(w.upstream.seen_path("/api/v1/sessions/").is_empty());
}

/// Rocket.Chat's admin device page: `list.all`, then `info.admin`, then
/// `sessions/logout`, all 2FA-protected. One code, then the remembered
/// second factor for the rest, as Rocket.Chat's `RememberFor` does.
#[tokio::test]
async fn admin_device_page_needs_one_code_for_list_info_and_logout() {
    let w = world().await;
    let host = w.gate.addr.to_string();
    w.upstream.set_login("victim", "victim-token");
    w.upstream.set_login_options(LoginOptions {
        username: Some("alice".into()),
        name: Some("Alice Liddell".into()),
        ..LoginOptions::default()
    });
    assert_eq!(login(&w.gate, "/api/v1/login", FIREFOX).await.0, 200);
    make_admin(&w.gate, "admin1", "root");
    w.upstream.set_login("admin1", "admin-token");
    w.upstream.set_login_options(LoginOptions {
        username: Some("root".into()),
        ..LoginOptions::default()
    });
    assert_eq!(login(&w.gate, "/api/v1/login", CHROME).await.0, 200);
    // A session imported by hand, with the Host it came to.
    let imported = cli_ok(
        &w.gate,
        &[
            "session",
            "add",
            "--user",
            "victim",
            "--token=imported-token",
            "--ip",
            "192.0.2.9",
            "--host",
            "chat.example.org",
        ],
    );
    let imported = imported.trim().to_string();
    let victim = sessions(&w.gate, "victim");
    let (imported_s, firefox) = (&victim[0], &victim[1]);
    assert_eq!(text(imported_s, "sessionId"), imported);
    let admin = &sessions(&w.gate, "admin1")[0];
    let alice = r#"{"username":"alice","name":"Alice Liddell"}"#;
    let imported_item = format!(
        r#"{{"_id":"{imported}","sessionId":"{imported}","userId":"victim","device":null,"host":"chat.example.org","ip":"192.0.2.9","loginAt":"{}","_user":{alice}}}"#,
        text(imported_s, "loginAt")
    );
    let firefox_item = populated(firefox, FIREFOX_DEVICE, &host, alice);
    let admin_item = populated(admin, CHROME_DEVICE, &host, r#"{"username":"root"}"#);
    let creds = Some(("admin1", "admin-token"));
    let get = |path: String, code: Option<String>| {
        let gate = &w.gate;
        async move { call(gate, "GET", &path, creds, code.as_deref(), "").await }
    };

    // list.all: the first call needs a code.
    assert_eq!(
        get("/api/v1/sessions/list.all".into(), None).await,
        (400, TOTP_REQUIRED.to_string())
    );
    assert_eq!(
        get("/api/v1/sessions/list.all".into(), Some(code_now())).await,
        (
            200,
            page(
                &[
                    imported_item.clone(),
                    admin_item.clone(),
                    firefox_item.clone()
                ],
                3,
                50,
                0
            )
        )
    );
    // info.admin: remembered.
    let victim_id = text(firefox, "sessionId");
    assert_eq!(
        get(
            format!("/api/v1/sessions/info.admin?sessionId={victim_id}"),
            None
        )
        .await,
        (200, with_success(&firefox_item))
    );
    // sessions/logout: remembered too (the window is the caller's, whatever
    // endpoint opened it).
    let (status, body) = call(
        &w.gate,
        "POST",
        "/api/v1/sessions/logout",
        creds,
        None,
        &logout_body(&victim_id),
    )
    .await;
    assert_eq!((status, body), (200, ok_body(&victim_id)));
    // The page reloads: still no code, the victim's device is gone.
    assert_eq!(
        get("/api/v1/sessions/list.all".into(), None).await,
        (200, page(&[imported_item, admin_item], 2, 50, 0))
    );
    // Another browser of the same admin token needs its own code.
    let other_browser = send(
        w.gate.addr,
        with_body(
            request("GET", w.gate.addr, "/api/v1/sessions/list.all")
                .header("user-agent", FIREFOX)
                .header("X-User-Id", "admin1")
                .header("X-Auth-Token", "admin-token"),
            "",
        ),
    )
    .await
    .expect("gate answers");
    assert_eq!(other_browser.status(), 400);
    assert_eq!(other_browser.body(), TOTP_REQUIRED);

    let metrics = w.gate.metrics().await;
    assert_eq!(remembered(&metrics, "sessions_list_all"), 1);
    assert_eq!(remembered(&metrics, "sessions_info_admin"), 1);
    assert_eq!(remembered(&metrics, "sessions_logout"), 1);
    assert!(w.upstream.seen_path("/api/v1/sessions/").is_empty());
}

#[tokio::test]
async fn device_endpoints_can_be_left_to_the_upstream() {
    let w = world_with("", "[devices]\nanswer = false", &[]).await;
    let (status, _) = call(
        &w.gate,
        "GET",
        "/api/v1/sessions/list?count=5",
        Some(("u", "t")),
        None,
        "",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        w.upstream.seen_path("/api/v1/sessions/list")[0].uri,
        "/api/v1/sessions/list?count=5"
    );
    // And a method the gate does not answer is forwarded even when it answers.
    let w = world().await;
    let (status, _) = call(&w.gate, "POST", "/api/v1/sessions/list", None, None, "").await;
    assert_eq!(status, 200);
    assert_eq!(w.upstream.seen_path("/api/v1/sessions/list").len(), 1);
}

/// One login on a keep-alive connection: time to the whole answer.
async fn timed_logins(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    gate: &Gate,
    path: &str,
) -> Duration {
    let req = http::Request::post(path)
        .header("host", gate.addr.to_string())
        .header("content-type", "application/json")
        .header("user-agent", FIREFOX)
        .body(Full::new(Bytes::from_static(
            br#"{"user":"a","password":"b"}"#,
        )))
        .unwrap();
    // The client's own connection task must be ready for the next request.
    sender.ready().await.expect("connection still open");
    let started = Instant::now();
    let resp = sender.send_request(req).await.expect("login");
    assert_eq!(resp.status(), 200);
    let _ = resp.into_body().collect().await.expect("body");
    started.elapsed()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::test]
async fn capture_adds_no_measurable_latency_to_logins() {
    let w = world().await;
    w.upstream.set_login("bench", "bench");
    w.upstream.set_login_options(LoginOptions {
        fresh_tokens: true,
        ..LoginOptions::default()
    });
    let stream = tokio::net::TcpStream::connect(w.gate.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    for _ in 0..20 {
        timed_logins(&mut sender, &w.gate, "/api/v1/login").await;
        timed_logins(&mut sender, &w.gate, "/api/v1/login2").await;
    }
    let (mut captured, mut plain) = (Vec::new(), Vec::new());
    // Interleaved, so drift hits both series alike.
    for _ in 0..200 {
        captured.push(timed_logins(&mut sender, &w.gate, "/api/v1/login").await);
        plain.push(timed_logins(&mut sender, &w.gate, "/api/v1/login2").await);
    }
    captured.sort();
    plain.sort();
    let (c50, c99) = (percentile(&captured, 0.5), percentile(&captured, 0.99));
    let (p50, p99) = (percentile(&plain, 0.5), percentile(&plain, 0.99));
    eprintln!(
        "login latency over 200 requests: captured p50 {c50:?} p99 {c99:?}; uncaptured p50 {p50:?} p99 {p99:?}; p50 delta {:?}",
        c50.saturating_sub(p50)
    );
    assert_eq!(
        sessions(&w.gate, "bench").len(),
        220,
        "every /api/v1/login captured, no /api/v1/login2"
    );
    assert!(
        c50 < p50 + Duration::from_millis(5),
        "capture p50 {c50:?} vs {p50:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ddp_login_result_over_a_websocket_is_captured_and_enforced() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let w = world().await;
    let mut req = format!("ws://{}/websocket", w.gate.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "user-agent",
        "RC Mobile; ios 17.1; v4.46.0 (1)".parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    // The echo upstream sends this back: to the gate it is the server granting
    // a login on this socket, as Meteor answers a password or resume login.
    let granted = r#"{"msg":"result","id":"1","result":{"id":"ddp-user","token":"ddp-granted-token","tokenExpires":{"$date":4102444800000},"type":"resume"}}"#;
    ws.send(Message::Text(granted.into())).await.unwrap();
    let echoed = tokio::time::timeout(Duration::from_secs(2), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(echoed, Message::Text(granted.into()));

    let mut captured = Vec::new();
    for _ in 0..100 {
        captured = sessions(&w.gate, "ddp-user");
        if !captured.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(captured.len(), 1, "DDP login captured");
    assert_eq!(captured[0]["device"]["type"], "mobile-app");
    // The websocket handshake's Host, as Rocket.Chat records a DDP login's.
    assert_eq!(captured[0]["host"], w.gate.addr.to_string());
    // Revoking the captured session closes this very socket.
    let id = text(&captured[0], "sessionId");
    cli_ok(&w.gate, &["session", "revoke", &id]);
    let closed = tokio::time::timeout(Duration::from_secs(2), ws.next())
        .await
        .unwrap();
    match closed {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1008),
        other => panic!("expected close 1008, got {other:?}"),
    }
}
