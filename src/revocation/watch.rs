//! Which live connections watch which token: a revocation wakes only the
//! websockets holding that token.
//!
//! A broadcast of every revocation to every tunnel costs O(tunnels) wake-ups
//! per revocation, O(tunnels²) for a storm that revokes the tokens of every
//! open tunnel (10,000 tunnels: 10⁸ wake-ups, and a lagging receiver has to
//! re-check all its tokens). Here each watched token is a key in a sharded
//! map to the [`Signal`]s of the connections that hold it; [`Watchers::wake`]
//! looks the revoked key up once and signals only those.
//!
//! No revocation can fall between a connection's check and its watch:
//! [`TokenWatch::watch`] registers the key first and the caller checks the
//! set after, while [`super::RevokedSet::insert`] makes the entry visible
//! first and looks up the watchers after, both lookups under the shard's
//! lock. Whichever comes second sees the other's write.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use super::set::{DigestBuild, Key, key_of};
use crate::auth::TokenHash;

const SHARDS: usize = 16;

/// Raised once, when a token of the connection is revoked.
#[derive(Debug, Default)]
pub struct Signal {
    revoked: AtomicBool,
    notify: Notify,
}

impl Signal {
    pub fn is_raised(&self) -> bool {
        self.revoked.load(Ordering::Acquire)
    }

    fn raise(&self) {
        self.revoked.store(true, Ordering::Release);
        // Stores a permit when nobody is waiting: a raise between two polls
        // of [`Signal::raised`] is not lost.
        self.notify.notify_one();
    }

    /// Resolves once a watched token has been revoked.
    pub async fn raised(&self) {
        while !self.is_raised() {
            self.notify.notified().await;
        }
    }
}

type Shard = Mutex<HashMap<Key, Vec<Arc<Signal>>, DigestBuild>>;

/// The registry: watched token keys → the signals of their connections.
pub(super) struct Watchers {
    shards: Vec<Shard>,
}

impl Watchers {
    pub(super) fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    fn shard(&self, key: &Key) -> MutexGuard<'_, HashMap<Key, Vec<Arc<Signal>>, DigestBuild>> {
        // Pushes and removals cannot leave a shard inconsistent.
        self.shards[usize::from(key[0]) % SHARDS]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn add(&self, key: Key, signal: &Arc<Signal>) {
        let mut shard = self.shard(&key);
        let signals = shard.entry(key).or_default();
        if !signals.iter().any(|s| Arc::ptr_eq(s, signal)) {
            signals.push(signal.clone());
        }
    }

    fn remove(&self, key: &Key, signal: &Arc<Signal>) {
        let mut shard = self.shard(key);
        if let Some(signals) = shard.get_mut(key) {
            signals.retain(|s| !Arc::ptr_eq(s, signal));
            if signals.is_empty() {
                shard.remove(key);
            }
        }
    }

    /// `key` was just revoked: raise the signal of every connection holding it.
    pub(super) fn wake(&self, key: &Key) {
        let shard = self.shard(key);
        if let Some(signals) = shard.get(key) {
            for signal in signals {
                signal.raise();
            }
        }
    }

    #[cfg(test)]
    pub(super) fn watched(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|m| m.len()).unwrap_or(0))
            .sum()
    }
}

/// One connection's watch on its tokens; dropping it unregisters them all.
pub struct TokenWatch {
    set: super::RevokedSet,
    signal: Arc<Signal>,
    keys: Vec<Key>,
}

impl TokenWatch {
    pub(super) fn new(set: super::RevokedSet) -> Self {
        Self {
            set,
            signal: Arc::default(),
            keys: Vec::new(),
        }
    }

    /// Raise this watch's signal if `hash` is ever revoked from now on.
    /// Check [`super::RevokedSet::contains`] after it for the past.
    pub fn watch(&mut self, hash: &TokenHash) {
        let key = key_of(hash);
        if !self.keys.contains(&key) {
            self.set.watchers().add(key, &self.signal);
            self.keys.push(key);
        }
    }

    /// What to wait on: raised when a watched token is revoked.
    pub fn signal(&self) -> Arc<Signal> {
        self.signal.clone()
    }
}

impl Drop for TokenWatch {
    fn drop(&mut self) {
        for key in &self.keys {
            self.set.watchers().remove(key, &self.signal);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::auth::hash_token;
    use crate::revocation::RevokedSet;

    #[tokio::test]
    async fn revocation_raises_only_the_watchers_of_that_token() {
        let set = RevokedSet::new();
        let mut a = set.watch_tokens();
        let mut b = set.watch_tokens();
        a.watch(&hash_token("ta"));
        b.watch(&hash_token("tb"));
        b.watch(&hash_token("tb"));
        set.insert(&hash_token("ta"), 100);
        assert!(a.signal().is_raised());
        assert!(!b.signal().is_raised());
        // Resolves at once: the raise left a permit.
        a.signal().raised().await;
        set.insert(&hash_token("other"), 100);
        assert!(!b.signal().is_raised());
    }

    #[test]
    fn dropped_watches_leave_nothing_registered() {
        let set = RevokedSet::new();
        let mut a = set.watch_tokens();
        let mut b = set.watch_tokens();
        a.watch(&hash_token("shared"));
        b.watch(&hash_token("shared"));
        a.watch(&hash_token("own"));
        assert_eq!(set.watchers().watched(), 2);
        drop(a);
        assert_eq!(set.watchers().watched(), 1);
        set.insert(&hash_token("shared"), 100);
        assert!(b.signal().is_raised());
        drop(b);
        assert_eq!(set.watchers().watched(), 0);
    }
}
