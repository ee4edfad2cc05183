#!lua
--[[
  unrunnable: dead-letter parked jobs whose type no live worker serving the queue has registered for
  the grace period (counted from the type's last registration, or from when its first job was parked).
  KEYS[1] tickr:{q}:parked         hash: type -> first parked ms
  KEYS[2] tickr:{q}:types          zset: type -> last time a worker serving the queue registered it
  KEYS[3] tickr:{q}:dead
  KEYS[4] tickr:{q}:events
  KEYS[5] tickr:{q}:stats
  ARGV[1] parked list prefix tickr:{q}:pending:
  ARGV[2] job key prefix tickr:{q}:job:
  ARGV[3] now ms (0 = Redis TIME)
  ARGV[4] grace ms
  ARGV[5] most jobs to dead-letter in this call
  ARGV[6] events stream max length
  ARGV[7] queue name (for the error message)
  Returns: {dead-lettered, next time a parked type may expire (ms) or -1}
]]
--- @include "common"
--- @include "events"

local now = clock_ms(ARGV[3])
local grace, budget = tonumber(ARGV[4]), tonumber(ARGV[5])
local dead, next_check = 0, -1
local parked = redis.call('HGETALL', KEYS[1])
for i = 1, #parked, 2 do
  local job_type, since = parked[i], tonumber(parked[i + 1])
  local seen = tonumber(redis.call('ZSCORE', KEYS[2], job_type) or '0')
  if seen > since then since = seen end
  if now - since < grace then
    if next_check < 0 or since + grace < next_check then next_check = since + grace end
  else
    local list = ARGV[1] .. job_type
    local message = "no live worker on queue '" .. ARGV[7] .. "' runs type '" .. job_type .. "'"
    local err = cjson.encode({type = 'UnknownType', message = message, traceback = ''})
    while budget > 0 do
      local id = redis.call('LPOP', list)
      if not id then break end
      local job_key = ARGV[2] .. id
      if redis.call('HGET', job_key, 'status') == 'queued' then
        redis.call('HSET', job_key, 'status', 'dead', 'finished_at', now, 'error', err)
        redis.call('ZADD', KEYS[3], now, id)
        emit(KEYS[4], KEYS[5], ARGV[6], 'dead', id, 'reason', 'unknown_type')
        dead, budget = dead + 1, budget - 1
      end
    end
    if redis.call('EXISTS', list) == 0 then
      redis.call('HDEL', KEYS[1], job_type)
    else
      next_check = now -- the budget ran out: go on at once
    end
  end
end
if dead > 0 then redis.call('HINCRBY', KEYS[5], 'dead', dead) end
return {dead, next_check}
