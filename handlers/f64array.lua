--- mydb.handlers.f64array: a packed array of float64 numbers, stored as a
-- binary ref (8 bytes a number, string.pack "<d").
--
--   local F64Array = require "mydb.handlers.f64array"
--   require("mydb.handlers").register(F64Array)
--   local a = F64Array.new { 1, 2.5, -0.0 }   -- any numbers; kept as floats
--   print(#a, a[1], a)                          --> 3  1.0  F64Array(3)[1.0, 2.5, -0.0]
--   db:save("t", "u", "series", { name = "x", values = a })
--
-- The snapshot holds {"__special__":"F64Array","__digest__":DIGEST}; the
-- bytes are in ROOT/refs, stored once whoever saves them. See
-- mydb.handlers.packed for the array API.
return require("mydb.handlers.packed").define {
  tag = "F64Array",
  format = "d",
  size = 8,
  what = "a number",
  check = function(x)
    if type(x) == "number" then return x + 0.0 end
  end,
}
