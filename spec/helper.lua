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
  local f = io.open(path, "wb")
  if not f then
    -- a durable loose object is read-only (like git's): a test that
    -- damages one makes it writable first (root needs not)
    os.execute("chmod u+w " .. H.q(path) .. " 2>/dev/null")
    f = assert(io.open(path, "wb"))
  end
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

local function le32(s, i)
  local a, b, c, d = s:byte(i, i + 3)
  return a | b << 8 | c << 16 | d << 24
end

--- The objects of a loose tenant's packed file (doc/FORMAT.md "Packed
-- objects"), parsed as far as it holds whole groups: a list of {digest=,
-- off= (0-based, of the data), len=, group= (its index)}, the groups
-- ({off=, len=}), and the file's size.
function H.packed_objects(path)
  local s = H.read_file(path)
  if not s then return {}, {}, 0 end
  local objs, gs, pos = {}, {}, 16
  while pos + 17 <= #s and s:sub(pos + 1, pos + 1) == "G" do
    local count = le32(s, pos + 2)
    local glen = le32(s, pos + 6) + (le32(s, pos + 10) << 32)
    if pos + glen > #s then break end
    gs[#gs + 1] = { off = pos, len = glen }
    local p = pos + 17
    for _ = 1, count do
      local d = s:sub(p + 2, p + 33):gsub(".", function(c) return ("%02x"):format(c:byte()) end)
      local len = le32(s, p + 34)
      objs[#objs + 1] = { digest = d, off = p + 41, len = len, group = #gs, bytes = s:sub(p + 42, p + 41 + len) }
      p = p + 41 + len
    end
    pos = pos + glen
  end
  return objs, gs, #s
end

--- The path of a tenant's object file (loose backend). A tenant whose
-- objects were packed (TENANT/packed) first gets them as files - the
-- original layout, which the backend still reads - and packed removed, so
-- that a test can damage or remove one object's file.
function H.object_path(root, tenant, digest)
  local packed = ("%s/%s/packed"):format(root, tenant)
  if H.file_exists(packed) then
    for _, o in ipairs((H.packed_objects(packed))) do
      local dir = ("%s/%s/objects/%s"):format(root, tenant, o.digest:sub(1, 24))
      os.execute("mkdir -p " .. shell_quote(dir))
      local p = dir .. "/" .. o.digest
      if not H.file_exists(p) then H.write_file(p, o.bytes) end
    end
    os.remove(packed)
  end
  return ("%s/%s/objects/%s/%s"):format(root, tenant, digest:sub(1, 24), digest)
end

-- A core handle on root with the backend in use, cache off (the memory
-- backend shares the store of the handles open on the same root).
local function raw_store(root)
  return require("mydb.core").open(root, { backend = H.BACKEND,
                                           fsync = false, cache_bytes = 0 })
end

--- The bytes of an object of a tenant (nil: a ref), whatever the backend
-- (loose: the file as it is; others: read and verified by the core).
-- (store: a handle from H.raw_store to reuse; else one is opened for
-- this read)
function H.read_object(root, tenant, digest, store)
  if H.BACKEND == "loose" then
    local b = H.read_file(tenant and H.object_path(root, tenant, digest)
      or ("%s/refs/%s/%s"):format(root, digest:sub(1, 24), digest))
    if b or not tenant then return b end
    -- not a file: packed (TENANT/packed), read through the core
    local own <close> = raw_store(root)
    local ok, bytes = pcall(own.read, own, tenant, digest)
    if ok then return bytes end
    return nil
  end
  if store then return store:read(tenant, digest) end
  local own <close> = raw_store(root)
  return own:read(tenant, digest)
end
H.raw_store = raw_store

--- Stores bytes as an object of a tenant (nil: a ref) through the core,
-- whatever the backend; returns its digest.
function H.write_object(root, tenant, bytes)
  local store <close> = raw_store(root)
  return store:write(tenant, bytes)
end

--- Whether an object of a tenant (nil: a ref) is stored.
function H.object_exists(root, tenant, digest)
  if H.BACKEND == "loose" then
    if H.file_exists(tenant and H.object_path(root, tenant, digest)
      or ("%s/refs/%s/%s"):format(root, digest:sub(1, 24), digest)) then return true end
    if not tenant or not H.file_exists(root .. "/" .. tenant .. "/packed") then return false end
  end
  local store <close> = raw_store(root)
  return store:exists(tenant, digest)
end

--- Names (digests) of all objects of a tenant (nil: the refs), sorted
-- (loose: every file under objects/, digest or not, and the packed ones).
function H.object_names(root, tenant)
  local list = {}
  if H.BACKEND ~= "loose" or (tenant and H.file_exists(root .. "/" .. tenant .. "/packed")) then
    local store <close> = raw_store(root)
    local ok, names = pcall(store.objects, store, tenant)
    list = ok and names or {}
    table.sort(list)
    return list
  end
  local dir = tenant and (root .. "/" .. tenant .. "/objects") or (root .. "/refs")
  local out = read_cmd("find " .. shell_quote(dir) .. " -type f 2>/dev/null | LC_ALL=C sort")
  for line in out:gmatch("[^\n]+") do list[#list + 1] = line:match("([^/]+)$") end
  if not tenant then table.sort(list) end
  return list
end

function H.sha256_file(path)
  local out = read_cmd("sha256sum " .. shell_quote(path))
  return out:match("^(%x+)")
end

-- ------------------------------------------------------------ backends
-- MYDB_BACKEND=loose|pack|memory|postgres runs the specs against that storage
-- backend (`make test-backends` runs the suite once per backend): every
-- mydb.open that names no backend uses it. H.BACKEND is the one in use;
-- without MYDB_BACKEND it is the default of a new store.
H.DEFAULT_BACKEND = "pack"
H.BACKEND = os.getenv("MYDB_BACKEND") or ""
if H.BACKEND == "" or H.BACKEND == H.DEFAULT_BACKEND then
  H.BACKEND = H.DEFAULT_BACKEND
  H.open_unpatched = function(...) return require("mydb").open(...) end
else
  local ok, mydb = pcall(require, "mydb")
  if ok and not mydb._spec_backend then
    local open = mydb.open
    H.open_unpatched = open
    mydb._spec_backend = H.BACKEND
    -- (postgres: a root that holds a file store - ROOT/.mydb, made by a
    -- spec that names its backend - stays that store)
    local function file_store(root)
      if H.BACKEND ~= "postgres" or type(root) ~= "string" then return false end
      local f = io.open(root .. "/.mydb", "rb")
      if f then f:close() end
      return f ~= nil
    end
    mydb.open = function(root, opts)
      if (opts == nil or (type(opts) == "table" and opts.backend == nil)) and not file_store(root) then
        local o = { backend = H.BACKEND }
        for k, v in pairs(opts or {}) do o[k] = v end
        opts = o
      end
      return open(root, opts)
    end
    -- a copy's source is a store of the backend in use too (a postgres
    -- store's root names a schema: opened without a backend, the same
    -- path would be a new pack store)
    if H.BACKEND == "postgres" then
      local copy = mydb.copy
      mydb.copy = function(src, dst, opts)
        local o = { src_backend = not file_store(src) and H.BACKEND or nil,
                    backend = H.BACKEND }
        for k, v in pairs(opts or {}) do o[k] = v end
        return copy(src, dst, o)
      end
    end
  end
end

-- busted's pending() of the running test (it throws): found in the
-- environment of a calling function (the test's), since this module's
-- environment is not a test's.
local function test_pending(msg)
  for level = 2, 40 do
    local info = debug.getinfo(level, "f")
    if not info then break end
    for i = 1, 255 do
      local name, val = debug.getupvalue(info.func, i)
      if not name then break end
      if name == "_ENV" and type(val) == "table" and type(val.pending) == "function" then
        return val.pending(msg)
      end
    end
    -- a test function that names no global has no _ENV: busted's own
    -- frame holds the test (element) and its environment
    for i = 1, 255 do
      local name, val = debug.getlocal(level, i)
      if not name then break end
      if name == "element" and type(val) == "table" and type(val.env) == "table"
          and type(val.env.pending) == "function" then
        return val.env.pending(msg)
      end
    end
  end
  error("pending: " .. msg, 3)
end

-- A child chunk opens stores with the backend in use too (through this
-- module, on the chunk's first line so that line numbers stay), unless it
-- does not use the test's store (opts.memory_ok).
local function child_code(code, opts)
  if H.BACKEND == H.DEFAULT_BACKEND or (opts and opts.memory_ok) then return code end
  return 'require("spec.helper") ' .. code
end

--- For a test that needs the store on disk - seen by other processes,
-- outliving its handles, files under ROOT - (not the memory backend):
-- marks it pending there.
function H.needs_disk(why)
  if H.BACKEND == "memory" then
    test_pending("memory backend: " .. (why or "another process must see the store"))
  end
end

--- For a test about the store's own files under ROOT (their layout,
-- modes, system calls on them): pending on the memory backend (no files)
-- and on postgres (the store is tables on a server; the system calls are
-- libpq's and the server's, not mydb's).
function H.needs_files(why)
  if H.BACKEND == "memory" or H.BACKEND == "postgres" then
    test_pending(H.BACKEND .. " backend: " .. (why or "the store is not files under ROOT"))
  end
end

--- For a test whose other process uses the remotes this process added: a
-- memory store keeps its remotes in its process (remotes.lua; a postgres
-- store keeps them in its schema).
function H.needs_file_remotes(why)
  if H.BACKEND == "memory" then
    test_pending(H.BACKEND .. " backend: " .. (why or "the store's remotes live in its process"))
  end
end

--- For a test that reads or damages the loose layout's files directly
-- (objects/, head): pending on the other backends.
function H.needs_loose(why)
  if H.BACKEND ~= "loose" then
    test_pending(H.BACKEND .. " backend: " .. (why or "inspects the loose files"))
  end
end

--- The head history of a tenant in the loose journal's format (loose: the
-- journal file, "" when absent; pack: its commit records); pending on the
-- memory backend, which keeps no history.
function H.head_journal(root, tenant)
  if H.BACKEND == "loose" then
    local path = root .. "/" .. tenant .. "/head"
    return H.file_exists(path) and H.read_file(path) or ""
  end
  if H.BACKEND == "memory" then test_pending("memory backend: keeps no head history") end
  local store <close> = raw_store(root)
  return store:journal(tenant)
end

--- A text naming everything a store holds - per tenant its objects and
-- heads, and the refs - to prove that a failed call wrote nothing (loose:
-- every path under ROOT and every head journal, byte for byte).
function H.store_state(root)
  local parts = {}
  if H.BACKEND == "loose" then
    parts[1] = table.concat(H.listing(root), "\n")
    for _, p in ipairs(H.listing(root)) do
      if p:match("^%./[^/]+/head$") then parts[#parts + 1] = p .. "\n" .. H.read_file(root .. p:sub(2)) end
    end
    return table.concat(parts, "\n")
  end
  local store <close> = raw_store(root)
  for _, t in ipairs(store:tenants()) do
    parts[#parts + 1] = "tenant " .. t .. ": " .. table.concat(H.object_names(root, t), " ")
    local entries, heads = store:heads(t)
    for _, e in ipairs(entries) do parts[#parts + 1] = "  " .. e .. " " .. heads[e] end
  end
  parts[#parts + 1] = "refs: " .. table.concat(H.object_names(root, nil), " ")
  return table.concat(parts, "\n")
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
-- opts.args: list of strings passed as arg[1..n] (and ...);
-- opts.env: {NAME = value} set in the child's environment;
-- opts.memory_ok: the child does not use the test's store (it runs with
-- the default backend; otherwise the test is pending on the memory backend,
-- which other processes cannot see, and MYDB_BACKEND applies in the child).
-- Returns output (stdout and stderr), ok (exit status 0), exit code.
function H.run_lua(code, opts)
  opts = opts or {}
  if not opts.memory_ok then H.needs_disk("a fresh process cannot see a memory store") end
  local scratch = H.tmpdir()
  local script = scratch .. "/chunk.lua"
  H.write_file(script, child_code(code, opts))
  local cwd = opts.cwd or scratch
  local args = {}
  for i, a in ipairs(opts.args or {}) do args[i] = shell_quote(a) end
  local env = {}
  for k, v in pairs(opts.env or {}) do
    assert(tostring(k):match("^[%a_][%w_]*$"), "bad environment variable name")
    env[#env + 1] = k .. "=" .. shell_quote(v)
  end
  table.sort(env)
  local cmd = ("cd %s && %s LUA_PATH=%s LUA_CPATH=%s %s %s %s 2>&1"):format(
    shell_quote(cwd), table.concat(env, " "), shell_quote(H.LUA_PATH), shell_quote(H.LUA_CPATH),
    H.LUA, shell_quote(script), table.concat(args, " "))
  local out, ok, _, status = read_cmd(cmd)
  H.rmrf(scratch)
  return out, ok == true, status
end

--- Starts several chunks at once (each a fresh process); waits for all.
-- Returns a list of {out=, ok=, status=}.
function H.run_lua_parallel(chunks, opts)
  opts = opts or {}
  if not opts.memory_ok then H.needs_disk("other processes cannot see a memory store") end
  local scratch = H.tmpdir()
  local handles = {}
  for i, code in ipairs(chunks) do
    local script = ("%s/chunk%d.lua"):format(scratch, i)
    H.write_file(script, child_code(code, opts))
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

--- Starts a chunk in a fresh process in the background; returns its pid
-- and a function that removes its scratch files (call it after the process
-- ended). Output goes to /dev/null.
function H.spawn_lua(code, opts)
  opts = opts or {}
  if not opts.memory_ok then H.needs_disk("another process cannot see a memory store") end
  local scratch = H.tmpdir()
  local script = scratch .. "/chunk.lua"
  H.write_file(script, child_code(code, opts))
  local args = {}
  for i, a in ipairs(opts.args or {}) do args[i] = shell_quote(a) end
  local cmd = ("cd %s && LUA_PATH=%s LUA_CPATH=%s %s %s %s >/dev/null 2>&1 & echo $!"):format(
    shell_quote(scratch), shell_quote(H.LUA_PATH), shell_quote(H.LUA_CPATH),
    H.LUA, shell_quote(script), table.concat(args, " "))
  local pid = tonumber((read_cmd(cmd):match("%d+")))
  assert(pid, "could not start a background process")
  return pid, function() H.rmrf(scratch) end
end

--- Sleeps for s seconds (fractions allowed).
function H.sleep(s)
  os.execute(("sleep %.3f"):format(s))
end

--- Lua source of a string literal (for building chunks).
function H.lit(s) return ("%q"):format(s) end

-- ---------------------------------------------------- record collections
-- Readers of the collection format (doc/FORMAT.md "Record collections").
-- The snapshot's "root" is either the digest of the root piece (stored in
-- objects/) or the root piece itself, embedded; both are handled.

local function cjson() return require "cjson" end

--- {count=, root=} of a collection snapshot: root is a digest string, an
-- embedded piece table, or nil for an empty collection.
-- The raw bytes of embedded roots returned by H.collection_of (to measure
-- their items as the chunker does).
local raw_roots = setmetatable({}, { __mode = "k" })

function H.collection_of(root_dir, tenant, digest)
  local bytes = H.read_object(root_dir, tenant, digest)
  local o = cjson().decode(bytes)
  if type(o.__collection__) ~= "table" then error("not a collection snapshot: " .. digest) end
  local root = o.__collection__.root
  if root == cjson().null then root = nil end
  if type(root) == "table" then
    local _, raw = require("mydb.core").collection_root(bytes)
    raw_roots[root] = raw
  end
  return { count = o.__collection__.count, root = root }
end

-- Decodes a binary inner piece (doc/FORMAT.md): {node = {{key, digest,
-- count}, ...}}; nil if bytes are not one.
local function decode_binary_node(bytes)
  if bytes:sub(1, 4) ~= "\0MN\1" then return nil end
  local pos, node = 5, {}
  local function varint()
    local v, shift = 0, 0
    repeat
      local c = bytes:byte(pos)
      if not c then error("truncated varint") end
      pos = pos + 1
      v = v | ((c & 0x7f) << shift)
      shift = shift + 7
    until c < 0x80
    return v
  end
  while pos <= #bytes do
    local kl = varint()
    local key = bytes:sub(pos, pos + kl - 1)
    pos = pos + kl
    local digest = bytes:sub(pos, pos + 31):gsub(".", function(c) return ("%02x"):format(c:byte()) end)
    pos = pos + 32
    node[#node + 1] = { key, digest, varint() }
  end
  return { node = node }
end

--- The piece named by ref (a digest: read and verified; a table: itself).
-- Stored inner pieces are binary; they come back in the JSON shape.
function H.read_piece(root_dir, tenant, ref, store)
  if type(ref) == "table" then return ref end
  local bytes = H.read_object(root_dir, tenant, ref, store)
  local sha = require("mydb.core").sha256(bytes)
  if sha ~= ref then error("piece " .. ref .. " does not match its name") end
  return decode_binary_node(bytes) or cjson().decode(bytes)
end

-- The byte sizes the chunker gives a piece's items: a leaf's key plus its
-- value's JSON text, an inner entry's key plus 40.
local function item_sizes(root_dir, tenant, ref, piece, store)
  local sizes = {}
  if piece.node then
    for i, e in ipairs(piece.node) do sizes[i] = #e[1] + 40 end
    return sizes
  end
  local raw = type(ref) == "table" and raw_roots[ref] or H.read_object(root_dir, tenant, ref, store)
  if not raw then error("no raw bytes for an embedded root (use H.collection_of)") end
  local keys, vals = require("mydb.core").leaf_split(raw)
  for i = 1, #keys do sizes[i] = #keys[i] + #vals[i] end
  return sizes
end

-- The boundary rule of doc/FORMAT.md, written again from the text: after
-- an item, a piece of s bytes (b before the item) closes when s >= 8192,
-- or s >= 256 and hash32(key, level) < (s//8)^4 - (b//8)^4, hash32 the top
-- 32 bits of splitmix64(h + (level + 1) * 0x9E3779B97F4A7C15), h the first
-- 8 bytes of SHA-256(key) big-endian.
local function rule_closes(key, level, before, size)
  local s = before + size
  if s < 256 then return false end
  if s >= 8192 then return true end
  local hex = require("mydb.core").sha256(key)
  local h = tonumber(hex:sub(1, 8), 16) << 32 | tonumber(hex:sub(9, 16), 16)
  local z = h + (level + 1) * 0x9E3779B97F4A7C15
  z = (z ~ (z >> 30)) * 0xBF58476D1CE4E5B9
  z = (z ~ (z >> 27)) * 0x94D049BB133111EB
  z = (z ~ (z >> 31)) >> 32
  local a, b = s // 8, before // 8
  return z < a * a * a * a - b * b * b * b
end

--- A canonical text of a JSON-like Lua value (sorted keys), to compare
-- embedded root pieces.
function H.canon(v)
  if type(v) ~= "table" then return type(v) .. ":" .. tostring(v) end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = H.canon(k) .. "=" .. H.canon(v[k]) end
  return "{" .. table.concat(parts, ",") .. "}"
end

--- Digest of the leftmost leaf stored as its own object (nil when the only
-- leaf is embedded in the snapshot).
function H.first_leaf_digest(root_dir, tenant, ref)
  while true do
    local piece = H.read_piece(root_dir, tenant, ref)
    if piece.leaf then return type(ref) == "string" and ref or nil end
    ref = piece.node[1][2]
  end
end

--- Walks a collection tree and checks it against doc/FORMAT.md: keys
-- strictly ascending, every piece non-empty and verified, node entries'
-- first keys and counts match their children, all leaves at one depth, the
-- root has more than one child, piece boundaries where the key hashes say
-- (at every level). Raises on the first violation; returns the records as
-- a list of {key, value} and the tree height.
function H.check_tree(root_dir, tenant, root_ref, count)
  if root_ref == nil then
    if count ~= 0 then error("empty root with count " .. tostring(count)) end
    return {}, 0
  end
  local levels, records = {}, {} -- levels[L] = list of {keys=, sizes=}
  local store <close> = H.BACKEND ~= "loose" and raw_store(root_dir) or nil
  local function walk(ref)   -- returns first key, record count, height
    local p = H.read_piece(root_dir, tenant, ref, store)
    local sizes = item_sizes(root_dir, tenant, ref, p, store)
    if p.leaf then
      if p.node ~= nil then error("piece has both leaf and node") end
      if #p.leaf == 0 then error("empty leaf") end
      local keys = {}
      for i, kv in ipairs(p.leaf) do
        if type(kv[1]) ~= "string" then error("leaf key is not a string") end
        keys[i] = kv[1]
        records[#records + 1] = kv
      end
      levels[0] = levels[0] or {}
      table.insert(levels[0], { keys = keys, sizes = sizes })
      return keys[1], #keys, 0
    end
    if type(p.node) ~= "table" or #p.node == 0 then error("bad piece") end
    if type(ref) == "string" and H.read_object(root_dir, tenant, ref, store):sub(1, 1) == "{" then
      error("stored inner piece " .. ref .. " is JSON, not binary")
    end
    local total, height, keys = 0, nil, {}
    for i, e in ipairs(p.node) do
      local first, n, h = walk(e[2])
      if first ~= e[1] then
        error(("node entry first key %q but child starts with %q"):format(e[1], first))
      end
      if n ~= e[3] then error(("node entry count %s but child holds %d"):format(tostring(e[3]), n)) end
      if height and height ~= h then error("leaves at different depths") end
      height = h
      total = total + n
      keys[i] = e[1]
    end
    levels[height + 1] = levels[height + 1] or {}
    table.insert(levels[height + 1], { keys = keys, sizes = sizes })
    return keys[1], total, height + 1
  end
  local _, total, height = walk(root_ref)
  if total ~= count then error(("tree holds %d records, snapshot says %d"):format(total, count)) end
  local rp = H.read_piece(root_dir, tenant, root_ref)
  if rp.node and #rp.node < 2 then error("root has a single child") end
  for i = 2, #records do
    if not (records[i - 1][1] < records[i][1]) then
      error(("keys out of order: %q then %q"):format(records[i - 1][1], records[i][1]))
    end
  end
  for L = 0, height - 1 do
    if #levels[L] < 2 then error(("level %d has a single piece but the tree is higher"):format(L)) end
  end
  -- every piece but a level's last closes at its last item, and only there
  for L = 0, height do
    for pi, piece in ipairs(levels[L]) do
      local size = 0
      for i, k in ipairs(piece.keys) do
        local before = size
        size = size + piece.sizes[i]
        local closes = rule_closes(k, L, before, piece.sizes[i])
        if closes and i < #piece.keys then
          error(("level %d piece %d should close after %q (item %d of %d)"):format(L, pi, k, i, #piece.keys))
        end
        if not closes and i == #piece.keys and pi < #levels[L] then
          error(("level %d piece %d ends after %q where no boundary falls"):format(L, pi, k))
        end
      end
    end
  end
  return records, height
end

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

-- A deterministic generator for reproducible random tests: H.rng(seed)
-- returns r with r(n) in 1..n (a linear congruential generator: the same
-- sequence on every machine, which recorded fixtures rely on).
function H.rng(seed)
  local x = seed
  return function(n)
    x = (x * 1103515245 + 12345) % 2147483648
    return (x >> 4) % n + 1
  end
end

return H
