-- Security (issue 5 §6): tenants are isolated, no argument reaches outside
-- ROOT, mydb never writes through a symlink planted below ROOT, and files
-- are created with the process umask.
--
-- What mydb does with symlinks below ROOT: it never writes through one. Every
-- file it creates, renames or appends to is reached by opening each
-- directory below ROOT with O_NOFOLLOW (src/os/fsutil.c: objects, refs,
-- temporary files, the tenant lock that every writer takes first, so no
-- head journal is ever appended to or compacted through a symlink); such a
-- write fails with `io` and leaves nothing behind. Reads may follow a
-- symlink (the root itself may be one), but an object or ref is only ever
-- returned when its bytes hash to the digest asked for.
local H = require "spec.helper"
local mydb = require "mydb"
local core = require "mydb.core"

-- Every file and directory under dir, with its kind: {"./a/b" = "f"|"d"|"l"}.
local function tree(dir)
  local out = H.read_cmd("cd " .. H.q(dir) .. " 2>/dev/null && find . -mindepth 1 -printf '%y %p\\n'")
  local t = {}
  for kind, p in out:gmatch("(%a) ([^\n]+)") do t[p] = kind end
  return t
end

-- MYDB_BACKEND (spec/helper.lua) runs the suite on another backend: a test
-- that needs the loose layout's files, or a store on disk that other
-- processes see, is then reported pending and not run.
local function it_if(ok, why)
  return function(name, fn)
    it(name, function(...)
      if not ok then return pending(H.BACKEND .. " backend: " .. why) end
      return fn(...)
    end)
  end
end
local it_loose = it_if(H.BACKEND == "loose", "inspects or damages the loose layout's files")

local function count(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

describe("guarantee: security", function()
  local S = H.use_store()

  describe("tenant isolation", function()
    local a -- what tenant a wrote: digests
    before_each(function()
      local db = S.db
      db:init("a")
      db:init("b")
      a = {}
      a.e1 = db:save("a", "alice", "e", { secret = "a1" })
      a.e2 = db:save("a", "alice", "e", { secret = "a2" })
      db:put("a", "alice", "c", "k", { secret = "ak" })
      db:create_index("a", "u", "c", "by_secret", "secret")
      a.c = db:get_digest("a", "c")
      db:save("a", "alice", "only_a", { secret = "x" })
      -- b has entries of the same names, of its own
      db:save("b", "bob", "e", { mine = true })
      db:put("b", "bob", "c", "k", { mine = true })
      db:create_index("b", "u", "c", "by_secret", "secret")
    end)

    it("no read method of tenant b accepts tenant a's digests (not_found), even with a's objects cached", function()
      local db = S.db
      assert.same({ secret = "a2" }, db:load("a", "e")) -- warm the cache with a's objects
      assert.same({ secret = "ak" }, db:get("a", "c", "k"))
      local calls = {
        { "load", function() return db:load("b", "e", a.e1) end },
        { "load of a collection", function() return db:load("b", "c", a.c) end },
        { "meta", function() return db:meta("b", "e", a.e2) end },
        { "history", function() return db:history("b", "e", a.e2) end },
        { "get", function() return db:get("b", "c", "k", a.c) end },
        { "get all", function() return db:get("b", "c", nil, a.c) end },
        { "records", function() for _ in db:records("b", "c", a.c) do end end },
        { "raw_records", function() for _ in db:raw_records("b", "c", a.c) do end end },
        { "query", function() for _ in db:query("b", "c", { digest = a.c }) do end end },
        { "query_index", function() for _ in db:query_index("b", "c", "by_secret", { digest = a.c }) do end end },
        { "changes", function() return db:changes("b", a.e1) end },
      }
      for _, c in ipairs(calls) do
        local ok, err = pcall(c[2])
        assert.is_false(ok, c[1] .. " with another tenant's digest succeeded")
        assert.equal("not_found", type(err) == "table" and err.code or tostring(err), c[1])
      end
      -- the core's calls as well
      local store = db._store
      for _, d in ipairs({ a.e1, a.e2, a.c }) do
        assert.is_false(store:exists("b", d))
        H.assert_error_code(function() store:read("b", d) end, "not_found")
      end
    end)

    it("tenant b sees none of tenant a's entries or heads", function()
      local db = S.db
      assert.is_false(db:exists("b", "only_a"))
      assert.is_nil(db:get_digest("b", "only_a"))
      H.assert_error_code(function() db:load("b", "only_a") end, "not_found")
      assert.same({ "c", "e" }, db:entries("b"))
      assert.same({ mine = true }, db:load("b", "e"))
      assert.same({ mine = true }, db:get("b", "c", "k"))
      assert.equal(1, #db:history("b", "e"))
    end)

    it_loose("no write of tenant b changes anything of tenant a", function()
      local db = S.db
      local before = tree(S.root .. "/a")
      local head = H.read_file(S.root .. "/a/head")
      db:save("b", "bob", "e", { secret = "a2" })   -- a's content, in b
      db:put("b", "bob", "c", "k", { secret = "ak" })
      db:put_many("b", "bob", "only_a", { k = 1 })
      db:delete("b", "bob", "c", "k")
      db:drop("b", "bob", "e")
      db:batch("b", "bob", function(x) x:save("e", 1) end)
      assert.same(before, tree(S.root .. "/a"))
      assert.equal(head, H.read_file(S.root .. "/a/head"))
      local fresh = S.open_again()
      assert.same({ secret = "a2" }, fresh:load("a", "e"))
      assert.same({ secret = "ak" }, fresh:get("a", "c", "k"))
      assert.same({ secret = "x" }, fresh:load("a", "only_a"))
      assert.same({}, (fresh:verify()))
    end)
  end)

  describe("arguments", function()
    local HOSTILE_TENANTS = { "", ".", "..", "../x", "../../etc", "a/../../x", "/abs", "x/y", "x\\y",
      "x\0y", ".hidden", ".tmp", "refs", ("a"):rep(129) }
    local HOSTILE_DIGESTS = { "../../../../etc/passwd", ("a"):rep(63), ("a"):rep(65), ("A"):rep(64),
      ("a"):rep(63) .. "/", ("a"):rep(62) .. "..", ("a"):rep(63) .. "\0" }

    it("refuses every hostile tenant id with invalid_argument, creating nothing anywhere", function()
      local db = S.db
      db:init("t")
      local outside = tree(S.dir)
      for _, t in ipairs(HOSTILE_TENANTS) do
        local calls = {
          function() db:init(t) end,
          function() db:is_initialized(t) end,
          function() db:save(t, "u", "e", 1) end,
          function() db:put(t, "u", "c", "k", 1) end,
          function() db:put_many(t, "u", "c", { k = 1 }) end,
          function() db:load(t, "e") end,
          function() db:get(t, "c", "k") end,
          function() db:exists(t, "e") end,
          function() db:history(t, "e") end,
          function() db:meta(t, "e") end,
          function() db:entries(t) end,
          function() db:verify(t) end,
          function() db:delete(t, "u", "c", "k") end,
          function() db:drop(t, "u", "e") end,
          function() db:changes(t, 0) end,
        }
        for i, call in ipairs(calls) do
          local ok, err = pcall(call)
          assert(not ok, ("call %d with tenant %q succeeded"):format(i, t))
          assert.equal("invalid_argument", err.code, ("call %d with tenant %q: %s"):format(i, t, tostring(err)))
        end
      end
      assert.same(outside, tree(S.dir))
    end)

    it("refuses every hostile digest with invalid_argument", function()
      local db = S.db
      db:init("t")
      db:save("t", "u", "e", 1)
      db:put("t", "u", "c", "k", 1)
      for _, d in ipairs(HOSTILE_DIGESTS) do
        for i, call in ipairs({
          function() db:load("t", "e", d) end,
          function() db:meta("t", "e", d) end,
          function() db:history("t", "e", d) end,
          function() db:get("t", "c", "k", d) end,
          function() db:records("t", "c", d) end,
          function() db:query("t", "c", { digest = d }) end,
          function() db._store:read("t", d) end,
          function() db._store:exists(nil, d) end,
        }) do
          local ok, err = pcall(call)
          assert(not ok, ("call %d with digest %q succeeded"):format(i, d))
          assert.equal("invalid_argument", err.code, ("call %d with digest %q"):format(i, d))
        end
      end
    end)

    it_loose("keeps entry names, keys and user ids out of paths", function()
      local db = S.db
      db:init("t")
      local outside_before = tree(S.dir)
      local names = { "../../outside", "/etc/passwd", "a/b/c", "..", ".", "refs", ".tmp", "t", "é/ü",
        ("x"):rep(1024), "objects/../../..", "e\nnewline" }
      for _, n in ipairs(names) do
        db:save("t", "u", n, { name = n })
        db:put("t", "u", "c" .. n:sub(1, 1000), n, n)
      end
      for _, n in ipairs(names) do
        assert.same({ name = n }, db:load("t", n))
        assert.equal(n, db:get("t", "c" .. n:sub(1, 1000), n))
      end
      -- only the tenant's directory changed, and only objects/ and head
      assert.same(outside_before["./db/refs"], "d")
      local inside = tree(S.root)
      for p, kind in pairs(inside) do
        local ok = p == "./.tmp" or p == "./refs" or p == "./t" or p == "./t/lock" or p == "./t/head"
            or p == "./t/objects" or p:match("^%./t/objects/%x+$") or p:match("^%./t/objects/%x+/%x+$")
            or p == "./t/packed"
            or p:match("^%./%.mydb[%w_.-]*$") -- the store's own marker file, if the backend keeps one
        assert(ok, ("unexpected %s in ROOT: %s"):format(kind, p))
      end
      local outside_after = tree(S.dir)
      for p in pairs(outside_after) do
        assert(outside_before[p] or p:sub(1, 5) == "./db/", "created outside ROOT: " .. p)
      end
      for _, u in ipairs({ "../../u", "/etc", "a/b", ".." }) do db:save("t", u, "users", u) end
      assert.equal("..", db:meta("t", "users").user_id)
      -- names that are too long or hold a NUL are refused
      H.assert_error_code(function() db:save("t", "u", ("x"):rep(1025), 1) end, "invalid_argument")
      H.assert_error_code(function() db:save("t", "u", "a\0b", 1) end, "invalid_argument")
      H.assert_error_code(function() db:put("t", "u", "c", ("k"):rep(1025), 1) end, "invalid_argument")
    end)
  end)

  describe("symlinks planted below ROOT", function()
    local outside, store
    before_each(function()
      outside = S.dir .. "/outside"
      os.execute("mkdir -p " .. H.q(outside))
      S.db:init("t")
      store = core.open(S.root, { fsync = false })
    end)
    after_each(function() store:close() end)

    local function link(target, at)
      assert(os.execute(("ln -s %s %s"):format(H.q(target), H.q(at))))
    end

    it_loose("a fan-out directory symlinked outside: the write fails with io, nothing is written there", function()
      local bytes = "an object of tenant t"
      local d = core.sha256(bytes)
      link(outside, ("%s/t/objects/%s"):format(S.root, d:sub(1, 24)))
      H.assert_error_code(function() store:write("t", bytes) end, "io")
      assert.same({}, tree(outside))
      -- the same for the shared refs
      local rbytes = "a ref"
      local rd = core.sha256(rbytes)
      link(outside, ("%s/refs/%s"):format(S.root, rd:sub(1, 24)))
      H.assert_error_code(function() store:write(nil, rbytes) end, "io")
      assert.same({}, tree(outside))
    end)

    it_loose("a tenant directory symlinked outside: writes fail with io, nothing outside changes", function()
      -- a real tenant outside ROOT, reached through ROOT/v -> outside/v
      local other = mydb.open(outside, { fsync = false })
      other:init("v")
      other:save("v", "u", "e", { outside = true })
      other:close()
      link(outside .. "/v", S.root .. "/v")
      local before = tree(outside)
      local head = H.read_file(outside .. "/v/head")
      local db = S.open_again()
      H.assert_error_code(function() db:save("v", "u", "e", { through = "symlink" }) end, "io")
      H.assert_error_code(function() db:put("v", "u", "c", "k", 1) end, "io")
      H.assert_error_code(function() db:drop("v", "u", "e") end, "io")
      H.assert_error_code(function() store:write("v", "bytes") end, "io")
      assert.same(before, tree(outside))
      assert.equal(head, H.read_file(outside .. "/v/head"))
    end)

    it_loose("ROOT/refs symlinked outside: writing a ref fails with io", function()
      os.execute("rm -rf " .. H.q(S.root .. "/refs"))
      link(outside, S.root .. "/refs")
      H.assert_error_code(function() store:write(nil, "a ref") end, "io")
      assert.same({}, tree(outside))
    end)

    it_loose("ROOT/.tmp symlinked outside: writes fail with io, no temporary file lands there", function()
      os.execute("rm -rf " .. H.q(S.root .. "/.tmp"))
      link(outside, S.root .. "/.tmp")
      H.assert_error_code(function() store:write("t", "bytes") end, "io")
      -- (a save appends to TENANT/packed under the lock: no temporary file)
      local ok, err = pcall(function() S.open_again():save("t", "u", "e", 1) end)
      assert(ok or err.code == "io", tostring(err))
      assert.same({}, tree(outside))
    end)

    it_loose("TENANT/packed replaced by a symlink: writes fail with io, its target unchanged", function()
      S.db:save("t", "u", "e", 1)
      local bytes = H.read_file(S.root .. "/t/packed")
      H.write_file(outside .. "/packed", bytes)
      os.remove(S.root .. "/t/packed")
      link(outside .. "/packed", S.root .. "/t/packed")
      H.assert_error_code(function() S.open_again():save("t", "u", "e", 2) end, "io")
      assert.equal(bytes, H.read_file(outside .. "/packed"))
    end)

    it_loose("the head journal or the lock file replaced by a symlink: writes fail with io", function()
      S.db:save("t", "u", "e", 1)
      H.write_file(outside .. "/head", H.read_file(S.root .. "/t/head"))
      H.write_file(outside .. "/lock", "")
      os.remove(S.root .. "/t/lock")
      link(outside .. "/lock", S.root .. "/t/lock")
      H.assert_error_code(function() S.open_again():save("t", "u", "e", 2) end, "io")
      os.remove(S.root .. "/t/lock")
      H.write_file(S.root .. "/t/lock", "")
      local head = H.read_file(outside .. "/head")
      os.remove(S.root .. "/t/head")
      link(outside .. "/head", S.root .. "/t/head")
      local ok = pcall(function() S.open_again():save("t", "u", "e", 3) end)
      assert.is_false(ok)
      assert.equal(head, H.read_file(outside .. "/head"))
      assert.equal("", H.read_file(outside .. "/lock"))
    end)

    it_loose("a sound store with no symlink writes as usual", function()
      local d = store:write("t", "fine")
      assert.equal("fine", store:read("t", d))
      assert.equal(0, count(tree(outside)))
    end)
  end)

  describe("file modes", function()
    -- Runs a fresh process that builds a store under a umask; returns
    -- {path = octal mode} of every file and directory in it.
    local function modes_under(umask)
      local dir = H.tmpdir()
      local code = [[
        local mydb = require "mydb"
        local db = mydb.open(... .. "/db")
        db:init("t")
        db:save("t", "u", "e", { x = 1 })
        for i = 1, 1100 do db:save("t", "u", "e", i) end -- compaction too
        db:put("t", "u", "c", "k", { x = 2 })
        local Doc = { use_refs = { "blob" } }
        mydb.register_class("ModeDoc", Doc)
        db:save("t", "u", "r", setmetatable({ blob = { 1, 2, 3 } }, Doc))
        db:close()
      ]]
      H.write_file(dir .. "/chunk.lua", code)
      local cmd = ("umask %s && cd %s && LUA_PATH=%s LUA_CPATH=%s %s chunk.lua %s 2>&1"):format(umask, H.q(dir),
        H.q(H.LUA_PATH), H.q(H.LUA_CPATH), H.LUA, H.q(dir))
      local out, ok = H.read_cmd(cmd)
      assert(ok, out)
      local listing = H.read_cmd("cd " .. H.q(dir .. "/db") .. " && find . -mindepth 1 -printf '%y %m %p\\n'")
      H.rmrf(dir)
      local modes = {}
      for kind, mode, p in listing:gmatch("(%a) (%d+) ([^\n]+)") do modes[p] = kind .. mode end
      return modes
    end

    for _, case in ipairs({ { "077", "f600", "d700" }, { "022", "f644", "d755" }, { "027", "f640", "d750" } }) do
      it(("creates files %s and directories %s under umask %s"):format(case[2]:sub(2), case[3]:sub(2), case[1]),
        function()
          local modes = modes_under(case[1])
          assert.is_true(count(modes) > 10)
          for p, m in pairs(modes) do
            local want = m:sub(1, 1) == "f" and case[2] or case[3]
            local object = p:match("^%./[^/]+/objects/%x+/%x+$") or p:match("^%./refs/%x+/%x+$")
            if m:sub(1, 1) == "f" and object then
              -- durable loose objects and refs are read-only (issue 11 item 6)
              want = want:gsub("%d", function(d) return tostring(tonumber(d) & 5) end)
            end
            assert.equal(want, m, p)
          end
        end)
    end
  end)
end)
