--- mydb.commits: a tenant's commit graph (doc/FORMAT.md "Commits and refs").
--
-- A commit is an immutable object: the canonical JSON of
--   {commit = 1, parents = {id, ...}, height = n, jump = id, jump_height =,
--    jump_time =, user_id =, date =, time =, message =,
--    entries = {name = version | false}, prev = {name = id},
--    state = digest, size = n}
-- (empty fields left out). entries: what the commit changed (false: dropped);
-- prev: for each of them, the commit that changed it before on this line,
-- left out when that is the first parent (the common case: the same entry
-- written again) or none.
-- state: the root piece of a prolly tree (mydb.collection's) of the whole
-- tenant at this commit, entry name -> '["<version>","<commit>"]', where
-- commit is the one that last changed the entry ('["<version>"]': this
-- commit). height counts first parents; jump names an ancestor on the
-- first-parent chain (Myers' skew-binary jump pointers), with that
-- ancestor's height and time, so an ancestor by height or by time is found
-- reading only the O(log n) commits the search steps on, not a walk. The
-- jump fields are left out when the jump is the first parent (half the
-- commits): a commit's bytes are most of what a put adds to history.
local core = require "mydb.core"
local errors = require "mydb.errors"
local collection = require "mydb.collection"

local raise = errors.raise

local commits = {}

local PREFIX = '{"commit":1,'
local MEMO_MAX = 1024
local NONE = {} -- (no extra parents, prev or parents: never written)
local memo_put

-- The local date a write records in its snapshot and commit, formatted
-- once a second: os.date costs ~0.5 us, and a put takes it twice. (The
-- function is looked up each call, and a new one starts afresh: a caller
-- may replace os.date, as spec/commit_digests_spec.lua pins it.)
local date_s, date_t, date_fn
function commits.date()
  local t, fn = os.time(), os.date
  if t ~= date_t or fn ~= date_fn then
    date_s, date_t, date_fn = fn("%Y%m%d %H:%M:%S %z", t), t, fn
  end
  return date_s
end

--- True if bytes are a commit object.
function commits.is_commit(bytes) return bytes:sub(1, #PREFIX) == PREFIX end

-- ----------------------------------------------------------------- reading

local function check(c, id)
  local function bad(what) raise("corrupt", "commit %s has a bad %s", id, what) end
  if math.type(c.height) ~= "integer" or c.height < 0 then bad("height") end
  if type(c.time) ~= "number" or type(c.user_id) ~= "string" or type(c.date) ~= "string" then
    bad("time, date or user_id")
  end
  if type(c.entries) ~= "table" or type(c.prev) ~= "table" or type(c.parents) ~= "table" then
    bad("entries, prev or parents")
  end
  for _, p in ipairs(c.parents) do if not core.digest_valid(p) then bad("parent") end end
  if (c.height > 0) ~= (c.parents[1] ~= nil) then bad("height for its parents") end
  if c.height == 0 and c.jump ~= nil then bad("jump") end
  for name, v in pairs(c.entries) do
    if type(name) ~= "string" or (v ~= false and not core.digest_valid(v)) then bad("entry") end
  end
  for name, v in pairs(c.prev) do
    if type(name) ~= "string" or not core.digest_valid(v) or v == c.parents[1] then bad("prev") end
  end
  if c.jump ~= nil and (not core.digest_valid(c.jump) or math.type(c.jump_height) ~= "integer"
      or c.jump_height >= c.height - 1 or c.jump_height < 0 or type(c.jump_time) ~= "number") then
    bad("jump") -- (a jump to the first parent is written as none)
  end
  if c.state ~= nil and not core.digest_valid(c.state) then bad("state") end
  if math.type(c.size) ~= "integer" then bad("size") end
end

-- The memo keeps two generations: when the new one is full it becomes the
-- old one, and a hit in the old one moves up (a hot path stays cached).
-- Each maps tenant -> id -> commit (a look-up builds no "tenant/id" string).
local function memo_get(memo, tenant, id)
  local m = memo.map[tenant]
  local c = m and m[id]
  if c then return c end
  local o = memo.old[tenant]
  c = o and o[id]
  if c then
    o[id] = nil
    memo_put(memo, tenant, id, c)
  end
  return c
end

memo_put = function(memo, tenant, id, c)
  if memo.count >= MEMO_MAX then memo.old, memo.map, memo.count = memo.map, {}, 0 end
  local m = memo.map[tenant]
  if not m then m = {}; memo.map[tenant] = m end
  m[id], memo.count = c, memo.count + 1
end

--- The decoded commit id of tenant (remembered per handle: commits are
-- immutable). not_found if absent, invalid_argument if id is another object.
function commits.read(db, tenant, id)
  local memo = db._commits
  local c = memo_get(memo, tenant, id)
  if c then return c end
  local ok, bytes = pcall(db._store.read, db._store, tenant, id)
  if not ok then
    if errors.is(bytes, "not_found") then raise("not_found", "no commit %s in tenant '%s'", id, tenant) end
    error(bytes, 0)
  end
  if not commits.is_commit(bytes) then
    raise("invalid_argument", "object %s of tenant '%s' is not a commit", id, tenant)
  end
  local okd, t = pcall(core.decode, bytes)
  if not okd or type(t) ~= "table" then raise("corrupt", "commit %s does not parse", id) end
  t.parents, t.entries, t.prev, t.size = t.parents or {}, t.entries or {}, t.prev or {}, t.size or 0
  check(t, id)
  t.id = id
  if t.height > 0 and not t.jump then -- the jump is the first parent
    t.jump, t.jump_height, t.jump_parent = t.parents[1], t.height - 1, true
  end
  memo_put(memo, tenant, id, t)
  return t
end

--- A per-handle memo of decoded commits.
function commits.memo() return { map = {}, old = {}, count = 0 } end

-- ------------------------------------------------------------------- state

local function state_value(version, changed_by)
  if changed_by then return '["' .. version .. '","' .. changed_by .. '"]' end
  return '["' .. version .. '"]'
end

-- version, commit that last changed it (nil: the commit whose state it is)
local function parse_value(v, where)
  local version, by = v:match('^%["(%x+)"%]$'), nil
  if not version then version, by = v:match('^%["(%x+)","(%x+)"%]$') end
  if not version or #version ~= 64 or (by and #by ~= 64) then
    raise("corrupt", "state of commit %s has a bad value", where)
  end
  return version, by
end

-- One tree handle per tenant and handle, kept (db._state_trees): a commit
-- updates and flushes it, and its C session is made once, not per commit.
local function state_tree(db, tenant)
  local trees = db._state_trees
  if not trees then trees = {}; db._state_trees = trees end
  local t = collection.kept_tree(trees[tenant], db._store, tenant, db._nodes)
  trees[tenant] = t
  return t
end

--- Version digest of entry at commit c and the commit that last changed
-- it (or nil, nil when absent).
function commits.lookup(db, tenant, c, entry)
  if not c.state then return nil end
  local raw = collection.get(state_tree(db, tenant), c.state, entry)
  if raw == nil then return nil end
  local version, by = parse_value(raw, c.id)
  return version, by or c.id
end

--- Entries of commit c in name order, and the map entry -> version.
function commits.entries(db, tenant, c)
  local list, map = {}, {}
  if not c.state then return list, map end
  for k, v in collection.iter(state_tree(db, tenant), c.state) do
    list[#list + 1] = k
    map[k] = (parse_value(v, c.id))
  end
  return list, map
end

-- ----------------------------------------------------------- ancestry

--- The first-parent ancestor of c at height h (h <= c.height): jump while
-- the jump does not pass h, else step to the parent; only the commits
-- stepped on are read.
function commits.ancestor(db, tenant, c, h)
  while c.height > h do
    if c.jump and c.jump_height >= h then
      c = commits.read(db, tenant, c.jump)
    else
      c = commits.read(db, tenant, c.parents[1])
    end
  end
  return c
end

--- The newest commit on c's first-parent chain whose time is <= t (times
-- never decrease along the chain), or nil: the walk of commits.ancestor
-- towards the unknown height of the answer plus one (a jump is taken when
-- its target is still past t), then one step down.
function commits.at_time(db, tenant, c, t)
  if c.time <= t then return c end
  while true do
    if c.height == 0 then return nil end
    if not c.jump_parent and c.jump and c.jump_time > t then
      c = commits.read(db, tenant, c.jump)
    else
      local p = commits.read(db, tenant, c.parents[1])
      if p.time <= t then return p end
      c = p
    end
  end
end

--- Walks of the commit graph newest first (log, merge base): a max-heap
-- of commits by time, then height.
function commits.newer(a, b) return a.time > b.time or (a.time == b.time and a.height > b.height) end

function commits.heap_push(h, c)
  h[#h + 1] = c
  local i = #h
  while i > 1 do
    local p = i // 2
    if not commits.newer(h[i], h[p]) then break end
    h[i], h[p] = h[p], h[i]
    i = p
  end
end

function commits.heap_pop(h)
  local top, n = h[1], #h
  h[1] = h[n]
  h[n] = nil
  n = n - 1
  local i = 1
  while true do
    local l, r, m = 2 * i, 2 * i + 1, i
    if l <= n and commits.newer(h[l], h[m]) then m = l end
    if r <= n and commits.newer(h[r], h[m]) then m = r end
    if m == i then return top end
    h[i], h[m] = h[m], h[i]
    i = m
  end
end

-- --------------------------------------------------------------- writing

-- The commit's bytes: what core.encode(c) gives (canonical JSON: keys in
-- byte order), built directly - the generic encoder sorted and walked the
-- table for a tenth of a put's time. Strings and the time go through the
-- codec, so escaping and the shortest round-trip number are its own.
-- core.commit_bytes (src/lua/lcommit.c) builds them and their id in one
-- call; this Lua builder is its oracle (spec/commit_bytes_spec.lua).
local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

local function json_map(t, value)
  local out = {}
  for i, k in ipairs(sorted_keys(t)) do out[i] = core.encode(k) .. ":" .. value(t[k]) end
  return "{" .. table.concat(out, ",") .. "}"
end

local function json_digest(v) return v and '"' .. v .. '"' or "false" end

local function commit_bytes(c)
  local out = { '{"commit":1,"date":', core.encode(c.date), ',"entries":', json_map(c.entries, json_digest),
                ',"height":', tostring(c.height) }
  local function add(...) for i = 1, select("#", ...) do out[#out + 1] = select(i, ...) end end
  if c.jump and not c.jump_parent then
    add(',"jump":"', c.jump, '","jump_height":', tostring(c.jump_height), ',"jump_time":', core.encode(c.jump_time))
  end
  if c.message then add(',"message":', core.encode(c.message)) end
  if c.parents then add(',"parents":["', table.concat(c.parents, '","'), '"]') end
  if c.prev and next(c.prev) then add(',"prev":', json_map(c.prev, json_digest)) end
  add(',"size":', tostring(c.size))
  if c.state then add(',"state":"', c.state, '"') end
  add(',"time":', core.encode(c.time), ',"user_id":', core.encode(c.user_id), "}")
  return table.concat(out)
end
commits.bytes_lua = commit_bytes

-- Myers' skew-binary jump: the parent's jump's jump when the two spans
-- below the parent are equal, else the parent.
-- (id, height, time of the jump of a child of p; reads p's jump, and
-- that one's parent when it is also its jump)
local function jump_of(db, tenant, p)
  if not p.jump then return p.id, p.height, p.time end -- the root jumps to itself
  local j = commits.read(db, tenant, p.jump)
  if not j.jump then -- j is the root: its jump is itself
    if p.height - j.height == 0 then return j.id, j.height, j.time end
    return p.id, p.height, p.time
  end
  if p.height - j.height == j.height - j.jump_height then
    if j.jump_parent then return j.jump, j.jump_height, commits.read(db, tenant, j.jump).time end
    return j.jump, j.jump_height, j.jump_time
  end
  return p.id, p.height, p.time
end

-- Adds a state change: the first one is kept as k1, v1; a map upd is made
-- from the second on (a put's commit has one change: no map).
local function add_change(upd, k1, v1, name, value)
  if k1 == nil then return nil, name, value end
  if not upd then upd = { [k1] = v1 } end
  upd[name] = value
  return upd, k1, v1
end

--- Builds and writes the commit after parent (a decoded commit or nil)
-- that sets changes {{entry, version | false}, ...}; returns its id and
-- decoded form. Writes its state pieces and itself (the commit as a
-- near-copy of its parent: pack stores a delta).
function commits.make(db, tenant, parent, changes, user, message, extra_parents)
  local t = state_tree(db, tenant)
  local upd, k1, v1
  local entries, prev = {}, nil
  for _, ch in ipairs(changes) do
    local name, version = ch[1], ch[2]
    entries[name] = version
    if parent and parent.entries[name] == nil then -- (else prev is the parent: left out)
      local _, by = commits.lookup(db, tenant, parent, name)
      if by then prev = prev or {}; prev[name] = by end
    end
    upd, k1, v1 = add_change(upd, k1, v1, name, version and state_value(version) or false)
  end
  if parent then
    -- the parent's own changes get its id in the state from now on (those
    -- this commit changes again have their new value above)
    for name, v in pairs(parent.entries) do
      if v and entries[name] == nil then
        upd, k1, v1 = add_change(upd, k1, v1, name, state_value(v, parent.id))
      end
    end
  end
  local root, delta, state = parent and parent.state, 0, nil
  local size = parent and parent.size or 0
  if k1 ~= nil and not upd then
    -- (one state change: the tree is a function of its records, so the
    -- same pieces as update_many's; updated and stored in one call)
    state, delta = collection.update_stored(t, root, k1, v1 or nil)
  else
    if upd then root, delta = collection.update_many(t, root, size, upd) end
    state = root and collection.flush_stored(t, root)
  end
  local now = core.realtime()
  if parent then now = math.max(now, parent.time) end
  for _, p in ipairs(extra_parents or NONE) do -- a merge is no older than what it merges
    now = math.max(now, commits.read(db, tenant, p).time)
  end
  local c = {
    commit = 1, user_id = user, date = commits.date(),
    time = now,
    message = message, entries = entries, size = size + delta, state = state,
    height = parent and parent.height + 1 or 0,
  }
  c.prev = prev -- (nil: none)
  if parent then
    c.parents = { parent.id }
    for _, p in ipairs(extra_parents or NONE) do c.parents[#c.parents + 1] = p end
    c.jump, c.jump_height, c.jump_time = jump_of(db, tenant, parent)
    c.jump_parent = c.jump == parent.id or nil
  end
  local id = db._store:write_commit(tenant, c, parent and parent.id)
  -- (decoded commits are read, never changed: a commit with no prev or no
  -- parent shares one empty table)
  c.parents, c.prev, c.id = c.parents or NONE, prev or NONE, id
  memo_put(db._commits, tenant, id, c)
  return id, c
end

return commits
