-- A digest given to a read must be a version in the entry's history: a
-- digest of another entry says not_found naming the entry, instead of
-- returning that entry's version (issue 16, part 2; mydb.lineage).
local H = require "spec.helper"
local mydb = require "mydb"

describe("a digest given to a read", function()
  local db
  before_each(function()
    db = mydb.open(H.tmpdir() .. "/db", { backend = H.BACKEND == "memory" and "memory" or nil })
    db:init("t")
  end)
  after_each(function() db:close() end)

  local function not_in_history(fn, entry, digest)
    local e = H.assert_error_code(fn, "not_found")
    assert.equal(("version %s is not in the history of entry '%s' of tenant 't'"):format(digest, entry), e.message)
  end

  it("of another entry: not_found for load, get, records, raw_records, query, query_index, history, meta", function()
    local s1 = db:save("t", "u", "s1", { x = 1 })
    db:save("t", "u", "s2", { x = 2 })
    db:put("t", "u", "c1", "k", { n = 1 })
    db:put("t", "u", "c2", "k", { n = 2 })
    db:create_index("t", "u", "c1", "by_n", "n")
    local c2 = db:get_digest("t", "c2")
    not_in_history(function() return db:load("t", "s2", s1) end, "s2", s1)
    not_in_history(function() return db:load("t", "c1", c2) end, "c1", c2)
    not_in_history(function() return db:get("t", "c1", "k", c2) end, "c1", c2)
    not_in_history(function() return db:get("t", "c1", nil, c2) end, "c1", c2)
    not_in_history(function() return db:records("t", "c1", c2) end, "c1", c2)
    not_in_history(function() return db:raw_records("t", "c1", c2) end, "c1", c2)
    not_in_history(function() return db:query("t", "c1", { digest = c2 }) end, "c1", c2)
    not_in_history(function() return db:query_index("t", "c1", "by_n", { digest = c2 }) end, "c1", c2)
    not_in_history(function() return db:history("t", "s2", s1) end, "s2", s1)
    not_in_history(function() return db:meta("t", "s2", s1) end, "s2", s1)
    -- a digest naming nothing at all
    local none = ("0"):rep(64)
    not_in_history(function() return db:load("t", "s2", none) end, "s2", none)
  end)

  it("of the other kind still says type_mismatch (spec/digest_kind_spec.lua)", function()
    local s = db:save("t", "u", "s", 1)
    db:put("t", "u", "c", "k", 1)
    H.assert_error_code(function() return db:get("t", "c", "k", s) end, "type_mismatch")
  end)

  it("of the entry's own past versions reads them, as before", function()
    local v = {}
    for i = 1, 40 do v[i] = db:save("t", "u", "s", { i = i }) end
    for _, i in ipairs({ 1, 2, 17, 39, 40 }) do assert.same({ i = i }, db:load("t", "s", v[i])) end
    db:put("t", "u", "c", "k", 1)
    local c1 = db:get_digest("t", "c")
    db:put("t", "u", "c", "k", 2)
    assert.equal(1, db:get("t", "c", "k", c1))
    local hist = db:history("t", "s")
    assert.equal(40, #hist)
    assert.equal(1, db:meta("t", "s", hist[40]).digest == v[1] and 1 or 0)
  end)

  it("of a version written on another branch, or before a drop, reads it", function()
    db:save("t", "u", "s", "main 1")
    db:branch("t", "b")
    local other = mydb.open(db._root, { backend = db._backend })
    if db._backend == "memory" then other = db end
    other:checkout("t", "b")
    local on_b = other:save("t", "u", "s", "on b")
    if other ~= db then other:close() else db:checkout("t", "main") end
    assert.equal("on b", db:load("t", "s", on_b)) -- the handle is on main
    -- the branch deleted after a merge: its version is named by the merged commits
    db:merge("t", "u", "b")
    db:delete_branch("t", "b")
    db:save("t", "u", "s", "main 2")
    assert.equal("on b", db:load("t", "s", on_b))
    -- dropped, then written again: a new chain; the old life stays readable
    local before = db:get_digest("t", "s")
    db:drop("t", "u", "s")
    db:save("t", "u", "s", "again")
    assert.equal("main 2", db:load("t", "s", before))
    assert.equal("on b", db:load("t", "s", on_b))
  end)

  it("identical content in two entries (one digest) belongs to both, not to a third", function()
    db:batch("t", "u", function(b)
      b:save("a", { same = true })
      b:save("b", { same = true })
      b:save("c", { other = true })
    end)
    local da, dbb = db:get_digest("t", "a"), db:get_digest("t", "b")
    assert.equal(da, dbb) -- same bytes: stored once
    db:save("t", "u", "a", 2)
    db:save("t", "u", "b", 3)
    assert.same({ same = true }, db:load("t", "a", da))
    assert.same({ same = true }, db:load("t", "b", da))
    not_in_history(function() return db:load("t", "c", da) end, "c", da)
  end)

  it("through a view of another commit: the view's versions read as before", function()
    db:put("t", "u", "c", "k", 1)
    db:put("t", "u", "c", "k", 2)
    local view = db:at("t", "main~1")
    assert.equal(1, view:get("c", "k"))
  end)
end)
