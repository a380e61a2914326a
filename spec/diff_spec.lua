-- db:diff, db:blame and db:key_history (issue 18, parts 1 and 2), on the
-- backend MYDB_BACKEND names, and a random test against a plain-Lua model.
local H = require "spec.helper"
local collection = require "mydb.collection"
local colinfo = require "mydb.colinfo"

local T, U = "t", "u"

local function rng(seed)
  local x = seed
  return function(n)
    x = (x * 6364136223846793005 + 1442695040888963407) & 0x7fffffffffffffff
    return (x >> 16) % n + 1
  end
end

local function head(db) return db:log(T, { max = 1 })[1].id end

-- Counts the store reads fn makes (through the handle's store metatable).
local function count_reads(db, fn)
  local mt = getmetatable(db._store)
  local orig = mt.__index.read
  local reads = 0
  mt.__index.read = function(...) reads = reads + 1; return orig(...) end
  local ok, err = pcall(fn)
  mt.__index.read = orig
  assert(ok, err)
  return reads
end

local function cold(db)
  db._nodes = collection.node_cache()
  colinfo.reset(db)
end

describe("db:diff", function()
  local S = H.use_store({ tenant = T })

  it("lists record changes of collections with decoded old and new values, in key order", function()
    local db = S.db
    db:put_many(T, U, "users", { ann = { age = 30 }, bob = { age = 40 }, cy = { age = 50 } })
    local a = head(db)
    db:put(T, U, "users", "bob", { age = 41 })
    db:delete(T, U, "users", "cy")
    db:put(T, U, "users", "abe", { age = 1, tags = { "x" } })
    assert.same({
      { entry = "users", key = "abe", action = "added", new = { age = 1, tags = { "x" } } },
      { entry = "users", key = "bob", action = "modified", old = { age = 40 }, new = { age = 41 } },
      { entry = "users", key = "cy", action = "removed", old = { age = 50 } },
    }, db:diff(T, a, "main"))
    -- and backwards
    assert.same({
      { entry = "users", key = "abe", action = "removed", old = { age = 1, tags = { "x" } } },
      { entry = "users", key = "bob", action = "modified", old = { age = 41 }, new = { age = 40 } },
      { entry = "users", key = "cy", action = "added", new = { age = 50 } },
    }, db:diff(T, "main", a))
  end)

  it("lists snapshot changes per field path, recursively, and whole values that are not tables", function()
    local db = S.db
    db:save(T, U, "cfg", { theme = "dark", size = 10, ui = { font = "mono", colors = { "red", "blue" } } })
    db:save(T, U, "n", 5)
    local a = head(db)
    db:save(T, U, "cfg", { theme = "dark", size = 11, ui = { colors = { "red", "green", "x" } }, new = true })
    db:save(T, U, "n", "five")
    assert.same({
      { entry = "cfg", path = { "new" }, action = "added", new = true },
      { entry = "cfg", path = { "size" }, action = "modified", old = 10, new = 11 },
      { entry = "cfg", path = { "ui", "colors", 2 }, action = "modified", old = "blue", new = "green" },
      { entry = "cfg", path = { "ui", "colors", 3 }, action = "added", new = "x" },
      { entry = "cfg", path = { "ui", "font" }, action = "removed", old = "mono" },
      { entry = "n", path = {}, action = "modified", old = 5, new = "five" },
    }, db:diff(T, a, "main"))
    -- a table replaced by a scalar: one change at that path
    db:save(T, U, "cfg", { theme = "dark", size = 11, ui = 0, new = true })
    local b = db:log(T, { max = 2 })[2].id
    assert.same({ { entry = "cfg", path = { "ui" }, action = "modified",
                    old = { colors = { "red", "green", "x" } }, new = 0 } }, db:diff(T, b, "main"))
  end)

  it("reports an entry created or dropped as one change without key, entries in name order", function()
    local db = S.db
    db:save(T, U, "keep", 1)
    db:save(T, U, "gone", { a = 1 })
    db:put(T, U, "oldcoll", "k", 1)
    local a = head(db)
    db:drop(T, U, "gone")
    db:drop(T, U, "oldcoll")
    db:save(T, U, "born", { b = 2 })
    db:put_many(T, U, "coll", { x = 1, y = 2 })
    assert.same({
      { entry = "born", action = "added", new = { b = 2 } },
      { entry = "coll", action = "added" },
      { entry = "gone", action = "removed", old = { a = 1 } },
      { entry = "oldcoll", action = "removed" },
    }, db:diff(T, a, "main"))
    -- made again as the other kind: removed, then added
    db:save(T, U, "oldcoll", "now a snapshot")
    local b = db:log(T, { max = 2 })[2].id
    db:drop(T, U, "born")
    db:put(T, U, "born", "k", true)
    assert.same({
      { entry = "born", action = "removed", old = { b = 2 } },
      { entry = "born", action = "added" },
    }, db:diff(T, "main~2", "main"))
    assert.same({ { entry = "oldcoll", action = "added", new = "now a snapshot" } },
      db:diff(T, b, "main~2"))
  end)

  it("finds nothing between a revision and itself or states that came back to equal", function()
    local db = S.db
    db:put(T, U, "c", "k", 1)
    db:save(T, U, "s", { v = 1 })
    local a = head(db)
    assert.same({}, db:diff(T, a, "main"))
    db:put(T, U, "c", "k", 2)
    db:save(T, U, "s", { v = 2 })
    db:put(T, U, "c", "k", 1)
    db:save(T, U, "s", { v = 1 })
    assert.same({}, db:diff(T, a, "main"))
    assert.equal(2, #db:diff(T, "main~2", "main"))
  end)

  it("takes branches, tags, ids and their prefixes, REV~N", function()
    local db = S.db
    db:put(T, U, "c", "a", 1)
    db:tag(T, "v1")
    db:branch(T, "dev")
    db:checkout(T, "dev")
    db:put(T, U, "c", "b", 2)
    local want = { { entry = "c", key = "b", action = "added", new = 2 } }
    assert.same(want, db:diff(T, "v1", "dev"))
    assert.same(want, db:diff(T, "main", "dev"))
    assert.same(want, db:diff(T, "dev~1", head(db):sub(1, 10)))
  end)

  it("filters by entry and by key prefix, and stops at limit", function()
    local db = S.db
    db:save(T, U, "a_snap", { x = 1 })
    db:put_many(T, U, "b", { ["u:1"] = 1, ["u:2"] = 2, ["v:1"] = 3 })
    db:put_many(T, U, "c", { ["u:9"] = 1 })
    local a = head(db)
    db:save(T, U, "a_snap", { x = 2 })
    db:put_many(T, U, "b", { ["u:1"] = 10, ["u:2"] = 20, ["v:1"] = 30, ["t:1"] = 0 })
    db:put_many(T, U, "c", { ["u:9"] = 2, ["w"] = 1 })
    local all = db:diff(T, a, "main")
    assert.equal(1 + 4 + 2, #all)
    assert.same({ "b", "b", "b", "b" }, (function()
      local e = {}
      for i, ch in ipairs(db:diff(T, a, "main", { entry = "b" })) do e[i] = ch.entry end
      return e
    end)())
    local pre = db:diff(T, a, "main", { prefix = "u:" })
    assert.same({ { "b", "u:1" }, { "b", "u:2" }, { "c", "u:9" } }, (function()
      local e = {}
      for i, ch in ipairs(pre) do e[i] = { ch.entry, ch.key } end
      return e
    end)())
    assert.same({ { entry = "b", key = "u:2", action = "modified", old = 2, new = 20 } },
      db:diff(T, a, "main", { entry = "b", prefix = "u:2" }))
    local lim = db:diff(T, a, "main", { limit = 3 })
    assert.same({ all[1], all[2], all[3] }, lim)
    assert.same({}, db:diff(T, a, "main", { entry = "nope" }))
  end)

  it("rejects bad arguments", function()
    local db = S.db
    db:put(T, U, "c", "k", 1)
    local function bad(code, ...)
      local args = table.pack(...)
      H.assert_error_code(function() return db:diff(table.unpack(args, 1, args.n)) end, code)
    end
    bad("invalid_argument", T, "main", "main", 5)
    bad("invalid_argument", T, "main", "main", { nope = 1 })
    bad("invalid_argument", T, "main", "main", { limit = 0 })
    bad("invalid_argument", T, "main", "main", { limit = 1.5 })
    bad("invalid_argument", T, "main", "main", { limit = "3" })
    bad("invalid_argument", T, "main", "main", { entry = 7 })
    bad("invalid_argument", T, "main", "main", { entry = "" })
    bad("invalid_argument", T, "main", "main", { prefix = false })
    bad("invalid_argument", T, nil, "main")
    bad("invalid_argument", T, "main", 42)
    bad("not_found", T, "main", "nobranch")
    bad("not_found", T, "main~5", "main")
    bad("not_found", T, ("ab"):rep(32), "main")
    bad("not_initialized", "other", "main", "main")
    bad("invalid_argument", 5, "main", "main")
    H.assert_error_code(function() return db.diff(T, "main", "main") end, "invalid_argument")
  end)

  it("reads pieces for the changes only: one record in 20,000 among 200 entries", function()
    local db = S.db
    db:batch(T, U, function(b) for i = 1, 200 do b:save(("e%03d"):format(i), { i = i }) end end)
    local recs = {}
    for i = 1, 20000 do recs[("k%06d"):format(i)] = { n = i } end
    db:put_many(T, U, "big", recs)
    local a = head(db)
    db:put(T, U, "big", "k010000", { n = 0 })
    local b = head(db)
    cold(db)
    local out
    local reads = count_reads(db, function() out = db:diff(T, a, b) end)
    assert.same({ { entry = "big", key = "k010000", action = "modified", old = { n = 10000 }, new = { n = 0 } } },
      out)
    -- two commits, two state trees' paths, two snapshots, two record
    -- trees' paths (a full walk would read ~100 record pieces)
    assert.is_true(reads <= 40, reads .. " reads")
  end)
end)

-- ------------------------------------------------------ a model-based test

-- The model of a tenant: entry -> {coll = {key -> value}} or {snap = value}.
local function model_copy(m)
  local c = {}
  for e, v in pairs(m) do
    if v.coll then
      local r = {}
      for k, x in pairs(v.coll) do r[k] = x end
      c[e] = { coll = r }
    else
      c[e] = { snap = v.snap }
    end
  end
  return c
end

local function sorted_keys(t)
  local ks = {}
  for k in pairs(t) do ks[#ks + 1] = k end
  table.sort(ks, function(a, b)
    if type(a) ~= type(b) then return type(a) == "number" end
    return a < b
  end)
  return ks
end

-- Field changes of two snapshot values, written apart from mydb.diff.
local function field_changes(entry, a, b, path, out)
  if type(a) == "table" and type(b) == "table" then
    local u = {}
    for k in pairs(a) do u[k] = true end
    for k in pairs(b) do u[k] = true end
    for _, k in ipairs(sorted_keys(u)) do
      local p = table.move(path, 1, #path, 1, {})
      p[#p + 1] = k
      field_changes(entry, a[k], b[k], p, out)
    end
  elseif not H.deep_equal(a, b) then
    out[#out + 1] = { entry = entry, path = path, old = a, new = b,
                      action = a == nil and "added" or b == nil and "removed" or "modified" }
  end
end

local function model_diff(ma, mb)
  local names = {}
  for e in pairs(ma) do names[e] = true end
  for e in pairs(mb) do names[e] = true end
  local out = {}
  for _, e in ipairs(sorted_keys(names)) do
    local a, b = ma[e], mb[e]
    if a and b and (a.coll ~= nil) == (b.coll ~= nil) then
      if a.coll then
        local keys = {}
        for k in pairs(a.coll) do keys[k] = true end
        for k in pairs(b.coll) do keys[k] = true end
        for _, k in ipairs(sorted_keys(keys)) do
          local x, y = a.coll[k], b.coll[k]
          if not H.deep_equal(x, y) then
            out[#out + 1] = { entry = e, key = k, old = x, new = y,
                              action = x == nil and "added" or y == nil and "removed" or "modified" }
          end
        end
      else
        field_changes(e, a.snap, b.snap, {}, out)
      end
    else
      if a then out[#out + 1] = { entry = e, action = "removed", old = a.snap } end
      if b then out[#out + 1] = { entry = e, action = "added", new = b.snap } end
    end
  end
  return out
end

describe("db:diff against a model", function()
  local S = H.use_store({ tenant = T })

  it("agrees after random puts, deletes, saves and drops on two branches", function()
    local db = S.db
    local r = rng(18)
    local ENTRIES = { "c1", "c2", "c3", "s1", "s2" }
    local function random_value(depth)
      local w = r(6)
      if depth > 2 or w <= 2 then return r(50) end
      if w == 3 then return "s" .. r(9) end
      if w == 4 then return { r(3), r(3) } end
      local t = {}
      for _ = 1, r(4) do t["f" .. r(5)] = random_value(depth + 1) end
      return t
    end
    -- one random write on the handle's branch, mirrored in model m
    local function step(m)
      local e = ENTRIES[r(#ENTRIES)]
      local is_coll = e:sub(1, 1) == "c"
      if r(12) == 1 and m[e] then
        db:drop(T, U, e); m[e] = nil
      elseif is_coll then
        if r(4) == 1 then
          local k = m[e] and next(m[e].coll)
          if k then db:delete(T, U, e, k); m[e].coll[k] = nil end
        else
          m[e] = m[e] or { coll = {} }
          local items = {}
          for _ = 1, r(30) do items[("k%04d"):format(r(400))] = random_value(1) end
          db:put_many(T, U, e, items)
          for k, v in pairs(items) do m[e].coll[k] = v end
        end
      else
        local v = random_value(0)
        db:save(T, U, e, v)
        m[e] = { snap = v }
      end
    end
    local m = {}
    for _ = 1, 30 do step(m) end
    db:branch(T, "other")
    local states = { { head(db), model_copy(m) } }
    local mo = model_copy(m)
    for round = 1, 12 do
      db:checkout(T, "main")
      for _ = 1, r(6) do step(m) end
      states[#states + 1] = { head(db), model_copy(m) }
      db:checkout(T, "other")
      for _ = 1, r(6) do step(mo) end
      states[#states + 1] = { head(db), model_copy(mo) }
      assert.same(model_diff(m, mo), db:diff(T, "main", "other"), "round " .. round)
      assert.same(model_diff(mo, m), db:diff(T, "other", "main"), "round " .. round)
    end
    for _ = 1, 10 do
      local a, b = states[r(#states)], states[r(#states)]
      assert.same(model_diff(a[2], b[2]), db:diff(T, a[1], b[1]))
    end
  end)
end)

-- --------------------------------------------------------------- blame

describe("db:blame", function()
  local S = H.use_store({ tenant = T })

  local function commits_of(b)
    local out = {}
    for k, v in pairs(b) do out[k] = v.commit end
    return out
  end

  it("names the commit that gave each record its current value", function()
    local db = S.db
    db:put_many(T, "ann", "c", { a = 1, b = 2, c = 3, d = 4 })
    local c1 = head(db)
    db:put(T, "bob", "c", "b", 20)
    local c2 = head(db)
    db:save(T, "bob", "other", 1) -- another entry: not in c's chain
    db:delete(T, "cy", "c", "c")
    db:put(T, "cy", "c", "c", 3) -- back to its old value: still this commit's
    local c4 = head(db)
    db:put(T, "dan", "c", "d", 4) -- the same value: no new version
    db:put(T, "dan", "c", "e", 5)
    local c5 = head(db)
    local b, whole = db:blame(T, "c")
    assert.same({ a = c1, b = c2, c = c4, e = c5, d = c1 }, commits_of(b))
    assert.equal("bob", b.b.user_id)
    assert.equal("ann", b.a.user_id)
    assert.equal(c5, whole.commit)
    assert.is_string(b.a.date)
    assert.is_number(b.a.time)
    -- at a revision
    assert.same({ a = c1, b = c2, c = c1, d = c1 }, commits_of(db:blame(T, "c", c2)))
    assert.same({ a = c1, b = c2, c = c1, d = c1 }, commits_of(db:blame(T, "c", "main~4")))
  end)

  it("starts again where the entry was dropped and made again", function()
    local db = S.db
    db:put_many(T, U, "c", { a = 1, b = 2 })
    db:drop(T, U, "c")
    db:put(T, U, "c", "a", 1)
    local c3 = head(db)
    db:put(T, U, "c", "z", 1)
    local c4 = head(db)
    assert.same({ a = c3, z = c4 }, commits_of(db:blame(T, "c")))
  end)

  it("attributes top-level fields of a snapshot entry", function()
    local db = S.db
    db:save(T, U, "cfg", { theme = "dark", ui = { font = "mono" }, n = 1 })
    local c1 = head(db)
    db:save(T, U, "cfg", { theme = "dark", ui = { font = "sans" }, n = 1 })
    local c2 = head(db)
    db:save(T, U, "cfg", { theme = "dark", ui = { font = "sans" }, n = 2, added = true })
    local c3 = head(db)
    assert.same({ theme = c1, ui = c2, n = c3, added = c3 }, commits_of(db:blame(T, "cfg")))
    db:save(T, U, "num", 7)
    local b, whole = db:blame(T, "num")
    assert.same({}, b)
    assert.equal(head(db), whole.commit)
  end)

  it("follows the handle's branch and rejects bad arguments", function()
    local db = S.db
    db:put(T, U, "c", "a", 1)
    local c1 = head(db)
    db:branch(T, "dev")
    db:checkout(T, "dev")
    db:put(T, U, "c", "a", 2)
    local c2 = head(db)
    assert.same({ a = c2 }, commits_of(db:blame(T, "c")))
    assert.same({ a = c1 }, commits_of(db:blame(T, "c", "main")))
    H.assert_error_code(function() db:blame(T, "nope") end, "not_found")
    H.assert_error_code(function() db:blame(T, "c", "nobranch") end, "not_found")
    H.assert_error_code(function() db:blame(T, "") end, "invalid_argument")
    H.assert_error_code(function() db:blame(T, 5) end, "invalid_argument")
    H.assert_error_code(function() db:blame(T, "c", 5) end, "invalid_argument")
    H.assert_error_code(function() db:blame("other", "c") end, "not_initialized")
  end)
end)

-- ---------------------------------------------------------- key history

describe("db:key_history", function()
  local S = H.use_store({ tenant = T })

  local function summary(h)
    local out = {}
    for i, v in ipairs(h) do out[i] = { v.action, v.value } end
    return out
  end

  it("lists the versions of one record, newest first", function()
    local db = S.db
    db:put(T, "ann", "c", "k", { v = 1 })
    local c1, d1 = head(db), db:get_digest(T, "c")
    db:put(T, "ann", "c", "other", 1) -- not this key
    db:put(T, "bob", "c", "k", { v = 2 })
    local c3, d3 = head(db), db:get_digest(T, "c")
    db:save(T, U, "s", 1)
    db:delete(T, "cy", "c", "k")
    local c5 = head(db)
    db:put(T, "dan", "c", "k", { v = 3 })
    local h = db:key_history(T, "c", "k")
    assert.same({ { "added", { v = 3 } }, { "removed", nil }, { "modified", { v = 2 } }, { "added", { v = 1 } } },
      summary(h))
    assert.equal(c5, h[2].commit)
    assert.equal(c3, h[3].commit)
    assert.equal(d3, h[3].digest)
    assert.equal(c1, h[4].commit)
    assert.equal(d1, h[4].digest)
    assert.same({ "dan", "cy", "bob", "ann" }, { h[1].user_id, h[2].user_id, h[3].user_id, h[4].user_id })
    assert.is_string(h[1].date)
    -- max, rev
    assert.same({ { "added", { v = 3 } }, { "removed", nil } }, summary(db:key_history(T, "c", "k", { max = 2 })))
    assert.same({ { "modified", { v = 2 } }, { "added", { v = 1 } } },
      summary(db:key_history(T, "c", "k", { rev = c3 })))
    assert.same({}, db:key_history(T, "c", "never"))
  end)

  it("leaves out versions that did not change the record (other keys, indexes, TTL)", function()
    local db = S.db
    db:put_many(T, U, "c", { k = { n = 1 }, j = 1 })
    db:create_index(T, "u", "c", "by_n", "n")
    db:set_ttl(T, "u", "c", "expires")
    db:put(T, U, "c", "j", 2)
    db:put(T, U, "c", "k", { n = 2 })
    db:drop_index(T, "u", "c", "by_n")
    local h = db:key_history(T, "c", "k")
    assert.same({ { "modified", { n = 2 } }, { "added", { n = 1 } } }, summary(h))
    assert.equal(db:log(T, { max = 2 })[2].id, h[1].commit)
  end)

  it("sees a drop of the entry as a removal, and its earlier life", function()
    local db = S.db
    db:put(T, U, "c", "k", 1)
    db:drop(T, U, "c")
    local dropped = head(db)
    db:put(T, U, "c", "k", 2)
    local h = db:key_history(T, "c", "k")
    assert.same({ { "added", 2 }, { "removed", nil }, { "added", 1 } }, summary(h))
    assert.equal(dropped, h[2].commit)
    assert.is_nil(h[2].digest)
    -- from the drop itself (the entry absent there)
    assert.same({ { "removed", nil }, { "added", 1 } }, summary(db:key_history(T, "c", "k", { rev = dropped })))
  end)

  it("rejects bad arguments and snapshot entries", function()
    local db = S.db
    db:put(T, U, "c", "k", 1)
    db:save(T, U, "s", { k = 1 })
    H.assert_error_code(function() db:key_history(T, "s", "k") end, "type_mismatch")
    H.assert_error_code(function() db:key_history(T, "c", 5) end, "invalid_argument")
    H.assert_error_code(function() db:key_history(T, "c", "k", { max = 0 }) end, "invalid_argument")
    H.assert_error_code(function() db:key_history(T, "c", "k", { max = "2" }) end, "invalid_argument")
    H.assert_error_code(function() db:key_history(T, "c", "k", { bogus = 1 }) end, "invalid_argument")
    H.assert_error_code(function() db:key_history(T, "c", "k", 3) end, "invalid_argument")
    H.assert_error_code(function() db:key_history(T, "c", "k", { rev = "nope" }) end, "not_found")
    H.assert_error_code(function() db:key_history(T, "nope", "k") end, "not_found")
    H.assert_error_code(function() db:key_history("other", "c", "k") end, "not_initialized")
  end)

  it("reads O(versions x depth) pieces, never whole collections", function()
    local db = S.db
    local recs = {}
    for i = 1, 20000 do recs[("k%06d"):format(i)] = { n = i } end
    db:put_many(T, U, "big", recs)
    local N = 30
    for i = 1, N do db:put(T, U, "big", ("k%06d"):format(i * 600), { n = -i }) end
    db:put(T, U, "big", "k000600", { n = 0 })
    cold(db)
    db._commits = require("mydb.commits").memo()
    -- (the C tree reads pieces itself, unseen here: point reads go through
    -- the Lua walk of the same descent for the count)
    local get = collection.get
    collection.get = collection.oracle.get
    local h
    local ok, reads = pcall(count_reads, db, function() h = db:key_history(T, "big", "k000600") end)
    collection.get = get
    assert(ok, reads)
    assert.same({ { "modified", { n = 0 } }, { "modified", { n = -1 } }, { "added", { n = 600 } } }, summary(h))
    -- per version: its commit, its snapshot, its tree path (depth 3 here)
    -- less what neighbours share; a decode would read ~100 pieces each
    local versions = N + 2
    assert.is_true(reads <= versions * 6, reads .. " reads for " .. versions .. " versions")
  end)
end)

-- ------------------------------------------------------------- example

describe("examples/diff.lua", function()
  it("runs in a fresh process and prints what it says", function()
    local dir = H.tmpdir()
    local out, ok, status = H.run_lua(H.read_file(H.REPO .. "/examples/diff.lua"), { cwd = dir, memory_ok = true })
    local left = H.listing(dir)
    H.rmrf(dir)
    assert(ok, ("exit status %s:\n%s"):format(tostring(status), out))
    for _, line in ipairs({
      "config  ui.theme modified  light -> dark\n", "prices  apple  modified  1.2 -> 1.35\n",
      "prices  kiwi   added     nil -> 0.4\n", "prices  plum   removed   2.0 -> nil\n",
      "apple\tby\tbob\n", "kiwi\tby\tcarol\n", "pear\tby\talice\n",
    }) do
      assert.truthy(out:find(line, 1, true), line .. " not in:\n" .. out)
    end
    local _, versions = out:gsub("apple\t%a+\t[%d.]+\tby\t%a+\tin\t%x+\n", "")
    assert.equal(2, versions, out)
    assert.same({}, left)
  end)
end)
