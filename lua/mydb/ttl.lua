--- mydb.ttl: records past their time. A collection's TTL field (its own,
-- or the handle's ttl_field) names a field holding a time in seconds since
-- the epoch; a record whose field is in the past is invisible to reads and
-- dropped by the next write.
local ttl = {}

--- A test for the records of a collection (info) whose TTL field has
-- passed at db:_now(), or nil when the collection has no TTL field.
function ttl.hidden(db, info)
  local field = info.ttl or db._ttl_field
  if not field then return nil end
  local now = db:_now()
  return function(v)
    if type(v) ~= "table" then return false end
    local x = v[field]
    return type(x) == "number" and x < now
  end
end

return ttl
