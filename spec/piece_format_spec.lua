-- The piece format of record collections (doc/FORMAT.md "Record
-- collections", piece format 2): binary inner pieces, size-based
-- boundaries, what one put rewrites, and stores of the first format.
local H = require "spec.helper"
local core = require "mydb.core"

local function random_keys(n, seed)
  local x, keys = seed, {}
  for i = 1, n do
    local t = {}
    for j = 1, 16 do
      x = (x * 6364136223846793005 + 1442695040888963407)
      t[j] = string.char(97 + ((x >> 33) % 26))
    end
    keys[i] = table.concat(t)
  end
  return keys
end

-- Every object of a tenant with its size: {digest = bytes}.
local function sizes(db, tenant)
  local out = {}
  for _, d in ipairs(db._store:objects(tenant)) do out[d] = #db._store:read(tenant, d) end
  return out
end

describe("piece format", function()
  local S = H.use_store({ tenant = "t" })

  describe("inner pieces", function()
    local d1, d2 = ("a"):rep(64), ("0123456789abcdef"):rep(4)

    it("round-trip through node_piece and node_split, named by the digest of their bytes", function()
      local bytes, digest, total = core.node_piece({ "a", "b\0c" }, { d1, d2 }, { 3, 300 })
      assert.equal("\0MN\1", bytes:sub(1, 4))
      assert.equal(core.sha256(bytes), digest)
      assert.equal(303, total)
      -- magic, len 1, "a", 32 bytes, 3; len 3, "b\0c", 32 bytes, 300 (2 bytes)
      assert.equal(4 + (1 + 1 + 32 + 1) + (1 + 3 + 32 + 2), #bytes)
      local keys, digests, counts = core.node_split(bytes)
      assert.same({ "a", "b\0c" }, keys)
      assert.same({ d1, d2 }, digests)
      assert.same({ 3, 300 }, counts)
    end)

    it("refuse damaged bytes with corrupt", function()
      local bytes = core.node_piece({ "a" }, { d1 }, { 5 })
      for _, bad in ipairs({
        "", "\0MN\1", "\0MN\2" .. bytes:sub(5), bytes:sub(1, -2), bytes:sub(1, 20),
        bytes:sub(1, -2) .. "\0",                 -- a count of 0
        "\0MN\1\129\0" .. bytes:sub(6),           -- a key length not minimal
        "\0MN\1\9" .. bytes:sub(6),               -- a key length past the end
        bytes .. "\1",                            -- a trailing byte
      }) do
        H.assert_error_code(function() core.node_split(bad) end, "corrupt")
      end
    end)

    it("refuse malformed entries when built", function()
      H.assert_error_code(function() core.node_piece({}, {}, {}) end, "invalid_argument")
      H.assert_error_code(function() core.node_piece({ "a" }, { "xyz" }, { 1 }) end, "invalid_argument")
      H.assert_error_code(function() core.node_piece({ "a" }, { d1 }, { 0 }) end, "invalid_argument")
      H.assert_error_code(function() core.node_piece({ "a" }, { d1:upper() }, { 1 }) end, "invalid_argument")
    end)
  end)

  describe("a 20,000-record collection", function()
    local N = 20000
    local keys, items

    before_each(function()
      keys, items = random_keys(N, 11), {}
      for i, k in ipairs(keys) do items[k] = { i = i, pad = ("x"):rep(80) } end
      S.db:put_many("t", "u", "c", items)
    end)

    it("keeps pieces near 2 KiB and at most 8 KiB, inner ones binary, an inner root stored", function()
      local info = H.collection_of(S.root, "t", S.db:get_digest("t", "c"))
      assert.is_string(info.root, "expected an inner root named by its digest")
      assert.is_table(H.read_piece(S.root, "t", info.root).node, "expected an inner root")
      H.check_tree(S.root, "t", info.root, N) -- boundaries where the rule says
      local total, n, largest, binary = 0, 0, 0, 0
      local snapshot = S.db:get_digest("t", "c")
      for d, size in pairs(sizes(S.db, "t")) do
        if d ~= snapshot then
          total, n, largest = total + size, n + 1, math.max(largest, size)
          if S.db._store:read("t", d):sub(1, 4) == "\0MN\1" then binary = binary + 1 end
        end
      end
      assert.is_true(binary >= 2, "expected stored binary inner pieces")
      assert.is_true(largest <= 8192 + 200, "largest piece " .. largest)
      local mean = total / n
      assert.is_true(mean > 1200 and mean < 2800, "mean piece " .. mean)
    end)

    it("rewrites one root-to-leaf path on a put: about 4 small objects and the snapshot", function()
      local before = sizes(S.db, "t")
      local x = 5
      local added, count = 0, 0
      for r = 1, 50 do
        x = (x * 1103515245 + 12345) % 2147483648
        S.db:put("t", "u", "c", keys[x % N + 1], { i = -r, pad = ("y"):rep(80) })
      end
      for d, size in pairs(sizes(S.db, "t")) do
        if not before[d] then added, count = added + size, count + 1 end
      end
      -- per put: a leaf, 1-2 inner pieces, the root (~2 KiB each), the
      -- snapshot, and the tenant commit with its state leaf (sizes as read
      -- back: whole, even where a delta is stored)
      assert.is_true(count <= 50 * 7, count .. " objects for 50 puts")
      assert.is_true(added / 50 < 9000, ("%.0f bytes per put"):format(added / 50))
    end)

    it("gives the same tree after single puts and deletes as a fresh build", function()
      local x = 9
      for r = 1, 60 do
        x = (x * 1103515245 + 12345) % 2147483648
        local k = keys[x % N + 1]
        if r % 3 == 0 then
          S.db:delete("t", "u", "c", k)
          items[k] = nil
        else
          local v = { i = r, pad = ("z"):rep(r) } -- sizes change: boundaries move
          S.db:put("t", "u", "c", k, v)
          items[k] = v
        end
      end
      S.db:put_many("t", "u", "fresh", items)
      local a = H.collection_of(S.root, "t", S.db:get_digest("t", "c"))
      local b = H.collection_of(S.root, "t", S.db:get_digest("t", "fresh"))
      assert.equal(b.count, a.count)
      assert.equal(H.canon(b.root), H.canon(a.root))
      H.check_tree(S.root, "t", a.root, a.count)
    end)
  end)

  it("reads, updates, verifies and collects a store whose inner pieces are JSON (the first format)", function()
    -- pieces of the first format: written through the same code with a
    -- JSON inner piece (doc/FORMAT.md, first format) in place of the binary
    local node_piece = core.node_piece
    core.node_piece = function(keys, digests, counts)
      local parts, total = {}, 0
      for i = 1, #keys do
        parts[i] = ('[%s,"%s",%d]'):format(core.json_string(keys[i]), digests[i], counts[i])
        total = total + counts[i]
      end
      local bytes = '{"node":[' .. table.concat(parts, ",") .. "]}"
      return bytes, core.sha256(bytes), total
    end
    local ok, err = pcall(function()
      local items = {}
      for i = 1, 5000 do items[("k%05d"):format(i)] = { i = i } end
      S.db:put_many("t", "u", "old", items)
    end)
    core.node_piece = node_piece
    assert(ok, err)
    local json_nodes = 0
    for _, d in ipairs(S.db._store:objects("t")) do
      if S.db._store:read("t", d):sub(1, 8) == '{"node":' then json_nodes = json_nodes + 1 end
    end
    assert.is_true(json_nodes >= 1, "expected stored JSON inner pieces")
    local out, ran = H.run_lua([[
      local db = require("mydb").open(..., { fsync = false })
      local n = 0
      for k, v in db:records("t", "old") do n = n + 1 assert(v.i == tonumber(k:sub(2))) end
      assert(db:get("t", "old", "k02500").i == 2500)
      db:put("t", "u", "old", "k02500", { i = -1 })
      db:delete("t", "u", "old", "k00001")
      db:put("t", "u", "old", "k99999", { i = 99999 })
      assert(db:get("t", "old", "k02500").i == -1 and db:get("t", "old", "k00001") == nil)
      local m = 0
      for _ in db:records("t", "old") do m = m + 1 end
      assert(#db:verify() == 0, "verify")
      db:gc()
      assert(#db:verify() == 0, "verify after gc")
      io.write(n, " ", m)
    ]], { args = { S.root } })
    assert(ran, out)
    assert.equal("5000 5000", out)
  end)
end)
