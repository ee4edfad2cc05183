-- Move due jobs from the scheduled zset to their ready lists.
-- ready: table of the four ready-list keys, critical first.
local function promote_due(scheduled_key, ready, job_prefix, now, limit)
  local due = redis.call('ZRANGEBYSCORE', scheduled_key, '-inf', now, 'LIMIT', 0, limit)
  for _, id in ipairs(due) do
    local job_key = job_prefix .. id
    local p = redis.call('HGET', job_key, 'priority')
    redis.call('ZREM', scheduled_key, id)
    if p then
      redis.call('HSET', job_key, 'status', 'queued')
      redis.call('RPUSH', ready[priority_slot(p)], id)
    end
  end
  return #due
end

-- Earliest due time in the scheduled zset, or -1 when it is empty.
local function next_due(scheduled_key)
  local head = redis.call('ZRANGE', scheduled_key, 0, 0, 'WITHSCORES')
  if head[2] then return tonumber(head[2]) end
  return -1
end
