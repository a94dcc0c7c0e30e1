-- KEYS: s t m. ARGV: thread id. Returns {code, thread record, messages in order}.
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, false, {}} end
local raw = redis.call('HGET', KEYS[2], ARGV[1])
if not raw then return {1, false, {}} end
local ids = id_list(thread_ids(cjson.decode(raw), ARGV[1]))
if #ids == 0 then return {1, raw, {}} end
return {1, raw, redis.call('HMGET', KEYS[3], unpack(ids))}
