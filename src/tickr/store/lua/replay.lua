#!lua
--[[
  replay: bring a dead, lost or cancelled job back to its ready list with fresh attempts.
  KEYS[1] tickr:{q}:job:<id>
  KEYS[2] tickr:{q}:ready:critical
  KEYS[3] tickr:{q}:ready:high
  KEYS[4] tickr:{q}:ready:default
  KEYS[5] tickr:{q}:ready:low
  KEYS[6] tickr:{q}:dead
  KEYS[7] tickr:{q}:done
  KEYS[8] tickr:{q}:marker
  KEYS[9] tickr:{q}:events
  KEYS[10] tickr:{q}:stats
  ARGV[1] job id
  ARGV[2] now ms (0 = Redis TIME)
  ARGV[3] events stream max length
  Returns: {1, 'queued'}; {-1, ''} no such job; {-2, status} the job's state does not allow it
  Codes (JobChangeCode): 1 DONE, -1 NO_SUCH_JOB, -2 WRONG_STATE
]]
--- @include "common"
--- @include "events"

local now = clock_ms(ARGV[2])
local id = ARGV[1]
local job = redis.call('HMGET', KEYS[1], 'status', 'priority')
local status = job[1]
if not status then return {-1, ''} end
if status ~= 'dead' and status ~= 'lost' and status ~= 'cancelled' then return {-2, status} end
redis.call('ZREM', KEYS[6], id)
redis.call('ZREM', KEYS[7], id)
redis.call('PERSIST', KEYS[1])
redis.call('HDEL', KEYS[1], 'finished_at', 'token', 'worker')
redis.call('HSET', KEYS[1], 'status', 'queued', 'attempt', 0, 'scheduled_for', now)
redis.call('RPUSH', KEYS[1 + priority_slot(job[2])], id)
wake(KEYS[8], now)
redis.call('HINCRBY', KEYS[10], 'replayed', 1)
emit(KEYS[9], KEYS[10], ARGV[3], 'queued', id, 'replayed', '1')
return {1, 'queued'}
