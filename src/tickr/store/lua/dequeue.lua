#!lua
--[[
  dequeue: promote due jobs, then lease up to N ready jobs, picking priorities by weight, only of the
  types this worker runs: a job of another type is parked for a worker that runs it (include/park.lua).
  KEYS[1] tickr:{q}:ready:critical
  KEYS[2] tickr:{q}:ready:high
  KEYS[3] tickr:{q}:ready:default
  KEYS[4] tickr:{q}:ready:low
  KEYS[5] tickr:{q}:scheduled
  KEYS[6] tickr:{q}:active         leases, score = lease deadline ms
  KEYS[7] tickr:{q}:marker
  KEYS[8] tickr:{q}:events
  KEYS[9] tickr:{q}:stats
  KEYS[10] tickr:{q}:paused        exists while the queue is paused
  KEYS[11] tickr:{q}:wtypes:<worker> set of the types this worker runs ('*': any), kept by its heartbeat
  KEYS[12] tickr:{q}:parked        hash: type -> first parked ms
  ARGV[1] job key prefix tickr:{q}:job:
  ARGV[2] most jobs to lease (N)
  ARGV[3] now ms (0 = Redis TIME)
  ARGV[4] lease ms
  ARGV[5] worker id
  ARGV[6..9] weights of critical, high, default, low
  ARGV[10] events stream max length
  ARGV[11] most scheduled jobs to promote
  ARGV[12] parked list prefix tickr:{q}:pending:
  ARGV[13] per-type marker prefix tickr:{q}:marker:
  Returns: {now, next due ms or -1, more ready (0/1), id1, {field, value, ...}, id2, {...}, ...};
           more = -1: this worker's types are not registered (register, then dequeue again)
]]
--- @include "common"
--- @include "events"
--- @include "promote_due"
--- @include "record"
--- @include "park"
--- @include "weights"

local now = clock_ms(ARGV[3])
local ready = {KEYS[1], KEYS[2], KEYS[3], KEYS[4]}
local prefix = ARGV[1]
promote_due(KEYS[5], ready, prefix, now, tonumber(ARGV[11]))

if redis.call('EXISTS', KEYS[10]) == 1 then
  return {now, next_due(KEYS[5]), 0}
end
if redis.call('EXISTS', KEYS[11]) == 0 then
  return {now, next_due(KEYS[5]), -1}
end

local order, total = weighted_order({tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])})
local cursor = tonumber(redis.call('HGET', KEYS[9], 'cursor') or '0')
-- Lease tokens come from stats.lease_seq: read once, written back once.
local seq = tonumber(redis.call('HGET', KEYS[9], 'lease_seq') or '0')
local reply = {now, 0, 0}
local n, taken = tonumber(ARGV[2]), 0
local deadline = now + tonumber(ARGV[4])
local worker = ARGV[5]
local exhausted, parks, leased_ids, attempts, dues, leases = false, 0, {}, {}, {}, {} -- the last four: the event
local parked_types = runnable_parked(KEYS[12], KEYS[11])
while taken < n and not exhausted do
  local id = #parked_types > 0 and pop_parked(KEYS[12], ARGV[12], parked_types) or nil
  if not id then
    parked_types = {}
    local want = order[(cursor % total) + 1]
    cursor = cursor + 1
    id = redis.call('LPOP', ready[want])
    if not id then
      for i = 1, 4 do
        id = redis.call('LPOP', ready[i])
        if id then break end
      end
    end
  end
  if not id then
    exhausted = true
  else
    local job_key = prefix .. id
    local record = redis.call('HGETALL', job_key)
    -- Dropped: an id whose hash is gone (expired, purged) or that is no longer queued (cancelled while parked).
    local pos = record_positions(record)
    local job_type = pos.type and record[pos.type + 1]
    if job_type and pos.status and record[pos.status + 1] == 'queued' then
      if redis.call('SISMEMBER', KEYS[11], job_type) == 0 and redis.call('SISMEMBER', KEYS[11], '*') == 0 then
        park(KEYS[12], ARGV[12], ARGV[13], job_type, id, now)
        emit(KEYS[8], KEYS[9], ARGV[10], 'parked', id, 'type', job_type)
        parks = parks + 1
        if parks >= 1000 then exhausted = true end -- bounded work per call; the next call goes on
      else
        seq = seq + 1
        local token = tostring(seq)
        local attempt, leased = leased_record(record, pos, now, worker, token)
        redis.call('HSET', job_key, 'attempt', attempt, 'status', 'active', 'started_at', now, 'worker', worker,
          'token', token)
        redis.call('ZADD', KEYS[6], deadline, id)
        reply[#reply + 1] = id
        reply[#reply + 1] = leased
        taken = taken + 1
        leased_ids[taken], attempts[taken], dues[taken], leases[taken] = id, attempt, record_due(record, pos), token
      end
    end
  end
end
if taken > 0 then
  emit_batch(KEYS[8], KEYS[9], ARGV[10], 'active', leased_ids, 'worker', worker, '*lease', table.concat(leases, ' '),
    '*attempt', table.concat(attempts, ' '), '*due', table.concat(dues, ' '))
  redis.call('HSET', KEYS[9], 'cursor', cursor % total, 'lease_seq', seq)
  redis.call('HINCRBY', KEYS[9], 'dequeued', taken)
else
  redis.call('HSET', KEYS[9], 'cursor', cursor % total)
end
local more = 0
if not exhausted or parks >= 1000 then
  for i = 1, 4 do
    if redis.call('LLEN', ready[i]) > 0 then more = 1; break end
  end
  if more == 0 and #runnable_parked(KEYS[12], KEYS[11]) > 0 then more = 1 end
end
if more == 1 then wake(KEYS[7], now) end
reply[2] = next_due(KEYS[5])
reply[3] = more
return reply
