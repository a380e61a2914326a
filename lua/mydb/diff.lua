--- mydb.diff: what changed in a tenant between two revisions (db:diff).
--
-- The two commits' state trees (entry name -> version) are diffed with
-- mydb.treediff, so only entries whose version differs are looked at; then
-- each changed collection is diffed per record (treediff again, on its
-- record tree), each changed snapshot per field path. The cost follows the
-- changes, not the size of the tenant or of its collections.
--
-- A change: {entry=, key=, path=, action="added"|"modified"|"removed",
-- old=, new=}. Records: key set. Snapshot values: path = {k1, k2, ...}
-- ({} for a value that is not a table, changed whole). An entry created or
-- dropped: key and path nil (old/new: its value, for a snapshot entry).
local core = require "mydb.core"
local errors = require "mydb.errors"
local collection = require "mydb.collection"
local commits = require "mydb.commits"
local refs = require "mydb.refs"
local write = require "mydb.write"
local encode = require "mydb.encode"
local treediff = require "mydb.treediff"
local validate = require "mydb.validate"

local raise = errors.raise

local diff = {}

-- ------------------------------------------------------------- values

local function deep_equal(a, b)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then return false end
  for k, v in pairs(a) do
    if not deep_equal(v, b[k]) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end
diff.deep_equal = deep_equal

-- Field names in a stable order: numbers (ascending) before strings
-- (byte order), then anything else by its text.
local RANK = { number = 1, string = 2 }
local function key_before(a, b)
  local ra, rb = RANK[type(a)] or 3, RANK[type(b)] or 3
  if ra ~= rb then return ra < rb end
  if ra == 3 then return tostring(a) < tostring(b) end
  return a < b
end

local function sorted_fields(a, b)
  local list, seen = {}, {}
  for _, t in ipairs({ a, b }) do
    for k in pairs(t) do
      if not seen[k] then seen[k] = true; list[#list + 1] = k end
    end
  end
  table.sort(list, key_before)
  return list
end
diff.sorted_fields = sorted_fields

local function action_of(old, new)
  if old == nil then return "added" end
  if new == nil then return "removed" end
  return "modified"
end

--- Calls emit(path, old, new) for each field path where old and new
-- differ: tables are compared field by field, recursively; anything else
-- (or a table against a non-table) as a whole. path: a list (shared by
-- the calls: copied by emit when kept). False from emit stops (returns
-- false).
function diff.values(old, new, path, emit)
  if type(old) == "table" and type(new) == "table" then
    for _, k in ipairs(sorted_fields(old, new)) do
      path[#path + 1] = k
      local go = diff.values(old[k], new[k], path, emit)
      path[#path] = nil
      if go == false then return false end
    end
    return true
  end
  if deep_equal(old, new) then return true end
  return emit(path, old, new)
end

-- ------------------------------------------------------------- options

local OPTS = { entry = "string", prefix = "string", limit = "number" }

local function check_opts(opts)
  if opts == nil then return {} end
  if type(opts) ~= "table" then raise("invalid_argument", "opts must be a table, got %s", type(opts)) end
  for k, v in pairs(opts) do
    local want = OPTS[k]
    if not want then raise("invalid_argument", "unknown diff option '%s'", tostring(k)) end
    if type(v) ~= want then raise("invalid_argument", "diff option %s must be a %s, got %s", k, want, type(v)) end
  end
  if opts.limit ~= nil and (math.type(opts.limit) ~= "integer" or opts.limit < 1) then
    raise("invalid_argument", "diff option limit must be a positive integer")
  end
  if opts.entry ~= nil then validate.entry(opts.entry) end
  return opts
end
diff.check_opts = check_opts

-- ------------------------------------------------------------ the diff

-- The version digest a state value names (its first element).
local function version_of(raw)
  if raw == nil then return nil end
  local v = raw:match('^%["(%x+)"')
  if not v or #v ~= 64 then raise("corrupt", "a commit's state has a bad value") end
  return v
end

-- Calls fn(entry, old_version, new_version) for each entry whose version
-- differs between commits a and b, in entry order (false from fn stops).
local function changed_entries(db, tenant, a, b, only, fn)
  if only then
    local va, vb = commits.lookup(db, tenant, a, only), commits.lookup(db, tenant, b, only)
    if va ~= vb then fn(only, va, vb) end
    return
  end
  local t = collection.tree(db._store, tenant, db._nodes)
  treediff.trees(t, a.state, t, b.state, function(name, old, new)
    local va, vb = version_of(old), version_of(new)
    -- (the same version written as ["v"] in the commit that made it and
    -- as ["v","<that commit>"] after: no change)
    if va ~= vb then return fn(name, va, vb) end
  end)
end

-- Appends the changes of one entry from version va to vb (either nil)
-- with add(change); false from add stops (returns false).
local function entry_changes(db, tenant, entry, va, vb, prefix, add)
  local store = db._store
  local ba, bb = va and store:read(tenant, va), vb and store:read(tenant, vb)
  local ca, cb = ba and write.is_collection(ba), bb and write.is_collection(bb)
  local ctx = db:_ctx(encode.path_name(entry))
  local function whole(bytes, is_coll)
    if bytes and not is_coll then return (core.decode_snapshot(bytes, ctx)) end
  end
  if ba == nil or bb == nil or ca ~= cb then -- created, dropped, or another kind
    if prefix then return true end
    if ba and add({ entry = entry, action = "removed", old = whole(ba, ca) }) == false then return false end
    if bb and add({ entry = entry, action = "added", new = whole(bb, cb) }) == false then return false end
    return true
  end
  if ca then
    local go = true
    treediff.collections(db, tenant, va, vb, function(key, old, new)
      if prefix and key:sub(1, #prefix) ~= prefix then
        if key > prefix then return false end -- past the prefix's keys
        return true
      end
      go = add({ entry = entry, key = key, action = action_of(old, new),
                 old = old and core.decode(old, ctx), new = new and core.decode(new, ctx) })
      return go
    end, entry)
    return go ~= false
  end
  if prefix then return true end
  return diff.values(whole(ba, false), whole(bb, false), {}, function(path, old, new)
    return add({ entry = entry, path = table.move(path, 1, #path, 1, {}), action = action_of(old, new),
                 old = old, new = new })
  end) ~= false
end

--- The changes from revision from_rev to to_rev of tenant, in entry then
-- key (or path) order. opts: entry (only that one), prefix (only records
-- whose key starts with it), limit (at most that many changes).
function diff.run(db, tenant, from_rev, to_rev, opts)
  opts = check_opts(opts)
  local a = commits.read(db, tenant, refs.resolve(db, tenant, from_rev))
  local b = commits.read(db, tenant, refs.resolve(db, tenant, to_rev))
  local out, limit = {}, opts.limit or math.huge
  local function add(change)
    out[#out + 1] = change
    return #out < limit
  end
  if a.id == b.id then return out end
  changed_entries(db, tenant, a, b, opts.entry, function(entry, va, vb)
    return entry_changes(db, tenant, entry, va, vb, opts.prefix, add)
  end)
  return out
end

return diff
