/*
 * head.c - the per-tenant head journal (doc/FORMAT.md "Head journal").
 *
 * TENANT/head is a header line followed by one JSON array of
 * [entry, digest|null] pairs per commit. Each handle keeps, per tenant, a
 * replayed map entry -> digest together with an open descriptor of the
 * journal, its inode and the offset replayed so far:
 *
 *   - stat(path) shows the same inode and size == offset: nothing changed,
 *     answer from the map (one stat plus one hash lookup);
 *   - same inode, larger: another writer appended; pread only the new
 *     bytes and replay the complete lines (a last line without '\n' is a
 *     write in progress or a torn write: ignored, read again next time);
 *   - another inode: the journal was compacted (renamed over); replay the
 *     new file from the start. The old descriptor kept the old inode alive,
 *     so its number cannot have been reused for the new file.
 *
 * Writers hold the tenant's flock (lock.c). A commit is one write(2) of one
 * complete line on an O_APPEND descriptor, so it is all-or-nothing for
 * readers and across crashes (a torn tail is truncated by the next writer).
 * The prefix of the journal up to any reader's offset is never modified in
 * place: writers only append, or truncate a torn tail that no reader has
 * replayed, or replace the whole file by rename.
 *
 * All state here is protected by db->mu.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "jsonstr.h"

typedef struct hentry {
  mydb__hnode h;
  char digest[MYDB_DIGEST_HEX];
  char key[];
} hentry;

struct mydb__tstate {
  mydb__hnode h; /* in db->tstates, keyed by tenant name */
  struct mydb__tstate *prev, *next; /* LRU list */
  int fd;                           /* journal, or -1 */
  int writable;                     /* fd opened O_RDWR|O_APPEND */
  dev_t dev;
  ino_t ino;
  off_t parsed;   /* bytes of complete lines replayed */
  size_t lineno;  /* complete lines replayed, header included */
  size_t records; /* [entry, digest] pairs replayed */
  mydb__htab map; /* entry -> hentry */
  size_t tlen;
  char name[MYDB_TENANT_MAX + 1];
  char path[]; /* ROOT/TENANT/head */
};
typedef struct mydb__tstate tstate;

/* ------------------------------------------------------------------ map */

static void map_clear(mydb__htab *m) {
  for (size_t i = 0; i < m->nb; i++) {
    mydb__hnode *n = m->b[i];
    while (n) {
      mydb__hnode *next = n->next;
      free(n);
      n = next;
    }
  }
  mydb__htab_free(m);
}

static int map_set(mydb__htab *m, const char *key, size_t klen,
                   const char *digest) {
  uint64_t h = mydb__hash(key, klen);
  hentry *e = (hentry *)mydb__htab_find(m, h, key, klen);
  if (e) {
    memcpy(e->digest, digest, MYDB_DIGEST_HEX);
    return 0;
  }
  e = malloc(sizeof *e + klen);
  if (!e) return MYDB_ENOMEM;
  memcpy(e->key, key, klen);
  memcpy(e->digest, digest, MYDB_DIGEST_HEX);
  e->h.hash = h;
  e->h.key = e->key;
  e->h.klen = klen;
  if (mydb__htab_add(m, &e->h) != 0) {
    free(e);
    return MYDB_ENOMEM;
  }
  return 0;
}

static void map_del(mydb__htab *m, const char *key, size_t klen) {
  mydb__hnode *n = mydb__htab_find(m, mydb__hash(key, klen), key, klen);
  if (n) {
    mydb__htab_del(m, n);
    free(n);
  }
}

static int cmp_hentry(const void *a, const void *b) {
  const hentry *x = *(const hentry *const *)a, *y = *(const hentry *const *)b;
  size_t n = x->h.klen < y->h.klen ? x->h.klen : y->h.klen;
  int c = memcmp(x->key, y->key, n);
  if (c) return c;
  return x->h.klen < y->h.klen ? -1 : x->h.klen > y->h.klen;
}

/* Live entries of m, sorted bytewise; NULL on ENOMEM (or when empty: *n 0).
 * The pointers are valid while db->mu is held. */
static hentry **map_sorted(const mydb__htab *m, size_t *n) {
  *n = 0;
  if (m->n == 0) return NULL;
  hentry **v = malloc(m->n * sizeof *v);
  if (!v) return NULL;
  size_t k = 0;
  for (size_t i = 0; i < m->nb; i++)
    for (mydb__hnode *x = m->b[i]; x; x = x->next) v[k++] = (hentry *)x;
  qsort(v, k, sizeof *v, cmp_hentry);
  *n = k;
  return v;
}

/* ---------------------------------------------------------- tenant state */

static void ts_reset(tstate *ts) {
  if (ts->fd >= 0) mydb__close(ts->fd);
  ts->fd = -1;
  ts->writable = 0;
  ts->parsed = 0;
  ts->lineno = 0;
  ts->records = 0;
  map_clear(&ts->map);
}

static void ts_unlink(mydb *db, tstate *ts) {
  if (ts->prev) ts->prev->next = ts->next; else db->ts_first = ts->next;
  if (ts->next) ts->next->prev = ts->prev; else db->ts_last = ts->prev;
  ts->prev = ts->next = NULL;
}

static void ts_push_front(mydb *db, tstate *ts) {
  ts->prev = NULL;
  ts->next = db->ts_first;
  if (db->ts_first) db->ts_first->prev = ts; else db->ts_last = ts;
  db->ts_first = ts;
}

static void ts_free(mydb *db, tstate *ts) {
  ts_unlink(db, ts);
  mydb__htab_del(&db->tstates, &ts->h);
  db->ts_count--;
  ts_reset(ts);
  free(ts);
}

void mydb__heads_free(mydb *db) {
  while (db->ts_last) ts_free(db, db->ts_last);
  mydb__htab_free(&db->tstates);
}

/* The state of a tenant (created empty if absent), most recently used
 * first; NULL on ENOMEM. */
static tstate *ts_get(mydb *db, const char *tenant, size_t tlen,
                      const char *path) {
  uint64_t h = mydb__hash(tenant, tlen);
  tstate *ts = (tstate *)mydb__htab_find(&db->tstates, h, tenant, tlen);
  if (ts) {
    if (db->ts_first != ts) {
      ts_unlink(db, ts);
      ts_push_front(db, ts);
    }
    return ts;
  }
  size_t pl = strlen(path);
  ts = calloc(1, sizeof *ts + pl + 1);
  if (!ts) {
    mydb__seterr(MYDB_ENOMEM, "out of memory");
    return NULL;
  }
  ts->fd = -1;
  ts->tlen = tlen;
  memcpy(ts->name, tenant, tlen);
  memcpy(ts->path, path, pl + 1);
  ts->h.hash = h;
  ts->h.key = ts->name;
  ts->h.klen = tlen;
  if (mydb__htab_add(&db->tstates, &ts->h) != 0) {
    free(ts);
    mydb__seterr(MYDB_ENOMEM, "out of memory");
    return NULL;
  }
  db->ts_count++;
  ts_push_front(db, ts);
  /* Bound the descriptors and memory kept for rarely used tenants. */
  while (db->ts_count > MYDB__TSTATE_MAX && db->ts_last != ts)
    ts_free(db, db->ts_last);
  return ts;
}

static int ts_fresh(const tstate *ts, const struct stat *st) {
  return ts->fd >= 0 && st->st_ino == ts->ino && st->st_dev == ts->dev &&
         st->st_size == ts->parsed;
}

/* -------------------------------------------------------------- parsing */

typedef struct pair {
  size_t off, len; /* decoded entry in the keys buffer */
  int del;
  char digest[MYDB_DIGEST_HEX];
} pair;

static const char *skip_ws(const char *p, const char *e) {
  while (p < e && (*p == ' ' || *p == '\t' || *p == '\r')) p++;
  return p;
}

/* Parses one commit line [p, e) into keys/pairs. NULL, or a reason. */
static const char *parse_line(const char *p, const char *e, mydb_buf *keys,
                              mydb_buf *pairs) {
  keys->len = 0;
  pairs->len = 0;
  p = skip_ws(p, e);
  if (p >= e || *p != '[') return "expected '['";
  p = skip_ws(p + 1, e);
  if (p < e && *p == ']') /* an empty commit: harmless */
    return skip_ws(p + 1, e) == e ? NULL : "garbage after ']'";
  for (;;) {
    if (p >= e || *p != '[') return "expected '[' opening a pair";
    p = skip_ws(p + 1, e);
    pair pr;
    pr.off = keys->len;
    p = mydb_json_get_string(keys, p, e);
    if (!p) return "malformed entry string";
    if (keys->failed) return "out of memory";
    pr.len = keys->len - pr.off;
    if (pr.len < 1 || pr.len > MYDB_ENTRY_MAX ||
        memchr(keys->data + pr.off, '\0', pr.len))
      return "invalid entry name";
    p = skip_ws(p, e);
    if (p >= e || *p != ',') return "expected ',' in a pair";
    p = skip_ws(p + 1, e);
    if (e - p >= 4 && memcmp(p, "null", 4) == 0) {
      pr.del = 1;
      memset(pr.digest, 0, sizeof pr.digest);
      p += 4;
    } else if (e - p >= MYDB_DIGEST_HEX + 2 && p[0] == '"' &&
               p[MYDB_DIGEST_HEX + 1] == '"' &&
               mydb_digest_valid(p + 1, MYDB_DIGEST_HEX)) {
      pr.del = 0;
      memcpy(pr.digest, p + 1, MYDB_DIGEST_HEX);
      p += MYDB_DIGEST_HEX + 2;
    } else {
      return "expected a digest or null";
    }
    p = skip_ws(p, e);
    if (p >= e || *p != ']') return "expected ']' closing a pair";
    p = skip_ws(p + 1, e);
    mydb_buf_put(pairs, &pr, sizeof pr);
    if (pairs->failed) return "out of memory";
    if (p < e && *p == ',') {
      p = skip_ws(p + 1, e);
      continue;
    }
    if (p < e && *p == ']') {
      p = skip_ws(p + 1, e);
      return p == e ? NULL : "garbage after ']'";
    }
    return "expected ',' or ']'";
  }
}

static int is_header(const char *p, const char *e) {
  static const char hdr[] = "{\"mydb_head\":1}";
  p = skip_ws(p, e);
  while (e > p && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r')) e--;
  return (size_t)(e - p) == sizeof hdr - 1 && memcmp(p, hdr, e - p) == 0;
}

/* Brings ts up to date with the journal, given a fresh stat of its path.
 * *end receives the file size observed (> ts->parsed if the file ends with
 * an incomplete line). Returns MYDB_ENOTFOUND without a message if the
 * journal vanished in between. */
static int ts_refresh(tstate *ts, const struct stat *st, int locked,
                      off_t *end) {
  /* st was taken before db->mu: another thread may have brought ts further
   * in between, so st is only a hint and never moves ts backwards - unless
   * the caller holds the tenant lock: then nobody else writes, and a
   * journal shorter than what was replayed was truncated behind mydb's
   * back (replay it afresh). */
  if (locked && ts->fd >= 0 && st->st_ino == ts->ino &&
      st->st_dev == ts->dev && st->st_size < ts->parsed)
    ts_reset(ts);
  off_t size = st->st_size;
  if (ts->fd < 0 || st->st_ino != ts->ino || st->st_dev != ts->dev) {
    int writable = 1;
    int fd = mydb__open(ts->path, O_RDWR | O_APPEND, 0);
    if (fd < 0 && (errno == EACCES || errno == EROFS || errno == EPERM)) {
      writable = 0;
      fd = mydb__open(ts->path, O_RDONLY, 0);
    }
    if (fd < 0) {
      if (errno == ENOENT) return MYDB_ENOTFOUND;
      return mydb__syserr(errno, "open", ts->path);
    }
    struct stat fst;
    if (fstat(fd, &fst) != 0) {
      int rc = mydb__syserr(errno, "fstat", ts->path);
      mydb__close(fd);
      return rc;
    }
    if (ts->fd >= 0 && fst.st_ino == ts->ino && fst.st_dev == ts->dev) {
      mydb__close(fd); /* st was stale: ts already follows this file */
    } else {
      ts_reset(ts); /* a new journal (compacted): replay from the start */
      ts->fd = fd;
      ts->writable = writable;
      ts->dev = fst.st_dev;
      ts->ino = fst.st_ino;
    }
    size = fst.st_size;
  }
  /* Same file. Writers never modify the part of the journal that anyone
   * replayed, so a size below ts->parsed only means st is stale. */
  if (end) *end = ts->parsed;
  if (size <= ts->parsed) return MYDB_OK;

  size_t want = (size_t)(size - ts->parsed);
  char *buf = malloc(want);
  if (!buf)
    return mydb__seterr(MYDB_ENOMEM, "out of memory reading %s (%zu bytes)",
                        ts->path, want);
  ssize_t got = mydb__pread_all(ts->fd, buf, want, ts->parsed);
  if (got < 0) {
    int rc = mydb__syserr(errno, "read", ts->path);
    free(buf);
    return rc;
  }
  if (end) *end = ts->parsed + got;

  int rc = MYDB_OK;
  mydb_buf keys = MYDB_BUF_INIT, pairs = MYDB_BUF_INIT;
  const char *p = buf, *e = buf + got;
  while (p < e) {
    const char *nl = memchr(p, '\n', (size_t)(e - p));
    if (!nl) break; /* incomplete last line: not (yet) part of the state */
    if (ts->lineno == 0) {
      if (!is_header(p, nl)) {
        rc = mydb__seterr(MYDB_ECORRUPT, "%s line 1: not a mydb head "
                          "journal header", ts->path);
        break;
      }
    } else {
      const char *why = parse_line(p, nl, &keys, &pairs);
      if (why) {
        if (keys.failed || pairs.failed)
          rc = mydb__seterr(MYDB_ENOMEM, "out of memory reading %s",
                            ts->path);
        else
          rc = mydb__seterr(MYDB_ECORRUPT, "%s line %zu: %s", ts->path,
                            ts->lineno + 1, why);
        break;
      }
      size_t np = pairs.len / sizeof(pair);
      const pair *pv = (const pair *)(const void *)pairs.data;
      for (size_t i = 0; i < np && rc == MYDB_OK; i++) {
        if (pv[i].del) map_del(&ts->map, keys.data + pv[i].off, pv[i].len);
        else if (map_set(&ts->map, keys.data + pv[i].off, pv[i].len,
                         pv[i].digest) != 0)
          rc = MYDB_ENOMEM;
      }
      if (rc) {
        /* Half a commit applied: drop the state, replay afresh next time. */
        ts_reset(ts);
        rc = mydb__seterr(MYDB_ENOMEM, "out of memory reading %s", ts->path);
        break;
      }
      ts->records += np;
    }
    ts->lineno++;
    ts->parsed += (nl + 1 - p);
    p = nl + 1;
  }
  mydb_buf_free(&keys);
  mydb_buf_free(&pairs);
  free(buf);
  return rc;
}

/* The message when TENANT/head does not exist. */
static int head_absent(mydb *db, const char *tenant) {
  int rc = mydb__tenant_initialized(db, tenant);
  if (rc < 0) return rc;
  if (rc == 0)
    return mydb__seterr(MYDB_ENOTINIT, "tenant '%s' is not initialized",
                        tenant);
  return MYDB_OK;
}

/* Locks db->mu and returns the up-to-date state of the tenant. Otherwise
 * returns NULL without db->mu, with the error in *rcp, or MYDB_OK in *rcp
 * when the tenant is initialized but has no journal (no entries). */
static tstate *head_open(mydb *db, const char *tenant, size_t tlen,
                         int locked, off_t *end, int *rcp) {
  char path[PATH_MAX];
  struct stat st;
  int rc = mydb__path(db, path, tenant, "head", NULL);
  if (rc) { *rcp = rc; return NULL; }
  if (stat(path, &st) != 0) {
    if (errno != ENOENT && errno != ENOTDIR) {
      *rcp = mydb__syserr(errno, "stat", path);
      return NULL;
    }
    *rcp = head_absent(db, tenant);
    return NULL;
  }
  pthread_mutex_lock(&db->mu);
  tstate *ts = ts_get(db, tenant, tlen, path);
  if (!ts) {
    pthread_mutex_unlock(&db->mu);
    *rcp = MYDB_ENOMEM;
    return NULL;
  }
  if (ts_fresh(ts, &st)) {
    if (end) *end = ts->parsed;
    *rcp = MYDB_OK;
    return ts;
  }
  rc = ts_refresh(ts, &st, locked, end);
  if (rc) {
    pthread_mutex_unlock(&db->mu);
    if (rc == MYDB_ENOTFOUND) rc = head_absent(db, tenant);
    *rcp = rc;
    return NULL;
  }
  *rcp = MYDB_OK;
  return ts;
}

/* ---------------------------------------------------------------- reads */

int mydb__head_get(mydb *db, char out[MYDB_DIGEST_BUF], const char *tenant,
                   size_t tlen, const char *entry, size_t entry_len,
                   int locked) {
  int rc;
  tstate *ts = head_open(db, tenant, tlen, locked, NULL, &rc);
  if (!ts) {
    if (rc == MYDB_OK) /* no journal yet: no entries */
      rc = mydb__seterr(MYDB_ENOTFOUND, "entry '%.*s' not found in tenant "
                        "'%s'", (int)(entry_len > 100 ? 100 : entry_len),
                        entry, tenant);
    return rc;
  }
  const hentry *e = (const hentry *)mydb__htab_find(
      &ts->map, mydb__hash(entry, entry_len), entry, entry_len);
  if (e) {
    memcpy(out, e->digest, MYDB_DIGEST_HEX);
    out[MYDB_DIGEST_HEX] = '\0';
    rc = MYDB_OK;
  } else {
    rc = mydb__seterr(MYDB_ENOTFOUND, "entry '%.*s' not found in tenant '%s'",
                      (int)(entry_len > 100 ? 100 : entry_len), entry, tenant);
  }
  pthread_mutex_unlock(&db->mu);
  return rc;
}

int mydb_head_get(mydb *db, char out[MYDB_DIGEST_BUF], const char *tenant,
                  const char *entry, size_t entry_len) {
  int rc;
  size_t tlen;
  if ((rc = mydb__check_db(db)) || (rc = mydb__check_tenant(tenant, &tlen)) ||
      (rc = mydb__check_entry(entry, entry_len)))
    return rc;
  if (!out) return mydb__seterr(MYDB_EINVAL, "head_get: out is NULL");
  return mydb__head_get(db, out, tenant, tlen, entry, entry_len, 0);
}

typedef struct item {
  const char *key;
  size_t klen;
  const char *digest;
} item;

static int cmp_item(const void *a, const void *b) {
  const item *x = a, *y = b;
  size_t n = x->klen < y->klen ? x->klen : y->klen;
  int c = memcmp(x->key, y->key, n);
  if (c) return c;
  return x->klen < y->klen ? -1 : x->klen > y->klen;
}

int mydb_head_foreach(mydb *db, const char *tenant,
                      int (*fn)(const char *entry, size_t entry_len,
                                const char *digest, void *payload),
                      void *payload) {
  int rc;
  size_t tlen;
  if ((rc = mydb__check_db(db)) || (rc = mydb__check_tenant(tenant, &tlen)))
    return rc;
  if (!fn) return mydb__seterr(MYDB_EINVAL, "head_foreach: fn is NULL");
  tstate *ts = head_open(db, tenant, tlen, 0, NULL, &rc);
  if (!ts) return rc; /* MYDB_OK: no journal, no entries */

  /* Copy a snapshot out, so that fn runs without db->mu (it may call
   * back into mydb). */
  const mydb__htab *m = &ts->map;
  size_t n = m->n, bytes = 0;
  for (size_t i = 0; i < m->nb; i++)
    for (const mydb__hnode *x = m->b[i]; x; x = x->next)
      bytes += x->klen + 1 + MYDB_DIGEST_BUF;
  item *items = n ? malloc(n * sizeof *items) : NULL;
  char *arena = n ? malloc(bytes) : NULL;
  if (n && (!items || !arena)) {
    pthread_mutex_unlock(&db->mu);
    free(items);
    free(arena);
    return mydb__seterr(MYDB_ENOMEM, "out of memory listing tenant '%s'",
                        tenant);
  }
  size_t k = 0;
  char *a = arena;
  for (size_t i = 0; i < m->nb; i++)
    for (const mydb__hnode *x = m->b[i]; x; x = x->next) {
      const hentry *e = (const hentry *)x;
      items[k].key = a;
      items[k].klen = x->klen;
      memcpy(a, e->key, x->klen);
      a[x->klen] = '\0';
      a += x->klen + 1;
      items[k].digest = a;
      memcpy(a, e->digest, MYDB_DIGEST_HEX);
      a[MYDB_DIGEST_HEX] = '\0';
      a += MYDB_DIGEST_BUF;
      k++;
    }
  pthread_mutex_unlock(&db->mu);
  if (n) qsort(items, n, sizeof *items, cmp_item);
  rc = MYDB_OK;
  for (size_t i = 0; i < n && rc == 0; i++)
    rc = fn(items[i].key, items[i].klen, items[i].digest, payload);
  free(items);
  free(arena);
  return rc;
}

/* --------------------------------------------------------------- writes */

/* Rewrites the journal as one line per live entry (sorted), renamed over
 * the old one. Called with the tenant lock and db->mu held. On failure the
 * old journal and ts are left as they were. */
static int compact(mydb *db, tstate *ts) {
  size_t n;
  hentry **v = map_sorted(&ts->map, &n);
  if (!v && ts->map.n)
    return mydb__seterr(MYDB_ENOMEM, "out of memory compacting %s", ts->path);
  mydb_buf b = MYDB_BUF_INIT;
  mydb_buf_put(&b, MYDB__HEAD_HEADER, MYDB__HEAD_HEADER_LEN);
  for (size_t i = 0; i < n; i++) {
    mydb_buf_put(&b, "[[", 2);
    mydb_json_put_string(&b, v[i]->key, v[i]->h.klen);
    mydb_buf_put(&b, ",\"", 2);
    mydb_buf_put(&b, v[i]->digest, MYDB_DIGEST_HEX);
    mydb_buf_put(&b, "\"]]\n", 4);
  }
  free(v);
  if (b.failed) {
    mydb_buf_free(&b);
    return mydb__seterr(MYDB_ENOMEM, "out of memory compacting %s", ts->path);
  }
  char tmp[PATH_MAX];
  int rc, fd = mydb__tmp_create(db, tmp, O_APPEND);
  if (fd < 0) {
    mydb_buf_free(&b);
    return fd;
  }
  struct stat fst;
  if (mydb__write_all(fd, b.data, b.len) != 0) {
    rc = mydb__syserr(errno, "write", tmp);
    goto fail;
  }
  if (db->fsync && mydb__fsync(fd) != 0) {
    rc = mydb__syserr(errno, "fsync", tmp);
    goto fail;
  }
  if (fstat(fd, &fst) != 0) {
    rc = mydb__syserr(errno, "fstat", tmp);
    goto fail;
  }
  if (rename(tmp, ts->path) != 0) {
    rc = mydb__syserr(errno, "rename", ts->path);
    goto fail;
  }
  if (db->fsync) {
    char dir[PATH_MAX];
    size_t dl = strlen(ts->path) - strlen("/head");
    memcpy(dir, ts->path, dl);
    dir[dl] = '\0';
    if (mydb__fsync_dir(dir) != 0) {
      /* The rename happened; only its durability is in doubt. */
      rc = mydb__syserr(errno, "fsync", dir);
    }
  }
  /* The temporary file is now the journal: keep its descriptor. */
  mydb__close(ts->fd);
  ts->fd = fd;
  ts->writable = 1;
  ts->dev = fst.st_dev;
  ts->ino = fst.st_ino;
  ts->parsed = (off_t)b.len;
  ts->lineno = 1 + n;
  ts->records = n;
  mydb_buf_free(&b);
  return MYDB_OK;

fail:
  mydb__close(fd);
  unlink(tmp);
  mydb_buf_free(&b);
  return rc;
}

int mydb_head_commit(mydb_lock *lk, const mydb_head_change *changes,
                     size_t n) {
  int rc;
  if (!lk) return mydb__seterr(MYDB_EINVAL, "head_commit: lock is NULL");
  if (!lk->db || lk->fd < 0)
    return mydb__seterr(MYDB_ECLOSED, "head_commit: the lock's database "
                        "handle was closed");
  if (!changes || n == 0)
    return mydb__seterr(MYDB_EINVAL, "head_commit: no changes");
  for (size_t i = 0; i < n; i++) {
    if ((rc = mydb__check_entry(changes[i].entry, changes[i].entry_len)))
      return rc;
    if (changes[i].digest && (rc = mydb__check_digest(changes[i].digest)))
      return rc;
  }
  mydb *db = lk->db;

  /* The whole line, built before taking db->mu. The header goes in front
   * in case the journal turns out to be empty. */
  mydb_buf b = MYDB_BUF_INIT;
  mydb_buf_put(&b, MYDB__HEAD_HEADER, MYDB__HEAD_HEADER_LEN);
  mydb_buf_putc(&b, '[');
  for (size_t i = 0; i < n; i++) {
    if (i) mydb_buf_putc(&b, ',');
    mydb_buf_putc(&b, '[');
    mydb_json_put_string(&b, changes[i].entry, changes[i].entry_len);
    if (changes[i].digest) {
      mydb_buf_put(&b, ",\"", 2);
      mydb_buf_put(&b, changes[i].digest, MYDB_DIGEST_HEX);
      mydb_buf_put(&b, "\"]", 2);
    } else {
      mydb_buf_put(&b, ",null]", 6);
    }
  }
  mydb_buf_put(&b, "]\n", 2);
  if (b.failed) {
    mydb_buf_free(&b);
    return mydb__seterr(MYDB_ENOMEM, "out of memory building a commit");
  }

  off_t end;
  tstate *ts = head_open(db, lk->tenant, lk->tlen, 1, &end, &rc);
  if (!ts) {
    mydb_buf_free(&b);
    if (rc == MYDB_OK)
      rc = mydb__seterr(MYDB_ENOTINIT, "tenant '%s' has no head journal",
                        lk->tenant);
    return rc;
  }
  /* From here on db->mu is held. */
  if (!ts->writable) {
    rc = mydb__seterr(MYDB_EIO, "head journal %s is not writable",
                      ts->path);
    goto out;
  }
  if (end > ts->parsed) {
    /* We hold the lock, so no writer is mid-append: the incomplete last
     * line is a torn write of a killed writer. Drop it. */
    if (mydb__ftruncate(ts->fd, ts->parsed) != 0) {
      rc = mydb__syserr(errno, "ftruncate", ts->path);
      goto out;
    }
  }
  const char *w = b.data + MYDB__HEAD_HEADER_LEN;
  size_t wl = b.len - MYDB__HEAD_HEADER_LEN;
  int with_header = ts->parsed == 0;
  if (with_header) {
    w = b.data;
    wl = b.len;
  }
  if (mydb__write_all(ts->fd, w, wl) != 0) {
    rc = mydb__syserr(errno, "append to", ts->path);
    (void)mydb__ftruncate(ts->fd, ts->parsed); /* best effort */
    goto out;
  }
  if (db->fsync && mydb__fdatasync(ts->fd) != 0) {
    /* The line is in the file; the next refresh replays it. */
    rc = mydb__syserr(errno, "fdatasync", ts->path);
    goto out;
  }
  rc = MYDB_OK;
  for (size_t i = 0; i < n; i++) {
    if (!changes[i].digest) {
      map_del(&ts->map, changes[i].entry, changes[i].entry_len);
    } else if (map_set(&ts->map, changes[i].entry, changes[i].entry_len,
                       changes[i].digest) != 0) {
      ts_reset(ts); /* committed; the next read replays the journal */
      goto out;
    }
  }
  ts->parsed += (off_t)wl;
  ts->lineno += 1 + (size_t)with_header;
  ts->records += n;
  if (ts->records > MYDB__COMPACT_MIN && ts->records > 2 * ts->map.n)
    (void)compact(db, ts); /* the commit stands whether or not this works */
out:
  pthread_mutex_unlock(&db->mu);
  mydb_buf_free(&b);
  return rc;
}
