/*
 * mydb.h - the mydb storage core: content-addressed objects, shared refs,
 * per-tenant head journals and write locks. Plain C11 + POSIX; no Lua.
 *
 * The on-disk layout is described in doc/FORMAT.md.
 *
 * Conventions
 *   - Functions return MYDB_OK (0) or a negative MYDB_E* code. The message
 *     for the last failure of the calling thread is mydb_errmsg(); it names
 *     the path and the system error where there is one. Nothing is printed.
 *   - Output parameters come first after the handle.
 *   - A `tenant` argument of NULL means the shared refs store where stated.
 *   - A handle may be used by several threads at once. Several handles, in
 *     one process or in several, may open the same root at once.
 *
 * Caveats
 *   - Locks are flock(2) locks: do not put a store on a network filesystem.
 *   - After fork(), the child must open its own handle.
 */
#ifndef MYDB_H
#define MYDB_H

#include <stddef.h>
#include <stdint.h>

#define MYDB_VERSION "0.1.0"

#define MYDB_DIGEST_HEX 64   /* digest length in hex characters */
#define MYDB_DIGEST_BUF 65   /* ... plus the terminating NUL */
#define MYDB_FANOUT 24       /* hex characters of the fan-out directory */
#define MYDB_TENANT_MAX 128  /* bytes */
#define MYDB_ENTRY_MAX 1024  /* bytes */
#define MYDB_REF_NAME_MAX 128 /* bytes of a branch or tag name */

/* Error codes. Stable: never renumbered or reused. */
enum {
  MYDB_OK = 0,
  MYDB_EINVAL = -1,    /* invalid argument (bad tenant id, digest, entry) */
  MYDB_ENOTINIT = -2,  /* tenant not initialized */
  MYDB_ENOTFOUND = -3, /* object, entry or tenant absent */
  MYDB_ECORRUPT = -4,  /* stored bytes do not match their digest or format */
  MYDB_EIO = -5,       /* a system call failed (errno in the message) */
  MYDB_ENOMEM = -6,    /* allocation failed */
  MYDB_ECLOSED = -7,   /* handle already closed */
  MYDB_ECONFLICT = -8  /* compare-and-set: a head was not what was expected */
};

/* Thread-local message for the last failure; never NULL. */
const char *mydb_errmsg(void);
/* Short stable name of a code: "invalid_argument", "not_found", ... */
const char *mydb_errcode_name(int code);

/* ---------------------------------------------------------------- hashing */

/* SHA-256 of buf as 64 lowercase hex characters plus NUL. */
int mydb_sha256_hex(char out[MYDB_DIGEST_BUF], const void *buf, size_t len);
/* 1 if s is exactly 64 lowercase hex characters, else 0. */
int mydb_digest_valid(const char *s, size_t len);
/* Bytes hashed by SHA-256 in this process so far, by every handle (a
 * diagnostic: bench/versus.lua's bytes hashed per put). */
uint64_t mydb_hashed_bytes(void);
/* Zero bytes the pack backend's durable writers have written ahead of
 * their records in this process so far (zones: doc/FORMAT.md; a
 * diagnostic: bench/versus.lua leaves them out of the bytes written per
 * put). */
uint64_t mydb_zone_bytes(void);

/* ------------------------------------------------------------------ store */

typedef struct mydb mydb;

typedef struct mydb_options {
  int version;            /* MYDB_OPTIONS_VERSION (1 is still accepted) */
  int fsync;              /* 1: fsync files and directories (default) */
  size_t cache_bytes;     /* object cache budget; 0 disables (default 64 MiB) */
  /* ---- version 2 */
  const char *backend;    /* "loose", "pack", "memory", or NULL: the one the
                           * store was created with (ROOT/.mydb), else
                           * MYDB_DEFAULT_BACKEND for a new store */
  size_t segment_bytes;   /* pack: segment size limit; 0: 64 MiB */
} mydb_options;
#define MYDB_OPTIONS_VERSION 2
/* The backend of a new store when none is named: pack (README "Storage
 * backends" gives the measurements behind the choice). */
#define MYDB_DEFAULT_BACKEND "pack"
#define MYDB_OPTIONS_INIT {MYDB_OPTIONS_VERSION, 1, (size_t)64 << 20, NULL, 0}
#define MYDB_SEGMENT_DEFAULT ((size_t)64 << 20)
#define MYDB_SEGMENT_MIN ((size_t)1024)
#define MYDB_SEGMENT_MAX ((size_t)1 << 30)

/* Opens (creating ROOT and ROOT/refs if absent) a store. opts may be NULL.
 * A new store records its backend in ROOT/.mydb; opening it later with
 * another backend fails with MYDB_EINVAL (migration is a copy). The memory
 * backend creates no files: handles opened on the same root string in one
 * process share one store, freed when the last of them closes. */
int mydb_open(mydb **out, const char *root, const mydb_options *opts);
/* "loose", "pack" or "memory". */
const char *mydb_backend_name(const mydb *db);
/* Releases the handle; NULL is allowed. Locks held through it are released
 * (their flock dropped); such a lock must still be freed with
 * mydb_lock_release, and mydb_head_commit / mydb_lock_head_get on it return
 * MYDB_ECLOSED. Blobs stay valid until released. */
void mydb_close(mydb *db);

/* 1 if the tenant id is acceptable (see doc/FORMAT.md), else 0. */
int mydb_tenant_valid(const char *tenant, size_t len);
/* Creates ROOT/TENANT with objects/, head and lock; idempotent. */
int mydb_tenant_init(mydb *db, const char *tenant);
/* 1 if initialized, 0 if not, or a negative error (bad id). */
int mydb_tenant_exists(mydb *db, const char *tenant);
/* Calls fn for each initialized tenant, in name order. A non-zero return
 * from fn stops the walk and is returned. */
int mydb_tenant_foreach(mydb *db, int (*fn)(const char *tenant, void *payload),
                        void *payload);

/* -------------------------------------------------------------- objects */

/* Immutable, reference-counted bytes returned by reads. */
typedef struct mydb_blob mydb_blob;
const char *mydb_blob_data(const mydb_blob *b);
size_t mydb_blob_len(const mydb_blob *b);
void mydb_blob_release(mydb_blob *b);  /* NULL allowed */

/* Stores buf under its digest in TENANT/objects (tenant NULL: ROOT/refs);
 * does nothing if it exists. Writes the digest to out. ENOTINIT if the tenant
 * is not initialized. Under the tenant's lock, see mydb_lock_acquire. */
int mydb_object_write(mydb *db, char out[MYDB_DIGEST_BUF], const char *tenant,
                      const void *buf, size_t len);
/* Reads an object, verifying its digest (ECORRUPT on mismatch, ENOTFOUND if
 * absent). Small objects are cached: later reads of the same digest do no
 * I/O. Release *out with mydb_blob_release. */
int mydb_object_read(mydb *db, mydb_blob **out, const char *tenant,
                     const char *digest);
/* mydb_object_read for an object read once (a long scan's pieces): served
 * from the cache if it is there, but not added to it, so that a scan larger
 * than the cache does not turn it over. */
int mydb_object_read_once(mydb *db, mydb_blob **out, const char *tenant,
                          const char *digest);
/* mydb_object_read_once into a buffer the caller keeps for many reads (a
 * long scan's pieces: no allocation per object once it is large enough).
 * *buf is NULL or a block from malloc of *cap bytes; it is grown with
 * realloc as getline(3) does (*buf and *cap are updated, also when the
 * read fails: free(*buf) once done). On success it holds the object's
 * *len bytes, then a NUL. Verified as every read (ECORRUPT, ENOTFOUND).
 * For objects named by a tree read before the scan began: the store looks
 * for other writers' appends (pack: a stat(2) per read) only when digest
 * is not among the objects the handle knows, and then looks again. */
int mydb_object_read_into(mydb *db, char **buf, size_t *cap, size_t *len,
                          const char *tenant, const char *digest);
/* mydb_object_write for a caller that hashed buf itself (mydb's codec
 * names each piece by the digest of the bytes it builds): digest must be
 * the SHA-256 of buf, 64 lowercase hex characters. Not checked here, so
 * each byte is hashed once per write; a wrong digest stores an object
 * that every read reports MYDB_ECORRUPT (reads always verify). */
int mydb_object_write_hashed(mydb *db, const char *digest, const char *tenant,
                             const void *buf, size_t len);
/* mydb_object_write_hashed for bytes that are likely a small edit of the
 * object named base (the piece a put replaces; NULL: none): the store may
 * keep only the difference (the pack backend does, doc/FORMAT.md). Reads
 * return the whole bytes either way; base need not exist. */
int mydb_object_write_near(mydb *db, const char *digest, const char *tenant,
                           const void *buf, size_t len, const char *base);
/* 1 if present, 0 if not, or a negative error. Does not verify. */
int mydb_object_exists(mydb *db, const char *tenant, const char *digest);
/* Calls fn for every object file of a tenant (NULL: refs), unordered, with
 * the name found on disk (which may not be a valid digest). */
int mydb_object_foreach(mydb *db, const char *tenant,
                        int (*fn)(const char *name, void *payload),
                        void *payload);

/* ---------------------------------------------------------------- heads
 *
 * A tenant's head maps names to digests: its entries (entry -> latest
 * version), and its refs (branch and tag -> commit; doc/FORMAT.md
 * "Commits and refs"). A ref's key is a NUL byte followed by its name,
 * "heads/NAME" or "tags/NAME" (mydb_ref_name_valid): no entry name holds
 * a NUL, so every head call takes either kind, and one commit can move
 * entries and a branch together. mydb_head_foreach lists the entries,
 * mydb_ref_foreach the refs. */

/* 1 if name is "heads/NAME", "tags/NAME" or "remotes/NAME" (a
 * remote-tracking branch: NAME is REMOTE/BRANCH) with NAME 1 to
 * MYDB_REF_NAME_MAX bytes of letters, digits, '.', '_', '-', '/', not
 * starting with '.', '-' or '/', without "..", else 0. */
int mydb_ref_name_valid(const char *name, size_t len);

/* Looks up the latest digest of an entry (ENOTFOUND if absent). Sees other
 * processes' commits at once (one stat(2) when nothing changed). */
int mydb_head_get(mydb *db, char out[MYDB_DIGEST_BUF], const char *tenant,
                  const char *entry, size_t entry_len);
/* Calls fn for every live entry, in bytewise entry order. */
int mydb_head_foreach(mydb *db, const char *tenant,
                      int (*fn)(const char *entry, size_t entry_len,
                                const char *digest, void *payload),
                      void *payload);

/* Calls fn for every ref of the tenant (the name without its NUL byte,
 * e.g. "heads/main"), in no particular order. */
int mydb_ref_foreach(mydb *db, const char *tenant,
                     int (*fn)(const char *name, size_t name_len,
                               const char *digest, void *payload),
                     void *payload);

/* ---------------------------------------------------------------- locks */

/* The tenant's write lock: excludes every other writer of the tenant, in
 * this process (any thread, any handle) and in others. Blocks until free.
 * A thread holding it cannot take it again (MYDB_ECONFLICT on pack, where
 * waiting would never end). While a thread holds it, the objects it writes
 * to that tenant may be held back (pack: staged in memory, readable by the
 * handle) and stored with the lock's next commit, which makes them durable
 * with it; a release without a commit drops them (no head names them).
 * Write a tenant's objects from the thread that holds its lock. */
typedef struct mydb_lock mydb_lock;
int mydb_lock_acquire(mydb *db, mydb_lock **out, const char *tenant);
/* Releases the lock; NULL allowed. */
void mydb_lock_release(mydb_lock *lk);

/* One head change: entry -> digest, or digest NULL to remove the entry. */
typedef struct mydb_head_change {
  const char *entry;
  size_t entry_len;
  const char *digest;
} mydb_head_change;

/* Applies n changes to the tenant's head as one atomic commit (all or none,
 * even across a crash). Requires the tenant's lock held through lk. The
 * digests must name objects already written. */
int mydb_head_commit(mydb_lock *lk, const mydb_head_change *changes, size_t n);
/* Reads the head under the lock (never stale): like mydb_head_get. */
int mydb_lock_head_get(mydb_lock *lk, char out[MYDB_DIGEST_BUF],
                       const char *entry, size_t entry_len);
/* mydb_head_commit, then mydb_lock_release (also when the commit fails:
 * lk is freed in every case). With fsync on, returns once the commit is
 * durable; the pack backend waits for that after releasing the lock, so
 * that concurrent writers share one fsync (group commit). */
int mydb_head_commit_release(mydb_lock *lk, const mydb_head_change *changes,
                             size_t n);

/* Compare-and-set: applies the n changes as one commit only if, under the
 * tenant's lock, every changes[i].entry is at digest expect[i] (NULL: the
 * entry is absent); otherwise changes nothing and returns MYDB_ECONFLICT.
 * Takes and releases the lock itself (durable on return, as
 * mydb_head_commit_release). The base of branch and tag updates. */
int mydb_head_cas(mydb *db, const char *tenant,
                  const mydb_head_change *changes, const char *const *expect,
                  size_t n);

/* Calls fn for each line of a tenant's head history as the loose journal
 * holds it: the header {"mydb_head":1}, then one JSON commit line per commit
 * (after a compaction or a repack, lines holding the state), without the
 * newlines. Loose: the journal; pack: the commit records of the log;
 * memory keeps no history: MYDB_EINVAL. A non-zero return of fn stops the
 * walk and is returned. For tools and tests. */
int mydb_head_journal(mydb *db, const char *tenant,
                      int (*fn)(const char *line, size_t len, void *payload),
                      void *payload);

/* ------------------------------------------------------------ gc, repack */

/* What a sweep or a repack did. */
typedef struct mydb_gc_stats {
  size_t objects_removed, bytes_freed;  /* objects dropped, their bytes */
  size_t objects_kept, bytes_kept;      /* objects left */
  size_t segments_removed, segments_written; /* pack */
  size_t records_dropped;               /* pack: superseded head records */
} mydb_gc_stats;

/* Where a gc began: a sweep keeps every object stored after it. */
typedef struct mydb_gc_mark {
  int64_t a, b;
} mydb_gc_mark;

/* Marks the start of a gc of tenant (NULL: refs). */
int mydb_gc_begin(mydb *db, const char *tenant, mydb_gc_mark *out);
/* Removes the objects of tenant (NULL: refs) stored before mark for which
 * keep(digest) returns 0 (keep is called once per such object; a negative
 * return stops the sweep and is returned). The caller holds the tenant's
 * lock (for the refs: every tenant's lock) through a handle of this store,
 * so that no commit can start to use an object being removed. Adds to *st
 * (which the caller zeroes). MYDB_EINVAL if the backend cannot. */
int mydb_gc_sweep(mydb *db, const char *tenant, const mydb_gc_mark *mark,
                  int (*keep)(const char *digest, void *payload),
                  void *payload, mydb_gc_stats *st);
/* Compacts a tenant's (NULL: the refs') storage: pack rewrites the live
 * records into new segments and removes the old ones; loose compacts the
 * head journal; memory does nothing. The caller holds the tenant's lock
 * (refs: none needed). Adds to *st. */
int mydb_repack(mydb *db, const char *tenant, mydb_gc_stats *st);
/* Checks the backend's own framing (pack: every record's checksum, the
 * segment chain) of tenant (NULL: refs); calls fn per problem. Returns
 * MYDB_OK when it could look (problems or not). */
int mydb_check(mydb *db, const char *tenant,
               void (*fn)(const char *what, const char *msg, void *payload),
               void *payload);
/* A store-wide setting (key: 1 to 64 bytes of letters, digits, '_', '.'),
 * for stores with no directory of their own to keep such files in
 * (postgres: the meta table). *out: a new blob (mydb_blob_release), or
 * MYDB_ENOTFOUND when unset; MYDB_EINVAL when the backend keeps none
 * (the file backends keep their settings as files under ROOT). */
int mydb_setting_get(mydb *db, const char *key, mydb_blob **out);
/* Sets a store-wide setting (replaced whole, atomically); buf NULL
 * removes it. */
int mydb_setting_set(mydb *db, const char *key, const void *buf,
                     size_t len);

#endif
