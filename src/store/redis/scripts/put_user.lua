-- put_user: create or update a user. Given fields are set; a new user gets
-- username '' and roles '[]'; the TOTP secret and backup codes are kept.
-- Reply: 1.
--
-- KEYS[1]: user:<id>, routing only (key names come from the prefix).
-- ARGV: prefix, id, username, has username (1|0), roles JSON, has roles
-- (1|0), display name, has name (1|0).
--
-- Atomic: each HEXISTS and the default it guards see the same hash, so a
-- concurrent update's username or roles are never overwritten by a default.

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
