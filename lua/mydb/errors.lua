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

--- Raises an error value; extra arguments format the message.
function errors.raise(code, fmt, ...)
  error(errors.new(code, select("#", ...) > 0 and fmt:format(...) or fmt), 0)
end

--- True if e is a mydb error value (of the given code, when given).
function errors.is(e, code)
  return getmetatable(e) == errors.mt and (code == nil or e.code == code)
end

return errors
