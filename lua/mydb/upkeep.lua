--- mydb.upkeep: keeping a collection's secondary indexes (and its hidden
-- TTL index) in step with its records during a write: the key functions,
-- index trees built or updated in memory (flushed by the commit), and the
-- records whose TTL has passed.
local core = require "mydb.core"
local errors = require "mydb.errors"
local collection = require "mydb.collection"
local indexes = require "mydb.indexes"

local raise = errors.raise

local upkeep = {}

--- The index key function of an index, from its stored expression or the
-- function registered with this handle.
function upkeep.key_function(db, tenant, entry, name, ix)
  if name == indexes.TTL then
    local field = ix.field
    -- NaN never expires (as for reads) and is no index key: left out
    return function(v)
      local x = type(v) == "table" and v[field] or nil
      if type(x) == "number" and x == x then return x end
    end
  end
  if ix.expr then return indexes.key_function(ix.expr, db._budget) end
  local fn = db._index_fns[tenant .. "\0" .. entry .. "\0" .. name]
  if not fn then
    raise("invalid_argument", "index '%s' of entry '%s' is kept by a function: call db:create_index "
      .. "for it in this process before writing to the entry", name, entry)
  end
  return fn
end

-- The tree handle of an index. An index built or changed by this plan keeps
-- its handle: its new pieces are pending there (unwritten) until commit
-- flushes them, once, from the final root.
local function index_tree(db, tenant, ix)
  if not ix.tree then ix.tree = collection.tree(db._store, tenant, db._nodes) end
  return ix.tree
end

--- Builds an index over every record of the collection (written later).
function upkeep.build(db, tenant, t, state, name, keyfn, ctx)
  local items = {}
  for k, v in collection.range(t, state.root, { ctx = ctx }) do
    indexes.diff(items, name, keyfn, k, nil, v, false, true)
  end
  local keys = {}
  for k in pairs(items) do keys[#keys + 1] = k end
  table.sort(keys)
  local vals = {}
  for i, k in ipairs(keys) do vals[i] = items[k] end
  local ti = collection.tree(db._store, tenant, db._nodes)
  local root = collection.build(ti, keys, vals)
  return { root = root, count = #keys, tree = ti }
end

--- Record keys whose TTL field is before now, from the TTL index.
function upkeep.expired_keys(db, tenant, state, now)
  local ix = state.indexes[indexes.TTL]
  if not ix or not ix.root then return {} end
  local t = index_tree(db, tenant, ix)
  local out = {}
  for composite in collection.iter(t, ix.root, "n") do
    local ik, key = indexes.split(composite)
    if ik >= "n" .. indexes.sortable_number(now) or ik:sub(1, 1) ~= "n" then break end
    out[#out + 1] = key
  end
  return out
end

--- Applies the record changes made ({key = {old=, new=}}) to every index
-- of state (in memory: written by the commit's flush).
function upkeep.reindex(db, tenant, entry, state, made, ctx)
  for name, ix in pairs(state.indexes) do
    local keyfn = upkeep.key_function(db, tenant, entry, name, ix)
    local ichanges = {}
    for k, m in pairs(made) do
      local ov = m.old and core.decode(m.old, ctx)
      local nv = m.new and core.decode(m.new, ctx)
      indexes.diff(ichanges, name, keyfn, k, ov, nv, m.old ~= nil, m.new ~= nil)
    end
    if next(ichanges) then
      local root, delta = collection.update_many(index_tree(db, tenant, ix), ix.root, ix.count, ichanges)
      ix.root, ix.count = root, ix.count + delta
    end
  end
end

return upkeep
