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
/* white-box: the group-commit test reaches into the pack backend */
#include "pack.h"

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
static const char *self_exe = "/proc/self/exe"; /* argv[0] (valgrind: not it) */
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
  /* a reader's blob outlives the object gc removes (the memory backend
   * hands out the stored bytes themselves: no cache here to copy them) */
  mydb *nocache = open_db(root, 0);
  mydb_blob *held = NULL;
  CHECK_RC(mydb_object_read(nocache, &held, "t", b), 0);
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
  /* pack counts the segment bytes it gave back */
  CHECK(st.bytes_freed == 7 || strcmp(cur_backend, "pack") == 0);
  CHECK_RC(mydb_object_exists(db, "t", b), 0);
  mydb_blob *bl = NULL;
  CHECK_RC(mydb_object_read(db, &bl, "t", b), MYDB_ENOTFOUND);
  CHECK(held && mydb_blob_len(held) == 7 && memcmp(mydb_blob_data(held), "drop me", 8) == 0);
  mydb_close(nocache);
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
  /* ... and every handle of the store (the memory backend's store is
   * gone with the last one; the block the bytes live in stays) */
  CHECK(memcmp(mydb_blob_data(held), "drop me", 8) == 0);
  mydb_blob_release(held);
}

static int journal_cb(const char *line, size_t len, void *payload) {
  char *buf = payload;
  strncat(buf, line, len);
  strcat(buf, "\n");
  return 0;
}

/* The head history in the loose journal's format, whatever the backend. */
static void t_journal(void) {
  char root[PATH_MAX], d[MYDB_DIGEST_BUF];
  make_root(root, "journal");
  mydb *db = open_db(root, 1);
  CHECK_RC(mydb_tenant_init(db, "t"), 0);
  CHECK_RC(mydb_object_write(db, d, "t", "x", 1), 0);
  CHECK_RC(commit1(db, "t", "a", d), 0);
  mydb_lock *lk;
  CHECK_RC(mydb_lock_acquire(db, &lk, "t"), 0);
  mydb_head_change ch[2] = {{"b\"", 2, d}, {"a", 1, NULL}};
  CHECK_RC(mydb_head_commit(lk, ch, 2), 0);
  mydb_lock_release(lk);
  char buf[1024] = "", want[1024];
  int rc = mydb_head_journal(db, "t", journal_cb, buf);
  if (strcmp(cur_backend, "memory") == 0) {
    CHECK_RC(rc, MYDB_EINVAL);
  } else {
    CHECK_RC(rc, 0);
    xsnprintf(want, sizeof want, "{\"mydb_head\":1}\n"
              "[[\"a\",\"%s\"]]\n[[\"b\\\"\",\"%s\"],[\"a\",null]]\n", d, d);
    CHECK(strcmp(buf, want) == 0);
  }
  CHECK_RC(mydb_head_journal(db, "nope", journal_cb, buf),
           strcmp(cur_backend, "memory") == 0 ? MYDB_EINVAL : MYDB_ENOTINIT);
  mydb_close(db);
}

/* Compare-and-set of heads (the ref store's update, mydb_head_cas): all or
 * nothing over several entries, a conflict changes nothing, and threads
 * with handles of their own that count with CAS retries lose no update. */
typedef struct cas_arg {
  const char *root;
  int iters, err;
} cas_arg;

static void *cas_worker(void *p) {
  cas_arg *a = p;
  mydb *db = open_db(a->root, 0);
  for (int i = 0; i < a->iters;) {
    char cur[MYDB_DIGEST_BUF], next[MYDB_DIGEST_BUF], val[32];
    mydb_blob *b = NULL;
    if (mydb_head_get(db, cur, "t", "n", 1) != MYDB_OK ||
        mydb_object_read(db, &b, "t", cur) != MYDB_OK) {
      a->err++;
      break;
    }
    long v = strtol(mydb_blob_data(b), NULL, 10);
    mydb_blob_release(b);
    int len = snprintf(val, sizeof val, "%ld", v + 1);
    if (mydb_object_write(db, next, "t", val, (size_t)len) != MYDB_OK) {
      a->err++;
      break;
    }
    mydb_head_change c = {"n", 1, next};
    const char *expect[1] = {cur};
    int rc = mydb_head_cas(db, "t", &c, expect, 1);
    if (rc == MYDB_OK) i++;
    else if (rc != MYDB_ECONFLICT) {
      a->err++;
      break;
    }
  }
  mydb_close(db);
  return NULL;
}

static void t_cas(void) {
  char root[PATH_MAX], d0[MYDB_DIGEST_BUF], d1[MYDB_DIGEST_BUF];
  char out[MYDB_DIGEST_BUF];
  make_root(root, "cas");
  mydb *db = open_db(root, 1);
  CHECK_RC(mydb_tenant_init(db, "t"), 0);
  CHECK_RC(mydb_object_write(db, d0, "t", "0", 1), 0);
  CHECK_RC(mydb_object_write(db, d1, "t", "1", 1), 0);
  mydb_head_change c[2] = {{"n", 1, d0}, {"m", 1, d1}};
  const char *absent[2] = {NULL, NULL};
  CHECK_RC(mydb_head_cas(db, "t", c, absent, 2), 0); /* create both */
  CHECK(get_is(db, "t", "n", d0) && get_is(db, "t", "m", d1));
  CHECK_RC(mydb_head_cas(db, "t", c, absent, 2), MYDB_ECONFLICT);
  CHECK(strstr(mydb_errmsg(), "'n'") != NULL);
  /* one stale expectation: nothing changes */
  mydb_head_change swap[2] = {{"n", 1, d1}, {"m", 1, d0}};
  const char *stale[2] = {d0, d0};
  CHECK_RC(mydb_head_cas(db, "t", swap, stale, 2), MYDB_ECONFLICT);
  CHECK(get_is(db, "t", "n", d0) && get_is(db, "t", "m", d1));
  const char *right[2] = {d0, d1};
  CHECK_RC(mydb_head_cas(db, "t", swap, right, 2), 0);
  CHECK(get_is(db, "t", "n", d1) && get_is(db, "t", "m", d0));
  /* delete on a match only */
  mydb_head_change del = {"m", 1, NULL};
  const char *want_d1[1] = {d1};
  CHECK_RC(mydb_head_cas(db, "t", &del, want_d1, 1), MYDB_ECONFLICT);
  const char *want_d0[1] = {d0};
  CHECK_RC(mydb_head_cas(db, "t", &del, want_d0, 1), 0);
  CHECK_RC(mydb_head_get(db, out, "t", "m", 1), MYDB_ENOTFOUND);
  /* bad input */
  CHECK_RC(mydb_head_cas(db, "t", &del, NULL, 1), MYDB_EINVAL);
  const char *bad[1] = {"xyz"};
  CHECK_RC(mydb_head_cas(db, "t", &del, bad, 1), MYDB_EINVAL);
  CHECK_RC(mydb_head_cas(db, "nope", &del, want_d0, 1), MYDB_ENOTINIT);
  CHECK_RC(mydb_head_cas(db, "../x", &del, want_d0, 1), MYDB_EINVAL);
  /* counting from 1 with four threads, 50 increments each */
  pthread_t th[4];
  cas_arg args[4];
  for (int i = 0; i < 4; i++) {
    args[i] = (cas_arg){root, 50, 0};
    CHECK(pthread_create(&th[i], NULL, cas_worker, &args[i]) == 0);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(th[i], NULL);
    CHECK(args[i].err == 0);
  }
  mydb_blob *b = NULL;
  CHECK_RC(mydb_head_get(db, out, "t", "n", 1), 0);
  CHECK_RC(mydb_object_read(db, &b, "t", out), 0);
  CHECK(b && strcmp(mydb_blob_data(b), "201") == 0);
  mydb_blob_release(b);
  CHECK(strcmp(mydb_errcode_name(MYDB_ECONFLICT), "conflict") == 0);
  mydb_close(db);
}

/* mydb_object_read_into: a scan's reads into one buffer, grown as
 * needed; verified; objects another handle wrote after this one looked are
 * still found (a miss looks again). */
static int into_is(mydb *db, char **buf, size_t *cap, const char *tenant,
                   const char *digest, const void *want, size_t len) {
  size_t got = 12345;
  int rc = mydb_object_read_into(db, buf, cap, &got, tenant, digest);
  return rc == 0 && got == len && *cap > len && (*buf)[len] == '\0' &&
         (len == 0 || memcmp(*buf, want, len) == 0);
}

static void t_read_into(void) {
  char root[PATH_MAX], d[3][MYDB_DIGEST_BUF], late[MYDB_DIGEST_BUF];
  make_root(root, "read_into");
  static char big[20000];
  for (size_t i = 0; i < sizeof big; i++) big[i] = (char)('a' + i % 26);
  for (int cache = 0; cache < 2; cache++) {
    mydb *w = open_db(root, cache), *r = open_db(root, cache);
    CHECK_RC(mydb_tenant_init(w, "t"), 0);
    CHECK_RC(mydb_object_write(w, d[0], "t", "alpha", 5), 0);
    CHECK_RC(mydb_object_write(w, d[1], "t", big, sizeof big), 0);
    CHECK_RC(mydb_object_write(w, d[2], "t", "", 0), 0);
    CHECK_RC(commit1(w, "t", "e", d[0]), 0);
    char *buf = NULL;
    size_t cap = 0, len = 1;
    for (int h = 0; h < 2; h++) {
      mydb *db = h ? r : w;
      CHECK(into_is(db, &buf, &cap, "t", d[0], "alpha", 5));
      CHECK(into_is(db, &buf, &cap, "t", d[1], big, sizeof big));
      CHECK(into_is(db, &buf, &cap, "t", d[2], "", 0));
      CHECK(into_is(db, &buf, &cap, "t", d[0], "alpha", 5));
    }
    /* written through w after r looked: r finds it */
    CHECK_RC(mydb_object_write(w, late, "t", "late", 4), 0);
    CHECK_RC(commit1(w, "t", "f", late), 0);
    CHECK(into_is(r, &buf, &cap, "t", late, "late", 4));
    /* errors: the buffer stays the caller's */
    char absent[MYDB_DIGEST_BUF];
    mydb_sha256_hex(absent, "absent", 6);
    CHECK_RC(mydb_object_read_into(r, &buf, &cap, &len, "t", absent),
             MYDB_ENOTFOUND);
    CHECK(len == 0);
    CHECK_RC(mydb_object_read_into(r, &buf, &cap, &len, "nobody", absent),
             MYDB_ENOTFOUND);
    CHECK_RC(mydb_object_read_into(r, &buf, &cap, &len, "t", "zz"),
             MYDB_EINVAL);
    CHECK_RC(mydb_object_read_into(r, &buf, &cap, &len, ".t", d[0]),
             MYDB_EINVAL);
    CHECK_RC(mydb_object_read_into(r, NULL, &cap, &len, "t", d[0]),
             MYDB_EINVAL);
    CHECK_RC(mydb_object_read_into(r, &buf, NULL, &len, "t", d[0]),
             MYDB_EINVAL);
    CHECK_RC(mydb_object_read_into(r, &buf, &cap, NULL, "t", d[0]),
             MYDB_EINVAL);
    CHECK_RC(mydb_object_read_into(NULL, &buf, &cap, &len, "t", d[0]),
             MYDB_EINVAL);
    CHECK(into_is(r, &buf, &cap, "t", d[0], "alpha", 5));
    free(buf);
    /* a buffer the caller allocated */
    cap = 2;
    buf = malloc(cap);
    CHECK(buf && into_is(r, &buf, &cap, "t", d[1], big, sizeof big));
    free(buf);
    buf = NULL;
    mydb_close(r);
    if (strcmp(cur_backend, "memory") != 0) { /* (gone with its handles) */
      r = open_db(root, cache);
      CHECK(into_is(r, &buf, &cap, "t", late, "late", 4));
      free(buf);
      mydb_close(r);
    }
    mydb_close(w);
  }
}

static void common(const char *backend) {
  cur_backend = backend;
  t_tenants();
  t_objects();
  t_heads();
  t_lock_threads();
  t_gc();
  t_journal();
  t_cas();
  t_read_into();
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
  /* a version-1 struct (no backend field): accepted, the default backend */
  struct { int version; int fsync; size_t cache_bytes; } v1 = {1, 0, 0};
  CHECK_RC(mydb_open(&db, root, (const mydb_options *)(const void *)&v1), 0);
  CHECK(strcmp(mydb_backend_name(db), MYDB_DEFAULT_BACKEND) == 0);
  CHECK(strcmp(MYDB_DEFAULT_BACKEND, "pack") == 0);
  mydb_close(db);
  xsnprintf(p, sizeof p, "%s/.mydb", root);
  struct stat st;
  CHECK(stat(p, &st) == 0);
  /* the store remembers its backend */
  o = (mydb_options)MYDB_OPTIONS_INIT;
  o.backend = "loose";
  CHECK_RC(mydb_open(&db, root, &o), MYDB_EINVAL);
  CHECK(strstr(mydb_errmsg(), "loose") && strstr(mydb_errmsg(), "pack"));
  o.backend = NULL;
  CHECK_RC(mydb_open(&db, root, &o), 0);
  CHECK(strcmp(mydb_backend_name(db), "pack") == 0);
  mydb_close(db);
  /* a store of the original layout (refs/, no .mydb) is loose */
  make_root(root, "options-original");
  xsnprintf(p, sizeof p, "%s/refs", root);
  CHECK(mkdir(root, 0777) == 0 && mkdir(p, 0777) == 0);
  CHECK_RC(mydb_open(&db, root, NULL), 0);
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

/* ------------------------------------------------------------ pack */

static long fsize(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 ? (long)st.st_size : -1;
}

static void seg_path(char *out, const char *root, const char *tenant,
                     int num) {
  xsnprintf(out, PATH_MAX, "%s/%s/pack/%06d.seg", root, tenant, num);
}

static void append_bytes(const char *p, const void *b, size_t n) {
  int fd = open(p, O_WRONLY | O_APPEND);
  if (fd < 0 || write(fd, b, n) != (ssize_t)n) {
    perror(p);
    exit(2);
  }
  close(fd);
}

static void poke(const char *p, long off, char c) {
  int fd = open(p, O_RDWR);
  if (fd < 0 || pwrite(fd, &c, 1, off) != 1) {
    perror(p);
    exit(2);
  }
  close(fd);
}

static void write_at(const char *p, long off, const void *b, size_t n) {
  int fd = open(p, O_RDWR);
  if (fd < 0 || pwrite(fd, b, n, off) != (ssize_t)n) {
    perror(p);
    exit(2);
  }
  close(fd);
}

static char peek(const char *p, long off) {
  char c = 0;
  int fd = open(p, O_RDONLY);
  if (fd < 0 || pread(fd, &c, 1, off) != 1) {
    perror(p);
    exit(2);
  }
  close(fd);
  return c;
}

/* A record header as src/backend/pack/log.c writes it. */
/* Where a segment's records end: a durable writer's zone of zeros may
 * follow them (log.c, "Zones"). */
static long data_end(const char *p) {
  int fd = open(p, O_RDONLY);
  if (fd < 0) return -1;
  long off = 0;
  unsigned char h[24];
  while (pread(fd, h, 24, off) == 24 && memcmp(h, "MDBR", 4) == 0) {
    uint64_t len = 0;
    for (int i = 0; i < 8; i++) len |= (uint64_t)h[8 + i] << (8 * i);
    off += 24 + (long)len;
  }
  close(fd);
  return off;
}

/* Cuts a segment back to its records (drops the zone), so that bytes
 * appended next follow the last record as a killed appender's would. */
static long cut_zone(const char *p) {
  long end = data_end(p);
  if (end < 0 || truncate(p, end) != 0) {
    perror(p);
    exit(2);
  }
  return end;
}

static void make_hdr(unsigned char h[24], int type, uint64_t len,
                     uint32_t pcrc) {
  memcpy(h, "MDBR", 4);
  h[4] = (unsigned char)type;
  h[5] = h[6] = h[7] = 0;
  for (int i = 0; i < 8; i++) h[8 + i] = (unsigned char)(len >> (8 * i));
  for (int i = 0; i < 4; i++) h[16 + i] = (unsigned char)(pcrc >> (8 * i));
  uint32_t c = mydb__crc32(0, h, 20);
  for (int i = 0; i < 4; i++) h[20 + i] = (unsigned char)(c >> (8 * i));
}

static mydb *open_pack(const char *root, int fsync, size_t seg) {
  return open_be(root, "pack", fsync, 0, seg);
}

/* A store with tenant t: objects "one".."three", entry e -> "three"
 * (fsync on: all of it below the durable point). */
static void fill3(const char *root, char d[3][MYDB_DIGEST_BUF]) {
  mydb *db = open_pack(root, 1, 0);
  CHECK_RC(mydb_tenant_init(db, "t"), 0);
  CHECK_RC(mydb_object_write(db, d[0], "t", "one", 3), 0);
  CHECK_RC(mydb_object_write(db, d[1], "t", "two", 3), 0);
  CHECK_RC(mydb_object_write(db, d[2], "t", "three", 5), 0);
  CHECK_RC(commit1(db, "t", "e", d[2]), 0);
  mydb_close(db);
}

static int all_there(mydb *db, char d[3][MYDB_DIGEST_BUF]) {
  return read_is(db, "t", d[0], "one", 3) && read_is(db, "t", d[1], "two", 3)
         && read_is(db, "t", d[2], "three", 5) && get_is(db, "t", "e", d[2]);
}

static void t_pack_torn(void) {
  char root[PATH_MAX], sp[PATH_MAX], d[3][MYDB_DIGEST_BUF];
  make_root(root, "torn");
  fill3(root, d);
  seg_path(sp, root, "t", 1);
  CHECK(fsize(sp) > data_end(sp)); /* a zone follows the records */
  long sz = cut_zone(sp);
  CHECK(sz > 0);
  unsigned char h[24];
  /* 1. a partial header */
  append_bytes(sp, "MDBR\x01\0", 6);
  mydb *db = open_pack(root, 0, 0);
  CHECK(all_there(db, d));
  mydb_close(db);
  CHECK(fsize(sp) == sz); /* truncated on open */
  /* 2. a whole header, a partial payload */
  make_hdr(h, 1, 100, 0);
  append_bytes(sp, h, 24);
  append_bytes(sp, "0123456789", 10);
  db = open_pack(root, 0, 0);
  CHECK(all_there(db, d));
  mydb_close(db);
  CHECK(fsize(sp) == sz);
  /* 3. a whole last record with a bad checksum */
  make_hdr(h, 2, 2, 12345);
  append_bytes(sp, h, 24);
  append_bytes(sp, "[]", 2);
  db = open_pack(root, 0, 0);
  CHECK(all_there(db, d));
  mydb_close(db);
  CHECK(fsize(sp) == sz);
  /* 4. zeros (lost pages after a power cut) */
  char z[5000];
  memset(z, 0, sizeof z);
  append_bytes(sp, z, sizeof z);
  db = open_pack(root, 0, 0);
  CHECK(all_there(db, d));
  /* a reader that is not the first to open also ignores a torn tail */
  append_bytes(sp, "MDBR", 4);
  mydb *db2 = open_pack(root, 0, 0);
  CHECK(all_there(db2, d));
  /* the next append truncates it, and both handles see the new commit */
  char d4[MYDB_DIGEST_BUF];
  CHECK_RC(mydb_object_write(db2, d4, "t", "four", 4), 0);
  CHECK_RC(commit1(db2, "t", "f", d4), 0);
  CHECK(get_is(db, "t", "f", d4) && read_is(db, "t", d4, "four", 4));
  mydb_close(db2);
  mydb_close(db);
  db = open_pack(root, 0, 0);
  CHECK(all_there(db, d) && get_is(db, "t", "f", d4));
  mydb_close(db);
}

typedef struct problems {
  int n;
  char first[512];
} problems;

static void problem_cb(const char *what, const char *msg, void *payload) {
  problems *p = payload;
  if (p->n++ == 0) snprintf(p->first, sizeof p->first, "%s: %s", what, msg);
}

static void t_pack_corrupt(void) {
  char root[PATH_MAX], sp[PATH_MAX], d[3][MYDB_DIGEST_BUF], out[65];
  /* a flipped payload byte in a middle record: the whole log refuses */
  make_root(root, "corrupt1");
  fill3(root, d);
  seg_path(sp, root, "t", 1);
  long sz = fsize(sp);
  /* the GEN record "[]" is 26 bytes; then "one" at 26: payload at 26+24+32 */
  CHECK(peek(sp, 26 + 24 + 32) == 'o');
  poke(sp, 26 + 24 + 32, 'O');
  mydb *db = open_pack(root, 0, 0);
  CHECK_RC(mydb_head_get(db, out, "t", "e", 1), MYDB_ECORRUPT);
  CHECK(strstr(mydb_errmsg(), "000001") && strstr(mydb_errmsg(), "offset 26"));
  mydb_blob *b = NULL;
  CHECK_RC(mydb_object_read(db, &b, "t", d[2]), MYDB_ECORRUPT);
  problems pr = {0, ""};
  CHECK_RC(mydb_check(db, "t", problem_cb, &pr), 0);
  CHECK(pr.n == 1 && strstr(pr.first, "checksum"));
  mydb_close(db);
  CHECK(fsize(sp) == sz); /* nothing was "repaired" away */
  /* a damaged header in the middle */
  poke(sp, 26 + 24 + 32, 'o');
  poke(sp, 26 + 1, 'X');
  db = open_pack(root, 0, 0);
  CHECK_RC(mydb_head_get(db, out, "t", "e", 1), MYDB_ECORRUPT);
  CHECK(strstr(mydb_errmsg(), "header"));
  mydb_close(db);
  poke(sp, 26 + 1, 'D');
  db = open_pack(root, 0, 0);
  CHECK(all_there(db, d));
  pr.n = 0;
  CHECK_RC(mydb_check(db, "t", problem_cb, &pr), 0);
  CHECK(pr.n == 0);
  mydb_close(db);

  /* behind an index (not scanned on open): the object's digest check and
   * mydb_check find it */
  make_root(root, "corrupt2");
  db = open_pack(root, 1, 1024);
  CHECK_RC(mydb_tenant_init(db, "t"), 0);
  char dd[40][MYDB_DIGEST_BUF];
  char buf[200];
  for (int i = 0; i < 40; i++) {
    int n = snprintf(buf, sizeof buf, "object number %d %0100d", i, i);
    CHECK_RC(mydb_object_write(db, dd[i], "t", buf, (size_t)n), 0);
  }
  CHECK_RC(commit1(db, "t", "e", dd[39]), 0);
  mydb_close(db);
  seg_path(sp, root, "t", 1);
  CHECK(peek(sp, 26 + 24 + 32) == 'o');
  poke(sp, 26 + 24 + 32, 'O');
  xsnprintf(buf, sizeof buf, "%s/t/pack/index", root);
  CHECK(fsize(buf) > 0);
  db = open_pack(root, 0, 1024);
  CHECK(get_is(db, "t", "e", dd[39]));
  CHECK_RC(mydb_object_read(db, &b, "t", dd[0]), MYDB_ECORRUPT);
  {
    /* a scan's read verifies too */
    char *rb = NULL;
    size_t rcap = 0, rlen = 7;
    CHECK_RC(mydb_object_read_into(db, &rb, &rcap, &rlen, "t", dd[0]),
             MYDB_ECORRUPT);
    CHECK(rlen == 0 && strstr(mydb_errmsg(), "corrupt"));
    CHECK_RC(mydb_object_read_into(db, &rb, &rcap, &rlen, "t", dd[2]), 0);
    CHECK(rlen > 17 && memcmp(rb, "object number 2 ", 16) == 0);
    free(rb);
  }
  CHECK(read_is(db, "t", dd[1], NULL, 0) == 0 ||
        mydb_object_read(db, &b, "t", dd[1]) == 0);
  mydb_blob_release(b);
  pr.n = 0;
  CHECK_RC(mydb_check(db, "t", problem_cb, &pr), 0);
  CHECK(pr.n == 1);
  mydb_close(db);
}

/* Value i of the index tests ("v<i>-" and i in 100 digits). */
static int index_value(char *buf, size_t cap, int i) {
  return snprintf(buf, cap, "v%d-%0100d", i, i);
}

/* Whether objects d[0..n) read back as index_value(0..n). */
static int index_values_read(mydb *db, char (*d)[MYDB_DIGEST_BUF], int n) {
  char buf[256];
  int ok = 1;
  for (int i = 0; i < n; i++) ok &= read_is(db, "t", d[i], buf, (size_t)index_value(buf, sizeof buf, i));
  return ok;
}

static void t_pack_index(void) {
  char root[PATH_MAX], p[PATH_MAX], d[200][MYDB_DIGEST_BUF];
  char buf[256];
  make_root(root, "index");
  mydb *db = open_pack(root, 0, 4096);
  CHECK_RC(mydb_tenant_init(db, "t"), 0);
  for (int i = 0; i < 200; i++) {
    int n = index_value(buf, sizeof buf, i);
    CHECK_RC(mydb_object_write(db, d[i], "t", buf, (size_t)n), 0);
    if (i % 10 == 9) {
      xsnprintf(p, sizeof p, "e%d", i / 10);
      CHECK_RC(commit1(db, "t", p, d[i]), 0);
    }
  }
  mydb_close(db);
  seg_path(p, root, "t", 2);
  CHECK(fsize(p) > 0); /* rolled over */
  seg_path(p, root, "t", 1);
  CHECK(fsize(p) <= 4096);
  xsnprintf(p, sizeof p, "%s/t/pack/index", root);
  CHECK(fsize(p) > 0); /* written at roll-over */
  char saved[65536];
  long isz = fsize(p);
  int ifd = open(p, O_RDONLY);
  CHECK(isz > 0 && isz <= (long)sizeof saved && ifd >= 0 &&
        read(ifd, saved, (size_t)isz) == isz);
  close(ifd);
  for (int round = 0; round < 3; round++) {
    if (round == 1) unlink(p);                 /* missing: rebuilt */
    if (round == 2) {                          /* damaged: rebuilt */
      ifd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
      CHECK(write(ifd, saved, (size_t)isz) == isz);
      close(ifd);
      poke(p, 50, (char)(peek(p, 50) ^ 1));
    }
    db = open_pack(root, 0, 4096);
    CHECK(index_values_read(db, d, 200));
    for (int i = 0; i < 20; i++) {
      char e[16];
      xsnprintf(e, sizeof e, "e%d", i);
      CHECK(get_is(db, "t", e, d[i * 10 + 9]));
    }
    int cnt = 0;
    CHECK_RC(mydb_object_foreach(db, "t", count_cb, &cnt), 0);
    CHECK(cnt == 200);
    mydb_close(db);
  }
}

/* Whether the file at p is a whole index: its last 32 bytes the SHA-256
 * of the rest (as read_index checks it). */
static int index_whole(const char *p) {
  long n = fsize(p);
  if (n < 72) return 0;
  char *b = malloc((size_t)n);
  int fd = open(p, O_RDONLY);
  int ok = b && fd >= 0 && read(fd, b, (size_t)n) == n;
  if (fd >= 0) close(fd);
  unsigned char md[32];
  ok = ok && mydb__sha256(md, b, (size_t)n - 32) == 0 && memcmp(md, b + n - 32, 32) == 0;
  free(b);
  return ok;
}

/* The index is written over the old one in place (no new file renamed
 * over it): one longer than its content (a crash between the write and
 * the truncation, or a shorter index written over a longer one) is not
 * used - the log is scanned - and the next index written is truncated to
 * its own length. */
static void t_pack_index_in_place(void) {
  char root[PATH_MAX], p[PATH_MAX], ip[PATH_MAX], d[101][MYDB_DIGEST_BUF];
  char buf[256];
  make_root(root, "index-in-place");
  mydb *db = open_pack(root, 0, 4096);
  CHECK_RC(mydb_tenant_init(db, "t"), 0);
  for (int i = 0; i < 100; i++) {
    int n = index_value(buf, sizeof buf, i);
    CHECK_RC(mydb_object_write(db, d[i], "t", buf, (size_t)n), 0);
    CHECK_RC(commit1(db, "t", "e", d[i]), 0);
  }
  mydb_close(db);
  xsnprintf(ip, sizeof ip, "%s/t/pack/index", root);
  long isz = fsize(ip);
  CHECK(isz > 0 && index_whole(ip));
  /* 64 KiB of stale bytes after the index's own */
  int fd = open(ip, O_WRONLY | O_APPEND);
  static char junk[65536];
  memset(junk, 0x5a, sizeof junk);
  CHECK(fd >= 0 && write(fd, junk, sizeof junk) == (ssize_t)sizeof junk);
  if (fd >= 0) close(fd);
  CHECK(!index_whole(ip));
  db = open_pack(root, 0, 4096);
  CHECK(index_values_read(db, d, 100));
  CHECK(get_is(db, "t", "e", d[99]));
  /* more puts: roll-overs rewrite the index (the one read was refused) */
  for (int i = 0; i < 60; i++) {
    int n = snprintf(buf, sizeof buf, "w%d-%0100d", i, i);
    CHECK_RC(mydb_object_write(db, d[100], "t", buf, (size_t)n), 0);
    CHECK_RC(commit1(db, "t", "e", d[100]), 0);
  }
  mydb_close(db);
  /* written in place: truncated to its own bytes, whole, and used */
  CHECK(fsize(ip) > isz && fsize(ip) < isz + 65536 && index_whole(ip));
  db = open_pack(root, 0, 4096);
  CHECK(get_is(db, "t", "e", d[100]));
  CHECK(index_values_read(db, d, 100));
  mydb_close(db);
  seg_path(p, root, "t", 1);
  CHECK(fsize(p) > 0);
}

/* A roll-over rewrites the index only once the log has grown past it by
 * PACK_INDEX_GROWTH (8) times its size: a few rewrites over a hundred
 * roll-overs; a handle opened while the writer still runs loads the older
 * index and scans the log after it. */
static void t_pack_index_growth(void) {
  enum { N = 3000 };
  static char d[N][MYDB_DIGEST_BUF];
  char root[PATH_MAX], p[PATH_MAX], sp[PATH_MAX], buf[256];
  make_root(root, "idxgrowth");
  mydb *db = open_pack(root, 0, 4096);
  CHECK_RC(mydb_tenant_init(db, "t"), 0);
  xsnprintf(p, sizeof p, "%s/t/pack/index", root);
  long last = -1;
  int rewrites = 0, ok = 1;
  for (int i = 0; i < N; i++) {
    int n = snprintf(buf, sizeof buf, "g%d-%0100d", i, i);
    ok &= mydb_object_write(db, d[i], "t", buf, (size_t)n) == MYDB_OK;
    if (i % 10 == 9) ok &= commit1(db, "t", "e", d[i]) == MYDB_OK;
    long size = fsize(p); /* (it only grows: each rewrite holds more) */
    if (size != last) {
      rewrites++;
      last = size;
    }
  }
  CHECK(ok);
  int segs = 0;
  for (int k = 1; k < 1000; k++) {
    seg_path(sp, root, "t", k);
    if (fsize(sp) > 0) segs++;
  }
  CHECK(segs > 80);
  /* at ~30, ~130, ~580 and ~2,600 objects, where each roll-over wrote it */
  CHECK(rewrites >= 3 && rewrites <= 6);
  mydb *r = open_pack(root, 0, 4096);
  for (int i = 0; i < N; i++) {
    int n = snprintf(buf, sizeof buf, "g%d-%0100d", i, i);
    ok &= read_is(r, "t", d[i], buf, (size_t)n);
  }
  CHECK(ok);
  CHECK(get_is(r, "t", "e", d[N - 1]));
  mydb_close(r);
  mydb_close(db);
}

/* The whole file at p (malloc'd; *n its size), or NULL. */
static char *slurp(const char *p, size_t *n) {
  long sz = fsize(p);
  int fd = sz >= 0 ? open(p, O_RDONLY) : -1;
  char *b = fd >= 0 ? malloc((size_t)sz + 1) : NULL;
  if (b && read(fd, b, (size_t)sz) != sz) {
    free(b);
    b = NULL;
  }
  if (fd >= 0) close(fd);
  *n = b ? (size_t)sz : 0;
  return b;
}

static void put_file(const char *p, const char *b, size_t n) {
  int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  CHECK(fd >= 0 && write(fd, b, n) == (ssize_t)n);
  if (fd >= 0) close(fd);
}

/* An index from before a repack, left by a crash that lost the repack's
 * own index (never synced) and all but one removal of an old segment:
 * every segment it names is there, but the chain's start says it is
 * stale, and the space is read from the start. (A roll-over rewrites the
 * index only now and then: it may be much older than the last segment.) */
static void t_pack_index_before_repack(void) {
  enum { N = 300, OLD = 64 };
  static char d[N][MYDB_DIGEST_BUF];
  static char *segs[OLD];
  static size_t seglen[OLD];
  char root[PATH_MAX], p[PATH_MAX], buf[256];
  make_root(root, "idxrepack");
  mydb *db = open_pack(root, 0, 4096);
  CHECK_RC(mydb_tenant_init(db, "t"), 0);
  int ok = 1;
  for (int i = 0; i < N; i++) {
    int n = snprintf(buf, sizeof buf, "r%d-%0100d", i, i);
    ok &= mydb_object_write(db, d[i], "t", buf, (size_t)n) == MYDB_OK;
    if (i % 10 == 9) ok &= commit1(db, "t", "e", d[i]) == MYDB_OK;
  }
  CHECK(ok);
  xsnprintf(p, sizeof p, "%s/t/pack/index", root);
  size_t ilen;
  char *index = slurp(p, &ilen);
  CHECK(index != NULL);
  int nold = 0;
  for (int k = 1; k < OLD; k++) {
    seg_path(p, root, "t", k);
    segs[k] = fsize(p) >= 0 ? slurp(p, &seglen[k]) : NULL;
    if (segs[k]) nold = k;
  }
  CHECK(nold > 10);
  mydb_gc_stats st;
  memset(&st, 0, sizeof st);
  CHECK_RC(mydb_repack(db, "t", &st), 0);
  mydb_close(db);
  /* the crash: the old index back, the old segments too but the last */
  xsnprintf(p, sizeof p, "%s/t/pack/index", root);
  put_file(p, index, ilen);
  for (int k = 1; k < nold; k++) {
    seg_path(p, root, "t", k);
    if (segs[k]) put_file(p, segs[k], seglen[k]);
  }
  db = open_pack(root, 0, 4096);
  for (int i = 0; i < N; i++) {
    int n = snprintf(buf, sizeof buf, "r%d-%0100d", i, i);
    ok &= read_is(db, "t", d[i], buf, (size_t)n);
  }
  CHECK(ok);
  CHECK(get_is(db, "t", "e", d[N - 1]));
  problems pr = {0, ""};
  CHECK_RC(mydb_check(db, "t", problem_cb, &pr), 0);
  CHECK(pr.n == 0);
  mydb_close(db);
  free(index);
  for (int k = 1; k < OLD; k++) free(segs[k]);
}

/* A reader opened before a writer rolls over follows the seals. */
static void t_pack_rollover_reader(void) {
  char root[PATH_MAX], d[MYDB_DIGEST_BUF], buf[300];
  make_root(root, "follow");
  mydb *w = open_pack(root, 0, 2048), *r = open_pack(root, 0, 2048);
  CHECK_RC(mydb_tenant_init(w, "t"), 0);
  CHECK_RC(mydb_object_write(w, d, "t", "first", 5), 0);
  CHECK_RC(commit1(w, "t", "e", d), 0);
  CHECK(get_is(r, "t", "e", d));
  int ok = 1;
  for (int i = 0; i < 100; i++) {
    int n = snprintf(buf, sizeof buf, "%d %0200d", i, i);
    ok &= mydb_object_write(w, d, "t", buf, (size_t)n) == 0;
    ok &= commit1(w, "t", "e", d) == 0;
    ok &= get_is(r, "t", "e", d) && read_is(r, "t", d, buf, (size_t)n);
  }
  CHECK(ok);
  char p[PATH_MAX];
  seg_path(p, root, "t", 8);
  CHECK(fsize(p) >= 0);
  mydb_close(r);
  mydb_close(w);
}

static void t_pack_truncated(void) {
  char root[PATH_MAX], sp[PATH_MAX], d[3][MYDB_DIGEST_BUF], out[65];
  /* the active segment cut below what was made durable */
  make_root(root, "trunc1");
  mydb *db = open_pack(root, 1, 0);
  CHECK_RC(mydb_tenant_init(db, "t"), 0);
  CHECK_RC(mydb_object_write(db, d[0], "t", "one", 3), 0);
  CHECK_RC(commit1(db, "t", "e", d[0]), 0);
  mydb_close(db);
  seg_path(sp, root, "t", 1);
  CHECK(truncate(sp, data_end(sp) - 10) == 0);
  db = open_pack(root, 0, 0);
  CHECK_RC(mydb_head_get(db, out, "t", "e", 1), MYDB_ECORRUPT);
  CHECK(strstr(mydb_errmsg(), "truncated"));
  mydb_close(db);
  /* a sealed segment cut (its seal gone): the next one gives it away */
  make_root(root, "trunc2");
  db = open_pack(root, 0, 1024);
  CHECK_RC(mydb_tenant_init(db, "t"), 0);
  char buf[300];
  for (int i = 0; i < 30; i++) {
    int n = snprintf(buf, sizeof buf, "%d %0100d", i, i);
    CHECK_RC(mydb_object_write(db, d[0], "t", buf, (size_t)n), 0);
    CHECK_RC(commit1(db, "t", "e", d[0]), 0);
  }
  mydb_close(db);
  seg_path(sp, root, "t", 1);
  CHECK(truncate(sp, fsize(sp) - 40) == 0);
  xsnprintf(buf, sizeof buf, "%s/t/pack/index", root);
  unlink(buf);
  db = open_pack(root, 0, 1024);
  CHECK_RC(mydb_head_get(db, out, "t", "e", 1), MYDB_ECORRUPT);
  mydb_close(db);
  /* a missing middle segment */
  make_root(root, "trunc3");
  fill3(root, d);
  db = open_pack(root, 0, 1024);
  for (int i = 0; i < 30; i++) {
    int n = snprintf(buf, sizeof buf, "%d %0100d", i, i);
    CHECK_RC(mydb_object_write(db, d[0], "t", buf, (size_t)n), 0);
  }
  CHECK_RC(commit1(db, "t", "e", d[0]), 0);
  mydb_close(db);
  seg_path(sp, root, "t", 2);
  CHECK(unlink(sp) == 0);
  db = open_pack(root, 0, 1024);
  CHECK_RC(mydb_head_get(db, out, "t", "e", 1), MYDB_ECORRUPT);
  mydb_close(db);
}

typedef struct gc_arg {
  mydb *db;
  int id, n, err;
} gc_arg;

static void *gc_worker(void *p) {
  gc_arg *a = p;
  char d[MYDB_DIGEST_BUF], e[32], buf[64];
  xsnprintf(e, sizeof e, "w%d", a->id);
  for (int i = 0; i < a->n; i++) {
    int n = snprintf(buf, sizeof buf, "%d:%d", a->id, i);
    mydb_lock *lk;
    if (mydb_lock_acquire(a->db, &lk, "t")) { a->err++; continue; }
    if (mydb_object_write(a->db, d, "t", buf, (size_t)n)) a->err++;
    mydb_head_change c = {e, strlen(e), d};
    if (mydb_head_commit_release(lk, &c, 1)) a->err++;
  }
  return NULL;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Group commit: 8 threads (4 on a shared handle, 4 on their own), fsync
 * on; every commit lands. */
static void t_pack_group_commit(void) {
  char root[PATH_MAX];
  make_root(root, "group");
  mydb *shared = open_pack(root, 1, 0);
  CHECK_RC(mydb_tenant_init(shared, "t"), 0);
  mydb *own[4];
  gc_arg args[8];
  pthread_t th[8];
  double t0 = now_s();
  for (int i = 0; i < 8; i++) {
    mydb *db = shared;
    if (i >= 4) db = own[i - 4] = open_pack(root, 1, 0);
    args[i] = (gc_arg){db, i, 40, 0};
    pthread_create(&th[i], NULL, gc_worker, &args[i]);
  }
  int errs = 0;
  for (int i = 0; i < 8; i++) {
    pthread_join(th[i], NULL);
    errs += args[i].err;
  }
  double t = now_s() - t0;
  CHECK(errs == 0);
  for (int i = 0; i < 4; i++) mydb_close(own[i]);
  mydb_close(shared);
  mydb *db = open_pack(root, 0, 0);
  for (int i = 0; i < 8; i++) {
    char e[16], d[MYDB_DIGEST_BUF], buf[64];
    xsnprintf(e, sizeof e, "w%d", i);
    int n = snprintf(buf, sizeof buf, "%d:%d", i, 39);
    mydb_sha256_hex(d, buf, (size_t)n);
    CHECK(get_is(db, "t", e, d));
  }
  int cnt = 0;
  CHECK_RC(mydb_object_foreach(db, "t", count_cb, &cnt), 0);
  CHECK(cnt == 320);
  mydb_close(db);
  printf("  pack group commit: 320 commits by 8 threads, fsync on: %.0f/s\n",
         320 / t);
}

/* Processes commit at once (fsync on); nothing is lost. */
static void t_pack_processes(void) {
  char root[PATH_MAX];
  make_root(root, "procs");
  mydb *db = open_pack(root, 1, 8192);
  CHECK_RC(mydb_tenant_init(db, "t"), 0);
  mydb_close(db);
  fflush(stdout);
  pid_t pids[4];
  for (int i = 0; i < 4; i++) {
    pids[i] = fork();
    if (pids[i] == 0) {
      mydb *c = open_pack(root, 1, 8192);
      gc_arg a = {c, i, 50, 0};
      gc_worker(&a);
      mydb_close(c);
      _exit(a.err ? 1 : 0);
    }
  }
  int bad = 0;
  for (int i = 0; i < 4; i++) {
    int status;
    waitpid(pids[i], &status, 0);
    bad += !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  CHECK(bad == 0);
  db = open_pack(root, 0, 8192);
  for (int i = 0; i < 4; i++) {
    char e[16], d[MYDB_DIGEST_BUF], buf[64];
    xsnprintf(e, sizeof e, "w%d", i);
    int n = snprintf(buf, sizeof buf, "%d:%d", i, 49);
    mydb_sha256_hex(d, buf, (size_t)n);
    CHECK(get_is(db, "t", e, d));
  }
  int cnt = 0;
  CHECK_RC(mydb_object_foreach(db, "t", count_cb, &cnt), 0);
  CHECK(cnt == 200);
  problems pr = {0, ""};
  CHECK_RC(mydb_check(db, "t", problem_cb, &pr), 0);
  CHECK(pr.n == 0);
  mydb_close(db);
}

static int keep_latest(const char *digest, void *payload) {
  return strcmp(digest, (const char *)payload) == 0;
}

static void t_pack_repack(void) {
  char root[PATH_MAX], d[MYDB_DIGEST_BUF], first[MYDB_DIGEST_BUF];
  char buf[300], p[PATH_MAX];
  make_root(root, "repack");
  mydb *w = open_pack(root, 0, 4096);
  CHECK_RC(mydb_tenant_init(w, "t"), 0);
  for (int i = 0; i < 100; i++) {
    int n = snprintf(buf, sizeof buf, "%d %0100d", i, i);
    CHECK_RC(mydb_object_write(w, d, "t", buf, (size_t)n), 0);
    if (i == 0) memcpy(first, d, sizeof first);
    CHECK_RC(commit1(w, "t", "e", d), 0);
  }
  mydb *r = open_pack(root, 0, 4096); /* loaded before the repack */
  CHECK(get_is(r, "t", "e", d));
  mydb_lock *lk;
  CHECK_RC(mydb_lock_acquire(w, &lk, "t"), 0);
  mydb_gc_stats st;
  memset(&st, 0, sizeof st);
  CHECK_RC(mydb_repack(w, "t", &st), 0);
  mydb_lock_release(lk);
  CHECK(st.segments_removed >= 3 && st.segments_written >= 1);
  CHECK(st.objects_kept == 100 && st.objects_removed == 0);
  seg_path(p, root, "t", 1);
  CHECK(fsize(p) < 0); /* gone */
  CHECK(get_is(r, "t", "e", d) && read_is(r, "t", first, "0 ", 2) == 0);
  CHECK(read_is(r, "t", d, buf, strlen(buf)));
  {
    /* a scan's read through a handle loaded before a repack elsewhere:
     * its segments are gone, the object is found in the new generation */
    mydb *s = open_pack(root, 0, 4096);
    CHECK(get_is(s, "t", "e", d));
    mydb *x = open_pack(root, 0, 4096);
    CHECK_RC(mydb_lock_acquire(x, &lk, "t"), 0);
    memset(&st, 0, sizeof st);
    CHECK_RC(mydb_repack(x, "t", &st), 0);
    mydb_lock_release(lk);
    mydb_close(x);
    char *rb = NULL;
    size_t rcap = 0, rlen = 0;
    CHECK_RC(mydb_object_read_into(s, &rb, &rcap, &rlen, "t", d), 0);
    CHECK(rlen == strlen(buf) && memcmp(rb, buf, rlen) == 0);
    CHECK_RC(mydb_object_read_into(s, &rb, &rcap, &rlen, "t", first), 0);
    CHECK(rlen == 102 && memcmp(rb, "0 ", 2) == 0);
    free(rb);
    mydb_close(s);
  }
  mydb_blob *b = NULL;
  CHECK_RC(mydb_object_read(r, &b, "t", first), 0);
  mydb_blob_release(b);
  /* gc keeping only the latest */
  mydb_gc_mark m;
  CHECK_RC(mydb_gc_begin(w, "t", &m), 0);
  char late[MYDB_DIGEST_BUF];
  CHECK_RC(mydb_object_write(w, late, "t", "after the mark", 14), 0);
  CHECK_RC(mydb_lock_acquire(w, &lk, "t"), 0);
  memset(&st, 0, sizeof st);
  CHECK_RC(mydb_gc_sweep(w, "t", &m, keep_latest, d, &st), 0);
  mydb_lock_release(lk);
  CHECK(st.objects_removed == 99);
  CHECK(st.objects_kept == 2);
  CHECK_RC(mydb_object_read(r, &b, "t", first), MYDB_ENOTFOUND);
  CHECK_RC(mydb_object_exists(w, "t", first), 0);
  CHECK(read_is(r, "t", late, "after the mark", 14));
  CHECK(get_is(r, "t", "e", d) && read_is(r, "t", d, buf, strlen(buf)));
  /* writes go on in both handles, and a fresh open agrees */
  CHECK_RC(commit1(r, "t", "f", late), 0);
  CHECK(get_is(w, "t", "f", late));
  mydb_close(r);
  mydb_close(w);
  r = open_pack(root, 0, 4096);
  CHECK(get_is(r, "t", "e", d) && get_is(r, "t", "f", late));
  int cnt = 0;
  CHECK_RC(mydb_object_foreach(r, "t", count_cb, &cnt), 0);
  CHECK(cnt == 2);
  problems pr = {0, ""};
  CHECK_RC(mydb_check(r, "t", problem_cb, &pr), 0);
  CHECK(pr.n == 0);
  mydb_close(r);
}


/* ------------------------------------------- pack durability (issue 11) */

static void write_file(const char *p, const void *b, size_t n) {
  int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0 || write(fd, b, n) != (ssize_t)n) {
    perror(p);
    exit(2);
  }
  close(fd);
}

/* The durable point pack/synced names: *seg and the offset (0 if none). */
static uint64_t synced_of(const char *space_dir, uint64_t *seg) {
  char p[PATH_MAX];
  unsigned char b[24];
  xsnprintf(p, sizeof p, "%s/synced", space_dir);
  *seg = 0;
  int fd = open(p, O_RDONLY);
  if (fd < 0) return 0;
  ssize_t n = pread(fd, b, 24, 0);
  close(fd);
  if (n != 24) return 0;
  uint64_t v[3] = {0, 0, 0};
  for (int k = 0; k < 3; k++)
    for (int i = 7; i >= 0; i--) v[k] = (v[k] << 8) | b[8 * k + i];
  if (v[2] != (v[0] ^ v[1] ^ 0x6d7964627379636eULL)) return 0;
  *seg = v[0];
  return v[1];
}

/* A whole record (header and payload) as src/backend/pack/log.c writes it into out;
 * its length. */
static size_t make_rec(unsigned char *out, int type, const void *pl,
                       size_t len) {
  make_hdr(out, type, len, mydb__crc32(0, pl, len));
  memcpy(out + 24, pl, len);
  return 24 + len;
}

static int check_clean(mydb *db, const char *tenant) {
  problems pr = {0, ""};
  int rc = mydb_check(db, tenant, problem_cb, &pr);
  if (rc || pr.n) fprintf(stderr, "  check %s: rc %d, %d problems: %s\n",
                          tenant ? tenant : "refs", rc, pr.n, pr.first);
  return rc == 0 && pr.n == 0;
}

/* 1. Power lost during init: the first segment has its size but zero
 * bytes (or garbage), and there is no pack/start. init again makes the
 * space usable; acknowledged writes survive reopening. */
static void t_pack_init_crash(void) {
  for (int garbage = 0; garbage < 2; garbage++) {
    char root[PATH_MAX], p[PATH_MAX], d[MYDB_DIGEST_BUF], r[MYDB_DIGEST_BUF];
    make_root(root, garbage ? "initcrash-g" : "initcrash-z");
    mydb *db = open_pack(root, 1, 0);
    CHECK_RC(mydb_tenant_init(db, "t"), 0);
    mydb_close(db);
    /* the crash state: data of seg 1 and refs' seg 1 lost, no start */
    const char *spaces[2] = {"t", "refs"};
    for (int i = 0; i < 2; i++) {
      unsigned char junk[26];
      for (int k = 0; k < 26; k++)
        junk[k] = garbage ? (unsigned char)(k * 37 + 11) : 0;
      seg_path(p, root, spaces[i], 1);
      CHECK(fsize(p) == 26);
      write_file(p, junk, sizeof junk);
      xsnprintf(p, sizeof p, "%s/%s/pack/start", root, spaces[i]);
      CHECK(unlink(p) == 0);
    }
    db = open_pack(root, 1, 0);
    CHECK_RC(mydb_tenant_exists(db, "t"), 0);
    CHECK_RC(mydb_tenant_init(db, "t"), 0);
    CHECK_RC(mydb_object_write(db, d, "t", "after", 5), 0);
    CHECK_RC(commit1(db, "t", "e", d), 0);
    CHECK_RC(mydb_object_write(db, r, NULL, "a ref", 5), 0);
    CHECK(check_clean(db, "t") && check_clean(db, NULL));
    mydb_close(db);
    db = open_pack(root, 1, 0);
    CHECK(get_is(db, "t", "e", d) && read_is(db, "t", d, "after", 5));
    CHECK(read_is(db, NULL, r, "a ref", 5));
    CHECK(check_clean(db, "t") && check_clean(db, NULL));
    mydb_close(db);
  }
}

/* The crash state of an append that was only partly persisted: its first
 * page lost (zeros or garbage), a later page (a whole record) on disk. */
static void torn_append(const char *segp, int garbage) {
  static unsigned char buf[4096 + 256];
  memset(buf, 0, 4096);
  if (garbage)
    for (int k = 0; k < 4096; k++) buf[k] = (unsigned char)(k * 131 + 7);
  const char *line = "[[\"ghost\",\"0000000000000000000000000000000000000000"
                     "000000000000000000000000\"]]";
  size_t n = make_rec(buf + 4096, 2, line, strlen(line));
  append_bytes(segp, buf, 4096 + n);
}

/* 2. An unacknowledged append partly persisted, in a tenant's space, in
 * the refs' space and at the start of a new segment after roll-over:
 * open, reads, check and writes work; the tail is truncated. */
static void t_pack_torn_power(void) {
  for (int garbage = 0; garbage < 2; garbage++) {
    char root[PATH_MAX], p[PATH_MAX], rp[PATH_MAX], d[3][MYDB_DIGEST_BUF];
    char r[MYDB_DIGEST_BUF], x[MYDB_DIGEST_BUF], out[65];
    make_root(root, garbage ? "powertail-g" : "powertail-z");
    mydb *db = open_pack(root, 1, 0);
    CHECK_RC(mydb_tenant_init(db, "t"), 0);
    CHECK_RC(mydb_object_write(db, d[0], "t", "one", 3), 0);
    CHECK_RC(mydb_object_write(db, d[1], "t", "two", 3), 0);
    CHECK_RC(mydb_object_write(db, d[2], "t", "three", 5), 0);
    CHECK_RC(commit1(db, "t", "e", d[2]), 0);
    CHECK_RC(mydb_object_write(db, r, NULL, "a ref", 5), 0);
    mydb_close(db);
    seg_path(p, root, "t", 1);
    xsnprintf(rp, sizeof rp, "%s/refs/pack/000001.seg", root);
    long sz = fsize(p), rsz = fsize(rp);
    torn_append(p, garbage);
    torn_append(rp, garbage);
    db = open_pack(root, 1, 0);
    CHECK(all_there(db, d));
    CHECK_RC(mydb_head_get(db, out, "t", "ghost", 5), MYDB_ENOTFOUND);
    CHECK(read_is(db, NULL, r, "a ref", 5));
    CHECK(check_clean(db, "t") && check_clean(db, NULL));
    CHECK_RC(mydb_object_write(db, x, "t", "four", 4), 0);
    CHECK_RC(commit1(db, "t", "f", x), 0);
    CHECK_RC(mydb_object_write(db, x, NULL, "another ref", 11), 0);
    mydb_close(db);
    CHECK(fsize(p) < sz + 4096 && fsize(rp) < rsz + 4096); /* truncated */
    db = open_pack(root, 1, 0);
    CHECK(all_there(db, d) && read_is(db, NULL, x, "another ref", 11));
    CHECK(check_clean(db, "t") && check_clean(db, NULL));
    mydb_close(db);

    /* a new segment after roll-over whose first page was lost: what was
     * acknowledged (fsync on) stays, the unsynced segment start goes */
    make_root(root, garbage ? "powerroll-g" : "powerroll-z");
    db = open_pack(root, 1, 2048);
    CHECK_RC(mydb_tenant_init(db, "t"), 0);
    CHECK_RC(mydb_object_write(db, d[0], "t", "acked", 5), 0);
    CHECK_RC(commit1(db, "t", "e", d[0]), 0);
    mydb_close(db);
    db = open_pack(root, 0, 2048); /* unsynced writes until a roll-over */
    char buf[300];
    seg_path(p, root, "t", 2);
    for (int i = 0; fsize(p) < 0 && i < 100; i++) {
      int n = snprintf(buf, sizeof buf, "%d %0200d", i, i);
      CHECK_RC(mydb_object_write(db, x, "t", buf, (size_t)n), 0);
      CHECK_RC(commit1(db, "t", "g", x), 0);
    }
    CHECK_RC(mydb_object_write(db, x, "t", "in segment 2", 12), 0);
    CHECK_RC(commit1(db, "t", "g", x), 0);
    mydb_close(db);
    CHECK(fsize(p) > 24);
    {
      unsigned char z[24];
      for (int k = 0; k < 24; k++) z[k] = garbage ? (unsigned char)(k + 1) : 0;
      int fd = open(p, O_WRONLY);
      CHECK(fd >= 0 && pwrite(fd, z, 24, 0) == 24);
      close(fd);
    }
    xsnprintf(buf, sizeof buf, "%s/t/pack/index", root);
    for (int round = 0; round < 2; round++) { /* with and without index */
      if (round) unlink(buf);
      db = open_pack(root, 1, 2048);
      CHECK(get_is(db, "t", "e", d[0]) && read_is(db, "t", d[0], "acked", 5));
      CHECK(check_clean(db, "t"));
      CHECK_RC(mydb_object_write(db, x, "t", "after", 5), 0);
      CHECK_RC(commit1(db, "t", "h", x), 0);
      mydb_close(db);
      db = open_pack(root, 1, 2048);
      CHECK(get_is(db, "t", "h", x) && get_is(db, "t", "e", d[0]));
      CHECK(check_clean(db, "t"));
      mydb_close(db);
    }
  }
}

/* 12. A bad checksum on the last record, below the durable point: damage,
 * not a torn tail. It is reported, never truncated away. */
static void t_pack_last_damaged(void) {
  char root[PATH_MAX], p[PATH_MAX], sd[PATH_MAX], d[MYDB_DIGEST_BUF];
  char out[65];
  make_root(root, "lastcrc");
  mydb *db = open_pack(root, 1, 0);
  CHECK_RC(mydb_tenant_init(db, "t"), 0);
  CHECK_RC(mydb_object_write(db, d, "t", "one", 3), 0);
  CHECK_RC(commit1(db, "t", "e", d), 0);
  mydb_close(db);
  seg_path(p, root, "t", 1);
  xsnprintf(sd, sizeof sd, "%s/t/pack", root);
  long sz = data_end(p), fsz = fsize(p);
  uint64_t sseg = 0;
  CHECK(synced_of(sd, &sseg) == (uint64_t)sz && sseg == 1);
  poke(p, sz - 3, (char)(peek(p, sz - 3) ^ 0x20)); /* in the commit line */
  db = open_pack(root, 1, 0);
  CHECK_RC(mydb_head_get(db, out, "t", "e", 1), MYDB_ECORRUPT);
  CHECK(strstr(mydb_errmsg(), "checksum") != NULL);
  problems pr = {0, ""};
  CHECK_RC(mydb_check(db, "t", problem_cb, &pr), 0);
  CHECK(pr.n == 1 && strstr(pr.first, "checksum"));
  mydb_close(db);
  CHECK(fsize(p) == fsz); /* nothing truncated */
}

/* 5. Group commit records only offsets of whole records: bytes another
 * appender is still writing (here: left by one that died) are not counted
 * as durable, so truncating them later leaves the space readable. */
static void t_pack_synced_whole(void) {
  char root[PATH_MAX], p[PATH_MAX], sd[PATH_MAX], d[MYDB_DIGEST_BUF];
  make_root(root, "syncedwhole");
  mydb *db = open_pack(root, 1, 0);
  CHECK_RC(mydb_tenant_init(db, "t"), 0);
  CHECK_RC(mydb_object_write(db, d, "t", "one", 3), 0);
  CHECK_RC(commit1(db, "t", "e", d), 0);
  /* an object appended, not yet synced; then another appender's record
   * half written */
  CHECK_RC(mydb_object_write(db, d, "t", "two", 3), 0);
  seg_path(p, root, "t", 1);
  long whole = data_end(p);
  unsigned char h[24];
  make_hdr(h, 1, 1000, 0);
  write_at(p, whole, h, 24); /* over the zone, as an appender writes */
  write_at(p, whole + 24, "partial", 7);
  /* the commit path's wait, as after releasing the tenant lock */
  pbackend *pb = (pbackend *)db->be;
  pthread_mutex_lock(&pb->mu);
  pspace *ps = pb->first;
  CHECK(ps && strcmp(ps->name, "t") == 0 && ps->end == (uint64_t)whole);
  psync *s = ps ? mydb__psync_get(db, ps) : NULL;
  pthread_mutex_unlock(&pb->mu);
  CHECK(s != NULL);
  if (s) CHECK_RC(mydb__psync_wait(s, (uint64_t)whole, 1, 1), 0);
  xsnprintf(sd, sizeof sd, "%s/t/pack", root);
  uint64_t sseg = 0;
  CHECK(synced_of(sd, &sseg) == (uint64_t)whole);
  mydb_close(db);
  for (int i = 0; i < 3; i++) { /* the first open truncates the tail */
    db = open_pack(root, 1, 0);
    CHECK(read_is(db, "t", d, "two", 3));
    CHECK(check_clean(db, "t"));
    mydb_close(db);
  }
}

/* 6. A ref another writer appended but did not sync is not taken as
 * durable: writing it again waits until it is. */
static void t_pack_dedup_durable(void) {
  char root[PATH_MAX], sd[PATH_MAX], r[MYDB_DIGEST_BUF];
  make_root(root, "dedup");
  mydb *a = open_pack(root, 0, 0), *b = open_pack(root, 1, 0);
  CHECK_RC(mydb_object_write(a, r, NULL, "shared ref bytes", 16), 0);
  char rp[PATH_MAX];
  xsnprintf(rp, sizeof rp, "%s/refs/pack/000001.seg", root);
  long end = fsize(rp);
  xsnprintf(sd, sizeof sd, "%s/refs/pack", root);
  uint64_t sseg = 0;
  CHECK(synced_of(sd, &sseg) < (uint64_t)end); /* a: fsync off */
  CHECK_RC(mydb_object_write(b, r, NULL, "shared ref bytes", 16), 0);
  CHECK(synced_of(sd, &sseg) >= (uint64_t)end && sseg == 1);
  mydb_close(a);
  mydb_close(b);
}

/* 7, 11 and the fault rule: every system call of a write sequence fails in
 * turn (EIO, then ENOSPC). After each failure: the store opens, check is
 * clean, what returned OK is there; a commit made visible whose sync
 * failed says "committed but not durable"; after a failed fdatasync this
 * process never reports a later write of that space as durable. */
static void t_pack_faults(void) {
  const int errs[2] = {EIO, ENOSPC};
  int not_durable = 0, runs = 0, repacks = 0, recovered = 0;
  for (int e = 0; e < 2; e++) {
    for (long n = 1; n < 400; n++) {
      char root[PATH_MAX], d[4][MYDB_DIGEST_BUF], name[64];
      xsnprintf(name, sizeof name, "faults-%d-%ld", e, n);
      make_root(root, name);
      mydb *db = open_pack(root, 1, 1024);
      CHECK_RC(mydb_tenant_init(db, "t"), 0);
      char buf[400];
      int ok[4] = {0, 0, 0, 0}, failed_sync = 0, later_ok = 0;
      atomic_store(&mydb__fault_errno, errs[e]);
      atomic_store(&mydb__fault_countdown, n);
      for (int i = 0; i < 4; i++) {
        int len = snprintf(buf, sizeof buf, "value %d %0300d", i, i);
        int rc = mydb_object_write(db, d[i], i == 3 ? NULL : "t", buf,
                                   (size_t)len);
        if (rc == 0 && i < 3) {
          mydb_lock *lk;
          char en[8];
          xsnprintf(en, sizeof en, "e%d", i);
          rc = mydb_lock_acquire(db, &lk, "t");
          if (rc == 0) {
            mydb_head_change c = {en, strlen(en), d[i]};
            rc = mydb_head_commit_release(lk, &c, 1);
            if (rc && strncmp(mydb_errmsg(), "committed but not durable: ",
                              27) == 0) {
              CHECK_RC(rc, MYDB_EIO);
              CHECK(get_is(db, "t", en, d[i])); /* visible */
              failed_sync = 1;
              not_durable++;
            }
          }
        }
        if (rc == 0) {
          ok[i] = 1;
          if (failed_sync && i < 3) later_ok = 1; /* (refs: another file) */
        }
      }
      /* a repack last: its new generation rolls over too; after a failed
       * fdatasync it is what makes the space writable again */
      int repacked = -1;
      {
        mydb_lock *lk;
        mydb_gc_stats st;
        memset(&st, 0, sizeof st);
        if ((repacked = mydb_lock_acquire(db, &lk, "t")) == 0) {
          repacked = mydb_repack(db, "t", &st);
          mydb_lock_release(lk);
        }
      }
      long left = atomic_exchange(&mydb__fault_countdown, 0);
      if (failed_sync && repacked == 0) { /* recovered in this process */
        char x[MYDB_DIGEST_BUF];
        CHECK_RC(mydb_object_write(db, x, "t", "recovered", 9), 0);
        CHECK_RC(commit1(db, "t", "recovered", x), 0);
        recovered++;
      }
      atomic_store(&mydb__fault_errno, 0);
      CHECK(!later_ok); /* never durable after a failed fdatasync */
      mydb_close(db);
      db = open_pack(root, 1, 1024);
      CHECK(check_clean(db, "t") && check_clean(db, NULL));
      for (int i = 0; i < 4; i++) {
        if (!ok[i]) continue;
        int len = snprintf(buf, sizeof buf, "value %d %0300d", i, i);
        CHECK(read_is(db, i == 3 ? NULL : "t", d[i], buf, (size_t)len));
        if (i < 3) {
          char en[8];
          xsnprintf(en, sizeof en, "e%d", i);
          CHECK(get_is(db, "t", en, d[i]));
        }
      }
      mydb_close(db);
      /* and it takes writes - in another process after a failed fdatasync
       * (this one writes no more to that segment) */
      fflush(stdout);
      fflush(stderr);
      pid_t pid = fork();
      if (pid == 0) { /* a new process: exec (fork keeps this one's state) */
        execl(self_exe, "test_backends", "--write-after", root, (char *)NULL);
        _exit(127);
      }
      int status = -1;
      waitpid(pid, &status, 0);
      CHECK(WIFEXITED(status) && (WEXITSTATUS(status) == 0 ||
                                  WEXITSTATUS(status) == 10));
      if (failed_sync && repacked != 0)
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 10);
      repacks += WIFEXITED(status) && WEXITSTATUS(status) == 10;
      rm_rf(root);
      runs++;
      if (left > 0) break; /* the sequence ran out of system calls */
    }
  }
  CHECK(not_durable >= 2 && repacks + recovered >= not_durable);
  printf("  pack faults: %d runs, %d commits visible but not durable, %d "
         "spaces refused appends until a repack (%d more repacked in the "
         "failing process)\n", runs, not_durable, repacks, recovered);
}

/* 12. Index entries outside their segment make the index unusable (the
 * log is scanned instead), never a huge allocation. */
static void t_pack_index_bounds(void) {
  char root[PATH_MAX], p[PATH_MAX], d[MYDB_DIGEST_BUF], buf[300];
  char d0[MYDB_DIGEST_BUF];
  make_root(root, "idxbounds");
  mydb *db = open_pack(root, 0, 2048);
  CHECK_RC(mydb_tenant_init(db, "t"), 0);
  for (int i = 0; i < 20; i++) {
    int n = snprintf(buf, sizeof buf, "%d %0200d", i, i);
    CHECK_RC(mydb_object_write(db, d, "t", buf, (size_t)n), 0);
    CHECK_RC(commit1(db, "t", "e", d), 0);
    if (i == 0) memcpy(d0, d, sizeof d0);
  }
  mydb_close(db);
  xsnprintf(p, sizeof p, "%s/t/pack/index", root);
  long isz = fsize(p);
  CHECK(isz > 72);
  static unsigned char ix[1 << 16];
  int fd = open(p, O_RDONLY);
  CHECK(isz <= (long)sizeof ix && fd >= 0 && read(fd, ix, (size_t)isz) == isz);
  close(fd);
  uint32_t nsegs = (uint32_t)ix[12] | (uint32_t)ix[13] << 8;
  uint64_t nobj = ix[24] | (uint64_t)ix[25] << 8;
  CHECK(nobj > 0);
  /* every object entry: a length of 2^40 */
  for (uint64_t i = 0; i < nobj; i++) {
    unsigned char *e = ix + 40 + 8 * nsegs + 56 * i;
    memset(e + 48, 0, 8);
    e[53] = 1;
  }
  unsigned char md[32];
  CHECK(mydb__sha256(md, ix, (size_t)isz - 32) == 0);
  memcpy(ix + isz - 32, md, 32);
  write_file(p, ix, (size_t)isz);
  db = open_pack(root, 0, 2048);
  int n = snprintf(buf, sizeof buf, "%d %0200d", 19, 19);
  CHECK(get_is(db, "t", "e", d) && read_is(db, "t", d, buf, (size_t)n));
  n = snprintf(buf, sizeof buf, "%d %0200d", 0, 0);
  CHECK(read_is(db, "t", d0, buf, (size_t)n)); /* an entry of the index */
  mydb_close(db);
}

/* 16. Staging belongs to the thread that holds the tenant lock: another
 * thread of the same handle that writes an object to that tenant waits for
 * the lock and appends it itself - it is in the store when the write
 * returns, even if the holder then releases without a commit (which drops
 * only the holder's own staged objects). */
typedef struct stage_arg {
  mydb *db;
  char digest[MYDB_DIGEST_BUF];
  int rc;
} stage_arg;

static void *stage_writer(void *p) {
  stage_arg *a = p;
  a->rc = mydb_object_write(a->db, a->digest, "t", "other thread", 12);
  return NULL;
}

static void t_pack_stage_threads(void) {
  char root[PATH_MAX], d[MYDB_DIGEST_BUF];
  make_root(root, "stagethreads");
  mydb *db = open_pack(root, 1, 0);
  CHECK_RC(mydb_tenant_init(db, "t"), 0);
  mydb_lock *lk = NULL;
  CHECK_RC(mydb_lock_acquire(db, &lk, "t"), 0);
  CHECK_RC(mydb_object_write(db, d, "t", "holder's", 8), 0);
  CHECK(mydb_object_exists(db, "t", d) == 1); /* staged, readable */
  CHECK(read_is(db, "t", d, "holder's", 8));
  stage_arg a = {db, "", -99};
  pthread_t th;
  CHECK(pthread_create(&th, NULL, stage_writer, &a) == 0);
  usleep(50 * 1000); /* (let it reach the lock; correct without it too) */
  mydb_lock_release(lk); /* no commit: the holder's object goes */
  pthread_join(th, NULL);
  CHECK_RC(a.rc, 0);
  CHECK(mydb_object_exists(db, "t", d) == 0);
  mydb *other = open_pack(root, 1, 0);
  CHECK(read_is(other, "t", a.digest, "other thread", 12));
  CHECK(mydb_object_exists(other, "t", d) == 0);
  CHECK(check_clean(other, "t"));
  /* the same thread cannot take the lock twice (it would wait forever) */
  CHECK_RC(mydb_lock_acquire(other, &lk, "t"), 0);
  mydb_lock *again = NULL;
  CHECK_RC(mydb_lock_acquire(other, &again, "t"), MYDB_ECONFLICT);
  mydb_lock_release(lk);
  mydb_close(other);
  mydb_close(db);
}

static void pack_only(void) {
  cur_backend = "pack";
  t_pack_torn();
  t_pack_corrupt();
  t_pack_index();
  t_pack_index_in_place();
  t_pack_index_growth();
  t_pack_index_before_repack();
  t_pack_rollover_reader();
  t_pack_truncated();
  t_pack_group_commit();
  t_pack_processes();
  t_pack_repack();
  t_pack_init_crash();
  t_pack_torn_power();
  t_pack_last_damaged();
  t_pack_synced_whole();
  t_pack_dedup_durable();
  t_pack_index_bounds();
  t_pack_faults();
  t_pack_stage_threads();
}

/* test_backends --write-after ROOT: one write and commit in tenant t of a
 * pack store (t_pack_faults' new process). Exit status 0: it worked; 10:
 * it was refused (a failed fdatasync) and worked after a repack; else 1. */
static int write_after(const char *root) {
  char x[MYDB_DIGEST_BUF];
  mydb *c = open_pack(root, 1, 1024);
  int rc = mydb_object_write(c, x, "t", "afterwards", 10), repacked = 0;
  if (rc == 0) rc = commit1(c, "t", "after", x);
  if (rc == MYDB_EIO && strstr(mydb_errmsg(), "repack")) {
    mydb_lock *lk;
    mydb_gc_stats st;
    memset(&st, 0, sizeof st);
    rc = mydb_lock_acquire(c, &lk, "t");
    if (rc == 0) {
      rc = mydb_repack(c, "t", &st);
      mydb_lock_release(lk);
    }
    if (rc == 0) rc = mydb_object_write(c, x, "t", "afterwards", 10);
    if (rc == 0) rc = commit1(c, "t", "after", x);
    repacked = 1;
  }
  int bad = rc || !get_is(c, "t", "after", x) || !check_clean(c, "t");
  if (bad) fprintf(stderr, "write-after: %s\n", mydb_errmsg());
  mydb_close(c);
  return bad ? 1 : repacked ? 10 : 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--write-after") == 0)
    return write_after(argv[2]);
  if (argc > 0 && strchr(argv[0], '/')) self_exe = argv[0];
  xsnprintf(tmproot, sizeof tmproot, "/tmp/mydb-backends-XXXXXX");
  if (!mkdtemp(tmproot)) {
    perror("mkdtemp");
    return 2;
  }
  const char *only = argc > 1 ? argv[1] : NULL;
  t_options();
  const char *all[] = {"loose", "memory", "pack", "postgres"};
  /* postgres: on the throwaway server of tools/pgcluster run (its libpq
   * environment: PGHOST...; MYDB_PG_DIR says it is one), run by
   * make test-backends; each root is a schema */
  int pg = getenv("MYDB_PG_DIR") != NULL;
  for (int i = 0; i < 4; i++)
    if ((!only || strcmp(only, all[i]) == 0) && (i < 3 || pg))
      common(all[i]);
  if (!pg && (!only || strcmp(only, "postgres") == 0))
    printf("postgres: skipped (no MYDB_PG_DIR: run under tools/pgcluster run)\n");
  if (!only || strcmp(only, "pack") == 0) pack_only();
  (void)dir_entries;
  rm_rf(tmproot);
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
