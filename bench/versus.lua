--- mydb versus SQLite (issue 13): the same workloads, the same harness, one
-- run, engines interleaved (A, B, C, ... then again, `--rounds` times; the
-- table shows medians).
--
--   lua5.4 bench/versus.lua [--quick] [--rounds R] [--n N] [--small N]
--       [--prefill P] [--cap S] [--updates U] [--strace-puts K]
--       [--engines pack,loose,memory,sqlite,vsqlite] [--dir D] [--writes-only]
--       [--scans-only] [--large L] [--large-engines E] [--cpu C]
--
-- --cpu C: every child runs pinned to CPU C (taskset; default: the first
-- CPU this process may run on; --cpu none: unpinned). On a shared virtual
-- machine the CPUs are not alike: on the 2-core machine of the README's
-- figures a child on CPU 1 ran 40% slower than the same child on CPU 0,
-- SQLite's as much as mydb's, so unpinned children made each ratio depend
-- on where the two engines' children happened to land.
--
-- --scans-only: only the range and scan rows (no writes, no point gets, no
-- history, no system call count). --large L: a full scan of L records
-- (default 1,000,000; --quick 100,000; 0: none), on the engines of
-- --large-engines (default pack,memory,sqlite of --engines: loose keeps a
-- file per piece and vsqlite scans the same table as sqlite), with the
-- growth of the process's resident memory over those scans.
--
-- Engines:
--   pack, loose, memory  mydb with that backend (fsync on/off per row)
--   sqlite   SQLite through LuaSQL (Debian's lua-sql-sqlite3), WAL, one
--            table k -> v, values as cjson text; synchronous=FULL / OFF
--   vsqlite  "versioned SQLite": a history table plus a current table, both
--            written in one transaction per put (what a user would write
--            instead of mydb)
-- Every cell runs in a fresh child process on a fresh store under --dir.
local core = require "mydb.core"

local now = core.monotonic
local here = arg[0]:match("^(.*)/") or "."
local common = dofile(here .. "/common.lua")
local sh_quote, parse_args, rec_100 = common.sh_quote, common.parse_args, common.rec_100
local wchar = common.wchar

local T, U, C = "t", "u", "coll"

-- ------------------------------------------------------------- utilities

local median = common.median

local rng = common.rng

local function key(i) return ("k%08d"):format(i) end

--- Bytes of the files under dir (apparent sizes).
local function dir_bytes(dir)
  local p = io.popen("du -sb " .. sh_quote(dir) .. " 2>/dev/null")
  local n = tonumber((p:read("a") or ""):match("^(%d+)")) or 0
  p:close()
  return n
end

--- Zeros past the last record of each pack segment under dir: a durable
-- writer's zone (doc/FORMAT.md "Zones"), written ahead and reused by the
-- next appends, neither data nor history. (Walks the record headers.)
local function zone_bytes_on_disk(dir)
  local p = io.popen("find " .. sh_quote(dir) .. " -name '*.seg' -type f 2>/dev/null")
  local total = 0
  for path in p:lines() do
    local f = io.open(path, "rb")
    if f then
      local size, off = f:seek("end"), 0
      while off + 24 <= size do
        f:seek("set", off)
        local h = f:read(24)
        if not h or h:sub(1, 4) ~= "MDBR" then break end
        off = off + 24 + string.unpack("<I8", h, 9)
      end
      f:close()
      if off < size then total = total + (size - off) end
    end
  end
  p:close()
  return total
end

--- The store's bytes: its files' apparent sizes, pack's zones left out.
local function store_bytes(dir)
  return dir_bytes(dir) - zone_bytes_on_disk(dir)
end

local function sqlite_available()
  return (pcall(require, "luasql.sqlite3"))
end

-- ------------------------------------------------------------- engines
-- Each engine: open(dir, durable) -> h with
--   h:put(k, rec), h:put100(items: list of {k, rec}), h:bulk(items),
--   h:get(k) -> rec, h:range(from, n) -> count, h:prefix(p) -> count,
--   h:scan() -> count,
--   h:checkpoint(), h:close()

local engines = {}

local function mydb_engine(backend)
  return function(dir, durable)
    local mydb = require "mydb"
    local db = mydb.open(dir, { fsync = durable, backend = backend })
    db:init(T)
    local h = {}
    function h.hashed() return require("mydb.core").hashed_bytes() end
    function h.zones() return require("mydb.core").zone_bytes() end
    function h.put(_, k, rec) db:put(T, U, C, k, rec) end
    function h.put100(_, items)
      local m = {}
      for _, it in ipairs(items) do m[it[1]] = it[2] end
      db:put_many(T, U, C, m)
    end
    h.bulk = h.put100
    function h.get(_, k) return db:get(T, C, k) end
    function h.range(_, from, n)
      local c = 0
      for _, rec in db:query(T, C, { from = from, limit = n }) do
        if rec then c = c + 1 end
      end
      return c
    end
    function h.prefix(_, p)
      local c = 0
      for _, rec in db:query(T, C, { prefix = p }) do
        if rec then c = c + 1 end
      end
      return c
    end
    function h.scan()
      local c = 0
      for _, rec in db:records(T, C) do if rec then c = c + 1 end end
      return c
    end
    function h.checkpoint() end
    function h.close() db:close() end
    return h
  end
end
engines.pack = mydb_engine("pack")
engines.loose = mydb_engine("loose")
engines.memory = mydb_engine("memory")

local function sqlite_engine(versioned)
  return function(dir, durable)
    local cjson = require "cjson"
    local driver = require "luasql.sqlite3"
    local env = driver.sqlite3()
    local con = assert(env:connect(dir .. "/db.sqlite"))
    local function exec(sql)
      local r, err = con:execute(sql)
      if not r then error(err .. " in " .. sql) end
      return r
    end
    local function rows(sql) -- the first column of each row, via a cursor
      local cur = exec(sql)
      return function()
        local a, b = cur:fetch()
        if a == nil then cur:close() end
        return a, b
      end
    end
    local function first(sql) -- the first row's columns; the cursor closed
      local cur = exec(sql)
      local a, b = cur:fetch()
      cur:close()
      return a, b
    end
    local mode = first("PRAGMA journal_mode=WAL")
    assert(mode == "wal", "journal_mode " .. tostring(mode))
    exec("PRAGMA synchronous=" .. (durable and "FULL" or "OFF"))
    exec("CREATE TABLE IF NOT EXISTS cur (k TEXT PRIMARY KEY, v TEXT NOT NULL) WITHOUT ROWID")
    if versioned then
      exec("CREATE TABLE IF NOT EXISTS hist (id INTEGER PRIMARY KEY, k TEXT NOT NULL, " ..
           "v TEXT NOT NULL, user TEXT NOT NULL, at REAL NOT NULL)")
    end
    local function q(s) return "'" .. con:escape(s) .. "'" end
    local function write(k, rec)
      local ks, vs = q(k), q(cjson.encode(rec))
      if versioned then
        exec(("INSERT INTO hist (k, v, user, at) VALUES (%s, %s, 'u', %.6f)"):format(ks, vs, os.time()))
      end
      exec(("INSERT OR REPLACE INTO cur (k, v) VALUES (%s, %s)"):format(ks, vs))
    end
    local h = {}
    function h.put(_, k, rec)
      exec("BEGIN"); write(k, rec); exec("COMMIT")
    end
    function h.put100(_, items)
      exec("BEGIN")
      for _, it in ipairs(items) do write(it[1], it[2]) end
      exec("COMMIT")
    end
    h.bulk = h.put100
    function h.get(_, k)
      local v = first("SELECT v FROM cur WHERE k = " .. q(k))
      local rec = v and cjson.decode(v)
      return rec
    end
    function h.range(_, from, n)
      local c = 0
      for _, v in rows(("SELECT k, v FROM cur WHERE k >= %s ORDER BY k LIMIT %d"):format(q(from), n)) do
        if cjson.decode(v) then c = c + 1 end
      end
      return c
    end
    -- (the keys' range: SQLite's index serves it; LIKE, case-insensitive
    -- by default, would not use it)
    function h.prefix(_, p)
      local c = 0
      local last = p:sub(-1)
      local upto = p:sub(1, -2) .. string.char(last:byte() + 1)
      for _, v in rows(("SELECT k, v FROM cur WHERE k >= %s AND k < %s ORDER BY k"):format(q(p), q(upto))) do
        if cjson.decode(v) then c = c + 1 end
      end
      return c
    end
    function h.scan()
      local c = 0
      for _, v in rows("SELECT k, v FROM cur ORDER BY k") do
        if cjson.decode(v) then c = c + 1 end
      end
      return c
    end
    function h.checkpoint() first("PRAGMA wal_checkpoint(TRUNCATE)") end
    function h.close() con:close(); env:close() end
    return h
  end
end
engines.sqlite = sqlite_engine(false)
engines.vsqlite = sqlite_engine(true)

-- ------------------------------------------------------------- workloads
-- Run in a child: print "RESULT name=value ...".

local function items_for(keys, from, to, seed)
  local t = {}
  for i = from, to do t[#t + 1] = { keys[i], rec_100(seed + i) } end
  return t
end

--- Distinct random keys, deterministic.
local function random_keys(n, seed)
  local r, seen, keys = rng(seed), {}, {}
  while #keys < n do
    local k = key(r(100000000))
    if not seen[k] then seen[k] = true; keys[#keys + 1] = k end
  end
  return keys
end

local function bulk_load(h, keys)
  -- One call (one put_many, one transaction), as a user would load them, up
  -- to 100,000 records; larger sets in chunks of 10,000 to bound memory.
  local chunk = 10000
  local items = items_for(keys, 1, #keys, 0)
  if #items <= chunk * 10 then return h:bulk(items) end
  for i = 1, #items, chunk do
    h:bulk(table.move(items, i, math.min(i + chunk - 1, #items), 1, {}))
  end
end

--- A full collection, then two steps: Lua 5.4.4 (Debian 12's) does not
-- set the collector's next target after a full collection in generational
-- mode, the standalone interpreter's mode (a bug fixed in 5.4.5); the
-- target stays where it was, at the heap's peak during the load, and the
-- first reads after it ran with no collection at all until the heap grew
-- back to that peak (1,000,000-record scan: 750,000 dead strings in Lua's
-- string table, 300k records/s against 520k). A step sets the target; after
-- a load the collector is in its "bad collection" state, where a step is a
-- full mark that may stay in that state if the live set grew since the
-- last one: the second step finds it unchanged (mydb-lua's collectgarbage
-- does the same).
local function full_collection()
  collectgarbage()
  collectgarbage("step")
  collectgarbage("step")
end

local workloads = {}

--- Writes: prefill, then timed single puts of new random keys, then timed
-- batches of 100 new keys.
function workloads.write(h, a, dir)
  local keys = random_keys(a.prefill + 200000, 11)
  if a.prefill > 0 then bulk_load(h, table.move(keys, 1, a.prefill, 1, {})) end
  local r = {}
  local i = a.prefill
  local h0 = h.hashed and h.hashed()
  local z0 = h.zones and h.zones() or 0
  local w0, t0, deadline = wchar(), now(), now() + a.cap
  local n = 0
  repeat
    i = i + 1; n = n + 1
    h:put(keys[i], rec_100(i))
  until now() > deadline or n >= 100000
  r.put = n / (now() - t0)
  -- (a pack zone's zeros are written ahead of the records: not a put's)
  local zeros = (h.zones and h.zones() or 0) - z0
  r.put_wr = (wchar() - w0 - zeros) / n
  r.put_zone = zeros / n
  if h0 then r.put_hash = (h.hashed() - h0) / n end
  local b = 0
  w0, t0, deadline = wchar(), now(), now() + a.cap
  repeat
    h:put100(items_for(keys, i + 1, i + 100, 0))
    i = i + 100; b = b + 1
  until now() > deadline or i + 100 > #keys
  r.batch = b * 100 / (now() - t0)
  r.batch_wr = (wchar() - w0) / (b * 100)
  return r
end

--- Reads on an n-record collection: bulk load (timed, and the store size
-- after a checkpoint), point gets, ranges of 100, full scans; then the
-- history kept per update of one record (store growth).
function workloads.read(h, a, dir)
  local keys = random_keys(a.n, 22)
  local r = {}
  local t0 = now()
  bulk_load(h, keys)
  r.bulk = a.n / (now() - t0)
  h:checkpoint()
  -- The load's garbage is collected before the reads are timed (as
  -- scan_large does), every engine alike: otherwise the first read rows pay
  -- for collecting it, and how much depends on where the collector's cycle
  -- stood when the load returned (mydb's reads after a put_many that made
  -- less garbage measured 7-20% lower without this, equal with it).
  full_collection()
  if a.engine ~= "memory" then r.size = store_bytes(dir) / a.n end
  local rg = rng(5)
  assert(h:get(keys[1]).id == 1, "get check")
  local n = 0
  local deadline = now() + a.cap
  t0 = now()
  repeat
    if a.scans then break end
    for _ = 1, 16 do
      local rec = h:get(keys[rg(a.n) + 1])
      if rec == nil then error("missing record") end
    end
    n = n + 16
  until now() > deadline
  if not a.scans then r.get = n / (now() - t0) end
  table.sort(keys)
  n = 0
  deadline = now() + a.cap
  t0 = now()
  repeat
    local c = h:range(keys[rg(a.n - 100) + 1], 100)
    assert(c == 100, "range count " .. c)
    n = n + 1
  until now() > deadline
  r.range = n / (now() - t0)
  -- prefixes of 4 characters ("k" and 3 digits of 8: ~n/1000 of n random
  -- keys each), with the count each must give, found before the timing
  local prefixes, want = {}, {}
  for i = 1, 64 do
    local p = keys[rg(a.n) + 1]:sub(1, 4)
    local lo, hi = 1, #keys + 1 -- the first key >= p
    while lo < hi do
      local mid = (lo + hi) // 2
      if keys[mid] < p then lo = mid + 1 else hi = mid end
    end
    local c = 0
    while keys[lo + c] and keys[lo + c]:sub(1, 4) == p do c = c + 1 end
    prefixes[i], want[i] = p, c
  end
  n = 0
  deadline = now() + a.cap
  t0 = now()
  repeat
    local i = n % #prefixes + 1
    local c = h:prefix(prefixes[i])
    assert(c == want[i], "prefix count " .. c .. " for " .. prefixes[i] .. ", want " .. want[i])
    n = n + 1
  until now() > deadline
  r.prefix = n / (now() - t0)
  n = 0
  deadline = now() + a.cap
  t0 = now()
  repeat
    assert(h:scan() == a.n, "scan count")
    n = n + 1
  until now() > deadline
  r.scan = n * a.n / (now() - t0)
  if a.updates > 0 and a.engine ~= "memory" and not a.scans then
    h:checkpoint()
    local s0 = store_bytes(dir)
    local u = 0
    deadline = now() + a.cap * 2
    repeat
      u = u + 1
      local rec = rec_100(u)
      rec.note = rec.note:sub(1, -9) .. ("%08d"):format(u) -- a real change each time
      h:put(keys[rg(a.n) + 1], rec)
    until u >= a.updates or now() > deadline
    h:checkpoint()
    r.hist = (store_bytes(dir) - s0) / u
  end
  return r
end

--- A small collection's scan, to see whether scans are flat.
function workloads.scan_small(h, a, dir)
  local keys = random_keys(a.small, 33)
  bulk_load(h, keys)
  local n, deadline, t0 = 0, now() + a.cap, now()
  repeat
    assert(h:scan() == a.small)
    n = n + 1
  until now() > deadline
  return { scan_small = n * a.small / (now() - t0) }
end

--- Resident memory of this process, bytes (/proc/self/status VmRSS).
local function rss()
  local f = io.open("/proc/self/status")
  if not f then return 0 end
  local s = f:read("a")
  f:close()
  return (tonumber(s:match("VmRSS:%s*(%d+)")) or 0) * 1024
end

--- A large collection's scan (flat to 1,000,000 records?), loaded in
-- chunks of 200,000 (one put_many or transaction each: each a bulk merge
-- on mydb), and the resident memory the scans added.
function workloads.scan_large(h, a, dir)
  local keys = random_keys(a.large, 55)
  local chunk = 200000
  for i = 1, #keys, chunk do
    h:bulk(items_for(keys, i, math.min(i + chunk - 1, #keys), 0))
    collectgarbage()
    collectgarbage("step") -- (full_collection says why)
  end
  keys = nil
  full_collection()
  local m0 = rss()
  local n, deadline, t0 = 0, now() + a.cap, now()
  repeat
    assert(h:scan() == a.large)
    n = n + 1
  until now() > deadline
  local r = { scan_large = n * a.large / (now() - t0) }
  r.scan_mem = math.max(0, rss() - m0) -- (the RSS may shrink: the engine freed more than the scans took)
  return r
end

--- K durable puts after a prefill (for strace -c: run with K and 2K).
function workloads.syscalls(h, a, dir)
  local keys = random_keys(a.prefill + a.k, 44)
  if a.prefill > 0 then bulk_load(h, table.move(keys, 1, a.prefill, 1, {})) end
  for i = a.prefill + 1, a.prefill + a.k do h:put(keys[i], rec_100(i)) end
  return {}
end

local function child(a)
  local dir = a.dir
  os.execute("rm -rf " .. sh_quote(dir) .. " && mkdir -p " .. sh_quote(dir))
  local h = engines[a.engine](dir, a.durable == "on")
  local r = workloads[a.w](h, a, dir)
  h:close()
  os.execute("rm -rf " .. sh_quote(dir))
  local out = {}
  for k, v in pairs(r) do out[#out + 1] = k .. "=" .. tostring(v) end
  io.write("RESULT ", table.concat(out, " "), "\n")
end

-- ------------------------------------------------------------- driver

-- The prefix that pins a child to one CPU ("" when unpinned): set by main.
local pin = ""

local function child_cmd(p)
  local cmd = { pin .. "lua5.4", sh_quote(arg[0]), "--child", "1" }
  for k, v in pairs(p) do cmd[#cmd + 1] = "--" .. k .. " " .. sh_quote(tostring(v)) end
  return table.concat(cmd, " ")
end

local function run_child(p)
  local pr = io.popen(child_cmd(p) .. " 2>&1")
  local out = pr:read("a")
  local ok = pr:close()
  local line = out:match("RESULT ([^\n]*)")
  if not ok or not line then error("benchmark child failed: " .. child_cmd(p) .. "\n" .. out) end
  local r = {}
  for k, v in line:gmatch("([%w_]+)=(%S+)") do r[k] = tonumber(v) end
  return r
end

-- The allocator's calls (Lua's heap growing): not the write path's.
local ALLOCATOR = { brk = true, mmap = true, munmap = true, mremap = true, mprotect = true }

--- System calls per durable put: strace -f -c of a child with 2K puts minus
-- one with K puts, divided by K (what the first put does once - opening
-- the sync state, reading what the prefill left - cancels out), without
-- the allocator's calls.
local function syscalls_per_put(p, k)
  if not os.execute("command -v strace >/dev/null 2>&1") then return nil end
  local function total(kk)
    local out = p.dir .. ".strace"
    local q = {}
    for kx, v in pairs(p) do q[kx] = v end
    q.k = kk
    local ok = os.execute("strace -f -c -o " .. sh_quote(out) .. " " .. child_cmd(q) .. " >/dev/null 2>&1")
    local f = io.open(out)
    if not ok or not f then return nil end
    local s = f:read("a")
    f:close()
    os.remove(out)
    -- a line per call: % time, seconds, usecs/call, calls, errors, name
    local calls
    for line in s:gmatch("[^\n]+") do
      local c, name = line:match("^%s*[%d%.]+%s+[%d%.]+%s+%d*%s+(%d+)%s+%d*%s*([%w_]+)%s*$")
      if name and name ~= "total" and not ALLOCATOR[name] then calls = (calls or 0) + tonumber(c) end
    end
    return calls
  end
  local t1, t2 = total(k), total(2 * k)
  if not t1 or not t2 then return nil end
  return (t2 - t1) / k
end

-- The rows: label, result field, engines measured, target (ratio pack/SQLite).
local ROWS = {
  { "put one record, durable (fsync on / synchronous=FULL), puts/s", "put", "on",
    target = 0.8 },
  { "put one record, fsync off (synchronous=OFF), puts/s", "put", "off", target = 0.5 },
  { "batches of 100 records, durable, records/s", "batch", "on", target = 0.7 },
  { "batches of 100 records, fsync off, records/s", "batch", "off", target = 0.7 },
  { "bytes written per put, durable (write(2) bytes, zones' zeros not counted)", "put_wr", "on",
    bytes = true, lower = true },
  { "zeros written ahead per put, durable (pack zones)", "put_zone", "on", bytes = true,
    lower = true, plain = true },
  { "bytes hashed per put, durable (SHA-256 input)", "put_hash", "on", bytes = true, lower = true,
    plain = true, within = { "put_wr", 2 } },
  { "point get, %s records, gets/s", "get", "read", target = 1.0 },
  { "range of 100 records (from + limit 100), ranges/s", "range", "read", target = 1.0 },
  { "prefix of ~%P records (keys starting with 4 given characters), queries/s", "prefix", "read",
    target = 1.0 },
  { "full scan of %s records, records/s", "scan", "read", target = 1.0 },
  { "full scan of %S records, records/s", "scan_small", "small", target = 1.0 },
  { "full scan of %L records, records/s", "scan_large", "large", target = 1.0 },
  { "resident memory added by the scans of %L records", "scan_mem", "large", bytes = true,
    lower = true, plain = true },
  { "bulk load %s records (durable), records/s", "bulk", "read", target = 1.0 },
  { "store size after bulk load + checkpoint, bytes/record (pack: zones not counted)", "size",
    "read", bytes = true, lower = true, target = 1.0 },
  { "history kept per update of one 100 B record in %s (store growth after checkpoint; "
    .. "pack: zones not counted)", "hist", "read", bytes = true, lower = true, absolute = 2048 },
  { "system calls per durable put", "sys", "sys", lower = true, absolute = 8, plain = true },
}

local function fmt_num(v)
  if v == nil then return "" end
  if v >= 100 then
    local s = ("%d"):format(math.floor(v + 0.5))
    return (s:reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^,", ""))
  end
  -- (two decimals below 10: 8.02 system calls a put is not 8)
  return (v < 10 and "%.2f" or "%.1f"):format(v)
end

local function fmt_bytes(v)
  if v == nil then return "" end
  if v < 0 then return ("%d B"):format(math.floor(v + 0.5)) end
  if v < 1024 then return ("%d B"):format(math.floor(v + 0.5)) end
  return ("%.1f KiB"):format(v / 1024)
end

local function main()
  local a = parse_args(arg)
  if a.child then return child(a) end
  local quick = a.quick
  local rounds = a.rounds or 3
  local n = a.n or (quick and 20000 or 100000)
  local small = a.small or (quick and 2000 or 10000)
  local prefill = a.prefill or (quick and 2000 or 10000)
  local cap = a.cap or (quick and 0.4 or 1.5)
  local updates = a.updates or (quick and 100 or 500)
  local strace_puts = a["strace-puts"] or (quick and 50 or 200)
  local root = a.dir or "/tmp/mydb-bench-versus"
  local large = a.large or (quick and 100000 or 1000000)
  if large == true then large = 1000000 end
  local scans = a["scans-only"]
  local writes = not scans
  local list = {}
  for e in (a.engines or "pack,loose,memory,sqlite,vsqlite"):gmatch("[^,]+") do
    if not engines[e] then error("unknown engine " .. e) end
    list[#list + 1] = e
  end
  local have_sqlite = sqlite_available()
  local function skip(e) return (e == "sqlite" or e == "vsqlite") and not have_sqlite end

  local uname = io.popen("uname -srm"):read("l")
  local cpu = a.cpu
  if cpu == nil then
    local f = io.open("/proc/self/status")
    local st = f and f:read("a") or ""
    if f then f:close() end
    cpu = st:match("Cpus_allowed_list:%s*(%d+)")
  end
  cpu = tostring(cpu)
  if cpu ~= "none" and cpu ~= "nil" then
    if not cpu:match("^%d+$") then error("--cpu takes a CPU number or none, got " .. cpu) end
    if os.execute("taskset -c " .. cpu .. " true >/dev/null 2>&1") then
      pin = "taskset -c " .. cpu .. " "
    else
      print("(taskset could not pin to CPU " .. cpu .. ": children unpinned)")
    end
  end
  print(("mydb %s versus SQLite, %s, Lua %s; %d rounds, engines interleaved; medians")
    :format(core._VERSION, uname, _VERSION:sub(5), rounds))
  print(pin ~= "" and ("every child pinned to CPU %s (taskset)"):format(cpu) or "children unpinned")
  print(("sizes: collection %d records, small scan %d, large scan %d, prefill before puts %d, %s s per timed cell, %d updates")
    :format(n, small, large, prefill, cap, updates))
  local large_on = {}
  for e in (a["large-engines"] or "pack,memory,sqlite"):gmatch("[^,]+") do large_on[e] = true end
  if not have_sqlite then
    print("SQLite: not installed (Debian package lua-sql-sqlite3); its columns are empty")
  end
  io.stdout:flush()

  -- results[engine][field] = list of values over rounds
  local results = {}
  for _, e in ipairs(list) do results[e] = {} end
  local function add(e, r, suffix)
    for k, v in pairs(r) do
      local f = k .. (suffix or "")
      results[e][f] = results[e][f] or {}
      table.insert(results[e][f], v)
    end
  end
  local t_all = now()
  for round = 1, rounds do
    local t_round = now()
    for _, e in ipairs(writes and list or {}) do
      if not skip(e) then
        local dir = root .. "/" .. e
        for _, d in ipairs({ "on", "off" }) do
          if not (e == "memory" and d == "on") then
            add(e, run_child { engine = e, w = "write", durable = d, dir = dir, prefill = prefill,
                               cap = cap }, "@" .. d)
          end
        end
      end
    end
    for _, e in ipairs(a["writes-only"] and {} or list) do
      if not skip(e) then
        add(e, run_child { engine = e, w = "read", durable = e == "memory" and "off" or "on",
                           dir = root .. "/" .. e, n = n, cap = cap, updates = updates,
                           scans = scans and 1 or nil }, "@read")
      end
    end
    for _, e in ipairs(a["writes-only"] and {} or list) do
      if not skip(e) then
        add(e, run_child { engine = e, w = "scan_small", durable = "off", dir = root .. "/" .. e,
                           small = small, cap = cap }, "@small")
      end
    end
    for _, e in ipairs((a["writes-only"] or large == 0) and {} or list) do
      if not skip(e) and large_on[e] then
        add(e, run_child { engine = e, w = "scan_large", durable = "off", dir = root .. "/" .. e,
                           large = large, cap = cap }, "@large")
      end
    end
    io.stderr:write(("versus: round %d of %d done in %.0f s\n"):format(round, rounds, now() - t_round))
  end
  for _, e in ipairs((a["writes-only"] or scans) and {} or list) do
    if not skip(e) and e ~= "memory" then
      local s = syscalls_per_put({ engine = e, w = "syscalls", durable = "on", dir = root .. "/" .. e,
                                   prefill = prefill }, strace_puts)
      if s then results[e]["sys@sys"] = { s } end
    end
  end
  os.execute("rm -rf " .. sh_quote(root))

  local function val(e, field, mode)
    if not results[e] then return nil end
    local f = field .. "@" .. mode
    if mode == "read" and field == "scan_small" then f = "scan_small@small" end
    if mode == "read" and (field == "scan_large" or field == "scan_mem") then f = field .. "@large" end
    return median(results[e][f] or {})
  end
  local cols = {}
  for _, e in ipairs({ "pack", "loose", "memory", "sqlite", "vsqlite" }) do
    if results[e] then cols[#cols + 1] = e end
  end
  local names = { pack = "mydb pack", loose = "mydb loose", memory = "mydb memory", sqlite = "SQLite",
                  vsqlite = "versioned SQLite" }
  print()
  local head, sep = { "workload" }, { "---" }
  for _, e in ipairs(cols) do head[#head + 1] = names[e]; sep[#sep + 1] = "---:" end
  head[#head + 1] = "pack/SQLite"; sep[#sep + 1] = "---:"
  head[#head + 1] = "target"; sep[#sep + 1] = "---"
  print("| " .. table.concat(head, " | ") .. " |")
  print("|" .. table.concat(sep, "|") .. "|")
  -- (the records a prefix of 4 characters selects: "k" and 3 of 8 digits)
  local per_prefix = n // 1000 >= 100 and fmt_num(n // 1000) or tostring(n // 1000)
  for _, row in ipairs(ROWS) do
    local label = row[1]:gsub("%%s", fmt_num(n)):gsub("%%S", fmt_num(small)):gsub("%%L", fmt_num(large))
      :gsub("%%P", per_prefix)
    local field, mode = row[2], row[3]
    local cells = { label }
    local any = false
    for _, e in ipairs(cols) do
      if val(e, field, mode) ~= nil then any = true end
      local v = val(e, field, mode)
      if skip(e) then cells[#cells + 1] = "not installed"
      elseif v == nil then cells[#cells + 1] = ""
      elseif row.bytes then cells[#cells + 1] = fmt_bytes(v)
      else cells[#cells + 1] = fmt_num(v) end
    end
    local p = val("pack", field, mode)
    local s = val("sqlite", field, mode)
    local ratio, verdict = "", ""
    if p and s and s ~= 0 and not row.plain and not (field == "hist") then
      ratio = ("%.2fx"):format(p / s)
    end
    if row.target and p and s and s ~= 0 and field ~= "hist" then
      local r = p / s
      local met = row.lower and (r <= row.target) or (not row.lower and r >= row.target)
      verdict = (row.lower and "<= " or ">= ") .. row.target .. "x: " .. (met and "met" or "not met")
    elseif row.within and p then
      -- against pack's own row: hashed <= k x written
      local w = val("pack", row.within[1], mode)
      if w and w > 0 then
        local r = p / w
        verdict = ("pack <= %gx its bytes written: %s (%.1fx)"):format(row.within[2],
          r <= row.within[2] and "met" or "not met", r)
      end
    elseif row.absolute and p then
      local met = p <= row.absolute
      verdict = "pack <= " .. (row.bytes and fmt_bytes(row.absolute) or row.absolute) .. ": " ..
        (met and "met" or "not met")
    end
    cells[#cells + 1] = ratio
    cells[#cells + 1] = verdict
    if any then print("| " .. table.concat(cells, " | ") .. " |") end
  end
  print()
  print("Ratios are mydb pack / SQLite (for sizes: pack's bytes / SQLite's; lower is better).")
  print("Bytes hashed per put: what SHA-256 hashed in the child over its puts (core.hashed_bytes:")
  print("pieces, keys' chunk hashes, snapshots, commits), against the same put's write(2) bytes.")
  print(("total %.0f s"):format(now() - t_all))
end

main()
