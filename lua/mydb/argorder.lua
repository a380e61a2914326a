--- mydb.argorder: the deprecated argument order of set_ttl, create_index
-- and drop_index (user last and optional), read for one more release.
--
-- The documented order puts user second, as every other write does:
--   set_ttl(tenant, user, entry, field [, opts])
--   create_index(tenant, user, entry, name, key_fn [, opts])
--   drop_index(tenant, user, entry, name [, opts])
-- The old one was (tenant, entry, field [, user [, opts]]) and so on.
--
-- Which order a call is in, decided from the arguments alone where their
-- types allow only one reading, else from the store:
--  1. Types. The new order needs a string entry at argument 3 (set_ttl: a
--     field that is a string or false at 4, false meaning "remove"; nil
--     there is the old order's omitted user), a name at 4 (drop_index), a
--     key_fn at 5 (create_index). So: create_index with a function at 4,
--     or nothing (nil, a table) at 5, is old; with a function at 5, new.
--     drop_index with no string at 4 is old. set_ttl with nil or false at
--     3 is old; with false at 4, new.
--  2. Only strings, in both orders' places (the old order with an explicit
--     user): old when argument 2 names an entry of the tenant (on the
--     handle's branch) and argument 3 names none; new otherwise.
--  3. set_ttl(tenant, a, b) or (tenant, a, b, nil): the old order (set
--     field b on entry a), unless b names an entry and a does not: then
--     the new order with field nil (remove the TTL of entry b).
-- A new-order call of step 1's shapes is never read as old. One of step
-- 2's is read as old only when its user id is the name of an existing
-- entry while its entry does not exist yet; one of step 3's (a removal
-- written with nil, not false) when its user id names an entry or its
-- entry does not exist. The warning printed says how the call was read.
--
-- Each call read in the old order prints one warning per call site
-- (file:line of the caller) per process on stderr, unless
-- mydb.deprecation_warnings is false.
local errors = require "mydb.errors"

local argorder = {}

argorder.REMOVED_IN = "0.3.0"

local warned = {} -- call site -> true

local NEW = {
  set_ttl = "db:set_ttl(tenant, user, entry, field [, opts])",
  create_index = "db:create_index(tenant, user, entry, name, key_fn [, opts])",
  drop_index = "db:drop_index(tenant, user, entry, name [, opts])",
}

local function warn_once(on, method, entry)
  if not on then return end
  local where = errors.caller(3) or "?"
  if warned[method .. "\0" .. where] then return end
  warned[method .. "\0" .. where] = true
  io.stderr:write(("mydb: warning: %s: db:%s with user last is deprecated (read so, entry %q) and will be "
    .. "removed in mydb %s; call %s (silence: mydb.deprecation_warnings = false)\n"):format(where, method,
    tostring(entry), argorder.REMOVED_IN, NEW[method]))
end

-- Whether a and b name entries of the tenant (false, false when that
-- cannot be known: the call's own checks will raise).
local function entries_exist(db, tenant, a, b)
  if type(tenant) ~= "string" or type(a) ~= "string" or type(b) ~= "string" then return false, false end
  if not (pcall(db._require_init, db, tenant)) then return false, false end
  local oka, ha = pcall(db._head, db, tenant, a)
  local okb, hb = pcall(db._head, db, tenant, b)
  return oka and ha ~= nil, okb and hb ~= nil
end

-- Step 2: argument 2 is an entry of the tenant and argument 3 is not.
local function store_says_old(db, tenant, a2, a3)
  local e2, e3 = entries_exist(db, tenant, a2, a3)
  return e2 and not e3
end

--- user, entry, field, opts of a set_ttl call (arguments after tenant).
function argorder.set_ttl(db, on, tenant, a2, a3, a4, a5)
  local old
  if a3 == nil or a3 == false then old = true
  elseif a4 == nil then
    local e2, e3 = entries_exist(db, tenant, a2, a3)
    old = not (e3 and not e2)
  elseif a4 == false then old = false
  elseif type(a4) == "string" then old = store_says_old(db, tenant, a2, a3)
  else old = true end -- (a bad user in the old order: its check says so)
  if not old then return a2, a3, a4, a5 end
  warn_once(on, "set_ttl", a2)
  return a4 or "mydb", a2, a3, a5
end

--- user, entry, name, key_fn, opts of a create_index call.
function argorder.create_index(db, on, tenant, a2, a3, a4, a5, a6)
  local old
  if type(a4) == "function" then old = true
  elseif type(a5) == "function" then old = false
  elseif a5 == nil or type(a5) == "table" then old = true
  else old = store_says_old(db, tenant, a2, a3) end
  if not old then return a2, a3, a4, a5, a6 end
  warn_once(on, "create_index", a2)
  if type(a5) == "table" and a6 == nil then a5, a6 = nil, a5 end -- (tenant, entry, name, key_fn, opts)
  return a5 or "mydb", a2, a3, a4, a6
end

--- user, entry, name, opts of a drop_index call.
function argorder.drop_index(db, on, tenant, a2, a3, a4, a5)
  local old
  if type(a4) ~= "string" then old = true
  else old = store_says_old(db, tenant, a2, a3) end
  if not old then return a2, a3, a4, a5 end
  warn_once(on, "drop_index", a2)
  if type(a4) == "table" and a5 == nil then a4, a5 = nil, a4 end
  return a4 or "mydb", a2, a3, a5
end

return argorder
