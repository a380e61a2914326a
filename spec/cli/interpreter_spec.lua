-- mydb-lua as a drop-in `lua`: command line, arg table, exit codes, stdin,
-- LUA_INIT, -E, -W, -l, embedded modules. Driven through pipes.
local H = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "spec/cli/") .. "cli_helper.lua")

local ARGS = "local t = {} for i = -4, 4 do t[#t + 1] = tostring(arg[i]) end print(table.concat(t, '|'))"

describe("mydb-lua #cli interpreter", function()
  local dir
  lazy_setup(function()
    dir = H.tmpdir()
    H.write(dir .. "/args.lua", ARGS)
    H.write(dir .. "/exit.lua", "os.exit(tonumber(arg[1]))")
    H.write(dir .. "/err.lua", "local function f() error('boom') end\nf()\n")
    H.write(dir .. "/ret.lua", "return 1, 2, 3")
    H.write(dir .. "/mod_x.lua", "return { name = 'mod_x' }")
  end)
  lazy_teardown(function() H.rmrf(dir) end)

  describe("the arg table", function()
    it("holds the script at 0, its arguments after, the interpreter and options before", function()
      local r = H.run({ "-W", dir .. "/args.lua", "x", "y" })
      assert.equal(0, r.code, r.err)
      assert.equal(("nil|nil|%s|-W|%s/args.lua|x|y|nil|nil\n"):format(H.bin, dir), r.out)
    end)

    it("counts the mydb options as interpreter options", function()
      local root = dir .. "/store_args"
      H.empty_store(root)
      local r = H.run({ "--db", root, dir .. "/args.lua", "a" })
      assert.equal(0, r.code, r.err)
      assert.equal(("nil|%s|--db|%s|%s/args.lua|a|nil|nil|nil\n"):format(H.bin, root, dir), r.out)
    end)

    it("starts at the interpreter with -e and no script, as lua does", function()
      local r = H.run({ "-e", ARGS })
      assert.equal(("nil|nil|nil|nil|%s|-e|%s|nil|nil\n"):format(H.bin, ARGS), r.out)
    end)

    it("passes the arguments to the script as ...", function()
      local r = H.run({ "-e", "x = 1", "--", dir .. "/args.lua", "q" })
      assert.equal(0, r.code, r.err)
      assert.equal(("%s|-e|x = 1|--|%s/args.lua|q|nil|nil|nil\n"):format(H.bin, dir), r.out)
      r = H.run({ "-", "a", "b" }, { stdin = "print(select('#', ...), ...)" })
      assert.equal("2\ta\tb\n", r.out)
    end)
  end)

  describe("standard input", function()
    it("runs as a script when it is not a terminal and there is no script", function()
      local r = H.run({}, { stdin = "print('from stdin', #arg)" })
      assert.equal(0, r.code, r.err)
      assert.equal("from stdin\t0\n", r.out)
    end)

    it("runs with '-'", function()
      local r = H.run({ "-" }, { stdin = "print(arg[0])" })
      assert.equal("-\n", r.out)
    end)

    it("takes '-' after '--' as a file name", function()
      local r = H.run({ "--", "-" }, { cwd = dir })
      assert.equal(1, r.code)
      assert.matches("cannot open %-", r.err)
    end)
  end)

  describe("exit codes", function()
    it("is 0 after a script that ran", function()
      assert.equal(0, H.run({ dir .. "/ret.lua" }).code)
    end)

    it("is 1 with a message and traceback after an error", function()
      local r = H.run({ dir .. "/err.lua" })
      assert.equal(1, r.code)
      assert.matches("err.lua:1: boom", r.err, 1, true)
      assert.matches("stack traceback:", r.err, 1, true)
      assert.equal(H.bin .. ": ", r.err:sub(1, #H.bin + 2))
    end)

    it("follows os.exit", function()
      assert.equal(7, H.run({ dir .. "/exit.lua", "7" }).code)
      assert.equal(0, H.run({ "-e", "os.exit(true)" }).code)
      assert.equal(1, H.run({ "-e", "os.exit(false)" }).code)
    end)

    it("is 1 for a missing script or a syntax error", function()
      local r = H.run({ dir .. "/nope.lua" })
      assert.equal(1, r.code)
      assert.matches("cannot open", r.err, 1, true)
      r = H.run({ "-e", "x = = 1" })
      assert.equal(1, r.code)
      assert.matches("(command line):1:", r.err, 1, true)
    end)

    it("is 1 with the usage for a bad option", function()
      local r = H.run({ "-x" })
      assert.equal(1, r.code)
      assert.matches("unrecognized option '-x'", r.err, 1, true)
      assert.matches("usage:", r.err, 1, true)
      r = H.run({ "-e" })
      assert.equal(1, r.code)
      assert.matches("'-e' needs argument", r.err, 1, true)
      r = H.run({ "-l", "-e", "x" })
      assert.matches("'-l' needs argument", r.err, 1, true)
      r = H.run({ "--nope" })
      assert.equal(1, r.code)
      assert.matches("unrecognized option '--nope'", r.err, 1, true)
    end)

    it("reports error objects through __tostring, with a traceback", function()
      local r = H.run({ "-e", "error(setmetatable({}, {__tostring = function() return 'TS' end}))" })
      assert.equal(1, r.code)
      assert.matches(": TS\nstack traceback:", r.err, 1, true)
      r = H.run({ "-e", "error({})" })
      assert.matches("(error object is a table value)", r.err, 1, true)
      r = H.run({ "-e", "require('mydb').open(arg[0] .. '/x/y')" }) -- root under a file
      assert.equal(1, r.code)
      assert.matches("mydb: ", r.err, 1, true)
    end)
  end)

  describe("options", function()
    it("runs -e, -l and -W in order", function()
      local r = H.run({ "-e", "x = 10", "-l", "string", "-e", "print(x, type(string))" })
      assert.equal("10\ttable\n", r.out)
      r = H.run({ "-W", "-e", "warn('hello')" })
      assert.matches("Lua warning: hello", r.err, 1, true)
      r = H.run({ "-e", "warn('hello')" })
      assert.equal("", r.err)
    end)

    it("requires -l mod into global mod, and -l g=mod into g", function()
      local r = H.run({ "-l", "mod_x", "-e", "print(mod_x.name)" }, { cwd = dir, env = { LUA_PATH = "./?.lua" } })
      assert.equal("mod_x\n", r.out, r.err)
      r = H.run({ "-l", "m=mod_x", "-e", "print(m.name, mod_x)" }, { cwd = dir, env = { LUA_PATH = "./?.lua" } })
      assert.equal("mod_x\tnil\n", r.out, r.err)
      r = H.run({ "-lmydb", "-e", "print(type(mydb.open))" })
      assert.equal("function\n", r.out)
      r = H.run({ "-l", "no_such_module_x" })
      assert.equal(1, r.code)
      assert.matches("module 'no_such_module_x' not found", r.err, 1, true)
    end)

    it("prints the version with -v, and runs nothing else unless asked", function()
      local r = H.run({ "-v" })
      assert.equal(0, r.code)
      assert.matches("^mydb%-lua %S+ %(mydb %S+%) %-%- Lua 5%.4", r.out)
      r = H.run({ "-v", "-e", "print('after')" })
      assert.matches("\nafter\n$", r.out)
    end)

    it("runs LUA_INIT_5_4 (or LUA_INIT) first, and ignores it with -E", function()
      local r = H.run({ "-e", "print(X)" }, { env = { LUA_INIT = "X = 'init'" } })
      assert.equal("init\n", r.out)
      r = H.run({ "-e", "print(X)" }, { env = { LUA_INIT = "X = 'init'", LUA_INIT_5_4 = "X = '54'" } })
      assert.equal("54\n", r.out)
      H.write(dir .. "/init.lua", "X = 'file'")
      r = H.run({ "-e", "print(X)" }, { env = { LUA_INIT = "@" .. dir .. "/init.lua" } })
      assert.equal("file\n", r.out)
      r = H.run({ "-E", "-e", "print(X)" }, { env = { LUA_INIT = "X = 'init'" } })
      assert.equal("nil\n", r.out)
      r = H.run({ "-e", "print(X)" }, { env = { LUA_INIT = "error('bad init')" } })
      assert.equal(1, r.code)
      assert.matches("bad init", r.err, 1, true)
    end)

    it("ignores LUA_PATH with -E", function()
      local r = H.run({ "-E", "-e", "print(package.path:find('/nowhere/', 1, true))" },
        { env = { LUA_PATH = "/nowhere/?.lua" } })
      assert.equal("nil\n", r.out)
      r = H.run({ "-e", "print(package.path:find('/nowhere/', 1, true) ~= nil)" },
        { env = { LUA_PATH = "/nowhere/?.lua" } })
      assert.equal("true\n", r.out)
    end)
  end)

  describe("embedded mydb", function()
    it("loads mydb, its modules and mydb.core with no path at all", function()
      local r = H.run({ "-e", [[
        package.path, package.cpath = "", ""
        local mydb = require "mydb"
        print(type(mydb.open), type(require "mydb.core".encode), type(require "mydb.errors".raise),
              type(require "mydb.inspect".show))
      ]] }, { cwd = "/" })
      assert.equal(0, r.code, r.err)
      assert.equal("function\tfunction\tfunction\tfunction\n", r.out)
    end)

    it("prefers the embedded copies over LUA_PATH (preload wins)", function()
      H.write(dir .. "/mydb.lua", "return { fake = true }")
      local r = H.run({ "-e", "print(require('mydb').fake, package.searchpath('mydb', package.path))" },
        { cwd = dir, env = { LUA_PATH = "./?.lua" } })
      assert.equal("nil\t./mydb.lua\n", r.out, r.err)
      os.remove(dir .. "/mydb.lua")
    end)

    it("reports a mydb error at the caller's line, without mydb's own frames", function()
      local r = H.run({ "-e", "require('mydb').open({})" })
      assert.equal(1, r.code)
      assert.matches("^[^\n]*: %(command line%):1: mydb: invalid_argument: root must be a string", r.err)
      assert.matches("stack traceback:", r.err, 1, true)
      assert.falsy(r.err:find("lua/mydb/", 1, true), r.err)
    end)

    it("names mydb's source files in the traceback of other errors", function()
      local r = H.run({ "-e", "require('mydb.cmd.graph').lines({ { id = 'x' } }, error)" })
      assert.equal(1, r.code)
      assert.matches("src/cli/cmd_graph.lua", r.err, 1, true)
    end)

    it("does not set globals of its own in a script", function()
      local r = H.run({ "-e", "print(db, mydb, mydb_inspect, t)" })
      assert.equal("nil\tnil\tnil\tnil\n", r.out)
    end)
  end)

  describe("busted", function()
    it("runs a spec suite under mydb-lua", function()
      local sdir = dir .. "/specs"
      os.execute("mkdir -p " .. H.q(sdir))
      H.write(sdir .. "/one_spec.lua", [[
        describe("inside", function()
          it("has mydb", function() assert.is_function(require("mydb").open) end)
          it("counts", function() assert.equal(2, 1 + 1) end)
        end)
      ]])
      local busted = "/usr/bin/busted"
      local r = H.run({ busted, "-o", "plainTerminal", sdir }, { cwd = dir })
      assert.equal(0, r.code, r.out .. r.err)
      assert.matches("2 successes / 0 failures / 0 errors", r.out, 1, true)
      r = H.run({ busted, "--version" }, { cwd = dir })
      assert.equal(0, r.code)
      assert.matches("^%d+%.%d+", r.out)
    end)
  end)
  describe("collectgarbage", function()
    -- Lua 5.4.4 (Debian 12's) sets no target for the generational collector
    -- after a full collection: the next one waited until the heap had
    -- doubled. mydb-lua's collectgarbage() takes the steps that set it.
    local LOAD = [[
      local t = {}
      for i = 1, 300000 do t[i] = { i } end
      collectgarbage(%s)
      local base, max = collectgarbage("count"), 0
      for i = 1, 300000 do
        local x = { i, i }
        if i %% 1000 == 0 then max = math.max(max, collectgarbage("count") - base) end
      end
      print(("%%d %%d"):format(base // 1, max // 1))
    ]]

    it("collects young garbage again right after collectgarbage() following a load", function()
      for _, how in ipairs { "", "'collect'" } do
        local r = H.run({ "-e", LOAD:format(how) })
        assert.equal(0, r.code, r.err)
        local base, max = r.out:match("^(%d+) (%d+)")
        base, max = tonumber(base), tonumber(max)
        -- (a minor collection every 20% of growth; the heap doubled before)
        assert.is_true(base > 20000, r.out)
        assert.is_true(max < base * 0.4, ("grew %d KiB over a %d KiB heap"):format(max, base))
      end
    end)

    it("keeps the base library's results and argument errors", function()
      local r = H.run({ "-e", "print(collectgarbage('step', 0), collectgarbage('count') > 0, " ..
        "collectgarbage('incremental', 100, 200, 10), collectgarbage('generational'), collectgarbage())" })
      assert.equal(0, r.code, r.err)
      assert.equal("false\ttrue\tgenerational\tincremental\t0\n", r.out)
      for _, case in ipairs {
        { "collectgarbage({})", "bad argument #1 to 'collectgarbage' (string expected, got table)" },
        { "collectgarbage('x')", "bad argument #1 to 'collectgarbage' (invalid option 'x')" },
        { "collectgarbage('step', {})", "bad argument #2 to 'collectgarbage' (number expected, got table)" },
      } do
        local e = H.run({ "-e", case[1] })
        assert.equal(1, e.code)
        assert.truthy(e.err:find(case[2], 1, true), e.err)
      end
    end)
  end)
end)
