/*
 * postgres.c - the postgres backend: a store is one schema of a PostgreSQL
 * database, reached with libpq (doc/FORMAT.md "PostgreSQL").
 *
 * Tables (created on first use, in one transaction under an advisory lock
 * so that concurrent first opens do not race): meta (format), tenants,
 * objects (tenant '' holds the shared refs), heads, journal.
 *
 * Connections: the handle keeps one connection (under its mutex) for
 * reads, object writes outside a tenant lock (autocommit: durable on
 * return) and the tenant space; each held tenant lock has a connection of
 * its own (from a small pool), which holds a session advisory lock on
 * (schema, tenant) - the server's lock, so it excludes writers on every
 * machine, and the server drops it when the client dies. Objects written
 * under the lock by its thread are staged in memory (readable from there)
 * and go with the commit: one transaction sent in one round trip (BEGIN;
 * the objects in one INSERT; heads; journal; COMMIT; and, when the commit
 * releases the lock, the unlock). A stage past STAGE_FLUSH_BYTES is sent
 * early in one INSERT (objects no head names yet: harmless, as a pack's
 * early append). A put is so four round trips: lock, two head reads,
 * commit. A connection found broken is replaced on the next call; the
 * call that found it returns MYDB_EIO.
 * Notices are discarded (errors are returned, never printed).
 */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "internal.h"
#include "buf.h"
#include "htab.h"

#define PG_FORMAT "1"
#define POOL_MAX 4
#define STAGE_FLUSH_BYTES ((size_t)8 << 20)

/* An object staged under a tenant lock, until its commit. */
typedef struct pgobj {
  mydb__hnode h; /* key: digest */
  char digest[MYDB_DIGEST_BUF];
  size_t len;
  unsigned char data[];
} pgobj;

/* A held tenant lock: its connection and its stage (lk->impl). */
typedef struct pglock {
  PGconn *c;
  unsigned epoch;
  pthread_t owner;     /* the thread whose writes are staged */
  const char *tenant;  /* lk->tenant */
  struct pglock *next; /* the handle's held locks (pgbe.held) */
  int unlocked;        /* the commit released the advisory lock */
  mydb__htab staged;
  pgobj **objs;
  size_t nobjs, capobjs, bytes;
} pglock;

typedef struct pgbe {
  mydb_backend be;
  pthread_mutex_t mu; /* conn and the pool */
  PGconn *conn;
  PGconn *pool[POOL_MAX];
  unsigned conn_epoch, pool_epoch[POOL_MAX];
  int npool;
  pglock *held; /* under mu */
  /* bumped when a connection is found lost: a server restart breaks every
   * connection, so the older ones are replaced before their next use
   * rather than each failing one call */
  _Atomic unsigned epoch;
  char *conninfo;
  char schema[64];
  char q[72]; /* the schema, quoted: "name" */
} pgbe;

#define PB(be) ((pgbe *)(be))

static void no_notice(void *arg, const char *msg) {
  (void)arg;
  (void)msg;
}

/* The mydb code of a server error, by its SQLSTATE class: a lost or
 * refused connection and the server's resources (disk full, too many
 * connections) are io; a serialization failure or deadlock is conflict
 * (retry); a missing table or schema (dropped under the store) is corrupt;
 * a value the server cannot take is invalid_argument. */
static int sqlstate_code(const char *st) {
  if (!st || strlen(st) != 5) return MYDB_EIO;
  if (strcmp(st, "40001") == 0 || strcmp(st, "40P01") == 0)
    return MYDB_ECONFLICT;
  if (strcmp(st, "42P01") == 0 || strcmp(st, "3F000") == 0 ||
      strcmp(st, "42703") == 0)
    return MYDB_ECORRUPT;
  if (strncmp(st, "22", 2) == 0 || strcmp(st, "54000") == 0)
    return MYDB_EINVAL;
  return MYDB_EIO;
}

/* The error text of r (or of the connection) without its newline, as a
 * mydb error (sqlstate_code); a lost connection marks the others old. */
static int pg_err(pgbe *p, PGconn *c, const PGresult *r, const char *what) {
  const char *m = r ? PQresultErrorMessage(r) : "";
  if (!m || !*m) m = c ? PQerrorMessage(c) : "no connection";
  size_t n = strlen(m);
  while (n && (m[n - 1] == '\n' || m[n - 1] == ' ')) n--;
  int lost = c && PQstatus(c) == CONNECTION_BAD;
  if (lost) p->epoch++;
  const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
  int code = lost ? MYDB_EIO : sqlstate_code(st);
  if (code == MYDB_ECORRUPT)
    return mydb__seterr(code, "postgres: %s: the store's tables in schema %s "
                        "are missing or not mydb's (dropped?): %.*s [%s]",
                        what, p->schema, (int)n, m, st);
  return mydb__seterr(code, "postgres: %s%s: %.*s%s%s%s", what,
                      lost ? " (connection lost)" : "", (int)n, m,
                      st ? " [" : "", st ? st : "", st ? "]" : "");
}

static PGconn *connect_new(pgbe *p, int *rc) {
  PGconn *c = PQconnectdb(p->conninfo);
  if (!c) {
    *rc = mydb__seterr(MYDB_ENOMEM, "postgres: out of memory connecting");
    return NULL;
  }
  if (PQstatus(c) != CONNECTION_OK) {
    *rc = pg_err(p, c, NULL, "cannot connect");
    PQfinish(c);
    return NULL;
  }
  PQsetNoticeProcessor(c, no_notice, NULL);
  return c;
}

/* The held lock of this thread (any tenant), or NULL. p->mu held. */
static struct pglock *my_lock(pgbe *p) {
  for (pglock *l = p->held; l; l = l->next)
    if (pthread_equal(l->owner, pthread_self())) return l;
  return NULL;
}

/* The handle's connection, locked (p->mu held on success). A thread that
 * holds a tenant lock uses the lock's connection (its reads see its own
 * lock's state; a single-threaded handle keeps one connection in all);
 * else the handle's, taken from the pool or made when there is none. */
static PGconn *main_conn(pgbe *p, int *rc) {
  pthread_mutex_lock(&p->mu);
  pglock *mine = my_lock(p);
  if (mine) return mine->c;
  if (p->conn && (PQstatus(p->conn) != CONNECTION_OK ||
                  p->conn_epoch != p->epoch)) {
    PQfinish(p->conn);
    p->conn = NULL;
  }
  while (!p->conn && p->npool > 0) {
    PGconn *c = p->pool[--p->npool];
    if (PQstatus(c) == CONNECTION_OK && p->pool_epoch[p->npool] == p->epoch) {
      p->conn = c;
      p->conn_epoch = p->epoch;
    } else {
      PQfinish(c);
    }
  }
  if (!p->conn) {
    p->conn_epoch = p->epoch;
    p->conn = connect_new(p, rc);
  }
  if (!p->conn) {
    pthread_mutex_unlock(&p->mu);
    return NULL;
  }
  return p->conn;
}

static void main_done(pgbe *p) { pthread_mutex_unlock(&p->mu); }

/* Runs sql with text params (lens NULL) or the given binary/text mix;
 * binary results. Returns the result when its status is want, else
 * NULL with the error set. */
static PGresult *run(pgbe *p, PGconn *c, const char *sql, int n,
                     const char *const *vals, const int *lens,
                     const int *fmts, ExecStatusType want, int *rc) {
  PGresult *r = PQexecParams(c, sql, n, NULL, vals, lens, fmts, 1);
  if (r && PQresultStatus(r) == want) return r;
  *rc = r ? pg_err(p, c, r, "query failed") : pg_err(p, c, NULL, "query failed");
  PQclear(r);
  return NULL;
}

static int not_init(const char *tenant) {
  return mydb__seterr(MYDB_ENOTINIT, "tenant '%s' is not initialized",
                      tenant);
}

/* ------------------------------------------------------------ schema */

static int schema_ensure(pgbe *p, PGconn *c) {
  char sql[2048];
  int rc = MYDB_OK;
  snprintf(sql, sizeof sql, "SELECT value FROM %s.meta WHERE key = 'format'",
           p->q);
  PGresult *r = PQexecParams(c, sql, 0, NULL, NULL, NULL, NULL, 0);
  if (r && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
    if (strcmp(PQgetvalue(r, 0, 0), PG_FORMAT) != 0)
      rc = mydb__seterr(MYDB_ECORRUPT, "postgres: schema %s has format %s "
                        "(this mydb reads format " PG_FORMAT ")", p->schema,
                        PQgetvalue(r, 0, 0));
    PQclear(r);
    return rc;
  }
  PQclear(r);
  if (PQstatus(c) != CONNECTION_OK) return pg_err(p, c, NULL, "opening");
  const char *q = p->q;
  snprintf(sql, sizeof sql,
           "BEGIN; SELECT pg_advisory_xact_lock(hashtextextended('mydb "
           "schema', 0)); CREATE SCHEMA IF NOT EXISTS %s;"
           "CREATE TABLE IF NOT EXISTS %s.meta (key text PRIMARY KEY, "
           "value text NOT NULL);"
           "CREATE TABLE IF NOT EXISTS %s.tenants (name text PRIMARY KEY);"
           "CREATE TABLE IF NOT EXISTS %s.objects (tenant text NOT NULL, "
           "digest text NOT NULL, seq bigserial, bytes bytea NOT NULL, "
           "PRIMARY KEY (tenant, digest));"
           "CREATE TABLE IF NOT EXISTS %s.heads (tenant text NOT NULL, "
           "entry bytea NOT NULL, digest text NOT NULL, "
           "PRIMARY KEY (tenant, entry));"
           "CREATE TABLE IF NOT EXISTS %s.journal (tenant text NOT NULL, "
           "seq bigserial, line bytea NOT NULL, PRIMARY KEY (tenant, seq));"
           "INSERT INTO %s.meta VALUES ('format', '" PG_FORMAT "') "
           "ON CONFLICT DO NOTHING; COMMIT",
           q, q, q, q, q, q, q);
  r = PQexec(c, sql);
  if (!r || PQresultStatus(r) != PGRES_COMMAND_OK)
    rc = pg_err(p, c, r, "creating the tables");
  PQclear(r);
  if (rc && PQstatus(c) == CONNECTION_OK) PQclear(PQexec(c, "ROLLBACK"));
  return rc;
}

/* ------------------------------------------------------------- tenants */

static int tenant_exists_c(pgbe *p, PGconn *c, const char *tenant) {
  char sql[256];
  int rc = MYDB_OK;
  snprintf(sql, sizeof sql, "SELECT 1 FROM %s.tenants WHERE name = $1", p->q);
  PGresult *r = run(p, c, sql, 1, &tenant, NULL, NULL, PGRES_TUPLES_OK, &rc);
  if (!r) return rc;
  int n = PQntuples(r);
  PQclear(r);
  return n > 0;
}

static int p_tenant_init(mydb_backend *be, const char *tenant) {
  pgbe *p = PB(be);
  char sql[256];
  int rc = MYDB_OK;
  int crc = MYDB_OK;
  PGconn *c = main_conn(p, &crc);
  if (!c) return crc;
  snprintf(sql, sizeof sql,
           "INSERT INTO %s.tenants VALUES ($1) ON CONFLICT DO NOTHING", p->q);
  PGresult *r = run(p, c, sql, 1, &tenant, NULL, NULL, PGRES_COMMAND_OK, &rc);
  PQclear(r);
  main_done(p);
  return rc;
}

static int p_tenant_exists(mydb_backend *be, const char *tenant) {
  pgbe *p = PB(be);
  int crc = MYDB_OK;
  PGconn *c = main_conn(p, &crc);
  if (!c) return crc;
  int rc = tenant_exists_c(p, c, tenant);
  main_done(p);
  return rc;
}

/* Runs a one-column query and calls fn on each value with p->mu released. */
static int each_value(pgbe *p, const char *sql, int n,
                      const char *const *vals, PGresult **out) {
  int rc = MYDB_OK;
  int crc = MYDB_OK;
  PGconn *c = main_conn(p, &crc);
  if (!c) return crc;
  *out = run(p, c, sql, n, vals, NULL, NULL, PGRES_TUPLES_OK, &rc);
  main_done(p);
  return rc;
}

static int p_tenant_list(mydb_backend *be,
                         int (*fn)(const char *tenant, void *payload),
                         void *payload) {
  pgbe *p = PB(be);
  char sql[256];
  PGresult *r = NULL;
  snprintf(sql, sizeof sql, "SELECT name FROM %s.tenants", p->q);
  int rc = each_value(p, sql, 0, NULL, &r);
  for (int i = 0; rc == 0 && r && i < PQntuples(r); i++)
    rc = fn(PQgetvalue(r, i, 0), payload);
  PQclear(r);
  return rc;
}

/* ------------------------------------------------------------ staging */

/* The held lock of tenant, or NULL; with mine, only the calling thread's.
 * p->mu held. */
static pglock *held_lock(pgbe *p, const char *tenant, int mine) {
  for (pglock *l = p->held; l; l = l->next)
    if (strcmp(l->tenant, tenant) == 0 &&
        (!mine || pthread_equal(l->owner, pthread_self())))
      return l;
  return NULL;
}

static pgobj *staged_find(pglock *l, const char *digest) {
  if (l->nobjs == 0) return NULL;
  return (pgobj *)mydb__htab_find(&l->staged,
                                  mydb__hash(digest, MYDB_DIGEST_HEX), digest,
                                  MYDB_DIGEST_HEX);
}

static int stage(pglock *l, const char *digest, const void *buf, size_t len) {
  if (staged_find(l, digest)) return MYDB_OK;
  if (l->nobjs == l->capobjs) {
    size_t cap = l->capobjs ? 2 * l->capobjs : 16;
    pgobj **v = realloc(l->objs, cap * sizeof *v);
    if (!v) return mydb__seterr(MYDB_ENOMEM, "out of memory staging an object");
    l->objs = v;
    l->capobjs = cap;
  }
  pgobj *o = malloc(sizeof *o + len);
  if (!o) return mydb__seterr(MYDB_ENOMEM, "out of memory staging an object");
  memcpy(o->digest, digest, MYDB_DIGEST_HEX);
  o->digest[MYDB_DIGEST_HEX] = '\0';
  o->len = len;
  if (len) memcpy(o->data, buf, len);
  o->h.hash = mydb__hash(digest, MYDB_DIGEST_HEX);
  o->h.key = o->digest;
  o->h.klen = MYDB_DIGEST_HEX;
  if (mydb__htab_add(&l->staged, &o->h) != 0) {
    free(o);
    return mydb__seterr(MYDB_ENOMEM, "out of memory staging an object");
  }
  l->objs[l->nobjs++] = o;
  l->bytes += len;
  return MYDB_OK;
}

static void stage_clear(pglock *l) {
  for (size_t i = 0; i < l->nobjs; i++) free(l->objs[i]);
  mydb__htab_free(&l->staged);
  memset(&l->staged, 0, sizeof l->staged);
  l->nobjs = 0;
  l->bytes = 0;
}

static const char HEX[] = "0123456789abcdef";

static char *hex_put(char *o, const void *buf, size_t n) {
  const unsigned char *s = buf;
  for (size_t i = 0; i < n; i++) {
    *o++ = HEX[s[i] >> 4];
    *o++ = HEX[s[i] & 15];
  }
  return o;
}

static void buf_hex(mydb_buf *b, const void *buf, size_t n) {
  if (mydb_buf_grow(b, 2 * n) != 0) return;
  hex_put(b->data + b->len, buf, n);
  b->len += 2 * n;
}

/* Appends "INSERT ... ;" of l's staged objects (tenant literal lit): one
 * statement, every value hex text (a simple-protocol message). */
static void stage_sql(mydb_buf *b, const pgbe *p, const char *lit,
                      const pglock *l) {
  mydb_buf_puts(b, "INSERT INTO ");
  mydb_buf_puts(b, p->q);
  mydb_buf_puts(b, ".objects (tenant, digest, bytes) SELECT ");
  mydb_buf_puts(b, lit);
  mydb_buf_puts(b, ", d, decode(x, 'hex') FROM unnest('{");
  for (size_t i = 0; i < l->nobjs; i++) {
    if (i) mydb_buf_putc(b, ',');
    mydb_buf_put(b, l->objs[i]->digest, MYDB_DIGEST_HEX);
  }
  mydb_buf_puts(b, "}'::text[], '{");
  for (size_t i = 0; i < l->nobjs; i++) {
    if (i) mydb_buf_putc(b, ',');
    mydb_buf_putc(b, '"');
    buf_hex(b, l->objs[i]->data, l->objs[i]->len);
    mydb_buf_putc(b, '"');
  }
  mydb_buf_puts(b, "}'::text[]) AS s(d, x) ON CONFLICT DO NOTHING;");
}

/* Sends a large stage ahead of its commit (autocommit, one statement). */
static int stage_flush(pgbe *p, pglock *l) {
  char *lit = PQescapeLiteral(l->c, l->tenant, strlen(l->tenant));
  if (!lit) return mydb__seterr(MYDB_ENOMEM, "postgres: out of memory");
  mydb_buf b = MYDB_BUF_INIT;
  stage_sql(&b, p, lit, l);
  mydb_buf_putc(&b, '\0');
  PQfreemem(lit);
  if (b.failed) {
    mydb_buf_free(&b);
    return mydb__seterr(MYDB_ENOMEM, "out of memory writing objects");
  }
  PGresult *r = PQexec(l->c, b.data);
  mydb_buf_free(&b);
  int rc = MYDB_OK;
  if (!r || PQresultStatus(r) != PGRES_COMMAND_OK)
    rc = pg_err(p, l->c, r, "writing objects");
  PQclear(r);
  if (rc == MYDB_OK) stage_clear(l);
  return rc;
}

/* ------------------------------------------------------------- objects */

static int p_object_write(mydb_backend *be, const char *tenant,
                          const char *digest, const void *buf, size_t len) {
  pgbe *p = PB(be);
  char sql[512];
  int rc = MYDB_OK;
  if (len > 0x3fffffff)
    return mydb__seterr(MYDB_EINVAL, "postgres: object of %zu bytes is too "
                        "large (1 GiB at most)", len);
  if (tenant) {
    /* under this thread's lock of tenant: staged for the commit */
    pthread_mutex_lock(&p->mu);
    pglock *l = held_lock(p, tenant, 1);
    if (l) {
      rc = stage(l, digest, buf, len);
      if (rc == MYDB_OK && l->bytes >= STAGE_FLUSH_BYTES)
        rc = stage_flush(p, l);
    }
    pthread_mutex_unlock(&p->mu);
    if (l) return rc;
  }
  const char *t = tenant ? tenant : "";
  const char *vals[3] = {t, digest, buf};
  int lens[3] = {0, 0, (int)len}, fmts[3] = {0, 0, 1};
  if (tenant)
    snprintf(sql, sizeof sql,
             "INSERT INTO %s.objects (tenant, digest, bytes) SELECT $1, $2, "
             "$3 WHERE EXISTS (SELECT 1 FROM %s.tenants WHERE name = $1) "
             "ON CONFLICT DO NOTHING RETURNING 1", p->q, p->q);
  else
    snprintf(sql, sizeof sql,
             "INSERT INTO %s.objects (tenant, digest, bytes) VALUES ($1, $2, "
             "$3) ON CONFLICT DO NOTHING RETURNING 1", p->q);
  int crc = MYDB_OK;
  PGconn *c = main_conn(p, &crc);
  if (!c) return crc;
  PGresult *r = run(p, c, sql, 3, vals, lens, fmts, PGRES_TUPLES_OK, &rc);
  if (r && PQntuples(r) == 0 && tenant) {
    int e = tenant_exists_c(p, c, tenant);
    if (e == 0) rc = not_init(tenant);
    else if (e < 0) rc = e;
  }
  PQclear(r);
  main_done(p);
  return rc;
}

static int p_object_read(mydb_backend *be, mydb_blob **out,
                         const char *tenant, const char *digest) {
  pgbe *p = PB(be);
  char sql[256];
  int rc = MYDB_OK;
  if (tenant) {
    pthread_mutex_lock(&p->mu);
    pglock *l = held_lock(p, tenant, 0);
    pgobj *o = l ? staged_find(l, digest) : NULL;
    mydb_blob *b = o ? mydb__blob_new(o->len) : NULL;
    if (b && o->len) memcpy(b->data, o->data, o->len);
    pthread_mutex_unlock(&p->mu);
    if (o && !b)
      return mydb__seterr(MYDB_ENOMEM, "out of memory reading %zu bytes",
                          o->len);
    if (b) {
      *out = b;
      return MYDB_OK;
    }
  }
  const char *vals[2] = {tenant ? tenant : "", digest};
  snprintf(sql, sizeof sql,
           "SELECT bytes FROM %s.objects WHERE tenant = $1 AND digest = $2",
           p->q);
  int crc = MYDB_OK;
  PGconn *c = main_conn(p, &crc);
  if (!c) return crc;
  PGresult *r = run(p, c, sql, 2, vals, NULL, NULL, PGRES_TUPLES_OK, &rc);
  main_done(p);
  if (!r) return rc;
  if (PQntuples(r) == 0) {
    rc = mydb__seterr(MYDB_ENOTFOUND, "object %s not found in %s %s", digest,
                      mydb__where_kind(tenant), mydb__where_name(tenant));
  } else {
    size_t n = (size_t)PQgetlength(r, 0, 0);
    mydb_blob *b = mydb__blob_new(n);
    if (!b) {
      rc = mydb__seterr(MYDB_ENOMEM, "out of memory reading %zu bytes", n);
    } else {
      if (n) memcpy(b->data, PQgetvalue(r, 0, 0), n);
      *out = b;
    }
  }
  PQclear(r);
  return rc;
}

static int p_object_exists(mydb_backend *be, const char *tenant,
                           const char *digest) {
  pgbe *p = PB(be);
  char sql[256];
  int rc = MYDB_OK;
  if (tenant) {
    pthread_mutex_lock(&p->mu);
    pglock *l = held_lock(p, tenant, 0);
    int staged = l && staged_find(l, digest);
    pthread_mutex_unlock(&p->mu);
    if (staged) return 1;
  }
  const char *vals[2] = {tenant ? tenant : "", digest};
  snprintf(sql, sizeof sql,
           "SELECT 1 FROM %s.objects WHERE tenant = $1 AND digest = $2",
           p->q);
  int crc = MYDB_OK;
  PGconn *c = main_conn(p, &crc);
  if (!c) return crc;
  PGresult *r = run(p, c, sql, 2, vals, NULL, NULL, PGRES_TUPLES_OK, &rc);
  main_done(p);
  if (!r) return rc;
  rc = PQntuples(r) > 0;
  PQclear(r);
  return rc;
}

static int p_object_foreach(mydb_backend *be, const char *tenant,
                            int (*fn)(const char *name, void *payload),
                            void *payload) {
  pgbe *p = PB(be);
  char sql[256];
  PGresult *r = NULL;
  const char *t = tenant ? tenant : "";
  snprintf(sql, sizeof sql, "SELECT digest FROM %s.objects WHERE tenant = $1",
           p->q);
  int rc = each_value(p, sql, 1, &t, &r);
  if (rc == 0 && PQntuples(r) == 0 && tenant) {
    int e = p_tenant_exists(be, tenant);
    rc = e == 0 ? not_init(tenant) : e < 0 ? e : 0;
  }
  for (int i = 0; rc == 0 && i < PQntuples(r); i++)
    rc = fn(PQgetvalue(r, i, 0), payload);
  PQclear(r);
  return rc;
}

/* --------------------------------------------------------------- heads */

static int p_head_get(mydb_backend *be, char out[MYDB_DIGEST_BUF],
                      const char *tenant, size_t tlen, const char *entry,
                      size_t entry_len, int locked) {
  (void)tlen;
  (void)locked; /* commits are committed: the handle's connection sees them */
  pgbe *p = PB(be);
  char sql[384];
  int rc = MYDB_OK;
  const char *vals[2] = {tenant, entry};
  int lens[2] = {0, (int)entry_len}, fmts[2] = {0, 1};
  snprintf(sql, sizeof sql,
           "SELECT (SELECT digest FROM %s.heads WHERE tenant = $1 AND "
           "entry = $2), EXISTS (SELECT 1 FROM %s.tenants WHERE name = $1)",
           p->q, p->q);
  int crc = MYDB_OK;
  PGconn *c = main_conn(p, &crc);
  if (!c) return crc;
  PGresult *r = run(p, c, sql, 2, vals, lens, fmts, PGRES_TUPLES_OK, &rc);
  main_done(p);
  if (!r) return rc;
  if (PQgetlength(r, 0, 1) != 1 || PQgetvalue(r, 0, 1)[0] == 0)
    rc = not_init(tenant);
  else if (PQgetisnull(r, 0, 0))
    rc = mydb__seterr(MYDB_ENOTFOUND, "entry '%.*s' not found in tenant '%s'",
                      (int)(entry_len > 100 ? 100 : entry_len), entry, tenant);
  else if (PQgetlength(r, 0, 0) != MYDB_DIGEST_HEX)
    rc = mydb__seterr(MYDB_ECORRUPT, "postgres: a head of tenant '%s' is "
                      "not a digest", tenant);
  else {
    memcpy(out, PQgetvalue(r, 0, 0), MYDB_DIGEST_HEX);
    out[MYDB_DIGEST_HEX] = '\0';
  }
  PQclear(r);
  return rc;
}

static int p_head_foreach(mydb_backend *be, const char *tenant, size_t tlen,
                          int (*fn)(const char *entry, size_t entry_len,
                                    const char *digest, void *payload),
                          void *payload) {
  (void)tlen;
  pgbe *p = PB(be);
  char sql[256];
  PGresult *r = NULL;
  snprintf(sql, sizeof sql,
           "SELECT entry, digest FROM %s.heads WHERE tenant = $1 ORDER BY entry",
           p->q);
  int rc = each_value(p, sql, 1, &tenant, &r);
  if (rc == 0 && PQntuples(r) == 0) {
    int e = p_tenant_exists(be, tenant);
    rc = e == 0 ? not_init(tenant) : e < 0 ? e : 0;
  }
  for (int i = 0; rc == 0 && i < PQntuples(r); i++)
    rc = fn(PQgetvalue(r, i, 0), (size_t)PQgetlength(r, i, 0),
            PQgetvalue(r, i, 1), payload);
  PQclear(r);
  return rc;
}

/* ---------------------------------------------------------- tenant lock */

/* The advisory lock key of (schema, tenant), as SQL. */
static char *lock_key(pgbe *p, PGconn *c, const char *tenant) {
  char k[200];
  snprintf(k, sizeof k, "%s/%s", p->schema, tenant);
  char *lit = PQescapeLiteral(c, k, strlen(k));
  if (!lit) mydb__seterr(MYDB_ENOMEM, "postgres: out of memory");
  return lit;
}

static void pool_put(pgbe *p, PGconn *c, unsigned epoch) {
  pthread_mutex_lock(&p->mu);
  if (PQstatus(c) == CONNECTION_OK && epoch == p->epoch &&
      PQtransactionStatus(c) == PQTRANS_IDLE && p->npool < POOL_MAX) {
    p->pool_epoch[p->npool] = epoch;
    p->pool[p->npool++] = c;
    c = NULL;
  }
  pthread_mutex_unlock(&p->mu);
  if (c) PQfinish(c);
}

static PGconn *pool_get(pgbe *p, int *rc, unsigned *epoch) {
  PGconn *c = NULL;
  pthread_mutex_lock(&p->mu);
  *epoch = p->epoch;
  while (!c && p->npool > 0) {
    c = p->pool[--p->npool];
    if (PQstatus(c) != CONNECTION_OK || p->pool_epoch[p->npool] != *epoch) {
      PQfinish(c);
      c = NULL;
    }
  }
  /* none pooled: the handle's own, when idle (mu held: nobody uses it);
   * main_conn takes it back from the pool after the release */
  if (!c && p->conn && PQstatus(p->conn) == CONNECTION_OK &&
      p->conn_epoch == *epoch && PQtransactionStatus(p->conn) == PQTRANS_IDLE) {
    c = p->conn;
    p->conn = NULL;
  }
  pthread_mutex_unlock(&p->mu);
  return c ? c : connect_new(p, rc);
}

static int p_lock_acquire(mydb_backend *be, struct mydb_lock *lk) {
  pgbe *p = PB(be);
  int crc = MYDB_OK;
  unsigned epoch;
  pglock *pl = calloc(1, sizeof *pl);
  if (!pl) return mydb__seterr(MYDB_ENOMEM, "out of memory");
  PGconn *c = pool_get(p, &crc, &epoch);
  if (!c) {
    free(pl);
    return crc;
  }
  char *key = lock_key(p, c, lk->tenant);
  char *lit = PQescapeLiteral(c, lk->tenant, lk->tlen);
  int rc = MYDB_OK;
  if (!key || !lit) {
    rc = mydb__seterr(MYDB_ENOMEM, "postgres: out of memory");
  } else {
    /* one round trip: no row (and no lock taken) for an unknown tenant */
    char sql[640];
    snprintf(sql, sizeof sql,
             "SELECT pg_advisory_lock(hashtextextended(%s, 0)) FROM "
             "%s.tenants WHERE name = %s", key, p->q, lit);
    PGresult *r = PQexec(c, sql);
    if (!r || PQresultStatus(r) != PGRES_TUPLES_OK)
      rc = pg_err(p, c, r, "locking");
    else if (PQntuples(r) == 0)
      rc = not_init(lk->tenant);
    PQclear(r);
  }
  PQfreemem(key);
  PQfreemem(lit);
  if (rc) {
    free(pl);
    pool_put(p, c, epoch);
    return rc;
  }
  pl->c = c;
  pl->epoch = epoch;
  pl->owner = pthread_self();
  pl->tenant = lk->tenant;
  pthread_mutex_lock(&p->mu);
  pl->next = p->held;
  p->held = pl;
  pthread_mutex_unlock(&p->mu);
  lk->impl = pl;
  return MYDB_OK;
}

/* The objects staged under lk that no commit took (the dispatch forgets
 * them from its cache before the release drops them). */
static void p_lock_uncommitted(mydb_backend *be, struct mydb_lock *lk,
                               void (*fn)(const char *digest, void *payload),
                               void *payload) {
  pgbe *p = PB(be);
  pglock *pl = lk->impl;
  if (!pl) return;
  pthread_mutex_lock(&p->mu);
  size_t n = pl->nobjs;
  char *v = n ? malloc(n * MYDB_DIGEST_BUF) : NULL;
  for (size_t i = 0; v && i < n; i++)
    memcpy(v + i * MYDB_DIGEST_BUF, pl->objs[i]->digest, MYDB_DIGEST_BUF);
  pthread_mutex_unlock(&p->mu);
  if (n && !v) fn(NULL, payload); /* cannot name them: all of them */
  for (size_t i = 0; v && i < n; i++) fn(v + i * MYDB_DIGEST_BUF, payload);
  free(v);
}

static void p_lock_release(mydb_backend *be, struct mydb_lock *lk) {
  pgbe *p = PB(be);
  pglock *pl = lk->impl;
  if (!pl) return;
  lk->impl = NULL;
  pthread_mutex_lock(&p->mu);
  for (pglock **x = &p->held; *x; x = &(*x)->next)
    if (*x == pl) {
      *x = pl->next;
      break;
    }
  pthread_mutex_unlock(&p->mu);
  PGconn *c = pl->c;
  unsigned epoch = pl->epoch;
  int ok = pl->unlocked;
  stage_clear(pl);
  free(pl->objs);
  free(pl);
  if (PQtransactionStatus(c) != PQTRANS_IDLE) PQclear(PQexec(c, "ROLLBACK"));
  char *key = ok ? NULL : lock_key(p, c, lk->tenant);
  if (key && PQstatus(c) == CONNECTION_OK) {
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT pg_advisory_unlock(hashtextextended(%s, 0))", key);
    PGresult *r = PQexec(c, sql);
    ok = r && PQresultStatus(r) == PGRES_TUPLES_OK;
    PQclear(r);
  }
  PQfreemem(key);
  if (ok)
    pool_put(p, c, epoch);
  else
    PQfinish(c); /* the server drops the session's locks with it */
}

/* One commit, one message: BEGIN; the staged objects; heads; journal;
 * COMMIT; and with pending (mydb_head_commit_release: the lock goes next)
 * the unlock, so that the release costs no round trip. */
static int p_head_commit(mydb_backend *be, struct mydb_lock *lk,
                         const mydb_head_change *c, size_t n,
                         const char *line, size_t len,
                         mydb__pending *pending) {
  pgbe *p = PB(be);
  pglock *pl = lk->impl;
  PGconn *conn = pl ? pl->c : NULL;
  if (!conn || PQstatus(conn) != CONNECTION_OK)
    return mydb__seterr(MYDB_EIO, "postgres: commit: the lock's connection "
                        "was lost (nothing committed)");
  char *lit = PQescapeLiteral(conn, lk->tenant, lk->tlen);
  char *key = pending ? lock_key(p, conn, lk->tenant) : NULL;
  if (!lit || (pending && !key)) {
    PQfreemem(lit);
    PQfreemem(key);
    return mydb__seterr(MYDB_ENOMEM, "postgres: out of memory");
  }
  /* Every value is a hex string or an escaped literal: the whole commit
   * goes in one simple-protocol message, one round trip. */
  mydb_buf b = MYDB_BUF_INIT;
  mydb_buf_puts(&b, "BEGIN; ");
  pthread_mutex_lock(&p->mu);
  if (pl->nobjs) stage_sql(&b, p, lit, pl);
  pthread_mutex_unlock(&p->mu);
  mydb_buf_puts(&b, " WITH c AS (SELECT DISTINCT ON (e) decode(e, 'hex') AS "
                "entry, d FROM unnest('{");
  for (size_t i = 0; i < n; i++) {
    if (i) mydb_buf_putc(&b, ',');
    mydb_buf_putc(&b, '"');
    buf_hex(&b, c[i].entry, c[i].entry_len);
    mydb_buf_putc(&b, '"');
  }
  mydb_buf_puts(&b, "}'::text[], '{");
  for (size_t i = 0; i < n; i++) {
    if (i) mydb_buf_putc(&b, ',');
    if (c[i].digest)
      mydb_buf_put(&b, c[i].digest, MYDB_DIGEST_HEX);
    else
      mydb_buf_puts(&b, "NULL");
  }
  char tail[1024];
  snprintf(tail, sizeof tail,
           "}'::text[]) WITH ORDINALITY AS x(e, d, i) ORDER BY e, i DESC), "
           "del AS (DELETE FROM %s.heads h USING c WHERE c.d IS NULL AND "
           "h.tenant = %s AND h.entry = c.entry), "
           "ins AS (INSERT INTO %s.heads SELECT %s, entry, d FROM c WHERE "
           "d IS NOT NULL ON CONFLICT (tenant, entry) DO UPDATE SET "
           "digest = excluded.digest) "
           "INSERT INTO %s.journal (tenant, line) VALUES (%s, decode('",
           p->q, lit, p->q, lit, p->q, lit);
  mydb_buf_puts(&b, tail);
  buf_hex(&b, line, len);
  mydb_buf_puts(&b, "', 'hex')); COMMIT");
  if (key) {
    mydb_buf_puts(&b, "; SELECT pg_advisory_unlock(hashtextextended(");
    mydb_buf_puts(&b, key);
    mydb_buf_puts(&b, ", 0))");
  }
  mydb_buf_putc(&b, '\0');
  PQfreemem(lit);
  PQfreemem(key);
  if (b.failed) {
    mydb_buf_free(&b);
    return mydb__seterr(MYDB_ENOMEM, "out of memory committing");
  }
  PGresult *r = PQexec(conn, b.data);
  mydb_buf_free(&b);
  int rc = MYDB_OK;
  ExecStatusType want = pending ? PGRES_TUPLES_OK : PGRES_COMMAND_OK;
  if (!r || PQresultStatus(r) != want)
    rc = pg_err(p, conn, r, "commit failed");
  PQclear(r);
  if (rc && PQstatus(conn) == CONNECTION_OK &&
      PQtransactionStatus(conn) != PQTRANS_IDLE)
    PQclear(PQexec(conn, "ROLLBACK"));
  if (rc == MYDB_OK) {
    pthread_mutex_lock(&p->mu);
    stage_clear(pl); /* committed */
    pl->owner = pthread_self(); /* (a lock passed to another thread) */
    pl->unlocked = key != NULL;
    pthread_mutex_unlock(&p->mu);
  }
  return rc;
}

static int p_journal(mydb_backend *be, const char *tenant,
                     int (*fn)(const char *line, size_t len, void *payload),
                     void *payload) {
  pgbe *p = PB(be);
  char sql[256];
  PGresult *r = NULL;
  snprintf(sql, sizeof sql,
           "SELECT line FROM %s.journal WHERE tenant = $1 ORDER BY seq", p->q);
  int rc = each_value(p, sql, 1, &tenant, &r);
  if (rc == 0 && PQntuples(r) == 0) {
    int e = p_tenant_exists(be, tenant);
    rc = e == 0 ? not_init(tenant) : e < 0 ? e : 0;
  }
  for (int i = 0; rc == 0 && i < PQntuples(r); i++)
    rc = fn(PQgetvalue(r, i, 0), (size_t)PQgetlength(r, i, 0), payload);
  PQclear(r);
  return rc;
}

/* ------------------------------------------------------------------ gc */

static int p_gc_begin(mydb_backend *be, const char *tenant,
                      mydb_gc_mark *mark) {
  (void)tenant;
  pgbe *p = PB(be);
  char sql[384];
  /* seq is drawn when a row is inserted, not when it commits: a row of a
   * transaction still open may hold a seq below a committed one's. The
   * SHARE lock waits for every open insert to end (and holds new ones
   * until the mark is read), so whatever commits after the mark has a
   * greater seq and the sweep keeps it. One message; its results read
   * one by one (the mark is the SELECT's). */
  snprintf(sql, sizeof sql, "BEGIN; LOCK TABLE %s.objects IN SHARE MODE; "
           "SELECT coalesce(max(seq), 0)::text FROM %s.objects; COMMIT",
           p->q, p->q);
  int rc = MYDB_OK, crc = MYDB_OK, got = 0;
  PGconn *c = main_conn(p, &crc);
  if (!c) return crc;
  if (!PQsendQuery(c, sql)) {
    rc = pg_err(p, c, NULL, "gc");
  } else {
    PGresult *r;
    while ((r = PQgetResult(c)) != NULL) {
      ExecStatusType t = PQresultStatus(r);
      if (rc == MYDB_OK && t == PGRES_TUPLES_OK && PQntuples(r) == 1) {
        mark->a = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        got = 1;
      } else if (rc == MYDB_OK && t != PGRES_COMMAND_OK &&
                 t != PGRES_TUPLES_OK) {
        rc = pg_err(p, c, r, "gc");
      }
      PQclear(r);
    }
    if (rc == MYDB_OK && !got)
      rc = mydb__seterr(MYDB_EIO, "postgres: gc: no mark read");
  }
  if (rc && PQstatus(c) == CONNECTION_OK &&
      PQtransactionStatus(c) != PQTRANS_IDLE)
    PQclear(PQexec(c, "ROLLBACK"));
  main_done(p);
  mark->b = 0;
  return rc;
}

static int p_gc_sweep(mydb_backend *be, const char *tenant,
                      const mydb_gc_mark *mark,
                      int (*keep)(const char *digest, void *payload),
                      void *payload, mydb_gc_stats *st) {
  pgbe *p = PB(be);
  char sql[512], m[32];
  PGresult *r = NULL;
  const char *t = tenant ? tenant : "";
  snprintf(m, sizeof m, "%lld", (long long)mark->a);
  const char *vals[3] = {t, m, NULL};
  snprintf(sql, sizeof sql, "SELECT digest FROM %s.objects WHERE tenant = $1 "
           "AND seq <= $2::bigint", p->q);
  int rc = each_value(p, sql, 2, vals, &r);
  if (rc) return rc;
  int nt = PQntuples(r);
  /* the digests to drop, as a text array literal */
  char *arr = malloc((size_t)nt * (MYDB_DIGEST_HEX + 1) + 3), *o = arr;
  if (!arr) {
    PQclear(r);
    return mydb__seterr(MYDB_ENOMEM, "out of memory");
  }
  *o++ = '{';
  size_t ndrop = 0;
  for (int i = 0; i < nt; i++) {
    const char *d = PQgetvalue(r, i, 0);
    int k = keep(d, payload);
    if (k < 0) {
      rc = k;
      break;
    }
    if (k || PQgetlength(r, i, 0) != MYDB_DIGEST_HEX) continue;
    if (ndrop++) *o++ = ',';
    memcpy(o, d, MYDB_DIGEST_HEX);
    o += MYDB_DIGEST_HEX;
  }
  *o++ = '}';
  *o = '\0';
  PQclear(r);
  r = NULL;
  if (rc == 0) {
    vals[2] = arr;
    snprintf(sql, sizeof sql,
             "WITH d AS (DELETE FROM %s.objects WHERE tenant = $1 AND "
             "seq <= $2::bigint AND digest = ANY ($3::text[]) RETURNING "
             "length(bytes) AS n) SELECT count(*)::text, "
             "coalesce(sum(n), 0)::text FROM d", p->q);
    rc = each_value(p, sql, 3, vals, &r);
    if (rc == 0) {
      st->objects_removed += strtoull(PQgetvalue(r, 0, 0), NULL, 10);
      st->bytes_freed += strtoull(PQgetvalue(r, 0, 1), NULL, 10);
    }
    PQclear(r);
    r = NULL;
  }
  free(arr);
  if (rc == 0) {
    snprintf(sql, sizeof sql, "SELECT count(*)::text, coalesce(sum(length("
             "bytes)), 0)::text FROM %s.objects WHERE tenant = $1", p->q);
    rc = each_value(p, sql, 1, vals, &r);
    if (rc == 0) {
      st->objects_kept += strtoull(PQgetvalue(r, 0, 0), NULL, 10);
      st->bytes_kept += strtoull(PQgetvalue(r, 0, 1), NULL, 10);
    }
    PQclear(r);
  }
  return rc;
}

/* ------------------------------------------------------------ settings */

/* A setting is the meta row "setting:KEY" (the key checked by the core). */
static int p_setting_get(mydb_backend *be, const char *key, mydb_blob **out) {
  pgbe *p = PB(be);
  char sql[256], k[80];
  int rc = MYDB_OK;
  snprintf(k, sizeof k, "setting:%s", key);
  const char *vals[1] = {k};
  snprintf(sql, sizeof sql, "SELECT value FROM %s.meta WHERE key = $1", p->q);
  PGresult *r = NULL;
  if ((rc = each_value(p, sql, 1, vals, &r))) return rc;
  if (PQntuples(r) == 0) {
    rc = mydb__seterr(MYDB_ENOTFOUND, "no setting '%s'", key);
  } else {
    size_t n = (size_t)PQgetlength(r, 0, 0);
    mydb_blob *b = mydb__blob_new(n);
    if (!b) {
      rc = mydb__seterr(MYDB_ENOMEM, "out of memory");
    } else {
      if (n) memcpy(b->data, PQgetvalue(r, 0, 0), n);
      *out = b;
    }
  }
  PQclear(r);
  return rc;
}

static int p_setting_set(mydb_backend *be, const char *key, const void *buf,
                         size_t len) {
  pgbe *p = PB(be);
  char sql[256], k[80];
  int rc = MYDB_OK;
  snprintf(k, sizeof k, "setting:%s", key);
  char *v = buf ? malloc(len + 1) : NULL;
  if (buf && !v) return mydb__seterr(MYDB_ENOMEM, "out of memory");
  if (v) {
    memcpy(v, buf, len);
    v[len] = '\0';
    if (strlen(v) != len) {
      free(v);
      return mydb__seterr(MYDB_EINVAL, "postgres: a setting is text (no NUL)");
    }
  }
  const char *vals[2] = {k, v};
  if (v)
    snprintf(sql, sizeof sql, "INSERT INTO %s.meta VALUES ($1, $2) ON "
             "CONFLICT (key) DO UPDATE SET value = excluded.value", p->q);
  else
    snprintf(sql, sizeof sql, "DELETE FROM %s.meta WHERE key = $1", p->q);
  int crc = MYDB_OK;
  PGconn *c = main_conn(p, &crc);
  if (!c) {
    free(v);
    return crc;
  }
  PGresult *r = run(p, c, sql, v ? 2 : 1, vals, NULL, NULL, PGRES_COMMAND_OK,
                    &rc);
  PQclear(r);
  main_done(p);
  free(v);
  return rc;
}

/* ------------------------------------------------------- open and close */

static void p_free(mydb_backend *be) {
  pgbe *p = PB(be);
  if (p->conn) PQfinish(p->conn);
  for (int i = 0; i < p->npool; i++) PQfinish(p->pool[i]);
  pthread_mutex_destroy(&p->mu);
  free(p->conninfo);
  free(p);
}

static const mydb_odb_ops pg_odb = {
    .version = MYDB__ODB_VERSION,
    .write = p_object_write,
    .read = p_object_read,
    .exists = p_object_exists,
    .foreach = p_object_foreach,
    .gc_begin = p_gc_begin,
    .gc_sweep = p_gc_sweep,
};

static const mydb_refdb_ops pg_refdb = {
    .version = MYDB__REFDB_VERSION,
    .get = p_head_get,
    .foreach = p_head_foreach,
    .lock_acquire = p_lock_acquire,
    .lock_release = p_lock_release,
    .lock_uncommitted = p_lock_uncommitted,
    .commit = p_head_commit,
    .journal = p_journal,
};

static int schema_valid(const char *s, size_t n) {
  if (n < 1 || n > 63 || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
    return 0;
  for (size_t i = 0; i < n; i++)
    if (!(isalnum((unsigned char)s[i]) || s[i] == '_')) return 0;
  return 1;
}

int mydb__pg_root(const char *root) {
  return strncmp(root, "postgresql://", 13) == 0 ||
         strncmp(root, "postgres://", 11) == 0;
}

/* Splits root into the libpq conninfo and the schema (doc/FORMAT.md):
 * a URI's query parameter schema=NAME or a keyword conninfo's schema=NAME
 * are mydb's and removed; a root that is neither (a name, a path) uses
 * libpq's defaults (PGHOST, PGDATABASE...) and the schema
 * "mydb_" + 16 hex digits of the root's SHA-256. */
static int parse_root(pgbe *p, const char *root) {
  size_t rl = strlen(root);
  char *ci = malloc(rl + 1);
  if (!ci) return mydb__seterr(MYDB_ENOMEM, "out of memory");
  const char *schema = "mydb";
  size_t slen = 4;
  int uri = mydb__pg_root(root), kv = !uri && strchr(root, '=') != NULL;
  if (uri || kv) {
    /* copy the parameters but schema= */
    const char *s = root, *q = uri ? strchr(root, '?') : NULL;
    char *o = ci;
    if (uri) {
      size_t head = q ? (size_t)(q - root) : rl;
      memcpy(o, root, head);
      o += head;
      s = q ? q + 1 : root + rl;
    }
    char sep = uri ? '&' : ' ';
    int first = 1;
    while (*s) {
      const char *e = strchr(s, sep);
      size_t n = e ? (size_t)(e - s) : strlen(s);
      if (n >= 7 && strncmp(s, "schema=", 7) == 0) {
        schema = s + 7;
        slen = n - 7;
      } else if (n) {
        *o++ = first ? (uri ? '?' : ' ') : sep;
        if (first && !uri) o--;
        memcpy(o, s, n);
        o += n;
        first = 0;
      }
      s += n + (e ? 1 : 0);
    }
    *o = '\0';
  } else {
    unsigned char h[32];
    ci[0] = '\0';
    mydb__sha256(h, root, rl);
    char name[32] = "mydb_", *o = hex_put(name + 5, h, 8);
    *o = '\0';
    memcpy(p->schema, name, 22);
    slen = 0;
  }
  if (slen) {
    if (!schema_valid(schema, slen)) {
      free(ci);
      return mydb__seterr(MYDB_EINVAL, "postgres: invalid schema name '%.*s' "
                          "(1 to 63 letters, digits and '_', not starting "
                          "with a digit)", (int)(slen > 64 ? 64 : slen),
                          schema);
    }
    memcpy(p->schema, schema, slen);
    p->schema[slen] = '\0';
  }
  snprintf(p->q, sizeof p->q, "\"%s\"", p->schema);
  p->conninfo = ci;
  char *err = NULL;
  PQconninfoOption *opts = PQconninfoParse(ci, &err);
  if (!opts) {
    size_t n = err ? strlen(err) : 0;
    while (n && err[n - 1] == '\n') n--;
    int rc = mydb__seterr(MYDB_EINVAL, "postgres: invalid connection string: "
                          "%.*s", (int)n, err ? err : "out of memory");
    PQfreemem(err);
    return rc;
  }
  PQconninfoFree(opts);
  return MYDB_OK;
}

int mydb__backend_postgres(mydb *db, mydb_backend **out) {
  pgbe *p = calloc(1, sizeof *p);
  if (!p) return mydb__seterr(MYDB_ENOMEM, "out of memory");
  if (pthread_mutex_init(&p->mu, NULL) != 0) {
    free(p);
    return mydb__seterr(MYDB_ENOMEM, "out of memory");
  }
  int rc = parse_root(p, db->root);
  if (rc == 0) {
    PGconn *c = main_conn(p, &rc);
    if (c) {
      rc = schema_ensure(p, c);
      main_done(p);
    }
  }
  if (rc) {
    if (p->conn) PQfinish(p->conn);
    pthread_mutex_destroy(&p->mu);
    free(p->conninfo);
    free(p);
    return rc;
  }
  mydb_backend *be = &p->be;
  be->version = MYDB__BACKEND_VERSION;
  be->name = "postgres";
  be->db = db;
  be->odb = &pg_odb;
  be->refdb = &pg_refdb;
  be->tenant_init = p_tenant_init;
  be->tenant_exists = p_tenant_exists;
  be->tenant_list = p_tenant_list;
  be->repack = NULL;
  be->check = NULL;
  be->setting_get = p_setting_get;
  be->setting_set = p_setting_set;
  be->free = p_free;
  *out = be;
  return MYDB_OK;
}
