-- Snapshots: save, load, history, get_digest, exists, meta, and the stored
-- object files (issue 2 §2, §3, §4 "canonical"; doc/FORMAT.md).
local H = require "spec.helper"
local cjson = require "cjson"
local core = require "mydb.core"

local DATE_PATTERN = "^%d%d%d%d%d%d%d%d %d%d:%d%d:%d%d [+-]%d%d%d%d$"

local function is_digest(s)
  return type(s) == "string" and #s == 64 and s:match("^[0-9a-f]+$") ~= nil
end

-- The object bytes with the __date__ value blanked, to compare two objects
-- written at possibly different seconds.
local function without_date(bytes)
  local n
  bytes, n = bytes:gsub('"__date__":"[^"]*"', '"__date__":"X"', 1)
  assert(n == 1, "object has no __date__: " .. bytes)
  return bytes
end

describe("mydb.Db", function()
  local S = H.use_store({ tenant = "t" })

  describe("save", function()
    it("returns the 64-hex digest of the new version", function()
      local d = S.db:save("t", "alice", "config", { theme = "dark" })
      assert.is_true(is_digest(d), tostring(d))
      assert.equal(d, S.db:get_digest("t", "config"))
    end)

    it("returns a new digest for each changed version", function()
      local d1 = S.db:save("t", "u", "e", { v = 1 })
      local d2 = S.db:save("t", "u", "e", { v = 2 })
      assert.are_not.equal(d1, d2)
      assert.equal(d2, S.db:get_digest("t", "e"))
    end)

    it("makes a new version even when the value is unchanged (the parent differs)", function()
      local d1 = S.db:save("t", "u", "e", { v = 1 })
      local d2 = S.db:save("t", "u", "e", { v = 1 })
      assert.are_not.equal(d1, d2)
      assert.same({ d2, d1 }, S.db:history("t", "e"))
    end)

    describe("with bad arguments", function()
      it("refuses a user id that is not a non-empty UTF-8 string", function()
        for _, user in ipairs({ 1, true, {}, "", "\255\254", "a\0b", string.rep("u", 257) }) do
          local ok, err = pcall(H.assert_error_code, function() S.db:save("t", user, "e", 1) end,
            "invalid_argument")
          assert(ok, ("user %q: %s"):format(tostring(user), tostring(err)))
        end
        local ok, err = pcall(H.assert_error_code, function() S.db:save("t", nil, "e", 1) end,
          "invalid_argument")
        assert(ok, "nil user: " .. tostring(err))
        assert.is_false(S.db:exists("t", "e"))
      end)

      it("refuses an entry that is not a 1 to 1024 byte string without NUL", function()
        for _, entry in ipairs({ 1, true, {}, "", "a\0b", string.rep("e", 1025) }) do
          local ok, err = pcall(H.assert_error_code, function() S.db:save("t", "u", entry, 1) end,
            "invalid_argument")
          assert(ok, ("entry %q: %s"):format(tostring(entry), tostring(err)))
        end
        assert.same({}, H.object_names(S.root, "t"))
      end)

      it("accepts a 1024-byte entry name and odd characters", function()
        for _, entry in ipairs({ string.rep("e", 1024), "a/b", "../x", "with \"quotes\"", "new\nline" }) do
          S.db:save("t", "u", entry, entry)
          assert.equal(entry, S.db:load("t", entry))
        end
      end)
    end)
  end)

  describe("load", function()
    it("returns the latest value", function()
      S.db:save("t", "u", "e", { v = 1 })
      S.db:save("t", "u", "e", { v = 2 })
      assert.same({ v = 2 }, S.db:load("t", "e"))
    end)

    it("returns an older version by its digest", function()
      local d1 = S.db:save("t", "u", "e", { v = 1, name = "first" })
      S.db:save("t", "u", "e", { v = 2 })
      assert.same({ v = 1, name = "first" }, S.db:load("t", "e", d1))
    end)

    it("returns the value without metadata", function()
      S.db:save("t", "u", "e", { a = 1 })
      local v = S.db:load("t", "e")
      assert.is_nil(v.__parent__)
      assert.is_nil(v.__user_id__)
      assert.is_nil(v.__date__)
      assert.same({ a = 1 }, v)
    end)

    it("returns a fresh table each time", function()
      S.db:save("t", "u", "e", { a = 1 })
      local v1 = S.db:load("t", "e")
      v1.a = 99
      assert.same({ a = 1 }, S.db:load("t", "e"))
    end)

    it("raises not_found for a missing entry", function()
      H.assert_error_code(function() S.db:load("t", "missing") end, "not_found")
    end)

    it("raises not_found for a well-formed digest that was never stored", function()
      S.db:save("t", "u", "e", 1)
      H.assert_error_code(function() S.db:load("t", "e", string.rep("0", 64)) end, "not_found")
    end)

    it("refuses digests that are not 64 lowercase hex characters", function()
      local d = S.db:save("t", "u", "e", 1)
      for _, bad in ipairs({ "", "abc", d:sub(1, 63), d .. "0", d:upper(), string.rep("g", 64),
        ("z"):rep(64), 42, true, {} }) do
        local ok, err = pcall(H.assert_error_code, function() S.db:load("t", "e", bad) end,
          "invalid_argument")
        assert(ok, ("digest %q: %s"):format(tostring(bad), tostring(err)))
      end
    end)

    it("reads what another handle wrote", function()
      local db2 = S.open_again()
      db2:save("t", "u", "e", { from = "db2" })
      assert.same({ from = "db2" }, S.db:load("t", "e"))
      db2:save("t", "u", "e", { from = "db2 again" })
      assert.same({ from = "db2 again" }, S.db:load("t", "e"))
    end)
  end)

  describe("history", function()
    it("lists digests newest first", function()
      local ds = {}
      for i = 1, 5 do ds[i] = S.db:save("t", "u", "e", { v = i }) end
      assert.same({ ds[5], ds[4], ds[3], ds[2], ds[1] }, S.db:history("t", "e"))
    end)

    it("starts from a given digest", function()
      local ds = {}
      for i = 1, 5 do ds[i] = S.db:save("t", "u", "e", { v = i }) end
      assert.same({ ds[3], ds[2], ds[1] }, S.db:history("t", "e", ds[3]))
      assert.same({ ds[1] }, S.db:history("t", "e", ds[1]))
    end)

    it("stops at max_items", function()
      local ds = {}
      for i = 1, 5 do ds[i] = S.db:save("t", "u", "e", { v = i }) end
      assert.same({ ds[5], ds[4] }, S.db:history("t", "e", nil, 2))
      assert.same({ ds[4] }, S.db:history("t", "e", ds[4], 1))
      assert.same({ ds[5], ds[4], ds[3], ds[2], ds[1] }, S.db:history("t", "e", nil, 100))
    end)

    it("returns at most 1000 digests by default", function()
      local first, last
      for i = 1, 1003 do
        local d = S.db:save("t", "u", "e", i)
        if i == 1 then first = d end
        last = d
      end
      local h = S.db:history("t", "e")
      assert.equal(1000, #h)
      assert.equal(last, h[1])
      assert.equal(1003, #S.db:history("t", "e", nil, 2000))
      assert.equal(first, S.db:history("t", "e", nil, 2000)[1003])
      -- the 1000th newest is version 4
      assert.equal(4, S.db:load("t", "e", h[1000]))
    end)

    it("refuses a max_items that is not a positive integer", function()
      S.db:save("t", "u", "e", 1)
      for _, bad in ipairs({ 0, -1, 1.5, 2.0, "2", true, {} }) do
        local ok, err = pcall(H.assert_error_code, function() S.db:history("t", "e", nil, bad) end,
          "invalid_argument")
        assert(ok, ("max_items %s: %s"):format(tostring(bad), tostring(err)))
      end
    end)

    it("refuses a malformed digest", function()
      S.db:save("t", "u", "e", 1)
      H.assert_error_code(function() S.db:history("t", "e", "abc") end, "invalid_argument")
    end)

    it("raises not_found for a missing entry", function()
      H.assert_error_code(function() S.db:history("t", "missing") end, "not_found")
    end)

    it("works for a record collection", function()
      S.db:put("t", "u", "c", "a", 1)
      S.db:put("t", "u", "c", "b", 2)
      local h = S.db:history("t", "c")
      assert.equal(2, #h)
      assert.equal(S.db:get_digest("t", "c"), h[1])
    end)
  end)

  describe("get_digest", function()
    it("returns nil for a missing entry", function()
      assert.is_nil(S.db:get_digest("t", "missing"))
    end)

    it("returns the latest digest", function()
      S.db:save("t", "u", "e", 1)
      local d2 = S.db:save("t", "u", "e", 2)
      assert.equal(d2, S.db:get_digest("t", "e"))
    end)
  end)

  describe("exists", function()
    it("is false before the first save and true after", function()
      assert.is_false(S.db:exists("t", "e"))
      S.db:save("t", "u", "e", false)
      assert.is_true(S.db:exists("t", "e"))
      assert.is_false(S.db:exists("t", "other"))
    end)

    it("is true for a saved nil value", function()
      S.db:save("t", "u", "e", nil)
      assert.is_true(S.db:exists("t", "e"))
      assert.is_nil(S.db:load("t", "e"))
    end)

    it("is true for a record collection", function()
      S.db:put("t", "u", "c", "k", 1)
      assert.is_true(S.db:exists("t", "c"))
    end)
  end)

  describe("meta", function()
    it("describes the first version: no parent, the user and the date", function()
      local before = os.date("%Y%m%d %H:%M:%S %z")
      local d = S.db:save("t", "alice", "e", { a = 1 })
      local after = os.date("%Y%m%d %H:%M:%S %z")
      local m = S.db:meta("t", "e")
      assert.equal(d, m.digest)
      assert.is_nil(m.parent)
      assert.equal("alice", m.user_id)
      assert.is_string(m.date)
      assert.truthy(m.date:match(DATE_PATTERN), m.date)
      assert.is_true(m.date >= before and m.date <= after, m.date)
      local keys = {}
      for k in pairs(m) do keys[#keys + 1] = k end
      table.sort(keys)
      assert.same({ "date", "digest", "parents", "user_id" }, keys)
      assert.same({}, m.parents) -- (a merge's version: {ours, theirs})
    end)

    it("names the parent of a later version", function()
      local d1 = S.db:save("t", "alice", "e", 1)
      local d2 = S.db:save("t", "bob", "e", 2)
      local m = S.db:meta("t", "e")
      assert.equal(d2, m.digest)
      assert.equal(d1, m.parent)
      assert.same({ d1 }, m.parents)
      assert.equal("bob", m.user_id)
      local m1 = S.db:meta("t", "e", d1)
      assert.equal(d1, m1.digest)
      assert.is_nil(m1.parent)
      assert.equal("alice", m1.user_id)
    end)

    it("writes the date in local time with its UTC offset", function()
      for tz, offset in pairs({ ["XYZ-5:30"] = "+0530", ["ABC+3"] = "-0300", ["UTC0"] = "+0000" }) do
        local out, ok = H.run_lua([[
          local db = require("mydb").open(..., { fsync = false })
          local before = os.date("%Y%m%d %H:%M:%S %z")
          db:save("t", "u", "tz", 1)
          local after = os.date("%Y%m%d %H:%M:%S %z")
          local date = db:meta("t", "tz").date
          io.write(date, "|", tostring(date >= before and date <= after))
        ]], { args = { S.root }, env = { TZ = tz } })
        assert.is_true(ok, out)
        local date, within = out:match("^(.*)|(%a+)$")
        assert.truthy(date and date:match(DATE_PATTERN), out)
        assert.equal(offset, date:sub(-5), tz)
        assert.equal("true", within, out)
      end
    end)

    it("keeps a UTF-8 user id with quotes exactly", function()
      local user = "\u{e9}l\u{e8}ve \"x\" \\ y"
      S.db:save("t", user, "e", 1)
      assert.equal(user, S.db:meta("t", "e").user_id)
    end)

    it("describes a record collection version", function()
      S.db:put("t", "carol", "c", "k", 1)
      local d1 = S.db:get_digest("t", "c")
      S.db:put("t", "dave", "c", "k", 2)
      local m = S.db:meta("t", "c")
      assert.equal(d1, m.parent)
      assert.equal("dave", m.user_id)
      assert.truthy(m.date:match(DATE_PATTERN), m.date)
    end)

    it("raises not_found for a missing entry", function()
      H.assert_error_code(function() S.db:meta("t", "missing") end, "not_found")
    end)

    it("refuses a malformed digest", function()
      S.db:save("t", "u", "e", 1)
      H.assert_error_code(function() S.db:meta("t", "e", "xyz") end, "invalid_argument")
    end)
  end)

  describe("the stored object file", function()
    it("is named by the SHA-256 of its bytes", function()
      H.needs_loose("the loose layout")
      local d = S.db:save("t", "alice", "e", { theme = "dark", n = { 1, 2, 3 } })
      local path = H.object_path(S.root, "t", d)
      assert.is_true(H.file_exists(path), path)
      assert.equal(d, H.sha256_file(path))
      assert.equal(d, core.sha256(H.read_file(path)))
    end)

    it("holds every object of the tenant under its digest (sha256sum of all files)", function()
      S.db:save("t", "u", "e", { a = 1 })
      S.db:save("t", "u", "e", { 1, 2, "x" })
      S.db:put_many("t", "u", "c", { a = 1, b = 2, c = { 3 } })
      local names = H.object_names(S.root, "t")
      assert.is_true(#names >= 3)
      for _, n in ipairs(names) do
        assert.equal(n, core.sha256(H.read_object(S.root, "t", n)))
      end
    end)

    it("carries __parent__ as a list ([null] first), __user_id__ and __date__", function()
      local d1 = S.db:save("t", "alice", "e", { a = 1 })
      local d2 = S.db:save("t", "bob", "e", { a = 2 })
      local o1 = cjson.decode(H.read_object(S.root, "t", d1))
      local o2 = cjson.decode(H.read_object(S.root, "t", d2))
      assert.is_table(o1.__parent__)
      assert.equal(cjson.null, o1.__parent__[1])
      assert.equal("alice", o1.__user_id__)
      assert.truthy(o1.__date__:match(DATE_PATTERN), o1.__date__)
      assert.equal(S.db:meta("t", "e", d1).date, o1.__date__)
      assert.same({ d1 }, o2.__parent__)
      assert.equal("bob", o2.__user_id__)
    end)

    it("stores a plain map inline as readable JSON with sorted keys and no tags", function()
      local d = S.db:save("t", "alice", "config",
        { theme = "dark", lang = "en", n = 3, nested = { a = { 1, 2 } }, ok = true, f = 0.5 })
      local bytes = H.read_object(S.root, "t", d)
      local date = S.db:meta("t", "config").date
      assert.equal('{"__date__":"' .. date .. '","__parent__":[null],"__user_id__":"alice",'
        .. '"f":0.5,"lang":"en","n":3,"nested":{"a":[1,2]},"ok":true,"theme":"dark"}', bytes)
      local o = cjson.decode(bytes)
      assert.equal("dark", o.theme)
      assert.equal("en", o.lang)
      assert.equal(3, o.n)
      assert.same({ 1, 2 }, o.nested.a)
      assert.is_true(o.ok)
    end)

    it("stores any other value under __value__", function()
      local d = S.db:save("t", "u", "list", { 1, 2, 3 })
      local o = cjson.decode(H.read_object(S.root, "t", d))
      assert.same({ 1, 2, 3 }, o.__value__)
      d = S.db:save("t", "u", "str", "hello")
      o = cjson.decode(H.read_object(S.root, "t", d))
      assert.equal("hello", o.__value__)
      d = S.db:save("t", "u", "num", 42)
      o = cjson.decode(H.read_object(S.root, "t", d))
      assert.equal(42, o.__value__)
    end)

    it("stores an empty table as the metadata alone", function()
      local d = S.db:save("t", "u", "empty", {})
      local o = cjson.decode(H.read_object(S.root, "t", d))
      assert.same({ "__date__", "__parent__", "__user_id__" }, (function()
        local ks = {}
        for k in pairs(o) do ks[#ks + 1] = k end
        table.sort(ks)
        return ks
      end)())
      assert.same({}, S.db:load("t", "empty"))
    end)

    it("encodes the same value identically in two entries", function()
      local v = { name = "x", list = { 1, 2.5, "three" }, map = { [1] = "a", [3] = "c" } }
      local d1 = S.db:save("t", "u", "one", v)
      local d2 = S.db:save("t", "u", "two", v)
      local b1 = H.read_object(S.root, "t", d1)
      local b2 = H.read_object(S.root, "t", d2)
      assert.equal(without_date(b1), without_date(b2))
    end)

    it("is written once: saving the same bytes again adds no file", function()
      S.db:save("t", "u", "a", { x = 1 })
      local n = #H.object_names(S.root, "t")
      S.db:put_many("t", "u", "c", { k1 = 1, k2 = 2 })
      local n2 = #H.object_names(S.root, "t")
      S.db:put_many("t", "other", "c2", { k1 = 1, k2 = 2 })  -- same pieces, new snapshot
      -- the snapshot, and the tenant's commit with its state (one leaf)
      assert.equal(n2 + 3, #H.object_names(S.root, "t"))
      assert.is_true(n2 > n)
    end)
  end)

  describe("the head journal", function()
    it("stays valid UTF-8 JSON lines for every entry name that save accepts", function()
      local names = { "a\nb", 'q"uote', "back\\slash", "tab\there", "\1\31", "caf\u{e9}", "\255\254", "x\255" }
      for _, name in ipairs(names) do
        local ok, err = pcall(S.db.save, S.db, "t", "u", name, name)
        if ok then
          assert.equal(name, S.db:load("t", name))
        else
          assert.equal("invalid_argument", type(err) == "table" and err.code or tostring(err))
        end
      end
      if H.BACKEND ~= "loose" then return end -- the journal is loose's (pack: spec/backend_pack_spec.lua)
      local text = H.read_file(S.root .. "/t/head")
      local n = 0
      for line in text:gmatch("[^\n]+") do
        n = n + 1
        assert(utf8.len(line), ("head line %d is not valid UTF-8: %q"):format(n, line))
        local ok, err = pcall(cjson.decode, line)
        assert(ok, ("head line %d is not JSON: %s"):format(n, tostring(err)))
      end
      assert.is_true(n >= 7)
    end)

    it("reads back every entry name in a fresh process", function()
      local names = { "a\nb", 'q"uote', "back\\slash", "tab\there", "\1\31", "caf\u{e9}" }
      for _, name in ipairs(names) do S.db:save("t", "u", name, name) end
      local out, ok = H.run_lua([[
        local db = require("mydb").open(..., { fsync = false })
        local n = 0
        for _, e in ipairs(db:entries("t")) do
          assert(db:load("t", e) == e, ("entry %q"):format(e))
          n = n + 1
        end
        io.write(n)
      ]], { args = { S.root } })
      assert.is_true(ok, out)
      assert.equal(tostring(#names), out)
    end)
  end)

  describe("canonical encoding", function()
    -- Two tables with the same content, built in different key orders
    -- (and with different internal layouts: one grown, one with deletions).
    local function build(order, with_garbage)
      local t = {}
      if with_garbage then
        for i = 1, 50 do t["tmp" .. i] = i end
      end
      for _, k in ipairs(order) do t[k] = k:upper() end
      t[1], t[2], t[10] = "one", "two", "ten"
      t[2.5] = "float"
      t[true] = "yes"
      if with_garbage then
        for i = 1, 50 do t["tmp" .. i] = nil end
      end
      return t
    end

    local keys = {}
    for i = 1, 40 do keys[i] = ("k%02d"):format(i) end
    local reversed = {}
    for i = #keys, 1, -1 do reversed[#reversed + 1] = keys[i] end

    it("gives byte-identical encodings whatever the insertion order", function()
      local a = core.encode(build(keys, false))
      local b = core.encode(build(reversed, true))
      assert.equal(a, b)
      local p1 = core.encode({ z = 1, a = 2, m = { y = 1, b = 2 } })
      local p2 = core.encode({ m = { b = 2, y = 1 }, a = 2, z = 1 })
      assert.equal(p1, p2)
      assert.equal('{"a":2,"m":{"b":2,"y":1},"z":1}', p1)
    end)

    it("sorts __map__ keys: booleans, then numbers by value, then strings bytewise", function()
      local enc = core.encode({ b = 1, [10] = 2, [2] = 3, [false] = 4, [true] = 5, [-1.5] = 6,
        ["B"] = 7, [1] = 8 })
      assert.equal('{"__map__":[[false,4],[true,5],[-1.5,6],[1,8],[2,3],[10,2],["B",7],["b",1]]}', enc)
    end)

    it("gives byte-identical objects when saved with the same parent and user", function()
      local d1 = S.db:save("t", "u", "one", build(keys, false))
      local d2 = S.db:save("t", "u", "two", build(reversed, true))
      local b1 = H.read_object(S.root, "t", d1)
      local b2 = H.read_object(S.root, "t", d2)
      assert.equal(without_date(b1), without_date(b2))
      if S.db:meta("t", "one").date == S.db:meta("t", "two").date then
        assert.equal(d1, d2)
      end
    end)

    it("writes floats in the shortest form that reads back, always marked", function()
      assert.equal("1.0", core.encode(1.0))
      assert.equal("1", core.encode(1))
      assert.equal("0.1", core.encode(0.1))
      assert.equal("-0.0", core.encode(-0.0))
      assert.equal("-9223372036854775808", core.encode(math.mininteger))
      assert.equal('{"__float__":"inf"}', core.encode(math.huge))
      assert.equal('{"__float__":"-inf"}', core.encode(-math.huge))
      assert.equal('{"__float__":"nan"}', core.encode(0 / 0))
      assert.equal('{"__float__":"nan"}', core.encode(-(0 / 0)))
      for _, x in ipairs({ 1 / 3, 1e308, 5e-324, 123456.789, 2 ^ 53, -1e-7 }) do
        local s = core.encode(x)
        assert.equal(x, tonumber(s), s)
        assert.truthy(s:find("[.e]"), s)
      end
    end)

    it("writes subnormal floats in their shortest form too", function()
      -- FORMAT.md: "shortest form that reads back to the same double"
      assert.equal("5e-324", core.encode(5e-324))
      assert.equal("1e-310", core.encode(1e-310))
      assert.equal("3e-320", core.encode(3e-320))
      assert.equal(5e-324, tonumber(core.encode(5e-324)))
    end)

    it("writes floats in the shortest form on a sample of random doubles", function()
      local x = 0x2545F4914F6CDD1D
      local checked = 0
      for _ = 1, 20000 do
        x = x ~ (x << 13); x = x ~ (x >> 7); x = x ~ (x << 17)
        local d = string.unpack("<d", string.pack("<i8", x))
        if d == d and d ~= math.huge and d ~= -math.huge and d ~= math.floor(d) then
          local s = core.encode(d)
          assert.equal(d, tonumber(s), s)
          local p
          for q = 1, 17 do
            if tonumber(("%." .. q .. "g"):format(d)) == d then p = q break end
          end
          local digits = s:gsub("e.*$", ""):gsub("[^0-9]", ""):gsub("^0+", ""):gsub("0+$", "")
          assert(#digits <= p, ("%s has %d digits, %d would do"):format(s, #digits, p))
          checked = checked + 1
        end
      end
      assert.is_true(checked > 10000)
    end)

    it("writes a non-UTF-8 string as __bytes__ and a UTF-8 string as a JSON string", function()
      assert.equal('"caf\u{e9}"', core.encode("caf\u{e9}"))
      assert.equal('{"__bytes__":"/w=="}', core.encode("\255"))
      assert.equal('"a\\u0000b"', core.encode("a\0b"))
    end)
  end)
  describe("core.encode's tables kept between calls", function()
    -- (lcodec keeps the encoder's table of tables met and its key anchor
    -- between calls: nothing of one call may show in the next)
    it("encodes a table met in an earlier call, or in a failed one, as new", function()
      local shared = { x = 1 }
      local first = core.encode({ a = shared, b = shared })
      assert.matches('"__id__"', first) -- (shared inside one call)
      assert.equal('{"x":1}', core.encode(shared))
      assert.equal(first, core.encode({ a = shared, b = shared }))
      assert.has_error(function() core.encode({ a = shared, f = print }) end)
      assert.equal('{"x":1}', core.encode(shared))
      assert.equal('[{"x":1}]', core.encode({ shared }))
    end)

    it("encodes small values the same after a large one (tables dropped, not emptied)", function()
      local big, many = {}, {}
      for i = 1, 1000 do big["k" .. i] = i; many[i] = { i } end
      local small = { b = { 1 }, a = "s" }
      local before = core.encode(small)
      assert.equal(1000, #cjson.decode(core.encode(many)))
      local decoded = cjson.decode(core.encode(big))
      assert.equal(1000, decoded.k1000)
      assert.equal(before, core.encode(small))
      assert.equal('{"a":"s","b":[1]}', before)
    end)
  end)
end)
