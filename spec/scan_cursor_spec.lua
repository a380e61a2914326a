-- The collection cursor (src/lua/ltree_read.c): collection.range and
-- collection.iter read in C from the tree's nodes. Checked against a sorted
-- Lua model and against the Lua walk (collection.oracle), for a cursor left
-- early, and for a scan while another process writes.
local H = require "spec.helper"
local core = require "mydb.core"
local collection = require "mydb.collection"

local T, U, C = "t", "u", "c"

-- A deterministic generator (the same keys on every run).
local function rng(seed)
  local x = seed
  return function(n)
    x = (x * 6364136223846793005 + 1442695040888963407) & 0x7fffffffffffffff
    return (x >> 16) % n
  end
end

-- A random key: mostly short ASCII keys with shared prefixes, some with
-- bytes that are not UTF-8 (stored as {"__bytes__": ...}).
local function random_key(r)
  local n = 1 + r(12)
  local b = {}
  for i = 1, n do
    if r(40) == 0 then b[i] = string.char(0x80 + r(0x7f)) -- not UTF-8
    else b[i] = string.char(("abcdefgh"):byte(1 + r(i < 3 and 3 or 8))) end
  end
  return table.concat(b)
end

local function sorted_keys(model)
  local keys = {}
  for k in pairs(model) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

-- What query(opts) must yield: the model's keys within the bounds, in order.
local function expected(keys, o)
  local lo, hi, hi_excl = o.from, o.to, false
  if o.prefix then
    if lo == nil or lo < o.prefix then lo = o.prefix end
  end
  local out = {}
  for _, k in ipairs(keys) do
    local ok = (lo == nil or k >= lo) and (hi == nil or (hi_excl and k < hi or k <= hi))
    if ok and o.prefix and k:sub(1, #o.prefix) ~= o.prefix then ok = false end
    if ok then out[#out + 1] = k end
  end
  if o.reverse then
    local r = {}
    for i = #out, 1, -1 do r[#r + 1] = out[i] end
    out = r
  end
  if o.limit then
    for i = #out, o.limit + 1, -1 do out[i] = nil end
  end
  return out
end

local function fill(db, r, n)
  local model = {}
  local items = {}
  for i = 1, n do
    local k = random_key(r)
    local v = { i = i, s = ("x"):rep(r(120)) }
    items[k], model[k] = v, v
  end
  db:put_many(T, U, C, items)
  return model
end

describe("the collection cursor", function()
  local S = H.use_store({ tenant = T })

  it("yields what a sorted model holds, over many leaves, within random bounds", function()
    local r = rng(7)
    local model = fill(S.db, r, 3000)
    -- changes after the load: replaced, new and deleted records
    local items = {}
    for _ = 1, 300 do
      local k = random_key(r)
      local v = { i = -1, s = ("y"):rep(r(300)) }
      items[k], model[k] = v, v
    end
    S.db:put_many(T, U, C, items)
    local keys = sorted_keys(model)
    for j = 1, 40 do
      local k = keys[1 + r(#keys)]
      S.db:delete(T, U, C, k)
      model[k] = nil
      if j % 10 == 0 then keys = sorted_keys(model) end
    end
    keys = sorted_keys(model)
    assert.is_true(#keys > 1000)

    -- the whole collection, decoded and raw
    local got = {}
    for k, v in S.db:records(T, C) do
      got[#got + 1] = k
      assert.same(model[k], v)
    end
    assert.same(keys, got)
    local n = 0
    for k, raw in S.db:raw_records(T, C) do
      n = n + 1
      assert.equal(keys[n], k)
      assert.equal(core.encode(model[k]), raw)
    end
    assert.equal(#keys, n)

    -- bounds: from, to, prefix, reverse, limit (keys of the model and not)
    local function bound()
      if r(3) == 0 then return keys[1 + r(#keys)] end
      return random_key(r)
    end
    for _ = 1, 300 do
      local o = {}
      if r(2) == 0 then o.from = bound() end
      if r(2) == 0 then o.to = bound() end
      if r(4) == 0 then o.prefix = bound():sub(1, 1 + r(3)) end
      if r(2) == 0 then o.reverse = true end
      if r(3) == 0 then o.limit = r(50) end
      local want = expected(keys, o)
      local have = {}
      for k, v in S.db:query(T, C, o) do
        have[#have + 1] = k
        assert.same(model[k], v)
      end
      assert.same(want, have)
    end
  end)

  it("reads as the Lua walk does, exclusive bounds too", function()
    local r = rng(11)
    local model = fill(S.db, r, 2000)
    local keys = sorted_keys(model)
    local info = S.db:_collection_info(T, C, S.db:_resolve(T, C))
    local t = S.db:_tree(T, info)
    local function list(it)
      local out = {}
      for k, v in it do out[#out + 1] = { k, v } end
      return out
    end
    for _ = 1, 200 do
      local o = { lo = r(3) > 0 and keys[1 + r(#keys)] or random_key(r), lo_excl = r(2) == 0,
                  hi = r(3) > 0 and keys[1 + r(#keys)] or random_key(r), hi_excl = r(2) == 0,
                  reverse = r(2) == 0 }
      if r(5) == 0 then o.lo = nil end
      if r(5) == 0 then o.hi = nil end
      assert.same(list(collection.oracle.range(t, info.root, o)), list(collection.range(t, info.root, o)))
      local from = r(4) > 0 and keys[1 + r(#keys)] or nil
      assert.same(list(collection.oracle.iter(t, info.root, from)), list(collection.iter(t, info.root, from)))
    end
    -- an empty collection's root (nil): nothing
    assert.same({}, list(collection.range(t, nil, {})))
  end)

  it("is closed when a for loop is left early, and by close()", function()
    local model = fill(S.db, rng(3), 500)
    local it, s, c, cursor = S.db:records(T, C)
    assert.is_not_nil(cursor)
    for _ in it, s, c, cursor do break end
    assert.is_nil(it()) -- closed by the loop: nothing more
    local it2, _, _, cursor2 = S.db:query(T, C, { from = "b" })
    assert.is_not_nil(it2())
    cursor2:close()
    assert.is_nil(it2())
    cursor2:close() -- twice is fine
    -- a cursor not closed by hand still yields everything
    local n = 0
    for _ in S.db:records(T, C) do n = n + 1 end
    assert.equal(#sorted_keys(model), n)
  end)

  it("outlives a closed store only to say it is closed", function()
    fill(S.db, rng(5), 2000)
    local it = S.db:records(T, C)
    assert.is_not_nil(it())
    S.db:close()
    -- the leaf in hand may still be read; the next piece raises closed
    H.assert_error_code(function() while it() do end end, "closed")
    S.db = nil
  end)

  it("reads the version it started on while another process writes", function()
    H.needs_disk()
    local r = rng(9)
    local model = fill(S.db, r, 3000)
    local keys = sorted_keys(model)
    local it = S.db:records(T, C)
    local got = {}
    for _ = 1, 10 do
      local k, v = it()
      got[#got + 1] = k
      assert.same(model[k], v)
    end
    local out, ok = H.run_lua(([[
      local mydb = require "mydb"
      local db = mydb.open(%q, { fsync = false })
      local keys = {}
      for k in db:records("t", "c") do keys[#keys + 1] = k end
      local items = {}
      for i = 1, #keys, 3 do items[keys[i] ] = { changed = i } end
      for i = 1, 500 do items["new" .. i] = { new = i } end
      db:put_many("t", "w", "c", items)
      for i = 2, #keys, 7 do db:delete("t", "w", "c", keys[i]) end
      db:close()
      print("written")
    ]]):format(S.root))
    assert.is_true(ok, out)
    for k, v in it do
      got[#got + 1] = k
      assert.same(model[k], v)
    end
    assert.same(keys, got)
    -- a new read sees the writer's version
    local db2 = S.open_again()
    local n, changed = 0, 0
    for _, v in db2:records(T, C) do
      n = n + 1
      if v.changed or v.new then changed = changed + 1 end
    end
    assert.equal(#keys + 500 - ((#keys - 2) // 7 + 1), n)
    assert.is_true(changed > 1000)
  end)

  it("reads the version it started on while another process writes and repacks", function()
    -- A handle with empty caches and small segments: the scan reads its
    -- leaves from the log (mydb_object_read_into: no look for other
    -- writers per leaf) while the writer's repack removes every segment it
    -- knows; a segment it has not opened yet is found again in the new
    -- generation. (A gc that removed an unreachable piece the scan still
    -- needs would end it with not_found: the scan never yields a record
    -- of another version.)
    H.needs_disk()
    S.db:close()
    S.db = nil
    local opts = { fsync = false, segment_bytes = 16384 }
    local w = S.open_again(opts)
    local model, r = {}, rng(11)
    for _ = 1, 10 do -- (a commit each: the leaves spread over segments)
      for k, v in pairs(fill(w, r, 300)) do model[k] = v end
    end
    w:close()
    local keys = sorted_keys(model)
    local db = S.open_again(opts)
    local it = db:records(T, C)
    local got = {}
    for _ = 1, 10 do
      local k, v = it()
      got[#got + 1] = k
      assert.same(model[k], v)
    end
    local out, ok = H.run_lua(([[
      local mydb = require "mydb"
      local db = mydb.open(%q, { fsync = false, segment_bytes = 16384 })
      local keys = {}
      for k in db:records("t", "c") do keys[#keys + 1] = k end
      local items = {}
      for i = 1, #keys, 3 do items[keys[i] ] = { changed = i } end
      for i = 1, 500 do items["new" .. i] = { new = i } end
      db:put_many("t", "w", "c", items)
      for i = 2, #keys, 7 do db:delete("t", "w", "c", keys[i]) end
      db:repack("t")
      db:close()
      print("written")
    ]]):format(S.root))
    assert.is_true(ok, out)
    local ok2, err = pcall(function()
      for k, v in it do
        got[#got + 1] = k
        assert.same(model[k], v)
      end
    end)
    -- (a repack keeps every object: the whole snapshot, not an error)
    assert.is_true(ok2, tostring(type(err) == "table" and err.message or err))
    assert.same(keys, got)
    -- the same handle's next scan sees the writer's version
    local n = 0
    for _ in db:records(T, C) do n = n + 1 end
    assert.equal(#keys + 500 - ((#keys - 2) // 7 + 1), n)
  end)
end)
