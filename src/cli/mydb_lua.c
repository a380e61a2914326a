/*
 * mydb_lua.c - mydb-lua: a drop-in `lua` with mydb built in.
 *
 * The structure is lua.c's: main() only creates the state and lua_pcall()s
 * pmain(), so setup errors and out-of-memory are reported, never crashes;
 * the command line is collected first (args.c) and run in order after;
 * every chunk runs under a traceback handler with SIGINT armed.
 *
 * Before -e/-l/the script/the prompt, pmain loads the handler modules
 * (--handlers, MYDB_HANDLERS) and binds `db` (--db) and `t` (--tenant);
 * see setup.c. An inspection command (--tenants, --log, ...) runs instead
 * of all that.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "cli.h"
#include "mydb.h"

/* ----------------------------------------------------------------- usage */

static void print_version(void) {
  printf("mydb-lua %s (mydb %s) -- %s\n", MYDB_VERSION, MYDB_VERSION, LUA_COPYRIGHT);
  fflush(stdout);
}

static const char options_text[] =
    "Lua options (as the `lua` interpreter):\n"
    "  -e stat   execute string 'stat'\n"
    "  -i        enter interactive mode after executing 'script'\n"
    "  -l mod    require library 'mod' into global 'mod'\n"
    "  -l g=mod  require library 'mod' into global 'g'\n"
    "  -v        show version information\n"
    "  -E        ignore environment variables (LUA_INIT, LUA_PATH, LUA_CPATH,\n"
    "            MYDB_HANDLERS)\n"
    "  -W        turn warnings on\n"
    "  --        stop handling options\n"
    "  -         stop handling options and execute stdin\n";

static void print_usage(const cli_args *a) {
  if (a->why)
    fprintf(stderr, "%s: '%s' %s\n", cli_progname, a->bad, a->why);
  else
    fprintf(stderr, "%s: unrecognized option '%s'\n", cli_progname, a->bad);
  /* lua's own errors get lua's usage text; mydb's a pointer to --help */
  int lua_error = a->why == NULL || strcmp(a->why, "needs argument") == 0;
  if (lua_error)
    fprintf(stderr, "usage: %s [options] [script [args]]\n%s", cli_progname, options_text);
  fprintf(stderr, "Try '%s --help' for the mydb options and the inspection commands.\n",
          cli_progname);
  fflush(stderr);
}

static void print_help(void) {
  printf(
      "usage: %s [options] [script [args]]\n"
      "       %s --db ROOT COMMAND\n"
      "\n"
      "mydb-lua is the Lua 5.4 interpreter with mydb built in: `require \"mydb\"`,\n"
      "\"mydb.core\", \"mydb.inspect\" and \"mydb.handlers.NAME\" load from copies embedded\n"
      "at build time, through package.preload, so nothing needs to be installed;\n"
      "they win over LUA_PATH/LUA_CPATH (clear package.preload[name] to load another).\n"
      "The prompt has the global `mydb`; in scripts, try `mydb-lua -l mydb`.\n"
      "\n"
      "%s"
      "\n"
      "mydb options (before the script):\n"
      "  --db ROOT       open the store at ROOT and bind it to the global `db`\n"
      "                  (an existing store: `mydb init` creates one)\n"
      "  --tenant T      also bind `t`, a handle on tenant T whose methods omit the\n"
      "                  tenant: t:load(\"config\") is db:load(\"T\", \"config\")\n"
      "  --handlers DIR  run every DIR/*.lua (sorted) before anything else; a module\n"
      "                  returning a handler table {tag=..., ...} is registered.\n"
      "                  Repeatable; MYDB_HANDLERS=\"DIR;DIR\" adds more (first).\n"
      "                  A module that fails to load stops mydb-lua (status 1).\n"
      "  -h, --help      show this help\n"
      "\n"
      "Inspection commands (need --db, except --copy; run instead of a script or the prompt):\n"
      "  --tenants                   list the tenants, one a line\n"
      "  --entries T                 list tenant T's entries, one a line\n"
      "  --log T ENTRY [-n N]        ENTRY's versions, newest first, one a line:\n"
      "                              DIGEST USER DATE (at most N, default 1000)\n"
      "  --show T ENTRY [DIGEST]     print the latest version (or DIGEST) as JSON,\n"
      "                              the snapshot's stored bytes; a record\n"
      "                              collection is shown with its records\n"
      "  --verify [T]                verify the store (or tenant T); status 0 when\n"
      "                              sound, 1 on damage, 2 when this build of mydb\n"
      "                              has no db:verify\n"
      "  --copy SRC DST [--backend NAME]\n"
      "                              copy the store at SRC into a new store at DST\n"
      "                              (backend loose, pack or memory; default pack):\n"
      "                              all tenants and history, verified by digest\n"
      "  --clone URL DIR [--backend NAME]\n"
      "                              clone the store at URL into a new store at DIR\n"
      "                              (its remote 'origin')\n"
      "  --fetch REMOTE [BRANCH]     (--db, --tenant) fetch from a remote of the store\n"
      "  --push REMOTE [BRANCH]      (--db, --tenant) push the branch (default main)\n"
      "Errors go to stderr with status 1 (bad command line: usage, status 1).\n"
      "\n"
      "Interactive mode (no script and a terminal, or -i):\n"
      "  expressions print their values; tables print readably, limited in depth,\n"
      "  items and size (see pp below); an incomplete chunk continues on the next\n"
      "  line (_PROMPT2); errors print a traceback and the session goes on;\n"
      "  Ctrl-C stops running code or clears the line, Ctrl-D exits; TAB completes\n"
      "  globals, fields and methods (db:<TAB>). History is kept in $MYDB_HISTORY\n"
      "  (empty: none), else ~/.mydb_lua_history. _PROMPT and _PROMPT2 are honoured.\n"
      "\n"
      "At the prompt (and in scripts run with --db), the global table mydb_inspect\n"
      "holds the inspection commands, printing what the shell commands print and\n"
      "working on the global `db`; the prompt also gets them as globals when the\n"
      "names are free:\n"
      "  tenants()  entries(t)  log(t, entry [, n])  show(t, entry [, digest])\n"
      "  verify([t])  pp(value [, {depth=, items=, width=, string=}])\n"
      "A nil tenant means the --tenant one. The functions returning data instead of\n"
      "printing are in require \"mydb.inspect\" (inspect.log(db, t, entry, n), ...).\n"
      "\n"
      "Environment: LUA_INIT_5_4 / LUA_INIT (a chunk, or @file, run first),\n"
      "LUA_PATH, LUA_CPATH, MYDB_HANDLERS, MYDB_HISTORY.\n",
      CLI_PROGNAME, CLI_PROGNAME, options_text);
  fflush(stdout);
}

/* --------------------------------------------------------------- chunks */

static int dochunk(lua_State *L, int status) {
  if (status == LUA_OK) status = cli_docall(L, 0, 0);
  return cli_report(L, status);
}

static int dofile(lua_State *L, const char *name) {
  return dochunk(L, luaL_loadfile(L, name));
}

static int dostring(lua_State *L, const char *s, const char *name) {
  return dochunk(L, luaL_loadbuffer(L, s, strlen(s), name));
}

/* -l [g=]mod: require mod into global g (default: mod). */
static int dolibrary(lua_State *L, const char *spec) {
  const char *eq = strchr(spec, '=');
  const char *modname = eq ? eq + 1 : spec;
  lua_getglobal(L, "require");
  lua_pushstring(L, modname);
  int status = cli_docall(L, 1, 1);
  if (status == LUA_OK) {
    if (eq)
      lua_pushlstring(L, spec, (size_t)(eq - spec));
    else
      lua_pushstring(L, spec);
    lua_insert(L, -2);
    lua_setglobal(L, lua_tostring(L, -2));
    lua_pop(L, 1);
  }
  return cli_report(L, status);
}

/* The `arg` table: arg[0] is the script, negative indices the interpreter
 * and its options, positive ones the script's arguments. */
static void createargtable(lua_State *L, char **argv, int argc, int script) {
  int narg = argc - (script + 1);
  lua_createtable(L, narg > 0 ? narg : 0, script + 1);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  lua_setglobal(L, "arg");
}

static int pushargs(lua_State *L) {
  if (lua_getglobal(L, "arg") != LUA_TTABLE) luaL_error(L, "'arg' is not a table");
  int n = (int)luaL_len(L, -1);
  luaL_checkstack(L, n + 3, "too many arguments to script");
  int i;
  for (i = 1; i <= n; i++) lua_rawgeti(L, -i, i);
  lua_remove(L, -i);
  return n;
}

static int handle_script(lua_State *L, char **argv) {
  const char *fname = argv[0];
  if (strcmp(fname, "-") == 0 && strcmp(argv[-1], "--") != 0) fname = NULL; /* stdin */
  int status = luaL_loadfile(L, fname);
  if (status == LUA_OK) {
    int n = pushargs(L);
    status = cli_docall(L, n, LUA_MULTRET);
  }
  return cli_report(L, status);
}

static int handle_luainit(lua_State *L) {
  const char *name = "=LUA_INIT_5_4";
  const char *init = getenv(name + 1);
  if (init == NULL) {
    name = "=LUA_INIT";
    init = getenv(name + 1);
  }
  if (init == NULL) return LUA_OK;
  if (init[0] == '@') return dofile(L, init + 1);
  return dostring(L, init, name);
}

/* -e, -l and -W in order; 0 on the first failure. */
static int runargs(lua_State *L, const cli_args *a) {
  for (int i = 0; i < a->nactions; i++) {
    const cli_action *act = &a->actions[i];
    int status = LUA_OK;
    if (act->opt == 'e')
      status = dostring(L, act->val, "=(command line)");
    else if (act->opt == 'l')
      status = dolibrary(L, act->val);
    else
      lua_warning(L, "@on", 0);
    if (status != LUA_OK) return 0;
  }
  return 1;
}

/* ------------------------------------------------------ collectgarbage */

/* Lua 5.4.0-5.4.4 set no target for the collector after a full collection
 * in generational mode (this interpreter's mode, as lua.c's; a bug of
 * 5.4.4's list, fixed in 5.4.5): the next collection then waits until the
 * heap has doubled. A script that loads a store, calls collectgarbage()
 * and scans it ran the whole scan with no collection (1,000,000 records:
 * 750,000 dead strings piled up, the scan at 300k records/s against
 * 520k). Here collectgarbage() and collectgarbage("collect") take two
 * basic steps after the full collection. One is enough when the collector
 * was in its generational rhythm (a minor collection, which sets the
 * target); after a load, whose major collections freed little, it is in
 * its "bad collection" state, where the full collection changes nothing
 * and each step is a full mark: the first may find the live set grown
 * and stay there, the second finds it unchanged and returns to minor
 * collections. In the incremental mode the steps are a little of the next
 * cycle's work. */
#if LUA_VERSION_RELEASE_NUM < 50405
static int collect_then_step(lua_State *L) {
  /* the arguments checked here, as the base library does, so that a bad
   * one is reported against collectgarbage, not an unnamed function */
  static const char *const opts[] = {
      "stop",      "restart",    "collect",      "count",       "step",
      "setpause",  "setstepmul", "isrunning",    "generational", "incremental",
      NULL};
  static const int nints[] = {0, 0, 0, 0, 1, 1, 1, 0, 2, 3};
  int o = luaL_checkoption(L, 1, "collect", opts);
  for (int i = 0; i < nints[o]; i++) (void)luaL_optinteger(L, 2 + i, 0);
  lua_pushvalue(L, lua_upvalueindex(1)); /* the base library's */
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  if (o == 2) { /* "collect" */
    (void)lua_gc(L, LUA_GCSTEP, 0);
    (void)lua_gc(L, LUA_GCSTEP, 0);
  }
  return lua_gettop(L);
}
#endif

static void mend_collectgarbage(lua_State *L) {
#if LUA_VERSION_RELEASE_NUM < 50405
  lua_getglobal(L, "collectgarbage");
  lua_pushcclosure(L, collect_then_step, 1);
  lua_setglobal(L, "collectgarbage");
#else
  (void)L;
#endif
}

/* ------------------------------------------------------------ mydb (git-like) */

/* True when the program runs as `mydb` (the installed link to mydb-lua):
 * then the command line belongs to the embedded dispatcher "mydb.cmd"
 * (src/cli/mydb_cmd.lua), not to the Lua interpreter. */
static int runs_as_mydb(const char *argv0) {
  if (argv0 == NULL) return 0;
  const char *base = strrchr(argv0, '/');
  base = base ? base + 1 : argv0;
  return strcmp(base, "mydb") == 0;
}

/* require("mydb.cmd").main({argv[1], ...}) -> the exit status. The
 * dispatcher reports its own errors; an error escaping it is a bug and
 * is reported with a traceback (status 1). */
static int run_mydb_cmd(lua_State *L, int argc, char **argv) {
  luaL_openlibs(L);
  mend_collectgarbage(L);
  cli_preload(L);
  lua_gc(L, LUA_GCRESTART);
  lua_gc(L, LUA_GCGEN, 0, 0);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "mydb.cmd");
  if (cli_report(L, cli_docall(L, 1, 1)) != LUA_OK) return EXIT_FAILURE;
  lua_getfield(L, -1, "main");
  lua_createtable(L, argc, 0);
  for (int i = 1; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i);
  }
  if (cli_report(L, cli_docall(L, 1, 1)) != LUA_OK) return EXIT_FAILURE;
  return (int)luaL_optinteger(L, -1, 0);
}

/* ------------------------------------------------------------------ pmain */

/* Returns the exit status as an integer. */
static int pmain(lua_State *L) {
  int argc = (int)lua_tointeger(L, 1);
  char **argv = (char **)lua_touserdata(L, 2);
  if (runs_as_mydb(argv[0])) {
    cli_progname = "mydb";
    lua_pushinteger(L, run_mydb_cmd(L, argc, argv));
    return 1;
  }
  cli_args *a = (cli_args *)lua_newuserdatauv(L, sizeof *a, 0);
  memset(a, 0, sizeof *a);
  a->actions = (cli_action *)lua_newuserdatauv(L, sizeof(cli_action) * (size_t)(argc + 1), 0);
  if (argv[0] && argv[0][0]) cli_progname = argv[0];
  luaL_checkversion(L);
  cli_collectargs(argc, argv, a);
  if (a->flags & CLI_HAS_ERROR) {
    print_usage(a);
    lua_pushinteger(L, EXIT_FAILURE);
    return 1;
  }
  if (a->cmd == CLI_CMD_HELP) {
    print_help();
    lua_pushinteger(L, EXIT_SUCCESS);
    return 1;
  }
  if (a->flags & CLI_HAS_V) print_version();
  if (a->flags & CLI_HAS_NOENV) {
    lua_pushboolean(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, "LUA_NOENV");
  }
  luaL_openlibs(L);
  mend_collectgarbage(L);
  cli_preload(L);
  createargtable(L, argv, argc, a->script);
  lua_gc(L, LUA_GCRESTART);
  lua_gc(L, LUA_GCGEN, 0, 0);
  lua_pushinteger(L, EXIT_FAILURE); /* the result unless we get to the end */
  if (!(a->flags & CLI_HAS_NOENV) && handle_luainit(L) != LUA_OK) return 1;
  if (cli_setup(L, a) != LUA_OK) return 1;
  if (a->cmd != CLI_CMD_NONE) {
    lua_pushinteger(L, cli_command_run(L, a));
    return 1;
  }
  if (!runargs(L, a)) return 1;
  if (a->script > 0 && handle_script(L, argv + a->script) != LUA_OK) return 1;
  if (a->flags & CLI_HAS_I) {
    cli_repl(L, a);
  } else if (a->script == 0 && !(a->flags & (CLI_HAS_E | CLI_HAS_V))) {
    if (isatty(STDIN_FILENO)) {
      print_version();
      cli_repl(L, a);
    } else if (dofile(L, NULL) != LUA_OK) {
      return 1;
    }
  }
  lua_pushinteger(L, EXIT_SUCCESS);
  return 1;
}

int main(int argc, char **argv) {
  lua_State *L = luaL_newstate();
  if (L == NULL) {
    cli_message(argv[0], "cannot create state: not enough memory");
    return EXIT_FAILURE;
  }
  lua_gc(L, LUA_GCSTOP);
  lua_pushcfunction(L, pmain);
  lua_pushinteger(L, argc);
  lua_pushlightuserdata(L, argv);
  int status = lua_pcall(L, 2, 1, 0);
  int result = status == LUA_OK ? (int)lua_tointeger(L, -1) : EXIT_FAILURE;
  cli_report(L, status);
  lua_close(L);
  return result;
}
