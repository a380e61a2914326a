--- mydb.serializer: Lua values <-> canonical JSON bytes.
-- The byte format is in doc/FORMAT.md; the work is done in C (mydb.core);
-- this module keeps the registries the codec consults: registered classes
-- (the original's __object__), inline and ref handlers (__special__) and
-- use_refs policies (__ref__).
local core = require "mydb.core"
local errors = require "mydb.errors"

local serializer = {}

local class_by_name = {}   -- name -> metatable
local name_by_class = {}   -- metatable -> name
local handlers = {}        -- registration order
local handler_by_tag = {}
local policies = {}        -- consulted in order

local RESERVED_TAGS = {
  __id__ = true, __object__ = true, __special__ = true, __ref__ = true,
  __digest__ = true, __float__ = true, __bytes__ = true, __map__ = true,
  __value__ = true, __parent__ = true, __user_id__ = true, __date__ = true,
  __collection__ = true,
}
serializer.RESERVED_TAGS = RESERVED_TAGS

local function check_name(name, what)
  if type(name) ~= "string" or #name == 0 or #name > 128 or name:find("%z") then
    errors.raise("invalid_argument", "%s must be a string of 1 to 128 bytes", what)
  end
  if not utf8.len(name) then errors.raise("invalid_argument", "%s must be valid UTF-8", what) end
  if RESERVED_TAGS[name] or name:sub(1, 2) == "__" then
    errors.raise("invalid_argument", "%s '%s' is reserved", what, name)
  end
end

--- Registers a metatable under a name so that its instances can be stored.
-- opts.replace = true replaces an existing registration of the name.
function serializer.register_class(name, mt, opts)
  check_name(name, "class name")
  if type(mt) ~= "table" then
    errors.raise("invalid_argument", "register_class needs a metatable, got %s", type(mt))
  end
  if opts ~= nil and type(opts) ~= "table" then
    errors.raise("invalid_argument", "options must be a table")
  end
  local old = class_by_name[name]
  if old and old ~= mt and not (opts and opts.replace) then
    errors.raise("invalid_argument", "class name '%s' is already registered", name)
  end
  local other = name_by_class[mt]
  if other and other ~= name then
    errors.raise("invalid_argument", "this metatable is already registered as '%s'", other)
  end
  if old then name_by_class[old] = nil end
  class_by_name[name] = mt
  name_by_class[mt] = name
  serializer.changed()
  return mt
end

function serializer.unregister_class(name)
  local mt = class_by_name[name]
  if mt then
    class_by_name[name] = nil
    name_by_class[mt] = nil
    serializer.changed()
  end
  return mt ~= nil
end

function serializer.class_name(mt) return name_by_class[mt] end

serializer.handlers = handlers
serializer.handler_by_tag = handler_by_tag
serializer.policies = policies

-- Field names from a use_refs declaration: a function returning a list or
-- a set, or a list or a set itself.
local function field_set(decl, v)
  if type(decl) == "function" then
    local ok, r = pcall(decl, v)
    if not ok then errors.raise("handler_error", "use_refs failed: %s", tostring(r)) end
    decl = r
  end
  if decl == nil then return nil end
  if type(decl) ~= "table" then
    errors.raise("handler_error", "use_refs must give a list or set of field names")
  end
  local set = {}
  for k, x in pairs(decl) do
    if type(k) == "number" and type(x) == "string" then set[x] = true
    elseif type(k) == "string" and x then set[k] = true end
  end
  return next(set) and set or nil
end

local function policy_refs(v)
  for _, policy in ipairs(policies) do
    local set = field_set(policy.use_refs, v)
    if set then return set end
  end
end

-- The encoder's hook: class instances, handler values, ref fields.
local function hook(v)
  for _, h in ipairs(handlers) do
    local ok, eligible = pcall(h.is_eligible_for, v)
    if not ok then
      errors.raise("handler_error", "handler '%s' is_eligible_for failed: %s", h.tag, tostring(eligible))
    end
    if eligible then return "special", h.tag, h end
  end
  local mt = getmetatable(v)
  if mt ~= nil then
    local name = type(v) == "table" and name_by_class[mt]
    if not name then return nil end
    local decl = rawget(mt, "use_refs")
    if decl == nil then
      local idx = rawget(mt, "__index")
      if type(idx) == "table" then decl = rawget(idx, "use_refs") end
    end
    local set = decl ~= nil and field_set(decl, v) or policy_refs(v)
    return "object", name, set
  end
  if #policies > 0 then
    local set = policy_refs(v)
    if set then return "plain", set end
  end
  return nil
end

-- Bumped by every registry change, so that cached contexts are rebuilt.
serializer.version = 0
function serializer.changed() serializer.version = serializer.version + 1 end

--- Builds the codec context for one store (refs go to its ROOT/refs).
-- Before each use the caller sets ctx.pending = {} (refs to write once the
-- whole encode succeeded, so that a failed save writes nothing) and
-- ctx.root (the name used in error paths).
function serializer.context(store)
  local ctx = { classes = class_by_name, root = "value", version = serializer.version }
  ctx.hook_all = #handlers > 0 or #policies > 0
  ctx.hook = function(v)
    local kind, a, b = hook(v)
    if kind == "special" then
      local h = b
      if h.serialize_to_bytes then
        local ok, bytes = pcall(h.serialize_to_bytes, v)
        if not ok then errors.raise("handler_error", "handler '%s' failed: %s", h.tag, tostring(bytes)) end
        if type(bytes) ~= "string" then
          errors.raise("handler_error", "handler '%s' serialize_to_bytes must return a string", h.tag)
        end
        local digest = core.sha256(bytes)
        if ctx.pending then ctx.pending[digest] = bytes end
        return "special", h.tag, { __digest__ = digest }
      end
      local ok, payload = pcall(h.serialize, v)
      if not ok then errors.raise("handler_error", "handler '%s' failed: %s", h.tag, tostring(payload)) end
      return "special", h.tag, payload
    end
    return kind, a, b
  end
  ctx.ref_save = function(v)
    local sub = serializer.context(store)
    sub.pending, sub.root = ctx.pending, ctx.root
    local bytes = core.encode(v, sub)
    local digest = core.sha256(bytes)
    if ctx.pending then ctx.pending[digest] = bytes end
    return digest
  end
  ctx.special = function(tag, payload)
    local h = handler_by_tag[tag]
    if not h then errors.raise("unknown_tag", "no handler registered for tag '%s'", tag) end
    if h.deserialize_from_bytes then
      local digest = type(payload) == "table" and payload.__digest__
      if not core.digest_valid(digest) then
        errors.raise("corrupt", "value of tag '%s' has no valid __digest__", tag)
      end
      local bytes = store:read(nil, digest)
      local ok, v = pcall(h.deserialize_from_bytes, bytes)
      if not ok then errors.raise("handler_error", "handler '%s' failed: %s", tag, tostring(v)) end
      return v
    end
    local ok, v = pcall(h.deserialize, payload)
    if not ok then errors.raise("handler_error", "handler '%s' failed: %s", tag, tostring(v)) end
    return v
  end
  ctx.ref_load = function(digest)
    if not core.digest_valid(digest) then errors.raise("corrupt", "bad __ref__ digest") end
    return core.decode(store:read(nil, digest), ctx)
  end
  return ctx
end

serializer.encode = core.encode
serializer.decode = core.decode
serializer.decode_snapshot = core.decode_snapshot

return serializer
