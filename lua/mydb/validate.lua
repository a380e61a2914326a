--- mydb.validate: the checks of the public API's arguments. Each raises
-- invalid_argument (at the caller's level, through mydb.errors) with a
-- message that names the argument, or returns nothing.
local core = require "mydb.core"
local errors = require "mydb.errors"
local query = require "mydb.query"

local raise = errors.raise

local validate = {}

local ENTRY_MAX, USER_MAX, KEY_MAX = 1024, 256, 1024
local BACKENDS = { loose = true, pack = true, memory = true, postgres = true }

function validate.string(v, what, min, max)
  if type(v) ~= "string" then
    raise("invalid_argument", "%s must be a string, got %s", what, type(v))
  end
  if #v < min or #v > max then
    raise("invalid_argument", "%s must be %d to %d bytes long, got %d", what, min, max, #v)
  end
  if v:find("\0", 1, true) then raise("invalid_argument", "%s must not contain NUL bytes", what) end
end

function validate.tenant(tenant)
  if type(tenant) ~= "string" then
    raise("invalid_argument", "tenant must be a string, got %s", type(tenant))
  end
  if not core.tenant_valid(tenant) then
    raise("invalid_argument",
      "invalid tenant id %q: 1 to 128 bytes, not '.', '..' or 'refs', not starting with '.', no '/', '\\' or NUL",
      tenant)
  end
end

function validate.entry(entry)
  validate.string(entry, "entry", 1, ENTRY_MAX)
  if not utf8.len(entry) then raise("invalid_argument", "entry must be valid UTF-8") end
end

function validate.user(user)
  validate.string(user, "user_id", 1, USER_MAX)
  if not utf8.len(user) then raise("invalid_argument", "user_id must be valid UTF-8") end
end

function validate.key(key) validate.string(key, "key", 0, KEY_MAX) end

--- The opts table every write method takes last: {message = string}.
function validate.write_options(opts)
  if opts == nil then return nil end
  if type(opts) ~= "table" then raise("invalid_argument", "opts must be a table, got %s", type(opts)) end
  for k in pairs(opts) do
    if k ~= "message" then raise("invalid_argument", "unknown write option '%s'", tostring(k)) end
  end
  if opts.message ~= nil then
    if type(opts.message) ~= "string" then
      raise("invalid_argument", "message must be a string, got %s", type(opts.message))
    end
    if #opts.message > 65536 then raise("invalid_argument", "message must be at most 65536 bytes") end
    if not utf8.len(opts.message) then raise("invalid_argument", "message must be valid UTF-8") end
  end
  return opts
end

function validate.digest(digest, optional)
  if digest == nil and optional then return end
  if not core.digest_valid(digest) then
    raise("invalid_argument", "digest must be 64 lowercase hex characters, got %s",
      type(digest) == "string" and ("%q"):format(digest) or type(digest))
  end
end

function validate.max_items(n)
  if n == nil then return 1000 end
  if math.type(n) ~= "integer" or n < 1 then
    raise("invalid_argument", "max_items must be a positive integer, got %s", tostring(n))
  end
  return n
end

local function check_backend(name, v)
  if not BACKENDS[v] then
    raise("invalid_argument", "%s must be \"loose\", \"pack\", \"memory\" or \"postgres\", got %s", name,
      type(v) == "string" and ("%q"):format(v) or type(v))
  end
end

local function check_segment_bytes(v)
  if math.type(v) ~= "integer" or v < 1024 or v > 1 << 30 then
    raise("invalid_argument", "segment_bytes must be an integer from 1024 to 2^30")
  end
end

--- The options of mydb.open (a table or nil); returns them as a table.
function validate.open_options(opts)
  if opts ~= nil and type(opts) ~= "table" then
    raise("invalid_argument", "options must be a table, got %s", type(opts))
  end
  opts = opts or {}
  for k, v in pairs(opts) do
    if k == "fsync" or k == "create" then
      if type(v) ~= "boolean" then raise("invalid_argument", "%s must be a boolean", k) end
    elseif k == "cache_bytes" then
      if math.type(v) ~= "integer" or v < 0 then
        raise("invalid_argument", "cache_bytes must be a non-negative integer")
      end
    elseif k == "backend" then check_backend("backend", v)
    elseif k == "segment_bytes" then check_segment_bytes(v)
    elseif k == "budget" then
      query.budget(v, nil, "budget") -- validates
    elseif k == "ttl_field" then
      if type(v) ~= "string" or #v == 0 then raise("invalid_argument", "ttl_field must be a non-empty string") end
    elseif k == "conninfo" then
      if type(v) ~= "string" or #v > 4000 then raise("invalid_argument", "conninfo must be a string (a libpq connection string)") end
      if opts.backend ~= nil and opts.backend ~= "postgres" then
        raise("invalid_argument", "conninfo is for backend \"postgres\", not %q", tostring(opts.backend))
      end
    else
      raise("invalid_argument", "unknown option '%s'", tostring(k))
    end
  end
  return opts
end

--- The options of mydb.copy (a table or nil); returns them as a table.
function validate.copy_options(opts)
  if opts ~= nil and type(opts) ~= "table" then
    raise("invalid_argument", "options must be a table, got %s", type(opts))
  end
  opts = opts or {}
  for k, v in pairs(opts) do
    if k == "backend" or k == "src_backend" then check_backend(k, v)
    elseif k == "fsync" or k == "progress" then
      if type(v) ~= "boolean" then raise("invalid_argument", "%s must be a boolean", k) end
    elseif k == "segment_bytes" then check_segment_bytes(v)
    else
      raise("invalid_argument", "unknown option '%s'", tostring(k))
    end
  end
  return opts
end

return validate
