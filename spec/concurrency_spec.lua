-- Several processes writing one entry at once (issue 2 §2 "Locking", §6):
-- no lost update, an unbroken history. This file runs with fsync = true
-- (durability on, the default), the other specs with fsync = false.
local H = require "spec.helper"
local cjson = require "cjson"

-- Starts n fresh processes running chunk (with args root, go-file, index);
-- they wait for the go file so that they really run at the same time.
local function run_together(root, n, chunk)
  local go = root .. ".go"
  local prelude = [[
    local root, go, me = ...
    me = tonumber(me)
    local function ready() local f = io.open(go) if f then f:close() return true end end
    local t0 = os.time()
    while not ready() do
      if os.time() - t0 > 20 then error("never got the go signal") end
    end
  ]]
  local chunks = {}
  for i = 1, n do
    chunks[i] = ("local args = { %q, %q, %q }\n"):format(root, go, tostring(i))
        .. "local function body(...)\n" .. prelude .. chunk .. "\nend\nbody(table.unpack(args))\n"
  end
  -- the go file is created by one more tiny process started last
  chunks[n + 1] = ("local f = assert(io.open(%q, 'w')) f:close()"):format(go)
  local results = H.run_lua_parallel(chunks)
  os.remove(go)
  table.remove(results)
  return results
end

describe("mydb.Db", function()
  local S = H.use_store({ tenant = "t", fsync = true })

  describe("put from 4 processes at once", function()
    it("ends with exactly 1,000 records and an unbroken history of 1,000 versions", function()
      H.needs_disk()
      local results = run_together(S.root, 4, [[
        local db = require("mydb").open(root, { fsync = true })
        local changed = 0
        for i = 1, 250 do
          if db:put("t", "writer" .. me, "shared", ("p%d-%03d"):format(me, i), { by = me, i = i }) then
            changed = changed + 1
          end
        end
        db:close()
        io.write("done ", changed)
      ]])
      for i, r in ipairs(results) do
        assert(r.ok, ("writer %d failed: %s"):format(i, r.out))
        assert.equal("done 250", r.out)
      end

      local db = S.open_again()
      local all = db:load("t", "shared")
      local n = 0
      for k, v in pairs(all) do
        n = n + 1
        local p, i = k:match("^p(%d)%-(%d%d%d)$")
        assert.equal(tonumber(p), v.by, k)
        assert.equal(tonumber(i), v.i, k)
      end
      assert.equal(1000, n)
      assert.equal(1000, #db:get("t", "shared"))

      local h = db:history("t", "shared", nil, 5000)
      assert.equal(1000, #h)
      -- unbroken: each version's parent is the next older one, the oldest
      -- has none, and each version holds one record more than its parent
      local per_writer = {}
      for idx, d in ipairs(h) do
        local m = db:meta("t", "shared", d)
        assert.equal(h[idx + 1], m.parent, "parent of version " .. idx)
        per_writer[m.user_id] = (per_writer[m.user_id] or 0) + 1
        local snap = cjson.decode(H.read_object(S.root, "t", d))
        assert.equal(1001 - idx, snap.__collection__.count, "record count of version " .. idx)
      end
      assert.same({ writer1 = 250, writer2 = 250, writer3 = 250, writer4 = 250 }, per_writer)
    end)
  end)

  describe("save from 2 processes at once", function()
    it("keeps all 200 versions in one unbroken history", function()
      H.needs_disk()
      local results = run_together(S.root, 2, [[
        local db = require("mydb").open(root, { fsync = true })
        for i = 1, 100 do db:save("t", "saver" .. me, "doc", { by = me, i = i }) end
        db:close()
        io.write("done")
      ]])
      for i, r in ipairs(results) do
        assert(r.ok, ("saver %d failed: %s"):format(i, r.out))
        assert.equal("done", r.out)
      end

      local db = S.open_again()
      local h = db:history("t", "doc", nil, 1000)
      assert.equal(200, #h)
      local last_i = { {}, {} }
      local seen = {}
      for idx, d in ipairs(h) do
        assert.is_nil(seen[d], "digest repeated in history")
        seen[d] = true
        local m = db:meta("t", "doc", d)
        assert.equal(h[idx + 1], m.parent, "parent of version " .. idx)
        local v = db:load("t", "doc", d)
        assert.equal("saver" .. v.by, m.user_id)
        -- walking newest to oldest, each saver's counter goes down by one
        local prev = last_i[v.by].i
        if prev then assert.equal(prev - 1, v.i) else assert.equal(100, v.i) end
        last_i[v.by].i = v.i
      end
      assert.equal(1, last_i[1].i)
      assert.equal(1, last_i[2].i)
      assert.is_nil(db:meta("t", "doc", h[200]).parent)
    end)
  end)

  describe("the head journal compaction", function()
    it("keeps every process's view right while writers cross the compaction threshold", function()
      H.needs_disk()
      -- 2 writers x 600 saves = 1,200 commits for 2 live entries: the
      -- journal is compacted (more than 1024 commits, more than twice the
      -- live entries) while a reader keeps an open handle and polls.
      local results = run_together(S.root, 3, [[
        local db = require("mydb").open(root, { fsync = false })
        if me <= 2 then
          for i = 1, 600 do db:save("t", "w", "doc" .. me, { i = i }) end
          io.write("wrote")
        else
          local last = { 0, 0 }
          local deadline = os.time() + 60 -- a deadline, not a poll count: slow machines
          repeat
            for w = 1, 2 do
              if db:exists("t", "doc" .. w) then
                local i = db:load("t", "doc" .. w).i
                assert(i >= last[w], ("doc%d went back from %d to %d"):format(w, last[w], i))
                last[w] = i
              end
            end
          until (last[1] == 600 and last[2] == 600) or os.time() > deadline
          io.write("saw ", last[1], " ", last[2])
        end
        db:close()
      ]])
      for i = 1, 2 do
        assert(results[i].ok, ("writer %d failed: %s"):format(i, results[i].out))
      end
      assert(results[3].ok, "reader failed: " .. results[3].out)
      assert.equal("saw 600 600", results[3].out)
      local db = S.open_again()
      for w = 1, 2 do
        assert.same({ i = 600 }, db:load("t", "doc" .. w))
        assert.equal(600, #db:history("t", "doc" .. w))
      end
      -- the journal was compacted: far fewer lines than commits
      if H.BACKEND == "loose" then
        local lines = 0
        for _ in H.read_file(S.root .. "/t/head"):gmatch("\n") do lines = lines + 1 end
        assert.is_true(lines < 1200, ("head has %d lines: never compacted"):format(lines))
      end
    end)

    it("lets a handle opened before compaction read the state after it", function()
      H.needs_disk()
      local db1 = S.open_again()
      db1:save("t", "u", "other", { x = 1 })
      assert.same({ x = 1 }, db1:load("t", "other"))
      local out, ok = H.run_lua([[
        local db = require("mydb").open(..., { fsync = false })
        for i = 1, 1100 do db:save("t", "u", "doc", i) end
        db:save("t", "u", "other", { x = 2 })
        io.write("ok")
      ]], { args = { S.root } })
      assert.is_true(ok, out)
      assert.equal(1100, db1:load("t", "doc"))
      assert.same({ x = 2 }, db1:load("t", "other"))
      assert.equal(1000, #db1:history("t", "doc"))
      db1:save("t", "u", "doc", 1101)
      assert.equal(1101, S.open_again():load("t", "doc"))
      if H.BACKEND == "loose" then
        local lines = 0
        for _ in H.read_file(S.root .. "/t/head"):gmatch("\n") do lines = lines + 1 end
        assert.is_true(lines < 1000, ("head has %d lines: never compacted"):format(lines))
      end
    end)
  end)

  describe("a writer killed with SIGKILL", function()
    it("leaves a store whose heads, histories and objects are all whole", function()
      H.needs_disk()
      local seeds = {}
      for round = 1, 3 do
        -- (the writer says when its first commit is in: starting a process
        -- and connecting take their time on a loaded machine)
        local started = os.tmpname()
        os.remove(started)
        local pid, cleanup = H.spawn_lua([[
          local root, round, started = ...
          local db = require("mydb").open(root, { fsync = true })
          local i = 0
          while true do
            i = i + 1
            db:save("t", "w", "doc", { round = round, i = i, pad = string.rep("p", i % 500) })
            db:put("t", "w", "recs", ("r%s-%06d"):format(round, i), { i = i })
            if i == 1 then io.open(started, "w"):close() end
          end
        ]], { args = { S.root, tostring(round), started } })
        for _ = 1, 1500 do
          if H.file_exists(started) then break end
          H.sleep(0.02)
        end
        os.remove(started)
        H.sleep(0.25 + 0.1 * round)
        os.execute("kill -9 " .. pid .. " 2>/dev/null")
        -- wait until it is gone
        -- (a zombie counts as gone: nobody may reap it in a container)
        for _ = 1, 100 do
          local f = io.open("/proc/" .. pid .. "/stat")
          local stat = f and f:read("a") or ""
          if f then f:close() end
          if stat == "" or stat:match("^%d+ %b() Z") then break end
          H.sleep(0.02)
        end
        cleanup()
        seeds[round] = true

        local db = S.open_again({ fsync = false, cache_bytes = 0 })
        assert.is_true(db:exists("t", "doc"), "the writer wrote nothing in round " .. round)
        local doc = db:load("t", "doc")
        assert.equal(#doc.pad, doc.i % 500)
        local h = db:history("t", "doc", nil, 100000)
        assert.is_nil(db:meta("t", "doc", h[#h]).parent)
        local n = 0
        for _ in db:records("t", "recs") do n = n + 1 end
        assert.equal(#db:history("t", "recs", nil, 100000), n)
        -- a new writer goes on from there
        db:save("t", "check", "doc", { round = round, i = 0, pad = "" })
        assert.equal(h[1], db:meta("t", "doc").parent)
      end
      -- every object file is named by its hash
      for _, name in ipairs(H.object_names(S.root, "t")) do
        assert.equal(name, require("mydb.core").sha256(H.read_object(S.root, "t", name)))
      end
    end)
  end)

  describe("readers during writes", function()
    it("always see a complete version", function()
      H.needs_disk()
      local results = run_together(S.root, 3, [[
        local db = require("mydb").open(root, { fsync = true })
        if me == 1 then
          for i = 1, 150 do db:save("t", "w", "doc", { i = i, pad = string.rep("x", i * 10) }) end
          io.write("wrote")
        else
          local reads = 0
          for _ = 1, 300 do
            if db:exists("t", "doc") then
              local v = db:load("t", "doc")
              assert(#v.pad == v.i * 10, "torn value")
              local m = db:meta("t", "doc")
              assert(m.user_id == "w")
              reads = reads + 1
            end
          end
          io.write("read ", reads > 0 and "some" or "none")
        end
        db:close()
      ]])
      assert(results[1].ok, results[1].out)
      assert.equal("wrote", results[1].out)
      for i = 2, 3 do
        assert(results[i].ok, ("reader %d failed: %s"):format(i, results[i].out))
        assert.truthy(results[i].out:match("^read "), results[i].out)
      end
      assert.equal(150, #S.open_again():history("t", "doc"))
    end)
  end)
end)
