--- Packed numeric arrays vs plain Lua arrays in mydb's JSON, for 1,000,000
-- numbers (the figures quoted in README.md, "Extending types").
--
--   make all && LUA_PATH='build/lua/?.lua;build/lua/?/init.lua;;' \
--     LUA_CPATH='build/?.so;;' lua5.4 bench/handlers_bench.lua [N] [REPEATS]
--
-- For float64 and int64 numbers: the bytes stored (the ref of an F64Array /
-- I64Array, against the canonical JSON of the same numbers as a plain Lua
-- array, core.encode) and the time to save and to load each way through a
-- db with fsync = false (medians of REPEATS runs, each on a fresh store; the
-- load runs on a second handle, so it reads and verifies the files rather
-- than the first handle's cache).
local mydb = require "mydb"
local core = require "mydb.core"
local F64Array = require "mydb.handlers.f64array"
local I64Array = require "mydb.handlers.i64array"

local N = tonumber(arg and arg[1]) or 1000000
local REPEATS = tonumber(arg and arg[2]) or 3
local now = core.monotonic

mydb.handlers.register(F64Array)
mydb.handlers.register(I64Array)

-- Deterministic numbers: floats with full 17-digit mantissas in [0, 1000),
-- integers spread over +-2^40 (about 13 digits).
local function lcg(seed)
  local x = seed
  return function()
    x = (x * 6364136223846793005 + 1442695040888963407) & 0x7fffffffffffffff
    return x
  end
end

local function floats(n)
  local r, t = lcg(1), {}
  for i = 1, n do t[i] = (r() >> 11) * 0x1p-53 * 1000 end
  return t
end

local function ints(n)
  local r, t = lcg(2), {}
  for i = 1, n do t[i] = (r() >> 22) - (1 << 40) end
  return t
end

local function median(xs)
  table.sort(xs)
  return xs[(#xs + 1) // 2]
end

local function rmrf(dir) os.execute("rm -rf '" .. dir .. "'") end

-- Saves value, loads it on a second handle; returns save and load seconds.
local function save_load(value, check)
  local root = os.tmpname()
  os.remove(root)
  local db = mydb.open(root, { fsync = false })
  db:init("t")
  collectgarbage()
  local t0 = now()
  db:save("t", "u", "e", value)
  local t1 = now()
  local db2 = mydb.open(root, { fsync = false })
  collectgarbage()
  local t2 = now()
  local got = db2:load("t", "e")
  local t3 = now()
  check(got)
  db:close()
  db2:close()
  rmrf(root)
  return t1 - t0, t3 - t2
end

local function run(label, list, Array)
  local arr = Array.new(list)
  local ref_bytes = #Array.serialize_to_bytes(arr)
  local json_bytes = #core.encode(list)
  local rows = {}
  for _, way in ipairs({ { Array.tag .. " (ref)", arr }, { "plain array (JSON)", list } }) do
    local saves, loads = {}, {}
    for r = 1, REPEATS do
      saves[r], loads[r] = save_load(way[2], function(got)
        assert(#got == #list and got[#list] == list[#list], "round trip failed")
      end)
    end
    rows[#rows + 1] = { way[1], median(saves), median(loads) }
  end
  print(("%s, %d numbers"):format(label, #list))
  print(("  stored bytes: %s ref %d (%.2f MB), JSON %d (%.2f MB): %.2fx smaller")
    :format(Array.tag, ref_bytes, ref_bytes / 1e6, json_bytes, json_bytes / 1e6, json_bytes / ref_bytes))
  for _, row in ipairs(rows) do
    print(("  %-22s save %7.1f ms   load %7.1f ms"):format(row[1], row[2] * 1e3, row[3] * 1e3))
  end
  print(("  save %.1fx faster, load %.1fx faster with %s")
    :format(rows[2][2] / rows[1][2], rows[2][3] / rows[1][3], Array.tag))
end

local uname = io.popen("uname -srm"):read("l")
local cpus = io.popen("nproc"):read("l")
print(("mydb %s, %s, %s CPUs, Lua %s; medians of %d runs, fsync off")
  :format(core._VERSION, uname, cpus, _VERSION:sub(5), REPEATS))
run("float64", floats(N), F64Array)
run("int64", ints(N), I64Array)
