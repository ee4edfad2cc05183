#!lua
--[[
  release: a stopping worker hands its unfinished leases back at once, without waiting for
  the reaper. The interrupted attempt is not counted; at-most-once jobs become `lost`.
  KEYS[1] tickr:{q}:active
  KEYS[2] tickr:{q}:ready:critical
  KEYS[3] tickr:{q}:ready:high
  KEYS[4] tickr:{q}:ready:default
  KEYS[5] tickr:{q}:ready:low
  KEYS[6] tickr:{q}:done
  KEYS[7] tickr:{q}:marker
  KEYS[8] tickr:{q}:events
  KEYS[9] tickr:{q}:stats
  ARGV[1] job key prefix tickr:{q}:job:
  ARGV[2] now ms (0 = Redis TIME)
  ARGV[3] events stream max length
  ARGV[4..] id, token pairs
  Returns: {requeued, lost, stale}
]]
--- @include "common"
--- @include "events"
--- @include "lease"
--- @include "requeue"

local now = clock_ms(ARGV[2])
local ready = {KEYS[2], KEYS[3], KEYS[4], KEYS[5]}
local requeued, lost, stale = 0, 0, 0
for i = 4, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local job_key = ARGV[1] .. id
  if holds_lease(KEYS[1], job_key, id, token) then
    redis.call('ZREM', KEYS[1], id)
    local run = redis.call('HMGET', job_key, 'attempt', 'worker')
    local outcome = requeue_or_lose(job_key, id, ready, KEYS[6], now, true)
    emit(KEYS[8], KEYS[9], ARGV[3], outcome, id, 'released', '1', 'attempt', run[1] or '0', 'worker', run[2] or '',
      'lease', token)
    if outcome == 'lost' then lost = lost + 1 else requeued = requeued + 1 end
  else
    stale = stale + 1
  end
end
if requeued > 0 then wake(KEYS[7], now) end
if lost > 0 then redis.call('HINCRBY', KEYS[9], 'lost', lost) end
return {requeued, lost, stale}
