-- `luarocks make --tree DIR` installs every file inside DIR, as a user who
-- cannot write outside it (issue 16, part 2): run on a copy of the
-- checkout with its build, as user nobody when the spec runs as root.
local H = dofile("spec/cli/cli_helper.lua")

local function have(cmd) return os.execute("command -v " .. cmd .. " >/dev/null 2>&1") == true end

describe("the rockspec", function()
  -- Under the sanitizers (LD_PRELOAD) the build is the instrumented one.
  local runnable = have("luarocks") and not os.getenv("LD_PRELOAD")
  local it = runnable and it or function(name) pending(name .. " (no luarocks, or a sanitizer run)") end

  it("installs mydb-lua, mydb, the modules and the man pages inside the tree only", function()
    local dir = H.tmpdir()
    local src, tree = dir .. "/src", dir .. "/tree"
    -- the checkout's files and its build (times kept: nothing recompiles)
    assert.is_true(os.execute(("mkdir -p %s && cd %s && git ls-files -z | xargs -0 cp -a --parents -t %s && cp -a build %s/")
      :format(H.q(src), H.q(H.root), H.q(src), H.q(src))))
    local as_user = ""
    if io.popen("id -u"):read("l") == "0" then
      assert.is_true(os.execute("chmod -R a+rwX " .. H.q(dir)))
      as_user = "setpriv --reuid=65534 --regid=65534 --clear-groups "
    end
    local log = dir .. "/log"
    local ok = os.execute(("cd %s && HOME=%s %sluarocks --lua-version 5.4 make --tree %s mydb-scm-1.rockspec >%s 2>&1")
      :format(H.q(src), H.q(dir), as_user, H.q(tree), H.q(log)))
    assert.is_true(ok, H.read(log))
    for _, f in ipairs { "/bin/mydb-lua", "/bin/mydb", "/share/lua/5.4/mydb/init.lua", "/lib/lua/5.4/mydb/core.so" } do
      assert.is_true(H.exists(tree .. f), f)
    end
    local manifest = H.read(tree .. "/lib/luarocks/rocks-5.4/mydb/scm-1/rock_manifest")
    for _, name in ipairs { '"mydb-lua"', "mydb =", '"mydb.1"', '"mydb-lua.1"', '"core.so"' } do
      assert.truthy(manifest:find(name, 1, true), name)
    end
    local r = H.run({ "--help" }, { bin = tree .. "/bin/mydb" })
    assert.equal(0, r.code)
    assert.matches("^usage: mydb ", r.out)
    H.rmrf(dir)
  end)
end)
