--- mydb.cmd.data: the subcommands that read and write
-- values: init, tenants, entries, get, load, put, save, delete, export, import.
local mydb = require "mydb"
local errors = require "mydb.errors"
local dump = require "mydb.cmd.dump"
local progress = require "mydb.progress"
local X = require "mydb.cmd.context"
local out = X.out
local json = X.json
local root_of = X.root_of
local open = X.open
local user_of = X.user_of
local on_tenant = X.on_tenant
local need = X.need
local at_most = X.at_most
local value_arg = X.value_arg
local reader = X.reader

local C = {}

C.init = { help = "init [TENANT]\n  Creates the store (--db) if needed, and the tenant (TENANT or --tenant).",
  values = { backend = true } }
function C.init.run(ctx)
  at_most(ctx, 1)
  local root = root_of(ctx)
  ctx.db = mydb.open(root, ctx.opt.backend and { backend = ctx.opt.backend } or nil)
  local t = ctx.pos[1] or ctx.opt.tenant or os.getenv("MYDB_TENANT")
  if t then ctx.db:init(t) end
  if ctx.opt.json then return json({ root = root, tenant = t }) end
  out(("initialized %s%s"):format(root, t and (" tenant " .. t) or ""))
end

C.tenants = { help = "tenants\n  Lists the tenants, one a line." }
function C.tenants.run(ctx)
  at_most(ctx, 0)
  local list = open(ctx):tenants()
  if ctx.opt.json then return json(list) end
  for _, t in ipairs(list) do out(t) end
end

C.entries = { help = "entries [--rev REV]\n  Lists the tenant's entries, one a line.", values = { rev = true } }
function C.entries.run(ctx)
  at_most(ctx, 0)
  local db, t = on_tenant(ctx)
  local list = reader(ctx, db, t):entries()
  if ctx.opt.json then return json(list) end
  for _, e in ipairs(list) do out(e) end
end

C.get = { help = "get ENTRY [KEY] [--rev REV]\n  Prints a record (or all records, key -> record) as canonical JSON.",
  values = { rev = true } }
function C.get.run(ctx)
  need(ctx, 1, "ENTRY"); at_most(ctx, 2)
  local db, t = on_tenant(ctx)
  local r = reader(ctx, db, t)
  local e, k = ctx.pos[1], ctx.pos[2]
  if k == nil then return json(r:load(e)) end
  local v = r:get(e, k)
  if v == nil then errors.raise("not_found", "no key '%s' in %s", k, e) end
  json(v)
end

C.load = { help = "load ENTRY [--rev REV]\n  Prints the entry's value as canonical JSON.", values = { rev = true } }
function C.load.run(ctx)
  need(ctx, 1, "ENTRY"); at_most(ctx, 1)
  local db, t = on_tenant(ctx)
  json(reader(ctx, db, t):load(ctx.pos[1]))
end

C.put = { help = "put ENTRY KEY [VALUE] [-m MSG]\n  Writes a record; VALUE is JSON (stdin when absent or '-').",
  values = { message = true } }
function C.put.run(ctx)
  need(ctx, 2, "ENTRY KEY"); at_most(ctx, 3)
  local db, t = on_tenant(ctx)
  local v = value_arg(ctx, 3)
  local r = db:put(t, user_of(ctx), ctx.pos[1], ctx.pos[2], v, { message = ctx.opt.message })
  if ctx.opt.json then return json({ written = r }) end
  if not r then out("unchanged") end
end

C.save = { help = "save ENTRY [VALUE] [-m MSG]\n  Saves a snapshot; VALUE is JSON (stdin when absent or '-'). Prints its digest.",
  values = { message = true } }
function C.save.run(ctx)
  need(ctx, 1, "ENTRY"); at_most(ctx, 2)
  local db, t = on_tenant(ctx)
  local d = db:save(t, user_of(ctx), ctx.pos[1], value_arg(ctx, 2), { message = ctx.opt.message })
  if ctx.opt.json then return json({ digest = d }) end
  out(d)
end

C.delete = { help = "delete ENTRY [KEY] [-m MSG]\n  Deletes a record, or without KEY drops the entry.",
  values = { message = true } }
function C.delete.run(ctx)
  need(ctx, 1, "ENTRY"); at_most(ctx, 2)
  local db, t = on_tenant(ctx)
  local o = { message = ctx.opt.message }
  local r
  if ctx.pos[2] then
    r = db:delete(t, user_of(ctx), ctx.pos[1], ctx.pos[2], o)
  else
    r = db:drop(t, user_of(ctx), ctx.pos[1], o)
  end
  if ctx.opt.json then return json({ deleted = r }) end
  if not r then
    errors.raise("not_found", "nothing to delete: %s%s", ctx.pos[1], ctx.pos[2] and ("/" .. ctx.pos[2]) or "")
  end
end

C.export = { help = "export [--latest] [--rev REV]\n"
    .. "  The tenant as JSON lines, one per commit oldest first along the branch's first\n"
    .. "  parents (--latest: one line, the state). `mydb import` reads them back.",
  flags = { latest = true }, values = { rev = true } }
function C.export.run(ctx)
  at_most(ctx, 0)
  local db, t = on_tenant(ctx)
  local rev = ctx.opt.rev or db:current_branch(t)
  dump.export(db, t, rev, ctx.opt.latest, out)
end

C.import = { help = "import [FILE]\n  Reads `mydb export` lines (FILE or stdin) into the tenant: one commit per line." }
function C.import.run(ctx)
  at_most(ctx, 1)
  local db, t = on_tenant(ctx, true)
  local f = io.stdin
  if ctx.pos[1] and ctx.pos[1] ~= "-" then
    f = io.open(ctx.pos[1], "rb")
    if not f then errors.raise("not_found", "cannot read '%s'", ctx.pos[1]) end
  end
  -- a file's lines are counted first: the bar then shows how far along
  local total
  if f ~= io.stdin then
    total = 0
    for l in f:lines() do if l:match("%S") then total = total + 1 end end
    f:seek("set")
  end
  local p <close> = progress.closing("import")
  local done = 0
  local ok, n = pcall(dump.import, db, t, user_of(ctx), f:lines(), function()
    done = done + 1
    p.update(t, done, total)
  end)
  if f ~= io.stdin then f:close() end
  if not ok then error(n, 0) end
  if ctx.opt.json then return json({ commits = n }) end
  out(("imported %d commit%s"):format(n, n == 1 and "" or "s"))
end

return C
