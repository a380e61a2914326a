/*
 * layout.c - what makes a loose tenant initialized: ROOT/TENANT/objects,
 * created last by tenant_init (used by the backend and its journal).
 */
#include <errno.h>
#include <limits.h>
#include <sys/stat.h>

#include "loose.h"

int mydb__loose_initialized(const mydb *db, const char *tenant) {
  char p[PATH_MAX];
  struct stat st;
  int rc = mydb__path(db, p, tenant, "objects", NULL);
  if (rc) return rc;
  if (stat(p, &st) == 0) return S_ISDIR(st.st_mode) ? 1 : 0;
  if (errno == ENOENT || errno == ENOTDIR) return 0;
  return mydb__syserr(errno, "stat", p);
}
