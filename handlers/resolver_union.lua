--- mydb.handlers.resolver_union: the merge resolver "union"
-- (mydb.resolvers) for sequences (arrays) and sets (mydb.handlers.set):
-- the members either side added are kept, the members either side removed
-- from base are gone. A sequence keeps ours' order, then theirs' new
-- members in theirs' order; members are compared by canonical encoding.
local errors = require "mydb.errors"
local serializer = require "mydb.serializer"
local set = require "mydb.handlers.set"

local canonical = serializer.canonical

local function members(v, side)
  if v == nil then return {} end
  if set.is_set(v) then return v:members() end
  if type(v) == "table" and getmetatable(v) == nil and (next(v) == nil or #v > 0) then return v end
  errors.raise("invalid_argument", "resolver 'union' needs sequences or sets, %s is a %s", side, type(v))
end

local function key_set(list)
  local s = {}
  for _, x in ipairs(list) do s[canonical(x)] = true end
  return s
end

return {
  name = "union",
  resolve = function(c)
    local b, o, t = members(c.base, "base"), members(c.ours, "ours"), members(c.theirs, "theirs")
    local in_b, in_o, in_t = key_set(b), key_set(o), key_set(t)
    local out, seen = {}, {}
    local function add(x)
      local k = canonical(x)
      if seen[k] then return end
      if in_b[k] and not (in_o[k] and in_t[k]) then return end -- removed by a side
      seen[k] = true
      out[#out + 1] = x
    end
    for _, x in ipairs(o) do add(x) end
    for _, x in ipairs(t) do add(x) end
    if set.is_set(c.ours) or set.is_set(c.theirs) then return set.new(out) end
    return out
  end,
}
