--- mydb.handlers: the registry of type handlers (also `mydb.handlers`).
--
-- A handler lets mydb store values it does not know: tables with a
-- metatable of yours, userdata. Two kinds, as in the original:
--
--   inline: lives in the snapshot, {"__special__":TAG, ...fields}
--     handlers.register { tag = "Date",
--       is_eligible_for = function(v) return getmetatable(v) == Date end,
--       serialize = function(v) return { year = v.year, ... } end,   -- any storable value
--       deserialize = function(t) return Date.new(t.year, ...) end }
--
--   ref: its own bytes in ROOT/refs, {"__special__":TAG,"__digest__":DIGEST}
--     handlers.register { tag = "F64Array", is_eligible_for = ...,
--       serialize_to_bytes = function(v) return bytes end,
--       deserialize_from_bytes = function(bytes) return v end }
--
-- The encoder asks every registered handler, in registration order, about
-- each table and userdata it meets; the first eligible one takes the value
-- (before registered classes). Handler functions run under pcall: a failure
-- is a handler_error naming the tag, and a failed save writes nothing.
-- The functions are taken from the handler table when it is registered:
-- changing the table later changes nothing (register it again, with
-- replace = true).
-- Loading a value whose tag has no handler raises unknown_tag; the stored
-- bytes are untouched, so registering the handler again makes it load.
local errors = require "mydb.errors"
local serializer = require "mydb.serializer"

local raise = errors.raise
local callable = serializer.callable
local list, by_tag = serializer.handlers, serializer.handler_by_tag

local handlers = {}

local INLINE = { "serialize", "deserialize" }
local REF = { "serialize_to_bytes", "deserialize_from_bytes" }

--- Registers a handler table (see above). h.replace = true (or
-- opts.replace = true) replaces the handler of a tag that is taken, keeping
-- its place in the order; without it a taken tag is refused. A string in
-- place of opts is ignored: it is what `require` returns after the module
-- (its path), so that register(require "mydb.handlers.date") works.
-- @param h {tag=, is_eligible_for=, serialize=, deserialize=} (inline) or
-- {tag=, is_eligible_for=, serialize_to_bytes=, deserialize_from_bytes=} (ref)
-- @param opts nil or {replace=true}
-- @return h
-- @raise invalid_argument (a malformed handler, a taken tag)
-- @usage
-- local Date = {}
-- local handler = { tag = "Day",
--   is_eligible_for = function(v) return getmetatable(v) == Date end,
--   serialize = function(v) return { d = v.d } end,
--   deserialize = function(t) return setmetatable({ d = t.d }, Date) end }
-- mydb.handlers.register(handler)
-- db:save("acme", "alice", "when", setmetatable({ d = "2026-12-04" }, Date))
-- assert(db:load("acme", "when").d == "2026-12-04")
-- mydb.handlers.unregister("Day")
function handlers.register(h, opts)
  if type(h) ~= "table" then
    raise("invalid_argument", "handlers.register needs a handler table, got %s", type(h))
  end
  if type(opts) == "string" then opts = nil end
  if opts ~= nil and type(opts) ~= "table" then
    raise("invalid_argument", "options must be a table, got %s", type(opts))
  end
  serializer.check_name(h.tag, "handler tag")
  local tag = h.tag
  if not callable(h.is_eligible_for) then
    raise("invalid_argument", "handler '%s' has no is_eligible_for function", tag)
  end
  local inline = h.serialize ~= nil or h.deserialize ~= nil
  local ref = h.serialize_to_bytes ~= nil or h.deserialize_from_bytes ~= nil
  if inline and ref then
    raise("invalid_argument", "handler '%s' has both inline (serialize/deserialize) and ref "
      .. "(serialize_to_bytes/deserialize_from_bytes) functions: give one pair", tag)
  end
  if not inline and not ref then
    raise("invalid_argument", "handler '%s' needs serialize and deserialize (inline) or "
      .. "serialize_to_bytes and deserialize_from_bytes (ref)", tag)
  end
  local pair = inline and INLINE or REF
  for _, name in ipairs(pair) do
    if not callable(h[name]) then
      raise("invalid_argument", "handler '%s' has no %s function", tag, name)
    end
  end
  local replace = h.replace
  if opts and opts.replace ~= nil then replace = opts.replace end
  if replace ~= nil and type(replace) ~= "boolean" then
    raise("invalid_argument", "replace must be a boolean, got %s", type(replace))
  end
  local entry = {
    tag = tag, kind = inline and "inline" or "ref", source = h,
    is_eligible_for = h.is_eligible_for, [pair[1]] = h[pair[1]], [pair[2]] = h[pair[2]],
  }
  local old = by_tag[tag]
  if old then
    if not replace then
      raise("invalid_argument", "handler tag '%s' is already registered (give replace = true to replace it)", tag)
    end
    for i, e in ipairs(list) do
      if e == old then list[i] = entry end
    end
  else
    list[#list + 1] = entry
  end
  by_tag[tag] = entry
  serializer.changed()
  return h
end

local function tag_of(x)
  if type(x) == "table" and type(x.tag) == "string" then return x.tag end
  if type(x) ~= "string" then
    raise("invalid_argument", "a handler tag must be a string, got %s", type(x))
  end
  return x
end

--- Removes the handler of a tag (or of the handler table given). Values
-- stored with it stay as they are: loading them raises unknown_tag until a
-- handler for the tag is registered again.
-- @param tag a tag, or a registered handler table
-- @return true if one was registered
-- @raise invalid_argument (not a string or handler table)
-- @usage
-- local Date = {}
-- local handler = { tag = "Day",
--   is_eligible_for = function(v) return getmetatable(v) == Date end,
--   serialize = function(v) return { d = v.d } end,
--   deserialize = function(t) return setmetatable({ d = t.d }, Date) end }
-- mydb.handlers.register(handler)
-- assert(mydb.handlers.unregister(handler) == true)
function handlers.unregister(tag)
  tag = tag_of(tag)
  local old = by_tag[tag]
  if not old then return false end
  by_tag[tag] = nil
  for i, e in ipairs(list) do
    if e == old then
      table.remove(list, i)
      break
    end
  end
  serializer.changed()
  return true
end

--- The registered tags, in registration order (the order they are asked in).
-- @return a list of tags
-- @raise nothing
-- @usage
-- local Date = {}
-- local handler = { tag = "Day",
--   is_eligible_for = function(v) return getmetatable(v) == Date end,
--   serialize = function(v) return { d = v.d } end,
--   deserialize = function(t) return setmetatable({ d = t.d }, Date) end }
-- mydb.handlers.register(handler)
-- local tags = mydb.handlers.list()
-- assert(tags[#tags] == "Day")
-- mydb.handlers.unregister("Day")
function handlers.list()
  local tags = {}
  for i, e in ipairs(list) do tags[i] = e.tag end
  return tags
end

--- The handler table registered for a tag.
-- @param tag a tag
-- @return the handler table, or nil
-- @raise invalid_argument (not a string)
-- @usage
-- assert(mydb.handlers.get("NoSuchTag") == nil)
function handlers.get(tag)
  local e = by_tag[tag_of(tag)]
  return e and e.source
end

return handlers
