-- KEYS: s kv t m c. ARGV: proof hex (empty for none), now, idle ms, absolute ms.
-- Returns {1, stored proof, created, home} or {0} for no live session, {4, _, created} for
-- a home; the caller decides on the proof with a constant-time compare. The slide happens
-- here, gated on equality, so a verify stays one round trip; what is compared is a SHA-256
-- of the secret, which is of no use to anyone who learns it, so Lua's string equality leaks
-- nothing worth having.
local now, idle, absolute = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local rec = redis.call('HMGET', KEYS[1], 'proof', 'created', 'seen', 'home', 'is_home')
if not (rec[1] and rec[2]) then return {0, false, false, false} end
-- Before anything slides: a TTL on a home would end it.
if rec[5] then return {4, false, rec[2], false} end
if expired(rec[2], rec[3] or rec[2], now, idle, absolute) then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
  keep_claimed(KEYS[5], absolute)
  return {0, false, false, false}
end
if ARGV[1] == rec[1] then
  local ttl = math.min(idle, tonumber(rec[2]) + absolute - now)
  redis.call('HSET', KEYS[1], 'seen', ARGV[2])
  for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], ttl) end
  -- A session claimed before claim marks existed gets one, so that Redis dropping its keys
  -- unseen does not free its id.
  if redis.call('EXISTS', KEYS[5]) == 0 then
    redis.call('SET', KEYS[5], '1', 'PX', tonumber(rec[2]) + 2 * absolute - now)
  end
end
return {1, rec[1], rec[2], rec[4]}
