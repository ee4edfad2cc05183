-- Jobs no worker of this call can run wait in a list per type, so they are never leased by a worker
-- that would burn them. Keys: tickr:{q}:parked (hash: type -> first parked ms) and the lists
-- tickr:{q}:pending:<type>, found through a prefix of the queue's hash tag (the documented exception,
-- like job hashes: the type is read from the job).

-- Park job `id` of `job_type` until a worker that runs the type dequeues, and wake one of those
-- (they block on tickr:{q}:marker:<type> as well as on the queue's marker).
local function park(parked_key, pending_prefix, marker_prefix, job_type, id, now)
  redis.call('RPUSH', pending_prefix .. job_type, id)
  redis.call('HSETNX', parked_key, job_type, now)
  redis.call('ZADD', marker_prefix .. job_type, now, 'm')
end

-- Pop the next parked id of a type this worker runs (nil when none), types in hash order.
-- A drained type leaves the parked hash.
local function pop_parked(parked_key, pending_prefix, runnable_types)
  for _, t in ipairs(runnable_types) do
    local id = redis.call('LPOP', pending_prefix .. t)
    if id then return id end
    redis.call('HDEL', parked_key, t)
  end
  return nil
end

-- The parked types this worker runs (usually none: one HLEN on the fast path).
local function runnable_parked(parked_key, worker_types_key)
  local out = {}
  if redis.call('HLEN', parked_key) == 0 then return out end
  for _, t in ipairs(redis.call('HKEYS', parked_key)) do
    if redis.call('SISMEMBER', worker_types_key, t) == 1 or redis.call('SISMEMBER', worker_types_key, '*') == 1 then
      out[#out + 1] = t
    end
  end
  return out
end
