-- Storage backends (issue 8): choosing one, what a store remembers, gc and
-- repack (on the backend the suite runs with: MYDB_BACKEND), migration.
local H = require "spec.helper"
local mydb = require "mydb"

-- ages every file under dir (loose gc keeps files changed in the last
-- seconds, so that a write racing the gc is never hurt)
local function age_files(dir)
  os.execute("find " .. H.q(dir) .. " -type f -exec touch -d '2000-01-01' {} + 2>/dev/null")
end

describe("backends", function()
  describe("choosing one", function()
    local dir
    before_each(function() dir = H.tmpdir() end)
    after_each(function() H.rmrf(dir) end)

    it("refuses an unknown backend and a bad segment_bytes, creating nothing", function()
      for _, b in ipairs({ "LOOSE", "packed", "", 1, true }) do
        H.assert_error_code(mydb.open, "invalid_argument", dir .. "/db", { backend = b })
      end
      for _, n in ipairs({ 0, 1023, 1.5, "64M", (1 << 30) + 1 }) do
        H.assert_error_code(mydb.open, "invalid_argument", dir .. "/db", { backend = "pack", segment_bytes = n })
      end
      assert.same({}, H.listing(dir))
    end)

    it("records the backend in ROOT/.mydb; another one is refused, naming both", function()
      local db = mydb.open(dir .. "/db", { backend = "pack", fsync = false })
      db:init("t")
      db:save("t", "u", "e", 1)
      db:close()
      assert.matches('"backend":"pack"', H.read_file(dir .. "/db/.mydb"))
      local err = H.assert_error_code(mydb.open, "invalid_argument", dir .. "/db", { backend = "loose" })
      assert.truthy(err.message:find("pack", 1, true) and err.message:find("loose", 1, true), err.message)
      -- no backend given: the store's own (H.open_unpatched: without the
      -- default of MYDB_BACKEND)
      local again = H.open_unpatched(dir .. "/db", { fsync = false })
      assert.equal("pack", again._store:backend())
      assert.equal(1, again:load("t", "e"))
      again:close()
    end)

    it("refuses a store whose ROOT/.mydb names a format it does not read, changing nothing", function()
      local db = mydb.open(dir .. "/db", { backend = "pack", fsync = false })
      db:init("t")
      db:save("t", "u", "e", 1)
      db:close()
      local marker = dir .. "/db/.mydb"
      local body = H.read_file(marker)
      for _, newer in ipairs({ "2", "10", "1.5", "\"x\"" }) do
        local f = assert(io.open(marker, "wb"))
        f:write((body:gsub('"format":1', '"format":' .. newer)))
        f:close()
        local err = H.assert_error_code(H.open_unpatched, "corrupt", dir .. "/db", { fsync = false })
        assert.truthy(err.message:find("format", 1, true), err.message)
      end
      local f = assert(io.open(marker, "wb"))
      f:write(body)
      f:close()
      local again = H.open_unpatched(dir .. "/db", { fsync = false })
      assert.equal(1, again:load("t", "e"))
      again:close()
    end)

    it("memory: no files at all; handles on one root share the store until the last closes", function()
      local root = dir .. "/mem/db"
      local a = mydb.open(root, { backend = "memory" })
      a:init("t")
      a:save("t", "u", "e", { x = 1 })
      assert.same({}, H.listing(dir))
      local b = mydb.open(root .. "/", { backend = "memory" })
      assert.same({ x = 1 }, b:load("t", "e"))
      b:put("t", "u", "c", "k", 2)
      assert.equal(2, a:get("t", "c", "k"))
      a:close()
      assert.equal(2, b:get("t", "c", "k"))
      b:close()
      local c = mydb.open(root, { backend = "memory" })
      assert.is_false(c:is_initialized("t"))
      c:close()
      assert.same({}, H.listing(dir))
    end)
  end)

  describe("gc", function()
    local S = H.use_store({ tenant = "t" })

    it("removes what no head or history reaches, keeps every version and ref reachable", function()
      local Doc = { use_refs = { "payload" } }
      mydb.register_class("GcDoc", Doc)
      finally(function() mydb.unregister_class("GcDoc") end)
      for i = 1, 5 do S.db:save("t", "u", "doc", { i = i }) end
      for i = 1, 200 do S.db:put("t", "u", "c", ("k%04d"):format(i), { i = i }) end
      S.db:create_index("t", "u", "c", "byi", "i")
      S.db:save("t", "u", "r", setmetatable({ payload = { 1, 2, 3 } }, Doc))
      S.db:init("other")
      S.db:save("other", "u", "kept", true)
      local objects_other = #H.object_names(S.root, "other")
      -- a dropped entry's versions stay: main's commits name them
      S.db:save("other", "u", "dropped", { big = ("x"):rep(500) })
      S.db:drop("other", "u", "dropped")
      objects_other = objects_other + 5 -- its version; two commits, two states
      -- what a deleted branch alone reached goes
      S.db:branch("other", "tmp")
      S.db:checkout("other", "tmp")
      S.db:save("other", "u", "gone", { big = ("y"):rep(500) })
      S.db:save("other", "u", "gone", { big = ("z"):rep(500) })
      S.db:save("other", "u", "gone_ref", setmetatable({ payload = { "only here" } }, Doc))
      S.db:checkout("other", "main")
      S.db:delete_branch("other", "tmp")
      if H.BACKEND == "loose" then age_files(S.root) end
      local objects_t = #H.object_names(S.root, "t")
      local on_tmp = #H.object_names(S.root, "other") - objects_other
      assert.equal(9, on_tmp) -- gone (2 versions), gone_ref; 3 commits, 3 states
      local r = S.db:gc()
      assert.equal(2, r.tenants)
      assert.equal(on_tmp, r.objects_removed)
      assert.equal(1, r.refs_removed)
      assert.is_true(r.bytes_freed > 0)
      assert.equal(objects_t, #H.object_names(S.root, "t"))
      assert.equal(objects_other, #H.object_names(S.root, "other"))
      assert.equal(1, #H.object_names(S.root, nil))
      -- everything reachable still reads, through this and a new handle
      for _, db in ipairs({ S.db, S.open_again() }) do
        assert.equal(5, #db:history("t", "doc"))
        assert.same({ i = 1 }, db:load("t", "doc", db:history("t", "doc")[5]))
        assert.equal(200, #db:get("t", "c"))
        local n = 0
        for _ in db:query_index("t", "c", "byi") do n = n + 1 end
        assert.equal(200, n)
        assert.same({ 1, 2, 3 }, db:load("t", "r").payload)
        assert.is_true(db:load("other", "kept"))
        assert.same({}, db:verify())
      end
      -- nothing more to remove
      local r2 = S.db:gc()
      assert.equal(0, r2.objects_removed)
      assert.equal(0, r2.refs_removed)
    end)

    it("of one tenant leaves the refs and the other tenants alone", function()
      S.db:init("u")
      for _, t in ipairs({ "t", "u" }) do
        S.db:save(t, "x", "base", 0)
        S.db:branch(t, "tmp")
        S.db:checkout(t, "tmp")
        S.db:save(t, "x", "e", 1) -- a version, a commit, its state
        S.db:checkout(t, "main")
        S.db:delete_branch(t, "tmp")
      end
      if H.BACKEND == "loose" then age_files(S.root) end
      local in_u = #H.object_names(S.root, "u")
      local r = S.db:gc("t")
      assert.equal(1, r.tenants)
      assert.equal(3, r.objects_removed)
      assert.equal(in_u, #H.object_names(S.root, "u"))
      H.assert_error_code(function() S.db:gc("nope") end, "not_initialized")
      H.assert_error_code(function() S.db:gc(".x") end, "invalid_argument")
    end)

    it("keeps what is written while it runs (objects newer than its start)", function()
      S.db:save("t", "u", "e", 1)
      S.db:drop("t", "u", "e")
      -- not aged: a loose gc treats it as possibly in flight; pack and
      -- memory know it was stored before the gc began
      local r = S.db:gc()
      if H.BACKEND == "loose" then assert.equal(0, r.objects_removed) end
      assert.same({}, S.db:verify())
    end)

    it("is safe while another process writes", function()
      H.needs_disk()
      for i = 1, 50 do S.db:save("t", "u", "old" .. i, { i = i }) end
      for i = 1, 50 do S.db:drop("t", "u", "old" .. i) end
      if H.BACKEND == "loose" then age_files(S.root) end
      local pid, cleanup = H.spawn_lua([[
        local db = require("mydb").open(..., { fsync = false })
        for i = 1, 100000 do
          db:save("t", "w", "doc", { i = i })
          db:put("t", "w", "c", ("k%06d"):format(i % 500), { i = i })
          -- re-save values that gc may be removing at this very moment
          db:save("t", "w", "again" .. (i % 50 + 1), { i = i % 50 + 1 })
        end
      ]], { args = { S.root } })
      for _ = 1, 5 do
        S.db:gc()
        H.sleep(0.05)
      end
      os.execute("kill -9 " .. pid .. " 2>/dev/null")
      H.sleep(0.1)
      cleanup()
      local db = S.open_again({ fsync = false, cache_bytes = 0 })
      assert.same({}, db:verify())
      local h = db:history("t", "doc", nil, 1000000)
      assert.is_true(#h > 0)
    end)
  end)

  describe("repack", function()
    local S = H.use_store({ tenant = "t" })

    it("compacts and keeps everything readable, in this and other handles", function()
      local other = S.open_again()
      for i = 1, 300 do S.db:save("t", "u", "doc", { i = i }) end
      assert.equal(300, other:load("t", "doc").i)
      local r = S.db:repack()
      assert.equal(1, r.tenants)
      if H.BACKEND == "pack" then
        assert.is_true(r.segments_written >= 1 and r.segments_removed >= 1)
      end
      for _, db in ipairs({ S.db, other, S.open_again() }) do
        assert.equal(300, db:load("t", "doc").i)
        assert.equal(300, #db:history("t", "doc", nil, 1000))
        assert.same({}, db:verify())
      end
      S.db:save("t", "u", "doc", { i = 301 })
      assert.equal(301, other:load("t", "doc").i)
    end)
  end)

  describe("copy", function()
    local dir
    before_each(function() dir = H.tmpdir() end)
    after_each(function() H.rmrf(dir) end)

    it("migrates a store to each backend with all tenants and history", function()
      local src = mydb.open(dir .. "/src", { fsync = false, backend = "loose" })
      src:init("a")
      src:init("b")
      for i = 1, 10 do src:save("a", "u", "doc", { i = i }) end
      src:put_many("a", "u", "c", { x = 1, y = 2 })
      src:save("b", "u", "e", "b's")
      local keep = {}
      for _, backend in ipairs({ "pack", "memory", "loose" }) do
        local dst = dir .. "/" .. backend
        if backend == "memory" then keep[#keep + 1] = mydb.open(dst, { backend = "memory" }) end
        local r = mydb.copy(dir .. "/src", dst, { backend = backend, fsync = false })
        assert.equal(2, r.tenants)
        assert.equal(3, r.entries)
        assert.equal(0, r.problems)
        local db = mydb.open(dst, { backend = backend })
        assert.equal(10, #db:history("a", "doc"))
        assert.same({ 1, 2 }, db:get("a", "c"))
        assert.equal("b's", db:load("b", "e"))
        assert.same({}, db:verify())
        db:close()
      end
      for _, k in ipairs(keep) do k:close() end
      src:close()
      H.assert_error_code(mydb.copy, "invalid_argument", dir .. "/src", dir .. "/pack", { backend = "pack" })
      H.assert_error_code(mydb.copy, "invalid_argument", dir .. "/src", dir .. "/n", { backend = "nope" })
      H.assert_error_code(mydb.copy, "invalid_argument", dir .. "/src", dir .. "/n", { bogus = 1 })
    end)
  end)
end)
