--- mydb.cli: the Lua half of mydb-lua (embedded in the program only).
--
-- C (src/cli/*.c) parses the command line and runs the REPL; this module
-- loads handler modules, binds `db` / `t`, runs the inspection commands and
-- provides the prompt helpers.
local mydb = require "mydb"
local errors = require "mydb.errors"
local inspect = require "mydb.inspect"
local native = require "mydb.cli.native"

local cli = {}

cli.tenant = nil -- the --tenant one, when given

-- ------------------------------------------------------------- handlers

-- mydb.NAME (a field of mydb, or the module), when it has register().
local function registry(name)
  local reg = rawget(mydb, name)
  if type(reg) ~= "table" then
    local ok, r = pcall(require, "mydb." .. name)
    reg = ok and r or nil
  end
  if type(reg) == "table" and type(reg.register) == "function" then return reg end
end

local function is_handler(h)
  return type(h) == "table" and type(h.tag) == "string"
      and (h.serialize ~= nil or h.serialize_to_bytes ~= nil)
end

local function registered(reg, tag)
  if type(reg.list) ~= "function" then return false end
  for _, t in ipairs(reg.list()) do
    if t == tag or (type(t) == "table" and t.tag == tag) then return true end
  end
  return false
end

-- Without the registry API (mydb.handlers) in this build: the serializer's
-- tables, with the same checks the issue asks of register().
local function register_fallback(h)
  local s = require "mydb.serializer"
  if s.handler_by_tag[h.tag] == h then return end
  if s.handler_by_tag[h.tag] then error(("handler tag '%s' is already registered"):format(h.tag), 0) end
  if s.RESERVED_TAGS[h.tag] or h.tag:sub(1, 2) == "__" then
    error(("handler tag '%s' is reserved"):format(h.tag), 0)
  end
  if type(h.is_eligible_for) ~= "function" then
    error(("handler '%s' has no is_eligible_for function"):format(h.tag), 0)
  end
  local inline = type(h.serialize) == "function" and type(h.deserialize) == "function"
  local ref = type(h.serialize_to_bytes) == "function" and type(h.deserialize_from_bytes) == "function"
  if not inline and not ref then
    error(("handler '%s' needs serialize/deserialize or serialize_to_bytes/deserialize_from_bytes")
      :format(h.tag), 0)
  end
  s.handlers[#s.handlers + 1] = h
  s.handler_by_tag[h.tag] = h
  s.changed()
end

--- Runs one handler module file. A module returning a handler table
-- ({tag=, is_eligible_for=, serialize=, ...}) that is not registered yet
-- gets registered; a module returning a policy ({use_refs=}) is registered
-- as a policy when mydb.policies exists. Whatever it returns is also
-- package.loaded["mydb.handlers.NAME"] (unless that is taken), so a later
-- require of the same name does not run it twice.
function cli.load_handler(path)
  local chunk, err = loadfile(path)
  if not chunk then error(err, 0) end
  local name = path:match("([^/]+)%.lua$") or path
  local modname = "mydb.handlers." .. name
  local result = chunk(modname, path)
  if result ~= nil and package.loaded[modname] == nil then package.loaded[modname] = result end
  if is_handler(result) then
    local reg = registry("handlers")
    if reg then
      if not registered(reg, result.tag) then reg.register(result) end
    else
      register_fallback(result)
    end
  elseif type(result) == "table" and type(result.use_refs) == "function" then
    local policies = registry("policies")
    if policies then policies.register(result) end
  end
end

-- ----------------------------------------------------- db and tenant handle

--- A handle on one tenant: every db method that takes the tenant first
-- (its first parameter after self is named `tenant`), without it:
-- t:load("config") is db:load(tenant, "config").
function cli.tenant_handle(db, tenant)
  local methods = {}
  local Db = getmetatable(db).__index
  for name, f in pairs(type(Db) == "table" and Db or {}) do
    if type(f) == "function" and not name:match("^_") and debug.getlocal(f, 2) == "tenant" then
      methods[name] = function(self, ...) return f(self.db, self.tenant, ...) end
    end
  end
  local mt = {
    __index = methods,
    __name = "mydb.tenant",
    __tostring = function(self) return ("mydb.tenant '%s' of %s"):format(self.tenant, tostring(self.db)) end,
  }
  return setmetatable({ db = db, tenant = tenant }, mt)
end

function cli.bind(root, tenant)
  -- --db opens a store, never creates one (a mistyped path would): the
  -- message to print when there is none
  local ok, db = pcall(mydb.open, root, { create = false })
  if not ok then
    if errors.is(db, "not_found") then
      return ("mydb: not_found: no store at '%s' (create one with: mydb --db '%s' init)"):format(root, root)
    end
    error(db, 0)
  end
  _G.db = db
  if tenant then
    cli.tenant = tenant
    _G.t = cli.tenant_handle(db, tenant)
  end
  _G.mydb_inspect = cli.helpers
end

-- --------------------------------------------------------- prompt helpers

local function the_db()
  local db = rawget(_G, "db")
  if db == nil then
    error("no database: start mydb-lua with --db ROOT, or set db = require('mydb').open(ROOT)", 3)
  end
  return db
end

local function tenant_or_bound(tenant)
  if tenant == nil then tenant = cli.tenant end
  if tenant == nil then error("tenant expected (no --tenant given)", 3) end
  return tenant
end

local function out(s)
  if s ~= "" then io.stdout:write(s, "\n") end
end

local helpers = {}
cli.helpers = helpers

function helpers.tenants() out(table.concat(inspect.tenants(the_db()), "\n")) end

function helpers.entries(tenant)
  out(table.concat(inspect.entries(the_db(), tenant_or_bound(tenant)), "\n"))
end

function helpers.log(tenant, entry, n)
  out(inspect.format_log(inspect.log(the_db(), tenant_or_bound(tenant), entry, n)))
end

function helpers.show(tenant, entry, digest)
  out(inspect.show(the_db(), tenant_or_bound(tenant), entry, digest))
end

function helpers.verify(tenant)
  local db = the_db()
  if not inspect.can_verify(db) then
    out("verify: not available in this build")
    return false
  end
  local ok, lines, summary = inspect.verify_result(inspect.verify(db, tenant))
  out(table.concat(lines, "\n"))
  out(summary)
  return ok
end

--- pp(value [, opts]): prints the readable rendering of value.
function helpers.pp(v, opts) io.stdout:write(native.pretty(v, opts), "\n") end

helpers.pretty = native.pretty
helpers.complete = native.complete

--- Binds mydb_inspect, the module as `mydb`, and the helpers as globals
-- where the names are free.
-- The module itself is `mydb` at the prompt too (when the name is free),
-- so `mydb.open(...)` works beside the --db handle `db`.
function cli.prompt_globals()
  if rawget(_G, "mydb_inspect") == nil then _G.mydb_inspect = helpers end
  if rawget(_G, "mydb") == nil then _G.mydb = mydb end
  for _, name in ipairs { "tenants", "entries", "log", "show", "verify", "pp" } do
    if rawget(_G, name) == nil then _G[name] = helpers[name] end
  end
end

-- ------------------------------------------------------ shell commands

--- Runs an inspection command; returns the exit status and a message for
-- stderr (user errors such as not_found: no traceback).
function cli.command(name, a1, a2, a3, limit)
  local db = _G.db
  local ok, code, msg = pcall(function()
    if name == "tenants" then
      out(table.concat(inspect.tenants(db), "\n"))
    elseif name == "entries" then
      out(table.concat(inspect.entries(db, a1), "\n"))
    elseif name == "log" then
      out(inspect.format_log(inspect.log(db, a1, a2, limit)))
    elseif name == "show" then
      out(inspect.show(db, a1, a2, a3))
    elseif name == "copy" then
      local r = require("mydb").copy(a1, a2, { backend = a3 })
      out(("copied %s (%s) to %s (%s): %d tenants, %d entries, %d objects, %d refs, %d bytes, in %.2f s")
        :format(a1, r.src_backend, a2, r.dst_backend, r.tenants, r.entries, r.objects, r.refs, r.bytes,
          r.seconds))
    elseif name == "clone" then
      local c, r = require("mydb").clone(a1, a2, { backend = a3 })
      c:close()
      out(("cloned %s to %s: %d tenants, %d commits, %d objects, %d bytes")
        :format(a1, a2, r.tenants, r.commits, r.objects, r.bytes))
    elseif name == "fetch" or name == "push" then
      local tenant = cli.tenant
      local r = db[name](db, tenant, a1, a2)
      out(("%s %s %s: %d commits, %d objects, %d bytes; updated: %s"):format(name, tenant, a1,
        r.commits, r.objects, r.bytes, #r.updated > 0 and table.concat(r.updated, " ") or "nothing"))
    elseif name == "verify" then
      if not inspect.can_verify(db) then return 2, "verify: not available in this build" end
      local sound, lines, summary = inspect.verify_result(inspect.verify(db, a1))
      out(table.concat(lines, "\n"))
      out(summary)
      return sound and 0 or 1
    else
      error("unknown command " .. tostring(name))
    end
    return 0
  end)
  if not ok then return 1, tostring(code) end
  return code, msg
end

return cli
