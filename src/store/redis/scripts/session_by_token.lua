-- session_by_token: the session a token hash indexes: reply nil, or
-- {session_id, session_hash}.
--
-- KEYS[1]: token:<hash>, routing only (key names come from the prefix).
-- ARGV: prefix, token hash.
--
-- Atomic (one script rather than two reads): the second key comes from the
-- first read, so a script saves a round trip, and the record read is the one
-- the index named at that instant, not one that replaced it.

local sid = redis.call('GET', k_token(ARGV[2]))
if not sid then return false end
return {sid, redis.call('HGETALL', k_session(sid))}
