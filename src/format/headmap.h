/*
 * headmap.h - a tenant's head state (entry -> digest) and the commit line
 * that changes it. Shared by the backends: the loose journal (src/backend/loose/journal.c) and
 * the pack log replay the same JSON lines (doc/FORMAT.md "Head journal"),
 * the memory backend applies changes directly.
 *
 * Not thread-safe: the owner's mutex protects a map.
 */
#ifndef MYDB_HEADMAP_H
#define MYDB_HEADMAP_H

#include <stddef.h>

#include "buf.h"
#include "htab.h"
#include "mydb.h"

typedef struct mydb__hentry {
  mydb__hnode h;
  char digest[MYDB_DIGEST_HEX];
  char key[];
} mydb__hentry;

/* Frees every entry and the buckets; the map is empty and reusable. */
void mydb__hmap_clear(mydb__htab *m);
/* 0, or MYDB_ENOMEM (no message set). */
int mydb__hmap_set(mydb__htab *m, const char *key, size_t klen,
                   const char *digest);
void mydb__hmap_del(mydb__htab *m, const char *key, size_t klen);
/* The 64 hex characters of key's digest (not NUL-terminated), or NULL. */
const char *mydb__hmap_get(const mydb__htab *m, const char *key, size_t klen);
/* Live entries sorted bytewise; NULL with *n 0 when empty or on ENOMEM
 * (distinguish with m->n). Valid while the map is not changed. */
mydb__hentry **mydb__hmap_sorted(const mydb__htab *m, size_t *n);
/* Applies n changes (digest NULL removes). On ENOMEM the map holds part of
 * them: the caller must drop it. */
int mydb__hmap_apply(mydb__htab *m, const mydb_head_change *c, size_t n);

/* A copy of a map, to call back without holding the owner's mutex. */
typedef struct mydb__hsnap {
  size_t n;
  struct mydb__hitem *items;
  char *arena;
} mydb__hsnap;
/* Copies m (sets the message on ENOMEM; what names the tenant). */
int mydb__hsnap_take(mydb__hsnap *s, const mydb__htab *m, const char *what);
/* Sorts, calls fn for each entry until it returns non-zero (returned),
 * then frees the snapshot. */
int mydb__hsnap_run(mydb__hsnap *s,
                    int (*fn)(const char *entry, size_t entry_len,
                              const char *digest, void *payload),
                    void *payload);

/* One parsed pair of a commit line. */
typedef struct mydb__hpair {
  size_t off, len; /* decoded entry in the keys buffer */
  int del;
  char digest[MYDB_DIGEST_HEX];
} mydb__hpair;

/* Parses one commit line [p, e) (no newline) into keys and pairs. NULL, or
 * the reason it is malformed ("out of memory" when a buffer failed). */
const char *mydb__hline_parse(const char *p, const char *e, mydb_buf *keys,
                              mydb_buf *pairs);
/* Applies what mydb__hline_parse produced; 0 or MYDB_ENOMEM (then the map
 * holds part of the commit: the caller must drop it). *np: pairs. */
int mydb__hline_apply(mydb__htab *m, const mydb_buf *keys,
                      const mydb_buf *pairs, size_t *np);
/* 1 if [p, e) is the journal header line {"mydb_head":1}. */
int mydb__hline_is_header(const char *p, const char *e);
/* Appends the commit line of n changes, without a newline. */
void mydb__hline_build(mydb_buf *b, const mydb_head_change *c, size_t n);
/* Appends a line setting every entry of the map (sorted), without a
 * newline: "[]" when empty. 0 or MYDB_ENOMEM. */
int mydb__hline_state(mydb_buf *b, const mydb__htab *m);

#endif
