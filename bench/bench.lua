--- mydb benchmark: the anchor's workloads W1-W6 (../shared/anchors/bench_peers.py)
-- plus W7 (refs), at the anchor's sizes and at 100,000 records, fsync off
-- and on. Each workload runs in a child process (so peak RSS is its own) on
-- a fresh store, `repeats` times; the table shows medians.
--
--   lua5.4 bench/bench.lua [--quick] [--repeats N] [--no-anchor] [--dir D]
--
-- Columns: ops/s; us/op; bytes written per op (write(2) bytes, from
-- /proc/self/io wchar); files created per op; peak RSS of the child (MiB).
local core = require "mydb.core"

local now = core.monotonic
local common = dofile((arg[0]:match("^(.*)/") or ".") .. "/common.lua")
local sh_quote, parse_args = common.sh_quote, common.parse_args
local doc_1k, rec_100, wchar = common.doc_1k, common.rec_100, common.wchar

-- ------------------------------------------------------------- utilities


local function peak_rss_kib()
  local f = io.open("/proc/self/status")
  if not f then return 0 end
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmHWM:%s*(%d+)")) or 0
end

local function count_files(dir)
  local p = io.popen("find " .. sh_quote(dir) .. " -type f 2>/dev/null | wc -l")
  local n = tonumber(p:read("a")) or 0
  p:close()
  return n
end

local function median(t)
  local s = {}
  for i, v in ipairs(t) do s[i] = v end
  table.sort(s)
  local n = #s
  if n == 0 then return 0 end
  if n % 2 == 1 then return s[(n + 1) // 2] end
  return (s[n // 2] + s[n // 2 + 1]) / 2
end



local function key(i) return ("k%05d"):format(i) end

-- A small deterministic generator (the same sequence on every run).
local rng = common.rng

-- ----------------------------------------------------------- workloads
-- Each returns a result table {ops=, sec=, written=, files=, extra...}.

local T, U = "tenant_1", "user_1"

local function measure(dir, fn)
  collectgarbage()
  collectgarbage()
  local f0, w0, t0 = count_files(dir), wchar(), now()
  local ops, extra = fn()
  local dt = now() - t0
  local r = extra or {}
  r.ops, r.sec, r.written, r.files = ops, dt, wchar() - w0, count_files(dir) - f0
  return r
end

local function capped(n, cap, op)
  local deadline = now() + cap
  for i = 1, n do
    op(i)
    if i % 16 == 0 and now() > deadline then return i end
  end
  return n
end

local workloads = {}

function workloads.W1(db, dir, a)
  local docs = {}
  for i = 0, a.n - 1 do docs[i + 1] = doc_1k(i) end
  return measure(dir, function()
    for i = 0, a.n - 1 do db:save(T, U, ("entry%06d"):format(i), docs[i + 1]) end
    return a.n
  end)
end

function workloads.W2(db, dir, a)
  for i = 0, a.n - 1 do db:save(T, U, ("entry%06d"):format(i), doc_1k(i)) end
  local r = rng(1)
  local names = {}
  for i = 1, a.reads do names[i] = ("entry%06d"):format(r(a.n)) end
  assert(db:load(T, names[1]).id == tonumber(names[1]:sub(6)))
  return measure(dir, function()
    return capped(a.reads, a.cap, function(i) return db:load(T, names[i]) end)
  end)
end

function workloads.W3(db, dir, a)
  local recs = {}
  for i = 0, a.n - 1 do recs[i + 1] = rec_100(i) end
  local k = a.window
  local lat, marks = {}, {}
  return measure(dir, function()
    for i = 0, a.n - 1 do
      if i == 0 or i == a.n - k then marks[i] = wchar() end
      local t = now()
      db:put(T, U, "coll", key(i), recs[i + 1])
      lat[i + 1] = now() - t
      if i == k - 1 or i == a.n - 1 then marks[i] = wchar() end
    end
    local first, last = {}, {}
    for i = 1, k do first[i], last[i] = lat[i], lat[a.n - k + i] end
    return a.n, {
      first_us = median(first) * 1e6, last_us = median(last) * 1e6,
      first_wr = (marks[k - 1] - marks[0]) / k, last_wr = (marks[a.n - 1] - marks[a.n - k]) / k,
    }
  end)
end

local function fill(db, n)
  local items = {}
  for i = 0, n - 1 do items[key(i)] = rec_100(i) end
  db:put_many(T, U, "coll", items)
end

function workloads.W4(db, dir, a)
  fill(db, a.n)
  local r = rng(4)
  local keys = {}
  for i = 1, a.reads do keys[i] = key(r(a.n)) end
  assert(db:get(T, "coll", keys[1]).id == tonumber(keys[1]:sub(2)))
  return measure(dir, function()
    return capped(a.reads, a.cap, function(i) return db:get(T, "coll", keys[i]) end)
  end)
end

function workloads.W5(db, dir, a)
  for v = 0, a.n - 1 do db:save(T, U, "versioned", { version = v }) end
  assert(#db:history(T, "versioned", nil, a.n) == a.n)
  return measure(dir, function()
    return capped(a.calls, a.cap, function() return db:history(T, "versioned", nil, a.n) end)
  end)
end

-- W6a reports records/s (a scan of n records counts n).
function workloads.W6a(db, dir, a)
  fill(db, a.n)
  assert(#db:get(T, "coll") == a.n)
  local r = measure(dir, function()
    return capped(a.calls, a.cap, function() return db:get(T, "coll") end)
  end)
  r.calls = r.ops
  r.ops = r.ops * a.n
  return r
end

function workloads.W6b(db, dir, a)
  fill(db, a.n)
  local p = key(a.n // 2):sub(1, -3) -- "k500" style: 1% of the keys
  local want = 0
  for i = 0, a.n - 1 do if key(i):sub(1, #p) == p then want = want + 1 end end
  local function query()
    local n = 0
    for _ in db:query(T, "coll", { prefix = p }) do n = n + 1 end
    return n
  end
  assert(query() == want, "prefix query count")
  return measure(dir, function()
    return capped(a.calls, a.cap, query), { matched = want }
  end)
end

-- W7: a ref of a.n bytes written and read back (MB/s), beside raw SHA-256.
function workloads.W7(db, dir, a)
  local r = rng(7)
  local parts = {}
  for i = 1, 4096 do parts[i] = string.char(r(256)) end
  local block = table.concat(parts)
  local bytes = block:rep(a.n // #block)
  local store = db._store
  local t0 = now()
  core.sha256(bytes)
  local hash_s = now() - t0
  local res = measure(dir, function()
    local d = store:write(nil, bytes)
    return 1, { digest = d }
  end)
  local t1 = now()
  local back = store:read(nil, res.digest)
  local read_s = now() - t1
  assert(#back == #bytes)
  res.digest = nil
  res.mb = #bytes / 1e6
  res.hash_mbs = res.mb / hash_s
  res.write_mbs = res.mb / res.sec
  res.read_mbs = res.mb / read_s
  return res
end

-- -------------------------------------------------------------- the child

local function serialize(t)
  local out = {}
  for k, v in pairs(t) do out[#out + 1] = k .. "=" .. tostring(v) end
  return table.concat(out, " ")
end

local function child(args)
  local mydb = require "mydb"
  local dir = args.dir
  os.execute("rm -rf " .. sh_quote(dir) .. " && mkdir -p " .. sh_quote(dir))
  -- MYDB_BENCH_BACKEND: a backend other than the default of a new store
  local db = mydb.open(dir, { fsync = args.fsync == "on", backend = os.getenv("MYDB_BENCH_BACKEND") })
  db:init(T)
  local r = workloads[args.w](db, dir, args)
  db:close()
  r.rss = peak_rss_kib() / 1024
  os.execute("rm -rf " .. sh_quote(dir))
  io.write("RESULT ", serialize(r), "\n")
end

-- ------------------------------------------------------------- the driver


local function run_child(w, params, dir)
  local cmd = { "lua5.4", sh_quote(arg[0]), "--child", "1", "--w", w, "--dir", sh_quote(dir) }
  for k, v in pairs(params) do cmd[#cmd + 1] = "--" .. k .. " " .. tostring(v) end
  local p = io.popen(table.concat(cmd, " ") .. " 2>&1")
  local out = p:read("a")
  local ok = p:close()
  local line = out:match("RESULT ([^\n]*)")
  if not ok or not line then error("benchmark child failed: " .. w .. "\n" .. out) end
  local r = {}
  for k, v in line:gmatch("([%w_]+)=(%S+)") do r[k] = tonumber(v) or v end
  return r
end

local function fmt_bytes(n)
  if n < 1024 then return ("%d B"):format(math.floor(n + 0.5)) end
  if n < 1024 * 1024 then return ("%.1f KiB"):format(n / 1024) end
  return ("%.1f MiB"):format(n / 1048576)
end

local function main()
  local a = parse_args(arg)
  if a.child then return child(a) end
  local repeats = a.repeats or 3
  local dir = a.dir or "/tmp/mydb-bench"
  local quick = a.quick
  local cap = 1.5

  -- name, workload, params, fsync, what the size means
  local plan = {}
  local function add(label, w, p, fsync, reps)
    plan[#plan + 1] = { label = label, w = w, p = p, fsync = fsync, reps = reps or repeats }
  end
  local big = quick and 20000 or 100000
  for _, fs in ipairs { "off", "on" } do
    local small = fs == "on"
    add("W1 save 1 KiB, 2,000 entries", "W1", { n = small and 500 or 2000 }, fs)
    add("W2 load latest, 2,000 entries", "W2", { n = 2000, reads = 20000, cap = cap }, fs)
    add("W3 put 100 B, 2,000 puts", "W3", { n = small and 500 or 2000, window = small and 50 or 100 }, fs)
    add("W4 get, 10,000 records", "W4", { n = 10000, reads = 100000, cap = cap }, fs)
    add("W5 history(1000)", "W5", { n = 1000, calls = 20000, cap = cap }, fs)
    add("W6a scan 10,000 records (records/s)", "W6a", { n = 10000, calls = 1000, cap = cap }, fs)
    add("W6b prefix query 1% of 10,000", "W6b", { n = 10000, calls = 100000, cap = cap }, fs)
    if not small then
      add(("W1 save 1 KiB, %d entries"):format(big), "W1", { n = big }, fs, 1)
      add(("W2 load latest, %d entries"):format(big), "W2", { n = big, reads = 100000, cap = cap }, fs, 1)
      add(("W3 put 100 B, %d puts"):format(big), "W3", { n = big, window = 1000 }, fs, 1)
      add(("W4 get, %d records"):format(big), "W4", { n = big, reads = 200000, cap = cap }, fs, 1)
      add(("W6a scan %d records (records/s)"):format(big), "W6a", { n = big, calls = 100, cap = cap }, fs, 1)
      add(("W6b prefix query 1%% of %d"):format(big), "W6b", { n = big, calls = 100000, cap = cap }, fs, 1)
    end
    add("W7 ref 1 MiB write", "W7", { n = 1 << 20 }, fs)
    if not quick then add("W7 ref 100 MiB write", "W7", { n = 100 << 20 }, fs, 1) end
  end

  local uname = io.popen("uname -srm"):read("l")
  print(("mydb %s, %s, Lua %s; %d repeats (large sizes: 1); store in %s")
    :format(core._VERSION, uname, _VERSION:sub(5), repeats, dir))
  print()
  print("| workload | fsync | ops (last run) | ops/s (median) | us/op | written/op | files/op | peak RSS |")
  print("|---|---|---:|---:|---:|---:|---:|---:|")
  local w3rows, w7rows = {}, {}
  local t_all = now()
  for _, row in ipairs(plan) do
    local runs = {}
    for _ = 1, row.reps do runs[#runs + 1] = run_child(row.w, row.p, dir) end
    local function med(f) local v = {} for i, r in ipairs(runs) do v[i] = f(r) end return median(v) end
    local ops_s = med(function(r) return r.ops / r.sec end)
    local wr = med(function(r) return r.written / r.ops end)
    local fl = med(function(r) return r.files / r.ops end)
    local ops = runs[#runs].ops
    if row.w == "W6a" then wr, fl = wr * row.p.n, fl * row.p.n end -- per call
    print(("| %s | %s | %d | %.0f | %.2f | %s | %.2f | %.1f MiB |"):format(row.label, row.fsync,
      ops, ops_s, 1e6 / ops_s, fmt_bytes(wr), fl, med(function(r) return r.rss end)))
    io.stdout:flush()
    if row.w == "W3" then w3rows[#w3rows + 1] = { row = row, runs = runs, med = med } end
    if row.w == "W7" then w7rows[#w7rows + 1] = { row = row, med = med } end
  end
  print()
  print("W3 growth (median per-put latency and bytes written per put, first vs last window of puts):")
  print()
  print("| run | fsync | window | first us | last us | growth x | first B/put | last B/put |")
  print("|---|---|---:|---:|---:|---:|---:|---:|")
  for _, x in ipairs(w3rows) do
    local f, l = x.med(function(r) return r.first_us end), x.med(function(r) return r.last_us end)
    print(("| %s | %s | %d | %.0f | %.0f | %.2f | %s | %s |"):format(x.row.label, x.row.fsync, x.row.p.window,
      f, l, l / f, fmt_bytes(x.med(function(r) return r.first_wr end)), fmt_bytes(x.med(function(r) return r.last_wr end))))
  end
  print()
  print("W7 refs (MB/s): write = hash + store; read = load + verify; raw = SHA-256 (libcrypto) of the same bytes")
  print()
  print("| size | fsync | write MB/s | read MB/s | raw SHA-256 MB/s | read / raw |")
  print("|---|---|---:|---:|---:|---:|")
  for _, x in ipairs(w7rows) do
    local rd, raw = x.med(function(r) return r.read_mbs end), x.med(function(r) return r.hash_mbs end)
    print(("| %s | %s | %.0f | %.0f | %.0f | %.2f |"):format(fmt_bytes(x.row.p.n), x.row.fsync,
      x.med(function(r) return r.write_mbs end), rd, raw, rd / raw))
  end
  print()
  print(("total benchmark time %.0f s"):format(now() - t_all))

  -- The original design, same workloads, same machine, same run.
  local anchor = a.anchor_dir or "../shared/anchors/bench_peers.py"
  if not a["no-anchor"] and io.open(anchor) and os.execute("command -v python3 >/dev/null") then
    print()
    print("Original design (Python anchor, " .. anchor .. ", default sizes, fsync off):")
    print()
    io.stdout:flush()
    os.execute("python3 " .. sh_quote(anchor) .. " --engines pymydb --repeats 1 --dir " .. sh_quote(dir .. "-anchor") .. " 2>/dev/null")
  end
end

main()
