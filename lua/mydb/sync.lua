--- mydb.sync: history between stores - fetch, push, pull, clone (README
-- "Sync"). The other store is a remote (mydb.remotes), opened by its url.
--
-- Objects travel first (mydb.transfer: only what the other side lacks,
-- read and verified without locks, written under the receiving tenant's
-- lock, where gc sweeps), refs last, in one atomic head commit under that
-- lock: a sync killed at any moment leaves both stores
-- valid, and running it again completes it. A push moves the remote's
-- branch by compare-and-set under the remote tenant's lock: only when it
-- is a fast-forward of what the remote holds at that moment (else
-- `rejected`; opts.force overrides). Main keeps the tenant's entry heads
-- in step with its commit, on either side.
local errors = require "mydb.errors"
local validate = require "mydb.validate"
local commits = require "mydb.commits"
local refs = require "mydb.refs"
local merge = require "mydb.merge"
local versions = require "mydb.versions"
local remotes = require "mydb.remotes"
local transfer = require "mydb.transfer"
local progress = require "mydb.progress"

local raise = errors.raise

local sync = {}

local function check_branch(name)
  if name ~= nil then refs.check_name(name, "branch") end
end

local function check_opts(opts, allowed)
  if opts == nil then return {} end
  if type(opts) ~= "table" then raise("invalid_argument", "opts must be a table, got %s", type(opts)) end
  for k in pairs(opts) do
    if not allowed[k] then raise("invalid_argument", "unknown option '%s'", tostring(k)) end
  end
  return opts
end

-- Branches and tags of a tenant of store: {name = commit}, {name = tag object}.
local function heads_and_tags(store, tenant)
  local branches, tags = {}, {}
  for name, d in pairs(store:refs(tenant)) do
    local kind, n = name:match("^(%a+)/(.*)$")
    if kind == "heads" then branches[n] = d elseif kind == "tags" then tags[n] = d end
  end
  return branches, tags
end

-- The head changes that make main's entry heads those of commit id (read
-- through handle h, under lock of h's store).
local function main_entries(h, tenant, id, out)
  local _, now = h._store:heads(tenant)
  local _, want = commits.entries(h, tenant, commits.read(h, tenant, id))
  for e, v in pairs(want) do
    if now[e] ~= v then out[#out + 1] = { e, v } end
  end
  for e in pairs(now) do
    if want[e] == nil then out[#out + 1] = { e, false } end
  end
  return out
end

-- The head changes a fetch makes (head: reads a head key), and the names
-- of the refs they move.
local function fetch_changes(ls, tenant, remote, branch, branches, tags, head)
  local changes, updated = {}, {}
  for name, id in pairs(branches) do
    local key = refs.remote_key(remote .. "/" .. name)
    if head(key) ~= id then
      changes[#changes + 1] = { key, id }
      updated[#updated + 1] = remote .. "/" .. name
    end
  end
  if not branch then
    local prefix = "remotes/" .. remote .. "/"
    for name in pairs(ls:refs(tenant)) do
      if name:sub(1, #prefix) == prefix and not branches[name:sub(#prefix + 1)] then
        changes[#changes + 1] = { "\0" .. name, false }
        updated[#updated + 1] = name:sub(9)
      end
    end
  end
  for name, tag in pairs(tags) do
    local key = refs.tag_key(name)
    if not head(key) then
      changes[#changes + 1] = { key, tag }
      updated[#updated + 1] = "tags/" .. name
    end
  end
  return changes, updated
end

-- ------------------------------------------------------------------ fetch

--- db:fetch(tenant, remote [, branch]): the remote's branches (or one) and
-- tags, as remote-tracking branches REMOTE/BRANCH and tags the handle's
-- store lacks. Fetching every branch drops the tracking branches of the
-- branches the remote no longer has.
function sync.fetch(db, tenant, remote, branch, what)
  validate.tenant(tenant)
  check_branch(branch)
  local url = remotes.url(db, remote)
  local r <close> = remotes.open(db._open, url)
  local rs, ls = r._store, db._store
  if not rs:tenant_exists(tenant) then
    raise("not_found", "remote '%s' has no tenant '%s'", remote, tenant)
  end
  local branches, tags = heads_and_tags(rs, tenant)
  if not branches[refs.DEFAULT] and next(select(2, rs:heads(tenant))) then
    -- a tenant written before commits: its heads become main's first
    -- commit on the remote, as its own next write would make them
    do
      local rlock <close> = rs:lock(tenant)
      versions.import_main(r, rlock, tenant)
    end
    branches, tags = heads_and_tags(rs, tenant)
  end
  if branch then
    if not branches[branch] then raise("not_found", "remote '%s' has no branch '%s' in tenant '%s'", remote, branch, tenant) end
    branches = { [branch] = branches[branch] }
  end
  local report = transfer.report()
  local starts = {}
  for _, id in pairs(branches) do starts[#starts + 1] = id end
  for _, id in pairs(tags) do starts[#starts + 1] = id end
  table.sort(starts)
  if not ls:tenant_exists(tenant) then ls:tenant_init(tenant) end
  db._init_known[tenant] = true
  local bar <close> = progress.closing((what or "fetch") .. " " .. tenant)
  local plan = transfer.plan(rs, ls, tenant, starts, bar)
  -- a look without the lock first: a no-op fetch takes no lock
  local changes, updated = fetch_changes(ls, tenant, remote, branch, branches, tags,
    function(key) return ls:head(tenant, key) end)
  if #changes == 0 and transfer.empty(plan) then return report end
  local lock <close> = ls:lock(tenant)
  if not transfer.still_valid(ls, plan) then plan = transfer.plan(rs, ls, tenant, starts, bar) end
  transfer.write(ls, plan, report, bar)
  changes, updated = fetch_changes(ls, tenant, remote, branch, branches, tags,
    function(key) return lock:head(key) end)
  report.updated = updated
  if #changes > 0 then lock:commit(changes, true) end
  table.sort(report.updated)
  return report
end

-- ------------------------------------------------------------------- push

--- db:push(tenant, remote [, branch [, opts]]): the branch (default: the
-- handle's) and every tag the remote lacks; opts.force moves the remote
-- branch (and its differing tags) even when it is not a fast-forward.
function sync.push(db, tenant, remote, branch, opts)
  validate.tenant(tenant)
  check_branch(branch)
  opts = check_opts(opts, { force = true })
  if opts.force ~= nil and type(opts.force) ~= "boolean" then
    raise("invalid_argument", "option force must be a boolean")
  end
  db:_require_init(tenant)
  branch = branch or refs.current(db, tenant)
  local ls = db._store
  local id = ls:head(tenant, refs.branch_key(branch))
  if not id then raise("not_found", "branch '%s' of tenant '%s' has no commit to push", branch, tenant) end
  local url = remotes.url(db, remote)
  local r <close> = remotes.open(db._open, url)
  local rs = r._store
  local _, tags = heads_and_tags(ls, tenant)
  local starts = { id }
  for _, tag in pairs(tags) do starts[#starts + 1] = tag end
  local report = transfer.report()
  if not rs:tenant_exists(tenant) then rs:tenant_init(tenant) end
  local bar <close> = progress.closing("push " .. tenant)
  local plan = transfer.plan(ls, rs, tenant, starts, bar)
  -- the remote's changes (head: reads a head key of the remote); the
  -- compare-and-set is this under the remote's lock
  local key = refs.branch_key(branch)
  local function remote_changes(head, entries)
    local changes, updated = {}, {}
    local cur = head(key)
    if cur ~= id then
      if not opts.force then
        local ok_cur, cc = pcall(commits.read, db, tenant, cur or id)
        if not cur then
          if branch == refs.DEFAULT and next(select(2, rs:heads(tenant))) then
            raise("rejected", "push of '%s': the remote's main holds entries without a commit (force, or pull first)", branch)
          end
        elseif not ok_cur or not merge.is_ancestor(db, tenant, cc, commits.read(db, tenant, id)) then
          raise("rejected", "push of '%s' to remote '%s' is not a fast-forward of what it holds (%s): pull first, "
            .. "or opts.force", branch, remote, cur:sub(1, 12))
        end
      end
      if entries and branch == refs.DEFAULT then main_entries(r, tenant, id, changes) end
      changes[#changes + 1] = { key, id }
      updated[#updated + 1] = branch
    end
    for name, tag in pairs(tags) do
      local tkey = refs.tag_key(name)
      local have = head(tkey)
      if have ~= tag and (not have or opts.force) then
        changes[#changes + 1] = { tkey, tag }
        updated[#updated + 1] = "tags/" .. name
      end
    end
    return changes, updated
  end
  -- a look without the lock first: a no-op push takes no remote lock
  if #remote_changes(function(k) return rs:head(tenant, k) end, false) > 0 or not transfer.empty(plan) then
    local lock <close> = rs:lock(tenant)
    if not transfer.still_valid(rs, plan) then plan = transfer.plan(ls, rs, tenant, starts, bar) end
    transfer.write(rs, plan, report, bar)
    local changes
    changes, report.updated = remote_changes(function(k) return lock:head(k) end, true)
    if #changes > 0 then lock:commit(changes, true) end
  end
  -- what the remote now holds, as the tracking branch
  local tkey = refs.remote_key(remote .. "/" .. branch)
  if ls:head(tenant, tkey) ~= id then
    local lock <close> = ls:lock(tenant)
    if lock:head(tkey) ~= id then lock:commit({ { tkey, id } }, true) end
  end
  table.sort(report.updated)
  return report
end

-- ------------------------------------------------------------------- pull

--- db:pull(tenant, user, remote [, branch [, opts]]): fetch of the branch
-- (default: the handle's), then db:merge of REMOTE/BRANCH into the
-- handle's branch (opts: the merge's). report.merge is the merge's result.
function sync.pull(db, tenant, user, remote, branch, opts)
  validate.tenant(tenant)
  validate.user(user)
  check_branch(branch)
  branch = branch or refs.current(db, tenant)
  local report = sync.fetch(db, tenant, remote, branch)
  report.merge = db:merge(tenant, user, remote .. "/" .. branch, opts)
  return report
end

-- ------------------------------------------------------------------ clone

--- mydb.clone(url, root [, opts]): a new store at root (opts.backend) with
-- every tenant of url (or opts.tenants), all branches, tags, commits,
-- objects and refs; url becomes its remote "origin". Returns the handle
-- and the report (report.tenants: how many). open: mydb.open (the facade
-- hands it over: no module requires mydb itself).
function sync.clone(open, url, root, opts)
  opts = check_opts(opts, { tenants = true, backend = true, fsync = true })
  remotes.parse_url(url)
  validate.string(root, "root", 1, 4096)
  if opts.tenants ~= nil then
    if type(opts.tenants) ~= "table" then raise("invalid_argument", "option tenants must be a list of tenant ids") end
    for _, t in ipairs(opts.tenants) do validate.tenant(t) end
  end
  local tenants
  do
    local src <close> = remotes.open(open, url)
    tenants = opts.tenants or src._store:tenants()
    for _, t in ipairs(tenants) do
      if not src._store:tenant_exists(t) then raise("not_found", "clone: the source has no tenant '%s'", t) end
    end
  end
  local db = open(root, { backend = opts.backend, fsync = opts.fsync })
  local ok, report = pcall(function()
    if #db._store:tenants() > 0 or next(remotes.list(db)) then
      raise("invalid_argument", "clone: the destination %s is not empty", root)
    end
    db:add_remote("origin", url)
    local total = transfer.report()
    total.tenants = 0
    for _, t in ipairs(tenants) do
      local rep = sync.fetch(db, t, "origin", nil, "clone")
      for _, k in ipairs({ "commits", "objects", "bytes" }) do total[k] = total[k] + rep[k] end
      local lock <close> = db._store:lock(t)
      local changes = {}
      for name, id in pairs(select(3, refs.list(db, t))) do
        local b = name:match("^origin/(.*)$")
        if b then
          if b == refs.DEFAULT then main_entries(db, t, id, changes) end
          changes[#changes + 1] = { refs.branch_key(b), id }
          total.updated[#total.updated + 1] = t .. ":" .. b
        end
      end
      if #changes > 0 then lock:commit(changes, true) end
      total.tenants = total.tenants + 1
    end
    table.sort(total.updated)
    return total
  end)
  if not ok then
    db:close()
    error(report, 0)
  end
  return db, report
end

return sync
