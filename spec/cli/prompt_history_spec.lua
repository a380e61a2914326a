-- mydb-lua's prompt keeps a multi-line chunk as ONE history entry, as
-- lua.c does: up-arrow brings the whole chunk back (issue 16, part 2).
local H = dofile("spec/cli/cli_helper.lua")

describe("mydb-lua prompt history", function()
  local it = H.pty_ok() and it or function(name) pending(name .. " (no pseudo-terminal)") end

  it("recalls a multi-line chunk whole", function()
    local hist = H.scratch .. "/hist_multi"
    os.remove(hist)
    local p = H.pty({}, {
      "expect > ",
      "send for i = 1, 2 do\\r",
      "expect >> ",
      "send print(i * 10) end\\r",
      "expect 20\\r\\n> ",
      "send \\x1b[A\\r",
      "expect 20\\r\\n> ",
      "send \\x04",
      "wait",
    }, { env = { MYDB_HISTORY = hist } })
    assert.equal(0, p.code, p.text)
    assert.falsy(p.text:find("'<eof>' expected", 1, true), p.text)
    local _, runs = p.text:gsub("\n20\n", "")
    assert.equal(2, runs, p.text)
    os.remove(hist)
  end)
end)
