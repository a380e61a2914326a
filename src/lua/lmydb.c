/*
 * lmydb.c - mydb.core, the Lua binding of the storage core and the codec.
 *
 * The user-facing API (require "mydb") is Lua, in lua/mydb/; this module
 * exports small primitives (the Tarantool pairing of fio.c and fio.lua).
 *
 *   core.open(root [, {fsync=, cache_bytes=, backend=, segment_bytes=}])
 *                          -> store
 *   store:tenant_init(t)  store:tenant_exists(t)  store:tenants()
 *   store:write(tenant|nil, bytes [, digest]) -> digest
 *   store:read(tenant|nil, digest) -> bytes
 *   store:exists(tenant|nil, digest) -> boolean
 *   store:objects(tenant|nil) -> {name, ...}
 *   store:head(tenant, entry) -> digest | nil
 *   store:heads(tenant) -> {entry, ...} (sorted), {entry = digest}
 *   store:backend() -> "loose" | "pack" | "memory"
 *   store:gc_begin(tenant|nil) -> a, b     store:gc_sweep(tenant|nil, a, b, keep)
 *   store:repack(tenant|nil) -> stats      store:check(tenant|nil) -> {msg, ...}
 *   store:journal(tenant) -> the head history in the loose journal's format
 *   store:setting(key) -> string | nil   store:set_setting(key, string|nil)
 *   store:lock(tenant [, spare]) -> lock   lock:head(entry)  lock:head_is(entry, digest)
 *                                  lock:commit(changes [, release])
 *                                  lock:release() (also __close, __gc)
 *   store:close() (also __close, __gc)
 *   core.sha256(bytes)  core.digest_valid(s)  core.tenant_valid(s)
 *   core.key_hash(key)  core.monotonic()
 *   core.error_mt       the metatable of mydb error values
 *
 * Userdata follow liolib.c: created closed, then acquired; one idempotent
 * function serves close, __close and __gc; use after close raises "closed".
 * A lock pins its store through a user value.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "buf.h"
#include "fsutil.h"
#include "internal.h" /* (mydb__object_write_piece: store:write's cache flag) */
#include "lmydb.h"
#include "mydb.h"

#define STORE_MT LMYDB_STORE_MT
#define LOCK_MT "mydb.lock"

/* ------------------------------------------------------------------ errors */

/* Raises the core's last failure. */
static int core_error(lua_State *L, int rc) {
  return lmydb_error(L, mydb_errcode_name(rc), "%s", mydb_errmsg());
}

static int error_tostring(lua_State *L) {
  lua_getfield(L, 1, "code");
  lua_getfield(L, 1, "message");
  lua_pushfstring(L, "mydb: %s: %s", luaL_optstring(L, -2, "error"), luaL_optstring(L, -1, ""));
  return 1;
}

/* ------------------------------------------------------------------- store */

typedef lmydb_store lstore;

typedef struct llock {
  mydb_lock *lk; /* NULL once released */
} llock;

static lstore *check_store(lua_State *L) {
  lstore *s = luaL_checkudata(L, 1, STORE_MT);
  if (!s->db) lmydb_error(L, "closed", "attempt to use a closed store");
  return s;
}

/* An optional tenant: nil means the shared refs. */
static const char *opt_tenant(lua_State *L, int arg) {
  if (lua_isnoneornil(L, arg)) return NULL;
  if (lua_type(L, arg) != LUA_TSTRING)
    lmydb_error(L, "invalid_argument", "tenant must be a string, got %s", luaL_typename(L, arg));
  size_t len;
  const char *t = lua_tolstring(L, arg, &len);
  if (!mydb_tenant_valid(t, len)) lmydb_error(L, "invalid_argument", "invalid tenant id");
  return t;
}

static const char *check_str(lua_State *L, int arg, const char *what, size_t *len) {
  if (lua_type(L, arg) != LUA_TSTRING)
    lmydb_error(L, "invalid_argument", "%s must be a string, got %s", what, luaL_typename(L, arg));
  return lua_tolstring(L, arg, len);
}

static const char *check_tenant(lua_State *L, int arg) {
  size_t len;
  const char *t = check_str(L, arg, "tenant", &len);
  if (!mydb_tenant_valid(t, len)) lmydb_error(L, "invalid_argument", "invalid tenant id");
  return t;
}

static const char *check_digest(lua_State *L, int arg) {
  size_t len;
  const char *d = check_str(L, arg, "digest", &len);
  if (!mydb_digest_valid(d, len))
    lmydb_error(L, "invalid_argument", "a digest is 64 lowercase hex characters");
  return d;
}

static int l_open(lua_State *L) {
  size_t len;
  const char *root = check_str(L, 1, "root", &len);
  mydb_options opts = MYDB_OPTIONS_INIT;
  if (lua_istable(L, 2)) {
    if (lua_getfield(L, 2, "fsync") != LUA_TNIL) opts.fsync = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (lua_getfield(L, 2, "cache_bytes") != LUA_TNIL) {
      if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0)
        lmydb_error(L, "invalid_argument", "cache_bytes must be a non-negative integer");
      opts.cache_bytes = (size_t)lua_tointeger(L, -1);
    }
    lua_pop(L, 1);
    if (lua_getfield(L, 2, "backend") != LUA_TNIL) {
      if (lua_type(L, -1) != LUA_TSTRING)
        lmydb_error(L, "invalid_argument", "backend must be a string");
      opts.backend = lua_tostring(L, -1); /* stays on the stack until open */
    }
    if (lua_getfield(L, 2, "segment_bytes") != LUA_TNIL) {
      if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < (lua_Integer)MYDB_SEGMENT_MIN ||
          lua_tointeger(L, -1) > (lua_Integer)MYDB_SEGMENT_MAX)
        lmydb_error(L, "invalid_argument", "segment_bytes must be an integer from %d to %d",
                    (int)MYDB_SEGMENT_MIN, (int)MYDB_SEGMENT_MAX);
      opts.segment_bytes = (size_t)lua_tointeger(L, -1);
    }
    lua_pop(L, 1);
  }
  lstore *s = lua_newuserdatauv(L, sizeof *s, 2); /* (2: store_lock's spare) */
  s->db = NULL;
  s->nodes = NULL;
  s->commit_buf = (mydb_buf)MYDB_BUF_INIT;
  s->commit_busy = 0;
  luaL_setmetatable(L, STORE_MT);
  /* user value: weak set of this store's live locks, released on close */
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_setiuservalue(L, -2, 1);
  int rc = mydb_open(&s->db, root, &opts);
  if (rc != MYDB_OK) return core_error(L, rc);
  return 1;
}


static int lock_release_ud(llock *l) {
  if (l->lk) {
    mydb_lock_release(l->lk);
    l->lk = NULL;
  }
  return 0;
}

static int store_close(lua_State *L) {
  lstore *s = luaL_checkudata(L, 1, STORE_MT);
  if (s->db) {
    lua_getiuservalue(L, 1, 1);
    if (lua_istable(L, -1)) {
      lua_pushnil(L);
      while (lua_next(L, -2)) {
        lua_pop(L, 1);
        llock *l = luaL_testudata(L, -1, LOCK_MT);
        if (l) lock_release_ud(l);
      }
    }
    lua_pop(L, 1);
    mydb_close(s->db);
    s->db = NULL;
  }
  lmydb_nodes_free(s->nodes);
  s->nodes = NULL;
  mydb_buf_free(&s->commit_buf);
  return 0;
}

static int store_tostring(lua_State *L) {
  lstore *s = luaL_checkudata(L, 1, STORE_MT);
  if (s->db) lua_pushfstring(L, "mydb.store (%p)", (void *)s->db);
  else lua_pushliteral(L, "mydb.store (closed)");
  return 1;
}

static int store_tenant_init(lua_State *L) {
  lstore *s = check_store(L);
  int rc = mydb_tenant_init(s->db, check_tenant(L, 2));
  if (rc != MYDB_OK) return core_error(L, rc);
  return 0;
}

static int store_tenant_exists(lua_State *L) {
  lstore *s = check_store(L);
  int rc = mydb_tenant_exists(s->db, check_tenant(L, 2));
  if (rc < 0) return core_error(L, rc);
  lua_pushboolean(L, rc);
  return 1;
}

/* Callbacks of the core's walks append to a guarded buffer (lguard.c):
 * nothing raises while the core holds its directory streams, arrays or
 * mutexes. A name: its bytes and a NUL. */
static int collect_name(const char *name, void *payload) {
  mydb_buf *b = payload;
  mydb_buf_put(b, name, strlen(name) + 1);
  return b->failed ? 1 : 0;
}

/* Raises out_of_memory if collecting failed, else the core's error. */
static void check_collected(lua_State *L, const mydb_buf *b, int rc, const char *what) {
  if (b->failed) lmydb_error(L, "out_of_memory", "out of memory listing %s", what);
  if (rc != MYDB_OK) core_error(L, rc);
}

/* The walk's names as a list; the buffer below it on the stack. */
static int push_names(lua_State *L, mydb_buf *b) {
  lua_newtable(L);
  lua_Integer n = 0;
  for (size_t i = 0; i < b->len; i += strlen(b->data + i) + 1) {
    lua_pushstring(L, b->data + i);
    lua_rawseti(L, -2, ++n);
  }
  lmydb_buf_done(b);
  return 1;
}

static int store_tenants(lua_State *L) {
  lstore *s = check_store(L);
  mydb_buf *b = lmydb_buf_new(L);
  int rc = mydb_tenant_foreach(s->db, collect_name, b);
  check_collected(L, b, rc, "tenants");
  return push_names(L, b);
}

/* store:write(tenant|nil, bytes [, digest [, base [, cache]]]) -> digest.
 * With digest (the codec's, computed as it built the bytes) the bytes are
 * not hashed again; base names the piece these bytes replace
 * (mydb_object_write_near: the pack backend may keep only the difference);
 * cache false: the bytes are not offered to the object cache (a
 * collection's snapshot, whose parsed form mydb.colinfo keeps). */
static int store_write(lua_State *L) {
  lstore *s = check_store(L);
  const char *tenant = opt_tenant(L, 2);
  size_t len;
  const char *bytes = check_str(L, 3, "bytes", &len);
  int cache = lua_isnoneornil(L, 6) || lua_toboolean(L, 6);
  char digest[MYDB_DIGEST_BUF];
  const char *d;
  if (!lua_isnoneornil(L, 4)) {
    d = check_digest(L, 4);
  } else {
    int rc = mydb_sha256_hex(digest, bytes, len);
    if (rc != MYDB_OK) return core_error(L, rc);
    d = digest;
  }
  const char *base = lua_isnoneornil(L, 5) ? NULL : check_digest(L, 5);
  int rc = mydb__object_write_piece(s->db, d, tenant, bytes, len, base, NULL, 0, cache);
  if (rc != MYDB_OK) return core_error(L, rc);
  if (d == digest) lua_pushlstring(L, d, MYDB_DIGEST_HEX);
  else lua_pushvalue(L, 4);
  return 1;
}

/* store:write_commit(tenant, c [, base]) -> id: the commit table c
 * (core.commit_bytes's form, lcommit.c) built, hashed and written in one
 * call, its bytes never handed to Lua; base: the parent commit, the piece
 * it is near (mydb_object_write_near). */
static int store_write_commit(lua_State *L) {
  lstore *s = check_store(L);
  const char *tenant = check_tenant(L, 2);
  if (!lua_istable(L, 3))
    lmydb_error(L, "invalid_argument", "a commit must be a table, got %s", luaL_typename(L, 3));
  const char *base = lua_isnoneornil(L, 4) ? NULL : check_digest(L, 4);
  lua_settop(L, 4);
  /* The store's buffer, kept between calls (a put makes one commit: no
   * buffer and no guard a call). The store owns it, so a raise while it is
   * in use leaks nothing; it leaves it busy, and the calls after that build
   * in a guarded buffer of their own (index 5). */
  int own = !s->commit_busy;
  mydb_buf *b = own ? &s->commit_buf : lmydb_buf_new(L);
  if (own) {
    if (b->failed) mydb_buf_free(b); /* (out of memory last time) */
    b->len = 0;
    s->commit_busy = 1;
  }
  lmydb_commit_build(L, 3, b);
  char id[MYDB_DIGEST_BUF];
  int rc = mydb_sha256_hex(id, b->data, b->len);
  if (rc == MYDB_OK) rc = mydb__object_write_piece(s->db, id, tenant, b->data, b->len, base, NULL, 0, 1);
  if (own) {
    s->commit_busy = 0;
    if (b->cap > 65536) mydb_buf_free(b); /* (a huge message: not kept) */
  } else {
    lmydb_buf_done(b);
  }
  if (rc != MYDB_OK) return core_error(L, rc);
  lua_pushlstring(L, id, MYDB_DIGEST_HEX);
  return 1;
}

static int store_read(lua_State *L) {
  lstore *s = check_store(L);
  const char *tenant = opt_tenant(L, 2);
  const char *digest = check_digest(L, 3);
  mydb_blob **b = lmydb_blob_slot(L); /* released even if the push raises */
  int rc = mydb_object_read(s->db, b, tenant, digest);
  if (rc != MYDB_OK) return core_error(L, rc);
  lua_pushlstring(L, mydb_blob_data(*b), mydb_blob_len(*b));
  lmydb_blob_done(b);
  return 1;
}

static int store_exists(lua_State *L) {
  lstore *s = check_store(L);
  const char *tenant = opt_tenant(L, 2);
  int rc = mydb_object_exists(s->db, tenant, check_digest(L, 3));
  if (rc < 0) return core_error(L, rc);
  lua_pushboolean(L, rc);
  return 1;
}

static int store_objects(lua_State *L) {
  lstore *s = check_store(L);
  const char *tenant = opt_tenant(L, 2);
  mydb_buf *b = lmydb_buf_new(L);
  int rc = mydb_object_foreach(s->db, tenant, collect_name, b);
  check_collected(L, b, rc, "objects");
  return push_names(L, b);
}

/* An entry name: a string with its length. Its form (1 to MYDB_ENTRY_MAX
 * bytes, no NUL) is checked once, by the core call it is passed to. */
static const char *check_entry(lua_State *L, int arg, size_t *len) {
  return check_str(L, arg, "entry", len);
}

static int store_head(lua_State *L) {
  lstore *s = check_store(L);
  const char *tenant = check_tenant(L, 2);
  size_t elen;
  const char *entry = check_entry(L, 3, &elen);
  char digest[MYDB_DIGEST_BUF];
  int rc = mydb_head_get(s->db, digest, tenant, entry, elen);
  if (rc == MYDB_ENOTFOUND) return 0;
  if (rc != MYDB_OK) return core_error(L, rc);
  lua_pushlstring(L, digest, MYDB_DIGEST_HEX);
  return 1;
}

/* A head: the entry's length (a size_t), its bytes, the digest. */
static int collect_head(const char *entry, size_t len, const char *digest, void *payload) {
  mydb_buf *b = payload;
  mydb_buf_put(b, &len, sizeof len);
  mydb_buf_put(b, entry, len);
  mydb_buf_put(b, digest, MYDB_DIGEST_HEX);
  return b->failed ? 1 : 0;
}

/* The next head collect_head stored at b->data + *i: its name (length
 * *len) and digest; NULL at the end. */
static const char *next_head(const mydb_buf *b, size_t *i, size_t *len,
                             const char **digest) {
  if (*i >= b->len) return NULL;
  memcpy(len, b->data + *i, sizeof *len);
  const char *name = b->data + *i + sizeof *len;
  *digest = name + *len;
  *i += sizeof *len + *len + MYDB_DIGEST_HEX;
  return name;
}

/* store:heads(tenant) -> {entry, ...} (entry order), {entry = digest} */
static int store_heads(lua_State *L) {
  lstore *s = check_store(L);
  const char *tenant = check_tenant(L, 2);
  mydb_buf *b = lmydb_buf_new(L);
  int rc = mydb_head_foreach(s->db, tenant, collect_head, b);
  check_collected(L, b, rc, "heads");
  lua_newtable(L);
  lua_newtable(L);
  lua_Integer n = 0;
  size_t i = 0, len;
  const char *name, *digest;
  while ((name = next_head(b, &i, &len, &digest))) {
    lua_pushlstring(L, name, len);
    lua_pushvalue(L, -1);
    lua_rawseti(L, -4, ++n);
    lua_pushlstring(L, digest, MYDB_DIGEST_HEX);
    lua_rawset(L, -3);
  }
  lmydb_buf_done(b);
  return 2;
}

/* store:refs(tenant) -> {["heads/main"] = digest, ...} */
static int store_refs(lua_State *L) {
  lstore *s = check_store(L);
  const char *tenant = check_tenant(L, 2);
  mydb_buf *b = lmydb_buf_new(L);
  int rc = mydb_ref_foreach(s->db, tenant, collect_head, b);
  check_collected(L, b, rc, "refs");
  lua_newtable(L);
  size_t i = 0, len;
  const char *name, *digest;
  while ((name = next_head(b, &i, &len, &digest))) {
    lua_pushlstring(L, name, len);
    lua_pushlstring(L, digest, MYDB_DIGEST_HEX);
    lua_rawset(L, -3);
  }
  lmydb_buf_done(b);
  return 1;
}

/* store:chain(tenant, digest, max) -> {digest, parent, grandparent, ...}
 * Follows __parent__ links without decoding the snapshots. */
static int store_chain(lua_State *L) {
  lstore *s = check_store(L);
  const char *tenant = check_tenant(L, 2);
  char cur[MYDB_DIGEST_BUF];
  memcpy(cur, check_digest(L, 3), MYDB_DIGEST_BUF);
  lua_Integer max = luaL_checkinteger(L, 4);
  lua_createtable(L, max > 0 && max < 4096 ? (int)max : 0, 0);
  for (lua_Integer n = 1; n <= max; n++) {
    lua_pushlstring(L, cur, MYDB_DIGEST_HEX);
    lua_rawseti(L, -2, n);
    mydb_blob *b = NULL;
    int rc = mydb_object_read(s->db, &b, tenant, cur);
    if (rc != MYDB_OK) return core_error(L, rc);
    int has = lmydb_snapshot_parent(mydb_blob_data(b), mydb_blob_len(b), cur);
    mydb_blob_release(b);
    if (has < 0) return lmydb_error(L, "corrupt", "snapshot %s has no valid __parent__", cur);
    if (has == 0) break;
  }
  return 1;
}

/* -------------------------------------------------------------------- lock */

static llock *check_lock(lua_State *L) {
  llock *l = luaL_checkudata(L, 1, LOCK_MT);
  if (!l->lk) lmydb_error(L, "closed", "attempt to use a released lock");
  return l;
}

/* store:lock(tenant [, spare]): spare - take the store's spare lock
 * userdata when it is released, and keep the new one as the spare when
 * there is none: a put takes a lock and releases it before returning, and
 * then makes no userdata to finalize and no entry in the weak set of live
 * locks each time. (Busy - a lock taken with it still held - a new one.) */
static int store_lock(lua_State *L) {
  lstore *s = check_store(L);
  const char *tenant = check_tenant(L, 2);
  int spare = lua_toboolean(L, 3);
  lua_settop(L, 2);
  if (spare && lua_getiuservalue(L, 1, 2) == LUA_TUSERDATA) {
    llock *sp = luaL_checkudata(L, 3, LOCK_MT);
    if (!sp->lk) {
      int rc = mydb_lock_acquire(s->db, &sp->lk, tenant);
      if (rc != MYDB_OK) return core_error(L, rc);
      return 1; /* (still in the live set: the store holds it) */
    }
    spare = 0; /* busy: a new one, not kept */
  }
  lua_settop(L, 2);
  llock *l = lua_newuserdatauv(L, sizeof *l, 1);
  l->lk = NULL;
  luaL_setmetatable(L, LOCK_MT);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1); /* pin the store */
  int rc = mydb_lock_acquire(s->db, &l->lk, tenant);
  if (rc != MYDB_OK) return core_error(L, rc);
  lua_getiuservalue(L, 1, 1);
  lua_pushvalue(L, -2);
  lua_pushboolean(L, 1);
  lua_rawset(L, -3);
  lua_pop(L, 1);
  if (spare) {
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, 1, 2);
  }
  return 1;
}

static int lock_release(lua_State *L) {
  return lock_release_ud(luaL_checkudata(L, 1, LOCK_MT));
}

static int lock_head(lua_State *L) {
  llock *l = check_lock(L);
  size_t elen;
  const char *entry = check_entry(L, 2, &elen);
  char digest[MYDB_DIGEST_BUF];
  int rc = mydb_lock_head_get(l->lk, digest, entry, elen);
  if (rc == MYDB_ENOTFOUND) return 0;
  if (rc != MYDB_OK) return core_error(L, rc);
  lua_pushlstring(L, digest, MYDB_DIGEST_HEX);
  return 1;
}

/* lock:head_is(entry, digest) -> whether entry's head is digest (a caller
 * that holds the string it expects: no new one). */
static int lock_head_is(lua_State *L) {
  llock *l = check_lock(L);
  size_t elen;
  const char *entry = check_entry(L, 2, &elen);
  const char *want = check_digest(L, 3);
  char digest[MYDB_DIGEST_BUF];
  int rc = mydb_lock_head_get(l->lk, digest, entry, elen);
  if (rc != MYDB_OK && rc != MYDB_ENOTFOUND) return core_error(L, rc);
  lua_pushboolean(L, rc == MYDB_OK && memcmp(digest, want, MYDB_DIGEST_HEX) == 0);
  return 1;
}

/* lock:commit({{entry, digest_or_false}, ...} [, release])
 * release: release the lock too, and with fsync on wait for durability
 * after releasing it (group commit; mydb_head_commit_release). */
static int lock_commit(lua_State *L) {
  llock *l = check_lock(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  int release = lua_toboolean(L, 3);
  lua_settop(L, 2); /* (index 3 was read as the release flag before the
                     * changes array below took it: a bug) */
  lua_Integer n = (lua_Integer)lua_rawlen(L, 2);
  if (n < 1 || n > 1000000) lmydb_error(L, "invalid_argument", "commit needs 1 to 1000000 changes");
  /* (a put's two changes, or a few: on the stack, no userdata) */
  mydb_head_change few[8];
  mydb_head_change *ch = n <= 8 ? few : lua_newuserdatauv(L, sizeof *ch * (size_t)n, 0);
  for (lua_Integer i = 1; i <= n; i++) {
    if (lua_rawgeti(L, 2, i) != LUA_TTABLE) lmydb_error(L, "invalid_argument", "change %d is not a table", (int)i);
    lua_rawgeti(L, -1, 1);
    ch[i - 1].entry = check_entry(L, -1, &ch[i - 1].entry_len);
    lua_pop(L, 1);
    lua_rawgeti(L, -1, 2);
    ch[i - 1].digest = lua_toboolean(L, -1) ? check_digest(L, lua_gettop(L)) : NULL;
    lua_pop(L, 2); /* strings stay alive: the changes table holds them */
  }
  int rc;
  if (release) {
    mydb_lock *lk = l->lk;
    l->lk = NULL; /* freed by mydb_head_commit_release in every case */
    rc = mydb_head_commit_release(lk, ch, (size_t)n);
  } else {
    rc = mydb_head_commit(l->lk, ch, (size_t)n);
  }
  if (rc != MYDB_OK) return core_error(L, rc);
  return 0;
}

/* ---------------------------------------------------------- gc, repack */

static void push_stats(lua_State *L, const mydb_gc_stats *st) {
  lua_createtable(L, 0, 7);
#define F(name) lua_pushinteger(L, (lua_Integer)st->name); lua_setfield(L, -2, #name)
  F(objects_removed); F(bytes_freed); F(objects_kept); F(bytes_kept);
  F(segments_removed); F(segments_written); F(records_dropped);
#undef F
}

/* store:gc_begin(tenant|nil) -> a, b (the mark) */
static int store_gc_begin(lua_State *L) {
  lstore *s = check_store(L);
  mydb_gc_mark m;
  int rc = mydb_gc_begin(s->db, opt_tenant(L, 2), &m);
  if (rc != MYDB_OK) return core_error(L, rc);
  lua_pushinteger(L, (lua_Integer)m.a);
  lua_pushinteger(L, (lua_Integer)m.b);
  return 2;
}

/* The digests to keep, sorted, in a userdata (Lua memory: nothing to free
 * if a raise comes), so that the sweep's callback never enters Lua. */
typedef struct keep_set {
  size_t n;
  char (*d)[MYDB_DIGEST_HEX];
} keep_set;

static int cmp_digest(const void *a, const void *b) {
  return memcmp(a, b, MYDB_DIGEST_HEX);
}

/* The keys of the table at idx that are digests whose value is true. */
static keep_set keep_set_from(lua_State *L, int idx) {
  keep_set k = {0, NULL};
  for (int pass = 0; pass < 2; pass++) {
    size_t n = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
      size_t len;
      const char *d = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &len) : NULL;
      if (d && lua_toboolean(L, -1) && mydb_digest_valid(d, len)) {
        if (pass == 1) memcpy(k.d[n], d, MYDB_DIGEST_HEX);
        n++;
      }
      lua_pop(L, 1);
    }
    if (pass == 0) k.d = lua_newuserdatauv(L, n ? n * MYDB_DIGEST_HEX : 1, 0);
    k.n = n;
  }
  qsort(k.d, k.n, MYDB_DIGEST_HEX, cmp_digest);
  return k;
}

static int keep_in_set(const char *digest, void *payload) {
  const keep_set *k = payload;
  return bsearch(digest, k->d, k->n, MYDB_DIGEST_HEX, cmp_digest) != NULL;
}

/* store:gc_sweep(tenant|nil, a, b, keep) -> stats. keep: a table whose
 * keys are the digests to keep. The caller holds the lock(s): see
 * mydb_gc_sweep. */
static int store_gc_sweep(lua_State *L) {
  lstore *s = check_store(L);
  const char *tenant = opt_tenant(L, 2);
  mydb_gc_mark m;
  m.a = (int64_t)luaL_checkinteger(L, 3);
  m.b = (int64_t)luaL_checkinteger(L, 4);
  luaL_checktype(L, 5, LUA_TTABLE);
  lua_settop(L, 5);
  keep_set keep = keep_set_from(L, 5);
  mydb_gc_stats st;
  memset(&st, 0, sizeof st);
  int rc = mydb_gc_sweep(s->db, tenant, &m, keep_in_set, &keep, &st);
  if (rc != MYDB_OK) return core_error(L, rc);
  push_stats(L, &st);
  return 1;
}

/* store:repack(tenant|nil) -> stats (the caller holds the tenant's lock) */
static int store_repack(lua_State *L) {
  lstore *s = check_store(L);
  mydb_gc_stats st;
  memset(&st, 0, sizeof st);
  int rc = mydb_repack(s->db, opt_tenant(L, 2), &st);
  if (rc != MYDB_OK) return core_error(L, rc);
  push_stats(L, &st);
  return 1;
}

/* A problem: "what: message" and a NUL. */
static void check_cb(const char *what, const char *msg, void *payload) {
  mydb_buf *b = payload;
  mydb_buf_puts(b, what);
  mydb_buf_put(b, ": ", 2);
  mydb_buf_put(b, msg, strlen(msg) + 1);
}

/* store:check(tenant|nil) -> {message, ...}: the backend's own framing
 * (pack: record checksums, the segment chain); {} for loose and memory. */
static int store_check(lua_State *L) {
  lstore *s = check_store(L);
  const char *tenant = opt_tenant(L, 2);
  mydb_buf *b = lmydb_buf_new(L);
  int rc = mydb_check(s->db, tenant, check_cb, b);
  check_collected(L, b, rc, "problems");
  return push_names(L, b);
}

static int journal_line(const char *line, size_t len, void *payload) {
  mydb_buf *b = payload;
  mydb_buf_put(b, line, len);
  mydb_buf_putc(b, '\n');
  return b->failed ? 1 : 0;
}

/* store:journal(tenant) -> the head history in the loose journal's format
 * (see mydb_head_journal). Collected in C: nothing may raise while the
 * core walks. */
static int store_journal(lua_State *L) {
  lstore *s = check_store(L);
  const char *tenant = check_tenant(L, 2);
  mydb_buf *b = lmydb_buf_new(L);
  int rc = mydb_head_journal(s->db, tenant, journal_line, b);
  check_collected(L, b, rc, "the journal");
  lua_pushlstring(L, b->data ? b->data : "", b->len);
  lmydb_buf_done(b);
  return 1;
}

/* store:setting(key) -> the store-wide setting, or nil when unset (see
 * mydb_setting_get; raises invalid_argument where the backend keeps none). */
static int store_setting(lua_State *L) {
  lstore *s = check_store(L);
  const char *key = luaL_checkstring(L, 2);
  mydb_blob **b = lmydb_blob_slot(L);
  int rc = mydb_setting_get(s->db, key, b);
  if (rc == MYDB_ENOTFOUND) {
    lua_pushnil(L);
    return 1;
  }
  if (rc != MYDB_OK) return core_error(L, rc);
  lua_pushlstring(L, mydb_blob_data(*b), mydb_blob_len(*b));
  lmydb_blob_done(b);
  return 1;
}

/* store:set_setting(key, value | nil): nil removes it. */
static int store_set_setting(lua_State *L) {
  lstore *s = check_store(L);
  const char *key = luaL_checkstring(L, 2);
  size_t len = 0;
  const char *v = lua_isnoneornil(L, 3) ? NULL : luaL_checklstring(L, 3, &len);
  int rc = mydb_setting_set(s->db, key, v, len);
  if (rc != MYDB_OK) return core_error(L, rc);
  return 0;
}

/* store:backend() -> "loose" | "pack" | "memory" */
static int store_backend(lua_State *L) {
  lstore *s = check_store(L);
  lua_pushstring(L, mydb_backend_name(s->db));
  return 1;
}

/* ----------------------------------------------------------------- helpers */

static int l_sha256(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  char out[MYDB_DIGEST_BUF];
  int rc = mydb_sha256_hex(out, s, len);
  if (rc != MYDB_OK) return core_error(L, rc);
  lua_pushlstring(L, out, MYDB_DIGEST_HEX);
  return 1;
}

/* core.key_hash(key) -> the first 6 bytes of SHA-256(key), big-endian: the
 * prolly tree's boundary hash (doc/FORMAT.md). */
static int l_key_hash(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  char hex[MYDB_DIGEST_BUF];
  int rc = mydb_sha256_hex(hex, s, len);
  if (rc != MYDB_OK) return core_error(L, rc);
  lua_Integer h = 0;
  for (int i = 0; i < 12; i++) {
    char c = hex[i];
    h = h * 16 + (c <= '9' ? c - '0' : c - 'a' + 10);
  }
  lua_pushinteger(L, h);
  return 1;
}

/* core.monotonic() -> seconds from a monotonic clock, as a float (Lua has
 * no wall clock finer than os.time; used by the benchmark and timeouts). */
static int l_monotonic(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
  return 1;
}

/* core.realtime() -> seconds since the epoch to the microsecond, as a
 * float (commit and tag times, doc/FORMAT.md: os.time has whole seconds
 * only). The double nearest the six-decimal number: one division of the
 * exact count of microseconds, so that the codec writes its text the short
 * way (numtext.c) and it reads back the same. */
static int l_realtime(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  int64_t us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
  lua_pushnumber(L, (lua_Number)us / 1e6);
  return 1;
}

/* Pushes whether argument 1 is a string that valid() accepts. */
static int push_valid(lua_State *L, int (*valid)(const char *, size_t)) {
  size_t len;
  const char *s = lua_type(L, 1) == LUA_TSTRING ? lua_tolstring(L, 1, &len) : NULL;
  lua_pushboolean(L, s && valid(s, len));
  return 1;
}

/* core.ref_name_valid(s) -> boolean ("heads/NAME" or "tags/NAME") */
static int l_ref_name_valid(lua_State *L) { return push_valid(L, mydb_ref_name_valid); }

static int l_digest_valid(lua_State *L) { return push_valid(L, mydb_digest_valid); }

/* core.zone_bytes() -> zero bytes pack's durable writers wrote ahead */
static int l_zone_bytes(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)mydb_zone_bytes());
  return 1;
}

/* core.hashed_bytes() -> bytes SHA-256 has hashed in this process */
static int l_hashed_bytes(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)mydb_hashed_bytes());
  return 1;
}

/* core._fault(n [, errno [, sticky]]): a test hook (SQLite's
 * SimulateIOError): the n-th system call of the core from now fails with
 * errno (default EIO; "ENOSPC" too), and with sticky every call after it
 * too; 0 turns it off. Returns the calls that were left uncounted and the
 * failures injected since the previous call. */
static int l_fault(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  const char *e = luaL_optstring(L, 2, "EIO");
  int err = strcmp(e, "ENOSPC") == 0 ? ENOSPC : EIO;
  long left = atomic_exchange(&mydb__fault_countdown, 0);
  long fired = atomic_exchange(&mydb__fault_fired, 0);
  atomic_store(&mydb__fault_errno, err);
  atomic_store(&mydb__fault_sticky, lua_toboolean(L, 3));
  atomic_store(&mydb__fault_countdown, n > 0 ? (long)n : 0);
  lua_pushinteger(L, fired ? 0 : left);
  lua_pushinteger(L, fired);
  return 2;
}

static int l_tenant_valid(lua_State *L) { return push_valid(L, mydb_tenant_valid); }

static void new_class(lua_State *L, const char *name, const luaL_Reg *methods,
                      lua_CFunction close, lua_CFunction tostring) {
  luaL_newmetatable(L, name);
  lua_newtable(L);
  luaL_setfuncs(L, methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, close);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, close);
  lua_setfield(L, -2, "__close");
  if (tostring) {
    lua_pushcfunction(L, tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
}

int luaopen_mydb_core(lua_State *L);
int luaopen_mydb_core(lua_State *L) {
  static const luaL_Reg store_methods[] = {
      {"tenant_init", store_tenant_init}, {"tenant_exists", store_tenant_exists},
      {"tenants", store_tenants},         {"write", store_write},
      {"write_commit", store_write_commit},
      {"read", store_read},               {"exists", store_exists},
      {"objects", store_objects},         {"head", store_head},
      {"heads", store_heads},             {"lock", store_lock},
      {"refs", store_refs},
      {"chain", store_chain},             {"backend", store_backend},
      {"gc_begin", store_gc_begin},       {"gc_sweep", store_gc_sweep},
      {"repack", store_repack},           {"check", store_check},
      {"journal", store_journal},
      {"setting", store_setting},
      {"set_setting", store_set_setting},
      {"close", store_close},             {NULL, NULL}};
  static const luaL_Reg lock_methods[] = {
      {"head", lock_head}, {"head_is", lock_head_is}, {"commit", lock_commit},
      {"release", lock_release}, {NULL, NULL}};
  static const luaL_Reg fns[] = {{"open", l_open},
                                 {"sha256", l_sha256},
                                 {"key_hash", l_key_hash},
                                 {"monotonic", l_monotonic},
                                 {"realtime", l_realtime},
                                 {"ref_name_valid", l_ref_name_valid},
                                 {"digest_valid", l_digest_valid},
                                 {"hashed_bytes", l_hashed_bytes},
                                 {"zone_bytes", l_zone_bytes},
                                 {"tenant_valid", l_tenant_valid},
                                 {"_fault", l_fault},
                                 {NULL, NULL}};
  new_class(L, STORE_MT, store_methods, store_close, store_tostring);
  new_class(L, LOCK_MT, lock_methods, lock_release, NULL);
  luaL_newmetatable(L, LMYDB_ERROR_MT);
  lua_pushcfunction(L, error_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);

  lmydb_open_guards(L);
  luaL_newlib(L, fns);
  lmydb_open_codec(L);
  lmydb_open_piece(L);
  lmydb_open_tree(L);
  lmydb_open_read(L);
  lmydb_open_commit(L);
  lmydb_open_sandbox(L);
  luaL_getmetatable(L, LMYDB_ERROR_MT);
  lua_setfield(L, -2, "error_mt");
  lua_pushliteral(L, MYDB_VERSION);
  lua_setfield(L, -2, "_VERSION");
  return 1;
}
