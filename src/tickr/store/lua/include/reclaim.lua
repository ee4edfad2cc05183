-- Take leases back from a worker that is gone (its lease expired, or its heartbeat lapsed), shared by reap
-- and release_lapsed. Needs common, events and requeue. At-least-once jobs go to the front of their ready
-- list, or to the DLQ once their attempts are used up (poison jobs: an interrupted run counts as an attempt);
-- at-most-once jobs become `lost`. Each gets the same event (`reaped` = 1) and the queue's stats count them.
-- q: {active, ready = {4 lists}, dead, done, marker, events, stats, job_prefix, maxlen, now}; why: 'lease expired' or
-- 'heartbeat lapsed', for the dead letter's message. Returns requeued, dead, lost.
local function reclaim(q, ids, why)
  local requeued, dead, lost = 0, 0, 0
  for _, id in ipairs(ids) do
    local job_key = q.job_prefix .. id
    redis.call('ZREM', q.active, id)
    local job = redis.call('HMGET', job_key, 'attempt', 'max_retries', 'execution', 'worker', 'token')
    if job[1] then
      local attempt, max_retries = tonumber(job[1]), tonumber(job[2] or '0')
      local outcome
      if job[3] ~= 'at_most_once' and attempt > max_retries then
        redis.call('HDEL', job_key, 'token')
        redis.call('HSET', job_key, 'status', 'dead', 'finished_at', q.now,
          'error', cjson.encode({type = 'LeaseExpired', traceback = '',
            message = why .. ' on attempt ' .. attempt .. ' (worker ' .. tostring(job[4]) .. ' lost); attempts used up'}))
        redis.call('ZADD', q.dead, q.now, id)
        outcome = 'dead'
        dead = dead + 1
      else
        outcome = requeue_or_lose(job_key, id, q.ready, q.done, q.now, false)
        if outcome == 'lost' then lost = lost + 1 else requeued = requeued + 1 end
      end
      emit(q.events, q.stats, q.maxlen, outcome, id, 'attempt', attempt, 'reaped', '1',
        'worker', tostring(job[4] or ''), 'lease', tostring(job[5] or ''))
    end
  end
  if requeued > 0 then wake(q.marker, q.now) end
  if #ids > 0 then
    redis.call('HINCRBY', q.stats, 'reaped', #ids)
    if dead > 0 then redis.call('HINCRBY', q.stats, 'dead', dead) end
    if lost > 0 then redis.call('HINCRBY', q.stats, 'lost', lost) end
  end
  return requeued, dead, lost
end
