/*
 * cache.c - the LRU object cache.
 *
 * The cache maps (tenant, digest) to a verified blob of at most
 * MYDB__CACHE_OBJ_MAX bytes; the total of cached lengths stays within the
 * handle's budget (least recently used entries are evicted first). The
 * caller holds db->mu around every cache call.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* -------------------------------------------------------- object cache */

struct mydb__centry {
  mydb__hnode h;
  mydb__centry *prev, *next;
  mydb_blob *blob;
  char key[]; /* "tenant/digest" ("/digest" for refs) */
};

#define KEY_MAX (MYDB_TENANT_MAX + 1 + MYDB_DIGEST_HEX)

static size_t make_key(char *k, const char *tenant, const char *digest) {
  size_t tl = tenant ? strlen(tenant) : 0;
  memcpy(k, tenant ? tenant : "", tl);
  k[tl] = '/';
  memcpy(k + tl + 1, digest, MYDB_DIGEST_HEX);
  return tl + 1 + MYDB_DIGEST_HEX;
}

void mydb__cache_init(mydb__cache *c, size_t max) {
  memset(c, 0, sizeof *c);
  c->max = max;
}

static void lru_unlink(mydb__cache *c, mydb__centry *e) {
  if (e->prev) e->prev->next = e->next; else c->first = e->next;
  if (e->next) e->next->prev = e->prev; else c->last = e->prev;
  e->prev = e->next = NULL;
}

static void lru_push_front(mydb__cache *c, mydb__centry *e) {
  e->prev = NULL;
  e->next = c->first;
  if (c->first) c->first->prev = e; else c->last = e;
  c->first = e;
}

static void centry_drop(mydb__cache *c, mydb__centry *e) {
  lru_unlink(c, e);
  mydb__htab_del(&c->t, &e->h);
  c->bytes -= e->blob->len;
  mydb_blob_release(e->blob);
  free(e);
}

static mydb__centry *cache_find(const mydb__cache *c, const char *tenant,
                                const char *digest) {
  if (c->max == 0 || c->t.n == 0) return NULL;
  char k[KEY_MAX];
  size_t kl = make_key(k, tenant, digest);
  return (mydb__centry *)mydb__htab_find(&c->t, mydb__hash(k, kl), k, kl);
}

mydb_blob *mydb__cache_get(mydb__cache *c, const char *tenant,
                           const char *digest) {
  mydb__centry *e = cache_find(c, tenant, digest);
  if (!e) return NULL;
  if (c->first != e) {
    lru_unlink(c, e);
    lru_push_front(c, e);
  }
  return mydb__blob_ref(e->blob);
}

int mydb__cache_contains(const mydb__cache *c, const char *tenant,
                         const char *digest) {
  return cache_find(c, tenant, digest) != NULL;
}

void mydb__cache_put(mydb__cache *c, const char *tenant, const char *digest,
                     mydb_blob *b) {
  if (c->max == 0 || b->len > MYDB__CACHE_OBJ_MAX || b->len > c->max) return;
  char k[KEY_MAX];
  size_t kl = make_key(k, tenant, digest);
  uint64_t h = mydb__hash(k, kl);
  if (mydb__htab_find(&c->t, h, k, kl)) return; /* another thread won */
  while (c->last && c->bytes + b->len > c->max) centry_drop(c, c->last);
  mydb__centry *e = malloc(sizeof *e + kl);
  if (!e) return;
  memcpy(e->key, k, kl);
  e->h.hash = h;
  e->h.key = e->key;
  e->h.klen = kl;
  if (mydb__htab_add(&c->t, &e->h) != 0) {
    free(e);
    return;
  }
  e->blob = mydb__blob_ref(b);
  c->bytes += b->len;
  lru_push_front(c, e);
}

void mydb__cache_remove(mydb__cache *c, const char *tenant,
                        const char *digest) {
  mydb__centry *e = cache_find(c, tenant, digest);
  if (e) centry_drop(c, e);
}

void mydb__cache_free(mydb__cache *c) {
  while (c->last) centry_drop(c, c->last);
  mydb__htab_free(&c->t);
  free(c->sup);
  c->sup = NULL;
  c->nsup = 0;
}

/* ------------------------------------------------- superseded bases */

#define SUP_MAX 128 /* a put notes ~6 (its pieces' and its commit's bases) */

struct mydb__superseded {
  char tenant[MYDB_TENANT_MAX + 1];
  char digest[MYDB_DIGEST_HEX];
};

void mydb__cache_supersede(mydb__cache *c, const char *tenant,
                           const char *base) {
  if (c->max == 0 || !tenant || strlen(tenant) > MYDB_TENANT_MAX) return;
  if (!c->sup && !(c->sup = malloc(SUP_MAX * sizeof *c->sup))) return;
  if (c->nsup == SUP_MAX) return;
  struct mydb__superseded *r = &c->sup[c->nsup++];
  strcpy(r->tenant, tenant);
  memcpy(r->digest, base, MYDB_DIGEST_HEX);
}

void mydb__cache_settle(mydb__cache *c, const char *tenant, int evict) {
  size_t i = 0;
  while (i < c->nsup) {
    struct mydb__superseded *r = &c->sup[i];
    if (strcmp(r->tenant, tenant) != 0) {
      i++;
      continue;
    }
    if (evict) {
      char digest[MYDB_DIGEST_BUF];
      memcpy(digest, r->digest, MYDB_DIGEST_HEX);
      digest[MYDB_DIGEST_HEX] = '\0';
      mydb__cache_remove(c, tenant, digest);
    }
    *r = c->sup[--c->nsup]; /* (the order of notes does not matter) */
  }
}
