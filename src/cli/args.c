/*
 * args.c - mydb-lua's command line.
 *
 * Lua's own options follow lua.c's rules exactly (-e stat, -l [g=]mod, -i,
 * -v, -E, -W, -- and -; the first argument that is not an option is the
 * script, and everything after it belongs to the script). mydb adds long
 * options, all before the script:
 *
 *   --db ROOT, --tenant T, --handlers DIR (repeatable), --help,
 *   and the inspection commands --tenants, --entries T, --log T ENTRY,
 *   --show T ENTRY [DIGEST], --verify [T], with -n N / --limit N;
 *   --copy SRC DST [--backend NAME] (needs no --db);
 *   --clone URL DIR [--backend NAME] (needs no --db), --fetch REMOTE
 *   [BRANCH] and --push REMOTE [BRANCH] (need --db and --tenant).
 *
 * An inspection command runs instead of a script or the prompt, so a
 * leftover positional argument is an error, never taken for a script.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static int set_error(cli_args *a, const char *bad, const char *why) {
  a->flags |= CLI_HAS_ERROR;
  a->bad = bad;
  a->why = why;
  return -1;
}

/* The value of a long option: "--opt=VALUE" or the next argument. */
static const char *long_value(char **argv, int *i, const char *name, cli_args *a) {
  const char *arg = argv[*i];
  size_t n = strlen(name);
  if (arg[n] == '=') return arg + n + 1;
  if (argv[*i + 1] == NULL) {
    set_error(a, arg, "needs an argument");
    return NULL;
  }
  return argv[++*i];
}

/* Does arg match "--name" or "--name=..."? */
static int is_long(const char *arg, const char *name) {
  size_t n = strlen(name);
  return strncmp(arg, name, n) == 0 && (arg[n] == '\0' || arg[n] == '=');
}

static int set_command(cli_args *a, const char *arg, cli_command cmd) {
  if (a->cmd != CLI_CMD_NONE && a->cmd != CLI_CMD_HELP)
    return set_error(a, arg, "cannot be combined with another inspection command");
  if (a->cmd != CLI_CMD_HELP) a->cmd = cmd;
  return 0;
}

/* Takes `required` positional values, then up to `optional` more that do not
 * look like options. */
static int command_values(char **argv, int *i, cli_args *a, int required, int optional) {
  const char *opt = argv[*i];
  for (int k = 0; k < required; k++) {
    if (argv[*i + 1] == NULL) return set_error(a, opt, "needs more arguments");
    a->cmd_args[a->ncmd_args++] = argv[++*i];
  }
  for (int k = 0; k < optional; k++) {
    const char *next = argv[*i + 1];
    if (next == NULL || next[0] == '-') break;
    a->cmd_args[a->ncmd_args++] = argv[++*i];
  }
  return 0;
}

static int parse_limit(cli_args *a, const char *opt, const char *s) {
  char *end;
  long long n = strtoll(s, &end, 10);
  if (*s == '\0' || *end != '\0' || n < 1) return set_error(a, opt, "needs a positive integer");
  a->limit = n;
  return 0;
}

/* One long option (or -n/-h) at argv[*i]; -1 on error, 0 when handled,
 * 1 when it is not one of ours. */
static int long_option(char **argv, int *i, cli_args *a) {
  const char *arg = argv[*i];
  const char *v;
  if (is_long(arg, "--db")) {
    if ((v = long_value(argv, i, "--db", a)) == NULL) return -1;
    a->db = v;
  } else if (is_long(arg, "--tenant")) {
    if ((v = long_value(argv, i, "--tenant", a)) == NULL) return -1;
    a->tenant = v;
  } else if (is_long(arg, "--handlers")) {
    if ((v = long_value(argv, i, "--handlers", a)) == NULL) return -1;
    if (a->nhandler_dirs == CLI_MAX_HANDLER_DIRS) return set_error(a, arg, "given too many times");
    a->handler_dirs[a->nhandler_dirs++] = v;
  } else if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
    a->cmd = CLI_CMD_HELP;
  } else if (is_long(arg, "--limit")) {
    if ((v = long_value(argv, i, "--limit", a)) == NULL) return -1;
    return parse_limit(a, arg, v);
  } else if (strncmp(arg, "-n", 2) == 0) {
    if (arg[2] != '\0') return parse_limit(a, arg, arg + 2);
    if (argv[*i + 1] == NULL) return set_error(a, arg, "needs an argument");
    return parse_limit(a, arg, argv[++*i]);
  } else if (strcmp(arg, "--tenants") == 0) {
    return set_command(a, arg, CLI_CMD_TENANTS);
  } else if (strcmp(arg, "--entries") == 0) {
    if (set_command(a, arg, CLI_CMD_ENTRIES) < 0) return -1;
    return command_values(argv, i, a, 1, 0);
  } else if (strcmp(arg, "--log") == 0) {
    if (set_command(a, arg, CLI_CMD_LOG) < 0) return -1;
    return command_values(argv, i, a, 2, 0);
  } else if (strcmp(arg, "--show") == 0) {
    if (set_command(a, arg, CLI_CMD_SHOW) < 0) return -1;
    return command_values(argv, i, a, 2, 1);
  } else if (strcmp(arg, "--verify") == 0) {
    if (set_command(a, arg, CLI_CMD_VERIFY) < 0) return -1;
    return command_values(argv, i, a, 0, 1);
  } else if (strcmp(arg, "--copy") == 0) {
    if (set_command(a, arg, CLI_CMD_COPY) < 0) return -1;
    return command_values(argv, i, a, 2, 0);
  } else if (strcmp(arg, "--clone") == 0) {
    if (set_command(a, arg, CLI_CMD_CLONE) < 0) return -1;
    return command_values(argv, i, a, 2, 0);
  } else if (strcmp(arg, "--fetch") == 0 || strcmp(arg, "--push") == 0) {
    if (set_command(a, arg, arg[2] == 'f' ? CLI_CMD_FETCH : CLI_CMD_PUSH) < 0) return -1;
    return command_values(argv, i, a, 1, 1);
  } else if (is_long(arg, "--backend")) {
    if ((v = long_value(argv, i, "--backend", a)) == NULL) return -1;
    a->backend = v;
  } else {
    return 1;
  }
  return 0;
}

static void add_action(cli_args *a, char opt, const char *val) {
  a->actions[a->nactions].opt = opt;
  a->actions[a->nactions].val = val;
  a->nactions++;
}

void cli_collectargs(int argc, char **argv, cli_args *a) {
  int i;
  (void)argc;
  a->script = 0;
  for (i = 1; argv[i] != NULL; i++) {
    const char *arg = argv[i];
    if (arg[0] != '-') { /* the script */
      a->script = i;
      break;
    }
    if (arg[1] == '\0') { /* "-": the script is stdin */
      a->script = i;
      break;
    }
    if (arg[1] == '-' && arg[2] == '\0') { /* "--" */
      i++;
      if (argv[i] != NULL) a->script = i;
      break;
    }
    int r = long_option(argv, &i, a);
    if (r < 0) break;
    if (r == 0) continue;
    switch (arg[1]) {
      case 'E':
      case 'W':
      case 'i':
      case 'v':
        if (arg[2] != '\0') {
          set_error(a, arg, NULL);
          break;
        }
        if (arg[1] == 'E') a->flags |= CLI_HAS_NOENV;
        if (arg[1] == 'W') add_action(a, 'W', NULL);
        if (arg[1] == 'i') a->flags |= CLI_HAS_I | CLI_HAS_V;
        if (arg[1] == 'v') a->flags |= CLI_HAS_V;
        break;
      case 'e':
      case 'l': {
        const char *val = arg + 2;
        if (*val == '\0') {
          val = argv[i + 1];
          if (val == NULL || val[0] == '-') {
            set_error(a, arg, "needs argument");
            break;
          }
          i++;
        }
        if (arg[1] == 'e') a->flags |= CLI_HAS_E;
        add_action(a, arg[1], val);
        break;
      }
      default:
        set_error(a, arg, NULL);
        break;
    }
    if (a->flags & CLI_HAS_ERROR) break;
  }
  a->optlim = a->script > 0 ? a->script : i;
  if (a->flags & CLI_HAS_ERROR) return;
  /* Sanity of the mydb options. */
  if (a->cmd != CLI_CMD_NONE && a->cmd != CLI_CMD_HELP) {
    if (a->script > 0)
      set_error(a, argv[a->script], "is not allowed after an inspection command");
    else if (a->flags & (CLI_HAS_E | CLI_HAS_I))
      set_error(a, (a->flags & CLI_HAS_E) ? "-e" : "-i",
                "cannot be combined with an inspection command");
    else if (a->db == NULL && a->cmd != CLI_CMD_COPY && a->cmd != CLI_CMD_CLONE)
      set_error(a, "--db", "is required by the inspection commands");
    else if (a->tenant == NULL && (a->cmd == CLI_CMD_FETCH || a->cmd == CLI_CMD_PUSH))
      set_error(a, "--tenant", "is required by --fetch and --push");
  } else if (a->limit > 0 && a->cmd != CLI_CMD_HELP) {
    set_error(a, "-n", "only applies to --log");
  }
  if (!(a->flags & CLI_HAS_ERROR) && a->tenant != NULL && a->db == NULL)
    set_error(a, "--tenant", "needs --db ROOT");
  if (!(a->flags & CLI_HAS_ERROR) && a->backend != NULL && a->cmd != CLI_CMD_COPY &&
      a->cmd != CLI_CMD_CLONE)
    set_error(a, "--backend", "only applies to --copy and --clone");
}
