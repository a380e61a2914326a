/*
 * base64.h - standard base64 with padding: the text of a byte string that
 * is not UTF-8 (the codec's {"__bytes__":...} tag, doc/FORMAT.md).
 */
#ifndef MYDB_BASE64_H
#define MYDB_BASE64_H

#include <stddef.h>

#include "buf.h"

/* Appends the base64 text of s[0..len). */
void mydb__b64_encode(mydb_buf *b, const unsigned char *s, size_t len);
/* Decodes b's bytes in place (b->len shrinks). Strict: canonical padding
 * and zero trailing bits only. 0, or -1 on bad input. */
int mydb__b64_decode(mydb_buf *b);

#endif
