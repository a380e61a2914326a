-- core lock:commit(changes) keeps the lock: only a true second argument
-- releases it (lmydb.c read its own changes buffer as that argument, so
-- a second commit on the lock raised "closed"; copy.lua commits in
-- batches of 100,000 on one lock).
local H = require "spec.helper"
local core = require "mydb.core"

describe("mydb.core lock:commit", function()
  local S = H.use_store({ tenant = "t" })

  it("keeps the lock without a release argument, releases it with true", function()
    local store <close> = core.open(S.root, { fsync = false, backend = H.BACKEND })
    local a, b = store:write("t", "one"), store:write("t", "two")
    local lock = store:lock("t")
    lock:commit({ { "e1", a } })
    lock:commit({ { "e2", b } })
    assert.equal(b, lock:head("e2"))
    lock:commit({ { "e3", a } }, true)
    local ok, err = pcall(lock.head, lock, "e1")
    assert.is_false(ok)
    assert.equal("closed", err.code)
    assert.equal(a, store:head("t", "e3"))
  end)
end)
