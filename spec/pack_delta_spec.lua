-- Deltas in the pack backend (issue 13; doc/FORMAT.md "Pack backend"): a
-- piece a put rewrites is stored as the bytes that differ from the piece
-- it replaces; every version reads back whole, through reopen, repack and
-- gc. These stores are pack whatever MYDB_BACKEND says.
local H = require "spec.helper"
local mydb = require "mydb"
local core = require "mydb.core"

-- Bytes of the tenant's segments.
local function pack_bytes(root, tenant)
  local n = 0
  for _, p in ipairs(H.listing(root .. "/" .. tenant .. "/pack")) do
    if p:match("%.seg$") then
      local f = assert(io.open(root .. "/" .. tenant .. "/pack/" .. p:match("([^/]+)$"), "rb"))
      n = n + f:seek("end")
      f:close()
    end
  end
  return n
end

describe("pack deltas", function()
  local dir, root
  local function open(o)
    o = o or {}
    o.backend, o.fsync = "pack", o.fsync == true
    return mydb.open(root, o)
  end
  before_each(function()
    dir = H.tmpdir()
    root = dir .. "/db"
  end)
  after_each(function() H.rmrf(dir) end)

  local function fill(db, n)
    db:init("t")
    local items = {}
    for i = 1, n do items[("k%06d"):format(i)] = { v = ("x"):rep(90), i = i } end
    db:put_many("t", "u", "c", items)
  end

  it("keep the history of an update of one 100-byte record under 2 KiB", function()
    local db = open()
    fill(db, 20000)
    local before = pack_bytes(root, "t")
    for i = 1, 100 do
      db:put("t", "u", "c", ("k%06d"):format((i * 7919) % 20000 + 1), { v = ("y"):rep(90), i = -i })
    end
    local per_put = (pack_bytes(root, "t") - before) / 100
    -- (whole pieces: ~6 KiB; the snapshot, with its root, is most of it now)
    assert.is_true(per_put < 2048, ("%.0f bytes per put"):format(per_put))
    db:close()
  end)

  it("read every version back whole, across chains longer than the limit, reopen, repack and gc", function()
    local db = open()
    fill(db, 3000)
    -- 30 updates of one record: its leaf's chain passes the depth limit
    -- (a whole copy then starts a new chain); other records change too
    local expect = {}
    for r = 1, 30 do
      db:put("t", "u", "c", "k001500", { r = r })
      db:put("t", "u", "c", ("k%06d"):format(r * 97), { r = r })
      expect[#expect + 1] = { db:get_digest("t", "c"), r }
    end
    local function check(h, what)
      for _, e in ipairs(expect) do
        assert.same({ r = e[2] }, h:get("t", "c", "k001500", e[1]), what)
      end
      assert.same({}, h:verify(), what)
      assert.equal(3000, #h:get("t", "c"), what)
    end
    check(db, "open")
    db:close()
    local fresh = open({ cache_bytes = 0 })
    check(fresh, "reopened, cache off")
    fresh:close()
    -- the index (written at close) keeps the chains: drop it, scan again
    os.remove(root .. "/t/pack/index")
    fresh = open({ cache_bytes = 0 })
    check(fresh, "scanned")
    local st = fresh:repack("t")
    assert.is_true(st.objects_kept > 0)
    check(fresh, "repacked")
    fresh:close()
    fresh = open({ cache_bytes = 0 })
    check(fresh, "repacked, reopened")
    for r = 31, 40 do fresh:put("t", "u", "c", "k001500", { r = r }) end
    fresh:gc("t")
    assert.same({ r = 40 }, fresh:get("t", "c", "k001500"))
    assert.same({}, fresh:verify())
    fresh:close()
  end)

  it("serve a delta written and read in one commit, and one another process reads", function()
    local db = open()
    fill(db, 3000)
    db:batch("t", "u", function(b)
      for r = 1, 5 do b:put("c", "k000100", { r = r }) end
      b:put("c", "k002900", { r = 0 })
    end)
    assert.same({ r = 5 }, db:get("t", "c", "k000100"))
    local out, ok = H.run_lua([[
      local db = require("mydb").open(..., { backend = "pack", cache_bytes = 0 })
      local v = db:get("t", "c", "k000100")
      io.write(v.r, " ", db:get("t", "c", "k002900").r, " ", #db:verify())
    ]], { args = { root }, memory_ok = true })
    assert(ok, out)
    assert.equal("5 0 0", out)
    db:close()
  end)

  it("take a base hint that names nothing, or the object itself, as no hint", function()
    local db = open()
    db:init("t")
    local s = db._store
    local a = ("abcdefghij"):rep(300)
    local da = core.sha256(a)
    do
      local lock <close> = s:lock("t")
      s:write("t", a, da, ("0"):rep(64))
      s:write("t", a, da, da)
      lock:commit({ { "e", da } }, true)
    end
    assert.equal(a, s:read("t", da))
    H.assert_error_code(function()
      local lock <close> = s:lock("t")
      s:write("t", a, da, "not a digest")
    end, "invalid_argument")
    db:close()
  end)
end)
