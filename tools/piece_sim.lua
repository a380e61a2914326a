-- tools/piece_sim.lua: simulates candidate piece formats for record
-- collections (issue 13) and prints what one update of a 100-byte record
-- costs: history kept, pieces written, bytes hashed, leaf sizes, height,
-- scan cost, and for delta-stored variants the read amplification.
--
--   lua5.4 tools/piece_sim.lua [records=100000] [updates=2000] [seed=1]
--
-- Pure Lua, no mydb code. Keys are random, so the hash of each key (in key
-- order) is an independent uniform number: the simulation draws those
-- numbers instead of hashing 16-byte keys. Updates replace a value by one of
-- the same size, so piece boundaries (which depend on keys, or on sizes) do
-- not move: an update rewrites exactly the pieces on its root-to-leaf path.
local N = tonumber(arg[1]) or 100000
local UPDATES = tonumber(arg[2]) or 2000
local SEED = tonumber(arg[3]) or 1
local KEY, VAL = 16, 100

-- ------------------------------------------------------------ encodings
local function digits(n) return #tostring(n) end
local function varint(n) local b = 1; while n >= 128 do n = n >> 7; b = b + 1 end; return b end

local enc = {
  -- today: {"leaf":[["k",{...}],...]}, {"node":[["k","hex",count],...]}
  json = {
    leaf_head = 11, node_head = 11,
    leaf_entry = function() return 2 + KEY + 2 + VAL + 1 + 1 end,
    node_entry = function(count) return 2 + KEY + 3 + 64 + 2 + digits(count) + 1 + 1 end,
    leaf_delta_payload = VAL, node_delta_payload = 64,
  },
  -- leaves unchanged (JSON), inner pieces binary: varint klen, key, 32-byte
  -- digest, varint count.
  binnode = {
    leaf_head = 11, node_head = 2,
    leaf_entry = function() return 2 + KEY + 2 + VAL + 1 + 1 end,
    node_entry = function(count) return varint(KEY) + KEY + 32 + varint(count) end,
    leaf_delta_payload = VAL, node_delta_payload = 32,
  },
}

-- ------------------------------------------------------------ chunking rules
-- A rule takes items {size=, h=} (h uniform in [0,1), h2 a second one) and
-- a level, and returns an array of chunk end indices.
local function mask_rule(leaf_bits, node_bits)
  return function(items, level)
    -- mydb today: item i STARTS a new piece when the low bits of its first
    -- key's hash are zero; bits grow by node_bits a level (nested).
    local p = 2.0 ^ -(leaf_bits + node_bits * level)
    local ends = {}
    for i = 2, #items do
      if items[i].h < p then ends[#ends + 1] = i - 1 end
    end
    ends[#ends + 1] = #items
    return ends
  end
end

-- Dolt keySplitter (go/store/prolly/tree/node_splitter.go): after appending
-- an item, size = bytes in the chunk so far; no split under min, forced split
-- over max, else split when hash < (CDF(size) - CDF(size - this)) /
-- (1 - CDF(size - this)), CDF Weibull with k = 4, lambda = target. Dolt:
-- target 4096, min 512, max 16384; the hash is salted per level.
local function weibull_rule(target, min, max)
  local function cdf(x) return 1 - math.exp(-((x / target) ^ 4)) end
  return function(items, level)
    local ends, size = {}, 0
    for i = 1, #items do
      local this = items[i].size
      size = size + this
      local split = false
      if size > max then split = true
      elseif size >= min then
        local s, e = cdf(size - this), cdf(size)
        local d = 1 - s
        local hl = items[i].hl
        if not hl[level + 1] then hl[level + 1] = math.random() end -- salted hash of a deeper level
        split = d <= 0 or hl[level + 1] < (e - s) / d
      end
      if split then ends[#ends + 1] = i; size = 0 end
    end
    if ends[#ends] ~= #items then ends[#ends + 1] = #items end
    return ends
  end
end

-- ------------------------------------------------------------ tree build
math.randomseed(SEED)
local records = {}
for i = 1, N do
  records[i] = { h = math.random(), hl = { math.random(), math.random(), math.random() } }
end

-- levels[l] = { sizes = {piece bytes}, parent_of_item = {item -> piece},
-- count = {records under piece} }
local function build(rule, e)
  local levels = {}
  local items = {}
  for i = 1, N do items[i] = { size = e.leaf_entry(), h = records[i].h, hl = records[i].hl, count = 1 } end
  local level = 0
  while true do
    local ends = rule(items, level)
    local L = { sizes = {}, piece_of = {}, count = {}, n = #ends }
    local nxt, start = {}, 1
    for p, last in ipairs(ends) do
      local bytes, cnt = (level == 0) and e.leaf_head or e.node_head, 0
      for i = start, last do
        bytes = bytes + items[i].size
        cnt = cnt + items[i].count
        L.piece_of[i] = p
      end
      L.sizes[p], L.count[p] = bytes, cnt
      nxt[p] = { h = items[start].h, hl = items[start].hl, count = cnt }
      start = last + 1
    end
    for p = 1, #nxt do nxt[p].size = e.node_entry(nxt[p].count) end
    levels[level + 1] = L
    if #ends == 1 then break end
    items = nxt
    level = level + 1
  end
  return levels
end

-- ------------------------------------------------------------ one candidate
local function pct(sorted, q) return sorted[math.max(1, math.ceil(#sorted * q))] end

local function run(name, rule, e, chain_limit)
  local levels = build(rule, e)
  local H = #levels
  local leaves = levels[1]
  local ls = {}
  local sum = 0
  for p = 1, leaves.n do ls[p] = leaves.sizes[p]; sum = sum + ls[p] end
  table.sort(ls)
  local pieces = 0
  for l = 1, H do pieces = pieces + levels[l].n end

  -- delta state per piece: depth and bytes to read to reconstruct.
  local depth, chain = {}, {}
  for l = 1, H do depth[l], chain[l] = {}, {} end
  local stored, full_written, root_bytes = 0, 0, 0
  math.randomseed(SEED + 7)
  for _ = 1, UPDATES do
    local idx = math.random(N)
    for l = 1, H do
      idx = levels[l].piece_of[idx]
      local full = levels[l].sizes[idx]
      full_written = full_written + full
      if l == H then root_bytes = root_bytes + full end
      if chain_limit and l < H then
        local d = depth[l][idx] or 0
        -- delta: base digest, offset and length varints, the changed bytes.
        local delta = 32 + 3 + 2 + ((l == 1) and e.leaf_delta_payload or e.node_delta_payload)
        -- as git does, a delta is kept only when it is well under the full
        -- piece (here: under a quarter), and chains are bounded.
        if d < chain_limit and delta * 4 < full then
          stored = stored + delta
          depth[l][idx] = d + 1
          chain[l][idx] = (chain[l][idx] or full) + delta
        else
          stored = stored + full
          depth[l][idx], chain[l][idx] = 0, full
        end
      else
        stored = stored + full -- the root is embedded in the snapshot: full
      end
    end
  end
  -- read amplification over pieces that were rewritten at least once.
  local amp_sum, amp_n, amp_max, worst_bytes = 0, 0, 1, 0
  for l = 1, H - 1 do
    for p, c in pairs(chain[l]) do
      local r = c / levels[l].sizes[p]
      amp_sum, amp_n = amp_sum + r, amp_n + 1
      if r > amp_max then amp_max = r end
      if c > worst_bytes then worst_bytes = c end
    end
  end
  local U = UPDATES
  return {
    name = name, history = stored / U, pieces = H, hashed = full_written / U,
    root = root_bytes / U, max_leaf = ls[#ls], mean_leaf = sum / leaves.n,
    p99_leaf = pct(ls, 0.99), height = H,
    scan = 1000 * pieces / N,
    amp_mean = amp_n > 0 and amp_sum / amp_n or 1, amp_max = amp_max, worst_bytes = worst_bytes,
    delta = chain_limit ~= nil,
  }
end

local candidates = {
  { "today: mask 5/5, JSON+hex", mask_rule(5, 5), enc.json },
  { "mask 4/5, JSON+hex", mask_rule(4, 5), enc.json },
  { "mask 3/5, JSON+hex", mask_rule(3, 5), enc.json },
  { "mask 4/5, binary inner", mask_rule(4, 5), enc.binnode },
  { "mask 3/6, binary inner", mask_rule(3, 6), enc.binnode },
  { "weibull 4K (Dolt), JSON+hex", weibull_rule(4096, 512, 16384), enc.json },
  { "weibull 1K/128/4K, JSON+hex", weibull_rule(1024, 128, 4096), enc.json },
  { "weibull 1K/128/4K, binary inner", weibull_rule(1024, 128, 4096), enc.binnode },
  { "weibull 2K/256/8K, binary inner", weibull_rule(2048, 256, 8192), enc.binnode },
  { "weibull 512/64/2K, binary inner", weibull_rule(512, 64, 2048), enc.binnode },
  { "today + delta chain 8", mask_rule(5, 5), enc.json, 8 },
  { "today + delta chain 16", mask_rule(5, 5), enc.json, 16 },
  { "weibull 1K bin + delta 8", weibull_rule(1024, 128, 4096), enc.binnode, 8 },
  { "weibull 1K bin + delta 16", weibull_rule(1024, 128, 4096), enc.binnode, 16 },
  { "weibull 2K bin + delta 16", weibull_rule(2048, 256, 8192), enc.binnode, 16 },
  { "weibull 4K bin + delta 16", weibull_rule(4096, 512, 16384), enc.binnode, 16 },
}

print(string.format("# %d records of %d B values, %d updates of random existing keys, seed %d", N, VAL, UPDATES, SEED))
print("| candidate | history B/update | root B (in it) | pieces/put | hashed B/put | max leaf | mean leaf | p99 leaf | height | pieces/1k rec scanned | read amp mean/worst |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
for _, c in ipairs(candidates) do
  local r = run(c[1], c[2], c[3], c[4])
  print(string.format("| %s | %.0f | %.0f | %d | %.0f | %d | %.0f | %d | %d | %.1f | %s |",
    r.name, r.history, r.root, r.pieces, r.hashed, r.max_leaf, r.mean_leaf, r.p99_leaf, r.height, r.scan,
    r.delta and string.format("%.2fx / %.2fx (%d B)", r.amp_mean, r.amp_max, r.worst_bytes) or "1x"))
end
