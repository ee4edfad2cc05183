-- Smooth weighted round robin: a fixed sequence of priority slots (1 = critical .. 4 = low) in
-- proportion to the weights, walked by a cursor kept in stats, so low priority never starves.
local function weighted_order(weights)
  local total = 0
  for i = 1, 4 do total = total + weights[i] end
  local order, current = {}, {0, 0, 0, 0}
  for _ = 1, total do
    local best = 1
    for i = 1, 4 do
      current[i] = current[i] + weights[i]
      if current[i] > current[best] then best = i end
    end
    current[best] = current[best] - total
    order[#order + 1] = best
  end
  return order, total
end
