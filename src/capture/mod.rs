//! Session capture (SPEC §2 (a)): the gate learns sessions from the login
//! traffic it relays, so operators never have to import them by hand.
//!
//! - A `200` answer to `POST /api/v1/login` carrying
//!   `{"status":"success","data":{"userId","authToken",…}}` is read while it
//!   streams (up to [`MAX_LOGIN_ANSWER`]); the session is stored BEFORE the
//!   answer goes on to the client, because the client may call the logout
//!   endpoint right after. The answer itself is relayed byte for byte. A
//!   bigger, non-JSON, encoded or non-200 answer is relayed untouched and not
//!   captured.
//! - A DDP `login` result seen on a websocket is reported through
//!   [`Capturer::ddp_login`] (or a [`LoginHook`]); the store write runs in the
//!   background and is skipped for tokens already indexed (resume logins).
//! - `POST /api/v1/logout` answered 200 by the upstream logs that session out
//!   here too ([`Capturer::user_logout`]).
//!
//! Each session records what Rocket.Chat shows on its device page: client
//! IP, User-Agent (parsed into the device), `host` (the `Host` header of the
//! login request, or of the websocket handshake for a DDP login: Rocket.Chat
//! stores `connection.httpHeaders.host`) and, on the user record, the
//! display name of a REST login answer's `data.me.name`.
//!
//! A Redis failure never fails a login: capture is bounded by the Redis
//! command timeout, then the answer is relayed anyway (a warning is logged
//! and `sessiongate_session_capture_failures` counts it). Capture never
//! changes a user's stored roles; it only creates a missing user record.
//!
//! - `mod.rs`: the [`Capturer`] (recording sessions, DDP logins, user
//!   logouts) and the client facts a session records.
//! - `login_answer.rs`: reading a REST login answer while relaying it
//!   unchanged.

mod login_answer;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, Response, header};

pub use self::login_answer::{LoginAnswer, MAX_LOGIN_ANSWER, parse_login_answer, plausible_id};
use self::login_answer::{Prefix, worth_reading};
use crate::auth::{device_info, encode_hash, hash_token, meteor_id};
use crate::body::{Body, boxed};
use crate::config::Config;
use crate::conn::ConnInfo;
use crate::metrics::KindLabel;
use crate::metrics::Metrics;
use crate::revocation::RevokedSet;
use crate::store::{SessionRecord, Store, StoreError};
use crate::upstream::UpstreamBody;

/// User agents are stored bounded: a client can send kilobytes of them.
const MAX_USER_AGENT: usize = 512;

/// Host headers are stored bounded too (a DNS name is at most 253 bytes).
const MAX_HOST: usize = 300;

/// Reports a DDP login the websocket tunnel saw granted: `(user_id, token)`.
/// Cheap to call from the pump; the store write runs on its own task.
pub type LoginHook = Arc<dyn Fn(&str, &str) + Send + Sync>;

/// How a session became known; the `kind` label of `sessions_captured`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaptureKind {
    /// A REST `POST /api/v1/login` answer.
    Login,
    /// A DDP `login` method result on a websocket.
    Ddp,
    /// An unknown caller token the upstream's `/api/v1/me` vouched for.
    Verified,
}

impl CaptureKind {
    pub fn label(self) -> &'static str {
        match self {
            CaptureKind::Login => "login",
            CaptureKind::Ddp => "ddp",
            CaptureKind::Verified => "verified",
        }
    }
}

/// What the gate knows about the client behind a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientFacts {
    pub ip: IpAddr,
    pub user_agent: Option<String>,
    /// The `Host` header as received (port included), what Rocket.Chat
    /// records as a session's `host`.
    pub host: Option<String>,
}

impl ClientFacts {
    pub fn of(headers: &HeaderMap, conn: &ConnInfo) -> Self {
        Self::from_parts(headers, conn.peer.ip(), conn.trusted)
    }

    /// [`ClientFacts::of`] a whole request: without a `Host` header (HTTP/2
    /// carries it as `:authority`, in the URI) the URI's authority is the
    /// host, as the upstream sees it once the gate sets Host on h2→h1.
    pub fn of_request<B>(req: &http::Request<B>, conn: &ConnInfo) -> Self {
        let mut facts = Self::of(req.headers(), conn);
        if facts.host.is_none() {
            facts.host = req
                .uri()
                .authority()
                .map(|a| truncate(a.as_str(), MAX_HOST).to_string());
        }
        facts
    }

    /// The client address is the peer's, unless the peer is a trusted proxy:
    /// then it is the last `X-Forwarded-For` entry, the one that proxy added.
    /// Entries further left were written by the client and prove nothing.
    pub fn from_parts(headers: &HeaderMap, peer: IpAddr, trusted: bool) -> Self {
        let ip = if trusted {
            forwarded_client(headers).unwrap_or(peer)
        } else {
            peer
        };
        // Header bytes beyond ASCII are rare but legal: kept, decoded lossily.
        let user_agent = headers
            .get(header::USER_AGENT)
            .map(|v| String::from_utf8_lossy(v.as_bytes()))
            .map(|ua| truncate(ua.trim(), MAX_USER_AGENT).to_string())
            .filter(|ua| !ua.is_empty());
        let host = headers
            .get(header::HOST)
            .map(|v| String::from_utf8_lossy(v.as_bytes()))
            .map(|host| truncate(host.trim(), MAX_HOST).to_string())
            .filter(|host| !host.is_empty());
        Self {
            ip,
            user_agent,
            host,
        }
    }
}

fn forwarded_client(headers: &HeaderMap) -> Option<IpAddr> {
    let last = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .rfind(|entry| !entry.is_empty())?;
    last.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// A login the gate saw succeed.
#[derive(Clone, Copy, Debug)]
pub struct Sighting<'a> {
    pub kind: CaptureKind,
    pub user_id: &'a str,
    pub token: &'a str,
    pub client: &'a ClientFacts,
    /// Set on the user record when known (the upstream is authoritative).
    pub username: Option<&'a str>,
    /// The display name, set on the user record when known.
    pub name: Option<&'a str>,
    /// Only from `/api/v1/me` with `logout.roles_from_upstream` on; `None`
    /// keeps the stored roles (a new user gets none).
    pub roles: Option<&'a [String]>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CaptureError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("session store did not answer within {0:?}")]
    Timeout(Duration),
}

/// Records sessions as they pass through the gate. Cheap to clone.
#[derive(Clone)]
pub struct Capturer {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    revoked: RevokedSet,
    metrics: Arc<Metrics>,
    /// Bound on one capture's store work (the Redis command timeout).
    timeout: Duration,
    token_lifetime_secs: u64,
}

impl Capturer {
    pub fn new(cfg: &Config, store: Store, revoked: RevokedSet, metrics: Arc<Metrics>) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                revoked,
                metrics,
                timeout: cfg.redis.command_timeout,
                token_lifetime_secs: cfg.revocation.token_lifetime.as_secs(),
            }),
        }
    }

    /// Store a session for a login the gate saw succeed (with its `Host`), and
    /// create the user record if missing (roles only as `sighting.roles`
    /// says; username and display name refreshed when known). Returns the new
    /// session id, or `None` when the token is revoked: a revoked token is
    /// never brought back to life by a stale upstream answer.
    ///
    /// # Errors
    /// The store failed or took longer than the Redis command timeout. Counted
    /// in `session_capture_failures` and logged here, without the token.
    pub async fn record(&self, sighting: &Sighting<'_>) -> Result<Option<String>, CaptureError> {
        let inner = &self.inner;
        let hash = hash_token(sighting.token);
        if inner.revoked.contains(&hash) {
            return Ok(None);
        }
        let session = SessionRecord {
            id: meteor_id(),
            user_id: sighting.user_id.to_string(),
            token_hash: encode_hash(&hash),
            ip: Some(sighting.client.ip.to_string()),
            user_agent: sighting.client.user_agent.clone(),
            device: Some(device_info(
                sighting.client.user_agent.as_deref().unwrap_or(""),
            )),
            login_at_ms: crate::clock::unix_ms(),
            logout_at_ms: None,
            logout_by: None,
        };
        // Both commands go out together on the multiplexed connection: one
        // round trip. `put_user` with `None` roles keeps the stored ones.
        let work = async {
            let (added, user) = tokio::join!(
                inner
                    .store
                    .add_stored_session(&session, sighting.client.host.as_deref()),
                inner.store.put_user_named(
                    sighting.user_id,
                    sighting.username,
                    sighting.name,
                    sighting.roles
                ),
            );
            added.and(user)
        };
        let result = match tokio::time::timeout(inner.timeout, work).await {
            Ok(Ok(())) => Ok(Some(session.id)),
            Ok(Err(e)) => Err(CaptureError::Store(e)),
            Err(_) => Err(CaptureError::Timeout(inner.timeout)),
        };
        let kind = KindLabel {
            kind: sighting.kind.label(),
        };
        match &result {
            Ok(_) => {
                inner.metrics.sessions_captured.get_or_create(&kind).inc();
                tracing::debug!(kind = kind.kind, user = ?truncate(sighting.user_id, 64), "session captured");
            }
            Err(e) => {
                inner.metrics.capture_failures.get_or_create(&kind).inc();
                tracing::warn!(kind = kind.kind, user = ?truncate(sighting.user_id, 64), error = %e, "session not captured");
            }
        }
        result
    }

    /// Inspect the upstream's answer to `POST /api/v1/login` and capture the
    /// session before handing the answer on. The returned response carries
    /// exactly the upstream's status, headers, body bytes and trailers.
    /// `deadline` bounds the wait for the body; past it the part read so far
    /// is relayed and the rest streams.
    pub async fn inspect_login(
        &self,
        response: Response<UpstreamBody>,
        client: &ClientFacts,
        deadline: Duration,
    ) -> Response<Body> {
        if !worth_reading(&response) {
            return response.map(boxed);
        }
        let (parts, mut body) = response.into_parts();
        let mut prefix = Prefix::default();
        // Frames land in `prefix` as they arrive, so a timeout loses nothing.
        let _ = tokio::time::timeout(deadline, prefix.fill(&mut body, MAX_LOGIN_ANSWER)).await;
        if let Some(bytes) = prefix.complete_data(MAX_LOGIN_ANSWER) {
            if let Some(login) = parse_login_answer(&bytes) {
                let _ = self
                    .record(&Sighting {
                        kind: CaptureKind::Login,
                        user_id: &login.user_id,
                        token: &login.token,
                        client,
                        username: login.username.as_deref(),
                        name: login.name.as_deref(),
                        roles: None,
                    })
                    .await;
            }
        }
        Response::from_parts(parts, prefix.into_body(body))
    }

    /// A DDP login result the websocket tunnel saw granted. Returns at once;
    /// the capture runs on its own task and is skipped when the token already
    /// has an active session (a resume login of a known session).
    pub fn ddp_login(&self, user_id: &str, token: &str, client: &ClientFacts) {
        if !plausible_id(user_id) || !plausible_id(token) {
            return;
        }
        let this = self.clone();
        let user_id = user_id.to_string();
        let token = zeroize::Zeroizing::new(token.to_string());
        let client = client.clone();
        tokio::spawn(async move {
            this.capture_ddp(&user_id, &token, &client).await;
        });
    }

    /// [`Capturer::ddp_login`] bound to one connection's client facts, for the
    /// websocket pump.
    pub fn ddp_hook(&self, client: ClientFacts) -> LoginHook {
        let this = self.clone();
        Arc::new(move |user_id: &str, token: &str| this.ddp_login(user_id, token, &client))
    }

    async fn capture_ddp(&self, user_id: &str, token: &str, client: &ClientFacts) {
        let inner = &self.inner;
        let hash_b64 = encode_hash(&hash_token(token));
        let known =
            tokio::time::timeout(inner.timeout, inner.store.session_by_token(&hash_b64)).await;
        match known {
            Ok(Ok(Some(_))) => return,
            Ok(Ok(None)) => {}
            Ok(Err(e)) => {
                self.count_failure(CaptureKind::Ddp, &e.to_string());
                return;
            }
            Err(_) => {
                self.count_failure(CaptureKind::Ddp, "session store timed out");
                return;
            }
        }
        let _ = self
            .record(&Sighting {
                kind: CaptureKind::Ddp,
                user_id,
                token,
                client,
                username: None,
                name: None,
                roles: None,
            })
            .await;
    }

    fn count_failure(&self, kind: CaptureKind, error: &str) {
        self.inner
            .metrics
            .capture_failures
            .get_or_create(&KindLabel { kind: kind.label() })
            .inc();
        tracing::warn!(kind = kind.label(), error, "session not captured");
    }

    /// The upstream's answer to the caller's own logout (`/api/v1/logout`,
    /// GET, HEAD or POST): the session is logged out here only when the
    /// answer says so, Rocket.Chat's `{"status":"success",…}`. A 200 from a
    /// server that does not route that request (an HTML page, say) proves
    /// nothing. The answer is relayed byte for byte either way.
    pub async fn inspect_user_logout(
        &self,
        response: Response<UpstreamBody>,
        credentials: Option<(&str, &str)>,
        deadline: Duration,
    ) -> Response<Body> {
        let Some((user_id, token)) = credentials else {
            return response.map(boxed);
        };
        if !worth_reading(&response) {
            return response.map(boxed);
        }
        let (parts, mut body) = response.into_parts();
        let mut prefix = Prefix::default();
        let _ = tokio::time::timeout(deadline, prefix.fill(&mut body, MAX_LOGIN_ANSWER)).await;
        let succeeded = prefix
            .complete_data(MAX_LOGIN_ANSWER)
            .is_some_and(|bytes| logout_succeeded(&bytes));
        if succeeded {
            self.user_logout(user_id, token).await;
        }
        Response::from_parts(parts, prefix.into_body(body))
    }

    /// The upstream accepted `POST /api/v1/logout` for this caller: the token
    /// is dead there, so refuse it here at once and mark its session logged
    /// out (by the user). Bounded by the Redis command timeout; a failure is
    /// logged and otherwise ignored (the upstream refuses the token anyway).
    pub async fn user_logout(&self, user_id: &str, token: &str) {
        let inner = &self.inner;
        let hash = hash_token(token);
        let now_ms = crate::clock::unix_ms();
        let expires = u32::try_from((now_ms / 1000).saturating_add(inner.token_lifetime_secs))
            .unwrap_or(u32::MAX);
        inner.revoked.insert(&hash, expires);
        let hash_b64 = encode_hash(&hash);
        let work = async {
            let Some(session) = inner.store.session_by_token(&hash_b64).await? else {
                return Ok(None);
            };
            if session.user_id != user_id {
                return Ok(None);
            }
            inner
                .store
                .revoke_session(&session.id, user_id, inner.token_lifetime_secs, now_ms)
                .await
                .map(|revoked| revoked.map(|_| session.id))
        };
        match tokio::time::timeout(inner.timeout, work).await {
            Ok(Ok(Some(session))) => {
                tracing::info!(user = ?truncate(user_id, 64), session = %session, "session logged out by its user");
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "user logout not recorded: session store unavailable");
            }
            Err(_) => tracing::warn!("user logout not recorded: session store timed out"),
        }
    }
}

/// At most `max` bytes of `text`, cut on a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Rocket.Chat's logout answer: `{"status":"success","data":{"message":…}}`.
fn logout_succeeded(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("status").and_then(|s| s.as_str().map(str::to_owned)))
        .is_some_and(|status| status == "success")
}

#[cfg(test)]
mod tests {
    use super::login_answer::MAX_ID_LEN;
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_bytes(v.as_bytes()).unwrap(),
            );
        }
        h
    }

    #[test]
    fn client_address_comes_from_the_peer_unless_it_is_a_trusted_proxy() {
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6, 203.0.113.9"),
            ("user-agent", "Mozilla/5.0 Firefox/121.0"),
            ("host", "chat.example.org:8443"),
        ]);
        let untrusted = ClientFacts::from_parts(&h, peer, false);
        assert_eq!(untrusted.ip, peer);
        assert_eq!(untrusted.host.as_deref(), Some("chat.example.org:8443"));
        assert_eq!(
            untrusted.user_agent.as_deref(),
            Some("Mozilla/5.0 Firefox/121.0")
        );
        let trusted = ClientFacts::from_parts(&h, peer, true);
        assert_eq!(trusted.ip, "203.0.113.9".parse::<IpAddr>().unwrap());
        let garbage = headers(&[("x-forwarded-for", "1.1.1.1, nonsense")]);
        assert_eq!(ClientFacts::from_parts(&garbage, peer, true).ip, peer);
        let v6 = headers(&[("x-forwarded-for", "[2001:db8::1]")]);
        assert_eq!(
            ClientFacts::from_parts(&v6, peer, true).ip,
            "2001:db8::1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(ClientFacts::from_parts(&v6, peer, true).user_agent, None);
        assert_eq!(ClientFacts::from_parts(&v6, peer, true).host, None);
    }

    #[test]
    fn only_rocket_chats_success_answer_logs_the_session_out() {
        assert!(logout_succeeded(
            br#"{"status":"success","data":{"message":"You've been logged out!"}}"#
        ));
        for body in [
            &b"<!doctype html><title>Rocket.Chat</title>"[..],
            br#"{"status":"error","message":"You must be logged in to do this."}"#,
            br#"{"success":true}"#,
            b"",
        ] {
            assert!(!logout_succeeded(body), "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn host_comes_from_the_host_header_or_else_the_authority() {
        let conn = ConnInfo {
            peer: "192.0.2.8:40000".parse().unwrap(),
            peer_header: HeaderValue::from_static("192.0.2.8"),
            tls: false,
            trusted: false,
            framing: Arc::default(),
            clean: Arc::default(),
        };
        let h1 = http::Request::get("/api/v1/login")
            .header("host", "chat.example.org")
            .body(())
            .unwrap();
        assert_eq!(
            ClientFacts::of_request(&h1, &conn).host.as_deref(),
            Some("chat.example.org")
        );
        // HTTP/2: `:authority` arrives in the URI, with no Host header.
        let h2 = http::Request::get("https://chat.example.org:8443/api/v1/login")
            .body(())
            .unwrap();
        assert_eq!(ClientFacts::of(h2.headers(), &conn).host, None);
        assert_eq!(
            ClientFacts::of_request(&h2, &conn).host.as_deref(),
            Some("chat.example.org:8443")
        );
        let long = "h".repeat(MAX_HOST + 50);
        let h = headers(&[("host", &long)]);
        let facts = ClientFacts::from_parts(&h, conn.peer.ip(), false);
        assert_eq!(facts.host.map(|h| h.len()), Some(MAX_HOST));
    }

    #[test]
    fn long_user_agents_are_cut_on_a_character_boundary() {
        let ua = "é".repeat(MAX_USER_AGENT);
        let h = headers(&[("user-agent", &ua)]);
        let facts = ClientFacts::from_parts(&h, "127.0.0.1".parse().unwrap(), false);
        let kept = facts.user_agent.unwrap();
        assert_eq!(kept.len(), MAX_USER_AGENT);
        assert!(kept.chars().all(|c| c == 'é'));
    }

    fn capturer(store: &Store, revoked: &RevokedSet) -> Capturer {
        Capturer::new(
            &Config::default(),
            store.clone(),
            revoked.clone(),
            Arc::new(Metrics::new()),
        )
    }

    fn facts() -> ClientFacts {
        ClientFacts {
            ip: "192.0.2.4".parse().unwrap(),
            user_agent: Some("RC Mobile; ios 17.1; v4.46.0 (12345)".into()),
            host: Some("chat.example.org".into()),
        }
    }

    #[tokio::test]
    async fn recorded_session_has_address_agent_and_device_and_keeps_roles() {
        let store = Store::memory();
        let revoked = RevokedSet::new();
        store
            .put_user("u1", Some("old"), Some(&["admin".to_string()]))
            .await
            .unwrap();
        let c = capturer(&store, &revoked);
        let client = facts();
        let id = c
            .record(&Sighting {
                kind: CaptureKind::Login,
                user_id: "u1",
                token: "tok-1",
                client: &client,
                username: Some("alice"),
                name: Some("Alice Liddell"),
                roles: None,
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(id.len(), 17);
        let s = store
            .session_by_token(&encode_hash(&hash_token("tok-1")))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(s.id, id);
        assert_eq!(s.user_id, "u1");
        assert_eq!(s.ip.as_deref(), Some("192.0.2.4"));
        assert_eq!(
            s.user_agent.as_deref(),
            Some("RC Mobile; ios 17.1; v4.46.0 (12345)")
        );
        assert_eq!(s.device.as_ref().unwrap()["type"], "mobile-app");
        let stored = store.get_stored_session(&id).await.unwrap().unwrap();
        assert_eq!(stored.host.as_deref(), Some("chat.example.org"));
        let user = store.get_user("u1").await.unwrap().unwrap();
        assert_eq!(user.roles, vec!["admin"]);
        assert_eq!(user.username, "alice");
        assert_eq!(user.name.as_deref(), Some("Alice Liddell"));
    }

    #[tokio::test]
    async fn capture_creates_a_missing_user_without_roles() {
        let store = Store::memory();
        let revoked = RevokedSet::new();
        let client = facts();
        capturer(&store, &revoked)
            .record(&Sighting {
                kind: CaptureKind::Login,
                user_id: "new",
                token: "t",
                client: &client,
                username: None,
                name: None,
                roles: None,
            })
            .await
            .unwrap();
        let user = store.get_user("new").await.unwrap().unwrap();
        assert!(user.roles.is_empty());
        assert_eq!(user.username, "");
    }

    #[tokio::test]
    async fn revoked_token_is_never_recorded() {
        let store = Store::memory();
        let revoked = RevokedSet::new();
        revoked.insert(&hash_token("dead"), u32::MAX);
        let client = facts();
        let got = capturer(&store, &revoked)
            .record(&Sighting {
                kind: CaptureKind::Verified,
                user_id: "u1",
                token: "dead",
                client: &client,
                username: None,
                name: None,
                roles: None,
            })
            .await
            .unwrap();
        assert_eq!(got, None);
        assert!(store.list_sessions(None).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn ddp_login_is_captured_once_per_token() {
        let store = Store::memory();
        let revoked = RevokedSet::new();
        let c = capturer(&store, &revoked);
        let hook = c.ddp_hook(facts());
        hook("u1", "resume-tok");
        let found = async {
            loop {
                if !store.list_sessions(None).await.unwrap().is_empty() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(2), found)
            .await
            .unwrap();
        // A resume login of the same (now known) token adds nothing.
        c.capture_ddp("u1", "resume-tok", &facts()).await;
        let sessions = store.list_sessions(None).await.unwrap();
        assert_eq!(sessions.len(), 1);
        assert_eq!(sessions[0].user_id, "u1");
        assert_eq!(sessions[0].ip.as_deref(), Some("192.0.2.4"));
        // Junk from the wire is ignored before any task starts.
        hook("", "t");
        hook("u1", &"t".repeat(MAX_ID_LEN + 1));
    }

    #[tokio::test]
    async fn user_logout_marks_the_session_and_refuses_the_token_at_once() {
        let store = Store::memory();
        let revoked = RevokedSet::new();
        let c = capturer(&store, &revoked);
        let client = facts();
        let id = c
            .record(&Sighting {
                kind: CaptureKind::Login,
                user_id: "u1",
                token: "tok",
                client: &client,
                username: None,
                name: None,
                roles: None,
            })
            .await
            .unwrap()
            .unwrap();
        c.user_logout("u1", "tok").await;
        assert!(revoked.contains(&hash_token("tok")));
        let s = store.get_session(&id).await.unwrap().unwrap();
        assert!(s.logout_at_ms.is_some());
        assert_eq!(s.logout_by.as_deref(), Some("u1"));
    }
}
