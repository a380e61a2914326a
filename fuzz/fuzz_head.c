/*
 * fuzz_head.c - libFuzzer target: the head journal parser (src/backend/loose/journal.c).
 *
 * The input is cut in two at a point chosen by its first byte. The first
 * part is installed as ROOT/t/head of a temporary store (a new file renamed
 * into place, so the handle replays it from the start), read with
 * mydb_head_get and mydb_head_foreach; then the second part is appended (the
 * handle replays only the new bytes) and read again; then a writer takes
 * the lock and commits one change on top (truncating a torn tail). Oracles:
 *   - no crash, leak or sanitizer report;
 *   - results are MYDB_OK, MYDB_ENOTFOUND or MYDB_ECORRUPT for reads;
 *   - every entry listed by foreach is found by head_get with the same
 *     digest, in strictly increasing bytewise order, with a valid digest;
 *   - a fresh handle agrees with the incremental one;
 *   - a commit on a readable journal succeeds and is then visible.
 */
#include "fuzz_common.h"
#include "mydb.h"

static char root[PATH_MAX], head_path[PATH_MAX], tmp_path[PATH_MAX];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  const char *dir = fuzz_tmpdir("head");
  snprintf(root, sizeof root, "%s/db", dir);
  mydb *db = NULL;
  mydb_options o = MYDB_OPTIONS_INIT;
  o.fsync = 0;
  FUZZ_ASSERT(mydb_open(&db, root, &o) == MYDB_OK, "%s", mydb_errmsg());
  FUZZ_ASSERT(mydb_tenant_init(db, "t") == MYDB_OK, "%s", mydb_errmsg());
  mydb_close(db);
  snprintf(head_path, sizeof head_path, "%s/t/head", root);
  snprintf(tmp_path, sizeof tmp_path, "%s/t/head.fuzz", root);
  return 0;
}

typedef struct listing {
  mydb *db;
  size_t n;
  char last[MYDB_ENTRY_MAX + 1];
  size_t last_len;
  unsigned long sum; /* a checksum of what was listed, to compare handles */
} listing;

static int check_entry(const char *entry, size_t len, const char *digest,
                       void *payload) {
  listing *l = payload;
  FUZZ_ASSERT(len >= 1 && len <= MYDB_ENTRY_MAX, "entry length %zu", len);
  FUZZ_ASSERT(memchr(entry, '\0', len) == NULL, "entry with a NUL");
  FUZZ_ASSERT(mydb_digest_valid(digest, strlen(digest)), "bad digest listed");
  if (l->n > 0) {
    size_t m = len < l->last_len ? len : l->last_len;
    int c = memcmp(l->last, entry, m);
    FUZZ_ASSERT(c < 0 || (c == 0 && l->last_len < len), "entries out of order");
  }
  memcpy(l->last, entry, len);
  l->last_len = len;
  l->n++;
  for (size_t i = 0; i < len; i++) l->sum = l->sum * 131 + (unsigned char)entry[i];
  for (size_t i = 0; i < MYDB_DIGEST_HEX; i++) l->sum = l->sum * 31 + (unsigned char)digest[i];
  char got[MYDB_DIGEST_BUF];
  int rc = mydb_head_get(l->db, got, "t", entry, len);
  FUZZ_ASSERT(rc == MYDB_OK, "listed entry not found: %s", mydb_errmsg());
  FUZZ_ASSERT(memcmp(got, digest, MYDB_DIGEST_BUF) == 0, "digests differ");
  return 0;
}

/* Reads the journal through db; returns the foreach result and fills l. */
static int read_all(mydb *db, listing *l) {
  memset(l, 0, sizeof *l);
  l->db = db;
  char d[MYDB_DIGEST_BUF];
  int rc = mydb_head_get(db, d, "t", "e", 1);
  FUZZ_ASSERT(rc == MYDB_OK || rc == MYDB_ENOTFOUND || rc == MYDB_ECORRUPT,
              "head_get: %d %s", rc, mydb_errmsg());
  rc = mydb_head_foreach(db, "t", check_entry, l);
  FUZZ_ASSERT(rc == MYDB_OK || rc == MYDB_ECORRUPT, "head_foreach: %d %s", rc,
              mydb_errmsg());
  return rc;
}

static mydb *open_db(void) {
  mydb *db = NULL;
  mydb_options o = MYDB_OPTIONS_INIT;
  o.fsync = 0;
  o.cache_bytes = 0;
  FUZZ_ASSERT(mydb_open(&db, root, &o) == MYDB_OK, "%s", mydb_errmsg());
  return db;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  size_t cut = size;
  if (size > 0) {
    cut = 1 + (size_t)data[0] * (size - 1) / 255; /* in [1, size] */
    data++;
    size--;
    cut--;
  }
  mydb *db = open_db();

  /* 1. the first part, as a new file */
  fuzz_write_file(tmp_path, data, cut, 0);
  FUZZ_ASSERT(rename(tmp_path, head_path) == 0, "rename: %s", strerror(errno));
  listing l1, l2;
  int rc1 = read_all(db, &l1);

  /* 2. the rest, appended: replayed incrementally */
  fuzz_write_file(head_path, data + cut, size - cut, 1);
  int rc2 = read_all(db, &l2);

  /* 3. a fresh handle reads the whole file and agrees (unless the first
   * part alone was already corrupt: a handle stops at the first bad line,
   * and both must then report it) */
  mydb *db2 = open_db();
  listing l3;
  int rc3 = read_all(db2, &l3);
  if (rc1 == MYDB_OK) {
    FUZZ_ASSERT(rc3 == rc2, "fresh handle %d, incremental %d", rc3, rc2);
    if (rc3 == MYDB_OK)
      FUZZ_ASSERT(l3.n == l2.n && l3.sum == l2.sum,
                  "fresh and incremental handles disagree (%zu vs %zu)",
                  l3.n, l2.n);
  } else {
    FUZZ_ASSERT(rc3 == MYDB_ECORRUPT && rc2 == MYDB_ECORRUPT,
                "a corrupt prefix became readable (%d, %d)", rc2, rc3);
  }
  mydb_close(db2);

  /* 4. a commit on top: truncates a torn tail, appends one line */
  mydb_lock *lk = NULL;
  FUZZ_ASSERT(mydb_lock_acquire(db, &lk, "t") == MYDB_OK, "%s", mydb_errmsg());
  static const char digest[] =
      "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
  mydb_head_change ch = {"fuzz-entry", 10, digest};
  int rc = mydb_head_commit(lk, &ch, 1);
  mydb_lock_release(lk);
  if (rc2 == MYDB_OK) {
    FUZZ_ASSERT(rc == MYDB_OK, "commit on a sound journal: %s", mydb_errmsg());
    char got[MYDB_DIGEST_BUF];
    mydb *db3 = open_db();
    rc = mydb_head_get(db3, got, "t", "fuzz-entry", 10);
    FUZZ_ASSERT(rc == MYDB_OK && memcmp(got, digest, MYDB_DIGEST_HEX) == 0,
                "the commit is not visible: %s", mydb_errmsg());
    listing l4;
    FUZZ_ASSERT(read_all(db3, &l4) == MYDB_OK, "journal unreadable after a "
                "commit: %s", mydb_errmsg());
    mydb_close(db3);
  } else {
    FUZZ_ASSERT(rc == MYDB_ECORRUPT, "commit on a corrupt journal: %d %s", rc,
                mydb_errmsg());
  }
  mydb_close(db);
  return 0;
}
