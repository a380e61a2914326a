--- mydb.handlers.resolver_sum: the merge resolver "sum" (mydb.resolvers)
-- for numeric counters: base + (ours - base) + (theirs - base), a missing
-- value counting as 0 (two branches that each added to a counter keep
-- both additions).
local errors = require "mydb.errors"

local function num(v, side)
  if v == nil then return 0 end
  if type(v) ~= "number" then
    errors.raise("invalid_argument", "resolver 'sum' needs numbers, %s is a %s", side, type(v))
  end
  return v
end

return {
  name = "sum",
  resolve = function(c)
    local b = num(c.base, "base")
    return b + (num(c.ours, "ours") - b) + (num(c.theirs, "theirs") - b)
  end,
}
