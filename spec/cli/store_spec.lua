-- mydb-lua with a store: --db/--tenant bindings, handler modules
-- (--handlers, MYDB_HANDLERS), the inspection commands from the shell and
-- at the prompt, and --help. Driven through pipes.
local H = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "spec/cli/") .. "cli_helper.lua")

local DIGEST = ("%x"):rep(64)

describe("mydb-lua #cli with a store", function()
  local dir, root
  lazy_setup(function()
    dir = H.tmpdir()
    root = dir .. "/store"
    H.make_store(root)
  end)
  lazy_teardown(function() H.rmrf(dir) end)

  describe("--db and --tenant", function()
    it("binds db before -e, the script and the prompt", function()
      local r = H.run({ "--db", root, "-e", "print(db, db:tenants()[1])" })
      assert.equal(0, r.code, r.err)
      assert.equal(("mydb.db (%s)\tacme\n"):format(root), r.out)
      H.write(dir .. "/s.lua", "print(#db:history('acme', 'config'), ...)")
      r = H.run({ "--db=" .. root, dir .. "/s.lua", "x" })
      assert.equal("3\tx\n", r.out, r.err)
      r = H.run({ "--db", root, "-i" }, { stdin = "_PROMPT=''\ndb:load('acme', 'config').theme\n" })
      assert.matches("blue\n", r.out, 1, true)
    end)

    it("binds t, a handle whose methods omit the tenant", function()
      local own = dir .. "/tstore"
      H.make_store(own)
      local r = H.run({ "--db", own, "--tenant", "acme", "-e", [[
        print(t:load("config").theme, t:get("users", "u1").name, #t:entries(), t.tenant)
        print(t:save("bob", "config", { theme = "red" }):match("^%x+$") ~= nil)
        print(db:load("acme", "config").theme, tostring(t):match("^mydb.tenant 'acme'") ~= nil)
        print(t.tenants, t.close, t.on_change, type(t.history), type(t.init))
      ]] })
      assert.equal(0, r.code, r.err)
      assert.equal("blue\tAnn\t2\tacme\ntrue\nred\ttrue\nnil\tnil\tnil\tfunction\tfunction\n", r.out)
    end)

    it("opens a store, never creates one (spec/cli/open_missing_spec.lua)", function()
      local r = H.run({ "--db", dir .. "/fresh", "-e", "print('not here')" })
      assert.equal(1, r.code)
      assert.equal("", r.out)
      assert.falsy(H.exists(dir .. "/fresh"))
      H.empty_store(dir .. "/fresh")
      r = H.run({ "--db", dir .. "/fresh", "-e", "db:init('x') print(db:is_initialized('x'))" })
      assert.equal("true\n", r.out, r.err)
    end)

    it("reports a store that cannot be opened", function()
      H.write(dir .. "/afile", "")
      local r = H.run({ "--db", dir .. "/afile/sub", "-e", "print('not here')" })
      assert.equal(1, r.code)
      assert.equal("", r.out)
      assert.matches("mydb: not_found: no store at '" .. dir .. "/afile/sub'", r.err, 1, true)
    end)

    it("needs --db for --tenant, and a value for both", function()
      local r = H.run({ "--tenant", "acme", "-e", "print(1)" })
      assert.equal(1, r.code)
      assert.matches("'--tenant' needs --db ROOT", r.err, 1, true)
      r = H.run({ "--db" })
      assert.equal(1, r.code)
      assert.matches("'--db' needs an argument", r.err, 1, true)
    end)

    it("binds mydb_inspect in a script run with --db", function()
      local r = H.run({ "--db", root, "-e", "mydb_inspect.tenants()" })
      assert.equal("acme\nbeta\n", r.out, r.err)
    end)
  end)

  describe("handler modules", function()
    local hdir, bad
    lazy_setup(function()
      hdir = dir .. "/handlers"
      bad = dir .. "/bad"
      os.execute("mkdir -p " .. H.q(hdir) .. " " .. H.q(bad))
      H.write(hdir .. "/b_point.lua", [[
        ORDER = (ORDER or "") .. "b"
        local Point = {}
        Point.__index = Point
        return {
          tag = "Point",
          is_eligible_for = function(v) return getmetatable(v) == Point end,
          serialize = function(v) return { x = v.x, y = v.y } end,
          deserialize = function(t) return setmetatable({ x = t.x, y = t.y }, Point) end,
          new = function(x, y) return setmetatable({ x = x, y = y }, Point) end,
          Point = Point,
        }
      ]])
      H.write(hdir .. "/a_first.lua", 'ORDER = (ORDER or "") .. "a"')
      H.write(hdir .. "/notes.txt", "not a module")
      H.write(bad .. "/z_bad.lua", 'error("broken handler")')
    end)

    it("runs every *.lua of each --handlers directory, sorted, before anything else", function()
      local r = H.run({ "--handlers", hdir, "-e", "print(ORDER)" })
      assert.equal(0, r.code, r.err)
      assert.equal("ab\n", r.out)
    end)

    it("registers the handler a module returns, usable by save and load", function()
      H.empty_store(dir .. "/hstore")
      local r = H.run({ "--handlers", hdir, "--db", dir .. "/hstore", "-e", [[
        local P = require "mydb.handlers.b_point"
        db:init("x")
        db:save("x", "u", "p", { at = P.new(1, 2) })
        local v = db:load("x", "p")
        print(getmetatable(v.at) == P.Point, v.at.x, v.at.y, ORDER)
      ]] })
      assert.equal(0, r.code, r.err)
      assert.equal("true\t1\t2\tab\n", r.out)
      r = H.run({ "--db", dir .. "/hstore", "--show", "x", "p" })
      assert.matches('"at":{"__special__":"Point","x":1,"y":2}', r.out, 1, true)
    end)

    it("reads MYDB_HANDLERS (';'-separated) before --handlers, unless -E", function()
      local r = H.run({ "-e", "print(ORDER)" }, { env = { MYDB_HANDLERS = ";" .. hdir .. ";" } })
      assert.equal("ab\n", r.out, r.err)
      r = H.run({ "-E", "-e", "print(ORDER)" }, { env = { MYDB_HANDLERS = hdir } })
      assert.equal("nil\n", r.out, r.err)
    end)

    it("stops with status 1 naming the file of a module that fails", function()
      local r = H.run({ "--handlers", hdir, "--handlers", bad, "-e", "print('ran')" })
      assert.equal(1, r.code)
      assert.equal("", r.out)
      assert.matches("handler module " .. bad .. "/z_bad.lua failed to load: ", r.err, 1, true)
      assert.matches("broken handler", r.err, 1, true)
      r = H.run({ "-e", "print('ran')" }, { env = { MYDB_HANDLERS = bad } })
      assert.equal(1, r.code)
      assert.matches("z_bad.lua", r.err, 1, true)
      H.write(dir .. "/syntax.lua", "x = = 1")
      os.execute("mkdir -p " .. H.q(dir .. "/syn") .. " && mv " .. H.q(dir .. "/syntax.lua") .. " " .. H.q(dir .. "/syn/"))
      r = H.run({ "--handlers", dir .. "/syn" })
      assert.equal(1, r.code)
      assert.matches("handler module " .. dir .. "/syn/syntax.lua failed to load: ", r.err, 1, true)
    end)

    it("loads the handler modules shipped in handlers/", function()
      if not H.exists(H.root .. "/handlers/date.lua") then return end
      H.empty_store(dir .. "/dstore")
      local r = H.run({ "--handlers", H.root .. "/handlers", "--db", dir .. "/dstore", "-e", [[
        local date = require "mydb.handlers.date"
        db:init("x")
        db:save("x", "u", "d", { when = date.new(2024, 2, 29) })
        print(tostring(db:load("x", "d").when))
      ]] })
      assert.equal(0, r.code, r.err)
      assert.equal("2024-02-29\n", r.out)
    end)

    it("registers a policy module ({use_refs=}) when mydb.policies exists", function()
      local pdir = dir .. "/pol"
      os.execute("mkdir -p " .. H.q(pdir))
      H.write(pdir .. "/p.lua", "return { use_refs = function(v) return nil end }")
      local r = H.run({ "--handlers", pdir, "-e", [[
        local ok, policies = pcall(require, "mydb.policies")
        print(ok and type(policies.register) == "function" and "has" or "none")
      ]] })
      assert.equal(0, r.code, r.err)
    end)

    it("reports a directory that cannot be read", function()
      local r = H.run({ "--handlers", dir .. "/nope", "-e", "print('ran')" })
      assert.equal(1, r.code)
      assert.matches("cannot open handler directory " .. dir .. "/nope", r.err, 1, true)
    end)
  end)

  describe("inspection commands", function()
    it("--tenants lists the tenants", function()
      local r = H.run({ "--db", root, "--tenants" })
      assert.equal(0, r.code, r.err)
      assert.equal("acme\nbeta\n", r.out)
    end)

    it("--entries T lists a tenant's entries", function()
      local r = H.run({ "--db", root, "--entries", "acme" })
      assert.equal("config\nusers\n", r.out, r.err)
    end)

    it("--log T ENTRY prints one line per version, newest first, -n bounds it", function()
      local r = H.run({ "--db", root, "--log", "acme", "config" })
      assert.equal(0, r.code, r.err)
      local lines = H.lines(r.out)
      assert.equal(3, #lines)
      local users = {}
      for i, line in ipairs(lines) do
        local d, u, date = line:match("^(" .. DIGEST .. ")\t([^\t]+)\t(%d%d%d%d%d%d%d%d %d%d:%d%d:%d%d [+-]%d%d%d%d)$")
        assert.truthy(d, line)
        users[i] = u
      end
      assert.same({ "carol", "bob", "alice" }, users)
      r = H.run({ "--db", root, "--log", "acme", "config", "-n", "2" })
      assert.equal(2, #H.lines(r.out))
      assert.equal(r.out, H.run({ "--db", root, "-n2", "--log", "acme", "config" }).out)
      assert.equal(1, #H.lines(H.run({ "--db", root, "--log", "acme", "config", "--limit=1" }).out))
    end)

    it("--show T ENTRY prints the latest version as its stored JSON", function()
      local r = H.run({ "--db", root, "--show", "acme", "config" })
      assert.equal(0, r.code, r.err)
      assert.matches('^{"__date__":"[^"]+","__parent__":%["' .. DIGEST .. '"%],"__user_id__":"carol","n":3,"theme":"blue"}\n$', r.out)
      r = H.run({ "--db", root, "--show", "beta", "list" })
      assert.matches('"__parent__":%[null%],"__user_id__":"dave","__value__":%[1,2,3%]}\n$', r.out)
    end)

    it("--show T ENTRY DIGEST prints that version", function()
      local oldest = H.lines(H.run({ "--db", root, "--log", "acme", "config" }).out)[3]:match("^%x+")
      local r = H.run({ "--db", root, "--show", "acme", "config", oldest })
      assert.equal(0, r.code, r.err)
      assert.matches('"__parent__":%[null%],"__user_id__":"alice","n":1,"theme":"dark"}\n$', r.out)
    end)

    it("--show prints a record collection with its records", function()
      local r = H.run({ "--db", root, "--show", "acme", "users" })
      assert.equal(0, r.code, r.err)
      assert.matches('^{"__collection__":{"count":2},"__date__":"[^"]+","__parent__":%["' .. DIGEST
        .. '"%],"__records__":{"u1":{"name":"Ann"},"u2":{"name":"Ben"}},"__user_id__":"alice"}\n$', r.out)
    end)

    it("--show gives the same records when it must encode them again", function()
      local r = H.run({ "--db", root, "-e", [[
        local inspect = require "mydb.inspect"
        local a = inspect.show(db, "acme", "users")
        -- a db with only the public methods
        local public = setmetatable({ _store = db._store }, { __index = function(_, k)
          if k:sub(1, 1) == "_" then return nil end
          return function(_, ...) return db[k](db, ...) end
        end })
        local b = inspect.show(public, "acme", "users")
        print(a == b, #a > 0)
      ]] })
      assert.equal("true\ttrue\n", r.out, r.err)
    end)

    it("--verify checks the store (or a tenant): 0 when sound", function()
      local r = H.run({ "--db", root, "-e", "print(type(db.verify))" })
      if r.out == "nil\n" then -- a build without db:verify
        r = H.run({ "--db", root, "--verify" })
        assert.equal(2, r.code)
        assert.matches("verify: not available in this build", r.err, 1, true)
        return
      end
      r = H.run({ "--db", root, "--verify" })
      assert.equal(0, r.code, r.out .. r.err)
      assert.matches("^ok", r.out)
      r = H.run({ "--db", root, "--verify", "acme" })
      assert.equal(0, r.code, r.out .. r.err)
    end)

    it("--verify reports damage with status 1", function()
      local r = H.run({ "--db", root, "-e", "print(type(db.verify))" })
      if r.out == "nil\n" then return end
      local broken = dir .. "/broken"
      H.make_store(broken)
      local head = H.lines(H.run({ "--db", broken, "--log", "beta", "list" }).out)[1]:match("^%x+")
      local f = assert(io.popen("find " .. H.q(broken) .. " -name " .. head .. "*"))
      local path = f:read("l")
      f:close()
      if not path then -- loose: committed objects are in TENANT/packed
        f = assert(io.popen("find " .. H.q(broken) .. " -name packed"))
        path = f:read("l")
        f:close()
      end
      assert.truthy(path, "object file of " .. head)
      H.write(path, (H.read(path):gsub("dave", "evil")))
      r = H.run({ "--db", broken, "--verify" })
      assert.equal(1, r.code, r.out .. r.err)
      assert.matches(head, r.out, 1, true)
      assert.matches("damaged: ", r.out, 1, true)
    end)

    it("reports mydb errors on stderr with status 1, without a traceback", function()
      local r = H.run({ "--db", root, "--show", "acme", "nope" })
      assert.equal(1, r.code)
      assert.equal("", r.out)
      assert.matches("mydb: not_found: entry 'nope' not found in tenant 'acme'\n$", r.err)
      assert.falsy(r.err:find("traceback", 1, true))
      r = H.run({ "--db", root, "--entries", "zz" })
      assert.equal(1, r.code)
      assert.matches("not_initialized", r.err, 1, true)
      r = H.run({ "--db", root, "--show", "acme", "config", "abc" })
      assert.equal(1, r.code)
      assert.matches("digest must be 64 lowercase hex characters", r.err, 1, true)
    end)

    it("never creates a store", function()
      local r = H.run({ "--db", dir .. "/absent", "--tenants" })
      assert.equal(1, r.code)
      assert.matches("no store at '" .. dir .. "/absent'", r.err, 1, true)
      assert.falsy(H.exists(dir .. "/absent"))
    end)

    it("cannot be mistaken for a script, nor combined with one", function()
      local r = H.run({ "--db", root, "--tenants", "script.lua" })
      assert.equal(1, r.code)
      assert.matches("'script.lua' is not allowed after an inspection command", r.err, 1, true)
      r = H.run({ "--db", root, "--tenants", "--entries", "acme" })
      assert.equal(1, r.code)
      assert.matches("cannot be combined", r.err, 1, true)
      r = H.run({ "--db", root, "--tenants", "-e", "print(1)" })
      assert.equal(1, r.code)
      r = H.run({ "--tenants" })
      assert.equal(1, r.code)
      assert.matches("'--db' is required", r.err, 1, true)
      r = H.run({ "--db", root, "--log", "acme" })
      assert.equal(1, r.code)
      assert.matches("'--log' needs more arguments", r.err, 1, true)
      r = H.run({ "--db", root, "-n", "0", "--log", "acme", "config" })
      assert.equal(1, r.code)
      assert.matches("needs a positive integer", r.err, 1, true)
      r = H.run({ "-n", "3", "-e", "print(1)" })
      assert.equal(1, r.code)
      assert.matches("only applies to --log", r.err, 1, true)
      -- after --, a script may be called anything
      H.write(dir .. "/--tenants", "print('a script named --tenants')")
      r = H.run({ "--", "--tenants" }, { cwd = dir })
      assert.equal("a script named --tenants\n", r.out, r.err)
    end)
  end)

  describe("the helpers at the prompt", function()
    local function prompt(lines, args)
      local a = { "--db", root }
      for _, x in ipairs(args or {}) do a[#a + 1] = x end
      for _, x in ipairs { "-e", "_PROMPT = '' _PROMPT2 = ''", "-i" } do a[#a + 1] = x end
      local r = H.run(a, { stdin = table.concat(lines, "\n") .. "\n" })
      return r.out:gsub("^mydb%-lua [^\n]*\n", ""), r.err, r.code
    end

    it("print what the shell commands print", function()
      local shell_log = H.run({ "--db", root, "--log", "acme", "config", "-n", "2" }).out
      local shell_show = H.run({ "--db", root, "--show", "acme", "users" }).out
      local out, err = prompt({ "tenants()", "entries('acme')", "log('acme', 'config', 2)", "show('acme', 'users')" })
      assert.equal("", err)
      assert.equal("acme\nbeta\nconfig\nusers\n" .. shell_log .. shell_show .. "\n", out)
    end)

    it("are in mydb_inspect, and take the --tenant one for a nil tenant", function()
      local out, err = prompt({ "mydb_inspect.entries()", "log(nil, 'config', 1)" }, { "--tenant", "acme" })
      assert.equal("", err)
      assert.matches("^config\nusers\n%x+\tcarol\t", out)
    end)

    it("leave user globals alone", function()
      local out = prompt({ "log = 'mine'", "log", "type(mydb_inspect.log)" })
      assert.equal("mine\nfunction\n\n", out)
      local r = H.run({ "--db", root, "-e", "log = 'mine'", "-i" }, { stdin = "_PROMPT=''\nlog\n" })
      assert.matches("> mine\n", r.out, 1, true)
    end)

    it("say so when there is no db", function()
      local r = H.run({ "-e", "_PROMPT=''", "-i" }, { stdin = "tenants()\n'after'\n" })
      assert.matches("no database: start mydb-lua with --db ROOT", r.err, 1, true)
      assert.matches("\nafter\n", r.out, 1, true)
    end)

    it("verify() prints the result", function()
      local out = prompt({ "verify()" })
      assert.truthy(out:match("^ok") or out:match("^verify: not available"), out)
    end)
  end)

  describe("--help", function()
    it("documents every option, command and helper", function()
      local r = H.run({ "--help" })
      assert.equal(0, r.code)
      assert.equal("", r.err)
      for _, word in ipairs {
        "-e stat", "-l g=mod", "-i", "-v", "-E", "-W", "--db ROOT", "--tenant T", "--handlers DIR",
        "MYDB_HANDLERS", "--tenants", "--entries T", "--log T ENTRY [-n N]", "--show T ENTRY [DIGEST]",
        "--verify [T]", "MYDB_HISTORY", ".mydb_lua_history", "LUA_INIT", "mydb_inspect", "tenants()",
        "entries(t)", "log(t, entry [, n])", "show(t, entry [, digest])", "verify([t])", "pp(value",
        "_PROMPT2", "Ctrl-C", "Ctrl-D", "db:<TAB>", "package.preload", "2 when this build",
      } do
        assert.truthy(r.out:find(word, 1, true), word)
      end
      assert.equal(r.out, H.run({ "-h" }).out)
    end)
  end)
end)
