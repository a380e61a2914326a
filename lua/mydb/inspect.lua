--- mydb.inspect: looking inside a store without writing much Lua.
--
--   local inspect = require "mydb.inspect"
--   inspect.tenants(db)                  --> {"acme", ...}
--   inspect.entries(db, "acme")          --> {"config", ...}
--   inspect.log(db, "acme", "config", n) --> {{digest=, parent=, user_id=, date=}, ...}
--   inspect.show(db, "acme", "config" [, digest]) --> JSON text
--   inspect.verify(db [, tenant])        --> what db:verify returns, or nil, msg
--
-- mydb-lua's inspection commands (--tenants, --log, ...) and its prompt
-- helpers print what these return, through the format_* functions.
-- Errors are mydb error values, raised as by the rest of the API.
local core = require "mydb.core"
local errors = require "mydb.errors"
local collection = require "mydb.collection"

local inspect = { _VERSION = "mydb.inspect 0.1" }

local DEFAULT_LOG = 1000

function inspect.tenants(db) return db:tenants() end

function inspect.entries(db, tenant) return db:entries(tenant) end

--- The versions of entry, newest first (at most n, default 1000): tables
-- {digest=, parent=, user_id=, date=}.
function inspect.log(db, tenant, entry, n)
  local digests = db:history(tenant, entry, nil, n or DEFAULT_LOG)
  local out = {}
  for i, d in ipairs(digests) do out[i] = db:meta(tenant, entry, d) end
  return out
end

--- One line per version: DIGEST, USER and DATE separated by tabs.
function inspect.format_log(versions)
  local lines = {}
  for i, v in ipairs(versions) do
    lines[i] = ("%s\t%s\t%s"):format(v.digest, tostring(v.user_id), tostring(v.date))
  end
  return table.concat(lines, "\n")
end

local COLLECTION_PREFIX = '{"__collection__":'

--- A version of entry as JSON: the snapshot exactly as stored (its
-- canonical bytes, metadata included). A record collection's stored
-- snapshot only names its tree, so its records are added under
-- "__records__", each record's stored canonical JSON by key order.
-- The digest, when given, is read from the tenant's objects as is.
function inspect.show(db, tenant, entry, digest)
  local meta = db:meta(tenant, entry, digest) -- validates, resolves the head
  local store = db._store
  local bytes = store:read(tenant, meta.digest)
  if bytes:sub(1, #COLLECTION_PREFIX) ~= COLLECTION_PREFIX then return bytes end
  local _, m = core.decode_snapshot(bytes)
  local info = m and m.collection
  if type(info) ~= "table" then
    errors.raise("corrupt", "collection snapshot %s is damaged", meta.digest)
  end
  local parts = {}
  if info.root then
    local t = collection.tree(store, tenant, collection.node_cache())
    for k, raw in collection.iter(t, info.root) do
      parts[#parts + 1] = core.json_string(k) .. ":" .. raw
    end
  end
  return bytes:sub(1, -2) .. ',"__records__":{' .. table.concat(parts, ",") .. "}}"
end

--- True when this build's db has a verify method.
function inspect.can_verify(db) return type(db.verify) == "function" end

--- Runs db:verify(tenant); nil, "verify: not available in this build"
-- when there is none.
function inspect.verify(db, tenant)
  if not inspect.can_verify(db) then return nil, "verify: not available in this build" end
  return db:verify(tenant)
end

--- Reads what db:verify returned as ok (boolean) and lines to print.
-- Accepts true/false/nil, (false|nil, message), or a report table
-- {ok=, problems|errors = {...}} or a plain list of problems.
function inspect.verify_result(r1, r2)
  local lines = {}
  local function add(p)
    if type(p) == "table" and not getmetatable(p) then
      local path = p.path or p.object or p.digest or p.entry
      local what = p.message or p.problem or p.error or p.code
      p = (path and (tostring(path) .. ": ") or "") .. tostring(what)
    end
    lines[#lines + 1] = tostring(p)
  end
  if r1 == true or (r1 == nil and r2 == nil) then return true, lines end
  if r1 == false or r1 == nil then
    if r2 ~= nil then
      if type(r2) == "table" and not getmetatable(r2) then
        for _, p in ipairs(r2) do add(p) end
      else
        add(r2)
      end
    end
    return false, lines
  end
  if type(r1) == "table" then
    local problems = r1.problems or r1.errors or r1
    for _, p in ipairs(problems) do add(p) end
    local ok = r1.ok
    if ok == nil then ok = #lines == 0 end
    return ok and true or false, lines
  end
  add(r1)
  return false, lines
end

return inspect
