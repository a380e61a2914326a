-- The loose backend's packed objects (issue 13, "loose >= 10x today"):
-- what a tenant-lock holder writes (a put, a batch, a commit) is appended
-- to ROOT/TENANT/packed as one CRC-framed group per commit, synced before
-- its journal line (doc/FORMAT.md "Packed objects"). Real processes, real
-- files, torn tails and flipped bytes; always the loose backend.
local H = require "spec.helper"
local core = require "mydb.core"

local function shq(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function le32(s, i)
  local a, b, c, d = s:byte(i, i + 3)
  return a | b << 8 | c << 16 | d << 24
end

-- The groups of a packed file: {off=, len=, objects={{off=, digest=, len=}}}
-- (off: 0-based file offsets; an object's off is its data's).
local function groups(path)
  local s = assert(H.read_file(path))
  assert.equal("MYDBPKD1", s:sub(1, 8))
  local out, pos = {}, 16
  while pos < #s do
    assert.equal("G", s:sub(pos + 1, pos + 1))
    local count = le32(s, pos + 2)
    local glen = le32(s, pos + 6) + (le32(s, pos + 10) << 32)
    local g = { off = pos, len = glen, objects = {} }
    local p = pos + 17
    for _ = 1, count do
      local d = s:sub(p + 2, p + 33):gsub(".", function(c) return ("%02x"):format(c:byte()) end)
      local len = le32(s, p + 34)
      g.objects[#g.objects + 1] = { off = p + 41, digest = d, len = len }
      p = p + 41 + len
    end
    out[#out + 1] = g
    pos = pos + glen
  end
  return out, #s
end

local function files_under(dir)
  local out = H.read_cmd("find " .. shq(dir) .. " -type f | wc -l")
  return tonumber(out:match("%d+"))
end

local function truncate(path, size)
  assert(os.execute(("truncate -s %d %s"):format(size, shq(path))))
end

local function flip(path, off)
  local f = assert(io.open(path, "r+b"))
  f:seek("set", off)
  local c = f:read(1)
  f:seek("set", off)
  f:write(string.char(c:byte() ~ 0x5a))
  f:close()
end

describe("loose backend: packed objects", function()
  local root
  before_each(function() root = H.tmpdir() end)
  after_each(function() H.rmrf(root) end)

  local function open(o)
    o = o or {}
    o.backend = "loose"
    if o.fsync == nil then o.fsync = false end
    return require("mydb").open(root, o)
  end
  local function store(o)
    o = o or {}
    o.backend = "loose"
    if o.fsync == nil then o.fsync = false end
    if o.cache_bytes == nil then o.cache_bytes = 0 end
    return core.open(root, o)
  end
  -- one commit of entry -> a new object with bytes; returns its digest
  local function commit(s, entry, bytes)
    local lk = s:lock("t")
    local d = s:write("t", bytes)
    lk:commit({ { entry, d } })
    lk:release()
    return d
  end

  it("puts land in TENANT/packed: a few files, every record readable after reopen", function()
    local db = open({ fsync = true })
    db:init("t")
    for i = 1, 60 do db:put("t", "u", "users", "k" .. i, { n = i }) end
    db:put_many("t", "u", "users", { a = { n = -1 }, b = { n = -2 } })
    db:close()
    assert.is_true(H.file_exists(root .. "/t/packed"))
    -- head, lock, packed: no object files
    assert.equal(3, files_under(root .. "/t"))
    local gs = groups(root .. "/t/packed")
    assert.is_true(#gs >= 61, "one group per commit")
    db = open()
    for i = 1, 60 do assert.same({ n = i }, db:get("t", "users", "k" .. i)) end
    assert.same({ n = -2 }, db:get("t", "users", "b"))
    assert.same({}, db:verify("t"))
    db:close()
  end)

  it("another process reads what this one committed, and this one what it committed", function()
    H.needs_disk()
    local db = open()
    db:init("t")
    db:put("t", "u", "users", "a", { v = 1 }) -- this handle has indexed packed
    local out, ok = H.run_lua([[
      local db = require("mydb").open(..., { fsync = false })
      assert(db:get("t", "users", "a").v == 1)
      for i = 1, 20 do db:put("t", "u", "users", "c" .. i, { v = i }) end
      io.write("ok")
    ]], { args = { root } })
    assert.is_true(ok, out)
    for i = 1, 20 do assert.same({ v = i }, db:get("t", "users", "c" .. i)) end
    db:put("t", "u", "users", "a", { v = 2 })
    out, ok = H.run_lua([[
      local db = require("mydb").open(..., { fsync = false })
      io.write(db:get("t", "users", "a").v)
    ]], { args = { root } })
    assert.is_true(ok, out)
    assert.equal("2", out)
    db:close()
  end)

  it("a torn tail is ignored by readers and truncated by the next writer", function()
    local s = store()
    s:tenant_init("t")
    local d1 = commit(s, "e1", "one")
    local d2 = commit(s, "e2", "two")
    s:close()
    local path = root .. "/t/packed"
    local gs, size = groups(path)
    assert.equal(2, #gs)
    -- the second group cut in its middle: a crash mid-append
    truncate(path, gs[2].off + 20)
    s = store()
    assert.equal("one", s:read("t", d1))
    H.assert_error_code(function() return s:read("t", d2) end, "not_found")
    local d3 = commit(s, "e3", "three")
    assert.equal("three", s:read("t", d3))
    s:close()
    gs, size = groups(path) -- (parses: the torn bytes are gone)
    assert.equal(2, #gs)
    assert.equal(gs[2].off + gs[2].len, size)
    -- garbage after the last group
    local f = assert(io.open(path, "ab"))
    f:write("GARBAGE garbage GARBAGE")
    f:close()
    s = store()
    assert.equal("one", s:read("t", d1))
    assert.equal("three", s:read("t", d3))
    assert.same({}, s:check("t"))
    local d4 = commit(s, "e4", "four")
    s:close()
    gs, size = groups(path)
    assert.equal(3, #gs)
    assert.equal(gs[3].off + gs[3].len, size)
    s = store()
    assert.equal("four", s:read("t", d4))
    s:close()
  end)

  it("a flipped byte in a packed object reads as corrupt and is reported by check and verify", function()
    local db = open()
    db:init("t")
    db:save("t", "u", "doc", { x = ("y"):rep(200) })
    db:save("t", "u", "other", { z = 1 }) -- a later group: the first is not the tail
    db:close()
    local path = root .. "/t/packed"
    local gs = groups(path)
    local o = gs[1].objects[1]
    flip(path, o.off + 5)
    local s = store()
    H.assert_error_code(function() return s:read("t", o.digest) end, "corrupt")
    local problems = s:check("t")
    assert.is_true(#problems >= 1)
    assert.truthy(table.concat(problems, "\n"):find(o.digest, 1, true))
    s:close()
    db = open({ cache_bytes = 0 })
    assert.is_true(#db:verify("t") > 0)
    db:close()
  end)

  it("gc drops the dead packed objects, keeps the live, and readers keep reading", function()
    local s = store()
    s:tenant_init("t")
    local dead = commit(s, "e", "dead value")
    local live = commit(s, "e", "live value") -- e moved: dead is unreachable
    local other = commit(s, "f", "other value")
    local reader = store() -- indexed the old file
    assert.equal("live value", reader:read("t", live))
    local a, b = s:gc_begin("t")
    local lk = s:lock("t")
    local st = s:gc_sweep("t", a, b, { [live] = true, [other] = true })
    lk:release()
    assert.equal(1, st.objects_removed)
    assert.is_false(s:exists("t", dead))
    assert.equal("live value", s:read("t", live))
    local gs = groups(root .. "/t/packed")
    local names = {}
    for _, g in ipairs(gs) do for _, ob in ipairs(g.objects) do names[ob.digest] = true end end
    assert.same({ [live] = true, [other] = true }, names)
    -- the reader follows the new file (a new inode) for what it lacks
    assert.equal("other value", reader:read("t", other))
    local d = commit(s, "g", "after gc")
    assert.equal("after gc", reader:read("t", d))
    assert.same({}, s:check("t"))
    reader:close()
    s:close()
  end)

  it("db:gc and db:repack on puts: every record stays, verify is clean", function()
    local db = open()
    db:init("t")
    for i = 1, 30 do db:put("t", "u", "users", "k" .. (i % 7), { n = i }) end
    db:gc("t")
    db:repack("t")
    for i = 24, 30 do assert.same({ n = i }, db:get("t", "users", "k" .. (i % 7))) end
    db:close()
    db = open({ cache_bytes = 0 })
    assert.same({}, db:verify("t"))
    db:put("t", "u", "users", "new", { n = 0 })
    assert.same({ n = 0 }, db:get("t", "users", "new"))
    db:close()
  end)

  it("objects staged under a lock that no commit took do not survive", function()
    local s = store({ cache_bytes = 1 << 20 })
    s:tenant_init("t")
    commit(s, "keep", "kept")
    -- released without a commit
    local lk = s:lock("t")
    local d = s:write("t", "never committed")
    assert.equal("never committed", s:read("t", d)) -- the holder sees its stage
    lk:release()
    assert.is_false(s:exists("t", d))
    H.assert_error_code(function() return s:read("t", d) end, "not_found")
    -- a commit that fails (an injected I/O error on its first system call)
    lk = s:lock("t")
    local d2 = s:write("t", "failed commit")
    core._fault(1)
    local ok = pcall(lk.commit, lk, { { "x", d2 } })
    core._fault(0)
    assert.is_false(ok)
    lk:release()
    assert.is_false(s:exists("t", d2))
    s:close()
    s = store()
    assert.is_false(s:exists("t", d))
    assert.is_false(s:exists("t", d2))
    assert.equal("kept", s:read("t", s:head("t", "keep")))
    s:close()
  end)

  it("an old-layout store (objects as files, no packed) opens and reads", function()
    local s = store()
    s:tenant_init("t")
    -- written without the tenant lock: one file per object, as before
    local d = s:write("t", "as a file")
    local lk = s:lock("t")
    lk:commit({ { "e", d } })
    lk:release()
    s:close()
    assert.is_false(H.file_exists(root .. "/t/packed"))
    assert.is_true(H.file_exists(H.object_path(root, "t", d)))
    local out, ok = H.run_lua([[
      local s = require("mydb.core").open(..., { backend = "loose", fsync = false })
      io.write(s:read("t", s:head("t", "e")))
    ]], { args = { root } })
    assert.is_true(ok, out)
    assert.equal("as a file", out)
    -- then new commits pack; both are listed once
    s = store()
    local d2 = commit(s, "f", "packed one")
    local names = s:objects("t")
    table.sort(names)
    local want = { d, d2 }
    table.sort(want)
    assert.same(want, names)
    s:close()
  end)

  it("two processes putting into one tenant: every record, verify clean", function()
    H.needs_disk()
    local db = open()
    db:init("t")
    db:close()
    local chunk = [[
      local root, w = %q, %q
      local db = require("mydb").open(root, { fsync = false })
      for i = 1, 60 do db:put("t", "u", "users", w .. "-" .. i, { w = w, i = i }) end
      io.write("ok")
    ]]
    local res = H.run_lua_parallel({ chunk:format(root, "a"), chunk:format(root, "b") })
    for _, r in ipairs(res) do assert.is_true(r.ok, r.out) end
    db = open({ cache_bytes = 0 })
    local n = 0
    for _ in db:records("t", "users") do n = n + 1 end
    assert.equal(120, n)
    assert.same({}, db:verify("t"))
    assert.same({}, db._store:check("t"))
    db:close()
  end)
end)
