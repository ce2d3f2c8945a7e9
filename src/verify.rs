//! Unknown caller tokens (SPEC §2 (b)): when a caller of an endpoint the gate
//! answers itself presents a token the gate has no session for (it logged in
//! before the gate was deployed), the gate may ask the upstream's
//! `GET /api/v1/me` with the caller's own headers. A `200` whose `_id` is the
//! caller's `X-User-Id` makes the session known (captured as kind
//! `verified`); anything else leaves the caller unauthorized.
//!
//! Never used on the forwarding path: only [`CallerAuth`], which the logout
//! and device-management endpoints call, asks the upstream. Bounds: one
//! lookup takes at most [`VERIFY_TIMEOUT`]; refused tokens are remembered for
//! [`NEGATIVE_TTL`] (at most [`NEGATIVE_CAPACITY`] of them) and at most
//! [`MAX_IN_FLIGHT`] lookups run at once, so a flood of bad tokens cannot
//! hammer the upstream.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use http::{HeaderValue, Request, StatusCode, Uri, header};
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::auth::hash_token;
use crate::capture::{CaptureKind, Capturer, ClientFacts, Sighting, plausible_id};
use crate::config::{Config, Upstream};
use crate::metrics::Metrics;
use crate::metrics::OutcomeLabel;
use crate::revocation::RevokedSet;
use crate::store::{Precheck, PrecheckOutcome, Store, StoreError};
use crate::upstream::UpstreamClient;

/// Whole lookup bound: head and body of `/api/v1/me`.
pub const VERIFY_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a token the upstream refused is refused without asking again.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(30);
/// Refused tokens remembered at most; past it expired entries are purged,
/// then the oldest half goes.
pub const NEGATIVE_CAPACITY: usize = 10_000;
/// Concurrent lookups; beyond, callers are refused without asking.
pub const MAX_IN_FLIGHT: usize = 16;
/// `/api/v1/me` answers larger than this are not trusted.
const MAX_ME_BODY: usize = 1024 * 1024;

/// What the upstream said about a `(user id, token)` pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The token is a live login of that user.
    Valid(Identity),
    /// The upstream refused it (or it was refused recently).
    Invalid,
    /// No usable answer (down, slow, 5xx, too many lookups at once): not cached.
    Unavailable,
}

/// Facts taken from a valid `/api/v1/me` answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub username: Option<String>,
    /// The display name (`name`), when the answer carries one.
    pub name: Option<String>,
    /// Only with `logout.roles_from_upstream`.
    pub roles: Option<Vec<String>>,
}

/// Asks the upstream who a token belongs to. Cheap to clone.
#[derive(Clone)]
pub struct UpstreamVerifier {
    inner: Arc<VerifierInner>,
}

struct VerifierInner {
    client: UpstreamClient,
    uri: Uri,
    authority: HeaderValue,
    roles_from_upstream: bool,
    refused: Mutex<HashMap<[u8; 32], Instant>>,
    in_flight: Semaphore,
    metrics: Arc<Metrics>,
}

impl UpstreamVerifier {
    /// `client` is the gate's pooled upstream client.
    pub fn new(cfg: &Config, client: UpstreamClient, metrics: Arc<Metrics>) -> Self {
        let Upstream { authority, .. } = &cfg.upstream;
        // The pool dials the upstream: the request carries the path only.
        let uri = Uri::from_static("/api/v1/me");
        let authority = HeaderValue::from_str(authority.as_str())
            .unwrap_or_else(|_| HeaderValue::from_static("localhost"));
        Self {
            inner: Arc::new(VerifierInner {
                client,
                uri,
                authority,
                roles_from_upstream: cfg.logout.roles_from_upstream,
                refused: Mutex::new(HashMap::new()),
                in_flight: Semaphore::new(MAX_IN_FLIGHT),
                metrics,
            }),
        }
    }

    /// Ask the upstream whether `token` is a live login of `user_id`.
    pub async fn verify(&self, user_id: &str, token: &str) -> Verdict {
        let inner = &self.inner;
        let key = pair_key(user_id, token);
        if self.recently_refused(&key) {
            return self.outcome(Verdict::Invalid, "cached");
        }
        if !plausible_id(user_id) || !plausible_id(token) {
            return self.outcome(Verdict::Invalid, "invalid");
        }
        let Ok(_permit) = inner.in_flight.try_acquire() else {
            return self.outcome(Verdict::Unavailable, "busy");
        };
        let verdict = tokio::time::timeout(VERIFY_TIMEOUT, self.ask(user_id, token))
            .await
            .unwrap_or(Verdict::Unavailable);
        match &verdict {
            Verdict::Valid(_) => self.outcome(verdict, "valid"),
            Verdict::Invalid => {
                self.remember_refusal(key);
                self.outcome(verdict, "invalid")
            }
            Verdict::Unavailable => self.outcome(verdict, "unavailable"),
        }
    }

    fn outcome(&self, verdict: Verdict, outcome: &'static str) -> Verdict {
        self.inner
            .metrics
            .token_verifications
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
        verdict
    }

    async fn ask(&self, user_id: &str, token: &str) -> Verdict {
        let inner = &self.inner;
        let (Ok(user), Ok(token)) = (HeaderValue::from_str(user_id), HeaderValue::from_str(token))
        else {
            return Verdict::Invalid;
        };
        let mut req = Request::get(inner.uri.clone());
        if let Some(headers) = req.headers_mut() {
            headers.insert(header::HOST, inner.authority.clone());
            headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
            headers.insert("x-user-id", user);
            headers.insert("x-auth-token", token);
        }
        let Ok(req) = req.body(crate::body::empty()) else {
            return Verdict::Unavailable;
        };
        let response = match inner.client.request(req).await {
            Ok(response) => response,
            Err(e) => {
                tracing::warn!(error = %e, "token verification: upstream unreachable");
                return Verdict::Unavailable;
            }
        };
        match response.status() {
            StatusCode::OK => {}
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => return Verdict::Invalid,
            status => {
                tracing::warn!(
                    status = status.as_u16(),
                    "token verification: unexpected upstream answer"
                );
                return Verdict::Unavailable;
            }
        }
        let body = http_body_util::Limited::new(response.into_body(), MAX_ME_BODY);
        match body.collect().await {
            Ok(collected) => parse_me(&collected.to_bytes(), user_id, inner.roles_from_upstream)
                .map_or(Verdict::Invalid, Verdict::Valid),
            Err(_) => Verdict::Unavailable,
        }
    }

    fn refused(&self) -> MutexGuard<'_, HashMap<[u8; 32], Instant>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.inner
            .refused
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn recently_refused(&self, key: &[u8; 32]) -> bool {
        let mut refused = self.refused();
        match refused.get(key) {
            Some(until) if *until > Instant::now() => true,
            Some(_) => {
                refused.remove(key);
                false
            }
            None => false,
        }
    }

    fn remember_refusal(&self, key: [u8; 32]) {
        let now = Instant::now();
        let mut refused = self.refused();
        if refused.len() >= NEGATIVE_CAPACITY {
            refused.retain(|_, until| *until > now);
        }
        if refused.len() >= NEGATIVE_CAPACITY {
            // Still full of fresh entries: drop the half closest to expiry.
            let mut ends: Vec<Instant> = refused.values().copied().collect();
            ends.sort_unstable();
            if let Some(cut) = ends.get(ends.len() / 2).copied() {
                refused.retain(|_, until| *until > cut);
            }
        }
        refused.insert(key, now + NEGATIVE_TTL);
    }
}

/// The cache key of a `(user id, token)` pair; the token itself is never kept.
fn pair_key(user_id: &str, token: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(user_id.as_bytes());
    hasher.update([0u8]);
    hasher.update(token.as_bytes());
    hasher.finalize().into()
}

/// A `/api/v1/me` answer vouches for `user_id` only when its `_id` is exactly that.
fn parse_me(body: &[u8], user_id: &str, with_roles: bool) -> Option<Identity> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    if value.get("_id")?.as_str()? != user_id {
        return None;
    }
    let text = |field: &str| {
        value
            .get(field)
            .and_then(|v| v.as_str())
            .filter(|v| plausible_id(v))
            .map(str::to_string)
    };
    let username = text("username");
    let name = text("name");
    let roles = with_roles.then(|| {
        value
            .get("roles")
            .and_then(|r| r.as_array())
            .map(|roles| {
                roles
                    .iter()
                    .filter_map(|r| r.as_str())
                    .filter(|r| plausible_id(r))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    });
    Some(Identity {
        username,
        name,
        roles,
    })
}

/// Checks 1–2 of an endpoint the gate answers, with the unknown-token
/// fallback: a revoked token is refused without a round trip; an unknown one
/// is verified with the upstream (when configured), recorded, and checked
/// again. Cheap to clone.
#[derive(Clone)]
pub struct CallerAuth {
    store: Store,
    revoked: RevokedSet,
    verifier: Option<UpstreamVerifier>,
    capturer: Capturer,
}

impl CallerAuth {
    /// `verifier` is `None` when `logout.verify_unknown_tokens` is off.
    pub fn new(
        store: Store,
        revoked: RevokedSet,
        verifier: Option<UpstreamVerifier>,
        capturer: Capturer,
    ) -> Self {
        Self {
            store,
            revoked,
            verifier,
            capturer,
        }
    }

    /// [`Store::logout_precheck`] for `check`, whose token hash is the hash
    /// of `token`.
    ///
    /// # Errors
    /// The store is unavailable (also when a verified session cannot be
    /// recorded): the caller answers 503, never 401.
    pub async fn precheck(
        &self,
        check: &Precheck<'_>,
        token: &str,
        client: &ClientFacts,
    ) -> Result<PrecheckOutcome, StoreError> {
        if self.revoked.contains(&hash_token(token)) {
            return Ok(PrecheckOutcome::Unauthorized);
        }
        let first = self.store.logout_precheck(check).await?;
        if first != PrecheckOutcome::Unauthorized {
            return Ok(first);
        }
        let Some(verifier) = &self.verifier else {
            return Ok(first);
        };
        let Verdict::Valid(identity) = verifier.verify(check.user_id, token).await else {
            return Ok(first);
        };
        let recorded = self
            .capturer
            .record(&Sighting {
                kind: CaptureKind::Verified,
                user_id: check.user_id,
                token,
                client,
                username: identity.username.as_deref(),
                name: identity.name.as_deref(),
                roles: identity.roles.as_deref(),
            })
            .await;
        match recorded {
            Ok(Some(_)) => self.store.logout_precheck(check).await,
            Ok(None) => Ok(first),
            Err(e) => Err(StoreError::Unavailable(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn me_answer_must_name_the_caller() {
        let body = br#"{"_id":"u1","username":"alice","name":"Alice L.","roles":["admin","user",5],"success":true}"#;
        assert_eq!(
            parse_me(body, "u1", false),
            Some(Identity {
                username: Some("alice".into()),
                name: Some("Alice L.".into()),
                roles: None
            })
        );
        assert_eq!(
            parse_me(body, "u1", true).unwrap().roles,
            Some(vec!["admin".to_string(), "user".to_string()])
        );
        assert_eq!(parse_me(body, "u2", false), None);
        assert_eq!(parse_me(b"", "u1", false), None);
        assert_eq!(parse_me(br#"{"_id":7}"#, "u1", false), None);
        assert_eq!(
            parse_me(br#"{"_id":"u1"}"#, "u1", true),
            Some(Identity {
                username: None,
                name: None,
                roles: Some(Vec::new())
            })
        );
    }

    #[test]
    fn cache_keys_separate_user_and_token() {
        assert_ne!(pair_key("ab", "c"), pair_key("a", "bc"));
        assert_eq!(pair_key("a", "b"), pair_key("a", "b"));
    }

    fn verifier() -> UpstreamVerifier {
        crate::tls::install_crypto_provider();
        let cfg = Config::default();
        let client = crate::upstream::build(&cfg.proxy, &cfg.upstream).unwrap();
        UpstreamVerifier::new(&cfg, client, Arc::new(Metrics::new()))
    }

    #[tokio::test]
    async fn refusals_are_remembered_and_bounded() {
        let v = verifier();
        let key = pair_key("u", "t");
        assert!(!v.recently_refused(&key));
        v.remember_refusal(key);
        assert!(v.recently_refused(&key));
        for i in 0..NEGATIVE_CAPACITY + 10 {
            v.remember_refusal(pair_key("u", &i.to_string()));
        }
        assert!(v.refused().len() <= NEGATIVE_CAPACITY);
    }
}
