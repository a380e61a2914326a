-- fuzz/seeds.lua - writes the seed corpora of the fuzz targets from a real
-- store: every object (snapshots of many value shapes, collection
-- snapshots, leaf and inner pieces, refs) for "codec", head journals for
-- "head", a few programs for "api". Run from the repository root after
-- `make`:  lua5.4 fuzz/seeds.lua  (LUA_PATH/LUA_CPATH as `make` exports
-- them). Seeds are named by the SHA-256 of their bytes, so re-running adds
-- nothing twice.
local mydb = require "mydb"
local core = require "mydb.core"

local function sh(cmd) assert(os.execute(cmd), cmd) end
local function write(dir, bytes)
  sh("mkdir -p " .. dir)
  local f = assert(io.open(dir .. "/" .. core.sha256(bytes):sub(1, 16), "wb"))
  f:write(bytes)
  f:close()
end
local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local tmp = os.tmpname()
os.remove(tmp)
local root = tmp .. "/db"
local db = mydb.open(root, { fsync = false })
db:init("t")

-- snapshots of many shapes
local shared = { 1, 2 }
local cyc = { name = "cycle" }
cyc.self = cyc
local Point = { __index = {} }
mydb.register_class("Point", Point)
local Report = { use_refs = { "rows" } }
mydb.register_class("Report", Report)
local values = {
  { theme = "dark", lang = "en" }, {}, { 1, 2, 3 }, "text", "bytes\0\255", 42, -0.0, 1.5e300,
  math.huge, -math.huge, 0 / 0, true, false, { [1] = "a", [3] = "c" }, { [true] = 1, [2.5] = 2, x = 3 },
  { a = shared, b = shared }, cyc, setmetatable({ x = 1, y = 2 }, Point),
  setmetatable({ title = "r", rows = { 1, 2, 3 } }, Report), { __weird = 1, ok = 2 },
  { nested = { deeper = { deepest = { "x" } } } }, math.mininteger, math.maxinteger, 5e-324,
  { ["é"] = "ü", ["\255"] = "bad utf8 key" },
}
for i, v in ipairs(values) do db:save("t", "u", "doc" .. i, v) end
pcall(function()
  local date = require "mydb.handlers.date"
  mydb.handlers.register(date)
  db:save("t", "u", "dated", { when = date.new and date.new(2024, 1, 2) or nil })
end)

-- collections: small (embedded root), large (stored leaves and nodes)
db:put("t", "u", "small", "k1", { v = 1 })
db:put("t", "u", "small", "k2", "two")
local items = {}
for i = 1, 3000 do items[("key%04d"):format(i)] = { i = i, s = ("x"):rep(i % 7) } end -- stored inner pieces
db:put_many("t", "u", "big", items)
db:put("t", "u", "big", "key0150", { changed = true })

for _, name in ipairs(db._store:objects("t")) do
  write("fuzz/corpus/codec", read(("%s/t/objects/%s/%s"):format(root, name:sub(1, 24), name)))
end
for _, name in ipairs(db._store:objects(nil)) do
  write("fuzz/corpus/codec", read(("%s/refs/%s/%s"):format(root, name:sub(1, 24), name)))
end
for _, s in ipairs({ '{"__id__":0}', '[{"__float__":"nan"},{"__bytes__":"AAE="}]',
  '{"__map__":[[1,2],[true,3]],"__object__":"Point"}', '{"__special__":"T","__value__":[1]}',
  '{"__digest__":"' .. ("a"):rep(64) .. '","__special__":"R"}', '{"__ref__":"' .. ("b"):rep(64) .. '"}',
  '{"leaf":[["a",1],["b",{"x":[1,2]}]]}', '{"node":[["a","' .. ("c"):rep(64) .. '",3]]}' }) do
  write("fuzz/corpus/codec", s)
end
write("fuzz/corpus/codec", (core.node_piece({ "a", "b\0" }, { ("c"):rep(64), ("d"):rep(64) }, { 3, 300 })))

-- head journals: the first byte of a head seed chooses where the input is
-- cut in two (fuzz/fuzz_head.c)
local head = read(root .. "/t/head")
for _, cut in ipairs({ 0, 128, 255 }) do write("fuzz/corpus/head", string.char(cut) .. head) end
write("fuzz/corpus/head", "\128" .. '{"mydb_head":1}\n[["a","' .. ("d"):rep(64) .. '"],["b",null]]\n[["c"')
write("fuzz/corpus/head", "\200" .. '{"mydb_head":1}\n[]\n[["\\u00e9\\n","' .. ("e"):rep(64) .. '"]]\n')

-- api programs: opcode, then arguments (length byte + bytes)
local function arg(s) return string.char(#s) .. s end
local progs = {
  "\0" .. arg("acme") .. "\2" .. arg("acme") .. arg("hello") .. "\3" .. arg("acme") .. arg(""),
  "\2" .. arg("R") .. arg("shared") .. "\4" .. arg("R") .. arg("") .. "\10" .. arg("R"),
  "\7" .. arg("") .. arg("entry") .. arg("") .. "\5" .. arg("") .. arg("entry") .. "\6" .. arg(""),
  "\0" .. arg("../escape") .. "\0" .. arg("a/b") .. "\0" .. arg("refs") .. "\0" .. arg(".tmp"),
  "\7" .. arg("") .. arg("e\0x") .. arg("") .. "\8" .. arg("") .. arg("e") .. arg(""),
  "\11" .. arg(("f"):rep(64)) .. "\9" .. arg("") .. "\1" .. arg("u"),
}
for _, p in ipairs(progs) do write("fuzz/corpus/api", p) end

db:close()
sh("rm -rf " .. tmp)
print("seeds written")
