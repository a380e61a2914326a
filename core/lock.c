/*
 * lock.c - the tenant write lock and the heads: the dispatch layer
 * (argument checks, the commit line, group commit), then the backend.
 *
 * The loose and pack backends lock with flock(2) on ROOT/TENANT/lock:
 * every acquisition opens the file anew and flock()s the new descriptor.
 * flock(2) locks belong to the open file description, and each open(2)
 * creates a new one, so two acquisitions conflict whether they come from
 * two processes, two handles or two threads sharing one handle: no mutex
 * is needed for exclusion. (POSIX fcntl() locks would not do: they belong
 * to the process, give no exclusion between its threads, and are dropped
 * when any descriptor of the file is closed - see SQLite's os_unix.c.)
 * Closing the descriptor releases the lock, also when the process dies.
 *
 * The handle's mutex is never held while blocking for a lock; it only
 * guards the handle's list of live locks (so mydb_close can release them).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "headmap.h"
#include "internal.h"

int mydb__flock(int fd, int op) {
  int rc;
  do rc = flock(fd, op);
  while (rc != 0 && errno == EINTR);
  return rc;
}

int mydb__flock_tenant(const mydb *db, const char *tenant, int *out) {
  char path[PATH_MAX];
  int rc;
  *out = -1;
  if ((rc = mydb__path(db, path, tenant, "lock", NULL))) return rc;
  int fd = mydb__open_below(db, path, O_RDWR, 0); /* no symlink below ROOT */
  if (fd < 0) {
    if (errno == ENOENT || errno == ENOTDIR)
      return mydb__seterr(MYDB_ENOTINIT, "tenant '%s' is not initialized "
                          "(no %s)", tenant, path);
    return mydb__syserr(errno, "open", path);
  }
  if (mydb__flock(fd, LOCK_EX) != 0) {
    rc = mydb__syserr(errno, "flock", path);
    mydb__close(fd);
    return rc;
  }
  *out = fd;
  return MYDB_OK;
}

int mydb_lock_acquire(mydb *db, mydb_lock **out, const char *tenant) {
  int rc;
  size_t tlen;
  if (out) *out = NULL;
  if ((rc = mydb__check_db(db)) || (rc = mydb__check_tenant(tenant, &tlen)))
    return rc;
  if (!out) return mydb__seterr(MYDB_EINVAL, "lock_acquire: out is NULL");
  mydb_lock *lk = calloc(1, sizeof *lk);
  if (!lk) return mydb__seterr(MYDB_ENOMEM, "out of memory");
  lk->fd = -1;
  lk->tlen = tlen;
  memcpy(lk->tenant, tenant, tlen);
  if ((rc = db->be->lock_acquire(db->be, lk)) != MYDB_OK) {
    free(lk);
    return rc;
  }
  lk->db = db;
  lk->held = 1;
  pthread_mutex_lock(&db->mu);
  lk->next = db->locks;
  if (db->locks) db->locks->prev = lk;
  db->locks = lk;
  pthread_mutex_unlock(&db->mu);
  *out = lk;
  return MYDB_OK;
}

/* Drops what lk holds (not lk itself). */
static void lock_drop(mydb_lock *lk) {
  mydb *db = lk->db;
  if (db) {
    pthread_mutex_lock(&db->mu);
    if (lk->prev) lk->prev->next = lk->next; else db->locks = lk->next;
    if (lk->next) lk->next->prev = lk->prev;
    lk->prev = lk->next = NULL;
    pthread_mutex_unlock(&db->mu);
    if (lk->held) db->be->lock_release(db->be, lk);
  }
  lk->held = 0;
}

void mydb_lock_release(mydb_lock *lk) {
  if (!lk) return;
  lock_drop(lk);
  free(lk);
}

void mydb__locks_detach(mydb *db) {
  mydb_lock *lk = db->locks;
  while (lk) {
    mydb_lock *next = lk->next;
    if (lk->held) db->be->lock_release(db->be, lk);
    lk->held = 0;
    lk->db = NULL;
    lk->prev = lk->next = NULL;
    lk = next;
  }
  db->locks = NULL;
}

static int check_lock(const mydb_lock *lk, const char *fn) {
  if (!lk) return mydb__seterr(MYDB_EINVAL, "%s: lock is NULL", fn);
  if (!lk->db || !lk->held)
    return mydb__seterr(MYDB_ECLOSED, "%s: the lock's database handle was "
                        "closed", fn);
  return 0;
}

int mydb_lock_head_get(mydb_lock *lk, char out[MYDB_DIGEST_BUF],
                       const char *entry, size_t entry_len) {
  int rc;
  if ((rc = check_lock(lk, "lock_head_get"))) return rc;
  if (!out) return mydb__seterr(MYDB_EINVAL, "lock_head_get: out is NULL");
  if ((rc = mydb__check_entry(entry, entry_len))) return rc;
  /* The lock is held: no writer can be mid-commit, so the state read here
   * is the latest committed one. */
  mydb *db = lk->db;
  return db->be->head_get(db->be, out, lk->tenant, lk->tlen, entry,
                          entry_len, 1);
}

/* ---------------------------------------------------------------- heads */

int mydb_head_get(mydb *db, char out[MYDB_DIGEST_BUF], const char *tenant,
                  const char *entry, size_t entry_len) {
  int rc;
  size_t tlen;
  if ((rc = mydb__check_db(db)) || (rc = mydb__check_tenant(tenant, &tlen)) ||
      (rc = mydb__check_entry(entry, entry_len)))
    return rc;
  if (!out) return mydb__seterr(MYDB_EINVAL, "head_get: out is NULL");
  return db->be->head_get(db->be, out, tenant, tlen, entry, entry_len, 0);
}

int mydb_head_foreach(mydb *db, const char *tenant,
                      int (*fn)(const char *entry, size_t entry_len,
                                const char *digest, void *payload),
                      void *payload) {
  int rc;
  size_t tlen;
  if ((rc = mydb__check_db(db)) || (rc = mydb__check_tenant(tenant, &tlen)))
    return rc;
  if (!fn) return mydb__seterr(MYDB_EINVAL, "head_foreach: fn is NULL");
  return db->be->head_foreach(db->be, tenant, tlen, fn, payload);
}

int mydb_head_journal(mydb *db, const char *tenant,
                      int (*fn)(const char *line, size_t len, void *payload),
                      void *payload) {
  int rc;
  if ((rc = mydb__check_db(db)) || (rc = mydb__check_tenant(tenant, NULL)))
    return rc;
  if (!fn) return mydb__seterr(MYDB_EINVAL, "head_journal: fn is NULL");
  if (!db->be->journal)
    return mydb__seterr(MYDB_EINVAL, "the %s backend keeps no head history",
                        db->be->name);
  int r = db->be->tenant_exists(db->be, tenant);
  if (r < 0) return r;
  if (r == 0)
    return mydb__seterr(MYDB_ENOTINIT, "tenant '%s' is not initialized",
                        tenant);
  static const char hdr[] = "{\"mydb_head\":1}";
  if ((rc = fn(hdr, sizeof hdr - 1, payload))) return rc;
  return db->be->journal(db->be, tenant, fn, payload);
}

/* Checks and commits; with pending, the backend may leave the wait for
 * durability to the caller. */
static int commit(mydb_lock *lk, const mydb_head_change *changes, size_t n,
                  mydb__pending *pending) {
  int rc;
  if ((rc = check_lock(lk, "head_commit"))) return rc;
  if (!changes || n == 0)
    return mydb__seterr(MYDB_EINVAL, "head_commit: no changes");
  for (size_t i = 0; i < n; i++) {
    if ((rc = mydb__check_entry(changes[i].entry, changes[i].entry_len)))
      return rc;
    if (changes[i].digest && (rc = mydb__check_digest(changes[i].digest)))
      return rc;
  }
  mydb_buf b = MYDB_BUF_INIT;
  mydb__hline_build(&b, changes, n);
  if (b.failed) {
    mydb_buf_free(&b);
    return mydb__seterr(MYDB_ENOMEM, "out of memory building a commit");
  }
  mydb_backend *be = lk->db->be;
  rc = be->head_commit(be, lk, changes, n, b.data, b.len, pending);
  mydb_buf_free(&b);
  return rc;
}

int mydb_head_commit(mydb_lock *lk, const mydb_head_change *changes,
                     size_t n) {
  return commit(lk, changes, n, NULL);
}

int mydb_head_commit_release(mydb_lock *lk, const mydb_head_change *changes,
                             size_t n) {
  if (!lk) return mydb__seterr(MYDB_EINVAL, "head_commit: lock is NULL");
  mydb__pending pending = {NULL, 0, 0};
  mydb *db = lk->db;
  int rc = commit(lk, changes, n, &pending);
  lock_drop(lk); /* other writers may append while this one syncs */
  free(lk);
  if (pending.sync) {
    int src = db->be->sync(db->be, &pending);
    if (rc == MYDB_OK) rc = src;
  }
  return rc;
}
