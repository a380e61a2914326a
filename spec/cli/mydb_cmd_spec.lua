-- The `mydb` command (src/cli/mydb_cmd.lua) run as a real process: exit
-- codes, stdout, stderr, --json parsed back, export/import, log --graph.
local H = dofile("spec/cli/cli_helper.lua")
local cjson = require "cjson"

local BIN = H.root .. "/mydb"
assert(H.exists(BIN), "mydb is not built: run `make` first")

local root, env

-- Runs `mydb ARGS` on the spec's store and tenant acme (user al).
local function mydb(args, opts)
  opts = opts or {}
  opts.bin = BIN
  opts.env = opts.env or env
  return H.run(args, opts)
end

local function ok(args, opts)
  local r = mydb(args, opts)
  assert(r.code == 0, ("mydb %s: status %s, stderr: %s"):format(table.concat(args, " "), tostring(r.code), r.err))
  return r
end

describe("mydb command", function()
  before_each(function()
    root = H.tmpdir() .. "/store"
    env = { MYDB_ROOT = root, MYDB_TENANT = "acme", MYDB_USER = "al" }
  end)
  after_each(function() H.rmrf(root:gsub("/store$", "")) end)

  it("refuses to inspect a store that does not exist, and creates none", function()
    local r = mydb({ "tenants" })
    assert.equal(1, r.code)
    assert.equal("", r.out)
    assert.matches("^mydb: not_found: no store at '.*store'", r.err)
    assert.is_false(H.exists(root .. "/."))
    assert.is_nil(io.open(root, "rb"))
  end)

  it("writes and reads values as canonical JSON, from arguments and stdin", function()
    ok({ "init" })
    ok({ "put", "prices", "apple", "1.35" })
    ok({ "save", "config" }, { stdin = '{ "theme": "dark", "n": [1, 2], "a": true }' })
    assert.equal('{"a":true,"n":[1,2],"theme":"dark"}\n', ok({ "load", "config" }).out)
    assert.equal("1.35\n", ok({ "get", "prices", "apple" }).out)
    assert.equal('{"apple":1.35}\n', ok({ "get", "prices" }).out)
    assert.equal("acme\n", ok({ "tenants" }).out)
    assert.equal("config\nprices\n", ok({ "entries" }).out)
    local r = mydb({ "get", "prices", "pear" })
    assert.equal(1, r.code)
    assert.matches("^mydb: not_found: ", r.err)
    ok({ "delete", "prices", "apple" })
    assert.equal("{}\n", ok({ "get", "prices" }).out)
  end)

  it("exits 2 on bad usage and 1 on errors, with mydb: <code>: <message> on stderr", function()
    ok({ "init" })
    local r = mydb({ "frobnicate" })
    assert.equal(2, r.code)
    assert.matches("^mydb: usage: unknown command 'frobnicate'", r.err)
    assert.equal(2, mydb({ "get" }).code)
    assert.equal(2, mydb({ "log", "--bogus" }).code)
    assert.equal(2, mydb({ "put", "e", "k", "1", "extra" }).code)
    assert.equal(2, mydb({ "--tenant" }).code)
    assert.equal(2, mydb({}).code)
    r = mydb({ "put", "prices", "x", "{bad" })
    assert.equal(1, r.code)
    assert.matches("^mydb: invalid_argument: value is not JSON", r.err)
    r = mydb({ "load", "nope" })
    assert.equal(1, r.code)
    assert.matches("^mydb: not_found: ", r.err)
    assert.equal("", r.out)
  end)

  it("prints help for the command and for each subcommand", function()
    local r = ok({ "--help" })
    for _, name in ipairs { "init", "log", "export", "import", "clone", "merge" } do
      assert.matches("\n  " .. name, r.out)
    end
    r = ok({ "log", "--help" })
    assert.matches("^usage: mydb log", r.out)
    assert.matches("%-%-graph", r.out)
  end)

  it("prints JSON with --json that parses back to the API's results", function()
    ok({ "init" })
    ok({ "put", "prices", "apple", "1", "-m", "first" })
    ok({ "put", "prices", "apple", "2", "--user", "bob" })
    local log = cjson.decode(ok({ "--json", "log" }).out)
    assert.equal(2, #log)
    assert.equal("bob", log[1].user_id)
    assert.equal("first", log[2].message)
    assert.equal(log[2].id, log[1].parents[1])
    assert.equal(2, #H.lines(ok({ "log", "--since", "2000-01-01T00:00:00Z" }).out))
    assert.equal("", ok({ "log", "--since", "2100-01-01" }).out)
    assert.matches("^mydb: invalid_argument: .*ISO 8601", mydb({ "log", "--until", "soon" }).err)
    local tenants = cjson.decode(ok({ "tenants", "--json" }).out)
    assert.same({ "acme" }, tenants)
    local diff = cjson.decode(ok({ "diff", log[2].id, log[1].id, "--json" }).out)
    assert.same({ { entry = "prices", key = "apple", action = "modified", old = 1, new = 2 } }, diff)
    local blame = cjson.decode(ok({ "blame", "prices", "--json" }).out)
    assert.equal("bob", blame.keys.apple.user_id)
    assert.equal(log[1].id, blame.keys.apple.commit)
  end)

  it("shows REV, REV:ENTRY and REV:ENTRY/KEY; branches and tags", function()
    ok({ "init" })
    ok({ "put", "prices", "apple", "1" })
    local v1 = ok({ "tag", "v1" }).out:match("%x+")
    ok({ "put", "prices", "apple", "2" })
    assert.equal("1\n", ok({ "show", "v1:prices/apple" }).out)
    assert.equal('{"apple":2}\n', ok({ "show", "main:prices" }).out)
    assert.equal("1\n", ok({ "show", "main~1:prices/apple" }).out)
    assert.matches("^commit " .. v1, ok({ "show", "v1" }).out)
    ok({ "branch", "sale", "v1" })
    assert.equal("* main", ok({ "branch" }).out:match("^[^\n]*"):sub(1, 6))
    assert.equal("1\n", ok({ "--branch", "sale", "get", "prices", "apple" }).out)
    assert.same({ v1 = v1 }, cjson.decode(ok({ "tag", "--json" }).out))
  end)

  it("draws log --graph of a merge as git does", function()
    ok({ "init" })
    ok({ "put", "p", "a", "1", "-m", "base" })
    ok({ "branch", "side" })
    ok({ "--branch", "side", "put", "p", "b", "2", "-m", "on side" })
    ok({ "put", "p", "c", "3", "-m", "on main" })
    local r = ok({ "merge", "side" })
    assert.matches("^merged %x+", r.out)
    local lines = H.lines(ok({ "log", "--graph" }).out)
    local shape = {}
    for i, l in ipairs(lines) do shape[i] = l:match("^[|*\\/ ]*"):gsub("%s+$", "") end
    assert.equal("*", shape[1])
    assert.equal("|\\", shape[2])
    -- the two sides in some order, each on its own lane
    local a, b = lines[3], lines[4]
    assert.is_true((shape[3] == "* |" and shape[4] == "| *") or (shape[3] == "| *" and shape[4] == "* |"))
    assert.matches(shape[3] == "* |" and "on main" or "on side", a)
    assert.matches(shape[4] == "| *" and "on side" or "on main", b)
    assert.equal("|/", shape[5])
    assert.equal("*", shape[6])
    assert.matches("base$", lines[6])
    assert.equal(6, #lines)
  end)

  it("exits 1 on a merge conflict, naming it, and writes nothing", function()
    ok({ "init" })
    ok({ "put", "p", "a", "1" })
    ok({ "branch", "side" })
    ok({ "--branch", "side", "put", "p", "a", "2" })
    ok({ "put", "p", "a", "3" })
    local before = ok({ "log" }).out
    local r = mydb({ "merge", "side" })
    assert.equal(1, r.code)
    assert.matches("conflict: p/a", r.err)
    assert.matches("mydb: conflict: ", r.err)
    assert.equal(before, ok({ "log" }).out)
    assert.matches("^merged", ok({ "merge", "side", "--resolver", "theirs" }).out)
    assert.equal("2\n", ok({ "get", "p", "a" }).out)
  end)

  it("exports every commit and imports it back to the same lines", function()
    ok({ "init" })
    ok({ "put", "prices", "apple", "1.35", "-m", "apples" })
    ok({ "save", "config", '{"ui":{"colors":[1,2,3]},"s":"\\u00e9\\n"}', "--user", "bob" })
    ok({ "put", "prices", "pear", "0.5" })
    ok({ "delete", "prices", "apple" })
    ok({ "branch", "side" })
    ok({ "--branch", "side", "put", "prices", "kiwi", "[1,{\"x\":null}]" })
    ok({ "save", "config", "7" })
    ok({ "merge", "side" })
    ok({ "delete", "config" })
    local dump = ok({ "export" }).out
    assert.equal(7, #H.lines(dump)) -- first parents: side's own commit is in the merge
    local file = root .. ".dump"
    H.write(file, dump)
    local r = ok({ "--tenant", "copy", "import", file })
    assert.equal("imported 7 commits\n", r.out)
    local again = ok({ "--tenant", "copy", "export" }).out
    local function strip(s) return (s:gsub('"commit":"%x+"', ""):gsub('"time":[%d.e+]+', "")) end
    assert.equal(strip(dump), strip(again))
    assert.are_not.equal(dump, again) -- new commit ids: the strip is not vacuous
    assert.equal(ok({ "get", "prices" }).out, ok({ "--tenant", "copy", "get", "prices" }).out)
    -- the latest state alone: one commit, same values
    local latest = ok({ "export", "--latest" }).out
    assert.equal(1, #H.lines(latest))
    ok({ "--tenant", "fresh", "import" }, { stdin = latest })
    assert.equal(1, #cjson.decode(ok({ "--tenant", "fresh", "log", "--json" }).out))
    assert.equal(ok({ "get", "prices" }).out, ok({ "--tenant", "fresh", "get", "prices" }).out)
    assert.equal("prices\n", ok({ "--tenant", "fresh", "entries" }).out)
    os.remove(file)
  end)

  it("clones, pushes and fetches between stores, silent on stderr when not a terminal", function()
    ok({ "init" })
    ok({ "put", "p", "a", "1" })
    local dir = root .. "-clone"
    local r = ok({ "clone", root, dir })
    assert.matches("^cloned ", r.out)
    assert.equal("", r.err)
    assert.equal("1\n", ok({ "--db", dir, "get", "p", "a" }).out)
    ok({ "--db", dir, "put", "p", "a", "2" })
    r = ok({ "--db", dir, "push", "origin" })
    assert.matches("^push: %d+ commits", r.out)
    assert.equal("", r.err)
    assert.equal("2\n", ok({ "get", "p", "a" }).out)
    ok({ "put", "p", "b", "3" })
    r = ok({ "--db", dir, "--json", "pull", "origin" })
    assert.is_table(cjson.decode(r.out).updated)
    assert.equal("3\n", ok({ "--db", dir, "get", "p", "b" }).out)
    r = ok({ "verify" })
    assert.matches("^ok %(checked ", r.out)
    assert.equal("", r.err)
    -- the status line, forced as on a terminal: on stderr only
    local forced = { MYDB_ROOT = root, MYDB_TENANT = "acme", MYDB_PROGRESS = "1" }
    r = ok({ "verify" }, { env = forced })
    assert.matches("^ok %(checked ", r.out)
    assert.matches("^\rverify acme %[#*%.*%] 1/%d+\27%[K\n", r.err)
    ok({ "gc" })
    local cp = root .. "-copy"
    ok({ "copy", root, cp })
    assert.equal("3\n", ok({ "--db", cp, "get", "p", "b" }).out)
    H.rmrf(dir); H.rmrf(cp)
  end)

  it("has a man page section for every command, and make install puts both pages and the link", function()
    local page = H.read(H.root .. "/doc/man/mydb.1")
    local help = ok({ "--help" }).out
    local n = 0
    for name in help:gmatch("\n  (%l+)") do
      n = n + 1
      assert.truthy(page:find("\n.SS " .. name .. "\n", 1, true), "mydb.1 lacks " .. name)
    end
    assert.is_true(n >= 26)
    local dest = H.tmpdir()
    local okm = os.execute(("make -s -C %s -o mydb-lua install-cli DESTDIR=%s PREFIX=/usr >/dev/null 2>&1")
      :format(H.q(H.root), H.q(dest)))
    assert.is_true(okm)
    for _, f in ipairs { "/usr/bin/mydb-lua", "/usr/share/man/man1/mydb.1", "/usr/share/man/man1/mydb-lua.1" } do
      assert.is_true(H.exists(dest .. f), f)
    end
    local r = H.run({ "--help" }, { bin = dest .. "/usr/bin/mydb" })
    assert.equal(0, r.code)
    assert.matches("^usage: mydb ", r.out)
    H.rmrf(dest)
  end)

  it("verify exits 1 and names the damage", function()
    ok({ "init", "--backend", "loose" })
    ok({ "save", "config", '{"a":1}' })
    assert.matches("^ok", ok({ "verify" }).out)
    local p = io.popen("find " .. H.q(root) .. " \\( -path '*objects*' -o -name packed \\) -type f")
    local damaged = 0
    for f in p:lines() do
      H.write(f, "garbage")
      damaged = damaged + 1
    end
    p:close()
    assert.is_true(damaged > 0)
    local r = mydb({ "verify" })
    assert.equal(1, r.code)
    -- (a damaged object file; a damaged TENANT/packed: its framing)
    assert.is_truthy(r.out:find("corrupt_object", 1, true) or r.out:find("corrupt_segment", 1, true), r.out)
    assert.matches("damaged: %d+ problem", r.out)
    local j = cjson.decode(mydb({ "verify", "--json" }).out)
    assert.is_false(j.ok)
    assert.is_true(#j.problems > 0)
  end)
end)
