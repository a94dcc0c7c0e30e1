-- KEYS: s kv. ARGV: key, delta, max keys. Returns {status, sum}.
local ttl = session_ttl()
if not ttl then return {0, 0} end
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 and redis.call('HLEN', KEYS[2]) >= tonumber(ARGV[3]) then
  return {2, 0}
end
-- HINCRBY refuses a value that is not an integer, and a sum past 64 bits.
local ok, sum = pcall(redis.call, 'HINCRBY', KEYS[2], ARGV[1], ARGV[2])
if not ok then return {6, 0} end
expire_with_session(KEYS[2], ttl)
return {1, sum}
