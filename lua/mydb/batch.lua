--- mydb.batch: the builder a db:batch function writes to. b:save, b:put,
-- b:put_many, b:delete and b:drop (the db methods' arguments without tenant
-- and user) add to a plan of the one commit path (mydb.write); nothing is
-- written until the function returns, and nothing if it raises.
local core = require "mydb.core"
local errors = require "mydb.errors"
local validate = require "mydb.validate"
local encode = require "mydb.encode"
local write = require "mydb.write"

local raise = errors.raise
local path_name = encode.path_name

local batch = {}

-- The builder over plan; open() says whether the batch still takes calls.
local function builder(plan, ctx, open)
  local function entry_plan(entry, kind)
    if not open() then raise("invalid_argument", "the batch is over") end
    validate.entry(entry)
    local p = plan[entry]
    if not p or p.drop then
      -- after b:drop, the entry starts anew (a new chain), as after db:drop
      p = { fresh = p ~= nil or nil }
      plan[entry] = p
    end
    if kind == "save" and p.records then write.mismatch(entry, true) end
    if kind == "records" and p.save then write.mismatch(entry, false) end
    return p
  end
  local b = {}
  --- Saves a whole value as the entry's new version, at commit (db:save).
  -- @param entry the entry's name
  -- @param value any storable value
  -- @return nothing
  -- @raise invalid_argument (the batch is over, bad entry), type_mismatch
  -- (records put to the same entry in this batch), unsupported_value
  -- @usage
  -- db:batch("acme", "alice", function(b) b:save("config", { theme = "dark" }) end)
  -- assert(db:load("acme", "config").theme == "dark")
  function b:save(entry, value)
    local p = entry_plan(entry, "save")
    ctx.root = path_name(entry)
    p.save = core.encode(value, ctx)
  end
  --- Adds or replaces one record, at commit (db:put).
  -- @param entry the collection's name
  -- @param key the record's key
  -- @param value the record (not nil)
  -- @return nothing
  -- @raise invalid_argument, type_mismatch, unsupported_value
  -- @usage
  -- db:batch("acme", "alice", function(b) b:put("users", "u1", 1); b:put("users", "u2", 2) end)
  -- assert(#db:history("acme", "users") == 1)
  function b:put(entry, key, value)
    local p = entry_plan(entry, "records")
    validate.key(key)
    if value == nil then raise("invalid_argument", "value must not be nil (use delete)") end
    encode.set_path(ctx, entry, key)
    p.records = p.records or {}
    p.records[key] = core.encode(value, ctx)
  end
  --- Adds or replaces many records, at commit (db:put_many).
  -- @param entry the collection's name
  -- @param items a map key -> value, or a list of objects with get_key()
  -- @return nothing
  -- @raise invalid_argument, type_mismatch, unsupported_value
  -- @usage
  -- db:batch("acme", "alice", function(b) b:put_many("users", { u1 = 1, u2 = 2 }) end)
  -- assert(#db:get("acme", "users") == 2)
  function b:put_many(entry, items)
    local p = entry_plan(entry, "records")
    p.records = p.records or {}
    encode.items(entry, items, ctx, p.records)
  end
  --- Removes one record, at commit (db:delete).
  -- @param entry the collection's name
  -- @param key the record's key
  -- @return nothing
  -- @raise invalid_argument, type_mismatch
  -- @usage
  -- db:put("acme", "alice", "users", "u1", 1)
  -- db:batch("acme", "alice", function(b) b:delete("users", "u1") end)
  -- assert(db:get("acme", "users", "u1") == nil)
  function b:delete(entry, key)
    local p = entry_plan(entry, "records")
    validate.key(key)
    p.records = p.records or {}
    p.records[key] = false
  end
  --- Removes an entry, at commit (db:drop); a later call of the same batch
  -- starts the entry anew.
  -- @param entry the entry's name
  -- @return nothing
  -- @raise invalid_argument
  -- @usage
  -- db:save("acme", "alice", "config", {})
  -- db:batch("acme", "alice", function(b) b:drop("config") end)
  -- assert(not db:exists("acme", "config"))
  function b:drop(entry)
    if not open() then raise("invalid_argument", "the batch is over") end
    validate.entry(entry)
    plan[entry] = { drop = true }
  end
  return b
end

--- Runs fn(b) and returns the plan it built (raises what fn raised).
function batch.run(fn, ctx)
  local plan, is_open = {}, true
  local ok, err = pcall(fn, builder(plan, ctx, function() return is_open end))
  is_open = false
  if not ok then error(err, 0) end
  return plan
end

return batch
