-- KEYS: s t. ARGV: thread id, thread JSON, updated_ms.
local ttl = session_ttl()
if not ttl then return 0 end
local raw = redis.call('HGET', KEYS[2], ARGV[1])
if not raw then return 3 end
local rec = cjson.decode(raw)
rec.thread, rec.updated_ms = ARGV[2], ARGV[3]
redis.call('HSET', KEYS[2], ARGV[1], cjson.encode(rec))
expire_with_session(KEYS[2], ttl)
return 1
