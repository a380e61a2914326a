-- A mistyped --db path creates no store (issue 16, part 2): mydb-lua's
-- script, prompt and inspection commands and the mydb command refuse a
-- root that holds no store, with not_found and status 1; only `mydb init`
-- and the library's mydb.open (without create = false) create one.
local H = dofile("spec/cli/cli_helper.lua")

local MYDB = H.root .. "/mydb"

-- Everything under dir, as "path" lines (to see that nothing was made).
local function listing(dir)
  local p = io.popen("cd " .. H.q(dir) .. " && find . | sort")
  local s = p:read("a")
  p:close()
  return s
end

describe("--db with a path that holds no store", function()
  local dir
  before_each(function()
    dir = H.tmpdir()
    assert(os.execute("mkdir " .. H.q(dir .. "/empty")))
  end)
  after_each(function() H.rmrf(dir) end)

  local function refused(r, root)
    assert.equal(1, r.code, r.err)
    assert.truthy(r.err:find("not_found: no store at '" .. root .. "'", 1, true), r.err)
    assert.falsy(r.err:find("traceback", 1, true))
  end

  it("mydb-lua: a script, the prompt and an inspection command refuse it and create nothing", function()
    local before = listing(dir)
    for _, root in ipairs({ dir .. "/no/such", dir .. "/empty" }) do
      H.write(dir .. "/s.lua", "print(db)")
      local r = H.run({ "--db", root, dir .. "/s.lua" })
      refused(r, root)
      assert.equal("", r.out)
      refused(H.run({ "--db", root, "-e", "print(db)" }), root)
      refused(H.run({ "--db", root, "-i" }, { stdin = "print(db)\n" }), root)
      refused(H.run({ "--db", root, "--tenants" }), root)
      os.remove(dir .. "/s.lua")
    end
    assert.equal(before, listing(dir))
  end)

  it("mydb: get, tenants and log refuse it; init creates the store, then they work", function()
    local before = listing(dir)
    for _, root in ipairs({ dir .. "/no/such", dir .. "/empty" }) do
      for _, args in ipairs({ { "get", "e", "k" }, { "tenants" }, { "log" } }) do
        local all = { "--db", root, "--tenant", "t" }
        for _, a in ipairs(args) do all[#all + 1] = a end
        local r = H.run(all, { bin = MYDB })
        refused(r, root)
        assert.matches("^mydb: not_found: ", r.err)
      end
    end
    assert.equal(before, listing(dir))
    local root = dir .. "/empty"
    local r = H.run({ "--db", root, "init", "t" }, { bin = MYDB })
    assert.equal(0, r.code, r.err)
    r = H.run({ "--db", root, "tenants" }, { bin = MYDB })
    assert.equal(0, r.code, r.err)
    assert.equal("t\n", r.out)
    r = H.run({ "--db", root, "-e", "print(db:tenants()[1])" })
    assert.equal(0, r.code, r.err)
    assert.equal("t\n", r.out)
  end)

  it("mydb.open: creates by default; create = false raises not_found; create is a boolean", function()
    local code = ([[
      local mydb = require "mydb"
      local ok, e = pcall(mydb.open, %q, { create = false })
      io.write(tostring(ok), " ", e.code, " ", e.message, "\n")
      ok, e = pcall(mydb.open, %q, { create = "no" })
      io.write(tostring(ok), " ", e.code, " ", e.message, "\n")
      local db = mydb.open(%q)
      db:init("t")
      db:close()
      db = mydb.open(%q, { create = false })
      io.write(db:tenants()[1], "\n")
    ]]):format(dir .. "/lib", dir .. "/lib", dir .. "/lib", dir .. "/lib")
    H.write(dir .. "/open.lua", code)
    local r = H.run({ dir .. "/open.lua" })
    assert.equal(0, r.code, r.err)
    assert.equal(("false not_found no store at '%s'\nfalse invalid_argument create must be a boolean\nt\n")
      :format(dir .. "/lib"), r.out)
  end)
end)
