/*
 * ltree.h - what ltree.c (the collection tree's node cache and write path)
 * lends to the readers in ltree_read.c: a session, its nodes, their items.
 * Internal to src/lua.
 */
#ifndef LTREE_H
#define LTREE_H

#include <stddef.h>

#include <lua.h>

typedef struct ltree ltree; /* a session: core.tree(store, tenant) */
typedef struct tnode tnode; /* a parsed piece, reference-counted */

/* The session at stack index idx, ready for an operation (raises if it is
 * not one or its store is closed). */
ltree *lmydb_tree_check(lua_State *L, int idx);
/* The node of a raw digest (pending, cached, or read, verified and
 * parsed), with a reference of the caller's own; NULL on failure (the
 * session keeps the message: lmydb_tree_raise). Only between
 * lmydb_tree_check and the return to Lua. scan: a piece read once by a
 * long scan, cached only if the cache has room for it without evicting. */
tnode *lmydb_tree_load(ltree *t, const unsigned char digest[32], int scan);
/* Drops a reference (NULL allowed). */
void lmydb_tree_unref(tnode *n);
/* Raises the session's failure after releasing what its operation held. */
int lmydb_tree_raise(lua_State *L, ltree *t);
/* Sets the session's failure to a corrupt tree (a message about tenant). */
void lmydb_tree_corrupt(ltree *t, const char *why);

int lmydb_node_leaf(const tnode *n);
size_t lmydb_node_count(const tnode *n);
/* Item i (0-based) of a node: its key, and a leaf's value JSON or an inner
 * node's 32-byte raw child digest. */
void lmydb_node_item(const tnode *n, size_t i, const char **key, size_t *klen, const char **val,
                     size_t *vlen);

#endif
