/*
 * flock.c - the tenant write lock of the on-disk backends: flock(2) on
 * ROOT/TENANT/lock, taken on a new open file description each time (see
 * src/core/lock.c for why flock and not fcntl locks).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/file.h>

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
