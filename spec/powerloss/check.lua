-- spec/powerloss/check.lua JOBS: checks crash states. JOBS has one line
-- per state: id, root, backend, calls acknowledged, call in flight (0:
-- none), tab-separated. For each state: the store opens, db:verify() finds
-- nothing, its contents equal the model after the acknowledged calls (or
-- after the call in flight too: all or nothing), and it accepts a write
-- after which verify is still clean. Prints "PASS id" or "FAIL id: why".
package.path = "./?.lua;" .. package.path
local mydb = require "mydb"
local ops = require "spec.powerloss.ops"

local function same(a, b)
  if type(a) ~= type(b) then return false end
  if type(a) ~= "table" then return a == b end
  for k, v in pairs(a) do if not same(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

-- A value with packed arrays (F64Array) turned into plain lists.
local function plain(v)
  if type(v) ~= "table" then return v end
  local o = {}
  if getmetatable(v) then
    for i = 1, #v do o[i] = v[i] end
    return o
  end
  for k, x in pairs(v) do o[k] = plain(x) end
  return o
end

-- The store's contents in the model's shape.
local function contents(db)
  local m = { entries = {}, tenant = db:is_initialized("t") }
  if not m.tenant then return m end
  for _, e in ipairs(db:entries("t")) do
    local ok, v = pcall(db.get, db, "t", e, "no such key") -- raises type_mismatch on a snapshot
    if ok then
      local records = {}
      for k, r in db:records("t", e) do records[k] = r end
      m.entries[e] = { records = records }
      assert(v == nil)
    else
      m.entries[e] = { snapshot = plain(db:load("t", e)) }
    end
  end
  return m
end

local function problems_text(p)
  local out = {}
  for i = 1, math.min(#p, 3) do out[#out + 1] = (p[i].kind or "?") .. ": " .. tostring(p[i].message) end
  return table.concat(out, "; ")
end

local function check(root, backend, acked, inflight)
  local db = mydb.open(root, { backend = backend })
  local p = db:verify()
  if #p > 0 then return false, "verify: " .. problems_text(p) end
  local got = contents(db)
  local want = ops.model(acked)
  if not same(got, want) then
    if inflight == 0 or not same(got, ops.model(inflight)) then
      return false, ("contents differ from the model after call %d%s"):format(acked,
        inflight > 0 and (" (and after call " .. inflight .. ")") or "")
    end
  end
  db:init("t")
  db:save("t", "u", "after", { x = 1 })
  if not same(db:load("t", "after"), { x = 1 }) then return false, "a write after recovery is not read back" end
  p = db:verify()
  if #p > 0 then return false, "verify after a write: " .. problems_text(p) end
  db:close()
  return true
end

for line in io.lines(arg[1]) do
  local id, root, backend, acked, inflight = line:match("^(%S+)\t(%S+)\t(%S+)\t(%d+)\t(%d+)$")
  local ok, res, why = pcall(check, root, backend, tonumber(acked), tonumber(inflight))
  if ok and res then print("PASS " .. id)
  else print(("FAIL %s: %s"):format(id, ok and why or tostring(res))) end
  io.stdout:flush()
end
