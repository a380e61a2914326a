/*
 * cache.h - an intrusive chained hash table (used for the object cache, the
 * head maps and the tenant states) and the LRU object cache.
 */
#ifndef MYDB_CACHE_H
#define MYDB_CACHE_H

#include <stddef.h>
#include <stdint.h>

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
mydb__hnode *mydb__htab_find(const mydb__htab *t, uint64_t hash,
                             const char *key, size_t klen);
/* Inserts n (n->hash, key, klen set; key not present). 0, or -1 when the
 * first bucket array cannot be allocated (a failed grow is tolerated). */
int mydb__htab_add(mydb__htab *t, mydb__hnode *n);
void mydb__htab_del(mydb__htab *t, mydb__hnode *n);
/* Frees the bucket array (not the nodes). */
void mydb__htab_free(mydb__htab *t);

/* ---------------------------------------------------------- object cache */
struct mydb_blob;
typedef struct mydb__centry mydb__centry;

typedef struct mydb__cache {
  mydb__htab t;
  mydb__centry *first, *last; /* most recently used first */
  size_t bytes;               /* sum of cached blob lengths */
  size_t max;                 /* budget; 0 disables the cache */
} mydb__cache;

void mydb__cache_init(mydb__cache *c, size_t max);
/* A new reference to the cached blob of (tenant or NULL, digest), or NULL. */
struct mydb_blob *mydb__cache_get(mydb__cache *c, const char *tenant,
                                  const char *digest);
/* Caches b (taking its own reference) if it fits; silently does nothing
 * otherwise (including on allocation failure). */
void mydb__cache_put(mydb__cache *c, const char *tenant, const char *digest,
                     struct mydb_blob *b);
int mydb__cache_contains(const mydb__cache *c, const char *tenant,
                         const char *digest);
void mydb__cache_remove(mydb__cache *c, const char *tenant,
                        const char *digest);
void mydb__cache_free(mydb__cache *c);

#endif
