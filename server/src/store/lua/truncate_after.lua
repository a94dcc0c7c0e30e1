-- KEYS: s t m. ARGV: thread id, message id to keep up to (empty: drop all).
-- Returns -1 without a session, else how many messages went.
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local raw = redis.call('HGET', KEYS[2], ARGV[1])
if not raw then return 0 end
local rec = cjson.decode(raw)
local all = thread_ids(rec, ARGV[1])
local keep = 0
if ARGV[2] ~= '' then
  local at = string.find(all, ARGV[2], 1, true)
  if not at then return 0 end
  keep = at + 35
end
local dropped = id_list(string.sub(all, keep + 1))
if #dropped == 0 then return 0 end
redis.call('HDEL', KEYS[3], unpack(dropped))
rec.count = message_count(rec) - #dropped
set_thread_ids(rec, ARGV[1], string.sub(all, 1, keep))
redis.call('HSET', KEYS[2], ARGV[1], cjson.encode(rec))
return #dropped
