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
]]
--- @include "common"
--- @include "events"

local now = clock_ms(ARGV[2])
local retention = tonumber(ARGV[3])
local replies, acked, stale, done = {}, 0, 0, {}
local acked_ids, attempts, started, leases, worker = {}, {}, {}, {}, nil -- for the `succeeded` event
for i = 6, #ARGV, 3 do
  local id, token, result = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local job_key = ARGV[1] .. id
  -- The lease check of include/lease.lua (token matches, id in active), with ZREM's reply
  -- standing in for ZSCORE: a lease that is held is removed at once, one that is not is untouched.
  -- The same HMGET reads what the history event of the run needs.
  local held = redis.call('HMGET', job_key, 'token', 'attempt', 'started_at', 'worker')
  if held[1] == token and redis.call('ZREM', KEYS[1], id) == 1 then
    if result ~= '' then
      redis.call('HSET', job_key, 'status', 'succeeded', 'finished_at', now, 'result', result)
    else
      redis.call('HSET', job_key, 'status', 'succeeded', 'finished_at', now)
    end
    redis.call('HDEL', job_key, 'token')
    redis.call('PEXPIRE', job_key, retention)
    done[#done + 1] = now
    done[#done + 1] = id
    acked = acked + 1
    acked_ids[acked], attempts[acked], started[acked], leases[acked] = id, held[2] or '0', held[3] or '', token
    worker = worker or held[4]
    replies[#replies + 1] = 1
  else
    stale = stale + 1
    replies[#replies + 1] = 0
  end
end
-- One ZADD per 200 finished ids (unpack has a stack limit).
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
