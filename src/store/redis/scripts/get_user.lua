-- get_user: read a user: reply {user_hash, backup_code_hashes}.
--
-- KEYS[1]: user:<id>, routing only (key names come from the prefix).
-- ARGV: prefix, id.
--
-- Atomic (one script rather than two reads): one round trip, and the hash
-- and the codes are read at the same instant (a set_backup is seen whole or
-- not at all).

return {redis.call('HGETALL', k_user(ARGV[2])), redis.call('SMEMBERS', k_user_backup(ARGV[2]))}
