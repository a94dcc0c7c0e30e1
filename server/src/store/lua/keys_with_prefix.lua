-- KEYS: s kv. ARGV: prefix. Compares bytes, where HSCAN MATCH would read `*?[\` as a glob.
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, {}} end
local out = {}
for _, k in ipairs(redis.call('HKEYS', KEYS[2])) do
  if string.sub(k, 1, #ARGV[1]) == ARGV[1] then out[#out + 1] = k end
end
return {1, out}
