//! In-process store with the Redis store's semantics, for `sessiongate demo`
//! and tests. One std mutex guards everything: no `.await` is ever held across
//! it, and every operation is as atomic as the Lua script it mirrors.
//! Windows and markers expire on tokio's clock, so tests can pause time.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

use crate::auth::{TokenHash, decode_hash};
use crate::store::record::{
    Commit, CommitOutcome, FEED_CAPACITY, FeedEvent, Precheck, PrecheckOutcome, Proof,
    SessionRecord, StoreError, StoredSession, UserRecord, expiry_secs, retry_after_secs,
    unix_now_secs,
};

/// Cheap-to-clone handle on one in-process store.
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemoryStore")
    }
}

struct Inner {
    state: Mutex<State>,
    /// The revocation channel: what `PUBLISH` is to Redis.
    events: broadcast::Sender<FeedEvent>,
}

#[derive(Default)]
struct State {
    users: HashMap<String, User>,
    sessions: HashMap<String, SessionRecord>,
    /// session id → the `Host` its login came to.
    hosts: HashMap<String, String>,
    /// token hash (base64) → session id, active sessions only.
    tokens: HashMap<String, String>,
    /// token hash (base64) → expiry (Unix seconds).
    revoked: HashMap<String, u32>,
    /// `(user, step)` → when the marker expires.
    used_steps: HashMap<(String, u64), Instant>,
    totp_failures: HashMap<String, Window>,
    logout_requests: HashMap<String, Window>,
    /// token hash (base64) → (client fingerprint, end of its remembered
    /// second factor): one window per token.
    remembered: HashMap<String, (String, Instant)>,
}

struct User {
    username: String,
    name: Option<String>,
    roles: Vec<String>,
    totp_secret: Option<String>,
    backup_codes: HashSet<String>,
}

/// A fixed-window counter: the window starts with the first count.
#[derive(Clone, Copy)]
struct Window {
    count: u64,
    ends: Instant,
}

impl Window {
    fn remaining_ms(&self, now: Instant) -> i64 {
        i64::try_from(self.ends.saturating_duration_since(now).as_millis()).unwrap_or(i64::MAX)
    }
}

/// Count one event in `map[key]`, opening a window of `window_secs` if none is live.
fn count_in_window(
    map: &mut HashMap<String, Window>,
    key: &str,
    window_secs: u64,
    now: Instant,
) -> Window {
    let window = map.entry(key.to_owned()).or_insert(Window {
        count: 0,
        ends: now,
    });
    if window.ends <= now {
        *window = Window {
            count: 0,
            ends: now + Duration::from_secs(window_secs.max(1)),
        };
    }
    window.count += 1;
    *window
}

fn live_window(map: &HashMap<String, Window>, key: &str, now: Instant) -> Option<Window> {
    map.get(key).copied().filter(|w| w.ends > now)
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        let (events, _) = broadcast::channel(FEED_CAPACITY);
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                events,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-applied step
        // worse than Redis would after a crash; keep serving.
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn put_user(
        &self,
        id: &str,
        username: Option<&str>,
        name: Option<&str>,
        roles: Option<&[String]>,
    ) -> Result<(), StoreError> {
        let mut state = self.state();
        let user = state.users.entry(id.to_owned()).or_insert_with(|| User {
            username: String::new(),
            name: None,
            roles: Vec::new(),
            totp_secret: None,
            backup_codes: HashSet::new(),
        });
        if let Some(username) = username {
            user.username = username.to_owned();
        }
        if let Some(name) = name {
            user.name = Some(name.to_owned());
        }
        if let Some(roles) = roles {
            user.roles = roles.to_vec();
        }
        Ok(())
    }

    pub(super) fn get_user(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
        Ok(self.state().user_record(id))
    }

    pub(super) fn set_totp_secret(&self, id: &str, sealed: &str) -> Result<bool, StoreError> {
        Ok(match self.state().users.get_mut(id) {
            Some(user) => {
                user.totp_secret = Some(sealed.to_owned());
                true
            }
            None => false,
        })
    }

    pub(super) fn set_backup_codes(&self, id: &str, hashes: &[String]) -> Result<bool, StoreError> {
        Ok(match self.state().users.get_mut(id) {
            Some(user) => {
                user.backup_codes = hashes.iter().cloned().collect();
                true
            }
            None => false,
        })
    }

    pub(super) fn add_session(
        &self,
        session: &SessionRecord,
        host: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut state = self.state();
        let old_hash = state
            .sessions
            .get(&session.id)
            .map(|old| old.token_hash.clone());
        if let Some(old_hash) = old_hash {
            if state.tokens.get(&old_hash) == Some(&session.id) {
                state.tokens.remove(&old_hash);
            }
        }
        if session.logout_at_ms.is_none() {
            state
                .tokens
                .insert(session.token_hash.clone(), session.id.clone());
        }
        state.sessions.insert(session.id.clone(), session.clone());
        match host {
            Some(host) => state.hosts.insert(session.id.clone(), host.to_owned()),
            None => state.hosts.remove(&session.id),
        };
        Ok(())
    }

    pub(super) fn get_session(&self, id: &str) -> Result<Option<StoredSession>, StoreError> {
        Ok(self.state().stored(id))
    }

    pub(super) fn session_by_token(
        &self,
        hash_b64: &str,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let state = self.state();
        Ok(state
            .tokens
            .get(hash_b64)
            .and_then(|id| state.sessions.get(id))
            .cloned())
    }

    pub(super) fn list_sessions(
        &self,
        user: Option<&str>,
    ) -> Result<Vec<StoredSession>, StoreError> {
        let state = self.state();
        let mut sessions: Vec<StoredSession> = state
            .sessions
            .values()
            .filter(|s| user.is_none_or(|u| s.user_id == u))
            .filter_map(|s| state.stored(&s.id))
            .collect();
        // Same order as ZREVRANGE: score descending, then member descending.
        sessions.sort_by(|a, b| {
            (b.record.login_at_ms, &b.record.id).cmp(&(a.record.login_at_ms, &a.record.id))
        });
        Ok(sessions)
    }

    pub(super) fn logout_precheck(
        &self,
        check: &Precheck<'_>,
    ) -> Result<PrecheckOutcome, StoreError> {
        let now = Instant::now();
        let mut state = self.state();
        let session_id = match state.tokens.get(check.token_hash_b64) {
            Some(id) => id.clone(),
            None => return Ok(PrecheckOutcome::Unauthorized),
        };
        let owned_and_active = state
            .sessions
            .get(&session_id)
            .is_some_and(|s| s.user_id == check.user_id && s.logout_at_ms.is_none());
        if !owned_and_active || state.revoked.contains_key(check.token_hash_b64) {
            return Ok(PrecheckOutcome::Unauthorized);
        }
        if let Some((limit, window_secs)) = check.rate_limit.filter(|(limit, _)| *limit > 0) {
            let window =
                count_in_window(&mut state.logout_requests, check.user_id, window_secs, now);
            if window.count > u64::from(limit) {
                return Ok(PrecheckOutcome::RateLimited {
                    retry_after_secs: retry_after_secs(window.remaining_ms(now)),
                });
            }
        }
        let (max_failures, _) = check.lockout;
        if max_failures > 0 {
            if let Some(window) = live_window(&state.totp_failures, check.user_id, now) {
                if window.count >= u64::from(max_failures) {
                    return Ok(PrecheckOutcome::RateLimited {
                        retry_after_secs: retry_after_secs(window.remaining_ms(now)),
                    });
                }
            }
        }
        Ok(PrecheckOutcome::Authorized {
            user: state.user_record(check.user_id).map(|mut user| {
                // As from Redis: backup codes stay in the store.
                user.backup_codes.clear();
                user
            }),
            session_id,
        })
    }

    pub(super) fn logout_commit(&self, commit: &Commit<'_>) -> Result<CommitOutcome, StoreError> {
        let now = Instant::now();
        let mut state = self.state();
        let remembered = commit.remember.as_ref().is_some_and(|r| {
            state
                .remembered
                .get(r.token_hash_b64)
                .is_some_and(|(client, ends)| client == r.client && *ends > now)
        });
        if !remembered {
            if let Some(outcome) = state.second_factor(commit, now) {
                return Ok(outcome);
            }
        }
        let revoked = state.revoke(
            commit.target_session_id,
            commit.logout_by,
            commit.revoked_ttl_secs,
            commit.now_ms,
        );
        drop(state);
        Ok(match revoked {
            Some((token_hash_b64, expires_at_secs)) => {
                self.announce(&token_hash_b64, expires_at_secs, commit.now_ms);
                CommitOutcome::Revoked {
                    token_hash_b64,
                    expires_at_secs,
                    remembered,
                }
            }
            None => CommitOutcome::SessionNotFound { remembered },
        })
    }

    pub(super) fn revoke_session(
        &self,
        session_id: &str,
        logout_by: &str,
        revoked_ttl_secs: u64,
        now_ms: u64,
    ) -> Result<Option<(String, u32)>, StoreError> {
        let revoked = self
            .state()
            .revoke(session_id, logout_by, revoked_ttl_secs, now_ms);
        if let Some((hash, expiry)) = &revoked {
            self.announce(hash, *expiry, now_ms);
        }
        Ok(revoked)
    }

    /// The in-process `PUBLISH`.
    fn announce(&self, hash_b64: &str, expires_at_secs: u32, published_at_ms: u64) {
        if let Some(hash) = decode_hash(hash_b64) {
            // No subscriber is fine: feeds take a snapshot when they start.
            let _ = self.inner.events.send(FeedEvent::Revoked {
                hash,
                expires_at_secs,
                published_at_ms,
            });
        }
    }

    pub(super) fn revoked_snapshot(&self, now_secs: u32) -> Vec<(TokenHash, u32)> {
        let mut state = self.state();
        state.revoked.retain(|_, expiry| *expiry > now_secs);
        let mut entries: Vec<(TokenHash, u32)> = state
            .revoked
            .iter()
            .filter_map(|(hash, expiry)| Some((decode_hash(hash)?, *expiry)))
            .collect();
        // Same order as the Redis store's.
        entries.sort_unstable();
        entries
    }

    pub(super) fn revocation_feed(&self) -> mpsc::Receiver<FeedEvent> {
        let (tx, rx) = mpsc::channel(FEED_CAPACITY);
        // Subscribe before the snapshot so nothing falls in between.
        let mut events = self.inner.events.subscribe();
        let store = self.clone();
        tokio::spawn(async move {
            let mut pending = Some(FeedEvent::Snapshot(store.revoked_snapshot(unix_now_secs())));
            loop {
                if let Some(event) = pending.take() {
                    if tx.send(event).await.is_err() {
                        return;
                    }
                }
                tokio::select! {
                    _ = tx.closed() => return,
                    event = events.recv() => match event {
                        Ok(event) => pending = Some(event),
                        // Missed events: a full snapshot covers them.
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            pending = Some(FeedEvent::Snapshot(store.revoked_snapshot(unix_now_secs())));
                        }
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                }
            }
        });
        rx
    }
}

impl State {
    fn stored(&self, id: &str) -> Option<StoredSession> {
        Some(StoredSession {
            record: self.sessions.get(id)?.clone(),
            host: self.hosts.get(id).cloned(),
        })
    }

    /// Step 5 without a remembered second factor: `None` when the proof
    /// passes (it is consumed and the caller's window opened), otherwise
    /// the answer (a failure counted for a bad proof).
    fn second_factor(&mut self, commit: &Commit<'_>, now: Instant) -> Option<CommitOutcome> {
        let accepted = match &commit.proof {
            Proof::Missing => return Some(CommitOutcome::TotpRequired),
            Proof::TotpSteps(steps) => {
                self.used_steps.retain(|_, ends| *ends > now);
                let ends = now + Duration::from_secs(commit.step_marker_ttl_secs.max(1));
                steps.iter().any(|step| {
                    match self.used_steps.entry((commit.user_id.to_owned(), *step)) {
                        Entry::Occupied(_) => false,
                        Entry::Vacant(slot) => {
                            slot.insert(ends);
                            true
                        }
                    }
                })
            }
            Proof::BackupCode(hash) => self
                .users
                .get_mut(commit.user_id)
                .is_some_and(|u| u.backup_codes.remove(hash)),
            Proof::Invalid => false,
        };
        if !accepted {
            count_in_window(
                &mut self.totp_failures,
                commit.user_id,
                commit.lockout_window_secs,
                now,
            );
            return Some(CommitOutcome::TotpInvalid);
        }
        if let Some(remember) = &commit.remember {
            self.remembered.insert(
                remember.token_hash_b64.to_owned(),
                (
                    remember.client.to_owned(),
                    now + Duration::from_secs(remember.ttl_secs.max(1)),
                ),
            );
        }
        None
    }

    fn user_record(&self, id: &str) -> Option<UserRecord> {
        let user = self.users.get(id)?;
        let mut backup_codes: Vec<String> = user.backup_codes.iter().cloned().collect();
        backup_codes.sort();
        Some(UserRecord {
            id: id.to_owned(),
            username: user.username.clone(),
            name: user.name.clone(),
            roles: user.roles.clone(),
            totp_secret: user.totp_secret.clone(),
            backup_codes,
        })
    }

    /// Mark the session logged out, remember its hash as revoked and end its
    /// remembered second factors; the caller announces it once the lock is
    /// released.
    fn revoke(
        &mut self,
        session_id: &str,
        logout_by: &str,
        ttl_secs: u64,
        now_ms: u64,
    ) -> Option<(String, u32)> {
        let session = self.sessions.get_mut(session_id)?;
        if session.logout_at_ms.is_some() {
            return None;
        }
        session.logout_at_ms = Some(now_ms);
        session.logout_by = Some(logout_by.to_owned());
        let hash = session.token_hash.clone();
        let expiry = expiry_secs(now_ms, ttl_secs);
        let slot = self.revoked.entry(hash.clone()).or_insert(expiry);
        *slot = (*slot).max(expiry);
        if self.tokens.get(&hash).is_some_and(|id| id == session_id) {
            self.tokens.remove(&hash);
        }
        // The token's remembered second factors end with it.
        self.remembered.remove(&hash);
        let now_secs = u32::try_from(now_ms / 1000).unwrap_or(u32::MAX);
        self.revoked.retain(|_, expiry| *expiry > now_secs);
        Some((hash, expiry))
    }
}
