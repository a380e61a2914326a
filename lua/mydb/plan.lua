--- mydb.plan: planning the new version of one record collection in a
-- write - its TTL field, index creation and removal, the record changes
-- that are real (an equal put is none), the records whose TTL has passed,
-- and the new tree (pieces pending in memory until the commit flushes).
local collection = require "mydb.collection"
local indexes = require "mydb.indexes"
local upkeep = require "mydb.upkeep"

local plan = {}

-- The state of the collection version info (nil: a new collection).
local function state_of(info)
  local state = {
    count = info and info.count or 0, root = info and info.root,
    ttl = info and info.ttl, resolver = info and info.resolver, indexes = {},
    tree = nil, -- (set by plan.collection: named for the table's room)
  }
  if info then
    for name, ix in pairs(info.indexes) do
      state.indexes[name] = { count = ix.count, expr = ix.expr, root = ix.root }
    end
  end
  return state
end

-- TTL field: set or cleared (explicitly, or by the handle's ttl_field).
-- The handle's field is adopted by a write that writes anyway: alone it is
-- no reason for a version (an unchanged put stays a no-op). Returns
-- whether the collection's metadata changed.
local function plan_ttl(db, tenant, entry, t, state, p, ctx)
  local ttl, adopted, changed = p.ttl, false, false
  if ttl == nil and state.ttl == nil and db._ttl_field and (p.records or p.index_ops) then
    ttl, adopted = db._ttl_field, true
  end
  if ttl ~= nil and (ttl or nil) ~= state.ttl then
    state.ttl = ttl or nil
    state.indexes[indexes.TTL] = nil
    if state.ttl then
      local ix = { field = state.ttl }
      local built = upkeep.build(db, tenant, t, state, indexes.TTL,
        upkeep.key_function(db, tenant, entry, indexes.TTL, ix), ctx)
      built.field = state.ttl
      state.indexes[indexes.TTL] = built
    end
    changed = not adopted
  end
  if state.indexes[indexes.TTL] then state.indexes[indexes.TTL].field = state.ttl end
  return changed
end

-- Index creation and removal; returns whether the metadata changed.
local function plan_index_ops(db, tenant, t, state, p, ctx)
  local changed = false
  if not p.index_ops then return false end
  for _, op in ipairs(p.index_ops) do
    if op.drop then
      if state.indexes[op.name] then state.indexes[op.name] = nil; changed = true end
    else
      local ix = state.indexes[op.name]
      -- A function index is rebuilt too: the function given may differ
      -- from the one the index was built with (same entries: no change).
      if not ix or ix.expr ~= op.expr or op.fn then
        local built = upkeep.build(db, tenant, t, state, op.name,
          indexes.key_function(op.expr or op.fn, db._budget), ctx)
        built.expr = op.expr
        if not ix or ix.expr ~= built.expr or ix.root ~= built.root then
          state.indexes[op.name] = built
          changed = true
        end
      end
    end
  end
  return changed
end

-- The record changes that change something: eff {key = raw|false}, their
-- count, and made {key = {old=, new=, expired=}} (or {key = true}: below).
local function effective_changes(db, tenant, t, state, p)
  local changes, expired, total = p.records or {}, {}, 0
  if state.ttl then
    local all = {}
    for k, v in pairs(changes) do all[k] = v end
    for _, k in ipairs(upkeep.expired_keys(db, tenant, state, db:_now())) do
      if all[k] == nil then all[k] = false; expired[k] = true end
    end
    changes = all
  end
  -- p.made_keys (put_many): made[k] = true is all the caller reads, when
  -- no index and no listener needs what a record was and became
  local light = p.made_keys and not next(state.indexes) and #db._listeners == 0
  local n, made = 0, {}
  for k, v in pairs(changes) do
    total = total + 1
    local old = collection.get(t, state.root, k)
    if (v and old ~= v) or (not v and old ~= nil) then
      n = n + 1
      made[k] = light or { old = old, new = v or nil, expired = expired[k] or false }
    end
  end
  -- (every change real, as in a load of new records: no copy of them)
  if n == total then return changes, n, made end
  local eff = {}
  for k in pairs(made) do eff[k] = changes[k] end
  return eff, n, made
end

-- The key of a plan's only record change when the collection has neither
-- a TTL field nor an index (nothing to expire or reindex), else nil.
local function single_change(state, p)
  local recs = p.records
  if not recs or state.ttl or next(state.indexes) then return nil end
  local k = next(recs)
  if k == nil or next(recs, k) ~= nil then return nil end
  return k
end

-- Whether a plan's record changes need no look-up before the update: a
-- put_many (made_keys) into a collection with neither a TTL field (nothing
-- to expire) nor an index (nothing to reindex), with no listener (no
-- events): all it reports is whether any record changed, which the tree's
-- update tells.
local function blind_many(db, state, p)
  return p.made_keys and p.records and not state.ttl and not next(state.indexes)
    and #db._listeners == 0
end

--- Plans one collection entry: returns the new state and the record
-- changes made ({key = {old = raw|nil, new = raw|nil, expired = bool}}; for
-- a put_many without TTL field, index or listener: true when any record
-- changed), or nil when nothing changes.
function plan.collection(db, tenant, entry, parent, p, ctx)
  local info = parent and db:_collection_info(tenant, entry, parent)
  local state = state_of(info)
  local t = db:_write_tree(tenant, entry, info)
  local meta_changed = plan_ttl(db, tenant, entry, t, state, p, ctx)
  if p.resolver ~= nil and (p.resolver or nil) ~= state.resolver then -- (mydb.merge)
    state.resolver = p.resolver or nil
    meta_changed = true
  end
  meta_changed = plan_index_ops(db, tenant, t, state, p, ctx) or meta_changed
  local one = single_change(state, p)
  if one then
    -- One record, no TTL field, no index: the update itself tells whether
    -- it changed anything and what it replaced (no descent to look first).
    local v = p.records[one]
    local root, delta, old = collection.update(t, state.root, one, v or nil)
    if not delta and not meta_changed then return nil end
    local made = {}
    if delta then
      state.root, state.count = root, state.count + delta
      -- (what a put replaced is for on_change listeners only; db:delete
      -- reads what it removed)
      made[one] = (v and #db._listeners == 0) or { old = old, new = v or nil, expired = false }
    end
    state.tree = t
    return state, made
  end
  if blind_many(db, state, p) then
    -- (one descent a record saved: the update skips equal values itself)
    local root, delta, changed = collection.update_many(t, state.root, state.count, p.records)
    if not changed and not meta_changed then return nil end
    if changed then state.root, state.count = root, state.count + delta end
    state.tree = t
    return state, changed or {}
  end
  local eff, n, made = effective_changes(db, tenant, t, state, p)
  if n == 0 and not meta_changed then return nil end
  if n > 0 then
    upkeep.reindex(db, tenant, entry, state, made, ctx)
    local root, delta
    if n == 1 then
      local k, v = next(eff)
      root, delta = collection.update(t, state.root, k, v or nil)
    else
      root, delta = collection.update_many(t, state.root, state.count, eff)
    end
    state.root, state.count = root, state.count + delta
  end
  state.tree = t
  return state, made
end

return plan
