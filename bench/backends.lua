--- mydb storage backends benchmark: saves/s and puts/s for the loose and
-- pack backends (and memory, for reference), fsync off and on, with 1 and
-- 4 writer processes on one tenant.
--
--   lua5.4 bench/backends.lua [--seconds S] [--dir D] [--backends loose,pack]
--
-- Each cell: a fresh store; W writer processes start together (a shared
-- start time on the monotonic clock) and run for S seconds (default 2);
-- the rate is the operations all of them completed divided by S.
--   save: db:save of a ~1 KiB document to an entry of its own (w1-000001 ...)
--   put:  db:put of a ~100 B record into the writer's own collection
-- Memory stores live in one process: its rows have 1 writer only.
local core = require "mydb.core"

local now = core.monotonic
local common = dofile((arg[0]:match("^(.*)/") or ".") .. "/common.lua")
local sh_quote, parse_args = common.sh_quote, common.parse_args
local doc_1k, rec_100 = common.doc_1k, common.rec_100





-- ------------------------------------------------------------ a writer

local function writer(a)
  local mydb = require "mydb"
  local db = mydb.open(a.dir, { fsync = a.fsync == "on", backend = a.backend })
  local me, op, t0, t1 = a.me, a.op, a.start, a.start + a.seconds
  while now() < t0 do end -- the common start
  local n = 0
  if op == "save" then
    while now() < t1 do
      n = n + 1
      db:save("t", "w" .. me, ("w%d-%06d"):format(me, n), doc_1k(n))
    end
  else
    while now() < t1 do
      n = n + 1
      db:put("t", "w" .. me, "c" .. me, ("k%07d"):format(n), rec_100(n))
    end
  end
  db:close()
  io.write("COUNT ", n, "\n")
end

-- ------------------------------------------------------------ a cell

local function cell(backend, fsync, writers, op, seconds, dir)
  os.execute("rm -rf " .. sh_quote(dir))
  local mydb = require "mydb"
  local db = mydb.open(dir, { fsync = false, backend = backend })
  db:init("t")
  if backend == "memory" then -- in this process
    local a = { dir = dir, fsync = fsync, backend = backend, me = 1, op = op,
                start = now() + 0.05, seconds = seconds }
    local out = {}
    local real_write = io.write
    io.write = function(...) for _, s in ipairs({ ... }) do out[#out + 1] = tostring(s) end end
    writer(a)
    io.write = real_write
    db:close()
    return tonumber(table.concat(out):match("COUNT (%d+)")) / seconds
  end
  db:close()
  local start = now() + 0.4 + 0.05 * writers
  local procs = {}
  for w = 1, writers do
    local cmd = table.concat({ "lua5.4", sh_quote(arg[0]), "--writer", "1", "--dir", sh_quote(dir),
      "--backend", backend, "--fsync", fsync, "--me", w, "--op", op,
      "--start", ("%.6f"):format(start), "--seconds", seconds }, " ")
    procs[w] = io.popen(cmd .. " 2>&1")
  end
  local total = 0
  for w = 1, writers do
    local out = procs[w]:read("a")
    local ok = procs[w]:close()
    local n = out:match("COUNT (%d+)")
    if not ok or not n then error("writer failed: " .. out) end
    total = total + tonumber(n)
  end
  os.execute("rm -rf " .. sh_quote(dir))
  return total / seconds
end

local function main()
  local a = parse_args(arg)
  if a.writer then return writer(a) end
  local seconds = a.seconds or 2
  local dir = (a.dir or "/tmp/mydb-bench-backends") .. "/store"
  local backends = {}
  for b in (a.backends or "loose,pack,memory"):gmatch("[^,]+") do backends[#backends + 1] = b end
  print(("mydb backends: %s s per cell, one tenant; ops/s of all writers together"):format(seconds))
  print()
  print("| backend | fsync | writers | saves/s | puts/s |")
  print("|---|---|---:|---:|---:|")
  local results = {}
  for _, fsync in ipairs({ "off", "on" }) do
    for _, backend in ipairs(backends) do
      for _, writers in ipairs({ 1, 4 }) do
        if backend ~= "memory" or writers == 1 then
          local s = cell(backend, fsync, writers, "save", seconds, dir)
          local p = cell(backend, fsync, writers, "put", seconds, dir)
          results[#results + 1] = { backend = backend, fsync = fsync, writers = writers, save = s, put = p }
          print(("| %s | %s | %d | %.0f | %.0f |"):format(backend, fsync, writers, s, p))
          io.stdout:flush()
        end
      end
    end
  end
  -- pack vs loose with fsync on
  local function find(b, f, w)
    for _, r in ipairs(results) do
      if r.backend == b and r.fsync == f and r.writers == w then return r end
    end
  end
  print()
  for _, w in ipairs({ 1, 4 }) do
    local l, p = find("loose", "on", w), find("pack", "on", w)
    if l and p then
      print(("fsync on, %d writer%s: pack/loose = %.1fx saves, %.1fx puts"):format(
        w, w > 1 and "s" or "", p.save / l.save, p.put / l.put))
    end
  end
  os.execute("rm -rf " .. sh_quote(dir:match("^(.*)/store$")))
end

main()
