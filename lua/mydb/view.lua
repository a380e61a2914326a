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
function View:load(entry)
  local d = must(self, entry, "load")
  return self._db:load(self._tenant, entry, d)
end

function View:get(entry, key)
  local d = must(self, entry, "get")
  return self._db:get(self._tenant, entry, key, d)
end

function View:records(entry)
  local d = must(self, entry, "records")
  return self._db:records(self._tenant, entry, d)
end

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

function View:history(entry, max_items)
  local d = must(self, entry, "history")
  return self._db:history(self._tenant, entry, d, max_items)
end

function View:exists(entry) return digest_of(self, entry, "exists") ~= nil end

function View:get_digest(entry) return digest_of(self, entry, "get_digest") end

function View:entries()
  if getmetatable(self) ~= View then raise("invalid_argument", "call it as view:entries()") end
  return (commits.entries(self._db, self._tenant, self._c))
end

function View:__tostring() return ("mydb.view (%s at %s)"):format(self._tenant, self.commit) end

return view
