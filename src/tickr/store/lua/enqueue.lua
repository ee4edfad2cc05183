#!lua
--[[
  enqueue: create a job, ready now or scheduled for later, unless its idempotency key is known.
  KEYS[1] tickr:{q}:job:<id>       job hash
  KEYS[2] tickr:{q}:ready:<prio>   ready list of the job's priority
  KEYS[3] tickr:{q}:scheduled      delayed jobs, score = due ms
  KEYS[4] tickr:{q}:marker         wake-up marker
  KEYS[5] tickr:{q}:events         event stream
  KEYS[6] tickr:{q}:stats          counters
  KEYS[7] tickr:{q}:idem:<key>     idempotency key (any key of the queue when ARGV[5] is 0)
  ARGV[1] job id
  ARGV[2] due time ms (0 = now)
  ARGV[3] now ms (0 = Redis TIME)
  ARGV[4] idempotency TTL ms
  ARGV[5] 1 when KEYS[7] is a real idempotency key, else 0
  ARGV[6] events stream max length (0 = no events)
  ARGV[7..] job hash field, value pairs
  Returns: {1, id, status} created; {0, existing id, ""} idempotency key already known
  Codes (EnqueueCode): 1 CREATED, 0 EXISTING
]]
--- @include "common"

local now = clock_ms(ARGV[3])
local id = ARGV[1]

if ARGV[5] == '1' then
  local existing = redis.call('GET', KEYS[7])
  if existing then return {0, existing, ''} end
  redis.call('SET', KEYS[7], id, 'PX', ARGV[4])
end

local due = tonumber(ARGV[2])
local status
-- One HSET writes the whole record: fixed fields first, then the caller's pairs (ARGV[7..]).
if due > now then
  status = 'scheduled'
  redis.call('HSET', KEYS[1], 'created_at', now, 'status', status, 'scheduled_for', due, unpack(ARGV, 7))
  redis.call('ZADD', KEYS[3], due, id)
  -- Only a new earliest due time changes when workers must wake.
  local head = redis.call('ZRANGE', KEYS[3], 0, 0)
  if head[1] == id then wake(KEYS[4], due) end
else
  status = 'queued'
  redis.call('HSET', KEYS[1], 'created_at', now, 'status', status, 'scheduled_for', now, unpack(ARGV, 7))
  redis.call('RPUSH', KEYS[2], id)
  wake(KEYS[4], now)
end
redis.call('HINCRBY', KEYS[6], 'enqueued', 1)
emit(KEYS[5], ARGV[6], status, id)
return {1, id, status}
