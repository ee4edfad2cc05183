#!lua
--[[
  schedule_fire: after the caller enqueued a due occurrence's jobs, advance the schedule by
  compare-and-set on next_run_at, so of racing schedulers exactly one records the occurrence.
  KEYS[1] tickr:{schedules}:schedule:<id>   schedule hash
  KEYS[2] tickr:{schedules}:due             active schedules, score = next fire ms
  KEYS[3] tickr:{schedules}:fired:<id>      run history, member "<queue>/<job id>", score = fire ms
  ARGV[1] schedule id
  ARGV[2] now ms (0 = Redis TIME)
  ARGV[3] expected next_run_at (the one the caller planned from)
  ARGV[4] new next_run_at
  ARGV[5] most entries kept in KEYS[3]
  ARGV[6] occurrences skipped because the previous run had not finished (adds to skipped_overlap)
  ARGV[7] missed occurrences not run (adds to misfired)
  ARGV[8..] fire ms, queue, job id triples of the enqueued jobs, oldest first
  Returns: {1, new next_run_at} advanced; {0, stored next_run_at or -1} refused: the schedule
           moved on, was changed, paused or deleted (nothing recorded)
  Codes (ScheduleFireCode): 1 ADVANCED, 0 REFUSED
]]
--- @include "common"

local now = clock_ms(ARGV[2])
local id = ARGV[1]
local s = redis.call('HMGET', KEYS[1], 'next_run_at', 'is_active', 'deleted')
if not s[1] then return {0, -1} end
if s[1] ~= ARGV[3] or s[2] ~= '1' or s[3] == '1' then return {0, tonumber(s[1])} end

local runs = 0
for i = 8, #ARGV, 3 do
  local fire, queue, job_id = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  redis.call('ZADD', KEYS[3], fire, queue .. '/' .. job_id)
  redis.call('HSET', KEYS[1], 'last_run_at', fire, 'last_job_id', job_id, 'last_job_queue', queue)
  runs = runs + 1
end
local keep = tonumber(ARGV[5])
if runs > 0 and redis.call('ZCARD', KEYS[3]) > keep then
  redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -(keep + 1))
end

redis.call('HSET', KEYS[1], 'next_run_at', ARGV[4], 'last_fired_at', now)
if runs > 0 then redis.call('HINCRBY', KEYS[1], 'fired', runs) end
if tonumber(ARGV[6]) > 0 then redis.call('HINCRBY', KEYS[1], 'skipped_overlap', ARGV[6]) end
if tonumber(ARGV[7]) > 0 then redis.call('HINCRBY', KEYS[1], 'misfired', ARGV[7]) end
redis.call('ZADD', KEYS[2], tonumber(ARGV[4]), id)
return {1, tonumber(ARGV[4])}
