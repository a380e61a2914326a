/*
 * loose.c - the loose backend: the original layout (doc/FORMAT.md).
 *
 *   ROOT/refs/<digest[0:24]>/<digest>             shared refs
 *   ROOT/TENANT/objects/<digest[0:24]>/<digest>   objects as files
 *   ROOT/TENANT/packed                            packed objects (packed.c)
 *   ROOT/TENANT/head                              head journal (journal.c)
 *   ROOT/TENANT/lock                              flock()ed by writers
 *
 * What a tenant-lock holder writes (collection pieces, snapshots, commits:
 * a put, a batch, a commit) is staged and appended to TENANT/packed as one
 * group at its commit, synced before the journal line (packed.c); what it
 * stages but never commits is dropped at the release (lock_uncommitted).
 * Every other object - written without the lock, and the shared refs - is
 * written once as its own file, a temporary file renamed into place
 * (libgit2's loose-object write); an existing one is not written again.
 * Reads look in the packed index first, then for the file; stores without
 * a packed file (the original layout) read as before.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "loose.h"

/* ------------------------------------------------------------- tenants */

static int l_tenant_init(mydb_backend *be, const char *tenant) {
  mydb *db = be->db;
  char tdir[PATH_MAX], p[PATH_MAX];
  int rc;
  if ((rc = mydb__path(db, tdir, tenant, NULL, NULL))) return rc;
  if (mydb__mkdir(tdir, NULL) != 0)
    return mydb__syserr(errno, "mkdir", tdir);

  /* lock: an empty file, created if absent (never truncated). */
  if ((rc = mydb__tenant_lockfile(db, tenant))) return rc;

  /* head: the header line, installed with link(2) so that a concurrent
   * init can never replace a journal that already holds commits. */
  struct stat st;
  if ((rc = mydb__path(db, p, tenant, "head", NULL))) return rc;
  if (stat(p, &st) != 0) {
    if (errno != ENOENT) return mydb__syserr(errno, "stat", p);
    rc = mydb__file_write_atomic(db, p, strlen(tdir), MYDB__HEAD_HEADER,
                                 MYDB__HEAD_HEADER_LEN, 0, 1);
    if (rc) return rc;
  }

  /* objects/ last: its presence is what "initialized" means. */
  if ((rc = mydb__path(db, p, tenant, "objects", NULL))) return rc;
  if (mydb__mkdir(p, NULL) != 0) return mydb__syserr(errno, "mkdir", p);
  /* Synced even when another process made them: it may not have synced
   * them yet, and this init must not return before they are durable. */
  if (db->fsync) {
    if (mydb__fsync_dir(tdir) != 0) return mydb__syserr(errno, "fsync", tdir);
    if (mydb__fsync_dir(db->rootlen ? db->root : "/") != 0)
      return mydb__syserr(errno, "fsync", db->root);
  }
  return MYDB_OK;
}

static int l_tenant_exists(mydb_backend *be, const char *tenant) {
  return mydb__loose_initialized(be->db, tenant);
}

static int l_tenant_list(mydb_backend *be,
                         int (*fn)(const char *tenant, void *payload),
                         void *payload) {
  return mydb__tenant_dirs(be->db, "objects", fn, payload);
}

/* ------------------------------------------------------------- objects */

#define LB(be) ((mydb__loose *)(be))

static int l_object_write(mydb_backend *be, const char *tenant,
                          const char *digest, const void *buf, size_t len) {
  mydb *db = be->db;
  char path[PATH_MAX];
  size_t dirlen;
  int rc;
  if (tenant) { /* a lock holder's: staged for its commit (packed.c) */
    mydb__loose *lb = LB(be);
    struct mydb__lpk *pk;
    pthread_mutex_lock(&lb->mu);
    rc = mydb__lpk_get(lb, tenant, &pk);
    if (rc == MYDB_OK && mydb__lpk_holds(pk)) {
      unsigned char d[32];
      mydb__lpk_unhex(d, digest);
      rc = mydb__lpk_stage(db, pk, d, buf, len);
      pthread_mutex_unlock(&lb->mu);
      return rc;
    }
    pthread_mutex_unlock(&lb->mu);
    if (rc) return rc;
  }
  if ((rc = mydb__object_path(db, path, &dirlen, tenant, digest))) return rc;
  struct stat st;
  if (stat(path, &st) == 0) {
    /* Content-addressed: there. But a writable object may not be durable
     * yet (mydb__file_write_atomic): this write's commit must not become
     * durable before it, so finish its way to the disk. */
    if (db->fsync && (st.st_mode & 0222))
      return mydb__make_durable(path, dirlen, st.st_mode);
    return MYDB_OK;
  }
  if (errno != ENOENT && errno != ENOTDIR)
    return mydb__syserr(errno, "stat", path);
  rc = mydb__file_write_atomic(db, path, dirlen, buf, len,
                               MYDB__WA_MKPARENT | MYDB__WA_SEAL, 0);
  if (rc && tenant && mydb__loose_initialized(db, tenant) == 0)
    /* Not checked beforehand (one stat less per write): an uninitialized
     * tenant shows up as a failed mkdir of the fan-out directory. */
    return mydb__seterr(MYDB_ENOTINIT, "tenant '%s' is not initialized "
                        "(no %.*s)", tenant, (int)(dirlen - MYDB_FANOUT - 1),
                        path);
  return rc;
}

/* The packed copy of digest: MYDB_ENOTFOUND (no message) if none. */
static int packed_read(mydb_backend *be, mydb_blob **out, const char *tenant,
                       const char *digest) {
  mydb__loose *lb = LB(be);
  struct mydb__lpk *pk;
  unsigned char d[32];
  mydb__lpk_unhex(d, digest);
  pthread_mutex_lock(&lb->mu);
  int rc = mydb__lpk_get(lb, tenant, &pk);
  if (rc == MYDB_OK)
    rc = out ? mydb__lpk_read(pk, d, out) : mydb__lpk_exists(pk, d);
  pthread_mutex_unlock(&lb->mu);
  if (!out && rc == 0) rc = MYDB_ENOTFOUND;
  return rc;
}

static int l_object_read(mydb_backend *be, mydb_blob **out,
                         const char *tenant, const char *digest) {
  char path[PATH_MAX];
  int rc;
  if (tenant && (rc = packed_read(be, out, tenant, digest)) != MYDB_ENOTFOUND)
    return rc;
  if ((rc = mydb__object_path(be->db, path, NULL, tenant, digest))) return rc;
  int fd = mydb__open(path, O_RDONLY, 0);
  if (fd < 0) {
    if (errno == ENOENT || errno == ENOTDIR)
      return mydb__seterr(MYDB_ENOTFOUND, "object %s not found in %s %s",
                          digest, mydb__where_kind(tenant),
                          mydb__where_name(tenant));
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
                        "file", digest, mydb__where_kind(tenant),
                        mydb__where_name(tenant));
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
  *out = b;
  return MYDB_OK;
}

static int l_object_exists(mydb_backend *be, const char *tenant,
                           const char *digest) {
  char path[PATH_MAX];
  int rc;
  if (tenant) {
    rc = packed_read(be, NULL, tenant, digest);
    if (rc != MYDB_ENOTFOUND) return rc < 0 ? rc : 1;
  }
  if ((rc = mydb__object_path(be->db, path, NULL, tenant, digest))) return rc;
  struct stat st;
  if (stat(path, &st) == 0) return 1;
  if (errno == ENOENT || errno == ENOTDIR) return 0;
  return mydb__syserr(errno, "stat", path);
}

/* Walks the fan-out directories of TENANT/objects (NULL: ROOT/refs):
 * fn(dir, name, payload) for every file. */
static int walk_objects(mydb *db, const char *tenant,
                        int (*fn)(const char *sub, const char *name,
                                  void *payload),
                        void *payload) {
  char dir[PATH_MAX], sub[PATH_MAX];
  int rc = tenant ? mydb__path(db, dir, tenant, "objects", NULL)
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
      rc = fn(sub, e->d_name, payload);
    }
    closedir(sd);
  }
  closedir(d);
  return rc;
}

typedef struct foreach_ctx {
  int (*fn)(const char *name, void *payload);
  void *payload;
  mydb__loose *lb;
  struct mydb__lpk *pk; /* files also packed are named once */
} foreach_ctx;

static int foreach_cb(const char *sub, const char *name, void *payload) {
  (void)sub;
  foreach_ctx *c = payload;
  if (c->pk && strlen(name) == MYDB_DIGEST_HEX &&
      mydb_digest_valid(name, MYDB_DIGEST_HEX)) {
    pthread_mutex_lock(&c->lb->mu);
    int dup = mydb__lpk_has(c->pk, name);
    pthread_mutex_unlock(&c->lb->mu);
    if (dup) return 0;
  }
  return c->fn(name, c->payload);
}

/* The packed objects, then the files. */
static int l_object_foreach(mydb_backend *be, const char *tenant,
                            int (*fn)(const char *name, void *payload),
                            void *payload) {
  mydb__loose *lb = LB(be);
  foreach_ctx c = {fn, payload, lb, NULL};
  if (tenant) {
    char *v = NULL;
    size_t n = 0;
    pthread_mutex_lock(&lb->mu);
    int rc = mydb__lpk_get(lb, tenant, &c.pk);
    if (rc == MYDB_OK) rc = mydb__lpk_names(c.pk, &v, &n);
    pthread_mutex_unlock(&lb->mu);
    if (rc) return rc;
    if (n && mydb__loose_initialized(be->db, tenant) == 0) {
      free(v);
      return mydb__seterr(MYDB_ENOTINIT, "tenant '%s' is not initialized",
                          tenant);
    }
    for (size_t i = 0; rc == 0 && i < n; i++)
      rc = fn(v + i * MYDB_DIGEST_BUF, payload);
    free(v);
    if (rc) return rc;
  }
  return walk_objects(be->db, tenant, foreach_cb, &c);
}

/* ------------------------------------------------------------------ gc */

/* Objects whose file changed less than this before the mark are kept too
 * (file times may be coarser than the clock). */
#define GC_SLACK_NS ((int64_t)2000000000)

/* a: the time (files), b: the packed file's generation and end. */
static int l_gc_begin(mydb_backend *be, const char *tenant,
                      mydb_gc_mark *mark) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  mark->a = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec - GC_SLACK_NS;
  mark->b = 0;
  if (!tenant) return MYDB_OK;
  mydb__loose *lb = LB(be);
  struct mydb__lpk *pk;
  pthread_mutex_lock(&lb->mu);
  int rc = mydb__lpk_get(lb, tenant, &pk);
  if (rc == MYDB_OK) mark->b = mydb__lpk_mark(pk, &rc);
  pthread_mutex_unlock(&lb->mu);
  return rc;
}

typedef struct sweep_ctx {
  const mydb_gc_mark *mark;
  int (*keep)(const char *digest, void *payload);
  void *payload;
  mydb_gc_stats *st;
  int fsync;
} sweep_ctx;

static int sweep_cb(const char *sub, const char *name, void *payload) {
  sweep_ctx *c = payload;
  char p[PATH_MAX];
  size_t sl = strlen(sub), nl = strlen(name);
  if (sl + 1 + nl >= PATH_MAX) return 0;
  memcpy(p, sub, sl);
  p[sl] = '/';
  memcpy(p + sl + 1, name, nl + 1);
  struct stat st;
  if (lstat(p, &st) != 0) return 0; /* gone meanwhile */
  if (!S_ISREG(st.st_mode) || !mydb_digest_valid(name, nl)) return 0;
  int64_t t = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
  if (t >= c->mark->a) { /* written after the gc began: kept */
    c->st->objects_kept++;
    c->st->bytes_kept += (size_t)st.st_size;
    return 0;
  }
  int k = c->keep(name, c->payload);
  if (k < 0) return k;
  if (k) {
    c->st->objects_kept++;
    c->st->bytes_kept += (size_t)st.st_size;
    return 0;
  }
  if (unlink(p) != 0) {
    if (errno == ENOENT) return 0;
    return mydb__syserr(errno, "unlink", p);
  }
  c->st->objects_removed++;
  c->st->bytes_freed += (size_t)st.st_size;
  if (rmdir(sub) == 0 && c->fsync) { /* the fan-out directory emptied */
    char *slash = strrchr(p, '/');
    *slash = '\0';
    slash = strrchr(p, '/');
    if (slash) {
      *slash = '\0';
      (void)mydb__fsync_dir(p);
    }
  }
  return 0;
}

static int l_gc_sweep(mydb_backend *be, const char *tenant,
                      const mydb_gc_mark *mark,
                      int (*keep)(const char *digest, void *payload),
                      void *payload, mydb_gc_stats *st) {
  sweep_ctx c = {mark, keep, payload, st, be->db->fsync};
  int rc = walk_objects(be->db, tenant, sweep_cb, &c);
  if (rc || !tenant) return rc;
  /* the packed file: rewritten with what is kept (the lock is held) */
  mydb__loose *lb = LB(be);
  struct mydb__lpk *pk;
  pthread_mutex_lock(&lb->mu);
  rc = mydb__lpk_get(lb, tenant, &pk);
  if (rc == MYDB_OK)
    rc = mydb__lpk_sweep(be->db, pk, mark->b, keep, payload, st);
  pthread_mutex_unlock(&lb->mu);
  return rc;
}

/* The packed file's framing: every group's trailer and object's CRC. */
static int l_check(mydb_backend *be, const char *tenant,
                   void (*fn)(const char *what, const char *msg,
                              void *payload),
                   void *payload) {
  if (!tenant) return MYDB_OK;
  mydb__loose *lb = LB(be);
  struct mydb__lpk *pk;
  pthread_mutex_lock(&lb->mu);
  int rc = mydb__lpk_get(lb, tenant, &pk);
  if (rc == MYDB_OK) rc = mydb__lpk_check(pk, fn, payload);
  pthread_mutex_unlock(&lb->mu);
  return rc;
}

static int l_repack(mydb_backend *be, const char *tenant, mydb_gc_stats *st) {
  if (!tenant) return MYDB_OK;
  int done = 0;
  size_t dropped = 0;
  int rc = mydb__loose_head_compact(be, tenant, &done, &dropped);
  if (rc == MYDB_OK && done) st->records_dropped += dropped;
  return rc;
}

/* The journal's complete lines after the header. */
static int l_journal(mydb_backend *be, const char *tenant,
                     int (*fn)(const char *line, size_t len, void *payload),
                     void *payload) {
  char p[PATH_MAX];
  int rc = mydb__path(be->db, p, tenant, "head", NULL);
  if (rc) return rc;
  int fd = mydb__open(p, O_RDONLY, 0);
  if (fd < 0) return errno == ENOENT ? MYDB_OK : mydb__syserr(errno, "open", p);
  struct stat st;
  if (fstat(fd, &st) != 0) {
    rc = mydb__syserr(errno, "fstat", p);
    mydb__close(fd);
    return rc;
  }
  size_t n = (size_t)st.st_size;
  char *buf = malloc(n ? n : 1);
  if (!buf) {
    mydb__close(fd);
    return mydb__seterr(MYDB_ENOMEM, "out of memory reading %s", p);
  }
  ssize_t got = mydb__pread_all(fd, buf, n, 0);
  rc = got < 0 ? mydb__syserr(errno, "read", p) : MYDB_OK;
  mydb__close(fd);
  const char *q = buf, *e = buf + (got > 0 ? got : 0);
  int first = 1;
  while (rc == MYDB_OK && q < e) {
    const char *nl = memchr(q, '\n', (size_t)(e - q));
    if (!nl) break; /* a torn last line is not part of the history */
    if (!first) rc = fn(q, (size_t)(nl - q), payload);
    first = 0;
    q = nl + 1;
  }
  free(buf);
  return rc;
}

/* --------------------------------------------------------------- locks */

static int l_lock_acquire(mydb_backend *be, struct mydb_lock *lk) {
  mydb__loose *lb = (mydb__loose *)be;
  int fd = -1;
  pthread_mutex_lock(&lb->mu);
  for (size_t i = lb->nidle; i-- > 0;)
    if (strcmp(lb->idle[i].tenant, lk->tenant) == 0) {
      fd = lb->idle[i].fd;
      lb->idle[i] = lb->idle[--lb->nidle];
      break;
    }
  pthread_mutex_unlock(&lb->mu);
  int rc;
  if (fd < 0) {
    if ((rc = mydb__flock_tenant(be->db, lk->tenant, &lk->fd))) return rc;
  } else {
    if (mydb__flock(fd, LOCK_EX) != 0) { /* (blocks without lb->mu) */
      rc = mydb__syserr(errno, "flock", lk->tenant);
      mydb__close(fd);
      return rc;
    }
    lk->fd = fd;
  }
  /* the holder's writes are staged in the tenant's packed state */
  struct mydb__lpk *pk;
  pthread_mutex_lock(&lb->mu);
  rc = mydb__lpk_get(lb, lk->tenant, &pk);
  if (rc == MYDB_OK) {
    mydb__lpk_lock(pk);
    lk->impl = pk;
  }
  pthread_mutex_unlock(&lb->mu);
  if (rc) {
    mydb__close(lk->fd); /* (drops the flock) */
    lk->fd = -1;
  }
  return rc;
}

/* The objects staged under lk that no commit took (the dispatch forgets
 * them from its cache before the release drops them). */
static void l_lock_uncommitted(mydb_backend *be, struct mydb_lock *lk,
                               void (*fn)(const char *digest, void *payload),
                               void *payload) {
  mydb__loose *lb = LB(be);
  if (!lk->impl) return;
  char *v = NULL;
  pthread_mutex_lock(&lb->mu);
  size_t n = mydb__lpk_staged_names(lk->impl, &v);
  pthread_mutex_unlock(&lb->mu);
  if (n == (size_t)-1) {
    fn(NULL, payload); /* cannot name them: all of them */
    return;
  }
  for (size_t i = 0; i < n; i++) fn(v + i * MYDB_DIGEST_BUF, payload);
  free(v);
}

/* The staged objects go to TENANT/packed (durable) before the journal
 * line that names them. */
static int l_commit(mydb_backend *be, struct mydb_lock *lk,
                    const mydb_head_change *c, size_t n, const char *line,
                    size_t len, mydb__pending *pending) {
  mydb__loose *lb = LB(be);
  int rc = MYDB_OK;
  if (lk->impl) {
    pthread_mutex_lock(&lb->mu);
    mydb__lpk_claim(lk->impl); /* (a lock passed to another thread) */
    rc = mydb__lpk_append(be->db, lk->impl);
    pthread_mutex_unlock(&lb->mu);
  }
  if (rc) return rc;
  return mydb__loose_head_commit(be, lk, c, n, line, len, pending);
}

static void l_lock_release(mydb_backend *be, struct mydb_lock *lk) {
  mydb__loose *lb = (mydb__loose *)be;
  int fd = lk->fd;
  lk->fd = -1;
  if (lk->impl) {
    pthread_mutex_lock(&lb->mu);
    mydb__lpk_unlock(lk->impl); /* (drops what no commit took) */
    pthread_mutex_unlock(&lb->mu);
    lk->impl = NULL;
  }
  if (fd < 0) return;
  if (mydb__flock(fd, LOCK_UN) != 0) {
    mydb__close(fd); /* closing drops the flock too */
    return;
  }
  int drop = -1;
  pthread_mutex_lock(&lb->mu);
  size_t cap = sizeof lb->idle / sizeof lb->idle[0];
  if (lb->nidle == cap) { /* the oldest goes */
    drop = lb->idle[0].fd;
    memmove(lb->idle, lb->idle + 1, (cap - 1) * sizeof lb->idle[0]);
    lb->nidle--;
  }
  lb->idle[lb->nidle].fd = fd;
  memcpy(lb->idle[lb->nidle].tenant, lk->tenant, lk->tlen + 1);
  lb->nidle++;
  pthread_mutex_unlock(&lb->mu);
  if (drop >= 0) mydb__close(drop);
}

/* ---------------------------------------------------------------- free */

static void l_free(mydb_backend *be) {
  mydb__loose *lb = (mydb__loose *)be;
  pthread_mutex_lock(&lb->mu);
  mydb__loose_heads_free(lb);
  mydb__lpk_free_all(lb);
  for (size_t i = 0; i < lb->nidle; i++) mydb__close(lb->idle[i].fd);
  lb->nidle = 0;
  pthread_mutex_unlock(&lb->mu);
  pthread_mutex_destroy(&lb->mu);
  free(lb);
}

static const mydb_odb_ops loose_odb = {
    .version = MYDB__ODB_VERSION,
    .write = l_object_write,
    .read = l_object_read,
    .exists = l_object_exists,
    .foreach = l_object_foreach,
    .gc_begin = l_gc_begin,
    .gc_sweep = l_gc_sweep,
};

static const mydb_refdb_ops loose_refdb = {
    .version = MYDB__REFDB_VERSION,
    .get = mydb__loose_head_get,
    .foreach = mydb__loose_head_foreach,
    .lock_acquire = l_lock_acquire,
    .lock_release = l_lock_release,
    .lock_uncommitted = l_lock_uncommitted,
    .commit = l_commit,
    .journal = l_journal,
};

int mydb__backend_loose(mydb *db, mydb_backend **out) {
  mydb__loose *lb = calloc(1, sizeof *lb);
  if (!lb) return mydb__seterr(MYDB_ENOMEM, "out of memory");
  int rc = pthread_mutex_init(&lb->mu, NULL);
  if (rc) {
    free(lb);
    return mydb__syserr(rc, "pthread_mutex_init", db->root);
  }
  mydb_backend *be = &lb->be;
  be->version = MYDB__BACKEND_VERSION;
  be->name = "loose";
  be->db = db;
  be->odb = &loose_odb;
  be->refdb = &loose_refdb;
  be->tenant_init = l_tenant_init;
  be->tenant_exists = l_tenant_exists;
  be->tenant_list = l_tenant_list;
  be->repack = l_repack;
  be->check = l_check;
  be->free = l_free;
  *out = be;
  return MYDB_OK;
}
