/*
 * store.c - handles, argument checks, paths and tenants.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* -------------------------------------------------------------- checks */

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

/* --------------------------------------------------------------- paths */

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

int mydb__tenant_initialized(const mydb *db, const char *tenant) {
  char p[PATH_MAX];
  struct stat st;
  int rc = mydb__path(db, p, tenant, "objects", NULL);
  if (rc) return rc;
  if (stat(p, &st) == 0) return S_ISDIR(st.st_mode) ? 1 : 0;
  if (errno == ENOENT || errno == ENOTDIR) return 0;
  return mydb__syserr(errno, "stat", p);
}

/* ------------------------------------------------------------- handles */

int mydb_open(mydb **out, const char *root, const mydb_options *opts) {
  mydb_options defaults = MYDB_OPTIONS_INIT;
  if (!out) return mydb__seterr(MYDB_EINVAL, "mydb_open: out is NULL");
  *out = NULL;
  if (!root || !*root)
    return mydb__seterr(MYDB_EINVAL, "mydb_open: root is NULL or empty");
  if (!opts) opts = &defaults;
  if (opts->version != MYDB_OPTIONS_VERSION)
    return mydb__seterr(MYDB_EINVAL, "mydb_open: unsupported options "
                        "version %d (expected %d)", opts->version,
                        MYDB_OPTIONS_VERSION);
  size_t rl = strlen(root);
  while (rl > 1 && root[rl - 1] == '/') rl--; /* "a/b//" -> "a/b" */
  if (rl + 2 + MYDB_TENANT_MAX + 32 + MYDB_FANOUT + MYDB_DIGEST_HEX >=
      PATH_MAX)
    return mydb__seterr(MYDB_EINVAL, "mydb_open: root path too long");

  mydb *db = calloc(1, sizeof *db);
  if (!db || !(db->root = malloc(rl + 1))) {
    free(db);
    return mydb__seterr(MYDB_ENOMEM, "mydb_open: out of memory");
  }
  memcpy(db->root, root, rl);
  db->root[rl] = '\0';
  if (rl == 1 && root[0] == '/') { /* root "/" : avoid "//refs" */
    db->root[0] = '\0';
    rl = 0;
  }
  db->rootlen = rl;
  db->fsync = opts->fsync ? 1 : 0;
  mydb__cache_init(&db->cache, opts->cache_bytes);

  /* mkdir -p ROOT */
  char p[PATH_MAX];
  int rc, created = 0, any = 0;
  memcpy(p, db->root, rl);
  p[rl] = '\0';
  for (size_t i = 1; i <= rl; i++) {
    if (i == rl || p[i] == '/') {
      char save = p[i];
      p[i] = '\0';
      if (mydb__mkdir(p, NULL) != 0) {
        rc = mydb__syserr(errno, "mkdir", p);
        goto fail;
      }
      p[i] = save;
    }
  }
  const char *subs[2] = {"refs", ".tmp"};
  for (int i = 0; i < 2; i++) {
    if ((rc = mydb__path(db, p, subs[i], NULL, NULL))) goto fail;
    if (mydb__mkdir(p, &created) != 0) {
      rc = mydb__syserr(errno, "mkdir", p);
      goto fail;
    }
    any |= created;
  }
  /* Temporary files of writers killed mid-write are removed here. */
  if ((rc = mydb__path(db, p, ".tmp", NULL, NULL))) goto fail;
  (void)mydb__tmp_sweep(p, time(NULL));
  if (any && db->fsync && mydb__fsync_dir(rl ? db->root : "/") != 0) {
    rc = mydb__syserr(errno, "fsync", db->root);
    goto fail;
  }
  if ((rc = pthread_mutex_init(&db->mu, NULL)) != 0) {
    rc = mydb__syserr(rc, "pthread_mutex_init", db->root);
    goto fail;
  }
  *out = db;
  return MYDB_OK;

fail:
  free(db->root);
  free(db);
  return rc;
}

void mydb_close(mydb *db) {
  if (!db) return;
  pthread_mutex_lock(&db->mu);
  mydb__locks_detach(db);
  mydb__heads_free(db);
  mydb__cache_free(&db->cache);
  pthread_mutex_unlock(&db->mu);
  pthread_mutex_destroy(&db->mu);
  free(db->root);
  free(db);
}

/* ------------------------------------------------------------- tenants */

int mydb_tenant_init(mydb *db, const char *tenant) {
  char tdir[PATH_MAX], p[PATH_MAX];
  int rc, created_t = 0, created_o = 0;
  if ((rc = mydb__check_db(db)) || (rc = mydb__check_tenant(tenant, NULL)))
    return rc;
  if ((rc = mydb__path(db, tdir, tenant, NULL, NULL))) return rc;
  if (mydb__mkdir(tdir, &created_t) != 0)
    return mydb__syserr(errno, "mkdir", tdir);

  /* lock: an empty file, created if absent (never truncated). */
  if ((rc = mydb__path(db, p, tenant, "lock", NULL))) return rc;
  int fd = mydb__open(p, O_WRONLY | O_CREAT, 0666);
  if (fd < 0) return mydb__syserr(errno, "create", p);
  mydb__close(fd);

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
  if (mydb__mkdir(p, &created_o) != 0) return mydb__syserr(errno, "mkdir", p);
  if (db->fsync && (created_o || created_t)) {
    if (mydb__fsync_dir(tdir) != 0) return mydb__syserr(errno, "fsync", tdir);
    if (created_t && mydb__fsync_dir(db->rootlen ? db->root : "/") != 0)
      return mydb__syserr(errno, "fsync", db->root);
  }
  return MYDB_OK;
}

int mydb_tenant_exists(mydb *db, const char *tenant) {
  int rc;
  if ((rc = mydb__check_db(db)) || (rc = mydb__check_tenant(tenant, NULL)))
    return rc;
  return mydb__tenant_initialized(db, tenant);
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

int mydb_tenant_foreach(mydb *db, int (*fn)(const char *tenant, void *payload),
                        void *payload) {
  int rc;
  if ((rc = mydb__check_db(db))) return rc;
  if (!fn) return mydb__seterr(MYDB_EINVAL, "tenant_foreach: fn is NULL");
  DIR *d = opendir(db->rootlen ? db->root : "/");
  if (!d) return mydb__syserr(errno, "opendir", db->root);
  char **names = NULL;
  size_t n = 0, cap = 0;
  rc = MYDB_OK;
  for (;;) {
    errno = 0;
    struct dirent *de = readdir(d);
    if (!de) {
      if (errno) rc = mydb__syserr(errno, "readdir", db->root);
      break;
    }
    size_t l = strlen(de->d_name);
    if (!mydb_tenant_valid(de->d_name, l)) continue; /* ., refs, ... */
    if (mydb__tenant_initialized(db, de->d_name) != 1) continue;
    if (n == cap) {
      size_t nc = cap ? cap * 2 : 16;
      char **nn = realloc(names, nc * sizeof *nn);
      if (!nn) { rc = mydb__seterr(MYDB_ENOMEM, "out of memory"); break; }
      names = nn;
      cap = nc;
    }
    if (!(names[n] = strdup(de->d_name))) {
      rc = mydb__seterr(MYDB_ENOMEM, "out of memory");
      break;
    }
    n++;
  }
  closedir(d);
  if (rc == MYDB_OK && n) {
    qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n && rc == 0; i++) rc = fn(names[i], payload);
  }
  for (size_t i = 0; i < n; i++) free(names[i]);
  free(names);
  return rc;
}
