//! The store's records, outcomes and errors, shared by both backends and the
//! [`super::Store`] facade (which only dispatches).

use std::fmt;

use crate::auth::TokenHash;

/// A user as the gate knows it.
#[derive(Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UserRecord {
    pub id: String,
    /// Empty when the user was created without one (e.g. by session capture).
    pub username: String,
    /// Display name (Rocket.Chat's `name`), when the gate has learned one:
    /// from a login answer's `data.me.name`, `/api/v1/me` or `user put --name`.
    pub name: Option<String>,
    pub roles: Vec<String>,
    /// Sealed (encrypted) TOTP secret, opaque here; `crate::totp` opens it.
    pub totp_secret: Option<String>,
    /// SHA-256 hex of each unused backup code.
    pub backup_codes: Vec<String>,
}

/// Hand-written so the sealed secret and the code hashes never reach a log:
/// backup codes are short enough that their unsalted hashes can be brute-forced.
impl fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserRecord")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("name", &self.name)
            .field("roles", &self.roles)
            .field(
                "totp_secret",
                &self.totp_secret.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "backup_codes",
                &format_args!("<{} redacted>", self.backup_codes.len()),
            )
            .finish()
    }
}

/// A login session (one device), as Rocket.Chat describes it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SessionRecord {
    pub id: String,
    pub user_id: String,
    /// `base64(sha256(token))`, Rocket.Chat's hashed-token form.
    pub token_hash: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub device: Option<serde_json::Value>,
    pub login_at_ms: u64,
    pub logout_at_ms: Option<u64>,
    pub logout_by: Option<String>,
}

/// A session with what Rocket.Chat shows beside its core record: `host`, the
/// `Host` header of the request that logged it in (Rocket.Chat stores
/// `connection.httpHeaders.host`: the REST login's, or the websocket
/// handshake's for a DDP login).
#[derive(Clone, Debug, PartialEq)]
pub struct StoredSession {
    pub record: SessionRecord,
    pub host: Option<String>,
}

/// Why a store operation failed. Messages never carry tokens, codes, secrets
/// or the Redis password.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Redis cannot be reached or did not answer in time; the caller answers
    /// 503 and tries again later. The store reconnects by itself.
    #[error("session store unavailable: {0}")]
    Unavailable(String),
    /// Redis answered, but with data the gate did not write (wrong type, bad
    /// number, malformed JSON).
    #[error("session store holds invalid data: {0}")]
    Corrupt(String),
    /// The store options cannot work (bad URL, unusable prefix). Only returned
    /// by construction.
    #[error("invalid session store configuration: {0}")]
    Config(String),
}

/// Input of [`Store::logout_precheck`]: checks 1 and 2 of the logout endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Precheck<'a> {
    /// The caller's `X-User-Id`.
    pub user_id: &'a str,
    /// `base64(sha256(X-Auth-Token))`.
    pub token_hash_b64: &'a str,
    /// `(limit, window_secs)` of the per-user request limit; `None` or a
    /// limit of 0 disables it.
    pub rate_limit: Option<(u32, u64)>,
    /// `(max_failures, window_secs)` of the TOTP failure lockout; a
    /// `max_failures` of 0 disables it.
    pub lockout: (u32, u64),
}

#[derive(Clone, Debug, PartialEq)]
pub enum PrecheckOutcome {
    /// Unknown token, token of another user, logged-out session or revoked hash.
    Unauthorized,
    /// Over the request limit or locked out after too many TOTP failures.
    RateLimited { retry_after_secs: u64 },
    /// The caller is who they claim; `user` is `None` when the gate has no user
    /// record (the caller decides what that means: no roles, no TOTP). Its
    /// `backup_codes` are empty: they never leave the store on this path.
    Authorized {
        user: Option<UserRecord>,
        session_id: String,
    },
}

/// The second factor presented to [`Store::logout_commit`], already checked
/// by the caller against the secret (the store only makes it single-use).
#[derive(Clone, PartialEq, Eq)]
pub enum Proof {
    /// The TOTP code matched these time steps (oldest first, at least one):
    /// mark the first one not yet used for the user as used.
    TotpSteps(Vec<u64>),
    /// SHA-256 hex of a backup code the user presented: consume it if unused.
    BackupCode(String),
    /// The code matched nothing: count a failure.
    Invalid,
    /// No code was presented: only a remembered second factor lets the call
    /// through (row 5a otherwise; no failure is counted).
    Missing,
}

impl fmt::Debug for Proof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TotpSteps(steps) => f.debug_tuple("TotpSteps").field(steps).finish(),
            Self::BackupCode(_) => f.write_str("BackupCode(<redacted>)"),
            Self::Invalid => f.write_str("Invalid"),
            Self::Missing => f.write_str("Missing"),
        }
    }
}

/// Input of [`Store::logout_commit`]: checks 5b to 7 of the logout endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commit<'a> {
    pub user_id: &'a str,
    pub proof: Proof,
    pub target_session_id: &'a str,
    /// Who logged the session out (the caller's user id).
    pub logout_by: &'a str,
    /// How long the revoked hash is remembered (Rocket.Chat token lifetime).
    pub revoked_ttl_secs: u64,
    /// Lifetime of the used-step marker: at least the span of accepted steps.
    pub step_marker_ttl_secs: u64,
    /// Fixed window of the failure counter, started by the first failure.
    pub lockout_window_secs: u64,
    pub now_ms: u64,
    /// The caller's remembered second factor; `None` when
    /// `totp.remember_seconds = 0` (every call then needs a code).
    pub remember: Option<Remember<'a>>,
}

/// Rocket.Chat's "remember 2FA" (`Accounts_TwoFactorAuthentication_RememberFor`):
/// a verified code lets later calls of the same login token, from the same
/// client, through without one until the window ends. The window is opened
/// only by a verified code (never extended by its use), one per token (a
/// code verified from another client moves it, as Rocket.Chat keeps one
/// fingerprint per token), and dies with the token: every revocation of the
/// session deletes it in the same script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Remember<'a> {
    /// `base64(sha256(token))` of the caller's own login token.
    pub token_hash_b64: &'a str,
    /// [`crate::auth::client_fingerprint`] of the caller's IP and User-Agent.
    pub client: &'a str,
    /// Length of a window opened by a verified code (at least 1).
    pub ttl_secs: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommitOutcome {
    /// No code presented, and no remembered second factor covers the caller.
    TotpRequired,
    /// Wrong, replayed or already-consumed code; the failure was counted.
    TotpInvalid,
    /// The second factor passed (a code, now used up, or a remembered one)
    /// but the target session does not exist or is already logged out.
    SessionNotFound { remembered: bool },
    /// The session is logged out and its token hash revoked and announced.
    /// `remembered`: the caller's remembered second factor let it through
    /// (any code it sent was ignored, as Rocket.Chat ignores it).
    Revoked {
        token_hash_b64: String,
        expires_at_secs: u32,
        remembered: bool,
    },
}

/// What [`Store::revocation_feed`] reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FeedEvent {
    /// Every unexpired revoked hash, taken after subscribing: sent first and
    /// after every reconnect, so nothing published while disconnected is lost.
    Snapshot(Vec<(TokenHash, u32)>),
    /// One revocation, as published.
    Revoked {
        hash: TokenHash,
        expires_at_secs: u32,
        /// The publisher's clock, for the propagation-lag metric.
        published_at_ms: u64,
    },
    /// The feed lost Redis; a fresh `Snapshot` follows once it is back.
    Down(String),
}

/// Depth of the feed channel: deep enough for a burst of revocations while
/// the consumer merges a snapshot.
pub(super) const FEED_CAPACITY: usize = 1024;

/// `retry_after` in whole seconds from a remaining TTL in milliseconds:
/// rounded up, and never 0 (a client told to wait 0 s would retry at once).
pub(super) fn retry_after_secs(pttl_ms: i64) -> u64 {
    let ms = u64::try_from(pttl_ms).unwrap_or(0);
    ms.div_ceil(1000).max(1)
}

/// Unix seconds of a revoked hash's expiry, saturating instead of wrapping
/// past 2106.
pub(super) fn expiry_secs(now_ms: u64, ttl_secs: u64) -> u32 {
    u32::try_from((now_ms / 1000).saturating_add(ttl_secs)).unwrap_or(u32::MAX)
}

/// Now, in Unix seconds (the revoked set's clock), saturating.
pub(super) fn unix_now_secs() -> u32 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    u32::try_from(secs).unwrap_or(u32::MAX)
}
