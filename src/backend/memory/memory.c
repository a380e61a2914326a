/*
 * memory.c - the memory backend: no files at all (not even ROOT).
 *
 * A store is a set of hash maps in the process. Handles opened on the same
 * root string share one store through a process-global registry (reference
 * counted; the store is freed when its last handle closes), so a second
 * handle sees the first one's writes and its locks exclude. Other
 * processes cannot see it, and nothing survives the process.
 *
 * The tenant lock is a flag and a condition variable of the store, so that
 * any thread may release it (mydb_close releases the locks of a handle).
 * Objects are reference-counted blobs: a read hands out a new reference.
 */
#include <stdlib.h>
#include <string.h>

#include "headmap.h"
#include "internal.h"

typedef struct mobj {
  mydb__hnode h;
  mydb_blob *blob;
  uint64_t seq; /* the store's write counter when it was stored */
  char digest[MYDB_DIGEST_HEX];
} mobj;

typedef struct mtenant {
  mydb__hnode h;
  mydb__htab objects; /* digest -> mobj */
  mydb__htab heads;   /* entry -> mydb__hentry */
  int locked;
  size_t tlen;
  char name[MYDB_TENANT_MAX + 1];
} mtenant;

typedef struct mstore {
  struct mstore *next; /* in the registry */
  size_t handles;
  pthread_mutex_t mu; /* protects everything below */
  pthread_cond_t unlocked;
  mydb__htab tenants; /* name -> mtenant */
  mydb__htab refs;    /* digest -> mobj */
  uint64_t seq;
  mydb__block *slab; /* the slab objects are carved from (see mobj_new) */
  size_t slab_used;
  char root[];
} mstore;

typedef struct mbackend {
  mydb_backend be;
  mstore *ms;
} mbackend;

static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static mstore *registry;

#define MS(be) (((mbackend *)(be))->ms)

/* ------------------------------------------------------------- helpers */

/* Objects - record, blob and bytes together - are carved from slabs of
 * SLAB_BYTES (one malloc for a few hundred of a put's objects): a malloc an
 * object cost ~14% of a put here, glibc consolidating at each request of
 * 1 KiB or more the fastbins that Lua's small frees keep filling, in a heap
 * that only grows. One larger than an eighth of a slab has a block of its
 * own. A slab goes when its last object has (gc, the store's end, a
 * reader's last reference) and it is no longer the one being filled: gc
 * gives memory back a slab at a time. */
#define SLAB_BYTES ((size_t)256 << 10)
#define OBJ_ALIGN ((size_t)16)

static size_t round_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

/* A new object (ms->mu held), or NULL when out of memory. */
static mobj *mobj_new(mstore *ms, const char *digest, const void *buf, size_t len) {
  size_t at = round_up(sizeof(mobj), _Alignof(mydb_blob));
  size_t head = round_up(sizeof(mydb__block), OBJ_ALIGN);
  if (len > SIZE_MAX / 2) return NULL;
  size_t need = round_up(at + sizeof(mydb_blob) + len + 1, OBJ_ALIGN);
  mydb__block *k;
  char *p;
  if (need > SLAB_BYTES / 8) {
    k = malloc(head + need);
    if (!k) return NULL;
    atomic_init(&k->users, 0);
    p = (char *)k + head;
  } else {
    if (!ms->slab || ms->slab_used + need > SLAB_BYTES) {
      mydb__block *nk = malloc(SLAB_BYTES);
      if (!nk) return NULL;
      atomic_init(&nk->users, 1); /* the store's, while it fills it */
      if (ms->slab) mydb__block_unuse(ms->slab);
      ms->slab = nk;
      ms->slab_used = head;
    }
    k = ms->slab;
    p = (char *)k + ms->slab_used;
    ms->slab_used += need;
  }
  atomic_fetch_add_explicit(&k->users, 1, memory_order_relaxed);
  mobj *o = (mobj *)(void *)p;
  mydb_blob *b = (mydb_blob *)(void *)(p + at);
  atomic_init(&b->refs, 1);
  b->len = len;
  b->block = k;
  memcpy(b->data, buf, len);
  b->data[len] = '\0';
  o->blob = b;
  memcpy(o->digest, digest, MYDB_DIGEST_HEX);
  o->h.hash = mydb__hash(digest, MYDB_DIGEST_HEX);
  o->h.key = o->digest;
  o->h.klen = MYDB_DIGEST_HEX;
  return o;
}

/* Drops the store's reference: o is not to be used after. */
static void mobj_free(mobj *o) { mydb_blob_release(o->blob); }

static void objs_free(mydb__htab *t) {
  for (size_t i = 0; i < t->nb; i++) {
    mydb__hnode *n = t->b[i];
    while (n) {
      mydb__hnode *next = n->next;
      mobj_free((mobj *)n);
      n = next;
    }
  }
  mydb__htab_free(t);
}

static mtenant *tenant_find(mstore *ms, const char *tenant) {
  size_t tl = strlen(tenant);
  return (mtenant *)mydb__htab_find(&ms->tenants, mydb__hash(tenant, tl),
                                    tenant, tl);
}

static int not_init(const char *tenant) {
  return mydb__seterr(MYDB_ENOTINIT, "tenant '%s' is not initialized",
                      tenant);
}

/* The object table of tenant (NULL: refs), or NULL when the tenant is not
 * initialized. ms->mu held. */
static mydb__htab *objects_of(mstore *ms, const char *tenant) {
  if (!tenant) return &ms->refs;
  mtenant *t = tenant_find(ms, tenant);
  return t ? &t->objects : NULL;
}

static mobj *obj_find(const mydb__htab *t, const char *digest) {
  return (mobj *)mydb__htab_find(t, mydb__hash(digest, MYDB_DIGEST_HEX),
                                 digest, MYDB_DIGEST_HEX);
}

/* ------------------------------------------------------------- tenants */

static int m_tenant_init(mydb_backend *be, const char *tenant) {
  mstore *ms = MS(be);
  mtenant *t = calloc(1, sizeof *t);
  if (!t) return mydb__seterr(MYDB_ENOMEM, "out of memory");
  t->tlen = strlen(tenant);
  memcpy(t->name, tenant, t->tlen);
  t->h.hash = mydb__hash(tenant, t->tlen);
  t->h.key = t->name;
  t->h.klen = t->tlen;
  pthread_mutex_lock(&ms->mu);
  int rc = MYDB_OK;
  if (tenant_find(ms, tenant)) {
    free(t); /* idempotent */
  } else if (mydb__htab_add(&ms->tenants, &t->h) != 0) {
    free(t);
    rc = mydb__seterr(MYDB_ENOMEM, "out of memory");
  }
  pthread_mutex_unlock(&ms->mu);
  return rc;
}

static int m_tenant_exists(mydb_backend *be, const char *tenant) {
  mstore *ms = MS(be);
  pthread_mutex_lock(&ms->mu);
  int r = tenant_find(ms, tenant) != NULL;
  pthread_mutex_unlock(&ms->mu);
  return r;
}

static int m_tenant_list(mydb_backend *be,
                         int (*fn)(const char *tenant, void *payload),
                         void *payload) {
  mstore *ms = MS(be);
  /* fn only collects names (store.c), but copy them anyway: it must not
   * run under the store's mutex. */
  pthread_mutex_lock(&ms->mu);
  size_t n = ms->tenants.n, k = 0;
  char (*names)[MYDB_TENANT_MAX + 1] = n ? malloc(n * sizeof *names) : NULL;
  if (n && !names) {
    pthread_mutex_unlock(&ms->mu);
    return mydb__seterr(MYDB_ENOMEM, "out of memory");
  }
  for (size_t i = 0; i < ms->tenants.nb; i++)
    for (mydb__hnode *x = ms->tenants.b[i]; x; x = x->next)
      memcpy(names[k++], ((mtenant *)x)->name, MYDB_TENANT_MAX + 1);
  pthread_mutex_unlock(&ms->mu);
  int rc = MYDB_OK;
  for (size_t i = 0; i < k && rc == 0; i++) rc = fn(names[i], payload);
  free(names);
  return rc;
}

/* ------------------------------------------------------------- objects */

static int m_object_write(mydb_backend *be, const char *tenant,
                          const char *digest, const void *buf, size_t len) {
  mstore *ms = MS(be);
  int rc = MYDB_OK;
  pthread_mutex_lock(&ms->mu);
  mydb__htab *t = objects_of(ms, tenant);
  if (!t) {
    rc = not_init(tenant);
  } else if (!obj_find(t, digest)) {
    mobj *o = mobj_new(ms, digest, buf, len);
    if (!o) {
      rc = mydb__seterr(MYDB_ENOMEM, "out of memory storing %zu bytes", len);
    } else {
      o->seq = ++ms->seq;
      if (mydb__htab_add(t, &o->h) != 0) {
        mobj_free(o);
        rc = mydb__seterr(MYDB_ENOMEM, "out of memory");
      }
    }
  }
  pthread_mutex_unlock(&ms->mu);
  return rc;
}

static int m_object_read(mydb_backend *be, mydb_blob **out,
                         const char *tenant, const char *digest) {
  mstore *ms = MS(be);
  pthread_mutex_lock(&ms->mu);
  mydb__htab *t = objects_of(ms, tenant);
  mobj *o = t ? obj_find(t, digest) : NULL;
  if (o) *out = mydb__blob_ref(o->blob);
  pthread_mutex_unlock(&ms->mu);
  if (!o)
    return mydb__seterr(MYDB_ENOTFOUND, "object %s not found in %s %s",
                        digest, mydb__where_kind(tenant),
                        mydb__where_name(tenant));
  return MYDB_OK;
}

static int m_object_exists(mydb_backend *be, const char *tenant,
                           const char *digest) {
  mstore *ms = MS(be);
  pthread_mutex_lock(&ms->mu);
  mydb__htab *t = objects_of(ms, tenant);
  int r = t && obj_find(t, digest);
  pthread_mutex_unlock(&ms->mu);
  return r;
}

/* Digests of a table (ms->mu held): n * 65 bytes, NUL-terminated each. */
static char *digests_of(const mydb__htab *t, size_t *n, uint64_t max_seq) {
  char *v = malloc(t->n ? t->n * MYDB_DIGEST_BUF : 1);
  size_t k = 0;
  if (!v) return NULL;
  for (size_t i = 0; i < t->nb; i++)
    for (mydb__hnode *x = t->b[i]; x; x = x->next) {
      const mobj *o = (const mobj *)x;
      if (o->seq > max_seq) continue;
      memcpy(v + k * MYDB_DIGEST_BUF, o->digest, MYDB_DIGEST_HEX);
      v[k * MYDB_DIGEST_BUF + MYDB_DIGEST_HEX] = '\0';
      k++;
    }
  *n = k;
  return v;
}

static int m_object_foreach(mydb_backend *be, const char *tenant,
                            int (*fn)(const char *name, void *payload),
                            void *payload) {
  mstore *ms = MS(be);
  size_t n = 0;
  pthread_mutex_lock(&ms->mu);
  mydb__htab *t = objects_of(ms, tenant);
  char *v = t ? digests_of(t, &n, UINT64_MAX) : NULL;
  pthread_mutex_unlock(&ms->mu);
  if (!t) return not_init(tenant);
  if (!v) return mydb__seterr(MYDB_ENOMEM, "out of memory");
  int rc = MYDB_OK;
  for (size_t i = 0; i < n && rc == 0; i++)
    rc = fn(v + i * MYDB_DIGEST_BUF, payload);
  free(v);
  return rc;
}

/* --------------------------------------------------------------- heads */

static int m_head_get(mydb_backend *be, char out[MYDB_DIGEST_BUF],
                      const char *tenant, size_t tlen, const char *entry,
                      size_t entry_len, int locked) {
  (void)tlen;
  (void)locked;
  mstore *ms = MS(be);
  int rc = MYDB_OK;
  pthread_mutex_lock(&ms->mu);
  mtenant *t = tenant_find(ms, tenant);
  const char *d = t ? mydb__hmap_get(&t->heads, entry, entry_len) : NULL;
  if (d) {
    memcpy(out, d, MYDB_DIGEST_HEX);
    out[MYDB_DIGEST_HEX] = '\0';
  }
  pthread_mutex_unlock(&ms->mu);
  if (!t) return not_init(tenant);
  if (!d)
    rc = mydb__seterr(MYDB_ENOTFOUND, "entry '%.*s' not found in tenant '%s'",
                      (int)(entry_len > 100 ? 100 : entry_len), entry, tenant);
  return rc;
}

static int m_head_foreach(mydb_backend *be, const char *tenant, size_t tlen,
                          int (*fn)(const char *entry, size_t entry_len,
                                    const char *digest, void *payload),
                          void *payload) {
  (void)tlen;
  mstore *ms = MS(be);
  mydb__hsnap snap;
  int rc;
  pthread_mutex_lock(&ms->mu);
  mtenant *t = tenant_find(ms, tenant);
  rc = t ? mydb__hsnap_take(&snap, &t->heads, tenant) : not_init(tenant);
  pthread_mutex_unlock(&ms->mu);
  if (rc) return rc;
  return mydb__hsnap_run(&snap, fn, payload);
}

static int m_lock_acquire(mydb_backend *be, struct mydb_lock *lk) {
  mstore *ms = MS(be);
  pthread_mutex_lock(&ms->mu);
  mtenant *t = tenant_find(ms, lk->tenant);
  if (!t) {
    pthread_mutex_unlock(&ms->mu);
    return not_init(lk->tenant);
  }
  while (t->locked) pthread_cond_wait(&ms->unlocked, &ms->mu);
  t->locked = 1;
  pthread_mutex_unlock(&ms->mu);
  lk->impl = t;
  return MYDB_OK;
}

static void m_lock_release(mydb_backend *be, struct mydb_lock *lk) {
  mstore *ms = MS(be);
  mtenant *t = lk->impl;
  if (!t) return;
  pthread_mutex_lock(&ms->mu);
  t->locked = 0;
  pthread_cond_broadcast(&ms->unlocked);
  pthread_mutex_unlock(&ms->mu);
  lk->impl = NULL;
}

static int m_head_commit(mydb_backend *be, struct mydb_lock *lk,
                         const mydb_head_change *c, size_t n,
                         const char *line, size_t len,
                         mydb__pending *pending) {
  (void)line;
  (void)len;
  (void)pending;
  mstore *ms = MS(be);
  mtenant *t = lk->impl;
  /* Every allocation first, so that the commit cannot stop half-way. */
  mydb__hentry **fresh = calloc(n, sizeof *fresh);
  if (!fresh) return mydb__seterr(MYDB_ENOMEM, "out of memory committing");
  int rc = MYDB_OK;
  for (size_t i = 0; i < n && rc == MYDB_OK; i++) {
    if (!c[i].digest) continue;
    fresh[i] = malloc(sizeof **fresh + c[i].entry_len);
    if (!fresh[i]) rc = mydb__seterr(MYDB_ENOMEM, "out of memory committing");
  }
  pthread_mutex_lock(&ms->mu);
  if (rc == MYDB_OK && t->heads.nb == 0) {
    mydb__hnode probe = {NULL, 0, "", 0}; /* allocates the buckets */
    if (mydb__htab_add(&t->heads, &probe) != 0)
      rc = mydb__seterr(MYDB_ENOMEM, "out of memory committing");
    else
      mydb__htab_del(&t->heads, &probe);
  }
  for (size_t i = 0; i < n && rc == MYDB_OK; i++) {
    uint64_t h = mydb__hash(c[i].entry, c[i].entry_len);
    mydb__hentry *e = (mydb__hentry *)mydb__htab_find(
        &t->heads, h, c[i].entry, c[i].entry_len);
    if (!c[i].digest) {
      if (e) {
        mydb__htab_del(&t->heads, &e->h);
        free(e);
      }
    } else if (e) {
      memcpy(e->digest, c[i].digest, MYDB_DIGEST_HEX);
    } else {
      e = fresh[i];
      fresh[i] = NULL;
      memcpy(e->key, c[i].entry, c[i].entry_len);
      memcpy(e->digest, c[i].digest, MYDB_DIGEST_HEX);
      e->h.hash = h;
      e->h.key = e->key;
      e->h.klen = c[i].entry_len;
      (void)mydb__htab_add(&t->heads, &e->h); /* buckets exist: cannot fail */
    }
  }
  pthread_mutex_unlock(&ms->mu);
  for (size_t i = 0; i < n; i++) free(fresh[i]);
  free(fresh);
  return rc;
}

/* ------------------------------------------------------------------ gc */

static int m_gc_begin(mydb_backend *be, const char *tenant,
                      mydb_gc_mark *mark) {
  (void)tenant;
  mstore *ms = MS(be);
  pthread_mutex_lock(&ms->mu);
  mark->a = (int64_t)ms->seq;
  pthread_mutex_unlock(&ms->mu);
  mark->b = 0;
  return MYDB_OK;
}

static int m_gc_sweep(mydb_backend *be, const char *tenant,
                      const mydb_gc_mark *mark,
                      int (*keep)(const char *digest, void *payload),
                      void *payload, mydb_gc_stats *st) {
  mstore *ms = MS(be);
  size_t n = 0;
  uint64_t max_seq = mark->a < 0 ? 0 : (uint64_t)mark->a;
  pthread_mutex_lock(&ms->mu);
  mydb__htab *t = objects_of(ms, tenant);
  char *v = t ? digests_of(t, &n, max_seq) : NULL;
  size_t total = t ? t->n : 0;
  pthread_mutex_unlock(&ms->mu);
  if (!t) return not_init(tenant);
  if (!v) return mydb__seterr(MYDB_ENOMEM, "out of memory");
  /* keep() runs without the mutex (it may read the store). */
  int rc = MYDB_OK;
  size_t ndrop = 0;
  for (size_t i = 0; i < n; i++) {
    char *d = v + i * MYDB_DIGEST_BUF;
    int k = keep(d, payload);
    if (k < 0) {
      rc = k;
      break;
    }
    if (!k) memmove(v + ndrop++ * MYDB_DIGEST_BUF, d, MYDB_DIGEST_BUF);
  }
  size_t removed = 0;
  if (rc == MYDB_OK) {
    pthread_mutex_lock(&ms->mu);
    for (size_t i = 0; i < ndrop; i++) {
      mobj *o = obj_find(t, v + i * MYDB_DIGEST_BUF);
      if (!o || o->seq > max_seq) continue;
      st->bytes_freed += o->blob->len;
      mydb__htab_del(t, &o->h);
      mobj_free(o);
      removed++;
    }
    st->objects_removed += removed;
    st->objects_kept += total - removed;
    for (size_t i = 0; i < t->nb; i++)
      for (mydb__hnode *x = t->b[i]; x; x = x->next)
        st->bytes_kept += ((mobj *)x)->blob->len;
    pthread_mutex_unlock(&ms->mu);
  }
  free(v);
  return rc;
}

/* ------------------------------------------------------- open and close */

static void mstore_free(mstore *ms) {
  for (size_t i = 0; i < ms->tenants.nb; i++) {
    mydb__hnode *x = ms->tenants.b[i];
    while (x) {
      mydb__hnode *next = x->next;
      mtenant *t = (mtenant *)x;
      objs_free(&t->objects);
      mydb__hmap_clear(&t->heads);
      free(t);
      x = next;
    }
  }
  mydb__htab_free(&ms->tenants);
  objs_free(&ms->refs);
  if (ms->slab) mydb__block_unuse(ms->slab); /* (the store's hold on it) */
  pthread_cond_destroy(&ms->unlocked);
  pthread_mutex_destroy(&ms->mu);
  free(ms);
}

static void m_free(mydb_backend *be) {
  mstore *ms = MS(be);
  pthread_mutex_lock(&registry_mu);
  if (--ms->handles == 0) {
    mstore **pp = &registry;
    while (*pp != ms) pp = &(*pp)->next;
    *pp = ms->next;
  } else {
    ms = NULL;
  }
  pthread_mutex_unlock(&registry_mu);
  if (ms) mstore_free(ms);
  free(be);
}

static const mydb_odb_ops memory_odb = {
    .version = MYDB__ODB_VERSION,
    .write = m_object_write,
    .read = m_object_read,
    .exists = m_object_exists,
    .foreach = m_object_foreach,
    .gc_begin = m_gc_begin,
    .gc_sweep = m_gc_sweep,
};

static const mydb_refdb_ops memory_refdb = {
    .version = MYDB__REFDB_VERSION,
    .get = m_head_get,
    .foreach = m_head_foreach,
    .lock_acquire = m_lock_acquire,
    .lock_release = m_lock_release,
    .commit = m_head_commit,
};

int mydb__backend_memory(mydb *db, mydb_backend **out) {
  mbackend *mb = calloc(1, sizeof *mb);
  if (!mb) return mydb__seterr(MYDB_ENOMEM, "out of memory");
  pthread_mutex_lock(&registry_mu);
  mstore *ms = registry;
  while (ms && strcmp(ms->root, db->root) != 0) ms = ms->next;
  if (!ms) {
    size_t rl = strlen(db->root);
    ms = calloc(1, sizeof *ms + rl + 1);
    if (!ms || pthread_mutex_init(&ms->mu, NULL) != 0) {
      free(ms);
      pthread_mutex_unlock(&registry_mu);
      free(mb);
      return mydb__seterr(MYDB_ENOMEM, "out of memory");
    }
    if (pthread_cond_init(&ms->unlocked, NULL) != 0) {
      pthread_mutex_destroy(&ms->mu);
      free(ms);
      pthread_mutex_unlock(&registry_mu);
      free(mb);
      return mydb__seterr(MYDB_ENOMEM, "out of memory");
    }
    memcpy(ms->root, db->root, rl + 1);
    ms->next = registry;
    registry = ms;
  }
  ms->handles++;
  pthread_mutex_unlock(&registry_mu);

  mb->ms = ms;
  mydb_backend *be = &mb->be;
  be->version = MYDB__BACKEND_VERSION;
  be->name = "memory";
  be->db = db;
  be->odb = &memory_odb;
  be->refdb = &memory_refdb;
  be->tenant_init = m_tenant_init;
  be->tenant_exists = m_tenant_exists;
  be->tenant_list = m_tenant_list;
  be->repack = NULL;
  be->check = NULL;
  be->free = m_free;
  *out = be;
  return MYDB_OK;
}
