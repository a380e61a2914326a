-- spec/powerloss/check.lua JOBS: checks crash states. JOBS has one line
-- per state: id, root, backend, workload name, and per writer "acked:
-- in flight" (0: none), comma-separated; tab-separated. For each state: the store opens, db:verify() finds
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

-- Whether got is the model after the acknowledged calls of every writer,
-- each call in flight applied or not (all or nothing, each on its own).
local function matches(got, name, writers)
  local combos = { {} }
  for w, c in pairs(writers) do
    local next = {}
    for _, combo in ipairs(combos) do
      local a = {}
      for k, v in pairs(combo) do a[k] = v end
      a[w] = c.acked
      next[#next + 1] = a
      if c.inflight > 0 then
        local b = {}
        for k, v in pairs(combo) do b[k] = v end
        b[w] = c.inflight
        next[#next + 1] = b
      end
    end
    combos = next
  end
  for _, counts in ipairs(combos) do
    if same(got, ops.model(name, counts)) then return true end
  end
  return false
end

local function check(root, backend, name, writers)
  local db = mydb.open(root, { backend = backend })
  local p = db:verify()
  if #p > 0 then return false, "verify: " .. problems_text(p) end
  local got = contents(db)
  if not matches(got, name, writers) then
    local parts = {}
    for w, c in pairs(writers) do parts[#parts + 1] = ("writer %d: %d acknowledged, %d in flight"):format(w, c.acked, c.inflight) end
    return false, "contents differ from the model (" .. table.concat(parts, "; ") .. ")"
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
  local id, root, backend, name, ws = line:match("^(%S+)\t(%S+)\t(%S+)\t(%S+)\t(%S+)$")
  local writers = {}
  for w, a, i in ws:gmatch("(%d+)=(%d+):(%d+)") do
    writers[tonumber(w)] = { acked = tonumber(a), inflight = tonumber(i) }
  end
  local ok, res, why = pcall(check, root, backend, name, writers)
  if ok and res then print("PASS " .. id)
  else print(("FAIL %s: %s"):format(id, ok and why or tostring(res))) end
  io.stdout:flush()
end
