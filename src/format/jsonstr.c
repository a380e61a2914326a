/*
 * jsonstr.c - JSON string literals (see jsonstr.h).
 */
#include "jsonstr.h"

#include <stdint.h>
#include <string.h>

int mydb_utf8_valid(const char *s, size_t len) {
  const unsigned char *p = (const unsigned char *)s, *e = p + len;
  while (p < e) {
    unsigned c = *p;
    if (c < 0x80) { p++; continue; }
    size_t n;
    uint32_t cp, min;
    if (c >= 0xc2 && c <= 0xdf) { n = 1; cp = c & 0x1f; min = 0x80; }
    else if (c >= 0xe0 && c <= 0xef) { n = 2; cp = c & 0x0f; min = 0x800; }
    else if (c >= 0xf0 && c <= 0xf4) { n = 3; cp = c & 0x07; min = 0x10000; }
    else return 0;
    if ((size_t)(e - p) <= n) return 0;
    for (size_t i = 1; i <= n; i++) {
      if ((p[i] & 0xc0) != 0x80) return 0;
      cp = (cp << 6) | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    p += n + 1;
  }
  return 1;
}

static int needs_escape(unsigned char c) {
  return c < 0x20 || c == '"' || c == '\\' || c == 0x7f;
}

void mydb_json_put_string(mydb_buf *b, const char *s, size_t len) {
  static const char hx[] = "0123456789abcdef";
  if (mydb_buf_grow(b, len + 2) != 0) return;
  mydb_buf_putc(b, '"');
  size_t i = 0;
  while (i < len) {
    size_t j = i;
    while (j < len && !needs_escape((unsigned char)s[j])) j++;
    if (j > i) mydb_buf_put(b, s + i, j - i);
    if (j == len) break;
    unsigned char c = (unsigned char)s[j];
    char esc[7] = {'\\', 0, 0, 0, 0, 0, 0};
    size_t el = 2;
    switch (c) {
      case '"': esc[1] = '"'; break;
      case '\\': esc[1] = '\\'; break;
      case '\n': esc[1] = 'n'; break;
      case '\t': esc[1] = 't'; break;
      case '\r': esc[1] = 'r'; break;
      case '\b': esc[1] = 'b'; break;
      case '\f': esc[1] = 'f'; break;
      default:
        esc[1] = 'u'; esc[2] = '0'; esc[3] = '0';
        esc[4] = hx[c >> 4]; esc[5] = hx[c & 15];
        el = 6;
    }
    mydb_buf_put(b, esc, el);
    i = j + 1;
  }
  mydb_buf_putc(b, '"');
}

static int hex4(const char *p, const char *end, uint32_t *out) {
  if (end - p < 4) return -1;
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) {
    char c = p[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= (uint32_t)(c - '0');
    else if (c >= 'a' && c <= 'f') v |= (uint32_t)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') v |= (uint32_t)(c - 'A' + 10);
    else return -1;
  }
  *out = v;
  return 0;
}

static void put_utf8(mydb_buf *b, uint32_t cp) {
  char u[4];
  size_t n;
  if (cp < 0x80) { u[0] = (char)cp; n = 1; }
  else if (cp < 0x800) {
    u[0] = (char)(0xc0 | (cp >> 6));
    u[1] = (char)(0x80 | (cp & 0x3f));
    n = 2;
  } else if (cp < 0x10000) {
    u[0] = (char)(0xe0 | (cp >> 12));
    u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
    u[2] = (char)(0x80 | (cp & 0x3f));
    n = 3;
  } else {
    u[0] = (char)(0xf0 | (cp >> 18));
    u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    u[3] = (char)(0x80 | (cp & 0x3f));
    n = 4;
  }
  mydb_buf_put(b, u, n);
}

const char *mydb_json_get_string(mydb_buf *out, const char *p,
                                 const char *end) {
  if (!p || p >= end || *p != '"') return NULL;
  p++;
  for (;;) {
    const char *q = p;
    while (q < end && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20)
      q++;
    if (q > p) mydb_buf_put(out, p, (size_t)(q - p));
    if (q >= end) return NULL;
    if (*q == '"') return q + 1;
    if (*q != '\\') return NULL; /* raw control byte */
    q++;
    if (q >= end) return NULL;
    char c = *q++;
    switch (c) {
      case '"': mydb_buf_putc(out, '"'); break;
      case '\\': mydb_buf_putc(out, '\\'); break;
      case '/': mydb_buf_putc(out, '/'); break;
      case 'b': mydb_buf_putc(out, '\b'); break;
      case 'f': mydb_buf_putc(out, '\f'); break;
      case 'n': mydb_buf_putc(out, '\n'); break;
      case 'r': mydb_buf_putc(out, '\r'); break;
      case 't': mydb_buf_putc(out, '\t'); break;
      case 'u': {
        uint32_t cp;
        if (hex4(q, end, &cp) != 0) return NULL;
        q += 4;
        if (cp >= 0xdc00 && cp <= 0xdfff) return NULL; /* lone low */
        if (cp >= 0xd800 && cp <= 0xdbff) {
          uint32_t lo;
          if (end - q < 6 || q[0] != '\\' || q[1] != 'u' ||
              hex4(q + 2, end, &lo) != 0 || lo < 0xdc00 || lo > 0xdfff)
            return NULL; /* lone high */
          q += 6;
          cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        }
        put_utf8(out, cp);
        break;
      }
      default: return NULL;
    }
    p = q;
  }
}
