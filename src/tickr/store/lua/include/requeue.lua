-- Give a leased job back: at-least-once jobs go to the front of their ready list,
-- at-most-once jobs (which may have started) become `lost` and never run again.
-- Returns 'queued' or 'lost'.
local function requeue_or_lose(job_key, id, ready, done_key, now, refund_attempt)
  local job = redis.call('HMGET', job_key, 'execution', 'priority')
  redis.call('HDEL', job_key, 'token', 'worker')
  if job[1] == 'at_most_once' then
    redis.call('HSET', job_key, 'status', 'lost', 'finished_at', now,
      'error', cjson.encode({type = 'Lost', message = 'at-most-once job interrupted; not run again', traceback = ''}))
    redis.call('ZADD', done_key, now, id)
    return 'lost'
  end
  if refund_attempt then redis.call('HINCRBY', job_key, 'attempt', -1) end
  redis.call('HSET', job_key, 'status', 'queued')
  redis.call('LPUSH', ready[priority_slot(job[2])], id)
  return 'queued'
end
