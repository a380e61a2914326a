--- mydb.copy: copies a store into another, of any backend (migration).
--
--   mydb.copy(src_root, dst_root, { backend = "pack" })
--
-- Every tenant, every object (snapshots and pieces: all of the history)
-- and every ref is read from the source (verified by its digest), written
-- to the destination, and read back from there and hashed again; then each
-- tenant's heads (entries, branches, tags) are set in one commit. The
-- destination must not hold any tenant or ref yet. Afterwards the heads
-- are compared, and db:verify() of both stores must agree (the copy adds
-- no problem).
--
-- opts: backend (the destination's; default: a new store's, pack),
-- segment_bytes, fsync (destination, default true), src_backend (to open
-- the source with, e.g. "memory" for a store of this process), progress
-- (false: no progress line even on a terminal).
local core = require "mydb.core"
local errors = require "mydb.errors"
local verify = require "mydb.verify"

local copy = {}
local now = core.monotonic

-- The progress line (mydb.progress): "copy LABEL: N" objects.
local function progress(enabled) return require("mydb.progress").bar("copy", enabled) end

local function problems_key(list)
  local keys = {}
  for _, p in ipairs(list) do
    keys[#keys + 1] = table.concat({ p.kind, p.tenant or "", p.entry or "", p.digest or "" }, "\0")
  end
  table.sort(keys)
  return keys
end

-- One object: read (verified), write, read back and hash again.
local function move(src, dst, report, t, name)
  if not core.digest_valid(name) then
    report.skipped = report.skipped + 1 -- a stray file, not an object
    return
  end
  local bytes = src:read(t, name)
  local d = dst:write(t, bytes)
  if d ~= name or core.sha256(dst:read(t, d)) ~= name then
    errors.raise("corrupt", "copy: object %s of %s did not arrive intact", name, t or "refs")
  end
  report.bytes = report.bytes + #bytes
end

-- The heads of tenant t - entries, then branches and tags (their
-- NUL-prefixed keys) - committed in the destination (100,000 a commit)
-- and compared after.
local function copy_heads(src, dst, t)
  local entries, heads = src:heads(t)
  local refs = src:refs(t)
  local names = {}
  for name in pairs(refs) do names[#names + 1] = name end
  table.sort(names)
  if #entries + #names > 0 then
    local lock <close> = dst:lock(t)
    local changes = {}
    local function add(k, d)
      changes[#changes + 1] = { k, d }
      if #changes == 100000 then lock:commit(changes); changes = {} end
    end
    for _, e in ipairs(entries) do add(e, heads[e]) end
    for _, name in ipairs(names) do add("\0" .. name, refs[name]) end
    if #changes > 0 then lock:commit(changes) end
  end
  local dentries, dheads = dst:heads(t)
  if #dentries ~= #entries then errors.raise("corrupt", "copy: the heads of %s differ", t) end
  for _, e in ipairs(entries) do
    if dheads[e] ~= heads[e] then errors.raise("corrupt", "copy: head %s of %s differs", e, t) end
  end
  local drefs = dst:refs(t)
  for _, name in ipairs(names) do
    if drefs[name] ~= refs[name] then errors.raise("corrupt", "copy: ref %s of %s differs", name, t) end
  end
  for name in pairs(drefs) do
    if not refs[name] then errors.raise("corrupt", "copy: ref %s of %s differs", name, t) end
  end
  return #entries
end

-- Both stores, checked the same way: the copy must add no problem.
local function compare_verify(src_root, dst_root, src_backend, dst_backend, show)
  local sp = verify.run(src_root, nil, { backend = src_backend, progress = show })
  local dp = verify.run(dst_root, nil, { backend = dst_backend, progress = show })
  local had = {}
  for _, k in ipairs(problems_key(sp)) do had[k] = true end
  for _, k in ipairs(problems_key(dp)) do
    if not had[k] then
      errors.raise("corrupt", "copy: db:verify() of the destination finds a problem the source "
        .. "has not: %s", (k:gsub("%z", " ")))
    end
  end
  return #dp
end

function copy.run(src_root, dst_root, opts)
  opts = opts or {}
  local t0 = now()
  local src <close> = core.open(src_root, { fsync = false, cache_bytes = 0, backend = opts.src_backend })
  local dst <close> = core.open(dst_root, { fsync = opts.fsync ~= false, cache_bytes = 0,
                                            backend = opts.backend, segment_bytes = opts.segment_bytes })
  if #dst:tenants() > 0 or #dst:objects(nil) > 0 then
    errors.raise("invalid_argument", "copy: the destination %s is not empty", dst_root)
  end
  local bar = progress(opts.progress ~= false)
  local report = { tenants = 0, objects = 0, refs = 0, entries = 0, bytes = 0, skipped = 0,
                   src_backend = src:backend(), dst_backend = dst:backend() }
  -- refs first: the objects name them
  for _, name in ipairs(src:objects(nil)) do
    move(src, dst, report, nil, name)
    report.refs = report.refs + 1
    bar.update("refs", report.refs)
  end
  for _, t in ipairs(src:tenants()) do
    dst:tenant_init(t)
    for _, name in ipairs(src:objects(t)) do
      move(src, dst, report, t, name)
      report.objects = report.objects + 1
      bar.update(t, report.objects)
    end
    report.entries = report.entries + copy_heads(src, dst, t)
    report.tenants = report.tenants + 1
  end
  bar.done()
  report.problems = compare_verify(src_root, dst_root, opts.src_backend, dst:backend(), opts.progress ~= false)
  report.seconds = now() - t0
  return report
end

return copy
