#!lua
--[[
  ack: mark a batch of leased jobs succeeded (only for the current lease holder).
  KEYS[1] tickr:{q}:active
  KEYS[2] tickr:{q}:done           finished ids, score = finish ms (trimmed)
  KEYS[3] tickr:{q}:events
  KEYS[4] tickr:{q}:stats
  ARGV[1] job key prefix tickr:{q}:job:
  ARGV[2] now ms (0 = Redis TIME)
  ARGV[3] retention ms of finished jobs
  ARGV[4] most ids kept in done
  ARGV[5] events stream max length
  ARGV[6..] id, token, result JSON ("" for none) triples
  Returns: one 1 (acked) or 0 (stale lease, refused) per job

  Cost per job: HMGET, HSET and PEXPIRE; the lease checks against `active` are one ZMSCORE and one ZREM
  for the whole batch. The lease token stays in the hash: with the id gone from `active` it fences
  nothing any more (include/lease.lua checks both), and deleting it would cost a call per job.
]]
--- @include "common"
--- @include "events"

local now = clock_ms(ARGV[2])
local retention = tonumber(ARGV[3])
local replies, acked, stale = {}, 0, 0
local acked_ids, attempts, started, leases, done, worker = {}, {}, {}, {}, {}, nil -- for the event and done

-- The lease check of include/lease.lua (token matches, id in active) for the whole batch: the tokens by
-- one HMGET per job (which also reads what the run's history event needs), `active` by one ZMSCORE.
local held, ids, job_keys = {}, {}, {}
for i = 6, #ARGV, 3 do
  local n = #ids + 1
  ids[n], job_keys[n] = ARGV[i], ARGV[1] .. ARGV[i]
  held[n] = redis.call('HMGET', job_keys[n], 'token', 'attempt', 'started_at', 'worker')
end
local scores = #ids > 0 and redis.call('ZMSCORE', KEYS[1], unpack(ids)) or {}
local seen = {} -- an id listed twice is acked once, as ZREM one by one would have it
for n, id in ipairs(ids) do
  local token, result = ARGV[3 * n + 4], ARGV[3 * n + 5]
  local h = held[n]
  if h[1] == token and scores[n] and not seen[id] then
    seen[id] = true
    local job_key = job_keys[n]
    if result ~= '' then
      redis.call('HSET', job_key, 'status', 'succeeded', 'finished_at', now, 'result', result)
    else
      redis.call('HSET', job_key, 'status', 'succeeded', 'finished_at', now)
    end
    redis.call('PEXPIRE', job_key, retention)
    acked = acked + 1
    done[2 * acked - 1], done[2 * acked] = now, id
    acked_ids[acked], attempts[acked], started[acked], leases[acked] = id, h[2] or '0', h[3] or '', token
    worker = worker or h[4]
    replies[n] = 1
  else
    stale = stale + 1
    replies[n] = 0
  end
end
-- One ZREM and one ZADD per 200 finished ids (unpack has a stack limit).
for i = 1, acked, 200 do
  redis.call('ZREM', KEYS[1], unpack(acked_ids, i, math.min(i + 199, acked)))
end
for i = 1, #done, 400 do
  redis.call('ZADD', KEYS[2], unpack(done, i, math.min(i + 399, #done)))
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - retention)
local keep = tonumber(ARGV[4])
if redis.call('ZCARD', KEYS[2]) > keep then
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(keep + 1))
end
local columns = {'*lease', table.concat(leases, ' '), '*attempt', table.concat(attempts, ' ')}
emit_batch(KEYS[3], KEYS[4], ARGV[5], 'succeeded', acked_ids, 'worker', worker or '', '*started',
  table.concat(started, ' '), unpack(columns))
if acked > 0 then redis.call('HINCRBY', KEYS[4], 'succeeded', acked) end
if stale > 0 then redis.call('HINCRBY', KEYS[4], 'stale_acks', stale) end
return replies
