-- KEYS: s kv t m c. ARGV: absolute ms. Returns whether the record existed. A session's
-- claim mark normally has more than an absolute lifetime left here; one claimed before marks
-- existed gets one now. A home gets none: it may be created again.
local rec = redis.call('HMGET', KEYS[1], 'created', 'is_home')
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
if not rec[1] then return 0 end
if not rec[2] then keep_claimed(KEYS[5], tonumber(ARGV[1])) end
return 1
