--- mydb.handlers.packed: packed numeric arrays stored as binary refs.
--
-- define{} makes an array type and its ref handler: the numbers are stored
-- in ROOT/refs as one string.pack'ed byte string (little-endian, no
-- header), and the snapshot keeps {"__special__":TAG,"__digest__":DIGEST}.
-- mydb.handlers.f64array and mydb.handlers.i64array are two such types;
-- another one is a few lines:
--
--   local F32Array = require("mydb.handlers.packed").define {
--     tag = "F32Array", format = "f", size = 4,
--     check = function(x) if type(x) == "number" then return x + 0.0 end end,
--   }
--   require("mydb.handlers").register(F32Array)
--   local a = F32Array.new { 1.5, 2.5 }
--   print(#a, a[2], a)                --> 2  2.5  F32Array(2)[1.5, 2.5]
--   a[3] = 4.0                        -- set 1..#a, or append at #a + 1
--
-- Arrays hold their numbers in a Lua table; they index from 1, have a
-- length (#), compare with == element by element, and work with ipairs.
local errors = require "mydb.errors"

local packed = {}

-- Numbers per string.pack/unpack call: far below Lua's stack limits, large
-- enough that the per-call cost does not matter.
local CHUNK = 4096

--- Defines an array type. spec: tag (the handler tag), format (one
-- string.pack item, e.g. "d", "i8", "f"), size (its byte size), check(x)
-- (returns the number to store for x, or nil when x is not acceptable),
-- what (optional: how to name acceptable values in error messages).
-- Returns the module table: handler fields (tag, is_eligible_for,
-- serialize_to_bytes, deserialize_from_bytes), new(list), zeros(n), mt.
function packed.define(spec)
  local tag, item, size, check = spec.tag, spec.format, spec.size, spec.check
  local what = spec.what or "a number"
  assert(type(tag) == "string" and type(item) == "string" and math.type(size) == "integer"
    and type(check) == "function", "packed.define needs tag, format, size and check")
  assert(string.packsize("<" .. item) == size, "size does not match format")
  local full = "<" .. item:rep(CHUNK)

  local M = { tag = tag }
  local mt = { __name = "mydb." .. tag }
  local methods = {}
  M.mt = mt

  local function wrap(values, n) return setmetatable({ _v = values, _n = n }, mt) end

  local function coerce(x, where)
    local v = check(x)
    if v == nil then
      errors.raise("invalid_argument", "%s: %s must be %s, got %s", tag, where, what,
        type(x) == "number" and tostring(x) or type(x))
    end
    return v
  end

  --- An array of the numbers of list (a sequence), copied.
  function M.new(list)
    if list == nil then return wrap({}, 0) end
    if type(list) ~= "table" then
      errors.raise("invalid_argument", "%s.new needs a list of numbers, got %s", tag, type(list))
    end
    local n = #list
    local values = table.move(list, 1, n, 1, {})
    for i = 1, n do values[i] = coerce(values[i], ("element %d"):format(i)) end
    return wrap(values, n)
  end

  --- An array of n zeros.
  function M.zeros(n)
    if math.type(n) ~= "integer" or n < 0 then
      errors.raise("invalid_argument", "%s.zeros needs a non-negative integer", tag)
    end
    local zero = coerce(0, "zero")
    local values = {}
    for i = 1, n do values[i] = zero end
    return wrap(values, n)
  end

  function M.is_array(v) return getmetatable(v) == mt end

  --- A new Lua list with the numbers.
  function methods:to_list() return table.move(self._v, 1, self._n, 1, {}) end

  function mt.__index(self, k)
    if math.type(k) == "integer" then return rawget(self, "_v")[k] end
    return methods[k]
  end
  function mt.__newindex(self, k, x)
    local n = rawget(self, "_n")
    if math.type(k) ~= "integer" or k < 1 or k > n + 1 then
      errors.raise("invalid_argument", "%s index must be an integer from 1 to %d, got %s", tag, n + 1, tostring(k))
    end
    self._v[k] = coerce(x, ("element %d"):format(k))
    if k == n + 1 then rawset(self, "_n", k) end
  end
  function mt.__len(self) return self._n end
  function mt.__eq(a, b)
    if a._n ~= b._n then return false end
    local x, y = a._v, b._v
    for i = 1, a._n do
      if x[i] ~= y[i] then return false end
    end
    return true
  end
  function mt.__tostring(self)
    local parts = {}
    for i = 1, math.min(self._n, 10) do parts[i] = tostring(self._v[i]) end
    if self._n > 10 then parts[#parts + 1] = "..." end
    return ("%s(%d)[%s]"):format(tag, self._n, table.concat(parts, ", "))
  end

  -- handler

  function M.is_eligible_for(v) return getmetatable(v) == mt end

  function M.serialize_to_bytes(a)
    local v, n = a._v, a._n
    local parts = {}
    for i = 1, n, CHUNK do
      local j = math.min(i + CHUNK - 1, n)
      local f = j - i + 1 == CHUNK and full or "<" .. item:rep(j - i + 1)
      parts[#parts + 1] = string.pack(f, table.unpack(v, i, j))
    end
    return table.concat(parts)
  end

  function M.deserialize_from_bytes(bytes)
    local len = #bytes
    if len % size ~= 0 then
      error(("%d bytes are not a whole number of %d-byte items"):format(len, size), 0)
    end
    local n = len // size
    local values = {}
    local pos, o = 1, 0
    while o < n do
      local count = math.min(CHUNK, n - o)
      local f = count == CHUNK and full or "<" .. item:rep(count)
      local got = table.pack(string.unpack(f, bytes, pos))
      pos = got[count + 1]
      table.move(got, 1, count, o + 1, values)
      o = o + count
    end
    return wrap(values, n)
  end

  return M
end

return packed
