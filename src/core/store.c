/*
 * store.c - handles (choosing the backend from ROOT/.mydb) and tenants
 * (dispatched to the backend).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* ---------------------------------------------------------- ROOT/.mydb */

#define STORE_FILE ".mydb"

/* The backend named by ROOT/.mydb into name[16]: 1, or 0 when the file
 * does not exist, or an error. */
static int store_file_read(const mydb *db, char name[16]) {
  char p[PATH_MAX], buf[256];
  int rc = mydb__path(db, p, STORE_FILE, NULL, NULL);
  if (rc) return rc;
  int fd = mydb__open(p, O_RDONLY, 0);
  if (fd < 0) {
    if (errno == ENOENT) return 0;
    return mydb__syserr(errno, "open", p);
  }
  ssize_t n = mydb__pread_all(fd, buf, sizeof buf - 1, 0);
  int e = errno;
  mydb__close(fd);
  if (n < 0) return mydb__syserr(e, "read", p);
  buf[n] = '\0';
  static const char key[] = "\"backend\":\"";
  const char *k = strstr(buf, key);
  const char *v = k ? k + sizeof key - 1 : NULL;
  const char *q = v ? strchr(v, '"') : NULL;
  if (!q || q - v < 1 || q - v > 15)
    return mydb__seterr(MYDB_ECORRUPT, "%s does not name a backend", p);
  memcpy(name, v, (size_t)(q - v));
  name[q - v] = '\0';
  /* A later layout will say so here: refuse it rather than misread it
   * (no "format": written before the field existed, i.e. 1). */
  static const char fkey[] = "\"format\":";
  const char *f = strstr(buf, fkey);
  if (f) {
    f += sizeof fkey - 1;
    if (f[0] != '1' || (f[1] != '}' && f[1] != ',' && f[1] != ' ' &&
                        f[1] != '\n'))
      return mydb__seterr(MYDB_ECORRUPT, "%s: store format %.8s is not one "
                          "this mydb reads (1): a newer mydb wrote it", p, f);
  }
  return 1;
}

/* Creates ROOT/.mydb naming `name` unless it exists (link: the first
 * creator wins); then reads back what it holds into have[16]. */
static int store_file_create(mydb *db, const char *name, char have[16]) {
  char p[PATH_MAX], body[96];
  int rc = mydb__path(db, p, STORE_FILE, NULL, NULL);
  if (rc) return rc;
  int n = snprintf(body, sizeof body, "{\"backend\":\"%s\",\"format\":1}\n",
                   name);
  rc = mydb__file_write_atomic(db, p, db->rootlen, body, (size_t)n, 0, 1);
  if (rc) return rc;
  rc = store_file_read(db, have);
  if (rc == 0) return mydb__seterr(MYDB_EIO, "%s vanished", p);
  return rc < 0 ? rc : MYDB_OK;
}

static int known_backend(const char *name) {
  return strcmp(name, "loose") == 0 || strcmp(name, "pack") == 0 ||
         strcmp(name, "memory") == 0 || strcmp(name, "postgres") == 0;
}

/* ------------------------------------------------------------- handles */

/* fsyncs the directory that holds path's last component. */
static int sync_parent(char *path) {
  char *slash = strrchr(path, '/');
  int r;
  if (slash == NULL) {
    r = mydb__fsync_dir(".");
  } else if (slash == path) {
    r = mydb__fsync_dir("/");
  } else {
    *slash = '\0';
    r = mydb__fsync_dir(path);
    *slash = '/';
  }
  return r == 0 ? MYDB_OK : mydb__syserr(errno, "fsync of the parent of", path);
}

int mydb_open(mydb **out, const char *root, const mydb_options *opts_in) {
  mydb_options opts = MYDB_OPTIONS_INIT;
  if (!out) return mydb__seterr(MYDB_EINVAL, "mydb_open: out is NULL");
  *out = NULL;
  if (!root || !*root)
    return mydb__seterr(MYDB_EINVAL, "mydb_open: root is NULL or empty");
  if (opts_in) {
    if (opts_in->version == 1) /* a version-1 struct ends before backend */
      memcpy(&opts, opts_in, offsetof(mydb_options, backend));
    else if (opts_in->version == MYDB_OPTIONS_VERSION)
      opts = *opts_in;
    else
      return mydb__seterr(MYDB_EINVAL, "mydb_open: unsupported options "
                          "version %d (expected 1 or %d)", opts_in->version,
                          MYDB_OPTIONS_VERSION);
  }
  const char *want = opts.backend;
  if (want && !known_backend(want))
    return mydb__seterr(MYDB_EINVAL, "mydb_open: unknown backend '%.32s' "
                        "(loose, pack, memory or postgres)", want);
  size_t seg = opts.segment_bytes ? opts.segment_bytes : MYDB_SEGMENT_DEFAULT;
  if (seg < MYDB_SEGMENT_MIN || seg > MYDB_SEGMENT_MAX)
    return mydb__seterr(MYDB_EINVAL, "mydb_open: segment_bytes %zu out of "
                        "range (%zu to %zu)", seg, MYDB_SEGMENT_MIN,
                        MYDB_SEGMENT_MAX);
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
  db->fsync = opts.fsync ? 1 : 0;
  db->segment_bytes = seg;
  mydb__cache_init(&db->cache, opts.cache_bytes);
  int rc;
  if ((rc = pthread_mutex_init(&db->mu, NULL)) != 0) {
    rc = mydb__syserr(rc, "pthread_mutex_init", db->root);
    free(db->root);
    free(db);
    return rc;
  }

  if (!want && mydb__pg_root(db->root)) want = "postgres";
  if (want && (strcmp(want, "memory") == 0 || strcmp(want, "postgres") == 0)) {
    /* no files at all */
    rc = want[0] == 'm' ? mydb__backend_memory(db, &db->be)
                        : mydb__backend_postgres(db, &db->be);
    if (rc) goto fail;
    *out = db;
    return MYDB_OK;
  }

  /* mkdir -p ROOT */
  char p[PATH_MAX], have[16];
  int created = 0, any = 0;
  memcpy(p, db->root, rl);
  p[rl] = '\0';
  for (size_t i = 1; i <= rl; i++) {
    if (i == rl || p[i] == '/') {
      char save = p[i];
      p[i] = '\0';
      int made = 0;
      if (mydb__mkdir(p, &made) != 0) {
        rc = mydb__syserr(errno, "mkdir", p);
        goto fail;
      }
      /* A new directory's name lives in its parent: unsynced, a power cut
       * can take the whole store with it (issue 11, item 4). */
      if (made && db->fsync && (rc = sync_parent(p)) != MYDB_OK) goto fail;
      p[i] = save;
    }
  }
  /* Which backend: ROOT/.mydb, else a store of the original layout (refs/
   * without .mydb) is loose, else the store is new. */
  rc = store_file_read(db, have);
  if (rc < 0) goto fail;
  if (rc == 0) {
    struct stat st;
    if ((rc = mydb__path(db, p, "refs", NULL, NULL))) goto fail;
    if (stat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
      strcpy(have, "loose");
    } else {
      /* .tmp first: the atomic write of .mydb goes through it */
      if ((rc = mydb__path(db, p, ".tmp", NULL, NULL))) goto fail;
      if (mydb__mkdir(p, &created) != 0) {
        rc = mydb__syserr(errno, "mkdir", p);
        goto fail;
      }
      if ((rc = store_file_create(db, want ? want : MYDB_DEFAULT_BACKEND,
                                  have)))
        goto fail;
    }
  }
  if (!known_backend(have) || strcmp(have, "memory") == 0 ||
      strcmp(have, "postgres") == 0) {
    rc = mydb__seterr(MYDB_ECORRUPT, "%s/.mydb names an unknown backend "
                      "'%s'", db->root, have);
    goto fail;
  }
  if (want && strcmp(want, have) != 0) {
    rc = mydb__seterr(MYDB_EINVAL, "mydb_open: %s is a %s store, not %s "
                      "(copy it to change its backend: mydb.copy)", db->root,
                      have, want);
    goto fail;
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
  rc = strcmp(have, "pack") == 0 ? mydb__backend_pack(db, &db->be)
                                 : mydb__backend_loose(db, &db->be);
  if (rc) goto fail;
  *out = db;
  return MYDB_OK;

fail:
  pthread_mutex_destroy(&db->mu);
  free(db->root);
  free(db);
  return rc;
}

const char *mydb_backend_name(const mydb *db) {
  return db && db->be ? db->be->name : "";
}

void mydb_close(mydb *db) {
  if (!db) return;
  pthread_mutex_lock(&db->mu);
  mydb__locks_detach(db);
  mydb__cache_free(&db->cache);
  pthread_mutex_unlock(&db->mu);
  db->be->free(db->be);
  pthread_mutex_destroy(&db->mu);
  free(db->root);
  free(db);
}

/* ------------------------------------------------------------- tenants */

int mydb_tenant_init(mydb *db, const char *tenant) {
  int rc;
  if ((rc = mydb__check_db(db)) || (rc = mydb__check_tenant(tenant, NULL)))
    return rc;
  return db->be->tenant_init(db->be, tenant);
}

int mydb_tenant_exists(mydb *db, const char *tenant) {
  int rc;
  if ((rc = mydb__check_db(db)) || (rc = mydb__check_tenant(tenant, NULL)))
    return rc;
  return db->be->tenant_exists(db->be, tenant);
}

typedef struct names {
  char **v;
  size_t n, cap;
} names;

static int collect_name(const char *tenant, void *payload) {
  names *ns = payload;
  if (ns->n == ns->cap) {
    size_t nc = ns->cap ? ns->cap * 2 : 16;
    char **nn = realloc(ns->v, nc * sizeof *nn);
    if (!nn) return mydb__seterr(MYDB_ENOMEM, "out of memory");
    ns->v = nn;
    ns->cap = nc;
  }
  if (!(ns->v[ns->n] = strdup(tenant)))
    return mydb__seterr(MYDB_ENOMEM, "out of memory");
  ns->n++;
  return 0;
}

int mydb_tenant_foreach(mydb *db, int (*fn)(const char *tenant, void *payload),
                        void *payload) {
  int rc;
  if ((rc = mydb__check_db(db))) return rc;
  if (!fn) return mydb__seterr(MYDB_EINVAL, "tenant_foreach: fn is NULL");
  names ns = {NULL, 0, 0};
  rc = db->be->tenant_list(db->be, collect_name, &ns);
  if (rc == MYDB_OK && ns.n) {
    qsort(ns.v, ns.n, sizeof *ns.v, cmp_str);
    for (size_t i = 0; i < ns.n && rc == 0; i++) rc = fn(ns.v[i], payload);
  }
  for (size_t i = 0; i < ns.n; i++) free(ns.v[i]);
  free(ns.v);
  return rc;
}
