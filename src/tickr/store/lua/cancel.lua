#!lua
--[[
  cancel: cancel a job that has not started (queued, scheduled or waiting to retry).
  KEYS[1] tickr:{q}:job:<id>
  KEYS[2] tickr:{q}:ready:critical
  KEYS[3] tickr:{q}:ready:high
  KEYS[4] tickr:{q}:ready:default
  KEYS[5] tickr:{q}:ready:low
  KEYS[6] tickr:{q}:scheduled
  KEYS[7] tickr:{q}:done
  KEYS[8] tickr:{q}:events
  KEYS[9] tickr:{q}:stats
  ARGV[1] job id
  ARGV[2] now ms (0 = Redis TIME)
  ARGV[3] retention ms of finished jobs
  ARGV[4] events stream max length
  Returns: {1, 'cancelled'}; {-1, ''} no such job; {-2, status} the job's state does not allow it
  Codes (JobChangeCode): 1 DONE, -1 NO_SUCH_JOB, -2 WRONG_STATE
]]
--- @include "common"
--- @include "events"

local now = clock_ms(ARGV[2])
local id = ARGV[1]
local job = redis.call('HMGET', KEYS[1], 'status', 'priority')
local status = job[1]
if not status then return {-1, ''} end
if status == 'queued' then
  redis.call('LREM', KEYS[1 + priority_slot(job[2])], 1, id)
elseif status == 'scheduled' or status == 'retrying' then
  redis.call('ZREM', KEYS[6], id)
else
  return {-2, status}
end
redis.call('HSET', KEYS[1], 'status', 'cancelled', 'finished_at', now)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[7], now, id)
redis.call('HINCRBY', KEYS[9], 'cancelled', 1)
emit(KEYS[8], KEYS[9], ARGV[4], 'cancelled', id)
return {1, 'cancelled'}
