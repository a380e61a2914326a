--- mydb.branch: what a write does to the branch it is made on.
--
-- Branch main keeps the tenant's entry heads (entry -> latest version) in
-- step with its state, so reading main costs one head lookup as before
-- commits existed; another branch is read through its commit's state
-- tree. Under the tenant lock, a write asks this module for each entry's
-- current version on the branch, then turns its head changes into one
-- commit and the head changes that publish it (one atomic head commit:
-- the entries, for main, and the branch).
local errors = require "mydb.errors"
local commits = require "mydb.commits"
local refs = require "mydb.refs"

local raise = errors.raise

local branch = {}

local Line = {}
Line.__index = Line

--- The branch the handle has checked out on tenant, under lock (a locked
-- handle of the store).
local function fill(self, db, lock, tenant)
  local name = refs.current(db, tenant)
  local key = refs.branch_key(name)
  local seen = self.head -- (a kept line: the tip it made or saw last)
  self.db, self.lock, self.tenant, self.name, self.key = db, lock, tenant, name, key
  self.main, self.head = name == refs.DEFAULT, nil
  if seen and lock:head_is(key, seen.id) then
    self.head = seen
    return self
  end
  local id = lock:head(key)
  if id then
    self.head = commits.read(db, tenant, id)
  elseif not self.main then
    raise("not_found", "branch '%s' of tenant '%s' does not exist (deleted?)", name, tenant)
  end
  return self
end

function branch.open(db, lock, tenant)
  return fill(setmetatable({}, Line), db, lock, tenant)
end

--- branch.open for a caller that uses the line only while it holds the
-- lock and runs no caller code meanwhile (mydb.write's simple put): the
-- handle keeps one line per tenant and refills it, and line:commit_one's
-- change lists with it, instead of five tables a put.
local KEPT_LINES = 64 -- (tenants a handle keeps lines for: then it starts anew)

function branch.open_kept(db, lock, tenant)
  local kept = db._kept_lines
  if not kept or (kept[tenant] == nil and kept.n >= KEPT_LINES) then
    kept = { n = 0 }
    db._kept_lines = kept
  end
  local self = kept[tenant]
  if not self then
    local change, head = {}, {}
    self = setmetatable({ changes = { change }, heads = { change, head }, change = change,
                          head_change = head }, Line)
    kept[tenant], kept.n = self, kept.n + 1
  end
  return fill(self, db, lock, tenant)
end

--- The entry's current version on the branch (nil: absent).
function Line:version(entry)
  if self.main then
    -- (a kept line: the version its last commit_one wrote, while still the head)
    local v = self.wrote == entry and self.version_written
    if v and self.lock:head_is(entry, v) then return v end
    return self.lock:head(entry)
  end
  return (commits.lookup(self.db, self.tenant, self.head, entry))
end

--- Main without a commit but with entries (a store written before commits
-- existed): its heads become a first commit (written, not yet published;
-- the caller holds the lock). nil when the tenant has no entry.
function branch.import_heads(db, tenant)
  local entries, heads = db._store:heads(tenant)
  if #entries == 0 then return nil end
  local changes = {}
  for i, e in ipairs(entries) do changes[i] = { e, heads[e] } end
  local _, c = commits.make(db, tenant, nil, changes, "mydb", "the state before commits")
  return c
end

--- The head commit of the branch, making main's first one from its heads
-- when it has none (nil: an empty branch).
function Line:tip()
  if not self.head and self.main then self.head = branch.import_heads(self.db, self.tenant) end
  return self.head
end

--- Makes the commit of changes {{entry, version | false}} and returns its
-- id and the head changes that publish it (extra_parents: a merge's other
-- parents, after the branch's tip).
function Line:commit(changes, user, message, extra_parents)
  local parent = self:tip()
  local id = commits.make(self.db, self.tenant, parent, changes, user, message, extra_parents)
  local heads
  if self.main then
    -- (changes is mydb.write's, made for this commit: it becomes the head
    -- changes, the branch's head added)
    heads = changes
    heads[#heads + 1] = { self.key, id }
  else
    heads = { { self.key, id } }
  end
  return id, heads
end

--- Line:commit of one change, entry -> version, on a line of
-- branch.open_kept: its lists are the line's, valid until the next put.
function Line:commit_one(entry, version, user, message)
  local change = self.change
  change[1], change[2] = entry, version
  local id, c = commits.make(self.db, self.tenant, self:tip(), self.changes, user, message)
  -- (what the next put on this line checks against the heads first: its
  -- tip and the entry's version, if this commit is published)
  self.head, self.wrote, self.version_written = c, entry, version
  if not self.main then return id, { { self.key, id } } end
  local head = self.head_change
  head[1], head[2] = self.key, id
  return id, self.heads
end

return branch
