-- Sync between stores (issue 19): remotes, fetch, push, pull, clone.
local H = require "spec.helper"
local mydb = require "mydb"

local MEM = H.BACKEND == "memory"

describe("sync", function()
  local S = H.use_store({ tenant = "acme" })
  local R -- the remote: another store, in S.dir/remote

  local function url(path)
    if H.BACKEND == "postgres" then return "postgres:" .. path end
    return MEM and "memory:" .. path or path
  end

  before_each(function()
    R = mydb.open(S.dir .. "/remote", { fsync = false })
    R:init("acme")
    S.extra = S.extra or {}
    S.extra[#S.extra + 1] = R
  end)

  local function ids(list)
    local out = {}
    for i, c in ipairs(list) do out[i] = c.id end
    return out
  end

  describe("remotes", function()
    it("are added, listed and removed, and kept in the store", function()
      assert.same({}, S.db:remotes())
      assert.is_true(S.db:add_remote("origin", url(S.dir .. "/remote")))
      S.db:add_remote("backup", url(S.dir .. "/b"))
      assert.same({ origin = url(S.dir .. "/remote"), backup = url(S.dir .. "/b") }, S.db:remotes())
      local again = S.open_again()
      assert.same(S.db:remotes(), again:remotes())
      assert.is_true(S.db:remove_remote("backup"))
      assert.same({ origin = url(S.dir .. "/remote") }, again:remotes())
      H.assert_error_code(function() S.db:remove_remote("backup") end, "not_found")
      H.assert_error_code(function() S.db:add_remote("origin", "x") end, "already_exists")
    end)

    it("refuse bad names and urls; an unknown remote is not_found", function()
      for _, bad in ipairs({ "", ".x", "-x", "a/b", "a b", ("x"):rep(65), 3, "a..b" }) do
        H.assert_error_code(function() S.db:add_remote(bad, "/tmp/x") end, "invalid_argument")
      end
      H.assert_error_code(function() S.db:add_remote("o", "") end, "invalid_argument")
      H.assert_error_code(function() S.db:add_remote("o", 5) end, "invalid_argument")
      H.assert_error_code(function() S.db:add_remote("o", "a\0b") end, "invalid_argument")
      H.assert_error_code(function() S.db:add_remote("self", url(S.root)) end, "invalid_argument")
      H.assert_error_code(function() S.db:fetch("acme", "nope") end, "not_found")
      H.assert_error_code(function() S.db:push("acme", "nope") end, "not_found")
      H.assert_error_code(function() S.db:fetch("acme", "bad/name") end, "invalid_argument")
      H.assert_error_code(function() S.db:fetch(".x", "origin") end, "invalid_argument")
      S.db:add_remote("origin", url(S.dir .. "/remote"))
      H.assert_error_code(function() S.db:fetch("acme", "origin", "..") end, "invalid_argument")
      H.assert_error_code(function() S.db:push("acme", "origin", "main", { bogus = 1 }) end, "invalid_argument")
      H.assert_error_code(function() S.db:fetch("acme", "origin", "nobranch") end, "not_found")
      H.assert_error_code(function() S.db:fetch("other", "origin") end, "not_found")
    end)
  end)

  describe("fetch and push", function()
    before_each(function() S.db:add_remote("origin", url(S.dir .. "/remote")) end)

    it("fetch brings the remote's history as read-only REMOTE/BRANCH", function()
      R:save("acme", "bob", "cfg", { v = 1 })
      R:save("acme", "bob", "cfg", { v = 2 })
      R:branch("acme", "dev")
      R:tag("acme", "v1")
      local rep = S.db:fetch("acme", "origin")
      assert.equal(2, rep.commits)
      assert.is_true(rep.objects >= 4)
      assert.is_true(rep.bytes > 0)
      assert.same({ "origin/dev", "origin/main", "tags/v1" }, rep.updated)
      local b = S.db:branches("acme")
      assert.equal(R:resolve("acme", "main"), b["origin/main"])
      assert.equal(R:resolve("acme", "main"), S.db:resolve("acme", "origin/main"))
      assert.equal(R:resolve("acme", "main"), S.db:resolve("acme", "v1"))
      assert.same(ids(R:log("acme")), ids(S.db:log("acme", { rev = "origin/main" })))
      assert.same({ v = 1 }, S.db:at("acme", "origin/main~1"):load("cfg"))
      H.assert_error_code(function() S.db:checkout("acme", "origin/main") end, "invalid_argument")
      -- main of the local store is untouched
      assert.is_false(S.db:exists("acme", "cfg"))
      -- a no-op fetch moves and sends nothing
      local again = S.db:fetch("acme", "origin")
      assert.same({ commits = 0, objects = 0, bytes = 0, updated = {} }, again)
      assert.same({}, S.db:verify())
    end)

    it("push sends the branch, fast-forwards the remote's main and its entry heads", function()
      S.db:save("acme", "al", "cfg", { v = 1 })
      S.db:put("acme", "al", "users", "u1", { n = 1 })
      S.db:tag("acme", "t1")
      local rep = S.db:push("acme", "origin")
      assert.equal(2, rep.commits)
      assert.same({ "main", "tags/t1" }, rep.updated)
      assert.same({ v = 1 }, R:load("acme", "cfg"))
      assert.same({ n = 1 }, R:get("acme", "users", "u1"))
      assert.equal(S.db:resolve("acme", "main"), R:resolve("acme", "main"))
      assert.equal(S.db:resolve("acme", "t1"), R:resolve("acme", "t1"))
      assert.equal(S.db:resolve("acme", "main"), S.db:resolve("acme", "origin/main"))
      assert.same({ commits = 0, objects = 0, bytes = 0, updated = {} }, S.db:push("acme", "origin"))
      -- a second change sends only the new commit and what it changed
      S.db:save("acme", "al", "cfg", { v = 2 })
      rep = S.db:push("acme", "origin")
      assert.equal(1, rep.commits)
      assert.same({ v = 2 }, R:load("acme", "cfg"))
      assert.same({}, R:verify())
      assert.same({}, S.db:verify())
    end)

    it("push of another branch leaves the remote's main alone", function()
      S.db:save("acme", "al", "cfg", { v = 1 })
      S.db:push("acme", "origin")
      S.db:branch("acme", "dev")
      S.db:checkout("acme", "dev")
      S.db:save("acme", "al", "cfg", { v = 9 })
      local rep = S.db:push("acme", "origin")
      assert.same({ "dev" }, rep.updated)
      assert.same({ v = 1 }, R:load("acme", "cfg"))
      assert.same({ v = 9 }, R:at("acme", "dev"):load("cfg"))
    end)

    it("a push that is not a fast-forward is rejected; pull then push lands", function()
      S.db:save("acme", "al", "a", { v = 1 })
      S.db:push("acme", "origin")
      R:save("acme", "bob", "b", { v = 2 })
      S.db:save("acme", "al", "a", { v = 3 })
      local before = R:resolve("acme", "main")
      local err = H.assert_error_code(function() S.db:push("acme", "origin") end, "rejected")
      assert.matches("fast%-forward", err.message)
      assert.equal(before, R:resolve("acme", "main"))
      local rep = S.db:pull("acme", "al", "origin")
      assert.same({ "origin/main" }, rep.updated)
      assert.is_table(rep.merge)
      assert.same({ v = 2 }, S.db:load("acme", "b"))
      S.db:push("acme", "origin")
      assert.same({ v = 2 }, R:load("acme", "b"))
      assert.same({ v = 3 }, R:load("acme", "a"))
      local log = ids(R:log("acme"))
      local seen = {}
      for _, id in ipairs(log) do seen[id] = true end
      assert.is_true(seen[before])
      assert.same({}, R:verify())
    end)

    it("opts.force moves the remote branch anyway", function()
      R:save("acme", "bob", "b", { v = 2 })
      S.db:save("acme", "al", "a", { v = 1 })
      H.assert_error_code(function() S.db:push("acme", "origin") end, "rejected")
      S.db:push("acme", "origin", "main", { force = true })
      assert.equal(S.db:resolve("acme", "main"), R:resolve("acme", "main"))
      assert.is_false(R:exists("acme", "b"))
      assert.same({ v = 1 }, R:load("acme", "a"))
    end)

    it("carries shared refs (use_refs) and index roots", function()
      local Doc = { use_refs = { "blob" } }
      mydb.register_class("SyncDoc", Doc, { replace = true })
      local ok, err = pcall(function()
        S.db:save("acme", "al", "r", setmetatable({ blob = { ("y"):rep(300), 1, 2 } }, Doc))
        S.db:put_many("acme", "al", "c", { a = { n = 1 }, b = { n = 2 } })
        S.db:create_index("acme", "al", "c", "by_n", function(v) return v.n end)
        local rep = S.db:push("acme", "origin")
        assert.is_true(rep.objects >= 4)
        local got = R:load("acme", "r")
        assert.equal(("y"):rep(300), got.blob[1])
        assert.same({}, R:verify())
        -- a clone of the remote gets them too
        local c <close> = mydb.clone(url(S.dir .. "/remote"), S.dir .. "/c2")
        assert.equal(("y"):rep(300), c:load("acme", "r").blob[1])
        assert.same({}, c:verify())
      end)
      mydb.unregister_class("SyncDoc")
      if not ok then error(err, 0) end
    end)

    it("pull into an empty tenant fast-forwards; pull on another branch merges into it", function()
      R:save("acme", "bob", "cfg", { v = 1 })
      R:branch("acme", "dev")
      local rep = S.db:pull("acme", "al", "origin")
      assert.is_true(rep.merge.fast_forward)
      assert.same({ v = 1 }, S.db:load("acme", "cfg"))
      assert.equal(R:resolve("acme", "main"), S.db:resolve("acme", "main"))
      S.db:branch("acme", "dev")
      S.db:checkout("acme", "dev")
      R:checkout("acme", "dev")
      R:save("acme", "bob", "cfg", { v = 2 })
      S.db:pull("acme", "al", "origin")
      assert.same({ v = 2 }, S.db:load("acme", "cfg"))
      S.db:checkout("acme", "main")
      assert.same({ v = 1 }, S.db:load("acme", "cfg"))
      assert.same({}, S.db:verify())
    end)

    it("fetch of one branch keeps the others; fetch of all drops deleted ones", function()
      R:save("acme", "bob", "cfg", { v = 1 })
      R:branch("acme", "dev")
      R:branch("acme", "old")
      S.db:fetch("acme", "origin")
      R:delete_branch("acme", "old")
      R:save("acme", "bob", "cfg", { v = 2 })
      local rep = S.db:fetch("acme", "origin", "main")
      assert.same({ "origin/main" }, rep.updated)
      assert.is_string(S.db:branches("acme")["origin/old"])
      rep = S.db:fetch("acme", "origin")
      assert.same({ "origin/old" }, rep.updated)
      local b = S.db:branches("acme")
      assert.is_nil(b["origin/old"])
      assert.is_string(b["origin/dev"])
      -- a local branch of the same name wins as a revision
      S.db:save("acme", "al", "mine", { m = 1 })
      S.db:branch("acme", "origin/dev")
      assert.equal(S.db:resolve("acme", "main"), S.db:resolve("acme", "origin/dev"))
      assert.same({}, S.db:verify())
      -- gc keeps what the tracking branches reach
      S.db:gc()
      assert.same({ v = 2 }, S.db:at("acme", "origin/main"):load("cfg"))
      assert.same({}, S.db:verify())
    end)

    it("a plan that relied on objects a gc removed meanwhile is made again", function()
      local transfer = require "mydb.transfer"
      S.db:save("acme", "al", "cfg", { v = 1 })
      S.db:branch("acme", "tmp")
      S.db:push("acme", "origin", "tmp")
      R:delete_branch("acme", "tmp")                 -- its objects are unreachable on R now
      local plan = transfer.plan(S.db._store, R._store, "acme", { S.db:resolve("acme", "main") })
      assert.is_true(transfer.empty(plan))          -- R has them all...
      assert.is_true(transfer.still_valid(R._store, plan))
      if H.BACKEND == "loose" then                   -- (loose gc keeps files younger than its grace)
        os.execute("find " .. H.q(S.dir .. "/remote") .. " -type f -exec touch -d '2000-01-01' {} + 2>/dev/null")
      end
      R:gc()                                         -- ...until its gc removes them
      assert.is_false(transfer.still_valid(R._store, plan))
      local rep = S.db:push("acme", "origin")       -- a fresh plan sends them again
      assert.equal(1, rep.commits)
      assert.same({ v = 1 }, R:load("acme", "cfg"))
      assert.same({}, R:verify())
    end)

    it("tenants stay isolated", function()
      S.db:init("other")
      S.db:save("other", "al", "secret", { s = 1 })
      S.db:save("acme", "al", "cfg", { v = 1 })
      S.db:push("acme", "origin")
      assert.is_false(R:is_initialized("other"))
      assert.same({ "acme" }, R:tenants())
    end)

    it("only the missing objects travel: one put into a big collection", function()
      local items = {}
      for i = 1, 20000 do items[("k%06d"):format(i)] = { n = i, pad = "xxxxxxxx" } end
      S.db:put_many("acme", "al", "big", items)
      local first = S.db:push("acme", "origin")
      assert.is_true(first.objects > 20)
      S.db:put("acme", "al", "big", "k010000", { n = -1 })
      local rep = S.db:push("acme", "origin")
      assert.equal(1, rep.commits)
      assert.is_true(rep.objects <= 10, "objects sent: " .. rep.objects)
      assert.is_true(rep.bytes < first.bytes / 20, ("bytes %d of %d"):format(rep.bytes, first.bytes))
      assert.same({ n = -1 }, R:get("acme", "big", "k010000"))
      -- and the other way: a fetch of one change
      R:put("acme", "bob", "big", "k000001", { n = 0 })
      local f = S.db:fetch("acme", "origin")
      assert.equal(1, f.commits)
      assert.is_true(f.objects <= 10, "objects fetched: " .. f.objects)
    end)
  end)

  describe("corrupt source", function()
    -- the source is a loose store on disk on every backend (its object
    -- files can be damaged); the remote is the backend in use
    it("a corrupt object aborts the push with refs unmoved", function()
      local src = mydb.open(S.dir .. "/src", { backend = "loose", fsync = false })
      S.extra[#S.extra + 1] = src
      src:init("acme")
      src:add_remote("origin", url(S.dir .. "/remote"))
      src:save("acme", "al", "cfg", { v = "one" })
      src:push("acme", "origin")
      src:save("acme", "al", "cfg", { v = "two" })
      local v = src:get_digest("acme", "cfg")
      src:close()
      local path = H.object_path(S.dir .. "/src", "acme", v)
      local bytes = H.read_file(path)
      H.write_file(path, bytes:sub(1, 20) .. (bytes:sub(21, 21) == "x" and "y" or "x") .. bytes:sub(22))
      src = mydb.open(S.dir .. "/src", { backend = "loose", fsync = false, cache_bytes = 0 })
      S.extra[#S.extra + 1] = src
      local before = R:resolve("acme", "main")
      H.assert_error_code(function() src:push("acme", "origin") end, "corrupt")
      assert.equal(before, R:resolve("acme", "main"))
      assert.same({ v = "one" }, R:load("acme", "cfg"))
      assert.same({}, R:verify())
      -- and a fetch from a corrupt remote moves no tracking branch
      local dst = mydb.open(S.dir .. "/dst", { fsync = false })
      S.extra[#S.extra + 1] = dst
      dst:init("acme")
      dst:add_remote("src", S.dir .. "/src")
      H.assert_error_code(function() dst:fetch("acme", "src") end, "corrupt")
      assert.same({}, dst:branches("acme"))
      assert.same({}, dst:verify())
    end)
  end)

  describe("clone", function()
    it("copies every tenant with its history to any backend; origin is the source", function()
      R:save("acme", "bob", "cfg", { v = 1 })
      R:put("acme", "bob", "users", "u", { n = 1 })
      R:branch("acme", "dev")
      R:tag("acme", "v1")
      R:init("beta")
      R:save("beta", "bob", "x", { b = true })
      for _, backend in ipairs(MEM and { "memory" } or { "loose", "pack" }) do
        local root = S.dir .. "/clone-" .. backend
        local c, rep = mydb.clone(url(S.dir .. "/remote"), root, { backend = backend })
        assert.equal(2, rep.tenants)
        assert.equal(#R:log("acme") + #R:log("beta"), rep.commits)
        assert.same({ origin = url(S.dir .. "/remote") }, c:remotes())
        assert.same({ "acme", "beta" }, c:tenants())
        assert.same({ v = 1 }, c:load("acme", "cfg"))
        assert.same({ n = 1 }, c:get("acme", "users", "u"))
        assert.same({ b = true }, c:load("beta", "x"))
        assert.equal(R:resolve("acme", "dev"), c:resolve("acme", "dev"))
        assert.equal(R:resolve("acme", "v1"), c:resolve("acme", "v1"))
        assert.same(ids(R:log("acme")), ids(c:log("acme")))
        assert.same({}, c:verify())
        -- the clone pushes back
        c:save("acme", "cl", "cfg", { v = 2 })
        c:push("acme", "origin")
        assert.same({ v = 2 }, R:load("acme", "cfg"))
        R:save("acme", "bob", "cfg", { v = 1 }) -- move on for the next clone's source
        c:close()
      end
      local c2 = mydb.clone(url(S.dir .. "/remote"), S.dir .. "/only-beta", { tenants = { "beta" } })
      assert.same({ "beta" }, c2:tenants())
      c2:close()
      H.assert_error_code(function() mydb.clone(url(S.dir .. "/remote"), S.root) end, "invalid_argument")
      if not MEM then
        H.assert_error_code(function() mydb.clone(S.dir .. "/none", S.dir .. "/c3") end, "not_found")
      end
    end)
  end)
  describe("stores written before commits", function()
    it("fetch and clone carry a tenant whose heads have no commit yet (its heads become main's first)", function()
      -- a head written the old way: an entry moved without a commit
      local core = require "mydb.core"
      local d = R._store:write("acme", core.snapshot_bytes('{"v":1}', nil, "old", "20260101 00:00:00 +0000"))
      do
        local lock <close> = R._store:lock("acme")
        lock:commit({ { "legacy", d } }, true)
      end
      assert.same({}, R:log("acme"))
      local c = mydb.clone(url(S.dir .. "/remote"), S.dir .. "/clone-old")
      assert.same({ v = 1 }, c:load("acme", "legacy"))
      local log = c:log("acme")
      assert.equal(1, #log)
      assert.equal("the state before commits", log[1].message)
      assert.same(ids(R:log("acme")), ids(log)) -- the remote made the same commit
      assert.same({}, c:verify())
      assert.same({}, R:verify())
      -- the same through fetch and pull into an existing store
      S.db:add_remote("r", url(S.dir .. "/remote"))
      S.db:pull("acme", "me", "r")
      assert.same({ v = 1 }, S.db:load("acme", "legacy"))
      c:close()
    end)
  end)

  describe("every backend pair", function()
    it("pushes, fetches and pulls between loose, pack and memory stores", function()
      local kinds = { "loose", "pack", "memory" }
      -- postgres too when a throwaway server runs (make test-backends)
      if os.getenv("MYDB_PG_DIR") then kinds[4] = "postgres" end
      for _, ka in ipairs(kinds) do
        for _, kb in ipairs(kinds) do
          local pa, pb = ("%s/pair-%s-%s-a"):format(S.dir, ka, kb), ("%s/pair-%s-%s-b"):format(S.dir, ka, kb)
          local a = mydb.open(pa, { backend = ka, fsync = false })
          local b = mydb.open(pb, { backend = kb, fsync = false })
          S.extra[#S.extra + 1] = a
          S.extra[#S.extra + 1] = b
          a:init("acme")
          local function prefix(k) return (k == "memory" or k == "postgres") and k .. ":" or "" end
          a:add_remote("b", prefix(kb) .. pb)
          b:add_remote("a", prefix(ka) .. pa)
          a:put_many("acme", "al", "c", { x = { n = 1 }, y = { n = 2 } })
          a:save("acme", "al", "doc", { from = ka })
          local rep = a:push("acme", "b")
          assert.equal(2, rep.commits, ka .. " -> " .. kb)
          assert.same({ from = ka }, b:load("acme", "doc"))
          b:put("acme", "bo", "c", "z", { n = 3 })
          local f = a:pull("acme", "al", "b")
          assert.equal(1, f.commits)
          assert.same({ n = 3 }, a:get("acme", "c", "z"))
          assert.same({}, a:verify())
          assert.same({}, b:verify())
          a:close()
          b:close()
        end
      end
    end)
  end)

  describe("processes", function()
    it("a push or fetch killed at any moment leaves both stores valid; a re-run completes it", function()
      H.needs_disk("the push runs in another process")
      H.needs_file_remotes("the push runs in another process, with this one's remote")
      S.db:add_remote("origin", url(S.dir .. "/remote"))
      S.db:save("acme", "al", "cfg", { v = 0 })
      S.db:push("acme", "origin")
      S.db:close()
      R:close()
      math.randomseed(os.time())
      local progressed = 0
      for round = 1, 6 do
        local pid, cleanup = H.spawn_lua([[
          local root, round = ...
          local db = require("mydb").open(root, { fsync = false })
          for i = 1, 100000 do
            db:save("acme", "al", "cfg", { v = i, round = round })
            local items = {}
            for k = 1, 200 do items[("r%s-%d-%d"):format(round, i, k)] = { k = k } end
            db:put_many("acme", "al", "c", items)
            db:push("acme", "origin")
            db:fetch("acme", "origin")
          end
        ]], { args = { S.root, tostring(round) } })
        H.sleep(0.1 + math.random() * 0.4)
        os.execute("kill -9 " .. pid .. " 2>/dev/null")
        H.sleep(0.05)
        cleanup()
        local a = mydb.open(S.root, { fsync = false, cache_bytes = 0 })
        local b = mydb.open(S.dir .. "/remote", { fsync = false, cache_bytes = 0 })
        assert.same({}, a:verify())
        assert.same({}, b:verify())
        a:push("acme", "origin")
        assert.equal(a:resolve("acme", "main"), b:resolve("acme", "main"))
        assert.same(a:load("acme", "cfg"), b:load("acme", "cfg"))
        if a:load("acme", "cfg").round == tostring(round) then progressed = progressed + 1 end
        assert.same({}, b:verify())
        a:close()
        b:close()
      end
      assert.is_true(progressed > 0, "no child got as far as a write before it was killed")
      S.db = mydb.open(S.root, { fsync = false })
      R = mydb.open(S.dir .. "/remote", { fsync = false })
      S.extra[#S.extra + 1] = R
    end)

    it("four processes pushing to one branch: each push lands or is rejected; none is lost", function()
      H.needs_disk("four processes")
      R:save("acme", "boss", "start", { v = 0 })
      local chunks = {}
      for w = 1, 4 do
        local root = S.dir .. "/w" .. w
        chunks[w] = ([[
          local mydb = require "mydb"
          local db = mydb.clone(%q, %q)
          local mine, rejected = {}, 0
          for i = 1, 6 do
            db:save("acme", "w%d", "e%d", { i = i })
            mine[#mine + 1] = db:resolve("acme", "main")
            while true do
              local ok, err = pcall(db.push, db, "acme", "origin")
              if ok then break end
              assert(err.code == "rejected", tostring(err))
              rejected = rejected + 1
              db:pull("acme", "w%d", "origin")
            end
          end
          print("REJECTED " .. rejected)
          for _, id in ipairs(mine) do print("COMMIT " .. id) end
        ]]):format(url(S.dir .. "/remote"), root, w, w, w)
      end
      local results = H.run_lua_parallel(chunks)
      local reachable = {}
      for _, c in ipairs(R:log("acme", { max = 100000 })) do reachable[c.id] = true end
      local n = 0
      for w, r in ipairs(results) do
        assert.is_true(r.ok, r.out)
        for id in r.out:gmatch("COMMIT (%x+)") do
          n = n + 1
          assert.is_true(reachable[id], ("commit %s of worker %d is lost"):format(id, w))
        end
        assert.same({ i = 6 }, R:load("acme", "e" .. w))
      end
      assert.equal(24, n)
      assert.same({}, R:verify())
    end)
  end)
end)

describe("examples/sync.lua", function()
  it("runs in a fresh process and prints what it says", function()
    local dir = H.tmpdir()
    local out, ok, status = H.run_lua(H.read_file(H.REPO .. "/examples/sync.lua"), { cwd = dir, memory_ok = true })
    assert(ok, ("exit status %s:\n%s"):format(tostring(status), out))
    assert.equal(table.concat({
      "cloned:\t1\ttenant,\t1\tcommits,\t3\tobjects",
      "push:\tfalse\trejected",
      "pulled:\t1\tcommit; merge fast-forward:\tfalse",
      "pushed:\t2\tcommits,\t6\tobjects; updated:\tmain",
      "server apple, kiwi:\t1.25\t0.75",
      "no-op fetch:\t0\tobjects", "" }, "\n"), out)
    assert.same({}, H.listing(dir))
    H.rmrf(dir)
  end)
end)
