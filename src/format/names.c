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


/* A ref name: "heads/NAME", "tags/NAME" or "remotes/NAME" (a
 * remote-tracking branch, NAME = REMOTE/BRANCH: one '/' at least), NAME 1
 * to MYDB_REF_NAME_MAX bytes of letters, digits, '.', '_', '-', '/', not
 * starting with '.', '-' or '/', without "..". */
int mydb_ref_name_valid(const char *name, size_t len) {
  size_t p;
  if (!name) return 0;
  if (len > 6 && memcmp(name, "heads/", 6) == 0) p = 6;
  else if (len > 5 && memcmp(name, "tags/", 5) == 0) p = 5;
  else if (len > 8 && memcmp(name, "remotes/", 8) == 0) p = 8;
  else return 0;
  const char *n = name + p;
  size_t nl = len - p;
  if (nl < 1 || nl > MYDB_REF_NAME_MAX) return 0;
  if (p == 8 && (!memchr(n, '/', nl) || n[nl - 1] == '/')) return 0;
  if (n[0] == '.' || n[0] == '-' || n[0] == '/') return 0;
  for (size_t i = 0; i < nl; i++) {
    char c = n[i];
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
             (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' ||
             c == '/';
    if (!ok) return 0;
    if (c == '.' && i + 1 < nl && n[i + 1] == '.') return 0;
  }
  return 1;
}

/* A head key: an entry name, or a NUL byte and a ref name (no entry
 * name holds a NUL, so the two never meet). */
int mydb__check_head_key(const char *key, size_t len) {
  if (key && len >= 1 && key[0] == '\0') {
    if (!mydb_ref_name_valid(key + 1, len - 1))
      return mydb__seterr(MYDB_EINVAL, "invalid ref name '%.*s' (heads/NAME, "
                          "tags/NAME or remotes/REMOTE/BRANCH; NAME 1 to %d bytes of letters, "
                          "digits, '.', '_', '-', '/')",
                          (int)(len - 1 > 200 ? 200 : len - 1), key + 1,
                          MYDB_REF_NAME_MAX);
    return 0;
  }
  return mydb__check_entry(key, len);
}
