--- mydb.cmd: the `mydb` command, a git-like shell interface over the API.
--
-- main(argv) parses the command line (mydb.cmd.args), runs one subcommand
-- and returns the exit status: 0 ok, 1 error (printed as
-- "mydb: <code>: <message>" on stderr), 2 bad usage. The subcommands live
-- in mydb.cmd.data, .history, .sync and .store, each a table name ->
-- {help=, flags=, values=, run=function(ctx)}; each is a thin call of the
-- Lua API, and --json prints the API's result as JSON.
local errors = require "mydb.errors"
local args = require "mydb.cmd.args"

local cmd = {}

local function out(line) io.stdout:write(line, "\n") end

local C = {}
for _, group in ipairs { "data", "history", "sync", "store" } do
  for name, spec in pairs(require("mydb.cmd." .. group)) do C[name] = spec end
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
