/*
 * htab.c - an intrusive chained hash table (the object cache, the head
 * maps and the tenant states are built on it).
 */
#include <stdlib.h>
#include <string.h>

#include "htab.h"

/* ------------------------------------------------------------- hashing */

uint64_t mydb__hash(const void *p, size_t n) {
  const unsigned char *s = p;
  uint64_t h = 0x9e3779b97f4a7c15ULL ^ (uint64_t)n;
  while (n >= 8) {
    uint64_t v;
    memcpy(&v, s, 8);
    h = (h ^ v) * 0xff51afd7ed558ccdULL;
    h ^= h >> 32;
    s += 8;
    n -= 8;
  }
  uint64_t v = 0;
  memcpy(&v, s, n);
  h = (h ^ v) * 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 29;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 32;
  return h;
}

/* ---------------------------------------------------------- hash table */

mydb__hnode *mydb__htab_find(const mydb__htab *t, uint64_t hash,
                             const char *key, size_t klen) {
  if (t->nb == 0) return NULL;
  for (mydb__hnode *n = t->b[hash & (t->nb - 1)]; n; n = n->next)
    if (n->hash == hash && n->klen == klen && memcmp(n->key, key, klen) == 0)
      return n;
  return NULL;
}

static int htab_resize(mydb__htab *t, size_t nb) {
  mydb__hnode **b = calloc(nb, sizeof *b);
  if (!b) return -1;
  for (size_t i = 0; i < t->nb; i++) {
    mydb__hnode *n = t->b[i];
    while (n) {
      mydb__hnode *next = n->next;
      size_t j = n->hash & (nb - 1);
      n->next = b[j];
      b[j] = n;
      n = next;
    }
  }
  free(t->b);
  t->b = b;
  t->nb = nb;
  return 0;
}

int mydb__htab_add(mydb__htab *t, mydb__hnode *n) {
  if (t->nb == 0) {
    if (htab_resize(t, 16) != 0) return -1;
  } else if (t->n >= t->nb && t->nb <= SIZE_MAX / 2 / sizeof *t->b) {
    (void)htab_resize(t, t->nb * 2); /* on failure: longer chains */
  }
  size_t j = n->hash & (t->nb - 1);
  n->next = t->b[j];
  t->b[j] = n;
  t->n++;
  return 0;
}

void mydb__htab_del(mydb__htab *t, mydb__hnode *n) {
  mydb__hnode **pp = &t->b[n->hash & (t->nb - 1)];
  while (*pp && *pp != n) pp = &(*pp)->next;
  if (*pp) {
    *pp = n->next;
    t->n--;
  }
}

void mydb__htab_free(mydb__htab *t) {
  free(t->b);
  t->b = NULL;
  t->nb = t->n = 0;
}
