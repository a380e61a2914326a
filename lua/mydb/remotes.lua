--- mydb.remotes: the store's remotes, name -> url (db:add_remote,
-- db:remotes, db:remove_remote; doc/FORMAT.md "Remotes").
--
-- A url is the root of another mydb store on disk (it must hold ROOT/.mydb
-- or ROOT/refs when used), or "memory:ROOT" for a memory store of this
-- process, or a PostgreSQL store (remotes.parse_url). A store on disk keeps
-- its remotes in ROOT/.remotes (a JSON map, replaced whole by an atomic
-- rename; no tenant id starts with '.', so it never looks like a tenant); a
-- postgres store the same JSON map in its schema (the store's setting
-- "remotes": the meta table's row "setting:remotes", replaced whole in one
-- statement); a memory store keeps them in a table of this process, by
-- root, until the process ends.
local core = require "mydb.core"
local errors = require "mydb.errors"
local validate = require "mydb.validate"

local raise = errors.raise

local remotes = {}

local FILE = "/.remotes"
local in_memory = {} -- memory store root -> {name = url}

--- Checks a remote name: 1 to 64 bytes of letters, digits, '.', '_', '-',
-- not starting with '.' or '-' (it is the first part of REMOTE/BRANCH).
function remotes.check_name(name)
  if type(name) ~= "string" or #name < 1 or #name > 64 or not name:match("^[%w_][%w._-]*$")
      or name:find("..", 1, true) then
    raise("invalid_argument", "invalid remote name %s (1 to 64 bytes of letters, digits, '.', '_', '-'; "
      .. "not starting with '.' or '-')", type(name) == "string" and ("'" .. name:sub(1, 80):gsub("[%c\128-\255]", "?") .. "'") or type(name))
  end
end

--- The url's backend and root: "memory:ROOT" -> "memory", ROOT; a path ->
-- nil (the store's own), path.
-- A PostgreSQL store: "postgresql://..." or "postgres://..." (a libpq URI,
-- schema=NAME naming the store's schema), or "postgres:ROOT" (the store
-- that mydb.open(ROOT, {backend = "postgres"}) opens: on libpq's default
-- server, PGHOST...).
function remotes.parse_url(url)
  validate.string(url, "url", 1, 4096)
  local root = url:match("^memory:(.+)$")
  if root then return "memory", root end
  if url:match("^postgresql://") or url:match("^postgres://") then return "postgres", url end
  root = url:match("^postgres:(.+)$")
  if root then return "postgres", root end
  return nil, url
end

-- Stores whose remotes live in this process (no ROOT directory to keep them).
local function in_process(db)
  return db._backend == "memory"
end

-- Stores that keep their remotes as a setting of their own (postgres).
local function in_setting(db)
  return db._backend == "postgres"
end

local function read_setting(db)
  local text = db._store:setting("remotes")
  if not text then return {} end
  local ok, map = pcall(core.decode, text)
  if not ok or type(map) ~= "table" then raise("corrupt", "the store's remotes are not a JSON map") end
  return map
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return {} end
  local text = f:read("a")
  f:close()
  local ok, map = pcall(core.decode, text)
  if not ok or type(map) ~= "table" then raise("corrupt", "%s is not a JSON map of remotes", path) end
  return map
end

local function write_file(path, map)
  local tmp = ("%s.tmp.%d"):format(path, math.floor(core.monotonic() * 1e6) % 1000000000)
  local f, err = io.open(tmp, "wb")
  if not f then raise("io", "cannot write %s: %s", tmp, err) end
  local ok, werr = f:write(next(map) and core.encode(map) or "{}")
  local closed, cerr = f:close()
  if not ok or not closed then
    os.remove(tmp)
    raise("io", "cannot write %s: %s", tmp, tostring(werr or cerr))
  end
  local moved, merr = os.rename(tmp, path)
  if not moved then
    os.remove(tmp)
    raise("io", "cannot rename %s: %s", tmp, merr)
  end
end

--- name -> url of db's remotes.
function remotes.list(db)
  if in_setting(db) then return read_setting(db) end
  if in_process(db) then
    local out = {}
    for k, v in pairs(in_memory[db._backend .. ":" .. db._root] or {}) do out[k] = v end
    return out
  end
  return read_file(db._root .. FILE)
end

local function save(db, map)
  if in_setting(db) then db._store:set_setting("remotes", next(map) and core.encode(map) or "{}"); return end
  if in_process(db) then in_memory[db._backend .. ":" .. db._root] = map; return end
  write_file(db._root .. FILE, map)
end

function remotes.add(db, name, url)
  remotes.check_name(name)
  local backend, root = remotes.parse_url(url)
  if root == db._root and (backend or "file") == ((in_process(db) or in_setting(db)) and db._backend or "file") then
    raise("invalid_argument", "remote '%s': the url names this store itself", name)
  end
  local map = remotes.list(db)
  if map[name] then raise("already_exists", "remote '%s' exists (url %s)", name, map[name]) end
  map[name] = url
  save(db, map)
  return true
end

function remotes.remove(db, name)
  remotes.check_name(name)
  local map = remotes.list(db)
  if not map[name] then raise("not_found", "no remote '%s'", name) end
  map[name] = nil
  save(db, map)
  return true
end

--- The url of remote name (not_found when it is not configured).
function remotes.url(db, name)
  remotes.check_name(name)
  local url = remotes.list(db)[name]
  if not url then raise("not_found", "no remote '%s' (db:add_remote first)", name) end
  return url
end

--- Opens the store at url as a db handle (open: mydb.open). A path must
-- hold a store already: a remote is never created by using it.
function remotes.open(open, url)
  local backend, root = remotes.parse_url(url)
  if backend == nil then
    -- the store's own backend (ROOT/.mydb; a store of the original layout,
    -- refs/ without .mydb, is loose)
    local f = io.open(root .. "/.mydb", "rb")
    if f then
      backend = (f:read(256) or ""):match('"backend":"(%a+)"')
      f:close()
    else
      f = io.open(root .. "/refs/.", "rb")
      if not f then raise("not_found", "no mydb store at '%s'", root) end
      f:close()
      backend = "loose"
    end
  end
  return open(root, { backend = backend })
end

return remotes
