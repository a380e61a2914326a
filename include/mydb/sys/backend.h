/*
 * mydb/sys/backend.h - the storage backend interface: the implementers'
 * side of the core (the callers' side is mydb.h). Not installed.
 *
 * Storage is two things, kept apart as libgit2 keeps its odb and refdb
 * backends (include/git2/sys/odb_backend.h, refdb_backend.h) and Dolt its
 * chunk store and manifest:
 *   - an object store (mydb_odb_ops): immutable content-addressed objects,
 *     written once, read, listed, collected;
 *   - a ref store (mydb_refdb_ops): the few mutable names of a tenant (its
 *     head: entry -> digest), read, listed, and changed by atomic commits
 *     under the tenant's write lock, with the journal of those commits.
 *     Compare-and-set (mydb_head_cas) is built on them by the dispatch.
 * A backend (mydb_backend) is a versioned struct that names its two
 * stores' operation tables (static const, as SQLite's io methods), the
 * tenant space they share, and its mandatory `free`.
 *
 * The public mydb_* functions are the dispatch layer (src/core: store.c,
 * objects.c, lock.c, refs.c): they check every argument, hash what is written,
 * verify what is read (MYDB_ECORRUPT when bytes do not match their digest)
 * and keep the object cache - never a backend. A backend therefore receives
 * only valid tenant ids, digests and entries, and returns raw bytes.
 *
 * Backends (doc/FORMAT.md), each in src/backend/NAME/:
 *   loose   the original layout: a JSON-lines head journal, objects as
 *           files, and what a tenant-lock holder writes appended at its
 *           commit to one file per tenant (TENANT/packed);
 *   pack    append-only log segments with an index, objects and commits in
 *           one log;
 *   memory  hash maps in the process, shared by the handles opened on the
 *           same root string;
 *   postgres  tables in a schema of a PostgreSQL database (libpq).
 *
 * Every function returns MYDB_OK or a negative MYDB_E* code with the
 * thread's message set (mydb__seterr). `tenant` NULL means the shared refs
 * where an object function allows it.
 */
#ifndef MYDB_BACKEND_H
#define MYDB_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "mydb.h"

#define MYDB__BACKEND_VERSION 2
#define MYDB__ODB_VERSION 1
#define MYDB__REFDB_VERSION 1

struct mydb;
struct mydb_lock;
struct mydb_buf; /* src/util/buf.h */
typedef struct mydb_backend mydb_backend;

/* A commit appended but perhaps not yet durable (group commit): what a
 * ref store's commit leaves for its sync, called after the tenant lock was
 * released. `sync` NULL: nothing to wait for. */
typedef struct mydb__pending {
  void *sync;       /* backend-owned; sync() releases it */
  uint64_t seg, off; /* where the commit ends */
  int hint;          /* backend-owned (pack: other writers are active) */
} mydb__pending;

/* ---------------------------------------------------------- object store
 * digest: 64 hex characters, computed by the dispatch. tenant NULL: the
 * shared refs (objects every tenant may name). */
typedef struct mydb_odb_ops {
  int version; /* MYDB__ODB_VERSION */
  /* Stores buf under digest unless present; on return (db->fsync) the
   * object is durable, also when it was found present. MYDB_ENOTINIT for a
   * tenant that is not initialized. */
  int (*write)(mydb_backend *be, const char *tenant, const char *digest,
               const void *buf, size_t len);
  /* The stored bytes, unverified, in a new blob the caller releases
   * (MYDB_ENOTFOUND if absent). */
  int (*read)(mydb_backend *be, mydb_blob **out, const char *tenant,
              const char *digest);
  /* 1, 0, or a negative error. */
  int (*exists)(mydb_backend *be, const char *tenant, const char *digest);
  /* fn for every object, unordered, with the name the store holds (which
   * may not be a valid digest); fn's non-zero return stops the walk and is
   * returned. */
  int (*foreach)(mydb_backend *be, const char *tenant,
                 int (*fn)(const char *name, void *payload), void *payload);

  /* Garbage collection (optional: NULL if the store cannot). gc_begin
   * records the position after which new objects are kept by a sweep;
   * gc_sweep removes the objects stored before mark for which keep()
   * returns 0. The caller holds the tenant's lock (for the refs: every
   * tenant's lock). */
  int (*gc_begin)(mydb_backend *be, const char *tenant, mydb_gc_mark *mark);
  int (*gc_sweep)(mydb_backend *be, const char *tenant,
                  const mydb_gc_mark *mark,
                  int (*keep)(const char *digest, void *payload),
                  void *payload, mydb_gc_stats *st);

  /* write, for bytes that are likely a small edit of the object named base
   * (a hint: base may be absent); the store may keep only the difference
   * (the pack backend's deltas). base_buf: base's verified bytes when the
   * dispatch has them at hand (its cache), else NULL. Optional: NULL means
   * write. */
  int (*write_near)(mydb_backend *be, const char *tenant, const char *digest,
                    const void *buf, size_t len, const char *base,
                    const void *base_buf, size_t base_len);

  /* read, into out (what it held is replaced: out->len is the object's
   * length; grown with mydb_buf_grow), for mydb_object_read_into: a long
   * scan's pieces, named by a tree read before it began. The store need
   * not look for other writers' appends unless digest is missing from what
   * it knows (pack: no stat per read). Optional: NULL means read, then a
   * copy. */
  int (*read_into)(mydb_backend *be, struct mydb_buf *out, const char *tenant,
                   const char *digest);
} mydb_odb_ops;

/* ------------------------------------------------------------- ref store
 * A tenant's head: entry (1 to MYDB_ENTRY_MAX bytes) -> digest. */
typedef struct mydb_refdb_ops {
  int version; /* MYDB__REFDB_VERSION */
  /* The entry's digest into out (MYDB_ENOTFOUND if absent). locked: the
   * caller holds the tenant lock (the answer must not be stale). */
  int (*get)(mydb_backend *be, char out[MYDB_DIGEST_BUF], const char *tenant,
             size_t tlen, const char *entry, size_t entry_len, int locked);
  /* fn for every live entry, any order (the dispatch sorts where it
   * promises order); fn runs without the store's mutexes held. */
  int (*foreach)(mydb_backend *be, const char *tenant, size_t tlen,
                 int (*fn)(const char *entry, size_t entry_len,
                           const char *digest, void *payload),
                 void *payload);
  /* The tenant write lock. acquire fills lk->fd or lk->impl (the dispatch
   * set lk->tenant, lk->tlen); release drops what it holds and may be
   * called once, also after the handle's other state is gone. */
  int (*lock_acquire)(mydb_backend *be, struct mydb_lock *lk);
  void (*lock_release)(mydb_backend *be, struct mydb_lock *lk);
  /* Optional (NULL when object writes are never held back): a store that
   * keeps the objects written under lk until its commit (pack: staged)
   * and drops them at a release without one calls fn for each of them
   * (digest NULL: too many to name - all of the tenant's), without its
   * mutexes held; the dispatch calls it before lock_release. */
  void (*lock_uncommitted)(mydb_backend *be, struct mydb_lock *lk,
                           void (*fn)(const char *digest, void *payload),
                           void *payload);
  /* Applies n changes as one commit under lk: all or none, also across a
   * crash. line/len: the JSON commit line (doc/FORMAT.md), built by the
   * dispatch. With pending NULL the commit is durable (db->fsync) on
   * return; otherwise the store may leave the wait to sync(), which the
   * dispatch calls after releasing the lock (group commit). A commit that
   * is visible but whose sync failed returns MYDB_EIO with a message that
   * begins "committed but not durable: ". */
  int (*commit)(mydb_backend *be, struct mydb_lock *lk,
                const mydb_head_change *c, size_t n, const char *line,
                size_t len, mydb__pending *pending);
  /* Optional (NULL when commit never defers). Waits until pending's commit
   * is durable; always releases pending->sync. */
  int (*sync)(mydb_backend *be, mydb__pending *pending);
  /* Optional: fn for each commit line of the tenant's history, oldest
   * first, without the header line (loose: the journal's complete lines;
   * pack: the commit records). */
  int (*journal)(mydb_backend *be, const char *tenant,
                 int (*fn)(const char *line, size_t len, void *payload),
                 void *payload);
} mydb_refdb_ops;

/* --------------------------------------------------------------- backend */
struct mydb_backend {
  int version;      /* MYDB__BACKEND_VERSION */
  const char *name; /* "loose", "pack", "memory" */
  struct mydb *db;  /* the handle: root, fsync, options */
  const mydb_odb_ops *odb;
  const mydb_refdb_ops *refdb;

  /* ---- the tenant space both stores share */
  int (*tenant_init)(mydb_backend *be, const char *tenant);
  /* 1, 0, or a negative error. */
  int (*tenant_exists)(mydb_backend *be, const char *tenant);
  /* Calls fn for each initialized tenant, in any order (the dispatch
   * sorts); fn's non-zero return stops the walk and is returned. */
  int (*tenant_list)(mydb_backend *be,
                     int (*fn)(const char *tenant, void *payload),
                     void *payload);

  /* ---- upkeep of what both stores keep (optional: NULL) */
  /* Compacts the tenant's storage (NULL: refs). The caller holds the
   * tenant's lock. */
  int (*repack)(mydb_backend *be, const char *tenant, mydb_gc_stats *st);
  /* Checks the backend's own framing (record checksums) of a tenant (NULL:
   * refs); reports each problem through fn. */
  int (*check)(mydb_backend *be, const char *tenant,
               void (*fn)(const char *what, const char *msg, void *payload),
               void *payload);
  /* Optional (NULL: the store keeps none): store-wide settings (see
   * mydb_setting_get); set with buf NULL removes. */
  int (*setting_get)(mydb_backend *be, const char *key, mydb_blob **out);
  int (*setting_set)(mydb_backend *be, const char *key, const void *buf,
                     size_t len);

  /* Closes what the handle holds; mandatory. */
  void (*free)(mydb_backend *be);
};

/* Constructors (db->root, db->fsync, db->segment_bytes are set). */
int mydb__backend_loose(struct mydb *db, mydb_backend **out);
int mydb__backend_memory(struct mydb *db, mydb_backend **out);
int mydb__backend_pack(struct mydb *db, mydb_backend **out);
/* root is a libpq conninfo (URI or keywords, schema=NAME) or a name
 * (doc/FORMAT.md "PostgreSQL"). */
int mydb__backend_postgres(struct mydb *db, mydb_backend **out);
/* 1 if root is a postgresql:// or postgres:// URI. */
int mydb__pg_root(const char *root);

#endif
