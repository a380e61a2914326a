/*
 * fuzz_api.c - libFuzzer target: the core's public calls (include/mydb.h) with
 * hostile arguments.
 *
 * The input is a program: each step is an opcode byte followed by its
 * arguments, each a length byte and that many bytes (a length byte of 250
 * or more means (b - 249) * 300 bytes, to reach past the 128-byte tenant
 * and 1024-byte entry limits; missing bytes read as 'a'). Tenant ids and
 * digests are passed as C strings (cut at the first NUL), entries with
 * their length (NULs and all). A digest argument of length 0 means the
 * last digest written. Every input starts from an empty store with the
 * tenants "t" and "u" initialized. Oracles:
 *   - no crash, leak or sanitizer report;
 *   - every call returns MYDB_OK or an error documented for bad arguments
 *     or absent data (EINVAL, ENOTINIT, ENOTFOUND), never EIO/ECORRUPT;
 *   - nothing is created outside ROOT, and ROOT holds only .tmp, .mydb (the
 *     store's backend record), refs and directories named by valid tenant
 *     ids;
 *   - tenant "u", which no step may name, stays empty: no object or head of
 *     another tenant ever shows through it.
 */
#include <dirent.h>

#include "fuzz_common.h"
#include "mydb.h"

static char base[PATH_MAX], root[PATH_MAX];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  snprintf(base, sizeof base, "%s", fuzz_tmpdir("api"));
  snprintf(root, sizeof root, "%s/db", base);
  return 0;
}

typedef struct input {
  const uint8_t *p;
  size_t n;
} input;

static unsigned take_byte(input *in) {
  if (in->n == 0) return 0;
  in->n--;
  return *in->p++;
}

/* An argument: up to 1800 bytes into buf (NUL-terminated); its length. */
static size_t take_arg(input *in, char *buf) {
  unsigned b = take_byte(in);
  size_t len = b < 250 ? b : (size_t)(b - 249) * 300;
  for (size_t i = 0; i < len; i++) buf[i] = in->n ? (char)take_byte(in) : 'a';
  buf[len] = '\0';
  return len;
}

static int rc_ok(int rc) {
  return rc == MYDB_OK || rc == MYDB_EINVAL || rc == MYDB_ENOTINIT ||
         rc == MYDB_ENOTFOUND;
}
#define CHECK_RC(call)                                                     \
  do {                                                                     \
    int rc_ = (call);                                                      \
    FUZZ_ASSERT(rc_ok(rc_), "%s returned %d: %s", #call, rc_, mydb_errmsg()); \
  } while (0)

static int count_name(const char *name, void *payload) {
  (void)name;
  (*(size_t *)payload)++;
  return 0;
}
static int count_entry(const char *e, size_t l, const char *d, void *payload) {
  (void)e; (void)l; (void)d;
  (*(size_t *)payload)++;
  return 0;
}

/* "u" is the witness tenant: no step may name it. */
static int is_witness(const char *t) { return strcmp(t, "u") == 0; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static char a1[2048], a2[2048], a3[2048];
  char last[MYDB_DIGEST_BUF] =
      "0000000000000000000000000000000000000000000000000000000000000000";
  fuzz_rm_rf(root);
  mydb *db = NULL;
  mydb_options o = MYDB_OPTIONS_INIT;
  o.fsync = 0;
  FUZZ_ASSERT(mydb_open(&db, root, &o) == MYDB_OK, "%s", mydb_errmsg());
  FUZZ_ASSERT(mydb_tenant_init(db, "t") == MYDB_OK, "%s", mydb_errmsg());
  FUZZ_ASSERT(mydb_tenant_init(db, "u") == MYDB_OK, "%s", mydb_errmsg());

  input in = {data, size};
  for (int steps = 0; in.n > 0 && steps < 64; steps++) {
    unsigned op = take_byte(&in) % 12;
    size_t l1 = take_arg(&in, a1);
    const char *tenant = a1[0] == '\0' && l1 == 0 ? "t" : a1;
    if (is_witness(tenant)) continue;
    char digest[MYDB_DIGEST_BUF];
    char out[MYDB_DIGEST_BUF];
    size_t n = 0;
    switch (op) {
      case 0:
        CHECK_RC(mydb_tenant_init(db, tenant));
        break;
      case 1: {
        int rc = mydb_tenant_exists(db, tenant);
        FUZZ_ASSERT(rc == 0 || rc == 1 || rc == MYDB_EINVAL, "tenant_exists %d", rc);
        FUZZ_ASSERT(rc != 1 || mydb_tenant_valid(tenant, strlen(tenant)),
                    "an invalid tenant id exists");
        break;
      }
      case 2: case 3: case 4: {
        /* objects: odd opcodes' first argument byte 'R' means the refs */
        const char *t = (l1 == 1 && a1[0] == 'R') ? NULL : tenant;
        size_t l2 = take_arg(&in, a2);
        if (op == 2) {
          int rc = mydb_object_write(db, out, t, a2, l2);
          CHECK_RC(rc);
          if (rc == MYDB_OK) {
            memcpy(last, out, MYDB_DIGEST_BUF);
            mydb_blob *b = NULL;
            FUZZ_ASSERT(mydb_object_read(db, &b, t, out) == MYDB_OK, "%s", mydb_errmsg());
            FUZZ_ASSERT(mydb_blob_len(b) == l2 && memcmp(mydb_blob_data(b), a2, l2) == 0,
                        "read back other bytes");
            mydb_blob_release(b);
          }
        } else {
          const char *d = l2 == 0 ? last : a2;
          if (op == 3) {
            mydb_blob *b = NULL;
            CHECK_RC(mydb_object_read(db, &b, t, d));
            mydb_blob_release(b);
          } else {
            int rc = mydb_object_exists(db, t, d);
            FUZZ_ASSERT(rc == 0 || rc == 1 || rc == MYDB_EINVAL || rc == MYDB_ENOTINIT,
                        "object_exists %d: %s", rc, mydb_errmsg());
          }
        }
        break;
      }
      case 5: {
        size_t l2 = take_arg(&in, a2);
        CHECK_RC(mydb_head_get(db, out, tenant, a2, l2));
        break;
      }
      case 6:
        CHECK_RC(mydb_head_foreach(db, tenant, count_entry, &n));
        break;
      case 7: case 8: {
        mydb_lock *lk = NULL;
        int rc = mydb_lock_acquire(db, &lk, tenant);
        CHECK_RC(rc);
        size_t l2 = take_arg(&in, a2);
        size_t l3 = take_arg(&in, a3);
        if (rc == MYDB_OK) {
          const char *d = op == 8 ? NULL : (l3 == 0 ? last : a3);
          mydb_head_change ch = {a2, l2, d};
          CHECK_RC(mydb_head_commit(lk, &ch, 1));
          CHECK_RC(mydb_lock_head_get(lk, out, a2, l2));
        }
        mydb_lock_release(lk);
        break;
      }
      case 9:
        CHECK_RC(mydb_tenant_foreach(db, count_name, &n));
        break;
      case 10: {
        const char *t = (l1 == 1 && a1[0] == 'R') ? NULL : tenant;
        CHECK_RC(mydb_object_foreach(db, t, count_name, &n));
        break;
      }
      case 11: {
        /* the validators on raw bytes (NULs included) */
        int v = mydb_tenant_valid(a1, l1);
        FUZZ_ASSERT(v == 0 || (l1 >= 1 && l1 <= MYDB_TENANT_MAX), "tenant_valid");
        v = mydb_digest_valid(a1, l1);
        FUZZ_ASSERT(v == 0 || l1 == MYDB_DIGEST_HEX, "digest_valid");
        FUZZ_ASSERT(mydb_sha256_hex(digest, a1, l1) == MYDB_OK, "sha256");
        FUZZ_ASSERT(mydb_digest_valid(digest, MYDB_DIGEST_HEX), "sha256 gives a bad digest");
        break;
      }
    }
  }

  /* the witness tenant saw nothing */
  size_t n = 0;
  FUZZ_ASSERT(mydb_object_foreach(db, "u", count_name, &n) == MYDB_OK && n == 0,
              "tenant u has %zu objects", n);
  FUZZ_ASSERT(mydb_head_foreach(db, "u", count_entry, &n) == MYDB_OK && n == 0,
              "tenant u has %zu entries", n);
  mydb_close(db);

  /* nothing outside ROOT; inside, only .tmp, refs and tenants */
  DIR *d = opendir(base);
  FUZZ_ASSERT(d != NULL, "opendir %s", base);
  struct dirent *e;
  while ((e = readdir(d)))
    FUZZ_ASSERT(!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
                !strcmp(e->d_name, "db"), "%s/%s created outside ROOT", base, e->d_name);
  closedir(d);
  d = opendir(root);
  FUZZ_ASSERT(d != NULL, "opendir %s", root);
  while ((e = readdir(d))) {
    const char *nm = e->d_name;
    FUZZ_ASSERT(!strcmp(nm, ".") || !strcmp(nm, "..") || !strcmp(nm, ".tmp") ||
                !strcmp(nm, ".mydb") || !strcmp(nm, "refs") ||
                mydb_tenant_valid(nm, strlen(nm)),
                "ROOT/%s is not a tenant", nm);
  }
  closedir(d);
  return 0;
}
