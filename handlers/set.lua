--- mydb.handlers.set: a set of storable values, and its inline handler.
--
--   local set = require "mydb.handlers.set"
--   require("mydb.handlers").register(set)
--   local s = set.new { "red", "green" }
--   s:add("blue"); print(#s, s:has("red"), s)   --> 3  true  Set{"blue", "green", "red"}
--   for v in s:iter() do ... end               -- members, unordered
--   s:members()                                -- members as a list, in canonical order
--
-- Members are Lua table keys: strings, numbers (1 and 1.0 are one member),
-- booleans, tables (by identity: two equal tables are two members) and any
-- value with a registered handler or class, e.g. dates (then give each
-- date once: two date objects for one day are two members).
--
-- Stored inline as {"__special__":"Set","members":[...]}, the members sorted
-- by their canonical encoding, so one set always gives the same bytes
-- whatever order it was built in. Members may be any storable value,
-- other handled types included (a set of dates).
local errors = require "mydb.errors"
local serializer = require "mydb.serializer"

local set = { tag = "Set" }

local Set = { __name = "mydb.Set" }
local methods = {}
Set.__index = methods
set.mt = Set

local function check_member(v)
  if v == nil then errors.raise("invalid_argument", "a set member must not be nil") end
  if v ~= v then errors.raise("invalid_argument", "a set member must not be NaN") end
end

--- A set of the values of list (a sequence), or an empty set.
function set.new(list)
  local s = setmetatable({ _members = {}, _n = 0 }, Set)
  if list ~= nil then
    if type(list) ~= "table" then
      errors.raise("invalid_argument", "set.new needs a list of members, got %s", type(list))
    end
    for i = 1, #list do s:add(list[i]) end
  end
  return s
end

function set.is_set(v) return getmetatable(v) == Set end

--- Adds v; true if it was not a member.
function methods:add(v)
  check_member(v)
  if self._members[v] then return false end
  self._members[v] = true
  self._n = self._n + 1
  return true
end

--- Removes v; true if it was a member.
function methods:remove(v)
  if v == nil or v ~= v or not self._members[v] then return false end
  self._members[v] = nil
  self._n = self._n - 1
  return true
end

function methods:has(v)
  if v == nil or v ~= v then return false end
  return self._members[v] == true
end

--- Iterator over the members (in no particular order).
function methods:iter()
  local k = nil
  local m = self._members
  return function()
    k = next(m, k)
    return k
  end
end

-- Sort keys: canonical bytes, else (a value mydb cannot store: the encoder
-- will refuse it with its path) type name and tostring.
local function sorted(list)
  local key = {}
  for _, v in ipairs(list) do
    local ok, bytes = pcall(serializer.canonical, v)
    key[v] = ok and bytes or ("\255" .. type(v) .. tostring(v))
  end
  table.sort(list, function(a, b) return key[a] < key[b] end)
  return list
end

--- The members as a list, in canonical order (the stored order).
function methods:members()
  local list = {}
  for v in pairs(self._members) do list[#list + 1] = v end
  return sorted(list)
end

local function with(self, other, keep)
  if getmetatable(other) ~= Set then errors.raise("invalid_argument", "expected a set, got %s", type(other)) end
  local r = set.new()
  for v in pairs(self._members) do
    if keep(other:has(v)) then r:add(v) end
  end
  return r, other
end

function methods:union(other)
  local r = with(self, other, function() return true end)
  for v in pairs(other._members) do r:add(v) end
  return r
end
function methods:intersection(other) return (with(self, other, function(has) return has end)) end
function methods:difference(other) return (with(self, other, function(has) return not has end)) end

function Set.__len(self) return self._n end
function Set.__eq(a, b)
  if a._n ~= b._n then return false end
  for v in pairs(a._members) do
    if not b._members[v] then return false end
  end
  return true
end
function Set.__tostring(self)
  local parts = {}
  for i, v in ipairs(self:members()) do
    parts[i] = type(v) == "string" and ("%q"):format(v) or tostring(v)
  end
  return "Set{" .. table.concat(parts, ", ") .. "}"
end

-- ------------------------------------------------------------- handler

function set.is_eligible_for(v) return getmetatable(v) == Set end
function set.serialize(s) return { members = s:members() } end
function set.deserialize(t)
  if type(t.members) ~= "table" then errors.raise("invalid_argument", "a stored set has no members list") end
  return set.new(t.members)
end

return set
