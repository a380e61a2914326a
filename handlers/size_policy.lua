--- mydb.handlers.size_policy: a use_refs policy that sends big fields to refs.
--
--   local size_policy = require "mydb.handlers.size_policy"
--   require("mydb.policies").register(size_policy.new { threshold = 4096 })
--   db:save("t", "u", "doc", { title = "small", body = ("x"):rep(10000) })
--   -- the snapshot: {"body":{"__ref__":"<digest>"},"title":"small",...}
--
-- For every table stored (plain tables, and class instances that do not
-- declare use_refs), the fields with a string key whose canonical encoding
-- is larger than `threshold` bytes are stored in ROOT/refs: a big field
-- repeated across versions or tenants is then stored once, and snapshots
-- stay small. Load restores them transparently.
--
-- Sizes are those of the field's encoding without policies (a nested big
-- field counts in full even though it will go to refs itself) and with a
-- 64-character digest standing for each ref-handler value. Cost: each
-- nested table is measured once per table that contains it.
local core = require "mydb.core"
local errors = require "mydb.errors"
local serializer = require "mydb.serializer"

local size_policy = {}

-- Most fields are far below the threshold: an upper bound of their size,
-- computed in Lua, avoids measuring them exactly. A string of n bytes
-- encodes to at most 6n + 2 bytes (\u00XX escapes) or 16 + 4 * ceil(n / 3)
-- (a {"__bytes__":...} tag), so to at most 6n + 16; a number to at most 24
-- ("-2.2250738585072014e-308", {"__float__":"-inf"}); a plain table to its
-- keys and values plus 8 bytes each ([k,v], in a __map__) plus 16. Tables
-- with a metatable, handled tables, cycles and deep nesting get no bound.
local function bound(x, limit, depth)
  local t = type(x)
  if t == "string" then return 6 * #x + 16 end
  if t == "number" then return 24 end
  if t == "boolean" then return 5 end
  if t ~= "table" or depth > 16 or getmetatable(x) ~= nil or serializer.handler_for(x) then return nil end
  local total = 16
  for k, v in next, x do
    local kb = bound(k, limit, depth + 1)
    if not kb or type(k) == "table" then return nil end
    local vb = bound(v, limit, depth + 1)
    if not vb then return nil end
    total = total + kb + vb + 8
    if total > limit then return nil end
  end
  return total
end

-- True when x's encoding is larger than threshold.
local function larger(x, threshold)
  local t = type(x)
  if t == "string" then
    -- a JSON string is at least its bytes plus two quotes
    if #x + 2 > threshold then return true end
    if 6 * #x + 16 <= threshold then return false end
    return #core.json_string(x) > threshold
  elseif t == "number" or t == "boolean" then
    return threshold < 24 and #core.encode(x) > threshold
  elseif t == "table" or t == "userdata" then
    local b = t == "table" and bound(x, threshold, 0)
    if b and b <= threshold then return false end
    return serializer.encoded_size(x) > threshold
  end
  return false -- the encoder refuses what it cannot store, with its path
end

--- A policy: use_refs(v) names v's string-keyed fields whose encoding is
-- larger than opts.threshold bytes (a non-negative integer).
function size_policy.new(opts)
  if type(opts) ~= "table" then
    errors.raise("invalid_argument", "size_policy.new needs {threshold = BYTES}, got %s", type(opts))
  end
  local threshold = opts.threshold
  if math.type(threshold) ~= "integer" or threshold < 0 then
    errors.raise("invalid_argument", "threshold must be a non-negative integer (bytes), got %s", tostring(threshold))
  end
  local policy = { name = ("size_policy(%d)"):format(threshold), threshold = threshold }
  function policy.use_refs(v)
    if type(v) ~= "table" then return nil end
    local names
    for k, x in next, v do
      if type(k) == "string" and larger(x, threshold) then
        names = names or {}
        names[#names + 1] = k
      end
    end
    return names
  end
  return policy
end

return size_policy
