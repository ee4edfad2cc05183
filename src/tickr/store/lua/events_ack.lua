#!lua
--[[
  events_ack: the history sink committed a batch: acknowledge its entries, then drop what every consumer
  group has read and acknowledged (the stream keeps only what someone still needs).
  KEYS[1] tickr:{q}:events (or tickr:{schedules}:events)
  ARGV[1] consumer group
  ARGV[2..] entry ids
  Returns: {acknowledged, trimmed}
]]
--- @include "events"

local acked = 0
for i = 2, #ARGV, 500 do
  acked = acked + redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, i, math.min(i + 499, #ARGV)))
end
return {acked, trim_acknowledged(KEYS[1])}
