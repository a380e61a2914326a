-- Issue 7 §2: db:query (key order, prefix, inclusive from/to, reverse,
-- limit, digest, filters as functions and as sandboxed string expressions)
-- and db:scan across a tenant's collections.
local H = require "spec.helper"
local U = require "spec.peers_util"
local query = require "mydb.query"

-- These specs call set_ttl, create_index and drop_index in the original
-- order (user last), which mydb.argorder still reads: its warning is
-- silenced here (spec/argorder_spec.lua specs it).
setup(function() require("mydb").deprecation_warnings = false end)
teardown(function() require("mydb").deprecation_warnings = true end)

local PEOPLE = {
  ["user#01"] = { name = "Jane", age = 34, addr = { city = "Oslo", zip = 1 } },
  ["user#02"] = { name = "Bob", age = 22, addr = { city = "Rome", zip = 2 } },
  ["user#03"] = { name = "John", age = 41, addr = { city = "Oslo", zip = 3 } },
  ["user#04"] = { name = "Ann", age = 30 },
  ["user#10"] = { name = "Jim", age = 29, addr = { city = "Lima", zip = 4 } },
  ["role#1"] = { role = "admin" },
  ["role#2"] = { role = "sender" },
  ["zeta"] = { name = "Zed", age = 77 },
}

describe("peers: query", function()
  local S = H.use_store({ tenant = "t" })
  local db
  before_each(function()
    db = S.db
    db:put_many("t", "u", "p", PEOPLE)
  end)

  local function keys(opts) return U.firsts(db:query("t", "p", opts)) end

  it("yields key, value in key order", function()
    local rows = U.rows(db:query("t", "p"))
    assert.same({ "role#1", "role#2", "user#01", "user#02", "user#03", "user#04", "user#10", "zeta" },
      U.firsts(db:query("t", "p")))
    for _, r in ipairs(rows) do assert.same(PEOPLE[r[1]], r[2]) end
    assert.same(keys(nil), keys({}))
  end)

  it("prefix", function()
    assert.same({ "role#1", "role#2" }, keys({ prefix = "role#" }))
    assert.same({ "user#01", "user#02", "user#03", "user#04" }, keys({ prefix = "user#0" }))
    assert.same({}, keys({ prefix = "nobody" }))
    assert.equal(8, #keys({ prefix = "" }))
  end)

  it("from and to are inclusive", function()
    assert.same({ "user#02", "user#03", "user#04" }, keys({ from = "user#02", to = "user#04" }))
    assert.same({ "user#10", "zeta" }, keys({ from = "user#10" }))
    assert.same({ "role#1", "role#2", "user#01" }, keys({ to = "user#01" }))
    -- bounds that are not keys
    assert.same({ "user#01", "user#02" }, keys({ from = "user#", to = "user#025" }))
    assert.same({}, keys({ from = "user#05", to = "user#09" }))
    assert.same({}, keys({ from = "z", to = "a" }))
    assert.same({ "zeta" }, keys({ from = "zeta", to = "zeta" }))
  end)

  it("prefix, from and to combined", function()
    assert.same({ "user#02", "user#03" }, keys({ prefix = "user#0", from = "user#02", to = "user#03" }))
    assert.same({ "user#01", "user#02" }, keys({ prefix = "user#0", from = "a", to = "user#02" }))
    assert.same({ "user#04" }, keys({ prefix = "user#0", from = "user#04", to = "zzz" }))
    assert.same({}, keys({ prefix = "role#", from = "user#" }))
  end)

  it("reverse, with bounds and prefix", function()
    assert.same({ "zeta", "user#10", "user#04", "user#03", "user#02", "user#01", "role#2", "role#1" },
      keys({ reverse = true }))
    assert.same({ "user#04", "user#03", "user#02" }, keys({ reverse = true, from = "user#02", to = "user#04" }))
    assert.same({ "role#2", "role#1" }, keys({ reverse = true, prefix = "role#" }))
    assert.same({ "user#03", "user#02" },
      keys({ reverse = true, prefix = "user#0", from = "user#02", to = "user#03" }))
    assert.same({ "user#10", "user#04" }, keys({ reverse = true, prefix = "user#", limit = 2 }))
    assert.same(keys({}), keys({ reverse = false }))
  end)

  it("limit: 0, 1, and more than match", function()
    assert.same({}, keys({ limit = 0 }))
    assert.same({ "role#1" }, keys({ limit = 1 }))
    assert.same({ "role#1", "role#2" }, keys({ prefix = "role#", limit = 50 }))
    assert.same({ "user#02", "user#03" }, keys({ from = "user#02", limit = 2 }))
  end)

  it("digest queries an older version", function()
    local old = db:get_digest("t", "p")
    db:delete("t", "u", "p", "role#1")
    db:put("t", "u", "p", "role#3", { role = "x" })
    assert.same({ "role#2", "role#3" }, keys({ prefix = "role#" }))
    assert.same({ "role#1", "role#2" }, keys({ prefix = "role#", digest = old }))
    assert.same({ "role#2", "role#1" }, keys({ prefix = "role#", digest = old, reverse = true }))
    H.assert_error_code(db.query, "not_found", db, "t", "p", { digest = ("0"):rep(64) })
  end)

  describe("filter as a function", function()
    it("gets key and value; truthy keeps the record", function()
      local seen = {}
      local got = keys({ filter = function(k, v)
        seen[#seen + 1] = k
        return type(v.age) == "number" and v.age >= 30
      end })
      assert.same({ "user#01", "user#03", "user#04", "zeta" }, got)
      assert.equal(8, #seen)
      assert.same({ "role#2" }, keys({ filter = function(k) return k:sub(-1) == "2" and k:sub(1, 1) == "r" end }))
      assert.same({ "user#04" }, keys({ filter = function(_, v) return v.name == "Ann" end }))
    end)

    it("combines with bounds, reverse and limit (limit counts kept records)", function()
      local f = function(_, v) return v.addr ~= nil end
      assert.same({ "user#10", "user#03" }, keys({ filter = f, reverse = true, limit = 2 }))
      assert.same({ "user#02", "user#03" }, keys({ filter = f, from = "user#02", to = "user#04" }))
    end)

    it("an error in it propagates as raised", function()
      local ok, err = pcall(function()
        for _ in db:query("t", "p", { filter = function() error("boom") end }) do end
      end)
      assert.is_false(ok)
      assert.truthy(tostring(err):find("boom", 1, true))
    end)
  end)

  describe("filter as a string expression", function()
    it("comparisons, and/or/not", function()
      assert.same({ "user#01", "user#03", "user#04", "zeta" }, keys({ filter = "age and age >= 30" }))
      assert.same({ "user#01", "user#03" }, keys({ filter = "age and age >= 30 and age < 50 and addr ~= nil" }))
      assert.same({ "user#02", "zeta" }, keys({ filter = "age == 22 or name == 'Zed'" }))
      assert.same({ "role#1", "role#2" }, keys({ filter = "not age" }))
      assert.same({ "role#1" }, keys({ filter = [[role == "admin"]] }))
    end)

    it("string methods: name:match", function()
      -- the issue's example, on the records that have the fields
      assert.same({ "user#01", "user#03" }, keys({ filter = 'age >= 30 and name:match("^J")', prefix = "user#" }))
      assert.same({ "user#01", "user#03", "user#10" }, keys({ filter = 'name and name:match("^J") ~= nil' }))
      assert.same({ "user#02" }, keys({ filter = 'name and name:lower() == "bob"' }))
      assert.same({ "user#03" }, keys({ filter = 'name and #name == 4 and name:sub(1, 2) == "Jo"' }))
    end)

    it("nested fields a.b", function()
      assert.same({ "user#01", "user#03" }, keys({ filter = 'addr and addr.city == "Oslo"' }))
      assert.same({ "user#03", "user#10" }, keys({ filter = "addr and addr.zip >= 3" }))
    end)

    it("with bounds, reverse and limit", function()
      assert.same({ "user#03" }, keys({ filter = "age > 40", prefix = "user#" }))
      assert.same({ "zeta", "user#03" }, keys({ filter = "age and age > 40", reverse = true }))
      assert.same({ "user#01" }, keys({ filter = "age and age > 30", limit = 1 }))
    end)

    it("a record that is not a table has no fields", function()
      db:put("t", "u", "p", "plain", 5)
      assert.same({ "plain" }, keys({ filter = "age == nil and name == nil and role == nil" }))
    end)

    it("cannot reach io, os, require, load, debug, print, _G (they are nil)", function()
      for _, name in ipairs({ "io", "os", "require", "load", "debug", "print", "_G", "dofile",
                              "loadfile", "setmetatable", "getmetatable", "rawset", "collectgarbage",
                              "package", "string", "pcall", "_ENV.io" }) do
        local isnil = U.firsts(db:query("t", "p", { filter = name .. " == nil" }))
        assert.equal(8, #isnil, name .. " should be nil in a filter")
      end
      for _, expr in ipairs({ 'io.write("x")', 'os.exit(3)', 'require("os")', 'load("return 1")()',
                              'debug.getinfo(1)', 'print("leak")', '_G.os', 'dofile("/etc/passwd")',
                              'package.loaded.os', 'collectgarbage()' }) do
        local ok, err = pcall(function() for _ in db:query("t", "p", { filter = expr }) do end end)
        assert.is_false(ok, expr)
        assert.equal("invalid_argument", err.code, expr)
        assert.truthy(err.message:find("nil value", 1, true), err.message)
      end
    end)

    it("refuses assignments", function()
      for _, expr in ipairs({ "x = 1", "age = 1", "a = io" }) do
        local err = H.assert_error_code(db.query, "invalid_argument", db, "t", "p", { filter = expr })
        assert.truthy(err.message:find("compile", 1, true), err.message)
      end
      -- an assignment inside a function body compiles but fails when run
      local ok, err = pcall(function()
        for _ in db:query("t", "p", { filter = "(function() x = 1 end)()" }) do end
      end)
      assert.is_false(ok)
      assert.equal("invalid_argument", err.code)
      assert.truthy(err.message:find("assign", 1, true), err.message)
      assert.is_nil(rawget(_G, "x"))
    end)

    it("a runaway filter stops at the instruction budget, in bounded time", function()
      local t0 = os.time()
      local ok, err = pcall(function()
        for _ in db:query("t", "p", { filter = "(function() while true do end end)()" }) do end
      end)
      assert.is_false(ok)
      assert.equal("invalid_argument", err.code)
      assert.truthy(err.message:find("budget", 1, true), err.message)
      assert.is_true(os.time() - t0 <= 3)
      -- the hook is gone afterwards: ordinary code runs long loops
      local n = 0
      for i = 1, 3 * query.DEFAULT_BUDGET.instructions do n = n + i % 2 end
      assert.is_true(n > 0)
      assert.is_nil(debug.gethook())
    end)

    -- String methods run in C, out of the hook's reach: the sandbox charges
    -- them (pattern cost, rep size) before they run.
    it("a catastrophic pattern stops at the budget too", function()
      local t0 = os.clock()
      local ok, err = pcall(function()
        for _ in db:query("t", "p", { prefix = "zeta", -- one record
          filter = [[("a"):rep(22):match(("a*"):rep(10) .. "b")]] }) do end
      end)
      local spent = os.clock() - t0
      assert.is_false(ok, ("the filter ran to its end in %.2f s"):format(spent))
      assert.equal("invalid_argument", err.code)
      assert.is_true(spent < 0.5, ("%.2f s"):format(spent))
    end)

    it("a filter cannot build a huge string with rep, and string methods work again after it", function()
      local ok, err = pcall(function()
        for _ in db:query("t", "p", { filter = [[("x"):rep(1e9) == ""]] }) do end
      end)
      assert.is_false(ok)
      assert.equal("invalid_argument", err.code)
      assert.truthy(err.message:find("memory budget", 1, true), err.message)
      assert.equal(3 * (1 << 20), #("abc"):rep(1 << 20)) -- outside a filter: unbounded
    end)

    it("a recursive filter stops too", function()
      local ok, err = pcall(function()
        for _ in db:query("t", "p", { filter = "(function(f) return f(f) end)(function(f) return f(f) end)" }) do end
      end)
      assert.is_false(ok)
      assert.equal("invalid_argument", err.code)
    end)

    it("a syntax error is invalid_argument when the query is made", function()
      for _, expr in ipairs({ "age >", "and", "(", "age >= 30 end", "" }) do
        local err = H.assert_error_code(db.query, "invalid_argument", db, "t", "p", { filter = expr })
        assert.truthy(err.message:find("filter", 1, true), err.message)
      end
      H.assert_error_code(db.query, "invalid_argument", db, "t", "p", { filter = ("x"):rep(5000) })
    end)

    it("a run-time error names the filter (a missing field is nil, as in Lua)", function()
      for _, expr in ipairs({ "name:match('x')", "age >= 30" }) do -- roles have no name, no age
        local ok, err = pcall(function()
          for _ in db:query("t", "p", { filter = expr }) do end
        end)
        assert.is_false(ok)
        assert.equal("invalid_argument", err.code)
        assert.truthy(err.message:find("filter", 1, true), err.message)
      end
    end)
  end)

  it("breaking out of the iterator early works, and the next query is whole", function()
    local n = 0
    for k in db:query("t", "p") do
      n = n + 1
      if k == "role#2" then break end
    end
    assert.equal(2, n)
    for _ in db:query("t", "p", { filter = "age and age > 0" }) do break end
    assert.is_nil(debug.gethook())
    assert.equal(8, #keys())
    -- an iterator left half-way and resumed later goes on
    local it = db:query("t", "p", { prefix = "user#" })
    assert.equal("user#01", (it()))
    db:put("t", "u", "p", "user#00", { name = "New" })
    assert.equal("user#02", (it()))
  end)

  it("refuses unknown options and bad option types", function()
    local function bad(opts) return H.assert_error_code(db.query, "invalid_argument", db, "t", "p", opts) end
    local err = bad({ starts_with = "a" })
    assert.truthy(err.message:find("starts_with", 1, true), err.message)
    bad({ direction = "desc" })
    bad({ [1] = "x" })
    bad("prefix")
    bad(5)
    bad(true)
    for _, v in ipairs({ 1, true, {}, "a\0b", ("k"):rep(1025) }) do
      bad({ prefix = v })
      bad({ from = v })
      bad({ to = v })
    end
    for _, v in ipairs({ -1, 1.5, "3", true, {}, 0 / 0, math.huge }) do bad({ limit = v }) end
    for _, v in ipairs({ 1, "true", {}, 0 }) do bad({ reverse = v }) end
    for _, v in ipairs({ 1, true, {}, ("0"):rep(63), ("A"):rep(64), ("g"):rep(64) }) do bad({ digest = v }) end
    for _, v in ipairs({ 1, true, {} }) do bad({ filter = v }) end
  end)

  it("refuses bad tenant and entry arguments", function()
    H.assert_error_code(db.query, "invalid_argument", db, 1, "p")
    H.assert_error_code(db.query, "invalid_argument", db, "t", 1)
    H.assert_error_code(db.query, "invalid_argument", db, "t", "")
    H.assert_error_code(db.query, "not_initialized", db, "other", "p")
    H.assert_error_code(db.query, "invalid_argument", db.query, "t", "p")
  end)

  it("on a snapshot entry: type_mismatch; on a missing entry: not_found", function()
    db:save("t", "u", "config", { a = 1 })
    H.assert_error_code(db.query, "type_mismatch", db, "t", "config")
    H.assert_error_code(db.query, "type_mismatch", db, "t", "config", { prefix = "a" })
    H.assert_error_code(db.query, "not_found", db, "t", "missing")
  end)
end)

describe("peers: scan", function()
  local S = H.use_store({ tenant = "t" })
  local db
  before_each(function()
    db = S.db
    db:put_many("t", "u", "b-users", { u2 = { age = 20 }, u1 = { age = 50 } })
    db:save("t", "u", "a-config", { theme = "dark" })
    db:put_many("t", "u", "a-orders", { o1 = { total = 5 }, o3 = { total = 50 }, o2 = { total = 7 } })
    db:save("t", "u", "c-snap", { x = 1 })
    db:put("t", "u", "d-empty", "x", 1)
    db:delete("t", "u", "d-empty", "x")
    db:put("t", "u", "e-last", "z", { age = 99 })
  end)

  local function rows(opts)
    local out = {}
    for e, k, v in db:scan("t", opts) do out[#out + 1] = { e, k, v } end
    return out
  end

  -- the keys a scan yields
  local function skeys(opts)
    local out = {}
    for _, k in db:scan("t", opts) do out[#out + 1] = k end
    return out
  end

  it("yields entry, key, value in entry then key order; snapshots are skipped", function()
    assert.same({
      { "a-orders", "o1", { total = 5 } }, { "a-orders", "o2", { total = 7 } },
      { "a-orders", "o3", { total = 50 } },
      { "b-users", "u1", { age = 50 } }, { "b-users", "u2", { age = 20 } },
      { "e-last", "z", { age = 99 } },
    }, rows())
    assert.same(rows(), rows({}))
  end)

  it("options apply per collection", function()
    local r = rows({ prefix = "u" })
    assert.same({ { "b-users", "u1", { age = 50 } }, { "b-users", "u2", { age = 20 } } }, r)
    assert.same({ "o3", "o2", "o1", "u2", "u1", "z" }, skeys({ reverse = true }))
    assert.same({ "o2", "o3" }, skeys({ from = "o2", to = "o9" }))
    assert.same({ "o1", "o2" }, skeys({ prefix = "o", to = "o2" }))
    local f = rows({ filter = "(age or total or 0) >= 50" })
    assert.same({ { "a-orders", "o3", { total = 50 } }, { "b-users", "u1", { age = 50 } },
                  { "e-last", "z", { age = 99 } } }, f)
    local g = rows({ filter = function(k, v) return k == "u2" or v.total == 7 end })
    assert.same({ { "a-orders", "o2", { total = 7 } }, { "b-users", "u2", { age = 20 } } }, g)
  end)

  it("limit applies to the whole scan", function()
    assert.same({}, rows({ limit = 0 }))
    assert.same({ { "a-orders", "o1", { total = 5 } } }, rows({ limit = 1 }))
    local r = rows({ limit = 4 })
    assert.equal(4, #r)
    assert.same({ "b-users", "u1" }, { r[4][1], r[4][2] })
    assert.equal(2, #rows({ limit = 2, filter = "age ~= nil" }))
    assert.equal(3, #rows({ limit = 10, filter = "age ~= nil" }))
  end)

  it("breaking out early works", function()
    local n = 0
    for _ in db:scan("t") do
      n = n + 1
      if n == 2 then break end
    end
    assert.equal(2, n)
  end)

  it("sees TTL (hidden records skipped)", function()
    db._now = function() return 30 end -- u2 (age 20) has expired, u1 (age 50) not yet
    db:set_ttl("t", "b-users", "age")
    assert.same({ "o1", "o2", "o3", "u1", "z" }, skeys())
  end)

  it("of a tenant without collections yields nothing", function()
    db:init("empty")
    assert.same({}, U.firsts(db:scan("empty")))
    db:save("empty", "u", "s", 1)
    assert.same({}, U.firsts(db:scan("empty")))
  end)

  it("refuses bad options and arguments", function()
    local function bad(opts) H.assert_error_code(db.scan, "invalid_argument", db, "t", opts) end
    bad({ digest = db:get_digest("t", "b-users") })
    bad({ nope = 1 })
    bad({ limit = -1 })
    bad({ reverse = "yes" })
    bad({ filter = 3 })
    bad({ filter = "age >" })
    bad({ prefix = 1 })
    bad("x")
    H.assert_error_code(db.scan, "invalid_argument", db, 5)
    H.assert_error_code(db.scan, "not_initialized", db, "other")
  end)
end)

describe("peers: query and query_index against a brute-force model", function()
  local S = H.use_store({ tenant = "t" })

  it("random prefix/from/to/reverse/limit on a collection of many pieces", function()
    local db = S.db
    local rnd = 12345
    local function random(n) -- a small LCG: the same cases on every run
      rnd = (rnd * 1103515245 + 12345) % 2147483648
      return rnd % n
    end
    local alphabet = { "a", "b", "c", "ab", "ba", "\255", "zz" }
    local function word(max)
      local k = ""
      for _ = 1, random(max + 1) do k = k .. alphabet[random(#alphabet) + 1] end
      return k
    end
    local items, keys = {}, {}
    for _ = 1, 700 do items[word(3) .. random(100)] = { n = random(101) - 50 } end
    for k in pairs(items) do keys[#keys + 1] = k end
    table.sort(keys)
    db:put_many("t", "u", "c", items)
    db:create_index("t", "c", "n", "n")
    local function cut(list, opts)
      if opts.reverse then
        local r = {}
        for i = #list, 1, -1 do r[#r + 1] = list[i] end
        list = r
      end
      if opts.limit then
        local r = {}
        for i = 1, math.min(opts.limit, #list) do r[i] = list[i] end
        list = r
      end
      return list
    end
    for _ = 1, 400 do
      local opts = {}
      if random(2) == 0 then opts.prefix = word(2) end
      if random(2) == 0 then opts.from = word(3) end
      if random(2) == 0 then opts.to = word(3) .. (random(2) == 0 and random(100) or "") end
      if random(2) == 0 then opts.reverse = true end
      if random(3) == 0 then opts.limit = random(20) end
      local expected = {}
      for _, k in ipairs(keys) do
        if (not opts.prefix or k:sub(1, #opts.prefix) == opts.prefix)
            and (not opts.from or k >= opts.from) and (not opts.to or k <= opts.to) then
          expected[#expected + 1] = k
        end
      end
      assert.same(cut(expected, opts), U.firsts(db:query("t", "c", opts)))
    end
    local by_n = {}
    for k, v in pairs(items) do by_n[#by_n + 1] = { v.n, k } end
    table.sort(by_n, function(a, b) if a[1] ~= b[1] then return a[1] < b[1] end return a[2] < b[2] end)
    for _ = 1, 150 do
      local opts = {}
      if random(3) > 0 then opts.from = random(121) - 60 end
      if random(3) > 0 then opts.to = random(121) - 60 end
      if random(2) == 0 then opts.reverse = true end
      if random(3) == 0 then opts.limit = random(30) end
      local expected = {}
      for _, p in ipairs(by_n) do
        if (not opts.from or p[1] >= opts.from) and (not opts.to or p[1] <= opts.to) then
          expected[#expected + 1] = p[2]
        end
      end
      assert.same(cut(expected, opts), U.firsts(db:query_index("t", "c", "n", opts)))
    end
  end)
end)
