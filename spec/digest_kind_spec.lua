-- A digest of a snapshot version given to a collection read says so,
-- instead of blaming the entry (issue 16, part 2).
local mydb = require "mydb"

describe("a digest of the other kind", function()
  local db, snap
  before_each(function()
    db = mydb.open(os.tmpname() .. "-k", { backend = "memory" })
    db:init("a")
    snap = db:save("a", "u", "snap", { x = 1 })
    db:put("a", "u", "col", "k", 1)
  end)
  after_each(function() db:close() end)

  it("names the version as a snapshot version for get, records and query", function()
    for _, call in ipairs {
      function() return db:get("a", "col", "k", snap) end,
      function() return db:get("a", "col", nil, snap) end,
      function() return db:records("a", "col", snap) end,
      function() return db:query("a", "col", { digest = snap }) end,
    } do
      local ok, e = pcall(call)
      assert.is_false(ok)
      assert.equal("type_mismatch", e.code)
      assert.equal("version " .. snap .. " is a snapshot version, not a version of a collection (read it with load)",
        e.message)
    end
  end)

  it("keeps the entry's message when the entry itself holds a snapshot", function()
    local ok, e = pcall(db.get, db, "a", "snap", "k")
    assert.is_false(ok)
    assert.equal("type_mismatch", e.code)
    assert.matches("entry 'snap' holds a snapshot", e.message)
  end)
end)
