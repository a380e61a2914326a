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

-- A cursor: a stack of items, the next in key order on top.
-- Item: {level=, key=, digest=, node=} for a piece, {level=0, key=, raw=}
-- for a record.
local function cursor(t, root)
  if root == nil then return { t = t } end
  local node, digest
  if type(root) == "table" then node = root else digest, node = root, load_node(t, root) end
  if node.keys[1] == nil then return { t = t } end -- (an empty piece: no records)
  return { t = t, { level = root_level(t, node), key = node.keys[1], digest = digest, node = node } }
end

-- Replaces the piece on top of cursor c by its children.
local function expand(c)
  local item = table.remove(c)
  local node = item.node or load_node(c.t, item.digest)
  local keys = node.keys
  if node.leaf then
    local vals = node.vals
    for i = #keys, 1, -1 do c[#c + 1] = { level = 0, key = keys[i], raw = vals[i] } end
  else
    local digests, level = node.digests, math.max(item.level - 1, 1)
    for i = #keys, 1, -1 do c[#c + 1] = { level = level, key = keys[i], digest = digests[i] } end
  end
end

-- Calls fn(key, raw) for each record of the cursor (what is left of it),
-- with old/new placed by side; false from fn stops (returns false).
local function drain(c, fn, side_old)
  while #c > 0 do
    local item = c[#c]
    if item.level == 0 then
      c[#c] = nil
      local go
      if side_old then go = fn(item.key, item.raw, nil) else go = fn(item.key, nil, item.raw) end
      if go == false then return false end
    else
      expand(c)
    end
  end
  return true
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
    local a, b = A[#A], B[#B]
    if a == nil then drain(B, fn, false); return end
    if b == nil then drain(A, fn, true); return end
    if a.key < b.key then
      if a.level == 0 then
        A[#A] = nil
        if fn(a.key, a.raw, nil) == false then return end
      else
        expand(A)
      end
    elseif b.key < a.key then
      if b.level == 0 then
        B[#B] = nil
        if fn(b.key, nil, b.raw) == false then return end
      else
        expand(B)
      end
    elseif a.level == 0 and b.level == 0 then
      A[#A], B[#B] = nil, nil
      if a.raw ~= b.raw and fn(a.key, a.raw, b.raw) == false then return end
    elseif a.digest ~= nil and a.digest == b.digest then
      A[#A], B[#B] = nil, nil -- the same piece: the same records
    elseif a.level > b.level then
      expand(A)
    elseif b.level > a.level then
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
