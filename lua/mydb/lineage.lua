--- mydb.lineage: whether a version digest is in an entry's history, so that
-- a read given a digest of another entry says not_found instead of
-- returning that entry's version.
--
-- A version belongs to entry when it is on the parent chain of the entry's
-- head on the handle's branch, or when a commit reachable from the
-- tenant's refs (branches, remote-tracking branches, tags) wrote it as
-- entry's version, or when it is on the parent chain of such a version
-- (the older versions of a tenant written before commits existed, which
-- only its first commit names). Every version a write makes is named by
-- its commit, a merge's or an adopted one included, and a dropped entry's
-- versions stay named by the commits that wrote them: so this is the
-- entry's whole history, on every branch and before every drop.
-- Identical content written to two entries (one digest, stored once)
-- belongs to both when both histories hold it.
--
-- Cost: the head itself, O(1); a version on the head's chain, one object
-- read per version between the head and it (store:chain, in C); anything
-- else (another branch, a dropped entry's past, and every digest that does
-- not belong) a walk of the tenant's commits, O(commits + versions). The
-- answers are remembered per handle (versions never leave a history while
-- they exist), and what a view or db:history hands out is known already.
local errors = require "mydb.errors"
local commits = require "mydb.commits"
local refs = require "mydb.refs"

local raise = errors.raise

local lineage = {}

local MEMO_MAX = 4096

local function memo(db)
  local m = db._lineage
  if not m or m.count > MEMO_MAX then
    m = { count = 0, known = {}, lists = {} }
    db._lineage = m
  end
  return m
end

local function key(tenant, entry, digest) return tenant .. "\0" .. entry .. "\0" .. digest end

--- Records that digest is in entry's history (the caller knows it is).
function lineage.trust(db, tenant, entry, digest)
  local m = memo(db)
  local k = key(tenant, entry, digest)
  if not m.known[k] then m.known[k] = true; m.count = m.count + 1 end
end

--- Records that every digest of list (a db:history result) is in entry's
-- history, at no cost now: the list is looked at only when asked about.
function lineage.trust_list(db, tenant, entry, list)
  memo(db).lists[tenant .. "\0" .. entry] = list
end

-- Whether digest is on the parent chain from version from (first parents;
-- a merge's other side is named by its own commits). Read in growing
-- windows, so that a hit near from reads only what lies between.
local function on_chain(db, tenant, from, digest, seen)
  local store, window, stepping = db._store, 16, false
  while from and not seen[from] do
    local ok, list = pcall(store.chain, store, tenant, from, window)
    if not ok then
      -- a damaged version further back than digest must not make digest
      -- unreadable: from here on, one version a step (a step reads only from)
      if stepping then error(list, 0) end
      stepping, window = true, 2
      list = store:chain(tenant, from, window)
    end
    for i, d in ipairs(list) do
      if d == digest then return true end
      if seen[d] then return false end -- (walked from here already)
      if i < #list or #list < window then seen[d] = true end
    end
    if #list < window then return false end -- the chain's first version
    from = list[#list] -- (read again as the next window's first)
    if not stepping then window = window * 2 end
  end
  return false
end

-- The versions of entry that commits reachable from the refs wrote.
local function written_versions(db, tenant, entry)
  local branches, tags, remotes = refs.list(db, tenant)
  local stack, seen, out = {}, {}, {}
  for _, id in pairs(branches) do stack[#stack + 1] = id end
  for _, id in pairs(remotes) do stack[#stack + 1] = id end
  for _, id in pairs(tags) do stack[#stack + 1] = refs.read_tag(db, tenant, id).target end
  while #stack > 0 do
    local id = table.remove(stack)
    if not seen[id] then
      seen[id] = true
      local c = commits.read(db, tenant, id)
      local v = c.entries[entry]
      if v then out[#out + 1] = v end
      if #c.parents == 0 then -- a first commit: it may name a chain older than commits
        local first = commits.lookup(db, tenant, c, entry)
        if first and first ~= v then out[#out + 1] = first end
      end
      for _, p in ipairs(c.parents) do stack[#stack + 1] = p end
    end
  end
  return out
end

--- True when digest is in entry's history (see above).
function lineage.belongs(db, tenant, entry, digest)
  local m = memo(db)
  local k = key(tenant, entry, digest)
  if m.known[k] then return true end
  local list = m.lists[tenant .. "\0" .. entry]
  if list then
    m.lists[tenant .. "\0" .. entry] = nil
    for _, d in ipairs(list) do lineage.trust(db, tenant, entry, d) end
    m = memo(db)
    if m.known[k] then return true end
  end
  local seen = {}
  local head = db:_head(tenant, entry)
  local found = head == digest or (head ~= nil and on_chain(db, tenant, head, digest, seen))
  if not found then
    for _, v in ipairs(written_versions(db, tenant, entry)) do
      if v == digest or on_chain(db, tenant, v, digest, seen) then found = true; break end
    end
  end
  if found then lineage.trust(db, tenant, entry, digest) end
  return found
end

--- Raises not_found unless digest is in entry's history.
function lineage.check(db, tenant, entry, digest)
  if not lineage.belongs(db, tenant, entry, digest) then
    raise("not_found", "version %s is not in the history of entry '%s' of tenant '%s'", digest, entry, tenant)
  end
end

return lineage
