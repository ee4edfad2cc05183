#!lua
--[[
  extend: heartbeat; push the lease deadlines of a worker's in-flight jobs.
  KEYS[1] tickr:{q}:active
  KEYS[2] tickr:{q}:stats
  ARGV[1] job key prefix tickr:{q}:job:
  ARGV[2] now ms (0 = Redis TIME)
  ARGV[3] lease ms
  ARGV[4..] id, token pairs
  Returns: ids whose lease this worker no longer holds (reaped, or taken by another worker)
]]
--- @include "common"
--- @include "lease"

local now = clock_ms(ARGV[2])
local deadline = now + tonumber(ARGV[3])
local lost = {}
for i = 4, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  if holds_lease(KEYS[1], ARGV[1] .. id, id, token) then
    redis.call('ZADD', KEYS[1], 'XX', deadline, id)
  else
    lost[#lost + 1] = id
  end
end
if #lost > 0 then redis.call('HINCRBY', KEYS[2], 'stale_extends', #lost) end
return lost
