--- mydb merge benchmark (issue 18): a three-way merge costs O(changes),
-- not O(size).
--
--   lua5.4 bench/merge.lua [--quick] [--rounds R] [--changes C] [--dir D]
--
-- For a collection of 1,000 and of 100,000 ~100 B records (pack, fsync
-- off, one put_many), each round branches f from main, changes --changes
-- (default 100) records on main and as many other records on f (one
-- put_many each), then times db:merge(f) into main: a three-way merge
-- that writes one commit with two parents. The merge runs cold (the
-- handle's decoded pieces, collection infos and commits dropped before
-- it); reported with the pieces the merge decoded in Lua (the node
-- cache's growth: the tree diffs of the commit states and of the
-- collection, the reads of base records; the C tree's writes keep their
-- own cache).
-- Every merge's result is checked (both sides' changes present). Medians
-- of --rounds (default 5); the last row is the 100,000 / 1,000 ratio.
local mydb = require "mydb"
local core = require "mydb.core"
local collection = require "mydb.collection"
local colinfo = require "mydb.colinfo"
local commits = require "mydb.commits"

local here = arg[0]:match("^(.*)/") or "."
local common = dofile(here .. "/common.lua")

local args = common.parse_args(arg)
local ROUNDS = args.rounds or (args.quick and 3 or 5)
local CHANGES = args.changes or 100
local DIR = args.dir or "/tmp/mydb-bench-merge"
local SIZES = { 1000, 100000 }
local T, U, C = "t", "u", "coll"
local now = core.monotonic

local function key(i) return ("k%08d"):format(i) end

local function nodes_cached(db)
  local n = 0
  for _, m in pairs(db._nodes.map) do for _ in pairs(m) do n = n + 1 end end
  return n
end

local function measure(size)
  if 2 * CHANGES > size then error(("--changes %d: two sides need %d of the %d records"):format(
    CHANGES, 2 * CHANGES, size)) end
  local root = DIR .. "/n" .. size
  os.execute("rm -rf " .. common.sh_quote(root))
  local db = mydb.open(root, { backend = "pack", fsync = false })
  db:init(T)
  local items = {}
  for i = 1, size do items[key(i)] = common.rec_100(i) end
  db:put_many(T, U, C, items)
  items = nil
  local rng = common.rng(size)
  local times, pieces = {}, {}
  for r = 1, ROUNDS do
    local name = "f" .. r
    db:branch(T, name)
    -- CHANGES distinct keys for each side, disjoint
    local picked, mine, theirs = {}, {}, {}
    while #theirs < CHANGES do
      local k = key(rng(size) + 1)
      if not picked[k] then
        picked[k] = true
        local side = #mine < CHANGES and mine or theirs
        side[#side + 1] = k
      end
    end
    local function edit(keys, tag)
      local batch = {}
      for _, k in ipairs(keys) do
        local v = common.rec_100(0)
        v.note, v.name = tag .. r, k
        batch[k] = v
      end
      db:put_many(T, U, C, batch)
    end
    edit(mine, "main")
    db:checkout(T, name)
    edit(theirs, "feature")
    db:checkout(T, "main")
    -- cold: nothing decoded or parsed is kept from the edits
    db._nodes = collection.node_cache()
    colinfo.reset(db)
    db._commits = commits.memo()
    collectgarbage()
    local t0 = now()
    local res = db:merge(T, U, name)
    times[r] = now() - t0
    pieces[r] = nodes_cached(db)
    assert(not res.fast_forward and res.resolved == 0, "not a three-way merge")
    assert(#db:log(T, { max = 1 })[1].parents == 2, "the merge commit has not two parents")
    assert(db:get(T, C, mine[1]).note == "main" .. r, "ours lost")
    assert(db:get(T, C, theirs[#theirs]).note == "feature" .. r, "theirs lost")
    db:delete_branch(T, name)
  end
  -- for scale: what reading every record once costs (cold), which a merge
  -- that walked the collection would pay at least
  db._nodes = collection.node_cache()
  colinfo.reset(db)
  collectgarbage()
  local t0, n = now(), 0
  for _ in db:raw_records(T, C) do n = n + 1 end
  local scan = now() - t0
  assert(n == size, "records lost")
  db:close()
  os.execute("rm -rf " .. common.sh_quote(root))
  return common.median(times), common.median(pieces), scan
end

os.execute("mkdir -p " .. common.sh_quote(DIR))
print(("## merge: two branches each changing %d records (pack, fsync off, cold, median of %d)"):format(
  CHANGES, ROUNDS))
print("")
local rows = {}
for i, size in ipairs(SIZES) do rows[i] = { measure(size) } end
print("| records | merge ms | pieces decoded (Lua) | one full scan ms (for scale) |")
print("|---:|---:|---:|---:|")
for i, size in ipairs(SIZES) do
  local t, p, scan = table.unpack(rows[i])
  print(("| %d | %.1f | %d | %.1f |"):format(size, t * 1000, p, scan * 1000))
end
print(("| ratio 100,000 / 1,000 (size: 100x) | %.2fx | %.2fx | %.2fx |"):format(rows[2][1] / rows[1][1],
  rows[2][2] / math.max(1, rows[1][2]), rows[2][3] / rows[1][3]))
