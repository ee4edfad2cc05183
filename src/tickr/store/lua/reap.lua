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
--- @include "reclaim"

local now = clock_ms(ARGV[2])
local q = {active = KEYS[1], ready = {KEYS[2], KEYS[3], KEYS[4], KEYS[5]}, dead = KEYS[6], done = KEYS[7],
  marker = KEYS[8], events = KEYS[9], stats = KEYS[10], job_prefix = ARGV[1], maxlen = ARGV[4], now = now}
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
local requeued, dead, lost = reclaim(q, expired, 'lease expired')
local head = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local next_deadline = -1
if head[2] then next_deadline = tonumber(head[2]) end
return {requeued, dead, lost, next_deadline}
