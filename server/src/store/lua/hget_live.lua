-- KEYS: s, hash. ARGV: field. Reads one field of a live session.
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, false} end
return {1, redis.call('HGET', KEYS[2], ARGV[1])}
