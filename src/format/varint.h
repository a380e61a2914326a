/*
 * varint.h - unsigned LEB128 varints, minimal: the lengths and counts of
 * binary inner pieces (src/lua/lpiece.c) and of pack deltas (delta.c).
 * One value has one text, as every byte mydb hashes must.
 */
#ifndef MYDB_VARINT_H
#define MYDB_VARINT_H

#include <stddef.h>
#include <stdint.h>

#define MYDB_VARINT_MAX 10 /* bytes of the longest (a 64-bit value) */

/* Writes v at p (room for MYDB_VARINT_MAX bytes); its length. */
size_t mydb__varint_put(unsigned char *p, uint64_t v);

/* Reads a varint at *p (< end) and moves *p past it: 0, or -1 when it is
 * truncated, longer than 64 bits, or not minimal (a zero last byte). */
int mydb__varint_get(const unsigned char **p, const unsigned char *end,
                     uint64_t *out);

#endif
