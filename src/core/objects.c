/*
 * objects.c - content-addressed objects (dispatch layer), gc and repack.
 *
 * A write hashes first (or takes the digest its caller computed with the
 * bytes: mydb_object_write_hashed) and lets the backend skip objects that
 * already exist (git's rule); a read re-hashes what the backend returned (strict
 * verification: MYDB_ECORRUPT on mismatch, whatever the backend) and
 * caches small verified blobs, so that a later read of the same digest does
 * no I/O.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static int check_where(const char *tenant) {
  return tenant ? mydb__check_tenant(tenant, NULL) : 0;
}

static void cache_offer(mydb *db, const char *tenant, const char *digest,
                        const void *buf, size_t len) {
  if (db->cache.max == 0 || len > MYDB__CACHE_OBJ_MAX || len > db->cache.max)
    return;
  mydb_blob *b = mydb__blob_new(len);
  if (!b) return;
  memcpy(b->data, buf, len);
  pthread_mutex_lock(&db->mu);
  mydb__cache_put(&db->cache, tenant, digest, b);
  pthread_mutex_unlock(&db->mu);
  mydb_blob_release(b);
}

int mydb_object_write(mydb *db, char out[MYDB_DIGEST_BUF], const char *tenant,
                      const void *buf, size_t len) {
  int rc;
  char digest[MYDB_DIGEST_BUF];
  unsigned char md[32];
  if ((rc = mydb__check_db(db)) || (rc = check_where(tenant))) return rc;
  if (!out) return mydb__seterr(MYDB_EINVAL, "object_write: out is NULL");
  if (!buf && len)
    return mydb__seterr(MYDB_EINVAL, "object_write: buf is NULL");
  if (!buf) buf = "";
  if ((rc = mydb__sha256(md, buf, len))) return rc;
  mydb__hex(digest, md, 32);
  digest[MYDB_DIGEST_HEX] = '\0';
  if ((rc = mydb_object_write_hashed(db, digest, tenant, buf, len))) return rc;
  memcpy(out, digest, MYDB_DIGEST_BUF);
  return MYDB_OK;
}

int mydb_object_write_hashed(mydb *db, const char *digest, const char *tenant,
                             const void *buf, size_t len) {
  return mydb_object_write_near(db, digest, tenant, buf, len, NULL);
}

int mydb_object_write_near(mydb *db, const char *digest, const char *tenant,
                           const void *buf, size_t len, const char *base) {
  return mydb__object_write_piece(db, digest, tenant, buf, len, base, NULL, 0,
                                  1);
}

int mydb__object_write_piece(mydb *db, const char *digest, const char *tenant,
                             const void *buf, size_t len, const char *base,
                             const void *base_buf, size_t base_len,
                             int offer) {
  int rc;
  if ((rc = mydb__check_db(db)) || (rc = check_where(tenant)) ||
      (rc = mydb__check_digest(digest)) ||
      (base && (rc = mydb__check_digest(base))))
    return rc;
  if (!buf && len)
    return mydb__seterr(MYDB_EINVAL, "object_write: buf is NULL");
  if (!buf) buf = "";
  const mydb_odb_ops *odb = db->be->odb;
  if (base && odb->write_near) {
    /* the base's bytes: the caller's, or cached (the piece a put replaces
     * was read or written a moment ago): the backend need not read it */
    mydb_blob *bb = NULL;
    if (!base_buf && db->cache.max) {
      pthread_mutex_lock(&db->mu);
      bb = mydb__cache_get(&db->cache, tenant, base);
      pthread_mutex_unlock(&db->mu);
    }
    if (bb) {
      base_buf = bb->data;
      base_len = bb->len;
    }
    rc = odb->write_near(db->be, tenant, digest, buf, len, base,
                         base_buf, base_buf ? base_len : 0);
    int cached = bb != NULL;
    if (bb) mydb_blob_release(bb);
    /* (a base the cache does not hold - a tree's piece, which the caller
     * keeps in its node cache - is not looked for again at the commit) */
    if (rc == MYDB_OK && cached && tenant && strcmp(base, digest) != 0) {
      pthread_mutex_lock(&db->mu);
      mydb__cache_supersede(&db->cache, tenant, base);
      pthread_mutex_unlock(&db->mu);
    }
  } else {
    rc = odb->write(db->be, tenant, digest, buf, len);
  }
  if (rc) return rc;
  /* The bytes were hashed by the caller, so they are verified: readers
   * that follow a write (the common case) hit the cache - unless the
   * caller keeps them itself (ltree's node cache). */
  if (offer) cache_offer(db, tenant, digest, buf, len);
  return MYDB_OK;
}

static int object_read(mydb *db, mydb_blob **out, const char *tenant,
                       const char *digest, int keep) {
  int rc;
  if (out) *out = NULL;
  if ((rc = mydb__check_db(db)) || (rc = check_where(tenant)) ||
      (rc = mydb__check_digest(digest)))
    return rc;
  if (!out) return mydb__seterr(MYDB_EINVAL, "object_read: out is NULL");

  if (db->cache.max) {
    pthread_mutex_lock(&db->mu);
    mydb_blob *hit = mydb__cache_get(&db->cache, tenant, digest);
    pthread_mutex_unlock(&db->mu);
    if (hit) {
      *out = hit;
      return MYDB_OK;
    }
  }
  mydb_blob *b = NULL;
  if ((rc = db->be->odb->read(db->be, &b, tenant, digest))) return rc;

  unsigned char md[32];
  char hex[MYDB_DIGEST_BUF];
  if ((rc = mydb__sha256(md, b->data, b->len))) {
    mydb_blob_release(b);
    return rc;
  }
  mydb__hex(hex, md, 32);
  hex[MYDB_DIGEST_HEX] = '\0';
  if (memcmp(hex, digest, MYDB_DIGEST_HEX) != 0) {
    mydb_blob_release(b);
    return mydb__seterr(MYDB_ECORRUPT, "object %s in %s %s is corrupt: its "
                        "bytes hash to %s (%s backend)", digest,
                        mydb__where_kind(tenant), mydb__where_name(tenant),
                        hex, db->be->name);
  }
  if (keep && db->cache.max && b->len <= MYDB__CACHE_OBJ_MAX) {
    pthread_mutex_lock(&db->mu);
    mydb__cache_put(&db->cache, tenant, digest, b);
    pthread_mutex_unlock(&db->mu);
  }
  *out = b;
  return MYDB_OK;
}

int mydb_object_read(mydb *db, mydb_blob **out, const char *tenant,
                     const char *digest) {
  return object_read(db, out, tenant, digest, 1);
}

int mydb_object_read_once(mydb *db, mydb_blob **out, const char *tenant,
                          const char *digest) {
  return object_read(db, out, tenant, digest, 0);
}

int mydb_object_read_into(mydb *db, char **buf, size_t *cap, size_t *len,
                          const char *tenant, const char *digest) {
  int rc;
  if (len) *len = 0;
  if ((rc = mydb__check_db(db)) || (rc = check_where(tenant)) ||
      (rc = mydb__check_digest(digest)))
    return rc;
  if (!buf || !cap || !len)
    return mydb__seterr(MYDB_EINVAL, "object_read_into: buf, cap or len is "
                        "NULL");
  /* the caller's buffer as a mydb_buf, handed back whatever happens (a
   * realloc may have moved it) */
  mydb_buf b = {*buf, 0, *buf ? *cap : 0, 0};
  mydb_blob *hit = NULL;
  if (db->cache.max) {
    pthread_mutex_lock(&db->mu);
    hit = mydb__cache_get(&db->cache, tenant, digest);
    pthread_mutex_unlock(&db->mu);
  }
  if (hit) { /* verified when it was cached */
    mydb_buf_put(&b, hit->data, hit->len);
    mydb_blob_release(hit);
  } else if (db->be->odb->read_into) {
    rc = db->be->odb->read_into(db->be, &b, tenant, digest);
  } else {
    mydb_blob *o = NULL;
    if ((rc = db->be->odb->read(db->be, &o, tenant, digest)) == MYDB_OK) {
      mydb_buf_put(&b, o->data, o->len);
      mydb_blob_release(o);
    }
  }
  if (rc == MYDB_OK && mydb_buf_grow(&b, 1) == 0) b.data[b.len] = '\0';
  if (rc == MYDB_OK && b.failed)
    rc = mydb__seterr(MYDB_ENOMEM, "out of memory reading object %s", digest);
  *buf = b.data;
  *cap = b.cap;
  if (rc) return rc;
  if (!hit) {
    unsigned char md[32];
    char hex[MYDB_DIGEST_BUF];
    if ((rc = mydb__sha256(md, b.data, b.len))) return rc;
    mydb__hex(hex, md, 32);
    hex[MYDB_DIGEST_HEX] = '\0';
    if (memcmp(hex, digest, MYDB_DIGEST_HEX) != 0)
      return mydb__seterr(MYDB_ECORRUPT, "object %s in %s %s is corrupt: its "
                          "bytes hash to %s (%s backend)", digest,
                          mydb__where_kind(tenant), mydb__where_name(tenant),
                          hex, db->be->name);
  }
  *len = b.len;
  return MYDB_OK;
}

int mydb_object_exists(mydb *db, const char *tenant, const char *digest) {
  int rc;
  if ((rc = mydb__check_db(db)) || (rc = check_where(tenant)) ||
      (rc = mydb__check_digest(digest)))
    return rc;
  if (db->cache.max) {
    pthread_mutex_lock(&db->mu);
    int hit = mydb__cache_contains(&db->cache, tenant, digest);
    pthread_mutex_unlock(&db->mu);
    if (hit) return 1;
  }
  return db->be->odb->exists(db->be, tenant, digest);
}

int mydb_object_foreach(mydb *db, const char *tenant,
                        int (*fn)(const char *name, void *payload),
                        void *payload) {
  int rc;
  if ((rc = mydb__check_db(db)) || (rc = check_where(tenant))) return rc;
  if (!fn) return mydb__seterr(MYDB_EINVAL, "object_foreach: fn is NULL");
  return db->be->odb->foreach(db->be, tenant, fn, payload);
}

/* ------------------------------------------------------------ gc, repack */

int mydb_gc_begin(mydb *db, const char *tenant, mydb_gc_mark *out) {
  int rc;
  if ((rc = mydb__check_db(db)) || (rc = check_where(tenant))) return rc;
  if (!out) return mydb__seterr(MYDB_EINVAL, "gc_begin: out is NULL");
  memset(out, 0, sizeof *out);
  if (!db->be->odb->gc_begin)
    return mydb__seterr(MYDB_EINVAL, "the %s backend has no gc",
                        db->be->name);
  return db->be->odb->gc_begin(db->be, tenant, out);
}

typedef struct keep_ctx {
  mydb *db;
  const char *tenant;
  int (*keep)(const char *digest, void *payload);
  void *payload;
} keep_ctx;

/* Drops a removed object from the cache too (a later read must miss). */
static int keep_cb(const char *digest, void *payload) {
  keep_ctx *k = payload;
  int r = k->keep(digest, k->payload);
  if (r == 0 && k->db->cache.max) {
    pthread_mutex_lock(&k->db->mu);
    mydb__cache_remove(&k->db->cache, k->tenant, digest);
    pthread_mutex_unlock(&k->db->mu);
  }
  return r;
}

int mydb_gc_sweep(mydb *db, const char *tenant, const mydb_gc_mark *mark,
                  int (*keep)(const char *digest, void *payload),
                  void *payload, mydb_gc_stats *st) {
  int rc;
  if ((rc = mydb__check_db(db)) || (rc = check_where(tenant))) return rc;
  if (!mark || !keep || !st)
    return mydb__seterr(MYDB_EINVAL, "gc_sweep: NULL argument");
  if (!db->be->odb->gc_sweep)
    return mydb__seterr(MYDB_EINVAL, "the %s backend has no gc",
                        db->be->name);
  keep_ctx k = {db, tenant, keep, payload};
  return db->be->odb->gc_sweep(db->be, tenant, mark, keep_cb, &k, st);
}

int mydb_repack(mydb *db, const char *tenant, mydb_gc_stats *st) {
  int rc;
  if ((rc = mydb__check_db(db)) || (rc = check_where(tenant))) return rc;
  if (!st) return mydb__seterr(MYDB_EINVAL, "repack: st is NULL");
  if (!db->be->repack) return MYDB_OK;
  return db->be->repack(db->be, tenant, st);
}

int mydb_check(mydb *db, const char *tenant,
               void (*fn)(const char *what, const char *msg, void *payload),
               void *payload) {
  int rc;
  if ((rc = mydb__check_db(db)) || (rc = check_where(tenant))) return rc;
  if (!fn) return mydb__seterr(MYDB_EINVAL, "check: fn is NULL");
  if (!db->be->check) return MYDB_OK;
  return db->be->check(db->be, tenant, fn, payload);
}

static int check_setting_key(const char *key) {
  size_t n = key ? strlen(key) : 0;
  int ok = n >= 1 && n <= 64;
  for (size_t i = 0; ok && i < n; i++)
    ok = (key[i] >= 'a' && key[i] <= 'z') || (key[i] >= 'A' && key[i] <= 'Z') ||
         (key[i] >= '0' && key[i] <= '9') || key[i] == '_' || key[i] == '.';
  if (!ok)
    return mydb__seterr(MYDB_EINVAL, "invalid setting name (1 to 64 letters, "
                        "digits, '_', '.')");
  return MYDB_OK;
}

int mydb_setting_get(mydb *db, const char *key, mydb_blob **out) {
  int rc;
  if (out) *out = NULL;
  if ((rc = mydb__check_db(db)) || (rc = check_setting_key(key))) return rc;
  if (!out) return mydb__seterr(MYDB_EINVAL, "setting_get: out is NULL");
  if (!db->be->setting_get)
    return mydb__seterr(MYDB_EINVAL, "the %s backend keeps no settings",
                        db->be->name);
  return db->be->setting_get(db->be, key, out);
}

int mydb_setting_set(mydb *db, const char *key, const void *buf,
                     size_t len) {
  int rc;
  if ((rc = mydb__check_db(db)) || (rc = check_setting_key(key))) return rc;
  if (!db->be->setting_set)
    return mydb__seterr(MYDB_EINVAL, "the %s backend keeps no settings",
                        db->be->name);
  if (!buf) len = 0;
  return db->be->setting_set(db->be, key, buf, len);
}
