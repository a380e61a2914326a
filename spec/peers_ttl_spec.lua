-- Issue 7 §3: a collection's TTL field (db:set_ttl or the ttl_field open
-- option). Records whose field holds a time in the past are invisible to
-- every read and dropped from the next snapshot written. Time is controlled
-- through the handle's clock hook, db._now (Db:_now in init.lua).
local H = require "spec.helper"
local U = require "spec.peers_util"
local mydb = require "mydb"

-- These specs call set_ttl, create_index and drop_index in the original
-- order (user last), which mydb.argorder still reads: its warning is
-- silenced here (spec/argorder_spec.lua specs it).
setup(function() require("mydb").deprecation_warnings = false end)
teardown(function() require("mydb").deprecation_warnings = true end)

-- Every way of reading a collection, as {reader = list of visible keys}.
local function visible(db, tenant, entry)
  local out = {}
  local single = {}
  for _, k in ipairs({ "gone", "soon", "later", "none", "str", "tbl", "nan", "inf" }) do
    if db:get(tenant, entry, k) ~= nil then single[#single + 1] = k end
  end
  table.sort(single)
  out.get = single
  local all = {}
  for _, v in ipairs(db:get(tenant, entry)) do all[#all + 1] = v.id end
  out.get_all = all
  out.query = U.firsts(db:query(tenant, entry))
  out.query_rev = U.firsts(db:query(tenant, entry, { reverse = true }))
  out.records = U.firsts(db:records(tenant, entry))
  out.load = U.sorted_keys(db:load(tenant, entry))
  local scanned = {}
  for e, k in db:scan(tenant) do if e == entry then scanned[#scanned + 1] = k end end
  out.scan = scanned
  return out
end

local function expect_visible(db, tenant, entry, keys)
  local rev = {}
  for i = #keys, 1, -1 do rev[#rev + 1] = keys[i] end
  assert.same({ get = keys, get_all = keys, query = keys, query_rev = rev, records = keys,
                load = keys, scan = keys }, visible(db, tenant, entry))
end

local RECORDS = {
  gone = { id = "gone", exp = 1500 },      -- expires at 1500
  soon = { id = "soon", exp = 2500.5 },    -- at 2500.5 (a float)
  later = { id = "later", exp = 10 ^ 12 }, -- far future
  none = { id = "none" },                  -- no field: never expires
  str = { id = "str", exp = "100" },       -- not a number: never expires
  tbl = { id = "tbl", exp = { 1 } },       -- not a number: never expires
}

describe("peers: TTL", function()
  local S = H.use_store({ tenant = "t" })
  local db, now
  before_each(function()
    db = S.db
    now = 1000
    db._now = function() return now end
  end)

  local function count(entry) return U.collection_meta(db, S.root, "t", entry or "c").count end

  it("set_ttl: records whose field is in the past are invisible to every read", function()
    db:put_many("t", "u", "c", RECORDS)
    assert.is_true(db:set_ttl("t", "c", "exp"))
    assert.equal("exp", U.collection_meta(db, S.root, "t", "c").ttl)
    local all = { "gone", "later", "none", "soon", "str", "tbl" }
    expect_visible(db, "t", "c", all)
    now = 2000
    expect_visible(db, "t", "c", { "later", "none", "soon", "str", "tbl" })
    now = 2500.5 -- not yet: expired means strictly before now
    expect_visible(db, "t", "c", { "later", "none", "soon", "str", "tbl" })
    now = 3000
    expect_visible(db, "t", "c", { "later", "none", "str", "tbl" })
    assert.same({ "later" }, U.firsts(db:query("t", "c", { filter = function(_, v) return type(v.exp) == "number" end })))
    -- invisible, but still stored until the next write
    assert.equal(6, count())
    -- older versions are read with the same rule
    local d = db:get_digest("t", "c")
    assert.is_nil(db:get("t", "c", "gone", d))
    assert.same({ "later", "none", "str", "tbl" }, U.firsts(db:query("t", "c", { digest = d })))
    assert.same({ "later", "none", "str", "tbl" }, U.firsts(db:records("t", "c", d)))
  end)

  it("NaN, inf and non-number fields never expire; -inf has", function()
    db:put_many("t", "u", "c", {
      nan = { id = "nan", exp = 0 / 0 }, inf = { id = "inf", exp = math.huge },
      none = { id = "none", exp = false }, str = { id = "str", exp = "0" },
    })
    assert.is_true(db:set_ttl("t", "c", "exp"))
    assert.is_true(db:put("t", "u", "c", "gone", { id = "gone", exp = -math.huge }))
    now = 10 ^ 15
    expect_visible(db, "t", "c", { "inf", "nan", "none", "str" })
    db:put("t", "u", "c", "x", { id = "x" })
    assert.equal(5, count())
  end)

  it("the next write drops expired records from the snapshot", function()
    db:put_many("t", "u", "c", RECORDS)
    db:set_ttl("t", "c", "exp")
    assert.equal(6, count())
    now = 3000
    local events = {}
    db:on_change(function(ev) events[#events + 1] = ev end)
    assert.is_true(db:put("t", "u", "c", "new", { id = "new", exp = 5000 }))
    assert.equal(5, count()) -- 6 - gone - soon + new
    local stored = U.collection_meta(db, S.root, "t", "c")
    assert.equal("exp", stored.ttl)
    local old = db:history("t", "c")[2]
    assert.equal(6, U.collection_meta(db, S.root, "t", "c", old).count)
    -- the records are gone from the stored snapshot, not only hidden
    db:set_ttl("t", "c", nil)
    assert.is_nil(db:get("t", "c", "gone"))
    assert.is_nil(db:get("t", "c", "soon"))
    assert.same({ "later", "new", "none", "str", "tbl" }, U.firsts(db:query("t", "c")))
    -- the listener saw the put and two expiries, in key order
    local seen = {}
    for _, ev in ipairs(events) do seen[#seen + 1] = ev.action .. ":" .. tostring(ev.key) end
    assert.same({ "expire:gone", "put:new", "expire:soon" }, seen)
    local ex = events[1]
    assert.equal("t", ex.tenant)
    assert.equal("c", ex.entry)
    assert.same(RECORDS.gone, ex.old)
    assert.is_nil(ex.new)
    assert.equal("u", ex.user_id)
    assert.equal(db:history("t", "c")[2], ex.digest)
  end)

  it("a write to another key of a big collection purges too (many pieces)", function()
    local items = {}
    for i = 1, 400 do items[("k%04d"):format(i)] = { i = i, exp = (i % 4 == 0) and 1500 or 9999 } end
    db:put_many("t", "u", "big", items)
    assert.is_true(db:set_ttl("t", "big", "exp"))
    assert.equal(400, count("big"))
    now = 2000
    assert.equal(300, #db:get("t", "big"))
    assert.is_nil(db:get("t", "big", "k0004"))
    db:put("t", "u", "big", "k0001", { i = -1 })
    assert.equal(300, count("big"))
    assert.same({ i = -1 }, db:get("t", "big", "k0001"))
    now = 10000
    assert.equal(1, #db:get("t", "big"))
    db:delete("t", "u", "big", "k0001")
    assert.equal(0, count("big"))
    assert.same({}, db:verify())
  end)

  it("set_ttl purges what has already expired when it is set", function()
    local items = {}
    for i = 1, 200 do items[("k%03d"):format(i)] = { i = i, exp = (i % 3 == 0) and 500 or 5000 } end
    db:put_many("t", "u", "big", items)
    assert.is_true(db:set_ttl("t", "big", "exp"))
    assert.equal(134, count("big"))
    assert.equal(134, #db:get("t", "big"))
    assert.same({}, db:verify())
  end)

  it("delete of an expired key returns false; put re-creates it", function()
    db:put_many("t", "u", "c", RECORDS)
    db:set_ttl("t", "c", "exp")
    now = 2000
    assert.is_false(db:delete("t", "u", "c", "gone"))
    assert.is_nil(db:get("t", "c", "gone"))
    assert.is_true(db:put("t", "u", "c", "soon", { id = "soon", exp = 2100 }))
    assert.is_true(db:put("t", "u", "c", "gone", { id = "gone", exp = 9000 }))
    assert.same({ id = "gone", exp = 9000 }, db:get("t", "c", "gone"))
  end)

  it("set_ttl(nil) removes the TTL: records not yet purged are visible again", function()
    db:put_many("t", "u", "c", RECORDS)
    db:set_ttl("t", "c", "exp")
    now = 3000
    assert.is_nil(db:get("t", "c", "gone"))
    assert.is_true(db:set_ttl("t", "c", nil))
    assert.is_nil(U.collection_meta(db, S.root, "t", "c").ttl)
    expect_visible(db, "t", "c", { "gone", "later", "none", "soon", "str", "tbl" })
    assert.equal(6, count())
    -- later writes purge nothing
    db:put("t", "u", "c", "x", { id = "x" })
    assert.equal(7, count())
    assert.is_false(db:set_ttl("t", "c", false)) -- already none: nothing written
  end)

  it("set_ttl returns false when nothing changes; another field replaces it", function()
    db:put_many("t", "u", "c", RECORDS)
    assert.is_true(db:set_ttl("t", "c", "exp"))
    local n = #db:history("t", "c")
    assert.is_false(db:set_ttl("t", "c", "exp"))
    assert.equal(n, #db:history("t", "c"))
    assert.is_true(db:set_ttl("t", "c", "id", "admin"))
    assert.equal("admin", db:meta("t", "c").user_id)
    assert.equal("id", U.collection_meta(db, S.root, "t", "c").ttl)
    now = 10 ^ 13
    -- ids are strings: nothing expires under "id"
    assert.equal(6, #db:get("t", "c"))
  end)

  it("set_ttl on a missing entry creates an empty collection with the field", function()
    assert.is_true(db:set_ttl("t", "fresh", "exp"))
    assert.same({}, db:get("t", "fresh"))
    assert.equal("exp", U.collection_meta(db, S.root, "t", "fresh").ttl)
    db:put("t", "u", "fresh", "a", { exp = 1 })
    assert.is_nil(db:get("t", "fresh", "a"))
  end)

  it("is kept across versions and seen by a fresh process", function()
    db:put_many("t", "u", "c", RECORDS)
    db:set_ttl("t", "c", "exp")
    db:put("t", "u", "c", "x", { id = "x" })
    assert.equal("exp", U.collection_meta(db, S.root, "t", "c").ttl)
    local out = U.fresh(S.root, [[
      local db = require("mydb").open(arg[1], { fsync = false })
      db._now = function() return 3000 end
      local keys = {}
      for k in db:query("t", "c") do keys[#keys + 1] = k end
      io.write(table.concat(keys, ","), " ", tostring(db:get("t", "c", "gone")))
    ]])
    assert.equal("later,none,str,tbl,x nil", out)
  end)

  it("refuses bad arguments", function()
    db:put("t", "u", "c", "k", 1)
    db:save("t", "u", "snap", { a = 1 })
    for _, f in ipairs({ 1, true, {}, "", "a\0b", ("f"):rep(257) }) do
      H.assert_error_code(db.set_ttl, "invalid_argument", db, "t", "c", f)
    end
    H.assert_error_code(db.set_ttl, "invalid_argument", db, "t", "c", "exp", 5)
    H.assert_error_code(db.set_ttl, "invalid_argument", db, "t", "c", "exp", "")
    H.assert_error_code(db.set_ttl, "invalid_argument", db, "t", 1, "exp")
    H.assert_error_code(db.set_ttl, "invalid_argument", db, "t", "", "exp")
    H.assert_error_code(db.set_ttl, "invalid_argument", db, 1, "c", "exp")
    H.assert_error_code(db.set_ttl, "not_initialized", db, "nope", "c", "exp")
    H.assert_error_code(db.set_ttl, "type_mismatch", db, "t", "snap", "exp")
    H.assert_error_code(db.set_ttl, "invalid_argument", db.set_ttl, "t", "c", "exp")
    assert.equal(1, #db:history("t", "c"))
    assert.is_nil(U.collection_meta(db, S.root, "t", "c").ttl)
  end)
end)

describe("peers: the ttl_field open option", function()
  local dir, root, db, now, kept
  before_each(function()
    dir = H.tmpdir()
    root = dir .. "/db"
    now = 1000
    local plain = mydb.open(root, { fsync = false })
    plain:init("t")
    plain:put_many("t", "u", "c", RECORDS) -- written without TTL
    local items = {}
    for i = 1, 300 do items[("k%03d"):format(i)] = { i = i, exp = (i % 2 == 0) and 1500 or 9999 } end
    plain:put_many("t", "u", "big", items)
    if H.BACKEND == "memory" then kept = plain else plain:close() end -- (memory: the store goes with its last handle)
    db = mydb.open(root, { fsync = false, ttl_field = "exp" })
    db._now = function() return now end
  end)
  after_each(function()
    if kept then kept:close(); kept = nil end
    db:close()
    H.rmrf(dir)
  end)

  it("hides expired records of a collection never given set_ttl", function()
    expect_visible(db, "t", "c", { "gone", "later", "none", "soon", "str", "tbl" })
    now = 2000
    expect_visible(db, "t", "c", { "later", "none", "soon", "str", "tbl" })
    assert.is_nil(U.collection_meta(db, root, "t", "c").ttl)
    assert.equal(150, #db:get("t", "big"))
  end)

  it("the next write stores the field and drops expired records", function()
    now = 3000
    local events = {}
    db:on_change(function(ev) events[#events + 1] = ev.action .. ":" .. tostring(ev.key) end)
    db:put("t", "u", "c", "x", { id = "x" })
    local meta = U.collection_meta(db, root, "t", "c")
    assert.equal("exp", meta.ttl)
    assert.equal(5, meta.count)
    assert.same({ "expire:gone", "expire:soon", "put:x" }, events)
    -- a plain handle now sees the stored field too
    local plain = mydb.open(root, { fsync = false })
    plain._now = function() return 3000 end
    assert.same({ "later", "none", "str", "tbl", "x" }, U.firsts(plain:query("t", "c")))
    plain:close()
  end)

  it("a write that changes nothing stays a no-op (no version just to store the field)", function()
    local d = db:get_digest("t", "c")
    local lines, bytes = U.head(root, "t")
    assert.is_false(db:put("t", "u", "c", "none", { id = "none" }))
    assert.is_false(db:put_many("t", "u", "c", { str = { id = "str", exp = "100" } }))
    assert.is_false(db:delete("t", "u", "c", "absent"))
    assert.is_false(db:batch("t", "u", function(b) b:put("c", "none", { id = "none" }) end))
    assert.equal(d, db:get_digest("t", "c"))
    local lines2, bytes2 = U.head(root, "t")
    assert.equal(lines, lines2)
    assert.equal(bytes, bytes2)
    -- the next real write stores it
    assert.is_true(db:put("t", "u", "c", "y", { id = "y" }))
    assert.equal("exp", U.collection_meta(db, root, "t", "c").ttl)
  end)

  it("works on a collection of many pieces", function()
    now = 2000
    db:put("t", "u", "big", "k001", { i = 1 })
    local meta = U.collection_meta(db, root, "t", "big")
    assert.equal(150, meta.count)
    assert.equal("exp", meta.ttl)
    assert.same({}, db:verify())
  end)

  it("refuses bad values", function()
    for _, v in ipairs({ 1, true, "", {} }) do
      H.assert_error_code(mydb.open, "invalid_argument", root, { ttl_field = v })
    end
  end)
end)
