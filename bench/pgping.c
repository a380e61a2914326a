/*
 * pgping.c - the limit for bench/postgres.lua: a bare libpq round trip
 * (SELECT 1) on the server of the conninfo given, from C.
 *
 *   build/pgping CONNINFO N   prints "NS_PER_ROUND_TRIP" (the median of 5
 *                             runs of N round trips each)
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: pgping CONNINFO N\n");
    return 2;
  }
  int n = atoi(argv[2]);
  PGconn *c = PQconnectdb(argv[1]);
  if (PQstatus(c) != CONNECTION_OK) {
    fprintf(stderr, "pgping: %s", PQerrorMessage(c));
    PQfinish(c);
    return 1;
  }
  double runs[5];
  for (int r = 0; r < 5; r++) {
    double t0 = now();
    for (int i = 0; i < n; i++) {
      PGresult *res = PQexecParams(c, "SELECT 1", 0, NULL, NULL, NULL, NULL, 1);
      int ok = PQresultStatus(res) == PGRES_TUPLES_OK;
      PQclear(res);
      if (!ok) {
        fprintf(stderr, "pgping: %s", PQerrorMessage(c));
        PQfinish(c);
        return 1;
      }
    }
    runs[r] = (now() - t0) / n;
  }
  qsort(runs, 5, sizeof *runs, cmp);
  printf("%.0f\n", runs[2] * 1e9);
  PQfinish(c);
  return 0;
}
