#!lua flags=no-writes
--[[
  queue_gauges: what Prometheus shows of one queue, read at scrape time.
  KEYS[1] tickr:{q}:ready:critical
  KEYS[2] tickr:{q}:ready:high
  KEYS[3] tickr:{q}:ready:default
  KEYS[4] tickr:{q}:ready:low
  KEYS[5] tickr:{q}:scheduled
  KEYS[6] tickr:{q}:active
  KEYS[7] tickr:{q}:dead
  ARGV[1] job key prefix tickr:{q}:job: (the heads' hashes, found by this script)
  Returns: {ready critical, high, default, low, scheduled, active, dead, oldest due ms of a ready head or -1}
]]

local reply, oldest = {}, -1
for i = 1, 4 do
  reply[i] = redis.call('LLEN', KEYS[i])
  if reply[i] > 0 then
    local head = redis.call('LINDEX', KEYS[i], 0)
    local due = tonumber(redis.call('HGET', ARGV[1] .. head, 'scheduled_for') or '')
    if due and (oldest < 0 or due < oldest) then oldest = due end
  end
end
reply[5] = redis.call('ZCARD', KEYS[5])
reply[6] = redis.call('ZCARD', KEYS[6])
reply[7] = redis.call('ZCARD', KEYS[7])
reply[8] = oldest
return reply
