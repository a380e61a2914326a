/*
 * names.c - what a tenant id, an entry name and a digest may be, and the
 * argument checks that say so in a message.
 */
#include <string.h>

#include "internal.h"

int mydb_tenant_valid(const char *tenant, size_t len) {
  if (!tenant || len < 1 || len > MYDB_TENANT_MAX) return 0;
  if (tenant[0] == '.') return 0; /* also "." and ".." */
  if (len == 4 && memcmp(tenant, "refs", 4) == 0) return 0;
  for (size_t i = 0; i < len; i++) {
    char c = tenant[i];
    if (c == '/' || c == '\\' || c == '\0') return 0;
  }
  return 1;
}

int mydb__check_db(const mydb *db) {
  if (!db) return mydb__seterr(MYDB_EINVAL, "database handle is NULL");
  return 0;
}

int mydb__check_tenant(const char *tenant, size_t *len) {
  if (!tenant) return mydb__seterr(MYDB_EINVAL, "tenant is NULL");
  size_t n = strnlen(tenant, MYDB_TENANT_MAX + 1);
  if (!mydb_tenant_valid(tenant, n))
    return mydb__seterr(MYDB_EINVAL,
                        "invalid tenant id '%.*s' (1 to %d bytes; not "
                        "starting with '.', not 'refs'; no '/' or '\\')",
                        (int)(n > 64 ? 64 : n), tenant, MYDB_TENANT_MAX);
  if (len) *len = n;
  return 0;
}

int mydb__check_digest(const char *digest) {
  if (!digest) return mydb__seterr(MYDB_EINVAL, "digest is NULL");
  size_t n = strnlen(digest, MYDB_DIGEST_BUF);
  if (!mydb_digest_valid(digest, n))
    return mydb__seterr(MYDB_EINVAL,
                        "invalid digest '%.*s' (expected 64 lowercase hex "
                        "characters)", (int)(n > 80 ? 80 : n), digest);
  return 0;
}

int mydb__check_entry(const char *entry, size_t len) {
  if (!entry) return mydb__seterr(MYDB_EINVAL, "entry is NULL");
  if (len < 1 || len > MYDB_ENTRY_MAX)
    return mydb__seterr(MYDB_EINVAL, "invalid entry: length %zu (1 to %d "
                        "bytes)", len, MYDB_ENTRY_MAX);
  if (memchr(entry, '\0', len))
    return mydb__seterr(MYDB_EINVAL, "invalid entry: contains a NUL byte");
  return 0;
}

