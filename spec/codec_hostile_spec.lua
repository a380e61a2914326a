-- Issue 11, item 12: hostile bytes at the edges of the codec's skipping and
-- piece-building paths.
local core = require "mydb.core"

local function fails_with(code, f, ...)
  local ok, err = pcall(f, ...)
  assert.is_false(ok, "expected an error")
  assert.equal(code, err.code, tostring(err))
  return err
end

describe("codec: hostile bytes", function()
  it("a leaf value that is a string cut after a backslash is corrupt", function()
    fails_with("corrupt", core.leaf_split, '{"leaf":[["k","ab\\')
    fails_with("corrupt", core.leaf_split, '{"leaf":[["k","\\')
  end)

  it("a NUL byte inside a number is corrupt, not part of the number", function()
    fails_with("corrupt", core.leaf_split, '{"leaf":[["k",1\0]]}')
    fails_with("corrupt", core.leaf_split, '{"leaf":[["k",tru\0e]]}')
    local keys, vals = core.leaf_split('{"leaf":[["k",12]]}')
    assert.same({ "k" }, keys)
    assert.same({ "12" }, vals)
  end)

  it("node counts that overflow are corrupt, negative ones refused", function()
    local d = ("a"):rep(64)
    fails_with("corrupt", core.node_piece, { "a", "b" }, { d, d }, { math.maxinteger, 1 })
    fails_with("invalid_argument", core.node_piece, { "a" }, { d }, { -1 })
    local _, _, total = core.node_piece({ "a", "b" }, { d, d }, { math.maxinteger - 1, 1 })
    assert.equal(math.maxinteger, total)
  end)
end)
