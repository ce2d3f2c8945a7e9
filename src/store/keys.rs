//! The Redis key schema: every key the gate reads or writes, in one place.
//!
//! Every key starts with the configured prefix (default `sg:`). In Cluster mode
//! the prefix is wrapped in a hash tag (`{sg:}`) unless it already carries one,
//! so every key lands in the same hash slot and the Lua scripts, which touch
//! several keys, stay atomic on one node.
//!
//! | key (after the prefix)     | type   | contents                                              | expiry                         |
//! |----------------------------|--------|-------------------------------------------------------|--------------------------------|
//! | `user:<id>`                | hash   | `username`, `name`, `roles` (JSON array), `totp` (sealed) | none                       |
//! | `user-backup:<id>`         | set    | SHA-256 hex of each unused backup code                | none                           |
//! | `user-sessions:<id>`       | zset   | session ids of the user, score = loginAt (ms)         | none                           |
//! | `session:<id>`             | hash   | `userId` `tokenHash` `ip` `userAgent` `host` `device` `loginAt` `logoutAt` `logoutBy` | none |
//! | `token:<hash_b64>`         | string | session id of an active session                       | none; deleted on revoke        |
//! | `sessions`                 | zset   | every session id, score = loginAt (ms)                | none                           |
//! | `revoked`                  | zset   | revoked token hash (base64), score = expiry (Unix s)  | members purged once expired    |
//! | `totp:used:<step>:<user>`  | string | `1`: this TOTP step was accepted for the user         | step marker TTL                |
//! | `totp:fail:<user>`         | string | failed second-factor attempts in the current window   | lockout window, from 1st fail  |
//! | `totp:remember:<hash_b64>` | hash   | client fingerprint → end of its remembered 2FA (ms)   | window end; deleted on revoke  |
//! | `rl:logout:<user>`         | string | logout requests in the current window                 | rate-limit window, from 1st    |
//! | `revocations` (channel)    | pubsub | `<hash_b64> <expires_at_secs> <published_at_ms>`      | —                              |
//!
//! Client-chosen text (user ids, session ids) only ever appears as the LAST
//! part of a key, after a fixed part that no other key type starts with. So a
//! user id such as `alice:backup` cannot name another user's key: `user:<id>`,
//! `user-backup:<id>` and `user-sessions:<id>` never overlap, and the TOTP step
//! (digits only) sits before the user id in `totp:used:`.
//!
//! `docs/redis-keys.md` carries the same table (with who writes each key) for
//! the README; keep them in step.
//!
//! The Lua scripts (`redis/scripts/*.lua`) build the same names from the prefix
//! passed as `ARGV[1]` ([`LUA_KEYS`]); the integration tests exercise both sides.

/// Builds key names for one prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys under `prefix` as given (single node, Sentinel, memory).
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    /// Keys for Cluster mode: the prefix becomes a hash tag so all keys share a
    /// slot. `None` for an empty prefix: `{}` is not a hash tag, so the keys
    /// would scatter across slots and the scripts would fail with CROSSSLOT.
    pub fn for_cluster(prefix: &str) -> Option<Self> {
        if has_hash_tag(prefix) {
            return Some(Self::new(prefix));
        }
        if prefix.is_empty() {
            return None;
        }
        Some(Self::new(&format!("{{{prefix}}}")))
    }

    /// The effective prefix (what `ARGV[1]` carries into the Lua scripts).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn key(&self, parts: &[&str]) -> String {
        let mut key = self.prefix.clone();
        for part in parts {
            key.push_str(part);
        }
        key
    }

    pub fn user(&self, user_id: &str) -> String {
        self.key(&["user:", user_id])
    }

    pub fn user_backup(&self, user_id: &str) -> String {
        self.key(&["user-backup:", user_id])
    }

    pub fn user_sessions(&self, user_id: &str) -> String {
        self.key(&["user-sessions:", user_id])
    }

    pub fn session(&self, session_id: &str) -> String {
        self.key(&["session:", session_id])
    }

    pub fn token(&self, hash_b64: &str) -> String {
        self.key(&["token:", hash_b64])
    }

    pub fn sessions(&self) -> String {
        self.key(&["sessions"])
    }

    pub fn revoked(&self) -> String {
        self.key(&["revoked"])
    }

    pub fn totp_used(&self, user_id: &str, step: u64) -> String {
        self.key(&["totp:used:", &step.to_string(), ":", user_id])
    }

    pub fn totp_fail(&self, user_id: &str) -> String {
        self.key(&["totp:fail:", user_id])
    }

    /// The remembered second factors of one login token (by its hash).
    pub fn totp_remember(&self, hash_b64: &str) -> String {
        self.key(&["totp:remember:", hash_b64])
    }

    pub fn logout_rate(&self, user_id: &str) -> String {
        self.key(&["rl:logout:", user_id])
    }

    /// The pub/sub channel revocations are announced on.
    pub fn channel(&self) -> String {
        self.key(&["revocations"])
    }
}

/// Redis hashes only the part between the first `{` and the next `}` when that
/// part is non-empty.
fn has_hash_tag(prefix: &str) -> bool {
    prefix
        .find('{')
        .and_then(|open| prefix.get(open + 1..))
        .and_then(|rest| rest.find('}'))
        .is_some_and(|close| close > 0)
}

/// Lua twin of [`Keys`]; every script starts with it. `P` is `ARGV[1]`.
pub const LUA_KEYS: &str = r#"
local P = ARGV[1]
local function k_user(id) return P .. 'user:' .. id end
local function k_user_backup(id) return P .. 'user-backup:' .. id end
local function k_user_sessions(id) return P .. 'user-sessions:' .. id end
local function k_session(id) return P .. 'session:' .. id end
local function k_token(h) return P .. 'token:' .. h end
local K_SESSIONS = P .. 'sessions'
local K_REVOKED = P .. 'revoked'
local function k_totp_used(uid, step) return P .. 'totp:used:' .. step .. ':' .. uid end
local function k_totp_fail(uid) return P .. 'totp:fail:' .. uid end
local function k_totp_remember(h) return P .. 'totp:remember:' .. h end
local function k_logout_rate(uid) return P .. 'rl:logout:' .. uid end
local K_CHANNEL = P .. 'revocations'
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_the_prefix() {
        let k = Keys::new("sg:");
        assert_eq!(k.user("u1"), "sg:user:u1");
        assert_eq!(k.user_backup("u1"), "sg:user-backup:u1");
        assert_eq!(k.user_sessions("u1"), "sg:user-sessions:u1");
        assert_eq!(k.session("s1"), "sg:session:s1");
        assert_eq!(k.token("abc="), "sg:token:abc=");
        assert_eq!(k.sessions(), "sg:sessions");
        assert_eq!(k.revoked(), "sg:revoked");
        assert_eq!(k.totp_used("u1", 42), "sg:totp:used:42:u1");
        assert_eq!(k.totp_fail("u1"), "sg:totp:fail:u1");
        assert_eq!(k.logout_rate("u1"), "sg:rl:logout:u1");
        assert_eq!(k.totp_remember("abc="), "sg:totp:remember:abc=");
        assert_eq!(k.channel(), "sg:revocations");
    }

    #[test]
    fn user_ids_with_separators_cannot_reach_other_key_types() {
        let k = Keys::new("sg:");
        assert_ne!(k.user("alice:backup"), k.user_backup("alice"));
        assert_ne!(k.user("alice:sessions"), k.user_sessions("alice"));
        assert_ne!(k.totp_used("a:1", 2), k.totp_used("a", 1));
    }

    #[test]
    fn cluster_prefix_becomes_a_hash_tag() {
        assert_eq!(
            Keys::for_cluster("sg:").map(|k| k.user("u")),
            Some("{sg:}user:u".into())
        );
        assert_eq!(
            Keys::for_cluster("{app}sg:").map(|k| k.revoked()),
            Some("{app}sg:revoked".into())
        );
        assert_eq!(
            Keys::for_cluster("{}x").map(|k| k.revoked()),
            Some("{{}x}revoked".into())
        );
        assert_eq!(Keys::for_cluster(""), None);
    }
}
