#!lua
--[[
  release_lapsed: the leases of workers whose heartbeat lapsed go back, without waiting for the leases
  to expire. A worker beats into `beats` every few seconds; one whose last beat is older than the lapse
  is dead, and each job in `active` whose hash names it as its worker is handled exactly as reap handles
  an expired lease (include/reclaim.lua). Its lease token goes with it (fencing), so the worker's late
  ack, fail or extend is refused should it come back. The lapsed workers then leave `beats`.
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
  KEYS[11] tickr:{q}:beats  zset worker id -> server ms of its last heartbeat
  ARGV[1] job key prefix tickr:{q}:job:
  ARGV[2] now ms (0 = Redis TIME)
  ARGV[3] lapse ms: a worker whose last beat is older than this is dead
  ARGV[4] most leases to release
  ARGV[5] events stream max length
  Returns: {requeued, dead, lost, lapsed workers removed, next check ms or -1}: next check is when the
    oldest remaining beat lapses (now when leases were left for the next call), -1 when no worker beats
]]
--- @include "common"
--- @include "events"
--- @include "requeue"
--- @include "reclaim"

local now = clock_ms(ARGV[2])
local lapse, limit = tonumber(ARGV[3]), tonumber(ARGV[4])
local cutoff = now - lapse
local q = {active = KEYS[1], ready = {KEYS[2], KEYS[3], KEYS[4], KEYS[5]}, dead = KEYS[6], done = KEYS[7],
  marker = KEYS[8], events = KEYS[9], stats = KEYS[10], job_prefix = ARGV[1], maxlen = ARGV[5], now = now}
local lapsed = redis.call('ZRANGEBYSCORE', KEYS[11], '-inf', '(' .. cutoff)
local requeued, dead, lost, removed, more = 0, 0, 0, 0, false
if #lapsed > 0 then
  local gone = {}
  for _, worker in ipairs(lapsed) do gone[worker] = true end
  -- Only while some worker lapsed (rare) is every lease read: one HGET per active job.
  local ids = {}
  for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
    local worker = redis.call('HGET', ARGV[1] .. id, 'worker')
    if worker and gone[worker] then
      if #ids >= limit then
        more = true
        break
      end
      ids[#ids + 1] = id
    end
  end
  requeued, dead, lost = reclaim(q, ids, 'heartbeat lapsed')
  if not more then removed = redis.call('ZREMRANGEBYSCORE', KEYS[11], '-inf', '(' .. cutoff) end
end
local next_check = -1
if more then
  next_check = now
else
  local head = redis.call('ZRANGE', KEYS[11], 0, 0, 'WITHSCORES')
  if head[2] then next_check = tonumber(head[2]) + lapse + 1 end
end
return {requeued, dead, lost, removed, next_check}
