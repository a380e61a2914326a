/*
 * test_backends.c - the storage backends through the public API: the same
 * contract tests for loose, pack and memory, then what is particular to
 * each (pack: torn tails, damaged or missing index, segment roll-over,
 * corrupted records, group commit with threads; memory: no files, shared
 * handles). One program; prints "N passed, N failed" last.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mydb.h"

static int passed, failed;

#define xsnprintf(b, n, ...)                                  \
  do {                                                        \
    int w_ = snprintf(b, n, __VA_ARGS__);                     \
    if (w_ < 0 || (size_t)w_ >= (size_t)(n)) abort();         \
  } while (0)

#define CHECK(cond)                                                        \
  do {                                                                     \
    if (cond) {                                                            \
      passed++;                                                            \
    } else {                                                               \
      failed++;                                                            \
      fprintf(stderr, "%s:%d: [%s] CHECK(%s) failed (last error: %s)\n",   \
              __FILE__, __LINE__, cur_backend, #cond, mydb_errmsg());      \
    }                                                                      \
  } while (0)

#define CHECK_RC(expr, want)                                               \
  do {                                                                     \
    int rc_ = (expr), want_ = (want);                                      \
    if (rc_ == want_) {                                                    \
      passed++;                                                            \
    } else {                                                               \
      failed++;                                                            \
      fprintf(stderr, "%s:%d: [%s] %s returned %d (%s), expected %d (%s); "\
              "message: %s\n", __FILE__, __LINE__, cur_backend, #expr,     \
              rc_, mydb_errcode_name(rc_), want_,                          \
              mydb_errcode_name(want_), mydb_errmsg());                    \
    }                                                                      \
  } while (0)

static const char *cur_backend = "";
static char tmproot[PATH_MAX];

/* ------------------------------------------------------------- helpers */

static int rm_cb(const char *p, const struct stat *st, int flag,
                 struct FTW *ftw) {
  (void)st; (void)flag; (void)ftw;
  return remove(p);
}

static void rm_rf(const char *p) { nftw(p, rm_cb, 16, FTW_DEPTH | FTW_PHYS); }

static void make_root(char *out, const char *name) {
  xsnprintf(out, PATH_MAX, "%s/%s-%s", tmproot, cur_backend, name);
}

static mydb *open_be(const char *root, const char *backend, int fsync,
                     size_t cache, size_t seg) {
  mydb_options o = MYDB_OPTIONS_INIT;
  o.fsync = fsync;
  o.cache_bytes = cache;
  o.backend = backend;
  o.segment_bytes = seg;
  mydb *db = NULL;
  int rc = mydb_open(&db, root, &o);
  if (rc) {
    fprintf(stderr, "mydb_open(%s, %s): %s\n", root, backend, mydb_errmsg());
    exit(2);
  }
  return db;
}

static mydb *open_db(const char *root, int cache) {
  return open_be(root, cur_backend, 0, cache ? (size_t)64 << 20 : 0, 0);
}

static int count_cb(const char *name, void *payload) {
  (void)name;
  (*(int *)payload)++;
  return 0;
}

static int collect_cb(const char *name, void *payload) {
  strcat((char *)payload, name);
  strcat((char *)payload, ",");
  return 0;
}

static int collect_entry_cb(const char *e, size_t len, const char *d,
                            void *payload) {
  char *buf = payload;
  strncat(buf, e, len);
  strcat(buf, "=");
  strncat(buf, d, 4);
  strcat(buf, ",");
  return 0;
}

static int commit1(mydb *db, const char *tenant, const char *entry,
                   const char *digest) {
  mydb_lock *lk;
  int rc = mydb_lock_acquire(db, &lk, tenant);
  if (rc) return rc;
  mydb_head_change c = {entry, strlen(entry), digest};
  rc = mydb_head_commit(lk, &c, 1);
  mydb_lock_release(lk);
  return rc;
}

static int get_is(mydb *db, const char *tenant, const char *entry,
                  const char *want) {
  char d[MYDB_DIGEST_BUF];
  int rc = mydb_head_get(db, d, tenant, entry, strlen(entry));
  if (rc) return 0;
  return strcmp(d, want) == 0;
}

static int read_is(mydb *db, const char *tenant, const char *digest,
                   const void *want, size_t len) {
  mydb_blob *b = NULL;
  int rc = mydb_object_read(db, &b, tenant, digest);
  int ok = rc == 0 && mydb_blob_len(b) == len &&
           memcmp(mydb_blob_data(b), want, len) == 0;
  mydb_blob_release(b);
  return ok;
}

static int dir_entries(const char *p) {
  DIR *d = opendir(p);
  if (!d) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
  closedir(d);
  return n;
}

/* ----------------------------------------------- the common contract */

static void t_tenants(void) {
  char root[PATH_MAX];
  make_root(root, "tenants");
  mydb *db = open_db(root, 1);
  CHECK(strcmp(mydb_backend_name(db), cur_backend) == 0);
  CHECK_RC(mydb_tenant_exists(db, "a"), 0);
  CHECK_RC(mydb_tenant_init(db, "b"), 0);
  CHECK_RC(mydb_tenant_init(db, "a"), 0);
  CHECK_RC(mydb_tenant_init(db, "a"), 0); /* idempotent */
  CHECK_RC(mydb_tenant_init(db, "B"), 0);
  CHECK_RC(mydb_tenant_exists(db, "a"), 1);
  CHECK_RC(mydb_tenant_init(db, "refs"), MYDB_EINVAL);
  CHECK_RC(mydb_tenant_exists(db, ".x"), MYDB_EINVAL);
  char buf[256] = "";
  CHECK_RC(mydb_tenant_foreach(db, collect_cb, buf), 0);
  CHECK(strcmp(buf, "B,a,b,") == 0);
  mydb_close(db);
}

static void t_objects(void) {
  char root[PATH_MAX], d[MYDB_DIGEST_BUF], d2[MYDB_DIGEST_BUF];
  make_root(root, "objects");
  mydb *db = open_db(root, 0);
  CHECK_RC(mydb_object_write(db, d, "alice", "x", 1), MYDB_ENOTINIT);
  CHECK_RC(mydb_tenant_init(db, "alice"), 0);
  const char *v = "{\"hello\":\"world\"}";
  CHECK_RC(mydb_object_write(db, d, "alice", v, strlen(v)), 0);
  char want[MYDB_DIGEST_BUF];
  mydb_sha256_hex(want, v, strlen(v));
  CHECK(strcmp(d, want) == 0);
  CHECK_RC(mydb_object_write(db, d2, "alice", v, strlen(v)), 0);
  CHECK(strcmp(d, d2) == 0);
  int cnt = 0;
  CHECK_RC(mydb_object_foreach(db, "alice", count_cb, &cnt), 0);
  CHECK(cnt == 1);
  CHECK_RC(mydb_object_exists(db, "alice", d), 1);
  CHECK(read_is(db, "alice", d, v, strlen(v)));
  CHECK_RC(mydb_object_write(db, d2, "alice", NULL, 0), 0);
  CHECK(read_is(db, "alice", d2, "", 0));
  const char *zero =
      "0000000000000000000000000000000000000000000000000000000000000000";
  mydb_blob *b = (mydb_blob *)1;
  CHECK_RC(mydb_object_read(db, &b, "alice", zero), MYDB_ENOTFOUND);
  CHECK(b == NULL);
  CHECK_RC(mydb_object_exists(db, "alice", zero), 0);
  CHECK_RC(mydb_object_read(db, &b, "nobody", zero), MYDB_ENOTFOUND);
  CHECK_RC(mydb_object_foreach(db, "nobody", count_cb, &cnt), MYDB_ENOTINIT);
  /* refs: shared by tenants and handles */
  CHECK_RC(mydb_object_write(db, d, NULL, "binary\0ref", 10), 0);
  mydb *db2 = open_db(root, 1);
  CHECK(read_is(db2, NULL, d, "binary\0ref", 10));
  CHECK_RC(mydb_object_exists(db2, NULL, d), 1);
  CHECK_RC(mydb_object_read(db2, &b, "alice", d), MYDB_ENOTFOUND);
  cnt = 0;
  CHECK_RC(mydb_object_foreach(db2, NULL, count_cb, &cnt), 0);
  CHECK(cnt == 1);
  /* a large object round-trips */
  size_t big = (size_t)3 << 20;
  char *bb = malloc(big);
  for (size_t i = 0; i < big; i++) bb[i] = (char)(i * 7 + (i >> 9));
  CHECK_RC(mydb_object_write(db2, d, "alice", bb, big), 0);
  CHECK(read_is(db, "alice", d, bb, big));
  free(bb);
  mydb_close(db2);
  mydb_close(db);
}

static void t_heads(void) {
  char root[PATH_MAX], d1[MYDB_DIGEST_BUF], d2[MYDB_DIGEST_BUF];
  char out[MYDB_DIGEST_BUF];
  make_root(root, "heads");
  mydb *db = open_db(root, 1);
  mydb_lock *lk = NULL;
  CHECK_RC(mydb_lock_acquire(db, &lk, "t"), MYDB_ENOTINIT);
  CHECK_RC(mydb_head_get(db, out, "t", "x", 1), MYDB_ENOTINIT);
  CHECK_RC(mydb_tenant_init(db, "t"), 0);
  CHECK_RC(mydb_head_get(db, out, "t", "x", 1), MYDB_ENOTFOUND);
  CHECK_RC(mydb_object_write(db, d1, "t", "one", 3), 0);
  CHECK_RC(mydb_object_write(db, d2, "t", "two", 3), 0);
  CHECK_RC(commit1(db, "t", "a", d1), 0);
  CHECK(get_is(db, "t", "a", d1));
  /* several changes in one commit, and a removal */
  CHECK_RC(mydb_lock_acquire(db, &lk, "t"), 0);
  mydb_head_change ch[3] = {{"b", 1, d2}, {"c\"q", 3, d1}, {"a", 1, NULL}};
  CHECK_RC(mydb_head_commit(lk, ch, 3), 0);
  CHECK(mydb_lock_head_get(lk, out, "b", 1) == 0 && strcmp(out, d2) == 0);
  CHECK_RC(mydb_head_commit(lk, ch, 0), MYDB_EINVAL);
  mydb_lock_release(lk);
  CHECK_RC(mydb_head_get(db, out, "t", "a", 1), MYDB_ENOTFOUND);
  char buf[256] = "";
  CHECK_RC(mydb_head_foreach(db, "t", collect_entry_cb, buf), 0);
  char want[256];
  xsnprintf(want, sizeof want, "b=%.4s,c\"q=%.4s,", d2, d1);
  CHECK(strcmp(buf, want) == 0);
  /* another handle sees it at once */
  mydb *db2 = open_db(root, 0);
  CHECK(get_is(db2, "t", "b", d2));
  CHECK_RC(commit1(db2, "t", "z", d2), 0);
  CHECK(get_is(db, "t", "z", d2));
  /* commit and release */
  CHECK_RC(mydb_lock_acquire(db, &lk, "t"), 0);
  mydb_head_change c1 = {"w", 1, d1};
  CHECK_RC(mydb_head_commit_release(lk, &c1, 1), 0);
  CHECK(get_is(db2, "t", "w", d1));
  CHECK_RC(mydb_lock_acquire(db, &lk, "t"), 0); /* it was released */
  mydb_head_change bad = {"", 0, d1};
  CHECK_RC(mydb_head_commit_release(lk, &bad, 1), MYDB_EINVAL);
  CHECK_RC(mydb_lock_acquire(db, &lk, "t"), 0); /* released on failure too */
  mydb_lock_release(lk);
  /* a lock outliving its handle */
  CHECK_RC(mydb_lock_acquire(db2, &lk, "t"), 0);
  mydb_close(db2);
  CHECK_RC(mydb_head_commit(lk, &c1, 1), MYDB_ECLOSED);
  CHECK_RC(mydb_lock_head_get(lk, out, "w", 1), MYDB_ECLOSED);
  mydb_lock_release(lk);
  CHECK_RC(commit1(db, "t", "v", d1), 0); /* the lock was dropped */
  mydb_close(db);
}

typedef struct lock_arg {
  mydb *db;
  int *counter;
  int iters;
  int err;
} lock_arg;

static void *lock_worker(void *p) {
  lock_arg *a = p;
  char d[MYDB_DIGEST_BUF];
  for (int i = 0; i < a->iters; i++) {
    mydb_lock *lk;
    if (mydb_lock_acquire(a->db, &lk, "t")) { a->err++; continue; }
    int v = *a->counter;
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%d-%p", i, (void *)a);
    if (mydb_object_write(a->db, d, "t", buf, (size_t)n)) a->err++;
    *a->counter = v + 1;
    mydb_head_change c = {"e", 1, d};
    if (i % 2) {
      if (mydb_head_commit_release(lk, &c, 1)) a->err++;
    } else {
      if (mydb_head_commit(lk, &c, 1)) a->err++;
      mydb_lock_release(lk);
    }
  }
  return NULL;
}

/* Threads on two handles: the lock excludes (the counter is exact). */
static void t_lock_threads(void) {
  char root[PATH_MAX];
  make_root(root, "threads");
  mydb *db1 = open_db(root, 1), *db2 = open_db(root, 0);
  CHECK_RC(mydb_tenant_init(db1, "t"), 0);
  int counter = 0;
  lock_arg args[4];
  pthread_t th[4];
  for (int i = 0; i < 4; i++) {
    args[i] = (lock_arg){i % 2 ? db2 : db1, &counter, 100, 0};
    pthread_create(&th[i], NULL, lock_worker, &args[i]);
  }
  int errs = 0;
  for (int i = 0; i < 4; i++) {
    pthread_join(th[i], NULL);
    errs += args[i].err;
  }
  CHECK(errs == 0);
  CHECK(counter == 400);
  int cnt = 0;
  CHECK_RC(mydb_object_foreach(db2, "t", count_cb, &cnt), 0);
  CHECK(cnt == 400);
  mydb_close(db1);
  mydb_close(db2);
}

typedef struct keep_set {
  const char *keep[4];
  int calls;
} keep_set;

static int keep_fn(const char *digest, void *payload) {
  keep_set *k = payload;
  k->calls++;
  for (int i = 0; i < 4 && k->keep[i]; i++)
    if (strcmp(k->keep[i], digest) == 0) return 1;
  return 0;
}

static void t_gc(void) {
  char root[PATH_MAX], a[MYDB_DIGEST_BUF], b[MYDB_DIGEST_BUF];
  char c[MYDB_DIGEST_BUF], r[MYDB_DIGEST_BUF];
  make_root(root, "gc");
  mydb *db = open_db(root, 1);
  CHECK_RC(mydb_tenant_init(db, "t"), 0);
  CHECK_RC(mydb_object_write(db, a, "t", "keep me", 7), 0);
  CHECK_RC(mydb_object_write(db, b, "t", "drop me", 7), 0);
  CHECK_RC(mydb_object_write(db, r, NULL, "a ref", 5), 0);
  CHECK_RC(commit1(db, "t", "e", a), 0);
  if (strcmp(cur_backend, "loose") == 0) {
    /* loose keeps files changed in the last seconds: age them */
    char p[PATH_MAX];
    struct timespec ts[2] = {{1000000, 0}, {1000000, 0}};
    xsnprintf(p, sizeof p, "%s/t/objects/%.24s/%s", root, b, b);
    utimensat(AT_FDCWD, p, ts, 0);
    xsnprintf(p, sizeof p, "%s/t/objects/%.24s/%s", root, a, a);
    utimensat(AT_FDCWD, p, ts, 0);
    xsnprintf(p, sizeof p, "%s/refs/%.24s/%s", root, r, r);
    utimensat(AT_FDCWD, p, ts, 0);
  }
  mydb_gc_mark m;
  CHECK_RC(mydb_gc_begin(db, "t", &m), 0);
  /* written after the gc began: kept whatever keep() says */
  if (strcmp(cur_backend, "loose") == 0) sleep(0); /* mtime now > mark */
  CHECK_RC(mydb_object_write(db, c, "t", "new one", 7), 0);
  mydb_lock *lk;
  CHECK_RC(mydb_lock_acquire(db, &lk, "t"), 0);
  mydb_gc_stats st;
  memset(&st, 0, sizeof st);
  keep_set ks = {{a, NULL}, 0};
  CHECK_RC(mydb_gc_sweep(db, "t", &m, keep_fn, &ks, &st), 0);
  mydb_lock_release(lk);
  CHECK(st.objects_removed == 1);
  CHECK(st.bytes_freed == 7);
  CHECK_RC(mydb_object_exists(db, "t", b), 0);
  mydb_blob *bl = NULL;
  CHECK_RC(mydb_object_read(db, &bl, "t", b), MYDB_ENOTFOUND);
  CHECK(read_is(db, "t", a, "keep me", 7));
  CHECK(read_is(db, "t", c, "new one", 7));
  CHECK(get_is(db, "t", "e", a));
  /* refs */
  CHECK_RC(mydb_gc_begin(db, NULL, &m), 0);
  memset(&st, 0, sizeof st);
  keep_set none = {{NULL}, 0};
  CHECK_RC(mydb_gc_sweep(db, NULL, &m, keep_fn, &none, &st), 0);
  CHECK(st.objects_removed == 1 && none.calls == 1);
  CHECK_RC(mydb_object_exists(db, NULL, r), 0);
  /* the store still works, and a second handle agrees */
  mydb *db2 = open_db(root, 0);
  CHECK_RC(mydb_object_exists(db2, "t", b), 0);
  CHECK(read_is(db2, "t", a, "keep me", 7));
  CHECK(get_is(db2, "t", "e", a));
  memset(&st, 0, sizeof st);
  CHECK_RC(mydb_repack(db2, "t", &st), 0);
  CHECK(read_is(db2, "t", a, "keep me", 7));
  CHECK(get_is(db2, "t", "e", a));
  CHECK_RC(commit1(db2, "t", "f", c), 0);
  CHECK(get_is(db, "t", "f", c));
  mydb_close(db2);
  mydb_close(db);
}

static void common(const char *backend) {
  cur_backend = backend;
  t_tenants();
  t_objects();
  t_heads();
  t_lock_threads();
  t_gc();
}

/* ------------------------------------------------------------- options */

static void t_options(void) {
  char root[PATH_MAX], p[PATH_MAX];
  cur_backend = "options";
  make_root(root, "store");
  mydb *db = NULL;
  mydb_options o = MYDB_OPTIONS_INIT;
  o.backend = "nope";
  CHECK_RC(mydb_open(&db, root, &o), MYDB_EINVAL);
  CHECK(strstr(mydb_errmsg(), "nope") != NULL);
  o.backend = "pack";
  o.segment_bytes = 10;
  CHECK_RC(mydb_open(&db, root, &o), MYDB_EINVAL);
  /* a version-1 struct (no backend field): accepted, loose */
  struct { int version; int fsync; size_t cache_bytes; } v1 = {1, 0, 0};
  CHECK_RC(mydb_open(&db, root, (const mydb_options *)(const void *)&v1), 0);
  CHECK(strcmp(mydb_backend_name(db), "loose") == 0);
  mydb_close(db);
  xsnprintf(p, sizeof p, "%s/.mydb", root);
  struct stat st;
  CHECK(stat(p, &st) == 0);
  /* the store remembers its backend */
  o = (mydb_options)MYDB_OPTIONS_INIT;
  o.backend = "pack";
  CHECK_RC(mydb_open(&db, root, &o), MYDB_EINVAL);
  CHECK(strstr(mydb_errmsg(), "loose") && strstr(mydb_errmsg(), "pack"));
  o.backend = NULL;
  CHECK_RC(mydb_open(&db, root, &o), 0);
  CHECK(strcmp(mydb_backend_name(db), "loose") == 0);
  mydb_close(db);
  /* memory: no files, not even ROOT */
  make_root(root, "mem/deep");
  o.backend = "memory";
  CHECK_RC(mydb_open(&db, root, &o), 0);
  CHECK(strcmp(mydb_backend_name(db), "memory") == 0);
  CHECK_RC(mydb_tenant_init(db, "t"), 0);
  char d[MYDB_DIGEST_BUF];
  CHECK_RC(mydb_object_write(db, d, "t", "x", 1), 0);
  make_root(p, "mem");
  CHECK(stat(p, &st) != 0 && errno == ENOENT);
  /* handles on the same root string share the store; "root/" is the same */
  mydb *db2 = NULL;
  char root2[PATH_MAX];
  xsnprintf(root2, sizeof root2, "%s//", root);
  CHECK_RC(mydb_open(&db2, root2, &o), 0);
  CHECK_RC(mydb_object_exists(db2, "t", d), 1);
  mydb_close(db);
  CHECK_RC(mydb_object_exists(db2, "t", d), 1);
  mydb_close(db2);
  /* ... and it is gone with the last handle */
  CHECK_RC(mydb_open(&db, root, &o), 0);
  CHECK_RC(mydb_tenant_exists(db, "t"), 0);
  mydb_close(db);
  /* a store of the original layout (refs/, no .mydb) is loose */
  make_root(root, "legacy");
  mkdir(root, 0777);
  xsnprintf(p, sizeof p, "%s/refs", root);
  mkdir(p, 0777);
  o.backend = "pack";
  CHECK_RC(mydb_open(&db, root, &o), MYDB_EINVAL);
  o.backend = "loose";
  CHECK_RC(mydb_open(&db, root, &o), 0);
  mydb_close(db);
  xsnprintf(p, sizeof p, "%s/.mydb", root);
  CHECK(stat(p, &st) != 0); /* not rewritten */
}

int main(int argc, char **argv) {
  xsnprintf(tmproot, sizeof tmproot, "/tmp/mydb-backends-XXXXXX");
  if (!mkdtemp(tmproot)) {
    perror("mkdtemp");
    return 2;
  }
  const char *only = argc > 1 ? argv[1] : NULL;
  t_options();
  const char *all[] = {"loose", "memory"};
  for (int i = 0; i < 2; i++)
    if (!only || strcmp(only, all[i]) == 0) common(all[i]);
  (void)dir_entries;
  rm_rf(tmproot);
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
