--- The postgres backend beside loose and pack, and beside its limit: puts/s
-- and gets/s, and a bare libpq round trip (SELECT 1, measured from C by
-- build/pgping) on the same server.
--
--   tools/pgcluster run lua5.4 bench/postgres.lua [--rounds R] [--n N]
--
-- (make bench runs it so, with the cluster's fsync on.) Each round measures
-- every engine in turn (engines interleaved); each cell is the median of
-- the rounds. put: db:put of a ~100 B record to a key of its own, fsync on;
-- get: db:get of one of those records, cache on (the verified-object
-- cache: what a reader sees) and off (every read reaches the store).
-- postgres runs over the Unix socket and over TCP (127.0.0.1).
local core = require "mydb.core"
local mydb = require "mydb"

local now = core.monotonic
local common = dofile((arg[0]:match("^(.*)/") or ".") .. "/common.lua")
local rec_100 = common.rec_100

local rounds, n = 5, 300
for i = 1, #arg do
  if arg[i] == "--rounds" then rounds = tonumber(arg[i + 1]) end
  if arg[i] == "--n" then n = tonumber(arg[i + 1]) end
end

if not os.getenv("PGHOST") then
  print("bench/postgres.lua: no server (run it under tools/pgcluster run; make bench does)")
  return
end

local tmp = os.tmpname()
os.remove(tmp)
os.execute("mkdir -p " .. tmp)

local tcp = ("postgresql://%s@127.0.0.1:%s/%s"):format(os.getenv("PGUSER"), os.getenv("PGPORT"),
  os.getenv("PGDATABASE") or "postgres")
local engines = {
  { name = "loose", open = function(r, o) o.backend = "loose"; return mydb.open(tmp .. "/loose" .. r, o) end },
  { name = "pack", open = function(r, o) o.backend = "pack"; return mydb.open(tmp .. "/pack" .. r, o) end },
  { name = "postgres (socket)", open = function(r, o) o.backend = "postgres"; return mydb.open("bench-sock" .. r, o) end },
  { name = "postgres (tcp)", open = function(r, o) return mydb.open(tcp .. "?schema=bench_tcp" .. r, o) end },
}

local function median(t)
  table.sort(t)
  return t[(#t + 1) // 2]
end

local res = {}
for _, e in ipairs(engines) do res[e.name] = { put = {}, get = {}, get_nc = {} } end
for r = 1, rounds do
  for _, e in ipairs(engines) do
    local db = e.open(r, { fsync = true })
    db:init("t")
    local t0 = now()
    for i = 1, n do db:put("t", "u", "c", ("k%06d"):format(i), rec_100(i)) end
    local put = n / (now() - t0)
    t0 = now()
    for i = 1, n * 3 do db:get("t", "c", ("k%06d"):format((i % n) + 1)) end
    local get = n * 3 / (now() - t0)
    db:close()
    db = e.open(r, { fsync = true, cache_bytes = 0 })
    t0 = now()
    for i = 1, n do db:get("t", "c", ("k%06d"):format(i)) end
    local get_nc = n / (now() - t0)
    db:close()
    local x = res[e.name]
    x.put[#x.put + 1], x.get[#x.get + 1], x.get_nc[#x.get_nc + 1] = put, get, get_nc
  end
end

local function ping(conninfo)
  local f = io.popen(("build/pgping '%s' 2000"):format(conninfo))
  local out = f:read("a")
  f:close()
  return tonumber(out)
end
local ns_sock = ping("")
local ns_tcp = ping(tcp)

print(("postgres backend (%d rounds x %d records, medians; server fsync %s)"):format(rounds, n,
  os.getenv("PGCLUSTER_FSYNC") or "off"))
print(("%-20s %10s %14s %14s"):format("engine", "puts/s", "gets/s cache", "gets/s no cache"))
for _, e in ipairs(engines) do
  local x = res[e.name]
  print(("%-20s %10.0f %14.0f %14.0f"):format(e.name, median(x.put), median(x.get), median(x.get_nc)))
end
print(("%-20s %10s %14.0f   (SELECT 1 round trips/s from C, libpq)"):format("limit: socket", "", ns_sock and 1e9 / ns_sock or 0))
print(("%-20s %10s %14.0f"):format("limit: tcp", "", ns_tcp and 1e9 / ns_tcp or 0))
os.execute("rm -rf " .. tmp)
