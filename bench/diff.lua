--- mydb diff benchmark (issue 18): db:diff and db:key_history cost
-- O(changes), not O(size).
--
--   lua5.4 bench/diff.lua [--rounds R] [--versions V] [--large N] [--dir D]
--
-- 1. diff: a collection of 1,000 and of --large (100,000) ~100 B records
--    (one put_many), then one put that changes one record; the time of
--    db:diff between the two commits, which finds that one record. Cold:
--    a fresh handle each run (its tree and commit caches empty; the store
--    opened by one untimed read first); warm: the same handle again.
--    Target: the large one within 3x of the small one.
-- 2. key_history: --versions (5,000) puts of one key of a --large-record
--    collection, then db:key_history of that key (every version), cold and
--    warm as above. Target: well under a second. Then db:blame of that
--    collection (no target: it walks all those versions, one tree diff each).
-- Pack backend, fsync off. Medians of --rounds (5) runs; every answer is
-- checked (one change; V+1 versions, newest first).
local mydb = require "mydb"
local core = require "mydb.core"

local now = core.monotonic
local here = arg[0]:match("^(.*)/") or "."
local common = dofile(here .. "/common.lua")
local sh_quote, rec_100, median = common.sh_quote, common.rec_100, common.median

local a = common.parse_args(arg)
local ROUNDS = a.rounds or 5
local VERSIONS = a.versions or 5000
local LARGE = a.large or 100000
local DIR = a.dir or "/tmp/mydb-bench-diff"

local T, U, C = "t", "u", "coll"

local function key(i) return ("k%08d"):format(i) end

local function fresh_dir(dir)
  os.execute("rm -rf " .. sh_quote(dir) .. " && mkdir -p " .. sh_quote(dir))
end

local function open(dir) return mydb.open(dir, { fsync = false, backend = "pack" }) end

-- A store with an n-record collection; returns its directory.
local function prefilled(n, name)
  local dir = DIR .. "/" .. name
  fresh_dir(dir)
  local db = open(dir)
  db:init(T)
  local items = {}
  for i = 1, n do items[key(i)] = rec_100(i) end
  db:put_many(T, U, C, items)
  db:close()
  return dir
end

-- Medians of the cold and warm times of fn(db) over ROUNDS fresh handles;
-- check(result) raises on a wrong answer.
local function timed(dir, fn, check)
  local cold, warm = {}, {}
  for _ = 1, ROUNDS do
    local db = open(dir)
    db:resolve(T, "main") -- first touch: opens the tenant's files
    collectgarbage()
    local t0 = now()
    check(fn(db))
    cold[#cold + 1] = now() - t0
    t0 = now()
    check(fn(db))
    warm[#warm + 1] = now() - t0
    db:close()
  end
  return median(cold), median(warm)
end

local function ms(s) return ("%.2f ms"):format(s * 1000) end

local rows = {}

-- ------------------------------------------------------------------- diff

local diff_times = {}
for _, n in ipairs({ 1000, LARGE }) do
  local dir = prefilled(n, "diff" .. n)
  local db = open(dir)
  local from = db:resolve(T, "main")
  local changed = key(n // 2)
  db:put(T, U, C, changed, { changed = true })
  local to = db:resolve(T, "main")
  db:close()
  local cold, warm = timed(dir, function(h) return h:diff(T, from, to) end, function(out)
    assert(#out == 1 and out[1].key == changed and out[1].action == "modified", "wrong diff")
  end)
  diff_times[n] = { cold, warm }
  rows[#rows + 1] = { ("diff: 1 changed record of %d"):format(n), ms(cold), ms(warm), "" }
  os.execute("rm -rf " .. sh_quote(dir))
end
local rc = diff_times[LARGE][1] / diff_times[1000][1]
local rw = diff_times[LARGE][2] / diff_times[1000][2]
rows[#rows + 1] = { ("diff: %d / 1,000 records"):format(LARGE), ("%.2fx"):format(rc), ("%.2fx"):format(rw),
                    "target <= 3x" }

-- ------------------------------------------------------------ key history

do
  local dir = prefilled(LARGE, "history")
  local db = open(dir)
  local k = key(LARGE // 2)
  local t0 = now()
  for i = 1, VERSIONS do db:put(T, U, C, k, { v = i }) end
  local write_s = now() - t0
  db:close()
  local cold, warm = timed(dir, function(h) return h:key_history(T, C, k, { max = VERSIONS + 10 }) end,
    function(h)
      assert(#h == VERSIONS + 1, "wrong history length " .. #h)
      assert(h[1].value.v == VERSIONS and h[#h].action == "added", "wrong history")
    end)
  rows[#rows + 1] = { ("key_history: %d versions of one key, %d records"):format(VERSIONS, LARGE),
                      ms(cold), ms(warm), "target well under 1 s" }
  rows[#rows + 1] = { ("(writing those %d versions)"):format(VERSIONS), ms(write_s), "", "one run" }
  -- blame walks back until every current record is attributed: here the
  -- whole chain, since all but one record date from the first version
  local bc, bw = timed(dir, function(h) return h:blame(T, C) end, function(b)
    assert(b[k] and b[key(1)] and b[k].commit ~= b[key(1)].commit, "wrong blame")
  end)
  rows[#rows + 1] = { ("blame: %d records, %d versions"):format(LARGE, VERSIONS + 1), ms(bc), ms(bw),
                      "no target" }
  os.execute("rm -rf " .. sh_quote(dir))
end

print(("\n## diff and key history (pack, fsync off; medians of %d runs)\n"):format(ROUNDS))
print("| what | cold (fresh handle) | warm (same handle) | note |")
print("|---|---|---|---|")
for _, r in ipairs(rows) do print("| " .. table.concat(r, " | ") .. " |") end
os.execute("rm -rf " .. sh_quote(DIR))
