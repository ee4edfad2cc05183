#!lua
--[[
  enqueue: create a job, ready now or scheduled for later, unless its idempotency key is known.
  KEYS[1] tickr:{q}:job:<id>       job hash
  KEYS[2] tickr:{q}:ready:<prio>   ready list of the job's priority
  KEYS[3] tickr:{q}:scheduled      delayed jobs, score = due ms
  KEYS[4] tickr:{q}:marker         wake-up marker
  KEYS[5] tickr:{q}:events         event stream
  KEYS[6] tickr:{q}:stats          counters
  KEYS[7] tickr:{q}:idem:<key>     idempotency key -> "<job id> <fingerprint>" (any queue key when ARGV[5] is 0)
  ARGV[1] job id
  ARGV[2] due time ms (0 = now)
  ARGV[3] now ms (0 = Redis TIME)
  ARGV[4] idempotency TTL ms
  ARGV[5] 0 = no idempotency key; else the request's fingerprint (1 = a key whose requests are never compared)
  ARGV[6] events stream max length (0 = no events)
  ARGV[7..] job hash field, value pairs
  Returns: {1, id, status} created; {0, existing id, ""} idempotency key known, same request (or not compared);
    {-1, existing id, ""} idempotency key known, made by a different request: nothing written
  Codes (EnqueueCode): 1 CREATED, 0 EXISTING, -1 CONFLICT
]]
--- @include "common"
--- @include "events"

local now = clock_ms(ARGV[3])
local id = ARGV[1]
-- A call sent again after its reply was lost (the lane resends once) finds its own job: no second copy.
if redis.call('EXISTS', KEYS[1]) == 1 then return {0, id, ''} end

local request = ARGV[5]
if request ~= '0' then
  local existing = redis.call('GET', KEYS[7])
  if existing then
    -- "<id> <fingerprint>"; a bare id was written before fingerprints existed and is never compared
    local cut = string.find(existing, ' ', 1, true)
    if not cut then return {0, existing, ''} end
    local known = string.sub(existing, cut + 1)
    local code = (known == request or known == '1' or request == '1') and 0 or -1
    return {code, string.sub(existing, 1, cut - 1), ''}
  end
  redis.call('SET', KEYS[7], id .. ' ' .. request, 'PX', ARGV[4])
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
emit(KEYS[5], KEYS[6], ARGV[6], status, id)
return {1, id, status}
