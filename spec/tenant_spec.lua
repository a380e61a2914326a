-- Tenants: init, is_initialized, tenant id validation, not_initialized,
-- isolation between tenants (issue 2 §3 and §5).
local H = require "spec.helper"

-- Every tenant id that could escape the root or collide (issue 2 §5).
local BAD_TENANTS = {
  { "empty", "" },
  { "dot", "." },
  { "dot-dot", ".." },
  { "slash", "a/b" },
  { "leading slash", "/etc" },
  { "trailing slash", "a/" },
  { "parent escape", "../x" },
  { "backslash", "a\\b" },
  { "NUL", "a\0b" },
  { "trailing NUL", "acme\0" },
  { "leading dot", ".hidden" },
  { "leading dot (.tmp)", ".tmp" },
  { "reserved refs", "refs" },
  { "129 bytes", string.rep("x", 129) },
}

local NON_STRING_TENANTS = {
  { "nil", nil },
  { "number", 42 },
  { "boolean", true },
  { "table", {} },
  { "function", print },
}

local D = string.rep("a", 64)

-- method name -> function(db, tenant) calling it with that tenant
local CALLS = {
  init = function(db, t) return db:init(t) end,
  is_initialized = function(db, t) return db:is_initialized(t) end,
  save = function(db, t) return db:save(t, "u", "e", { a = 1 }) end,
  load = function(db, t) return db:load(t, "e") end,
  load_digest = function(db, t) return db:load(t, "e", D) end,
  put = function(db, t) return db:put(t, "u", "c", "k", 1) end,
  put_many = function(db, t) return db:put_many(t, "u", "c", { k = 1 }) end,
  get = function(db, t) return db:get(t, "c", "k") end,
  get_all = function(db, t) return db:get(t, "c") end,
  history = function(db, t) return db:history(t, "e") end,
  exists = function(db, t) return db:exists(t, "e") end,
  meta = function(db, t) return db:meta(t, "e") end,
  get_digest = function(db, t) return db:get_digest(t, "e") end,
  records = function(db, t) return db:records(t, "c") end,
}

local function sorted_names(t)
  local names = {}
  for k in pairs(t) do names[#names + 1] = k end
  table.sort(names)
  return names
end

describe("mydb.Db", function()
  describe("init", function()
    local S = H.use_store()

    it("creates the tenant directory with a head", function()
      H.needs_loose("the loose layout")
      S.db:init("acme")
      assert.is_true(H.file_exists(S.root .. "/acme/head"))
    end)

    it("is idempotent and keeps the tenant's data", function()
      S.db:init("acme")
      local d = S.db:save("acme", "u", "e", { a = 1 })
      S.db:init("acme")
      S.db:init("acme")
      assert.equal(d, S.db:get_digest("acme", "e"))
      assert.same({ a = 1 }, S.db:load("acme", "e"))
      local db2 = S.open_again()
      db2:init("acme")
      assert.same({ a = 1 }, db2:load("acme", "e"))
    end)

    it("accepts a 128-byte tenant id", function()
      local t = string.rep("t", 128)
      S.db:init(t)
      assert.is_true(S.db:is_initialized(t))
      local d = S.db:save(t, "u", "e", 1)
      assert.equal(1, S.db:load(t, "e"))
      assert.equal(d, S.db:get_digest(t, "e"))
      if H.BACKEND == "loose" then assert.is_true(H.file_exists(S.root .. "/" .. t .. "/head")) end
    end)

    it("accepts ids with dots, dashes, spaces and UTF-8 inside", function()
      for _, t in ipairs({ "a.b", "a..b", "acme-corp_1", "with space", "caf\u{e9}", "x." }) do
        S.db:init(t)
        assert.is_true(S.db:is_initialized(t), t)
        S.db:save(t, "u", "e", t)
        assert.equal(t, S.db:load(t, "e"))
      end
    end)
  end)

  describe("is_initialized", function()
    local S = H.use_store()

    it("is false before init and true after", function()
      assert.is_false(S.db:is_initialized("acme"))
      S.db:init("acme")
      assert.is_true(S.db:is_initialized("acme"))
      assert.is_false(S.db:is_initialized("other"))
    end)

    it("sees a tenant initialized by another handle", function()
      local db2 = S.open_again()
      assert.is_false(S.db:is_initialized("acme"))
      db2:init("acme")
      assert.is_true(S.db:is_initialized("acme"))
    end)

    it("creates nothing for an unknown tenant", function()
      local before = H.listing(S.root)
      assert.is_false(S.db:is_initialized("nobody"))
      assert.same(before, H.listing(S.root))
    end)
  end)

  describe("tenant id validation", function()
    local S = H.use_store()

    for _, name in ipairs(sorted_names(CALLS)) do
      local call = CALLS[name]
      describe(name, function()
        it("refuses every bad tenant id form with invalid_argument and creates nothing", function()
          S.db:init("good")
          local before = H.listing(S.root)
          local parent_before = H.listing(S.dir)
          for _, case in ipairs(BAD_TENANTS) do
            local ok, err = pcall(H.assert_error_code, call, "invalid_argument", S.db, case[2])
            assert(ok, ("tenant id that is %s: %s"):format(case[1], tostring(err)))
            assert.same(before, H.listing(S.root), "files created for tenant id that is " .. case[1])
            assert.same(parent_before, H.listing(S.dir), "files created for tenant id that is " .. case[1])
          end
        end)

        it("refuses tenant ids that are not strings with invalid_argument", function()
          local before = H.listing(S.root)
          for _, case in ipairs(NON_STRING_TENANTS) do
            local ok, err = pcall(H.assert_error_code, call, "invalid_argument", S.db, case[2])
            assert(ok, ("%s tenant: %s"):format(case[1], tostring(err)))
          end
          assert.same(before, H.listing(S.root))
        end)
      end)
    end

    it("never creates a directory outside the root", function()
      for _, case in ipairs(BAD_TENANTS) do pcall(S.db.init, S.db, case[2]) end
      -- S.dir holds only the root (the memory and postgres backends create
      -- not even that)
      assert.same((H.BACKEND == "memory" or H.BACKEND == "postgres") and {} or { "./db" }, (function()
        local top = {}
        for _, p in ipairs(H.listing(S.dir)) do
          if not p:find("/", 3, true) then top[#top + 1] = p end
        end
        return top
      end)())
      assert.is_false(H.file_exists("/etc/head"))
    end)

    it("names the tenant in the message", function()
      local err = H.assert_error_code(S.db.init, "invalid_argument", S.db, "refs")
      assert.truthy(err.message:find("refs", 1, true), err.message)
    end)
  end)

  describe("an uninitialized tenant", function()
    local S = H.use_store()

    it("makes save raise not_initialized and creates nothing", function()
      local before = H.listing(S.root)
      H.assert_error_code(function() S.db:save("nobody", "u", "e", { a = 1 }) end, "not_initialized")
      assert.same(before, H.listing(S.root))
      assert.is_false(S.db:is_initialized("nobody"))
    end)

    it("makes put raise not_initialized and creates nothing", function()
      local before = H.listing(S.root)
      H.assert_error_code(function() S.db:put("nobody", "u", "c", "k", 1) end, "not_initialized")
      assert.same(before, H.listing(S.root))
    end)

    it("makes put_many raise not_initialized and creates nothing", function()
      local before = H.listing(S.root)
      H.assert_error_code(function() S.db:put_many("nobody", "u", "c", { k = 1 }) end, "not_initialized")
      assert.same(before, H.listing(S.root))
    end)

    it("makes exists return false", function()
      assert.is_false(S.db:exists("nobody", "e"))
    end)

    it("makes the readers raise not_initialized or not_found", function()
      for _, name in ipairs({ "load", "get", "history", "meta", "get_digest" }) do
        local ok, err = pcall(CALLS[name], S.db, "nobody")
        assert.is_false(ok, name)
        assert.is_table(err, name)
        assert(err.code == "not_initialized" or err.code == "not_found",
          name .. ": " .. tostring(err))
      end
    end)
  end)

  describe("tenant isolation", function()
    local S = H.use_store()
    local da, dc
    before_each(function()
      S.db:init("A")
      S.db:init("B")
      da = S.db:save("A", "alice", "e", { secret = "A's" })
      S.db:put("A", "alice", "c", "k", "A's record")
      dc = S.db:get_digest("A", "c")
      S.db:save("B", "bob", "e", { secret = "B's" })
      S.db:put("B", "bob", "c", "k", "B's record")
    end)

    it("keeps entries apart", function()
      assert.same({ secret = "A's" }, S.db:load("A", "e"))
      assert.same({ secret = "B's" }, S.db:load("B", "e"))
      assert.equal("B's record", S.db:get("B", "c", "k"))
    end)

    it("makes load with a digest of another tenant raise not_found", function()
      H.assert_error_code(function() S.db:load("B", "e", da) end, "not_found")
    end)

    it("makes get with a digest of another tenant raise not_found", function()
      H.assert_error_code(function() S.db:get("B", "c", "k", dc) end, "not_found")
      H.assert_error_code(function() S.db:get("B", "c", nil, dc) end, "not_found")
    end)

    it("makes history from a digest of another tenant raise not_found", function()
      H.assert_error_code(function() S.db:history("B", "e", da) end, "not_found")
    end)

    it("makes meta with a digest of another tenant raise not_found", function()
      H.assert_error_code(function() S.db:meta("B", "e", da) end, "not_found")
    end)

    it("makes reads of a tenant without the entry raise not_found", function()
      S.db:init("C")
      H.assert_error_code(function() S.db:load("C", "e") end, "not_found")
      H.assert_error_code(function() S.db:get("C", "c", "k") end, "not_found")
      H.assert_error_code(function() S.db:history("C", "e") end, "not_found")
      H.assert_error_code(function() S.db:meta("C", "e") end, "not_found")
      assert.is_nil(S.db:get_digest("C", "e"))
      assert.is_false(S.db:exists("C", "e"))
    end)

    it("stores each tenant's objects under its own directory", function()
      local a = H.object_names(S.root, "A")
      local b = H.object_names(S.root, "B")
      local in_b = {}
      for _, n in ipairs(b) do in_b[n] = true end
      assert.is_true(#a > 0)
      for _, n in ipairs(a) do
        if n == da then assert.is_nil(in_b[n]) end
      end
      assert.is_true(H.object_exists(S.root, "A", da))
      assert.is_false(H.object_exists(S.root, "B", da))
    end)
  end)
end)
