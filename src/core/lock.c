/*
 * lock.c - the tenant write lock: the dispatch layer (argument checks, the
 * handle's list of live locks), then the backend's ref store.
 *
 * The loose backend locks with flock(2) on ROOT/TENANT/lock: every
 * acquisition opens the file anew and flock()s the new descriptor.
 * flock(2) locks belong to the open file description, and each open(2)
 * creates a new one, so two acquisitions conflict whether they come from
 * two processes, two handles or two threads sharing one handle: no mutex
 * is needed for exclusion. The pack backend locks ROOT/TENANT/pack/lock
 * (its append lock too) through one descriptor per handle, kept open, so
 * it excludes the threads of a handle itself (src/backend/pack/pack.h). (POSIX fcntl() locks would not do: they belong
 * to the process, give no exclusion between its threads, and are dropped
 * when any descriptor of the file is closed - see SQLite's os_unix.c.)
 * Closing the descriptor releases the lock, also when the process dies.
 *
 * The handle's mutex is never held while blocking for a lock; it only
 * guards the handle's list of live locks (so mydb_close can release them).
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

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
  if ((rc = db->be->refdb->lock_acquire(db->be, lk)) != MYDB_OK) {
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

typedef struct forget_ctx {
  mydb *db;
  const char *tenant;
} forget_ctx;

/* An object the backend held back for a commit that never came: the
 * cache (filled when it was written) must not answer for it. */
static void forget(const char *digest, void *payload) {
  forget_ctx *f = payload;
  pthread_mutex_lock(&f->db->mu);
  if (digest) {
    mydb__cache_remove(&f->db->cache, f->tenant, digest);
  } else {
    size_t max = f->db->cache.max;
    mydb__cache_free(&f->db->cache);
    mydb__cache_init(&f->db->cache, max);
  }
  pthread_mutex_unlock(&f->db->mu);
}

void mydb__lock_drop(mydb_lock *lk) {
  mydb *db = lk->db;
  if (db && lk->held && db->be->refdb->lock_uncommitted && db->cache.max) {
    forget_ctx f = {db, lk->tenant};
    db->be->refdb->lock_uncommitted(db->be, lk, forget, &f);
  }
  if (db) {
    pthread_mutex_lock(&db->mu);
    if (lk->prev) lk->prev->next = lk->next; else db->locks = lk->next;
    if (lk->next) lk->next->prev = lk->prev;
    lk->prev = lk->next = NULL;
    pthread_mutex_unlock(&db->mu);
    if (lk->held) db->be->refdb->lock_release(db->be, lk);
  }
  lk->held = 0;
}

void mydb_lock_release(mydb_lock *lk) {
  if (!lk) return;
  if (lk->db) { /* no commit: what its writes replaced stays current */
    pthread_mutex_lock(&lk->db->mu);
    mydb__cache_settle(&lk->db->cache, lk->tenant, 0);
    pthread_mutex_unlock(&lk->db->mu);
  }
  mydb__lock_drop(lk);
  free(lk);
}

void mydb__locks_detach(mydb *db) {
  mydb_lock *lk = db->locks;
  while (lk) {
    mydb_lock *next = lk->next;
    if (lk->held) db->be->refdb->lock_release(db->be, lk);
    lk->held = 0;
    lk->db = NULL;
    lk->prev = lk->next = NULL;
    lk = next;
  }
  db->locks = NULL;
}

int mydb__lock_check(const mydb_lock *lk, const char *fn) {
  if (!lk) return mydb__seterr(MYDB_EINVAL, "%s: lock is NULL", fn);
  if (!lk->db || !lk->held)
    return mydb__seterr(MYDB_ECLOSED, "%s: the lock's database handle was "
                        "closed", fn);
  return 0;
}
