-- Issue 7 §6: secondary indexes. db:create_index(tenant, entry, name, fn)
-- with fn a Lua function or a string expression; db:query_index yields key,
-- value, index key in index order; the index is versioned with the
-- collection and kept current by every write path.
local H = require "spec.helper"
local U = require "spec.peers_util"
local mydb = require "mydb"

-- These specs call set_ttl, create_index and drop_index in the original
-- order (user last), which mydb.argorder still reads: its warning is
-- silenced here (spec/argorder_spec.lua specs it).
setup(function() require("mydb").deprecation_warnings = false end)
teardown(function() require("mydb").deprecation_warnings = true end)

-- Index order: numbers (by value) before strings (bytewise), then record key.
local function ik_less(a, b)
  local ta, tb = type(a[1]), type(b[1])
  if ta ~= tb then return ta == "number" end
  if a[1] ~= b[1] then return a[1] < b[1] end
  return a[2] < b[2]
end

-- The {index key, record key} pairs an index over map should hold, sorted.
local function expected(map, fn)
  local out = {}
  for k, v in pairs(map) do
    local ik = fn(v)
    if ik ~= nil then out[#out + 1] = { ik, k } end
  end
  table.sort(out, ik_less)
  return out
end

-- What query_index yields, as {index key, record key} pairs; also checks
-- that each value is the record's current value.
local function indexed(db, tenant, entry, name, opts)
  local out = {}
  for k, v, ik in db:query_index(tenant, entry, name, opts) do
    assert.same(db:get(tenant, entry, k, opts and opts.digest), v)
    out[#out + 1] = { ik, k }
  end
  return out
end

local PEOPLE = {
  ann = { name = "Ann", age = 31, city = "Oslo" },
  bob = { name = "Bob", age = 22, city = "Rome" },
  cy = { name = "Cy", age = 40, city = "Oslo" },
  dee = { name = "Dee", age = 22, city = "Lima" },
  eve = { name = "Eve" },                   -- no age: not in the age index
  fay = { name = "Fay", age = 5.5, city = "Rome" },
}

local by_age = function(v) return v.age end
local by_city = function(v) return v.city end

describe("peers: secondary indexes", function()
  local S = H.use_store({ tenant = "t" })
  local db
  before_each(function()
    db = S.db
    db:put_many("t", "u", "p", PEOPLE)
  end)

  it("create_index with a string expression: key, value, index key in index order", function()
    assert.is_true(db:create_index("t", "p", "age", "age"))
    local rows = U.rows(db:query_index("t", "p", "age"))
    assert.same({
      { "fay", PEOPLE.fay, 5.5 }, { "bob", PEOPLE.bob, 22 }, { "dee", PEOPLE.dee, 22 },
      { "ann", PEOPLE.ann, 31 }, { "cy", PEOPLE.cy, 40 },
    }, rows)
    assert.equal("integer", math.type(rows[2][3]))
    assert.equal("float", math.type(rows[1][3]))
    local meta = U.collection_meta(db, S.root, "t", "p")
    assert.equal("age", meta.indexes.age.expr)
    assert.equal(5, meta.indexes.age.count)
  end)

  it("create_index with a function; expressions may compute keys", function()
    assert.is_true(db:create_index("t", "p", "city", by_city))
    assert.same(expected(PEOPLE, by_city), indexed(db, "t", "p", "city"))
    assert.is_true(db:create_index("t", "p", "city_name", 'city and (city .. "/" .. name)'))
    assert.same({ "dee", "ann", "cy", "bob", "fay" }, U.firsts(db:query_index("t", "p", "city_name")))
    assert.same({ "Lima/Dee", "Oslo/Ann", "Oslo/Cy", "Rome/Bob", "Rome/Fay" },
      U.thirds(db:query_index("t", "p", "city_name")))
    assert.is_nil(U.collection_meta(db, S.root, "t", "p").indexes.city.expr)
  end)

  it("numbers sort before strings; negative and fractional numbers in order", function()
    db:put_many("t", "u", "m", { a = { k = "b" }, b = { k = -2.5 }, c = { k = 10 }, d = { k = "a" },
                                 e = { k = -100 }, f = { k = 0 }, g = { k = 2 ^ 60 }, h = { k = -0.0 } })
    db:create_index("t", "m", "k", "k")
    assert.same({ -100, -2.5, 0, 0, 10, 2 ^ 60, "a", "b" }, U.thirds(db:query_index("t", "m", "k")))
  end)

  it("from / to / prefix in index-key terms, reverse, limit, filter", function()
    db:create_index("t", "p", "age", "age")
    db:create_index("t", "p", "city", by_city)
    local function keys(name, opts) return U.firsts(db:query_index("t", "p", name, opts)) end
    assert.same({ "bob", "dee", "ann" }, keys("age", { from = 22, to = 31 }))
    assert.same({ "bob", "dee", "ann" }, keys("age", { from = 6, to = 39.9 }))
    assert.same({ "ann", "cy" }, keys("age", { from = 23 }))
    assert.same({ "fay", "bob", "dee" }, keys("age", { to = 22 }))
    assert.same({ "dee", "bob", "fay" }, keys("age", { to = 22, reverse = true }))
    assert.same({ "cy", "ann" }, keys("age", { reverse = true, limit = 2 }))
    assert.same({}, keys("age", { limit = 0 }))
    assert.same({}, keys("age", { from = 41 }))
    assert.same({}, keys("age", { from = "a" })) -- strings come after every number
    assert.same({ "ann", "cy" }, keys("city", { from = "Oslo", to = "Oslo" }))
    assert.same({ "ann", "cy", "bob", "fay" }, keys("city", { from = "M" }))
    assert.same({ "bob", "fay" }, keys("city", { prefix = "R" }))
    assert.same({ "fay", "bob" }, keys("city", { prefix = "R", reverse = true }))
    assert.same({ "ann", "cy" }, keys("city", { prefix = "O", from = "A", to = "Z" }))
    assert.same({ "dee" }, keys("city", { to = "Lima" }))
    assert.same({ "cy" }, keys("age", { filter = 'city == "Oslo" and age > 35' }))
    assert.same({ "bob", "dee" }, keys("age", { filter = function(k, v, ik) return ik == 22 and v.age == 22 and #k == 3 end }))
    assert.same({ "ann" }, keys("city", { filter = "age and age > 30", limit = 1 }))
  end)

  it("an inclusive to covers every record of that index key, whatever its bytes", function()
    db:put_many("t", "u", "b", { ["\255\255"] = { v = 1 }, ["\255"] = { v = 1 }, a = { v = 1 }, z = { v = 2 },
                                 ["\1"] = { v = 1 } })
    db:create_index("t", "b", "v", "v")
    assert.same({ "\1", "a", "\255", "\255\255" }, U.firsts(db:query_index("t", "b", "v", { to = 1 })))
    assert.same({ "\255\255", "\255", "a", "\1" }, U.firsts(db:query_index("t", "b", "v", { to = 1, reverse = true })))
    db:create_index("t", "b", "s", function(v) return v.v == 1 and "x" or "x\1" end)
    assert.same({ "\1", "a", "\255", "\255\255" }, U.firsts(db:query_index("t", "b", "s", { to = "x" })))
    assert.same({ "z" }, U.firsts(db:query_index("t", "b", "s", { from = "x\1" })))
  end)

  it("stays current through put, put_many, delete, batch and TTL expiry", function()
    local now = 1000
    db._now = function() return now end
    db:create_index("t", "p", "age", "age")
    db:create_index("t", "p", "city", by_city)
    local function check()
      local state = db:load("t", "p")
      assert.same(expected(state, by_age), indexed(db, "t", "p", "age"))
      assert.same(expected(state, by_city), indexed(db, "t", "p", "city"))
    end
    check()
    db:put("t", "u", "p", "ann", { name = "Ann", age = 50, city = "Kyiv" })    -- moves
    check()
    db:put("t", "u", "p", "bob", { name = "Bob" })                            -- leaves both
    check()
    db:put("t", "u", "p", "new", { age = 22, city = "Rome" })                 -- joins
    check()
    db:put_many("t", "u", "p", { eve = { name = "Eve", age = 1 }, cy = { age = 40, city = "Oslo", x = 1 },
                                 zed = { age = 99 } })
    check()
    db:delete("t", "u", "p", "dee")
    check()
    db:batch("t", "u", function(b)
      b:put("p", "b1", { age = 7, city = "Bern" })
      b:delete("p", "fay")
      b:put_many("p", { b2 = { age = 8 }, cy = { age = 41 } })
    end)
    check()
    assert.equal(7, U.collection_meta(db, S.root, "t", "p").indexes.age.count)
    -- TTL: records expire out of the index too
    db:put_many("t", "u", "p", { t1 = { age = 60, exp = 1500, city = "Oslo" }, t2 = { age = 61, exp = 9000 } })
    db:set_ttl("t", "p", "exp")
    now = 2000
    -- hidden at once from query_index
    assert.same({ "t2", "zed" }, U.firsts(db:query_index("t", "p", "age", { from = 59 })))
    db:put("t", "u", "p", "x", { age = 3 })
    check()
    assert.is_nil(db:load("t", "p").t1)
    local meta = U.collection_meta(db, S.root, "t", "p")
    assert.equal(9, meta.indexes.age.count)
    assert.same({}, db:verify())
  end)

  it("records whose key function returns nil are not in the index", function()
    db:create_index("t", "p", "adult", function(v) if v.age and v.age >= 30 then return v.name end end)
    assert.same({ "Ann", "Cy" }, U.thirds(db:query_index("t", "p", "adult")))
    assert.equal(2, U.collection_meta(db, S.root, "t", "p").indexes.adult.count)
    db:create_index("t", "p", "none", "nothing_here")
    assert.same({}, U.rows(db:query_index("t", "p", "none")))
    assert.equal(0, U.collection_meta(db, S.root, "t", "p").indexes.none.count)
  end)

  it("a key function returning a table, a boolean or NaN: invalid_argument, nothing written", function()
    local lines, bytes = U.head(S.root, "t")
    local objects = U.objects(S.root, "t")
    H.assert_error_code(db.create_index, "invalid_argument", db, "t", "p", "bad", function(v) return { v.age } end)
    H.assert_error_code(db.create_index, "invalid_argument", db, "t", "p", "bad", function() return true end)
    H.assert_error_code(db.create_index, "invalid_argument", db, "t", "p", "bad", "{ age }")
    H.assert_error_code(db.create_index, "invalid_argument", db, "t", "p", "bad", "age ~= nil")
    H.assert_error_code(db.create_index, "invalid_argument", db, "t", "p", "bad", "0/0")
    H.assert_error_code(db.create_index, "invalid_argument", db, "t", "p", "bad", 'name .. "\\0"')
    local err = H.assert_error_code(db.create_index, "handler_error", db, "t", "p", "bad",
      function() error("key function broke") end)
    assert.truthy(err.message:find("key function broke", 1, true), err.message)
    local l2, b2 = U.head(S.root, "t")
    assert.equal(lines, l2)
    assert.equal(bytes, b2)
    assert.equal(objects, U.objects(S.root, "t"))
    H.assert_error_code(db.query_index, "not_found", db, "t", "p", "bad")
    -- the same at write time, for an index that exists
    db:create_index("t", "p", "k", function(v) return v.k end)
    local d = db:get_digest("t", "p")
    H.assert_error_code(db.put, "invalid_argument", db, "t", "u", "p", "x", { k = { 1 } })
    H.assert_error_code(db.put_many, "invalid_argument", db, "t", "u", "p", { x = { k = 1 }, y = { k = true } })
    H.assert_error_code(db.batch, "invalid_argument", db, "t", "u", function(b)
      b:put("p", "x", { k = 1 })
      b:put("p", "y", { k = {} })
    end)
    assert.equal(d, db:get_digest("t", "p"))
    assert.is_nil(db:get("t", "p", "x"))
  end)

  it("calling create_index again with another function rebuilds the index", function()
    db:create_index("t", "p", "ix", by_age)
    assert.is_false(db:create_index("t", "p", "ix", by_age)) -- same entries: nothing written
    assert.is_true(db:create_index("t", "p", "ix", by_city))
    assert.same(expected(PEOPLE, by_city), indexed(db, "t", "p", "ix"))
    db:put("t", "u", "p", "ann", { name = "Ann", city = "Zug" })
    assert.same(expected(db:load("t", "p"), by_city), indexed(db, "t", "p", "ix"))
    -- and an expression index replaced by another expression, or by a function
    db:create_index("t", "p", "e", "age")
    assert.is_false(db:create_index("t", "p", "e", "age"))
    assert.is_true(db:create_index("t", "p", "e", "name"))
    assert.same({ "Ann", "Bob", "Cy", "Dee", "Eve", "Fay" }, U.thirds(db:query_index("t", "p", "e")))
    assert.is_true(db:create_index("t", "p", "e", by_age))
    assert.is_nil(U.collection_meta(db, S.root, "t", "p").indexes.e.expr)
    assert.same(expected(db:load("t", "p"), by_age), indexed(db, "t", "p", "e"))
  end)

  it("a second process must re-register a FUNCTION index before writing", function()
    db:create_index("t", "p", "city", by_city)
    local out = U.fresh(S.root, [[
      local H = require "spec.helper"
      local mydb = require "mydb"; mydb.deprecation_warnings = false -- (the original order: no warning)
      local db = mydb.open(arg[1], { fsync = false })
      local d = db:get_digest("t", "p")
      local ok, err = pcall(db.put, db, "t", "u", "p", "zed", { city = "Zug" })
      io.write(tostring(ok), " ", tostring(err.code), " ", tostring(err.message:find("create_index", 1, true) ~= nil))
      ok, err = pcall(db.delete, db, "t", "u", "p", "ann")
      io.write(" ", tostring(err.code))
      io.write(" ", tostring(d == db:get_digest("t", "p")), " ", tostring(db:get("t", "p", "zed")))
      -- reading needs nothing
      local n = 0
      for _ in db:query_index("t", "p", "city") do n = n + 1 end
      io.write(" read=", n)
      -- re-attaching writes nothing, then writes work
      io.write(" ", tostring(db:create_index("t", "p", "city", function(v) return v.city end)))
      io.write(" ", tostring(d == db:get_digest("t", "p")))
      io.write(" ", tostring(db:put("t", "u", "p", "zed", { city = "Zug" })))
      io.write(" ", tostring(db:delete("t", "u", "p", "ann")))
    ]])
    assert.equal("false invalid_argument true invalid_argument true nil read=5 false true true true", out)
    assert.same(expected(db:load("t", "p"), by_city), indexed(db, "t", "p", "city"))
    assert.same({ "zed" }, U.firsts(db:query_index("t", "p", "city", { prefix = "Z" })))
  end)

  it("an EXPRESSION index needs nothing in the second process", function()
    db:create_index("t", "p", "city", "city")
    U.fresh(S.root, [[
      local mydb = require "mydb"; mydb.deprecation_warnings = false -- (the original order: no warning)
      local db = mydb.open(arg[1], { fsync = false })
      assert(db:put("t", "u", "p", "zed", { city = "Zug" }))
      assert(db:delete("t", "u", "p", "ann"))
      db:batch("t", "u", function(b) b:put("p", "yan", { city = "Abu" }) end)
    ]])
    assert.same(expected(db:load("t", "p"), by_city), indexed(db, "t", "p", "city"))
    assert.same({ "yan", "dee" }, U.firsts(db:query_index("t", "p", "city", { limit = 2 })))
  end)

  it("is versioned: query_index on an older digest", function()
    db:create_index("t", "p", "age", "age")
    local d = db:get_digest("t", "p")
    db:put("t", "u", "p", "ann", { age = 1 })
    assert.same({ "ann", "fay" }, U.firsts(db:query_index("t", "p", "age", { limit = 2 })))
    assert.same({ "fay", "bob" }, U.firsts(db:query_index("t", "p", "age", { limit = 2, digest = d })))
    -- before the index existed: not_found
    local first = db:history("t", "p")[3]
    H.assert_error_code(db.query_index, "not_found", db, "t", "p", "age", { digest = first })
  end)

  it("drop_index", function()
    db:create_index("t", "p", "age", "age")
    db:create_index("t", "p", "city", by_city)
    local n = #db:history("t", "p")
    assert.is_true(db:drop_index("t", "p", "age"))
    assert.equal(n + 1, #db:history("t", "p"))
    assert.is_false(db:drop_index("t", "p", "age"))
    assert.equal(n + 1, #db:history("t", "p"))
    H.assert_error_code(db.query_index, "not_found", db, "t", "p", "age")
    assert.is_nil(U.collection_meta(db, S.root, "t", "p").indexes.age)
    assert.is_true(db:drop_index("t", "p", "city"))
    assert.is_nil(U.collection_meta(db, S.root, "t", "p").indexes)
    -- writes no longer need the function
    local db2 = S.open_again()
    assert.is_true(db2:put("t", "u", "p", "q", { city = "Q" }))
    -- the records are untouched; the index can be created again
    assert.same(PEOPLE.ann, db:get("t", "p", "ann"))
    assert.is_true(db:create_index("t", "p", "age", "age"))
    assert.equal(5, #U.rows(db:query_index("t", "p", "age")))
  end)

  -- doc/FORMAT.md: "indexes": {NAME: {count, expr, root}}; a TTL field
  -- keeps a hidden index named #ttl (a name no user index can take).
  it("the stored indexes field has the documented shape, with a TTL field too", function()
    db:create_index("t", "p", "age", "age")
    local meta, _, as_map = U.collection_meta(db, S.root, "t", "p")
    assert.is_false(as_map)
    assert.same({ "count", "expr", "root" }, U.sorted_keys(meta.indexes.age))
    db:set_ttl("t", "p", "exp")
    meta, _, as_map = U.collection_meta(db, S.root, "t", "p")
    assert.equal("exp", meta.ttl)
    assert.is_table(meta.indexes["#ttl"])
    assert.is_false(as_map, "indexes stored as {\"__map__\": [...]}, not {NAME: {...}}")
  end)

  it("query_index on an unknown index: not_found; on a missing entry: not_found", function()
    H.assert_error_code(db.query_index, "not_found", db, "t", "p", "nope")
    H.assert_error_code(db.query_index, "not_found", db, "t", "missing", "age")
  end)

  it("refuses bad names, key functions, options and entries", function()
    for _, name in ipairs({ "", "__ttl__", "__x", "a b", "a/b", "a\0b", ("a"):rep(129), 1, true, {} }) do
      H.assert_error_code(db.create_index, "invalid_argument", db, "t", "p", name, "age")
      H.assert_error_code(db.query_index, "invalid_argument", db, "t", "p", name)
      H.assert_error_code(db.drop_index, "invalid_argument", db, "t", "p", name)
    end
    H.assert_error_code(db.create_index, "invalid_argument", db, "t", "p", nil, "age")
    for _, fn in ipairs({ 1, true, {}, "age >", "x = 1" }) do
      H.assert_error_code(db.create_index, "invalid_argument", db, "t", "p", "ix", fn)
    end
    H.assert_error_code(db.create_index, "invalid_argument", db, "t", "p", "ix")
    H.assert_error_code(db.create_index, "invalid_argument", db, "t", "p", "ix", "age", "")
    H.assert_error_code(db.create_index, "invalid_argument", db, "t", "", "ix", "age")
    H.assert_error_code(db.create_index, "invalid_argument", db, 1, "p", "ix", "age")
    H.assert_error_code(db.create_index, "not_initialized", db, "nope", "p", "ix", "age")
    H.assert_error_code(db.create_index, "invalid_argument", db.create_index, "t", "p", "ix", "age")
    db:save("t", "u", "snap", { age = 1 })
    H.assert_error_code(db.create_index, "type_mismatch", db, "t", "snap", "ix", "age")
    H.assert_error_code(db.create_index, "type_mismatch", db, "t", "snap", "ix", by_age)
    H.assert_error_code(db.query_index, "type_mismatch", db, "t", "snap", "ix")
    db:create_index("t", "p", "age", "age")
    local function bad(opts) H.assert_error_code(db.query_index, "invalid_argument", db, "t", "p", "age", opts) end
    bad({ from = true })
    bad({ to = {} })
    bad({ prefix = 1 })
    bad({ limit = -1 })
    bad({ reverse = 1 })
    bad({ filter = 1 })
    bad({ filter = "age >" })
    bad({ digest = "x" })
    bad({ nope = 1 })
    bad({ from = 0 / 0 })
    bad("x")
    assert.equal(1, #U.rows(db:query_index("t", "p", "age", { from = 40 })))
  end)

  it("a big collection: many-piece index trees stay ordered and sound", function()
    local items = {}
    for i = 1, 700 do items[("r%04d"):format(i)] = { n = (i * 7919) % 1000, s = ("s%03d"):format(i % 50) } end
    db:put_many("t", "u", "big", items)
    db:create_index("t", "big", "n", "n")
    db:create_index("t", "big", "s", function(v) return v.s end)
    local n_of = function(v) return v.n end
    local s_of = function(v) return v.s end
    assert.same(expected(items, n_of), indexed(db, "t", "big", "n"))
    for i = 1, 700, 13 do items[("r%04d"):format(i)] = { n = -i, s = "moved" } end
    db:put_many("t", "u", "big", items)
    for i = 2, 700, 17 do
      db:delete("t", "u", "big", ("r%04d"):format(i))
      items[("r%04d"):format(i)] = nil
    end
    assert.same(expected(items, n_of), indexed(db, "t", "big", "n"))
    assert.same(expected(items, s_of), indexed(db, "t", "big", "s"))
    assert.same({ "r0014", "r0027" }, U.firsts(db:query_index("t", "big", "n", { from = -27, to = -14 , reverse = true })))
    assert.same({}, db:verify())
  end)
end)

describe("peers: indexes and TTL across processes", function()
  it("a collection with an index and TTL written in one process is queried in another", function()
    local dir = H.tmpdir()
    local root = dir .. "/db"
    U.fresh(root, [[
      local mydb = require "mydb"; mydb.deprecation_warnings = false -- (the original order: no warning)
      local db = mydb.open(arg[1], { fsync = false })
      db:init("t")
      db._now = function() return 1000 end
      db:put_many("t", "w", "sessions", {
        s1 = { user = "ann", exp = 1500 }, s2 = { user = "bob", exp = 9000 },
        s3 = { user = "ann", exp = 9500 }, s4 = { user = "cy" },
      })
      db:set_ttl("t", "sessions", "exp")
      db:create_index("t", "sessions", "user", "user")
      db:create_index("t", "sessions", "exp", function(v) return v.exp end)
    ]])
    local out = U.fresh(root, [[
      local mydb = require "mydb"; mydb.deprecation_warnings = false -- (the original order: no warning)
      local db = mydb.open(arg[1], { fsync = false })
      db._now = function() return 2000 end
      local rows = {}
      for k, v, ik in db:query_index("t", "sessions", "user") do rows[#rows + 1] = k .. "=" .. ik end
      for k, v, ik in db:query_index("t", "sessions", "exp", { reverse = true }) do rows[#rows + 1] = k .. "@" .. ik end
      io.write(table.concat(rows, " "))
      -- an expression index and TTL need nothing to write; the function index does
      local ok, err = pcall(db.put, db, "t", "w", "sessions", "s5", { user = "dee", exp = 9999 })
      io.write(" | ", tostring(ok), " ", tostring(err and err.code))
      db:create_index("t", "sessions", "exp", function(v) return v.exp end)
      db:put("t", "w", "sessions", "s5", { user = "dee", exp = 9999 })
    ]])
    assert.equal("s3=ann s2=bob s4=cy s3@9500 s2@9000 | false invalid_argument", out)
    local db = mydb.open(root, { fsync = false })
    db._now = function() return 2000 end
    assert.same({ "s3", "s2", "s4", "s5" }, U.firsts(db:query_index("t", "sessions", "user")))
    local meta = U.collection_meta(db, root, "t", "sessions")
    assert.equal(4, meta.count)        -- s1 purged by the last write
    assert.equal(4, meta.indexes.user.count)
    assert.equal("exp", meta.ttl)
    assert.same({}, db:verify())
    db:close()
    H.rmrf(dir)
  end)
end)
