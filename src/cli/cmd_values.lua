--- mydb.cmd.values: values in and out of the `mydb` command as JSON.
--
-- Output is mydb's canonical JSON (keys sorted, the stored encoding: the
-- same bytes a digest is computed over), so two equal values print the
-- same text. Input is JSON decoded by the same codec, so handler and class
-- tags ({"__tag__": ...}) written by `mydb export` come back as the values
-- they were.
local core = require "mydb.core"
local errors = require "mydb.errors"
local serializer = require "mydb.serializer"

local values = {}

--- The canonical JSON text of v.
function values.encode(v)
  if v == nil then return "null" end
  return serializer.canonical(v)
end

--- A JSON string literal.
values.string = core.json_string

--- The value of a JSON text; invalid_argument (naming `what`) when it is
-- not JSON. "null" is nil.
function values.decode(text, what)
  local s = text:match("^%s*(.-)%s*$")
  if s == "null" then return nil end
  local ok, v = pcall(core.decode, s, serializer.context(nil))
  if not ok then
    errors.raise("invalid_argument", "%s is not JSON: %s", what or "value",
      errors.is(v) and v.message or tostring(v))
  end
  return v
end

--- The whole of stdin.
function values.stdin() return io.stdin:read("a") or "" end

return values
