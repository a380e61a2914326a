-- The collection tree's write path in C (src/lua/ltree.c) against the Lua
-- implementation it replaced (collection.oracle): thousands of random puts,
-- replaces and deletes, one at a time and in batches (both the splicing
-- path and the bulk rebuild of update_many), with tiny, 100-byte and 3 KiB
-- values, keys of varied length and bytes (quotes, backslashes, control
-- bytes, NUL, bytes that are not UTF-8), trees growing from nothing and
-- shrinking back, 1 to 100,000 records. After every step both give the
-- same root, count change, pending pieces and the piece each replaces (the
-- pack delta's base), the same flush result, and, at checkpoints, the
-- same objects in their stores; the trees pass H.check_tree.
local H = require "spec.helper"
local core = require "mydb.core"
local collection = require "mydb.collection"

local oracle = collection.oracle

local rng = H.rng

local function sorted_objects(store)
  local list = store:objects("t")
  table.sort(list)
  return table.concat(list, "\n")
end

-- Two stores of the backend in use: one written through C, one through
-- the oracle; the state of the collection both hold.
local function new_pair()
  local dir = H.tmpdir()
  local P = { dir = dir, count = 0, model = {}, nkeys = 0, keys = {} }
  P.c = core.open(dir .. "/c", { backend = H.BACKEND, fsync = false })
  P.o = core.open(dir .. "/o", { backend = H.BACKEND, fsync = false })
  P.c:tenant_init("t")
  P.o:tenant_init("t")
  P.cn, P.on = collection.node_cache(), collection.node_cache()
  return P
end

local function close_pair(P)
  P.c:close()
  P.o:close()
  H.rmrf(P.dir)
end

-- Applies changes ({key = raw | false}) through both, as a write does:
-- new tree handles on the stored state, update (one change) or
-- update_many, then flush. Checks that both agree at every step.
local function apply(P, changes, write_root, many)
  local embed_node = P.embed and collection.parse_piece("root", P.embed)
  local tc = collection.tree(P.c, "t", P.cn, P.root, embed_node, P.embed)
  local to = collection.tree(P.o, "t", P.on, P.root, embed_node, P.embed)
  local n, k1, v1 = 0, nil, nil
  for k, v in pairs(changes) do n, k1, v1 = n + 1, k, v end
  local rc, dc, cc, ro, dro, co
  if n == 1 and not many then
    local was = P.root and oracle.get(to, P.root, k1)
    local old
    -- (every third asks for no old value: a put and a commit's state)
    P.updates = (P.updates or 0) + 1
    local want_old = P.updates % 3 ~= 0
    rc, dc, old = collection.update(tc, P.root, k1, v1 or nil, want_old)
    -- (what plan.lua's events report)
    assert.equal(want_old and was or nil, old, "the value replaced")
    ro, dro = oracle.update(to, P.root, k1, v1 or nil)
    cc, co = dc ~= false, dro ~= false
  else
    rc, dc, cc = collection.update_many(tc, P.root, P.count, changes)
    ro, dro, co = oracle.update_many(to, P.root, P.count, changes)
  end
  assert.equal(ro, rc, "root")
  assert.equal(dro, dc, "count change")
  assert.equal(co, cc, "changed")
  local pending_o = {}
  for d in pairs(to.pending) do pending_o[d] = to.base[d] or false end
  local grouped = (n > 1 or many) and n > 1 and P.root ~= nil and not (n > 64 and n * 8 > P.count)
  if grouped then
    -- update_many grouped by piece (ltree.c update_grouped) cuts each
    -- touched run of pieces once, the oracle one change at a time: the
    -- pending sets differ (the oracle's intermediate pieces; a grouped run
    -- may cut an unchanged piece again); the same root above, the same
    -- flush below and the same stored objects at checkpoints prove the
    -- same tree
    -- (a change to an empty tree builds none)
    assert.equal(cc and rc ~= nil, next(tc.c:pending()) ~= nil, "pieces built exactly when the tree changed")
  else
    assert.same(pending_o, tc.c:pending(), "pending pieces and their bases")
  end
  local ec, _, sc = collection.flush(tc, rc, write_root)
  local eo, _, so = oracle.flush(to, ro, write_root)
  assert.equal(so, sc, "stored root")
  assert.equal(eo, ec, "snapshot root")
  P.root = sc
  if type(dc) == "number" then P.count = P.count + dc end
  P.embed = ec and ec:sub(1, 1) == "{" and ec or nil
  for k, v in pairs(changes) do
    if v and P.model[k] == nil then P.nkeys = P.nkeys + 1; P.keys[#P.keys + 1] = k end
    if not v and P.model[k] ~= nil then P.nkeys = P.nkeys - 1 end
    P.model[k] = v or nil
  end
  assert.equal(P.nkeys, P.count, "count")
end

local function same_stores(P)
  assert.equal(sorted_objects(P.o), sorted_objects(P.c), "objects of the two stores")
end

-- Every record reads back through the C get and the Lua walk.
local function check_reads(P)
  local t = collection.tree(P.c, "t", P.cn, P.root,
    P.embed and collection.parse_piece("root", P.embed), P.embed)
  local n = 0
  for k, v in collection.iter(t, P.root) do
    n = n + 1
    assert.equal(P.model[k], v)
  end
  assert.equal(P.count, n)
  for k, v in pairs(P.model) do assert.equal(v, collection.get(t, P.root, k)) end
end

-- The tree checked against doc/FORMAT.md (a stored root: the last flush
-- wrote it).
local function check_shape(P)
  if P.root then H.check_tree(P.dir .. "/c", "t", P.root, P.count) end
end

-- A key still in the model, picked at random (nil when none).
local function live_key(P, r)
  while #P.keys > 0 do
    local i = r(#P.keys)
    local k = P.keys[i]
    if P.model[k] ~= nil then return k end
    P.keys[i] = P.keys[#P.keys]
    P.keys[#P.keys] = nil
  end
end

-- Runs steps of random changes: grow to `high` records, then shrink to
-- `low`, again until at least `min_steps` steps ran (and one cycle ended).
-- key(r) and value(r, i) make keys and raw values. (pairs order differs
-- between processes - string hashes are seeded - so the run does too; the
-- step count is bounded either way.)
local function drive(P, r, o)
  local step, phase, cycles = 0, "grow", 0
  while step < o.max_steps do
    step = step + 1
    if phase == "grow" and P.count >= o.high then phase = "shrink" end
    if phase == "shrink" and P.count <= o.low then
      cycles = cycles + 1
      if step >= (o.min_steps or 0) then break end
      phase = "grow"
    end
    local size = r(100)
    size = size <= 70 and 1 or size <= 90 and r(9) + 1 or r(200) + 64
    local changes = {}
    for _ = 1, size do
      local c = r(10)
      local k = live_key(P, r)
      if k and c <= (phase == "grow" and 2 or 8) then
        changes[k] = false -- delete
      elseif k and c <= (phase == "grow" and 5 or 9) then
        local old = changes[k] or P.model[k]
        -- a replace: half of them keep the size (the splice's fast path)
        changes[k] = r(2) == 1 and o.same_size(old, r) or o.value(r, step)
      else
        changes[o.key(r)] = o.value(r, step)
      end
    end
    apply(P, changes, r(4) == 1, r(3) == 1)
    if step % o.check_every == 0 then same_stores(P) end
  end
  return step, cycles
end

-- Keys: printable, of 0 to 40 bytes.
local ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:"
local function printable_key(r)
  local n = r(41) - 1
  local b = {}
  for i = 1, n do local j = r(#ALNUM); b[i] = ALNUM:sub(j, j) end
  return table.concat(b)
end

-- Keys with every kind of byte: quotes, backslashes, control bytes, NUL
-- (index keys hold one), bytes that are not UTF-8 (stored as __bytes__).
local function any_key(r)
  local n = r(24) - 1
  local b = {}
  for i = 1, n do
    local c = r(6)
    if c == 1 then b[i] = string.char(r(256) - 1)
    elseif c == 2 then b[i] = ({ '"', "\\", "\n", "\0", "\127", "é" })[r(6)]
    else local j = r(#ALNUM); b[i] = ALNUM:sub(j, j) end
  end
  return table.concat(b)
end

-- A raw value of the same length as old (another one where the length
-- cannot be kept).
local function same_size_string(old, r)
  if old and old:sub(1, 1) == '"' and #old >= 3 and not old:find("\\", 1, true) then
    local c = string.char(96 + r(26))
    return '"' .. c .. old:sub(3)
  end
  return core.encode(r(9))
end

describe("the collection tree in C", function()
  it("matches the Lua oracle with tiny values and keys of every kind of byte", function()
    local P = new_pair()
    local r = rng(11)
    local steps, cycles = drive(P, r, {
      high = 2500, low = 0, min_steps = 300, max_steps = 3000, check_every = 25,
      key = any_key,
      value = function(rr, i)
        local c = rr(4)
        if c == 1 then return core.encode(i) elseif c == 2 then return "true" end
        if c == 3 then return core.encode("a\"b\\c\n" .. i) end
        return core.encode({ n = rr(1000) })
      end,
      same_size = function(old, rr) return old == "true" and "null" or same_size_string(old, rr) end,
    })
    assert.is_true(steps >= 300 and cycles >= 1, ("%d steps, %d cycles"):format(steps, cycles))
    assert.equal(0, P.count) -- grew, then shrank back to nothing
    assert.is_nil(P.root)
    same_stores(P)
    close_pair(P)
  end)

  it("matches the Lua oracle with 100-byte values up to 20,000 records", function()
    local P = new_pair()
    local r = rng(23)
    drive(P, r, {
      high = 20000, low = 15000, max_steps = 700, check_every = 50,
      key = printable_key,
      value = function(rr, i) return core.encode({ i = i, pad = ("v"):rep(80 + rr(10)) }) end,
      same_size = function(old, rr)
        local c = string.char(96 + rr(26))
        return (old:gsub('"pad":"(.)', '"pad":"' .. c, 1))
      end,
    })
    apply(P, { [printable_key(r)] = core.encode("last") }, true)
    same_stores(P)
    check_shape(P)
    check_reads(P)
    close_pair(P)
  end)

  it("matches the Lua oracle with a node cache of 32 KiB (evicting all the time)", function()
    local P = new_pair()
    local s = core.tree(P.c, "t")
    local default = s:cache_limit()
    assert.equal(32768, s:cache_limit(32768))
    local r = rng(41)
    drive(P, r, {
      high = 3000, low = 2000, min_steps = 300, max_steps = 1500, check_every = 50,
      key = printable_key,
      value = function(rr, i) return core.encode({ i = i, pad = ("v"):rep(80 + rr(10)) }) end,
      same_size = function(old, rr)
        local c = string.char(96 + rr(26))
        return (old:gsub('"pad":"(.)', '"pad":"' .. c, 1))
      end,
    })
    apply(P, { [printable_key(r)] = core.encode("last") }, true)
    same_stores(P)
    check_shape(P)
    check_reads(P)
    s:cache_limit(default)
    close_pair(P)
  end)

  it("matches the Lua oracle with 3 KiB values, growing and shrinking to nothing", function()
    local P = new_pair()
    local r = rng(37)
    local steps, cycles = drive(P, r, {
      high = 250, low = 0, min_steps = 200, max_steps = 3000, check_every = 20,
      key = printable_key,
      value = function(rr) return core.encode(("w"):rep(2900 + rr(300))) end,
      same_size = same_size_string,
    })
    assert.is_true(steps >= 200 and cycles >= 1, ("%d steps, %d cycles"):format(steps, cycles))
    assert.is_nil(P.root)
    same_stores(P)
    close_pair(P)
  end)

  it("matches the Lua oracle on 100,000 records: a bulk load, then puts and deletes", function()
    local P = new_pair()
    local r = rng(5)
    local items = {}
    for i = 1, 100000 do items[("key%07d"):format(i * 7)] = core.encode({ i = i }) end
    apply(P, items, true)
    assert.equal(100000, P.count)
    check_shape(P)
    same_stores(P)
    for step = 1, 400 do
      local changes = {}
      for _ = 1, (step % 40 == 0) and 100 or 1 do
        local c, k = r(10), ("key%07d"):format(r(700000))
        if c <= 3 then changes[k] = false
        elseif c <= 6 and P.model[k] then changes[k] = P.model[k]:gsub("%d", tostring(r(9)), 1)
        else changes[k] = core.encode({ i = -step, pad = ("p"):rep(r(120)) }) end
      end
      apply(P, changes, step % 2 == 0, step % 7 == 0)
      if step % 100 == 0 then same_stores(P) end
    end
    apply(P, { key0000007 = core.encode("end") }, true)
    same_stores(P)
    check_shape(P)
    close_pair(P)
  end)

  it("grows from one record to a tree and back, one put and one delete at a time", function()
    local P = new_pair()
    for i = 1, 600 do
      apply(P, { [("k%04d"):format(i)] = core.encode(("x"):rep(i % 50)) }, i % 3 == 0)
    end
    same_stores(P)
    check_shape(P)
    for i = 600, 1, -1 do apply(P, { [("k%04d"):format(i)] = false }, i % 3 == 0) end
    assert.is_nil(P.root)
    same_stores(P)
    close_pair(P)
  end)

  it("stores the root of one change in one call (update_stored), as update then flush_stored", function()
    -- (a commit's state tree: one handle kept across commits, as commits.make)
    local P = new_pair()
    local r = rng(77)
    local tc = collection.tree(P.c, "t", P.cn)
    local to = collection.tree(P.o, "t", P.on)
    local rc, ro, n = nil, nil, 0
    for i = 1, 3000 do
      local k = ("k%05d"):format(r(i < 1500 and 4000 or 300))
      local v = r(4) ~= 1 and core.encode({ i = i, pad = ("p"):rep(r(120)) }) or nil
      local sc, dc = collection.update_stored(tc, rc, k, v)
      local r1, d1 = oracle.update(to, ro, k, v)
      local so = r1 and select(3, oracle.flush(to, r1, true))
      assert.equal(so, sc, "stored root")
      assert.equal(d1 or 0, dc, "count change")
      rc, ro, n = sc, so, n + dc
      if i % 500 == 0 then same_stores(P) end
    end
    assert.is_true(n > 100, "a tree of more than one piece")
    H.check_tree(P.dir .. "/c", "t", rc, n)
    same_stores(P)
    close_pair(P)
  end)

  it("updates and flushes one put in one call (update_flush), as update then flush", function()
    -- (a put: new handles on the stored state each time, as mydb.write does)
    local P = new_pair()
    local r = rng(78)
    local root, embed, count = nil, nil, 0
    for i = 1, 2500 do
      local k = ("k%05d"):format(r(i < 1200 and 3000 or 200))
      local v = core.encode({ i = r(3) == 1 and 0 or i, pad = ("p"):rep(r(120)) })
      local node = embed and collection.parse_piece("root", embed)
      local tc = collection.tree(P.c, "t", P.cn, root, node, embed)
      local to = collection.tree(P.o, "t", P.on, root, node, embed)
      local dc, bc, _, sc = collection.update_flush(tc, root, k, v)
      local r1, d1 = oracle.update(to, root, k, v)
      assert.equal(d1, dc, "count change")
      if d1 then
        local bo, _, so = oracle.flush(to, r1)
        assert.equal(bo, bc, "snapshot root")
        assert.equal(so, sc, "stored root")
        root, count = sc, count + d1
        embed = bc:sub(1, 1) == "{" and bc or nil
      end
      if i % 500 == 0 then same_stores(P) end
    end
    assert.is_true(count > 100 and embed == nil, "a tree of more than one piece")
    H.check_tree(P.dir .. "/c", "t", root, count)
    same_stores(P)
    close_pair(P)
  end)

  it("keeps a piece equal to the embedded root when it stops being the root", function()
    -- a root leaf whose last record closes it by the boundary rule: a record
    -- after it starts a second leaf, and the old root becomes a stored piece
    local P = new_pair()
    local value = core.encode(("v"):rep(18))
    local keys, found, size = {}, nil, 0
    for i = 1, 400 do
      keys[i] = ("r%03d"):format(i)
      local item = #keys[i] + #value
      if collection.closes(keys[i], 0, size, item) then found = i break end
      size = size + item
    end
    assert.is_not_nil(found, "no boundary among the keys")
    local items = {}
    for i = 1, found do items[keys[i]] = value end
    apply(P, items, false)
    assert.is_string(P.embed)
    apply(P, { zzz = core.encode(1) }, false) -- the old root is now a child
    same_stores(P)
    check_shape(P)
    check_reads(P)
    close_pair(P)
  end)

  it("keeps a leaf as it is when a record lands after its last one", function()
    -- every leaf but a level's last ends at a boundary: a record between
    -- leaf L's last key and the next leaf M's first starts a new piece that
    -- replaces M (its pack delta base); L is not built or hashed again
    local P = new_pair()
    local items = {}
    for i = 1, 3000 do items[("k%05d"):format(i * 3)] = core.encode({ i = i, pad = ("p"):rep(90) }) end
    apply(P, items, true)
    local function node(d) return collection.parse_piece(d, P.c:read("t", d)) end
    local parent = node(P.root)
    while not node(parent.digests[1]).leaf do parent = node(parent.digests[1]) end
    assert.is_true(#parent.digests >= 3, "a level-1 piece with at least three leaves")
    for i = 1, 3 do
      local L, M = parent.digests[i], parent.digests[i + 1]
      local lkeys, mkeys = node(L).keys, node(M).keys
      local key = lkeys[#lkeys] .. "x"
      assert.is_true(key < mkeys[1])
      local tc = collection.tree(P.c, "t", P.cn, P.root)
      collection.update(tc, P.root, key, core.encode("new"))
      local pending, replaces_m = tc.c:pending(), 0
      assert.is_nil(pending[L], "the leaf before the new record is not built again")
      for _, base in pairs(pending) do
        if base == M then replaces_m = replaces_m + 1 end
      end
      assert.equal(1, replaces_m, "the piece starting with the new record has the next leaf as its base")
      -- (that session is dropped unflushed; the same put through both
      -- writers: the same pending pieces and bases, root, flush, objects)
      apply(P, { [key] = core.encode("new") }, true)
    end
    same_stores(P)
    check_shape(P)
    check_reads(P)
    close_pair(P)
  end)
end)

describe("hashing the pieces a put builds", function()
  it("hashes a rebuilt piece from its first changed 256-byte stride on", function()
    -- a piece built here keeps SHA-256's state after every 256 bytes
    -- (ltree.c hash_piece): the piece that replaces it, its first bytes
    -- unchanged, is hashed from the stride of the first change on
    local P = new_pair()
    local items = {}
    local function value(i, c) return core.encode({ i = i, pad = (c or "p"):rep(90) }) end
    for i = 1, 3000 do items[("k%05d"):format(i * 3)] = value(i) end
    apply(P, items, true)
    local function node(d) return collection.parse_piece(d, P.c:read("t", d)) end
    -- the last record of the first level-1 piece: its last leaf's last
    local parent = node(P.root)
    while not node(parent.digests[1]).leaf do parent = node(parent.digests[1]) end
    local leaf = node(parent.digests[#parent.digests])
    local key = leaf.keys[#leaf.keys]
    local i = tonumber(key:sub(2)) // 3
    for round = 1, 3 do
      -- (a record of the same size: every boundary stays)
      local v = value(i, round % 2 == 1 and "q" or "p")
      local tc = collection.tree(P.c, "t", P.cn, P.root)
      local h0 = core.hashed_bytes()
      collection.update(tc, P.root, key, v)
      local hashed = core.hashed_bytes() - h0
      local built = {}
      for d in pairs(tc.c:pending()) do built[#built + 1] = d end
      -- (dropped unflushed; the same put through both writers: the same
      -- root and objects as the oracle's, which hashes every byte)
      apply(P, { [key] = v }, true)
      local whole = 0
      for _, d in ipairs(built) do whole = whole + #P.c:read("t", d) end
      assert.is_true(#built >= 3, "a leaf and two inner pieces")
      assert.is_true(hashed < whole * 0.6,
        ("hashed %d of the %d bytes of the pieces built"):format(hashed, whole))
    end
    same_stores(P)
    check_reads(P)
    close_pair(P)
  end)
end)

describe("the bases of a put's pieces", function()
  it("gives every old piece a put replaced to a new piece as its base, but for merges", function()
    -- A put that moves a boundary cuts on into the next old pieces: each
    -- is the pack delta base of a new piece (and leaves the node cache at
    -- the flush), unless the put merged more old pieces than it cut new ones.
    local P = new_pair()
    local items = {}
    for i = 1, 3000 do items[("k%05d"):format(i * 7)] = core.encode({ i = i, pad = ("p"):rep(90) }) end
    apply(P, items, true)
    local function pieces(root)
      local all, stack = {}, { root }
      while #stack > 0 do
        local d = table.remove(stack)
        all[d] = true
        local node = collection.parse_piece(d, P.c:read("t", d))
        if not node.leaf then
          for _, c in ipairs(node.digests) do stack[#stack + 1] = c end
        end
      end
      return all
    end
    local r = rng(77)
    local unbased, merged, moved = 0, 0, 0
    for _ = 1, 200 do
      local before = pieces(P.root)
      local key = ("k%05d"):format(r(21000)) .. "x"
      local value = core.encode({ pad = ("q"):rep(r(400)) })
      local tc = collection.tree(P.c, "t", P.cn, P.root)
      collection.update(tc, P.root, key, value)
      local bases = {}
      for _, base in pairs(tc.c:pending()) do if base then bases[base] = true end end
      apply(P, { [key] = value }, true) -- (the same put through both writers)
      local after = pieces(P.root)
      local replaced, new = 0, 0
      for d in pairs(before) do
        if not after[d] then
          replaced = replaced + 1
          if not bases[d] then unbased = unbased + 1 end
        end
      end
      for d in pairs(after) do if not before[d] then new = new + 1 end end
      if replaced > new then merged = merged + replaced - new end
      if replaced > 3 then moved = moved + 1 end
    end
    assert.is_true(moved >= 10, ("%d puts replaced more than a path's pieces"):format(moved))
    assert.is_true(unbased <= merged, ("%d replaced pieces with no new piece based on them, %d merged away")
      :format(unbased, merged))
    same_stores(P)
    check_shape(P)
    close_pair(P)
  end)
end)

describe("the pieces a grouped batch cuts", function()
  it("each old piece a batch's re-cut runs into is a new piece's base, but for merges", function()
    local P = new_pair()
    local items = {}
    for i = 1, 20000 do items[("k%06d"):format(i * 5)] = core.encode({ i = i, pad = ("p"):rep(90) }) end
    apply(P, items, true)
    local r = rng(9)
    for _ = 1, 5 do
      -- (records of 20 to 220 bytes: boundaries move, a run re-cuts on
      -- into the old pieces after its first)
      local changes = {}
      for _ = 1, 100 do changes[("k%06d"):format(r(100000))] = core.encode({ r = r(1000), pad = ("x"):rep(r(200)) }) end
      local tc = collection.tree(P.c, "t", P.cn, P.root)
      collection.update_many(tc, P.root, P.count, changes)
      local with_base, built = 0, 0
      for d, base in pairs(tc.c:pending()) do
        built = built + 1
        if base then
          with_base = with_base + 1
          assert.is_true(P.c:exists("t", base), "a base is a stored piece")
          assert.are_not.equal(d, base)
        end
      end
      -- ~100 touched leaves in ~100 runs (a run per leaf at this density);
      -- only a piece cut beyond the old pieces of its run has none (94% had
      -- one; 67% when only a run's first piece got one)
      assert.is_true(with_base >= 50, ("%d pieces with a base"):format(with_base))
      assert.is_true(with_base >= built * 0.85, ("%d of %d pieces with a base"):format(with_base, built))
      apply(P, changes, true, true)
    end
    same_stores(P)
    close_pair(P)
  end)
end)

describe("the tree session", function()
  it("raises corrupt for a piece that is not one, and closed after the store closes", function()
    local P = new_pair()
    local bad = P.c:write("t", "garbage")
    local s = core.tree(P.c, "t")
    H.assert_error_code(function() s:get(bad, "k") end, "corrupt")
    H.assert_error_code(function() s:update(bad, "k", "1") end, "corrupt")
    local missing = core.sha256("absent")
    H.assert_error_code(function() s:get(missing, "k") end, "not_found")
    H.assert_error_code(function() s:seed(bad, '{"leaf":[]}') end, "corrupt")
    P.c:close()
    H.assert_error_code(function() s:get(bad, "k") end, "closed")
    P.o:close()
    H.rmrf(P.dir)
  end)
end)
