--- mydb.query: the options of query, scan and query_index, and filters.
--
-- A filter is a Lua function (key, value) -> boolean, or a string
-- expression over the record such as `age >= 30 and name:match("^J")`.
-- A string is compiled once, in a sandbox whose only names are the
-- record's fields (no io, os, require, load, debug, no globals at all),
-- and runs under an instruction budget.
local errors = require "mydb.errors"

local raise = errors.raise

local query = {}

query.FILTER_BUDGET = 1000000 -- VM instructions per record

local KNOWN = { prefix = true, from = true, to = true, reverse = true, limit = true,
                digest = true, filter = true }

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

-- String methods (name:match(...)) run in C, where the instruction hook
-- never fires, so during a filter call the string metatable's __index is
-- swapped for bounded versions: results of rep are at most 1 MiB, and a
-- pattern's worst-case backtracking work, about #subject ^ (quantifiers + 1),
-- must stay under PATTERN_BUDGET, else the filter fails instead of hanging.
query.PATTERN_BUDGET = 1e8
query.REP_MAX = 1 << 20

local function check_pattern(fname, s, pattern)
  if type(s) ~= "string" or type(pattern) ~= "string" then return end
  -- the original string functions: method calls would reach the wrappers
  local _, q = string.gsub(string.gsub(pattern, "%%.", ""), "[%*%+%-%?]", "")
  if (#s + 1) ^ (q + 1) > query.PATTERN_BUDGET then
    error(("%s: pattern too costly for a filter (%d quantifiers on %d bytes)"):format(fname, q, #s), 3)
  end
end

local bounded_string = {}
for name, f in pairs(string) do bounded_string[name] = f end
for _, name in ipairs { "match", "find", "gmatch", "gsub" } do
  local f = string[name]
  bounded_string[name] = function(s, pattern, ...)
    check_pattern(name, s, pattern)
    return f(s, pattern, ...)
  end
end
function bounded_string.rep(s, n, sep)
  local len = type(s) == "string" and #s or 0
  local seplen = type(sep) == "string" and #sep or 0
  if type(n) == "number" and n > 0 and (len + seplen) * n > query.REP_MAX then
    error("rep: result larger than a filter may build", 2)
  end
  return string.rep(s, n, sep)
end
bounded_string.dump = nil

--- Compiles a string filter into a function (key, value) -> boolean.
function query.compile(expr)
  if #expr > 4096 then raise("invalid_argument", "a filter expression is at most 4096 bytes") end
  local record
  -- The environment: the record's fields, read-only; nothing else.
  local env = setmetatable({}, {
    __index = function(_, k)
      if type(record) == "table" then return record[k] end
      return nil
    end,
    __newindex = function(_, k)
      error("a filter cannot assign to '" .. tostring(k) .. "'", 2)
    end,
    __metatable = false,
  })
  local chunk, err = load("return (" .. expr .. ")", "=filter", "t", env)
  if not chunk then raise("invalid_argument", "filter does not compile: %s", err) end
  local budget = query.FILTER_BUDGET
  return function(_, value)
    record = value
    -- Bounded running time: a count hook stops runaway expressions. The
    -- hook is set only around the call and the previous one restored.
    local old_hook, old_mask, old_count = debug.gethook()
    local smt = getmetatable("")
    local old_index = smt.__index
    smt.__index = bounded_string
    debug.sethook(function() error("filter ran out of its instruction budget", 2) end, "", budget)
    local ok, res = pcall(chunk)
    debug.sethook(old_hook, old_mask, old_count)
    smt.__index = old_index
    record = nil
    if not ok then raise("invalid_argument", "filter failed: %s", tostring(res)) end
    return res
  end
end

--- Validates opts and returns a plan: bounds for collection.range, the
-- filter function, the limit and the digest. raw: bounds are internal keys
-- (index entries), not record keys.
function query.plan(opts, raw)
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
  local filter = opts.filter
  if type(filter) == "string" then
    filter = query.compile(filter)
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
    filter = filter, limit = limit, digest = opts.digest,
  }
end

--- Wraps an iterator of key, value (and extra) with the filter, the limit
-- and a hidden-record test.
function query.wrap(it, plan, hidden)
  local n, done = 0, false
  local filter, limit = plan.filter, plan.limit
  if not (filter or limit or hidden) then return it end
  return function()
    while not done do
      if limit and n >= limit then done = true; break end
      local k, v, x = it()
      if k == nil then done = true; break end
      if not (hidden and hidden(v)) and (not filter or filter(k, v, x)) then
        n = n + 1
        return k, v, x
      end
    end
    return nil
  end
end

return query
