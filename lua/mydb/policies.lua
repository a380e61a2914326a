--- mydb.policies: use_refs policies (also `mydb.policies`).
--
-- A value may keep some of its fields out of the snapshot: each such field
-- is stored in ROOT/refs as its own canonical encoding (shared by every
-- tenant, stored once) and the snapshot keeps {"__ref__": DIGEST}; load
-- brings it back transparently. A registered class decides with its own
-- `use_refs` (in its metatable or its __index table: a function returning
-- field names, as a list or a set, or such a list or set). A policy decides
-- for the values that do not declare use_refs, plain tables included:
--
--   local policies = require "mydb.policies"
--   policies.register { use_refs = function(v) return v.blob and { "blob" } end }
--   policies.register(require("mydb.handlers.size_policy").new { threshold = 4096 })
--
-- Policies are asked in registration order; the first one that names
-- fields decides. use_refs(v) is called with every table (and class
-- instance without its own use_refs) that is stored; it returns field
-- names, or nil. Only string keys can be refs. A failure is handler_error.
local errors = require "mydb.errors"
local serializer = require "mydb.serializer"

local raise = errors.raise
local list = serializer.policies

local policies = {}

--- Registers a policy: a table whose use_refs(v) returns the names of the
-- fields of v to store as shared refs, or nil. Registering the same policy
-- twice is refused.
-- @param policy a table with a use_refs function
-- @return policy
-- @raise invalid_argument
-- @usage
-- local p = mydb.policies.register { use_refs = function(v) return v.blob and { "blob" } end }
-- db:save("acme", "alice", "doc", { blob = string.rep("x", 10000) })
-- assert(#db:load("acme", "doc").blob == 10000)
-- mydb.policies.unregister(p)
function policies.register(policy)
  if type(policy) ~= "table" then
    raise("invalid_argument", "policies.register needs a policy table, got %s", type(policy))
  end
  if not serializer.callable(policy.use_refs) then
    raise("invalid_argument", "a policy needs a use_refs function")
  end
  for _, p in ipairs(list) do
    if p == policy then raise("invalid_argument", "this policy is already registered") end
  end
  list[#list + 1] = policy
  serializer.changed()
  return policy
end

--- Removes a policy.
-- @param policy the registered table
-- @return true if it was registered
-- @raise nothing
-- @usage
-- local p = mydb.policies.register { use_refs = function() return nil end }
-- assert(mydb.policies.unregister(p) and not mydb.policies.unregister(p))
function policies.unregister(policy)
  for i, p in ipairs(list) do
    if p == policy then
      table.remove(list, i)
      serializer.changed()
      return true
    end
  end
  return false
end

--- The registered policies, in the order they are asked.
-- @return a list (a copy)
-- @raise nothing
-- @usage
-- local before = #mydb.policies.list()
-- local p = mydb.policies.register { use_refs = function() return nil end }
-- assert(#mydb.policies.list() == before + 1)
-- mydb.policies.unregister(p)
function policies.list()
  return table.move(list, 1, #list, 1, {})
end

return policies
