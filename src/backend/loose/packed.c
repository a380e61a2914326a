/*
 * packed.c - the loose backend's packed objects: ROOT/TENANT/packed, one
 * append-only file of the objects a tenant-lock holder wrote (doc/FORMAT.md
 * "Packed objects").
 *
 *   file    header: "MYDBPKD1" (8), generation (u64 LE), then groups
 *   group   'G' count(u32) length(u64: the whole group) crc(u32 of the 13
 *           bytes before it), then count objects, then the trailer
 *   object  'O' digest(32 raw) len(u32) crc(u32 of the 37 bytes before it
 *           and the data), then len bytes of data
 *   trailer 'T' count(u32) crc(u32 of every byte of the group before it)
 *
 * All integers little-endian. A holder's objects are staged in memory and
 * appended at its commit as one group, in one pwrite, synced (db->fsync)
 * before the journal line that names them is appended (journal.c): every
 * digest a durable commit names is durable. A reader accepts only whole
 * groups whose trailer checks out:
 *   - a last group that does not (a crash mid-append: torn) is ignored by
 *     readers and truncated by the next writer, under the tenant lock;
 *   - a group with a valid header that does not check out but is followed
 *     by more bytes is damage: its objects whose own CRC holds stay
 *     readable, the others read as corrupt, and check reports it.
 * Each handle keeps per tenant an index digest -> (offset, length), built
 * by scanning the file and extended from the last offset scanned when a
 * digest is missing or the file grew; a new inode (gc rewrote the file,
 * renamed over) is scanned afresh. The old descriptor keeps the old file
 * readable meanwhile. The generation, incremented by each rewrite, lets a
 * gc mark (offset) tell whether it still refers to the same file.
 *
 * Everything here runs under the backend's mutex (lb->mu).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "loose.h"

#define FILE_MAGIC "MYDBPKD1"
#define FILE_HDR 16
#define GROUP_HDR 17
#define OBJ_HDR 41
#define TRAILER 9
/* A holder's stage goes to the file (a group without a commit) past this:
 * a bulk load does not hold it all in memory. gc writes groups this big. */
#define STAGE_FLUSH_BYTES ((size_t)4 << 20)
/* Tenants whose state is kept (their descriptor and index). */
#define PK_MAX 64
#define ARENA_N 256

typedef struct pent {
  mydb__hnode h;
  uint64_t off; /* of the data (file or stage) */
  uint32_t len;
  int bad; /* its CRC does not hold (a damaged group) */
  unsigned char d[32];
} pent;

typedef struct parena {
  struct parena *next;
  size_t n;
  pent e[ARENA_N];
} parena;

struct mydb__lpk {
  mydb__hnode h; /* in lb->pks, keyed by tenant */
  struct mydb__lpk *prev, *next; /* LRU, most recent first */
  int fd;        /* the packed file, or -1 (absent or not opened) */
  int writable;
  dev_t dev;
  ino_t ino;
  uint64_t gen;      /* the file's generation */
  uint64_t end;      /* bytes scanned: header and whole groups */
  uint64_t size;     /* the size seen by the last scan */
  size_t damaged;    /* damaged groups seen */
  mydb__htab idx;    /* 32-byte digest -> pent */
  parena *arenas;
  /* the tenant lock, when this handle holds it */
  int held, pins, fresh;
  /* the directory was fsynced since this handle opened the file: its name
   * is durable (another process may have created it and crashed before) */
  int dir_synced;
  pthread_t owner;
  mydb_buf stage;    /* encoded object records, without the group framing */
  mydb__htab staged; /* digest -> pent (off: of the data in stage) */
  parena *sarenas;
  size_t scount;
  size_t tlen;
  char name[MYDB_TENANT_MAX + 1];
  char tdir[PATH_MAX];
  char path[PATH_MAX];
};
typedef struct mydb__lpk lpk;

/* ----------------------------------------------------------- encoding */

static void put32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void put64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}
static uint64_t get64(const unsigned char *p) {
  return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static int hexv(char c) {
  return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}
void mydb__lpk_unhex(unsigned char out[32], const char *hex) {
  for (int i = 0; i < 32; i++)
    out[i] = (unsigned char)(hexv(hex[2 * i]) << 4 | hexv(hex[2 * i + 1]));
}

/* ------------------------------------------------------------- entries */

static pent *arena_new(parena **head) {
  parena *a = *head;
  if (!a || a->n == ARENA_N) {
    a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->next = *head;
    *head = a;
  }
  return &a->e[a->n++];
}

static void arenas_free(parena **head) {
  while (*head) {
    parena *n = (*head)->next;
    free(*head);
    *head = n;
  }
}

static pent *find(const mydb__htab *t, const unsigned char d[32]) {
  return (pent *)mydb__htab_find(t, mydb__hash(d, 32), (const char *)d, 32);
}

/* Adds d to the index (a good copy replaces a bad one; the first good one
 * stays). -1 on ENOMEM. */
static int idx_add(lpk *pk, const unsigned char d[32], uint64_t off,
                   uint32_t len, int bad) {
  pent *e = find(&pk->idx, d);
  if (e) {
    if (e->bad && !bad) {
      e->off = off;
      e->len = len;
      e->bad = 0;
    }
    return 0;
  }
  if (!(e = arena_new(&pk->arenas))) return -1;
  memcpy(e->d, d, 32);
  e->off = off;
  e->len = len;
  e->bad = bad;
  e->h.hash = mydb__hash(d, 32);
  e->h.key = (const char *)e->d;
  e->h.klen = 32;
  return mydb__htab_add(&pk->idx, &e->h);
}

static void idx_reset(lpk *pk) {
  mydb__htab_free(&pk->idx);
  memset(&pk->idx, 0, sizeof pk->idx);
  arenas_free(&pk->arenas);
  pk->end = 0;
  pk->size = 0;
  pk->gen = 0;
  pk->damaged = 0;
}

static void file_reset(lpk *pk) {
  if (pk->fd >= 0) mydb__close(pk->fd);
  pk->fd = -1;
  pk->writable = 0;
  pk->dir_synced = 0;
  idx_reset(pk);
}

void mydb__lpk_stage_drop(lpk *pk) {
  mydb__htab_free(&pk->staged);
  memset(&pk->staged, 0, sizeof pk->staged);
  arenas_free(&pk->sarenas);
  pk->scount = 0;
  pk->stage.len = 0;
  if (pk->stage.cap > STAGE_FLUSH_BYTES * 2) mydb_buf_free(&pk->stage);
  pk->stage.failed = 0;
}

/* -------------------------------------------------------------- states */

static void pk_unlink(mydb__loose *lb, lpk *pk) {
  if (pk->prev) pk->prev->next = pk->next; else lb->pk_first = pk->next;
  if (pk->next) pk->next->prev = pk->prev; else lb->pk_last = pk->prev;
  pk->prev = pk->next = NULL;
}

static void pk_front(mydb__loose *lb, lpk *pk) {
  pk->prev = NULL;
  pk->next = lb->pk_first;
  if (lb->pk_first) lb->pk_first->prev = pk; else lb->pk_last = pk;
  lb->pk_first = pk;
}

static void pk_free(mydb__loose *lb, lpk *pk) {
  pk_unlink(lb, pk);
  mydb__htab_del(&lb->pks, &pk->h);
  lb->pk_count--;
  file_reset(pk);
  mydb__lpk_stage_drop(pk);
  mydb_buf_free(&pk->stage);
  free(pk);
}

void mydb__lpk_free_all(mydb__loose *lb) {
  while (lb->pk_last) pk_free(lb, lb->pk_last);
  mydb__htab_free(&lb->pks);
}

int mydb__lpk_get(mydb__loose *lb, const char *tenant, lpk **out) {
  size_t tl = strlen(tenant);
  uint64_t h = mydb__hash(tenant, tl);
  lpk *pk = (lpk *)mydb__htab_find(&lb->pks, h, tenant, tl);
  if (pk) {
    if (lb->pk_first != pk) {
      pk_unlink(lb, pk);
      pk_front(lb, pk);
    }
    *out = pk;
    return MYDB_OK;
  }
  pk = calloc(1, sizeof *pk);
  if (!pk) return mydb__seterr(MYDB_ENOMEM, "out of memory");
  int rc = mydb__path(lb->be.db, pk->tdir, tenant, NULL, NULL);
  if (!rc) rc = mydb__path(lb->be.db, pk->path, tenant, "packed", NULL);
  if (rc) {
    free(pk);
    return rc;
  }
  pk->fd = -1;
  pk->tlen = tl;
  memcpy(pk->name, tenant, tl + 1);
  pk->h.hash = h;
  pk->h.key = pk->name;
  pk->h.klen = tl;
  if (mydb__htab_add(&lb->pks, &pk->h) != 0) {
    free(pk);
    return mydb__seterr(MYDB_ENOMEM, "out of memory");
  }
  lb->pk_count++;
  pk_front(lb, pk);
  for (lpk *v = lb->pk_last; lb->pk_count > PK_MAX && v && v != pk;) {
    lpk *prev = v->prev;
    if (!v->pins) pk_free(lb, v);
    v = prev;
  }
  *out = pk;
  return MYDB_OK;
}

/* ------------------------------------------------------------- locking */

void mydb__lpk_lock(lpk *pk) {
  pk->pins++;
  pk->held = 1;
  pk->fresh = 0;
  pk->owner = pthread_self();
}

void mydb__lpk_unlock(lpk *pk) {
  mydb__lpk_stage_drop(pk);
  pk->held = 0;
  pk->pins--;
}

int mydb__lpk_holds(const lpk *pk) {
  return pk->held && pthread_equal(pk->owner, pthread_self());
}

void mydb__lpk_claim(lpk *pk) { pk->owner = pthread_self(); }

/* ------------------------------------------------------------ scanning */

/* A group at pos of the file behind fd (size bytes). Returns 1: whole and
 * valid (indexed); 2: damaged but skippable (its good objects indexed,
 * bad ones marked); 0: torn (the tail from pos is not a group); <0 error.
 * *glen: the group's length (1 and 2). With report, damage is described
 * through it instead of (or as well as) being indexed. */
typedef mydb__lpk_report report_fn;

static int scan_group(int fd, const char *path, uint64_t pos, uint64_t size,
                      lpk *pk, uint64_t *glen, report_fn report,
                      void *payload) {
  unsigned char h[GROUP_HDR];
  if (size - pos < GROUP_HDR) return 0;
  ssize_t got = mydb__pread_all(fd, h, GROUP_HDR, (off_t)pos);
  if (got < 0) return mydb__syserr(errno, "read", path);
  if (got < GROUP_HDR) return 0;
  if (h[0] != 'G' || get32(h + 13) != mydb__crc32(0, h, 13)) return 0;
  uint32_t count = get32(h + 1);
  uint64_t len = get64(h + 5);
  if (len < GROUP_HDR + TRAILER || len > size - pos) return 0;
  if ((uint64_t)count > (len - GROUP_HDR - TRAILER) / OBJ_HDR) return 0;
  if (len > SIZE_MAX / 2) return 0;
  unsigned char *g = malloc((size_t)len);
  if (!g)
    return mydb__seterr(MYDB_ENOMEM, "out of memory reading %s (%llu bytes)",
                        path, (unsigned long long)len);
  got = mydb__pread_all(fd, g, (size_t)len, (off_t)pos);
  if (got < 0) {
    int rc = mydb__syserr(errno, "read", path);
    free(g);
    return rc;
  }
  if ((uint64_t)got < len) {
    free(g);
    return 0;
  }
  const unsigned char *t = g + len - TRAILER;
  int whole = t[0] == 'T' && get32(t + 1) == count &&
              get32(t + 5) == mydb__crc32(0, g, (size_t)len - 4);
  /* the objects: their framing must fit exactly */
  size_t p = GROUP_HDR, n = 0;
  int fits = 1;
  while (n < count) {
    if (p + OBJ_HDR > len - TRAILER || g[p] != 'O') { fits = 0; break; }
    uint32_t ol = get32(g + p + 33);
    if (ol > len - TRAILER - p - OBJ_HDR) { fits = 0; break; }
    p += OBJ_HDR + ol;
    n++;
  }
  if (p != len - TRAILER) fits = 0;
  if (!whole && pos + len == size) { /* the last group: torn */
    free(g);
    return 0;
  }
  if (whole && !fits) whole = 0; /* (a CRC collision; damage) */
  int rc = whole ? 1 : 2;
  if (!whole && report) {
    char msg[160];
    snprintf(msg, sizeof msg, "damaged group at offset %llu (%llu bytes, "
             "%u objects): its trailer does not check out",
             (unsigned long long)pos, (unsigned long long)len, count);
    report(path, msg, payload);
  }
  /* index (or report) the objects; a damaged group's are checked one by
   * one as far as its framing goes */
  p = GROUP_HDR;
  for (uint32_t i = 0; i < count; i++) {
    if (p + OBJ_HDR > len - TRAILER || g[p] != 'O') break;
    uint32_t ol = get32(g + p + 33);
    if (ol > len - TRAILER - p - OBJ_HDR) break;
    uint32_t c = mydb__crc32(mydb__crc32(0, g + p, 37), g + p + OBJ_HDR, ol);
    int bad = c != get32(g + p + 37);
    if (bad && report) {
      char msg[200], hx[65];
      mydb__hex(hx, g + p + 1, 32);
      hx[64] = '\0';
      snprintf(msg, sizeof msg, "object %s at offset %llu: CRC mismatch", hx,
               (unsigned long long)(pos + p));
      report(path, msg, payload);
    }
    if (pk && idx_add(pk, g + p + 1, pos + p + OBJ_HDR, ol, bad) != 0) {
      free(g);
      return mydb__seterr(MYDB_ENOMEM, "out of memory indexing %s", path);
    }
    p += OBJ_HDR + ol;
  }
  free(g);
  *glen = len;
  return rc;
}

/* Checks the file header of fd; 1 valid (*gen set), 0 torn/absent, or an
 * error (MYDB_ECORRUPT: not a packed file). */
static int scan_header(int fd, const char *path, uint64_t size,
                       uint64_t *gen) {
  unsigned char h[FILE_HDR];
  ssize_t got = size ? mydb__pread_all(fd, h, FILE_HDR, 0) : 0;
  if (got < 0) return mydb__syserr(errno, "read", path);
  size_t n = (size_t)got, m = n < 8 ? n : 8;
  if (n == FILE_HDR && memcmp(h, FILE_MAGIC, 8) == 0) {
    *gen = get64(h + 8);
    return 1;
  }
  /* A header cut short (a prefix of it) or zeros (it never reached the
   * disk): a torn first append. Anything else is not ours. */
  if (n < FILE_HDR && memcmp(h, FILE_MAGIC, m) == 0) return 0;
  size_t z = 0;
  while (z < n && !h[z]) z++;
  if (z == n) return 0;
  return mydb__seterr(MYDB_ECORRUPT, "%s is not a mydb packed file (bad "
                      "header)", path);
}

/* Indexes pk's file from pk->end to its current size. */
static int scan_more(lpk *pk, uint64_t size) {
  int rc;
  pk->size = size;
  if (pk->end == 0) {
    uint64_t gen = 0;
    rc = scan_header(pk->fd, pk->path, size, &gen);
    if (rc <= 0) return rc;
    pk->gen = gen;
    pk->end = FILE_HDR;
  }
  while (pk->end < size) {
    uint64_t glen = 0;
    rc = scan_group(pk->fd, pk->path, pk->end, size, pk, &glen, NULL, NULL);
    if (rc < 0) return rc;
    if (rc == 0) break; /* torn, or a write in progress */
    if (rc == 2) pk->damaged++;
    pk->end += glen;
  }
  return MYDB_OK;
}

/* Brings pk up to date with TENANT/packed: opens it (a new inode: afresh)
 * and indexes what was appended. */
int mydb__lpk_refresh(lpk *pk) {
  struct stat st;
  if (stat(pk->path, &st) != 0) {
    if (errno != ENOENT && errno != ENOTDIR)
      return mydb__syserr(errno, "stat", pk->path);
    file_reset(pk); /* absent: empty */
    return MYDB_OK;
  }
  if (pk->fd >= 0 && st.st_ino == pk->ino && st.st_dev == pk->dev) {
    if ((uint64_t)st.st_size == pk->size) return MYDB_OK;
    if ((uint64_t)st.st_size < pk->end) { /* truncated behind our back */
      idx_reset(pk);
    }
    return scan_more(pk, (uint64_t)st.st_size);
  }
  int writable = 1;
  int fd = mydb__open(pk->path, O_RDWR | O_NOFOLLOW, 0);
  if (fd < 0 && (errno == EACCES || errno == EROFS || errno == EPERM)) {
    writable = 0;
    fd = mydb__open(pk->path, O_RDONLY | O_NOFOLLOW, 0);
  }
  if (fd < 0) {
    if (errno == ENOENT) {
      file_reset(pk);
      return MYDB_OK;
    }
    return mydb__syserr(errno, "open", pk->path);
  }
  if (fstat(fd, &st) != 0) {
    int rc = mydb__syserr(errno, "fstat", pk->path);
    mydb__close(fd);
    return rc;
  }
  file_reset(pk);
  pk->fd = fd;
  pk->writable = writable;
  pk->dev = st.st_dev;
  pk->ino = st.st_ino;
  return scan_more(pk, (uint64_t)st.st_size);
}

/* --------------------------------------------------------------- reads */

static int read_at(lpk *pk, const pent *e, mydb_blob **out) {
  mydb_blob *b = mydb__blob_new(e->len);
  if (!b)
    return mydb__seterr(MYDB_ENOMEM, "out of memory reading %s (%u bytes)",
                        pk->path, e->len);
  unsigned char h[OBJ_HDR];
  struct iovec iov[2] = {{h, OBJ_HDR}, {b->data, e->len}};
  size_t want = OBJ_HDR + (size_t)e->len, have = 0;
  off_t off = (off_t)(e->off - OBJ_HDR);
  while (have < want) { /* (short reads only at the end of a file) */
    ssize_t w = preadv(pk->fd, iov, 2, off + (off_t)have);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) {
      int rc = mydb__syserr(errno, "read", pk->path);
      mydb_blob_release(b);
      return rc;
    }
    if (w == 0) break;
    have += (size_t)w;
    for (int i = 0; i < 2 && w > 0; i++) {
      size_t k = (size_t)w < iov[i].iov_len ? (size_t)w : iov[i].iov_len;
      iov[i].iov_base = (char *)iov[i].iov_base + k;
      iov[i].iov_len -= k;
      w -= (ssize_t)k;
    }
  }
  uint32_t c = have == want ? mydb__crc32(mydb__crc32(0, h, 37), b->data,
                                          e->len)
                            : 0;
  if (have != want || h[0] != 'O' || memcmp(h + 1, e->d, 32) != 0 ||
      get32(h + 33) != e->len || c != get32(h + 37)) {
    char hx[65];
    mydb__hex(hx, e->d, 32);
    hx[64] = '\0';
    mydb_blob_release(b);
    return mydb__seterr(MYDB_ECORRUPT, "object %s in %s at offset %llu: "
                        "CRC mismatch (damaged)", hx, pk->path,
                        (unsigned long long)e->off);
  }
  b->len = e->len;
  b->data[b->len] = '\0';
  *out = b;
  return MYDB_OK;
}

/* Looks d up (staged, then indexed, then after a refresh). 1 found (*e,
 * *staged), 0 not, or an error. */
static int locate(lpk *pk, const unsigned char d[32], pent **e, int *staged) {
  *staged = 0;
  if (pk->scount && (*e = find(&pk->staged, d))) {
    *staged = 1;
    return 1;
  }
  if ((*e = find(&pk->idx, d))) return 1;
  /* under the lock, once refreshed, the index is current */
  if (pk->held && pk->fresh && mydb__lpk_holds(pk)) return 0;
  int rc = mydb__lpk_refresh(pk);
  if (rc) return rc;
  return (*e = find(&pk->idx, d)) != NULL;
}

int mydb__lpk_read(lpk *pk, const unsigned char d[32], mydb_blob **out) {
  pent *e;
  int staged;
  int rc = locate(pk, d, &e, &staged);
  if (rc < 0) return rc;
  if (rc == 0) return MYDB_ENOTFOUND;
  if (staged) {
    mydb_blob *b = mydb__blob_new(e->len);
    if (!b) return mydb__seterr(MYDB_ENOMEM, "out of memory");
    memcpy(b->data, pk->stage.data + e->off, e->len);
    b->len = e->len;
    b->data[b->len] = '\0';
    *out = b;
    return MYDB_OK;
  }
  if (e->bad) {
    char hx[65];
    mydb__hex(hx, d, 32);
    hx[64] = '\0';
    return mydb__seterr(MYDB_ECORRUPT, "object %s in %s at offset %llu: "
                        "CRC mismatch (damaged)", hx, pk->path,
                        (unsigned long long)e->off);
  }
  return read_at(pk, e, out);
}

int mydb__lpk_exists(lpk *pk, const unsigned char d[32]) {
  pent *e;
  int staged;
  int rc = locate(pk, d, &e, &staged);
  if (rc <= 0) return rc;
  return !e->bad;
}

/* -------------------------------------------------------------- writes */

/* Under the lock: the index made current once (gc may have rewritten the
 * file before this holder's lock). */
static int fresh(lpk *pk) {
  if (pk->fresh) return MYDB_OK;
  int rc = mydb__lpk_refresh(pk);
  if (rc == MYDB_OK) pk->fresh = 1;
  return rc;
}

int mydb__lpk_stage(mydb *db, lpk *pk, const unsigned char d[32],
                    const void *buf, size_t len) {
  int rc = fresh(pk);
  if (rc) return rc;
  pent *e = find(&pk->idx, d);
  if ((e && !e->bad) || (pk->scount && find(&pk->staged, d)))
    return MYDB_OK; /* there (durable: its writer synced before its commit) */
  if (len > UINT32_MAX - 64)
    return mydb__seterr(MYDB_EINVAL, "object of %zu bytes too large for %s",
                        len, pk->path);
  unsigned char h[OBJ_HDR];
  h[0] = 'O';
  memcpy(h + 1, d, 32);
  put32(h + 33, (uint32_t)len);
  put32(h + 37, mydb__crc32(mydb__crc32(0, h, 37), buf, len));
  size_t before = pk->stage.len, off = before + OBJ_HDR;
  mydb_buf_put(&pk->stage, h, OBJ_HDR);
  mydb_buf_put(&pk->stage, buf, len);
  if (pk->stage.failed || !(e = arena_new(&pk->sarenas))) {
    pk->stage.len = before; /* (the stage holds whole records only) */
    pk->stage.failed = 0;
    return mydb__seterr(MYDB_ENOMEM, "out of memory staging an object");
  }
  memcpy(e->d, d, 32);
  e->off = off;
  e->len = (uint32_t)len;
  e->bad = 0;
  e->h.hash = mydb__hash(d, 32);
  e->h.key = (const char *)e->d;
  e->h.klen = 32;
  if (mydb__htab_add(&pk->staged, &e->h) != 0) {
    /* (the entry stays in its arena unlisted: drop its record too) */
    pk->sarenas->n--;
    pk->stage.len = before;
    return mydb__seterr(MYDB_ENOMEM, "out of memory staging an object");
  }
  pk->scount++;
  if (pk->stage.len >= STAGE_FLUSH_BYTES) return mydb__lpk_append(db, pk);
  return MYDB_OK;
}

/* Creates TENANT/packed (lock held; absent). */
static int create(mydb *db, lpk *pk) {
  int fd = mydb__open(pk->path, O_RDWR | O_CREAT | O_NOFOLLOW, 0666);
  if (fd < 0) {
    if (errno == ENOENT)
      return mydb__seterr(MYDB_ENOTINIT, "tenant '%s' is not initialized",
                          pk->name);
    return mydb__syserr(errno, "open", pk->path);
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int rc = mydb__syserr(errno, "fstat", pk->path);
    mydb__close(fd);
    return rc;
  }
  (void)db;
  file_reset(pk);
  pk->fd = fd;
  pk->writable = 1;
  pk->dev = st.st_dev;
  pk->ino = st.st_ino;
  return MYDB_OK;
}

int mydb__lpk_append(mydb *db, lpk *pk) {
  if (!pk->scount) return MYDB_OK;
  int rc = fresh(pk);
  if (rc) return rc;
  int created = 0;
  if (pk->fd < 0) {
    if ((rc = create(db, pk))) return rc;
    created = 1;
  }
  (void)created;
  if (!pk->writable)
    return mydb__seterr(MYDB_EIO, "%s is not writable", pk->path);
  /* The file as scanned once this lock was taken (fresh: no one else
   * appends while it is held): a tail past pk->end that is no whole group
   * is a killed writer's torn append. */
  if (pk->size > pk->end) {
    if (mydb__ftruncate(pk->fd, (off_t)pk->end) != 0)
      return mydb__syserr(errno, "ftruncate", pk->path);
    pk->size = pk->end;
  }
  unsigned char fh[FILE_HDR], gh[GROUP_HDR], tr[TRAILER];
  uint64_t glen = GROUP_HDR + (uint64_t)pk->stage.len + TRAILER;
  gh[0] = 'G';
  put32(gh + 1, (uint32_t)pk->scount);
  put64(gh + 5, glen);
  put32(gh + 13, mydb__crc32(0, gh, 13));
  tr[0] = 'T';
  put32(tr + 1, (uint32_t)pk->scount);
  uint32_t c = mydb__crc32(0, gh, GROUP_HDR);
  c = mydb__crc32(c, pk->stage.data, pk->stage.len);
  c = mydb__crc32(c, tr, 5);
  put32(tr + 5, c);
  struct iovec iov[4];
  int n = 0;
  uint64_t at = pk->end;
  if (at == 0) { /* a new (or emptied) file starts with its header */
    memcpy(fh, FILE_MAGIC, 8);
    put64(fh + 8, pk->gen);
    iov[n++] = (struct iovec){fh, FILE_HDR};
  }
  iov[n++] = (struct iovec){gh, GROUP_HDR};
  iov[n++] = (struct iovec){pk->stage.data, pk->stage.len};
  iov[n++] = (struct iovec){tr, TRAILER};
  uint64_t total = glen + (at == 0 ? FILE_HDR : 0), done = 0;
  if (mydb__fault_point()) goto fail;
  while (done < total) {
    ssize_t w = pwritev(pk->fd, iov, n, (off_t)(at + done));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      if (w == 0) errno = EIO;
      goto fail;
    }
    done += (uint64_t)w;
    for (int i = 0; i < n && w > 0; i++) {
      size_t k = (size_t)w < iov[i].iov_len ? (size_t)w : iov[i].iov_len;
      iov[i].iov_base = (char *)iov[i].iov_base + k;
      iov[i].iov_len -= k;
      w -= (ssize_t)k;
    }
  }
  if (db->fsync) {
    if (mydb__fdatasync(pk->fd) != 0) {
      rc = mydb__syserr(errno, "fdatasync", pk->path);
      /* (the pages may be gone: drop the group; the commit fails) */
      (void)mydb__ftruncate(pk->fd, (off_t)at);
      pk->size = at;
      return rc;
    }
    if (!pk->dir_synced || created) {
      if (mydb__fsync_dir(pk->tdir) != 0)
        return mydb__syserr(errno, "fsync", pk->tdir);
      pk->dir_synced = 1;
    }
  }
  /* index the staged objects at their place in the file */
  if (at == 0) {
    pk->end = FILE_HDR;
    at = FILE_HDR;
  }
  for (parena *a = pk->sarenas; a; a = a->next)
    for (size_t i = 0; i < a->n; i++)
      if (idx_add(pk, a->e[i].d, at + GROUP_HDR + a->e[i].off, a->e[i].len,
                  0) != 0) {
        /* forget the index; the next look-up rescans */
        file_reset(pk);
        pk->fresh = 0;
        mydb__lpk_stage_drop(pk);
        return MYDB_OK;
      }
  pk->end = at + glen;
  pk->size = pk->end;
  mydb__lpk_stage_drop(pk);
  return MYDB_OK;

fail:
  rc = mydb__syserr(errno, "append to", pk->path);
  (void)mydb__ftruncate(pk->fd, (off_t)at); /* best effort */
  return rc;
}

/* ------------------------------------------------------------- listing */

int mydb__lpk_names(lpk *pk, char **out, size_t *n) {
  int rc = pk->held && mydb__lpk_holds(pk) ? fresh(pk) : mydb__lpk_refresh(pk);
  *out = NULL;
  *n = 0;
  if (rc) return rc;
  size_t k = pk->idx.n;
  if (!k) return MYDB_OK;
  char *v = malloc(k * MYDB_DIGEST_BUF);
  if (!v) return mydb__seterr(MYDB_ENOMEM, "out of memory");
  size_t i = 0;
  for (parena *a = pk->arenas; a; a = a->next)
    for (size_t j = 0; j < a->n && i < k; j++, i++) {
      mydb__hex(v + i * MYDB_DIGEST_BUF, a->e[j].d, 32);
      v[i * MYDB_DIGEST_BUF + MYDB_DIGEST_HEX] = '\0';
    }
  *out = v;
  *n = i;
  return MYDB_OK;
}

int mydb__lpk_has(const lpk *pk, const char *hex) {
  unsigned char d[32];
  mydb__lpk_unhex(d, hex);
  return find(&pk->idx, d) != NULL;
}

/* ------------------------------------------------------------------ gc */

#define MARK_OFF_BITS 40

int64_t mydb__lpk_mark(lpk *pk, int *rc) {
  *rc = mydb__lpk_refresh(pk);
  return (int64_t)((pk->gen & ((1u << 22) - 1)) << MARK_OFF_BITS |
                   (pk->end & (((uint64_t)1 << MARK_OFF_BITS) - 1)));
}

int mydb__lpk_sweep(mydb *db, lpk *pk, int64_t mark,
                    int (*keep)(const char *digest, void *payload),
                    void *payload, mydb_gc_stats *st) {
  int rc = mydb__lpk_refresh(pk);
  if (rc) return rc;
  pk->fresh = 1;
  if (pk->fd < 0 || !pk->idx.n) return MYDB_OK;
  uint64_t m = (uint64_t)mark, moff = m & (((uint64_t)1 << MARK_OFF_BITS) - 1);
  int same = (m >> MARK_OFF_BITS) == (pk->gen & ((1u << 22) - 1));
  size_t n = pk->idx.n, nk = 0;
  pent **kept = malloc(n * sizeof *kept);
  if (!kept) return mydb__seterr(MYDB_ENOMEM, "out of memory");
  size_t removed = 0, freed = 0, kbytes = 0;
  char hx[MYDB_DIGEST_BUF];
  for (parena *a = pk->arenas; a; a = a->next)
    for (size_t j = 0; j < a->n; j++) {
      pent *e = &a->e[j];
      int k = 1;
      if (same && e->off < moff) {
        mydb__hex(hx, e->d, 32);
        hx[MYDB_DIGEST_HEX] = '\0';
        k = keep(hx, payload);
        if (k < 0) {
          free(kept);
          return k;
        }
      }
      if (k) {
        kept[nk++] = e;
        kbytes += e->len;
      } else {
        removed++;
        freed += OBJ_HDR + e->len;
      }
    }
  st->objects_kept += nk;
  st->bytes_kept += kbytes;
  if (!removed && !pk->damaged) { /* nothing to drop: the file stays */
    free(kept);
    return MYDB_OK;
  }
  /* the live objects into a new file, in groups, renamed over the old */
  char tmp[PATH_MAX];
  int fd = mydb__tmp_create(db, tmp, 0);
  if (fd < 0) {
    free(kept);
    return fd;
  }
  mydb_buf b = MYDB_BUF_INIT;
  unsigned char fh[FILE_HDR];
  memcpy(fh, FILE_MAGIC, 8);
  put64(fh + 8, pk->gen + 1);
  mydb_buf_put(&b, fh, FILE_HDR);
  rc = MYDB_OK;
  size_t i = 0;
  while (rc == MYDB_OK && i < nk) {
    size_t g0 = b.len, cnt = 0;
    unsigned char gh[GROUP_HDR] = {0};
    mydb_buf_put(&b, gh, GROUP_HDR);
    while (i < nk && (cnt == 0 || b.len - g0 < STAGE_FLUSH_BYTES)) {
      pent *e = kept[i++];
      size_t at = b.len;
      if (mydb_buf_grow(&b, OBJ_HDR + (size_t)e->len) != 0) break;
      ssize_t got = mydb__pread_all(pk->fd, b.data + at, OBJ_HDR + e->len,
                                    (off_t)(e->off - OBJ_HDR));
      if (got < 0) {
        rc = mydb__syserr(errno, "read", pk->path);
        break;
      }
      if ((size_t)got != OBJ_HDR + e->len) {
        rc = mydb__seterr(MYDB_ECORRUPT, "%s: short object at offset %llu",
                          pk->path, (unsigned long long)e->off);
        break;
      }
      b.len += OBJ_HDR + e->len; /* (copied as stored: damage stays seen) */
      cnt++;
    }
    if (rc || b.failed) break;
    uint64_t glen = (uint64_t)(b.len - g0) + TRAILER;
    unsigned char *g = (unsigned char *)b.data + g0;
    g[0] = 'G';
    put32(g + 1, (uint32_t)cnt);
    put64(g + 5, glen);
    put32(g + 13, mydb__crc32(0, g, 13));
    unsigned char tr[TRAILER];
    tr[0] = 'T';
    put32(tr + 1, (uint32_t)cnt);
    uint32_t c = mydb__crc32(mydb__crc32(0, g, b.len - g0), tr, 5);
    put32(tr + 5, c);
    mydb_buf_put(&b, tr, TRAILER);
    if (b.failed) break;
    if (mydb__write_all(fd, b.data, b.len) != 0) {
      rc = mydb__syserr(errno, "write", tmp);
      break;
    }
    b.len = 0;
  }
  if (!rc && b.failed) rc = mydb__seterr(MYDB_ENOMEM, "out of memory in gc");
  if (!rc && b.len && mydb__write_all(fd, b.data, b.len) != 0)
    rc = mydb__syserr(errno, "write", tmp); /* (no object kept) */
  mydb_buf_free(&b);
  free(kept);
  if (!rc && db->fsync && mydb__fsync(fd) != 0)
    rc = mydb__syserr(errno, "fsync", tmp);
  if (!rc && rename(tmp, pk->path) != 0)
    rc = mydb__syserr(errno, "rename", pk->path);
  if (rc) {
    mydb__close(fd);
    unlink(tmp);
    return rc;
  }
  mydb__close(fd);
  if (db->fsync && mydb__fsync_dir(pk->tdir) != 0)
    rc = mydb__syserr(errno, "fsync", pk->tdir);
  st->objects_removed += removed;
  st->bytes_freed += freed;
  /* follow the new file (scanned afresh) */
  file_reset(pk);
  int r2 = mydb__lpk_refresh(pk);
  return rc ? rc : r2;
}

/* --------------------------------------------------------------- check */

int mydb__lpk_check(lpk *pk, report_fn fn, void *payload) {
  int fd = mydb__open(pk->path, O_RDONLY | O_NOFOLLOW, 0);
  if (fd < 0) {
    if (errno == ENOENT) return MYDB_OK;
    return mydb__syserr(errno, "open", pk->path);
  }
  struct stat st;
  int rc = MYDB_OK;
  if (fstat(fd, &st) != 0) {
    rc = mydb__syserr(errno, "fstat", pk->path);
    mydb__close(fd);
    return rc;
  }
  uint64_t size = (uint64_t)st.st_size, gen, pos = FILE_HDR;
  rc = scan_header(fd, pk->path, size, &gen);
  if (rc == MYDB_ECORRUPT) {
    fn(pk->path, mydb_errmsg(), payload);
    rc = MYDB_OK;
    pos = size;
  } else if (rc <= 0) {
    pos = size; /* empty or torn before its first group */
  }
  while (rc >= 0 && pos < size) {
    uint64_t glen = 0;
    rc = scan_group(fd, pk->path, pos, size, NULL, &glen, fn, payload);
    if (rc <= 0) break; /* a torn tail: the next writer truncates it */
    pos += glen;
  }
  mydb__close(fd);
  return rc < 0 ? rc : MYDB_OK;
}

size_t mydb__lpk_staged_names(lpk *pk, char **out) {
  *out = NULL;
  if (!pk->scount) return 0;
  char *v = malloc(pk->scount * MYDB_DIGEST_BUF);
  if (!v) return (size_t)-1;
  size_t i = 0;
  for (parena *a = pk->sarenas; a; a = a->next)
    for (size_t j = 0; j < a->n && i < pk->scount; j++, i++) {
      mydb__hex(v + i * MYDB_DIGEST_BUF, a->e[j].d, 32);
      v[i * MYDB_DIGEST_BUF + MYDB_DIGEST_HEX] = '\0';
    }
  *out = v;
  return i;
}
