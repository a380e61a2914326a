--- mydb.blame: who gave each record (or field) its current value
-- (db:blame), and the history of one record (db:key_history).
--
-- Both walk the commits that changed the entry, newest first (the state
-- names the last one, each commit the one before: mydb.versions'
-- entry_chain), never the tenant's whole log. key_history looks the key up
-- in each version's tree (O(depth) pieces, the ones shared by neighbouring
-- versions read once); blame diffs consecutive versions (mydb.treediff,
-- O(changes)) until every current key is attributed.
local core = require "mydb.core"
local errors = require "mydb.errors"
local collection = require "mydb.collection"
local colinfo = require "mydb.colinfo"
local commits = require "mydb.commits"
local refs = require "mydb.refs"
local versions = require "mydb.versions"
local validate = require "mydb.validate"
local encode = require "mydb.encode"
local write = require "mydb.write"
local treediff = require "mydb.treediff"
local diff = require "mydb.diff"

local raise = errors.raise

local blame = {}

-- The decoded commit rev names, or the head of the handle's branch.
local function start_commit(db, tenant, rev)
  if rev ~= nil then return commits.read(db, tenant, refs.resolve(db, tenant, rev)) end
  return versions.branch_commit(db, tenant, refs.current(db, tenant))
end

-- The version commit x made of entry (nil: x dropped it).
local function version_of(x, entry) return x.entries[entry] or nil end

-- The collection info of version d, or nil when d is nil or a snapshot (an
-- earlier life of the entry, dropped and made again as the other kind).
local function info_or_nil(db, tenant, entry, d)
  if d == nil then return nil end
  local ok, info = pcall(colinfo.get, db, tenant, entry, d)
  if ok then return info end
  if errors.is(info, "type_mismatch") then return nil end
  error(info, 0)
end

local function who(x) return { commit = x.id, user_id = x.user_id, date = x.date, time = x.time } end

-- ---------------------------------------------------------------- blame

-- Collections: the keys of the current version, each attributed to the
-- newest commit whose diff (from the version before it) touches it.
local function blame_collection(db, tenant, entry, chain, x, info)
  local pending, left = {}, 0
  for k in collection.iter(colinfo.tree(db, tenant, info), info.root) do
    pending[k] = true
    left = left + 1
  end
  local out = {}
  while x and left > 0 do
    local older = chain()
    local od = older and version_of(older, entry)
    if not info_or_nil(db, tenant, entry, od) then od = nil end
    treediff.collections(db, tenant, od, version_of(x, entry), function(key, _, new)
      if new ~= nil and pending[key] then
        pending[key] = nil
        out[key] = who(x)
        left = left - 1
        if left == 0 then return false end
      end
    end, entry)
    x = older
  end
  return out
end

-- Snapshots: the same per top-level field of the current value.
local function blame_snapshot(db, tenant, entry, chain, x, value)
  local out = {}
  if type(value) ~= "table" then return out end
  local pending, left = {}, 0
  for k in pairs(value) do pending[k] = true; left = left + 1 end
  local ctx = db:_ctx(encode.path_name(entry))
  local cur = value
  while x and left > 0 do
    local older = chain()
    local od = older and version_of(older, entry)
    local old
    if od then
      local bytes = db._store:read(tenant, od)
      if not write.is_collection(bytes) then old = core.decode_snapshot(bytes, ctx) end
    end
    if type(old) ~= "table" then old = {} end
    for k in pairs(pending) do
      if not diff.deep_equal(old[k], cur[k]) then
        pending[k] = nil
        out[k] = who(x)
        left = left - 1
      end
    end
    x, cur = older, old
  end
  return out
end

--- For a collection, key -> {commit=, user_id=, date=, time=} of the
-- commit that gave each record its current value; for a snapshot entry,
-- the same per top-level field (an empty map when the value is not a
-- table). Second result: the same for the entry's current version as a
-- whole. At rev, or at the head of the handle's branch.
function blame.run(db, tenant, entry, rev)
  validate.entry(entry)
  local c = start_commit(db, tenant, rev)
  local version = commits.lookup(db, tenant, c, entry)
  if not version then
    raise("not_found", "entry '%s' not found in tenant '%s' at commit %s", entry, tenant, c.id)
  end
  local chain = versions.entry_chain(db, tenant, c, entry)
  local x = chain()
  local whole = who(x)
  local info = info_or_nil(db, tenant, entry, version)
  if info then return blame_collection(db, tenant, entry, chain, x, info), whole end
  local value = core.decode_snapshot(db._store:read(tenant, version), db:_ctx(encode.path_name(entry)))
  return blame_snapshot(db, tenant, entry, chain, x, value), whole
end

-- ---------------------------------------------------------- key history

local HISTORY_OPTS = { max = "number", rev = "string" }

local function check_history_opts(opts)
  if opts == nil then return {} end
  if type(opts) ~= "table" then raise("invalid_argument", "opts must be a table, got %s", type(opts)) end
  for k, v in pairs(opts) do
    local want = HISTORY_OPTS[k]
    if not want then raise("invalid_argument", "unknown key_history option '%s'", tostring(k)) end
    if type(v) ~= want then
      raise("invalid_argument", "key_history option %s must be a %s, got %s", k, want, type(v))
    end
  end
  if opts.max ~= nil and (math.type(opts.max) ~= "integer" or opts.max < 1) then
    raise("invalid_argument", "key_history option max must be a positive integer")
  end
  return opts
end

local find = collection.find_key -- (index of key in a sorted list, or nil)

--- The versions of one record, newest first: {commit=, digest=, action=
-- "added"|"modified"|"removed", value=, user_id=, date=, time=}, one per
-- commit that changed it (digest: the entry's version it made; nil when
-- that commit dropped the entry). opts: max (1000), rev (where to start;
-- default the head of the handle's branch).
function blame.key_history(db, tenant, entry, key, opts)
  validate.entry(entry)
  validate.key(key)
  opts = check_history_opts(opts)
  local max = opts.max or 1000
  local c = start_commit(db, tenant, opts.rev)
  local ctx = db:_ctx(encode.path_name(entry, key))
  -- One tree handle for the stored roots: the pieces of every version go
  -- through one node cache (a piece shared by versions is read once).
  local shared = collection.tree(db._store, tenant, db._nodes)
  local last_root, last_raw -- (a version that changed only indexes or TTL)
  local function raw_at(d)
    local info = info_or_nil(db, tenant, entry, d)
    if not info or not info.root then return nil end
    if info.root == last_root then return last_raw end
    last_root, last_raw = info.root, nil
    local node = info.node
    if node and node.leaf then -- a root the snapshot embeds
      local i = find(node.keys, key)
      last_raw = i and node.vals[i] or nil
    elseif node then -- an inner root an old snapshot embeds
      last_raw = collection.get(colinfo.tree(db, tenant, info), info.root, key)
    else
      last_raw = collection.get(shared, info.root, key)
    end
    return last_raw
  end
  local chain = versions.entry_chain(db, tenant, c, entry)
  local out = {}
  local x = chain()
  if not x then
    raise("not_found", "entry '%s' has no history in tenant '%s' at commit %s", entry, tenant, c.id)
  end
  local d = version_of(x, entry)
  if d and not info_or_nil(db, tenant, entry, d) then write.mismatch(entry, false) end
  local raw = raw_at(d)
  while x and #out < max do
    local older = chain()
    local older_raw = older and raw_at(version_of(older, entry))
    if raw ~= older_raw then
      out[#out + 1] = {
        commit = x.id, digest = version_of(x, entry),
        action = older_raw == nil and "added" or raw == nil and "removed" or "modified",
        value = raw and core.decode(raw, ctx), user_id = x.user_id, date = x.date, time = x.time,
      }
    end
    x, raw = older, older_raw
  end
  return out
end

return blame
