-- commit: checks 5a/5b to 7 of the logout endpoint. A remembered second
-- factor lets the call through; otherwise the proof is consumed (a TOTP step
-- marked used, a backup code removed) or a failure counted; then the target
-- session is revoked (revoke.lua, prepended).
-- Reply: {'required'} (no code, nothing remembered), {'invalid', failures},
-- or revoke()'s reply with one more item: 1 when the remember window let the
-- call through, else 0.
--
-- KEYS[1]: user:<user id>, routing only (key names come from the prefix).
-- ARGV: prefix, user id, proof kind (step|backup|invalid|none), proof value
-- (steps: comma-separated, oldest first), target session, logout by, revoked
-- ttl s, step marker ttl s, lockout window s, now ms, remember window ms
-- (0 = off), the caller's token hash, the caller's client fingerprint.
--
-- The remember window is read and written on Redis's own clock (`TIME`), so
-- replicas with skewed clocks agree on when it ends. A live window lets the
-- call through and the proof is ignored (not consumed, no failure counted);
-- a verified proof opens a window (never extends a live one: it is only
-- written when no window covered the call). One window per token, as
-- Rocket.Chat keeps one fingerprint per login token: a code verified from
-- another client moves it there.
--
-- Atomic: SET NX on the step marker and SREM on the backup code decide who
-- uses a code, so a code sent to two replicas at once passes once; no crash
-- or timeout can use up a code without the revoke it pays for having run;
-- and the window is checked and opened against one TIME reading.

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
