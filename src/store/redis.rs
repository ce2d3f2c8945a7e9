//! The Redis store: single node, Sentinel or Cluster, plain or TLS (rustls).
//! Needs Redis 6.2 or later (RESP3, `ZADD GT`).
//!
//! Connection policy:
//! - Lazy: construction never touches the network, so a gate that starts
//!   during a Redis outage comes up and recovers by itself.
//! - One multiplexed RESP3 connection (a cluster connection in Cluster mode)
//!   shared by all callers. It is forgotten the moment its socket closes (the
//!   RESP3 disconnection push), after any I/O error or timeout, and on a
//!   `READONLY`/`MASTERDOWN` answer (a Sentinel failover demoted our master);
//!   the next command reconnects, asking the Sentinels for the master again.
//! - Failed connects back off exponentially (50 ms doubling, capped at 1 s);
//!   commands in the backoff window fail fast with `Unavailable`.
//! - Every command is bounded by `command_timeout`, every connect by
//!   `connect_timeout`, so a paused or black-holed Redis yields `Unavailable`,
//!   never a hang. A command that timed out may still run later (Redis was
//!   only slow); every step is safe to observe late.
//!
//! The logout steps are Lua scripts (one round trip each, atomic). In Cluster
//! mode all keys share one hash slot (see [`Keys::for_cluster`]) so the
//! scripts, which compute some key names from values they read, stay legal.
//!
//! The revocation feed has a connection of its own; see
//! [`RedisStore::revocation_feed`].

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ::redis::aio::{ConnectionLike, MultiplexedConnection};
use ::redis::cluster::{ClusterClient, ClusterClientBuilder};
use ::redis::cluster_async::ClusterConnection;
use ::redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use ::redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionAddr, ConnectionInfo, ErrorKind,
    IntoConnectionInfo, Pipeline, ProtocolVersion, PushInfo, PushKind, RedisConnectionInfo,
    RedisError, RedisFuture, RedisResult, Script, ServerErrorKind, TlsCertificates, TlsMode, Value,
};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior, timeout, timeout_at};

use super::keys::{Keys, LUA_KEYS};
use super::{
    Commit, CommitOutcome, FEED_CAPACITY, FeedEvent, Precheck, PrecheckOutcome, Proof,
    SessionRecord, StoreError, StoredSession, UserRecord, parse_announcement, retry_after_secs,
    unix_now_secs,
};
use crate::auth::{TokenHash, decode_hash};

/// RESP3: connections report their own loss (a disconnection push), and the
/// feed's subscribed connection can still run commands (PING, ZSCAN).
/// Redis 6+ speaks it; the scripts need 6.2 anyway (`ZADD GT`).
const RESP3: ProtocolVersion = ProtocolVersion::RESP3;

/// How to reach Redis.
#[derive(Clone)]
pub struct RedisOptions {
    /// `redis://[user:pass@]host:port/db`, `rediss://…` (TLS),
    /// `redis+sentinel://[user:pass@]host:port[,host:port…]/<master>[/db]`
    /// (`rediss+sentinel://` for TLS to sentinels and master),
    /// `redis+cluster://[user:pass@]host:port[,host:port…]` (`rediss+cluster://`).
    /// The user/password authenticate to the data nodes (ACL or `requirepass`);
    /// Sentinels are contacted without credentials.
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
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379/0".to_owned(),
            prefix: "sg:".to_owned(),
            command_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(2),
            tls_ca_file: None,
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
            .finish()
    }
}

/// The URL with any password replaced, fit for logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<unparsable url>".to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            format!("{scheme}://{user}:***@{hosts}{path}")
        }
        None => url.to_owned(),
    }
}

/// Reconnect backoff: first retry after 50 ms, doubling, capped at 1 s.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// How often the feed pings its pub/sub connection: a connection that died
/// without a FIN (host gone, network partition) is noticed within this plus
/// the command timeout, and a fresh snapshot follows the reconnect.
const FEED_PING_EVERY: Duration = Duration::from_secs(1);
/// ZSCAN batch size for snapshots: 1,000,000 entries take ~100 round trips.
const SNAPSHOT_BATCH: usize = 10_000;
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
    target: Target,
    keys: Keys,
    command_timeout: Duration,
    connect_timeout: Duration,
    scripts: Scripts,
    link: Mutex<Link>,
    /// Serialises connection attempts: concurrent callers wait for the one in
    /// flight instead of each opening a socket.
    connecting: tokio::sync::Mutex<()>,
}

impl Inner {
    fn link(&self) -> MutexGuard<'_, Link> {
        self.link.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forget connection `generation` so the next command reconnects (unless
    /// it was already replaced).
    fn invalidate(&self, generation: u64) {
        let mut link = self.link();
        if link.conn.as_ref().is_some_and(|(g, _)| *g == generation) {
            link.conn = None;
        }
    }
}

/// The shared connection and the reconnect backoff state.
#[derive(Default)]
struct Link {
    conn: Option<(u64, Conn)>,
    generation: u64,
    failures: u32,
    retry_at: Option<Instant>,
    last_error: String,
}

/// Where the data nodes are.
enum Target {
    Single(Client),
    Sentinel(tokio::sync::Mutex<SentinelClient>),
    /// `seeds` serve the pub/sub connection: cluster PUBLISH reaches every node.
    Cluster {
        client: ClusterClient,
        seeds: Vec<Client>,
    },
}

#[derive(Clone)]
enum Conn {
    Plain(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Plain(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Plain(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Plain(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

struct Scripts {
    precheck: Script,
    commit: Script,
    revoke: Script,
    add_session: Script,
    put_user: Script,
    set_totp: Script,
    set_backup: Script,
    get_user: Script,
    session_by_token: Script,
}

impl Scripts {
    fn new() -> Self {
        let with_keys = |body: &str| Script::new(&format!("{LUA_KEYS}{body}"));
        let with_revoke = |body: &str| Script::new(&format!("{LUA_KEYS}{LUA_REVOKE}{body}"));
        Self {
            precheck: with_keys(LUA_PRECHECK),
            commit: with_revoke(LUA_COMMIT),
            revoke: with_revoke("return revoke(ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5])"),
            add_session: with_keys(LUA_ADD_SESSION),
            put_user: with_keys(LUA_PUT_USER),
            set_totp: with_keys(LUA_SET_TOTP),
            set_backup: with_keys(LUA_SET_BACKUP),
            get_user: with_keys(LUA_GET_USER),
            session_by_token: with_keys(LUA_SESSION_BY_TOKEN),
        }
    }
}

/// Checks 1 and 2. ARGV: prefix, user id, token hash, rate limit (0 = off),
/// rate window s, max TOTP failures (0 = off), lockout window s.
/// Fixed windows: the first counted event sets the expiry.
const LUA_PRECHECK: &str = r#"
local uid, hash = ARGV[2], ARGV[3]
local limit, rl_window = tonumber(ARGV[4]), tonumber(ARGV[5])
local max_fail, lock_window = tonumber(ARGV[6]), tonumber(ARGV[7])
local sid = redis.call('GET', k_token(hash))
if not sid then return {'unauthorized'} end
local s = redis.call('HMGET', k_session(sid), 'userId', 'logoutAt')
if s[1] ~= uid or s[2] then return {'unauthorized'} end
if redis.call('ZSCORE', K_REVOKED, hash) then return {'unauthorized'} end
if limit > 0 then
  local rk = k_logout_rate(uid)
  local n = redis.call('INCR', rk)
  local pttl = redis.call('PTTL', rk)
  if pttl < 0 then
    redis.call('EXPIRE', rk, rl_window)
    pttl = rl_window * 1000
  end
  if n > limit then return {'limited', pttl} end
end
if max_fail > 0 then
  local fk = k_totp_fail(uid)
  local f = tonumber(redis.call('GET', fk) or '0') or 0
  if f >= max_fail then
    local pttl = redis.call('PTTL', fk)
    if pttl < 0 then
      redis.call('EXPIRE', fk, lock_window)
      pttl = lock_window * 1000
    end
    return {'limited', pttl}
  end
end
return {'ok', sid, redis.call('HGETALL', k_user(uid))}
"#;

/// The revoke step shared by the commit and revoke scripts: mark the session
/// logged out, remember the hash until `now + ttl` (never shortening an
/// existing entry), purge expired hashes, drop the token index and the
/// token's remembered second factors, announce.
const LUA_REVOKE: &str = r#"
local function revoke(sid, by, ttl, now_ms)
  local sk = k_session(sid)
  local s = redis.call('HMGET', sk, 'userId', 'tokenHash', 'logoutAt')
  if not s[1] or s[3] then return {'notfound'} end
  local hash = s[2]
  if not hash then return {'corrupt', 'session without tokenHash'} end
  local now_s = math.floor(tonumber(now_ms) / 1000)
  local expiry = now_s + ttl
  if expiry > 4294967295 then expiry = 4294967295 end
  redis.call('HSET', sk, 'logoutAt', now_ms, 'logoutBy', by)
  redis.call('ZREMRANGEBYSCORE', K_REVOKED, '-inf', now_s)
  redis.call('ZADD', K_REVOKED, 'GT', expiry, hash)
  local tk = k_token(hash)
  if redis.call('GET', tk) == sid then redis.call('DEL', tk) end
  redis.call('DEL', k_totp_remember(hash))
  redis.call('PUBLISH', K_CHANNEL, hash .. ' ' .. string.format('%d', expiry) .. ' ' .. now_ms)
  return {'revoked', hash, expiry}
end
"#;

/// Checks 5a/5b to 7. ARGV: prefix, user id, proof kind
/// (step|backup|invalid|none), proof value (steps: comma-separated, oldest
/// first), target session, logout by, revoked ttl s, step marker ttl s,
/// lockout window s, now ms, remember window ms (0 = off), the caller's
/// token hash, the caller's client fingerprint.
///
/// The remember window is read and written on Redis's own clock (`TIME`), so
/// replicas with skewed clocks agree on when it ends. A live window lets the
/// call through and the proof is ignored (not consumed, no failure counted);
/// a verified proof opens a window (never extends a live one: it is only
/// written when no window covered the call). One window per token, as
/// Rocket.Chat keeps one fingerprint per login token: a code verified from
/// another client moves it there. The last reply item is 1 when the window
/// let the call through.
const LUA_COMMIT: &str = r#"
local uid, kind, value = ARGV[2], ARGV[3], ARGV[4]
local remember_ms = tonumber(ARGV[11]) or 0
local rk, client, now = nil, ARGV[13], 0
local remembered = false
if remember_ms > 0 then
  rk = k_totp_remember(ARGV[12])
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  remembered = (tonumber(redis.call('HGET', rk, client) or '0') or 0) > now
end
if not remembered then
  if kind == 'none' then return {'required'} end
  local accepted = false
  if kind == 'step' then
    for step in string.gmatch(value, '%d+') do
      if redis.call('SET', k_totp_used(uid, step), '1', 'NX', 'EX', ARGV[8]) then
        accepted = true
        break
      end
    end
  elseif kind == 'backup' then
    accepted = redis.call('SREM', k_user_backup(uid), value) == 1
  end
  if not accepted then
    local fk = k_totp_fail(uid)
    local n = redis.call('INCR', fk)
    if redis.call('TTL', fk) < 0 then redis.call('EXPIRE', fk, ARGV[9]) end
    return {'invalid', n}
  end
  if rk then
    redis.call('DEL', rk)
    redis.call('HSET', rk, client, string.format('%d', now + remember_ms))
    redis.call('PEXPIRE', rk, remember_ms)
  end
end
local reply = revoke(ARGV[5], ARGV[6], tonumber(ARGV[7]), ARGV[10])
reply[#reply + 1] = remembered and 1 or 0
return reply
"#;

/// ARGV: prefix, id, user id, token hash, login at ms, active (1|0), then
/// field/value pairs of the session hash.
const LUA_ADD_SESSION: &str = r#"
local id, uid, hash, login_at = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local sk = k_session(id)
local old = redis.call('HMGET', sk, 'userId', 'tokenHash')
if old[2] and old[2] ~= hash and redis.call('GET', k_token(old[2])) == id then
  redis.call('DEL', k_token(old[2]))
end
if old[1] and old[1] ~= uid then redis.call('ZREM', k_user_sessions(old[1]), id) end
redis.call('DEL', sk)
redis.call('HSET', sk, unpack(ARGV, 7))
local tk = k_token(hash)
if ARGV[6] == '1' then
  redis.call('SET', tk, id)
elseif redis.call('GET', tk) == id then
  redis.call('DEL', tk)
end
redis.call('ZADD', k_user_sessions(uid), login_at, id)
redis.call('ZADD', K_SESSIONS, login_at, id)
return 1
"#;

/// ARGV: prefix, id, username, has username (1|0), roles JSON, has roles
/// (1|0), display name, has name (1|0).
const LUA_PUT_USER: &str = r#"
local uk = k_user(ARGV[2])
if ARGV[4] == '1' then
  redis.call('HSET', uk, 'username', ARGV[3])
elseif redis.call('HEXISTS', uk, 'username') == 0 then
  redis.call('HSET', uk, 'username', '')
end
if ARGV[6] == '1' then
  redis.call('HSET', uk, 'roles', ARGV[5])
elseif redis.call('HEXISTS', uk, 'roles') == 0 then
  redis.call('HSET', uk, 'roles', '[]')
end
if ARGV[8] == '1' then redis.call('HSET', uk, 'name', ARGV[7]) end
return 1
"#;

/// ARGV: prefix, id, sealed secret.
const LUA_SET_TOTP: &str = r#"
local uk = k_user(ARGV[2])
if redis.call('EXISTS', uk) == 0 then return 0 end
redis.call('HSET', uk, 'totp', ARGV[3])
return 1
"#;

/// ARGV: prefix, id, code hashes…
const LUA_SET_BACKUP: &str = r#"
if redis.call('EXISTS', k_user(ARGV[2])) == 0 then return 0 end
local bk = k_user_backup(ARGV[2])
redis.call('DEL', bk)
if #ARGV >= 3 then redis.call('SADD', bk, unpack(ARGV, 3)) end
return 1
"#;

/// ARGV: prefix, id.
const LUA_GET_USER: &str = r#"
return {redis.call('HGETALL', k_user(ARGV[2])), redis.call('SMEMBERS', k_user_backup(ARGV[2]))}
"#;

/// ARGV: prefix, token hash.
const LUA_SESSION_BY_TOKEN: &str = r#"
local sid = redis.call('GET', k_token(ARGV[2]))
if not sid then return false end
return {sid, redis.call('HGETALL', k_session(sid))}
"#;

impl RedisStore {
    /// Parse the options; never connects.
    ///
    /// # Errors
    /// [`StoreError::Config`] for an unparsable URL, an empty prefix in
    /// Cluster mode or an unreadable CA file. The message never contains the URL.
    pub fn new(options: RedisOptions) -> Result<Self, StoreError> {
        // Both ring and aws-lc-rs are compiled in; rustls refuses to pick.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let ca = match &options.tls_ca_file {
            Some(path) => Some(std::fs::read(path).map_err(|e| {
                StoreError::Config(format!(
                    "cannot read redis TLS CA file {}: {e}",
                    path.display()
                ))
            })?),
            None => None,
        };
        let target = Target::parse(&options, ca.as_deref())?;
        let keys = match target {
            Target::Cluster { .. } => Keys::for_cluster(&options.prefix).ok_or_else(|| {
                StoreError::Config("redis prefix must not be empty in cluster mode".to_owned())
            })?,
            _ => Keys::new(&options.prefix),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                target,
                keys,
                command_timeout: options.command_timeout,
                connect_timeout: options.connect_timeout,
                scripts: Scripts::new(),
                link: Mutex::new(Link::default()),
                connecting: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// The key names this store uses (tests and the CLI's export use them).
    pub fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    fn link(&self) -> MutexGuard<'_, Link> {
        self.inner.link()
    }

    /// The shared connection, connecting if there is none. `force` skips the
    /// backoff wait: the feed uses it right after its own connect succeeded.
    async fn acquire(&self, force: bool) -> Result<(u64, Conn), StoreError> {
        if let Some(conn) = self.link().conn.clone() {
            return Ok(conn);
        }
        let deadline = Instant::now() + self.inner.connect_timeout;
        let _turn = timeout_at(deadline, self.inner.connecting.lock())
            .await
            .map_err(|_| unavailable("timed out waiting for a redis connection"))?;
        let generation = {
            let link = self.link();
            if let Some(conn) = link.conn.clone() {
                return Ok(conn);
            }
            if let Some(retry_at) = link.retry_at {
                if !force && Instant::now() < retry_at {
                    return Err(unavailable(&link.last_error));
                }
            }
            // Stable while we hold `connecting`.
            link.generation + 1
        };
        let config = self.connection_config(generation);
        let attempt = timeout_at(deadline, self.inner.target.connect(config))
            .await
            .unwrap_or_else(|_| Err(RedisError::from((ErrorKind::Io, "connect timed out"))));
        let mut link = self.link();
        match attempt {
            Ok(conn) => {
                link.generation = generation;
                link.failures = 0;
                link.retry_at = None;
                link.conn = Some((generation, conn.clone()));
                Ok((generation, conn))
            }
            Err(e) => {
                link.failures = link.failures.saturating_add(1);
                link.retry_at = Some(Instant::now() + backoff(link.failures));
                link.last_error = format!("cannot connect to redis: {}", describe(&e));
                Err(unavailable(&link.last_error))
            }
        }
    }

    /// Timeouts, and a hook that forgets the connection the moment its socket
    /// closes (Redis restarted, killed the client): the next command then
    /// reconnects instead of failing on a dead socket first.
    fn connection_config(&self, generation: u64) -> AsyncConnectionConfig {
        let inner = Arc::downgrade(&self.inner);
        AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.inner.connect_timeout))
            .set_response_timeout(Some(self.inner.command_timeout))
            .set_push_sender(move |info: PushInfo| {
                if info.kind == PushKind::Disconnection {
                    if let Some(inner) = inner.upgrade() {
                        inner.invalidate(generation);
                    }
                }
                Ok::<(), std::convert::Infallible>(())
            })
    }

    /// Run one round trip on the shared connection, bounded by the command
    /// timeout, mapping errors and dropping a connection that failed.
    async fn run<T, F, Fut>(&self, force_connect: bool, op: F) -> Result<T, StoreError>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let (generation, conn) = self.acquire(force_connect).await?;
        match timeout(self.inner.command_timeout, op(conn)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                let (error, reconnect) = classify(&e);
                if reconnect {
                    self.inner.invalidate(generation);
                }
                Err(error)
            }
            Err(_) => {
                self.inner.invalidate(generation);
                Err(unavailable("redis command timed out"))
            }
        }
    }

    async fn script(&self, script: &Script, key: &str, args: &[&str]) -> Result<Value, StoreError> {
        self.run(false, |mut conn| async move {
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
        self.run(false, |mut conn| async move {
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
        let mut parts = array(reply)?.into_iter();
        let fields = hash_fields(parts.next().unwrap_or(Value::Nil))?;
        let codes = strings(parts.next().unwrap_or(Value::Nil))?;
        user_record(id, fields, codes)
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
        if reply == Value::Nil {
            return Ok(None);
        }
        let mut parts = array(reply)?.into_iter();
        let id = text(&parts.next().unwrap_or(Value::Nil))
            .ok_or_else(|| corrupt("token index without a session id"))?;
        session_record(&id, hash_fields(parts.next().unwrap_or(Value::Nil))?)
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
            self.run(false, |mut conn| async move {
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
        let mut parts = array(reply)?.into_iter();
        let tag = text(&parts.next().unwrap_or(Value::Nil)).unwrap_or_default();
        match tag.as_str() {
            "unauthorized" => Ok(PrecheckOutcome::Unauthorized),
            "limited" => Ok(PrecheckOutcome::RateLimited {
                retry_after_secs: retry_after_secs(int(&parts.next().unwrap_or(Value::Nil))?),
            }),
            "ok" => {
                let session_id = text(&parts.next().unwrap_or(Value::Nil))
                    .ok_or_else(|| corrupt("token index without a session id"))?;
                let fields = hash_fields(parts.next().unwrap_or(Value::Nil))?;
                Ok(PrecheckOutcome::Authorized {
                    // Backup codes stay in Redis: the commit script consumes one.
                    user: user_record(check.user_id, fields, Vec::new())?,
                    session_id,
                })
            }
            _ => Err(corrupt("unexpected precheck reply")),
        }
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
        Ok(match revoke_reply(reply)? {
            Revocation::Required => CommitOutcome::TotpRequired,
            Revocation::Invalid => CommitOutcome::TotpInvalid,
            Revocation::NotFound { remembered } => CommitOutcome::SessionNotFound { remembered },
            Revocation::Revoked {
                hash,
                expiry,
                remembered,
            } => CommitOutcome::Revoked {
                token_hash_b64: hash,
                expires_at_secs: expiry,
                remembered,
            },
        })
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
        match revoke_reply(reply)? {
            Revocation::Revoked { hash, expiry, .. } => Ok(Some((hash, expiry))),
            Revocation::NotFound { .. } => Ok(None),
            Revocation::Invalid | Revocation::Required => Err(corrupt("unexpected revoke reply")),
        }
    }

    pub(super) async fn revoked_snapshot(
        &self,
        now_secs: u32,
    ) -> Result<Vec<(TokenHash, u32)>, StoreError> {
        self.snapshot(now_secs, &Via::Pool { force: false }).await
    }

    /// One command on the shared connection or a given one, bounded by the
    /// command timeout.
    async fn query(&self, via: &Via, cmd: &Cmd) -> Result<Value, StoreError> {
        match via {
            Via::Pool { force } => {
                self.run(*force, |mut conn| async move {
                    cmd.query_async::<Value>(&mut conn).await
                })
                .await
            }
            Via::Conn(conn) => {
                let mut conn = conn.clone();
                match timeout(self.inner.command_timeout, cmd.query_async(&mut conn)).await {
                    Ok(Ok(value)) => Ok(value),
                    Ok(Err(e)) => Err(classify(&e).0),
                    Err(_) => Err(unavailable("redis command timed out")),
                }
            }
        }
    }

    /// ZSCAN in batches: it returns every member present for the whole scan
    /// (what a subscriber that subscribed first needs), each batch is its own
    /// bounded round trip, and it never blocks Redis for long.
    async fn snapshot(
        &self,
        now_secs: u32,
        via: &Via,
    ) -> Result<Vec<(TokenHash, u32)>, StoreError> {
        let key = self.inner.keys.revoked();
        let mut purge = ::redis::cmd("ZREMRANGEBYSCORE");
        purge.arg(&key).arg("-inf").arg(now_secs);
        self.query(via, &purge).await?;
        let mut entries = Vec::new();
        let mut skipped = 0usize;
        let mut cursor = "0".to_owned();
        loop {
            let mut scan = ::redis::cmd("ZSCAN");
            scan.arg(&key).arg(&cursor).arg("COUNT").arg(SNAPSHOT_BATCH);
            let reply = self.query(via, &scan).await?;
            let mut parts = array(reply)?.into_iter();
            let next = text(&parts.next().unwrap_or(Value::Nil))
                .ok_or_else(|| corrupt("ZSCAN reply without a cursor"))?;
            let flat = array(parts.next().unwrap_or(Value::Nil))?;
            let mut pairs = flat.into_iter();
            while let (Some(member), Some(score)) = (pairs.next(), pairs.next()) {
                match (member_hash(&member), score_secs(&score)) {
                    (Some(hash), Some(expiry)) if expiry > now_secs => entries.push((hash, expiry)),
                    (Some(_), Some(_)) => {}
                    _ => skipped += 1,
                }
            }
            if next == "0" {
                break;
            }
            cursor = next;
        }
        if skipped > 0 {
            tracing::warn!(
                skipped,
                "revoked set holds members that are not token hashes"
            );
        }
        // ZSCAN may repeat members while the set is rehashed.
        entries.sort_unstable();
        entries.dedup_by(|a, b| a.0 == b.0);
        Ok(entries)
    }

    /// Follow revocations on a dedicated RESP3 connection.
    ///
    /// Each round: connect, SUBSCRIBE, then snapshot (after the subscription,
    /// so nothing published in between is missed), send `Snapshot`, then
    /// forward every message as `Revoked`. A closed socket is noticed at once
    /// (disconnection push); a silently dead one (host gone, partition,
    /// SIGSTOPped Redis) by a PING every second that must answer within the
    /// command timeout. On loss: one `Down` per outage (not per failed
    /// attempt), then reconnect with backoff (50 ms doubling, capped at 1 s)
    /// and snapshot again. A malformed message also triggers a snapshot. The
    /// task ends when the receiver is dropped.
    pub(super) fn revocation_feed(&self) -> mpsc::Receiver<FeedEvent> {
        let (tx, rx) = mpsc::channel(FEED_CAPACITY);
        let store = self.clone();
        tokio::spawn(async move { store.run_feed(tx).await });
        rx
    }

    async fn run_feed(self, tx: mpsc::Sender<FeedEvent>) {
        let mut delay = BACKOFF_MIN;
        let mut down_reported = false;
        loop {
            let error = match self.follow(&tx).await {
                FeedEnd::ReceiverGone => return,
                FeedEnd::Lost { synced, error } => {
                    if synced {
                        delay = BACKOFF_MIN;
                        down_reported = false;
                    }
                    error
                }
            };
            tracing::debug!(%error, "revocation feed lost redis");
            if !down_reported {
                if tx.send(FeedEvent::Down(error)).await.is_err() {
                    return;
                }
                down_reported = true;
            }
            tokio::select! {
                _ = tx.closed() => return,
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(BACKOFF_MAX);
        }
    }

    async fn follow(&self, tx: &mpsc::Sender<FeedEvent>) -> FeedEnd {
        let lost = |synced: bool, error: String| FeedEnd::Lost { synced, error };
        let (push_tx, mut pushes) = mpsc::unbounded_channel::<PushInfo>();
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.inner.connect_timeout))
            .set_response_timeout(Some(self.inner.command_timeout))
            .set_push_sender(push_tx);
        let connect = self.inner.target.feed_connection(config);
        let mut conn = match timeout(self.inner.connect_timeout, connect).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return lost(false, format!("cannot connect to redis: {}", describe(&e))),
            Err(_) => return lost(false, "redis connect timed out".to_owned()),
        };
        let channel = self.inner.keys.channel();
        match timeout(self.inner.command_timeout, conn.subscribe(&channel)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return lost(false, format!("redis SUBSCRIBE failed: {}", describe(&e))),
            Err(_) => return lost(false, "redis SUBSCRIBE timed out".to_owned()),
        }
        // Single node and Sentinel: snapshot on the subscribed connection
        // itself (same server, strictly after SUBSCRIBE). Cluster: the slot
        // owner may be another node; the pool finds it.
        let via = match self.inner.target {
            Target::Cluster { .. } => Via::Pool { force: true },
            _ => Via::Conn(conn.clone()),
        };
        match self.snapshot(unix_now_secs(), &via).await {
            Ok(entries) => {
                if tx.send(FeedEvent::Snapshot(entries)).await.is_err() {
                    return FeedEnd::ReceiverGone;
                }
            }
            Err(e) => return lost(false, e.to_string()),
        }
        let mut ping = tokio::time::interval(FEED_PING_EVERY);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        ping.tick().await;
        loop {
            tokio::select! {
                _ = tx.closed() => return FeedEnd::ReceiverGone,
                push = pushes.recv() => {
                    let Some(push) = push else {
                        return lost(true, "redis connection closed".to_owned());
                    };
                    let event = match push.kind {
                        PushKind::Disconnection => {
                            return lost(true, "redis connection closed".to_owned());
                        }
                        PushKind::Message => announcement(&push.data, &channel),
                        _ => continue,
                    };
                    let event = match event {
                        Some(event) => event,
                        None => {
                            tracing::warn!("malformed revocation message; resyncing");
                            match self.snapshot(unix_now_secs(), &via).await {
                                Ok(entries) => FeedEvent::Snapshot(entries),
                                Err(e) => return lost(true, e.to_string()),
                            }
                        }
                    };
                    if tx.send(event).await.is_err() {
                        return FeedEnd::ReceiverGone;
                    }
                }
                _ = ping.tick() => {
                    let ping = ::redis::cmd("PING");
                    match timeout(self.inner.command_timeout, ping.query_async::<Value>(&mut conn)).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => {
                            return lost(true, format!("redis ping failed: {}", describe(&e)));
                        }
                        Err(_) => return lost(true, "redis ping timed out".to_owned()),
                    }
                }
            }
        }
    }
}

/// Where a multi-round-trip read runs.
enum Via {
    /// The shared connection; `force` connects right away, skipping the
    /// backoff wait (the caller just reached Redis on its own connection).
    Pool { force: bool },
    /// A given connection (the feed's own).
    Conn(MultiplexedConnection),
}

/// A `message` push is `[channel, payload]`; anything else is malformed.
fn announcement(data: &[Value], channel: &str) -> Option<FeedEvent> {
    match data {
        [from, payload] if text(from).as_deref() == Some(channel) => {
            parse_announcement(&text(payload)?)
        }
        _ => None,
    }
}

enum FeedEnd {
    ReceiverGone,
    /// `synced`: a snapshot went out on this connection, so the outage is new.
    Lost {
        synced: bool,
        error: String,
    },
}

impl Target {
    fn parse(options: &RedisOptions, ca: Option<&[u8]>) -> Result<Self, StoreError> {
        let url = options.url.trim();
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| config("redis url has no scheme"))?;
        let scheme = scheme.to_ascii_lowercase();
        match scheme.as_str() {
            "redis" | "rediss" | "unix" | "redis+unix" => {
                let info = url
                    .into_connection_info()
                    .map_err(|e| config(&format!("invalid redis url: {}", describe(&e))))?;
                let settings = info.redis_settings().clone().set_protocol(RESP3);
                let info = info.set_redis_settings(settings);
                Ok(Target::Single(node_client(info, ca)?))
            }
            "redis+sentinel" | "rediss+sentinel" => {
                let spec = MultiHost::parse(rest, 26379)?;
                let tls = scheme.starts_with("rediss");
                let mut segments = spec.path.split('/').filter(|s| !s.is_empty());
                let master = segments
                    .next()
                    .ok_or_else(|| config("sentinel url needs /<master_name>"))?;
                let master = percent_decode(master)?;
                let db = parse_db(segments.next())?;
                if segments.next().is_some() {
                    return Err(config("sentinel url path is /<master_name>[/db]"));
                }
                let addrs = spec
                    .hosts
                    .iter()
                    .map(|(host, port)| node_addr(host, *port, tls));
                let mut builder =
                    SentinelClientBuilder::new(addrs, master, SentinelServerType::Master)
                        .map_err(|e| config(&describe(&e)))?
                        .set_client_to_redis_db(db)
                        .set_client_to_redis_protocol(RESP3);
                if let Some(user) = &spec.username {
                    builder = builder.set_client_to_redis_username(user);
                }
                if let Some(password) = &spec.password {
                    builder = builder.set_client_to_redis_password(password);
                }
                if tls {
                    builder = builder
                        .set_client_to_redis_tls_mode(TlsMode::Secure)
                        .set_client_to_sentinel_tls_mode(TlsMode::Secure);
                    if let Some(ca) = ca {
                        builder = builder
                            .set_client_to_redis_certificates(certificates(ca))
                            .set_client_to_sentinel_certificates(certificates(ca));
                    }
                }
                let client = builder.build().map_err(|e| config(&describe(&e)))?;
                Ok(Target::Sentinel(tokio::sync::Mutex::new(client)))
            }
            "redis+cluster" | "rediss+cluster" => {
                let spec = MultiHost::parse(rest, 6379)?;
                if !matches!(spec.path.trim_matches('/'), "" | "0") {
                    return Err(config("cluster mode has only database 0"));
                }
                let tls = scheme.starts_with("rediss");
                let infos = spec
                    .hosts
                    .iter()
                    .map(|(host, port)| {
                        let (user, password) = (spec.username.as_deref(), spec.password.as_deref());
                        node_info(host, *port, tls, user, password, 0)
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let seeds = infos
                    .iter()
                    .map(|info| node_client(info.clone(), ca))
                    .collect::<Result<Vec<_>, _>>()?;
                let mut builder = ClusterClientBuilder::new(infos)
                    .use_protocol(RESP3)
                    .connection_timeout(options.connect_timeout)
                    .response_timeout(options.command_timeout);
                if let Some(user) = &spec.username {
                    builder = builder.username(user);
                }
                if let Some(password) = &spec.password {
                    builder = builder.password(password);
                }
                if tls {
                    builder = builder.tls(TlsMode::Secure);
                    if let Some(ca) = ca {
                        builder = builder.certs(certificates(ca));
                    }
                }
                let client = builder.build().map_err(|e| config(&describe(&e)))?;
                Ok(Target::Cluster { client, seeds })
            }
            _ => Err(config(
                "redis url scheme must be redis, rediss, redis+sentinel, rediss+sentinel, redis+cluster or rediss+cluster",
            )),
        }
    }

    async fn connect(&self, config: AsyncConnectionConfig) -> RedisResult<Conn> {
        match self {
            Target::Single(client) => client
                .get_multiplexed_async_connection_with_config(&config)
                .await
                .map(Conn::Plain),
            Target::Sentinel(sentinel) => {
                let client = sentinel.lock().await.async_get_client().await?;
                client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                    .map(Conn::Plain)
            }
            Target::Cluster { client, .. } => {
                client.get_async_connection().await.map(Conn::Cluster)
            }
        }
    }

    /// A dedicated RESP3 connection for the feed (subscribed, so never shared).
    async fn feed_connection(
        &self,
        config: AsyncConnectionConfig,
    ) -> RedisResult<MultiplexedConnection> {
        match self {
            Target::Single(client) => {
                client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
            }
            Target::Sentinel(sentinel) => {
                let client = sentinel.lock().await.async_get_client().await?;
                client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
            }
            // Cluster PUBLISH reaches every node: any reachable seed will do.
            Target::Cluster { seeds, .. } => {
                let mut last = RedisError::from((ErrorKind::Io, "no cluster node reachable"));
                for seed in seeds {
                    match seed
                        .get_multiplexed_async_connection_with_config(&config)
                        .await
                    {
                        Ok(conn) => return Ok(conn),
                        Err(e) => last = e,
                    }
                }
                Err(last)
            }
        }
    }
}

/// The host list of a Sentinel or Cluster URL.
struct MultiHost {
    username: Option<String>,
    password: Option<String>,
    hosts: Vec<(String, u16)>,
    path: String,
}

impl MultiHost {
    fn parse(rest: &str, default_port: u16) -> Result<Self, StoreError> {
        if rest.contains(['?', '#']) {
            return Err(config(
                "redis url query and fragment are not supported here",
            ));
        }
        let authority_end = rest.find('/').unwrap_or(rest.len());
        let (authority, path) = rest.split_at(authority_end);
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((userinfo, hosts)) => (Some(userinfo), hosts),
            None => (None, authority),
        };
        let (username, password) = match userinfo {
            Some(userinfo) => {
                let (user, password) = match userinfo.split_once(':') {
                    Some((user, password)) => (user, Some(password)),
                    None => (userinfo, None),
                };
                let user = Some(percent_decode(user)?).filter(|u| !u.is_empty());
                let password = password.map(percent_decode).transpose()?;
                (user, password)
            }
            None => (None, None),
        };
        let hosts = hosts
            .split(',')
            .map(|host| parse_host_port(host, default_port))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            username,
            password,
            hosts,
            path: path.to_owned(),
        })
    }
}

fn parse_host_port(text: &str, default_port: u16) -> Result<(String, u16), StoreError> {
    let text = text.trim();
    let (host, port) = if let Some(bracketed) = text.strip_prefix('[') {
        // [v6]:port
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| config("redis url has an unclosed [ in a host"))?;
        (host, after.strip_prefix(':'))
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err(config("redis url has an empty host"));
    }
    let port = match port {
        Some(port) => port
            .parse()
            .map_err(|_| config("redis url has an invalid port"))?,
        None => default_port,
    };
    Ok((host.to_owned(), port))
}

fn parse_db(segment: Option<&str>) -> Result<i64, StoreError> {
    segment.map_or(Ok(0), |db| {
        db.parse()
            .map_err(|_| config("redis url database must be a number"))
    })
}

fn percent_decode(text: &str) -> Result<String, StoreError> {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| config("redis url credentials are not UTF-8"))
}

fn node_addr(host: &str, port: u16, tls: bool) -> ConnectionAddr {
    if tls {
        ConnectionAddr::TcpTls {
            host: host.to_owned(),
            port,
            insecure: false,
            tls_params: None,
        }
    } else {
        ConnectionAddr::Tcp(host.to_owned(), port)
    }
}

fn node_info(
    host: &str,
    port: u16,
    tls: bool,
    username: Option<&str>,
    password: Option<&str>,
    db: i64,
) -> Result<ConnectionInfo, StoreError> {
    let mut redis = RedisConnectionInfo::default()
        .set_db(db)
        .set_protocol(RESP3);
    if let Some(username) = username {
        redis = redis.set_username(username);
    }
    if let Some(password) = password {
        redis = redis.set_password(password);
    }
    node_addr(host, port, tls)
        .into_connection_info()
        .map(|info| info.set_redis_settings(redis))
        .map_err(|e| config(&format!("invalid redis node address: {}", describe(&e))))
}

fn certificates(ca: &[u8]) -> TlsCertificates {
    TlsCertificates {
        client_tls: None,
        root_cert: Some(ca.to_vec()),
    }
}

fn node_client(info: ConnectionInfo, ca: Option<&[u8]>) -> Result<Client, StoreError> {
    let tls = matches!(info.addr(), ConnectionAddr::TcpTls { .. });
    let client = match ca {
        Some(ca) if tls => Client::build_with_tls(info, certificates(ca)),
        _ => Client::open(info),
    };
    client.map_err(|e| config(&format!("invalid redis url: {}", describe(&e))))
}

fn backoff(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(10);
    (BACKOFF_MIN * 2u32.pow(exponent)).min(BACKOFF_MAX)
}

fn unavailable(message: &str) -> StoreError {
    StoreError::Unavailable(message.to_owned())
}

fn corrupt(message: &str) -> StoreError {
    StoreError::Corrupt(message.to_owned())
}

fn config(message: &str) -> StoreError {
    StoreError::Config(message.to_owned())
}

/// A redis error in words. Redis errors never echo AUTH arguments.
fn describe(e: &RedisError) -> String {
    e.to_string()
}

/// Map a Redis error to the store's, and say whether the connection should be
/// dropped (it may be dead, or point at a demoted master).
fn classify(e: &RedisError) -> (StoreError, bool) {
    let text = describe(e);
    match e.kind() {
        ErrorKind::Parse | ErrorKind::UnexpectedReturnType => (StoreError::Corrupt(text), false),
        ErrorKind::Server(ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown) => {
            (StoreError::Unavailable(text), true)
        }
        _ if e.code() == Some("WRONGTYPE") || text.contains("user_script") => {
            (StoreError::Corrupt(text), false)
        }
        _ => {
            let reconnect = e.is_io_error()
                || e.is_connection_dropped()
                || e.is_unrecoverable_error()
                || e.is_timeout()
                || e.is_connection_refusal();
            (StoreError::Unavailable(text), reconnect)
        }
    }
}

enum Revocation {
    Required,
    Invalid,
    NotFound {
        remembered: bool,
    },
    Revoked {
        hash: String,
        expiry: u32,
        remembered: bool,
    },
}

fn revoke_reply(reply: Value) -> Result<Revocation, StoreError> {
    let mut parts = array(reply)?.into_iter();
    let tag = text(&parts.next().unwrap_or(Value::Nil)).unwrap_or_default();
    // The commit script appends 1 when a remembered second factor let the call
    // through; the revoke script appends nothing.
    let flag = |item: Option<Value>| item.is_some_and(|v| text(&v).as_deref() == Some("1"));
    match tag.as_str() {
        "required" => Ok(Revocation::Required),
        "invalid" => Ok(Revocation::Invalid),
        "notfound" => Ok(Revocation::NotFound {
            remembered: flag(parts.next()),
        }),
        "revoked" => {
            let hash = text(&parts.next().unwrap_or(Value::Nil))
                .ok_or_else(|| corrupt("revoke reply without a hash"))?;
            let expiry = u32::try_from(int(&parts.next().unwrap_or(Value::Nil))?)
                .map_err(|_| corrupt("revoke reply expiry out of range"))?;
            Ok(Revocation::Revoked {
                hash,
                expiry,
                remembered: flag(parts.next()),
            })
        }
        "corrupt" => Err(StoreError::Corrupt(
            text(&parts.next().unwrap_or(Value::Nil)).unwrap_or_default(),
        )),
        _ => Err(corrupt("unexpected revoke reply")),
    }
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(n) => Some(n.to_string()),
        Value::Okay => Some("OK".to_owned()),
        Value::Double(d) => Some(d.to_string()),
        _ => None,
    }
}

fn int(value: &Value) -> Result<i64, StoreError> {
    match value {
        Value::Int(n) => Ok(*n),
        other => text(other)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| corrupt("expected an integer")),
    }
}

fn array(value: Value) -> Result<Vec<Value>, StoreError> {
    match value {
        Value::Array(items) | Value::Set(items) => Ok(items),
        Value::Nil => Ok(Vec::new()),
        _ => Err(corrupt("expected an array")),
    }
}

fn strings(value: Value) -> Result<Vec<String>, StoreError> {
    array(value)?
        .iter()
        .map(|v| text(v).ok_or_else(|| corrupt("expected text")))
        .collect()
}

/// HGETALL in RESP2 (flat array) or RESP3 (map) form.
fn hash_fields(value: Value) -> Result<HashMap<String, String>, StoreError> {
    let pairs: Vec<(Value, Value)> = match value {
        Value::Map(pairs) => pairs,
        other => {
            let flat = array(other)?;
            if flat.len() % 2 != 0 {
                return Err(corrupt("hash reply with an odd number of items"));
            }
            let mut items = flat.into_iter();
            let mut pairs = Vec::new();
            while let (Some(k), Some(v)) = (items.next(), items.next()) {
                pairs.push((k, v));
            }
            pairs
        }
    };
    pairs
        .into_iter()
        .map(|(k, v)| match (text(&k), text(&v)) {
            (Some(k), Some(v)) => Ok((k, v)),
            _ => Err(corrupt("hash field is not text")),
        })
        .collect()
}

fn user_record(
    id: &str,
    mut fields: HashMap<String, String>,
    mut backup_codes: Vec<String>,
) -> Result<Option<UserRecord>, StoreError> {
    if fields.is_empty() {
        return Ok(None);
    }
    let roles = match fields.get("roles") {
        Some(json) => serde_json::from_str(json)
            .map_err(|_| corrupt("user roles are not a JSON array of strings"))?,
        None => Vec::new(),
    };
    backup_codes.sort();
    Ok(Some(UserRecord {
        id: id.to_owned(),
        username: fields.remove("username").unwrap_or_default(),
        name: fields.remove("name").filter(|n| !n.is_empty()),
        roles,
        totp_secret: fields.remove("totp"),
        backup_codes,
    }))
}

fn session_record(
    id: &str,
    fields: HashMap<String, String>,
) -> Result<Option<SessionRecord>, StoreError> {
    Ok(stored_session(id, fields)?.map(|s| s.record))
}

fn stored_session(
    id: &str,
    mut fields: HashMap<String, String>,
) -> Result<Option<StoredSession>, StoreError> {
    if fields.is_empty() {
        return Ok(None);
    }
    let host = fields.remove("host");
    let number = |value: Option<String>, what: &str| -> Result<Option<u64>, StoreError> {
        value
            .map(|v| {
                v.parse()
                    .map_err(|_| corrupt(&format!("session {what} is not a number")))
            })
            .transpose()
    };
    let device = fields
        .remove("device")
        .map(|json| serde_json::from_str(&json).map_err(|_| corrupt("session device is not JSON")))
        .transpose()?;
    let record = SessionRecord {
        id: id.to_owned(),
        user_id: fields
            .remove("userId")
            .ok_or_else(|| corrupt("session without userId"))?,
        token_hash: fields
            .remove("tokenHash")
            .ok_or_else(|| corrupt("session without tokenHash"))?,
        ip: fields.remove("ip"),
        user_agent: fields.remove("userAgent"),
        device,
        login_at_ms: number(fields.remove("loginAt"), "loginAt")?
            .ok_or_else(|| corrupt("session without loginAt"))?,
        logout_at_ms: number(fields.remove("logoutAt"), "logoutAt")?,
        logout_by: fields.remove("logoutBy"),
    };
    Ok(Some(StoredSession { record, host }))
}

/// A revoked-set member as a token hash, without copying the reply.
fn member_hash(value: &Value) -> Option<TokenHash> {
    match value {
        Value::BulkString(bytes) => decode_hash(std::str::from_utf8(bytes).ok()?),
        other => decode_hash(&text(other)?),
    }
}

/// A revoked-set score (expiry, Unix seconds).
fn score_secs(value: &Value) -> Option<u32> {
    let score: f64 = match value {
        Value::BulkString(bytes) => std::str::from_utf8(bytes).ok()?.parse().ok()?,
        Value::Double(d) => *d,
        other => text(other)?.parse().ok()?,
    };
    Some(score_to_u32(score))
}

fn score_to_u32(score: f64) -> u32 {
    if score >= f64::from(u32::MAX) {
        u32::MAX
    } else if score <= 0.0 {
        0
    } else {
        // In range: the cast cannot truncate beyond the fraction.
        score as u32
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
    fn url_password_is_redacted() {
        assert_eq!(
            redact_url("redis://app:s3cret@h:6379/0"),
            "redis://app:***@h:6379/0"
        );
        assert_eq!(
            redact_url("redis+sentinel://:pw@a:1,b:2/mymaster"),
            "redis+sentinel://:***@a:1,b:2/mymaster"
        );
        assert_eq!(redact_url("redis://h:6379"), "redis://h:6379");
        let debug = format!("{:?}", opts("rediss://u:topsecret@h/0"));
        assert!(!debug.contains("topsecret"), "{debug}");
    }

    #[test]
    fn multi_host_urls_parse_hosts_credentials_and_path() {
        let spec = MultiHost::parse("u%40x:p%3Aw@a:1,[::1]:2,c/mymaster/3", 26379);
        let spec = spec.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(spec.username.as_deref(), Some("u@x"));
        assert_eq!(spec.password.as_deref(), Some("p:w"));
        assert_eq!(
            spec.hosts,
            vec![("a".into(), 1), ("::1".into(), 2), ("c".into(), 26379)]
        );
        assert_eq!(spec.path, "/mymaster/3");
        assert!(MultiHost::parse("a:notaport", 1).is_err());
        assert!(MultiHost::parse(":1", 1).is_err());
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

    #[test]
    fn backoff_doubles_to_one_second() {
        assert_eq!(backoff(1), Duration::from_millis(50));
        assert_eq!(backoff(2), Duration::from_millis(100));
        assert_eq!(backoff(5), Duration::from_millis(800));
        assert_eq!(backoff(6), Duration::from_secs(1));
        assert_eq!(backoff(u32::MAX), Duration::from_secs(1));
    }

    #[test]
    fn session_hash_parses_and_rejects_bad_numbers() {
        let fields: HashMap<String, String> = [
            ("userId", "u1"),
            ("tokenHash", "h"),
            ("loginAt", "5"),
            ("device", "{\"os\":\"x\"}"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let session = session_record("s1", fields.clone());
        assert_eq!(
            session,
            Ok(Some(SessionRecord {
                id: "s1".into(),
                user_id: "u1".into(),
                token_hash: "h".into(),
                ip: None,
                user_agent: None,
                device: Some(serde_json::json!({"os": "x"})),
                login_at_ms: 5,
                logout_at_ms: None,
                logout_by: None,
            }))
        );
        let mut bad = fields;
        bad.insert("loginAt".into(), "soon".into());
        assert!(matches!(
            session_record("s1", bad),
            Err(StoreError::Corrupt(_))
        ));
        assert_eq!(session_record("s1", HashMap::new()), Ok(None));
    }
}
