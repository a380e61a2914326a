-- Issue 17: hostile filter and index expressions run under a memory, a
-- time and an instruction budget that count the work done inside C
-- functions, and a per-query time budget; the host state and the store are
-- left as they were.
local H = require "spec.helper"
local U = require "spec.peers_util"
local mydb = require "mydb"
local query = require "mydb.query"

-- The attacks of the issue, one record each.
local ATTACKS = {
  { expr = [[(function() local t={} for i=1,1e7 do t[i]=("x"):rep(100000) end end)()]] },
  { expr = [[("x"):rep(0):rep(2^40)]] },
  { expr = [[(""):rep(2^30)]] },
  { expr = [[(""):rep(1e9, "")]] },
  -- and what the charges must also catch
  { expr = [[(function() local s = "x" while true do s = s .. s end end)()]] },
  { expr = [[(function() local t = {} for i = 1, 1e9 do t[i] = {i} end end)()]] },
  { expr = [[("a"):rep(5000):find(".-.-.-.-b")]] },
  { expr = [[("x"):rep(1e9) == ""]] },
}

local function drain(it)
  local n = 0
  for _ in it do n = n + 1 end
  return n
end

local function budget_error(f, ...)
  local ok, err = pcall(f, ...)
  assert.is_false(ok, "expected a budget error")
  assert.is_table(err, tostring(err))
  assert.equal("invalid_argument", err.code, err.message)
  assert.truthy(err.message:find("budget", 1, true), err.message)
  return err
end

describe("sandbox: hostile expressions", function()
  local S = H.use_store({ tenant = "t" })
  local db
  before_each(function()
    db = S.db
    db:put("t", "u", "c", "k", { name = "x", n = 1 })
  end)

  for _, a in ipairs(ATTACKS) do
    it("a filter is stopped by a budget: " .. a.expr, function()
      local hook = function() end
      debug.sethook(hook, "", 1 << 30) -- the host's own hook (mydb-lua's Ctrl-C)
      local before = collectgarbage("count")
      budget_error(function() return drain(db:query("t", "c", { filter = a.expr })) end)
      local h = debug.gethook()
      debug.sethook()
      assert.equal(hook, h) -- untouched
      collectgarbage()
      assert.is_true(collectgarbage("count") < before + 1024) -- the host grew by < 1 MiB
      -- the store answers as before
      assert.same({ name = "x", n = 1 }, db:get("t", "c", "k"))
      assert.equal(1, drain(db:query("t", "c", { filter = "n == 1" })))
    end)

    it("an expression index is refused whole: " .. a.expr, function()
      local d = db:get_digest("t", "c")
      budget_error(db.create_index, db, "t", "u", "c", "bad", a.expr)
      assert.equal(d, db:get_digest("t", "c")) -- no half-built index, no version
      H.assert_error_code(db.query_index, "not_found", db, "t", "c", "bad")
      db:put("t", "u", "c", "k2", { name = "y", n = 2 }) -- writes go on
      assert.equal(2, drain(db:query("t", "c")))
    end)
  end

  it("memory stays within the budget, and is given back after an evaluation that ran out", function()
    local budget = query.budget({ memory = 1 << 20 })
    local eval, sb = query.compile([[(function() local t = {} for i = 1, 1e6 do t[i] = {i} end end)()]],
      budget)
    local err = budget_error(eval, { n = 1 })
    assert.truthy(err.message:find("memory budget (1048576 bytes)", 1, true), err.message)
    local st = sb:stats()
    assert.is_true(st.peak <= 1 << 20, st.peak)
    assert.is_true(st.used < 256 * 1024, st.used) -- the garbage was collected
  end)

  it("each budget names itself, and each can be raised", function()
    local loop = "(function() local n = 0 for i = 1, 200000 do n = n + i end return n end)()"
    local err = budget_error(function()
      return drain(db:query("t", "c", { filter = loop, budget = { instructions = 10000 } }))
    end)
    assert.truthy(err.message:find("instruction budget (10000)", 1, true), err.message)
    assert.equal(1, drain(db:query("t", "c", { filter = loop .. " > 0",
      budget = { instructions = 10000000, time = 5 } })))

    err = budget_error(function()
      return drain(db:query("t", "c", { filter = [[("y"):rep(100000) ~= ""]], budget = { memory = 65536 } }))
    end)
    assert.truthy(err.message:find("memory budget", 1, true), err.message)
    assert.equal(1, drain(db:query("t", "c", { filter = [[("y"):rep(100000) ~= ""]] })))

    -- the time budget: a loop with instructions to spare, one microsecond of CPU
    err = budget_error(function()
      return drain(db:query("t", "c", { filter = "(function() while true do end end)()",
        budget = { instructions = math.maxinteger, time = 1e-6 } }))
    end)
    assert.truthy(err.message:find("time budget", 1, true), err.message)
  end)

  it("a large instruction budget does not stretch the time budget inside one C call", function()
    for _, expr in ipairs({ [[("x"):rep(0):rep(2^40)]], [[(""):rep(1e12)]], [[(""):rep(1e12, "")]] }) do
      local err = budget_error(function()
        return drain(db:query("t", "c", { filter = expr, budget = { instructions = math.maxinteger } }))
      end)
      assert.truthy(err.message:find("time budget", 1, true), err.message)
    end
  end)

  it("the time budget sees C work between two hooks (concatenation of large strings)", function()
    local err = budget_error(function()
      return drain(db:query("t", "c", {
        filter = [[(function() local s = ("x"):rep(4000000) for i = 1, 1e6 do local u = s .. i end end)()]],
        budget = { instructions = math.maxinteger, time = 0.01 } }))
    end)
    assert.truthy(err.message:find("time budget", 1, true), err.message)
  end)

  it("string functions are charged before they run: a plain find is linear, patterns pay their worst case", function()
    local text = ("a"):rep(100000) .. "zz"
    db:put("t", "u", "c", "long", { text = text })
    assert.same({ "long" }, U.firsts(db:query("t", "c", { filter = [[text and text:find("zz", 1, true) ~= nil]] })))
    assert.same({ "long" }, U.firsts(db:query("t", "c", { filter = [[text and text:find("zz") ~= nil]] })))
    budget_error(function()
      return drain(db:query("t", "c", { filter = [[text and text:match("a-a-zz") ~= nil]] }))
    end)
  end)

  it("a per-query time budget bounds a filter that is cheap per record", function()
    local many = {}
    for i = 1, 3000 do many[("r%05d"):format(i)] = { n = i } end
    db:put_many("t", "u", "c", many)
    db:put_many("t", "u", "d", many)
    -- no record matches: the filter runs over every record in one call
    local err = budget_error(function()
      return drain(db:query("t", "c", { filter = "n < 0", budget = { query_time = 1e-6 } }))
    end)
    assert.truthy(err.message:find("query time budget", 1, true), err.message)
    assert.equal(0, drain(db:query("t", "c", { filter = "n < 0", budget = { query_time = 60 } })))
    -- a scan shares one budget across its collections
    err = budget_error(function() return drain(db:scan("t", { budget = { query_time = 1e-6 } })) end)
    assert.truthy(err.message:find("query time budget", 1, true), err.message)
    assert.equal(6001, drain(db:scan("t", { budget = { query_time = 60 } })))
    -- and query_index too
    db:create_index("t", "u", "c", "by_n", "n")
    err = budget_error(function()
      return drain(db:query_index("t", "c", "by_n", { budget = { query_time = 1e-6 } }))
    end)
    assert.truthy(err.message:find("query time budget", 1, true), err.message)
  end)

  it("mydb.open's budget option sets the defaults; opts.budget overrides them per call", function()
    local db2 = S.open_again({ fsync = false, budget = { instructions = 5000 } })
    local loop = "(function() local n = 0 for i = 1, 20000 do n = n + i end return n > 0 end)()"
    budget_error(function() return drain(db2:query("t", "c", { filter = loop })) end)
    assert.equal(1, drain(db2:query("t", "c", { filter = loop, budget = { instructions = 1000000 } })))
    -- expression indexes take the handle's budget
    budget_error(db2.create_index, db2, "t", "u", "c", "slow", "(function() for i = 1, 20000 do end return n end)()")
  end)

  it("bad budgets are invalid_argument", function()
    for _, b in ipairs({ 1, { memory = 10 }, { memory = 1.5 }, { time = 0 }, { time = "1" },
                         { instructions = -1 }, { query_time = 0 }, { cpu = 1 } }) do
      H.assert_error_code(db.query, "invalid_argument", db, "t", "c", { filter = "true", budget = b })
      H.assert_error_code(mydb.open, "invalid_argument", S.root .. "-x", { budget = b })
    end
  end)

  it("the record reaches the expression as plain data: nested tables, arrays, shared tables", function()
    local shared = { city = "Oslo" }
    db:put("t", "u", "c", "p", { addr = shared, home = shared, tags = { "a", "b" }, [1] = "one" })
    local function match(expr) return U.firsts(db:query("t", "c", { filter = expr })) end
    assert.same({ "p" }, match([[addr and addr.city == "Oslo" and home.city == "Oslo"]]))
    assert.same({ "p" }, match([[tags and #tags == 2 and tags[2] == "b"]]))
    assert.same({ "p" }, match([[tags and addr ~= nil and (function() return true end)()]]))
    assert.same({ "k", "p" }, match([[{}]])) -- any table is true
    -- nothing of the host is reachable
    for _, expr in ipairs({ "string", "_G", "print", "pcall", "load", "collectgarbage", "_ENV.os" }) do
      assert.same({}, match(expr .. " ~= nil"), expr)
    end
  end)

  it("an index expression that returns a table is refused", function()
    local err = H.assert_error_code(db.create_index, "invalid_argument", db, "t", "u", "c", "t", "{}")
    assert.truthy(err.message:find("returned a table", 1, true), err.message)
  end)
end)
