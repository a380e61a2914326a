-- Issue 7 §4: db:batch applies many changes to a tenant as one commit:
-- one head journal line, one new version per touched entry, nothing at all
-- when the function raises, never half a batch for a reader.
local H = require "spec.helper"
local U = require "spec.peers_util"

describe("peers: batch", function()
  local S = H.use_store({ tenant = "t" })
  local db
  before_each(function()
    db = S.db
    db:put_many("t", "u", "users", { ann = { age = 31 }, bob = { age = 22 } })
    db:save("t", "u", "config", { theme = "dark" })
    db:put("t", "u", "old", "k", "v")
    db:put("t", "u", "keep", "k", "v")
  end)

  -- {entry = digest} for every entry of the tenant
  local function heads()
    local out = {}
    for _, e in ipairs(db:entries("t")) do out[e] = db:get_digest("t", e) end
    return out
  end

  it("puts, a save, a delete and a drop across entries: one head line, one version each", function()
    local lines0 = U.head(S.root, "t")
    local before = heads()
    local r = db:batch("t", "batcher", function(b)
      b:put("users", "cy", { age = 40 })
      b:put("users", "ann", { age = 32 })
      b:delete("users", "bob")
      b:put_many("orders", { o1 = { total = 5 }, o2 = { total = 7 } })
      b:save("config", { theme = "light" })
      b:drop("old")
    end)
    assert.is_true(r)
    assert.equal(lines0 + 1, (U.head(S.root, "t")))
    -- everything is there
    assert.same({ ann = { age = 32 }, cy = { age = 40 } }, db:load("t", "users"))
    assert.same({ o1 = { total = 5 }, o2 = { total = 7 } }, db:load("t", "orders"))
    assert.same({ theme = "light" }, db:load("t", "config"))
    assert.is_false(db:exists("t", "old"))
    assert.same({ "config", "keep", "orders", "users" }, db:entries("t"))
    -- one new version per touched entry, chained to the one before
    assert.equal(2, #db:history("t", "users"))
    assert.equal(before.users, db:meta("t", "users").parent)
    assert.equal(2, #db:history("t", "config"))
    assert.equal(before.config, db:meta("t", "config").parent)
    assert.equal(1, #db:history("t", "orders"))
    assert.is_nil(db:meta("t", "orders").parent)
    assert.equal("batcher", db:meta("t", "users").user_id)
    assert.equal("batcher", db:meta("t", "config").user_id)
    -- untouched entries keep their digest
    assert.equal(before.keep, db:get_digest("t", "keep"))
    -- the one new journal line names exactly the touched entries
    local _, bytes = U.head(S.root, "t")
    local last = bytes:match("([^\n]+)\n$")
    local line = require("cjson").decode(last)
    local named = {}
    for _, pair in ipairs(line) do
      if pair[1]:byte(1) ~= 0 then named[#named + 1] = pair[1] end -- (and the branch: "\0heads/main")
    end
    table.sort(named)
    assert.same({ "config", "old", "orders", "users" }, named)
  end)

  it("a batch that changes nothing returns false and writes nothing", function()
    local lines0, bytes0 = U.head(S.root, "t")
    local objects = U.objects(S.root, "t")
    assert.is_false(db:batch("t", "u", function() end))
    assert.is_false(db:batch("t", "u", function(b)
      b:put("users", "ann", { age = 31 })  -- unchanged
      b:delete("users", "nobody")          -- absent
      b:drop("never-was")                  -- missing
      b:put_many("keep", { k = "v" })      -- unchanged
    end))
    local lines1, bytes1 = U.head(S.root, "t")
    assert.equal(lines0, lines1)
    assert.equal(bytes0, bytes1)
    assert.equal(objects, U.objects(S.root, "t"))
  end)

  it("only the entries that changed get a version", function()
    local before = heads()
    assert.is_true(db:batch("t", "u", function(b)
      b:put("users", "ann", { age = 31 })  -- unchanged
      b:put("keep", "k2", 1)
    end))
    assert.equal(before.users, db:get_digest("t", "users"))
    assert.equal(2, #db:history("t", "keep"))
  end)

  it("several calls on one entry make one version with all of them", function()
    assert.is_true(db:batch("t", "u", function(b)
      b:put("users", "a", 1)
      b:put("users", "a", 2)     -- the last one wins
      b:put("users", "b", 1)
      b:delete("users", "b")     -- put then delete: absent
      b:delete("users", "ann")
      b:put("users", "ann", 9)   -- delete then put: present
      b:put_many("users", { c = 3, d = 4 })
    end))
    assert.equal(2, #db:history("t", "users"))
    assert.same({ a = 2, ann = 9, bob = { age = 22 }, c = 3, d = 4 }, db:load("t", "users"))
  end)

  it("drop then writes to the same entry: a new chain, as with db:drop then db:put", function()
    local events = {}
    db:on_change(function(e) events[#events + 1] = e.action .. ":" .. e.entry .. ":" .. tostring(e.key) end)
    assert.is_true(db:batch("t", "u", function(b)
      b:drop("users")
      b:put("users", "cy", 3)
      b:drop("config")
      b:put("config", "now", "a collection")   -- the kind may change, as after db:drop
      b:drop("keep")
      b:delete("keep", "absent")               -- writes nothing: the drop stands
      b:put("old", "k", "w")
      b:drop("old")                            -- drop last: dropped
    end))
    assert.same({ cy = 3 }, db:load("t", "users"))
    assert.is_nil(db:meta("t", "users").parent)
    assert.same({ now = "a collection" }, db:load("t", "config"))
    assert.is_nil(db:meta("t", "config").parent)
    assert.is_false(db:exists("t", "keep"))
    assert.is_false(db:exists("t", "old"))
    table.sort(events)
    assert.same({ "drop:config:nil", "drop:keep:nil", "drop:old:nil", "drop:users:nil",
                  "put:config:now", "put:users:cy" }, events)
  end)

  it("reads and writes made inside the function keep the batch's refs (nothing lost)", function()
    local policies = require "mydb.policies"
    local policy = { use_refs = function(v) return type(v) == "table" and v.blob and { "blob" } or nil end }
    policies.register(policy)
    local ok, err = pcall(function()
      assert.is_true(db:batch("t", "u", function(b)
        b:put("users", "big", { blob = ("payload "):rep(200) })
        b:save("config", { theme = "x", blob = ("settings "):rep(200) })
        local ann = db:get("t", "users", "ann")               -- read-modify-write
        db:load("t", "config")
        db:put("t", "u", "other", "k", { blob = ("other "):rep(100) }) -- a write of its own
        b:put("users", "ann", { age = ann.age + 1 })
      end))
    end)
    policies.unregister(policy)
    assert(ok, tostring(err))
    assert.equal(("payload "):rep(200), db:get("t", "users", "big").blob)
    assert.equal(("settings "):rep(200), db:load("t", "config").blob)
    assert.equal(("other "):rep(100), db:get("t", "other", "k").blob)
    assert.same({ age = 32 }, db:get("t", "users", "ann"))
    assert.same({}, db:verify())
  end)

  it("if the function raises, nothing at all is written and the error propagates", function()
    local lines0, bytes0 = U.head(S.root, "t")
    local objects = U.objects(S.root, "t")
    local before = heads()
    local marker = setmetatable({}, { __tostring = function() return "marker" end })
    local ok, err = pcall(db.batch, db, "t", "u", function(b)
      b:put("users", "cy", { age = 40 })
      b:save("config", { theme = "light" })
      b:drop("old")
      b:put_many("fresh", { x = 1 })
      error(marker)
    end)
    assert.is_false(ok)
    assert.equal(marker, err) -- the very value raised
    ok, err = pcall(db.batch, db, "t", "u", function(b)
      b:put("users", "cy", { age = 40 })
      error("plain message")
    end)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("plain message", 1, true))
    -- a mydb error raised by a batch method propagates with its code
    H.assert_error_code(db.batch, "invalid_argument", db, "t", "u", function(b)
      b:put("users", "cy", { age = 40 })
      b:put("users", 5, 1)
    end)
    H.assert_error_code(db.batch, "unsupported_value", db, "t", "u", function(b)
      b:put("users", "cy", { age = 40 })
      b:save("config", { f = print })
    end)
    local lines1, bytes1 = U.head(S.root, "t")
    assert.equal(lines0, lines1)
    assert.equal(bytes0, bytes1)
    assert.equal(objects, U.objects(S.root, "t"))
    assert.same(before, heads())
    assert.is_nil(db:get("t", "users", "cy"))
    assert.is_true(db:exists("t", "old"))
    assert.is_false(db:exists("t", "fresh"))
  end)

  it("a failure found at commit time writes nothing either", function()
    local lines0, bytes0 = U.head(S.root, "t")
    local objects = U.objects(S.root, "t")
    -- config is a snapshot entry, users a collection: detected when committing
    H.assert_error_code(db.batch, "type_mismatch", db, "t", "u", function(b)
      b:put("aaa", "k", 1)
      b:put("config", "k", 1)
    end)
    H.assert_error_code(db.batch, "type_mismatch", db, "t", "u", function(b)
      b:save("aaa", 1)
      b:save("users", { 1 })
    end)
    H.assert_error_code(db.batch, "type_mismatch", db, "t", "u", function(b)
      b:put("aaa", "k", 1)
      b:delete("config", "theme")
    end)
    local lines1, bytes1 = U.head(S.root, "t")
    assert.equal(lines0, lines1)
    assert.equal(bytes0, bytes1)
    assert.equal(objects, U.objects(S.root, "t"))
    assert.is_false(db:exists("t", "aaa"))
  end)

  it("mixing save and put on one entry is type_mismatch", function()
    H.assert_error_code(db.batch, "type_mismatch", db, "t", "u", function(b)
      b:save("new", { a = 1 })
      b:put("new", "k", 1)
    end)
    H.assert_error_code(db.batch, "type_mismatch", db, "t", "u", function(b)
      b:put("new", "k", 1)
      b:save("new", { a = 1 })
    end)
    H.assert_error_code(db.batch, "type_mismatch", db, "t", "u", function(b)
      b:delete("new", "k")
      b:save("new", { a = 1 })
    end)
    H.assert_error_code(db.batch, "type_mismatch", db, "t", "u", function(b)
      b:save("new", 1)
      b:put_many("new", { k = 1 })
    end)
    assert.is_false(db:exists("t", "new"))
  end)

  it("batch methods after the batch ended raise invalid_argument", function()
    local saved
    db:batch("t", "u", function(b)
      saved = b
      b:put("users", "cy", 1)
    end)
    local n = #db:history("t", "users")
    for _, call in ipairs({
      function() saved:put("users", "dd", 1) end,
      function() saved:put_many("users", { dd = 1 }) end,
      function() saved:delete("users", "cy") end,
      function() saved:save("config", 1) end,
      function() saved:drop("users") end,
    }) do
      local err = H.assert_error_code(call, "invalid_argument")
      assert.truthy(err.message:find("over", 1, true), err.message)
    end
    -- also after a batch that raised
    pcall(db.batch, db, "t", "u", function(b) saved = b; error("x") end)
    H.assert_error_code(function() saved:put("users", "dd", 1) end, "invalid_argument")
    assert.equal(n, #db:history("t", "users"))
    assert.is_nil(db:get("t", "users", "dd"))
    assert.equal(1, db:get("t", "users", "cy"))
  end)

  it("refuses bad arguments (to batch and to its methods)", function()
    H.assert_error_code(db.batch, "invalid_argument", db, "t", "u", nil)
    H.assert_error_code(db.batch, "invalid_argument", db, "t", "u", "function")
    H.assert_error_code(db.batch, "invalid_argument", db, "t", "", function() end)
    H.assert_error_code(db.batch, "invalid_argument", db, "t", 1, function() end)
    H.assert_error_code(db.batch, "invalid_argument", db, 1, "u", function() end)
    H.assert_error_code(db.batch, "not_initialized", db, "nope", "u", function() end)
    H.assert_error_code(db.batch, "invalid_argument", db.batch, "t", "u", function() end)
    local function bad(code, f) H.assert_error_code(db.batch, code, db, "t", "u", f) end
    bad("invalid_argument", function(b) b:put("users", "k", nil) end)
    bad("invalid_argument", function(b) b:put("users", "a\0b", 1) end)
    bad("invalid_argument", function(b) b:put("", "k", 1) end)
    bad("invalid_argument", function(b) b:put(1, "k", 1) end)
    bad("invalid_argument", function(b) b:delete("users", 1) end)
    bad("invalid_argument", function(b) b:put_many("users", "x") end)
    bad("invalid_argument", function(b) b:put_many("users", { [1] = 1, k = 2 }) end)
    bad("invalid_argument", function(b) b:drop(false) end)
    bad("unsupported_value", function(b) b:put("users", "k", coroutine.create(print)) end)
    assert.equal(1, #db:history("t", "users"))
  end)

  it("a reader in another process never sees half a batch", function()
    -- the writer bumps a counter in two entries per batch; the reader reads
    -- a, b, a: when both reads of a agree, b must carry the same counter
    local N = 120
    local results = H.run_lua_parallel({
      ([[
        local db = require("mydb").open(%q, { fsync = false })
        -- wait until the reader runs, so that it watches the whole run
        local deadline = os.time() + 20
        while not db:exists("t", "reader_ready") and os.time() < deadline do end
        for i = 1, %d do
          db:batch("t", "w", function(b)
            b:put("pa", "n", i)
            b:put_many("pb", { n = i, other = i * 2 })
          end)
        end
        print("writer done")
      ]]):format(S.root, N),
      ([[
        local db = require("mydb").open(%q, { fsync = false })
        local checks, bad, last = 0, 0, 0
        db:put("t", "r", "reader_ready", "k", true)
        local deadline = os.time() + 20
        while last < %d and os.time() < deadline do
          local ok, a1 = pcall(db.get, db, "t", "pa", "n")
          if ok and a1 then
            local b = db:get("t", "pb", "n")
            local a2 = db:get("t", "pa", "n")
            if a1 == a2 then
              checks = checks + 1
              if b ~= a1 then bad = bad + 1; print("half batch: a=" .. a1 .. " b=" .. tostring(b)) end
            end
            if a2 < last then bad = bad + 1; print("went back") end
            last = a2
          end
        end
        print(("reader checks=%%d bad=%%d last=%%d"):format(checks, bad, last))
      ]]):format(S.root, N),
    })
    assert(results[1].ok, results[1].out)
    assert(results[2].ok, results[2].out)
    assert.truthy(results[1].out:find("writer done", 1, true))
    local checks, bad, last = results[2].out:match("reader checks=(%d+) bad=(%d+) last=(%d+)")
    assert(checks, results[2].out)
    assert.equal("0", bad, results[2].out)
    assert.equal(tostring(N), last, results[2].out)
    assert.is_true(tonumber(checks) >= 10, results[2].out)
    assert.equal(N, #db:history("t", "pa", nil, 1000))
    assert.equal(N, #db:history("t", "pb", nil, 1000))
    -- the window a split commit would open is tiny, so also check what every
    -- reader replays: each journal line that moves pa moves pb as well
    local _, bytes = U.head(S.root, "t")
    local lines = 0
    for line in bytes:gmatch("[^\n]+") do
      local has_a = line:find('["pa",', 1, true) ~= nil
      local has_b = line:find('["pb",', 1, true) ~= nil
      assert.equal(has_a, has_b, line)
      if has_a then lines = lines + 1 end
    end
    assert.equal(N, lines)
  end)
end)
