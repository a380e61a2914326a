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

--- Registers a metatable under a name so that its instances can be stored
-- (as mydb.register_class); loading gives them their metatable back.
-- @param name the class name stored with instances (letters, digits, '_', '.', '-')
-- @param mt the metatable
-- @param opts nil or {replace=true} (replace an existing registration of name)
-- @return mt
-- @raise invalid_argument (bad or reserved name, a taken name or metatable)
-- @usage
-- local Point = {}
-- Point.__index = Point
-- mydb.register_class("Point", Point)
-- db:save("acme", "alice", "origin", setmetatable({ x = 0, y = 0 }, Point))
-- assert(getmetatable(db:load("acme", "origin")) == Point)
-- mydb.unregister_class("Point")
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

--- Removes a class registration (mydb.unregister_class); loading a stored
-- instance then raises unknown_tag until the class is registered again.
-- @param name the class name
-- @return true if it was registered
-- @raise nothing
-- @usage
-- mydb.register_class("Tmp", {})
-- assert(mydb.unregister_class("Tmp") == true)
-- assert(mydb.unregister_class("Tmp") == false)
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

-- The registries themselves: mydb.handlers and mydb.policies manage them
-- (with validation); the codec reads them. handlers holds normalized
-- entries {tag=, is_eligible_for=, serialize=, deserialize=} or {tag=,
-- is_eligible_for=, serialize_to_bytes=, deserialize_from_bytes=}, plus
-- source = the table that was registered.
serializer.handlers = handlers
serializer.handler_by_tag = handler_by_tag
serializer.policies = policies
serializer.check_name = check_name

--- True when f can be called: a function, or a value whose metatable has
-- a __call function.
function serializer.callable(f)
  if type(f) == "function" then return true end
  local mt = debug.getmetatable(f)
  return mt ~= nil and type(rawget(mt, "__call")) == "function"
end

-- A readable text for an error value raised by a handler: mydb errors and
-- values with __tostring through tostring, tables with a message field by
-- that message.
local function errtext(e)
  if type(e) == "string" then return e end
  if type(e) == "table" and not errors.is(e) then
    local mt = debug.getmetatable(e)
    if not (mt and mt.__tostring) and type(rawget(e, "message")) == "string" then return e.message end
  end
  local ok, s = pcall(tostring, e)
  return ok and s or type(e)
end
serializer.errtext = errtext

-- Calls handler h's function `what` on x; a failure becomes handler_error
-- naming the tag and carrying the handler's message.
local function call_handler(h, what, x)
  local ok, r = pcall(h[what], x)
  if not ok then
    errors.raise("handler_error", "handler '%s' %s failed: %s", h.tag, what, errtext(r))
  end
  return r
end

-- Field names from a use_refs declaration (who: "class 'X'", "policy 2"
-- for messages): a function returning a list or a set of names, or nil;
-- or a list or a set itself. Returns a set, or nil when it names none.
local function field_set(decl, v, who)
  if serializer.callable(decl) then
    local ok, r = pcall(decl, v)
    if not ok then errors.raise("handler_error", "use_refs of %s failed: %s", who, errtext(r)) end
    decl = r
  end
  if decl == nil or decl == false then return nil end
  if type(decl) ~= "table" then
    errors.raise("handler_error", "use_refs of %s must give a list or a set of field names, got %s",
      who, type(decl))
  end
  local set, any = {}, false
  for k, x in pairs(decl) do
    local name
    if math.type(k) == "integer" then name = x
    elseif x then name = k end
    if name ~= nil then
      if type(name) ~= "string" then
        errors.raise("handler_error", "use_refs of %s gave a field name that is a %s, not a string",
          who, type(name))
      end
      set[name], any = true, true
    end
  end
  return any and set or nil
end

local function policy_refs(v)
  for i, policy in ipairs(policies) do
    local who = type(policy.name) == "string" and ("policy '" .. policy.name .. "'") or ("policy " .. i)
    local set = field_set(policy.use_refs, v, who)
    if set then return set end
  end
end

-- A class's own use_refs declaration: in its metatable, or in the table
-- its __index names (so `function Class:use_refs()` works, inherited too).
local function class_use_refs(mt)
  local decl = rawget(mt, "use_refs")
  if decl == nil then
    local idx = rawget(mt, "__index")
    if type(idx) == "table" then decl = idx.use_refs end
  end
  return decl
end

-- What the encoder does with a table or userdata v (see core/lcodec.c):
-- the first eligible handler in registration order takes it; else a
-- registered class's instance is an object whose use_refs fields (its own
-- declaration, else the policies') go to refs; else a plain table whose
-- fields the policies may send to refs.
-- The first handler eligible for v, or nil; `asking` is the one being
-- asked, for the message when it raises. (One pcall for all handlers: this
-- runs for every table stored while any handler is registered.)
local asking
local function eligible_handler(v)
  for i = 1, #handlers do
    local h = handlers[i]
    asking = h
    if h.is_eligible_for(v) then return h end
  end
end

--- The registered handler (its source table) that would take v, or nil.
function serializer.handler_for(v)
  if handlers[1] == nil then return nil end
  local ok, h = pcall(eligible_handler, v)
  if not ok then
    errors.raise("handler_error", "handler '%s' is_eligible_for failed: %s", asking.tag, errtext(h))
  end
  return h and (h.source or h)
end

local function classify(v, use_policies)
  if handlers[1] ~= nil then
    local ok, h = pcall(eligible_handler, v)
    if not ok then
      errors.raise("handler_error", "handler '%s' is_eligible_for failed: %s", asking.tag, errtext(h))
    end
    if h then return "special", h.tag, h end
  end
  local mt = debug.getmetatable(v)
  if mt ~= nil then
    local name = type(v) == "table" and name_by_class[mt]
    if not name then return nil end
    local decl = class_use_refs(mt)
    local set
    if decl ~= nil then set = field_set(decl, v, "class '" .. name .. "'")
    elseif use_policies then set = policy_refs(v) end
    return "object", name, set
  end
  if use_policies and #policies > 0 then
    local set = policy_refs(v)
    if set then return "plain", set end
  end
  return nil
end

-- Bumped by every registry change, so that cached contexts are rebuilt.
serializer.version = 0
function serializer.changed() serializer.version = serializer.version + 1 end

-- The digest written by measuring contexts (same length as a real one).
local PLACEHOLDER_DIGEST = ("0"):rep(64)

--- Builds the codec context for one store (refs go to its ROOT/refs).
-- Before each use the caller gives it an empty ctx.pending (refs to write once the
-- whole encode succeeded, so that a failed save writes nothing) and
-- ctx.root (the name used in error paths: a string, or a function the
-- encoder calls only when it fails; mydb.encode.set_path).
-- opts (optional, encoding only, store may be nil):
--   no_policies = true  policies are not consulted (classes' own use_refs are)
--   measure = true      ref handlers and ref fields are not serialized: a
--                       placeholder digest stands for them (for sizes)
-- The encoder's hook: classifies v; a handler's value is serialized
-- (ref handlers: its bytes become a ref, named by their digest).
local function encode_hook(ctx, use_policies, measure)
  return function(v)
    local kind, a, h = classify(v, use_policies)
    if kind ~= "special" then return kind, a, h end
    if h.serialize_to_bytes then
      if measure then return "special", h.tag, { __digest__ = PLACEHOLDER_DIGEST } end
      local bytes = call_handler(h, "serialize_to_bytes", v)
      if type(bytes) ~= "string" then
        errors.raise("handler_error", "handler '%s' serialize_to_bytes must return a string, got %s",
          h.tag, type(bytes))
      end
      local digest = core.sha256(bytes)
      if ctx.pending then ctx.pending[digest] = bytes end
      return "special", h.tag, { __digest__ = digest }
    end
    local payload = call_handler(h, "serialize", v)
    if rawequal(payload, v) then
      errors.raise("handler_error", "handler '%s' serialize returned the value itself", h.tag)
    end
    return "special", h.tag, payload
  end
end

-- A use_refs field: its own canonical document in refs, with its own ids
-- (sharing with the rest of the value is not kept). A field that leads
-- back to itself could not be named by the digest of its own bytes.
local function ref_saver(ctx, measure)
  local in_refs = {} -- tables being encoded into refs now (cycle guard)
  return function(v)
    if measure then return PLACEHOLDER_DIGEST end
    local guard = type(v) == "table" or type(v) == "userdata"
    if guard then
      if in_refs[v] then
        errors.raise("unsupported_value", "a use_refs field leads back to itself (a cycle through refs)")
      end
      in_refs[v] = true
    end
    local ok, bytes = pcall(core.encode, v, ctx)
    if guard then in_refs[v] = nil end
    if not ok then error(bytes, 0) end
    local digest = core.sha256(bytes)
    if ctx.pending then ctx.pending[digest] = bytes end
    return digest
  end
end

-- The decoder's hook for a tagged value: its handler rebuilds it (ref
-- handlers from the ref's bytes).
local function special_loader(store)
  return function(tag, payload)
    local h = handler_by_tag[tag]
    if not h then
      errors.raise("unknown_tag", "no handler registered for tag '%s' (register one to load this value)", tag)
    end
    if h.deserialize_from_bytes then
      local digest = type(payload) == "table" and rawget(payload, "__digest__")
      if digest == nil then
        errors.raise("handler_error", "handler '%s' reads refs, but this value was stored inline", tag)
      end
      if not core.digest_valid(digest) then
        errors.raise("corrupt", "value of tag '%s' has no valid __digest__", tag)
      end
      return call_handler(h, "deserialize_from_bytes", store:read(nil, digest))
    end
    return call_handler(h, "deserialize", payload)
  end
end

function serializer.context(store, opts)
  local use_policies = not (opts and opts.no_policies)
  local measure = opts and opts.measure
  local ctx = { classes = class_by_name, root = "value", version = serializer.version }
  ctx.hook_all = #handlers > 0 or (use_policies and #policies > 0)
  ctx.hook = encode_hook(ctx, use_policies, measure)
  ctx.ref_save = ref_saver(ctx, measure)
  ctx.special = special_loader(store)
  ctx.ref_load = function(digest)
    if not core.digest_valid(digest) then errors.raise("corrupt", "bad __ref__ digest") end
    return core.decode(store:read(nil, digest), ctx)
  end
  return ctx
end

-- Encode-only contexts for canonical() and encoded_size(), rebuilt when a
-- registry changes.
local canon_ctx, measure_ctx

--- The canonical bytes of v as a value inside a document: classes,
-- handlers and classes' own use_refs applied (ref digests computed, nothing
-- written); policies are not consulted. Handler modules use it to order
-- members canonically (mydb.handlers.set).
function serializer.canonical(v)
  if not canon_ctx or canon_ctx.version ~= serializer.version then
    canon_ctx = serializer.context(nil, { no_policies = true })
  end
  canon_ctx.pending = nil
  return core.encode(v, canon_ctx)
end

--- The size in bytes of v's encoding inside a document, without running
-- ref handlers or writing anything (policies are not consulted: a policy
-- measuring fields would otherwise measure every level again).
function serializer.encoded_size(v)
  if not measure_ctx or measure_ctx.version ~= serializer.version then
    measure_ctx = serializer.context(nil, { no_policies = true, measure = true })
  end
  measure_ctx.pending = nil
  return #core.encode(v, measure_ctx)
end

serializer.encode = core.encode
serializer.decode = core.decode
serializer.decode_snapshot = core.decode_snapshot

return serializer
