-- KEYS: s, hash. ARGV: field. Returns -1 without a session, else how many fields went.
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
return redis.call('HDEL', KEYS[2], ARGV[1])
