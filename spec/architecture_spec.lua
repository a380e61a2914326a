-- The layering doc/ARCHITECTURE.md states for the Lua modules: each module
-- requires only modules listed below it (or in its own row), and none
-- requires mydb itself. Read from the sources, so the doc cannot drift.
local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

describe("architecture", function()
  it("every Lua module is in the layer table and requires only modules below it", function()
    local doc = read("doc/ARCHITECTURE.md")
    local table_start = assert(doc:find("| module | its job |", 1, true), "no module table")
    local row, layer = 0, {}
    for line in doc:sub(table_start):gmatch("[^\n]*") do
      if not line:match("^|") then
        if row > 0 then break end
      else
        row = row + 1
        local first = line:match("^|([^|]*)|")
        for name in first:gmatch("`([%w_]+)%.lua`") do layer[name] = row end
      end
    end
    local p = assert(io.popen("ls lua/mydb/*.lua"))
    local problems, count = {}, 0
    for path in p:lines() do
      local name = path:match("([%w_]+)%.lua$")
      count = count + 1
      local src = read(path)
      if not layer[name] then problems[#problems + 1] = name .. " is not in the table" end
      if name ~= "init" and src:find('require%s*%(?%s*"mydb"') then
        problems[#problems + 1] = name .. " requires mydb"
      end
      for dep in src:gmatch('require%s*%(?%s*"mydb%.([%w_]+)"') do
        if dep ~= "core" and dep ~= name and layer[name] and (not layer[dep] or layer[dep] < layer[name]) then
          problems[#problems + 1] = ("%s requires %s, listed above it"):format(name, dep)
        end
      end
    end
    p:close()
    assert.is_true(count > 20, "found " .. count .. " modules")
    assert.same({}, problems)
  end)
end)
