/*
 * pretty.c - a bounded, readable rendering of Lua values for the prompt.
 *
 *   { 1, 2, 3, name = "x", ["a b"] = true, nested = { ... } }
 *
 * Limits keep any value cheap to show: nesting depth (deeper tables show as
 * {...}), items per table (then "... (N more)"), bytes per string, and the
 * total size of the output (then "..."). Output goes into one fixed buffer
 * of `width` bytes, so a 1,000,000-element table costs one pass over its
 * keys and prints a short prefix. A table that fits on one line stays on
 * one line; others are indented, one field a line. Tables with __tostring
 * show through it; cycles show as <cycle>. String keys are sorted (when a
 * table has at most SORT_MAX of them), after the array part.
 */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "cli.h"

#define SORT_MAX 10000
#define LINE 78

typedef struct pp {
  lua_State *L;
  const cli_pretty_opts *o;
  char *buf;
  size_t pos;   /* bytes written */
  size_t limit; /* writes stop here (the width, or a one-line attempt) */
  int over;     /* a write hit the limit */
  int seen;     /* stack index of the table of tables on the current path */
  int oneline;  /* inside a one-line attempt: nested tables stay on it */
} pp;

static void put(pp *p, const char *s, size_t n) {
  if (p->over) return;
  if (p->pos + n > p->limit) {
    n = p->limit - p->pos;
    p->over = 1;
  }
  memcpy(p->buf + p->pos, s, n);
  p->pos += n;
}

static void puts_(pp *p, const char *s) { put(p, s, strlen(s)); }

static void indent(pp *p, int n) {
  for (int i = 0; i < n && !p->over; i++) put(p, " ", 1);
}

static void put_string(pp *p, const char *s, size_t len) {
  size_t shown = len > p->o->string ? p->o->string : len;
  put(p, "\"", 1);
  for (size_t i = 0; i < shown && !p->over; i++) {
    unsigned char c = (unsigned char)s[i];
    char esc[8];
    switch (c) {
      case '"': put(p, "\\\"", 2); break;
      case '\\': put(p, "\\\\", 2); break;
      case '\n': put(p, "\\n", 2); break;
      case '\r': put(p, "\\r", 2); break;
      case '\t': put(p, "\\t", 2); break;
      default:
        if (c < 32 || c == 127) {
          int n = snprintf(esc, sizeof esc, "\\%u", (unsigned)c);
          /* \ddd must not run into a following digit */
          if (i + 1 < shown && s[i + 1] >= '0' && s[i + 1] <= '9')
            n = snprintf(esc, sizeof esc, "\\%03u", (unsigned)c);
          put(p, esc, (size_t)n);
        } else {
          put(p, (const char *)&c, 1);
        }
    }
  }
  put(p, "\"", 1);
  if (shown < len) {
    char more[48];
    int n = snprintf(more, sizeof more, "... (%zu bytes)", len);
    put(p, more, (size_t)n);
  }
}

static int is_identifier(const char *s, size_t len) {
  static const char *const keywords[] = {
      "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if",
      "in", "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while",
      NULL};
  if (len == 0 || strlen(s) != len) return 0;
  if (!(s[0] == '_' || (s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z'))) return 0;
  for (size_t i = 1; i < len; i++) {
    char c = s[i];
    if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
      return 0;
  }
  for (int i = 0; keywords[i]; i++)
    if (strcmp(s, keywords[i]) == 0) return 0;
  return 1;
}

/* Writes luaL_tolstring of the value at idx (honours __tostring/__name). */
static void put_tostring(pp *p, int idx) {
  size_t len;
  const char *s = luaL_tolstring(p->L, idx, &len);
  put(p, s, len);
  lua_pop(p->L, 1);
}

static void render(pp *p, int idx, int depth, int ind);

/* Sort keys: strings, then numbers, then booleans, then the rest. */
typedef struct skey {
  int cls;
  lua_Number num;
  const char *s;
  size_t len;
  int idx; /* position in the keys table */
} skey;

static int cmp_keys(const void *x, const void *y) {
  const skey *a = x, *b = y;
  if (a->cls != b->cls) return a->cls - b->cls;
  if (a->cls == 0) {
    size_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->s, b->s, n);
    if (c != 0) return c;
    return a->len < b->len ? -1 : a->len > b->len;
  }
  if (a->cls == 1 || a->cls == 2) return a->num < b->num ? -1 : a->num > b->num;
  return a->idx - b->idx;
}

static void put_key(pp *p, int kidx) {
  lua_State *L = p->L;
  if (lua_type(L, kidx) == LUA_TSTRING) {
    size_t len;
    const char *s = lua_tolstring(L, kidx, &len);
    if (is_identifier(s, len)) {
      put(p, s, len);
      puts_(p, " = ");
      return;
    }
  }
  put(p, "[", 1);
  render(p, kidx, 1 << 20, 0); /* a table key shows as {...} */
  puts_(p, "] = ");
}

/* The fields of table t (absolute index), one-line or indented. */
static void render_fields(pp *p, int t, int depth, int ind, int multiline) {
  lua_State *L = p->L;
  const int items = p->o->items;
  int shown = 0;
  lua_Integer border = 0;
  size_t nkeys = 0;
  const char *sep = multiline ? ",\n" : ", ";

  /* the array part 1..border */
  while (lua_rawgeti(L, t, border + 1) != LUA_TNIL) {
    border++;
    if (shown < items && !p->over) {
      if (!multiline || shown == 0) {
        put(p, shown ? sep : "", shown ? 2 : 0);
        if (multiline) indent(p, ind + 2);
        render(p, lua_gettop(L), depth + 1, ind + 2);
      } else { /* multiline: pack one-line items into rows */
        size_t save = p->pos;
        put(p, ", ", 2);
        render(p, lua_gettop(L), depth + 1, ind + 2);
        const char *nl = memrchr(p->buf, '\n', p->pos);
        size_t col = p->pos - (nl ? (size_t)(nl - p->buf) + 1 : 0);
        if (!p->over && (col > LINE || (nl && (size_t)(nl - p->buf) >= save))) {
          p->pos = save;
          put(p, ",\n", 2);
          indent(p, ind + 2);
          render(p, lua_gettop(L), depth + 1, ind + 2);
        }
      }
      shown++;
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);

  /* the other keys, collected (up to SORT_MAX) into a sequence */
  lua_createtable(L, 0, 0);
  int keys = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, t) != 0) {
    lua_pop(L, 1);
    if (lua_isinteger(L, -1)) {
      lua_Integer k = lua_tointeger(L, -1);
      if (k >= 1 && k <= border) continue;
    }
    nkeys++;
    if (nkeys <= SORT_MAX) {
      lua_pushvalue(L, -1);
      lua_rawseti(L, keys, (lua_Integer)nkeys);
    }
  }
  size_t nsort = nkeys <= SORT_MAX ? nkeys : 0;
  size_t ncol = nkeys <= SORT_MAX ? nkeys : SORT_MAX;
  skey *ks = NULL;
  if (ncol > 0) {
    ks = lua_newuserdatauv(L, sizeof *ks * ncol, 0);
    for (size_t i = 0; i < ncol; i++) {
      lua_rawgeti(L, keys, (lua_Integer)i + 1);
      skey *k = &ks[i];
      k->idx = (int)i + 1;
      k->s = NULL;
      k->len = 0;
      k->num = 0;
      switch (lua_type(L, -1)) {
        case LUA_TSTRING: k->cls = 0; k->s = lua_tolstring(L, -1, &k->len); break;
        case LUA_TNUMBER: k->cls = 1; k->num = lua_tonumber(L, -1); break;
        case LUA_TBOOLEAN: k->cls = 2; k->num = lua_toboolean(L, -1); break;
        default: k->cls = 3;
      }
      lua_pop(L, 1); /* the string stays alive in `keys` */
    }
    if (nsort > 1) qsort(ks, nsort, sizeof *ks, cmp_keys);
  }
  for (size_t i = 0; i < ncol && shown < items && !p->over; i++) {
    lua_rawgeti(L, keys, ks[i].idx);
    lua_pushvalue(L, -1);
    lua_rawget(L, t);
    put(p, shown ? sep : "", shown ? 2 : 0);
    if (multiline) indent(p, ind + 2);
    put_key(p, lua_gettop(L) - 1);
    render(p, lua_gettop(L), depth + 1, ind + 2);
    lua_pop(L, 2);
    shown++;
  }
  if (ncol > 0) lua_pop(L, 1); /* ks */
  lua_pop(L, 1);               /* keys */

  size_t total = (size_t)border + nkeys;
  if ((size_t)shown < total && !p->over) {
    char more[64];
    int n = snprintf(more, sizeof more, "... (%zu more)", total - (size_t)shown);
    put(p, sep, 2);
    if (multiline) indent(p, ind + 2);
    put(p, more, (size_t)n);
  }
}

static void render_table(pp *p, int t, int depth, int ind) {
  lua_State *L = p->L;
  lua_pushnil(L);
  if (lua_next(L, t) == 0) {
    puts_(p, "{}");
    return;
  }
  lua_pop(L, 2);
  if (depth >= p->o->depth) {
    puts_(p, "{...}");
    return;
  }
  lua_pushvalue(L, t);
  if (lua_rawget(L, p->seen) != LUA_TNIL) {
    lua_pop(L, 1);
    puts_(p, "<cycle>");
    return;
  }
  lua_pop(L, 1);
  lua_pushvalue(L, t);
  lua_pushboolean(L, 1);
  lua_rawset(L, p->seen);

  /* one line if it fits in what is left of this line */
  size_t start = p->pos, limit = p->limit;
  (void)ind;
  const char *nl = memrchr(p->buf, '\n', start);
  size_t col = start - (nl ? (size_t)(nl - p->buf) + 1 : 0);
  size_t room = col + 16 < LINE ? LINE - col : 16;
  int done = 0;
  if (p->o->multiline && !p->oneline && start + room < limit) {
    p->limit = start + room;
    p->oneline = 1;
    puts_(p, "{ ");
    render_fields(p, t, depth, ind, 0);
    puts_(p, " }");
    p->oneline = 0;
    p->limit = limit;
    if (!p->over) done = 1;
    if (!done) {
      p->over = 0;
      p->pos = start;
    }
  }
  if (!done) {
    int ml = p->o->multiline && !p->oneline;
    puts_(p, ml ? "{\n" : "{ ");
    render_fields(p, t, depth, ind, ml);
    if (ml) {
      put(p, "\n", 1);
      indent(p, ind);
      put(p, "}", 1);
    } else {
      puts_(p, " }");
    }
  }

  lua_pushvalue(L, t);
  lua_pushnil(L);
  lua_rawset(L, p->seen);
}

static void render(pp *p, int idx, int depth, int ind) {
  lua_State *L = p->L;
  if (p->over) return;
  luaL_checkstack(L, 12, "value too deep to print");
  switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, idx, &len);
      put_string(p, s, len);
      break;
    }
    case LUA_TTABLE:
      if (luaL_getmetafield(L, idx, "__tostring") != LUA_TNIL) {
        lua_pop(L, 1);
        put_tostring(p, idx);
      } else {
        render_table(p, lua_absindex(L, idx), depth, ind);
      }
      break;
    default:
      put_tostring(p, idx);
  }
}

void cli_pretty_defaults(cli_pretty_opts *o) {
  o->depth = 4;
  o->items = 100;
  o->width = 8192;
  o->string = 2048;
  o->multiline = 1;
}

void cli_pretty_push(lua_State *L, int idx, const cli_pretty_opts *o) {
  idx = lua_absindex(L, idx);
  pp p;
  p.L = L;
  p.o = o;
  p.buf = lua_newuserdatauv(L, o->width + 1, 0);
  p.pos = 0;
  p.limit = o->width;
  p.over = 0;
  p.oneline = 0;
  lua_newtable(L);
  p.seen = lua_gettop(L);
  render(&p, idx, 0, 0);
  if (p.over) { /* cut: end with an ellipsis, within the width */
    size_t keep = p.pos > 3 ? p.pos - 3 : 0;
    memcpy(p.buf + keep, "...", 3);
    p.pos = keep + 3;
  }
  lua_pushlstring(L, p.buf, p.pos);
  lua_replace(L, -3);
  lua_pop(L, 1);
}

static lua_Integer opt_int(lua_State *L, const char *field, lua_Integer dflt, lua_Integer min,
                           lua_Integer max) {
  if (lua_getfield(L, 2, field) == LUA_TNIL) {
    lua_pop(L, 1);
    return dflt;
  }
  int ok;
  lua_Integer v = lua_tointegerx(L, -1, &ok);
  if (!ok || v < min || v > max)
    luaL_error(L, "bad option '%s' to 'pp' (integer between %d and %d expected)", field, (int)min,
               (int)max);
  lua_pop(L, 1);
  return v;
}

int cli_l_pretty(lua_State *L) {
  cli_pretty_opts o;
  cli_pretty_defaults(&o);
  luaL_checkany(L, 1);
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    o.depth = (int)opt_int(L, "depth", o.depth, 0, 64);
    o.items = (int)opt_int(L, "items", o.items, 0, 1000000);
    o.width = (size_t)opt_int(L, "width", (lua_Integer)o.width, 16, 1 << 26);
    o.string = (size_t)opt_int(L, "string", (lua_Integer)o.string, 0, 1 << 26);
    if (lua_getfield(L, 2, "multiline") != LUA_TNIL) o.multiline = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  lua_settop(L, 1);
  cli_pretty_push(L, 1, &o);
  return 1;
}
