-- mydb-lua's prompt with --db: the globals `mydb` (the module) and `db`
-- (the opened store) are both there (issue 16, part 2).
local H = dofile("spec/cli/cli_helper.lua")

describe("mydb-lua prompt globals", function()
  local it = H.pty_ok() and it or function(name) pending(name .. " (no pseudo-terminal)") end

  it("has mydb and db at the prompt with --db", function()
    local root = H.tmpdir() .. "/s"
    H.empty_store(root)
    local p = H.pty({ "--db", root }, {
      "expect > ",
      "send print(type(mydb), type(mydb.open), mydb.errors ~= nil)\\r",
      "expect table\\tfunction\\ttrue\\r\\n> ",
      "send print(tostring(db):match('mydb') ~= nil)\\r",
      "expect true\\r\\n> ",
      "send \\x04",
      "wait",
    })
    assert.equal(0, p.code, p.text)
    H.rmrf(root:gsub("/s$", ""))
  end)

  it("leaves a global mydb the user set first alone", function()
    local p = H.pty({ "-e", "mydb = 42", "-i" }, {
      "expect > ",
      "send print(mydb)\\r",
      "expect 42\\r\\n> ",
      "send \\x04",
      "wait",
    })
    assert.equal(0, p.code, p.text)
  end)

  it("shows a mydb error at the user's line, without mydb's own frames", function()
    local root = H.tmpdir() .. "/s"
    H.empty_store(root)
    local p = H.pty({ "--db", root }, {
      "expect > ",
      "send db:load('nosuch', 'x')\\r",
      "expect stack traceback:",
      "expect > ",
      "send local v = db:load('nosuch', 'x')\\r",
      "expect stack traceback:",
      "expect > ",
      "send \\x04",
      "wait",
    })
    assert.equal(0, p.code, p.text)
    -- (the prompt's "return db:load(...)" is a tail call: no line to name)
    assert.matches("\nmydb: not_initialized: tenant 'nosuch'", p.text, 1, true)
    assert.matches("\nstdin:1: mydb: not_initialized: tenant 'nosuch'", p.text, 1, true)
    assert.falsy(p.text:find("lua/mydb/", 1, true), p.text)
    H.rmrf(root:gsub("/s$", ""))
  end)
end)
