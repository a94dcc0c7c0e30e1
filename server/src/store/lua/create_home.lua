-- KEYS: s kv t m. ARGV: proof hex, now, idle ms, absolute ms. Like CLAIM, but the record
-- gets no TTL, so its keys never get one either.
local now, idle, absolute = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local rec = redis.call('HMGET', KEYS[1], 'created', 'seen', 'is_home')
if live(rec[1], rec[2], rec[3], now, idle, absolute) then return 0 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
redis.call('HSET', KEYS[1], 'proof', ARGV[1], 'created', ARGV[2], 'seen', ARGV[2], 'is_home', '1')
return 1
