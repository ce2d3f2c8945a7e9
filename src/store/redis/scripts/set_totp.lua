-- set_totp: store a sealed TOTP secret on an existing user.
-- Reply: 1, or 0 when the user does not exist.
--
-- KEYS[1]: user:<id>, routing only (key names come from the prefix).
-- ARGV: prefix, id, sealed secret.
--
-- Atomic: the existence check and the write see the same hash, so a secret
-- never creates a user (a hash holding nothing but `totp`).

local uk = k_user(ARGV[2])
if redis.call('EXISTS', uk) == 0 then return 0 end
redis.call('HSET', uk, 'totp', ARGV[3])
return 1
