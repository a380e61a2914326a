/*
 * loose.h - the loose backend's private parts: objects as files (loose.c),
 * the objects a tenant-lock holder writes appended to one file per tenant
 * (packed.c), and the JSON-lines head journal (journal.c).
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
struct mydb__lpk;    /* packed.c: a tenant's packed file */

typedef struct mydb__loose {
  mydb_backend be;
  pthread_mutex_t mu; /* protects everything below */
  mydb__htab tstates;                      /* tenant -> struct mydb__tstate */
  struct mydb__tstate *ts_first, *ts_last; /* LRU order, most recent first */
  size_t ts_count;
  mydb__htab pks;                     /* tenant -> struct mydb__lpk */
  struct mydb__lpk *pk_first, *pk_last; /* LRU order */
  size_t pk_count;
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

/* packed.c: TENANT/packed (doc/FORMAT.md "Packed objects"). All called
 * with lb->mu held. Reads return MYDB_ENOTFOUND without a message when the
 * object is not packed. */
typedef void (*mydb__lpk_report)(const char *what, const char *msg,
                                 void *payload);
/* The tenant's state (created; pinned ones are never evicted). */
int mydb__lpk_get(mydb__loose *lb, const char *tenant, struct mydb__lpk **out);
void mydb__lpk_free_all(mydb__loose *lb);
void mydb__lpk_unhex(unsigned char out[32], const char *hex);
/* The tenant lock taken / released by this thread (release drops the
 * stage); holds: this thread holds it; claim: a lock passed to another
 * thread is this thread's now. */
void mydb__lpk_lock(struct mydb__lpk *pk);
void mydb__lpk_unlock(struct mydb__lpk *pk);
int mydb__lpk_holds(const struct mydb__lpk *pk);
void mydb__lpk_claim(struct mydb__lpk *pk);
/* Brings the index up to date with the file. */
int mydb__lpk_refresh(struct mydb__lpk *pk);
int mydb__lpk_read(struct mydb__lpk *pk, const unsigned char d[32],
                   mydb_blob **out);
/* 1, 0 or an error. */
int mydb__lpk_exists(struct mydb__lpk *pk, const unsigned char d[32]);
/* Lock held: stages an object for the next append (nothing if packed
 * already); a large stage is appended at once. */
int mydb__lpk_stage(mydb *db, struct mydb__lpk *pk, const unsigned char d[32],
                    const void *buf, size_t len);
/* Lock held: appends the stage as one group (synced with db->fsync),
 * truncating a torn tail first; empties the stage. */
int mydb__lpk_append(mydb *db, struct mydb__lpk *pk);
void mydb__lpk_stage_drop(struct mydb__lpk *pk);
/* The staged digests (hex, MYDB_DIGEST_BUF apart) into a new array. */
size_t mydb__lpk_staged_names(struct mydb__lpk *pk, char **out);
/* The packed digests (hex, MYDB_DIGEST_BUF apart) into a new array. */
int mydb__lpk_names(struct mydb__lpk *pk, char **out, size_t *n);
/* 1 if hex is in the index (as last refreshed). */
int mydb__lpk_has(const struct mydb__lpk *pk, const char *hex);
/* gc: the mark (generation and end offset); the sweep rewrites the file
 * with the objects kept (lock held). */
int64_t mydb__lpk_mark(struct mydb__lpk *pk, int *rc);
int mydb__lpk_sweep(mydb *db, struct mydb__lpk *pk, int64_t mark,
                    int (*keep)(const char *digest, void *payload),
                    void *payload, mydb_gc_stats *st);
/* Verifies every group and object CRC; reports damage through fn. */
int mydb__lpk_check(struct mydb__lpk *pk, mydb__lpk_report fn, void *payload);

#endif
