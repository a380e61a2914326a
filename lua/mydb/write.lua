--- mydb.write: every write goes through one commit.
--
-- A write is a plan: per entry of one tenant, what to do to it.
--   { save = vjson }                         a new snapshot version
--   { records = {key = raw | false}, ttl =, index_ops = {...} }
--                                            record changes (false deletes),
--                                            TTL field, index creation/drop
--   { drop = true }                          remove the entry from the head
--   { adopt = digest }                       the head becomes an existing
--                                            version (a merge taking the
--                                            other side's version whole)
-- A save or records plan may hold resolver = name | false (the entry's
-- stored merge resolver, mydb.merge; alone on a snapshot entry it re-saves
-- the value) and merge_parent = digest (the version written gets
-- __parent__ = {current, merge_parent}).
-- A records plan may hold made_keys = true (db:put_many): the result's
-- made then maps each changed key to true when no index or listener needs
-- the record's values before and after (mydb.plan).
-- A save or records plan may also hold fresh = true (a batch that dropped
-- the entry, then wrote to it): it starts a new chain, as after db:drop.
-- commit() takes the tenant's lock, reads each entry's head, builds the new
-- versions, writes refs, pieces and snapshots, and moves every touched head
-- in ONE journal line: readers see all of it or none of it, even across a
-- crash. Nothing is written when anything fails before that line.
local core = require "mydb.core"
local errors = require "mydb.errors"
local collection = require "mydb.collection"
local plan = require "mydb.plan"
local branch = require "mydb.branch"
local commits = require "mydb.commits"

local raise = errors.raise
local NO_EVENTS = {} -- (what a commit with no listener returns: never written)
local NONE = {} -- (a collection's indexes when it has none: never written)

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
local now_date = commits.date

local function snapshot_bytes(vjson, parent, user, resolver)
  return core.snapshot_bytes(vjson, parent, user, now_date(), resolver)
end

--- The stored merge resolver of a snapshot version (nil: none): the
-- metadata key after __parent__ (names are [%w_.-]: no escapes).
function write.snapshot_resolver(bytes)
  return bytes:match('^{"__date__":"[^"]*","__parent__":%[[^%]]*%],"__resolver__":"([^"]*)"')
end

-- (a collection's state: count, root, ttl, resolver, indexes - plan.lua's
-- state fields - passed one by one, as a put has no state table)
local function collection_bytes(count, ttl, resolver, indexes, root_bytes, parent, user)
  local idx
  if next(indexes) then
    local t = {}
    for name, ix in pairs(indexes) do
      t[name] = { count = ix.count, expr = ix.expr, root = ix.root }
    end
    idx = core.encode(t)
  end
  return core.collection_bytes(count, idx, root_bytes, ttl, parent, user, now_date(), resolver)
end

-- ----------------------------------------------------------------- commit

-- The events of a collection entry's changes, in key order.
local function record_events(events, tenant, entry, user, made)
  local keys
  local k1 = next(made)
  if k1 ~= nil and next(made, k1) == nil then
    keys = { k1 } -- (one put: nothing to sort)
  else
    keys = {}
    for k in pairs(made) do keys[#keys + 1] = k end
    table.sort(keys)
  end
  for _, k in ipairs(keys) do
    local m = made[k]
    events[#events + 1] = {
      action = m.expired and "expire" or (m.new and "put" or "delete"),
      tenant = tenant, entry = entry, key = k, user_id = user,
      old_raw = m.old, new_raw = m.new,
    }
  end
end

-- Plans one entry under the lock: adds what to write to staged and what
-- to tell to events (nil: no listener) and the entry's result to
-- results; nothing is written yet.
local function stage_entry(db, line, tenant, user, entry, p, ctx, staged, events, results)
  local store = db._store
  local parent = line:version(entry)
  local dropped = p.fresh and parent or nil
  if dropped then
    if events then
      events[#events + 1] = { action = "drop", tenant = tenant, entry = entry,
                              old_digest = parent, user_id = user }
    end
    parent = nil
  end
  -- (a record write to a collection version this handle knows - it wrote
  -- or parsed it: mydb.colinfo - needs no read of its bytes)
  local known = parent and p.records and not p.save and db:_known_collection_info(tenant, parent)
  local parent_bytes = parent and not known and store:read(tenant, parent)
  -- (the fields set later named here: the table is made with room for them)
  results[entry] = { written = false, made = nil, digest = nil, info = nil }
  -- a merge's version names both sides (doc/FORMAT.md "Snapshots")
  local meta_parent = (parent and p.merge_parent) and { parent, p.merge_parent } or parent
  if p.resolver ~= nil and not p.save and not p.records and parent_bytes
      and not write.is_collection(parent_bytes) then
    -- a snapshot entry's stored resolver changes: the same value again
    local value = core.decode_snapshot(parent_bytes, ctx)
    p.save = core.encode(value, ctx)
  end
  if p.adopt then
    if p.adopt ~= parent then
      staged[#staged + 1] = { entry = entry, adopt = p.adopt }
    end
  elseif p.drop then
    if parent then
      staged[#staged + 1] = { entry = entry, drop = true }
      if events then
        events[#events + 1] = { action = "drop", tenant = tenant, entry = entry,
                                old_digest = parent, user_id = user }
      end
    end
  elseif p.save then
    if parent_bytes and write.is_collection(parent_bytes) then write.mismatch(entry, true) end
    local resolver = p.resolver
    if resolver == nil then resolver = parent_bytes and write.snapshot_resolver(parent_bytes) end
    staged[#staged + 1] = { entry = entry, bytes = snapshot_bytes(p.save, meta_parent, user, resolver or nil) }
    if events then
      events[#events + 1] = { action = "save", tenant = tenant, entry = entry, user_id = user,
                              old_bytes = parent_bytes, new_json = p.save }
    end
  else
    if parent_bytes and not write.is_collection(parent_bytes) then write.mismatch(entry, false) end
    local state, made = plan.collection(db, tenant, entry, parent, p, ctx)
    if state then
      staged[#staged + 1] = { entry = entry, state = state, parent = meta_parent, bytes = nil, info = nil }
      results[entry].made = made
      if events then record_events(events, tenant, entry, user, made) end
    end
  end
  if dropped and not (staged[#staged] and staged[#staged].entry == entry) then
    staged[#staged + 1] = { entry = entry, drop = true } -- the writes changed nothing
  end
end

-- What mydb.colinfo would parse from the snapshot of state, known without
-- parsing it (nil when the node of a root the snapshot embeds is not at
-- hand; a stored root, root_bytes '"<digest>"', needs none): the caller
-- keeps it, so the next call does not read and parse the snapshot.
local function built_info(count, root, ttl, resolver, indexes, root_bytes, root_node)
  if root and not root_node and root_bytes:byte(1) ~= 34 then return nil end -- '"'
  local ixs = NONE
  if next(indexes) then
    ixs = {}
    for name, ix in pairs(indexes) do ixs[name] = { count = ix.count, expr = ix.expr, root = ix.root } end
  end
  return { count = count, root = root, node = root_node, root_bytes = root_bytes,
           ttl = ttl, resolver = resolver, indexes = ixs }
end

-- Writes refs, pieces and snapshots (content-addressed: harmless if the
-- commit never happens); returns the head changes {{entry, digest|false}}.
local function write_objects(store, tenant, user, staged, results, ctx)
  for digest, bytes in pairs(ctx.pending) do store:write(nil, bytes, digest) end
  local changes = {}
  for i, s in ipairs(staged) do
    local digest = false
    local st = s.state
    if st then
      for _, ix in pairs(st.indexes) do
        if ix.tree then collection.flush_stored(ix.tree, ix.root) end
      end
      local root_bytes, root_node, root = collection.flush(st.tree, st.root)
      st.root = root
      s.bytes = collection_bytes(st.count, st.ttl, st.resolver, st.indexes, root_bytes, s.parent, user)
      s.info = built_info(st.count, root, st.ttl, st.resolver, st.indexes, root_bytes, root_node)
    end
    -- (a collection's snapshot is not offered to the object cache: what the
    -- next write needs of it is s.info, which mydb.colinfo keeps)
    if s.bytes then digest = store:write(tenant, s.bytes, nil, nil, not s.state) end
    if s.adopt then digest = s.adopt end
    changes[i] = { s.entry, digest }
    results[s.entry].written = true
    if digest then results[s.entry].digest, results[s.entry].info = digest, s.info end
  end
  return changes
end

-- Moves the heads in one journal line, which releases the lock, then waits
-- for durability. The contract: a write returns (durable with fsync on),
-- or raises and is not visible; or, when only the sync after it failed,
-- raises io with committed = true: visible, durability unknown (after a
-- failed fsync the kernel may have dropped the pages: never claimed
-- again). Returns that error (nil: durable); raises any other.
local function publish(lock, heads)
  local ok, err = pcall(lock.commit, lock, heads, true)
  if ok then return nil end
  if errors.is(err, "io") and tostring(err.message):find("committed but not durable", 1, true) then
    err.committed = true
    return err
  end
  error(err, 0)
end

-- write.commit's work, the lock held and the branch open.
local function commit_locked(db, lock, line, tenant, user, entry_plans, ctx, opts)
  local store = db._store
  local entries
  local e1 = next(entry_plans)
  if e1 ~= nil and next(entry_plans, e1) == nil then
    entries = e1 -- (one entry, as every put: no list to sort)
  else
    entries = {}
    for entry in pairs(entry_plans) do entries[#entries + 1] = entry end
    table.sort(entries)
  end
  if opts and opts.expect_tip ~= nil then
    local tip = line:tip()
    if (tip and tip.id or false) ~= opts.expect_tip then
      local err = errors.new("conflict", "the branch moved while the merge was planned")
      err.moved = true
      error(err, 0)
    end
  end
  -- (the events are for on_change listeners: none, no events built)
  local results, staged, events = {}, {}, #db._listeners > 0 and {} or nil
  -- 1. Plan every entry: any error leaves the store as it was.
  if type(entries) == "string" then
    stage_entry(db, line, tenant, user, entries, entry_plans[entries], ctx, staged, events, results)
  else
    for _, entry in ipairs(entries) do
      stage_entry(db, line, tenant, user, entry, entry_plans[entry], ctx, staged, events, results)
    end
  end
  events = events or NO_EVENTS
  if #staged == 0 and not (opts and opts.parents) then return results, NO_EVENTS end
  -- 2. Objects. 3. One journal line moves every touched head; it releases
  -- the lock, then waits for durability.
  local changes = write_objects(store, tenant, user, staged, results, ctx)
  -- 4. The tenant commit: one object (and its state's path) more.
  local commit_id, heads = line:commit(changes, user, opts and opts.message, opts and opts.parents)
  if opts and opts.out then opts.out.commit = commit_id end
  local err = publish(lock, heads)
  for _, ev in ipairs(events) do
    if ev.action ~= "drop" then ev.digest = results[ev.entry].digest end
    ev.commit = commit_id
  end
  if err then err.results, err.commit = results, commit_id end
  return results, events, err
end

--- Applies a plan ({entry = p}) for one tenant as one commit on the
-- handle's current branch (opts.message: the commit's message). Returns
-- {entry = {digest=, made=, written=}} and the events to emit.
-- For mydb.merge: opts.parents, the commit's parents after the branch's
-- tip (the commit is made even when no entry changes); opts.expect_tip, the
-- tip the plan was made against (false: none): if the branch moved since,
-- raises conflict with err.moved = true and writes nothing; opts.out, a
-- table that gets the commit's id (commit).
function write.commit(db, tenant, user, entry_plans, ctx, opts)
  local lock <close> = db._store:lock(tenant)
  return commit_locked(db, lock, branch.open(db, lock, tenant), tenant, user, entry_plans, ctx, opts)
end

--- A put of one record: one commit, the lock taken once. When nothing
-- else needs planning - no on_change listener, no TTL field (the
-- collection's or the handle's to adopt), no index, no ref to write with
-- the value, and a collection version this handle knows (mydb.colinfo: it
-- wrote or parsed it) - the commit is write.commit's for
-- { [entry] = { records = { [key] = raw } } }, the same objects and
-- digests, without its plan, staging and result tables (a put's Lua
-- allocations and instructions: doc/design/put-path.md). Returns whether
-- the record changed, the new version's digest and its info for
-- mydb.colinfo (nil: none to keep), and the io error of a commit that is
-- visible but not durable; or, when the put needed the whole plan, nil
-- and what write.commit returns (results, events, that error).
function write.put(db, tenant, user, entry, key, raw, ctx, opts)
  local store = db._store
  -- (the store's spare lock: released before this returns, whatever happens)
  local lock <close> = store:lock(tenant, true)
  local line = branch.open_kept(db, lock, tenant)
  local parent = line:version(entry)
  local info = parent and db:_known_collection_info(tenant, parent)
  if not info or info.ttl or next(info.indexes) or #db._listeners > 0 or db._ttl_field
      or next(ctx.pending) then
    -- (a line of its own: the whole plan may run caller code - an index's
    -- key function - which could put again through the kept one)
    return nil, commit_locked(db, lock, branch.open(db, lock, tenant), tenant, user,
      { [entry] = { records = { [key] = raw } } }, ctx, opts)
  end
  local t = db:_write_tree(tenant, entry, info)
  local delta, root_bytes, root_node, stored = collection.update_flush(t, info.root, key, raw)
  if not delta then return false end
  local count, resolver = info.count + delta, info.resolver
  local digest = store:write(tenant,
    collection_bytes(count, nil, resolver, NONE, root_bytes, parent, user), nil, nil, false)
  local commit_id, heads = line:commit_one(entry, digest, user, opts and opts.message)
  local err = publish(lock, heads)
  if err then err.commit = commit_id end
  return true, digest, built_info(count, stored, nil, resolver, NONE, root_bytes, root_node), err
end

return write
