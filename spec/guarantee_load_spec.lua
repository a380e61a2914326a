-- Load (issue 5 §2): 8 processes x 500 mixed operations (save, put,
-- put_many, get, load, history) at once on the same two tenants and the
-- same entries, fsync on. No lost update, no error at all (every call is
-- valid), exact final record counts and history lengths.
--
-- The schedule is spec/guarantee/load_ops.lua: each process owns its record
-- keys (and one "hot" key it overwrites), so the end state is computable;
-- all processes save to the same snapshot entry and put into the same
-- collection in both tenants. MYDB_LOAD_PROCS / MYDB_LOAD_OPS change the
-- sizes.
local H = require "spec.helper"
local ops = dofile(H.REPO .. "/spec/guarantee/load_ops.lua")

local PROCS = tonumber(os.getenv("MYDB_LOAD_PROCS")) or 8
local OPS = tonumber(os.getenv("MYDB_LOAD_OPS")) or 500
-- MYDB_BACKEND (spec/helper.lua) runs the suite on another backend: a test
-- that needs the loose layout's files, or a store on disk that other
-- processes see, is then reported pending and not run.
local function it_if(ok, why)
  return function(name, fn)
    it(name, function(...)
      if not ok then return pending(H.BACKEND .. " backend: " .. why) end
      return fn(...)
    end)
  end
end
local it_disk = it_if(H.BACKEND ~= "memory", "needs a store on disk, seen by other processes")

-- The worker: runs its schedule, checks what it reads, prints a report.
local WORKER = [[
local root, go, me, nops, opsfile = ...
me, nops = tonumber(me), tonumber(nops)
local ops = dofile(opsfile)
local H = require "spec.helper"
local mydb = require "mydb"
local function ready() local f = io.open(go) if f then f:close() return true end end
local t0 = os.time()
while not ready() do
  if os.time() - t0 > 60 then error("never got the go signal") end
end
local db = mydb.open(root, { fsync = true })
local user = "proc" .. me
local errors, bad, counts = {}, {}, {}
for i = 1, nops do
  local op = ops.op(me, i)
  counts[op.kind] = (counts[op.kind] or 0) + 1
  local ok, err = pcall(function()
    if op.kind == "put" or op.kind == "hot" then
      assert(db:put(op.tenant, user, op.entry, op.key, op.value) == true, "put wrote nothing")
    elseif op.kind == "put_many" then
      assert(db:put_many(op.tenant, user, op.entry, op.items) == true, "put_many wrote nothing")
    elseif op.kind == "save" then
      db:save(op.tenant, user, op.entry, op.value)
    elseif op.kind == "get" then
      local v = db:get(op.tenant, op.entry, op.key)
      if op.value == nil then
        if v ~= nil then bad[#bad + 1] = "an absent key has a value" end
      elseif not H.deep_equal(v, op.value) then
        bad[#bad + 1] = ("lost update: %s/%s is %s"):format(op.tenant, op.key, tostring(v and v.i))
      end
    elseif op.kind == "load" then
      local v = db:load(op.tenant, op.entry)
      local src = type(v) == "table" and math.type(v.p) == "integer" and math.type(v.i) == "integer"
          and ops.op(v.p, v.i)
      if not (src and src.kind == "save" and src.tenant == op.tenant) then
        bad[#bad + 1] = "load gave a value no save wrote"
      end
    else
      local h = db:history(op.tenant, op.entry, nil, 5)
      if #h < 1 or #h > 5 then bad[#bad + 1] = "history of " .. #h end
      for k = 1, #h - 1 do
        if db:meta(op.tenant, op.entry, h[k]).parent ~= h[k + 1] then bad[#bad + 1] = "broken history" end
      end
    end
  end)
  if not ok then
    local code = type(err) == "table" and err.code or "lua"
    errors[#errors + 1] = ("op %d (%s): %s"):format(i, op.kind, tostring(err))
    counts["error:" .. code] = (counts["error:" .. code] or 0) + 1
  end
end
db:close()
local kinds = {}
for k, n in pairs(counts) do kinds[#kinds + 1] = k .. "=" .. n end
table.sort(kinds)
io.write("done ", #errors, " ", #bad, " ", table.concat(kinds, ","), "\n")
for _, e in ipairs(errors) do io.write(e, "\n") end
for _, b in ipairs(bad) do io.write(b, "\n") end
]]

describe("guarantee: load", function()
  local S = H.use_store({ fsync = true })

  it_disk(("holds %d processes x %d mixed operations on shared tenants and entries"):format(PROCS, OPS), function()
    for _, t in ipairs(ops.TENANTS) do S.db:init(t) end
    local go = S.dir .. "/go"
    local chunks = {}
    for p = 1, PROCS do
      chunks[p] = ("assert(load(%q))(%q, %q, %q, %q, %q)"):format(WORKER, S.root, go, tostring(p),
        tostring(OPS), H.REPO .. "/spec/guarantee/load_ops.lua")
    end
    chunks[PROCS + 1] = ("local f = assert(io.open(%q, 'w')) f:close()"):format(go)
    local t0 = require("mydb.core").monotonic()
    local results = H.run_lua_parallel(chunks)
    local elapsed = require("mydb.core").monotonic() - t0
    table.remove(results)
    for p, r in ipairs(results) do
      assert(r.ok, ("process %d failed: %s"):format(p, r.out))
      assert.truthy(r.out:match("^done 0 0 "), ("process %d: %s"):format(p, r.out))
    end

    local want = ops.expected(PROCS, OPS)
    local db = S.open_again({ fsync = false, cache_bytes = 0 })
    local total_records, total_versions = 0, 0
    for _, t in ipairs(ops.TENANTS) do
      local w = want[t]
      -- the records: every one, with its last value
      local n, nwant = 0, 0
      for _ in pairs(w.records) do nwant = nwant + 1 end
      for k, v in db:records(t, "shared") do
        n = n + 1
        assert(H.deep_equal(w.records[k], v), ("tenant %s: record %s"):format(t, k))
      end
      assert.equal(nwant, n, "record count of tenant " .. t)
      assert.equal(nwant, #db:get(t, "shared"), "get() count of tenant " .. t)
      -- the versions: one per write, in unbroken chains, by the right users
      local by_user = {}
      for _, entry in ipairs({ "shared", "doc" }) do
        local h = db:history(t, entry, nil, 1000000)
        assert.equal(entry == "shared" and w.shared_versions or w.doc_versions, #h,
          ("history length of %s/%s"):format(t, entry))
        for idx, d in ipairs(h) do
          local m = db:meta(t, entry, d)
          assert.equal(h[idx + 1], m.parent, ("parent of version %d of %s/%s"):format(idx, t, entry))
          by_user[m.user_id] = (by_user[m.user_id] or 0) + 1
        end
        total_versions = total_versions + #h
      end
      assert.same(w.by_user, by_user, "versions per process in tenant " .. t)
      total_records = total_records + n
    end
    assert.same({}, (db:verify()))
    io.stderr:write(("\n[guarantee] load: %d processes x %d operations in %.1f s, %d records and %d versions, "
      .. "all as expected, no error\n"):format(PROCS, OPS, elapsed, total_records, total_versions))
  end)
end)
