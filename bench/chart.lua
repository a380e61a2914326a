--- The cost per operation against store size, as an SVG chart (issue 16,
-- section 3): put, get, range of 100 and scan (per record) on collections
-- of 1,000, 10,000 and 100,000 records, for mydb's pack, loose and memory
-- backends and SQLite, drawn by gnuplot (bench/chart.gp) into doc/bench.svg.
--
--   lua5.4 bench/chart.lua [--sizes 1000,10000,100000] [--cap 0.5]
--       [--engines pack,loose,memory,sqlite] [--out doc/bench.svg] [--dir D]
--
-- The measuring is bench/versus.lua's, reused as it is: every point is one
-- of its child runs (`versus.lua --child 1 --engine E --w write|read ...`,
-- which prints "RESULT name=value ..."), in a fresh process on a fresh
-- store; this file only chooses the sizes, converts rates into microseconds
-- per operation and hands the table to gnuplot. One run per point (no
-- medians: the chart shows how costs grow with size, the tables of
-- versus.lua give the medians).
--   put   one put of a new random key into a store prefilled with SIZE
--         records, fsync off (SQLite: synchronous=OFF): the engine's own
--         cost, which is what grows with size; a durable put adds the
--         disk's flush latency, whatever the size (versus.lua's table
--         gives durable puts)
--   get   a point get of a random key of a SIZE-record collection
--   range from + limit 100 (one range, not per record)
--   scan  a full scan of the collection, per record
local core = require "mydb.core"

local here = arg[0]:match("^(.*)/") or "."
local common = dofile(here .. "/common.lua")
local sh_quote, parse_args = common.sh_quote, common.parse_args
local now = core.monotonic

local NAMES = { pack = "mydb pack", loose = "mydb loose", memory = "mydb memory", sqlite = "SQLite" }
local OPS = { "put", "get", "range", "scan" }

local function run_versus(p)
  local cmd = { "lua5.4", sh_quote(here .. "/versus.lua"), "--child", "1" }
  for k, v in pairs(p) do cmd[#cmd + 1] = "--" .. k .. " " .. sh_quote(tostring(v)) end
  cmd = table.concat(cmd, " ")
  local pr = io.popen(cmd .. " 2>&1")
  local out = pr:read("a")
  local ok = pr:close()
  local line = out:match("RESULT ([^\n]*)")
  if not ok or not line then error("benchmark child failed: " .. cmd .. "\n" .. out) end
  local r = {}
  for k, v in line:gmatch("([%w_]+)=(%S+)") do r[k] = tonumber(v) end
  return r
end

local function main()
  local a = parse_args(arg)
  local sizes = {}
  for s in tostring(a.sizes or "1000,10000,100000"):gmatch("[^,]+") do sizes[#sizes + 1] = tonumber(s) end
  local cap = a.cap or 0.5
  local out = a.out or "doc/bench.svg"
  local root = a.dir or "/tmp/mydb-bench-chart"
  local engines = {}
  local have_sqlite = pcall(require, "luasql.sqlite3")
  for e in (a.engines or "pack,loose,memory,sqlite"):gmatch("[^,]+") do
    if not NAMES[e] then error("unknown engine " .. e) end
    if e ~= "sqlite" or have_sqlite then engines[#engines + 1] = e
    else io.stderr:write("chart: SQLite not installed (lua-sql-sqlite3): left out\n") end
  end
  local t0 = now()
  -- us[op][engine][size]
  local us = {}
  for _, op in ipairs(OPS) do us[op] = {} for _, e in ipairs(engines) do us[op][e] = {} end end
  for _, n in ipairs(sizes) do
    for _, e in ipairs(engines) do
      local dir = root .. "/" .. e
      local w = run_versus { engine = e, w = "write", durable = "off", dir = dir, prefill = n,
                             cap = cap }
      local r = run_versus { engine = e, w = "read", durable = "off", dir = dir, n = n, cap = cap,
                             updates = 0 }
      us.put[e][n] = 1e6 / w.put
      us.get[e][n] = 1e6 / r.get
      us.range[e][n] = 1e6 / r.range
      us.scan[e][n] = 1e6 / r.scan
      io.stderr:write(("chart: %-6s %7d records: put %.1f, get %.1f, range %.1f, scan %.2f us (%.0f s)\n")
        :format(e, n, us.put[e][n], us.get[e][n], us.range[e][n], us.scan[e][n], now() - t0))
    end
  end
  os.execute("rm -rf " .. sh_quote(root))

  -- One data file per operation: size, then a column per engine.
  os.execute("mkdir -p " .. sh_quote(root))
  for _, op in ipairs(OPS) do
    local f = assert(io.open(root .. "/" .. op .. ".dat", "w"))
    local head = { "size" }
    for _, e in ipairs(engines) do head[#head + 1] = ('"%s"'):format(NAMES[e]) end
    f:write(table.concat(head, " "), "\n")
    for _, n in ipairs(sizes) do
      local row = { tostring(n) }
      for _, e in ipairs(engines) do row[#row + 1] = ("%.4g"):format(us[op][e][n]) end
      f:write(table.concat(row, " "), "\n")
    end
    f:close()
  end
  -- The table, for the README's text.
  print(("| op (us) | size | %s |"):format(table.concat((function()
    local t = {} for _, e in ipairs(engines) do t[#t + 1] = NAMES[e] end return t end)(), " | ")))
  for _, op in ipairs(OPS) do
    for _, n in ipairs(sizes) do
      local row = {}
      for _, e in ipairs(engines) do row[#row + 1] = ("%.3g"):format(us[op][e][n]) end
      print(("| %s | %d | %s |"):format(op, n, table.concat(row, " | ")))
    end
  end
  local uname = io.popen("uname -srm"):read("l")
  local cpu = io.popen("nproc"):read("l")
  local conditions = ("%s, %s, %s CPUs, Lua %s, %s s per point, one run each")
    :format(os.date("!%Y-%m-%d"), uname, cpu, _VERSION:sub(5), cap)
  local gp = ("gnuplot -e %s %s"):format(sh_quote(("data='%s'; out='%s'; conditions='%s'; n=%d")
    :format(root, out, conditions, #engines)), sh_quote(here .. "/chart.gp"))
  if not os.execute(gp) then error("gnuplot failed (Debian package gnuplot-nox): " .. gp) end
  os.execute("rm -rf " .. sh_quote(root))
  print(("chart: wrote %s (%s) in %.0f s"):format(out, conditions, now() - t0))
end

main()
