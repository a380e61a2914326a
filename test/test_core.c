/*
 * test_core.c - tests of the mydb C core. One program; prints
 * "N passed, N failed" last and exits non-zero on any failure.
 */
#include <dirent.h>
#include <float.h>
#include <math.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "delta.h"
#include "dfilter.h"
#include "fsutil.h"
#include "internal.h" /* (the object cache: test_cache_superseded) */
#include "jsonstr.h"
#include "mydb.h"
#include "numtext.h"

static int passed, failed;

/* snprintf that must not truncate */
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
      fprintf(stderr, "%s:%d: CHECK(%s) failed (last error: %s)\n",        \
              __FILE__, __LINE__, #cond, mydb_errmsg());                   \
    }                                                                      \
  } while (0)

#define CHECK_RC(expr, want)                                               \
  do {                                                                     \
    int rc_ = (expr), want_ = (want);                                      \
    if (rc_ == want_) {                                                    \
      passed++;                                                            \
    } else {                                                               \
      failed++;                                                            \
      fprintf(stderr, "%s:%d: %s returned %d (%s), expected %d (%s); "     \
              "message: %s\n", __FILE__, __LINE__, #expr, rc_,             \
              mydb_errcode_name(rc_), want_, mydb_errcode_name(want_),     \
              mydb_errmsg());                                              \
    }                                                                      \
  } while (0)

/* ------------------------------------------------------------- helpers */

static int rm_cb(const char *p, const struct stat *st, int flag,
                 struct FTW *ftw) {
  (void)st; (void)flag; (void)ftw;
  return remove(p);
}

static void rm_rf(const char *p) { nftw(p, rm_cb, 16, FTW_DEPTH | FTW_PHYS); }

static char tmproot[PATH_MAX];

static void make_root(char *out, const char *name) {
  xsnprintf(out, PATH_MAX, "%s/%s", tmproot, name);
}

static mydb *open_db(const char *root, int cache) {
  mydb_options o = MYDB_OPTIONS_INIT;
  o.backend = "loose"; /* this file tests the loose layout */
  o.fsync = 0;
  o.cache_bytes = cache ? (size_t)64 << 20 : 0;
  mydb *db = NULL;
  int rc = mydb_open(&db, root, &o);
  if (rc) {
    fprintf(stderr, "mydb_open(%s): %s\n", root, mydb_errmsg());
    exit(2);
  }
  return db;
}

static const char *obj_path(char *out, const char *root, const char *tenant,
                            const char *d) {
  if (tenant)
    xsnprintf(out, PATH_MAX, "%s/%s/objects/%.24s/%s", root, tenant, d, d);
  else
    xsnprintf(out, PATH_MAX, "%s/refs/%.24s/%s", root, d, d);
  return out;
}

static long file_size(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 ? (long)st.st_size : -1;
}

static char *slurp(const char *p, size_t *len) {
  FILE *f = fopen(p, "rb");
  if (!f) return NULL;
  char *buf = NULL;
  size_t n = 0, cap = 0;
  for (;;) {
    if (n == cap) {
      cap = cap ? cap * 2 : 4096;
      buf = realloc(buf, cap + 1);
    }
    size_t r = fread(buf + n, 1, cap - n, f);
    if (r == 0) break;
    n += r;
  }
  fclose(f);
  buf[n] = '\0';
  if (len) *len = n;
  return buf;
}

static int count_lines(const char *p) {
  size_t n;
  char *s = slurp(p, &n);
  if (!s) return -1;
  int c = 0;
  for (size_t i = 0; i < n; i++) c += s[i] == '\n';
  free(s);
  return c;
}

static void append_raw(const char *p, const char *s) {
  int fd = open(p, O_WRONLY | O_APPEND);
  if (fd < 0 || write(fd, s, strlen(s)) != (ssize_t)strlen(s)) {
    perror(p);
    exit(2);
  }
  close(fd);
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

static int count_cb(const char *name, void *payload) {
  (void)name;
  (*(int *)payload)++;
  return 0;
}

static int count_entry_cb(const char *e, size_t len, const char *d,
                          void *payload) {
  (void)e; (void)len; (void)d;
  (*(int *)payload)++;
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

/* ---------------------------------------------------------------- tests */

/* mydb__sha256_strides: the digest of every length, resumed from every
 * whole stride, is SHA-256's; the states it keeps are those a later resume
 * needs; only the bytes after the resume point are counted as hashed. */
static void test_sha256_strides(void) {
  enum { MAXLEN = 5 * MYDB_SHA_STRIDE + 70 };
  static unsigned char buf[MAXLEN];
  for (size_t i = 0; i < MAXLEN; i++) buf[i] = (unsigned char)(i * 131 + (i >> 7));
  mydb__shastate st[MAXLEN / MYDB_SHA_STRIDE + 1], st2[MAXLEN / MYDB_SHA_STRIDE + 1];
  const size_t lens[] = {0, 1, 63, 64, 65, 255, 256, 257, 511, 512, 1000, 1024,
                         1088, MAXLEN - 1, MAXLEN};
  for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
    size_t len = lens[li];
    unsigned char want[32], got[32];
    CHECK_RC(mydb__sha256(want, buf, len), MYDB_OK);
    memset(st, 0, sizeof st);
    CHECK_RC(mydb__sha256_strides(got, buf, len, 0, st), MYDB_OK);
    CHECK(memcmp(got, want, 32) == 0);
    for (size_t k = 1; k * MYDB_SHA_STRIDE <= len; k++) {
      /* resume after k strides from the states kept, the rest rewritten */
      memset(st2, 0xA5, sizeof st2);
      memcpy(st2, st, k * sizeof st[0]);
      uint64_t h0 = mydb_hashed_bytes();
      memset(got, 0, 32);
      CHECK_RC(mydb__sha256_strides(got, buf, len, k * MYDB_SHA_STRIDE, st2), MYDB_OK);
      CHECK(memcmp(got, want, 32) == 0);
      CHECK(mydb_hashed_bytes() - h0 == len - k * MYDB_SHA_STRIDE);
      CHECK(memcmp(st2, st, (len / MYDB_SHA_STRIDE) * sizeof st[0]) == 0);
    }
  }
  /* a state that is not the prefix's gives another digest (the states are
   * used, not recomputed) */
  unsigned char want[32], got[32];
  CHECK_RC(mydb__sha256_strides(want, buf, 600, 0, st), MYDB_OK);
  st[1].h[0] ^= 1;
  CHECK_RC(mydb__sha256_strides(got, buf, 600, 2 * MYDB_SHA_STRIDE, st), MYDB_OK);
  CHECK(memcmp(got, want, 32) != 0);
}

static void test_sha256(void) {
  char d[MYDB_DIGEST_BUF];
  CHECK_RC(mydb_sha256_hex(d, "", 0), MYDB_OK);
  CHECK(strcmp(d, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b"
                  "7852b855") == 0);
  CHECK_RC(mydb_sha256_hex(d, "abc", 3), MYDB_OK);
  CHECK(strcmp(d, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61"
                  "f20015ad") == 0);
  CHECK_RC(mydb_sha256_hex(NULL, "abc", 3), MYDB_EINVAL);
  CHECK_RC(mydb_sha256_hex(d, NULL, 3), MYDB_EINVAL);
  CHECK_RC(mydb_sha256_hex(d, NULL, 0), MYDB_OK);

  const char *good = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61"
                     "f20015ad";
  CHECK(mydb_digest_valid(good, 64) == 1);
  CHECK(mydb_digest_valid(good, 63) == 0);
  CHECK(mydb_digest_valid(NULL, 64) == 0);
  char bad[65];
  memcpy(bad, good, 65);
  bad[3] = 'A';
  CHECK(mydb_digest_valid(bad, 64) == 0);
  bad[3] = 'g';
  CHECK(mydb_digest_valid(bad, 64) == 0);
  bad[3] = '\0';
  CHECK(mydb_digest_valid(bad, 64) == 0);
  char longer[66];
  memcpy(longer, good, 64);
  longer[64] = 'a';
  longer[65] = 0;
  CHECK(mydb_digest_valid(longer, 65) == 0);

  /* mydb__unhex: every byte value, in every position, back from mydb__hex */
  for (int v = 0; v < 256; v++) {
    unsigned char raw[32], back[32];
    char hx[64];
    for (int i = 0; i < 32; i++) raw[i] = (unsigned char)(v + 7 * i);
    mydb__hex(hx, raw, 32);
    mydb__unhex(back, hx);
    CHECK(memcmp(raw, back, 32) == 0);
  }
  unsigned char abc[32];
  mydb__unhex(abc, good);
  CHECK(abc[0] == 0xba && abc[1] == 0x78 && abc[31] == 0xad);
}

static void test_errors(void) {
  CHECK(strcmp(mydb_errcode_name(MYDB_OK), "ok") == 0);
  CHECK(strcmp(mydb_errcode_name(MYDB_EINVAL), "invalid_argument") == 0);
  CHECK(strcmp(mydb_errcode_name(MYDB_ENOTINIT), "not_initialized") == 0);
  CHECK(strcmp(mydb_errcode_name(MYDB_ENOTFOUND), "not_found") == 0);
  CHECK(strcmp(mydb_errcode_name(MYDB_ECORRUPT), "corrupt") == 0);
  CHECK(strcmp(mydb_errcode_name(MYDB_EIO), "io") == 0);
  CHECK(strcmp(mydb_errcode_name(MYDB_ENOMEM), "out_of_memory") == 0);
  CHECK(strcmp(mydb_errcode_name(MYDB_ECLOSED), "closed") == 0);
  CHECK(mydb_errmsg() != NULL);
}

static void test_ref_name_valid(void) {
  static const struct { const char *s; int ok; } t[] = {
    {"heads/main", 1}, {"tags/v1", 1}, {"heads/a/b", 1},
    {"remotes/origin/main", 1}, {"remotes/o/a/b", 1},
    {"remotes/origin", 0}, {"remotes/origin/", 0}, {"remotes//x", 0},
    {"remotes/", 0}, {"remotes/../x", 0}, {"remote/o/m", 0}, {"heads/", 0},
    {"heads/.x", 0}, {"other/x", 0},
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    int got = mydb_ref_name_valid(t[i].s, strlen(t[i].s));
    if (got != t[i].ok) fprintf(stderr, "ref_name_valid(\"%s\") = %d\n", t[i].s, got);
    CHECK(got == t[i].ok);
  }
}

static void test_tenant_valid(void) {
  static const struct { const char *s; size_t len; int ok; } t[] = {
    {"alice", 5, 1}, {"a", 1, 1}, {"Bob-42_x.y", 10, 1}, {"r", 1, 1},
    {"refsx", 5, 1}, {"xrefs", 5, 1}, {"a..b", 4, 1}, {"\xc3\xa9t\xc3\xa9", 5, 1},
    {"", 0, 0}, {".", 1, 0}, {"..", 2, 0}, {".hidden", 7, 0}, {"refs", 4, 0},
    {"a/b", 3, 0}, {"/", 1, 0}, {"a\\b", 3, 0}, {"a\0b", 3, 0}, {".tmp", 4, 0},
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    int got = mydb_tenant_valid(t[i].s, t[i].len);
    if (got != t[i].ok)
      fprintf(stderr, "tenant_valid(\"%s\", %zu) = %d\n", t[i].s, t[i].len,
              got);
    CHECK(got == t[i].ok);
  }
  char big[200];
  memset(big, 'x', sizeof big);
  CHECK(mydb_tenant_valid(big, 128) == 1);
  CHECK(mydb_tenant_valid(big, 129) == 0);
  CHECK(mydb_tenant_valid(NULL, 3) == 0);
}

static void test_jsonstr(void) {
  mydb_buf b = MYDB_BUF_INIT;
  const char in[] = "a\"b\\c\n\t\r\b\f\x01\x7f\xc3\xa9/";
  mydb_json_put_string(&b, in, sizeof in - 1);
  const char want[] = "\"a\\\"b\\\\c\\n\\t\\r\\b\\f\\u0001\\u007f\xc3\xa9/\"";
  CHECK(b.len == sizeof want - 1 && memcmp(b.data, want, b.len) == 0);
  mydb_buf o = MYDB_BUF_INIT;
  const char *end = mydb_json_get_string(&o, b.data, b.data + b.len);
  CHECK(end == b.data + b.len);
  CHECK(o.len == sizeof in - 1 && memcmp(o.data, in, o.len) == 0);
  mydb_buf_free(&o);
  const char u[] = "\"\\u00e9\\ud83d\\ude00\\/x\"";
  end = mydb_json_get_string(&o, u, u + sizeof u - 1);
  CHECK(end == u + sizeof u - 1);
  CHECK(o.len == 2 + 4 + 2 && memcmp(o.data, "\xc3\xa9\xf0\x9f\x98\x80/x", 8) == 0);
  mydb_buf_free(&o);
  const char *bad[] = {"\"abc", "\"\\ud83d\"", "\"\\ude00\"", "\"\\x\"",
                       "\"a\nb\"", "abc", "\"\\u12\""};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    CHECK(mydb_json_get_string(&o, bad[i], bad[i] + strlen(bad[i])) == NULL);
    o.len = 0;
  }
  mydb_buf_free(&o);
  mydb_buf_free(&b);
  CHECK(mydb_utf8_valid("abc\xc3\xa9", 5) == 1);
  CHECK(mydb_utf8_valid("\xf0\x9f\x98\x80", 4) == 1);
  CHECK(mydb_utf8_valid("\xc0\x80", 2) == 0);     /* overlong */
  CHECK(mydb_utf8_valid("\xed\xa0\x80", 3) == 0); /* surrogate */
  CHECK(mydb_utf8_valid("\xf4\x90\x80\x80", 4) == 0);
  CHECK(mydb_utf8_valid("\xc3", 1) == 0);
  CHECK(mydb_utf8_valid("\xff", 1) == 0);
}

static void test_open_init(void) {
  char root[PATH_MAX], p[PATH_MAX];
  mydb *db = NULL;
  CHECK_RC(mydb_open(&db, NULL, NULL), MYDB_EINVAL);
  CHECK(db == NULL);
  CHECK_RC(mydb_open(&db, "", NULL), MYDB_EINVAL);
  CHECK_RC(mydb_open(NULL, "/tmp/x", NULL), MYDB_EINVAL);
  mydb_options bad = MYDB_OPTIONS_INIT;
  bad.version = 99;
  make_root(root, "open/deep/er");
  CHECK_RC(mydb_open(&db, root, &bad), MYDB_EINVAL);
  mydb_options lo = MYDB_OPTIONS_INIT; /* fsync on */
  lo.backend = "loose";
  CHECK_RC(mydb_open(&db, root, &lo), MYDB_OK); /* mkdir -p */
  xsnprintf(p, sizeof p, "%s/refs", root);
  struct stat st;
  CHECK(stat(p, &st) == 0 && S_ISDIR(st.st_mode));
  xsnprintf(p, sizeof p, "%s/.tmp", root);
  CHECK(stat(p, &st) == 0 && S_ISDIR(st.st_mode));

  CHECK_RC(mydb_tenant_exists(db, "alice"), 0);
  CHECK_RC(mydb_tenant_init(db, "alice"), MYDB_OK);
  CHECK_RC(mydb_tenant_exists(db, "alice"), 1);
  CHECK_RC(mydb_tenant_init(db, "alice"), MYDB_OK); /* idempotent */
  CHECK_RC(mydb_tenant_init(db, "refs"), MYDB_EINVAL);
  CHECK_RC(mydb_tenant_init(db, "../x"), MYDB_EINVAL);
  CHECK_RC(mydb_tenant_init(db, NULL), MYDB_EINVAL);
  CHECK_RC(mydb_tenant_init(NULL, "x"), MYDB_EINVAL);
  CHECK_RC(mydb_tenant_exists(db, ".x"), MYDB_EINVAL);
  xsnprintf(p, sizeof p, "%s/alice/head", root);
  size_t n;
  char *s = slurp(p, &n);
  CHECK(s && strcmp(s, "{\"mydb_head\":1}\n") == 0);
  free(s);
  xsnprintf(p, sizeof p, "%s/alice/lock", root);
  CHECK(file_size(p) == 0);

  /* init again after a commit keeps the journal */
  char d[MYDB_DIGEST_BUF];
  CHECK_RC(mydb_object_write(db, d, "alice", "v1", 2), MYDB_OK);
  CHECK_RC(commit1(db, "alice", "cfg", d), MYDB_OK);
  CHECK_RC(mydb_tenant_init(db, "alice"), MYDB_OK);
  CHECK(get_is(db, "alice", "cfg", d));

  /* tenant_foreach: sorted, only initialized tenants */
  CHECK_RC(mydb_tenant_init(db, "zed"), MYDB_OK);
  CHECK_RC(mydb_tenant_init(db, "bob"), MYDB_OK);
  xsnprintf(p, sizeof p, "%s/notinit", root);
  mkdir(p, 0777);
  xsnprintf(p, sizeof p, "%s/.hidden", root);
  mkdir(p, 0777);
  char names[256] = "";
  struct { char *s; } acc = {names};
  (void)acc;
  int cnt = 0;
  CHECK_RC(mydb_tenant_foreach(db, count_cb, &cnt), 0);
  CHECK(cnt == 3);
  mydb_close(db);
}

static int collect_tenant(const char *t, void *payload) {
  strcat((char *)payload, t);
  strcat((char *)payload, ",");
  return 0;
}

static int stop_cb(const char *t, void *payload) {
  (void)t;
  (*(int *)payload)++;
  return 42;
}

static void test_tenant_foreach_order(void) {
  char root[PATH_MAX];
  make_root(root, "tforeach");
  mydb *db = open_db(root, 1);
  CHECK_RC(mydb_tenant_init(db, "b"), 0);
  CHECK_RC(mydb_tenant_init(db, "a"), 0);
  CHECK_RC(mydb_tenant_init(db, "B"), 0);
  CHECK_RC(mydb_tenant_init(db, "ab"), 0);
  char buf[256] = "";
  CHECK_RC(mydb_tenant_foreach(db, collect_tenant, buf), 0);
  CHECK(strcmp(buf, "B,a,ab,b,") == 0);
  int calls = 0;
  CHECK_RC(mydb_tenant_foreach(db, stop_cb, &calls), 42);
  CHECK(calls == 1);
  CHECK_RC(mydb_tenant_foreach(db, NULL, NULL), MYDB_EINVAL);
  mydb_close(db);
}

static void test_objects(void) {
  char root[PATH_MAX], p[PATH_MAX];
  make_root(root, "objects");
  mydb *db = open_db(root, 0); /* no cache: every read hits the disk */
  char d[MYDB_DIGEST_BUF], d2[MYDB_DIGEST_BUF];
  CHECK_RC(mydb_object_write(db, d, "alice", "x", 1), MYDB_ENOTINIT);
  CHECK(strlen(mydb_errmsg()) > 0);
  xsnprintf(p, sizeof p, "%s/.tmp", root);
  CHECK(dir_entries(p) == 0); /* the temporary file was removed */
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
  CHECK(cnt == 1); /* dedupe: one file */
  CHECK(file_size(obj_path(p, root, "alice", d)) == (long)strlen(v));
  CHECK_RC(mydb_object_exists(db, "alice", d), 1);

  mydb_blob *b = NULL;
  CHECK_RC(mydb_object_read(db, &b, "alice", d), 0);
  CHECK(b && mydb_blob_len(b) == strlen(v) &&
        memcmp(mydb_blob_data(b), v, strlen(v)) == 0);
  mydb_blob_release(b);

  /* empty object */
  CHECK_RC(mydb_object_write(db, d2, "alice", NULL, 0), 0);
  CHECK(strcmp(d2, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b"
                   "7852b855") == 0);
  CHECK_RC(mydb_object_read(db, &b, "alice", d2), 0);
  CHECK(b && mydb_blob_len(b) == 0);
  mydb_blob_release(b);

  /* not found */
  const char *zero = "0000000000000000000000000000000000000000000000000000000000000000";
  b = (mydb_blob *)1;
  CHECK_RC(mydb_object_read(db, &b, "alice", zero), MYDB_ENOTFOUND);
  CHECK(b == NULL);
  CHECK(strstr(mydb_errmsg(), zero) && strstr(mydb_errmsg(), "alice"));
  CHECK_RC(mydb_object_exists(db, "alice", zero), 0);
  CHECK_RC(mydb_object_read(db, &b, "nobody", zero), MYDB_ENOTFOUND);

  /* bad arguments */
  CHECK_RC(mydb_object_read(db, &b, "alice", "abc"), MYDB_EINVAL);
  CHECK_RC(mydb_object_read(db, &b, "alice", NULL), MYDB_EINVAL);
  CHECK_RC(mydb_object_read(db, NULL, "alice", d), MYDB_EINVAL);
  CHECK_RC(mydb_object_read(NULL, &b, "alice", d), MYDB_EINVAL);
  CHECK_RC(mydb_object_read(db, &b, "refs", d), MYDB_EINVAL);
  CHECK_RC(mydb_object_write(db, NULL, "alice", "x", 1), MYDB_EINVAL);
  CHECK_RC(mydb_object_write(db, d2, "alice", NULL, 1), MYDB_EINVAL);
  CHECK_RC(mydb_object_write(db, d2, "a/b", "x", 1), MYDB_EINVAL);
  CHECK_RC(mydb_object_exists(db, "alice", "ABC"), MYDB_EINVAL);
  char upper[MYDB_DIGEST_BUF];
  memcpy(upper, d, sizeof upper);
  upper[0] = upper[0] >= 'a' ? (char)(upper[0] - 32) : 'A';
  CHECK_RC(mydb_object_read(db, &b, "alice", upper), MYDB_EINVAL);

  /* corruption: flip a byte */
  obj_path(p, root, "alice", d);
  chmod(p, 0644);
  int fd = open(p, O_RDWR);
  CHECK(fd >= 0);
  CHECK(pwrite(fd, "H", 1, 2) == 1);
  close(fd);
  CHECK_RC(mydb_object_read(db, &b, "alice", d), MYDB_ECORRUPT);
  CHECK(strstr(mydb_errmsg(), d) != NULL);
  /* truncate */
  CHECK(truncate(p, 3) == 0);
  CHECK_RC(mydb_object_read(db, &b, "alice", d), MYDB_ECORRUPT);
  /* an existing (even corrupt) object is not rewritten */
  CHECK_RC(mydb_object_write(db, d2, "alice", v, strlen(v)), 0);
  CHECK(file_size(p) == 3);
  unlink(p);
  CHECK_RC(mydb_object_exists(db, "alice", d), 0);
  CHECK_RC(mydb_object_write(db, d2, "alice", v, strlen(v)), 0);
  CHECK_RC(mydb_object_read(db, &b, "alice", d), 0);
  mydb_blob_release(b);

  /* refs: shared between tenants and handles */
  CHECK_RC(mydb_object_write(db, d, NULL, "binary\0ref", 10), 0);
  CHECK(file_size(obj_path(p, root, NULL, d)) == 10);
  mydb *db2 = open_db(root, 1);
  CHECK_RC(mydb_object_read(db2, &b, NULL, d), 0);
  CHECK(b && mydb_blob_len(b) == 10 && memcmp(mydb_blob_data(b), "binary\0ref", 10) == 0);
  mydb_blob_release(b);
  CHECK_RC(mydb_object_exists(db2, NULL, d), 1);
  CHECK_RC(mydb_object_read(db2, &b, "alice", d), MYDB_ENOTFOUND);
  cnt = 0;
  CHECK_RC(mydb_object_foreach(db2, NULL, count_cb, &cnt), 0);
  CHECK(cnt == 1);
  CHECK_RC(mydb_object_foreach(db2, "nobody", count_cb, &cnt), MYDB_ENOTINIT);

  /* a large object (not cached) round-trips */
  size_t big = (size_t)3 << 20;
  char *bb = malloc(big);
  for (size_t i = 0; i < big; i++) bb[i] = (char)(i * 7 + (i >> 9));
  CHECK_RC(mydb_object_write(db2, d, "alice", bb, big), 0);
  CHECK_RC(mydb_object_read(db2, &b, "alice", d), 0);
  CHECK(b && mydb_blob_len(b) == big && memcmp(mydb_blob_data(b), bb, big) == 0);
  mydb_blob_release(b);
  free(bb);
  mydb_close(db2);
  mydb_close(db);
}

/* The bases a commit's writes replaced leave the object cache once the
 * head commit is durable, and only then: not when the lock is released
 * without a commit (a retry's deltas need them). */
static void test_cache_superseded(void) {
  char root[PATH_MAX];
  make_root(root, "cache_sup");
  mydb_options o = MYDB_OPTIONS_INIT;
  o.backend = "pack"; /* (write_near: the backend that keeps deltas) */
  o.fsync = 0;
  o.cache_bytes = (size_t)1 << 20;
  mydb *db;
  CHECK_RC(mydb_open(&db, root, &o), 0);
  CHECK_RC(mydb_tenant_init(db, "t"), 0);
  char a[MYDB_DIGEST_BUF], b[MYDB_DIGEST_BUF], c[MYDB_DIGEST_BUF];
  const char *va = "{\"v\":\"version a of the piece\"}";
  const char *vb = "{\"v\":\"version b of the piece\"}";
  const char *vc = "{\"v\":\"version c of the piece\"}";
  CHECK_RC(mydb_sha256_hex(a, va, strlen(va)), 0);
  CHECK_RC(mydb_sha256_hex(b, vb, strlen(vb)), 0);
  CHECK_RC(mydb_sha256_hex(c, vc, strlen(vc)), 0);
  CHECK_RC(mydb_object_write_near(db, a, "t", va, strlen(va), NULL), 0);
  mydb_head_change ch = {"e", 1, NULL};

  /* b replaces a; a stays cached until the commit publishing b is made */
  mydb_lock *lk;
  CHECK_RC(mydb_lock_acquire(db, &lk, "t"), 0);
  CHECK_RC(mydb_object_write_near(db, b, "t", vb, strlen(vb), a), 0);
  CHECK(mydb__cache_contains(&db->cache, "t", a));
  CHECK(mydb__cache_contains(&db->cache, "t", b));
  ch.digest = b;
  CHECK_RC(mydb_head_commit_release(lk, &ch, 1), 0);
  CHECK(!mydb__cache_contains(&db->cache, "t", a));
  CHECK(mydb__cache_contains(&db->cache, "t", b));

  /* c replaces b but the lock goes without a commit (pack drops c): b
   * stays, and the next commit (writing nothing) does not drop it either */
  CHECK_RC(mydb_lock_acquire(db, &lk, "t"), 0);
  CHECK_RC(mydb_object_write_near(db, c, "t", vc, strlen(vc), b), 0);
  mydb_lock_release(lk);
  CHECK(mydb__cache_contains(&db->cache, "t", b));
  CHECK_RC(mydb_lock_acquire(db, &lk, "t"), 0);
  ch.entry = "f";
  CHECK_RC(mydb_head_commit_release(lk, &ch, 1), 0);
  CHECK(mydb__cache_contains(&db->cache, "t", b));

  /* the retry writes c again and commits: now b goes */
  CHECK_RC(mydb_lock_acquire(db, &lk, "t"), 0);
  CHECK_RC(mydb_object_write_near(db, c, "t", vc, strlen(vc), b), 0);
  ch.entry = "e";
  ch.digest = c;
  CHECK_RC(mydb_head_commit_release(lk, &ch, 1), 0);
  CHECK(!mydb__cache_contains(&db->cache, "t", b));
  CHECK(mydb__cache_contains(&db->cache, "t", c));

  /* a base the cache does not hold (a tree's piece, which its writer keeps
   * and passes as the base's bytes) is not noted for the commit to look
   * for: nothing to drop */
  char d[MYDB_DIGEST_BUF], e[MYDB_DIGEST_BUF];
  const char *vd = "{\"v\":\"version d of a tree piece\"}";
  const char *ve = "{\"v\":\"version e of a tree piece\"}";
  CHECK_RC(mydb_sha256_hex(d, vd, strlen(vd)), 0);
  CHECK_RC(mydb_sha256_hex(e, ve, strlen(ve)), 0);
  CHECK_RC(mydb__object_write_piece(db, d, "t", vd, strlen(vd), NULL, NULL, 0, 0), 0);
  CHECK(!mydb__cache_contains(&db->cache, "t", d));
  CHECK_RC(mydb_lock_acquire(db, &lk, "t"), 0);
  CHECK_RC(mydb__object_write_piece(db, e, "t", ve, strlen(ve), d, vd, strlen(vd), 0), 0);
  CHECK(db->cache.nsup == 0);
  ch.digest = e;
  CHECK_RC(mydb_head_commit_release(lk, &ch, 1), 0);
  mydb_blob *got = NULL;
  CHECK_RC(mydb_object_read(db, &got, "t", e), 0);
  CHECK(got && mydb_blob_len(got) == strlen(ve) && memcmp(mydb_blob_data(got), ve, strlen(ve)) == 0);
  mydb_blob_release(got);
  mydb_close(db);
}

static void test_cache(void) {
  char root[PATH_MAX], p[PATH_MAX];
  make_root(root, "cache");
  mydb *w = open_db(root, 0);
  CHECK_RC(mydb_tenant_init(w, "t"), 0);
  char d[MYDB_DIGEST_BUF];
  CHECK_RC(mydb_object_write(w, d, "t", "cached bytes", 12), 0);

  mydb *on = open_db(root, 1), *off = open_db(root, 0);
  mydb_blob *b1, *b2;
  CHECK_RC(mydb_object_read(on, &b1, "t", d), 0);
  CHECK_RC(mydb_object_read(off, &b2, "t", d), 0);
  mydb_blob_release(b2);
  /* remove the file: the cache still answers (no I/O), the other doesn't */
  unlink(obj_path(p, root, "t", d));
  CHECK_RC(mydb_object_read(on, &b2, "t", d), 0);
  CHECK(b2 == b1); /* the same shared blob */
  mydb_blob_release(b2);
  mydb_blob_release(b1);
  CHECK_RC(mydb_object_read(off, &b2, "t", d), MYDB_ENOTFOUND);
  CHECK_RC(mydb_object_exists(on, "t", d), 1);
  mydb_close(on);
  mydb_close(off);

  /* a tiny budget evicts least recently used */
  mydb_options o = MYDB_OPTIONS_INIT;
  o.backend = "loose"; /* this file tests the loose layout */
  o.fsync = 0;
  o.cache_bytes = 100;
  mydb *small;
  CHECK_RC(mydb_open(&small, root, &o), 0);
  char da[MYDB_DIGEST_BUF], db_[MYDB_DIGEST_BUF];
  char a[60], bb[60];
  memset(a, 'a', sizeof a);
  memset(bb, 'b', sizeof bb);
  CHECK_RC(mydb_object_write(small, da, "t", a, sizeof a), 0);
  CHECK_RC(mydb_object_write(small, db_, "t", bb, sizeof bb), 0);
  /* da was evicted when db_ came in: removing its file makes it absent */
  unlink(obj_path(p, root, "t", da));
  CHECK_RC(mydb_object_read(small, &b1, "t", da), MYDB_ENOTFOUND);
  unlink(obj_path(p, root, "t", db_));
  CHECK_RC(mydb_object_read(small, &b1, "t", db_), 0);
  mydb_blob_release(b1);
  mydb_close(small);
  mydb_close(w);
}

/* mydb_object_read_once: served from the cache, never added to it. */
static void test_read_once(void) {
  char root[PATH_MAX], p[PATH_MAX];
  make_root(root, "read_once");
  mydb *w = open_db(root, 0);
  CHECK_RC(mydb_tenant_init(w, "t"), 0);
  char d1[MYDB_DIGEST_BUF], d2[MYDB_DIGEST_BUF];
  CHECK_RC(mydb_object_write(w, d1, "t", "read once", 9), 0);
  CHECK_RC(mydb_object_write(w, d2, "t", "read twice", 10), 0);
  mydb *on = open_db(root, 1);
  mydb_blob *b;
  CHECK_RC(mydb_object_read_once(on, &b, "t", d1), 0);
  CHECK(mydb_blob_len(b) == 9 && memcmp(mydb_blob_data(b), "read once", 9) == 0);
  mydb_blob_release(b);
  CHECK_RC(mydb_object_read(on, &b, "t", d2), 0); /* cached */
  mydb_blob_release(b);
  unlink(obj_path(p, root, "t", d1));
  unlink(obj_path(p, root, "t", d2));
  CHECK_RC(mydb_object_read(on, &b, "t", d1), MYDB_ENOTFOUND); /* was not kept */
  CHECK_RC(mydb_object_read_once(on, &b, "t", d2), 0);         /* the cache's */
  CHECK(mydb_blob_len(b) == 10);
  mydb_blob_release(b);
  CHECK_RC(mydb_object_read_once(on, &b, "t", "zz"), MYDB_EINVAL);
  mydb_close(on);
  mydb_close(w);
}

static int collect_entry(const char *e, size_t len, const char *d, void *pl) {
  char *s = pl;
  CHECK(strlen(d) == 64);
  CHECK(e[len] == '\0');
  strncat(s, e, len);
  strcat(s, "|");
  return 0;
}

static void test_heads(void) {
  char root[PATH_MAX], hp[PATH_MAX];
  make_root(root, "heads");
  mydb *db = open_db(root, 1);
  char d1[MYDB_DIGEST_BUF], d2[MYDB_DIGEST_BUF], d3[MYDB_DIGEST_BUF],
      out[MYDB_DIGEST_BUF];
  mydb_lock *lk;
  CHECK_RC(mydb_lock_acquire(db, &lk, "t"), MYDB_ENOTINIT);
  CHECK_RC(mydb_head_get(db, out, "t", "x", 1), MYDB_ENOTINIT);
  CHECK_RC(mydb_head_foreach(db, "t", collect_entry, NULL), MYDB_ENOTINIT);
  CHECK_RC(mydb_tenant_init(db, "t"), 0);
  xsnprintf(hp, sizeof hp, "%s/t/head", root);
  CHECK_RC(mydb_head_get(db, out, "t", "x", 1), MYDB_ENOTFOUND);
  CHECK(strstr(mydb_errmsg(), "x") != NULL);
  mydb_object_write(db, d1, "t", "1", 1);
  mydb_object_write(db, d2, "t", "2", 1);
  mydb_object_write(db, d3, "t", "3", 1);

  mydb *other = open_db(root, 1);
  CHECK_RC(mydb_head_get(other, out, "t", "b", 1), MYDB_ENOTFOUND);

  CHECK_RC(mydb_lock_acquire(db, &lk, "t"), 0);
  mydb_head_change ch[4] = {
      {"b", 1, d1}, {"a\n\"q\"", 5, d2}, {"\xff", 1, d3}, {"ab", 2, d1}};
  CHECK_RC(mydb_head_commit(lk, ch, 4), 0);
  CHECK_RC(mydb_lock_head_get(lk, out, "b", 1), 0);
  CHECK(strcmp(out, d1) == 0);
  CHECK_RC(mydb_lock_head_get(lk, out, "zz", 2), MYDB_ENOTFOUND);
  mydb_lock_release(lk);
  CHECK(count_lines(hp) == 2); /* header + one commit line */
  CHECK(get_is(db, "t", "b", d1));
  CHECK(get_is(db, "t", "a\n\"q\"", d2));
  CHECK(get_is(db, "t", "\xff", d3));
  /* the other handle sees it at once */
  CHECK(get_is(other, "t", "b", d1));
  CHECK(get_is(other, "t", "ab", d1));
  char list[256] = "";
  CHECK_RC(mydb_head_foreach(other, "t", collect_entry, list), 0);
  CHECK(strcmp(list, "a\n\"q\"|ab|b|\xff|") == 0);

  /* update + delete in one commit */
  CHECK_RC(mydb_lock_acquire(db, &lk, "t"), 0);
  mydb_head_change ch2[2] = {{"b", 1, d2}, {"ab", 2, NULL}};
  CHECK_RC(mydb_head_commit(lk, ch2, 2), 0);
  /* invalid batches write nothing */
  long sz = file_size(hp);
  mydb_head_change bad1[2] = {{"c", 1, d3}, {"d", 1, "nothex"}};
  CHECK_RC(mydb_head_commit(lk, bad1, 2), MYDB_EINVAL);
  mydb_head_change bad2[2] = {{"c", 1, d3}, {"", 0, d3}};
  CHECK_RC(mydb_head_commit(lk, bad2, 2), MYDB_EINVAL);
  mydb_head_change bad3[1] = {{"a\0b", 3, d3}};
  CHECK_RC(mydb_head_commit(lk, bad3, 1), MYDB_EINVAL);
  char longe[MYDB_ENTRY_MAX + 2];
  memset(longe, 'e', sizeof longe);
  mydb_head_change bad4[1] = {{longe, MYDB_ENTRY_MAX + 1, d3}};
  CHECK_RC(mydb_head_commit(lk, bad4, 1), MYDB_EINVAL);
  mydb_head_change ok4[1] = {{longe, MYDB_ENTRY_MAX, d3}};
  CHECK_RC(mydb_head_commit(lk, NULL, 1), MYDB_EINVAL);
  CHECK_RC(mydb_head_commit(lk, ch2, 0), MYDB_EINVAL);
  CHECK_RC(mydb_head_commit(NULL, ch2, 1), MYDB_EINVAL);
  CHECK(file_size(hp) == sz);
  CHECK_RC(mydb_head_commit(lk, ok4, 1), 0);
  mydb_lock_release(lk);
  CHECK(get_is(other, "t", "b", d2));
  CHECK_RC(mydb_head_get(other, out, "t", "ab", 2), MYDB_ENOTFOUND);
  CHECK_RC(mydb_head_get(other, out, "t", longe, MYDB_ENTRY_MAX), 0);
  CHECK(strcmp(out, d3) == 0);
  CHECK_RC(mydb_head_get(other, out, "t", longe, MYDB_ENTRY_MAX + 1),
           MYDB_EINVAL);
  CHECK_RC(mydb_head_get(other, out, "t", "", 0), MYDB_EINVAL);
  CHECK_RC(mydb_head_get(other, out, "t", NULL, 1), MYDB_EINVAL);
  CHECK_RC(mydb_head_get(other, NULL, "t", "b", 1), MYDB_EINVAL);
  CHECK_RC(mydb_head_get(other, out, "t/", "b", 1), MYDB_EINVAL);

  /* a fresh handle replays the journal */
  mydb *fresh = open_db(root, 1);
  CHECK(get_is(fresh, "t", "b", d2));
  CHECK(get_is(fresh, "t", "\xff", d3));
  CHECK_RC(mydb_head_get(fresh, out, "t", "ab", 2), MYDB_ENOTFOUND);
  mydb_close(fresh);

  /* torn last line: ignored by readers, truncated by the next writer */
  sz = file_size(hp);
  append_raw(hp, "[[\"torn\",\"0000");
  fresh = open_db(root, 1);
  CHECK_RC(mydb_head_get(fresh, out, "t", "torn", 4), MYDB_ENOTFOUND);
  CHECK(get_is(fresh, "t", "b", d2));
  CHECK(get_is(other, "t", "b", d2));
  CHECK_RC(commit1(db, "t", "after", d1), 0);
  char *s = slurp(hp, NULL);
  CHECK(s && strstr(s, "torn") == NULL);
  CHECK(s && s[strlen(s) - 1] == '\n');
  free(s);
  CHECK(get_is(fresh, "t", "after", d1));
  CHECK(get_is(other, "t", "after", d1));
  CHECK(get_is(db, "t", "after", d1));
  CHECK(count_lines(hp) == 5);
  mydb_close(fresh);

  /* a corrupt complete line is reported with its line number */
  append_raw(hp, "[[\"x\",\"nothex\"]]\n");
  CHECK_RC(mydb_head_get(other, out, "t", "b", 1), MYDB_ECORRUPT);
  CHECK(strstr(mydb_errmsg(), "line 6") != NULL);
  fresh = open_db(root, 1);
  CHECK_RC(mydb_head_get(fresh, out, "t", "b", 1), MYDB_ECORRUPT);
  CHECK_RC(commit1(fresh, "t", "b", d1), MYDB_ECORRUPT);
  mydb_close(fresh);

  /* a tenant whose head file vanished has no entries */
  CHECK_RC(mydb_tenant_init(db, "u"), 0);
  char up[PATH_MAX];
  xsnprintf(up, sizeof up, "%s/u/head", root);
  unlink(up);
  CHECK_RC(mydb_head_get(db, out, "u", "b", 1), MYDB_ENOTFOUND);
  list[0] = 0;
  CHECK_RC(mydb_head_foreach(db, "u", collect_entry, list), 0);
  CHECK(list[0] == 0);
  CHECK_RC(commit1(db, "u", "b", d1), MYDB_ENOTINIT);
  /* an empty head (say, zero bytes) gets its header on the next commit */
  close(open(up, O_WRONLY | O_CREAT, 0644));
  CHECK_RC(mydb_head_get(db, out, "u", "b", 1), MYDB_ENOTFOUND);
  CHECK_RC(commit1(db, "u", "b", d1), 0);
  CHECK(get_is(other, "u", "b", d1));
  s = slurp(up, NULL);
  CHECK(s && strncmp(s, "{\"mydb_head\":1}\n[[\"b\",", 22) == 0);
  free(s);

  /* a journal truncated behind mydb's back (same inode) is replayed
   * afresh by the next writer */
  CHECK(truncate(up, 16) == 0);
  CHECK_RC(commit1(db, "u", "c", d2), 0);
  CHECK_RC(mydb_head_get(db, out, "u", "b", 1), MYDB_ENOTFOUND);
  CHECK(get_is(db, "u", "c", d2));
  CHECK(count_lines(up) == 2);

  mydb_close(other);
  mydb_close(db);
}

/* Writers killed at random points leave at worst a torn last line; the
 * journal stays readable and every state seen is a whole commit. */
static void test_kill_writer(void) {
  char root[PATH_MAX];
  make_root(root, "kill");
  mydb *db = open_db(root, 1);
  CHECK_RC(mydb_tenant_init(db, "t"), 0);
  char d[MYDB_DIGEST_BUF];
  CHECK_RC(mydb_object_write(db, d, "t", "v", 1), 0);
  mydb_close(db);
  enum { BATCH = 2000 };
  static char names[BATCH][16];
  for (int k = 0; k < BATCH; k++) xsnprintf(names[k], 16, "k%05d", k);
  int bad = 0;
  for (int round = 0; round < 8; round++) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
      mydb *cdb;
      mydb_options o = MYDB_OPTIONS_INIT;
      o.backend = "loose"; /* this file tests the loose layout */
      o.fsync = 0;
      if (mydb_open(&cdb, root, &o)) _exit(3);
      static mydb_head_change ch[BATCH];
      for (int k = 0; k < BATCH; k++) {
        ch[k].entry = names[k];
        ch[k].entry_len = strlen(names[k]);
        ch[k].digest = d;
      }
      for (int i = 0;; i++) {
        mydb_lock *lk;
        if (mydb_lock_acquire(cdb, &lk, "t")) _exit(4);
        /* all entries or none: a batch sets all, the next removes all */
        for (int k = 0; k < BATCH; k++) ch[k].digest = (i & 1) ? NULL : d;
        if (mydb_head_commit(lk, ch, BATCH)) _exit(5);
        mydb_lock_release(lk);
      }
    }
    struct timespec ts = {0, 2000000 + (long)(rand() % 8000000)};
    nanosleep(&ts, NULL);
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    if (!WIFSIGNALED(status)) bad++;
    db = open_db(root, 1);
    int cnt = 0;
    if (mydb_head_foreach(db, "t", count_entry_cb, &cnt) != 0)
      bad++;
    if (cnt != 0 && cnt != BATCH) bad++;
    mydb_close(db);
  }
  CHECK(bad == 0);
  db = open_db(root, 1);
  CHECK_RC(commit1(db, "t", "final", d), 0);
  CHECK(get_is(db, "t", "final", d));
  mydb_close(db);
}

/* Temporary files left in ROOT/.tmp by writers that died are removed by the
 * next mydb_open (issue 5 §1); live writers' files, other names, other
 * kinds of file and anything behind a symlink are left alone. */
static int exists_at(const char *dir, const char *name) {
  char p[PATH_MAX];
  struct stat st;
  xsnprintf(p, sizeof p, "%s/%s", dir, name);
  return lstat(p, &st) == 0;
}

static void touch_at(const char *dir, const char *name, time_t age) {
  char p[PATH_MAX];
  xsnprintf(p, sizeof p, "%s/%s", dir, name);
  int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0 || write(fd, "partial", 7) != 7) {
    perror(p);
    exit(2);
  }
  close(fd);
  if (age) {
    struct timespec t[2];
    t[0].tv_sec = t[1].tv_sec = time(NULL) - age;
    t[0].tv_nsec = t[1].tv_nsec = 0;
    if (utimensat(AT_FDCWD, p, t, 0) != 0) {
      perror(p);
      exit(2);
    }
  }
}

/* Issue 11, item 9: a writer in another PID namespace (a container sharing
 * the store) has a pid that means nothing here, perhaps that of no process
 * at all: its temporary file is kept while it holds the file's lock, and
 * removed once nobody does. */
static void test_tmp_sweep_locked(void) {
  char root[PATH_MAX], tmp[PATH_MAX], p[PATH_MAX];
  make_root(root, "sweep-locked");
  mydb_close(open_db(root, 0));
  xsnprintf(tmp, sizeof tmp, "%s/.tmp", root);
  fflush(NULL);
  pid_t gone = fork(); /* a pid of no process */
  if (gone == 0) _exit(0);
  waitpid(gone, NULL, 0);
  char name[64];
  xsnprintf(name, sizeof name, "%ld-0-0123456789abcdef.tmp", (long)gone);
  touch_at(tmp, name, 0);
  xsnprintf(p, sizeof p, "%s/%s", tmp, name);
  int fd = open(p, O_RDWR | O_CLOEXEC);
  CHECK(fd >= 0);
  CHECK(flock(fd, LOCK_EX | LOCK_NB) == 0); /* the writer, mid-write */
  mydb_close(open_db(root, 0));             /* sweeps */
  CHECK(exists_at(tmp, name));
  close(fd); /* the writer is gone */
  mydb_close(open_db(root, 0));
  CHECK(!exists_at(tmp, name));
  /* mydb's own temporary files are locked while they are written */
  mydb *db = open_db(root, 0);
  int tfd = mydb__tmp_create(db, p, 0);
  CHECK(tfd >= 0);
  int other = open(p, O_RDONLY | O_CLOEXEC);
  CHECK(other >= 0);
  CHECK(flock(other, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK);
  close(other);
  close(tfd);
  unlink(p);
  mydb_close(db);
}

/* Issue 11 item 6: an object is read-only once durable (name and bytes);
 * a writer that finds a writable one there (another writer between its
 * rename and its directory fsync, or one that died there, or one with fsync
 * off) makes it durable before its own commit can name it. */
static void test_dedup_durable(void) {
  char root[PATH_MAX], p[PATH_MAX], d[MYDB_DIGEST_BUF], d2[MYDB_DIGEST_BUF];
  struct stat st;
  make_root(root, "dedup-durable");
  mydb_options o = MYDB_OPTIONS_INIT; /* fsync on */
  o.backend = "loose"; /* this file tests the loose layout */
  mydb *db = NULL;
  CHECK_RC(mydb_open(&db, root, &o), MYDB_OK);
  CHECK_RC(mydb_tenant_init(db, "alice"), MYDB_OK);
  CHECK_RC(mydb_object_write(db, d, "alice", "durable", 7), MYDB_OK);
  CHECK(stat(obj_path(p, root, "alice", d), &st) == 0 && (st.st_mode & 0222) == 0);
  mydb *nosync = open_db(root, 0); /* fsync off: not durable, not sealed */
  CHECK_RC(mydb_object_write(nosync, d2, "alice", "later", 5), MYDB_OK);
  CHECK(stat(obj_path(p, root, "alice", d2), &st) == 0 && (st.st_mode & 0200));
  CHECK_RC(mydb_object_write(nosync, d, "alice", "durable", 7), MYDB_OK);
  CHECK_RC(mydb_object_write(db, d2, "alice", "later", 5), MYDB_OK);
  CHECK(stat(p, &st) == 0 && (st.st_mode & 0222) == 0);
  /* as if its writer died between the rename and the directory fsync */
  CHECK(chmod(p, 0644) == 0);
  CHECK(mydb__fault_countdown == 0);
  atomic_store(&mydb__fault_countdown, 1); /* making it durable fails */
  CHECK_RC(mydb_object_write(db, d2, "alice", "later", 5), MYDB_EIO);
  atomic_store(&mydb__fault_countdown, 0);
  CHECK(stat(p, &st) == 0 && (st.st_mode & 0200));
  CHECK_RC(mydb_object_write(db, d2, "alice", "later", 5), MYDB_OK);
  CHECK(stat(p, &st) == 0 && (st.st_mode & 0222) == 0);
  mydb_close(nosync);
  mydb_close(db);
}

static void test_tmp_sweep(void) {
  char root[PATH_MAX], tmp[PATH_MAX], outside[PATH_MAX], p[PATH_MAX];
  make_root(root, "sweep");
  make_root(outside, "sweep-outside");
  mkdir(outside, 0777);
  mydb_close(open_db(root, 0));
  xsnprintf(tmp, sizeof tmp, "%s/.tmp", root);

  /* a pid that is surely gone: a child that exited and was reaped */
  fflush(NULL);
  pid_t dead = fork();
  if (dead == 0) _exit(0);
  waitpid(dead, NULL, 0);
  long self = (long)getpid(), parent = (long)getppid();
  char n_dead[64], n_dead_dir[64], n_dead_link[64], n_self[64], n_parent[64],
      n_self_old[64];
  xsnprintf(n_dead, sizeof n_dead, "%ld-0-0123456789abcdef.tmp", (long)dead);
  xsnprintf(n_dead_dir, sizeof n_dead_dir, "%ld-1-0123456789abcdef.tmp", (long)dead);
  xsnprintf(n_dead_link, sizeof n_dead_link, "%ld-2-0123456789abcdef.tmp", (long)dead);
  xsnprintf(n_self, sizeof n_self, "%ld-3-0123456789abcdef.tmp", self);
  xsnprintf(n_parent, sizeof n_parent, "%ld-4-0123456789abcdef.tmp", parent);
  xsnprintf(n_self_old, sizeof n_self_old, "%ld-5-0123456789abcdef.tmp", self);
  touch_at(tmp, n_dead, 0);
  touch_at(tmp, n_self, 0);
  touch_at(tmp, n_parent, 0);
  touch_at(tmp, n_self_old, 2 * 3600);   /* stale: removed whatever its pid */
  touch_at(tmp, "notes.txt", 2 * 3600);  /* not a mydb temporary file */
  touch_at(tmp, "1-x-0123456789abcdef.tmp", 2 * 3600); /* malformed */
  xsnprintf(p, sizeof p, "%s/%s", tmp, n_dead_dir);
  CHECK(mkdir(p, 0777) == 0);
  touch_at(outside, "target", 0);
  char target[PATH_MAX];
  xsnprintf(target, sizeof target, "%s/target", outside);
  xsnprintf(p, sizeof p, "%s/%s", tmp, n_dead_link);
  CHECK(symlink(target, p) == 0);

  /* a writer that died but was not reaped yet (a zombie: in a container
   * nobody may ever reap it) */
  fflush(NULL);
  pid_t zombie = fork();
  if (zombie == 0) _exit(0);
  char n_zombie[64];
  xsnprintf(n_zombie, sizeof n_zombie, "%ld-6-0123456789abcdef.tmp", (long)zombie);
  touch_at(tmp, n_zombie, 0);
  for (int i = 0; i < 500; i++) { /* until it has exited */
    char sp[64], st[256] = "";
    xsnprintf(sp, sizeof sp, "/proc/%ld/stat", (long)zombie);
    FILE *f = fopen(sp, "r");
    if (!f) break;
    size_t n = fread(st, 1, sizeof st - 1, f);
    fclose(f);
    st[n] = '\0';
    char *paren = strrchr(st, ')');
    if (paren && paren[1] == ' ' && paren[2] == 'Z') break;
    struct timespec ts = {0, 2000000};
    nanosleep(&ts, NULL);
  }

  mydb_close(open_db(root, 0));
  waitpid(zombie, NULL, 0);
  CHECK(!exists_at(tmp, n_zombie));
  CHECK(!exists_at(tmp, n_dead));
  CHECK(!exists_at(tmp, n_self_old));
  CHECK(exists_at(tmp, n_self));
  CHECK(parent <= 1 || exists_at(tmp, n_parent));
  CHECK(exists_at(tmp, "notes.txt"));
  CHECK(exists_at(tmp, "1-x-0123456789abcdef.tmp"));
  CHECK(exists_at(tmp, n_dead_dir));
  CHECK(exists_at(tmp, n_dead_link));
  CHECK(exists_at(outside, "target"));

  /* ROOT/.tmp replaced by a symlink: nothing behind it is removed */
  char root2[PATH_MAX], tmp2[PATH_MAX];
  make_root(root2, "sweep-link");
  mkdir(root2, 0777);
  xsnprintf(tmp2, sizeof tmp2, "%s/.tmp", root2);
  CHECK(symlink(outside, tmp2) == 0);
  touch_at(outside, n_dead, 0);
  mydb *db = NULL;
  mydb_options o = MYDB_OPTIONS_INIT;
  o.backend = "loose"; /* this file tests the loose layout */
  o.fsync = 0;
  if (mydb_open(&db, root2, &o) == MYDB_OK) mydb_close(db);
  CHECK(exists_at(outside, n_dead));
  CHECK(exists_at(outside, "target"));
}

/* Fault injection (STYLE.md 14, SQLite's SimulateIOError): each system call
 * of the core's I/O wrappers fails once in turn (EIO), during an object
 * write, a commit, a verified read and a tenant init, with fsync on. Every
 * call returns OK or EIO; afterwards no temporary file is left, the head
 * points to an object that reads and verifies, a commit that returned OK is
 * visible, and a half-made tenant is completed by the next init. */
/* Each system call of a write fails in turn (the n-th; with sticky, every
 * one from the n-th on: a disk that stays broken). */
static void test_faults(int sticky) {
  char root[PATH_MAX], tmpdir[PATH_MAX];
  make_root(root, sticky ? "faults-sticky" : "faults");
  xsnprintf(tmpdir, sizeof tmpdir, "%s/.tmp", root);
  mydb_options o = MYDB_OPTIONS_INIT;
  o.backend = "loose"; /* this file tests the loose layout */
  o.cache_bytes = 0; /* every read does its I/O */
  mydb *db = NULL;
  CHECK_RC(mydb_open(&db, root, &o), MYDB_OK);
  CHECK_RC(mydb_tenant_init(db, "t"), MYDB_OK);
  char d0[MYDB_DIGEST_BUF];
  CHECK_RC(mydb_object_write(db, d0, "t", "base", 4), MYDB_OK);
  CHECK_RC(commit1(db, "t", "e", d0), MYDB_OK);
  int bad = 0, fired_total = 0, done = 0, not_durable = 0;
  for (int n = 1; n < 1000 && !done; n++) {
    char val[32], d[MYDB_DIGEST_BUF] = "", before[MYDB_DIGEST_BUF], tn[32];
    CHECK_RC(mydb_head_get(db, before, "t", "e", 1), MYDB_OK);
    xsnprintf(val, sizeof val, "value %d", n);
    xsnprintf(tn, sizeof tn, "t%d", n);
    atomic_store(&mydb__fault_fired, 0);
    atomic_store(&mydb__fault_sticky, sticky);
    atomic_store(&mydb__fault_countdown, n);
    int rc[4] = {0, 0, 0, 0}, visible = 0;
    rc[0] = mydb_object_write(db, d, "t", val, strlen(val));
    if (rc[0] == MYDB_OK) {
      mydb_lock *lk = NULL;
      rc[1] = mydb_lock_acquire(db, &lk, "t");
      if (rc[1] == MYDB_OK) {
        mydb_head_change ch = {"e", 1, d};
        rc[1] = mydb_head_commit(lk, &ch, 1);
        if (rc[1] != MYDB_OK)
          visible = strncmp(mydb_errmsg(), "committed but not durable: ", 27) == 0;
        mydb_lock_release(lk);
      }
    }
    mydb_blob *b = NULL;
    rc[2] = mydb_object_read(db, &b, "t", d0);
    mydb_blob_release(b);
    rc[3] = mydb_tenant_init(db, tn);
    atomic_store(&mydb__fault_countdown, 0);
    atomic_store(&mydb__fault_sticky, 0);
    long fired = atomic_exchange(&mydb__fault_fired, 0);
    for (int i = 0; i < 4; i++)
      if (rc[i] != MYDB_OK && rc[i] != MYDB_EIO) {
        bad++;
        fprintf(stderr, "fault %d: call %d returned %d (%s)\n", n, i, rc[i],
                mydb_errmsg());
      }
    if (fired == 0) { /* fewer than n calls: every one has failed once */
      done = 1;
      for (int i = 0; i < 4; i++) bad += rc[i] != MYDB_OK;
      break;
    }
    fired_total++;
    /* the store is sound, seen by a fresh handle */
    if (dir_entries(tmpdir) != 0) {
      bad++;
      fprintf(stderr, "fault %d: a temporary file was left\n", n);
    }
    mydb *db2 = open_db(root, 0);
    char cur[MYDB_DIGEST_BUF];
    if (mydb_head_get(db2, cur, "t", "e", 1) != MYDB_OK) {
      bad++;
      fprintf(stderr, "fault %d: head unreadable: %s\n", n, mydb_errmsg());
    } else {
      if (mydb_object_read(db2, &b, "t", cur) != MYDB_OK) {
        bad++;
        fprintf(stderr, "fault %d: head object unreadable: %s\n", n, mydb_errmsg());
      }
      mydb_blob_release(b);
      b = NULL;
      /* The contract (README "Errors"): OK, or an error and the old head,
       * or "committed but not durable" and the new head. */
      int want_new = rc[0] == MYDB_OK && (rc[1] == MYDB_OK || visible);
      if (strcmp(cur, want_new ? d : before) != 0) {
        bad++;
        fprintf(stderr, "fault %d: head is the %s version, the commit returned %d (%s)\n", n,
                strcmp(cur, d) == 0 ? "new" : "old", rc[1], visible ? "visible" : "not visible");
      }
      if (visible) not_durable++;
    }
    if (mydb_tenant_init(db2, tn) != MYDB_OK || mydb_tenant_exists(db2, tn) != 1) {
      bad++;
      fprintf(stderr, "fault %d: tenant %s not completed: %s\n", n, tn, mydb_errmsg());
    }
    mydb_close(db2);
  }
  CHECK(done);
  CHECK(fired_total > 20);
  CHECK(bad == 0);
  /* The journal's fdatasync was among the calls failed. Alone, the commit
   * is durable after all: the journal is rewritten into a new file (item
   * 11: never over pages the kernel may have dropped). On a disk that
   * stays broken the rewrite fails too: visible, not durable. */
  if (sticky) CHECK(not_durable >= 1); else CHECK(not_durable == 0);
  printf("  fault injection%s: %d system calls failed in turn, store sound after "
         "each (%d commits visible but not durable)\n",
         sticky ? " (every call from the n-th)" : "", fired_total, not_durable);
  mydb_close(db);
}

static void test_compaction(void) {
  char root[PATH_MAX], hp[PATH_MAX];
  make_root(root, "compact");
  mydb *db = open_db(root, 1);
  CHECK_RC(mydb_tenant_init(db, "t"), 0);
  xsnprintf(hp, sizeof hp, "%s/t/head", root);
  char d[8][MYDB_DIGEST_BUF];
  for (int i = 0; i < 8; i++) {
    char v[8];
    xsnprintf(v, sizeof v, "v%d", i);
    CHECK_RC(mydb_object_write(db, d[i], "t", v, strlen(v)), 0);
  }
  CHECK_RC(commit1(db, "t", "keep", d[7]), 0);
  /* a reader that has replayed the journal before compaction */
  mydb *early = open_db(root, 1);
  CHECK(get_is(early, "t", "keep", d[7]));
  struct stat st0, st1;
  stat(hp, &st0);

  mydb_lock *lk;
  CHECK_RC(mydb_lock_acquire(db, &lk, "t"), 0);
  long maxsize = 0;
  int bad = 0;
  for (int i = 0; i < 2100; i++) {
    char e[8];
    xsnprintf(e, sizeof e, "e%d", i % 3);
    mydb_head_change c = {e, strlen(e), d[i % 7]};
    if (mydb_head_commit(lk, &c, 1) != 0) bad++;
    long sz = file_size(hp);
    if (sz > maxsize) maxsize = sz;
  }
  mydb_lock_release(lk);
  CHECK(bad == 0);
  stat(hp, &st1);
  CHECK(st1.st_ino != st0.st_ino);
  /* bounded: at most ~1025 short records before a compaction */
  CHECK(maxsize < 1100 * 100);
  CHECK(count_lines(hp) < 1100);
  /* values intact, in all handles */
  for (int k = 0; k < 3; k++) {
    char e[8];
    xsnprintf(e, sizeof e, "e%d", k);
    int last = 2099 - ((2099 - k) % 3); /* last i with i%3 == k */
    CHECK(get_is(db, "t", e, d[last % 7]));
    CHECK(get_is(early, "t", e, d[last % 7]));
  }
  CHECK(get_is(early, "t", "keep", d[7]));
  mydb *late = open_db(root, 1);
  CHECK(get_is(late, "t", "keep", d[7]));
  CHECK(get_is(late, "t", "e0", d[2097 % 7]));
  mydb_close(late);
  /* compacted form: header then one sorted line per entry (plus commits
   * made after the last compaction) */
  char *s = slurp(hp, NULL);
  CHECK(s && strncmp(s, "{\"mydb_head\":1}\n[[\"e0\",", 23) == 0);
  free(s);
  xsnprintf(hp, sizeof hp, "%s/.tmp", root);
  CHECK(dir_entries(hp) == 0);
  mydb_close(early);
  mydb_close(db);
}

/* ------------------------------------------------- concurrent counters */

static int increment(mydb *db, const char *tenant, const char *entry) {
  mydb_lock *lk;
  char d[MYDB_DIGEST_BUF];
  int rc = mydb_lock_acquire(db, &lk, tenant);
  if (rc) return rc;
  long v = 0;
  rc = mydb_lock_head_get(lk, d, entry, strlen(entry));
  if (rc == 0) {
    mydb_blob *b;
    rc = mydb_object_read(db, &b, tenant, d);
    if (rc == 0) {
      v = strtol(mydb_blob_data(b), NULL, 10);
      mydb_blob_release(b);
    }
  } else if (rc == MYDB_ENOTFOUND) {
    rc = 0;
  }
  if (rc == 0) {
    char num[32];
    xsnprintf(num, sizeof num, "%ld", v + 1);
    rc = mydb_object_write(db, d, tenant, num, strlen(num));
  }
  if (rc == 0) {
    mydb_head_change c = {entry, strlen(entry), d};
    rc = mydb_head_commit(lk, &c, 1);
  }
  mydb_lock_release(lk);
  return rc;
}

static long read_counter(mydb *db, const char *tenant, const char *entry) {
  char d[MYDB_DIGEST_BUF];
  mydb_blob *b;
  if (mydb_head_get(db, d, tenant, entry, strlen(entry))) return -1;
  if (mydb_object_read(db, &b, tenant, d)) return -1;
  long v = strtol(mydb_blob_data(b), NULL, 10);
  mydb_blob_release(b);
  return v;
}

struct targ {
  mydb *db;
  int errors;
};

static void *thread_main(void *p) {
  struct targ *a = p;
  for (int i = 0; i < 250; i++) {
    if (increment(a->db, "c", "counter") != 0) a->errors++;
    /* readers interleaved with writers */
    char d[MYDB_DIGEST_BUF];
    if (mydb_head_get(a->db, d, "c", "counter", 7) != 0) a->errors++;
  }
  return NULL;
}

static void test_threads(void) {
  char root[PATH_MAX];
  make_root(root, "threads");
  mydb *db = open_db(root, 1);
  CHECK_RC(mydb_tenant_init(db, "c"), 0);
  mydb *db2 = open_db(root, 1); /* threads 2-3 use a second handle */
  pthread_t th[4];
  struct targ a[4];
  for (int i = 0; i < 4; i++) {
    a[i].db = i < 2 ? db : db2;
    a[i].errors = 0;
    pthread_create(&th[i], NULL, thread_main, &a[i]);
  }
  int errors = 0;
  for (int i = 0; i < 4; i++) {
    pthread_join(th[i], NULL);
    errors += a[i].errors;
  }
  CHECK(errors == 0);
  CHECK(read_counter(db, "c", "counter") == 1000);
  CHECK(read_counter(db2, "c", "counter") == 1000);
  mydb_close(db2);
  mydb_close(db);
}

static void test_processes(void) {
  char root[PATH_MAX];
  make_root(root, "procs");
  mydb *db = open_db(root, 1);
  CHECK_RC(mydb_tenant_init(db, "c"), 0);
  CHECK_RC(commit1(db, "c", "dummy", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"), 0);
  mydb_close(db); /* the children must not inherit a handle (mydb.h) */
  fflush(NULL);
  pid_t pids[4];
  for (int i = 0; i < 4; i++) {
    pids[i] = fork();
    if (pids[i] == 0) {
      mydb *cdb;
      mydb_options o = MYDB_OPTIONS_INIT;
      o.backend = "loose"; /* this file tests the loose layout */
      o.fsync = 0;
      if (mydb_open(&cdb, root, &o)) _exit(3);
      int errors = 0;
      for (int k = 0; k < 250; k++)
        if (increment(cdb, "c", "counter") != 0) errors++;
      mydb_close(cdb);
      _exit(errors ? 1 : 0);
    }
  }
  int ok = 1;
  for (int i = 0; i < 4; i++) {
    int status;
    if (waitpid(pids[i], &status, 0) != pids[i] || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0)
      ok = 0;
  }
  CHECK(ok);
  db = open_db(root, 1);
  CHECK(read_counter(db, "c", "counter") == 1000);
  mydb_close(db);
}

static void test_closed(void) {
  char root[PATH_MAX];
  make_root(root, "closed");
  mydb_close(NULL);
  mydb_lock_release(NULL);
  mydb_blob_release(NULL);
  CHECK(mydb_blob_len(NULL) == 0);
  mydb *db = open_db(root, 1);
  CHECK_RC(mydb_tenant_init(db, "t"), 0);
  char d[MYDB_DIGEST_BUF];
  CHECK_RC(mydb_object_write(db, d, "t", "x", 1), 0);
  mydb_lock *lk;
  CHECK_RC(mydb_lock_acquire(db, &lk, "t"), 0);
  CHECK_RC(mydb_lock_acquire(db, NULL, "t"), MYDB_EINVAL);
  mydb_lock *lkx = (mydb_lock *)1;
  CHECK_RC(mydb_lock_acquire(NULL, &lkx, "t"), MYDB_EINVAL);
  CHECK(lkx == NULL);
  mydb_close(db); /* releases the lock */
  mydb_head_change c = {"e", 1, d};
  CHECK_RC(mydb_head_commit(lk, &c, 1), MYDB_ECLOSED);
  CHECK(strlen(mydb_errmsg()) > 0);
  char out[MYDB_DIGEST_BUF];
  CHECK_RC(mydb_lock_head_get(lk, out, "e", 1), MYDB_ECLOSED);
  CHECK_RC(mydb_lock_head_get(NULL, out, "e", 1), MYDB_EINVAL);
  /* the flock was dropped: another handle gets the lock at once */
  mydb *db2 = open_db(root, 1);
  mydb_lock *lk2;
  CHECK_RC(mydb_lock_acquire(db2, &lk2, "t"), 0);
  mydb_lock_release(lk2);
  mydb_lock_release(lk);
  CHECK_RC(mydb_head_get(NULL, out, "t", "e", 1), MYDB_EINVAL);
  CHECK_RC(mydb_head_foreach(NULL, "t", collect_entry, NULL), MYDB_EINVAL);
  CHECK_RC(mydb_head_foreach(db2, "t", NULL, NULL), MYDB_EINVAL);
  CHECK_RC(mydb_tenant_exists(NULL, "t"), MYDB_EINVAL);
  CHECK_RC(mydb_tenant_foreach(NULL, count_cb, NULL), MYDB_EINVAL);
  CHECK_RC(mydb_object_foreach(NULL, "t", count_cb, NULL), MYDB_EINVAL);
  CHECK_RC(mydb_object_exists(NULL, "t", d), MYDB_EINVAL);
  mydb_close(db2);
}

/* System errors name the path and the reason. */
static void test_syserr(void) {
  char root[PATH_MAX], p[PATH_MAX];
  make_root(root, "syserr");
  mydb *db = open_db(root, 1);
  CHECK_RC(mydb_tenant_init(db, "t"), 0);
  /* ROOT/.tmp replaced by a file: temporary files cannot be created */
  xsnprintf(p, sizeof p, "%s/.tmp", root);
  CHECK(rmdir(p) == 0);
  close(open(p, O_WRONLY | O_CREAT, 0644));
  char d[MYDB_DIGEST_BUF];
  CHECK_RC(mydb_object_write(db, d, "t", "x", 1), MYDB_EIO);
  CHECK(strstr(mydb_errmsg(), ".tmp") != NULL);
  CHECK(strstr(mydb_errmsg(), "Not a directory") != NULL);
  unlink(p);
  /* ROOT/.tmp removed: it is created again */
  CHECK_RC(mydb_object_write(db, d, "t", "x", 1), 0);
  /* a handle on a root that is a file */
  mydb *bad = NULL;
  xsnprintf(p, sizeof p, "%s/t/lock", root);
  CHECK_RC(mydb_open(&bad, p, NULL), MYDB_EIO);
  CHECK(bad == NULL && strstr(mydb_errmsg(), "lock") != NULL);
  mydb_close(db);
}

static void test_many_entries(void) {
  char root[PATH_MAX];
  make_root(root, "many");
  mydb *db = open_db(root, 1);
  CHECK_RC(mydb_tenant_init(db, "t"), 0);
  char d[MYDB_DIGEST_BUF];
  CHECK_RC(mydb_object_write(db, d, "t", "v", 1), 0);
  enum { N = 100000, BATCH = 1000 };
  static char names[N][16];
  mydb_head_change *ch = malloc(BATCH * sizeof *ch);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  int bad = 0;
  for (int i = 0; i < N; i += BATCH) {
    mydb_lock *lk;
    if (mydb_lock_acquire(db, &lk, "t")) { bad++; break; }
    for (int k = 0; k < BATCH; k++) {
      xsnprintf(names[i + k], 16, "k%06d", i + k);
      ch[k].entry = names[i + k];
      ch[k].entry_len = strlen(names[i + k]);
      ch[k].digest = d;
    }
    if (mydb_head_commit(lk, ch, BATCH)) bad++;
    mydb_lock_release(lk);
  }
  free(ch);
  CHECK(bad == 0);
  mydb *db2 = open_db(root, 1);
  int miss = 0;
  char out[MYDB_DIGEST_BUF];
  for (int i = 0; i < N; i++)
    if (mydb_head_get(db2, out, "t", names[i], strlen(names[i]))) miss++;
  CHECK(miss == 0);
  int cnt = 0;
  CHECK_RC(mydb_head_foreach(db2, "t", (int (*)(const char *, size_t,
                                                 const char *, void *))
                             NULL, NULL), MYDB_EINVAL);
  (void)cnt;
  /* unchanged-get speed: one stat + lookup */
  struct timespec g0, g1;
  clock_gettime(CLOCK_MONOTONIC, &g0);
  for (int i = 0; i < N; i++)
    if (mydb_head_get(db, out, "t", names[i], strlen(names[i]))) miss++;
  clock_gettime(CLOCK_MONOTONIC, &g1);
  CHECK(miss == 0);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double gets = (g1.tv_sec - g0.tv_sec) + (g1.tv_nsec - g0.tv_nsec) / 1e9;
  double all = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
  fprintf(stderr, "  100k entries: %.2fs total, head_get %.2f us/op\n", all,
          gets / N * 1e6);
  mydb_close(db2);
  mydb_close(db);
}

/* Deltas (src/format/delta.c): every edit of one span round-trips; a delta
 * is kept only when under a quarter of the object; damaged ones refused. */
/* mydb__numtext against the general way it shortcuts (the first of
 * %.15g, %.16g, %.17g that strtod reads back): the same text for times,
 * six-decimal values, random bit patterns and the edges of the shortcut. */
static size_t numtext_reference(char *out, double d) {
  int n = 0;
  int first = (d != 0 && fabs(d) < DBL_MIN) ? 1 : 15;
  for (int prec = first; prec <= 17; prec++) {
    n = snprintf(out, MYDB_NUMTEXT_MAX, "%.*g", prec, d);
    if (strtod(out, NULL) == d) break;
  }
  return (size_t)n;
}

static int numtext_same(double d) {
  char a[MYDB_NUMTEXT_MAX], b[MYDB_NUMTEXT_MAX];
  size_t na = mydb__numtext(a, d), nb = numtext_reference(b, d);
  if (na == nb && memcmp(a, b, na) == 0) return 1;
  fprintf(stderr, "numtext %.17g: '%.*s', reference '%.*s'\n", d, (int)na, a, (int)nb, b);
  return 0;
}

static void test_numtext(void) {
  static const double edges[] = {
      1.0, -1.0, 0.999999, 1.000001, 0.5, 1e-4, 123.456, 0.1, 100.0, 1e15,
      1764948000.123456, 1764948000.1234567, 1764948000.5, 4294967296.000001,
      8589934591.999999, 8589934592.0, 8589934592.000002, 9999999999.999999,
      12345678.9, 2.5e-310, DBL_MIN, DBL_MAX, -3.25, 1.0000005, 2.0000015};
  int ok = 1;
  for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
    ok &= numtext_same(edges[i]);
    ok &= numtext_same(nextafter(edges[i], 0));
    ok &= numtext_same(nextafter(edges[i], INFINITY));
  }
  unsigned seed = 11;
  for (int i = 0; i < 200000 && ok; i++) {
    uint64_t r = (uint64_t)rand_r(&seed) << 33 ^ (uint64_t)rand_r(&seed) << 11 ^ (uint64_t)rand_r(&seed);
    /* six decimals at every scale of the shortcut, times to the
     * microsecond, numbers near them, and any bit pattern */
    double six = (double)(r % 8600000000000000ULL) / 1e6;
    double t = 1.7e9 + (double)(r % 100000000000000ULL) / 1e6;
    uint64_t bits = r * 0x9e3779b97f4a7c15ULL;
    double any;
    memcpy(&any, &bits, sizeof any);
    ok &= numtext_same(six) & numtext_same(-six) & numtext_same(t);
    ok &= numtext_same(nextafter(t, 0)) & numtext_same(t / 7);
    if (isfinite(any)) ok &= numtext_same(any);
  }
  CHECK(ok);
}

/* mydb__crc32 against the check value of CRC-32 and a bit-at-a-time
 * reference, on every length to 600 at the first sixteen alignments (the
 * folding path takes 64 bytes and more, 16 at a time; the tables the
 * rest), and chained at a third and at an odd split. */
static uint32_t crc32_reference(const unsigned char *p, size_t n) {
  uint32_t c = 0xffffffffu;
  while (n--) {
    c ^= *p++;
    for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
  }
  return ~c;
}

static void test_crc32(void) {
  CHECK(mydb__crc32(0, "123456789", 9) == 0xCBF43926u);
  CHECK(mydb__crc32(0, "", 0) == 0);
  unsigned char buf[640];
  unsigned seed = 5;
  for (size_t i = 0; i < sizeof buf; i++) buf[i] = (unsigned char)rand_r(&seed);
  int ok = 1;
  for (size_t off = 0; off < 16; off++)
    for (size_t n = 0; n + off <= 600; n++) {
      uint32_t want = crc32_reference(buf + off, n);
      ok &= mydb__crc32(0, buf + off, n) == want;
      size_t third = n / 3, odd = n > 77 ? 77 : n;
      ok &= mydb__crc32(mydb__crc32(0, buf + off, third), buf + off + third, n - third) == want;
      ok &= mydb__crc32(mydb__crc32(0, buf + off, odd), buf + off + odd, n - odd) == want;
    }
  CHECK(ok);
  memset(buf, 0xff, sizeof buf); /* (all ones: every carry-less product full) */
  CHECK(mydb__crc32(0, buf, sizeof buf) == crc32_reference(buf, sizeof buf));
}

/* The digest filter: every digest added is "may"; of 100,000 absent ones
 * few are (two bits in one word, sixteen bits a digest: ~1.7%); it asks to be rebuilt
 * when never built and when full; freed, it is as new. */
static void test_dfilter(void) {
  mydb__dfilter f = {0};
  CHECK(mydb__dfilter_full(&f));
  unsigned char d[32];
  CHECK(mydb__dfilter_may(&f, (const unsigned char *)"01234567890123456789012345678901"));
  mydb__dfilter_reset(&f, 1000);
  int all = 1, rebuilt = 0;
  for (unsigned i = 0; i < 50000; i++) {
    (void)mydb__sha256(d, &i, sizeof i);
    if (mydb__dfilter_full(&f)) { /* as the pack's index does: sized anew, all again */
      rebuilt++;
      mydb__dfilter_reset(&f, 2 * i);
      for (unsigned j = 0; j < i; j++) {
        unsigned char e[32];
        (void)mydb__sha256(e, &j, sizeof j);
        mydb__dfilter_add(&f, e);
      }
    }
    mydb__dfilter_add(&f, d);
  }
  for (unsigned i = 0; i < 50000; i++) {
    (void)mydb__sha256(d, &i, sizeof i);
    all &= mydb__dfilter_may(&f, d);
  }
  CHECK(all);
  CHECK(rebuilt >= 2);
  unsigned fp = 0;
  for (unsigned i = 50000; i < 150000; i++) {
    (void)mydb__sha256(d, &i, sizeof i);
    fp += (unsigned)mydb__dfilter_may(&f, d);
  }
  printf("  digest filter: %u false positives in 100,000 absent digests\n", fp);
  CHECK(fp < 5000); /* (< 5%) */
  mydb__dfilter_free(&f);
  CHECK(mydb__dfilter_full(&f) && mydb__dfilter_may(&f, d));
}

static void test_delta(void) {
  unsigned char base[2048], obj[2100], out[2100], digest[32];
  unsigned seed = 7;
  for (size_t i = 0; i < sizeof base; i++) base[i] = (unsigned char)(rand_r(&seed) & 0x3f);
  memset(digest, 0xab, sizeof digest);
  int ok = 1, kept = 0;
  for (int round = 0; round < 300; round++) {
    /* one span of base replaced by 0..40 new bytes at a random place */
    size_t at = (size_t)rand_r(&seed) % sizeof base;
    size_t cut = (size_t)rand_r(&seed) % 41, ins = (size_t)rand_r(&seed) % 41;
    if (cut > sizeof base - at) cut = sizeof base - at;
    memcpy(obj, base, at);
    for (size_t i = 0; i < ins; i++) obj[at + i] = (unsigned char)(0x40 + (rand_r(&seed) & 0x3f));
    memcpy(obj + at + ins, base + at + cut, sizeof base - at - cut);
    size_t olen = sizeof base - cut + ins;
    mydb_buf d = MYDB_BUF_INIT;
    size_t n = mydb__delta_make(&d, digest, base, sizeof base, obj, olen);
    if (n == 0) { ok = 0; mydb_buf_free(&d); continue; } /* small edits always pay */
    kept++;
    ok &= n == d.len && n <= 32 + 4 + ins && memcmp(d.data, digest, 32) == 0;
    ok &= mydb__delta_size(d.data, d.len, sizeof base) == olen;
    /* the spans are the longest common prefix, then suffix (byte by byte
     * here; delta.c compares words) */
    size_t lim = olen < sizeof base ? olen : sizeof base, pre = 0, suf = 0, dp, ds, dm;
    const unsigned char *bd;
    while (pre < lim && base[pre] == obj[pre]) pre++;
    while (suf < lim - pre && base[sizeof base - 1 - suf] == obj[olen - 1 - suf]) suf++;
    ok &= mydb__delta_parse(d.data, d.len, &bd, &dp, &ds, &dm) == 0 && dp == pre && ds == suf;
    mydb__delta_apply(out, base, sizeof base, d.data, d.len);
    ok &= memcmp(out, obj, olen) == 0;
    mydb_buf_free(&d);
  }
  CHECK(ok && kept == 300);
  /* an unrelated object: no delta, nothing appended */
  mydb_buf d = MYDB_BUF_INIT;
  for (size_t i = 0; i < 600; i++) obj[i] = (unsigned char)(0x80 | i);
  CHECK(mydb__delta_make(&d, digest, base, sizeof base, obj, 600) == 0 && d.len == 0);
  /* a tiny object never pays for a 32-byte base name */
  CHECK(mydb__delta_make(&d, digest, base, sizeof base, base, 100) == 0);
  /* identical objects: prefix covers all */
  CHECK(mydb__delta_make(&d, digest, base, sizeof base, base, sizeof base) > 0 &&
        mydb__delta_size(d.data, d.len, sizeof base) == sizeof base);
  /* damaged: short, overlong varint, lengths past the base */
  unsigned char bad[40];
  memcpy(bad, digest, 32);
  bad[32] = 0x80; bad[33] = 0x00; /* not minimal */
  CHECK(mydb__delta_size(bad, 34, 100) == (size_t)-1);
  CHECK(mydb__delta_size(bad, 20, 100) == (size_t)-1);
  bad[32] = 60; bad[33] = 50; /* 60 + 50 > a base of 100 */
  CHECK(mydb__delta_size(bad, 34, 100) == (size_t)-1);
  CHECK(mydb__delta_size(bad, 34, 110) == 110);
  mydb_buf_free(&d);
}

int main(void) {
  xsnprintf(tmproot, sizeof tmproot, "/tmp/mydb-test-XXXXXX");
  if (!mkdtemp(tmproot)) {
    perror("mkdtemp");
    return 2;
  }
  test_sha256();
  test_sha256_strides();
  test_delta();
  test_numtext();
  test_crc32();
  test_dfilter();
  test_errors();
  test_tenant_valid();
  test_ref_name_valid();
  test_jsonstr();
  test_open_init();
  test_tenant_foreach_order();
  test_objects();
  test_cache();
  test_read_once();
  test_cache_superseded();
  test_heads();
  test_kill_writer();
  test_tmp_sweep();
  test_tmp_sweep_locked();
  test_dedup_durable();
  test_faults(0);
  test_faults(1);
  test_compaction();
  test_threads();
  test_processes();
  test_closed();
  test_syserr();
  test_many_entries();
  rm_rf(tmproot);
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
