/*
 * loose.h - the loose backend's private parts: one file per object
 * (loose.c) and the JSON-lines head journal (journal.c).
 */
#ifndef MYDB_LOOSE_H
#define MYDB_LOOSE_H

#include <pthread.h>

#include "internal.h"

#define MYDB__HEAD_HEADER "{\"mydb_head\":1}\n"
#define MYDB__HEAD_HEADER_LEN (sizeof(MYDB__HEAD_HEADER) - 1)
/* Compaction thresholds (see doc/FORMAT.md "Head journal"). */
#define MYDB__COMPACT_MIN 1024

struct mydb__tstate; /* journal.c */

typedef struct mydb__loose {
  mydb_backend be;
  pthread_mutex_t mu; /* protects everything below */
  mydb__htab tstates;                      /* tenant -> struct mydb__tstate */
  struct mydb__tstate *ts_first, *ts_last; /* LRU order, most recent first */
  size_t ts_count;
  /* descriptors of ROOT/TENANT/lock no lock holds, kept for the next
   * acquisition of that tenant (an open walks the path: several calls);
   * one taken is the holder's alone, so threads still get their own */
  struct {
    int fd;
    char tenant[MYDB_TENANT_MAX + 1];
  } idle[8];
  size_t nidle;
} mydb__loose;

/* 1 if ROOT/TENANT/objects is a directory, 0 if not, or MYDB_EIO. */
int mydb__loose_initialized(const mydb *db, const char *tenant);

/* journal.c: the journal. Called with the tenant lock held where stated. */
void mydb__loose_heads_free(mydb__loose *lb);
int mydb__loose_head_get(mydb_backend *be, char out[MYDB_DIGEST_BUF],
                         const char *tenant, size_t tlen, const char *entry,
                         size_t entry_len, int locked);
int mydb__loose_head_foreach(mydb_backend *be, const char *tenant,
                             size_t tlen,
                             int (*fn)(const char *entry, size_t entry_len,
                                       const char *digest, void *payload),
                             void *payload);
int mydb__loose_head_commit(mydb_backend *be, struct mydb_lock *lk,
                            const mydb_head_change *c, size_t n,
                            const char *line, size_t len,
                            mydb__pending *pending);
/* Rewrites the journal as one line per live entry (lock held). *done: 1
 * if it was rewritten. */
int mydb__loose_head_compact(mydb_backend *be, const char *tenant,
                             int *done, size_t *dropped);

#endif
