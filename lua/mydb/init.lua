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
}

local Db = {}
Db.__index = Db
Db.__name = "mydb.db"

local DEFAULT_ROOT = ".mytools_db"

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
  ctx.pending, ctx.root = {}, root
  return ctx
end

local is_collection = write.is_collection
local path_name, encode_items = encode.path_name, encode.items

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

function Db:_collection_info(tenant, entry, digest) return colinfo.get(self, tenant, entry, digest) end
function Db:_tree(tenant, info) return colinfo.tree(self, tenant, info) end

-- ------------------------------------------------------------------ API

--- Opens a store at root (default ".mytools_db").
-- opts.fsync (default true): fsync files and directories on every write.
-- opts.cache_bytes (default 64 MiB): the verified-object cache budget.
-- opts.backend: "loose", "pack", "memory" or "postgres" (default: the
-- store's own, as recorded in ROOT/.mydb; "pack" for a new store; postgres
-- for a root that is a postgresql:// URI). opts.conninfo: a libpq
-- connection string; root is then the store's schema on that server. opts.segment_bytes:
-- the pack backend's segment size (default 64 MiB). opts.budget: the
-- default budgets of string expressions (filters, expression indexes):
-- {memory=, time=, instructions=, query_time=}, see mydb.query.
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
-- a store's backend. opts: backend (of the destination), segment_bytes,
-- fsync, src_backend, progress. Returns a report (see mydb.copy).
function mydb.copy(src_root, dst_root, opts)
  check_string(src_root, "source root", 1, 4096)
  check_string(dst_root, "destination root", 1, 4096)
  opts = validate.copy_options(opts)
  return require("mydb.copy").run(src_root, dst_root, opts)
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

-- Runs a plan through the one commit path, then tells the listeners.
function Db:_apply(tenant, user, plan, ctx, opts)
  local results, events, not_durable = write.commit(self, tenant, user, plan, ctx, opts)
  for _, r in pairs(results) do
    if r.info then colinfo.remember(self, tenant, r.digest, r.info); r.info = nil end
  end
  changes.emit(self, events, ctx) -- what is visible, durable or not
  if not_durable then error(not_durable, 0) end
  return results
end

--- Saves a whole value as a new version of entry; returns its digest.
-- Every write method takes an optional last argument opts: opts.message is
-- the message of the tenant commit it makes.
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

--- The latest value of entry, or the version named by digest.
function Db:load(tenant, entry, digest)
  local d = read_version(self, "load", tenant, entry, digest)
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

--- Adds or replaces one record; false when it was already equal.
function Db:put(tenant, user, entry, key, value, opts)
  check_db(self, "put")
  check_tenant(tenant)
  check_user(user)
  check_entry(entry)
  check_key(key)
  if value == nil then raise("invalid_argument", "value must not be nil (use delete)") end
  opts = check_write_opts(opts)
  self:_require_init(tenant)
  local ctx = self:_ctx(path_name(entry, key))
  local raw = core.encode(value, ctx)
  local r = self:_apply(tenant, user, { [entry] = { records = { [key] = raw } } }, ctx, opts)[entry]
  return r.made ~= nil and r.made[key] ~= nil
end

--- Adds or replaces many records in one version: items is a map
-- key -> value, or a list of objects with a get_key() method. False when
-- no record changed.
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
  local r = self:_apply(tenant, user, { [entry] = { records = recs } }, ctx, opts)[entry]
  if not r.made then return false end
  for k in pairs(recs) do if r.made[k] then return true end end
  return false
end

--- Removes one record in a new version; false when the key is absent
-- (or its TTL had passed: it was already invisible).
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
  local ctx = self:_ctx(path_name(entry, key))
  local r = self:_apply(tenant, user, { [entry] = { records = { [key] = false } } }, ctx, opts)[entry]
  local m = r.made and r.made[key]
  if not m or not m.old or m.expired then return false end
  local hidden = self:_hidden(info)
  return not (hidden and hidden(core.decode(m.old, ctx)))
end

--- Removes an entry from the head; its versions stay loadable by digest.
-- False when the entry does not exist.
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

--- Names the TTL field of a collection (nil or false removes it): records
-- whose field holds a time (seconds since the epoch) in the past are
-- invisible to reads and dropped by the next write.
function Db:set_ttl(tenant, entry, field, user, opts)
  check_db(self, "set_ttl")
  check_tenant(tenant)
  check_entry(entry)
  if field ~= nil and field ~= false then check_string(field, "TTL field", 1, 256) end
  user = user or "mydb"
  check_user(user)
  opts = check_write_opts(opts)
  self:_require_init(tenant)
  local ctx = self:_ctx(entry)
  local r = self:_apply(tenant, user, { [entry] = { ttl = field or false } }, ctx, opts)[entry]
  return r.written
end

--- Creates (or re-attaches, in a new process) a secondary index of a
-- collection. key_fn(value) returns the index key (a string or a number)
-- or nil; or key_fn is a string expression over the record (stored with
-- the index, so every process can keep it current).
function Db:create_index(tenant, entry, name, key_fn, user, opts)
  check_db(self, "create_index")
  check_tenant(tenant)
  check_entry(entry)
  indexes.check_name(name)
  if type(key_fn) ~= "function" and type(key_fn) ~= "string" then
    raise("invalid_argument", "key_fn must be a function or a string expression, got %s", type(key_fn))
  end
  if type(key_fn) == "string" then indexes.key_function(key_fn, self._budget) end -- compiles, or raises
  user = user or "mydb"
  check_user(user)
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

--- Removes a secondary index.
function Db:drop_index(tenant, entry, name, user, opts)
  check_db(self, "drop_index")
  check_tenant(tenant)
  check_entry(entry)
  indexes.check_name(name)
  user = user or "mydb"
  check_user(user)
  opts = check_write_opts(opts)
  self:_require_init(tenant)
  self._index_fns[tenant .. "\0" .. entry .. "\0" .. name] = nil
  local r = self:_apply(tenant, user, { [entry] = { index_ops = { { name = name, drop = true } } } },
    self:_ctx(entry), opts)
  return r[entry].written
end

--- Applies many changes to a tenant as one commit: fn(b) calls b:save,
-- b:put, b:put_many, b:delete and b:drop (same arguments as the db methods,
-- without tenant and user). Every change becomes visible at once, with one
-- new version per touched entry; nothing is applied if fn raises. Returns
-- true when anything was written.
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
-- through this handle; returns a handle whose :remove() unregisters it.
function Db:on_change(fn)
  check_db(self, "on_change")
  return changes.on_change(self, fn)
end

--- Changes of a tenant since a version digest or a time (seconds since the
-- epoch), oldest first, read from the history (so made by any process).
function Db:changes(tenant, since)
  check_db(self, "changes")
  check_tenant(tenant)
  self:_require_init(tenant)
  return changes.since(self, tenant, since, self:_ctx(tenant))
end

--- One record (nil when absent), or without key the list of all values in
-- key order.
function Db:get(tenant, entry, key, digest)
  check_db(self, "get")
  if key ~= nil then check_key(key) end
  local d = read_version(self, "get", tenant, entry, digest)
  local info = self:_collection_info(tenant, entry, d)
  local ctx = self:_ctx(path_name(entry, key))
  local t = self:_tree(tenant, info)
  local hidden = self:_hidden(info)
  if key ~= nil then
    local raw = collection.get(t, info.root, key)
    if raw == nil then return nil end
    local v = core.decode(raw, ctx)
    if hidden and hidden(v) then return nil end
    return v
  end
  local list = {}
  for leaf in collection.leaves(t, info.root) do core.decode_into(leaf.vals, list, ctx) end
  if hidden then
    local kept = {}
    for _, v in ipairs(list) do if not hidden(v) then kept[#kept + 1] = v end end
    list = kept
  end
  return list
end

--- Iterates key, value over a collection in key order, without building
-- one big table.
function Db:records(tenant, entry, digest)
  local d = read_version(self, "records", tenant, entry, digest)
  local info = self:_collection_info(tenant, entry, d)
  local it = collection.range(self:_tree(tenant, info), info.root, { ctx = self:_ctx(path_name(entry)) })
  return query.wrap(it, {}, self:_hidden(info))
end

--- Iterates key, stored JSON text of each record, in key order, without
-- decoding (for tools: the text is the record's canonical encoding).
function Db:raw_records(tenant, entry, digest)
  local d = read_version(self, "raw_records", tenant, entry, digest)
  local info = self:_collection_info(tenant, entry, d)
  return collection.iter(self:_tree(tenant, info), info.root)
end

--- Iterates key, value in key order (or reverse) over part of a
-- collection. opts: prefix, from, to (inclusive), reverse, limit, digest,
-- filter (a function (key, value) -> boolean or a string expression).
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
  local it = collection.range(self:_tree(tenant, info), info.root, {
    lo = plan.lo, hi = plan.hi, hi_excl = plan.hi_excl, reverse = plan.reverse,
    ctx = self:_ctx(path_name(entry)),
  })
  return query.wrap(it, plan, self:_hidden(info))
end

--- Like query, across every record collection of a tenant: yields entry,
-- key, value (entries in name order).
function Db:scan(tenant, opts)
  local store = check_db(self, "scan")
  check_tenant(tenant)
  local plan = query.plan(opts, false, self._budget)
  if plan.digest then raise("invalid_argument", "scan takes no digest") end
  self:_require_init(tenant)
  return scan.entries(self, store, tenant, plan, opts)
end

--- Iterates key, value of a collection in the order of a secondary index;
-- opts as for query, with from/to/prefix given as index keys. Yields key,
-- value, index key.
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
  local ix = info.indexes[name]
  if not ix then raise("not_found", "entry '%s' has no index '%s'", entry, name) end
  local rows = scan.index_rows(self, tenant, entry, info, name, plan, self:_ctx(path_name(entry)))
  return query.wrap(rows, plan, self:_hidden(info))
end

function Db:exists(tenant, entry)
  local store = check_db(self, "exists")
  check_tenant(tenant)
  check_entry(entry)
  if not self._init_known[tenant] and not store:tenant_exists(tenant) then return false end
  return self:_head(tenant, entry) ~= nil
end

--- Digests of entry's versions, newest first (from digest when given).
function Db:history(tenant, entry, digest, max_items)
  check_db(self, "history")
  max_items = check_max_items(max_items)
  local d = read_version(self, "history", tenant, entry, digest)
  return self._store:chain(tenant, d, max_items)
end

function Db:get_digest(tenant, entry)
  check_db(self, "get_digest")
  check_tenant(tenant)
  check_entry(entry)
  self:_require_init(tenant)
  return self:_head(tenant, entry)
end

--- {digest=, parent=, parents=, user_id=, date=} of a version (parents:
-- {parent}, or a merge's {ours, theirs}; {} for a first version).
function Db:meta(tenant, entry, digest)
  local d = read_version(self, "meta", tenant, entry, digest)
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

--- Commits newest first: {id=, parents=, user_id=, date=, time=, message=,
-- entries={names}}. opts: rev, max (1000), entry, since, until,
-- first_parent.
function Db:log(tenant, opts)
  versioning(self, "log", tenant)
  return versions.log(self, tenant, opts)
end

--- Creates branch name at rev (default: the handle's branch head);
-- returns its commit id.
function Db:branch(tenant, name, rev)
  versioning(self, "branch", tenant)
  return versions.branch(self, tenant, name, rev)
end

--- {name = commit id} of the tenant's branches.
function Db:branches(tenant)
  versioning(self, "branches", tenant)
  return versions.branches(self, tenant)
end

function Db:delete_branch(tenant, name)
  versioning(self, "delete_branch", tenant)
  return versions.delete_branch(self, tenant, name)
end

--- Makes this handle read and write tenant on branch name.
function Db:checkout(tenant, name)
  versioning(self, "checkout", tenant)
  versions.checkout(self, tenant, name)
end

function Db:current_branch(tenant)
  versioning(self, "current_branch", tenant)
  return refs.current(self, tenant)
end

--- Tags rev (default: the handle's branch head) as name, with an
-- optional message; returns the commit id.
function Db:tag(tenant, name, rev, message)
  versioning(self, "tag", tenant)
  return versions.tag(self, tenant, name, rev, message)
end

--- {name = commit id} of the tenant's tags.
function Db:tags(tenant)
  versioning(self, "tags", tenant)
  return versions.tags(self, tenant)
end

function Db:delete_tag(tenant, name)
  versioning(self, "delete_tag", tenant)
  return versions.delete_tag(self, tenant, name)
end

--- The commit id a revision names (branch, tag, id or prefix, REV~N,
-- REV@{T}).
function Db:resolve(tenant, rev)
  versioning(self, "resolve", tenant)
  return refs.resolve(self, tenant, rev)
end

--- A read-only view of tenant at rev (see mydb.view).
function Db:at(tenant, rev)
  versioning(self, "at", tenant)
  return versions.at(self, tenant, rev)
end

-- Diff, blame and the history of one record (mydb.diff, mydb.blame).
local diff, blame = require "mydb.diff", require "mydb.blame"

--- The changes from from_rev to to_rev, in entry then key order:
-- {entry=, key=, path=, action=, old=, new=}. opts: entry, prefix, limit.
function Db:diff(tenant, from_rev, to_rev, opts)
  versioning(self, "diff", tenant)
  return diff.run(self, tenant, from_rev, to_rev, opts)
end

--- key (or top-level field) -> {commit=, user_id=, date=, time=} of the
-- commit that gave it its current value; then the same for the version.
function Db:blame(tenant, entry, rev)
  versioning(self, "blame", tenant)
  return blame.run(self, tenant, entry, rev)
end

--- The versions of one record, newest first. opts: max (1000), rev.
function Db:key_history(tenant, entry, key, opts)
  versioning(self, "key_history", tenant)
  return blame.key_history(self, tenant, entry, key, opts)
end

-- ----------------------------------------------------------------- merge
-- Three-way merges of commits (mydb.merge; README "Merge").

--- Merges rev into the handle's branch: {commit=, fast_forward=,
-- changes=, resolved=}. opts: resolver (a function or a registered name),
-- no_ff, message. Raises conflict (err.conflicts) when a conflict has no
-- resolver; nothing is written then.
function Db:merge(tenant, user, rev, opts)
  versioning(self, "merge", tenant)
  check_user(user)
  return require("mydb.merge").run(self, tenant, user, rev, opts)
end

--- A new commit that undoes commit rev's changes: {commit=, changes=,
-- resolved=}. opts: resolver, message.
function Db:revert(tenant, user, rev, opts)
  versioning(self, "revert", tenant)
  check_user(user)
  return require("mydb.merge").revert(self, tenant, user, rev, opts)
end

--- A new commit that applies commit rev's changes again: {commit=,
-- changes=, resolved=}. opts: resolver, message.
function Db:cherry_pick(tenant, user, rev, opts)
  versioning(self, "cherry_pick", tenant)
  check_user(user)
  return require("mydb.merge").cherry_pick(self, tenant, user, rev, opts)
end

--- Stores the name of a registered resolver with entry (nil or false
-- removes it), in a new version: merges of the entry use it when they are
-- given none. Returns true when a version was written.
function Db:set_resolver(tenant, user, entry, name)
  versioning(self, "set_resolver", tenant)
  check_user(user)
  check_entry(entry)
  return require("mydb.merge").set_resolver(self, tenant, user, entry, name)
end

-- ------------------------------------------------------------------ sync
-- (README "Sync"; mydb.sync, mydb.remotes, mydb.transfer)

--- Adds remote name (1 to 64 bytes of letters, digits, '.', '_', '-') at
-- url: the root of another mydb store, or "memory:ROOT" for a memory store
-- of this process. Kept in the store (doc/FORMAT.md "Remotes").
function Db:add_remote(name, url)
  check_db(self, "add_remote")
  return require("mydb.remotes").add(self, name, url)
end

--- name -> url of the store's remotes.
function Db:remotes()
  check_db(self, "remotes")
  return require("mydb.remotes").list(self)
end

function Db:remove_remote(name)
  check_db(self, "remove_remote")
  return require("mydb.remotes").remove(self, name)
end

--- Brings what the tenant lacks of the remote's branches (or one) and
-- tags; updates the remote-tracking branches REMOTE/BRANCH (read-only,
-- revisions like any branch). Returns {commits=, objects=, bytes=, updated=}.
function Db:fetch(tenant, remote, branch)
  check_db(self, "fetch")
  return require("mydb.sync").fetch(self, tenant, remote, branch)
end

--- Sends what the remote lacks of the branch (default: the handle's) and
-- the tags, then moves the remote's branch if that is a fast-forward
-- (else `rejected`; opts.force overrides). Returns like fetch.
function Db:push(tenant, remote, branch, opts)
  check_db(self, "push")
  return require("mydb.sync").push(self, tenant, remote, branch, opts)
end

--- fetch, then db:merge of REMOTE/BRANCH (opts: the merge's); the
-- merge's result is report.merge.
function Db:pull(tenant, user, remote, branch, opts)
  check_db(self, "pull")
  return require("mydb.sync").pull(self, tenant, user, remote, branch, opts)
end

--- A new store at root holding every tenant of the store at url (or
-- opts.tenants) with all its history; url becomes its remote "origin".
-- opts.backend: the new store's. Returns the handle and a report.
function mydb.clone(url, root, opts)
  return require("mydb.sync").clone(mydb.open, url, root, opts)
end

--- Initialized tenants, sorted.
function Db:tenants()
  return check_db(self, "tenants"):tenants()
end

--- A tenant's entries, sorted.
function Db:entries(tenant)
  check_db(self, "entries")
  check_tenant(tenant)
  self:_require_init(tenant)
  return (self:_heads(tenant))
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
  return require("mydb.verify").run(self._root, tenant, { backend = self._backend })
end

--- Removes the objects and refs that no head or history reaches any more
-- (of one tenant, or of every tenant and the shared refs); safe while
-- other processes read and write. Returns a report (see mydb.gc).
function Db:gc(tenant)
  check_db(self, "gc")
  if tenant ~= nil then
    check_tenant(tenant)
    self:_require_init(tenant)
  end
  colinfo.reset(self)
  self._commits = commits.memo() -- (commits only a deleted branch reached go)
  return require("mydb.gc").run(self, tenant)
end

--- Compacts the storage (pack: live records into new segments; loose:
-- the head journals) of one tenant, or of every tenant and the refs.
-- Returns a report (see mydb.gc).
function Db:repack(tenant)
  check_db(self, "repack")
  if tenant ~= nil then
    check_tenant(tenant)
    self:_require_init(tenant)
  end
  return require("mydb.gc").repack(self, tenant)
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
