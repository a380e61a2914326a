/*
 * numtext.c - shortest round-trip text of a double (see numtext.h).
 *
 * The general way tries %.15g, %.16g, %.17g in turn, each read back with
 * strtod: ~20,000 instructions, 4% of a put (a commit's time is a float).
 * Most floats mydb writes (times in microseconds, money, measurements)
 * have at most six decimals; for those the text is built from the integer
 * round(|d| * 1e6) and read back once. Why that is the same text: for
 * 1 <= |d| < 2^33 a double's spacing is under 1e-6, so at most one number
 * of six decimals reads back to d; if the built text does, it is that one,
 * and %.Pg (fixed notation there, trailing zeros dropped) writes the same
 * digits for the first P that reads back (test_core checks both ways
 * against each other on random and edge values).
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "numtext.h"

static size_t general(char out[MYDB_NUMTEXT_MAX], double d) {
  int n = 0;
  /* 15 digits already give the shortest form of a normal double whose
   * shortest form has fewer; subnormals carry fewer digits: search them
   * from 1. */
  int first = (d != 0 && fabs(d) < DBL_MIN) ? 1 : 15;
  for (int prec = first; prec <= 17; prec++) {
    n = snprintf(out, MYDB_NUMTEXT_MAX, "%.*g", prec, d);
    if (strtod(out, NULL) == d) break;
  }
  for (int i = 0; i < n; i++)
    if (out[i] == ',') out[i] = '.'; /* in case of a decimal-comma locale */
  return (size_t)n;
}

/* The six-decimal text of d, or 0 if d has none that reads back. */
static size_t six_decimals(char out[MYDB_NUMTEXT_MAX], double d) {
  double a = fabs(d);
  if (!(a >= 1.0 && a < 8589934592.0)) return 0; /* [1, 2^33) */
  uint64_t m = (uint64_t)llround(a * 1e6);
  uint64_t whole = m / 1000000, frac = m % 1000000;
  char digits[24];
  size_t k = 0;
  do {
    digits[k++] = (char)('0' + whole % 10);
    whole /= 10;
  } while (whole);
  size_t n = 0;
  if (d < 0) out[n++] = '-';
  while (k) out[n++] = digits[--k];
  if (frac) {
    out[n++] = '.';
    char f[6];
    for (int i = 5; i >= 0; i--) {
      f[i] = (char)('0' + frac % 10);
      frac /= 10;
    }
    int last = 5;
    while (f[last] == '0') last--;
    memcpy(out + n, f, (size_t)last + 1);
    n += (size_t)last + 1;
  }
  out[n] = '\0';
  /* (in a decimal-comma locale strtod stops at the point: the general
   * way then writes the text) */
  return strtod(out, NULL) == d ? n : 0;
}

size_t mydb__numtext(char out[MYDB_NUMTEXT_MAX], double d) {
  size_t n = six_decimals(out, d);
  return n ? n : general(out, d);
}
