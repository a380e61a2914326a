/*
 * ltree_read.c - reading a collection tree in key order: the cursor behind
 * collection.range and collection.iter (ranges, prefixes, full scans).
 *
 *   core.tree_cursor(session, root, lo, lo_excl, hi, hi_excl, reverse, raw, ctx)
 *     -> next, cursor
 *
 * next() returns key, value (decoded with ctx; with raw, the record's JSON
 * text) of the records within the bounds (strings or nil, inclusive unless
 * *_excl), in key order or reversed, then nil. cursor:close() (also its
 * __close and __gc) lets go of the pieces it holds; next then returns nil.
 *
 * Why in C: the Lua reader parsed each leaf into a table of key strings and
 * one of value strings (kept in a Lua node cache: at 100,000 records every
 * value string stayed alive for the GC to walk), then decoded the values.
 * Here a leaf is a node of ltree.c's cache (its bytes and offset table);
 * the cursor holds a reference to the nodes on its path only, decodes a
 * leaf's values in range from the piece's bytes straight into one table it
 * reuses, and pushes each key when it is returned.
 *
 * No Lua error leaves a reference behind: the references are the cursor
 * userdata's, released by close or __gc.
 */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "lmydb.h"
#include "ltree.h"
#include "mydb.h"

#define CURSOR_MT "mydb.tree_cursor"
#define TREE_MT "mydb.tree"
#define MAX_HEIGHT 64

/* Uservalues of a cursor. */
enum { UV_SESSION = 1, UV_CTX, UV_LO, UV_HI, UV_COUNT = UV_HI };

typedef struct cursor {
  ltree *t;                      /* the session (uservalue UV_SESSION) */
  tnode *path[MAX_HEIGHT + 1];   /* path[0] the current leaf; a reference each */
  size_t idx[MAX_HEIGHT + 1];    /* index of path[h - 1] in path[h] */
  int H;                         /* height of the root; -1: nothing held */
  int started, done, rev, raw;
  const char *lo, *hi;           /* bounds (anchored by UV_LO, UV_HI), or NULL */
  size_t lolen, hilen;
  int lo_excl, hi_excl;
  /* the current leaf's records in range: [a, b]; i the next one */
  ptrdiff_t a, b, i;
  int last;                      /* the range ends in this leaf */
  lmydb_span *spans;             /* the values to decode, one leaf's */
  size_t cap;
} cursor;

static int kcmp(const char *a, size_t al, const char *b, size_t bl) {
  size_t m = al < bl ? al : bl;
  int r = m ? memcmp(a, b, m) : 0;
  if (r) return r;
  return (al > bl) - (al < bl);
}

static void release_path(cursor *c) {
  for (int h = 0; h <= c->H; h++) {
    lmydb_tree_unref(c->path[h]);
    c->path[h] = NULL;
  }
  c->H = -1;
}

static void cursor_release(cursor *c) {
  release_path(c);
  free(c->spans);
  c->spans = NULL;
  c->cap = 0;
  c->done = 1;
}

static int cursor_gc(lua_State *L) {
  cursor *c = luaL_checkudata(L, 1, CURSOR_MT);
  cursor_release(c);
  return 0;
}

/* The key of item i of a node. */
static const char *item_key(const tnode *n, size_t i, size_t *kl) {
  const char *k, *v;
  size_t vl;
  lmydb_node_item(n, i, &k, kl, &v, &vl);
  return k;
}

/* Last index whose key is <= key (0 when key precedes them all). */
static size_t floor_index(const tnode *n, const char *key, size_t kl) {
  size_t k0l;
  const char *k0 = item_key(n, 0, &k0l);
  if (kcmp(key, kl, k0, k0l) < 0) return 0;
  size_t lo = 0, hi = lmydb_node_count(n) - 1;
  while (lo < hi) {
    size_t mid = lo + (hi - lo + 1) / 2, ml;
    const char *mk = item_key(n, mid, &ml);
    if (kcmp(mk, ml, key, kl) <= 0) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/* First index whose key is >= key (count when none); *eq if it is key. */
static size_t lower_bound(const tnode *n, const char *key, size_t kl, int *eq) {
  size_t lo = 0, hi = lmydb_node_count(n);
  *eq = 0;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2, ml;
    const char *mk = item_key(n, mid, &ml);
    int r = kcmp(mk, ml, key, kl);
    if (r == 0) {
      *eq = 1;
      return mid;
    }
    if (r < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/* The child digest of item i of an inner node. */
static const unsigned char *child(const tnode *n, size_t i) {
  const char *k, *v;
  size_t kl, vl;
  lmydb_node_item(n, i, &k, &kl, &v, &vl);
  return (const unsigned char *)v;
}

/* Fails the cursor: nothing held any more, the session's failure raised. */
static int cursor_fail(lua_State *L, cursor *c) {
  cursor_release(c);
  return lmydb_tree_raise(L, c->t);
}

/* The path from root to the leaf of key (key NULL: the first leaf, or the
 * last one with rev). */
static void descend(lua_State *L, cursor *c, const unsigned char *root, const char *key, size_t kl) {
  tnode *chain[MAX_HEIGHT + 1];
  size_t idx[MAX_HEIGHT + 1];
  int depth = 0;
  const unsigned char *d = root;
  for (;;) {
    tnode *n = depth > MAX_HEIGHT ? NULL : lmydb_tree_load(c->t, d, 0);
    if (!n) {
      if (depth > MAX_HEIGHT) lmydb_tree_corrupt(c->t, "is too deep");
      for (int j = 0; j < depth; j++) lmydb_tree_unref(chain[j]);
      cursor_fail(L, c);
    }
    chain[depth] = n;
    idx[depth] = 0;
    depth++;
    if (lmydb_node_leaf(n)) break;
    size_t i = key ? floor_index(n, key, kl) : c->rev ? lmydb_node_count(n) - 1 : 0;
    idx[depth - 1] = i;
    d = child(n, i);
  }
  c->H = depth - 1;
  for (int h = 0; h <= c->H; h++) {
    c->path[h] = chain[depth - 1 - h];
    c->idx[h] = h ? idx[depth - 1 - h] : 0;
  }
}

/* Moves the path to the next leaf (dir 1) or the previous one (-1): 1, or
 * 0 at the end of the tree. Raises on a failed read (nothing held). */
static int step(lua_State *L, cursor *c, int dir) {
  int a = 1;
  while (a <= c->H) {
    size_t i = c->idx[a];
    if (dir > 0 ? i + 1 < lmydb_node_count(c->path[a]) : i > 0) break;
    a++;
  }
  if (a > c->H) return 0;
  lmydb_tree_check(L, lua_upvalueindex(2)); /* the session, before reading */
  c->idx[a] = dir > 0 ? c->idx[a] + 1 : c->idx[a] - 1;
  for (int g = a - 1; g >= 0; g--) {
    tnode *n = lmydb_tree_load(c->t, child(c->path[g + 1], c->idx[g + 1]), g == 0);
    if (!n) cursor_fail(L, c);
    lmydb_tree_unref(c->path[g]);
    c->path[g] = n;
    if (lmydb_node_leaf(n) != (g == 0)) {
      lmydb_tree_corrupt(c->t, "has leaves at different depths");
      cursor_fail(L, c);
    }
    c->idx[g] = g == 0 || dir > 0 ? 0 : lmydb_node_count(n) - 1;
  }
  return 1;
}

/* Takes the current leaf's records in range, decoding their values into
 * the table at upvalue 3: 1, or 0 when the range is over. */
static int take_leaf(lua_State *L, cursor *c) {
  for (;;) {
    const tnode *leaf = c->path[0];
    size_t n = lmydb_node_count(leaf);
    int eq;
    ptrdiff_t a = 0, b = (ptrdiff_t)n - 1;
    if (c->lo) {
      a = (ptrdiff_t)lower_bound(leaf, c->lo, c->lolen, &eq);
      if (eq && c->lo_excl) a++;
    }
    if (c->hi) {
      b = (ptrdiff_t)lower_bound(leaf, c->hi, c->hilen, &eq);
      if (!eq || c->hi_excl) b--;
    }
    c->last = c->rev ? a > 0 : b < (ptrdiff_t)n - 1;
    if (a <= b) {
      c->a = a;
      c->b = b;
      c->i = c->rev ? b : a;
      if (!c->raw) {
        size_t m = (size_t)(b - a + 1);
        if (m > c->cap) {
          lmydb_span *s = realloc(c->spans, m * sizeof *s);
          if (!s) {
            cursor_release(c);
            return lmydb_error(L, "out_of_memory", "out of memory reading a collection");
          }
          c->spans = s;
          c->cap = m;
        }
        for (size_t j = 0; j < m; j++) {
          const char *k;
          size_t kl;
          lmydb_node_item(leaf, (size_t)a + j, &k, &kl, &c->spans[j].p, &c->spans[j].len);
        }
        lua_getiuservalue(L, lua_upvalueindex(1), UV_CTX);
        int done = c->done;
        c->done = 1; /* (a malformed value ends the iteration) */
        lmydb_decode_spans(L, lua_gettop(L), lua_upvalueindex(3), c->spans, m);
        c->done = done;
        lua_pop(L, 1);
      }
      return 1;
    }
    if (c->last || !step(L, c, c->rev ? -1 : 1)) return 0;
  }
}

/* next() -> key, value | nil (upvalues: the cursor, its session, the
 * values table) */
static int cursor_next(lua_State *L) {
  cursor *c = lua_touserdata(L, lua_upvalueindex(1));
  if (c->done) return 0;
  if (!c->started) {
    c->started = 1;
    if (!take_leaf(L, c)) goto over;
  } else if (c->rev ? c->i < c->a : c->i > c->b) {
    if (c->last || !step(L, c, c->rev ? -1 : 1) || !take_leaf(L, c)) goto over;
  }
  {
    const char *k, *v;
    size_t kl, vl;
    lmydb_node_item(c->path[0], (size_t)c->i, &k, &kl, &v, &vl);
    lua_pushlstring(L, k, kl);
    if (c->raw) lua_pushlstring(L, v, vl);
    else lua_rawgeti(L, lua_upvalueindex(3), (lua_Integer)(c->i - c->a + 1));
    c->i += c->rev ? -1 : 1;
    return 2;
  }
over:
  cursor_release(c);
  return 0;
}

static int cursor_close(lua_State *L) {
  cursor_release(luaL_checkudata(L, 1, CURSOR_MT));
  return 0;
}

/* A bound argument: nil, or a string kept in uservalue uv. */
static const char *bound(lua_State *L, int arg, int cu, int uv, size_t *len) {
  if (lua_isnoneornil(L, arg)) return NULL;
  const char *s = luaL_checklstring(L, arg, len);
  lua_pushvalue(L, arg);
  lua_setiuservalue(L, cu, uv);
  return s;
}

static int hexval(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  return -1;
}

/* core.tree_cursor(session, root, lo, lo_excl, hi, hi_excl, reverse, raw, ctx)
 * -> next, cursor (root nil: an empty range) */
static int l_tree_cursor(lua_State *L) {
  luaL_checkudata(L, 1, TREE_MT);
  lua_settop(L, 9);
  unsigned char root[32];
  int has_root = !lua_isnil(L, 2);
  if (has_root) {
    size_t len;
    const char *s = lua_type(L, 2) == LUA_TSTRING ? lua_tolstring(L, 2, &len) : NULL;
    int ok = s && mydb_digest_valid(s, len);
    for (size_t i = 0; ok && i < 32; i++) {
      int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
      if (hi < 0 || lo < 0) ok = 0;
      else root[i] = (unsigned char)(hi << 4 | lo);
    }
    if (!ok) lmydb_error(L, "invalid_argument", "a root is a digest (64 lowercase hex characters) or nil");
  }
  cursor *c = lua_newuserdatauv(L, sizeof *c, UV_COUNT);
  memset(c, 0, sizeof *c);
  c->H = -1;
  c->done = 1;
  luaL_setmetatable(L, CURSOR_MT);
  int cu = lua_gettop(L);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, cu, UV_SESSION);
  lua_pushvalue(L, 9);
  lua_setiuservalue(L, cu, UV_CTX);
  c->lo = bound(L, 3, cu, UV_LO, &c->lolen);
  c->lo_excl = lua_toboolean(L, 4);
  c->hi = bound(L, 5, cu, UV_HI, &c->hilen);
  c->hi_excl = lua_toboolean(L, 6);
  c->rev = lua_toboolean(L, 7);
  c->raw = lua_toboolean(L, 8);
  /* next's upvalues: the cursor, the session, the values table */
  lua_pushvalue(L, cu);
  lua_pushvalue(L, 1);
  lua_createtable(L, 32, 0);
  lua_pushcclosure(L, cursor_next, 3);
  lua_insert(L, cu); /* next, cursor */
  if (has_root) {
    c->t = lmydb_tree_check(L, 1);
    c->done = 0;
    const char *key = c->rev ? c->hi : c->lo;
    size_t kl = c->rev ? c->hilen : c->lolen;
    descend(L, c, root, key, kl);
  }
  return 2;
}

void lmydb_open_read(lua_State *L) {
  static const luaL_Reg methods[] = {{"close", cursor_close}, {NULL, NULL}};
  luaL_newmetatable(L, CURSOR_MT);
  lua_newtable(L);
  luaL_setfuncs(L, methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, cursor_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, cursor_close);
  lua_setfield(L, -2, "__close");
  lua_pop(L, 1);
  lua_pushcfunction(L, l_tree_cursor);
  lua_setfield(L, -2, "tree_cursor");
}
