--- mydb.handlers.i64array: a packed array of 64-bit integers, stored as a
-- binary ref (8 bytes a number, string.pack "<i8").
--
--   local I64Array = require "mydb.handlers.i64array"
--   require("mydb.handlers").register(I64Array)
--   local a = I64Array.new { 1, 2, math.maxinteger }  -- integers (or floats with an integer value)
--   print(#a, a[3])                              --> 3  9223372036854775807
--
-- The snapshot holds {"__special__":"I64Array","__digest__":DIGEST}; the
-- bytes are in ROOT/refs. See mydb.handlers.packed for the array API.
return require("mydb.handlers.packed").define {
  tag = "I64Array",
  format = "i8",
  size = 8,
  what = "an integer",
  check = function(x)
    return math.type(x) == "integer" and x or (type(x) == "number" and math.tointeger(x)) or nil
  end,
}
