#!lua
--[[
  fail: record a failed attempt; schedule a retry after a delay, or dead-letter the job.
  KEYS[1] tickr:{q}:active
  KEYS[2] tickr:{q}:scheduled
  KEYS[3] tickr:{q}:dead           dead-letter queue, score = time of death ms
  KEYS[4] tickr:{q}:marker
  KEYS[5] tickr:{q}:events
  KEYS[6] tickr:{q}:stats
  ARGV[1] job key prefix tickr:{q}:job:
  ARGV[2] now ms (0 = Redis TIME)
  ARGV[3] job id
  ARGV[4] lease token
  ARGV[5] error JSON {type, message, traceback}
  ARGV[6] retry delay ms
  ARGV[7] 1 = permanent (no retry), else 0
  ARGV[8] events stream max length
  Returns: {1, due ms} retrying; {2, 0} dead; {-1, 0} stale lease, refused
  Codes (FailCode): 1 RETRYING, 2 DEAD, -1 STALE
]]
--- @include "common"
--- @include "events"
--- @include "lease"

local now = clock_ms(ARGV[2])
local id = ARGV[3]
local job_key = ARGV[1] .. id
if not holds_lease(KEYS[1], job_key, id, ARGV[4]) then
  redis.call('HINCRBY', KEYS[6], 'stale_fails', 1)
  return {-1, 0}
end
redis.call('ZREM', KEYS[1], id)
redis.call('HDEL', job_key, 'token')
redis.call('HSET', job_key, 'error', ARGV[5])
redis.call('HINCRBY', KEYS[6], 'failed', 1)

local job = redis.call('HMGET', job_key, 'attempt', 'max_retries', 'execution', 'started_at', 'worker')
local attempt, max_retries = tonumber(job[1] or '0'), tonumber(job[2] or '0')
if ARGV[7] == '1' or job[3] == 'at_most_once' or attempt > max_retries then
  redis.call('HSET', job_key, 'status', 'dead', 'finished_at', now)
  redis.call('ZADD', KEYS[3], now, id)
  redis.call('HINCRBY', KEYS[6], 'dead', 1)
  emit(KEYS[5], KEYS[6], ARGV[8], 'dead', id, 'attempt', attempt, 'lease', ARGV[4], 'started', job[4] or '',
    'worker', job[5] or '', 'error', ARGV[5])
  return {2, 0}
end

local due = now + tonumber(ARGV[6])
redis.call('HSET', job_key, 'status', 'retrying', 'scheduled_for', due)
redis.call('ZADD', KEYS[2], due, id)
local head = redis.call('ZRANGE', KEYS[2], 0, 0)
if head[1] == id then wake(KEYS[4], due) end
redis.call('HINCRBY', KEYS[6], 'retried', 1)
emit(KEYS[5], KEYS[6], ARGV[8], 'retrying', id, 'attempt', attempt, 'lease', ARGV[4], 'due', due,
  'started', job[4] or '', 'worker', job[5] or '', 'error', ARGV[5])
return {1, due}
