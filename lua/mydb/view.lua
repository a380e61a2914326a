--- mydb.view: a read-only view of a tenant at one commit (db:at). It sees
-- exactly that commit's state, whatever is written later: every read goes
-- to the version digest the commit's state names.
local errors = require "mydb.errors"
local validate = require "mydb.validate"
local commits = require "mydb.commits"
local lineage = require "mydb.lineage"

local raise = errors.raise

local view = {}

local View = {}
View.__index = View
View.__name = "mydb.view"

--- A view of tenant at the decoded commit c.
function view.new(db, tenant, c)
  return setmetatable({ _db = db, _tenant = tenant, _c = c, commit = c.id }, View)
end

local function digest_of(self, entry, method)
  if getmetatable(self) ~= View then
    raise("invalid_argument", "call it as view:%s(...), not view.%s(...)", method, method)
  end
  validate.entry(entry)
  return (commits.lookup(self._db, self._tenant, self._c, entry))
end

local function must(self, entry, method)
  local d = digest_of(self, entry, method)
  if not d then
    raise("not_found", "entry '%s' not found in tenant '%s' at commit %s", entry, self._tenant, self.commit)
  end
  lineage.trust(self._db, self._tenant, entry, d) -- (the commit names it: no need to look)
  return d
end

-- (must() first: it checks self before anything indexes it)
--- The value of entry at the view's commit (db:load).
-- @param entry the entry's name
-- @return the value (a map key -> value for a collection)
-- @raise invalid_argument, not_found (no such entry at the commit), corrupt
-- @usage
-- db:put("acme", "alice", "users", "u1", 1)
-- db:tag("acme", "v1")
-- db:put("acme", "alice", "users", "u1", 2)
-- local v = db:at("acme", "v1")
-- assert(v:load("users").u1 == 1)
function View:load(entry)
  local d = must(self, entry, "load")
  return self._db:load(self._tenant, entry, d)
end

--- One record, or the list of values, at the view's commit (db:get).
-- @param entry the collection's name
-- @param key the record's key, or nil for every value
-- @return the record (nil when absent), or a list
-- @raise invalid_argument, not_found, type_mismatch
-- @usage
-- db:put("acme", "alice", "users", "u1", 1)
-- db:tag("acme", "v1")
-- db:put("acme", "alice", "users", "u1", 2)
-- local v = db:at("acme", "v1")
-- assert(v:get("users", "u1") == 1)
function View:get(entry, key)
  local d = must(self, entry, "get")
  return self._db:get(self._tenant, entry, key, d)
end

--- Iterates key, value at the view's commit (db:records).
-- @param entry the collection's name
-- @return an iterator of key, value
-- @raise invalid_argument, not_found, type_mismatch
-- @usage
-- db:put("acme", "alice", "users", "u1", 1)
-- db:tag("acme", "v1")
-- db:put("acme", "alice", "users", "u1", 2)
-- local v = db:at("acme", "v1")
-- for k, value in v:records("users") do assert(value == 1) end
function View:records(entry)
  local d = must(self, entry, "records")
  return self._db:records(self._tenant, entry, d)
end

--- A query at the view's commit (db:query, without opts.digest).
-- @param entry the collection's name
-- @param opts nil or query's options (no digest)
-- @return an iterator of key, value
-- @raise invalid_argument, not_found, type_mismatch
-- @usage
-- db:put("acme", "alice", "users", "u1", 1)
-- db:tag("acme", "v1")
-- db:put("acme", "alice", "users", "u1", 2)
-- local v = db:at("acme", "v1")
-- for k, value in v:query("users", { prefix = "u" }) do assert(value == 1) end
function View:query(entry, opts)
  local d = must(self, entry, "query")
  if opts ~= nil and type(opts) ~= "table" then
    raise("invalid_argument", "opts must be a table, got %s", type(opts))
  end
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  if o.digest ~= nil then raise("invalid_argument", "a view's query takes no digest (the view names it)") end
  o.digest = d
  return self._db:query(self._tenant, entry, o)
end

--- Digests of entry's versions up to the view's commit, newest first.
-- @param entry the entry's name
-- @param max_items nil or the most digests to return
-- @return a list of digests
-- @raise invalid_argument, not_found
-- @usage
-- db:put("acme", "alice", "users", "u1", 1)
-- db:tag("acme", "v1")
-- db:put("acme", "alice", "users", "u1", 2)
-- local v = db:at("acme", "v1")
-- assert(#v:history("users") == 1)
function View:history(entry, max_items)
  local d = must(self, entry, "history")
  return self._db:history(self._tenant, entry, d, max_items)
end

--- Whether entry exists at the view's commit.
-- @param entry the entry's name
-- @return true or false
-- @raise invalid_argument
-- @usage
-- db:put("acme", "alice", "users", "u1", 1)
-- db:tag("acme", "v1")
-- db:put("acme", "alice", "users", "u1", 2)
-- local v = db:at("acme", "v1")
-- assert(v:exists("users") and not v:exists("config"))
function View:exists(entry) return digest_of(self, entry, "exists") ~= nil end

--- The digest of entry's version at the view's commit.
-- @param entry the entry's name
-- @return a digest, or nil
-- @raise invalid_argument
-- @usage
-- db:put("acme", "alice", "users", "u1", 1)
-- db:tag("acme", "v1")
-- db:put("acme", "alice", "users", "u1", 2)
-- local v = db:at("acme", "v1")
-- assert(v:get_digest("users") == db:history("acme", "users")[2])
function View:get_digest(entry) return digest_of(self, entry, "get_digest") end

--- The entries at the view's commit.
-- @return a sorted list of names
-- @raise invalid_argument (not called as a method)
-- @usage
-- db:put("acme", "alice", "users", "u1", 1)
-- db:tag("acme", "v1")
-- db:put("acme", "alice", "users", "u1", 2)
-- local v = db:at("acme", "v1")
-- assert(v:entries()[1] == "users")
function View:entries()
  if getmetatable(self) ~= View then raise("invalid_argument", "call it as view:entries()") end
  return (commits.entries(self._db, self._tenant, self._c))
end

function View:__tostring() return ("mydb.view (%s at %s)"):format(self._tenant, self.commit) end

return view
