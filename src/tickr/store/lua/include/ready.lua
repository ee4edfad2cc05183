-- Taking ready ids for a dequeue: `LPOP list count`, one call per priority, not one per job.
-- Needs include/park.lua (pop_parked) and include/weights.lua (the order it walks).

-- A function `take(want, cursor)` returning up to `want` ids, whether every list ran dry, and the cursor
-- moved on. Parked ids of types this worker runs come first (rare); the rest is `want` picks of the
-- weighted order shared between the priorities, a list that falls short made up from the others, most
-- urgent first. Fewer than `want` ids only when every list is empty.
local function ready_taker(ready, order, total, parked_key, pending_prefix, parked_types)
  local function pop_into(ids, list, count)
    local got = redis.call('LPOP', list, count)
    if not got then return 0 end
    for i = 1, #got do ids[#ids + 1] = got[i] end
    return #got
  end
  return function(want, cursor)
    local ids = {}
    while #ids < want and #parked_types > 0 do
      local id = pop_parked(parked_key, pending_prefix, parked_types)
      if not id then parked_types = {} else ids[#ids + 1] = id end
    end
    local picks = {0, 0, 0, 0}
    for _ = 1, want - #ids do
      local slot = order[(cursor % total) + 1]
      picks[slot] = picks[slot] + 1
      cursor = cursor + 1
    end
    local short = 0
    for slot = 1, 4 do
      if picks[slot] > 0 then short = short + picks[slot] - pop_into(ids, ready[slot], picks[slot]) end
    end
    for slot = 1, 4 do
      if short == 0 then break end
      short = short - pop_into(ids, ready[slot], short)
    end
    return ids, short > 0, cursor
  end
end
