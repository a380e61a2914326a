-- Versioning II (issue 18), merge: db:merge (fast-forward, nothing to do,
-- three-way per entry, record and field), resolvers (by function, by
-- registered name, stored with the entry and used by another process),
-- revert and cherry-pick, and a model-based random test against a
-- plain-Lua three-way merge. Runs on every backend (MYDB_BACKEND); the
-- parts that need another process say so.
local H = require "spec.helper"
local mydb = require "mydb"
local set = require "mydb.handlers.set"

local T = "t"

local function records(db, entry, rev)
  local out = {}
  local src = rev and db:at(T, rev) or nil
  if src then
    for k, v in pairs(src:load(entry)) do out[k] = v end
    return out
  end
  for k, v in db:records(T, entry) do out[k] = v end
  return out
end

-- main and branch "f" from one commit that holds collection c {a, b, n}
-- and snapshot s.
local function fork(db)
  db:put_many(T, "u", "c", { a = { x = 1, y = 1 }, b = { x = 1, y = 1 }, n = 1 })
  db:save(T, "u", "s", { p = 1, q = { r = 1 } })
  db:branch(T, "f")
end

local function on(db, name, fn)
  db:checkout(T, name)
  fn()
  db:checkout(T, "main")
end

describe("merge", function()
  local S = H.use_store({ tenant = T })

  describe("without a three-way merge", function()
    it("fast-forwards when the branch's tip is an ancestor of rev: no new commit, main's heads move", function()
      local db = S.db
      fork(db)
      on(db, "f", function() db:put(T, "u", "c", "a", { x = 2, y = 1 }) end)
      local fid = db:resolve(T, "f")
      local before = #db:log(T)
      local r = db:merge(T, "u", "f")
      assert.same({ commit = fid, fast_forward = true, changes = 1, resolved = 0 }, r)
      assert.equal(fid, db:resolve(T, "main"))
      assert.equal(before + 1, #db:log(T)) -- f's commit, no merge commit
      assert.same({ x = 2, y = 1 }, db:get(T, "c", "a"))
      -- the entry head of main (read without commits) is f's version
      assert.equal(db:at(T, "f"):get_digest("c"), db._store:head(T, "c"))
    end)

    it("with no_ff makes a merge commit with two parents instead", function()
      local db = S.db
      fork(db)
      local mid = db:resolve(T, "main")
      on(db, "f", function() db:put(T, "u", "c", "a", { x = 2, y = 1 }) end)
      local fid = db:resolve(T, "f")
      local r = db:merge(T, "u", "f", { no_ff = true, message = "merge f" })
      assert.is_false(r.fast_forward)
      local c = db:log(T, { max = 1 })[1]
      assert.equal(r.commit, c.id)
      assert.same({ mid, fid }, c.parents)
      assert.equal("merge f", c.message)
      assert.same({ x = 2, y = 1 }, db:get(T, "c", "a"))
    end)

    it("does nothing when rev is already contained (an ancestor, or the tip itself)", function()
      local db = S.db
      fork(db)
      db:put(T, "u", "c", "a", { x = 5 })
      local head = db:resolve(T, "main")
      local n = #db:log(T)
      for _, rev in ipairs({ "f", "main", head, "main~1" }) do
        local r = db:merge(T, "u", rev)
        assert.same({ commit = head, fast_forward = false, changes = 0, resolved = 0 }, r)
      end
      assert.equal(n, #db:log(T))
    end)
  end)

  describe("three-way", function()
    it("combines changes to different entries and records in one commit with two parents", function()
      local db = S.db
      fork(db)
      local base_n = #db:log(T)
      db:put(T, "u", "c", "a", { x = 1, y = 2 })
      db:save(T, "u", "mine", { only = "main" })
      local oid = db:resolve(T, "main")
      on(db, "f", function()
        db:put(T, "u", "c", "b", { x = 1, y = 3 })
        db:delete(T, "u", "c", "n")
        db:save(T, "u", "s", { p = 2, q = { r = 1 } })
      end)
      local fid = db:resolve(T, "f")
      local theirs_s = db:at(T, "f"):get_digest("s")
      local theirs_c = db:at(T, "f"):get_digest("c")
      local ours_c = db:get_digest(T, "c")
      local r = db:merge(T, "u", "f")
      assert.is_false(r.fast_forward)
      assert.equal(0, r.resolved)
      local log = db:log(T)
      assert.equal(r.commit, log[1].id)
      assert.same({ oid, fid }, log[1].parents)
      assert.equal(base_n + 6, #log) -- 2 on main, 3 on f, the merge
      assert.same({ a = { x = 1, y = 2 }, b = { x = 1, y = 3 } }, records(db, "c"))
      assert.same({ p = 2, q = { r = 1 } }, db:load(T, "s"))
      assert.same({ only = "main" }, db:load(T, "mine"))
      -- s changed on f alone: f's version itself; c on both: a new version
      -- whose parents are ours and theirs
      assert.equal(theirs_s, db:get_digest(T, "s"))
      local m = db:meta(T, "c")
      assert.equal(ours_c, m.parent)
      assert.same({ ours_c, theirs_c }, m.parents)
      local hist = db:history(T, "c", nil, 2)
      assert.equal(ours_c, hist[2])
      assert.same({}, db:verify(T))
    end)

    it("merges both sides' edits to one record or snapshot field by field; sequences whole", function()
      local db = S.db
      db:put(T, "u", "c", "k", { name = "ann", addr = { city = "Oslo", zip = "1" }, tags = { "a" } })
      db:save(T, "u", "s", { theme = "dark", size = { w = 1, h = 1 } })
      db:branch(T, "f")
      db:put(T, "u", "c", "k", { name = "Ann", addr = { city = "Oslo", zip = "2" }, tags = { "a" } })
      db:save(T, "u", "s", { theme = "dark", size = { w = 2, h = 1 }, font = "mono" })
      on(db, "f", function()
        db:put(T, "u", "c", "k", { name = "ann", addr = { city = "Bergen", zip = "1" }, tags = { "a" }, age = 3 })
        db:save(T, "u", "s", { size = { w = 1, h = 5 } }) -- theme removed
      end)
      local r = db:merge(T, "u", "f")
      assert.equal(0, r.resolved)
      assert.same({ name = "Ann", addr = { city = "Bergen", zip = "2" }, tags = { "a" }, age = 3 },
        db:get(T, "c", "k"))
      assert.same({ size = { w = 2, h = 5 }, font = "mono" }, db:load(T, "s"))
    end)

    it("reports every conflict, raising conflict and writing nothing", function()
      local db = S.db
      db:put(T, "u", "c", "k", { v = 1, list = { 1, 2 }, same = 0 })
      db:put(T, "u", "c", "gone", { v = 1 })
      db:save(T, "u", "s", { mode = "a" })
      db:branch(T, "f")
      db:put(T, "u", "c", "k", { v = 2, list = { 1, 2, 3 }, same = 1 })
      db:put(T, "u", "c", "gone", { v = 2 })
      db:save(T, "u", "s", { mode = "b" })
      on(db, "f", function()
        db:put(T, "u", "c", "k", { v = 3, list = { 0, 1, 2 }, same = 1 })
        db:delete(T, "u", "c", "gone")
        db:save(T, "u", "s", { mode = "c" })
      end)
      local on_disk = H.BACKEND ~= "memory" -- (memory: no second view of the store)
      local state = on_disk and H.store_state(S.root)
      local head = db:resolve(T, "main")
      local err = H.assert_error_code(function() db:merge(T, "u", "f") end, "conflict")
      if on_disk then assert.equal(state, H.store_state(S.root)) end
      assert.equal(head, db:resolve(T, "main"))
      local got = {}
      for _, c in ipairs(err.conflicts) do
        got[#got + 1] = { entry = c.entry, key = c.key, path = c.path, base = c.base, ours = c.ours, theirs = c.theirs }
      end
      assert.same({
        { entry = "c", key = "gone", path = {}, base = { v = 1 }, ours = { v = 2 }, theirs = nil },
        { entry = "c", key = "k", path = { "list" }, base = { 1, 2 }, ours = { 1, 2, 3 }, theirs = { 0, 1, 2 } },
        { entry = "c", key = "k", path = { "v" }, base = 1, ours = 2, theirs = 3 },
        { entry = "s", path = { "mode" }, base = "a", ours = "b", theirs = "c" },
      }, got)
    end)

    it("gives conflicts to opts.resolver, a function; its nil removes", function()
      local db = S.db
      db:put(T, "u", "c", "k", { v = 1, w = 1 })
      db:put(T, "u", "c", "j", 1)
      db:branch(T, "f")
      db:put(T, "u", "c", "k", { v = 2, w = 2 })
      db:put(T, "u", "c", "j", 2)
      on(db, "f", function()
        db:put(T, "u", "c", "k", { v = 3, w = 3 })
        db:put(T, "u", "c", "j", 3)
      end)
      local seen = {}
      local r = db:merge(T, "u", "f", { resolver = function(c)
        seen[#seen + 1] = c.key .. "." .. table.concat(c.path, ".")
        if c.key == "j" then return nil end
        if c.path[1] == "v" then return c.ours + c.theirs end
        return c.theirs
      end })
      table.sort(seen)
      assert.same({ "j.", "k.v", "k.w" }, seen)
      assert.equal(3, r.resolved)
      assert.same({ k = { v = 5, w = 3 } }, records(db, "c"))
    end)

    it("gives conflicts to the shipped resolvers by name: ours, theirs, newest, sum, union", function()
      local db = S.db
      local had_set = mydb.handlers.get("Set") ~= nil
      mydb.handlers.register(set, { replace = true })
      finally(function() if not had_set then mydb.handlers.unregister("Set") end end)
      local stores = 0
      local function scenario(base, ours, theirs, name)
        stores = stores + 1
        local d = require("mydb").open(S.root .. stores, S.opts)
        S.extra = S.extra or {}
        S.extra[#S.extra + 1] = d
        d:init(T)
        d:save(T, "u", "v", { x = base })
        d:branch(T, "f")
        d:save(T, "u", "v", { x = ours })
        on(d, "f", function() d:save(T, "u", "v", { x = theirs }) end)
        local r = d:merge(T, "u", "f", { resolver = name })
        assert.equal(1, r.resolved)
        return d:load(T, "v").x
      end
      assert.equal(2, scenario(1, 2, 3, "ours"))
      assert.equal(3, scenario(1, 2, 3, "theirs"))
      assert.equal(3, scenario(1, 2, 3, "newest")) -- f's commit is the later one
      assert.equal(1 + 4 + 9, scenario(1, 5, 10, "sum"))
      assert.same({ "a", "c", "d" }, scenario({ "a", "b" }, { "a", "c" }, { "a", "b", "d" }, "union"))
      local s = scenario(set.new { "a", "b" }, set.new { "a", "b", "c" }, set.new { "b", "d" }, "union")
      assert.is_true(set.is_set(s))
      assert.same({ "b", "c", "d" }, s:members())
      assert.is_nil(db:log(T)[1]) -- (the main store was not touched)
    end)

    it("uses a resolver registered at runtime under a name", function()
      local db = S.db
      mydb.resolvers.register("spec_max", function(c) return math.max(c.ours, c.theirs) end, { replace = true })
      finally(function() mydb.resolvers.unregister("spec_max") end)
      db:put(T, "u", "c", "k", 1)
      db:branch(T, "f")
      db:put(T, "u", "c", "k", 7)
      on(db, "f", function() db:put(T, "u", "c", "k", 4) end)
      db:merge(T, "u", "f", { resolver = "spec_max" })
      assert.equal(7, db:get(T, "c", "k"))
      assert.is_true(#mydb.resolvers.list() >= 6)
    end)

    it("uses an entry's stored resolver (set_resolver, versioned) in another process", function()
      H.needs_disk("another process merges")
      local db = S.db
      db:put(T, "u", "hits", "home", 10)
      db:save(T, "u", "cfg", { n = 1 })
      assert.is_true(db:set_resolver(T, "u", "hits", "sum"))
      assert.is_true(db:set_resolver(T, "u", "cfg", "theirs"))
      assert.is_false(db:set_resolver(T, "u", "hits", "sum")) -- no change, no version
      local cfg = db:get_digest(T, "cfg")
      assert.is_false(db:set_resolver(T, "u", "cfg", "theirs"))
      assert.equal(cfg, db:get_digest(T, "cfg"))
      assert.same({ n = 1 }, db:load(T, "cfg"))
      db:branch(T, "f")
      db:put(T, "u", "hits", "home", 15)
      db:save(T, "u", "cfg", { n = 2 })
      on(db, "f", function()
        db:put(T, "u", "hits", "home", 13)
        db:save(T, "u", "cfg", { n = 3 })
      end)
      local out, ok = H.run_lua(([[
        local db = require("mydb").open(%q, { fsync = false })
        local r = db:merge("t", "other", "f")
        io.write(r.resolved, " ", db:get("t", "hits", "home"), " ", db:load("t", "cfg").n)
      ]]):format(S.root))
      assert(ok, out)
      assert.equal("2 18 3", out)
      -- removing it: conflicts raise again
      db:set_resolver(T, "u", "hits", nil)
      db:put(T, "u", "hits", "home", 1)
      on(db, "f", function() db:put(T, "u", "hits", "home", 2) end)
      local err = H.assert_error_code(function() db:merge(T, "u", "f") end, "conflict")
      assert.equal(1, #err.conflicts)
    end)

    it("names a stored resolver this process has not registered", function()
      local db = S.db
      mydb.resolvers.register("spec_tmp", function(c) return c.ours end, { replace = true })
      db:put(T, "u", "c", "k", 1)
      db:set_resolver(T, "u", "c", "spec_tmp")
      mydb.resolvers.unregister("spec_tmp")
      db:branch(T, "f")
      db:put(T, "u", "c", "k", 2)
      on(db, "f", function() db:put(T, "u", "c", "k", 3) end)
      local err = H.assert_error_code(function() db:merge(T, "u", "f") end, "invalid_argument")
      assert.matches("spec_tmp", err.message)
    end)

    it("settles a collection dropped on one side and changed on the other by versions", function()
      local db = S.db
      db:put(T, "u", "c", "k", 1)
      db:branch(T, "f")
      db:put(T, "u", "c", "k", 2)
      on(db, "f", function() db:drop(T, "u", "c") end)
      local err = H.assert_error_code(function() db:merge(T, "u", "f") end, "conflict")
      assert.is_true(err.conflicts[1].version)
      assert.equal(db:get_digest(T, "c"), err.conflicts[1].ours)
      assert.is_nil(err.conflicts[1].theirs)
      db:merge(T, "u", "f", { resolver = "theirs" })
      assert.is_false(db:exists(T, "c"))
    end)

    it("keeps indexes and TTL exact in a merged collection", function()
      local db = S.db
      local now = os.time()
      db:set_ttl(T, "u", "c", "exp")
      db:create_index(T, "u", "c", "by_age", "age")
      for i = 1, 30 do db:put(T, "u", "c", ("k%02d"):format(i), { age = i, exp = now + 1000 + i }) end
      db:branch(T, "f")
      for i = 1, 10 do db:put(T, "u", "c", ("k%02d"):format(i), { age = 100 + i, exp = now + 1000 + i }) end
      db:delete(T, "u", "c", "k30")
      on(db, "f", function()
        for i = 11, 20 do db:put(T, "u", "c", ("k%02d"):format(i), { age = 200 + i, exp = now + 5000 }) end
        db:put(T, "u", "c", "new", { age = 0, exp = now + 5000 })
        db:create_index(T, "u", "c", "by_exp", "exp")
      end)
      db:merge(T, "u", "f")
      local want = {}
      for k, v in db:records(T, "c") do want[#want + 1] = { v.age, k } end
      table.sort(want, function(a, b) return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2]) end)
      local got = {}
      for k, _, ik in db:query_index(T, "c", "by_age") do got[#got + 1] = { ik, k } end
      assert.same(want, got)
      assert.equal(30, #got)
      local n = 0
      for _ in db:query_index(T, "c", "by_exp") do n = n + 1 end
      assert.equal(30, n) -- f's index, built over the merged records
      -- the TTL: later, the records of main's side (exp now + 1000 + i)
      -- are past and a write drops exactly them
      db._now = function() return now + 2000 end
      db:put(T, "u", "c", "late", { age = 1, exp = now + 9000 })
      local left = {}
      for k in db:records(T, "c") do left[#left + 1] = k end
      table.sort(left)
      local expect = { "late", "new" }
      for i = 11, 20 do expect[#expect + 1] = ("k%02d"):format(i) end
      table.sort(expect)
      assert.same(expect, left)
      assert.same({}, db:verify(T))
    end)

    it("tells the handle's listeners every change, taken whole, merged or fast-forwarded", function()
      local db = S.db
      fork(db)
      db:put(T, "u", "c", "a", { x = 1, y = 2 })
      on(db, "f", function()
        db:put(T, "u", "c", "a", { x = 3, y = 1 })
        db:save(T, "u", "s", { p = 5 })
        db:put(T, "u", "d", "new", 1)
      end)
      local seen = {}
      local h = db:on_change(function(ev)
        seen[#seen + 1] = ("%s %s %s %s"):format(ev.action, ev.entry, ev.key or "-",
          require("mydb.core").encode(ev.new or false)) -- (canonical: keys sorted)
        assert.is_string(ev.commit)
      end)
      local r = db:merge(T, "u", "f")
      table.sort(seen)
      assert.same({ 'put c a {"x":3,"y":2}', "put d new 1", 'save s - {"p":5}' }, seen)
      -- f fast-forwards to the merge: f hears what it gains
      seen = {}
      db:checkout(T, "f")
      assert.is_true(db:merge(T, "u", "main").fast_forward)
      assert.equal(r.commit, db:resolve(T, "f"))
      assert.same({ 'put c a {"x":3,"y":2}' }, seen)
      db:checkout(T, "main")
      h:remove()
    end)

    it("merges again from the last merge (the base moves) and across main and a branch", function()
      local db = S.db
      fork(db)
      on(db, "f", function() db:put(T, "u", "c", "a", { x = 9, y = 1 }) end)
      db:put(T, "u", "c", "b", { x = 8, y = 1 })
      db:merge(T, "u", "f")
      -- f edits a again: a three-way merge from f's last merged tip, so
      -- main's earlier merge result is not a conflict
      on(db, "f", function() db:put(T, "u", "c", "a", { x = 10, y = 1 }) end)
      db:put(T, "u", "c", "n", 2)
      local r = db:merge(T, "u", "f")
      assert.equal(0, r.resolved)
      assert.same({ a = { x = 10, y = 1 }, b = { x = 8, y = 1 }, n = 2 }, records(db, "c"))
      -- f takes main back: a fast-forward
      db:checkout(T, "f")
      assert.is_true(db:merge(T, "u", "main").fast_forward)
      assert.same(records(db, "c", "main"), records(db, "c"))
      db:checkout(T, "main")
    end)

    it("plans again when the branch moves while it plans, keeping that write", function()
      local db = S.db
      db:put(T, "u", "c", "k", 1)
      db:branch(T, "f")
      db:put(T, "u", "c", "k", 2)
      on(db, "f", function() db:put(T, "u", "c", "k", 3) end)
      local calls = 0
      local r = db:merge(T, "u", "f", { resolver = function(c)
        calls = calls + 1
        -- the first time, another write lands on main before the merge commits
        if calls == 1 then db:put(T, "u", "c", "late", true) end
        return c.theirs
      end })
      assert.equal(2, calls)
      assert.equal(3, db:get(T, "c", "k"))
      assert.is_true(db:get(T, "c", "late"))
      local c = db:log(T, { max = 1 })[1]
      assert.equal(r.commit, c.id)
      assert.equal(db:resolve(T, "main~1"), c.parents[1]) -- the late write's commit
      assert.same({ 1, 2 }, { #db:log(T, { rev = "main~1", max = 1 })[1].parents, #c.parents })
    end)

    it("merges criss-crossed branches (two best common ancestors)", function()
      local db = S.db
      fork(db)
      db:put(T, "u", "c", "a", { x = 2, y = 1 })
      on(db, "f", function() db:put(T, "u", "c", "b", { x = 2, y = 1 }) end)
      local m1, f1 = db:resolve(T, "main"), db:resolve(T, "f")
      -- each side merges the other's tip as it was: a criss-cross
      db:merge(T, "u", f1, { no_ff = true })
      on(db, "f", function() db:merge(T, "u", m1, { no_ff = true }) end)
      db:put(T, "u", "c", "n", 5)
      on(db, "f", function() db:put(T, "u", "c", "a", { x = 2, y = 9 }) end)
      local r = db:merge(T, "u", "f")
      assert.equal(0, r.resolved)
      assert.same({ a = { x = 2, y = 9 }, b = { x = 2, y = 1 }, n = 5 }, records(db, "c"))
      assert.same({}, db:verify(T))
    end)

    it("then gc keeps both sides' versions; verify finds nothing wrong", function()
      local db = S.db
      fork(db)
      db:put(T, "u", "c", "a", { x = 2, y = 1 })
      on(db, "f", function() db:put(T, "u", "c", "b", { x = 3, y = 1 }); db:save(T, "u", "s", { p = 9 }) end)
      local theirs = db:at(T, "f"):get_digest("c")
      db:merge(T, "u", "f")
      db:delete_branch(T, "f")
      db:gc(T)
      assert.same({}, db:verify(T))
      assert.same({ a = { x = 2, y = 1 }, b = { x = 3, y = 1 }, n = 1 }, records(db, "c"))
      assert.same({ p = 9 }, db:load(T, "s"))
      assert.same({ x = 3, y = 1 }, db:get(T, "c", "b", theirs)) -- the merge's second parent
      assert.equal(theirs, db:meta(T, "c").parents[2])
    end)
  end)

  describe("revert and cherry-pick", function()
    it("revert undoes one commit's changes, keeping later ones", function()
      local db = S.db
      fork(db)
      db:put(T, "u", "c", "a", { x = 2, y = 1 })
      local bad = db:resolve(T, "main")
      db:put(T, "u", "c", "b", { x = 1, y = 2 })
      db:save(T, "u", "s", { p = 3, q = { r = 1 } })
      local r = db:revert(T, "u", bad)
      assert.equal(db:resolve(T, "main"), r.commit)
      assert.same({ db:resolve(T, "main~1") }, db:log(T, { max = 1 })[1].parents)
      assert.equal("Revert " .. bad, db:log(T, { max = 1 })[1].message)
      assert.same({ a = { x = 1, y = 1 }, b = { x = 1, y = 2 }, n = 1 }, records(db, "c"))
      assert.same({ p = 3, q = { r = 1 } }, db:load(T, "s"))
    end)

    it("revert of a change edited since is a conflict, settled by a resolver", function()
      local db = S.db
      fork(db)
      db:put(T, "u", "c", "n", 2)
      local c = db:resolve(T, "main")
      db:put(T, "u", "c", "n", 3)
      local err = H.assert_error_code(function() db:revert(T, "u", c) end, "conflict")
      assert.same({ base = 2, ours = 3, theirs = 1 },
        { base = err.conflicts[1].base, ours = err.conflicts[1].ours, theirs = err.conflicts[1].theirs })
      local r = db:revert(T, "u", c, { resolver = "sum" })
      assert.equal(1, r.resolved)
      assert.equal(2, db:get(T, "c", "n")) -- 2 + (3 - 2) + (1 - 2)
    end)

    it("cherry-pick applies another branch's commit once", function()
      local db = S.db
      fork(db)
      on(db, "f", function()
        db:put(T, "u", "c", "a", { x = 7, y = 1 })
        db:put(T, "u", "c", "b", { x = 7, y = 7 })
      end)
      db:put(T, "u", "c", "a", { x = 1, y = 5 })
      local pick = db:resolve(T, "f~1") -- the commit that changed a
      local r = db:cherry_pick(T, "u", pick)
      assert.equal(1, r.changes)
      assert.same({ a = { x = 7, y = 5 }, b = { x = 1, y = 1 }, n = 1 }, records(db, "c"))
      -- again: nothing left to apply, no commit
      local head = db:resolve(T, "main")
      assert.same({ commit = head, changes = 0, resolved = 0 }, db:cherry_pick(T, "u", pick))
      assert.equal(head, db:resolve(T, "main"))
    end)
  end)

  describe("bad input", function()
    it("is refused before anything is written", function()
      local db = S.db
      fork(db)
      H.assert_error_code(function() db:merge(T, "u", "nope") end, "not_found")
      H.assert_error_code(function() db:merge(T, "u", 42) end, "invalid_argument")
      H.assert_error_code(function() db:merge(T, 5, "f") end, "invalid_argument")
      H.assert_error_code(function() db:merge("nope", "u", "f") end, "not_initialized")
      H.assert_error_code(function() db:merge(T, "u", "f", { bogus = 1 }) end, "invalid_argument")
      H.assert_error_code(function() db:merge(T, "u", "f", { no_ff = "yes" }) end, "invalid_argument")
      H.assert_error_code(function() db:merge(T, "u", "f", { resolver = "no_such" }) end, "invalid_argument")
      H.assert_error_code(function() db:merge(T, "u", "f", { resolver = 3 }) end, "invalid_argument")
      H.assert_error_code(function() db:revert(T, "u", "nope") end, "not_found")
      H.assert_error_code(function() db:cherry_pick(T, "u", "main", { no_ff = true }) end, "invalid_argument")
      H.assert_error_code(function() db:set_resolver(T, "u", "c", "no_such") end, "invalid_argument")
      H.assert_error_code(function() db:set_resolver(T, "u", "c", "bad name!") end, "invalid_argument")
      H.assert_error_code(function() db:set_resolver(T, "u", "absent", "sum") end, "not_found")
      H.assert_error_code(function() db.merge(T, "u", "f") end, "invalid_argument")
      H.assert_error_code(function() mydb.resolvers.register("sum", function() end) end, "invalid_argument")
      H.assert_error_code(function() mydb.resolvers.register("x", 5) end, "invalid_argument")
    end)

    it("a resolver that raises is a handler_error; nothing is written", function()
      local db = S.db
      db:put(T, "u", "c", "k", 1)
      db:branch(T, "f")
      db:put(T, "u", "c", "k", 2)
      on(db, "f", function() db:put(T, "u", "c", "k", "three") end)
      local head = db:resolve(T, "main")
      local err = H.assert_error_code(function() db:merge(T, "u", "f", { resolver = "sum" }) end, "handler_error")
      assert.matches("needs numbers", err.message)
      assert.equal(head, db:resolve(T, "main"))
      assert.equal(2, db:get(T, "c", "k"))
    end)
  end)

  describe("format", function()
    local core = require "mydb.core"
    local D1, D2 = ("a"):rep(64), ("b"):rep(64)
    local DATE = "20260101 00:00:00 +0000"

    it("writes a merge version's two parents and a stored resolver in the metadata", function()
      local bytes = core.snapshot_bytes('{"k":1}', { D1, D2 }, "u", DATE, "sum")
      assert.equal('{"__date__":"' .. DATE .. '","__parent__":["' .. D1 .. '","' .. D2
        .. '"],"__resolver__":"sum","__user_id__":"u","k":1}', bytes)
      local v, meta = core.decode_snapshot(bytes)
      assert.same({ k = 1 }, v)
      assert.equal(D1, meta.parent)
      assert.same({ D1, D2 }, meta.parents)
      assert.equal("sum", meta.resolver)
      local _, one = core.decode_snapshot(core.snapshot_bytes("1", D1, "u", DATE))
      assert.equal(D1, one.parent)
      assert.is_nil(one.parents)
      assert.is_nil(one.resolver)
      local c = core.collection_bytes(0, nil, nil, nil, { D1, D2 }, "u", DATE, "union")
      assert.equal('{"__collection__":{"count":0,"resolver":"union","root":null},"__date__":"' .. DATE
        .. '","__parent__":["' .. D1 .. '","' .. D2 .. '"],"__user_id__":"u"}', c)
    end)

    it("refuses malformed parent lists", function()
      H.assert_error_code(function() core.snapshot_bytes("1", { D1, "nope" }, "u", DATE) end, "invalid_argument")
      H.assert_error_code(function() core.snapshot_bytes("1", {}, "u", DATE) end, "invalid_argument")
      for _, bad in ipairs({ '["' .. D1 .. '",]', '["' .. D1 .. '",5]', '["' .. D1 .. '" "' .. D2 .. '"]' }) do
        local bytes = '{"__date__":"' .. DATE .. '","__parent__":' .. bad .. ',"__user_id__":"u","k":1}'
        H.assert_error_code(function() core.decode_snapshot(bytes) end, "corrupt")
      end
    end)
  end)

  -- --------------------------------------------------------------- model

  describe("against a plain-Lua model", function()
    -- the model's three-way merge, written from the rules (not the code)
    local function is_map(v) return type(v) == "table" and v[1] == nil end
    local function eq(a, b) return (H.deep_equal(a, b)) end
    -- (pick: the resolver the merge runs with, "ours" or "theirs")
    local function merge3(b, o, t, pick)
      if eq(o, t) then return o end
      if eq(b, o) then return t end
      if eq(b, t) then return o end
      if is_map(o) and is_map(t) and (b == nil or is_map(b)) then
        b = b or {}
        local out, keys = {}, {}
        for _, m in ipairs({ b, o, t }) do for k in pairs(m) do keys[k] = true end end
        for k in pairs(keys) do out[k] = merge3(b[k], o[k], t[k], pick) end
        return out
      end
      if pick == "ours" then return o end
      return t
    end
    local function copy(v)
      if type(v) ~= "table" then return v end
      local c = {}
      for k, x in pairs(v) do c[k] = copy(x) end
      return c
    end

    it("finds a best common ancestor of random commits of a random graph", function()
      local db = S.db
      local merge = require "mydb.merge"
      local commits = require "mydb.commits"
      local seed = tonumber(os.getenv("MYDB_SEED") or "") or os.time()
      math.randomseed(seed)
      local names = { "main", "b1", "b2", "b3" }
      db:put(T, "u", "c", "k", 0)
      for i = 2, #names do db:branch(T, names[i]) end
      local all = {}
      for step = 1, 40 do
        local name = names[math.random(#names)]
        db:checkout(T, name)
        if math.random(3) == 1 then
          local other = names[math.random(#names)]
          db:merge(T, "u", other, { no_ff = math.random(2) == 1, resolver = "theirs" })
        else
          db:put(T, "u", "c", "k" .. math.random(5), step)
        end
        all[#all + 1] = db:resolve(T, name)
      end
      db:checkout(T, "main")
      -- the model: ancestor sets by brute force
      local anc = {}
      local function ancestors(id)
        if anc[id] then return anc[id] end
        local s = { [id] = true }
        for _, p in ipairs(commits.read(db, T, id).parents) do
          for x in pairs(ancestors(p)) do s[x] = true end
        end
        anc[id] = s
        return s
      end
      for _ = 1, 60 do
        local a, b = all[math.random(#all)], all[math.random(#all)]
        local common, best = {}, {}
        for x in pairs(ancestors(a)) do if ancestors(b)[x] then common[#common + 1] = x end end
        for _, x in ipairs(common) do
          local dominated = false
          for _, y in ipairs(common) do
            if y ~= x and ancestors(y)[x] then dominated = true; break end
          end
          if not dominated then best[x] = true end
        end
        local got = merge.base(db, T, commits.read(db, T, a), commits.read(db, T, b))
        assert(got and best[got.id], ("seed %d: %s is not a best common ancestor of %s and %s"):format(
          seed, got and got.id or "nil", a, b))
      end
    end)

    it("random edits on two branches, merged back and forth, give the model's records and snapshot", function()
      local db = S.db
      local seed = tonumber(os.getenv("MYDB_SEED") or "") or os.time()
      local rng = math.random
      math.randomseed(seed)
      local keys = {}
      for i = 1, 25 do keys[i] = ("k%02d"):format(i) end
      local function value()
        local r = rng(4)
        if r == 1 then return rng(3) end
        if r == 2 then return { rng(2), rng(2) } end
        local m = { a = rng(3) }
        if rng(2) == 1 then m.b = rng(3) end
        if rng(3) == 1 then m.sub = { z = rng(2) } end
        return m
      end
      -- edits one branch (handle on it) and its model (the snapshot entry
      -- s under the key S)
      local S_KEY = "~snapshot s" -- (no record key)
      local function edit(model)
        if rng(3) == 1 then
          local v = copy(model[S_KEY])
          for _ = 1, rng(2) do
            local f = ({ "a", "b", "c" })[rng(3)]
            if rng(4) == 1 then v[f] = nil else v[f] = value() end
          end
          db:save(T, "u", "s", v)
          model[S_KEY] = copy(v)
        end
        for _ = 1, rng(1, 8) do
          local k = keys[rng(#keys)]
          local r = rng(5)
          if r == 1 then
            db:delete(T, "u", "c", k); model[k] = nil
          elseif r == 2 and is_map(model[k]) then
            local v = copy(model[k]); v.a = rng(3); v.b = rng(2) == 1 and rng(3) or nil
            db:put(T, "u", "c", k, v); model[k] = v
          else
            local v = value()
            db:put(T, "u", "c", k, v); model[k] = copy(v)
          end
        end
      end
      local main, feat = {}, {}
      db:put(T, "u", "c", "seed", 0)
      db:save(T, "u", "s", { a = 1 })
      main.seed, feat.seed = 0, 0
      main[S_KEY], feat[S_KEY] = { a = 1 }, { a = 1 }
      db:branch(T, "f")
      local base = copy(main)
      for round = 1, 12 do
        edit(main)
        db:checkout(T, "f"); edit(feat); db:checkout(T, "main")
        local pick = round % 2 == 0 and "ours" or "theirs"
        local r = db:merge(T, "u", "f", { resolver = pick })
        local want = merge3(base, main, feat, pick)
        local got = records(db, "c")
        got[S_KEY] = db:load(T, "s")
        assert(eq(want, got), ("seed %d round %d: %s"):format(seed, round,
          select(2, H.deep_equal(want, got)) or ""))
        assert.equal(db:resolve(T, "main"), r.commit)
        main, base = copy(want), copy(feat) -- (want may share feat's tables)
        if round % 3 == 0 then -- f catches up: a fast-forward to the merge
          db:checkout(T, "f")
          db:merge(T, "u", "main")
          assert.equal(db:resolve(T, "main"), db:resolve(T, "f"))
          db:checkout(T, "main")
          feat, base = copy(main), copy(main)
        end
      end
      assert.same({}, db:verify(T))
    end)
  end)
end)
