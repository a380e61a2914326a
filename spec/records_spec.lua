-- Record collections: put, put_many, get, records, load on a collection,
-- type mismatches, a 5,000-record collection and the prolly tree's shape
-- (issue 2 §3, §5; doc/FORMAT.md "Record collections").
local H = require "spec.helper"
local mydb = require "mydb"

-- The {count=, root=} of a collection snapshot, read from its object file.
local function collection_of(S, tenant, entry, digest)
  return H.collection_of(S.root, tenant, digest or S.db:get_digest(tenant, entry))
end

local function check_tree(S, tenant, root, count)
  return H.check_tree(S.root, tenant, root, count)
end

describe("mydb.Db", function()
  local S = H.use_store({ tenant = "t" })

  describe("put", function()
    it("returns true for a new record and stores it", function()
      assert.is_true(S.db:put("t", "u", "users", "alice", { age = 30 }))
      assert.same({ age = 30 }, S.db:get("t", "users", "alice"))
    end)

    it("returns false for an identical value and writes no version", function()
      assert.is_true(S.db:put("t", "u", "users", "alice", { age = 30, tags = { "a" } }))
      local d = S.db:get_digest("t", "users")
      local n = #H.object_names(S.root, "t")
      assert.is_false(S.db:put("t", "u", "users", "alice", { tags = { "a" }, age = 30 }))
      assert.is_false(S.db:put("t", "other user", "users", "alice", { age = 30, tags = { "a" } }))
      assert.equal(d, S.db:get_digest("t", "users"))
      assert.equal(1, #S.db:history("t", "users"))
      assert.equal(n, #H.object_names(S.root, "t"))
    end)

    it("compares with the latest version even when another handle wrote it", function()
      local db2 = S.open_again()
      assert.is_true(S.db:put("t", "u", "c", "k", 1))
      assert.is_true(db2:put("t", "u", "c", "k", 2))
      assert.is_true(S.db:put("t", "u", "c", "k", 1))
      assert.is_false(db2:put("t", "u", "c", "k", 1))
      assert.equal(1, db2:get("t", "c", "k"))
      assert.equal(3, #S.db:history("t", "c"))
    end)

    it("returns true when only the number type changes (1 vs 1.0)", function()
      assert.is_true(S.db:put("t", "u", "c", "k", 1))
      assert.is_true(S.db:put("t", "u", "c", "k", 1.0))
      assert.equal("float", math.type(S.db:get("t", "c", "k")))
      assert.is_false(S.db:put("t", "u", "c", "k", 1.0))
      assert.equal(2, #S.db:history("t", "c"))
    end)

    it("replaces a record and keeps the old version readable", function()
      S.db:put("t", "u", "c", "k", "old")
      local d1 = S.db:get_digest("t", "c")
      S.db:put("t", "u", "c", "k", "new")
      assert.equal("new", S.db:get("t", "c", "k"))
      assert.equal("old", S.db:get("t", "c", "k", d1))
      assert.same({ "old" }, S.db:get("t", "c", nil, d1))
    end)

    it("accepts an empty key and a 1024-byte key", function()
      local long = string.rep("k", 1024)
      assert.is_true(S.db:put("t", "u", "c", "", "empty"))
      assert.is_true(S.db:put("t", "u", "c", long, "long"))
      assert.equal("empty", S.db:get("t", "c", ""))
      assert.equal("long", S.db:get("t", "c", long))
      assert.same({ "empty", "long" }, S.db:get("t", "c"))
    end)

    it("accepts non-UTF-8 keys", function()
      assert.is_true(S.db:put("t", "u", "c", "\255\254", 1))
      assert.is_true(S.db:put("t", "u", "c", "caf\u{e9}", 2))
      assert.equal(1, S.db:get("t", "c", "\255\254"))
      assert.equal(2, S.db:get("t", "c", "caf\u{e9}"))
      local keys = {}
      for k in S.db:records("t", "c") do keys[#keys + 1] = k end
      assert.same({ "caf\u{e9}", "\255\254" }, keys)
    end)

    it("stores false as a record distinct from an absent key", function()
      assert.is_true(S.db:put("t", "u", "c", "off", false))
      assert.is_false(S.db:get("t", "c", "off"))
      assert.is_nil(S.db:get("t", "c", "absent"))
      assert.is_false(S.db:put("t", "u", "c", "off", false))
      assert.same({ false }, S.db:get("t", "c"))
    end)

    it("refuses a nil value with invalid_argument", function()
      H.assert_error_code(function() S.db:put("t", "u", "c", "k", nil) end, "invalid_argument")
      assert.is_false(S.db:exists("t", "c"))
    end)

    it("refuses keys that are not strings of at most 1024 bytes without NUL", function()
      for _, key in ipairs({ 1, true, {}, string.rep("k", 1025), "a\0b" }) do
        local ok, err = pcall(H.assert_error_code, function() S.db:put("t", "u", "c", key, 1) end,
          "invalid_argument")
        assert(ok, ("key %q: %s"):format(tostring(key), tostring(err)))
      end
      H.assert_error_code(function() S.db:put("t", "u", "c", nil, 1) end, "invalid_argument")
      assert.is_false(S.db:exists("t", "c"))
    end)

    it("checks tenant, user and entry of every put, after good ones too", function()
      assert.is_true(S.db:put("t", "u", "c", "k", 1))
      local bad = {
        { "../t", "u", "c", "invalid_argument" }, { 5, "u", "c", "invalid_argument" },
        { "t", "", "c", "invalid_argument" }, { "t", 7, "c", "invalid_argument" },
        { "t", "u", "", "invalid_argument" }, { "t", "u", "c\0d", "invalid_argument" },
        { "t", "u", ("e"):rep(1025), "invalid_argument" }, { "nope", "u", "c", "not_initialized" },
      }
      for _, b in ipairs(bad) do
        H.assert_error_code(function() S.db:put(b[1], b[2], b[3], "k2", 2) end, b[4])
        assert.is_true(S.db:put("t", "u", "c", "k", { n = _ })) -- a good one between
      end
      assert.is_nil(S.db:get("t", "c", "k2"))
    end)
  end)

  describe("get", function()
    before_each(function()
      S.db:put_many("t", "u", "c", { b = "B", a = "A", ["10"] = "ten", ["9"] = "nine", Z = "zed" })
    end)

    it("returns one record by key", function()
      assert.equal("A", S.db:get("t", "c", "a"))
    end)

    it("returns nil for a missing key", function()
      assert.is_nil(S.db:get("t", "c", "nope"))
      assert.is_nil(S.db:get("t", "c", ""))
    end)

    it("returns every value in bytewise key order without a key", function()
      assert.same({ "ten", "nine", "zed", "A", "B" }, S.db:get("t", "c"))
    end)

    it("reads an older version by digest", function()
      local d1 = S.db:get_digest("t", "c")
      S.db:put("t", "u", "c", "a", "A2")
      S.db:put("t", "u", "c", "c", "C")
      assert.equal("A", S.db:get("t", "c", "a", d1))
      assert.is_nil(S.db:get("t", "c", "c", d1))
      assert.same({ "ten", "nine", "zed", "A", "B" }, S.db:get("t", "c", nil, d1))
      assert.same({ "ten", "nine", "zed", "A2", "B", "C" }, S.db:get("t", "c"))
    end)

    it("raises not_found for a missing entry", function()
      H.assert_error_code(function() S.db:get("t", "missing") end, "not_found")
      H.assert_error_code(function() S.db:get("t", "missing", "k") end, "not_found")
    end)

    it("refuses a malformed digest", function()
      H.assert_error_code(function() S.db:get("t", "c", "a", "nothex") end, "invalid_argument")
    end)
  end)

  describe("put_many", function()
    local Rec = {}
    Rec.__index = Rec
    function Rec.new(id, v) return setmetatable({ id = id, v = v }, Rec) end
    function Rec:get_key() return self.id end

    before_each(function() mydb.register_class("Rec", Rec) end)
    after_each(function() mydb.unregister_class("Rec") end)

    it("stores a map of key -> value as one version", function()
      assert.is_true(S.db:put_many("t", "u", "c", { a = 1, b = { 2 }, c = "three" }))
      assert.equal(1, #S.db:history("t", "c"))
      assert.same({ 1, { 2 }, "three" }, S.db:get("t", "c"))
    end)

    it("stores a list of objects under their get_key()", function()
      assert.is_true(S.db:put_many("t", "u", "c", { Rec.new("x", 1), Rec.new("a", 2) }))
      local a = S.db:get("t", "c", "a")
      assert.are.equal(Rec, getmetatable(a))
      assert.equal(2, a.v)
      assert.equal("a", a:get_key())
      assert.equal("x", S.db:get("t", "c", "x").id)
    end)

    it("returns false when nothing changes and writes no version", function()
      assert.is_true(S.db:put_many("t", "u", "c", { a = 1, b = 2 }))
      local d = S.db:get_digest("t", "c")
      assert.is_false(S.db:put_many("t", "u", "c", { a = 1, b = 2 }))
      assert.is_false(S.db:put_many("t", "u", "c", { b = 2 }))
      assert.is_false(S.db:put_many("t", "u", "c", {}))
      assert.equal(d, S.db:get_digest("t", "c"))
      assert.equal(1, #S.db:history("t", "c"))
    end)

    it("tells an equal put_many from a changing one among many records (both update paths)", function()
      -- 300 records; then batches of 20 (merged into the leaves) and of
      -- 300 (the whole tree rebuilt): equal ones change nothing, one new
      -- value among equal ones makes one version
      local function count()
        local n = 0
        for _ in S.db:records("t", "c") do n = n + 1 end
        return n
      end
      local all = {}
      for i = 1, 300 do all[("k%03d"):format(i)] = { n = i } end
      assert.is_true(S.db:put_many("t", "u", "c", all))
      local some = {}
      for i = 1, 20 do some[("k%03d"):format(i * 7)] = { n = i * 7 } end
      for _, batch in ipairs { some, all } do
        local d = S.db:get_digest("t", "c")
        local versions = #S.db:history("t", "c")
        assert.is_false(S.db:put_many("t", "u", "c", batch))
        assert.equal(d, S.db:get_digest("t", "c"))
        local k = next(batch)
        local was = batch[k]
        batch[k] = { n = -1 }
        assert.is_true(S.db:put_many("t", "u", "c", batch))
        batch[k] = was
        assert.equal(versions + 1, #S.db:history("t", "c"))
        assert.equal(300, count())
        assert.same({ n = -1 }, S.db:get("t", "c", k))
        assert.is_true(S.db:put_many("t", "u", "c", { [k] = was })) -- (as it was)
      end
      local new = { k999 = { n = 999 }, k001 = { n = 1 } }
      assert.is_true(S.db:put_many("t", "u", "c", new))
      assert.equal(301, count())
    end)

    it("returns false for an empty map on a new entry and creates nothing", function()
      assert.is_false(S.db:put_many("t", "u", "c", {}))
      assert.is_false(S.db:exists("t", "c"))
    end)

    it("encodes each record on its own: a table shared by two records is copied into both", function()
      local s = { 1, 2 }
      assert.is_true(S.db:put_many("t", "u", "c", { a = s, b = s, c = { s, s } }))
      local db = S.open_again()
      assert.same({ 1, 2 }, db:get("t", "c", "b"))
      assert.same({ 1, 2 }, db:get("t", "c", "a"))
      local c = db:get("t", "c", "c")
      assert.are.equal(c[1], c[2])
      assert.same({ 1, 2 }, c[1])
    end)

    it("returns true when one of many changes", function()
      S.db:put_many("t", "u", "c", { a = 1, b = 2 })
      assert.is_true(S.db:put_many("t", "u", "c", { a = 1, b = 3 }))
      assert.same({ 1, 3 }, S.db:get("t", "c"))
      assert.equal(2, #S.db:history("t", "c"))
    end)

    describe("with bad items", function()
      before_each(function() S.db:put("t", "u", "c", "seed", 0) end)

      local function assert_refused(items, what)
        local d = S.db:get_digest("t", "c")
        local ok, err = pcall(H.assert_error_code,
          function() S.db:put_many("t", "u", "c", items) end, "invalid_argument")
        assert(ok, what .. ": " .. tostring(err))
        assert.equal(d, S.db:get_digest("t", "c"), what)
        assert.same({ 0 }, S.db:get("t", "c"), what)
      end

      it("refuses items that are not a table", function()
        assert_refused("a=1", "a string")
        assert_refused(42, "a number")
        assert_refused(nil, "nil")
        assert_refused(true, "a boolean")
      end)

      it("refuses a table mixing a list and a map", function()
        assert_refused({ Rec.new("a", 1), b = 2 }, "list + string key")
        assert_refused({ Rec.new("a", 1), [5] = Rec.new("b", 2) }, "list + far integer key")
      end)

      it("refuses list items without a usable get_key()", function()
        assert_refused({ { id = "a" } }, "a plain table")
        assert_refused({ "a", "b" }, "strings")
        assert_refused({ 1 }, "a number")
        assert_refused({ Rec.new("a", 1), 7 }, "a number after an object")
        local Bad = { __index = { get_key = function() error("boom") end } }
        assert_refused({ setmetatable({}, Bad) }, "get_key raising")
      end)

      it("refuses get_key() results that are not valid keys", function()
        assert_refused({ Rec.new(1, "x") }, "an integer key")
        assert_refused({ Rec.new(nil, "x") }, "a nil key")
        assert_refused({ Rec.new("a\0b", "x") }, "a key with NUL")
        assert_refused({ Rec.new(string.rep("k", 1025), "x") }, "a 1025-byte key")
      end)

      it("refuses map keys that are not strings", function()
        assert_refused({ [true] = 1 }, "a boolean key")
        assert_refused({ [2.5] = 1 }, "a float key")
        assert_refused({ [{}] = 1 }, "a table key")
        assert_refused({ a = 1, [true] = 2 }, "a string and a boolean key")
      end)
    end)
  end)

  describe("records", function()
    before_each(function()
      S.db:put_many("t", "u", "c", { c = 3, a = 1, b = 2, d = 4, e = 5 })
    end)

    it("yields key, value in key order", function()
      local seen = {}
      for k, v in S.db:records("t", "c") do seen[#seen + 1] = k .. "=" .. v end
      assert.same({ "a=1", "b=2", "c=3", "d=4", "e=5" }, seen)
    end)

    it("stops cleanly on break and leaves the entry writable", function()
      local seen = {}
      for k in S.db:records("t", "c") do
        seen[#seen + 1] = k
        if #seen == 2 then break end
      end
      assert.same({ "a", "b" }, seen)
      assert.is_true(S.db:put("t", "u", "c", "f", 6))
      local out, ok = H.run_lua([[
        local db = require("mydb").open(..., { fsync = false })
        io.write(tostring(db:put("t", "child", "c", "g", 7)))
      ]], { args = { S.root } })
      assert.is_true(ok, out)
      assert.equal("true", out)
      assert.equal(7, S.db:get("t", "c", "g"))
    end)

    it("raises an error met mid-iteration (unknown_tag), never skipping the record", function()
      local Cls = {}
      mydb.register_class("GoneLater", Cls)
      S.db:put("t", "u", "c", "cc", setmetatable({ x = 1 }, Cls))
      mydb.unregister_class("GoneLater")
      local seen = {}
      local ok, err = pcall(function()
        for k in S.open_again():records("t", "c") do seen[#seen + 1] = k end
      end)
      assert.is_false(ok)
      assert.equal("unknown_tag", type(err) == "table" and err.code or tostring(err))
      -- records before it may or may not have been yielded (a leaf is
      -- decoded at a time), but never "cc" or one after it
      assert.is_true(#seen <= 3)
      for i, k in ipairs(seen) do assert.equal(({ "a", "b", "c" })[i], k) end
    end)

    it("raises closed when the handle is closed during an iteration", function()
      local items = {}
      for i = 1, 3000 do items[("k%04d"):format(i)] = i end -- several leaves
      S.db:put_many("t", "u", "big", items)
      local db = S.open_again({ fsync = false, cache_bytes = 0 })
      local it = db:records("t", "big")
      assert.equal("k0001", (it()))
      db:close()
      local ok, err = pcall(function() for _ in it do end end)
      assert.is_false(ok)
      assert.equal("closed", type(err) == "table" and err.code or tostring(err))
    end)

    it("iterates an older version by digest", function()
      local d1 = S.db:get_digest("t", "c")
      S.db:put("t", "u", "c", "aa", 11)
      local keys = {}
      for k in S.db:records("t", "c", d1) do keys[#keys + 1] = k end
      assert.same({ "a", "b", "c", "d", "e" }, keys)
    end)
  end)

  describe("load on a collection", function()
    it("returns the map of all records", function()
      S.db:put_many("t", "u", "c", { a = 1, b = { x = true } })
      S.db:put("t", "u", "c", "c", 3.5)
      assert.same({ a = 1, b = { x = true }, c = 3.5 }, S.db:load("t", "c"))
    end)

    it("returns an older version by digest", function()
      S.db:put("t", "u", "c", "a", 1)
      local d1 = S.db:get_digest("t", "c")
      S.db:put("t", "u", "c", "b", 2)
      assert.same({ a = 1 }, S.db:load("t", "c", d1))
    end)
  end)

  describe("mixing save and put on one entry", function()
    local function snapshot_state(entry)
      return S.db:get_digest("t", entry), #H.object_names(S.root, "t")
    end

    it("makes put after save raise type_mismatch and writes nothing", function()
      S.db:save("t", "u", "e", { a = 1 })
      local d, n = snapshot_state("e")
      H.assert_error_code(function() S.db:put("t", "u", "e", "k", 1) end, "type_mismatch")
      H.assert_error_code(function() S.db:put_many("t", "u", "e", { k = 1 }) end, "type_mismatch")
      assert.equal(d, S.db:get_digest("t", "e"))
      assert.equal(n, #H.object_names(S.root, "t"))
      assert.same({ a = 1 }, S.db:load("t", "e"))
    end)

    it("makes save after put raise type_mismatch and writes nothing", function()
      S.db:put("t", "u", "c", "k", 1)
      local d, n = snapshot_state("c")
      H.assert_error_code(function() S.db:save("t", "u", "c", { k = 2 }) end, "type_mismatch")
      assert.equal(d, S.db:get_digest("t", "c"))
      assert.equal(n, #H.object_names(S.root, "t"))
      assert.equal(1, S.db:get("t", "c", "k"))
      assert.equal(1, #S.db:history("t", "c"))
    end)

    it("makes get and records on a snapshot entry raise type_mismatch", function()
      S.db:save("t", "u", "e", { k = 1 })
      H.assert_error_code(function() S.db:get("t", "e", "k") end, "type_mismatch")
      H.assert_error_code(function() S.db:get("t", "e") end, "type_mismatch")
      H.assert_error_code(function() S.db:records("t", "e") end, "type_mismatch")
    end)

    it("makes put with an identical-looking value on a snapshot still raise type_mismatch", function()
      S.db:save("t", "u", "e", { k = 1 })
      H.assert_error_code(function() S.db:put("t", "u", "e", "k", 1) end, "type_mismatch")
    end)
  end)

  describe("a large collection", function()
    it("holds 5,000 records from put_many and 200 single puts exactly", function()
      local items, expected = {}, {}
      for i = 1, 5000 do
        local k = ("user:%05d"):format(i)
        items[k] = { id = i, name = "n" .. i, score = i * 0.5 }
        expected[k] = items[k]
      end
      assert.is_true(S.db:put_many("t", "u", "big", items))
      -- 100 replaced records, 100 new ones
      for i = 1, 200 do
        local k = i <= 100 and ("user:%05d"):format(i * 37) or ("new:%04d"):format(i)
        local v = { id = i, replaced = i <= 100 }
        assert.is_true(S.db:put("t", "u", "big", k, v), k)
        expected[k] = v
      end
      local keys = {}
      for k in pairs(expected) do keys[#keys + 1] = k end
      table.sort(keys)
      assert.equal(5100, #keys)

      local all = S.db:get("t", "big")
      assert.equal(5100, #all)
      for i, k in ipairs(keys) do
        local ok, why = H.deep_equal(expected[k], all[i])
        assert(ok, k .. ": " .. tostring(why))
      end
      local i = 0
      for k, v in S.db:records("t", "big") do
        i = i + 1
        assert.equal(keys[i], k)
        assert(H.deep_equal(expected[k], v), k)
      end
      assert.equal(5100, i)
      for n = 1, #keys, 97 do
        assert(H.deep_equal(expected[keys[n]], S.db:get("t", "big", keys[n])), keys[n])
      end
      assert.equal(201, #S.db:history("t", "big"))

      local info = collection_of(S, "t", "big")
      assert.equal(5100, info.count)
      local records, height = check_tree(S, "t", info.root, 5100)
      assert.equal(5100, #records)
      assert.is_true(height >= 1, "5,100 records should need more than one leaf")

      -- and a fresh process reads the same thing
      local out, ok = H.run_lua([[
        local db = require("mydb").open(..., { fsync = false })
        local n, sum = 0, 0
        for k, v in db:records("t", "big") do n = n + 1 sum = sum + v.id end
        io.write(n, " ", sum)
      ]], { args = { S.root } })
      assert.is_true(ok, out)
      local sum = 0
      for _, k in ipairs(keys) do sum = sum + expected[k].id end
      assert.equal("5100 " .. sum, out)
    end)

    it("gives the same root for the same records whatever the order of building", function()
      local N = 3000
      local all = {}
      for i = 1, N do all[("k%05d"):format((i * 7919) % 100000)] = i end
      -- A: one put_many
      S.db:put_many("t", "u", "A", all)
      -- B: put_many in chunks of 250, keys in descending order, with a
      -- first pass of wrong values that are then overwritten
      local keys = {}
      for k in pairs(all) do keys[#keys + 1] = k end
      table.sort(keys, function(x, y) return x > y end)
      for pass = 1, 2 do
        for start = 1, #keys, 250 do
          local chunk = {}
          for j = start, math.min(start + 249, #keys) do
            chunk[keys[j]] = pass == 1 and "wrong" or all[keys[j]]
          end
          S.db:put_many("t", "u", "B", chunk)
        end
      end
      local a = collection_of(S, "t", "A")
      local b = collection_of(S, "t", "B")
      assert.equal(N, a.count)
      assert.equal(N, b.count)
      assert.equal(H.canon(a.root), H.canon(b.root))
      check_tree(S, "t", a.root, N)
    end)

    it("gives the same root from single puts in shuffled order as from one put_many", function()
      local all, keys = {}, {}
      for i = 1, 120 do
        local k = ("item%03d"):format(i)
        all[k] = { i }
        keys[#keys + 1] = k
      end
      -- deterministic shuffle
      local x = 42
      for i = #keys, 2, -1 do
        x = (x * 1103515245 + 12345) % 2147483648
        local j = x % i + 1
        keys[i], keys[j] = keys[j], keys[i]
      end
      for _, k in ipairs(keys) do S.db:put("t", "u", "single", k, all[k]) end
      S.db:put_many("t", "u", "many", all)
      local a = collection_of(S, "t", "single")
      local b = collection_of(S, "t", "many")
      assert.equal(120, a.count)
      assert.equal(H.canon(a.root), H.canon(b.root))
      check_tree(S, "t", a.root, 120)
    end)
  end)
end)
