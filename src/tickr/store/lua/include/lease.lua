-- Lease checks shared by ack, fail, extend and release.

-- True when `token` is the current lease of job `id`: fencing, so a worker that lost
-- its lease (paused, partitioned) cannot complete a job another worker now holds.
local function holds_lease(active_key, job_key, id, token)
  if redis.call('HGET', job_key, 'token') ~= token then return false end
  return redis.call('ZSCORE', active_key, id) ~= false
end
