--- mydb versioning benchmark (issue 14): what a tenant commit costs a
-- write, and how fast a revision (REV@{T}, REV~N) resolves on a long branch.
--
--   lua5.4 bench/versioning.lua [--quick] [--rounds R] [--base DIR]
--       [--commits N] [--lookups L] [--cap S] [--dir D]
--
-- 1. Commit overhead: single puts of a new ~100 B record into a collection
--    of 10,000 and of 100,000 records (prefilled by one put_many), pack
--    with fsync off and on, loose with fsync off; on this tree and on the
--    tree of the code before commits (--base: a build of commit d0eef9f,
--    e.g. `git worktree add --detach /tmp/precommits d0eef9f && make -C
--    /tmp/precommits module`; without it only this tree is measured). The
--    same child script runs under each tree's LUA_PATH/LUA_CPATH, the
--    trees interleaved (A B A B ...), every cell in a fresh process on a
--    fresh store; medians of --rounds. Reported: puts/s, write(2) bytes
--    per put (/proc/self/io wchar), store growth per put (its files'
--    sizes), objects per put (store:objects counts), and what one put
--    adds, by kind. Loose is measured at the smaller size only (its
--    100,000-record prefill alone takes half a minute here).
-- 2. Revisions: one child builds a branch of --commits commits (pack, fsync
--    off, one small put each) and lists (time, id) of every commit, oldest first,
--    from db:log; then, in fresh processes, --lookups db:resolve calls of
--    "main@{T}" for random T between the first and the last commit's time
--    and of "main~N" for random N, cold (the handle's decoded commits and
--    pieces dropped before each) and warm: median and p99 microseconds, and
--    store reads per lookup (a counting proxy of db._store, in a separate
--    pass); a fresh handle's first read of the tenant, which opens its
--    files, is timed apart ("first touch").
--    Every answer is checked against the list (the newest commit whose
--    time is <= T; the commit N first parents down): a wrong one fails
--    the benchmark. Also db:log{max=100} and db:at("main~K"):get().
local core = require "mydb.core"

local now = core.monotonic
local here = arg[0]:match("^(.*)/") or "."
local common = dofile(here .. "/common.lua")
local sh_quote, parse_args, rec_100, wchar = common.sh_quote, common.parse_args, common.rec_100,
  common.wchar

local T, U, C = "t", "u", "coll"

-- ------------------------------------------------------------- utilities

local function sorted(t)
  local s = table.move(t, 1, #t, 1, {})
  table.sort(s)
  return s
end

local median = common.median

local function p99(t)
  local s = sorted(t)
  return s[math.max(1, math.ceil(#s * 0.99))]
end

local rng = common.rng

local function key(i) return ("k%08d"):format(i) end

--- Bytes of the regular files under dir (apparent sizes; directories,
-- which du would count at 4 KiB each, left out).
local function dir_bytes(dir)
  local p = io.popen("find " .. sh_quote(dir) .. " -type f -printf '%s\\n' 2>/dev/null")
  local n = 0
  for line in p:lines() do n = n + (tonumber(line) or 0) end
  p:close()
  return n
end

local function fresh_dir(dir)
  os.execute("rm -rf " .. sh_quote(dir) .. " && mkdir -p " .. sh_quote(dir))
end

local function result(r)
  local out = {}
  for k, v in pairs(r) do out[#out + 1] = k .. "=" .. tostring(v) end
  io.write("RESULT ", table.concat(out, " "), "\n")
end

-- ------------------------------------------------- child: commit overhead

--- The kind of a stored object, from its first bytes.
local function kind(bytes, state)
  if bytes:sub(1, 12) == '{"commit":1,' then return "commit" end
  if bytes:sub(1, 18) == '{"__collection__":' then return "version" end
  if state then return "state" end
  return "piece"
end

local children = {}

function children.put(a)
  local mydb = require "mydb"
  local dir = a.dir
  fresh_dir(dir)
  local db = mydb.open(dir, { fsync = a.fsync == "on", backend = a.backend })
  db:init(T)
  -- the collection: even keys; the timed puts insert odd keys at random places
  local items = {}
  for i = 0, a.n - 1 do items[key(2 * i)] = rec_100(i) end
  db:put_many(T, U, C, items)
  items = nil
  local r, put_keys = rng(7), {}
  for i = 1, a.max do put_keys[i] = key(2 * r(a.n) + 1) end
  local store = db._store
  collectgarbage()
  collectgarbage()
  local o0, b0, w0 = #store:objects(T), dir_bytes(dir), wchar()
  local i, deadline, t0 = 0, now() + a.cap, now()
  repeat
    i = i + 1
    db:put(T, U, C, put_keys[i], rec_100(a.n + i))
  until i >= a.max or (i >= a.min and now() > deadline)
  local dt = now() - t0
  local w1, o1, b1 = wchar(), #store:objects(T), dir_bytes(dir)
  -- one more put, untimed: the objects it adds, by kind
  local before = {}
  for _, d in ipairs(store:objects(T)) do before[d] = true end
  db:put(T, U, C, key(2 * a.n + 1), rec_100(0))
  local added, state = {}, nil
  for _, d in ipairs(store:objects(T)) do
    if not before[d] then
      local bytes = store:read(T, d)
      added[d] = bytes
      if kind(bytes) == "commit" then state = core.decode(bytes).state end
    end
  end
  local kinds = { commit = 0, version = 0, state = 0, piece = 0 }
  for d, bytes in pairs(added) do
    local k = kind(bytes, d == state)
    kinds[k] = kinds[k] + 1
  end
  db:close()
  os.execute("rm -rf " .. sh_quote(dir))
  result { puts = i, sec = dt, wr = (w1 - w0) / i, grow = (b1 - b0) / i, objs = (o1 - o0) / i,
           k_commit = kinds.commit, k_version = kinds.version, k_state = kinds.state,
           k_piece = kinds.piece }
end

-- ------------------------------------------------------ child: revisions

--- Builds the branch and writes "time id height" per commit, oldest first.
function children.build(a)
  local mydb = require "mydb"
  fresh_dir(a.dir)
  local db = mydb.open(a.dir, { fsync = false, backend = "pack" })
  db:init(T)
  local t0 = now()
  for i = 1, a.commits do
    db:put(T, U, C, key(i % 1000), { n = i })
  end
  local build_s = now() - t0
  local t1 = now()
  local log = db:log(T, { max = a.commits + 10 })
  local log_s = now() - t1
  assert(#log == a.commits, ("log has %d commits, want %d"):format(#log, a.commits))
  local f = assert(io.open(a.list, "w"))
  for j = #log, 1, -1 do
    local c = log[j]
    f:write(("%.17g %s\n"):format(c.time, c.id))
  end
  f:close()
  db:close()
  result { build_s = build_s, log_all_s = log_s, bytes = dir_bytes(a.dir) }
end

local function read_list(path)
  local times, ids = {}, {}
  for line in io.lines(path) do
    local t, id = line:match("^(%S+) (%x+)$")
    times[#times + 1], ids[#ids + 1] = tonumber(t), id
  end
  return times, ids
end

--- The index of the newest commit whose time is <= t (times never
-- decrease along the list), or nil.
local function expected_at(times, t)
  local lo, hi = 1, #times
  if times[1] > t then return nil end
  while lo < hi do
    local mid = (lo + hi + 1) // 2
    if times[mid] <= t then lo = mid else hi = mid - 1 end
  end
  return lo
end

--- A proxy of a store counting its reads (for the untimed counting pass).
local function counting(store, counter)
  return setmetatable({}, { __index = function(_, k)
    local f = store[k]
    if type(f) ~= "function" then return f end
    return function(_, ...)
      if k == "read" then counter.n = counter.n + 1 end
      return f(store, ...)
    end
  end })
end

function children.lookup(a)
  local mydb = require "mydb"
  local commits = require "mydb.commits"
  local collection = require "mydb.collection"
  local times, ids = read_list(a.list)
  local n = #times
  local r = rng(a.seed)
  local revs, want = {}, {}
  for i = 1, a.lookups do
    if a.kind == "time" then
      local t = times[1] + (times[n] - times[1]) * r(1000000007) / 1000000006
      revs[i] = ("main@{%.6f}"):format(t)
      -- the answer for the time as written (the revision's text)
      want[i] = ids[expected_at(times, tonumber(revs[i]:match("{(.*)}")))]
    else
      local k = r(n)
      revs[i], want[i] = ("main~%d"):format(k), ids[n - k]
    end
  end
  local function check(i, got)
    if got ~= want[i] then
      error(("WRONG ANSWER: %s resolved to %s, want %s"):format(revs[i], tostring(got), tostring(want[i])))
    end
  end
  local function open() return mydb.open(a.dir, { fsync = false }) end
  local res = {}
  -- first touch: a fresh handle's first read of the tenant (a head read),
  -- which opens the tenant's files; timed apart, on a few handles
  local touch = {}
  for j = 1, a.touches do
    local h = open()
    local t0 = now()
    assert(h._store:head(T, "\0heads/main") == ids[n])
    touch[j] = (now() - t0) * 1e6
    h:close()
  end
  res.touch = median(touch)
  local db = open()
  local store = db._store
  store:head(T, "\0heads/main")
  -- cold: the handle's decoded commits and pieces forgotten before each
  -- lookup (a fresh handle, less its first touch); warm: kept
  local function forget()
    db._commits = commits.memo()
    db._nodes = collection.node_cache()
  end
  local counter = { n = 0 }
  local counted = counting(store, counter)
  local function pass(cold, count)
    local lat = {}
    if count then db._store = counted end
    for i = 1, a.lookups do
      if cold then forget() end
      counter.n = 0
      local t0 = now()
      local id = db:resolve(T, revs[i])
      lat[i] = count and counter.n or (now() - t0) * 1e6
      check(i, id)
    end
    db._store = store
    return lat
  end
  local lat = pass(true)
  res.cold_med, res.cold_p99 = median(lat), p99(lat)
  lat = pass(true, true)
  res.cold_reads, res.cold_reads_max = median(lat), p99(lat)
  forget()
  lat = pass(false)
  res.warm_med, res.warm_p99 = median(lat), p99(lat)
  lat = pass(false, true)
  res.warm_reads = median(lat)
  if a.kind == "time" then
    -- db:log{max=100}, cold then warm
    local cold, warm = {}, {}
    for j = 1, 20 do
      forget()
      local t0 = now()
      local log = db:log(T, { max = 100 })
      cold[j] = (now() - t0) * 1e6
      t0 = now()
      db:log(T, { max = 100 })
      warm[j] = (now() - t0) * 1e6
      assert(#log == 100 and log[1].id == ids[n] and log[100].id == ids[n - 99], "log{max=100} is wrong")
    end
    res.log_cold, res.log_warm = median(cold), median(warm)
    -- db:at(main~K):get(coll, key), cold; commit i (1-based) put {n = i}
    -- at key(i % 1000)
    local k = n // 2
    local i = n - k
    for j = 1, 20 do
      forget()
      local t0 = now()
      local v = db:at(T, ("main~%d"):format(k)):get(C, key(i % 1000))
      cold[j] = (now() - t0) * 1e6
      if not v or v.n ~= i then
        error(("WRONG ANSWER: at(main~%d):get gave n=%s, want n=%d"):format(k, v and v.n, i))
      end
    end
    res.at_get, res.at_k = median(cold), k
  end
  db:close()
  result(res)
end

-- ------------------------------------------------------------- driver

local function child_cmd(tree, p)
  local env = ""
  if tree then
    env = ("LUA_PATH=%s LUA_CPATH=%s "):format(
      sh_quote(tree .. "/build/lua/?.lua;" .. tree .. "/build/lua/?/init.lua;;"),
      sh_quote(tree .. "/build/?.so;;"))
  end
  local cmd = { env .. "lua5.4", sh_quote(arg[0]), "--child", p.child }
  for k, v in pairs(p) do
    if k ~= "child" then cmd[#cmd + 1] = "--" .. k .. " " .. sh_quote(tostring(v)) end
  end
  return table.concat(cmd, " ")
end

local function run_child(tree, p)
  local cmd = child_cmd(tree, p)
  local pr = io.popen(cmd .. " 2>&1")
  local out = pr:read("a")
  local ok = pr:close()
  local line = out:match("RESULT ([^\n]*)")
  if not ok or not line then error("benchmark child failed: " .. cmd .. "\n" .. out, 0) end
  local r = {}
  for k, v in line:gmatch("([%w_]+)=(%S+)") do r[k] = tonumber(v) or v end
  return r
end

local function fmt_num(v)
  if v == nil then return "" end
  if v >= 100 then
    local s = ("%d"):format(math.floor(v + 0.5))
    return (s:reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^,", ""))
  end
  return ("%.1f"):format(v)
end

local function main()
  local a = parse_args(arg)
  if a.child then return children[a.child](a) end
  local quick = a.quick
  local rounds = a.rounds or 3
  local cap = a.cap or (quick and 0.5 or 1.0)
  local ncommits = a.commits or (quick and 10000 or 100000)
  local lookups = a.lookups or (quick and 300 or 1000)
  local root = a.dir or "/tmp/mydb-bench-versioning"
  local base = a.base
  if base == nil then
    local f = io.open("/tmp/precommits/build/mydb/core.so")
    if f then f:close(); base = "/tmp/precommits" end
  end
  if base == true then base = nil end
  -- this tree: the LUA_PATH/LUA_CPATH the driver runs with (the Makefile's)
  local trees = { { name = "commits", path = nil } }
  if base then trees[2] = { name = "before", path = base } end
  local sizes = quick and { 2000, 10000 } or { 10000, 100000 }
  local modes = { { "pack", "off" }, { "pack", "on" }, { "loose", "off" } }

  local uname = io.popen("uname -srm"):read("l")
  print(("mydb %s versioning benchmark, %s, Lua %s; %d rounds, trees interleaved; medians")
    :format(core._VERSION, uname, _VERSION:sub(5), rounds))
  print(("before commits: %s"):format(base and (base .. " (its build/)") or "not measured (no --base)"))
  io.stdout:flush()
  local t_all = now()

  -- 1. commit overhead
  local cells = {}
  for si, n in ipairs(sizes) do
    for _, m in ipairs(modes) do
      if m[1] ~= "loose" or si == 1 then
        cells[#cells + 1] = { n = n, backend = m[1], fsync = m[2], res = {} }
      end
    end
  end
  for round = 1, rounds do
    local t_round = now()
    for _, cell in ipairs(cells) do
      for ti, tree in ipairs(trees) do
        local on = cell.fsync == "on"
        local r = run_child(tree.path, { child = "put", dir = root .. "/put", n = cell.n,
          backend = cell.backend, fsync = cell.fsync, cap = cap,
          min = on and 20 or 200, max = on and 2000 or 20000 })
        cell.res[ti] = cell.res[ti] or {}
        table.insert(cell.res[ti], r)
      end
    end
    io.stderr:write(("versioning: puts, round %d of %d done in %.0f s\n"):format(round, rounds, now() - t_round))
  end
  local function med(list, f)
    local v = {}
    for i, r in ipairs(list or {}) do v[i] = f(r) end
    return median(v)
  end
  print()
  print("1. Commit overhead: one put of a new ~100 B record into a collection of N records")
  print()
  print("| N | backend | fsync | puts/s before | puts/s commits | ratio | B written/put before | commits " ..
        "| store growth/put before | commits | objects/put before | commits | one put adds (commits) |")
  print("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
  for _, cell in ipairs(cells) do
    local now_r, old_r = cell.res[1], cell.res[2]
    local function ps(l) return med(l, function(r) return r.puts / r.sec end) end
    local p_new, p_old = ps(now_r), ps(old_r)
    local function f(l, k) return med(l, function(r) return r[k] end) end
    local last = now_r[#now_r]
    local adds = ("%d commit, %d state piece, %d version, %d collection pieces"):format(
      last.k_commit, last.k_state, last.k_version, last.k_piece)
    print(("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |"):format(
      fmt_num(cell.n), cell.backend, cell.fsync, fmt_num(p_old), fmt_num(p_new),
      p_old and ("%.2f"):format(p_new / p_old) or "",
      fmt_num(f(old_r, "wr")), fmt_num(f(now_r, "wr")), fmt_num(f(old_r, "grow")), fmt_num(f(now_r, "grow")),
      fmt_num(f(old_r, "objs")), fmt_num(f(now_r, "objs")), adds))
  end
  if trees[2] then
    local l = cells[1].res[2][1]
    print()
    print(("before commits, one put adds: %d version, %d collection pieces (N = %s, pack)"):format(
      l.k_version, l.k_piece, fmt_num(cells[1].n)))
  end
  print("ratio: puts/s with commits / before. B written: write(2) bytes (/proc/self/io wchar).")
  io.stdout:flush()

  -- 2. revisions
  local dir = root .. "/branch"
  local list = root .. "/commits.txt"
  os.execute("mkdir -p " .. sh_quote(root))
  local b = run_child(nil, { child = "build", dir = dir, list = list, commits = ncommits })
  io.stderr:write(("versioning: branch of %d commits built in %.0f s\n"):format(ncommits, b.build_s))
  local kinds = { time = {}, height = {} }
  for round = 1, rounds do
    for k, l in pairs(kinds) do
      l[#l + 1] = run_child(nil, { child = "lookup", dir = dir, list = list, kind = k,
                                   lookups = lookups, seed = round * 10 + #k, touches = 3 })
    end
  end
  os.execute("rm -rf " .. sh_quote(root))
  print()
  print(("2. Revisions on a branch of %s commits (pack, fsync off; built at %s commits/s, %s MiB; " ..
         "db:log of all in %.1f s); %d lookups per round, every answer checked")
    :format(fmt_num(ncommits), fmt_num(ncommits / b.build_s), fmt_num(b.bytes / 1048576), b.log_all_s, lookups))
  print()
  print("| lookup | cold median us | cold p99 us | warm median us | warm p99 us | store reads cold (median / p99) | warm |")
  print("|---|---:|---:|---:|---:|---:|---:|")
  for _, k in ipairs { "time", "height" } do
    local l = kinds[k]
    local function f(x) return fmt_num(med(l, function(r) return r[x] end)) end
    print(("| %s | %s | %s | %s | %s | %s / %s | %s |"):format(
      k == "time" and "db:resolve(t, \"main@{T}\"), random T" or "db:resolve(t, \"main~N\"), random N",
      f("cold_med"), f("cold_p99"), f("warm_med"), f("warm_p99"), f("cold_reads"), f("cold_reads_max"),
      f("warm_reads")))
  end
  local l = kinds.time
  print()
  print(("cold: the handle's decoded commits and pieces (db._commits, db._nodes) dropped before each lookup; " ..
         "warm: kept. Store reads: calls of store:read per lookup. Not in these figures: a fresh handle's " ..
         "first read of the tenant (opens its pack), %s us median.")
    :format(fmt_num(med(l, function(r) return r.touch end))))
  print(("db:log(t, {max = 100}): %s us cold, %s us warm; db:at(t, \"main~%d\"):get(entry, key) cold: %s us")
    :format(fmt_num(med(l, function(r) return r.log_cold end)), fmt_num(med(l, function(r) return r.log_warm end)),
      l[1].at_k, fmt_num(med(l, function(r) return r.at_get end))))
  print(("total %.0f s"):format(now() - t_all))
end

main()
