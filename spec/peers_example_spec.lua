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
    local out, ok, status = H.run_lua(H.read_file(path), { cwd = dir, memory_ok = true })
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

describe("peers: README", function()
  local readme = H.read_file(H.REPO .. "/README.md")

  it("has a 'Coming from dynafile or pydb' section right after the API section", function()
    local api_at = readme:find("\n## API\n", 1, true)
    local peers_at = readme:find("\n## Coming from dynafile or pydb\n", 1, true)
    assert.truthy(api_at, "no API section")
    assert.truthy(peers_at, "no 'Coming from dynafile or pydb' section")
    assert.is_true(peers_at > api_at)
    -- no other top-level section between them
    assert.is_nil(readme:sub(api_at + 1, peers_at):find("\n## ", 8, true))
  end)

  it("maps each peer call to a mydb call in a table", function()
    local section = readme:match("\n## Coming from dynafile or pydb\n(.-)\n## ")
    assert.is_string(section)
    local rows = {}
    for line in section:gmatch("[^\n]+") do
      if line:sub(1, 1) == "|" then rows[#rows + 1] = line end
    end
    local function row_with(peer, ours)
      for _, r in ipairs(rows) do
        local left, right = r:match("^|(.-)|(.-)|$")
        if left and left:find(peer, 1, true) and right:find(ours, 1, true) then return true end
      end
      return false
    end
    for _, pair in ipairs({
      { "put_item", "db:put(" }, { "get_item", "db:get(" }, { "delete_item", "db:delete(" },
      { "starts_with", "from =" }, { "scan_index_forward", "reverse = true" }, { "_filter", "filter =" },
      { "scan(", "db:scan(" }, { "batch_writer", "db:batch(" }, { "add_stream_listener", "db:on_change(" },
      { "ttl_attribute", "ttl_field" }, { "ttl_attribute", "db:set_ttl(" },
      { "pydb `storage.set", "db:put(" }, { "pydb `storage.get", "db:get(" },
      { "pydb `storage.delete", "db:delete(" }, { "GSI", "db:create_index(" },
    }) do
      assert.is_true(row_with(pair[1], pair[2]), ("no row maps %s to %s"):format(pair[1], pair[2]))
    end
  end)

  it("the API table has a row for each issue 7 call", function()
    local api = readme:match("\n## API\n(.-)\n## ")
    for _, call in ipairs({ "db:delete(", "db:drop(", "db:query(", "db:scan(", "db:set_ttl(",
                            "db:create_index(", "db:drop_index(", "db:query_index(", "db:batch(",
                            "db:on_change(", "db:changes(", "ttl_field" }) do
      assert.truthy(api:find("\n| `" .. (call:find("ttl_field") and "mydb.open(root, {ttl_field" or call), 1, true),
        "no API row for " .. call)
    end
    local query_row = api:match("\n(| `db:query%(.-)\n")
    for _, opt in ipairs({ "prefix", "from", "to", "reverse", "limit", "digest", "filter" }) do
      assert.truthy(query_row:find("opts." .. opt, 1, true), "query row lacks opts." .. opt)
    end
  end)
end)
