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

-- key, stored JSON of each record of a collection version, in key order.
local function raw_records(db, tenant, entry, digest)
  return db:raw_records(tenant, entry, digest)
end

local function json_str(s) return core.json_string(s) end

--- A version of entry as JSON. A snapshot is printed exactly as stored:
-- its canonical bytes, metadata (__date__, __parent__, __user_id__)
-- included. A record collection's stored snapshot only describes its
-- tree, so it is shown as {"__collection__":{"count":N}, metadata,
-- "__records__":{key: record, ...}} with each record's stored canonical
-- JSON, in key order. The digest, when given, is read from the tenant's
-- objects as is (it is not checked to be in entry's history).
function inspect.show(db, tenant, entry, digest)
  local meta = db:meta(tenant, entry, digest) -- validates, resolves the head
  local bytes = db._store:read(tenant, meta.digest)
  if bytes:sub(1, #COLLECTION_PREFIX) ~= COLLECTION_PREFIX then return bytes end
  local parts, n = {}, 0
  for k, raw in raw_records(db, tenant, entry, meta.digest) do
    n = n + 1
    parts[n] = json_str(k) .. ":" .. raw
  end
  return ('{"__collection__":{"count":%d},"__date__":%s,"__parent__":[%s],"__records__":{%s},"__user_id__":%s}')
      :format(n, json_str(tostring(meta.date)), meta.parent and json_str(meta.parent) or "null",
        table.concat(parts, ","), json_str(tostring(meta.user_id)))
end

--- True when this build's db has a verify method.
function inspect.can_verify(db) return type(db.verify) == "function" end

--- Runs db:verify(tenant); nil, "verify: not available in this build"
-- when there is none.
function inspect.verify(db, tenant)
  if not inspect.can_verify(db) then return nil, "verify: not available in this build" end
  return db:verify(tenant)
end

--- Reads what db:verify returned: ok (boolean), lines to print (one per
-- problem) and a summary line. db:verify returns a list of problems
-- {kind=, tenant=, entry=, digest=, message=} (empty when sound) and a
-- table of counts; true/false/nil and (nil, message) are read too.
function inspect.verify_result(r1, r2)
  local lines = {}
  local function add(p)
    if type(p) == "table" and not getmetatable(p) then
      local where = {}
      for _, k in ipairs { "tenant", "entry", "digest", "path" } do
        if p[k] ~= nil then where[#where + 1] = tostring(p[k]) end
      end
      local what = {}
      if p.kind or p.code then what[#what + 1] = tostring(p.kind or p.code) end
      if p.message then what[#what + 1] = tostring(p.message) end
      p = table.concat(where, " ") .. (#where > 0 and ": " or "") .. table.concat(what, ": ")
    end
    lines[#lines + 1] = tostring(p)
  end
  local ok
  if r1 == true or (r1 == nil and r2 == nil) then
    ok = true
  elseif r1 == false or r1 == nil then
    if type(r2) == "table" and not getmetatable(r2) then
      for _, p in ipairs(r2) do add(p) end
    elseif r2 ~= nil then
      add(r2)
    end
    ok = false
  elseif type(r1) == "table" then
    for _, p in ipairs(r1.problems or r1.errors or r1) do add(p) end
    ok = r1.ok
    if ok == nil then ok = #lines == 0 end
  else
    add(r1)
    ok = false
  end
  local summary = ok and "ok" or ("damaged: %d problem%s"):format(#lines, #lines == 1 and "" or "s")
  if type(r2) == "table" and type(r1) == "table" then
    local counts = {}
    for k, v in pairs(r2) do
      if type(v) == "number" then counts[#counts + 1] = ("%s=%s"):format(k, v) end
    end
    table.sort(counts)
    if #counts > 0 then summary = summary .. " (checked " .. table.concat(counts, ", ") .. ")" end
  end
  return ok and true or false, lines, summary
end

return inspect
