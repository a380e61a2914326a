--- mydb.indexes: secondary index keys and index trees.
--
-- An index of a collection is a prolly tree of its own whose keys are
-- "<index key>\0<record key>" (record keys have no NUL, so the last NUL
-- splits them) and whose values are the record keys. Index keys are strings
-- or numbers, encoded so that byte order is their natural order:
--   string s -> "s" .. s
--   number x -> "n" .. 16 hex digits of the IEEE-754 bits, sign-adjusted
local core = require "mydb.core"
local errors = require "mydb.errors"
local query = require "mydb.query"

local raise = errors.raise

local indexes = {}

-- The hidden index a TTL field keeps: a name no user index can take (and
-- that needs no tag in the stored "indexes" object).
indexes.TTL = "#ttl"

function indexes.check_name(name)
  if type(name) ~= "string" or #name == 0 or #name > 128 or not name:match("^[%w_%.%-]+$")
      or name:sub(1, 2) == "__" then
    raise("invalid_argument", "an index name is 1 to 128 letters, digits, '_', '.' or '-', not starting with '__'")
  end
end

--- The byte-ordered form of a number.
function indexes.sortable_number(x)
  if x ~= x then raise("invalid_argument", "NaN cannot be an index key") end
  local b = { string.pack(">d", x):byte(1, 8) }
  if b[1] >= 128 then
    for i = 1, 8 do b[i] = 255 - b[i] end
  else
    b[1] = b[1] + 128
  end
  return ("%02x%02x%02x%02x%02x%02x%02x%02x"):format(table.unpack(b))
end

--- The index key a stored form stands for (a string or a number).
function indexes.decode_key(ik)
  if ik:sub(1, 1) == "s" then return ik:sub(2) end
  local b = {}
  for i = 1, 8 do b[i] = tonumber(ik:sub(2 * i, 2 * i + 1), 16) end
  if b[1] >= 128 then
    b[1] = b[1] - 128
  else
    for i = 1, 8 do b[i] = 255 - b[i] end
  end
  local x = string.unpack(">d", string.char(table.unpack(b)))
  return math.tointeger(x) or x
end

--- The stored form of an index key (a string or a number), or nil.
function indexes.encode_key(v, name)
  local t = type(v)
  if v == nil then return nil end
  if t == "string" then
    if v:find("\0", 1, true) then raise("invalid_argument", "index '%s': keys cannot contain NUL", name) end
    return "s" .. v
  end
  if t == "number" then return "n" .. indexes.sortable_number(v) end
  raise("invalid_argument", "index '%s': the key function must return a string, a number or nil, got %s",
    name, t)
end

--- Splits a stored index entry key into (encoded index key, record key).
function indexes.split(composite)
  local at = composite:match(".*()\0")
  return composite:sub(1, at - 1), composite:sub(at + 1)
end

-- Compiled expressions, by budget and expression: writes to a collection
-- with an expression index reuse its sandbox instead of making one per
-- write. Bounded: emptied when full.
local compiled, ncompiled, MAX_COMPILED = {}, 0, 256

--- A key function from a string expression over the record (run in a
-- sandbox under budget, like query filters), or the given function.
function indexes.key_function(def, budget)
  if type(def) == "function" then return def end
  if type(def) == "string" then
    budget = budget or query.DEFAULT_BUDGET
    local id = ("%d\0%.17g\0%d\0%s"):format(budget.memory, budget.time, budget.instructions, def)
    local f = compiled[id]
    if f then return f end
    local eval = query.compile(def, budget, "index expression")
    f = function(value)
      local key, other = eval(value)
      if other then
        raise("invalid_argument", "index expression returned a %s; keys are strings, numbers or nil", other)
      end
      return key
    end
    if ncompiled >= MAX_COMPILED then compiled, ncompiled = {}, 0 end
    compiled[id], ncompiled = f, ncompiled + 1
    return f
  end
  raise("invalid_argument", "an index needs a key function or a string expression")
end

--- Adds to ichanges the index entry changes for one record change.
function indexes.diff(ichanges, name, keyfn, key, old_value, new_value, has_old, has_new)
  local function ikey(v)
    local ok, r = pcall(keyfn, v)
    if not ok then
      if errors.is(r) then error(r, 0) end
      raise("handler_error", "index '%s' key function failed: %s", name, tostring(r))
    end
    return indexes.encode_key(r, name)
  end
  local old_ik = has_old and ikey(old_value) or nil
  local new_ik = has_new and ikey(new_value) or nil
  if old_ik == new_ik then return end
  if old_ik then ichanges[old_ik .. "\0" .. key] = false end
  if new_ik then ichanges[new_ik .. "\0" .. key] = core.json_string(key) end
end

--- Bounds over encoded index keys from query options given in index-key
-- terms (strings or numbers).
function indexes.bounds(opts)
  local function enc(v, what)
    if v == nil then return nil end
    if type(v) == "number" then return "n" .. indexes.sortable_number(v) end
    if type(v) == "string" then return "s" .. v end
    raise("invalid_argument", "opts.%s must be a string or a number", what)
  end
  if opts ~= nil and type(opts) ~= "table" then
    raise("invalid_argument", "opts must be a table, got %s", type(opts))
  end
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  local prefix, from, to = o.prefix, o.from, o.to
  if prefix ~= nil and type(prefix) ~= "string" then
    raise("invalid_argument", "opts.prefix must be a string")
  end
  o.prefix = prefix and ("s" .. prefix) or nil
  o.from = enc(from, "from")
  -- inclusive `to`: the composite keys of index key X are X.."\0"..key, all
  -- below X.."\1"; no composite equals X.."\1", and every greater index key
  -- gives greater composites (index keys hold no NUL).
  o.to = to ~= nil and (enc(to, "to") .. "\1") or nil
  return o
end

return indexes
