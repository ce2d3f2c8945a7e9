//! The Lua scripts: each multi-key step runs as one script (one round trip,
//! atomic on the node that owns the keys).
//!
//! Every script starts with [`LUA_KEYS`], the Lua twin of [`Keys`], and
//! builds its key names from the prefix passed as `ARGV[1]`; `KEYS[1]` only
//! routes the call. In Cluster mode all keys share one hash slot (see
//! [`Keys::for_cluster`]) so the scripts, which compute some key names from
//! values they read, stay legal.
//!
//! [`Keys`]: crate::store::keys::Keys
//! [`Keys::for_cluster`]: crate::store::keys::Keys::for_cluster

use ::redis::Script;

use crate::store::keys::LUA_KEYS;

pub(super) struct Scripts {
    pub precheck: Script,
    pub commit: Script,
    pub revoke: Script,
    pub add_session: Script,
    pub put_user: Script,
    pub set_totp: Script,
    pub set_backup: Script,
    pub get_user: Script,
    pub session_by_token: Script,
}

impl Scripts {
    pub(super) fn new() -> Self {
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
