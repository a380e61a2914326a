/*
 * pack.h - the pack backend's private parts (doc/FORMAT.md "Pack backend").
 *
 * A *space* is what one directory of segments holds: a tenant's objects and
 * head (ROOT/TENANT/pack/) or the shared refs (ROOT/refs/pack/):
 *
 *   NNNNNN.seg   append-only segments; records (below) one after another
 *   index        digest -> (segment, offset, length), the heads, and how far
 *                into the log it reaches; rewritten at roll-over, on repack
 *                and on close after a long tail
 *   lock         flock()ed around every append (the "append lock")
 *   synced       the durable point: how far the log is known durable (group
 *                commit across processes; below it a record that is not
 *                whole is damage, past it a torn tail)
 *
 * A record: a 24-byte header, then the payload.
 *
 *   0  4  magic "MDBR"
 *   4  1  type: 1 object, 2 head commit, 3 generation start, 4 seal
 *   5  3  zero
 *   8  8  payload length (little-endian)
 *   16 4  CRC-32 of the payload
 *   20 4  CRC-32 of header bytes 0-19
 *
 * Payloads: object = 32-byte binary digest + the bytes; head commit = the
 * JSON commit line of the loose journal (no newline); generation start =
 * the whole head state as one commit line (it replaces the state, and every
 * record before it is superseded: repack writes one first); seal = the
 * 8-byte number of the next segment (a segment's last record).
 *
 * Locks: one lock per space, pack/lock (flock), orders every append, and
 * for a tenant's space it is also the tenant lock that orders commits
 * (mydb_lock_acquire): a commit appends under the lock it already holds.
 * ROOT/TENANT/lock is still created (the layout loose shares) but a pack
 * store does not lock it. In a handle, one descriptor of pack/lock per space
 * (ps->lockfd), claimed by one thread at a time (ps->lk_claimed, waited for
 * on pb->cv): flock() gives no exclusion between threads sharing the
 * descriptor. Nobody blocks in flock() while holding pb->mu.
 *
 * Staging: while a thread holds a tenant's lock, the objects it writes to
 * that tenant are encoded into ps->stage (not yet in the log) and appended
 * with the commit record in one pwritev at commit; a lock released without
 * a commit drops them (no head names them).
 */
#ifndef MYDB_PACK_H
#define MYDB_PACK_H

#include <pthread.h>
#include <sys/types.h>

#include "dfilter.h"
#include "internal.h"

#define PACK_HDR 24
#define PACK_MAGIC "MDBR"
enum { REC_OBJECT = 1, REC_COMMIT = 2, REC_GEN = 3, REC_SEAL = 4,
       REC_DELTA = 5 };

/* A delta record (REC_DELTA): the object's digest, then a delta against
 * another object of the space (src/format/delta.h): what a put stores for
 * a piece it rewrites. A chain of deltas ends at a whole object within
 * PACK_DELTA_DEPTH steps; readers rebuild the bytes, and the digest names
 * the whole object as for any other. */
/* A roll-over rewrites the index (a whole copy: 56 bytes an object) only
 * once the log has grown past it by this many times its size. At every
 * roll-over it made each 64 MiB segment cost a write and a hash of the
 * whole index - 17 MB at 300,000 objects, more than the segment's own
 * writes past ~1.2 million - where now the index writes stay under an
 * eighth of the log's, and an open scans at most 8 x the index's size of
 * log past it (and the active segment). */
#define PACK_INDEX_GROWTH 8

#define PACK_DELTA_DEPTH 8
#define PACK_DELTA_UNKNOWN 255 /* a delta whose base was not seen first */

/* The group-commit state of one segment file, shared by every handle of
 * the process (a registry keyed by device and inode). */
typedef struct psync psync;

typedef struct pseg {
  uint64_t num;
  int fd; /* -1 until first needed */
} pseg;

typedef struct ploc {
  mydb__hnode h;
  unsigned char digest[32];
  uint64_t seg; /* segment number */
  uint64_t off; /* of the object's bytes (after the digest) */
  uint64_t len;
  unsigned char depth; /* 0: whole bytes; else a delta, chain length */
} ploc;

/* Where a space's plocs come from: chunks of PPOOL_N, handed out in order
 * and freed all at once (the index is dropped whole; the staged set after
 * each commit): not two mallocs an object written, one of them kept as
 * long as the space. */
#define PPOOL_N 85 /* (a chunk just under 8 KiB) */
typedef struct ppool_chunk {
  struct ppool_chunk *next;
  ploc items[PPOOL_N];
} ppool_chunk;
typedef struct ppool {
  ppool_chunk *chunks; /* the newest first */
  size_t used;         /* items handed out of the newest */
} ppool;

typedef struct pspace {
  mydb__hnode h; /* in pb->spaces; key: tenant name, "" for the refs */
  struct pspace *prev, *next; /* LRU */
  int loaded;
  pseg *segs; /* the chain, oldest first; the last is the active one */
  size_t nsegs, capsegs;
  uint64_t end;    /* end of the last whole record of the active segment */
  dev_t dev;       /* of the active segment */
  ino_t ino;
  mydb__htab objs;  /* 32-byte digest -> ploc */
  ppool objs_pool;  /* ... its plocs */
  mydb__dfilter objs_filter; /* ... which digests it certainly lacks */
  mydb__htab heads; /* entry -> mydb__hentry */
  int lockfd;       /* pack/lock, or -1 */
  int syncfd;       /* pack/synced (read-only, for its poison), or -1 */
  psync *sync;      /* of the active segment, or NULL */
  int dirty;        /* appended since the last sync (fsync on) */
  int locked;       /* this handle holds the append lock */
  int lk_claimed;   /* a thread of this handle holds or is taking it */
  pthread_t lk_owner; /* that thread */
  int lk_tenant;    /* ... as the tenant lock (a mydb_lock) */
  int lk_fresh;     /* refreshed since the tenant lock was taken: the
                       state is current until it is released */
  int tail_clean;   /* the lock held since the active segment was seen to
                       end at `end`, or to go on with zeros only (no torn
                       bytes to truncate) */
  int zone_ok;      /* what lies past `end` in the active segment is known
                       to this process: zeros (a zone a writer prepared),
                       then at most a killed appender's torn record, whose
                       first bytes are at `end` (log.c, "Zones") */
  uint64_t fsize;   /* the active segment's size as last seen (0: not
                       known) */
  int foreign;      /* a refresh found records this handle did not write
                       (another writer is active: worth asking pack/synced
                       before an fdatasync) */
  int pins;         /* not evicted while > 0 (a lock holder, a waiter) */
  uint64_t missing; /* a segment of the chain found missing (a repack
                       elsewhere may have removed it), or 0 */
  pthread_mutex_t *mu; /* pb->mu and pb->cv (NULL: a private copy that */
  pthread_cond_t *cv;  /* never locks) */
  mydb_buf stage;   /* staged object records, encoded */
  mydb_buf dscratch; /* a delta being made (stage_near), reused */
  mydb__htab staged; /* 32-byte digest -> ploc (off: into stage) */
  ppool staged_pool; /* ... its plocs */
  int noindex;      /* a repack's new generation: never write an index
                       nor a durable point */
  /* a walk (mydb__pack_journal): called for each commit line */
  int (*journal_fn)(const char *line, size_t len, void *payload);
  void *journal_p;
  size_t tail;      /* records scanned or appended beyond the index */
  uint64_t tail_bytes;
  uint64_t index_bytes; /* the index's size when last written or loaded
                           (0: none known): see PACK_INDEX_GROWTH */
  size_t tlen;
  char name[MYDB_TENANT_MAX + 1];
  char dir[PATH_MAX];
} pspace;

typedef struct pbackend {
  mydb_backend be;
  pthread_mutex_t mu; /* protects the spaces */
  pthread_cond_t cv;  /* a space's lock was released by a thread */
  mydb__htab spaces;
  pspace *first, *last;
  size_t count;
} pbackend;

/* log.c: records, scans, the index, group commit. All with pb->mu
 * held, except psync_wait. */
void mydb__pack_space_reset(pspace *ps);
/* Brings ps up to date with its log (loading it first if needed). */
int mydb__pack_refresh(mydb *db, pspace *ps);
/* Appends one record (the append lock held, ps refreshed). Object: parts
 * a = 32-byte digest, b = bytes; others: a = payload, b = NULL. */
int mydb__pack_append(mydb *db, pspace *ps, int type, const void *a,
                      size_t alen, const void *b, size_t blen);
/* 64 hex characters to 32 bytes. */
void mydb__pack_unhex(unsigned char out[32], const char *hex);
/* Writes one record at off of fd (no state change). */
int mydb__pack_write_record(int fd, uint64_t off, int type, const void *a,
                            size_t alen, const void *b, size_t blen,
                            const char *path);
/* The append lock of a space (nonblock: MYDB_ENOTFOUND when busy). With
 * ps->mu: may release and retake it while waiting (ps is pinned). A no-op
 * for the thread that holds it as the tenant lock. */
int mydb__pack_lock(mydb *db, pspace *ps);
int mydb__pack_trylock(mydb *db, pspace *ps);
void mydb__pack_unlock(pspace *ps);
/* Releases the lock held as the tenant lock (drops the stage). */
void mydb__pack_unlock_tenant(pspace *ps);
/* 1 if the calling thread holds the space's lock. */
int mydb__pack_holds(const pspace *ps);
/* Stages object (digest d, bytes) for the next append_stage (the tenant
 * lock held by the caller). */
int mydb__pack_stage(pspace *ps, const unsigned char d[32], const void *buf,
                     size_t len);
/* The same for a delta (delta.h) of chain length depth. */
int mydb__pack_stage_delta(pspace *ps, const unsigned char d[32],
                           const void *delta, size_t len, int depth);
/* The staged copy of d, or NULL. */
const ploc *mydb__pack_staged(const pspace *ps, const unsigned char d[32]);
/* The index's location of d (ps->objs, through its filter), or NULL. */
const ploc *mydb__pack_index_find(const pspace *ps, const unsigned char d[32]);
/* Appends the staged objects and (commit non-NULL) a head commit record in
 * one write (the lock held, ps refreshed); empties the stage. */
int mydb__pack_append_stage(mydb *db, pspace *ps, const char *commit,
                            size_t clen);
/* Drops the staged objects. */
void mydb__pack_stage_drop(pspace *ps);
/* Frees the staged set and the stage buffer (the space is going). */
void mydb__pack_stage_free(pspace *ps);
/* Writes the index of ps (its state as scanned). */
int mydb__pack_write_index(mydb *db, pspace *ps);
/* Opens segment i of the chain if needed; its fd or a negative error. */
int mydb__pack_segfd(mydb *db, pspace *ps, size_t i);
/* Index of segment num in the chain, or (size_t)-1. */
size_t mydb__pack_segidx(const pspace *ps, uint64_t num);
/* Path of segment num of a space into out[PATH_MAX]. */
int mydb__pack_segpath(const pspace *ps, char *out, uint64_t num);
/* Creates segment num afresh (removing a leftover of that number). */
int mydb__pack_segcreate(mydb *db, pspace *ps, uint64_t num, int *fd);
/* Applies a record's payload to the state (scans and appends). */
int mydb__pack_apply(pspace *ps, int type, uint64_t seg, uint64_t off,
                     const char *payload, size_t len, mydb_buf *k,
                     mydb_buf *p);
/* Checks every record of the chain from its first segment; fn per problem.
 * Returns the number of problems, or a negative error. */
int mydb__pack_check(mydb *db, pspace *ps,
                     void (*fn)(const char *what, const char *msg,
                                void *payload),
                     void *payload);

/* Calls fn for each head commit line of the chain, oldest first (a
 * generation start gives the whole state as one line). */
int mydb__pack_journal(mydb *db, pspace *ps,
                       int (*fn)(const char *line, size_t len, void *payload),
                       void *payload);

/* Group commit: a reference to the sync state of ps's active segment. */
psync *mydb__psync_get(mydb *db, pspace *ps);
/* Waits (without pb->mu) until the segment is durable up to off, the end
 * of a whole record; drops the reference. peek: first read pack/synced, in
 * case another process's fdatasync covered off already (worth a read only
 * when other writers are active). MYDB_EIO if an fdatasync of the
 * segment failed, now or before (the record is written, perhaps visible:
 * the message starts "committed but not durable: " when commit, else
 * "written but not durable: "). */
int mydb__psync_wait(psync *s, uint64_t off, int commit, int peek);
void mydb__psync_unref(psync *s);
/* An fdatasync of ps's active segment failed outside psync_wait: nothing
 * more of it may be reported durable by this process. */
void mydb__pack_sync_failed(mydb *db, pspace *ps);
/* 1 if an fdatasync of ps's active segment failed (in this process, or
 * in another: the poison record of pack/synced). */
int mydb__pack_failed(pspace *ps);
/* Records in pack/synced that segment seg is durable up to off (the end of
 * a whole record, after the fdatasync that made it so). */
void mydb__pack_synced(const pspace *ps, uint64_t seg, uint64_t off);

#endif
