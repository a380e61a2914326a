/*
 * internal.h - private structures and helpers of the mydb core.
 * Not installed; only the core sources include it.
 *
 * Concurrency and lock order
 *   - Each handle has one pthread mutex (db->mu). It protects the object
 *     cache, the per-tenant head state (open journal fd, replayed map) and
 *     the list of live locks. It is never held while blocking on flock(2),
 *     and never held while a user callback runs.
 *   - The tenant write lock is an flock(2) on ROOT/TENANT/lock, taken on a
 *     fresh open file description per acquisition (see lock.c).
 *   - Order: flock (tenant lock) first, then db->mu. Never the reverse.
 */
#ifndef MYDB_INTERNAL_H
#define MYDB_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "cache.h"
#include "fsutil.h"
#include "mydb.h"

#define MYDB__PRINTF(f, a) __attribute__((format(printf, f, a)))

/* Objects larger than this are never cached. */
#define MYDB__CACHE_OBJ_MAX ((size_t)1 << 20)
/* Per-handle bound on tenants whose head state (and fd) is kept. */
#define MYDB__TSTATE_MAX 256
/* Compaction thresholds (see doc/FORMAT.md "Head journal"). */
#define MYDB__COMPACT_MIN 1024

#define MYDB__HEAD_HEADER "{\"mydb_head\":1}\n"
#define MYDB__HEAD_HEADER_LEN (sizeof(MYDB__HEAD_HEADER) - 1)

/* ------------------------------------------------------------- errors.c */
/* Formats the thread's error message; returns code. */
int mydb__seterr(int code, const char *fmt, ...) MYDB__PRINTF(2, 3);
/* "<op> <path>: <strerror(err)>"; returns MYDB_ENOMEM for ENOMEM, else
 * MYDB_EIO. */
int mydb__syserr(int err, const char *op, const char *path);

/* ------------------------------------------------------------- sha256.c */
int mydb__sha256(unsigned char out[32], const void *buf, size_t len);
void mydb__hex(char *out, const unsigned char *in, size_t n);

/* --------------------------------------------------------------- blob.c */
struct mydb_blob {
  atomic_size_t refs;
  size_t len;
  char data[]; /* len bytes, then a NUL (convenience for parsers) */
};
/* A blob of len bytes (uninitialized) with one reference, or NULL. */
mydb_blob *mydb__blob_new(size_t len);
mydb_blob *mydb__blob_ref(mydb_blob *b);

/* -------------------------------------------------------------- store.c */
struct mydb__tstate; /* head.c */

struct mydb {
  char *root;
  size_t rootlen;
  int fsync;
  pthread_mutex_t mu;
  /* --- everything below is protected by mu --- */
  mydb__cache cache;
  mydb__htab tstates;                     /* tenant -> struct mydb__tstate */
  struct mydb__tstate *ts_first, *ts_last; /* LRU order, most recent first */
  size_t ts_count;
  struct mydb_lock *locks;                /* live locks of this handle */
};

struct mydb_lock {
  mydb *db;  /* NULL once the handle was closed */
  int fd;    /* -1 once released by mydb_close */
  struct mydb_lock *prev, *next;
  size_t tlen;
  char tenant[MYDB_TENANT_MAX + 1];
};

/* Argument checks: each sets the message and returns MYDB_EINVAL, or 0. */
int mydb__check_db(const mydb *db);
int mydb__check_tenant(const char *tenant, size_t *len);
int mydb__check_digest(const char *digest);
int mydb__check_entry(const char *entry, size_t len);

/* Joins ROOT with up to three components ("a/b/c", NULL ends the list)
 * into out[PATH_MAX]. 0 or MYDB_EINVAL (too long). */
int mydb__path(const mydb *db, char *out, const char *a, const char *b,
               const char *c);
/* Path of an object (or, with digest NULL... never) in TENANT/objects or
 * ROOT/refs. dirlen receives the length of its fan-out directory part. */
int mydb__object_path(const mydb *db, char *out, size_t *dirlen,
                      const char *tenant, const char *digest);
/* 1 if ROOT/TENANT/objects is a directory, 0 if not, or MYDB_EIO. */
int mydb__tenant_initialized(const mydb *db, const char *tenant);

/* --------------------------------------------------------------- head.c */
void mydb__heads_free(mydb *db);
/* locked: the caller holds the tenant lock (see head.c, ts_refresh). */
int mydb__head_get(mydb *db, char out[MYDB_DIGEST_BUF], const char *tenant,
                   size_t tlen, const char *entry, size_t entry_len,
                   int locked);

/* --------------------------------------------------------------- lock.c */
/* Called by mydb_close with db->mu held: drops every lock of the handle. */
void mydb__locks_detach(mydb *db);

#endif
