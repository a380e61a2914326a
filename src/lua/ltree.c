/*
 * ltree.c - the write path of record collections in C: the prolly tree's
 * update, build and flush (doc/FORMAT.md, "Record collections";
 * doc/design/put-path.md), the same algorithm as lua/mydb/collection.lua's
 * Lua one, which stays as the oracle (spec/tree_c_spec.lua).
 *
 *   core.tree(store, tenant) -> session (one per tree handle)
 *   session:seed(digest, bytes)        a root the snapshot embeds
 *   session:get(root, key)             -> raw value | nil
 *   session:update(root, key, raw|nil [, want_old]) -> root|nil, delta|false,
 *                                     old raw|nil (nil too when want_old is false)
 *   session:update_many(root, count, {key = raw|false})
 *                                      -> root|nil, delta, changed
 *   session:build(keys, raws)          -> root|nil
 *   session:flush(root, write_root)    -> embed|nil, root
 *   session:update_flush(root, key, raw|nil) -> false | delta, embed|nil, root|nil
 *                                      update, then flush (a put)
 *   session:update_stored(root, key, raw|nil) -> stored root|nil, delta
 *                                      update, then flush with the root
 *                                      written (a commit's state tree)
 *   session:piece(digest)              -> bytes of a piece built and not
 *                                         flushed (or seeded) | nil
 *   session:pending()                  -> {digest = base | false}
 *   session:cache_limit([bytes])       -> the node cache's budget (bytes)
 *
 * Pieces are parsed once into a node: the bytes and an offset table (per
 * item: the key's bytes, the value's JSON or the child's raw digest, the
 * count below it), kept in a node cache per store handle (bounded by bytes)
 * and shared by every session of that handle. Nodes are reference-counted:
 * the cache, a session's pending pieces and the nodes an operation walks
 * each hold one, so an eviction never frees a node in use.
 *
 * A session keeps the pieces it built (pending) until flush writes those
 * the final root reaches, each once, with mydb_object_write_near and the
 * piece it replaces as base (pack deltas), exactly as collection.lua's
 * t.pending and t.base.
 *
 * No Lua error is raised while C holds memory of its own: every buffer is
 * owned by the session's userdata (or the store's cache), operations
 * return an error code, and the binding raises after it released what the
 * operation held.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "base64.h"
#include "buf.h"
#include "htab.h"
#include "internal.h"
#include "jsonstr.h"
#include "lmydb.h"
#include "ltree.h"
#include "mydb.h"
#include "varint.h"

#define TREE_MT "mydb.tree"
#define NODE_MAGIC "\0MN\1"
#define NODE_MAGIC_LEN 4

/* The boundary rule's constants (doc/FORMAT.md; collection.lua). */
#define MIN_PIECE 256
#define MAX_PIECE 8192
#define NODE_ITEM 40

/* The node cache's budget per store handle (bytes of nodes). */
#define NODE_CACHE_BYTES ((size_t)48 << 20)
/* Deepest tree walked (a tree of 2 KiB pieces is ~6 levels at 10^9). */
#define MAX_HEIGHT 64

/* ------------------------------------------------------------------ nodes */

/* One item of a piece: a record (key, value JSON) or a child entry (first
 * key, raw digest, record count). The chunk hash of the key is computed on
 * first use and kept. */
typedef struct titem {
  const char *key;
  size_t klen;
  const char *val; /* leaf: the value's JSON; inner: 32 raw digest bytes */
  size_t vlen;
  int64_t count;   /* inner: records below; leaf: 1 */
  uint64_t hash;
  int has_hash;
} titem;

/* Node blocks are recycled by size class (1 to 32 KiB): a put builds and
 * drops a few pieces of 2-8 KiB, and glibc's malloc, for a chunk that
 * size, first consolidates every small chunk freed since (Lua frees many):
 * measured as a third of a put's time. One pool per store handle; each
 * block taken from it holds a reference, so it outlives the handle if a
 * session still has nodes. */
#define POOL_CLASSES 6
#define POOL_MIN ((size_t)1024)
#define POOL_KEEP 32 /* free blocks kept per class */

typedef struct npool {
  unsigned refs;
  void *free[POOL_CLASSES]; /* singly linked through each block's first word */
  unsigned nfree[POOL_CLASSES];
} npool;

static void pool_unref(npool *p) {
  if (!p || --p->refs) return;
  for (int c = 0; c < POOL_CLASSES; c++)
    while (p->free[c]) {
      void *b = p->free[c];
      memcpy(&p->free[c], b, sizeof(void *));
      free(b);
    }
  free(p);
}

/* A block of at least size bytes: *cls its class (-1: none), *cap its
 * size. */
static void *pool_get(npool *p, size_t size, int *cls, size_t *cap) {
  for (int c = 0; c < POOL_CLASSES; c++) {
    size_t cs = POOL_MIN << c;
    if (size > cs) continue;
    void *b = p->free[c];
    if (b) {
      memcpy(&p->free[c], b, sizeof(void *));
      p->nfree[c]--;
    } else {
      b = malloc(cs);
      if (!b) return NULL;
    }
    *cls = c;
    *cap = cs;
    p->refs++;
    return b;
  }
  void *b = malloc(size);
  if (!b) return NULL;
  *cls = -1;
  *cap = size;
  p->refs++;
  return b;
}

static void pool_put(npool *p, void *b, int cls) {
  if (cls >= 0 && p->nfree[cls] < POOL_KEEP) {
    memcpy(b, &p->free[cls], sizeof(void *));
    p->free[cls] = b;
    p->nfree[cls]++;
  } else {
    free(b);
  }
  pool_unref(p);
}

typedef struct tnode {
  mydb__hnode h;   /* in the cache: key = tenant, NUL, raw digest */
  npool *pool;
  int cls;
  unsigned refs;
  int leaf;
  int cached;
  size_t n;
  titem *items;
  const char *bytes;
  size_t len;
  /* the SHA-256 state after each whole stride of bytes (mydb__sha256_strides):
   * kept for pieces built here, so that the piece built from this one
   * hashes only from its first changed stride on; nck 0 for pieces read */
  mydb__shastate *ck;
  size_t nck;
  size_t size;     /* bytes of the allocation (the cache's budget) */
  int64_t total;   /* records below */
  unsigned char digest[32];
  char hex[MYDB_DIGEST_BUF];
} tnode;

static void node_unref(tnode *n) {
  if (n && --n->refs == 0) pool_put(n->pool, n, n->cls);
}

/* An item while a node is assembled: offsets instead of pointers. kin/vin:
 * in the piece's bytes (1) or in the side buffer (0, decoded keys and the
 * digests of a JSON inner piece). */
typedef struct proto {
  size_t koff, klen, voff, vlen;
  int kin, vin;
  int64_t count;
  uint64_t hash;
  int has_hash;
} proto;

/* The node cache's hash of (tenant, digest): the digest's first word (a
 * SHA-256: uniform) mixed with the tenant's hash, which a session computes
 * once (no hash of the whole key a look-up). */
static uint64_t node_hash(uint64_t tenant_hash, const unsigned char digest[32]) {
  return mydb__digest_hash(digest) ^ tenant_hash;
}

/* One allocation: the node, its cache key (right after it: a look-up that
 * finds the node compares the key without another cache line far away),
 * its items, its bytes, the side buffer. */
static tnode *node_make(npool *pool, const char *tenant, uint64_t tenant_hash,
                        const unsigned char digest[32], int leaf, const char *bytes, size_t len,
                        const proto *pv, size_t n, const char *side, size_t sidelen,
                        const mydb__shastate *st, size_t nst) {
  size_t tl = strlen(tenant);
  size_t cksize = (tl + 1 + 32 + 7) & ~(size_t)7; /* (the items after it: aligned) */
  if (n > (SIZE_MAX / 2 - sizeof(tnode) - len - sidelen - cksize - 64) / sizeof(titem)) return NULL;
  if (nst > len / MYDB_SHA_STRIDE) return NULL; /* (never: one state a whole stride) */
  size_t size = sizeof(tnode) + cksize + n * sizeof(titem) + nst * sizeof *st + len + sidelen, cap;
  int cls;
  tnode *nd = pool_get(pool, size, &cls, &cap);
  if (!nd) return NULL;
  memset(nd, 0, sizeof *nd);
  nd->pool = pool;
  nd->cls = cls;
  size = cap;
  char *ck = (char *)(nd + 1);
  memcpy(ck, tenant, tl + 1);
  memcpy(ck + tl + 1, digest, 32);
  nd->items = (titem *)(void *)(ck + cksize);
  nd->ck = (mydb__shastate *)(void *)(nd->items + n);
  nd->nck = nst;
  if (nst) memcpy(nd->ck, st, nst * sizeof *st);
  char *b = (char *)(nd->ck + nst);
  if (len) memcpy(b, bytes, len);
  char *s = b + len;
  if (sidelen) memcpy(s, side, sidelen);
  nd->refs = 1;
  nd->leaf = leaf;
  nd->n = n;
  nd->bytes = b;
  nd->len = len;
  nd->size = size;
  memcpy(nd->digest, digest, 32);
  mydb__hex(nd->hex, digest, 32);
  nd->hex[MYDB_DIGEST_HEX] = '\0';
  nd->h.key = ck;
  nd->h.klen = tl + 1 + 32;
  nd->h.hash = node_hash(tenant_hash, digest);
  int64_t total = 0;
  for (size_t i = 0; i < n; i++) {
    titem *it = &nd->items[i];
    it->key = (pv[i].kin ? b : s) + pv[i].koff;
    it->klen = pv[i].klen;
    it->val = (pv[i].vin ? b : s) + pv[i].voff;
    it->vlen = pv[i].vlen;
    it->count = leaf ? 1 : pv[i].count;
    it->hash = pv[i].hash;
    it->has_hash = pv[i].has_hash;
    total += it->count; /* bounded by the parser and the builder */
  }
  nd->total = total;
  return nd;
}

/* ------------------------------------------------------------------ cache */

struct lmydb_nodes {
  mydb__htab tab;
  size_t bytes, limit;
  size_t sweep; /* the bucket the next eviction starts at */
  struct scratch *x;
  npool *pool;
  char *rd; /* the buffer a scan's pieces are read into (read_node) */
  size_t rdcap;
  struct kmemo *km; /* the keys' chunk hashes (item_hash); NULL until used */
};

static void cache_drop(lmydb_nodes *c, tnode *n) {
  mydb__htab_del(&c->tab, &n->h);
  c->bytes -= n->size;
  n->cached = 0;
  node_unref(n);
}

/* Evicts nodes bucket by bucket from a moving cursor until 3/4 of the
 * budget is used (a rough CLOCK: the oldest insertions go first on
 * average, and nothing is scanned twice in a row). */
static void cache_trim(lmydb_nodes *c) {
  size_t goal = c->limit / 4 * 3;
  for (size_t k = 0; k < c->tab.nb && c->bytes > goal; k++) {
    size_t j = (c->sweep + k) & (c->tab.nb - 1);
    while (c->tab.b[j] && c->bytes > goal)
      cache_drop(c, (tnode *)(void *)c->tab.b[j]);
    c->sweep = j + 1;
  }
}

static tnode *cache_get(lmydb_nodes *c, uint64_t hash, const char *key, size_t klen) {
  if (!c) return NULL;
  return (tnode *)(void *)mydb__htab_find(&c->tab, hash, key, klen);
}

/* Whether cache_put would keep n (the cache's one size rule). */
static int cache_holds(const lmydb_nodes *c, const tnode *n) {
  return c && n->size <= c->limit / 8;
}

static void cache_put(lmydb_nodes *c, tnode *n) {
  if (!c || n->cached || !cache_holds(c, n)) return;
  if (mydb__htab_find(&c->tab, n->h.hash, n->h.key, n->h.klen)) return;
  if (c->bytes + n->size > c->limit) cache_trim(c);
  if (mydb__htab_add(&c->tab, &n->h) != 0) return;
  n->refs++;
  n->cached = 1;
  c->bytes += n->size;
}

static void scratch_free(struct scratch *x);

void lmydb_nodes_free(lmydb_nodes *c) {
  if (!c) return;
  for (size_t j = 0; j < c->tab.nb; j++)
    while (c->tab.b[j]) cache_drop(c, (tnode *)(void *)c->tab.b[j]);
  mydb__htab_free(&c->tab);
  scratch_free(c->x);
  pool_unref(c->pool);
  free(c->rd);
  free(c->km);
  free(c);
}

/* ---------------------------------------------------------------- session */

/* A piece built by this session and not yet flushed, or one the caller
 * seeded (a root the snapshot embeds: never written from here). */
typedef struct pend {
  mydb__hnode h; /* key: the node's raw digest */
  tnode *node;
  int seed;
  int has_base;
  unsigned char base[32];
} pend;

/* An item handed to the cutter: a record or a child entry, and the node
 * item it came from (where its chunk hash is kept), if any. */
typedef struct citem {
  const char *key;
  size_t klen;
  const char *val;
  size_t vlen;
  int64_t count;
  titem *src;
} citem;

typedef struct vec {
  citem *v;
  size_t n, cap;
} vec;

typedef struct pstep {
  tnode *node;
  size_t idx;
} pstep;

/* A change of update_many: a key and its new raw value (NULL: delete). */
typedef struct change {
  const char *key;
  size_t klen;
  const char *val;
  size_t vlen;
} change;

/* What an operation works in, reused from one to the next: one per store
 * handle (a Lua state runs one operation at a time), so that a session -
 * one per tree handle, one per write - costs no allocation but its
 * pending pieces. */
typedef struct scratch {
  /* nodes the current operation holds a reference to */
  tnode **held;
  size_t nheld, capheld;
  proto *pv;
  size_t pcap;
  mydb__shastate *st; /* the strides' states of the piece being built */
  size_t stcap;
  mydb_buf side, out;
  vec lv[2], cut, items;
  change *chg;
  size_t chgcap;
  pstep path[MAX_HEIGHT + 1], walk[MAX_HEIGHT + 1];
} scratch;

typedef struct ltree {
  lmydb_store *store; /* pinned by the user value */
  scratch *x;         /* the store's, set by each operation */
  char tenant[MYDB_TENANT_MAX + 1];
  uint64_t tenant_hash; /* mydb__hash of tenant (node_hash) */
  mydb__htab pend;
  /* the failure of the current operation */
  const char *code;
  char msg[512];
} ltree;

static int fail(ltree *t, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(ltree *t, const char *code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(t->msg, sizeof t->msg, fmt, ap);
  va_end(ap);
  t->code = code;
  return -1;
}

static int oom(ltree *t) { return fail(t, "out_of_memory", "out of memory in a collection tree"); }

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return 0;
  size_t c = *cap ? *cap : 16;
  while (c < need) {
    if (c > SIZE_MAX / 2 / elem) return -1;
    c *= 2;
  }
  void *q = realloc(*p, c * elem);
  if (!q) return -1;
  *p = q;
  *cap = c;
  return 0;
}

/* (inline, the room checked first: a put pushes some 200 items) */
static inline int vec_push(ltree *t, vec *v, const citem *it) {
  if (v->n == v->cap && grow((void **)&v->v, &v->cap, v->n + 1, sizeof *v->v)) return oom(t);
  v->v[v->n++] = *it;
  return 0;
}

static citem item_of(titem *it) {
  citem c = {it->key, it->klen, it->val, it->vlen, it->count, it};
  return c;
}

/* Holds a reference to n for the rest of the operation. */
static int hold(ltree *t, tnode *n) {
  if (grow((void **)&t->x->held, &t->x->capheld, t->x->nheld + 1, sizeof *t->x->held)) {
    node_unref(n);
    return oom(t);
  }
  t->x->held[t->x->nheld++] = n;
  return 0;
}

static void release_held(ltree *t) {
  while (t->x->nheld) node_unref(t->x->held[--t->x->nheld]);
}

static void scratch_free(scratch *x) {
  if (!x) return;
  while (x->nheld) node_unref(x->held[--x->nheld]);
  free(x->held);
  free(x->pv);
  free(x->st);
  mydb_buf_free(&x->side);
  mydb_buf_free(&x->out);
  free(x->lv[0].v);
  free(x->lv[1].v);
  free(x->cut.v);
  free(x->items.v);
  free(x->chg);
  free(x);
}

static pend *pend_get(ltree *t, const unsigned char digest[32]) {
  return (pend *)(void *)mydb__htab_find(&t->pend, mydb__digest_hash(digest),
                                         (const char *)digest, 32);
}

static void pend_del(ltree *t, pend *p) {
  mydb__htab_del(&t->pend, &p->h);
  node_unref(p->node);
  free(p);
}

/* Adds n (taking a new reference) unless its digest is there already:
 * the same bytes (content-addressed); returns the entry. */
static pend *pend_add(ltree *t, tnode *n, int seed) {
  pend *p = pend_get(t, n->digest);
  if (p) return p;
  p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->node = n;
  p->seed = seed;
  p->h.key = (const char *)n->digest;
  p->h.klen = 32;
  p->h.hash = mydb__digest_hash(n->digest);
  if (mydb__htab_add(&t->pend, &p->h) != 0) {
    free(p);
    return NULL;
  }
  n->refs++;
  return p;
}

/* Drops the pending pieces (seeds too when all). */
static void pend_clear(ltree *t, int all) {
  for (size_t j = 0; j < t->pend.nb; j++) {
    mydb__hnode **pp = &t->pend.b[j];
    while (*pp) {
      pend *p = (pend *)(void *)*pp;
      if (all || !p->seed) {
        *pp = p->h.next;
        t->pend.n--;
        node_unref(p->node);
        free(p);
      } else {
        pp = &p->h.next;
      }
    }
  }
  /* a put_many's session grew the buckets; a put's next clear would walk
   * them all again (~9,000 instructions a put after a 10,000-record load) */
  if (t->pend.n == 0 && t->pend.nb > 64) mydb__htab_free(&t->pend);
}

/* ----------------------------------------------------------------- parsing */

typedef struct pctx {
  ltree *t;
  const char *start, *p, *end;
  size_t n;
  const char *why;
} pctx;

static int pfail(pctx *c, const char *why) {
  if (!c->why) c->why = why;
  return -1;
}

static void pws(pctx *c) {
  while (c->p < c->end && (*c->p == ' ' || *c->p == '\n' || *c->p == '\t' || *c->p == '\r')) c->p++;
}

static int pexpect(pctx *c, char ch) {
  pws(c);
  if (c->p >= c->end || *c->p != ch) return pfail(c, "unexpected character");
  c->p++;
  return 0;
}

static char ppeek(pctx *c) {
  pws(c);
  return c->p < c->end ? *c->p : 0;
}

static proto *pnext(pctx *c) {
  ltree *t = c->t;
  if (grow((void **)&t->x->pv, &t->x->pcap, c->n + 1, sizeof *t->x->pv)) {
    pfail(c, "out of memory");
    return NULL;
  }
  proto *pr = &t->x->pv[c->n++];
  memset(pr, 0, sizeof *pr);
  return pr;
}

/* A JSON string literal at c->p: its bytes as a span of the piece when it
 * has no escape, else decoded into the side buffer. */
static int pstring(pctx *c, size_t *off, size_t *len, int *in) {
  pws(c);
  if (c->p >= c->end || *c->p != '"') return pfail(c, "expected a string");
  const char *q = c->p + 1;
  while (q < c->end && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20) q++;
  if (q < c->end && *q == '"') {
    *off = (size_t)(c->p + 1 - c->start);
    *len = (size_t)(q - c->p - 1);
    *in = 1;
    c->p = q + 1;
    return 0;
  }
  mydb_buf *s = &c->t->x->side;
  size_t at = s->len;
  const char *e = mydb_json_get_string(s, c->p, c->end);
  if (!e) return pfail(c, "bad string");
  if (s->failed) return pfail(c, "out of memory");
  *off = at;
  *len = s->len - at;
  *in = 0;
  c->p = e;
  return 0;
}

/* A key: a JSON string, or {"__bytes__":"<base64>"} for bytes that are
 * not UTF-8 (the codec's form, put_key below). */
static int pkey(pctx *c, proto *pr) {
  if (ppeek(c) != '{') return pstring(c, &pr->koff, &pr->klen, &pr->kin);
  c->p++;
  size_t off, len;
  int in;
  if (pstring(c, &off, &len, &in)) return -1;
  if (len != 9 || memcmp((in ? c->start : c->t->x->side.data) + off, "__bytes__", 9) != 0)
    return pfail(c, "leaf key is not a string");
  if (pexpect(c, ':')) return -1;
  /* the base64 text, then decoded in place at the side buffer's end */
  mydb_buf *s = &c->t->x->side;
  if (pstring(c, &off, &len, &in)) return -1;
  mydb_buf tmp = MYDB_BUF_INIT;
  mydb_buf_put(&tmp, (in ? c->start : s->data) + off, len);
  if (tmp.failed || mydb__b64_decode(&tmp) != 0) {
    int bad = !tmp.failed;
    mydb_buf_free(&tmp);
    return pfail(c, bad ? "bad base64 in __bytes__" : "out of memory");
  }
  if (!in) s->len = off; /* the text is no longer needed */
  pr->koff = s->len;
  pr->klen = tmp.len;
  pr->kin = 0;
  mydb_buf_put(s, tmp.data, tmp.len);
  mydb_buf_free(&tmp);
  if (s->failed) return pfail(c, "out of memory");
  return pexpect(c, '}');
}

/* Skips one JSON value (the grammar of lcodec.c's skip_value). */
static int pskip(pctx *c) {
  int depth = 0;
  do {
    char ch = ppeek(c);
    switch (ch) {
      case '{': case '[':
        if (++depth > 1100) return pfail(c, "nesting too deep");
        c->p++;
        break;
      case '}': case ']':
        if (--depth < 0) return pfail(c, "unbalanced");
        c->p++;
        break;
      case ',': case ':':
        if (depth == 0) return pfail(c, "unexpected separator");
        c->p++;
        break;
      case '"':
        c->p++;
        while (c->p < c->end && *c->p != '"') {
          if (*c->p == '\\' && c->end - c->p < 2) return pfail(c, "unterminated string");
          c->p += (*c->p == '\\') ? 2 : 1;
        }
        if (c->p >= c->end) return pfail(c, "unterminated string");
        c->p++;
        break;
      case 0: return pfail(c, "unexpected end");
      default:
        if (ch == '-' || (ch >= '0' && ch <= '9') || ch == 't' || ch == 'f' || ch == 'n') {
          while (c->p < c->end && *c->p != 0 && strchr("-+.eE0123456789truefalsn", *c->p)) c->p++;
        } else {
          return pfail(c, "unexpected character");
        }
    }
  } while (depth > 0);
  return 0;
}

/* {"leaf":[[key,value],...]} */
static int parse_leaf(pctx *c) {
  c->p = c->start + 8; /* past {"leaf": (checked by the caller) */
  if (pexpect(c, '[')) return -1;
  if (ppeek(c) == ']') return pfail(c, "empty leaf");
  for (;;) {
    proto *pr = pnext(c);
    if (!pr || pexpect(c, '[') || pkey(c, pr) || pexpect(c, ',')) return -1;
    pws(c);
    const char *v = c->p;
    if (pskip(c)) return -1;
    pr->voff = (size_t)(v - c->start);
    pr->vlen = (size_t)(c->p - v);
    pr->vin = 1;
    pr->count = 1;
    if (pexpect(c, ']')) return -1;
    char ch = ppeek(c);
    c->p++;
    if (ch == ']') break;
    if (ch != ',') return pfail(c, "expected ',' or ']'");
  }
  if (pexpect(c, '}')) return -1;
  pws(c);
  return c->p == c->end ? 0 : pfail(c, "trailing bytes");
}

/* {"node":[[first_key,"digest",count],...]}: the first piece format's
 * inner pieces (and roots embedded by its snapshots). */
static int parse_json_node(pctx *c) {
  c->p = c->start + 8;
  if (pexpect(c, '[')) return -1;
  if (ppeek(c) == ']') return pfail(c, "bad node");
  int64_t total = 0;
  for (;;) {
    proto *pr = pnext(c);
    if (!pr || pexpect(c, '[') || pkey(c, pr) || pexpect(c, ',')) return -1;
    size_t off, len;
    int in;
    if (pstring(c, &off, &len, &in)) return -1;
    const char *hx = (in ? c->start : c->t->x->side.data) + off;
    unsigned char raw[32];
    if (len != MYDB_DIGEST_HEX || !mydb_digest_valid(hx, len))
      return pfail(c, "bad node entry");
    mydb__unhex(raw, hx);
    mydb_buf *s = &c->t->x->side;
    if (!in) s->len = off;
    pr->voff = s->len;
    pr->vlen = 32;
    pr->vin = 0;
    mydb_buf_put(s, raw, 32);
    if (s->failed) return pfail(c, "out of memory");
    if (pexpect(c, ',')) return -1;
    pws(c);
    int64_t v = 0;
    const char *d0 = c->p;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
      if (v > (INT64_MAX - 9) / 10) return pfail(c, "bad node entry");
      v = v * 10 + (*c->p++ - '0');
    }
    if (c->p == d0 || v < 1 || (c->p - d0 > 1 && *d0 == '0')) return pfail(c, "bad node entry");
    if (v > INT64_MAX - total) return pfail(c, "record counts overflow");
    total += v;
    pr->count = v;
    if (pexpect(c, ']')) return -1;
    char ch = ppeek(c);
    c->p++;
    if (ch == ']') break;
    if (ch != ',') return pfail(c, "expected ',' or ']'");
  }
  if (pexpect(c, '}')) return -1;
  pws(c);
  return c->p == c->end ? 0 : pfail(c, "trailing bytes");
}

/* MAGIC, then per child: varint key length, key, raw digest, varint count. */
static int parse_bin_node(pctx *c) {
  const unsigned char *s = (const unsigned char *)c->start;
  const unsigned char *p = s + NODE_MAGIC_LEN, *end = (const unsigned char *)c->end;
  if (p == end) return pfail(c, "inner piece without children");
  int64_t total = 0;
  while (p < end) {
    uint64_t kl = 0, cnt = 0;
    if (mydb__varint_get(&p, end, &kl) || kl > (uint64_t)(end - p)) return pfail(c, "bad key length");
    proto *pr = pnext(c);
    if (!pr) return -1;
    pr->koff = (size_t)(p - s);
    pr->klen = (size_t)kl;
    pr->kin = 1;
    p += kl;
    if (end - p < 32) return pfail(c, "short digest");
    pr->voff = (size_t)(p - s);
    pr->vlen = 32;
    pr->vin = 1;
    p += 32;
    if (mydb__varint_get(&p, end, &cnt) || cnt < 1 || cnt > (uint64_t)(INT64_MAX - total))
      return pfail(c, "bad record count");
    total += (int64_t)cnt;
    pr->count = (int64_t)cnt;
  }
  return 0;
}

static int kcmp(const char *a, size_t al, const char *b, size_t bl) {
  size_t m = al < bl ? al : bl;
  int r = m ? memcmp(a, b, m) : 0;
  if (r) return r;
  return (al > bl) - (al < bl);
}

/* Parses a piece's bytes into a new node (one reference, the caller's).
 * where: its digest, for the message. */
static tnode *parse_piece(ltree *t, const unsigned char digest[32], const char *bytes, size_t len) {
  pctx c = {t, bytes, bytes, bytes + len, 0, NULL};
  t->x->side.len = 0;
  t->x->side.failed = 0;
  int leaf = 0, rc;
  if (len >= NODE_MAGIC_LEN && memcmp(bytes, NODE_MAGIC, NODE_MAGIC_LEN) == 0) {
    rc = parse_bin_node(&c);
  } else if (len >= 8 && memcmp(bytes, "{\"leaf\":", 8) == 0) {
    leaf = 1;
    rc = parse_leaf(&c);
  } else if (len >= 8 && memcmp(bytes, "{\"node\":", 8) == 0) {
    rc = parse_json_node(&c);
  } else {
    rc = pfail(&c, "not a collection piece");
  }
  const char *sd = t->x->side.data ? t->x->side.data : "";
  for (size_t i = 1; rc == 0 && i < c.n; i++) {
    const proto *a = &t->x->pv[i - 1], *b = &t->x->pv[i];
    if (kcmp((a->kin ? bytes : sd) + a->koff, a->klen,
             (b->kin ? bytes : sd) + b->koff, b->klen) >= 0)
      rc = pfail(&c, "keys out of order");
  }
  char hex[MYDB_DIGEST_BUF];
  mydb__hex(hex, digest, 32);
  hex[MYDB_DIGEST_HEX] = '\0';
  if (rc) {
    if (c.why && strcmp(c.why, "out of memory") == 0) { oom(t); return NULL; }
    fail(t, "corrupt", "collection piece %s of tenant '%s' is damaged: %s", hex, t->tenant, c.why);
    return NULL;
  }
  tnode *n = node_make(t->store->nodes->pool, t->tenant, t->tenant_hash, digest, leaf, bytes, len, t->x->pv, c.n, t->x->side.data, t->x->side.len, NULL, 0);
  if (!n) oom(t);
  return n;
}

/* ---------------------------------------------------------------- loading */

static int cache_key(const ltree *t, const unsigned char digest[32], char *key) {
  size_t tl = strlen(t->tenant);
  memcpy(key, t->tenant, tl + 1);
  memcpy(key + tl + 1, digest, 32);
  return (int)(tl + 1 + 32);
}

/* Reads a piece from the store (verified) and parses it into a node not
 * yet cached, through mydb_object_read_into: served from the object cache
 * when it is there, but not added to it, and read into the buffer the
 * node cache keeps for it, not a blob of its own (the node holds a copy of
 * the bytes: the node cache is the one cache of pieces; a blob kept as
 * well doubled the memory and, filled during a large load, left a
 * 1,000,000-record scan after it at 480-520k records/s against 840-870k
 * without it: put-path.md). No look for other writers' appends unless it
 * is missing (content-addressed: what the index has is the piece). */
static tnode *read_node(ltree *t, const unsigned char digest[32]) {
  char hex[MYDB_DIGEST_BUF];
  mydb__hex(hex, digest, 32);
  hex[MYDB_DIGEST_HEX] = '\0';
  lmydb_nodes *c = t->store->nodes;
  size_t len;
  int rc = mydb_object_read_into(t->store->db, &c->rd, &c->rdcap, &len, t->tenant, hex);
  tnode *n = rc == MYDB_OK ? parse_piece(t, digest, c->rd, len) : NULL;
  if (c->rdcap > ((size_t)1 << 20)) { /* (not kept for a piece that large) */
    free(c->rd);
    c->rd = NULL;
    c->rdcap = 0;
  }
  if (rc != MYDB_OK) fail(t, mydb_errcode_name(rc), "%s", mydb_errmsg());
  return n;
}

/* The node of a digest: built or seeded here, cached, or read from the
 * store (verified) and parsed. Valid until the operation ends. */
static tnode *load(ltree *t, const unsigned char digest[32]) {
  pend *p = pend_get(t, digest);
  if (p) return p->node;
  char key[MYDB_TENANT_MAX + 1 + 32];
  int kl = cache_key(t, digest, key);
  tnode *n = cache_get(t->store->nodes, node_hash(t->tenant_hash, digest), key, (size_t)kl);
  if (n) {
    n->refs++;
    return hold(t, n) ? NULL : n;
  }
  n = read_node(t, digest);
  if (!n) return NULL;
  cache_put(t->store->nodes, n);
  return hold(t, n) ? NULL : n;
}

/* The node of a digest if this handle has it at hand (pending or cached),
 * without reading the store; NULL otherwise. */
static const tnode *known_node(ltree *t, const unsigned char digest[32]) {
  pend *p = pend_get(t, digest);
  if (p) return p->node;
  char key[MYDB_TENANT_MAX + 1 + 32];
  int kl = cache_key(t, digest, key);
  return cache_get(t->store->nodes, node_hash(t->tenant_hash, digest), key, (size_t)kl);
}

/* Drops the piece a written one replaces from the node cache: the next
 * write walks the new piece, and the old one's block goes back to the pool
 * for the next piece built (else the cache fills with superseded versions
 * and every piece built takes fresh memory: measured as a fifth of a put
 * in malloc and page faults). Only a cache eviction: a read of an old
 * version loads it again. */
static void cache_forget(ltree *t, const unsigned char digest[32]) {
  char key[MYDB_TENANT_MAX + 1 + 32];
  int kl = cache_key(t, digest, key);
  tnode *n = cache_get(t->store->nodes, node_hash(t->tenant_hash, digest), key, (size_t)kl);
  if (n) cache_drop(t->store->nodes, n);
}

/* ------------------------------------------------------- the boundary rule */

static uint64_t chunk_hash(const char *key, size_t klen) {
  unsigned char md[32];
  if (mydb__sha256(md, key, klen) != 0) memset(md, 0, sizeof md); /* never */
  uint64_t h = 0;
  for (int i = 0; i < 8; i++) h = h << 8 | md[i];
  return h;
}

/* splitmix64's finalizer over the key's hash salted by the level; the top
 * 32 bits (collection.lua's level_hash, in the same wrap-around integers). */
static uint64_t level_hash(uint64_t h, int level) {
  uint64_t z = h + (uint64_t)(level + 1) * 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return (z ^ (z >> 31)) >> 32;
}

/* The chunk hashes of keys, memoized per store handle: a put re-cuts the
 * rest of its leaf from the insertion on, and the leaf was mostly parsed
 * afresh (a written leaf is not kept in the node cache), so its keys' hashes
 * were computed again each time: ~22 SHA-256 calls a put, 1 of them for the
 * new key. Direct-mapped by mydb__hash of the key; a slot holds the key
 * itself (keys up to KMEMO_KEY bytes; longer ones are not memoized), so a
 * hit is exact: the hash is a function of the key's bytes alone. */
#define KMEMO_SLOTS 32768 /* a power of 2; 1 MiB a store handle */
#define KMEMO_KEY 23

typedef struct kmemo {
  uint64_t hash;
  unsigned char klen; /* 0: empty (an empty key is never memoized) */
  char key[KMEMO_KEY];
} kmemo;

static uint64_t memo_hash(lmydb_nodes *c, const char *key, size_t klen) {
  if (!c || klen == 0 || klen > KMEMO_KEY) return chunk_hash(key, klen);
  if (!c->km) {
    c->km = calloc(KMEMO_SLOTS, sizeof *c->km);
    if (!c->km) return chunk_hash(key, klen); /* (no memo: still correct) */
  }
  kmemo *m = &c->km[mydb__hash(key, klen) & (KMEMO_SLOTS - 1)];
  if (m->klen == klen && memcmp(m->key, key, klen) == 0) return m->hash;
  uint64_t h = chunk_hash(key, klen);
  m->hash = h;
  m->klen = (unsigned char)klen;
  memcpy(m->key, key, klen);
  return h;
}

static uint64_t item_hash(lmydb_nodes *c, citem *it) {
  if (it->src && it->src->has_hash) return it->src->hash;
  uint64_t h = memo_hash(c, it->key, it->klen);
  if (it->src) {
    it->src->hash = h;
    it->src->has_hash = 1;
  }
  return h;
}

/* collection.closes: does a piece of `before` bytes close after the item
 * of `size` bytes? */
static int closes(lmydb_nodes *c, citem *it, int level, size_t before,
                  size_t size) {
  size_t s = before + size;
  if (s < MIN_PIECE) return 0;
  if (s >= MAX_PIECE) return 1;
  uint64_t a = s / 8, b = before / 8;
  return level_hash(item_hash(c, it), level) < a * a * a * a - b * b * b * b;
}

/* ----------------------------------------------------------------- pieces */

static void put_key(mydb_buf *b, const char *k, size_t kl) {
  if (mydb_utf8_valid(k, kl)) {
    mydb_json_put_string(b, k, kl);
  } else {
    mydb_buf_puts(b, "{\"__bytes__\":\"");
    mydb__b64_encode(b, (const unsigned char *)k, kl);
    mydb_buf_puts(b, "\"}");
  }
}

static void put_varint(mydb_buf *b, uint64_t v) {
  unsigned char tmp[MYDB_VARINT_MAX];
  mydb_buf_put(b, tmp, mydb__varint_put(tmp, v));
}

/* The first bytes of a piece built from prev (the piece it replaces) are
 * often prev's: an edit lands part-way through, and the items before it
 * encode as before. Hashes the new bytes from the first stride that
 * differs, prev's states standing for the strides before (none when prev
 * kept none: read, not built here); t->x->st holds every stride's state
 * after. A put into a 2 KiB leaf then hashes about half of it, and so for
 * each inner piece on the path. */
static int hash_piece(ltree *t, unsigned char digest[32], const mydb_buf *o, const tnode *prev) {
  size_t nst = o->len / MYDB_SHA_STRIDE, same = 0;
  if (grow((void **)&t->x->st, &t->x->stcap, nst + 1, sizeof *t->x->st)) return oom(t);
  if (prev && prev->nck) {
    size_t most = nst < prev->nck ? nst : prev->nck;
    while (same < most && memcmp(o->data + same * MYDB_SHA_STRIDE, prev->bytes + same * MYDB_SHA_STRIDE,
                                 MYDB_SHA_STRIDE) == 0)
      same++;
    memcpy(t->x->st, prev->ck, same * sizeof *t->x->st);
  }
  if (mydb__sha256_strides(digest, o->data, o->len, same * MYDB_SHA_STRIDE, t->x->st) != 0)
    return fail(t, "io", "%s", mydb_errmsg());
  return 0;
}

/* Builds the piece of items[0..n) at a level (0: a leaf), hashes it once
 * (from where it differs from prev, the piece it replaces, if any), and
 * keeps it pending. Returns its node (the session holds it). */
static tnode *make_piece(ltree *t, int level, const citem *items, size_t n, const tnode *prev) {
  mydb_buf *o = &t->x->out, *s = &t->x->side;
  o->len = 0;
  s->len = 0;
  if (grow((void **)&t->x->pv, &t->x->pcap, n, sizeof *t->x->pv)) { oom(t); return NULL; }
  int64_t total = 0;
  if (level == 0) {
    mydb_buf_puts(o, "{\"leaf\":[");
    for (size_t i = 0; i < n; i++) {
      proto *pr = &t->x->pv[i];
      memset(pr, 0, sizeof *pr);
      if (i) mydb_buf_putc(o, ',');
      mydb_buf_putc(o, '[');
      put_key(o, items[i].key, items[i].klen);
      mydb_buf_putc(o, ',');
      pr->koff = s->len;
      pr->klen = items[i].klen;
      mydb_buf_put(s, items[i].key, items[i].klen);
      pr->voff = o->len;
      pr->vlen = items[i].vlen;
      pr->vin = 1;
      mydb_buf_put(o, items[i].val, items[i].vlen);
      mydb_buf_putc(o, ']');
    }
    mydb_buf_puts(o, "]}");
  } else {
    mydb_buf_put(o, NODE_MAGIC, NODE_MAGIC_LEN);
    for (size_t i = 0; i < n; i++) {
      proto *pr = &t->x->pv[i];
      memset(pr, 0, sizeof *pr);
      if (items[i].count > INT64_MAX - total) {
        fail(t, "corrupt", "collection tree of tenant '%s': record counts overflow", t->tenant);
        return NULL;
      }
      total += items[i].count;
      put_varint(o, items[i].klen);
      pr->koff = o->len;
      pr->klen = items[i].klen;
      pr->kin = 1;
      mydb_buf_put(o, items[i].key, items[i].klen);
      pr->voff = o->len;
      pr->vlen = 32;
      pr->vin = 1;
      mydb_buf_put(o, items[i].val, 32);
      put_varint(o, (uint64_t)items[i].count);
      pr->count = items[i].count;
    }
  }
  if (o->failed || s->failed) {
    o->failed = s->failed = 0;
    oom(t);
    return NULL;
  }
  for (size_t i = 0; i < n; i++) {
    titem *src = items[i].src;
    if (src && src->has_hash) {
      t->x->pv[i].hash = src->hash;
      t->x->pv[i].has_hash = 1;
    }
  }
  unsigned char digest[32];
  if (hash_piece(t, digest, o, prev)) return NULL;
  pend *p = pend_get(t, digest);
  if (p) {
    /* built before in this session (the same bytes), or a seed: now a
     * piece of the tree that flush writes if the root reaches it (as
     * collection.lua's t.pending) */
    p->seed = 0;
    return p->node;
  }
  tnode *nd = node_make(t->store->nodes->pool, t->tenant, t->tenant_hash, digest, level == 0, o->data, o->len, t->x->pv, n, s->data, s->len, t->x->st, o->len / MYDB_SHA_STRIDE);
  if (!nd) { oom(t); return NULL; }
  p = pend_add(t, nd, 0);
  node_unref(nd); /* the pending entry holds it */
  if (!p) { oom(t); return NULL; }
  return nd;
}

/* collection.lua's t.base[d] = base, where a base built in this session
 * (pending) stands for the one it replaced. */
static void set_base(ltree *t, tnode *d, const unsigned char *base) {
  if (!base || memcmp(base, d->digest, 32) == 0) return;
  pend *pb = pend_get(t, base);
  pend *pd = pend_get(t, d->digest);
  if (!pd) return;
  if (pb && !pb->seed) {
    pd->has_base = pb->has_base;
    memcpy(pd->base, pb->base, 32);
  } else {
    pd->has_base = 1;
    memcpy(pd->base, base, 32);
  }
}

/* ----------------------------------------------------------------- cutter */

/* The most old pieces a cut remembers as bases (cut_step). */
#define CUT_BASES 8

typedef struct cutter {
  ltree *t;
  int level;
  vec *out;
  /* the old pieces the next pieces cut replace, in key order: each piece
   * cut takes the first as its base (a backend may store the new piece as
   * the bytes that differ from it) */
  const tnode *bases[CUT_BASES];
  size_t nbases;
  size_t size;
} cutter;

static int cut_close(cutter *c) {
  ltree *t = c->t;
  tnode *nd = make_piece(t, c->level, t->x->cut.v, t->x->cut.n, c->nbases ? c->bases[0] : NULL);
  if (!nd) return -1;
  citem e = {nd->items[0].key, nd->items[0].klen, (const char *)nd->digest, 32, nd->total,
             &nd->items[0]};
  if (vec_push(t, c->out, &e)) return -1;
  if (c->nbases) {
    set_base(t, nd, c->bases[0]->digest);
    memmove(c->bases, c->bases + 1, --c->nbases * sizeof c->bases[0]);
  }
  t->x->cut.n = 0;
  c->size = 0;
  return 0;
}

static size_t item_size(const cutter *c, const citem *it) {
  return it->klen + (c->level == 0 ? it->vlen : NODE_ITEM);
}

/* Adds an item; 1 when it closed the piece, 0 when not, -1 on failure. */
static int cut_add(cutter *c, citem it) {
  if (vec_push(c->t, &c->t->x->cut, &it)) return -1;
  size_t before = c->size, sz = item_size(c, &it);
  c->size = before + sz;
  if (closes(c->t->store->nodes, &c->t->x->cut.v[c->t->x->cut.n - 1],
             c->level, before, sz))
    return cut_close(c) ? -1 : 1;
  return 0;
}

/* Adds old's last item, the cut so far holding old's other items in
 * order: when it closes the piece, that piece is old itself, which goes
 * to out as it is (its bytes are not built and hashed again) and the next
 * piece cut gets no base until the caller gives one (cut_step). 1 when
 * it closed, 0 when not, -1 on failure. */
static int cut_add_old_last(cutter *c, citem it, tnode *old) {
  ltree *t = c->t;
  if (vec_push(t, &t->x->cut, &it)) return -1;
  size_t before = c->size, sz = item_size(c, &it);
  c->size = before + sz;
  if (!closes(t->store->nodes, &t->x->cut.v[t->x->cut.n - 1], c->level, before, sz)) return 0;
  pend *p = pend_get(t, old->digest);
  if (p) p->seed = 0; /* (as make_piece: now a piece of the tree) */
  citem e = {old->items[0].key, old->items[0].klen, (const char *)old->digest, 32, old->total,
             &old->items[0]};
  if (vec_push(t, c->out, &e)) return -1;
  t->x->cut.n = 0;
  c->size = 0;
  c->nbases = 0; /* (old was the base: it stays) */
  return 1;
}

/* The cut went on into the old piece old: it is the base of a piece cut
 * after those the bases before it go to. So every old piece a recut
 * replaces is some new piece's base, unless more old pieces were merged
 * than new ones cut: the pack stores that piece as a delta on it, and the
 * flush drops it from the node cache (a put that moved a boundary left the
 * old next piece cached and wrote the new one whole: 0.37 leaves a put
 * under random puts into 10,000-22,000 records). */
static void cut_step(cutter *c, const tnode *old) {
  if (c->nbases < CUT_BASES) c->bases[c->nbases++] = old;
}

/* Adds an item known not to close the piece. */
static int cut_carry(cutter *c, citem it) {
  if (vec_push(c->t, &c->t->x->cut, &it)) return -1;
  c->size += item_size(c, &it);
  return 0;
}

static int cut_finish(cutter *c) { return c->t->x->cut.n ? cut_close(c) : 0; }

static void cut_init(cutter *c, ltree *t, int level, vec *out, const tnode *base) {
  c->t = t;
  c->level = level;
  c->out = out;
  c->bases[0] = base;
  c->nbases = base != NULL;
  c->size = 0;
  t->x->cut.n = 0;
  out->n = 0;
}

/* ---------------------------------------------------------------- walking */

static size_t floor_index(const tnode *n, const char *key, size_t kl) {
  if (kcmp(key, kl, n->items[0].key, n->items[0].klen) < 0) return 0;
  size_t lo = 0, hi = n->n - 1;
  while (lo < hi) {
    size_t mid = lo + (hi - lo + 1) / 2;
    if (kcmp(n->items[mid].key, n->items[mid].klen, key, kl) <= 0) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/* Index of key in a leaf (1), or its insertion point (0). */
static int find(const tnode *n, const char *key, size_t kl, size_t *at) {
  size_t lo = 0, hi = n->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int r = kcmp(n->items[mid].key, n->items[mid].klen, key, kl);
    if (r == 0) { *at = mid; return 1; }
    if (r < 0) lo = mid + 1;
    else hi = mid;
  }
  *at = lo;
  return 0;
}

/* The path from root to the leaf where key lives or would go (key NULL:
 * the first leaf), into t->x->path[0..H] (0 the leaf). Returns H, or -1. */
static int descend(ltree *t, const unsigned char *root, const char *key, size_t kl) {
  pstep chain[MAX_HEIGHT + 1];
  int depth = 0;
  const unsigned char *d = root;
  for (;;) {
    if (depth > MAX_HEIGHT)
      return fail(t, "corrupt", "collection tree of tenant '%s' is too deep", t->tenant);
    tnode *n = load(t, d);
    if (!n) return -1;
    size_t idx = 0;
    if (!n->leaf && key) idx = floor_index(n, key, kl);
    chain[depth].node = n;
    chain[depth].idx = idx;
    depth++;
    if (n->leaf) break;
    d = (const unsigned char *)n->items[idx].val;
  }
  int H = depth - 1;
  for (int h = 0; h <= H; h++) t->x->path[h] = chain[depth - 1 - h];
  return H;
}

/* Moves path P at height h to the next piece (collection.lua's step with
 * dir = 1, in place; the levels below h are left stale). 1 moved, 0 at
 * the end of the level, -1 failed. */
static int step(ltree *t, pstep *P, int h, int H) {
  int a = h + 1;
  while (a <= H && P[a].idx + 1 >= P[a].node->n) a++;
  if (a > H) return 0;
  P[a].idx++;
  for (int g = a - 1; g >= h; g--) {
    pstep *up = &P[g + 1];
    tnode *child = load(t, (const unsigned char *)up->node->items[up->idx].val);
    if (!child) return -1;
    if (child->leaf != (g == 0))
      return fail(t, "corrupt", "collection tree of tenant '%s' has leaves at different depths", t->tenant);
    P[g].node = child;
    P[g].idx = 0;
  }
  return 1;
}

/* -------------------------------------------------------------- updating */

/* collection.lua's recut: cuts level h again where a change replaced items
 * (see there). start: the path of the change; s: the index of the first
 * replaced item in start[h]; span old items replaced by nw; the entries of
 * level h+1 go to out, *pieces the old level-h pieces they replace. */
static int recut(ltree *t, int h, int H, size_t s, size_t span, vec *nw, vec *out, size_t *pieces) {
  tnode *node = t->x->path[h].node;
  const tnode *base = node;
  out->n = 0;
  /* One item replaced by one of the same key and size: every boundary
   * stays; the piece keeps its items but that one. */
  if (span == 1 && nw->n == 1 && s < node->n &&
      kcmp(nw->v[0].key, nw->v[0].klen, node->items[s].key, node->items[s].klen) == 0 &&
      (h > 0 || nw->v[0].vlen == node->items[s].vlen)) {
    t->x->cut.n = 0;
    for (size_t i = 0; i < node->n; i++) {
      citem it = item_of(&node->items[i]);
      if (i == s) {
        it.val = nw->v[0].val;
        it.vlen = nw->v[0].vlen;
        it.count = nw->v[0].count;
      }
      if (vec_push(t, &t->x->cut, &it)) return -1;
    }
    tnode *nd = make_piece(t, h, t->x->cut.v, t->x->cut.n, base);
    if (!nd) return -1;
    set_base(t, nd, base->digest);
    citem e = {nd->items[0].key, nd->items[0].klen, (const char *)nd->digest, 32, nd->total,
               &nd->items[0]};
    if (vec_push(t, out, &e)) return -1;
    *pieces = 1;
    return 0;
  }
  pstep *P = t->x->walk;
  for (int g = 0; g <= H; g++) P[g] = t->x->path[g];
  cutter c;
  cut_init(&c, t, h, out, base);
  int closed = 0;
  /* (an old piece closes at its last item only: that one is tested again.
   * A record added after a leaf's last one, the leaf not the root: when
   * that last record ends the leaf, the leaf stays as it is, and the piece
   * that starts with the new record replaces the next leaf, its base.) */
  int after_leaf = h == 0 && H > 0 && s == node->n;
  for (size_t i = 0; i < s; i++) {
    int r = i + 1 < node->n ? cut_carry(&c, item_of(&node->items[i]))
            : after_leaf    ? cut_add_old_last(&c, item_of(&node->items[i]), node)
                            : cut_add(&c, item_of(&node->items[i]));
    if (r < 0) return -1;
    closed = r;
  }
  for (size_t i = 0; i < nw->n; i++) {
    int r = cut_add(&c, nw->v[i]);
    if (r < 0) return -1;
    closed = r;
  }
  /* skip the span: j is the first old item after it, in piece P[h] */
  size_t np = 1, j = s + span;
  while (j > node->n) {
    j -= node->n;
    int r = step(t, P, h, H);
    if (r < 0) return -1;
    if (r == 0) return fail(t, "corrupt", "collection tree of tenant '%s' ends early", t->tenant);
    np++;
    node = P[h].node;
    cut_step(&c, node);
  }
  if (j >= node->n && closed) { *pieces = np; return 0; }
  for (;;) {
    if (j >= node->n) {
      int r = step(t, P, h, H);
      if (r < 0) return -1;
      if (r == 0) break; /* the end of the level */
      np++;
      node = P[h].node;
      j = 0;
      cut_step(&c, node);
    }
    int r = cut_add(&c, item_of(&node->items[j]));
    if (r < 0) return -1;
    if (r == 1 && j + 1 == node->n) { *pieces = np; return 0; }
    j++;
  }
  if (cut_finish(&c)) return -1;
  *pieces = np;
  return 0;
}

/* Cuts a whole level's items (in) into pieces; their entries into out. */
static int build_level(ltree *t, int level, const vec *in, vec *out) {
  cutter c;
  cut_init(&c, t, level, out, NULL);
  for (size_t i = 0; i < in->n; i++)
    if (cut_add(&c, in->v[i]) < 0) return -1;
  return cut_finish(&c);
}

/* Stacks levels above the entries in t->x->lv[cur] until one piece remains;
 * a root with a single child is replaced by that child. *root: NULL for an
 * empty tree, else the node. */
static int finish_root(ltree *t, int level, int cur, tnode **root) {
  while (t->x->lv[cur].n > 1) {
    if (build_level(t, level, &t->x->lv[cur], &t->x->lv[1 - cur])) return -1;
    cur = 1 - cur;
    level++;
  }
  *root = NULL;
  if (t->x->lv[cur].n == 0) return 0;
  tnode *n = load(t, (const unsigned char *)t->x->lv[cur].v[0].val);
  if (!n) return -1;
  while (!n->leaf && n->n == 1) {
    n = load(t, (const unsigned char *)n->items[0].val);
    if (!n) return -1;
  }
  *root = n;
  return 0;
}

/* Builds a tree from the sorted items in t->x->items. */
static int build_tree(ltree *t, tnode **root) {
  *root = NULL;
  if (t->x->items.n == 0) return 0;
  if (build_level(t, 0, &t->x->items, &t->x->lv[0])) return -1;
  return finish_root(t, 1, 0, root);
}

/* collection.update: key set to val (NULL deletes). *root in and out (raw
 * digest, or NULL); *delta the change in count; *changed. */
static int update_one(ltree *t, const unsigned char **root, const char *key, size_t kl,
                      const char *val, size_t vl, int64_t *delta, int *changed,
                      const titem **old) {
  *changed = 0;
  *delta = 0;
  if (old) *old = NULL;
  if (!*root) {
    if (!val) return 0;
    citem it = {key, kl, val, vl, 1, NULL};
    t->x->items.n = 0;
    if (vec_push(t, &t->x->items, &it)) return -1;
    tnode *r;
    if (build_tree(t, &r)) return -1;
    *root = r->digest;
    *delta = 1;
    *changed = 1;
    return 0;
  }
  int H = descend(t, *root, key, kl);
  if (H < 0) return -1;
  tnode *leaf = t->x->path[0].node;
  size_t at;
  int found = find(leaf, key, kl, &at);
  vec *nw = &t->x->lv[0];
  nw->n = 0;
  size_t span;
  if (found && old) *old = &leaf->items[at]; /* held with the path until release_held */
  if (found) {
    if (!val) {
      span = 1;
      *delta = -1;
    } else {
      if (leaf->items[at].vlen == vl && memcmp(leaf->items[at].val, val, vl) == 0) return 0;
      citem it = {key, kl, val, vl, 1, &leaf->items[at]};
      if (vec_push(t, nw, &it)) return -1;
      span = 1;
    }
  } else {
    if (!val) return 0;
    citem it = {key, kl, val, vl, 1, NULL};
    if (vec_push(t, nw, &it)) return -1;
    span = 0;
    *delta = 1;
  }
  int cur = 0;
  size_t pieces;
  if (recut(t, 0, H, at, span, &t->x->lv[cur], &t->x->lv[1 - cur], &pieces)) return -1;
  cur = 1 - cur;
  for (int h = 1; h <= H; h++) {
    if (recut(t, h, H, t->x->path[h].idx, pieces, &t->x->lv[cur], &t->x->lv[1 - cur], &pieces)) return -1;
    cur = 1 - cur;
  }
  tnode *r;
  if (finish_root(t, H + 1, cur, &r)) return -1;
  *root = r ? r->digest : NULL;
  *changed = 1;
  return 0;
}

/* ------------------------------------------------- grouped batch updates */

/* An edit of one level's sequence of items, by key: set (a record, or the
 * entry of a new piece) or delete. */
typedef struct kedit {
  citem it;
  int del;
} kedit;

typedef struct kedits {
  kedit *v;
  size_t n, cap;
} kedits;

static int kedit_push(ltree *t, kedits *e, const citem *it, int del) {
  if (grow((void **)&e->v, &e->cap, e->n + 1, sizeof *e->v)) return oom(t);
  e->v[e->n].it = *it;
  e->v[e->n].del = del;
  e->n++;
  return 0;
}

/* The path from root (at height H) down to the piece of level h where key
 * lives or would go, into t->x->path[h..H]. */
static int descend_to(ltree *t, const unsigned char *root, int H, int h, const char *key, size_t kl) {
  const unsigned char *d = root;
  for (int g = H;; g--) {
    tnode *n = load(t, d);
    if (!n) return -1;
    if (n->leaf != (g == 0))
      return fail(t, "corrupt", "collection tree of tenant '%s' has leaves at different depths", t->tenant);
    t->x->path[g].node = n;
    t->x->path[g].idx = 0;
    if (g == h) return 0;
    size_t idx = floor_index(n, key, kl);
    t->x->path[g].idx = idx;
    d = (const unsigned char *)n->items[idx].val;
  }
}

/* Applies the sorted edits E to level h of the tree (root at height H):
 * each run of old pieces the edits touch is cut again from its first
 * piece's start until the new cut meets an old boundary (from there the
 * items, so the pieces, are the old ones: the chunking depends only on the
 * items since the last boundary). The entries of level h+1 that change go
 * to F as edits (h < H), or, at the root's level, every new entry to
 * t->x->lv[0]. */
static int apply_level(ltree *t, const unsigned char *root, int H, int h, const kedits *E, kedits *F) {
  size_t i = 0;
  vec *nw = &t->x->lv[0];
  vec *olds = &t->x->lv[1];
  F->n = 0;
  if (h == H) nw->n = 0;
  while (i < E->n) {
    if (descend_to(t, root, H, h, E->v[i].it.key, E->v[i].it.klen)) return -1;
    pstep *P = t->x->path;
    tnode *node = P[h].node;
    size_t first_new = h == H ? 0 : nw->n;
    if (h != H) nw->n = first_new = 0;
    olds->n = 0;
    citem oe = {node->items[0].key, node->items[0].klen, (const char *)node->digest, 32, node->total, NULL};
    if (vec_push(t, olds, &oe)) return -1;
    cutter c;
    c.t = t;
    c.level = h;
    c.out = nw;
    c.bases[0] = node;
    c.nbases = 1;
    c.size = 0;
    t->x->cut.n = 0;
    size_t j = 0;
    int edited = 0;
    for (;;) {
      if (j < node->n) {
        titem *oi = &node->items[j];
        int cmp = i < E->n ? kcmp(E->v[i].it.key, E->v[i].it.klen, oi->key, oi->klen) : 1;
        int r = 0;
        if (cmp < 0) {
          if (!E->v[i].del) r = cut_add(&c, E->v[i].it);
          i++;
        } else if (cmp == 0) {
          if (!E->v[i].del) {
            citem it = E->v[i].it;
            it.key = oi->key;
            it.src = oi;
            r = cut_add(&c, it);
          }
          i++;
          j++;
        } else {
          /* before the region's first edit, the old piece's own items: it
           * closed at its last one only (no chunk hash needed before) */
          r = !edited && j + 1 < node->n ? cut_carry(&c, item_of(oi)) : cut_add(&c, item_of(oi));
          j++;
        }
        if (cmp <= 0) edited = 1;
        if (r < 0) return -1;
        continue;
      }
      /* the end of an old piece: go on to the next one unless the new cut
       * has met this boundary and no edit falls before the next piece */
      int r = step(t, P, h, H);
      if (r < 0) return -1;
      if (r == 0) {
        for (; i < E->n; i++)
          if (!E->v[i].del && cut_add(&c, E->v[i].it) < 0) return -1;
        if (cut_finish(&c)) return -1;
        break;
      }
      tnode *next = P[h].node;
      if (t->x->cut.n == 0 && (i >= E->n || kcmp(E->v[i].it.key, E->v[i].it.klen, next->items[0].key, next->items[0].klen) >= 0))
        break;
      citem ne = {next->items[0].key, next->items[0].klen, (const char *)next->digest, 32, next->total, NULL};
      if (vec_push(t, olds, &ne)) return -1;
      node = next;
      j = 0;
      cut_step(&c, node); /* (a base for a piece cut past the first) */
    }
    if (h == H) continue;
    /* level h+1's edits: the old entries deleted, the new ones set (both
     * in key order); an entry the same as the old one is no edit */
    size_t a = 0, b = first_new;
    while (a < olds->n || b < nw->n) {
      int cmp = a >= olds->n ? 1 : b >= nw->n ? -1
                : kcmp(olds->v[a].key, olds->v[a].klen, nw->v[b].key, nw->v[b].klen);
      if (cmp == 0 && memcmp(olds->v[a].val, nw->v[b].val, 32) == 0) {
        a++;
        b++;
      } else if (cmp <= 0 && cmp != 0) {
        if (kedit_push(t, F, &olds->v[a], 1)) return -1;
        a++;
      } else {
        if (kedit_push(t, F, &nw->v[b], 0)) return -1;
        b++;
        if (cmp == 0) a++;
      }
    }
  }
  return 0;
}

/* update_many below the bulk threshold: the sorted changes applied level by
 * level, each touched piece cut once (the same tree as applying them one by
 * one: the cut of a level depends on its items only). */
static int update_grouped(ltree *t, const unsigned char **root, size_t n, int64_t *delta, int *changed) {
  kedits E = {0}, F = {0};
  int rc = -1;
  int H = descend(t, *root, NULL, 0);
  if (H < 0) goto done;
  /* level 0's edits, without those that change nothing, and the count */
  for (size_t i = 0; i < n; i++) {
    change *ch = &t->x->chg[i];
    if (descend_to(t, *root, H, 0, ch->key, ch->klen)) goto done;
    size_t at;
    tnode *leaf = t->x->path[0].node;
    int found = find(leaf, ch->key, ch->klen, &at);
    citem it = {ch->key, ch->klen, ch->val, ch->vlen, 1, NULL};
    if (found) {
      if (ch->val && leaf->items[at].vlen == ch->vlen && memcmp(leaf->items[at].val, ch->val, ch->vlen) == 0) continue;
      if (!ch->val) *delta -= 1;
    } else {
      if (!ch->val) continue;
      *delta += 1;
    }
    if (kedit_push(t, &E, &it, ch->val == NULL)) goto done;
  }
  if (E.n == 0) { rc = 0; goto done; }
  for (int h = 0; h <= H; h++) {
    if (apply_level(t, *root, H, h, &E, &F)) goto done;
    kedits sw = E;
    E = F;
    F = sw;
    if (h < H && E.n == 0) { rc = 0; goto done; } /* (never: a change changes its piece) */
  }
  tnode *r;
  if (finish_root(t, H + 1, 0, &r)) goto done;
  *root = r ? r->digest : NULL;
  *changed = 1;
  rc = 0;
done:
  free(E.v);
  free(F.v);
  return rc;
}

static int cmp_change(const void *a, const void *b) {
  const change *x = a, *y = b;
  return kcmp(x->key, x->klen, y->key, y->klen);
}

/* collection.update_many over t->x->chg[0..n) (sorted here). */
static int update_many(ltree *t, const unsigned char **root, int64_t count, size_t n,
                       int64_t *delta, int *changed) {
  *delta = 0;
  *changed = 0;
  qsort(t->x->chg, n, sizeof *t->x->chg, cmp_change);
  if (n > 64 && (n > (size_t)INT64_MAX / 8 || (int64_t)n * 8 > count)) {
    /* Bulk: merge the old records with the changes and rebuild. */
    t->x->items.n = 0;
    size_t j = 0;
    int ch = 0;
    if (*root) {
      int H = descend(t, *root, NULL, 0);
      if (H < 0) return -1;
      pstep *P = t->x->path;
      for (;;) {
        tnode *leaf = P[0].node;
        for (size_t i = 0; i < leaf->n; i++) {
          titem *it = &leaf->items[i];
          while (j < n && kcmp(t->x->chg[j].key, t->x->chg[j].klen, it->key, it->klen) < 0) {
            if (t->x->chg[j].val) {
              citem c = {t->x->chg[j].key, t->x->chg[j].klen, t->x->chg[j].val, t->x->chg[j].vlen, 1, NULL};
              if (vec_push(t, &t->x->items, &c)) return -1;
              ch = 1;
            }
            j++;
          }
          if (j < n && kcmp(t->x->chg[j].key, t->x->chg[j].klen, it->key, it->klen) == 0) {
            if (t->x->chg[j].val) {
              citem c = {it->key, it->klen, t->x->chg[j].val, t->x->chg[j].vlen, 1, it};
              if (vec_push(t, &t->x->items, &c)) return -1;
              if (t->x->chg[j].vlen != it->vlen || memcmp(t->x->chg[j].val, it->val, it->vlen) != 0) ch = 1;
            } else {
              ch = 1;
            }
            j++;
          } else {
            citem c = item_of(it);
            if (vec_push(t, &t->x->items, &c)) return -1;
          }
        }
        int r = step(t, P, 0, H);
        if (r < 0) return -1;
        if (r == 0) break;
      }
    }
    for (; j < n; j++) {
      if (t->x->chg[j].val) {
        citem c = {t->x->chg[j].key, t->x->chg[j].klen, t->x->chg[j].val, t->x->chg[j].vlen, 1, NULL};
        if (vec_push(t, &t->x->items, &c)) return -1;
        ch = 1;
      }
    }
    if (!ch) return 0;
    tnode *r;
    if (build_tree(t, &r)) return -1;
    *root = r ? r->digest : NULL;
    *delta = (int64_t)t->x->items.n - count;
    *changed = 1;
    return 0;
  }
  if (*root && n > 1) return update_grouped(t, root, n, delta, changed);
  for (size_t i = 0; i < n; i++) {
    int64_t d;
    int c;
    if (update_one(t, root, t->x->chg[i].key, t->x->chg[i].klen, t->x->chg[i].val, t->x->chg[i].vlen, &d, &c, NULL))
      return -1;
    if (c) {
      *delta += d;
      *changed = 1;
    }
  }
  return 0;
}

/* --------------------------------------------------------------- flushing */

/* An inner root not stored (embedded by a snapshot of the first piece
 * format): its binary form, pending. */
static tnode *restore_root(ltree *t, tnode *rn) {
  t->x->cut.n = 0;
  for (size_t i = 0; i < rn->n; i++) {
    citem it = item_of(&rn->items[i]);
    if (vec_push(t, &t->x->cut, &it)) return NULL;
  }
  return make_piece(t, 1, t->x->cut.v, t->x->cut.n, NULL);
}

/* collection.flush: writes the pending pieces root reaches (see there);
 * *rootp becomes the root as stored; *embed the leaf root's node (its
 * bytes go into the snapshot) or NULL. */
static int flush(ltree *t, tnode **rootp, int write_root, tnode **embed) {
  tnode *rn = *rootp;
  *embed = NULL;
  if (rn->leaf) {
    *embed = rn;
  } else {
    pend *p = pend_get(t, rn->digest);
    if (!p || p->seed) {
      int rc = mydb_object_exists(t->store->db, t->tenant, rn->hex);
      if (rc < 0) return fail(t, mydb_errcode_name(rc), "%s", mydb_errmsg());
      if (rc == 0) {
        rn = restore_root(t, rn);
        if (!rn) return -1;
      }
    }
  }
  *rootp = rn;
  /* depth first, as collection.lua (the order of the writes) */
  size_t sp = 0;
  t->x->cut.n = 0;
  citem top = {NULL, 0, (const char *)rn->digest, 32, 0, NULL};
  if (vec_push(t, &t->x->cut, &top)) return -1;
  sp = 1;
  while (sp > 0) {
    const unsigned char *d = (const unsigned char *)t->x->cut.v[--sp].val;
    t->x->cut.n = sp;
    pend *p = pend_get(t, d);
    if (!p || p->seed) continue;
    tnode *n = p->node;
    int has_base = p->has_base;
    unsigned char base[32];
    memcpy(base, p->base, 32);
    n->refs++;
    if (hold(t, n)) return -1;
    pend_del(t, p);
    if (!n->leaf) {
      for (size_t i = 0; i < n->n; i++) {
        citem c = {NULL, 0, n->items[i].val, 32, 0, NULL};
        if (vec_push(t, &t->x->cut, &c)) return -1;
      }
      sp = t->x->cut.n;
    }
    if (n != rn || write_root || !n->leaf) {
      char bhex[MYDB_DIGEST_BUF];
      const tnode *bn = NULL;
      if (has_base) {
        mydb__hex(bhex, base, 32);
        bhex[MYDB_DIGEST_HEX] = '\0';
        bn = known_node(t, base);
      }
      /* The piece goes into the node cache, not the object cache: the
       * next put that lands on it walks the node (no copy of its bytes
       * into a blob of its own, no parse), and its delta base is the node
       * it replaced, at hand here (measured: the blob copy was ~9% of a
       * put, most of it glibc consolidating the small chunks Lua freed). */
      int kept = cache_holds(t->store->nodes, n);
      int rc = mydb__object_write_piece(t->store->db, n->hex, t->tenant, n->bytes, n->len,
                                        has_base ? bhex : NULL, bn ? bn->bytes : NULL,
                                        bn ? bn->len : 0, !kept);
      if (rc != MYDB_OK) return fail(t, mydb_errcode_name(rc), "%s", mydb_errmsg());
      if (has_base) cache_forget(t, base);
      if (kept) cache_put(t->store->nodes, n);
    }
  }
  pend_clear(t, 0);
  return 0;
}

/* ---------------------------------------------------------------- binding */

static ltree *check_tree(lua_State *L) {
  ltree *t = luaL_checkudata(L, 1, TREE_MT);
  if (!t->store || !t->store->db || !t->store->nodes)
    lmydb_error(L, "closed", "attempt to use a closed store");
  t->x = t->store->nodes->x;
  t->code = NULL;
  release_held(t);
  return t;
}

/* Raises the operation's failure, after releasing what it held. */
static int raise_failure(lua_State *L, ltree *t) {
  release_held(t);
  return lmydb_error(L, t->code ? t->code : "io", "%s", t->msg);
}

/* A root argument: nil, or a digest (raw into out). */
static const unsigned char *opt_root(lua_State *L, int arg, unsigned char out[32]) {
  if (lua_isnoneornil(L, arg)) return NULL;
  size_t len;
  const char *s = lua_type(L, arg) == LUA_TSTRING ? lua_tolstring(L, arg, &len) : NULL;
  if (!s || !mydb_digest_valid(s, len))
    lmydb_error(L, "invalid_argument", "a root is a digest (64 lowercase hex characters) or nil");
  mydb__unhex(out, s);
  return out;
}

static void push_root(lua_State *L, const unsigned char *root) {
  if (!root) {
    lua_pushnil(L);
    return;
  }
  char hex[MYDB_DIGEST_BUF];
  mydb__hex(hex, root, 32);
  lua_pushlstring(L, hex, MYDB_DIGEST_HEX);
}

/* core.tree(store, tenant) -> session */
static int l_tree(lua_State *L) {
  lmydb_store *s = luaL_checkudata(L, 1, LMYDB_STORE_MT);
  size_t tl;
  const char *tenant = luaL_checklstring(L, 2, &tl);
  if (!mydb_tenant_valid(tenant, tl)) lmydb_error(L, "invalid_argument", "invalid tenant id");
  if (!s->db) lmydb_error(L, "closed", "attempt to use a closed store");
  if (!s->nodes) {
    lmydb_nodes *c = calloc(1, sizeof *c);
    scratch *x = calloc(1, sizeof *x);
    npool *pool = calloc(1, sizeof *pool);
    if (!c || !x || !pool) {
      free(c);
      free(x);
      free(pool);
      lmydb_error(L, "out_of_memory", "out of memory for the node cache");
    }
    pool->refs = 1; /* the store's */
    c->limit = NODE_CACHE_BYTES;
    c->x = x;
    c->pool = pool;
    s->nodes = c;
  }
  ltree *t = lua_newuserdatauv(L, sizeof *t, 1);
  memset(t, 0, sizeof *t);
  luaL_setmetatable(L, TREE_MT);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1); /* pins the store */
  t->store = s;
  memcpy(t->tenant, tenant, tl + 1);
  t->tenant_hash = mydb__hash(tenant, tl);
  return 1;
}

static int tree_gc(lua_State *L) {
  ltree *t = luaL_checkudata(L, 1, TREE_MT);
  pend_clear(t, 1);
  mydb__htab_free(&t->pend);
  memset(t, 0, sizeof *t);
  return 0;
}

/* session:seed(digest, bytes): a root piece the caller has (embedded in a
 * snapshot); trusted to be the bytes of digest. */
static int tree_seed(lua_State *L) {
  ltree *t = check_tree(L);
  unsigned char d[32];
  if (!opt_root(L, 2, d)) lmydb_error(L, "invalid_argument", "seed needs a digest");
  size_t len;
  const char *bytes = luaL_checklstring(L, 3, &len);
  if (pend_get(t, d)) return 0;
  tnode *n = parse_piece(t, d, bytes, len);
  if (!n) return raise_failure(L, t);
  pend *p = pend_add(t, n, 1);
  node_unref(n);
  if (!p) return oom(t), raise_failure(L, t);
  return 0;
}

static int tree_get(lua_State *L) {
  ltree *t = check_tree(L);
  unsigned char rb[32];
  const unsigned char *root = opt_root(L, 2, rb);
  size_t kl;
  const char *key = luaL_checklstring(L, 3, &kl);
  if (!root) return 0;
  tnode *n = load(t, root);
  int depth = 0;
  while (n && !n->leaf) {
    if (++depth > MAX_HEIGHT) {
      fail(t, "corrupt", "collection tree of tenant '%s' is too deep", t->tenant);
      n = NULL;
      break;
    }
    n = load(t, (const unsigned char *)n->items[floor_index(n, key, kl)].val);
  }
  if (!n) return raise_failure(L, t);
  size_t at;
  if (!find(n, key, kl, &at)) lua_pushnil(L);
  else lua_pushlstring(L, n->items[at].val, n->items[at].vlen);
  release_held(t);
  return 1;
}

/* An update's result: the new root (raw digest, or NULL), the change in
 * record count, whether anything changed, the item replaced. */
typedef struct updated {
  const unsigned char *root;
  int64_t delta;
  int changed;
  const titem *old;
} updated;

/* The update the arguments (root, key, raw|nil) of session:update and its
 * one-call forms ask for (nil deletes): 0, or -1 (raise_failure). */
static int update_args(lua_State *L, ltree *t, unsigned char rb[32], updated *u) {
  u->root = opt_root(L, 2, rb);
  size_t kl, vl = 0;
  const char *key = luaL_checklstring(L, 3, &kl);
  const char *val = lua_isnoneornil(L, 4) ? NULL : luaL_checklstring(L, 4, &vl);
  return update_one(t, &u->root, key, kl, val, vl, &u->delta, &u->changed, &u->old);
}

static int tree_update(lua_State *L) {
  ltree *t = check_tree(L);
  unsigned char rb[32];
  updated u;
  if (update_args(L, t, rb, &u)) return raise_failure(L, t);
  push_root(L, u.root);
  if (u.changed) lua_pushinteger(L, (lua_Integer)u.delta);
  else lua_pushboolean(L, 0);
  const titem *old = u.old;
  if (old && (lua_isnone(L, 5) || lua_toboolean(L, 5)))
    lua_pushlstring(L, old->val, old->vlen); /* (a memory error here: held nodes are
                                                released by the next check_tree) */
  else lua_pushnil(L);
  release_held(t);
  return 3;
}

static int tree_update_many(lua_State *L) {
  ltree *t = check_tree(L);
  unsigned char rb[32];
  const unsigned char *root = opt_root(L, 2, rb);
  lua_Integer count = luaL_checkinteger(L, 3);
  luaL_checktype(L, 4, LUA_TTABLE);
  size_t n = 0;
  lua_pushnil(L);
  while (lua_next(L, 4)) {
    if (lua_type(L, -2) != LUA_TSTRING ||
        !(lua_type(L, -1) == LUA_TSTRING || (lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1))))
      lmydb_error(L, "invalid_argument", "changes map string keys to strings or false");
    if (grow((void **)&t->x->chg, &t->x->chgcap, n + 1, sizeof *t->x->chg))
      lmydb_error(L, "out_of_memory", "out of memory for the changes");
    change *c = &t->x->chg[n++];
    c->key = lua_tolstring(L, -2, &c->klen); /* anchored by the table */
    c->val = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &c->vlen) : NULL;
    if (!c->val) c->vlen = 0;
    lua_pop(L, 1);
  }
  int64_t delta;
  int changed;
  if (update_many(t, &root, (int64_t)count, n, &delta, &changed)) return raise_failure(L, t);
  push_root(L, root);
  lua_pushinteger(L, (lua_Integer)delta);
  lua_pushboolean(L, changed);
  release_held(t);
  return 3;
}

/* session:build(keys, raws) -> root: keys sorted, distinct. */
static int tree_build(lua_State *L) {
  ltree *t = check_tree(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_settop(L, 3);
  lua_Integer n = (lua_Integer)lua_rawlen(L, 2);
  t->x->items.n = 0;
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, 2, i);
    lua_rawgeti(L, 3, i);
    citem c = {NULL, 0, NULL, 0, 1, NULL};
    if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
      lmydb_error(L, "invalid_argument", "build item %d is not a pair of strings", (int)i);
    c.key = lua_tolstring(L, -2, &c.klen); /* anchored by the tables */
    c.val = lua_tolstring(L, -1, &c.vlen);
    lua_pop(L, 2);
    if (vec_push(t, &t->x->items, &c)) return raise_failure(L, t);
  }
  tnode *r;
  if (build_tree(t, &r)) return raise_failure(L, t);
  push_root(L, r ? r->digest : NULL);
  release_held(t);
  return 1;
}

/* Flushes root (a leaf root written too when write_root); *out: its node
 * (NULL: no root), *embed as flush's. */
static int flush_root(ltree *t, const unsigned char *root, int write_root, tnode **out,
                      tnode **embed) {
  *out = *embed = NULL;
  if (!root) return 0;
  tnode *rn = load(t, root);
  if (!rn) return -1;
  rn->refs++; /* kept past the pending set's clearing */
  if (hold(t, rn)) return -1;
  if (flush(t, &rn, write_root, embed)) return -1;
  *out = rn;
  return 0;
}

/* session:flush(root, write_root) -> embed|nil (a leaf root's bytes), root */
static int tree_flush(lua_State *L) {
  ltree *t = check_tree(L);
  unsigned char rb[32];
  const unsigned char *root = opt_root(L, 2, rb);
  int write_root = lua_toboolean(L, 3);
  if (!root) return 0;
  tnode *rn, *embed;
  if (flush_root(t, root, write_root, &rn, &embed)) return raise_failure(L, t);
  if (embed) lua_pushlstring(L, embed->bytes, embed->len);
  else lua_pushnil(L);
  lua_pushlstring(L, rn->hex, MYDB_DIGEST_HEX);
  release_held(t);
  return 2;
}

/* session:update_flush(root, key, raw|nil) -> false when nothing changed,
 * else the change in record count, embed|nil and the root (nil: empty):
 * update, then flush (a leaf root not written: embedded), in one call - a
 * put. */
static int tree_update_flush(lua_State *L) {
  ltree *t = check_tree(L);
  unsigned char rb[32];
  updated u;
  tnode *rn, *embed;
  if (update_args(L, t, rb, &u)) return raise_failure(L, t);
  if (!u.changed) {
    release_held(t);
    lua_pushboolean(L, 0);
    return 1;
  }
  if (flush_root(t, u.root, 0, &rn, &embed)) return raise_failure(L, t);
  lua_pushinteger(L, (lua_Integer)u.delta);
  if (embed) lua_pushlstring(L, embed->bytes, embed->len);
  else lua_pushnil(L);
  if (rn) lua_pushlstring(L, rn->hex, MYDB_DIGEST_HEX);
  else lua_pushnil(L);
  release_held(t);
  return 3;
}

/* session:update_stored(root, key, raw|nil) -> the stored root | nil and
 * the change in record count (0: none): update, then flush with the root
 * written, in one call - a commit's state tree, whose new root is written
 * at once (no root string between the two, no embedded bytes). */
static int tree_update_stored(lua_State *L) {
  ltree *t = check_tree(L);
  unsigned char rb[32];
  updated u;
  tnode *rn, *embed;
  if (update_args(L, t, rb, &u) || flush_root(t, u.root, 1, &rn, &embed))
    return raise_failure(L, t);
  if (rn) lua_pushlstring(L, rn->hex, MYDB_DIGEST_HEX);
  else lua_pushnil(L);
  lua_pushinteger(L, u.changed ? (lua_Integer)u.delta : 0);
  release_held(t);
  return 2;
}

/* session:piece(digest) -> the bytes of a piece built here and not flushed
 * (or seeded), or nil. */
static int tree_piece(lua_State *L) {
  ltree *t = check_tree(L);
  unsigned char d[32];
  if (!opt_root(L, 2, d)) return 0;
  pend *p = pend_get(t, d);
  if (!p) return 0;
  lua_pushlstring(L, p->node->bytes, p->node->len);
  return 1;
}

/* session:cache_limit([bytes]) -> the budget of the store handle's node
 * cache (set first when bytes is given; the cache is trimmed to it). */
static int tree_cache_limit(lua_State *L) {
  ltree *t = check_tree(L);
  lmydb_nodes *c = t->store->nodes;
  if (!lua_isnoneornil(L, 2)) {
    lua_Integer v = luaL_checkinteger(L, 2);
    if (v < 0) lmydb_error(L, "invalid_argument", "a cache limit is a byte count");
    c->limit = (size_t)v;
    if (c->bytes > c->limit) cache_trim(c);
  }
  lua_pushinteger(L, (lua_Integer)c->limit);
  return 1;
}

/* session:pending() -> {digest = base digest | false}: the pieces built
 * and not flushed, and the piece each replaces (for the specs). */
static int tree_pending(lua_State *L) {
  ltree *t = check_tree(L);
  lua_newtable(L);
  for (size_t j = 0; j < t->pend.nb; j++)
    for (mydb__hnode *h = t->pend.b[j]; h; h = h->next) {
      pend *p = (pend *)(void *)h;
      if (p->seed) continue;
      lua_pushlstring(L, p->node->hex, MYDB_DIGEST_HEX);
      if (p->has_base) {
        char hex[MYDB_DIGEST_BUF];
        mydb__hex(hex, p->base, 32);
        lua_pushlstring(L, hex, MYDB_DIGEST_HEX);
      } else {
        lua_pushboolean(L, 0);
      }
      lua_rawset(L, -3);
    }
  return 1;
}

void lmydb_open_tree(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"seed", tree_seed},     {"get", tree_get},     {"update", tree_update},
      {"update_many", tree_update_many},              {"build", tree_build},
      {"flush", tree_flush},   {"piece", tree_piece}, {"pending", tree_pending},
      {"update_stored", tree_update_stored}, {"update_flush", tree_update_flush},
      {"cache_limit", tree_cache_limit},
      {NULL, NULL}};
  luaL_newmetatable(L, TREE_MT);
  lua_newtable(L);
  luaL_setfuncs(L, methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, tree_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  lua_pushcfunction(L, l_tree);
  lua_setfield(L, -2, "tree");
}

/* ------------------------------------------- for the readers (ltree_read.c) */

ltree *lmydb_tree_check(lua_State *L, int idx) {
  ltree *t = luaL_checkudata(L, idx, TREE_MT);
  if (!t->store || !t->store->db || !t->store->nodes)
    lmydb_error(L, "closed", "attempt to use a closed store");
  t->x = t->store->nodes->x;
  t->code = NULL;
  release_held(t);
  return t;
}

tnode *lmydb_tree_load(ltree *t, const unsigned char digest[32], int scan) {
  tnode *n;
  if (!scan) {
    if (!(n = load(t, digest))) return NULL;
    n->refs++;
    release_held(t);
    return n;
  }
  /* load() for a leaf of a long scan: kept in the cache only while the
   * cache has room, never by evicting (a scan larger than the cache would
   * turn it over for pieces read once; and a node not cached goes back to
   * the pool for the next leaf instead of the heap) */
  pend *p = pend_get(t, digest);
  char key[MYDB_TENANT_MAX + 1 + 32];
  int kl = cache_key(t, digest, key);
  lmydb_nodes *c = t->store->nodes;
  if (p) n = p->node;
  else n = cache_get(c, node_hash(t->tenant_hash, digest), key, (size_t)kl);
  if (n) {
    n->refs++;
    return n;
  }
  n = read_node(t, digest);
  /* (up to the trim goal: the inner nodes the walk loads next are cached
   * without a trim, which would evict a quarter of the cache - the leaves
   * a scan kept - each time) */
  if (n && c->bytes + n->size <= c->limit / 4 * 3) cache_put(c, n);
  return n;
}

void lmydb_tree_unref(tnode *n) { node_unref(n); }

int lmydb_tree_raise(lua_State *L, ltree *t) { return raise_failure(L, t); }

void lmydb_tree_corrupt(ltree *t, const char *why) {
  fail(t, "corrupt", "collection tree of tenant '%s' %s", t->tenant, why);
}

int lmydb_node_leaf(const tnode *n) { return n->leaf; }

size_t lmydb_node_count(const tnode *n) { return n->n; }

void lmydb_node_item(const tnode *n, size_t i, const char **key, size_t *klen, const char **val,
                     size_t *vlen) {
  const titem *it = &n->items[i];
  *key = it->key;
  *klen = it->klen;
  *val = it->val;
  *vlen = it->vlen;
}
