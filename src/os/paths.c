/*
 * paths.c - paths below ROOT: ROOT/a/b/c, and an object's place in the
 * loose layout (TENANT/objects or refs, fan-out directory, digest).
 */
#include <limits.h>
#include <string.h>

#include "internal.h"

int mydb__path(const mydb *db, char *out, const char *a, const char *b,
               const char *c) {
  const char *parts[3] = {a, b, c};
  size_t n = db->rootlen;
  memcpy(out, db->root, n);
  for (int i = 0; i < 3 && parts[i]; i++) {
    size_t l = strlen(parts[i]);
    if (n + 1 + l >= PATH_MAX) {
      out[n] = '\0';
      return mydb__seterr(MYDB_EINVAL, "path too long under %s", db->root);
    }
    out[n++] = '/';
    memcpy(out + n, parts[i], l);
    n += l;
  }
  out[n] = '\0';
  return 0;
}

int mydb__object_path(const mydb *db, char *out, size_t *dirlen,
                      const char *tenant, const char *digest) {
  int rc = tenant ? mydb__path(db, out, tenant, "objects", NULL)
                  : mydb__path(db, out, "refs", NULL, NULL);
  if (rc) return rc;
  size_t n = strlen(out);
  if (n + 2 + MYDB_FANOUT + MYDB_DIGEST_HEX >= PATH_MAX)
    return mydb__seterr(MYDB_EINVAL, "path too long under %s", db->root);
  out[n++] = '/';
  memcpy(out + n, digest, MYDB_FANOUT);
  n += MYDB_FANOUT;
  if (dirlen) *dirlen = n;
  out[n++] = '/';
  memcpy(out + n, digest, MYDB_DIGEST_HEX);
  n += MYDB_DIGEST_HEX;
  out[n] = '\0';
  return 0;
}

const char *mydb__where_kind(const char *tenant) {
  return tenant ? "tenant" : "the shared";
}

const char *mydb__where_name(const char *tenant) {
  return tenant ? tenant : "refs";
}

