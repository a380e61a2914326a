-- core.commit_bytes (src/lua/lcommit.c) against the Lua builder it
-- replaced (commits.bytes_lua): random commit tables - entry names with
-- quotes, backslashes, control bytes, non-ASCII and bytes that are not
-- UTF-8, dropped entries, prev maps, merges' parent lists, jumps written
-- or left out, integer and float times, messages or none - give the same
-- bytes, and the id is their SHA-256.
local H = require "spec.helper"
local core = require "mydb.core"
local commits = require "mydb.commits"

local rng = H.rng

local ODD = { "a", "b", '"', "\\", "\1", "\31", "é", "\u{2603}", "\xff", "\xc3", "z", "A", ".", "-" }

local utf8_only = false -- (entry names are valid UTF-8: core.encode writes
                        -- a map with another key as __map__, not an object)

local function name(r)
  local t = {}
  for i = 1, r(6) do
    repeat t[i] = ODD[r(#ODD)] until not utf8_only or utf8.len(t[i])
  end
  return table.concat(t)
end

local function digest(r) return core.sha256(tostring(r(1e9))) end

local function random_commit(r)
  local c = { commit = 1, user_id = name(r), date = "20261204 20:0" .. r(9) .. ":00 +0000",
              height = r(1000) - 1, size = r(5) == 1 and 0 or r(100000), entries = {} }
  local times = { 1700000000.25, 1700000000, 0.1, 1e21, 123.456789012345678, 2 ^ 53 + 0.0, 5e-324 }
  c.time = r(3) == 1 and (r(1e9) + r(1000) / 1024) or times[r(#times)]
  -- (up to 7 entries, or 19: lcommit.c sorts up to 8 names on the C stack)
  for _ = 1, r(r(5) == 1 and 20 or 8) - 1 do c.entries[name(r)] = r(4) == 1 and false or digest(r) end
  if r(2) == 1 then c.message = name(r) .. " message\n\t" .. name(r) end
  if r(4) ~= 1 then
    c.parents = { digest(r) }
    for _ = 1, r(3) - 1 do c.parents[#c.parents + 1] = digest(r) end
    c.jump, c.jump_height, c.jump_time = digest(r), r(50), c.time - r(100) / 3
    if r(2) == 1 then c.jump_parent = true end
  end
  if r(3) == 1 then
    c.prev = {}
    for _ = 1, r(4) - 1 do c.prev[name(r)] = digest(r) end
  end
  if r(5) ~= 1 then c.state = digest(r) end
  return c
end

describe("core.commit_bytes", function()
  it("gives the Lua builder's bytes and their SHA-256 for 3,000 random commits", function()
    local r = rng(7)
    for i = 1, 3000 do
      local c = random_commit(r)
      local bytes, id = core.commit_bytes(c)
      assert.are.equal(commits.bytes_lua(c), bytes, "commit " .. i)
      assert.are.equal(core.sha256(bytes), id)
      assert.is_true(commits.is_commit(bytes))
    end
  end)

  it("gives canonical JSON: what core.encode writes for the same table", function()
    local r = rng(11)
    utf8_only = true
    finally(function() utf8_only = false end)
    for _ = 1, 200 do
      local c = random_commit(r)
      c.jump_parent = nil -- (core.encode would write the flag; the builder reads it)
      if c.prev and next(c.prev) == nil then c.prev = nil end
      assert.are.equal(core.encode(c), (core.commit_bytes(c)))
    end
  end)

  it("raises invalid_argument for a field of the wrong type", function()
    local c = { date = "d", entries = {}, height = 0, size = 0, time = 1, user_id = "u" }
    assert.is_string((core.commit_bytes(c)))
    for field, v in pairs({ entries = "x", height = "1", date = {}, user_id = false, size = {}, time = {} }) do
      local bad = {}
      for k, x in pairs(c) do bad[k] = x end
      bad[field] = v
      local ok, err = pcall(core.commit_bytes, bad)
      assert.is_false(ok, field)
      assert.are.equal("invalid_argument", err.code, field)
    end
    local ok, err = pcall(core.commit_bytes, { date = "d", entries = { [1] = "x" }, height = 0, size = 0,
                                               time = 1, user_id = "u" })
    assert.is_false(ok)
    assert.are.equal("invalid_argument", err.code)
  end)
end)

describe("store:write_commit", function()
  it("writes the bytes core.commit_bytes builds, under their id, and checks its arguments", function()
    local root = H.tmpdir()
    finally(function() H.rmrf(root) end)
    local store = core.open(root, { backend = "pack", fsync = false })
    store:tenant_init("t")
    local r = rng(13)
    local prev
    for i = 1, 50 do
      local c = random_commit(r)
      local bytes, want = core.commit_bytes(c)
      local id = store:write_commit("t", c, prev)
      assert.are.equal(want, id, "commit " .. i)
      assert.are.equal(bytes, store:read("t", id), "commit " .. i)
      prev = id
    end
    local c = { date = "d", entries = {}, height = 0, size = 0, time = 1, user_id = "u" }
    for _, args in ipairs({
      { nil, c }, { "bad/tenant", c }, { "t", "not a table" }, { "t", c, "not a digest" },
      { "t", { date = "d", entries = "x", height = 0, size = 0, time = 1, user_id = "u" } },
    }) do
      local ok, err = pcall(store.write_commit, store, args[1], args[2], args[3])
      assert.is_false(ok)
      assert.are.equal("invalid_argument", type(err) == "table" and err.code or err)
    end
    store:close()
    local ok, err = pcall(store.write_commit, store, "t", c)
    assert.is_false(ok)
    assert.are.equal("closed", err.code)
  end)
end)
