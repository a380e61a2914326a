--- spec/cli/cli_helper.lua: running mydb-lua from the specs.
--
--   local H = dofile("spec/cli/cli_helper.lua")
--   local r = H.run({"-e", "print(1)"}, {stdin = "..."})  --> r.out, r.err, r.code
--   local p = H.pty({"--db", root}, {"expect > ", "send 1+1\r", "expect 2"})
--                                                        --> p.out, p.code
-- Every run gets a clean environment for mydb-lua's variables (no
-- LUA_INIT, MYDB_HANDLERS; HOME and MYDB_HISTORY in a temporary directory)
-- unless opts.env sets them.
local H = {}

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
H.q = q

local function abspath(p)
  if p:sub(1, 1) == "/" then return p end
  local pwd = os.getenv("PWD") or "."
  return pwd .. "/" .. p
end

-- The repository root: two levels above this file.
local src = debug.getinfo(1, "S").source
local here = src:sub(1, 1) == "@" and src:sub(2) or "spec/cli/cli_helper.lua"
H.root = abspath(here):gsub("/spec/cli/cli_helper%.lua$", ""):gsub("/%./", "/")
H.bin = H.root .. "/mydb-lua"
H.ptyrun = H.root .. "/build/cli/ptyrun"

local function exists(p)
  local f = io.open(p, "rb")
  if f then f:close() end
  return f ~= nil
end
H.exists = exists
assert(exists(H.bin), "mydb-lua is not built: run `make mydb-lua` first")

function H.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

function H.write(path, text)
  local f = io.open(path, "wb")
  if not f then -- a durable loose object is read-only: made writable to damage it
    os.execute("chmod u+w '" .. path:gsub("'", "'\\''") .. "' 2>/dev/null")
    f = assert(io.open(path, "wb"))
  end
  f:write(text)
  f:close()
end

function H.tmpdir()
  local d = os.tmpname()
  os.remove(d)
  assert(os.execute("mkdir -p " .. q(d)))
  return d
end

function H.rmrf(d)
  if d and #d > 5 then os.execute("rm -rf " .. q(d)) end
end

-- Scratch space for one spec file: HOME, the history file, stdin files.
local scratch = H.tmpdir()
H.scratch = scratch

local function env_prefix(env)
  local unset = { "env -u LUA_INIT -u LUA_INIT_5_4 -u MYDB_HANDLERS" }
  local set = { HOME = scratch, MYDB_HISTORY = scratch .. "/history" }
  for k, v in pairs(env or {}) do
    if v == false then
      unset[#unset + 1] = "-u " .. k
      set[k] = nil
    else
      set[k] = v
    end
  end
  for k, v in pairs(set) do unset[#unset + 1] = k .. "=" .. q(v) end
  return table.concat(unset, " ")
end

local function argline(args)
  if type(args) == "string" then return args end
  local out = {}
  for i, a in ipairs(args) do out[i] = q(a) end
  return table.concat(out, " ")
end

local counter = 0
local function tmpfile(name)
  counter = counter + 1
  return ("%s/%s.%d"):format(scratch, name, counter)
end

--- Runs mydb-lua with args (a list, or a shell string), stdin from
-- opts.stdin (else /dev/null), in opts.cwd (else the repository root).
function H.run(args, opts)
  opts = opts or {}
  local inf, outf, errf = tmpfile("in"), tmpfile("out"), tmpfile("err")
  H.write(inf, opts.stdin or "")
  local cmd = ("cd %s && %s %s %s <%s >%s 2>%s"):format(q(opts.cwd or H.root), env_prefix(opts.env),
    q(opts.bin or H.bin), argline(args), q(inf), q(outf), q(errf))
  local ok, how, code = os.execute(cmd)
  local r = { out = H.read(outf) or "", err = H.read(errf) or "", code = code, how = how, ok = ok }
  os.remove(inf); os.remove(outf); os.remove(errf)
  return r
end

--- Drives mydb-lua on a pseudo-terminal (TERM=dumb, 80x24) with a ptyrun
-- script: a list of lines "send TEXT", "expect TEXT", "sleep MS", "wait".
-- Returns out (all the terminal showed, with \r\n line ends) and code
-- (mydb-lua's exit status; 124 when an expect timed out).
function H.pty(args, script, opts)
  opts = opts or {}
  assert(exists(H.ptyrun), "build/cli/ptyrun is not built: run `make all`")
  local sf, outf, errf = tmpfile("script"), tmpfile("out"), tmpfile("err")
  H.write(sf, table.concat(script, "\n") .. "\n")
  local env = opts.env or {}
  env.TERM = env.TERM or "dumb"
  local cmd = ("cd %s && %s %s %s %s <%s >%s 2>%s"):format(q(opts.cwd or H.root), env_prefix(env),
    q(H.ptyrun), q(H.bin), argline(args), q(sf), q(outf), q(errf))
  local ok, how, code = os.execute(cmd)
  local r = { out = H.read(outf) or "", err = H.read(errf) or "", code = code, how = how, ok = ok }
  r.text = r.out:gsub("\r\n", "\n")
  os.remove(sf); os.remove(outf); os.remove(errf)
  return r
end

--- True when pseudo-terminals work here (ptyrun can run `true`); the
-- terminal specs are pending otherwise.
function H.pty_ok()
  if H._pty_ok == nil then
    local ok = exists(H.ptyrun) and os.execute(q(H.ptyrun) .. " true </dev/null >/dev/null 2>&1")
    H._pty_ok = ok and true or false
  end
  return H._pty_ok
end

--- Creates a loose store at root (the files the inspection specs read) with
-- mydb-lua itself:
--   acme/config: 3 versions (alice, bob, carol); acme/users: a collection
--   of 2 records; beta/list: one version holding {1, 2, 3}.
function H.make_store(root)
  local script = tmpfile("mkstore") .. ".lua"
  H.write(script, [[
    local db = require("mydb").open(arg[1], { backend = arg[2] or "loose" })
    db:init("acme"); db:init("beta")
    db:save("acme", "alice", "config", { theme = "dark", n = 1 })
    db:save("acme", "bob", "config", { theme = "light", n = 2 })
    db:save("acme", "carol", "config", { theme = "blue", n = 3 })
    db:put("acme", "alice", "users", "u1", { name = "Ann" })
    db:put("acme", "alice", "users", "u2", { name = "Ben" })
    db:save("beta", "dave", "list", { 1, 2, 3 })
    db:close()
  ]])
  local r = H.run({ script, root })
  os.remove(script)
  assert(r.code == 0, r.err)
end

--- Creates an empty store at root (`mydb --db ROOT init`): --db opens a
-- store, never creates one.
function H.empty_store(root)
  local r = H.run({ "--db", root, "init" }, { bin = H.root .. "/mydb" })
  assert(r.code == 0, r.err)
end

--- Lines of s, without the empty last one.
function H.lines(s)
  local t = {}
  for line in s:gmatch("([^\n]*)\n") do t[#t + 1] = line end
  local rest = s:match("[^\n]+$")
  if rest then t[#t + 1] = rest end
  return t
end

--- Escapes s for a ptyrun TEXT.
function H.esc(s)
  return (s:gsub("\\", "\\\\"):gsub("\n", "\\n"):gsub("\r", "\\r"):gsub("\t", "\\t"))
end

return H
