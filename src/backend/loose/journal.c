/*
 * journal.c - the loose backend's per-tenant head journal (doc/FORMAT.md
 * "Head journal").
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
 * Writers hold the tenant's flock (src/os/flock.c). A commit is one write(2) of one
 * complete line on an O_APPEND descriptor, so it is all-or-nothing for
 * readers and across crashes (a torn tail is truncated by the next writer).
 * The prefix of the journal up to any reader's offset is never modified in
 * place: writers only append, or truncate a torn tail that no reader has
 * replayed, or replace the whole file by rename.
 *
 * All state here is protected by the loose backend's mutex (lb->mu).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "headmap.h"
#include "jsonstr.h"
#include "loose.h"

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
  /* A sync of the journal failed: the kernel may have dropped its dirty
   * pages and a later fdatasync would succeed over the hole (PostgreSQL's
   * "fsyncgate"), so nothing is appended until compact() has rewritten it
   * from memory into a new, synced file. Survives ts_reset; such a state
   * is never evicted. */
  int unsynced;
  mydb__htab map; /* entry -> mydb__hentry */
  size_t tlen;
  char name[MYDB_TENANT_MAX + 1];
  char path[]; /* ROOT/TENANT/head */
};
typedef struct mydb__tstate tstate;

/* ---------------------------------------------------------- tenant state */

static void ts_reset(tstate *ts) {
  if (ts->fd >= 0) mydb__close(ts->fd);
  ts->fd = -1;
  ts->writable = 0;
  ts->parsed = 0;
  ts->lineno = 0;
  ts->records = 0;
  mydb__hmap_clear(&ts->map);
}

static void ts_unlink(mydb__loose *db, tstate *ts) {
  if (ts->prev) ts->prev->next = ts->next; else db->ts_first = ts->next;
  if (ts->next) ts->next->prev = ts->prev; else db->ts_last = ts->prev;
  ts->prev = ts->next = NULL;
}

static void ts_push_front(mydb__loose *db, tstate *ts) {
  ts->prev = NULL;
  ts->next = db->ts_first;
  if (db->ts_first) db->ts_first->prev = ts; else db->ts_last = ts;
  db->ts_first = ts;
}

static void ts_free(mydb__loose *db, tstate *ts) {
  ts_unlink(db, ts);
  mydb__htab_del(&db->tstates, &ts->h);
  db->ts_count--;
  ts_reset(ts);
  free(ts);
}

void mydb__loose_heads_free(mydb__loose *lb) {
  while (lb->ts_last) ts_free(lb, lb->ts_last);
  mydb__htab_free(&lb->tstates);
}

/* The state of a tenant (created empty if absent), most recently used
 * first; NULL on ENOMEM. */
static tstate *ts_get(mydb__loose *db, const char *tenant, size_t tlen,
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
  for (tstate *v = db->ts_last; db->ts_count > MYDB__TSTATE_MAX && v && v != ts;) {
    tstate *prev = v->prev;
    if (!v->unsynced) ts_free(db, v);
    v = prev;
  }
  return ts;
}

static int ts_fresh(const tstate *ts, const struct stat *st) {
  return ts->fd >= 0 && st->st_ino == ts->ino && st->st_dev == ts->dev &&
         st->st_size == ts->parsed;
}

/* Brings ts up to date with the journal, given a fresh stat of its path.
 * *end receives the file size observed (> ts->parsed if the file ends with
 * an incomplete line). Returns MYDB_ENOTFOUND without a message if the
 * journal vanished in between. */
static int ts_refresh(tstate *ts, const struct stat *st, int locked,
                      off_t *end) {
  /* st was taken before lb->mu: another thread may have brought ts further
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
    /* O_NOFOLLOW: a journal replaced by a symlink is refused (ELOOP), it
     * is never appended to; the tenant directory is checked by the lock
     * (mydb__open_below), which every writer holds. */
    int fd = mydb__open(ts->path, O_RDWR | O_APPEND | O_NOFOLLOW, 0);
    if (fd < 0 && (errno == EACCES || errno == EROFS || errno == EPERM)) {
      writable = 0;
      fd = mydb__open(ts->path, O_RDONLY | O_NOFOLLOW, 0);
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
      if (!mydb__hline_is_header(p, nl)) {
        rc = mydb__seterr(MYDB_ECORRUPT, "%s line 1: not a mydb head "
                          "journal header", ts->path);
        break;
      }
    } else {
      const char *why = mydb__hline_parse(p, nl, &keys, &pairs);
      if (why) {
        if (keys.failed || pairs.failed)
          rc = mydb__seterr(MYDB_ENOMEM, "out of memory reading %s",
                            ts->path);
        else
          rc = mydb__seterr(MYDB_ECORRUPT, "%s line %zu: %s", ts->path,
                            ts->lineno + 1, why);
        break;
      }
      size_t np;
      if (mydb__hline_apply(&ts->map, &keys, &pairs, &np) != 0) {
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
  int rc = mydb__loose_initialized(db, tenant);
  if (rc < 0) return rc;
  if (rc == 0)
    return mydb__seterr(MYDB_ENOTINIT, "tenant '%s' is not initialized",
                        tenant);
  return MYDB_OK;
}

/* Locks lb->mu and returns the up-to-date state of the tenant. Otherwise
 * returns NULL without lb->mu, with the error in *rcp, or MYDB_OK in *rcp
 * when the tenant is initialized but has no journal (no entries). */
static tstate *head_open(mydb__loose *lb, const char *tenant, size_t tlen,
                         int locked, off_t *end, int *rcp) {
  mydb *db = lb->be.db;
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
  pthread_mutex_lock(&lb->mu);
  tstate *ts = ts_get(lb, tenant, tlen, path);
  if (!ts) {
    pthread_mutex_unlock(&lb->mu);
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
    pthread_mutex_unlock(&lb->mu);
    if (rc == MYDB_ENOTFOUND) rc = head_absent(db, tenant);
    *rcp = rc;
    return NULL;
  }
  *rcp = MYDB_OK;
  return ts;
}

/* ---------------------------------------------------------------- reads */

int mydb__loose_head_get(mydb_backend *be, char out[MYDB_DIGEST_BUF],
                         const char *tenant, size_t tlen, const char *entry,
                         size_t entry_len, int locked) {
  int rc;
  mydb__loose *lb = (mydb__loose *)be;
  tstate *ts = head_open(lb, tenant, tlen, locked, NULL, &rc);
  if (!ts) {
    if (rc == MYDB_OK) /* no journal yet: no entries */
      rc = mydb__seterr(MYDB_ENOTFOUND, "entry '%.*s' not found in tenant "
                        "'%s'", (int)(entry_len > 100 ? 100 : entry_len),
                        entry, tenant);
    return rc;
  }
  const char *d = mydb__hmap_get(&ts->map, entry, entry_len);
  if (d) {
    memcpy(out, d, MYDB_DIGEST_HEX);
    out[MYDB_DIGEST_HEX] = '\0';
    rc = MYDB_OK;
  } else {
    rc = mydb__seterr(MYDB_ENOTFOUND, "entry '%.*s' not found in tenant '%s'",
                      (int)(entry_len > 100 ? 100 : entry_len), entry, tenant);
  }
  pthread_mutex_unlock(&lb->mu);
  return rc;
}

int mydb__loose_head_foreach(mydb_backend *be, const char *tenant,
                             size_t tlen,
                             int (*fn)(const char *entry, size_t entry_len,
                                       const char *digest, void *payload),
                             void *payload) {
  int rc;
  mydb__loose *lb = (mydb__loose *)be;
  tstate *ts = head_open(lb, tenant, tlen, 0, NULL, &rc);
  if (!ts) return rc; /* MYDB_OK: no journal, no entries */
  /* Copy a snapshot out, so that fn runs without lb->mu (it may call
   * back into mydb). */
  mydb__hsnap snap;
  rc = mydb__hsnap_take(&snap, &ts->map, tenant);
  pthread_mutex_unlock(&lb->mu);
  if (rc) return rc;
  return mydb__hsnap_run(&snap, fn, payload);
}

/* --------------------------------------------------------------- writes */

/* Rewrites the journal as one line per live entry (sorted), synced and
 * renamed over the old one; clears ts->unsynced once all of that is
 * durable. Called with the tenant lock and lb->mu held. On failure the old
 * journal and ts are left as they were - except when only the directory
 * fsync failed: ts follows the new journal, marked unsynced. */
static int compact(mydb *db, tstate *ts) {
  size_t n;
  mydb__hentry **v = mydb__hmap_sorted(&ts->map, &n);
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
  rc = MYDB_OK;
  if (db->fsync) {
    char dir[PATH_MAX];
    size_t dl = strlen(ts->path) - strlen("/head");
    memcpy(dir, ts->path, dl);
    dir[dl] = '\0';
    if (mydb__fsync_dir(dir) != 0) {
      /* The rename happened; only its durability is in doubt: appends to
       * the new file could be lost with its name. */
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
  ts->unsynced = rc != MYDB_OK;
  mydb_buf_free(&b);
  return rc;

fail:
  mydb__close(fd);
  unlink(tmp);
  mydb_buf_free(&b);
  return rc;
}

int mydb__loose_head_commit(mydb_backend *be, struct mydb_lock *lk,
                            const mydb_head_change *changes, size_t n,
                            const char *line, size_t len,
                            mydb__pending *pending) {
  int rc;
  mydb__loose *lb = (mydb__loose *)be;
  mydb *db = be->db;
  (void)pending; /* durable before returning */

  /* The whole write, built before taking lb->mu. The header goes in front
   * in case the journal turns out to be empty. */
  mydb_buf b = MYDB_BUF_INIT;
  mydb_buf_put(&b, MYDB__HEAD_HEADER, MYDB__HEAD_HEADER_LEN);
  mydb_buf_put(&b, line, len);
  mydb_buf_putc(&b, '\n');
  if (b.failed) {
    mydb_buf_free(&b);
    return mydb__seterr(MYDB_ENOMEM, "out of memory building a commit");
  }

  off_t end;
  tstate *ts = head_open(lb, lk->tenant, lk->tlen, 1, &end, &rc);
  if (!ts) {
    mydb_buf_free(&b);
    if (rc == MYDB_OK)
      rc = mydb__seterr(MYDB_ENOTINIT, "tenant '%s' has no head journal",
                        lk->tenant);
    return rc;
  }
  /* From here on lb->mu is held. */
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
  if (ts->unsynced && (rc = compact(db, ts)) != MYDB_OK)
    goto out; /* not committed: nothing appended */
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
  int synced = !db->fsync || mydb__fdatasync(ts->fd) == 0;
  int e = errno;
  rc = MYDB_OK;
  if (mydb__hmap_apply(&ts->map, changes, n) != 0) {
    ts_reset(ts); /* committed; the next read replays the journal */
    ts->unsynced |= !synced;
  } else {
    ts->parsed += (off_t)wl;
    ts->lineno += 1 + (size_t)with_header;
    ts->records += n;
    /* After a failed sync the line is in the file, visible, but the
     * kernel may have dropped its pages: the journal is rewritten from
     * memory into a new synced file, and if that works the commit is
     * durable after all. */
    if (!synced) ts->unsynced = 1;
    if (!synced ||
        (ts->records > MYDB__COMPACT_MIN && ts->records > 2 * ts->map.n))
      (void)compact(db, ts); /* the commit stands whether or not this works */
  }
  if (ts->unsynced && !synced)
    /* The contract in README "Errors": visible, durability unknown. */
    rc = mydb__seterr(MYDB_EIO, "committed but not durable: fdatasync of %s: %s",
                      ts->path, strerror(e));
out:
  pthread_mutex_unlock(&lb->mu);
  mydb_buf_free(&b);
  return rc;
}

int mydb__loose_head_compact(mydb_backend *be, const char *tenant,
                             int *done, size_t *dropped) {
  int rc;
  mydb__loose *lb = (mydb__loose *)be;
  *done = 0;
  tstate *ts = head_open(lb, tenant, strlen(tenant), 1, NULL, &rc);
  if (!ts) return rc; /* MYDB_OK: no journal */
  size_t before = ts->records;
  rc = MYDB_OK;
  if (ts->records > ts->map.n) {
    if (!ts->writable)
      rc = mydb__seterr(MYDB_EIO, "head journal %s is not writable",
                        ts->path);
    else if ((rc = compact(be->db, ts)) == MYDB_OK) {
      *done = 1;
      *dropped = before - ts->records;
    }
  }
  pthread_mutex_unlock(&lb->mu);
  return rc;
}
