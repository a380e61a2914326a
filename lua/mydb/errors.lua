--- mydb.errors: the one error contract of mydb.
-- Every failure raises an error value {code = ..., message = ...}; tostring
-- gives "mydb: <code>: <message>". Codes are stable strings, never renamed.
local core = require "mydb.core"

local errors = {}

errors.mt = core.error_mt

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

--- A new error value (not raised).
function errors.new(code, message)
  return setmetatable({ code = code, message = message }, errors.mt)
end

--- True for the source of one of mydb's own Lua files (the modules, the
-- shipped handlers, the mydb-lua / mydb programs' modules), installed,
-- staged or embedded. src/cli/run.c applies the same rule in C.
function errors.internal_source(src)
  return src:match("mydb/[%w_]+%.lua$") ~= nil or src:match("mydb/handlers/[%w_]+%.lua$") ~= nil
      or src:match("^@handlers/[%w_]+%.lua$") ~= nil or src:match("^@src/cli/[%w_]+%.lua$") ~= nil
end

--- "source:line" of the first Lua function on the stack, above level,
-- that is not mydb's own: the caller's line, as error(msg, 2) gives for
-- Lua's own functions. nil when there is none (called from C only).
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

--- Raises an error value; extra arguments format the message. err.where
-- is the caller's "source:line" (errors.caller).
function errors.raise(code, fmt, ...)
  local e = errors.new(code, select("#", ...) > 0 and fmt:format(...) or fmt)
  e.where = errors.caller(2)
  error(e, 0)
end

--- True if e is a mydb error value (of the given code, when given).
function errors.is(e, code)
  return getmetatable(e) == errors.mt and (code == nil or e.code == code)
end

return errors
