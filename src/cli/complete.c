/*
 * complete.c - tab completion at the prompt.
 *
 * The word before the cursor is read as a Lua path: `pri` completes
 * globals and keywords, `string.fo` a table's fields, `db:sa` the methods
 * of db. A path is followed with raw lookups plus the __index chain of
 * metatables when __index is a table (never by calling a function: TAB must
 * have no side effects). `x:` lists functions only; names starting with
 * '_' show only when the typed part starts with '_'.
 *
 * cli_complete_push() is plain Lua-API code, also reachable as
 * mydb_inspect.complete(text) for tests; the readline glue is at the end.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "cli.h"

#ifdef MYDB_USE_READLINE
#include <readline/readline.h>
#endif

#define CHAIN_MAX 16

static const char *const keywords[] = {
    "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if",
    "in", "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while",
    NULL};

static int is_ident(const char *s, size_t len) {
  if (len == 0) return 0;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    int alpha = c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return 0;
  }
  return 1;
}

/* Pushes the metatable's __index when it is a table; returns 1 if pushed. */
static int push_index_table(lua_State *L, int idx) {
  if (!lua_getmetatable(L, idx)) return 0;
  lua_pushliteral(L, "__index");
  lua_rawget(L, -2);
  lua_remove(L, -2);
  if (lua_type(L, -1) == LUA_TTABLE) return 1;
  lua_pop(L, 1);
  return 0;
}

/* Replaces the value on top with its field `name` (raw, then along the
 * __index chain of tables); nil when absent. */
static void safe_field(lua_State *L, const char *name, size_t len) {
  lua_pushvalue(L, -1); /* the current holder */
  for (int n = 0; n < CHAIN_MAX; n++) {
    if (lua_type(L, -1) == LUA_TTABLE) {
      lua_pushlstring(L, name, len);
      if (lua_rawget(L, -2) != LUA_TNIL) {
        lua_remove(L, -2);
        lua_remove(L, -2);
        return;
      }
      lua_pop(L, 1);
    }
    if (!push_index_table(L, -1)) break;
    lua_remove(L, -2);
  }
  lua_pop(L, 2);
  lua_pushnil(L);
}

/* Adds the keys of the value on top (and its __index chain) that start with
 * partial to the set at index set. */
static void collect(lua_State *L, int set, const char *partial, size_t plen, int methods) {
  int show_private = plen > 0 && partial[0] == '_';
  lua_pushvalue(L, -1);
  for (int n = 0; n < CHAIN_MAX; n++) {
    if (lua_type(L, -1) == LUA_TTABLE) {
      lua_pushnil(L);
      while (lua_next(L, -2) != 0) {
        size_t len;
        const char *k;
        if (lua_type(L, -2) == LUA_TSTRING && (k = lua_tolstring(L, -2, &len)) != NULL &&
            len >= plen && memcmp(k, partial, plen) == 0 && is_ident(k, len) &&
            (show_private || k[0] != '_') && (!methods || lua_type(L, -1) == LUA_TFUNCTION)) {
          lua_pushvalue(L, -2);
          lua_pushboolean(L, 1);
          lua_rawset(L, set);
        }
        lua_pop(L, 1);
      }
    }
    if (!push_index_table(L, -1)) break;
    lua_remove(L, -2);
  }
  lua_pop(L, 1);
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void cli_complete_push(lua_State *L, const char *text) {
  luaL_checkstack(L, 16, "completion");
  size_t tlen = strlen(text);
  /* the path starts after the last character that cannot be in one */
  size_t start = tlen;
  while (start > 0) {
    char c = text[start - 1];
    if (!(c == '.' || c == ':' || c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9')))
      break;
    start--;
  }
  const char *path = text + start;
  const char *sep = NULL;
  for (const char *q = path; *q; q++)
    if (*q == '.' || *q == ':') sep = q;
  lua_newtable(L);
  int set = lua_gettop(L);
  const char *partial = sep ? sep + 1 : path;
  size_t plen = strlen(partial);
  int ok = 1;
  lua_pushglobaltable(L);
  if (sep == path) ok = 0; /* ".x" or ":x": no path before */
  if (sep && ok) {
    const char *seg = path;
    while (ok && seg < sep) {
      const char *end = seg;
      while (end < sep && *end != '.' && *end != ':') end++;
      if (*end == ':' && end != sep) ok = 0; /* a:b.c is not a path */
      if (!is_ident(seg, (size_t)(end - seg))) ok = 0;
      if (ok) {
        int t = lua_type(L, -1);
        if (t != LUA_TTABLE && t != LUA_TUSERDATA && t != LUA_TSTRING)
          ok = 0;
        else
          safe_field(L, seg, (size_t)(end - seg));
      }
      seg = end + 1;
    }
    if (ok && lua_isnil(L, -1)) ok = 0;
  }
  if (ok) collect(L, set, partial, plen, sep && *sep == ':');
  lua_pop(L, 1);
  if (!sep) {
    for (int i = 0; keywords[i]; i++)
      if (strncmp(keywords[i], partial, plen) == 0) {
        lua_pushstring(L, keywords[i]);
        lua_pushboolean(L, 1);
        lua_rawset(L, set);
      }
  }
  /* sorted sequence of text-prefixed names */
  size_t n = 0;
  lua_pushnil(L);
  while (lua_next(L, set) != 0) {
    lua_pop(L, 1);
    n++;
  }
  const char **names = lua_newuserdatauv(L, sizeof(char *) * (n + 1), 0);
  size_t i = 0;
  lua_pushnil(L);
  while (lua_next(L, set) != 0) {
    lua_pop(L, 1);
    names[i++] = lua_tostring(L, -1); /* alive: a key of set */
  }
  qsort(names, n, sizeof *names, cmp_str);
  lua_createtable(L, (int)n, 0);
  size_t head = (size_t)(partial - text);
  for (i = 0; i < n; i++) {
    lua_pushlstring(L, text, head);
    lua_pushstring(L, names[i]);
    lua_concat(L, 2);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_replace(L, set);
  lua_pop(L, 1); /* names */
}

/* ------------------------------------------------------------- readline */

#ifdef MYDB_USE_READLINE

static lua_State *complete_L = NULL;
static int matches_ref = LUA_NOREF;

static int l_complete(lua_State *L) {
  cli_complete_push(L, lua_tostring(L, 1));
  return 1;
}

static char *generator(const char *text, int state) {
  static lua_Integer next_i;
  lua_State *L = complete_L;
  (void)text;
  if (state == 0) next_i = 1;
  if (matches_ref == LUA_NOREF) return NULL;
  lua_rawgeti(L, LUA_REGISTRYINDEX, matches_ref);
  lua_rawgeti(L, -1, next_i++);
  const char *s = lua_tostring(L, -1);
  char *r = s ? strdup(s) : NULL;
  lua_pop(L, 2);
  return r;
}

static char **attempt(const char *text, int start, int end) {
  lua_State *L = complete_L;
  (void)start;
  (void)end;
  rl_attempted_completion_over = 1; /* never fall back to file names */
  rl_completion_append_character = '\0';
  if (matches_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, matches_ref);
  matches_ref = LUA_NOREF;
  lua_pushcfunction(L, l_complete);
  lua_pushstring(L, text);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    lua_pop(L, 1);
    return NULL;
  }
  matches_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return rl_completion_matches(text, generator);
}

/* Lists matches by their last name only: "save  load ..." for db:<TAB><TAB>. */
static void display_matches(char **matches, int num, int max_length) {
  (void)max_length;
  char **names = malloc(sizeof(char *) * (size_t)(num + 2));
  if (names == NULL) return;
  int longest = 0;
  names[0] = matches[0];
  for (int i = 1; i <= num; i++) {
    const char *m = matches[i];
    const char *p = m + strlen(m);
    while (p > m && p[-1] != '.' && p[-1] != ':') p--;
    names[i] = (char *)(uintptr_t)p; /* readline's API is not const */
    int len = (int)strlen(p);
    if (len > longest) longest = len;
  }
  names[num + 1] = NULL;
  rl_display_match_list(names, num, longest);
  rl_forced_update_display();
  free(names);
}

void cli_completion_init(lua_State *L) {
  complete_L = L;
  rl_completion_display_matches_hook = display_matches;
  rl_readline_name = "mydb-lua";
  rl_attempted_completion_function = attempt;
  /* '.' and ':' are part of the word: "db:sa" is completed as a whole */
  rl_completer_word_break_characters = (char *)" \t\n\"\\'`@$><=;|&{(,+-*/%^~#[]";
  rl_completion_append_character = '\0';
}

#else

void cli_completion_init(lua_State *L) { (void)L; }

#endif
