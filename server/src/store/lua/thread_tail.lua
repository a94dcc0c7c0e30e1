-- KEYS: s t m. ARGV: thread id, how many messages. Returns {code, thread record, message
-- count, the last messages in order}. The last ids are cut from the end of the id list, so
-- only they are fetched.
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, false, 0, {}} end
local raw = redis.call('HGET', KEYS[2], ARGV[1])
if not raw then return {1, false, 0, {}} end
local rec = cjson.decode(raw)
local count = message_count(rec)
local take = math.min(count, tonumber(ARGV[2]))
if take <= 0 then return {1, raw, count, {}} end
local ids = id_list(string.sub(thread_ids(rec, ARGV[1]), -(take * 37 - 1)))
return {1, raw, count, redis.call('HMGET', KEYS[3], unpack(ids))}
