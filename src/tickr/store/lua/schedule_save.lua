#!lua
--[[
  schedule_save: create, update or ensure a schedule; keeps the due zset and the id registry in step.
  KEYS[1] tickr:{schedules}:schedule:<id>   schedule hash
  KEYS[2] tickr:{schedules}:due             active schedules, score = next fire ms
  KEYS[3] tickr:{schedules}:all             every schedule id, score = creation ms
  KEYS[4] tickr:{schedules}:notify          wake-up tokens for blocked schedulers
  KEYS[5] tickr:{schedules}:events          definition changes, for the history's audit table
  KEYS[6] tickr:{schedules}:stats           (events_dropped)
  ARGV[1] schedule id
  ARGV[2] now ms (0 = Redis TIME)
  ARGV[3] mode: "create" (refused if it exists), "update" (refused if missing),
          "ensure" (create if missing, else change nothing)
  ARGV[4] expected version for "update" (the one read before the change; 0 = any)
  ARGV[5] next fire ms (-1 = keep the stored one)
  ARGV[6] most wake-up tokens kept in KEYS[4]
  ARGV[7] events stream max length (0 = no events)
  ARGV[8..] hash field, value pairs to set
  Returns: {1, version} saved; {0, version} "ensure" found it already; {-1, version} it exists
           ("create"); {-2, 0} no such schedule ("update"); {-3, version} version conflict ("update")
  Codes (ScheduleSaveCode): 1 SAVED, 0 ALREADY, -1 EXISTS, -2 NO_SUCH_SCHEDULE, -3 VERSION_CONFLICT
]]
--- @include "common"
--- @include "events"
--- @include "schedule"

local now = clock_ms(ARGV[2])
local id, mode = ARGV[1], ARGV[3]
local version = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
local exists = version > 0

if exists and mode == 'create' then return {-1, version} end
if exists and mode == 'ensure' then return {0, version} end
if mode == 'update' then
  if not exists then return {-2, 0} end
  local expected = tonumber(ARGV[4])
  if expected > 0 and expected ~= version then return {-3, version} end
end

if not exists then
  redis.call('HSET', KEYS[1], 'created_at', now, 'fired', 0, 'skipped_overlap', 0, 'misfired', 0)
  redis.call('ZADD', KEYS[3], now, id)
end
local fields = {}
for i = 8, #ARGV do fields[#fields + 1] = ARGV[i] end
version = version + 1
redis.call('HSET', KEYS[1], 'updated_at', now, 'version', version, unpack(fields))
if tonumber(ARGV[5]) >= 0 then redis.call('HSET', KEYS[1], 'next_run_at', ARGV[5]) end

sync_due(KEYS[1], KEYS[2], id)
notify(KEYS[4], now, id .. ':' .. version, ARGV[6])
if tonumber(ARGV[7]) > 0 then
  local definition = {}
  local record = redis.call('HGETALL', KEYS[1])
  for i = 1, #record, 2 do definition[record[i]] = record[i + 1] end
  emit(KEYS[5], KEYS[6], ARGV[7], 'saved', id, 'version', version, 'definition', cjson.encode(definition))
end
return {1, version}
