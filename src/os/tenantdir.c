/*
 * tenantdir.c - tenant directories under ROOT shared by the on-disk
 * backends: the lock file, and the walk over ROOT/NAME/sub.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "internal.h"

int mydb__tenant_lockfile(const mydb *db, const char *tenant) {
  char p[PATH_MAX];
  int rc = mydb__path(db, p, tenant, "lock", NULL);
  if (rc) return rc;
  int fd = mydb__open_below(db, p, O_WRONLY | O_CREAT, 0666);
  if (fd < 0) return mydb__syserr(errno, "create", p);
  mydb__close(fd);
  return MYDB_OK;
}

int mydb__tenant_dirs(const mydb *db, const char *sub,
                      int (*fn)(const char *tenant, void *payload),
                      void *payload) {
  DIR *d = opendir(db->rootlen ? db->root : "/");
  if (!d) return mydb__syserr(errno, "opendir", db->root);
  int rc = MYDB_OK;
  char p[PATH_MAX];
  for (;;) {
    errno = 0;
    struct dirent *de = readdir(d);
    if (!de) {
      if (errno) rc = mydb__syserr(errno, "readdir", db->root);
      break;
    }
    size_t l = strlen(de->d_name);
    if (!mydb_tenant_valid(de->d_name, l)) continue; /* ., refs, ... */
    struct stat st;
    if (mydb__path(db, p, de->d_name, sub, NULL) != 0) continue;
    if (stat(p, &st) != 0) {
      if (errno == ENOENT || errno == ENOTDIR) continue; /* not a tenant */
      /* a tenant that cannot be read is a problem, not an absence */
      rc = mydb__syserr(errno, "stat of tenant", p);
      break;
    }
    if (!S_ISDIR(st.st_mode)) continue;
    if ((rc = fn(de->d_name, payload)) != 0) break;
  }
  closedir(d);
  return rc;
}

