/*
 * dfilter.c - the digest filter (dfilter.h).
 */
#include <stdlib.h>
#include <string.h>

#include "dfilter.h"

#define BITS_PER_DIGEST 16
#define MIN_BITS ((size_t)1 << 14)

/* Two bit positions from two words of the digest (its bytes are uniform:
 * SHA-256). */
static void positions(const mydb__dfilter *f, const unsigned char d[32], size_t *a, size_t *b) {
  uint64_t x, y;
  memcpy(&x, d, 8);
  memcpy(&y, d + 8, 8);
  *a = (size_t)x & (f->nbits - 1);
  *b = (size_t)y & (f->nbits - 1);
}

int mydb__dfilter_may(const mydb__dfilter *f, const unsigned char d[32]) {
  if (!f->bits) return 1;
  size_t a, b;
  positions(f, d, &a, &b);
  return (f->bits[a >> 6] >> (a & 63) & 1) && (f->bits[b >> 6] >> (b & 63) & 1);
}

void mydb__dfilter_add(mydb__dfilter *f, const unsigned char d[32]) {
  if (!f->bits) return;
  size_t a, b;
  positions(f, d, &a, &b);
  f->bits[a >> 6] |= (uint64_t)1 << (a & 63);
  f->bits[b >> 6] |= (uint64_t)1 << (b & 63);
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
