--- mydb.treediff: the differences between two prolly trees, at a cost of
-- O(changes x depth) pieces read, not O(size).
--
-- Each tree is walked as a key-ordered sequence of items: a piece
-- (level >= 1: its first key, its digest) or a record (level 0: key, raw
-- value). The sequence starts as the root alone; expanding a piece replaces
-- it by its children. At the heads of the two sequences:
--   * two pieces with the same digest hold the same records: both skipped;
--   * the head with the smaller first key is expanded if it is a piece, or,
--     a record, it is absent on the other side (every key left there is
--     greater): removed / added;
--   * equal first keys: two records are compared by value; otherwise the
--     higher-level piece is expanded (both at equal levels).
-- Pieces shared by both trees are never read, so a change costs the pieces
-- on its path (and the few neighbours whose boundaries it moved).
local collection = require "mydb.collection"
local colinfo = require "mydb.colinfo"
local errors = require "mydb.errors"

local load_node = collection.load_node

local treediff = {}

-- The level of a tree's root: 1 for a leaf, one more per inner level (the
-- leftmost path; the trees are balanced). Only orders the expansions: a
-- wrong level would cost reads, never change the answer.
local function root_level(t, node)
  local level = 1
  while not node.leaf do
    node = load_node(t, node.digests[1])
    level = level + 1
  end
  return level
end

-- A cursor: a stack of frames, each the rest of one node's items (the
-- next item in key order: the top frame's i-th); no table per item. A frame
-- {keys=, digests=, vals=, i=, level=} lists pieces (digests, level >= 1)
-- or records (vals, level 0); every frame on the stack has i <= #keys.
local function frame(node, level)
  if node.leaf then return { keys = node.keys, vals = node.vals, i = 1, level = 0 } end
  return { keys = node.keys, digests = node.digests, i = 1, level = level }
end

local function cursor(t, root)
  local c = { t = t }
  if root == nil then return c end
  local node
  if type(root) == "table" then
    node = root
    if #node.keys > 0 then c[1] = frame(node, root_level(t, node) - 1) end
  else
    -- the root as the one item of a frame, so that a subtree of the other
    -- tree with the same digest is still skipped whole
    node = load_node(t, root)
    if #node.keys > 0 then
      c[1] = { keys = { node.keys[1] }, digests = { root }, i = 1, level = root_level(t, node) }
    end
  end
  return c
end

-- Moves cursor c past its next item.
local function advance(c)
  local n = #c
  local f = c[n]
  local i = f.i + 1
  if i > #f.keys then c[n] = nil else f.i = i end
end

-- Replaces the piece that is cursor c's next item by its items.
local function expand(c)
  local f = c[#c]
  local digest, level = f.digests[f.i], f.level
  advance(c)
  local node = load_node(c.t, digest)
  if #node.keys > 0 then c[#c + 1] = frame(node, level > 1 and level - 1 or 1) end
end

-- Calls fn(key, raw) for each record of the cursor (what is left of it),
-- with old/new placed by side; false from fn stops (returns false).
local function drain(c, fn, side_old)
  while #c > 0 do
    local f = c[#c]
    if f.level == 0 then
      local k, v = f.keys[f.i], f.vals[f.i]
      advance(c)
      local go
      if side_old then go = fn(k, v, nil) else go = fn(k, nil, v) end
      if go == false then return false end
    else
      expand(c)
    end
  end
  return true
end

-- Moves both cursors past the run of items, from their next ones, that are
-- the same on both sides (same keys and values, or digests); the top frames
-- fa, fb have x, y as their vals or digests. (Most items of two pieces on
-- a changed path are equal: one tight loop, not one turn of the main one
-- each.)
local function skip_equal(A, B, fa, fb, x, y)
  local ka, kb = fa.keys, fb.keys
  local na, nb = #ka, #kb
  local ia, ib = fa.i, fb.i
  repeat
    ia, ib = ia + 1, ib + 1
  until ia > na or ib > nb or ka[ia] ~= kb[ib] or x[ia] ~= y[ib]
  if ia > na then A[#A] = nil else fa.i = ia end
  if ib > nb then B[#B] = nil else fb.i = ib end
end

--- Calls fn(key, old_raw, new_raw) in key order for each key whose raw
-- value differs between the tree ta/root_a and the tree tb/root_b (old_raw
-- nil: added; new_raw nil: removed); stops when fn returns false. ta, tb:
-- collection.tree handles; a root is a digest, a root node (a leaf root
-- embedded by its snapshot), or nil for an empty tree.
function treediff.trees(ta, root_a, tb, root_b, fn)
  if type(fn) ~= "function" then
    errors.raise("invalid_argument", "treediff needs a function, got %s", type(fn))
  end
  if root_a ~= nil and root_a == root_b and type(root_a) == "string" then return end
  local A, B = cursor(ta, root_a), cursor(tb, root_b)
  while true do
    local fa, fb = A[#A], B[#B]
    if fa == nil then drain(B, fn, false); return end
    if fb == nil then drain(A, fn, true); return end
    local ia, ib = fa.i, fb.i
    local ka, kb = fa.keys[ia], fb.keys[ib]
    local la, lb = fa.level, fb.level
    if ka < kb then
      if la == 0 then
        advance(A)
        if fn(ka, fa.vals[ia], nil) == false then return end
      else
        expand(A)
      end
    elseif kb < ka then
      if lb == 0 then
        advance(B)
        if fn(kb, nil, fb.vals[ib]) == false then return end
      else
        expand(B)
      end
    elseif la == 0 and lb == 0 then
      local va, vb = fa.vals[ia], fb.vals[ib]
      if va ~= vb then
        advance(A)
        advance(B)
        if fn(ka, va, vb) == false then return end
      else
        skip_equal(A, B, fa, fb, fa.vals, fb.vals)
      end
    elseif la > 0 and lb > 0 and fa.digests[ia] == fb.digests[ib] then
      skip_equal(A, B, fa, fb, fa.digests, fb.digests) -- the same pieces: the same records
    elseif la > lb then
      expand(A)
    elseif lb > la then
      expand(B)
    else
      expand(A)
      expand(B)
    end
  end
end

-- The record tree of a collection version (nil digest: an empty one).
local function record_tree(db, tenant, digest, entry)
  if digest == nil then return colinfo.tree(db, tenant, nil), nil end
  local info = colinfo.get(db, tenant, entry or digest, digest)
  return colinfo.tree(db, tenant, info), info.root
end

--- The same as trees for two versions of a collection entry (snapshot
-- digests; either may be nil: empty), on the record trees (not the
-- indexes), raw values as stored. type_mismatch if one is not a
-- collection snapshot (entry, optional: its name, for that message).
function treediff.collections(db, tenant, digest_a, digest_b, fn, entry)
  local ta, ra = record_tree(db, tenant, digest_a, entry)
  local tb, rb = record_tree(db, tenant, digest_b, entry)
  return treediff.trees(ta, ra, tb, rb, fn)
end

return treediff
