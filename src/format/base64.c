/*
 * base64.c - standard base64 (RFC 4648, with padding) for the __bytes__ tag
 * of the value codec (lcodec.c) and the leaf keys of the tree (ltree.c).
 */
#include <stdint.h>

#include "base64.h"

static const char b64chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void mydb__b64_encode(mydb_buf *b, const unsigned char *s, size_t len) {
  if (mydb_buf_grow(b, (len + 2) / 3 * 4) != 0) return;
  size_t i = 0;
  for (; i + 2 < len; i += 3) {
    uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
    char q[4] = {b64chars[v >> 18], b64chars[(v >> 12) & 63], b64chars[(v >> 6) & 63],
                 b64chars[v & 63]};
    mydb_buf_put(b, q, 4);
  }
  if (i < len) {
    uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < len ? (uint32_t)s[i + 1] << 8 : 0);
    char q[4] = {b64chars[v >> 18], b64chars[(v >> 12) & 63],
                 i + 1 < len ? b64chars[(v >> 6) & 63] : '=', '='};
    mydb_buf_put(b, q, 4);
  }
}

static int b64_val(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

/* Strict: canonical padding only. Returns 0 or -1. Decodes in place. */
int mydb__b64_decode(mydb_buf *b) {
  size_t n = b->len, o = 0;
  unsigned char *s = (unsigned char *)b->data;
  if (n % 4) return -1;
  for (size_t i = 0; i < n; i += 4) {
    int a = b64_val(s[i]), c1 = b64_val(s[i + 1]);
    int pad2 = s[i + 2] == '=', pad3 = s[i + 3] == '=';
    if (a < 0 || c1 < 0) return -1;
    if ((pad2 || pad3) && i + 4 != n) return -1;
    if (pad2 && !pad3) return -1;
    int c2 = pad2 ? 0 : b64_val(s[i + 2]);
    int c3 = pad3 ? 0 : b64_val(s[i + 3]);
    if (c2 < 0 || c3 < 0) return -1;
    uint32_t v = (uint32_t)a << 18 | (uint32_t)c1 << 12 | (uint32_t)c2 << 6 | (uint32_t)c3;
    s[o++] = (unsigned char)(v >> 16);
    if (!pad2) s[o++] = (unsigned char)(v >> 8);
    else if (v & 0xffff) return -1; /* non-canonical trailing bits */
    if (!pad3) s[o++] = (unsigned char)v;
    else if (!pad2 && (v & 0xff)) return -1;
  }
  b->len = o;
  return 0;
}

