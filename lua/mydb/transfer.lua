--- mydb.transfer: copies into one store what it lacks of the closure of
-- some objects of another (mydb.sync: fetch, push, clone).
--
-- The walk follows gc's links (parents, state trees, pieces, index roots,
-- tag targets, shared refs named by "__ref__" / "__digest__") and stops at
-- every object the destination holds already: a store holds an object only
-- with all it links to, because every object is written after what it
-- names. The transfer keeps that true: it writes in post-order (an
-- object after its links; shared refs before objects), so a copy killed at
-- any moment leaves a valid store that a new run completes. Every object
-- is hashed again on arrival: bytes that do not match their digest raise
-- `corrupt` before anything of the closure is written. The plan is made
-- without locks; the writes and the ref moves happen under the receiver's
-- tenant lock, after a check that what the plan found present is still
-- there (gc removes unreachable objects under that lock).
local core = require "mydb.core"
local errors = require "mydb.errors"
local commits = require "mydb.commits"
local gc = require "mydb.gc"
local progress = require "mydb.progress"

local raise = errors.raise

local transfer = {}

-- Reads d of tenant t (nil: the shared refs) from src and checks its
-- digest; nil when it is an optional object the source does not have.
local function fetch_bytes(src, t, d, optional)
  local ok, bytes = pcall(src.read, src, t, d)
  if not ok then
    if errors.is(bytes, "not_found") and optional[d] then return nil end
    if errors.is(bytes) and bytes.code ~= "corrupt" and bytes.code ~= "not_found" then error(bytes, 0) end
    raise("corrupt", "sync: object %s of %s in the source: %s", d, t or "the refs",
      errors.is(bytes) and bytes.message or tostring(bytes))
  end
  if core.sha256(bytes) ~= d then
    raise("corrupt", "sync: object %s of %s does not match its digest", d, t or "the refs")
  end
  return bytes
end

-- The missing part of the closure of starts: nodes[d] = {bytes, kids};
-- the objects it found present go to boundary.
local function walk(src, dst, t, starts, refs_out, boundary, bar)
  local nodes, order, optional = {}, {}, {}
  local stack = {}
  for i, d in ipairs(starts) do stack[i] = d end
  while #stack > 0 do
    local d = table.remove(stack)
    if nodes[d] == nil and dst:exists(t, d) then
      nodes[d] = false
      boundary[#boundary + 1] = { t, d }
    elseif nodes[d] == nil then
      local bytes = fetch_bytes(src, t, d, optional)
      if bytes then
        local kids = {}
        local where = d .. " of " .. (t or "the refs")
        local ok, err = pcall(gc.links, bytes, where, t and kids or nil, refs_out, optional)
        if not ok then raise("corrupt", "sync: object %s: %s", where, errors.is(err) and err.message or tostring(err)) end
        nodes[d] = { bytes = bytes, kids = kids }
        order[#order + 1] = d
        bar.read = bar.read + 1
        bar.update("reading", bar.read)
        for _, k in ipairs(kids) do stack[#stack + 1] = k end
      else
        nodes[d] = false
      end
    end
  end
  return nodes, order
end

-- Writes the nodes, each after its kids, and checks what was stored.
local function write_all(dst, t, nodes, order, report, bar, total)
  local done = {}
  local function put(d)
    local n = nodes[d]
    local got = dst:write(t, n.bytes)
    if got ~= d then raise("corrupt", "sync: object %s arrived as %s", d, tostring(got)) end
    report.objects = report.objects + 1
    bar.written = bar.written + 1
    bar.update("writing", bar.written, total)
    report.bytes = report.bytes + #n.bytes
    if t and commits.is_commit(n.bytes) then report.commits = report.commits + 1 end
  end
  for _, root in ipairs(order) do
    if not done[root] then
      -- iterative post-order: (digest, next kid index)
      local stack = { { root, 1 } }
      done[root] = true
      while #stack > 0 do
        local top = stack[#stack]
        local n = nodes[top[1]]
        local kid = n and n.kids[top[2]]
        if kid then
          top[2] = top[2] + 1
          if nodes[kid] and not done[kid] then
            done[kid] = true
            stack[#stack + 1] = { kid, 1 }
          end
        else
          stack[#stack] = nil
          if n then put(top[1]) end
        end
      end
    end
  end
end

--- What dst (a core store) lacks of the closure of the digests starts of
-- tenant t in src, read and verified: a plan for transfer.write. Nothing
-- is written. bar: a mydb.progress bar (optional).
function transfer.plan(src, dst, t, starts, bar)
  bar = bar or progress.bar("", false)
  bar.read = 0
  local refs, boundary = {}, {}
  local nodes, order = walk(src, dst, t, starts, refs, boundary, bar)
  -- shared refs name refs: close over them too
  local ref_starts = {}
  for r in pairs(refs) do ref_starts[#ref_starts + 1] = r end
  table.sort(ref_starts)
  local rnodes, rorder = {}, {}
  local stack = ref_starts
  while #stack > 0 do
    local n2, o2 = walk(src, dst, nil, stack, {}, boundary, bar)
    stack = {}
    for d, n in pairs(n2) do if rnodes[d] == nil then rnodes[d] = n end end
    for _, d in ipairs(o2) do
      rorder[#rorder + 1] = d
      -- each ref's own links are its kids, for the post-order
      local own, kids = {}, {}
      gc.links(n2[d].bytes, "ref " .. d, nil, own)
      for k in pairs(own) do
        kids[#kids + 1] = k
        if rnodes[k] == nil then stack[#stack + 1] = k end
      end
      rnodes[d].kids = kids
    end
  end
  return { t = t, nodes = nodes, order = order, rnodes = rnodes, rorder = rorder, boundary = boundary }
end

--- True when the plan writes nothing.
function transfer.empty(plan) return #plan.order == 0 and #plan.rorder == 0 end

--- Are the objects the plan found present still there? (Under the
-- receiver's tenant lock, which a gc sweep takes too: a false answer means
-- a gc removed one of them meanwhile, and the plan must be made again.)
function transfer.still_valid(dst, plan)
  for _, b in ipairs(plan.boundary) do
    if not dst:exists(b[1], b[2]) then return false end
  end
  return true
end

--- Writes the plan into dst (shared refs, then the tenant's objects, each
-- after what it names); adds to report {commits, objects, bytes}. Call it
-- under dst's tenant lock: gc sweeps under that lock, so nothing the plan
-- relies on goes away until the refs that reach it are moved. bar: a
-- mydb.progress bar (optional).
function transfer.write(dst, plan, report, bar)
  bar = bar or progress.bar("", false)
  bar.written = 0
  local total = #plan.rorder + #plan.order
  write_all(dst, nil, plan.rnodes, plan.rorder, report, bar, total)
  write_all(dst, plan.t, plan.nodes, plan.order, report, bar, total)
  return report
end

function transfer.report()
  return { commits = 0, objects = 0, bytes = 0, updated = {} }
end

return transfer
