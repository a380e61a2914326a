-- The commit path's bytes are fixed (doc/FORMAT.md): a scripted sequence
-- of puts, deletes, batches, saves, drops and merges, with the clock and
-- the date pinned, must give the same commit ids, entry versions and
-- stored objects as the code before the commit path moved to C
-- (src/lua/lcommit.c). spec/commit_digests_fixture.lua was recorded by
-- that code (MYDB_RECORD_COMMIT_DIGESTS=1 prints a new one).
local H = require "spec.helper"
local core = require "mydb.core"
local mydb = require "mydb"

local fixture = require "spec.commit_digests_fixture"

local rng = H.rng

-- Runs the script on a fresh store of backend; returns {name = value} of
-- what it observed (commit ids, versions, the sorted object list's hash).
-- listen: an on_change listener is registered, so that every put goes
-- through the whole plan (write.commit) instead of the simple put.
local function run_script(backend, listen)
  local dir = H.tmpdir()
  local db = mydb.open(dir, { backend = backend, fsync = false })
  local events = 0
  if listen then db:on_change(function() events = events + 1 end) end
  local seen, order = {}, {}
  local function note(name, v) seen[name] = v; order[#order + 1] = name end
  local r = rng(42)
  db:init("t")
  local step = 0
  local function tip(label) step = step + 1; note(("%03d %s"):format(step, label), db:branches("t").main) end
  for i = 1, 40 do
    local k = ("k%03d"):format(r(60))
    if r(5) == 1 then
      db:delete("t", "u", "recs", k)
      tip("delete " .. k)
    else
      db:put("t", i % 3 == 0 and 'us"er\1' or "u", "recs", k,
        { i = i, f = i / 7, s = ("v"):rep(r(300)), nested = { a = { r(9), true } } },
        i % 4 == 0 and { message = "m\u{2603}\t" .. i } or nil)
      tip("put " .. k)
    end
  end
  for i = 1, 5 do
    local m = {}
    for j = 1, r(150) do m[("b%04d"):format(r(2000))] = { i = i, j = j } end
    db:put_many("t", "u", "many", m, { message = "batch é " .. i })
    tip("put_many " .. i)
  end
  db:batch("t", "u", function(b)
    b:put("recs", "zz", { x = 1 })
    b:save("config", { theme = "dark", n = 1.5 })
    b:put("other", "a", "b")
  end)
  tip("batch")
  db:save("t", "u", "config", { theme = "light" })
  tip("save")
  db:drop("t", "u", "other")
  tip("drop")
  db:put("t", "u", "recs", "zz", { x = 1 }) -- unchanged: no commit
  tip("unchanged put")
  db:branch("t", "side")
  db:checkout("t", "side")
  db:put("t", "u", "recs", "side1", { s = 1 })
  tip("side put")
  db:checkout("t", "main")
  db:put("t", "u", "recs", "main1", { m = 1 })
  tip("main put")
  db:merge("t", "u", "side")
  tip("merge")
  for _, name in ipairs({ "recs", "many", "config" }) do
    note("head " .. name, db._store:head("t", name))
  end
  local list = db._store:objects("t")
  table.sort(list)
  note("objects", core.sha256(table.concat(list, "\n")))
  note("object count", tostring(#list))
  if listen then assert.is_true(events > 40, "the listener heard the writes") end
  db:close()
  H.rmrf(dir)
  return seen, order
end

-- Pins core.realtime (an increasing float) and os.date while fn runs.
local function pinned(fn)
  local realtime, date = core.realtime, os.date
  local t = 1700000000.125
  core.realtime = function() t = t + 0.25; return t end
  os.date = function(fmt, ...) -- luacheck: ignore (the commit's date string)
    if fmt == "%Y%m%d %H:%M:%S %z" then return "20261204 20:00:00 +0000" end
    return date(fmt, ...)
  end
  local ok, a, b = pcall(fn)
  core.realtime, os.date = realtime, date
  if not ok then error(a, 0) end
  return a, b
end

describe("commit digests", function()
  for _, backend in ipairs({ "pack", "memory" }) do
    it("a scripted sequence of writes gives the recorded ids and objects (" .. backend .. ")", function()
      local seen, order = pinned(function() return run_script(backend) end)
      if os.getenv("MYDB_RECORD_COMMIT_DIGESTS") then
        local out = { "-- recorded by spec/commit_digests_spec.lua (before lcommit.c)", "return {" }
        for _, name in ipairs(order) do out[#out + 1] = ("  [%q] = %q,"):format(name, seen[name]) end
        out[#out + 1] = "}"
        print(table.concat(out, "\n"))
      end
      assert.is_true(#order > 50)
      for _, name in ipairs(order) do
        assert.are.equal(fixture[name], seen[name], name)
      end
      for name in pairs(fixture) do assert.is_not_nil(seen[name], name) end
    end)
  end

  it("the whole plan (a listener registered) gives the simple put's ids and objects", function()
    local seen = pinned(function() return run_script("pack", true) end)
    for name, v in pairs(fixture) do assert.are.equal(v, seen[name], name) end
  end)
end)
