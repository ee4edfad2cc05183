-- The queue's event stream: every state change appended for the history sink (include/events.lua).

-- Stream ids "<ms>-<seq>" as two numbers, and their order.
local function stream_id(s)
  local ms, seq = string.match(s, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function id_less(a, b)
  local am, as = stream_id(a)
  local bm, bs = stream_id(b)
  return am < bm or (am == bm and as < bs)
end

-- The oldest entry some consumer group still needs: per group its oldest pending entry, else its
-- last-delivered id (everything up to it is read and acknowledged). nil when no group reads the stream.
local function acknowledged_floor(events_key)
  local floor = nil
  for _, group in ipairs(redis.call('XINFO', 'GROUPS', events_key)) do
    local info = {}
    for i = 1, #group, 2 do info[group[i]] = group[i + 1] end
    local need = info['last-delivered-id']
    if tonumber(info['pending']) > 0 then
      need = redis.call('XPENDING', events_key, info['name'])[2]
    end
    if floor == nil or id_less(need, floor) then floor = need end
  end
  return floor
end

-- Drop what every group has acknowledged; returns how many entries went.
local function trim_acknowledged(events_key)
  local floor = acknowledged_floor(events_key)
  if floor == nil then return 0 end
  return redis.call('XTRIM', events_key, 'MINID', floor)
end

-- Keep the stream within its cap without losing unread events silently: first drop what every group has
-- acknowledged; only when that is not enough drop the oldest unread entries (down to 95% of the cap, so this
-- runs once per 5% of growth) and count them in stats field events_dropped.
local function cap_events(events_key, stats_key, cap)
  trim_acknowledged(events_key)
  if redis.call('XLEN', events_key) > cap then
    local dropped = redis.call('XTRIM', events_key, 'MAXLEN', cap - math.floor(cap / 20))
    redis.call('HINCRBY', stats_key, 'events_dropped', dropped)
  end
end

-- Append one entry to the stream; maxlen 0 means history is off (no events at all).
local function append(events_key, stats_key, maxlen, ...)
  local cap = tonumber(maxlen)
  if cap > 0 then
    redis.call('XADD', events_key, '*', ...)
    if redis.call('XLEN', events_key) > cap then cap_events(events_key, stats_key, cap) end
  end
end

-- A state change of one job.
local function emit(events_key, stats_key, maxlen, event, id, ...)
  append(events_key, stats_key, maxlen, 'e', event, 'id', id, ...)
end

-- One entry for the same change of a batch of jobs (a dequeue, an ack): `*id` holds their ids and each
-- `*<field>` one value per job, space-separated; the reader expands it into one event per job.
local function emit_batch(events_key, stats_key, maxlen, event, ids, ...)
  if #ids > 0 then append(events_key, stats_key, maxlen, 'e', event, '*id', table.concat(ids, ' '), ...) end
end
