/*
 * htab.h - an intrusive chained hash table: nodes live inside their owners'
 * structures; the table owns only its bucket array. Not thread-safe.
 */
#ifndef MYDB_HTAB_H
#define MYDB_HTAB_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct mydb__hnode {
  struct mydb__hnode *next;
  uint64_t hash;
  const char *key; /* points into the containing structure */
  size_t klen;
} mydb__hnode;

typedef struct mydb__htab {
  mydb__hnode **b;
  size_t nb; /* bucket count, a power of two (0 before first insert) */
  size_t n;  /* nodes */
} mydb__htab;

uint64_t mydb__hash(const void *p, size_t n);
/* The hash of a raw 32-byte digest: its first word (a SHA-256 output is
 * uniform already; no pass over its bytes). */
static inline uint64_t mydb__digest_hash(const unsigned char d[32]) {
  uint64_t h;
  memcpy(&h, d, 8);
  return h;
}
mydb__hnode *mydb__htab_find(const mydb__htab *t, uint64_t hash,
                             const char *key, size_t klen);
/* Inserts n (n->hash, key, klen set; key not present). 0, or -1 when the
 * first bucket array cannot be allocated (a failed grow is tolerated). */
int mydb__htab_add(mydb__htab *t, mydb__hnode *n);
void mydb__htab_del(mydb__htab *t, mydb__hnode *n);
/* Frees the bucket array (not the nodes). */
void mydb__htab_free(mydb__htab *t);

#endif
