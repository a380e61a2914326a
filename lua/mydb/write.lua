--- mydb.write: every write goes through one commit.
--
-- A write is a plan: per entry of one tenant, what to do to it.
--   { save = vjson }                         a new snapshot version
--   { records = {key = raw | false}, ttl =, index_ops = {...} }
--                                            record changes (false deletes),
--                                            TTL field, index creation/drop
--   { drop = true }                          remove the entry from the head
-- A save or records plan may also hold fresh = true (a batch that dropped
-- the entry, then wrote to it): it starts a new chain, as after db:drop.
-- commit() takes the tenant's lock, reads each entry's head, builds the new
-- versions, writes refs, pieces and snapshots, and moves every touched head
-- in ONE journal line: readers see all of it or none of it, even across a
-- crash. Nothing is written when anything fails before that line.
local core = require "mydb.core"
local errors = require "mydb.errors"
local collection = require "mydb.collection"
local indexes = require "mydb.indexes"

local raise = errors.raise

local write = {}

local COLLECTION_PREFIX = '{"__collection__":'
function write.is_collection(bytes) return bytes:sub(1, #COLLECTION_PREFIX) == COLLECTION_PREFIX end

function write.mismatch(entry, is_coll)
  if is_coll then
    raise("type_mismatch", "entry '%s' is a record collection: use put/put_many/get, not save/load", entry)
  end
  raise("type_mismatch", "entry '%s' holds a snapshot: use save/load, not put/put_many/get", entry)
end

-- The snapshot bytes are built by the codec (src/lua/lcodec.c, the one
-- owner of the snapshot format: doc/FORMAT.md "Snapshots").
local function now_date() return os.date("%Y%m%d %H:%M:%S %z") end

local function snapshot_bytes(vjson, parent, user)
  return core.snapshot_bytes(vjson, parent, user, now_date())
end

local function collection_bytes(state, root_bytes, parent, user)
  local idx
  if next(state.indexes) then
    local t = {}
    for name, ix in pairs(state.indexes) do
      t[name] = { count = ix.count, expr = ix.expr, root = ix.root }
    end
    idx = core.encode(t)
  end
  return core.collection_bytes(state.count, idx, root_bytes, state.ttl, parent, user, now_date())
end

-- ------------------------------------------------------------ collections

-- The index key function of an index, from its stored expression or the
-- function registered with this handle.
local function key_function(db, tenant, entry, name, ix)
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

-- Applies record changes to an index tree (written later, by flush).
local function update_index(db, tenant, ix, ichanges)
  if not next(ichanges) then return end
  local t = index_tree(db, tenant, ix)
  local root, delta = collection.update_many(t, ix.root, ix.count, ichanges)
  ix.root, ix.count = root, ix.count + delta
end

-- Builds an index over every record of the collection (written later).
local function build_index(db, tenant, t, state, name, keyfn, ctx)
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

-- Record keys whose TTL field is before now, from the TTL index.
local function expired_keys(db, tenant, state, now)
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

-- Plans one collection entry: returns the new state and the record changes
-- made ({key = {old = raw|nil, new = raw|nil, expired = bool}}), or nil
-- when nothing changes.
local function plan_collection(db, tenant, entry, parent, p, ctx)
  local info = parent and db:_collection_info(tenant, entry, parent)
  local state = {
    count = info and info.count or 0, root = info and info.root,
    ttl = info and info.ttl, indexes = {},
  }
  for name, ix in pairs(info and info.indexes or {}) do
    state.indexes[name] = { count = ix.count, expr = ix.expr, root = ix.root }
  end
  local t = db:_tree(tenant, info)
  local meta_changed = false

  -- TTL field: set or cleared (explicitly, or by the handle's ttl_field).
  -- The handle's field is adopted by a write that writes anyway: alone it
  -- is no reason for a version (an unchanged put stays a no-op).
  local ttl = p.ttl
  local adopted = false
  if ttl == nil and state.ttl == nil and db._ttl_field and (p.records or p.index_ops) then
    ttl, adopted = db._ttl_field, true
  end
  if ttl ~= nil and (ttl or nil) ~= state.ttl then
    state.ttl = ttl or nil
    state.indexes[indexes.TTL] = nil
    if state.ttl then
      local ix = { field = state.ttl }
      local built = build_index(db, tenant, t, state, indexes.TTL,
        key_function(db, tenant, entry, indexes.TTL, ix), ctx)
      built.field = state.ttl
      state.indexes[indexes.TTL] = built
    end
    meta_changed = not adopted
  end
  if state.indexes[indexes.TTL] then state.indexes[indexes.TTL].field = state.ttl end

  -- Index creation and removal.
  for _, op in ipairs(p.index_ops or {}) do
    if op.drop then
      if state.indexes[op.name] then state.indexes[op.name] = nil; meta_changed = true end
    else
      local ix = state.indexes[op.name]
      -- A function index is rebuilt too: the function given may differ
      -- from the one the index was built with (same entries: no change).
      if not ix or ix.expr ~= op.expr or op.fn then
        local built = build_index(db, tenant, t, state, op.name,
          indexes.key_function(op.expr or op.fn, db._budget), ctx)
        built.expr = op.expr
        if not ix or ix.expr ~= built.expr or ix.root ~= built.root then
          state.indexes[op.name] = built
          meta_changed = true
        end
      end
    end
  end

  -- Record changes, plus the records whose TTL has passed.
  local changes = {}
  for k, v in pairs(p.records or {}) do changes[k] = v end
  local expired = {}
  if state.ttl then
    for _, k in ipairs(expired_keys(db, tenant, state, db:_now())) do
      if changes[k] == nil then changes[k] = false; expired[k] = true end
    end
  end
  local eff, n, made = {}, 0, {}
  for k, v in pairs(changes) do
    local old = collection.get(t, state.root, k)
    if (v and old ~= v) or (not v and old ~= nil) then
      eff[k] = v
      n = n + 1
      made[k] = { old = old, new = v or nil, expired = expired[k] or false }
    end
  end
  if n == 0 and not meta_changed then return nil end

  if n > 0 then
    -- Keep every index in step with the records.
    for name, ix in pairs(state.indexes) do
      local keyfn = key_function(db, tenant, entry, name, ix)
      local ichanges = {}
      for k, m in pairs(made) do
        local ov = m.old and core.decode(m.old, ctx)
        local nv = m.new and core.decode(m.new, ctx)
        indexes.diff(ichanges, name, keyfn, k, ov, nv, m.old ~= nil, m.new ~= nil)
      end
      update_index(db, tenant, ix, ichanges)
    end
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

-- ----------------------------------------------------------------- commit

--- Applies a plan ({entry = p}) for one tenant as one commit. Returns
-- {entry = {digest=, made=, written=}} and the events to emit.
function write.commit(db, tenant, user, plan, ctx)
  local store = db._store
  local entries = {}
  for entry in pairs(plan) do entries[#entries + 1] = entry end
  table.sort(entries)
  local lock <close> = store:lock(tenant)
  local results, staged, events = {}, {}, {}

  -- 1. Plan every entry; nothing is written yet, so any error leaves the
  --    store as it was.
  for _, entry in ipairs(entries) do
    local p = plan[entry]
    local parent = lock:head(entry)
    local dropped = p.fresh and parent or nil
    if dropped then
      events[#events + 1] = { action = "drop", tenant = tenant, entry = entry, old_digest = parent,
                              user_id = user }
      parent = nil
    end
    local parent_bytes = parent and store:read(tenant, parent)
    results[entry] = { written = false }
    if p.drop then
      if parent then
        staged[#staged + 1] = { entry = entry, drop = true }
        events[#events + 1] = { action = "drop", tenant = tenant, entry = entry, old_digest = parent,
                                user_id = user }
      end
    elseif p.save then
      if parent_bytes and write.is_collection(parent_bytes) then write.mismatch(entry, true) end
      staged[#staged + 1] = { entry = entry, bytes = snapshot_bytes(p.save, parent, user) }
      events[#events + 1] = { action = "save", tenant = tenant, entry = entry, user_id = user,
                              old_bytes = parent_bytes, new_json = p.save }
    else
      if parent_bytes and not write.is_collection(parent_bytes) then write.mismatch(entry, false) end
      local state, made = plan_collection(db, tenant, entry, parent, p, ctx)
      if state then
        staged[#staged + 1] = { entry = entry, state = state, parent = parent }
        results[entry].made = made
        local keys = {}
        for k in pairs(made) do keys[#keys + 1] = k end
        table.sort(keys)
        for _, k in ipairs(keys) do
          local m = made[k]
          events[#events + 1] = {
            action = m.expired and "expire" or (m.new and "put" or "delete"),
            tenant = tenant, entry = entry, key = k, user_id = user,
            old_raw = m.old, new_raw = m.new,
          }
        end
      end
    end
    if dropped and not (staged[#staged] and staged[#staged].entry == entry) then
      staged[#staged + 1] = { entry = entry, drop = true } -- the writes changed nothing
    end
  end
  if #staged == 0 then return results, {} end

  -- 2. Write refs, pieces and snapshots (content-addressed: harmless if
  --    the commit below never happens).
  for _, bytes in pairs(ctx.pending) do store:write(nil, bytes) end
  local changes = {}
  for i, s in ipairs(staged) do
    local digest = false
    if s.state then
      for _, ix in pairs(s.state.indexes) do
        if ix.tree then collection.flush(ix.tree, ix.root, true) end
      end
      local root_bytes = collection.flush(s.state.tree, s.state.root)
      s.bytes = collection_bytes(s.state, root_bytes, s.parent, user)
    end
    if s.bytes then digest = store:write(tenant, s.bytes) end
    changes[i] = { s.entry, digest }
    results[s.entry].written = true
    if digest then results[s.entry].digest = digest end
  end

  -- 3. One journal line moves every touched head.
  -- releases the lock, then waits for durability
  local ok, err = pcall(lock.commit, lock, changes, true)
  for _, ev in ipairs(events) do
    if ev.action ~= "drop" then ev.digest = results[ev.entry].digest end
  end
  if not ok then
    -- The contract: a write returns (durable with fsync on), or raises and
    -- is not visible; or, when only the sync after it failed, raises io
    -- with committed = true: visible, durability unknown (after a failed
    -- fsync the kernel may have dropped the pages: never claimed again).
    if errors.is(err, "io") and tostring(err.message):find("committed but not durable", 1, true) then
      err.committed, err.results = true, results
      return results, events, err
    end
    error(err, 0)
  end
  return results, events
end

return write
