--- mydb.encode: turning the values of a write into stored text - the
-- record items of put_many and batches, and the paths that name a value
-- in error messages ("users[\"k1\"]").
local core = require "mydb.core"
local errors = require "mydb.errors"
local validate = require "mydb.validate"

local raise = errors.raise

local encode = {}

--- entry, or entry["key"]: where a value sits, for messages.
function encode.path_name(entry, key)
  if key == nil then return entry end
  return ("%s[%q]"):format(entry, key)
end

--- Points ctx's error path (ctx.root) at entry["key"] without building
-- that text: the encoder calls ctx.root, a function, only when it fails
-- (src/lua/lcodec.c), so a put_many of N records does not format N paths.
function encode.set_path(ctx, entry, key)
  local fn = ctx.record_path
  if not fn then
    fn = function() return encode.path_name(ctx.path_entry, ctx.path_key) end
    ctx.record_path = fn
  end
  ctx.path_entry, ctx.path_key, ctx.root = entry, key, fn
end

-- Where item i (a list's) or key (a map's) is, for messages.
local function where_of(key, i)
  if i then return ("items[%d]"):format(i) end
  return ("key %s"):format(tostring(key))
end

-- Encodes one record of entry into changes_out.
local function add(entry, ctx, changes_out, key, value, i)
  if type(key) ~= "string" then
    raise("invalid_argument", "record key %s must be a string, got %s", where_of(key, i), type(key))
  end
  validate.key(key)
  if value == nil then raise("invalid_argument", "value of %s must not be nil", where_of(key, i)) end
  encode.set_path(ctx, entry, key)
  changes_out[key] = core.encode(value, ctx)
end

--- Encodes the records of put_many/batch items (a map key -> value, or a
-- list of objects with a get_key() method) into changes_out {key = raw};
-- returns how many.
function encode.items(entry, items, ctx, changes_out)
  if type(items) ~= "table" then
    raise("invalid_argument", "items must be a table, got %s", type(items))
  end
  local n, len = 0, #items
  if len > 0 then
    for k in pairs(items) do
      if math.type(k) ~= "integer" or k < 1 or k > len then
        raise("invalid_argument", "items must be a map of keys to values or a list of objects, not both")
      end
    end
    for i = 1, len do
      local item = items[i]
      local ok, key = pcall(function() return item:get_key() end)
      if not ok then
        raise("invalid_argument", "items[%d] has no usable get_key() method: %s", i, tostring(key))
      end
      add(entry, ctx, changes_out, key, item, i)
      n = n + 1
    end
  else
    for key, value in pairs(items) do
      add(entry, ctx, changes_out, key, value, nil)
      n = n + 1
    end
  end
  return n
end

return encode
