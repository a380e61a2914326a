-- Crash safety (issue 5 §1): a writer killed with SIGKILL at random moments
-- while it saves and puts with fsync on never leaves a damaged store nor
-- loses a write whose call had returned.
--
-- The writer (spec/guarantee/crash_writer.lua) runs a known schedule of
-- operations (spec/guarantee/crash_ops.lua) and logs each one after its
-- call returns. The driver here starts it, waits until it is writing,
-- sleeps 0-20 ms and kills it with `kill -9`; then it rebuilds the expected
-- store from the log (plus the one operation that was in flight, which
-- either committed whole or left no trace) and checks the store against it
-- exactly. MYDB_CRASH_KILLS sets the number of kills (default 250),
-- MYDB_CRASH_SEED the random seed.
local H = require "spec.helper"
local ops = dofile(H.REPO .. "/spec/guarantee/crash_ops.lua")
local mydb = require "mydb"

local KILLS = tonumber(os.getenv("MYDB_CRASH_KILLS")) or 250
local PER_STORE = 50 -- kills on one store before starting a fresh one
local SEED = tonumber(os.getenv("MYDB_CRASH_SEED")) or os.time()
local WRITER = H.REPO .. "/spec/guarantee/crash_writer.lua"
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
local it_disk = it_if(H.BACKEND ~= "memory", "needs a store on disk, seen by other processes")
local it_files = it_if(H.BACKEND ~= "memory" and H.BACKEND ~= "postgres", "the store is not files under ROOT")

local function equal(a, b)
  local ok = H.deep_equal(a, b)
  return ok
end

-- Names of the files in dir (not . and ..).
local function files_in(dir)
  local out = H.read_cmd("ls -1A " .. H.q(dir) .. " 2>/dev/null")
  local list = {}
  for name in out:gmatch("[^\n]+") do list[#list + 1] = name end
  return list
end

local function read_or_empty(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end

local function gone(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return true end
  local stat = f:read("a") or ""
  f:close()
  return stat == "" or stat:match("^%d+ %b() Z") ~= nil -- a zombie counts as gone
end

-- The expected content of the store.
local function new_model()
  return { docs = {}, recs = {}, rec_versions = 0, saves = {} }
end

local function apply(model, op, digest)
  if op.kind == "save" then
    local d = model.docs[op.entry] or { count = 0 }
    model.docs[op.entry] = { digest = digest, value = op.value, count = d.count + 1 }
    model.saves[#model.saves + 1] = { entry = op.entry, digest = digest, value = op.value }
  elseif op.kind == "put" then
    model.recs[op.key] = op.value
    model.rec_versions = model.rec_versions + 1
  else
    for k, v in pairs(op.items) do model.recs[k] = v end
    model.rec_versions = model.rec_versions + 1
  end
end

local function record_or_nil(db, key)
  if not db:exists("t", ops.RECS) then return nil end
  return db:get("t", ops.RECS, key)
end

-- Did the in-flight operation commit? Applies it to the model if so;
-- fails if it is half there.
local function settle_in_flight(db, model, op, where)
  if op.kind == "save" then
    local cur = db:get_digest("t", op.entry)
    local want = model.docs[op.entry] and model.docs[op.entry].digest
    if cur ~= want then
      local meta = db:meta("t", op.entry, cur)
      assert.equal(want, meta.parent, where .. ": the unlogged save's parent")
      assert(equal(op.value, db:load("t", op.entry)), where .. ": the unlogged save's value")
      apply(model, op, cur)
      return true
    end
  elseif op.kind == "put" then
    if equal(record_or_nil(db, op.key), op.value) then
      apply(model, op)
      return true
    end
  else
    local there, n = 0, 0
    for k, v in pairs(op.items) do
      n = n + 1
      if equal(record_or_nil(db, k), v) then there = there + 1 end
    end
    assert(there == 0 or there == n, ("%s: put_many half applied (%d of %d records)"):format(where, there, n))
    if there == n then
      apply(model, op)
      return true
    end
  end
  return false
end

-- The store must hold exactly the model, and be sound.
local function check_store(db, model, where)
  local problems = db:verify()
  if #problems > 0 then
    local lines = {}
    for _, p in ipairs(problems) do lines[#lines + 1] = p.kind .. ": " .. tostring(p.message) end
    error(where .. ": db:verify() found problems:\n" .. table.concat(lines, "\n"))
  end
  for _, e in ipairs(ops.DOCS) do
    local d = model.docs[e]
    if not d then
      assert.is_false(db:exists("t", e), where .. ": " .. e .. " exists but no save of it returned")
    else
      assert.equal(d.digest, db:get_digest("t", e), where .. ": head of " .. e)
      assert(equal(d.value, db:load("t", e)), where .. ": value of " .. e)
      local h = db:history("t", e, nil, 1000000)
      assert.equal(d.count, #h, where .. ": history length of " .. e)
      assert.is_nil(db:meta("t", e, h[#h]).parent, where .. ": oldest version of " .. e)
    end
  end
  -- every save that returned is in its entry's history with its value
  local in_history = {}
  for _, e in ipairs(ops.DOCS) do
    if model.docs[e] then
      for _, d in ipairs(db:history("t", e, nil, 1000000)) do in_history[d] = e end
    end
  end
  for _, s in ipairs(model.saves) do
    assert.equal(s.entry, in_history[s.digest], where .. ": a returned save is missing from history")
    assert(equal(s.value, db:load("t", s.entry, s.digest)), where .. ": a returned save's value")
  end
  -- the records: exactly the model's
  if model.rec_versions == 0 then
    assert.is_false(db:exists("t", ops.RECS), where .. ": records but no put returned")
  else
    local n, want = 0, 0
    for _ in pairs(model.recs) do want = want + 1 end
    for k, v in db:records("t", ops.RECS) do
      n = n + 1
      assert(equal(model.recs[k], v), where .. ": record " .. k)
    end
    assert.equal(want, n, where .. ": record count")
    assert.equal(model.rec_versions, #db:history("t", ops.RECS, nil, 1000000), where .. ": versions of recs")
  end
end

describe("guarantee: crash safety", function()
  it_disk(("survives %d SIGKILLs of a writer (fsync on) with nothing lost"):format(KILLS), function()
    math.randomseed(SEED)
    local t0 = os.time()
    local dir = H.tmpdir()
    local stats = { kills = 0, logged = 0, in_flight_committed = 0, tmp_left = 0, stores = 0, ops = 0 }
    local root, model
    for kill = 1, KILLS do
      if (kill - 1) % PER_STORE == 0 then
        stats.stores = stats.stores + 1
        root = ("%s/db%d"):format(dir, stats.stores)
        model = new_model()
      end
      local where = ("kill %d (seed %d)"):format(kill, SEED)
      local logpath = ("%s/log%d"):format(dir, kill)
      local pid, cleanup = H.spawn_lua(("assert(loadfile(%q))(...)"):format(WRITER),
        { args = { root, logpath, tostring(kill) } })
      -- wait until its first write returned, then a random 0-20 ms
      local deadline = os.time() + 20
      while not read_or_empty(logpath):find("\n1 ", 1, true) do
        assert(os.time() < deadline and not gone(pid), where .. ": the writer did not start")
      end
      os.execute(("sleep %.3f"):format(math.random() * 0.020))
      os.execute("kill -9 " .. pid .. " 2>/dev/null")
      for _ = 1, 500 do
        if gone(pid) then break end
        H.sleep(0.01)
      end
      assert(gone(pid), where .. ": the writer survived kill -9")
      cleanup()
      stats.kills = stats.kills + 1

      -- what returned before the kill
      local log = read_or_empty(logpath)
      local last = 0
      for line in log:gmatch("([^\n]*)\n") do
        local i, result = line:match("^(%d+) (%S+)$")
        if i then
          i = tonumber(i)
          assert.equal(last + 1, i, where .. ": log out of sequence")
          local op = ops.op(kill, i)
          apply(model, op, op.kind == "save" and result or nil)
          last = i
        end
      end
      stats.logged = stats.logged + last

      -- temporary files the killed writer left: removed by the next open
      local left = #files_in(root .. "/.tmp")
      stats.tmp_left = stats.tmp_left + left
      local db = mydb.open(root, { fsync = false })
      assert.same({}, files_in(root .. "/.tmp"), where .. ": temporary files not cleaned up")
      if settle_in_flight(db, model, ops.op(kill, last + 1), where) then
        stats.in_flight_committed = stats.in_flight_committed + 1
      end
      check_store(db, model, where)
      db:close()
    end
    H.rmrf(dir)
    stats.ops = stats.logged + stats.in_flight_committed
    io.stderr:write(("\n[guarantee] crash: %d kills survived on %d stores, %d returned writes all present, "
      .. "%d in-flight writes committed whole, %d temporary files left and cleaned up, %d s (seed %d)\n")
      :format(stats.kills, stats.stores, stats.logged, stats.in_flight_committed, stats.tmp_left,
        os.time() - t0, SEED))
    assert.equal(KILLS, stats.kills)
    assert.is_true(stats.logged > KILLS, "the writers wrote almost nothing")
    -- (loose: what a writer writes under the tenant lock is appended to
    -- TENANT/packed, no temporary file: a kill mid-append leaves a torn
    -- tail that the next writer truncates, checked by check_store)
  end)

  describe("a temporary file left in ROOT/.tmp", function()
    local S = H.use_store({ tenant = "t" })

    it_files("is ignored by readers and removed by the next open when its writer is gone", function()
      S.db:save("t", "u", "e", { v = 1 })
      -- a pid that is gone: a process that ended
      local out = H.read_cmd("sh -c 'echo $$'")
      local dead = assert(tonumber(out:match("%d+")))
      assert(gone(dead))
      local name = ("%d-7-0123456789abcdef.tmp"):format(dead)
      H.write_file(S.root .. "/.tmp/" .. name, '{"__date__":"partial')
      -- a live writer's file (this process) stays
      local live = ("%d-8-0123456789abcdef.tmp"):format(tonumber(H.read_cmd("echo $PPID"):match("%d+")))
      H.write_file(S.root .. "/.tmp/" .. live, "in progress")
      assert.same({ v = 1 }, S.db:load("t", "e"))
      assert.same({}, S.db:verify())
      local db = S.open_again()
      assert.same({ live }, files_in(S.root .. "/.tmp"))
      assert.same({ v = 1 }, db:load("t", "e"))
    end)
  end)
end)
