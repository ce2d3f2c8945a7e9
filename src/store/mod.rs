//! The session store: users, sessions, TOTP bookkeeping and revocations.
//!
//! Two backends with the same semantics behind one enum ([`Store`]):
//! - [`RedisStore`]: the production store. Single node, Sentinel or Cluster,
//!   optionally over TLS. Multi-key steps of the logout endpoint run as one Lua
//!   script each, so every replica of the gate sees them atomically; the key
//!   schema is in [`keys`].
//! - [`MemoryStore`]: in-process, for `sessiongate demo` and tests.
//!
//! This is the only module that talks to Redis. The hot path never calls the
//! store: it reads the in-memory revoked set, which the revocation sync keeps
//! current from [`Store::revocation_feed`].

pub mod keys;
mod memory;
mod redis;

use std::fmt;

use tokio::sync::mpsc;

use crate::auth::TokenHash;

pub use self::memory::MemoryStore;
pub use self::redis::{RedisOptions, RedisStore, redact_url};

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

/// The session store handle: cheap to clone.
#[derive(Clone, Debug)]
pub enum Store {
    Redis(RedisStore),
    Memory(MemoryStore),
}

impl Store {
    /// A Redis-backed store. Connects lazily: this succeeds while Redis is
    /// down, and commands answer [`StoreError::Unavailable`] until it is back.
    /// Never touches the network, so `check-config` can use it to validate.
    ///
    /// # Errors
    /// [`StoreError::Config`] when the URL or prefix cannot work.
    pub fn redis(options: RedisOptions) -> Result<Store, StoreError> {
        RedisStore::new(options).map(Store::Redis)
    }

    /// An in-process store with the same semantics (demo, tests).
    pub fn memory() -> Store {
        Store::Memory(MemoryStore::new())
    }

    /// Create or update a user. `None` keeps the stored value (a new user gets
    /// an empty username / no roles); the TOTP secret and backup codes are kept.
    pub async fn put_user(
        &self,
        id: &str,
        username: Option<&str>,
        roles: Option<&[String]>,
    ) -> Result<(), StoreError> {
        self.put_user_named(id, username, None, roles).await
    }

    /// [`Store::put_user`] that also sets the display name (`None` keeps it).
    pub async fn put_user_named(
        &self,
        id: &str,
        username: Option<&str>,
        name: Option<&str>,
        roles: Option<&[String]>,
    ) -> Result<(), StoreError> {
        match self {
            Store::Redis(s) => s.put_user(id, username, name, roles).await,
            Store::Memory(s) => s.put_user(id, username, name, roles),
        }
    }

    pub async fn get_user(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
        match self {
            Store::Redis(s) => s.get_user(id).await,
            Store::Memory(s) => s.get_user(id),
        }
    }

    /// Store a sealed TOTP secret. `false` when the user does not exist.
    pub async fn set_totp_secret(&self, id: &str, sealed: &str) -> Result<bool, StoreError> {
        match self {
            Store::Redis(s) => s.set_totp_secret(id, sealed).await,
            Store::Memory(s) => s.set_totp_secret(id, sealed),
        }
    }

    /// Replace the user's backup-code hashes. `false` when the user does not exist.
    pub async fn set_backup_codes(&self, id: &str, hashes: &[String]) -> Result<bool, StoreError> {
        match self {
            Store::Redis(s) => s.set_backup_codes(id, hashes).await,
            Store::Memory(s) => s.set_backup_codes(id, hashes),
        }
    }

    /// Record a session and index its token hash (unless it is logged out).
    /// Re-adding an id replaces the old record and drops its old index entry.
    pub async fn add_session(&self, session: &SessionRecord) -> Result<(), StoreError> {
        self.add_stored_session(session, None).await
    }

    /// [`Store::add_session`] with the `Host` its login came to.
    pub async fn add_stored_session(
        &self,
        session: &SessionRecord,
        host: Option<&str>,
    ) -> Result<(), StoreError> {
        match self {
            Store::Redis(s) => s.add_session(session, host).await,
            Store::Memory(s) => s.add_session(session, host),
        }
    }

    pub async fn get_session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        Ok(self.get_stored_session(id).await?.map(|s| s.record))
    }

    /// [`Store::get_session`] with its `host`.
    pub async fn get_stored_session(&self, id: &str) -> Result<Option<StoredSession>, StoreError> {
        match self {
            Store::Redis(s) => s.get_session(id).await,
            Store::Memory(s) => s.get_session(id),
        }
    }

    /// The active session a token hash belongs to.
    pub async fn session_by_token(
        &self,
        hash_b64: &str,
    ) -> Result<Option<SessionRecord>, StoreError> {
        match self {
            Store::Redis(s) => s.session_by_token(hash_b64).await,
            Store::Memory(s) => s.session_by_token(hash_b64),
        }
    }

    /// Sessions, newest login first (ties: larger id first), of one user or of all.
    pub async fn list_sessions(
        &self,
        user: Option<&str>,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let sessions = self.list_stored_sessions(user).await?;
        Ok(sessions.into_iter().map(|s| s.record).collect())
    }

    /// [`Store::list_sessions`] with each session's `host`.
    pub async fn list_stored_sessions(
        &self,
        user: Option<&str>,
    ) -> Result<Vec<StoredSession>, StoreError> {
        match self {
            Store::Redis(s) => s.list_sessions(user).await,
            Store::Memory(s) => s.list_sessions(user),
        }
    }

    /// Checks 1 and 2 of the logout endpoint in one round trip: the caller's
    /// token, then the request rate, then the TOTP lockout. Each call that
    /// passes check 1 counts against the rate limit.
    pub async fn logout_precheck(
        &self,
        check: &Precheck<'_>,
    ) -> Result<PrecheckOutcome, StoreError> {
        match self {
            Store::Redis(s) => s.logout_precheck(check).await,
            Store::Memory(s) => s.logout_precheck(check),
        }
    }

    /// Checks 5a/5b to 7 in one atomic step: a remembered second factor lets
    /// the call through (any proof is then ignored); otherwise consume the
    /// proof (or count a failure) and, when it passed, open the caller's
    /// remember window; then revoke the target session.
    pub async fn logout_commit(&self, commit: &Commit<'_>) -> Result<CommitOutcome, StoreError> {
        match self {
            Store::Redis(s) => s.logout_commit(commit).await,
            Store::Memory(s) => s.logout_commit(commit),
        }
    }

    /// Revoke one session (CLI `session revoke`, a user's own logout) and end
    /// its token's remembered second factor. Returns
    /// the revoked hash and its expiry; `None` when the session is unknown or
    /// already logged out.
    pub async fn revoke_session(
        &self,
        session_id: &str,
        logout_by: &str,
        revoked_ttl_secs: u64,
        now_ms: u64,
    ) -> Result<Option<(String, u32)>, StoreError> {
        match self {
            Store::Redis(s) => {
                s.revoke_session(session_id, logout_by, revoked_ttl_secs, now_ms)
                    .await
            }
            Store::Memory(s) => s.revoke_session(session_id, logout_by, revoked_ttl_secs, now_ms),
        }
    }

    /// Every revoked hash whose expiry is after `now_secs`, deduplicated and
    /// sorted. Read in batches, so it copes with millions of entries.
    /// Expired entries are dropped from the store on the way.
    pub async fn revoked_snapshot(
        &self,
        now_secs: u32,
    ) -> Result<Vec<(TokenHash, u32)>, StoreError> {
        match self {
            Store::Redis(s) => s.revoked_snapshot(now_secs).await,
            Store::Memory(s) => Ok(s.revoked_snapshot(now_secs)),
        }
    }

    /// Start following revocations: a background task sends a
    /// [`FeedEvent::Snapshot`] first, then each [`FeedEvent::Revoked`]; on a
    /// lost connection one [`FeedEvent::Down`] (per outage, not per retry),
    /// then a fresh snapshot once back.
    /// The task ends when the receiver is dropped. Must be called inside a
    /// tokio runtime.
    pub fn revocation_feed(&self) -> mpsc::Receiver<FeedEvent> {
        match self {
            Store::Redis(s) => s.revocation_feed(),
            Store::Memory(s) => s.revocation_feed(),
        }
    }

    /// One round trip to the store.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Store::Redis(s) => s.ping().await,
            Store::Memory(_) => Ok(()),
        }
    }
}

/// Depth of the feed channel: deep enough for a burst of revocations while
/// the consumer merges a snapshot.
const FEED_CAPACITY: usize = 1024;

/// `retry_after` in whole seconds from a remaining TTL in milliseconds:
/// rounded up, and never 0 (a client told to wait 0 s would retry at once).
fn retry_after_secs(pttl_ms: i64) -> u64 {
    let ms = u64::try_from(pttl_ms).unwrap_or(0);
    ms.div_ceil(1000).max(1)
}

/// Unix seconds of a revoked hash's expiry, saturating instead of wrapping
/// past 2106.
fn expiry_secs(now_ms: u64, ttl_secs: u64) -> u32 {
    u32::try_from((now_ms / 1000).saturating_add(ttl_secs)).unwrap_or(u32::MAX)
}

/// Now, in Unix seconds (the revoked set's clock), saturating.
fn unix_now_secs() -> u32 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    u32::try_from(secs).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_and_is_never_zero() {
        assert_eq!(retry_after_secs(60_000), 60);
        assert_eq!(retry_after_secs(59_001), 60);
        assert_eq!(retry_after_secs(1), 1);
        assert_eq!(retry_after_secs(0), 1);
        assert_eq!(retry_after_secs(-2), 1);
    }

    #[test]
    fn expiry_saturates_instead_of_wrapping() {
        assert_eq!(expiry_secs(1_000_500, 10), 1010);
        assert_eq!(expiry_secs(u64::MAX, 10), u32::MAX);
    }

    #[test]
    fn user_debug_redacts_secret_and_codes() {
        let user = UserRecord {
            id: "u1".into(),
            username: "alice".into(),
            name: None,
            roles: vec!["admin".into()],
            totp_secret: Some("SEALEDSECRET".into()),
            backup_codes: vec!["deadbeef".into(), "cafebabe".into()],
        };
        let text = format!("{user:?}");
        assert!(!text.contains("SEALEDSECRET"), "{text}");
        assert!(!text.contains("deadbeef"), "{text}");
        assert!(text.contains("<2 redacted>"), "{text}");
        assert_eq!(
            format!("{:?}", Proof::BackupCode("deadbeef".into())),
            "BackupCode(<redacted>)"
        );
    }
}
