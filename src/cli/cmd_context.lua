--- mydb.cmd.context: what every `mydb` subcommand shares: output, the
-- store and tenant the options name, argument checks, values from the
-- command line.
local mydb = require "mydb"
local errors = require "mydb.errors"
local args = require "mydb.cmd.args"
local values = require "mydb.cmd.values"

local X = {}

local function out(line) io.stdout:write(line, "\n") end
local function json(v) out(values.encode(v)) end
local usage = args.usage

-- ------------------------------------------------------------ context

-- ctx: {opt=, pos=, root=, db=} for one run.
local function root_of(ctx) return ctx.opt.db or os.getenv("MYDB_ROOT") or ".mytools_db" end

local function is_dir(path)
  return os.execute("test -d '" .. path:gsub("'", "'\\''") .. "'") == true
end

--- The open store. Only `init`, `import` and `clone`/`copy` targets may
-- create one: every other command refuses a root that does not exist.
local function open(ctx, may_create)
  if ctx.db then return ctx.db end
  local root = root_of(ctx)
  local create = may_create == true or root:match("^memory:") ~= nil
  -- (an existing directory that holds no store is refused too)
  local ok, db = pcall(mydb.open, root, { create = create })
  if not ok then
    if not create and errors.is(db, "not_found") then
      errors.raise("not_found", "no store at '%s' (create one with 'mydb init')", root)
    end
    error(db, 0)
  end
  ctx.db = db
  return db
end

local function tenant_of(ctx)
  local t = ctx.opt.tenant or os.getenv("MYDB_TENANT")
  if not t then usage("no tenant: give --tenant T (or set MYDB_TENANT)") end
  return t
end

local function user_of(ctx)
  return ctx.opt.user or os.getenv("MYDB_USER") or os.getenv("USER") or "mydb"
end

-- The store and tenant, on --branch when given.
local function on_tenant(ctx, may_create)
  local db, t = open(ctx, may_create), tenant_of(ctx)
  if ctx.opt.branch then db:checkout(t, ctx.opt.branch) end
  return db, t
end

local function need(ctx, n, what)
  if #ctx.pos < n then usage("'%s' needs %s", ctx.command, what) end
end

local function at_most(ctx, n)
  if #ctx.pos > n then usage("'%s' takes at most %d argument%s", ctx.command, n, n == 1 and "" or "s") end
end

-- A value from the command line, or stdin when absent or "-".
local function value_arg(ctx, i)
  local text = ctx.pos[i]
  if text == nil or text == "-" then text = values.stdin() end
  return values.decode(text, "value")
end

local function short(id) return id and id:sub(1, 12) or "-" end

local function sorted_keys(t)
  local ks = {}
  for k in pairs(t) do ks[#ks + 1] = k end
  table.sort(ks)
  return ks
end

-- A read view of the tenant: at --rev when given, else the --branch (or
-- the current branch) head, read through the handle.
local function reader(ctx, db, t, rev)
  rev = rev or ctx.opt.rev
  if rev then return db:at(t, rev) end
  return {
    load = function(_, e) return db:load(t, e) end,
    get = function(_, e, k) return db:get(t, e, k) end,
    exists = function(_, e) return db:exists(t, e) end,
    entries = function() return db:entries(t) end,
  }
end

local function commit_label(c)
  local msg = (c.message or ""):match("^[^\n]*")
  return (("%s %s %s %s"):format(short(c.id), c.user_id or "-", c.date or "", msg):gsub("%s+$", ""))
end

local function path_text(p)
  local t = {}
  for i, x in ipairs(p or {}) do t[i] = tostring(x) end
  return table.concat(t, ".")
end

local function sync_report(ctx, verb, r)
  if ctx.opt.json then return json(r) end
  out(("%s: %d commits, %d objects, %d bytes; updated: %s"):format(verb, r.commits or 0, r.objects or 0,
    r.bytes or 0, r.updated and #r.updated > 0 and table.concat(r.updated, " ") or "nothing"))
end

X.usage = usage
X.out = out
X.json = json
X.root_of = root_of
X.is_dir = is_dir
X.open = open
X.tenant_of = tenant_of
X.user_of = user_of
X.on_tenant = on_tenant
X.need = need
X.at_most = at_most
X.value_arg = value_arg
X.short = short
X.sorted_keys = sorted_keys
X.reader = reader
X.commit_label = commit_label
X.path_text = path_text
X.sync_report = sync_report

return X
