-- set_ttl, create_index and drop_index take user second, as every other
-- write does; the old order (user last, optional) still works for one
-- release, with a warning once per call site (issue 16, part 2; the rule is
-- in lua/mydb/argorder.lua).
local H = require "spec.helper"
local mydb = require "mydb"

-- The user and message-less commit of the branch's last write.
local function last_user(db, t) return db:log(t, { max = 1 })[1].user_id end

describe("argument order of set_ttl, create_index, drop_index", function()
  local db
  local saved
  before_each(function()
    saved = mydb.deprecation_warnings
    mydb.deprecation_warnings = false -- (the warnings are spec'd in a fresh process below)
    db = mydb.open(H.tmpdir() .. "/db", { backend = "memory" })
    db:init("t")
    db:put("t", "w", "c", "a", { n = 1, exp = 10 ^ 12 })
    db:put("t", "w", "c", "b", { n = 2, exp = 1 })
  end)
  after_each(function()
    db:close()
    mydb.deprecation_warnings = saved
  end)

  describe("the new order (tenant, user, entry, ...)", function()
    it("set_ttl: the user is recorded; false removes the TTL", function()
      assert.is_true(db:set_ttl("t", "al", "c", "exp"))
      assert.equal("al", last_user(db, "t"))
      assert.same({ "a" }, (function() local k = {} for key in db:records("t", "c") do k[#k + 1] = key end return k end)())
      assert.is_true(db:set_ttl("t", "bo", "c", false))
      assert.equal("bo", last_user(db, "t"))
      assert.equal(1, #db:get("t", "c")) -- (the expired record was dropped by the write that set the TTL)
    end)

    it("create_index with an expression or a function, and drop_index", function()
      assert.is_true(db:create_index("t", "al", "c", "by_n", "n"))
      assert.equal("al", last_user(db, "t"))
      assert.is_true(db:create_index("t", "bo", "c", "by_n2", function(v) return v.n * 2 end))
      assert.equal("bo", last_user(db, "t"))
      local keys = {}
      for _, _, ik in db:query_index("t", "c", "by_n2") do keys[#keys + 1] = ik end
      assert.same({ 2, 4 }, keys)
      assert.is_true(db:drop_index("t", "cy", "c", "by_n"))
      assert.equal("cy", last_user(db, "t"))
      assert.is_false(db:drop_index("t", "cy", "c", "by_n"))
      assert.is_true(db:create_index("t", "al", "c", "e", "n", { message = "m" }))
      assert.equal("m", db:log("t", { max = 1 })[1].message)
    end)

    it("is never misread when the user id is also the name of an entry", function()
      -- 'c' is an entry and a user here; 'd' an entry written by nobody named so
      db:put("t", "w", "d", "x", { n = 3 })
      assert.is_true(db:set_ttl("t", "c", "d", "exp"))
      assert.equal("c", last_user(db, "t"))
      assert.equal("exp", db:_collection_info("t", "d", db:get_digest("t", "d")).ttl)
      assert.is_nil(db:_collection_info("t", "c", db:get_digest("t", "c")).ttl)
      assert.is_true(db:create_index("t", "c", "d", "by_n", "n"))
      assert.is_nil(db:_collection_info("t", "c", db:get_digest("t", "c")).indexes.by_n)
      assert.is_true(db:drop_index("t", "c", "d", "by_n"))
      assert.equal("c", last_user(db, "t"))
      -- a removal written with false on an entry: always the new order
      assert.is_true(db:set_ttl("t", "c", "d", false))
      assert.is_nil(db:_collection_info("t", "d", db:get_digest("t", "d")).ttl)
    end)

    it("creates a new entry (set_ttl, create_index with a function at 5) whatever the user is called", function()
      assert.is_true(db:set_ttl("t", "ann", "fresh", "exp"))
      assert.equal("exp", db:_collection_info("t", "fresh", db:get_digest("t", "fresh")).ttl)
      assert.is_true(db:create_index("t", "c", "fresh2", "ix", function(v) return v.n end))
      assert.is_true(db:exists("t", "fresh2"))
      assert.is_nil(db:_collection_info("t", "c", db:get_digest("t", "c")).indexes.ix)
    end)
  end)

  describe("the old order (tenant, entry, ... [, user])", function()
    it("set_ttl without and with a user, and nil to remove", function()
      assert.is_true(db:set_ttl("t", "c", "exp"))
      assert.equal("mydb", last_user(db, "t"))
      assert.is_true(db:set_ttl("t", "c", "n", "admin"))
      assert.equal("admin", last_user(db, "t"))
      assert.equal("n", db:_collection_info("t", "c", db:get_digest("t", "c")).ttl)
      assert.is_true(db:set_ttl("t", "c", nil))
      assert.is_nil(db:_collection_info("t", "c", db:get_digest("t", "c")).ttl)
      assert.is_true(db:set_ttl("t", "fresh", "exp")) -- a new entry: the old order
      assert.equal("exp", db:_collection_info("t", "fresh", db:get_digest("t", "fresh")).ttl)
    end)

    it("set_ttl(tenant, user, entry, nil) of an existing entry by a user who is no entry: the new order", function()
      db:set_ttl("t", "w", "c", "exp")
      assert.is_true(db:set_ttl("t", "zed", "c", nil))
      assert.equal("zed", last_user(db, "t"))
      assert.is_nil(db:_collection_info("t", "c", db:get_digest("t", "c")).ttl)
    end)

    it("create_index: an expression or a function, with and without a user or opts", function()
      assert.is_true(db:create_index("t", "c", "by_n", "n"))
      assert.equal("mydb", last_user(db, "t"))
      assert.is_true(db:create_index("t", "c", "by_f", function(v) return v.n end, "al"))
      assert.equal("al", last_user(db, "t"))
      assert.is_true(db:create_index("t", "c", "by_e", "n", "bo", { message = "old" }))
      assert.equal("bo", last_user(db, "t"))
      assert.equal("old", db:log("t", { max = 1 })[1].message)
      assert.is_true(db:create_index("t", "c", "by_o", "n", nil, { message = "o2" }))
      assert.equal("o2", db:log("t", { max = 1 })[1].message)
      local ixs = db:_collection_info("t", "c", db:get_digest("t", "c")).indexes
      assert.truthy(ixs.by_n and ixs.by_f and ixs.by_e and ixs.by_o)
    end)

    it("drop_index with and without a user", function()
      db:create_index("t", "w", "c", "i1", "n")
      db:create_index("t", "w", "c", "i2", "n")
      assert.is_true(db:drop_index("t", "c", "i1"))
      assert.equal("mydb", last_user(db, "t"))
      assert.is_true(db:drop_index("t", "c", "i2", "al"))
      assert.equal("al", last_user(db, "t"))
      assert.same({}, db:_collection_info("t", "c", db:get_digest("t", "c")).indexes)
    end)

    it("keeps the old checks: bad users, snapshots, uninitialized tenants", function()
      db:save("t", "w", "snap", 1)
      H.assert_error_code(db.set_ttl, "invalid_argument", db, "t", "c", "exp", 5)
      H.assert_error_code(db.set_ttl, "invalid_argument", db, "t", "c", "exp", "")
      H.assert_error_code(db.set_ttl, "type_mismatch", db, "t", "snap", "exp")
      H.assert_error_code(db.set_ttl, "not_initialized", db, "nope", "c", "exp")
      H.assert_error_code(db.create_index, "invalid_argument", db, "t", "c", "ix")
      H.assert_error_code(db.drop_index, "invalid_argument", db, "t", "c", nil)
      H.assert_error_code(db.set_ttl, "type_mismatch", db, "t", "w", "snap", "exp")
    end)
  end)
end)

describe("the deprecation warning", function()
  local CHILD = [[
    local mydb = require "mydb"
    local db = mydb.open(arg[1], { backend = "memory" })
    db:init("t")
    db:put("t", "w", "c", "a", { n = 1 })
    for _ = 1, 3 do db:set_ttl("t", "c", "exp") end            -- line 5: one site, three calls
    db:set_ttl("t", "c", "n")                                   -- line 6
    db:create_index("t", "c", "ix", "n")                        -- line 7
    db:drop_index("t", "c", "ix")                               -- line 8
    db:set_ttl("t", "w", "c", "exp")                            -- line 9: the new order
    db:create_index("t", "w", "c", "ix", "n")                   -- line 10
    db:drop_index("t", "w", "c", "ix")                          -- line 11
    mydb.deprecation_warnings = false
    db:set_ttl("t", "c", "exp2")                                -- line 13: silenced
    io.stdout:write("done\n")
  ]]

  it("is printed on stderr once per call site, names the line and the new order, and can be silenced", function()
    -- (not H.run_lua: its scratch directory ends in ".mydb", and mydb takes
    -- any "mydb/NAME.lua" for one of its own files, skipped by errors.caller)
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -m 700 " .. H.q(dir)))
    H.write_file(dir .. "/chunk.lua", CHILD)
    local out, ok = H.read_cmd(("cd %s && LUA_PATH=%s LUA_CPATH=%s %s chunk.lua %s 2>&1"):format(H.q(dir),
      H.q(H.LUA_PATH), H.q(H.LUA_CPATH), H.LUA, H.q(dir .. "/db")))
    H.rmrf(dir)
    assert.is_true(ok, out)
    local lines = {}
    for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.equal("done", lines[#lines])
    assert.equal(5, #lines, out)
    assert.matches("^mydb: warning: [^\n]*chunk%.lua:5: db:set_ttl with user last is deprecated", lines[1])
    assert.matches("removed in mydb 0%.3%.0; call db:set_ttl%(tenant, user, entry, field %[, opts%]%)", lines[1])
    assert.matches("mydb%.deprecation_warnings = false", lines[1])
    assert.matches("chunk%.lua:6: db:set_ttl", lines[2])
    assert.matches("chunk%.lua:7: db:create_index with user last", lines[3])
    assert.matches("db:create_index%(tenant, user, entry, name, key_fn %[, opts%]%)", lines[3])
    assert.matches("chunk%.lua:8: db:drop_index with user last", lines[4])
  end)
end)
