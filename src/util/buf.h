/*
 * buf.h - a growable byte buffer with a sticky error (libgit2's filebuf
 * idea): appends need no checks; the first failure is reported by
 * mydb_buf_failed() / at the end.
 */
#ifndef MYDB_BUF_H
#define MYDB_BUF_H

#include <stddef.h>
#include <string.h>

typedef struct mydb_buf {
  char *data;
  size_t len;
  size_t cap;
  int failed; /* 1 after an allocation failed; further appends do nothing */
} mydb_buf;

#define MYDB_BUF_INIT {NULL, 0, 0, 0}

int mydb_buf_grow(mydb_buf *b, size_t extra); /* 0, or -1 (and failed=1) */
void mydb_buf_puts(mydb_buf *b, const char *s);
void mydb_buf_free(mydb_buf *b);

/* Appends are inline: a piece or a commit is built from hundreds of small
 * ones (callgrind: ~700 calls a put, ~20k instructions in call overhead
 * when they were out of line). */
static inline void mydb_buf_put(mydb_buf *b, const void *p, size_t n) {
  if (n == 0) return;
  if ((b->failed || b->cap - b->len < n) && mydb_buf_grow(b, n) != 0) return;
  memcpy(b->data + b->len, p, n);
  b->len += n;
}

static inline void mydb_buf_putc(mydb_buf *b, char c) {
  if ((b->failed || b->cap == b->len) && mydb_buf_grow(b, 1) != 0) return;
  b->data[b->len++] = c;
}

#endif
