/*
 * internal.h - private structures and helpers shared by the C parts (the
 * handle, the lock, and the helpers of src/util, src/format and src/os;
 * doc/ARCHITECTURE.md). Not installed; the Lua binding uses mydb.h.
 *
 * Concurrency and lock order
 *   - Each handle has one pthread mutex (db->mu). It protects the object
 *     cache and the list of live locks. It is never held while blocking on
 *     flock(2), never held while a user callback runs, and never held while
 *     calling into the backend (except the lock release of mydb_close).
 *   - Each backend has its own mutex for its per-tenant state (loose: the
 *     replayed head journals; pack: the segment indexes; memory: the
 *     shared store).
 *   - The tenant write lock is an flock(2) on ROOT/TENANT/lock (loose,
 *     pack), taken on a fresh open file description per acquisition (see
 *     src/os/flock.c), or a flag and a condition variable (memory).
 *   - Order: tenant lock first, then a backend's mutex, then db->mu.
 */
#ifndef MYDB_INTERNAL_H
#define MYDB_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mydb/sys/backend.h"
#include "buf.h"
#include "cache.h"
#include "fsutil.h"
#include "mydb.h"

#define MYDB__PRINTF(f, a) __attribute__((format(printf, f, a)))

/* Objects larger than this are never cached. */
#define MYDB__CACHE_OBJ_MAX ((size_t)1 << 20)
/* Per-handle bound on tenants whose head state (and fds) is kept. */
#define MYDB__TSTATE_MAX 256

/* -------------------------------------------------------- util/errors.c */
/* Formats the thread's error message; returns code. */
int mydb__seterr(int code, const char *fmt, ...) MYDB__PRINTF(2, 3);
/* "<op> <path>: <strerror(err)>"; returns MYDB_ENOMEM for ENOMEM, else
 * MYDB_EIO. */
int mydb__syserr(int err, const char *op, const char *path);

/* ------------------------------------------------------- format/sha256.c */
int mydb__sha256(unsigned char out[32], const void *buf, size_t len);
/* SHA-256 resumed part-way: the state after each whole stride of bytes is
 * kept, so a piece rebuilt with its first bytes unchanged is hashed from
 * its first changed stride on (the digest is the same SHA-256). */
#define MYDB_SHA_STRIDE 256
typedef struct mydb__shastate {
  uint32_t h[8]; /* the chaining value after a whole number of strides */
} mydb__shastate;
/* The digest of buf[0..len), hashing only buf[from..len): from is a
 * multiple of MYDB_SHA_STRIDE and st[from / stride - 1] the state after
 * buf[0..from) (st unused when from is 0). Sets st[k] for every whole
 * stride k at or after from (len / stride of them in all). */
int mydb__sha256_strides(unsigned char out[32], const void *buf, size_t len,
                         size_t from, mydb__shastate *st);
void mydb__hex(char *out, const unsigned char *in, size_t n);
/* The 32 bytes of a digest's 64 lowercase hex digits, which the caller has
 * checked (mydb_digest_valid). */
void mydb__unhex(unsigned char out[32], const char *hex);

/* ---------------------------------------------------------- util/blob.c */
/* An allocation shared by blobs (the memory backend's slabs): freed when
 * its last user goes (each blob in it holds one). */
typedef struct mydb__block {
  atomic_size_t users;
} mydb__block;
void mydb__block_unuse(mydb__block *k);

struct mydb_blob {
  atomic_size_t refs;
  size_t len;
  mydb__block *block; /* the allocation it lives in (NULL: its own): its
                       * last release leaves that block */
  char data[]; /* len bytes, then a NUL (convenience for parsers) */
};
/* A blob of len bytes (uninitialized) with one reference, or NULL. */
mydb_blob *mydb__blob_new(size_t len);
mydb_blob *mydb__blob_ref(mydb_blob *b);

/* --------------------------------------------------------- core/store.c */

struct mydb {
  char *root;
  size_t rootlen;
  int fsync;
  size_t segment_bytes; /* pack roll-over size */
  mydb_backend *be;
  pthread_mutex_t mu;
  /* --- everything below is protected by mu --- */
  mydb__cache cache;
  struct mydb_lock *locks;                /* live locks of this handle */
};

struct mydb_lock {
  mydb *db;   /* NULL once the handle was closed */
  int held;   /* 0 once released by mydb_close */
  int fd;     /* the backend's: an flock()ed descriptor, or -1 */
  void *impl; /* the backend's */
  struct mydb_lock *prev, *next;
  size_t tlen;
  char tenant[MYDB_TENANT_MAX + 1];
};

/* core/objects.c - mydb_object_write_near with the base's bytes given by
 * the caller (NULL: looked up in the object cache) and, offer = 0, the
 * bytes not copied into the object cache (the caller keeps them: ltree's
 * node cache, which serves the next put's reads of the piece). */
int mydb__object_write_piece(mydb *db, const char *digest, const char *tenant,
                             const void *buf, size_t len, const char *base,
                             const void *base_buf, size_t base_len, int offer);

/* format/names.c - argument checks: each sets the message and returns
 * MYDB_EINVAL, or 0. */
int mydb__check_db(const mydb *db);
int mydb__check_tenant(const char *tenant, size_t *len);
int mydb__check_digest(const char *digest);
int mydb__check_entry(const char *entry, size_t len);
/* An entry name, or "\0" + a ref name (mydb_ref_name_valid). */
int mydb__check_head_key(const char *key, size_t len);

/* os/paths.c - joins ROOT with up to three components ("a/b/c", NULL ends the list)
 * into out[PATH_MAX]. 0 or MYDB_EINVAL (too long). */
int mydb__path(const mydb *db, char *out, const char *a, const char *b,
               const char *c);
/* Path of an object in TENANT/objects or ROOT/refs (loose layout). dirlen
 * receives the length of its fan-out directory part. */
int mydb__object_path(const mydb *db, char *out, size_t *dirlen,
                      const char *tenant, const char *digest);
/* Shared words of messages: "tenant"/"the shared", tenant/"refs". */
const char *mydb__where_kind(const char *tenant);
const char *mydb__where_name(const char *tenant);
/* os/tenantdir.c - creates ROOT/TENANT/lock (empty; never truncated) if
 * absent. */
int mydb__tenant_lockfile(const mydb *db, const char *tenant);
/* Calls fn for each valid tenant name under ROOT that has a directory
 * ROOT/NAME/sub (any order). */
int mydb__tenant_dirs(const mydb *db, const char *sub,
                      int (*fn)(const char *tenant, void *payload),
                      void *payload);

/* ---------------------------------------------------------- core/lock.c */
/* Called by mydb_close with db->mu held: drops every lock of the handle. */
void mydb__locks_detach(mydb *db);
/* MYDB_EINVAL (lk NULL) or MYDB_ECLOSED (its handle was closed), naming fn;
 * or 0. */
int mydb__lock_check(const mydb_lock *lk, const char *fn);
/* Drops what lk holds (not lk itself). */
void mydb__lock_drop(mydb_lock *lk);

/* -------------------------------------------------------------- os/flock.c */
/* Opens ROOT/TENANT/lock on a new open file description and flock()s it
 * (blocking); *fd receives it. MYDB_ENOTINIT if there is no lock file. */
int mydb__flock_tenant(const mydb *db, const char *tenant, int *fd);
/* flock(2) of an open descriptor, retried on EINTR (LOCK_EX or LOCK_UN). */
int mydb__flock(int fd, int op);

/* -------------------------------------------------------- format/crc32.c */
/* CRC-32 (IEEE 802.3, zlib's) of buf, continuing from crc (0 to start). */
uint32_t mydb__crc32(uint32_t crc, const void *buf, size_t len);

#endif
