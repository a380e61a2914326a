--- mydb.cmd: the `mydb` command, a git-like shell interface over the API.
--
-- main(argv) parses the command line (mydb.cmd.args), opens the store,
-- runs one subcommand and returns the exit status: 0 ok, 1 error (printed
-- as "mydb: <code>: <message>" on stderr), 2 bad usage. Every subcommand
-- is a thin call of the Lua API; --json prints the API's result as JSON.
local mydb = require "mydb"
local errors = require "mydb.errors"
local args = require "mydb.cmd.args"
local values = require "mydb.cmd.values"
local graph = require "mydb.cmd.graph"
local dump = require "mydb.cmd.dump"
local progress = require "mydb.cmd.progress"
local inspect = require "mydb.inspect"

local cmd = {}

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
  if not may_create and not root:match("^memory:") and not is_dir(root) then
    errors.raise("not_found", "no store at '%s' (create one with 'mydb init')", root)
  end
  ctx.db = mydb.open(root)
  return ctx.db
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

-- ------------------------------------------------------------ commands

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

local function write_result(ctx, r, what)
  if ctx.opt.json then return json({ result = r }) end
  if r ~= false then out(what) end
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

local function commit_label(c)
  local msg = (c.message or ""):match("^[^\n]*")
  return (("%s %s %s %s"):format(short(c.id), c.user_id or "-", c.date or "", msg):gsub("%s+$", ""))
end

C.log = { help = "log [ENTRY] [-n N] [--rev REV] [--since T] [--until T] [--graph]\n"
    .. "  The commits, newest first: ID USER DATE MESSAGE. --graph draws the commit graph\n"
    .. "  (every parent of merges) as `git log --graph` does.",
  values = { n = true, rev = true, since = true, ["until"] = true }, flags = { graph = true } }
function C.log.run(ctx)
  at_most(ctx, 1)
  local db, t = on_tenant(ctx)
  local n = ctx.opt.n and math.tointeger(tonumber(ctx.opt.n))
  if ctx.opt.n and (not n or n < 1) then usage("-n needs a positive integer") end
  local list = db:log(t, { rev = ctx.opt.rev or ctx.opt.branch, max = n, entry = ctx.pos[1],
    since = ctx.opt.since, ["until"] = ctx.opt["until"] })
  if ctx.opt.json then return json(list) end
  if ctx.opt.graph then
    for _, l in ipairs(graph.lines(list, commit_label)) do out(l) end
  else
    for _, c in ipairs(list) do out(commit_label(c)) end
  end
end

C.show = { help = "show REV[:ENTRY[/KEY]]\n  A commit (its fields and changed entries), or an entry's value, or one record, at REV." }
function C.show.run(ctx)
  need(ctx, 1, "REV[:ENTRY[/KEY]]"); at_most(ctx, 1)
  local db, t = on_tenant(ctx)
  local rev, path = ctx.pos[1]:match("^([^:]+):(.*)$")
  if not rev then
    local id = db:resolve(t, ctx.pos[1])
    local c = db:log(t, { rev = id, max = 1 })[1]
    if ctx.opt.json then return json(c) end
    out("commit " .. c.id)
    if #(c.parents or {}) > 1 then out("merge " .. table.concat(c.parents, " ")) end
    out("user " .. tostring(c.user_id))
    out("date " .. tostring(c.date))
    out("")
    out("    " .. (c.message or ""))
    out("")
    for _, e in ipairs(c.entries or {}) do out(e) end
    return
  end
  local view = db:at(t, rev)
  local entry, key = path:match("^([^/]+)/(.*)$")
  if not entry then return json(view:load(path)) end
  local v = view:get(entry, key)
  if v == nil then errors.raise("not_found", "no key '%s' in %s at %s", key, entry, rev) end
  json(v)
end

local function path_text(p)
  local t = {}
  for i, x in ipairs(p or {}) do t[i] = tostring(x) end
  return table.concat(t, ".")
end

C.diff = { help = "diff A B [--entry E]\n  The changes from revision A to B: one line per change\n"
    .. "  (+ added, - removed, ~ modified) ENTRY[/KEY][.PATH] OLD -> NEW.",
  values = { entry = true } }
function C.diff.run(ctx)
  need(ctx, 2, "A B"); at_most(ctx, 2)
  local db, t = on_tenant(ctx)
  local list = db:diff(t, ctx.pos[1], ctx.pos[2], { entry = ctx.opt.entry })
  if ctx.opt.json then return json(list) end
  local sign = { added = "+", removed = "-", modified = "~" }
  for _, ch in ipairs(list) do
    local where = ch.entry .. (ch.key and ("/" .. ch.key) or "")
    local p = path_text(ch.path)
    if p ~= "" then where = where .. "." .. p end
    local l = (sign[ch.action] or "?") .. " " .. where
    if ch.action == "added" then
      l = l .. " " .. values.encode(ch.new)
    elseif ch.action == "removed" then
      l = l .. " " .. values.encode(ch.old)
    else
      l = l .. " " .. values.encode(ch.old) .. " -> " .. values.encode(ch.new)
    end
    out(l)
  end
end

C.blame = { help = "blame ENTRY [--rev REV]\n  Per key (or top-level field): the commit, user and date that gave it its value.",
  values = { rev = true } }
function C.blame.run(ctx)
  need(ctx, 1, "ENTRY"); at_most(ctx, 1)
  local db, t = on_tenant(ctx)
  local per_key, whole = db:blame(t, ctx.pos[1], ctx.opt.rev)
  if ctx.opt.json then return json({ keys = per_key, version = whole }) end
  for _, k in ipairs(sorted_keys(per_key)) do
    local b = per_key[k]
    out(("%s %s %s %s"):format(short(b.commit), b.user_id or "-", b.date or "", k))
  end
end

C.branch = { help = "branch [NAME [REV]] [-d NAME]\n  Lists the branches (* the current one), creates NAME at REV, or deletes one.",
  flags = { delete = true } }
function C.branch.run(ctx)
  at_most(ctx, 2)
  local db, t = on_tenant(ctx)
  if ctx.opt.delete then
    need(ctx, 1, "NAME")
    db:delete_branch(t, ctx.pos[1])
    return ctx.opt.json and json({ deleted = ctx.pos[1] }) or nil
  end
  if ctx.pos[1] then
    local id = db:branch(t, ctx.pos[1], ctx.pos[2])
    return ctx.opt.json and json({ branch = ctx.pos[1], commit = id }) or out(id)
  end
  local b = db:branches(t)
  if ctx.opt.json then return json(b) end
  local cur = db:current_branch(t)
  for _, name in ipairs(sorted_keys(b)) do out(("%s %s %s"):format(name == cur and "*" or " ", name, short(b[name]))) end
end

C.tag = { help = "tag [NAME [REV]] [-m MSG] [-d NAME]\n  Lists the tags, tags REV (default: the branch head), or deletes one.",
  flags = { delete = true }, values = { message = true } }
function C.tag.run(ctx)
  at_most(ctx, 2)
  local db, t = on_tenant(ctx)
  if ctx.opt.delete then
    need(ctx, 1, "NAME")
    db:delete_tag(t, ctx.pos[1])
    return ctx.opt.json and json({ deleted = ctx.pos[1] }) or nil
  end
  if ctx.pos[1] then
    local id = db:tag(t, ctx.pos[1], ctx.pos[2], ctx.opt.message)
    return ctx.opt.json and json({ tag = ctx.pos[1], commit = id }) or out(id)
  end
  local tags = db:tags(t)
  if ctx.opt.json then return json(tags) end
  for _, name in ipairs(sorted_keys(tags)) do out(("%s %s"):format(name, short(tags[name]))) end
end

C.merge = { help = "merge REV [--branch B] [--resolver NAME] [--no-ff] [-m MSG]\n"
    .. "  Merges REV into the branch (--branch, default main). Conflicts without a resolver:\n"
    .. "  status 1 and one line per conflict on stderr; nothing is written.",
  values = { resolver = true, message = true }, flags = { ["no-ff"] = true } }
function C.merge.run(ctx)
  need(ctx, 1, "REV"); at_most(ctx, 1)
  local db, t = on_tenant(ctx)
  local ok, r = pcall(db.merge, db, t, user_of(ctx), ctx.pos[1],
    { resolver = ctx.opt.resolver, no_ff = ctx.opt["no-ff"], message = ctx.opt.message })
  if not ok then
    if errors.is(r, "conflict") and r.conflicts then
      for _, c in ipairs(r.conflicts) do
        local p = path_text(c.path)
        io.stderr:write(("conflict: %s%s%s\n"):format(c.entry, c.key and ("/" .. c.key) or "", p ~= "" and ("." .. p) or ""))
      end
    end
    error(r, 0)
  end
  if ctx.opt.json then return json(r) end
  out(("%s %s"):format(r.fast_forward and "fast-forward" or "merged", r.commit or ""))
end

local function sync_report(ctx, verb, r)
  if ctx.opt.json then return json(r) end
  out(("%s: %d commits, %d objects, %d bytes; updated: %s"):format(verb, r.commits or 0, r.objects or 0,
    r.bytes or 0, r.updated and #r.updated > 0 and table.concat(r.updated, " ") or "nothing"))
end

-- Runs fn under a progress line.
local function with_progress(label, fn, ...)
  local p = progress.start(label)
  local res = table.pack(pcall(fn, ...))
  p.done(res[1])
  if not res[1] then error(res[2], 0) end
  return table.unpack(res, 2, res.n)
end

C.clone = { help = "clone URL DIR [--backend NAME]\n  A new store at DIR with every tenant of the store at URL (remote 'origin').",
  values = { backend = true } }
function C.clone.run(ctx)
  need(ctx, 2, "URL DIR"); at_most(ctx, 2)
  local c, r = with_progress("clone", mydb.clone, ctx.pos[1], ctx.pos[2], { backend = ctx.opt.backend })
  c:close()
  if ctx.opt.json then return json(r) end
  out(("cloned %s to %s: %d tenants, %d commits, %d objects, %d bytes"):format(ctx.pos[1], ctx.pos[2],
    r.tenants and (type(r.tenants) == "table" and #r.tenants or r.tenants) or 0, r.commits or 0,
    r.objects or 0, r.bytes or 0))
end

C.fetch = { help = "fetch REMOTE [BRANCH]\n  Brings the remote's branches (or one) as REMOTE/BRANCH, and its tags." }
function C.fetch.run(ctx)
  need(ctx, 1, "REMOTE"); at_most(ctx, 2)
  local db, t = on_tenant(ctx)
  sync_report(ctx, "fetch", with_progress("fetch", db.fetch, db, t, ctx.pos[1], ctx.pos[2]))
end

C.push = { help = "push REMOTE [BRANCH] [--force]\n  Sends the branch; only a fast-forward unless --force (else status 1, rejected).",
  flags = { force = true } }
function C.push.run(ctx)
  need(ctx, 1, "REMOTE"); at_most(ctx, 2)
  local db, t = on_tenant(ctx)
  sync_report(ctx, "push", with_progress("push", db.push, db, t, ctx.pos[1], ctx.pos[2],
    { force = ctx.opt.force or nil }))
end

C.pull = { help = "pull REMOTE [BRANCH] [--resolver NAME]\n  fetch, then merge REMOTE/BRANCH into the branch.",
  values = { resolver = true } }
function C.pull.run(ctx)
  need(ctx, 1, "REMOTE"); at_most(ctx, 2)
  local db, t = on_tenant(ctx)
  sync_report(ctx, "pull", with_progress("pull", db.pull, db, t, user_of(ctx), ctx.pos[1], ctx.pos[2],
    { resolver = ctx.opt.resolver }))
end

C.remote = { help = "remote [add NAME URL | remove NAME]\n  Lists (NAME URL), adds or removes the store's remotes." }
function C.remote.run(ctx)
  at_most(ctx, 3)
  local db = open(ctx)
  local verb = ctx.pos[1]
  if verb == "add" then
    need(ctx, 3, "add NAME URL")
    db:add_remote(ctx.pos[2], ctx.pos[3])
  elseif verb == "remove" then
    need(ctx, 2, "remove NAME")
    db:remove_remote(ctx.pos[2])
  elseif verb == nil then
    local r = db:remotes()
    if ctx.opt.json then return json(r) end
    for _, n in ipairs(sorted_keys(r)) do out(n .. " " .. r[n]) end
  else
    usage("remote: unknown action '%s'", verb)
  end
end

C.verify = { help = "verify\n  Re-reads and re-hashes the store (or --tenant's part); status 1 on damage." }
function C.verify.run(ctx)
  at_most(ctx, 0)
  local db = open(ctx)
  local problems, counts = with_progress("verify", db.verify, db, ctx.opt.tenant)
  local sound, lines, summary = inspect.verify_result(problems, counts)
  if ctx.opt.json then
    json({ ok = sound, problems = problems, counts = counts })
  else
    for _, l in ipairs(lines) do out(l) end
    out(summary)
  end
  return sound and 0 or 1
end

C.gc = { help = "gc\n  Removes what no branch, tag or entry head reaches (the --tenant's, or all)." }
function C.gc.run(ctx)
  at_most(ctx, 0)
  local db = open(ctx)
  local r = db:gc(ctx.opt.tenant) -- (gc draws its own progress bar on a terminal)
  if ctx.opt.json then return json(r or {}) end
  out("gc done")
end

C.repack = { help = "repack\n  Rewrites the pack store's files compactly (the --tenant's, or all)." }
function C.repack.run(ctx)
  at_most(ctx, 0)
  local db = open(ctx)
  local r = db:repack(ctx.opt.tenant)
  if ctx.opt.json then return json(r or {}) end
  out("repack done")
end

C.copy = { help = "copy SRC DST [--backend NAME]\n  Copies the store at SRC into a new store at DST, verified by digest.",
  values = { backend = true } }
function C.copy.run(ctx)
  need(ctx, 2, "SRC DST"); at_most(ctx, 2)
  if not is_dir(ctx.pos[1]) then errors.raise("not_found", "no store at '%s'", ctx.pos[1]) end
  local r = mydb.copy(ctx.pos[1], ctx.pos[2], { backend = ctx.opt.backend }) -- (its own progress line)
  if ctx.opt.json then return json(r) end
  out(("copied %s to %s: %d tenants, %d entries, %d objects"):format(ctx.pos[1], ctx.pos[2], r.tenants or 0,
    r.entries or 0, r.objects or 0))
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
  local p = progress.start("import")
  local ok, n = pcall(dump.import, db, t, user_of(ctx), f:lines(), p.tick)
  p.done(ok)
  if f ~= io.stdin then f:close() end
  if not ok then error(n, 0) end
  if ctx.opt.json then return json({ commits = n }) end
  out(("imported %d commit%s"):format(n, n == 1 and "" or "s"))
end

cmd.commands = C

-- ------------------------------------------------------------- help

local GLOBAL_HELP = [[
Global options (anywhere on the line):
  --db ROOT      the store (default $MYDB_ROOT, else .mytools_db)
  --tenant T     the tenant (default $MYDB_TENANT)
  --branch B     read and write branch B (default main)
  --user U       the user of writes (default $MYDB_USER, else $USER)
  --json         print results as JSON
  -h, --help     help (of a command: mydb COMMAND --help)
Values are JSON; get/load print canonical JSON. Exit status: 0 ok, 1 error
("mydb: <code>: <message>" on stderr), 2 bad usage.]]

local ORDER = { "init", "tenants", "entries", "get", "put", "save", "load", "delete", "log", "show",
  "diff", "blame", "branch", "tag", "merge", "remote", "clone", "fetch", "push", "pull", "verify", "gc",
  "repack", "copy", "export", "import" }
cmd.order = ORDER

local function main_help()
  local l = { "usage: mydb [options] COMMAND [args]", "", "Commands:" }
  for _, name in ipairs(ORDER) do
    l[#l + 1] = "  " .. C[name].help:match("^[^\n]*")
  end
  l[#l + 1] = ""
  l[#l + 1] = GLOBAL_HELP
  l[#l + 1] = "See mydb(1)."
  return table.concat(l, "\n")
end

-- ------------------------------------------------------------- main

local function message_of(e)
  if errors.is(e) then return tostring(e) end
  if type(e) == "table" and e.code then return ("mydb: %s: %s"):format(e.code, tostring(e.message)) end
  return "mydb: error: " .. tostring(e)
end

--- Runs the command line argv (a list); returns the exit status.
function cmd.main(argv)
  local ok, parsed = pcall(args.parse, argv, C)
  if not ok then
    if type(parsed) == "table" and parsed.usage then
      io.stderr:write("mydb: usage: ", parsed.usage, "\n")
      return 2
    end
    error(parsed, 0)
  end
  if parsed.command == nil then
    if parsed.opt.help then
      out(main_help())
      return 0
    end
    io.stderr:write(main_help(), "\n")
    return 2
  end
  local spec = C[parsed.command]
  if parsed.opt.help then
    out("usage: mydb " .. spec.help)
    out("")
    out(GLOBAL_HELP)
    return 0
  end
  local ctx = { command = parsed.command, pos = parsed.pos, opt = parsed.opt }
  local ok2, res = xpcall(spec.run, function(e)
    if errors.is(e) or (type(e) == "table" and (e.usage or e.code)) then return e end
    return debug.traceback(tostring(e), 2)
  end, ctx)
  if ctx.db then pcall(ctx.db.close, ctx.db) end
  if not ok2 then
    if type(res) == "table" and res.usage then
      io.stderr:write("mydb: usage: ", res.usage, "\n")
      return 2
    end
    io.stderr:write(message_of(res), "\n")
    return 1
  end
  io.stdout:flush()
  return math.tointeger(res) or 0
end

return cmd
