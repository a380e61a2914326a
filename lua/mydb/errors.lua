--- mydb.errors: the one error contract of mydb.
-- Every failure raises an error value {code = ..., message = ...}; tostring
-- gives "mydb: <code>: <message>". Codes are stable strings, never renamed.
local core = require "mydb.core"

local errors = {}

errors.mt = core.error_mt

--- The error codes: every failure raises an error value whose code is one
-- of these stable strings (never renamed).
-- @field invalid_argument an argument has the wrong type or form
-- @field not_initialized the tenant was never initialized
-- @field not_found no such entry, key, digest or object
-- @field type_mismatch save() and put() used on the same entry
-- @field unsupported_value the value cannot be stored
-- @field corrupt stored bytes do not match their digest or format
-- @field io a system call failed
-- @field out_of_memory an allocation failed
-- @field closed the database was closed
-- @field unknown_tag no handler or class for a stored tag
-- @field handler_error a handler failed
-- @field already_exists a branch or tag of that name exists
-- @field conflict a merge met changes it cannot combine (err.conflicts lists them)
-- @field rejected a push that is not a fast-forward of the remote branch
-- @usage
-- local ok, err = pcall(db.load, db, "nobody", "config")
-- assert(not ok and err.code == "not_initialized" and mydb.errors.codes[err.code])
errors.codes = {
  invalid_argument = "an argument has the wrong type or form",
  not_initialized = "the tenant was never initialized",
  not_found = "no such entry, key, digest or object",
  type_mismatch = "save() and put() used on the same entry",
  unsupported_value = "the value cannot be stored",
  corrupt = "stored bytes do not match their digest or format",
  io = "a system call failed",
  out_of_memory = "an allocation failed",
  closed = "the database was closed",
  unknown_tag = "no handler or class for a stored tag",
  handler_error = "a handler failed",
  already_exists = "a branch or tag of that name exists",
  conflict = "a merge met changes it cannot combine (err.conflicts lists them)",
  rejected = "a push that is not a fast-forward of the remote branch (pull first, or opts.force)",
}

--- A new error value (not raised); tostring gives "mydb: CODE: MESSAGE".
-- @param code an error code
-- @param message the message
-- @return the error value {code=, message=}
-- @raise nothing
-- @usage
-- local e = mydb.errors.new("not_found", "no such thing")
-- assert(tostring(e) == "mydb: not_found: no such thing")
function errors.new(code, message)
  return setmetatable({ code = code, message = message }, errors.mt)
end

--- True for the source of one of mydb's own Lua files (the modules, the
-- shipped handlers, the mydb-lua / mydb programs' modules), installed,
-- staged or embedded. src/cli/run.c applies the same rule in C.
-- @param src a chunk's source, as debug.getinfo gives it
-- @return true or false
-- @raise nothing
-- @usage
-- assert(mydb.errors.internal_source("@/usr/share/lua/5.4/mydb/init.lua"))
-- assert(not mydb.errors.internal_source("@app.lua"))
function errors.internal_source(src)
  return src:match("mydb/[%w_]+%.lua$") ~= nil or src:match("mydb/handlers/[%w_]+%.lua$") ~= nil
      or src:match("^@handlers/[%w_]+%.lua$") ~= nil or src:match("^@src/cli/[%w_]+%.lua$") ~= nil
end

--- "source:line" of the first Lua function on the stack, above level,
-- that is not mydb's own: the caller's line, as error(msg, 2) gives for
-- Lua's own functions.
-- @param level nil (1) or the stack level to start from
-- @return "source:line", or nil when there is none (called from C only)
-- @raise nothing
-- @usage
-- assert(mydb.errors.caller():match(":%d+$"))
function errors.caller(level)
  level = (level or 1) + 1
  while true do
    local info = debug.getinfo(level, "Sl")
    if not info then return nil end
    if info.what ~= "C" and not errors.internal_source(info.source) then
      return info.short_src .. ":" .. (info.currentline or 0)
    end
    level = level + 1
  end
end

--- Raises an error value; extra arguments format the message. err.where is
-- the caller's "source:line" (errors.caller).
-- @param code an error code
-- @param fmt the message, or a string.format pattern
-- @param ... the pattern's arguments
-- @return never returns
-- @raise the error value
-- @usage
-- local ok, e = pcall(mydb.errors.raise, "not_found", "key %q", "k1")
-- assert(not ok and e.message == 'key "k1"')
function errors.raise(code, fmt, ...)
  local e = errors.new(code, select("#", ...) > 0 and fmt:format(...) or fmt)
  e.where = errors.caller(2)
  error(e, 0)
end

--- True if e is a mydb error value (of the given code, when given).
-- @param e any value
-- @param code nil or an error code
-- @return true or false
-- @raise nothing
-- @usage
-- local ok, e = pcall(db.get, db, "acme", "missing")
-- assert(mydb.errors.is(e, "not_found") and not mydb.errors.is("text"))
function errors.is(e, code)
  return getmetatable(e) == errors.mt and (code == nil or e.code == code)
end

return errors
