--- mydb.handlers.date: a calendar date (proleptic Gregorian) and its
-- inline handler.
--
--   local date = require "mydb.handlers.date"
--   require("mydb.handlers").register(date)
--   local d = date.new(2024, 2, 29)            -- or date.new{year=, month=, day=}
--   print(d, d.year, d:weekday())              --> 2024-02-29  2024  4
--   print(d < date.parse("2024-03-01"))        --> true
--   print(d:add_days(1), date.parse("2024-03-01") - d)   --> 2024-03-01  1
--
-- Stored inline: {"__special__":"Date","day":29,"month":2,"year":2024}.
-- Dates are values: compare them with ==, <, <=; do not change their fields.
local errors = require "mydb.errors"

local date = { tag = "Date" }

local Date = { __name = "mydb.Date" }
local methods = {}
Date.__index = methods
date.mt = Date

local DAYS = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }

function date.is_leap(y) return y % 4 == 0 and (y % 100 ~= 0 or y % 400 == 0) end

function date.days_in_month(y, m)
  if m == 2 and date.is_leap(y) then return 29 end
  return DAYS[m]
end

--- Days since 1970-01-01 of a civil date (H. Hinnant's algorithm).
function date.days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = y // 400
  local yoe = y - era * 400
  local doy = (153 * (m > 2 and m - 3 or m + 9) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return era * 146097 + doe - 719468
end

--- The civil date (y, m, d) of a count of days since 1970-01-01.
function date.civil_from_days(z)
  z = z + 719468
  local era = z // 146097
  local doe = z - era * 146097
  local yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
  local mp = (5 * doy + 2) // 153
  local d = doy - (153 * mp + 2) // 5 + 1
  local m = mp < 10 and mp + 3 or mp - 9
  if m <= 2 then y = y + 1 end
  return y, m, d
end

local function int_in(v, lo, hi, what)
  if math.type(v) ~= "integer" then
    errors.raise("invalid_argument", "%s must be an integer, got %s", what,
      type(v) == "number" and tostring(v) or type(v))
  end
  if v < lo or v > hi then
    errors.raise("invalid_argument", "%s must be %d to %d, got %d", what, lo, hi, v)
  end
end

--- Checks a calendar date; raises invalid_argument naming what is wrong.
function date.check(y, m, d)
  int_in(y, 1, 9999, "year")
  int_in(m, 1, 12, "month")
  int_in(d, 1, date.days_in_month(y, m), "day")
end

--- A date from (year, month, day) or from a table {year=, month=, day=}.
function date.new(y, m, d)
  if type(y) == "table" then y, m, d = y.year, y.month, y.day end
  date.check(y, m, d)
  return setmetatable({ year = y, month = m, day = d }, Date)
end

--- The date of "YYYY-MM-DD".
function date.parse(s)
  if type(s) ~= "string" then errors.raise("invalid_argument", "date.parse needs a string, got %s", type(s)) end
  local y, m, d = s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)$")
  if not y then errors.raise("invalid_argument", "not a date in the form YYYY-MM-DD: %q", s) end
  return date.new(tonumber(y), tonumber(m), tonumber(d))
end

--- Today's date, in local time.
function date.today()
  local t = os.date("*t")
  return date.new(t.year, t.month, t.day)
end

--- The date of a count of days since 1970-01-01.
function date.from_days(n)
  if math.type(n) ~= "integer" then errors.raise("invalid_argument", "days must be an integer") end
  return date.new(date.civil_from_days(n))
end

function date.is_date(v) return getmetatable(v) == Date end

--- Days since 1970-01-01 (negative before).
function methods:days() return date.days_from_civil(self.year, self.month, self.day) end

--- The date n days later (earlier when n < 0).
function methods:add_days(n)
  if math.type(n) ~= "integer" then errors.raise("invalid_argument", "add_days needs an integer") end
  return date.from_days(self:days() + n)
end

--- ISO weekday: 1 = Monday ... 7 = Sunday.
function methods:weekday() return (self:days() + 3) % 7 + 1 end

--- Day of the year, 1 to 366.
function methods:yearday() return self:days() - date.days_from_civil(self.year, 1, 1) + 1 end

function Date.__tostring(self) return ("%04d-%02d-%02d"):format(self.year, self.month, self.day) end
function Date.__eq(a, b) return a.year == b.year and a.month == b.month and a.day == b.day end
function Date.__lt(a, b) return a:days() < b:days() end
function Date.__le(a, b) return a:days() <= b:days() end
--- a - b: the number of days from b to a.
function Date.__sub(a, b)
  if getmetatable(a) ~= Date or getmetatable(b) ~= Date then
    errors.raise("invalid_argument", "only a date can be subtracted from a date (use add_days)")
  end
  return a:days() - b:days()
end

-- ------------------------------------------------------------- handler

function date.is_eligible_for(v) return getmetatable(v) == Date end
function date.serialize(v) return { year = v.year, month = v.month, day = v.day } end
function date.deserialize(t) return date.new(t.year, t.month, t.day) end

return date
