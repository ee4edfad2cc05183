-- Shared helpers pulled into every script by the include loader (scripts.py).

-- The time in ms: the caller's when given (tests), else the Redis server clock,
-- so every host shares one clock and client skew cannot expire a lease early.
local function clock_ms(given)
  local n = tonumber(given)
  if n and n > 0 then return n end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Wake one blocked worker: the marker's single member, scored with the time there is work.
local function wake(marker_key, at_ms)
  redis.call('ZADD', marker_key, at_ms, 'm')
end

-- Index of a priority name in the ready-list KEYS (1 = critical .. 4 = low).
local PRIORITY_INDEX = { critical = 1, high = 2, default = 3, low = 4 }
local function priority_slot(p)
  return PRIORITY_INDEX[p] or 3
end
