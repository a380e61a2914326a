--- mydb.colinfo: what a collection snapshot says of itself - count, root
-- piece, TTL field, indexes - parsed once per snapshot and remembered per
-- handle (snapshots are immutable), and the tree handle to read it.
local core = require "mydb.core"
local errors = require "mydb.errors"
local collection = require "mydb.collection"
local write = require "mydb.write"

local raise = errors.raise

local colinfo = {}

local MEMO_MAX = 256

-- Checks the fields of a parsed collection snapshot (corrupt if bad).
local function check_info(info, digest)
  if (info.ttl ~= nil and type(info.ttl) ~= "string") or type(info.indexes) ~= "table"
      or (info.resolver ~= nil and type(info.resolver) ~= "string") then
    raise("corrupt", "collection snapshot %s has a bad ttl, resolver or indexes field", digest)
  end
  for name, ix in pairs(info.indexes) do
    if type(ix) ~= "table" or math.type(ix.count) ~= "integer"
        or (ix.root ~= nil and not core.digest_valid(ix.root)) then
      raise("corrupt", "collection snapshot %s has a bad index '%s'", digest, tostring(name))
    end
  end
end

--- {count=, root=digest, node=, root_bytes=, ttl=, resolver=, indexes=} of the
-- collection snapshot digest of entry (type_mismatch on a snapshot entry).
function colinfo.get(db, tenant, entry, digest)
  local info = colinfo.known(db, tenant, digest)
  if info then return info end
  local bytes = db._store:read(tenant, digest)
  if not write.is_collection(bytes) then
    core.decode_snapshot(bytes, nil, true) -- garbage is corrupt, not a mismatch
    if db:_head(tenant, entry) ~= digest then -- a digest the caller gave: say what it is
      errors.raise("type_mismatch", "version %s is a snapshot version, not a version of a collection "
        .. "(read it with load)", digest)
    end
    write.mismatch(entry, false)
  end
  local count, root, node, extra, root_bytes = collection.parse_root(bytes, "root of " .. digest)
  info = { count = count, root = root, node = node, root_bytes = root_bytes, ttl = extra.ttl,
           resolver = extra.resolver, indexes = extra.indexes or {} }
  check_info(info, digest)
  colinfo.remember(db, tenant, digest, info)
  return info
end

--- Remembers the info of a snapshot this handle just wrote (mydb.write
-- built it: nothing to parse).
-- (db._colinfo maps tenant -> digest -> info: a look-up builds no
-- "tenant/digest" string)
function colinfo.remember(db, tenant, digest, info)
  if db._colcount > MEMO_MAX then db._colinfo, db._colcount = {}, 0 end
  local m = db._colinfo[tenant]
  if not m then m = {}; db._colinfo[tenant] = m end
  m[digest], db._colcount = info, db._colcount + 1
end

--- The info remembered for tenant's snapshot digest, or nil.
function colinfo.known(db, tenant, digest)
  local m = db._colinfo[tenant]
  return m and m[digest]
end

--- Forgets what was remembered (after a gc, say).
function colinfo.reset(db) db._colinfo, db._colcount = {}, 0 end

--- A tree handle on the collection (info nil: an empty one).
function colinfo.tree(db, tenant, info)
  return collection.tree(db._store, tenant, db._nodes, info and info.root, info and info.node,
    info and info.root_bytes)
end

local KEEP_TREES = 256

--- The tree handle a write to entry updates and flushes. Kept per tenant
-- and entry when the snapshot embeds no root piece (the root is stored, or
-- there is none): its C session is made once, not per put. One handle per
-- entry, never shared by two entries: a commit updates each of its entries
-- before it flushes any, and a flush drops its handle's other pending
-- pieces.
function colinfo.write_tree(db, tenant, entry, info)
  local bytes = info and info.root_bytes
  if bytes ~= nil and bytes:byte(1) ~= 34 then return colinfo.tree(db, tenant, info) end -- '"'
  local kept = db._write_trees
  if not kept or kept.count >= KEEP_TREES then kept = { count = 0 }; db._write_trees = kept end
  local per = kept[tenant]
  if not per then per = {}; kept[tenant] = per end
  local t = collection.kept_tree(per[entry], db._store, tenant, db._nodes)
  if t ~= per[entry] then per[entry], kept.count = t, kept.count + 1 end
  return t
end

return colinfo
