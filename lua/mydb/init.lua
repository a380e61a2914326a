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
local query = require "mydb.query"
local write = require "mydb.write"
local indexes = require "mydb.indexes"
local changes = require "mydb.changes"
local validate = require "mydb.validate"
local colinfo = require "mydb.colinfo"
local ttl = require "mydb.ttl"
local encode = require "mydb.encode"
local batch = require "mydb.batch"
local scan = require "mydb.scan"
local commits = require "mydb.commits"
local refs = require "mydb.refs"
local versions = require "mydb.versions"
local argorder = require "mydb.argorder"
local lineage = require "mydb.lineage"

local raise = errors.raise
local check_string, check_tenant, check_entry = validate.string, validate.tenant, validate.entry
local check_user, check_key, check_digest = validate.user, validate.key, validate.digest
local check_max_items = validate.max_items
local check_write_opts = validate.write_options

local mydb = {
  _VERSION = "mydb " .. core._VERSION,
  errors = errors,
  register_class = serializer.register_class,
  unregister_class = serializer.unregister_class,
  handlers = require "mydb.handlers",
  policies = require "mydb.policies",
  resolvers = require "mydb.resolvers",
  -- false: no warning for calls in a deprecated argument order (mydb.argorder)
  deprecation_warnings = true,
}

local Db = {}
Db.__index = Db
Db.__name = "mydb.db"

local DEFAULT_ROOT = ".mytools_db"

-- Whether root holds a store: ROOT/.mydb, or ROOT/refs/ (a store of the
-- original layout), as the core's open decides. An error other than "no
-- such file" or "not a directory" counts as there: open reports it.
local function store_exists(root)
  for _, path in ipairs({ root .. "/.mydb", root .. "/refs/" }) do
    local f, _, code = io.open(path, "rb")
    if f then f:close() return true end
    if code ~= 2 and code ~= 20 then return true end -- ENOENT, ENOTDIR
  end
  return false
end

-- ------------------------------------------------------------- validation

local function check_db(self, method)
  if getmetatable(self) ~= Db then
    raise("invalid_argument", "call it as db:%s(...), not db.%s(...)", method, method)
  end
  if self._closed then raise("closed", "attempt to use a closed database") end
  return self._store
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
  -- (the refs a value's encoding makes, to write with it: a fresh map
  -- only when the last call left some)
  if not ctx.pending or next(ctx.pending) then ctx.pending = {} end
  ctx.root = root
  return ctx
end

local is_collection = write.is_collection
local path_name, encode_items, set_path = encode.path_name, encode.items, encode.set_path

-- Validates what every reading method takes (the handle, tenant, entry,
-- optional digest) and returns the digest of the version to read.
local function read_version(self, method, tenant, entry, digest)
  check_db(self, method)
  check_tenant(tenant)
  check_entry(entry)
  check_digest(digest, true)
  self:_require_init(tenant)
  return self:_resolve(tenant, entry, digest)
end

-- The entry's latest version on the handle's branch (nil: absent).
function Db:_head(tenant, entry)
  local b = self._branch[tenant]
  if not b or b == refs.DEFAULT then return self._store:head(tenant, entry) end
  return (commits.lookup(self, tenant, versions.branch_commit(self, tenant, b), entry))
end

-- The entries of the handle's branch, in name order, and entry -> version.
function Db:_heads(tenant)
  local b = self._branch[tenant]
  if not b or b == refs.DEFAULT then return self._store:heads(tenant) end
  return commits.entries(self, tenant, versions.branch_commit(self, tenant, b))
end

-- Digest of the entry's latest version, or the given digest.
function Db:_resolve(tenant, entry, digest)
  if digest then return digest end
  local d = self:_head(tenant, entry)
  if not d then raise("not_found", "entry '%s' not found in tenant '%s'", entry, tenant) end
  return d
end

-- A digest given to a read must be a version of the entry (mydb.lineage:
-- not_found otherwise); called after the kind check, so that a version of
-- the other kind keeps saying type_mismatch.
local function in_history(self, tenant, entry, digest)
  if digest then lineage.check(self, tenant, entry, digest) end
end

function Db:_collection_info(tenant, entry, digest) return colinfo.get(self, tenant, entry, digest) end
function Db:_known_collection_info(tenant, digest) return colinfo.known(self, tenant, digest) end
function Db:_tree(tenant, info) return colinfo.tree(self, tenant, info) end
function Db:_write_tree(tenant, entry, info) return colinfo.write_tree(self, tenant, entry, info) end

-- ------------------------------------------------------------------ API

--- Opens a store at root (default ".mytools_db"), creating it if needed.
-- @param root the store's directory (a string), or nil for ".mytools_db";
-- for a PostgreSQL store, a libpq URI "postgresql://..." (its query
-- parameter schema=NAME names the store's schema, default "mydb"), or the
-- store's schema name when opts.conninfo is given
-- @param opts nil or a table: fsync (default true: fsync files and
-- directories on every write); cache_bytes (default 64 MiB: the
-- verified-object cache budget); backend: "loose", "pack", "memory" or
-- "postgres" (default: the store's own, as recorded in ROOT/.mydb;
-- "postgres" for a postgresql:// root; "pack" for a new store);
-- conninfo: a libpq connection string (keywords or URI), root then being
-- the store's schema on that server (see doc/FORMAT.md "PostgreSQL backend");
-- segment_bytes (the pack backend's segment size, default 64 MiB);
-- ttl_field; budget: the default budgets of string expressions (filters,
-- expression indexes): {memory=, time=, instructions=, query_time=}, see mydb.query;
-- create (default true): false opens only an existing store, else raises
-- not_found (a mistyped path creates nothing; a memory store has no files
-- to find; a postgres store's tables are made on first use whatever create says)
-- @return a db handle (also a to-be-closed value)
-- @raise invalid_argument (bad root or option), not_found (create = false
-- and no store at root), io (the directory cannot be
-- made or read, or the PostgreSQL server cannot be reached), corrupt (the
-- store's files are damaged)
-- @usage
-- local other <close> = mydb.open(root, { backend = "pack" })
-- other:init("acme")
-- assert(other:is_initialized("acme"))
function mydb.open(root, opts)
  if root == nil then root = DEFAULT_ROOT end
  check_string(root, "root", 1, 4096)
  opts = validate.open_options(opts)
  local backend = opts.backend
  if opts.conninfo then
    -- postgres: root names the store, a schema on conninfo's server
    -- (doc/FORMAT.md "PostgreSQL backend")
    local sep = opts.conninfo:match("^postgres") and (opts.conninfo:find("?", 1, true) and "&" or "?") or " "
    root = opts.conninfo .. sep .. "schema=" .. root
    backend = "postgres"
  end
  local on_files = backend ~= "memory" and backend ~= "postgres"
                   and not root:match("^postgresql://") and not root:match("^postgres://")
  if opts.create == false and on_files and not store_exists(root) then
    raise("not_found", "no store at '%s'", root)
  end
  local store = core.open(root, { fsync = opts.fsync ~= false, cache_bytes = opts.cache_bytes,
                                  backend = backend, segment_bytes = opts.segment_bytes })
  return setmetatable({
    _store = store, _root = root, _init_known = {}, _backend = store:backend(),
    _nodes = collection.node_cache(), _colinfo = {}, _colcount = 0,
    _ttl_field = opts.ttl_field, _listeners = {}, _index_fns = {},
    _budget = query.budget(opts.budget, nil, "budget"),
    _branch = {}, _commits = commits.memo(),
    _open = mydb.open, -- (sync opens the stores of remotes with it)
  }, Db)
end

--- Copies the store at src_root into dst_root (a new or empty store) with
-- every tenant, object, ref and head, verified by digest; the way to change
-- a store's backend.
-- @param src_root the source store's directory
-- @param dst_root the destination's directory (new or an empty store)
-- @param opts nil or a table: backend (of the destination), segment_bytes,
-- fsync, src_backend, progress (a function called with counts)
-- @return a report table (see mydb.copy)
-- @raise invalid_argument (a bad option, or the destination holds data), io,
-- corrupt (a source object does not match its digest)
-- @usage
-- local src = mydb.open(root .. "-src")
-- src:init("acme")
-- src:put("acme", "alice", "users", "u1", { name = "Ann" })
-- src:close()
-- mydb.copy(root .. "-src", root, { backend = "pack" })
-- local copy <close> = mydb.open(root)
-- assert(copy:get("acme", "users", "u1").name == "Ann")
function mydb.copy(src_root, dst_root, opts)
  check_string(src_root, "source root", 1, 4096)
  check_string(dst_root, "destination root", 1, 4096)
  opts = validate.copy_options(opts)
  return require("mydb.copy").run(src_root, dst_root, opts)
end

--- Initializes a tenant (idempotent): a tenant must be initialized before
-- it is written or read.
-- @param tenant the tenant's name (1 to 128 letters, digits, '_', '.', '-')
-- @return nothing
-- @raise invalid_argument, closed, io
-- @usage
-- db:init("globex")
-- assert(db:is_initialized("globex"))
function Db:init(tenant)
  local store = check_db(self, "init")
  check_tenant(tenant)
  store:tenant_init(tenant)
  self._init_known[tenant] = true
end

--- Whether a tenant was initialized (in any process).
-- @param tenant the tenant's name
-- @return true or false
-- @raise invalid_argument, closed
-- @usage
-- assert(db:is_initialized("acme"))
-- assert(not db:is_initialized("initech"))
function Db:is_initialized(tenant)
  local store = check_db(self, "is_initialized")
  check_tenant(tenant)
  return store:tenant_exists(tenant)
end

-- What follows a commit of a plan: the collection infos it built are
-- remembered, the listeners told; then the error of a commit that is
-- visible but not durable is raised. Returns the results.
function Db:_settle(tenant, results, events, not_durable, ctx)
  for _, r in pairs(results) do
    if r.info then colinfo.remember(self, tenant, r.digest, r.info); r.info = nil end
  end
  changes.emit(self, events, ctx) -- what is visible, durable or not
  if not_durable then error(not_durable, 0) end
  return results
end

-- Runs a plan through the one commit path, then tells the listeners.
function Db:_apply(tenant, user, plan, ctx, opts)
  local results, events, not_durable = write.commit(self, tenant, user, plan, ctx, opts)
  return self:_settle(tenant, results, events, not_durable, ctx)
end

--- Saves a whole value as a new version of entry (a snapshot entry).
-- Every write method takes an optional last argument opts: opts.message is
-- the message of the tenant commit it makes.
-- @param tenant the tenant
-- @param user the writer's id, recorded with the version
-- @param entry the entry's name
-- @param value any storable value (tables, strings, numbers, booleans,
-- registered classes and handled types)
-- @param opts nil or {message=}
-- @return the new version's digest (a hex string)
-- @raise invalid_argument, closed, not_initialized, type_mismatch (entry holds
-- records), unsupported_value (a function, a cycle...), handler_error, io
-- @usage
-- local d = db:save("acme", "alice", "config", { theme = "dark" })
-- assert(#d == 64)
function Db:save(tenant, user, entry, value, opts)
  check_db(self, "save")
  check_tenant(tenant)
  check_user(user)
  check_entry(entry)
  opts = check_write_opts(opts)
  self:_require_init(tenant)
  local ctx = self:_ctx(path_name(entry))
  local vjson = core.encode(value, ctx)
  return self:_apply(tenant, user, { [entry] = { save = vjson } }, ctx, opts)[entry].digest
end

--- The latest value of a snapshot entry, or the version named by digest;
-- for a record collection, a map key -> value of its records.
-- @param tenant the tenant
-- @param entry the entry's name
-- @param digest nil (the latest version) or a version digest of entry
-- @return the value
-- @raise invalid_argument, closed, not_initialized, not_found (no such entry
-- or digest), corrupt, unknown_tag (a stored type with no handler)
-- @usage
-- local d = db:save("acme", "alice", "config", { theme = "dark" })
-- db:save("acme", "alice", "config", { theme = "light" })
-- assert(db:load("acme", "config").theme == "light")
-- assert(db:load("acme", "config", d).theme == "dark")
function Db:load(tenant, entry, digest)
  local d = read_version(self, "load", tenant, entry, digest)
  in_history(self, tenant, entry, digest)
  local bytes = self._store:read(tenant, d)
  local ctx = self:_ctx(path_name(entry))
  if is_collection(bytes) then
    local info = self:_collection_info(tenant, entry, d)
    local hidden = self:_hidden(info)
    local map = {}
    for k, v in collection.range(self:_tree(tenant, info), info.root, { ctx = ctx }) do
      if not (hidden and hidden(v)) then map[k] = v end
    end
    return map
  end
  return (core.decode_snapshot(bytes, ctx))
end

-- The time TTL fields are compared with (seconds since the epoch).
function Db:_now() return os.time() end

function Db:_hidden(info) return ttl.hidden(self, info) end

--- Adds or replaces one record of a collection entry, in a new version.
-- @param tenant the tenant
-- @param user the writer's id
-- @param entry the collection's name
-- @param key the record's key (a non-empty string)
-- @param value the record (any storable value but nil)
-- @param opts nil or {message=}
-- @return true, or false when the record was already equal (nothing written)
-- @raise invalid_argument, closed, not_initialized, type_mismatch (a snapshot
-- entry), unsupported_value, handler_error, io
-- @usage
-- assert(db:put("acme", "alice", "users", "u1", { name = "Ann" }) == true)
-- assert(db:put("acme", "alice", "users", "u1", { name = "Ann" }) == false)
function Db:put(tenant, user, entry, key, value, opts)
  check_db(self, "put")
  -- (the names of the handle's last put, checked then: a loop of puts into
  -- one collection checks them once)
  if tenant ~= self._put_tenant or user ~= self._put_user or entry ~= self._put_entry then
    check_tenant(tenant)
    check_user(user)
    check_entry(entry)
    self._put_tenant, self._put_user, self._put_entry = tenant, user, entry
  end
  check_key(key)
  if value == nil then raise("invalid_argument", "value must not be nil (use delete)") end
  opts = check_write_opts(opts)
  self:_require_init(tenant)
  local ctx = self:_ctx()
  set_path(ctx, entry, key)
  local raw = core.encode(value, ctx)
  local changed, a, b, c = write.put(self, tenant, user, entry, key, raw, ctx, opts)
  if changed == nil then -- (the whole plan: a, b, c are its results, events, error)
    local r = self:_settle(tenant, a, b, c, ctx)[entry]
    return r.made ~= nil and r.made[key] ~= nil
  end
  if b then colinfo.remember(self, tenant, a, b) end -- (a: the digest, b: its info)
  if c then error(c, 0) end
  return changed
end

--- Adds or replaces many records in one version.
-- @param tenant the tenant
-- @param user the writer's id
-- @param entry the collection's name
-- @param items a map key -> value, or a list of objects with a get_key() method
-- @param opts nil or {message=}
-- @return true, or false when no record changed
-- @raise invalid_argument, closed, not_initialized, type_mismatch,
-- unsupported_value, handler_error, io
-- @usage
-- db:put_many("acme", "alice", "users", { u1 = { name = "Ann" }, u2 = { name = "Bob" } })
-- assert(#db:get("acme", "users") == 2)
function Db:put_many(tenant, user, entry, items, opts)
  check_db(self, "put_many")
  check_tenant(tenant)
  check_user(user)
  check_entry(entry)
  if type(items) ~= "table" then
    raise("invalid_argument", "items must be a table, got %s", type(items))
  end
  opts = check_write_opts(opts)
  self:_require_init(tenant)
  local ctx = self:_ctx(entry)
  local recs = {}
  if encode_items(entry, items, ctx, recs) == 0 then return false end
  local r = self:_apply(tenant, user, { [entry] = { records = recs, made_keys = true } }, ctx, opts)[entry]
  if not r.made then return false end
  if r.made == true then return true end -- (mydb.plan: any record changed)
  for k in pairs(recs) do if r.made[k] then return true end end
  return false
end

--- Removes one record in a new version.
-- @param tenant the tenant
-- @param user the writer's id
-- @param entry the collection's name
-- @param key the record's key
-- @param opts nil or {message=}
-- @return true, or false when the key is absent (or its TTL had passed: it
-- was already invisible)
-- @raise invalid_argument, closed, not_initialized, type_mismatch (a snapshot
-- entry), io
-- @usage
-- db:put("acme", "alice", "users", "u1", { name = "Ann" })
-- assert(db:delete("acme", "alice", "users", "u1") == true)
-- assert(db:get("acme", "users", "u1") == nil)
function Db:delete(tenant, user, entry, key, opts)
  check_db(self, "delete")
  check_tenant(tenant)
  check_user(user)
  check_entry(entry)
  check_key(key)
  opts = check_write_opts(opts)
  self:_require_init(tenant)
  local d = self:_head(tenant, entry)
  if not d then return false end
  local info = self:_collection_info(tenant, entry, d) -- type_mismatch on a snapshot entry
  local ctx = self:_ctx()
  set_path(ctx, entry, key)
  local r = self:_apply(tenant, user, { [entry] = { records = { [key] = false } } }, ctx, opts)[entry]
  local m = r.made and r.made[key]
  if not m or not m.old or m.expired then return false end
  local hidden = self:_hidden(info)
  return not (hidden and hidden(core.decode(m.old, ctx)))
end

--- Removes an entry from the head; its versions stay loadable by digest.
-- @param tenant the tenant
-- @param user the writer's id
-- @param entry the entry's name
-- @param opts nil or {message=}
-- @return true, or false when the entry does not exist
-- @raise invalid_argument, closed, not_initialized, io
-- @usage
-- local d = db:save("acme", "alice", "config", { theme = "dark" })
-- assert(db:drop("acme", "alice", "config"))
-- assert(not db:exists("acme", "config"))
-- assert(db:load("acme", "config", d).theme == "dark")
function Db:drop(tenant, user, entry, opts)
  check_db(self, "drop")
  check_tenant(tenant)
  check_user(user)
  check_entry(entry)
  opts = check_write_opts(opts)
  self:_require_init(tenant)
  local ctx = self:_ctx(entry)
  return self:_apply(tenant, user, { [entry] = { drop = true } }, ctx, opts)[entry].written
end

--- Names the TTL field of a collection (false removes it): records
-- whose field holds a time (seconds since the epoch, or an ISO 8601 string)
-- in the past are invisible to reads and dropped by the next write.
-- Argument order: user second, as every write (the older order
-- (tenant, entry, field, user, opts) is still accepted for one release).
-- @param tenant the tenant
-- @param user the writer's id
-- @param entry the collection's name
-- @param field the name of the records' expiry field, or false
-- @param opts nil or {message=}
-- @return true when a version was written
-- @raise invalid_argument, closed, not_initialized, type_mismatch, io
-- @usage
-- db:put("acme", "alice", "sessions", "s1", { expires = os.time() - 10 })
-- db:set_ttl("acme", "alice", "sessions", "expires")
-- assert(db:get("acme", "sessions", "s1") == nil)
function Db:set_ttl(tenant, user, entry, field, opts)
  check_db(self, "set_ttl")
  user, entry, field, opts = argorder.set_ttl(self, mydb.deprecation_warnings ~= false, tenant, user, entry,
    field, opts)
  check_tenant(tenant)
  check_user(user)
  check_entry(entry)
  if field ~= nil and field ~= false then check_string(field, "TTL field", 1, 256) end
  opts = check_write_opts(opts)
  self:_require_init(tenant)
  local ctx = self:_ctx(entry)
  local r = self:_apply(tenant, user, { [entry] = { ttl = field or false } }, ctx, opts)[entry]
  return r.written
end

--- Creates (or re-attaches, in a new process) a secondary index of a
-- collection. Argument order: user second, as every write (the older order
-- (tenant, entry, name, key_fn, user, opts) is still accepted for one release).
-- @param tenant the tenant
-- @param user the writer's id
-- @param entry the collection's name
-- @param name the index's name
-- @param key_fn a function(value) returning the index key (a string or a
-- number) or nil; or a string expression over the record (stored with the
-- index, so every process keeps it current)
-- @param opts nil or {message=}
-- @return true when a version was written (false when a function index was
-- only re-attached)
-- @raise invalid_argument (bad name or expression), closed, not_initialized,
-- type_mismatch, handler_error (key_fn failed), io
-- @usage
-- db:put("acme", "alice", "users", "u1", { name = "Ann", age = 31 })
-- db:create_index("acme", "alice", "users", "by_age", "age")
-- for key, value in db:query_index("acme", "users", "by_age", { from = 30 }) do
--   assert(key == "u1" and value.age == 31)
-- end
function Db:create_index(tenant, user, entry, name, key_fn, opts)
  check_db(self, "create_index")
  user, entry, name, key_fn, opts = argorder.create_index(self, mydb.deprecation_warnings ~= false, tenant,
    user, entry, name, key_fn, opts)
  check_tenant(tenant)
  check_user(user)
  check_entry(entry)
  indexes.check_name(name)
  if type(key_fn) ~= "function" and type(key_fn) ~= "string" then
    raise("invalid_argument", "key_fn must be a function or a string expression, got %s", type(key_fn))
  end
  if type(key_fn) == "string" then indexes.key_function(key_fn, self._budget) end -- compiles, or raises
  opts = check_write_opts(opts)
  self:_require_init(tenant)
  local id = tenant .. "\0" .. entry .. "\0" .. name
  local ctx = self:_ctx(entry)
  local op = { name = name }
  if type(key_fn) == "string" then op.expr = key_fn else op.fn = key_fn end
  local previous = self._index_fns[id]
  if type(key_fn) == "function" then
    -- re-attaching an existing function index: register, no rebuild
    local d = self:_head(tenant, entry)
    local info = d and self:_collection_info(tenant, entry, d)
    local existing = info and info.indexes[name]
    if existing and existing.expr == nil and previous == nil then
      self._index_fns[id] = key_fn
      return false
    end
    self._index_fns[id] = key_fn
  end
  local ok, r = pcall(self._apply, self, tenant, user, { [entry] = { index_ops = { op } } }, ctx, opts)
  if not ok then
    self._index_fns[id] = previous
    error(r, 0)
  end
  return r[entry].written
end

--- Removes a secondary index. Argument order: user second, as every write
-- (the older order (tenant, entry, name, user, opts) is still accepted for
-- one release).
-- @param tenant the tenant
-- @param user the writer's id
-- @param entry the collection's name
-- @param name the index's name
-- @param opts nil or {message=}
-- @return true when a version was written
-- @raise invalid_argument, closed, not_initialized, io
-- @usage
-- db:put("acme", "alice", "users", "u1", { age = 31 })
-- db:create_index("acme", "alice", "users", "by_age", "age")
-- db:drop_index("acme", "alice", "users", "by_age")
-- assert(not pcall(db.query_index, db, "acme", "users", "by_age"))
function Db:drop_index(tenant, user, entry, name, opts)
  check_db(self, "drop_index")
  user, entry, name, opts = argorder.drop_index(self, mydb.deprecation_warnings ~= false, tenant, user, entry,
    name, opts)
  check_tenant(tenant)
  check_user(user)
  check_entry(entry)
  indexes.check_name(name)
  opts = check_write_opts(opts)
  self:_require_init(tenant)
  self._index_fns[tenant .. "\0" .. entry .. "\0" .. name] = nil
  local r = self:_apply(tenant, user, { [entry] = { index_ops = { { name = name, drop = true } } } },
    self:_ctx(entry), opts)
  return r[entry].written
end

--- Applies many changes to a tenant as one commit: fn(b) calls b:save,
-- b:put, b:put_many, b:delete and b:drop (the db methods' arguments without
-- tenant and user). Every change becomes visible at once, with one new
-- version per touched entry; nothing is applied if fn raises.
-- @param tenant the tenant
-- @param user the writer's id
-- @param fn a function(b) that adds changes to the batch builder b
-- @param opts nil or {message=}
-- @return true when anything was written
-- @raise invalid_argument, closed, not_initialized, whatever fn raised
-- (nothing written), type_mismatch, io
-- @usage
-- db:batch("acme", "alice", function(b)
--   b:put("users", "u1", { name = "Ann" })
--   b:save("config", { theme = "dark" })
-- end)
-- assert(db:get("acme", "users", "u1").name == "Ann")
function Db:batch(tenant, user, fn, opts)
  check_db(self, "batch")
  check_tenant(tenant)
  check_user(user)
  if type(fn) ~= "function" then raise("invalid_argument", "batch needs a function, got %s", type(fn)) end
  opts = check_write_opts(opts)
  self:_require_init(tenant)
  local ctx = self:_ctx(tenant)
  -- The batch keeps this context (the refs its values will need, written
  -- at commit) to itself: a call made inside fn (a get, say) gets another
  -- one instead of resetting ctx.pending.
  self._codec = nil
  local plan = batch.run(fn, ctx)
  if next(plan) == nil then return false end
  local results = self:_apply(tenant, user, plan, ctx, opts)
  for _, r in pairs(results) do if r.written then return true end end
  return false
end

--- Registers fn(event) to be called after each committed change made
-- through this handle. An event is {action=, tenant=, entry=, key=, old=,
-- new=, digest=, user_id=} (action: save, put, delete, expire or drop).
-- @param fn a function(event)
-- @return a handle whose :remove() unregisters fn
-- @raise invalid_argument, closed
-- @usage
-- local seen = {}
-- local h = db:on_change(function(ev) seen[#seen + 1] = ev.action end)
-- db:put("acme", "alice", "users", "u1", { name = "Ann" })
-- h:remove()
-- assert(seen[1] == "put")
function Db:on_change(fn)
  check_db(self, "on_change")
  return changes.on_change(self, fn)
end

--- Changes of a tenant since a version digest or a time, oldest first,
-- read from the history (so made by any process); events as for on_change,
-- with date.
-- @param tenant the tenant
-- @param since a version digest, a time (epoch seconds or ISO 8601), or nil
-- @return a list of events
-- @raise invalid_argument, closed, not_initialized, not_found
-- @usage
-- db:put("acme", "alice", "users", "u1", { name = "Ann" })
-- local evs = db:changes("acme", 0)
-- assert(evs[#evs].key == "u1")
function Db:changes(tenant, since)
  check_db(self, "changes")
  check_tenant(tenant)
  self:_require_init(tenant)
  return changes.since(self, tenant, since, self:_ctx(tenant))
end

--- One record, or without key the list of all values in key order.
-- @param tenant the tenant
-- @param entry the collection's name
-- @param key the record's key, or nil for every value
-- @param digest nil (latest) or a version digest of entry
-- @return the record (nil when absent), or a list of values
-- @raise invalid_argument, closed, not_initialized, not_found (no entry),
-- type_mismatch (a snapshot entry), corrupt
-- @usage
-- db:put("acme", "alice", "users", "u1", { name = "Ann" })
-- assert(db:get("acme", "users", "u1").name == "Ann")
-- assert(db:get("acme", "users", "nobody") == nil)
function Db:get(tenant, entry, key, digest)
  check_db(self, "get")
  if key ~= nil then check_key(key) end
  local d = read_version(self, "get", tenant, entry, digest)
  local info = self:_collection_info(tenant, entry, d)
  in_history(self, tenant, entry, digest)
  local ctx = self:_ctx(entry)
  if key ~= nil then set_path(ctx, entry, key) end
  local t = self:_tree(tenant, info)
  local hidden = self:_hidden(info)
  if key ~= nil then
    local raw = collection.get(t, info.root, key)
    if raw == nil then return nil end
    local v = core.decode(raw, ctx)
    if hidden and hidden(v) then return nil end
    return v
  end
  local list, n = {}, 0
  for _, v in collection.range(t, info.root, { ctx = ctx }) do n = n + 1; list[n] = v end
  if hidden then
    local kept = {}
    for _, v in ipairs(list) do if not hidden(v) then kept[#kept + 1] = v end end
    list = kept
  end
  return list
end

--- Iterates key, value over a collection in key order, without building
-- one big table.
-- @param tenant the tenant
-- @param entry the collection's name
-- @param digest nil (latest) or a version digest of entry
-- @return an iterator of key, value (then nil, nil and
-- a to-be-closed cursor: a generic for closes it, so a loop left early
-- lets go of what it read)
-- @raise invalid_argument, closed, not_initialized, not_found, type_mismatch
-- @usage
-- db:put_many("acme", "alice", "users", { u1 = 1, u2 = 2 })
-- local keys = {}
-- for k in db:records("acme", "users") do keys[#keys + 1] = k end
-- assert(table.concat(keys, ",") == "u1,u2")
function Db:records(tenant, entry, digest)
  local d = read_version(self, "records", tenant, entry, digest)
  local info = self:_collection_info(tenant, entry, d)
  in_history(self, tenant, entry, digest)
  local it, _, _, cursor = collection.range(self:_tree(tenant, info), info.root,
    { ctx = self:_ctx(path_name(entry)) })
  return query.wrap(it, {}, self:_hidden(info)), nil, nil, cursor -- (a for loop closes it)
end

--- Iterates key, stored JSON text of each record, in key order, without
-- decoding (for tools: the text is the record's canonical encoding).
-- @param tenant the tenant
-- @param entry the collection's name
-- @param digest nil (latest) or a version digest of entry
-- @return an iterator of key, JSON text (then nil, nil and
-- a to-be-closed cursor: a generic for closes it, so a loop left early
-- lets go of what it read)
-- @raise invalid_argument, closed, not_initialized, not_found, type_mismatch
-- @usage
-- db:put("acme", "alice", "users", "u1", { age = 31 })
-- for k, json in db:raw_records("acme", "users") do assert(json == '{"age":31}') end
function Db:raw_records(tenant, entry, digest)
  local d = read_version(self, "raw_records", tenant, entry, digest)
  local info = self:_collection_info(tenant, entry, d)
  in_history(self, tenant, entry, digest)
  return collection.iter(self:_tree(tenant, info), info.root)
end

--- Iterates key, value in key order (or reverse) over part of a collection.
-- @param tenant the tenant
-- @param entry the collection's name
-- @param opts nil or a table: prefix, from, to (inclusive), reverse, limit,
-- digest, filter (a function (key, value) -> boolean or a string expression)
-- @return an iterator of key, value (then nil, nil and
-- a to-be-closed cursor: a generic for closes it, so a loop left early
-- lets go of what it read)
-- @raise invalid_argument (bad option or expression), closed,
-- not_initialized, not_found, type_mismatch
-- @usage
-- db:put_many("acme", "alice", "users", { a1 = { n = 1 }, a2 = { n = 2 }, b1 = { n = 3 } })
-- local n = 0
-- for k, v in db:query("acme", "users", { prefix = "a", filter = "n > 1" }) do n = n + 1 end
-- assert(n == 1)
function Db:query(tenant, entry, opts)
  check_db(self, "query")
  return self:_query(tenant, entry, opts)
end

-- query, with the query time clock of a scan when given.
function Db:_query(tenant, entry, opts, clock)
  check_tenant(tenant)
  check_entry(entry)
  local plan = query.plan(opts, false, self._budget)
  if clock then plan.clock = clock end
  check_digest(plan.digest, true)
  self:_require_init(tenant)
  local d = self:_resolve(tenant, entry, plan.digest)
  local info = self:_collection_info(tenant, entry, d)
  in_history(self, tenant, entry, plan.digest)
  local it, _, _, cursor = collection.range(self:_tree(tenant, info), info.root, {
    lo = plan.lo, hi = plan.hi, hi_excl = plan.hi_excl, reverse = plan.reverse,
    ctx = self:_ctx(path_name(entry)),
  })
  return query.wrap(it, plan, self:_hidden(info)), nil, nil, cursor
end

--- Like query, across every record collection of a tenant (entries in name
-- order).
-- @param tenant the tenant
-- @param opts nil or query's options, without digest
-- @return an iterator of entry, key, value (then nil, nil and
-- a to-be-closed cursor: a generic for closes it, so a loop left early
-- lets go of what it read)
-- @raise invalid_argument, closed, not_initialized
-- @usage
-- db:put("acme", "alice", "users", "u1", 1)
-- db:put("acme", "alice", "groups", "g1", 2)
-- local seen = {}
-- for entry, key in db:scan("acme") do seen[#seen + 1] = entry .. "/" .. key end
-- assert(table.concat(seen, " ") == "groups/g1 users/u1")
function Db:scan(tenant, opts)
  local store = check_db(self, "scan")
  check_tenant(tenant)
  local plan = query.plan(opts, false, self._budget)
  if plan.digest then raise("invalid_argument", "scan takes no digest") end
  self:_require_init(tenant)
  return scan.entries(self, store, tenant, plan, opts)
end

--- Iterates a collection in the order of a secondary index; opts as for
-- query, with from/to/prefix given as index keys.
-- @param tenant the tenant
-- @param entry the collection's name
-- @param name the index's name
-- @param opts nil or query's options (bounds as index keys)
-- @return an iterator of key, value, index key (then nil, nil and
-- a to-be-closed cursor: a generic for closes it, so a loop left early
-- lets go of what it read)
-- @raise invalid_argument, closed, not_initialized, not_found (no entry or
-- no such index)
-- @usage
-- db:put_many("acme", "alice", "users", { u1 = { age = 40 }, u2 = { age = 20 } })
-- db:create_index("acme", "alice", "users", "by_age", "age")
-- local order = {}
-- for key, _, age in db:query_index("acme", "users", "by_age") do order[#order + 1] = key end
-- assert(order[1] == "u2")
function Db:query_index(tenant, entry, name, opts)
  check_db(self, "query_index")
  check_tenant(tenant)
  check_entry(entry)
  indexes.check_name(name)
  local bounds = indexes.bounds(opts)
  local plan = query.plan(bounds, true, self._budget)
  check_digest(plan.digest, true)
  self:_require_init(tenant)
  local d = self:_resolve(tenant, entry, plan.digest)
  local info = self:_collection_info(tenant, entry, d)
  in_history(self, tenant, entry, plan.digest)
  local ix = info.indexes[name]
  if not ix then raise("not_found", "entry '%s' has no index '%s'", entry, name) end
  local rows, _, _, cursor = scan.index_rows(self, tenant, entry, info, name, plan,
    self:_ctx(path_name(entry)))
  return query.wrap(rows, plan, self:_hidden(info)), nil, nil, cursor
end

--- Whether entry exists at the head of the handle's branch.
-- @param tenant the tenant
-- @param entry the entry's name
-- @return true or false (false for a tenant never initialized)
-- @raise invalid_argument, closed
-- @usage
-- db:save("acme", "alice", "config", {})
-- assert(db:exists("acme", "config") and not db:exists("acme", "nothing"))
function Db:exists(tenant, entry)
  local store = check_db(self, "exists")
  check_tenant(tenant)
  check_entry(entry)
  if not self._init_known[tenant] and not store:tenant_exists(tenant) then return false end
  return self:_head(tenant, entry) ~= nil
end

--- Digests of entry's versions, newest first (from digest when given).
-- @param tenant the tenant
-- @param entry the entry's name
-- @param digest nil (the latest version) or a version digest to start from
-- @param max_items nil or the most digests to return
-- @return a list of digests
-- @raise invalid_argument, closed, not_initialized, not_found, corrupt
-- @usage
-- local d1 = db:save("acme", "alice", "config", { v = 1 })
-- local d2 = db:save("acme", "alice", "config", { v = 2 })
-- local h = db:history("acme", "config")
-- assert(h[1] == d2 and h[2] == d1)
function Db:history(tenant, entry, digest, max_items)
  check_db(self, "history")
  max_items = check_max_items(max_items)
  local d = read_version(self, "history", tenant, entry, digest)
  in_history(self, tenant, entry, digest)
  local list = self._store:chain(tenant, d, max_items)
  lineage.trust_list(self, tenant, entry, list) -- (db:meta of each is common)
  return list
end

--- The digest of entry's latest version.
-- @param tenant the tenant
-- @param entry the entry's name
-- @return a digest, or nil when the entry does not exist
-- @raise invalid_argument, closed, not_initialized
-- @usage
-- local d = db:save("acme", "alice", "config", {})
-- assert(db:get_digest("acme", "config") == d)
function Db:get_digest(tenant, entry)
  check_db(self, "get_digest")
  check_tenant(tenant)
  check_entry(entry)
  self:_require_init(tenant)
  return self:_head(tenant, entry)
end

--- The metadata of a version.
-- @param tenant the tenant
-- @param entry the entry's name
-- @param digest nil (latest) or a version digest of entry
-- @return {digest=, parent=, parents=, user_id=, date=} (parents: {parent},
-- or a merge's {ours, theirs}; {} for a first version)
-- @raise invalid_argument, closed, not_initialized, not_found, corrupt
-- @usage
-- db:save("acme", "alice", "config", {})
-- assert(db:meta("acme", "config").user_id == "alice")
function Db:meta(tenant, entry, digest)
  local d = read_version(self, "meta", tenant, entry, digest)
  in_history(self, tenant, entry, digest)
  local _, meta = core.decode_snapshot(self._store:read(tenant, d), nil, true)
  return { digest = d, parent = meta.parent, parents = meta.parents or { meta.parent }, user_id = meta.user_id,
           date = meta.date }
end

-- ------------------------------------------------------------ versioning
-- Every write makes one commit of the tenant on the handle's branch
-- (default main); see mydb.versions and README "Versioning".

local function versioning(self, method, tenant)
  check_db(self, method)
  check_tenant(tenant)
  self:_require_init(tenant)
end

--- Commits of the tenant, newest first.
-- @param tenant the tenant
-- @param opts nil or a table: rev, max (1000), entry, since, until, first_parent
-- @return a list of {id=, parents=, user_id=, date=, time=, message=, entries={names}}
-- @raise invalid_argument, closed, not_initialized, not_found (bad rev)
-- @usage
-- db:save("acme", "alice", "config", {}, { message = "first config" })
-- assert(db:log("acme")[1].message == "first config")
function Db:log(tenant, opts)
  versioning(self, "log", tenant)
  return versions.log(self, tenant, opts)
end

--- Creates branch name at rev (default: the handle's branch head).
-- @param tenant the tenant
-- @param name the new branch's name
-- @param rev nil or a revision (branch, tag, commit id or prefix, REV~N, or REV at a time)
-- @return the branch's commit id
-- @raise invalid_argument, closed, not_initialized, already_exists, not_found
-- @usage
-- db:save("acme", "alice", "config", {})
-- local id = db:branch("acme", "feature")
-- assert(db:branches("acme").feature == id)
function Db:branch(tenant, name, rev)
  versioning(self, "branch", tenant)
  return versions.branch(self, tenant, name, rev)
end

--- The tenant's branches.
-- @param tenant the tenant
-- @return {name = commit id}
-- @raise invalid_argument, closed, not_initialized
-- @usage
-- db:save("acme", "alice", "config", {})
-- assert(db:branches("acme").main)
function Db:branches(tenant)
  versioning(self, "branches", tenant)
  return versions.branches(self, tenant)
end

--- Deletes a branch (not the checked-out one); its commits stay until gc.
-- @param tenant the tenant
-- @param name the branch's name
-- @return true
-- @raise invalid_argument (the current branch), closed, not_initialized, not_found
-- @usage
-- db:save("acme", "alice", "config", {})
-- db:branch("acme", "old")
-- db:delete_branch("acme", "old")
-- assert(db:branches("acme").old == nil)
function Db:delete_branch(tenant, name)
  versioning(self, "delete_branch", tenant)
  return versions.delete_branch(self, tenant, name)
end

--- Makes this handle read and write tenant on branch name.
-- @param tenant the tenant
-- @param name the branch's name
-- @return nothing
-- @raise invalid_argument, closed, not_initialized, not_found
-- @usage
-- db:save("acme", "alice", "config", { v = 1 })
-- db:branch("acme", "feature")
-- db:checkout("acme", "feature")
-- db:save("acme", "alice", "config", { v = 2 })
-- db:checkout("acme", "main")
-- assert(db:load("acme", "config").v == 1)
function Db:checkout(tenant, name)
  versioning(self, "checkout", tenant)
  versions.checkout(self, tenant, name)
end

--- The branch this handle reads and writes tenant on.
-- @param tenant the tenant
-- @return the branch's name ("main" by default)
-- @raise invalid_argument, closed, not_initialized
-- @usage
-- assert(db:current_branch("acme") == "main")
function Db:current_branch(tenant)
  versioning(self, "current_branch", tenant)
  return refs.current(self, tenant)
end

--- Tags rev (default: the handle's branch head) as name.
-- @param tenant the tenant
-- @param name the tag's name
-- @param rev nil or a revision
-- @param message nil or the tag's message
-- @return the commit id
-- @raise invalid_argument, closed, not_initialized, already_exists, not_found
-- @usage
-- db:save("acme", "alice", "config", {})
-- local id = db:tag("acme", "v1", nil, "first release")
-- assert(db:resolve("acme", "v1") == id)
function Db:tag(tenant, name, rev, message)
  versioning(self, "tag", tenant)
  return versions.tag(self, tenant, name, rev, message)
end

--- The tenant's tags.
-- @param tenant the tenant
-- @return {name = commit id}
-- @raise invalid_argument, closed, not_initialized
-- @usage
-- db:save("acme", "alice", "config", {})
-- db:tag("acme", "v1")
-- assert(db:tags("acme").v1)
function Db:tags(tenant)
  versioning(self, "tags", tenant)
  return versions.tags(self, tenant)
end

--- Deletes a tag.
-- @param tenant the tenant
-- @param name the tag's name
-- @return true
-- @raise invalid_argument, closed, not_initialized, not_found
-- @usage
-- db:save("acme", "alice", "config", {})
-- db:tag("acme", "v1")
-- db:delete_tag("acme", "v1")
-- assert(db:tags("acme").v1 == nil)
function Db:delete_tag(tenant, name)
  versioning(self, "delete_tag", tenant)
  return versions.delete_tag(self, tenant, name)
end

--- The commit id a revision names (branch, tag, id or prefix, REV~N,
-- or REV at a time: README "Versioning").
-- @param tenant the tenant
-- @param rev the revision
-- @return a commit id
-- @raise invalid_argument, closed, not_initialized, not_found
-- @usage
-- db:save("acme", "alice", "config", { v = 1 })
-- db:save("acme", "alice", "config", { v = 2 })
-- assert(db:resolve("acme", "main~1") == db:log("acme")[2].id)
function Db:resolve(tenant, rev)
  versioning(self, "resolve", tenant)
  return refs.resolve(self, tenant, rev)
end

--- A read-only view of tenant at rev: it sees exactly that commit's state.
-- @param tenant the tenant
-- @param rev a revision
-- @return a view (see "Views")
-- @raise invalid_argument, closed, not_initialized, not_found
-- @usage
-- db:save("acme", "alice", "config", { v = 1 })
-- db:tag("acme", "v1")
-- db:save("acme", "alice", "config", { v = 2 })
-- assert(db:at("acme", "v1"):load("config").v == 1)
function Db:at(tenant, rev)
  versioning(self, "at", tenant)
  return versions.at(self, tenant, rev)
end

-- Diff, blame and the history of one record (mydb.diff, mydb.blame).
local diff, blame = require "mydb.diff", require "mydb.blame"

--- The changes from from_rev to to_rev, in entry then key order.
-- @param tenant the tenant
-- @param from_rev a revision
-- @param to_rev a revision
-- @param opts nil or a table: entry, prefix, limit
-- @return a list of {entry=, key=, path=, action=, old=, new=}
-- @raise invalid_argument, closed, not_initialized, not_found
-- @usage
-- db:put("acme", "alice", "users", "u1", 1)
-- db:tag("acme", "before")
-- db:put("acme", "alice", "users", "u1", 2)
-- local d = db:diff("acme", "before", "main")
-- assert(#d == 1 and d[1].old == 1 and d[1].new == 2)
function Db:diff(tenant, from_rev, to_rev, opts)
  versioning(self, "diff", tenant)
  return diff.run(self, tenant, from_rev, to_rev, opts)
end

--- Who gave each key (or top-level field) its current value.
-- @param tenant the tenant
-- @param entry the entry's name
-- @param rev nil (the branch head) or a revision
-- @return key (or top-level field) -> {commit=, user_id=, date=, time=},
-- then the same for the version
-- @raise invalid_argument, closed, not_initialized, not_found
-- @usage
-- db:put("acme", "alice", "users", "u1", 1)
-- db:put("acme", "bob", "users", "u2", 2)
-- assert(db:blame("acme", "users").u1.user_id == "alice")
function Db:blame(tenant, entry, rev)
  versioning(self, "blame", tenant)
  return blame.run(self, tenant, entry, rev)
end

--- The versions of one record, newest first.
-- @param tenant the tenant
-- @param entry the collection's name
-- @param key the record's key
-- @param opts nil or a table: max (1000), rev
-- @return a list of {commit=, digest=, action=, value=, user_id=, date=, time=}
-- @raise invalid_argument, closed, not_initialized, not_found
-- @usage
-- db:put("acme", "alice", "users", "u1", 1)
-- db:put("acme", "bob", "users", "u1", 2)
-- assert(#db:key_history("acme", "users", "u1") == 2)
function Db:key_history(tenant, entry, key, opts)
  versioning(self, "key_history", tenant)
  return blame.key_history(self, tenant, entry, key, opts)
end

-- ----------------------------------------------------------------- merge
-- Three-way merges of commits (mydb.merge; README "Merge").

--- Merges rev into the handle's branch (three-way).
-- @param tenant the tenant
-- @param user the writer's id
-- @param rev the revision to merge
-- @param opts nil or a table: resolver (a function or a registered name),
-- no_ff, message
-- @return {commit=, fast_forward=, changes=, resolved=}
-- @raise conflict (err.conflicts lists them) when a conflict has no
-- resolver: nothing is written then; invalid_argument, closed,
-- not_initialized, not_found, handler_error (a resolver failed)
-- @usage
-- db:put("acme", "alice", "users", "u1", 1)
-- db:branch("acme", "feature")
-- db:checkout("acme", "feature")
-- db:put("acme", "alice", "users", "u2", 2)
-- db:checkout("acme", "main")
-- assert(db:merge("acme", "alice", "feature").fast_forward)
-- assert(db:get("acme", "users", "u2") == 2)
function Db:merge(tenant, user, rev, opts)
  versioning(self, "merge", tenant)
  check_user(user)
  return require("mydb.merge").run(self, tenant, user, rev, opts)
end

--- A new commit that undoes commit rev's changes.
-- @param tenant the tenant
-- @param user the writer's id
-- @param rev the revision to undo
-- @param opts nil or a table: resolver, message
-- @return {commit=, changes=, resolved=}
-- @raise conflict, invalid_argument, closed, not_initialized, not_found
-- @usage
-- db:put("acme", "alice", "users", "u1", 1)
-- db:put("acme", "alice", "users", "u1", 2)
-- db:revert("acme", "alice", "main")
-- assert(db:get("acme", "users", "u1") == 1)
function Db:revert(tenant, user, rev, opts)
  versioning(self, "revert", tenant)
  check_user(user)
  return require("mydb.merge").revert(self, tenant, user, rev, opts)
end

--- A new commit that applies commit rev's changes again.
-- @param tenant the tenant
-- @param user the writer's id
-- @param rev the revision whose changes to apply
-- @param opts nil or a table: resolver, message
-- @return {commit=, changes=, resolved=}
-- @raise conflict, invalid_argument, closed, not_initialized, not_found
-- @usage
-- db:put("acme", "alice", "users", "u1", 1)
-- db:branch("acme", "feature")
-- db:checkout("acme", "feature")
-- db:put("acme", "alice", "users", "u2", 2)
-- db:checkout("acme", "main")
-- db:cherry_pick("acme", "alice", "feature")
-- assert(db:get("acme", "users", "u2") == 2)
function Db:cherry_pick(tenant, user, rev, opts)
  versioning(self, "cherry_pick", tenant)
  check_user(user)
  return require("mydb.merge").cherry_pick(self, tenant, user, rev, opts)
end

--- Stores the name of a registered resolver with entry (nil or false
-- removes it), in a new version: merges of the entry use it when they are
-- given none.
-- @param tenant the tenant
-- @param user the writer's id
-- @param entry the entry's name
-- @param name a registered resolver's name, or nil/false
-- @return true when a version was written
-- @raise invalid_argument (unknown name), closed, not_initialized, not_found
-- @usage
-- db:put("acme", "alice", "counters", "hits", 1)
-- assert(db:set_resolver("acme", "alice", "counters", "sum"))
function Db:set_resolver(tenant, user, entry, name)
  versioning(self, "set_resolver", tenant)
  check_user(user)
  check_entry(entry)
  return require("mydb.merge").set_resolver(self, tenant, user, entry, name)
end

-- ------------------------------------------------------------------ sync
-- (README "Sync"; mydb.sync, mydb.remotes, mydb.transfer)

--- Adds a remote, kept in the store (doc/FORMAT.md "Remotes").
-- @param name 1 to 64 bytes of letters, digits, '.', '_', '-'
-- @param url the root of another mydb store, "memory:ROOT" for a memory
-- store of this process, or a PostgreSQL store ("postgresql://...?schema=NAME",
-- or "postgres:ROOT" on libpq's default server)
-- @return true
-- @raise invalid_argument, already_exists (the name is taken), closed, io
-- @usage
-- db:add_remote("origin", root)
-- assert(db:remotes().origin == root)
function Db:add_remote(name, url)
  check_db(self, "add_remote")
  return require("mydb.remotes").add(self, name, url)
end

--- The store's remotes.
-- @return name -> url
-- @raise closed, io
-- @usage
-- assert(next(db:remotes()) == nil)
function Db:remotes()
  check_db(self, "remotes")
  return require("mydb.remotes").list(self)
end

--- Removes a remote from the store's configuration.
-- @param name the remote's name
-- @return true
-- @raise invalid_argument, not_found (no such remote), closed, io
-- @usage
-- db:add_remote("origin", root)
-- db:remove_remote("origin")
-- assert(db:remotes().origin == nil)
function Db:remove_remote(name)
  check_db(self, "remove_remote")
  return require("mydb.remotes").remove(self, name)
end

--- Brings what the tenant lacks of the remote's branches (or one) and
-- tags; updates the remote-tracking branches REMOTE/BRANCH (read-only,
-- revisions like any branch).
-- @param tenant the tenant
-- @param remote the remote's name
-- @param branch nil (every branch) or one branch of the remote
-- @return {commits=, objects=, bytes=, updated=}
-- @raise invalid_argument, not_found (no such remote), closed, io, corrupt
-- @usage
-- local other <close> = mydb.open(root)
-- other:init("acme")
-- other:put("acme", "bob", "users", "u9", 9)
-- db:add_remote("origin", root)
-- db:fetch("acme", "origin")
-- assert(db:at("acme", "origin/main"):get("users", "u9") == 9)
function Db:fetch(tenant, remote, branch)
  check_db(self, "fetch")
  return require("mydb.sync").fetch(self, tenant, remote, branch)
end

--- Sends what the remote lacks of the branch and the tags, then moves the
-- remote's branch if that is a fast-forward.
-- @param tenant the tenant
-- @param remote the remote's name
-- @param branch nil (the handle's branch) or a branch name
-- @param opts nil or {force=true} (move the remote's branch even when it is
-- not a fast-forward)
-- @return {commits=, objects=, bytes=, updated=}
-- @raise rejected (not a fast-forward: pull first, or opts.force),
-- invalid_argument, not_found, closed, io
-- @usage
-- db:put("acme", "alice", "users", "u1", 1)
-- local other <close> = mydb.open(root)
-- db:add_remote("origin", root)
-- db:push("acme", "origin")
-- assert(other:get("acme", "users", "u1") == 1)
function Db:push(tenant, remote, branch, opts)
  check_db(self, "push")
  return require("mydb.sync").push(self, tenant, remote, branch, opts)
end

--- fetch, then db:merge of REMOTE/BRANCH.
-- @param tenant the tenant
-- @param user the writer's id (of a merge commit)
-- @param remote the remote's name
-- @param branch nil (the handle's branch) or a branch name
-- @param opts nil or the merge's options
-- @return like fetch; the merge's result is report.merge
-- @raise as fetch and merge (conflict, ...)
-- @usage
-- local other <close> = mydb.open(root)
-- other:init("acme")
-- other:put("acme", "bob", "users", "u9", 9)
-- db:add_remote("origin", root)
-- db:pull("acme", "alice", "origin")
-- assert(db:get("acme", "users", "u9") == 9)
function Db:pull(tenant, user, remote, branch, opts)
  check_db(self, "pull")
  return require("mydb.sync").pull(self, tenant, user, remote, branch, opts)
end

--- A new store at root holding every tenant of the store at url (or
-- opts.tenants) with all its history; url becomes its remote "origin".
-- @param url the source store (a root, or "memory:ROOT")
-- @param root the new store's directory
-- @param opts nil or a table: tenants (a list), backend (the new store's)
-- @return the new store's handle, and a report
-- @raise invalid_argument (a bad url, or root already holds a store), not_found, io, corrupt
-- @usage
-- local src <close> = mydb.open(root .. "-src")
-- src:init("acme")
-- src:put("acme", "alice", "users", "u1", 1)
-- local copy <close>, report = mydb.clone(root .. "-src", root)
-- assert(copy:get("acme", "users", "u1") == 1 and copy:remotes().origin)
function mydb.clone(url, root, opts)
  return require("mydb.sync").clone(mydb.open, url, root, opts)
end

--- The store's initialized tenants.
-- @return a sorted list of names
-- @raise closed, io
-- @usage
-- assert(db:tenants()[1] == "acme")
function Db:tenants()
  return check_db(self, "tenants"):tenants()
end

--- A tenant's entries on the handle's branch.
-- @param tenant the tenant
-- @return a sorted list of entry names
-- @raise invalid_argument, closed, not_initialized
-- @usage
-- db:save("acme", "alice", "config", {})
-- db:put("acme", "alice", "users", "u1", 1)
-- assert(table.concat(db:entries("acme"), ",") == "config,users")
function Db:entries(tenant)
  check_db(self, "entries")
  check_tenant(tenant)
  self:_require_init(tenant)
  return (self:_heads(tenant))
end

--- Checks every object, ref, head and history chain (of one tenant, or of
-- the whole store) against the bytes on disk.
-- @param tenant nil (the whole store) or a tenant
-- @return a list of problems ({kind=, tenant=, entry=, digest=, message=};
-- empty when sound), and counts of what was checked
-- @raise invalid_argument, closed, not_initialized, io
-- @usage
-- db:put("acme", "alice", "users", "u1", 1)
-- local problems = db:verify()
-- assert(#problems == 0)
function Db:verify(tenant)
  check_db(self, "verify")
  if tenant ~= nil then
    check_tenant(tenant)
    self:_require_init(tenant)
  end
  return require("mydb.verify").run(self._root, tenant, { backend = self._backend })
end

--- Removes the objects and refs that no head or history reaches any more
-- (of one tenant, or of every tenant and the shared refs); safe while other
-- processes read and write.
-- @param tenant nil (every tenant) or a tenant
-- @return a report: tenants, objects_marked, objects_removed, bytes_freed, ... (see mydb.gc)
-- @raise invalid_argument, closed, not_initialized, io, corrupt
-- @usage
-- db:put("acme", "alice", "users", "u1", 1)
-- local report = db:gc()
-- assert(report.tenants == 1)
function Db:gc(tenant)
  check_db(self, "gc")
  if tenant ~= nil then
    check_tenant(tenant)
    self:_require_init(tenant)
  end
  colinfo.reset(self)
  self._lineage = nil
  self._commits = commits.memo() -- (commits only a deleted branch reached go)
  return require("mydb.gc").run(self, tenant)
end

--- Compacts the storage (pack: live records into new segments; loose: the
-- head journals) of one tenant, or of every tenant and the refs.
-- @param tenant nil (every tenant) or a tenant
-- @return a report (see mydb.gc)
-- @raise invalid_argument, closed, not_initialized, io
-- @usage
-- db:put("acme", "alice", "users", "u1", 1)
-- assert(db:repack("acme").tenants == 1)
function Db:repack(tenant)
  check_db(self, "repack")
  if tenant ~= nil then
    check_tenant(tenant)
    self:_require_init(tenant)
  end
  return require("mydb.gc").repack(self, tenant)
end

--- Closes the handle (idempotent); a closed handle raises closed. A handle
-- is also a to-be-closed value (`local db <close> = mydb.open(...)`).
-- @return nothing
-- @raise invalid_argument (not called as a method)
-- @usage
-- db:close()
-- assert(not pcall(db.get, db, "acme", "users"))
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
