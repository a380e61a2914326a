-- The postgres backend against a real server (issue 15): clear errors for
-- bad connection strings, reconnection after a server restart, load over
-- TCP from several processes, writers SIGKILLed mid-commit, a restart
-- during a load run. Runs under `make test-backends` (tools/pgcluster run
-- starts a throwaway cluster and sets MYDB_PG_DIR and libpq's PG*
-- variables); pending elsewhere. Each test uses a schema of its own.
local H = require "spec.helper"
local mydb = require "mydb"

local PG_DIR = os.getenv("MYDB_PG_DIR")
-- the heavy tests once, in the postgres run of the suite
local HERE = PG_DIR and H.BACKEND == "postgres"

local function need_server()
  if not HERE then
    pending("needs the throwaway PostgreSQL of make test-backends (MYDB_BACKEND=postgres)")
  end
end

local seq = 0
-- A TCP connection URI naming a fresh schema, on the test server or on
-- cluster c (own_cluster).
local function tcp_url(c)
  seq = seq + 1
  local schema = ("spec_%d_%d_%d"):format(os.time(), math.random(1, 1e9), seq)
  return ("postgresql://%s@127.0.0.1:%s/%s?schema=%s"):format(c and c.user or os.getenv("PGUSER"),
    c and c.port or os.getenv("PGPORT"), os.getenv("PGDATABASE") or "postgres", schema)
end

-- The restart tests restart a cluster of their own (tools/pgcluster start,
-- stopped in teardown): the suite's other spec files, which may run at
-- the same time on the shared server (make test-backends runs it in
-- shards), are not cut off by them.
local own
local function own_cluster()
  if not own then
    local out = H.read_cmd("tools/pgcluster start")
    own = { dir = out:match("MYDB_PG_DIR=(%S+)"), port = out:match("PGPORT=(%d+)"),
            user = out:match("PGUSER=(%S+)") }
    assert(own.dir and own.port and own.user, "tools/pgcluster start: " .. out)
  end
  return own
end

local function restart_server(c)
  assert(os.execute("tools/pgcluster restart " .. c.dir .. " >/dev/null 2>&1"))
end

-- The "ACK key" lines of a file written by a child: key -> true.
local function acks(path)
  local out, n = {}, 0
  local f = io.open(path, "rb")
  if not f then return out, 0 end
  for line in f:lines() do
    local k = line:match("^ACK (%S+)$")
    if k then out[k] = true; n = n + 1 end
  end
  f:close()
  return out, n
end

describe("postgres backend", function()
  teardown(function()
    if own then os.execute("tools/pgcluster stop " .. own.dir .. " >/dev/null 2>&1") end
  end)

  it("a bad connection string or an unreachable server is a clear mydb error", function()
    need_server()
    local ok, err = pcall(mydb.open, "postgresql://nobody@127.0.0.1:1/x?schema=s")
    assert.is_false(ok)
    assert.equal("io", err.code)
    assert.truthy(err.message:find("postgres: cannot connect", 1, true), err.message)
    ok, err = pcall(mydb.open, "postgresql://127.0.0.1/x?schema=1bad")
    assert.is_false(ok)
    assert.equal("invalid_argument", err.code)
    assert.truthy(err.message:find("invalid schema name '1bad'", 1, true), err.message)
    ok, err = pcall(mydb.open, "postgresql://127.0.0.1/x?nosuchoption=1")
    assert.is_false(ok)
    assert.equal("invalid_argument", err.code)
    assert.truthy(err.message:find("invalid connection string", 1, true), err.message)
  end)

  it("a store is a schema: two schemas on one server are two stores", function()
    need_server()
    local u1, u2 = tcp_url(), tcp_url()
    local a, b = mydb.open(u1), mydb.open(u2)
    assert.equal("postgres", a._store:backend())
    a:init("t")
    a:put("t", "u", "c", "k", { v = 1 })
    assert.is_false(b:is_initialized("t"))
    local a2 = mydb.open(u1)
    assert.same({ v = 1 }, a2:get("t", "c", "k"))
    a:close(); b:close(); a2:close()
  end)

  it("opts.conninfo names the server, the root the store's schema", function()
    need_server()
    local schema = ("spec_ci_%d_%d"):format(os.time(), math.random(1, 1e9))
    local ci = ("host=127.0.0.1 port=%s user=%s dbname=%s"):format(os.getenv("PGPORT"),
      os.getenv("PGUSER"), os.getenv("PGDATABASE") or "postgres")
    local a = mydb.open(schema, { conninfo = ci })
    assert.equal("postgres", a._store:backend())
    a:init("t")
    a:put("t", "u", "c", "k", { v = 7 })
    local b = mydb.open(("postgresql://%s@127.0.0.1:%s/%s?schema=%s"):format(os.getenv("PGUSER"),
      os.getenv("PGPORT"), os.getenv("PGDATABASE") or "postgres", schema))
    assert.same({ v = 7 }, b:get("t", "c", "k"))
    a:close(); b:close()
    local ok, err = pcall(mydb.open, "x", { conninfo = ci, backend = "pack" })
    assert.is_false(ok)
    assert.equal("invalid_argument", err.code)
  end)

  it("a put's objects go with its commit: one transaction, four statements a put", function()
    need_server()
    -- the server logs every statement of one database made for this test;
    -- each of mydb's statements names the store's schema
    local db_name = ("spec_trips_%d_%d"):format(os.time(), math.random(1, 1e9))
    assert(os.execute(("psql -qX -c 'CREATE DATABASE %s' -c \"ALTER DATABASE %s SET log_statement = 'all'\" >/dev/null")
      :format(db_name, db_name)))
    local schema = "trips"
    local db = mydb.open(("postgresql://%s@127.0.0.1:%s/%s?schema=%s"):format(os.getenv("PGUSER"),
      os.getenv("PGPORT"), db_name, schema))
    db:init("t")
    for i = 1, 5 do db:put("t", "u", "c", "warm" .. i, { v = i }) end
    local log = PG_DIR .. "/server.log"
    local function size() local f = assert(io.open(log, "rb")); local n = f:seek("end"); f:close(); return n end
    local from, puts = size(), 40
    for i = 1, puts do db:put("t", "u", "c", "k" .. i, { v = i, s = ("x"):rep(50) }) end
    db:close()
    os.execute("sleep 0.3") -- (the server writes its log itself)
    local f = assert(io.open(log, "rb"))
    f:seek("set", from)
    local statements, inserts = 0, 0
    for line in f:lines() do
      local sql = line:match("LOG:%s+statement: (.*)") or line:match("LOG:%s+execute [^:]*: (.*)")
      if sql and sql:find('"' .. schema .. '"', 1, true) then
        statements = statements + 1
        if sql:find('INSERT INTO "' .. schema .. '".objects', 1, true) then
          inserts = inserts + 1
          -- in the commit's transaction, before its heads
          assert.truthy(sql:match("^BEGIN; INSERT INTO"), sql:sub(1, 120))
          assert.truthy(sql:find("COMMIT", 1, true), sql:sub(1, 120))
        end
      end
    end
    f:close()
    assert.equal(puts, inserts) -- one objects statement per put
    assert.is_true(statements <= 4 * puts, ("%d statements for %d puts"):format(statements, puts))
  end)

  it("a store's remotes are kept in its schema: another process sees them, removal too", function()
    need_server()
    local url = tcp_url()
    local db = mydb.open(url)
    assert.is_true(db:add_remote("central", "postgres:elsewhere"))
    assert.is_true(db:add_remote("disk", "/srv/mydb"))
    local out = H.run_lua([[
      local db = require("mydb").open(...)
      local r = db:remotes()
      print(r.central, r.disk)
      db:remove_remote("disk")
    ]], { args = { url }, memory_ok = true })
    assert.equal("postgres:elsewhere\t/srv/mydb\n", out)
    assert.same({ central = "postgres:elsewhere" }, db:remotes())
    -- another schema on the same server has none
    assert.same({}, mydb.open(tcp_url()):remotes())
    db:close()
  end)

  it("objects written under the tenant lock wait for its commit: seen by their writer only, gone without a commit", function()
    need_server()
    local url = tcp_url()
    local db = mydb.open(url)
    db:init("t")
    local core = require "mydb.core"
    local store = core.open(url, { fsync = false, cache_bytes = 0 })
    local other = core.open(url, { fsync = false, cache_bytes = 0 })
    local lock = store:lock("t")
    local d = store:write("t", "staged bytes")
    assert.equal("staged bytes", store:read("t", d)) -- its writer reads it
    assert.is_false(other:exists("t", d))          -- nobody else sees it yet
    lock:release()                                 -- no commit: dropped
    assert.is_false(store:exists("t", d))
    assert.is_false(other:exists("t", d))
    store:close(); other:close(); db:close()
  end)

  local function psql(sql)
    assert(os.execute("psql -qX -v ON_ERROR_STOP=1 -c " .. H.q(sql) .. " >/dev/null"))
  end

  it("a server error other than a lost connection is a clean mydb error", function()
    need_server()
    local url = tcp_url()
    local schema = url:match("schema=([%w_]+)")
    local db = mydb.open(url, { cache_bytes = 0 })
    db:init("t")
    db:put("t", "u", "c", "k", { v = 1 })
    psql(("DROP TABLE %s.heads"):format(schema)) -- someone drops a table under the store
    local ok, err = pcall(db.get, db, "t", "c", "k")
    assert.is_false(ok)
    assert.equal("corrupt", err.code, tostring(err))
    assert.truthy(err.message:find("tables in schema " .. schema .. " are missing", 1, true), err.message)
    assert.truthy(err.message:find("[42P01]", 1, true), err.message)
    db:close()
  end)

  it("gc's mark waits for inserts in flight: what commits after it is kept", function()
    need_server()
    local url = tcp_url()
    local schema = url:match("schema=([%w_]+)")
    local db = mydb.open(url)
    db:init("t")
    local store = require("mydb.core").open(url, { fsync = false, cache_bytes = 0 })
    local a, b = ("a"):rep(64), ("b"):rep(64)
    -- a transaction inserts object a and commits 2 s later; meanwhile b is
    -- inserted and committed (a greater seq, committed first)
    local dir = H.tmpdir()
    local ins = "INSERT INTO %s.objects (tenant, digest, bytes) VALUES ('t', '%s', 'x')"
    os.execute(("psql -qX -c %s >/dev/null 2>&1 & echo $! > %s/pid"):format(
      H.q(("BEGIN; " .. ins .. "; SELECT pg_sleep(2); COMMIT"):format(schema, a)), dir))
    H.sleep(0.5)
    psql(ins:format(schema, b))
    local m1, m2 = store:gc_begin("t")
    -- a was committed when the mark was read, or it must survive the sweep
    local at_mark = store:exists("t", a)
    os.execute("while kill -0 $(cat " .. dir .. "/pid) 2>/dev/null; do sleep 0.1; done")
    assert.is_true(store:exists("t", a))
    local lock = store:lock("t")
    store:gc_sweep("t", m1, m2, {})
    lock:release()
    assert.is_true(at_mark or store:exists("t", a), "an object committed after gc's mark was swept")
    assert.is_false(store:exists("t", b)) -- stored before the mark, unreachable: swept
    store:close()
    db:close()
    H.rmrf(dir)
  end)

  it("after a server restart the call in flight raises io, the next works, nothing acknowledged is lost", function()
    need_server()
    local c = own_cluster()
    local db = mydb.open(tcp_url(c))
    db:init("t")
    db:put("t", "u", "c", "before", { v = 1 })
    restart_server(c)
    local ok, err = pcall(db.put, db, "t", "u", "c", "during", { v = 2 })
    assert.is_false(ok)
    assert.equal("io", err.code)
    assert.truthy(err.message:find("postgres", 1, true), err.message)
    -- the handle reconnects on the next call
    db:put("t", "u", "c", "after", { v = 3 })
    assert.same({ v = 1 }, db:get("t", "c", "before"))
    assert.same({ v = 3 }, db:get("t", "c", "after"))
    assert.same({}, db:verify())
    db:close()
  end)

  it("8 processes x 500 mixed operations over TCP on one store: exact counts, no error", function()
    need_server()
    local url = tcp_url()
    local db = mydb.open(url)
    db:init("t")
    local chunks = {}
    for w = 1, 8 do
      -- per worker: 500 operations - puts of its own keys, a delete of
      -- every fourth key it put, gets that must see its own writes
      chunks[w] = ([[
        local mydb = require "mydb"
        local db = mydb.open(%q, { cache_bytes = 0 })
        local live, puts, dels, gets = {}, 0, 0, 0
        for i = 1, 500 do
          local k = ("w%d-%%d"):format(i)
          if i %% 5 == 0 then
            local dk = ("w%d-%%d"):format(i - 4)
            db:delete("t", "w%d", "c", dk); live[dk] = nil; dels = dels + 1
          elseif i %% 5 == 3 then
            local gk = ("w%d-%%d"):format(i - 1)
            assert(db:get("t", "c", gk).i == i - 1, "own write not seen"); gets = gets + 1
          else
            db:put("t", "w%d", "c", k, { i = i }); live[k] = true; puts = puts + 1
          end
        end
        local n = 0
        for _ in pairs(live) do n = n + 1 end
        print(("DONE %%d %%d %%d %%d"):format(puts, dels, gets, n))
      ]]):format(url, w, w, w, w, w)
    end
    local results = H.run_lua_parallel(chunks)
    local live = 0
    for w, r in ipairs(results) do
      assert.is_true(r.ok, r.out)
      local puts, dels, gets, n = r.out:match("DONE (%d+) (%d+) (%d+) (%d+)")
      assert.equal("300 100 100 200", table.concat({ puts, dels, gets, n }, " "), "worker " .. w)
      live = live + tonumber(n)
    end
    local count = 0
    for k, v in db:records("t", "c") do
      count = count + 1
      local i = tonumber(k:match("^w%d+%-(%d+)$"))
      assert.equal(i, v.i)
      assert.is_true(i % 5 ~= 1, "deleted key " .. k .. " is back")
    end
    assert.equal(8 * 200, live)
    assert.equal(live, count)
    assert.same({}, db:verify())
    db:close()
  end)

  it("a writer SIGKILLed 100 times mid-commit: nothing acknowledged lost, verify clean", function()
    need_server()
    local url = tcp_url()
    local db = mydb.open(url)
    db:init("t")
    local dir = H.tmpdir()
    local ackfile = dir .. "/acks"
    math.randomseed(os.time())
    local function lines()
      local f = io.open(ackfile, "rb")
      if not f then return 0 end
      local n = select(2, f:read("a"):gsub("\n", ""))
      f:close()
      return n
    end
    for round = 1, 100 do
      local before = lines()
      local pid, cleanup = H.spawn_lua([[
        local url, ackfile, round = ...
        local db = require("mydb").open(url, { cache_bytes = 0 })
        local f = assert(io.open(ackfile, "ab"))
        for i = 1, 1000000 do
          local k = round .. "-" .. i
          db:put("t", "k", "c", k, { round = round, i = i, pad = ("x"):rep(200) })
          f:write("ACK ", k, "\n"); f:flush()
        end
      ]], { args = { url, ackfile, tostring(round) }, memory_ok = true })
      -- once it writes, a kill at a random moment of its commits
      local t0 = os.time()
      while lines() == before and os.time() - t0 < 10 do H.sleep(0.01) end
      H.sleep(math.random() * 0.03)
      os.execute("kill -9 " .. pid .. " 2>/dev/null")
      cleanup()
    end
    H.sleep(0.2)
    local acked, n = acks(ackfile)
    assert.is_true(n > 0, "no writer acknowledged anything")
    local recs = {}
    for k, v in db:records("t", "c") do recs[k] = v end
    for k in pairs(acked) do assert.is_not_nil(recs[k], "acknowledged " .. k .. " lost") end
    assert.same({}, db:verify())
    -- the store still takes writes (no lock left behind by a killed writer)
    db:put("t", "u", "c", "last", { ok = true })
    assert.same({ ok = true }, db:get("t", "c", "last"))
    db:close()
    H.rmrf(dir)
  end)

  it("a server restart during a load run: clients see io, continue, lose nothing acknowledged", function()
    need_server()
    local c = own_cluster()
    local url = tcp_url(c)
    local db = mydb.open(url)
    db:init("t")
    local dir = H.tmpdir()
    local pids = {}
    for w = 1, 3 do
      pids[w] = { H.spawn_lua([[
        local url, dir, w = ...
        local db = require("mydb").open(url, { cache_bytes = 0 })
        local f = assert(io.open(dir .. "/acks" .. w, "ab"))
        local i, ios = 0, 0
        while not io.open(dir .. "/stop") do
          i = i + 1
          local k = w .. "-" .. i
          local ok, err = pcall(db.put, db, "t", "w" .. w, "c", k, { i = i })
          if ok then
            f:write("ACK ", k, "\n")
          else
            assert(err.code == "io", tostring(err))
            ios = ios + 1
            f:write("IO ", err.message:gsub("\n", " "), "\n")
          end
          f:flush()
        end
        f:write("END ", ios, "\n"); f:close()
      ]], { args = { url, dir, tostring(w) }, memory_ok = true }) }
    end
    local function total()
      local s = 0
      for w = 1, 3 do local _, n = acks(dir .. "/acks" .. w); s = s + n end
      return s
    end
    local t0 = os.time()
    while total() < 30 and os.time() - t0 < 60 do H.sleep(0.1) end
    restart_server(c)
    local after = total()
    t0 = os.time()
    while total() < after + 30 and os.time() - t0 < 60 do H.sleep(0.1) end
    H.write_file(dir .. "/stop", "")
    -- wait for the three END lines
    t0 = os.time()
    local ended
    repeat
      ended = 0
      for w = 1, 3 do
        local f = io.open(dir .. "/acks" .. w, "rb")
        if f and f:read("a"):find("\nEND %d+\n") then ended = ended + 1 end
        if f then f:close() end
      end
      if ended < 3 then H.sleep(0.1) end
    until ended == 3 or os.time() - t0 > 60
    assert.equal(3, ended)
    -- this handle's connection went with the restart too: its first call
    -- raises io (or works, had it reconnected), the next works
    local ok, err = pcall(db.records, db, "t", "c")
    assert.is_true(ok or err.code == "io", tostring(err))
    local recs = {}
    for k, v in db:records("t", "c") do recs[k] = v end
    local ios = 0
    for w = 1, 3 do
      local text = H.read_file(dir .. "/acks" .. w)
      ios = ios + tonumber(text:match("\nEND (%d+)\n"))
      local acked = acks(dir .. "/acks" .. w)
      for k in pairs(acked) do assert.is_not_nil(recs[k], "acknowledged " .. k .. " lost") end
    end
    -- every client was running when the server went away: each saw io
    assert.is_true(ios >= 3, "clients saw " .. ios .. " io errors")
    assert.is_true(total() >= after + 30, "clients did not continue after the restart")
    assert.same({}, db:verify())
    db:close()
    for _, p in ipairs(pids) do p[2]() end
    H.rmrf(dir)
  end)
end)
