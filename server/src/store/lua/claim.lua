-- KEYS: s kv t m c. ARGV: proof hex, now, idle ms, absolute ms, home id (empty for none).
-- Returns 1 (won), 0 (a live session has the id) or 5 (ended).
local now, idle, absolute = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local rec = redis.call('HMGET', KEYS[1], 'created', 'seen', 'is_home')
if live(rec[1], rec[2], rec[3], now, idle, absolute) then return 0 end
if rec[1] then
  -- Past its deadline by this caller's clock, before Redis's TTL: it has ended all the same.
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
  keep_claimed(KEYS[5], absolute)
  return 5
end
if redis.call('EXISTS', KEYS[5]) == 1 then return 5 end
-- Whatever is left of an earlier session with this id must not leak into the new one.
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
redis.call('HSET', KEYS[1], 'proof', ARGV[1], 'created', ARGV[2], 'seen', ARGV[2])
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'home', ARGV[5]) end
redis.call('PEXPIRE', KEYS[1], math.min(idle, absolute))
redis.call('SET', KEYS[5], '1', 'PX', 2 * absolute)
return 1
