-- The progress bar of long work (issue 16, part 1): clone, fetch, push,
-- gc, verify, copy and import draw "WHAT LABEL [###...] N/TOTAL" (or
-- "WHAT LABEL: N") on stderr when it is a terminal; MYDB_PROGRESS=1 forces
-- it (every update, one a line: what this spec reads, with no timing), and
-- with stderr not a terminal nothing is drawn (lua/mydb/progress.lua).
local H = dofile("spec/cli/cli_helper.lua")

local BIN = H.root .. "/mydb"

describe("mydb progress bars", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rmrf(dir) end)

  local function run(args, progress)
    local env = { MYDB_TENANT = "acme", MYDB_USER = "al", MYDB_PROGRESS = progress }
    local r = H.run(args, { bin = BIN, env = env })
    assert(r.code == 0, ("mydb %s: %s"):format(table.concat(args, " "), r.err))
    return r
  end

  -- The lines a forced bar drew that start with prefix (each "\r...\27[K\n").
  local function bar_lines(err, prefix)
    local t = {}
    for l in err:gmatch("\r([^\n]*)\27%[K\n") do
      if l:sub(1, #prefix + 1) == prefix .. " " then t[#t + 1] = l end
    end
    return t
  end

  -- The total of a bar that counted 1..total, one line each, and ended full.
  local function counted(lines, prefix)
    assert.is_true(#lines > 0, "no bar line for " .. prefix)
    local pat = "^" .. prefix:gsub("%p", "%%%0") .. " %[([#.]+)%] (%d+)/(%d+)$"
    for i, l in ipairs(lines) do
      local _, n, total = l:match(pat)
      assert.is_truthy(n, l)
      assert.equal(i, tonumber(n), l)
      assert.equal(#lines, tonumber(total), l)
    end
    assert.matches("%[#+%]", lines[#lines])
    return #lines
  end

  it("draws one for every long command when forced, and nothing when stderr is no terminal", function()
    local a = dir .. "/a"
    run({ "--db", a, "init" })
    for i = 1, 5 do run({ "--db", a, "put", "p", "k" .. i, tostring(i) }) end
    local n = 0
    local function fresh() n = n + 1; return dir .. "/new" .. n end
    -- each case: the command (a function: a fresh target each run) and what
    -- its forced bar shows
    local cases = {
      { "clone", function() return { "clone", a, fresh() } end, function(r)
          assert.is_true(#bar_lines(r.err, "clone acme reading:") > 0, r.err)
          counted(bar_lines(r.err, "clone acme writing"), "clone acme writing")
        end },
      { "push", function()
          run({ "--db", dir .. "/b", "put", "p", "z" .. n, "9" }); n = n + 1
          return { "--db", dir .. "/b", "push", "origin" }
        end, function(r) counted(bar_lines(r.err, "push acme writing"), "push acme writing") end },
      { "fetch", function()
          run({ "--db", dir .. "/b", "put", "p", "y" .. n, "8" }); n = n + 1
          return { "--db", a, "fetch", "back" }
        end, function(r) counted(bar_lines(r.err, "fetch acme writing"), "fetch acme writing") end },
      { "verify", function() return { "--db", a, "verify" } end, function(r)
          local objects = tonumber(r.out:match("objects=(%d+)"))
          assert.equal(objects, counted(bar_lines(r.err, "verify acme"), "verify acme"))
        end },
      { "gc", function() return { "--db", a, "gc" } end, function(r)
          assert.is_true(#bar_lines(r.err, "gc") > 0, r.err)
        end },
      { "copy", function() return { "copy", a, fresh() } end, function(r)
          assert.is_true(#bar_lines(r.err, "copy acme:") > 0, r.err)
        end },
      { "import", function() return { "--db", fresh(), "import", dir .. "/x.jsonl" } end, function(r)
          assert.equal(5, counted(bar_lines(r.err, "import acme"), "import acme")) -- one a commit (five puts)
        end },
    }
    run({ "clone", a, dir .. "/b" })
    run({ "--db", a, "remote", "add", "back", dir .. "/b" })
    H.write(dir .. "/x.jsonl", run({ "--db", a, "export" }).out)
    for _, case in ipairs(cases) do
      local what, args, check = case[1], case[2], case[3]
      local r = run(args(), "1")
      check(r)
      assert.equal("", (r.err:gsub("\r[^\n]*\27%[K\n", "")), what .. ": only bar lines on stderr")
      -- stderr a file (not a terminal): nothing; MYDB_PROGRESS=0: nothing
      assert.equal("", run(args(), nil).err, what)
      assert.equal("", run(args(), "0").err, what)
    end
  end)
end)
