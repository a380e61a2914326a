--- mydb.refs: a tenant's branches and tags, and revisions (names of
-- commits: "main", "v1", an id or its prefix, "main~3", "main@{T}").
--
-- A branch or tag is a head key: a NUL byte and "heads/NAME" or
-- "tags/NAME" (include/mydb.h), moved by the same atomic head commits as
-- entries. A branch names a commit; a tag names a tag object
-- {"tag":1,"target":<commit>,"text":<message>,"time":<seconds>}.
local core = require "mydb.core"
local errors = require "mydb.errors"
local commits = require "mydb.commits"
local dates = require "mydb.dates"

local raise = errors.raise

local refs = {}

refs.DEFAULT = "main"

local TAG_PREFIX = '{"tag":1,'

function refs.is_tag(bytes) return bytes:sub(1, #TAG_PREFIX) == TAG_PREFIX end

--- Checks a branch or tag name (kind "branch" or "tag").
function refs.check_name(name, kind)
  if type(name) ~= "string" then
    raise("invalid_argument", "%s name must be a string, got %s", kind, type(name))
  end
  if not core.ref_name_valid("heads/" .. name) then
    raise("invalid_argument", "invalid %s name '%s' (1 to 128 bytes of letters, digits, '.', '_', "
      .. "'-', '/'; not starting with '.', '-' or '/'; no '..')", kind,
      (name:sub(1, 200):gsub("[%c\128-\255]", "?")))
  end
end

function refs.branch_key(name) return "\0heads/" .. name end
function refs.tag_key(name) return "\0tags/" .. name end
--- A remote-tracking branch "REMOTE/BRANCH" (mydb.sync: read-only, moved by fetch and push).
function refs.remote_key(name) return "\0remotes/" .. name end

--- The branch the handle reads and writes on tenant.
function refs.current(db, tenant) return db._branch[tenant] or refs.DEFAULT end

--- {name = commit id} of the tenant's branches, {name = tag object}, and
-- {"REMOTE/BRANCH" = commit id} of its remote-tracking branches.
function refs.list(db, tenant)
  local branches, tags, remotes = {}, {}, {}
  for name, d in pairs(db._store:refs(tenant)) do
    local kind, n = name:match("^(%a+)/(.*)$")
    if kind == "heads" then branches[n] = d
    elseif kind == "tags" then tags[n] = d
    elseif kind == "remotes" then remotes[n] = d end
  end
  return branches, tags, remotes
end

--- The decoded tag object id.
function refs.read_tag(db, tenant, id)
  local bytes = db._store:read(tenant, id)
  if not refs.is_tag(bytes) then raise("corrupt", "tag object %s is not a tag", id) end
  local ok, t = pcall(core.decode, bytes)
  if not ok or type(t) ~= "table" or not core.digest_valid(t.target) or type(t.time) ~= "number" then
    raise("corrupt", "tag object %s is damaged", id)
  end
  return t
end

function refs.tag_bytes(target, message)
  return core.encode({ tag = 1, target = target, text = message, time = core.realtime() })
end

-- ---------------------------------------------------------------- revisions

-- A time in REV@{T}: seconds, "YYYY-MM-DD[ HH:MM:SS]" or ISO 8601 (mydb.dates).
local function parse_time(s) return dates.parse(s) end
refs.parse_time = parse_time

--- Calls visit(id, commit) once for every commit reachable from the
-- tenant's refs (branches, remote-tracking branches, tags); returns the set
-- of their ids.
function refs.each_commit(db, tenant, visit)
  local branches, tags, remotes = refs.list(db, tenant)
  local stack, seen = {}, {}
  for _, id in pairs(branches) do stack[#stack + 1] = id end
  for _, id in pairs(remotes) do stack[#stack + 1] = id end
  for _, id in pairs(tags) do stack[#stack + 1] = refs.read_tag(db, tenant, id).target end
  while #stack > 0 do
    local id = table.remove(stack)
    if not seen[id] then
      seen[id] = true
      local c = commits.read(db, tenant, id)
      if visit then visit(id, c) end
      for _, p in ipairs(c.parents) do stack[#stack + 1] = p end
    end
  end
  return seen
end

-- Every commit reachable from the tenant's refs (for id prefixes).
local function all_commits(db, tenant) return refs.each_commit(db, tenant) end

-- A name, tag, id or id prefix -> commit id (nil when nothing matches).
local function resolve_base(db, tenant, rev)
  local store = db._store
  if core.ref_name_valid("heads/" .. rev) then
    local id = store:head(tenant, refs.branch_key(rev))
    if id then return id end
    local tag = store:head(tenant, refs.tag_key(rev))
    if tag then return refs.read_tag(db, tenant, tag).target end
    if core.ref_name_valid("remotes/" .. rev) then
      id = store:head(tenant, refs.remote_key(rev))
      if id then return id end
    end
  end
  if #rev == 64 and core.digest_valid(rev) then
    commits.read(db, tenant, rev) -- not_found, or not a commit
    return rev
  end
  if #rev >= 8 and #rev < 64 and not rev:find("[^0-9a-f]") then
    local found
    for id in pairs(all_commits(db, tenant)) do
      if id:sub(1, #rev) == rev then
        if found then raise("invalid_argument", "revision '%s' is ambiguous in tenant '%s'", rev, tenant) end
        found = id
      end
    end
    return found
  end
  return nil
end

--- The commit id a revision names in tenant: a branch, a tag, a
-- remote-tracking branch REMOTE/BRANCH (a local branch of that name wins), a commit
-- id or a unique prefix of 8 or more hex digits, REV~N (the N-th
-- first-parent ancestor) or REV@{T} (the newest commit on REV's
-- first-parent chain at or before T: seconds since the epoch or
-- "YYYY-MM-DD[ HH:MM:SS]" UTC). not_found when it names nothing.
function refs.resolve(db, tenant, rev)
  if type(rev) ~= "string" or #rev < 1 or #rev > 1024 then
    raise("invalid_argument", "revision must be a string of 1 to 1024 bytes, got %s", type(rev))
  end
  local inner, t = rev:match("^(.+)@{(.*)}$")
  if inner then
    local when = parse_time(t)
    if not when then
      raise("invalid_argument", "revision '%s': '%s' is not a time (seconds, or YYYY-MM-DD[ HH:MM:SS])", rev, t)
    end
    local c = commits.at_time(db, tenant, commits.read(db, tenant, refs.resolve(db, tenant, inner)), when)
    if not c then raise("not_found", "revision '%s': no commit at or before that time", rev) end
    return c.id
  end
  local base, n = rev:match("^(.+)~(%d*)$")
  if base then
    n = n == "" and 1 or tonumber(n)
    if not n or n > 1e15 then raise("invalid_argument", "revision '%s': bad ~N", rev) end
    local c = commits.read(db, tenant, refs.resolve(db, tenant, base))
    if n > c.height then
      raise("not_found", "revision '%s': the commit has only %d first-parent ancestors", rev, c.height)
    end
    return commits.ancestor(db, tenant, c, c.height - n).id
  end
  local id = resolve_base(db, tenant, rev)
  if not id then raise("not_found", "revision '%s' names no branch, tag or commit of tenant '%s'", rev, tenant) end
  return id
end

return refs
