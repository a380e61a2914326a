--- mydb: a git-inspired versioned database (C core, Lua API).
--
--   local mydb = require "mydb"
--   local db = mydb.open(".mytools_db")
--   db:init("acme")
--   db:save("acme", "alice", "config", { theme = "dark" })
--
-- Every failure raises a mydb error value (see mydb.errors).
local core = require "mydb.core"
local errors = require "mydb.errors"
local serializer = require "mydb.serializer"
local collection = require "mydb.collection"

local raise = errors.raise

local mydb = {
  _VERSION = "mydb " .. core._VERSION,
  errors = errors,
  register_class = serializer.register_class,
  unregister_class = serializer.unregister_class,
  handlers = require "mydb.handlers",
  policies = require "mydb.policies",
}

local Db = {}
Db.__index = Db
Db.__name = "mydb.db"

local DEFAULT_ROOT = ".mytools_db"
local ENTRY_MAX, USER_MAX, KEY_MAX = 1024, 256, 1024

-- ------------------------------------------------------------- validation

local function check_db(self, method)
  if getmetatable(self) ~= Db then
    raise("invalid_argument", "call it as db:%s(...), not db.%s(...)", method, method)
  end
  if self._closed then raise("closed", "attempt to use a closed database") end
  return self._store
end

local function check_string(v, what, min, max)
  if type(v) ~= "string" then
    raise("invalid_argument", "%s must be a string, got %s", what, type(v))
  end
  if #v < min or #v > max then
    raise("invalid_argument", "%s must be %d to %d bytes long, got %d", what, min, max, #v)
  end
  if v:find("\0", 1, true) then raise("invalid_argument", "%s must not contain NUL bytes", what) end
end

local function check_tenant(tenant)
  if type(tenant) ~= "string" then
    raise("invalid_argument", "tenant must be a string, got %s", type(tenant))
  end
  if not core.tenant_valid(tenant) then
    raise("invalid_argument",
      "invalid tenant id %q: 1 to 128 bytes, not '.', '..' or 'refs', not starting with '.', no '/', '\\' or NUL",
      tenant)
  end
end

local function check_entry(entry)
  check_string(entry, "entry", 1, ENTRY_MAX)
  if not utf8.len(entry) then raise("invalid_argument", "entry must be valid UTF-8") end
end

local function check_user(user)
  check_string(user, "user_id", 1, USER_MAX)
  if not utf8.len(user) then raise("invalid_argument", "user_id must be valid UTF-8") end
end

local function check_key(key) check_string(key, "key", 0, KEY_MAX) end

local function check_digest(digest, optional)
  if digest == nil and optional then return end
  if not core.digest_valid(digest) then
    raise("invalid_argument", "digest must be 64 lowercase hex characters, got %s",
      type(digest) == "string" and ("%q"):format(digest) or type(digest))
  end
end

local function check_max_items(n)
  if n == nil then return 1000 end
  if math.type(n) ~= "integer" or n < 1 then
    raise("invalid_argument", "max_items must be a positive integer, got %s", tostring(n))
  end
  return n
end

-- ---------------------------------------------------------------- helpers

-- Known-initialized tenants are remembered: a tenant is never removed.
function Db:_require_init(tenant)
  if self._init_known[tenant] then return end
  if not self._store:tenant_exists(tenant) then
    raise("not_initialized", "tenant '%s' is not initialized (call db:init first)", tenant)
  end
  self._init_known[tenant] = true
end

function Db:_ctx(root)
  local ctx = self._codec
  if not ctx or ctx.version ~= serializer.version then
    ctx = serializer.context(self._store)
    self._codec = ctx
  end
  ctx.pending, ctx.root = {}, root
  return ctx
end

local function write_refs(store, pending)
  for _, bytes in pairs(pending) do store:write(nil, bytes) end
end

local function path_name(entry, key)
  if key == nil then return entry end
  return ("%s[%q]"):format(entry, key)
end

local function meta_json(parent, user)
  return '"__date__":"' .. os.date("%Y%m%d %H:%M:%S %z") .. '","__parent__":['
      .. (parent and ('"' .. parent .. '"') or "null") .. '],"__user_id__":' .. core.json_string(user)
end

-- A snapshot: the metadata, then the value's fields inline when it is a
-- plain map (its encoding then starts with an ordinary key), else the value
-- under "__value__". See doc/FORMAT.md.
local function snapshot_bytes(vjson, parent, user)
  local meta = meta_json(parent, user)
  if vjson == "{}" then return "{" .. meta .. "}" end
  if vjson:sub(1, 2) == '{"' and vjson:sub(1, 4) ~= '{"__' then
    return "{" .. meta .. "," .. vjson:sub(2)
  end
  return "{" .. meta .. ',"__value__":' .. vjson .. "}"
end

local function collection_bytes(root_bytes, count, parent, user)
  return '{"__collection__":{"count":' .. count .. ',"root":' .. (root_bytes or "null")
      .. "}," .. meta_json(parent, user) .. "}"
end

local COLLECTION_PREFIX = '{"__collection__":'
local function is_collection(bytes) return bytes:sub(1, #COLLECTION_PREFIX) == COLLECTION_PREFIX end

local function mismatch(entry, is_coll)
  if is_coll then
    raise("type_mismatch", "entry '%s' is a record collection: use put/put_many/get, not save/load", entry)
  end
  raise("type_mismatch", "entry '%s' holds a snapshot: use save/load, not put/put_many/get", entry)
end

-- Digest of the entry's latest version, or the given digest.
function Db:_resolve(tenant, entry, digest)
  if digest then return digest end
  local d = self._store:head(tenant, entry)
  if not d then raise("not_found", "entry '%s' not found in tenant '%s'", entry, tenant) end
  return d
end

-- {count=, root=digest, node=} of a collection snapshot (memoized:
-- snapshots are immutable).
function Db:_collection_info(tenant, entry, digest)
  local key = tenant .. "/" .. digest
  local info = self._colinfo[key]
  if info then return info end
  local bytes = self._store:read(tenant, digest)
  if not is_collection(bytes) then
    core.decode_snapshot(bytes, nil, true) -- garbage is corrupt, not a mismatch
    mismatch(entry, false)
  end
  local count, root, node = collection.parse_root(bytes, "root of " .. digest)
  info = { count = count, root = root, node = node }
  if self._colcount > 4096 then self._colinfo, self._colcount = {}, 0 end
  self._colinfo[key], self._colcount = info, self._colcount + 1
  return info
end

function Db:_tree(tenant, info)
  return collection.tree(self._store, tenant, self._nodes, info and info.root, info and info.node)
end

-- ------------------------------------------------------------------ API

--- Opens a store at root (default ".mytools_db").
-- opts.fsync (default true): fsync files and directories on every write.
-- opts.cache_bytes (default 64 MiB): the verified-object cache budget.
function mydb.open(root, opts)
  if root == nil then root = DEFAULT_ROOT end
  check_string(root, "root", 1, 4096)
  if opts ~= nil and type(opts) ~= "table" then
    raise("invalid_argument", "options must be a table, got %s", type(opts))
  end
  opts = opts or {}
  for k, v in pairs(opts) do
    if k == "fsync" then
      if type(v) ~= "boolean" then raise("invalid_argument", "fsync must be a boolean") end
    elseif k == "cache_bytes" then
      if math.type(v) ~= "integer" or v < 0 then
        raise("invalid_argument", "cache_bytes must be a non-negative integer")
      end
    else
      raise("invalid_argument", "unknown option '%s'", tostring(k))
    end
  end
  local store = core.open(root, { fsync = opts.fsync ~= false, cache_bytes = opts.cache_bytes })
  return setmetatable({
    _store = store, _root = root, _init_known = {},
    _nodes = collection.node_cache(), _colinfo = {}, _colcount = 0,
  }, Db)
end

function Db:init(tenant)
  local store = check_db(self, "init")
  check_tenant(tenant)
  store:tenant_init(tenant)
  self._init_known[tenant] = true
end

function Db:is_initialized(tenant)
  local store = check_db(self, "is_initialized")
  check_tenant(tenant)
  return store:tenant_exists(tenant)
end

--- Saves a whole value as a new version of entry; returns its digest.
function Db:save(tenant, user, entry, value)
  local store = check_db(self, "save")
  check_tenant(tenant)
  check_user(user)
  check_entry(entry)
  self:_require_init(tenant)
  local ctx = self:_ctx(path_name(entry))
  local vjson = core.encode(value, ctx)
  local lock <close> = store:lock(tenant)
  local parent = lock:head(entry)
  if parent and is_collection(store:read(tenant, parent)) then mismatch(entry, true) end
  write_refs(store, ctx.pending)
  local digest = store:write(tenant, snapshot_bytes(vjson, parent, user))
  lock:commit({ { entry, digest } })
  return digest
end

--- The latest value of entry, or the version named by digest.
function Db:load(tenant, entry, digest)
  local store = check_db(self, "load")
  check_tenant(tenant)
  check_entry(entry)
  check_digest(digest, true)
  self:_require_init(tenant)
  local d = self:_resolve(tenant, entry, digest)
  local bytes = store:read(tenant, d)
  local ctx = self:_ctx(path_name(entry))
  if is_collection(bytes) then
    local info = self:_collection_info(tenant, entry, d)
    local map = {}
    for k, v in collection.decoded(self:_tree(tenant, info), info.root, nil, ctx) do map[k] = v end
    return map
  end
  return (core.decode_snapshot(bytes, ctx))
end

-- Shared by put and put_many: applies raw changes under the tenant lock.
function Db:_commit_records(tenant, user, entry, changes, nchanges, ctx)
  local store = self._store
  local lock <close> = store:lock(tenant)
  local parent = lock:head(entry)
  local info = parent and self:_collection_info(tenant, entry, parent)
  local root, count = info and info.root, info and info.count or 0
  local t = self:_tree(tenant, info)
  local newroot, delta, changed
  if nchanges == 1 then
    local k, v = next(changes)
    newroot, delta = collection.update(t, root, k, v)
    changed = delta ~= false
  else
    newroot, delta, changed = collection.update_many(t, root, count, changes)
  end
  if not changed then return false end
  write_refs(store, ctx.pending)
  local root_bytes = collection.flush(t, newroot)
  local digest = store:write(tenant, collection_bytes(root_bytes, count + delta, parent, user))
  lock:commit({ { entry, digest } })
  return true
end

--- Adds or replaces one record; false when it was already equal.
function Db:put(tenant, user, entry, key, value)
  check_db(self, "put")
  check_tenant(tenant)
  check_user(user)
  check_entry(entry)
  check_key(key)
  if value == nil then raise("invalid_argument", "value must not be nil") end
  self:_require_init(tenant)
  local ctx = self:_ctx(path_name(entry, key))
  local raw = core.encode(value, ctx)
  return self:_commit_records(tenant, user, entry, { [key] = raw }, 1, ctx)
end

--- Adds or replaces many records in one version: items is a map
-- key -> value, or a list of objects with a get_key() method.
function Db:put_many(tenant, user, entry, items)
  check_db(self, "put_many")
  check_tenant(tenant)
  check_user(user)
  check_entry(entry)
  if type(items) ~= "table" then
    raise("invalid_argument", "items must be a table, got %s", type(items))
  end
  self:_require_init(tenant)
  local ctx = self:_ctx(entry)
  local changes, n = {}, 0
  local len = #items
  local function add(key, value, where)
    if type(key) ~= "string" then
      raise("invalid_argument", "record key %s must be a string, got %s", where, type(key))
    end
    check_key(key)
    if value == nil then raise("invalid_argument", "value of %s must not be nil", where) end
    ctx.root = path_name(entry, key)
    if changes[key] == nil then n = n + 1 end
    changes[key] = core.encode(value, ctx)
  end
  if len > 0 then
    for k in pairs(items) do
      if math.type(k) ~= "integer" or k < 1 or k > len then
        raise("invalid_argument", "items must be a map of keys to values or a list of objects, not both")
      end
    end
    for i = 1, len do
      local item = items[i]
      local ok, key = pcall(function() return item:get_key() end)
      if not ok then
        raise("invalid_argument", "items[%d] has no usable get_key() method: %s", i, tostring(key))
      end
      add(key, item, ("items[%d]"):format(i))
    end
  else
    for key, value in pairs(items) do add(key, value, ("key %s"):format(tostring(key))) end
  end
  if n == 0 then return false end
  return self:_commit_records(tenant, user, entry, changes, n, ctx)
end

--- One record (nil when absent), or without key the list of all values in
-- key order.
function Db:get(tenant, entry, key, digest)
  check_db(self, "get")
  check_tenant(tenant)
  check_entry(entry)
  if key ~= nil then check_key(key) end
  check_digest(digest, true)
  self:_require_init(tenant)
  local d = self:_resolve(tenant, entry, digest)
  local info = self:_collection_info(tenant, entry, d)
  local ctx = self:_ctx(path_name(entry, key))
  local t = self:_tree(tenant, info)
  if key ~= nil then
    local raw = collection.get(t, info.root, key)
    if raw == nil then return nil end
    return core.decode(raw, ctx)
  end
  local list = {}
  for leaf in collection.leaves(t, info.root) do core.decode_into(leaf.vals, list, ctx) end
  return list
end

--- Iterates key, value over a collection in key order, without building
-- one big table.
function Db:records(tenant, entry, digest)
  check_db(self, "records")
  check_tenant(tenant)
  check_entry(entry)
  check_digest(digest, true)
  self:_require_init(tenant)
  local d = self:_resolve(tenant, entry, digest)
  local info = self:_collection_info(tenant, entry, d)
  return collection.decoded(self:_tree(tenant, info), info.root, nil, self:_ctx(path_name(entry)))
end

--- Iterates key, value in key order over part of a collection.
-- opts: prefix, from, to (inclusive bounds), limit, digest.
function Db:query(tenant, entry, opts)
  check_db(self, "query")
  check_tenant(tenant)
  check_entry(entry)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then raise("invalid_argument", "opts must be a table, got %s", type(opts)) end
  local prefix, from, to, limit = opts.prefix, opts.from, opts.to, opts.limit
  if prefix ~= nil then check_key(prefix) end
  if from ~= nil then check_key(from) end
  if to ~= nil then check_key(to) end
  if limit ~= nil and (math.type(limit) ~= "integer" or limit < 0) then
    raise("invalid_argument", "limit must be a non-negative integer")
  end
  check_digest(opts.digest, true)
  self:_require_init(tenant)
  local d = self:_resolve(tenant, entry, opts.digest)
  local info = self:_collection_info(tenant, entry, d)
  local ctx = self:_ctx(path_name(entry))
  local start = from
  if prefix and (start == nil or start < prefix) then start = prefix end
  local it = collection.decoded(self:_tree(tenant, info), info.root, start, ctx)
  local n, done = 0, false
  return function()
    if done or (limit and n >= limit) then return nil end
    local k, v = it()
    if k == nil or (prefix and k:sub(1, #prefix) ~= prefix) or (to and k > to) then
      done = true
      return nil
    end
    n = n + 1
    return k, v
  end
end

function Db:exists(tenant, entry)
  local store = check_db(self, "exists")
  check_tenant(tenant)
  check_entry(entry)
  if not self._init_known[tenant] and not store:tenant_exists(tenant) then return false end
  return store:head(tenant, entry) ~= nil
end

--- Digests of entry's versions, newest first (from digest when given).
function Db:history(tenant, entry, digest, max_items)
  local store = check_db(self, "history")
  check_tenant(tenant)
  check_entry(entry)
  check_digest(digest, true)
  max_items = check_max_items(max_items)
  self:_require_init(tenant)
  return store:chain(tenant, self:_resolve(tenant, entry, digest), max_items)
end

function Db:get_digest(tenant, entry)
  local store = check_db(self, "get_digest")
  check_tenant(tenant)
  check_entry(entry)
  self:_require_init(tenant)
  return store:head(tenant, entry)
end

--- {digest=, parent=, user_id=, date=} of a version.
function Db:meta(tenant, entry, digest)
  local store = check_db(self, "meta")
  check_tenant(tenant)
  check_entry(entry)
  check_digest(digest, true)
  self:_require_init(tenant)
  local d = self:_resolve(tenant, entry, digest)
  local _, meta = core.decode_snapshot(store:read(tenant, d), nil, true)
  return { digest = d, parent = meta.parent, user_id = meta.user_id, date = meta.date }
end

--- Initialized tenants, sorted.
function Db:tenants()
  return check_db(self, "tenants"):tenants()
end

--- A tenant's entries, sorted.
function Db:entries(tenant)
  local store = check_db(self, "entries")
  check_tenant(tenant)
  self:_require_init(tenant)
  return (store:heads(tenant))
end

--- Checks every object, ref, head and history chain (of one tenant, or of
-- the whole store) against the bytes on disk. Returns a list of problems
-- ({kind=, tenant=, entry=, digest=, message=}; empty when sound) and
-- counts of what was checked.
function Db:verify(tenant)
  check_db(self, "verify")
  if tenant ~= nil then
    check_tenant(tenant)
    self:_require_init(tenant)
  end
  return require("mydb.verify").run(self._root, tenant)
end

function Db:close()
  if getmetatable(self) ~= Db then raise("invalid_argument", "call it as db:close()") end
  if not self._closed then
    self._closed = true
    self._store:close()
  end
end
Db.__close = Db.close

function Db:__tostring()
  return ("mydb.db (%s%s)"):format(self._root, self._closed and ", closed" or "")
end

mydb.Db = Db

return mydb
