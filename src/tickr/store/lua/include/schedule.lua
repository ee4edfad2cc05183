-- Helpers shared by the schedule_* scripts.

-- Keep the due zset in step with a schedule hash: listed (scored by next_run_at) only while
-- the schedule is active, not deleted and has a next fire time.
local function sync_due(schedule_key, due_key, id)
  local s = redis.call('HMGET', schedule_key, 'is_active', 'deleted', 'next_run_at')
  if s[1] == '1' and s[2] ~= '1' and s[3] and s[3] ~= '' then
    redis.call('ZADD', due_key, tonumber(s[3]), id)
  else
    redis.call('ZREM', due_key, id)
  end
end

-- Wake schedulers blocked in BZPOPMIN: one token per change, the newest `keep` kept.
local function notify(notify_key, now, token, keep)
  redis.call('ZADD', notify_key, now, token)
  redis.call('ZREMRANGEBYRANK', notify_key, 0, -(tonumber(keep) + 1))
end
