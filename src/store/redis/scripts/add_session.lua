-- add_session: record a session (replacing any record under its id) and
-- index it: token:<hash> while it is active, user-sessions:<user> and
-- sessions. A replaced record's old token entry (if it still names this
-- session) and its old user's index entry are dropped. Reply: 1.
--
-- KEYS[1]: session:<id>, routing only (key names come from the prefix).
-- ARGV: prefix, id, user id, token hash, login at ms, active (1|0), then
-- field/value pairs of the session hash.
--
-- Atomic: readers see the old record and its index entries or the new ones,
-- never a half-written hash (DEL then HSET) or a token entry that names a
-- session of another token.

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
