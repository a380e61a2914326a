/*
 * lock.c - the tenant write lock.
 *
 * Every acquisition opens ROOT/TENANT/lock anew and flock()s the new
 * descriptor. flock(2) locks belong to the open file description, and each
 * open(2) creates a new one, so two acquisitions conflict whether they come
 * from two processes, two handles or two threads sharing one handle: no
 * mutex is needed for exclusion. (POSIX fcntl() locks would not do: they
 * belong to the process, give no exclusion between its threads, and are
 * dropped when any descriptor of the file is closed - see SQLite's
 * os_unix.c.) Closing the descriptor releases the lock, also when the
 * process dies.
 *
 * The handle's mutex is never held while blocking in flock(); it only
 * guards the handle's list of live locks (so mydb_close can release them).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "internal.h"

int mydb_lock_acquire(mydb *db, mydb_lock **out, const char *tenant) {
  int rc;
  size_t tlen;
  char path[PATH_MAX];
  if (out) *out = NULL;
  if ((rc = mydb__check_db(db)) || (rc = mydb__check_tenant(tenant, &tlen)))
    return rc;
  if (!out) return mydb__seterr(MYDB_EINVAL, "lock_acquire: out is NULL");
  if ((rc = mydb__path(db, path, tenant, "lock", NULL))) return rc;
  int fd = mydb__open(path, O_RDWR, 0);
  if (fd < 0) {
    if (errno == ENOENT || errno == ENOTDIR)
      return mydb__seterr(MYDB_ENOTINIT, "tenant '%s' is not initialized "
                          "(no %s)", tenant, path);
    return mydb__syserr(errno, "open", path);
  }
  while (flock(fd, LOCK_EX) != 0) {
    if (errno == EINTR) continue;
    rc = mydb__syserr(errno, "flock", path);
    mydb__close(fd);
    return rc;
  }
  mydb_lock *lk = calloc(1, sizeof *lk);
  if (!lk) {
    mydb__close(fd);
    return mydb__seterr(MYDB_ENOMEM, "out of memory");
  }
  lk->db = db;
  lk->fd = fd;
  lk->tlen = tlen;
  memcpy(lk->tenant, tenant, tlen);
  pthread_mutex_lock(&db->mu);
  lk->next = db->locks;
  if (db->locks) db->locks->prev = lk;
  db->locks = lk;
  pthread_mutex_unlock(&db->mu);
  *out = lk;
  return MYDB_OK;
}

void mydb_lock_release(mydb_lock *lk) {
  if (!lk) return;
  mydb *db = lk->db;
  if (db) {
    pthread_mutex_lock(&db->mu);
    if (lk->prev) lk->prev->next = lk->next; else db->locks = lk->next;
    if (lk->next) lk->next->prev = lk->prev;
    pthread_mutex_unlock(&db->mu);
  }
  if (lk->fd >= 0) mydb__close(lk->fd); /* drops the flock */
  free(lk);
}

void mydb__locks_detach(mydb *db) {
  mydb_lock *lk = db->locks;
  while (lk) {
    mydb_lock *next = lk->next;
    if (lk->fd >= 0) mydb__close(lk->fd);
    lk->fd = -1;
    lk->db = NULL;
    lk->prev = lk->next = NULL;
    lk = next;
  }
  db->locks = NULL;
}

int mydb_lock_head_get(mydb_lock *lk, char out[MYDB_DIGEST_BUF],
                       const char *entry, size_t entry_len) {
  int rc;
  if (!lk) return mydb__seterr(MYDB_EINVAL, "lock_head_get: lock is NULL");
  if (!lk->db || lk->fd < 0)
    return mydb__seterr(MYDB_ECLOSED, "lock_head_get: the lock's database "
                        "handle was closed");
  if (!out) return mydb__seterr(MYDB_EINVAL, "lock_head_get: out is NULL");
  if ((rc = mydb__check_entry(entry, entry_len))) return rc;
  /* The lock is held: no writer can be mid-append, so the state read here
   * is the latest committed one. */
  return mydb__head_get(lk->db, out, lk->tenant, lk->tlen, entry, entry_len,
                        1);
}
