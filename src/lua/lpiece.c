/*
 * lpiece.c - the binary inner piece of a record collection and the
 * boundary hash of its chunker (doc/FORMAT.md, "Record collections").
 *
 *   core.node_piece(keys, digests, counts) -> bytes, digest, total
 *   core.node_split(bytes)                 -> keys, digests, counts
 *   core.chunk_hash(key)                   -> the first 8 bytes of
 *                                             SHA-256(key), big-endian
 *
 * An inner piece is MAGIC, then per child: varint key length, key, the
 * child's 32-byte digest, varint record count (LEB128, unsigned). Binary
 * because an inner piece is mostly digests: 32 bytes instead of 66 of JSON
 * hex, so a node holds twice the children and a put rewrites half the bytes
 * (doc/design/piece-format.md). Leaves stay JSON (readable, and 3% larger
 * at most). Inner pieces of the first piece format were JSON: lcodec.c
 * never writes them now, collection.lua still reads them.
 *
 * Scratch memory is a guarded buffer (lguard.c): a raise frees it.
 */
#include <stdint.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "buf.h"
#include "internal.h"
#include "lmydb.h"
#include "mydb.h"
#include "varint.h"

#define NODE_MAGIC "\0MN\1"
#define NODE_MAGIC_LEN 4

static void put_varint(mydb_buf *b, uint64_t v) {
  unsigned char tmp[MYDB_VARINT_MAX];
  mydb_buf_put(b, tmp, mydb__varint_put(tmp, v));
}

static int unhex32(unsigned char out[32], const char *s, size_t len) {
  if (!mydb_digest_valid(s, len)) return -1;
  mydb__unhex(out, s);
  return 0;
}

/* One entry of an inner piece being built: the key, the child's digest
 * (raw) and its record count. */
typedef struct node_item {
  const char *key;
  size_t klen;
  unsigned char digest[32];
  lua_Integer count;
} node_item;

/* Reads entry i of the tables keys, digests, counts at stack slots 1-3,
 * validated (invalid_argument; corrupt when the counts overflow), adding
 * its count to *total; leaves 3 values pushed for the caller to pop. */
static void node_entry(lua_State *L, lua_Integer i, node_item *it,
                       lua_Integer *total) {
  lua_rawgeti(L, 1, i);
  lua_rawgeti(L, 2, i);
  lua_rawgeti(L, 3, i);
  size_t dl = 0;
  it->key = lua_tolstring(L, -3, &it->klen);
  const char *hex = lua_tolstring(L, -2, &dl);
  if (!it->key || !hex || !lua_isinteger(L, -1) || unhex32(it->digest, hex, dl))
    lmydb_error(L, "invalid_argument", "node entry %d is malformed", (int)i);
  it->count = lua_tointeger(L, -1);
  if (it->count < 1)
    lmydb_error(L, "invalid_argument", "node entry %d counts no record", (int)i);
  /* counts come from stored pieces: a sum past the integer range is damage */
  if (it->count > LUA_MAXINTEGER - *total)
    lmydb_error(L, "corrupt", "node entry %d: record counts overflow", (int)i);
  *total += it->count;
}

static int l_node_piece(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_settop(L, 3);
  mydb_buf *out = lmydb_buf_new(L);
  lua_Integer n = (lua_Integer)lua_rawlen(L, 1), total = 0;
  if (n < 1) lmydb_error(L, "invalid_argument", "an inner piece needs a child");
  mydb_buf_put(out, NODE_MAGIC, NODE_MAGIC_LEN);
  for (lua_Integer i = 1; i <= n; i++) {
    node_item it;
    node_entry(L, i, &it, &total);
    put_varint(out, it.klen);
    mydb_buf_put(out, it.key, it.klen);
    mydb_buf_put(out, it.digest, 32);
    put_varint(out, (uint64_t)it.count);
    lua_pop(L, 3);
  }
  if (out->failed) lmydb_error(L, "out_of_memory", "out of memory building a piece");
  char digest[MYDB_DIGEST_BUF];
  if (mydb_sha256_hex(digest, out->data, out->len) != MYDB_OK)
    lmydb_error(L, "io", "%s", mydb_errmsg());
  lua_pushlstring(L, out->data, out->len);
  lua_pushlstring(L, digest, MYDB_DIGEST_HEX);
  lua_pushinteger(L, total);
  lmydb_buf_done(out);
  return 3;
}

/* 1 if bytes are a binary inner piece (by its magic). */
static int l_is_node_piece(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  lua_pushboolean(L, len >= NODE_MAGIC_LEN && memcmp(s, NODE_MAGIC, NODE_MAGIC_LEN) == 0);
  return 1;
}

static int l_node_split(lua_State *L) {
  size_t len;
  const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &len);
  const unsigned char *p = s + NODE_MAGIC_LEN, *end = s + len;
  if (len < NODE_MAGIC_LEN || memcmp(s, NODE_MAGIC, NODE_MAGIC_LEN) != 0)
    lmydb_error(L, "corrupt", "not an inner piece");
  if (p == end) lmydb_error(L, "corrupt", "inner piece without children");
  lua_settop(L, 1);
  lua_createtable(L, 16, 0);
  lua_createtable(L, 16, 0);
  lua_createtable(L, 16, 0);
  lua_Integer total = 0;
  for (lua_Integer i = 1; p < end; i++) {
    uint64_t kl = 0, c = 0;
    if (mydb__varint_get(&p, end, &kl) || kl > (uint64_t)(end - p))
      lmydb_error(L, "corrupt", "inner piece entry %d: bad key length", (int)i);
    lua_pushlstring(L, (const char *)p, (size_t)kl);
    lua_rawseti(L, 2, i);
    p += kl;
    if (end - p < 32) lmydb_error(L, "corrupt", "inner piece entry %d: short digest", (int)i);
    char hex[MYDB_DIGEST_BUF];
    mydb__hex(hex, p, 32);
    lua_pushlstring(L, hex, MYDB_DIGEST_HEX);
    lua_rawseti(L, 3, i);
    p += 32;
    if (mydb__varint_get(&p, end, &c) || c < 1 || c > (uint64_t)(LUA_MAXINTEGER - total))
      lmydb_error(L, "corrupt", "inner piece entry %d: bad record count", (int)i);
    total += (lua_Integer)c;
    lua_pushinteger(L, (lua_Integer)c);
    lua_rawseti(L, 4, i);
  }
  return 3;
}

static int l_chunk_hash(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  unsigned char md[32];
  if (mydb__sha256(md, s, len) != 0) lmydb_error(L, "io", "%s", mydb_errmsg());
  uint64_t h = 0;
  for (int i = 0; i < 8; i++) h = h << 8 | md[i];
  /* as a Lua integer: two's complement, as Lua's own wrap-around */
  lua_pushinteger(L, h > (uint64_t)LUA_MAXINTEGER ? -(lua_Integer)(~h) - 1
                                                   : (lua_Integer)h);
  return 1;
}

void lmydb_open_piece(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"node_piece", l_node_piece},
      {"node_split", l_node_split},
      {"is_node_piece", l_is_node_piece},
      {"chunk_hash", l_chunk_hash},
      {NULL, NULL}};
  luaL_setfuncs(L, fns, 0);
}
