//! The Redis store: single node, Sentinel or Cluster, plain or TLS (rustls).
//! Needs Redis 6.2 or later (RESP3, `ZADD GT`).
//!
//! This file is the store's face: [`RedisOptions`], [`RedisStore`] and its
//! operations, each one round trip (or a batch of them) that hands its
//! arguments to a command or script and its reply to [`reply`]. The rest, one
//! concern a file:
//! - [`url`]: what a URL names (topology, credentials, database); pure.
//! - [`connection`]: the clients, the shared connection's lifecycle
//!   (lazy connect, reconnect, backoff) and the timeout on every round trip.
//! - [`scripts`]: the Lua scripts (`scripts/*.lua`), one per multi-key step.
//! - [`reply`]: replies decoded into records and outcomes; pure.
//! - [`feed`]: the revocation feed (pub/sub plus snapshot resync), on a
//!   connection of its own; see [`RedisStore::revocation_feed`].
//! - [`error`]: Redis errors as [`StoreError`]s.

mod connection;
mod error;
mod feed;
mod reply;
mod scripts;
mod url;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ::redis::{Script, Value};
use tokio::sync::mpsc;

pub use self::url::redact_url;
use crate::auth::TokenHash;
use crate::store::keys::Keys;
use crate::store::record::{
    Commit, CommitOutcome, FeedEvent, Precheck, PrecheckOutcome, Proof, SessionRecord, StoreError,
    StoredSession, UserRecord,
};
use crate::store::redis::connection::{Connector, Timeouts, Via, read_ca};
use crate::store::redis::feed::Feed;
use crate::store::redis::reply::{hash_fields, int, stored_session, strings};
use crate::store::redis::scripts::Scripts;
use crate::store::redis::url::Topology;

/// How to reach Redis.
#[derive(Clone)]
pub struct RedisOptions {
    /// `redis://[user:pass@]host:port/db`, `rediss://…` (TLS),
    /// `redis+sentinel://[user:pass@]host:port[,host:port…]/<master>[/db]`
    /// (`rediss+sentinel://` for TLS to sentinels and master),
    /// `redis+cluster://[user:pass@]host:port[,host:port…]` (`rediss+cluster://`).
    /// The user/password authenticate to the data nodes (ACL or `requirepass`);
    /// Sentinels use [`RedisOptions::sentinel_auth`].
    pub url: String,
    /// Prefix of every key (default `sg:`); wrapped in a hash tag in Cluster mode.
    pub prefix: String,
    /// Bound on every command, including each snapshot batch.
    pub command_timeout: Duration,
    /// Bound on every connection attempt (TCP, TLS, AUTH, Sentinel lookup).
    pub connect_timeout: Duration,
    /// PEM file of the CA that signs the Redis server certificates, for
    /// private CAs; `None` trusts the system roots.
    pub tls_ca_file: Option<PathBuf>,
    /// Credentials for the Sentinels themselves (their own `requirepass` or
    /// ACL user), when they differ from the data nodes': (username, password).
    pub sentinel_auth: Option<(Option<String>, String)>,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379/0".to_owned(),
            prefix: "sg:".to_owned(),
            command_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(2),
            tls_ca_file: None,
            sentinel_auth: None,
        }
    }
}

/// Hand-written: the URL may carry the Redis password.
impl fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisOptions")
            .field("url", &redact_url(&self.url))
            .field("prefix", &self.prefix)
            .field("command_timeout", &self.command_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("tls_ca_file", &self.tls_ca_file)
            .field(
                "sentinel_auth",
                &self
                    .sentinel_auth
                    .as_ref()
                    .map(|(user, _)| (user.clone(), "***")),
            )
            .finish()
    }
}

/// Sessions fetched per pipeline when listing.
const LIST_BATCH: usize = 256;

/// Cheap-to-clone handle on one Redis deployment.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.inner.keys.prefix())
            .finish_non_exhaustive()
    }
}

struct Inner {
    connector: Connector,
    keys: Keys,
    scripts: Scripts,
    /// Read again by [`RedisStore::reload_tls_ca`].
    tls_ca_file: Option<std::path::PathBuf>,
}

impl RedisStore {
    /// Parse the options; never connects.
    ///
    /// # Errors
    /// [`StoreError::Config`] for an unparsable URL, an empty prefix in
    /// Cluster mode or an unreadable CA file. The message never contains the URL.
    pub fn new(options: RedisOptions) -> Result<Self, StoreError> {
        // Both ring and aws-lc-rs are compiled in; rustls refuses to pick.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let ca = options.tls_ca_file.as_deref().map(read_ca).transpose()?;
        let topology = Topology::parse(&options.url)?.with_sentinel_auth(&options.sentinel_auth)?;
        let cluster = matches!(topology, Topology::Cluster(_));
        let timeouts = Timeouts {
            command: options.command_timeout,
            connect: options.connect_timeout,
        };
        let connector = Connector::new(topology, ca.as_deref(), timeouts)?;
        let keys = if cluster {
            Keys::for_cluster(&options.prefix).ok_or_else(|| {
                StoreError::Config("redis prefix must not be empty in cluster mode".to_owned())
            })?
        } else {
            Keys::new(&options.prefix)
        };
        Ok(Self {
            inner: Arc::new(Inner {
                connector,
                keys,
                scripts: Scripts::new(),
                tls_ca_file: options.tls_ca_file,
            }),
        })
    }

    /// Read `redis.tls_ca_file` again: the next (re)connect verifies Redis
    /// with it; the open connection is left alone. On error nothing changes.
    ///
    /// # Errors
    /// [`StoreError::Config`] for an unreadable or empty CA file.
    pub fn reload_tls_ca(&self) -> Result<(), StoreError> {
        let Some(path) = &self.inner.tls_ca_file else {
            return Ok(());
        };
        self.inner.connector.replace_ca(&read_ca(path)?)
    }

    /// The key names this store uses (tests and the CLI's export use them).
    pub fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    /// Run `script` on the shared connection: `key` is `KEYS[1]` (it routes
    /// the call), the prefix then `args` are `ARGV`.
    async fn script(&self, script: &Script, key: &str, args: &[&str]) -> Result<Value, StoreError> {
        self.inner
            .connector
            .run(false, |mut conn| async move {
                let mut invocation = script.key(key);
                invocation.arg(self.inner.keys.prefix());
                for arg in args {
                    invocation.arg(*arg);
                }
                invocation.invoke_async(&mut conn).await
            })
            .await
    }

    pub(super) async fn ping(&self) -> Result<(), StoreError> {
        self.inner
            .connector
            .run(false, |mut conn| async move {
                ::redis::cmd("PING").query_async::<Value>(&mut conn).await
            })
            .await
            .map(drop)
    }

    pub(super) async fn put_user(
        &self,
        id: &str,
        username: Option<&str>,
        name: Option<&str>,
        roles: Option<&[String]>,
    ) -> Result<(), StoreError> {
        let roles_json = match roles {
            Some(roles) => serde_json::to_string(roles)
                .map_err(|e| StoreError::Corrupt(format!("roles not encodable: {e}")))?,
            None => String::new(),
        };
        let flag = |b: bool| if b { "1" } else { "0" };
        let key = self.inner.keys.user(id);
        self.script(
            &self.inner.scripts.put_user,
            &key,
            &[
                id,
                username.unwrap_or(""),
                flag(username.is_some()),
                &roles_json,
                flag(roles.is_some()),
                name.unwrap_or(""),
                flag(name.is_some()),
            ],
        )
        .await
        .map(drop)
    }

    pub(super) async fn get_user(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
        let key = self.inner.keys.user(id);
        let reply = self
            .script(&self.inner.scripts.get_user, &key, &[id])
            .await?;
        reply::user(id, reply)
    }

    pub(super) async fn set_totp_secret(&self, id: &str, sealed: &str) -> Result<bool, StoreError> {
        let key = self.inner.keys.user(id);
        let reply = self
            .script(&self.inner.scripts.set_totp, &key, &[id, sealed])
            .await?;
        Ok(int(&reply)? == 1)
    }

    pub(super) async fn set_backup_codes(
        &self,
        id: &str,
        hashes: &[String],
    ) -> Result<bool, StoreError> {
        let key = self.inner.keys.user(id);
        let mut args = vec![id];
        args.extend(hashes.iter().map(String::as_str));
        let reply = self
            .script(&self.inner.scripts.set_backup, &key, &args)
            .await?;
        Ok(int(&reply)? == 1)
    }

    pub(super) async fn add_session(
        &self,
        session: &SessionRecord,
        host: Option<&str>,
    ) -> Result<(), StoreError> {
        let login_at = session.login_at_ms.to_string();
        let logout_at = session.logout_at_ms.map(|ms| ms.to_string());
        let device = match &session.device {
            Some(device) => Some(
                serde_json::to_string(device)
                    .map_err(|e| StoreError::Corrupt(format!("device not encodable: {e}")))?,
            ),
            None => None,
        };
        let mut args: Vec<&str> = vec![
            &session.id,
            &session.user_id,
            &session.token_hash,
            &login_at,
            if session.logout_at_ms.is_none() {
                "1"
            } else {
                "0"
            },
            "userId",
            &session.user_id,
            "tokenHash",
            &session.token_hash,
            "loginAt",
            &login_at,
        ];
        let optional = [
            ("ip", session.ip.as_deref()),
            ("userAgent", session.user_agent.as_deref()),
            ("host", host),
            ("device", device.as_deref()),
            ("logoutAt", logout_at.as_deref()),
            ("logoutBy", session.logout_by.as_deref()),
        ];
        for (field, value) in optional {
            if let Some(value) = value {
                args.push(field);
                args.push(value);
            }
        }
        let key = self.inner.keys.session(&session.id);
        self.script(&self.inner.scripts.add_session, &key, &args)
            .await
            .map(drop)
    }

    pub(super) async fn get_session(&self, id: &str) -> Result<Option<StoredSession>, StoreError> {
        let key = self.inner.keys.session(id);
        let reply = self
            .inner
            .connector
            .run(false, |mut conn| async move {
                ::redis::cmd("HGETALL")
                    .arg(&key)
                    .query_async::<Value>(&mut conn)
                    .await
            })
            .await?;
        stored_session(id, hash_fields(reply)?)
    }

    pub(super) async fn session_by_token(
        &self,
        hash_b64: &str,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let key = self.inner.keys.token(hash_b64);
        let reply = self
            .script(&self.inner.scripts.session_by_token, &key, &[hash_b64])
            .await?;
        reply::session_by_token(reply)
    }

    pub(super) async fn list_sessions(
        &self,
        user: Option<&str>,
    ) -> Result<Vec<StoredSession>, StoreError> {
        let index = match user {
            Some(user) => self.inner.keys.user_sessions(user),
            None => self.inner.keys.sessions(),
        };
        // ZREVRANGE: newest first, ties by member descending.
        let ids: Vec<String> = strings(
            self.inner
                .connector
                .run(false, |mut conn| async move {
                    ::redis::cmd("ZRANGE")
                        .arg(&index)
                        .arg(0)
                        .arg(-1)
                        .arg("REV")
                        .query_async::<Value>(&mut conn)
                        .await
                })
                .await?,
        )?;
        let mut sessions = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(LIST_BATCH) {
            let mut pipe = ::redis::pipe();
            for id in chunk {
                pipe.cmd("HGETALL").arg(self.inner.keys.session(id));
            }
            let replies: Vec<Value> = self
                .inner
                .connector
                .run(false, |mut conn| async move {
                    pipe.query_async::<Vec<Value>>(&mut conn).await
                })
                .await?;
            for (id, reply) in chunk.iter().zip(replies) {
                // A dangling index entry (record deleted by hand) is skipped.
                if let Some(session) = stored_session(id, hash_fields(reply)?)? {
                    sessions.push(session);
                }
            }
        }
        Ok(sessions)
    }

    pub(super) async fn logout_precheck(
        &self,
        check: &Precheck<'_>,
    ) -> Result<PrecheckOutcome, StoreError> {
        let (limit, window) = check.rate_limit.unwrap_or((0, 0));
        let (max_failures, lock_window) = check.lockout;
        let key = self.inner.keys.token(check.token_hash_b64);
        let reply = self
            .script(
                &self.inner.scripts.precheck,
                &key,
                &[
                    check.user_id,
                    check.token_hash_b64,
                    &limit.to_string(),
                    &window.max(1).to_string(),
                    &max_failures.to_string(),
                    &lock_window.max(1).to_string(),
                ],
            )
            .await?;
        reply::precheck(check.user_id, reply)
    }

    pub(super) async fn logout_commit(
        &self,
        commit: &Commit<'_>,
    ) -> Result<CommitOutcome, StoreError> {
        let (kind, value) = match &commit.proof {
            Proof::TotpSteps(steps) => (
                "step",
                steps
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            Proof::BackupCode(hash) => ("backup", hash.clone()),
            Proof::Invalid => ("invalid", String::new()),
            Proof::Missing => ("none", String::new()),
        };
        let (remember_ms, remember_hash, remember_client) = match &commit.remember {
            Some(r) => (
                r.ttl_secs.max(1).saturating_mul(1000),
                r.token_hash_b64,
                r.client,
            ),
            None => (0, "", ""),
        };
        let key = self.inner.keys.user(commit.user_id);
        let reply = self
            .script(
                &self.inner.scripts.commit,
                &key,
                &[
                    commit.user_id,
                    kind,
                    &value,
                    commit.target_session_id,
                    commit.logout_by,
                    &commit.revoked_ttl_secs.to_string(),
                    &commit.step_marker_ttl_secs.max(1).to_string(),
                    &commit.lockout_window_secs.max(1).to_string(),
                    &commit.now_ms.to_string(),
                    &remember_ms.to_string(),
                    remember_hash,
                    remember_client,
                ],
            )
            .await?;
        reply::commit(reply)
    }

    pub(super) async fn revoke_session(
        &self,
        session_id: &str,
        logout_by: &str,
        revoked_ttl_secs: u64,
        now_ms: u64,
    ) -> Result<Option<(String, u32)>, StoreError> {
        let key = self.inner.keys.session(session_id);
        let reply = self
            .script(
                &self.inner.scripts.revoke,
                &key,
                &[
                    session_id,
                    logout_by,
                    &revoked_ttl_secs.to_string(),
                    &now_ms.to_string(),
                ],
            )
            .await?;
        reply::revoke(reply)
    }

    pub(super) async fn revoked_snapshot(
        &self,
        now_secs: u32,
    ) -> Result<Vec<(TokenHash, u32)>, StoreError> {
        let via = Via::Pool { force: false };
        feed::snapshot(&self.inner.connector, &self.inner.keys, now_secs, &via).await
    }

    /// Follow revocations on a dedicated RESP3 connection: see [`Feed::spawn`].
    pub(super) fn revocation_feed(&self) -> mpsc::Receiver<FeedEvent> {
        Feed::new(self.inner.connector.clone(), self.inner.keys.clone()).spawn()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(url: &str) -> RedisOptions {
        RedisOptions {
            url: url.to_owned(),
            ..RedisOptions::default()
        }
    }

    #[test]
    fn options_debug_hides_the_url_password() {
        let debug = format!("{:?}", opts("rediss://u:topsecret@h/0"));
        assert!(!debug.contains("topsecret"), "{debug}");
    }

    #[tokio::test]
    async fn construction_checks_the_url_without_connecting() {
        assert!(RedisStore::new(opts("redis://127.0.0.1:1/0")).is_ok());
        assert!(
            RedisStore::new(opts("redis+sentinel://127.0.0.1:1,127.0.0.1:2/mymaster/2")).is_ok()
        );
        assert!(RedisStore::new(opts("redis+cluster://127.0.0.1:1,127.0.0.1:2")).is_ok());
        assert!(RedisStore::new(opts("rediss://127.0.0.1:1/0")).is_ok());
        let bad = |url: &str| match RedisStore::new(opts(url)) {
            Err(StoreError::Config(message)) => message,
            other => panic!("{url}: expected a config error, got {other:?}"),
        };
        assert!(bad("http://x").contains("scheme"));
        assert!(bad("redis+sentinel://127.0.0.1:1").contains("master"));
        assert!(bad("redis+cluster://h:1/2").contains("database 0"));
        assert!(!bad("redis+sentinel://u:hunter2@h:x/m").contains("hunter2"));
        let cluster_empty_prefix = RedisStore::new(RedisOptions {
            prefix: String::new(),
            ..opts("redis+cluster://127.0.0.1:1")
        });
        assert!(matches!(cluster_empty_prefix, Err(StoreError::Config(_))));
    }

    #[test]
    fn cluster_store_uses_a_hash_tag() {
        let store = RedisStore::new(opts("redis+cluster://127.0.0.1:1"));
        let store = store.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(store.keys().revoked(), "{sg:}revoked");
    }
}
