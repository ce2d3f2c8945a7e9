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
mod record;
mod redis;

use tokio::sync::mpsc;

use crate::auth::TokenHash;

pub use self::memory::MemoryStore;
pub use self::record::*;
pub use self::redis::{RedisOptions, RedisStore, redact_url};

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
    /// Read the Redis CA bundle again (see [`RedisStore::reload_tls_ca`]).
    pub fn reload_tls_ca(&self) -> Result<(), StoreError> {
        match self {
            Store::Redis(s) => s.reload_tls_ca(),
            Store::Memory(_) => Ok(()),
        }
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Store::Redis(s) => s.ping().await,
            Store::Memory(_) => Ok(()),
        }
    }
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
