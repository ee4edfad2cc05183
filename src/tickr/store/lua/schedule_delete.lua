#!lua
--[[
  schedule_delete: soft-delete a schedule: it stops firing, deleted_at is set, its history stays.
  Saving it with is_active 1 and deleted 0 (schedule_save "update") brings it back.
  KEYS[1] tickr:{schedules}:schedule:<id>   schedule hash
  KEYS[2] tickr:{schedules}:due             active schedules, score = next fire ms
  KEYS[3] tickr:{schedules}:notify          wake-up tokens for blocked schedulers
  KEYS[4] tickr:{schedules}:events          definition changes, for the history's audit table
  KEYS[5] tickr:{schedules}:stats           (events_dropped)
  ARGV[1] schedule id
  ARGV[2] now ms (0 = Redis TIME)
  ARGV[3] most wake-up tokens kept in KEYS[3]
  ARGV[4] events stream max length (0 = no events)
  Returns: {1, version} deleted; {0, version} it was deleted already; {-1, 0} no such schedule
  Codes (ScheduleDeleteCode): 1 DELETED, 0 ALREADY_DELETED, -1 NO_SUCH_SCHEDULE
]]
--- @include "common"
--- @include "events"
--- @include "schedule"

local now = clock_ms(ARGV[2])
local id = ARGV[1]
local s = redis.call('HMGET', KEYS[1], 'version', 'deleted')
if not s[1] then return {-1, 0} end
local version = tonumber(s[1])
if s[2] == '1' then return {0, version} end

version = version + 1
redis.call('HSET', KEYS[1], 'deleted', 1, 'deleted_at', now, 'is_active', 0, 'updated_at', now, 'version', version)
redis.call('ZREM', KEYS[2], id)
notify(KEYS[3], now, id .. ':' .. version, ARGV[3])
emit(KEYS[4], KEYS[5], ARGV[4], 'deleted', id, 'version', version)
return {1, version}
