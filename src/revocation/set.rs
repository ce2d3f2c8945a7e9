//! The in-memory set of revoked token hashes every gate replica holds.
//!
//! The forwarding hot path calls [`RevokedSet::contains`] on every request that
//! carries a token: a sharded read lock and one hash probe, never any I/O.
//! Keys are the first 16 bytes of the SHA-256 token hash (a false match needs a
//! 2^-128 collision) and values the expiry in Unix seconds, so 1,000,000 entries
//! fit in about 45 MiB.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use super::watch::{TokenWatch, Watchers};
use crate::auth::TokenHash;

const SHARDS: usize = 16;

pub(super) type Key = [u8; 16];

pub(super) fn key_of(hash: &TokenHash) -> Key {
    let mut key = [0u8; 16];
    key.copy_from_slice(&hash[..16]);
    key
}

/// The keys are SHA-256 output, already uniform: hashing them again is wasted work.
#[derive(Default)]
pub(super) struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(word);
        }
    }
}

pub(super) type DigestBuild = BuildHasherDefault<DigestHasher>;

type Shard = RwLock<HashMap<Key, u32, DigestBuild>>;

/// Cheap-to-clone handle on the shared revoked set.
#[derive(Clone)]
pub struct RevokedSet {
    inner: Arc<Inner>,
}

struct Inner {
    shards: Vec<Shard>,
    /// Entry count, kept beside the shards so the hot path can skip hashing
    /// entirely while nothing is revoked without taking 16 locks.
    len: AtomicUsize,
    /// Bumped after every new entry: a "not revoked" verdict taken at one
    /// generation holds while the generation is unchanged ([`super::CleanMemo`]).
    generation: AtomicU64,
    /// The tokens live websockets hold: a new entry wakes only its holders.
    watchers: Watchers,
}

impl Default for RevokedSet {
    fn default() -> Self {
        Self::new()
    }
}

impl RevokedSet {
    pub fn new() -> Self {
        let shards = (0..SHARDS).map(|_| RwLock::default()).collect();
        Self {
            inner: Arc::new(Inner {
                shards,
                len: AtomicUsize::new(0),
                generation: AtomicU64::new(0),
                watchers: Watchers::new(),
            }),
        }
    }

    fn shard(&self, key: &Key) -> &Shard {
        &self.inner.shards[usize::from(key[0]) % SHARDS]
    }

    /// Is this token revoked? Expired entries still count until purged: refusing
    /// a token a little longer than its lifetime is harmless.
    pub fn contains(&self, hash: &TokenHash) -> bool {
        let key = key_of(hash);
        let shard = self.shard(&key).read().unwrap_or_else(|e| e.into_inner());
        shard.contains_key(&key)
    }

    /// Record a revocation. Returns true when it was not known before; a new
    /// entry raises the signal of every [`TokenWatch`] watching it.
    pub fn insert(&self, hash: &TokenHash, expires_at_secs: u32) -> bool {
        let key = key_of(hash);
        let fresh = {
            let mut shard = self.shard(&key).write().unwrap_or_else(|e| e.into_inner());
            let slot = shard.entry(key).or_insert(0);
            let fresh = *slot == 0;
            *slot = (*slot).max(expires_at_secs).max(1);
            if fresh {
                self.inner.len.fetch_add(1, Ordering::Release);
            }
            fresh
        };
        if fresh {
            // After the entry is visible: a reader that sees the new
            // generation also sees the entry.
            self.inner.generation.fetch_add(1, Ordering::Release);
            self.inner.watchers.wake(&key);
        }
        fresh
    }

    /// Merge a full snapshot from the store. Entries are only ever added here:
    /// a snapshot can lag a publish, and forgetting a revocation is the one
    /// mistake the gate must never make. Returns how many were new.
    pub fn merge<'a>(&self, entries: impl IntoIterator<Item = (&'a TokenHash, u32)>) -> usize {
        entries
            .into_iter()
            .filter(|(hash, expiry)| self.insert(hash, *expiry))
            .count()
    }

    /// Drop entries whose token lifetime has passed.
    pub fn purge_expired(&self, now_secs: u32) -> usize {
        let mut removed = 0;
        for shard in &self.inner.shards {
            let mut shard = shard.write().unwrap_or_else(|e| e.into_inner());
            let before = shard.len();
            shard.retain(|_, expiry| *expiry > now_secs);
            let gone = before - shard.len();
            self.inner.len.fetch_sub(gone, Ordering::Release);
            removed += gone;
        }
        removed
    }

    pub fn len(&self) -> usize {
        self.inner.len.load(Ordering::Acquire)
    }

    /// Changes whenever an entry is added (never on purges: dropping an
    /// expired entry cannot make a live token revoked).
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A watch for one connection's tokens: [`TokenWatch::watch`] each
    /// token, then check [`RevokedSet::contains`] for the past; the watch's
    /// signal is raised by any later revocation of one of them.
    pub fn watch_tokens(&self) -> TokenWatch {
        TokenWatch::new(self.clone())
    }

    pub(super) fn watchers(&self) -> &Watchers {
        &self.inner.watchers
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::hash_token;

    #[test]
    fn inserted_hash_is_contained_and_counted_once() {
        let set = RevokedSet::new();
        let h = hash_token("t1");
        assert!(!set.contains(&h));
        assert!(set.insert(&h, 100));
        let generation = set.generation();
        assert!(!set.insert(&h, 50));
        assert_eq!(set.generation(), generation);
        assert!(set.contains(&h));
        assert_eq!(set.len(), 1);
        assert!(!set.contains(&hash_token("t2")));
    }

    #[test]
    fn purge_drops_only_expired_entries() {
        let set = RevokedSet::new();
        set.insert(&hash_token("old"), 10);
        set.insert(&hash_token("new"), 1000);
        assert_eq!(set.purge_expired(500), 1);
        assert!(set.contains(&hash_token("new")));
        assert!(!set.contains(&hash_token("old")));
        assert_eq!(set.len(), 1);
    }
}
