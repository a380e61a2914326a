-- Refs (issue 3 §3): ROOT/refs is shared by every tenant and content-
-- addressed: the same bytes are stored once and load for everyone; a ref
-- whose bytes no longer match its digest raises corrupt.
local H = require "spec.helper"

local function ref_path(root, digest)
  return ("%s/refs/%s/%s"):format(root, digest:sub(1, 24), digest)
end

-- Files under ROOT/refs (digests).
local function ref_files(root)
  if H.BACKEND ~= "loose" then return H.object_names(root, nil) end
  local list = {}
  for _, p in ipairs(H.listing(root .. "/refs")) do
    local name = p:match("^%./[^/]+/([^/]+)$")
    if name then list[#list + 1] = name end
  end
  return list
end

describe("refs", function()
  local mydb, handlers, policies, F64Array
  local Doc = {}

  local function reset()
    for _, tag in ipairs(handlers.list()) do handlers.unregister(tag) end
    for _, p in ipairs(policies.list()) do policies.unregister(p) end
    mydb.unregister_class("RefDoc")
  end

  setup(function()
    mydb = require "mydb"
    handlers = require "mydb.handlers"
    policies = require "mydb.policies"
    F64Array = require "mydb.handlers.f64array"
  end)
  before_each(function()
    reset()
    handlers.register(F64Array)
    Doc.use_refs = { "payload" }
    mydb.register_class("RefDoc", Doc)
  end)
  after_each(function() reset() end)

  local S = H.use_store()

  local function numbers(n, scale)
    local t = {}
    for i = 1, n do t[i] = i * (scale or 0.5) end
    return t
  end

  describe("shared across tenants", function()
    it("identical ref-handler data saved by two tenants is one file in refs/, and loads for both", function()
      S.db:init("acme")
      S.db:init("globex")
      local d1 = S.db:save("acme", "alice", "series", { values = F64Array.new(numbers(1000)) })
      local d2 = S.db:save("globex", "bob", "other", { values = F64Array.new(numbers(1000)), owner = "bob" })
      local files = ref_files(S.root)
      assert.equal(1, #files)
      assert.equal(8000, #H.read_object(S.root, nil, files[1]))
      assert.are_not.equal(d1, d2)
      local a = S.db:load("acme", "series").values
      local b = S.db:load("globex", "other").values
      assert.equal(1000, #a)
      assert.equal(a, b)
      assert.equal(500.0, b[1000])
    end)

    it("identical use_refs fields saved by two tenants are one file in refs/", function()
      S.db:init("acme")
      S.db:init("globex")
      local payload = { rows = numbers(50, 1), name = "shared" }
      S.db:save("acme", "u", "e", setmetatable({ payload = payload, who = "acme" }, Doc))
      S.db:save("globex", "u", "e", setmetatable({ payload = payload, who = "globex" }, Doc))
      assert.equal(1, #ref_files(S.root))
      assert.same(payload, S.db:load("acme", "e").payload)
      assert.same(payload, S.db:load("globex", "e").payload)
      assert.equal("globex", S.db:load("globex", "e").who)
    end)

    it("a tenant's refs live outside its directory", function()
      S.db:init("acme")
      S.db:save("acme", "u", "e", { values = F64Array.new({ 1 }) })
      local found = false
      for _, p in ipairs(H.listing(S.root .. "/acme")) do
        if p:find("refs", 1, true) then found = true end
      end
      assert.is_false(found)
      assert.equal(1, #ref_files(S.root))
    end)
  end)

  describe("shared across versions", function()
    it("the same data in two versions is stored once; both versions load", function()
      S.db:init("t")
      local v1 = S.db:save("t", "u", "e", { values = F64Array.new(numbers(10)), rev = 1 })
      local v2 = S.db:save("t", "u", "e", { values = F64Array.new(numbers(10)), rev = 2 })
      assert.equal(1, #ref_files(S.root))
      assert.equal(1, S.db:load("t", "e", v1).rev)
      assert.equal(2, S.db:load("t", "e", v2).rev)
      assert.equal(S.db:load("t", "e", v1).values, S.db:load("t", "e", v2).values)
      -- different data: a second file
      S.db:save("t", "u", "e", { values = F64Array.new(numbers(11)), rev = 3 })
      assert.equal(2, #ref_files(S.root))
    end)

    it("records of a collection share refs with snapshots and with each other", function()
      S.db:init("t")
      S.db:put_many("t", "u", "c", {
        a = { values = F64Array.new(numbers(5)) },
        b = { values = F64Array.new(numbers(5)) },
      })
      S.db:save("t", "u", "s", F64Array.new(numbers(5)))
      assert.equal(1, #ref_files(S.root))
      assert.equal(S.db:get("t", "c", "a").values, S.db:load("t", "s"))
    end)
  end)

  describe("damaged", function()
    local function flip_byte(path, at)
      local bytes = H.read_file(path)
      at = at or (#bytes // 2 + 1)
      local b = bytes:byte(at)
      H.write_file(path, bytes:sub(1, at - 1) .. string.char(b ~ 1) .. bytes:sub(at + 1))
    end

    it("a ref-handler ref whose bytes no longer match its digest raises corrupt", function()
      H.needs_loose("damages a ref file (spec/backend_pack_spec.lua damages segments)")
      S.db:init("t")
      S.db:save("t", "u", "e", { values = F64Array.new(numbers(100)) })
      local digest = ref_files(S.root)[1]
      flip_byte(ref_path(S.root, digest))
      local err = H.assert_error_code(function() S.open_again():load("t", "e") end, "corrupt")
      assert.truthy(err.message:find(digest, 1, true) or err.message:find("refs", 1, true), err.message)
    end)

    it("a use_refs ref whose bytes no longer match its digest raises corrupt", function()
      H.needs_loose("damages a ref file (spec/backend_pack_spec.lua damages segments)")
      S.db:init("t")
      S.db:save("t", "u", "e", setmetatable({ payload = { 1, 2, 3 } }, Doc))
      local digest = ref_files(S.root)[1]
      flip_byte(ref_path(S.root, digest), 2) -- "[1,2,3]" -> "[0,2,3]": still valid JSON
      H.assert_error_code(function() S.open_again():load("t", "e") end, "corrupt")
    end)

    it("a truncated ref raises corrupt", function()
      H.needs_loose("damages a ref file (spec/backend_pack_spec.lua damages segments)")
      S.db:init("t")
      S.db:save("t", "u", "e", { values = F64Array.new(numbers(100)) })
      local path = ref_path(S.root, ref_files(S.root)[1])
      H.write_file(path, H.read_file(path):sub(1, 100))
      H.assert_error_code(function() S.open_again():load("t", "e") end, "corrupt")
    end)

    it("a missing ref raises not_found (like any missing object)", function()
      H.needs_loose("damages a ref file (spec/backend_pack_spec.lua damages segments)")
      S.db:init("t")
      S.db:save("t", "u", "e", { values = F64Array.new(numbers(100)) })
      os.remove(ref_path(S.root, ref_files(S.root)[1]))
      H.assert_error_code(function() S.open_again():load("t", "e") end, "not_found")
    end)

    it("a damaged ref does not stop other entries from loading", function()
      H.needs_loose("damages a ref file (spec/backend_pack_spec.lua damages segments)")
      S.db:init("t")
      S.db:save("t", "u", "e", { values = F64Array.new(numbers(100)) })
      S.db:save("t", "u", "plain", { x = 1 })
      flip_byte(ref_path(S.root, ref_files(S.root)[1]))
      local db = S.open_again()
      H.assert_error_code(function() db:load("t", "e") end, "corrupt")
      assert.same({ x = 1 }, db:load("t", "plain"))
    end)
  end)

  describe("writing", function()
    it("a failed save writes no ref file, even for values encoded before the failure", function()
      S.db:init("t")
      handlers.register({
        tag = "Boom",
        is_eligible_for = function(v) return v.boom == true end,
        serialize = function() error("boom") end,
        deserialize = function() end,
      })
      H.assert_error_code(function()
        S.db:save("t", "u", "e", { a = F64Array.new({ 1, 2 }), b = setmetatable({ payload = "p" }, Doc), z = { boom = true } })
      end, "handler_error")
      assert.same({}, ref_files(S.root))
      assert.is_false(S.db:exists("t", "e"))
    end)

    it("an unchanged put writes nothing, and refs already stored are not rewritten", function()
      S.db:init("t")
      S.db:put("t", "u", "c", "k", { values = F64Array.new({ 1, 2 }) })
      local digest = ref_files(S.root)[1]
      local path = ref_path(S.root, digest)
      local lfs_ok, lfs = pcall(require, "lfs")
      local ino = lfs_ok and lfs.attributes(path, "ino")
      assert.is_false(S.db:put("t", "u", "c", "k", { values = F64Array.new({ 1, 2 }) }))
      S.db:save("t", "u", "e", F64Array.new({ 1, 2 }))
      if lfs_ok then assert.equal(ino, lfs.attributes(path, "ino")) end
      assert.same({ digest }, ref_files(S.root))
    end)
  end)
end)
