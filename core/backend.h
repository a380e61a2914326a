/*
 * backend.h - the storage backend interface: the implementers' side of the
 * core (the callers' side is mydb.h). Not installed.
 *
 * In the spirit of libgit2's git_odb_backend (include/git2/sys/
 * odb_backend.h): a versioned struct of function pointers, filled by a
 * constructor, freed through its mandatory `free`. The public mydb_*
 * functions are the dispatch layer (store.c, objects.c, lock.c, head.c):
 * they check every argument, hash what is written, verify what is read
 * (MYDB_ECORRUPT when bytes do not match their digest), keep the object
 * cache, then call the backend. A backend therefore receives only valid
 * tenant ids, digests and entries, and returns raw bytes.
 *
 * Backends (doc/FORMAT.md):
 *   loose   one file per object, a JSON-lines head journal (backend_loose.c,
 *           head.c) - the original layout;
 *   pack    append-only log segments with an index (backend_pack.c);
 *   memory  hash maps in the process, shared by the handles opened on the
 *           same root string (backend_memory.c).
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

#define MYDB__BACKEND_VERSION 1

struct mydb;
struct mydb_lock;
typedef struct mydb_backend mydb_backend;

/* A commit appended but perhaps not yet durable (group commit): what a
 * backend's head_commit leaves for its sync, called after the tenant lock
 * was released. `sync` NULL: nothing to wait for. */
typedef struct mydb__pending {
  void *sync;       /* backend-owned; sync() releases it */
  uint64_t seg, off; /* where the commit ends */
} mydb__pending;

struct mydb_backend {
  int version;      /* MYDB__BACKEND_VERSION */
  const char *name; /* "loose", "pack", "memory" */
  struct mydb *db;  /* the handle: root, fsync, options */

  /* ---- tenants */
  int (*tenant_init)(mydb_backend *be, const char *tenant);
  /* 1, 0, or a negative error. */
  int (*tenant_exists)(mydb_backend *be, const char *tenant);
  /* Calls fn for each initialized tenant, in any order (the dispatch
   * sorts); fn's non-zero return stops the walk and is returned. */
  int (*tenant_list)(mydb_backend *be,
                     int (*fn)(const char *tenant, void *payload),
                     void *payload);

  /* ---- objects. digest: 64 hex characters, computed by the dispatch. */
  /* Stores buf under digest unless present. MYDB_ENOTINIT for a tenant
   * that is not initialized. */
  int (*object_write)(mydb_backend *be, const char *tenant,
                      const char *digest, const void *buf, size_t len);
  /* The stored bytes, unverified (MYDB_ENOTFOUND if absent). */
  int (*object_read)(mydb_backend *be, mydb_blob **out, const char *tenant,
                     const char *digest);
  int (*object_exists)(mydb_backend *be, const char *tenant,
                       const char *digest);
  int (*object_foreach)(mydb_backend *be, const char *tenant,
                        int (*fn)(const char *name, void *payload),
                        void *payload);

  /* ---- heads. locked: the caller holds the tenant lock. */
  int (*head_get)(mydb_backend *be, char out[MYDB_DIGEST_BUF],
                  const char *tenant, size_t tlen, const char *entry,
                  size_t entry_len, int locked);
  int (*head_foreach)(mydb_backend *be, const char *tenant, size_t tlen,
                      int (*fn)(const char *entry, size_t entry_len,
                                const char *digest, void *payload),
                      void *payload);

  /* ---- the tenant write lock. acquire fills lk->fd or lk->impl (the
   * dispatch set lk->tenant, lk->tlen); release drops what it holds and
   * may be called once, also after the handle's other state is gone. */
  int (*lock_acquire)(mydb_backend *be, struct mydb_lock *lk);
  void (*lock_release)(mydb_backend *be, struct mydb_lock *lk);

  /* Applies n changes as one commit under lk. line/len: the JSON commit
   * line (doc/FORMAT.md), built by the dispatch. With pending NULL the
   * commit is durable (db->fsync) on return; otherwise a backend may leave
   * the wait to sync(), which the dispatch calls after releasing the lock
   * (group commit). */
  int (*head_commit)(mydb_backend *be, struct mydb_lock *lk,
                     const mydb_head_change *c, size_t n, const char *line,
                     size_t len, mydb__pending *pending);
  /* Optional (NULL when head_commit never defers). Waits until pending's
   * commit is durable; always releases pending->sync. */
  int (*sync)(mydb_backend *be, mydb__pending *pending);

  /* ---- garbage collection (optional: NULL if the backend cannot). */
  /* Records the position after which new objects are kept by a sweep. */
  int (*gc_begin)(mydb_backend *be, const char *tenant, mydb_gc_mark *mark);
  /* Removes the objects of tenant (NULL: refs) stored before mark for
   * which keep() returns 0. The caller holds the tenant's lock (for the
   * refs: every tenant's lock). */
  int (*gc_sweep)(mydb_backend *be, const char *tenant,
                  const mydb_gc_mark *mark,
                  int (*keep)(const char *digest, void *payload),
                  void *payload, mydb_gc_stats *st);
  /* Compacts what the backend keeps for the tenant (NULL: refs). The
   * caller holds the tenant's lock. */
  int (*repack)(mydb_backend *be, const char *tenant, mydb_gc_stats *st);
  /* Optional: calls fn for each commit line of the tenant's head history,
   * oldest first, without the header line (loose: the journal's complete
   * lines; pack: the commit records). */
  int (*journal)(mydb_backend *be, const char *tenant,
                 int (*fn)(const char *line, size_t len, void *payload),
                 void *payload);
  /* Optional: checks the backend's own framing (record checksums) of a
   * tenant (NULL: refs); reports each problem through fn. */
  int (*check)(mydb_backend *be, const char *tenant,
               void (*fn)(const char *what, const char *msg, void *payload),
               void *payload);

  /* Closes what the handle holds; mandatory. */
  void (*free)(mydb_backend *be);
};

/* Constructors (db->root, db->fsync, db->segment_bytes are set). */
int mydb__backend_loose(struct mydb *db, mydb_backend **out);
int mydb__backend_memory(struct mydb *db, mydb_backend **out);
int mydb__backend_pack(struct mydb *db, mydb_backend **out);

#endif
