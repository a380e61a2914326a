-- mydb.core, the binding the Lua modules are built on: what the write path
-- relies on (issue 12: a lock that stays held across commits, pieces
-- written with the digest the codec computed).
local H = require "spec.helper"
local core = require "mydb.core"

describe("mydb.core", function()
  local dir, store
  before_each(function()
    dir = H.tmpdir()
    store = core.open(dir .. "/db", { backend = H.BACKEND, fsync = false, cache_bytes = 0 })
    store:tenant_init("t")
  end)
  after_each(function()
    store:close()
    H.rmrf(dir)
  end)

  it("lock:commit without release keeps the lock for the next commit", function()
    local d = store:write("t", "x")
    local lk = store:lock("t")
    lk:commit({ { "a", d } })
    assert.equal(d, lk:head("a")) -- still held (it used to be released here)
    lk:commit({ { "b", d } })
    lk:commit({ { "c", d } }, true) -- released, durable
    H.assert_error_code(lk.head, "closed", lk, "a")
    assert.equal(d, store:head("t", "c"))
    local lk2 = store:lock("t") -- free again
    lk2:release()
  end)

  it("the spare lock is reused once released, never while held; head_is compares", function()
    local d = store:write("t", "x")
    store:tenant_init("u")
    local a = store:lock("t", true)
    a:commit({ { "a", d } }, true)
    local b = store:lock("u", true) -- released: the same userdata, another tenant
    assert.equal(a, b)
    assert.is_nil(b:head("a")) -- u's heads, not t's
    b:release()
    local c = store:lock("t", true)
    assert.equal(a, c)
    assert.is_true(c:head_is("a", d))
    assert.is_false(c:head_is("a", core.sha256("y")))
    assert.is_false(c:head_is("none", d))
    H.assert_error_code(c.head_is, "invalid_argument", c, "a", "nothex")
    local e = store:lock("u", true) -- the spare is held: a new lock
    assert.are_not.equal(c, e)
    e:release()
    local f <close> = store:lock("u", true)
    assert.are_not.equal(e, f) -- (not kept: the spare was busy when e was made)
    c:release()
    f:release()
    store:close() -- a spare held at close is released with the store
    H.assert_error_code(store.lock, "closed", store, "t", true)
  end)

  it("a bad entry in a commit is invalid_argument and keeps the lock", function()
    local lk = store:lock("t")
    for _, e in ipairs({ "", "a\0b", ("x"):rep(1025) }) do
      H.assert_error_code(lk.commit, "invalid_argument", lk, { { e, false } })
    end
    H.assert_error_code(lk.head, "invalid_argument", lk, "")
    assert.is_nil(lk:head("a"))
    lk:release()
  end)

  it("store:write with the codec's digest stores the bytes under it, hashed once", function()
    local bytes, digest = core.leaf_piece({ "k" }, { '{"v":1}' })
    assert.equal(core.sha256(bytes), digest)
    assert.equal(digest, store:write("t", bytes, digest))
    assert.equal(bytes, store:read("t", digest))
    H.assert_error_code(store.write, "invalid_argument", store, "t", bytes, "nothex")
  end)

  it("a wrong digest given to store:write is caught by every read", function()
    local liar = core.sha256("something else")
    store:write("t", "these bytes", liar)
    H.assert_error_code(store.read, "corrupt", store, "t", liar)
  end)
end)
