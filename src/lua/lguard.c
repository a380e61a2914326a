/*
 * lguard.c - what C holds across a Lua call that may raise, owned by a Lua
 * userdata so that a raise (a memory error while pushing a result) frees it
 * through __gc: a byte buffer, and a blob.
 *
 * The rule of the binding: while the core holds resources of its own
 * (directory streams, mutexes, arrays), nothing may raise, so callbacks
 * from the core only append to such a buffer (plain malloc, no Lua); the
 * results are pushed after the core returned.
 */
#include <lauxlib.h>
#include <lua.h>

#include "buf.h"
#include "lmydb.h"
#include "mydb.h"

#define BUF_MT "mydb.guard.buf"
#define BLOB_MT "mydb.guard.blob"

static int buf_gc(lua_State *L) {
  lmydb_buf_done(luaL_checkudata(L, 1, BUF_MT));
  return 0;
}

static int blob_gc(lua_State *L) {
  lmydb_blob_done(luaL_checkudata(L, 1, BLOB_MT));
  return 0;
}

mydb_buf *lmydb_buf_new(lua_State *L) {
  mydb_buf *b = lua_newuserdatauv(L, sizeof *b, 0);
  *b = (mydb_buf)MYDB_BUF_INIT;
  luaL_setmetatable(L, BUF_MT);
  return b;
}

void lmydb_buf_done(mydb_buf *b) {
  mydb_buf_free(b);
  *b = (mydb_buf)MYDB_BUF_INIT;
}

mydb_blob **lmydb_blob_slot(lua_State *L) {
  mydb_blob **slot = lua_newuserdatauv(L, sizeof *slot, 0);
  *slot = NULL;
  luaL_setmetatable(L, BLOB_MT);
  return slot;
}

void lmydb_blob_done(mydb_blob **slot) {
  mydb_blob_release(*slot);
  *slot = NULL;
}

void lmydb_open_guards(lua_State *L) {
  luaL_newmetatable(L, BUF_MT);
  lua_pushcfunction(L, buf_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaL_newmetatable(L, BLOB_MT);
  lua_pushcfunction(L, blob_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
}
