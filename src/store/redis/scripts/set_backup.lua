-- set_backup: replace an existing user's backup-code hashes.
-- Reply: 1, or 0 when the user does not exist.
--
-- KEYS[1]: user:<id>, routing only (key names come from the prefix).
-- ARGV: prefix, id, code hashes...
--
-- Atomic: a logout consuming a code (commit.lua) sees the old set or the new
-- one, never the empty set between DEL and SADD; and codes are never stored
-- for a user that does not exist.

if redis.call('EXISTS', k_user(ARGV[2])) == 0 then return 0 end
local bk = k_user_backup(ARGV[2])
redis.call('DEL', bk)
if #ARGV >= 3 then redis.call('SADD', bk, unpack(ARGV, 3)) end
return 1
