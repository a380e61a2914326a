--- mydb.gc: garbage collection and repacking (db:gc, db:repack).
--
-- gc removes the objects and refs that no head reaches any more: it marks
-- from every head through parents (history), collection pieces (the root
-- piece embedded in a snapshot, inner pieces stored as objects), index
-- roots (__collection__.indexes[*].root) and the refs named by "__ref__"
-- and "__digest__" in any reachable object or ref; then the core sweeps.
--
-- Safe while other processes read and write:
--   1. the core records a mark per tenant (and the refs) first: whatever is
--      stored after it is kept, so an object written while gc runs is never
--      removed;
--   2. marking reads the heads and walks without any lock;
--   3. then gc takes the tenant lock (for the whole store: every tenant's,
--      in name order, tenants created meanwhile included), marks again from
--      the heads that changed since step 2 (a writer holds the tenant lock
--      while it writes its objects and commits, so nothing is in flight),
--      and sweeps under the lock. Refs are shared: they are swept only by a
--      gc of the whole store, with every tenant locked.
-- A reachable object that cannot be read or parsed stops gc before anything
-- is removed (its links are unknown): run db:verify().
local core = require "mydb.core"
local errors = require "mydb.errors"
local collection = require "mydb.collection"
local commits = require "mydb.commits"
local refnames = require "mydb.refs"

local gc = {}

local DIGEST = ("%x"):rep(64)
local now = core.monotonic

-- ------------------------------------------------------------- progress

-- The one-line progress bar on stderr (mydb.progress: a terminal, or
-- MYDB_PROGRESS=1).
local progress_bar = require("mydb.progress").bar

-- ------------------------------------------------------------------ links

-- Digests an object (or ref) names: same-tenant objects (parent, pieces,
-- index roots) into kids, refs into refs; the digest of an embedded root
-- piece (kept if some older layout stored it, absent otherwise) into
-- optional too.
local function links(bytes, where, kids, refs, optional)
  for d in bytes:gmatch('"__ref__":"(' .. DIGEST .. ')"') do refs[d] = true end
  for d in bytes:gmatch('"__digest__":"(' .. DIGEST .. ')"') do refs[d] = true end
  if kids == nil then return end
  if collection.is_piece(bytes) then
    local node = collection.parse_piece(where, bytes)
    if not node.leaf then
      for _, c in ipairs(node.digests) do kids[#kids + 1] = c end
    end
    return
  end
  if commits.is_commit(bytes) then
    -- its parents, its state tree, and the versions it set (every version
    -- a state names was set by the commit or by one of its ancestors)
    local c = core.decode(bytes)
    for _, p in ipairs(c.parents or {}) do kids[#kids + 1] = p end
    if c.state then kids[#kids + 1] = c.state end
    for _, v in pairs(c.entries or {}) do if v then kids[#kids + 1] = v end end
    return
  end
  if refnames.is_tag(bytes) then
    kids[#kids + 1] = core.decode(bytes).target
    return
  end
  local _, meta = core.decode_snapshot(bytes, nil, true)
  if meta.parent then kids[#kids + 1] = meta.parent end
  if meta.collection then
    local _, root_digest, root, extra, embedded = collection.parse_root(bytes, "root of " .. where)
    if root_digest then
      kids[#kids + 1] = root_digest
      -- (an embedded root is kept if some older layout stored it; a root
      -- named by its digest is an object like any piece)
      if embedded then optional[root_digest] = true end
    end
    if root and not root.leaf then
      for _, c in ipairs(root.digests) do kids[#kids + 1] = c end
    end
    for _, ix in pairs(type(extra.indexes) == "table" and extra.indexes or {}) do
      if type(ix) == "table" and core.digest_valid(ix.root) then kids[#kids + 1] = ix.root end
    end
  end
end

-- (mydb.sync walks the same links to send what another store lacks)
gc.links = links

local function stop(what, err)
  local msg = errors.is(err) and err.message or tostring(err)
  errors.raise("corrupt", "gc stopped before removing anything: %s: %s (run db:verify())", what, msg)
end

-- Marks everything reachable from the start digests in tenant t into
-- reach (same-tenant objects) and refs.
local function mark(store, t, start, reach, refs, optional, bar, counts)
  local stack = {}
  for i, d in ipairs(start) do stack[i] = d end
  while #stack > 0 do
    local d = table.remove(stack)
    if not reach[d] then
      local ok, bytes = pcall(store.read, store, t, d)
      if not ok then
        if not (errors.is(bytes) and bytes.code == "not_found" and optional[d]) then
          stop(("object %s of tenant '%s'"):format(d, t), bytes)
        end
      else
        reach[d] = true
        counts.marked = counts.marked + 1
        local kids = {}
        local ok2, err = pcall(links, bytes, d .. " of tenant '" .. t .. "'", kids, refs, optional)
        if not ok2 then stop(("object %s of tenant '%s'"):format(d, t), err) end
        for _, k in ipairs(kids) do stack[#stack + 1] = k end
        bar.update("marking " .. t, counts.marked)
      end
    end
  end
end

-- What a tenant's heads name: its entries' versions and its branches'
-- and tags' objects (refs under their NUL-prefixed head keys).
local function heads_of(store, t)
  local entries, heads = store:heads(t)
  local list = {}
  for i, e in ipairs(entries) do list[i] = heads[e] end
  for name, d in pairs(store:refs(t)) do
    list[#list + 1] = d
    heads["\0" .. name] = d
  end
  return list, heads
end

local function add(total, st)
  for k, v in pairs(st) do total[k] = (total[k] or 0) + v end
end

--- Runs gc on one tenant, or (tenant nil) on every tenant and the refs.
-- Returns a report: tenants, objects_marked, objects_removed, bytes_freed,
-- objects_kept, refs_removed, refs_bytes_freed, segments_removed,
-- segments_written (pack), seconds.
-- The tenant locks, every tenant's (or one's), until no new tenant shows
-- up; a tenant created while gc ran gets its mark now (all of it is new).
local function lock_all(store, g, locks)
  local locked = {}
  while true do
    local more = false
    for _, t in ipairs(g.tenant and { g.tenant } or store:tenants()) do
      if not locked[t] then
        locks[#locks + 1] = store:lock(t)
        locked[t] = true
        more = true
        if not g.marks[t] then
          g.marks[t] = { store:gc_begin(t) }
          g.tenants[#g.tenants + 1] = t
        end
      end
    end
    if not more then return end
  end
end

-- Under the locks: marks from the heads that moved since the first pass.
local function catch_up(store, g)
  for _, t in ipairs(g.tenants) do
    local list, heads = heads_of(store, t)
    local changed = {}
    local before = g.seen_heads[t] or {}
    for e, d in pairs(heads) do
      if before[e] ~= d then changed[#changed + 1] = d end
    end
    if #changed > 0 then g.mark_tenant(t, changed) end
    if not g.reach[t] then g.mark_tenant(t, list) end
  end
end

-- Refs name refs (ref documents): closes g.refs over them.
local function close_refs(store, refs)
  local stack = {}
  for d in pairs(refs) do stack[#stack + 1] = d end
  local done = {}
  while #stack > 0 do
    local d = table.remove(stack)
    if not done[d] then
      done[d] = true
      local okr, bytes = pcall(store.read, store, nil, d)
      if okr then
        local more = {}
        links(bytes, "ref " .. d, nil, more)
        for r in pairs(more) do
          refs[r] = true
          stack[#stack + 1] = r
        end
      elseif not (errors.is(bytes) and bytes.code == "not_found") then
        stop("ref " .. d, bytes)
      end
    end
  end
end

-- Sweeps every tenant, then (whole-store gc) the shared refs.
local function sweep(store, g, report)
  for i, t in ipairs(g.tenants) do
    local st = store:gc_sweep(t, g.marks[t][1], g.marks[t][2], g.reach[t])
    add(report, { objects_removed = st.objects_removed, bytes_freed = st.bytes_freed,
                  objects_kept = st.objects_kept, segments_removed = st.segments_removed,
                  segments_written = st.segments_written })
    report.tenants = report.tenants + 1
    g.bar.update("sweeping", i, #g.tenants)
  end
  if g.tenant then return end
  close_refs(store, g.refs)
  local st = store:gc_sweep(nil, g.refmark[1], g.refmark[2], g.refs)
  report.refs_removed = st.objects_removed
  report.refs_bytes_freed = st.bytes_freed
  report.segments_removed = report.segments_removed + st.segments_removed
  report.segments_written = report.segments_written + st.segments_written
end

function gc.run(db, tenant)
  local store = db._store
  local t0 = now()
  local g = { tenant = tenant, tenants = tenant and { tenant } or store:tenants(), marks = {},
              reach = {}, refs = {}, optional = {}, seen_heads = {}, bar = progress_bar("gc") }
  local counts = { marked = 0 }
  function g.mark_tenant(t, digests)
    g.reach[t] = g.reach[t] or {}
    g.optional[t] = g.optional[t] or {}
    mark(store, t, digests, g.reach[t], g.refs, g.optional[t], g.bar, counts)
  end
  -- 1. the marks: what is stored from here on is kept
  for _, t in ipairs(g.tenants) do g.marks[t] = { store:gc_begin(t) } end
  if not tenant then g.refmark = { store:gc_begin(nil) } end
  -- 2. mark without locks
  for _, t in ipairs(g.tenants) do
    local list, heads = heads_of(store, t)
    g.seen_heads[t] = heads
    g.mark_tenant(t, list)
  end
  -- 3. lock, catch up with what changed, sweep
  local locks = {}
  local report = { tenants = 0, objects_marked = 0, objects_removed = 0, bytes_freed = 0,
                   objects_kept = 0, refs_removed = 0, refs_bytes_freed = 0,
                   segments_removed = 0, segments_written = 0 }
  local ok, err = pcall(function()
    lock_all(store, g, locks)
    catch_up(store, g)
    sweep(store, g, report)
  end)
  for i = #locks, 1, -1 do locks[i]:release() end
  g.bar.done()
  if not ok then error(err, 0) end
  report.objects_marked = counts.marked
  report.seconds = now() - t0
  return report
end

--- Compacts the storage of one tenant, or of every tenant and the refs:
-- pack rewrites the live records into new segments and removes the old
-- ones; loose compacts the head journals. Each tenant under its lock.
function gc.repack(db, tenant)
  local store = db._store
  local t0 = now()
  local bar = progress_bar("repack")
  local tenants = tenant and { tenant } or store:tenants()
  local report = { tenants = 0, objects_kept = 0, bytes_freed = 0, bytes_kept = 0,
                   segments_removed = 0, segments_written = 0, records_dropped = 0 }
  local function take(st)
    for k in pairs(report) do
      if st[k] then report[k] = report[k] + st[k] end
    end
  end
  for i, t in ipairs(tenants) do
    local lock <close> = store:lock(t)
    take(store:repack(t))
    report.tenants = report.tenants + 1
    bar.update("", i, #tenants)
  end
  if not tenant then take(store:repack(nil)) end
  bar.done()
  report.seconds = now() - t0
  return report
end

return gc
