/*
 * objects.c - content-addressed objects in TENANT/objects and ROOT/refs.
 *
 * A write hashes first and skips objects that already exist (git's rule);
 * a read re-hashes what it read (strict verification) and caches small
 * verified blobs, so that a later read of the same digest does no I/O.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

static int check_where(const char *tenant) {
  return tenant ? mydb__check_tenant(tenant, NULL) : 0;
}

static const char *where_kind(const char *tenant) {
  return tenant ? "tenant" : "the shared";
}
static const char *where_name(const char *tenant) {
  return tenant ? tenant : "refs";
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
  char digest[MYDB_DIGEST_BUF], path[PATH_MAX];
  unsigned char md[32];
  size_t dirlen;
  if ((rc = mydb__check_db(db)) || (rc = check_where(tenant))) return rc;
  if (!out) return mydb__seterr(MYDB_EINVAL, "object_write: out is NULL");
  if (!buf && len)
    return mydb__seterr(MYDB_EINVAL, "object_write: buf is NULL");
  if (!buf) buf = "";
  if ((rc = mydb__sha256(md, buf, len))) return rc;
  mydb__hex(digest, md, 32);
  digest[MYDB_DIGEST_HEX] = '\0';
  if ((rc = mydb__object_path(db, path, &dirlen, tenant, digest))) return rc;

  struct stat st;
  if (stat(path, &st) == 0) { /* content-addressed: already there */
    memcpy(out, digest, MYDB_DIGEST_BUF);
    return MYDB_OK;
  }
  if (errno != ENOENT && errno != ENOTDIR)
    return mydb__syserr(errno, "stat", path);
  rc = mydb__file_write_atomic(db, path, dirlen, buf, len, 1, 0);
  if (rc) {
    /* Not checked beforehand (one stat less per write): an uninitialized
     * tenant shows up as a failed mkdir of the fan-out directory. */
    if (tenant && mydb__tenant_initialized(db, tenant) == 0)
      return mydb__seterr(MYDB_ENOTINIT, "tenant '%s' is not initialized "
                          "(no %.*s)", tenant, (int)(dirlen - MYDB_FANOUT - 1),
                          path);
    return rc;
  }
  memcpy(out, digest, MYDB_DIGEST_BUF);
  /* The bytes were hashed here, so they are verified: readers that follow
   * a write (the common case) hit the cache. */
  cache_offer(db, tenant, digest, buf, len);
  return MYDB_OK;
}

int mydb_object_read(mydb *db, mydb_blob **out, const char *tenant,
                     const char *digest) {
  int rc;
  char path[PATH_MAX];
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

  if ((rc = mydb__object_path(db, path, NULL, tenant, digest))) return rc;
  int fd = mydb__open(path, O_RDONLY, 0);
  if (fd < 0) {
    if (errno == ENOENT || errno == ENOTDIR)
      return mydb__seterr(MYDB_ENOTFOUND, "object %s not found in %s %s",
                          digest, where_kind(tenant), where_name(tenant));
    return mydb__syserr(errno, "open", path);
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    rc = mydb__syserr(errno, "fstat", path);
    mydb__close(fd);
    return rc;
  }
  if (!S_ISREG(st.st_mode)) {
    mydb__close(fd);
    return mydb__seterr(MYDB_ECORRUPT, "object %s in %s %s is not a regular "
                        "file", digest, where_kind(tenant), where_name(tenant));
  }
  size_t size = (size_t)st.st_size;
  mydb_blob *b = mydb__blob_new(size);
  if (!b) {
    mydb__close(fd);
    return mydb__seterr(MYDB_ENOMEM, "out of memory reading %s (%zu bytes)",
                        path, size);
  }
  ssize_t got = mydb__pread_all(fd, b->data, size, 0);
  if (got < 0) {
    rc = mydb__syserr(errno, "read", path);
    mydb__close(fd);
    mydb_blob_release(b);
    return rc;
  }
  mydb__close(fd);
  b->len = (size_t)got; /* shorter than fstat said: the hash will tell */
  b->data[b->len] = '\0';

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
                        "bytes hash to %s (%s)", digest, where_kind(tenant),
                        where_name(tenant), hex, path);
  }
  if (db->cache.max && b->len <= MYDB__CACHE_OBJ_MAX) {
    pthread_mutex_lock(&db->mu);
    mydb__cache_put(&db->cache, tenant, digest, b);
    pthread_mutex_unlock(&db->mu);
  }
  *out = b;
  return MYDB_OK;
}

int mydb_object_exists(mydb *db, const char *tenant, const char *digest) {
  int rc;
  char path[PATH_MAX];
  if ((rc = mydb__check_db(db)) || (rc = check_where(tenant)) ||
      (rc = mydb__check_digest(digest)))
    return rc;
  if (db->cache.max) {
    pthread_mutex_lock(&db->mu);
    int hit = mydb__cache_contains(&db->cache, tenant, digest);
    pthread_mutex_unlock(&db->mu);
    if (hit) return 1;
  }
  if ((rc = mydb__object_path(db, path, NULL, tenant, digest))) return rc;
  struct stat st;
  if (stat(path, &st) == 0) return 1;
  if (errno == ENOENT || errno == ENOTDIR) return 0;
  return mydb__syserr(errno, "stat", path);
}

int mydb_object_foreach(mydb *db, const char *tenant,
                        int (*fn)(const char *name, void *payload),
                        void *payload) {
  int rc;
  char dir[PATH_MAX], sub[PATH_MAX];
  if ((rc = mydb__check_db(db)) || (rc = check_where(tenant))) return rc;
  if (!fn) return mydb__seterr(MYDB_EINVAL, "object_foreach: fn is NULL");
  rc = tenant ? mydb__path(db, dir, tenant, "objects", NULL)
              : mydb__path(db, dir, "refs", NULL, NULL);
  if (rc) return rc;
  DIR *d = opendir(dir);
  if (!d) {
    if (errno == ENOENT || errno == ENOTDIR) {
      if (tenant)
        return mydb__seterr(MYDB_ENOTINIT, "tenant '%s' is not initialized",
                            tenant);
      return MYDB_OK;
    }
    return mydb__syserr(errno, "opendir", dir);
  }
  size_t dl = strlen(dir);
  rc = MYDB_OK;
  while (rc == MYDB_OK) {
    errno = 0;
    struct dirent *de = readdir(d);
    if (!de) {
      if (errno) rc = mydb__syserr(errno, "readdir", dir);
      break;
    }
    if (de->d_name[0] == '.') continue;
    size_t nl = strlen(de->d_name);
    if (dl + 1 + nl >= PATH_MAX) continue;
    memcpy(sub, dir, dl);
    sub[dl] = '/';
    memcpy(sub + dl + 1, de->d_name, nl + 1);
    DIR *sd = opendir(sub);
    if (!sd) {
      if (errno == ENOTDIR || errno == ENOENT) continue; /* stray file */
      rc = mydb__syserr(errno, "opendir", sub);
      break;
    }
    while (rc == MYDB_OK) {
      errno = 0;
      struct dirent *e = readdir(sd);
      if (!e) {
        if (errno) rc = mydb__syserr(errno, "readdir", sub);
        break;
      }
      if (e->d_name[0] == '.') continue;
      rc = fn(e->d_name, payload);
    }
    closedir(sd);
  }
  closedir(d);
  return rc;
}
