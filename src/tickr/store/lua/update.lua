#!lua
--[[
  update: change priority, due time or payload of a job that has not started.
  KEYS[1] tickr:{q}:job:<id>
  KEYS[2] tickr:{q}:ready:critical
  KEYS[3] tickr:{q}:ready:high
  KEYS[4] tickr:{q}:ready:default
  KEYS[5] tickr:{q}:ready:low
  KEYS[6] tickr:{q}:scheduled
  KEYS[7] tickr:{q}:marker
  KEYS[8] tickr:{q}:events
  KEYS[9] tickr:{q}:stats           (events_dropped)
  ARGV[1] job id
  ARGV[2] now ms (0 = Redis TIME)
  ARGV[3] new priority ("" = unchanged)
  ARGV[4] new due ms (0 = unchanged, -1 = now)
  ARGV[5] new payload JSON ("" = unchanged)
  ARGV[6] events stream max length
  Returns: {1, status}; {-1, ''} no such job; {-2, status} the job's state does not allow it
  Codes (JobChangeCode): 1 DONE, -1 NO_SUCH_JOB, -2 WRONG_STATE
]]
--- @include "common"
--- @include "events"

local now = clock_ms(ARGV[2])
local id = ARGV[1]
local job = redis.call('HMGET', KEYS[1], 'status', 'priority', 'scheduled_for')
local status, priority = job[1], job[2]
if not status then return {-1, ''} end
if status ~= 'queued' and status ~= 'scheduled' and status ~= 'retrying' then return {-2, status} end

-- A queued job whose priority and due time stay keeps its place in line.
if status == 'queued' and (ARGV[3] == '' or ARGV[3] == priority) and ARGV[4] == '0' then
  if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'payload', ARGV[5]) end
  emit(KEYS[8], KEYS[9], ARGV[6], 'updated', id)
  return {1, status}
end

-- Take the job out of wherever it waits, then put it back under the new settings.
if status == 'queued' then
  redis.call('LREM', KEYS[1 + priority_slot(priority)], 1, id)
else
  redis.call('ZREM', KEYS[6], id)
end
if ARGV[3] ~= '' then priority = ARGV[3] end
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'payload', ARGV[5]) end
local due = tonumber(job[3] or '0')
if tonumber(ARGV[4]) == -1 then due = now elseif tonumber(ARGV[4]) > 0 then due = tonumber(ARGV[4]) end
if status == 'queued' and tonumber(ARGV[4]) == 0 then due = now end

if due > now then
  if status == 'queued' then status = 'scheduled' end
  redis.call('ZADD', KEYS[6], due, id)
  wake(KEYS[7], due)
else
  status = 'queued'
  redis.call('RPUSH', KEYS[1 + priority_slot(priority)], id)
  wake(KEYS[7], now)
end
redis.call('HSET', KEYS[1], 'status', status, 'priority', priority, 'scheduled_for', due)
emit(KEYS[8], KEYS[9], ARGV[6], 'updated', id)
return {1, status}
