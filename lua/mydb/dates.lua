--- mydb.dates: civil dates (proleptic Gregorian, UTC) to seconds since
-- the epoch, without os.time (which reads the local time zone).
local dates = {}

--- Seconds since 1970-01-01 00:00:00 UTC of the given UTC date and time.
function dates.epoch_seconds(y, mo, d, h, mi, s)
  -- days from civil (H. Hinnant's algorithm), 1970-01-01 = 0
  local yy = mo <= 2 and y - 1 or y
  local era = (yy >= 0 and yy or yy - 399) // 400
  local yoe = yy - era * 400
  local doy = (153 * (mo + (mo > 2 and -3 or 9)) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  local days = era * 146097 + doe - 719468
  return days * 86400 + h * 3600 + mi * 60 + s
end

--- A time given to the API -> seconds since the epoch, or nil when it is
-- not one: a number, a numeric string, "YYYY-MM-DD", "YYYY-MM-DD HH:MM:SS"
-- (UTC), or ISO 8601 "YYYY-MM-DDTHH:MM:SS[.fff]" with "Z" or an offset
-- "+HH:MM" / "-HHMM" (none: UTC).
function dates.parse(s)
  if type(s) == "number" then return s end
  if type(s) ~= "string" then return nil end
  local n = tonumber(s)
  if n then return n end
  local y, mo, d, rest = s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)(.*)$")
  if not y then return nil end
  local h, mi, sec, frac, zone = 0, 0, 0, "", ""
  if rest ~= "" then
    h, mi, sec, frac, zone = rest:match("^[ T](%d%d):(%d%d):(%d%d)(%.?%d*)(.*)$")
    if not h then return nil end
    if frac == "." then return nil end
  end
  local offset = 0
  if zone ~= "" and zone ~= "Z" then
    local sign, oh, om = zone:match("^([+-])(%d%d):?(%d%d)$")
    if not sign then return nil end
    oh, om = tonumber(oh), tonumber(om)
    if oh > 23 or om > 59 then return nil end
    offset = (sign == "+" and 1 or -1) * (oh * 3600 + om * 60)
  end
  y, mo, d, h, mi, sec = tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi), tonumber(sec)
  if mo < 1 or mo > 12 or d < 1 or d > 31 or h > 23 or mi > 59 or sec > 60 then return nil end
  local t = dates.epoch_seconds(y, mo, d, h, mi, sec) - offset
  if frac ~= "" then t = t + tonumber("0" .. frac) end
  return t
end

return dates
