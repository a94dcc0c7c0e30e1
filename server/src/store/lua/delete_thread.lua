-- KEYS: s t m. ARGV: thread id.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local raw = redis.call('HGET', KEYS[2], ARGV[1])
if not raw then return 3 end
local ids = id_list(thread_ids(cjson.decode(raw), ARGV[1]))
if #ids > 0 then redis.call('HDEL', KEYS[3], unpack(ids)) end
redis.call('HDEL', KEYS[3], ids_field(ARGV[1]))
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
