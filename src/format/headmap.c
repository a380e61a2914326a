/*
 * headmap.c - head state maps and commit lines (see headmap.h).
 */
#include <stdlib.h>
#include <string.h>

#include "headmap.h"
#include "internal.h"
#include "jsonstr.h"

/* ------------------------------------------------------------------ map */

/* An entry name, or a NUL byte and a ref name (mydb.h "heads"). */
static int head_key_ok(const char *k, size_t len) {
  if (len >= 1 && k[0] == '\0') return mydb_ref_name_valid(k + 1, len - 1);
  return len >= 1 && len <= MYDB_ENTRY_MAX && !memchr(k, '\0', len);
}

void mydb__hmap_clear(mydb__htab *m) {
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

int mydb__hmap_set(mydb__htab *m, const char *key, size_t klen,
                   const char *digest) {
  uint64_t h = mydb__hash(key, klen);
  mydb__hentry *e = (mydb__hentry *)mydb__htab_find(m, h, key, klen);
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

void mydb__hmap_del(mydb__htab *m, const char *key, size_t klen) {
  mydb__hnode *n = mydb__htab_find(m, mydb__hash(key, klen), key, klen);
  if (n) {
    mydb__htab_del(m, n);
    free(n);
  }
}

const char *mydb__hmap_get(const mydb__htab *m, const char *key,
                           size_t klen) {
  const mydb__hentry *e = (const mydb__hentry *)mydb__htab_find(
      m, mydb__hash(key, klen), key, klen);
  return e ? e->digest : NULL;
}

static int cmp_bytes(const char *a, size_t al, const char *b, size_t bl) {
  size_t n = al < bl ? al : bl;
  int c = memcmp(a, b, n);
  if (c) return c;
  return al < bl ? -1 : al > bl;
}

static int cmp_hentry(const void *a, const void *b) {
  const mydb__hentry *x = *(const mydb__hentry *const *)a;
  const mydb__hentry *y = *(const mydb__hentry *const *)b;
  return cmp_bytes(x->key, x->h.klen, y->key, y->h.klen);
}

mydb__hentry **mydb__hmap_sorted(const mydb__htab *m, size_t *n) {
  *n = 0;
  if (m->n == 0) return NULL;
  mydb__hentry **v = malloc(m->n * sizeof *v);
  if (!v) return NULL;
  size_t k = 0;
  for (size_t i = 0; i < m->nb; i++)
    for (mydb__hnode *x = m->b[i]; x; x = x->next) v[k++] = (mydb__hentry *)x;
  qsort(v, k, sizeof *v, cmp_hentry);
  *n = k;
  return v;
}

int mydb__hmap_apply(mydb__htab *m, const mydb_head_change *c, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (!c[i].digest) mydb__hmap_del(m, c[i].entry, c[i].entry_len);
    else if (mydb__hmap_set(m, c[i].entry, c[i].entry_len, c[i].digest))
      return MYDB_ENOMEM;
  }
  return 0;
}

/* ------------------------------------------------------------ snapshots */

struct mydb__hitem {
  const char *key;
  size_t klen;
  const char *digest;
};

int mydb__hsnap_take(mydb__hsnap *s, const mydb__htab *m, const char *what) {
  size_t n = m->n, bytes = 0;
  s->n = 0;
  s->items = NULL;
  s->arena = NULL;
  if (n == 0) return MYDB_OK;
  for (size_t i = 0; i < m->nb; i++)
    for (const mydb__hnode *x = m->b[i]; x; x = x->next)
      bytes += x->klen + 1 + MYDB_DIGEST_BUF;
  s->items = malloc(n * sizeof *s->items);
  s->arena = malloc(bytes);
  if (!s->items || !s->arena) {
    free(s->items);
    free(s->arena);
    s->items = NULL;
    s->arena = NULL;
    return mydb__seterr(MYDB_ENOMEM, "out of memory listing %s", what);
  }
  size_t k = 0;
  char *a = s->arena;
  for (size_t i = 0; i < m->nb; i++)
    for (const mydb__hnode *x = m->b[i]; x; x = x->next) {
      const mydb__hentry *e = (const mydb__hentry *)x;
      s->items[k].key = a;
      s->items[k].klen = x->klen;
      memcpy(a, e->key, x->klen);
      a[x->klen] = '\0';
      a += x->klen + 1;
      s->items[k].digest = a;
      memcpy(a, e->digest, MYDB_DIGEST_HEX);
      a[MYDB_DIGEST_HEX] = '\0';
      a += MYDB_DIGEST_BUF;
      k++;
    }
  s->n = n;
  return MYDB_OK;
}

static int cmp_item(const void *a, const void *b) {
  const struct mydb__hitem *x = a, *y = b;
  return cmp_bytes(x->key, x->klen, y->key, y->klen);
}

int mydb__hsnap_run(mydb__hsnap *s,
                    int (*fn)(const char *entry, size_t entry_len,
                              const char *digest, void *payload),
                    void *payload) {
  int rc = MYDB_OK;
  if (s->n) qsort(s->items, s->n, sizeof *s->items, cmp_item);
  for (size_t i = 0; i < s->n && rc == 0; i++)
    rc = fn(s->items[i].key, s->items[i].klen, s->items[i].digest, payload);
  free(s->items);
  free(s->arena);
  s->items = NULL;
  s->arena = NULL;
  s->n = 0;
  return rc;
}

/* --------------------------------------------------------------- lines */

static const char *skip_ws(const char *p, const char *e) {
  while (p < e && (*p == ' ' || *p == '\t' || *p == '\r')) p++;
  return p;
}

const char *mydb__hline_parse(const char *p, const char *e, mydb_buf *keys,
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
    mydb__hpair pr;
    pr.off = keys->len;
    p = mydb_json_get_string(keys, p, e);
    if (!p) return "malformed entry string";
    if (keys->failed) return "out of memory";
    pr.len = keys->len - pr.off;
    if (!head_key_ok(keys->data + pr.off, pr.len))
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

int mydb__hline_apply(mydb__htab *m, const mydb_buf *keys,
                      const mydb_buf *pairs, size_t *np) {
  size_t n = pairs->len / sizeof(mydb__hpair);
  const mydb__hpair *pv = (const mydb__hpair *)(const void *)pairs->data;
  if (np) *np = n;
  for (size_t i = 0; i < n; i++) {
    if (pv[i].del) mydb__hmap_del(m, keys->data + pv[i].off, pv[i].len);
    else if (mydb__hmap_set(m, keys->data + pv[i].off, pv[i].len,
                            pv[i].digest) != 0)
      return MYDB_ENOMEM;
  }
  return 0;
}

int mydb__hline_is_header(const char *p, const char *e) {
  static const char hdr[] = "{\"mydb_head\":1}";
  p = skip_ws(p, e);
  while (e > p && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r')) e--;
  return (size_t)(e - p) == sizeof hdr - 1 && memcmp(p, hdr, e - p) == 0;
}

static void put_pair(mydb_buf *b, const char *key, size_t klen,
                     const char *digest) {
  mydb_buf_putc(b, '[');
  mydb_json_put_string(b, key, klen);
  if (digest) {
    mydb_buf_put(b, ",\"", 2);
    mydb_buf_put(b, digest, MYDB_DIGEST_HEX);
    mydb_buf_put(b, "\"]", 2);
  } else {
    mydb_buf_put(b, ",null]", 6);
  }
}

void mydb__hline_build(mydb_buf *b, const mydb_head_change *c, size_t n) {
  mydb_buf_putc(b, '[');
  for (size_t i = 0; i < n; i++) {
    if (i) mydb_buf_putc(b, ',');
    put_pair(b, c[i].entry, c[i].entry_len, c[i].digest);
  }
  mydb_buf_putc(b, ']');
}

int mydb__hline_state(mydb_buf *b, const mydb__htab *m) {
  size_t n;
  mydb__hentry **v = mydb__hmap_sorted(m, &n);
  if (!v && m->n) return MYDB_ENOMEM;
  mydb_buf_putc(b, '[');
  for (size_t i = 0; i < n; i++) {
    if (i) mydb_buf_putc(b, ',');
    put_pair(b, v[i]->key, v[i]->h.klen, v[i]->digest);
  }
  mydb_buf_putc(b, ']');
  free(v);
  return b->failed ? MYDB_ENOMEM : 0;
}
