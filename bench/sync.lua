--- mydb sync benchmark (issue 19): only what the other side lacks travels.
--
--   lua5.4 bench/sync.lua [--rounds R] [--large N] [--dir D]
--
-- A source store with one collection of --large (100,000) ~100 B records
-- (one put_many). Rows: mydb.clone of it (every object verified by digest
-- on arrival); a push of one put to a clone (the changed pieces, the
-- snapshot, the state's path and the commit); a no-op fetch (the refs
-- read, nothing sent). Pack backend on both sides, fsync off. Medians of
-- --rounds (5) runs; every result is checked (objects, the record, the
-- heads).
local mydb = require "mydb"
local core = require "mydb.core"

local now = core.monotonic
local here = arg[0]:match("^(.*)/") or "."
local common = dofile(here .. "/common.lua")
local sh_quote, rec_100, median = common.sh_quote, common.rec_100, common.median

local a = common.parse_args(arg)
local ROUNDS = a.rounds or 5
local LARGE = a.large or 100000
local DIR = a.dir or "/tmp/mydb-bench-sync"

local T, U, C = "t", "u", "coll"
local function key(i) return ("k%08d"):format(i) end
local function open(dir) return mydb.open(dir, { fsync = false, backend = "pack" }) end

os.execute("rm -rf " .. sh_quote(DIR) .. " && mkdir -p " .. sh_quote(DIR))
local src_dir = DIR .. "/src"
local src = open(src_dir)
src:init(T)
local items = {}
for i = 1, LARGE do items[key(i)] = rec_100(i) end
src:put_many(T, U, C, items)
items = nil

local clone_s, push_s, fetch_s, clone_rep, push_rep = {}, {}, {}, nil, nil
for round = 1, ROUNDS do
  local dst_dir = DIR .. "/clone" .. round
  collectgarbage()
  local t0 = now()
  local c, rep = mydb.clone(src_dir, dst_dir, { backend = "pack", fsync = false })
  clone_s[#clone_s + 1] = now() - t0
  assert(rep.tenants == 1 and rep.objects > LARGE // 1000, "wrong clone")
  clone_rep = rep
  c:put(T, U, C, key(LARGE // 2 + round), { changed = round })
  t0 = now()
  local p = c:push(T, "origin")
  push_s[#push_s + 1] = now() - t0
  assert(p.commits == 1 and p.objects < 20, "push sent too much: " .. p.objects)
  assert(src:get(T, C, key(LARGE // 2 + round)).changed == round, "push did not land")
  push_rep = p
  t0 = now()
  local f = c:fetch(T, "origin")
  fetch_s[#fetch_s + 1] = now() - t0
  assert(f.objects == 0 and #f.updated == 0, "no-op fetch moved something")
  c:close()
  os.execute("rm -rf " .. sh_quote(dst_dir))
end
src:close()
os.execute("rm -rf " .. sh_quote(DIR))

local function ms(s) return ("%.2f ms"):format(s * 1000) end
print(("\n## sync (pack, fsync off; medians of %d runs)\n"):format(ROUNDS))
print("| what | time | sent |")
print("|---|---|---|")
print(("| clone of a %d-record collection | %s | %d objects, %.1f MB |"):format(LARGE, ms(median(clone_s)),
  clone_rep.objects, clone_rep.bytes / 1e6))
print(("| push of one put into it | %s | %d objects, %d bytes |"):format(ms(median(push_s)), push_rep.objects,
  push_rep.bytes))
print(("| no-op fetch | %s | 0 objects |"):format(ms(median(fetch_s))))
