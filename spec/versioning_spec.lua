-- Versioning I (issue 14): tenant commits, the log, branches, tags,
-- revisions and read-only views of any commit. Runs on every backend
-- (MYDB_BACKEND); the parts that need another process say so.
local H = require "spec.helper"
local core = require "mydb.core"

local function ids(log)
  local out = {}
  for i, c in ipairs(log) do out[i] = c.id end
  return out
end

describe("versioning", function()
  local S = H.use_store({ tenant = "t" })

  describe("commits", function()
    it("every write that changes something makes exactly one commit; one that changes nothing none", function()
      local db = S.db
      local n = 0
      local function made(what, fn)
        fn()
        local log = db:log("t")
        n = n + 1
        assert.equal(n, #log, what .. " made no commit")
        return log[1]
      end
      local c = made("save", function() db:save("t", "u", "cfg", { a = 1 }) end)
      assert.same({ "cfg" }, c.entries)
      assert.same({}, c.parents)
      made("put", function() db:put("t", "u", "users", "ann", { age = 30 }) end)
      made("put_many", function() db:put_many("t", "u", "users", { bob = { age = 40 }, cy = { age = 5 } }) end)
      made("delete", function() db:delete("t", "u", "users", "cy") end)
      made("set_ttl", function() db:set_ttl("t", "u", "users", "expires") end)
      made("create_index", function() db:create_index("t", "u", "users", "by_age", "age") end)
      made("drop_index", function() db:drop_index("t", "u", "users", "by_age") end)
      c = made("batch", function()
        db:batch("t", "u", function(b) b:put("users", "dan", { age = 1 }); b:save("cfg", { a = 2 }) end)
      end)
      assert.same({ "cfg", "users" }, c.entries) -- one commit for the batch
      made("drop", function() db:drop("t", "u", "cfg") end)
      -- nothing changed: no commit
      assert.is_false(db:put("t", "u", "users", "ann", { age = 30 }))
      assert.is_false(db:delete("t", "u", "users", "nobody"))
      assert.is_false(db:drop("t", "u", "never"))
      assert.is_false(db:batch("t", "u", function() end))
      assert.is_false(db:put_many("t", "u", "users", { ann = { age = 30 } }))
      assert.equal(n, #db:log("t"))
    end)

    it("puts from two handles, interleaved, each build on the other's last commit", function()
      -- (a handle keeps its branch line and last write between puts: the
      -- other handle's commit in between must be seen, not overwritten)
      local a, b = S.db, S.open_again()
      a:put("t", "u", "users", "k0", { n = 0 })
      for i = 1, 40 do
        local w = i % 3 == 0 and a or b
        if i % 2 == 0 then w = a end
        w:put("t", "u", "users", "k" .. i, { n = i })
        if i % 7 == 0 then w:put("t", "u", "other", "x", { n = i }) end
      end
      for _, db in ipairs({ a, b }) do
        local n = 0
        for _ in db:records("t", "users") do n = n + 1 end
        assert.equal(41, n, "every record of both handles")
        local log = db:log("t", { max = 1000 })
        assert.equal(41 + 5, #log)
        for i = 1, #log - 1 do assert.equal(log[i + 1].id, log[i].parents[1], "a linear history") end
      end
      -- on another branch, then back on main through the other handle
      a:branch("t", "dev")
      a:checkout("t", "dev")
      a:put("t", "u", "users", "d1", { n = 1 })
      b:put("t", "u", "users", "m1", { n = 1 })
      a:put("t", "u", "users", "d2", { n = 2 })
      a:checkout("t", "main")
      a:put("t", "u", "users", "m2", { n = 2 })
      assert.same({ n = 1 }, a:get("t", "users", "m1"))
      assert.is_nil(a:get("t", "users", "d1"))
      a:checkout("t", "dev")
      assert.same({ n = 2 }, a:get("t", "users", "d2"))
      assert.is_nil(a:get("t", "users", "m1"))
      assert.same({ n = 2 }, b:get("t", "users", "m2"))
    end)

    it("puts into more tenants than a handle keeps branch lines for stay linear in each", function()
      local db, other = S.db, S.open_again()
      for round = 1, 2 do
        for i = 1, 70 do
          local t = "m" .. i
          if round == 1 then db:init(t) end
          db:put(t, "u", "c", "k" .. round, { r = round })
          if i % 9 == 0 then other:put(t, "u", "c", "o" .. round, { r = round }) end
        end
      end
      for i = 1, 70, 23 do
        local t = "m" .. i
        local log = db:log(t)
        for j = 1, #log - 1 do assert.equal(log[j + 1].id, log[j].parents[1]) end
        assert.same({ r = 2 }, db:get(t, "c", "k2"))
        assert.same({ r = 1 }, other:get(t, "c", "k1"))
      end
    end)

    it("records parents, user, date, time and the message given in opts", function()
      local db = S.db
      local t0 = core.realtime()
      db:save("t", "alice", "cfg", 1, { message = "first" })
      db:put("t", "bob", "users", "k", 1, { message = "second: ünïcode" })
      db:put("t", "bob", "users", "k", 2)
      local log = db:log("t")
      assert.equal(3, #log)
      assert.equal("second: ünïcode", log[2].message)
      assert.equal("first", log[3].message)
      assert.is_nil(log[1].message)
      assert.same({ log[2].id }, log[1].parents)
      assert.same({ log[3].id }, log[2].parents)
      assert.equal("bob", log[1].user_id)
      assert.equal("alice", log[3].user_id)
      assert.truthy(log[1].date:match("^%d%d%d%d%d%d%d%d %d%d:%d%d:%d%d [+-]%d%d%d%d$"))
      for i, c in ipairs(log) do
        assert.is_true(c.time >= t0 and c.time <= core.realtime())
        if i > 1 then assert.is_true(c.time <= log[i - 1].time) end
        assert.truthy(core.digest_valid(c.id))
      end
      -- a commit id is the digest of the commit's bytes
      local bytes = db._store:read("t", log[1].id)
      assert.equal(log[1].id, core.sha256(bytes))
      assert.equal('{"commit":1,', bytes:sub(1, 12))
      -- canonical JSON: the codec encodes what it decodes to the same bytes
      for _, c in ipairs(log) do
        local b = db._store:read("t", c.id)
        assert.equal(b, core.encode(core.decode(b)))
      end
    end)

    it("leaves out what the first parent implies: prev and a jump to it", function()
      local db = S.db
      db:save("t", "u", "a", 1)
      db:save("t", "u", "b", 1)
      db:save("t", "u", "b", 2) -- b again: prev is the parent
      db:save("t", "u", "a", 2) -- a again: prev is the first commit
      local log = db:log("t")
      local function raw(i) return core.decode(db._store:read("t", log[i].id)) end
      assert.is_nil(raw(2).prev)
      assert.same({ a = log[4].id }, raw(1).prev)
      -- jumps: the root has none; every other commit names one only when it
      -- is not its first parent, and then below it
      assert.is_nil(raw(4).jump)
      for i = 1, 3 do
        local c = raw(i)
        if c.jump then
          assert.are_not.equal(c.parents[1], c.jump)
          assert.is_true(c.jump_height < c.height - 1)
        end
      end
      assert.same({ log[1].id, log[4].id }, ids(db:log("t", { entry = "a" })))
      assert.same({ log[2].id, log[3].id }, ids(db:log("t", { entry = "b" })))
      -- written out in full, the same commit is refused (one commit, one form)
      local c = raw(2)
      c.prev = { b = log[3].id }
      local bad = db._store:write("t", core.encode(c))
      H.assert_error_code(function() db:log("t", { rev = bad }) end, "corrupt")
    end)

    it("refuses bad opts before writing anything", function()
      local db = S.db
      db:save("t", "u", "cfg", 1)
      local heads = db:get_digest("t", "cfg")
      for _, bad in ipairs({ 5, "msg", { message = 5 }, { message = ("x"):rep(65537) },
                             { message = "\xff\xfe" }, { nope = 1 } }) do
        H.assert_error_code(function() db:save("t", "u", "cfg", 2, bad) end, "invalid_argument")
        H.assert_error_code(function() db:put("t", "u", "c", "k", 2, bad) end, "invalid_argument")
        H.assert_error_code(function() db:batch("t", "u", function(b) b:save("cfg", 3) end, bad) end,
          "invalid_argument")
      end
      assert.equal(heads, db:get_digest("t", "cfg"))
      assert.equal(1, #db:log("t"))
    end)

    it("tells listeners the commit of each change", function()
      local db = S.db
      local seen = {}
      db:on_change(function(ev) seen[#seen + 1] = ev.commit end)
      db:put("t", "u", "c", "k", 1)
      db:batch("t", "u", function(b) b:put("c", "k", 2); b:save("cfg", 1) end)
      local log = db:log("t")
      assert.same({ log[2].id, log[1].id, log[1].id }, seen)
    end)

    it("per-entry history, meta and load by digest are unchanged", function()
      local db = S.db
      local d1 = db:save("t", "u", "cfg", { v = 1 })
      local d2 = db:save("t", "w", "cfg", { v = 2 })
      assert.same({ d2, d1 }, db:history("t", "cfg"))
      assert.equal(d1, db:meta("t", "cfg", d2).parent)
      assert.equal("w", db:meta("t", "cfg").user_id)
      assert.same({ v = 1 }, db:load("t", "cfg", d1))
      assert.same({}, db:verify())
    end)
  end)

  describe("log", function()
    local function fill(db)
      db:save("t", "u", "a", 1)          -- 1
      db:save("t", "u", "b", 1)          -- 2
      db:save("t", "u", "a", 2)          -- 3
      db:drop("t", "u", "a")             -- 4
      db:save("t", "u", "b", 2)          -- 5
      db:save("t", "u", "a", 3)          -- 6: a again, after its drop
      return db:log("t")
    end

    it("lists newest first, honours max, entry, since, until, rev", function()
      local db = S.db
      local log = fill(db)
      assert.equal(6, #log)
      assert.same({ log[1].id, log[2].id }, ids(db:log("t", { max = 2 })))
      -- every commit that changed a, across its drop and re-creation
      assert.same({ log[1].id, log[3].id, log[4].id, log[6].id }, ids(db:log("t", { entry = "a" })))
      assert.same({ log[2].id, log[5].id }, ids(db:log("t", { entry = "b" })))
      assert.same({}, db:log("t", { entry = "nothing" }))
      assert.same({ log[1].id }, ids(db:log("t", { entry = "a", max = 1 })))
      assert.same(ids(db:log("t", { rev = log[3].id })), { log[3].id, log[4].id, log[5].id, log[6].id })
      assert.same(ids(db:log("t", { ["until"] = log[3].time })), { log[3].id, log[4].id, log[5].id, log[6].id })
      assert.same(ids(db:log("t", { since = log[2].time })), { log[1].id, log[2].id })
      assert.same(ids(db:log("t", { since = log[4].time, ["until"] = log[3].time })), { log[3].id, log[4].id })
      assert.same(ids(db:log("t", { first_parent = true })), ids(log))
      assert.same(ids(db:log("t", { entry = "a", ["until"] = log[3].time })), { log[3].id, log[4].id, log[6].id })
    end)

    it("refuses bad options", function()
      local db = S.db
      fill(db)
      for _, bad in ipairs({ 1, { max = 0 }, { max = 1.5 }, { max = "3" }, { entry = 1 }, { since = "x" },
                             { first_parent = 1 }, { rev = 5 }, { what = 1 } }) do
        H.assert_error_code(function() db:log("t", bad) end, "invalid_argument")
      end
      H.assert_error_code(function() db:log("t", { rev = "nope" }) end, "not_found")
      H.assert_error_code(function() db:log("nope") end, "not_initialized")
    end)

    it("is empty for a tenant without commits", function()
      assert.same({}, S.db:log("t"))
    end)
  end)

  describe("branches", function()
    it("branch, checkout, write, read: each branch sees its own state", function()
      local db = S.db
      db:put("t", "u", "users", "ann", { age = 30 })
      local base = db:log("t")[1].id
      assert.equal(base, db:branch("t", "dev"))
      assert.same({ main = base, dev = base }, db:branches("t"))
      assert.equal("main", db:current_branch("t"))
      db:checkout("t", "dev")
      assert.equal("dev", db:current_branch("t"))
      db:put("t", "v", "users", "bob", { age = 40 }, { message = "on dev" })
      db:save("t", "v", "notes", "dev only")
      assert.same({ age = 40 }, db:get("t", "users", "bob"))
      assert.same({ "notes", "users" }, db:entries("t"))
      assert.is_true(db:exists("t", "notes"))
      local devlog = db:log("t")
      assert.equal(3, #devlog)
      assert.equal(base, devlog[3].id)
      assert.equal(devlog[1].id, db:branches("t").dev)
      -- main is untouched
      db:checkout("t", "main")
      assert.is_nil(db:get("t", "users", "bob"))
      assert.is_false(db:exists("t", "notes"))
      assert.same({ "users" }, db:entries("t"))
      assert.equal(base, db:branches("t").main)
      -- a write on main does not move dev
      db:put("t", "u", "users", "cy", { age = 5 })
      assert.equal(devlog[1].id, db:branches("t").dev)
      -- history per entry follows the branch
      db:checkout("t", "dev")
      assert.equal(2, #db:history("t", "users"))
      assert.is_nil(db:get("t", "users", "cy"))
      -- queries and scans read the branch
      local n = 0
      for _ in db:query("t", "users") do n = n + 1 end
      assert.equal(2, n)
      n = 0
      for _ in db:scan("t") do n = n + 1 end
      assert.equal(2, n)
      assert.same({}, db:verify())
    end)

    it("checkout is per handle and survives nothing but the handle", function()
      local db = S.db
      db:save("t", "u", "cfg", 1)
      db:branch("t", "dev")
      db:checkout("t", "dev")
      db:save("t", "u", "cfg", 2)
      local other = S.open_again()
      assert.equal("main", other:current_branch("t"))
      assert.equal(1, other:load("t", "cfg"))
      assert.equal(2, db:load("t", "cfg"))
      other:checkout("t", "dev")
      assert.equal(2, other:load("t", "cfg"))
    end)

    it("creates a branch at any revision", function()
      local db = S.db
      db:save("t", "u", "cfg", 1)
      db:save("t", "u", "cfg", 2)
      local log = db:log("t")
      assert.equal(log[2].id, db:branch("t", "old", "main~1"))
      db:checkout("t", "old")
      assert.equal(1, db:load("t", "cfg"))
      assert.equal(log[2].id, db:branch("t", "fromid", log[2].id))
      db:tag("t", "v1", "main")
      assert.equal(log[1].id, db:branch("t", "fromtag", "v1"))
    end)

    it("validates names and refuses what cannot be", function()
      local db = S.db
      db:save("t", "u", "cfg", 1)
      for _, bad in ipairs({ "", ".x", "-x", "/x", "a..b", "a b", "ü", ("x"):rep(129), "a\0b", 5 }) do
        H.assert_error_code(function() db:branch("t", bad) end, "invalid_argument")
        H.assert_error_code(function() db:checkout("t", bad) end, "invalid_argument")
        H.assert_error_code(function() db:tag("t", bad) end, "invalid_argument")
      end
      for _, good in ipairs({ "a", "feature/x-1", "v1.2_3", ("x"):rep(128), "A.b-C/d_e" }) do
        assert.truthy(db:branch("t", good))
      end
      H.assert_error_code(function() db:branch("t", "a") end, "already_exists")
      H.assert_error_code(function() db:branch("t", "z", "nope") end, "not_found")
      H.assert_error_code(function() db:checkout("t", "nope") end, "not_found")
      H.assert_error_code(function() db:delete_branch("t", "nope") end, "not_found")
      H.assert_error_code(function() db:delete_branch("t", "main") end, "invalid_argument")
      db:checkout("t", "a")
      H.assert_error_code(function() db:delete_branch("t", "a") end, "invalid_argument")
      db:checkout("t", "main")
      assert.is_true(db:delete_branch("t", "a"))
      assert.is_nil(db:branches("t").a)
      H.assert_error_code(function() db:branch("nope", "x") end, "not_initialized")
      H.assert_error_code(function() db:branch("t", "x", 5) end, "invalid_argument")
    end)

    it("a branch of an empty tenant has nothing to point at", function()
      H.assert_error_code(function() S.db:branch("t", "dev") end, "not_found")
      assert.same({}, S.db:branches("t"))
    end)

    it("a deleted branch's commits stay readable by id until gc", function()
      local db = S.db
      db:save("t", "u", "cfg", 1)
      db:branch("t", "dev")
      db:checkout("t", "dev")
      db:save("t", "u", "cfg", 2)
      local id = db:branches("t").dev
      db:checkout("t", "main")
      db:delete_branch("t", "dev")
      assert.equal(2, db:at("t", id):load("cfg"))
      -- a handle that still has it checked out gets not_found, not garbage
      local other = S.open_again()
      assert.equal(1, other:load("t", "cfg"))
    end)

    it("reading a branch another handle deleted raises not_found", function()
      local db = S.db
      db:save("t", "u", "cfg", 1)
      db:branch("t", "dev")
      local other = S.open_again()
      other:checkout("t", "dev")
      db:delete_branch("t", "dev")
      H.assert_error_code(function() other:load("t", "cfg") end, "not_found")
      H.assert_error_code(function() other:save("t", "u", "cfg", 2) end, "not_found")
      other:checkout("t", "main")
      assert.equal(1, other:load("t", "cfg"))
    end)
  end)

  describe("tags", function()
    it("tag, tags, delete_tag; a tag never moves", function()
      local db = S.db
      db:save("t", "u", "cfg", 1)
      local c1 = db:log("t")[1].id
      assert.equal(c1, db:tag("t", "v1"))
      db:save("t", "u", "cfg", 2)
      local c2 = db:log("t")[1].id
      assert.equal(c1, db:tag("t", "old", "main~1", "the first"))
      assert.equal(c2, db:tag("t", "v2", nil, "release 2"))
      assert.same({ v1 = c1, old = c1, v2 = c2 }, db:tags("t"))
      H.assert_error_code(function() db:tag("t", "v1", "main") end, "already_exists")
      assert.equal(c1, db:tags("t").v1)
      assert.equal(1, db:at("t", "v1"):load("cfg"))
      assert.is_true(db:delete_tag("t", "old"))
      H.assert_error_code(function() db:delete_tag("t", "old") end, "not_found")
      H.assert_error_code(function() db:tag("t", "x", nil, 5) end, "invalid_argument")
      H.assert_error_code(function() db:tag("t", "x", "nope") end, "not_found")
      assert.same({ v1 = c1, v2 = c2 }, db:tags("t"))
      assert.same({}, db:verify())
    end)
  end)

  describe("revisions", function()
    it("resolves names, ids, prefixes, ~N and @{T}", function()
      local db = S.db
      for i = 1, 5 do db:save("t", "u", "cfg", i) end
      local log = db:log("t")
      db:tag("t", "v3", log[3].id)
      assert.equal(log[1].id, db:resolve("t", "main"))
      assert.equal(log[3].id, db:resolve("t", "v3"))
      assert.equal(log[2].id, db:resolve("t", log[2].id))
      assert.equal(log[2].id, db:resolve("t", log[2].id:sub(1, 8)))
      assert.equal(log[2].id, db:resolve("t", log[2].id:sub(1, 20)))
      assert.equal(log[2].id, db:resolve("t", "main~"))
      assert.equal(log[4].id, db:resolve("t", "main~3"))
      assert.equal(log[5].id, db:resolve("t", "v3~2"))
      assert.equal(log[5].id, db:resolve("t", "main~2~2"))
      assert.equal(log[1].id, db:resolve("t", "main~0"))
      for i = 1, 5 do
        assert.equal(log[i].id, db:resolve("t", ("main@{%.17g}"):format(log[i].time)))
      end
      assert.equal(log[1].id, db:resolve("t", "main@{2999-01-01}"))
      assert.equal(log[1].id, db:resolve("t", "main@{2999-01-01 00:00:00}"))
      assert.equal(log[3].id, db:resolve("t", ("v3@{%.17g}"):format(log[1].time)))
      H.assert_error_code(function() db:resolve("t", "main@{2000-01-01}") end, "not_found")
      H.assert_error_code(function() db:resolve("t", "main@{yesterday}") end, "invalid_argument")
      H.assert_error_code(function() db:resolve("t", "main@{2020-13-01}") end, "invalid_argument")
      H.assert_error_code(function() db:resolve("t", "main~5") end, "not_found")
      H.assert_error_code(function() db:resolve("t", "nope") end, "not_found")
      H.assert_error_code(function() db:resolve("t", log[2].id:sub(1, 7)) end, "not_found")
      H.assert_error_code(function() db:resolve("t", ("0"):rep(64)) end, "not_found")
      -- a digest of another object (a version) is not a commit
      H.assert_error_code(function() db:resolve("t", db:get_digest("t", "cfg")) end, "invalid_argument")
      H.assert_error_code(function() db:resolve("t", "") end, "invalid_argument")
      H.assert_error_code(function() db:resolve("t", 5) end, "invalid_argument")
    end)

    it("answers REV@{T} along a long branch in few reads", function()
      local db = S.db
      for i = 1, 300 do db:put("t", "u", "c", "k" .. (i % 7), i) end
      local log = db:log("t", { max = 300 })
      -- O(log n): the skew-binary walk steps on at most ~2 log2(n) commits
      -- (a walk would read up to 300)
      local LIMIT = math.ceil(2 * math.log(300, 2)) + 5
      local store = db._store
      local read = store.read
      local reads = 0
      local fresh = S.open_again()
      local fstore = fresh._store
      local mt = getmetatable(fstore)
      local orig = mt.__index.read
      mt.__index.read = function(...) reads = reads + 1; return orig(...) end
      local ok, err = pcall(function()
        for i = 1, 300, 7 do
          reads = 0
          assert.equal(log[i].id, fresh:resolve("t", ("main@{%.17g}"):format(log[i].time)))
          assert.is_true(reads <= LIMIT, reads .. " reads for one @{T}")
          reads = 0
          assert.equal(log[i].id, fresh:resolve("t", "main~" .. (i - 1)))
          assert.is_true(reads <= LIMIT, reads .. " reads for one ~N")
        end
      end)
      mt.__index.read = orig
      assert(ok, err)
      assert.equal(read, store.read)
    end)
  end)

  describe("views", function()
    it("see exactly the state of their commit, whatever is written later", function()
      local db = S.db
      db:put_many("t", "u", "users", { ann = { age = 30 }, bob = { age = 40 } })
      db:save("t", "u", "cfg", { theme = "dark" })
      local id = db:log("t")[1].id
      local v = db:at("t", "main")
      db:put("t", "u", "users", "ann", { age = 31 })
      db:delete("t", "u", "users", "bob")
      db:drop("t", "u", "cfg")
      db:save("t", "u", "later", 1)
      assert.equal(id, v.commit)
      assert.same({ age = 30 }, v:get("users", "ann"))
      assert.same({ age = 40 }, v:get("users", "bob"))
      assert.equal(2, #v:get("users"))
      assert.same({ theme = "dark" }, v:load("cfg"))
      assert.same({ "cfg", "users" }, v:entries())
      assert.is_true(v:exists("cfg"))
      assert.is_false(v:exists("later"))
      assert.equal(db:history("t", "users")[3], v:get_digest("users"))
      assert.equal(1, #v:history("users")) -- the put_many: its first version
      local keys = {}
      for k in v:records("users") do keys[#keys + 1] = k end
      assert.same({ "ann", "bob" }, keys)
      keys = {}
      for k in v:query("users", { from = "b" }) do keys[#keys + 1] = k end
      assert.same({ "bob" }, keys)
      H.assert_error_code(function() v:load("later") end, "not_found")
      H.assert_error_code(function() v:query("users", { digest = id }) end, "invalid_argument")
      H.assert_error_code(function() v:load(5) end, "invalid_argument")
      H.assert_error_code(function() v.load(nil, "cfg") end, "invalid_argument")
      assert.is_nil(v.save)
      assert.is_nil(v.put)
      assert.is_nil(v.delete)
      -- the live head moved on
      assert.same({ age = 31 }, db:get("t", "users", "ann"))
    end)

    it("travel in time across a reopened store", function()
      H.needs_disk("a reopened memory store is a new one")
      local db = S.db
      db:save("t", "u", "cfg", { v = 1 })
      local t1 = db:log("t")[1].time
      db:save("t", "u", "cfg", { v = 2 })
      db:close()
      S.db = require("mydb").open(S.root, S.opts)
      local again = S.db
      assert.same({ v = 1 }, again:at("t", ("main@{%.17g}"):format(t1)):load("cfg"))
      assert.same({ v = 1 }, again:at("t", "main~1"):load("cfg"))
      assert.same({ v = 2 }, again:at("t", "main"):load("cfg"))
      local out, ok = H.run_lua(([[
        local db = require("mydb").open(%q)
        local v = db:at("t", "main~1")
        io.write(v:load("cfg").v, " ", #db:log("t"))
      ]]):format(S.root))
      assert(ok, out)
      assert.equal("1 2", out)
    end)
  end)

  describe("stores written before commits", function()
    it("open as they are; the first write makes their heads main's first commit", function()
      local db = S.db
      -- a head written the old way: an entry moved without a commit
      local d = db._store:write("t", core.snapshot_bytes("1", nil, "old", "20260101 00:00:00 +0000"))
      local lock = db._store:lock("t")
      lock:commit({ { "legacy", d } }, true)
      assert.equal(1, db:load("t", "legacy"))
      assert.same({}, db:log("t"))
      db:save("t", "u", "cfg", 2)
      local log = db:log("t")
      assert.equal(2, #log)
      assert.equal("the state before commits", log[2].message)
      assert.same({ "legacy" }, log[2].entries)
      assert.equal(1, db:at("t", "main~1"):load("legacy"))
      assert.same({ "cfg", "legacy" }, db:at("t", "main"):entries())
      assert.same({}, db:verify())
    end)

    it("a branch of one makes main's first commit too", function()
      local db = S.db
      local d = db._store:write("t", core.snapshot_bytes("1", nil, "old", "20260101 00:00:00 +0000"))
      local lock = db._store:lock("t")
      lock:commit({ { "legacy", d } }, true)
      local id = db:branch("t", "dev")
      assert.equal(id, db:branches("t").main)
      assert.equal(1, db:at("t", "dev"):load("legacy"))
    end)
  end)

  describe("gc, verify, copy", function()
    it("gc keeps every branch and tag; verify finds main's state out of step with the heads", function()
      local db = S.db
      db:save("t", "u", "cfg", 1)
      db:branch("t", "dev")
      db:checkout("t", "dev")
      db:save("t", "u", "cfg", 2)
      db:tag("t", "dev-tip")
      db:checkout("t", "main")
      db:save("t", "u", "cfg", 3)
      db:gc()
      assert.equal(2, db:at("t", "dev"):load("cfg"))
      assert.equal(2, db:at("t", "dev-tip"):load("cfg"))
      assert.equal(1, db:at("t", "main~1"):load("cfg"))
      assert.same({}, db:verify())
      -- an entry head moved behind the commits' back
      local d = db:history("t", "cfg")[2]
      local lock = db._store:lock("t")
      lock:commit({ { "cfg", d } }, true)
      local problems = db:verify()
      assert.equal(1, #problems)
      assert.equal("state_mismatch", problems[1].kind)
    end)

    it("a damaged commit is reported, not followed", function()
      local db = S.db
      db:save("t", "u", "cfg", 1)
      local store = db._store
      local bad = store:write("t", '{"commit":1,"date":"d","entries":{"cfg":"zz"},"height":0,"size":0,'
        .. '"time":1,"user_id":"u"}')
      local lock = store:lock("t")
      lock:commit({ { "\0heads/bad", bad } }, true)
      H.assert_error_code(function() db:log("t", { rev = "bad" }) end, "corrupt")
      H.assert_error_code(function() db:at("t", "bad") end, "corrupt")
      local problems = db:verify()
      assert.equal(1, #problems)
      assert.equal("broken_commit", problems[1].kind)
      assert.equal(bad, problems[1].digest)
    end)

    it("copy carries commits, branches and tags", function()
      H.needs_disk("copy opens the source by its root")
      local db = S.db
      db:save("t", "u", "cfg", 1)
      db:branch("t", "dev")
      db:tag("t", "v1", nil, "one")
      db:save("t", "u", "cfg", 2)
      local dst = S.dir .. "/copy"
      require("mydb").copy(S.root, dst, { backend = "loose", progress = false })
      local c = require("mydb").open(dst)
      assert.same(db:branches("t"), c:branches("t"))
      assert.same(db:tags("t"), c:tags("t"))
      assert.same(ids(db:log("t")), ids(c:log("t")))
      assert.equal(1, c:at("t", "v1"):load("cfg"))
      assert.same({}, c:verify())
      c:close()
    end)
  end)
  describe("concurrency", function()
    it("4 processes x 250 writes on one branch: 1,000 commits in its log, none lost", function()
      H.needs_disk()
      local db = S.db
      db:save("t", "u", "base", 0)
      db:branch("t", "dev")
      local chunks = {}
      for p = 1, 4 do
        chunks[p] = ([[
          local db = require("mydb").open(%q, { fsync = false })
          db:checkout("t", "dev")
          for i = 1, 250 do
            db:put("t", "p%d", "c", ("p%d-%%03d"):format(i), i, { message = ("p%d %%d"):format(i) })
          end
          io.write("ok")
        ]]):format(S.root, p, p, p)
      end
      for _, r in ipairs(H.run_lua_parallel(chunks)) do assert(r.ok and r.out == "ok", r.out) end
      local log = db:log("t", { rev = "dev", max = 5000 })
      assert.equal(1001, #log) -- and the base commit
      local seen = {}
      for i, c in ipairs(log) do
        if i < #log then
          assert.same({ log[i + 1].id }, c.parents) -- one unbroken chain
          assert.is_nil(seen[c.message])
          seen[c.message] = true
        end
      end
      for p = 1, 4 do for i = 1, 250 do assert.is_true(seen[("p%d %d"):format(p, i)]) end end
      db:checkout("t", "dev")
      assert.equal(1000, #db:get("t", "c"))
      db:checkout("t", "main")
      assert.is_false(db:exists("t", "c"))
      assert.same({}, db:verify())
    end)

    it("a reader of one branch is not held up by a writer holding the tenant lock", function()
      H.needs_disk()
      local db = S.db
      db:save("t", "u", "cfg", 1)
      db:branch("t", "dev")
      local lock = db._store:lock("t") -- a writer mid-commit
      local out, ok = H.run_lua(([[
        local db = require("mydb").open(%q)
        db:checkout("t", "dev")
        io.write(db:load("t", "cfg"), " ", #db:log("t"), " ", db:at("t", "main"):load("cfg"))
      ]]):format(S.root))
      lock:release()
      assert(ok, out)
      assert.equal("1 1 1", out)
    end)
  end)
end)
