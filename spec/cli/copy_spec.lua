-- mydb-lua --copy SRC DST --backend NAME (issue 8 §4): a store copied to
-- another backend with all tenants and history, verified by digest.
local H = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "spec/cli/") .. "cli_helper.lua")

describe("mydb-lua #cli --copy", function()
  local dir, root
  before_each(function()
    dir = H.tmpdir()
    root = dir .. "/store"
    H.make_store(root)
  end)
  after_each(function() H.rmrf(dir) end)

  it("copies a loose store to pack and back, with every version", function()
    local r = H.run({ "--copy", root, dir .. "/packed", "--backend", "pack" })
    assert.equal(0, r.code, r.err)
    assert.matches("^copied .* %(loose%) to .* %(pack%): 2 tenants, 3 entries, %d+ objects, 0 refs", r.out)
    assert.is_true(H.exists(dir .. "/packed/acme/pack/000001.seg"))
    r = H.run({ "--db", dir .. "/packed", "-e", [[
      print(#db:history("acme", "config"), db:load("acme", "config").theme, db:get("acme", "users", "u2").name)
      print(#db:verify(), db._store:backend())
    ]] })
    assert.equal(0, r.code, r.err)
    assert.equal("3\tblue\tBen\n0\tpack\n", r.out)
    r = H.run({ "--copy", dir .. "/packed", dir .. "/back" }) -- default: pack
    assert.equal(0, r.code, r.err)
    r = H.run({ "--db", dir .. "/back", "--verify" })
    assert.equal(0, r.code, r.out .. r.err)
    r = H.run({ "--db", dir .. "/back", "--log", "acme", "config" })
    assert.equal(3, #H.lines(r.out))
  end)

  it("refuses a destination that holds data, a bad backend and missing arguments", function()
    local r = H.run({ "--copy", root, root, "--backend", "loose" })
    assert.equal(1, r.code)
    assert.matches("not empty", r.err)
    r = H.run({ "--copy", root, dir .. "/x", "--backend", "bogus" })
    assert.equal(1, r.code)
    assert.matches("backend must be", r.err)
    r = H.run({ "--copy", root })
    assert.equal(1, r.code)
    assert.matches("needs more arguments", r.err)
    r = H.run({ "--backend", "pack", "-e", "print(1)" })
    assert.equal(1, r.code)
    assert.matches("only applies to %-%-copy", r.err)
  end)

  it("opens a copied store with its own backend, and refuses another", function()
    assert.equal(0, H.run({ "--copy", root, dir .. "/p", "--backend", "pack" }).code)
    local r = H.run({ "-e", ([[
      local mydb = require "mydb"
      print(pcall(mydb.open, %q, { backend = "loose" }))
    ]]):format(dir .. "/p") })
    assert.matches("is a pack store, not loose", r.out)
  end)
end)
