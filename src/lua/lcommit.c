/*
 * lcommit.c - a tenant commit's bytes and id in one call (doc/FORMAT.md,
 * "Commits and refs"; mydb.commits builds the commit table).
 *
 *   core.commit_bytes(c) -> bytes, id
 *   store:write_commit(tenant, c, base) -> id   (lmydb.c: built here, written
 *                                               there; no bytes to Lua)
 *
 * c is the commit table commits.make fills: date, entries {name = version
 * | false}, height, jump / jump_height / jump_time (written unless
 * jump_parent), message, parents {id, ...}, prev {name = id}, size, state,
 * time, user_id. The bytes are the canonical JSON core.encode(c) would give
 * (keys in byte order, empty fields left out), exactly what the Lua
 * builder wrote before: strings and numbers go through the codec
 * (lmydb_put_scalar), integers in decimal, digests between quotes as they
 * are (hex). Moving it here takes the per-commit key lists, their sort,
 * the closures and a dozen intermediate strings out of Lua, and hashes the
 * bytes without handing them back and forth.
 *
 * Scratch memory is guarded (lguard.c, a userdata for the key list): a
 * raise frees it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "buf.h"
#include "lmydb.h"
#include "mydb.h"

typedef struct {
  const char *s;
  size_t len;
} key_span;

/* Byte order, a prefix first: what Lua's < gives strings under the C
 * locale (mydb's entry names hold no NUL). */
static int key_cmp(const void *a, const void *b) {
  const key_span *x = a, *y = b;
  size_t n = x->len < y->len ? x->len : y->len;
  int c = memcmp(x->s, y->s, n);
  if (c) return c;
  return (x->len > y->len) - (x->len < y->len);
}

static void bad(lua_State *L, const char *field) {
  lmydb_error(L, "invalid_argument", "commit_bytes: bad field '%s'", field);
}

static void put_scalar(lua_State *L, int idx, mydb_buf *b, const char *field) {
  if (lmydb_put_scalar(L, idx, b) != 0) bad(L, field);
}

/* tostring(v) of a number field, as the Lua builder wrote it. */
static void put_tostring(lua_State *L, int idx, mydb_buf *b, const char *field) {
  if (lua_type(L, idx) != LUA_TNUMBER) bad(L, field);
  if (lua_isinteger(L, idx)) { /* (tostring's LUA_INTEGER_FMT, without a Lua string) */
    char num[32];
    int n = snprintf(num, sizeof num, LUA_INTEGER_FMT, (LUAI_UACINT)lua_tointeger(L, idx));
    mydb_buf_put(b, num, (size_t)n);
    return;
  }
  size_t len;
  const char *s = luaL_tolstring(L, idx, &len);
  mydb_buf_put(b, s, len);
  lua_pop(L, 1);
}

/* A digest between quotes (the Lua builder concatenated it: no escaping). */
static void put_quoted(lua_State *L, int idx, mydb_buf *b, const char *field) {
  if (lua_type(L, idx) != LUA_TSTRING) bad(L, field);
  size_t len;
  const char *s = lua_tolstring(L, idx, &len);
  mydb_buf_putc(b, '"');
  mydb_buf_put(b, s, len);
  mydb_buf_putc(b, '"');
}

/* The map at the top of the stack, {name = digest | false}, as a JSON
 * object, keys sorted. Leaves the stack as it was. */
static void put_map(lua_State *L, mydb_buf *b, const char *field) {
  int t = lua_gettop(L);
  size_t n = 0;
  lua_pushnil(L);
  while (lua_next(L, t)) {
    if (lua_type(L, -2) != LUA_TSTRING) bad(L, field);
    n++;
    lua_pop(L, 1);
  }
  key_span few[8]; /* (a commit names a few entries: no userdata) */
  key_span *keys = n <= 8 ? few : lua_newuserdatauv(L, n * sizeof *keys, 0);
  size_t i = 0;
  lua_pushnil(L);
  while (lua_next(L, t)) { /* the strings stay alive: the table holds them */
    keys[i].s = lua_tolstring(L, -2, &keys[i].len);
    i++;
    lua_pop(L, 1);
  }
  if (n > 1) qsort(keys, n, sizeof *keys, key_cmp);
  mydb_buf_putc(b, '{');
  for (i = 0; i < n; i++) {
    if (i) mydb_buf_putc(b, ',');
    lua_pushlstring(L, keys[i].s, keys[i].len);
    put_scalar(L, -1, b, field);
    mydb_buf_putc(b, ':');
    lua_rawget(L, t);
    if (lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1)) mydb_buf_puts(b, "false");
    else put_quoted(L, -1, b, field);
    lua_pop(L, 1);
  }
  mydb_buf_putc(b, '}');
  lua_settop(L, t);
}

/* Pushes c[field] (c at index c); returns whether it is truthy. */
static int field(lua_State *L, int c, const char *name) {
  lua_getfield(L, c, name);
  return lua_toboolean(L, -1);
}

void lmydb_commit_build(lua_State *L, int c, mydb_buf *b) {
  mydb_buf_puts(b, "{\"commit\":1,\"date\":");
  field(L, c, "date");
  put_scalar(L, -1, b, "date");
  lua_pop(L, 1);
  mydb_buf_puts(b, ",\"entries\":");
  if (lua_getfield(L, c, "entries") != LUA_TTABLE) bad(L, "entries");
  put_map(L, b, "entries");
  lua_pop(L, 1);
  mydb_buf_puts(b, ",\"height\":");
  field(L, c, "height");
  put_tostring(L, -1, b, "height");
  lua_pop(L, 1);
  int jump = field(L, c, "jump");
  int jump_parent = field(L, c, "jump_parent");
  lua_pop(L, 1);
  if (jump && !jump_parent) {
    mydb_buf_puts(b, ",\"jump\":");
    put_quoted(L, -1, b, "jump");
    mydb_buf_puts(b, ",\"jump_height\":");
    field(L, c, "jump_height");
    put_tostring(L, -1, b, "jump_height");
    mydb_buf_puts(b, ",\"jump_time\":");
    field(L, c, "jump_time");
    put_scalar(L, -1, b, "jump_time");
    lua_pop(L, 2);
  }
  lua_pop(L, 1);
  if (field(L, c, "message")) {
    mydb_buf_puts(b, ",\"message\":");
    put_scalar(L, -1, b, "message");
  }
  lua_pop(L, 1);
  if (field(L, c, "parents")) {
    if (!lua_istable(L, -1)) bad(L, "parents");
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    mydb_buf_puts(b, ",\"parents\":[\"");
    for (lua_Integer i = 1; i <= n; i++) { /* (table.concat's form: [""] if empty) */
      if (i > 1) mydb_buf_puts(b, "\",\"");
      if (lua_rawgeti(L, -1, i) != LUA_TSTRING) bad(L, "parents");
      size_t len;
      const char *s = lua_tolstring(L, -1, &len);
      mydb_buf_put(b, s, len);
      lua_pop(L, 1);
    }
    mydb_buf_puts(b, "\"]");
  }
  lua_pop(L, 1);
  if (field(L, c, "prev")) {
    if (!lua_istable(L, -1)) bad(L, "prev");
    lua_pushnil(L);
    if (lua_next(L, -2)) {
      lua_pop(L, 2);
      mydb_buf_puts(b, ",\"prev\":");
      put_map(L, b, "prev");
    }
  }
  lua_pop(L, 1);
  mydb_buf_puts(b, ",\"size\":");
  field(L, c, "size");
  put_tostring(L, -1, b, "size");
  lua_pop(L, 1);
  if (field(L, c, "state")) {
    mydb_buf_puts(b, ",\"state\":");
    put_quoted(L, -1, b, "state");
  }
  lua_pop(L, 1);
  mydb_buf_puts(b, ",\"time\":");
  field(L, c, "time");
  put_scalar(L, -1, b, "time");
  lua_pop(L, 1);
  mydb_buf_puts(b, ",\"user_id\":");
  field(L, c, "user_id");
  put_scalar(L, -1, b, "user_id");
  lua_pop(L, 1);
  mydb_buf_putc(b, '}');
  if (b->failed) lmydb_error(L, "out_of_memory", "out of memory building a commit");
}

static int l_commit_bytes(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  mydb_buf *b = lmydb_buf_new(L); /* index 2 */
  lmydb_commit_build(L, 1, b);
  char id[MYDB_DIGEST_BUF];
  if (mydb_sha256_hex(id, b->data, b->len) != MYDB_OK) lmydb_error(L, "io", "%s", mydb_errmsg());
  lua_pushlstring(L, b->data, b->len);
  lua_pushlstring(L, id, MYDB_DIGEST_HEX);
  lmydb_buf_done(b);
  return 2;
}

void lmydb_open_commit(lua_State *L) {
  lua_pushcfunction(L, l_commit_bytes);
  lua_setfield(L, -2, "commit_bytes");
}
