/*
 * varint.c - minimal unsigned LEB128 (varint.h).
 */
#include "varint.h"

size_t mydb__varint_put(unsigned char *p, uint64_t v) {
  size_t n = 0;
  do {
    unsigned char c = v & 0x7f;
    v >>= 7;
    p[n++] = (unsigned char)(v ? c | 0x80 : c);
  } while (v);
  return n;
}

int mydb__varint_get(const unsigned char **p, const unsigned char *end,
                     uint64_t *out) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (*p >= end) return -1;
    unsigned char c = *(*p)++;
    if (shift == 63 && c > 1) return -1; /* past 64 bits */
    if (c == 0 && shift > 0) return -1;  /* not minimal */
    v |= (uint64_t)(c & 0x7f) << shift;
    if (!(c & 0x80)) {
      *out = v;
      return 0;
    }
  }
  return -1;
}
