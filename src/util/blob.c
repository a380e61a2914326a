/*
 * blob.c - immutable reference-counted byte strings returned by reads.
 * The count is a C11 atomic: the cache and any number of readers (in any
 * thread) hold references; the last release frees.
 */
#include <stdlib.h>

#include "internal.h"

mydb_blob *mydb__blob_new(size_t len) {
  if (len > SIZE_MAX - sizeof(mydb_blob) - 1) return NULL;
  mydb_blob *b = malloc(sizeof *b + len + 1);
  if (!b) return NULL;
  atomic_init(&b->refs, 1);
  b->len = len;
  b->block = NULL;
  b->data[len] = '\0';
  return b;
}

mydb_blob *mydb__blob_ref(mydb_blob *b) {
  atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
  return b;
}

const char *mydb_blob_data(const mydb_blob *b) { return b ? b->data : NULL; }

size_t mydb_blob_len(const mydb_blob *b) { return b ? b->len : 0; }

void mydb_blob_release(mydb_blob *b) {
  if (!b) return;
  /* acq_rel: the freeing thread must see every other thread's accesses. */
  if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1) {
    if (b->block) mydb__block_unuse(b->block);
    else free(b);
  }
}

void mydb__block_unuse(mydb__block *k) {
  if (atomic_fetch_sub_explicit(&k->users, 1, memory_order_acq_rel) == 1) free(k);
}
