/*
 * buf.h - a growable byte buffer with a sticky error (libgit2's filebuf
 * idea): appends need no checks; the first failure is reported by
 * mydb_buf_failed() / at the end.
 */
#ifndef MYDB_BUF_H
#define MYDB_BUF_H

#include <stddef.h>

typedef struct mydb_buf {
  char *data;
  size_t len;
  size_t cap;
  int failed; /* 1 after an allocation failed; further appends do nothing */
} mydb_buf;

#define MYDB_BUF_INIT {NULL, 0, 0, 0}

int mydb_buf_grow(mydb_buf *b, size_t extra); /* 0, or -1 (and failed=1) */
void mydb_buf_put(mydb_buf *b, const void *p, size_t n);
void mydb_buf_putc(mydb_buf *b, char c);
void mydb_buf_puts(mydb_buf *b, const char *s);
void mydb_buf_free(mydb_buf *b);

#endif
