-- Verification (issue 5 §3): db:verify([tenant]) re-reads the store from
-- disk and names every kind of damage - a flipped byte, a truncated file, a
-- missing object, a dangling head, a broken chain, a damaged or missing
-- ref, a damaged or missing collection piece, a malformed head journal, a
-- stray file - and is empty on a sound store; load, get, records, query,
-- meta and history on damaged data raise corrupt (spec/corrupt_spec.lua
-- covers more shapes of garbage for load/get; this file adds what was left).
local H = require "spec.helper"
local mydb = require "mydb"

-- MYDB_BACKEND (spec/helper.lua) runs the suite on another backend: a test
-- that needs the loose layout's files, or a store on disk that other
-- processes see, is then reported pending and not run.
local function it_if(ok, why)
  return function(name, fn)
    it(name, function(...)
      if not ok then return pending(H.BACKEND .. " backend: " .. why) end
      return fn(...)
    end)
  end
end
local it_loose = it_if(H.BACKEND == "loose", "inspects or damages the loose layout's files")

local function flip(path, at)
  local bytes = H.read_file(path)
  at = at or (#bytes // 2 + 1)
  H.write_file(path, bytes:sub(1, at - 1) .. string.char(bytes:byte(at) ~ 1) .. bytes:sub(at + 1))
end

local function truncate(path)
  local bytes = H.read_file(path)
  H.write_file(path, bytes:sub(1, #bytes // 2))
end

local function ref_path(root, digest)
  return ("%s/refs/%s/%s"):format(root, digest:sub(1, 24), digest)
end

-- {kind = {problem, ...}} of a problem list.
local function by_kind(problems)
  local out = {}
  for _, p in ipairs(problems) do
    out[p.kind] = out[p.kind] or {}
    table.insert(out[p.kind], p)
  end
  return out
end

-- Asserts that problems hold one of kind about digest (and returns it).
local function has(problems, kind, digest, pattern)
  for _, p in ipairs(problems) do
    if p.kind == kind and (digest == nil or p.digest == digest) then
      assert.is_string(p.message)
      if pattern then assert.matches(pattern, p.message) end
      return p
    end
  end
  local seen = {}
  for _, p in ipairs(problems) do seen[#seen + 1] = p.kind .. " " .. tostring(p.digest) end
  error(("expected a %s problem about %s; got: %s"):format(kind, tostring(digest), table.concat(seen, "; ")), 2)
end

describe("guarantee: db:verify", function()
  local S = H.use_store({ tenant = "t" })
  local Doc = { use_refs = { "blob" } }
  local st -- what build() made

  before_each(function()
    mydb.register_class("VerifyDoc", Doc, { replace = true })
  end)
  after_each(function() mydb.unregister_class("VerifyDoc") end)

  -- A store with: snapshot entry "e" in 3 versions, a collection "c" of
  -- 3,000 records (stored leaves under a stored inner root),
  -- a snapshot "r" whose field lives in refs/, and a second tenant "u".
  local function build()
    st = { e = {} }
    for i = 1, 3 do st.e[i] = S.db:save("t", "alice", "e", { v = i, text = ("hello %d"):format(i) }) end
    local items = {}
    for i = 1, 3000 do items[("key%05d"):format(i)] = { i = i } end
    S.db:put_many("t", "alice", "c", items)
    st.c = S.db:get_digest("t", "c")
    local info = H.collection_of(S.root, "t", st.c)
    assert.is_string(info.root, "expected an inner root, stored and named by its digest")
    st.node = info.root
    assert.is_table(H.read_piece(S.root, "t", st.node).node, "expected a stored inner piece")
    st.leaf = H.first_leaf_digest(S.root, "t", info.root)
    st.first_key = H.read_piece(S.root, "t", st.leaf).leaf[1][1]
    st.r = S.db:save("t", "alice", "r", setmetatable({ blob = { ("x"):rep(100), 1, 2, 3 } }, Doc))
    local refs = {}
    for _, p in ipairs(H.listing(S.root .. "/refs")) do
      local name = p:match("^%./[^/]+/(%x+)$")
      if name then refs[#refs + 1] = name end
    end
    assert.equal(1, #refs)
    st.ref = refs[1]
    S.db:init("u")
    S.db:save("u", "bob", "other", { fine = true })
  end

  local function verify(tenant)
    return S.open_again({ fsync = false, cache_bytes = 0 }):verify(tenant)
  end

  it_loose("finds nothing in a sound store, and counts what it checked", function()
    build()
    local problems, stats = verify()
    assert.same({}, problems)
    assert.equal(2, stats.tenants)
    assert.equal(4, stats.entries)        -- e, c, r in t; other in u
    assert.equal(1, stats.refs)
    assert.is_true(stats.objects > 20)    -- snapshots and pieces (~2 KiB each)
    assert.equal(3 + 1 + 1 + 1, stats.versions)
  end)

  it_loose("finds a flipped byte in a snapshot (the head's): corrupt_object and dangling_head", function()
    build()
    flip(H.object_path(S.root, "t", st.e[3]))
    local problems = verify()
    has(problems, "corrupt_object", st.e[3])
    has(problems, "dangling_head", st.e[3], "damaged")
  end)

  it_loose("finds a truncated file", function()
    build()
    truncate(H.object_path(S.root, "t", st.e[3]))
    has(verify(), "corrupt_object", st.e[3])
    H.write_file(H.object_path(S.root, "t", st.e[3]), "")
    has(verify(), "corrupt_object", st.e[3])
  end)

  it_loose("finds a missing object: the head points to nothing", function()
    build()
    os.remove(H.object_path(S.root, "t", st.e[3]))
    local p = has(verify(), "dangling_head", st.e[3], "missing")
    assert.equal("e", p.entry)
    assert.equal("t", p.tenant)
  end)

  it_loose("finds a dangling head: a journal line naming a digest never written", function()
    build()
    local ghost = ("ab"):rep(32)
    local store = require("mydb.core").open(S.root, { fsync = false })
    local lock = store:lock("t")
    lock:commit({ { "ghost", ghost } })
    lock:release()
    store:close()
    local p = has(verify(), "dangling_head", ghost, "missing")
    assert.equal("ghost", p.entry)
  end)

  it_loose("finds a broken chain: an older version missing, or damaged", function()
    build()
    os.remove(H.object_path(S.root, "t", st.e[1]))
    has(verify(), "broken_chain", st.e[1], "missing")
  end)

  it_loose("finds a broken chain through a damaged older version", function()
    build()
    flip(H.object_path(S.root, "t", st.e[2]))
    local problems = verify()
    has(problems, "corrupt_object", st.e[2])
    has(problems, "broken_chain", st.e[2], "damaged")
  end)

  it_loose("finds a damaged ref and a missing ref", function()
    build()
    flip(ref_path(S.root, st.ref))
    has(verify(), "corrupt_ref", st.ref)
    os.remove(ref_path(S.root, st.ref))
    local p = has(verify(), "missing_ref", st.ref)
    assert.equal("t", p.tenant)
  end)

  it_loose("finds a damaged collection leaf and a missing one", function()
    build()
    flip(H.object_path(S.root, "t", st.leaf))
    local problems = verify()
    has(problems, "corrupt_object", st.leaf)
    has(problems, "missing_piece", st.leaf, "damaged")
    os.remove(H.object_path(S.root, "t", st.leaf))
    has(verify(), "missing_piece", st.leaf, "missing")
  end)

  it_loose("finds a damaged inner piece", function()
    build()
    truncate(H.object_path(S.root, "t", st.node))
    local problems = verify()
    has(problems, "corrupt_object", st.node)
    has(problems, "missing_piece", st.node, "damaged")
  end)

  it_loose("finds a malformed head journal", function()
    build()
    local head = S.root .. "/t/head"
    H.write_file(head, (H.read_file(head):gsub("\n", "\nnot json\n", 1)))
    has(verify(), "corrupt_head")
  end)

  it_loose("finds a stray file among the objects", function()
    build()
    H.write_file(("%s/t/objects/%s/notes.txt"):format(S.root, st.e[1]:sub(1, 24)), "hello")
    has(verify(), "stray_file", "notes.txt")
  end)

  it_loose("checks only the tenant asked for", function()
    build()
    flip(H.object_path(S.root, "t", st.e[3]))
    assert.same({}, (verify("u")))
    assert.is_true(#verify("t") > 0)
    has(verify(), "corrupt_object", st.e[3])
  end)

  it_loose("reports several kinds of damage at once, one problem each, in a stable order", function()
    build()
    flip(H.object_path(S.root, "t", st.e[1]))
    os.remove(H.object_path(S.root, "t", st.leaf))
    flip(ref_path(S.root, st.ref))
    local problems = verify()
    local kinds = by_kind(problems)
    assert.equal(1, #kinds.corrupt_object)
    assert.equal(1, #kinds.broken_chain)
    assert.equal(1, #kinds.missing_piece)
    assert.equal(1, #kinds.corrupt_ref)
    local again = verify()
    assert.same(problems, again)
  end)

  describe("reads of damaged data", function()
    local function fresh() return S.open_again({ fsync = false, cache_bytes = 0 }) end

    it_loose("get, records and query raise corrupt for a truncated leaf", function()
      build()
      truncate(H.object_path(S.root, "t", st.leaf))
      H.assert_error_code(function() fresh():get("t", "c", st.first_key) end, "corrupt")
      H.assert_error_code(function() for _ in fresh():records("t", "c") do end end, "corrupt")
      H.assert_error_code(function() for _ in fresh():query("t", "c", { prefix = "key" }) do end end, "corrupt")
      H.assert_error_code(function() fresh():put("t", "u", "c", st.first_key, 1) end, "corrupt")
    end)

    it_loose("get raises corrupt for a damaged inner piece", function()
      build()
      flip(H.object_path(S.root, "t", st.node))
      H.assert_error_code(function() fresh():get("t", "c", st.first_key) end, "corrupt")
      H.assert_error_code(function() fresh():get("t", "c") end, "corrupt")
    end)

    it_loose("get raises corrupt for a flipped byte in the collection snapshot (its embedded root)", function()
      build()
      flip(H.object_path(S.root, "t", st.c))
      H.assert_error_code(function() fresh():get("t", "c", st.first_key) end, "corrupt")
      H.assert_error_code(function() fresh():load("t", "c") end, "corrupt")
    end)

    it_loose("load raises corrupt for a damaged ref", function()
      build()
      flip(ref_path(S.root, st.ref))
      H.assert_error_code(function() fresh():load("t", "r") end, "corrupt")
    end)

    it_loose("load, meta and history raise corrupt for a damaged older version; newer ones stay readable", function()
      build()
      flip(H.object_path(S.root, "t", st.e[1]))
      local db = fresh()
      assert.same({ v = 3, text = "hello 3" }, db:load("t", "e"))
      assert.same({ v = 2, text = "hello 2" }, db:load("t", "e", st.e[2]))
      H.assert_error_code(function() db:load("t", "e", st.e[1]) end, "corrupt")
      H.assert_error_code(function() db:meta("t", "e", st.e[1]) end, "corrupt")
      H.assert_error_code(function() db:history("t", "e") end, "corrupt")
    end)

    it_loose("a malformed head journal makes every read of the tenant raise corrupt, other tenants unaffected", function()
      build()
      local head = S.root .. "/t/head"
      H.write_file(head, (H.read_file(head):gsub("\n", "\n[[\"e\",\"nothex\"]]\n", 1)))
      local db = fresh()
      H.assert_error_code(function() db:load("t", "e") end, "corrupt")
      H.assert_error_code(function() db:get("t", "c", st.first_key) end, "corrupt")
      H.assert_error_code(function() db:entries("t") end, "corrupt")
      assert.same({ fine = true }, db:load("u", "other"))
    end)
  end)
end)
