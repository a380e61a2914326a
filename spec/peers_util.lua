--- spec.peers_util: small helpers shared by the spec/peers_*_spec.lua files
-- (issue 7: delete, queries, TTL, batches, change streams, indexes). Not a
-- spec itself (no _spec suffix).
local H = require "spec.helper"

local U = {}

--- Every row an iterator yields, as a list of {a, b, c}.
function U.rows(it)
  local out = {}
  for a, b, c in it do out[#out + 1] = { a, b, c } end
  return out
end

--- The first values an iterator yields, as a list.
function U.firsts(it)
  local out = {}
  for a in it do out[#out + 1] = a end
  return out
end

--- The second values an iterator yields, as a list.
function U.seconds(it)
  local out = {}
  for _, b in it do out[#out + 1] = b end
  return out
end

--- The third values an iterator yields, as a list.
function U.thirds(it)
  local out = {}
  for _, _, c in it do out[#out + 1] = c end
  return out
end

--- Number of lines of a tenant's head journal, and its bytes.
function U.head(root, tenant)
  local bytes = H.head_journal(root, tenant)
  local n = 0
  for _ in bytes:gmatch("\n") do n = n + 1 end
  return n, bytes
end

--- Number of object files of a tenant.
function U.objects(root, tenant)
  return #H.object_names(root, tenant)
end

--- The decoded __collection__ object of a collection's latest (or given)
-- snapshot, read from the object file with lua-cjson. Its "indexes" are
-- given as a map NAME -> {count=, expr=, root=} whether stored as a JSON
-- object or in the {"__map__": [[name, index], ...]} form (the third
-- result tells which; the documented form is the object).
function U.collection_meta(db, root, tenant, entry, digest)
  digest = digest or db:get_digest(tenant, entry)
  local o = require("cjson").decode(H.read_object(root, tenant, digest))
  local c = o.__collection__
  local as_map = false
  if type(c) == "table" and type(c.indexes) == "table" and c.indexes.__map__ then
    local map = {}
    for _, pair in ipairs(c.indexes.__map__) do map[pair[1]] = pair[2] end
    c.indexes, as_map = map, true
  end
  return c, o, as_map
end

--- Runs a chunk in a fresh process with the store root as arg[1]; asserts
-- that it exits with status 0 and returns its output.
function U.fresh(root, code)
  local out, ok, status = H.run_lua(code, { args = { root } })
  if not ok then
    H.fail(("fresh process failed (status %s):\n%s"):format(tostring(status), out), 2)
  end
  return out
end

--- Sorted list of a table's keys.
function U.sorted_keys(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  table.sort(out)
  return out
end

return U
