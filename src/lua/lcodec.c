/*
 * lcodec.c - the canonical codec between Lua values and JSON bytes.
 *
 * One value gives one byte string (see doc/FORMAT.md, "Canonical value
 * encoding"), so that equal values get equal digests. Decoding rebuilds
 * integers as integers, floats as floats, byte strings exactly, shared and
 * cyclic tables as shared and cyclic tables.
 *
 * Extension points are Lua functions found in a context table:
 *   encode: ctx.hook(v) -> kind, a, b   for tables with a metatable (or every
 *             table when ctx.hook_all), and for userdata:
 *             nil                         not handled
 *             "object", name [, refset]   {"__object__":name, fields}
 *             "special", tag, payload     {"__special__":tag, payload}
 *             "plain", refset             an ordinary table with ref fields
 *           ctx.ref_save(v) -> digest     stores a use_refs field in refs
 *   decode: ctx.classes[name] -> metatable
 *           ctx.special(tag, payload) -> value
 *           ctx.ref_load(digest) -> value
 *
 * Memory: all scratch memory hangs off a userdata on the Lua stack, so an
 * error raised anywhere (by Lua, by a hook, or by us) leaks nothing.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "base64.h"
#include "buf.h"
#include "jsonstr.h"
#include "lmydb.h"
#include "mydb.h"
#include "numtext.h"

#define CODEC_MAX_DEPTH 1000
#define CODEC_STATE_MT "mydb.codec_state"

/* ------------------------------------------------------------ scratch state */

typedef struct keyrec {
  int type;          /* LUA_TSTRING, LUA_TNUMBER, LUA_TBOOLEAN */
  int isint;
  lua_Integer i;
  double d;
  const char *s;
  size_t len;
  lua_Integer anchor; /* index in the anchor table */
} keyrec;

typedef struct codec_state {
  int cached;        /* 1: the module's reusable state (upvalue 1) */
  int busy;          /* 1: in use by a call (a nested call makes its own) */
  mydb_buf out;      /* encoder output */
  mydb_buf str;      /* decoder: one string at a time */
  mydb_buf path;     /* encoder: path of the failing value, built on unwind */
  keyrec *keys;      /* stack of key records, one region per open table */
  size_t nkeys, capkeys;
  /* The cached state's encoder tables, kept between calls (registry refs,
   * LUA_NOREF until first used): the tables met (cycles and shared ones)
   * and the anchor of the key records' strings, indexed as st->keys. Two
   * tables and their parts were four allocations of every core.encode,
   * a tenth of a put's. Emptied when the call ends; dropped when large. */
  int seen_ref, anchor_ref;
  size_t anchor_hi; /* highest anchor index set since emptied */
} codec_state;

/* Tables kept between calls: at most this many entries are emptied one by
 * one at the end of a call; a larger one is dropped for the collector. */
#define KEPT_TABLE_MAX 256

static void drop_ref(lua_State *L, int *ref) {
  if (*ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, *ref);
  *ref = LUA_NOREF;
}

/* Pushes the kept table of *ref (made now if there is none). */
static void push_kept(lua_State *L, int *ref) {
  if (*ref == LUA_NOREF || lua_rawgeti(L, LUA_REGISTRYINDEX, *ref) != LUA_TTABLE) {
    if (*ref != LUA_NOREF) lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    *ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
}

/* Empties the kept tables after a call (or drops them when large). */
static void empty_kept(lua_State *L, codec_state *st) {
  if (st->anchor_ref != LUA_NOREF) {
    if (st->anchor_hi > KEPT_TABLE_MAX) {
      drop_ref(L, &st->anchor_ref);
    } else {
      lua_rawgeti(L, LUA_REGISTRYINDEX, st->anchor_ref);
      for (size_t i = 1; i <= st->anchor_hi; i++) {
        lua_pushnil(L);
        lua_rawseti(L, -2, (lua_Integer)i);
      }
      lua_pop(L, 1);
    }
    st->anchor_hi = 0;
  }
  if (st->seen_ref != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, st->seen_ref);
    int t = lua_gettop(L), n = 0;
    lua_pushnil(L);
    while (n <= KEPT_TABLE_MAX && lua_next(L, t)) {
      lua_pop(L, 1);
      lua_pushvalue(L, -1);
      lua_pushnil(L);
      lua_rawset(L, t); /* (clearing a field during the traversal is allowed) */
      n++;
    }
    if (n > KEPT_TABLE_MAX) drop_ref(L, &st->seen_ref);
    lua_settop(L, t - 1);
  }
}

static int state_gc(lua_State *L) {
  codec_state *st = luaL_checkudata(L, 1, CODEC_STATE_MT);
  drop_ref(L, &st->seen_ref);
  drop_ref(L, &st->anchor_ref);
  mydb_buf_free(&st->out);
  mydb_buf_free(&st->str);
  mydb_buf_free(&st->path);
  free(st->keys);
  st->keys = NULL;
  st->nkeys = st->capkeys = 0;
  return 0;
}

/* Releases a state at the end of a call (normal return or error): the
 * cached state keeps its buffers (trimmed when large) for the next call. */
static int state_close(lua_State *L) {
  codec_state *st = luaL_checkudata(L, 1, CODEC_STATE_MT);
  if (!st->cached) return state_gc(L);
  empty_kept(L, st);
  st->busy = 0;
  st->out.len = st->str.len = st->path.len = 0;
  st->nkeys = 0;
  if (st->out.cap > (1u << 20)) mydb_buf_free(&st->out);
  if (st->str.cap > (1u << 20)) mydb_buf_free(&st->str);
  return 0;
}

/* The cached state's key in the registry (for lmydb_decode_spans, which
 * is no codec function and has not its upvalue). */
static const char state_key = 0;

static codec_state *new_state(lua_State *L, int cached) {
  codec_state *st = lua_newuserdatauv(L, sizeof *st, 0);
  memset(st, 0, sizeof *st);
  st->cached = cached;
  st->seen_ref = st->anchor_ref = LUA_NOREF;
  if (luaL_newmetatable(L, CODEC_STATE_MT)) {
    lua_pushcfunction(L, state_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, state_close);
    lua_setfield(L, -2, "__close");
  }
  lua_setmetatable(L, -2);
  return st;
}

/* Pushes a state for this call, marked to-be-closed so that it is released
 * however the call ends: the module's cached one, or a new one when the
 * cached one is busy (a hook calling the codec again). */
static codec_state *push_state(lua_State *L) {
  codec_state *st = lua_touserdata(L, lua_upvalueindex(1));
  if (st && !st->busy) {
    st->busy = 1;
    lua_pushvalue(L, lua_upvalueindex(1));
  } else {
    st = new_state(L, 0);
  }
  lua_toclose(L, -1);
  return st;
}

static void check_out(lua_State *L, const mydb_buf *b) {
  if (b->failed) lmydb_error(L, "out_of_memory", "not enough memory to encode");
}

static keyrec *keys_reserve(lua_State *L, codec_state *st, size_t n) {
  if (st->capkeys - st->nkeys < n) {
    size_t cap = st->capkeys ? st->capkeys : 64;
    while (cap - st->nkeys < n) {
      if (cap > SIZE_MAX / 2 / sizeof(keyrec)) lmydb_error(L, "out_of_memory", "too many keys");
      cap *= 2;
    }
    keyrec *k = realloc(st->keys, cap * sizeof *k);
    if (!k) lmydb_error(L, "out_of_memory", "not enough memory for keys");
    st->keys = k;
    st->capkeys = cap;
  }
  return st->keys + st->nkeys;
}

/* ----------------------------------------------------------------- encoder */

typedef struct enc {
  lua_State *L;
  codec_state *st;
  int seen;          /* stack index: table -> id */
  int hook;          /* stack index of ctx.hook, or 0 */
  int hook_all;
  int ref_save;      /* stack index of ctx.ref_save, or 0 */
  lua_Integer next_id;
  int depth;
  const char *errcode; /* set on failure */
  int errval;        /* 1: a hook raised; its error value is at errslot */
  int errslot;       /* stack index reserved for that error value */
  char errmsg[256];
} enc;

#define ENC_FAIL (-1)

static int enc_fail(enc *e, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int enc_fail(enc *e, const char *code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->errmsg, sizeof e->errmsg, fmt, ap);
  va_end(ap);
  e->errcode = code;
  return ENC_FAIL;
}

static int is_ident(const char *s, size_t len) {
  static const char *const reserved[] = {
      "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if",
      "in", "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while"};
  if (len == 0 || len > 64) return 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    int ok = (c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (i > 0 && c >= '0' && c <= '9'));
    if (!ok) return 0;
  }
  for (size_t i = 0; i < sizeof reserved / sizeof *reserved; i++)
    if (strlen(reserved[i]) == len && memcmp(reserved[i], s, len) == 0) return 0;
  return 1;
}

/* Prepends one path segment for the key at stack index k. */
static void path_prepend(enc *e, int k) {
  lua_State *L = e->L;
  char seg[96];
  size_t n;
  int t = lua_type(L, k);
  if (t == LUA_TSTRING) {
    size_t len;
    const char *s = lua_tolstring(L, k, &len);
    if (is_ident(s, len)) n = (size_t)snprintf(seg, sizeof seg, ".%.*s", (int)len, s);
    else {
      mydb_buf q = MYDB_BUF_INIT;
      mydb_json_put_string(&q, s, len > 60 ? 60 : len);
      n = (size_t)snprintf(seg, sizeof seg, "[%.*s%s]", q.failed ? 0 : (int)q.len,
                           q.data ? q.data : "", len > 60 ? "..." : "");
      mydb_buf_free(&q);
    }
  } else if (t == LUA_TNUMBER && lua_isinteger(L, k)) {
    n = (size_t)snprintf(seg, sizeof seg, "[%lld]", (long long)lua_tointeger(L, k));
  } else if (t == LUA_TNUMBER) {
    n = (size_t)snprintf(seg, sizeof seg, "[%.17g]", (double)lua_tonumber(L, k));
  } else if (t == LUA_TBOOLEAN) {
    n = (size_t)snprintf(seg, sizeof seg, "[%s]", lua_toboolean(L, k) ? "true" : "false");
  } else {
    n = (size_t)snprintf(seg, sizeof seg, "[?]");
  }
  if (n >= sizeof seg) n = sizeof seg - 1;
  mydb_buf *p = &e->st->path;
  if (mydb_buf_grow(p, n) != 0) return;
  memmove(p->data + n, p->data, p->len);
  memcpy(p->data, seg, n);
  p->len += n;
}

static void put_integer(mydb_buf *b, lua_Integer i) {
  char tmp[24];
  size_t n = sizeof tmp;
  /* (as unsigned: the most negative integer has no positive twin) */
  unsigned long long u = i < 0 ? 0ULL - (unsigned long long)i : (unsigned long long)i;
  do {
    tmp[--n] = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  if (i < 0) tmp[--n] = '-';
  mydb_buf_put(b, tmp + n, sizeof tmp - n);
}

/* Shortest decimal that reads back to d, always marked as a float. */
static void put_float(mydb_buf *b, double d) {
  if (isnan(d)) { mydb_buf_puts(b, "{\"__float__\":\"nan\"}"); return; }
  if (isinf(d)) { mydb_buf_puts(b, d > 0 ? "{\"__float__\":\"inf\"}" : "{\"__float__\":\"-inf\"}"); return; }
  char tmp[MYDB_NUMTEXT_MAX];
  size_t n = mydb__numtext(tmp, d);
  mydb_buf_put(b, tmp, n);
  if (!strpbrk(tmp, ".e")) mydb_buf_puts(b, ".0");
}

static void put_string(mydb_buf *b, const char *s, size_t len) {
  if (mydb_utf8_valid(s, len)) {
    mydb_json_put_string(b, s, len);
  } else {
    mydb_buf_puts(b, "{\"__bytes__\":\"");
    mydb__b64_encode(b, (const unsigned char *)s, len);
    mydb_buf_puts(b, "\"}");
  }
}

/* A number or a string at idx as core.encode writes it (lcommit.c builds
 * a commit's bytes with it: the codec stays the one owner of the number and
 * string forms). 0, or -1 if the value is neither. */
int lmydb_put_scalar(lua_State *L, int idx, mydb_buf *b) {
  if (lua_type(L, idx) == LUA_TNUMBER) {
    if (lua_isinteger(L, idx)) put_integer(b, lua_tointeger(L, idx));
    else put_float(b, (double)lua_tonumber(L, idx));
    return 0;
  }
  if (lua_type(L, idx) == LUA_TSTRING) {
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    put_string(b, s, len);
    return 0;
  }
  return -1;
}

static int encode_value(enc *e, int idx);

/* Calls f(v) under pcall; on error keeps the error value on top. */
static int enc_call(enc *e, int fidx, int vidx, int nres) {
  lua_State *L = e->L;
  lua_pushvalue(L, fidx);
  lua_pushvalue(L, vidx);
  if (lua_pcall(L, 1, nres, 0) != LUA_OK) {
    lua_replace(L, e->errslot);
    e->errval = 1;
    e->errcode = "handler_error";
    return ENC_FAIL;
  }
  return 0;
}

/* Encodes the value at vidx, or {"__ref__":digest} when refset[key] holds. */
static int encode_field(enc *e, int refset, int kidx, int vidx) {
  lua_State *L = e->L;
  if (refset) {
    lua_pushvalue(L, kidx);
    int inref = lua_rawget(L, refset) != LUA_TNIL && lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (inref) {
      if (!e->ref_save) return enc_fail(e, "invalid_argument", "use_refs needs a store");
      if (enc_call(e, e->ref_save, vidx, 1) != 0) return ENC_FAIL;
      size_t dl;
      const char *dg = lua_tolstring(L, -1, &dl);
      if (!dg) { lua_pop(L, 1); return enc_fail(e, "handler_error", "ref_save returned no digest"); }
      mydb_buf_puts(&e->st->out, "{\"__ref__\":");
      mydb_json_put_string(&e->st->out, dg, dl);
      mydb_buf_putc(&e->st->out, '}');
      lua_pop(L, 1);
      return 0;
    }
  }
  return encode_value(e, vidx);
}

static int cmp_strkey(const void *a, const void *b) {
  const keyrec *x = a, *y = b;
  size_t n = x->len < y->len ? x->len : y->len;
  int c = memcmp(x->s, y->s, n);
  if (c) return c;
  return (x->len > y->len) - (x->len < y->len);
}

static int type_rank(const keyrec *k) {
  return k->type == LUA_TBOOLEAN ? 0 : k->type == LUA_TNUMBER ? 1 : 2;
}

/* int vs float, exactly; the float is never integral within int64 range
 * because Lua normalizes such keys to integers. */
static int cmp_int_float(lua_Integer i, double d) {
  if (d >= 9223372036854775808.0) return -1;
  if (d < -9223372036854775808.0) return 1;
  double f = floor(d);
  lua_Integer fi = (lua_Integer)f;
  if (i <= fi) return (i < fi || f < d) ? -1 : 0;
  return 1;
}

static int cmp_anykey(const void *a, const void *b) {
  const keyrec *x = a, *y = b;
  int rx = type_rank(x), ry = type_rank(y);
  if (rx != ry) return rx - ry;
  if (x->type == LUA_TBOOLEAN) return (int)x->i - (int)y->i;
  if (x->type == LUA_TSTRING) return cmp_strkey(a, b);
  if (x->isint && y->isint) return (x->i > y->i) - (x->i < y->i);
  if (!x->isint && !y->isint) return (x->d > y->d) - (x->d < y->d);
  if (x->isint) return cmp_int_float(x->i, y->d);
  return -cmp_int_float(y->i, x->d);
}

enum { SHAPE_EMPTY, SHAPE_SEQ, SHAPE_STRMAP, SHAPE_GENERAL };

/* Classifies the table at t: empty, sequence 1..n, plain string map, other. */
static int table_shape(lua_State *L, int t, size_t *count) {
  size_t n = 0;
  int strmap = 1, seq = 1;
  lua_Integer maxk = 0;
  lua_pushnil(L);
  while (lua_next(L, t)) {
    n++;
    if (lua_type(L, -2) == LUA_TSTRING) {
      size_t len;
      const char *s = lua_tolstring(L, -2, &len);
      /* object keys must be plain: no tag prefix, valid UTF-8 (JSON text) */
      if (strmap && ((len >= 2 && s[0] == '_' && s[1] == '_') || !mydb_utf8_valid(s, len)))
        strmap = 0;
      seq = 0;
    } else {
      strmap = 0;
      if (lua_isinteger(L, -2)) {
        lua_Integer k = lua_tointeger(L, -2);
        if (k < 1) seq = 0;
        else if (k > maxk) maxk = k;
      } else {
        seq = 0;
      }
    }
    lua_pop(L, 1);
  }
  *count = n;
  if (n == 0) return SHAPE_EMPTY;
  if (seq && (lua_Integer)n == maxk) return SHAPE_SEQ;
  if (strmap) return SHAPE_STRMAP;
  return SHAPE_GENERAL;
}

/* Collects the keys of table t into key records, anchored in a new table
 * pushed on the stack; sorts them. Returns the base of the records. */
static size_t collect_keys(enc *e, int t, size_t n, int general) {
  lua_State *L = e->L;
  codec_state *st = e->st;
  keys_reserve(L, st, n);
  size_t base = st->nkeys;
  size_t at = 0; /* anchor index of the first key, minus one */
  if (st->cached) {
    push_kept(L, &st->anchor_ref);
    at = base;
    if (base + n > st->anchor_hi) st->anchor_hi = base + n;
  } else {
    lua_createtable(L, (int)(n > INT32_MAX ? 0 : n), 0);
  }
  int anchor = lua_gettop(L);
  size_t i = 0;
  lua_pushnil(L);
  while (lua_next(L, t)) {
    lua_pop(L, 1);
    if (i == n) continue; /* cannot happen: table unchanged since counted */
    keyrec *k = &st->keys[base + i];
    memset(k, 0, sizeof *k);
    k->type = lua_type(L, -1);
    k->anchor = (lua_Integer)(at + i + 1);
    if (k->type == LUA_TSTRING) k->s = lua_tolstring(L, -1, &k->len);
    else if (k->type == LUA_TNUMBER) {
      k->isint = lua_isinteger(L, -1);
      if (k->isint) k->i = lua_tointeger(L, -1);
      else k->d = lua_tonumber(L, -1);
    } else if (k->type == LUA_TBOOLEAN) k->i = lua_toboolean(L, -1);
    lua_pushvalue(L, -1);
    lua_rawseti(L, anchor, k->anchor);
    i++;
  }
  st->nkeys = base + i;
  qsort(st->keys + base, i, sizeof(keyrec), general ? cmp_anykey : cmp_strkey);
  return base;
}

/* Writes the fields of a plain string map: "k":v,... (sorted). */
static int encode_strmap_fields(enc *e, int t, size_t n, int refset, int leading_comma) {
  lua_State *L = e->L;
  size_t base = collect_keys(e, t, n, 0);
  int anchor = lua_gettop(L);
  int rc = 0;
  for (size_t i = 0; i < n && rc == 0; i++) {
    keyrec *k = &e->st->keys[base + i];
    if (i > 0 || leading_comma) mydb_buf_putc(&e->st->out, ',');
    mydb_json_put_string(&e->st->out, k->s, k->len);
    mydb_buf_putc(&e->st->out, ':');
    lua_rawgeti(L, anchor, k->anchor);
    lua_pushvalue(L, -1);
    lua_rawget(L, t);
    rc = encode_field(e, refset, lua_gettop(L) - 1, lua_gettop(L));
    if (rc != 0) path_prepend(e, lua_gettop(L) - 1);
    lua_pop(L, 2);
  }
  e->st->nkeys = base;
  lua_pop(L, 1);
  return rc;
}

/* Writes [[k,v],...] for any table (sorted in canonical key order). */
static int encode_pairs(enc *e, int t, size_t n, int refset) {
  lua_State *L = e->L;
  lua_pushnil(L);
  while (lua_next(L, t)) {
    int kt = lua_type(L, -2);
    if (kt != LUA_TSTRING && kt != LUA_TNUMBER && kt != LUA_TBOOLEAN) {
      lua_pop(L, 1);
      int rc = enc_fail(e, "unsupported_value", "a %s cannot be stored as a table key",
                        luaL_typename(L, -1));
      lua_pop(L, 1);
      return rc;
    }
    lua_pop(L, 1);
  }
  size_t base = collect_keys(e, t, n, 1);
  int anchor = lua_gettop(L);
  int rc = 0;
  mydb_buf_putc(&e->st->out, '[');
  for (size_t i = 0; i < n && rc == 0; i++) {
    keyrec *k = &e->st->keys[base + i];
    if (i > 0) mydb_buf_putc(&e->st->out, ',');
    mydb_buf_putc(&e->st->out, '[');
    lua_rawgeti(L, anchor, k->anchor);
    int kidx = lua_gettop(L);
    rc = encode_value(e, kidx);
    if (rc == 0) {
      mydb_buf_putc(&e->st->out, ',');
      lua_pushvalue(L, kidx);
      lua_rawget(L, t);
      rc = encode_field(e, lua_type(L, kidx) == LUA_TSTRING ? refset : 0, kidx, lua_gettop(L));
      lua_pop(L, 1);
    }
    if (rc != 0) path_prepend(e, kidx);
    lua_pop(L, 1);
    mydb_buf_putc(&e->st->out, ']');
  }
  mydb_buf_putc(&e->st->out, ']');
  e->st->nkeys = base;
  lua_pop(L, 1);
  return rc;
}

/* Writes the body of table t: [..], {..} or {"__map__":..}. With a class
 * name, writes {"__object__":name, fields} or {"__map__":..,"__object__":..}. */
static int encode_body(enc *e, int t, const char *cls, size_t clslen, int refset) {
  lua_State *L = e->L;
  mydb_buf *out = &e->st->out;
  size_t n;
  int shape = table_shape(L, t, &n);
  if (cls && shape == SHAPE_SEQ) shape = SHAPE_GENERAL; /* objects are maps */
  switch (shape) {
    case SHAPE_EMPTY:
      if (cls) {
        mydb_buf_puts(out, "{\"__object__\":");
        mydb_json_put_string(out, cls, clslen);
        mydb_buf_putc(out, '}');
      } else {
        mydb_buf_puts(out, "{}");
      }
      return 0;
    case SHAPE_SEQ: {
      mydb_buf_putc(out, '[');
      for (size_t i = 1; i <= n; i++) {
        if (i > 1) mydb_buf_putc(out, ',');
        lua_rawgeti(L, t, (lua_Integer)i);
        int rc = encode_value(e, lua_gettop(L));
        lua_pop(L, 1);
        if (rc != 0) {
          lua_pushinteger(L, (lua_Integer)i);
          path_prepend(e, lua_gettop(L));
          lua_pop(L, 1);
          return rc;
        }
      }
      mydb_buf_putc(out, ']');
      return 0;
    }
    case SHAPE_STRMAP: {
      mydb_buf_putc(out, '{');
      if (cls) {
        mydb_buf_puts(out, "\"__object__\":");
        mydb_json_put_string(out, cls, clslen);
      }
      int rc = encode_strmap_fields(e, t, n, refset, cls != NULL);
      mydb_buf_putc(out, '}');
      return rc;
    }
    default: {
      mydb_buf_puts(out, "{\"__map__\":");
      int rc = encode_pairs(e, t, n, refset);
      if (cls) {
        mydb_buf_puts(out, ",\"__object__\":");
        mydb_json_put_string(out, cls, clslen);
      }
      mydb_buf_putc(out, '}');
      return rc;
    }
  }
}

/* The payload of a handler value: inline fields when it is a map of string
 * keys (a ref handler's "__digest__" included), else under "__value__". */
static int encode_special(enc *e, int tagidx, int payload) {
  lua_State *L = e->L;
  mydb_buf *out = &e->st->out;
  size_t taglen;
  const char *tag = lua_tolstring(L, tagidx, &taglen);
  if (!tag) return enc_fail(e, "handler_error", "handler returned no tag");
  int inline_ok = 0;
  size_t n = 0;
  if (lua_type(L, payload) == LUA_TTABLE && !lua_getmetatable(L, payload)) {
    inline_ok = 1;
    lua_pushnil(L);
    while (lua_next(L, payload)) {
      lua_pop(L, 1);
      n++;
      size_t kl;
      const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &kl) : NULL;
      if (!k || (kl >= 2 && k[0] == '_' && k[1] == '_' &&
                 !(kl == 10 && memcmp(k, "__digest__", 10) == 0)))
        inline_ok = 0;
    }
  } else if (lua_type(L, payload) == LUA_TTABLE) {
    lua_pop(L, 1); /* the metatable pushed by lua_getmetatable */
  }
  if (!inline_ok) {
    mydb_buf_puts(out, "{\"__special__\":");
    mydb_json_put_string(out, tag, taglen);
    mydb_buf_puts(out, ",\"__value__\":");
    int rc = encode_value(e, payload);
    mydb_buf_putc(out, '}');
    return rc;
  }
  /* "__digest__" sorts before "__special__"; the other fields after it. */
  mydb_buf_putc(out, '{');
  lua_getfield(L, payload, "__digest__");
  int has_digest = !lua_isnil(L, -1);
  if (has_digest) {
    size_t dl;
    const char *d = lua_tolstring(L, -1, &dl);
    if (!d || lua_type(L, -1) != LUA_TSTRING) {
      lua_pop(L, 1);
      return enc_fail(e, "handler_error", "__digest__ must be a string");
    }
    mydb_buf_puts(out, "\"__digest__\":");
    mydb_json_put_string(out, d, dl);
    mydb_buf_putc(out, ',');
    n--;
  }
  lua_pop(L, 1);
  mydb_buf_puts(out, "\"__special__\":");
  mydb_json_put_string(out, tag, taglen);
  if (n == 0) {
    mydb_buf_putc(out, '}');
    return 0;
  }
  /* Encode the fields without __digest__: copy into a scratch table. */
  lua_createtable(L, 0, (int)(n > INT32_MAX ? 0 : n));
  int copy = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, payload)) {
    size_t kl;
    const char *k = lua_tolstring(L, -2, &kl);
    if (kl == 10 && memcmp(k, "__digest__", 10) == 0) { lua_pop(L, 1); continue; }
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, copy);
  }
  int rc = encode_strmap_fields(e, copy, n, 0, 1);
  lua_pop(L, 1);
  mydb_buf_putc(out, '}');
  return rc;
}

/* Tables and userdata: ids for shared/cyclic tables, hooks, then the body. */
static int encode_table(enc *e, int t) {
  lua_State *L = e->L;
  int isud = lua_type(L, t) == LUA_TUSERDATA;
  if (e->depth >= CODEC_MAX_DEPTH)
    return enc_fail(e, "unsupported_value", "nesting deeper than %d levels", CODEC_MAX_DEPTH);
  luaL_checkstack(L, 16, "value nested too deeply");

  lua_pushvalue(L, t);
  if (lua_rawget(L, e->seen) == LUA_TNUMBER) {
    lua_Integer id = lua_tointeger(L, -1);
    lua_pop(L, 1);
    mydb_buf_puts(&e->st->out, "{\"__id__\":");
    put_integer(&e->st->out, id);
    mydb_buf_putc(&e->st->out, '}');
    return 0;
  }
  lua_pop(L, 1);
  lua_pushvalue(L, t);
  lua_pushinteger(L, e->next_id++);
  lua_rawset(L, e->seen);

  int hasmt = lua_getmetatable(L, t);
  if (hasmt) lua_pop(L, 1);
  int base = lua_gettop(L);
  int rc;
  e->depth++;
  if (e->hook && (hasmt || isud || e->hook_all)) {
    if (enc_call(e, e->hook, t, 3) != 0) { e->depth--; return ENC_FAIL; }
    const char *kind = lua_tostring(L, base + 1);
    if (!kind) {
      lua_settop(L, base);
      if (hasmt || isud) {
        e->depth--;
        return enc_fail(e, "unsupported_value", "%s", isud ? "userdata cannot be stored (register a handler for it)"
                        : "a table with an unregistered metatable cannot be stored (use mydb.register_class)");
      }
      rc = encode_body(e, t, NULL, 0, 0);
    } else if (strcmp(kind, "object") == 0) {
      size_t cl;
      const char *cls = lua_tolstring(L, base + 2, &cl);
      int refset = lua_istable(L, base + 3) ? base + 3 : 0;
      if (!cls) rc = enc_fail(e, "handler_error", "class name missing");
      else if (isud) rc = enc_fail(e, "unsupported_value", "userdata cannot be stored as an object");
      else rc = encode_body(e, t, cls, cl, refset);
    } else if (strcmp(kind, "special") == 0) {
      rc = encode_special(e, base + 2, base + 3);
    } else if (strcmp(kind, "plain") == 0) {
      int refset = lua_istable(L, base + 2) ? base + 2 : 0;
      if (hasmt || isud) rc = enc_fail(e, "unsupported_value", "a table with an unregistered metatable cannot be stored");
      else rc = encode_body(e, t, NULL, 0, refset);
    } else {
      rc = enc_fail(e, "handler_error", "hook returned unknown kind '%s'", kind);
    }
    lua_settop(L, base);
  } else if (hasmt || isud) {
    rc = enc_fail(e, "unsupported_value", "%s", isud ? "userdata cannot be stored (register a handler for it)"
                  : "a table with an unregistered metatable cannot be stored (use mydb.register_class)");
  } else {
    rc = encode_body(e, t, NULL, 0, 0);
  }
  e->depth--;
  return rc;
}

static int encode_value(enc *e, int idx) {
  lua_State *L = e->L;
  mydb_buf *out = &e->st->out;
  switch (lua_type(L, idx)) {
    case LUA_TNIL: mydb_buf_puts(out, "null"); return 0;
    case LUA_TBOOLEAN: mydb_buf_puts(out, lua_toboolean(L, idx) ? "true" : "false"); return 0;
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) put_integer(out, lua_tointeger(L, idx));
      else put_float(out, (double)lua_tonumber(L, idx));
      return 0;
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, idx, &len);
      put_string(out, s, len);
      return 0;
    }
    case LUA_TTABLE:
    case LUA_TUSERDATA:
      return encode_table(e, idx);
    default:
      return enc_fail(e, "unsupported_value", "a %s cannot be stored", luaL_typename(L, idx));
  }
}

/* Reads the context table at ctx (may be absent) into e. Pushes the seen
 * table. */
static void enc_setup(lua_State *L, enc *e, codec_state *st, int ctx) {
  memset(e, 0, sizeof *e);
  e->L = L;
  e->st = st;
  lua_pushnil(L);
  e->errslot = lua_gettop(L);
  if (ctx && lua_istable(L, ctx)) {
    if (lua_getfield(L, ctx, "hook") == LUA_TFUNCTION) e->hook = lua_gettop(L);
    else lua_pop(L, 1);
    lua_getfield(L, ctx, "hook_all");
    e->hook_all = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (lua_getfield(L, ctx, "ref_save") == LUA_TFUNCTION) e->ref_save = lua_gettop(L);
    else lua_pop(L, 1);
  }
  if (st->cached) push_kept(L, &st->seen_ref); /* (empty: state_close) */
  else lua_newtable(L);
  e->seen = lua_gettop(L);
}

/* Raises the encoder's failure as a mydb error naming the value's path.
 * An error raised by a hook keeps its code (handler_error for plain Lua
 * errors) and gains the path. */
static int enc_raise(lua_State *L, enc *e, int ctx) {
  const char *root = "value";
  if (ctx && lua_istable(L, ctx)) {
    /* (a function: the path is built only now, on failure; mydb.encode) */
    if (lua_getfield(L, ctx, "root") == LUA_TFUNCTION && lua_pcall(L, 0, 1, 0) != LUA_OK) {
      lua_pop(L, 1);
      lua_pushnil(L);
    }
    if (lua_type(L, -1) == LUA_TSTRING) root = lua_tostring(L, -1);
  }
  mydb_buf *p = &e->st->path;
  int plen = p->failed ? 0 : (int)(p->len > 400 ? 400 : p->len);
  const char *pd = p->data ? p->data : "";
  if (!e->errval)
    return lmydb_error(L, e->errcode, "%s at %s%.*s", e->errmsg, root, plen, pd);
  lua_pushvalue(L, e->errslot);
  const char *code = "handler_error", *msg = NULL;
  if (lua_istable(L, -1)) {
    lua_getfield(L, -1, "code");
    lua_getfield(L, -2, "message");
    if (lua_type(L, -2) == LUA_TSTRING) code = lua_tostring(L, -2);
    msg = lua_tostring(L, -1);
  } else {
    msg = lua_tostring(L, -1);
  }
  return lmydb_error(L, code, "%s (at %s%.*s)", msg ? msg : "error in a handler", root, plen, pd);
}

/* core.encode(value [, ctx]) -> bytes */
static int l_encode(lua_State *L) {
  lua_settop(L, 2);
  codec_state *st = push_state(L);
  enc e;
  enc_setup(L, &e, st, 2);
  if (encode_value(&e, 1) != 0) return enc_raise(L, &e, 2);
  check_out(L, &st->out);
  lua_pushlstring(L, st->out.data ? st->out.data : "", st->out.len);
  return 1;
}
/* ----------------------------------------------------------------- decoder */

typedef struct dec {
  lua_State *L;
  codec_state *st;
  const char *start, *p, *end;
  int seen;          /* stack index: id -> value */
  int classes;       /* stack index of ctx.classes, or 0 */
  int special;       /* stack index of ctx.special, or 0 */
  int ref_load;      /* stack index of ctx.ref_load, or 0 */
  lua_Integer next_id;
  int depth;
  int track;         /* 0: the input has no "__id__", ids need no table */
  /* Sizes of the last plain object and array decoded at each depth: the
   * next one's table is made that size (the documents of one decode_into
   * or leaf are alike), not grown and rehashed field by field. */
  unsigned char fields[8], items[8];
} dec;

static int dec_fail(dec *d, const char *what) {
  return lmydb_error(d->L, "corrupt", "malformed stored value at byte %ld: %s",
                     (long)(d->p - d->start), what);
}

static void skip_ws(dec *d) {
  while (d->p < d->end && (*d->p == ' ' || *d->p == '\n' || *d->p == '\t' || *d->p == '\r'))
    d->p++;
}

static void expect(dec *d, char c) {
  skip_ws(d);
  if (d->p >= d->end || *d->p != c) {
    char what[32];
    snprintf(what, sizeof what, "expected '%c'", c);
    dec_fail(d, what);
  }
  d->p++;
}

/* Peeks the next non-blank character (0 at the end). */
static char peek(dec *d) {
  skip_ws(d);
  return d->p < d->end ? *d->p : 0;
}

/* Parses a string literal into st->str. */
static void read_string(dec *d) {
  skip_ws(d);
  if (d->p >= d->end || *d->p != '"') dec_fail(d, "expected a string");
  d->st->str.len = 0;
  const char *q = mydb_json_get_string(&d->st->str, d->p, d->end);
  if (!q) dec_fail(d, "bad string");
  if (d->st->str.failed) lmydb_error(d->L, "out_of_memory", "not enough memory to decode");
  d->p = q;
}

/* Pushes the string literal at p. Fast path: a literal with no escape and
 * no control byte is pushed straight from the input, without a copy. */
/* The bytes that end push_string's fast path: '"', '\\' and controls. */
static const unsigned char str_stop[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    ['"'] = 1, ['\\'] = 1};

static void push_string(dec *d) {
  skip_ws(d);
  if (d->p < d->end && *d->p == '"') {
    const unsigned char *q = (const unsigned char *)d->p + 1;
    const unsigned char *end = (const unsigned char *)d->end;
    while (end - q >= 4 && !(str_stop[q[0]] | str_stop[q[1]] | str_stop[q[2]] | str_stop[q[3]])) q += 4;
    while (q < end && !str_stop[*q]) q++;
    if (q < end && *q == '"') {
      lua_pushlstring(d->L, d->p + 1, (size_t)(q - (const unsigned char *)d->p - 1));
      d->p = (const char *)q + 1;
      return;
    }
  }
  read_string(d);
  lua_pushlstring(d->L, d->st->str.data ? d->st->str.data : "", d->st->str.len);
}

static int str_is(const dec *d, const char *lit) {
  size_t n = strlen(lit);
  return d->st->str.len == n && memcmp(d->st->str.data, lit, n) == 0;
}

static void push_str(dec *d) {
  lua_pushlstring(d->L, d->st->str.data ? d->st->str.data : "", d->st->str.len);
}

static void read_number(dec *d) {
  const char *s = d->p;
  int isfloat = 0;
  if (d->p < d->end && *d->p == '-') d->p++;
  if (d->p >= d->end || *d->p < '0' || *d->p > '9') dec_fail(d, "bad number");
  if (*d->p == '0') d->p++;
  else while (d->p < d->end && *d->p >= '0' && *d->p <= '9') d->p++;
  if (d->p < d->end && *d->p == '.') {
    isfloat = 1;
    d->p++;
    if (d->p >= d->end || *d->p < '0' || *d->p > '9') dec_fail(d, "bad number");
    while (d->p < d->end && *d->p >= '0' && *d->p <= '9') d->p++;
  }
  if (d->p < d->end && (*d->p == 'e' || *d->p == 'E')) {
    isfloat = 1;
    d->p++;
    if (d->p < d->end && (*d->p == '+' || *d->p == '-')) d->p++;
    if (d->p >= d->end || *d->p < '0' || *d->p > '9') dec_fail(d, "bad number");
    while (d->p < d->end && *d->p >= '0' && *d->p <= '9') d->p++;
  }
  size_t n = (size_t)(d->p - s);
  char tmp[64];
  if (n >= sizeof tmp) {
    if (!isfloat) dec_fail(d, "integer too long");
    /* a long float: copy through the string scratch buffer */
    d->st->str.len = 0;
    mydb_buf_put(&d->st->str, s, n);
    mydb_buf_putc(&d->st->str, '\0');
    if (d->st->str.failed) lmydb_error(d->L, "out_of_memory", "not enough memory to decode");
    lua_pushnumber(d->L, (lua_Number)strtod(d->st->str.data, NULL));
    return;
  }
  memcpy(tmp, s, n);
  tmp[n] = '\0';
  if (!isfloat) {
    /* exact integers: mydb never writes one beyond 64 bits */
    int neg = tmp[0] == '-';
    uint64_t v = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    int over = 0;
    for (const char *c = tmp + neg; *c; c++) {
      unsigned dgt = (unsigned)(*c - '0');
      if (v > (lim - dgt) / 10) { over = 1; break; }
      v = v * 10 + dgt;
    }
    if (over) dec_fail(d, "integer out of the 64-bit range");
    lua_pushinteger(d->L, neg ? (lua_Integer)(0 - v) : (lua_Integer)v);
    return;
  }
  lua_pushnumber(d->L, (lua_Number)strtod(tmp, NULL));
}

static void decode_value(dec *d);

static lua_Integer new_id(dec *d) { return d->next_id++; }

static void set_seen(dec *d, lua_Integer id, int idx) {
  if (!d->track) return;
  lua_pushvalue(d->L, idx);
  lua_rawseti(d->L, d->seen, id + 1);
}

static int has_id_tag(const char *p, size_t len) {
  /* (memchr for '_' first: most documents have none, and memmem's setup
     cost more than the search for a 100-byte record) */
  const char *end = p + len;
  for (const char *u = p + 1; u < end && (u = memchr(u, '_', (size_t)(end - u))) != NULL; u++)
    if (u[-1] == '"' && end - u >= 7 && memcmp(u, "__id__\"", 7) == 0) return 1;
  return 0;
}

/* After '[' of a table array. */
static void decode_array(dec *d) {
  lua_State *L = d->L;
  int depth = d->depth < 8 ? d->depth : 0;
  lua_createtable(L, depth ? d->items[depth] : 0, 0);
  int t = lua_gettop(L);
  set_seen(d, new_id(d), t);
  lua_Integer i = 0;
  if (peek(d) == ']') { d->p++; return; }
  for (;;) {
    decode_value(d);
    lua_rawseti(L, t, ++i);
    char c = peek(d);
    d->p++;
    if (c == ']') break;
    if (c != ',') dec_fail(d, "expected ',' or ']'");
  }
  if (depth) d->items[depth] = (unsigned char)(i > 255 ? 255 : i);
}

/* [[k,v],...] into the table at t. */
static void decode_pairs(dec *d, int t) {
  lua_State *L = d->L;
  expect(d, '[');
  if (peek(d) == ']') { d->p++; return; }
  for (;;) {
    expect(d, '[');
    decode_value(d);
    int kt = lua_type(L, -1);
    if (kt != LUA_TSTRING && kt != LUA_TNUMBER && kt != LUA_TBOOLEAN) dec_fail(d, "bad map key");
    if (kt == LUA_TNUMBER && lua_tonumber(L, -1) != lua_tonumber(L, -1)) dec_fail(d, "NaN map key");
    expect(d, ',');
    decode_value(d);
    expect(d, ']');
    lua_rawset(L, t);
    char c = peek(d);
    d->p++;
    if (c == ']') return;
    if (c != ',') dec_fail(d, "expected ',' or ']'");
  }
}

/* Fields "k":v,... (after the first key was read into st->str) until '}'. */
static int decode_fields(dec *d, int t, int have_key) {
  lua_State *L = d->L;
  int n = 0;
  for (;;) {
    n++;
    if (have_key) {
      push_str(d);
      have_key = 0;
    } else {
      push_string(d);
    }
    size_t kl;
    const char *k = lua_tolstring(L, -1, &kl);
    if (kl >= 2 && k[0] == '_' && k[1] == '_') dec_fail(d, "tag key after fields");
    expect(d, ':');
    decode_value(d);
    lua_rawset(L, t);
    char c = peek(d);
    d->p++;
    if (c == '}') return n;
    if (c != ',') dec_fail(d, "expected ',' or '}'");
  }
}

static void end_tag(dec *d) { expect(d, '}'); }

/* Leaves only the value on top of the stack at base + 1. */
static void keep_top(lua_State *L, int base) {
  if (lua_gettop(L) > base + 1) lua_replace(L, base + 1);
  lua_settop(L, base + 1);
}

/* After '{'. Tag keys (starting "__") come first, so the kind is known
 * before any field is decoded; see doc/FORMAT.md. */
static void decode_object(dec *d) {
  lua_State *L = d->L;
  if (peek(d) == '}') {
    d->p++;
    lua_newtable(L);
    set_seen(d, new_id(d), lua_gettop(L));
    return;
  }
  read_string(d);
  if (!(d->st->str.len >= 2 && d->st->str.data[0] == '_' && d->st->str.data[1] == '_')) {
    int depth = d->depth < 8 ? d->depth : 0;
    lua_createtable(L, 0, depth ? d->fields[depth] : 0);
    int t = lua_gettop(L);
    set_seen(d, new_id(d), t);
    int n = decode_fields(d, t, 1);
    if (depth) d->fields[depth] = (unsigned char)(n > 255 ? 255 : n);
    return;
  }
  int base = lua_gettop(L);
  int tbl = 0;              /* the object's table, once created */
  int tag = 0, digest = 0;  /* special: tag string, __digest__ string */
  int payload_value = 0;    /* special: "__value__" payload */
  lua_Integer special_id = -1;
  /* Each tag key at most once: the canonical form never repeats a key, and
   * every repetition would leave one more value on the Lua stack. */
  static const char *const once[] = {"__map__", "__object__", "__digest__",
                                     "__special__", "__value__"};
  unsigned seen_tags = 0;
  for (;;) {
    for (unsigned i = 0; i < sizeof once / sizeof once[0]; i++)
      if (str_is(d, once[i])) {
        if (seen_tags & (1u << i)) dec_fail(d, "repeated tag key");
        seen_tags |= 1u << i;
      }
    expect(d, ':');
    if (str_is(d, "__id__")) {
      skip_ws(d);
      read_number(d);
      if (!lua_isinteger(L, -1)) dec_fail(d, "bad __id__");
      lua_Integer id = lua_tointeger(L, -1);
      lua_pop(L, 1);
      if (!d->track || id < 0 || id >= d->next_id || lua_rawgeti(L, d->seen, id + 1) == LUA_TNIL)
        dec_fail(d, "__id__ refers to no table (or to a handler value being built)");
      end_tag(d);
      keep_top(L, base);
      return;
    } else if (str_is(d, "__float__")) {
      read_string(d);
      double v = 0;
      if (str_is(d, "inf")) v = HUGE_VAL;
      else if (str_is(d, "-inf")) v = -HUGE_VAL;
      else if (str_is(d, "nan")) v = NAN;
      else dec_fail(d, "bad __float__");
      end_tag(d);
      lua_pushnumber(L, (lua_Number)v);
      keep_top(L, base);
      return;
    } else if (str_is(d, "__bytes__")) {
      read_string(d);
      if (mydb__b64_decode(&d->st->str) != 0) dec_fail(d, "bad base64 in __bytes__");
      end_tag(d);
      push_str(d);
      keep_top(L, base);
      return;
    } else if (str_is(d, "__ref__")) {
      read_string(d);
      if (!d->ref_load) lmydb_error(L, "corrupt", "a __ref__ value needs a store to load it");
      lua_pushvalue(L, d->ref_load);
      push_str(d);
      end_tag(d);
      lua_call(L, 1, 1);
      keep_top(L, base);
      return;
    } else if (str_is(d, "__map__")) {
      if (!tbl) {
        lua_newtable(L);
        tbl = lua_gettop(L);
        set_seen(d, new_id(d), tbl);
      }
      decode_pairs(d, tbl);
    } else if (str_is(d, "__object__")) {
      read_string(d);
      push_str(d);
      int name = lua_gettop(L);
      if (!tbl) {
        lua_newtable(L);
        tbl = lua_gettop(L);
        set_seen(d, new_id(d), tbl);
      }
      lua_pushvalue(L, name);
      if (!d->classes || lua_rawget(L, d->classes) != LUA_TTABLE)
        lmydb_error(L, "unknown_tag", "no class registered under the name '%s'",
                    lua_tostring(L, name));
      lua_setmetatable(L, tbl);
    } else if (str_is(d, "__digest__")) {
      read_string(d);
      push_str(d);
      digest = lua_gettop(L);
    } else if (str_is(d, "__special__")) {
      read_string(d);
      push_str(d);
      tag = lua_gettop(L);
      special_id = new_id(d);
      if (d->track) { /* filled once built; until then a reference fails */
        lua_pushnil(L);
        lua_rawseti(L, d->seen, special_id + 1);
      }
    } else if (str_is(d, "__value__") && tag) {
      decode_value(d);
      payload_value = lua_gettop(L);
    } else {
      dec_fail(d, "unknown tag key");
    }
    char c = peek(d);
    d->p++;
    if (c == '}') break;
    if (c != ',') dec_fail(d, "expected ',' or '}'");
    read_string(d);
    if (!(d->st->str.len >= 2 && d->st->str.data[0] == '_' && d->st->str.data[1] == '_')) {
      /* plain fields follow: into the object, or into the handler payload */
      if (tag) {
        if (payload_value) dec_fail(d, "fields beside __value__");
        lua_newtable(L);
        payload_value = lua_gettop(L);
        decode_fields(d, payload_value, 1);
      } else if (tbl) {
        decode_fields(d, tbl, 1);
      } else {
        dec_fail(d, "fields after a tag that takes none");
      }
      break;
    }
  }
  if (tag) {
    if (tbl) dec_fail(d, "__special__ mixed with __object__ or __map__");
    if (!payload_value) {
      lua_newtable(L);
      payload_value = lua_gettop(L);
    }
    if (digest) {
      if (!lua_istable(L, payload_value)) dec_fail(d, "__digest__ beside __value__");
      lua_pushvalue(L, digest);
      lua_setfield(L, payload_value, "__digest__");
    }
    if (!d->special) {
      lmydb_error(L, "unknown_tag", "no handler registered for tag '%s'", lua_tostring(L, tag));
    }
    lua_pushvalue(L, d->special);
    lua_pushvalue(L, tag);
    lua_pushvalue(L, payload_value);
    lua_call(L, 2, 1);
    if (d->track) {
      lua_pushvalue(L, -1);
      lua_rawseti(L, d->seen, special_id + 1);
    }
  } else if (tbl) {
    if (digest) dec_fail(d, "__digest__ without __special__");
    lua_pushvalue(L, tbl);
  } else {
    dec_fail(d, "tag object with no value");
  }
  keep_top(L, base);
}

static void decode_value(dec *d) {
  lua_State *L = d->L;
  if (++d->depth > CODEC_MAX_DEPTH + 8) dec_fail(d, "nesting too deep");
  luaL_checkstack(L, 16, "stored value nested too deeply");
  char c = peek(d);
  switch (c) {
    case '{': d->p++; decode_object(d); break;
    case '[': d->p++; decode_array(d); break;
    case '"': push_string(d); break;
    case 't':
      if (d->end - d->p >= 4 && memcmp(d->p, "true", 4) == 0) { d->p += 4; lua_pushboolean(L, 1); }
      else dec_fail(d, "bad literal");
      break;
    case 'f':
      if (d->end - d->p >= 5 && memcmp(d->p, "false", 5) == 0) { d->p += 5; lua_pushboolean(L, 0); }
      else dec_fail(d, "bad literal");
      break;
    case 'n':
      if (d->end - d->p >= 4 && memcmp(d->p, "null", 4) == 0) { d->p += 4; lua_pushnil(L); }
      else dec_fail(d, "bad literal");
      break;
    default:
      if (c == '-' || (c >= '0' && c <= '9')) read_number(d);
      else dec_fail(d, c ? "unexpected character" : "unexpected end");
  }
  d->depth--;
}

static void dec_setup(lua_State *L, dec *d, codec_state *st, int bytes, int ctx) {
  memset(d, 0, sizeof *d);
  size_t len;
  d->L = L;
  d->st = st;
  d->start = d->p = luaL_checklstring(L, bytes, &len);
  d->end = d->start + len;
  d->track = has_id_tag(d->start, len);
  if (ctx && lua_istable(L, ctx)) {
    if (lua_getfield(L, ctx, "classes") == LUA_TTABLE) d->classes = lua_gettop(L);
    else lua_pop(L, 1);
    if (lua_getfield(L, ctx, "special") == LUA_TFUNCTION) d->special = lua_gettop(L);
    else lua_pop(L, 1);
    if (lua_getfield(L, ctx, "ref_load") == LUA_TFUNCTION) d->ref_load = lua_gettop(L);
    else lua_pop(L, 1);
  }
  lua_newtable(L);
  d->seen = lua_gettop(L);
}

static void dec_finish(dec *d) {
  skip_ws(d);
  if (d->p != d->end) dec_fail(d, "trailing bytes");
}

/* core.decode(bytes [, ctx]) -> value */
static int l_decode(lua_State *L) {
  lua_settop(L, 2);
  codec_state *st = push_state(L);
  dec d;
  dec_setup(L, &d, st, 1, 2);
  decode_value(&d);
  dec_finish(&d);
  return 1;
}

static void skip_value(dec *d);

/* core.decode_into(raws, out [, ctx [, from [, to]]]) -> out: decodes
 * raws[from..to] (each its own document) and appends the values to out.
 * One call for a whole collection leaf. */
static int l_decode_into(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_Integer from = luaL_optinteger(L, 4, 1);
  lua_Integer to = luaL_optinteger(L, 5, (lua_Integer)lua_rawlen(L, 1));
  lua_settop(L, 3);
  codec_state *st = push_state(L);
  lua_pushliteral(L, "");
  int cur = lua_gettop(L);
  dec d;
  dec_setup(L, &d, st, cur, 3);
  lua_Integer n = (lua_Integer)lua_rawlen(L, 1);
  if (to > n) to = n;
  lua_Integer o = (lua_Integer)lua_rawlen(L, 2);
  int top = lua_gettop(L);
  for (lua_Integer i = from; i <= to; i++) {
    size_t len;
    lua_rawgeti(L, 1, i);
    const char *s = lua_tolstring(L, -1, &len);
    if (!s) lmydb_error(L, "invalid_argument", "raws[%d] is not a string", (int)i);
    lua_replace(L, cur); /* anchors the string while it is parsed */
    d.start = d.p = s;
    d.end = s + len;
    d.next_id = 0;
    d.depth = 0;
    d.track = has_id_tag(s, len);
    decode_value(&d);
    dec_finish(&d);
    lua_rawseti(L, 2, ++o);
    lua_settop(L, top);
  }
  lua_pushvalue(L, 2);
  return 1;
}

/* core.decode_snapshot(bytes [, ctx [, meta_only]]) -> value, meta
 * meta = {parent=digest|nil, user_id=, date=, collection={root=,count=}|nil}
 * With meta_only, the value is not decoded (nil is returned for it). */
static int l_decode_snapshot(lua_State *L) {
  int meta_only = lua_toboolean(L, 3);
  lua_settop(L, 2);
  codec_state *st = push_state(L);
  dec d;
  dec_setup(L, &d, st, 1, 2);
  lua_newtable(L);
  int meta = lua_gettop(L);
  lua_pushnil(L);
  int value = lua_gettop(L), have_value = 0, root = 0;
  expect(&d, '{');
  if (peek(&d) != '}') {
    for (;;) {
      read_string(&d);
      int is_tag = d.st->str.len >= 2 && d.st->str.data[0] == '_' && d.st->str.data[1] == '_';
      if (!is_tag) {
        if (have_value) dec_fail(&d, "fields beside __value__");
        if (meta_only) { /* skip the fields, checking their form */
          for (;;) {
            expect(&d, ':');
            skip_value(&d);
            char c = peek(&d);
            d.p++;
            if (c == '}') break;
            if (c != ',') dec_fail(&d, "expected ',' or '}'");
            read_string(&d);
          }
          break;
        }
        lua_newtable(L);
        root = lua_gettop(L);
        set_seen(&d, new_id(&d), root);
        decode_fields(&d, root, 1);
        break;
      }
      expect(&d, ':');
      if (str_is(&d, "__date__") || str_is(&d, "__user_id__")) {
        const char *field = str_is(&d, "__date__") ? "date" : "user_id";
        read_string(&d);
        push_str(&d);
        lua_setfield(L, meta, field);
      } else if (str_is(&d, "__parent__")) {
        expect(&d, '[');
        if (peek(&d) == 'n') {
          decode_value(&d);
          lua_pop(L, 1);
        } else {
          /* [first] or, for a merge's version, [ours, theirs, ...]: parent
           * is the first, parents the whole list when it has more */
          read_string(&d);
          push_str(&d);
          lua_setfield(L, meta, "parent");
          if (peek(&d) == ',') {
            lua_createtable(L, 2, 0);
            lua_getfield(L, meta, "parent");
            lua_rawseti(L, -2, 1);
            for (int i = 2; peek(&d) == ','; i++) {
              if (i > 16) dec_fail(&d, "too many parents");
              d.p++;
              read_string(&d);
              push_str(&d);
              lua_rawseti(L, -2, i);
            }
            lua_setfield(L, meta, "parents");
          }
        }
        expect(&d, ']');
      } else if (str_is(&d, "__resolver__")) {
        read_string(&d);
        push_str(&d);
        lua_setfield(L, meta, "resolver");
      } else if (str_is(&d, "__value__")) {
        if (meta_only) {
          skip_value(&d);
        } else {
          decode_value(&d);
          lua_replace(L, value);
        }
        have_value = 1;
      } else if (str_is(&d, "__collection__") && meta_only) {
        skip_value(&d);
        lua_pushboolean(L, 1);
        lua_setfield(L, meta, "collection");
      } else if (str_is(&d, "__collection__")) {
        lua_Integer saved = d.next_id;
        decode_value(&d);
        d.next_id = saved;
        if (!lua_istable(L, -1)) dec_fail(&d, "bad __collection__");
        lua_setfield(L, meta, "collection");
      } else {
        dec_fail(&d, "unknown snapshot key");
      }
      char c = peek(&d);
      d.p++;
      if (c == '}') break;
      if (c != ',') dec_fail(&d, "expected ',' or '}'");
    }
  } else {
    d.p++;
  }
  dec_finish(&d);
  lua_getfield(L, meta, "date");
  lua_getfield(L, meta, "user_id");
  if (lua_isnil(L, -1) || lua_isnil(L, -2)) dec_fail(&d, "a snapshot without __date__ or __user_id__");
  lua_pop(L, 2);
  if (meta_only) {
    lua_pushnil(L);
    lua_pushvalue(L, meta);
    return 2;
  }
  if (root) lua_pushvalue(L, root);
  else if (have_value) lua_pushvalue(L, value);
  else lua_newtable(L);
  lua_pushvalue(L, meta);
  return 2;
}

/* Skips one JSON value without building it (validating its structure). */
static void skip_value(dec *d) {
  int depth = 0;
  do {
    char c = peek(d);
    switch (c) {
      case '{': case '[':
        if (++depth > CODEC_MAX_DEPTH + 8) dec_fail(d, "nesting too deep");
        d->p++;
        break;
      case '}': case ']':
        if (--depth < 0) dec_fail(d, "unbalanced");
        d->p++;
        break;
      case ',': case ':':
        if (depth == 0) dec_fail(d, "unexpected separator");
        d->p++;
        break;
      case '"': {
        d->p++;
        while (d->p < d->end && *d->p != '"') {
          /* an escape takes two bytes: never step past the end */
          if (*d->p == '\\' && d->end - d->p < 2) dec_fail(d, "unterminated string");
          d->p += (*d->p == '\\') ? 2 : 1;
        }
        if (d->p >= d->end) dec_fail(d, "unterminated string");
        d->p++;
        break;
      }
      case 0: dec_fail(d, "unexpected end"); break;
      default:
        if (c == '-' || (c >= '0' && c <= '9') || c == 't' || c == 'f' || c == 'n') {
          /* *d->p != 0: strchr finds the terminator, and NUL is no number */
          while (d->p < d->end && *d->p != 0 && strchr("-+.eE0123456789truefalsn", *d->p)) d->p++;
        } else {
          dec_fail(d, "unexpected character");
        }
    }
  } while (depth > 0);
}

/* core.leaf_split(bytes) -> keys, raw values: a collection leaf piece
 * {"leaf":[[k,v],...]} split so that values are decoded only when asked. */
static int l_leaf_split(lua_State *L) {
  lua_settop(L, 1);
  codec_state *st = push_state(L);
  dec d;
  dec_setup(L, &d, st, 1, 0);
  lua_newtable(L);
  int keys = lua_gettop(L);
  lua_newtable(L);
  int vals = lua_gettop(L);
  expect(&d, '{');
  read_string(&d);
  if (!str_is(&d, "leaf")) dec_fail(&d, "not a leaf piece");
  expect(&d, ':');
  expect(&d, '[');
  lua_Integer n = 0;
  if (peek(&d) == ']') d.p++;
  else for (;;) {
    expect(&d, '[');
    decode_value(&d);
    if (lua_type(L, -1) != LUA_TSTRING) dec_fail(&d, "leaf key is not a string");
    lua_rawseti(L, keys, ++n);
    expect(&d, ',');
    skip_ws(&d);
    const char *s = d.p;
    skip_value(&d);
    lua_pushlstring(L, s, (size_t)(d.p - s));
    lua_rawseti(L, vals, n);
    expect(&d, ']');
    char c = peek(&d);
    d.p++;
    if (c == ']') break;
    if (c != ',') dec_fail(&d, "expected ',' or ']'");
  }
  expect(&d, '}');
  dec_finish(&d);
  lua_pushvalue(L, keys);
  lua_pushvalue(L, vals);
  return 2;
}

/* Closes a piece's JSON and pushes its bytes and digest. */
static void push_piece(lua_State *L, mydb_buf *out) {
  mydb_buf_puts(out, "]}");
  check_out(L, out);
  char digest[MYDB_DIGEST_BUF];
  if (mydb_sha256_hex(digest, out->data, out->len) != MYDB_OK)
    lmydb_error(L, "io", "%s", mydb_errmsg());
  lua_pushlstring(L, out->data, out->len);
  lua_pushlstring(L, digest, MYDB_DIGEST_HEX);
}

/* core.leaf_piece(keys, vals) -> bytes, digest: a collection leaf
 * {"leaf":[[key,value],...]} from string keys and encoded values. */
static int l_leaf_piece(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  codec_state *st = push_state(L);
  mydb_buf *out = &st->out;
  lua_Integer n = (lua_Integer)lua_rawlen(L, 1);
  mydb_buf_puts(out, "{\"leaf\":[");
  for (lua_Integer i = 1; i <= n; i++) {
    size_t kl, vl;
    lua_rawgeti(L, 1, i);
    lua_rawgeti(L, 2, i);
    const char *k = lua_tolstring(L, -2, &kl), *v = lua_tolstring(L, -1, &vl);
    if (!k || !v) lmydb_error(L, "invalid_argument", "leaf item %d is not a pair of strings", (int)i);
    if (i > 1) mydb_buf_putc(out, ',');
    mydb_buf_putc(out, '[');
    put_string(out, k, kl);
    mydb_buf_putc(out, ',');
    mydb_buf_put(out, v, vl);
    mydb_buf_putc(out, ']');
    lua_pop(L, 2);
  }
  push_piece(L, out);
  return 2;
}

/* core.collection_root(bytes) -> count, root_bytes|nil, extra, root_ref|nil:
 * the record count, the embedded root piece (raw), the other fields of the
 * __collection__ object (decoded: ttl, indexes) and the digest of a stored
 * root, of a collection snapshot, which starts
 * {"__collection__":{"count":N,...,"root":PIECE|DIGEST|null,...},...
 * (doc/FORMAT.md). */
static int l_collection_root(lua_State *L) {
  static const char head[] = "{\"__collection__\":{";
  lua_settop(L, 1);
  codec_state *st = push_state(L);
  dec d;
  dec_setup(L, &d, st, 1, 0);
  if ((size_t)(d.end - d.p) < sizeof head - 1 || memcmp(d.p, head, sizeof head - 1) != 0)
    dec_fail(&d, "not a collection snapshot");
  d.p += sizeof head - 1;
  lua_pushnil(L); /* count */
  int count = lua_gettop(L);
  lua_pushnil(L); /* root */
  int root = lua_gettop(L);
  lua_newtable(L); /* extra */
  int extra = lua_gettop(L);
  lua_pushnil(L); /* root_ref */
  int root_ref = lua_gettop(L);
  int have_root = 0;
  for (;;) {
    read_string(&d);
    expect(&d, ':');
    if (str_is(&d, "count")) {
      skip_ws(&d);
      read_number(&d);
      if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0) dec_fail(&d, "bad count");
      lua_replace(L, count);
    } else if (str_is(&d, "root")) {
      skip_ws(&d);
      const char *s = d.p;
      skip_value(&d);
      if (*s == '{') {
        lua_pushlstring(L, s, (size_t)(d.p - s));
        lua_replace(L, root);
      } else if (*s == '"') { /* a stored root: its digest */
        if (d.p - s != MYDB_DIGEST_HEX + 2 || !mydb_digest_valid(s + 1, MYDB_DIGEST_HEX))
          dec_fail(&d, "bad root digest");
        lua_pushlstring(L, s + 1, MYDB_DIGEST_HEX);
        lua_replace(L, root_ref);
      } else if (!(d.p - s == 4 && memcmp(s, "null", 4) == 0)) {
        dec_fail(&d, "bad root");
      }
      have_root = 1;
    } else {
      push_str(&d);
      lua_Integer saved = d.next_id;
      decode_value(&d);
      d.next_id = saved;
      lua_rawset(L, extra);
    }
    char c = peek(&d);
    d.p++;
    if (c == '}') break;
    if (c != ',') dec_fail(&d, "expected ',' or '}'");
  }
  if (lua_isnil(L, count) || !have_root) dec_fail(&d, "__collection__ without count or root");
  lua_pushvalue(L, count);
  lua_pushvalue(L, root);
  lua_pushvalue(L, extra);
  lua_pushvalue(L, root_ref);
  return 4;
}

/* core.json_string(s) -> s as a JSON string literal (or __bytes__ tag) */
static int l_json_string(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  codec_state *st = push_state(L);
  put_string(&st->out, s, len);
  check_out(L, &st->out);
  lua_pushlstring(L, st->out.data, st->out.len);
  return 1;
}

/* ------------------------------------------------------ snapshot format
 * The one owner of the snapshot envelope (doc/FORMAT.md "Snapshots"): the
 * writer below, l_decode_snapshot and l_collection_root above, and the
 * parent scan of store:chain (lmydb_snapshot_parent) share it. */

static void put_parent_digest(lua_State *L, mydb_buf *out, int idx) {
  size_t pl;
  const char *pd = luaL_checklstring(L, idx, &pl);
  if (!mydb_digest_valid(pd, pl)) lmydb_error(L, "invalid_argument", "bad parent digest");
  mydb_buf_putc(out, '"');
  mydb_buf_put(out, pd, pl);
  mydb_buf_putc(out, '"');
}

/* "__date__":"D","__parent__":["P"|null],["__resolver__":R,]"__user_id__":U
 * - the metadata keys, which sort before any field of the value ("__"
 * first). parent: nil, a digest, or a list of digests (a merge: {ours,
 * theirs}). resolver (0: none): a stored merge resolver name. */
static void put_meta(lua_State *L, mydb_buf *out, int parent, int user, int date, int resolver) {
  size_t dl, ul;
  const char *d = luaL_checklstring(L, date, &dl);
  for (size_t i = 0; i < dl; i++)
    if (!strchr("0123456789 :+-", d[i])) lmydb_error(L, "invalid_argument", "bad snapshot date");
  const char *u = luaL_checklstring(L, user, &ul);
  const char *r = NULL;
  size_t rl = 0;
  if (resolver && !lua_isnoneornil(L, resolver)) r = luaL_checklstring(L, resolver, &rl);
  int np = 0;
  if (lua_istable(L, parent)) {
    np = (int)lua_rawlen(L, parent);
    if (np < 1 || np > 16) lmydb_error(L, "invalid_argument", "bad parent list");
  }
  mydb_buf_puts(out, "\"__date__\":\"");
  mydb_buf_put(out, d, dl);
  mydb_buf_puts(out, "\",\"__parent__\":[");
  if (lua_isnoneornil(L, parent)) {
    mydb_buf_puts(out, "null");
  } else if (np > 0) {
    for (int i = 1; i <= np; i++) {
      lua_rawgeti(L, parent, i);
      if (i > 1) mydb_buf_putc(out, ',');
      put_parent_digest(L, out, lua_gettop(L));
      lua_pop(L, 1);
    }
  } else {
    put_parent_digest(L, out, parent);
  }
  mydb_buf_puts(out, "]");
  if (r) {
    mydb_buf_puts(out, ",\"__resolver__\":");
    put_string(out, r, rl);
  }
  mydb_buf_puts(out, ",\"__user_id__\":");
  put_string(out, u, ul);
}

/* core.snapshot_bytes(vjson, parent|parents|nil, user, date[, resolver]) -> bytes: the
 * metadata, then the value's fields inline when it is a plain map (its
 * encoding starts with an ordinary key), else the value under
 * "__value__". */
static int l_snapshot_bytes(lua_State *L) {
  size_t vl;
  const char *v = luaL_checklstring(L, 1, &vl);
  lua_settop(L, 5);
  codec_state *st = push_state(L);
  mydb_buf *out = &st->out;
  mydb_buf_putc(out, '{');
  put_meta(L, out, 2, 3, 4, 5);
  if (vl == 2 && memcmp(v, "{}", 2) == 0) {
    mydb_buf_putc(out, '}');
  } else if (vl > 3 && v[0] == '{' && v[1] == '"' && !(v[2] == '_' && v[3] == '_')) {
    mydb_buf_putc(out, ',');
    mydb_buf_put(out, v + 1, vl - 1);
  } else {
    mydb_buf_puts(out, ",\"__value__\":");
    mydb_buf_put(out, v, vl);
    mydb_buf_putc(out, '}');
  }
  check_out(L, out);
  lua_pushlstring(L, out->data, out->len);
  return 1;
}

/* core.collection_bytes(count, indexes_json|nil, root_bytes|nil, ttl|nil,
 * parent|parents|nil, user, date[, resolver]) -> bytes:
 * {"__collection__":{"count":N[,"indexes":{...}][,"resolver":R],"root":PIECE|null[,"ttl":F]},meta} */
static int l_collection_bytes(lua_State *L) {
  lua_Integer count = luaL_checkinteger(L, 1);
  if (count < 0) lmydb_error(L, "invalid_argument", "bad collection count");
  lua_settop(L, 8);
  codec_state *st = push_state(L);
  mydb_buf *out = &st->out;
  char num[32];
  snprintf(num, sizeof num, "%lld", (long long)count);
  mydb_buf_puts(out, "{\"__collection__\":{\"count\":");
  mydb_buf_puts(out, num);
  size_t l;
  if (!lua_isnil(L, 2)) {
    const char *ix = luaL_checklstring(L, 2, &l);
    mydb_buf_puts(out, ",\"indexes\":");
    mydb_buf_put(out, ix, l);
  }
  if (!lua_isnil(L, 8)) {
    const char *r = luaL_checklstring(L, 8, &l);
    mydb_buf_puts(out, ",\"resolver\":");
    put_string(out, r, l);
  }
  mydb_buf_puts(out, ",\"root\":");
  if (lua_isnil(L, 3)) mydb_buf_puts(out, "null");
  else {
    const char *r = luaL_checklstring(L, 3, &l);
    mydb_buf_put(out, r, l);
  }
  if (!lua_isnil(L, 4)) {
    const char *t = luaL_checklstring(L, 4, &l);
    mydb_buf_puts(out, ",\"ttl\":");
    put_string(out, t, l);
  }
  mydb_buf_puts(out, "},");
  put_meta(L, out, 5, 6, 7, 0);
  mydb_buf_putc(out, '}');
  check_out(L, out);
  lua_pushlstring(L, out->data, out->len);
  return 1;
}

int lmydb_snapshot_parent(const char *data, size_t len, char out[MYDB_DIGEST_BUF]) {
  /* The first '"__parent__":[' is the metadata key, since keys starting
   * with "__" are written first and the keys before it (__collection__,
   * __date__) hold no such text. */
  static const char key[] = "\"__parent__\":[";
  const char *p = memmem(data, len, key, sizeof key - 1);
  if (!p) return -1;
  p += sizeof key - 1;
  size_t left = len - (size_t)(p - data);
  if (left >= 5 && memcmp(p, "null]", 5) == 0) return 0;
  if (left < MYDB_DIGEST_HEX + 3 || p[0] != '"' || p[MYDB_DIGEST_HEX + 1] != '"' ||
      !mydb_digest_valid(p + 1, MYDB_DIGEST_HEX))
    return -1;
  memcpy(out, p + 1, MYDB_DIGEST_HEX);
  out[MYDB_DIGEST_HEX] = '\0';
  return 1;
}

void lmydb_open_codec(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"encode", l_encode},
      {"decode", l_decode},
      {"decode_snapshot", l_decode_snapshot},
      {"decode_into", l_decode_into},
      {"leaf_split", l_leaf_split},
      {"leaf_piece", l_leaf_piece},
      {"collection_root", l_collection_root},
      {"json_string", l_json_string},
      {"snapshot_bytes", l_snapshot_bytes},
      {"collection_bytes", l_collection_bytes},
      {NULL, NULL}};
  new_state(L, 1); /* the cached state, shared as upvalue 1 */
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &state_key); /* and lmydb_decode_spans' */
  luaL_setfuncs(L, fns, 1);
}

/* Decodes n stored documents (each its own, as core.decode_into) into
 * out[1..n]: for C readers that hold the bytes (ltree_read.c decodes a
 * leaf's values from the piece itself, without a string per value). */
void lmydb_decode_spans(lua_State *L, int ctx, int out, const lmydb_span *spans, size_t n) {
  ctx = ctx ? lua_absindex(L, ctx) : 0;
  out = lua_absindex(L, out);
  int base = lua_gettop(L);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &state_key);
  codec_state *st = lua_touserdata(L, -1);
  if (st && !st->busy) {
    st->busy = 1;
  } else {
    lua_pop(L, 1);
    st = new_state(L, 0);
  }
  lua_toclose(L, -1); /* released however the decoding ends */
  int slot = lua_gettop(L);
  lua_pushliteral(L, "");
  dec d;
  dec_setup(L, &d, st, lua_gettop(L), ctx);
  int top = lua_gettop(L);
  for (size_t i = 0; i < n; i++) {
    d.start = d.p = spans[i].p;
    d.end = d.start + spans[i].len;
    d.next_id = 0;
    d.depth = 0;
    d.track = has_id_tag(d.start, spans[i].len);
    decode_value(&d);
    dec_finish(&d);
    lua_rawseti(L, out, (lua_Integer)i + 1);
    lua_settop(L, top);
  }
  lua_closeslot(L, slot);
  lua_settop(L, base);
}
