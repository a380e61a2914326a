--- mydb.query: the options of query, scan and query_index, and the
-- expressions that people the application does not trust may write.
--
-- A filter is a Lua function (key, value) -> boolean, or a string
-- expression over the record such as `age >= 30 and name:match("^J")`.
-- A string expression (a filter, or an expression index: see indexes.lua)
-- is compiled once into an interpreter state of its own (core.sandbox,
-- core/lsandbox.c) that holds the record's fields and the string methods,
-- nothing else, and every evaluation runs under budgets that count the
-- work done inside C functions too:
--   memory        bytes the expression's state may hold (default 64 MiB)
--   time          CPU seconds per evaluation (default 0.05)
--   instructions  VM instructions per evaluation, plus the units charged
--                 by string functions before they work (default 1,000,000)
--   query_time    CPU seconds for a whole query or scan (default: none)
-- Defaults come from mydb.open's `budget` option; `opts.budget` of a
-- query, scan or query_index overrides them for that call.
local core = require "mydb.core"
local errors = require "mydb.errors"

local raise = errors.raise

local query = {}

query.DEFAULT_BUDGET = { memory = 64 << 20, time = 0.05, instructions = 1000000 }
local MIN_MEMORY = 64 * 1024

local KNOWN = { prefix = true, from = true, to = true, reverse = true, limit = true,
                digest = true, filter = true, budget = true }

local BUDGET_KEYS = {
  memory = function(v)
    return math.type(v) == "integer" and v >= MIN_MEMORY, "an integer of at least 65536 (bytes)"
  end,
  time = function(v) return type(v) == "number" and v > 0 and v <= 3600, "a number of seconds in (0, 3600]" end,
  instructions = function(v)
    return math.type(v) == "integer" and v > 0, "a positive integer"
  end,
  query_time = function(v)
    return type(v) == "number" and v > 0 and v < math.huge, "a positive number of seconds"
  end,
}

--- Validates a budget table (nil allowed) and returns base with its
-- fields overridden by it: a new table.
function query.budget(b, base, where)
  local out = {}
  for k, v in pairs(base or query.DEFAULT_BUDGET) do out[k] = v end
  if b == nil then return out end
  if type(b) ~= "table" then raise("invalid_argument", "%s must be a table, got %s", where, type(b)) end
  for k, v in pairs(b) do
    local check = BUDGET_KEYS[k]
    if not check then raise("invalid_argument", "unknown budget '%s' in %s", tostring(k), where) end
    local ok, what = check(v)
    if not ok then raise("invalid_argument", "%s.%s must be %s", where, k, what) end
    out[k] = v
  end
  return out
end

local function check_bound(v, name, raw)
  if v == nil then return end
  if raw then
    if type(v) ~= "string" then raise("invalid_argument", "opts.%s must be a string", name) end
    return
  end
  if type(v) ~= "string" or #v > 1024 or v:find("\0", 1, true) then
    raise("invalid_argument", "opts.%s must be a key (a string of up to 1024 bytes without NUL)", name)
  end
end

-- The smallest string greater than every string starting with p (nil if
-- there is none: p is all "\255").
local function prefix_end(p)
  local i = #p
  while i > 0 and p:byte(i) == 255 do i = i - 1 end
  if i == 0 then return nil end
  return p:sub(1, i - 1) .. string.char(p:byte(i) + 1)
end

local function budget_message(what, which, budget)
  if which == "memory" then
    return ("%s ran out of its memory budget (%d bytes)"):format(what, budget.memory)
  elseif which == "time" then
    return ("%s ran out of its time budget (%g s of CPU)"):format(what, budget.time)
  elseif which == "instructions" then
    return ("%s ran out of its instruction budget (%d)"):format(what, budget.instructions)
  end
end

--- Compiles a string expression into a function (value) -> result, run in
-- a sandbox under budget (a table from query.budget). what names it in
-- messages ("filter", "index expression"). A result that is not nil, a
-- boolean, a number or a string comes back as true, typename.
function query.compile(expr, budget, what)
  what = what or "filter"
  if type(expr) ~= "string" then raise("invalid_argument", "a %s must be a string", what) end
  if #expr > 4096 then raise("invalid_argument", "a %s expression is at most 4096 bytes", what) end
  budget = budget or query.DEFAULT_BUDGET
  local sb, err = core.sandbox(expr, budget.memory, math.max(1, math.floor(budget.time * 1e9)),
    budget.instructions)
  if not sb then raise("invalid_argument", "%s does not compile: %s", what, err) end
  return function(value)
    local ok, res, other = sb:eval(value)
    if ok then return res, other end
    local msg = budget_message(what, res, budget)
    if msg then raise("invalid_argument", "%s", msg) end
    raise("invalid_argument", "%s failed: %s", what, other)
  end, sb
end

-- The filter of a plan: a function (key, value) -> boolean.
local function filter_function(expr, budget)
  local eval = query.compile(expr, budget, "filter")
  return function(_, value) return (eval(value)) end
end

--- Validates opts and returns a plan: bounds for collection.range, the
-- filter function, the limit and the digest. raw: bounds are internal keys
-- (index entries), not record keys.
function query.plan(opts, raw, defaults)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then raise("invalid_argument", "opts must be a table, got %s", type(opts)) end
  for k in pairs(opts) do
    if not KNOWN[k] then raise("invalid_argument", "unknown query option '%s'", tostring(k)) end
  end
  check_bound(opts.prefix, "prefix", raw)
  check_bound(opts.from, "from", raw)
  check_bound(opts.to, "to", raw)
  local limit = opts.limit
  if limit ~= nil and (math.type(limit) ~= "integer" or limit < 0) then
    raise("invalid_argument", "opts.limit must be a non-negative integer")
  end
  if opts.reverse ~= nil and type(opts.reverse) ~= "boolean" then
    raise("invalid_argument", "opts.reverse must be a boolean")
  end
  local budget = query.budget(opts.budget, defaults, "opts.budget")
  local filter = opts.filter
  if type(filter) == "string" then
    filter = filter_function(filter, budget)
  elseif filter ~= nil and type(filter) ~= "function" then
    raise("invalid_argument", "opts.filter must be a function or a string expression")
  end
  local lo, hi, hi_excl = opts.from, opts.to, false
  if opts.prefix then
    local p = opts.prefix
    if lo == nil or lo < p then lo = p end
    local pe = prefix_end(p)
    if pe and (hi == nil or hi >= pe) then hi, hi_excl = pe, true end
  end
  return {
    lo = lo, hi = hi, hi_excl = hi_excl, reverse = opts.reverse == true,
    filter = filter, limit = limit, digest = opts.digest, budget = budget,
    clock = query.clock(budget.query_time),
  }
end

--- The per-query budget: a clock of the CPU time spent inside the
-- query's iterator (reading, decoding, filtering; not the caller's own
-- work between two calls). clock.enter() when the iterator is entered,
-- clock.tick() after each row read (raises once over budget), clock.leave()
-- before it returns. nil when there is no bound.
function query.clock(seconds)
  if not seconds then return nil end
  -- Reading the CPU clock is a system call: a row costs less on a small
  -- record, so the clock is read every CHECK_EVERY rows.
  local CHECK_EVERY = 8
  local spent, t0, rows = 0, 0, 0
  local clock = {}
  function clock.enter() t0 = core.cputime() end
  function clock.tick()
    rows = rows + 1
    if rows % CHECK_EVERY ~= 0 then return end
    local now = core.cputime()
    spent, t0 = spent + (now - t0), now
    if spent > seconds then
      raise("invalid_argument", "query ran out of its query time budget (%g s of CPU) after %d rows read",
        seconds, rows)
    end
  end
  function clock.leave() spent = spent + (core.cputime() - t0) end
  return clock
end

--- Wraps an iterator of key, value (and extra) with the filter, the limit,
-- a hidden-record test and the query time budget (plan.clock, shared by
-- the queries of one scan).
function query.wrap(it, plan, hidden)
  local n, done = 0, false
  local filter, limit, clock = plan.filter, plan.limit, plan.clock
  if not (filter or limit or hidden or clock) then return it end
  return function()
    if clock then clock.enter() end
    while not done do
      if limit and n >= limit then done = true; break end
      local k, v, x = it()
      if k == nil then done = true; break end
      if clock then clock.tick() end
      if not (hidden and hidden(v)) and (not filter or filter(k, v, x)) then
        n = n + 1
        if clock then clock.leave() end
        return k, v, x
      end
    end
    if clock then clock.leave() end
    return nil
  end
end

return query
