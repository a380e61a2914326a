-- The examples run as shipped (issue 2 §7): examples/quickstart.lua and
-- the README's quick start, each in a fresh process in a temporary directory.
local H = require "spec.helper"

describe("examples", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rmrf(dir) end)

  describe("quickstart.lua", function()
    local path = H.REPO .. "/examples/quickstart.lua"

    it("exists", function()
      assert.is_true(H.file_exists(path), path .. " is missing")
    end)

    it("runs in a fresh process and exits with status 0", function()
      assert.is_true(H.file_exists(path), path .. " is missing")
      local out, ok, status = H.run_lua(H.read_file(path), { cwd = dir, memory_ok = true })
      assert(ok, ("exit status %s:\n%s"):format(tostring(status), out))
      -- what the example says it prints
      assert.truthy(out:find("config now:\tlight\n", 1, true), out)
      assert.truthy(out:find("config then:\tdark\n", 1, true), out)
      assert.truthy(out:find("unchanged put writes nothing:\tfalse\n", 1, true), out)
      assert.truthy(out:find("john is\t30\n", 1, true), out)
      assert.truthy(out:find("false\tnot_found\tmydb: not_found: ", 1, true), out)
      local versions = 0
      for _ in out:gmatch("  version %d by %a+ on %d+ %d%d:%d%d:%d%d [+-]%d+: %x+\n") do
        versions = versions + 1
      end
      assert.equal(2, versions, out)
    end)

    it("leaves nothing behind in the working directory", function()
      assert.is_true(H.file_exists(path), path .. " is missing")
      local _, ok = H.run_lua(H.read_file(path), { cwd = dir, memory_ok = true })
      assert.is_true(ok)
      assert.same({}, H.listing(dir))
    end)
  end)

  describe("the README quick start", function()
    it("works as pasted", function()
      local readme = H.read_file(H.REPO .. "/README.md")
      local section = readme:match("\n## Quick start\n(.-)\n## ")
      assert.is_string(section, "README has no Quick start section")
      local code = section:match("```lua\n(.-)```")
      assert.is_string(code, "the Quick start section has no lua block")
      local out, ok, status = H.run_lua(code, { cwd = dir, memory_ok = true })
      assert(ok, ("exit status %s:\n%s"):format(tostring(status), out))
      assert.equal("light\ndark\n2\n30\njane\tJane\njohn\tJohn\nnot_found\n", out)
      assert.is_true(H.file_exists(dir .. "/.mytools_db/.mydb") and H.file_exists(dir .. "/.mytools_db/acme"))
    end)
  end)
  describe("merge.lua", function()
    it("runs in a fresh process and prints what it says", function()
      local path = H.REPO .. "/examples/merge.lua"
      assert.is_true(H.file_exists(path), path .. " is missing")
      local out, ok, status = H.run_lua(H.read_file(path), { cwd = dir, memory_ok = true })
      assert(ok, ("exit status %s:\n%s"):format(tostring(status), out))
      assert.equal(table.concat({
        "merge without a resolver:\tfalse\tconflict",
        "  users/bob city: base Rome, ours Turin, theirs Milan",
        "merged:\t2\tparents,\t4\tchanges,\t2\tresolved",
        "  ann\tAnn B.\tBergen", "  bob\tBob\tMilan", "  cy\tCy\tLima", "  hits\t135",
        "after revert, ann lives in\tBergen", "" }, "\n"), out)
      assert.same({}, H.listing(dir))
    end)
  end)

  describe("versioning.lua", function()
    local path = H.REPO .. "/examples/versioning.lua"

    it("runs in a fresh process and prints what it says", function()
      assert.is_true(H.file_exists(path), path .. " is missing")
      local out, ok, status = H.run_lua(H.read_file(path), { cwd = dir, memory_ok = true })
      assert(ok, ("exit status %s:\n%s"):format(tostring(status), out))
      assert.truthy(out:find("on sale, pear costs\t0.5\n", 1, true), out)
      assert.truthy(out:find("on main, pear costs\t0.9\n", 1, true), out)
      assert.truthy(out:find("at launch, apple cost\t1.2\n", 1, true), out)
      assert.truthy(out:find("one commit ago, apple cost\t1.2\n", 1, true), out)
      assert.truthy(out:find("that commit:\ttrue\n", 1, true), out)
      local commits = 0
      for _ in out:gmatch("  %x+ %a+ +[%w ]+\n") do commits = commits + 1 end
      assert.equal(3, commits, out)
      assert.same({}, H.listing(dir))
    end)
  end)
end)
