-- Errors raised by the API name the caller's line (err.where), as Lua's
-- own functions' errors do (issue 16, part 2).
local mydb = require "mydb"
local errors = require "mydb.errors"

describe("error level", function()
  local root, db
  before_each(function()
    root = os.tmpname()
    os.remove(root)
    db = mydb.open(root, { backend = "memory" })
  end)
  after_each(function() db:close() end)

  local this = debug.getinfo(1, "S").short_src

  it("sets err.where to the line that called the API", function()
    local line = debug.getinfo(1, "l").currentline + 1
    local ok, e = pcall(function() db:load("nosuch", "x"); return 1 end)
    assert.is_false(ok)
    assert.equal("not_initialized", e.code)
    assert.equal(this .. ":" .. line, e.where)
  end)

  it("names the caller's line through several layers of mydb", function()
    db:init("acme")
    db:put("acme", "u", "c", "k", 1)
    local line = debug.getinfo(1, "l").currentline + 1
    local ok, e = pcall(function() db:save("acme", "u", "c", { 1 }); return 1 end)
    assert.is_false(ok)
    assert.equal("type_mismatch", e.code)
    assert.equal(this .. ":" .. line, e.where)
  end)

  it("tells mydb's own files from the caller's", function()
    assert.is_true(errors.internal_source("@/usr/share/lua/5.4/mydb/init.lua"))
    assert.is_true(errors.internal_source("@build/lua/mydb/handlers/set.lua"))
    assert.is_true(errors.internal_source("@src/cli/mydb_cmd.lua"))
    assert.is_false(errors.internal_source("@spec/error_level_spec.lua"))
    assert.is_false(errors.internal_source("@/home/u/mydb/app/main.lua"))
    assert.is_false(errors.internal_source("=stdin"))
  end)
end)
