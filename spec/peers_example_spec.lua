-- Issue 7 §7: examples/peers.lua walks through each peer feature; it runs
-- as shipped in a fresh process, prints what it says, and exits with 0.
local H = require "spec.helper"

describe("peers: examples/peers.lua", function()
  local path = H.REPO .. "/examples/peers.lua"
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rmrf(dir) end)

  it("runs in a fresh process, prints each feature's results and leaves nothing behind", function()
    assert.is_true(H.file_exists(path), path .. " is missing")
    local out, ok, status = H.run_lua(H.read_file(path), { cwd = dir })
    assert(ok, ("exit status %s:\n%s"):format(tostring(status), out))
    for _, line in ipairs({
      "get user#2:\tAlice\n",
      "delete user#3:\ttrue\n",
      "delete again:\tfalse\n",
      "user#3 now:\tnil\n",
      "versions of users:\t3\n",
      "user#3 in the version before:\tSteve\n",
      "prefix user#:\tuser#1 user#2\n",
      "reverse:\tuser#2 user#1 role#1\n",
      "from/to:\trole#1 user#1\n",
      "filter function:\tuser#1\n",
      "filter string:\tuser#2\n",
      "a filter cannot reach os:\tfalse\tinvalid_argument\n",
      "  orders\to1\n  users\trole#1\n  users\tuser#1\n-- TTL",
      "live sessions:\ts2\n",
      "s1:\tnil\n",
      "after the batch:\tuser#1 user#2 user#4\t|\to1 o2\n",
      "a batch that raises writes nothing:\tfalse\tnil\n",
      "  52\tuser#4\tDee\n  41\tuser#1\tBob\nin Oslo:\tuser#1\n",
      "  delete users[user#3]\n",
      "  save config\n",
      "  put sessions[s2]\n  put orders[o2]\n  delete users[role#1]\n  put users[user#4]\n--",
      "  delete role#1 by alice\n  put user#4 by alice\n--",
      "drop orders:\ttrue\tfalse\n",
      "old version still loads:\t40\n",
      "problems found by verify:\t0\n",
    }) do
      assert.truthy(out:find(line, 1, true), ("missing %q in:\n%s"):format(line, out))
    end
    assert.same({}, H.listing(dir))
  end)
end)
