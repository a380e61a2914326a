--- mydb.versions: the versioning calls of a db handle - branches, tags,
-- checkout, the log, revisions and views (README "Versioning").
local core = require "mydb.core"
local errors = require "mydb.errors"
local commits = require "mydb.commits"
local refs = require "mydb.refs"
local dates = require "mydb.dates"
local branch = require "mydb.branch"
local view = require "mydb.view"

local raise = errors.raise

local versions = {}

--- The decoded head commit of branch name (not_found when it is missing
-- or, for main, has no commit yet).
function versions.branch_commit(db, tenant, name)
  local id = db._store:head(tenant, refs.branch_key(name))
  if not id then
    if name == refs.DEFAULT then
      raise("not_found", "branch 'main' of tenant '%s' has no commit yet", tenant)
    end
    raise("not_found", "branch '%s' of tenant '%s' does not exist", name, tenant)
  end
  return commits.read(db, tenant, id)
end

-- Under lock: main gets its first commit from its heads if it has none (a
-- store written before commits existed), committed at once.
function versions.import_main(db, lock, tenant)
  local key = refs.branch_key(refs.DEFAULT)
  if lock:head(key) then return end
  local c = branch.import_heads(db, tenant)
  if c then lock:commit({ { key, c.id } }) end
end

-- The commit a new branch or tag points at: rev, or the tip of the
-- handle's branch.
local function target(db, lock, tenant, rev)
  versions.import_main(db, lock, tenant)
  if rev ~= nil then return refs.resolve(db, tenant, rev) end
  local name = refs.current(db, tenant)
  local id = lock:head(refs.branch_key(name))
  if not id then
    raise("not_found", "branch '%s' of tenant '%s' has no commit yet", name, tenant)
  end
  return id
end

function versions.branch(db, tenant, name, rev)
  refs.check_name(name, "branch")
  local lock <close> = db._store:lock(tenant)
  local key = refs.branch_key(name)
  if lock:head(key) then raise("already_exists", "branch '%s' of tenant '%s' exists", name, tenant) end
  local id = target(db, lock, tenant, rev)
  lock:commit({ { key, id } }, true)
  return id
end

--- The local branches and (mydb.sync) the remote-tracking ones,
-- "REMOTE/BRANCH" (a local branch of the same name wins).
function versions.branches(db, tenant)
  local branches, _, remotes = refs.list(db, tenant)
  for name, id in pairs(remotes) do
    if branches[name] == nil then branches[name] = id end
  end
  return branches
end

function versions.delete_branch(db, tenant, name)
  refs.check_name(name, "branch")
  if name == refs.current(db, tenant) then
    raise("invalid_argument", "branch '%s' is checked out by this handle (checkout another first)", name)
  end
  if name == refs.DEFAULT then
    raise("invalid_argument", "branch 'main' holds the tenant's entry heads and cannot be deleted")
  end
  local lock <close> = db._store:lock(tenant)
  local key = refs.branch_key(name)
  if not lock:head(key) then raise("not_found", "branch '%s' of tenant '%s' does not exist", name, tenant) end
  lock:commit({ { key, false } }, true)
  return true
end

function versions.checkout(db, tenant, name)
  refs.check_name(name, "branch")
  if name ~= refs.DEFAULT and not db._store:head(tenant, refs.branch_key(name)) then
    if core.ref_name_valid("remotes/" .. name) and db._store:head(tenant, refs.remote_key(name)) then
      raise("invalid_argument", "'%s' is a remote-tracking branch: read-only (make a branch from it: "
        .. "db:branch(tenant, NAME, '%s'))", name, name)
    end
    raise("not_found", "branch '%s' of tenant '%s' does not exist", name, tenant)
  end
  db._branch[tenant] = name ~= refs.DEFAULT and name or nil
end

function versions.tag(db, tenant, name, rev, message)
  refs.check_name(name, "tag")
  if message ~= nil and (type(message) ~= "string" or #message > 65536 or not utf8.len(message)) then
    raise("invalid_argument", "tag message must be a UTF-8 string of at most 65536 bytes")
  end
  local store = db._store
  local lock <close> = store:lock(tenant)
  local key = refs.tag_key(name)
  if lock:head(key) then raise("already_exists", "tag '%s' of tenant '%s' exists", name, tenant) end
  local id = target(db, lock, tenant, rev)
  local tag = store:write(tenant, refs.tag_bytes(id, message))
  lock:commit({ { key, tag } }, true)
  return id
end

function versions.tags(db, tenant)
  local _, tags = refs.list(db, tenant)
  local out = {}
  for name, tag in pairs(tags) do out[name] = refs.read_tag(db, tenant, tag).target end
  return out
end

function versions.delete_tag(db, tenant, name)
  refs.check_name(name, "tag")
  local lock <close> = db._store:lock(tenant)
  local key = refs.tag_key(name)
  if not lock:head(key) then raise("not_found", "tag '%s' of tenant '%s' does not exist", name, tenant) end
  lock:commit({ { key, false } }, true)
  return true
end

function versions.at(db, tenant, rev)
  return view.new(db, tenant, commits.read(db, tenant, refs.resolve(db, tenant, rev)))
end

-- ---------------------------------------------------------------- the log

local LOG_OPTS = { rev = "string", max = "number", entry = "string", since = "time",
                   ["until"] = "time", first_parent = "boolean" }

local function check_log_opts(opts)
  if opts == nil then return {} end
  if type(opts) ~= "table" then raise("invalid_argument", "opts must be a table, got %s", type(opts)) end
  for k, v in pairs(opts) do
    local want = LOG_OPTS[k]
    if not want then raise("invalid_argument", "unknown log option '%s'", tostring(k)) end
    if want == "time" then
      if dates.parse(v) == nil then
        raise("invalid_argument", "log option %s must be seconds since the epoch or an ISO 8601 time, got %s",
          k, type(v) == "string" and ("'" .. v .. "'") or type(v))
      end
    elseif type(v) ~= want then raise("invalid_argument", "log option %s must be a %s, got %s", k, want, type(v)) end
  end
  if opts.max ~= nil and (math.type(opts.max) ~= "integer" or opts.max < 1) then
    raise("invalid_argument", "log option max must be a positive integer")
  end
  if type(opts.since) == "string" or type(opts["until"]) == "string" then -- a copy, in seconds
    local o = {}
    for k, v in pairs(opts) do o[k] = v end
    o.since, o["until"] = dates.parse(opts.since), dates.parse(opts["until"])
    return o
  end
  return opts
end

local function summary(c)
  local names = {}
  for name in pairs(c.entries) do names[#names + 1] = name end
  table.sort(names)
  local parents = {}
  for i, p in ipairs(c.parents) do parents[i] = p end
  return { id = c.id, parents = parents, user_id = c.user_id, date = c.date, time = c.time,
           message = c.message, entries = names }
end

local heap_push, heap_pop = commits.heap_push, commits.heap_pop

-- The commits that changed entry, from c back: the state names the last
-- one, each commit the one before (prev); where that chain ends at a
-- re-creation after a drop, a first-parent walk finds the earlier life.
local function entry_chain(db, tenant, c, entry)
  local function walk_from(x)
    while x do
      if x.entries[entry] ~= nil then return x end
      x = x.parents[1] and commits.read(db, tenant, x.parents[1])
    end
  end
  local _, by = commits.lookup(db, tenant, c, entry)
  local cur = by and commits.read(db, tenant, by) or walk_from(c)
  return function()
    local out = cur
    if out then
      local p = out.prev[entry]
      if p then cur = commits.read(db, tenant, p)
      else cur = out.parents[1] and walk_from(commits.read(db, tenant, out.parents[1])) end
    end
    return out
  end
end
versions.entry_chain = entry_chain

function versions.log(db, tenant, opts)
  opts = check_log_opts(opts)
  local max = opts.max or 1000
  local start
  if opts.rev then
    start = refs.resolve(db, tenant, opts.rev)
  else
    local name = refs.current(db, tenant)
    start = db._store:head(tenant, refs.branch_key(name))
    if not start then
      if name == refs.DEFAULT then return {} end
      raise("not_found", "branch '%s' of tenant '%s' does not exist", name, tenant)
    end
  end
  local c = commits.read(db, tenant, start)
  if opts["until"] then
    c = commits.at_time(db, tenant, c, opts["until"]) -- times never fall along first parents
    if not c then return {} end
  end
  local out = {}
  if opts.entry then
    for x in entry_chain(db, tenant, c, opts.entry) do
      if #out >= max or (opts.since and x.time < opts.since) then break end
      if not opts["until"] or x.time <= opts["until"] then out[#out + 1] = summary(x) end
    end
    return out
  end
  local heap, seen = { c }, { [c.id] = true }
  while #heap > 0 and #out < max do
    local x = heap_pop(heap)
    if opts.since and x.time < opts.since then break end
    if not opts["until"] or x.time <= opts["until"] then out[#out + 1] = summary(x) end
    for i, p in ipairs(x.parents) do
      if i > 1 and opts.first_parent then break end
      if not seen[p] then
        seen[p] = true
        heap_push(heap, commits.read(db, tenant, p))
      end
    end
  end
  return out
end

return versions
