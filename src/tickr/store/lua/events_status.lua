#!lua flags=no-writes
--[[
  events_status: how far the history sink is behind on one stream.
  KEYS[1] tickr:{q}:events (or tickr:{schedules}:events)
  KEYS[2] tickr:{q}:stats (or tickr:{schedules}:stats)   field events_dropped
  ARGV[1] consumer group
  Returns: {length, oldest entry id not yet committed ('' = none), pending entries, dropped events,
            1 if the group exists else 0}
]]
--- @include "events"

local length = redis.call('XLEN', KEYS[1])
local dropped = tonumber(redis.call('HGET', KEYS[2], 'events_dropped') or '0')
if length == 0 then return {0, '', 0, dropped, 0} end
local group = nil
for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local info = {}
  for i = 1, #g, 2 do info[g[i]] = g[i + 1] end
  if info['name'] == ARGV[1] then group = info end
end
if group == nil then
  return {length, redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)[1][1], 0, dropped, 0}
end
local pending = tonumber(group['pending'])
local oldest = ''
if pending > 0 then
  oldest = redis.call('XPENDING', KEYS[1], ARGV[1])[2]
else
  local unread = redis.call('XRANGE', KEYS[1], '(' .. group['last-delivered-id'], '+', 'COUNT', 1)
  if unread[1] then oldest = unread[1][1] end
end
return {length, oldest, pending, dropped, 1}
