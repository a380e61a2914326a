-- mydb.handlers (issue 3 §1, §5): the registry, inline and ref handlers,
-- and the errors handlers raise or meet.
local H = require "spec.helper"

local function object_bytes(S, digest) return H.read_object(S.root, "t", digest) end

-- Everything written under the store (to prove a failed call wrote nothing).
local function snapshot_of_store(S)
  return H.store_state(S.root)
end

describe("mydb.handlers", function()
  local mydb, handlers, serializer

  -- a small value type used throughout: a 2D point with its own metatable
  local Point = { __name = "Point" }
  Point.__index = Point
  function Point.new(x, y) return setmetatable({ x = x, y = y }, Point) end

  local function point_handler(extra)
    local h = {
      tag = "Point",
      is_eligible_for = function(v) return getmetatable(v) == Point end,
      serialize = function(p) return { x = p.x, y = p.y } end,
      deserialize = function(t) return Point.new(t.x, t.y) end,
    }
    for k, v in pairs(extra or {}) do h[k] = v end
    return h
  end

  -- a ref handler: a blob of bytes in a box
  local Blob = { __name = "Blob" }
  local function blob(bytes) return setmetatable({ bytes = bytes }, Blob) end
  local function blob_handler(extra)
    local h = {
      tag = "Blob",
      is_eligible_for = function(v) return getmetatable(v) == Blob end,
      serialize_to_bytes = function(b) return b.bytes end,
      deserialize_from_bytes = function(bytes) return blob(bytes) end,
    }
    for k, v in pairs(extra or {}) do h[k] = v end
    return h
  end

  local function reset()
    for _, tag in ipairs(handlers.list()) do handlers.unregister(tag) end
    for _, p in ipairs(mydb.policies.list()) do mydb.policies.unregister(p) end
  end

  setup(function()
    mydb = require "mydb"
    handlers = require "mydb.handlers"
    serializer = require "mydb.serializer"
  end)
  before_each(function() reset() end)
  after_each(function() reset() end)

  it("is the same module as require('mydb').handlers", function()
    assert.equal(handlers, mydb.handlers)
    assert.is_function(handlers.register)
    assert.is_function(handlers.unregister)
    assert.is_function(handlers.list)
    assert.is_function(handlers.get)
  end)

  describe("register", function()
    it("registers inline and ref handlers; list gives tags in registration order", function()
      local p, b = point_handler(), blob_handler()
      assert.equal(p, handlers.register(p))
      assert.equal(b, handlers.register(b))
      assert.same({ "Point", "Blob" }, handlers.list())
      assert.equal(p, handlers.get("Point"))
      assert.equal(b, handlers.get("Blob"))
      assert.is_nil(handlers.get("Nope"))
    end)

    it("refuses a tag that is taken, unless replace = true (in the handler or in opts)", function()
      handlers.register(point_handler())
      handlers.register(blob_handler())
      local err = H.assert_error_code(handlers.register, "invalid_argument", point_handler())
      assert.truthy(err.message:find("Point", 1, true), err.message)
      local p2 = point_handler({ replace = true })
      handlers.register(p2)
      assert.equal(p2, handlers.get("Point"))
      local p3 = point_handler()
      handlers.register(p3, { replace = true })
      assert.equal(p3, handlers.get("Point"))
      -- a replaced handler keeps its place in the order
      assert.same({ "Point", "Blob" }, handlers.list())
    end)

    it("uses the replacing handler from then on", function()
      local S = { root = H.tmpdir() .. "/db" }
      finally(function() H.rmrf(S.root:match("^(.*)/db$")) end)
      local db = mydb.open(S.root, { fsync = false })
      db:init("t")
      handlers.register(point_handler())
      db:save("t", "u", "e", Point.new(1, 2)) -- the cached codec context sees the old one
      handlers.register(point_handler({
        replace = true,
        serialize = function(p) return { x = p.x * 10, y = p.y * 10 } end,
      }))
      local d = db:save("t", "u", "e", Point.new(1, 2))
      assert.truthy(H.read_object(S.root, "t", d):find('"x":10', 1, true))
      db:close()
    end)

    it("refuses reserved tags", function()
      for tag in pairs(serializer.RESERVED_TAGS) do
        H.assert_error_code(handlers.register, "invalid_argument", point_handler({ tag = tag }))
      end
      H.assert_error_code(handlers.register, "invalid_argument", point_handler({ tag = "__mine__" }))
      H.assert_error_code(handlers.register, "invalid_argument", point_handler({ tag = "__" }))
      assert.same({}, handlers.list())
    end)

    it("refuses a tag that is not a string of 1 to 128 bytes of UTF-8 without NUL", function()
      for _, tag in ipairs({ "", ("x"):rep(129), "a\0b", "bad\255", 42, true }) do
        H.assert_error_code(handlers.register, "invalid_argument", point_handler({ tag = tag }))
      end
      H.assert_error_code(handlers.register, "invalid_argument", {
        is_eligible_for = function() end, serialize = function() end, deserialize = function() end,
      })
      handlers.register(point_handler({ tag = ("x"):rep(128) }))
      handlers.register(point_handler({ tag = "Été" }))
      assert.same({ ("x"):rep(128), "Été" }, handlers.list())
    end)

    it("refuses a handler that is not a table, and options that are not a table", function()
      H.assert_error_code(handlers.register, "invalid_argument", nil)
      H.assert_error_code(handlers.register, "invalid_argument", "Point")
      H.assert_error_code(handlers.register, "invalid_argument", function() end)
      H.assert_error_code(handlers.register, "invalid_argument", point_handler(), 42)
      H.assert_error_code(handlers.register, "invalid_argument", point_handler({ replace = "yes" }))
    end)

    it("refuses a handler table missing its functions, naming what is missing", function()
      local cases = {
        { { is_eligible_for = false }, "is_eligible_for" },
        { { is_eligible_for = "yes" }, "is_eligible_for" },
        { { serialize = false }, "serialize" },
        { { deserialize = false }, "deserialize" },
        { { deserialize = 42 }, "deserialize" },
      }
      for _, case in ipairs(cases) do
        local h = point_handler()
        for k, v in pairs(case[1]) do h[k] = v or nil end
        local err = H.assert_error_code(handlers.register, "invalid_argument", h)
        assert.truthy(err.message:find(case[2], 1, true), err.message)
      end
      local refcases = { "serialize_to_bytes", "deserialize_from_bytes" }
      for _, name in ipairs(refcases) do
        local h = blob_handler()
        h[name] = nil
        local err = H.assert_error_code(handlers.register, "invalid_argument", h)
        assert.truthy(err.message:find(name, 1, true), err.message)
      end
      -- neither kind
      H.assert_error_code(handlers.register, "invalid_argument",
        { tag = "X", is_eligible_for = function() return false end })
      assert.same({}, handlers.list())
    end)

    it("refuses a handler with both inline and ref functions", function()
      local h = point_handler()
      h.serialize_to_bytes = function() return "" end
      h.deserialize_from_bytes = function() return 1 end
      local err = H.assert_error_code(handlers.register, "invalid_argument", h)
      assert.truthy(err.message:find("one pair", 1, true), err.message)
      local b = blob_handler()
      b.serialize = function() return {} end
      H.assert_error_code(handlers.register, "invalid_argument", b)
      assert.same({}, handlers.list())
    end)

    it("takes a module straight from require (which also returns the module's path)", function()
      local date = require "mydb.handlers.date"
      handlers.register(require "mydb.handlers.date")
      assert.equal(date, handlers.get("Date"))
      handlers.register(point_handler(), "/some/path.lua")
      assert.same({ "Date", "Point" }, handlers.list())
    end)

    it("accepts callable tables as functions", function()
      local callable = setmetatable({}, { __call = function(_, v) return getmetatable(v) == Point end })
      handlers.register(point_handler({ is_eligible_for = callable }))
      assert.same({ "Point" }, handlers.list())
    end)
  end)

  describe("unregister", function()
    it("removes a tag and says whether it was registered", function()
      handlers.register(point_handler())
      local b = handlers.register(blob_handler())
      assert.is_true(handlers.unregister("Point"))
      assert.is_false(handlers.unregister("Point"))
      assert.same({ "Blob" }, handlers.list())
      assert.is_true(handlers.unregister(b)) -- the handler table works too
      assert.same({}, handlers.list())
      assert.is_false(handlers.unregister("never"))
    end)

    it("refuses a tag that is not a string", function()
      H.assert_error_code(handlers.unregister, "invalid_argument", nil)
      H.assert_error_code(handlers.unregister, "invalid_argument", 12)
    end)
  end)

  describe("inline handlers", function()
    local S = H.use_store({ tenant = "t" })

    it("store {\"__special__\": TAG, ...fields} and load what deserialize returns", function()
      handlers.register(point_handler())
      local d = S.db:save("t", "u", "e", { where = Point.new(1, 2.5) })
      assert.truthy(object_bytes(S, d):find('"where":{"__special__":"Point","x":1,"y":2.5}', 1, true),
        object_bytes(S, d))
      local v = S.db:load("t", "e")
      assert.equal(Point, getmetatable(v.where))
      assert.same({ x = 1, y = 2.5 }, { x = v.where.x, y = v.where.y })
      assert.equal("float", math.type(v.where.y))
    end)

    it("store a payload that is not a map of plain string keys under __value__", function()
      handlers.register(point_handler({
        serialize = function(p) return { p.x, p.y } end,
        deserialize = function(t) return Point.new(t[1], t[2]) end,
      }))
      local Str = {}
      handlers.register({
        tag = "Str",
        is_eligible_for = function(v) return getmetatable(v) == Str end,
        serialize = function(v) return v.s end,
        deserialize = function(s) return setmetatable({ s = s }, Str) end,
      })
      local d = S.db:save("t", "u", "e", { p = Point.new(3, 4), s = setmetatable({ s = "hi" }, Str) })
      local bytes = object_bytes(S, d)
      assert.truthy(bytes:find('"p":{"__special__":"Point","__value__":[3,4]}', 1, true), bytes)
      assert.truthy(bytes:find('"s":{"__special__":"Str","__value__":"hi"}', 1, true), bytes)
      local v = S.db:load("t", "e")
      assert.same({ 3, 4 }, { v.p.x, v.p.y })
      assert.equal("hi", v.s.s)
      assert.equal(Str, getmetatable(v.s))
    end)

    it("take the whole value at the top level", function()
      handlers.register(point_handler())
      local d = S.db:save("t", "u", "p", Point.new(5, 6))
      assert.truthy(object_bytes(S, d):find('"__value__":{"__special__":"Point","x":5,"y":6}', 1, true))
      local v = S.db:load("t", "p")
      assert.equal(Point, getmetatable(v))
      assert.equal(6, v.y)
    end)

    it("serialize may return any storable value, other handled types and classes included", function()
      handlers.register(point_handler())
      local Seg = {}
      handlers.register({
        tag = "Segment",
        is_eligible_for = function(v) return getmetatable(v) == Seg end,
        serialize = function(s) return { from = s.from, to = s.to, label = s.label, extra = s.extra } end,
        deserialize = function(t) return setmetatable(t, Seg) end,
      })
      local Tagged = {}
      mydb.register_class("Tagged", Tagged)
      finally(function() mydb.unregister_class("Tagged") end)
      local seg = setmetatable({
        from = Point.new(0, 0), to = Point.new(1.5, -2),
        label = "bin\0\255", -- bytes
        extra = { nan = 0 / 0, inf = math.huge, list = { 1, 2, { 3 } }, [true] = "k",
          obj = setmetatable({ n = 1 }, Tagged) },
      }, Seg)
      S.db:save("t", "u", "s", { seg = seg })
      local v = S.db:load("t", "s").seg
      assert.equal(Seg, getmetatable(v))
      assert.equal(Point, getmetatable(v.from))
      assert.equal(Point, getmetatable(v.to))
      assert.equal(-2, v.to.y)
      assert.equal("bin\0\255", v.label)
      assert.is_true(v.extra.nan ~= v.extra.nan)
      assert.equal(math.huge, v.extra.inf)
      assert.same({ 1, 2, { 3 } }, v.extra.list)
      assert.equal("k", v.extra[true])
      assert.equal(Tagged, getmetatable(v.extra.obj))
    end)

    it("nest: a handled value inside a handled value's payload inside a handled value", function()
      local set = require "mydb.handlers.set"
      local date = require "mydb.handlers.date"
      handlers.register(set)
      handlers.register(date)
      local inner = set.new({ date.new(2024, 1, 1), date.new(1999, 12, 31) })
      local outer = set.new({ inner, "x" })
      S.db:save("t", "u", "s", outer)
      local v = S.db:load("t", "s")
      assert.is_true(set.is_set(v))
      assert.equal(2, #v)
      local got
      for m in v:iter() do if set.is_set(m) then got = m end end
      local days = {}
      for m in got:iter() do days[#days + 1] = tostring(m) end
      table.sort(days)
      assert.same({ "1999-12-31", "2024-01-01" }, days)
    end)

    it("are asked in registration order: the first eligible one wins", function()
      local calls = {}
      local function h(tag, eligible)
        return {
          tag = tag,
          is_eligible_for = function(v)
            calls[#calls + 1] = tag
            return eligible and getmetatable(v) == Point
          end,
          serialize = function(p) return { who = tag, x = p.x } end,
          deserialize = function(t) return { who = t.who } end,
        }
      end
      handlers.register(h("A", false))
      handlers.register(h("B", true))
      handlers.register(h("C", true))
      local d = S.db:save("t", "u", "e", Point.new(1, 1))
      assert.truthy(object_bytes(S, d):find('"__special__":"B"', 1, true))
      assert.same({ "A", "B" }, calls)
      assert.same({ who = "B" }, S.db:load("t", "e"))
    end)

    it("come before registered classes", function()
      mydb.register_class("PointClass", Point)
      finally(function() mydb.unregister_class("PointClass") end)
      handlers.register(point_handler())
      local d = S.db:save("t", "u", "e", Point.new(1, 1))
      assert.truthy(object_bytes(S, d):find('"__special__":"Point"', 1, true))
      assert.falsy(object_bytes(S, d):find('__object__', 1, true))
    end)

    it("keep sharing: one value met twice is one value after load", function()
      handlers.register(point_handler())
      local p = Point.new(1, 2)
      local d = S.db:save("t", "u", "e", { a = p, b = p, list = { p } })
      assert.truthy(object_bytes(S, d):find('"b":{"__id__":', 1, true), object_bytes(S, d))
      local v = S.db:load("t", "e")
      assert.equal(v.a, v.b)
      assert.equal(v.a, v.list[1])
    end)

    it("give one digest for equal values whatever the order fields were set in", function()
      handlers.register(point_handler({
        serialize = function(p)
          local t = {}
          for _, k in ipairs(p.order) do t[k] = p[k] end
          return t
        end,
      }))
      local a = Point.new(1, 2); a.order = { "x", "y" }
      local b = Point.new(1, 2); b.order = { "y", "x" }
      assert.equal(S.db:save("t", "u", "a", a):len(), 64)
      local da = S.db:get_digest("t", "a")
      S.db:save("t", "u", "b", b)
      -- the same bytes but for the parent and date: compare the value part
      local ba = object_bytes(S, da):match('"__value__":(.*)}$')
      local bb = object_bytes(S, S.db:get_digest("t", "b")):match('"__value__":(.*)}$')
      assert.equal(ba, bb)
    end)

    it("work in record collections (put, put_many, get, records, load)", function()
      handlers.register(point_handler())
      S.db:put("t", "u", "c", "a", Point.new(1, 1))
      S.db:put_many("t", "u", "c", { b = { at = Point.new(2, 2) }, c = Point.new(3, 3) })
      assert.equal(Point, getmetatable(S.db:get("t", "c", "a")))
      assert.equal(2, S.db:get("t", "c", "b").at.x)
      local n = 0
      for _, v in S.db:records("t", "c") do
        n = n + 1
        assert.truthy(getmetatable(v) == Point or getmetatable(v.at) == Point)
      end
      assert.equal(3, n)
      assert.equal(3, S.db:load("t", "c").c.y)
      -- an equal record is still "unchanged"
      assert.is_false(S.db:put("t", "u", "c", "a", Point.new(1, 1)))
    end)

    it("can take userdata", function()
      handlers.register({
        tag = "StdStream",
        is_eligible_for = function(v) return io.type(v) == "file" end,
        serialize = function(f)
          return { name = f == io.stdout and "stdout" or f == io.stderr and "stderr" or "other" }
        end,
        deserialize = function(t) return io[t.name] end,
      })
      S.db:save("t", "u", "e", { out = io.stdout, err = io.stderr })
      local v = S.db:load("t", "e")
      assert.equal(io.stdout, v.out)
      assert.equal(io.stderr, v.err)
    end)
  end)

  describe("ref handlers", function()
    local S = H.use_store({ tenant = "t" })

    it("store {\"__special__\": TAG, \"__digest__\": DIGEST} and the bytes in ROOT/refs", function()
      handlers.register(blob_handler())
      local bytes = "some \0 binary \255 bytes"
      local d = S.db:save("t", "u", "e", { b = blob(bytes) })
      local digest = require("mydb.core").sha256(bytes)
      assert.truthy(object_bytes(S, d):find(('"b":{"__digest__":"%s","__special__":"Blob"}'):format(digest), 1, true),
        object_bytes(S, d))
      assert.equal(bytes, H.read_object(S.root, nil, digest))
      assert.equal(digest, require("mydb.core").sha256(H.read_object(S.root, nil, digest)))
      local v = S.db:load("t", "e")
      assert.equal(Blob, getmetatable(v.b))
      assert.equal(bytes, v.b.bytes)
    end)

    it("round-trip every byte value, and empty bytes", function()
      handlers.register(blob_handler())
      local all = {}
      for i = 0, 255 do all[#all + 1] = string.char(i) end
      all = table.concat(all):rep(3)
      S.db:save("t", "u", "e", { all = blob(all), none = blob("") })
      local v = S.db:load("t", "e")
      assert.equal(all, v.all.bytes)
      assert.equal("", v.none.bytes)
    end)

    it("give the value itself at the top level, and in records", function()
      handlers.register(blob_handler())
      S.db:save("t", "u", "e", blob("top"))
      assert.equal("top", S.db:load("t", "e").bytes)
      S.db:put("t", "u", "c", "k", blob("rec"))
      assert.equal("rec", S.db:get("t", "c", "k").bytes)
      assert.equal("rec", S.db:load("t", "c").k.bytes)
    end)

    it("load with a second handle and in a fresh process once registered there", function()
      handlers.register(blob_handler())
      S.db:save("t", "u", "e", { b = blob("xyz") })
      assert.equal("xyz", S.open_again():load("t", "e").b.bytes)
      local out, ok = H.run_lua(([[
        local mydb = require "mydb"
        local Blob = {}
        mydb.handlers.register {
          tag = "Blob", is_eligible_for = function(v) return getmetatable(v) == Blob end,
          serialize_to_bytes = function(b) return b.bytes end,
          deserialize_from_bytes = function(bytes) return setmetatable({ bytes = bytes }, Blob) end,
        }
        local db = mydb.open(%s)
        io.write(db:load("t", "e").b.bytes)
      ]]):format(H.lit(S.root)))
      assert(ok, out)
      assert.equal("xyz", out)
    end)
  end)

  describe("errors", function()
    local S = H.use_store({ tenant = "t" })

    -- Expects fn to raise handler_error naming the tag and the message, and
    -- the store to be exactly as before.
    local function assert_fails_cleanly(fn, tag, message)
      local before = snapshot_of_store(S)
      local err = H.assert_error_code(fn, "handler_error")
      assert.truthy(err.message:find("'" .. tag .. "'", 1, true), err.message)
      assert.truthy(err.message:find(message, 1, true), err.message)
      assert.equal(before, snapshot_of_store(S))
      return err
    end

    for _, what in ipairs({ "is_eligible_for", "serialize" }) do
      it("a handler raising in " .. what .. " fails save, put and put_many with handler_error; nothing is written", function()
        S.db:save("t", "u", "e", { n = 1 })
        S.db:put("t", "u", "c", "k", 1)
        local h = point_handler()
        h[what] = function(v)
          if what == "serialize" or getmetatable(v) == Point then error("broken " .. what) end
        end
        handlers.register(h)
        local function value() return { list = { 1, Point.new(1, 2) } } end
        local err = assert_fails_cleanly(function() S.db:save("t", "u", "e", value()) end, "Point", "broken " .. what)
        assert.truthy(err.message:find(what, 1, true), err.message)
        assert.truthy(err.message:find("e.list[2]", 1, true), err.message) -- the path
        assert_fails_cleanly(function() S.db:save("t", "u", "new", value()) end, "Point", "broken " .. what)
        assert_fails_cleanly(function() S.db:put("t", "u", "c", "k2", value()) end, "Point", "broken " .. what)
        assert_fails_cleanly(function() S.db:put_many("t", "u", "c", { a = 1, b = value() }) end, "Point", "broken " .. what)
        assert.is_false(S.db:exists("t", "new"))
      end)
    end

    it("a ref handler raising in serialize_to_bytes fails the save; no ref, no object, same head", function()
      handlers.register(blob_handler({ serialize_to_bytes = function() error("no bytes today") end }))
      assert_fails_cleanly(function() S.db:save("t", "u", "e", { b = blob("x") }) end, "Blob", "no bytes today")
      assert.same({}, H.object_names(S.root, nil))
    end)

    it("a failure after a ref handler already gave its bytes writes no ref", function()
      handlers.register(blob_handler())
      handlers.register(point_handler({ serialize = function() error("late failure") end }))
      assert_fails_cleanly(function()
        S.db:save("t", "u", "e", { a = blob("written?"), z = Point.new(1, 1) })
      end, "Point", "late failure")
      assert_fails_cleanly(function()
        S.db:put_many("t", "u", "c", { a = blob("written?"), z = Point.new(1, 1) })
      end, "Point", "late failure")
      assert.same({}, H.object_names(S.root, nil))
    end)

    it("keeps the handler's message when it raises a table or a mydb error, and the code is handler_error", function()
      handlers.register(point_handler({ serialize = function() error({ message = "table message" }) end }))
      assert_fails_cleanly(function() S.db:save("t", "u", "e", Point.new(1, 1)) end, "Point", "table message")
      handlers.register(point_handler({
        replace = true,
        serialize = function() mydb.errors.raise("invalid_argument", "inner mydb error") end,
      }))
      local err = assert_fails_cleanly(function() S.db:save("t", "u", "e", Point.new(1, 1)) end, "Point", "inner mydb error")
      assert.truthy(err.message:find("invalid_argument", 1, true), err.message)
    end)

    it("refuses serialize_to_bytes results that are not strings, and serialize returning the value itself", function()
      handlers.register(blob_handler({ serialize_to_bytes = function() return 42 end }))
      assert_fails_cleanly(function() S.db:save("t", "u", "e", blob("x")) end, "Blob", "must return a string")
      handlers.register(point_handler({ serialize = function(p) return p end }))
      assert_fails_cleanly(function() S.db:save("t", "u", "e", Point.new(1, 1)) end, "Point", "the value itself")
    end)

    it("a handler raising in deserialize fails load, get and records with handler_error naming it", function()
      local h = point_handler()
      handlers.register(h)
      S.db:save("t", "u", "e", { p = Point.new(1, 2) })
      S.db:put("t", "u", "c", "k", Point.new(1, 2))
      handlers.register(point_handler({ replace = true, deserialize = function() error("cannot read it") end }))
      for _, fn in ipairs({
        function() return S.db:load("t", "e") end,
        function() return S.db:get("t", "c", "k") end,
        function() return S.db:get("t", "c") end,
        function() for _ in S.db:records("t", "c") do end end,
      }) do
        local err = H.assert_error_code(fn, "handler_error")
        assert.truthy(err.message:find("'Point'", 1, true), err.message)
        assert.truthy(err.message:find("cannot read it", 1, true), err.message)
      end
    end)

    it("a ref handler raising in deserialize_from_bytes fails load with handler_error", function()
      handlers.register(blob_handler())
      S.db:save("t", "u", "e", { b = blob("abc") })
      handlers.register(blob_handler({ replace = true, deserialize_from_bytes = function(b) error("bad blob " .. b) end }))
      local err = H.assert_error_code(function() S.db:load("t", "e") end, "handler_error")
      assert.truthy(err.message:find("'Blob'", 1, true), err.message)
      assert.truthy(err.message:find("bad blob abc", 1, true), err.message)
    end)

    it("loading a value whose tag has no handler raises unknown_tag naming the tag", function()
      handlers.register(point_handler())
      handlers.register(blob_handler())
      S.db:save("t", "u", "top", Point.new(1, 1))
      S.db:save("t", "u", "nested", { deep = { list = { 1, Point.new(1, 1) } } })
      S.db:save("t", "u", "ref", { b = blob("b") })
      S.db:put("t", "u", "c", "k", { at = Point.new(1, 1) })
      handlers.unregister("Point")
      handlers.unregister("Blob")
      local cases = {
        { function() return S.db:load("t", "top") end, "Point" },
        { function() return S.db:load("t", "nested") end, "Point" },
        { function() return S.db:load("t", "ref") end, "Blob" },
        { function() return S.db:get("t", "c", "k") end, "Point" },
        { function() return S.db:load("t", "c") end, "Point" },
        { function() for _ in S.db:records("t", "c") do end end, "Point" },
      }
      for _, case in ipairs(cases) do
        local err = H.assert_error_code(case[1], "unknown_tag")
        assert.truthy(err.message:find("'" .. case[2] .. "'", 1, true), err.message)
      end
    end)

    it("an unknown tag inside another handler's payload raises unknown_tag for that tag", function()
      local set = require "mydb.handlers.set"
      local date = require "mydb.handlers.date"
      handlers.register(set)
      handlers.register(date)
      S.db:save("t", "u", "s", { s = set.new({ date.new(2024, 5, 6) }) })
      handlers.unregister("Date")
      local err = H.assert_error_code(function() S.db:load("t", "s") end, "unknown_tag")
      assert.truthy(err.message:find("'Date'", 1, true), err.message)
    end)

    it("a value stored inline whose tag now has a ref handler raises handler_error", function()
      handlers.register(point_handler())
      S.db:save("t", "u", "e", Point.new(1, 1))
      handlers.register(blob_handler({ tag = "Point", replace = true }))
      local err = H.assert_error_code(function() S.db:load("t", "e") end, "handler_error")
      assert.truthy(err.message:find("inline", 1, true), err.message)
    end)
  end)

  describe("a handler unregistered after values were saved with it", function()
    local S = H.use_store({ tenant = "t" })

    it("leaves the stored data untouched: load raises unknown_tag until it is registered again", function()
      local date = require "mydb.handlers.date"
      handlers.register(date)
      handlers.register(blob_handler())
      local d1 = S.db:save("t", "u", "e", { day = date.new(2020, 2, 2), b = blob("kept") })
      local d2 = S.db:save("t", "u", "e", { day = date.new(2021, 3, 3), b = blob("kept") })
      S.db:put("t", "u", "c", "k", date.new(2022, 4, 4))
      local before = {}
      for _, name in ipairs(H.object_names(S.root, "t")) do before[name] = require("mydb.core").sha256(H.read_object(S.root, "t", name)) end
      local refs_before = H.object_names(S.root, nil)

      assert.is_true(handlers.unregister("Date"))
      H.assert_error_code(function() S.db:load("t", "e") end, "unknown_tag")
      H.assert_error_code(function() S.db:load("t", "e", d1) end, "unknown_tag")
      H.assert_error_code(function() S.db:get("t", "c", "k") end, "unknown_tag")
      -- the rest of the store is usable: metadata, history, other entries
      assert.same({ d2, d1 }, S.db:history("t", "e"))
      assert.equal("u", S.db:meta("t", "e").user_id)
      S.db:save("t", "u", "other", { plain = true })
      -- and saving a value of the type now refuses it (its metatable is unknown)
      H.assert_error_code(function() S.db:save("t", "u", "x", date.new(2000, 1, 1)) end, "unsupported_value")

      for name, sum in pairs(before) do
        assert.equal(sum, require("mydb.core").sha256(H.read_object(S.root, "t", name)))
        assert.equal(name, sum)
      end
      assert.same(refs_before, H.object_names(S.root, nil))

      handlers.register(date)
      assert.equal("2021-03-03", tostring(S.db:load("t", "e").day))
      assert.equal("2020-02-02", tostring(S.db:load("t", "e", d1).day))
      assert.equal("kept", S.db:load("t", "e", d1).b.bytes)
      assert.equal("2022-04-04", tostring(S.db:get("t", "c", "k")))
    end)
  end)
end)
