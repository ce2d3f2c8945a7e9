-- revoke(sid, by, ttl, now_ms): the revoke step, a function shared by
-- commit.lua and the revoke script (`return revoke(ARGV[2], ARGV[3],
-- tonumber(ARGV[4]), ARGV[5])` in scripts.rs; KEYS[1]: session:<id>, routing
-- only; ARGV: prefix, session id, logout by, revoked ttl s, now ms).
-- Marks the session logged out, remembers its hash in `revoked` until
-- now + ttl (ZADD GT: never shortening an existing entry; expiry capped at
-- u32::MAX), purges expired hashes, drops the token index (if it still names
-- this session) and the token's remembered second factors, and PUBLISHes
-- `<hash> <expiry> <now_ms>` on `revocations`.
-- Returns {'notfound'} (unknown or already logged out), {'corrupt', why} or
-- {'revoked', hash, expiry}.
--
-- Atomic: every replica that sees the session logged out also sees its hash
-- revoked and its token unindexed, and a replica that subscribes and then
-- reads `revoked` gets each revocation from the message or from the set:
-- never from neither.

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
