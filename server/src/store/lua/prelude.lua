-- Helpers every session script starts with. KEYS[1] is always the session record.
-- The record's remaining lifetime in ms, or nil when it is gone (or about to be).
local function session_ttl()
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl == -2 or ttl == 0 then return nil end
  return ttl
end
-- Gives a key the record's deadline, so no part of a session outlives it.
local function expire_with_session(key, ttl)
  if ttl > 0 then redis.call('PEXPIRE', key, ttl) else redis.call('PERSIST', key) end
end
local function id_list(ids)
  local out = {}
  for id in string.gmatch(ids, '[^,]+') do out[#out + 1] = id end
  return out
end
-- A thread's message ids (36-character ids in order, comma-separated) live in the session's
-- messages hash, KEYS[3], under `ids:<thread id>`: a field no message id can be. The thread's
-- record stays a few fields long, so a turn does not decode and re-encode a JSON string that
-- grows with the thread. Records written before kept the ids in their `messages` field;
-- `thread_ids` reads either, and `set_thread_ids` moves them out on the next write.
local function ids_field(tid) return 'ids:' .. tid end
local function thread_ids(rec, tid)
  if rec.messages then return rec.messages end
  return redis.call('HGET', KEYS[3], ids_field(tid)) or ''
end
local function set_thread_ids(rec, tid, ids)
  rec.messages = nil
  if ids == '' then
    redis.call('HDEL', KEYS[3], ids_field(tid))
  else
    redis.call('HSET', KEYS[3], ids_field(tid), ids)
  end
end
local function expired(created, seen, now, idle, absolute)
  return now >= math.min(tonumber(seen) + idle, tonumber(created) + absolute)
end
-- Whether a record's created, seen and is_home fields (false when absent) describe a live
-- session or a home, which never expires.
local function live(created, seen, is_home, now, idle, absolute)
  if not created then return false end
  if is_home then return true end
  return not expired(created, seen or created, now, idle, absolute)
end
-- A thread record's message count. Records written before the count was kept have none
-- (and keep their ids in the record); theirs follows from the id list, and the next write
-- stores it.
local function message_count(rec)
  if rec.count then return tonumber(rec.count) end
  if not rec.messages or rec.messages == '' then return 0 end
  return (#rec.messages + 1) / 37
end
-- Keeps the claim mark `key` for at least `ms` more: its session has ended (or, for one
-- claimed before marks existed, is known to have been claimed) and its id must stay refused.
local function keep_claimed(key, ms)
  if redis.call('PTTL', key) < ms then redis.call('SET', key, '1', 'PX', ms) end
end
