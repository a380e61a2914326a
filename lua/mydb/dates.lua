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

return dates
