//! `POST /api/v1/sessions/logout`, answered by the gate (SPEC §1).
//!
//! The checks run in exactly the documented order; the first failure answers:
//! 1 token (401) → 2 rate limit / TOTP lockout (429) → 3 body (400/413) →
//! 4 permission (403) → 5 TOTP (403 not configured, 400 required/invalid) →
//! 6 session (404) → 7 revoke (200). Checks 1–2 cost one Redis round trip
//! (one Lua script) and 5a/5b–7 another; a Redis failure at either answers
//! 503, never 401/403/404. Nothing here is ever forwarded to the upstream.
//!
//! Remembered second factor (`totp.remember_seconds`, SPEC §11): a verified
//! code opens a window for the caller's login token, client IP and
//! User-Agent; inside it the commit script lets the call through without a
//! code (a code sent anyway is ignored). It replaces 5a/5b only: checks 1–4,
//! the rate limit, the TOTP lockout and the `totp-not-configured` refusal
//! still answer first. A window exists only after a verified code, so a user
//! without a secret never has one; the refusal stays fail-closed regardless.
//! The window check rides in the commit script: still two round trips.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::answers::{ApiError, logout_success};
use crate::api::body::{InvalidParams, parse_logout_body};
use crate::auth::{
    LOGOUT_DEVICE_MANAGEMENT, Permissions, client_fingerprint, encode_hash, hash_token,
};
use crate::body::Body;
use crate::capture::ClientFacts;
use crate::config::Config;
use crate::conn::ConnInfo;
use crate::metrics::Metrics;
use crate::revocation::RevokedSet;
use crate::store::{
    Commit, CommitOutcome, Precheck, PrecheckOutcome, Proof, Remember, Store, StoreError,
    UserRecord,
};
use crate::totp::{self, crypto::SecretKey};
use crate::verify::CallerAuth;

/// Largest request body drained after an early answer so keep-alive survives.
const DRAIN_AFTER_REFUSAL: usize = 1024 * 1024;

#[derive(Clone)]
pub struct LogoutApi {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    /// Checks 1–2, with the unknown-token fallback (SPEC §2 (b)).
    caller: CallerAuth,
    key: Arc<SecretKey>,
    permissions: Permissions,
    revoked: RevokedSet,
    metrics: Arc<Metrics>,
    deny_delay: Duration,
    rate_limit_per_minute: u32,
    max_body_bytes: usize,
    /// A body that stops arriving (slowloris) is given up on after this.
    body_timeout: Duration,
    totp_max_failures: u32,
    totp_lockout_secs: u64,
    totp_window: u8,
    token_lifetime_secs: u64,
    /// `totp.remember_seconds`; 0: every call needs a code.
    remember_secs: u64,
}

/// What the audit log records of one attempt. Never the token or the code.
struct Attempt {
    user_id: String,
    session_id: String,
}

/// The request body as read, before validation (check 3 decides).
pub(crate) enum ReadBody {
    Bytes(Bytes),
    TooLarge,
    Unreadable,
    /// Not complete within `server.header_read_timeout` (found by tests/hostile.rs).
    TimedOut,
}

impl LogoutApi {
    pub fn new(
        cfg: &Config,
        store: Store,
        key: Arc<SecretKey>,
        revoked: RevokedSet,
        metrics: Arc<Metrics>,
        caller: CallerAuth,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                caller,
                key,
                permissions: Permissions::new(&cfg.permissions),
                revoked,
                metrics,
                deny_delay: cfg.logout.deny_delay,
                rate_limit_per_minute: cfg.logout.rate_limit_per_minute,
                max_body_bytes: cfg.logout.max_body_bytes,
                body_timeout: cfg.server.header_read_timeout,
                totp_max_failures: cfg.logout.totp_max_failures,
                totp_lockout_secs: cfg.logout.totp_lockout.as_secs(),
                totp_window: cfg.totp.window,
                token_lifetime_secs: cfg.revocation.token_lifetime.as_secs(),
                remember_secs: cfg.totp.remember.as_secs(),
            }),
        }
    }

    pub async fn handle(&self, req: Request<Incoming>, conn: ConnInfo) -> Response<Body> {
        let inner = &self.inner;
        let (parts, body) = req.into_parts();
        let body = tokio::time::timeout(inner.body_timeout, read_body(body, inner.max_body_bytes))
            .await
            .unwrap_or(ReadBody::TimedOut);
        let client = ClientFacts::of(&parts.headers, &conn);
        let mut attempt = Attempt {
            user_id: header_text(&parts.headers, "x-user-id")
                .unwrap_or_default()
                .to_string(),
            session_id: String::new(),
        };
        let result = self
            .check_and_revoke(&parts.headers, &body, &client, &mut attempt)
            .await;
        let (outcome, mut response) = match result {
            Ok(session_id) => ("success", logout_success(&session_id)),
            Err(err) => (err.outcome(), err.clone().into_response()),
        };
        inner.metrics.logout_outcome(outcome);
        tracing::info!(
            target: "sessiongate::audit",
            event = "sessions.logout",
            caller = ?truncate(&attempt.user_id),
            session = ?truncate(&attempt.session_id),
            outcome,
            status = response.status().as_u16(),
            client_ip = %client.ip,
        );
        deny_delay(response.status(), inner.deny_delay).await;
        if matches!(body, ReadBody::TooLarge | ReadBody::TimedOut) {
            // The rest of the body is unread: the connection cannot be reused.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }

    async fn check_and_revoke(
        &self,
        headers: &HeaderMap,
        body: &ReadBody,
        client: &ClientFacts,
        attempt: &mut Attempt,
    ) -> Result<String, ApiError> {
        let inner = &self.inner;

        // 1. Who is calling? A revoked token is refused without asking Redis.
        let user_id = header_text(headers, "x-user-id").ok_or(ApiError::Unauthorized)?;
        let token = header_text(headers, "x-auth-token").ok_or(ApiError::Unauthorized)?;
        let token_hash = hash_token(token);
        if inner.revoked.contains(&token_hash) {
            return Err(ApiError::Unauthorized);
        }
        let token_hash_b64 = encode_hash(&token_hash);
        let precheck = Precheck {
            user_id,
            token_hash_b64: &token_hash_b64,
            rate_limit: (inner.rate_limit_per_minute > 0)
                .then_some((inner.rate_limit_per_minute, 60)),
            lockout: (inner.totp_max_failures, inner.totp_lockout_secs),
        };
        // 1 + 2 in one round trip (two more for a token verified upstream).
        let user = inner
            .caller
            .precheck(&precheck, token, client)
            .await
            .map_err(store_error)
            .and_then(caller_or_refusal)?;

        // 3. The body.
        let session_id = match body {
            ReadBody::TooLarge => return Err(ApiError::BodyTooLarge),
            ReadBody::Unreadable | ReadBody::TimedOut => {
                return Err(ApiError::InvalidParams(InvalidParams::Malformed.message()));
            }
            ReadBody::Bytes(bytes) => {
                let content_type = header_text(headers, header::CONTENT_TYPE.as_str());
                parse_logout_body(content_type, bytes)
                    .map_err(|e| ApiError::InvalidParams(e.message()))?
            }
        };
        attempt.session_id = session_id.clone();

        // 4. Permission.
        let Some(user) = user else {
            return Err(ApiError::Forbidden);
        };
        if !inner
            .permissions
            .allows(&user.roles, LOGOUT_DEVICE_MANAGEMENT)
        {
            return Err(ApiError::Forbidden);
        }

        // 5. Second factor. Fail closed without an enrolled secret.
        let remembering = inner.remember_secs > 0;
        let proof =
            second_factor_proof(&inner.key, &user, headers, inner.totp_window, remembering)?;
        let fingerprint = client_fingerprint(client.ip, client.user_agent.as_deref());
        let remember = remembering.then(|| Remember {
            token_hash_b64: &token_hash_b64,
            client: &fingerprint,
            ttl_secs: inner.remember_secs,
        });

        // 5a/5b (or the remembered second factor), 6, 7 in one atomic round trip.
        let commit = commit_for(
            &user.id,
            proof,
            &session_id,
            inner.totp_window,
            inner.token_lifetime_secs,
            inner.totp_lockout_secs,
            remember,
        );
        let outcome = inner
            .store
            .logout_commit(&commit)
            .await
            .map_err(store_error)?;
        if remembered(&outcome) {
            inner.metrics.remembered_call("sessions_logout");
        }
        match outcome {
            CommitOutcome::TotpRequired => Err(ApiError::TotpRequired),
            CommitOutcome::TotpInvalid => Err(ApiError::TotpInvalid),
            CommitOutcome::SessionNotFound { .. } => Err(ApiError::SessionNotFound),
            CommitOutcome::Revoked {
                token_hash_b64,
                expires_at_secs,
                ..
            } => {
                // Enforce here at once; other replicas learn it from the feed.
                if let Some(hash) = crate::auth::decode_hash(&token_hash_b64) {
                    inner.revoked.insert(&hash, expires_at_secs);
                }
                Ok(session_id)
            }
        }
    }
}

/// Step 5 of every endpoint that demands a second factor: the proof the
/// caller presented, checked against their secret (the store makes it
/// single-use, or ignores it inside a remembered window). Fails closed
/// without an enrolled secret, even for a caller with a remembered window.
/// Without a code: `Proof::Missing` when `remembering` (only the store knows
/// whether a window covers the call), row 5a at once otherwise.
///
/// # Errors
/// `TotpNotConfigured`, `TotpRequired`, or `StoreUnavailable` when the stored
/// secret cannot be opened.
pub(crate) fn second_factor_proof(
    key: &SecretKey,
    user: &UserRecord,
    headers: &HeaderMap,
    window: u8,
    remembering: bool,
) -> Result<Proof, ApiError> {
    let Some(sealed) = user.totp_secret.as_deref() else {
        return Err(ApiError::TotpNotConfigured);
    };
    let Some(code) = header_text(headers, "x-2fa-code") else {
        return if remembering {
            Ok(Proof::Missing)
        } else {
            Err(ApiError::TotpRequired)
        };
    };
    let method_is_totp =
        header_text(headers, "x-2fa-method").is_none_or(|m| m.eq_ignore_ascii_case("totp"));
    if !method_is_totp {
        // The gate offers TOTP only (SPEC §10); other methods count as failures.
        return Ok(Proof::Invalid);
    }
    let secret = key.decrypt(&user.id, sealed).map_err(|e| {
        tracing::error!(user = ?truncate(&user.id), error = %e, "cannot open the stored TOTP secret (wrong totp key?)");
        ApiError::StoreUnavailable
    })?;
    Ok(
        match totp::matching_steps(&secret, code, crate::clock::unix_secs(), window) {
            steps if !steps.is_empty() => Proof::TotpSteps(steps),
            _ if totp::backup::looks_like_backup_code(code) => {
                Proof::BackupCode(totp::backup::hash_backup_code(code))
            }
            _ => Proof::Invalid,
        },
    )
}

/// 401 and 403 answers wait a random 0..=`max` first (timing-attack blunting).
pub(crate) async fn deny_delay(status: http::StatusCode, max: Duration) {
    if matches!(status.as_u16(), 401 | 403) && !max.is_zero() {
        let max = max.as_millis() as u64;
        tokio::time::sleep(Duration::from_millis(rand::random_range(0..=max))).await;
    }
}

pub(crate) async fn read_body(body: Incoming, limit: usize) -> ReadBody {
    let mut body = body;
    let mut collected = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return ReadBody::Unreadable;
        };
        if let Some(data) = frame.data_ref() {
            if collected.len() + data.len() > limit {
                // Keep reading in the background for a while so the client
                // gets the 413 instead of a reset (lingering close).
                tokio::spawn(drain(body, DRAIN_AFTER_REFUSAL));
                return ReadBody::TooLarge;
            }
            collected.extend_from_slice(data);
        }
    }
    ReadBody::Bytes(Bytes::from(collected))
}

async fn drain(mut body: Incoming, mut budget: usize) {
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(frame)) = body.frame().await {
            let len = frame.data_ref().map_or(0, |d| d.len());
            if len >= budget {
                break;
            }
            budget -= len;
        }
    })
    .await;
}

/// Did a remembered second factor let this call through?
pub(crate) fn remembered(outcome: &CommitOutcome) -> bool {
    matches!(
        outcome,
        CommitOutcome::SessionNotFound { remembered: true }
            | CommitOutcome::Revoked {
                remembered: true,
                ..
            }
    )
}

/// The commit step (5a/5b–7) for `user_id`'s proof against `target`: the
/// used-step marker outlives every accepted step, revocations last the token
/// lifetime.
pub(crate) fn commit_for<'a>(
    user_id: &'a str,
    proof: Proof,
    target: &'a str,
    totp_window: u8,
    token_lifetime_secs: u64,
    lockout_secs: u64,
    remember: Option<Remember<'a>>,
) -> Commit<'a> {
    let window_steps = 2 * u64::from(totp_window) + 1;
    Commit {
        user_id,
        proof,
        target_session_id: target,
        logout_by: user_id,
        revoked_ttl_secs: token_lifetime_secs,
        step_marker_ttl_secs: (window_steps + 1) * totp::STEP_SECS,
        lockout_window_secs: lockout_secs,
        now_ms: crate::clock::unix_ms(),
        remember,
    }
}

/// Checks 1 and 2 as an answer: the caller's record, or the 401/429 refusal.
pub(crate) fn caller_or_refusal(
    outcome: PrecheckOutcome,
) -> Result<Option<crate::store::UserRecord>, ApiError> {
    match outcome {
        PrecheckOutcome::Unauthorized => Err(ApiError::Unauthorized),
        PrecheckOutcome::RateLimited { retry_after_secs } => Err(ApiError::TooManyRequests {
            retry_after_secs: retry_after_secs.max(1),
        }),
        PrecheckOutcome::Authorized { user, .. } => Ok(user),
    }
}

pub(crate) fn store_error(e: StoreError) -> ApiError {
    tracing::warn!(error = %e, "logout refused: session store unavailable");
    ApiError::StoreUnavailable
}

/// A non-empty header value as text (surrounding whitespace trimmed).
pub(crate) fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// Client-supplied identifiers are logged bounded (and Debug-escaped).
pub(crate) fn truncate(text: &str) -> &str {
    match text.char_indices().nth(64) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}
