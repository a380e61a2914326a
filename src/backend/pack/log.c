/*
 * log.c - the pack backend's log: records, scans, the index and group
 * commit (formats in pack.h and doc/FORMAT.md "Pack backend").
 *
 * Reading the log. A space's state (objects map, heads) is the replay of
 * its chain of segments from the chain's start (ROOT/.../pack/start), or
 * from where its index reaches. A scan stops at:
 *   - the end of the file after a whole record, or zero bytes where the
 *     next record's header would be (a zone, below): up to date;
 *   - a seal: continue with the segment it names;
 *   - a record that is not whole (a bad header or checksum, a payload past
 *     the end of the file, anything malformed) at or after the segment's
 *     durable point: a torn tail (a crash: after a power cut, any bytes
 *     past the last fdatasync - zeros, garbage, later pages of an append
 *     whose earlier pages were lost; or an append in progress in another
 *     process): not part of the state; the next appender (who holds the
 *     append lock, so nobody else is mid-append) truncates it;
 *   - such a record BEFORE the durable point: MYDB_ECORRUPT, never skipped
 *     (what an fdatasync made durable cannot be torn: it is damage).
 * The durable point of a segment (durable_point) is what pack/synced says
 * an fdatasync covered: every record below it is whole. A segment before
 * the one synced names is whole to its seal. pack/synced only ever names
 * the end of a whole record, and is written only after the fdatasync that
 * made it durable (a power cut may lose the write: then it names an
 * earlier point, never a later one).
 * Readers see other processes' appends by one pread() at the end they
 * know: the end of the file, or zeros, means nothing changed.
 *
 * Zones. An fdatasync that must also make a file's new size durable
 * commits the file system's journal: on ext4 here it costs twice as much
 * as one that writes data blocks over blocks already there (doc/design/
 * put-path.md). So a writer with fsync on extends the active segment
 * with a zone of zeros (zone_size(): 16-256 KiB, an eighth of the
 * segment so far; not synced by itself; a commit that needs a new zone
 * writes its zeros after its records, in the same pwritev) and appends
 * its records over it; the first commit's fdatasync makes the new size
 * durable, the next ones only their blocks. (SQLite's WAL is fast for the
 * same reason: after a checkpoint it is written over from the start.)
 * Past the last whole record of a segment, then, lie zeros; or, after a
 * crash, a torn append: a killed appender's (its first bytes at the end:
 * never zeros, since a write is copied in order) or, after a power cut,
 * any bytes, whole-looking records too, behind zeros. Readers stop at the
 * zeros. An appender must not write over such bytes blindly (a record
 * ending where an old whole one begins would bring it back), so before
 * its first append a handle reads the whole zone past the end, under the
 * append lock, and truncates the segment at the end if it holds anything
 * but zeros (zone_ok). That holds for the process's life: a power cut
 * ends it, and a killed appender leaves bytes at the end, which the next
 * appender sees. A segment is cut back to its records before its seal.
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
#include <sys/uio.h>
#include <unistd.h>

#include "headmap.h"
#include "delta.h"
#include "pack.h"

#define CHUNK ((size_t)1 << 20)         /* read size of scans */
#define FIRST_READ ((size_t)16 << 10)   /* first read of a scan from the
                                           end (the rest may be a zone) */
#define ZONE_MIN ((uint64_t)16 << 10)  /* zeros a durable writer adds: */
#define ZONE_MAX ((uint64_t)256 << 10) /* 1/8 of its segment, within these */
#define BIG_PAYLOAD ((uint64_t)8 << 20) /* CRC'd in chunks, not buffered */

/* ------------------------------------------------------------- encoding */

static void put_le32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void put_le64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get_le32(const unsigned char *p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}
static uint64_t get_le64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

static void hdr_make(unsigned char h[PACK_HDR], int type, uint64_t len,
                     uint32_t pcrc) {
  memcpy(h, PACK_MAGIC, 4);
  h[4] = (unsigned char)type;
  h[5] = h[6] = h[7] = 0;
  put_le64(h + 8, len);
  put_le32(h + 16, pcrc);
  put_le32(h + 20, mydb__crc32(0, h, 20));
}

/* 1 if h is a well-formed header. */
static int hdr_ok(const unsigned char *h) {
  return memcmp(h, PACK_MAGIC, 4) == 0 &&
         get_le32(h + 20) == mydb__crc32(0, h, 20) && h[5] == 0 &&
         h[6] == 0 && h[7] == 0;
}

static const unsigned char zero_block[64 << 10];

static int all_zero(const unsigned char *p, size_t n) {
  return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* (the digests given are valid: lower-case hex) */
void mydb__pack_unhex(unsigned char out[32], const char *hex) {
  mydb__unhex(out, hex);
}

static uint64_t synced_read(int fd, uint64_t *seg);

/* ---------------------------------------------------------------- paths */

int mydb__pack_segpath(const pspace *ps, char *out, uint64_t num) {
  int n = snprintf(out, PATH_MAX, "%s/%06llu.seg", ps->dir,
                   (unsigned long long)num);
  if (n < 0 || n >= PATH_MAX)
    return mydb__seterr(MYDB_EINVAL, "path too long: %s", ps->dir);
  return 0;
}

static int space_path(const pspace *ps, char *out, const char *name) {
  int n = snprintf(out, PATH_MAX, "%s/%s", ps->dir, name);
  if (n < 0 || n >= PATH_MAX)
    return mydb__seterr(MYDB_EINVAL, "path too long: %s", ps->dir);
  return 0;
}

static const char *space_what(const pspace *ps) {
  return ps->tlen ? ps->name : "refs";
}

static int corrupt(const pspace *ps, uint64_t seg, uint64_t off,
                   const char *why) {
  return mydb__seterr(MYDB_ECORRUPT, "pack of %s %s is corrupt: segment "
                      "%06llu, offset %llu: %s", ps->tlen ? "tenant" : "the",
                      space_what(ps), (unsigned long long)seg,
                      (unsigned long long)off, why);
}

/* -------------------------------------------------------------- segments */

size_t mydb__pack_segidx(const pspace *ps, uint64_t num) {
  for (size_t i = ps->nsegs; i-- > 0;)
    if (ps->segs[i].num == num) return i;
  return (size_t)-1;
}

int mydb__pack_segfd(mydb *db, pspace *ps, size_t i) {
  (void)db;
  if (ps->segs[i].fd >= 0) return ps->segs[i].fd;
  char p[PATH_MAX];
  int rc = mydb__pack_segpath(ps, p, ps->segs[i].num);
  if (rc) return rc;
  int fd = mydb__open(p, O_RDWR, 0);
  if (fd < 0 && (errno == EACCES || errno == EROFS || errno == EPERM))
    fd = mydb__open(p, O_RDONLY, 0);
  if (fd < 0) {
    if (errno == ENOENT) {
      ps->missing = ps->segs[i].num;
      return corrupt(ps, ps->segs[i].num, 0, "the segment is missing");
    }
    return mydb__syserr(errno, "open", p);
  }
  ps->segs[i].fd = fd;
  return fd;
}

static int seg_push(pspace *ps, uint64_t num, int fd) {
  if (ps->nsegs == ps->capsegs) {
    size_t nc = ps->capsegs ? ps->capsegs * 2 : 4;
    pseg *n = realloc(ps->segs, nc * sizeof *n);
    if (!n) return mydb__seterr(MYDB_ENOMEM, "out of memory");
    ps->segs = n;
    ps->capsegs = nc;
  }
  ps->segs[ps->nsegs].num = num;
  ps->segs[ps->nsegs].fd = fd;
  ps->nsegs++;
  return 0;
}

/* Drops the chain's segments before position keep (a new generation). */
static void seg_drop_before(pspace *ps, size_t keep) {
  for (size_t i = 0; i < keep; i++)
    if (ps->segs[i].fd >= 0) mydb__close(ps->segs[i].fd);
  memmove(ps->segs, ps->segs + keep, (ps->nsegs - keep) * sizeof *ps->segs);
  ps->nsegs -= keep;
}

int mydb__pack_segcreate(mydb *db, pspace *ps, uint64_t num, int *out) {
  char p[PATH_MAX];
  int rc = mydb__pack_segpath(ps, p, num);
  if (rc) return rc;
  /* What the synced file may say about this number or a later one is
   * void: it was a leftover no chain reaches (an unfinished repack). */
  char sp[PATH_MAX];
  if (space_path(ps, sp, "synced") == 0) {
    int sfd = mydb__open(sp, O_RDWR, 0);
    uint64_t sseg = 0;
    if (sfd >= 0) {
      (void)synced_read(sfd, &sseg);
      if (sseg >= num) (void)!ftruncate(sfd, 0);
      mydb__close(sfd);
    }
  }
  int fd = mydb__open_below(db, p, O_RDWR | O_CREAT | O_EXCL, 0666);
  if (fd < 0 && errno == EEXIST) {
    /* A leftover of an unfinished repack: no chain reaches it. */
    if (unlink(p) != 0) return mydb__syserr(errno, "unlink", p);
    fd = mydb__open_below(db, p, O_RDWR | O_CREAT | O_EXCL, 0666);
  }
  if (fd < 0) return mydb__syserr(errno, "create", p);
  if (db->fsync && mydb__fsync_dir(ps->dir) != 0) {
    rc = mydb__syserr(errno, "fsync", ps->dir);
    mydb__close(fd);
    return rc;
  }
  *out = fd;
  return 0;
}

/* ----------------------------------------------------------------- state */

static ploc *ploc_new(ppool *pool) {
  if (!pool->chunks || pool->used == PPOOL_N) {
    ppool_chunk *c = malloc(sizeof *c);
    if (!c) return NULL;
    c->next = pool->chunks;
    pool->chunks = c;
    pool->used = 0;
  }
  return &pool->chunks->items[pool->used++];
}

/* Takes back the ploc ploc_new just gave (its insertion failed). */
static void ploc_unnew(ppool *pool) { pool->used--; }

/* Empties t and frees its plocs; keep_one: the newest chunk stays, for
 * the next staged set. */
static void objs_clear(mydb__htab *t, ppool *pool, int keep_one) {
  ppool_chunk *c = pool->chunks;
  pool->used = 0;
  if (keep_one && c) {
    ppool_chunk *rest = c->next;
    c->next = NULL;
    c = rest;
  } else {
    pool->chunks = NULL;
  }
  while (c) {
    ppool_chunk *next = c->next;
    free(c);
    c = next;
  }
  if (keep_one && t->nb && t->nb <= 64) { /* (a put's few: the buckets stay) */
    memset(t->b, 0, t->nb * sizeof *t->b);
    t->n = 0;
  } else {
    mydb__htab_free(t);
  }
}

/* Empties the object index and its filter. */
static void index_clear(pspace *ps) {
  objs_clear(&ps->objs, &ps->objs_pool, 0);
  mydb__dfilter_free(&ps->objs_filter);
}

/* The index's ploc of raw digest d, or NULL; the filter answers most
 * look-ups of a digest that is absent (a new object's) by itself. */
static ploc *index_find(const pspace *ps, const unsigned char d[32]) {
  if (!mydb__dfilter_may(&ps->objs_filter, d)) return NULL;
  return (ploc *)mydb__htab_find(&ps->objs, mydb__digest_hash(d), (const char *)d, 32);
}

const ploc *mydb__pack_index_find(const pspace *ps, const unsigned char d[32]) {
  return index_find(ps, d);
}

/* The filter, sized anew for twice the index's objects, holding them all. */
static void filter_build(pspace *ps) {
  mydb__dfilter_reset(&ps->objs_filter, 2 * ps->objs.n);
  for (size_t i = 0; i < ps->objs.nb; i++)
    for (mydb__hnode *x = ps->objs.b[i]; x; x = x->next)
      mydb__dfilter_add(&ps->objs_filter, ((const ploc *)x)->digest);
}

void mydb__pack_space_reset(pspace *ps) {
  for (size_t i = 0; i < ps->nsegs; i++)
    if (ps->segs[i].fd >= 0) mydb__close(ps->segs[i].fd);
  free(ps->segs);
  ps->segs = NULL;
  ps->nsegs = ps->capsegs = 0;
  index_clear(ps);
  mydb__hmap_clear(&ps->heads);
  if (ps->sync) mydb__psync_unref(ps->sync);
  ps->sync = NULL;
  if (ps->syncfd >= 0) mydb__close(ps->syncfd);
  ps->syncfd = -1;
  mydb_buf_free(&ps->dscratch);
  ps->loaded = 0;
  ps->end = 0;
  ps->tail = 0;
  ps->tail_bytes = 0;
  ps->index_bytes = 0;
  ps->tail_clean = 0;
  ps->zone_ok = 0;
  ps->fsize = 0;
}

/* A delta's chain length: one more than its base's (the base digest
 * starts the delta), or unknown when the base is not known (yet). */
static int delta_depth(const pspace *ps, const unsigned char *delta) {
  const ploc *b = mydb__pack_index_find(ps, delta);
  if (!b || b->depth >= PACK_DELTA_DEPTH) return PACK_DELTA_UNKNOWN;
  return b->depth + 1;
}

static int obj_put(pspace *ps, const unsigned char digest[32], uint64_t seg,
                   uint64_t off, uint64_t len, int depth) {
  ploc *l = index_find(ps, digest);
  if (!l) {
    l = ploc_new(&ps->objs_pool);
    if (!l) return MYDB_ENOMEM;
    memcpy(l->digest, digest, 32);
    l->h.hash = mydb__digest_hash(digest);
    l->h.key = (const char *)l->digest;
    l->h.klen = 32;
    if (mydb__htab_add(&ps->objs, &l->h) != 0) {
      ploc_unnew(&ps->objs_pool);
      return MYDB_ENOMEM;
    }
    if (mydb__dfilter_full(&ps->objs_filter)) filter_build(ps);
    else mydb__dfilter_add(&ps->objs_filter, digest);
  }
  /* the latest copy wins (a repack's new generation) */
  l->seg = seg;
  l->off = off;
  l->len = len;
  l->depth = (unsigned char)depth;
  return 0;
}

int mydb__pack_apply(pspace *ps, int type, uint64_t seg, uint64_t off,
                     const char *payload, size_t len, mydb_buf *k,
                     mydb_buf *p) {
  if (type == REC_OBJECT || type == REC_DELTA) {
    const unsigned char *d = (const unsigned char *)payload;
    int depth = type == REC_DELTA ? delta_depth(ps, d + 32) : 0;
    if (obj_put(ps, d, seg, off + PACK_HDR + 32, len - 32, depth))
      return mydb__seterr(MYDB_ENOMEM, "out of memory reading a pack");
  } else if (type == REC_COMMIT || type == REC_GEN) {
    const char *why = mydb__hline_parse(payload, payload + len, k, p);
    if (why) {
      if (k->failed || p->failed)
        return mydb__seterr(MYDB_ENOMEM, "out of memory reading a pack");
      return corrupt(ps, seg, off, why);
    }
    if (type == REC_GEN) {
      /* Everything before is superseded: the generation holds it all. */
      index_clear(ps);
      mydb__hmap_clear(&ps->heads);
      size_t i = mydb__pack_segidx(ps, seg);
      if (i != (size_t)-1 && i > 0) seg_drop_before(ps, i);
    }
    if (mydb__hline_apply(&ps->heads, k, p, NULL))
      return mydb__seterr(MYDB_ENOMEM, "out of memory reading a pack");
  }
  return 0;
}

/* ------------------------------------------------------------- scanning */

typedef struct rbuf {
  int fd;
  char *buf;
  size_t cap, len, step;
  uint64_t base, size;
} rbuf;

/* Points *out at [off, off + n) of the file: 0, 1 if it ends before, or an
 * error. */
static int rb_get(rbuf *rb, uint64_t off, size_t n, const char **out,
                  const char *path) {
  if (off + n > rb->size || off + n < off) return 1;
  if (off >= rb->base && off + n <= rb->base + rb->len) {
    *out = rb->buf + (off - rb->base);
    return 0;
  }
  size_t want = n > rb->step ? n : rb->step;
  if (rb->step < CHUNK) rb->step *= 2;
  if (want > rb->size - off) want = (size_t)(rb->size - off);
  if (want > rb->cap) {
    char *nb = realloc(rb->buf, want);
    if (!nb) return mydb__seterr(MYDB_ENOMEM, "out of memory reading %s",
                                 path);
    rb->buf = nb;
    rb->cap = want;
  }
  ssize_t got = mydb__pread_all(rb->fd, rb->buf, want, (off_t)off);
  if (got < 0) return mydb__syserr(errno, "read", path);
  rb->base = off;
  rb->len = (size_t)got;
  if ((size_t)got < n) return 1; /* the file shrank meanwhile */
  *out = rb->buf;
  return 0;
}

/* CRC-32 of [off, off + len) read in chunks. */
static int crc_range(int fd, uint64_t off, uint64_t len, uint32_t *crc,
                     const char *path) {
  char *buf = malloc(CHUNK);
  if (!buf) return mydb__seterr(MYDB_ENOMEM, "out of memory");
  uint32_t c = 0;
  while (len) {
    size_t n = len > CHUNK ? CHUNK : (size_t)len;
    ssize_t got = mydb__pread_all(fd, buf, n, (off_t)off);
    if (got < 0 || (size_t)got != n) {
      int rc = got < 0 ? mydb__syserr(errno, "read", path) : 1;
      free(buf);
      return rc;
    }
    c = mydb__crc32(c, buf, n);
    off += n;
    len -= n;
  }
  free(buf);
  *crc = c;
  return 0;
}

enum { STOP_END, STOP_TORN, STOP_SEAL };

/* One segment's records from `from` to its current end. With apply 0 the
 * records are only checked. A record that is not whole at or past durable
 * is a torn tail (STOP_TORN), below it damage. *at: where the scan stopped
 * (the end, or the torn record); *next: the sealed segment's successor. */
static int scan_seg(mydb *db, pspace *ps, size_t i, uint64_t from,
                    uint64_t durable, int apply, int *stop, uint64_t *at,
                    uint64_t *next) {
  char path[PATH_MAX];
  int rc = mydb__pack_segpath(ps, path, ps->segs[i].num);
  if (rc) return rc;
  int fd = mydb__pack_segfd(db, ps, i);
  if (fd < 0) return fd;
  uint64_t segnum = ps->segs[i].num;
  struct stat st;
  if (fstat(fd, &st) != 0) return mydb__syserr(errno, "fstat", path);
  rbuf rb = {fd, NULL, 0, 0, from ? FIRST_READ : CHUNK, 0,
             (uint64_t)st.st_size};
  mydb_buf k = MYDB_BUF_INIT, p = MYDB_BUF_INIT;
  uint64_t off = from;
  *stop = STOP_END;
  rc = MYDB_OK;
/* A record that is not whole: torn past the durable point, else damage. */
#define NOT_WHOLE(why)                                       \
  {                                                          \
    if (off >= durable) *stop = STOP_TORN;                   \
    else rc = corrupt(ps, segnum, off, durable != UINT64_MAX \
                      && rb.size < durable                   \
                      ? "the segment is truncated (it was "  \
                        "durable further)" : why);           \
    break;                                                   \
  }
  while (off < rb.size) {
    const char *h;
    size_t hn = rb.size - off < PACK_HDR ? (size_t)(rb.size - off) : PACK_HDR;
    int r = rb_get(&rb, off, hn, &h, path);
    if (r < 0) { rc = r; break; }
    if (r == 1) NOT_WHOLE("the segment ends inside a record header");
    const unsigned char *uh = (const unsigned char *)h;
    if (all_zero(uh, hn)) { /* a zone: the end, past the durable point */
      if (off >= durable) break;
      NOT_WHOLE("zero bytes where a record should begin");
    }
    if (hn < PACK_HDR) NOT_WHOLE("the segment ends inside a record header");
    if (!hdr_ok(uh)) NOT_WHOLE("bad record header");
    int type = uh[4];
    uint64_t len = get_le64(uh + 8), pcrc = get_le32(uh + 16);
    uint64_t end = off + PACK_HDR + len;
    if (end < off || end > rb.size)
      NOT_WHOLE("the segment ends inside a record");
    if (type < REC_OBJECT || type > REC_DELTA)
      NOT_WHOLE("unknown record type");
    if ((type == REC_OBJECT && len < 32) || (type == REC_SEAL && len != 8) ||
        (type == REC_DELTA && len < 32 + MYDB_DELTA_MIN))
      NOT_WHOLE("bad record length");
    const char *pl = NULL;
    uint32_t crc = 0;
    if (type == REC_OBJECT && len > BIG_PAYLOAD) {
      r = crc_range(fd, off + PACK_HDR, len, &crc, path);
      if (r == 0) r = rb_get(&rb, off + PACK_HDR, 32, &pl, path);
    } else {
      r = rb_get(&rb, off + PACK_HDR, (size_t)len, &pl, path);
      if (r == 0) crc = mydb__crc32(0, pl, (size_t)len);
    }
    if (r < 0) { rc = r; break; }
    if (r == 1) NOT_WHOLE("the segment ends inside a record");
    if (crc != pcrc) NOT_WHOLE("record checksum mismatch");
    if (type == REC_SEAL) {
      if (end != rb.size) NOT_WHOLE("data after the segment's seal");
      *next = get_le64((const unsigned char *)pl);
      if (*next <= segnum) NOT_WHOLE("the seal names an older segment");
      *stop = STOP_SEAL;
      off = end;
      break;
    }
    if (type == REC_GEN && off != 0)
      NOT_WHOLE("a generation start inside a segment");
    if (apply) {
      /* (a malformed commit line - it changes nothing - is the only
       * corrupt apply returns: past the durable point, a torn tail) */
      rc = mydb__pack_apply(ps, type, segnum, off, pl, (size_t)len, &k, &p);
      if (rc == MYDB_ECORRUPT && off >= durable) {
        rc = MYDB_OK;
        *stop = STOP_TORN;
        break;
      }
      if (rc) break;
      ps->tail++;
      ps->tail_bytes += PACK_HDR + len;
    } else if (type != REC_OBJECT && type != REC_DELTA) {
      const char *why = mydb__hline_parse(pl, pl + len, &k, &p);
      if (why) NOT_WHOLE(why);
      /* (an empty generation start, a new space's first record, has no
       * line: the loose journal of a new tenant is the header alone) */
      if (ps->journal_fn && !(type == REC_GEN && len == 2 && memcmp(pl, "[]", 2) == 0) &&
          (rc = ps->journal_fn(pl, (size_t)len, ps->journal_p)))
        break;
    }
    off = end;
  }
#undef NOT_WHOLE
  /* the file ends below what was made durable: it was cut */
  if (rc == MYDB_OK && *stop != STOP_SEAL && durable != UINT64_MAX &&
      off < durable)
    rc = corrupt(ps, segnum, off, "the segment is truncated (it was "
                 "durable further)");
  free(rb.buf);
  mydb_buf_free(&k);
  mydb_buf_free(&p);
  *at = off;
  return rc;
}

/* The durable point of segment num (see the top of the file): the offset
 * pack/synced names in it, all of it if synced names a later segment, else
 * 0 (nothing known durable: every record past the start may be torn). */
static uint64_t durable_point(const pspace *ps, uint64_t num) {
  char p[PATH_MAX];
  if (space_path(ps, p, "synced")) return 0;
  int fd = mydb__open(p, O_RDONLY, 0);
  if (fd < 0) return 0;
  uint64_t seg = 0, off = synced_read(fd, &seg);
  mydb__close(fd);
  if (seg == num) return off;
  return seg > num ? UINT64_MAX : 0;
}

/* 1 if segment num + 1 exists and begins with a record other than a
 * generation start: then num was sealed (no crash leaves a successor with
 * records behind, except a repack's unreached generation). */
static int next_follows(const pspace *ps, uint64_t num) {
  char p[PATH_MAX];
  if (mydb__pack_segpath(ps, p, num + 1)) return 0;
  int nfd = mydb__open(p, O_RDONLY, 0);
  if (nfd < 0) return 0;
  unsigned char h[PACK_HDR];
  ssize_t got = mydb__pread_all(nfd, h, PACK_HDR, 0);
  mydb__close(nfd);
  return got == PACK_HDR && hdr_ok(h) && h[4] != REC_GEN;
}

/* Scans from (the active segment, from) onwards, following seals. */
static int scan_chain(mydb *db, pspace *ps, uint64_t from, int *torn) {
  *torn = 0;
  for (;;) {
    size_t i = ps->nsegs - 1;
    int stop;
    uint64_t at = from, next = 0;
    int rc = scan_seg(db, ps, i, from, durable_point(ps, ps->segs[i].num), 1,
                      &stop, &at, &next);
    /* scan_seg may drop older segments (a generation start): i is stale */
    i = ps->nsegs - 1;
    if (rc) {
      ps->end = at;
      return rc;
    }
    char p[PATH_MAX];
    if (stop != STOP_SEAL) {
      ps->end = at;
      *torn = stop == STOP_TORN;
      if (!*torn) break;
      /* A torn end is a crash's - unless the segment was sealed and cut:
       * then its successor is there. */
      if (next_follows(ps, ps->segs[i].num))
        return corrupt(ps, ps->segs[i].num, at, "the segment ends early "
                       "(truncated or damaged) but the next one follows");
      break;
    }
    if ((rc = mydb__pack_segpath(ps, p, next))) return rc;
    int fd = mydb__open(p, O_RDWR, 0);
    if (fd < 0 && (errno == EACCES || errno == EROFS || errno == EPERM))
      fd = mydb__open(p, O_RDONLY, 0);
    if (fd < 0) {
      if (errno == ENOENT)
        return corrupt(ps, ps->segs[i].num, at,
                       "the segment named by the seal is missing");
      return mydb__syserr(errno, "open", p);
    }
    if ((rc = seg_push(ps, next, fd))) {
      mydb__close(fd);
      return rc;
    }
    if (ps->sync) { /* the sync state follows the active segment */
      mydb__psync_unref(ps->sync);
      ps->sync = NULL;
    }
    ps->zone_ok = 0; /* (another writer's segment: not looked at yet) */
    ps->fsize = 0;
    from = 0;
  }
  /* remember the active segment's identity for refreshes */
  struct stat st;
  int fd = ps->segs[ps->nsegs - 1].fd;
  if (fstat(fd, &st) != 0) return mydb__syserr(errno, "fstat", ps->dir);
  ps->dev = st.st_dev;
  ps->ino = st.st_ino;
  return MYDB_OK;
}

/* ----------------------------------------------------------------- index */

#define IDX_MAGIC "MYDBPIDX"

int mydb__pack_write_index(mydb *db, pspace *ps) {
  if (!ps->loaded || ps->nsegs == 0) return MYDB_OK;
  mydb_buf b = MYDB_BUF_INIT;
  unsigned char h[40];
  memcpy(h, IDX_MAGIC, 8);
  /* version 1; flag 0x10000: the data it covers is durable (the durable
   * point is past it), so a log shorter than it was truncated. Not merely
   * fsync on: this handle may have read records another process has not
   * synced yet, which a power cut takes away. */
  int dur = db->fsync &&
            durable_point(ps, ps->segs[ps->nsegs - 1].num) >= ps->end;
  put_le32(h + 8, 2 | (dur ? 0x10000u : 0));
  put_le32(h + 12, (uint32_t)ps->nsegs);
  put_le64(h + 16, ps->end);
  put_le64(h + 24, ps->objs.n);
  mydb_buf hl = MYDB_BUF_INIT;
  if (mydb__hline_state(&hl, &ps->heads)) {
    mydb_buf_free(&hl);
    return mydb__seterr(MYDB_ENOMEM, "out of memory writing an index");
  }
  put_le64(h + 32, hl.len);
  (void)mydb_buf_grow(&b, 40 + ps->nsegs * 8 + ps->objs.n * 56 + hl.len + 32);
  mydb_buf_put(&b, h, 40);
  for (size_t i = 0; i < ps->nsegs; i++) {
    unsigned char n[8];
    put_le64(n, ps->segs[i].num);
    mydb_buf_put(&b, n, 8);
  }
  /* Every ploc of the pool is in the table once (obj_put updates a known
   * digest in place; nothing is deleted but all at once): the pool's
   * chunks walked in memory order, not the table's chains (a cache miss
   * an object: ~40 ms at 400,000 objects, at every index written). */
  size_t entries = 0;
  for (const ppool_chunk *c = ps->objs_pool.chunks; c; c = c->next) {
    size_t used = c == ps->objs_pool.chunks ? ps->objs_pool.used : PPOOL_N;
    for (size_t i = 0; i < used; i++) {
      const ploc *l = &c->items[i];
      unsigned char e[56];
      memcpy(e, l->digest, 32);
      put_le64(e + 32, l->seg);
      put_le64(e + 40, l->off);
      /* (version 2: the top byte of the length is the delta depth) */
      put_le64(e + 48, l->len | (uint64_t)l->depth << 56);
      mydb_buf_put(&b, e, 56);
    }
    entries += used;
  }
  if (entries != ps->objs.n) { /* (never: the invariant above) */
    mydb_buf_free(&hl);
    mydb_buf_free(&b);
    return mydb__seterr(MYDB_EIO, "pack index of %s: %zu objects in the pool, %zu in the table",
                        ps->dir, entries, ps->objs.n);
  }
  mydb_buf_put(&b, hl.data, hl.len);
  mydb_buf_free(&hl);
  uint64_t size = (uint64_t)b.len + 32;
  unsigned char md[32];
  int rc = b.failed ? mydb__seterr(MYDB_ENOMEM, "out of memory") : 0;
  if (!rc) rc = mydb__sha256(md, b.data, b.len);
  if (!rc) mydb_buf_put(&b, md, 32);
  char path[PATH_MAX];
  if (!rc) rc = space_path(ps, path, "index");
  if (rc || b.failed) {
    mydb_buf_free(&b);
    return rc ? rc : mydb__seterr(MYDB_ENOMEM, "out of memory");
  }
  /* Written over the old index in place, not as a new file renamed over
   * it: a rename drops the old file's pages and ext4 starts writing the
   * new one back at once (auto_da_alloc) - 17-300 ms for 25 MB here,
   * against 2-3 ms in place, and a batch's roll-over paid it. Not fsynced
   * either way: an index lost, torn, half old and half new (a reader
   * meeting a write, a crash) or longer than its content (a crash before
   * the truncation) fails its length or checksum test, and the log is
   * scanned instead. */
  int fd = mydb__open_below(db, path, O_WRONLY | O_CREAT, 0666);
  if (fd < 0) {
    rc = mydb__syserr(errno, "open", path);
    mydb_buf_free(&b);
    return rc;
  }
  struct stat st;
  if (mydb__write_all(fd, b.data, b.len) != 0)
    rc = mydb__syserr(errno, "write", path);
  else if (fstat(fd, &st) != 0)
    rc = mydb__syserr(errno, "fstat", path);
  else if ((uint64_t)st.st_size > size && mydb__ftruncate(fd, (off_t)size) != 0)
    rc = mydb__syserr(errno, "ftruncate", path);
  mydb__close(fd);
  mydb_buf_free(&b);
  if (rc) return rc;
  ps->tail = 0;
  ps->tail_bytes = 0;
  ps->index_bytes = size;
  return MYDB_OK;
}

/* Loads the index: 1 when loaded (ps holds its state; *from: where the
 * scan goes on), 0 when absent or unusable (ps left empty; *had: whether
 * there was a file), or an error. */
static int read_index(mydb *db, pspace *ps, uint64_t *from, int *had) {
  (void)db;
  char path[PATH_MAX];
  *had = 0;
  int rc = space_path(ps, path, "index");
  if (rc) return rc;
  int fd = mydb__open(path, O_RDONLY, 0);
  if (fd < 0) return errno == ENOENT ? 0 : mydb__syserr(errno, "open", path);
  *had = 1;
  struct stat st;
  if (fstat(fd, &st) != 0) {
    rc = mydb__syserr(errno, "fstat", path);
    mydb__close(fd);
    return rc;
  }
  size_t n = (size_t)st.st_size;
  unsigned char *b = n >= 72 ? malloc(n) : NULL;
  if (!b) {
    mydb__close(fd);
    return n >= 72 ? mydb__seterr(MYDB_ENOMEM, "out of memory") : 0;
  }
  ssize_t got = mydb__pread_all(fd, b, n, 0);
  mydb__close(fd);
  unsigned char md[32];
  int ok = got == (ssize_t)n && memcmp(b, IDX_MAGIC, 8) == 0 &&
           ((get_le32(b + 8) & 0xffff) == 1 || (get_le32(b + 8) & 0xffff) == 2) &&
           mydb__sha256(md, b, n - 32) == 0 &&
           memcmp(md, b + n - 32, 32) == 0;
  uint64_t nsegs = ok ? get_le32(b + 12) : 0, cov = ok ? get_le64(b + 16) : 0;
  uint64_t nobj = ok ? get_le64(b + 24) : 0, hlen = ok ? get_le64(b + 32) : 0;
  if (ok && (nsegs == 0 || nsegs > (n - 72) / 8 || nobj > (n - 72) / 56 ||
             hlen > n ||
             40 + nsegs * 8 + nobj * 56 + hlen + 32 != n))
    ok = 0;
  int durable = ok && (get_le32(b + 8) & 0x10000u);
  const unsigned char *q = b + 40;
  /* each segment's size: the entries must lie inside (checked before any
   * read allocates what an entry says) */
  uint64_t *sizes = ok ? malloc(nsegs * sizeof *sizes) : NULL;
  if (ok && !sizes) {
    free(b);
    return mydb__seterr(MYDB_ENOMEM, "out of memory reading %s", path);
  }
  for (uint64_t i = 0; ok && i < nsegs; i++, q += 8) {
    uint64_t num = get_le64(q);
    char sp[PATH_MAX];
    struct stat sst;
    if ((i && num <= ps->segs[ps->nsegs - 1].num) ||
        mydb__pack_segpath(ps, sp, num) != 0 || stat(sp, &sst) != 0) {
      ok = 0; /* stale (a repack since), or damaged */
      break;
    }
    if (i == nsegs - 1 && (uint64_t)sst.st_size < cov) {
      if (durable) /* the log held durable records up to cov */
        rc = corrupt(ps, num, (uint64_t)sst.st_size, "the segment is "
                     "truncated (the index reaches further)");
      ok = 0;
      break;
    }
    sizes[i] = i == nsegs - 1 ? cov : (uint64_t)sst.st_size;
    if ((rc = seg_push(ps, num, -1))) break;
  }
  mydb_buf k = MYDB_BUF_INIT, p = MYDB_BUF_INIT;
  for (uint64_t i = 0; ok && !rc && i < nobj; i++, q += 56) {
    uint64_t seg = get_le64(q + 32), off = get_le64(q + 40);
    uint64_t len = get_le64(q + 48), depth = len >> 56;
    len &= ((uint64_t)1 << 56) - 1;
    size_t si = mydb__pack_segidx(ps, seg);
    if (si == (size_t)-1 || off < PACK_HDR + 32 || off > sizes[si] ||
        len > sizes[si] - off) {
      ok = 0; /* damaged (its checksum passed: written so) */
      break;
    }
    if (obj_put(ps, q, seg, off, len, (int)depth))
      rc = mydb__seterr(MYDB_ENOMEM, "out of memory reading %s", path);
  }
  if (ok && !rc) {
    const char *why = mydb__hline_parse((const char *)q,
                                        (const char *)q + hlen, &k, &p);
    if (why || mydb__hline_apply(&ps->heads, &k, &p, NULL)) ok = 0;
  }
  mydb_buf_free(&k);
  mydb_buf_free(&p);
  free(b);
  free(sizes);
  if (rc || !ok) {
    mydb__pack_space_reset(ps);
    return rc;
  }
  *from = cov;
  ps->index_bytes = n;
  return 1;
}

/* ------------------------------------------------------------ load, refresh */

/* The chain's first segment: pack/start, else the lowest segment file.
 * 0 and *num, or MYDB_ENOTFOUND (no segment at all), or an error. */
static int chain_start(pspace *ps, uint64_t *num) {
  char p[PATH_MAX], buf[32];
  int rc = space_path(ps, p, "start");
  if (rc) return rc;
  int fd = mydb__open(p, O_RDONLY, 0);
  if (fd >= 0) {
    ssize_t n = mydb__pread_all(fd, buf, sizeof buf - 1, 0);
    mydb__close(fd);
    if (n > 0) {
      buf[n] = '\0';
      char *e;
      unsigned long long v = strtoull(buf, &e, 10);
      if (e != buf && (*e == '\n' || *e == '\0') && v > 0) {
        *num = v;
        return 0;
      }
    }
    return corrupt(ps, 0, 0, "the start file is damaged");
  }
  if (errno != ENOENT) return mydb__syserr(errno, "open", p);
  DIR *d = opendir(ps->dir);
  if (!d) return mydb__syserr(errno, "opendir", ps->dir);
  int found = 0;
  struct dirent *de;
  while ((de = readdir(d))) {
    char *e;
    unsigned long long v = strtoull(de->d_name, &e, 10);
    if (e != de->d_name && strcmp(e, ".seg") == 0 && v > 0 &&
        (!found || v < *num)) {
      *num = v;
      found = 1;
    }
  }
  closedir(d);
  return found ? 0 : MYDB_ENOTFOUND;
}

/* A segment shorter than what the synced file says was durable was cut. */
static int check_synced(pspace *ps) {
  char p[PATH_MAX];
  if (ps->nsegs == 0 || space_path(ps, p, "synced")) return 0;
  int fd = mydb__open(p, O_RDONLY, 0);
  if (fd < 0) return 0;
  uint64_t seg = 0, off = synced_read(fd, &seg);
  mydb__close(fd);
  size_t i = mydb__pack_segidx(ps, seg);
  if (i != ps->nsegs - 1 || off == 0) return 0;
  struct stat st;
  if (fstat(ps->segs[i].fd, &st) != 0) return 0;
  if ((uint64_t)st.st_size < off)
    return corrupt(ps, seg, (uint64_t)st.st_size, "the segment is truncated "
                   "(it was durable further)");
  return 0;
}

static int load(mydb *db, pspace *ps) {
  uint64_t from = 0;
  int had = 0;
  int rc = read_index(db, ps, &from, &had);
  if (rc < 0) return rc;
  if (rc == 1) {
    /* An index from before a repack moved the chain's start (the repack's
     * own index lost in a crash; a roll-over need not have rewritten it
     * since): its segments may all still be there, the old chain they
     * hold leading into segments the repack already removed. */
    uint64_t start;
    int sr = chain_start(ps, &start);
    if (sr != MYDB_OK && sr != MYDB_ENOTFOUND) return sr;
    if (sr == MYDB_OK && ps->nsegs && start > ps->segs[0].num) {
      mydb__pack_space_reset(ps);
      rc = 0;
    }
  }
  if (rc == 0) {
    uint64_t start;
    rc = chain_start(ps, &start);
    if (rc == MYDB_ENOTFOUND) {
      if (had) return corrupt(ps, 0, 0, "the index names segments that "
                              "are all missing");
      ps->loaded = 1; /* an empty space (no segment yet) */
      return MYDB_OK;
    }
    if (rc) return rc;
    if ((rc = seg_push(ps, start, -1))) return rc;
    int fd = mydb__pack_segfd(db, ps, 0);
    if (fd < 0) return fd;
    unsigned char h[PACK_HDR];
    ssize_t got = mydb__pread_all(fd, h, PACK_HDR, 0);
    if (got < 0) return mydb__syserr(errno, "read", ps->dir);
    if (got == PACK_HDR && hdr_ok(h) && h[4] != REC_GEN)
      return corrupt(ps, start, 0, "the chain does not begin with a "
                     "generation start (a segment is missing)");
    from = 0;
  }
  int torn;
  rc = scan_chain(db, ps, from, &torn);
  if (rc) return rc;
  if ((rc = check_synced(ps))) return rc;
  ps->loaded = 1;
  if (torn) {
    /* Truncate the torn tail now if no one is appending (best effort: a
     * read-only store or a busy lock leaves it to the next appender). */
    int had_lock = mydb__pack_holds(ps);
    if (had_lock || mydb__pack_trylock(db, ps) == MYDB_OK) {
      int fd = ps->segs[ps->nsegs - 1].fd;
      uint64_t at = ps->end, next = 0;
      int stop = STOP_END;
      /* re-check under the lock: it may have been an append in progress */
      rc = scan_seg(db, ps, ps->nsegs - 1, ps->end,
                    durable_point(ps, ps->segs[ps->nsegs - 1].num), 1, &stop,
                    &at, &next);
      if (rc == MYDB_OK && stop == STOP_TORN) {
        ps->end = at;
        (void)mydb__ftruncate(fd, (off_t)at);
        ps->fsize = 0;
      } else if (rc == MYDB_OK) {
        ps->end = at;
        if (stop == STOP_SEAL) { /* rare: it went on; read it all again */
          if (!had_lock) mydb__pack_unlock(ps);
          mydb__pack_space_reset(ps);
          return load(db, ps);
        }
      }
      if (!had_lock) mydb__pack_unlock(ps);
      if (rc) return rc;
    }
  }
  return MYDB_OK;
}

/* What pack/start says now ("" when there is none): a repack's commit point. */
static void start_now(pspace *ps, char out[32]) {
  char p[PATH_MAX];
  out[0] = '\0';
  if (space_path(ps, p, "start")) return;
  int fd = mydb__open(p, O_RDONLY, 0);
  if (fd < 0) return;
  ssize_t n = mydb__pread_all(fd, out, 31, 0);
  mydb__close(fd);
  out[n > 0 ? n : 0] = '\0';
}

/* Readers take no lock, so a repack elsewhere can move start and remove
 * the old segments while load walks them: a segment vanishes mid-read.
 * That is a race, not damage, when start moved meanwhile: read again.
 * Damage stays put and is reported (start unchanged). */
static int load_afresh(mydb *db, pspace *ps) {
  for (int attempt = 0;; attempt++) {
    char before[32], after[32];
    start_now(ps, before);
    mydb__pack_space_reset(ps);
    ps->missing = 0;
    int rc = load(db, ps);
    if (rc == MYDB_OK) return rc;
    /* the chain this load began with (the index's may predate start) */
    uint64_t first = ps->nsegs ? ps->segs[0].num : 0;
    mydb__pack_space_reset(ps);
    if (rc != MYDB_ECORRUPT || attempt == 16) return rc;
    start_now(ps, after);
    /* (also when start moved just before: an index read then may still
     * name the old chain, whose segments go - one below start now) */
    uint64_t missing = ps->missing, start = strtoull(after, NULL, 10);
    ps->missing = 0;
    if (strcmp(before, after) == 0 && start <= first &&
        !(missing && missing < start))
      return rc;
  }
}

int mydb__pack_refresh(mydb *db, pspace *ps) {
  if (!ps->loaded || ps->nsegs == 0) { /* (none yet: has one appeared?) */
    ps->foreign = 1;
    return load_afresh(db, ps);
  }
  /* One read at the end: the byte before it (is the file shorter?) and
   * what follows - nothing, zeros (a zone) or a record: someone else's
   * append, or a seal (a roll-over or a repack elsewhere: the chain goes
   * on). A segment is never replaced under its name while a chain
   * reaches it: a repack seals it into the new chain first. */
  int fd = mydb__pack_segfd(db, ps, ps->nsegs - 1);
  unsigned char b[PACK_HDR + 1];
  ssize_t got = -1;
  if (fd >= 0) {
    uint64_t at = ps->end ? ps->end - 1 : 0;
    if (mydb__fault_point()) return mydb__syserr(errno, "read", ps->dir);
    /* (one pread: a regular file reads short only at its end) */
    while ((got = pread(fd, b, sizeof b - (ps->end ? 0 : 1), (off_t)at)) < 0 &&
           errno == EINTR) {}
    if (got < 0) return mydb__syserr(errno, "read", ps->dir);
  }
  if (got < 0 || (ps->end && got == 0)) {
    /* removed, or cut below what this handle read: read afresh */
    ps->foreign = 1;
    return load_afresh(db, ps);
  }
  const unsigned char *h = ps->end ? b + 1 : b;
  size_t hn = (size_t)got - (ps->end ? 1 : 0);
  if (all_zero(h, hn)) {
    /* nothing new (the lock held: nobody can add bytes until it is
     * released; bytes past a zero header: see "Zones") */
    if (hn == 0) ps->zone_ok = 1;
    if (ps->locked) ps->tail_clean = ps->zone_ok;
    return MYDB_OK;
  }
  int torn;
  ps->foreign = 1;
  int rc = scan_chain(db, ps, ps->end, &torn);
  /* (a seal may lead into a generation a later repack already removed) */
  return rc == MYDB_ECORRUPT ? load_afresh(db, ps) : rc;
}

/* ---------------------------------------------------------------- appends */

/* Opens pack/lock once per space and handle. */
static int lock_open(mydb *db, pspace *ps) {
  if (ps->lockfd >= 0) return MYDB_OK;
  char p[PATH_MAX];
  int rc = space_path(ps, p, "lock");
  if (rc) return rc;
  /* every append holds this lock: opened with no symlink below ROOT
   * (mydb never writes through one; fsutil.c) */
  int fd = mydb__open_below(db, p, O_RDWR, 0);
  if (fd < 0) {
    if (errno == ENOENT && ps->tlen)
      return mydb__seterr(MYDB_ENOTINIT, "tenant '%s' is not initialized "
                          "(no %s)", ps->name, p);
    return mydb__syserr(errno, "open", p);
  }
  ps->lockfd = fd;
  return MYDB_OK;
}

int mydb__pack_holds(const pspace *ps) {
  return ps->locked && ps->lk_claimed &&
         pthread_equal(ps->lk_owner, pthread_self());
}

/* Gives up this thread's claim (ps->mu held) and wakes the waiters. */
static void unclaim(pspace *ps) {
  ps->lk_claimed = 0;
  if (ps->cv) pthread_cond_broadcast(ps->cv);
}

static int lock_space(mydb *db, pspace *ps, int nonblock) {
  int rc;
  if (!ps->cv) { /* a private copy: no other thread sees it */
    if (ps->locked) return MYDB_OK;
  } else {
    if (ps->lk_claimed && pthread_equal(ps->lk_owner, pthread_self()))
      return MYDB_OK; /* held already (as the tenant lock) */
    /* another thread of this handle holds it: the descriptor is shared,
     * so flock() would not exclude it - wait for its release */
    if (ps->lk_claimed && nonblock) return MYDB_ENOTFOUND;
    ps->pins++;
    while (ps->lk_claimed) pthread_cond_wait(ps->cv, ps->mu);
    ps->pins--;
    ps->lk_claimed = 1;
    ps->lk_owner = pthread_self();
  }
  if ((rc = lock_open(db, ps))) goto fail;
  if (mydb__flock(ps->lockfd, LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK) {
      rc = mydb__syserr(errno, "flock", ps->dir);
      goto fail;
    }
    if (nonblock) {
      rc = MYDB_ENOTFOUND;
      goto fail;
    }
    /* Held by another handle or process: wait without ps->mu (its holder
     * in this process may need it to finish). */
    int err = 0;
    if (ps->mu) {
      ps->pins++;
      pthread_mutex_unlock(ps->mu);
    }
    if (mydb__flock(ps->lockfd, LOCK_EX) != 0) err = errno;
    if (ps->mu) {
      pthread_mutex_lock(ps->mu);
      ps->pins--;
    }
    if (err) {
      rc = mydb__syserr(err, "flock", ps->dir);
      goto fail;
    }
  }
  ps->locked = 1;
  ps->tail_clean = 0; /* others may have appended since */
  return MYDB_OK;
fail:
  if (ps->cv) unclaim(ps);
  return rc;
}

int mydb__pack_lock(mydb *db, pspace *ps) { return lock_space(db, ps, 0); }

int mydb__pack_trylock(mydb *db, pspace *ps) {
  return lock_space(db, ps, 1);
}

static void unlock_space(pspace *ps) {
  if (ps->lockfd >= 0 && ps->locked) (void)mydb__flock(ps->lockfd, LOCK_UN);
  ps->locked = 0;
  ps->tail_clean = 0;
  if (ps->cv) unclaim(ps);
}

void mydb__pack_unlock(pspace *ps) {
  if (ps->cv && !(ps->lk_claimed &&
                  pthread_equal(ps->lk_owner, pthread_self())))
    return; /* not this thread's */
  if (ps->lk_tenant) return; /* held as the tenant lock: kept */
  unlock_space(ps);
}

void mydb__pack_unlock_tenant(pspace *ps) {
  mydb__pack_stage_drop(ps);
  ps->lk_tenant = 0;
  ps->lk_fresh = 0;
  unlock_space(ps);
}

/* --------------------------------------------------------------- staging */

void mydb__pack_stage_drop(pspace *ps) {
  if (ps->stage.cap > ((size_t)64 << 10)) { /* (kept: a put's size) */
    objs_clear(&ps->staged, &ps->staged_pool, 0);
    mydb_buf_free(&ps->stage);
  } else {
    objs_clear(&ps->staged, &ps->staged_pool, 1);
    ps->stage.len = 0;
    ps->stage.failed = 0;
  }
}

void mydb__pack_stage_free(pspace *ps) {
  objs_clear(&ps->staged, &ps->staged_pool, 0);
  mydb_buf_free(&ps->stage);
}

const ploc *mydb__pack_staged(const pspace *ps, const unsigned char d[32]) {
  if (ps->staged.n == 0) return NULL;
  return (const ploc *)mydb__htab_find(&ps->staged, mydb__digest_hash(d),
                                       (const char *)d, 32);
}

static int stage_record(pspace *ps, int type, const unsigned char d[32],
                        const void *buf, size_t len, int depth);

int mydb__pack_stage(pspace *ps, const unsigned char d[32], const void *buf,
                     size_t len) {
  return stage_record(ps, REC_OBJECT, d, buf, len, 0);
}

int mydb__pack_stage_delta(pspace *ps, const unsigned char d[32],
                           const void *delta, size_t len, int depth) {
  return stage_record(ps, REC_DELTA, d, delta, len, depth);
}

static int stage_record(pspace *ps, int type, const unsigned char d[32],
                        const void *buf, size_t len, int depth) {
  if (mydb__pack_staged(ps, d)) return MYDB_OK;
  if (len > SIZE_MAX / 2) /* (mydb_buf's own limit) */
    return mydb__seterr(MYDB_ENOMEM, "object too large to stage");
  ploc *l = ploc_new(&ps->staged_pool);
  if (!l) return mydb__seterr(MYDB_ENOMEM, "out of memory");
  unsigned char h[PACK_HDR];
  hdr_make(h, type, (uint64_t)len + 32,
           mydb__crc32(mydb__crc32(0, d, 32), buf, len));
  size_t at = ps->stage.len;
  mydb_buf_put(&ps->stage, h, PACK_HDR);
  mydb_buf_put(&ps->stage, d, 32);
  mydb_buf_put(&ps->stage, buf, len);
  memcpy(l->digest, d, 32);
  l->h.hash = mydb__digest_hash(d);
  l->h.key = (const char *)l->digest;
  l->h.klen = 32;
  l->seg = 0;
  l->off = at + PACK_HDR + 32;
  l->len = len;
  l->depth = (unsigned char)depth;
  if (ps->stage.failed || mydb__htab_add(&ps->staged, &l->h) != 0) {
    ploc_unnew(&ps->staged_pool);
    ps->stage.len = at; /* (a failed buffer keeps nothing past at) */
    ps->stage.failed = 0;
    return mydb__seterr(MYDB_ENOMEM, "out of memory staging an object");
  }
  return MYDB_OK;
}

static int pwritev_all(int fd, struct iovec *iov, int n, off_t off) {
  while (n > 0) {
    if (mydb__fault_point()) return -1; /* (tests: ENOSPC, EIO) */
    ssize_t w = pwritev(fd, iov, n, off);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (w == 0) {
      errno = EIO;
      return -1;
    }
    off += w;
    while (n > 0 && (size_t)w >= iov->iov_len) {
      w -= (ssize_t)iov->iov_len;
      iov++;
      n--;
    }
    if (n > 0) {
      iov->iov_base = (char *)iov->iov_base + w;
      iov->iov_len -= (size_t)w;
    }
  }
  return 0;
}

int mydb__pack_write_record(int fd, uint64_t off, int type, const void *a,
                        size_t alen, const void *b, size_t blen,
                        const char *path) {
  unsigned char h[PACK_HDR];
  uint32_t crc = mydb__crc32(mydb__crc32(0, a, alen), b, blen);
  hdr_make(h, type, (uint64_t)alen + blen, crc);
  struct iovec iov[3] = {{h, PACK_HDR}, {(void *)(uintptr_t)a, alen},
                         {(void *)(uintptr_t)b, blen}};
  if (pwritev_all(fd, iov, blen ? 3 : 2, (off_t)off) != 0)
    return mydb__syserr(errno, "append to", path);
  return 0;
}

/* Starts segment num after the active one: its records so far made
 * durable, the new file created, then the seal (so a reader following it
 * finds the file). */
static int roll_over(mydb *db, pspace *ps) {
  size_t i = ps->nsegs - 1;
  uint64_t cur = ps->segs[i].num, num = cur + 1;
  int oldfd = ps->segs[i].fd, fd = -1, rc;
  char p[PATH_MAX];
  if ((rc = mydb__pack_segpath(ps, p, cur))) return rc;
  /* the seal ends the file: no zone after it */
  struct stat st;
  if (fstat(oldfd, &st) != 0) return mydb__syserr(errno, "fstat", p);
  if ((uint64_t)st.st_size > ps->end &&
      mydb__ftruncate(oldfd, (off_t)ps->end) != 0)
    return mydb__syserr(errno, "ftruncate", p);
  if (db->fsync && mydb__fdatasync(oldfd) != 0) {
    rc = mydb__syserr(errno, "fdatasync", p);
    mydb__pack_sync_failed(db, ps);
    return rc;
  }
  if ((rc = mydb__pack_segcreate(db, ps, num, &fd))) return rc;
  unsigned char n8[8];
  put_le64(n8, num);
  if ((rc = mydb__pack_write_record(oldfd, ps->end, REC_SEAL, n8, 8, NULL, 0, p)) ||
      (db->fsync && mydb__fdatasync(oldfd) != 0)) {
    if (!rc) {
      rc = mydb__syserr(errno, "fdatasync", p);
      mydb__pack_sync_failed(db, ps);
    }
    (void)mydb__ftruncate(oldfd, (off_t)ps->end);
    mydb__close(fd);
    char np[PATH_MAX];
    if (mydb__pack_segpath(ps, np, num) == 0) unlink(np);
    return rc;
  }
  if ((rc = seg_push(ps, num, fd))) {
    mydb__close(fd);
    ps->loaded = 0; /* the file is sealed: reload next time */
    return rc;
  }
  /* (not for a repack's new generation: until the old chain is sealed
   * into it, no chain reaches it, and a durable point naming a later
   * segment would make the active one's torn tail look like damage) */
  if (db->fsync && !ps->noindex)
    mydb__pack_synced(ps, cur, ps->end + PACK_HDR + 8);
  ps->end = 0;
  ps->fsize = 0;
  ps->zone_ok = 1; /* (made here, empty) */
  if (fstat(fd, &st) == 0) {
    ps->dev = st.st_dev;
    ps->ino = st.st_ino;
  }
  if (ps->sync) {
    mydb__psync_unref(ps->sync);
    ps->sync = NULL;
  }
  ps->dirty = 0; /* the old segment was synced */
  /* (a cache: rewritten whole, so only once the log has grown past it by
   * PACK_INDEX_GROWTH times its size - see there) */
  if (!ps->noindex && ps->tail_bytes / PACK_INDEX_GROWTH >= ps->index_bytes)
    (void)mydb__pack_write_index(db, ps);
  return 0;
}

/* 1 if the bytes of the active segment from ps->end to size are zeros or
 * none, 0 if not (a torn append), or an error. The lock held. A handle
 * that knows the zone (zone_ok) looks at the first header only: a torn
 * append in its lifetime begins there (see "Zones"); else at all of it. */
static int zone_clean(pspace *ps, int fd, uint64_t size, const char *path) {
  uint64_t off = ps->end, stop = ps->zone_ok ? ps->end + PACK_HDR : size;
  if (stop > size) stop = size;
  unsigned char *buf = malloc(sizeof zero_block);
  if (!buf) return mydb__seterr(MYDB_ENOMEM, "out of memory");
  int clean = 1;
  while (clean && off < stop) {
    size_t n = stop - off < sizeof zero_block ? (size_t)(stop - off)
                                              : sizeof zero_block;
    ssize_t got = mydb__pread_all(fd, buf, n, (off_t)off);
    if (got < 0) {
      clean = mydb__syserr(errno, "read", path);
      break;
    }
    if ((size_t)got < n) clean = 0; /* (shorter than it was: cut it) */
    else clean = all_zero(buf, n);
    off += n;
  }
  free(buf);
  return clean;
}

/* (relaxed: a count, read only as a diagnostic) */
static atomic_uint_least64_t zone_bytes;

uint64_t mydb_zone_bytes(void) {
  return (uint64_t)atomic_load_explicit(&zone_bytes, memory_order_relaxed);
}

/* The zone to write ahead of an append at `end`: an eighth of the segment
 * so far, from 16 to 256 KiB, so that a small tenant's segment is not
 * mostly zeros (a store may hold many tenants). */
static uint64_t zone_size(uint64_t end) {
  uint64_t z = end / 8;
  return z < ZONE_MIN ? ZONE_MIN : z > ZONE_MAX ? ZONE_MAX : z;
}

/* Where a zone written ahead of an append ending at `need` should end (0:
 * none): the lock held, the bytes past ps->end known to be zeros. Uses
 * the size this handle last saw, if it is past the records: the file may
 * have grown since (another writer's zone: zeros, which this one writes
 * over with zeros) or been cut at the records (then the zeros written
 * leave a hole, which reads as zeros too). *sizep: the size it went by. */
static uint64_t zone_target(mydb *db, pspace *ps, int fd, uint64_t need,
                            uint64_t *sizep) {
  uint64_t size = ps->fsize;
  if (size < ps->end || size == 0) {
    struct stat st;
    if (fstat(fd, &st) != 0) return 0;
    size = (uint64_t)st.st_size;
  }
  ps->fsize = size;
  *sizep = size;
  if (size >= need || size < ps->end) return 0;
  uint64_t to = need + zone_size(ps->end);
  if (to > db->segment_bytes) to = db->segment_bytes;
  return to > size ? to : 0;
}

/* iovecs of zeros for the bytes [from, to), at most 8 (64 KiB each):
 * returns their count; *end: where they stop. */
static int zero_iovs(struct iovec *iov, uint64_t from, uint64_t to,
                     uint64_t *end) {
  int n = 0;
  for (uint64_t left = to > from ? to - from : 0; left && n < 8; n++) {
    size_t k = left < sizeof zero_block ? (size_t)left : sizeof zero_block;
    iov[n] = (struct iovec){(void *)(uintptr_t)zero_block, k};
    left -= k;
    from += k;
  }
  *end = from;
  return n;
}

/* Writes a zone of zeros after the active segment's last byte, so that
 * the appends up to `need` write over blocks already in the file (see
 * "Zones"). Best effort: a failure leaves a plain append to do it. */
static void zone_extend(mydb *db, pspace *ps, int fd, uint64_t need) {
  uint64_t size, to = zone_target(db, ps, fd, need, &size);
  if (!to) return;
  struct iovec iov[8];
  int n = zero_iovs(iov, size, to, &to);
  if (pwritev_all(fd, iov, n, (off_t)size) != 0) {
    (void)mydb__ftruncate(fd, (off_t)size);
    ps->fsize = 0;
    return;
  }
  atomic_fetch_add_explicit(&zone_bytes, (uint_least64_t)(to - size),
                            memory_order_relaxed);
  ps->fsize = to;
}

/* Before an append of rlen bytes (the lock held): the active segment's
 * descriptor, ready - no earlier failed sync, no torn bytes after the last
 * whole record, room (or a new segment). */
static int append_prepare(mydb *db, pspace *ps, uint64_t rlen, int *fdp,
                          char p[PATH_MAX], uint64_t *zone_to) {
  int rc;
  if (ps->nsegs == 0)
    return corrupt(ps, 0, 0, "no segment to append to (tenant not "
                   "initialized as a pack?)");
  size_t i = ps->nsegs - 1;
  int fd = mydb__pack_segfd(db, ps, i);
  if (fd < 0) return fd;
  if ((rc = mydb__pack_segpath(ps, p, ps->segs[i].num))) return rc;
  if (db->fsync && mydb__pack_failed(ps))
    return mydb__seterr(MYDB_EIO, "an earlier fdatasync of %s failed (its "
                        "unsynced data may be lost): no more appends to it "
                        "until a repack rewrites the space", p);
  /* The append lock is held: bytes past the last whole record are a zone
   * or a torn write (unless this lock's holder saw the file end there, or
   * zeros follow in a zone it knows: tail_clean). */
  if (!ps->tail_clean) {
    struct stat st;
    if (fstat(fd, &st) != 0) return mydb__syserr(errno, "fstat", p);
    uint64_t size = (uint64_t)st.st_size;
    if (size > ps->end) {
      int clean = zone_clean(ps, fd, size, p);
      if (clean < 0) return clean;
      if (!clean) {
        if (mydb__ftruncate(fd, (off_t)ps->end) != 0)
          return mydb__syserr(errno, "ftruncate", p);
        size = ps->end;
      }
    }
    ps->fsize = size;
    ps->zone_ok = 1;
    ps->tail_clean = ps->locked;
  }
  if (ps->end > 0 && ps->end + rlen + PACK_HDR + 8 > db->segment_bytes) {
    if ((rc = roll_over(db, ps))) return rc;
    fd = ps->segs[ps->nsegs - 1].fd;
    if ((rc = mydb__pack_segpath(ps, p, ps->segs[ps->nsegs - 1].num)))
      return rc;
  }
  /* (not for a repack's new generation: it writes whole objects, once)
   * zone_to: the caller writes the zone's zeros after its records, in the
   * same pwritev (no system call of the zone's own); else written here */
  if (zone_to) *zone_to = 0;
  if (db->fsync && !ps->noindex && rlen <= zone_size(ps->end) / 4 &&
      ps->end + rlen > ps->fsize) {
    uint64_t size;
    if (zone_to) *zone_to = zone_target(db, ps, fd, ps->end + rlen, &size);
    else zone_extend(db, ps, fd, ps->end + rlen);
  }
  *fdp = fd;
  return MYDB_OK;
}

/* After an append of rlen bytes at ps->end, or a failed one. */
static void appended(pspace *ps, uint64_t rlen, int ok) {
  if (!ok) {
    ps->tail_clean = 0;
    ps->fsize = 0;
    return;
  }
  ps->tail_clean = ps->locked;
  if (ps->end + rlen > ps->fsize) ps->fsize = ps->end + rlen;
}

int mydb__pack_append(mydb *db, pspace *ps, int type, const void *a,
                      size_t alen, const void *b, size_t blen) {
  int rc, fd;
  char p[PATH_MAX];
  uint64_t rlen = PACK_HDR + (uint64_t)alen + blen;
  if ((rc = append_prepare(db, ps, rlen, &fd, p, NULL))) return rc;
  size_t i = ps->nsegs - 1;
  if ((rc = mydb__pack_write_record(fd, ps->end, type, a, alen, b, blen, p))) {
    (void)mydb__ftruncate(fd, (off_t)ps->end); /* best effort */
    appended(ps, rlen, 0);
    return rc;
  }
  appended(ps, rlen, 1);
  /* Apply: the state follows the log. */
  if (type == REC_OBJECT || type == REC_DELTA) {
    int depth = type == REC_DELTA ? delta_depth(ps, b) : 0;
    if (obj_put(ps, a, ps->segs[i].num, ps->end + PACK_HDR + 32, blen, depth)) {
      ps->loaded = 0; /* written; the next refresh reads it */
      ps->end += rlen;
      return MYDB_OK;
    }
  } else {
    mydb_buf k = MYDB_BUF_INIT, pp = MYDB_BUF_INIT;
    rc = mydb__pack_apply(ps, type, ps->segs[i].num, ps->end, a, alen, &k,
                          &pp);
    mydb_buf_free(&k);
    mydb_buf_free(&pp);
    if (rc) ps->loaded = 0; /* written; replay it next time */
  }
  ps->end += rlen;
  ps->tail++;
  ps->tail_bytes += rlen;
  ps->dirty = 1;
  return MYDB_OK;
}

int mydb__pack_append_stage(mydb *db, pspace *ps, const char *commit,
                            size_t clen) {
  int rc, fd;
  char p[PATH_MAX];
  uint64_t rlen = (uint64_t)ps->stage.len + (commit ? PACK_HDR + clen : 0);
  if (rlen == 0) return MYDB_OK;
  uint64_t zone_to;
  if ((rc = append_prepare(db, ps, rlen, &fd, p, &zone_to))) return rc;
  unsigned char h[PACK_HDR];
  if (commit) hdr_make(h, REC_COMMIT, clen, mydb__crc32(0, commit, clen));
  uint64_t need = ps->end + rlen, zend = need;
  for (int with_zone = zone_to > need;; with_zone = 0) {
    struct iovec iov[3 + 8]; /* (rebuilt for a retry: pwritev_all moves them) */
    int n = 0;
    if (ps->stage.len) iov[n++] = (struct iovec){ps->stage.data, ps->stage.len};
    if (commit) {
      iov[n++] = (struct iovec){h, PACK_HDR};
      iov[n++] = (struct iovec){(void *)(uintptr_t)commit, clen};
    }
    if (with_zone) n += zero_iovs(iov + n, need, zone_to, &zend);
    if (pwritev_all(fd, iov, n, (off_t)ps->end) == 0) break;
    int err = errno;
    (void)mydb__ftruncate(fd, (off_t)ps->end); /* best effort */
    if (with_zone) { /* the zone is best effort: the records alone, again */
      ps->fsize = 0;
      zend = need;
      continue;
    }
    rc = mydb__syserr(err, "append to", p);
    appended(ps, rlen, 0);
    return rc; /* (the stage is kept: a retried commit appends it again) */
  }
  appended(ps, rlen, 1);
  if (zend > need) {
    atomic_fetch_add_explicit(&zone_bytes, (uint_least64_t)(zend - need),
                              memory_order_relaxed);
    ps->fsize = zend;
  }
  /* Apply: the state follows the log. */
  uint64_t seg = ps->segs[ps->nsegs - 1].num, base = ps->end;
  size_t count = ps->staged.n;
  for (size_t b = 0; b < ps->staged.nb; b++)
    for (mydb__hnode *x = ps->staged.b[b]; x; x = x->next) {
      const ploc *l = (const ploc *)x;
      if (obj_put(ps, l->digest, seg, base + l->off, l->len, l->depth))
        ps->loaded = 0; /* written; the next refresh reads it */
    }
  if (commit) {
    mydb_buf k = MYDB_BUF_INIT, pp = MYDB_BUF_INIT;
    rc = mydb__pack_apply(ps, REC_COMMIT, seg, base + ps->stage.len, commit,
                          clen, &k, &pp);
    mydb_buf_free(&k);
    mydb_buf_free(&pp);
    if (rc) ps->loaded = 0; /* written; replay it next time */
    count++;
  }
  mydb__pack_stage_drop(ps);
  ps->end += rlen;
  ps->tail += count;
  ps->tail_bytes += rlen;
  ps->dirty = 1;
  return MYDB_OK;
}

/* ------------------------------------------------------------------ check */

static int walk(mydb *db, pspace *ps,
                void (*fn)(const char *what, const char *msg, void *payload),
                void *payload,
                int (*jfn)(const char *line, size_t len, void *payload),
                void *jp) {
  /* A private copy of the chain: checking must not disturb ps's state. */
  pspace c;
  memset(&c, 0, sizeof c);
  c.lockfd = c.syncfd = -1;
  c.journal_fn = jfn;
  c.journal_p = jp;
  c.tlen = ps->tlen;
  memcpy(c.name, ps->name, sizeof c.name);
  memcpy(c.dir, ps->dir, sizeof c.dir);
  uint64_t start;
  int rc = chain_start(&c, &start), problems = 0;
  char what[MYDB_TENANT_MAX + 8];
  snprintf(what, sizeof what, "%s", space_what(ps));
  if (rc == MYDB_ENOTFOUND) return 0;
  if (rc) {
    if (!fn) return rc;
    fn(what, mydb_errmsg(), payload);
    return 1;
  }
  if ((rc = seg_push(&c, start, -1))) return rc;
  for (;;) {
    int stop;
    uint64_t at = 0, next = 0;
    uint64_t num = c.segs[c.nsegs - 1].num;
    rc = scan_seg(db, &c, c.nsegs - 1, 0, durable_point(&c, num), 0, &stop,
                  &at, &next);
    if (rc == 0 && stop == STOP_TORN && next_follows(&c, num))
      rc = corrupt(&c, num, at, "the segment ends early (truncated or "
                   "damaged) but the next one follows");
    if (rc == MYDB_ENOMEM || rc == MYDB_EIO || (rc && !fn)) break;
    if (rc) {
      fn(what, mydb_errmsg(), payload);
      problems++;
      rc = 0;
      break;
    }
    if (stop != STOP_SEAL) break;
    char p[PATH_MAX];
    struct stat st;
    if (mydb__pack_segpath(&c, p, next) != 0 || stat(p, &st) != 0) {
      rc = corrupt(&c, c.segs[c.nsegs - 1].num, at,
                   "the segment named by the seal is missing");
      if (!fn) break;
      fn(what, mydb_errmsg(), payload);
      problems++;
      rc = 0;
      break;
    }
    if ((rc = seg_push(&c, next, -1))) break;
  }
  for (size_t i = 0; i < c.nsegs; i++)
    if (c.segs[i].fd >= 0) mydb__close(c.segs[i].fd);
  free(c.segs);
  return rc ? rc : problems;
}

int mydb__pack_check(mydb *db, pspace *ps,
                     void (*fn)(const char *what, const char *msg,
                                void *payload),
                     void *payload) {
  return walk(db, ps, fn, payload, NULL, NULL);
}

int mydb__pack_journal(mydb *db, pspace *ps,
                       int (*fn)(const char *line, size_t len, void *payload),
                       void *payload) {
  int rc = walk(db, ps, NULL, NULL, fn, payload);
  return rc < 0 ? rc : MYDB_OK;
}

/* ------------------------------------------------------------ group commit */

struct psync {
  psync *next;
  dev_t dev;
  ino_t ino;
  size_t refs;
  int fd;     /* a descriptor of the segment */
  int syncfd; /* pack/synced, or -1 */
  uint64_t segnum;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int busy;           /* a thread is syncing */
  atomic_int failed;  /* an fdatasync failed: nothing more is durable
                         (set under mu; read without it: see pack_failed) */
  uint64_t published; /* the furthest whole-record end a waiter named */
  uint64_t synced;    /* durable up to here (known to this process) */
  char path[PATH_MAX];
};

static pthread_mutex_t sync_mu = PTHREAD_MUTEX_INITIALIZER;
static psync *syncs;

psync *mydb__psync_get(mydb *db, pspace *ps) {
  if (ps->sync) {
    pthread_mutex_lock(&sync_mu);
    ps->sync->refs++;
    pthread_mutex_unlock(&sync_mu);
    return ps->sync;
  }
  if (ps->nsegs == 0) return NULL;
  int fd = mydb__pack_segfd(db, ps, ps->nsegs - 1);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) return NULL;
  pthread_mutex_lock(&sync_mu);
  psync *s = syncs;
  while (s && !(s->dev == st.st_dev && s->ino == st.st_ino)) s = s->next;
  if (!s && (s = calloc(1, sizeof *s))) {
    s->fd = dup(fd);
    if (s->fd < 0 || pthread_mutex_init(&s->mu, NULL) != 0) {
      if (s->fd >= 0) mydb__close(s->fd);
      free(s);
      s = NULL;
    } else if (pthread_cond_init(&s->cv, NULL) != 0) {
      pthread_mutex_destroy(&s->mu);
      mydb__close(s->fd);
      free(s);
      s = NULL;
    } else {
      char p[PATH_MAX];
      atomic_init(&s->failed, 0);
      s->syncfd = -1;
      if (space_path(ps, p, "synced") == 0)
        s->syncfd = mydb__open(p, O_RDWR | O_CREAT, 0666);
      s->dev = st.st_dev;
      s->ino = st.st_ino;
      s->segnum = ps->segs[ps->nsegs - 1].num;
      if (mydb__pack_segpath(ps, s->path, s->segnum)) s->path[0] = '\0';
      s->next = syncs;
      syncs = s;
    }
  }
  if (s) s->refs += 2; /* ps's and the caller's */
  pthread_mutex_unlock(&sync_mu);
  ps->sync = s;
  return s;
}

void mydb__psync_unref(psync *s) {
  if (!s) return;
  pthread_mutex_lock(&sync_mu);
  int last = --s->refs == 0;
  if (last) {
    psync **pp = &syncs;
    while (*pp != s) pp = &(*pp)->next;
    *pp = s->next;
  }
  pthread_mutex_unlock(&sync_mu);
  if (!last) return;
  mydb__close(s->fd);
  if (s->syncfd >= 0) mydb__close(s->syncfd);
  pthread_cond_destroy(&s->cv);
  pthread_mutex_destroy(&s->mu);
  free(s);
}

/* Marks the sync state of segment s failed for good (fsyncgate: after a
 * failed fdatasync the kernel may have dropped the dirty pages, and a
 * later fdatasync may succeed without writing them). The state is pinned
 * (one reference never dropped) so that the process remembers it while it
 * runs, whichever handles come and go. s->mu held. */
static void poison_write(int fd, uint64_t seg);

static void psync_fail(psync *s) {
  if (atomic_load(&s->failed)) return;
  atomic_store(&s->failed, 1);
  pthread_mutex_lock(&sync_mu);
  s->refs++;
  pthread_mutex_unlock(&sync_mu);
  poison_write(s->syncfd, s->segnum); /* and the other processes know */
}

/* When the library is unloaded (core.so at lua_close, or the process's
 * exit): the failed states no handle holds any more, kept only by their
 * pin, are released (the pin is for the process's life, which ends here;
 * the "synced" file keeps the poison for other processes). A state a
 * handle still holds is left to it. */
__attribute__((destructor)) static void psync_release_pinned(void) {
  pthread_mutex_lock(&sync_mu);
  psync **pp = &syncs;
  while (*pp) {
    psync *s = *pp;
    if (s->refs == 1 && atomic_load(&s->failed)) {
      *pp = s->next;
      mydb__close(s->fd);
      if (s->syncfd >= 0) mydb__close(s->syncfd);
      pthread_cond_destroy(&s->cv);
      pthread_mutex_destroy(&s->mu);
      free(s);
    } else {
      pp = &s->next;
    }
  }
  pthread_mutex_unlock(&sync_mu);
}

void mydb__pack_sync_failed(mydb *db, pspace *ps) {
  psync *s = mydb__psync_get(db, ps);
  if (!s) return;
  pthread_mutex_lock(&s->mu);
  psync_fail(s);
  pthread_mutex_unlock(&s->mu);
  mydb__psync_unref(s);
}

static uint64_t poison_read(int fd);

int mydb__pack_failed(pspace *ps) {
  if (ps->nsegs == 0) return 0;
  if (ps->syncfd < 0) {
    char p[PATH_MAX];
    if (space_path(ps, p, "synced") == 0)
      ps->syncfd = mydb__open(p, O_RDONLY, 0);
  }
  if (ps->syncfd >= 0 && poison_read(ps->syncfd) == ps->segs[ps->nsegs - 1].num)
    return 1;
  int failed = 0;
  pthread_mutex_lock(&sync_mu);
  for (psync *s = syncs; s; s = s->next)
    if (s->dev == ps->dev && s->ino == ps->ino) {
      /* (not under s->mu: psync_fail takes sync_mu with s->mu held) */
      failed = atomic_load(&s->failed);
      break;
    }
  pthread_mutex_unlock(&sync_mu);
  return failed;
}

/* The shared "synced" file: segment number, offset, and a check word. */
static uint64_t synced_read(int fd, uint64_t *segp) {
  unsigned char b[24];
  if (fd < 0 || mydb__pread_all(fd, b, 24, 0) != 24) return 0;
  uint64_t seg = get_le64(b), off = get_le64(b + 8);
  if (get_le64(b + 16) != (seg ^ off ^ 0x6d7964627379636eULL)) return 0;
  *segp = seg;
  return off;
}

/* The poison record after it (bytes 24-39): the number of a segment an
 * fdatasync failed on, in any process, and a check word. That segment
 * takes no more appends until a repack replaces it (what the kernel
 * dropped is known only to it; the page cache still shows the records). */
#define POISON_CHECK 0x6d796462706f6973ULL
static uint64_t poison_read(int fd) {
  unsigned char b[16];
  if (fd < 0 || mydb__pread_all(fd, b, 16, 24) != 16) return 0;
  uint64_t seg = get_le64(b);
  return get_le64(b + 8) == (seg ^ POISON_CHECK) ? seg : 0;
}

static void poison_write(int fd, uint64_t seg) {
  if (fd < 0) return;
  unsigned char b[16];
  put_le64(b, seg);
  put_le64(b + 8, seg ^ POISON_CHECK);
  (void)!pwrite(fd, b, 16, 24);
}

/* The durable point in cur (its first 24 bytes, as read; NULL: none). */
static uint64_t synced_parse(const unsigned char *b, uint64_t *segp) {
  if (!b) return 0;
  uint64_t seg = get_le64(b), off = get_le64(b + 8);
  if (get_le64(b + 16) != (seg ^ off ^ 0x6d7964627379636eULL)) return 0;
  *segp = seg;
  return off;
}

/* Moves the durable point forward to (seg, off): the end of a whole record
 * that an fdatasync made durable. Never backwards (cur: the file's first 24
 * bytes as just read, or NULL). Not synced itself: a lost write leaves an
 * earlier point (see the top of the file). */
static void synced_put(int fd, const unsigned char *cur, uint64_t seg,
                       uint64_t off) {
  uint64_t cseg = 0, coff = synced_parse(cur, &cseg);
  if (fd < 0 || cseg > seg || (cseg == seg && coff >= off)) return;
  unsigned char b[24];
  put_le64(b, seg);
  put_le64(b + 8, off);
  put_le64(b + 16, seg ^ off ^ 0x6d7964627379636eULL);
  (void)!pwrite(fd, b, 24, 0); /* losing it costs an fsync, or a check */
}

static void synced_advance(int fd, uint64_t seg, uint64_t off) {
  unsigned char b[24];
  synced_put(fd, fd >= 0 && mydb__pread_all(fd, b, 24, 0) == 24 ? b : NULL,
             seg, off);
}

void mydb__pack_synced(const pspace *ps, uint64_t seg, uint64_t off) {
  char p[PATH_MAX];
  if (space_path(ps, p, "synced")) return;
  int fd = mydb__open(p, O_RDWR | O_CREAT, 0666);
  if (fd < 0) return;
  synced_advance(fd, seg, off);
  mydb__close(fd);
}

static uint64_t shared_synced(const psync *s) {
  uint64_t seg = 0, off = synced_read(s->syncfd, &seg);
  return seg == s->segnum ? off : 0;
}

int mydb__psync_wait(psync *s, uint64_t off, int commit, int peek) {
  int rc = MYDB_OK;
  const char *what = commit ? "committed but not durable"
                            : "written but not durable";
  pthread_mutex_lock(&s->mu);
  /* off ends a whole record (its writer appended it): whoever syncs next
   * may count it as durable. Never the file's size: it may include a
   * record another appender is still writing. */
  if (off > s->published) s->published = off;
  for (;;) {
    if (atomic_load(&s->failed)) {
      rc = mydb__seterr(MYDB_EIO, "%s: an earlier fdatasync of %s failed "
                        "(its unsynced data may be lost)", what, s->path);
      break;
    }
    if (s->synced >= off) break;
    if (s->busy) {
      pthread_cond_wait(&s->cv, &s->mu);
      continue;
    }
    /* This thread syncs for every whole record published so far. */
    s->busy = 1;
    uint64_t target = s->published;
    pthread_mutex_unlock(&s->mu);
    /* another process did it? (asked only when others write) */
    uint64_t covered = peek ? shared_synced(s) : 0;
    int err = 0;
    if (covered < off) {
      if (mydb__fdatasync(s->fd) != 0) err = errno;
      /* one read: the poison (an fdatasync that failed in another process:
       * this one's success may be the kernel's forgetting - fsyncgate) and
       * the durable point to move forward */
      unsigned char b[40];
      ssize_t got = 0; /* (one pread: the file is 24 bytes until poisoned) */
      while (!err && s->syncfd >= 0 &&
             (got = pread(s->syncfd, b, 40, 0)) < 0 && errno == EINTR) {}
      if (!err && got == 40 && get_le64(b + 32) == (get_le64(b + 24) ^
                                                    POISON_CHECK) &&
          get_le64(b + 24) == s->segnum)
        err = EIO;
      if (!err) {
        covered = target;
        synced_put(s->syncfd, got >= 24 ? b : NULL, s->segnum, covered);
      }
    }
    pthread_mutex_lock(&s->mu);
    s->busy = 0;
    if (!err && covered > s->synced) s->synced = covered;
    if (err) psync_fail(s);
    pthread_cond_broadcast(&s->cv);
    if (err) {
      char msg[PATH_MAX + 256];
      (void)mydb__syserr(err, "fdatasync", s->path);
      snprintf(msg, sizeof msg, "%s", mydb_errmsg());
      rc = mydb__seterr(MYDB_EIO, "%s: %s", what, msg);
      break;
    }
  }
  pthread_mutex_unlock(&s->mu);
  mydb__psync_unref(s);
  return rc;
}
