//! `sessiongate demo`: the real gate in front of a built-in stand-in chat
//! server, with an in-memory store (or `--redis URL`), preloaded with an admin
//! who has TOTP and a victim session. Prints copy-paste curl commands with a
//! live TOTP code and what each answers.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_util::sync::CancellationToken;

use crate::auth::{encode_hash, hash_token};
use crate::body::{Body, full};
use crate::cli::DemoArgs;
use crate::config::{Config, Overrides};
use crate::store::{SessionRecord, Store};
use crate::totp::{self, crypto::SecretKey};

pub const ADMIN_ID: &str = "demo-admin";
pub const ADMIN_TOKEN: &str = "demo-admin-token";
pub const VICTIM_ID: &str = "demo-alice";
pub const VICTIM_SESSION: &str = "demoSession000001";
/// Fixed so the printed otpauth URI can be scanned once and reused.
pub const DEMO_SECRET_BASE32: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

/// Tokens the stand-in server accepts: token → (user id, username).
type Accounts = Arc<Mutex<HashMap<String, (String, String)>>>;

pub async fn run(args: DemoArgs, shutdown: crate::app::Shutdown) -> anyhow::Result<()> {
    // Fresh per run: a token revoked by an earlier demo against the same
    // Redis (`--redis`) stays revoked, as it should.
    let victim_token = format!("demo-alice-{}", crate::auth::meteor_id());
    let accounts: Accounts = Arc::new(Mutex::new(HashMap::from([
        (
            ADMIN_TOKEN.to_string(),
            (ADMIN_ID.to_string(), "admin".to_string()),
        ),
        (
            victim_token.clone(),
            (VICTIM_ID.to_string(), "alice".to_string()),
        ),
    ])));
    let chat = TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot bind the stand-in chat server")?;
    let chat_addr = chat.local_addr()?;
    // The stand-in outlives the gate's drain, then stops with it.
    let chat_stop = CancellationToken::new();
    tokio::spawn(serve_chat(chat, accounts, chat_stop.clone()));

    let flags = Overrides {
        listen: Some(args.listen.clone()),
        upstream: Some(format!("http://{chat_addr}")),
        admin_listen: Some(args.admin_listen.clone()),
        redis_url: args.redis.clone(),
    };
    let mut cfg = Config::from_toml_str("", &crate::config::ProcessEnv, &flags)?;
    // A wide window keeps the printed code usable for a few minutes; replay
    // protection still refuses it after one use.
    cfg.totp.window = 4;
    cfg.logout.rate_limit_per_minute = 60;

    let store = match &args.redis {
        Some(_) => crate::commands::open_store(&cfg)?,
        None => Store::memory(),
    };
    let key = Arc::new(SecretKey::generate());
    seed(&store, &key, &victim_token).await?;

    let bound = crate::app::bind(&cfg).await.map_err(|e| {
        anyhow::anyhow!("{e} (choose other ports with --listen and --admin-listen)")
    })?;
    let gate_addr = bound.gate_addr()?;
    let admin_addr = bound.admin_addr()?;
    print_walkthrough(
        gate_addr,
        admin_addr,
        chat_addr,
        args.redis.is_some(),
        &victim_token,
    );
    let result = crate::app::run(cfg, bound, store, key, shutdown).await;
    chat_stop.cancel();
    result
}

async fn seed(store: &Store, key: &SecretKey, victim_token: &str) -> anyhow::Result<()> {
    let secret = totp::decode_base32_secret(DEMO_SECRET_BASE32)?;
    store
        .put_user(
            ADMIN_ID,
            Some("admin"),
            Some(&["admin".to_string(), "user".to_string()]),
        )
        .await?;
    let sealed = key
        .encrypt(ADMIN_ID, &secret)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    store.set_totp_secret(ADMIN_ID, &sealed).await?;
    store
        .put_user(VICTIM_ID, Some("alice"), Some(&["user".to_string()]))
        .await?;
    let now = crate::clock::unix_ms();
    for (id, user, token, ua) in [
        ("demoAdminSession1", ADMIN_ID, ADMIN_TOKEN, "curl/8.5.0"),
        (
            VICTIM_SESSION,
            VICTIM_ID,
            victim_token,
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
        ),
    ] {
        store
            .add_session(&SessionRecord {
                id: id.to_string(),
                user_id: user.to_string(),
                token_hash: encode_hash(&hash_token(token)),
                ip: Some("127.0.0.1".to_string()),
                user_agent: Some(ua.to_string()),
                device: Some(crate::auth::device_info(ua)),
                login_at_ms: now,
                logout_at_ms: None,
                logout_by: None,
            })
            .await?;
    }
    Ok(())
}

fn print_walkthrough(
    gate: SocketAddr,
    admin: SocketAddr,
    chat: SocketAddr,
    redis: bool,
    victim_token: &str,
) {
    let secret = totp::decode_base32_secret(DEMO_SECRET_BASE32).unwrap_or_default();
    let now = crate::clock::unix_secs();
    let code = totp::code_at(&secret, now);
    let uri = totp::otpauth_uri(&secret, "sessiongate-demo", "admin");
    let store = if redis { "Redis" } else { "in-memory store" };
    let url = format!("http://{gate}");
    println!(
        r#"
sessiongate demo
  gate            {url}   (admin: http://{admin}/metrics /readyz /healthz)
  chat server     http://{chat}   (built-in stand-in, reached only through the gate)
  store           {store}
  admin user      {ADMIN_ID} (roles admin,user), token {ADMIN_TOKEN}, TOTP secret {DEMO_SECRET_BASE32}
                  {uri}
  victim session  {VICTIM_SESSION} of user {VICTIM_ID}, token {victim_token}

Try it (run in order; the TOTP code {code} is accepted for about two minutes, once):

1. The victim's token works through the gate:
curl -s {url}/api/v1/me -H 'X-User-Id: {VICTIM_ID}' -H 'X-Auth-Token: {victim_token}'
   -> 200 {{"_id":"{VICTIM_ID}","username":"alice","success":true}}

2. The admin asks to log that session out without a TOTP code:
curl -s -X POST {url}/api/v1/sessions/logout -H 'X-User-Id: {ADMIN_ID}' -H 'X-Auth-Token: {ADMIN_TOKEN}' -H 'Content-Type: application/json' -d '{{"sessionId":"{VICTIM_SESSION}"}}'
   -> 400 {{"success":false,"error":"TOTP Required [totp-required]","errorType":"totp-required","details":{{"method":"totp","codeGenerated":false,"availableMethods":["totp"]}}}}

3. With the live TOTP code:
curl -s -X POST {url}/api/v1/sessions/logout -H 'X-User-Id: {ADMIN_ID}' -H 'X-Auth-Token: {ADMIN_TOKEN}' -H 'x-2fa-code: {code}' -H 'Content-Type: application/json' -d '{{"sessionId":"{VICTIM_SESSION}"}}'
   -> 200 {{"sessionId":"{VICTIM_SESSION}","success":true}}

4. The gate now removes the victim's token from every request (it never reaches the
   chat server), so the chat server sees an anonymous caller and answers its own 401:
curl -s {url}/api/v1/me -H 'X-User-Id: {VICTIM_ID}' -H 'X-Auth-Token: {victim_token}'
   -> 401 {{"status":"error","message":"You must be logged in to do this."}}

5. The same code is refused from any other client (single use, on every replica):
curl -s -X POST {url}/api/v1/sessions/logout -A 'other-device' -H 'X-User-Id: {ADMIN_ID}' -H 'X-Auth-Token: {ADMIN_TOKEN}' -H 'x-2fa-code: {code}' -H 'Content-Type: application/json' -d '{{"sessionId":"{VICTIM_SESSION}"}}'
   -> 400 {{"success":false,"error":"TOTP Invalid [totp-invalid]","errorType":"totp-invalid","details":{{"method":"totp","codeGenerated":false}}}}

6. This admin client passed the second factor a moment ago: like Rocket.Chat, the gate
   remembers it for 30 minutes (totp.remember_seconds) for the same token, address and
   User-Agent, so no code is asked; the session is already logged out:
curl -s -X POST {url}/api/v1/sessions/logout -H 'X-User-Id: {ADMIN_ID}' -H 'X-Auth-Token: {ADMIN_TOKEN}' -H 'Content-Type: application/json' -d '{{"sessionId":"{VICTIM_SESSION}"}}'
   -> 404 {{"success":false,"error":"Session not found"}}

7. Everything else is forwarded unchanged:
curl -s {url}/api/info
   -> 200 {{"version":"5.4.0","success":true}}

A fresh code for later tries: oathtool --totp -b {DEMO_SECRET_BASE32}
Ctrl-C stops the demo.
"#
    );
}

async fn serve_chat(listener: TcpListener, accounts: Accounts, shutdown: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.cancelled() => return,
        };
        let Ok((stream, _)) = accepted else { continue };
        let accounts = accounts.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let accounts = accounts.clone();
                async move { Ok::<_, Infallible>(chat(req, accounts).await) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn json_str(text: &str) -> String {
    serde_json::Value::String(text.to_string()).to_string()
}

fn json(status: StatusCode, body: String) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// The stand-in chat server: a few Rocket.Chat routes, enough to see the gate work.
async fn chat(mut req: Request<Incoming>, accounts: Accounts) -> Response<Body> {
    let path = req.uri().path().to_string();
    if path == "/websocket" || path.starts_with("/sockjs/") {
        return ddp_websocket(&mut req, accounts);
    }
    let caller = {
        let token = req
            .headers()
            .get("x-auth-token")
            .and_then(|v| v.to_str().ok());
        let user = req.headers().get("x-user-id").and_then(|v| v.to_str().ok());
        let accounts = accounts.lock().unwrap_or_else(|e| e.into_inner());
        token
            .and_then(|t| accounts.get(t).cloned())
            .filter(|(id, _)| Some(id.as_str()) == user)
    };
    match (req.method(), path.as_str()) {
        (&Method::GET, "/api/info") => json(
            StatusCode::OK,
            r#"{"version":"5.4.0","success":true}"#.into(),
        ),
        (&Method::GET, "/api/v1/me") => match caller {
            Some((id, username)) => json(
                StatusCode::OK,
                format!(
                    r#"{{"_id":{},"username":{},"success":true}}"#,
                    json_str(&id),
                    json_str(&username)
                ),
            ),
            None => json(
                StatusCode::UNAUTHORIZED,
                r#"{"status":"error","message":"You must be logged in to do this."}"#.into(),
            ),
        },
        (&Method::POST, "/api/v1/login") => {
            let body = req
                .into_body()
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            login(&body, &accounts)
        }
        (&Method::GET, "/") => {
            let mut r = Response::new(full(
                "<!doctype html><title>stand-in chat server</title><p>sessiongate demo: stand-in chat server</p>\n",
            ));
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/html"),
            );
            r
        }
        _ => json(
            StatusCode::NOT_FOUND,
            r#"{"success":false,"error":"Not found"}"#.into(),
        ),
    }
}

/// `POST /api/v1/login` with `{"user":"alice","password":"demo"}` (any known
/// username, password `demo`) issues a fresh token, like Rocket.Chat.
fn login(body: &Bytes, accounts: &Accounts) -> Response<Body> {
    let parsed: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let user = parsed
        .get("user")
        .or_else(|| parsed.get("username"))
        .and_then(|v| v.as_str());
    let password = parsed.get("password").and_then(|v| v.as_str());
    let known = [("alice", VICTIM_ID), ("admin", ADMIN_ID)];
    let Some((_, id)) = known.iter().find(|(name, _)| Some(*name) == user) else {
        return json(
            StatusCode::UNAUTHORIZED,
            r#"{"status":"error","error":"Unauthorized","message":"Unauthorized"}"#.into(),
        );
    };
    if password != Some("demo") {
        return json(
            StatusCode::UNAUTHORIZED,
            r#"{"status":"error","error":"Unauthorized","message":"Unauthorized"}"#.into(),
        );
    }
    let token = crate::auth::meteor_id() + &crate::auth::meteor_id();
    let username = user.unwrap_or_default().to_string();
    accounts
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(token.clone(), (id.to_string(), username.clone()));
    json(
        StatusCode::OK,
        serde_json::json!({"status": "success", "data": {"userId": id, "authToken": token, "me": {"_id": id, "username": username}}})
            .to_string(),
    )
}

/// A tiny DDP server: `connect`, `ping`, and `login` with `resume`.
fn ddp_websocket(req: &mut Request<Incoming>, accounts: Accounts) -> Response<Body> {
    let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
        return json(StatusCode::BAD_REQUEST, r#"{"success":false}"#.into());
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
        while let Some(Ok(Message::Text(text))) = ws.next().await {
            let msg: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            let replies = match msg.get("msg").and_then(|m| m.as_str()) {
                Some("connect") => vec![format!(
                    r#"{{"msg":"connected","session":"{}"}}"#,
                    crate::auth::meteor_id()
                )],
                Some("ping") => vec![r#"{"msg":"pong"}"#.to_string()],
                // Like Meteor, every method call ends with `result` then `updated`.
                Some("method") if msg.get("method").and_then(|m| m.as_str()) == Some("login") => {
                    let id = msg.get("id").cloned().unwrap_or_default().to_string();
                    let token = msg
                        .pointer("/params/0/resume")
                        .and_then(|t| t.as_str())
                        .unwrap_or_default()
                        .to_string();
                    let user = accounts
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get(&token)
                        .cloned();
                    let result = match user {
                        Some((uid, _)) => format!(
                            r#"{{"msg":"result","id":{id},"result":{{"id":{},"token":{},"tokenExpires":{{"$date":4102444800000}},"type":"resume"}}}}"#,
                            json_str(&uid),
                            json_str(&token)
                        ),
                        None => format!(
                            r#"{{"msg":"result","id":{id},"error":{{"isClientSafe":true,"error":403,"reason":"You've been logged out by the server. Please log in again.","message":"You've been logged out by the server. Please log in again. [403]","errorType":"Meteor.Error"}}}}"#
                        ),
                    };
                    vec![result, format!(r#"{{"msg":"updated","methods":[{id}]}}"#)]
                }
                _ => continue,
            };
            for reply in replies {
                if ws.send(Message::Text(reply.into())).await.is_err() {
                    return;
                }
            }
        }
    });
    let mut response = Response::new(full(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(
        http::header::UPGRADE,
        http::HeaderValue::from_static("websocket"),
    );
    h.insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("Upgrade"),
    );
    if let Ok(v) = http::HeaderValue::from_str(&accept) {
        h.insert(http::header::SEC_WEBSOCKET_ACCEPT, v);
    }
    response
}
