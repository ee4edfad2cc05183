-- Leasing a job record read with HGETALL, without reading it again.

local LEASE_FIELDS = {attempt = true, status = true, started_at = true, worker = true, token = true, type = true,
  scheduled_for = true, created_at = true}

-- Where the fields a lease reads or writes sit in an HGETALL reply (one pass over the record).
local function record_positions(record)
  local pos = {}
  for i = 1, #record, 2 do
    local f = record[i]
    if LEASE_FIELDS[f] then pos[f] = i end
  end
  return pos
end

-- Returns the job's new attempt number and `record` as an HGETALL taken after
-- HSET attempt, status, started_at, worker, token would read: fields already there
-- keep their place, new ones are appended in that order. `pos` is record_positions(record).
local function leased_record(record, pos, now, worker, token)
  local attempt = pos.attempt and tonumber(record[pos.attempt + 1]) + 1 or 1
  local values = {attempt = tostring(attempt), status = 'active', started_at = tostring(now), worker = worker,
    token = token}
  for _, f in ipairs({'attempt', 'status', 'started_at', 'worker', 'token'}) do
    if pos[f] then
      record[pos[f] + 1] = values[f]
    else
      record[#record + 1] = f
      record[#record + 1] = values[f]
    end
  end
  return attempt, record
end

-- When the attempt leased from `record` became due: its scheduled time, else its creation ('' if neither).
local function record_due(record, pos)
  local at = pos.scheduled_for or pos.created_at
  return at and record[at + 1] or ''
end
