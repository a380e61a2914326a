/*
 * cache.h - the LRU object cache of verified blobs.
 */
#ifndef MYDB_CACHE_H
#define MYDB_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "htab.h"

/* ---------------------------------------------------------- object cache */
struct mydb_blob;
typedef struct mydb__centry mydb__centry;

typedef struct mydb__cache {
  mydb__htab t;
  mydb__centry *first, *last; /* most recently used first */
  size_t bytes;               /* sum of cached blob lengths */
  size_t max;                 /* budget; 0 disables the cache */
  struct mydb__superseded *sup; /* bases replaced by writes not yet committed */
  size_t nsup;
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
/* Notes that an object of tenant was written as a near-copy of base (the
 * piece or commit it replaces): once the tenant's head commit is durable,
 * mydb__cache_settle drops base from the cache (the next write needs the
 * new piece, not it), so the cache holds the current tree and freed blocks
 * come back to the next write instead of the heap growing. At most
 * MYDB__SUP_MAX are noted between settles (the rest stay cached). */
void mydb__cache_supersede(mydb__cache *c, const char *tenant,
                           const char *base);
/* Forgets the tenant's notes; with evict, drops their bases first (the
 * commit that replaced them is durable: a failed commit's retry may still
 * need them as delta bases, so they stay then). */
void mydb__cache_settle(mydb__cache *c, const char *tenant, int evict);

#endif
