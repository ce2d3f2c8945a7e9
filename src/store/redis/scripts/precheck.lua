-- precheck: checks 1 and 2 of the logout endpoint in one round trip. The
-- caller's token must index an active session of the claimed user and not be
-- revoked; then the request counts against the per-user rate limit; then the
-- TOTP failure lockout is checked.
-- Reply: {'unauthorized'}, {'limited', pttl_ms} or
-- {'ok', session_id, user_hash} (the user hash without backup codes).
--
-- KEYS[1]: token:<hash>. It only routes the call to its hash slot: like every
-- script here, this one builds its key names from the prefix (the k_* helpers
-- prepended from keys.rs).
-- ARGV: prefix, user id, token hash, rate limit (0 = off), rate window s,
-- max TOTP failures (0 = off), lockout window s.
-- Fixed windows: the first counted event sets the expiry.
--
-- Atomic: the token index, the session and the revoked set are read as one
-- state, so a revocation committed before the call is seen whole (the call is
-- refused) and one committed after it is not seen at all; and each counter's
-- INCR and the EXPIRE that opens its window happen together, so a window
-- starts at its first event and every event is counted in it.

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
