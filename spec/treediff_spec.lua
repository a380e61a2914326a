-- mydb.treediff: the O(changes) diff of two prolly trees, checked against a
-- plain-Lua model, and shown to read only the pieces a change touched.
local H = require "spec.helper"
local core = require "mydb.core"
local collection = require "mydb.collection"
local colinfo = require "mydb.colinfo"
local treediff = require "mydb.treediff"

local T, U, C = "t", "u", "c"

local function key(i) return ("k%06d"):format(i) end

-- A deterministic generator: rng(n) -> 1 .. n.
local function rng(seed)
  local x = seed
  return function(n)
    x = (x * 6364136223846793005 + 1442695040888963407) & 0x7fffffffffffffff
    return (x >> 16) % n + 1
  end
end

-- Applies changes (key -> value, or false to delete) in one version;
-- returns the new head digest.
local function apply(db, changes)
  db:batch(T, U, function(b)
    local puts = {}
    for k, v in pairs(changes) do
      if v == false then b:delete(C, k) else puts[k] = v end
    end
    if next(puts) then b:put_many(C, puts) end
  end)
  return db:get_digest(T, C)
end

-- What treediff.collections reports, as a list {key, old, new} (decoded).
local function diff_list(db, da, db_, stop_after)
  local out = {}
  treediff.collections(db, T, da, db_, function(k, old, new)
    out[#out + 1] = { k, old and core.decode(old), new and core.decode(new) }
    if stop_after and #out >= stop_after then return false end
  end)
  return out
end

-- The same from two models (key -> value).
local function model_diff(ma, mb)
  local keys, seen = {}, {}
  for k in pairs(ma) do keys[#keys + 1] = k; seen[k] = true end
  for k in pairs(mb) do if not seen[k] then keys[#keys + 1] = k end end
  table.sort(keys)
  local out = {}
  for _, k in ipairs(keys) do
    local a, b = ma[k], mb[k]
    if not H.deep_equal(a, b) then out[#out + 1] = { k, a, b } end
  end
  return out
end

local function copy(m)
  local c = {}
  for k, v in pairs(m) do c[k] = v end
  return c
end

-- Random edits of a model: modifications, deletions, additions, a run of
-- neighbours, and now and then the first or the last key.
local function random_edits(r, m, n, size)
  local ch = {}
  for _ = 1, n do
    local what = r(5)
    local k = key(r(size * 2))
    if what == 1 then ch[k] = false
    elseif what == 2 then
      local s = r(size * 2)
      for i = s, s + r(20) do ch[key(i)] = { v = i, run = r(1000) } end
    elseif what == 3 then
      local ks = {}
      for kk in pairs(m) do ks[#ks + 1] = kk end
      table.sort(ks)
      if #ks > 0 then ch[ks[r(2) == 1 and 1 or #ks]] = r(2) == 1 and false or "edge" .. r(100) end
    else
      ch[k] = { v = r(1000000), s = ("x"):rep(r(80)) }
    end
  end
  local m2 = copy(m)
  for k, v in pairs(ch) do m2[k] = v or nil end
  return ch, m2
end

describe("treediff", function()
  local S = H.use_store({ tenant = T })

  local function build(size, seed)
    local r = rng(seed)
    local m = {}
    for i = 1, size do
      if r(3) > 1 then m[key(i)] = { n = i, name = "rec" .. i, pad = ("p"):rep(r(40)) } end
    end
    S.db:put_many(T, U, C, m)
    return m, S.db:get_digest(T, C)
  end

  it("finds nothing between a version and itself, or two equal trees", function()
    local m, d = build(3000, 1)
    assert.same({}, diff_list(S.db, d, d))
    -- a second version with the same records (another digest: its own
    -- metadata) has the same root
    S.db:put(T, U, C, "zz", 1)
    S.db:delete(T, U, C, "zz")
    local d2 = S.db:get_digest(T, C)
    assert.are_not.equal(d, d2)
    assert.same({}, diff_list(S.db, d, d2))
    assert.is_true(next(m) ~= nil)
  end)

  it("reports every record of a side when the other is empty or nil", function()
    local m, d = build(2500, 2)
    local want = model_diff({}, m)
    assert.same(want, diff_list(S.db, nil, d))
    assert.same(model_diff(m, {}), diff_list(S.db, d, nil))
    assert.same({}, diff_list(S.db, nil, nil))
    -- a collection whose last record was deleted: an empty tree
    S.db:put(T, U, "small", "a", 1)
    local ds = S.db:get_digest(T, "small")
    S.db:delete(T, U, "small", "a")
    local de = S.db:get_digest(T, "small")
    local out = {}
    treediff.collections(S.db, T, ds, de, function(k, o, n) out[#out + 1] = { k, o, n } end)
    assert.same({ { "a", "1", nil } }, out)
  end)

  for _, case in ipairs({ { "a small (one-leaf) tree", 40, 10 }, { "a multi-level tree", 6000, 12 } }) do
    it("agrees with a model after random edits on " .. case[1], function()
      local size, rounds = case[2], case[3]
      local r = rng(size)
      local m, d = build(size, size)
      local info = colinfo.get(S.db, T, C, d)
      if size > 1000 then -- inner pieces, so subtrees are skipped
        assert.is_false(collection.load_node(colinfo.tree(S.db, T, info), info.root).leaf)
      end
      local versions = { { m, d } }
      for round = 1, rounds do
        local _, m2 = random_edits(r, m, round % 3 == 0 and 60 or r(6), size)
        local ch = {}
        for k in pairs(m) do if m2[k] == nil then ch[k] = false end end
        for k, v in pairs(m2) do if not H.deep_equal(m[k], v) then ch[k] = v end end
        local d2 = next(ch) and apply(S.db, ch) or d
        assert.same(model_diff(m, m2), diff_list(S.db, d, d2))
        assert.same(model_diff(m2, m), diff_list(S.db, d2, d))
        versions[#versions + 1] = { m2, d2 }
        m, d = m2, d2
      end
      -- and between versions far apart
      for _ = 1, 4 do
        local a, b = versions[r(#versions)], versions[r(#versions)]
        assert.same(model_diff(a[1], b[1]), diff_list(S.db, a[2], b[2]))
      end
    end)
  end

  it("stops when the function returns false", function()
    local m, d = build(3000, 3)
    local all = model_diff({}, m)
    local got = diff_list(S.db, nil, d, 5)
    assert.equal(5, #got)
    for i = 1, 5 do assert.same(all[i], got[i]) end
  end)

  it("diffs trees built in memory (C sessions, pieces not flushed) and embedded roots", function()
    local store = S.db._store
    local function tree_of(m)
      local keys = {}
      for k in pairs(m) do keys[#keys + 1] = k end
      table.sort(keys)
      local vals = {}
      for i, k in ipairs(keys) do vals[i] = core.encode(m[k]) end
      local t = collection.tree(store, T, collection.node_cache())
      return t, collection.build(t, keys, vals)
    end
    local r = rng(7)
    local ma = {}
    for i = 1, 4000 do ma[key(i)] = { i = i, s = ("q"):rep(r(30)) } end
    local _, mb = random_edits(r, ma, 30, 4000)
    local ta, ra = tree_of(ma)
    local tb, rb = tree_of(mb)
    local out = {}
    treediff.trees(ta, ra, tb, rb, function(k, o, n)
      out[#out + 1] = { k, o and core.decode(o), n and core.decode(n) }
    end)
    assert.same(model_diff(ma, mb), out)
    -- a root given as a node (a leaf, as a snapshot embeds it)
    local tl, rl = tree_of({ a = 1, b = 2 })
    local node = collection.load_node(tl, rl)
    local got = {}
    treediff.trees(tl, node, tl, nil, function(k, o, n) got[#got + 1] = { k, o, n } end)
    assert.same({ { "a", "1", nil }, { "b", "2", nil } }, got)
  end)

  it("reads O(depth) pieces for a one-record change in 20,000 records", function()
    local db = S.db
    local recs = {}
    for i = 1, 20000 do recs[key(i)] = { n = i, name = ("user-%06d"):format(i) } end
    db:put_many(T, U, C, recs)
    local d1 = db:get_digest(T, C)
    db:put(T, U, C, key(12345), { n = -1 })
    local d2 = db:get_digest(T, C)
    -- the tree's size and depth, from a full walk
    local info = colinfo.get(db, T, C, d1)
    local t = colinfo.tree(db, T, info)
    local pieces, depth = 0, 0
    local function walk(digest, h)
      pieces = pieces + 1
      depth = math.max(depth, h)
      local node = collection.load_node(t, digest)
      if not node.leaf then for _, c in ipairs(node.digests) do walk(c, h + 1) end end
    end
    walk(info.root, 1)
    assert.is_true(depth >= 2 and pieces > 100, pieces .. " pieces, depth " .. depth)
    -- cold: nothing decoded, every piece a store read
    db._nodes = collection.node_cache()
    colinfo.reset(db)
    local store = db._store
    local mt = getmetatable(store)
    local orig = mt.__index.read
    local reads = 0
    mt.__index.read = function(...) reads = reads + 1; return orig(...) end
    local ok, out = pcall(diff_list, db, d1, d2)
    mt.__index.read = orig
    assert(ok, out)
    assert.same({ { key(12345), { n = 12345, name = "user-012345" }, { n = -1 } } }, out)
    -- two snapshots, then per tree its leftmost path and the changed path
    -- (with at most a neighbour per level whose boundary moved)
    local limit = 2 + 2 * (2 * depth + depth)
    assert.is_true(reads <= limit, ("%d reads (limit %d, of %d pieces)"):format(reads, limit, pieces))
  end)
end)
