--- bench/puts.lua: microseconds per db:put on the memory backend (no I/O:
-- the CPU cost of a put), in a collection of --n records (default
-- 100,000, ~100 B each, random keys): replacing a random record, and
-- putting a new key. Prints the median of --rounds (default 5) runs of
-- --puts (default 3,000) puts each, in CPU time (os.clock: the process's
-- own, steadier than the wall clock on a shared machine) and wall time.
--
--   lua5.4 bench/puts.lua [--n N] [--puts P] [--rounds R]
local here = arg[0]:match("^(.*)/[^/]*$") or "."
local common = dofile(here .. "/common.lua")
local mydb = require "mydb"
local core = require "mydb.core"

local a = common.parse_args(arg)
local n, puts, rounds = a.n or 100000, a.puts or 3000, a.rounds or 5

local function median(t)
  table.sort(t)
  return t[(#t + 1) // 2]
end

local db = mydb.open("bench-puts-" .. os.time(), { backend = "memory", fsync = false })
db:init("t")
local x = 12345
local function rand(m)
  x = (x * 1103515245 + 12345) % 2147483648
  return (x >> 4) % m + 1
end
local keys, items = {}, {}
for i = 1, n do
  local k = ("k%09d"):format(rand(1000000000))
  keys[i], items[k] = k, common.rec_100(i)
end
for i = 1, n, 10000 do
  local chunk = {}
  for j = i, math.min(n, i + 9999) do chunk[keys[j]] = items[keys[j]] end
  db:put_many("t", "u", "c", chunk)
end

local function run(new_keys)
  local cpu, wall = {}, {}
  for r = 1, rounds do
    local c0, t0 = os.clock(), core.monotonic()
    for i = 1, puts do
      local k = new_keys and ("n%d-%09d"):format(r, rand(1000000000)) or keys[rand(n)]
      db:put("t", "u", "c", k, common.rec_100(i + r))
    end
    cpu[r] = (os.clock() - c0) / puts * 1e6
    wall[r] = (core.monotonic() - t0) / puts * 1e6
  end
  return median(cpu), median(wall)
end

local rc, rw = run(false)
local nc, nw = run(true)
print(("memory backend, %d records, us per put (CPU / wall): replace a random record %.1f / %.1f, new key %.1f / %.1f")
  :format(n, rc, rw, nc, nw))
db:close()
