--- spec.helper: shared fixtures for the mydb busted specs.
--
--   local H = require "spec.helper"
--   describe("...", function()
--     local S = H.use_store()            -- fresh store per test: S.dir, S.root, S.db
--     it("...", function() S.db:init("t") end)
--   end)
--
-- Also: H.assert_error_code(fn, code), H.run_lua(code, opts) (a fresh lua5.4
-- process with the tree's modules), H.deep_equal(a, b), H.listing(dir), ...
-- This module does not need busted to load, so that child processes started
-- by H.run_lua can require it too (for H.deep_equal).
local H = {}

-- ------------------------------------------------------------------ paths

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
H.q = shell_quote

local function read_cmd(cmd)
  local f = assert(io.popen(cmd, "r"))
  local out = f:read("a")
  local ok, how, code = f:close()
  return out, ok, how, code
end
H.read_cmd = read_cmd

-- The repository root: the directory that holds spec/helper.lua.
local function repo_root()
  local src = debug.getinfo(1, "S").source
  local path = src:sub(1, 1) == "@" and src:sub(2) or "spec/helper.lua"
  local dir = path:match("^(.*)/spec/helper%.lua$")
  if dir == nil then
    dir = path:match("^(.*)/helper%.lua$")
    dir = dir and (dir .. "/..") or "."
    if path == "spec/helper.lua" then dir = "." end
  end
  if dir:sub(1, 1) ~= "/" then
    local pwd = os.getenv("PWD") or read_cmd("pwd"):gsub("\n$", "")
    dir = pwd .. "/" .. dir
  end
  local abs = read_cmd("cd " .. shell_quote(dir) .. " && pwd -P"):gsub("\n$", "")
  return abs
end

H.REPO = repo_root()
H.LUA = os.getenv("LUA") or "lua5.4"
-- The build directory (`make all` output); MYDB_BUILD overrides it, e.g.
-- for a private build: make all BUILD=/tmp/b && MYDB_BUILD=/tmp/b busted
-- --lpath='/tmp/b/lua/?.lua;/tmp/b/lua/?/init.lua;./?.lua' --cpath='/tmp/b/?.so'
H.BUILD = os.getenv("MYDB_BUILD") or (H.REPO .. "/build")
-- The module paths a fresh process uses: the tree's staged modules, then
-- the repository root (for spec.helper), then the system defaults.
H.LUA_PATH = H.BUILD .. "/lua/?.lua;" .. H.BUILD .. "/lua/?/init.lua;"
    .. H.REPO .. "/?.lua;;"
H.LUA_CPATH = H.BUILD .. "/?.so;;"

-- ------------------------------------------------------- temporary dirs

--- A new empty directory under /tmp (os.tmpname based).
function H.tmpdir()
  local name = os.tmpname()          -- creates an empty file /tmp/lua_XXXXXX
  os.remove(name)
  local dir = name .. ".mydb"
  local ok = os.execute("mkdir -m 700 " .. shell_quote(dir))
  if not ok then error("cannot create temporary directory " .. dir) end
  return dir
end

function H.rmrf(path)
  if path and path:match("^/tmp/.") then
    os.execute("rm -rf " .. shell_quote(path))
  end
end

function H.file_exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

function H.read_file(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

function H.write_file(path, bytes)
  local f = assert(io.open(path, "wb"))
  assert(f:write(bytes))
  assert(f:close())
end

local has_lfs, lfs = pcall(require, "lfs")

--- Sorted list of every path under dir, as "./a", "./a/b", ... (like
-- `find . -mindepth 1`); {} if dir is absent. Uses LuaFileSystem (a busted
-- dependency) when present, else find(1).
function H.listing(dir)
  local list = {}
  if has_lfs then
    local function walk(abs, rel)
      local ok, iter, state = pcall(lfs.dir, abs)
      if not ok then return end
      for name in iter, state do
        if name ~= "." and name ~= ".." then
          local p = rel .. "/" .. name
          list[#list + 1] = p
          if lfs.symlinkattributes(abs .. "/" .. name, "mode") == "directory" then
            walk(abs .. "/" .. name, p)
          end
        end
      end
    end
    walk(dir, ".")
    table.sort(list)
    return list
  end
  local out = read_cmd("cd " .. shell_quote(dir) .. " 2>/dev/null && find . -mindepth 1 | LC_ALL=C sort")
  for line in out:gmatch("[^\n]+") do list[#list + 1] = line end
  return list
end

--- The path of a tenant's object file.
function H.object_path(root, tenant, digest)
  return ("%s/%s/objects/%s/%s"):format(root, tenant, digest:sub(1, 24), digest)
end

--- Names (digests) of all object files of a tenant.
function H.object_names(root, tenant)
  local out = read_cmd("find " .. shell_quote(root .. "/" .. tenant .. "/objects")
    .. " -type f 2>/dev/null | LC_ALL=C sort")
  local list = {}
  for line in out:gmatch("[^\n]+") do list[#list + 1] = line:match("([^/]+)$") end
  return list
end

function H.sha256_file(path)
  local out = read_cmd("sha256sum " .. shell_quote(path))
  return out:match("^(%x+)")
end

-- ------------------------------------------------------------ fixtures

--- Opens a fresh store per test (busted before_each/after_each). Returns a
-- table whose fields are set for each test: dir (the temp dir), root (the
-- store root, dir .. "/db"), db (open with fsync=false unless opts.fsync),
-- and helpers reopen() / close().
function H.use_store(opts)
  opts = opts or {}
  local busted = require "busted"
  local S = {}
  busted.before_each(function()
    local mydb = require "mydb"
    S.dir = H.tmpdir()
    S.root = S.dir .. "/db"
    S.opts = { fsync = opts.fsync == true }
    S.db = mydb.open(S.root, S.opts)
    if opts.tenant then S.db:init(opts.tenant) end
  end)
  busted.after_each(function()
    if S.db then pcall(S.db.close, S.db) end
    for _, extra in ipairs(S.extra or {}) do pcall(extra.close, extra) end
    S.extra = nil
    collectgarbage()
    H.rmrf(S.dir)
    S.db, S.dir, S.root = nil, nil, nil
  end)
  --- Another handle on the same root (closed after the test).
  function S.open_again(o)
    local db = require("mydb").open(S.root, o or S.opts)
    S.extra = S.extra or {}
    S.extra[#S.extra + 1] = db
    return db
  end
  return S
end

-- ------------------------------------------------------------- errors

-- Reports a test failure: through luassert (so that busted counts a
-- failure, not an error) when it is there, else with error().
local function fail(msg, level)
  local ok, luassert = pcall(require, "luassert")
  if ok then luassert(false, msg) end
  error(msg, (level or 1) + 1)
end
H.fail = fail

--- Calls fn (with the extra arguments), expects it to raise a mydb error of
-- the given code; returns the error value.
function H.assert_error_code(fn, code, ...)
  local error = fail
  local ok, err = pcall(fn, ...)
  if ok then
    error(("expected a mydb error %q, but the call succeeded"):format(code), 2)
  end
  if type(err) ~= "table" then
    error(("expected a mydb error %q, got a %s: %s"):format(code, type(err), tostring(err)), 2)
  end
  if err.code ~= code then
    error(("expected error code %q, got %q (%s)"):format(code, tostring(err.code), tostring(err)), 2)
  end
  if type(err.message) ~= "string" then
    error(("error %q has no string message"):format(code), 2)
  end
  local s = tostring(err)
  local prefix = "mydb: " .. code .. ": "
  if s:sub(1, #prefix) ~= prefix then
    error(("tostring(err) should start with %q, got %q"):format(prefix, s), 2)
  end
  if s ~= prefix .. err.message then
    error(("tostring(err) should be %q, got %q"):format(prefix .. err.message, s), 2)
  end
  return err
end

-- ------------------------------------------------------ fresh processes

--- Runs a Lua chunk in a fresh lua5.4 process with the tree's modules.
-- opts.cwd: working directory (default: a new temp dir, removed after);
-- opts.args: list of strings passed as arg[1..n] (and ...).
-- Returns output (stdout and stderr), ok (exit status 0), exit code.
function H.run_lua(code, opts)
  opts = opts or {}
  local scratch = H.tmpdir()
  local script = scratch .. "/chunk.lua"
  H.write_file(script, code)
  local cwd = opts.cwd or scratch
  local args = {}
  for i, a in ipairs(opts.args or {}) do args[i] = shell_quote(a) end
  local cmd = ("cd %s && LUA_PATH=%s LUA_CPATH=%s %s %s %s 2>&1"):format(
    shell_quote(cwd), shell_quote(H.LUA_PATH), shell_quote(H.LUA_CPATH),
    H.LUA, shell_quote(script), table.concat(args, " "))
  local out, ok, _, status = read_cmd(cmd)
  H.rmrf(scratch)
  return out, ok == true, status
end

--- Starts several chunks at once (each a fresh process); waits for all.
-- Returns a list of {out=, ok=, status=}.
function H.run_lua_parallel(chunks, opts)
  opts = opts or {}
  local scratch = H.tmpdir()
  local handles = {}
  for i, code in ipairs(chunks) do
    local script = ("%s/chunk%d.lua"):format(scratch, i)
    H.write_file(script, code)
    local cmd = ("cd %s && LUA_PATH=%s LUA_CPATH=%s %s %s 2>&1"):format(
      shell_quote(opts.cwd or scratch), shell_quote(H.LUA_PATH), shell_quote(H.LUA_CPATH),
      H.LUA, shell_quote(script))
    handles[i] = assert(io.popen(cmd, "r"))
  end
  local results = {}
  for i, f in ipairs(handles) do
    local out = f:read("a")
    local ok, _, status = f:close()
    results[i] = { out = out, ok = ok == true, status = status }
  end
  H.rmrf(scratch)
  return results
end

--- Lua source of a string literal (for building chunks).
function H.lit(s) return ("%q"):format(s) end

-- ------------------------------------------------------------- equality

local function num_equal(a, b)
  if math.type(a) ~= math.type(b) then return false end
  if a ~= a then return b ~= b end
  if a == 0 and b == 0 and math.type(a) == "float" then return 1 / a == 1 / b end
  return a == b
end

--- Structural equality that also checks: integer vs float, -0.0, NaN,
-- sharing and cycles (the two graphs must have the same shape: a table
-- seen twice in a must be one table seen twice in b), and metatables
-- (mt_check(mta, mtb) when given, else identity). Returns true or
-- false, "reason at path".
function H.deep_equal(a, b, mt_check)
  local a2b, b2a = {}, {}
  local function eq(x, y, path)
    local tx, ty = type(x), type(y)
    if tx ~= ty then return false, ("type %s vs %s at %s"):format(tx, ty, path) end
    if tx == "number" then
      if not num_equal(x, y) then
        return false, ("number %s (%s) vs %s (%s) at %s"):format(
          tostring(x), math.type(x), tostring(y), math.type(y), path)
      end
      return true
    end
    if tx ~= "table" then
      if x ~= y then return false, ("value %q vs %q at %s"):format(tostring(x), tostring(y), path) end
      return true
    end
    if a2b[x] ~= nil or b2a[y] ~= nil then
      if a2b[x] ~= y or b2a[y] ~= x then return false, "sharing differs at " .. path end
      return true
    end
    a2b[x], b2a[y] = y, x
    local mx, my = getmetatable(x), getmetatable(y)
    if mt_check then
      local ok, why = mt_check(mx, my)
      if not ok then return false, (why or "metatable differs") .. " at " .. path end
    elseif mx ~= my then
      return false, "metatable differs at " .. path
    end
    local n = 0
    for k, v in next, x do
      n = n + 1
      if type(k) == "table" then return false, "table key at " .. path end
      local w = rawget(y, k)
      if w == nil then return false, ("missing key %s at %s"):format(tostring(k), path) end
      if type(k) == "number" and math.type(k) == "float" then
        -- the key itself must stay a float key
        local found = false
        for k2 in next, y do
          if k2 == k and math.type(k2) == "float" then found = true end
        end
        if not found then return false, ("float key %s became integer at %s"):format(tostring(k), path) end
      end
      local ok, why = eq(v, w, path .. "[" .. tostring(k) .. "]")
      if not ok then return false, why end
    end
    for _ in next, y do n = n - 1 end
    if n ~= 0 then return false, "extra keys at " .. path end
    return true
  end
  return eq(a, b, "value")
end

return H
