--- mydb.changes: change events, live (on_change) and from history (changes).
--
-- An event is {action=, tenant=, entry=, key=, old=, new=, digest=,
-- user_id=}: action is "save", "put", "delete", "expire" (a record whose
-- TTL passed, dropped by a write) or "drop"; key is set for record events;
-- old and new are the values before and after (nil when absent); digest is
-- the version the change made. From history, events also carry `date`.
local core = require "mydb.core"
local dates = require "mydb.dates"
local errors = require "mydb.errors"
local collection = require "mydb.collection"
local write = require "mydb.write"

local raise = errors.raise

local changes = {}

-- ------------------------------------------------------------------- live

--- Registers fn; returns a handle whose :remove() unregisters it.
function changes.on_change(db, fn)
  if type(fn) ~= "function" then
    raise("invalid_argument", "on_change needs a function, got %s", type(fn))
  end
  local handle = {}
  db._listeners[#db._listeners + 1] = { fn = fn, handle = handle }
  function handle.remove()
    for i, l in ipairs(db._listeners) do
      if l.handle == handle then table.remove(db._listeners, i); return true end
    end
    return false
  end
  return handle
end

local function snapshot_value(bytes, ctx)
  if bytes == nil then return nil end
  return (core.decode_snapshot(bytes, ctx))
end

--- Calls the listeners with each committed event. A listener that raises
-- is reported through warn() and db.listener_errors; the write stands.
function changes.emit(db, events, ctx)
  if #db._listeners == 0 or #events == 0 then return end
  for _, ev in ipairs(events) do
    local event = {
      action = ev.action, tenant = ev.tenant, entry = ev.entry, key = ev.key,
      digest = ev.digest, user_id = ev.user_id, commit = ev.commit,
    }
    if ev.action == "save" then
      if ev.old_bytes and not write.is_collection(ev.old_bytes) then
        event.old = snapshot_value(ev.old_bytes, ctx)
      end
      event.new = core.decode(ev.new_json, ctx)
    elseif ev.action ~= "drop" then
      event.old = ev.old_raw and core.decode(ev.old_raw, ctx)
      event.new = ev.new_raw and core.decode(ev.new_raw, ctx)
    end
    for _, l in ipairs({ table.unpack(db._listeners) }) do
      local ok, err = pcall(l.fn, event)
      if not ok then
        db.listener_errors = (db.listener_errors or 0) + 1
        warn("mydb: an on_change listener failed: ", tostring(err))
      end
    end
  end
end

-- ---------------------------------------------------------------- history

-- "YYYYMMDD HH:MM:SS +ZZZZ" -> seconds since the epoch (UTC).
function changes.date_seconds(date)
  local y, mo, d, h, mi, s, sign, oh, om =
    (date or ""):match("^(%d%d%d%d)(%d%d)(%d%d) (%d%d):(%d%d):(%d%d) ([+-])(%d%d)(%d%d)$")
  if not y then return nil end
  local offset = (tonumber(oh) * 60 + tonumber(om)) * 60
  if sign == "-" then offset = -offset end
  return dates.epoch_seconds(tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi),
    tonumber(s)) - offset
end

-- Record differences between two versions of a collection: calls
-- fn(key, old_raw, new_raw) in key order. Leaves shared by both versions
-- (the same cached piece) are skipped whole.
local function diff_records(db, tenant, entry, old_digest, new_digest, fn)
  local function leaves(digest)
    if not digest then return function() return nil end end
    local info = db:_collection_info(tenant, entry, digest)
    return collection.leaves(db:_tree(tenant, info), info.root)
  end
  local na, nb = leaves(old_digest), leaves(new_digest)
  local la, lb = na(), nb()
  local ia, ib = 1, 1
  while la or lb do
    if la and lb and ia == 1 and ib == 1 and la == lb then
      la, lb = na(), nb()
    else
      local ka = la and la.keys[ia]
      local kb = lb and lb.keys[ib]
      if ka ~= nil and (kb == nil or ka < kb) then
        fn(ka, la.vals[ia], nil)
        ia = ia + 1
      elseif kb ~= nil and (ka == nil or kb < ka) then
        fn(kb, nil, lb.vals[ib])
        ib = ib + 1
      else
        if la.vals[ia] ~= lb.vals[ib] then fn(ka, la.vals[ia], lb.vals[ib]) end
        ia, ib = ia + 1, ib + 1
      end
      if la and ia > #la.keys then la, ia = na(), 1 end
      if lb and ib > #lb.keys then lb, ib = nb(), 1 end
    end
  end
end

--- Changes of a tenant made since a version (a digest: every later
-- version of its entry, and versions of other entries dated no earlier) or
-- since a time (seconds since the epoch: versions dated at or after it),
-- oldest first. Reads the history, so it sees other processes' writes.
-- The time (and the digest) changes.since starts from.
local function start_of(store, tenant, since)
  if type(since) == "number" then return since end
  if core.digest_valid(since) then
    local _, meta = core.decode_snapshot(store:read(tenant, since), nil, true)
    return changes.date_seconds(meta.date), since
  end
  -- a string is a date (hex digits that are no digest are not read as seconds)
  local t = type(since) == "string" and since:match("^%d%d%d%d%-") and dates.parse(since)
  if t then return t end
  raise("invalid_argument", "since must be a digest, a time in seconds or an ISO 8601 time, got %s",
    type(since) == "string" and ("'" .. since .. "'") or type(since))
end

-- An entry's versions newest first, until the stop digest or a version
-- dated before since_time.
local function recent_versions(store, tenant, head, since_time, stop_digest)
  local chain = {}
  local d = head
  while d and d ~= stop_digest do
    local bytes = store:read(tenant, d)
    local _, meta = core.decode_snapshot(bytes, nil, true)
    local t = changes.date_seconds(meta.date)
    if t and t < since_time then break end
    chain[#chain + 1] = { digest = d, bytes = bytes, meta = meta, time = t }
    d = meta.parent
  end
  return chain
end

-- The events of one version v of entry, appended to out.
local function version_events(db, tenant, entry, v, ctx, out)
  local store = db._store
  local base = { tenant = tenant, entry = entry, digest = v.digest, user_id = v.meta.user_id,
                 date = v.meta.date, time = v.time }
  if write.is_collection(v.bytes) then
    local parent = v.meta.parent
    if parent and not store:exists(tenant, parent) then parent = nil end
    diff_records(db, tenant, entry, parent, v.digest, function(key, old, new)
      local ev = {}
      for k, x in pairs(base) do ev[k] = x end
      ev.action = new and "put" or "delete"
      ev.key = key
      ev.old = old and core.decode(old, ctx)
      ev.new = new and core.decode(new, ctx)
      out[#out + 1] = ev
    end)
    return
  end
  local ev = base
  ev.action = "save"
  ev.new = snapshot_value(v.bytes, ctx)
  local p = v.meta.parent
  if p and store:exists(tenant, p) then
    local pb = store:read(tenant, p)
    if not write.is_collection(pb) then ev.old = snapshot_value(pb, ctx) end
  end
  out[#out + 1] = ev
end

function changes.since(db, tenant, since, ctx)
  local store = db._store
  local since_time, stop_digest = start_of(store, tenant, since)
  local out = {}
  local entries, heads = db:_heads(tenant) -- the handle's branch
  for _, entry in ipairs(entries) do
    local chain = recent_versions(store, tenant, heads[entry], since_time, stop_digest)
    for i = #chain, 1, -1 do version_events(db, tenant, entry, chain[i], ctx, out) end
  end
  -- oldest first; within one second, by entry then key (stable)
  for i, ev in ipairs(out) do ev._n = i end
  table.sort(out, function(a, b)
    if a.time ~= b.time then return (a.time or 0) < (b.time or 0) end
    return a._n < b._n
  end)
  for _, ev in ipairs(out) do ev._n = nil; ev.time = nil end
  return out
end

return changes
