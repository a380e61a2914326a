/*
 * fuzz_codec.c - libFuzzer target: the stored-value decoders of mydb.core
 * (src/lua/lcodec.c) on arbitrary bytes, through an embedded Lua state.
 *
 * Every input goes through core.decode (without and with a context of
 * classes, handlers and refs), core.decode_snapshot (full and meta only),
 * core.decode_into, core.leaf_split, core.node_split and core.collection_root. Oracles:
 *   - nothing crashes, leaks or trips ASan/UBSan;
 *   - a failure is a mydb error value whose code is documented for damaged
 *     data (corrupt, unknown_tag), never a bare Lua error;
 *   - a value that decodes re-encodes, and its encoding is canonical:
 *     decode(encode(v)) encodes to the same bytes again;
 *   - leaf_split gives as many keys as values, every value a valid JSON
 *     document that decodes.
 */
#include "fuzz_lua.h"

static const char driver[] =
    "local core = ...\n"
    "local OK = { corrupt = true, unknown_tag = true }\n"
    "local function bug(fmt, ...) error('FUZZ-BUG: ' .. fmt:format(...), 0) end\n"
    "local function expect_fail(what, ok, err)\n"
    "  if ok then return true end\n"
    "  if type(err) ~= 'table' or getmetatable(err) ~= core.error_mt then\n"
    "    bug('%s raised a non-mydb error: %s', what, tostring(err))\n"
    "  end\n"
    "  if not OK[err.code] then bug('%s raised %s', what, tostring(err)) end\n"
    "  return false\n"
    "end\n"
    "local Point = { __name = 'Point' }\n"
    "local ctx = {\n"
    "  classes = { Point = Point },\n"
    "  special = function(tag, payload) return { tag = tag, payload = payload } end,\n"
    "  ref_load = function(digest) return 'ref:' .. digest end,\n"
    "}\n"
    "-- an encoding is canonical: decoding and encoding it again gives it back\n"
    "local function canonical(what, v)\n"
    "  local ok, bytes = pcall(core.encode, v)\n"
    "  if not ok then\n"
    "    if type(bytes) == 'table' and bytes.code == 'unsupported_value'\n"
    "        and tostring(bytes.message):find('nesting deeper', 1, true) then return end\n"
    "    bug('%s: a decoded value does not encode: %s', what, tostring(bytes))\n"
    "  end\n"
    "  local ok2, v2 = pcall(core.decode, bytes)\n"
    "  if not ok2 then bug('%s: decode(encode(v)) failed: %s on %q', what, tostring(v2), bytes) end\n"
    "  local ok3, bytes2 = pcall(core.encode, v2)\n"
    "  if not ok3 or bytes2 ~= bytes then\n"
    "    bug('%s: encoding not canonical: %q then %q', what, bytes, tostring(bytes2))\n"
    "  end\n"
    "end\n"
    "return function(data)\n"
    "  local ok, v = pcall(core.decode, data)\n"
    "  if expect_fail('decode', ok, v) then canonical('decode', v) end\n"
    "  expect_fail('decode ctx', pcall(core.decode, data, ctx))\n"
    "  local ok1, v1, meta = pcall(core.decode_snapshot, data)\n"
    "  if expect_fail('decode_snapshot', ok1, v1) then\n"
    "    if type(meta) ~= 'table' or type(meta.user_id) ~= 'string' or type(meta.date) ~= 'string' then\n"
    "      bug('decode_snapshot: bad meta')\n"
    "    end\n"
    "    canonical('decode_snapshot', v1)\n"
    "  end\n"
    "  expect_fail('decode_snapshot ctx', pcall(core.decode_snapshot, data, ctx))\n"
    "  expect_fail('decode_snapshot meta', pcall(core.decode_snapshot, data, nil, true))\n"
    "  expect_fail('decode_into', pcall(core.decode_into, { data, data }, {}, ctx))\n"
    "  local ok4, keys, vals = pcall(core.leaf_split, data)\n"
    "  if expect_fail('leaf_split', ok4, keys) then\n"
    "    if #keys ~= #vals then bug('leaf_split: %d keys, %d values', #keys, #vals) end\n"
    "    for i = 1, #vals do\n"
    "      if type(keys[i]) ~= 'string' then bug('leaf_split: key %d is a %s', i, type(keys[i])) end\n"
    "      expect_fail('leaf value', pcall(core.decode, vals[i], ctx))\n"
    "    end\n"
    "    local okd, out = pcall(core.decode_into, vals, {}, ctx)\n"
    "    if expect_fail('decode_into leaf', okd, out) and #out ~= #vals then\n"
    "      bug('decode_into: %d values for %d raws', #out, #vals)\n"
    "    end\n"
    "  end\n"
    "  local ok6, nk, nd, nc = pcall(core.node_split, data)\n"
    "  if expect_fail('node_split', ok6, nk) then\n"
    "    if #nk == 0 or #nk ~= #nd or #nk ~= #nc then bug('node_split: %d/%d/%d', #nk, #nd, #nc) end\n"
    "    local okp, again = pcall(core.node_piece, nk, nd, nc)\n"
    "    if not okp then bug('node_piece refused what node_split read: %s', tostring(again)) end\n"
    "    if again ~= data then bug('node_split/node_piece do not round-trip') end\n"
    "  end\n"
    "  local ok5, count, root, extra, ref = pcall(core.collection_root, data)\n"
    "  if expect_fail('collection_root', ok5, count) then\n"
    "    if math.type(count) ~= 'integer' or count < 0 then bug('collection_root: bad count') end\n"
    "    if root ~= nil then\n"
    "      if type(root) ~= 'string' or root:sub(1, 1) ~= '{' then bug('collection_root: bad root') end\n"
    "      expect_fail('root piece', pcall(core.leaf_split, root))\n"
    "      expect_fail('root piece decode', pcall(core.decode, root))\n"
    "    end\n"
    "    if type(extra) ~= 'table' then bug('collection_root: extra is a %s', type(extra)) end\n"
    "    if ref ~= nil and (root ~= nil or not core.digest_valid(ref)) then bug('collection_root: bad root digest') end\n"
    "  end\n"
    "end\n";

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_lua_init(driver, sizeof driver - 1, "=fuzz_codec");
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_lua_run(data, size, 0);
  return 0;
}
