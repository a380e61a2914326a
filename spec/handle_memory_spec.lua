-- A long-lived handle does not keep what its earlier writes used: each
-- write makes a tree handle (and a C session) for its collection; once the
-- write returns, only the bounded memos (commits, collection infos) and the
-- byte-budgeted caches keep anything. A lazily parsed root node once held
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
    assert.is_true(total >= 150, "the wrapper saw the writes' tree handles: " .. total)
    -- (the last write's handle may still be referenced; nothing older)
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
end)
