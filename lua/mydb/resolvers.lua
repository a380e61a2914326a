--- mydb.resolvers: the registry of merge resolvers (also `mydb.resolvers`).
--
-- A resolver settles one conflict of a merge (mydb.merge): it is called
-- with {entry=, key=, path=, base=, ours=, theirs=, ours_time=,
-- theirs_time=} and returns the value to keep (nil removes it). It may
-- raise: the merge then raises handler_error naming it and writes nothing.
--
--   mydb.resolvers.register("max", function(c) return math.max(c.ours, c.theirs) end)
--   db:merge("acme", "alice", "feature", { resolver = "max" })
--   db:set_resolver("acme", "alice", "counters", "sum")   -- stored with the entry
--
-- Shipped resolvers, modules in handlers/ registered when mydb loads:
-- ours, theirs, newest, union, sum (mydb.handlers.resolver_<name>).
-- Registrations live in the process: a stored resolver name must be
-- registered in every process that merges the entry (the shipped ones are).
local errors = require "mydb.errors"
local serializer = require "mydb.serializer"

local raise = errors.raise

local resolvers = {}

local by_name = {}

resolvers.SHIPPED = { "ours", "theirs", "newest", "union", "sum" }

--- Checks a resolver name: 1 to 128 bytes of letters, digits, '_', '.', '-'.
-- @param name the name
-- @return nothing
-- @raise invalid_argument
-- @usage
-- mydb.resolvers.check_name("max")
-- assert(not pcall(mydb.resolvers.check_name, "no spaces"))
function resolvers.check_name(name)
  if type(name) ~= "string" or #name < 1 or #name > 128 or name:find("[^%w_%.%-]") then
    raise("invalid_argument", "a resolver name must be 1 to 128 letters, digits, '_', '.' or '-', got %s",
      type(name) == "string" and ("%q"):format(name:sub(1, 140)) or type(name))
  end
end

--- Registers a resolver: called with {entry=, key=, path=, base=, ours=,
-- theirs=, ours_time=, theirs_time=}, it returns the value to keep (nil
-- removes it).
-- @param name the resolver's name
-- @param fn a function, or a table with a resolve function (a resolver module)
-- @param opts nil or {replace=true} (a taken name needs it)
-- @return the function
-- @raise invalid_argument (bad name, not a function, a taken name)
-- @usage
-- mydb.resolvers.register("max", function(c) return math.max(c.ours, c.theirs) end)
-- db:put("acme", "alice", "scores", "s", 1)
-- db:branch("acme", "other")
-- db:put("acme", "alice", "scores", "s", 5)
-- db:checkout("acme", "other")
-- db:put("acme", "bob", "scores", "s", 3)
-- db:merge("acme", "bob", "main", { resolver = "max" })
-- assert(db:get("acme", "scores", "s") == 5)
-- mydb.resolvers.unregister("max")
function resolvers.register(name, fn, opts)
  resolvers.check_name(name)
  if type(fn) == "table" and not serializer.callable(fn) then fn = fn.resolve end
  if not serializer.callable(fn) then
    raise("invalid_argument", "resolver '%s' must be a function, got %s", name, type(fn))
  end
  if opts ~= nil and type(opts) ~= "table" then
    raise("invalid_argument", "options must be a table, got %s", type(opts))
  end
  if by_name[name] and by_name[name] ~= fn and not (opts and opts.replace) then
    raise("invalid_argument", "resolver '%s' is already registered (give replace = true to replace it)", name)
  end
  by_name[name] = fn
  return fn
end

--- Removes a registration.
-- @param name the resolver's name
-- @return true if there was one
-- @raise invalid_argument (bad name)
-- @usage
-- mydb.resolvers.register("first", function(c) return c.ours end)
-- assert(mydb.resolvers.unregister("first"))
function resolvers.unregister(name)
  resolvers.check_name(name)
  local had = by_name[name] ~= nil
  by_name[name] = nil
  return had
end

--- The function registered under name.
-- @param name the resolver's name
-- @return the function, or nil
-- @raise nothing
-- @usage
-- assert(type(mydb.resolvers.get("sum")) == "function")
function resolvers.get(name) return by_name[name] end

--- The registered names, sorted (the shipped ones: newest, ours, sum,
-- theirs, union).
-- @return a list of names
-- @raise nothing
-- @usage
-- local names = table.concat(mydb.resolvers.list(), " ")
-- assert(names:find("ours") and names:find("union"))
function resolvers.list()
  local names = {}
  for name in pairs(by_name) do names[#names + 1] = name end
  table.sort(names)
  return names
end

--- opts.resolver as a function: a function, a registered name, or nil.
-- @param r a function, a registered name, or nil
-- @param what nil or a label for the error message
-- @return a function, or nil
-- @raise invalid_argument (an unknown name, another type)
-- @usage
-- assert(mydb.resolvers.lookup("ours") == mydb.resolvers.get("ours"))
-- assert(mydb.resolvers.lookup(nil) == nil)
function resolvers.lookup(r, what)
  if r == nil then return nil end
  if serializer.callable(r) then return r end
  if type(r) == "string" then
    local fn = by_name[r]
    if not fn then
      raise("invalid_argument", "%s: no resolver registered as '%s' (mydb.resolvers.register)",
        what or "resolver", r)
    end
    return fn
  end
  raise("invalid_argument", "resolver must be a function or a registered name, got %s", type(r))
end

for _, name in ipairs(resolvers.SHIPPED) do
  resolvers.register(name, (require("mydb.handlers.resolver_" .. name)))
end

return resolvers
