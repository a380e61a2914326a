--- mydb.cmd.dump: a tenant as JSON lines (`mydb export`) and back
-- (`mydb import`), like sqlite3's .dump.
--
-- One line per commit, oldest first, along the branch's first-parent
-- chain (a merge is replayed as the one commit it made on the branch):
--   {"changes":[CHANGE...],"commit":ID,"message":M,"time":T,"user":U}
-- where each CHANGE is the whole state of one entry the commit changed:
--   {"entry":E,"value":V}        a snapshot entry
--   {"entry":E,"records":{K:R}}  a record collection
--   {"dropped":true,"entry":E}   the entry was removed
-- With latest = true, one line holds the state of every entry (no commit).
-- Values are mydb's canonical JSON (handler and class tags included), so
-- importing a dump and exporting again gives the same lines but for the
-- commit ids and times, which the importing store makes anew.
local values = require "mydb.cmd.values"
local errors = require "mydb.errors"

local dump = {}

local s = values.string

-- The state of entry in view: a CHANGE line's body.
local function entry_state(view, entry)
  if not view:exists(entry) then return ('{"dropped":true,"entry":%s}'):format(s(entry)) end
  local ok, iter = pcall(view.records, view, entry)
  if not ok then
    if not errors.is(iter, "type_mismatch") then error(iter, 0) end
    return ('{"entry":%s,"value":%s}'):format(s(entry), values.encode(view:load(entry)))
  end
  local parts = {}
  for k, rec in iter do parts[#parts + 1] = s(k) .. ":" .. values.encode(rec) end
  return ('{"entry":%s,"records":{%s}}'):format(s(entry), table.concat(parts, ","))
end

local function line(changes, c)
  return ('{"changes":[%s],"commit":%s,"message":%s,"time":%s,"user":%s}'):format(
    table.concat(changes, ","), c and s(c.id) or "null", s(c and c.message or ""),
    c and values.encode(c.time) or "null", s(c and c.user_id or ""))
end

--- Writes the dump of tenant's branch `rev` to out (a function of a line).
-- tick() is called per commit.
function dump.export(db, tenant, rev, latest, out, tick)
  if latest then
    local view = db:at(tenant, rev)
    local changes = {}
    for _, e in ipairs(view:entries()) do changes[#changes + 1] = entry_state(view, e) end
    out(line(changes, { id = view.commit, message = "", user_id = "" }))
    return 1
  end
  local log = db:log(tenant, { rev = rev, max = math.maxinteger, first_parent = true })
  for i = #log, 1, -1 do
    local c = log[i]
    local view = db:at(tenant, c.id)
    local changes = {}
    local names = c.entries or {}
    table.sort(names)
    for _, e in ipairs(names) do changes[#changes + 1] = entry_state(view, e) end
    out(line(changes, c))
    if tick then tick() end
  end
  return #log
end

-- Applies one decoded line to tenant as one commit (a batch).
local function apply(db, tenant, default_user, rec)
  local user = rec.user ~= nil and rec.user ~= "" and rec.user or default_user
  local opts = rec.message ~= nil and rec.message ~= "" and { message = rec.message } or nil
  local exists, stale = {}, {}
  for _, ch in ipairs(rec.changes or {}) do
    local e = ch.entry
    if type(e) ~= "string" then errors.raise("invalid_argument", "a change without an entry name") end
    exists[e] = db:exists(tenant, e)
    if ch.records ~= nil and exists[e] then
      local ok, iter = pcall(db.records, db, tenant, e)
      if ok then
        stale[e] = {}
        for k in iter do
          if ch.records[k] == nil then stale[e][#stale[e] + 1] = k end
        end
      end
    end
  end
  return db:batch(tenant, user, function(b)
    for _, ch in ipairs(rec.changes or {}) do
      local e = ch.entry
      if ch.dropped then
        if exists[e] then b:drop(e) end
      elseif ch.records ~= nil then
        for _, k in ipairs(stale[e] or {}) do b:delete(e, k) end
        if next(ch.records) ~= nil then b:put_many(e, ch.records) end
      else
        b:save(e, ch.value)
      end
    end
  end, opts)
end

--- Reads dump lines from the iterator `lines` into tenant (created when
-- missing): one commit per line. Returns the number of lines applied.
function dump.import(db, tenant, user, lines, tick)
  db:init(tenant)
  local n = 0
  for l in lines do
    if l:match("%S") then
      n = n + 1
      local rec = values.decode(l, "line " .. n)
      if type(rec) ~= "table" then errors.raise("invalid_argument", "line %d is not a dump line", n) end
      apply(db, tenant, user, rec)
      if tick then tick() end
    end
  end
  return n
end

return dump
