#!lua
--[[
  reap: handle expired leases (their worker died or stalled). At-least-once jobs go back to
  ready, or to the DLQ once they have used up their attempts (poison jobs); at-most-once jobs
  become `lost`.
  KEYS[1] tickr:{q}:active
  KEYS[2] tickr:{q}:ready:critical
  KEYS[3] tickr:{q}:ready:high
  KEYS[4] tickr:{q}:ready:default
  KEYS[5] tickr:{q}:ready:low
  KEYS[6] tickr:{q}:dead
  KEYS[7] tickr:{q}:done
  KEYS[8] tickr:{q}:marker
  KEYS[9] tickr:{q}:events
  KEYS[10] tickr:{q}:stats
  ARGV[1] job key prefix tickr:{q}:job:
  ARGV[2] now ms (0 = Redis TIME)
  ARGV[3] most leases to reap
  ARGV[4] events stream max length
  Returns: {requeued, dead, lost, next lease deadline ms or -1}
]]
--- @include "common"
--- @include "events"
--- @include "requeue"

local now = clock_ms(ARGV[2])
local ready = {KEYS[2], KEYS[3], KEYS[4], KEYS[5]}
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
local requeued, dead, lost = 0, 0, 0
for _, id in ipairs(expired) do
  local job_key = ARGV[1] .. id
  redis.call('ZREM', KEYS[1], id)
  local job = redis.call('HMGET', job_key, 'attempt', 'max_retries', 'execution', 'worker', 'token')
  if job[1] then
    local attempt, max_retries = tonumber(job[1]), tonumber(job[2] or '0')
    if job[3] ~= 'at_most_once' and attempt > max_retries then
      redis.call('HDEL', job_key, 'token')
      redis.call('HSET', job_key, 'status', 'dead', 'finished_at', now,
        'error', cjson.encode({type = 'LeaseExpired', traceback = '',
          message = 'lease expired on attempt ' .. attempt .. ' (worker ' .. tostring(job[4]) .. ' lost); attempts used up'}))
      redis.call('ZADD', KEYS[6], now, id)
      emit(KEYS[9], KEYS[10], ARGV[4], 'dead', id, 'attempt', attempt, 'reaped', '1',
        'worker', tostring(job[4] or ''), 'lease', tostring(job[5] or ''))
      dead = dead + 1
    else
      local outcome = requeue_or_lose(job_key, id, ready, KEYS[7], now, false)
      emit(KEYS[9], KEYS[10], ARGV[4], outcome, id, 'attempt', attempt, 'reaped', '1',
        'worker', tostring(job[4] or ''), 'lease', tostring(job[5] or ''))
      if outcome == 'lost' then lost = lost + 1 else requeued = requeued + 1 end
    end
  end
end
if requeued > 0 then wake(KEYS[8], now) end
if #expired > 0 then
  redis.call('HINCRBY', KEYS[10], 'reaped', #expired)
  if dead > 0 then redis.call('HINCRBY', KEYS[10], 'dead', dead) end
  if lost > 0 then redis.call('HINCRBY', KEYS[10], 'lost', lost) end
end
local head = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local next_deadline = -1
if head[2] then next_deadline = tonumber(head[2]) end
return {requeued, dead, lost, next_deadline}
