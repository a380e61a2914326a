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
static int msghandler(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
      msg = lua_tostring(L, -1);
    else
      msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
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
