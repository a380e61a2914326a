/*
 * preload.c - makes `require "mydb..."` work with no file installed.
 *
 * Following linit.c's LUA_PRELOAD_TABLE recipe, mydb.core (linked in) and
 * every embedded Lua module get a loader in package.preload. The preload
 * searcher runs before the path searchers, so the embedded copies win over
 * any mydb module found through LUA_PATH/LUA_CPATH: mydb-lua always runs
 * the mydb it was built with. To try other sources, set
 * package.preload["mydb"] = nil (and friends) before requiring them.
 */
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "cli.h"

int luaopen_mydb_core(lua_State *L); /* src/lua/lmydb.c */

/* Loader of one embedded module: upvalue 1 is its index in cli_modules. */
static int embedded_loader(lua_State *L) {
  const cli_module *m = &cli_modules[lua_tointeger(L, lua_upvalueindex(1))];
  if (luaL_loadbuffer(L, (const char *)m->src, m->len, m->chunkname) != LUA_OK)
    return lua_error(L);
  lua_pushvalue(L, 1);                 /* module name */
  lua_pushstring(L, m->chunkname + 1); /* "file name", as the searchers pass */
  lua_call(L, 2, 1);
  return 1;
}

static int l_complete(lua_State *L) {
  cli_complete_push(L, luaL_checkstring(L, 1));
  return 1;
}

/* mydb.cli.native: the C helpers mydb.cli (src/cli/cli.lua) needs. */
static int luaopen_native(lua_State *L) {
  static const luaL_Reg fns[] = {{"pretty", cli_l_pretty}, {"complete", l_complete}, {NULL, NULL}};
  luaL_newlib(L, fns);
  return 1;
}

void cli_preload(lua_State *L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_mydb_core);
  lua_setfield(L, -2, "mydb.core");
  lua_pushcfunction(L, luaopen_native);
  lua_setfield(L, -2, "mydb.cli.native");
  for (lua_Integer i = 0; cli_modules[i].name != NULL; i++) {
    lua_pushinteger(L, i);
    lua_pushcclosure(L, embedded_loader, 1);
    lua_setfield(L, -2, cli_modules[i].name);
  }
  lua_pop(L, 1);
}
