/*
 * delta.c - one-span deltas between versions of a piece (delta.h).
 */
#include <stdint.h>
#include <string.h>

#include "delta.h"
#include "varint.h"

static int same8(const unsigned char *x, const unsigned char *y) {
  uint64_t a, b;
  memcpy(&a, x, 8);
  memcpy(&b, y, 8);
  return a == b;
}

size_t mydb__delta_make(mydb_buf *out, const unsigned char base_digest[32],
                        const void *base, size_t blen, const void *obj,
                        size_t olen) {
  const unsigned char *b = base, *o = obj;
  size_t lim = blen < olen ? blen : olen, pre = 0, suf = 0;
  /* eight bytes at a time, then byte by byte: the same spans (a piece is
   * a few KiB, and this runs for each piece a put writes) */
  while (pre + 8 <= lim && same8(b + pre, o + pre)) pre += 8;
  while (pre < lim && b[pre] == o[pre]) pre++;
  lim -= pre;
  while (suf + 8 <= lim && same8(b + blen - suf - 8, o + olen - suf - 8)) suf += 8;
  while (suf < lim && b[blen - 1 - suf] == o[olen - 1 - suf]) suf++;
  size_t mid = olen - pre - suf;
  unsigned char hdr[32 + 20];
  memcpy(hdr, base_digest, 32);
  size_t h = 32;
  h += mydb__varint_put(hdr + h, pre);
  h += mydb__varint_put(hdr + h, suf);
  if (h + mid >= olen / 4) return 0;
  mydb_buf_put(out, hdr, h);
  mydb_buf_put(out, o + pre, mid);
  return h + mid;
}

int mydb__delta_parse(const void *d, size_t dlen, const unsigned char **base,
                      size_t *prefix, size_t *suffix, size_t *middle) {
  const unsigned char *p = d, *end = p + dlen;
  uint64_t pre, suf;
  if (dlen < MYDB_DELTA_MIN) return -1;
  *base = p;
  p += 32;
  if (mydb__varint_get(&p, end, &pre) || mydb__varint_get(&p, end, &suf) ||
      (uint64_t)(size_t)pre != pre || (uint64_t)(size_t)suf != suf)
    return -1;
  *prefix = (size_t)pre;
  *suffix = (size_t)suf;
  *middle = (size_t)(end - p);
  return 0;
}

size_t mydb__delta_size(const void *d, size_t dlen, size_t blen) {
  const unsigned char *base;
  size_t pre, suf, mid;
  if (mydb__delta_parse(d, dlen, &base, &pre, &suf, &mid) ||
      pre > blen || suf > blen - pre)
    return (size_t)-1;
  return pre + mid + suf;
}

void mydb__delta_apply(unsigned char *out, const void *base, size_t blen,
                       const void *d, size_t dlen) {
  const unsigned char *bd;
  size_t pre, suf, mid;
  (void)mydb__delta_parse(d, dlen, &bd, &pre, &suf, &mid);
  const unsigned char *b = base;
  memcpy(out, b, pre);
  memcpy(out + pre, (const unsigned char *)d + (dlen - mid), mid);
  memcpy(out + pre + mid, b + blen - suf, suf);
}
