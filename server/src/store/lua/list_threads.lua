-- KEYS: s t.
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, {}} end
return {1, redis.call('HVALS', KEYS[2])}
