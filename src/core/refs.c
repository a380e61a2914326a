/*
 * refs.c - the heads (a tenant's entry -> digest names): the dispatch layer
 * of the ref store (argument checks, the commit line, group commit,
 * compare-and-set), then the backend.
 */
#include <stdlib.h>
#include <string.h>

#include "headmap.h"
#include "internal.h"

int mydb_lock_head_get(mydb_lock *lk, char out[MYDB_DIGEST_BUF],
                       const char *entry, size_t entry_len) {
  int rc;
  if ((rc = mydb__lock_check(lk, "lock_head_get"))) return rc;
  if (!out) return mydb__seterr(MYDB_EINVAL, "lock_head_get: out is NULL");
  if ((rc = mydb__check_head_key(entry, entry_len))) return rc;
  /* The lock is held: no writer can be mid-commit, so the state read here
   * is the latest committed one. */
  mydb *db = lk->db;
  return db->be->refdb->get(db->be, out, lk->tenant, lk->tlen, entry,
                          entry_len, 1);
}

/* ---------------------------------------------------------------- heads */

int mydb_head_get(mydb *db, char out[MYDB_DIGEST_BUF], const char *tenant,
                  const char *entry, size_t entry_len) {
  int rc;
  size_t tlen;
  if ((rc = mydb__check_db(db)) || (rc = mydb__check_tenant(tenant, &tlen)) ||
      (rc = mydb__check_head_key(entry, entry_len)))
    return rc;
  if (!out) return mydb__seterr(MYDB_EINVAL, "head_get: out is NULL");
  return db->be->refdb->get(db->be, out, tenant, tlen, entry, entry_len, 0);
}

/* Passes on the entries (refs: 0) or the refs without their NUL (1). */
typedef struct {
  int refs;
  int (*fn)(const char *, size_t, const char *, void *);
  void *payload;
} head_filter;

static int filter_head(const char *key, size_t len, const char *digest,
                       void *payload) {
  head_filter *f = payload;
  int is_ref = len > 0 && key[0] == '\0';
  if (is_ref != f->refs) return 0;
  return is_ref ? f->fn(key + 1, len - 1, digest, f->payload)
                : f->fn(key, len, digest, f->payload);
}

static int foreach_filtered(mydb *db, const char *tenant, int refs,
                            int (*fn)(const char *, size_t, const char *,
                                      void *),
                            void *payload, const char *what) {
  int rc;
  size_t tlen;
  if ((rc = mydb__check_db(db)) || (rc = mydb__check_tenant(tenant, &tlen)))
    return rc;
  if (!fn) return mydb__seterr(MYDB_EINVAL, "%s: fn is NULL", what);
  head_filter f = {refs, fn, payload};
  return db->be->refdb->foreach(db->be, tenant, tlen, filter_head, &f);
}

int mydb_head_foreach(mydb *db, const char *tenant,
                      int (*fn)(const char *entry, size_t entry_len,
                                const char *digest, void *payload),
                      void *payload) {
  return foreach_filtered(db, tenant, 0, fn, payload, "head_foreach");
}

int mydb_ref_foreach(mydb *db, const char *tenant,
                     int (*fn)(const char *name, size_t name_len,
                               const char *digest, void *payload),
                     void *payload) {
  return foreach_filtered(db, tenant, 1, fn, payload, "ref_foreach");
}

int mydb_head_journal(mydb *db, const char *tenant,
                      int (*fn)(const char *line, size_t len, void *payload),
                      void *payload) {
  int rc;
  if ((rc = mydb__check_db(db)) || (rc = mydb__check_tenant(tenant, NULL)))
    return rc;
  if (!fn) return mydb__seterr(MYDB_EINVAL, "head_journal: fn is NULL");
  if (!db->be->refdb->journal)
    return mydb__seterr(MYDB_EINVAL, "the %s backend keeps no head history",
                        db->be->name);
  int r = db->be->tenant_exists(db->be, tenant);
  if (r < 0) return r;
  if (r == 0)
    return mydb__seterr(MYDB_ENOTINIT, "tenant '%s' is not initialized",
                        tenant);
  static const char hdr[] = "{\"mydb_head\":1}";
  if ((rc = fn(hdr, sizeof hdr - 1, payload))) return rc;
  return db->be->refdb->journal(db->be, tenant, fn, payload);
}

/* Checks and commits; with pending, the backend may leave the wait for
 * durability to the caller. */
static int commit(mydb_lock *lk, const mydb_head_change *changes, size_t n,
                  mydb__pending *pending) {
  int rc;
  if ((rc = mydb__lock_check(lk, "head_commit"))) return rc;
  if (!changes || n == 0)
    return mydb__seterr(MYDB_EINVAL, "head_commit: no changes");
  for (size_t i = 0; i < n; i++) {
    if ((rc = mydb__check_head_key(changes[i].entry, changes[i].entry_len)))
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
  rc = be->refdb->commit(be, lk, changes, n, b.data, b.len, pending);
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
  mydb__pending pending = {NULL, 0, 0, 0};
  mydb *db = lk->db;
  char tenant[MYDB_TENANT_MAX + 1];
  memcpy(tenant, lk->tenant, sizeof tenant);
  int rc = commit(lk, changes, n, &pending);
  mydb__lock_drop(lk); /* other writers may append while this one syncs */
  free(lk);
  if (pending.sync) {
    int src = db->be->refdb->sync(db->be, &pending);
    if (rc == MYDB_OK) rc = src;
  }
  if (db) { /* the bases the commit's writes replaced: dropped once durable */
    pthread_mutex_lock(&db->mu);
    mydb__cache_settle(&db->cache, tenant, rc == MYDB_OK);
    pthread_mutex_unlock(&db->mu);
  }
  return rc;
}

int mydb_head_cas(mydb *db, const char *tenant,
                  const mydb_head_change *changes, const char *const *expect,
                  size_t n) {
  int rc;
  if ((rc = mydb__check_db(db)) || (rc = mydb__check_tenant(tenant, NULL)))
    return rc;
  if (!changes || !expect || n == 0)
    return mydb__seterr(MYDB_EINVAL, "head_cas: no changes");
  for (size_t i = 0; i < n; i++)
    if (expect[i] && (rc = mydb__check_digest(expect[i]))) return rc;
  mydb_lock *lk = NULL;
  if ((rc = mydb_lock_acquire(db, &lk, tenant))) return rc;
  for (size_t i = 0; i < n; i++) {
    char cur[MYDB_DIGEST_BUF];
    rc = mydb_lock_head_get(lk, cur, changes[i].entry, changes[i].entry_len);
    if (rc != MYDB_OK && rc != MYDB_ENOTFOUND) break;
    int absent = rc == MYDB_ENOTFOUND;
    rc = MYDB_OK;
    if (absent ? expect[i] != NULL
               : !expect[i] || memcmp(cur, expect[i], MYDB_DIGEST_HEX) != 0) {
      rc = mydb__seterr(MYDB_ECONFLICT, "head_cas: entry '%.*s' of tenant "
                        "'%s' is %s%s, not %s%s",
                        (int)(changes[i].entry_len > 200 ? 200 : changes[i].entry_len),
                        changes[i].entry, tenant, absent ? "absent" : "at ",
                        absent ? "" : cur, expect[i] ? "at " : "absent",
                        expect[i] ? expect[i] : "");
      break;
    }
  }
  if (rc != MYDB_OK) {
    mydb_lock_release(lk);
    return rc;
  }
  return mydb_head_commit_release(lk, changes, n);
}
