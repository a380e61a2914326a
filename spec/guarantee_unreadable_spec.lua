-- Issue 11, item 10: a store that cannot be read is not reported sound. A
-- tenant directory the process may not read used to be skipped: tenants()
-- returned the others, db:verify() found nothing and `mydb-lua --verify`
-- exited 0. The check runs as nobody (root reads mode 000 anyway).
local H = require "spec.helper"

local function sh(cmd) return os.execute(cmd) end

describe("guarantee: an unreadable store is a problem", function()
  local S = H.use_store()

  it("tenants() raises io, verify() reports 'unreadable', mydb-lua --verify fails", function()
    H.needs_disk("another process, as another user, reads the store")
    H.needs_files("makes a tenant's directory unreadable")
    if not sh("command -v setpriv >/dev/null 2>&1") or io.popen("id -u"):read("l") ~= "0" then
      pending("needs root and setpriv to run a check as another user")
      return
    end
    local db = S.db
    db:init("a")
    db:save("a", "u", "e", { x = 1 })
    db:init("t")
    db:save("t", "u", "e", { x = 2 })
    assert.is_true(sh(("chmod 755 %q && chmod -R a+rwX %q && chmod 000 %q"):format(S.dir, S.root,
      S.root .. "/t")))
    local script = S.dir .. "/check.lua"
    H.write_file(script, ([[
      local db = require("mydb").open(%q)
      local ok, err = pcall(db.tenants, db)
      print("tenants", ok, ok and #err or err.code)
      local problems = db:verify()
      print("verify", #problems, problems[1] and problems[1].kind)
    ]]):format(S.root))
    assert.is_true(sh("chmod 644 " .. script))
    local out = io.popen(("setpriv --reuid=65534 --regid=65534 --clear-groups lua5.4 %q 2>&1"):format(script))
      :read("a")
    assert.truthy(out:find("tenants\tfalse\tio", 1, true), out)
    assert.truthy(out:find("verify\t1\tunreadable", 1, true), out)
    local bin = "./mydb-lua" -- busted runs from the repository root
    if H.file_exists(bin) then
      local ok = sh(("setpriv --reuid=65534 --regid=65534 --clear-groups %q --db %q --verify >/dev/null 2>&1")
        :format(bin, S.root))
      assert.is_falsy(ok)
    end
    sh(("chmod 755 %q"):format(S.root .. "/t")) -- so that the store can be removed
  end)
end)
