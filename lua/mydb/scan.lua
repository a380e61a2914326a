--- mydb.scan: iterators that span more than one tree - a query across
-- every record collection of a tenant, and the rows of a secondary index
-- (index tree -> record tree).
local core = require "mydb.core"
local errors = require "mydb.errors"
local collection = require "mydb.collection"
local indexes = require "mydb.indexes"
local write = require "mydb.write"

local raise = errors.raise

local scan = {}

-- A to-be-closed value that closes the cursor cur() returns (if any): the
-- fourth value of an iterator, so that a for loop left early lets go of
-- the pieces the cursor holds.
local function closer(cur)
  return setmetatable({}, { __close = function()
    local c = cur()
    if c then c:close() end
  end })
end

--- Yields entry, key, value over the tenant's collections in entry order,
-- each queried with opts (without its limit, which counts the whole
-- scan) under the scan's query clock. Returns next, nil, nil, closer.
function scan.entries(db, store, tenant, plan, opts)
  local entries, heads = db:_heads(tenant) -- the handle's branch
  local i, it, cursor, entry = 0, nil, nil, nil
  local n, limit = 0, plan.limit
  local sub = {}
  for k, v in pairs(opts or {}) do if k ~= "limit" then sub[k] = v end end
  return function()
    while true do
      if limit and n >= limit then return nil end
      if it then
        local k, v = it()
        if k ~= nil then
          n = n + 1
          return entry, k, v
        end
        it, cursor = nil, nil
      end
      i = i + 1
      entry = entries[i]
      if entry == nil then return nil end
      if write.is_collection(store:read(tenant, heads[entry])) then
        local _
        it, _, _, cursor = db:_query(tenant, entry, sub, plan.clock)
      end
    end
  end, nil, nil, closer(function() return cursor end)
end

--- Yields key, value, index key of the records of a collection (info) in
-- the order of its index name, within plan's bounds. Returns next, nil,
-- nil, the index tree's cursor.
function scan.index_rows(db, tenant, entry, info, name, plan, ctx)
  local ix = info.indexes[name]
  local t = db:_tree(tenant, info)
  local ti = collection.tree(db._store, tenant, db._nodes)
  local it, _, _, cursor = collection.range(ti, ix.root, { lo = plan.lo, hi = plan.hi,
    hi_excl = plan.hi_excl, reverse = plan.reverse })
  return function()
    local composite = it()
    if composite == nil then return nil end
    local ik, key = indexes.split(composite)
    local raw = collection.get(t, info.root, key)
    if raw == nil then
      raise("corrupt", "index '%s' of entry '%s' names a missing record '%s'", name, entry, key)
    end
    return key, core.decode(raw, ctx), indexes.decode_key(ik)
  end, nil, nil, cursor
end

return scan
