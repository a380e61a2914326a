--- mydb.verify: checks a store against its own digests and links.
--
-- Opens its own handle with the object cache off, so every object, ref and
-- head journal is read and hashed from disk again. Finds: objects and refs
-- whose bytes do not match their name (flipped byte, truncated file),
-- files that do not parse, malformed head journals, heads pointing to a
-- missing or damaged object, history chains with a missing or damaged
-- parent, collection pieces and refs that are referenced but missing;
-- with the pack backend, damaged log records and segments
-- ("corrupt_segment", found by the core's record checksums).
local core = require "mydb.core"
local errors = require "mydb.errors"
local collection = require "mydb.collection"
local commits = require "mydb.commits"
local refnames = require "mydb.refs"
local progress = require "mydb.progress"

local verify = {}

local DIGEST = ("%x"):rep(64)

-- The message of a failure verify reports as a problem. Running out of
-- memory says nothing about the store: it is raised, not reported.
local function message_of(e)
  if errors.is(e, "out_of_memory") or e == "not enough memory" then error(e, 0) end
  if errors.is(e) then return e.message end
  return tostring(e)
end

-- Digests an object's text links to: refs (use_refs and ref handlers).
local function scan_refs(bytes, needed, from)
  for d in bytes:gmatch('"__ref__":"(' .. DIGEST .. ')"') do needed[d] = needed[d] or from end
  for d in bytes:gmatch('"__digest__":"(' .. DIGEST .. ')"') do needed[d] = needed[d] or from end
end

-- What one object says of its links: a piece's children, a snapshot's
-- parent (false: a first version) and, for a collection, its root's
-- children and index roots. Raises on bytes that do not parse.
local function links_of(name, bytes, where, parent_of, children_of)
  if commits.is_commit(bytes) or refnames.is_tag(bytes) then
    local ok, t = pcall(core.decode, bytes)
    if not ok or type(t) ~= "table" then error("does not parse", 0) end
    return
  end
  if collection.is_piece(bytes) then
    local node = collection.parse_piece(where, bytes)
    if not node.leaf then children_of[name] = node.digests end
    return
  end
  local _, meta = core.decode_snapshot(bytes, nil, true)
  parent_of[name] = meta.parent or false
  if not meta.collection then return end
  local _, root_digest, root, extra = collection.parse_root(bytes, "root of " .. where)
  local kids = {}
  if root and not root.leaf then
    for _, c in ipairs(root.digests) do kids[#kids + 1] = c end
  elseif root_digest and not root then -- a stored root
    kids[#kids + 1] = root_digest
  end
  for _, ix in pairs(type(extra.indexes) == "table" and extra.indexes or {}) do
    if type(ix) == "table" and core.digest_valid(ix.root) then kids[#kids + 1] = ix.root end
  end
  children_of[name] = kids
end

-- 0-1. The backend's framing, then every object: its bytes hash to its
-- name and parse. Returns valid {digest = true}, parent_of, children_of,
-- or nil when the tenant's objects cannot be listed.
local function check_objects(store, tenant, report, refs_needed, stats, bar)
  -- pack: every record's checksum, the segment chain; an unreadable log
  -- is reported, not raised
  for _, msg in ipairs(store:check(tenant)) do
    report("corrupt_segment", tenant, nil, nil, msg)
  end
  local okl, names = pcall(store.objects, store, tenant)
  if not okl then
    report("corrupt_segment", tenant, nil, nil, message_of(names))
    return nil
  end
  local valid, parent_of, children_of = {}, {}, {}
  for i, name in ipairs(names) do
    bar.update(tenant, i, #names)
    stats.objects = stats.objects + 1
    if not core.digest_valid(name) then
      report("stray_file", tenant, nil, name, "a file in objects/ whose name is not a digest")
    else
      local ok, bytes = pcall(store.read, store, tenant, name)
      local err = not ok and bytes
      if ok then
        local where = name .. " of tenant '" .. tenant .. "'"
        ok, err = pcall(links_of, name, bytes, where, parent_of, children_of)
      end
      if ok then
        valid[name] = true
        scan_refs(bytes, refs_needed, tenant .. "/" .. name)
      else
        report("corrupt_object", tenant, nil, name, message_of(err))
      end
    end
  end
  return valid, parent_of, children_of
end

-- 3a. Every piece reachable from version `from` is there and sound.
local function walk_pieces(g, from, entry)
  local stack = { from }
  while #stack > 0 do
    local d = table.remove(stack)
    for _, c in ipairs(g.children_of[d] or {}) do
      if not g.seen_piece[c] then
        g.seen_piece[c] = true
        if not g.valid[c] then
          g.report("missing_piece", g.tenant, entry, c, "collection piece referenced by " .. d
            .. " is " .. (g.store:exists(g.tenant, c) and "damaged" or "missing"))
        else
          stack[#stack + 1] = c
        end
      end
    end
  end
end

-- 3b. The chain of versions from entry's head d, with their pieces;
-- returns how many versions it walked.
local function walk_chain(g, entry, d)
  local steps = 0
  while d and not g.seen_version[d] do
    g.seen_version[d] = true
    steps = steps + 1
    walk_pieces(g, d, entry)
    local p = g.parent_of[d]
    if p and not g.valid[p] then
      g.report("broken_chain", g.tenant, entry, p, ("version %s names a parent that is %s"):format(d,
        g.store:exists(g.tenant, p) and "damaged" or "missing"))
      break
    end
    d = p or nil
  end
  return steps
end

-- 4. The commit graph: every ref names a sound commit (a tag, a tag
-- object naming one); every commit reachable from them has sound parents
-- one height below, its state's pieces and the versions it set; main's
-- state is the tenant's entry heads.
local function check_commits(store, tenant, g, heads, stats)
  local db = { _store = store, _commits = commits.memo(), _nodes = collection.node_cache() }
  local report = g.report
  local okr, names = pcall(store.refs, store, tenant)
  if not okr then
    report("corrupt_head", tenant, nil, nil, message_of(names))
    return
  end
  local stack, seen = {}, {}
  local function read(id, from)
    local ok, c = pcall(commits.read, db, tenant, id)
    if ok then return c end
    report("broken_commit", tenant, nil, id, from .. ": " .. message_of(c))
  end
  for name, d in pairs(names) do
    local id = d
    if name:match("^tags/") then
      local ok, t = pcall(refnames.read_tag, db, tenant, d)
      if ok then id = t.target else report("dangling_ref", tenant, nil, d, name .. ": " .. message_of(t)); id = nil end
    end
    if id and read(id, "ref " .. name) then stack[#stack + 1] = id end
  end
  while #stack > 0 do
    local id = table.remove(stack)
    if not seen[id] then
      seen[id] = true
      stats.commits = stats.commits + 1
      local c = commits.read(db, tenant, id)
      for i, p in ipairs(c.parents) do
        local pc = read(p, "parent of commit " .. id)
        if pc then
          if i == 1 and pc.height ~= c.height - 1 then
            report("broken_commit", tenant, nil, id, "height " .. c.height .. " is not its first parent's + 1")
          end
          stack[#stack + 1] = p
        end
      end
      if c.jump then read(c.jump, "jump of commit " .. id) end
      if c.state then
        if not g.valid[c.state] then
          report("missing_piece", tenant, nil, c.state, "state of commit " .. id .. " is "
            .. (store:exists(tenant, c.state) and "damaged" or "missing"))
        else
          walk_pieces(g, c.state, nil)
        end
      end
      for entry, v in pairs(c.entries) do
        if v and not g.valid[v] then
          report("broken_commit", tenant, entry, v, "version set by commit " .. id .. " is "
            .. (store:exists(tenant, v) and "damaged" or "missing"))
        elseif v then
          stats.versions = stats.versions + walk_chain(g, entry, v)
        end
      end
    end
  end
  local main = names["heads/" .. refnames.DEFAULT]
  if main and seen[main] then
    local ok, list, map = pcall(commits.entries, db, tenant, commits.read(db, tenant, main))
    if not ok then
      report("broken_commit", tenant, nil, main, "state of branch main: " .. message_of(list))
      return
    end
    local n = 0
    for e, d in pairs(heads) do
      n = n + 1
      if map[e] ~= d then
        report("state_mismatch", tenant, e, d, "branch main's state names " .. tostring(map[e])
          .. ", the entry head " .. d)
      end
    end
    if n ~= #list then
      report("state_mismatch", tenant, nil, main, ("branch main's state has %d entries, the heads %d"):format(#list, n))
    end
  end
end

local function check_tenant(store, tenant, report, refs_needed, stats, bar)
  local valid, parent_of, children_of = check_objects(store, tenant, report, refs_needed, stats, bar)
  if not valid then return end
  -- 2. the head journal, and what each head points to
  local ok, entries, heads = pcall(store.heads, store, tenant)
  if not ok then
    report("corrupt_head", tenant, nil, nil, message_of(entries))
    entries, heads = {}, {}
  end
  stats.entries = stats.entries + #entries
  -- 3. every chain from a head, and every piece from every version
  local g = { store = store, tenant = tenant, report = report, valid = valid, parent_of = parent_of,
              children_of = children_of, seen_version = {}, seen_piece = {} }
  for _, entry in ipairs(entries) do
    local d = heads[entry]
    if not valid[d] then
      report("dangling_head", tenant, entry, d, "the head points to an object that is "
        .. (store:exists(tenant, d) and "damaged" or "missing"))
    else
      stats.versions = stats.versions + walk_chain(g, entry, d)
    end
  end
  check_commits(store, tenant, g, heads, stats)
end

function verify.run(root, tenant, opts)
  local store <close> = core.open(root, { fsync = false, cache_bytes = 0,
                                          backend = opts and opts.backend })
  local problems = {}
  local function report(kind, t, entry, digest, message)
    problems[#problems + 1] = { kind = kind, tenant = t, entry = entry, digest = digest, message = message }
  end
  local stats = { tenants = 0, objects = 0, entries = 0, versions = 0, refs = 0, commits = 0 }
  local refs_needed = {}
  local bar = progress.bar("verify", not (opts and opts.progress == false))
  local tenants = { tenant }
  if not tenant then
    local ok, list = pcall(store.tenants, store)
    if ok then tenants = list
    else -- a tenant directory that cannot be read: a problem, not an absence
      report("unreadable", nil, nil, nil, message_of(list))
      tenants = {}
    end
  end
  for _, t in ipairs(tenants) do
    stats.tenants = stats.tenants + 1
    check_tenant(store, t, report, refs_needed, stats, bar)
  end
  local valid_refs = {}
  for _, msg in ipairs(store:check(nil)) do report("corrupt_segment", nil, nil, nil, msg) end
  local okr, ref_names = pcall(store.objects, store, nil)
  if not okr then
    report("corrupt_segment", nil, nil, nil, message_of(ref_names))
    ref_names = {}
  end
  for i, name in ipairs(ref_names) do
    bar.update("refs", i, #ref_names)
    stats.refs = stats.refs + 1
    if not core.digest_valid(name) then
      report("stray_file", nil, nil, name, "a file in refs/ whose name is not a digest")
    else
      local ok, err = pcall(store.read, store, nil, name)
      if ok then valid_refs[name] = true
      else report("corrupt_ref", nil, nil, name, message_of(err)) end
    end
  end
  for d, from in pairs(refs_needed) do
    if not valid_refs[d] and store:exists(nil, d) == false then
      report("missing_ref", from:match("^[^/]+"), nil, d, "ref referenced by " .. from .. " is missing")
    end
  end
  bar.done()
  table.sort(problems, function(a, b)
    return (a.tenant or "") .. (a.digest or "") < (b.tenant or "") .. (b.digest or "")
  end)
  return problems, stats
end

return verify
