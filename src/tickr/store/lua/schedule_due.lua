#!lua
--[[
  schedule_due: the current time and the earliest entries of the due zset, in one round trip
  (read-only; a script so the clock is the Redis server's, or the test's, and it runs on a cluster).
  KEYS[1] tickr:{schedules}:due             active schedules, score = next fire ms
  ARGV[1] now ms (0 = Redis TIME)
  ARGV[2] most entries returned (0 = only the time)
  Returns: {now ms, id, next fire ms, id, next fire ms, ...}, earliest first
]]
--- @include "common"

local now = clock_ms(ARGV[1])
local out = {now}
local limit = tonumber(ARGV[2])
if limit > 0 then
  local rows = redis.call('ZRANGE', KEYS[1], 0, limit - 1, 'WITHSCORES')
  for i = 1, #rows do out[#out + 1] = rows[i] end
end
return out
