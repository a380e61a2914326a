/*
 * setup.c - what mydb-lua does before the first chunk: handler modules,
 * the store (--db/--tenant), and the inspection commands.
 *
 * The work in Lua lives in the embedded module mydb.cli (src/cli/cli.lua);
 * this file lists directories (which plain Lua cannot) and turns results
 * into exit statuses.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <lauxlib.h>
#include <lua.h>

#include "cli.h"

int cli_call(lua_State *L, const char *name, int narg, int nres) {
  int status;
  lua_getglobal(L, "require");
  lua_pushliteral(L, "mydb.cli");
  status = cli_docall(L, 1, 1);
  if (status != LUA_OK) { /* drop the arguments, keep the error on top */
    lua_insert(L, -1 - narg);
    lua_pop(L, narg);
    return status;
  }
  lua_getfield(L, -1, name);
  lua_remove(L, -2);
  lua_insert(L, -1 - narg);
  return cli_docall(L, narg, nres);
}

static int cmp_names(const void *x, const void *y) {
  return strcmp(*(char *const *)x, *(char *const *)y);
}

static int ends_with_lua(const char *name) {
  size_t n = strlen(name);
  return n > 4 && name[0] != '.' && strcmp(name + n - 4, ".lua") == 0;
}

/* Pushes the sorted list of the DIR/NAME.lua paths, or nil and a message. */
static int l_list_lua(lua_State *L) {
  const char *dir = luaL_checkstring(L, 1);
  DIR *d = opendir(dir);
  if (d == NULL) {
    luaL_pushfail(L);
    lua_pushfstring(L, "cannot open handler directory %s: %s", dir, strerror(errno));
    return 2;
  }
  lua_newtable(L); /* names, in a Lua table so that an error cannot leak them */
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (!ends_with_lua(e->d_name)) continue;
    lua_pushstring(L, e->d_name);
    lua_rawseti(L, -2, ++n);
  }
  closedir(d);
  /* sort through C strings owned by the table (alive while it is) */
  const char **names = lua_newuserdatauv(L, sizeof(char *) * (size_t)(n + 1), 0);
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, -2, i);
    names[i - 1] = lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  qsort(names, (size_t)n, sizeof *names, cmp_names);
  lua_createtable(L, n, 0);
  size_t dl = strlen(dir);
  int slash = dl > 0 && dir[dl - 1] == '/';
  for (int i = 0; i < n; i++) {
    lua_pushfstring(L, "%s%s%s", dir, slash ? "" : "/", names[i]);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* Runs every handler module of dir; LUA_OK or an (already reported) error. */
static int load_dir(lua_State *L, const char *dir) {
  lua_pushcfunction(L, l_list_lua);
  lua_pushstring(L, dir);
  lua_call(L, 1, 2);
  if (lua_isnil(L, -2)) {
    cli_message(cli_progname, lua_tostring(L, -1));
    lua_pop(L, 2);
    return LUA_ERRFILE;
  }
  lua_pop(L, 1);
  lua_Integer n = luaL_len(L, -1);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i);
    const char *path = lua_tostring(L, -1);
    lua_pushvalue(L, -1);
    int status = cli_call(L, "load_handler", 1, 0);
    if (status != LUA_OK) {
      const char *msg = lua_tostring(L, -1);
      fprintf(stderr, "%s: handler module %s failed to load: %s\n", cli_progname, path,
              msg ? msg : "(error object is not a string)");
      fflush(stderr);
      lua_pop(L, 3);
      return status;
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return LUA_OK;
}

/* MYDB_HANDLERS: ';'-separated directories; empty items are skipped. */
static int load_env_dirs(lua_State *L, const char *list) {
  while (*list) {
    const char *end = strchr(list, ';');
    size_t len = end ? (size_t)(end - list) : strlen(list);
    if (len > 0) {
      lua_pushlstring(L, list, len); /* keeps the copy alive */
      int status = load_dir(L, lua_tostring(L, -1));
      lua_pop(L, 1);
      if (status != LUA_OK) return status;
    }
    list += len;
    if (*list == ';') list++;
  }
  return LUA_OK;
}

int cli_setup(lua_State *L, const cli_args *a) {
  int status;
  if (!(a->flags & CLI_HAS_NOENV)) {
    const char *env = getenv("MYDB_HANDLERS");
    if (env && (status = load_env_dirs(L, env)) != LUA_OK) return status;
  }
  for (int i = 0; i < a->nhandler_dirs; i++)
    if ((status = load_dir(L, a->handler_dirs[i])) != LUA_OK) return status;
  if (a->db == NULL) return LUA_OK;
  /* --db never creates a store, for a script, the prompt or an inspection
   * command alike (cli.bind opens with create = false) */
  lua_pushstring(L, a->db);
  if (a->tenant)
    lua_pushstring(L, a->tenant);
  else
    lua_pushnil(L);
  /* bind returns nil, or the message for a root that holds no store */
  status = cli_report(L, cli_call(L, "bind", 2, 1));
  if (status != LUA_OK) return status;
  if (lua_type(L, -1) == LUA_TSTRING) {
    fprintf(stderr, "%s: %s\n", cli_progname, lua_tostring(L, -1));
    fflush(stderr);
    lua_pop(L, 1);
    return LUA_ERRFILE;
  }
  lua_pop(L, 1);
  return LUA_OK;
}

int cli_command_run(lua_State *L, const cli_args *a) {
  static const char *const names[] = {NULL, NULL, "tenants", "entries", "log", "show", "verify",
                                      "copy", "clone", "fetch", "push"};
  lua_pushstring(L, names[a->cmd]);
  for (int i = 0; i < 3; i++) {
    if (i < a->ncmd_args)
      lua_pushstring(L, a->cmd_args[i]);
    else if (i == 2 && (a->cmd == CLI_CMD_COPY || a->cmd == CLI_CMD_CLONE) && a->backend)
      lua_pushstring(L, a->backend); /* copy, clone: SRC DST BACKEND */
    else
      lua_pushnil(L);
  }
  if (a->limit > 0)
    lua_pushinteger(L, (lua_Integer)a->limit);
  else
    lua_pushnil(L);
  /* -> status [, message]: user errors (not_found, ...) come back as a
   * message, printed without a traceback; a bug in mydb.cli raises. */
  int status = cli_call(L, "command", 5, 2);
  fflush(stdout);
  if (status != LUA_OK) {
    cli_report(L, status);
    return EXIT_FAILURE;
  }
  int code = (int)lua_tointeger(L, -2);
  if (lua_isstring(L, -1)) cli_message(cli_progname, lua_tostring(L, -1));
  lua_pop(L, 2);
  return code;
}
