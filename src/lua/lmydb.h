/*
 * lmydb.h - shared pieces of the Lua binding (mydb.core).
 */
#ifndef LMYDB_H
#define LMYDB_H

#include <lua.h>

#include "buf.h"
#include "mydb.h"

#define LMYDB_ERROR_MT "mydb.error"
#define LMYDB_STORE_MT "mydb.store"

/* The node cache of the collection trees of a store handle (ltree.c). */
typedef struct lmydb_nodes lmydb_nodes;

/* The store userdata (lmydb.c). ltree.c reads it through its metatable,
 * and calls nothing of lmydb.c (no cycle between the files). */
typedef struct lmydb_store {
  mydb *db;            /* NULL once closed */
  lmydb_nodes *nodes;  /* NULL until a tree is used */
  mydb_buf commit_buf; /* store:write_commit's bytes, reused (lmydb.c) */
  int commit_busy;     /* commit_buf in use (a raise left it so: not reused) */
} lmydb_store;

/* Raises a mydb error value {code = code, message = formatted}. Never returns. */
int lmydb_error(lua_State *L, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Pushes (without raising) a mydb error value. */
void lmydb_push_error(lua_State *L, const char *code, const char *msg);

/* lguard.c: a buffer and a blob slot owned by a new userdata on the stack
 * (freed by __gc if a raise comes first); *_done frees them now. */
mydb_buf *lmydb_buf_new(lua_State *L);
void lmydb_buf_done(mydb_buf *b);
mydb_blob **lmydb_blob_slot(lua_State *L);
void lmydb_blob_done(mydb_blob **slot);
/* Registers the guards' metatables (luaopen_mydb_core). */
void lmydb_open_guards(lua_State *L);

/* The parent digest a snapshot names (lcodec.c, the owner of the snapshot
 * format) into out: 1; 0 for a first version; -1 if the bytes name none. */
int lmydb_snapshot_parent(const char *data, size_t len, char out[MYDB_DIGEST_BUF]);

/* A span of bytes (a stored document inside a piece). */
typedef struct lmydb_span {
  const char *p;
  size_t len;
} lmydb_span;
/* Decodes n stored documents (lcodec.c) into the table at stack index out,
 * out[1..n]; ctx: stack index of a codec context, or 0. Raises a mydb
 * error (corrupt) on a malformed one. */
void lmydb_decode_spans(lua_State *L, int ctx, int out, const lmydb_span *spans, size_t n);

/* Registers the codec functions into the table at the top of the stack. */
void lmydb_open_codec(lua_State *L);
/* lcodec.c: a number or string at idx, encoded as core.encode does, onto b
 * (0; -1 if it is neither). */
int lmydb_put_scalar(lua_State *L, int idx, mydb_buf *b);
/* Adds core.commit_bytes (lcommit.c). */
void lmydb_open_commit(lua_State *L);
/* lcommit.c: the bytes of the commit table at stack index c onto b (the
 * form core.commit_bytes returns); raises invalid_argument on a bad field. */
void lmydb_commit_build(lua_State *L, int c, mydb_buf *b);
/* Adds the binary inner piece and chunk hash functions (lpiece.c). */
void lmydb_open_piece(lua_State *L);
/* Adds core.tree_cursor, the collection tree's reader (ltree_read.c). */
void lmydb_open_read(lua_State *L);
/* Adds core.tree, the collection tree's write path (ltree.c). */
void lmydb_open_tree(lua_State *L);
/* Frees a store's node cache (NULL allowed). */
void lmydb_nodes_free(lmydb_nodes *c);
/* Adds core.sandbox and core.cputime (lsandbox.c) to the table on top. */
void lmydb_open_sandbox(lua_State *L);

#endif
