/*
 * dfilter.h - a filter of 32-byte digests that answers "certainly absent"
 * from a bit array small enough to stay in the CPU's cache (a Bloom
 * filter, two bits a digest in one 64-bit word, 16 bits of array a digest,
 * ~1.7% false positives), in front of a hash table too large for it: a look-up of a
 * digest that is not there - every new object a write checks for - then
 * costs no walk of the table's memory. No deletion: the owner clears it
 * with its table. Digests are SHA-256 outputs, so their bytes are the
 * hash. Not thread-safe (its owner's lock covers it).
 */
#ifndef MYDB_DFILTER_H
#define MYDB_DFILTER_H

#include <stddef.h>
#include <stdint.h>

typedef struct mydb__dfilter {
  uint64_t *bits; /* NULL: not built (every digest may be present) */
  size_t nbits;   /* a power of two */
  size_t n;       /* digests added */
  int off;        /* its array could not be allocated: stays unbuilt */
} mydb__dfilter;

/* 0 when d is certainly not among the digests added; 1 when it may be. */
int mydb__dfilter_may(const mydb__dfilter *f, const unsigned char d[32]);
/* Adds d (nothing when unbuilt). */
void mydb__dfilter_add(mydb__dfilter *f, const unsigned char d[32]);
/* Whether the owner should rebuild f before the next add: never built, or
 * holding as many digests as it was sized for (then _reset for more, and
 * every digest added again). 0 once an allocation failed: it stays
 * unbuilt ("may" for every digest) until freed. */
int mydb__dfilter_full(const mydb__dfilter *f);
/* Empties f, sized for at least n digests. */
void mydb__dfilter_reset(mydb__dfilter *f, size_t n);
/* Frees the array: f is as new (never built). */
void mydb__dfilter_free(mydb__dfilter *f);

#endif
