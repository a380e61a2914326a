/*
 * pack.c - the pack backend: objects and head commits appended to
 * log segments, with an index from digest to offset (formats in pack.h and
 * doc/FORMAT.md "Pack backend"; the log itself in log.c).
 *
 *   ROOT/TENANT/lock          created (the layout loose shares), unused
 *   ROOT/TENANT/pack/         the tenant's space: segments, index, start,
 *                             lock (appends, and the tenant lock), synced
 *   ROOT/refs/pack/           the shared refs' space
 *
 * A tenant is initialized when ROOT/TENANT/pack/start exists (written last
 * by tenant_init, after the first segment and its generation record).
 *
 * A commit holds the space's lock from mydb_lock_acquire on; the objects
 * it writes are staged and appended with its record in one pwritev (pack.h).
 *
 * Durability (fsync on): a commit appends its record and, with group
 * commit, the caller waits for an fdatasync of the segment after releasing
 * the tenant lock (log.c, psync_wait): one fdatasync covers every
 * record appended before it, in this process and in others. Objects of a
 * tenant are appended to the same segment before the commit that names
 * them, so that fdatasync covers them too; a segment is made durable before
 * the next one is started. Refs live in another space: a ref write waits
 * for its own (shared) fdatasync.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "headmap.h"
#include "delta.h"
#include "pack.h"

/* A tenant lock holder's staged objects go to the log (without a commit)
 * once they reach this size: a bulk load does not hold them all. */
#define STAGE_FLUSH_BYTES ((size_t)1 << 20)

/* Write the index on close when the log beyond it is this long. */
#define INDEX_TAIL_RECORDS 2048
#define INDEX_TAIL_BYTES ((uint64_t)4 << 20)

#define PB(be) ((pbackend *)(be))

/* --------------------------------------------------------------- spaces */

static void lru_unlink(pbackend *pb, pspace *ps) {
  if (ps->prev) ps->prev->next = ps->next; else pb->first = ps->next;
  if (ps->next) ps->next->prev = ps->prev; else pb->last = ps->prev;
  ps->prev = ps->next = NULL;
}

static void lru_front(pbackend *pb, pspace *ps) {
  ps->prev = NULL;
  ps->next = pb->first;
  if (pb->first) pb->first->prev = ps; else pb->last = ps;
  pb->first = ps;
}

/* Makes what ps appended durable (fsync on) and writes its index when the
 * log has grown well past it; then frees it. */
static void space_close(mydb *db, pbackend *pb, pspace *ps) {
  lru_unlink(pb, ps);
  mydb__htab_del(&pb->spaces, &ps->h);
  pb->count--;
  if (ps->loaded && ps->nsegs) {
    int synced = 1;
    if (ps->dirty && db->fsync) {
      int fd = ps->segs[ps->nsegs - 1].fd;
      synced = fd >= 0 && !mydb__pack_failed(ps) && mydb__fdatasync(fd) == 0;
      if (synced)
        mydb__pack_synced(ps, ps->segs[ps->nsegs - 1].num, ps->end);
      else if (fd >= 0)
        mydb__pack_sync_failed(db, ps);
    }
    /* (an index says it was written after a sync: not after a failed one) */
    if (synced &&
        (ps->tail >= INDEX_TAIL_RECORDS || ps->tail_bytes >= INDEX_TAIL_BYTES)
        && ps->lockfd >= 0 && mydb__pack_trylock(db, ps) == MYDB_OK) {
      if (mydb__pack_refresh(db, ps) == MYDB_OK)
        (void)mydb__pack_write_index(db, ps);
      mydb__pack_unlock(ps);
    }
  }
  mydb__pack_space_reset(ps);
  mydb__pack_stage_free(ps);
  if (ps->lockfd >= 0) mydb__close(ps->lockfd);
  free(ps);
}

static int space_dir(const mydb *db, char *out, const char *tenant) {
  return tenant ? mydb__path(db, out, tenant, "pack", NULL)
                : mydb__path(db, out, "refs", "pack", NULL);
}

/* fsync(2) of the directory holding dir (dir's name in it). */
static int fsync_parent(const char *dir) {
  char parent[PATH_MAX];
  snprintf(parent, sizeof parent, "%s", dir);
  char *slash = strrchr(parent, '/');
  if (!slash) return MYDB_OK;
  *slash = '\0';
  if (mydb__fsync_dir(parent) != 0) return mydb__syserr(errno, "fsync", parent);
  return MYDB_OK;
}

/* fsync(2) of dir and of the directory holding it. */
static int fsync_dir_and_parent(const char *dir) {
  if (mydb__fsync_dir(dir) != 0) return mydb__syserr(errno, "fsync", dir);
  return fsync_parent(dir);
}

/* 1 if the space's pack/start exists, 0 if not, or an error. */
static int space_initialized(const mydb *db, const char *tenant) {
  char p[PATH_MAX];
  int rc = tenant ? mydb__path(db, p, tenant, "pack", "start")
                  : mydb__path(db, p, "refs", "pack", "start");
  if (rc) return rc;
  struct stat st;
  if (stat(p, &st) == 0) return 1;
  if (errno == ENOENT || errno == ENOTDIR) return 0;
  return mydb__syserr(errno, "stat", p);
}

/* The space of tenant (NULL: refs), most recently used first; pb->mu held.
 * NULL with *rc set when the tenant is not initialized or on failure. */
static pspace *space_get(mydb *db, pbackend *pb, const char *tenant,
                         int *rc) {
  const char *key = tenant ? tenant : "";
  size_t kl = strlen(key);
  uint64_t h = mydb__hash(key, kl);
  pspace *ps = (pspace *)mydb__htab_find(&pb->spaces, h, key, kl);
  if (ps) {
    if (pb->first != ps) {
      lru_unlink(pb, ps);
      lru_front(pb, ps);
    }
    return ps;
  }
  int r = space_initialized(db, tenant);
  if (r <= 0) {
    *rc = r < 0 ? r
                : tenant ? mydb__seterr(MYDB_ENOTINIT, "tenant '%s' is not "
                                        "initialized", tenant)
                         : mydb__seterr(MYDB_EIO, "%s/refs/pack is missing",
                                        db->root);
    return NULL;
  }
  ps = calloc(1, sizeof *ps);
  if (!ps) {
    *rc = mydb__seterr(MYDB_ENOMEM, "out of memory");
    return NULL;
  }
  ps->lockfd = ps->syncfd = -1;
  ps->mu = &pb->mu;
  ps->cv = &pb->cv;
  ps->tlen = kl;
  memcpy(ps->name, key, kl);
  if ((*rc = space_dir(db, ps->dir, tenant))) {
    free(ps);
    return NULL;
  }
  ps->h.hash = h;
  ps->h.key = ps->name;
  ps->h.klen = kl;
  if (mydb__htab_add(&pb->spaces, &ps->h) != 0) {
    free(ps);
    *rc = mydb__seterr(MYDB_ENOMEM, "out of memory");
    return NULL;
  }
  pb->count++;
  lru_front(pb, ps);
  /* the least recently used go, but not one a lock holds or a thread
   * waits on (pinned) */
  for (pspace *v = pb->last; pb->count > MYDB__TSTATE_MAX && v && v != ps;) {
    pspace *prev = v->prev;
    if (v->pins == 0 && !v->lk_claimed) space_close(db, pb, v);
    v = prev;
  }
  return ps;
}

/* Locks pb->mu and returns the refreshed space; NULL (unlocked) with *rc
 * on failure. */
static pspace *space_open(mydb_backend *be, const char *tenant, int refresh,
                          int *rc) {
  pbackend *pb = PB(be);
  pthread_mutex_lock(&pb->mu);
  pspace *ps = space_get(be->db, pb, tenant, rc);
  if (ps && ps->lk_fresh && ps->loaded && mydb__pack_holds(ps))
    return ps; /* this thread holds the tenant lock: nobody else appends */
  if (ps && (refresh || !ps->loaded) &&
      (*rc = mydb__pack_refresh(be->db, ps)) != MYDB_OK)
    ps = NULL;
  if (ps && ps->lk_tenant && mydb__pack_holds(ps)) ps->lk_fresh = ps->loaded;
  if (!ps) pthread_mutex_unlock(&pb->mu);
  return ps;
}

/* ------------------------------------------------------------- creation */

/* Creates a space's files if absent: pack/, lock, the first segment with
 * an empty generation record, then start (what "initialized" means).
 * Without start, whatever a crashed init left in the first segment (its
 * size with zero bytes after a power cut, garbage, or the record whole) is
 * no one's data - nothing is written to a space before start exists - so
 * the segment is rewritten from scratch. */
static int space_create(mydb *db, const char *tenant) {
  char dir[PATH_MAX], p[PATH_MAX];
  int rc, created = 0;
  if ((rc = space_dir(db, dir, tenant))) return rc;
  /* done before: no lock (this thread may hold it as the tenant lock). But
   * perhaps just done by another process that has not synced the
   * directories yet (its start file renamed into place, the rename not
   * durable): returning says the space exists, so make that durable. */
  if ((rc = space_initialized(db, tenant)) != 0) {
    if (rc < 0) return rc;
    return db->fsync ? fsync_dir_and_parent(dir) : MYDB_OK;
  }
  if (mydb__mkdir(dir, &created) != 0) return mydb__syserr(errno, "mkdir", dir);
  if (created && db->fsync && (rc = fsync_parent(dir))) /* its name in ROOT/refs or ROOT/TENANT */
    return rc;
  if ((rc = tenant ? mydb__path(db, p, tenant, "pack", "lock")
                   : mydb__path(db, p, "refs", "pack", "lock")))
    return rc;
  int lfd = mydb__open_below(db, p, O_RDWR | O_CREAT, 0666);
  if (lfd < 0) return mydb__syserr(errno, "create", p);
  if (mydb__flock(lfd, LOCK_EX) != 0) {
    rc = mydb__syserr(errno, "flock", p);
    mydb__close(lfd);
    return rc;
  }
  rc = space_initialized(db, tenant);
  if (rc != 0) { /* 1: done meanwhile (or before) */
    mydb__close(lfd);
    return rc < 0 ? rc : MYDB_OK;
  }
  pspace tmp;
  memset(&tmp, 0, sizeof tmp);
  tmp.lockfd = tmp.syncfd = -1;
  memcpy(tmp.dir, dir, sizeof dir);
  char sp[PATH_MAX];
  if ((rc = mydb__pack_segpath(&tmp, sp, 1))) goto out;
  /* a durable point a crashed init recorded is void with the segment */
  char syp[PATH_MAX];
  int n = snprintf(syp, sizeof syp, "%s/synced", dir);
  if (n > 0 && n < (int)sizeof syp) (void)unlink(syp);
  int fd = mydb__open_below(db, sp, O_RDWR | O_CREAT, 0666);
  if (fd < 0) {
    rc = mydb__syserr(errno, "create", sp);
    goto out;
  }
  if (mydb__ftruncate(fd, 0) != 0)
    rc = mydb__syserr(errno, "truncate", sp);
  if (!rc)
    rc = mydb__pack_write_record(fd, 0, REC_GEN, "[]", 2, NULL, 0, sp);
  if (!rc && db->fsync && mydb__fdatasync(fd) != 0)
    rc = mydb__syserr(errno, "fdatasync", sp);
  mydb__close(fd);
  /* the segment's name durable before start names it */
  if (!rc && db->fsync && mydb__fsync_dir(dir) != 0)
    rc = mydb__syserr(errno, "fsync", dir);
  if (rc) goto out;
  if (db->fsync) mydb__pack_synced(&tmp, 1, PACK_HDR + 2);
  if ((rc = tenant ? mydb__path(db, p, tenant, "pack", "start")
                   : mydb__path(db, p, "refs", "pack", "start")))
    goto out;
  rc = mydb__file_write_atomic(db, p, strlen(dir), "1\n", 2, 0, 1);
out:
  mydb__close(lfd);
  return rc;
}

static int k_tenant_init(mydb_backend *be, const char *tenant) {
  mydb *db = be->db;
  char tdir[PATH_MAX];
  int rc;
  if ((rc = mydb__path(db, tdir, tenant, NULL, NULL))) return rc;
  if (mydb__mkdir(tdir, NULL) != 0) return mydb__syserr(errno, "mkdir", tdir);
  if ((rc = mydb__tenant_lockfile(db, tenant))) return rc;
  if ((rc = space_create(db, tenant))) return rc;
  if (db->fsync) {
    /* the root too, also when another process made the directory: it may
     * not have synced the root yet (two processes initializing one tenant
     * at once: spec/powerloss pack-concurrent found the name lost) */
    if (mydb__fsync_dir(tdir) != 0) return mydb__syserr(errno, "fsync", tdir);
    if (mydb__fsync_dir(db->rootlen ? db->root : "/") != 0)
      return mydb__syserr(errno, "fsync", db->root);
  }
  return MYDB_OK;
}

static int k_tenant_exists(mydb_backend *be, const char *tenant) {
  return space_initialized(be->db, tenant);
}

typedef struct list_ctx {
  mydb *db;
  int (*fn)(const char *tenant, void *payload);
  void *payload;
} list_ctx;

static int list_cb(const char *tenant, void *payload) {
  list_ctx *c = payload;
  if (space_initialized(c->db, tenant) != 1) return 0;
  return c->fn(tenant, c->payload);
}

static int k_tenant_list(mydb_backend *be,
                         int (*fn)(const char *tenant, void *payload),
                         void *payload) {
  list_ctx c = {be->db, fn, payload};
  return mydb__tenant_dirs(be->db, "pack", list_cb, &c);
}

/* ------------------------------------------------------------- objects */

static const ploc *find_raw(const pspace *ps, const unsigned char d[32]) {
  return mydb__pack_index_find(ps, d);
}

static const ploc *find(const pspace *ps, const char *digest) {
  unsigned char d[32];
  mydb__pack_unhex(d, digest);
  return find_raw(ps, d);
}

static int corrupt_delta(const pspace *ps, const ploc *l, const char *why) {
  char hex[MYDB_DIGEST_BUF];
  mydb__hex(hex, l->digest, 32);
  hex[MYDB_DIGEST_HEX] = '\0';
  return mydb__seterr(MYDB_ECORRUPT, "object %s of %s is corrupt: %s", hex,
                      ps->dir, why);
}

/* The location of raw digest d: staged (this thread's, not yet in the
 * log) or in the log; NULL if neither. *staged says which. */
static const ploc *locate(const pspace *ps, const unsigned char d[32],
                          int *staged) {
  const ploc *l = mydb__pack_staged(ps, d);
  *staged = l != NULL;
  if (l) return l;
  return mydb__pack_index_find(ps, d);
}

/* The bytes of l as stored (a delta's delta) in a new blob. pb->mu held.
 * A missing segment is MYDB_ECORRUPT (the caller may refresh and retry). */
static int read_stored(mydb *db, pspace *ps, const ploc *l, int staged,
                       mydb_blob **out) {
  if (l->len > SIZE_MAX - 64)
    return corrupt_delta(ps, l, "its length is impossible");
  int fd = -1;
  if (!staged) {
    size_t i = mydb__pack_segidx(ps, l->seg);
    if (i == (size_t)-1) return MYDB_ENOTFOUND;
    if ((fd = mydb__pack_segfd(db, ps, i)) < 0) return fd;
  }
  mydb_blob *b = mydb__blob_new((size_t)l->len);
  if (!b)
    return mydb__seterr(MYDB_ENOMEM, "out of memory reading an object (%llu "
                        "bytes)", (unsigned long long)l->len);
  if (staged) {
    memcpy(b->data, ps->stage.data + l->off, (size_t)l->len);
  } else {
    ssize_t got = mydb__pread_all(fd, b->data, (size_t)l->len, (off_t)l->off);
    if (got < 0) {
      mydb_blob_release(b);
      return mydb__syserr(errno, "read", ps->dir);
    }
    b->len = (size_t)got; /* short: the digest check reports it */
    b->data[b->len] = '\0';
  }
  *out = b;
  return MYDB_OK;
}

/* The bytes of the whole object at l (in the log) into buf, replacing
 * what it held, with a NUL after them (its length: buf->len). pb->mu held.
 * A missing segment is MYDB_ECORRUPT, as in read_stored. */
static int read_into(mydb *db, pspace *ps, const ploc *l, mydb_buf *buf) {
  if (l->len > SIZE_MAX - 64)
    return corrupt_delta(ps, l, "its length is impossible");
  size_t i = mydb__pack_segidx(ps, l->seg);
  if (i == (size_t)-1) return MYDB_ENOTFOUND;
  int fd = mydb__pack_segfd(db, ps, i);
  if (fd < 0) return fd;
  buf->len = 0;
  if (mydb_buf_grow(buf, (size_t)l->len + 1) != 0) {
    buf->failed = 0; /* (the buffer is whole: usable for the next read) */
    return mydb__seterr(MYDB_ENOMEM, "out of memory reading an object (%llu "
                        "bytes)", (unsigned long long)l->len);
  }
  ssize_t got = mydb__pread_all(fd, buf->data, (size_t)l->len, (off_t)l->off);
  if (got < 0) return mydb__syserr(errno, "read", ps->dir);
  buf->len = (size_t)got; /* short: the digest check reports it */
  buf->data[buf->len] = '\0';
  return MYDB_OK;
}

/* The whole bytes of the object at l, a delta rebuilt from its chain (at
 * most `left` more steps). pb->mu held. Unverified, as any read here. */
static int read_whole(mydb *db, pspace *ps, const ploc *l, int staged,
                      mydb_blob **out, int left) {
  mydb_blob *raw = NULL, *base = NULL;
  int rc = read_stored(db, ps, l, staged, &raw);
  if (rc || l->depth == 0) {
    if (!rc) *out = raw;
    return rc;
  }
  const unsigned char *bd;
  size_t pre, suf, mid;
  int bstaged;
  const ploc *bl = NULL;
  if (mydb__delta_parse(raw->data, raw->len, &bd, &pre, &suf, &mid))
    rc = corrupt_delta(ps, l, "a damaged delta");
  else if (left == 0)
    rc = corrupt_delta(ps, l, "its delta chain does not end");
  else if (!(bl = locate(ps, bd, &bstaged)))
    rc = corrupt_delta(ps, l, "the base of its delta is missing");
  else
    rc = read_whole(db, ps, bl, bstaged, &base, left - 1);
  size_t n = rc ? 0 : mydb__delta_size(raw->data, raw->len, base->len);
  mydb_blob *b = NULL;
  if (!rc && n == (size_t)-1)
    rc = corrupt_delta(ps, l, "its delta does not fit its base");
  else if (!rc && !(b = mydb__blob_new(n)))
    rc = mydb__seterr(MYDB_ENOMEM, "out of memory rebuilding an object");
  if (!rc) {
    mydb__delta_apply((unsigned char *)b->data, base->data, base->len,
                      raw->data, raw->len);
    b->data[n] = '\0';
    *out = b;
  }
  mydb_blob_release(raw);
  if (base) mydb_blob_release(base);
  return rc;
}

/* Stages buf (digest d) as a delta against base when one pays (a whole
 * object otherwise). pb->mu held, the tenant lock held by this thread. */
static int stage_near(mydb *db, pspace *ps, const unsigned char d[32],
                      const void *buf, size_t len, const char *base,
                      const void *base_buf, size_t base_len) {
  unsigned char bd[32];
  int bstaged;
  const ploc *bl = NULL;
  if (base && mydb_digest_valid(base, MYDB_DIGEST_HEX)) {
    mydb__pack_unhex(bd, base);
    bl = locate(ps, bd, &bstaged);
  }
  if (bl && bl->depth < PACK_DELTA_DEPTH && bl->len < ((uint64_t)1 << 24)) {
    mydb_blob *bb = NULL;
    /* the base's bytes: handed over (verified, from the dispatch's cache)
     * or read back (a base that cannot be read is no error: store whole) */
    if (base_buf || read_whole(db, ps, bl, bstaged, &bb, PACK_DELTA_DEPTH) ==
                        MYDB_OK) {
      const void *bp = bb ? (const void *)bb->data : base_buf;
      size_t bn = bb ? bb->len : base_len;
      mydb_buf *delta = &ps->dscratch;
      delta->len = 0;
      delta->failed = 0;
      size_t n = mydb__delta_make(delta, bd, bp, bn, buf, len);
      int depth = bl->depth + 1;
      if (bb) mydb_blob_release(bb);
      int made = n > 0 && !delta->failed, rc = MYDB_OK;
      if (made) rc = mydb__pack_stage_delta(ps, d, delta->data, delta->len, depth);
      if (delta->cap > ((size_t)64 << 10)) mydb_buf_free(delta); /* (kept: a piece's size) */
      if (made) return rc;
    }
  }
  return mydb__pack_stage(ps, d, buf, len);
}

static int write_object(mydb_backend *be, const char *tenant,
                        const char *digest, const void *buf, size_t len,
                        const char *base, const void *base_buf,
                        size_t base_len) {
  mydb *db = be->db;
  pbackend *pb = PB(be);
  int rc;
  pspace *ps = space_open(be, tenant, 1, &rc);
  if (!ps) return rc;
  unsigned char d[32];
  mydb__pack_unhex(d, digest);
  if (tenant && mydb__pack_holds(ps)) {
    /* This thread holds the tenant lock: staged, appended with the commit
     * (durable with it); a large stage goes to the log early. */
    rc = MYDB_OK;
    if (!find_raw(ps, d) &&
        (rc = stage_near(db, ps, d, buf, len, base, base_buf, base_len)) ==
            MYDB_OK && ps->stage.len >= STAGE_FLUSH_BYTES)
      rc = mydb__pack_append_stage(db, ps, NULL, 0);
    pthread_mutex_unlock(&pb->mu);
    return rc;
  }
  const ploc *l = find_raw(ps, d);
  if (l) { /* content-addressed: already there */
    /* ... but perhaps not durable yet: another writer appended it and has
     * not synced. A tenant's own commit syncs its segment, which holds the
     * object (or a sealed one before it, synced at roll-over); a ref lives
     * in another space: wait for its sync, as its writer would. */
    if (!tenant && db->fsync && ps->nsegs &&
        l->seg == ps->segs[ps->nsegs - 1].num) {
      uint64_t end = l->off + l->len;
      psync *s = mydb__psync_get(db, ps);
      pthread_mutex_unlock(&pb->mu);
      if (!s) return mydb__seterr(MYDB_EIO, "cannot sync %s", ps->dir);
      return mydb__psync_wait(s, end, 0, 1);
    }
    pthread_mutex_unlock(&pb->mu);
    return MYDB_OK;
  }
  if ((rc = mydb__pack_lock(db, ps))) goto out;
  if ((rc = mydb__pack_refresh(db, ps)) == MYDB_OK && !find_raw(ps, d))
    rc = mydb__pack_append(db, ps, REC_OBJECT, d, 32, buf, len);
  mydb__pack_unlock(ps);
  if (rc == MYDB_OK && !tenant && db->fsync) {
    /* A ref must be durable before a commit that names it: wait here. */
    psync *s = mydb__psync_get(db, ps);
    uint64_t off = ps->end;
    pthread_mutex_unlock(&pb->mu);
    if (!s) return mydb__seterr(MYDB_EIO, "cannot sync %s", ps->dir);
    return mydb__psync_wait(s, off, 0, 1);
  }
out:
  pthread_mutex_unlock(&pb->mu);
  return rc;
}

static int k_object_write(mydb_backend *be, const char *tenant,
                          const char *digest, const void *buf, size_t len) {
  return write_object(be, tenant, digest, buf, len, NULL, NULL, 0);
}

static int k_object_write_near(mydb_backend *be, const char *tenant,
                               const char *digest, const void *buf,
                               size_t len, const char *base,
                               const void *base_buf, size_t base_len) {
  return write_object(be, tenant, digest, buf, len, base, base_buf, base_len);
}

static int not_found(const char *tenant, const char *digest) {
  return mydb__seterr(MYDB_ENOTFOUND, "object %s not found in %s %s", digest,
                      mydb__where_kind(tenant), mydb__where_name(tenant));
}

/* The stored bytes of digest: into a new blob (*out), or into buf (a scan's
 * buffer, reused: whole objects are read into it directly). fresh: look
 * for other writers' appends first (one stat: a gc or repack elsewhere
 * shows at once); else only when digest is missing from what this handle
 * knows (a scan's pieces, named by a tree read before it began, are in
 * the index already: no stat per piece). */
static int object_get(mydb_backend *be, const char *tenant,
                      const char *digest, int fresh, mydb_blob **out,
                      mydb_buf *buf) {
  mydb *db = be->db;
  pbackend *pb = PB(be);
  int rc;
  pspace *ps = space_open(be, tenant, fresh, &rc);
  if (!ps) return rc == MYDB_ENOTINIT ? not_found(tenant, digest) : rc;
  unsigned char d[32];
  mydb__pack_unhex(d, digest);
  mydb_blob *b = NULL;
  const ploc *sl = mydb__pack_staged(ps, d);
  if (sl) { /* written under this thread's tenant lock, not yet appended */
    rc = read_whole(db, ps, sl, 1, &b, PACK_DELTA_DEPTH * 2);
    goto done;
  }
  int moved = 0;
  for (int attempt = 0;; attempt++) {
    const ploc *l = find(ps, digest);
    int fd;
    if (!l) fd = MYDB_ENOTFOUND;
    else if (buf && l->depth == 0) fd = read_into(db, ps, l, buf);
    else fd = read_whole(db, ps, l, 0, &b, PACK_DELTA_DEPTH * 2);
    if (fd == MYDB_OK) {
      rc = MYDB_OK;
      break;
    }
    if (fd != MYDB_ENOTFOUND && fd != MYDB_ECORRUPT) { /* no retry */
      rc = fd;
      break;
    }
    /* Still missing after a refresh: absent, or damage - unless the
     * refresh found a new chain (a repack elsewhere moved it, perhaps
     * again: each round is a new generation, so try a few). */
    if (attempt > 0 && !(fd == MYDB_ECORRUPT && moved && attempt < 16)) {
      rc = fd == MYDB_ENOTFOUND ? not_found(tenant, digest) : fd;
      break;
    }
    /* A miss (or a segment a repack removed): refresh, then try again. */
    uint64_t first = ps->nsegs ? ps->segs[0].num : 0;
    if ((rc = mydb__pack_refresh(db, ps))) break;
    moved = ps->nsegs && ps->segs[0].num != first;
  }
done:
  pthread_mutex_unlock(&pb->mu);
  if (rc == MYDB_OK && b && buf) { /* (a delta rebuilt, or staged bytes) */
    buf->len = 0;
    mydb_buf_put(buf, b->data, b->len);
    if (mydb_buf_grow(buf, 1) == 0) buf->data[buf->len] = '\0';
    if (buf->failed)
      rc = mydb__seterr(MYDB_ENOMEM, "out of memory reading an object "
                        "(%zu bytes)", b->len);
  }
  if (buf || rc != MYDB_OK) mydb_blob_release(b);
  else *out = b;
  return rc;
}

static int k_object_read(mydb_backend *be, mydb_blob **out,
                         const char *tenant, const char *digest) {
  return object_get(be, tenant, digest, 1, out, NULL);
}

static int k_object_read_into(mydb_backend *be, mydb_buf *out,
                              const char *tenant, const char *digest) {
  return object_get(be, tenant, digest, 0, NULL, out);
}

static int k_object_exists(mydb_backend *be, const char *tenant,
                           const char *digest) {
  pbackend *pb = PB(be);
  int rc;
  pspace *ps = space_open(be, tenant, 1, &rc);
  if (!ps) return rc == MYDB_ENOTINIT ? 0 : rc;
  unsigned char d[32];
  mydb__pack_unhex(d, digest);
  int r = find(ps, digest) != NULL || mydb__pack_staged(ps, d) != NULL;
  pthread_mutex_unlock(&pb->mu);
  return r;
}

/* Hex digests of the objects stored before mark (NULL: all), each
 * NUL-terminated, n * 65 bytes. pb->mu held. */
static char *digests_of(const pspace *ps, const mydb_gc_mark *mark,
                        size_t *n) {
  char *v = malloc(ps->objs.n ? ps->objs.n * MYDB_DIGEST_BUF : 1);
  size_t k = 0;
  if (!v) return NULL;
  for (size_t i = 0; i < ps->objs.nb; i++)
    for (mydb__hnode *x = ps->objs.b[i]; x; x = x->next) {
      const ploc *l = (const ploc *)x;
      if (mark && ((int64_t)l->seg > mark->a ||
                   ((int64_t)l->seg == mark->a && (int64_t)l->off >= mark->b)))
        continue;
      mydb__hex(v + k * MYDB_DIGEST_BUF, l->digest, 32);
      v[k * MYDB_DIGEST_BUF + MYDB_DIGEST_HEX] = '\0';
      k++;
    }
  *n = k;
  return v;
}

static int k_object_foreach(mydb_backend *be, const char *tenant,
                            int (*fn)(const char *name, void *payload),
                            void *payload) {
  pbackend *pb = PB(be);
  int rc;
  pspace *ps = space_open(be, tenant, 1, &rc);
  if (!ps) return rc;
  size_t n = 0;
  char *v = digests_of(ps, NULL, &n);
  pthread_mutex_unlock(&pb->mu);
  if (!v) return mydb__seterr(MYDB_ENOMEM, "out of memory");
  rc = MYDB_OK;
  for (size_t i = 0; i < n && rc == 0; i++)
    rc = fn(v + i * MYDB_DIGEST_BUF, payload);
  free(v);
  return rc;
}

/* --------------------------------------------------------------- heads */

static int k_head_get(mydb_backend *be, char out[MYDB_DIGEST_BUF],
                      const char *tenant, size_t tlen, const char *entry,
                      size_t entry_len, int locked) {
  (void)tlen;
  (void)locked; /* a refresh reads to the end: commits are all there */
  pbackend *pb = PB(be);
  int rc;
  pspace *ps = space_open(be, tenant, 1, &rc);
  if (!ps) return rc;
  const char *d = mydb__hmap_get(&ps->heads, entry, entry_len);
  if (d) {
    memcpy(out, d, MYDB_DIGEST_HEX);
    out[MYDB_DIGEST_HEX] = '\0';
  }
  pthread_mutex_unlock(&pb->mu);
  if (!d)
    return mydb__seterr(MYDB_ENOTFOUND, "entry '%.*s' not found in tenant "
                        "'%s'", (int)(entry_len > 100 ? 100 : entry_len),
                        entry, tenant);
  return MYDB_OK;
}

static int k_head_foreach(mydb_backend *be, const char *tenant, size_t tlen,
                          int (*fn)(const char *entry, size_t entry_len,
                                    const char *digest, void *payload),
                          void *payload) {
  (void)tlen;
  pbackend *pb = PB(be);
  int rc;
  pspace *ps = space_open(be, tenant, 1, &rc);
  if (!ps) return rc;
  mydb__hsnap snap;
  rc = mydb__hsnap_take(&snap, &ps->heads, tenant);
  pthread_mutex_unlock(&pb->mu);
  if (rc) return rc;
  return mydb__hsnap_run(&snap, fn, payload);
}

/* The tenant lock is the space's lock (pack.h): the handle's descriptor
 * of pack/lock, kept open; a commit appends under it with no other lock.
 * The space stays pinned (never evicted) while held. */
static int k_lock_acquire(mydb_backend *be, struct mydb_lock *lk) {
  pbackend *pb = PB(be);
  int rc;
  pthread_mutex_lock(&pb->mu);
  pspace *ps = space_get(be->db, pb, lk->tenant, &rc);
  if (!ps) {
    pthread_mutex_unlock(&pb->mu);
    return rc;
  }
  if (ps->lk_claimed && ps->lk_tenant &&
      pthread_equal(ps->lk_owner, pthread_self())) {
    pthread_mutex_unlock(&pb->mu);
    return mydb__seterr(MYDB_ECONFLICT, "tenant '%s' is locked already by "
                        "this thread (a second lock would wait forever)",
                        lk->tenant);
  }
  ps->pins++;
  if ((rc = mydb__pack_lock(be->db, ps)) != MYDB_OK) {
    ps->pins--;
    pthread_mutex_unlock(&pb->mu);
    return rc;
  }
  ps->lk_tenant = 1;
  ps->lk_fresh = 0; /* the first use refreshes (one stat) */
  lk->impl = ps;
  pthread_mutex_unlock(&pb->mu);
  return MYDB_OK;
}

static void k_lock_release(mydb_backend *be, struct mydb_lock *lk) {
  pbackend *pb = PB(be);
  pspace *ps = lk->impl;
  if (!ps) return;
  pthread_mutex_lock(&pb->mu);
  mydb__pack_unlock_tenant(ps); /* (drops what no commit took) */
  ps->pins--;
  pthread_mutex_unlock(&pb->mu);
  lk->impl = NULL;
}

/* The objects staged under lk that no commit took (the dispatch forgets
 * them from its cache before the release drops them). */
static void k_lock_uncommitted(mydb_backend *be, struct mydb_lock *lk,
                               void (*fn)(const char *digest, void *payload),
                               void *payload) {
  pbackend *pb = PB(be);
  pspace *ps = lk->impl;
  if (!ps) return;
  pthread_mutex_lock(&pb->mu);
  size_t n = ps->staged.n, k = 0;
  char *v = n ? malloc(n * MYDB_DIGEST_BUF) : NULL;
  for (size_t i = 0; v && i < ps->staged.nb; i++)
    for (mydb__hnode *x = ps->staged.b[i]; x; x = x->next, k++) {
      mydb__hex(v + k * MYDB_DIGEST_BUF, ((const ploc *)x)->digest, 32);
      v[k * MYDB_DIGEST_BUF + MYDB_DIGEST_HEX] = '\0';
    }
  pthread_mutex_unlock(&pb->mu);
  if (n && !v) fn(NULL, payload); /* cannot name them: all of them */
  for (size_t i = 0; i < k; i++) fn(v + i * MYDB_DIGEST_BUF, payload);
  free(v);
}

static int k_head_commit(mydb_backend *be, struct mydb_lock *lk,
                         const mydb_head_change *c, size_t n,
                         const char *line, size_t len,
                         mydb__pending *pending) {
  (void)c;
  (void)n;
  mydb *db = be->db;
  pbackend *pb = PB(be);
  int rc;
  /* (the lock is held: refreshed once since it was taken, then current) */
  pspace *ps = space_open(be, lk->tenant, 1, &rc);
  if (!ps) return rc;
  if (ps != lk->impl || !ps->locked || !ps->lk_tenant) {
    rc = mydb__seterr(MYDB_EINVAL, "head_commit: tenant '%s' is not locked",
                      lk->tenant);
  } else {
    /* (a lock passed to another thread: that thread holds it now) */
    ps->lk_owner = pthread_self();
    /* the staged objects and the commit record: one write */
    rc = mydb__pack_append_stage(db, ps, line, len);
  }
  if (rc || !db->fsync) {
    pthread_mutex_unlock(&pb->mu);
    return rc;
  }
  int peek = ps->foreign;
  ps->foreign = 0;
  psync *s = mydb__psync_get(db, ps);
  uint64_t off = ps->end;
  pthread_mutex_unlock(&pb->mu);
  if (!s) /* appended: visible */
    return mydb__seterr(MYDB_EIO, "committed but not durable: cannot sync "
                        "%s", ps->dir);
  if (pending) { /* the caller waits after releasing the tenant lock */
    pending->sync = s;
    pending->off = off;
    pending->hint = peek;
    return MYDB_OK;
  }
  return mydb__psync_wait(s, off, 1, peek);
}

static int k_sync(mydb_backend *be, mydb__pending *pending) {
  (void)be;
  psync *s = pending->sync;
  pending->sync = NULL;
  return s ? mydb__psync_wait(s, pending->off, 1, pending->hint)
           : MYDB_OK;
}

/* ------------------------------------------------------------- repack */

typedef struct drop_set {
  mydb__htab t; /* 32-byte digests */
  mydb__hnode *nodes;
} drop_set;

static int cmp_loc(const void *a, const void *b) {
  const ploc *x = *(const ploc *const *)a, *y = *(const ploc *const *)b;
  if (x->seg != y->seg) return x->seg < y->seg ? -1 : 1;
  return x->off < y->off ? -1 : x->off > y->off;
}

static int write_start(mydb *db, pspace *ps, uint64_t num) {
  char p[PATH_MAX], body[32];
  int n = snprintf(p, sizeof p, "%s/start", ps->dir);
  if (n < 0 || n >= (int)sizeof p)
    return mydb__seterr(MYDB_EINVAL, "path too long: %s", ps->dir);
  n = snprintf(body, sizeof body, "%llu\n", (unsigned long long)num);
  return mydb__file_write_atomic(db, p, strlen(ps->dir), body, (size_t)n, 0,
                                 0);
}

/* 1 if pack/start names segment num. */
static int start_is(const pspace *ps, uint64_t num) {
  char p[PATH_MAX], buf[32];
  int n = snprintf(p, sizeof p, "%s/start", ps->dir);
  if (n < 0 || n >= (int)sizeof p) return 0;
  int fd = mydb__open(p, O_RDONLY, 0);
  if (fd < 0) return 0;
  ssize_t got = mydb__pread_all(fd, buf, sizeof buf - 1, 0);
  mydb__close(fd);
  if (got <= 0) return 0;
  buf[got] = '\0';
  return strtoull(buf, NULL, 10) == num;
}

/* Rewrites the space's live records into a new generation of segments:
 * the head state first, then every object not in drop, in log order; then
 * seals the old chain into it, moves start, removes the old segments.
 * pb->mu held; takes the append lock. */
static int repack_space(mydb *db, pspace *ps, const drop_set *drop,
                        mydb_gc_stats *st) {
  int rc = mydb__pack_lock(db, ps);
  if (rc) return rc;
  if ((rc = mydb__pack_refresh(db, ps)) || ps->nsegs == 0) {
    mydb__pack_unlock(ps);
    return rc;
  }
  size_t nold = ps->nsegs, nloc = 0;
  uint64_t *old = malloc(nold * sizeof *old);
  ploc **locs = malloc((ps->objs.n ? ps->objs.n : 1) * sizeof *locs);
  mydb_buf state = MYDB_BUF_INIT;
  pspace nw; /* the new generation, written through the append path */
  memset(&nw, 0, sizeof nw);
  nw.lockfd = nw.syncfd = -1;
  nw.tlen = ps->tlen;
  memcpy(nw.name, ps->name, sizeof nw.name);
  memcpy(nw.dir, ps->dir, sizeof nw.dir);
  nw.loaded = 1;
  nw.noindex = 1;
  uint64_t old_bytes = 0, first = 0;
  if (!old || !locs || mydb__hline_state(&state, &ps->heads)) {
    rc = mydb__seterr(MYDB_ENOMEM, "out of memory repacking");
    goto fail;
  }
  for (size_t i = 0; i < nold; i++) {
    old[i] = ps->segs[i].num;
    char p[PATH_MAX];
    struct stat sst;
    if (mydb__pack_segpath(ps, p, old[i]) == 0 && stat(p, &sst) == 0)
      old_bytes += (uint64_t)sst.st_size;
  }
  for (size_t i = 0; i < ps->objs.nb; i++)
    for (mydb__hnode *x = ps->objs.b[i]; x; x = x->next) {
      ploc *l = (ploc *)x;
      if (drop && mydb__htab_find(&drop->t, l->h.hash, l->h.key, 32)) {
        st->objects_removed++;
        continue;
      }
      locs[nloc++] = l;
    }
  qsort(locs, nloc, sizeof *locs, cmp_loc);

  /* 1. the new generation, after the active segment */
  first = old[nold - 1] + 1;
  int fd;
  if ((rc = mydb__pack_segcreate(db, &nw, first, &fd))) {
    first = 0;
    goto fail;
  }
  pseg s0 = {first, fd};
  nw.segs = malloc(4 * sizeof *nw.segs);
  if (!nw.segs) {
    mydb__close(fd);
    rc = mydb__seterr(MYDB_ENOMEM, "out of memory repacking");
    goto fail;
  }
  nw.segs[0] = s0;
  nw.nsegs = 1;
  nw.capsegs = 4;
  if ((rc = mydb__pack_append(db, &nw, REC_GEN, state.data, state.len, NULL,
                              0)))
    goto fail;
  for (size_t j = 0; j < nloc; j++) {
    const ploc *l = locs[j];
    /* whole bytes (deltas rebuilt: the new generation holds whole objects,
     * so no delta outlives its base), verified while copying: a damaged
     * object must not be laundered */
    mydb_blob *ob = NULL;
    if ((rc = read_whole(db, ps, l, 0, &ob, PACK_DELTA_DEPTH * 2))) {
      if (rc == MYDB_ENOTFOUND)
        rc = mydb__seterr(MYDB_ECORRUPT, "repack: object in an unknown "
                          "segment");
      goto fail;
    }
    unsigned char md[32];
    if ((rc = mydb__sha256(md, ob->data, ob->len)) == MYDB_OK &&
        memcmp(md, l->digest, 32) != 0) {
      char hex[MYDB_DIGEST_BUF];
      mydb__hex(hex, l->digest, 32);
      hex[MYDB_DIGEST_HEX] = '\0';
      rc = mydb__seterr(MYDB_ECORRUPT, "repack: object %s of %s is corrupt",
                        hex, ps->dir);
    }
    if (rc == MYDB_OK)
      rc = mydb__pack_append(db, &nw, REC_OBJECT, l->digest, 32, ob->data,
                             ob->len);
    mydb_blob_release(ob);
    if (rc) goto fail;
    st->objects_kept++;
  }
  int nfd = nw.segs[nw.nsegs - 1].fd;
  if (db->fsync && mydb__fdatasync(nfd) != 0) {
    rc = mydb__syserr(errno, "fdatasync", ps->dir);
    goto fail;
  }
  uint64_t new_bytes = 0;
  for (size_t i = 0; i < nw.nsegs; i++) {
    struct stat sst;
    if (fstat(nw.segs[i].fd, &sst) == 0) new_bytes += (uint64_t)sst.st_size;
  }

  /* 2. seal the old chain into it: readers in other processes follow */
  {
    size_t a = ps->nsegs - 1;
    int afd = mydb__pack_segfd(db, ps, a);
    if (afd < 0) {
      rc = afd;
      goto fail;
    }
    unsigned char n8[8];
    for (int i = 0; i < 8; i++) n8[i] = (unsigned char)(first >> (8 * i));
    struct stat ast;
    if (fstat(afd, &ast) != 0 ||
        ((uint64_t)ast.st_size > ps->end &&
         mydb__ftruncate(afd, (off_t)ps->end) != 0)) {
      rc = mydb__syserr(errno, "truncate", ps->dir);
      goto fail;
    }
    char ap[PATH_MAX];
    if ((rc = mydb__pack_segpath(ps, ap, ps->segs[a].num))) goto fail;
    if ((rc = mydb__pack_write_record(afd, ps->end, REC_SEAL, n8, 8, NULL, 0,
                                      ap)) ||
        (db->fsync && mydb__fdatasync(afd) != 0)) {
      if (!rc) {
        rc = mydb__syserr(errno, "fdatasync", ap);
        mydb__pack_sync_failed(db, ps);
      }
      (void)mydb__ftruncate(afd, (off_t)ps->end);
      goto fail;
    }
    /* the old chain is whole to its seal, the new generation durable */
    if (db->fsync)
      mydb__pack_synced(ps, nw.segs[nw.nsegs - 1].num, nw.end);
  }
  /* 3. the new chain starts there (the commit point for new readers) */
  int moved = 1;
  if ((rc = write_start(db, ps, first))) {
    /* sealed already: readers reach the new generation through the seal;
     * the old start stays valid (the chain leads there) - if it is still
     * the old one, the old segments must stay too (a disk that failed
     * this write: what they hold is a few leftover bytes to it). */
    rc = MYDB_OK;
    moved = start_is(ps, first);
  }
  /* 4. the old segments go */
  for (size_t i = 0; moved && i < nold; i++) {
    char p[PATH_MAX];
    if (mydb__pack_segpath(ps, p, old[i]) == 0 && unlink(p) == 0)
      st->segments_removed++;
  }
  st->segments_written += nw.nsegs;
  if (old_bytes > new_bytes) st->bytes_freed += (size_t)(old_bytes - new_bytes);
  st->bytes_kept += (size_t)new_bytes;
  /* 5. read the new generation back (it becomes ps's state), index it */
  mydb__pack_space_reset(&nw);
  mydb__pack_space_reset(ps);
  rc = mydb__pack_refresh(db, ps);
  if (rc == MYDB_OK) (void)mydb__pack_write_index(db, ps);
  mydb__pack_unlock(ps);
  free(old);
  free(locs);
  mydb_buf_free(&state);
  return rc;

fail:
  /* The old chain is untouched (unless sealed, handled above); the new
   * segments are leftovers no chain reaches: remove them. */
  for (size_t i = 0; i < nw.nsegs; i++) {
    char p[PATH_MAX];
    if (mydb__pack_segpath(&nw, p, nw.segs[i].num) == 0) unlink(p);
  }
  mydb__pack_space_reset(&nw);
  mydb__pack_unlock(ps);
  free(old);
  free(locs);
  mydb_buf_free(&state);
  return rc;
}

static int k_repack(mydb_backend *be, const char *tenant, mydb_gc_stats *st) {
  int rc;
  pspace *ps = space_open(be, tenant, 1, &rc);
  if (!ps) return rc;
  rc = repack_space(be->db, ps, NULL, st);
  pthread_mutex_unlock(&PB(be)->mu);
  return rc;
}

static int k_gc_begin(mydb_backend *be, const char *tenant,
                      mydb_gc_mark *mark) {
  int rc;
  pspace *ps = space_open(be, tenant, 1, &rc);
  if (!ps) return rc;
  mark->a = ps->nsegs ? (int64_t)ps->segs[ps->nsegs - 1].num : 0;
  mark->b = (int64_t)ps->end;
  pthread_mutex_unlock(&PB(be)->mu);
  return MYDB_OK;
}

static int k_gc_sweep(mydb_backend *be, const char *tenant,
                      const mydb_gc_mark *mark,
                      int (*keep)(const char *digest, void *payload),
                      void *payload, mydb_gc_stats *st) {
  int rc;
  pspace *ps = space_open(be, tenant, 1, &rc);
  if (!ps) return rc;
  size_t n = 0;
  char *v = digests_of(ps, mark, &n);
  pthread_mutex_unlock(&PB(be)->mu);
  if (!v) return mydb__seterr(MYDB_ENOMEM, "out of memory");
  /* keep() runs without the mutex (it may read the store) */
  drop_set drop;
  memset(&drop, 0, sizeof drop);
  drop.nodes = malloc((n ? n : 1) * (sizeof(mydb__hnode) + 32));
  if (!drop.nodes) {
    free(v);
    return mydb__seterr(MYDB_ENOMEM, "out of memory");
  }
  rc = MYDB_OK;
  size_t nd = 0;
  char *keys = (char *)(drop.nodes + n);
  for (size_t i = 0; i < n; i++) {
    const char *d = v + i * MYDB_DIGEST_BUF;
    int k = keep(d, payload);
    if (k < 0) {
      rc = k;
      break;
    }
    if (k) continue;
    mydb__hnode *x = &drop.nodes[nd];
    char *key = keys + nd * 32;
    mydb__pack_unhex((unsigned char *)key, d);
    x->key = key;
    x->klen = 32;
    x->hash = mydb__digest_hash((const unsigned char *)key);
    if (mydb__htab_add(&drop.t, x) != 0) {
      rc = mydb__seterr(MYDB_ENOMEM, "out of memory");
      break;
    }
    nd++;
  }
  free(v);
  if (rc == MYDB_OK && nd > 0) {
    ps = space_open(be, tenant, 1, &rc);
    if (ps) {
      rc = repack_space(be->db, ps, &drop, st);
      pthread_mutex_unlock(&PB(be)->mu);
    }
  } else if (rc == MYDB_OK) {
    ps = space_open(be, tenant, 1, &rc);
    if (ps) {
      st->objects_kept += ps->objs.n;
      pthread_mutex_unlock(&PB(be)->mu);
    }
  }
  mydb__htab_free(&drop.t);
  free(drop.nodes);
  return rc;
}

static int k_check(mydb_backend *be, const char *tenant,
                   void (*fn)(const char *what, const char *msg,
                              void *payload),
                   void *payload) {
  pbackend *pb = PB(be);
  int rc;
  pthread_mutex_lock(&pb->mu);
  pspace *ps = space_get(be->db, pb, tenant, &rc);
  if (ps) rc = mydb__pack_check(be->db, ps, fn, payload);
  pthread_mutex_unlock(&pb->mu);
  return rc < 0 ? rc : MYDB_OK;
}

static int k_journal(mydb_backend *be, const char *tenant,
                     int (*fn)(const char *line, size_t len, void *payload),
                     void *payload) {
  pbackend *pb = PB(be);
  int rc;
  pthread_mutex_lock(&pb->mu);
  pspace *ps = space_get(be->db, pb, tenant, &rc);
  /* fn runs under pb->mu: it must not call back into this handle */
  if (ps) rc = mydb__pack_journal(be->db, ps, fn, payload);
  pthread_mutex_unlock(&pb->mu);
  return rc;
}

/* ------------------------------------------------------- open and close */

static void k_free(mydb_backend *be) {
  pbackend *pb = PB(be);
  pthread_mutex_lock(&pb->mu);
  while (pb->last) space_close(be->db, pb, pb->last);
  mydb__htab_free(&pb->spaces);
  pthread_mutex_unlock(&pb->mu);
  pthread_cond_destroy(&pb->cv);
  pthread_mutex_destroy(&pb->mu);
  free(pb);
}

static const mydb_odb_ops pack_odb = {
    .version = MYDB__ODB_VERSION,
    .write = k_object_write,
    .read = k_object_read,
    .exists = k_object_exists,
    .foreach = k_object_foreach,
    .gc_begin = k_gc_begin,
    .gc_sweep = k_gc_sweep,
    .write_near = k_object_write_near,
    .read_into = k_object_read_into,
};

static const mydb_refdb_ops pack_refdb = {
    .version = MYDB__REFDB_VERSION,
    .get = k_head_get,
    .foreach = k_head_foreach,
    .lock_acquire = k_lock_acquire,
    .lock_release = k_lock_release,
    .lock_uncommitted = k_lock_uncommitted,
    .commit = k_head_commit,
    .sync = k_sync,
    .journal = k_journal,
};

int mydb__backend_pack(mydb *db, mydb_backend **out) {
  pbackend *pb = calloc(1, sizeof *pb);
  if (!pb) return mydb__seterr(MYDB_ENOMEM, "out of memory");
  int rc = pthread_mutex_init(&pb->mu, NULL);
  if (rc) {
    free(pb);
    return mydb__syserr(rc, "pthread_mutex_init", db->root);
  }
  if ((rc = pthread_cond_init(&pb->cv, NULL))) {
    pthread_mutex_destroy(&pb->mu);
    free(pb);
    return mydb__syserr(rc, "pthread_cond_init", db->root);
  }
  /* the shared refs' space (best effort for a read-only store: writes will
   * fail later with the reason) */
  rc = space_initialized(db, NULL);
  if (rc == 0) rc = space_create(db, NULL);
  if (rc < 0 && rc != MYDB_EIO) {
    pthread_cond_destroy(&pb->cv);
    pthread_mutex_destroy(&pb->mu);
    free(pb);
    return rc;
  }
  mydb_backend *be = &pb->be;
  be->version = MYDB__BACKEND_VERSION;
  be->name = "pack";
  be->db = db;
  be->odb = &pack_odb;
  be->refdb = &pack_refdb;
  be->tenant_init = k_tenant_init;
  be->tenant_exists = k_tenant_exists;
  be->tenant_list = k_tenant_list;
  be->repack = k_repack;
  be->check = k_check;
  be->free = k_free;
  *out = be;
  return MYDB_OK;
}
