-- KEYS: s t. ARGV: thread id, record, max threads. An existing thread is left as it is.
local ttl = session_ttl()
if not ttl then return 0 end
if redis.call('HLEN', KEYS[2]) >= tonumber(ARGV[3]) then return 2 end
redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2])
expire_with_session(KEYS[2], ttl)
return 1
