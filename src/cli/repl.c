/*
 * repl.c - the interactive loop.
 *
 * lua.c's behaviour: a line is compiled first as `return <line>;` (so an
 * expression prints its values), then as a statement; a syntax error that
 * ends at <eof> means "incomplete", and more lines are read with _PROMPT2.
 * Results print through the global `print`, tables rendered by pretty.c.
 *
 * Input: readline when stdin is a terminal (line editing, completion,
 * history persisted line by line so that os.exit or a crash loses nothing),
 * else plain reads (piped input, as `lua -i`). Readline runs through its
 * callback interface so that Ctrl-C at the prompt only clears the line:
 * SIGINT interrupts select(), and the half-typed chunk is dropped.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "cli.h"

#ifdef MYDB_USE_READLINE
#include <readline/history.h>
#include <readline/readline.h>
#endif

#define PROMPT1 "> "
#define PROMPT2 ">> "
#define EOFMARK "<eof>"
#define HISTORY_MAX 1000

enum { LINE_OK, LINE_EOF, LINE_INTR };

static volatile sig_atomic_t prompt_sigint = 0;

static void on_prompt_sigint(int sig) {
  (void)sig;
  prompt_sigint = 1;
}

/* Catches SIGINT for the whole session except while code runs (then
 * cli_docall arms lua.c's hook and puts this back after): no SA_RESTART, so
 * reads fail with EINTR, and Ctrl-C outside running code never ends the
 * session. */
static void arm_prompt_sigint(struct sigaction *old) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_prompt_sigint;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, old);
}

typedef struct repl {
  int use_readline;
  const char *history; /* file, or NULL */
} repl;

/* ------------------------------------------------------------------ input */

#ifdef MYDB_USE_READLINE

static char *rl_line;
static int rl_got;

static void on_line(char *line) {
  rl_line = line;
  rl_got = 1;
  rl_callback_handler_remove();
}

/* SIGINT is blocked except inside pselect(), so a Ctrl-C is never lost
 * between the check of the flag and the wait. */
static int read_rl(const char *prompt, char **out) {
  sigset_t block, oldmask, waitmask;
  sigemptyset(&block);
  sigaddset(&block, SIGINT);
  sigprocmask(SIG_BLOCK, &block, &oldmask);
  waitmask = oldmask;
  sigdelset(&waitmask, SIGINT);
  int st = LINE_OK;
  rl_got = 0;
  rl_line = NULL;
  rl_callback_handler_install(prompt, on_line);
  while (!rl_got) {
    if (prompt_sigint) {
      prompt_sigint = 0;
      rl_callback_sigcleanup();
      rl_replace_line("", 0);
      rl_callback_handler_remove();
      fputs("^C\n", stdout);
      fflush(stdout);
      st = LINE_INTR;
      break;
    }
    int fd = fileno(rl_instream ? rl_instream : stdin);
    fd_set fds;
    FD_ZERO(&fds);
    FD_SET(fd, &fds);
    int n = pselect(fd + 1, &fds, NULL, NULL, NULL, &waitmask);
    if (n < 0) {
      if (errno == EINTR) continue;
      rl_callback_handler_remove();
      st = LINE_EOF;
      break;
    }
    if (n > 0) rl_callback_read_char();
  }
  sigprocmask(SIG_SETMASK, &oldmask, NULL);
  if (st != LINE_OK) return st;
  if (rl_line == NULL) return LINE_EOF;
  *out = rl_line;
  return LINE_OK;
}

#endif

/* Plain input: prompt on stdout, one line of any length from stdin. */
static int read_plain(const char *prompt, char **out) {
  if (prompt_sigint) { /* Ctrl-C since the last read */
    prompt_sigint = 0;
    fputs("\n", stdout);
    return LINE_INTR;
  }
  fputs(prompt, stdout);
  fflush(stdout);
  char *line = NULL;
  size_t cap = 0;
  errno = 0;
  ssize_t n = getline(&line, &cap, stdin);
  if (n < 0) {
    free(line);
    if (prompt_sigint || errno == EINTR) {
      prompt_sigint = 0;
      clearerr(stdin);
      fputs("\n", stdout);
      return LINE_INTR;
    }
    return LINE_EOF;
  }
  if (n > 0 && line[n - 1] == '\n') line[--n] = '\0';
  if (n > 0 && line[n - 1] == '\r') line[--n] = '\0';
  *out = line;
  return LINE_OK;
}

static const char *get_prompt(lua_State *L, int first) {
  /* pushed: kept on the stack while in use */
  if (lua_getglobal(L, first ? "_PROMPT" : "_PROMPT2") == LUA_TNIL) {
    lua_pop(L, 1);
    lua_pushstring(L, first ? PROMPT1 : PROMPT2);
  }
  return luaL_tolstring(L, -1, NULL); /* may call __tostring */
}

static int l_get_prompt(lua_State *L) {
  get_prompt(L, lua_toboolean(L, 1));
  return 1;
}

/* Pushes one line; LINE_OK, LINE_EOF or LINE_INTR. */
static int pushline(lua_State *L, repl *r, int first) {
  lua_pushcfunction(L, l_get_prompt);
  lua_pushboolean(L, first);
  const char *prompt = NULL;
  if (lua_pcall(L, 1, 1, 0) == LUA_OK) prompt = lua_tostring(L, -1);
  if (prompt == NULL) prompt = first ? PROMPT1 : PROMPT2;
  char *line = NULL;
  int st;
  (void)r;
#ifdef MYDB_USE_READLINE
  if (r->use_readline)
    st = read_rl(prompt, &line);
  else
#endif
    st = read_plain(prompt, &line);
  lua_pop(L, 1); /* prompt */
  if (st != LINE_OK) return st;
  if (first && line[0] == '=') /* 5.1's "=expr" */
    lua_pushfstring(L, "return %s", line + 1);
  else
    lua_pushstring(L, line);
  free(line);
  return LINE_OK;
}

/* ---------------------------------------------------------------- compile */

static int incomplete(lua_State *L, int status) {
  if (status == LUA_ERRSYNTAX) {
    size_t lmsg;
    const char *msg = lua_tolstring(L, -1, &lmsg);
    size_t lmark = sizeof(EOFMARK) - 1;
    if (lmsg >= lmark && strcmp(msg + lmsg - lmark, EOFMARK) == 0) {
      lua_pop(L, 1);
      return 1;
    }
  }
  return 0;
}

/* Line on top; tries "return line;". On success replaces it with the chunk. */
static int addreturn(lua_State *L) {
  const char *line = lua_tostring(L, -1);
  const char *retline = lua_pushfstring(L, "return %s;", line);
  int status = luaL_loadbuffer(L, retline, strlen(retline), "=stdin");
  if (status == LUA_OK)
    lua_remove(L, -2); /* the "return" text */
  else
    lua_pop(L, 2);     /* the error and the text */
  if (status == LUA_OK) lua_remove(L, -2); /* the line */
  return status;
}

/* Adds a whole chunk (its lines joined by newlines) to the history as one
 * entry, as lua.c does, so that up-arrow recalls all of it. */
static void save_chunk(repl *r, const char *text) {
  (void)r;
  (void)text;
#ifdef MYDB_USE_READLINE
  if (r->use_readline && text[0] != '\0') {
    add_history(text);
    if (r->history) append_history(1, r->history);
  }
#endif
}

/* Reads more lines while the chunk is incomplete. Line(s) on top; leaves
 * the chunk (or an error) in their place. */
static int multiline(lua_State *L, repl *r) {
  for (;;) {
    size_t len;
    const char *line = lua_tolstring(L, -1, &len);
    int status = luaL_loadbuffer(L, line, len, "=stdin");
    if (!incomplete(L, status)) {
      save_chunk(r, line);
      lua_remove(L, -2);
      return status;
    }
    int st = pushline(L, r, 0);
    if (st == LINE_INTR) {
      lua_pop(L, 1);
      return -2;
    }
    if (st == LINE_EOF) { /* report the incomplete chunk as it stands */
      save_chunk(r, line);
      status = luaL_loadbuffer(L, line, len, "=stdin");
      lua_remove(L, -2);
      return status;
    }
    lua_pushliteral(L, "\n");
    lua_insert(L, -2);
    lua_concat(L, 3);
  }
}

/* -1 at end of input, -2 after Ctrl-C, else the load status with the
 * chunk (or the error) on top. */
static int loadline(lua_State *L, repl *r) {
  lua_settop(L, 0);
  int st = pushline(L, r, 1);
  if (st == LINE_EOF) return -1;
  if (st == LINE_INTR) return -2;
  lua_pushvalue(L, -1); /* the line, kept for the history */
  int status = addreturn(L);
  if (status == LUA_OK) {
    save_chunk(r, lua_tostring(L, -2));
    lua_remove(L, -2);
  } else {
    lua_pop(L, 1); /* the copy: multiline saves the whole chunk */
    status = multiline(L, r);
  }
  return status;
}

/* ------------------------------------------------------------------ print */

/* Prints the values on the stack through the global print: top-level
 * strings as they are (as lua does), other values rendered readably. */
static int l_print_results(lua_State *L) {
  int n = lua_gettop(L);
  cli_pretty_opts o;
  cli_pretty_defaults(&o);
  luaL_checkstack(L, n + LUA_MINSTACK, "too many results to print");
  lua_getglobal(L, "print");
  for (int i = 1; i <= n; i++) {
    if (lua_type(L, i) == LUA_TSTRING)
      lua_pushvalue(L, i);
    else
      cli_pretty_push(L, i, &o);
  }
  lua_call(L, n, 0);
  return 0;
}

static void print_results(lua_State *L) {
  int n = lua_gettop(L);
  if (n == 0) return;
  lua_pushcfunction(L, l_print_results);
  lua_insert(L, 1);
  if (cli_docall(L, n, 0) != LUA_OK)
    cli_message(cli_progname,
                lua_pushfstring(L, "error calling 'print' (%s)", lua_tostring(L, -1)));
}

/* --------------------------------------------------------------- history */

#ifdef MYDB_USE_READLINE
static const char *history_path(lua_State *L) {
  const char *env = getenv("MYDB_HISTORY");
  if (env) return env[0] ? env : NULL;
  const char *home = getenv("HOME");
  if (home == NULL || home[0] == '\0') return NULL;
  lua_pushfstring(L, "%s/.mydb_lua_history", home);
  lua_setfield(L, LUA_REGISTRYINDEX, "mydb-lua.history"); /* keeps it alive */
  lua_getfield(L, LUA_REGISTRYINDEX, "mydb-lua.history");
  const char *p = lua_tostring(L, -1);
  lua_pop(L, 1);
  return p;
}
#endif

/* ------------------------------------------------------------------- REPL */

void cli_repl(lua_State *L, const cli_args *a) {
  repl r;
  const char *oldprogname = cli_progname;
  cli_progname = NULL; /* no program name on errors in interactive mode */
  r.use_readline = 0;
  r.history = NULL;
  /* the prompt helpers (tenants(), log(), pp(), ...) */
  lua_pushboolean(L, a->tenant != NULL);
  cli_report(L, cli_call(L, "prompt_globals", 1, 0));
#ifdef MYDB_USE_READLINE
  if (isatty(STDIN_FILENO)) {
    r.use_readline = 1;
    /* SIGINT stays ours (on_prompt_sigint) even inside readline, so that
     * Ctrl-C is seen at once, not at the next key */
    rl_catch_signals = 0;
    cli_completion_init(L);
    r.history = history_path(L);
    stifle_history(HISTORY_MAX);
    if (r.history) {
      if (read_history(r.history) != 0) {
        FILE *f = fopen(r.history, "a"); /* create it: append_history needs it */
        if (f) fclose(f);
      }
      history_truncate_file(r.history, HISTORY_MAX);
    }
  }
#endif
  struct sigaction oldint;
  arm_prompt_sigint(&oldint);
  int status;
  while ((status = loadline(L, &r)) != -1) {
    if (status == -2) continue; /* Ctrl-C: a fresh prompt */
    if (status == LUA_OK) status = cli_docall(L, 0, LUA_MULTRET);
    if (status == LUA_OK)
      print_results(L);
    else
      cli_report(L, status);
  }
  sigaction(SIGINT, &oldint, NULL);
  prompt_sigint = 0;
  lua_settop(L, 0);
  fputs("\n", stdout);
  fflush(stdout);
#ifdef MYDB_USE_READLINE
  if (r.use_readline) {
    if (r.history) history_truncate_file(r.history, HISTORY_MAX);
    clear_history();
  }
#endif
  cli_progname = oldprogname;
}
