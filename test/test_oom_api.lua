-- test_oom_api.lua - the cases of test/test_oom_api.c. Called with (case,
-- backend, dir): builds a store in dir with allocation unrestricted, then
-- calls oom_arm() and exercises every C entry point of mydb.core that
-- holds a resource (a DIR*, a blob, a C array, a lock) while it builds its
-- Lua result. Every allocation after oom_arm() may fail.
local case, backend, dir = ...
local core = require "mydb.core"

local T = "t1"
local function digest_of(s) return core.sha256(s) end

local function fresh_store()
  local s = core.open(dir, { fsync = false, backend = backend, cache_bytes = 0 })
  s:tenant_init(T)
  s:tenant_init("t2")
  local ds = {}
  for i = 1, 6 do ds[i] = s:write(T, "object " .. i .. string.rep("x", 100 * i)) end
  s:write(nil, "a shared ref")
  s:write(nil, "another shared ref")
  local lk = s:lock(T)
  lk:commit({ { "e1", ds[1] }, { "e2", ds[2] }, { "e3", ds[3] } }, false)
  lk:commit({ { "e1", ds[4] } }, false)
  lk:release()
  return s, ds
end

local cases = {}

-- store:objects (tenant and refs), store:tenants
function cases.core_listing()
  local s = fresh_store()
  oom_arm()
  assert(#s:objects(T) == 6)
  assert(#s:objects(nil) == 2)
  assert(#s:tenants() == 2)
  s:close()
end

-- store:read, write, exists, chain
function cases.core_read_write(_)
  local s, ds = fresh_store()
  oom_arm()
  for i = 1, 6 do assert(#s:read(T, ds[i]) > 100) end
  assert(s:read(nil, digest_of("a shared ref")) == "a shared ref")
  assert(s:write(T, "new object") == digest_of("new object"))
  assert(s:exists(T, ds[1]))
  s:close()
end

-- store:heads, store:head, store:lock, lock:head, lock:commit
function cases.core_heads_lock()
  local s, ds = fresh_store()
  oom_arm()
  local entries, heads = s:heads(T)
  assert(#entries == 3 and heads.e1 == ds[4])
  assert(s:head(T, "e2") == ds[2])
  local lk <close> = s:lock(T)
  assert(lk:head("e3") == ds[3])
  lk:commit({ { "e4", ds[5] }, { "e3", false } }, false)
  lk:release()
  s:close()
end

-- store:gc_begin, gc_sweep (the keep set), repack
function cases.core_gc()
  local s, ds = fresh_store()
  oom_arm()
  local lk <close> = s:lock(T)
  local a, b = s:gc_begin(T)
  local keep = { [ds[1]] = true, [ds[2]] = true, [ds[3]] = true, [ds[4]] = true }
  local st = s:gc_sweep(T, a, b, keep)
  assert(type(st.objects_removed) == "number")
  s:repack(T)
  lk:release()
  s:close()
end

-- store:check, store:journal
function cases.core_check_journal()
  local s = fresh_store()
  oom_arm()
  assert(#s:check(T) == 0)
  assert(#s:check(nil) == 0)
  if backend ~= "memory" then assert(#s:journal(T) > 0) end
  s:close()
end

-- the codec (its scratch state is a to-be-closed userdata) with a hook
-- that raises, and the sandbox (its own state; the host's pushes)
function cases.codec_sandbox()
  local v = { a = 1, b = { 1, 2.5, "x\0y" }, c = { d = true } }
  v.self = v
  oom_arm()
  local bytes = core.encode(v)
  local back = core.decode(bytes)
  assert(back.self == back and back.b[3] == "x\0y")
  local ok = pcall(core.encode, setmetatable({}, {}), { hook_all = true, hook = function() error("no") end })
  assert(not ok)
  local sb = core.sandbox("a > 1 and name:match('^J') ~= nil")
  if sb then -- nil, message when the host's memory ran out first
    local okv, res = sb:eval({ a = 2, name = "Jo" })
    assert(okv and res == true)
    sb:close()
  end
end

-- the API over them: save/load with refs, put/get, history, verify, gc
function cases.api()
  local mydb = require "mydb"
  local db = mydb.open(dir, { fsync = false, backend = backend })
  db:init(T)
  db:save(T, "u", "cfg", { a = 1 })
  db:put(T, "u", "users", "k1", { name = "one" })
  oom_arm()
  db:save(T, "u", "cfg", { a = 2, blob = string.rep("b", 300) })
  assert(db:load(T, "cfg").a == 2)
  db:put(T, "u", "users", "k2", { name = "two" })
  assert(db:get(T, "users", "k2").name == "two")
  -- the collection cursor (src/lua/ltree_read.c): a whole scan, and one
  -- left early (its cursor closed by the for loop)
  local n = 0
  for _, v in db:records(T, "users") do n = n + #v.name end
  assert(n == 6)
  for k in db:query(T, "users", { from = "k2", reverse = true }) do assert(k == "k2"); break end
  assert(#db:history(T, "cfg") == 2)
  assert(#db:tenants() == 1)
  local problems = db:verify()
  assert(#problems == 0, problems[1] and problems[1].message)
  db:gc(T)
  db:close()
end

assert(cases[case], "no such case: " .. tostring(case))(backend)
