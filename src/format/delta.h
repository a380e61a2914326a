/*
 * delta.h - a piece stored as the bytes that differ from another piece
 * (its base): the pack backend's deltas (doc/FORMAT.md, "Pack backend").
 *
 * A delta is: the base's SHA-256 (32 bytes), the length of the prefix the
 * two share (varint), the length of the suffix they share (varint), then
 * the bytes between. A put changes one record of a leaf, or one child of an
 * inner piece, so one span covers it: no general diff is needed.
 */
#ifndef MYDB_DELTA_H
#define MYDB_DELTA_H

#include <stddef.h>

#include "buf.h"

#define MYDB_DELTA_MIN 34 /* a base digest and two one-byte varints */

/* Appends to out the delta that makes obj from base (named base_digest,
 * 32 raw bytes). Returns its length, or 0 (out untouched) when a delta
 * would not be under a quarter of obj's length: then obj is kept whole. */
size_t mydb__delta_make(mydb_buf *out, const unsigned char base_digest[32],
                        const void *base, size_t blen, const void *obj,
                        size_t olen);

/* Reads a delta's header: the base digest (a pointer into d) and the
 * shared lengths. 0, or -1 when d is not a delta. */
int mydb__delta_parse(const void *d, size_t dlen, const unsigned char **base,
                      size_t *prefix, size_t *suffix, size_t *middle);

/* The object's length (prefix + middle + suffix) when base is blen bytes,
 * or (size_t)-1 when the delta does not fit that base. */
size_t mydb__delta_size(const void *d, size_t dlen, size_t blen);

/* Writes the object into out (mydb__delta_size bytes) from base and d,
 * which must have passed mydb__delta_size. */
void mydb__delta_apply(unsigned char *out, const void *base, size_t blen,
                       const void *d, size_t dlen);

#endif
