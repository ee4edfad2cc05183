#!lua
--[[
  promote: move due scheduled jobs (delays, retries) to their ready lists and wake a worker.
  KEYS[1] tickr:{q}:ready:critical
  KEYS[2] tickr:{q}:ready:high
  KEYS[3] tickr:{q}:ready:default
  KEYS[4] tickr:{q}:ready:low
  KEYS[5] tickr:{q}:scheduled
  KEYS[6] tickr:{q}:marker
  ARGV[1] job key prefix tickr:{q}:job:
  ARGV[2] now ms (0 = Redis TIME)
  ARGV[3] most jobs to move
  Returns: {moved, next due ms or -1}
]]
--- @include "common"
--- @include "promote_due"

local now = clock_ms(ARGV[2])
local ready = {KEYS[1], KEYS[2], KEYS[3], KEYS[4]}
local moved = promote_due(KEYS[5], ready, ARGV[1], now, tonumber(ARGV[3]))
if moved > 0 then wake(KEYS[6], now) end
return {moved, next_due(KEYS[5])}
