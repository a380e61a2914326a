/*
 * run.c - running Lua code for mydb-lua as lua.c does: protected calls
 * with a traceback, Ctrl-C as a Lua error, and messages on stderr.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "cli.h"

const char *cli_progname = CLI_PROGNAME;

/* ------------------------------------------------------------- messages */

void cli_message(const char *pname, const char *msg) {
  if (pname) fprintf(stderr, "%s: ", pname);
  fprintf(stderr, "%s\n", msg);
  fflush(stderr);
}

int cli_report(lua_State *L, int status) {
  if (status != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    if (msg == NULL) msg = "(error object is not a string)";
    cli_message(cli_progname, msg);
    lua_pop(L, 1);
  }
  return status;
}

/* Message handler: the message (through __tostring for error objects, such
 * as mydb's {code, message} values) plus a traceback. Unlike lua.c, error
 * objects with __tostring get the traceback too. */
/* True for the source of one of mydb's own Lua files: the rule of
 * errors.internal_source (lua/mydb/errors.lua), in C. */
static int ends_with_module(const char *src, const char *dir) {
  const char *p = strstr(src, dir);
  while (p) {
    const char *name = p + strlen(dir);
    size_t n = strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");
    if (n > 0 && strcmp(name + n, ".lua") == 0) return 1;
    p = strstr(p + 1, dir);
  }
  return 0;
}

static int internal_source(const char *src) {
  return ends_with_module(src, "mydb/") || ends_with_module(src, "mydb/handlers/") ||
         (strncmp(src, "@handlers/", 10) == 0 && ends_with_module(src, "@handlers/")) ||
         (strncmp(src, "@src/cli/", 9) == 0 && ends_with_module(src, "@src/cli/"));
}

/* The level of the first Lua function, from level 1 up, that is not
 * mydb's own (the caller of the API), with *found = 1. When there is none
 * (the caller made a tail call, as the prompt's "return expr" does): the
 * level above mydb's last frame, with *found = 0; 1 without mydb frames. */
static int caller_level(lua_State *L, lua_Debug *ar, int *found) {
  int after_internal = 1;
  *found = 0;
  for (int level = 1; lua_getstack(L, level, ar); level++) {
    lua_getinfo(L, "Sl", ar);
    if (strcmp(ar->what, "C") == 0) continue;
    if (!internal_source(ar->source)) {
      *found = 1;
      return level;
    }
    after_internal = level + 1;
  }
  return after_internal;
}

/* A mydb error value ({code = "...", ...} with __tostring) is shown as Lua
 * shows its own functions' errors: at the caller's line ("file:line: "
 * first), with the traceback from there; mydb's internal frames would
 * only hide the user's line. Anything else gets the whole traceback. */
static int msghandler(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  int level = 1;
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) {
      msg = lua_tostring(L, -1);
      int is_mydb = lua_type(L, 1) == LUA_TTABLE && lua_getfield(L, 1, "code") == LUA_TSTRING;
      if (lua_type(L, 1) == LUA_TTABLE) lua_pop(L, 1);
      lua_Debug ar;
      int found = 0;
      if (is_mydb) level = caller_level(L, &ar, &found);
      if (found) msg = lua_pushfstring(L, "%s:%d: %s", ar.short_src, ar.currentline, msg);
    } else {
      msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
  }
  luaL_traceback(L, L, msg, level);
  return 1;
}

/* ---------------------------------------------------------------- SIGINT */

static lua_State *globalL = NULL;

static void lstop(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  luaL_error(L, "interrupted!");
}

/* Runs in the signal handler: only sets a hook (lua_sethook is safe here).
 * A second Ctrl-C before the hook fires ends the process, as in lua. */
static void laction(int sig) {
  int flag = LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT;
  signal(sig, SIG_DFL);
  lua_sethook(globalL, lstop, flag, 1);
}

int cli_docall(lua_State *L, int narg, int nres) {
  int base = lua_gettop(L) - narg;
  lua_pushcfunction(L, msghandler);
  lua_insert(L, base);
  globalL = L;
  struct sigaction sa, old;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = laction;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old);
  int status = lua_pcall(L, narg, nres, base);
  sigaction(SIGINT, &old, NULL); /* SIG_DFL, or the prompt's handler */
  /* a Ctrl-C that came as the chunk ended must not hit the next one */
  if (lua_gethook(L) == lstop) lua_sethook(L, NULL, 0, 0);
  lua_remove(L, base);
  return status;
}
