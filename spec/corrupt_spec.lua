-- Damaged storage: stored bytes that do not match their digest or do not
-- parse raise corrupt, never wrong data or a crash (issue 2 §5).
local H = require "spec.helper"
local mydb = require "mydb"
local core = require "mydb.core"

describe("mydb.Db", function()
  local S = H.use_store({ tenant = "t" })

  -- A handle with no cache: every read goes to the files.
  local function fresh()
    return S.open_again({ fsync = false, cache_bytes = 0 })
  end

  -- Writes bytes as an object named by their SHA-256 (valid name, any
  -- content) and, when entry is given, points the entry's head at it
  -- through the core's lock:commit.
  local function plant(bytes, entry)
    local digest = H.write_object(S.root, "t", bytes)
    if entry then
      local store = core.open(S.root, { fsync = false, backend = H.BACKEND })
      local lock = store:lock("t")
      lock:commit({ { entry, digest } })
      lock:release()
      store:close()
    end
    return digest
  end

  local function snapshot(value_json)
    return '{"__date__":"20260101 00:00:00 +0000","__parent__":[null],"__user_id__":"u","__value__":'
        .. value_json .. "}"
  end

  describe("an object whose bytes no longer match its name", function()
    local d, path, bytes
    before_each(function()
      d = S.db:save("t", "u", "e", { a = 1, b = "hello world" })
      path = H.object_path(S.root, "t", d)
      bytes = H.BACKEND == "loose" and H.read_file(path)
    end)

    it("makes load raise corrupt after one flipped byte", function()
      H.needs_loose("damages an object file (pack: spec/backend_pack_spec.lua)")
      local i = #bytes - 5
      H.write_file(path, bytes:sub(1, i - 1) .. string.char(bytes:byte(i) ~ 1) .. bytes:sub(i + 1))
      H.assert_error_code(function() fresh():load("t", "e") end, "corrupt")
    end)

    it("makes meta and history raise corrupt after one flipped byte", function()
      H.needs_loose("damages an object file (pack: spec/backend_pack_spec.lua)")
      H.write_file(path, bytes:gsub("hello", "hellp"))
      H.assert_error_code(function() fresh():meta("t", "e") end, "corrupt")
      H.assert_error_code(function() fresh():history("t", "e") end, "corrupt")
    end)

    it("makes a flipped byte in the metadata raise corrupt", function()
      H.needs_loose("damages an object file (pack: spec/backend_pack_spec.lua)")
      H.write_file(path, bytes:gsub('"u"', '"v"', 1))
      H.assert_error_code(function() fresh():meta("t", "e") end, "corrupt")
      H.assert_error_code(function() fresh():load("t", "e") end, "corrupt")
    end)

    it("makes load raise corrupt after truncation", function()
      H.needs_loose("damages an object file (pack: spec/backend_pack_spec.lua)")
      H.write_file(path, bytes:sub(1, #bytes // 2))
      H.assert_error_code(function() fresh():load("t", "e") end, "corrupt")
      H.write_file(path, "")
      H.assert_error_code(function() fresh():load("t", "e") end, "corrupt")
    end)

    it("makes load raise corrupt when bytes are appended", function()
      H.needs_loose("damages an object file (pack: spec/backend_pack_spec.lua)")
      H.write_file(path, bytes .. "\n")
      H.assert_error_code(function() fresh():load("t", "e") end, "corrupt")
    end)

    it("never gives wrong data to a handle that read it before", function()
      H.needs_loose("damages an object file (pack: spec/backend_pack_spec.lua)")
      -- the handle may serve its verified copy, or raise corrupt
      local v = S.db:load("t", "e")
      assert.same({ a = 1, b = "hello world" }, v)
      H.write_file(path, bytes:gsub("hello", "HELLO"))
      local ok, got = pcall(S.db.load, S.db, "t", "e")
      if ok then
        assert.same({ a = 1, b = "hello world" }, got)
      else
        assert.equal("corrupt", got.code, tostring(got))
      end
    end)

    it("makes a corrupt older version raise corrupt in history and keeps newer ones readable", function()
      H.needs_loose("damages an object file (pack: spec/backend_pack_spec.lua)")
      local d2 = S.db:save("t", "u", "e", { a = 2 })
      H.write_file(path, bytes:gsub("hello", "jello"))
      local db = fresh()
      assert.same({ a = 2 }, db:load("t", "e"))
      assert.same({ d2 }, db:history("t", "e", nil, 1))
      H.assert_error_code(function() db:history("t", "e") end, "corrupt")
      H.assert_error_code(function() db:load("t", "e", d) end, "corrupt")
    end)
  end)

  describe("an object with a valid name but garbage content", function()
    local GARBAGE = {
      { "binary noise", "garbage\0\1\2\255" },
      { "an empty file", "" },
      { "a JSON array", "[1,2,3]" },
      { "a JSON string", '"hello"' },
      { "unterminated JSON", '{"__date__":"x","__parent__":[null],"__user_id__":"u","__value__":' },
      { "a bad __bytes__ tag", snapshot('{"__bytes__":"!!!"}') },
      { "a bad __float__ tag", snapshot('{"__float__":"many"}') },
      { "a dangling __id__", snapshot('{"__id__":5}') },
      { "a lone surrogate", snapshot('"\\ud800"') },
      { "a __map__ that is not a list of pairs", snapshot('{"__map__":[1,2]}') },
      { "100,000 levels of nesting", snapshot(("["):rep(100000) .. ("]"):rep(100000)) },
      { "100,000 levels of maps", snapshot(('{"a":'):rep(100000) .. "1" .. ("}"):rep(100000)) },
    }

    for _, case in ipairs(GARBAGE) do
      it("makes load raise corrupt for " .. case[1], function()
        plant(case[2], "e")
        H.assert_error_code(function() fresh():load("t", "e") end, "corrupt")
      end)
    end

    it("makes meta raise corrupt for binary noise", function()
      plant("garbage\0\1\2\255", "e")
      H.assert_error_code(function() fresh():meta("t", "e") end, "corrupt")
    end)

    it("makes history raise corrupt for binary noise", function()
      plant("garbage\0\1\2\255", "e")
      H.assert_error_code(function() fresh():history("t", "e") end, "corrupt")
    end)

    it("makes get raise corrupt, not type_mismatch, for binary noise", function()
      plant("garbage\0\1\2\255", "c")
      H.assert_error_code(function() fresh():get("t", "c", "k") end, "corrupt")
    end)

    it("makes meta raise corrupt for a snapshot followed by trailing bytes", function()
      plant(snapshot("1") .. " trailing", "e")
      H.assert_error_code(function() fresh():load("t", "e") end, "corrupt")
      H.assert_error_code(function() fresh():meta("t", "e") end, "corrupt")
    end)

    it("makes load and meta raise corrupt for a JSON object without snapshot metadata", function()
      plant('{"foo":1}', "e")
      H.assert_error_code(function() fresh():meta("t", "e") end, "corrupt")
      H.assert_error_code(function() fresh():load("t", "e") end, "corrupt")
    end)

    it("makes load raise corrupt for an integer literal beyond 64 bits", function()
      plant(snapshot("99999999999999999999"), "e")
      H.assert_error_code(function() fresh():load("t", "e") end, "corrupt")
    end)

    it("makes load raise unknown_tag for an unregistered class name", function()
      plant(snapshot('{"__object__":"NoSuchClass","x":1}'), "e")
      H.assert_error_code(function() fresh():load("t", "e") end, "unknown_tag")
    end)
  end)

  describe("a damaged record collection", function()
    local leaf, embedded, first_key

    -- 400 records: several leaves, so that at least one leaf is a stored
    -- object whatever the root (a digest or an embedded piece).
    before_each(function()
      local items = {}
      for i = 1, 400 do items[("key%04d"):format(i)] = { i = i } end
      S.db:put_many("t", "u", "c", items)
      local info = H.collection_of(S.root, "t", S.db:get_digest("t", "c"))
      embedded = type(info.root) == "table"
      leaf = H.first_leaf_digest(S.root, "t", info.root)
      assert.is_string(leaf, "no stored leaf found")
      first_key = H.read_piece(S.root, "t", leaf).leaf[1][1]
    end)

    -- Points entry "c" at a new collection snapshot whose root is the
    -- given piece text (embedded or stored, as the store does it).
    local function point_collection_at(piece_json, count)
      local root = embedded and piece_json or ('"' .. plant(piece_json) .. '"')
      return plant('{"__collection__":{"count":' .. (count or 3) .. ',"root":' .. root .. '},'
        .. '"__date__":"20260101 00:00:00 +0000","__parent__":[null],"__user_id__":"u"}', "c")
    end

    -- A root node whose children are the given piece texts (stored).
    local function node_over(...)
      local entries = {}
      for i, piece in ipairs({ ... }) do
        local d = plant(piece)
        local keys = {}
        for k in piece:gmatch('%[%["([^"]*)"') do keys[#keys + 1] = k end
        entries[i] = ('["%s","%s",%d]'):format(keys[1] or "", d, select(2, piece:gsub('%["[^"]*",', "")))
      end
      return '{"node":[' .. table.concat(entries, ",") .. "]}"
    end

    it("makes get, load and put raise corrupt when a leaf's bytes changed", function()
      H.needs_loose("damages a leaf file")
      local path = H.object_path(S.root, "t", leaf)
      local bytes = H.read_file(path)
      H.write_file(path, (bytes:gsub('"i":', '"j":', 1)))
      H.assert_error_code(function() fresh():get("t", "c", first_key) end, "corrupt")
      H.assert_error_code(function() fresh():get("t", "c") end, "corrupt")
      H.assert_error_code(function() fresh():load("t", "c") end, "corrupt")
      H.assert_error_code(function() fresh():put("t", "u", "c", first_key, 0) end, "corrupt")
    end)

    it("makes get raise not_found when a stored leaf is missing", function()
      H.needs_loose("damages a leaf file")
      os.remove(H.object_path(S.root, "t", leaf))
      H.assert_error_code(function() fresh():get("t", "c", first_key) end, "not_found")
      H.assert_error_code(function() fresh():load("t", "c") end, "not_found")
    end)

    it("makes get raise corrupt for a child piece that is not a piece", function()
      point_collection_at(node_over('{"leaf":[["a",1]]}', "garbage"), 2)
      H.assert_error_code(function() fresh():get("t", "c") end, "corrupt")
    end)

    it("makes get raise corrupt for an empty leaf", function()
      point_collection_at(node_over('{"leaf":[["a",1]]}', '{"leaf":[]}'), 1)
      H.assert_error_code(function() fresh():get("t", "c") end, "corrupt")
    end)

    it("makes get raise corrupt for a leaf key that is not a string", function()
      point_collection_at('{"leaf":[[1,1]]}', 1)
      H.assert_error_code(function() fresh():get("t", "c") end, "corrupt")
    end)

    it("makes get raise corrupt for a leaf whose keys are out of order", function()
      point_collection_at('{"leaf":[["b",1],["a",2],["c",3]]}', 3)
      H.assert_error_code(function() fresh():get("t", "c", "a") end, "corrupt")
    end)

    it("makes get and load raise corrupt for a collection snapshot with a bad count", function()
      plant('{"__collection__":{"count":"three","root":null},'
        .. '"__date__":"20260101 00:00:00 +0000","__parent__":[null],"__user_id__":"u"}', "c")
      H.assert_error_code(function() fresh():get("t", "c") end, "corrupt")
      H.assert_error_code(function() fresh():load("t", "c") end, "corrupt")
    end)
  end)

  describe("an object the head points to that was deleted", function()
    it("makes load, meta and history raise not_found", function()
      H.needs_loose("deletes an object file")
      local d = S.db:save("t", "u", "e", { a = 1 })
      os.remove(H.object_path(S.root, "t", d))
      local db = fresh()
      assert.equal(d, db:get_digest("t", "e"))
      assert.is_true(db:exists("t", "e"))
      H.assert_error_code(function() db:load("t", "e") end, "not_found")
      H.assert_error_code(function() db:meta("t", "e") end, "not_found")
      H.assert_error_code(function() db:history("t", "e") end, "not_found")
    end)

    it("makes history raise not_found when an older version was deleted", function()
      H.needs_loose("deletes an object file")
      local d1 = S.db:save("t", "u", "e", 1)
      S.db:save("t", "u", "e", 2)
      os.remove(H.object_path(S.root, "t", d1))
      local db = fresh()
      assert.equal(2, db:load("t", "e"))
      H.assert_error_code(function() db:history("t", "e") end, "not_found")
    end)
  end)

  describe("the head journal", function()
    local d1, d2, head_path, orig
    before_each(function()
      d1 = S.db:save("t", "u", "e", { v = 1 })
      d2 = S.db:save("t", "u", "e", { v = 2 })
      head_path = S.root .. "/t/head"
      orig = H.BACKEND == "loose" and H.read_file(head_path)
    end)

    it("ignores a torn last line and the next writer repairs it", function()
      H.needs_loose("damages the loose head journal (pack: spec/backend_pack_spec.lua)")
      H.write_file(head_path, orig .. '[["e","' .. d1 .. '"')
      local db = fresh()
      assert.equal(d2, db:get_digest("t", "e"))
      assert.same({ v = 2 }, db:load("t", "e"))
      local d3 = db:save("t", "u", "e", { v = 3 })
      local db2 = fresh()
      assert.equal(d3, db2:get_digest("t", "e"))
      assert.same({ d3, d2, d1 }, db2:history("t", "e"))
      local text = H.read_file(head_path)
      assert.equal("\n", text:sub(-1))
      for line in text:gmatch("[^\n]+") do
        -- (each commit line moves the entry and branch main: doc/FORMAT.md)
        assert.truthy(line == '{"mydb_head":1}'
          or line:match('^%[%["e","%x+"%],%["\\u0000heads/main","%x+"%]%]$'), line)
      end
    end)

    it("makes reads raise corrupt for a garbage line in the middle", function()
      H.needs_loose("damages the loose head journal (pack: spec/backend_pack_spec.lua)")
      H.write_file(head_path, (orig:gsub("\n", "\ngarbage\n", 1)))
      H.assert_error_code(function() fresh():get_digest("t", "e") end, "corrupt")
      H.assert_error_code(function() fresh():load("t", "e") end, "corrupt")
    end)

    it("makes reads raise corrupt for a digest that is not hex", function()
      H.needs_loose("damages the loose head journal (pack: spec/backend_pack_spec.lua)")
      H.write_file(head_path, orig .. '[["e","' .. ("Z"):rep(64) .. '"]]\n')
      H.assert_error_code(function() fresh():get_digest("t", "e") end, "corrupt")
    end)

    it("makes reads raise corrupt for a bad header", function()
      H.needs_loose("damages the loose head journal (pack: spec/backend_pack_spec.lua)")
      H.write_file(head_path, (orig:gsub("^[^\n]*", '{"not_mydb":1}')))
      H.assert_error_code(function() fresh():get_digest("t", "e") end, "corrupt")
    end)
  end)
end)
