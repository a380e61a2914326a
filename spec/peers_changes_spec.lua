-- Issue 7 §5: change streams. db:on_change(fn) calls fn after each
-- committed change made through the handle; db:changes(tenant, since)
-- lists changes from the history, so other processes' changes too.
local H = require "spec.helper"
local U = require "spec.peers_util"

-- These specs call set_ttl, create_index and drop_index in the original
-- order (user last), which mydb.argorder still reads: its warning is
-- silenced here (spec/argorder_spec.lua specs it).
setup(function() require("mydb").deprecation_warnings = false end)
teardown(function() require("mydb").deprecation_warnings = true end)

-- The fields of an event the spec compares (date left out).
local function ev(e)
  return { action = e.action, tenant = e.tenant, entry = e.entry, key = e.key, old = e.old,
           new = e.new, digest = e.digest, user_id = e.user_id }
end

describe("peers: on_change", function()
  local S = H.use_store({ tenant = "t" })
  local db, events, handle
  before_each(function()
    db = S.db
    events = {}
    handle = db:on_change(function(e) events[#events + 1] = e end)
  end)

  it("save: old and new values, the new digest, the user", function()
    local d1 = db:save("t", "alice", "config", { theme = "dark" })
    local d2 = db:save("t", "bob", "config", { theme = "light" })
    assert.same({
      { action = "save", tenant = "t", entry = "config", new = { theme = "dark" }, digest = d1, user_id = "alice" },
      { action = "save", tenant = "t", entry = "config", old = { theme = "dark" }, new = { theme = "light" },
        digest = d2, user_id = "bob" },
    }, { ev(events[1]), ev(events[2]) })
    assert.equal(2, #events)
  end)

  it("put, put_many (one event per changed key), delete", function()
    db:put("t", "u", "users", "ann", { age = 31 })
    local d1 = db:get_digest("t", "users")
    db:put_many("t", "u2", "users", { ann = { age = 31 }, bob = { age = 22 }, cy = { age = 40 } })
    local d2 = db:get_digest("t", "users")
    db:put("t", "u3", "users", "ann", { age = 32 })
    local d3 = db:get_digest("t", "users")
    db:delete("t", "u4", "users", "bob")
    local d4 = db:get_digest("t", "users")
    local got = {}
    for i, e in ipairs(events) do got[i] = ev(e) end
    assert.same({
      { action = "put", tenant = "t", entry = "users", key = "ann", new = { age = 31 }, digest = d1, user_id = "u" },
      { action = "put", tenant = "t", entry = "users", key = "bob", new = { age = 22 }, digest = d2, user_id = "u2" },
      { action = "put", tenant = "t", entry = "users", key = "cy", new = { age = 40 }, digest = d2, user_id = "u2" },
      { action = "put", tenant = "t", entry = "users", key = "ann", old = { age = 31 }, new = { age = 32 },
        digest = d3, user_id = "u3" },
      { action = "delete", tenant = "t", entry = "users", key = "bob", old = { age = 22 }, digest = d4,
        user_id = "u4" },
    }, got)
  end)

  it("drop: the entry, no digest", function()
    db:save("t", "u", "config", 1)
    events = {}
    db:drop("t", "dropper", "config")
    assert.equal(1, #events)
    assert.same({ action = "drop", tenant = "t", entry = "config", user_id = "dropper" }, ev(events[1]))
  end)

  it("batch: an event for every change, after the commit, with each entry's digest", function()
    db:put("t", "u", "users", "ann", 1)
    db:save("t", "u", "config", 1)
    db:save("t", "u", "old", 1)
    events = {}
    local seen_at_event
    db:on_change(function(e)
      if not seen_at_event then
        -- the whole batch is visible from the first event on
        seen_at_event = { db:get("t", "users", "bob"), db:load("t", "config"), db:exists("t", "old") }
      end
    end)
    db:batch("t", "b", function(b)
      b:put("users", "bob", 2)
      b:delete("users", "ann")
      b:save("config", 2)
      b:drop("old")
    end)
    assert.same({ 2, 2, false }, seen_at_event)
    local got = {}
    for i, e in ipairs(events) do got[i] = ev(e) end
    table.sort(got, function(a, b2) return (a.entry .. (a.key or "")) < (b2.entry .. (b2.key or "")) end)
    local du, dc = db:get_digest("t", "users"), db:get_digest("t", "config")
    assert.same({
      { action = "save", tenant = "t", entry = "config", old = 1, new = 2, digest = dc, user_id = "b" },
      { action = "drop", tenant = "t", entry = "old", user_id = "b" },
      { action = "delete", tenant = "t", entry = "users", key = "ann", old = 1, digest = du, user_id = "b" },
      { action = "put", tenant = "t", entry = "users", key = "bob", new = 2, digest = du, user_id = "b" },
    }, got)
  end)

  it("expire: a record whose TTL passed, dropped by a write", function()
    local now = 1000
    db._now = function() return now end
    db:put_many("t", "u", "s", { a = { exp = 1500 }, b = { exp = 5000 } })
    db:set_ttl("t", "s", "exp")
    now = 2000
    events = {}
    db:put("t", "w", "s", "c", { exp = 9000 })
    local d = db:get_digest("t", "s")
    local got = {}
    for i, e in ipairs(events) do got[i] = ev(e) end
    assert.same({
      { action = "expire", tenant = "t", entry = "s", key = "a", old = { exp = 1500 }, digest = d, user_id = "w" },
      { action = "put", tenant = "t", entry = "s", key = "c", new = { exp = 9000 }, digest = d, user_id = "w" },
    }, got)
  end)

  it("an unchanged put, put_many, delete or batch emits nothing", function()
    db:put("t", "u", "users", "ann", 1)
    db:save("t", "u", "config", { a = 1 })
    events = {}
    db:put("t", "u", "users", "ann", 1)
    db:put_many("t", "u", "users", { ann = 1 })
    db:delete("t", "u", "users", "nobody")
    db:drop("t", "u", "nothing")
    db:batch("t", "u", function(b) b:put("users", "ann", 1) end)
    assert.same({}, events)
  end)

  it("removing the handle stops events", function()
    db:put("t", "u", "c", "a", 1)
    assert.equal(1, #events)
    assert.is_true(handle.remove())
    assert.is_false(handle.remove())
    db:put("t", "u", "c", "b", 1)
    db:save("t", "u", "s", 1)
    assert.equal(1, #events)
  end)

  it("a listener that raises does not undo the write; the others still run", function()
    local warnings = 0
    local old_warn = _G.warn
    _G.warn = function() warnings = warnings + 1 end
    local after = {}
    handle.remove()
    db:on_change(function() error("listener failed") end)
    db:on_change(function(e) after[#after + 1] = e.key end)
    local ok, r = pcall(db.put, db, "t", "u", "c", "a", 1)
    _G.warn = old_warn
    assert.is_true(ok)
    assert.is_true(r)
    assert.equal(1, db:get("t", "c", "a"))
    assert.same({ "a" }, after)
    assert.equal(1, db.listener_errors)
    assert.equal(1, warnings)
  end)

  it("a listener that writes through the handle works (its own events follow)", function()
    handle.remove()
    local log = {}
    db:on_change(function(e)
      log[#log + 1] = e.entry .. ":" .. e.key
      if e.entry == "c" then db:put("t", "audit", "audit", e.key, e.new) end
    end)
    db:put("t", "u", "c", "a", 1)
    assert.same({ "c:a", "audit:a" }, log)
    assert.equal(1, db:get("t", "audit", "a"))
  end)

  it("sees only the changes made through its handle", function()
    local db2 = S.open_again()
    db2:put("t", "u", "c", "a", 1)
    assert.same({}, events)
  end)

  it("refuses a non-function", function()
    for _, v in ipairs({ 1, "f", {}, true }) do
      H.assert_error_code(db.on_change, "invalid_argument", db, v)
    end
    H.assert_error_code(db.on_change, "invalid_argument", db)
    H.assert_error_code(db.on_change, "invalid_argument", db.on_change, function() end)
  end)
end)

describe("peers: changes", function()
  local S = H.use_store({ tenant = "t" })
  local db
  before_each(function() db = S.db end)

  -- Waits until the clock enters a new second (history dates have seconds).
  local function next_second()
    local t = os.time()
    while os.time() == t do H.sleep(0.05) end
  end

  it("lists changes made by another process (put, delete, save with old/new)", function()
    local t0 = os.time()
    U.fresh(S.root, [[
      local db = require("mydb").open(arg[1], { fsync = false })
      db:init("t")
      db:put_many("t", "p1", "users", { ann = { age = 31 }, bob = { age = 22 } })
      db:put("t", "p2", "users", "ann", { age = 32 })
      db:delete("t", "p3", "users", "bob")
      db:save("t", "p4", "config", { theme = "dark" })
      db:save("t", "p5", "config", { theme = "light" })
    ]])
    local list = db:changes("t", t0)
    local by_entry = { config = {}, users = {} }
    local last_time = ""
    for _, e in ipairs(list) do
      local g = by_entry[e.entry]
      g[#g + 1] = { e.action, e.key, e.old, e.new, e.user_id, e.digest }
      assert.equal("t", e.tenant)
      assert.is_string(e.date)
      assert.is_true(e.date >= last_time, "oldest first") -- same offset: text order is time order
      last_time = e.date
    end
    assert.equal(6, #list)
    local hc, hu = db:history("t", "config"), db:history("t", "users")
    assert.same({
      { "save", nil, nil, { theme = "dark" }, "p4", hc[2] },
      { "save", nil, { theme = "dark" }, { theme = "light" }, "p5", hc[1] },
    }, by_entry.config)
    assert.same({
      { "put", "ann", nil, { age = 31 }, "p1", hu[3] },
      { "put", "bob", nil, { age = 22 }, "p1", hu[3] },
      { "put", "ann", { age = 31 }, { age = 32 }, "p2", hu[2] },
      { "delete", "bob", { age = 22 }, nil, "p3", hu[1] },
    }, by_entry.users)
  end)

  it("since a digest: later versions of that entry, other entries' versions dated no earlier", function()
    db:put("t", "u", "other", "early", 1)  -- before: left out
    db:put("t", "u", "users", "a", 1)
    next_second()
    local since = db:put("t", "u", "users", "b", 2) and db:get_digest("t", "users")
    db:put("t", "u", "users", "c", 3)
    db:delete("t", "u", "users", "a")
    db:put("t", "u", "other", "late", 4)
    db:save("t", "u", "snap", "x")
    local got = {}
    for i, e in ipairs(db:changes("t", since)) do got[i] = e.action .. ":" .. e.entry .. ":" .. tostring(e.key) end
    table.sort(got)
    assert.same({ "delete:users:a", "put:other:late", "put:users:c", "save:snap:nil" }, got)
    -- since the newest digest: nothing of that entry
    local newest = db:get_digest("t", "users")
    for _, e in ipairs(db:changes("t", newest)) do assert.is_not.equal("users", e.entry) end
  end)

  it("since a time: versions dated at or after it", function()
    db:put("t", "u", "c", "old", 1)
    next_second()
    local t1 = os.time()
    db:put("t", "u", "c", "new", 2)
    db:save("t", "u", "s", { v = 1 })
    local got = {}
    for i, e in ipairs(db:changes("t", t1)) do got[i] = { e.action, e.entry, e.key } end
    assert.same({ { "put", "c", "new" }, { "save", "s" } }, got)
    assert.same({}, db:changes("t", t1 + 3600))
    assert.equal(3, #db:changes("t", 0))
    assert.equal(3, #db:changes("t", 0.5))
  end)

  it("the record differences of big collections are exact", function()
    local items = {}
    for i = 1, 600 do items[("k%04d"):format(i)] = { i = i } end
    db:put_many("t", "u", "big", items)
    local d1 = db:get_digest("t", "big")
    local before = db:load("t", "big")
    next_second()
    local t1 = os.time()
    local upd = {}
    for i = 1, 600, 37 do upd[("k%04d"):format(i)] = { i = -i } end       -- changed
    for i = 601, 620 do upd[("k%04d"):format(i)] = { i = i } end          -- added
    upd["a-first"] = { i = 0 }
    upd["k0300x"] = { i = 300.5 }
    db:put_many("t", "u", "big", upd)
    for i = 5, 600, 53 do db:delete("t", "u", "big", ("k%04d"):format(i)) end
    db:delete("t", "u", "big", "k0600")
    local after = db:load("t", "big")
    -- replay the listed changes on the old state: gives the new state
    local state = {}
    for k, v in pairs(before) do state[k] = v end
    local n = 0
    for _, e in ipairs(db:changes("t", t1)) do
      assert.equal("big", e.entry)
      assert.same(state[e.key], e.old)
      state[e.key] = e.new
      n = n + 1
    end
    assert.same(after, state)
    local expected = 0
    for _ in pairs(upd) do expected = expected + 1 end
    expected = expected + 12 + 1
    assert.equal(expected, n)
    -- since the first digest: the same list
    assert.equal(n, #db:changes("t", d1))
  end)

  it("refuses a bad since", function()
    db:put("t", "u", "c", "a", 1)
    for _, v in ipairs({ "yesterday", ("0"):rep(63), ("G"):rep(64), {}, true }) do
      H.assert_error_code(db.changes, "invalid_argument", db, "t", v)
    end
    H.assert_error_code(db.changes, "invalid_argument", db, "t")
    H.assert_error_code(db.changes, "not_found", db, "t", ("0"):rep(64))
    H.assert_error_code(db.changes, "invalid_argument", db, 1, 0)
    H.assert_error_code(db.changes, "not_initialized", db, "nope", 0)
    H.assert_error_code(db.changes, "invalid_argument", db.changes, "t", 0)
  end)
end)
