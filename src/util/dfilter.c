/*
 * dfilter.c - the digest filter (dfilter.h).
 */
#include <stdlib.h>
#include <string.h>

#include "dfilter.h"

#define BITS_PER_DIGEST 16
#define MIN_BITS ((size_t)1 << 14)

/* The word of a digest and its two bits in that word, from two words of
 * the digest (its bytes are uniform: SHA-256). Both bits in one word: a
 * look-up is one cache miss, not two (the array, 16 bits a digest, is
 * larger than the cache at a few 100,000 objects: two misses were 3.7% of
 * a batch); ~1.7% false positives against 1.4% for bits anywhere. */
static size_t word_of(const mydb__dfilter *f, const unsigned char d[32], uint64_t *mask) {
  uint64_t x, y;
  memcpy(&x, d, 8);
  memcpy(&y, d + 8, 8);
  *mask = (uint64_t)1 << (y & 63) | (uint64_t)1 << (y >> 6 & 63);
  return (size_t)x & (f->nbits / 64 - 1);
}

int mydb__dfilter_may(const mydb__dfilter *f, const unsigned char d[32]) {
  if (!f->bits) return 1;
  uint64_t m;
  size_t w = word_of(f, d, &m);
  return (f->bits[w] & m) == m;
}

void mydb__dfilter_add(mydb__dfilter *f, const unsigned char d[32]) {
  if (!f->bits) return;
  uint64_t m;
  size_t w = word_of(f, d, &m);
  f->bits[w] |= m;
  f->n++;
}

int mydb__dfilter_full(const mydb__dfilter *f) {
  return !f->off && (!f->bits || f->n >= f->nbits / BITS_PER_DIGEST);
}

void mydb__dfilter_reset(mydb__dfilter *f, size_t n) {
  mydb__dfilter_free(f);
  size_t nbits = MIN_BITS;
  while (nbits / BITS_PER_DIGEST < n && nbits <= SIZE_MAX / 4) nbits *= 2;
  f->bits = calloc(nbits / 64, sizeof *f->bits);
  if (f->bits) f->nbits = nbits;
  else f->off = 1;
}

void mydb__dfilter_free(mydb__dfilter *f) {
  free(f->bits);
  f->bits = NULL;
  f->nbits = f->n = 0;
  f->off = 0;
}
