/*
 * cli.h - shared declarations of mydb-lua, the standalone interpreter.
 *
 * One file per job:
 *   mydb_lua.c  main, pmain, running chunks/scripts/-e/-l, --db, handlers
 *   args.c      the command line: lua's options plus mydb's long options
 *   repl.c      the interactive loop: input, history, continuation, printing
 *   complete.c  readline tab completion (globals, fields, methods)
 *   pretty.c    the bounded pretty printer used for REPL results
 *   preload.c   package.preload for mydb.core and the embedded Lua modules
 *   embedded.c  generated at build time by embed.lua (the module sources)
 */
#ifndef MYDB_CLI_H
#define MYDB_CLI_H

#include <stddef.h>

#include <lua.h>

#define CLI_PROGNAME "mydb-lua"

/* ------------------------------------------------------------------ args */

enum {
  CLI_HAS_ERROR = 1, /* bad option: usage and exit 1 */
  CLI_HAS_I = 2,     /* -i */
  CLI_HAS_V = 4,     /* -v */
  CLI_HAS_E = 8,     /* -e */
  CLI_HAS_NOENV = 16 /* -E */
};

/* Inspection commands (mutually exclusive with running a script). */
typedef enum {
  CLI_CMD_NONE = 0,
  CLI_CMD_HELP,
  CLI_CMD_TENANTS,
  CLI_CMD_ENTRIES,
  CLI_CMD_LOG,
  CLI_CMD_SHOW,
  CLI_CMD_VERIFY,
  CLI_CMD_COPY,
  CLI_CMD_CLONE, /* --clone URL DIR [--backend NAME] (no --db) */
  CLI_CMD_FETCH, /* --fetch REMOTE [BRANCH] (--db, --tenant) */
  CLI_CMD_PUSH   /* --push REMOTE [BRANCH] (--db, --tenant) */
} cli_command;

#define CLI_MAX_HANDLER_DIRS 64

/* -e, -l and -W, run in command-line order (lua.c's runargs). */
typedef struct cli_action {
  char opt;        /* 'e', 'l' or 'W' */
  const char *val; /* the chunk or the module ([g=]mod) */
} cli_action;

typedef struct cli_args {
  int flags;             /* CLI_HAS_* */
  int script;            /* argv index of the script, 0 when none */
  int optlim;            /* first argv index that is not an option */
  const char *bad;       /* the offending argument when CLI_HAS_ERROR */
  const char *why;       /* what is wrong with it (NULL: unrecognized) */
  const char *db;        /* --db ROOT */
  const char *tenant;    /* --tenant T */
  const char *handler_dirs[CLI_MAX_HANDLER_DIRS];
  int nhandler_dirs;     /* --handlers DIR, repeatable */
  cli_command cmd;       /* --tenants, --entries, ... */
  const char *cmd_args[3];
  int ncmd_args;
  long long limit;       /* -n N for --log (0: default) */
  const char *backend;   /* --backend NAME for --copy and --clone */
  cli_action *actions;   /* caller-provided, room for argc entries */
  int nactions;
} cli_args;

/* Parses argv (lua's rules, plus the long options). Never fails hard: on a
 * bad option sets CLI_HAS_ERROR, a->bad and a->why. `a` must be zeroed,
 * with a->actions pointing at room for argc entries. */
void cli_collectargs(int argc, char **argv, cli_args *a);

/* ------------------------------------------------------------- messages */

/* The program name used in messages (NULL in interactive mode). */
extern const char *cli_progname;

/* Prints "progname: msg" on stderr. */
void cli_message(const char *pname, const char *msg);

/* Prints the error at the top of the stack when status != LUA_OK, pops it;
 * returns status. */
int cli_report(lua_State *L, int status);

/* Calls the function below its narg arguments with a traceback handler and
 * SIGINT armed (Ctrl-C raises "interrupted!"). */
int cli_docall(lua_State *L, int narg, int nres);

/* ----------------------------------------------------------------- setup */

/* Loads the handler modules (MYDB_HANDLERS unless -E, then each --handlers
 * DIR), then binds `db` and `t` (--db, --tenant) and, with --db, the global
 * mydb_inspect. Reports its own errors; returns LUA_OK or an error status. */
int cli_setup(lua_State *L, const cli_args *a);

/* Runs the inspection command of a; returns the exit status. */
int cli_command_run(lua_State *L, const cli_args *a);

/* Calls mydb.cli's function `name` with the n values on the stack under
 * cli_docall; leaves nres results on success. */
int cli_call(lua_State *L, const char *name, int narg, int nres);

/* ----------------------------------------------------------------- REPL */

/* Runs the interactive loop until end of input. */
void cli_repl(lua_State *L, const cli_args *a);

/* ------------------------------------------------------------ completion */

/* Installs readline completion for L (no-op without readline). */
void cli_completion_init(lua_State *L);

/* Candidate completions of `text` (a Lua expression suffix like "db:ti"),
 * pushed as a sequence on the stack: used by readline and by the specs
 * through mydb_inspect.complete. */
void cli_complete_push(lua_State *L, const char *text);

/* ------------------------------------------------------------ pretty */

typedef struct cli_pretty_opts {
  int depth;      /* nested tables shown (default 4) */
  int items;      /* fields shown per table (default 100) */
  size_t width;   /* total bytes of output before "..." (default 8192) */
  size_t string;  /* bytes of one string shown (default 2048) */
  int multiline;  /* indent nested tables over several lines */
} cli_pretty_opts;

void cli_pretty_defaults(cli_pretty_opts *o);

/* Pushes the readable rendering of the value at idx. */
void cli_pretty_push(lua_State *L, int idx, const cli_pretty_opts *o);

/* Lua: pretty(v [, opts]) -> string. */
int cli_l_pretty(lua_State *L);

/* ------------------------------------------------------------ preload */

typedef struct cli_module {
  const char *name;      /* "mydb.collection" */
  const char *chunkname; /* "@lua/mydb/collection.lua" */
  const unsigned char *src;
  size_t len;
} cli_module;

/* The embedded modules, ended by a {NULL} entry (embedded.c). */
extern const cli_module cli_modules[];

/* Fills package.preload with mydb.core and every embedded module. */
void cli_preload(lua_State *L);

#endif
