#include "buf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int mydb_buf_grow(mydb_buf *b, size_t extra) {
  if (b->failed) return -1;
  if (b->cap - b->len >= extra) return 0;
  if (extra > SIZE_MAX / 2 - b->len) { b->failed = 1; return -1; }
  size_t want = b->len + extra;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < want) cap *= 2;
  char *p = realloc(b->data, cap);
  if (!p) { b->failed = 1; return -1; }
  b->data = p;
  b->cap = cap;
  return 0;
}

void mydb_buf_puts(mydb_buf *b, const char *s) { mydb_buf_put(b, s, strlen(s)); }

void mydb_buf_free(mydb_buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
  b->failed = 0;
}
