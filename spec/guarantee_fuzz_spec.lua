-- Guarantees under hostile input (issue 5 §4): what the fuzz targets
-- (fuzz/fuzz_*.c) found, kept as regression tests, and their seed corpora
-- replayed through the same checks on every `make test` (no clang needed).
local H = require "spec.helper"
local core = require "mydb.core"

local OK_CODES = { corrupt = true, unknown_tag = true }
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


-- Calls fn; it must return normally or raise a mydb error of a code
-- documented for damaged data. Returns ok and the results.
local function damaged_ok(what, fn, ...)
  local r = table.pack(pcall(fn, ...))
  if r[1] then return true, table.unpack(r, 2, r.n) end
  local err = r[2]
  assert(type(err) == "table" and getmetatable(err) == core.error_mt,
    what .. " raised a non-mydb error: " .. tostring(err))
  assert(OK_CODES[err.code], what .. " raised " .. tostring(err))
  return false
end

local function corpus(target)
  local dir = H.REPO .. "/fuzz/corpus/" .. target
  local out = H.read_cmd("ls -1 " .. H.q(dir) .. " 2>/dev/null")
  local files = {}
  for name in out:gmatch("[^\n]+") do files[#files + 1] = { name = name, bytes = H.read_file(dir .. "/" .. name) } end
  return files
end

local CTX = {
  classes = { Point = {} },
  special = function(tag, payload) return { tag = tag, payload = payload } end,
  ref_load = function(d) return "ref:" .. d end,
}

describe("the stored-value decoder on hostile bytes", function()
  describe("a tag key repeated many times in one object (found by fuzz_codec)", function()
    -- Each repetition left one more value on the Lua stack, past its
    -- reserved size: a crash (SEGV) in lua_pushvalue. Now: corrupt.
    local function repeated(first, key, value, n)
      local parts = { first }
      for _ = 1, n do parts[#parts + 1] = key .. ":" .. value end
      return "{" .. table.concat(parts, ",") .. "}"
    end
    local CASES = {
      { "__digest__", repeated('"__special__":"T"', '"__digest__"', '"x"', 500) },
      { "__special__", repeated('"__special__":"T"', '"__special__"', '"T"', 500) },
      { "__value__", repeated('"__special__":"T"', '"__value__"', "1", 500) },
      { "__object__", repeated('"__map__":[]', '"__object__"', '"Point"', 500) },
      { "__map__", repeated('"__map__":[]', '"__map__"', "[]", 500) },
    }
    for _, case in ipairs(CASES) do
      it("raises corrupt for " .. case[1], function()
        H.assert_error_code(function() core.decode(case[2], CTX) end, "corrupt")
        -- without classes, the first __object__ is an unknown_tag already
        H.assert_error_code(function() core.decode(case[2]) end,
          case[1] == "__object__" and "unknown_tag" or "corrupt")
        local snap = '{"__date__":"d","__parent__":[null],"__user_id__":"u","__value__":' .. case[2] .. "}"
        H.assert_error_code(function() core.decode_snapshot(snap, CTX) end, "corrupt")
      end)
    end

    it("still accepts each tag once", function()
      local v = core.decode('{"__special__":"T","__value__":[1,2]}', CTX)
      assert.same({ tag = "T", payload = { 1, 2 } }, v)
      v = core.decode('{"__map__":[[1,"a"]],"__object__":"Point"}', CTX)
      assert.equal(CTX.classes.Point, getmetatable(v))
      assert.equal("a", v[1])
    end)

    describe("in a stored snapshot", function()
      local S = H.use_store({ tenant = "t" })
      it("makes load raise corrupt, not crash", function()
        local bytes = '{"__date__":"20260101 00:00:00 +0000","__parent__":[null],"__user_id__":"u",'
            .. '"__value__":' .. CASES[1][2] .. "}"
        local digest = S.db._store:write("t", bytes)
        local lock = S.db._store:lock("t")
        lock:commit({ { "e", digest } })
        lock:release()
        H.assert_error_code(function() S.db:load("t", "e") end, "corrupt")
      end)
    end)
  end)

  describe("the seed corpus of fuzz_codec (fuzz/corpus/codec)", function()
    local files = corpus("codec")
    it("is there", function() assert.is_true(#files >= 10, "fewer than 10 seeds") end)
    it("decodes or raises corrupt/unknown_tag, never anything else", function()
      for _, f in ipairs(files) do
        local ok, v = damaged_ok(f.name .. ": decode", core.decode, f.bytes)
        if ok then
          -- a decoded value re-encodes canonically
          local okb, bytes = pcall(core.encode, v)
          if okb then assert.equal(bytes, core.encode(core.decode(bytes)), f.name) end
        end
        damaged_ok(f.name .. ": decode ctx", core.decode, f.bytes, CTX)
        damaged_ok(f.name .. ": decode_snapshot", core.decode_snapshot, f.bytes, CTX)
        damaged_ok(f.name .. ": decode_snapshot meta", core.decode_snapshot, f.bytes, nil, true)
        local okl, keys, vals = damaged_ok(f.name .. ": leaf_split", core.leaf_split, f.bytes)
        if okl then assert.equal(#keys, #vals, f.name) end
        damaged_ok(f.name .. ": collection_root", core.collection_root, f.bytes)
      end
    end)
  end)

  describe("the seed corpus of fuzz_head (fuzz/corpus/head)", function()
    local S = H.use_store({ tenant = "t" })
    local files = corpus("head")
    it("is there", function() assert.is_true(#files >= 3, "fewer than 3 seeds") end)
    it_loose("reads as a journal or raises corrupt, and a fresh handle agrees", function()
      for _, f in ipairs(files) do
        H.write_file(S.root .. "/t/head", f.bytes:sub(2)) -- byte 1 is the fuzzer's cut point
        local store = core.open(S.root, { fsync = false, cache_bytes = 0 })
        local ok, entries, heads = damaged_ok(f.name .. ": heads", store.heads, store, "t")
        if ok then
          for i, e in ipairs(entries) do
            assert.is_true(core.digest_valid(heads[e]), f.name)
            assert.equal(heads[e], store:head("t", e), f.name)
            if i > 1 then assert.is_true(entries[i - 1] < e, f.name) end
          end
        end
        store:close()
      end
    end)
  end)
end)
