-- spec/powerloss/ops.lua - the workload of the power-loss test: a list of
-- calls, and the store contents they leave (the model the checker compares
-- a crash state with).
local handlers = require "mydb.handlers"
local F64Array = require "mydb.handlers.f64array"

local ops = {}

-- A ref handler, so that the workload writes ROOT/refs too.
if not handlers.get(F64Array.tag or "F64Array") then handlers.register(F64Array) end

local function series(n, x)
  local l = {}
  for i = 1, n do l[i] = x + i / 4 end
  return l
end

local function blob(i, n) return (string.char(97 + i % 26)):rep(n) end

--- The calls, in order: {call, args...}. Sizes are chosen so that pack
-- segments (segment_bytes 4096) roll over several times and appends cross
-- page boundaries.
function ops.list()
  local l = {
    { "init" },
    { "save", "cfg", { a = 1, pad = blob(1, 3000) } },
    { "put", "c", "k1", { v = blob(2, 300) } },
    { "put_many", "c", { k2 = { v = blob(3, 5000) }, k3 = { v = 3 }, k4 = { v = 4 } } },
    { "series", series(600, 1) },
    { "save", "cfg", { a = 2 } },
    { "batch", { { "save", "other", { b = 1 } }, { "put", "c", "k5", { v = blob(5, 200) } } } },
    { "delete", "c", "k3" },
    { "gc" },
    { "put", "c", "k1", { v = blob(6, 9000) } },
    { "repack" },
    { "save", "cfg", { a = 3 } },
    { "series", series(700, 2) },
    { "put", "c", "k6", { v = 6 } },
    -- Last: the fault hooks leave nothing armed for the calls after it.
    { "put_after_lost_sync", "c", "k7", { v = blob(7, 1500) } },
  }
  return l
end

--- Applies call op to the model m = {entries = {name -> value or
-- collection table}, tenant = bool}.
function ops.apply(m, op)
  local kind = op[1]
  if kind == "init" then m.tenant = true
  elseif kind == "save" then m.entries[op[2]] = { snapshot = op[3] }
  elseif kind == "series" then m.entries.series = { snapshot = { values = op[2] } }
  elseif kind == "put" or kind == "put_after_lost_sync" then
    local c = m.entries[op[2]] or { records = {} }
    c.records[op[3]] = op[4]
    m.entries[op[2]] = c
  elseif kind == "put_many" then
    local c = m.entries[op[2]] or { records = {} }
    for k, v in pairs(op[3]) do c.records[k] = v end
    m.entries[op[2]] = c
  elseif kind == "delete" then
    local c = m.entries[op[2]]
    if c then c.records[op[3]] = nil end
  elseif kind == "batch" then
    for _, sub in ipairs(op[2]) do ops.apply(m, sub) end
  end
end

--- Runs op on db (tenant "t", user "u").
function ops.run(db, op)
  local kind = op[1]
  if kind == "init" then db:init("t")
  elseif kind == "save" then db:save("t", "u", op[2], op[3])
  elseif kind == "series" then db:save("t", "u", "series", { values = F64Array.new(op[2]) })
  elseif kind == "put" then db:put("t", "u", op[2], op[3], op[4])
  elseif kind == "put_many" then db:put_many("t", "u", op[2], op[3])
  elseif kind == "delete" then db:delete("t", "u", op[2], op[3])
  elseif kind == "put_after_lost_sync" then ops.put_after_lost_sync(db, op)
  elseif kind == "gc" then db:gc("t")
  elseif kind == "repack" then db:repack("t")
  elseif kind == "batch" then
    db:batch("t", "u", function(b)
      for _, sub in ipairs(op[2]) do
        if sub[1] == "save" then b:save(sub[2], sub[3]) else b:put(sub[2], sub[3], sub[4]) end
      end
    end)
  end
end

--- A put whose object another writer has renamed into place but not yet
-- made durable (issue 11 item 6): the n-th core system call fails, for n =
-- 1, 2, ... until it is the directory fsync after the object's rename;
-- then the same put again, which finds the object there and must not
-- return before it is durable. (Loose only: pack's appends are covered by
-- the concurrent workload, and a failed sync there takes a repack.)
function ops.put_after_lost_sync(db, op)
  local core = require "mydb.core"
  for n = 1, db._backend == "loose" and 200 or 0 do
    core._fault(n)
    local ok, err = pcall(db.put, db, "t", "u", op[2], op[3], op[4])
    core._fault(0)
    if ok then break end -- past every fault point: nothing was lost
    local msg = tostring(type(err) == "table" and err.message or err)
    if msg:find("fsync [^:]*/objects/%x+:") then break end
  end
  db:put("t", "u", op[2], op[3], op[4])
end

--- The calls of writer w of a concurrent workload: entries of its own
-- (so that the result does not depend on the interleaving), values that
-- cross pages, on one tenant: the writers share its log and group commit.
function ops.writer_list(w)
  local c, s = "c" .. w, "s" .. w
  return {
    { "init" },
    { "put", c, "k1", { v = blob(w, 2000) } },
    { "save", s, { w = w, pad = blob(w + 1, 5000) } },
    { "put_many", c, { k2 = { v = blob(w + 2, 3000) }, k3 = { v = 3 } } },
    { "put", c, "k1", { v = w } },
    { "save", s, { w = w, n = 2 } },
    { "delete", c, "k3" },
    { "put", c, "k4", { v = blob(w + 3, 6000) } },
    -- The same value from both writers: one object, written by one and
    -- found there by the other (deduplication must wait for durability).
    { "put", c, "same", { v = blob(0, 2500) } },
  }
end

--- The calls of writer w in workload name ("single" or "concurrent").
function ops.calls(name, w)
  if name == "concurrent" then return ops.writer_list(w) end
  return ops.list()
end

--- The model after the first counts[w] calls of each writer w.
function ops.model(name, counts)
  local m = { entries = {}, tenant = false }
  for w, n in pairs(counts) do
    local l = ops.calls(name, w)
    for i = 1, n do ops.apply(m, l[i]) end
  end
  return m
end

return ops
