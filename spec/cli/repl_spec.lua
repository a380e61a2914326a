-- mydb-lua's interactive mode: piped (`-i` with _PROMPT = '') for the
-- evaluation rules and the printer, and on a pseudo-terminal (ptyrun) for
-- what needs a terminal: readline, history, completion, Ctrl-C, Ctrl-D.
local H = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "spec/cli/") .. "cli_helper.lua")

-- Runs lines through `mydb-lua -i` with empty prompts; returns out, err
-- (the version banner removed).
local function repl(lines, args)
  local a = {}
  for _, x in ipairs(args or {}) do a[#a + 1] = x end
  for _, x in ipairs { "-e", "_PROMPT = '' _PROMPT2 = ''", "-i" } do a[#a + 1] = x end
  local r = H.run(a, { stdin = table.concat(lines, "\n") .. "\n" })
  return r.out:gsub("^mydb%-lua [^\n]*\n", ""), r.err, r.code
end

describe("mydb-lua #cli REPL", function()
  describe("evaluation (piped)", function()
    it("prints the values of expressions, strings as they are", function()
      local out, err, code = repl({ "1 + 1", "'a', 2, nil", "x = 5", "x" })
      assert.equal(0, code, err)
      assert.equal("2\na\t2\tnil\n5\n\n", out)
    end)

    it("accepts 5.1's =expr", function()
      local out = repl({ "=3 * 3" })
      assert.equal("9\n\n", out)
    end)

    it("continues an incomplete chunk with _PROMPT2", function()
      local r = H.run({ "-e", "_PROMPT = 'P1 ' _PROMPT2 = 'P2 '", "-i" },
        { stdin = "for i = 1, 2 do\nprint(i)\nend\nfunction f()\nreturn 7 end\nf()\n" })
      assert.equal(0, r.code, r.err)
      assert.matches("P1 P2 P2 1\n2\nP1 P2 P1 7\nP1 \n$", r.out)
    end)

    it("prints a syntax error and goes on", function()
      local out, err = repl({ "x = = 1", "print('still here')" })
      assert.matches("stdin:1: unexpected symbol near '='", err, 1, true)
      assert.equal("still here\n\n", out)
    end)

    it("prints a runtime error with its traceback and goes on", function()
      local out, err, code = repl({ "local function f() error('boom') end f()", "'next'" })
      assert.equal(0, code)
      assert.matches("stdin:1: boom\nstack traceback:", err, 1, true)
      assert.matches("in local 'f'", err, 1, true)
      assert.equal("next\n\n", out)
    end)

    it("shows mydb error values through their __tostring", function()
      local out, err = repl({ "require('mydb').open({})", "1" })
      assert.matches("mydb: invalid_argument: root must be a string", err, 1, true)
      assert.equal("1\n\n", out)
    end)

    it("reports an incomplete chunk at end of input", function()
      local _, err, code = repl({ "for i = 1, 2 do" })
      assert.equal(0, code)
      assert.matches("'end' expected near <eof>", err, 1, true)
    end)

    it("ends with os.exit and its status", function()
      local _, _, code = repl({ "os.exit(3)", "print('not reached')" })
      assert.equal(3, code)
    end)
  end)

  describe("printing tables", function()
    it("prints small tables on one line, fields sorted after the array part", function()
      local out = repl({ "{ 1, 'two', z = 1, a = { b = true }, ['x y'] = 2, [10] = 0 }" })
      assert.equal('{ 1, "two", a = { b = true }, ["x y"] = 2, z = 1, [10] = 0 }\n\n', out)
    end)

    it("prints larger tables over several lines, indented", function()
      local out = repl({ "{ name = string.rep('n', 40), list = { 1, 2, 3 }, nested = { deep = string.rep('d', 60) } }" })
      assert.equal([[
{
  list = { 1, 2, 3 },
  name = "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn",
  nested = {
    deep = "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
  }
}

]], out)
    end)

    it("prints a 1,000,000-element table as a bounded prefix", function()
      local out, err = repl({ "local t = {} for i = 1, 1000000 do t[i] = i end return t" })
      assert.equal("", err)
      assert.truthy(#out < 2000, #out)
      assert.matches("^{\n  1, 2, 3, 4, 5,", out)
      assert.matches("100,\n  ... (999900 more)\n}\n", out, 1, true)
    end)

    it("bounds a huge hash table, deep nesting, long strings and the total size", function()
      local out = repl({ "local t = {} for i = 1, 200000 do t['k' .. i] = i end return t" })
      assert.truthy(#out < 4000, #out)
      assert.matches("... (199900 more)", out, 1, true)
      out = repl({ "{ a = { b = { c = { d = { e = 1 } } } } }" })
      assert.equal("{ a = { b = { c = { d = {...} } } } }\n\n", out)
      out = repl({ "{ string.rep('x', 5000) }" })
      assert.matches('"x+"%.%.%. %(5000 bytes%)', out)
      assert.truthy(#out < 2200)
      out = repl({ "local t = {} for i = 1, 100 do t[i] = { string.rep('y', 500) } end return t" })
      assert.truthy(#out <= 8192 + 2, #out)
      assert.matches("...\n\n$", out)
    end)

    it("marks cycles, uses __tostring, escapes strings", function()
      local out = repl({
        "local t = {} t.self = t return t",
        "{ setmetatable({}, { __tostring = function() return 'OBJ' end }) }",
        "{ 'a\\nb\\0', 'q\"' }",
      })
      assert.equal('{ self = <cycle> }\n{ OBJ }\n{ "a\\nb\\0", "q\\"" }\n\n', out)
    end)

    it("offers the printer as pp(value [, opts])", function()
      local out = repl({ "pp({ 1, 2, 3, 4 }, { items = 2 })", "pp({ a = { b = 1 } }, { depth = 1 })" })
      assert.equal("{ 1, 2, ... (2 more) }\n{ a = {...} }\n\n", out)
      local _, err = repl({ "pp(1, { depth = -1 })" })
      assert.matches("bad option 'depth' to 'pp'", err, 1, true)
    end)

    it("goes through the global print", function()
      local out = repl({ "print = function(...) io.write('P:', select('#', ...), '\\n') end", "1, 2" })
      assert.equal("P:2\n\n", out)
    end)
  end)

  describe("completion (mydb_inspect.complete)", function()
    local function complete(text, args)
      local out = repl({ ("table.concat(mydb_inspect.complete(%q), ' ')"):format(text) }, args)
      return (out:gsub("\n+$", ""))
    end

    it("completes globals and keywords", function()
      assert.equal("print", complete("pri"))
      assert.equal("rawequal rawget rawlen rawset repeat require return", complete("r"))
    end)

    it("completes table fields", function()
      assert.equal("string.format", complete("string.fo"))
      assert.equal("x = string.byte", complete("x = string.by"))
    end)

    it("completes methods through the metatable __index chain", function()
      local root = H.tmpdir()
      H.empty_store(root .. "/s")
      local got = complete("db:", { "--db", root .. "/s" })
      for _, m in ipairs { "db:save", "db:load", "db:history", "db:tenants", "db:close" } do
        assert.truthy((" " .. got .. " "):find(" " .. m .. " ", 1, true), m .. " in " .. got)
      end
      assert.falsy(got:find("_ctx", 1, true))
      assert.truthy(complete("db:_", { "--db", root .. "/s" }):find("db:_ctx", 1, true))
      assert.equal("db:tenants", complete("db:ten", { "--db", root .. "/s" }))
      assert.equal(("x"):rep(0) .. "s:upper", complete("s:up", { "-e", "s = 'str'" }))
      H.rmrf(root)
    end)

    it("lists nothing for what is not a path", function()
      assert.equal("", complete("nosuch.x"))
      assert.equal("", complete("1 ."))
    end)
  end)

  describe("on a terminal", function()
    local home = H.scratch
    -- without pseudo-terminals (or ptyrun), these are reported pending
    local it = H.pty_ok() and it or function(name) pending(name .. " (no pseudo-terminal)") end

    it("shows the banner and the prompt, prints values, continues chunks", function()
      local p = H.pty({}, {
        "expect > ",
        "send 1 + 1\\r",
        "expect 2\\r\\n> ",
        "send for i = 1, 2 do\\r",
        "expect >> ",
        "send print(i * 10) end\\r",
        "expect 20\\r\\n> ",
        "send { a = 1 }\\r",
        "expect { a = 1 }\\r\\n{ a = 1 }\\r\\n> ",
        "send \\x04",
        "wait",
      })
      assert.equal(0, p.code, p.text .. p.err)
      assert.matches("^mydb%-lua %S+ %(mydb", p.text)
      assert.matches("> for i = 1, 2 do\n>> print(i * 10) end\n10\n20\n", p.text, 1, true)
    end)

    it("writes the history file", function()
      local hist = home .. "/hist_" .. tostring(os.time())
      local p = H.pty({}, {
        "expect > ", "send x = 42\\r", "expect > ", "send print(x)\\r", "expect 42\\r\\n> ",
        "send \\x04", "wait",
      }, { env = { MYDB_HISTORY = hist } })
      assert.equal(0, p.code, p.text)
      assert.equal("x = 42\nprint(x)\n", H.read(hist))
      -- the next session reads it: up-arrow brings back the last line
      p = H.pty({}, {
        "expect > ", "send \\x1b[A\\r", "expect nil\\r\\n> ", "send \\x04", "wait",
      }, { env = { MYDB_HISTORY = hist } })
      assert.equal(0, p.code, p.text)
      assert.equal("x = 42\nprint(x)\nprint(x)\n", H.read(hist))
      os.remove(hist)
    end)

    it("uses ~/.mydb_lua_history by default, and no file with MYDB_HISTORY=''", function()
      local h2 = H.tmpdir()
      local p = H.pty({}, { "expect > ", "send y = 1\\r", "expect > ", "send \\x04", "wait" },
        { env = { HOME = h2, MYDB_HISTORY = false } })
      assert.equal(0, p.code, p.text)
      assert.equal("y = 1\n", H.read(h2 .. "/.mydb_lua_history"))
      p = H.pty({}, { "expect > ", "send z = 1\\r", "expect > ", "send \\x04", "wait" },
        { env = { HOME = h2, MYDB_HISTORY = "" } })
      assert.equal(0, p.code, p.text)
      assert.equal("y = 1\n", H.read(h2 .. "/.mydb_lua_history"))
      H.rmrf(h2)
    end)

    it("completes with TAB: globals, fields, and db methods", function()
      local root = H.tmpdir()
      H.empty_store(root .. "/s")
      local p = H.pty({ "--db", root .. "/s" }, {
        "expect > ",
        "send string.fo\\t",
        "expect string.format",
        "send ('<%d>', 7)\\r",
        "expect <7>",
        "send db:\\t\\t",
        "expect tenants",
        "expect > db:",
        "send \\x03",
        "expect > ",
        "send db:ten\\t",
        "expect db:tenants",
        "send ()\\r",
        "expect {}\\r\\n> ",
        "send \\x04",
        "wait",
      })
      assert.equal(0, p.code, p.text .. p.err)
      -- the listing shows the method names, several a line
      assert.matches("> db:[^\n]*\n[^>]*%f[%w]save%f[%W]", p.text)
      assert.matches("> db:[^\n]*\n[^>]*%f[%w]history%f[%W]", p.text)
      assert.matches("> db:[^\n]*\n[^>]*%f[%w]load%f[%W]", p.text)
      H.rmrf(root)
    end)

    it("stops running code with Ctrl-C and keeps the session", function()
      local p = H.pty({}, {
        "expect > ",
        "send while true do end\\r",
        "expect while true do end\\r\\n",
        "sleep 200",
        "send \\x03",
        "expect interrupted!",
        "expect > ",
        "send print('alive')\\r",
        "expect alive')\\r\\nalive\\r\\n> ",
        "send \\x04",
        "wait",
      })
      assert.equal(0, p.code, p.text .. p.err)
      assert.matches("interrupted!\nstack traceback:", p.text, 1, true)
    end)

    it("clears the line with Ctrl-C at the prompt, and drops a half-typed chunk", function()
      local p = H.pty({}, {
        "expect > ",
        "send abc",
        "expect abc",
        "send \\x03",
        "expect ^C\\r\\n> ",
        "send for i = 1, 3 do\\r",
        "expect >> ",
        "send \\x03",
        "expect ^C\\r\\n> ",
        "send print('fresh')\\r",
        "expect fresh')\\r\\nfresh\\r\\n> ",
        "send \\x04",
        "wait",
      })
      assert.equal(0, p.code, p.text .. p.err)
      assert.matches("> abc^C\n> for i = 1, 3 do\n>> ^C\n> print('fresh')\nfresh\n", p.text, 1, true)
    end)

    it("exits with Ctrl-D", function()
      local p = H.pty({}, { "expect > ", "send \\x04", "wait" })
      assert.equal(0, p.code)
      p = H.pty({ "-e", "x = 1", "-i" }, { "expect > ", "send os.exit(5)\\r", "wait" })
      assert.equal(5, p.code)
    end)

    it("honours _PROMPT", function()
      local p = H.pty({ "-e", "_PROMPT = 'mydb> '", "-i" }, { "expect mydb> ", "send \\x04", "wait" })
      assert.equal(0, p.code, p.text)
    end)
  end)
end)
