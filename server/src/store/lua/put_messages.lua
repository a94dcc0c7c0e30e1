-- KEYS: s t m. ARGV: max messages (or "replace": only messages the thread lists are written,
-- and a new one answers 3 with nothing written); the end the turn read (empty: no check; "-":
-- the first message's thread held none; else the id of its last message), answering 7 with
-- nothing written when the thread ends elsewhere; then per message: thread id, message id, message JSON,
-- created_ms, "1" if the message says it is streaming. A message no longer streaming is never
-- put back to streaming: a stop that landed first stays (that put is skipped). Each message replaces its namesake if the thread lists it, else is appended and
-- moves updated_ms (kept a decimal string: picking the larger never reformats a number). All
-- or nothing: every thread is checked (exists, room left) before anything is written.
local ttl = session_ttl()
if not ttl then return 0 end
local replace_only = ARGV[1] == 'replace'
local max = tonumber(ARGV[1])
local recs, ids, changed, order = {}, {}, {}, {}
if ARGV[2] ~= '' and #ARGV >= 3 then
  local tid = ARGV[3]
  local raw = redis.call('HGET', KEYS[2], tid)
  if not raw then return 3 end
  local rec = cjson.decode(raw)
  local list = thread_ids(rec, tid)
  local last = '-'
  -- Ids are uuids of one length, comma-joined.
  if list ~= '' then last = string.sub(list, -36) end
  if last ~= ARGV[2] then return 7 end
end
for i = 3, #ARGV, 5 do
  local tid, mid, at = ARGV[i], ARGV[i + 1], ARGV[i + 3]
  local rec = recs[tid]
  if not rec then
    local raw = redis.call('HGET', KEYS[2], tid)
    if not raw then return 3 end
    rec = cjson.decode(raw)
    recs[tid] = rec
    ids[tid] = thread_ids(rec, tid)
  end
  if not string.find(ids[tid], mid, 1, true) then
    if replace_only then return 3 end
    local count = message_count(rec)
    if count >= max then return 2 end
    rec.count = count + 1
    if ids[tid] == '' then ids[tid] = mid else ids[tid] = ids[tid] .. ',' .. mid end
    if tonumber(at) > tonumber(rec.updated_ms) then rec.updated_ms = at end
    if not changed[tid] then changed[tid] = true; order[#order + 1] = tid end
  end
end
for _, tid in ipairs(order) do
  set_thread_ids(recs[tid], tid, ids[tid])
  redis.call('HSET', KEYS[2], tid, cjson.encode(recs[tid]))
end
if #order > 0 then expire_with_session(KEYS[2], ttl) end
for i = 3, #ARGV, 5 do
  local keep = false
  if ARGV[i + 4] == '1' then
    local old = redis.call('HGET', KEYS[3], ARGV[i + 1])
    -- The stored JSON names its status unescaped; any quote inside a text is escaped, so
    -- only the real field can match.
    keep = old ~= false and not string.find(old, '"status":"streaming"', 1, true)
  end
  if not keep then redis.call('HSET', KEYS[3], ARGV[i + 1], ARGV[i + 2]) end
end
expire_with_session(KEYS[3], ttl)
return 1
