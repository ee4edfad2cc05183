#!lua
--[[
  enqueue: create jobs of one queue, ready now or scheduled for later, unless an idempotency key is known.
  One call takes a batch (a single enqueue is a batch of one): one round trip and one script per chunk.
  KEYS[1] tickr:{q}:ready:critical
  KEYS[2] tickr:{q}:ready:high
  KEYS[3] tickr:{q}:ready:default
  KEYS[4] tickr:{q}:ready:low
  KEYS[5] tickr:{q}:scheduled      delayed jobs, score = due ms
  KEYS[6] tickr:{q}:marker         wake-up marker
  KEYS[7] tickr:{q}:events         event stream
  KEYS[8] tickr:{q}:stats          counters
  ARGV[1] job key prefix tickr:{q}:job:   (job and idempotency keys are built from the queue's prefixes,
  ARGV[2] idempotency key prefix tickr:{q}:idem:   the documented exception, like dequeue's job keys)
  ARGV[3] now ms (0 = Redis TIME)
  ARGV[4] idempotency TTL ms
  ARGV[5] events stream max length (0 = no events)
  ARGV[6..] per job: id, due ms (0 = now), priority slot (1 critical .. 4 low), request (0 = no idempotency
    key; else the request's fingerprint, 1 = a key whose requests are never compared), idempotency key
    ('' = none), n (number of hash field/value items that follow), then the n items
  Returns: {now, then per job code, id, status}: now = the server time written as created_at; per job
    created (its id, 'queued' or 'scheduled'); existing (the
    id the idempotency key names, or its own id when a resent call finds its job); conflict (the key was
    made by a different request: nothing written for that job)
  Codes (EnqueueCode): 1 CREATED, 0 EXISTING, -1 CONFLICT
]]
--- @include "common"
--- @include "events"

local now = clock_ms(ARGV[3])
-- Two passes, so that an error reply (a key of the wrong type) comes before anything is written: first
-- every job's checks, then the writes. `claimed` holds the idempotency keys this batch creates.
local reply, plan, answer, claimed = {now}, {}, {}, {} -- plan/answer: ARGV and reply positions of new jobs
local i = 6
while i <= #ARGV do
  local id, request, idem = ARGV[i], ARGV[i + 3], ARGV[i + 4]
  local n = tonumber(ARGV[i + 5])
  local code, known = 1, id
  -- A call sent again after its reply was lost (the lane resends once) finds its own job: no second copy.
  if redis.call('EXISTS', ARGV[1] .. id) == 1 then code = 0 end
  if code == 1 and request ~= '0' then
    local existing = claimed[idem] or redis.call('GET', ARGV[2] .. idem)
    if existing then
      local cut = string.find(existing, ' ', 1, true)
      known = cut and string.sub(existing, 1, cut - 1) or existing
      local made_by = cut and string.sub(existing, cut + 1) or '1'
      code = (made_by == request or made_by == '1' or request == '1') and 0 or -1
    else
      claimed[idem] = id .. ' ' .. request
    end
  end
  local r = #reply
  reply[r + 1], reply[r + 2], reply[r + 3] = code, known, ''
  if code == 1 then plan[#plan + 1], answer[#plan + 1] = i, r + 3 end
  i = i + 6 + n
end
for idem, value in pairs(claimed) do redis.call('SET', ARGV[2] .. idem, value, 'PX', ARGV[4]) end
local ready_ids, queued, scheduled, earliest = {}, {}, {}, nil -- ready_ids: slot -> ids, made when needed
for k, at in ipairs(plan) do
  local id, due, slot = ARGV[at], tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2])
  local first, last = at + 6, at + 5 + tonumber(ARGV[at + 5])
  local job_key, status = ARGV[1] .. id, 'queued'
  if due > now then status = 'scheduled' end
  reply[answer[k]] = status
  -- One HSET writes the whole record: fixed fields first, then the caller's items.
  redis.call('HSET', job_key, 'created_at', now, 'status', status, 'scheduled_for', math.max(due, now),
    unpack(ARGV, first, last))
  if status == 'scheduled' then
    redis.call('ZADD', KEYS[5], due, id)
    scheduled[#scheduled + 1] = id
    if earliest == nil or due < earliest then earliest = due end
  else
    local ids = ready_ids[slot]
    if ids then ids[#ids + 1] = id else ready_ids[slot] = {id} end
    queued[#queued + 1] = id
  end
end
-- One RPUSH per priority for the batch's ready jobs (unpack has a stack limit: 500 ids a call).
for slot, ids in pairs(ready_ids) do
  for j = 1, #ids, 500 do redis.call('RPUSH', KEYS[slot], unpack(ids, j, math.min(j + 499, #ids))) end
end
if #queued > 0 then wake(KEYS[6], now) end
if earliest ~= nil then
  -- Wake a worker sleeping until a later due time when one of these is now the earliest.
  local head = redis.call('ZRANGE', KEYS[5], 0, 0, 'WITHSCORES')
  if head[2] and tonumber(head[2]) >= earliest then wake(KEYS[6], earliest) end
end
local created = #queued + #scheduled
if created > 0 then redis.call('HINCRBY', KEYS[8], 'enqueued', created) end
-- A single job's entry is a plain one, as every other script writes for one job.
local function emit_created(status, ids)
  if #ids == 1 then emit(KEYS[7], KEYS[8], ARGV[5], status, ids[1]) else emit_batch(KEYS[7], KEYS[8], ARGV[5], status, ids) end
end
emit_created('queued', queued)
emit_created('scheduled', scheduled)
return reply
