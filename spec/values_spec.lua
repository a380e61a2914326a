-- Values round-trip exactly (issue 2 §4): in the same process and through a
-- fresh lua5.4 process, both ways; classes; refused values.
local H = require "spec.helper"
local mydb = require "mydb"
local cjson = require "cjson"

-- Each case: a name and Lua source whose chunk returns the value, so that a
-- fresh process can build the same value to compare with.
local CASES = {
  { "the integer 1", "return 1" },
  { "the float 1.0", "return 1.0" },
  { "the integer 0", "return 0" },
  { "the integer -7", "return -7" },
  { "math.maxinteger", "return math.maxinteger" },
  { "math.mininteger", "return math.mininteger" },
  { "-0.0", "return -0.0" },
  { "0.0", "return 0.0" },
  { "1e308", "return 1e308" },
  { "-1.7976931348623157e308", "return -1.7976931348623157e308" },
  { "5e-324", "return 5e-324" },
  { "2.2250738585072014e-308", "return 2.2250738585072014e-308" },
  { "0.1", "return 0.1" },
  { "1/3", "return 1/3" },
  { "2^63 as a float", "return 2.0^63" },
  { "2^53 + 1 as an integer", "return 2^53 // 1 + 1" },
  { "NaN", "return 0/0" },
  { "inf", "return math.huge" },
  { "-inf", "return -math.huge" },
  { "true", "return true" },
  { "false", "return false" },
  { "nil", "return nil" },
  { "an empty string", "return ''" },
  { "a plain string", "return 'hello, world'" },
  { "a string with embedded NULs", "return 'a\\0b\\0\\0c\\0'" },
  { "invalid UTF-8", "return '\\255\\254 \\xC0\\x80 \\xED\\xA0\\x80 \\xF4\\x90\\x80\\x80 ok'" },
  { "a truncated UTF-8 sequence", "return 'caf\\xC3'" },
  { "valid UTF-8 with control characters", "return 'caf\\u{e9} \\u{1F600}\\n\\t\\r\\1\\31\"\\\\/'" },
  { "all 256 byte values", "local t = {} for i = 0, 255 do t[#t + 1] = string.char(i) end return table.concat(t)" },
  { "a string that looks like a tag", "return '{\"__bytes__\":\"AA==\"}'" },
  { "an array", "return { 1, 2, 3, 'four', 5.0, true }" },
  { "nested arrays", "return { { 1, { 2, { 3 } } }, {}, { {} } }" },
  { "a map with string keys", "return { name = 'x', list = { 1, 2 }, sub = { a = false } }" },
  { "a map with non-UTF-8 and empty string keys", "return { ['\\255'] = 1, [''] = 2, ['a\\0b'] = 3 }" },
  { "a map with integer keys", "return { [10] = 'ten', [-5] = 'minus five', [0] = 'zero', [math.maxinteger] = 'max' }" },
  { "a map with float keys", "return { [1.5] = 'a', [-0.25] = 'b', [1e300] = 'c', [5e-324] = 'd' }" },
  { "a map with boolean keys", "return { [true] = 'yes', [false] = 'no' }" },
  { "string keys that look like numbers", "return { ['1'] = 'a', ['1.0'] = 'b', ['true'] = 'c' }" },
  { "a mixed table", "return { 'a', 'b', x = 1, [true] = 2, [2.5] = 3, [10] = 4 }" },
  { "a sparse array", "return { [1] = 1, [3] = 3 }" },
  { "an array with a trailing hole", "return { [1] = 1, [2] = 2, [4] = 4 }" },
  { "an array starting at 0", "return { [0] = 0, [1] = 1, [2] = 2 }" },
  { "an empty table", "return {}" },
  { "a table of empty tables", "return { a = {}, b = { {} }, {} }" },
  { "keys starting with __", "return { __id__ = 1, __parent__ = 2 }" },
  { "every reserved tag as a key",
    "return { __value__ = 1, __object__ = 'Point', __float__ = 'nan', __bytes__ = 'AA==', " ..
    "__map__ = {}, __special__ = 'x', __ref__ = 'y', __digest__ = 'z', __date__ = 'd', " ..
    "__user_id__ = 'u', __collection__ = {}, __ = 1 }" },
  { "a nested __float__ lookalike", "return { x = { __float__ = 'inf' } }" },
  { "a nested __id__ lookalike", "return { { __id__ = 0 }, { __id__ = 0 } }" },
  { "a value holding a table twice",
    "local s = { 1, 2 } return { a = s, b = s, list = { s, s } }" },
  { "a self cycle", "local t = { name = 't' } t.self = t return t" },
  { "mutual cycles", "local a, b = { name = 'a' }, { name = 'b' } a.b = b b.a = a return { a, b }" },
  { "a cycle through an array", "local t = {} t[1] = { t } t[2] = t return t" },
  { "a shared table under map keys",
    "local s = {} return { [true] = s, [2.5] = s, x = { s } }" },
  { "500 levels of nesting",
    "local t = {} local c = t for i = 2, 500 do c[1] = {} c = c[1] end c[1] = 'bottom' return t" },
}

local function build(src)
  return assert(load(src, "=case", "t"))()
end

describe("mydb.Db", function()
  describe("save then load", function()
    local S = H.use_store({ tenant = "t" })

    for _, case in ipairs(CASES) do
      it("round-trips " .. case[1], function()
        local v = build(case[2])
        S.db:save("t", "u", "e", v)
        local got = S.db:load("t", "e")
        local ok, why = H.deep_equal(v, got)
        assert(ok, why)
        -- and through a second handle (no cache)
        local got2 = S.open_again():load("t", "e")
        ok, why = H.deep_equal(v, got2)
        assert(ok, why)
      end)
    end

    for _, case in ipairs(CASES) do
      it("stores " .. case[1] .. " as valid UTF-8 JSON", function()
        local d = S.db:save("t", "u", "e", build(case[2]))
        local bytes = H.read_object(S.root, "t", d)
        assert(utf8.len(bytes), "the object file is not valid UTF-8: " .. bytes:sub(1, 200))
        local ok, err = pcall(cjson.decode, bytes)
        assert(ok, "the object file is not JSON: " .. tostring(err))
      end)
    end

    it("stores a record with a non-UTF-8 key in a map as valid UTF-8 JSON", function()
      S.db:put("t", "u", "c", "k", { ["\255x"] = 1, ok = 2 })
      for _, name in ipairs(H.object_names(S.root, "t")) do
        local bytes = H.read_object(S.root, "t", name)
        assert(utf8.len(bytes), "object " .. name .. " is not valid UTF-8: " .. bytes:sub(1, 200))
      end
      assert.same({ ["\255x"] = 1, ok = 2 }, S.db:get("t", "c", "k"))
    end)

    it("round-trips every case as a record value too", function()
      for i, case in ipairs(CASES) do
        local v = build(case[2])
        if v ~= nil then
          S.db:put("t", "u", "c", ("k%03d"):format(i), v)
          local ok, why = H.deep_equal(v, S.db:get("t", "c", ("k%03d"):format(i)))
          assert(ok, case[1] .. ": " .. tostring(why))
        end
      end
    end)

    it("round-trips 1 MB of binary data", function()
      local parts, x = {}, 12345
      for i = 1, 1024 * 1024 do
        x = (x * 1103515245 + 12345) % 2147483648
        parts[i] = string.char((x >> 16) % 256)
      end
      local blob = table.concat(parts)
      S.db:save("t", "u", "blob", { data = blob, n = #blob })
      local got = S.db:load("t", "blob")
      assert.equal(1024 * 1024, got.n)
      assert.is_true(got.data == blob, "1 MB blob differs after load")
    end)

    it("keeps math.type of 1 and 1.0 apart", function()
      S.db:save("t", "u", "e", { 1, 1.0, i = 3, f = 3.0 })
      local got = S.db:load("t", "e")
      assert.equal("integer", math.type(got[1]))
      assert.equal("float", math.type(got[2]))
      assert.equal("integer", math.type(got.i))
      assert.equal("float", math.type(got.f))
    end)

    it("keeps the sign of -0.0", function()
      S.db:save("t", "u", "e", -0.0)
      local got = S.db:load("t", "e")
      assert.equal("float", math.type(got))
      assert.equal(-math.huge, 1 / got)
    end)

    it("keeps NaN and the infinities", function()
      S.db:save("t", "u", "e", { 0 / 0, math.huge, -math.huge })
      local got = S.db:load("t", "e")
      assert.is_true(got[1] ~= got[1])
      assert.equal(math.huge, got[2])
      assert.equal(-math.huge, got[3])
    end)

    it("makes a table referenced twice one table after load", function()
      local s = { 1 }
      S.db:save("t", "u", "e", { a = s, b = s })
      local got = S.db:load("t", "e")
      assert.are.equal(got.a, got.b)
      got.a[1] = 2
      assert.equal(2, got.b[1])
    end)

    it("rebuilds cycles", function()
      local t = {}
      t.self = t
      S.db:save("t", "u", "e", t)
      local got = S.db:load("t", "e")
      assert.are.equal(got, got.self)
      local a, b = {}, {}
      a.b, b.a = b, a
      S.db:save("t", "u", "e2", { a })
      local got2 = S.db:load("t", "e2")
      assert.are.equal(got2[1], got2[1].b.a)
    end)

    it("round-trips the deepest nesting it accepts", function()
      local deepest = nil
      for depth = 995, 1005 do
        local t = {}
        local c = t
        for _ = 2, depth do c[1] = {} c = c[1] end
        if pcall(S.db.save, S.db, "t", "u", "deep", t) then
          deepest = depth
          local ok, got = pcall(S.db.load, S.db, "t", "deep")
          assert(ok, ("saved %d levels but load failed: %s"):format(depth, tostring(got)))
          local ok2, why = H.deep_equal(t, got)
          assert(ok2, why)
        end
      end
      assert.is_not_nil(deepest)
      assert.is_true(deepest >= 1000, "accepted only " .. tostring(deepest) .. " levels")
    end)

    it("round-trips the deepest nesting it accepts, for maps and for records", function()
      local function nest(depth, as_map)
        local t = {}
        local c = t
        for _ = 2, depth do
          local n = {}
          if as_map then c.a = n else c[1] = n end
          c = n
        end
        return t
      end
      for _, shape in ipairs({ "map", "array" }) do
        local deepest_save, deepest_put
        for depth = 997, 1003 do
          local t = nest(depth, shape == "map")
          if pcall(S.db.save, S.db, "t", "u", "deep_" .. shape, t) then
            deepest_save = depth
            local ok, got = pcall(S.db.load, S.db, "t", "deep_" .. shape)
            assert(ok, ("%s: saved %d levels but load failed: %s"):format(shape, depth, tostring(got)))
            assert(H.deep_equal(t, got))
          end
          if pcall(S.db.put, S.db, "t", "u", "deep_records", shape .. depth, t) then
            deepest_put = depth
            local ok, got = pcall(S.db.get, S.db, "t", "deep_records", shape .. depth)
            assert(ok, ("%s: put %d levels but get failed: %s"):format(shape, depth, tostring(got)))
            assert(H.deep_equal(t, got))
            local ok2, all = pcall(S.open_again().load, S.open_again(), "t", "deep_records")
            assert(ok2, ("%s: put %d levels but load of the collection failed: %s"):format(shape, depth, tostring(all)))
          end
        end
        assert.is_true((deepest_save or 0) >= 1000, shape .. ": save accepted only " .. tostring(deepest_save))
        assert.is_true((deepest_put or 0) >= 1000, shape .. ": put accepted only " .. tostring(deepest_put))
      end
    end)

    it("refuses 2000 levels of nesting with unsupported_value and writes nothing", function()
      local d = S.db:save("t", "u", "deep", { 1 })
      local n = #H.object_names(S.root, "t")
      local t = {}
      local c = t
      for _ = 2, 2000 do c[1] = {} c = c[1] end
      H.assert_error_code(function() S.db:save("t", "u", "deep", t) end, "unsupported_value")
      assert.equal(d, S.db:get_digest("t", "deep"))
      assert.equal(n, #H.object_names(S.root, "t"))
    end)
  end)

  describe("values through a fresh process", function()
    local S = H.use_store({ tenant = "t" })

    -- The child loads the value the parent saved, compares it with the value
    -- it builds itself, then saves its own copy for the parent to check.
    local CHILD = [[
      local H = require "spec.helper"
      local mydb = require "mydb"
      local root, src = ...
      local db = mydb.open(root, { fsync = false })
      local expected = assert(load(src, "=case", "t"))()
      local got = db:load("t", "from_parent")
      local ok, why = H.deep_equal(expected, got)
      if not ok then io.write("MISMATCH ", why) os.exit(1) end
      db:save("t", "child", "from_child", expected)
      db:close()
      io.write("OK")
    ]]

    for _, case in ipairs(CASES) do
      it("round-trips " .. case[1] .. " both ways", function()
        local v = build(case[2])
        S.db:save("t", "parent", "from_parent", v)
        local out, ok = H.run_lua(CHILD, { args = { S.root, case[2] } })
        assert.is_true(ok, out)
        assert.equal("OK", out)
        local got = S.db:load("t", "from_child")
        local same, why = H.deep_equal(v, got)
        assert(same, why)
      end)
    end

    it("round-trips 1 MB of binary data both ways", function()
      local src = [[
        local parts, x = {}, 777
        for i = 1, 1024 * 1024 do
          x = (x * 1103515245 + 12345) % 2147483648
          parts[i] = string.char((x >> 16) % 256)
        end
        return table.concat(parts)
      ]]
      local blob = build(src)
      S.db:save("t", "parent", "from_parent", blob)
      local out, ok = H.run_lua(CHILD, { args = { S.root, src } })
      assert.is_true(ok, out)
      assert.equal("OK", out)
      assert.is_true(S.db:load("t", "from_child") == blob)
    end)
  end)

  describe("registered classes", function()
    local S = H.use_store({ tenant = "t" })
    local POINT_SRC = [[
      local Point = {}
      Point.__index = Point
      function Point.new(x, y) return setmetatable({ x = x, y = y }, Point) end
      function Point:len2() return self.x * self.x + self.y * self.y end
      return Point
    ]]
    local Point

    before_each(function()
      Point = build(POINT_SRC)
      mydb.register_class("Point", Point)
    end)
    after_each(function()
      mydb.unregister_class("Point")
      mydb.unregister_class("Other")
    end)

    it("brings an instance back with its metatable and methods", function()
      S.db:save("t", "u", "p", Point.new(3, 4))
      local got = S.db:load("t", "p")
      assert.are.equal(Point, getmetatable(got))
      assert.equal(25, got:len2())
      assert.equal(3, got.x)
    end)

    it("brings back instances inside other values, shared ones as one table", function()
      local p = Point.new(1, 2)
      S.db:save("t", "u", "ps", { list = { p, p, Point.new(5, 6) }, [true] = p })
      local got = S.db:load("t", "ps")
      assert.are.equal(Point, getmetatable(got.list[1]))
      assert.are.equal(got.list[1], got.list[2])
      assert.are.equal(got.list[1], got[true])
      assert.equal(61, got.list[3]:len2())
    end)

    it("brings back an instance with non-string keys and a cycle", function()
      local p = setmetatable({ 10, 20, [2.5] = "f", x = 0, y = 1 }, Point)
      p.me = p
      S.db:save("t", "u", "p", p)
      local got = S.db:load("t", "p")
      assert.are.equal(Point, getmetatable(got))
      assert.are.equal(got, got.me)
      assert.equal("f", got[2.5])
      assert.equal(20, got[2])
      assert.equal(1, got:len2())
    end)

    it("stores the instance with __object__", function()
      local d = S.db:save("t", "u", "p", Point.new(3, 4))
      local bytes = H.read_object(S.root, "t", d)
      assert.truthy(bytes:find('"__object__":"Point"', 1, true), bytes)
    end)

    it("round-trips through a fresh process that registers the class too", function()
      S.db:save("t", "parent", "p", { Point.new(3, 4) })
      local out, ok = H.run_lua([[
        local mydb = require "mydb"
        local root, src = ...
        local Point = assert(load(src))()
        mydb.register_class("Point", Point)
        local db = mydb.open(root, { fsync = false })
        local got = db:load("t", "p")[1]
        assert(getmetatable(got) == Point, "metatable lost")
        db:save("t", "child", "q", Point.new(got.x + 1, got.y + 1))
        io.write(got:len2())
      ]], { args = { S.root, POINT_SRC } })
      assert.is_true(ok, out)
      assert.equal("25", out)
      local q = S.db:load("t", "q")
      assert.are.equal(Point, getmetatable(q))
      assert.equal(41, q:len2())
    end)

    it("makes load raise unknown_tag in a process without the class", function()
      S.db:save("t", "parent", "p", Point.new(3, 4))
      local out, ok = H.run_lua([[
        local mydb = require "mydb"
        local db = mydb.open(..., { fsync = false })
        local ok, err = pcall(db.load, db, "t", "p")
        io.write(ok and "LOADED" or tostring(err.code) .. "|" .. tostring(err))
      ]], { args = { S.root } })
      assert.is_true(ok, out)
      assert.equal("unknown_tag", out:match("^([^|]*)"), out)
      assert.truthy(out:find("|mydb: unknown_tag: ", 1, true), out)
    end)

    it("makes load raise unknown_tag after unregister_class", function()
      S.db:save("t", "u", "p", Point.new(3, 4))
      assert.is_true(mydb.unregister_class("Point"))
      H.assert_error_code(function() S.db:load("t", "p") end, "unknown_tag")
    end)

    it("stores instances as valid UTF-8 JSON whatever class name register_class accepts", function()
      local mt = {}
      local ok, err = pcall(mydb.register_class, "Bad\255Name", mt)
      if not ok then
        assert.equal("invalid_argument", type(err) == "table" and err.code or tostring(err))
        return
      end
      finally(function() mydb.unregister_class("Bad\255Name") end)
      local d = S.db:save("t", "u", "bad", setmetatable({ x = 1 }, mt))
      local bytes = H.read_object(S.root, "t", d)
      assert(utf8.len(bytes), "the object file is not valid UTF-8: " .. bytes)
    end)

    it("refuses a class name or metatable registered twice under different names", function()
      H.assert_error_code(mydb.register_class, "invalid_argument", "Point", {})
      H.assert_error_code(mydb.register_class, "invalid_argument", "Other", Point)
      H.assert_error_code(mydb.register_class, "invalid_argument", "__x", {})
      H.assert_error_code(mydb.register_class, "invalid_argument", "", {})
      H.assert_error_code(mydb.register_class, "invalid_argument", 1, {})
      H.assert_error_code(mydb.register_class, "invalid_argument", "Other", "mt")
      -- registering the same pair again is fine
      assert.are.equal(Point, mydb.register_class("Point", Point))
    end)
  end)

  describe("refused values", function()
    local S = H.use_store({ tenant = "t" })
    local head, nobjects

    before_each(function()
      head = S.db:save("t", "u", "config", { ok = true })
      S.db:put("t", "u", "c", "k0", 1)
      nobjects = #H.object_names(S.root, "t")
    end)

    local function assert_nothing_written()
      assert.equal(head, S.db:get_digest("t", "config"))
      assert.same({ ok = true }, S.db:load("t", "config"))
      assert.equal(1, #S.db:history("t", "c"))
      assert.equal(nobjects, #H.object_names(S.root, "t"))
      assert.same({}, H.listing(S.root .. "/.tmp"))
      assert.same({}, H.object_names(S.root, nil))
    end

    local REFUSED = {
      { "a function", function() return { handlers = { 1, print } } end, "config.handlers[2]" },
      { "a top-level function", function() return print end, "config" },
      { "a coroutine", function() return { co = coroutine.create(print) } end, "config.co" },
      { "userdata", function() return { out = { io.stdout } } end, "config.out[1]" },
      { "a table with an unregistered metatable",
        function() return { list = { 1, setmetatable({}, {}) } } end, "config.list[2]" },
      { "a table used as a key", function() return { a = { [{}] = 1 } } end, "config.a" },
      { "a function under a boolean key", function() return { [true] = { f = print } } end, "config[true].f" },
      { "a function under a key with a space", function() return { ["a b"] = { print } } end, 'config["a b"][1]' },
    }

    for _, case in ipairs(REFUSED) do
      it(("refuses %s in save with unsupported_value naming %s"):format(case[1], case[3]), function()
        local err = H.assert_error_code(function() S.db:save("t", "u", "config", case[2]()) end,
          "unsupported_value")
        assert.truthy(err.message:find(case[3], 1, true),
          ("message %q should name %q"):format(err.message, case[3]))
        assert_nothing_written()
      end)
    end

    it("refuses a function in put with unsupported_value naming the record", function()
      local err = H.assert_error_code(function() S.db:put("t", "u", "c", "k", { f = print }) end,
        "unsupported_value")
      assert.truthy(err.message:find('c["k"].f', 1, true), err.message)
      assert_nothing_written()
    end)

    it("refuses a function in put_many with unsupported_value and writes none of the items", function()
      local err = H.assert_error_code(function()
        S.db:put_many("t", "u", "c", { a = 1, b = { f = print }, c = 3 })
      end, "unsupported_value")
      assert.truthy(err.message:find('c["b"].f', 1, true), err.message)
      assert_nothing_written()
      assert.is_nil(S.db:get("t", "c", "a"))
    end)

    it("refuses a function in a batch's put with unsupported_value naming the record", function()
      local err = H.assert_error_code(function()
        S.db:batch("t", "u", function(b)
          b:put("c", "ok", 1)
          b:put("c", "k\n2", { f = print })
        end)
      end, "unsupported_value")
      assert.truthy(err.message:find('c["k\\\n2"].f', 1, true), err.message)
      assert_nothing_written()
    end)

    it("refuses a function in a list item of put_many, naming the record by its key", function()
      local item = setmetatable({ f = print }, { __index = { get_key = function() return "li" end } })
      local err = H.assert_error_code(function() S.db:put_many("t", "u", "c", { item }) end,
        "unsupported_value")
      assert.truthy(err.message:find('c["li"]', 1, true), err.message)
      assert_nothing_written()
    end)

    it("refuses an instance of an unregistered class in a fresh entry and creates no entry", function()
      local Class = {}
      H.assert_error_code(function() S.db:save("t", "u", "fresh", setmetatable({}, Class)) end,
        "unsupported_value")
      assert.is_false(S.db:exists("t", "fresh"))
      assert_nothing_written()
    end)
  end)
end)
