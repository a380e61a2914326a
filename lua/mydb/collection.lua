--- mydb.collection: record collections stored as prolly trees.
--
-- A collection is a sorted map key -> record, cut into content-addressed
-- pieces (doc/FORMAT.md, "Record collections"). Piece boundaries depend only
-- on the keys, so one set of records always gives the same pieces, and a put
-- rewrites only the pieces on one root-to-leaf path (plus, at most, the
-- neighbour it merges with).
--
-- Records are kept as their canonical JSON text ("raw"); the caller encodes
-- and decodes them. A tree handle `t` is {store=, tenant=, nodes=cache,
-- c=session}: writes (update, update_many, build, flush) and point reads
-- (get) run in C (src/lua/ltree.c, core.tree: a node cache per store
-- handle, pieces spliced and hashed once), and so do range and iter
-- (src/lua/ltree_read.c, core.tree_cursor); leaves and load_node (diffs,
-- changes) walk Lua nodes.
-- The Lua implementation of the writes is kept as collection.oracle (its
-- handles also hold pending={digest=bytes}, built={digest=node}): the
-- specs check the C path against it (spec/tree_c_spec.lua).
local core = require "mydb.core"
local errors = require "mydb.errors"

local collection = {}

-- Piece boundaries (doc/FORMAT.md "Record collections"): a size-based
-- rule after Dolt's node splitter. Items are added to a piece in key order;
-- after each one the piece closes when its size reaches MAX_PIECE, or, once
-- it holds MIN_PIECE, with a probability that rises with its size (a Weibull
-- hazard, k = 4, scale 2 KiB), drawn from a hash of the item's key salted by
-- the level. Pieces come out near 2 KiB (p99 ~3 KiB), never geometric, so
-- the piece a put rewrites is small; and the rule is still a pure function
-- of the ordered items: the same records always give the same pieces.
-- (2 KiB rather than 1: half the pieces to read in a scan or a range - 1.6x
-- the records/s measured - for 7.0 instead of 4.7 KiB of history per put
-- without deltas; doc/design/piece-format.md.)
local MIN_PIECE, MAX_PIECE = 256, 8192
local LEAF_ITEM, NODE_ITEM = 0, 40 -- bytes an item adds beyond its key (a
                                   -- leaf's: its value's JSON length)

-- Bounded memo tables: cleared wholesale when full (cheap, and good enough:
-- the values are pure functions of the key).
local function memo(fn, limit)
  local cache, count = {}, 0
  return function(k)
    local v = cache[k]
    if v == nil then
      v = fn(k)
      count = count + 1
      if count > limit then cache, count = {}, 0 end
      cache[k] = v
    end
    return v
  end
end

local chunk_hash = memo(core.chunk_hash, 1 << 18)

-- splitmix64's finalizer: a level's salt mixed into the key's hash, so the
-- levels' boundaries are independent. Integer arithmetic wraps (Lua 5.4).
local function level_hash(key, level)
  local z = chunk_hash(key) + (level + 1) * 0x9E3779B97F4A7C15
  z = (z ~ (z >> 30)) * 0xBF58476D1CE4E5B9
  z = (z ~ (z >> 27)) * 0x94D049BB133111EB
  return (z ~ (z >> 31)) >> 32
end

--- True if a piece of `before` bytes closes after adding the item `key`
-- of `size` bytes at this level (0 = leaves). The split probability is
-- ((s/8)^4 - (b/8)^4) / 2^32: the Weibull hazard with scale 2048 B (2048/8
-- = 256 and 256^4 = 2^32), in integers so that every machine draws the same
-- boundaries.
local function closes(key, level, before, size)
  local s = before + size
  if s < MIN_PIECE then return false end
  if s >= MAX_PIECE then return true end
  local a, b = s // 8, before // 8
  return level_hash(key, level) < a * a * a * a - b * b * b * b
end
collection.closes = closes

-- ------------------------------------------------------------------ pieces

--- A tree handle for one tenant. nodes: a cache shared by the db handle.
-- The root piece lives inside the snapshot, not in objects/: root_digest
-- and root_node (from collection.parse_root) make it reachable.
function collection.tree(store, tenant, nodes, root_digest, root_node, root_bytes)
  local t = { store = store, tenant = tenant, nodes = nodes, pending = {}, built = {}, base = {} }
  if root_digest then
    t.built[root_digest] = root_node
    t.root_digest, t.root_bytes = root_digest, root_bytes
  end
  return t
end

--- A tree handle a caller keeps between writes: t itself while it still
-- fits store and nodes, else a new one. Not reused once core.node_piece
-- changed (spec/piece_format_spec.lua swaps in the Lua writer), since a
-- handle picks its writer once.
function collection.kept_tree(t, store, tenant, nodes)
  if t and t.store == store and t.nodes == nodes and t.node_piece == core.node_piece then
    return t
  end
  t = collection.tree(store, tenant, nodes)
  t.node_piece = core.node_piece
  return t
end

--- A node cache: immutable decoded pieces, map[tenant][digest].
function collection.node_cache(limit)
  -- (pieces are ~1 KiB: 32,768 of them hold about as many bytes as the
  -- 8,192 pieces of ~4 KiB before format 2)
  return { map = {}, count = 0, limit = limit or 32768 }
end

-- (one map per tenant: a lookup builds no "tenant/digest" string)
local function cache_put(nc, tenant, digest, node)
  if nc.count >= nc.limit then nc.map, nc.count = {}, 0 end
  local m = nc.map[tenant]
  if not m then m = {}; nc.map[tenant] = m end
  m[digest] = node
  nc.count = nc.count + 1
end

-- Decodes piece bytes into a node: {leaf=true, keys=, vals=} or
-- {leaf=false, keys=, digests=, counts=}.
local function parse_piece(where, bytes)
  local function corrupt(why)
    errors.raise("corrupt", "collection piece %s is damaged: %s", where, why)
  end
  if core.is_node_piece(bytes) then
    local ok, keys, digests, counts = pcall(core.node_split, bytes)
    if not ok then corrupt(keys.message or tostring(keys)) end
    for i = 2, #keys do
      if keys[i - 1] >= keys[i] then corrupt("keys out of order") end
    end
    return { leaf = false, keys = keys, digests = digests, counts = counts }
  elseif bytes:sub(1, 8) == '{"leaf":' then
    local keys, vals = core.leaf_split(bytes)
    if #keys == 0 then corrupt("empty leaf") end
    for i = 2, #keys do
      if keys[i - 1] >= keys[i] then corrupt("keys out of order") end
    end
    return { leaf = true, keys = keys, vals = vals }
  elseif bytes:sub(1, 8) == '{"node":' then -- an embedded root; stored
    -- inner pieces of a store written before format 2
    local d = core.decode(bytes)
    local list = type(d) == "table" and d.node
    if type(list) ~= "table" or #list == 0 then corrupt("bad node") end
    local keys, digests, counts = {}, {}, {}
    for i, e in ipairs(list) do
      if type(e) ~= "table" or type(e[1]) ~= "string" or not core.digest_valid(e[2])
          or math.type(e[3]) ~= "integer" or e[3] < 1 then
        corrupt("bad node entry " .. i)
      end
      keys[i], digests[i], counts[i] = e[1], e[2], e[3]
      if i > 1 and keys[i - 1] >= keys[i] then corrupt("keys out of order") end
    end
    return { leaf = false, keys = keys, digests = digests, counts = counts }
  end
  corrupt("not a collection piece")
end

collection.parse_piece = parse_piece

--- True if bytes look like a collection piece (not a snapshot).
function collection.is_piece(bytes)
  if core.is_node_piece(bytes) then return true end
  local head = bytes:sub(1, 8)
  return head == '{"leaf":' or head == '{"node":'
end

--- count, root digest, root node of a collection snapshot (the root piece
-- is embedded in it; its digest is that of its bytes).
-- A root stored as an object (an inner root, piece format 2) comes back as
-- its digest with no node (load_node reads it).
function collection.parse_root(snapshot_bytes, where)
  local count, root_bytes, extra, root_ref = core.collection_root(snapshot_bytes)
  if root_ref then return count, root_ref, nil, extra, nil end
  if not root_bytes then return count, nil, nil, extra end
  return count, core.sha256(root_bytes), parse_piece(where, root_bytes), extra, root_bytes
end

local function load_node(t, digest)
  local node = t.built[digest]
  if node then return node end
  local m = t.nodes.map[t.tenant]
  node = m and m[digest]
  if node then return node end
  local pending = t.c and t.c:piece(digest) -- built in C, not flushed yet
  if pending then
    node = parse_piece(digest .. " of tenant '" .. t.tenant .. "'", pending)
    t.built[digest] = node
    return node
  end
  node = parse_piece(digest .. " of tenant '" .. t.tenant .. "'", t.store:read(t.tenant, digest))
  cache_put(t.nodes, t.tenant, digest, node)
  return node
end
collection.load_node = load_node

local function make_leaf(t, keys, vals)
  local bytes, digest = core.leaf_piece(keys, vals)
  t.pending[digest] = bytes
  t.built[digest] = { leaf = true, keys = keys, vals = vals }
  return digest, #keys
end

local function make_node(t, keys, digests, counts)
  local bytes, digest, total = core.node_piece(keys, digests, counts)
  t.pending[digest] = bytes
  t.built[digest] = { leaf = false, keys = keys, digests = digests, counts = counts }
  return digest, total
end

local function slice(a, i, j) return table.move(a, i, j, 1, {}) end

local function append(dst, src, i, j)
  return table.move(src, i, j, #dst + 1, dst)
end

-- A piece being cut at one level: items accumulate until closes() says
-- the piece ends; then it is built and becomes an entry of the level above
-- (first key, digest, count), appended to out = {keys, digests, counts}.
-- (base: the digest of the piece the first piece cut replaces, if any: a
-- backend may store the new piece as the bytes that differ from it)
local function cutter(t, level, out, base)
  local keys, as, bs, n, size = {}, {}, {}, 0, 0
  local extra = level == 0 and LEAF_ITEM or NODE_ITEM
  local ok, od, oc = out[1], out[2], out[3]
  -- (the old pieces the next pieces cut replace, in key order: each piece
  -- cut takes the first as its base)
  local bases = { base }
  local function close()
    local d, count
    if level == 0 then d, count = make_leaf(t, keys, as)
    else d, count = make_node(t, keys, as, bs) end
    local m = #ok + 1
    ok[m], od[m], oc[m] = keys[1], d, count
    local b = table.remove(bases, 1)
    if b and b ~= d then
      -- (a piece built earlier in this write is not stored: its own base)
      if t.pending[b] then b = t.base[b] end
      t.base[d] = b
    end
    keys, as, bs, n, size = {}, {}, {}, 0, 0
  end
  local c = {}
  --- Adds an item; true when it closed the piece.
  function c.add(key, a, b)
    n = n + 1
    keys[n], as[n], bs[n] = key, a, b
    local before = size
    local item = #key + extra + (level == 0 and #a or 0)
    size = before + item
    if closes(key, level, before, item) then close(); return true end
    return false
  end
  --- Adds the last item of the old piece d (count records below) whose
  -- other items the cut holds: when it closes the piece, that piece is d,
  -- which goes to out as it is (not built again) and the next piece cut
  -- has no base until c.step gives one. True when it closed.
  function c.add_old_last(key, a, b, d, count)
    n = n + 1
    keys[n], as[n], bs[n] = key, a, b
    local before = size
    local item = #key + extra + (level == 0 and #a or 0)
    size = before + item
    if not closes(key, level, before, item) then return false end
    local m = #ok + 1
    ok[m], od[m], oc[m] = keys[1], d, count
    keys, as, bs, n, size = {}, {}, {}, 0, 0
    bases = {} -- (d was the base: it stays)
    return true
  end
  --- The cut went on into the old piece d: it is the base of a piece
  -- cut after those the bases before it go to (so every old piece a recut
  -- replaces is some new piece's base, unless more old pieces were merged
  -- than new ones cut; ltree.c cut_step, CUT_BASES).
  function c.step(d)
    if #bases < 8 then bases[#bases + 1] = d end
  end
  --- Adds an item known not to close the piece: one of the items an old
  -- piece held before the first changed one (its boundary was further on).
  function c.carry(key, a, b)
    n = n + 1
    keys[n], as[n], bs[n] = key, a, b
    size = size + #key + extra + (level == 0 and #a or 0)
  end
  --- Closes what is left (the end of the level).
  function c.finish() if n > 0 then close() end end
  return c
end

--- Cuts one level's items into pieces; returns the next level's entries
-- (first keys, digests, counts).
local function build_level(t, level, keys, a, b)
  local out = { {}, {}, {} }
  local c = cutter(t, level, out)
  for i = 1, #keys do c.add(keys[i], a[i], b and b[i]) end
  c.finish()
  return out[1], out[2], out[3]
end

-- Stacks levels above the given entries until one piece remains; a root
-- with a single child is replaced by that child.
local function finish_root(t, level, ek, ed, ec)
  while #ed > 1 do
    ek, ed, ec = build_level(t, level, ek, ed, ec)
    level = level + 1
  end
  local root = ed[1]
  if not root then return nil end
  while true do
    local node = load_node(t, root)
    if node.leaf or #node.keys > 1 then return root end
    root = node.digests[1]
  end
end

--- Builds a whole tree from sorted keys and raw values; returns the root.
local function oracle_build(t, keys, vals)
  if #keys == 0 then return nil end
  local ek, ed, ec = build_level(t, 0, keys, vals)
  return finish_root(t, 1, ek, ed, ec)
end

-- ---------------------------------------------------------------- search

-- Last index i with keys[i] <= key (1 when key precedes them all).
local function floor_index(keys, key)
  local lo, hi = 1, #keys
  if key < keys[1] then return 1 end
  while lo < hi do
    local mid = (lo + hi + 1) // 2
    if keys[mid] <= key then lo = mid else hi = mid - 1 end
  end
  return lo
end

-- Index of key in keys, or (nil, insertion point).
local function find(keys, key)
  local lo, hi = 1, #keys
  while lo <= hi do
    local mid = (lo + hi) // 2
    local k = keys[mid]
    if k == key then return mid end
    if k < key then lo = mid + 1 else hi = mid - 1 end
  end
  return nil, lo
end
collection.find_key = find

--- Path from the root to the leaf where key lives or would go (or, with
-- key nil, the first leaf, or the last when last is true), indexed by
-- height: P[0] the leaf ... P[H] the root; P[h].idx is the index of P[h-1]
-- in P[h].node.
local function descend(t, root, key, last)
  local chain, d = {}, root
  while true do
    local node = load_node(t, d)
    local idx = 0
    if not node.leaf then
      if key ~= nil then idx = floor_index(node.keys, key)
      else idx = last and #node.keys or 1 end
    end
    chain[#chain + 1] = { node = node, idx = idx }
    if node.leaf then break end
    d = node.digests[idx]
  end
  local P, H = {}, #chain - 1
  for h = 0, H do P[h] = chain[#chain - h] end
  return P, H
end

--- Raw value of key, or nil (the Lua walk).
local function oracle_get(t, root, key)
  if not root then return nil end
  local node = load_node(t, root)
  while not node.leaf do node = load_node(t, node.digests[floor_index(node.keys, key)]) end
  local i = find(node.keys, key)
  return i and node.vals[i] or nil
end

-- The path to the piece at height h just before (dir = -1) or after
-- (dir = 1) the one P leads to, or nil.
local function step(t, P, h, H, dir)
  local a = h + 1
  while a <= H do
    local idx = P[a].idx + dir
    if idx >= 1 and idx <= #P[a].node.keys then break end
    a = a + 1
  end
  if a > H then return nil end
  local Q = {}
  for g = H, a + 1, -1 do Q[g] = P[g] end
  Q[a] = { node = P[a].node, idx = P[a].idx + dir }
  for g = a - 1, h, -1 do
    local parent = Q[g + 1]
    local child = load_node(t, parent.node.digests[parent.idx])
    local idx = 0
    if not child.leaf then idx = dir < 0 and #child.keys or 1 end
    Q[g] = { node = child, idx = idx }
  end
  return Q
end

-- -------------------------------------------------------------- updating

--- Sets key to raw value val (nil deletes). Returns the new root and the
-- change in record count, or nil when nothing changed (false as 2nd value).
-- The leaf's keys and values with key set to val (nil: removed) and the
-- change in count; nil when that changes nothing.
local function changed_leaf(leaf, key, val)
  local i, at = find(leaf.keys, key)
  if i then
    if val == nil then return i, 1, {}, {}, -1 end
    if leaf.vals[i] == val then return nil end
    return i, 1, { key }, { val }, 0
  end
  if val == nil then return nil end
  return at, 0, { key }, { val }, 1
end

local function columns(node)
  if node.leaf then return node.keys, node.vals, nil end
  return node.keys, node.digests, node.counts
end

-- Cuts level h again where a change replaced items: the level-h piece at
-- path start[h] keeps its items before index s; the span of `span` old
-- items from there (they may run into the pieces that follow) is replaced
-- by the new items (nk, na, nb); then the old items after the span follow.
-- The piece before start[h] closed at a boundary that nothing here moves,
-- so cutting restarts at start[h]'s first item and stops as soon as a
-- boundary falls at the end of an old piece after the new items: from there
-- on the level is what it was. Returns the new level-(h+1) entries and how
-- many old level-h pieces they replace (from start[h] on).
local function recut(t, start, h, H, s, span, nk, na, nb)
  local out = { {}, {}, {} }
  local up = start[h + 1]
  local base = up and up.node.digests[up.idx] or start.root
  local P, node = start, start[h].node
  local keys, a, b = columns(node)
  -- One item replaced by one of the same key and size: every boundary
  -- decision is what it was (they depend on keys and sizes only), so the
  -- piece keeps its items but that one.
  if span == 1 and #nk == 1 and nk[1] == keys[s] and (h > 0 or #na[1] == #a[s]) then
    local k2, a2 = slice(keys, 1, #keys), slice(a, 1, #a)
    a2[s] = na[1]
    local d, count
    if h == 0 then
      d, count = make_leaf(t, k2, a2)
    else
      local b2 = slice(b, 1, #b)
      b2[s] = nb[1]
      d, count = make_node(t, k2, a2, b2)
    end
    if base and base ~= d then
      if t.pending[base] then base = t.base[base] end
      t.base[d] = base
    end
    out[1][1], out[2][1], out[3][1] = keys[1], d, count
    return out, 1
  end
  local c = cutter(t, h, out, base)
  local closed = false
  -- (an old piece closes at its last item only: that one is tested again.
  -- A record added after a leaf's last one, the leaf not the root: when
  -- that last record ends the leaf, the leaf stays as it is, and the piece
  -- that starts with the new record replaces the next leaf, its base.)
  local after_leaf = h == 0 and H > 0 and s == #keys + 1
  for i = 1, s - 1 do
    if i < #keys then c.carry(keys[i], a[i], b and b[i])
    elseif after_leaf then
      closed = c.add_old_last(keys[i], a[i], b and b[i], base, #keys)
    else closed = c.add(keys[i], a[i], b and b[i]) end
  end
  for i = 1, #nk do closed = c.add(nk[i], na[i], nb and nb[i]) end
  -- skip the span: j is the first old item after it, in piece P
  local pieces, j = 1, s + span
  while j > #keys + 1 do
    j = j - #keys
    P = step(t, P, h, H, 1)
    if not P then errors.raise("corrupt", "collection tree of tenant '%s' ends early", t.tenant) end
    pieces = pieces + 1
    keys, a, b = columns(P[h].node)
    c.step(P[h + 1].node.digests[P[h + 1].idx])
  end
  if j > #keys and closed then return out, pieces end -- in step already
  while true do
    if j > #keys then
      P = step(t, P, h, H, 1)
      if not P then break end -- the end of the level
      pieces = pieces + 1
      keys, a, b = columns(P[h].node)
      j = 1
      c.step(P[h + 1].node.digests[P[h + 1].idx])
    end
    closed = c.add(keys[j], a[j], b and b[j])
    if closed and j == #keys then return out, pieces end
    j = j + 1
  end
  c.finish()
  return out, pieces
end

--- Sets key to raw value val (nil deletes). Returns the new root and the
-- change in record count, or root and false when nothing changed.
local function oracle_update(t, root, key, val)
  if not root then
    if val == nil then return root, false end
    return oracle_build(t, { key }, { val }), 1
  end
  local P, H = descend(t, root, key)
  local at, span, keys, vals, delta = changed_leaf(P[0].node, key, val)
  if not at then return root, false end
  P.root = root
  -- The leaf's items from at: span old ones replaced by the new ones; each
  -- level above then replaces the span of entries of the pieces cut again.
  local out, pieces = recut(t, P, 0, H, at, span, keys, vals, nil)
  for h = 1, H do
    out, pieces = recut(t, P, h, H, P[h].idx, pieces, out[1], out[2], out[3])
  end
  return finish_root(t, H + 1, out[1], out[2], out[3]), delta
end

-- ------------------------------------------------------------- iterating

--- Iterator over leaves in key order: yields leaf, first index (the first
-- key >= from in the first leaf, when from is given; 1 afterwards).
function collection.leaves(t, root, from)
  if not root then return function() return nil end end
  local P, H = descend(t, root, from or "")
  local first = true
  return function()
    if not P then return nil end
    local leaf = P[0].node
    local i = 1
    if first then
      first = false
      if from then
        local idx, at = find(leaf.keys, from)
        i = idx or at
      end
    end
    P = step(t, P, 0, H, 1)
    return leaf, i
  end
end

--- Iterator over key, raw value in key order (from the first key >= from,
-- when given): the Lua walk (collection.iter reads through C).
local function oracle_iter(t, root, from)
  local next_leaf = collection.leaves(t, root, from)
  local leaf, i = next_leaf()
  return function()
    while leaf do
      if i <= #leaf.keys then
        local k, v = leaf.keys[i], leaf.vals[i]
        i = i + 1
        return k, v
      end
      leaf, i = next_leaf()
    end
    return nil
  end
end

--- Iterator over key, decoded value, decoding one leaf at a time.
function collection.decoded(t, root, from, ctx)
  local next_leaf = collection.leaves(t, root, from)
  local leaf, i = next_leaf()
  local vals, base = {}, 0
  if leaf then core.decode_into(leaf.vals, vals, ctx, i); base = i - 1 end
  return function()
    while leaf do
      if i <= #leaf.keys then
        local k, v = leaf.keys[i], vals[i - base]
        i = i + 1
        return k, v
      end
      leaf, i = next_leaf()
      if leaf then vals, base = core.decode_into(leaf.vals, {}, ctx, i), i - 1 end
    end
    return nil
  end
end

--- Iterator over key, decoded value within bounds, a leaf at a time,
-- decoding only the records in range. o: lo, lo_excl, hi, hi_excl, reverse,
-- ctx. Bounds are keys (strings); nil means unbounded. The Lua walk
-- (collection.range reads through C).
local function oracle_range(t, root, o)
  if not root then return function() return nil end end
  local lo, hi, rev = o.lo, o.hi, o.reverse
  local function in_lo(k) return lo == nil or k > lo or (k == lo and not o.lo_excl) end
  local function in_hi(k) return hi == nil or k < hi or (k == hi and not o.hi_excl) end
  local P, H
  if rev then
    P, H = descend(t, root, hi, true)
  else
    P, H = descend(t, root, lo, false)
  end
  local keys, vals, i, stop, done = nil, nil, 0, 0, false
  -- Loads the current leaf's in-range slice [a, b] (decoded), or finishes.
  local function load_leaf()
    while P do
      local leaf = P[0].node
      local n = #leaf.keys
      local a, b = 1, n
      while a <= n and not in_lo(leaf.keys[a]) do a = a + 1 end
      while b >= 1 and not in_hi(leaf.keys[b]) do b = b - 1 end
      local edge -- the range ends inside this leaf
      if rev then edge = a > 1 else edge = b < n end
      P = (not edge) and step(t, P, 0, H, rev and -1 or 1) or nil
      if a <= b then
        keys = leaf.keys
        vals = core.decode_into(leaf.vals, {}, o.ctx, a, b)
        if rev then i, stop = b, a else i, stop = a, b end
        return true, a
      end
      if edge then break end
    end
    done = true
    return false
  end
  local base
  return function()
    if done then return nil end
    if keys == nil or (rev and i < stop) or (not rev and i > stop) then
      local ok, a = load_leaf()
      if not ok then return nil end
      base = a - 1
    end
    local k, v = keys[i], vals[i - base]
    i = rev and i - 1 or i + 1
    return k, v
  end
end

--- Applies many changes (map key -> raw value, or false to delete).
-- Returns new root, count delta, and whether anything changed.
local function oracle_update_many(t, root, count, changes)
  local keys = {}
  for k in pairs(changes) do keys[#keys + 1] = k end
  table.sort(keys)
  if #keys > 64 and #keys * 8 > count then
    -- Bulk: merge the old records with the changes and rebuild; pieces
    -- equal to old ones get the same digests and are not written again.
    local nk, nv, j = {}, {}, 1
    local changed = false
    local function push(k, v) nk[#nk + 1] = k; nv[#nv + 1] = v end
    for k, v in oracle_iter(t, root) do
      while j <= #keys and keys[j] < k do
        local nvv = changes[keys[j]]
        if nvv then push(keys[j], nvv); changed = true end
        j = j + 1
      end
      if j <= #keys and keys[j] == k then
        local nvv = changes[k]
        if nvv then push(k, nvv); if nvv ~= v then changed = true end
        else changed = true end
        j = j + 1
      else
        push(k, v)
      end
    end
    for m = j, #keys do
      local nvv = changes[keys[m]]
      if nvv then push(keys[m], nvv); changed = true end
    end
    if not changed then return root, 0, false end
    return oracle_build(t, nk, nv), #nk - count, true
  end
  local delta, changed = 0, false
  for _, k in ipairs(keys) do
    local v = changes[k]
    local r, d = oracle_update(t, root, k, v or nil)
    if d then
      root, delta, changed = r, delta + d, true
    end
  end
  return root, delta, changed
end

--- Writes the new pieces reachable from root (the others were
-- intermediate states) and moves them into the node cache. Returns what the
-- snapshot's "root" field holds (a leaf root's bytes, embedded; an inner
-- root's digest as a JSON string: the root is an object, stored with a delta
-- against the one it replaces), the root node, and the root's digest as
-- stored (an inner root embedded by an older snapshot gets stored now, under
-- the digest of its binary form). write_root: store a leaf root too (an
-- index's root is always an object).
local function oracle_flush(t, root, write_root)
  if not root then return nil end
  local root_node = t.built[root] or load_node(t, root)
  local embed
  if root_node.leaf then
    embed = t.pending[root]
    if not embed and root == t.root_digest then
      embed = t.root_bytes -- unchanged: the root the snapshot embedded
    end
    if not embed then embed = t.store:read(t.tenant, root) end -- an old piece
  elseif not t.pending[root] and not t.store:exists(t.tenant, root) then
    -- an inner root an older snapshot embedded: stored from now on
    local bytes, d = core.node_piece(root_node.keys, root_node.digests, root_node.counts)
    t.pending[d], t.built[d] = bytes, root_node
    root = d
  end
  local stack = { root }
  while #stack > 0 do
    local d = table.remove(stack)
    local bytes = t.pending[d]
    if bytes then
      t.pending[d] = nil
      local node = t.built[d]
      if not node.leaf then
        for _, c in ipairs(node.digests) do stack[#stack + 1] = c end
      end
      if d ~= root or write_root or not node.leaf then
        -- named by the codec (hashed once); the piece it replaces, if any
        t.store:write(t.tenant, bytes, d, t.base[d])
        cache_put(t.nodes, t.tenant, d, node)
      end
    end
  end
  t.pending, t.built, t.base = {}, {}, {}
  if not root_node.leaf then embed = '"' .. root .. '"' end
  return embed, root_node, root
end

--- The Lua implementation of the writes: the oracle of the C one.
collection.oracle = {
  build = oracle_build, update = oracle_update, update_many = oracle_update_many,
  flush = oracle_flush, get = oracle_get, range = oracle_range, iter = oracle_iter,
}

-- --------------------------------------------------------- the C write path

-- A tree handle written while core.node_piece is replaced goes through
-- the Lua writer, which calls it: that is how spec/piece_format_spec.lua
-- makes a store of the first piece format (JSON inner pieces), which only
-- old builds wrote. Decided once per handle, so one handle never mixes the
-- two writers' pending pieces.
local NODE_PIECE = core.node_piece
local function in_lua(t)
  local v = t.lua
  if v == nil then v = core.node_piece ~= NODE_PIECE; t.lua = v end
  return v
end

-- The C session of a tree handle, made on first use; a root the snapshot
-- embeds (not an object) is handed to it.
local function session(t)
  local s = t.c
  if s then return s end
  s = core.tree(t.store, t.tenant)
  local d, bytes = t.root_digest, t.root_bytes
  if d then
    if bytes == nil then
      -- a caller that gave a leaf root's node without its bytes: rebuilt,
      -- the same bytes (bytes '"<digest>"': an inner root, stored)
      local node = t.built[d]
      bytes = node and node.leaf and (core.leaf_piece(node.keys, node.vals)) or nil
    end
    if bytes and bytes:sub(1, 1) == "{" then s:seed(d, bytes) end
  end
  t.c = s
  return s
end

-- The node of a leaf root the snapshot embeds, parsed on first use:
-- flush's caller keeps the root node (mydb.write remembers it for the next
-- write), which the C path does not need. It holds the tenant and the
-- bytes, never the tree handle: the next write's handle keeps this node
-- (its root), so a node holding its own handle would chain every handle
-- and session a db handle ever made.
local function lazy_node(tenant, digest, bytes)
  return setmetatable({}, { __index = function(n, k)
    setmetatable(n, nil)
    local where = digest .. " of tenant '" .. tenant .. "'"
    for kk, v in pairs(parse_piece(where, bytes)) do
      rawset(n, kk, v)
    end
    return rawget(n, k)
  end })
end

--- Builds a whole tree from sorted keys and raw values; returns the root.
function collection.build(t, keys, vals)
  if in_lua(t) then return oracle_build(t, keys, vals) end
  return session(t):build(keys, vals)
end

--- Raw value of key, or nil.
function collection.get(t, root, key)
  if not root then return nil end
  if in_lua(t) then return oracle_get(t, root, key) end
  return session(t):get(root, key)
end

--- Sets key to raw value val (nil deletes). Returns the new root and the
-- change in record count, or root and false when nothing changed; then the
-- key's raw value before (nil: absent; also nil when want_old is false: a
-- caller that does not read it saves the string).
function collection.update(t, root, key, val, want_old)
  if in_lua(t) then
    local old = root and want_old ~= false and oracle_get(t, root, key) or nil
    local r, d = oracle_update(t, root, key, val)
    return r, d, old
  end
  return session(t):update(root, key, val, want_old ~= false)
end

--- Applies many changes (map key -> raw value, or false to delete).
-- Returns new root, count delta, and whether anything changed.
function collection.update_many(t, root, count, changes)
  if in_lua(t) then return oracle_update_many(t, root, count, changes) end
  return session(t):update_many(root, count, changes)
end

--- Writes the new pieces reachable from root (the others were
-- intermediate states), each with the piece it replaces as its base.
-- Returns what the snapshot's "root" field holds (a leaf root's bytes,
-- embedded; an inner root's digest as a JSON string), the root node (the C
-- writer: nil for a stored root), and the root's digest as stored (an inner root embedded by an older
-- snapshot is stored now, under the digest of its binary form).
-- write_root: store a leaf root too (an index's root is always an object).
function collection.flush(t, root, write_root)
  if not root then return nil end
  if in_lua(t) then return oracle_flush(t, root, write_root) end
  local embed, stored = session(t):flush(root, write_root)
  -- (a stored root needs no node: the next write's handle reads it by
  -- digest, as it reads every piece)
  if not embed then return '"' .. stored .. '"', nil, stored end
  return embed, lazy_node(t.tenant, stored, embed), stored
end

-- ------------------------------------------------------------ the C reader

--- Iterator over key, decoded value within bounds (src/lua/ltree_read.c:
-- values decoded from the pieces' bytes a leaf at a time, only the records
-- in range; the cursor holds the pieces of its path, nothing more). o: lo,
-- lo_excl, hi, hi_excl, reverse, ctx. Bounds are keys (strings); nil means
-- unbounded. Returns next, nil, nil, cursor: a generic for closes the
-- cursor when it is left early (cursor:close() does it by hand).
function collection.range(t, root, o)
  if in_lua(t) then return oracle_range(t, root, o) end
  local nxt, cur = core.tree_cursor(session(t), root, o.lo, o.lo_excl, o.hi, o.hi_excl,
    o.reverse, false, o.ctx)
  return nxt, nil, nil, cur
end

--- Iterator over key, raw value in key order (from the first key >= from,
-- when given); returns next, nil, nil, cursor as collection.range.
function collection.iter(t, root, from)
  if in_lua(t) then return oracle_iter(t, root, from) end
  local nxt, cur = core.tree_cursor(session(t), root, from, false, nil, false, false, true)
  return nxt, nil, nil, cur
end

--- collection.flush with write_root, for a caller that wants only the
-- stored root's digest (an index's or a commit state's root): no snapshot
-- field, no root node.
function collection.flush_stored(t, root)
  if not root then return nil end
  if in_lua(t) then return (select(3, oracle_flush(t, root, true))) end
  local _, stored = session(t):flush(root, true)
  return stored
end

--- collection.update, then collection.flush (a leaf root embedded), in one
-- call, for a put (nil val deletes): false when nothing changed, else the
-- change in record count and what flush returns.
function collection.update_flush(t, root, key, val)
  if in_lua(t) then
    local r, d = collection.update(t, root, key, val, false)
    if not d then return false end
    return d, collection.flush(t, r)
  end
  local d, embed, stored = session(t):update_flush(root, key, val)
  if not d then return false end
  if not stored then return d end -- (empty)
  if not embed then return d, '"' .. stored .. '"', nil, stored end
  return d, embed, lazy_node(t.tenant, stored, embed), stored
end

--- collection.update (nil val deletes), then collection.flush_stored, in
-- one call: the stored root (nil: empty) and the change in record count.
function collection.update_stored(t, root, key, val)
  if in_lua(t) then
    local r, d = collection.update(t, root, key, val, false)
    return collection.flush_stored(t, r), d or 0
  end
  return session(t):update_stored(root, key, val)
end

return collection
