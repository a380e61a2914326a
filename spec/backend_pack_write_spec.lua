-- The pack backend's write path (issue 13, "fewer system calls"): one lock
-- and one append per commit. Objects written under a tenant's lock are
-- staged and appended with the commit record in one write; a lock released
-- without a commit drops them. Real processes, real files.
local H = require "spec.helper"
local core = require "mydb.core"

-- 1 if strace can trace a child here (ptrace may be forbidden in a
-- container), with the reason otherwise.
local function strace_works()
  if not os.execute("command -v strace >/dev/null 2>&1") then return false, "strace is not installed" end
  if not os.execute("strace -f -o /dev/null true >/dev/null 2>&1") then
    return false, "strace cannot trace here (ptrace not permitted)"
  end
  return true
end

local MEMORY = { brk = true, mmap = true, munmap = true, mremap = true, mprotect = true }

local function shq(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

describe("pack backend write path", function()
  local root
  before_each(function() root = H.tmpdir() end)
  after_each(function() H.rmrf(root) end)

  local function open(o)
    o = o or {}
    o.backend = "pack"
    if o.fsync == nil then o.fsync = false end
    return require("mydb").open(root, o)
  end

  describe("system calls", function()
    -- A child process: a collection of 2,000 records, then n puts of
    -- random keys (each put rewrites a leaf and the inner pieces: several
    -- objects). strace -f -c counts every call of the process.
    local function calls(fsync, n)
      local script, out = root .. "/puts.lua", root .. "/strace.out"
      H.write_file(script, ([[
        local root, fsync, n = ...
        local db = require("mydb").open(root .. "/db", { backend = "pack", fsync = fsync == "on" })
        db:init("t")
        local m = {}
        for i = 1, 2000 do m[("k%06d"):format(i * 7)] = { i = i, pad = ("p"):rep(60) } end
        db:put_many("t", "u", "c", m)
        for i = 1, tonumber(n) do
          db:put("t", "u", "c", ("k%06d"):format((i * 7919) % 14000), { i = i, pad = ("q"):rep(60) })
        end
        db:close()
      ]]))
      os.execute("rm -rf " .. shq(root .. "/db"))
      local cmd = ("cd %s && LUA_PATH=%s LUA_CPATH=%s strace -f -c -o %s %s %s %s %s %d >/dev/null 2>&1"):format(
        shq(root), shq(H.LUA_PATH), shq(H.LUA_CPATH), shq(out), H.LUA, shq(script), shq(root), fsync, n)
      assert(os.execute(cmd), "the traced child failed: " .. cmd)
      local s = H.read_file(out)
      -- every call but the allocator's (brk, mmap...: Lua's heap growing)
      local total, seen = 0, false
      for line in s:gmatch("[^\n]+") do
        local calls, name = line:match("^%s*[%d%.]+%s+[%d%.]+%s+%d*%s+(%d+)%s+%d*%s*([%w_]+)%s*$")
        if name and name ~= "total" then
          seen = true
          if not MEMORY[name] then total = total + tonumber(calls) end
        end
      end
      assert(seen, s)
      return total, s
    end

    -- Per put: the difference between 300 and 100 puts over 200 (what
    -- opening, loading and closing cost cancels out).
    local function per_put(fsync)
      local a = calls(fsync, 100)
      local b, report = calls(fsync, 300)
      return (b - a) / 200, report
    end

    -- (plus, every few dozen puts, the pack index's rewrite: a few calls
    -- more spread over them)
    it("are at most 8 per durable put (flock, stat, read, pwritev, unlock, fdatasync, read, write)", function()
      local ok, why = strace_works()
      if not ok then return pending(why) end
      local n, report = per_put("on")
      assert.is_true(n <= 8.25, ("%.2f system calls per durable put:\n%s"):format(n, report))
      assert.is_true(n >= 4, ("%.2f: the trace missed the puts?\n%s"):format(n, report))
    end)

    it("are at most 4 per put with fsync off (flock, stat, pwritev, unlock)", function()
      local ok, why = strace_works()
      if not ok then return pending(why) end
      local n, report = per_put("off")
      assert.is_true(n <= 4.25, ("%.2f system calls per put:\n%s"):format(n, report))
    end)
  end)

  describe("staging under the tenant lock", function()
    it("reads back and finds an object written under the lock before the commit", function()
      open():init("t")
      local store = core.open(root, { backend = "pack", fsync = true, cache_bytes = 0 })
      local other = core.open(root, { backend = "pack", fsync = true, cache_bytes = 0 })
      local lock = store:lock("t")
      local d = store:write("t", "staged bytes")
      assert.is_true(store:exists("t", d))
      assert.equal("staged bytes", store:read("t", d))
      assert.is_false(other:exists("t", d)) -- not in the log yet
      lock:commit({ { "e", d } }, true)
      assert.is_true(other:exists("t", d))
      assert.equal("staged bytes", other:read("t", d))
      assert.equal(d, other:head("t", "e"))
      store:close()
      other:close()
    end)

    it("drops what a lock released without a commit staged, from the store and the cache", function()
      open():init("t")
      for _, cache in ipairs({ 0, 1 << 20 }) do
        local store = core.open(root, { backend = "pack", fsync = true, cache_bytes = cache })
        local lock = store:lock("t")
        local d = store:write("t", "never committed " .. cache)
        assert.is_true(store:exists("t", d))
        lock:release()
        assert.is_false(store:exists("t", d))
        H.assert_error_code(function() store:read("t", d) end, "not_found")
        store:close()
        local again = core.open(root, { backend = "pack", cache_bytes = 0 })
        assert.is_false(again:exists("t", d))
        assert.same({}, again:check("t"))
        again:close()
      end
    end)

    it("refuses a second lock of the same tenant by the same thread instead of waiting forever", function()
      open():init("t")
      local store = core.open(root, { backend = "pack" })
      local lock = store:lock("t")
      H.assert_error_code(function() store:lock("t") end, "conflict")
      lock:release()
      local again = store:lock("t") -- free again
      again:release()
      store:close()
    end)

    it("writes large stages to the log early and commits them whole", function()
      local db = open({ fsync = true })
      db:init("t")
      local m = {}
      for i = 1, 3000 do m[("k%05d"):format(i)] = { i = i, pad = ("z"):rep(500) } end
      db:put_many("t", "u", "c", m) -- about 1.5 MB of pieces in one commit
      db:close()
      db = open()
      assert.equal(3000, #db:get("t", "c"))
      assert.equal(500, #db:get("t", "c", "k01234").pad)
      assert.same({}, db:verify())
      db:close()
    end)
  end)

  describe("a commit that fails", function()
    it("leaves nothing visible when its append fails, and the next put works", function()
      local db = open({ fsync = true })
      db:init("t")
      db:put("t", "u", "c", "a", { n = 1 })
      local head = db._store:head("t", "c")
      -- fail every call from the first: the put's one append fails
      local failed = 0
      for n = 1, 40 do
        core._fault(n, "EIO")
        local ok, err = pcall(db.put, db, "t", "u", "c", "b", { n = n })
        local _, fired = core._fault(0)
        if fired == 0 then
          assert.is_true(ok, tostring(err))
          break
        end
        if not ok and not err.committed then
          failed = failed + 1
          local fresh = open()
          assert.equal(head, fresh._store:head("t", "c"), "call " .. n .. " failed: not visible")
          assert.is_nil(fresh:get("t", "c", "b"))
          assert.same({}, fresh:verify())
          fresh:close()
        else
          -- committed (durable, or visible with its sync failed: then the
          -- segment takes no appends until a repack rewrites it)
          if not ok then db:repack("t") end
          db:delete("t", "u", "c", "b")
          head = db._store:head("t", "c")
        end
      end
      assert.is_true(failed > 0, "no call of a put failed invisibly")
      -- the handle is still usable: the next put commits
      db:put("t", "u", "c", "z", { n = 99 })
      db:close()
      db = open()
      assert.equal(99, db:get("t", "c", "z").n)
      assert.same({}, db:verify())
      db:close()
    end)

    it("releases the lock when the plan raises after objects were staged", function()
      local db = open({ fsync = true })
      db:init("t")
      db:put("t", "u", "c", "a", { n = 1 })
      local head = db._store:head("t", "c")
      local store = db._store
      local lock = store:lock("t")
      store:write("t", "an orphan piece")
      local ok = pcall(function()
        local l <close> = lock
        error("the plan failed")
      end)
      assert.is_false(ok)
      -- another process can take the lock and write at once
      local out, pok = H.run_lua([[
        local db = require("mydb").open(..., { backend = "pack", fsync = true })
        db:put("t", "w", "c", "b", { n = 2 })
        io.write("ok")
      ]], { args = { root } })
      assert.is_true(pok, out)
      assert.not_equal(head, store:head("t", "c"))
      assert.equal(2, db:get("t", "c", "b").n)
      db:put("t", "u", "c", "d", { n = 3 })
      assert.equal(3, #db:get("t", "c"))
      db:close()
    end)
  end)
end)
