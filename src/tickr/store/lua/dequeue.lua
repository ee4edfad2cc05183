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
  KEYS[13] tickr:{q}:beats         zset: worker -> last heartbeat ms (refreshed here: a worker that can
                                   dequeue is alive, so release_lapsed never takes what it just leased)
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
  Returns: {now, next due ms or -1, more ready (0/1), id1, {field, value, ...}, token1, attempt1, id2, ...}:
    per job its hash as read before the lease (which set status, attempt, started_at = now, worker, token),
    its token and attempt. more = -1: this worker's types are not registered (register, dequeue again).
  Per leased job one HGETALL and one HSET, no table built; the rest is per call (include/ready.lua, one
  ZADD of all leases, one stream entry for the batch).
]]
--- @include "common"
--- @include "events"
--- @include "promote_due"
--- @include "park"
--- @include "ready"
--- @include "weights"

local now = clock_ms(ARGV[3])
local ready = {KEYS[1], KEYS[2], KEYS[3], KEYS[4]}
local prefix = ARGV[1]
promote_due(KEYS[5], ready, prefix, now, tonumber(ARGV[11]))

if redis.call('EXISTS', KEYS[10]) == 1 then return {now, next_due(KEYS[5]), 0} end
local runs = {}
for _, t in ipairs(redis.call('SMEMBERS', KEYS[11])) do runs[t] = true end
if next(runs) == nil then return {now, next_due(KEYS[5]), -1} end
local runs_any = runs['*'] == true
redis.call('ZADD', KEYS[13], 'XX', now, ARGV[5]) -- XX: only a worker that beats (a bare client never lapses)

local order, total = weighted_order({tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])})
-- The fairness cursor and the lease tokens' sequence: read once, written back once.
local state = redis.call('HMGET', KEYS[9], 'cursor', 'lease_seq')
local cursor, seq = tonumber(state[1] or '0'), tonumber(state[2] or '0')
local reply = {now, 0, 0}
local n, taken = tonumber(ARGV[2]), 0
local deadline = now + tonumber(ARGV[4])
local worker = ARGV[5]
local exhausted, parks = false, 0
local leased_ids, attempts, dues, leases, active = {}, {}, {}, {}, {} -- the event's columns, and the ZADD's pairs

local take = ready_taker(ready, order, total, KEYS[12], ARGV[12], runnable_parked(KEYS[12], KEYS[11]))
while taken < n and not exhausted do
  local ids
  ids, exhausted, cursor = take(n - taken, cursor)
  for _, id in ipairs(ids) do
    local job_key = prefix .. id
    local record = redis.call('HGETALL', job_key)
    -- What the lease needs, in one pass: every table or string made per job is garbage for the collector.
    local job_type, status, attempt, due_at, created_at
    for i = 1, #record, 2 do
      local f = record[i]
      if f == 'type' then job_type = record[i + 1]
      elseif f == 'status' then status = record[i + 1]
      elseif f == 'attempt' then attempt = record[i + 1]
      elseif f == 'scheduled_for' then due_at = record[i + 1]
      elseif f == 'created_at' then created_at = record[i + 1]
      end
    end
    -- Dropped: an id whose hash is gone (expired, purged) or that is no longer queued (cancelled while parked).
    if job_type and status == 'queued' then
      if not runs_any and not runs[job_type] then
        park(KEYS[12], ARGV[12], ARGV[13], job_type, id, now)
        emit(KEYS[8], KEYS[9], ARGV[10], 'parked', id, 'type', job_type)
        parks = parks + 1
      else
        seq = seq + 1
        local next_attempt = (tonumber(attempt) or 0) + 1
        redis.call('HSET', job_key, 'attempt', next_attempt, 'status', 'active', 'started_at', now, 'worker', worker,
          'token', seq)
        local r = #reply -- the record as read: the client lays the lease's fields over it
        reply[r + 1], reply[r + 2], reply[r + 3], reply[r + 4] = id, record, seq, next_attempt
        taken = taken + 1
        leased_ids[taken], attempts[taken], dues[taken], leases[taken] = id, next_attempt, due_at or created_at or '', seq
        active[2 * taken - 1], active[2 * taken] = deadline, id
      end
    end
  end
  if parks >= 1000 then break end -- bounded work per call; the next call goes on
end
-- One ZADD per 200 leases (unpack has a stack limit).
for i = 1, #active, 400 do
  redis.call('ZADD', KEYS[6], unpack(active, i, math.min(i + 399, #active)))
end
emit_batch(KEYS[8], KEYS[9], ARGV[10], 'active', leased_ids, 'worker', worker, '*lease', table.concat(leases, ' '),
  '*attempt', table.concat(attempts, ' '), '*due', table.concat(dues, ' '))
redis.call('HSET', KEYS[9], 'cursor', cursor % total, 'lease_seq', seq)
if taken > 0 then redis.call('HINCRBY', KEYS[9], 'dequeued', taken) end
local more = 0
if not exhausted or parks >= 1000 then
  for i = 1, 4 do if redis.call('LLEN', ready[i]) > 0 then more = 1; break end end
  if more == 0 and #runnable_parked(KEYS[12], KEYS[11]) > 0 then more = 1 end
end
if more == 1 then wake(KEYS[7], now) end
reply[2] = next_due(KEYS[5])
reply[3] = more
return reply
