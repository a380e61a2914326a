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
