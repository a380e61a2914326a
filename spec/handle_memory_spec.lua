-- A long-lived handle does not keep what its earlier writes used: a write
-- makes a tree handle (and a C session) for its collection, or reuses the
-- one kept for the entry (mydb.colinfo.write_tree: at most one per entry,
-- bounded); once the write returns, only that, the bounded memos (commits,
-- collection infos) and the byte-budgeted caches keep anything. A lazily parsed root node once held
-- the tree handle that wrote it, and the next write's handle held that node:
-- every handle and session a db handle ever made stayed reachable (Lua
-- memory grew ~3 KB a put without bound; 113 MB after 32,000 puts).
local H = require "spec.helper"
local collection = require "mydb.collection"

describe("a long-lived handle", function()
  local S = H.use_store({ tenant = "t" })
  local real_tree

  before_each(function() real_tree = collection.tree end)
  after_each(function() collection.tree = real_tree end)

  -- Counts the tree handles made while fn runs that are still alive after
  -- a full collection.
  local function alive_handles(fn)
    local made = setmetatable({}, { __mode = "k" })
    local total = 0
    collection.tree = function(...)
      local t = real_tree(...)
      made[t] = true
      total = total + 1
      return t
    end
    fn()
    collection.tree = real_tree
    collectgarbage()
    collectgarbage()
    local n = 0
    for _ in pairs(made) do n = n + 1 end
    return n, total
  end

  it("lets the tree handles of earlier puts, deletes and batches go", function()
    local db = S.db
    local model = {}
    local alive, total = alive_handles(function()
      for i = 1, 150 do
        local k = string.format("k%04d", (i * 37) % 101)
        db:put("t", "u", "c", k, { n = i, pad = ("x"):rep(60) })
        model[k] = i
        if i % 10 == 0 then
          local d = string.format("k%04d", (i * 11) % 101)
          db:delete("t", "u", "c", d)
          model[d] = nil
        end
        if i % 25 == 0 then
          local items = {}
          for j = 1, 40 do
            local b = string.format("b%04d", i * 40 + j)
            items[b] = { n = j }
            model[b] = j
          end
          db:put_many("t", "u", "c", items)
        end
      end
    end)
    -- (a write to a collection whose root is an object reuses the entry's
    -- kept handle; a small one, its root in the snapshot, makes its own)
    assert.is_true(total >= 2, "the wrapper saw the writes' tree handles: " .. total)
    -- (the kept handle and the last write's may still be referenced;
    -- nothing older)
    assert.is_true(alive <= 3, ("%d of %d tree handles still alive"):format(alive, total))
    -- and every record is there
    local n = 0
    for k, v in pairs(model) do
      n = n + 1
      assert.are.equal(v, db:get("t", "c", k).n)
    end
    assert.are.equal(n, #db:get("t", "c"))
  end)

  it("keeps reading a root it wrote after the handle that wrote it is gone", function()
    local db = S.db
    for i = 1, 400 do db:put("t", "u", "c", ("k%04d"):format(i), { n = i }) end
    collectgarbage()
    collectgarbage()
    for i = 1, 400, 37 do assert.are.equal(i, db:get("t", "c", ("k%04d"):format(i)).n) end
    db:put("t", "u", "c", "k0001", { n = -1 })
    assert.are.equal(-1, db:get("t", "c", "k0001").n)
    assert.are.equal(400, #db:get("t", "c"))
  end)

  -- The kept write handles (one per entry: a flush drops its handle's other
  -- pending pieces, so two entries of one commit must not share one).
  it("writes two large collections in one commit, and recovers from a failed write", function()
    local db = S.db
    local model = { a = {}, b = {} }
    for _, c in ipairs({ "a", "b" }) do
      local items = {}
      for i = 1, 3000 do
        items[("k%05d"):format(i)] = { n = i, pad = ("p"):rep(40) }
        model[c][("k%05d"):format(i)] = i
      end
      db:put_many("t", "u", c, items)
    end
    for round = 1, 20 do
      db:batch("t", "u", function(b)
        for j = 1, 3 do
          local k = ("k%05d"):format((round * 131 + j * 977) % 4000 + 1)
          b:put("a", k, { n = -round })
          b:put("b", k, { n = round })
          model.a[k], model.b[k] = -round, round
        end
        b:delete("b", ("k%05d"):format(round * 7))
        model.b[("k%05d"):format(round * 7)] = nil
      end)
      -- a write that fails after its update was planned changes nothing
      assert.has_error(function()
        db:batch("t", "u", function(b)
          b:put("a", "k00001", { n = 0 })
          b:put("b", "k00002", { n = function() end })
        end)
      end)
    end
    local other = S.open_again()
    for _, h in ipairs({ db, other }) do
      for _, c in ipairs({ "a", "b" }) do
        local n = 0
        for k, v in pairs(model[c]) do
          n = n + 1
          assert.are.equal(v, h:get("t", c, k).n)
        end
        assert.are.equal(n, #h:get("t", c))
      end
    end
    assert.same({}, db:verify())
  end)
end)
