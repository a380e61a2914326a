/*
 * fuzz_lua.h - the targets whose oracle is a Lua driver (codec, expr): a
 * Lua state with mydb.core, a driver chunk that returns the check
 * function, and one call of it per input.
 */
#ifndef MYDB_FUZZ_LUA_H
#define MYDB_FUZZ_LUA_H

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "fuzz_common.h"

int luaopen_mydb_core(lua_State *L);

static lua_State *fuzz_L;

/* Loads the driver (called with mydb.core) and keeps the function it
 * returns as the global fuzz_check. */
static inline void fuzz_lua_init(const char *driver, size_t len, const char *name) {
  fuzz_L = luaL_newstate();
  FUZZ_ASSERT(fuzz_L != NULL, "luaL_newstate");
  luaL_openlibs(fuzz_L);
  luaL_requiref(fuzz_L, "mydb.core", luaopen_mydb_core, 0);
  int rc = luaL_loadbuffer(fuzz_L, driver, len, name);
  FUZZ_ASSERT(rc == LUA_OK, "%s", lua_tostring(fuzz_L, -1));
  lua_insert(fuzz_L, -2); /* chunk, core */
  rc = lua_pcall(fuzz_L, 1, 1, 0);
  FUZZ_ASSERT(rc == LUA_OK, "%s", lua_tostring(fuzz_L, -1));
  lua_setglobal(fuzz_L, "fuzz_check");
  lua_settop(fuzz_L, 0);
}

/* fuzz_check(input): any error it raises fails the run. full_gc: collect
 * all garbage after it (else one step). */
static inline void fuzz_lua_run(const uint8_t *data, size_t size, int full_gc) {
  lua_getglobal(fuzz_L, "fuzz_check");
  lua_pushlstring(fuzz_L, (const char *)data, size);
  if (lua_pcall(fuzz_L, 1, 0, 0) != LUA_OK) {
    const char *msg = lua_tostring(fuzz_L, -1);
    FUZZ_ASSERT(0, "%s", msg ? msg : "(non-string error)");
  }
  FUZZ_ASSERT(lua_gettop(fuzz_L) == 0, "stack not balanced: %d", lua_gettop(fuzz_L));
  lua_gc(fuzz_L, full_gc ? LUA_GCCOLLECT : LUA_GCSTEP, 0);
}

#endif
