-- The pack backend's log (issue 8 §1, §5; issue 11 §1, §2, §12): torn tails,
-- damaged and cut segments, the durable point, a crashed init, roll-over,
-- the index, other processes, a writer killed with SIGKILL. These stores are
-- pack whatever MYDB_BACKEND says.
local H = require "spec.helper"
local mydb = require "mydb"

local function seg(root, tenant, n)
  return ("%s/%s/pack/%06d.seg"):format(root, tenant, n)
end

local function size(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local n = f:seek("end")
  f:close()
  return n
end

-- The end of a segment's last whole-looking record (doc/FORMAT.md,
-- "Records"): past it a writer with fsync on leaves a zone of zeros.
local function data_end(path)
  local bytes = H.read_file(path)
  local off = 0
  while off + 24 <= #bytes and bytes:sub(off + 1, off + 4) == "MDBR" do
    off = off + 24 + string.unpack("<I8", bytes, off + 9)
  end
  return off
end

local function append(path, bytes)
  local f = assert(io.open(path, "ab"))
  f:write(bytes)
  f:close()
end

local function poke(path, at, fn)
  local bytes = H.read_file(path)
  H.write_file(path, bytes:sub(1, at - 1) .. fn(bytes:sub(at, at)) .. bytes:sub(at + 1))
end

local function flip(c) return string.char(c:byte() ~ 1) end

describe("pack backend", function()
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

  local function fill(o)
    local db = open(o)
    db:init("t")
    for i = 1, 20 do db:save("t", "u", "doc", { i = i, pad = ("p"):rep(50) }) end
    db:put_many("t", "u", "c", { a = 1, b = 2 })
    db:close()
  end

  it("lays out ROOT/TENANT/pack and ROOT/refs/pack", function()
    fill()
    for _, f in ipairs({ "/t/lock", "/t/pack/lock", "/t/pack/start", "/t/pack/000001.seg",
                         "/refs/pack/start", "/refs/pack/000001.seg", "/.mydb" }) do
      assert.is_true(H.file_exists(root .. f), f)
    end
    assert.is_false(H.file_exists(root .. "/t/head"))
    assert.equal("MDBR", H.read_file(seg(root, "t", 1)):sub(1, 4))
  end)

  it("ignores a torn tail, truncates it on open, and goes on", function()
    fill()
    local p = seg(root, "t", 1)
    local n = size(p)
    for _, torn in ipairs({ "MDB", "MDBR\2\0\0\0\100\0\0\0\0\0\0\0", "\1" .. ("\0"):rep(3000) }) do
      append(p, torn)
      local db = open()
      assert.equal(20, db:load("t", "doc").i)
      assert.equal(20, #db:history("t", "doc"))
      db:close()
      assert.equal(n, size(p))
    end
    -- zeros are a zone (a writer with fsync on leaves one): the end, kept
    append(p, ("\0"):rep(3000))
    local db = open()
    assert.equal(20, db:load("t", "doc").i)
    db:close()
    assert.equal(n + 3000, size(p))
    assert.equal(n, data_end(p))
    local db = open()
    db:save("t", "u", "doc", { i = 21 })
    db:close()
    assert.equal(21, open():load("t", "doc").i)
  end)

  it("raises corrupt for a damaged record below the durable point, and verify reports it", function()
    fill({ fsync = true })
    local p = seg(root, "t", 1)
    poke(p, math.floor(data_end(p) / 2), flip)
    local db = open({ cache_bytes = 0 })
    H.assert_error_code(function() db:load("t", "doc") end, "corrupt")
    local problems = db:verify()
    assert.is_true(#problems >= 1)
    assert.equal("corrupt_segment", problems[1].kind)
    assert.matches("segment 000001", problems[1].message)
    db:close()
  end)

  it("raises corrupt for a bad last record below the durable point, never truncates it", function()
    fill({ fsync = true })
    local p = seg(root, "t", 1)
    local n = size(p)
    poke(p, data_end(p) - 2, flip) -- inside the last commit line, acknowledged
    local db = open({ cache_bytes = 0 })
    H.assert_error_code(function() db:load("t", "c") end, "corrupt")
    local problems = db:verify()
    assert.equal("corrupt_segment", problems[1] and problems[1].kind)
    assert.matches("checksum", problems[1].message)
    db:close()
    assert.equal(n, size(p))
  end)

  it("takes a partly persisted append past the durable point as a torn tail (power cut)", function()
    fill({ fsync = true })
    for _, space in ipairs({ "t", "refs" }) do
      local p = seg(root, space, 1)
      local bytes = H.read_file(p)
      -- the append's first page lost (zeros), a later one on disk: whole
      -- records (copies of the segment's own) after the hole
      append(p, ("\0"):rep(4096) .. bytes:sub(27))
    end
    local db = open({ fsync = true, cache_bytes = 0 })
    assert.equal(20, db:load("t", "doc").i)
    assert.same({ a = 1, b = 2 }, db:load("t", "c"))
    assert.same({}, db:verify())
    db:save("t", "u", "doc", { i = 21 })
    db:close()
    db = open({ fsync = true, cache_bytes = 0 })
    assert.equal(21, db:load("t", "doc").i)
    assert.equal(21, #db:history("t", "doc"))
    assert.same({}, db:verify())
    db:close()
  end)

  it("writes durable commits over a zone of zeros, cut back before a seal", function()
    local db = open({ fsync = true, segment_bytes = 1 << 20 })
    db:init("t")
    for i = 1, 40 do db:put("t", "u", "c", ("k%04d"):format(i), { i = i }) end
    local p = seg(root, "t", 1)
    local n, e = size(p), data_end(p)
    assert.is_true(n > e, "no zone after the records")
    assert.equal(("\0"):rep(n - e), H.read_file(p):sub(e + 1))
    -- another process reads every commit, and stops at the zeros
    local other = open()
    assert.equal(40, #other:get("t", "c"))
    assert.same({}, other:verify())
    db:put("t", "u", "c", "k0041", { i = 41 })
    assert.equal(41, #other:get("t", "c"))
    other:close()
    db:close()
    -- a roll-over seals a segment at its records' end
    db = open({ fsync = true, segment_bytes = 8192 })
    for i = 1, 60 do db:put("t", "u", "d", ("k%04d"):format(i), { i = i, pad = ("q"):rep(40) }) end
    db:close()
    assert.is_truthy(size(seg(root, "t", 2)))
    local q = seg(root, "t", 2)
    assert.equal(size(q), data_end(q))
    assert.equal(4, H.read_file(q):byte(data_end(q) - 8 - 24 + 5)) -- the seal
    db = open({ fsync = true })
    assert.equal(60, #db:get("t", "d"))
    assert.same({}, db:verify())
    db:close()
  end)

  it("never brings back whole records a power cut left behind zeros in a zone", function()
    local db = open({ fsync = true })
    db:init("t")
    db:save("t", "u", "doc", { i = 1 })
    db:close()
    local p = seg(root, "t", 1)
    local bytes = H.read_file(p)
    local e = data_end(p)
    assert.is_true(#bytes > e + 8192, "no zone to write into")
    -- what a cut append can leave: its first page lost, its later pages
    -- (whole-looking records: copies of the segment's own) on disk
    local copy = bytes:sub(1, e)
    H.write_file(p, bytes:sub(1, e) .. ("\0"):rep(4096) .. copy .. bytes:sub(e + 4096 + #copy + 1))
    db = open({ fsync = true, cache_bytes = 0 })
    assert.equal(1, db:load("t", "doc").i)
    assert.same({}, db:verify())
    db:save("t", "u", "doc", { i = 2 })
    db:close()
    -- the first append of a handle read the zone, found more than zeros,
    -- and cut it: only zeros follow the records now
    local after = H.read_file(p)
    local e2 = data_end(p)
    assert.is_true(e2 > e)
    assert.equal(("\0"):rep(#after - e2), after:sub(e2 + 1))
    db = open({ fsync = true, cache_bytes = 0 })
    assert.equal(2, db:load("t", "doc").i)
    assert.equal(2, #db:history("t", "doc"))
    assert.same({}, db:verify())
    db:close()
  end)

  it("recovers a tenant and the refs from an init cut by a power loss", function()
    local db = open({ fsync = true })
    db:init("t")
    db:close()
    for _, space in ipairs({ "t", "refs" }) do
      local p = seg(root, space, 1)
      H.write_file(p, ("\0"):rep(size(p)))  -- its size, not its bytes
      assert(os.remove(root .. "/" .. space .. "/pack/start"))
    end
    db = open({ fsync = true })
    assert.is_false(db:is_initialized("t"))
    db:init("t")
    db:save("t", "u", "doc", { ok = true })
    db:close()
    db = open({ fsync = true, cache_bytes = 0 })
    assert.same({ ok = true }, db:load("t", "doc"))
    assert.same({}, db:verify())
    db:close()
  end)

  it("raises corrupt for a segment cut below what was made durable", function()
    local db = open({ fsync = true })
    db:init("t")
    db:save("t", "u", "e", { x = 1 })
    db:close()
    local p = seg(root, "t", 1)
    H.write_file(p, H.read_file(p):sub(1, data_end(p) - 5))
    H.assert_error_code(function() open():load("t", "e") end, "corrupt")
  end)

  it("rolls segments over at segment_bytes; the index is rebuilt when lost", function()
    local db = open({ segment_bytes = 4096 })
    db:init("t")
    for i = 1, 200 do db:put("t", "u", "c", ("k%04d"):format(i), { i = i, pad = ("q"):rep(40) }) end
    db:close()
    assert.is_truthy(size(seg(root, "t", 3)))
    assert.is_true(size(seg(root, "t", 1)) <= 4096)
    os.remove(root .. "/t/pack/index")
    db = open({ segment_bytes = 4096 })
    assert.equal(200, #db:get("t", "c"))
    assert.equal(200, #db:history("t", "c", nil, 1000))
    assert.same({}, db:verify())
    db:close()
  end)

  it("lets another process see each commit, across roll-overs", function()
    local db = open({ segment_bytes = 2048 })
    db:init("t")
    db:save("t", "u", "e", 0)
    local out, ok = H.run_lua([[
      local db = require("mydb").open(..., { fsync = false, segment_bytes = 2048, backend = "pack" })
      for i = 1, 60 do db:save("t", "w", "e", { i = i, pad = ("x"):rep(100) }) end
      io.write("done")
    ]], { args = { root }, memory_ok = true })
    assert.is_true(ok, out)
    assert.equal(60, db:load("t", "e").i)
    assert.equal(61, #db:history("t", "e", nil, 1000))
    db:close()
  end)

  it("keeps whole commits when a writer is killed with SIGKILL (fsync on)", function()
    local db = open()
    db:init("t")
    db:close()
    for round = 1, 3 do
      local pid, cleanup = H.spawn_lua([[
        local root, round = ...
        local db = require("mydb").open(root, { fsync = true, segment_bytes = 65536, backend = "pack" })
        local i = 0
        while true do
          i = i + 1
          db:batch("t", "w", function(b)
            b:save("doc", { round = round, i = i })
            b:put("recs", ("r%s-%06d"):format(round, i), { i = i })
          end)
        end
      ]], { args = { root, tostring(round) }, memory_ok = true })
      H.sleep(0.3 + 0.1 * round)
      os.execute("kill -9 " .. pid .. " 2>/dev/null")
      for _ = 1, 100 do
        local f = io.open("/proc/" .. pid .. "/stat")
        local stat = f and f:read("a") or ""
        if f then f:close() end
        if stat == "" or stat:match("^%d+ %b() Z") then break end
        H.sleep(0.02)
      end
      cleanup()
      local r = open({ cache_bytes = 0 })
      assert.same({}, r:verify())
      local doc = r:load("t", "doc")
      -- the batch is all-or-nothing: the record of the same i is there
      assert.same({ i = doc.i }, r:get("t", "recs", ("r%s-%06d"):format(doc.round, doc.i)))
      r:save("t", "check", "doc", { round = round, i = 0 })
      r:close()
    end
  end)

  it("fresh readers never see a repack's removed segments as damage", function()
    -- a reader loads the chain from pack/start without a lock; a repack
    -- elsewhere may move start and remove the old segments meanwhile
    local db = open({ segment_bytes = 4096 })
    db:init("t")
    local pad = ("x"):rep(300)
    for i = 1, 300 do db:save("t", "u", "e" .. i % 30, { i = i, pad = pad }) end
    db:close()
    local results = H.run_lua_parallel({
      ([[
        local db = require("mydb").open(%q, { fsync = false, segment_bytes = 4096, backend = "pack" })
        local deadline, n = os.time() + 3, 0
        while os.time() < deadline do
          db:save("t", "u", "e1", { i = 1000 + n }); db:repack(); n = n + 1
        end
        io.write("repacks ", n)
      ]]):format(root),
      ([[
        local mydb = require("mydb")
        local deadline, n, bad, first = os.time() + 3, 0, 0, nil
        while os.time() < deadline do
          local db = mydb.open(%q, { fsync = false, cache_bytes = 0, backend = "pack" })
          local ok, e = pcall(db.load, db, "t", "e1")
          if not ok then bad = bad + 1; first = first or tostring(e) end
          db:close(); n = n + 1
        end
        io.write("reads ", n, " failed ", bad, " ", first or "")
      ]]):format(root),
    }, { memory_ok = true })
    assert(results[1].ok, results[1].out)
    assert(results[2].ok, results[2].out)
    assert.matches("^repacks [1-9]", results[1].out)
    assert.matches("^reads [1-9]%d* failed 0 $", results[2].out)
  end)

  it("repack while another process reads: the reader follows into the new segments", function()
    local db = open({ segment_bytes = 8192 })
    db:init("t")
    for i = 1, 100 do db:save("t", "u", "e", { i = i }) end
    db:close()
    local results = H.run_lua_parallel({
      ([[
        local db = require("mydb").open(%q, { fsync = false, cache_bytes = 0, backend = "pack" })
        local deadline = os.time() + 20
        local last = 0
        while os.time() < deadline do
          local v = db:load("t", "e").i
          assert(v >= last, "went back")
          last = v
          assert(#db:history("t", "e", nil, 1000) >= v) -- (a save may come in between)
          if v == 150 then break end
        end
        io.write("saw ", last)
      ]]):format(root),
      ([[
        local db = require("mydb").open(%q, { fsync = false, segment_bytes = 8192, backend = "pack" })
        local r = db:repack()
        for i = 101, 150 do db:save("t", "u", "e", { i = i }) end
        db:repack()
        io.write("repacked ", r.segments_removed)
      ]]):format(root),
    }, { memory_ok = true })
    assert(results[1].ok, results[1].out)
    assert(results[2].ok, results[2].out)
    assert.equal("saw 150", results[1].out)
    assert.matches("^repacked [1-9]", results[2].out)
    db = open()
    assert.same({}, db:verify())
    assert.equal(150, #db:history("t", "e", nil, 1000))
    db:close()
  end)
end)
