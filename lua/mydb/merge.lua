--- mydb.merge: three-way merges of a tenant's commits - db:merge,
-- db:revert, db:cherry_pick (README "Merge").
--
-- A merge of rev into the handle's branch finds the best common ancestor
-- (base) over the commit graph. When the branch's tip is that ancestor it
-- fast-forwards (unless opts.no_ff); when rev is, there is nothing to do.
-- Otherwise it plans, per entry that either side changed since base:
--   * one side changed it: that side's version (taken whole, no new one);
--   * both changed a collection: per record, from the two tree diffs from
--     base (mydb.treediff: O(changes), not O(size));
--   * both changed one record or snapshot value: per field while both
--     sides are maps (recursively), sequences and other values whole;
-- and what is left is a conflict, given to a resolver (opts.resolver, else
-- the entry's stored one: mydb.resolvers). The plan goes through the one
-- write path (mydb.write) as ONE commit with parents {tip, rev}, so
-- indexes and TTL are kept as by any write, and each version it writes
-- has __parent__ = {ours, theirs}. A conflict no resolver settles: raises
-- conflict with err.conflicts, writing nothing.
-- Revert and cherry-pick are the same three-way merge with base and
-- theirs the commit and its first parent (either order); one parent.
local core = require "mydb.core"
local errors = require "mydb.errors"
local collection = require "mydb.collection"
local commits = require "mydb.commits"
local refs = require "mydb.refs"
local branch = require "mydb.branch"
local write = require "mydb.write"
local indexes = require "mydb.indexes"
local treediff = require "mydb.treediff"
local resolvers = require "mydb.resolvers"
local serializer = require "mydb.serializer"
local changes = require "mydb.changes"

local raise = errors.raise

local merge = {}

local RETRIES = 5

-- ---------------------------------------------------------- merge base

local newer, heap_push, heap_pop = commits.newer, commits.heap_push, commits.heap_pop

--- True if commit x is y or an ancestor of y: a walk from y that stops
-- below x's time (a commit is never older than its parents).
function merge.is_ancestor(db, tenant, x, y)
  local stack, seen = { y }, {}
  while #stack > 0 do
    local c = table.remove(stack)
    if c.id == x.id then return true end
    if not seen[c.id] and c.time >= x.time then
      seen[c.id] = true
      for _, p in ipairs(c.parents) do stack[#stack + 1] = commits.read(db, tenant, p) end
    end
  end
  return false
end

local OURS, THEIRS, STALE = 1, 2, 4

--- The best common ancestor of commits a and b (nil: none): git's paint
-- down, newest first, from both; a commit reached from both is a common
-- ancestor and marks its own ancestors stale. Of several, those that are
-- ancestors of another are dropped; of the rest (a criss-cross) the newest.
function merge.base(db, tenant, a, b)
  if a.id == b.id then return a end
  local flags = { [a.id] = OURS }
  flags[b.id] = (flags[b.id] or 0) | THEIRS
  local heap, found = {}, {}
  heap_push(heap, a)
  heap_push(heap, b)
  local function active()
    for _, c in ipairs(heap) do if flags[c.id] & STALE == 0 then return true end end
    return false
  end
  while #heap > 0 and active() do
    local c = heap_pop(heap)
    local f = flags[c.id]
    if f & (OURS | THEIRS) == (OURS | THEIRS) and f & STALE == 0 then
      found[#found + 1] = c
      f = f | STALE
      flags[c.id] = f
    end
    for _, pid in ipairs(c.parents) do
      local pf = flags[pid] or 0
      if pf | f ~= pf then
        flags[pid] = pf | f
        heap_push(heap, commits.read(db, tenant, pid))
      end
    end
  end
  local best
  for i, c in ipairs(found) do
    local redundant = false
    for j, o in ipairs(found) do
      if i ~= j and o.id ~= c.id and merge.is_ancestor(db, tenant, c, o) then redundant = true; break end
    end
    if not redundant and (not best or newer(c, best)) then best = c end
  end
  return best
end

-- ------------------------------------------------------------- values

local canonical = serializer.canonical

local function same(a, b)
  if a == nil or b == nil then return a == nil and b == nil end
  if type(a) ~= type(b) then return false end
  if type(a) == "string" or type(a) == "boolean" then return a == b end
  return canonical(a) == canonical(b)
end

-- A map for the per-field merge: a plain table that is not a sequence.
local function is_map(v)
  return type(v) == "table" and getmetatable(v) == nil and v[1] == nil
end

local function key_list(...)
  local seen, keys = {}, {}
  for i = 1, select("#", ...) do
    for k in pairs(select(i, ...)) do
      if not seen[k] then seen[k] = true; keys[#keys + 1] = k end
    end
  end
  table.sort(keys, function(x, y)
    if type(x) ~= type(y) then return type(x) < type(y) end
    if type(x) == "boolean" then return not x and y end
    return x < y
  end)
  return keys
end

local function extend(path, k)
  local p = table.move(path, 1, #path, 1, {})
  p[#p + 1] = k
  return p
end

-- The merge of three values: equal sides, or one side unchanged from
-- base, need nothing; two maps merge per field; the rest is a conflict
-- for resolve(conflict) -> value (an unresolved one keeps ours for now).
local function merge_value(b, o, t, path, where, resolve)
  if same(o, t) then return o end
  if same(b, o) then return t end
  if same(b, t) then return o end
  if is_map(o) and is_map(t) and (b == nil or is_map(b)) then
    b = b or {}
    local out = {}
    for _, k in ipairs(key_list(b, o, t)) do
      out[k] = merge_value(b[k], o[k], t[k], extend(path, k), where, resolve)
    end
    return out
  end
  return resolve({ entry = where.entry, key = where.key, path = path, base = b, ours = o, theirs = t })
end

-- ------------------------------------------------------------- the plan

local function version_of(raw) return raw and raw:match('^%["(%x+)"') end

local function state_tree(db, tenant) return collection.tree(db._store, tenant, db._nodes) end

-- entry -> true for every entry whose version differs from commit x to y
-- (either may be nil: the empty tenant).
local function changed_entries(db, tenant, x, y, out)
  treediff.trees(state_tree(db, tenant), x and x.state, state_tree(db, tenant), y and y.state,
    function(name, old, new)
      if version_of(old) ~= version_of(new) then out[name] = true end
    end)
  return out
end

local function lookup(db, tenant, c, entry)
  if not c then return nil end
  return commits.lookup(db, tenant, c, entry)
end

-- The stored resolver name of a version (nil: none).
local function stored_resolver(db, tenant, entry, v)
  if not v then return nil end
  local bytes = db._store:read(tenant, v)
  if write.is_collection(bytes) then return db:_collection_info(tenant, entry, v).resolver end
  return write.snapshot_resolver(bytes)
end

-- The merge session: the resolver lookup and the conflicts it met.
local function session(db, tenant, opts)
  local s = { unresolved = {}, resolved = 0, fn = resolvers.lookup(opts.resolver, "opts.resolver") }
  -- what the resolver is told of an entry: the times of the commits that
  -- last changed it on each side, its stored resolver
  function s.resolve(c, info)
    c.ours_time, c.theirs_time = info.ours_time, info.theirs_time
    local fn = s.fn
    if not fn and info.stored then
      fn = resolvers.get(info.stored)
      if not fn then
        raise("invalid_argument", "entry '%s' is merged by resolver '%s', which this process has not registered",
          c.entry, info.stored)
      end
    end
    if not fn then
      s.unresolved[#s.unresolved + 1] = c
      return c.ours
    end
    local ok, v = pcall(fn, c)
    if not ok then
      raise("handler_error", "the resolver of entry '%s' failed: %s", c.entry, serializer.errtext(v))
    end
    s.resolved = s.resolved + 1
    return v
  end
  return s
end

local function entry_info(db, tenant, entry, s, vo, vt, byo, byt)
  local info = {
    ours_time = byo and commits.read(db, tenant, byo).time,
    theirs_time = byt and commits.read(db, tenant, byt).time,
  }
  -- the stored resolver of our version (theirs' when we dropped the entry)
  if not s.fn then info.stored = stored_resolver(db, tenant, entry, vo or vt) end
  return info
end

-- Both sides changed a snapshot entry (either may have dropped it).
local function merge_snapshot(db, tenant, entry, vb, vo, vt, info, s, ctx)
  local function value(v)
    if not v then return nil end
    return (core.decode_snapshot(db._store:read(tenant, v), ctx))
  end
  local o = value(vo)
  local where = { entry = entry }
  local merged = merge_value(value(vb), o, value(vt), {}, where, function(c) return s.resolve(c, info) end)
  if same(merged, o) then return nil, 0 end
  if merged == nil then return { drop = true }, 1 end
  return { save = core.encode(merged, ctx), merge_parent = vt }, 1
end

-- Collection metadata theirs changed and ours did not: TTL field, stored
-- resolver, expression (or registered function) indexes.
local function merge_meta(db, tenant, entry, ib, io, it, p)
  local function changed(f) return it[f] ~= (ib and ib[f]) and io[f] == (ib and ib[f]) end
  if changed("ttl") then p.ttl = it.ttl or false end
  if changed("resolver") then p.resolver = it.resolver or false end
  local bix = ib and ib.indexes or {}
  local ops = {}
  for _, name in ipairs(key_list(it.indexes, bix)) do
    if name ~= indexes.TTL then
      local x, b, o = it.indexes[name], bix[name], io.indexes[name]
      if x and not b and not o then
        local fn = db._index_fns[tenant .. "\0" .. entry .. "\0" .. name]
        if x.expr or fn then ops[#ops + 1] = { name = name, expr = x.expr, fn = not x.expr and fn or nil } end
      elseif b and not x and o and o.expr == b.expr then
        ops[#ops + 1] = { name = name, drop = true }
      end
    end
  end
  if #ops > 0 then p.index_ops = ops end
end

-- Both sides changed a collection: per record.
local function merge_collection(db, tenant, entry, vb, vo, vt, info, s, ctx)
  local mine = {}
  treediff.collections(db, tenant, vb, vo, function(k, _, new) mine[k] = new or false end, entry)
  local recs, n = {}, 0
  treediff.collections(db, tenant, vb, vt, function(k, old, new)
    local o, t = mine[k], new or false
    if o == nil then
      recs[k], n = t, n + 1
    elseif o ~= t then
      local ov = o and core.decode(o, ctx) or nil
      local merged = merge_value(old and core.decode(old, ctx) or nil, ov, t and core.decode(t, ctx) or nil, {},
        { entry = entry, key = k }, function(c) return s.resolve(c, info) end)
      if not same(merged, ov) then
        recs[k], n = merged == nil and false or core.encode(merged, ctx), n + 1
      end
    end
  end, entry)
  local p = { records = recs, merge_parent = vt }
  local ib = vb and db:_collection_info(tenant, entry, vb)
  merge_meta(db, tenant, entry, ib, db:_collection_info(tenant, entry, vo),
    db:_collection_info(tenant, entry, vt), p)
  if n == 0 and p.ttl == nil and p.resolver == nil and not p.index_ops then return nil, 0 end
  return p, math.max(n, 1)
end

local function is_coll(db, tenant, v)
  return v ~= nil and write.is_collection(db._store:read(tenant, v))
end

-- One entry both sides changed; returns its plan (nil: keep ours) and the
-- count of changes it makes.
local function merge_entry(db, tenant, entry, vb, vo, vt, info, s, ctx)
  local cb, co, ct = is_coll(db, tenant, vb), is_coll(db, tenant, vo), is_coll(db, tenant, vt)
  if co and ct then return merge_collection(db, tenant, entry, vb, vo, vt, info, s, ctx) end
  if not co and not ct and not cb then return merge_snapshot(db, tenant, entry, vb, vo, vt, info, s, ctx) end
  -- a collection dropped on one side, or an entry whose kind changed: the
  -- conflict is about the versions (digests); the resolver keeps one or
  -- neither
  local v = s.resolve({ entry = entry, path = {}, version = true, base = vb, ours = vo, theirs = vt }, info)
  if v == vo then return nil, 0 end
  if v == nil then return { drop = true }, 1 end
  if v == vt then return { adopt = vt }, 1 end
  raise("invalid_argument", "a resolver must settle a conflict of versions of entry '%s' with nil, "
    .. "conflict.ours or conflict.theirs", entry)
end

--- The plan that applies the changes from base to theirs onto ours
-- (decoded commits; base and theirs may be nil): {entry = plan}, the
-- count of changes, the session (conflicts, resolved).
function merge.plan(db, tenant, base, ours, theirs, opts, ctx)
  local s = session(db, tenant, opts)
  local by_ours = changed_entries(db, tenant, base, ours, {})
  local by_theirs = changed_entries(db, tenant, base, theirs, {})
  local names = {}
  for name in pairs(by_theirs) do names[#names + 1] = name end
  table.sort(names)
  local plan, count = {}, 0
  for _, entry in ipairs(names) do
    local vb = lookup(db, tenant, base, entry)
    local vo, byo = lookup(db, tenant, ours, entry)
    local vt, byt = lookup(db, tenant, theirs, entry)
    local p, n
    if vo == vt then
      p, n = nil, 0
    elseif not by_ours[entry] then
      p, n = vt and { adopt = vt, from = vo } or { drop = true }, 1
    else
      local info = entry_info(db, tenant, entry, s, vo, vt, byo, byt)
      p, n = merge_entry(db, tenant, entry, vb, vo, vt, info, s, ctx)
    end
    if p then plan[entry] = p end
    count = count + n
  end
  if #s.unresolved > 0 then
    local err = errors.new("conflict", ("%d conflict(s) no resolver settles (first: entry '%s'%s)"):format(
      #s.unresolved, s.unresolved[1].entry,
      s.unresolved[1].key and (", key '" .. tostring(s.unresolved[1].key) .. "'") or ""))
    err.conflicts = s.unresolved
    error(err, 0)
  end
  return plan, count, s
end

-- ------------------------------------------------------------- the verbs

local MERGE_OPTS = { resolver = true, no_ff = "boolean", message = "string" }

local function check_opts(opts, allowed, verb)
  if opts == nil then return {} end
  if type(opts) ~= "table" then raise("invalid_argument", "opts must be a table, got %s", type(opts)) end
  for k, v in pairs(opts) do
    local want = allowed[k]
    if not want then raise("invalid_argument", "unknown %s option '%s'", verb, tostring(k)) end
    if want ~= true and type(v) ~= want then
      raise("invalid_argument", "%s option %s must be a %s, got %s", verb, k, want, type(v))
    end
  end
  if opts.message ~= nil and (#opts.message > 65536 or not utf8.len(opts.message)) then
    raise("invalid_argument", "message must be valid UTF-8 of at most 65536 bytes")
  end
  resolvers.lookup(opts.resolver, "opts.resolver") -- (raises if unknown)
  return opts
end

-- The decoded tip of the handle's branch (nil: main with no commit; main
-- with entries but no commit - a store from before commits - gets its
-- first commit now).
local function tip(db, tenant)
  local name = refs.current(db, tenant)
  local key = refs.branch_key(name)
  local id = db._store:head(tenant, key)
  if not id and name == refs.DEFAULT then
    local lock <close> = db._store:lock(tenant)
    id = lock:head(key)
    if not id then
      local c = branch.import_heads(db, tenant)
      if c then lock:commit({ { key, c.id } }, true); id = c.id end
    end
  end
  if not id then
    if name ~= refs.DEFAULT then raise("not_found", "branch '%s' of tenant '%s' does not exist", name, tenant) end
    return nil
  end
  return commits.read(db, tenant, id)
end

local function moved() raise("conflict", "the branch kept moving while the merge was planned") end

-- Tells the handle's listeners (db:on_change) of an entry that moved from
-- version a to b without a write of its own (a fast-forward, or a side's
-- version taken whole): the events a write making that change gives.
local function tell_moves(db, tenant, user, moves, commit)
  if #db._listeners == 0 or #moves == 0 then return end
  local ctx = db:_ctx(tenant)
  local events = {}
  for _, m in ipairs(moves) do
    local entry, a, b = m[1], m[2], m[3]
    local ev0 = { tenant = tenant, entry = entry, user_id = user, commit = commit }
    local function add(t)
      for k, v in pairs(ev0) do t[k] = v end
      events[#events + 1] = t
    end
    local ba = a and db._store:read(tenant, a)
    local bb = b and db._store:read(tenant, b)
    local ca, cb = ba and write.is_collection(ba), bb and write.is_collection(bb)
    if a and (not b or ca ~= cb) then
      add({ action = "drop", old_digest = a })
      a, ba = nil, nil
    end
    if cb then
      treediff.collections(db, tenant, a, b, function(k, old, new)
        add({ action = new and "put" or "delete", key = k, old_raw = old, new_raw = new, digest = b })
      end, entry)
    elseif b then
      add({ action = "save", old_bytes = ba, new_json = core.encode(core.decode_snapshot(bb, ctx), ctx),
            digest = b })
    end
  end
  changes.emit(db, events, ctx)
end

-- Moves the branch from ours to theirs (main: its entry heads too).
local function fast_forward(db, tenant, ours, theirs)
  local lock <close> = db._store:lock(tenant)
  local line = branch.open(db, lock, tenant)
  if (line.head and line.head.id or false) ~= (ours and ours.id or false) then return false end
  local list = {}
  for name in pairs(changed_entries(db, tenant, ours, theirs, {})) do list[#list + 1] = name end
  table.sort(list)
  local heads, moves = {}, {}
  for i, name in ipairs(list) do
    local v = lookup(db, tenant, theirs, name)
    moves[i] = { name, lookup(db, tenant, ours, name), v }
    if line.main then heads[#heads + 1] = { name, v or false } end
  end
  heads[#heads + 1] = { line.key, theirs.id }
  lock:commit(heads, true)
  return true, #list, moves
end

-- Applies plan as one commit on the branch, if its tip is still ours.
local function apply(db, tenant, user, plan, ctx, ours, message, parents)
  local out = {}
  local ok, err = pcall(db._apply, db, tenant, user, plan, ctx,
    { message = message, parents = parents, expect_tip = ours and ours.id or false, out = out })
  if not ok then
    if errors.is(err, "conflict") and err.moved then return nil end
    error(err, 0)
  end
  local moves = {}
  for entry, p in pairs(plan) do
    if p.adopt then moves[#moves + 1] = { entry, p.from, p.adopt } end
  end
  table.sort(moves, function(x, y) return x[1] < y[1] end)
  if out.commit then tell_moves(db, tenant, user, moves, out.commit) end
  return out.commit or (ours and ours.id)
end

--- db:merge: merges rev into the handle's branch; returns {commit=,
-- fast_forward=, changes=, resolved=}.
function merge.run(db, tenant, user, rev, opts)
  opts = check_opts(opts, MERGE_OPTS, "merge")
  local theirs = commits.read(db, tenant, refs.resolve(db, tenant, rev))
  for _ = 1, RETRIES do
    local ours = tip(db, tenant)
    local base = ours and merge.base(db, tenant, ours, theirs)
    if ours and base and base.id == theirs.id then
      return { commit = ours.id, fast_forward = false, changes = 0, resolved = 0 }
    end
    if (not ours or base and base.id == ours.id) and not (opts.no_ff and ours) then
      local done, n, moves = fast_forward(db, tenant, ours, theirs)
      if done then
        tell_moves(db, tenant, user, moves, theirs.id)
        return { commit = theirs.id, fast_forward = true, changes = n, resolved = 0 }
      end
    else
      local ctx = db:_ctx(tenant)
      local plan, count, s = merge.plan(db, tenant, base, ours, theirs, opts, ctx)
      local message = opts.message or ("Merge %s into %s"):format(rev, refs.current(db, tenant))
      local id = apply(db, tenant, user, plan, ctx, ours, message, { theirs.id })
      if id then return { commit = id, fast_forward = false, changes = count, resolved = s.resolved } end
    end
  end
  moved()
end

local PICK_OPTS = { resolver = true, message = "string" }

-- revert (undo commit's changes) or cherry-pick (apply them again).
local function pick(db, tenant, user, rev, opts, undo)
  local verb = undo and "revert" or "cherry_pick"
  opts = check_opts(opts, PICK_OPTS, verb)
  local c = commits.read(db, tenant, refs.resolve(db, tenant, rev))
  local parent = c.parents[1] and commits.read(db, tenant, c.parents[1]) or nil
  local base, theirs = parent, c
  if undo then base, theirs = c, parent end
  for _ = 1, RETRIES do
    local ours = tip(db, tenant)
    if not ours then raise("not_found", "branch '%s' of tenant '%s' has no commit yet", refs.current(db, tenant), tenant) end
    local ctx = db:_ctx(tenant)
    local plan, count, s = merge.plan(db, tenant, base, ours, theirs, opts, ctx)
    if next(plan) == nil then return { commit = ours.id, changes = 0, resolved = s.resolved } end
    local message = opts.message or ((undo and "Revert " or "Cherry-pick ") .. c.id)
    local id = apply(db, tenant, user, plan, ctx, ours, message, nil)
    if id then return { commit = id, changes = count, resolved = s.resolved } end
  end
  moved()
end

function merge.revert(db, tenant, user, rev, opts) return pick(db, tenant, user, rev, opts, true) end
function merge.cherry_pick(db, tenant, user, rev, opts) return pick(db, tenant, user, rev, opts, false) end

--- db:set_resolver: stores resolver name (nil/false: none) with entry.
function merge.set_resolver(db, tenant, user, entry, name)
  if name ~= nil and name ~= false then
    resolvers.check_name(name)
    if not resolvers.get(name) then
      raise("invalid_argument", "no resolver registered as '%s' (mydb.resolvers.register)", name)
    end
  end
  local head = db:_head(tenant, entry)
  if not head then raise("not_found", "entry '%s' not found in tenant '%s'", entry, tenant) end
  if stored_resolver(db, tenant, entry, head) == (name or nil) then return false end -- (no change)
  local ctx = db:_ctx(entry)
  return db:_apply(tenant, user, { [entry] = { resolver = name or false } }, ctx)[entry].written
end

return merge
