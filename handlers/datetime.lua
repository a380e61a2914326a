--- mydb.handlers.datetime: a date and time of day with its offset from UTC,
-- and its inline handler.
--
--   local datetime = require "mydb.handlers.datetime"
--   require("mydb.handlers").register(datetime)
--   local t = datetime.new { year = 2024, month = 3, day = 1, hour = 9, minute = 30,
--                            second = 0, utc_offset = 60 }     -- minutes east of UTC
--   print(t)                                   --> 2024-03-01T09:30:00+01:00
--   print(t:timestamp())                       --> 1709281800 (seconds since the epoch)
--   print(t == datetime.parse("2024-03-01T08:30:00Z"))        --> true (same instant)
--   print(t:utc(), datetime.now())
--
-- Fields: year, month, day, hour (0-23), minute (0-59), second (an integer
-- or a float, 0 <= second < 60), utc_offset (minutes, -1439 to 1439).
-- ==, < and <= compare instants. Stored inline:
-- {"__special__":"DateTime","day":1,"hour":9,"minute":30,"month":3,"second":0,"utc_offset":60,"year":2024}.
local errors = require "mydb.errors"
local date = require "mydb.handlers.date"

local datetime = { tag = "DateTime" }

local DateTime = { __name = "mydb.DateTime" }
local methods = {}
DateTime.__index = methods
datetime.mt = DateTime

local function int_in(v, lo, hi, what)
  if math.type(v) ~= "integer" then
    errors.raise("invalid_argument", "%s must be an integer, got %s", what,
      type(v) == "number" and tostring(v) or type(v))
  end
  if v < lo or v > hi then
    errors.raise("invalid_argument", "%s must be %d to %d, got %d", what, lo, hi, v)
  end
end

--- A date-time from a table {year=, month=, day=, hour=0, minute=0,
-- second=0, utc_offset=0}.
function datetime.new(t)
  if type(t) ~= "table" then
    errors.raise("invalid_argument", "datetime.new needs a table of fields, got %s", type(t))
  end
  local v = {
    year = t.year, month = t.month, day = t.day, hour = t.hour or 0, minute = t.minute or 0,
    second = t.second or 0, utc_offset = t.utc_offset or 0,
  }
  date.check(v.year, v.month, v.day)
  int_in(v.hour, 0, 23, "hour")
  int_in(v.minute, 0, 59, "minute")
  local s = v.second
  if type(s) ~= "number" or s ~= s or s < 0 or s >= 60 then
    errors.raise("invalid_argument", "second must be a number from 0 to less than 60, got %s", tostring(s))
  end
  int_in(v.utc_offset, -1439, 1439, "utc_offset (minutes)")
  return setmetatable(v, DateTime)
end

--- The date-time at `ts` seconds since 1970-01-01T00:00:00Z, seen at
-- offset `utc_offset` minutes (default 0).
function datetime.from_timestamp(ts, utc_offset)
  if type(ts) ~= "number" or ts ~= ts or ts == math.huge or ts == -math.huge then
    errors.raise("invalid_argument", "a timestamp must be a finite number")
  end
  utc_offset = utc_offset or 0
  int_in(utc_offset, -1439, 1439, "utc_offset (minutes)")
  local t = ts + utc_offset * 60
  local whole = math.floor(t)
  local frac = t - whole
  local days = whole // 86400
  local secs = whole - days * 86400
  local y, m, d = date.civil_from_days(days)
  local second = secs % 60
  if math.type(ts) == "float" then second = second + frac end
  return datetime.new { year = y, month = m, day = d, hour = secs // 3600, minute = secs % 3600 // 60,
    second = second, utc_offset = utc_offset }
end

-- The local offset from UTC now, in minutes (from strftime's %z).
local function local_offset(ts)
  local z = os.date("%z", ts)
  local sign, hh, mm = tostring(z):match("^([+-])(%d%d)(%d%d)$")
  if not sign then return 0 end
  local off = tonumber(hh) * 60 + tonumber(mm)
  return sign == "-" and -off or off
end

--- Now, to the second, at the local offset (or at utc_offset minutes).
function datetime.now(utc_offset)
  local ts = os.time()
  return datetime.from_timestamp(ts, utc_offset or local_offset(ts))
end

--- Parses ISO 8601 "YYYY-MM-DDTHH:MM[:SS[.fraction]]" followed by "Z",
-- "+HH:MM", "-HH:MM", "+HHMM" or "+HH" (a space may stand for "T"). The
-- offset is required: a date-time without one names no instant.
function datetime.parse(s)
  if type(s) ~= "string" then errors.raise("invalid_argument", "datetime.parse needs a string, got %s", type(s)) end
  local y, mo, d, h, mi, rest = s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)[T ](%d%d):(%d%d)(.*)$")
  if not y then errors.raise("invalid_argument", "not an ISO 8601 date-time: %q", s) end
  local sec = 0
  local sec_s, tail = rest:match("^:(%d%d%.?%d*)(.*)$")
  if sec_s then
    if sec_s:find("%.$") then errors.raise("invalid_argument", "not an ISO 8601 date-time: %q", s) end
    sec = sec_s:find(".", 1, true) and tonumber(sec_s) or math.tointeger(tonumber(sec_s))
    rest = tail
  end
  local off
  if rest == "Z" or rest == "z" then
    off = 0
  else
    local sign, oh, om = rest:match("^([+-])(%d%d):?(%d?%d?)$")
    if not sign or (#om ~= 0 and #om ~= 2) then
      errors.raise("invalid_argument", "a date-time needs a UTC offset (Z or +HH:MM): %q", s)
    end
    off = tonumber(oh) * 60 + (tonumber(om) or 0)
    if sign == "-" then off = -off end
  end
  return datetime.new { year = tonumber(y), month = tonumber(mo), day = tonumber(d), hour = tonumber(h),
    minute = tonumber(mi), second = sec, utc_offset = off }
end

function datetime.is_datetime(v) return getmetatable(v) == DateTime end

--- Seconds since 1970-01-01T00:00:00Z (a float when second is one).
function methods:timestamp()
  local days = date.days_from_civil(self.year, self.month, self.day)
  return days * 86400 + self.hour * 3600 + self.minute * 60 + self.second - self.utc_offset * 60
end

--- The same instant seen at another offset (minutes).
function methods:at_offset(utc_offset) return datetime.from_timestamp(self:timestamp(), utc_offset) end

--- The same instant in UTC.
function methods:utc() return self:at_offset(0) end

--- The calendar date (mydb.handlers.date) of this date-time at its offset.
function methods:date() return date.new(self.year, self.month, self.day) end

--- The date-time `n` seconds later.
function methods:add_seconds(n)
  if type(n) ~= "number" then errors.raise("invalid_argument", "add_seconds needs a number") end
  return datetime.from_timestamp(self:timestamp() + n, self.utc_offset)
end

local function fmt_offset(off)
  local sign = off < 0 and "-" or "+"
  off = math.abs(off)
  return ("%s%02d:%02d"):format(sign, off // 60, off % 60)
end

local function fmt_second(s)
  if math.type(s) == "integer" then return ("%02d"):format(s) end
  local txt = ("%09.6f"):format(s):gsub("0+$", ""):gsub("%.$", "")
  return txt
end

function DateTime.__tostring(v)
  return ("%04d-%02d-%02dT%02d:%02d:%s%s"):format(v.year, v.month, v.day, v.hour, v.minute,
    fmt_second(v.second), fmt_offset(v.utc_offset))
end
function DateTime.__eq(a, b)
  return getmetatable(a) == DateTime and getmetatable(b) == DateTime and a:timestamp() == b:timestamp()
end
function DateTime.__lt(a, b) return a:timestamp() < b:timestamp() end
function DateTime.__le(a, b) return a:timestamp() <= b:timestamp() end

-- ------------------------------------------------------------- handler

local FIELDS = { "year", "month", "day", "hour", "minute", "second", "utc_offset" }

function datetime.is_eligible_for(v) return getmetatable(v) == DateTime end

function datetime.serialize(v)
  local t = {}
  for _, k in ipairs(FIELDS) do t[k] = v[k] end
  return t
end

function datetime.deserialize(t) return datetime.new(t) end

return datetime
