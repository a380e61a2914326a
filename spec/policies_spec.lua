-- use_refs (issue 3 §2): classes that declare it, mydb.policies for the
-- values that do not, and the size policy shipped in handlers/.
local H = require "spec.helper"

local function object_bytes(S, digest) return H.read_object(S.root, "t", digest) end

-- Files under ROOT/refs (names only).
local function ref_files(S)
  if H.BACKEND ~= "loose" then return H.object_names(S.root, nil) end
  local list = {}
  for _, p in ipairs(H.listing(S.root .. "/refs")) do
    local name = p:match("^%./[^/]+/([^/]+)$")
    if name then list[#list + 1] = name end
  end
  return list
end

describe("use_refs", function()
  local mydb, core, policies, handlers, size_policy
  local registered_classes = {}

  local function class(name, mt)
    mt = mt or {}
    mydb.register_class(name, mt)
    registered_classes[#registered_classes + 1] = name
    return mt
  end

  local function reset()
    for _, p in ipairs(policies.list()) do policies.unregister(p) end
    for _, tag in ipairs(handlers.list()) do handlers.unregister(tag) end
    for _, name in ipairs(registered_classes) do mydb.unregister_class(name) end
    registered_classes = {}
  end

  setup(function()
    mydb = require "mydb"
    core = require "mydb.core"
    policies = require "mydb.policies"
    handlers = require "mydb.handlers"
    size_policy = require "mydb.handlers.size_policy"
  end)
  before_each(function() reset() end)
  after_each(function() reset() end)

  describe("declared by a class", function()
    local S = H.use_store({ tenant = "t" })

    local function check_ref_field(decl_where, decl)
      local mt = {}
      if decl_where == "metatable" then
        mt.use_refs = decl
      else
        mt.__index = { use_refs = decl }
      end
      class("Doc", mt)
      local big = { rows = { 1, 2, 3 }, name = "big part" }
      local d = S.db:save("t", "u", "e", setmetatable({ title = "small", big = big }, mt))
      local bytes = object_bytes(S, d)
      local digest = bytes:match('"big":{"__ref__":"(%x+)"}')
      assert.is_string(digest, bytes)
      assert.truthy(bytes:find('"title":"small"', 1, true))
      -- the ref holds the field's own canonical encoding
      assert.equal(core.encode(big), H.read_object(S.root, nil, digest))
      local v = S.db:load("t", "e")
      assert.equal(mt, getmetatable(v))
      assert.same(big, v.big)
      assert.equal("small", v.title)
    end

    it("as a function returning a list, in the metatable", function()
      check_ref_field("metatable", function() return { "big" } end)
    end)
    it("as a function returning a set, in the metatable", function()
      check_ref_field("metatable", function() return { big = true } end)
    end)
    it("as a list, in the metatable", function() check_ref_field("metatable", { "big" }) end)
    it("as a set, in the __index table", function() check_ref_field("index", { big = true }) end)
    it("as a method of the class (function Class:use_refs())", function()
      check_ref_field("index", function(self)
        assert.is_table(self.big)
        return { "big" }
      end)
    end)

    it("inherited through the __index chain", function()
      local Base = { use_refs = function() return { "blob" } end }
      local Derived = setmetatable({}, { __index = Base })
      local mt = class("Derived", { __index = Derived })
      local d = S.db:save("t", "u", "e", setmetatable({ blob = "data", x = 1 }, mt))
      assert.truthy(object_bytes(S, d):find('"blob":{"__ref__":"', 1, true))
      assert.equal("data", S.db:load("t", "e").blob)
    end)

    it("ignores named fields that are absent, and keeps integer keys inline", function()
      local mt = class("Doc", { use_refs = { "missing", "big" } })
      local d = S.db:save("t", "u", "e", setmetatable({ "one", "two", big = "B" }, mt))
      local bytes = object_bytes(S, d)
      assert.truthy(bytes:find('"one"', 1, true))
      assert.falsy(bytes:find("missing", 1, true))
      local v = S.db:load("t", "e")
      assert.same({ "one", "two", big = "B" }, setmetatable(v, nil))
    end)

    it("ref fields may hold class instances, handled values and floats, and may declare refs themselves", function()
      local date = require "mydb.handlers.date"
      handlers.register(date)
      local Inner = class("Inner", { use_refs = { "deep" } })
      local Outer = class("Outer", { use_refs = { "inner" } })
      local value = setmetatable({
        inner = setmetatable({ deep = { when = date.new(2024, 1, 2), f = 1.0, nan = 0 / 0 }, keep = 1 }, Inner),
      }, Outer)
      local d = S.db:save("t", "u", "e", value)
      assert.equal(2, #ref_files(S))
      assert.truthy(object_bytes(S, d):find('"inner":{"__ref__":"', 1, true))
      local v = S.db:load("t", "e")
      assert.equal(Outer, getmetatable(v))
      assert.equal(Inner, getmetatable(v.inner))
      assert.equal("2024-01-02", tostring(v.inner.deep.when))
      assert.equal("float", math.type(v.inner.deep.f))
      assert.is_true(v.inner.deep.nan ~= v.inner.deep.nan)
      assert.equal(1, v.inner.keep)
    end)

    it("work in record collections", function()
      local mt = class("Doc", { use_refs = { "body" } })
      S.db:put("t", "u", "c", "k", setmetatable({ body = ("b"):rep(100), n = 1 }, mt))
      assert.equal(1, #ref_files(S))
      assert.equal(("b"):rep(100), S.db:get("t", "c", "k").body)
      assert.is_false(S.db:put("t", "u", "c", "k", setmetatable({ body = ("b"):rep(100), n = 1 }, mt)))
      for _, v in S.db:records("t", "c") do assert.equal(1, v.n) end
    end)

    it("does not keep sharing between a ref field and the rest of the value", function()
      local mt = class("Doc", { use_refs = { "a" } })
      local shared = { 1 }
      S.db:save("t", "u", "e", setmetatable({ a = shared, b = shared }, mt))
      local v = S.db:load("t", "e")
      assert.same(v.a, v.b)
      assert.are_not.equal(v.a, v.b)
    end)

    it("refuses a cycle through a ref field with unsupported_value; nothing is written", function()
      local mt = class("Node", { use_refs = { "child" } })
      local parent = setmetatable({ name = "p" }, mt)
      parent.child = setmetatable({ name = "c", parent = parent }, mt)
      local before = H.store_state(S.root)
      H.assert_error_code(function() S.db:save("t", "u", "e", parent) end, "unsupported_value")
      assert.same(before, H.store_state(S.root))
      -- a cycle that stays outside refs is fine
      local other = class("Plain", {})
      local a = setmetatable({}, other)
      a.self = a
      S.db:save("t", "u", "ok", a)
      local v = S.db:load("t", "ok")
      assert.equal(v, v.self)
    end)

    it("a use_refs that raises, or gives no list, fails with handler_error naming the class", function()
      local before = H.store_state(S.root)
      local bad = {
        function() error("no refs for you") end,
        function() return "big" end,
        function() return { 42 } end,
        7,
      }
      for i, decl in ipairs(bad) do
        local name = "Bad" .. i
        local mt = class(name, { use_refs = decl })
        local err = H.assert_error_code(function()
          S.db:save("t", "u", "e", { x = setmetatable({ big = 1 }, mt) })
        end, "handler_error")
        assert.truthy(err.message:find("'" .. name .. "'", 1, true), err.message)
      end
      assert.same(before, H.store_state(S.root))
    end)

    it("a handler failing inside a ref field is handler_error and writes nothing", function()
      local Bad = {}
      handlers.register({
        tag = "Bad",
        is_eligible_for = function(v) return getmetatable(v) == Bad end,
        serialize = function() error("bad inside a ref") end,
        deserialize = function() end,
      })
      local mt = class("Doc", { use_refs = { "big" } })
      local before = H.store_state(S.root)
      local err = H.assert_error_code(function()
        S.db:save("t", "u", "e", setmetatable({ big = { ok = ("x"):rep(100), bad = setmetatable({}, Bad) } }, mt))
      end, "handler_error")
      assert.truthy(err.message:find("bad inside a ref", 1, true), err.message)
      assert.truthy(err.message:find("'Bad'", 1, true), err.message)
      assert.same(before, H.store_state(S.root))
    end)

    it("an unknown tag inside a ref field raises unknown_tag naming it", function()
      local date = require "mydb.handlers.date"
      handlers.register(date)
      local mt = class("Doc", { use_refs = { "big" } })
      S.db:save("t", "u", "e", setmetatable({ big = { when = date.new(2024, 1, 1) } }, mt))
      S.db:put("t", "u", "c", "k", setmetatable({ big = { when = date.new(2024, 1, 1) } }, mt))
      handlers.unregister("Date")
      for _, fn in ipairs({
        function() return S.db:load("t", "e") end,
        function() return S.db:get("t", "c", "k") end,
      }) do
        local err = H.assert_error_code(fn, "unknown_tag")
        assert.truthy(err.message:find("'Date'", 1, true), err.message)
      end
      handlers.register(date)
      assert.equal("2024-01-01", tostring(S.db:load("t", "e").big.when))
    end)

    it("decides alone: policies are not asked for a class that declares use_refs, even when it names none", function()
      local asked = 0
      policies.register({ use_refs = function(v) if v.big then asked = asked + 1 return { "big" } end end })
      local mt = class("Doc", { use_refs = function() return nil end })
      local d = S.db:save("t", "u", "e", setmetatable({ big = "x" }, mt))
      assert.equal(0, asked)
      assert.falsy(object_bytes(S, d):find("__ref__", 1, true))
    end)
  end)

  describe("mydb.policies", function()
    local S = H.use_store({ tenant = "t" })

    it("is the same module as require('mydb').policies", function()
      assert.equal(policies, mydb.policies)
    end)

    it("registers, lists in order and unregisters policies", function()
      local a = { use_refs = function() end }
      local b = { use_refs = function() end }
      assert.equal(a, policies.register(a))
      policies.register(b)
      assert.same({ a, b }, policies.list())
      assert.is_true(policies.unregister(a))
      assert.is_false(policies.unregister(a))
      assert.same({ b }, policies.list())
      -- list() is a copy
      table.insert(policies.list(), a)
      assert.same({ b }, policies.list())
    end)

    it("refuses what is not a policy, and a policy registered twice", function()
      H.assert_error_code(policies.register, "invalid_argument", nil)
      H.assert_error_code(policies.register, "invalid_argument", function() end)
      H.assert_error_code(policies.register, "invalid_argument", {})
      H.assert_error_code(policies.register, "invalid_argument", { use_refs = "big" })
      local p = policies.register({ use_refs = function() end })
      H.assert_error_code(policies.register, "invalid_argument", p)
      assert.same({ p }, policies.list())
    end)

    it("decides for plain tables and for class instances without use_refs", function()
      policies.register({ use_refs = function(v) return v.blob ~= nil and { "blob" } or nil end })
      local mt = class("Doc", {})
      local d1 = S.db:save("t", "u", "plain", { blob = "P", x = 1, nested = { blob = "N" } })
      local d2 = S.db:save("t", "u", "obj", setmetatable({ blob = "O" }, mt))
      local b1 = object_bytes(S, d1)
      assert.truthy(b1:find('"blob":{"__ref__":"', 1, true), b1)
      assert.truthy(b1:find('"nested":{"blob":{"__ref__":"', 1, true), b1)
      assert.truthy(object_bytes(S, d2):find('"blob":{"__ref__":"', 1, true))
      assert.same({ blob = "P", x = 1, nested = { blob = "N" } }, S.db:load("t", "plain"))
      assert.equal("O", S.db:load("t", "obj").blob)
      assert.equal(mt, getmetatable(S.db:load("t", "obj")))
      assert.equal(3, #ref_files(S))
    end)

    it("are asked in order; the first that names fields decides", function()
      local calls = {}
      policies.register({ name = "first", use_refs = function(v) calls[#calls + 1] = "first" if v.a then return { "a" } end end })
      policies.register({ name = "second", use_refs = function(v) calls[#calls + 1] = "second" return { "b" } end })
      local d = S.db:save("t", "u", "e", { a = 1, b = 2 })
      assert.truthy(object_bytes(S, d):find('"a":{"__ref__":', 1, true))
      assert.truthy(object_bytes(S, d):find('"b":2', 1, true))
      assert.same({ "first" }, calls)
      calls = {}
      d = S.db:save("t", "u", "e2", { b = 2 })
      assert.truthy(object_bytes(S, d):find('"b":{"__ref__":', 1, true))
      assert.same({ "first", "second" }, calls)
    end)

    it("a policy that raises fails the save with handler_error; nothing is written", function()
      S.db:save("t", "u", "e", { x = 1 })
      local before = H.store_state(S.root)
      policies.register({ name = "grumpy", use_refs = function() error("policy broke") end })
      local err = H.assert_error_code(function() S.db:save("t", "u", "e", { x = 2 }) end, "handler_error")
      assert.truthy(err.message:find("policy broke", 1, true), err.message)
      assert.truthy(err.message:find("grumpy", 1, true), err.message)
      assert.same(before, H.store_state(S.root))
    end)

    it("values saved under a policy still load after it is unregistered; later saves are inline", function()
      local p = policies.register({ use_refs = function(v) return v.big and { "big" } end })
      S.db:save("t", "u", "e", { big = "B" })
      policies.unregister(p)
      assert.same({ big = "B" }, S.db:load("t", "e"))
      local d = S.db:save("t", "u", "e", { big = "B2" })
      assert.truthy(object_bytes(S, d):find('"big":"B2"', 1, true))
    end)

    it("apply to records, and to the fields of ref documents", function()
      policies.register({ use_refs = function(v) return v.big and { "big" } end })
      S.db:put("t", "u", "c", "k", { big = { big = "inner" } })
      assert.equal(2, #ref_files(S))
      assert.same({ big = { big = "inner" } }, S.db:get("t", "c", "k"))
    end)
  end)

  describe("the size policy (mydb.handlers.size_policy)", function()
    local S = H.use_store({ tenant = "t" })

    it("refuses a missing or bad threshold", function()
      H.assert_error_code(size_policy.new, "invalid_argument")
      H.assert_error_code(size_policy.new, "invalid_argument", {})
      H.assert_error_code(size_policy.new, "invalid_argument", { threshold = -1 })
      H.assert_error_code(size_policy.new, "invalid_argument", { threshold = 1.5 })
      H.assert_error_code(size_policy.new, "invalid_argument", { threshold = "10" })
    end)

    it("names the string-keyed fields whose encoding is larger than the threshold", function()
      local p = size_policy.new({ threshold = 10 })
      assert.equal(10, p.threshold)
      local v = {
        s9 = ("x"):rep(8),        -- "xxxxxxxx" = 10 bytes: stays
        s10 = ("x"):rep(9),       -- 11 bytes: goes
        t = { 1, 2, 3, 4, 5 },    -- [1,2,3,4,5] = 11 bytes: goes
        small = { 1 },
        n = 123456789012,         -- 12 bytes: goes
        f = 1.5,
        b = true,
        [1] = ("y"):rep(50),      -- integer key: never
        bin = "\255\254",         -- {"__bytes__":"//4="} = 20 bytes: goes
      }
      local names = p.use_refs(v)
      table.sort(names)
      assert.same({ "bin", "n", "s10", "t" }, names)
      assert.is_nil(p.use_refs({ a = 1 }))
      assert.is_nil(p.use_refs("not a table"))
      assert.same({ "a" }, size_policy.new({ threshold = 0 }).use_refs({ a = 1 }))
    end)

    it("agrees with measuring every field exactly (random values, many thresholds)", function()
      local serializer = require "mydb.serializer"
      local seed = 12345
      local function rnd(n)
        seed = (seed * 1103515245 + 12345) % 2147483648
        return seed % n + 1
      end
      local pieces = { "a", "é", "\n", "\0", "\255", '"', "\\", "xyz", "\u{1F600}" }
      local function value(depth)
        local kind = rnd(depth > 3 and 5 or 8)
        if kind == 1 then return rnd(1000) - 500 end
        if kind == 2 then return rnd(1000) / 7 end
        if kind == 3 then return rnd(2) == 1 end
        if kind <= 5 then
          local s = {}
          for i = 1, rnd(12) - 1 do s[i] = pieces[rnd(#pieces)] end
          return table.concat(s)
        end
        local t = {}
        for _ = 1, rnd(5) - 1 do
          local k = rnd(3) == 1 and rnd(4) or ("k" .. rnd(6))
          t[k] = value(depth + 1)
        end
        return t
      end
      local cases = 0
      for _ = 1, 300 do
        local v = value(0)
        if type(v) == "table" then
          for _, threshold in ipairs({ 0, 1, 5, 10, 20, 40, 80, 200 }) do
            local want = {}
            for k, x in pairs(v) do
              if type(k) == "string" and #core.encode(x, serializer.context(nil, { no_policies = true })) > threshold then
                want[#want + 1] = k
              end
            end
            local got = size_policy.new({ threshold = threshold }).use_refs(v) or {}
            table.sort(want)
            table.sort(got)
            assert.same(want, got)
            cases = cases + 1
          end
        end
      end
      assert.is_true(cases > 500, cases)
    end)

    it("measures handled values and class instances as they are stored", function()
      local date = require "mydb.handlers.date"
      handlers.register(date)
      local F64Array = require "mydb.handlers.f64array"
      handlers.register(F64Array)
      local d = date.new(2024, 1, 1)
      local enc = #'{"__special__":"Date","day":1,"month":1,"year":2024}'
      assert.same({ "d" }, size_policy.new({ threshold = enc - 1 }).use_refs({ d = d }))
      assert.is_nil(size_policy.new({ threshold = enc }).use_refs({ d = d }))
      -- a ref handler's value is its small {"__digest__":...} object, whatever its size
      local a = F64Array.zeros(100000)
      local refenc = #'{"__digest__":"","__special__":"F64Array"}' + 64
      assert.is_nil(size_policy.new({ threshold = refenc }).use_refs({ a = a }))
      assert.same({ "a" }, size_policy.new({ threshold = refenc - 1 }).use_refs({ a = a }))
      -- a handler may take plain tables too, and grow them
      handlers.register({
        tag = "Grow",
        is_eligible_for = function(v) return rawget(v, "grow") == true end,
        serialize = function() return { padding = ("p"):rep(200) } end,
        deserialize = function() return { grow = true } end,
      })
      assert.same({ "g" }, size_policy.new({ threshold = 100 }).use_refs({ g = { grow = true }, s = { grow = false } }))
    end)

    it("sends big fields to refs when registered, and load restores them", function()
      policies.register(size_policy.new({ threshold = 64 }))
      local value = {
        title = "report",
        body = ("lorem ipsum "):rep(100),
        rows = { { 1, 2 }, { 3, 4 } },
        huge = { list = {} },
      }
      for i = 1, 200 do value.huge.list[i] = i end
      local d = S.db:save("t", "u", "doc", value)
      local bytes = object_bytes(S, d)
      assert.truthy(bytes:find('"body":{"__ref__":"', 1, true), bytes)
      assert.truthy(bytes:find('"huge":{"__ref__":"', 1, true), bytes)
      assert.truthy(bytes:find('"rows":[[1,2],[3,4]]', 1, true), bytes)
      assert.truthy(bytes:find('"title":"report"', 1, true), bytes)
      assert.truthy(#bytes < 400, #bytes)
      -- "huge" itself holds a big field ("list"): a ref inside the ref
      assert.equal(3, #ref_files(S))
      assert.same(value, S.db:load("t", "doc"))
      assert.same(value, S.open_again():load("t", "doc"))
    end)

    it("stores a big field repeated across versions once", function()
      policies.register(size_policy.new({ threshold = 100 }))
      local body = ("same body "):rep(50)
      for i = 1, 5 do S.db:save("t", "u", "doc", { version = i, body = body }) end
      assert.equal(1, #ref_files(S))
      assert.equal(5, #S.db:history("t", "doc"))
      for _, digest in ipairs(S.db:history("t", "doc")) do
        assert.equal(body, S.db:load("t", "doc", digest).body)
      end
    end)

    it("is a module returning a table with new (not itself a policy)", function()
      assert.is_function(size_policy.new)
      assert.is_nil(size_policy.use_refs)
      H.assert_error_code(policies.register, "invalid_argument", size_policy)
    end)
  end)
end)
