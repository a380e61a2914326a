/*
 * lerror.c - mydb error values ({code, message}, metatable mydb.error) as
 * the binding's C files raise them.
 */
#include <stdarg.h>
#include <stdio.h>

#include <lauxlib.h>
#include <lua.h>

#include "lmydb.h"

void lmydb_push_error(lua_State *L, const char *code, const char *msg) {
  lua_createtable(L, 0, 2);
  lua_pushstring(L, code);
  lua_setfield(L, -2, "code");
  lua_pushstring(L, msg);
  lua_setfield(L, -2, "message");
  luaL_setmetatable(L, LMYDB_ERROR_MT);
}

int lmydb_error(lua_State *L, const char *code, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  lmydb_push_error(L, code, msg);
  return lua_error(L);
}
